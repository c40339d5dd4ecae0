//! Testing your own service deterministically against the simulated cluster.
//!
//! `Enricher` is a small consume-transform-produce service: it reads orders from
//! `orders`, upper-cases each, and writes it to `orders-enriched` on the same
//! partition with a header naming where it came from. Its logic knows nothing of
//! runtimes; two loops of a dozen lines each feed it:
//!
//! - `simulate(seed)`: the sans-IO `Client` in the seeded `Simulation`, on a virtual
//!   clock, while the cluster misbehaves (leader crashes and restarts, leader moves,
//!   injected retriable errors, all drawn from the seed). Afterwards the service's
//!   invariant is checked against the cluster's own logs: every order is in
//!   `orders-enriched` exactly once, in order, on its partition. Same seed, same run:
//!   the trace hash it prints repeats exactly.
//! - `run_on_tokio(bootstrap)`: the same `Enricher` through the tokio facade against
//!   a real broker (or our cluster served on loopback).
//!
//! ```sh
//! cargo run --example deterministic_service --features sim,tokio            # 20 seeds
//! SEEDS=500 cargo run --release --example deterministic_service --features sim,tokio
//! SEED=7 cargo run --example deterministic_service --features sim,tokio     # replay one
//! PLANTED_BUG=1 cargo run --example deterministic_service --features sim,tokio
//! KAFKA_BOOTSTRAP=host:9092 cargo run --example deterministic_service --features sim,tokio
//! ```
//!
//! `PLANTED_BUG=1` makes the service write one order twice (as a service that resends
//! on an ambiguous error would): the check catches it and prints the command that
//! replays the failing seed. See docs/deterministic-testing.md.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // an example owns its clock

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_sansio::client::{
    Client, ClientConfig, ConsumedRecord, Event, Offset, ProducerRecord, TopicPartition,
};
use kafka_sansio::messages::{ApiKey, ErrorCode};
use kafka_sansio::records::{BatchReader, DecodeOptions};
use kafka_sansio::sim::{ClusterConfig, NetworkConfig, Simulation};

const INPUT: &str = "orders";
const OUTPUT: &str = "orders-enriched";
const PARTITIONS: i32 = 3;
const ORDERS: usize = 300;

/// The service: what to write for each order it reads. No runtime, no clock.
#[derive(Default)]
pub struct Enricher {
    /// The next input offset per partition: records before it were handled.
    next: BTreeMap<i32, i64>,
    /// Test-only: write one record twice (see the module docs).
    planted_bug: bool,
}

impl Enricher {
    /// The records to produce for what was consumed (records seen before are skipped,
    /// so a redelivered input never produces twice).
    pub fn handle(&mut self, consumed: &[ConsumedRecord]) -> Vec<ProducerRecord> {
        let mut out = Vec::new();
        for r in consumed {
            let next = self.next.entry(r.partition).or_insert(0);
            if r.record.offset < *next {
                continue;
            }
            *next = r.record.offset + 1;
            let value = r.record.value().unwrap_or_default().to_ascii_uppercase();
            let mut record = ProducerRecord::new(OUTPUT, value)
                .partition(r.partition)
                .header(
                    "source",
                    format!("{INPUT}/{}/{}", r.partition, r.record.offset),
                );
            if let Some(key) = r.record.key_bytes() {
                record = record.key(key);
            }
            if self.planted_bug && r.record.offset == 40 {
                // As a service that resends on an ambiguous error would.
                self.planted_bug = false;
                out.push(record.clone());
            }
            out.push(record);
        }
        out
    }
}

fn order(i: usize) -> (String, String) {
    (
        format!("customer-{}", i % 17),
        format!("order {i}: 2 widgets"),
    )
}

/// One seeded run; `Err` says which invariant broke. `Ok` is the run's trace hash.
fn simulate(seed: u64, planted_bug: bool) -> Result<u64, String> {
    let mut sim = Simulation::new(
        seed,
        ClusterConfig {
            brokers: 3,
            auto_create_topics: false,
            ..Default::default()
        },
        NetworkConfig::default(),
        Instant::now(),
    );
    for topic in [INPUT, OUTPUT] {
        sim.cluster()
            .create_topic(topic, PARTITIONS, 3)
            .map_err(|e| e.to_string())?;
    }
    let client = |sim: &Simulation, id: &str| {
        let mut config = ClientConfig::new(&sim.bootstrap()).expect("bootstrap");
        config.connection.client_id = Some(id.into());
        config.seed = seed;
        config.producer.linger = Duration::from_millis(2);
        Client::new(config, sim.now())
    };
    let upstream = sim.add_client(client(&sim, "upstream"));
    let service_host = sim.add_client(client(&sim, "enricher"));
    let now = sim.now();
    let partitions = (0..PARTITIONS)
        .map(|p| TopicPartition::new(INPUT, p))
        .collect();
    sim.client(service_host)
        .assign(now, partitions, Offset::Beginning);
    let mut service = Enricher {
        planted_bug,
        ..Default::default()
    };

    let mut sent = 0;
    let mut upstream_failed = Vec::new();
    let mut written = 0usize;
    let mut output_failed = Vec::new();
    let start = sim.now();
    let deadline = start + Duration::from_secs(120);
    let expected = if planted_bug { ORDERS + 1 } else { ORDERS };
    while sim.now() < deadline && (sent < ORDERS || written < expected) {
        // Upstream writes orders in bursts, keyed by customer (the default partitioner).
        if sent < ORDERS {
            let now = sim.now();
            for _ in 0..1 + sim.rng().below(8) {
                if sent == ORDERS {
                    break;
                }
                let (key, value) = order(sent);
                let _ = sim
                    .client(upstream)
                    .send(now, ProducerRecord::new(INPUT, value).key(key));
                sent += 1;
            }
        }
        // The cluster misbehaves, as the seed says, for the first 20 s; then it heals
        // (faults injected faster than the producer's backoff would hold a record back
        // until its delivery timeout).
        let now = sim.now();
        let healed = now - start >= Duration::from_secs(20);
        match if healed { 1 } else { sim.rng().below(400) } {
            0 => {
                let p = sim.rng().below(PARTITIONS as u64) as i32;
                if let Some(leader) = sim.cluster().partition_leader(OUTPUT, p) {
                    sim.cluster().crash_broker(leader, now);
                }
            }
            1..=2 => {
                let down: Vec<i32> = sim
                    .cluster()
                    .broker_ids()
                    .collect::<Vec<_>>()
                    .into_iter()
                    .filter(|b| !sim.cluster().is_up(*b))
                    .collect();
                for b in down {
                    sim.cluster().restart_broker(b, now);
                }
            }
            3 => {
                let p = sim.rng().below(PARTITIONS as u64) as i32;
                let to = sim.rng().below(3) as i32;
                let _ = sim.cluster().move_leader(INPUT, p, to);
            }
            4 => sim
                .cluster()
                .inject_error(ApiKey::Produce, ErrorCode::NOT_LEADER_OR_FOLLOWER, 2),
            5 => sim
                .cluster()
                .inject_error(ApiKey::Fetch, ErrorCode::NOT_LEADER_OR_FOLLOWER, 1),
            _ => {}
        }
        let step = Duration::from_micros(200 + sim.rng().below(5_000));
        sim.run_for(step);

        // The service's loop: consume, transform, produce.
        let now = sim.now();
        let consumed = sim.client(service_host).poll_records(now, 500);
        for record in service.handle(&consumed) {
            if let Err(e) = sim.client(service_host).send(now, record) {
                output_failed.push(format!("refused: {e}"));
            }
        }
        for event in sim.client_events(service_host) {
            if let Event::Delivered { result, .. } = event {
                match result {
                    Ok(_) => written += 1,
                    Err(e) => output_failed.push(e.to_string()),
                }
            }
        }
        for event in sim.client_events(upstream) {
            if let Event::Delivered { result: Err(e), .. } = event {
                upstream_failed.push(e.to_string());
            }
        }
    }
    if !upstream_failed.is_empty() || !output_failed.is_empty() {
        return Err(format!(
            "deliveries failed: upstream {upstream_failed:?}, service {output_failed:?}"
        ));
    }
    check(&mut sim)?;
    Ok(sim.trace_hash())
}

/// The service's invariant, read from the cluster's own logs: each partition of the
/// output holds exactly the upper-cased input of the same partition, once, in order.
fn check(sim: &mut Simulation) -> Result<(), String> {
    let opts = DecodeOptions::default();
    let mut log = |topic: &str, p: i32| -> Vec<Vec<u8>> {
        let mut values = Vec::new();
        for b in sim.cluster().partition_batches(topic, p) {
            for batch in BatchReader::new(b, opts) {
                let batch = batch.expect("the cluster's own batch");
                for r in batch.records(&opts).expect("records") {
                    values.push(r.expect("record").value().unwrap_or_default().to_vec());
                }
            }
        }
        values
    };
    let mut total = 0;
    for p in 0..PARTITIONS {
        let input = log(INPUT, p);
        let output = log(OUTPUT, p);
        total += input.len();
        let want: Vec<Vec<u8>> = input.iter().map(|v| v.to_ascii_uppercase()).collect();
        if output != want {
            let first = output.iter().zip(&want).position(|(a, b)| a != b);
            return Err(format!(
                "partition {p}: {} enriched orders for {} orders (first difference at {first:?})",
                output.len(),
                want.len()
            ));
        }
    }
    if total != ORDERS {
        return Err(format!("{total} orders in the input, {ORDERS} sent"));
    }
    Ok(())
}

/// The same `Enricher` on tokio against a real cluster (topics created if missing).
async fn run_on_tokio(bootstrap: &str) -> Result<(), kafka_sansio::client::ClientError> {
    use kafka_sansio::runtime::ClientBuilder;
    let client = ClientBuilder::new(bootstrap)
        .client_id("enricher")
        .build_tokio()
        .await?;
    for topic in [INPUT, OUTPUT] {
        // Already there is fine.
        let _ = client.create_topic(topic, PARTITIONS, -1).await;
    }
    let producer = client.producer();
    let upstream: Vec<_> = (0..ORDERS)
        .map(|i| {
            let (key, value) = order(i);
            producer.send(ProducerRecord::new(INPUT, value).key(key))
        })
        .collect();
    for delivery in upstream {
        delivery.await?;
    }
    let mut consumer = client.consumer();
    let partitions = (0..PARTITIONS)
        .map(|p| TopicPartition::new(INPUT, p))
        .collect();
    consumer.assign(partitions, Offset::Beginning)?;
    let mut service = Enricher::default();
    let mut written = 0;
    while written < ORDERS {
        let consumed = consumer.recv_batch().await?;
        let deliveries: Vec<_> = service
            .handle(&consumed)
            .into_iter()
            .map(|r| producer.send(r))
            .collect();
        for delivery in deliveries {
            delivery.await?;
            written += 1;
        }
    }
    println!("enriched {written} orders on {bootstrap}");
    client.close().await;
    Ok(())
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let planted_bug = std::env::var_os("PLANTED_BUG").is_some();
    if let Ok(bootstrap) = std::env::var("KAFKA_BOOTSTRAP") {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        let run = tokio::time::timeout(Duration::from_secs(60), run_on_tokio(&bootstrap));
        match rt.block_on(run) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
            Err(_) => {
                eprintln!("error: the service did not finish within 60 s");
                std::process::exit(1);
            }
        }
        return;
    }
    let seeds: Vec<u64> = match std::env::var("SEED") {
        Ok(s) => vec![s.parse().expect("SEED is a number")],
        Err(_) => {
            let n: u64 = std::env::var("SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(20);
            (1..=n).collect()
        }
    };
    for seed in &seeds {
        match simulate(*seed, planted_bug) {
            Ok(hash) if seeds.len() == 1 => println!("seed {seed}: ok, trace {hash:016x}"),
            Ok(_) => {}
            Err(e) => {
                eprintln!("seed {seed} failed: {e}");
                eprintln!(
                    "replay: {}SEED={seed} cargo run --example deterministic_service --features sim,tokio",
                    if planted_bug { "PLANTED_BUG=1 " } else { "" }
                );
                std::process::exit(1);
            }
        }
    }
    if seeds.len() > 1 {
        println!(
            "{} seeds: the service's invariant held in every one",
            seeds.len()
        );
    }
}

// `cargo test` runs these (the example is declared with `test = true`).
#[cfg(test)]
mod tests {
    use super::simulate;

    #[test]
    fn the_service_invariant_holds_across_seeds() {
        for seed in 1..=20 {
            if let Err(e) = simulate(seed, false) {
                panic!("seed {seed}: {e}");
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        assert_eq!(simulate(7, false), simulate(7, false));
        assert_ne!(simulate(7, false), simulate(8, false));
    }

    #[test]
    fn a_duplicate_written_by_the_service_is_caught() {
        let err = simulate(1, true).expect_err("the planted duplicate must be caught");
        assert!(err.contains("enriched orders for"), "{err}");
    }
}
