//! End-to-end benchmark of issue 12: 1,000,000 records (16-byte keys, 100-byte
//! values) produced to one partition in batches of 1,000 with acks=all and no
//! compression, then fetched back and checked, by our client, rskafka 0.6 and
//! librdkafka (the `rdkafka` crate), against librdkafka's mock cluster and our
//! simulated cluster. See README.md for how to run it and what it measures.
//!
//! One binary, three roles:
//!
//! ```text
//! bench-e2e [OPTIONS]                        run everything, print the table
//! bench-e2e serve-sim TOPIC                  (internal) the simulated cluster
//! client-NAME BOOTSTRAP [OPTIONS]           (internal) one client's run, its own binary
//! ```
//!
//! Every client runs in a process of its own, and every broker too, so the CPU and
//! peak RSS of a client are its own.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use kafka_sansio_bench_e2e::measure::Phase;
use kafka_sansio_bench_e2e::workload::{self, Workload};
use kafka_sansio_bench_e2e::{Options, TOPIC, USAGE, parse};

/// Phases that read what the others wrote, each measured in a process of its own.
const ALONE: [&str; 3] = ["fetch", "fetch-lent", "consume-group"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve-sim") => serve_sim(args.get(1).map_or(TOPIC, String::as_str)),
        Some("--help" | "-h") => println!("{USAGE}"),
        _ => orchestrate(parse(&args).unwrap_or_else(|e| die(&format!("{e}\n{USAGE}")))),
    }
}

fn die(message: &str) -> ! {
    eprintln!("bench-e2e: {message}");
    std::process::exit(2);
}

/// The simulated cluster, one broker, one topic of one partition, served on loopback
/// until stdin closes.
fn serve_sim(topic: &str) {
    use kafka_sansio::sim::ClusterConfig;
    use kafka_sansio::sim_server::BackgroundServer;
    let server = BackgroundServer::start(ClusterConfig {
        brokers: 1,
        base_port: 0,
        ..ClusterConfig::default()
    })
    .expect("start the simulated cluster");
    for (name, partitions) in [
        (topic, 1),
        (workload::SEND1_TOPIC, 1),
        (workload::SEND4_TOPIC, 4),
        (workload::PACED_TOPIC, 1),
    ] {
        server
            .with_cluster(|c, _| c.create_topic(name, partitions, 1))
            .expect("create topic");
    }
    println!("{}", server.bootstrap());
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
        line.clear();
    }
    server.shutdown();
}

/// A broker process: its bootstrap list, and its stdin (closing it stops it).
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    bootstrap: String,
}

impl Peer {
    fn start(cluster: &str) -> Peer {
        let mut cmd = match cluster {
            "sim" => {
                let mut c = Command::new(std::env::current_exe().expect("own path"));
                c.args(["serve-sim", TOPIC]);
                c
            }
            "mock" => {
                let script = repo().join("scripts/peers/start_mock.sh");
                let mut c = Command::new("bash");
                c.arg(script)
                    .args(["-b", "1", "-t", &format!("{TOPIC}:1:1")]);
                for (name, partitions) in [
                    (workload::SEND1_TOPIC, 1),
                    (workload::SEND4_TOPIC, 4),
                    (workload::PACED_TOPIC, 1),
                ] {
                    c.args(["-t", &format!("{name}:{partitions}:1")]);
                }
                c
            }
            other => die(&format!("unknown cluster {other}")),
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| die(&format!("start {cluster}: {e}")));
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("bootstrap line");
        let bootstrap = line.trim().to_owned();
        if !bootstrap.contains(':') {
            die(&format!("{cluster} printed {line:?}, not a bootstrap list"));
        }
        Peer {
            child,
            stdin,
            bootstrap,
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "quit");
        }
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench-e2e sits in the repository")
        .to_owned()
}

/// One client against `peer`, in a child process; its phases.
fn run_one(client: &str, cluster: &str, peer: &Peer, w: &Workload) -> Vec<Phase> {
    let mut args = vec![
        peer.bootstrap.clone(),
        "--records".into(),
        w.records.to_string(),
        "--batch".into(),
        w.batch.to_string(),
        "--fetch-max-bytes".into(),
        w.fetch_max_bytes.to_string(),
        "--max-wait-ms".into(),
        w.max_wait_ms.to_string(),
        "--phases".into(),
        w.phases.join(","),
        "--linger-ms".into(),
        w.linger_ms.to_string(),
        "--paced-rate".into(),
        w.paced_rate.to_string(),
        "--paced-secs".into(),
        w.paced_secs.to_string(),
        "--send-window".into(),
        w.send_window.to_string(),
    ];
    if cluster == "mock" {
        args.push("--window".into());
    }
    // Only when asked for, so that a `client-ours-LABEL` built before the option
    // existed still runs the default workload.
    if w.send_value_len != workload::VALUE_LEN {
        args.extend(["--value-bytes".into(), w.send_value_len.to_string()]);
    }
    if w.runs("send1-tasks") {
        args.extend([
            "--sender-tasks".into(),
            w.sender_tasks.to_string(),
            "--sender-budget".into(),
            w.sender_budget.to_string(),
        ]);
    }
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe.with_file_name(format!("client-{client}")))
        .args(&args)
        .stderr(Stdio::inherit())
        .output()
        .expect("run the client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        eprintln!("{stdout}");
        die(&format!(
            "{client} against {cluster} failed: {}",
            out.status
        ));
    }
    stdout.lines().filter_map(Phase::parse).collect()
}

fn orchestrate(o: Options) {
    let w = &o.workload;
    println!(
        "# {} records, {}-byte keys, {}-byte values, batches of {}, acks=all, no compression, \
         one partition; fetch max {} bytes",
        w.records,
        workload::KEY_LEN,
        workload::VALUE_LEN,
        w.batch,
        w.fetch_max_bytes
    );
    if w.send_value_len != workload::VALUE_LEN {
        println!(
            "# send phases: {}-byte values (--value-bytes)",
            w.send_value_len
        );
    }
    println!(
        "# CPU: the client process's user+sys (getrusage) per phase; peak RSS: VmHWM of \
         the phase (reset at its start); process: the largest of them, connect included"
    );
    println!();
    println!(
        "| cluster | client | phase | records | wall s | krecords/s | CPU µs/record | peak RSS MiB | process peak RSS MiB |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|");
    let mut paced = Vec::new();
    for round in 0..o.repeat {
        for cluster in &o.clusters {
            for client in &o.clients {
                // The reading phases run each in a process of its own, against the
                // broker the other phases wrote to (they read their records), so
                // that their peak RSS is not what the other phases' client left
                // resident; the paced phase runs in a process and against a broker
                // of its own.
                let mut rest = w.clone();
                rest.phases
                    .retain(|p| !ALONE.contains(&p.as_str()) && p != "paced");
                let peer = Peer::start(cluster);
                let mut phases = if rest.phases.is_empty() {
                    Vec::new()
                } else {
                    run_one(client, cluster, &peer, &rest)
                };
                for phase in ALONE.iter().filter(|p| w.runs(p)) {
                    let mut alone = w.clone();
                    alone.phases = vec![(*phase).to_owned()];
                    phases.extend(
                        run_one(client, cluster, &peer, &alone)
                            .into_iter()
                            .filter(|p| p.name == *phase),
                    );
                }
                drop(peer);
                if w.runs("paced") {
                    let mut alone = w.clone();
                    alone.phases = vec!["paced".to_owned()];
                    let peer = Peer::start(cluster);
                    phases.extend(
                        run_one(client, cluster, &peer, &alone)
                            .into_iter()
                            .filter(|p| p.name == "paced"),
                    );
                }
                // The whole run's peak: the largest phase peak (connect included).
                let process_peak = phases
                    .iter()
                    .filter(|p| p.name != "process")
                    .map(|p| p.peak_kib)
                    .max()
                    .unwrap_or(0);
                for p in phases.iter().filter(|p| p.name == "paced") {
                    paced.push((cluster.clone(), client.clone(), round, p.clone()));
                }
                for p in phases
                    .iter()
                    .filter(|p| !matches!(p.name.as_str(), "process" | "connect" | "paced"))
                {
                    let secs = p.wall.as_secs_f64();
                    let per_record = p.cpu.as_secs_f64() * 1e6 / p.records.max(1) as f64;
                    let phase = match p.name.as_str() {
                        "build" => "(build records only)".to_owned(),
                        "send1" => format!(
                            "send, linger {} ms, 1 partition, window {}",
                            w.linger_ms, w.send_window
                        ),
                        "send4" => format!(
                            "send, linger {} ms, 4 partitions, window {}",
                            w.linger_ms, w.send_window
                        ),
                        "send1-buffer" => format!(
                            "send_buffer, linger {} ms, 1 partition, window {}",
                            w.linger_ms, w.send_window
                        ),
                        "send1-tasks" => format!(
                            "send_when_room from {} tasks, {} KiB budget, linger {} ms, 1 partition",
                            w.sender_tasks,
                            w.sender_budget / 1024,
                            w.linger_ms
                        ),
                        "send4-buffer" => format!(
                            "send_buffer, linger {} ms, 4 partitions, window {}",
                            w.linger_ms, w.send_window
                        ),
                        "fetch" => "fetch (own process)".to_owned(),
                        "fetch-lent" => "fetch, records lent (own process)".to_owned(),
                        "consume" => "consume (stream)".to_owned(),
                        "consume-group" => "consume (stream, one-member group)".to_owned(),
                        _ => p.name.clone(),
                    };
                    println!(
                        "| {cluster} | {client}{} | {phase} | {} | {:.2} | {:.0} | {:.3} | {:.1} | {:.1} |",
                        if o.repeat > 1 {
                            format!(" #{}", round + 1)
                        } else {
                            String::new()
                        },
                        p.records,
                        secs,
                        p.records as f64 / secs.max(1e-9) / 1e3,
                        per_record,
                        p.peak_kib as f64 / 1024.0,
                        process_peak as f64 / 1024.0,
                    );
                }
                let _ = std::io::stdout().flush();
            }
        }
    }
    if paced.is_empty() {
        return;
    }
    println!();
    println!(
        "# paced: {} records/s for {} s, linger {} ms, acks=all; latency from send to \
         acknowledgement",
        w.paced_rate, w.paced_secs, w.linger_ms
    );
    println!();
    println!(
        "| cluster | client | records | wall s | CPU % | CPU µs/record | p50 ms | p99 ms | max ms | peak RSS MiB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (cluster, client, round, p) in paced {
        let secs = p.wall.as_secs_f64();
        println!(
            "| {cluster} | {client}{} | {} | {:.2} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            if o.repeat > 1 {
                format!(" #{}", round + 1)
            } else {
                String::new()
            },
            p.records,
            secs,
            p.cpu.as_secs_f64() * 100.0 / secs.max(1e-9),
            p.cpu.as_secs_f64() * 1e6 / p.records.max(1) as f64,
            p.lat_p50_us as f64 / 1e3,
            p.lat_p99_us as f64 / 1e3,
            p.lat_max_us as f64 / 1e3,
            p.peak_kib as f64 / 1024.0,
        );
    }
}
