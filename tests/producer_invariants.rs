//! Simulation testing of the producer ([`Client::send`]): many seeds of a random
//! stream of records (keyed, pinned to a partition, or keyless; one in five with a
//! value of over 1 KiB, which waits by its handle rather than as a copy; small batches, linger,
//! a small byte budget, up to five batches in flight per partition, idempotence on)
//! against the simulated cluster while it misbehaves (leader moves, broker crashes and
//! restarts, connection resets, latency spikes past the request timeout, throttling,
//! injected retriable errors on Produce and InitProducerId including
//! OUT_OF_ORDER_SEQUENCE_NUMBER and UNKNOWN_PRODUCER_ID, and in some seeds a fatal
//! one), then a healed phase. Checked for every seed:
//!
//! - every record accepted gets exactly one `Event::Delivered`, none for an id never
//!   handed out, and it comes by the record's delivery timeout (plus the time a request
//!   already on the wire may take to answer, see [`late_allowance`]);
//! - a failed record fails with a typed error the run explains: a `Timeout`, or the
//!   fatal code injected; never a bare retriable error, never `Closed`;
//! - every acknowledged (acks=all) record is in the log of the partition it was
//!   reported in, at the offset it was reported at, with its value;
//! - in every partition's log each record appears at most once, and the records
//!   appear in the order they were sent (so acknowledged records are in the log exactly
//!   once, in send order per partition; nothing else is in the log);
//! - `buffered_bytes` never exceeds `buffer_max_bytes`, checked after every step;
//! - once the cluster heals, records sent then are all delivered with success, and
//!   `flush` sends them without waiting for linger (some seeds linger 30 s);
//! - at the end no record is pending and no byte is buffered;
//! - the same seed gives the same trace hash.
//!
//! `SIM_SEEDS=10000 cargo test --release --features sim --test producer_invariants --
//! --nocapture` runs a long campaign; a failing seed is printed, and
//! `SIM_SEED_START=<seed> SIM_SEEDS=1` replays it exactly (with `RUST_LOG=debug` for
//! the client's log).
#![cfg(feature = "sim")]
#![allow(clippy::disallowed_methods)] // tests own their clock

#[path = "common/seeds.rs"]
mod seeds;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_sansio::client::{
    Client, ClientConfig, ClientError, Event, ProducerRecord, RecordId, RecordMetadata, SendError,
};
use kafka_sansio::messages::{ApiKey, ErrorCode};
use kafka_sansio::records::{BatchReader, Compression, DecodeOptions};
use kafka_sansio::sim::{ClusterConfig, HostId, NetworkConfig, Simulation};

const TOPIC: &str = "t";
const PARTITIONS: i32 = 4;
const BROKERS: i32 = 3;
/// Virtual time a delivery may come after its bound.
const SLACK: Duration = Duration::from_millis(1);
/// Consecutive steps at one instant that count as spinning.
const SPIN_STEPS: u32 = 10_000;
/// Records sent in the healed phase, per partition.
const HEALED_PER_PARTITION: usize = 3;

thread_local! {
/// Over every seed of this test (per thread: the tests of this file run at once),
/// so a suite that checks nothing cannot pass.
static ACKED: Cell<usize> = const { Cell::new(0) };
static ACKED_LARGE: Cell<usize> = const { Cell::new(0) };
static FAILED: Cell<usize> = const { Cell::new(0) };
static REFUSED_FULL: Cell<usize> = const { Cell::new(0) };
static MAX_IN_FLIGHT: Cell<usize> = const { Cell::new(0) };
static MULTI_IN_FLIGHT_SEEDS: Cell<usize> = const { Cell::new(0) };
static EPOCH_BUMP_SEEDS: Cell<usize> = const { Cell::new(0) };
static RETRIES: Cell<usize> = const { Cell::new(0) };
/// Deliveries after the delivery timeout itself (within the allowance), and the
/// latest of them in microseconds: how far [`late_allowance`] is used.
static LATE: Cell<usize> = const { Cell::new(0) };
static LATEST_US: Cell<usize> = const { Cell::new(0) };
/// Failure classes, printed by the main test.
static OUTCOMES: RefCell<BTreeMap<String, usize>> = const { RefCell::new(BTreeMap::new()) };
}

/// The counters above, of the seeds one thread ran.
#[derive(Default)]
struct Totals {
    acked: usize,
    acked_large: usize,
    failed: usize,
    refused: usize,
    max_in_flight: usize,
    multi: usize,
    bumps: usize,
    retries: usize,
    late: usize,
    latest_us: usize,
    outcomes: BTreeMap<String, usize>,
}

impl Totals {
    fn of_this_thread() -> Self {
        Self {
            acked: ACKED.with(Cell::get),
            acked_large: ACKED_LARGE.with(Cell::get),
            failed: FAILED.with(Cell::get),
            refused: REFUSED_FULL.with(Cell::get),
            max_in_flight: MAX_IN_FLIGHT.with(Cell::get),
            multi: MULTI_IN_FLIGHT_SEEDS.with(Cell::get),
            bumps: EPOCH_BUMP_SEEDS.with(Cell::get),
            retries: RETRIES.with(Cell::get),
            late: LATE.with(Cell::get),
            latest_us: LATEST_US.with(Cell::get),
            outcomes: OUTCOMES.with(|t| t.borrow().clone()),
        }
    }

    fn add(&mut self, other: Self) {
        self.acked += other.acked;
        self.acked_large += other.acked_large;
        self.failed += other.failed;
        self.refused += other.refused;
        self.max_in_flight = self.max_in_flight.max(other.max_in_flight);
        self.multi += other.multi;
        self.bumps += other.bumps;
        self.retries += other.retries;
        self.late += other.late;
        self.latest_us = self.latest_us.max(other.latest_us);
        for (outcome, n) in other.outcomes {
            *self.outcomes.entry(outcome).or_default() += n;
        }
    }
}

/// An error's variant (and code, and a timeout's cause).
fn class(e: &ClientError) -> String {
    match e {
        ClientError::Timeout { last_error, .. } => format!(
            "Timeout({})",
            last_error.as_deref().map(class).unwrap_or_default()
        ),
        ClientError::Broker { api, code, .. } => format!("Broker({api:?}, {code:?})"),
        e => format!("{e:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// Retriable and fatal codes injected into Produce answers.
const PRODUCE_RETRIABLE: [ErrorCode; 7] = [
    ErrorCode::NOT_LEADER_OR_FOLLOWER,
    ErrorCode::REQUEST_TIMED_OUT,
    ErrorCode::NOT_ENOUGH_REPLICAS,
    ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    ErrorCode::LEADER_NOT_AVAILABLE,
    ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
    ErrorCode::UNKNOWN_PRODUCER_ID,
];
const PRODUCE_FATAL: [ErrorCode; 1] = [ErrorCode::TOPIC_AUTHORIZATION_FAILED];
const INIT_PID_RETRIABLE: [ErrorCode; 3] = [
    ErrorCode::COORDINATOR_NOT_AVAILABLE,
    ErrorCode::NOT_COORDINATOR,
    ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
];

/// A delivery event: when it came, and its result.
type Delivery = (Instant, Result<RecordMetadata, ClientError>);

/// What the workload sent.
#[derive(Debug)]
struct Sent {
    value: String,
    at: Instant,
    /// The partition the record named, if it named one.
    pinned: Option<i32>,
    /// Sent in the healed phase: it must succeed.
    healed: bool,
}

struct Run {
    seed: u64,
    sim: Simulation,
    host: HostId,
    budget: usize,
    /// Some records carry values of over 1 KiB (see [`Run::send`]).
    large_values: bool,
    delivery_timeout: Duration,
    late_allowance: Duration,
    linger: Duration,
    sent: BTreeMap<RecordId, Sent>,
    /// Index of each value in send order.
    order: BTreeMap<String, usize>,
    /// Every delivery seen: when, and its result.
    delivered: BTreeMap<RecordId, Vec<Delivery>>,
    injected_fatal: BTreeSet<(ApiKey, ErrorCode)>,
    next_value: u64,
    failures: Vec<String>,
    same_instant: u32,
    spinning: bool,
    last_step_at: Instant,
    max_in_flight: usize,
}

/// How much later than its delivery timeout a record may be reported: a batch
/// already on the wire at its deadline is reported when its request answers or times
/// out (request timeout plus the broker's `timeout_ms` it was given), as the Java
/// client's `delivery.timeout.ms` ≥ `linger.ms` + `request.timeout.ms` rule assumes.
fn late_allowance(config: &ClientConfig) -> Duration {
    config.connection.request_timeout + config.producer.broker_timeout
}

impl Run {
    fn new(seed: u64, planted_bug: bool) -> Run {
        let network = NetworkConfig {
            latency_min: Duration::from_micros(50),
            latency_max: Duration::from_millis(1 + seed % 5),
            fragment: seed.is_multiple_of(2),
            reset_probability: if seed.is_multiple_of(3) { 0.01 } else { 0.0 },
        };
        let mut sim = Simulation::new(
            seed,
            ClusterConfig {
                brokers: BROKERS as usize,
                auto_create_topics: false,
                replication_delay: Duration::from_millis(1 + seed % 7),
                ..ClusterConfig::default()
            },
            network,
            Instant::now(),
        );
        sim.cluster()
            .create_topic(TOPIC, PARTITIONS, BROKERS as i16)
            .expect("data topic");
        let mut config = ClientConfig::new(&sim.bootstrap()).expect("bootstrap list");
        config.seed = seed;
        config.operation_timeout = Duration::from_secs(5);
        config.connection.request_timeout = Duration::from_millis(500 + 250 * (seed % 4));
        config.connect_timeout = Duration::from_secs(1);
        let pick = |sim: &mut Simulation, n: u64| sim.rng().below(n) as usize;
        let p = &mut config.producer;
        p.linger = [
            Duration::ZERO,
            Duration::from_millis(1),
            Duration::from_millis(5),
            Duration::from_millis(20),
            // Only full batches and flush send these.
            Duration::from_secs(30),
        ][pick(&mut sim, 5)];
        p.batch_max_bytes = [300, 600, 2048, 16 * 1024][pick(&mut sim, 4)];
        p.batch_max_records = [2, 5, 20, 10_000][pick(&mut sim, 4)];
        p.buffer_max_bytes = [2 * 1024, 8 * 1024, 1024 * 1024][pick(&mut sim, 3)];
        p.max_in_flight = 5;
        p.delivery_timeout = [
            Duration::from_secs(2),
            Duration::from_secs(5),
            Duration::from_secs(20),
        ][pick(&mut sim, 3)];
        p.broker_timeout = [Duration::from_millis(200), Duration::from_secs(1)][pick(&mut sim, 2)];
        p.compression = [Compression::None, Compression::None, Compression::Lz4][pick(&mut sim, 3)];
        p.planted_bug_renumber_unknown_outcome = planted_bug;
        let (budget, delivery_timeout, linger) = (p.buffer_max_bytes, p.delivery_timeout, p.linger);
        // Large values where a batch and the budget hold several of them.
        let large_values = p.batch_max_bytes >= 2048 && p.buffer_max_bytes >= 8 * 1024;
        let late_allowance = late_allowance(&config);
        let now = sim.now();
        let host = sim.add_client(Client::new(config, now));
        let mut run = Run {
            seed,
            sim,
            host,
            budget,
            large_values,
            delivery_timeout,
            late_allowance,
            linger,
            sent: BTreeMap::new(),
            order: BTreeMap::new(),
            delivered: BTreeMap::new(),
            injected_fatal: BTreeSet::new(),
            next_value: 0,
            failures: Vec::new(),
            same_instant: 0,
            spinning: false,
            last_step_at: now,
            max_in_flight: 0,
        };
        // InitProducerId is asked once, at the first record: fault it now.
        if run.sim.rng().chance(0.3) {
            let code = INIT_PID_RETRIABLE[pick(&mut run.sim, INIT_PID_RETRIABLE.len() as u64)];
            let count = 1 + pick(&mut run.sim, 3);
            run.sim
                .cluster()
                .inject_error(ApiKey::InitProducerId, code, count);
        }
        run
    }

    fn fail(&mut self, what: String) {
        self.failures
            .push(format!("{:?}: {what}", self.sim.elapsed()));
    }

    /// Runs the simulation for `d` of virtual time, checking after every step the
    /// byte budget, that the client asks for no deadline in the past, and that time
    /// moves; collects deliveries stamped with the virtual time they came at.
    fn advance(&mut self, d: Duration) {
        if self.spinning {
            return;
        }
        let until = self.sim.now() + d;
        let host = self.host;
        let budget = self.budget;
        let mut problems = Vec::new();
        let mut same = self.same_instant;
        let mut last = self.last_step_at;
        let mut max_in_flight = self.max_in_flight;
        let mut got = Vec::new();
        // The first call comes before any step: a command just given (a send that
        // wants metadata) may have left work due now, which the next step does.
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
                    "{SPIN_STEPS} steps at one instant: the client spins (poll_timeout {:?})",
                    sim.client(host)
                        .poll_timeout()
                        .map(|t| t.saturating_duration_since(now))
                ));
                return true;
            }
            let client = sim.client(host);
            let buffered = client.buffered_bytes();
            if buffered > budget && problems.len() < 3 {
                problems.push(format!(
                    "{buffered} bytes buffered, over the {budget}-byte budget"
                ));
            }
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
            let in_flight = client
                .stats()
                .partitions
                .iter()
                .map(|p| p.in_flight_batches)
                .max()
                .unwrap_or(0);
            max_in_flight = max_in_flight.max(in_flight);
            for event in sim.client_events(host) {
                if let Event::Delivered { record, result } = event {
                    got.push((record, now, result));
                }
            }
            false
        });
        self.same_instant = same;
        self.spinning = same > SPIN_STEPS;
        self.last_step_at = last;
        self.max_in_flight = max_in_flight;
        for (record, at, result) in got {
            self.delivered.entry(record).or_default().push((at, result));
        }
        for p in problems {
            self.fail(p);
        }
        let rest = until.saturating_duration_since(self.sim.now());
        self.sim.run_for(rest);
        self.collect();
    }

    /// Collects deliveries made between steps (during `send` or `flush`).
    fn collect(&mut self) {
        let now = self.sim.now();
        let events: Vec<_> = self.sim.client_events(self.host).collect();
        for event in events {
            if let Event::Delivered { record, result } = event {
                self.delivered
                    .entry(record)
                    .or_default()
                    .push((now, result));
            }
        }
    }

    /// Runs until every record sent has a delivery or `limit` passes, in slices.
    fn run_until_delivered(&mut self, limit: Duration) {
        let end = self.sim.now() + limit;
        while !self.spinning && self.sim.now() < end && !self.all_delivered() {
            let slice = Duration::from_millis(50).min(end - self.sim.now());
            self.advance(slice);
        }
    }

    fn all_delivered(&self) -> bool {
        self.sent.keys().all(|id| self.delivered.contains_key(id))
    }

    /// Sends one record; a full buffer is an expected refusal.
    fn send(&mut self, pinned: Option<i32>, key: Option<String>, healed: bool) {
        self.next_value += 1;
        let mut value = format!("s{}-{}", self.seed, self.next_value);
        // One record in five carries a value the producer keeps by its handle
        // (1 KiB or more) rather than copying, wherever it waits; not in the healed
        // phase, whose records must all be taken.
        if self.large_values && !healed && (self.seed + self.next_value).is_multiple_of(5) {
            value.push_str(&"x".repeat(1100));
        }
        let mut record = ProducerRecord::new(TOPIC, value.clone());
        if let Some(p) = pinned {
            record = record.partition(p);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        let now = self.sim.now();
        let before = self.sim.client(self.host).buffered_bytes();
        match self.sim.client(self.host).send(now, record) {
            Ok(id) => {
                if self.sent.contains_key(&id) {
                    self.fail(format!("{id:?} handed out twice"));
                }
                self.order.insert(value.clone(), self.order.len());
                self.sent.insert(
                    id,
                    Sent {
                        value,
                        at: now,
                        pinned,
                        healed,
                    },
                );
            }
            Err(SendError::BufferFull { buffered, limit }) => {
                REFUSED_FULL.with(|c| c.set(c.get() + 1));
                if limit != self.budget || buffered > limit || buffered != before {
                    self.fail(format!(
                        "BufferFull {{ buffered: {buffered}, limit: {limit} }} with {before} buffered and a {} budget",
                        self.budget
                    ));
                }
                if healed {
                    self.fail("the healed phase's record was refused".into());
                }
            }
            Err(e) => self.fail(format!("send refused: {e}")),
        }
        self.collect();
        let buffered = self.sim.client(self.host).buffered_bytes();
        if buffered > self.budget {
            self.fail(format!(
                "{buffered} bytes buffered after a send, over the budget"
            ));
        }
    }

    /// A burst of records: pinned, keyed or keyless.
    fn random_records(&mut self) {
        let n = self.sim.rng().below(25);
        for _ in 0..n {
            let (pinned, key) = match self.sim.rng().below(3) {
                0 => (Some(self.sim.rng().below(PARTITIONS as u64) as i32), None),
                1 => (None, Some(format!("k{}", self.sim.rng().below(16)))),
                _ => (None, None),
            };
            self.send(pinned, key, false);
        }
        if self.sim.rng().chance(0.1) {
            let now = self.sim.now();
            self.sim.client(self.host).flush(now);
            self.collect();
        }
    }

    fn live_brokers(&mut self) -> usize {
        (0..BROKERS)
            .filter(|b| self.sim.cluster().is_up(*b))
            .count()
    }

    /// One random fault.
    fn random_fault(&mut self) {
        let now = self.sim.now();
        match self.sim.rng().below(10) {
            0 => {
                // In one seed of four the whole cluster may go down for a while.
                let b = self.sim.rng().below(BROKERS as u64) as i32;
                if self.live_brokers() > 1 || self.seed % 4 == 1 {
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
            4..=6 => {
                let count = 1 + self.sim.rng().below(3) as usize;
                // Fatal errors in one seed of five.
                let code = if self.seed % 5 == 2 && self.sim.rng().chance(0.2) {
                    let code =
                        PRODUCE_FATAL[self.sim.rng().below(PRODUCE_FATAL.len() as u64) as usize];
                    self.injected_fatal.insert((ApiKey::Produce, code));
                    code
                } else {
                    PRODUCE_RETRIABLE[self.sim.rng().below(PRODUCE_RETRIABLE.len() as u64) as usize]
                };
                self.sim
                    .cluster()
                    .inject_error(ApiKey::Produce, code, count);
            }
            7 => {
                self.sim.cluster().faults.throttle_ms =
                    [0, 0, 5, 50, 400, 2000][self.sim.rng().below(6) as usize];
            }
            8 => {
                // Up to spikes longer than the request timeout.
                let hi = [1, 5, 20, 200, 1500][self.sim.rng().below(5) as usize];
                self.sim.network.latency_max = Duration::from_millis(hi);
                self.sim.network.fragment = self.sim.rng().chance(0.5);
            }
            _ => {
                self.sim.network.reset_probability =
                    [0.0, 0.0, 0.01, 0.05][self.sim.rng().below(4) as usize];
            }
        }
    }

    /// Every broker up, no network faults, no throttling, and no injected error left
    /// waiting for a request (records are sent until they are used up; those records
    /// are judged as every other).
    fn heal(&mut self) {
        let now = self.sim.now();
        for b in 0..BROKERS {
            self.sim.cluster().restart_broker(b, now);
        }
        self.sim.network.reset_probability = 0.0;
        self.sim.network.latency_max = Duration::from_millis(2);
        self.sim.cluster().faults.throttle_ms = 0;
        // A throttle answered before the heal holds the client back from that
        // broker for up to 2 s (KIP-219): it runs out before the healed phase.
        self.advance(Duration::from_millis(2_100));
        for _ in 0..200 {
            if self.sim.cluster().injected_pending(ApiKey::Produce) == 0 {
                break;
            }
            let p = self.sim.rng().below(PARTITIONS as u64) as i32;
            self.send(Some(p), None, false);
            let now = self.sim.now();
            self.sim.client(self.host).flush(now);
            self.advance(Duration::from_millis(100));
        }
        // Every chaos record has its delivery by its deadline (plus what a request on
        // the wire may take).
        self.run_until_delivered(self.delivery_timeout + self.late_allowance + SLACK);
    }

    /// The healed phase: records to every partition, flushed; each must succeed, and
    /// before linger would have sent it.
    fn healed_records(&mut self) {
        let start = self.sim.now();
        let first = self.next_value;
        for p in 0..PARTITIONS {
            for _ in 0..HEALED_PER_PARTITION {
                self.send(Some(p), None, true);
            }
        }
        self.send(None, Some("healed".into()), true);
        self.send(None, None, true);
        let now = self.sim.now();
        self.sim.client(self.host).flush(now);
        self.collect();
        self.run_until_delivered(self.delivery_timeout + self.late_allowance + SLACK);
        let mut latest = start;
        for (id, s) in &self.sent {
            if !s.healed {
                continue;
            }
            match self.delivered.get(id).and_then(|d| d.first()) {
                Some((at, Ok(_))) => latest = latest.max(*at),
                Some((_, Err(e))) => self.failures.push(format!(
                    "healed cluster: {} failed: {e} ({})",
                    s.value,
                    class(e)
                )),
                None => self
                    .failures
                    .push(format!("healed cluster: {} never delivered", s.value)),
            }
        }
        if self.linger >= Duration::from_secs(30) && latest - start >= Duration::from_secs(10) {
            self.fail(format!(
                "flushed records (from s{}-{}) took {:?}: flush did not send them",
                self.seed,
                first + 1,
                latest - start
            ));
        }
    }

    /// Exactly one delivery per record, in time, with an explained result.
    fn judge_deliveries(&mut self) {
        let mut problems = Vec::new();
        for (id, s) in &self.sent {
            let got = self.delivered.get(id).map_or(&[][..], Vec::as_slice);
            let [(at, result)] = got else {
                problems.push(format!(
                    "{id:?} ({}) delivered {} times: {:?}",
                    s.value,
                    got.len(),
                    got.iter().map(|(_, r)| r).collect::<Vec<_>>()
                ));
                continue;
            };
            let bound = s.at + self.delivery_timeout + self.late_allowance + SLACK;
            if *at > s.at + self.delivery_timeout {
                LATE.with(|c| c.set(c.get() + 1));
                let us = (*at - (s.at + self.delivery_timeout)).as_micros();
                LATEST_US.with(|c| c.set(c.get().max(usize::try_from(us).unwrap_or(usize::MAX))));
            }
            if *at > bound {
                problems.push(format!(
                    "{} delivered {:?} after its delivery timeout ({:?}) and the time its request may take ({:?})",
                    s.value,
                    *at - (s.at + self.delivery_timeout),
                    self.delivery_timeout,
                    self.late_allowance
                ));
            }
            match result {
                Ok(m) => {
                    ACKED.with(|c| c.set(c.get() + 1));
                    if s.value.len() > 1024 {
                        ACKED_LARGE.with(|c| c.set(c.get() + 1));
                    }
                    if &*m.topic != TOPIC {
                        problems.push(format!("{} acknowledged in another topic: {m:?}", s.value));
                    }
                    if s.pinned.is_some_and(|p| p != m.partition) {
                        problems.push(format!(
                            "{} pinned to {:?} landed in {}",
                            s.value, s.pinned, m.partition
                        ));
                    }
                }
                Err(e) => {
                    FAILED.with(|c| c.set(c.get() + 1));
                    OUTCOMES.with(|t| *t.borrow_mut().entry(class(e)).or_default() += 1);
                    let explained = match e {
                        ClientError::Timeout { .. } => true,
                        ClientError::Broker { api, code, .. } => {
                            self.injected_fatal.contains(&(*api, *code))
                        }
                        _ => false,
                    };
                    if !explained {
                        problems.push(format!(
                            "{} failed with {e:?}, which the run does not explain",
                            s.value
                        ));
                    }
                }
            }
        }
        for id in self.delivered.keys() {
            if !self.sent.contains_key(id) {
                problems.push(format!("a delivery for {id:?}, never handed out"));
            }
        }
        for p in problems {
            self.fail(p);
        }
    }

    /// The logs: each record at most once and in send order per partition; every
    /// acknowledged record where it was reported.
    fn check_log(&mut self) {
        let mut at: BTreeMap<(i32, i64), String> = BTreeMap::new();
        let mut in_partition: BTreeSet<(i32, String)> = BTreeSet::new();
        let mut problems = Vec::new();
        let mut producers = BTreeSet::new();
        for partition in 0..PARTITIONS {
            let mut last: Option<(usize, String)> = None;
            let mut seen: BTreeSet<String> = BTreeSet::new();
            for b in self.sim.cluster().partition_batches(TOPIC, partition) {
                for batch in BatchReader::new(b, DecodeOptions::default()) {
                    let batch = batch.expect("the cluster stores valid batches");
                    if let kafka_sansio::records::Batch::V2(v2) = &batch {
                        producers.insert((v2.header.producer_id, v2.header.producer_epoch));
                        if std::env::var_os("PRODUCER_SIM_DUMP").is_some() {
                            let h = &v2.header;
                            eprintln!(
                                "p{partition} @{} pid {} epoch {} seq {} n {}",
                                h.base_offset,
                                h.producer_id,
                                h.producer_epoch,
                                h.base_sequence,
                                h.last_offset_delta + 1
                            );
                        }
                    }
                    for r in batch.records(&DecodeOptions::default()).expect("records") {
                        let r = r.expect("record");
                        let value =
                            String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned();
                        let Some(&index) = self.order.get(&value) else {
                            problems.push(format!(
                                "partition {partition} offset {}: {value:?} was never sent",
                                r.offset
                            ));
                            continue;
                        };
                        let again = !seen.insert(value.clone());
                        if let Some((prev, prev_value)) = &last
                            && (*prev >= index || again)
                        {
                            let what = if again { "twice" } else { "out of send order" };
                            problems.push(format!(
                                "partition {partition} offset {}: {value} {what} (after {prev_value})",
                                r.offset
                            ));
                        }
                        last = Some((index, value.clone()));
                        in_partition.insert((partition, value.clone()));
                        at.insert((partition, r.offset), value);
                    }
                }
            }
        }
        if producers.len() > 1 {
            EPOCH_BUMP_SEEDS.with(|c| c.set(c.get() + 1));
        }
        for s_id in self.sent.keys() {
            let s = &self.sent[s_id];
            let Some((_, Ok(m))) = self.delivered.get(s_id).and_then(|d| d.first()) else {
                continue;
            };
            let Some(offset) = m.offset else {
                // Acknowledged without its offset (a later batch proved it written).
                if !in_partition.contains(&(m.partition, s.value.clone())) {
                    problems.push(format!(
                        "{} acknowledged in partition {}, but it is not in its log",
                        s.value, m.partition
                    ));
                }
                continue;
            };
            if at.get(&(m.partition, offset)) != Some(&s.value) {
                problems.push(format!(
                    "{} acknowledged at {}/{offset}, but the log has {:?} there",
                    s.value,
                    m.partition,
                    at.get(&(m.partition, offset))
                ));
            }
        }
        for p in problems {
            self.fail(p);
        }
    }

    /// Nothing pending, nothing buffered.
    fn check_quiet(&mut self) {
        let pending = self.sim.client(self.host).pending_records();
        let buffered = self.sim.client(self.host).buffered_bytes();
        if pending != 0 || buffered != 0 {
            self.fail(format!(
                "{pending} records pending and {buffered} bytes buffered at the end"
            ));
        }
    }
}

/// One seed: the chaos phase, healing, the healed phase, then the checks. Returns the
/// failures and the trace hash.
fn run_seed(seed: u64, planted_bug: bool) -> (Vec<String>, u64) {
    let mut run = Run::new(seed, planted_bug);
    let rounds = 20 + run.sim.rng().below(30);
    let fault_rate = [0.15, 0.35, 0.6][(seed % 3) as usize];
    for _ in 0..rounds {
        run.random_records();
        if run.sim.rng().chance(fault_rate) {
            run.random_fault();
        }
        let d = Duration::from_micros(run.sim.rng().below(150_000));
        run.advance(d);
        if run.spinning {
            break;
        }
    }
    if !run.spinning {
        run.heal();
        run.healed_records();
    }
    if run.spinning {
        return (run.failures, run.sim.trace_hash());
    }
    run.judge_deliveries();
    run.check_log();
    run.check_quiet();
    MAX_IN_FLIGHT.with(|c| c.set(c.get().max(run.max_in_flight)));
    if run.max_in_flight > 1 {
        MULTI_IN_FLIGHT_SEEDS.with(|c| c.set(c.get() + 1));
    }
    let retries = run.sim.client(run.host).stats().retries as usize;
    RETRIES.with(|c| c.set(c.get() + retries));
    (run.failures, run.sim.trace_hash())
}

/// Seeds that once failed, kept so they keep passing (1: a batch written on an
/// unanswered attempt was renumbered after a later sequence error and written
/// twice; 158 and 396: a timed-out request left its connection open and every later
/// request on it timed out; 4872: a partition waiting for its leader's reconnect
/// backoff was not driven again until its records timed out; 1083679: a batch
/// failed at its delivery timeout left a gap in the sequence numbers without an
/// epoch bump, and the next batch, whose first attempt went unanswered, was refused
/// as out of order until its own delivery timeout, with every record of the healed
/// phase behind it; 1603707, a harness fault: a 2 s throttle answered just before
/// the heal held the healed phase's first request back past its records' 2 s
/// delivery timeout).
const REGRESSION_SEEDS: &[u64] = &[1, 158, 396, 4872, 1083679, 1603707];

#[test]
fn producer_invariants_hold_across_seeds() {
    seeds::init_logging();
    let started = Instant::now();
    // Each thread's counters are its own (thread-locals): summed after.
    let seeds: Vec<u64> = REGRESSION_SEEDS
        .iter()
        .copied()
        .chain(seeds::from_env())
        .collect();
    let ran = seeds.len();
    let mut totals = Totals::default();
    for t in seeds::on_every_core(&seeds, |seeds| {
        for seed in seeds {
            let (failures, _) = run_seed(seed, false);
            assert!(
                failures.is_empty(),
                "seed {seed} failed (replay: SIM_SEED_START={seed} SIM_SEEDS=1 cargo test --features sim --test producer_invariants producer_invariants_hold_across_seeds):\n{}",
                failures.join("\n")
            );
        }
        Totals::of_this_thread()
    }) {
        totals.add(t);
    }
    let Totals {
        acked,
        acked_large,
        failed,
        refused,
        max_in_flight,
        multi,
        bumps,
        retries,
        late,
        latest_us,
        outcomes,
    } = totals;
    for (outcome, n) in &outcomes {
        eprintln!("{n:>7}  {outcome}");
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{late} deliveries came after their delivery timeout (within the request's time), the latest {:?} after",
        Duration::from_micros(latest_us as u64)
    );
    eprintln!(
        "{ran} seeds passed in {elapsed:.1?} ({:.0} seeds/s): {acked} records acknowledged and verified ({acked_large} of them with a value of over 1 KiB), {failed} failed with an explained error, {refused} refused for a full buffer, {retries} retries; seeds with several batches in flight: {multi} (at most {}), with an epoch bump: {bumps}",
        ran as f64 / elapsed.as_secs_f64(),
        max_in_flight
    );
    // The workload must exercise what it claims to (over enough seeds: a replay of
    // one seed is judged by its own checks only).
    if ran < 100 {
        return;
    }
    assert!(
        acked > ran * 50,
        "only {acked} records acknowledged in {ran} seeds"
    );
    assert!(
        acked > failed * 2,
        "{failed} failed against {acked} acknowledged"
    );
    assert!(refused > 0, "the byte budget never refused a record");
    assert!(
        acked_large * 50 > acked,
        "only {acked_large} of {acked} acknowledged records had a large value"
    );
    assert!(
        multi * 4 > ran,
        "only {multi} of {ran} seeds had several batches in flight"
    );
    assert!(
        bumps * 20 > ran,
        "only {bumps} of {ran} seeds bumped the epoch"
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

/// A suite that finds nothing proves nothing until it has caught something: with a
/// planted sequence bug (a batch whose request failed without an answer is taken as
/// not written and sent again under a new epoch and sequence, which the broker cannot
/// recognise as a duplicate), the same suite must fail within a bounded number of
/// seeds, and for the reason the bug causes: a record in the log twice.
#[test]
fn a_planted_sequence_bug_is_caught() {
    let caught = (1..=100).find(|seed| {
        let (failures, _) = run_seed(*seed, true);
        !failures.is_empty()
    });
    let Some(seed) = caught else {
        panic!("the planted sequence bug survived 100 seeds");
    };
    let (failures, _) = run_seed(seed, true);
    eprintln!(
        "planted sequence bug caught at seed {seed}:\n{}",
        failures.join("\n")
    );
    assert!(
        failures.iter().any(|f| f.contains("twice")),
        "caught for another reason: {failures:?}"
    );
}
