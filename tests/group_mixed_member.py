"""One consumer group member written by others, driven by tests/group_mixed.rs.

    python group_mixed_member.py CLIENT BOOTSTRAP TOPIC GROUP STRATEGY NAME

CLIENT is `confluent` (confluent-kafka, librdkafka 2.16) or `kafka-python`;
STRATEGY is `range`, `cooperative-sticky` (confluent-kafka only) or `consumer`
(KIP-848's group.protocol=consumer, confluent-kafka only). The member
subscribes to TOPIC in GROUP with auto-commit off and polls until told to stop.
It commits, by hand, the offset after the last record it handed out for each
partition it gives up (in the revoke callback, before the partition moves) and
for every partition it holds when it closes.

Prints one JSON object per line on stdout (flushed):
  {"ev": "assigned", "parts": [...], "owned": [...]}   rebalance callback
  {"ev": "revoked",  "parts": [...], "owned": [...]}   after committing them
  {"ev": "lost",     "parts": [...], "owned": [...]}
  {"ev": "rec", "p": P, "o": OFFSET, "v": "VALUE"}       a record read
  {"ev": "committed", "offsets": {"P": OFFSET, ...}}
  {"ev": "closed"}                                       left the group
Reads commands on stdin: `close` (commit what it holds, leave, exit 0). EOF on
stdin closes too. Exits non-zero with a message on stderr on any error, and
after LIFETIME seconds whatever happens, so a stuck test cannot hang it.
"""

import json
import queue
import sys
import threading
import time

LIFETIME = 120.0


def die(msg):
    print("%s: %s" % (NAME, msg), file=sys.stderr, flush=True)
    sys.exit(1)


def emit(**obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def stdin_commands():
    q = queue.Queue()

    def read():
        for line in sys.stdin:
            q.put(line.strip())
        q.put("close")

    threading.Thread(target=read, daemon=True).start()
    return q


class State:
    """What the member holds and has handed out."""

    def __init__(self):
        self.owned = set()
        # partition -> offset after the last record handed out
        self.handed = {}

    def gained(self, parts):
        # What was handed out during an earlier ownership is stale: another
        # member may have read on since, and committing it would go backwards.
        for p in parts:
            self.handed.pop(p, None)
        self.owned |= set(parts)

    def offsets(self, parts):
        return {p: self.handed[p] for p in sorted(parts) if p in self.handed}


def confluent(boot, topic, group, strategy):
    import confluent_kafka as ck

    st = State()
    conf = {
        "bootstrap.servers": boot, "client.id": NAME, "group.id": group,
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "fetch.wait.max.ms": 50,
    }
    if strategy == "consumer":
        # KIP-848: the coordinator assigns and sets the heartbeat interval.
        conf["group.protocol"] = "consumer"
    else:
        conf.update({"partition.assignment.strategy": strategy,
                     "session.timeout.ms": 6000, "heartbeat.interval.ms": 300})
    c = ck.Consumer(conf)

    def commit(parts):
        offsets = st.offsets(parts)
        if offsets:
            c.commit(offsets=[ck.TopicPartition(topic, p, o) for p, o in offsets.items()],
                     asynchronous=False)
        emit(ev="committed", offsets={str(p): o for p, o in offsets.items()})

    def on_assign(_c, tps):
        parts = [tp.partition for tp in tps]
        st.gained(parts)
        emit(ev="assigned", parts=sorted(parts), owned=sorted(st.owned))

    def on_revoke(_c, tps):
        parts = [tp.partition for tp in tps]
        commit(parts)
        st.owned -= set(parts)
        emit(ev="revoked", parts=sorted(parts), owned=sorted(st.owned))

    def on_lost(_c, tps):
        parts = [tp.partition for tp in tps]
        st.owned -= set(parts)
        emit(ev="lost", parts=sorted(parts), owned=sorted(st.owned))

    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)

    def poll():
        m = c.poll(0.05)
        if m is None:
            return
        if m.error():
            die("consume error: %s" % m.error())
        p, o = m.partition(), m.offset()
        if p not in st.owned:
            die("read %d@%d outside its assignment %s" % (p, o, sorted(st.owned)))
        st.handed[p] = o + 1
        emit(ev="rec", p=p, o=o, v=m.value().decode())

    def close():
        commit(st.owned)
        c.close()

    return poll, close


def kafka_python(boot, topic, group, strategy):
    from kafka import AsyncConsumerRebalanceListener, KafkaConsumer, TopicPartition
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from kafka.structs import OffsetAndMetadata

    assignor = {"range": RangePartitionAssignor,
                "roundrobin": RoundRobinPartitionAssignor}.get(strategy)
    if assignor is None:
        die("kafka-python: no %s assignor here" % strategy)
    st = State()
    c = KafkaConsumer(bootstrap_servers=boot, client_id=NAME, group_id=group,
                      partition_assignment_strategy=[assignor],
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      session_timeout_ms=6000, heartbeat_interval_ms=300,
                      fetch_max_wait_ms=50)

    def offsets_of(parts):
        return {TopicPartition(topic, p): OffsetAndMetadata(o, "", -1)
                for p, o in st.offsets(parts).items()}

    def committed(parts):
        emit(ev="committed", offsets={str(p): o for p, o in st.offsets(parts).items()})

    # kafka-python 3 runs rebalance listeners on its IO thread, where the blocking
    # commit() refuses to run; its advice is an async listener awaiting the async
    # variant, which is the coordinator's (it has no public async commit).
    class Listener(AsyncConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked):
            parts = [tp.partition for tp in revoked]
            offsets = offsets_of(parts)
            if offsets:
                await c._coordinator._commit_offsets_sync_async(offsets)
            committed(parts)
            st.owned -= set(parts)
            emit(ev="revoked", parts=sorted(parts), owned=sorted(st.owned))

        async def on_partitions_assigned(self, assigned):
            parts = [tp.partition for tp in assigned]
            st.gained(parts)
            emit(ev="assigned", parts=sorted(parts), owned=sorted(st.owned))

        async def on_partitions_lost(self, lost):
            parts = [tp.partition for tp in lost]
            st.owned -= set(parts)
            emit(ev="lost", parts=sorted(parts), owned=sorted(st.owned))

    # Subscribe once the topic's metadata is known (see tests/sim_real_clients.py:
    # kafka-python 3.0.12 can otherwise lose a SyncGroup answer under load).
    if not c.partitions_for_topic(topic):
        die("no metadata for %s" % topic)
    c.subscribe([topic], listener=Listener())

    def poll():
        for tp, ms in c.poll(50).items():
            for m in ms:
                if m.partition not in st.owned:
                    die("read %d@%d outside its assignment %s"
                        % (m.partition, m.offset, sorted(st.owned)))
                st.handed[m.partition] = m.offset + 1
                emit(ev="rec", p=m.partition, o=m.offset, v=m.value.decode())

    def close():
        offsets = offsets_of(st.owned)
        if offsets:
            c.commit(offsets)
        committed(st.owned)
        c.close()

    return poll, close


def main():
    global NAME
    client, boot, topic, group, strategy, NAME = sys.argv[1:7]
    make = {"confluent": confluent, "kafka-python": kafka_python}[client]
    commands = stdin_commands()
    poll, close = make(boot, topic, group, strategy)
    end = time.time() + LIFETIME
    while True:
        if time.time() > end:
            die("still running after %.0f s" % LIFETIME)
        try:
            cmd = commands.get_nowait()
        except queue.Empty:
            cmd = None
        if cmd == "close":
            close()
            emit(ev="closed")
            return
        if cmd:
            die("unknown command %r" % cmd)
        poll()


NAME = "?"
if __name__ == "__main__":
    main()
