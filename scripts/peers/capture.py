#!/usr/bin/env python3
"""Capture what real Kafka clients and brokers say to each other, as test data.

    target/peers/venv/bin/python scripts/peers/capture.py records   [--out DIR]
    target/peers/venv/bin/python scripts/peers/capture.py snapshots [--out DIR] [--keep-logs DIR]

(run scripts/peers/install.sh first; root is needed for tcpdump.)

records:   every client x codec produces the same small record set to
           librdkafka's mock cluster; the `records` field of each Produce
           request is written to tests/data/records/<client>_<codec>.bin and
           the decoded records (checked against what was asked) to
           tests/data/records/expected.json.
snapshots: every client runs metadata/produce/consume/group/offset/admin
           scenarios against each broker; request and response frames go to
           tests/data/snapshots/<peer>/<client>/<seq>_<Api>_v<ver>_<dir>.bin
           with tests/data/snapshots/manifest.tsv.

Recording keeps bytes as they were on the wire: tcpdump on loopback for the
mock cluster (it advertises its own ports), and record_proxy.py for tansu,
which is started advertising the proxy's port (no rewriting; see
record_proxy.py).
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import kafka_frames as kf  # noqa: E402
import clients  # noqa: E402

PEERS_HOME = os.environ.get("PEERS_HOME", os.path.join(REPO, "target", "peers"))
PY = os.path.join(PEERS_HOME, "venv", "bin", "python")
LIB216 = os.path.join(PEERS_HOME, "librdkafka-2.16")
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def log(*a):
    print("[capture]", *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def env_for(client):
    env = dict(os.environ)
    if client.startswith("kcat-2.16"):
        env["LD_LIBRARY_PATH"] = LIB216
    if client.startswith("kafka-python") and "-api" in client:
        env["KAFKA_PYTHON_API_VERSION"] = client.split("-api", 1)[1]
    return env


# ---------------------------------------------------------------- brokers --

class Mock:
    def __init__(self, flavour, brokers=1, topics=()):
        cmd = ["bash", os.path.join(HERE, "start_mock.sh"), "--librdkafka", flavour,
               "-b", str(brokers)]
        for t in topics:
            cmd += ["-t", t]
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        self.bootstrap = self.p.stdout.readline().strip()
        if not self.bootstrap:
            raise RuntimeError("mock did not start")
        self.ports = [int(x.rsplit(":", 1)[1]) for x in self.bootstrap.split(",")]

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        ans = self.p.stdout.readline().strip()
        if ans != "ok":
            raise RuntimeError("mock: %s -> %s" % (line, ans))

    def stop(self):
        with contextlib.suppress(Exception):
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()


class Tcpdump:
    def __init__(self, ports, pcap):
        flt = "tcp and (" + " or ".join("port %d" % p for p in ports) + ")"
        self.pcap = pcap
        self.ports = ports
        self.err = open(pcap + ".log", "w+")
        self.p = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-n", "-s", "0", "-Z", "root",
                                   "-w", pcap, flt], stderr=self.err)
        for _ in range(100):
            self.err.seek(0)
            if "listening on" in self.err.read():
                return
            time.sleep(0.05)
        raise RuntimeError("tcpdump did not start")

    def stop(self, kframes):
        # Let the last packets reach tcpdump's buffer before it stops.
        time.sleep(1.0)
        self.p.send_signal(signal.SIGINT)
        self.p.wait(10)
        n = kf.pcap_to_frames(self.pcap, kframes, self.ports)
        log("tcpdump: %d frames" % n)


class TansuProxied:
    """tansu advertising the port of a recording proxy in front of it."""

    def __init__(self, kframes, extra=()):
        real = free_port()
        self.proxy = subprocess.Popen(
            [PY, os.path.join(HERE, "record_proxy.py"), "--upstream", "127.0.0.1:%d" % real,
             "--out", kframes], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.bootstrap = self.proxy.stdout.readline().strip()
        adv = int(self.bootstrap.rsplit(":", 1)[1])
        self.tansu = subprocess.Popen(
            ["bash", os.path.join(HERE, "start_tansu.sh"), str(real), str(adv)] + list(extra),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.tansu.stdout.readline().strip()
        if line != "127.0.0.1:%d" % real:
            raise RuntimeError("tansu did not start: %r" % line)

    def stop(self):
        time.sleep(0.3)
        self.tansu.terminate()
        self.tansu.wait(10)
        self.proxy.terminate()
        self.proxy.wait(10)


@contextlib.contextmanager
def session(peer, kframes, topics=(), brokers=1):
    """Start the peer with recording; yield (bootstrap, mock or None)."""
    tmp = tempfile.mkdtemp(prefix="capture.")
    try:
        if peer.startswith("mock-"):
            flavour = "debian" if peer == "mock-2.0.2" else "2.16"
            m = Mock(flavour, brokers, topics)
            td = Tcpdump(m.ports, os.path.join(tmp, "cap.pcap"))
            try:
                yield m.bootstrap, m
            finally:
                td.stop(kframes)
                m.stop()
        elif peer.startswith("tansu-0.6.0"):
            t = TansuProxied(kframes, ["--authentication"] if peer.endswith("-auth") else [])
            try:
                yield t.bootstrap, None
            finally:
                t.stop()
        else:
            raise ValueError(peer)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(cmd, client=None, stdin=None, timeout=60, check=True):
    log("$", " ".join(cmd))
    r = subprocess.run(cmd, input=stdin, env=env_for(client or ""), timeout=timeout,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode and check:
        raise RuntimeError("%s failed (%d): %s" % (cmd[0], r.returncode, r.stderr.decode()[-2000:]))
    return r


NODE_PATH = os.path.join(PEERS_HOME, "node", "node_modules")


def js_client(boot, *args, check=True, timeout=60):
    env = dict(os.environ, NODE_PATH=NODE_PATH)
    cmd = ["node", os.path.join(HERE, "kafkajs_client.js"), boot] + list(args)
    log("$", " ".join(cmd))
    r = subprocess.run(cmd, env=env, timeout=timeout, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if r.returncode and check:
        raise RuntimeError("kafkajs failed (%d): %s" % (r.returncode, r.stderr.decode()[-2000:]))
    return r


def py_client(client, boot, *args, check=True, timeout=60):
    if client.startswith("kafkajs"):
        return js_client(boot, *args, check=check, timeout=timeout)
    which = "confluent" if client.startswith("confluent") else "kafka-python"
    return run([PY, os.path.join(HERE, "clients.py"), which, boot] + list(args),
               client, check=check, timeout=timeout)


# ---------------------------------------------------------------- records --

# kcat gives one set of headers to every record it produces, and with -Z an
# empty key or value is sent as null.
KCAT_LINES = [
    (b"key-0", b"value-0"),
    (None, b"value with a null key"),
    (b"key-2", None),
    (b"key-4", b"repeat " * 20),
]
KCAT_HEADERS = [("h1", b"a"), ("h1", b"b"), ("hnull", None)]


def kcat_produce(boot, topic, codec, client="kcat-2.0.2"):
    data = b"".join((k or b"") + b"\t" + (v or b"") + b"\n" for k, v in KCAT_LINES)
    cmd = ["kcat", "-b", boot, "-P", "-t", topic, "-p", "0", "-K", "\t", "-Z",
           "-z", codec, "-X", "linger.ms=200", "-X", "client.id=kafka-sansio-capture"]
    for hk, hv in KCAT_HEADERS:
        cmd += ["-H", hk if hv is None else "%s=%s" % (hk, hv.decode())]
    run(cmd, client, stdin=data)


def asked_records(client):
    if client.startswith("kcat"):
        return [(k, v, KCAT_HEADERS) for k, v in KCAT_LINES]
    # kafka-python refuses null header values; KafkaJS cannot express them.
    nulls_ok = not client.startswith(("kafka-python", "kafkajs"))
    return [(k, v, [(hk.encode(), hv) for hk, hv in h if nulls_ok or hv is not None])
            for k, v, h, _dt in clients.RECORDS]


def check_against_asked(batches, client, codec, fname):
    got = [(r["key"], r["value"], [(hk.decode() if isinstance(hk, bytes) else hk, hv)
                                   for hk, hv in r["headers"]])
           for b in batches for r in b["records"]]
    want = [(k, v, [(hk.decode() if isinstance(hk, bytes) else hk, hv) for hk, hv in h])
            for k, v, h in asked_records(client)]
    if got != want:
        raise RuntimeError("%s: decoded records differ from what was produced:\n%r\n%r"
                           % (fname, got, want))
    for b in batches:
        if b["compression"] != codec:
            raise RuntimeError("%s: batch compression %s, asked %s" % (fname, b["compression"], codec))


def codecs_of(client):
    # KafkaJS has only gzip built in (snappy, lz4, zstd need plugins).
    return ["none", "gzip"] if client.startswith("kafkajs") else CODECS


def capture_records(out_dir, logs, only=None):
    """only: client names (e.g. kafkajs-2.2.4, or "legacy") to re-capture;
    the other files and their expected.json entries are kept."""
    os.makedirs(out_dir, exist_ok=True)
    expected = {}
    exp_path = os.path.join(out_dir, "expected.json")
    if only and os.path.exists(exp_path):
        with open(exp_path) as f:
            expected = json.load(f)
    topics = ["rec-%s:1" % c for c in CODECS]
    # kafka-python 3.0.12 cannot bootstrap from the 2.0.2 mock: it resends
    # ApiVersions v4 forever on the mock's malformed error reply. It records
    # against tansu instead.
    for client, peer in [("kcat-2.0.2", "mock-2.0.2"),
                         ("confluent-kafka-2.16.1", "mock-2.0.2"),
                         ("kafka-python-3.0.12", "tansu-0.6.0"),
                         ("kafkajs-2.2.4", "mock-2.0.2")]:
        if only and client not in only:
            continue
        kframes = os.path.join(logs, "records_%s.kframes" % client)
        with session(peer, kframes, topics) as (boot, _m):
            if peer.startswith("tansu"):
                py_client(client, boot, "admin", *("rec-" + c for c in CODECS))
            for codec in codecs_of(client):
                if client.startswith("kcat"):
                    kcat_produce(boot, "rec-" + codec, codec, client)
                else:
                    py_client(client, boot, "records", codec, "rec-" + codec)
        exs = kf.pair_frames(kf.read_frame_log(kframes))
        short = client.rsplit("-", 1)[0]
        for codec in codecs_of(client):
            topic = "rec-" + codec
            recs = b""
            produce_versions = []
            for ex in exs:
                if ex["key"] != 0:
                    continue
                ver, acks, _txn, parts = kf.parse_produce_request(ex["request"])
                for t, p, r in parts:
                    if t == topic and r:
                        recs += r
                        produce_versions.append(ver)
            if not recs:
                raise RuntimeError("%s %s: no Produce for %s" % (client, codec, topic))
            fname = "%s_%s.bin" % (short, codec)
            batches = kf.decode_batches(recs)
            check_against_asked(batches, client, codec, fname)
            with open(os.path.join(out_dir, fname), "wb") as f:
                f.write(recs)
            expected[fname] = dict(client=client, broker=peer, codec=codec,
                                   produce_versions=sorted(set(produce_versions)),
                                   bytes=len(recs), batches=kf.batches_to_json(batches))
            log("%s: %d bytes, %d batch(es), %d records" % (
                fname, len(recs), len(batches), sum(b["records_count"] for b in batches)))
    if not only or "legacy" in only:
        capture_legacy_records(out_dir, logs, expected)
    with open(exp_path, "w") as f:
        f.write(dump_expected(expected))


# Magic 0 with lz4 is left out: kafka-python writes it in the pre-KIP-57
# (KAFKA-3160) framing, which needs the extra xxhash package.
LEGACY_CODECS = {1: ["none", "gzip", "snappy", "lz4"], 0: ["none", "gzip", "snappy"]}


def capture_legacy_records(out_dir, logs, expected):
    """kafka-python pinned to Kafka 0.10.2 (magic 1) and 0.9 (magic 0) writes
    legacy message sets. tansu stores nothing and never answers those Produce
    requests, but the first request is what we want: its records field."""
    kframes = os.path.join(logs, "records_legacy.kframes")
    peer = "tansu-0.6.0"
    plan = [(1, "kafka-python-3.0.12-api0.10.2"), (0, "kafka-python-3.0.12-api0.9")]
    with session(peer, kframes) as (boot, _m):
        py_client("kafka-python-3.0.12", boot, "admin",
                  *("leg-v%d-%s" % (m, c) for m, _ in plan for c in LEGACY_CODECS[m]))
        for magic, client in plan:
            for codec in LEGACY_CODECS[magic]:
                py_client(client, boot, "records-nowait", codec, "leg-v%d-%s" % (magic, codec))
    exs = kf.pair_frames(kf.read_frame_log(kframes))
    for magic, client in plan:
        for codec in LEGACY_CODECS[magic]:
            topic = "leg-v%d-%s" % (magic, codec)
            for ex in exs:
                if ex["key"] != 0:
                    continue
                ver, _acks, _txn, parts = kf.parse_produce_request(ex["request"])
                recs = [r for t, _p, r in parts if t == topic and r]
                if recs:
                    break
            else:
                raise RuntimeError("no Produce for " + topic)
            recs = recs[0]
            msgs = kf.decode_message_set(recs)
            flat = [m2 for m in msgs for m2 in (m.get("inner") or [m])]
            got = [(m["key"], m["value"]) for m in flat]
            want = [(k, v) for k, v, _h, _dt in clients.RECORDS]
            if got != want or any(m["magic"] != magic for m in flat):
                raise RuntimeError("%s: decoded %r, asked %r" % (topic, got, want))
            fname = "kafka-python_magic%d_%s.bin" % (magic, codec)
            with open(os.path.join(out_dir, fname), "wb") as f:
                f.write(recs)
            expected[fname] = dict(client=client, broker=peer, codec=codec,
                                   format="MessageSet v%d (magic %d)" % (magic, magic),
                                   produce_versions=[ver], bytes=len(recs),
                                   messages=kf.message_set_to_json(msgs))
            log("%s: %d bytes, %d message(s), %d inner" % (
                fname, len(recs), len(msgs), sum(len(m.get("inner", [])) for m in msgs)))


def dump_expected(expected):
    """JSON with one record per line: small, diffable, still plain JSON."""
    out = ["{"]
    files = sorted(expected)
    for i, fname in enumerate(files):
        e = expected[fname]
        head = {k: v for k, v in e.items() if k not in ("batches", "messages")}
        out.append(" %s: {" % json.dumps(fname))
        for k in sorted(head):
            out.append("  %s: %s," % (json.dumps(k), json.dumps(head[k])))
        if "messages" in e:
            out.append('  "messages": [')
            ms = e["messages"]
            for n, m in enumerate(ms):
                out.append("   " + json.dumps(m, sort_keys=True) + ("," if n + 1 < len(ms) else ""))
            out.append("  ]")
            out.append(" }" + ("," if i + 1 < len(files) else ""))
            continue
        out.append('  "batches": [')
        for j, b in enumerate(e["batches"]):
            bh = {k: v for k, v in b.items() if k != "records"}
            out.append("   {")
            for k in sorted(bh):
                out.append("    %s: %s," % (json.dumps(k), json.dumps(bh[k])))
            out.append('    "records": [')
            recs = b["records"]
            for n, r in enumerate(recs):
                out.append("     " + json.dumps(r, sort_keys=True) + ("," if n + 1 < len(recs) else ""))
            out.append("    ]")
            out.append("   }" + ("," if j + 1 < len(e["batches"]) else ""))
        out.append("  ]")
        out.append(" }" + ("," if i + 1 < len(files) else ""))
    out.append("}")
    return "\n".join(out) + "\n"


# -------------------------------------------------------------- snapshots --

# Pushed to the mock before a "-faults" session: API key, then error codes
# for its next requests, in order.
FAULTS = [
    "errors 0 6",        # Produce: NOT_LEADER_OR_FOLLOWER
    "errors 10 15",      # FindCoordinator: COORDINATOR_NOT_AVAILABLE
    "errors 2 6",        # ListOffsets: NOT_LEADER_OR_FOLLOWER
    "errors 12 27",      # Heartbeat: REBALANCE_IN_PROGRESS
    "errors 1 6",        # Fetch: NOT_LEADER_OR_FOLLOWER
]

MANIFEST_COLUMNS = ["file", "direction", "api_key", "api_name", "api_version",
                    "correlation_id", "peer", "client"]
SNAP_TOPIC = "snap"
MAX_FRAME = 64 * 1024


def kcat_steps(client, boot, group, mock):
    def k(*a, stdin=None, check=True, timeout=30):
        try:
            return run(["kcat", "-b", boot, "-X", "client.id=kafka-sansio-capture"] + list(a),
                       client, stdin=stdin, check=check, timeout=timeout)
        except subprocess.TimeoutExpired:
            log("timed out (expected for a client that cannot talk to this broker)")
            return None

    if client.endswith("-scram"):
        # SASL/SCRAM-SHA-256 with a user tansu does not know (its memory
        # store cannot be given users while authentication is on): records
        # SaslHandshake and the first SaslAuthenticate round and its error.
        k("-L", "-m", "2", "-X", "security.protocol=SASL_PLAINTEXT",
          "-X", "sasl.mechanisms=SCRAM-SHA-256", "-X", "sasl.username=alice",
          "-X", "sasl.password=alice-secret", check=False, timeout=6)
        return
    if client.endswith("-acks0"):
        # acks=0: real Kafka sends no Produce response; the mock does.
        lines = b"".join(b"key-%d\tvalue-%d\n" % (i, i) for i in range(3))
        k("-P", "-t", SNAP_TOPIC, "-p", "0", "-K", "\t", "-X", "acks=0", stdin=lines)
        return
    if not mock and client == "kcat-2.0.2":
        # Debian's kcat cannot read tansu's ApiVersions v3 answer: record the
        # attempt, which is worth a snapshot of its own.
        k("-L", "-m", "3", check=False, timeout=8)
        return
    k("-L")
    lines = b"".join(b"key-%d\tvalue-%d\n" % (i, i) for i in range(3))
    k("-P", "-t", SNAP_TOPIC, "-p", "0", "-K", "\t", "-H", "h=1", stdin=lines)
    k("-C", "-t", SNAP_TOPIC, "-p", "0", "-o", "beginning", "-e", "-q")
    k("-G", group, SNAP_TOPIC, "-e", "-q", "-X", "auto.offset.reset=earliest",
      "-X", "heartbeat.interval.ms=200", "-X", "session.timeout.ms=6000", timeout=40)


def py_steps(client, boot, group, mock):
    def p(*a, check=True, timeout=60):
        try:
            return py_client(client, boot, *a, check=check, timeout=timeout)
        except subprocess.TimeoutExpired:
            log("timed out (expected for a client that cannot talk to this broker)")
            return None

    if mock and client.startswith("kafka-python"):
        # kafka-python 3.0.12 sends ApiVersions v4 and cannot read the mock's
        # error answer: record the attempt.
        p("offsets", SNAP_TOPIC, check=False, timeout=5)
        return
    if client.endswith("-faults"):
        # The mock fails the first requests of some APIs (FAULTS); the client
        # retries. Kept: the error responses (first of each API/version).
        p("produce", SNAP_TOPIC)
        p("consume", SNAP_TOPIC, group, check=False, timeout=40)
        return
    if client.endswith("-admin"):
        # Admin calls beyond CreateTopics, on a topic and group with data.
        p("admin", SNAP_TOPIC)
        p("produce", SNAP_TOPIC)
        p("consume", SNAP_TOPIC, group)
        p("admin-extra", SNAP_TOPIC, group, timeout=120)
        return
    if client.endswith("-api0.10.2"):
        # Pinned to Kafka 0.10.2: Produce v2 carrying a legacy MessageSet v1
        # (magic 1). tansu never answers it; record the request.
        p("admin", SNAP_TOPIC)
        p("produce", SNAP_TOPIC, check=False, timeout=6)
        return
    pinned = "-api" in client
    if not mock:
        p("admin", SNAP_TOPIC)
    p("produce", SNAP_TOPIC)
    p("offsets", SNAP_TOPIC)
    # Pinned to old versions, kafka-python's consumer gets nothing from tansu.
    p("consume", SNAP_TOPIC, group, check=not pinned, timeout=30)


def select_exchanges(exchanges):
    """Keep the data small: the first exchange of every (api, version), the
    first acks=0 Produce, every SaslAuthenticate round of the first
    connection that authenticates, and for Produce and Fetch also the one with the
    largest frames (the one that carries records). Frames over MAX_FRAME are
    skipped."""
    keep = set()
    first = {}
    largest = {}
    sasl_conn = None
    for i, ex in enumerate(exchanges):
        if ex["key"] == 36:  # SaslAuthenticate: every round of one connection
            if sasl_conn is None:
                sasl_conn = ex["conn"]
            if ex["conn"] == sasl_conn:
                keep.add(i)
        size = max(len(ex["request"]), len(ex["response"] or b""))
        if size > MAX_FRAME:
            continue
        kv = (ex["key"], ex["ver"])
        first.setdefault(kv, i)
        if ex["key"] == 0 and kf.parse_produce_request(ex["request"])[1] == 0:
            first.setdefault(kv + ("acks0",), i)
        if ex["key"] in (0, 1):
            rsize = len(ex["response"] or b"") + len(ex["request"])
            if kv not in largest or rsize > largest[kv][0]:
                largest[kv] = (rsize, i)
    keep.update(first.values())
    keep.update(i for _s, i in largest.values())
    return [ex for i, ex in enumerate(exchanges) if i in keep]


def capture_snapshots(out_dir, logs, only=None):
    sessions = [
        ("mock-2.0.2", "kcat-2.0.2", 3),
        ("mock-2.0.2", "confluent-kafka-2.16.1", 1),
        ("mock-2.0.2", "kafka-python-3.0.12", 1),
        ("mock-2.0.2", "kcat-2.0.2-acks0", 1),
        ("mock-2.16", "kcat-2.16", 3),
        ("mock-2.16", "confluent-kafka-2.16.1", 1),
        ("mock-2.16", "kafka-python-3.0.12", 1),
        ("mock-2.16", "confluent-kafka-2.16.1-faults", 1),
        ("tansu-0.6.0", "kcat-2.0.2", 1),
        ("tansu-0.6.0", "kcat-2.16", 1),
        ("tansu-0.6.0", "kcat-2.16-acks0", 1),
        ("tansu-0.6.0-auth", "kcat-2.16-scram", 1),
        ("tansu-0.6.0", "confluent-kafka-2.16.1", 1),
        ("tansu-0.6.0", "kafka-python-3.0.12", 1),
        ("tansu-0.6.0", "confluent-kafka-2.16.1-admin", 1),
        ("tansu-0.6.0", "kafka-python-3.0.12-admin", 1),
        ("tansu-0.6.0", "kafka-python-3.0.12-api1.0", 1),
        ("mock-2.0.2", "kafkajs-2.2.4", 1),
        ("tansu-0.6.0", "kafkajs-2.2.4", 1),
        ("tansu-0.6.0", "kafka-python-3.0.12-api0.10.2", 1),
    ]
    rows = []
    manifest = os.path.join(out_dir, "manifest.tsv")
    kept = {}
    if only and os.path.exists(manifest):
        # Re-capture some sessions only: keep the other sessions' rows.
        with open(manifest) as f:
            next(f)
            for line in f:
                vals = line.rstrip("\n").split("\t")
                r = dict(zip(MANIFEST_COLUMNS, vals))
                kept.setdefault((r["peer"], r["client"]), []).append(r)
    for n, (peer, client, brokers) in enumerate(sessions):
        if only and "%s/%s" % (peer, client) not in only:
            rows += kept.get((peer, client), [])
            continue
        kframes = os.path.join(logs, "snap_%s_%s.kframes" % (peer, client))
        group = "grp-%s-%d-%d" % (client, n, int(time.time()))
        log("=== %s x %s" % (peer, client))
        mock = peer.startswith("mock")
        with session(peer, kframes, ["%s:1" % SNAP_TOPIC] if mock else (), brokers) as (boot, m):
            if client.endswith("-faults"):
                for line in FAULTS:
                    m.cmd(line)
            if client.startswith("kcat"):
                kcat_steps(client, boot, group, mock)
            else:
                py_steps(client, boot, group, mock)
        exs = kf.pair_frames(kf.read_frame_log(kframes))
        sub = os.path.join(out_dir, peer, client)
        shutil.rmtree(sub, ignore_errors=True)
        got, _ = kf.write_snapshots(select_exchanges(exs), sub, peer, client, lambda ex: True)
        for r in got:
            r["file"] = "%s/%s/%s" % (peer, client, r["file"])
        rows += got
        log("%s x %s: %d exchanges seen, %d files kept" % (peer, client, len(exs), len(got)))
    with open(manifest, "w") as f:
        f.write("\t".join(MANIFEST_COLUMNS) + "\n")
        for r in rows:
            f.write("\t".join(str(r[c]) for c in MANIFEST_COLUMNS) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["records", "snapshots"])
    ap.add_argument("--out")
    ap.add_argument("--keep-logs")
    ap.add_argument("--only", action="append",
                    help="snapshots: re-capture only PEER/CLIENT; records: only CLIENT "
                         "(or 'legacy'); repeatable")
    args = ap.parse_args()
    logs = args.keep_logs or tempfile.mkdtemp(prefix="capture-logs.")
    os.makedirs(logs, exist_ok=True)
    if args.what == "records":
        capture_records(args.out or os.path.join(REPO, "tests", "data", "records"), logs,
                        args.only)
    else:
        capture_snapshots(args.out or os.path.join(REPO, "tests", "data", "snapshots"), logs,
                          args.only)
    if not args.keep_logs:
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
