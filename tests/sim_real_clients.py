#!/usr/bin/env python3
"""Real Python Kafka clients against the simulated cluster (tests/sim_real_clients.rs).

    sim_real_clients.py CLIENT BOOTSTRAP ACTION [ARG...]

CLIENT is `confluent` (confluent-kafka, librdkafka inside) or `kafka-python`.

Actions (binary data travels as hex; `-` is null):
  create TOPIC PARTITIONS REPLICATION
        create the topic with the admin client, then list topics; prints
        `topic NAME PARTITION_COUNT` for every topic listed, then
        `partition NAME INDEX LEADER` for each of its partitions
  produce TOPIC MODE
        stdin: `PARTITION CODEC HEXKEY HEXVALUE` lines; one producer per codec
        (MODE: `idempotent` = enable.idempotence with acks=all, or `acks1`);
        prints `PARTITION OFFSET` per input line, in input order
  produce-paced TOPIC PARTITION COUNT PACE_MS
        (both clients) an idempotent producer (acks=all) sends values `record-I` one at a
        time PACE_MS apart; prints `started` once the first is delivered (so
        the caller can inject a fault), then `PARTITION OFFSET` per record
  consume-past-hw TOPIC
        (confluent) produces one record with acks=1, assigns a consumer
        (auto.offset.reset=earliest) right after it, produces a second record
        with acks=all and prints the offsets the consumer reads until it has
        the second one
  consume-across-crash TOPIC
        (both clients) produces 100 records (acks=all) to partition 0, reads
        30 with an assigned consumer (offset resets disabled), prints
        `reached` and waits for a line on stdin (the caller crashes the leader
        meanwhile), produces 100 more and reads on until it has all 200;
        prints `OFFSET VALUE` per record read
  group TOPIC GROUP
        (both clients) a consumer group: 100 records (keys k0..k99) produced
        over the topic's partitions; consumer c1 subscribes, reads all 100 and
        commits; c2 subscribes and the group rebalances until each holds a
        disjoint share of the partitions; 100 more records are produced and
        read by whichever consumer owns their partition; both commit and
        leave. Prints `assign C P,P,...` per consumer and `C PARTITION OFFSET
        VALUE` per record read
  consume TOPIC PARTITION:OFFSET:COUNT...
        assign the partitions at those offsets (no consumer group rebalance),
        CRC checks on, read COUNT records from each; prints
        `PARTITION OFFSET HEXKEY HEXVALUE` sorted by partition and offset; then
        commits OFFSET+COUNT for each partition as group `sim-real-clients`
        (OffsetCommit), reads the commits back (OffsetFetch) and prints
        `committed PARTITION OFFSET` for each
  transactions TOPIC
        (both clients) a transactional producer writes four transactions of three
        records to partition 0: committed, aborted, committed, and one left
        open; then a read_committed and a read_uncommitted consumer read from
        offset 0. Prints `LEVEL END OFFSET:VALUE...` per consumer, END being the
        end offset ListOffsets gives at that isolation level; exits without
        ending the open transaction
  read-transactions TOPIC COMMITTED UNCOMMITTED
        (both clients) only the reading half of `transactions`, of what another
        producer wrote, expecting so many records at each level

Exits non-zero with a message on stderr when anything fails or times out.
"""

import os
import sys
import time

TIMEOUT = 15.0


def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def read_records():
    rows = []
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        part, codec, key, value = line.split(" ")
        rows.append((int(part), codec, unhex(key), unhex(value)))
    return rows


def unhex(text):
    return None if text == "-" else bytes.fromhex(text)


def dash_hex(data):
    return "-" if data is None else data.hex()


def parse_assignments(specs):
    out = []
    for s in specs:
        p, o, n = s.split(":")
        out.append((int(p), int(o), int(n)))
    return out


def print_consumed(got):
    for (p, o), (k, v) in sorted(got.items()):
        print(p, o, dash_hex(k), dash_hex(v))


def across_crash(topic, produce, poll, assign, close):
    produce(0)
    assign()
    got = []
    deadline = time.time() + TIMEOUT
    while len(got) < 30:
        if time.time() > deadline:
            die("read only %d records before the crash" % len(got))
        got += poll()
    print("reached", flush=True)
    sys.stdin.readline()
    produce(100)
    deadline = time.time() + TIMEOUT
    while len(got) < 200:
        if time.time() > deadline:
            die("read only %d records across the crash" % len(got))
        got += poll()
    close()
    for o, v in got:
        print(o, v.decode())


def group_scenario(make_consumer, poll, assignment, commit, produce):
    produce(0)
    c1 = make_consumer("c1")
    got = []
    deadline = time.time() + TIMEOUT
    while len(got) < 100:
        if time.time() > deadline:
            die("c1 read only %d of 100 (assigned %s)" % (len(got), assignment(c1)))
        got += [("c1",) + r for r in poll(c1)]
    commit(c1)
    c2 = make_consumer("c2")
    deadline = time.time() + TIMEOUT
    steady = 0
    while steady < 5:
        if time.time() > deadline:
            die("no balanced assignment: c1 %s c2 %s" % (assignment(c1), assignment(c2)))
        more = [("c1",) + r for r in poll(c1)] + [("c2",) + r for r in poll(c2)]
        if more:
            die("read records no one produced: %s" % more)
        a1, a2 = assignment(c1), assignment(c2)
        steady = steady + 1 if a1 and a2 and not (a1 & a2) else 0
    produce(100)
    deadline = time.time() + TIMEOUT
    while len(got) < 200:
        if time.time() > deadline:
            die("read only %d of 200" % len(got))
        got += [("c1",) + r for r in poll(c1)] + [("c2",) + r for r in poll(c2)]
    print("assign c1", ",".join(map(str, sorted(assignment(c1)))))
    print("assign c2", ",".join(map(str, sorted(assignment(c2)))))
    commit(c1)
    commit(c2)
    c1.close()
    c2.close()
    for who, p, o, v in got:
        print(who, p, o, v.decode())


def read_until(poll, want):
    """`OFFSET:VALUE` of each record `poll` returns until there are `want`, then
    for half a second more (whatever else comes is a record too many)."""
    got = []
    deadline = time.time() + TIMEOUT
    settle = None
    while time.time() < (settle or deadline):
        got.extend("%d:%s" % (o, v.decode()) for o, v in poll())
        if settle is None and len(got) >= want:
            settle = time.time() + 0.5
    return got


def transactions_scenario(begin, send, commit, abort, flush, read):
    """Four transactions of three records (committed, aborted, committed, left
    open), then `read` at each isolation level; exits without ending the open
    one."""
    for n, outcome in enumerate(["commit", "abort", "commit", "open"]):
        begin()
        for i in range(3):
            send(b"txn-%d" % n, b"%s-%d-%d" % (outcome.encode(), n, i))
        if outcome == "commit":
            commit()
        elif outcome == "abort":
            # Written first, so that the log holds what the abort must hide (an
            # abort drops records still waiting to be sent).
            flush()
            abort()
        else:
            flush()
    read_both(read, 6, 12)


def read_both(read, committed, uncommitted):
    """`read` at each isolation level (expecting so many records), printed as
    `LEVEL END OFFSET:VALUE...`; then exits (a producer's open transaction is
    left as it is)."""
    for level, want in (("read_committed", committed), ("read_uncommitted", uncommitted)):
        end, got = read(level, want)
        print(level, end, *got)
    sys.stdout.flush()
    os._exit(0)


# -------------------------------------------------------- confluent-kafka --

def confluent_poll(c):
    """[(offset, value)] of the record a confluent-kafka consumer polls within
    0.1 s, if one comes; any error ends the script."""
    m = c.poll(0.1)
    if m is None:
        return []
    if m.error():
        die("consume error: %s" % m.error())
    return [(m.offset(), m.value())]


def confluent(boot, action, args):
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, NewTopic

    base = {"bootstrap.servers": boot, "client.id": "sim-real-clients"}
    if action == "create":
        topic, parts, repl = args[0], int(args[1]), int(args[2])
        a = AdminClient(base)
        for t, f in a.create_topics([NewTopic(topic, num_partitions=parts,
                                              replication_factor=repl)],
                                    operation_timeout=10).items():
            f.result(timeout=TIMEOUT)
        md = a.list_topics(timeout=TIMEOUT)
        for name, t in sorted(md.topics.items()):
            if t.error is not None:
                die("list_topics: %s: %s" % (name, t.error))
            print("topic", name, len(t.partitions))
            for i, pm in sorted(t.partitions.items()):
                print("partition", name, i, pm.leader)
    elif action == "produce":
        topic, mode = args
        rows = read_records()
        offsets = [None] * len(rows)
        errors = []
        for codec in sorted({r[1] for r in rows}):
            conf = dict(base, **{"compression.codec": codec, "linger.ms": 20})
            if mode == "idempotent":
                conf.update({"enable.idempotence": True, "acks": "all"})
            else:
                conf.update({"enable.idempotence": False, "acks": "1"})
            p = ck.Producer(conf)
            for i, (part, c, k, v) in enumerate(rows):
                if c != codec:
                    continue

                def dr(err, msg, i=i):
                    if err:
                        errors.append(err)
                    else:
                        offsets[i] = (msg.partition(), msg.offset())
                p.produce(topic, key=k, value=v, partition=part, on_delivery=dr)
            if p.flush(TIMEOUT):
                die("flush timed out (%s)" % codec)
        if errors:
            die("delivery errors: %s" % errors)
        for o in offsets:
            print(*o)
    elif action == "produce-paced":
        topic, part, count, pace = args[0], int(args[1]), int(args[2]), int(args[3])
        p = ck.Producer(dict(base, **{"enable.idempotence": True, "acks": "all",
                                      "linger.ms": 0, "retry.backoff.ms": 20}))
        offsets = [None] * count
        errors = []

        def dr(err, msg):
            if err:
                errors.append(err)
            else:
                offsets[int(msg.value().split(b"-")[1])] = (msg.partition(), msg.offset())
        for i in range(count):
            p.produce(topic, value=b"record-%d" % i, partition=part, on_delivery=dr)
            time.sleep(pace / 1000.0)
            p.poll(0)
            if i == 0:
                if p.flush(TIMEOUT):
                    die("first record not delivered")
                print("started", flush=True)
        if p.flush(TIMEOUT):
            die("flush timed out")
        if errors:
            die("delivery errors: %s" % errors)
        for o in offsets:
            print(*o)
    elif action == "consume-past-hw":
        (topic,) = args
        delivered = []

        def produce(acks, value):
            p = ck.Producer(dict(base, **{"acks": acks, "enable.idempotence": False}))
            p.produce(topic, value=value, partition=0,
                      on_delivery=lambda err, m: delivered.append(err or m.offset()))
            if p.flush(TIMEOUT):
                die("flush timed out")
            if not isinstance(delivered[-1], int):
                die("delivery failed: %s" % delivered[-1])
            return delivered[-1]
        first = produce("1", b"unreplicated")
        c = ck.Consumer(dict(base, **{
            "group.id": "sim-real-clients", "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100}))
        c.assign([ck.TopicPartition(topic, 0, first + 1)])
        got = []
        end = time.time() + 0.5
        while time.time() < end:
            m = c.poll(0.1)
            if m is not None and not m.error():
                got.append(m.offset())
        second = produce("all", b"next")
        deadline = time.time() + TIMEOUT
        while second not in got:
            if time.time() > deadline:
                die("never read offset %d; read %s" % (second, got))
            m = c.poll(0.1)
            if m is not None and not m.error():
                got.append(m.offset())
        c.close()
        print(*got)
    elif action == "consume-across-crash":
        (topic,) = args
        p = ck.Producer(dict(base, acks="all"))
        c = ck.Consumer(dict(base, **{
            "group.id": "sim-real-clients", "enable.auto.commit": False,
            "auto.offset.reset": "error", "check.crcs": True,
            "fetch.wait.max.ms": 50, "fetch.message.max.bytes": 300}))

        def produce(first):
            for i in range(first, first + 100):
                p.produce(topic, value=b"r%d" % i, partition=0)
            if p.flush(TIMEOUT):
                die("flush timed out")

        across_crash(topic, produce, lambda: confluent_poll(c),
                     lambda: c.assign([ck.TopicPartition(topic, 0, 0)]), c.close)
    elif action in ("transactions", "read-transactions"):
        topic = args[0]

        def read(level, want):
            c = ck.Consumer(dict(base, **{
                "group.id": "sim-real-clients-tx", "enable.auto.commit": False,
                "isolation.level": level, "fetch.wait.max.ms": 50, "check.crcs": True}))
            c.assign([ck.TopicPartition(topic, 0, 0)])
            got = read_until(lambda: confluent_poll(c), want)
            _, end = c.get_watermark_offsets(ck.TopicPartition(topic, 0), timeout=TIMEOUT,
                                             cached=False)
            c.close()
            return end, got
        if action == "read-transactions":
            read_both(read, int(args[1]), int(args[2]))
        p = ck.Producer(dict(base, **{
            "transactional.id": "sim-real-clients-tx", "transaction.timeout.ms": 60000,
            "linger.ms": 5}))
        p.init_transactions(TIMEOUT)

        def flush():
            if p.flush(TIMEOUT):
                die("flush timed out")
        transactions_scenario(
            p.begin_transaction,
            lambda k, v: p.produce(topic, key=k, value=v, partition=0),
            lambda: p.commit_transaction(TIMEOUT), lambda: p.abort_transaction(TIMEOUT),
            flush, read)
    elif action == "group":
        topic, group = args
        p = ck.Producer(dict(base, acks="all"))

        def produce(first):
            for i in range(first, first + 100):
                p.produce(topic, key=b"k%d" % i, value=b"v%d" % i)
            if p.flush(TIMEOUT):
                die("flush timed out")

        def make_consumer(name):
            c = ck.Consumer(dict(base, **{
                "client.id": name, "group.id": group, "auto.offset.reset": "earliest",
                "enable.auto.commit": False, "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 200, "fetch.wait.max.ms": 50}))
            c.subscribe([topic])
            return c

        def poll(c):
            m = c.poll(0.05)
            if m is None:
                return []
            if m.error():
                die("consume error: %s" % m.error())
            return [(m.partition(), m.offset(), m.value())]

        def commit(c):
            try:
                c.commit(asynchronous=False)
            except ck.KafkaException as e:
                if e.args[0].code() != ck.KafkaError._NO_OFFSET:
                    die("commit: %s" % e)
        group_scenario(make_consumer, poll,
                       lambda c: {tp.partition for tp in c.assignment()}, commit, produce)
    elif action == "consume":
        topic, specs = args[0], parse_assignments(args[1:])
        # librdkafka's consumer needs a group id even when it only assigns.
        c = ck.Consumer(dict(base, **{
            "group.id": "sim-real-clients", "enable.auto.commit": False,
            "check.crcs": True, "fetch.wait.max.ms": 100}))
        c.assign([ck.TopicPartition(topic, p, o) for p, o, _ in specs])
        want = {p: n for p, _, n in specs}
        got = {}
        deadline = time.time() + TIMEOUT
        while any(sum(1 for (p, _) in got if p == q) < n for q, n in want.items()):
            if time.time() > deadline:
                die("consume timed out with %d records" % len(got))
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                die("consume error: %s" % m.error())
            got[(m.partition(), m.offset())] = (m.key(), m.value())
        # Commit the next offsets (OffsetCommit) and read them back (OffsetFetch).
        ends = [ck.TopicPartition(topic, p, o + n) for p, o, n in specs]
        for tp in c.commit(offsets=ends, asynchronous=False):
            if tp.error:
                die("commit: %s" % tp.error)
        committed = c.committed([ck.TopicPartition(topic, p) for p, _, _ in specs],
                                timeout=TIMEOUT)
        c.close()
        print_consumed(got)
        for tp in committed:
            if tp.error:
                die("committed: %s" % tp.error)
            print("committed", tp.partition, tp.offset)
    else:
        die("unknown action " + action)


# ----------------------------------------------------------- kafka-python --

def kafka_python(boot, action, args):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic

    base = {"bootstrap_servers": boot.split(","), "client_id": "sim-real-clients"}
    if action == "create":
        topic, parts, repl = args[0], int(args[1]), int(args[2])
        a = KafkaAdminClient(**base)
        r = a.create_topics([NewTopic(topic, parts, repl)], timeout_ms=10000)
        errors = [t for t in getattr(r, "topic_errors", []) if t[1] != 0]
        if errors:
            die("create_topics: %s" % errors)
        names = a.list_topics()
        described = {t["name"]: t for t in a.describe_topics(names)}
        for name in sorted(names):
            t = described[name]
            if t["error_code"] != 0:
                die("describe_topics: %s: error %s" % (name, t["error_code"]))
            print("topic", name, len(t["partitions"]))
            for pm in sorted(t["partitions"], key=lambda pm: pm["partition_index"]):
                print("partition", name, pm["partition_index"], pm["leader_id"])
        a.close()
    elif action == "produce":
        topic, mode = args
        rows = read_records()
        offsets = [None] * len(rows)
        for codec in sorted({r[1] for r in rows}):
            conf = dict(base, compression_type=None if codec == "none" else codec,
                        linger_ms=20)
            if mode == "idempotent":
                conf.update(enable_idempotence=True, acks="all")
            else:
                conf.update(enable_idempotence=False, acks=1)
            p = KafkaProducer(**conf)
            futs = [(i, p.send(topic, key=k, value=v, partition=part))
                    for i, (part, c, k, v) in enumerate(rows) if c == codec]
            p.flush(TIMEOUT)
            for i, f in futs:
                md = f.get(timeout=TIMEOUT)
                offsets[i] = (md.partition, md.offset)
            p.close()
        for o in offsets:
            print(*o)
    elif action == "produce-paced":
        topic, part, count, pace = args[0], int(args[1]), int(args[2]), int(args[3])
        p = KafkaProducer(**base, acks="all", enable_idempotence=True, linger_ms=0,
                          retry_backoff_ms=20)
        futs = []
        for i in range(count):
            futs.append(p.send(topic, value=b"record-%d" % i, partition=part))
            if i == 0:
                futs[0].get(timeout=TIMEOUT)
                print("started", flush=True)
            time.sleep(pace / 1000.0)
        p.flush(TIMEOUT)
        offsets = [f.get(timeout=TIMEOUT) for f in futs]
        p.close()
        for md in offsets:
            print(md.partition, md.offset)
    elif action == "consume-across-crash":
        (topic,) = args
        p = KafkaProducer(**base, acks="all")
        c = KafkaConsumer(**base, enable_auto_commit=False, auto_offset_reset="none",
                          check_crcs=True, fetch_max_wait_ms=50,
                          max_partition_fetch_bytes=300)
        tp = TopicPartition(topic, 0)

        def produce(first):
            for i in range(first, first + 100):
                p.send(topic, value=b"r%d" % i, partition=0)
            p.flush(TIMEOUT)

        def assign():
            c.assign([tp])
            c.seek(tp, 0)
        across_crash(topic, produce,
                     lambda: [(m.offset, m.value) for ms in c.poll(100).values() for m in ms],
                     assign, c.close)
    elif action == "group":
        topic, group = args
        p = KafkaProducer(**base, acks="all")

        def produce(first):
            for i in range(first, first + 100):
                p.send(topic, key=b"k%d" % i, value=b"v%d" % i)
            p.flush(TIMEOUT)

        def make_consumer(name):
            conf = dict(base, client_id=name)
            c = KafkaConsumer(**conf, group_id=group, auto_offset_reset="earliest",
                              enable_auto_commit=False, session_timeout_ms=6000,
                              heartbeat_interval_ms=200, fetch_max_wait_ms=50)
            # Subscribe once the topic's metadata is known: kafka-python 3.0.12 joins
            # right away otherwise, then rejoins from two threads at once when the
            # metadata arrives, and under load can lose the second join's result
            # (it never applies the SyncGroup answer it received).
            if not c.partitions_for_topic(topic):
                die("no metadata for %s" % topic)
            c.subscribe([topic])
            return c

        def poll(c):
            return [(m.partition, m.offset, m.value)
                    for ms in c.poll(100).values() for m in ms]
        group_scenario(make_consumer, poll,
                       lambda c: {tp.partition for tp in c.assignment()},
                       lambda c: c.commit(), produce)
    elif action in ("transactions", "read-transactions"):
        topic = args[0]
        tp = TopicPartition(topic, 0)

        def read(level, want):
            c = KafkaConsumer(**base, group_id=None, enable_auto_commit=False,
                              isolation_level=level, check_crcs=True, fetch_max_wait_ms=50)
            c.assign([tp])
            c.seek(tp, 0)
            got = read_until(
                lambda: [(m.offset, m.value) for ms in c.poll(100).values() for m in ms], want)
            end = c.end_offsets([tp])[tp]
            c.close()
            return end, got
        if action == "read-transactions":
            read_both(read, int(args[1]), int(args[2]))
        p = KafkaProducer(**base, transactional_id="sim-real-clients-tx",
                          transaction_timeout_ms=60000, linger_ms=5)
        p.init_transactions()
        transactions_scenario(
            p.begin_transaction, lambda k, v: p.send(topic, key=k, value=v, partition=0),
            p.commit_transaction, p.abort_transaction, p.flush, read)
    elif action == "consume":
        topic, specs = args[0], parse_assignments(args[1:])
        c = KafkaConsumer(**base, group_id="sim-real-clients", enable_auto_commit=False,
                          check_crcs=True, fetch_max_wait_ms=100)
        tps = {p: TopicPartition(topic, p) for p, _, _ in specs}
        c.assign(list(tps.values()))
        for p, o, _ in specs:
            c.seek(tps[p], o)
        want = {p: n for p, _, n in specs}
        got = {}
        deadline = time.time() + TIMEOUT
        while any(sum(1 for (p, _) in got if p == q) < n for q, n in want.items()):
            if time.time() > deadline:
                die("consume timed out with %d records" % len(got))
            for _tp, msgs in c.poll(200).items():
                for m in msgs:
                    got[(m.partition, m.offset)] = (m.key, m.value)
        # Commit the next offsets (OffsetCommit) and read them back (OffsetFetch).
        from kafka.structs import OffsetAndMetadata
        c.commit({tps[p]: OffsetAndMetadata(o + n, "", -1) for p, o, n in specs})
        committed = [(p, c.committed(tps[p])) for p, _, _ in specs]
        c.close()
        print_consumed(got)
        for p, o in committed:
            print("committed", p, o)
    else:
        die("unknown action " + action)


def main():
    if len(sys.argv) < 4:
        die(__doc__)
    client, boot, action, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    if client == "confluent":
        confluent(boot, action, args)
    elif client == "kafka-python":
        kafka_python(boot, action, args)
    else:
        die("unknown client " + client)


if __name__ == "__main__":
    main()
