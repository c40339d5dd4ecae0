#!/usr/bin/env python3
"""A recording TCP proxy for Kafka: forwards bytes unchanged and logs frames.

    record_proxy.py --upstream HOST:PORT --out FILE.kframes [--listen PORT]

Listens on 127.0.0.1:PORT (a free port if not given), prints
"127.0.0.1:PORT" as its first stdout line once listening, and for every client
connection opens one to the upstream broker and copies bytes both ways as they
arrive. Independently of the forwarding, it cuts each direction into Kafka
frames (4-byte size prefix) and appends them to FILE.kframes (format in
kafka_frames.py): kind 0 = request (client -> broker), 1 = response.
SIGTERM/SIGINT or EOF on stdin stops it.

The rewriting problem, and why this proxy never rewrites: a Kafka client
connects to the bootstrap address, asks for Metadata, and then connects to
each broker at the host:port the broker *advertises* -- which bypasses a
proxy that sits only on the bootstrap address. Rewriting the advertised
addresses inside Metadata/FindCoordinator responses would keep the client on
the proxy but change the very bytes we want to record (and their lengths).
Instead we make the broker advertise the proxy: start the broker listening on
a private port P and advertising the proxy's port Q, and run this proxy on Q
forwarding to P. tansu takes both (start_tansu.sh PORT ADVERTISED_PORT), so
every connection of every client goes through the proxy and every recorded
byte is the broker's own. librdkafka's mock cluster picks its own ports and
advertises them, so for it the capture script records with tcpdump on the
loopback interface instead (same frame log, via kafka_frames.pcap2frames),
which also sees all brokers of a multi-broker cluster.
"""

import argparse
import os
import selectors
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafka_frames import REQUEST, RESPONSE, CONNINFO, FrameLogWriter, FrameSplitter  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, help="broker HOST:PORT")
    ap.add_argument("--out", required=True, help="frame log to write")
    ap.add_argument("--listen", type=int, default=0, help="port on 127.0.0.1")
    args = ap.parse_args()
    up_host, up_port = args.upstream.rsplit(":", 1)
    up_port = int(up_port)

    log = FrameLogWriter(args.out)
    sel = selectors.DefaultSelector()
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", args.listen))
    lsock.listen(64)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, ("listen", None))
    stdin_open = not sys.stdin.isatty()
    if stdin_open:
        try:
            sel.register(sys.stdin, selectors.EVENT_READ, ("stdin", None))
        except (ValueError, PermissionError, OSError):
            stdin_open = False  # /dev/null and files cannot be selected on

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    print("127.0.0.1:%d" % lsock.getsockname()[1], flush=True)

    next_conn = 0
    # sock -> dict(peer=sock, conn=id, kind=REQUEST|RESPONSE, split=FrameSplitter, out=bytearray)
    pipes = {}

    def close_pair(s):
        p = pipes.pop(s, None)
        if p is None:
            return
        other = p["peer"]
        for x in (s, other):
            try:
                sel.unregister(x)
            except (KeyError, ValueError):
                pass
            try:
                x.close()
            except OSError:
                pass
        pipes.pop(other, None)

    while not stop:
        for key, events in sel.select(timeout=0.2):
            what, _ = key.data
            s = key.fileobj
            if what == "listen":
                try:
                    c, _addr = lsock.accept()
                except BlockingIOError:
                    continue
                try:
                    u = socket.create_connection((up_host, up_port), timeout=5)
                except OSError as e:
                    print("record_proxy: upstream %s: %s" % (args.upstream, e), file=sys.stderr)
                    c.close()
                    continue
                for x in (c, u):
                    x.setblocking(False)
                    x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                cid = next_conn
                next_conn += 1
                log.write(CONNINFO, cid, time.time(),
                          ("%s:%d %s:%d" % (c.getpeername() + u.getpeername())).encode())
                pipes[c] = dict(peer=u, conn=cid, kind=REQUEST, split=FrameSplitter())
                pipes[u] = dict(peer=c, conn=cid, kind=RESPONSE, split=FrameSplitter())
                sel.register(c, selectors.EVENT_READ, ("sock", None))
                sel.register(u, selectors.EVENT_READ, ("sock", None))
            elif what == "stdin":
                if not sys.stdin.readline():
                    stop.append(1)
                    sel.unregister(sys.stdin)
            else:
                p = pipes.get(s)
                if p is None:
                    continue
                try:
                    data = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    close_pair(s)
                    continue
                now = time.time()
                # Forward first, then record: the recording never delays or
                # alters what the other side sees. The write is blocking so
                # bytes are never reordered or dropped.
                dst = p["peer"]
                dst.setblocking(True)
                try:
                    dst.sendall(data)
                except OSError:
                    close_pair(s)
                    continue
                finally:
                    try:
                        dst.setblocking(False)
                    except OSError:
                        pass
                try:
                    for frame in p["split"].feed(data):
                        log.write(p["kind"], p["conn"], now, frame)
                except ValueError as e:
                    print("record_proxy: conn %d: %s" % (p["conn"], e), file=sys.stderr)
    log.close()


if __name__ == "__main__":
    main()
