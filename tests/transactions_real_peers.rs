//! Our transactional producer against transaction coordinators others wrote: both
//! librdkafka mock clusters (Debian's 2.0.2 and 2.16) and tansu. Each must take
//! InitProducerId with a transactional id, AddPartitionsToTxn, transactional
//! Produce batches, AddOffsetsToTxn with TxnOffsetCommit, and EndTxn both ways
//! from us; confluent-kafka then reads every record written back, in order.
//! (Neither the mock nor tansu keeps aborted transactions from read_committed
//! readers, so what read_committed reads of ours is checked against the
//! simulated cluster with librdkafka's and kafka-python's consumers, in
//! `sim_real_clients.rs`.)
#![cfg(all(feature = "tokio", feature = "smol", feature = "blocking"))]
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[path = "integration_util.rs"]
mod util;

use std::process::Command;
use std::time::Duration;

use kafka_sansio::client::{
    ClientError, ConsumedRecord, GroupProtocol, IsolationLevel, Offset, OffsetReset,
    ProducerRecord, TopicPartition, TransactionError,
};
use kafka_sansio::runtime::ClientBuilder;
use util::{Librdkafka, Mock, Tansu, peers_env, repo};

/// `PARTITION OFFSET KEY VALUE` of the first `n` records of `topic`, read by
/// confluent-kafka.
fn read_back(bootstrap: &str, topic: &str, n: usize) -> Vec<String> {
    let env = peers_env();
    let out = Command::new(&env["PEERS_PYTHON"])
        .arg(repo().join("tests/peers/librdkafka_check.py"))
        .args(["consume", bootstrap, topic, &n.to_string()])
        .env("LD_LIBRARY_PATH", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Commits, or flushes and aborts (so that every record is written either way),
/// then checks every record's delivery; `what` names the transaction in a failure.
fn end_transaction(
    producer: &kafka_sansio::blocking_runtime::Producer,
    commit: bool,
    sent: Vec<kafka_sansio::runtime::DeliveryFuture>,
    what: &str,
) {
    if commit {
        producer
            .commit_transaction()
            .unwrap_or_else(|e| panic!("{what}: commit: {e}"));
    } else {
        producer.flush().unwrap();
        producer
            .abort_transaction()
            .unwrap_or_else(|e| panic!("{what}: abort: {e}"));
    }
    for d in sent {
        d.wait().unwrap_or_else(|e| panic!("{what}: a record: {e}"));
    }
}

/// Three transactions of ten records to partition 0 (committed, aborted after
/// being written, committed) with offsets sent in the first; every call must
/// succeed, and the thirty records be in the log in order.
fn transactions_against(peer: &str, bootstrap: &str, fences: bool) {
    let client = ClientBuilder::new(bootstrap)
        .configure(|c| {
            c.producer.transactional_id = Some("peer-tx".into());
            c.producer.linger = Duration::from_millis(5);
        })
        .operation_timeout(Duration::from_secs(20))
        .build_blocking()
        .unwrap();
    let producer = client.producer();
    producer.init_transactions().unwrap();
    for (round, outcome) in ["commit", "abort", "commit"].into_iter().enumerate() {
        producer.begin_transaction().unwrap();
        let sent: Vec<_> = (0..10)
            .map(|i| {
                producer
                    .send(ProducerRecord::new("tx", format!("{outcome}-{round}-{i}")).partition(0))
            })
            .collect();
        if round == 0 {
            let offsets = vec![(TopicPartition::new("tx", 1), 7)];
            producer
                .send_offsets_to_transaction("peer-group", offsets)
                .unwrap_or_else(|e| panic!("{peer}: send_offsets_to_transaction: {e}"));
        }
        end_transaction(
            &producer,
            outcome == "commit",
            sent,
            &format!("{peer}, round {round}"),
        );
    }

    // A second instance with the same id fences the first.
    let second = ClientBuilder::new(bootstrap)
        .configure(|c| c.producer.transactional_id = Some("peer-tx".into()))
        .operation_timeout(Duration::from_secs(20))
        .build_blocking()
        .unwrap();
    second.producer().init_transactions().unwrap();
    producer.begin_transaction().unwrap();
    let late = producer.send(ProducerRecord::new("tx", "from-the-fenced-one").partition(0));
    let commit = producer.commit_transaction();
    let late = late.wait();
    eprintln!("{peer}: the fenced instance's commit: {commit:?}, its record: {late:?}");
    if fences {
        assert!(
            matches!(
                commit,
                Err(ClientError::Transaction(
                    TransactionError::Fatal(_) | TransactionError::Abortable(_)
                ))
            ),
            "{peer}: the older instance's commit: {commit:?}"
        );
        assert!(
            matches!(
                late,
                Err(ClientError::Transaction(TransactionError::Fatal(_)))
            ),
            "{peer}: a fenced producer's record fails at once: {late:?}"
        );
    }
    second.close();
    client.close();

    let lines = read_back(bootstrap, "tx", 30);
    let values: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("0 "))
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    let want: Vec<String> = ["commit", "abort", "commit"]
        .iter()
        .enumerate()
        .flat_map(|(round, what)| (0..10).map(move |i| format!("{what}-{round}-{i}")))
        .collect();
    assert_eq!(values, want, "{peer}: every record written once, in order");
}

/// Runs `check(peer, bootstrap, is_tansu)` against both librdkafka mocks (three
/// brokers) and tansu (one), each with `topics` (name, partitions) created.
fn on_every_peer(topics: &[(&str, i32)], check: impl Fn(&str, &str, bool)) {
    let specs: Vec<String> = topics.iter().map(|(t, p)| format!("{t}:{p}:3")).collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    for flavour in [Librdkafka::Debian, Librdkafka::V216] {
        let mock = Mock::start(flavour, 3, &specs);
        check(
            &format!("{flavour:?} mock"),
            &mock.bootstrap.join(","),
            false,
        );
    }
    let tansu = Tansu::start();
    let admin = ClientBuilder::new(&tansu.addr).build_blocking().unwrap();
    for (topic, partitions) in topics {
        admin.create_topic(topic, *partitions, 1).unwrap();
    }
    admin.close();
    check("tansu", &tansu.addr, true);
}

#[test]
fn both_mocks_and_tansu_take_our_transactions() {
    // Only tansu fences (see the file's doc).
    on_every_peer(&[("tx", 2)], transactions_against);
}

/// A consume-transform-produce pipeline through the blocking facade: a
/// read_committed group member (whose offset lookups ask for stable offsets,
/// KIP-447) reads `pipe-in`, writes each value to `pipe-out` and commits its
/// input offsets inside the transaction; one transaction is aborted and the
/// member rewinds to the group's committed offset. A second member then starts
/// exactly after what the first committed. librdkafka's mock takes
/// TxnOffsetCommit but stores nothing (its group has no committed offset after
/// the commit), so there (`stores_offsets` false) the member rewinds to the
/// offset it knows and no second member is checked.
fn pipeline_against(peer: &str, bootstrap: &str, stores_offsets: bool) {
    let group_member = |id: &str| {
        let id = id.to_owned();
        ClientBuilder::new(bootstrap)
            .group_id("pipe-group")
            .configure(move |c| {
                c.producer.transactional_id = Some(id);
                c.producer.linger = Duration::from_millis(5);
                c.consumer.isolation = IsolationLevel::ReadCommitted;
                // KIP-848 where the peer has it (the 2.16 mock), classic after
                // the fallback elsewhere (the 2.0.2 mock, tansu).
                c.consumer.group_protocol = GroupProtocol::Consumer;
                c.consumer.enable_auto_commit = false;
                c.consumer.auto_offset_reset = OffsetReset::Earliest;
                c.consumer.session_timeout = Duration::from_secs(6);
                c.consumer.heartbeat_interval = Duration::from_millis(300);
                c.consumer.rebalance_timeout = Duration::from_secs(2);
            })
            .operation_timeout(Duration::from_secs(20))
            .build_blocking()
            .unwrap()
    };
    let input = ClientBuilder::new(bootstrap).build_blocking().unwrap();
    let put = |from: usize, to: usize| {
        for i in from..to {
            input
                .producer()
                .send(ProducerRecord::new("pipe-in", format!("in-{i}")).partition(0))
                .wait()
                .unwrap_or_else(|e| panic!("{peer}: input {i}: {e}"));
        }
    };
    put(0, 20);

    let client = group_member("pipe-tx-1");
    let producer = client.producer();
    producer.init_transactions().unwrap();
    let mut consumer = client.consumer();
    consumer.subscribe(["pipe-in"]).unwrap();
    // Records read and not yet taken, across rewinds (a seek drops them).
    let mut pending: Vec<ConsumedRecord> = Vec::new();
    let take = |consumer: &mut kafka_sansio::blocking_runtime::Consumer,
                pending: &mut Vec<ConsumedRecord>,
                n: usize| {
        for _ in 0..100 {
            if pending.len() >= n {
                break;
            }
            pending.extend(
                consumer
                    .recv_batch_timeout(Duration::from_millis(200))
                    .unwrap(),
            );
        }
        assert!(
            pending.len() >= n,
            "{peer}: {} of {n} records read",
            pending.len()
        );
        pending.drain(..n).collect::<Vec<_>>()
    };
    let transact = |records: &[ConsumedRecord], commit: bool| {
        producer.begin_transaction().unwrap();
        let sent: Vec<_> = records
            .iter()
            .map(|r| {
                let v = String::from_utf8_lossy(r.record.value().unwrap()).replace("in", "out");
                producer.send(ProducerRecord::new("pipe-out", v).partition(0))
            })
            .collect();
        let next = records.last().unwrap().record.offset + 1;
        producer
            .send_offsets_to_transaction(
                "pipe-group",
                vec![(TopicPartition::new("pipe-in", 0), next)],
            )
            .unwrap_or_else(|e| panic!("{peer}: send_offsets_to_transaction: {e}"));
        end_transaction(&producer, commit, sent, peer);
    };
    let first = take(&mut consumer, &mut pending, 10);
    assert_eq!(first[0].record.offset, 0, "{peer}");
    transact(&first, true);
    let second = take(&mut consumer, &mut pending, 5);
    transact(&second, false);
    let rewind = if stores_offsets {
        Offset::Committed
    } else {
        Offset::At(10)
    };
    consumer
        .seek(TopicPartition::new("pipe-in", 0), rewind)
        .unwrap();
    pending.clear();
    let again = take(&mut consumer, &mut pending, 10);
    assert_eq!(
        again[0].record.offset, 10,
        "{peer}: after the abort the member reads from the committed offset again"
    );
    transact(&again, true);
    consumer.close().unwrap();
    client.close();

    // A second member of the group starts after what the first committed.
    if stores_offsets {
        put(20, 25);
        let next = group_member("pipe-tx-2");
        let mut consumer = next.consumer();
        consumer.subscribe(["pipe-in"]).unwrap();
        let rest = take(&mut consumer, &mut Vec::new(), 5);
        assert_eq!(
            rest[0].record.offset, 20,
            "{peer}: the second member's first record"
        );
        consumer.close().unwrap();
        next.close();
    }
    input.close();

    let lines = read_back(bootstrap, "pipe-out", 25);
    let values: Vec<&str> = lines
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    // Neither the mock nor tansu hides aborted records from this reader: the
    // aborted transaction's five are in the log between the two committed ones.
    let want: Vec<String> = (0..15).chain(10..20).map(|i| format!("out-{i}")).collect();
    assert_eq!(values, want, "{peer}: the pipeline's output");
}

#[test]
fn a_read_committed_pipeline_commits_its_input_offsets_with_its_output_on_every_peer() {
    // Only tansu stores transactional offsets (see pipeline_against).
    on_every_peer(&[("pipe-in", 1), ("pipe-out", 1)], pipeline_against);
}
