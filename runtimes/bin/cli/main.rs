//! `kafka-sansio`: the command-line tool over kafka-sansio's own client (feature
//! `cli`). kcat-style produce and consume, topic and group administration,
//! `__consumer_offsets` decoding, a load generator with traffic curves, and the
//! simulated cluster served on loopback. `kafka-sansio help` lists the commands;
//! every command has `--help`.
//!
//! Errors are one line on stderr (`kafka-sansio: ...`) and a non-zero exit status:
//! 1 for a failure, 2 for a usage error, 3 when some produced records were not
//! delivered, 130 when interrupted.
#![forbid(unsafe_code)]
// A binary: it reads clocks, blocks on input and spawns threads, as the sans-IO
// core (which the disallowed list guards) never does.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod admin;
mod format;
mod io;
mod load;
mod load_run;
mod sim_cmd;
mod spec;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use kafka_sansio::client::ClientError;
use kafka_sansio::connection::sasl::{SaslConfig, SaslMechanism};
use kafka_sansio::runtime::{Client, ClientBuilder, TlsConfig};

/// What went wrong, as one line, and the exit status that says it.
#[derive(Debug)]
pub struct Failure {
    /// The message.
    pub message: String,
    /// The exit status.
    pub code: i32,
}

impl Failure {
    /// A failure with exit status 1.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }

    /// A failure with this exit status.
    pub fn with_code(message: impl Into<String>, code: i32) -> Self {
        Self {
            message: message.into(),
            code,
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Self::new(e.to_string())
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Self::new(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self::new(format!("I/O: {e}"))
    }
}

/// The result of a command.
pub type Outcome<T = ()> = Result<T, Failure>;

/// A Kafka command-line tool built on kafka-sansio's own client.
#[derive(Debug, Parser)]
#[command(
    name = "kafka-sansio",
    version,
    propagate_version = true,
    about = "Kafka from the terminal, on kafka-sansio's own client: produce, consume, admin, groups, __consumer_offsets, load, and a simulated cluster"
)]
pub struct Cli {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(subcommand)]
    command: Command,
}

/// How to reach and authenticate to the cluster.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    #[arg(
        short,
        long,
        global = true,
        help_heading = "Connection",
        env = "KAFKA_BOOTSTRAP",
        default_value = "localhost:9092"
    )]
    pub bootstrap: String,
    /// Deadline of each operation (connecting included): `500ms`, `10s`, `1m`.
    #[arg(long, global = true, help_heading = "Connection", default_value = "30s", value_parser = spec::parse_duration)]
    pub timeout: Duration,
    /// The client id sent to brokers.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        default_value = "kafka-sansio"
    )]
    pub client_id: String,
    /// Use TLS (with the system's CA certificates unless --tls-ca is given).
    #[arg(long, global = true, help_heading = "Connection")]
    pub tls: bool,
    /// A PEM file of CA certificates to trust (implies --tls).
    #[arg(long, global = true, help_heading = "Connection", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// A PEM client certificate chain for mutual TLS (with --tls-key).
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        value_name = "MECHANISM",
        requires = "sasl_username"
    )]
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    #[arg(long, global = true, help_heading = "Connection", value_name = "NAME")]
    pub sasl_username: Option<String>,
    /// SASL password.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        env = "KAFKA_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub sasl_password: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The cluster: id, controller, brokers, and every topic's partitions.
    Metadata(admin::MetadataArgs),
    /// List, describe, create, delete topics, or change their configs.
    #[command(subcommand)]
    Topics(admin::TopicsCommand),
    /// Add partitions to a topic.
    #[command(subcommand)]
    Partitions(admin::PartitionsCommand),
    /// Produce records read from stdin or a file, one per line.
    Produce(io::ProduceArgs),
    /// Consume records and print them (kcat-style format strings, or JSON lines).
    Consume(io::ConsumeArgs),
    /// List, describe, inspect offsets of, reset, or delete consumer groups.
    #[command(subcommand)]
    Groups(admin::GroupsCommand),
    /// Read `__consumer_offsets` and print every record decoded.
    Offsets(io::OffsetsArgs),
    /// Generate traffic along a curve (ksunami's min/up/max/down phases).
    Load(load_run::LoadArgs),
    /// Serve the simulated cluster on loopback (faults from stdin).
    Sim(SimArgs),
}

/// `sim`: the flags of the `kafka-sim` binary.
#[derive(Debug, Args)]
struct SimArgs {
    /// Number of brokers.
    #[arg(long = "brokers", default_value_t = 1)]
    brokers: u16,
    /// First port (0: any free ports).
    #[arg(short = 'p', long, default_value_t = 0)]
    port: u16,
    /// A topic made at start, `NAME[:PARTITIONS[:REPLICATION]]` (repeatable).
    #[arg(short = 't', long = "topic", value_parser = sim_cmd::topic_spec)]
    topics: Vec<(String, i32, Option<i16>)>,
    /// Seed of the cluster's random choices.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Do not create topics when clients ask for unknown ones.
    #[arg(long)]
    no_auto_create: bool,
    /// Run until killed instead of reading commands from stdin.
    #[arg(long)]
    ignore_stdin: bool,
    /// max.connections (Kafka's default 10000).
    #[arg(long)]
    max_connections: Option<usize>,
    /// connections.max.idle.ms.
    #[arg(long, value_name = "MS")]
    connections_max_idle_ms: Option<String>,
    /// queued.max.request.bytes per connection.
    #[arg(long)]
    max_queued_bytes: Option<usize>,
    /// socket.request.max.bytes.
    #[arg(long)]
    socket_request_max_bytes: Option<usize>,
    /// message.max.bytes.
    #[arg(long)]
    message_max_bytes: Option<usize>,
    /// fetch.max.bytes.
    #[arg(long)]
    fetch_max_bytes: Option<usize>,
    /// Most partitions in the cluster.
    #[arg(long)]
    max_partitions: Option<usize>,
    /// Most partitions per topic.
    #[arg(long)]
    max_partitions_per_topic: Option<usize>,
    /// Most partitions made by auto-creation.
    #[arg(long)]
    max_auto_created_partitions: Option<usize>,
    /// group.min.session.timeout.ms.
    #[arg(long, value_name = "MS")]
    group_min_session_timeout_ms: Option<String>,
    /// group.max.session.timeout.ms.
    #[arg(long, value_name = "MS")]
    group_max_session_timeout_ms: Option<String>,
}

fn sim_options(a: SimArgs) -> Result<sim_cmd::SimOptions, String> {
    let mut config = kafka_sansio::sim::ClusterConfig {
        base_port: a.port,
        brokers: usize::from(a.brokers),
        seed: a.seed,
        ..kafka_sansio::sim::ClusterConfig::default()
    };
    if a.no_auto_create {
        config.auto_create_topics = false;
    }
    macro_rules! set {
        ($field:ident, $value:expr) => {
            if let Some(v) = $value {
                config.$field = v
                    .try_into()
                    .map_err(|_| format!("{}: out of range", stringify!($field)))?;
            }
        };
    }
    set!(max_connections, a.max_connections);
    set!(max_queued_bytes, a.max_queued_bytes);
    set!(max_frame_size, a.socket_request_max_bytes);
    set!(message_max_bytes, a.message_max_bytes);
    set!(fetch_max_bytes, a.fetch_max_bytes);
    set!(max_partitions, a.max_partitions);
    set!(max_partitions_per_topic, a.max_partitions_per_topic);
    set!(max_auto_created_partitions, a.max_auto_created_partitions);
    if let Some(ms) = &a.connections_max_idle_ms {
        config.connections_max_idle = sim_cmd::millis(ms, "--connections-max-idle-ms")?;
    }
    if let Some(ms) = &a.group_min_session_timeout_ms {
        config.group_min_session_timeout = sim_cmd::millis(ms, "--group-min-session-timeout-ms")?;
    }
    if let Some(ms) = &a.group_max_session_timeout_ms {
        config.group_max_session_timeout = sim_cmd::millis(ms, "--group-max-session-timeout-ms")?;
    }
    if config.brokers == 0 {
        return Err("--brokers must be at least 1".into());
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(sim_cmd::SimOptions {
        config,
        topics: a.topics,
        ignore_stdin: a.ignore_stdin,
    })
}

impl ConnectionArgs {
    /// Connects: the first bootstrap must answer within the timeout.
    pub async fn connect(
        &self,
        configure: impl FnOnce(&mut kafka_sansio::client::ClientConfig),
    ) -> Outcome<Client> {
        let mut builder = ClientBuilder::new(&self.bootstrap)
            .client_id(self.client_id.clone())
            .operation_timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            .configure(configure);
        if self.tls || self.tls_ca.is_some() {
            let mut tls = match &self.tls_ca {
                Some(path) => TlsConfig::ca_file(path)?,
                None => TlsConfig::system_roots(),
            };
            if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
                tls = tls.client_auth_files(cert, key)?;
            }
            builder = builder.tls(tls);
        }
        if let Some(m) = &self.sasl_mechanism {
            let mechanism = match m.to_ascii_uppercase().as_str() {
                "PLAIN" => SaslMechanism::Plain,
                "SCRAM-SHA-256" => SaslMechanism::ScramSha256,
                "SCRAM-SHA-512" => SaslMechanism::ScramSha512,
                other => {
                    return Err(Failure::with_code(
                        format!(
                            "--sasl-mechanism {other:?}: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
                        ),
                        2,
                    ));
                }
            };
            builder = builder.sasl(SaslConfig::new(
                mechanism,
                self.sasl_username.clone().unwrap_or_default(),
                self.sasl_password.clone().unwrap_or_default(),
            ));
        }
        // The bootstrap check is bounded by the connect timeout; bound it by ours too.
        match tokio::time::timeout(self.timeout, builder.build_tokio()).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(Failure::new(format!(
                "cannot reach the cluster at {}: {e}",
                self.bootstrap
            ))),
            Err(_) => Err(Failure::new(format!(
                "cannot reach the cluster at {}: no answer within {:?}",
                self.bootstrap, self.timeout
            ))),
        }
    }
}

/// Whether progress may be drawn: stderr is a terminal.
pub fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            // One line: clap's first, without its "error: " prefix.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "kafka-sansio: {} (see --help)",
                first.strip_prefix("error: ").unwrap_or(first)
            );
            std::process::exit(2);
        }
    };
    // Logs of the client on stderr when RUST_LOG asks for them.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    if let Command::Sim(args) = cli.command {
        let code = match sim_options(args) {
            Ok(options) => sim_cmd::serve("kafka-sansio sim", options),
            Err(e) => {
                eprintln!("kafka-sansio sim: {e}");
                2
            }
        };
        std::process::exit(code);
    }
    // `produce`, and `consume` outside a group, run on one thread (produce's
    // reader thread aside): the client's driver and the task handing records over
    // then share the records' reference counts without bouncing them between
    // cores, which cost about a fifth of produce's CPU. A group consumer gets
    // worker threads, so that a blocked stdout (piped into a pager) cannot stall
    // the driver's heartbeats; so does everything else.
    let one_thread = match &cli.command {
        Command::Produce(_) => true,
        Command::Consume(a) => a.group.is_none(),
        _ => false,
    };
    let mut builder = if one_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kafka-sansio: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let conn = cli.connection;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Metadata(a) => admin::metadata(&conn, a).await,
            Command::Topics(c) => admin::topics(&conn, c).await,
            Command::Partitions(c) => admin::partitions(&conn, c).await,
            Command::Groups(c) => admin::groups(&conn, c).await,
            Command::Produce(a) => io::produce(&conn, a).await,
            Command::Consume(a) => io::consume(&conn, a).await,
            Command::Offsets(a) => io::offsets(&conn, a).await,
            Command::Load(a) => load_run::load(&conn, a).await,
            Command::Sim(_) => Ok(()),
        }
    });
    // Do not wait for the driver's tasks: they end with the process.
    runtime.shutdown_timeout(Duration::from_millis(100));
    if let Err(f) = result {
        eprintln!("kafka-sansio: {}", f.message);
        std::process::exit(f.code);
    }
}
