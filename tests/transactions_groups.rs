//! Exactly-once pipelines (consume, transform, produce) against the simulated
//! cluster: group members that commit their input offsets inside their output
//! transactions (KIP-447), through rebalances and a member that leaves with its
//! transaction still open. What a user checks: every input record is in the output
//! exactly once, as a read_committed reader sees it, and the group's committed
//! offsets end at the input's end.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests own their clock

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_sansio::client::{
    Client, ClientConfig, ClientError, ConsumedRecord, Event, FetchOptions, IsolationLevel, Offset,
    OffsetReset, OpId, OpOutput, ProducerRecord, TopicPartition, TransactionError,
};
use kafka_sansio::messages::ErrorCode;
use kafka_sansio::sim::{ClusterConfig, HostId, NetworkConfig, Simulation};

const GROUP: &str = "pipeline";
const IN: &str = "in";
const OUT: &str = "out";

fn cluster(seed: u64, partitions: i32) -> Simulation {
    let mut sim = Simulation::new(
        seed,
        ClusterConfig {
            brokers: 3,
            auto_create_topics: false,
            group_min_session_timeout: Duration::from_millis(500),
            ..ClusterConfig::default()
        },
        NetworkConfig::default(),
        Instant::now(),
    );
    sim.cluster().create_topic(IN, partitions, 3).unwrap();
    sim.cluster().create_topic(OUT, partitions, 3).unwrap();
    sim
}

/// A client that consumes `IN` in the group at `isolation`, committing nothing on
/// its own, and (with `transactional_id`) produces transactionally.
fn member(
    sim: &mut Simulation,
    seed: u64,
    transactional_id: Option<&str>,
    isolation: IsolationLevel,
) -> HostId {
    member_configured(sim, seed, transactional_id, isolation, |_| {})
}

/// As [`member`], with `configure` applied to its config last.
fn member_configured(
    sim: &mut Simulation,
    seed: u64,
    transactional_id: Option<&str>,
    isolation: IsolationLevel,
    configure: impl FnOnce(&mut ClientConfig),
) -> HostId {
    let mut config = ClientConfig::new(&sim.bootstrap()).unwrap();
    config.seed = seed;
    config.consumer.group_id = Some(GROUP.into());
    config.consumer.isolation = isolation;
    config.consumer.enable_auto_commit = false;
    config.consumer.auto_offset_reset = OffsetReset::Earliest;
    config.consumer.session_timeout = Duration::from_secs(6);
    config.consumer.heartbeat_interval = Duration::from_millis(500);
    config.consumer.rebalance_timeout = Duration::from_secs(10);
    config.consumer.max_poll_interval = Duration::from_secs(5);
    config.producer.transactional_id = transactional_id.map(Into::into);
    config.producer.linger = Duration::from_millis(2);
    configure(&mut config);
    let now = sim.now();
    let host = sim.add_client(Client::new(config, now));
    if transactional_id.is_some() {
        let op = sim.client(host).init_transactions(now);
        assert_eq!(run(sim, host, op), Ok(OpOutput::Transaction));
    }
    let now = sim.now();
    sim.client(host).subscribe(now, [IN]).unwrap();
    host
}

fn run(sim: &mut Simulation, host: HostId, op: OpId) -> Result<OpOutput, ClientError> {
    sim.run_until_done(host, op, Duration::from_secs(60))
}

/// Writes `n` records to each input partition, values `p{partition}-{i}`.
fn produce_input(sim: &mut Simulation, partitions: i32, n: usize) {
    let config = ClientConfig::new(&sim.bootstrap()).unwrap();
    let now = sim.now();
    let host = sim.add_client(Client::new(config, now));
    for p in 0..partitions {
        for i in 0..n {
            let record = ProducerRecord::new(IN, format!("p{p}-{i}")).partition(p);
            sim.client(host).send(now, record).unwrap();
        }
    }
    let want = partitions as usize * n;
    let mut delivered = 0;
    let done = sim.run_until(Duration::from_secs(30), |sim| {
        delivered += sim
            .client_events(host)
            .filter(|e| matches!(e, Event::Delivered { result: Ok(_), .. }))
            .count();
        delivered == want
    });
    assert!(done, "{delivered} of {want} input records delivered");
}

/// Every value in `topic`'s partitions as a read_committed reader sees them.
fn read_committed(sim: &mut Simulation, topic: &str, partitions: i32) -> Vec<String> {
    let config = ClientConfig::new(&sim.bootstrap()).unwrap();
    let now = sim.now();
    let reader = sim.add_client(Client::new(config, now));
    let mut values = Vec::new();
    for p in 0..partitions {
        let mut offset = 0;
        loop {
            let now = sim.now();
            let options = FetchOptions::default()
                .max_wait(Duration::ZERO)
                .isolation(IsolationLevel::ReadCommitted);
            let op = sim.client(reader).fetch(now, topic, p, offset, options);
            let Ok(OpOutput::Fetched(out)) = run(sim, reader, op) else {
                panic!("the fetch of {topic}-{p} fails")
            };
            values.extend(
                out.records
                    .iter()
                    .map(|r| String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned()),
            );
            if out.next_offset >= out.last_stable_offset {
                break;
            }
            offset = out.next_offset;
        }
    }
    values
}

/// The group's committed offset of each input partition (-1: none).
fn committed(sim: &mut Simulation, partitions: i32) -> Vec<i64> {
    let config = ClientConfig::new(&sim.bootstrap()).unwrap();
    let now = sim.now();
    let admin = sim.add_client(Client::new(config, now));
    let tps = (0..partitions)
        .map(|p| TopicPartition::new(IN, p))
        .collect();
    let op = sim.client(admin).fetch_committed(now, GROUP, tps);
    let Ok(OpOutput::Committed(results)) = run(sim, admin, op) else {
        panic!("the offsets cannot be read")
    };
    results.into_iter().map(|r| r.offset.unwrap()).collect()
}

fn value(r: &ConsumedRecord) -> String {
    String::from_utf8_lossy(r.record.value().unwrap_or_default()).into_owned()
}

/// Begins a transaction and writes `records` transformed into it: the value,
/// upper-cased, to the same partition of `OUT`.
fn write_output(
    sim: &mut Simulation,
    host: HostId,
    records: &[ConsumedRecord],
) -> Result<(), ClientError> {
    let now = sim.now();
    sim.client(host).begin_transaction(now)?;
    for r in records {
        let out = ProducerRecord::new(OUT, value(r).to_uppercase()).partition(r.partition);
        sim.client(host)
            .send(now, out)
            .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
    }
    Ok(())
}

/// One transaction: `records` transformed (`write_output`) and their input
/// offsets sent with it, then committed.
fn process(
    sim: &mut Simulation,
    host: HostId,
    records: &[ConsumedRecord],
) -> Result<(), ClientError> {
    write_output(sim, host, records)?;
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for r in records {
        next.insert(r.partition, r.record.offset + 1);
    }
    let now = sim.now();
    let offsets = next
        .into_iter()
        .map(|(p, o)| (TopicPartition::new(IN, p), o))
        .collect();
    let op = sim
        .client(host)
        .send_offsets_to_transaction(now, GROUP, offsets);
    run(sim, host, op)?;
    let now = sim.now();
    let op = sim.client(host).commit_transaction(now);
    run(sim, host, op).map(|_| ())
}

/// Runs the simulation until `host` has records to poll (at most `max`), or `limit`.
fn poll(sim: &mut Simulation, host: HostId, max: usize, limit: Duration) -> Vec<ConsumedRecord> {
    let mut got = Vec::new();
    sim.run_until(limit, |sim| {
        let now = sim.now();
        for e in sim.client_events(host).collect::<Vec<_>>() {
            if matches!(e, Event::Rebalance { .. }) {
                sim.client(host).ack_rebalance(now);
            }
        }
        got = sim.client(host).poll_records(now, max);
        !got.is_empty()
    });
    got
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A member leaves the group with its transaction open, its input offsets sent
/// with it: the member taking over its partition must not start from the offset
/// committed before (the transaction may still commit, and its output would then
/// be written twice), so its offset lookup waits until that transaction ends.
#[test]
fn a_partition_taken_over_from_an_open_transaction_waits_for_its_end() {
    let mut sim = cluster(11, 1);
    produce_input(&mut sim, 1, 10);
    let a = member(
        &mut sim,
        1,
        Some("pipeline-a"),
        IsolationLevel::ReadCommitted,
    );
    let first = poll(&mut sim, a, 5, Duration::from_secs(30));
    assert_eq!(first.len(), 5);
    assert_eq!(first[0].record.offset, 0);

    // A writes its output and sends its offsets, then leaves before committing.
    write_output(&mut sim, a, &first).unwrap();
    let now = sim.now();
    let op = sim.client(a).send_offsets_to_transaction(
        now,
        GROUP,
        vec![(TopicPartition::new(IN, 0), 5)],
    );
    assert_eq!(run(&mut sim, a, op), Ok(OpOutput::Transaction));
    let now = sim.now();
    let op = sim.client(a).leave_group(now);
    assert!(run(&mut sim, a, op).is_ok());

    // A read_uncommitted member does not ask for stable offsets (as the Java
    // client): it starts from the offset committed before, 0.
    let peek = member(&mut sim, 3, None, IsolationLevel::ReadUncommitted);
    let early = poll(&mut sim, peek, 1, Duration::from_secs(30));
    assert_eq!(early.first().map(|r| r.record.offset), Some(0));
    let now = sim.now();
    let op = sim.client(peek).leave_group(now);
    assert!(run(&mut sim, peek, op).is_ok());

    // B, read_committed, gets the partition but nothing to read while A's
    // transaction holds the offset.
    let b = member(
        &mut sim,
        2,
        Some("pipeline-b"),
        IsolationLevel::ReadCommitted,
    );
    let waiting = poll(&mut sim, b, 100, Duration::from_secs(5));
    assert!(
        waiting.is_empty(),
        "B read {:?} while A's offsets were pending",
        waiting.iter().map(|r| r.record.offset).collect::<Vec<_>>()
    );
    assert!(
        sim.client(b)
            .assignment()
            .contains(&TopicPartition::new(IN, 0))
    );

    // A commits (leaving the group does not end its producer's transaction).
    let now = sim.now();
    let op = sim.client(a).commit_transaction(now);
    assert_eq!(run(&mut sim, a, op), Ok(OpOutput::Transaction));

    // B goes on from where A's transaction left the group: offset 5.
    let rest = poll(&mut sim, b, 100, Duration::from_secs(30));
    assert_eq!(rest.first().map(|r| r.record.offset), Some(5));
    assert_eq!(rest.len(), 5);
    process(&mut sim, b, &rest).unwrap();

    let want: Vec<String> = (0..10).map(|i| format!("P0-{i}")).collect();
    assert_eq!(read_committed(&mut sim, OUT, 1), want);
    assert_eq!(committed(&mut sim, 1), vec![10]);
}

/// One member of a pipeline as an application drives it: every rebalance is
/// acknowledged at once (no transaction is open between steps), each poll is one
/// transaction, and every `abort_every`th transaction is aborted instead, after
/// which the member rewinds its partitions to the group's committed offsets.
struct Worker {
    host: HostId,
    transactions: usize,
    abort_every: usize,
    aborted: usize,
    /// Input records this worker put in committed transactions.
    processed: usize,
}

impl Worker {
    fn new(sim: &mut Simulation, seed: u64, abort_every: usize) -> Worker {
        let id = format!("pipeline-{seed}");
        let host = member(sim, seed, Some(&id), IsolationLevel::ReadCommitted);
        Worker {
            host,
            transactions: 0,
            abort_every,
            aborted: 0,
            processed: 0,
        }
    }

    fn step(&mut self, sim: &mut Simulation) {
        let now = sim.now();
        for e in sim.client_events(self.host).collect::<Vec<_>>() {
            if matches!(e, Event::Rebalance { .. }) {
                sim.client(self.host).ack_rebalance(now);
            }
        }
        let records = sim.client(self.host).poll_records(now, 7);
        if records.is_empty() {
            return;
        }
        self.transactions += 1;
        if self.abort_every > 0 && self.transactions.is_multiple_of(self.abort_every) {
            write_output(sim, self.host, &records).unwrap();
            self.abort_and_rewind(sim, "a planned abort");
            return;
        }
        match process(sim, self.host, &records) {
            Ok(()) => self.processed += records.len(),
            // The group moved on without this member (a rebalance it had not
            // seen yet): the transaction cannot commit, so it is aborted and the
            // partitions' new owners read from the committed offsets.
            Err(e) => self.abort_and_rewind(sim, &e.to_string()),
        }
    }

    /// Aborts the open transaction and rewinds every partition held to the
    /// group's committed offset, to read the transaction's input again.
    fn abort_and_rewind(&mut self, sim: &mut Simulation, why: &str) {
        let now = sim.now();
        let op = sim.client(self.host).abort_transaction(now);
        assert_eq!(
            run(sim, self.host, op),
            Ok(OpOutput::Transaction),
            "abort after {why}"
        );
        let now = sim.now();
        for tp in sim.client(self.host).assignment() {
            sim.client(self.host).seek(now, &tp, Offset::Committed);
        }
        self.aborted += 1;
    }
}

/// Three members share a pipeline over four partitions while the group
/// rebalances under them (two join, one leaves), and some transactions are
/// aborted and their input read again: the output holds every input record once.
#[test]
fn a_pipeline_through_rebalances_and_aborts_writes_every_record_once() {
    let seeds: u64 = std::env::var("PIPELINE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    for seed in 1..=seeds {
        pipeline(seed, false);
    }
}

/// The same pipeline while brokers crash and restart, leaders move, connections
/// reset and latency varies.
#[test]
fn a_pipeline_through_broker_faults_writes_every_record_once() {
    let seeds: u64 = std::env::var("PIPELINE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    for seed in 1..=seeds {
        pipeline(seed, true);
    }
}

/// A small deterministic generator for the faults.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn fault(sim: &mut Simulation, rng: &mut Rng) {
    let now = sim.now();
    match rng.below(5) {
        0 => {
            let topic = [IN, OUT][rng.below(2) as usize];
            let p = rng.below(4) as i32;
            let to = rng.below(3) as i32;
            let _ = sim.cluster().move_leader(topic, p, to);
        }
        1 => {
            let b = rng.below(3) as i32;
            let live = (0..3).filter(|b| sim.cluster().is_up(*b)).count();
            if live > 2 {
                sim.cluster().crash_broker(b, now);
            }
        }
        2 => {
            let b = rng.below(3) as i32;
            sim.cluster().restart_broker(b, now);
        }
        3 => sim.network.reset_probability = [0.0, 0.01][rng.below(2) as usize],
        _ => sim.network.latency_max = Duration::from_millis([1, 20][rng.below(2) as usize]),
    }
}

fn heal(sim: &mut Simulation) {
    let now = sim.now();
    for b in 0..3 {
        sim.cluster().restart_broker(b, now);
    }
    sim.network.reset_probability = 0.0;
    sim.network.latency_max = Duration::from_millis(2);
}

fn pipeline(seed: u64, faults: bool) {
    const PARTITIONS: i32 = 4;
    const PER_PARTITION: usize = 60;
    let mut sim = cluster(seed, PARTITIONS);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut steps = 0u64;
    produce_input(&mut sim, PARTITIONS, PER_PARTITION);
    let total = PARTITIONS as usize * PER_PARTITION;

    let mut workers = vec![Worker::new(&mut sim, 1, 4)];
    let mut joined = 1;
    let mut left = false;
    let mut departed = 0;
    let mut departed_aborted = 0;
    let done = sim.run_until(Duration::from_secs(600), |sim| {
        for w in &mut workers {
            w.step(sim);
        }
        let processed = departed + workers.iter().map(|w| w.processed).sum::<usize>();
        steps += 1;
        if faults && steps.is_multiple_of(8) {
            if processed + 40 < total {
                fault(sim, &mut rng);
            } else {
                heal(sim);
            }
        }
        if joined == 1 && processed >= 40 {
            workers.push(Worker::new(sim, 2, 3));
            joined += 1;
        } else if joined == 2 && processed >= 100 {
            workers.push(Worker::new(sim, 3, 5));
            joined += 1;
        } else if joined == 3 && !left && processed >= 160 {
            let now = sim.now();
            let op = sim.client(workers[0].host).leave_group(now);
            // Under faults the LeaveGroup may not arrive: the session then ends it.
            let _ = run(sim, workers[0].host, op);
            let gone = workers.remove(0);
            assert!(gone.processed > 0);
            departed += gone.processed;
            departed_aborted += gone.aborted;
            left = true;
        }
        left && processed >= total
    });
    let processed = departed + workers.iter().map(|w| w.processed).sum::<usize>();
    assert!(done, "seed {seed}: {processed} of {total} processed");
    assert_eq!(processed, total);
    let aborted = departed_aborted + workers.iter().map(|w| w.aborted).sum::<usize>();
    assert!(aborted > 0, "seed {seed}: no transaction was aborted");
    heal(&mut sim);

    let mut want: Vec<String> = (0..PARTITIONS)
        .flat_map(|p| (0..PER_PARTITION).map(move |i| format!("P{p}-{i}")))
        .collect();
    want.sort();
    assert_eq!(
        sorted(read_committed(&mut sim, OUT, PARTITIONS)),
        want,
        "seed {seed}"
    );
    assert_eq!(
        committed(&mut sim, PARTITIONS),
        vec![PER_PARTITION as i64; PARTITIONS as usize],
        "seed {seed}"
    );
}

/// A member kicked out of the group for not polling in time, its transaction
/// open with records it read before: another member now owns (and processes)
/// that input, so the kicked member's offsets must be refused (KIP-447: they go
/// with the generation they were read under) and its transaction aborted.
#[test]
fn a_member_kicked_out_mid_transaction_cannot_commit_its_input_offsets() {
    let (mut sim, a, first, _) = a_reads(13, 5);
    write_output(&mut sim, a, &first).unwrap();
    // A's application stalls: B takes the partition from the offset committed
    // before A's transaction, 0.
    let (_, all) = kicked_and_taken_over(&mut sim, a, 10);
    assert_eq!(all.first().map(|r| r.record.offset), Some(0));

    // A, back, tries to finish what it started.
    let now = sim.now();
    let op = sim.client(a).send_offsets_to_transaction(
        now,
        GROUP,
        vec![(TopicPartition::new(IN, 0), 5)],
    );
    let sent = run(&mut sim, a, op);
    let refused = match &sent {
        Err(ClientError::Transaction(TransactionError::Abortable(e))) => e.as_ref(),
        other => panic!("the kicked member's offsets: {other:?}"),
    };
    assert!(
        matches!(
            refused,
            ClientError::Broker {
                code: ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::ILLEGAL_GENERATION,
                ..
            }
        ),
        "the kicked member's offsets: {sent:?}"
    );
    let now = sim.now();
    let op = sim.client(a).commit_transaction(now);
    let committed_a = run(&mut sim, a, op);
    assert!(
        matches!(
            committed_a,
            Err(ClientError::Transaction(TransactionError::Abortable(_)))
        ),
        "the kicked member's commit: {committed_a:?}"
    );
    let now = sim.now();
    let op = sim.client(a).abort_transaction(now);
    assert_eq!(run(&mut sim, a, op), Ok(OpOutput::Transaction));

    let want: Vec<String> = (0..10).map(|i| format!("P0-{i}")).collect();
    assert_eq!(read_committed(&mut sim, OUT, 1), want);
    assert_eq!(committed(&mut sim, 1), vec![10]);
}

/// One input partition with 10 records, and member A (`pipeline-a`,
/// read_committed) of the group reading it, which has polled up to `max` of
/// them: what it read (5, or all 10) and the generation it read them under.
fn a_reads(seed: u64, max: usize) -> (Simulation, HostId, Vec<ConsumedRecord>, i32) {
    let mut sim = cluster(seed, 1);
    produce_input(&mut sim, 1, 10);
    let a = member(
        &mut sim,
        1,
        Some("pipeline-a"),
        IsolationLevel::ReadCommitted,
    );
    let read = poll(&mut sim, a, max, Duration::from_secs(30));
    assert_eq!(read.len(), max.min(10));
    let generation = sim.client(a).group_status().unwrap().generation;
    (sim, a, read, generation)
}

/// `a`'s application stalls past max_poll_interval (5 s here) while records
/// wait: its client leaves the group. A second member, B, joins, takes the
/// partition from what the group committed and processes all `n` records there
/// are in one transaction. Returns B and what it read.
fn kicked_and_taken_over(
    sim: &mut Simulation,
    a: HostId,
    n: usize,
) -> (HostId, Vec<ConsumedRecord>) {
    sim.run_until(Duration::from_secs(8), |_| false);
    assert!(sim.client(a).assignment().is_empty());
    let b = member(sim, 2, Some("pipeline-b"), IsolationLevel::ReadCommitted);
    let read = poll(sim, b, 100, Duration::from_secs(30));
    assert_eq!(read.len(), n);
    process(sim, b, &read).unwrap();
    (b, read)
}

/// `a` sends its transaction's offset `next` for the input partition: the
/// coordinator must refuse it (the member unknown, or its generation old), and
/// `a` then aborts.
fn offsets_refused_then_aborted(sim: &mut Simulation, a: HostId, next: i64, what: &str) {
    let now = sim.now();
    let op = sim.client(a).send_offsets_to_transaction(
        now,
        GROUP,
        vec![(TopicPartition::new(IN, 0), next)],
    );
    let sent = run(sim, a, op);
    assert!(
        matches!(
            &sent,
            Err(ClientError::Transaction(TransactionError::Abortable(e)))
                if matches!(
                    **e,
                    ClientError::Broker {
                        code: ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::ILLEGAL_GENERATION,
                        ..
                    }
                )
        ),
        "{what}: {sent:?}"
    );
    let now = sim.now();
    let op = sim.client(a).abort_transaction(now);
    assert_eq!(run(sim, a, op), Ok(OpOutput::Transaction));
}

/// Runs the simulation until `host` is in a stable generation other than
/// `other`, every rebalance of `hosts` acknowledged and `host`'s application
/// polling (it gets no records here); returns that generation.
fn rejoined(sim: &mut Simulation, host: HostId, hosts: &[HostId], other: i32) -> i32 {
    let mut generation = other;
    let done = sim.run_until(Duration::from_secs(30), |sim| {
        let now = sim.now();
        for &h in hosts {
            for e in sim.client_events(h).collect::<Vec<_>>() {
                if matches!(e, Event::Rebalance { .. }) {
                    sim.client(h).ack_rebalance(now);
                }
            }
        }
        let got = sim.client(host).poll_records(now, 100);
        assert!(got.is_empty(), "polled {got:?}");
        let status = sim.client(host).group_status().unwrap();
        generation = status.generation;
        status.stable && status.generation > 0 && status.generation != other
    });
    assert!(done, "not back in a stable generation");
    generation
}

/// As above, but the kicked member is back in the group, under a new
/// generation, before it sends its offsets (its application polled again; a
/// member whose session expired joins again by itself). The offsets must still
/// go with the generation the records were read under, and be refused: the
/// partition was another member's in between.
#[test]
fn a_member_back_in_the_group_cannot_commit_offsets_read_before_it_was_kicked() {
    let (mut sim, a, first, read_under) = a_reads(14, 5);
    write_output(&mut sim, a, &first).unwrap();
    let (b, _) = kicked_and_taken_over(&mut sim, a, 10);

    let back_under = rejoined(&mut sim, a, &[a, b], read_under);
    assert_ne!(back_under, read_under);
    offsets_refused_then_aborted(
        &mut sim,
        a,
        5,
        &format!("offsets read before the kick, sent from generation {back_under}"),
    );

    let want: Vec<String> = (0..10).map(|i| format!("P0-{i}")).collect();
    assert_eq!(read_committed(&mut sim, OUT, 1), want);
    assert_eq!(committed(&mut sim, 1), vec![10]);
}

/// The other side of the test above: a generation that moved on without the
/// member losing anything (a cooperative rebalance gave another member a
/// partition this transaction read nothing from) does not refuse the
/// transaction's offsets: they go with the member's current generation.
#[test]
fn offsets_go_with_the_current_generation_after_a_rebalance_that_lost_nothing() {
    let mut sim = cluster(15, 2);
    produce_input(&mut sim, 1, 10); // partition 0 only; partition 1 stays empty
    let cooperative = |c: &mut ClientConfig| {
        c.consumer.assignors = vec![kafka_sansio::client::Assignor::CooperativeSticky];
    };
    let a = member_configured(
        &mut sim,
        1,
        Some("pipeline-a"),
        IsolationLevel::ReadCommitted,
        cooperative,
    );
    let records = poll(&mut sim, a, 100, Duration::from_secs(30));
    assert_eq!(records.len(), 10);
    let read_under = sim.client(a).group_status().unwrap().generation;
    write_output(&mut sim, a, &records).unwrap();

    // B joins: A gives up partition 1 (read nothing from it) and keeps 0.
    let b = member_configured(
        &mut sim,
        2,
        Some("pipeline-b"),
        IsolationLevel::ReadCommitted,
        cooperative,
    );
    let now_under = rejoined(&mut sim, a, &[a, b], read_under);
    assert_eq!(sim.client(a).assignment(), vec![TopicPartition::new(IN, 0)]);
    let now = sim.now();
    let op = sim.client(a).send_offsets_to_transaction(
        now,
        GROUP,
        vec![(TopicPartition::new(IN, 0), 10)],
    );
    assert_eq!(
        run(&mut sim, a, op),
        Ok(OpOutput::Transaction),
        "offsets read under generation {read_under}, sent under {now_under}"
    );
    let now = sim.now();
    let op = sim.client(a).commit_transaction(now);
    assert_eq!(run(&mut sim, a, op), Ok(OpOutput::Transaction));

    let want: Vec<String> = (0..10).map(|i| format!("P0-{i}")).collect();
    assert_eq!(read_committed(&mut sim, OUT, 2), want);
    assert_eq!(committed(&mut sim, 2), vec![10, -1]);
}

/// Records an application polled before one transaction ended and processes in
/// the next (it polled more than one transaction's worth, or a facade buffered
/// them) were read under the membership of that poll. If the member lost its
/// partitions since, and is back in the group before the next transaction sends
/// its offsets, those offsets must still be refused.
#[test]
fn records_held_across_a_transaction_and_a_kick_cannot_commit_their_offsets() {
    let (mut sim, a, all, read_under) = a_reads(16, 100);
    // The first half in one transaction, committed.
    process(&mut sim, a, &all[..5]).unwrap();
    // A stalls with the second half in hand; max_poll_interval runs out only
    // while records wait, so more input arrives and waits.
    produce_input(&mut sim, 1, 5);
    let (b, rest) = kicked_and_taken_over(&mut sim, a, 10);
    assert_eq!(rest.first().map(|r| r.record.offset), Some(5));

    let back_under = rejoined(&mut sim, a, &[a, b], read_under);
    write_output(&mut sim, a, &all[5..]).unwrap();
    offsets_refused_then_aborted(
        &mut sim,
        a,
        10,
        &format!("offsets of records read under generation {read_under}, sent from {back_under}"),
    );

    let mut want: Vec<String> = (0..10).map(|i| format!("P0-{i}")).collect();
    want.extend((0..5).map(|i| format!("P0-{i}")));
    assert_eq!(sorted(read_committed(&mut sim, OUT, 1)), sorted(want));
    assert_eq!(committed(&mut sim, 1), vec![15]);
}
