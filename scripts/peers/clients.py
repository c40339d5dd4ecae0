#!/usr/bin/env python3
"""Drive real Python Kafka clients through fixed scenarios (for captures).

    clients.py confluent|kafka-python BOOTSTRAP SCENARIO [ARG...]

Scenarios:
  records CODEC TOPIC    produce RECORDS (below) to TOPIC partition 0 as one
                         batch with the codec, then flush
  admin TOPIC...         create topics (1 partition) with the admin client
  produce TOPIC          idempotent producer (confluent), a few records
  consume TOPIC GROUP    consumer group: join, fetch to the end, commit, leave
  offsets TOPIC          ListOffsets: earliest/latest watermarks

The same record set is used by every client and codec so the decoded
batches can be compared across clients (see tests/data/records/README.md).
"""

import os
import sys
import time

# (key, value, headers, timestamp offset ms): keys and values may be None,
# header keys repeat, and one header value is None.
BASE_TS = 1700000000000
RECORDS = [
    (b"key-0", b"value-0", [("h1", b"a"), ("h1", b"b"), ("hnull", None)], 0),
    (None, b"value with a null key", [("h1", b"c")], 1),
    (b"key-2", None, [], 2),  # tombstone: null value
    (b"key-3", b"", [("empty", b"")], 3),  # empty, not null, value
    (b"key-4", b"repeat " * 20, [("h1", b"a"), ("h2", b"\x00\xff")], 250),
]


def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


# -------------------------------------------------------- confluent-kafka --

def confluent(boot, scenario, args):
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, NewTopic

    base = {"bootstrap.servers": boot, "client.id": "kafka-sansio-capture"}
    errors = []

    def dr(err, _msg):
        if err:
            errors.append(err)

    if scenario == "records":
        codec, topic = args
        p = ck.Producer(dict(base, **{
            "compression.codec": codec, "linger.ms": 200, "enable.idempotence": True,
            "acks": "all"}))
        for k, v, h, dt in RECORDS:
            p.produce(topic, key=k, value=v, headers=h, partition=0,
                      timestamp=BASE_TS + dt, on_delivery=dr)
        if p.flush(30):
            die("flush timed out")
    elif scenario == "admin":
        a = AdminClient(base)
        fs = a.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)
                              for t in args], operation_timeout=10)
        for t, f in fs.items():
            f.result()
        md = a.list_topics(timeout=10)
        print("topics:", sorted(md.topics), file=sys.stderr)
    elif scenario == "admin-extra":
        # Admin calls beyond CreateTopics; each is tried on its own and a
        # broker that refuses one does not stop the others.
        topic, group = args
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicCollection
        from confluent_kafka.admin import (ConfigResource, NewPartitions, OffsetSpec,
                                           ResourceType)
        a = AdminClient(base)
        tp = ck.TopicPartition(topic, 0)

        def attempt(name, fn):
            try:
                r = fn()
                if isinstance(r, dict):
                    r = {k: f.result(timeout=10) for k, f in r.items()}
                elif hasattr(r, "result"):
                    r = r.result(timeout=10)
                print("ok", name, repr(r)[:200], file=sys.stderr)
            except Exception as e:  # noqa: BLE001 -- report and go on
                print("failed", name, repr(e)[:300], file=sys.stderr)

        attempt("describe_cluster", lambda: a.describe_cluster(request_timeout=10))
        attempt("describe_topics", lambda: a.describe_topics(TopicCollection([topic]),
                                                             request_timeout=10))
        attempt("describe_configs", lambda: a.describe_configs(
            [ConfigResource(ResourceType.TOPIC, topic)], request_timeout=10))
        attempt("list_consumer_groups", lambda: a.list_consumer_groups(request_timeout=10))
        attempt("describe_consumer_groups", lambda: a.describe_consumer_groups(
            [group], request_timeout=10))
        attempt("list_consumer_group_offsets", lambda: a.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=10))
        attempt("list_offsets", lambda: a.list_offsets(
            {tp: OffsetSpec.earliest()}, request_timeout=10))
        attempt("list_offsets_ts", lambda: a.list_offsets(
            {tp: OffsetSpec.for_timestamp(BASE_TS)}, request_timeout=10))
        attempt("create_partitions", lambda: a.create_partitions(
            [NewPartitions(topic, 2)], request_timeout=10))
        attempt("delete_records", lambda: a.delete_records(
            [ck.TopicPartition(topic, 0, 1)], request_timeout=10))
        attempt("delete_consumer_groups", lambda: a.delete_consumer_groups(
            [group], request_timeout=10))
        attempt("delete_topics", lambda: a.delete_topics([topic], operation_timeout=10))
    elif scenario == "produce":
        (topic,) = args
        p = ck.Producer(dict(base, **{"enable.idempotence": True, "linger.ms": 50,
                                      "compression.codec": "none"}))
        for i in range(3):
            p.produce(topic, key=b"k%d" % i, value=b"v%d" % i, partition=0,
                      headers=[("h", b"x")], on_delivery=dr)
        if p.flush(30):
            die("flush timed out")
    elif scenario == "consume":
        topic, group = args
        c = ck.Consumer(dict(base, **{
            "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 100}))
        c.subscribe([topic])
        got = 0
        deadline = time.time() + 20
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                if got:
                    break
                continue
            if m.error():
                continue
            got += 1
        if not got:
            die("consumed nothing")
        # A synchronous commit, and a sleep long enough for a heartbeat.
        c.commit(asynchronous=False)
        time.sleep(1.2)
        c.committed([ck.TopicPartition(topic, 0)], timeout=10)
        c.close()
        print("consumed", got, file=sys.stderr)
    elif scenario == "offsets":
        (topic,) = args
        c = ck.Consumer(dict(base, **{"group.id": "offsets-probe"}))
        print("watermarks", c.get_watermark_offsets(ck.TopicPartition(topic, 0),
                                                   timeout=10, cached=False), file=sys.stderr)
        c.close()
    else:
        die("unknown scenario " + scenario)
    if errors:
        die("delivery errors: %s" % errors)


# ----------------------------------------------------------- kafka-python --

def kafka_python(boot, scenario, args):
    import kafka
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic

    base = {"bootstrap_servers": boot, "client_id": "kafka-sansio-capture"}
    # KAFKA_PYTHON_API_VERSION=0.11 pins the broker version kafka-python
    # assumes: it then skips ApiVersions and uses that era's (old) versions.
    pinned = os.environ.get("KAFKA_PYTHON_API_VERSION")
    if pinned:
        base["api_version"] = tuple(int(x) for x in pinned.split("."))
    if scenario == "records":
        codec, topic = args
        p = KafkaProducer(**base, compression_type=None if codec == "none" else codec,
                          linger_ms=200, acks="all")
        # kafka-python refuses a null header value: those headers are left out.
        # Pinned before Kafka 0.11 (legacy message sets) there are no headers;
        # before 0.10 (magic 0) no timestamps either.
        legacy = pinned and base["api_version"] < (0, 11)
        futs = [p.send(topic, key=k, value=v,
                       headers=None if legacy else [(hk, hv) for hk, hv in h if hv is not None],
                       partition=0,
                       timestamp_ms=None if pinned and base["api_version"] < (0, 10) else BASE_TS + dt)
                for k, v, h, dt in RECORDS]
        p.flush(30)
        for f in futs:
            f.get(timeout=10)
        p.close()
    elif scenario == "records-nowait":
        # For legacy formats that tansu never acknowledges: send, give the
        # request time to leave, and exit without waiting for an answer.
        codec, topic = args
        p = KafkaProducer(**base, compression_type=None if codec == "none" else codec,
                          linger_ms=50, acks=1, retries=0, enable_idempotence=False)
        ts_ok = base["api_version"] >= (0, 10)
        for k, v, _h, dt in RECORDS:
            p.send(topic, key=k, value=v, partition=0,
                   timestamp_ms=BASE_TS + dt if ts_ok else None)
        time.sleep(1.0)
        os._exit(0)  # no close(): it would wait for the answer that never comes
    elif scenario == "admin":
        a = KafkaAdminClient(**base)
        a.create_topics([NewTopic(t, 1, 1) for t in args], timeout_ms=10000)
        print("topics:", sorted(a.list_topics()), file=sys.stderr)
        a.close()
    elif scenario == "admin-extra":
        topic, group = args
        from kafka.admin import ConfigResource, ConfigResourceType
        a = KafkaAdminClient(**base)

        def attempt(name, fn):
            try:
                print("ok", name, repr(fn())[:200], file=sys.stderr)
            except Exception as e:  # noqa: BLE001 -- report and go on
                print("failed", name, repr(e)[:300], file=sys.stderr)

        attempt("describe_cluster", a.describe_cluster)
        attempt("describe_topics", lambda: a.describe_topics([topic]))
        attempt("describe_configs", lambda: a.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]))
        # list_consumer_groups hangs against tansu 0.6.0; the group calls
        # and CreatePartitions/DeleteRecords are covered by confluent-kafka.
        attempt("delete_topics", lambda: a.delete_topics([topic]))
        a.close()
    elif scenario == "produce":
        (topic,) = args
        # Pinned to an old broker version, kafka-python uses InitProducerId
        # v0, which tansu answers with UNKNOWN_SERVER_ERROR: no idempotence.
        p = KafkaProducer(**base, linger_ms=50, acks="all",
                          enable_idempotence=not pinned)
        futs = []
        for i in range(3):
            # Before Kafka 0.11 (message format v0/v1) there are no headers.
            headers = [("h", b"x")] if base.get("api_version", (9,)) >= (0, 11) else None
            futs.append(p.send(topic, key=b"k%d" % i, value=b"v%d" % i, partition=0,
                               headers=headers))
        p.flush(30)
        for f in futs:
            f.get(timeout=10)
        p.close()
    elif scenario == "consume":
        topic, group = args
        c = KafkaConsumer(topic, **base, group_id=group, auto_offset_reset="earliest",
                          enable_auto_commit=False, session_timeout_ms=6000,
                          heartbeat_interval_ms=500, fetch_max_wait_ms=100,
                          consumer_timeout_ms=8000)
        got = 0
        for _m in c:
            got += 1
            if got >= 3:
                break
        if not got:
            die("consumed nothing")
        c.commit()
        time.sleep(1.2)
        c.committed(TopicPartition(topic, 0))
        c.close()
        print("consumed", got, file=sys.stderr)
    elif scenario == "offsets":
        (topic,) = args
        c = KafkaConsumer(**base)
        tp = TopicPartition(topic, 0)
        print("offsets", c.beginning_offsets([tp]), c.end_offsets([tp]), file=sys.stderr)
        c.close()
    else:
        die("unknown scenario " + scenario)
    print("kafka-python", kafka.__version__, file=sys.stderr)


def main():
    if len(sys.argv) < 4:
        die(__doc__)
    client, boot, scenario, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    if client == "confluent":
        confluent(boot, scenario, args)
    elif client == "kafka-python":
        kafka_python(boot, scenario, args)
    else:
        die("unknown client " + client)


if __name__ == "__main__":
    main()
