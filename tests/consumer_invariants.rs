//! Simulation testing of the consumer without a group ([`Client::assign`] and
//! [`Client::poll_records`]): many seeds of one client producing (acks=all, or acks=1
//! so that a leader crash truncates what was not replicated) and another reading
//! three partitions, with small fetches, a small byte budget, fetch sessions on or
//! off, an application that polls in bursts, stalls, seeks and pauses, and records
//! deleted under it (DeleteRecords), against the simulated cluster while it
//! misbehaves (leader moves, broker crashes and restarts, injected retriable errors on
//! Fetch, ListOffsets and OffsetForLeaderEpoch, throttling, latency spikes,
//! fragmentation, connection resets, fetch answers cut mid-batch). Checked for every
//! seed:
//!
//! - every record polled is in the partition's committed log at the offset it was
//!   polled with, with its value (nothing the log does not hold, nothing read above
//!   the high watermark and later truncated);
//! - per partition, between two seeks, records are polled in offset order, each once,
//!   with no record of the final log skipped (records deleted before they were read
//!   are not in it), and the first record after a seek to an offset is the first
//!   one the final log holds from there;
//! - no record of a paused partition is polled while it is paused;
//! - the consumer never holds more than its byte budget, checked after every step,
//!   and never asks for a deadline in the past;
//! - no `Event::ConsumerError`: every fault here is retriable and the reset policy is
//!   `Earliest`;
//! - in half the seeds three transactional ids also write into the partitions,
//!   committing and aborting (the simulated coordinator's markers, last stable
//!   offset and aborted lists), and the consumer reads at read_committed (three
//!   seeds in four) or read_uncommitted: at read_committed no record of an
//!   aborted or still open transaction is polled, and none of a committed one is
//!   skipped;
//! - once the cluster heals, every partition is read to its end;
//! - the same seed gives the same trace hash, and a planted bug (a record skipped
//!   after a retriable fetch error) is caught.
//!
//! `SIM_SEEDS=10000 cargo test --release --features sim --test consumer_invariants --
//! --nocapture` runs a long campaign; a failing seed is printed, and
//! `SIM_SEED_START=<seed> SIM_SEEDS=1` replays it exactly (with
//! `RUST_LOG=kafka_sansio::client=debug` for the client's log, `SIM_TRACE=1` for the
//! workload's own steps).
#![cfg(feature = "sim")]
#![allow(clippy::disallowed_methods)] // tests own their clock

#[path = "common/seeds.rs"]
mod seeds;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_sansio::client::{
    Client, ClientConfig, ConsumedRecord, Event, IsolationLevel, Offset, OffsetReset,
    ProducerRecord, TopicPartition,
};
use kafka_sansio::messages::{ApiKey, ErrorCode};
use kafka_sansio::records::{Batch, BatchReader, DecodeOptions};
use kafka_sansio::sim::{ClusterConfig, HostId, NetworkConfig, SimRng, Simulation};

const TOPIC: &str = "t";
const PARTITIONS: i32 = 3;
const BROKERS: i32 = 3;
/// Consecutive steps at one instant that count as spinning.
const SPIN_STEPS: u32 = 10_000;
/// How long the healed consumer has to read every partition to its end.
const CATCH_UP: Duration = Duration::from_secs(60);

thread_local! {
/// Over every seed of this test (per thread), so a suite that checks nothing cannot
/// pass.
static POLLED: Cell<usize> = const { Cell::new(0) };
static SEEKS: Cell<usize> = const { Cell::new(0) };
static DELETES: Cell<usize> = const { Cell::new(0) };
static TRUNCATING_CRASHES: Cell<usize> = const { Cell::new(0) };
static BUDGET_FULL_SEEDS: Cell<usize> = const { Cell::new(0) };
static TXN_SEEDS: Cell<usize> = const { Cell::new(0) };
/// Records of committed transactions polled at read_committed.
static TXN_COMMITTED_POLLED: Cell<usize> = const { Cell::new(0) };
/// Records of aborted transactions a read_committed consumer had to skip.
static TXN_ABORTED_RECORDS: Cell<usize> = const { Cell::new(0) };
}

/// The transactional ids a seed with transactions writes under.
const TXN_IDS: [&str; 3] = ["tx-a", "tx-b", "tx-c"];

/// Transactions written beside the producer's records, in half the seeds (chosen,
/// and driven, by a random stream of their own, so that a seed without them
/// replays as it did before they existed): three transactional ids open, write
/// and end transactions on the cluster (the simulated coordinator's markers, last
/// stable offset and aborted lists), and the consumer reads at `isolation`.
struct Txns {
    rng: SimRng,
    isolation: IsolationLevel,
    /// The transaction each id has open (its number).
    open: BTreeMap<&'static str, u64>,
    /// Outcome of each transaction by number: `None` while open, then committed?
    outcome: BTreeMap<u64, Option<bool>>,
    /// The transaction of each record written in one, by (partition, offset).
    records: BTreeMap<(i32, i64), u64>,
    next: u64,
}

impl Txns {
    fn for_seed(seed: u64) -> Option<Txns> {
        let mut rng = SimRng::new(seed ^ 0x7c3a_11d5_9e02_b4f1);
        if !rng.chance(0.5) {
            return None;
        }
        let isolation = if rng.chance(0.75) {
            IsolationLevel::ReadCommitted
        } else {
            IsolationLevel::ReadUncommitted
        };
        Some(Txns {
            rng,
            isolation,
            open: BTreeMap::new(),
            outcome: BTreeMap::new(),
            records: BTreeMap::new(),
            next: 0,
        })
    }

    /// Whether the record at `p`/`offset` belongs to a transaction that aborted.
    fn aborted(&self, p: i32, offset: i64) -> bool {
        self.records
            .get(&(p, offset))
            .is_some_and(|t| self.outcome.get(t) == Some(&Some(false)))
    }
}

/// Retriable codes injected into Fetch answers (per partition).
const FETCH_RETRIABLE: [ErrorCode; 7] = [
    ErrorCode::NOT_LEADER_OR_FOLLOWER,
    ErrorCode::FENCED_LEADER_EPOCH,
    ErrorCode::UNKNOWN_LEADER_EPOCH,
    ErrorCode::LEADER_NOT_AVAILABLE,
    ErrorCode::REPLICA_NOT_AVAILABLE,
    ErrorCode::KAFKA_STORAGE_ERROR,
    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
];
/// Retriable codes injected into ListOffsets and OffsetForLeaderEpoch answers.
const LOOKUP_RETRIABLE: [ErrorCode; 3] = [
    ErrorCode::NOT_LEADER_OR_FOLLOWER,
    ErrorCode::LEADER_NOT_AVAILABLE,
    ErrorCode::UNKNOWN_LEADER_EPOCH,
];

/// What the application polled of one partition since its last seek (or its
/// assignment).
#[derive(Debug, Default)]
struct Segment {
    /// The offset the seek named, when it named one: the first record polled must
    /// be the first the final log holds from there.
    from: Option<i64>,
    offsets: Vec<i64>,
}

struct Run {
    seed: u64,
    sim: Simulation,
    producer: HostId,
    consumer: HostId,
    budget: usize,
    next_value: u64,
    /// Every record seen below the high watermark (so committed: a crash cannot take
    /// it), by partition and offset, including those deleted since.
    committed: BTreeMap<(i32, i64), String>,
    /// Per partition, what the application polled, one segment per seek.
    segments: BTreeMap<i32, Vec<Segment>>,
    paused: BTreeSet<i32>,
    failures: Vec<String>,
    same_instant: u32,
    spinning: bool,
    last_step_at: Instant,
    budget_full: bool,
    txns: Option<Txns>,
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new(TOPIC, p)
}

impl Run {
    fn new(seed: u64, planted_bug: bool) -> Run {
        let network = NetworkConfig {
            latency_min: Duration::from_micros(50),
            latency_max: Duration::from_millis(1 + seed % 5),
            fragment: seed.is_multiple_of(2),
            reset_probability: if seed.is_multiple_of(3) { 0.005 } else { 0.0 },
        };
        let mut sim = Simulation::new(
            seed,
            ClusterConfig {
                brokers: BROKERS as usize,
                auto_create_topics: false,
                replication_delay: Duration::from_millis(1 + seed % 20),
                ..ClusterConfig::default()
            },
            network,
            Instant::now(),
        );
        sim.cluster()
            .create_topic(TOPIC, PARTITIONS, BROKERS as i16)
            .expect("data topic");
        let pick = |sim: &mut Simulation, n: u64| sim.rng().below(n) as usize;
        let bootstrap = sim.bootstrap();
        let mut producer = ClientConfig::new(&bootstrap).expect("bootstrap list");
        producer.seed = seed;
        producer.connection.request_timeout = Duration::from_millis(500);
        producer.producer.linger = Duration::from_millis(pick(&mut sim, 10) as u64);
        producer.producer.batch_max_records = [1, 5, 50][pick(&mut sim, 3)];
        producer.producer.delivery_timeout = Duration::from_secs(5);
        // acks=1 in one seed of two: a leader crash then truncates what its
        // followers did not have yet, which no consumer may have read.
        if seed.is_multiple_of(2) {
            producer.producer.acks = 1;
            producer.producer.idempotence = false;
        }
        let mut config = ClientConfig::new(&bootstrap).expect("bootstrap list");
        config.seed = seed.wrapping_add(1);
        config.connection.request_timeout = Duration::from_millis(500 + 250 * (seed % 4));
        config.connect_timeout = Duration::from_secs(1);
        let c = &mut config.consumer;
        c.auto_offset_reset = OffsetReset::Earliest;
        c.fetch_max_wait = Duration::from_millis([5, 50, 500][pick(&mut sim, 3)] as u64);
        c.fetch_min_bytes = [1, 1, 2000][pick(&mut sim, 3)];
        c.fetch_max_bytes = [600, 4096, 64 * 1024, 1024 * 1024][pick(&mut sim, 4)];
        c.partition_max_bytes = [300, 2048, 64 * 1024][pick(&mut sim, 3)];
        // A broker waits out max_wait for min_bytes that no partition can reach
        // alone: that reads a partition a few records per wait, as configured.
        if c.partition_max_bytes < c.fetch_min_bytes {
            c.fetch_min_bytes = 1;
        }
        c.buffer_max_bytes = [1500, 8 * 1024, 1024 * 1024][pick(&mut sim, 3)];
        c.fetch_sessions = sim.rng().chance(0.7);
        c.check_crcs = sim.rng().chance(0.5);
        c.planted_bug_skip_after_error = planted_bug;
        let txns = Txns::for_seed(seed);
        if let Some(t) = &txns {
            c.isolation = t.isolation;
        }
        let budget = c.buffer_max_bytes;
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!("seed {seed}: consumer {:?}", config.consumer);
        }
        let now = sim.now();
        let producer = sim.add_client(Client::new(producer, now));
        let consumer = sim.add_client(Client::new(config, now));
        let start = if sim.rng().chance(0.5) {
            Offset::Beginning
        } else {
            Offset::At(0)
        };
        sim.client(consumer)
            .assign(now, (0..PARTITIONS).map(tp).collect(), start);
        let segments = (0..PARTITIONS)
            .map(|p| {
                (
                    p,
                    vec![Segment {
                        from: Some(0),
                        offsets: Vec::new(),
                    }],
                )
            })
            .collect();
        Run {
            seed,
            sim,
            producer,
            consumer,
            budget,
            next_value: 0,
            committed: BTreeMap::new(),
            segments,
            paused: BTreeSet::new(),
            failures: Vec::new(),
            same_instant: 0,
            spinning: false,
            last_step_at: now,
            budget_full: false,
            txns,
        }
    }

    /// Prints what happens, with `SIM_TRACE=1`.
    fn note(&self, what: std::fmt::Arguments) {
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!("{:?} seed {}: {what}", self.sim.elapsed(), self.seed);
        }
    }

    fn fail(&mut self, what: String) {
        if self.failures.len() < 20 {
            self.failures
                .push(format!("{:?}: {what}", self.sim.elapsed()));
        }
    }

    /// The records of a partition's log as the leader holds them now, from its log
    /// start (a batch that straddles the start keeps records below it, which no
    /// consumer is given): (offset, value), in log order.
    fn log(&mut self, p: i32) -> Vec<(i64, String)> {
        let start = self
            .sim
            .cluster()
            .partition_offsets(TOPIC, p)
            .map_or(0, |(_, start)| start);
        let mut out = Vec::new();
        let opts = DecodeOptions::default();
        for b in self.sim.cluster().partition_batches(TOPIC, p) {
            for batch in BatchReader::new(b, opts) {
                let batch = batch.expect("the cluster stores valid batches");
                // Transaction markers: never given to a consumer.
                if matches!(&batch, Batch::V2(b) if b.header.is_control()) {
                    continue;
                }
                for r in batch.records(&opts).expect("records") {
                    let r = r.expect("record");
                    if r.offset < start {
                        continue;
                    }
                    let value = String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned();
                    out.push((r.offset, value));
                }
            }
        }
        out
    }

    /// Notes every record below each partition's high watermark.
    fn see_committed(&mut self) {
        for p in 0..PARTITIONS {
            let Some((hw, _)) = self.sim.cluster().partition_offsets(TOPIC, p) else {
                continue;
            };
            for (offset, value) in self.log(p) {
                if offset >= hw {
                    break;
                }
                if let Some(old) = self.committed.insert((p, offset), value.clone())
                    && old != value
                {
                    self.fail(format!(
                        "partition {p} offset {offset}: committed {old:?} became {value:?} (the cluster lost a committed record)"
                    ));
                }
            }
        }
    }

    /// Runs the simulation for `d`, checking after every step the consumer's byte
    /// budget, that it asks for no deadline in the past, and that time moves.
    fn advance(&mut self, d: Duration) {
        if self.spinning {
            return;
        }
        let until = self.sim.now() + d;
        let (consumer, producer, budget) = (self.consumer, self.producer, self.budget);
        let mut problems = Vec::new();
        let mut same = self.same_instant;
        let mut last = self.last_step_at;
        let mut full = self.budget_full;
        let mut first = true;
        self.sim.run_until(d, |sim| {
            let now = sim.now();
            let stepped = !std::mem::take(&mut first);
            if now == last {
                same += 1;
            } else {
                same = 0;
                last = now;
            }
            if same > SPIN_STEPS {
                problems.push(format!(
                    "{SPIN_STEPS} steps at one instant: a client spins (poll_timeout {:?} / {:?})",
                    sim.client(consumer)
                        .poll_timeout()
                        .map(|t| t.saturating_duration_since(now)),
                    sim.client(producer)
                        .poll_timeout()
                        .map(|t| t.saturating_duration_since(now)),
                ));
                return true;
            }
            let client = sim.client(consumer);
            let buffered = client.consumer_buffered_bytes();
            if buffered > budget && problems.len() < 3 {
                problems.push(format!(
                    "{buffered} bytes buffered, over the {budget}-byte budget"
                ));
            }
            full |= buffered * 2 > budget;
            if let Some(t) = client.poll_timeout()
                && stepped
                && t <= now
                && problems.len() < 3
            {
                problems.push(format!(
                    "poll_timeout is {:?} in the past after a step",
                    now - t
                ));
            }
            false
        });
        self.same_instant = same;
        self.spinning = same > SPIN_STEPS;
        self.last_step_at = last;
        self.budget_full = full;
        for p in problems {
            self.fail(p);
        }
        let rest = until.saturating_duration_since(self.sim.now());
        self.sim.run_for(rest);
        self.events();
    }

    /// The clients' events: the producer's deliveries are not judged here (the
    /// producer has a suite of its own); any consumer error is a failure.
    fn events(&mut self) {
        let _ = self.sim.client_events(self.producer).count();
        let events: Vec<Event> = self.sim.client_events(self.consumer).collect();
        for e in events {
            if let Event::ConsumerError { partition, error } = e {
                self.fail(format!("consumer error on {partition:?}: {error}"));
            }
        }
    }

    /// A burst of records to random partitions.
    fn produce(&mut self) {
        let n = self.sim.rng().below(30);
        for _ in 0..n {
            self.next_value += 1;
            let p = self.sim.rng().below(PARTITIONS as u64) as i32;
            let mut value = format!("s{}-{}", self.seed, self.next_value);
            if self.sim.rng().chance(0.05) {
                value.push_str(&"x".repeat(700));
            }
            let now = self.sim.now();
            // A full producer is not this suite's concern.
            let _ = self
                .sim
                .client(self.producer)
                .send(now, ProducerRecord::new(TOPIC, value).partition(p));
        }
    }

    /// The transactional writer's turn: an id writes a few records into its open
    /// transaction (opening one), and maybe one open transaction ends.
    fn write_transactions(&mut self) {
        let Some(t) = &mut self.txns else {
            return;
        };
        let id = TXN_IDS[t.rng.below(TXN_IDS.len() as u64) as usize];
        let p = t.rng.below(PARTITIONS as u64) as i32;
        let count = 1 + t.rng.below(4) as usize;
        let n = *t.open.entry(id).or_insert_with(|| {
            t.next += 1;
            t.next
        });
        t.outcome.insert(n, None);
        let values: Vec<String> = (0..count)
            .map(|i| format!("s{}-txn{n}-{i}", self.seed))
            .collect();
        let end = (t.rng.chance(0.3) && !t.open.is_empty())
            .then(|| {
                let which = t.rng.below(t.open.len() as u64) as usize;
                let commit = t.rng.chance(0.6);
                t.open.keys().nth(which).map(|id| (*id, commit))
            })
            .flatten();
        let bytes: Vec<&[u8]> = values.iter().map(String::as_bytes).collect();
        let now = self.sim.now();
        match self
            .sim
            .cluster()
            .write_in_transaction(id, TOPIC, p, &bytes, now)
        {
            Ok(base) => {
                self.note(format_args!(
                    "{id} writes {count} to {p} at {base} (transaction {n})"
                ));
                if let Some(t) = &mut self.txns {
                    for i in 0..count as i64 {
                        t.records.insert((p, base + i), n);
                    }
                }
            }
            // No leader for it now (every replica down): written next time.
            Err(e) => self.note(format_args!("{id} cannot write to {p}: {e}")),
        }
        if let Some((id, commit)) = end {
            self.end_transaction(id, commit);
        }
    }

    /// Commits or aborts `id`'s open transaction.
    fn end_transaction(&mut self, id: &'static str, commit: bool) {
        let Some(t) = &mut self.txns else {
            return;
        };
        let Some(n) = t.open.remove(id) else {
            return;
        };
        t.outcome.insert(n, Some(commit));
        let now = self.sim.now();
        self.note(format_args!(
            "{id} {} transaction {n}",
            if commit { "commits" } else { "aborts" }
        ));
        self.sim.cluster().complete_transaction(id, commit, now);
    }

    /// The application polls up to `max` records and every one is judged.
    fn poll(&mut self, max: usize) {
        let now = self.sim.now();
        let got: Vec<ConsumedRecord> = self.sim.client(self.consumer).poll_records(now, max);
        if got.is_empty() {
            return;
        }
        self.see_committed();
        for r in got {
            POLLED.with(|c| c.set(c.get() + 1));
            let p = r.partition;
            let offset = r.record.offset;
            let value = String::from_utf8_lossy(r.record.value().unwrap_or_default()).into_owned();
            if &*r.topic != TOPIC || !(0..PARTITIONS).contains(&p) {
                self.fail(format!("polled a record of {}-{p}", r.topic));
                continue;
            }
            if self.paused.contains(&p) {
                self.fail(format!(
                    "partition {p} offset {offset}: polled while paused"
                ));
            }
            match self.committed.get(&(p, offset)) {
                Some(v) if *v == value => {}
                other => self.fail(format!(
                    "partition {p} offset {offset}: polled {value:?}, the committed log has {other:?}"
                )),
            }
            if let Some(t) = &self.txns
                && t.isolation == IsolationLevel::ReadCommitted
                && let Some(n) = t.records.get(&(p, offset))
            {
                match t.outcome.get(n) {
                    Some(Some(true)) => TXN_COMMITTED_POLLED.with(|c| c.set(c.get() + 1)),
                    outcome => {
                        let what = match outcome {
                            Some(Some(false)) => "aborted",
                            _ => "still open",
                        };
                        self.fail(format!(
                            "partition {p} offset {offset}: read_committed polled {value:?} of transaction {n}, which is {what}"
                        ));
                    }
                }
            }
            let segment = self
                .segments
                .get_mut(&p)
                .and_then(|s| s.last_mut())
                .expect("a segment per partition");
            if let Some(&prev) = segment.offsets.last()
                && offset <= prev
            {
                let what = format!(
                    "partition {p}: offset {offset} polled after {prev} with no seek between"
                );
                segment.offsets.push(offset);
                self.fail(what);
                continue;
            }
            segment.offsets.push(offset);
        }
        self.events();
    }

    /// The application seeks a partition: to an offset in its log, its beginning or
    /// its end.
    fn seek(&mut self) {
        let p = self.sim.rng().below(PARTITIONS as u64) as i32;
        let Some((hw, start)) = self.sim.cluster().partition_offsets(TOPIC, p) else {
            return;
        };
        let (to, from) = match self.sim.rng().below(4) {
            0 => (Offset::Beginning, Some(0)),
            1 => (Offset::End, None),
            _ => {
                let o = start + self.sim.rng().below((hw - start + 1) as u64) as i64;
                (Offset::At(o), Some(o))
            }
        };
        let now = self.sim.now();
        self.note(format_args!("seek {p} to {to:?} (hw {hw}, start {start})"));
        if self.sim.client(self.consumer).seek(now, &tp(p), to) {
            SEEKS.with(|c| c.set(c.get() + 1));
            self.segments.entry(p).or_default().push(Segment {
                from,
                offsets: Vec::new(),
            });
        } else {
            self.fail(format!("seek of assigned partition {p} refused"));
        }
    }

    /// Pauses a running partition or resumes a paused one.
    fn pause_or_resume(&mut self) {
        let p = self.sim.rng().below(PARTITIONS as u64) as i32;
        let now = self.sim.now();
        self.note(format_args!("pause/resume {p} (paused: {:?})", self.paused));
        if self.paused.remove(&p) {
            self.sim.client(self.consumer).resume(now, &[tp(p)]);
        } else {
            self.paused.insert(p);
            self.sim.client(self.consumer).pause(now, &[tp(p)]);
        }
    }

    /// Deletes records below an offset between a partition's start and its high
    /// watermark (through the producing client: the consumer learns of it by being
    /// out of range).
    fn delete_records(&mut self) {
        let p = self.sim.rng().below(PARTITIONS as u64) as i32;
        let Some((hw, start)) = self.sim.cluster().partition_offsets(TOPIC, p) else {
            return;
        };
        if hw <= start {
            return;
        }
        // What is about to go is committed: note it first.
        self.see_committed();
        let to = start + 1 + self.sim.rng().below((hw - start) as u64) as i64;
        let now = self.sim.now();
        self.note(format_args!(
            "delete {p} below {to} (hw {hw}, start {start})"
        ));
        self.sim.client(self.producer).delete_records(
            now,
            vec![(TOPIC.to_string(), p, to)],
            Duration::from_secs(2),
        );
        DELETES.with(|c| c.set(c.get() + 1));
    }

    fn live_brokers(&mut self) -> usize {
        (0..BROKERS)
            .filter(|b| self.sim.cluster().is_up(*b))
            .count()
    }

    /// One random fault.
    fn random_fault(&mut self) {
        let now = self.sim.now();
        let fault = self.sim.rng().below(11);
        self.note(format_args!("fault {fault}"));
        match fault {
            0 => {
                let b = self.sim.rng().below(BROKERS as u64) as i32;
                if self.live_brokers() > 1 || self.seed % 4 == 1 {
                    self.see_committed();
                    if self.seed.is_multiple_of(2) {
                        TRUNCATING_CRASHES.with(|c| c.set(c.get() + 1));
                    }
                    self.sim.cluster().crash_broker(b, now);
                }
            }
            1 => {
                let b = self.sim.rng().below(BROKERS as u64) as i32;
                self.sim.cluster().restart_broker(b, now);
            }
            2 | 3 => {
                let p = self.sim.rng().below(PARTITIONS as u64) as i32;
                let to = self.sim.rng().below(BROKERS as u64) as i32;
                let _ = self.sim.cluster().move_leader(TOPIC, p, to);
            }
            4 | 5 => {
                let code =
                    FETCH_RETRIABLE[self.sim.rng().below(FETCH_RETRIABLE.len() as u64) as usize];
                let count = 1 + self.sim.rng().below(3) as usize;
                self.sim.cluster().inject_error(ApiKey::Fetch, code, count);
            }
            6 => {
                let api = if self.sim.rng().chance(0.5) {
                    ApiKey::ListOffsets
                } else {
                    ApiKey::OffsetForLeaderEpoch
                };
                let code =
                    LOOKUP_RETRIABLE[self.sim.rng().below(LOOKUP_RETRIABLE.len() as u64) as usize];
                self.sim.cluster().inject_error(api, code, 1);
            }
            7 => {
                self.sim.cluster().faults.throttle_ms =
                    [0, 0, 5, 50, 400][self.sim.rng().below(5) as usize];
            }
            8 => {
                let hi = [1, 5, 20, 200, 1500][self.sim.rng().below(5) as usize];
                self.sim.network.latency_max = Duration::from_millis(hi);
                self.sim.network.fragment = self.sim.rng().chance(0.5);
            }
            9 => {
                self.sim.cluster().faults.partial_batches = self.sim.rng().chance(0.5);
            }
            _ => {
                self.sim.network.reset_probability =
                    [0.0, 0.0, 0.005, 0.02][self.sim.rng().below(4) as usize];
            }
        }
    }

    /// One round of the application: it produces, maybe polls (or stalls), maybe
    /// seeks, pauses or deletes.
    fn app_round(&mut self) {
        let positions = self.sim.client(self.consumer).positions();
        self.note(format_args!("positions {positions:?}"));
        self.produce();
        self.write_transactions();
        if self.sim.rng().chance(0.75) {
            let max = [1, 7, 100, 1000][self.sim.rng().below(4) as usize];
            self.poll(max);
        }
        if self.sim.rng().chance(0.05) {
            self.seek();
        }
        if self.sim.rng().chance(0.05) {
            self.pause_or_resume();
        }
        if self.sim.rng().chance(0.03) {
            self.delete_records();
        }
    }

    /// Every broker up, no fault left, nothing paused; the consumer polls until each
    /// partition is read to its end.
    fn heal_and_catch_up(&mut self) {
        let now = self.sim.now();
        for b in 0..BROKERS {
            self.sim.cluster().restart_broker(b, now);
        }
        self.sim.network.reset_probability = 0.0;
        self.sim.network.latency_max = Duration::from_millis(2);
        self.sim.network.fragment = false;
        self.sim.cluster().faults.throttle_ms = 0;
        self.sim.cluster().faults.partial_batches = false;
        let paused: Vec<TopicPartition> = std::mem::take(&mut self.paused)
            .into_iter()
            .map(tp)
            .collect();
        self.sim.client(self.consumer).resume(now, &paused);
        // Every transaction ends, so that read_committed reads to the end too.
        if let Some(t) = &mut self.txns {
            let open: Vec<(&'static str, bool)> =
                t.open.keys().map(|id| (*id, t.rng.chance(0.5))).collect();
            for (id, commit) in open {
                self.end_transaction(id, commit);
            }
        }
        // Injected errors left waiting are used up by the fetches below (each is
        // retriable).
        self.sim.client(self.producer).flush(now);
        // Let the producer finish (its records may take their delivery timeout).
        let end = self.sim.now() + Duration::from_secs(10);
        while self.sim.now() < end && self.sim.client(self.producer).pending_records() > 0 {
            self.advance(Duration::from_millis(100));
            self.poll(1000);
        }
        let end = self.sim.now() + CATCH_UP;
        loop {
            self.advance(Duration::from_millis(20));
            self.poll(1000);
            if self.spinning || self.caught_up() || self.sim.now() >= end {
                break;
            }
        }
        if !self.spinning && !self.caught_up() {
            let positions = self.sim.client(self.consumer).positions();
            let ends: Vec<_> = (0..PARTITIONS)
                .map(|p| self.sim.cluster().partition_offsets(TOPIC, p))
                .collect();
            self.fail(format!(
                "the healed consumer did not read every partition to its end in {CATCH_UP:?}: positions {positions:?}, (high watermark, start) {ends:?}"
            ));
        }
    }

    /// Whether the consumer's position is each partition's high watermark.
    fn caught_up(&mut self) -> bool {
        let positions = self.sim.client(self.consumer).positions();
        (0..PARTITIONS).all(|p| {
            let hw = self
                .sim
                .cluster()
                .partition_offsets(TOPIC, p)
                .map_or(0, |(hw, _)| hw);
            positions
                .iter()
                .any(|(t, offset, _)| t.partition == p && *offset == hw)
        })
    }

    /// No record of the final log (below its high watermark) was skipped between two
    /// polled records of a segment, nor before a segment's first record after a seek
    /// to an offset; the last segment of each partition reaches the high watermark.
    fn check_gaps(&mut self) {
        let mut problems = Vec::new();
        for p in 0..PARTITIONS {
            // Below the high watermark: what the consumer may have read by now.
            let hw = self
                .sim
                .cluster()
                .partition_offsets(TOPIC, p)
                .map_or(0, |(hw, _)| hw);
            // A read_committed consumer skips what aborted transactions wrote.
            let records = self.log(p);
            let committed_only = self
                .txns
                .as_ref()
                .filter(|t| t.isolation == IsolationLevel::ReadCommitted);
            let log: Vec<i64> = records
                .into_iter()
                .map(|(o, _)| o)
                .filter(|o| *o < hw)
                .filter(|o| {
                    let aborted = committed_only.is_some_and(|t| t.aborted(p, *o));
                    if aborted {
                        TXN_ABORTED_RECORDS.with(|c| c.set(c.get() + 1));
                    }
                    !aborted
                })
                .collect();
            let in_log: BTreeSet<i64> = log.iter().copied().collect();
            let segments = self.segments.remove(&p).unwrap_or_default();
            let last = segments.len().saturating_sub(1);
            for (i, s) in segments.iter().enumerate() {
                let mut prev = s.from.map(|f| f - 1);
                for &o in &s.offsets {
                    if let Some(prev) = prev
                        && let Some(skipped) = in_log.range(prev + 1..o).next()
                    {
                        problems.push(format!(
                            "partition {p}: offset {skipped} is in the log but was skipped (polled {o} after {prev}, segment {i} from {:?})",
                            s.from
                        ));
                    }
                    prev = Some(o);
                }
                if i == last {
                    let end = log.last().map_or(0, |o| o + 1);
                    if let Some(prev) = prev
                        && let Some(skipped) = in_log.range(prev + 1..).next().filter(|o| **o < end)
                    {
                        problems.push(format!(
                            "partition {p}: offset {skipped} is in the log but was never polled (last polled {prev})"
                        ));
                    }
                }
            }
        }
        for p in problems {
            self.fail(p);
        }
    }
}

/// One seed: the chaos phase, healing and catching up, then the checks. Returns the
/// failures and the trace hash.
fn run_seed(seed: u64, planted_bug: bool) -> (Vec<String>, u64) {
    let mut run = Run::new(seed, planted_bug);
    let rounds = 30 + run.sim.rng().below(40);
    let fault_rate = [0.1, 0.3, 0.5][(seed % 3) as usize];
    for _ in 0..rounds {
        run.app_round();
        if run.sim.rng().chance(fault_rate) {
            run.random_fault();
        }
        let d = Duration::from_micros(run.sim.rng().below(200_000));
        run.advance(d);
        if run.spinning {
            break;
        }
    }
    if !run.spinning {
        run.heal_and_catch_up();
        run.check_gaps();
    }
    if run.budget_full {
        BUDGET_FULL_SEEDS.with(|c| c.set(c.get() + 1));
    }
    if run.txns.is_some() {
        TXN_SEEDS.with(|c| c.set(c.get() + 1));
    }
    (run.failures, run.sim.trace_hash())
}

/// Seeds that once failed, kept so they keep passing (3: a byte budget that held
/// one broker's fetch at a time always went to the lowest broker id, and two
/// partitions were never read; 421: the simulated broker waited out max wait for
/// min bytes larger than the fetch's max bytes; 3020: a pause dropped the answer to
/// a validation on the wire and the partition was never fetched again; 168108: with
/// a budget below a partition's max, a broker without new data held the whole
/// budget for each max wait, and a broker with records read one fetch per wait).
const REGRESSION_SEEDS: &[u64] = &[3, 421, 3020, 168108];

#[test]
fn consumer_invariants_hold_across_seeds() {
    seeds::init_logging();
    let started = Instant::now();
    let seeds: Vec<u64> = REGRESSION_SEEDS
        .iter()
        .copied()
        .chain(seeds::from_env())
        .collect();
    let ran = seeds.len();
    let totals = seeds::on_every_core(&seeds, |seeds| {
        for seed in seeds {
            let (failures, _) = run_seed(seed, false);
            assert!(
                failures.is_empty(),
                "seed {seed} failed (replay: SIM_SEED_START={seed} SIM_SEEDS=1 cargo test --features sim --test consumer_invariants consumer_invariants_hold_across_seeds):\n{}",
                failures.join("\n")
            );
        }
        [
            POLLED.with(Cell::get),
            SEEKS.with(Cell::get),
            DELETES.with(Cell::get),
            TRUNCATING_CRASHES.with(Cell::get),
            BUDGET_FULL_SEEDS.with(Cell::get),
            TXN_SEEDS.with(Cell::get),
            TXN_COMMITTED_POLLED.with(Cell::get),
            TXN_ABORTED_RECORDS.with(Cell::get),
        ]
    });
    let [
        polled,
        seeks,
        deletes,
        crashes,
        full,
        txn_seeds,
        txn_read,
        txn_aborted,
    ] = totals.iter().fold([0; 8], |mut sum, t| {
        for (s, v) in sum.iter_mut().zip(t) {
            *s += v;
        }
        sum
    });
    let elapsed = started.elapsed();
    eprintln!(
        "{ran} seeds passed in {elapsed:.1?} ({:.0} seeds/s): {polled} records polled and verified, {seeks} seeks, {deletes} deletions, {crashes} leader crashes under acks=1, {full} seeds that filled half the byte budget; {txn_seeds} seeds with transactions: {txn_read} committed transactional records polled at read_committed, {txn_aborted} aborted ones skipped",
        ran as f64 / elapsed.as_secs_f64()
    );
    if ran < 100 {
        return;
    }
    assert!(
        polled > ran * 200,
        "only {polled} records polled in {ran} seeds"
    );
    assert!(seeks * 2 > ran, "only {seeks} seeks in {ran} seeds");
    assert!(deletes * 4 > ran, "only {deletes} deletions in {ran} seeds");
    assert!(
        crashes * 10 > ran,
        "only {crashes} truncating crashes in {ran} seeds"
    );
    assert!(
        full * 10 > ran,
        "only {full} of {ran} seeds filled the budget"
    );
    assert!(
        txn_seeds * 3 > ran && txn_read > txn_seeds * 5 && txn_aborted > txn_seeds,
        "transactions too few: {txn_seeds} seeds, {txn_read} committed records read, {txn_aborted} aborted ones skipped"
    );
}

#[test]
fn the_same_seed_gives_the_same_run() {
    for seed in [3, 42, 1001] {
        let (fa, a) = run_seed(seed, false);
        let (fb, b) = run_seed(seed, false);
        assert_eq!(a, b, "seed {seed} is not deterministic");
        assert_eq!(fa, fb);
    }
    let (_, x) = run_seed(5, false);
    let (_, y) = run_seed(6, false);
    assert_ne!(x, y, "different seeds should give different runs");
}

/// With a planted bug (after a retriable error on a partition's fetch, the next
/// fetch starts one record further on), the suite must fail within a bounded number
/// of seeds, and for the reason the bug causes: a record skipped.
#[test]
fn a_planted_skip_is_caught() {
    let caught = (1..=100).find(|seed| {
        let (failures, _) = run_seed(*seed, true);
        !failures.is_empty()
    });
    let Some(seed) = caught else {
        panic!("the planted skip survived 100 seeds");
    };
    let (failures, _) = run_seed(seed, true);
    eprintln!(
        "planted skip caught at seed {seed}:\n{}",
        failures.join("\n")
    );
    assert!(
        failures.iter().any(|f| f.contains("skipped")),
        "caught for another reason: {failures:?}"
    );
}
