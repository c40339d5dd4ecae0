//! `kafka-sim`: the simulated Kafka cluster served on loopback, for clients in any
//! language (features `sim` and `tokio`).
//!
//! ```text
//! kafka-sim [--brokers N] [--port BASE] [--topic NAME[:PARTITIONS[:REPLICATION]]]...
//!           [--seed N] [--no-auto-create] [--ignore-stdin] [LIMIT VALUE]...
//! ```
//!
//! The limits are Kafka's broker settings, with Kafka's defaults (see
//! `ClusterConfig`): `--max-connections N` (10000), `--connections-max-idle-ms MS`
//! (600000), `--max-queued-bytes N` (1048576), `--socket-request-max-bytes N`
//! (104857600), `--message-max-bytes N` (1048588), `--fetch-max-bytes N` (57671680),
//! `--max-partitions N` (50000), `--max-partitions-per-topic N` (10000),
//! `--max-auto-created-partitions N` (25000), `--group-min-session-timeout-ms MS`
//! (6000), `--group-max-session-timeout-ms MS` (1800000). A value out of range is an
//! error, reported before anything starts.
//!
//! The first line on stdout is the bootstrap list (`127.0.0.1:P0,127.0.0.1:P1,...`).
//! Then each line read from stdin is a command, answered with one line, `ok ...` or
//! `error: ...`; end of input (or `quit`) stops the cluster, unless `--ignore-stdin`
//! is given, in which case it runs until killed. Commands:
//!
//! | command | effect |
//! |---|---|
//! | `topic NAME [PARTITIONS [REPLICATION]]` | create a topic (default 1 partition, replication min(3, brokers)) |
//! | `crash ID` / `restart ID` | broker ID (0-based) crashes / comes back |
//! | `leader TOPIC PARTITION ID` | move a partition's leadership to broker ID |
//! | `errors API_KEY ERROR_CODE [COUNT]` | the next COUNT (default 1) requests of API_KEY fail with ERROR_CODE |
//! | `throttle MS` | report MS (0 to 2147483647) of throttle time in every response |
//! | `fetch-delay MS` | hold every Fetch response MS (0 to 2147483647) longer |
//! | `partial-batches on\|off` | cut Fetch responses in the middle of a batch |
//! | `offsets TOPIC PARTITION` | answers `ok HIGH_WATERMARK LOG_START_OFFSET` |
//! | `leader? TOPIC PARTITION` | answers `ok ID` (or `ok -1` when offline) |
//! | `bootstrap` | answers `ok BOOTSTRAP` |
//! | `stats` | answers `ok connections=N groups=N partitions=N stored_bytes=N` |
//! | `quit` | stop |

use std::io::{BufRead, Write};
use std::time::Duration;

use kafka_sansio::messages::{ApiKey, ErrorCode};
use kafka_sansio::sim::ClusterConfig;
use kafka_sansio::sim_server::BackgroundServer;

const USAGE: &str = "usage: kafka-sim [--brokers N] [--port BASE] \
[--topic NAME[:PARTITIONS[:REPLICATION]]]... [--seed N] [--no-auto-create] [--ignore-stdin]
  limits (Kafka's defaults): --max-connections N, --connections-max-idle-ms MS,
  --max-queued-bytes N, --socket-request-max-bytes N, --message-max-bytes N,
  --fetch-max-bytes N, --max-partitions N, --max-partitions-per-topic N,
  --max-auto-created-partitions N, --group-min-session-timeout-ms MS,
  --group-max-session-timeout-ms MS";

struct Args {
    config: ClusterConfig,
    topics: Vec<(String, i32, Option<i16>)>,
    ignore_stdin: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut config = ClusterConfig {
        base_port: 0,
        ..ClusterConfig::default()
    };
    let mut topics = Vec::new();
    let mut ignore_stdin = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--brokers" | "-b" => config.brokers = number(&value("--brokers")?, "--brokers")?,
            "--port" | "-p" => config.base_port = number(&value("--port")?, "--port")?,
            "--seed" => config.seed = number(&value("--seed")?, "--seed")?,
            "--topic" | "-t" => topics.push(topic_spec(&value("--topic")?)?),
            "--no-auto-create" => config.auto_create_topics = false,
            "--max-connections" => config.max_connections = number(&value(&arg)?, &arg)?,
            "--connections-max-idle-ms" => {
                config.connections_max_idle = millis(&value(&arg)?, &arg)?;
            }
            "--max-queued-bytes" => config.max_queued_bytes = number(&value(&arg)?, &arg)?,
            "--socket-request-max-bytes" => config.max_frame_size = number(&value(&arg)?, &arg)?,
            "--message-max-bytes" => config.message_max_bytes = number(&value(&arg)?, &arg)?,
            "--fetch-max-bytes" => config.fetch_max_bytes = number(&value(&arg)?, &arg)?,
            "--max-partitions" => config.max_partitions = number(&value(&arg)?, &arg)?,
            "--max-partitions-per-topic" => {
                config.max_partitions_per_topic = number(&value(&arg)?, &arg)?;
            }
            "--max-auto-created-partitions" => {
                config.max_auto_created_partitions = number(&value(&arg)?, &arg)?;
            }
            "--group-min-session-timeout-ms" => {
                config.group_min_session_timeout = millis(&value(&arg)?, &arg)?;
            }
            "--group-max-session-timeout-ms" => {
                config.group_max_session_timeout = millis(&value(&arg)?, &arg)?;
            }
            "--ignore-stdin" => ignore_stdin = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if config.brokers == 0 {
        return Err("--brokers must be at least 1".into());
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(Args {
        config,
        topics,
        ignore_stdin,
    })
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{what}: {text:?} is not a valid number"))
}

/// A number of milliseconds, 0 to `i32::MAX` (Kafka's millisecond settings are ints).
fn millis(text: &str, what: &str) -> Result<Duration, String> {
    let ms: u64 = number(text, what)?;
    if ms > i32::MAX as u64 {
        return Err(format!("{what}: {ms} ms is over {} ms", i32::MAX));
    }
    Ok(Duration::from_millis(ms))
}

fn topic_spec(spec: &str) -> Result<(String, i32, Option<i16>), String> {
    let mut parts = spec.split(':');
    let name = parts.next().unwrap_or_default().to_owned();
    let partitions = parts.next().map_or(Ok(1), |p| number(p, "partitions"))?;
    let replication = parts.next().map(|r| number(r, "replication")).transpose()?;
    if parts.next().is_some() {
        return Err(format!(
            "topic {spec:?}: expected NAME[:PARTITIONS[:REPLICATION]]"
        ));
    }
    Ok((name, partitions, replication))
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kafka-sim: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let brokers = args.config.brokers;
    let server = match BackgroundServer::start(args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kafka-sim: cannot start: {e}");
            std::process::exit(1);
        }
    };
    let default_replication = i16::try_from(brokers.min(3)).unwrap_or(3);
    for (name, partitions, replication) in &args.topics {
        let replication = replication.unwrap_or(default_replication);
        if let Err(e) = server.with_cluster(|c, _| c.create_topic(name, *partitions, replication)) {
            eprintln!("kafka-sim: topic {name}: {e}");
            std::process::exit(1);
        }
    }
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{}", server.bootstrap())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        std::process::exit(1);
    }
    eprintln!(
        "kafka-sim: {brokers} broker(s) on {}; commands on stdin (see --help)",
        server.bootstrap()
    );
    if args.ignore_stdin {
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
