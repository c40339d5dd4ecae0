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

use kafka_sansio::client::{ClientError, ProducerRecord, TopicPartition, TransactionError};
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
        if outcome == "commit" {
            producer
                .commit_transaction()
                .unwrap_or_else(|e| panic!("{peer}: commit {round}: {e}"));
        } else {
            producer.flush().unwrap();
            producer
                .abort_transaction()
                .unwrap_or_else(|e| panic!("{peer}: abort {round}: {e}"));
        }
        for d in sent {
            d.wait()
                .unwrap_or_else(|e| panic!("{peer}: a record of round {round}: {e}"));
        }
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

#[test]
fn both_mocks_and_tansu_take_our_transactions() {
    for flavour in [Librdkafka::Debian, Librdkafka::V216] {
        let mock = Mock::start(flavour, 3, &["tx:2:3"]);
        transactions_against(
            &format!("{flavour:?} mock"),
            &mock.bootstrap.join(","),
            false,
        );
    }
    let tansu = Tansu::start();
    let admin = ClientBuilder::new(&tansu.addr).build_blocking().unwrap();
    admin.create_topic("tx", 2, 1).unwrap();
    admin.close();
    transactions_against("tansu", &tansu.addr, true);
}
