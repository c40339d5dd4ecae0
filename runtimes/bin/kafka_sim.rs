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
//! | `txn ID TOPIC PARTITION VALUE...` | transactional id ID writes one record per VALUE into its open transaction (opening one); answers `ok FIRST_OFFSET` |
//! | `commit ID` / `abort ID` | ends ID's open transaction (markers in its partitions) |
//! | `lso TOPIC PARTITION` | answers `ok LAST_STABLE_OFFSET` (where read_committed consumers stop) |
//! | `bootstrap` | answers `ok BOOTSTRAP` |
//! | `stats` | answers `ok connections=N groups=N partitions=N stored_bytes=N` |
//! | `quit` | stop |

//!
//! `kafka-sansio sim` (feature `cli`) does the same with the same flags.

#[path = "cli/sim_cmd.rs"]
mod sim_cmd;

use kafka_sansio::sim::ClusterConfig;
use sim_cmd::{SimOptions, millis, number, topic_spec};

const USAGE: &str = "usage: kafka-sim [--brokers N] [--port BASE] \
[--topic NAME[:PARTITIONS[:REPLICATION]]]... [--seed N] [--no-auto-create] [--ignore-stdin]
  limits (Kafka's defaults): --max-connections N, --connections-max-idle-ms MS,
  --max-queued-bytes N, --socket-request-max-bytes N, --message-max-bytes N,
  --fetch-max-bytes N, --max-partitions N, --max-partitions-per-topic N,
  --max-auto-created-partitions N, --group-min-session-timeout-ms MS,
  --group-max-session-timeout-ms MS";

fn parse_args() -> Result<SimOptions, String> {
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
    Ok(SimOptions {
        config,
        topics,
        ignore_stdin,
    })
}

fn main() {
    let options = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kafka-sim: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    std::process::exit(sim_cmd::serve("kafka-sim", options));
}
