//! The producer against the simulated cluster on a virtual clock: batching,
//! partitioning, the byte budget, idempotence through faults, and exactly one
//! delivery event per record.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_sansio::client::{
    Client, ClientConfig, ClientError, Event, ProducerRecord, RecordId, RecordMetadata, SendError,
    partition_for_key,
};
use kafka_sansio::messages::{ApiKey, ErrorCode};
use kafka_sansio::records::{BatchReader, DecodeOptions};
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

/// Runs until every record sent has a delivery event (or `limit` passes); returns
/// the deliveries, checking that no record got two.
fn deliveries(
    sim: &mut Simulation,
    host: HostId,
    sent: &[RecordId],
    limit: Duration,
) -> BTreeMap<RecordId, Result<RecordMetadata, ClientError>> {
    let mut got = BTreeMap::new();
    sim.run_until(limit, |sim| {
        for e in sim.client_events(host).collect::<Vec<_>>() {
            if let Event::Delivered { record, result } = e {
                assert!(
                    got.insert(record, result).is_none(),
                    "{record:?} delivered twice"
                );
            }
        }
        got.len() >= sent.len()
    });
    assert_eq!(
        got.len(),
        sent.len(),
        "every record gets its delivery event"
    );
    got
}

/// The values in a partition's log, in order.
fn log(sim: &mut Simulation, topic: &str, partition: i32) -> Vec<Bytes> {
    let opts = DecodeOptions::default();
    let mut out = Vec::new();
    for b in sim.cluster().partition_batches(topic, partition) {
        for batch in BatchReader::new(b, opts) {
            for r in batch.unwrap().records(&opts).unwrap() {
                out.push(r.unwrap().value_bytes().unwrap());
            }
        }
    }
    out
}

#[test]
fn keyed_records_land_where_java_puts_them_once_each_and_in_order() {
    let (mut sim, host) = setup(3, 1, |_| {});
    sim.cluster().create_topic("t", 6, 3).unwrap();
    let mut sent = Vec::new();
    let mut expected: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for i in 0..600 {
        let key = format!("user-{}", i % 37);
        let value = format!("v{i}");
        expected
            .entry(partition_for_key(key.as_bytes(), 6))
            .or_default()
            .push(value.clone());
        let now = sim.now();
        sent.push(
            sim.client(host)
                .send(now, ProducerRecord::new("t", value).key(key))
                .unwrap(),
        );
        if i % 50 == 0 {
            sim.run_for(Duration::from_millis(1));
        }
    }
    let got = deliveries(&mut sim, host, &sent, Duration::from_secs(30));
    let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for id in &sent {
        let m = got[id].as_ref().unwrap();
        offsets
            .entry(m.partition)
            .or_default()
            .push(m.offset.unwrap());
    }
    for (p, values) in &expected {
        let log = log(&mut sim, "t", *p);
        assert_eq!(
            log.iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect::<Vec<_>>(),
            *values,
            "partition {p}"
        );
        let o = &offsets[p];
        assert_eq!(
            *o,
            (0..o.len() as i64).collect::<Vec<_>>(),
            "offsets in send order"
        );
    }
    assert!(
        sim.client(host)
            .stats()
            .partitions
            .iter()
            .all(|p| p.buffered_records == 0)
    );
}

#[test]
fn null_keys_stick_to_a_partition_per_batch_and_spread_over_time() {
    let (mut sim, host) = setup(1, 2, |c| c.producer.batch_max_bytes = 4096);
    sim.cluster().create_topic("t", 4, 1).unwrap();
    let mut sent = Vec::new();
    for i in 0..400 {
        let now = sim.now();
        sent.push(
            sim.client(host)
                .send(now, ProducerRecord::new("t", format!("{i:0100}")))
                .unwrap(),
        );
    }
    let got = deliveries(&mut sim, host, &sent, Duration::from_secs(30));
    let mut per: BTreeMap<i32, usize> = BTreeMap::new();
    for r in got.values() {
        *per.entry(r.as_ref().unwrap().partition).or_default() += 1;
    }
    assert!(per.len() >= 3, "spread over partitions: {per:?}");
    // runs of the same partition, not one partition per record
    let seq: Vec<i32> = sent
        .iter()
        .map(|id| got[id].as_ref().unwrap().partition)
        .collect();
    let switches = seq.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(switches < 40, "{switches} switches");
}

#[test]
fn the_byte_budget_refuses_at_once_and_is_never_exceeded() {
    let limit = 64 * 1024;
    let (mut sim, host) = setup(1, 3, |c| {
        c.producer.buffer_max_bytes = limit;
        c.producer.linger = Duration::from_millis(50);
    });
    sim.cluster().create_topic("t", 1, 1).unwrap();
    let value = vec![7u8; 1000];
    let mut sent = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        let now = sim.now();
        match sim
            .client(host)
            .send(now, ProducerRecord::new("t", value.clone()))
        {
            Ok(id) => sent.push(id),
            Err(SendError::BufferFull { buffered, limit: l }) => {
                assert_eq!(l, limit);
                assert!(buffered <= limit);
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
        assert!(sim.client(host).buffered_bytes() <= limit);
    }
    assert!(refused > 100, "refused {refused}");
    let big = vec![0u8; 2 * 1024 * 1024];
    let now = sim.now();
    assert!(matches!(
        sim.client(host).send(now, ProducerRecord::new("t", big)),
        Err(SendError::RecordTooLarge { .. })
    ));
    let got = deliveries(&mut sim, host, &sent, Duration::from_secs(30));
    assert!(got.values().all(Result::is_ok));
    assert_eq!(
        sim.client(host).buffered_bytes(),
        0,
        "the budget is given back"
    );
}

#[test]
fn linger_holds_a_partial_batch_and_flush_sends_it_at_once() {
    let (mut sim, host) = setup(1, 4, |c| c.producer.linger = Duration::from_secs(5));
    sim.cluster().create_topic("t", 1, 1).unwrap();
    let now = sim.now();
    let id = sim
        .client(host)
        .send(now, ProducerRecord::new("t", "x"))
        .unwrap();
    sim.run_for(Duration::from_secs(2));
    assert!(sim.client_events(host).next().is_none(), "still lingering");
    let now = sim.now();
    sim.client(host).flush(now);
    let got = deliveries(&mut sim, host, &[id], Duration::from_millis(100));
    assert_eq!(got[&id].as_ref().unwrap().offset, Some(0));
}

#[test]
fn idempotent_producing_survives_crashes_and_sequence_errors_without_duplicates() {
    let (mut sim, host) = setup(3, 5, |c| c.producer.linger = Duration::from_millis(2));
    sim.cluster().create_topic("t", 2, 3).unwrap();
    let mut sent = Vec::new();
    let mut values: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for i in 0..2000 {
        let p = i % 2;
        let value = format!("r{i}");
        values.entry(p).or_default().push(value.clone());
        let now = sim.now();
        sent.push(
            sim.client(host)
                .send(now, ProducerRecord::new("t", value).partition(p))
                .unwrap(),
        );
        match i {
            300 => {
                let leader = sim.cluster().partition_leader("t", 0).unwrap();
                let now = sim.now();
                sim.cluster().crash_broker(leader, now);
            }
            700 => sim.cluster().inject_error(
                ApiKey::Produce,
                ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
                2,
            ),
            1100 => sim
                .cluster()
                .inject_error(ApiKey::Produce, ErrorCode::UNKNOWN_PRODUCER_ID, 1),
            1500 => {
                sim.cluster()
                    .inject_error(ApiKey::Produce, ErrorCode::NOT_LEADER_OR_FOLLOWER, 3)
            }
            _ => {}
        }
        if i % 20 == 0 {
            sim.run_for(Duration::from_millis(3));
        }
    }
    let got = deliveries(&mut sim, host, &sent, Duration::from_secs(120));
    let failed = got.values().filter(|r| r.is_err()).count();
    assert_eq!(failed, 0, "{:?}", got.values().find(|r| r.is_err()));
    for (p, want) in &values {
        let log: Vec<String> = log(&mut sim, "t", *p)
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        assert_eq!(
            &log, want,
            "partition {p}: every record once, in send order"
        );
    }
    assert!(sim.client(host).stats().retries > 0);
    // The sequence errors bumped the epoch (KIP-360) instead of failing records.
    let mut producers = std::collections::BTreeSet::new();
    for p in 0..2 {
        for b in sim.cluster().partition_batches("t", p) {
            for batch in BatchReader::new(b, DecodeOptions::default()) {
                let h = batch.unwrap().into_v2().unwrap().header;
                producers.insert((h.producer_id, h.producer_epoch));
            }
        }
    }
    assert!(producers.len() >= 2, "{producers:?}");
    assert!(
        producers.iter().all(|(id, _)| *id >= 0),
        "every batch is idempotent"
    );
}

#[test]
fn every_record_fails_once_by_its_delivery_timeout_when_nothing_answers() {
    let (mut sim, host) = setup(1, 6, |c| {
        c.producer.delivery_timeout = Duration::from_secs(3)
    });
    sim.cluster().create_topic("t", 1, 1).unwrap();
    let now = sim.now();
    sim.cluster().crash_broker(0, now);
    let started = sim.now();
    let mut sent = Vec::new();
    for i in 0..10 {
        let now = sim.now();
        sent.push(
            sim.client(host)
                .send(now, ProducerRecord::new("t", format!("{i}")))
                .unwrap(),
        );
    }
    let got = deliveries(&mut sim, host, &sent, Duration::from_secs(10));
    assert!(sim.now() - started <= Duration::from_millis(3100));
    for r in got.values() {
        assert!(matches!(r, Err(ClientError::Timeout { .. })), "{r:?}");
    }
    assert_eq!(sim.client(host).pending_records(), 0);
}

#[test]
fn acks_zero_and_one_deliver_without_idempotence() {
    for acks in [0i16, 1] {
        let (mut sim, host) = setup(1, 7, |c| {
            c.producer.acks = acks;
            c.producer.idempotence = false;
        });
        sim.cluster().create_topic("t", 1, 1).unwrap();
        let mut sent = Vec::new();
        for i in 0..50 {
            let now = sim.now();
            sent.push(
                sim.client(host)
                    .send(now, ProducerRecord::new("t", format!("{i}")))
                    .unwrap(),
            );
        }
        let got = deliveries(&mut sim, host, &sent, Duration::from_secs(10));
        for (i, id) in sent.iter().enumerate() {
            let m = got[id].as_ref().unwrap();
            if acks == 0 {
                assert_eq!(m.offset, None);
            } else {
                assert_eq!(m.offset, Some(i as i64));
            }
        }
        sim.run_for(Duration::from_secs(1));
        assert_eq!(log(&mut sim, "t", 0).len(), 50);
    }
    // idempotence with acks=1 is refused at once
    let (mut sim, host) = setup(1, 8, |c| c.producer.acks = 1);
    let now = sim.now();
    assert!(matches!(
        sim.client(host).send(now, ProducerRecord::new("t", "x")),
        Err(SendError::InvalidConfig(_))
    ));
}

#[test]
fn close_ends_every_record_once_in_flight_or_buffered() {
    let (mut sim, host) = setup(1, 9, |c| c.producer.linger = Duration::from_millis(50));
    sim.cluster().create_topic("t", 2, 1).unwrap();
    let mut sent = Vec::new();
    for i in 0..100 {
        let now = sim.now();
        sent.push(
            sim.client(host)
                .send(
                    now,
                    ProducerRecord::new("t", format!("{i}")).partition(i % 2),
                )
                .unwrap(),
        );
        if i == 49 {
            // The first half lingers out and goes on the wire.
            sim.run_for(Duration::from_millis(50));
        }
    }
    let now = sim.now();
    sim.client(host).close(now);
    let got = deliveries(&mut sim, host, &sent, Duration::from_secs(1));
    let closed = got
        .values()
        .filter(|r| matches!(r, Err(ClientError::Closed)))
        .count();
    assert!(closed >= 50, "the lingering half fails Closed: {closed}");
    assert_eq!(sim.client(host).pending_records(), 0);
    assert_eq!(sim.client(host).buffered_bytes(), 0);
}

/// A batch that fails at its delivery timeout takes its sequence numbers with it:
/// the producer bumps its epoch, so the batches after it start afresh instead of
/// being refused as out of order behind the gap. A later batch whose first attempt
/// went unanswered (its outcome unknown) was refused that way until its own
/// delivery timeout: retried as it was, in case that attempt was in the log (seed
/// 1083679 of the producer invariants, where that failed every record of the
/// healed phase).
#[test]
fn a_batch_that_fails_at_its_delivery_timeout_does_not_hold_back_the_next() {
    let (mut sim, host) = setup(1, 7, |c| {
        c.producer.delivery_timeout = Duration::from_secs(5);
        c.producer.linger = Duration::from_millis(1);
        c.producer.broker_timeout = Duration::from_millis(200);
        c.connection.request_timeout = Duration::from_millis(300);
    });
    sim.cluster().create_topic("t", 1, 1).unwrap();
    let send = |sim: &mut Simulation, value: &str| {
        let now = sim.now();
        sim.client(host)
            .send(now, ProducerRecord::new("t", value.to_owned()))
            .unwrap()
    };
    let r0 = send(&mut sim, "r0");
    let got = deliveries(&mut sim, host, &[r0], Duration::from_secs(5));
    assert!(got[&r0].is_ok(), "{got:?}");
    // r1 is refused (not enough replicas: nothing written) until its delivery
    // timeout, which leaves a gap in the producer's sequence numbers.
    let r1 = send(&mut sim, "r1");
    let mut r1_result = None;
    sim.run_until(Duration::from_secs(10), |sim| {
        for e in sim.client_events(host).collect::<Vec<_>>() {
            if let Event::Delivered { record, result } = e {
                assert_eq!(record, r1);
                r1_result = Some(result);
            }
        }
        if r1_result.is_none() && sim.cluster().injected_pending(ApiKey::Produce) == 0 {
            sim.cluster()
                .inject_error(ApiKey::Produce, ErrorCode::NOT_ENOUGH_REPLICAS, 1);
        }
        r1_result.is_some()
    });
    assert!(
        matches!(r1_result, Some(Err(ClientError::Timeout { .. }))),
        "{r1_result:?}"
    );
    // r2's first request goes on a connection that is reset (once r1's retry
    // backoff is over): its outcome is unknown.
    sim.network.reset_probability = 1.0;
    let r2 = send(&mut sim, "r2");
    sim.run_for(Duration::from_millis(1500));
    sim.network.reset_probability = 0.0;
    let got = deliveries(&mut sim, host, &[r2], Duration::from_secs(10));
    assert!(got[&r2].is_ok(), "{got:?}");
    assert_eq!(
        log(&mut sim, "t", 0),
        vec![Bytes::from("r0"), Bytes::from("r2")]
    );
    assert_eq!(sim.client(host).pending_records(), 0);
}
