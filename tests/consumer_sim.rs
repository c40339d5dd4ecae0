//! The consumer's fetching against the simulated cluster on a virtual clock:
//! assignment, seeks, pause, the byte budget, offset reset, and leader moves.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use kafka_sansio::client::{
    Client, ClientConfig, ClientError, ConsumedRecord, Event, Offset, OffsetReset, ProducerRecord,
    TopicPartition,
};
use kafka_sansio::sim::{ClusterConfig, HostId, NetworkConfig, Simulation};

fn setup(brokers: usize, seed: u64, tweak: impl FnOnce(&mut ClientConfig)) -> (Simulation, HostId) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut sim = Simulation::new(
        seed,
        ClusterConfig {
            brokers,
            auto_create_topics: false,
            ..Default::default()
        },
        NetworkConfig::default(),
        Instant::now(),
    );
    let mut config = ClientConfig::new(&sim.bootstrap()).unwrap();
    config.seed = seed;
    tweak(&mut config);
    let host = sim.add_client(Client::new(config, sim.now()));
    (sim, host)
}

/// Produces `n` records per partition (values `p{partition}-{i}`) and waits for them.
fn produce(sim: &mut Simulation, host: HostId, topic: &str, partitions: i32, n: usize) {
    let mut ids = Vec::new();
    for p in 0..partitions {
        for i in 0..n {
            let now = sim.now();
            ids.push(
                sim.client(host)
                    .send(
                        now,
                        ProducerRecord::new(topic, format!("p{p}-{i}")).partition(p),
                    )
                    .unwrap(),
            );
        }
    }
    let mut delivered = 0;
    sim.run_until(Duration::from_secs(60), |sim| {
        delivered += sim
            .client_events(host)
            .filter(|e| matches!(e, Event::Delivered { result: Ok(_), .. }))
            .count();
        delivered == ids.len()
    });
    assert_eq!(delivered, ids.len());
}

/// Polls until `n` records came or `limit` passed.
fn consume(sim: &mut Simulation, host: HostId, n: usize, limit: Duration) -> Vec<ConsumedRecord> {
    let mut got = Vec::new();
    sim.run_until(limit, |sim| {
        let now = sim.now();
        got.extend(sim.client(host).poll_records(now, 1000));
        got.len() >= n
    });
    got
}

fn values(records: &[ConsumedRecord], partition: i32) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.partition == partition)
        .map(|r| String::from_utf8_lossy(r.record.value().unwrap()).into_owned())
        .collect()
}

#[test]
fn assigned_partitions_are_read_in_order_from_where_they_start() {
    let (mut sim, host) = setup(3, 1, |_| {});
    sim.cluster().create_topic("t", 3, 3).unwrap();
    produce(&mut sim, host, "t", 3, 500);
    let now = sim.now();
    let tps: Vec<_> = (0..3).map(|p| TopicPartition::new("t", p)).collect();
    sim.client(host).assign(now, tps.clone(), Offset::Beginning);
    let got = consume(&mut sim, host, 1500, Duration::from_secs(30));
    assert_eq!(got.len(), 1500);
    for p in 0..3 {
        let want: Vec<String> = (0..500).map(|i| format!("p{p}-{i}")).collect();
        assert_eq!(values(&got, p), want, "partition {p}");
    }
    let mut positions = sim.client(host).positions();
    positions.sort();
    assert_eq!(
        positions.iter().map(|(_, o, _)| *o).collect::<Vec<_>>(),
        [500, 500, 500]
    );

    // Seeks: an offset, the end, a time.
    let now = sim.now();
    sim.client(host).seek(now, &tps[0], Offset::At(490));
    sim.client(host).seek(now, &tps[1], Offset::End);
    sim.client(host).unassign(now, &tps[2..]);
    let got = consume(&mut sim, host, 10, Duration::from_secs(5));
    assert_eq!(
        values(&got, 0),
        (490..500).map(|i| format!("p0-{i}")).collect::<Vec<_>>()
    );
    assert!(values(&got, 1).is_empty() && values(&got, 2).is_empty());
    produce(&mut sim, host, "t", 2, 5);
    let got = consume(&mut sim, host, 10, Duration::from_secs(5));
    assert_eq!(
        values(&got, 1),
        (0..5).map(|i| format!("p1-{i}")).collect::<Vec<_>>(),
        "from the end on"
    );
}

#[test]
fn paused_partitions_are_not_fetched_and_resume_where_they_stopped() {
    let (mut sim, host) = setup(1, 2, |_| {});
    sim.cluster().create_topic("t", 2, 1).unwrap();
    produce(&mut sim, host, "t", 2, 20);
    let now = sim.now();
    let tps: Vec<_> = (0..2).map(|p| TopicPartition::new("t", p)).collect();
    sim.client(host).assign(now, tps.clone(), Offset::Beginning);
    sim.client(host).pause(now, &tps[1..]);
    let got = consume(&mut sim, host, 40, Duration::from_secs(3));
    assert_eq!(got.len(), 20);
    assert!(got.iter().all(|r| r.partition == 0));
    let now = sim.now();
    sim.client(host).resume(now, &tps[1..]);
    let got = consume(&mut sim, host, 20, Duration::from_secs(3));
    assert_eq!(values(&got, 1).len(), 20);
}

#[test]
fn the_fetch_budget_bounds_what_is_buffered() {
    let budget = 256 * 1024;
    let (mut sim, host) = setup(1, 3, |c| {
        c.consumer.buffer_max_bytes = budget;
        c.consumer.partition_max_bytes = 64 * 1024;
    });
    sim.cluster().create_topic("t", 8, 1).unwrap();
    produce(&mut sim, host, "t", 8, 2000);
    let now = sim.now();
    sim.client(host).assign(
        now,
        (0..8).map(|p| TopicPartition::new("t", p)).collect(),
        Offset::Beginning,
    );
    // Without polling, fetching stops at the budget.
    let mut max_seen = 0;
    sim.run_until(Duration::from_secs(5), |sim| {
        max_seen = max_seen.max(sim.client(host).consumer_buffered_bytes());
        false
    });
    assert!(max_seen <= budget, "{max_seen} > {budget}");
    assert!(max_seen > budget / 4, "it did fetch ({max_seen})");
    // Polling slowly drains everything, never over budget.
    let mut got = 0;
    let deadline = sim.now() + Duration::from_secs(120);
    while got < 16_000 && sim.now() < deadline {
        let now = sim.now();
        got += sim.client(host).poll_records(now, 50).len();
        assert!(sim.client(host).consumer_buffered_bytes() <= budget);
        sim.run_for(Duration::from_millis(1));
    }
    assert_eq!(got, 16_000);
}

#[test]
fn an_out_of_range_position_follows_the_reset_policy() {
    for (reset, expect_error) in [(OffsetReset::Earliest, false), (OffsetReset::Error, true)] {
        let (mut sim, host) = setup(1, 4, |c| c.consumer.auto_offset_reset = reset);
        sim.cluster().create_topic("t", 1, 1).unwrap();
        produce(&mut sim, host, "t", 1, 10);
        let now = sim.now();
        let op =
            sim.client(host)
                .delete_records(now, vec![("t".into(), 0, 4)], Duration::from_secs(5));
        sim.run_until_done(host, op, Duration::from_secs(5))
            .unwrap();
        let tp = TopicPartition::new("t", 0);
        let now = sim.now();
        sim.client(host)
            .assign(now, vec![tp.clone()], Offset::At(1)); // below the log start
        let got = consume(&mut sim, host, 6, Duration::from_secs(5));
        let errors: Vec<ClientError> = sim
            .client_events(host)
            .filter_map(|e| match e {
                Event::ConsumerError { error, .. } => Some(error),
                _ => None,
            })
            .collect();
        if expect_error {
            assert!(got.is_empty());
            assert_eq!(errors.len(), 1, "{errors:?}");
        } else {
            assert_eq!(
                values(&got, 0),
                (4..10).map(|i| format!("p0-{i}")).collect::<Vec<_>>()
            );
            assert!(errors.is_empty(), "{errors:?}");
        }
    }
}

#[test]
fn a_leader_crash_loses_and_repeats_nothing() {
    let (mut sim, host) = setup(3, 5, |_| {});
    sim.cluster().create_topic("t", 1, 3).unwrap();
    produce(&mut sim, host, "t", 1, 300);
    let now = sim.now();
    sim.client(host)
        .assign(now, vec![TopicPartition::new("t", 0)], Offset::Beginning);
    let mut got = consume(&mut sim, host, 100, Duration::from_secs(5));
    let leader = sim.cluster().partition_leader("t", 0).unwrap();
    let now = sim.now();
    sim.cluster().crash_broker(leader, now);
    produce(&mut sim, host, "t", 1, 100);
    got.extend(consume(
        &mut sim,
        host,
        400 - got.len(),
        Duration::from_secs(30),
    ));
    let offsets: Vec<i64> = got.iter().map(|r| r.record.offset).collect();
    assert_eq!(offsets, (0..400).collect::<Vec<_>>());
}

/// Polls five records at a time, a millisecond apart, until `n` came (or 30 s).
fn poll_slowly(sim: &mut Simulation, host: HostId, n: usize) -> Vec<ConsumedRecord> {
    let mut got = Vec::new();
    let deadline = sim.now() + Duration::from_secs(30);
    while got.len() < n && sim.now() < deadline {
        let now = sim.now();
        got.extend(sim.client(host).poll_records(now, 5));
        sim.run_for(Duration::from_millis(1));
    }
    got
}

/// A byte budget that holds one broker's fetch at a time is shared out in turn:
/// each broker's partitions are read, not only those of the broker with the lowest
/// id whenever it has more (which it always has here).
#[test]
fn a_budget_for_one_fetch_at_a_time_reaches_every_broker_in_turn() {
    let (mut sim, host) = setup(3, 9, |c| {
        c.consumer.buffer_max_bytes = 1500;
        c.consumer.partition_max_bytes = 2048;
        // A batch per record, so that a fetch holds a few of them.
        c.producer.batch_max_records = 1;
    });
    sim.cluster().create_topic("t", 3, 1).unwrap();
    let leaders: std::collections::BTreeSet<i32> = (0..3)
        .map(|p| sim.cluster().partition_leader("t", p).unwrap())
        .collect();
    assert_eq!(leaders.len(), 3, "one partition per broker");
    produce(&mut sim, host, "t", 3, 200);
    let now = sim.now();
    sim.client(host).assign(
        now,
        (0..3).map(|p| TopicPartition::new("t", p)).collect(),
        Offset::Beginning,
    );
    let got = poll_slowly(&mut sim, host, 150);
    for p in 0..3 {
        let n = values(&got, p).len();
        assert!(
            n >= 20,
            "partition {p}: {n} of the first {} records",
            got.len()
        );
    }
}

/// Within one broker's fetch, partitions that got records last are named last, so
/// a fetch too small for all of them does not keep filling the first one.
#[test]
fn a_fetch_too_small_for_every_partition_of_a_broker_serves_them_in_turn() {
    let (mut sim, host) = setup(1, 10, |c| {
        c.consumer.fetch_max_bytes = 600;
        c.consumer.partition_max_bytes = 64 * 1024;
        // Every fetch names every partition, in the order the client chooses.
        c.consumer.fetch_sessions = false;
        c.producer.batch_max_records = 1;
    });
    sim.cluster().create_topic("t", 3, 1).unwrap();
    produce(&mut sim, host, "t", 3, 200);
    let now = sim.now();
    sim.client(host).assign(
        now,
        (0..3).map(|p| TopicPartition::new("t", p)).collect(),
        Offset::Beginning,
    );
    let got = poll_slowly(&mut sim, host, 150);
    for p in 0..3 {
        let n = values(&got, p).len();
        assert!(
            n >= 20,
            "partition {p}: {n} of the first {} records",
            got.len()
        );
    }
}

/// Records fetched before a pause are not handed out while it lasts (as Java's
/// `pause`) and hold none of the byte budget: they are dropped, and fetched again
/// from the position after the resume.
#[test]
fn records_fetched_before_a_pause_are_fetched_again_after_the_resume() {
    // A budget that holds less than one fetch: were the paused partition's
    // records kept, they would stop every other fetch until the resume.
    let (mut sim, host) = setup(1, 11, |c| {
        c.consumer.buffer_max_bytes = 1500;
        c.consumer.partition_max_bytes = 2048;
        c.producer.batch_max_records = 1;
    });
    sim.cluster().create_topic("t", 2, 1).unwrap();
    produce(&mut sim, host, "t", 2, 20);
    let (p0, p1) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
    // Partition 1 first: the budget fills with its records.
    let now = sim.now();
    sim.client(host)
        .assign(now, vec![p1.clone()], Offset::Beginning);
    sim.run_until(Duration::from_secs(5), |sim| {
        sim.client_events(host)
            .any(|e| matches!(e, Event::RecordsReady))
    });
    assert!(sim.client(host).consumer_buffered_bytes() > 1000);
    let now = sim.now();
    sim.client(host).pause(now, std::slice::from_ref(&p1));
    sim.client(host).assign(now, vec![p0], Offset::Beginning);
    let got = poll_slowly(&mut sim, host, 20);
    assert_eq!(
        values(&got, 0).len(),
        20,
        "partition 0 is read while 1 is paused"
    );
    assert!(
        values(&got, 1).is_empty(),
        "a paused partition's records were handed out"
    );
    let now = sim.now();
    sim.client(host).resume(now, &[p1]);
    let got = poll_slowly(&mut sim, host, 20);
    let offsets: Vec<i64> = got.iter().map(|r| r.record.offset).collect();
    assert_eq!(offsets, (0..20).collect::<Vec<_>>());
    assert!(got.iter().all(|r| r.partition == 1));
}

/// A read_committed consumer that starts at the end while a transaction is open
/// starts at the last stable offset (the open transaction's first record), as
/// Java's does: when the transaction commits, its records are read. Starting at
/// the high watermark instead, past the open records, skipped them for good. The
/// same for the reset policy `Latest` of a partition with no position.
#[test]
fn read_committed_from_the_end_reads_a_transaction_open_when_it_started() {
    use kafka_sansio::client::IsolationLevel;
    for start in ["seek to end", "reset to latest"] {
        let (mut sim, host) = setup(1, 7, |c| {
            c.consumer.isolation = IsolationLevel::ReadCommitted;
            c.consumer.auto_offset_reset = OffsetReset::Latest;
        });
        let now = sim.now();
        sim.cluster().create_topic("t", 1, 1).unwrap();
        sim.cluster()
            .write_in_transaction("tx", "t", 0, &[b"before"], now)
            .unwrap();
        sim.cluster().complete_transaction("tx", true, now);
        sim.cluster()
            .write_in_transaction("tx", "t", 0, &[b"open-1", b"open-2"], now)
            .unwrap();
        assert_eq!(sim.cluster().partition_last_stable_offset("t", 0), Some(2));
        let now = sim.now();
        let from = if start == "seek to end" {
            Offset::End
        } else {
            // No committed offset and no position: the reset policy decides.
            Offset::At(1_000)
        };
        sim.client(host)
            .assign(now, vec![TopicPartition::new("t", 0)], from);
        // The consumer settles its position while the transaction is still open.
        assert!(consume(&mut sim, host, 1, Duration::from_secs(2)).is_empty());
        let now = sim.now();
        sim.cluster().complete_transaction("tx", true, now);
        let got = consume(&mut sim, host, 2, Duration::from_secs(5));
        assert_eq!(values(&got, 0), ["open-1", "open-2"], "{start}");
    }
}
