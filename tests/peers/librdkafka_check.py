#!/usr/bin/env python3
"""confluent-kafka (librdkafka) as the other side of the producer tests.

    librdkafka_check.py consume BOOTSTRAP TOPIC COUNT
        reads COUNT records from every partition of TOPIC from the beginning and
        prints "PARTITION OFFSET KEY VALUE" per record (key/value as text, "-" for null)
    librdkafka_check.py partition BOOTSTRAP TOPIC < keys
        produces one record per key line with librdkafka's murmur2_random
        partitioner (the Java client's) and prints "KEY PARTITION" per delivery
"""
import sys

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient


def text(b):
    return "-" if b is None else b.decode()


def consume(boot, topic, count):
    meta = AdminClient({"bootstrap.servers": boot}).list_topics(topic, timeout=20)
    parts = sorted(meta.topics[topic].partitions)
    c = ck.Consumer({"bootstrap.servers": boot, "group.id": "kafka-sansio-check",
                     "enable.auto.commit": False, "enable.partition.eof": False})
    c.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in parts])
    got = 0
    while got < count:
        m = c.poll(20)
        if m is None:
            sys.exit(f"timed out after {got} of {count} records")
        if m.error():
            sys.exit(str(m.error()))
        print(m.partition(), m.offset(), text(m.key()), text(m.value()))
        got += 1
    c.close()


def partition(boot, topic):
    keys = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    out = {}

    def dr(err, msg):
        if err:
            sys.exit(str(err))
        out[msg.key().decode()] = msg.partition()

    p = ck.Producer({"bootstrap.servers": boot, "partitioner": "murmur2_random",
                     "linger.ms": 20, "topic.metadata.refresh.interval.ms": 1000})
    for k in keys:
        p.produce(topic, key=k.encode(), value=b"x", on_delivery=dr)
        p.poll(0)
    if p.flush(60):
        sys.exit("flush timed out")
    for k in keys:
        print(k, out[k])


if __name__ == "__main__":
    cmd, boot, topic = sys.argv[1:4]
    if cmd == "consume":
        consume(boot, topic, int(sys.argv[4]))
    elif cmd == "partition":
        partition(boot, topic)
    else:
        sys.exit(f"unknown command {cmd}")
