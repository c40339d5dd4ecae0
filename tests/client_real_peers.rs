//! The cluster client against real peers others wrote: librdkafka's mock cluster
//! (Debian's 2.0.2 and 2.16) and tansu, through each facade (tokio, smol, blocking):
//! topics, produce, fetch back byte for byte, list offsets, delete records, and the
//! mock's fault injection retried as promised. The peers are installed and started
//! by `scripts/peers/` (see tests/integration_util.rs).
#![cfg(all(feature = "tokio", feature = "smol", feature = "blocking"))]
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[path = "integration_util.rs"]
mod util;

use std::future::Future;
use std::time::{Duration, Instant};

use kafka_sansio::client::{ClientError, FetchOptions, OffsetSpec, Record, UnknownTopicHandling};
use kafka_sansio::records::Compression;
use kafka_sansio::runtime::{Client, ClientBuilder};
use util::{Librdkafka, Mock, Tansu};

#[derive(Debug, Clone, Copy)]
enum Facade {
    Tokio,
    Smol,
    Blocking,
}

const FACADES: [Facade; 3] = [Facade::Tokio, Facade::Smol, Facade::Blocking];

/// A client built through one facade, used from synchronous test code (the
/// handle's futures only wait on channels, so any executor can await them).
struct Sync {
    client: Client,
    _runtime: Option<tokio::runtime::Runtime>,
    _blocking: Option<kafka_sansio::blocking_runtime::Client>,
}

impl Sync {
    fn new(facade: Facade, bootstrap: &str) -> Sync {
        let builder = ClientBuilder::new(bootstrap)
            .client_id(format!("kafka-sansio-{facade:?}"))
            .operation_timeout(Duration::from_secs(30));
        match facade {
            Facade::Tokio => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .unwrap();
                let client = rt.block_on(builder.build_tokio()).unwrap();
                Sync {
                    client,
                    _runtime: Some(rt),
                    _blocking: None,
                }
            }
            Facade::Smol => {
                let (client, driver) = builder.build_smol().unwrap();
                std::thread::spawn(move || async_io::block_on(driver));
                Sync {
                    client,
                    _runtime: None,
                    _blocking: None,
                }
            }
            Facade::Blocking => {
                let b = builder.build_blocking().unwrap();
                Sync {
                    client: b.as_async().clone(),
                    _runtime: None,
                    _blocking: Some(b),
                }
            }
        }
    }

    fn run<T>(&self, f: impl Future<Output = T>) -> T {
        futures_lite::future::block_on(f)
    }
}

impl Drop for Sync {
    fn drop(&mut self) {
        futures_lite::future::block_on(self.client.close());
    }
}

fn records(tag: &str, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut value = format!("{tag}-{i}-").into_bytes();
            value.extend((0..(i * 7 % 300)).map(|b| (b * 31 + i) as u8)); // varied, binary
            Record::new(value)
                .key(format!("k{i}"))
                .header("i", i.to_string())
                .timestamp(1_700_000_000_000 + i as i64)
        })
        .collect()
}

/// Produces in every codec and reads it all back byte for byte.
fn produce_and_fetch_back(s: &Sync, topic: &str, partition: i32) {
    let p = s
        .run(
            s.client
                .partition_client(topic, partition, UnknownTopicHandling::Retry),
        )
        .unwrap();
    let start = s.run(p.get_offset(OffsetSpec::Latest)).unwrap();
    let mut sent = Vec::new();
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let batch = records(&format!("{codec:?}"), 40);
        let offsets = s.run(p.produce(batch.clone(), codec)).unwrap();
        assert_eq!(offsets.len(), 40);
        assert_eq!(offsets[0], start + sent.len() as i64, "{codec:?}");
        sent.extend(batch);
    }
    let mut got = Vec::new();
    let mut offset = start;
    let mut hwm = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < sent.len() && Instant::now() < deadline {
        let (batch, high) = s.run(p.fetch_records(offset, 1..1_000_000, 200)).unwrap();
        hwm = high;
        if let Some(last) = batch.last() {
            offset = last.offset + 1;
        }
        got.extend(batch);
    }
    assert_eq!(
        hwm,
        start + sent.len() as i64,
        "the high watermark counts every record"
    );
    assert_eq!(got.len(), sent.len());
    for (g, w) in got.iter().zip(&sent) {
        assert_eq!(
            (g.key(), g.value(), Some(g.timestamp)),
            (w.key.as_deref(), w.value.as_deref(), w.timestamp)
        );
        let h: Vec<_> = g
            .headers()
            .map(|h| (h.key_bytes(), h.value_bytes()))
            .collect();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].1, w.headers[0].value);
    }
    // The same records lent from the responses (the cheap way through a fetch).
    let mut lent = Vec::new();
    let mut offset = start;
    let deadline = Instant::now() + Duration::from_secs(20);
    while lent.len() < sent.len() && Instant::now() < deadline {
        let options = FetchOptions::default().max_wait(Duration::from_millis(200));
        let out = s.run(p.fetch_record_set(offset, options)).unwrap();
        let mut reader = out.records.reader();
        while let Some(r) = reader.next_ref() {
            let r = r.unwrap();
            let headers: Vec<_> = r.headers().map(|h| h.value.map(<[u8]>::to_vec)).collect();
            lent.push((
                r.offset,
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
                r.timestamp,
                headers,
            ));
        }
        offset = out.next_offset;
    }
    let owned: Vec<_> = got
        .iter()
        .map(|g| {
            let headers: Vec<_> = g.headers().map(|h| h.value.map(<[u8]>::to_vec)).collect();
            (
                g.offset,
                g.key().map(<[u8]>::to_vec),
                g.value().map(<[u8]>::to_vec),
                g.timestamp,
                headers,
            )
        })
        .collect();
    assert_eq!(lent, owned, "lent records are the fetched ones");
    // (tansu's ListOffsets LATEST can lag its high watermark; its EARLIEST is right.)
    let earliest = s.run(p.get_offset(OffsetSpec::Earliest)).unwrap();
    assert!(earliest <= start, "{earliest}");
}

#[test]
fn librdkafka_mock_through_every_facade() {
    for flavour in [Librdkafka::Debian, Librdkafka::V216] {
        let mock = Mock::start(flavour, 3, &["t:3:2"]);
        let bootstrap = mock.bootstrap.join(",");
        for facade in FACADES {
            let s = Sync::new(facade, &bootstrap);
            let cluster = s.run(s.client.describe_cluster()).unwrap();
            assert_eq!(cluster.brokers.len(), 3, "{flavour:?} {facade:?}");
            produce_and_fetch_back(&s, "t", (facade as i32) % 3);
            // The mock has no CreateTopics and no DeleteRecords: typed errors, at once.
            let started = Instant::now();
            let err = s.run(s.client.create_topic("new", 1, 1)).unwrap_err();
            assert!(
                matches!(err, ClientError::Unsupported(_) | ClientError::Request(_)),
                "{err}"
            );
            let p = s
                .run(
                    s.client
                        .partition_client("t", 0, UnknownTopicHandling::Error),
                )
                .unwrap();
            let err = s.run(p.delete_records(1, 1000)).unwrap_err();
            assert!(
                !err.is_retriable() || matches!(err, ClientError::Request(_)),
                "{err}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );
            let topics = s.run(s.client.list_topics()).unwrap();
            assert!(
                topics
                    .iter()
                    .any(|t| &*t.name == "t" && t.partitions.len() == 3)
            );
            let latest = s.run(p.get_offset(OffsetSpec::Latest)).unwrap();
            assert!(latest >= 200, "{latest}");
        }
    }
}

#[test]
fn librdkafka_mock_faults_are_retried_away() {
    for flavour in [Librdkafka::Debian, Librdkafka::V216] {
        let mut mock = Mock::start(flavour, 3, &["f:1:3"]);
        let s = Sync::new(Facade::Tokio, &mock.bootstrap.join(","));
        let p = s
            .run(
                s.client
                    .partition_client("f", 0, UnknownTopicHandling::Error),
            )
            .unwrap();
        s.run(p.produce(records("warm", 1), Compression::None))
            .unwrap();

        // Retriable error codes: NOT_LEADER_OR_FOLLOWER twice, then REQUEST_TIMED_OUT.
        mock.command("errors 0 6 6 7");
        let offsets = s
            .run(p.produce(records("errs", 3), Compression::None))
            .unwrap();
        assert_eq!(offsets.len(), 3);
        mock.command("errors 1 6 6");
        let (fetched, _) = s
            .run(p.fetch_records(offsets[0], 1..1_000_000, 100))
            .unwrap();
        assert_eq!(fetched.len(), 3);
        mock.command("errors 2 6");
        assert!(s.run(p.get_offset(OffsetSpec::Latest)).unwrap() > offsets[2]);

        // A fatal one is not retried.
        mock.command("errors 0 87"); // INVALID_RECORD
        let err = s
            .run(p.produce(records("fatal", 1), Compression::None))
            .unwrap_err();
        assert_eq!(err.error_code().map(|c| c.code()), Some(87), "{err}");

        // The leader goes down and comes back; the leader moves; the broker is slow.
        let leader = s.run(s.client.describe_topics(vec!["f".into()])).unwrap()[0].partitions[0]
            .leader
            .unwrap();
        mock.command(&format!("down {leader}"));
        let other = leader % 3 + 1;
        mock.command(&format!("leader f 0 {other}"));
        let offsets = s
            .run(p.produce(records("moved", 2), Compression::None))
            .unwrap();
        assert_eq!(offsets.len(), 2);
        mock.command(&format!("up {leader}"));
        mock.command(&format!("rtt {other} 300"));
        let started = Instant::now();
        s.run(p.produce(records("slow", 1), Compression::None))
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "the RTT was applied"
        );
        mock.command(&format!("rtt {other} 0"));
        assert!(s.run(s.client.stats()).unwrap().retries >= 5);
    }
}

#[test]
fn tansu_through_every_facade() {
    let tansu = Tansu::start();
    for (i, facade) in FACADES.into_iter().enumerate() {
        let s = Sync::new(facade, &tansu.addr);
        let topic = format!("tansu-{i}");
        s.run(s.client.create_topic(&topic, 2, 1)).unwrap();
        let again = s.run(s.client.create_topic(&topic, 2, 1)).unwrap_err();
        assert_eq!(
            again.error_code(),
            Some(kafka_sansio::messages::ErrorCode::TOPIC_ALREADY_EXISTS)
        );
        produce_and_fetch_back(&s, &topic, 1);
        // DeleteRecords is not tried here: tansu 0.6's in-memory storage answers it
        // with a `todo!()` panic that closes the connection (the only engine this
        // build has); the simulated cluster covers it (tests/client_sim.rs).
        let p = s
            .run(
                s.client
                    .partition_client(&topic, 1, UnknownTopicHandling::Error),
            )
            .unwrap();
        let (fetched, _) = s.run(p.fetch_records(30, 1..1_000_000, 100)).unwrap();
        assert_eq!(fetched.first().map(|r| r.offset), Some(30));
        let topics = s.run(s.client.list_topics()).unwrap();
        assert!(topics.iter().any(|t| *t.name == *topic));
        s.run(s.client.delete_topic(&topic)).unwrap();
    }
}

/// The next record within 10 s.
async fn recv_within(
    consumer: &mut kafka_sansio::runtime::Consumer,
) -> kafka_sansio::client::ConsumedRecord {
    tokio::time::timeout(Duration::from_secs(10), consumer.recv())
        .await
        .expect("a record within 10 s")
        .unwrap()
}

/// The consumer facade against both mocks: a byte budget that holds one broker's
/// fetch at a time reads the partitions of every broker in turn, and a paused
/// partition yields nothing until it is resumed, then everything, in order.
#[test]
fn librdkafka_mock_consumer_shares_a_small_budget_and_pauses() {
    use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    for flavour in [Librdkafka::Debian, Librdkafka::V216] {
        let mut mock = Mock::start(flavour, 3, &["c:3:3"]);
        for p in 0..3 {
            mock.command(&format!("leader c {p} {}", p + 1));
        }
        let bootstrap = mock.bootstrap.join(",");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = ClientBuilder::new(&bootstrap)
                .configure(|c| {
                    c.consumer.buffer_max_bytes = 1500;
                    c.consumer.partition_max_bytes = 2048;
                    c.consumer.fetch_max_wait = Duration::from_millis(100);
                    // A batch per record, so that a fetch holds a few of them.
                    c.producer.batch_max_records = 1;
                })
                .build_tokio()
                .await
                .unwrap();
            let topics = client.describe_topics(vec!["c".into()]).await.unwrap();
            let leaders: std::collections::BTreeSet<i32> = topics[0]
                .partitions
                .iter()
                .filter_map(|p| p.leader)
                .collect();
            assert_eq!(leaders.len(), 3, "{flavour:?}: one partition per broker");
            let producer = client.producer();
            for i in 0..150 {
                drop(producer.send(ProducerRecord::new("c", format!("v{i}")).partition(i % 3)));
            }
            producer.flush().await.unwrap();
            let tps: Vec<_> = (0..3).map(|p| TopicPartition::new("c", p)).collect();
            let mut consumer = client.consumer();
            consumer.assign(tps.clone(), Offset::Beginning).unwrap();
            let mut next = [0i64; 3];
            for _ in 0..30 {
                let r = recv_within(&mut consumer).await;
                assert_eq!(r.record.offset, next[r.partition as usize], "{flavour:?}");
                next[r.partition as usize] += 1;
            }
            assert!(
                next.iter().all(|n| *n >= 5),
                "{flavour:?}: first 30 records by partition {next:?}"
            );
            consumer.pause(vec![tps[0].clone()]).unwrap();
            while next[1] + next[2] < 100 {
                let r = recv_within(&mut consumer).await;
                assert_ne!(
                    r.partition, 0,
                    "{flavour:?}: a record of the paused partition"
                );
                assert_eq!(r.record.offset, next[r.partition as usize]);
                next[r.partition as usize] += 1;
            }
            assert!(
                tokio::time::timeout(Duration::from_millis(500), consumer.recv())
                    .await
                    .is_err(),
                "{flavour:?}: nothing comes while partition 0 is paused"
            );
            consumer.resume(vec![tps[0].clone()]).unwrap();
            while next[0] < 50 {
                let r = recv_within(&mut consumer).await;
                assert_eq!((r.partition, r.record.offset), (0, next[0]), "{flavour:?}");
                next[0] += 1;
            }
            client.close().await;
        });
    }
}
