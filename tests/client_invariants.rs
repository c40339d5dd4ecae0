//! Simulation testing of the cluster [`Client`]: many seeds of a random workload of
//! operations (create, grow and delete topics, produce, fetch, list offsets, delete
//! records, list and describe groups, describe the cluster, cancel) against the
//! simulated cluster while it misbehaves (leader moves, broker crashes and restarts,
//! injected retriable and fatal errors, latency spikes past the request timeout,
//! fragmentation, connection resets, throttling; in one seed of five metadata also
//! ages past `metadata_max_age`), then a healed phase. Checked for every seed:
//!
//! - every operation started ends exactly once (one `Event::Done` per `OpId`, none
//!   for a cancelled one, none missing at the end), by its deadline (virtual time of
//!   the `Done` at most start + timeout);
//! - it ends with a result or a typed error that the run explains: no `Closed` from a
//!   client nobody closed, no retriable error except as a `Timeout`'s cause, no
//!   `Unsupported` for an API the simulated broker serves, no broker error code that
//!   neither the operation's nature nor an injected fault accounts for;
//! - retriable faults are retried away: once the cluster heals, produce (acks=all),
//!   fetch, list offsets and describe cluster succeed on every partition;
//! - every acks=all record acknowledged, in either phase, is in the log at the offset
//!   the client returned, unchanged;
//! - the client's `poll_timeout` is never at or before now after a step (no spinning),
//!   and at the end nothing is pending, nothing outstanding, and idle connections
//!   close;
//! - the same seed gives the same trace hash.
//!
//! `SIM_SEEDS=100000 cargo test --release --features sim --test client_invariants --
//! --nocapture` runs a long campaign; a failing seed is printed, and
//! `SIM_SEED_START=<seed> SIM_SEEDS=1` replays it exactly (with `RUST_LOG=debug` for
//! the client's log).
#![cfg(feature = "sim")]
#![allow(clippy::disallowed_methods)] // tests own their clock

#[path = "common/seeds.rs"]
mod seeds;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kafka_sansio::client::{
    Client, ClientConfig, ClientError, FetchOptions, NewTopic, OffsetSpec, OpId, OpOutput,
    ProduceOptions, Record,
};
use kafka_sansio::messages::{ApiKey, ErrorCode};
use kafka_sansio::records::{BatchReader, Compression, DecodeOptions};
use kafka_sansio::sim::{ClusterConfig, HostId, NetworkConfig, Simulation};

/// The data topic: never deleted, never grown.
const TOPIC: &str = "t";
const PARTITIONS: i32 = 3;
const BROKERS: i32 = 3;
/// Topics the workload creates, grows and deletes.
const CHURN: [&str; 3] = ["c0", "c1", "c2"];
/// Virtual time a Done may come after its deadline.
const SLACK: Duration = Duration::from_millis(1);
/// Deadline of the operations of the healed phase: long enough for any backoff.
const HEALED_TIMEOUT: Duration = Duration::from_secs(30);
/// Consecutive steps at one instant that count as spinning.
const SPIN_STEPS: u32 = 10_000;

/// Over every seed of this process, so a suite that checks nothing cannot pass.
static VERIFIED_RECORDS: AtomicUsize = AtomicUsize::new(0);
static OPS_ENDED: AtomicUsize = AtomicUsize::new(0);
static OPS_OK: AtomicUsize = AtomicUsize::new(0);
/// Outcomes by operation and result class, printed by the main test.
static OUTCOMES: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

fn tally(kind: &Kind, result: &Result<OpOutput, ClientError>) {
    let name = format!("{kind:?}");
    let name = name.split([' ', '{']).next().unwrap_or_default();
    let class = match result {
        Ok(out) => {
            let nested: Vec<String> = nested_errors(out).into_iter().map(class).collect();
            if nested.is_empty() {
                "ok".to_string()
            } else {
                format!("ok with {}", nested.join(", "))
            }
        }
        Err(e) => class(e),
    };
    if let Ok(mut t) = OUTCOMES.lock() {
        *t.entry(format!("{name}: {class}")).or_default() += 1;
    }
}

/// An error's variant (and code, and a timeout's cause).
fn class(e: &ClientError) -> String {
    match e {
        ClientError::Timeout { last_error, .. } => format!(
            "Timeout({})",
            last_error.as_deref().map(class).unwrap_or_default()
        ),
        ClientError::Broker { code, .. } => format!("Broker({code:?})"),
        e => format!("{e:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// When an operation ended, and how.
type Outcome = (Instant, Result<OpOutput, ClientError>);

/// Starts an operation on a churn topic.
type Starter = fn(&mut Client, Instant, &'static str) -> OpId;

/// What an operation was, to judge its outcome.
#[derive(Debug, Clone)]
enum Kind {
    Produce {
        topic: &'static str,
        partition: i32,
        acks: i16,
        values: Vec<String>,
    },
    Fetch {
        topic: &'static str,
    },
    ListOffsets {
        topic: &'static str,
    },
    DeleteRecords,
    CreateTopics,
    DeleteTopics,
    CreatePartitions,
    DescribeCluster,
    ListTopics,
    DescribeTopics,
    ListGroups,
    DescribeGroups,
    DeleteGroups,
}

impl Kind {
    /// The API whose errors the operation reports.
    fn api(&self) -> ApiKey {
        match self {
            Kind::Produce { .. } => ApiKey::Produce,
            Kind::Fetch { .. } => ApiKey::Fetch,
            Kind::ListOffsets { .. } => ApiKey::ListOffsets,
            Kind::DeleteRecords => ApiKey::DeleteRecords,
            Kind::CreateTopics => ApiKey::CreateTopics,
            Kind::DeleteTopics => ApiKey::DeleteTopics,
            Kind::CreatePartitions => ApiKey::CreatePartitions,
            Kind::DescribeCluster | Kind::ListTopics | Kind::DescribeTopics => ApiKey::Metadata,
            Kind::ListGroups => ApiKey::ListGroups,
            Kind::DescribeGroups => ApiKey::DescribeGroups,
            Kind::DeleteGroups => ApiKey::DeleteGroups,
        }
    }

    /// Broker error codes that are a normal final answer for this operation.
    fn natural_codes(&self) -> &'static [ErrorCode] {
        match self {
            Kind::CreateTopics => &[
                ErrorCode::TOPIC_ALREADY_EXISTS,
                ErrorCode::INVALID_PARTITIONS,
                ErrorCode::INVALID_REPLICATION_FACTOR,
            ],
            Kind::DeleteTopics => &[ErrorCode::UNKNOWN_TOPIC_OR_PARTITION],
            Kind::CreatePartitions => &[
                ErrorCode::INVALID_PARTITIONS,
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            ],
            Kind::Fetch { .. } | Kind::DeleteRecords => &[ErrorCode::OFFSET_OUT_OF_RANGE],
            _ => &[],
        }
    }

    /// Whether it names a topic the workload may delete (or that may not exist yet).
    fn on_churn_topic(&self) -> bool {
        match self {
            Kind::Produce { topic, .. } | Kind::Fetch { topic } | Kind::ListOffsets { topic } => {
                *topic != TOPIC
            }
            _ => false,
        }
    }
}

#[derive(Debug)]
struct Started {
    kind: Kind,
    at: Instant,
    timeout: Duration,
    cancelled: bool,
}

/// APIs the simulated broker serves, of those the client's operations use.
const SERVED: [ApiKey; 9] = [
    ApiKey::Metadata,
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::DeleteRecords,
    ApiKey::FindCoordinator,
];

/// Where injected faults go, and which retriable and fatal codes fit each API.
const INJECT: [(ApiKey, &[ErrorCode], &[ErrorCode]); 8] = [
    (
        ApiKey::Produce,
        &[
            ErrorCode::NOT_LEADER_OR_FOLLOWER,
            ErrorCode::NOT_ENOUGH_REPLICAS,
            ErrorCode::REQUEST_TIMED_OUT,
            ErrorCode::LEADER_NOT_AVAILABLE,
            ErrorCode::KAFKA_STORAGE_ERROR,
        ],
        &[
            ErrorCode::TOPIC_AUTHORIZATION_FAILED,
            ErrorCode::RECORD_LIST_TOO_LARGE,
        ],
    ),
    (
        ApiKey::Fetch,
        &[
            ErrorCode::NOT_LEADER_OR_FOLLOWER,
            ErrorCode::FENCED_LEADER_EPOCH,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
        ],
        &[ErrorCode::TOPIC_AUTHORIZATION_FAILED],
    ),
    (
        ApiKey::ListOffsets,
        &[
            ErrorCode::NOT_LEADER_OR_FOLLOWER,
            ErrorCode::LEADER_NOT_AVAILABLE,
        ],
        &[ErrorCode::TOPIC_AUTHORIZATION_FAILED],
    ),
    (
        ApiKey::Metadata,
        &[ErrorCode::LEADER_NOT_AVAILABLE],
        &[ErrorCode::TOPIC_AUTHORIZATION_FAILED],
    ),
    (
        ApiKey::CreateTopics,
        &[ErrorCode::NOT_CONTROLLER],
        &[ErrorCode::POLICY_VIOLATION],
    ),
    (
        ApiKey::DeleteTopics,
        &[ErrorCode::NOT_CONTROLLER],
        &[ErrorCode::TOPIC_AUTHORIZATION_FAILED],
    ),
    (
        ApiKey::DeleteRecords,
        &[ErrorCode::NOT_LEADER_OR_FOLLOWER],
        &[ErrorCode::TOPIC_AUTHORIZATION_FAILED],
    ),
    (
        ApiKey::FindCoordinator,
        &[ErrorCode::COORDINATOR_NOT_AVAILABLE],
        &[],
    ),
];

struct Run {
    seed: u64,
    sim: Simulation,
    host: HostId,
    started: BTreeMap<OpId, Started>,
    /// Every Done seen: when, and its result.
    done: BTreeMap<OpId, Vec<Outcome>>,
    /// Fatal codes injected per API over the run.
    injected_fatal: BTreeMap<ApiKey, BTreeSet<ErrorCode>>,
    /// Whether an UNKNOWN_TOPIC_OR_PARTITION was ever injected (it may make the data
    /// topic look missing for a moment).
    injected_unknown_topic: bool,
    /// acks=all records acknowledged: (partition, offset, value).
    acked: Vec<(i32, i64, String)>,
    next_value: u64,
    failures: Vec<String>,
    /// Consecutive steps without time advancing.
    same_instant: u32,
    /// The client spun (time stopped moving): the seed is abandoned.
    spinning: bool,
    last_step_at: Instant,
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
        // Some seeds refresh metadata because it is old, not only because it is wrong.
        if seed.is_multiple_of(5) {
            config.metadata_max_age = Duration::from_millis(300 + 100 * (seed % 20));
        }
        config.planted_bug_route_to_first_replica = planted_bug;
        let now = sim.now();
        let host = sim.add_client(Client::new(config, now));
        let last_step_at = sim.now();
        Run {
            seed,
            sim,
            host,
            started: BTreeMap::new(),
            done: BTreeMap::new(),
            injected_fatal: BTreeMap::new(),
            injected_unknown_topic: false,
            acked: Vec::new(),
            next_value: 0,
            failures: Vec::new(),
            same_instant: 0,
            spinning: false,
            last_step_at,
        }
    }

    fn fail(&mut self, what: String) {
        self.failures
            .push(format!("{:?}: {what}", self.sim.elapsed()));
    }

    /// Collects Done events, stamped with the virtual time now.
    fn collect(&mut self) {
        let now = self.sim.now();
        let events: Vec<_> = self.sim.client_events(self.host).collect();
        for event in events {
            if let kafka_sansio::client::Event::Done { op, result } = event {
                self.done.entry(op).or_default().push((now, result));
            }
        }
    }

    /// Runs the simulation for `d` of virtual time, checking after every step that
    /// the client asks for no deadline in the past and that time moves.
    fn advance(&mut self, d: Duration) {
        if self.spinning {
            return;
        }
        let until = self.sim.now() + d;
        let host = self.host;
        let mut problems = Vec::new();
        let mut same = self.same_instant;
        let mut last = self.last_step_at;
        let mut done: Vec<(OpId, Instant, Result<OpOutput, ClientError>)> = Vec::new();
        self.sim.run_until(d, |sim| {
            let now = sim.now();
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
            if let Some(t) = sim.client(host).poll_timeout()
                && t <= now
                && problems.len() < 3
            {
                problems.push(format!(
                    "poll_timeout is {:?} in the past after a step",
                    now - t
                ));
            }
            for event in sim.client_events(host) {
                if let kafka_sansio::client::Event::Done { op, result } = event {
                    done.push((op, now, result));
                }
            }
            false
        });
        self.same_instant = same;
        self.spinning = same > SPIN_STEPS;
        self.last_step_at = last;
        for (op, at, result) in done {
            self.done.entry(op).or_default().push((at, result));
        }
        for p in problems {
            self.fail(p);
        }
        let rest = until.saturating_duration_since(self.sim.now());
        self.sim.run_for(rest);
        self.collect();
    }

    fn start(
        &mut self,
        kind: Kind,
        timeout: Duration,
        f: impl FnOnce(&mut Client, Instant) -> OpId,
    ) -> OpId {
        let now = self.sim.now();
        let op = f(self.sim.client(self.host), now);
        if self.started.contains_key(&op) {
            self.fail(format!("OpId {op:?} handed out twice"));
        }
        self.started.insert(
            op,
            Started {
                kind,
                at: now,
                timeout,
                cancelled: false,
            },
        );
        self.collect();
        op
    }

    fn values(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                self.next_value += 1;
                format!("s{}-v{}", self.seed, self.next_value)
            })
            .collect()
    }

    fn produce(
        &mut self,
        topic: &'static str,
        partition: i32,
        acks: i16,
        n: usize,
        compression: Compression,
        timeout: Duration,
    ) -> OpId {
        let values = self.values(n);
        let records: Vec<Record> = values.iter().map(|v| Record::new(v.clone())).collect();
        let options = ProduceOptions::default()
            .acks(acks)
            .compression(compression)
            .timeout(timeout);
        let kind = Kind::Produce {
            topic,
            partition,
            acks,
            values,
        };
        self.start(kind, timeout, |c, now| {
            c.produce(now, topic, partition, records, options)
        })
    }

    /// Starts one random operation of the workload.
    fn random_op(&mut self) {
        let timeout = Duration::from_millis(500 + self.sim.rng().below(7_500));
        let topic = if self.sim.rng().chance(0.8) {
            TOPIC
        } else {
            CHURN[self.sim.rng().below(CHURN.len() as u64) as usize]
        };
        let partition = self.sim.rng().below(PARTITIONS as u64 + 1) as i32 % PARTITIONS;
        let churn = CHURN[self.sim.rng().below(CHURN.len() as u64) as usize];
        let with_timeout = |timeout: Duration, f: Starter| {
            move |c: &mut Client, now: Instant| c.with_timeout(timeout, |c| f(c, now, churn))
        };
        match self.sim.rng().below(20) {
            0..=6 => {
                let acks = match self.sim.rng().below(10) {
                    0..=5 => -1,
                    6..=8 => 1,
                    _ => 0,
                };
                let n = 1 + self.sim.rng().below(4) as usize;
                let compression = match self.sim.rng().below(6) {
                    0 => Compression::Gzip,
                    1 => Compression::Lz4,
                    _ => Compression::None,
                };
                self.produce(topic, partition, acks, n, compression, timeout);
            }
            7..=9 => {
                let offset = self.sim.rng().below(6) as i64;
                let options = FetchOptions::default()
                    .max_wait(Duration::from_millis(self.sim.rng().below(300)))
                    .timeout(timeout);
                self.start(Kind::Fetch { topic }, timeout, |c, now| {
                    c.fetch(now, topic, partition, offset, options)
                });
            }
            10 | 11 => {
                let spec = match self.sim.rng().below(3) {
                    0 => OffsetSpec::Earliest,
                    1 => OffsetSpec::Latest,
                    _ => OffsetSpec::Timestamp(-1),
                };
                self.start(Kind::ListOffsets { topic }, timeout, |c, now| {
                    c.with_timeout(timeout, |c| c.list_offsets(now, topic, partition, spec))
                });
            }
            12 => {
                // Rarely, and never past the first records: the acknowledged ones
                // below the new log start are then no longer checked.
                let (_, start) = self
                    .sim
                    .cluster()
                    .partition_offsets(TOPIC, partition)
                    .unwrap_or((0, 0));
                let to = start + self.sim.rng().below(2) as i64;
                self.start(Kind::DeleteRecords, timeout, |c, now| {
                    c.with_timeout(timeout, |c| {
                        c.delete_records(now, vec![(TOPIC.into(), partition, to)], timeout)
                    })
                });
            }
            13 => {
                let partitions = 1 + self.sim.rng().below(3) as i32;
                let replication = [-1i16, 1, 2, 3][self.sim.rng().below(4) as usize];
                self.start(Kind::CreateTopics, timeout, move |c, now| {
                    c.with_timeout(timeout, |c| {
                        c.create_topics(
                            now,
                            vec![NewTopic::new(churn, partitions, replication)],
                            Duration::from_millis(500),
                        )
                    })
                });
            }
            14 => {
                self.start(
                    Kind::DeleteTopics,
                    timeout,
                    with_timeout(timeout, |c, now, churn| {
                        c.delete_topics(now, vec![churn.into()], Duration::from_millis(500))
                    }),
                );
            }
            15 => {
                let count = 1 + self.sim.rng().below(5) as i32;
                self.start(Kind::CreatePartitions, timeout, move |c, now| {
                    c.with_timeout(timeout, |c| {
                        c.create_partitions(
                            now,
                            vec![(churn.into(), count)],
                            Duration::from_millis(500),
                        )
                    })
                });
            }
            16 => {
                let (kind, f): (Kind, Starter) = match self.sim.rng().below(3) {
                    0 => (Kind::DescribeCluster, |c, now, _| c.describe_cluster(now)),
                    1 => (Kind::ListTopics, |c, now, _| c.list_topics(now)),
                    _ => (Kind::DescribeTopics, |c, now, churn| {
                        c.describe_topics(now, vec![TOPIC.into(), churn.into()])
                    }),
                };
                self.start(kind, timeout, with_timeout(timeout, f));
            }
            17 => {
                let (kind, f): (Kind, Starter) = match self.sim.rng().below(3) {
                    0 => (Kind::ListGroups, |c, now, _| c.list_groups(now)),
                    1 => (Kind::DescribeGroups, |c, now, churn| {
                        c.describe_groups(now, vec![format!("g-{churn}"), "g".into()])
                    }),
                    _ => (Kind::DeleteGroups, |c, now, churn| {
                        c.delete_groups(now, vec![format!("g-{churn}")])
                    }),
                };
                self.start(kind, timeout, with_timeout(timeout, f));
            }
            _ => {
                // Cancel a pending operation of the chaos phase.
                let pending: Vec<OpId> = self
                    .started
                    .iter()
                    .filter(|(id, s)| !s.cancelled && !self.done.contains_key(id))
                    .map(|(id, _)| *id)
                    .collect();
                if !pending.is_empty() {
                    let op = pending[self.sim.rng().below(pending.len() as u64) as usize];
                    self.sim.client(self.host).cancel(op);
                    if let Some(s) = self.started.get_mut(&op) {
                        s.cancelled = true;
                    }
                }
            }
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
        match self.sim.rng().below(9) {
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
            4 | 5 => {
                let (api, retriable, fatal) =
                    INJECT[self.sim.rng().below(INJECT.len() as u64) as usize];
                let count = 1 + self.sim.rng().below(3) as usize;
                let code = if !fatal.is_empty() && self.sim.rng().chance(0.25) {
                    let code = fatal[self.sim.rng().below(fatal.len() as u64) as usize];
                    self.injected_fatal.entry(api).or_default().insert(code);
                    code
                } else {
                    retriable[self.sim.rng().below(retriable.len() as u64) as usize]
                };
                if code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION {
                    self.injected_unknown_topic = true;
                }
                self.sim.cluster().inject_error(api, code, count);
            }
            6 => {
                self.sim.cluster().faults.throttle_ms =
                    [0, 0, 5, 50, 400, 2000][self.sim.rng().below(6) as usize];
            }
            7 => {
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

    /// Runs until every operation started has had time to reach its deadline.
    fn settle(&mut self) {
        let last_deadline = self
            .started
            .values()
            .map(|s| s.at + s.timeout)
            .max()
            .unwrap_or(self.sim.now());
        let wait = last_deadline.saturating_duration_since(self.sim.now()) + SLACK;
        self.advance(wait);
    }

    /// Starts an operation of the healed phase and runs until it ends; a failure with
    /// a fatal code injected earlier and not yet consumed is allowed once per
    /// injection, and the operation is then repeated. (The chaos phase can leave
    /// more than eight such injections waiting: seed 1079969 left eight
    /// TOPIC_AUTHORIZATION_FAILED for Fetch, and eight tries said "kept failing".)
    fn healed_op(
        &mut self,
        what: &str,
        mut start: impl FnMut(&mut Run) -> OpId,
    ) -> Option<(OpId, OpOutput)> {
        for _ in 0..64 {
            let op = start(self);
            let deadline = self.started[&op].at + self.started[&op].timeout;
            while !self.done.contains_key(&op) && self.sim.now() <= deadline && !self.spinning {
                self.advance(Duration::from_millis(100));
            }
            match self.done.get(&op).and_then(|d| d.first()) {
                Some((_, Ok(out))) => return Some((op, out.clone())),
                Some((_, Err(e))) => {
                    let api = self.started[&op].kind.api();
                    let leftover = e.error_code().is_some_and(|c| {
                        self.injected_fatal
                            .get(&api)
                            .is_some_and(|set| set.contains(&c))
                    }) && !matches!(e, ClientError::Timeout { .. });
                    if !leftover {
                        self.fail(format!(
                            "healed cluster: {what} failed: {e} (retriable faults were not retried away)"
                        ));
                        return None;
                    }
                }
                None => {
                    self.fail(format!("healed cluster: {what} never ended"));
                    return None;
                }
            }
        }
        self.fail(format!("healed cluster: {what} kept failing"));
        None
    }

    /// The healed phase: every broker up, no network faults, no throttling; then
    /// produce, fetch back and list offsets on every partition, and describe the
    /// cluster.
    fn heal_and_verify(&mut self) {
        let now = self.sim.now();
        for b in 0..BROKERS {
            self.sim.cluster().restart_broker(b, now);
        }
        self.sim.network.reset_probability = 0.0;
        self.sim.network.latency_max = Duration::from_millis(2);
        self.sim.cluster().faults.throttle_ms = 0;
        self.settle();
        for partition in 0..PARTITIONS {
            let Some((op, OpOutput::Produced(p))) = self.healed_op("produce", |run| {
                run.produce(TOPIC, partition, -1, 2, Compression::None, HEALED_TIMEOUT)
            }) else {
                continue;
            };
            let Kind::Produce { values, .. } = self.started[&op].kind.clone() else {
                unreachable!("a produce")
            };
            let Some(base) = p.base_offset else {
                self.fail("acks=all produce returned no offset".into());
                continue;
            };
            let fetched = self.healed_op("fetch", |run| {
                let options = FetchOptions::default().timeout(HEALED_TIMEOUT);
                run.start(Kind::Fetch { topic: TOPIC }, HEALED_TIMEOUT, |c, now| {
                    c.fetch(now, TOPIC, partition, base, options)
                })
            });
            if let Some((_, OpOutput::Fetched(f))) = fetched {
                let got: Vec<Option<&[u8]>> = f.records.iter().take(2).map(|r| r.value()).collect();
                let want: Vec<Option<&[u8]>> = values.iter().map(|v| Some(v.as_bytes())).collect();
                if got != want || f.records.first().map(|r| r.offset) != Some(base) {
                    self.fail(format!(
                        "partition {partition}: fetched from {base}: {:?}, produced {want:?}",
                        f.records.iter().take(2).collect::<Vec<_>>()
                    ));
                }
            }
            let latest = self.healed_op("list offsets", |run| {
                run.start(
                    Kind::ListOffsets { topic: TOPIC },
                    HEALED_TIMEOUT,
                    |c, now| {
                        c.with_timeout(HEALED_TIMEOUT, |c| {
                            c.list_offsets(now, TOPIC, partition, OffsetSpec::Latest)
                        })
                    },
                )
            });
            if let Some((_, OpOutput::Offset { offset, .. })) = latest
                && offset < base + 2
            {
                self.fail(format!(
                    "partition {partition}: latest offset {offset} below the {} just produced",
                    base + 2
                ));
            }
        }
        let cluster = self.healed_op("describe cluster", |run| {
            run.start(Kind::DescribeCluster, HEALED_TIMEOUT, |c, now| {
                c.with_timeout(HEALED_TIMEOUT, |c| c.describe_cluster(now))
            })
        });
        if let Some((_, OpOutput::Cluster(c))) = cluster
            && (c.brokers.len() != BROKERS as usize || c.controller.is_none())
        {
            self.fail(format!("describe cluster: {c:?}"));
        }
    }

    /// Judges every outcome; records acknowledged acks=all writes.
    fn judge(&mut self) {
        let mut problems = Vec::new();
        let mut acked = Vec::new();
        for (op, s) in &self.started {
            let ends = self.done.get(op).map_or(&[][..], Vec::as_slice);
            if s.cancelled {
                // A cancelled operation may have ended before it was cancelled.
                if ends.len() > 1 || ends.first().is_some_and(|(at, _)| *at > s.at + s.timeout) {
                    problems.push(format!(
                        "cancelled {op:?} {:?} ended {} times",
                        s.kind,
                        ends.len()
                    ));
                }
                continue;
            }
            let [(at, result)] = ends else {
                problems.push(format!("{op:?} {:?} ended {} times", s.kind, ends.len()));
                continue;
            };
            OPS_ENDED.fetch_add(1, Ordering::Relaxed);
            let deadline = s.at + s.timeout;
            if *at > deadline + SLACK {
                problems.push(format!(
                    "{op:?} {:?} ended {:?} after its deadline ({:?} timeout)",
                    s.kind,
                    *at - deadline,
                    s.timeout
                ));
            }
            tally(&s.kind, result);
            let errors: Vec<&ClientError> = match result {
                Err(e) => vec![e],
                Ok(out) => {
                    OPS_OK.fetch_add(1, Ordering::Relaxed);
                    nested_errors(out)
                }
            };
            for e in errors {
                if let Some(p) = self.unexplained(s, e) {
                    problems.push(format!("{op:?} {:?}: {p}: {e:?}", s.kind));
                }
            }
            match (&s.kind, result) {
                (
                    Kind::Produce {
                        topic,
                        partition,
                        acks: -1,
                        values,
                    },
                    Ok(OpOutput::Produced(p)),
                ) if *topic == TOPIC => match p.base_offset {
                    Some(base) => {
                        for (i, v) in values.iter().enumerate() {
                            acked.push((*partition, base + i as i64, v.clone()));
                        }
                    }
                    None => problems.push(format!("{op:?}: acks=all produce without an offset")),
                },
                (Kind::Produce { values, .. }, Ok(OpOutput::Produced(p)))
                    if p.record_count != values.len() =>
                {
                    problems.push(format!(
                        "{op:?}: {} records produced of {}",
                        p.record_count,
                        values.len()
                    ));
                }
                _ => {}
            }
        }
        for (op, _) in self
            .done
            .iter()
            .filter(|(op, _)| !self.started.contains_key(op))
        {
            problems.push(format!("Done for {op:?}, which was never started"));
        }
        self.acked.extend(acked);
        for p in problems {
            self.fail(p);
        }
    }

    /// Why an error should not have ended this operation, if it should not have.
    fn unexplained(&self, s: &Started, e: &ClientError) -> Option<&'static str> {
        match e {
            ClientError::Timeout { .. } => None,
            ClientError::Closed => Some("Closed, but nobody closed the client"),
            ClientError::Unsupported(api) if SERVED.contains(api) => {
                Some("Unsupported, but the simulated broker serves it")
            }
            ClientError::Unsupported(_) => None,
            ClientError::UnknownTopic(_) | ClientError::UnknownPartition { .. } => {
                (!s.kind.on_churn_topic() && !self.injected_unknown_topic)
                    .then_some("the data topic always exists with 3 partitions")
            }
            ClientError::Broker { code, .. } => {
                if s.kind.natural_codes().contains(code)
                    || self
                        .injected_fatal
                        .get(&s.kind.api())
                        .is_some_and(|set| set.contains(code))
                {
                    None
                } else if code.is_retriable() {
                    Some("a retriable error ended the operation before its deadline")
                } else {
                    Some("a fatal code neither the operation nor an injected fault explains")
                }
            }
            // A broker left the cluster between the listing and its ListGroups.
            ClientError::NoBrokers(m)
                if matches!(s.kind, Kind::ListGroups) && m.contains("left the cluster") =>
            {
                None
            }
            e if e.is_retriable() => {
                Some("a retriable error ended the operation before its deadline")
            }
            _ => Some("an error the workload cannot cause"),
        }
    }

    /// Every acknowledged acks=all record is in the log at its offset.
    fn check_log(&mut self) {
        let mut log: BTreeMap<(i32, i64), String> = BTreeMap::new();
        let mut bounds = BTreeMap::new();
        for partition in 0..PARTITIONS {
            let (hw, start) = self
                .sim
                .cluster()
                .partition_offsets(TOPIC, partition)
                .expect("data topic");
            bounds.insert(partition, (start, hw));
            for b in self.sim.cluster().partition_batches(TOPIC, partition) {
                for batch in BatchReader::new(b, DecodeOptions::default()) {
                    let batch = batch.expect("the cluster stores valid batches");
                    for r in batch.records(&DecodeOptions::default()).expect("records") {
                        let r = r.expect("record");
                        let value = String::from_utf8_lossy(r.value().unwrap_or_default());
                        log.insert((partition, r.offset), value.into_owned());
                    }
                }
            }
        }
        let mut problems = Vec::new();
        for (partition, offset, value) in &self.acked {
            let (start, hw) = bounds[partition];
            if *offset < start {
                continue; // deleted by a DeleteRecords of the workload
            }
            VERIFIED_RECORDS.fetch_add(1, Ordering::Relaxed);
            if *offset >= hw || log.get(&(*partition, *offset)) != Some(value) {
                problems.push(format!(
                    "acks=all record {value} acknowledged at {partition}/{offset}, but the log has {:?} (high watermark {hw})",
                    log.get(&(*partition, *offset))
                ));
            }
        }
        for p in problems {
            self.fail(p);
        }
    }

    /// Nothing pending, nothing outstanding, and idle connections close.
    fn check_quiet(&mut self) {
        let pending = self.sim.client(self.host).pending_operations();
        if pending != 0 {
            self.fail(format!("{pending} operations still pending at the end"));
        }
        let outstanding: usize = self
            .sim
            .client(self.host)
            .stats()
            .brokers
            .iter()
            .map(|b| b.outstanding)
            .sum();
        if outstanding != 0 {
            self.fail(format!(
                "{outstanding} requests still outstanding at the end"
            ));
        }
        let idle = self.sim.client(self.host).config().connections_max_idle;
        self.advance(idle + Duration::from_secs(1));
        let conns = self.sim.client(self.host).connections();
        if conns != 0 {
            self.fail(format!(
                "{conns} connections still open after {idle:?} idle"
            ));
        }
    }
}

/// The per-item errors inside a successful multi-item result.
fn nested_errors(out: &OpOutput) -> Vec<&ClientError> {
    match out {
        OpOutput::TopicResults(r) => r.iter().filter_map(|t| t.result.as_ref().err()).collect(),
        OpOutput::Configs(r) => r.iter().filter_map(|(_, x)| x.as_ref().err()).collect(),
        OpOutput::ConfigsAltered(r) => r.iter().filter_map(|(_, x)| x.as_ref().err()).collect(),
        OpOutput::RecordsDeleted(r) => r
            .iter()
            .filter_map(|d| d.low_watermark.as_ref().err())
            .collect(),
        OpOutput::GroupDescriptions(r) => r.iter().filter_map(|x| x.as_ref().err()).collect(),
        OpOutput::GroupsDeleted(r) => r.iter().filter_map(|(_, x)| x.as_ref().err()).collect(),
        _ => Vec::new(),
    }
}

/// One seed: the chaos phase, the healed phase, then the checks. Returns the
/// failures and the trace hash.
fn run_seed(seed: u64, planted_bug: bool) -> (Vec<String>, u64) {
    let mut run = Run::new(seed, planted_bug);
    let rounds = 25 + run.sim.rng().below(20);
    let fault_rate = [0.1, 0.3, 0.6][(seed % 3) as usize];
    for _ in 0..rounds {
        let ops = 1 + run.sim.rng().below(3);
        for _ in 0..ops {
            run.random_op();
        }
        if run.sim.rng().chance(fault_rate) {
            run.random_fault();
        }
        let d = Duration::from_micros(run.sim.rng().below(400_000));
        run.advance(d);
        if run.spinning {
            break;
        }
    }
    if run.spinning {
        return (run.failures, run.sim.trace_hash());
    }
    run.heal_and_verify();
    run.settle();
    run.judge();
    run.check_log();
    run.check_quiet();
    (run.failures, run.sim.trace_hash())
}

/// Seeds that once failed, kept so they keep passing.
/// Seeds that once failed, kept so they keep passing (1055: a broker crashed between
/// ListGroups' listing and its request to that broker, and the call failed with
/// InvalidArgument).
const REGRESSION_SEEDS: &[u64] = &[1055];

#[test]
fn client_invariants_hold_across_seeds() {
    seeds::init_logging();
    let seeds: Vec<u64> = REGRESSION_SEEDS
        .iter()
        .copied()
        .chain(seeds::from_env())
        .collect();
    let ran = seeds.len();
    seeds::on_every_core(&seeds, |seeds| {
        for seed in seeds {
            let (failures, _) = run_seed(seed, false);
            assert!(
                failures.is_empty(),
                "seed {seed} failed (replay: SIM_SEED_START={seed} SIM_SEEDS=1 cargo test --features sim --test client_invariants client_invariants_hold_across_seeds):\n{}",
                failures.join("\n")
            );
        }
    });
    let verified = VERIFIED_RECORDS.load(Ordering::Relaxed);
    let ended = OPS_ENDED.load(Ordering::Relaxed);
    let ok = OPS_OK.load(Ordering::Relaxed);
    if let Ok(t) = OUTCOMES.lock() {
        for (outcome, n) in t.iter() {
            eprintln!("{n:>7}  {outcome}");
        }
    }
    eprintln!(
        "{ran} seeds passed: {ended} operations ended ({ok} with a result), {verified} acks=all records verified in the log"
    );
    assert!(ended > ran * 20, "only {ended} operations in {ran} seeds");
    assert!(ok * 2 > ended, "only {ok} of {ended} operations succeeded");
    assert!(
        verified > ran * 5,
        "only {verified} acks=all records checked in {ran} seeds"
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
/// planted routing bug (Leader targets go to the partition's first replica, the
/// preferred leader, instead of its current leader), the same suite must fail within
/// a bounded number of seeds.
#[test]
fn a_planted_routing_bug_is_caught() {
    let caught = (1..=50).find(|seed| {
        let (failures, _) = run_seed(*seed, true);
        !failures.is_empty()
    });
    let Some(seed) = caught else {
        panic!("the planted routing bug survived 50 seeds");
    };
    let (failures, _) = run_seed(seed, true);
    eprintln!(
        "planted routing bug caught at seed {seed}:\n{}",
        failures.join("\n")
    );
    assert!(
        failures.iter().any(|f| f.contains("not retried away")),
        "caught for another reason: {failures:?}"
    );
}

/// Found by this suite: deleting a topic that does not exist (or growing one) was
/// retried until the operation's deadline, because UNKNOWN_TOPIC_OR_PARTITION is
/// retriable in Kafka's table; the controller's answer is final.
#[test]
fn deleting_or_growing_a_missing_topic_fails_at_once() {
    let mut sim = Simulation::new(
        9,
        ClusterConfig {
            brokers: 1,
            auto_create_topics: false,
            ..ClusterConfig::default()
        },
        NetworkConfig::default(),
        Instant::now(),
    );
    let config = ClientConfig::new(&sim.bootstrap()).expect("bootstrap");
    let host = sim.add_client(Client::new(config, sim.now()));
    let timeout = Duration::from_secs(30);
    for grow in [false, true] {
        let now = sim.now();
        let op = if grow {
            sim.client(host)
                .create_partitions(now, vec![("nope".into(), 2)], timeout)
        } else {
            sim.client(host)
                .delete_topics(now, vec!["nope".into()], timeout)
        };
        let out = sim.run_until_done(host, op, Duration::from_secs(120));
        let Ok(OpOutput::TopicResults(r)) = out else {
            panic!("{out:?}")
        };
        let err = r[0].result.clone().expect_err("no such topic");
        let api = if grow {
            ApiKey::CreatePartitions
        } else {
            ApiKey::DeleteTopics
        };
        assert!(
            matches!(&err, ClientError::Broker { api: a, code, .. }
                if *a == api && *code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
            "a typed broker error, not a timeout: {err:?}"
        );
        assert!(
            sim.now() - now < Duration::from_secs(1),
            "{:?}",
            sim.now() - now
        );
    }
}
