//! Testing your own service deterministically against the simulated cluster.
//!
//! `Enricher` is a small consume-transform-produce service: it reads orders from
//! `orders`, upper-cases each, and writes it to `orders-enriched` on the same
//! partition with a header naming where it came from. Its logic knows nothing of
//! runtimes; loops of a dozen lines each feed it:
//!
//! - `simulate(seed)`: the sans-IO `Client` in the seeded `Simulation`, on a virtual
//!   clock, while the cluster misbehaves (leader crashes and restarts, leader moves,
//!   injected retriable errors, all drawn from the seed). Afterwards the service's
//!   invariant is checked against the cluster's own logs: every order is in
//!   `orders-enriched` exactly once, in order, on its partition. Same seed, same run:
//!   the trace hash it prints repeats exactly.
//! - `simulate_async(seed)`: the service's async loop through the facades
//!   (`run_service`, the code that runs on tokio), unchanged, on the simulated
//!   runtime (`sim_runtime::SimRuntime`): the same faults, injected by a task of
//!   its own, the same check, the same replay by seed.
//! - `run_on_tokio(bootstrap)`: `run_service` on tokio against a real broker (or
//!   our cluster served on loopback).
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

use kafka_sansio::client::ClientError;
use kafka_sansio::client::{
    Client, ClientConfig, ConsumedRecord, Event, Offset, ProducerRecord, TopicPartition,
};
use kafka_sansio::messages::{ApiKey, ErrorCode};
use kafka_sansio::records::{BatchReader, DecodeOptions};
use kafka_sansio::runtime::ClientBuilder;
use kafka_sansio::sim::{ClusterConfig, NetworkConfig, Simulation};
use kafka_sansio::sim_runtime::{self, SimRuntime};

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
        fault(&mut sim, healed);
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

/// One step of the cluster's misbehaviour, drawn from the simulation's seed: a
/// leader crash, restarts, a leader move, injected retriable errors (or, once
/// `healed`, only restarts).
fn fault(sim: &mut Simulation, healed: bool) {
    let now = sim.now();
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

/// The service's async loop through the facades, the same code on tokio and on
/// the simulated runtime: upstream writes the orders, then the service reads,
/// transforms and writes them. Returns how many it wrote.
async fn run_service(
    client: &kafka_sansio::runtime::Client,
    planted_bug: bool,
) -> Result<usize, ClientError> {
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
    let mut service = Enricher {
        planted_bug,
        ..Default::default()
    };
    let expected = if planted_bug { ORDERS + 1 } else { ORDERS };
    let mut written = 0;
    while written < expected {
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
    Ok(written)
}

/// The same `Enricher` on tokio against a real cluster (topics created if missing).
async fn run_on_tokio(bootstrap: &str) -> Result<(), ClientError> {
    let client = ClientBuilder::new(bootstrap)
        .client_id("enricher")
        .build_tokio()
        .await?;
    for topic in [INPUT, OUTPUT] {
        // Already there is fine.
        let _ = client.create_topic(topic, PARTITIONS, -1).await;
    }
    let written = run_service(&client, false).await?;
    println!("enriched {written} orders on {bootstrap}");
    client.close().await;
    Ok(())
}

/// The same async `run_service` on the simulated runtime: the tokio code above,
/// unchanged, on the virtual clock, while the cluster misbehaves as in
/// [`simulate`] (a task of its own injects the faults). Returns the run's trace
/// hash.
fn simulate_async(seed: u64, planted_bug: bool) -> Result<u64, String> {
    let rt = SimRuntime::new(
        seed,
        ClusterConfig {
            brokers: 3,
            auto_create_topics: false,
            ..Default::default()
        },
        NetworkConfig::default(),
    );
    rt.set_time_limit(Duration::from_secs(300));
    rt.with_simulation(|sim| {
        for topic in [INPUT, OUTPUT] {
            sim.cluster().create_topic(topic, PARTITIONS, 3)?;
        }
        Ok::<_, kafka_sansio::sim::SimError>(())
    })
    .map_err(|e| e.to_string())?;
    let client = ClientBuilder::new(&rt.bootstrap())
        .client_id("enricher")
        .configure(|c| c.producer.linger = Duration::from_millis(2))
        .build_sim(&rt)
        .map_err(|e| e.to_string())?;
    let chaos = rt.clone();
    rt.spawn(async move {
        let start = chaos.now();
        loop {
            let healed = chaos.now() - start >= Duration::from_secs(20);
            chaos.with_simulation(|sim| fault(sim, healed));
            if healed {
                break;
            }
            let step = chaos.with_simulation(|sim| 200 + sim.rng().below(5_000));
            sim_runtime::sleep(Duration::from_micros(step)).await;
        }
    });
    let run = rt.block_on(async move {
        let written = run_service(&client, planted_bug).await;
        client.close().await;
        written
    });
    match run {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(format!("the service failed: {e}")),
        Err(e) => return Err(e.to_string()),
    }
    rt.with_simulation(check)?;
    Ok(rt.trace_hash())
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
        // The timer is made inside the runtime (tokio's timers need its context).
        let run =
            async { tokio::time::timeout(Duration::from_secs(60), run_on_tokio(&bootstrap)).await };
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
        let runs = [
            ("sans-IO loop", simulate(*seed, planted_bug)),
            ("async loop", simulate_async(*seed, planted_bug)),
        ];
        for (loop_name, run) in runs {
            match run {
                Ok(hash) if seeds.len() == 1 => {
                    println!("seed {seed}, {loop_name}: ok, trace {hash:016x}")
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("seed {seed} failed ({loop_name}): {e}");
                    eprintln!(
                        "replay: {}SEED={seed} cargo run --example deterministic_service --features sim,tokio",
                        if planted_bug { "PLANTED_BUG=1 " } else { "" }
                    );
                    std::process::exit(1);
                }
            }
        }
    }
    if seeds.len() > 1 {
        println!(
            "{} seeds, both loops: the service's invariant held in every run",
            seeds.len()
        );
    }
}

// `cargo test` runs these (the example is declared with `test = true`).
#[cfg(test)]
mod tests {
    use super::{simulate, simulate_async};

    /// Each loop, and the seeds its invariant test runs.
    type Loop = (&'static str, fn(u64, bool) -> Result<u64, String>, u64);
    const LOOPS: [Loop; 2] = [
        ("sans-IO loop", simulate, 20),
        ("async loop", simulate_async, 10),
    ];

    #[test]
    fn the_service_invariant_holds_across_seeds() {
        for (name, run, seeds) in LOOPS {
            for seed in 1..=seeds {
                if let Err(e) = run(seed, false) {
                    panic!("{name}, seed {seed}: {e}");
                }
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        for (name, run, _) in LOOPS {
            assert_eq!(run(7, false), run(7, false), "{name}");
            assert_ne!(run(7, false), run(8, false), "{name}");
        }
    }

    #[test]
    fn a_duplicate_written_by_the_service_is_caught() {
        for (name, run, _) in LOOPS {
            let err = run(1, true).expect_err("the planted duplicate must be caught");
            assert!(err.contains("enriched orders for"), "{name}: {err}");
        }
    }
}
