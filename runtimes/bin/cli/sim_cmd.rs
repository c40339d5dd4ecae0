//! Serving the simulated cluster on loopback with faults read from stdin: shared by
//! `kafka-sansio sim` and the `kafka-sim` binary (its older name, kept as is).

use std::io::{BufRead, Write};
use std::time::Duration;

use kafka_sansio::messages::{ApiKey, ErrorCode};
use kafka_sansio::sim::ClusterConfig;
use kafka_sansio::sim_server::BackgroundServer;

/// What to serve.
pub struct SimOptions {
    /// The cluster: brokers, ports, seed, limits.
    pub config: ClusterConfig,
    /// Topics made before the bootstrap line is printed: name, partitions, replication.
    pub topics: Vec<(String, i32, Option<i16>)>,
    /// Run until killed instead of reading commands from stdin.
    pub ignore_stdin: bool,
}

/// Parses a number, naming the flag in the error.
pub fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{what}: {text:?} is not a valid number"))
}

/// A number of milliseconds, 0 to `i32::MAX` (Kafka's millisecond settings are ints).
pub fn millis(text: &str, what: &str) -> Result<Duration, String> {
    let ms: u64 = number(text, what)?;
    if ms > i32::MAX as u64 {
        return Err(format!("{what}: {ms} ms is over {} ms", i32::MAX));
    }
    Ok(Duration::from_millis(ms))
}

/// `NAME[:PARTITIONS[:REPLICATION]]`.
pub fn topic_spec(spec: &str) -> Result<(String, i32, Option<i16>), String> {
    let mut parts = spec.split(':');
    let name = parts.next().unwrap_or_default().to_owned();
    let partitions = parts.next().map_or(Ok(1), |p| number(p, "partitions"))?;
    let replication = parts.next().map(|r| number(r, "replication")).transpose()?;
    if parts.next().is_some() || name.is_empty() {
        return Err(format!(
            "topic {spec:?}: expected NAME[:PARTITIONS[:REPLICATION]]"
        ));
    }
    Ok((name, partitions, replication))
}

/// Serves the cluster: prints the bootstrap list as the first stdout line, then
/// answers one line per command read from stdin until its end or `quit`. Returns
/// the process exit status. `name` prefixes messages on stderr.
pub fn serve(name: &str, options: SimOptions) -> i32 {
    let SimOptions {
        config,
        topics,
        ignore_stdin,
    } = options;
    let brokers = config.brokers;
    let server = match BackgroundServer::start(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: cannot start: {e}");
            return 1;
        }
    };
    let default_replication = i16::try_from(brokers.min(3)).unwrap_or(3);
    for (topic, partitions, replication) in &topics {
        let replication = replication.unwrap_or(default_replication);
        if let Err(e) = server.with_cluster(|c, _| c.create_topic(topic, *partitions, replication))
        {
            eprintln!("{name}: topic {topic}: {e}");
            return 1;
        }
    }
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{}", server.bootstrap())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return 1;
    }
    eprintln!(
        "{name}: {brokers} broker(s) on {}; commands on stdin (see --help)",
        server.bootstrap()
    );
    if ignore_stdin {
        loop {
            std::thread::park();
        }
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "quit" {
            let _ = writeln!(stdout, "ok");
            break;
        }
        let answer = match command(&server, line, default_replication) {
            Ok(text) if text.is_empty() => "ok".to_owned(),
            Ok(text) => format!("ok {text}"),
            Err(e) => format!("error: {e}"),
        };
        if writeln!(stdout, "{answer}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
    server.shutdown();
    0
}

fn command(
    server: &BackgroundServer,
    line: &str,
    default_replication: i16,
) -> Result<String, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let arg = |i: usize| {
        words
            .get(i)
            .copied()
            .ok_or_else(|| format!("{}: missing argument {i}", words[0]))
    };
    match words[0] {
        "topic" => {
            let name = arg(1)?;
            let partitions = words.get(2).map_or(Ok(1), |p| number(p, "partitions"))?;
            let replication = words
                .get(3)
                .map_or(Ok(default_replication), |r| number(r, "replication"))?;
            server
                .with_cluster(|c, _| c.create_topic(name, partitions, replication))
                .map(|_| String::new())
                .map_err(|e| e.to_string())
        }
        "crash" => {
            let id: i32 = number(arg(1)?, "broker")?;
            check_broker(server, id)?;
            server.with_cluster(|c, now| c.crash_broker(id, now));
            Ok(String::new())
        }
        "restart" => {
            let id: i32 = number(arg(1)?, "broker")?;
            check_broker(server, id)?;
            server.with_cluster(|c, now| c.restart_broker(id, now));
            Ok(String::new())
        }
        "leader" => {
            let (topic, partition) = (arg(1)?, number(arg(2)?, "partition")?);
            let id: i32 = number(arg(3)?, "broker")?;
            server
                .with_cluster(|c, _| c.move_leader(topic, partition, id))
                .map(|()| String::new())
                .map_err(|e| e.to_string())
        }
        "leader?" => {
            let (topic, partition) = (arg(1)?, number(arg(2)?, "partition")?);
            Ok(server
                .with_cluster(|c, _| c.partition_leader(topic, partition))
                .unwrap_or(-1)
                .to_string())
        }
        "errors" => {
            let key: i16 = number(arg(1)?, "api key")?;
            let api = ApiKey::try_from(key).map_err(|_| format!("no API key {key}"))?;
            let code: i16 = number(arg(2)?, "error code")?;
            let count = words.get(3).map_or(Ok(1), |c| number(c, "count"))?;
            server.with_cluster(|c, _| c.inject_error(api, ErrorCode::from(code), count));
            Ok(String::new())
        }
        "throttle" => {
            let ms = millis(arg(1)?, "throttle")?;
            let ms = i32::try_from(ms.as_millis()).unwrap_or(i32::MAX);
            server.with_cluster(|c, _| c.faults.throttle_ms = ms);
            Ok(String::new())
        }
        "fetch-delay" => {
            let delay = millis(arg(1)?, "fetch-delay")?;
            server.with_cluster(|c, _| c.faults.fetch_delay = delay);
            Ok(String::new())
        }
        "partial-batches" => {
            let on = match arg(1)? {
                "on" => true,
                "off" => false,
                other => return Err(format!("partial-batches: on or off, not {other:?}")),
            };
            server.with_cluster(|c, _| c.faults.partial_batches = on);
            Ok(String::new())
        }
        "offsets" => {
            let (topic, partition) = (arg(1)?, number(arg(2)?, "partition")?);
            server
                .with_cluster(|c, _| c.partition_offsets(topic, partition))
                .map(|(hw, start)| format!("{hw} {start}"))
                .ok_or_else(|| format!("no partition {topic}-{partition}"))
        }
        "txn" => {
            let (id, topic) = (arg(1)?, arg(2)?);
            let partition = number(arg(3)?, "partition")?;
            arg(4)?;
            let values: Vec<&[u8]> = words[4..].iter().map(|w| w.as_bytes()).collect();
            server
                .with_cluster(|c, now| c.write_in_transaction(id, topic, partition, &values, now))
                .map(|base| base.to_string())
                .map_err(|e| e.to_string())
        }
        "commit" | "abort" => {
            let id = arg(1)?;
            let commit = words[0] == "commit";
            server.with_cluster(|c, now| c.complete_transaction(id, commit, now));
            Ok(String::new())
        }
        "lso" => {
            let (topic, partition) = (arg(1)?, number(arg(2)?, "partition")?);
            server
                .with_cluster(|c, _| c.partition_last_stable_offset(topic, partition))
                .map(|lso| lso.to_string())
                .ok_or_else(|| format!("no partition {topic}-{partition}"))
        }
        "bootstrap" => Ok(server.bootstrap()),
        "stats" => Ok(server.with_cluster(|c, _| {
            format!(
                "connections={} groups={} partitions={} stored_bytes={}",
                c.connection_count(),
                c.group_count(),
                c.partition_count(),
                c.stored_bytes()
            )
        })),
        other => Err(format!("unknown command {other:?}")),
    }
}

fn check_broker(server: &BackgroundServer, id: i32) -> Result<(), String> {
    if server.with_cluster(|c, _| c.broker_ids().any(|b| b == id)) {
        Ok(())
    } else {
        Err(format!("no broker {id}"))
    }
}
