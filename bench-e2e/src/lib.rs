//! The parts the benchmark's binaries share: the workload, the measurements, and the
//! command line. `bench-e2e` (src/main.rs) runs everything; each client runs in its
//! own binary (src/bin/client-*.rs) so that one client's libraries (librdkafka,
//! OpenSSL) are not mapped into another's process and counted in its RSS.

pub mod measure;
pub mod ours;
pub mod workload;

use measure::Phase;
use workload::Workload;

pub const USAGE: &str = "usage: bench-e2e [--records N] [--batch N] [--fetch-max-bytes N] \
[--max-wait-ms N] [--phases build,produce,fetch,fetch-lent,consume,consume-group,send1,send4,paced,send1-buffer,send4-buffer,send1-tasks] [--linger-ms N] \
[--paced-rate N] [--paced-secs N] [--send-window N] [--value-bytes N] [--sender-tasks N] [--sender-budget N] [--clients ours,rskafka,rdkafka] [--clusters mock,sim] [--repeat N]";

pub const CLIENTS: [&str; 3] = ["ours", "rskafka", "rdkafka"];
pub const CLUSTERS: [&str; 2] = ["mock", "sim"];
pub const TOPIC: &str = "bench";
pub const PHASES: [&str; 9] = [
    "build",
    "produce",
    "fetch",
    "fetch-lent",
    "consume",
    "consume-group",
    "send1",
    "send4",
    "paced",
];

pub struct Options {
    pub workload: Workload,
    pub clients: Vec<String>,
    pub clusters: Vec<String>,
    pub repeat: usize,
}

/// Parses the options (every binary takes the same).
pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        workload: Workload {
            records: 1_000_000,
            batch: 1_000,
            fetch_max_bytes: 1024 * 1024,
            max_wait_ms: 500,
            window: false,
            topic: TOPIC.to_owned(),
            phases: PHASES.map(str::to_owned).to_vec(),
            linger_ms: 5,
            paced_rate: 1_000,
            paced_secs: 10,
            send_window: workload::SEND_WINDOW,
            send_value_len: workload::VALUE_LEN,
            sender_tasks: workload::SENDER_TASKS,
            sender_budget: workload::SENDER_BUDGET,
        },
        clients: CLIENTS.iter().map(|s| s.to_string()).collect(),
        clusters: CLUSTERS.iter().map(|s| s.to_string()).collect(),
        repeat: 1,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{arg}: bad number {v:?}"))
        };
        match arg.as_str() {
            "--records" => o.workload.records = number(value()?)?,
            "--batch" => o.workload.batch = number(value()?)? as usize,
            "--fetch-max-bytes" => o.workload.fetch_max_bytes = number(value()?)? as i32,
            "--max-wait-ms" => o.workload.max_wait_ms = number(value()?)? as i32,
            "--window" => o.workload.window = true,
            "--phases" => o.workload.phases = value()?.split(',').map(str::to_owned).collect(),
            "--repeat" => o.repeat = number(value()?)? as usize,
            "--linger-ms" => o.workload.linger_ms = number(value()?)?,
            "--paced-rate" => o.workload.paced_rate = number(value()?)?.max(1),
            "--paced-secs" => o.workload.paced_secs = number(value()?)?,
            "--send-window" => o.workload.send_window = (number(value()?)? as usize).max(1),
            "--value-bytes" => o.workload.send_value_len = number(value()?)? as usize,
            "--sender-tasks" => o.workload.sender_tasks = (number(value()?)? as usize).max(1),
            "--sender-budget" => o.workload.sender_budget = number(value()?)? as usize,
            "--clients" => o.clients = value()?.split(',').map(str::to_owned).collect(),
            "--clusters" => o.clusters = value()?.split(',').map(str::to_owned).collect(),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.workload.batch == 0 || o.workload.records == 0 {
        return Err("--records and --batch must be at least 1".into());
    }
    for c in &o.clients {
        // `ours-LABEL` runs a copy of our client binary named `client-ours-LABEL`
        // beside it (an earlier build, say), to compare builds in one run.
        if !CLIENTS.contains(&c.as_str()) && !c.starts_with("ours-") {
            return Err(format!("unknown client {c:?}"));
        }
    }
    for c in &o.clusters {
        if !CLUSTERS.contains(&c.as_str()) {
            return Err(format!("unknown cluster {c:?}"));
        }
    }
    Ok(o)
}

/// A current-thread tokio runtime: the async clients' CPU is this one thread.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The `main` of a client binary: `client-NAME BOOTSTRAP [OPTIONS]`; prints one
/// `RESULT` line per phase.
pub fn client_main(run: fn(&str, &Workload) -> Vec<Phase>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(bootstrap) = args.first() else {
        eprintln!("usage: client-NAME BOOTSTRAP [OPTIONS]");
        std::process::exit(2);
    };
    let o = parse(&args[1..]).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    for p in run(bootstrap, &o.workload) {
        println!("{}", p.line());
    }
}
