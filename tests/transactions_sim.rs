//! The transactional producer against the simulated cluster's coordinator: what a
//! read_committed reader sees after commits and aborts, offsets committed with a
//! transaction, fencing by a newer instance, a transaction that cannot commit, and
//! calls out of order.
#![cfg(feature = "sim")]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // tests own their clock

use std::time::Duration;

use kafka_sansio::client::{
    Client, ClientConfig, ClientError, Event, FetchOptions, IsolationLevel, OffsetSpec, OpId,
    OpOutput, ProducerRecord, RecordId, TopicPartition, TransactionError,
};
use kafka_sansio::messages::{ApiKey, ErrorCode};
use kafka_sansio::sim::{ClusterConfig, HostId, NetworkConfig, Simulation};

const T: &str = "t";

fn cluster(brokers: usize) -> Simulation {
    let mut sim = Simulation::new(
        7,
        ClusterConfig {
            brokers,
            ..ClusterConfig::default()
        },
        NetworkConfig::default(),
        std::time::Instant::now(),
    );
    sim.cluster()
        .create_topic(T, 2, brokers.min(3) as i16)
        .unwrap();
    sim
}

fn producer(sim: &mut Simulation, id: &str) -> HostId {
    let mut config = ClientConfig::new(&sim.bootstrap()).unwrap();
    config.producer.transactional_id = Some(id.into());
    config.producer.linger = Duration::from_millis(2);
    let now = sim.now();
    sim.add_client(Client::new(config, now))
}

fn run(sim: &mut Simulation, host: HostId, op: OpId) -> Result<OpOutput, ClientError> {
    sim.run_until_done(host, op, Duration::from_secs(60))
}

fn init(sim: &mut Simulation, host: HostId) {
    let now = sim.now();
    let op = sim.client(host).init_transactions(now);
    assert_eq!(run(sim, host, op), Ok(OpOutput::Transaction));
}

fn send(sim: &mut Simulation, host: HostId, partition: i32, value: &str) -> RecordId {
    let now = sim.now();
    sim.client(host)
        .send(
            now,
            ProducerRecord::new(T, value.to_owned()).partition(partition),
        )
        .unwrap()
}

fn begin(sim: &mut Simulation, host: HostId) -> Result<(), ClientError> {
    let now = sim.now();
    sim.client(host).begin_transaction(now)
}

fn commit(sim: &mut Simulation, host: HostId) -> Result<OpOutput, ClientError> {
    let now = sim.now();
    let op = sim.client(host).commit_transaction(now);
    run(sim, host, op)
}

fn abort(sim: &mut Simulation, host: HostId) -> Result<OpOutput, ClientError> {
    let now = sim.now();
    let op = sim.client(host).abort_transaction(now);
    run(sim, host, op)
}

/// Every value a reader at `isolation` reads from partition `p`, by a client of
/// its own.
fn read(sim: &mut Simulation, p: i32, isolation: IsolationLevel) -> Vec<String> {
    let config = ClientConfig::new(&sim.bootstrap()).unwrap();
    let now = sim.now();
    let reader = sim.add_client(Client::new(config, now));
    let mut values = Vec::new();
    let mut offset = 0;
    for _ in 0..100 {
        let now = sim.now();
        let options = FetchOptions::default()
            .max_wait(Duration::ZERO)
            .isolation(isolation);
        let op = sim.client(reader).fetch(now, T, p, offset, options);
        let Ok(OpOutput::Fetched(out)) = run(sim, reader, op) else {
            panic!("the fetch fails")
        };
        values.extend(
            out.records
                .iter()
                .map(|r| String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned()),
        );
        let end = if isolation == IsolationLevel::ReadCommitted {
            out.last_stable_offset
        } else {
            out.high_watermark
        };
        if out.next_offset >= end {
            return values;
        }
        offset = out.next_offset;
    }
    panic!("partition {p} was not read to its end");
}

/// Each record's delivery, by id.
fn deliveries(sim: &mut Simulation, host: HostId) -> Vec<(RecordId, Result<i64, ClientError>)> {
    sim.client_events(host)
        .filter_map(|e| match e {
            Event::Delivered { record, result } => {
                Some((record, result.map(|m| m.offset.unwrap_or(-1))))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn read_committed_readers_see_committed_transactions_whole_and_aborted_ones_not_at_all() {
    let mut sim = cluster(3);
    let host = producer(&mut sim, "tx");
    init(&mut sim, host);
    let now = sim.now();
    sim.client(host).begin_transaction(now).unwrap();
    for i in 0..3 {
        send(&mut sim, host, 0, &format!("c1-{i}"));
        send(&mut sim, host, 1, &format!("c1-{i}"));
    }
    assert_eq!(commit(&mut sim, host), Ok(OpOutput::Transaction));
    let first = deliveries(&mut sim, host);
    assert_eq!(first.len(), 6);
    assert!(first.iter().all(|(_, r)| r.is_ok()), "{first:?}");

    begin(&mut sim, host).unwrap();
    send(&mut sim, host, 0, "a-0");
    sim.run_for(Duration::from_millis(50)); // written before the abort
    send(&mut sim, host, 0, "a-1");
    assert_eq!(abort(&mut sim, host), Ok(OpOutput::Transaction));

    begin(&mut sim, host).unwrap();
    send(&mut sim, host, 0, "c2-0");
    assert_eq!(commit(&mut sim, host), Ok(OpOutput::Transaction));

    let committed = ["c1-0", "c1-1", "c1-2", "c2-0"];
    assert_eq!(read(&mut sim, 0, IsolationLevel::ReadCommitted), committed);
    assert_eq!(
        read(&mut sim, 1, IsolationLevel::ReadCommitted),
        ["c1-0", "c1-1", "c1-2"]
    );
    // The aborted record that was written is in the log for read_uncommitted.
    let all = read(&mut sim, 0, IsolationLevel::ReadUncommitted);
    assert!(all.contains(&"a-0".to_owned()), "{all:?}");
    assert!(!all.contains(&"a-1".to_owned()), "never sent: {all:?}");
    // The record dropped unsent was told so.
    let second = deliveries(&mut sim, host);
    assert!(
        second
            .iter()
            .any(|(_, r)| matches!(r, Err(ClientError::Transaction(TransactionError::Aborted)))),
        "{second:?}"
    );
    // Every transaction ended: nothing holds the last stable offset back.
    let (hw, _) = sim.cluster().partition_offsets(T, 0).unwrap();
    assert_eq!(sim.cluster().partition_last_stable_offset(T, 0), Some(hw));
}

/// `OffsetSpec::LastStable` is where a read_committed reader's log ends: the
/// first offset of a transaction still open, the high watermark once it ended.
#[test]
fn the_last_stable_offset_stops_at_an_open_transaction() {
    let mut sim = cluster(3);
    let host = producer(&mut sim, "lso");
    init(&mut sim, host);
    let offsets = |sim: &mut Simulation| {
        [OffsetSpec::Latest, OffsetSpec::LastStable].map(|spec| {
            let now = sim.now();
            let op = sim.client(host).list_offsets(now, T, 0, spec);
            match run(sim, host, op) {
                Ok(OpOutput::Offset { offset, .. }) => offset,
                other => panic!("{spec:?}: {other:?}"),
            }
        })
    };
    begin(&mut sim, host).unwrap();
    for v in ["a", "b", "c"] {
        send(&mut sim, host, 0, v);
    }
    assert_eq!(commit(&mut sim, host), Ok(OpOutput::Transaction));
    // Three records and the commit marker.
    assert_eq!(offsets(&mut sim), [4, 4]);
    begin(&mut sim, host).unwrap();
    let d = send(&mut sim, host, 0, "d");
    let now = sim.now();
    sim.client(host).flush(now);
    assert!(sim.run_until(Duration::from_secs(10), |sim| {
        deliveries(sim, host)
            .iter()
            .any(|(id, r)| *id == d && r.is_ok())
    }));
    // "d" is written, its transaction open: read_committed stops before it.
    assert_eq!(offsets(&mut sim), [5, 4]);
    assert_eq!(abort(&mut sim, host), Ok(OpOutput::Transaction));
    assert_eq!(offsets(&mut sim), [6, 6]);
}

#[test]
fn offsets_sent_to_a_transaction_are_committed_with_it_and_dropped_by_an_abort() {
    let mut sim = cluster(3);
    let host = producer(&mut sim, "enricher");
    init(&mut sim, host);
    let p0 = TopicPartition::new(T, 0);
    for (offset, commit_it) in [(10, false), (20, true), (30, false)] {
        begin(&mut sim, host).unwrap();
        send(&mut sim, host, 1, "out");
        let now = sim.now();
        let op = sim
            .client(host)
            .send_offsets_to_transaction(now, "g", vec![(p0.clone(), offset)]);
        assert_eq!(run(&mut sim, host, op), Ok(OpOutput::Transaction));
        // Not visible before the transaction ends.
        assert_ne!(sim.cluster().committed_offset("g", T, 0), Some(offset));
        if commit_it {
            assert_eq!(commit(&mut sim, host), Ok(OpOutput::Transaction));
        } else {
            assert_eq!(abort(&mut sim, host), Ok(OpOutput::Transaction));
        }
        let expected = if offset >= 20 { Some(20) } else { None };
        assert_eq!(
            sim.cluster().committed_offset("g", T, 0),
            expected,
            "after {offset}"
        );
    }
}

#[test]
fn a_newer_instance_fences_the_older_and_aborts_what_it_left_open() {
    let mut sim = cluster(3);
    let old = producer(&mut sim, "same-id");
    init(&mut sim, old);
    begin(&mut sim, old).unwrap();
    send(&mut sim, old, 0, "left-open");
    sim.run_for(Duration::from_millis(100));
    assert!(sim.cluster().partition_last_stable_offset(T, 0) == Some(0));

    let new = producer(&mut sim, "same-id");
    init(&mut sim, new);
    // The old instance's transaction was aborted by the new one's init.
    assert_eq!(
        read(&mut sim, 0, IsolationLevel::ReadCommitted),
        Vec::<String>::new()
    );
    let (hw, _) = sim.cluster().partition_offsets(T, 0).unwrap();
    assert_eq!(sim.cluster().partition_last_stable_offset(T, 0), Some(hw));

    // The old one cannot commit: it is fenced, for good.
    let refused = commit(&mut sim, old).unwrap_err();
    assert!(
        matches!(
            refused,
            ClientError::Transaction(TransactionError::Fatal(_))
        ),
        "{refused:?}"
    );
    let again = begin(&mut sim, old).unwrap_err();
    assert!(matches!(
        again,
        ClientError::Transaction(TransactionError::Fatal(_))
    ));
    let now = sim.now();
    let send_refused = sim
        .client(old)
        .send(now, ProducerRecord::new(T, "x"))
        .unwrap_err();
    assert!(
        format!("{send_refused}").contains("cannot go on"),
        "{send_refused}"
    );

    // The new one goes on.
    begin(&mut sim, new).unwrap();
    send(&mut sim, new, 0, "from-new");
    assert_eq!(commit(&mut sim, new), Ok(OpOutput::Transaction));
    assert_eq!(
        read(&mut sim, 0, IsolationLevel::ReadCommitted),
        ["from-new"]
    );
}

#[test]
fn a_record_that_fails_makes_the_transaction_abortable_and_the_next_one_goes_on() {
    let mut sim = cluster(1);
    let host = producer(&mut sim, "tx");
    init(&mut sim, host);
    begin(&mut sim, host).unwrap();
    // The partition is refused for good: the record cannot be written.
    sim.cluster()
        .inject_error(ApiKey::Produce, ErrorCode::MESSAGE_TOO_LARGE, 1);
    send(&mut sim, host, 0, "refused");
    let refused = commit(&mut sim, host).unwrap_err();
    assert!(
        matches!(
            refused,
            ClientError::Transaction(TransactionError::Abortable(_))
        ),
        "{refused:?}"
    );
    // Sends are refused until the abort.
    let now = sim.now();
    let no = sim
        .client(host)
        .send(now, ProducerRecord::new(T, "x"))
        .unwrap_err();
    assert!(format!("{no}").contains("must be aborted"), "{no}");
    assert_eq!(abort(&mut sim, host), Ok(OpOutput::Transaction));

    begin(&mut sim, host).unwrap();
    send(&mut sim, host, 0, "after");
    assert_eq!(commit(&mut sim, host), Ok(OpOutput::Transaction));
    assert_eq!(read(&mut sim, 0, IsolationLevel::ReadCommitted), ["after"]);
}

#[test]
fn calls_out_of_order_are_refused_with_what_stood_in_their_way() {
    let mut sim = cluster(1);
    let host = producer(&mut sim, "tx");
    let now = sim.now();
    let state = |r: Result<OpOutput, ClientError>| match r {
        Err(ClientError::Transaction(TransactionError::State { operation, .. })) => operation,
        other => panic!("not a state error: {other:?}"),
    };
    // Before init: no transaction, no send.
    assert!(matches!(
        sim.client(host).begin_transaction(now),
        Err(ClientError::Transaction(TransactionError::State { .. }))
    ));
    assert!(
        sim.client(host)
            .send(now, ProducerRecord::new(T, "x"))
            .is_err()
    );
    init(&mut sim, host);
    // Initialized, nothing open.
    assert_eq!(state(commit(&mut sim, host)), "commit_transaction");
    assert_eq!(state(abort(&mut sim, host)), "abort_transaction");
    let op = {
        let now = sim.now();
        sim.client(host).init_transactions(now)
    };
    assert_eq!(state(run(&mut sim, host, op)), "init_transactions");
    begin(&mut sim, host).unwrap();
    assert!(begin(&mut sim, host).is_err());
    // A commit with nothing sent asks nothing of the coordinator.
    assert_eq!(commit(&mut sim, host), Ok(OpOutput::Transaction));

    // A producer without a transactional id has none of it.
    let config = ClientConfig::new(&sim.bootstrap()).unwrap();
    let plain = sim.add_client(Client::new(config, sim.now()));
    let op = {
        let now = sim.now();
        sim.client(plain).init_transactions(now)
    };
    assert_eq!(
        run(&mut sim, plain, op),
        Err(ClientError::Transaction(TransactionError::NotTransactional))
    );
}

#[test]
fn transactions_survive_a_coordinator_crash_and_leader_moves() {
    let mut sim = cluster(3);
    let host = producer(&mut sim, "tx-moving");
    init(&mut sim, host);
    let mut expected = Vec::new();
    for round in 0..6i32 {
        begin(&mut sim, host).unwrap();
        for i in 0..4 {
            send(&mut sim, host, 0, &format!("{round}-{i}"));
        }
        // Written before it ends, so an abort has something to abort.
        sim.run_for(Duration::from_millis(30));
        // Something moves under the transaction.
        let now = sim.now();
        match round % 3 {
            0 => {
                let _ = sim.cluster().move_leader(T, 0, (round + 1) % 3);
            }
            1 => sim.cluster().crash_broker(round % 3, now),
            _ => {
                for b in 0..3 {
                    sim.cluster().restart_broker(b, now);
                }
            }
        }
        let commit_it = round % 2 == 0;
        let result = if commit_it {
            commit(&mut sim, host)
        } else {
            abort(&mut sim, host)
        };
        assert_eq!(result, Ok(OpOutput::Transaction), "round {round}");
        if commit_it {
            expected.extend((0..4).map(|i| format!("{round}-{i}")));
        }
    }
    let now = sim.now();
    for b in 0..3 {
        sim.cluster().restart_broker(b, now);
    }
    assert_eq!(read(&mut sim, 0, IsolationLevel::ReadCommitted), expected);
}
