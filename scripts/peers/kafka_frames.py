"""Kafka frames captured on the wire: read, pair, name, and pick apart.

Used by record_proxy.py and capture.py; also a small CLI:

    python kafka_frames.py pcap2frames CAPTURE.pcap OUT.kframes [PORT...]
    python kafka_frames.py dump FILE.kframes
    python kafka_frames.py split FILE.kframes OUT_DIR PEER CLIENT [--all]

A frame is the bytes after Kafka's 4-byte size prefix, never changed: a
request starts with its header (api key, api version, correlation id, client
id, ...), a response with its correlation id.

The frame log (.kframes) is our own trivial container:
    b"KFRAMES1", then entries of
    u8 kind (0 request = client->broker, 1 response = broker->client,
             2 connection info, utf-8 "client_addr broker_addr"),
    u32 connection id, f64 unix time, u32 length, bytes
all big-endian.

Everything here is written for this project from the Kafka protocol guide
and the pcap file format description; no code is taken from elsewhere.
"""

import gzip
import io
import json
import os
import struct
import sys
import zlib
from collections import defaultdict

MAGIC = b"KFRAMES1"
REQUEST, RESPONSE, CONNINFO = 0, 1, 2

API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata",
    4: "LeaderAndIsr", 5: "StopReplica", 6: "UpdateMetadata",
    7: "ControlledShutdown", 8: "OffsetCommit", 9: "OffsetFetch",
    10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup",
    14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
    17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics",
    20: "DeleteTopics", 21: "DeleteRecords", 22: "InitProducerId",
    23: "OffsetForLeaderEpoch", 24: "AddPartitionsToTxn",
    25: "AddOffsetsToTxn", 26: "EndTxn", 27: "WriteTxnMarkers",
    28: "TxnOffsetCommit", 29: "DescribeAcls", 30: "CreateAcls",
    31: "DeleteAcls", 32: "DescribeConfigs", 33: "AlterConfigs",
    34: "AlterReplicaLogDirs", 35: "DescribeLogDirs", 36: "SaslAuthenticate",
    37: "CreatePartitions", 38: "CreateDelegationToken",
    39: "RenewDelegationToken", 40: "ExpireDelegationToken",
    41: "DescribeDelegationToken", 42: "DeleteGroups", 43: "ElectLeaders",
    44: "IncrementalAlterConfigs", 45: "AlterPartitionReassignments",
    46: "ListPartitionReassignments", 47: "OffsetDelete",
    48: "DescribeClientQuotas", 49: "AlterClientQuotas",
    50: "DescribeUserScramCredentials", 51: "AlterUserScramCredentials",
    52: "Vote", 53: "BeginQuorumEpoch", 54: "EndQuorumEpoch",
    55: "DescribeQuorum", 56: "AlterPartition", 57: "UpdateFeatures",
    58: "Envelope", 59: "FetchSnapshot", 60: "DescribeCluster",
    61: "DescribeProducers", 62: "BrokerRegistration", 63: "BrokerHeartbeat",
    64: "UnregisterBroker", 65: "DescribeTransactions",
    66: "ListTransactions", 67: "AllocateProducerIds",
    68: "ConsumerGroupHeartbeat", 69: "ConsumerGroupDescribe",
    70: "ControllerRegistration", 71: "GetTelemetrySubscriptions",
    72: "PushTelemetry", 73: "AssignReplicasToDirs",
    74: "ListClientMetricsResources", 75: "DescribeTopicPartitions",
    76: "ShareGroupHeartbeat", 77: "ShareGroupDescribe", 78: "ShareFetch",
    79: "ShareAcknowledge", 80: "AddRaftVoter", 81: "RemoveRaftVoter",
    82: "UpdateRaftVoter", 83: "InitializeShareGroupState",
    84: "ReadShareGroupState", 85: "WriteShareGroupState",
    86: "DeleteShareGroupState", 87: "ReadShareGroupStateSummary",
}


def api_name(key):
    return API_NAMES.get(key, "Api%d" % key)


# --------------------------------------------------------------- frame log --

class FrameLogWriter:
    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(MAGIC)

    def write(self, kind, conn, ts, data):
        self.f.write(struct.pack(">BIdI", kind, conn, ts, len(data)))
        self.f.write(data)
        self.f.flush()

    def close(self):
        self.f.close()


def read_frame_log(path):
    """Yield (kind, conn, ts, bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(MAGIC):
        raise ValueError("%s: not a frame log" % path)
    pos = len(MAGIC)
    while pos < len(data):
        kind, conn, ts, n = struct.unpack_from(">BIdI", data, pos)
        pos += 17
        yield kind, conn, ts, data[pos:pos + n]
        pos += n


class FrameSplitter:
    """Cut a byte stream into size-prefixed frames as bytes arrive."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data
        out = []
        while len(self.buf) >= 4:
            (n,) = struct.unpack_from(">i", self.buf, 0)
            if n < 0:
                raise ValueError("negative frame size %d" % n)
            if len(self.buf) < 4 + n:
                break
            out.append(bytes(self.buf[4:4 + n]))
            del self.buf[:4 + n]
        return out


# -------------------------------------------------------------------- pcap --

def _pcap_packets(path):
    """Yield (ts, ip_payload_bytes) for IPv4/IPv6 packets in a pcap file."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError("%s: not a pcap file (pcapng is not read)" % path)
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack_from(e + "I", data, 20)[0] & 0x0FFFFFFF
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(e + "IIII", data, pos)
        pos += 16
        pkt = data[pos:pos + incl]
        pos += incl
        ts = sec + frac / (1e9 if nano else 1e6)
        if linktype == 1:  # Ethernet
            if len(pkt) < 14:
                continue
            etype = struct.unpack_from(">H", pkt, 12)[0]
            body = pkt[14:]
        elif linktype == 113:  # Linux cooked v1
            etype = struct.unpack_from(">H", pkt, 14)[0]
            body = pkt[16:]
        elif linktype == 276:  # Linux cooked v2
            etype = struct.unpack_from(">H", pkt, 0)[0]
            body = pkt[20:]
        elif linktype == 0:  # BSD loopback
            etype = 0x0800 if pkt[:4] in (b"\x02\0\0\0", b"\0\0\0\x02") else 0x86DD
            body = pkt[4:]
        elif linktype == 101:  # raw IP
            etype = 0x0800 if pkt[0] >> 4 == 4 else 0x86DD
            body = pkt
        else:
            raise ValueError("unsupported pcap link type %d" % linktype)
        if etype in (0x0800, 0x86DD):
            yield ts, body


def _tcp_segments(path):
    """Yield (ts, src, dst, seq, flags, payload) with src/dst as 'ip:port'."""
    for ts, ip in _pcap_packets(path):
        ver = ip[0] >> 4
        if ver == 4:
            ihl = (ip[0] & 0x0F) * 4
            total = struct.unpack_from(">H", ip, 2)[0]
            if ip[9] != 6:
                continue
            src_ip = ".".join(str(b) for b in ip[12:16])
            dst_ip = ".".join(str(b) for b in ip[16:20])
            tcp = ip[ihl:total]
        elif ver == 6:
            if ip[6] != 6:  # no extension headers expected on loopback
                continue
            plen = struct.unpack_from(">H", ip, 4)[0]
            src_ip = "[%s]" % ip[8:24].hex()
            dst_ip = "[%s]" % ip[24:40].hex()
            tcp = ip[40:40 + plen]
        else:
            continue
        sport, dport, seq = struct.unpack_from(">HHI", tcp, 0)
        off = (tcp[12] >> 4) * 4
        flags = tcp[13]
        yield ts, "%s:%d" % (src_ip, sport), "%s:%d" % (dst_ip, dport), seq, flags, tcp[off:]


SYN, ACK = 0x02, 0x10


def pcap_to_frames(pcap_path, out_path, broker_ports=None):
    """Reassemble every TCP connection in a pcap and write its Kafka frames.

    The client side of a connection is the one that sent the SYN; if
    broker_ports is given, connections to other ports are ignored. Segments
    are placed by sequence number, so duplicates (and retransmits) are
    dropped and out-of-order ones put right; a gap ends that direction.
    """
    broker_ports = set(broker_ports or [])
    # flow (src, dst) -> dict
    flows = {}
    conns = {}  # frozenset endpoints -> (conn id, client, broker)
    for ts, src, dst, seq, flags, payload in _tcp_segments(pcap_path):
        key = (src, dst)
        if flags & SYN:
            if not flags & ACK:
                if broker_ports and int(dst.rsplit(":", 1)[1]) not in broker_ports:
                    continue
                # A fresh connection (the port pair may be reused later).
                cid = len(conns)
                conns[frozenset((src, dst))] = (cid, src, dst)
            flows[key] = {"isn": seq, "segs": {}, "ts": {}}
            continue
        fl = flows.get(key)
        if fl is None or not payload:
            continue
        off = (seq - fl["isn"] - 1) & 0xFFFFFFFF
        if off not in fl["segs"] or len(fl["segs"][off]) < len(payload):
            fl["segs"][off] = payload
            fl["ts"].setdefault(off, ts)

    out = []  # (ts, order, kind, conn, frame)
    order = 0
    for ends, (cid, client, broker) in sorted(conns.items(), key=lambda kv: kv[1][0]):
        out.append((0.0, order, CONNINFO, cid, ("%s %s" % (client, broker)).encode()))
        order += 1
        for kind, key in ((REQUEST, (client, broker)), (RESPONSE, (broker, client))):
            fl = flows.get(key)
            if fl is None:
                continue
            stream = bytearray()
            marks = []  # (stream offset, ts)
            for off in sorted(fl["segs"]):
                seg = fl["segs"][off]
                if off > len(stream):
                    print("pcap: gap in %s -> %s at %d; stopping there" % (key[0], key[1], len(stream)),
                          file=sys.stderr)
                    break
                if off + len(seg) <= len(stream):
                    continue
                marks.append((len(stream), fl["ts"][off]))
                stream += seg[len(stream) - off:]
            pos = 0
            mi = 0
            while pos + 4 <= len(stream):
                (n,) = struct.unpack_from(">i", stream, pos)
                if n < 0 or pos + 4 + n > len(stream):
                    break
                while mi + 1 < len(marks) and marks[mi + 1][0] <= pos:
                    mi += 1
                # A frame counts as sent when its last byte was.
                end = pos + 4 + n - 1
                mj = mi
                while mj + 1 < len(marks) and marks[mj + 1][0] <= end:
                    mj += 1
                out.append((marks[mj][1], order, kind, cid, bytes(stream[pos + 4:pos + 4 + n])))
                order += 1
                pos += 4 + n
    out.sort(key=lambda t: (t[0], t[1]))
    w = FrameLogWriter(out_path)
    for ts, _o, kind, cid, frame in out:
        w.write(kind, cid, ts, frame)
    w.close()
    return len(out)


# ------------------------------------------------------------ header parse --

def request_header(frame):
    """(api_key, api_version, correlation_id, client_id or None)."""
    key, ver, corr = struct.unpack_from(">hhi", frame, 0)
    (n,) = struct.unpack_from(">h", frame, 8)
    client = None if n < 0 else frame[10:10 + n].decode("utf-8", "replace")
    return key, ver, corr, client


def pair_frames(entries):
    """Pair requests with responses per connection (FIFO by correlation id).

    Returns a list of dicts in request order: conn, ts, key, ver, corr,
    client_id, request, response (None if the broker never answered).
    """
    pending = defaultdict(list)
    exchanges = []
    conninfo = {}
    for kind, conn, ts, frame in entries:
        if kind == CONNINFO:
            conninfo[conn] = frame.decode()
        elif kind == REQUEST:
            if len(frame) < 10:
                continue
            key, ver, corr, cid = request_header(frame)
            ex = dict(conn=conn, ts=ts, key=key, ver=ver, corr=corr, client_id=cid,
                      request=frame, response=None, endpoints=conninfo.get(conn))
            exchanges.append(ex)
            pending[conn].append(ex)
        elif kind == RESPONSE:
            if len(frame) < 4:
                continue
            (corr,) = struct.unpack_from(">i", frame, 0)
            q = pending[conn]
            for i, ex in enumerate(q):
                if ex["corr"] == corr:
                    ex["response"] = frame
                    if i != 0:
                        print("conn %d: response %d out of order" % (conn, corr), file=sys.stderr)
                    # Requests before it got no answer (acks=0 produce).
                    del q[:i + 1]
                    break
            else:
                print("conn %d: response with unknown correlation id %d" % (conn, corr),
                      file=sys.stderr)
    return exchanges


# ---------------------------------------------------------- produce parse --

class Reader:
    def __init__(self, data, pos=0):
        self.d = data
        self.p = pos

    def take(self, n):
        if n < 0 or self.p + n > len(self.d):
            raise ValueError("truncated at %d (+%d of %d)" % (self.p, n, len(self.d)))
        b = self.d[self.p:self.p + n]
        self.p += n
        return b

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self):
        shift = v = 0
        while True:
            b = self.take(1)[0]
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def varint(self):
        v = self.uvarint()
        return (v >> 1) ^ -(v & 1)

    def string(self, flexible, nullable=True):
        n = self.uvarint() - 1 if flexible else self.i16()
        if n < 0:
            return None
        return self.take(n).decode("utf-8")

    def nbytes(self, flexible):
        n = self.uvarint() - 1 if flexible else self.i32()
        if n < 0:
            return None
        return self.take(n)

    def array_len(self, flexible):
        return self.uvarint() - 1 if flexible else self.i32()

    def tagged(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def parse_produce_request(frame):
    """Return (version, acks, transactional_id, [(topic, partition, records)])."""
    key, ver, _corr, _client = request_header(frame)
    if key != 0:
        raise ValueError("not a Produce request")
    flex = ver >= 9
    r = Reader(frame, 10 + max(0, struct.unpack_from(">h", frame, 8)[0]))
    if flex:
        r.tagged()  # request header v2 tagged fields
    txn = r.string(flex) if ver >= 3 else None
    acks = r.i16()
    r.i32()  # timeout
    out = []
    for _ in range(r.array_len(flex)):
        topic = r.string(flex)
        for _ in range(r.array_len(flex)):
            part = r.i32()
            recs = r.nbytes(flex)
            if flex:
                r.tagged()
            out.append((topic, part, recs))
        if flex:
            r.tagged()
    if flex:
        r.tagged()
    return ver, acks, txn, out


# ---------------------------------------------------- record batch decode --
# Only to check captured batches against what the scenario asked the client
# to produce, and to write the expected values next to them.

CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def _crc32c_table():
    poly = 0x82F63B78
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t.append(c)
    return t


_CRC32C = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _unsnappy(data):
    import snappy
    # Java/kafka-python style: xerial framing around raw snappy blocks.
    if data.startswith(b"\x82SNAPPY\x00"):
        r = Reader(data, 16)
        out = bytearray()
        while r.p < len(data):
            out += snappy.uncompress(r.take(r.i32()))
        return bytes(out), "xerial"
    return snappy.uncompress(data), "raw"


def decompress(codec, data):
    if codec == 0:
        return data, None
    if codec == 1:
        return gzip.decompress(data), None
    if codec == 2:
        return _unsnappy(data)
    if codec == 3:
        import lz4.frame
        return lz4.frame.decompress(data), None
    if codec == 4:
        import zstandard
        return zstandard.ZstdDecompressor().decompressobj().decompress(data), None
    raise ValueError("unknown codec %d" % codec)


def enc(b):
    """JSON form of a byte string: utf8 text when it is, and always hex."""
    if b is None:
        return None
    d = {"hex": b.hex()}
    try:
        d["utf8"] = b.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return d


def decode_batches(data):
    """Decode RecordBatch v2 bytes into a list of dicts (CRC checked)."""
    batches = []
    r = Reader(data)
    while r.p < len(data):
        start = r.p
        base_offset = r.i64()
        length = r.i32()
        end = r.p + length
        leader_epoch = r.i32()
        magic = r.i8()
        if magic != 2:
            raise ValueError("magic %d" % magic)
        crc = struct.unpack(">I", r.take(4))[0]
        if crc32c(data[r.p:end]) != crc:
            raise ValueError("bad crc in batch at %d" % start)
        attrs = r.i16()
        last_delta = r.i32()
        base_ts = r.i64()
        max_ts = r.i64()
        pid = r.i64()
        pepoch = r.i16()
        base_seq = r.i32()
        count = r.i32()
        codec = attrs & 7
        body, snappy_framing = decompress(codec, data[r.p:end])
        rr = Reader(body)
        records = []
        for _ in range(count):
            rlen = rr.varint()
            rend = rr.p + rlen
            rattrs = rr.i8()
            ts_delta = rr.varint()
            off_delta = rr.varint()
            klen = rr.varint()
            key = None if klen < 0 else rr.take(klen)
            vlen = rr.varint()
            val = None if vlen < 0 else rr.take(vlen)
            headers = []
            for _ in range(rr.varint()):
                hk = rr.take(rr.varint())
                hvlen = rr.varint()
                hv = None if hvlen < 0 else rr.take(hvlen)
                headers.append((hk, hv))
            if rr.p != rend:
                raise ValueError("record length mismatch")
            records.append(dict(attributes=rattrs, offset_delta=off_delta,
                                timestamp_delta=ts_delta, timestamp=base_ts + ts_delta,
                                key=key, value=val, headers=headers))
        if rr.p != len(body):
            raise ValueError("trailing bytes in batch body")
        b = dict(byte_offset=start, byte_length=end - start, base_offset=base_offset,
                 partition_leader_epoch=leader_epoch, magic=magic, crc=crc,
                 attributes=attrs, compression=CODECS.get(codec, codec),
                 timestamp_type="LogAppendTime" if attrs & 8 else "CreateTime",
                 transactional=bool(attrs & 16), control=bool(attrs & 32),
                 last_offset_delta=last_delta, base_timestamp=base_ts,
                 max_timestamp=max_ts, producer_id=pid, producer_epoch=pepoch,
                 base_sequence=base_seq, records_count=count, records=records)
        if snappy_framing:
            b["snappy_framing"] = snappy_framing
        batches.append(b)
        r.p = end
    return batches


def decode_message_set(data, _inner=False):
    """Decode a legacy MessageSet (magic 0 or 1) into a list of dicts.

    Compressed wrapper messages are listed with their decoded inner
    messages under "inner". CRC-32 (IEEE) is checked on every message.
    """
    msgs = []
    r = Reader(data)
    while r.p < len(data):
        start = r.p
        offset = r.i64()
        size = r.i32()
        end = r.p + size
        crc = struct.unpack(">I", r.take(4))[0]
        if zlib.crc32(data[r.p:end]) != crc:
            raise ValueError("bad crc in message at %d" % start)
        magic = r.i8()
        if magic not in (0, 1):
            raise ValueError("magic %d in a message set" % magic)
        attrs = r.i8()
        ts = r.i64() if magic == 1 else None
        key = r.nbytes(False)
        value = r.nbytes(False)
        if r.p != end:
            raise ValueError("message size mismatch at %d" % start)
        codec = attrs & 7
        m = dict(byte_offset=start, byte_length=end - start, offset=offset, crc=crc,
                 magic=magic, attributes=attrs, compression=CODECS.get(codec, codec),
                 key=key, value=value)
        if magic == 1:
            m["timestamp"] = ts
            m["timestamp_type"] = "LogAppendTime" if attrs & 8 else "CreateTime"
        if codec:
            if _inner:
                raise ValueError("nested compression")
            body, framing = decompress(codec, value)
            if framing:
                m["snappy_framing"] = framing
            m["inner"] = decode_message_set(body, True)
        msgs.append(m)
    return msgs


def message_set_to_json(msgs):
    out = []
    for m in msgs:
        m = dict(m)
        m["key"] = enc(m["key"])
        m["value"] = None if "inner" in m else enc(m["value"])
        if "inner" in m:
            m["inner"] = message_set_to_json(m["inner"])
        out.append(m)
    return out


def batches_to_json(batches):
    out = []
    for b in batches:
        b = dict(b)
        b["records"] = [dict(attributes=x["attributes"], offset_delta=x["offset_delta"],
                             timestamp_delta=x["timestamp_delta"], timestamp=x["timestamp"],
                             key=enc(x["key"]), value=enc(x["value"]),
                             headers=[{"key": enc(k), "value": enc(v)} for k, v in x["headers"]])
                        for x in b["records"]]
        out.append(b)
    return out


# -------------------------------------------------------------- snapshots --

def write_snapshots(exchanges, out_dir, peer, client, select, seq_start=1):
    """Write the selected exchanges as <seq>_<Api>_v<ver>_<dir>.bin.

    Returns manifest rows (file relative to out_dir's parent's parent is the
    caller's business: rows carry the path relative to out_dir's root passed
    as 'root').
    """
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    seq = seq_start
    for ex in exchanges:
        if not select(ex):
            continue
        name = api_name(ex["key"])
        for direction in ("request", "response"):
            data = ex[direction]
            if data is None:
                continue
            fn = "%03d_%s_v%d_%s.bin" % (seq, name, ex["ver"], direction)
            with open(os.path.join(out_dir, fn), "wb") as f:
                f.write(data)
            rows.append(dict(file=fn, direction=direction, api_key=ex["key"],
                             api_name=name, api_version=ex["ver"],
                             correlation_id=ex["corr"], peer=peer, client=client))
        seq += 1
    return rows, seq


def _main(argv):
    if len(argv) >= 3 and argv[1] == "pcap2frames":
        ports = [int(p) for p in argv[4:]]
        n = pcap_to_frames(argv[2], argv[3], ports)
        print("%d frames" % n)
    elif len(argv) == 3 and argv[1] == "dump":
        for ex in pair_frames(read_frame_log(argv[2])):
            print("conn %-3d %-20s v%-2d corr %-6d req %6d resp %s" % (
                ex["conn"], api_name(ex["key"]), ex["ver"], ex["corr"], len(ex["request"]),
                "-" if ex["response"] is None else len(ex["response"])))
    elif len(argv) >= 6 and argv[1] == "split":
        exs = pair_frames(read_frame_log(argv[2]))
        rows, _ = write_snapshots(exs, argv[3], argv[4], argv[5], lambda ex: True)
        for row in rows:
            print("\t".join(str(row[k]) for k in ("file", "direction", "api_key", "api_name",
                                                    "api_version", "correlation_id", "peer",
                                                    "client")))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
