//! Consumer groups through the facades (tokio and blocking) over real sockets,
//! against the simulated cluster served on loopback: two consumers of one group
//! split the partitions, one closes (commits and leaves), the other takes over, and
//! every record is read once across both.
#![cfg(all(feature = "sim", feature = "tokio", feature = "blocking"))]
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use kafka_sansio::client::{GroupProtocol, OffsetReset, ProducerRecord};
use kafka_sansio::runtime::{ClientBuilder, Consumer};
use kafka_sansio::sim::ClusterConfig;
use kafka_sansio::sim_server::BackgroundServer;

const PARTITIONS: i32 = 4;

fn server() -> BackgroundServer {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let server = BackgroundServer::start(ClusterConfig {
        brokers: 2,
        base_port: 0,
        auto_create_topics: false,
        group_min_session_timeout: Duration::from_millis(500),
        consumer_group_session_timeout: Duration::from_secs(3),
        consumer_group_heartbeat_interval: Duration::from_millis(200),
        ..ClusterConfig::default()
    })
    .unwrap();
    server.with_cluster(|c, _| c.create_topic("t", PARTITIONS, 2).unwrap());
    server
}

fn builder(server: &BackgroundServer, protocol: GroupProtocol) -> ClientBuilder {
    ClientBuilder::new(&server.bootstrap())
        .group_id("g")
        .configure(move |c| {
            c.consumer.auto_offset_reset = OffsetReset::Earliest;
            c.consumer.group_protocol = protocol;
            c.consumer.session_timeout = Duration::from_secs(3);
            c.consumer.heartbeat_interval = Duration::from_millis(200);
            c.consumer.rebalance_timeout = Duration::from_secs(10);
            c.consumer.auto_commit_interval = Duration::from_millis(300);
        })
}

/// Produces `n` records to each partition, tagged `tag`.
fn produce(server: &BackgroundServer, n: usize, tag: &str) {
    let client = ClientBuilder::new(&server.bootstrap())
        .build_blocking()
        .unwrap();
    let producer = client.producer();
    let deliveries: Vec<_> = (0..PARTITIONS)
        .flat_map(|p| (0..n).map(move |i| (p, i)))
        .map(|(p, i)| producer.send(ProducerRecord::new("t", format!("{tag}{p}-{i}")).partition(p)))
        .collect();
    for d in deliveries {
        d.wait().unwrap();
    }
    client.close();
}

/// What each consumer read: (partition, offset) → how many times.
type Seen = BTreeMap<(i32, i64), usize>;

async fn read_some(c: &mut Consumer, seen: &mut Seen) {
    // One short wait: the other consumer gets its turn.
    while let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(20), c.next()).await {
        let r = r.unwrap();
        *seen.entry((r.partition, r.record.offset)).or_default() += 1;
    }
}

fn total(seen: &Seen) -> usize {
    seen.len()
}

fn assert_once(seen: &Seen, want: usize) {
    assert_none_twice(seen);
    assert_eq!(seen.len(), want);
}

fn assert_none_twice(seen: &Seen) {
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "read twice: {twice:?}");
}

/// How many records were read by the group or handed to a stuck member before it
/// was taken to be stuck (those may be read twice: it never committed them).
fn read_across(seen: &Seen, handed_before: &Seen) -> usize {
    seen.keys()
        .chain(handed_before.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// What a stuck member's client handed it before it was told: only records of the
/// partitions it had.
fn assert_handed_of(handed_before: &Seen, had: &[kafka_sansio::client::TopicPartition]) {
    assert!(
        handed_before
            .keys()
            .all(|(p, _)| had.iter().any(|tp| tp.partition == *p)),
        "{handed_before:?} not of {had:?}"
    );
}

async fn two_members_split_then_one_closes(protocol: GroupProtocol) {
    let server = server();
    produce(&server, 50, "a");
    let a_client = builder(&server, protocol).build_tokio().await.unwrap();
    let b_client = builder(&server, protocol).build_tokio().await.unwrap();
    let mut a = a_client.consumer();
    let mut b = b_client.consumer();
    a.subscribe(["t"]).unwrap();
    let mut seen = Seen::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while total(&seen) < 200 {
        assert!(
            Instant::now() < deadline,
            "a alone read {} of 200",
            total(&seen)
        );
        read_some(&mut a, &mut seen).await;
    }
    b.subscribe(["t"]).unwrap();
    // Both hold two partitions.
    while !(a.assignment().len() == 2 && b.assignment().len() == 2) {
        assert!(
            Instant::now() < deadline,
            "no split: a {:?} b {:?}",
            a.assignment(),
            b.assignment()
        );
        read_some(&mut a, &mut seen).await;
        read_some(&mut b, &mut seen).await;
    }
    let split: Vec<_> = a.assignment().into_iter().chain(b.assignment()).collect();
    assert_eq!(split.len(), 4);
    produce(&server, 50, "b");
    while total(&seen) < 400 {
        assert!(
            Instant::now() < deadline,
            "the pair read {} of 400",
            total(&seen)
        );
        read_some(&mut a, &mut seen).await;
        read_some(&mut b, &mut seen).await;
    }
    assert_once(&seen, 400);
    // a commits what it read and leaves; b takes every partition over where a's
    // commits ended.
    a.close().await.unwrap();
    produce(&server, 50, "c");
    while !(b.assignment().len() == 4 && total(&seen) >= 600) {
        assert!(
            Instant::now() < deadline,
            "b read {} of 600, holds {:?}",
            total(&seen),
            b.assignment()
        );
        read_some(&mut b, &mut seen).await;
    }
    assert_once(&seen, 600);
    // What auto-commit already stored at the same offset is not sent again.
    let committed = b.commit().await.unwrap();
    assert!(committed.iter().all(|(_, o)| *o == 150), "{committed:?}");
    b.close().await.unwrap();
    for p in 0..PARTITIONS {
        assert_eq!(
            server.with_cluster(|c, _| c.committed_offset("g", "t", p)),
            Some(150)
        );
    }
    a_client.close().await;
    b_client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_classic_members_split_and_one_closes_without_loss_or_duplicates() {
    two_members_split_then_one_closes(GroupProtocol::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_kip848_members_split_and_one_closes_without_loss_or_duplicates() {
    two_members_split_then_one_closes(GroupProtocol::Consumer).await;
}

#[test]
fn blocking_members_split_and_one_closes_without_loss_or_duplicates() {
    let server = server();
    produce(&server, 25, "a");
    let a_client = builder(&server, GroupProtocol::Classic)
        .build_blocking()
        .unwrap();
    let b_client = builder(&server, GroupProtocol::Classic)
        .build_blocking()
        .unwrap();
    let mut a = a_client.consumer();
    a.subscribe(["t"]).unwrap();
    let mut seen = Seen::new();
    while total(&seen) < 100 {
        let r = a.recv().unwrap();
        *seen.entry((r.partition, r.record.offset)).or_default() += 1;
    }
    assert_eq!(a.assignment().len(), 4);
    let rebalances = a.rebalances();
    assert_eq!(rebalances.len(), 1);
    assert_eq!(rebalances[0].assigned.len(), 4);
    a.commit().unwrap();
    a.close().unwrap();
    // b joins after a left: it starts where a committed and reads the rest.
    produce(&server, 25, "b");
    let mut b = b_client.consumer();
    b.subscribe(["t"]).unwrap();
    while total(&seen) < 200 {
        let r = b.recv().unwrap();
        *seen.entry((r.partition, r.record.offset)).or_default() += 1;
    }
    assert_once(&seen, 200);
    b.close().unwrap();
}

/// `recv_batch` hands records to the application like the stream does: a commit
/// after it stores, for every partition, the offset after the last record it gave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_after_recv_batch_stores_the_offset_after_its_last_record() {
    let server = server();
    produce(&server, 5, "r");
    let client = builder(&server, GroupProtocol::Consumer)
        .configure(|c| c.consumer.enable_auto_commit = false)
        .build_tokio()
        .await
        .unwrap();
    let mut consumer = client.consumer();
    consumer.subscribe(["t"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Seen::new();
    let mut batches = 0;
    while total(&seen) < 20 {
        assert!(Instant::now() < deadline, "read {} of 20", total(&seen));
        let batch = tokio::time::timeout(Duration::from_secs(5), consumer.recv_batch())
            .await
            .unwrap()
            .unwrap();
        batches += 1;
        for r in batch {
            *seen.entry((r.partition, r.record.offset)).or_default() += 1;
        }
    }
    assert_once(&seen, 20);
    // some batch carried more than one record, or the test would not show anything
    assert!(batches < 20, "{batches} batches");
    let mut committed = consumer.commit().await.unwrap();
    committed.sort();
    let partitions: Vec<_> = committed.iter().map(|(tp, _)| tp.partition).collect();
    assert_eq!(partitions, [0, 1, 2, 3], "{committed:?}");
    assert!(committed.iter().all(|(_, o)| *o == 5), "{committed:?}");
    for p in 0..PARTITIONS {
        assert_eq!(
            server.with_cluster(|c, _| c.committed_offset("g", "t", p)),
            Some(5)
        );
    }
    consumer.close().await.unwrap();
    client.close().await;
}

/// With auto-commit off, `close` commits nothing, as Java's does: what the
/// application did not commit itself is the next owner's to read again. (It used to
/// commit every record handed out, and a consume-transform-produce member that
/// closed right after aborting a transaction lost that transaction's input.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_without_auto_commit_commits_nothing() {
    let server = server();
    produce(&server, 5, "r");
    // A member with auto-commit off reads all 20 records, commits nothing
    // itself, and closes.
    let read_all_and_close = async |what: &str| {
        let client = builder(&server, GroupProtocol::Classic)
            .configure(|c| c.consumer.enable_auto_commit = false)
            .build_tokio()
            .await
            .unwrap();
        let mut consumer = client.consumer();
        consumer.subscribe(["t"]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Seen::new();
        while total(&seen) < 20 {
            assert!(
                Instant::now() < deadline,
                "{what}: read {} of 20",
                total(&seen)
            );
            read_some(&mut consumer, &mut seen).await;
        }
        consumer.close().await.unwrap();
        client.close().await;
        seen
    };
    read_all_and_close("the first member").await;
    let committed: Vec<_> = (0..PARTITIONS)
        .map(|p| server.with_cluster(|c, _| c.committed_offset("g", "t", p)))
        .collect();
    assert_eq!(committed, [None; PARTITIONS as usize]);
    // The next member reads what was not committed again.
    let again = read_all_and_close("the next member").await;
    assert_once(&again, 20);
}

/// An application that stops taking records from its `Consumer` for longer than
/// `max_poll_interval` loses its partitions to the other member, although its
/// driver goes on heartbeating; when it comes back it is told, and it joins again.
/// Records it was handed before it stopped may be read again by the other member
/// (they were not committed); every other record is read exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_polling_leaves_its_group_and_rejoins_when_it_polls() {
    let server = server();
    produce(&server, 50, "a");
    let stuck_after = Duration::from_secs(1);
    let build = || {
        builder(&server, GroupProtocol::Classic)
            .configure(move |c| c.consumer.max_poll_interval = stuck_after)
            .build_tokio()
    };
    let (a_client, b_client) = (build().await.unwrap(), build().await.unwrap());
    let (mut a, mut b) = (a_client.consumer(), b_client.consumer());
    a.subscribe(["t"]).unwrap();
    b.subscribe(["t"]).unwrap();
    let mut seen = Seen::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(a.assignment().len() == 2 && b.assignment().len() == 2 && total(&seen) >= 200) {
        assert!(Instant::now() < deadline, "no split");
        read_some(&mut a, &mut seen).await;
        read_some(&mut b, &mut seen).await;
    }
    let b_had = b.assignment();
    // Let auto-commit store what b read; then b's application stops while records
    // keep coming (a round every 300 ms: the first may go to the poll b left
    // waiting, the later ones wait in its client with no poll to take them).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let stopped = Instant::now();
    let mut produced = 200;
    let mut round = 0;
    while a.assignment().len() != 4 {
        assert!(
            Instant::now() < deadline,
            "b still holds its partitions: a holds {:?}",
            a.assignment()
        );
        round += 1;
        produce(&server, 25, &format!("r{round}-"));
        produced += 100;
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            read_some(&mut a, &mut seen).await;
        }
    }
    assert!(stopped.elapsed() >= stuck_after, "{:?}", stopped.elapsed());
    // b comes back: what its client took for it before it was stuck (a `next`
    // dropped while waiting leaves its poll in place), then the error.
    let mut handed_before = Seen::new();
    loop {
        assert!(Instant::now() < deadline, "b was not told");
        match tokio::time::timeout(Duration::from_secs(5), b.next()).await {
            Ok(Some(Ok(r))) => {
                *handed_before
                    .entry((r.partition, r.record.offset))
                    .or_default() += 1;
            }
            Ok(Some(Err(e))) => {
                assert_eq!(
                    e,
                    kafka_sansio::client::ClientError::PollIntervalExceeded {
                        max_poll_interval: stuck_after
                    }
                );
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_handed_of(&handed_before, &b_had);
    // It joins again: the partitions are split anew, and the rest is read once
    // (the records b was handed before may be read again: it never committed them).
    while !(a.assignment().len() == 2
        && b.assignment().len() == 2
        && read_across(&seen, &handed_before) >= produced)
    {
        assert!(
            Instant::now() < deadline,
            "after b came back: a {:?} b {:?}, read {} of {produced}",
            a.assignment(),
            b.assignment(),
            read_across(&seen, &handed_before)
        );
        read_some(&mut a, &mut seen).await;
        read_some(&mut b, &mut seen).await;
    }
    let lost: usize = b.rebalances().iter().map(|r| r.lost.len()).sum();
    assert_eq!(lost, 2);
    produce(&server, 50, "d");
    produced += 200;
    while read_across(&seen, &handed_before) < produced {
        assert!(
            Instant::now() < deadline,
            "read {} of {produced}",
            read_across(&seen, &handed_before)
        );
        read_some(&mut a, &mut seen).await;
        read_some(&mut b, &mut seen).await;
    }
    assert_eq!(read_across(&seen, &handed_before), produced);
    assert_none_twice(&seen);
    a.close().await.unwrap();
    b.close().await.unwrap();
    a_client.close().await;
    b_client.close().await;
}

/// The same through the blocking facade, with KIP-848: a loop of `recv_timeout`
/// calls (the shape of a blocking consumer that watches for shutdown) over two
/// members, one of whose applications stops calling. Past `max_poll_interval` its
/// member leaves and the other takes its partitions; back, it is told once, its
/// partitions lost, and it joins again; every record produced after is read once.
#[test]
fn a_blocking_kip848_consumer_that_stops_polling_leaves_and_rejoins() {
    use kafka_sansio::blocking_runtime::Consumer as BlockingConsumer;
    use kafka_sansio::client::ClientError;
    fn read_some(c: &mut BlockingConsumer, seen: &mut Seen) {
        while let Some(r) = c.recv_timeout(Duration::from_millis(20)).unwrap() {
            *seen.entry((r.partition, r.record.offset)).or_default() += 1;
        }
    }
    let server = server();
    produce(&server, 25, "a");
    let stuck_after = Duration::from_secs(1);
    let build = || {
        builder(&server, GroupProtocol::Consumer)
            .configure(move |c| c.consumer.max_poll_interval = stuck_after)
            .build_blocking()
            .unwrap()
    };
    let (a_client, b_client) = (build(), build());
    let (mut a, mut b) = (a_client.consumer(), b_client.consumer());
    a.subscribe(["t"]).unwrap();
    b.subscribe(["t"]).unwrap();
    let mut seen = Seen::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(a.assignment().len() == 2 && b.assignment().len() == 2 && total(&seen) >= 100) {
        assert!(Instant::now() < deadline, "no split");
        read_some(&mut a, &mut seen);
        read_some(&mut b, &mut seen);
    }
    let b_had = b.assignment();
    std::thread::sleep(Duration::from_millis(600)); // auto-commit stores b's reads
    let stopped = Instant::now();
    let mut produced = 100;
    let mut round = 0;
    while a.assignment().len() != 4 {
        assert!(
            Instant::now() < deadline,
            "b still holds its partitions: a holds {:?}",
            a.assignment()
        );
        round += 1;
        produce(&server, 25, &format!("r{round}-"));
        produced += 100;
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            read_some(&mut a, &mut seen);
        }
    }
    assert!(stopped.elapsed() >= stuck_after, "{:?}", stopped.elapsed());
    // b comes back: records its client took for it before, then the error, once.
    let mut handed_before = Seen::new();
    loop {
        assert!(Instant::now() < deadline, "b was not told");
        match b.recv_timeout(Duration::from_secs(5)) {
            Ok(Some(r)) => {
                *handed_before
                    .entry((r.partition, r.record.offset))
                    .or_default() += 1;
            }
            Err(e) => {
                assert_eq!(
                    e,
                    ClientError::PollIntervalExceeded {
                        max_poll_interval: stuck_after
                    }
                );
                break;
            }
            Ok(None) => panic!("b waited 5 s and was told nothing"),
        }
    }
    assert_handed_of(&handed_before, &b_had);
    while !(a.assignment().len() == 2
        && b.assignment().len() == 2
        && read_across(&seen, &handed_before) >= produced)
    {
        assert!(
            Instant::now() < deadline,
            "after b came back: a {:?} b {:?}, read {} of {produced}",
            a.assignment(),
            b.assignment(),
            read_across(&seen, &handed_before)
        );
        read_some(&mut a, &mut seen);
        read_some(&mut b, &mut seen);
    }
    let lost: usize = b.rebalances().iter().map(|r| r.lost.len()).sum();
    assert_eq!(lost, 2);
    produce(&server, 50, "d");
    produced += 200;
    while read_across(&seen, &handed_before) < produced {
        assert!(
            Instant::now() < deadline,
            "read {} of {produced}",
            read_across(&seen, &handed_before)
        );
        read_some(&mut a, &mut seen);
        read_some(&mut b, &mut seen);
    }
    assert_eq!(read_across(&seen, &handed_before), produced);
    assert_none_twice(&seen);
    a.close().unwrap();
    b.close().unwrap();
    a_client.close();
    b_client.close();
}
