//! Benchmark (not a test): small-request round trips per second and CPU per produced
//! MB through each runtime adapter against librdkafka's mock cluster, next to
//! librdkafka itself (kcat and confluent-kafka) doing the same work in the same run.
//!
//! ```text
//! cargo run --release --all-features --example bench_connection [-- SECONDS]
//! ```
//!
//! The mock cluster, kcat and confluent-kafka are installed and started by
//! `scripts/peers/` (as the integration tests do). CPU is this process's user+system
//! time from `/proc/self/stat` (the broker runs in its own process and is not
//! counted); kcat's is its own, from `/proc/<pid>/stat` read before it is reaped.
//! Both sides write 1 KiB records in batches of 1000 with acks=1 and no compression;
//! our side builds every batch inside the timed loop.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // tests and tools own their clock and sockets

#[cfg(not(all(feature = "tokio", feature = "smol", feature = "blocking")))]
fn main() {
    eprintln!("bench_connection needs --features tokio,smol,blocking (or --all-features)");
}

#[cfg(all(feature = "tokio", feature = "smol", feature = "blocking"))]
fn main() {
    bench::run();
}

#[cfg(all(feature = "tokio", feature = "smol", feature = "blocking"))]
#[allow(clippy::unwrap_used, clippy::disallowed_methods)]
mod bench {
    use std::io::{BufRead, BufReader, Write};
    use std::path::PathBuf;
    use std::process::{Command, Stdio};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::{Bytes, BytesMut};
    use kafka_sansio::connection::Config;
    use kafka_sansio::messages::{
        ApiVersionsRequest, ProduceRequest,
        produce_request::{PartitionProduceData, TopicProduceData},
    };
    use kafka_sansio::records::{BatchBuilder, BatchConfig, NewRecord};

    const RECORD: usize = 1024;
    const RECORDS_PER_BATCH: usize = 1000;
    const PRODUCE_MB: usize = 1000;

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// This process's CPU time (user + system).
    fn cpu() -> Duration {
        cpu_of("self")
    }

    fn cpu_of(pid: &str) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
            + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
        Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
    }

    enum Client {
        Tokio(
            Arc<tokio::runtime::Runtime>,
            kafka_sansio::tokio_runtime::Connection,
        ),
        Smol(kafka_sansio::smol_runtime::Connection),
        Blocking(kafka_sansio::blocking_runtime::Connection),
    }

    impl Client {
        fn connect(name: &str, addr: &str) -> Client {
            let mut config = Config::new(name);
            config.max_in_flight = 16;
            match name {
                "tokio" => {
                    let rt = Arc::new(
                        tokio::runtime::Builder::new_multi_thread()
                            .worker_threads(2)
                            .enable_all()
                            .build()
                            .unwrap(),
                    );
                    let c = rt
                        .block_on(kafka_sansio::tokio_runtime::Connection::connect(
                            addr.to_owned(),
                            config,
                        ))
                        .unwrap();
                    Client::Tokio(rt, c)
                }
                "smol" => {
                    let (c, driver) = futures_lite::future::block_on(
                        kafka_sansio::smol_runtime::Connection::connect(addr.to_owned(), config),
                    )
                    .unwrap();
                    std::thread::spawn(move || futures_lite::future::block_on(driver));
                    Client::Smol(c)
                }
                _ => Client::Blocking(
                    kafka_sansio::blocking_runtime::Connection::connect(addr.to_owned(), config)
                        .unwrap(),
                ),
            }
        }

        /// `n` ApiVersions round trips from `tasks` concurrent callers.
        fn round_trips(&self, n: usize, tasks: usize) {
            let per = n / tasks;
            match self {
                Client::Tokio(rt, c) => rt.block_on(async {
                    let hs: Vec<_> = (0..tasks)
                        .map(|_| {
                            let c = c.clone();
                            tokio::spawn(async move {
                                for _ in 0..per {
                                    c.send(ApiVersionsRequest::default()).await.unwrap();
                                }
                            })
                        })
                        .collect();
                    for h in hs {
                        h.await.unwrap();
                    }
                }),
                Client::Smol(c) => {
                    let hs: Vec<_> = (0..tasks)
                        .map(|_| {
                            let c = c.clone();
                            std::thread::spawn(move || {
                                futures_lite::future::block_on(async {
                                    for _ in 0..per {
                                        c.send(ApiVersionsRequest::default()).await.unwrap();
                                    }
                                })
                            })
                        })
                        .collect();
                    hs.into_iter().for_each(|h| h.join().unwrap());
                }
                Client::Blocking(c) => std::thread::scope(|s| {
                    for _ in 0..tasks {
                        s.spawn(|| {
                            for _ in 0..per {
                                c.send(ApiVersionsRequest::default()).unwrap();
                            }
                        });
                    }
                }),
            }
        }

        fn produce(&self, req: ProduceRequest) {
            let resp = match self {
                Client::Tokio(rt, c) => rt.block_on(c.send(req)),
                Client::Smol(c) => futures_lite::future::block_on(c.send(req)),
                Client::Blocking(c) => c.send(req),
            }
            .unwrap();
            assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
        }
    }

    fn batch_of_1kb_records() -> Bytes {
        let mut buf = BytesMut::new();
        let config = BatchConfig {
            max_batch_bytes: 4 << 20,
            ..BatchConfig::default()
        };
        let mut b = BatchBuilder::new(&mut buf, &config);
        let value = vec![b'x'; RECORD];
        for i in 0..RECORDS_PER_BATCH {
            b.append(&NewRecord::new(i as i64).value(&value)).unwrap();
        }
        b.finish().unwrap();
        buf.freeze()
    }

    fn produce_request(records: Bytes, partition: i32) -> ProduceRequest {
        ProduceRequest {
            acks: 1,
            timeout_ms: 5000,
            topic_data: vec![TopicProduceData {
                name: "bench".into(),
                partition_data: vec![PartitionProduceData {
                    index: partition,
                    records: Some(records),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    pub fn run() {
        let seconds: u64 = std::env::args()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let round_trip_count = if seconds > 0 {
            20_000 * seconds as usize
        } else {
            20_000
        };

        let env_out = Command::new("bash")
            .arg(repo().join("scripts/peers/install.sh"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .unwrap();
        let env: std::collections::HashMap<String, String> = String::from_utf8(env_out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();

        let mut mock = Command::new("bash")
            .arg(repo().join("scripts/peers/start_mock.sh"))
            .args(["-b", "1", "-t", "bench:4"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(mock.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().split(',').next().unwrap().to_owned();
        println!("librdkafka mock cluster (2.0.2) at {addr}");
        println!(
            "{:<28} {:>14} {:>14} {:>12} {:>14}",
            "client", "rt/s (1 task)", "rt/s (8 tasks)", "produce MB/s", "CPU ms per MB"
        );

        let records = batch_of_1kb_records();
        let batch_mb = records.len() as f64 / (1 << 20) as f64;
        let batches = (PRODUCE_MB as f64 / batch_mb).ceil() as usize;
        for name in ["tokio", "smol", "blocking"] {
            let client = Client::connect(name, &addr);
            client.round_trips(500, 1); // warm up
            let t = Instant::now();
            client.round_trips(round_trip_count / 4, 1);
            let rt1 = (round_trip_count / 4) as f64 / t.elapsed().as_secs_f64();
            let t = Instant::now();
            client.round_trips(round_trip_count, 8);
            let rt8 = round_trip_count as f64 / t.elapsed().as_secs_f64();

            // each batch is built (records written, CRC32C computed) inside the timed
            // loop, as a producer would, so the CPU figure includes it
            let (c0, t0) = (cpu(), Instant::now());
            for i in 0..batches {
                client.produce(produce_request(batch_of_1kb_records(), (i % 4) as i32));
            }
            let wall = t0.elapsed().as_secs_f64();
            let cpu_ms = (cpu() - c0).as_secs_f64() * 1000.0;
            let mb = batches as f64 * batch_mb;
            println!(
                "{:<28} {:>14.0} {:>14.0} {:>12.1} {:>14.2}",
                format!("kafka-sansio {name}"),
                rt1,
                rt8,
                mb / wall,
                cpu_ms / mb
            );
        }

        // librdkafka through kcat: the same 1 KiB records, the same volume.
        if let Some(kcat) = env.get("PEERS_KCAT") {
            let total = batches * RECORDS_PER_BATCH;
            let mut child = Command::new(kcat)
                .args(["-P", "-b", &addr, "-t", "bench", "-X", "acks=1"])
                .args(["-X", "linger.ms=5", "-X", "batch.num.messages=1000"])
                .stdin(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let pid = child.id().to_string();
            let t0 = Instant::now();
            {
                let mut stdin = std::io::BufWriter::new(child.stdin.take().unwrap());
                let mut line = vec![b'x'; RECORD];
                line.push(b'\n');
                for _ in 0..total {
                    stdin.write_all(&line).unwrap();
                }
            }
            // read kcat's CPU while it is a zombie-to-be: poll until it exits
            let mut last = Duration::ZERO;
            loop {
                let c = cpu_of(&pid);
                if c > last {
                    last = c;
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let wall = t0.elapsed().as_secs_f64();
            let mb = (total * RECORD) as f64 / (1 << 20) as f64;
            println!(
                "{:<28} {:>14} {:>14} {:>12.1} {:>14.2}",
                "kcat (librdkafka 2.0.2)",
                "-",
                "-",
                mb / wall,
                last.as_secs_f64() * 1000.0 / mb
            );
        }

        // librdkafka round trips through confluent-kafka: list_topics per call.
        if let Some(py) = env.get("PEERS_PYTHON") {
            let script = format!(
                "import time, confluent_kafka as ck\n\
                 p = ck.Producer({{'bootstrap.servers': '{addr}'}})\n\
                 p.list_topics(timeout=5)\n\
                 n = 2000\n\
                 t = time.perf_counter()\n\
                 for _ in range(n): p.list_topics(topic='bench', timeout=5)\n\
                 print(n / (time.perf_counter() - t))\n"
            );
            let out = Command::new(py).args(["-c", &script]).output().unwrap();
            let rate = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            println!(
                "{:<28} {:>14} {:>14} {:>12} {:>14}",
                "confluent-kafka 2.16 (Metadata)",
                rate.split('.').next().unwrap_or("-"),
                "-",
                "-",
                "-"
            );
        }

        let _ = mock.stdin.take().map(|mut s| writeln!(s, "quit"));
        let _ = mock.wait();
    }
}
