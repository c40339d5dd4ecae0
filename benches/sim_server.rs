//! The served simulated cluster under load, with more and more it holds: requests per
//! second and server CPU per request for 20 busy connections, with 0, 1,000 and 4,000
//! idle connections open and with 10 and 400,000 batches stored (issue 16: the cost
//! of a request must not grow with what the cluster holds).
//!
//! ```text
//! cargo bench --bench sim_server --features sim,tokio
//! cargo bench --bench sim_server --features sim,tokio -- --seconds 5
//! KAFKA_SIM=/path/to/another/kafka-sim cargo bench --bench sim_server --features sim,tokio
//! ```
//!
//! The server is the `kafka-sim` binary, a process of its own (single-threaded), so
//! its CPU time is read from `/proc/<pid>/task/*/schedstat` (nanoseconds on a CPU) and
//! nothing of the load generator is counted in it. `KAFKA_SIM` runs another build of
//! it (an older commit, to compare). Each busy connection runs a closed loop of
//! Metadata, a one-record Produce (acks=1) and a Fetch of what it just wrote; idle
//! connections are plain sockets that never send. The stored batches are
//! single-record batches in one partition of another topic, written 1,000 to a
//! Produce request.
//!
//! The figure to watch is CPU per request: requests per second also depends on how
//! much of the two cores the load generator gets.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::unwrap_used
)] // a benchmark owns its clock and sockets

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_sansio::connection::{Config, RequestOptions};
use kafka_sansio::messages::{MetadataRequest, metadata_request};
use kafka_sansio::runtime::Outcome;
use kafka_sansio::tokio_runtime::Connection;

#[path = "../tests/sim_harness/mod.rs"]
mod sim_harness;
#[path = "../tests/sim_served/mod.rs"]
mod sim_served;
use sim_harness::{fetch, filler, produce};
use sim_served::KafkaSim;

const BUSY: usize = 20;

/// Stores `batches` single-record batches in `bulk`, 1,000 to a request.
async fn store(addr: &str, batches: usize) {
    let conn = Connection::connect(addr, Config::new("loader"))
        .await
        .unwrap();
    let one = filler(5, 1);
    let mut left = batches;
    while left > 0 {
        let n = left.min(1000);
        let mut many = BytesMut::new();
        for _ in 0..n {
            many.extend_from_slice(&one);
        }
        let r = conn
            .send(produce("bulk", 0, -1, many.freeze()))
            .await
            .unwrap();
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
        left -= n;
    }
}

/// One busy connection: Metadata, Produce, Fetch of what it wrote, until `stop`.
async fn busy(addr: String, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let conn = Connection::connect(addr.as_str(), Config::new("busy"))
        .await
        .unwrap();
    let metadata = MetadataRequest {
        topics: Some(vec![metadata_request::MetadataRequestTopic {
            name: Some("bench".into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let record = filler(5, 1);
    while !stop.load(Ordering::Relaxed) {
        conn.send(metadata.clone()).await.unwrap();
        let p = conn
            .send(produce("bench", 0, 1, record.clone()))
            .await
            .unwrap();
        let offset = p.responses[0].partition_responses[0].base_offset;
        let f = conn
            .send_with(
                fetch("bench", 0, offset, 1, 0),
                RequestOptions::max_version(12),
            )
            .await
            .unwrap();
        assert!(matches!(f, Outcome::Response(_)));
        done.fetch_add(3, Ordering::Relaxed);
    }
}

struct Measured {
    per_second: f64,
    cpu_us: f64,
}

fn measure(idle: usize, stored: usize, seconds: u64) -> Measured {
    let bin =
        std::env::var("KAFKA_SIM").unwrap_or_else(|_| env!("CARGO_BIN_EXE_kafka-sim").to_owned());
    let mut server = KafkaSim::start(&bin, &["--topic", "bench", "--topic", "bulk"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(store(&server.addr, stored));
    let idle: Vec<TcpStream> = (0..idle)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..BUSY)
        .map(|_| rt.spawn(busy(server.addr.clone(), stop.clone(), done.clone())))
        .collect();
    // Warm up, then measure.
    std::thread::sleep(Duration::from_millis(500));
    assert!(server.command("bootstrap").starts_with("ok"));
    let (d0, c0, t0) = (
        done.load(Ordering::Relaxed),
        server.cpu_ns(),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(seconds));
    let (d1, c1, t1) = (
        done.load(Ordering::Relaxed),
        server.cpu_ns(),
        Instant::now(),
    );
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        rt.block_on(t).unwrap();
    }
    drop(idle);
    let requests = (d1 - d0) as f64;
    Measured {
        per_second: requests / (t1 - t0).as_secs_f64(),
        cpu_us: (c1 - c0) as f64 / 1000.0 / requests,
    }
}

fn main() {
    let mut seconds = 3;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--seconds" {
            seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(seconds);
        }
    }
    println!("{BUSY} busy connections, {seconds} s a case");
    println!(
        "{:>6} {:>9} {:>12} {:>14} {:>8}",
        "idle", "batches", "requests/s", "CPU µs/request", "vs base"
    );
    let mut base = None;
    let mut worst: f64 = 1.0;
    for stored in [10, 400_000] {
        for idle in [0, 1_000, 4_000] {
            let m = measure(idle, stored, seconds);
            let base = *base.get_or_insert(m.cpu_us);
            let ratio = m.cpu_us / base;
            worst = worst.max(ratio).max(1.0 / ratio);
            println!(
                "{idle:>6} {stored:>9} {:>12.0} {:>14.1} {:>7.2}x",
                m.per_second, m.cpu_us, ratio
            );
        }
    }
    println!("largest ratio of CPU per request between cases: {worst:.2}x");
}
