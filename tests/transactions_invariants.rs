//! Simulation testing of the transactional producer: for many seeds, a producer
//! runs transactions of random records (random partitions, sizes and batching)
//! against the simulated cluster while it misbehaves (leader moves, broker crashes
//! and restarts with the transaction coordinator among them, connection resets,
//! latency, injected retriable errors on Produce, AddPartitionsToTxn, EndTxn,
//! InitProducerId and FindCoordinator), committing most and aborting some. A
//! commit refused as abortable is aborted; one that times out is asked again, then
//! aborted after the cluster heals. Checked for every seed:
//!
//! - every call ends (by its operation timeout) with success, a timeout or
//!   [`TransactionError::Abortable`]; never a fatal error (nothing fences it);
//! - every record gets exactly one `Event::Delivered`;
//! - a committed transaction's records were all delivered with success;
//! - a read_committed reader reads exactly the records of the committed
//!   transactions, each once, in send order per partition, and none of an aborted
//!   one; read_uncommitted sees every record delivered with success;
//! - no transaction is left open: each partition's last stable offset is its high
//!   watermark at the end;
//! - the same seed gives the same trace hash.
//!
//! `SIM_SEEDS=2000 cargo test --release --features sim --test transactions_invariants
//! -- --nocapture` runs a campaign; `SIM_SEED_START=<seed> SIM_SEEDS=1` replays one.
#![cfg(feature = "sim")]
#![allow(clippy::disallowed_methods)] // tests own their clock

#[path = "common/seeds.rs"]
mod seeds;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_sansio::client::{
    Client, ClientConfig, ClientError, Event, FetchOptions, IsolationLevel, OpId, OpOutput,
    ProducerRecord, RecordId, SendError, TransactionError,
};
use kafka_sansio::messages::{ApiKey, ErrorCode};
use kafka_sansio::sim::{ClusterConfig, HostId, NetworkConfig, SimRng, Simulation};

const TOPIC: &str = "t";
const PARTITIONS: i32 = 3;
const BROKERS: usize = 3;
const TRANSACTIONS: usize = 8;
/// Virtual time a call may take before the run counts it as hung (its operation
/// timeout is 20 s).
const CALL_LIMIT: Duration = Duration::from_secs(40);

const RETRIABLE: [(ApiKey, ErrorCode); 8] = [
    (ApiKey::Produce, ErrorCode::NOT_LEADER_OR_FOLLOWER),
    (ApiKey::Produce, ErrorCode::REQUEST_TIMED_OUT),
    (
        ApiKey::AddPartitionsToTxn,
        ErrorCode::CONCURRENT_TRANSACTIONS,
    ),
    (
        ApiKey::AddPartitionsToTxn,
        ErrorCode::COORDINATOR_NOT_AVAILABLE,
    ),
    (ApiKey::EndTxn, ErrorCode::CONCURRENT_TRANSACTIONS),
    (ApiKey::EndTxn, ErrorCode::NOT_COORDINATOR),
    (
        ApiKey::InitProducerId,
        ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
    ),
    (
        ApiKey::FindCoordinator,
        ErrorCode::COORDINATOR_NOT_AVAILABLE,
    ),
];

struct Run {
    sim: Simulation,
    rng: SimRng,
    host: HostId,
    failures: Vec<String>,
    /// Each record sent: its transaction, partition and value.
    sent: BTreeMap<RecordId, (usize, i32, String)>,
    /// Deliveries seen per record: offsets, or errors.
    delivered: BTreeMap<RecordId, Vec<Result<i64, ClientError>>>,
    committed: BTreeSet<usize>,
    /// Sends refused because the transaction had failed.
    refused: usize,
}

impl Run {
    fn new(seed: u64, planted: bool) -> Self {
        let mut rng = SimRng::new(seed);
        let mut sim = Simulation::new(
            seed,
            ClusterConfig {
                brokers: BROKERS,
                ..ClusterConfig::default()
            },
            NetworkConfig::default(),
            Instant::now(),
        );
        sim.cluster()
            .create_topic(TOPIC, PARTITIONS, 3)
            .expect("the topic is created");
        let mut config = ClientConfig::new(&sim.bootstrap()).expect("bootstrap parses");
        config.seed = seed;
        config.operation_timeout = Duration::from_secs(20);
        config.producer.transactional_id = Some(format!("tx-{seed}"));
        config.producer.linger = Duration::from_millis([0, 1, 5, 20][rng.below(4) as usize]);
        config.producer.batch_max_bytes = [4096, 16 * 1024, 1 << 20][rng.below(3) as usize];
        config.producer.max_in_flight = 1 + rng.below(5) as usize;
        config.producer.delivery_timeout = Duration::from_secs(15);
        config.producer.planted_bug_commit_before_records_settle = planted;
        let now = sim.now();
        let host = sim.add_client(Client::new(config, now));
        Self {
            sim,
            rng,
            host,
            failures: Vec::new(),
            sent: BTreeMap::new(),
            delivered: BTreeMap::new(),
            committed: BTreeSet::new(),
            refused: 0,
        }
    }

    fn fail(&mut self, what: String) {
        let at = self.sim.elapsed();
        self.failures.push(format!("{at:?}: {what}"));
    }

    /// Runs until `op` ends, collecting deliveries on the way.
    fn call(&mut self, what: &str, op: OpId) -> Result<OpOutput, ClientError> {
        let result = self.sim.run_until_done(self.host, op, CALL_LIMIT);
        self.collect();
        if let Err(ClientError::Timeout {
            operation: "simulation run",
            ..
        }) = &result
        {
            self.fail(format!("{what} did not end within {CALL_LIMIT:?}"));
        }
        if let Err(ClientError::Transaction(TransactionError::Fatal(e))) = &result {
            self.fail(format!("{what}: fatal error {e}"));
        }
        result
    }

    fn collect(&mut self) {
        let events: Vec<Event> = self.sim.client_events(self.host).collect();
        for e in events {
            if let Event::Delivered { record, result } = e {
                self.delivered
                    .entry(record)
                    .or_default()
                    .push(result.map(|m| m.offset.unwrap_or(-1)));
            }
        }
    }

    fn heal(&mut self) {
        let now = self.sim.now();
        for b in 0..BROKERS as i32 {
            self.sim.cluster().restart_broker(b, now);
        }
        self.sim.network.reset_probability = 0.0;
        self.sim.network.latency_max = Duration::from_millis(2);
    }

    fn fault(&mut self) {
        let now = self.sim.now();
        match self.rng.below(6) {
            0 => {
                let p = self.rng.below(PARTITIONS as u64) as i32;
                let to = self.rng.below(BROKERS as u64) as i32;
                let _ = self.sim.cluster().move_leader(TOPIC, p, to);
            }
            1 => {
                let b = self.rng.below(BROKERS as u64) as i32;
                let live = (0..BROKERS as i32)
                    .filter(|b| self.sim.cluster().is_up(*b))
                    .count();
                if live > 2 {
                    self.sim.cluster().crash_broker(b, now);
                }
            }
            2 => {
                let b = self.rng.below(BROKERS as u64) as i32;
                self.sim.cluster().restart_broker(b, now);
            }
            3 => {
                let (api, code) = RETRIABLE[self.rng.below(RETRIABLE.len() as u64) as usize];
                let n = 1 + self.rng.below(2) as usize;
                self.sim.cluster().inject_error(api, code, n);
            }
            4 => {
                self.sim.network.reset_probability = [0.0, 0.01, 0.05][self.rng.below(3) as usize];
            }
            _ => {
                self.sim.network.latency_max =
                    Duration::from_millis([1, 20, 200][self.rng.below(3) as usize]);
            }
        }
    }

    /// Ends the open transaction: commits if asked and it can, aborts otherwise.
    /// Whether it committed.
    fn end(&mut self, commit: bool) -> bool {
        if commit {
            for attempt in 0..3 {
                if attempt == 2 {
                    self.heal();
                }
                let now = self.sim.now();
                let op = self.sim.client(self.host).commit_transaction(now);
                match self.call("commit_transaction", op) {
                    Ok(_) => return true,
                    Err(ClientError::Transaction(TransactionError::Abortable(_))) => break,
                    Err(ClientError::Timeout { .. }) => continue,
                    Err(e) => {
                        self.fail(format!("commit_transaction: unexpected {e}"));
                        return false;
                    }
                }
            }
        }
        for attempt in 0..3 {
            if attempt == 1 {
                self.heal();
            }
            let now = self.sim.now();
            let op = self.sim.client(self.host).abort_transaction(now);
            match self.call("abort_transaction", op) {
                Ok(_) => return false,
                Err(ClientError::Timeout { .. }) => continue,
                Err(e) => {
                    self.fail(format!("abort_transaction: unexpected {e}"));
                    return false;
                }
            }
        }
        self.fail("abort_transaction never succeeded".into());
        false
    }

    fn run(&mut self, seed: u64) {
        let now = self.sim.now();
        let op = self.sim.client(self.host).init_transactions(now);
        if self.call("init_transactions", op).is_err() {
            self.heal();
            let now = self.sim.now();
            let op = self.sim.client(self.host).init_transactions(now);
            if let Err(e) = self.call("init_transactions", op) {
                self.fail(format!("init_transactions after healing: {e}"));
                return;
            }
        }
        let fault_rate = [0.0, 0.2, 0.5][(seed % 3) as usize];
        for t in 0..TRANSACTIONS {
            let now = self.sim.now();
            if let Err(e) = self.sim.client(self.host).begin_transaction(now) {
                self.fail(format!("begin_transaction {t}: {e}"));
                return;
            }
            let n = 1 + self.rng.below(12) as usize;
            for i in 0..n {
                let partition = self.rng.below(PARTITIONS as u64) as i32;
                let size = [3, 40, 400, 3000][self.rng.below(4) as usize];
                let value = format!("{t}-{i}-{}", "x".repeat(size));
                let now = self.sim.now();
                match self.sim.client(self.host).send(
                    now,
                    ProducerRecord::new(TOPIC, value.clone()).partition(partition),
                ) {
                    Ok(id) => {
                        self.sent.insert(id, (t, partition, value));
                    }
                    // A record of the transaction failed (a sequence lost to a
                    // crash, its delivery timeout): it can only be aborted now.
                    Err(SendError::Transaction(TransactionError::Abortable(_))) => {
                        self.refused += 1;
                    }
                    Err(e) => self.fail(format!("send in transaction {t}: {e}")),
                }
                if self.rng.chance(fault_rate) {
                    self.fault();
                }
                let pause = self.rng.below(30);
                self.sim.run_for(Duration::from_millis(pause));
                self.collect();
            }
            let commit = self.rng.chance(0.7);
            if self.end(commit) {
                self.committed.insert(t);
            }
            // Faults do not outlive the transaction for long.
            if self.rng.chance(0.5) {
                self.heal();
            }
        }
        self.heal();
        self.sim.run_for(Duration::from_secs(20));
        self.collect();
        self.check();
    }

    /// What a reader at `isolation` reads of partition `p`: (offset, value) each.
    fn read(&mut self, p: i32, isolation: IsolationLevel) -> Vec<(i64, String)> {
        let config = ClientConfig::new(&self.sim.bootstrap()).expect("bootstrap parses");
        let now = self.sim.now();
        let reader = self.sim.add_client(Client::new(config, now));
        let mut out = Vec::new();
        let mut offset = 0;
        for _ in 0..1000 {
            let now = self.sim.now();
            let options = FetchOptions::default()
                .max_wait(Duration::ZERO)
                .isolation(isolation);
            let op = self
                .sim
                .client(reader)
                .fetch(now, TOPIC, p, offset, options);
            let Ok(OpOutput::Fetched(f)) =
                self.sim.run_until_done(reader, op, Duration::from_secs(30))
            else {
                self.fail(format!("reading partition {p} failed"));
                return out;
            };
            out.extend(f.records.iter().map(|r| {
                (
                    r.offset,
                    String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned(),
                )
            }));
            let end = match isolation {
                IsolationLevel::ReadCommitted => f.last_stable_offset,
                IsolationLevel::ReadUncommitted => f.high_watermark,
            };
            if f.next_offset >= end {
                return out;
            }
            offset = f.next_offset;
        }
        self.fail(format!("partition {p} was not read to its end"));
        out
    }

    fn check(&mut self) {
        // One delivery each.
        let sent: Vec<RecordId> = self.sent.keys().copied().collect();
        for id in &sent {
            let n = self.delivered.get(id).map_or(0, Vec::len);
            if n != 1 {
                self.fail(format!("record {id:?} was delivered {n} times"));
            }
        }
        for id in self.delivered.keys() {
            if !self.sent.contains_key(id) {
                self.failures
                    .push(format!("a delivery for {id:?}, never sent"));
            }
        }
        // A committed transaction's records were all written.
        let mut problems = Vec::new();
        for (id, (t, _, _)) in &self.sent {
            let ok = matches!(self.delivered.get(id).and_then(|d| d.first()), Some(Ok(_)));
            if self.committed.contains(t) && !ok {
                problems.push(format!(
                    "record {id:?} of committed transaction {t} was not written: {:?}",
                    self.delivered.get(id)
                ));
            }
        }
        for p in problems {
            self.fail(p);
        }
        for p in 0..PARTITIONS {
            let expected: Vec<String> = self
                .sent
                .values()
                .filter(|(t, q, _)| *q == p && self.committed.contains(t))
                .map(|(_, _, v)| v.clone())
                .collect();
            let read: Vec<String> = self
                .read(p, IsolationLevel::ReadCommitted)
                .into_iter()
                .map(|(_, v)| v)
                .collect();
            if read != expected {
                let short = |v: &[String]| -> Vec<String> {
                    v.iter().map(|s| s.chars().take(8).collect()).collect()
                };
                self.fail(format!(
                    "partition {p} at read_committed: read {:?}, committed {:?}",
                    short(&read),
                    short(&expected)
                ));
            }
            // Every record written is in the log once, at its offset.
            let all: BTreeMap<i64, String> = self
                .read(p, IsolationLevel::ReadUncommitted)
                .into_iter()
                .collect();
            let written: Vec<(i64, String)> = self
                .sent
                .iter()
                .filter(|(_, (_, q, _))| *q == p)
                .filter_map(|(id, (_, _, v))| match self.delivered.get(id)?.first()? {
                    // (-1: written, its offset not known: a duplicate, or a batch
                    // proven written by a later one's success)
                    Ok(offset) if *offset >= 0 => Some((*offset, v.clone())),
                    _ => None,
                })
                .collect();
            for (offset, value) in written {
                if all.get(&offset) != Some(&value) {
                    self.fail(format!(
                        "partition {p}: offset {offset} is not the record reported there"
                    ));
                }
            }
            let (hw, _) = self
                .sim
                .cluster()
                .partition_offsets(TOPIC, p)
                .unwrap_or((0, 0));
            let lso = self.sim.cluster().partition_last_stable_offset(TOPIC, p);
            if lso != Some(hw) {
                self.fail(format!(
                    "partition {p}: a transaction is left open (LSO {lso:?}, HW {hw})"
                ));
            }
        }
    }
}

fn run_seed(seed: u64, planted: bool) -> (Vec<String>, u64, usize) {
    if std::env::var_os("SIM_PLANTED").is_some() {
        return run_seed_inner(seed, true);
    }
    run_seed_inner(seed, planted)
}

fn run_seed_inner(seed: u64, planted: bool) -> (Vec<String>, u64, usize) {
    let mut run = Run::new(seed, planted);
    run.run(seed);
    let committed = run.committed.len();
    (run.failures, run.sim.trace_hash(), committed)
}

#[test]
fn transactional_producer_invariants_hold_across_seeds() {
    seeds::init_logging();
    let seeds: Vec<u64> = seeds::from_env().collect();
    let totals = seeds::on_every_core(&seeds, |seeds| {
        let mut committed = 0;
        for seed in seeds {
            let (failures, _, c) = run_seed(seed, false);
            assert!(
                failures.is_empty(),
                "seed {seed} failed (replay: SIM_SEED_START={seed} SIM_SEEDS=1 cargo test --features sim --test transactions_invariants transactional_producer_invariants_hold_across_seeds):\n{}",
                failures.join("\n")
            );
            committed += c;
        }
        committed
    });
    let committed: usize = totals.iter().sum();
    println!(
        "{} seeds: {committed} transactions committed of {}",
        seeds.len(),
        seeds.len() * TRANSACTIONS
    );
    // A suite that commits nothing checks nothing.
    assert!(committed > seeds.len() * TRANSACTIONS / 3);
}

#[test]
fn the_same_seed_gives_the_same_run() {
    for seed in [1, 2, 3] {
        let (_, a, _) = run_seed(seed, false);
        let (_, b, _) = run_seed(seed, false);
        assert_eq!(a, b, "seed {seed}");
    }
}

#[test]
fn a_commit_that_does_not_wait_for_its_records_is_caught() {
    let caught = (1..=20)
        .filter(|s| !run_seed(*s, true).0.is_empty())
        .count();
    assert!(
        caught >= 10,
        "the planted bug was caught in {caught} of 20 seeds"
    );
}
