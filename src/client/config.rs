//! How a [`Client`](super::Client) behaves.

use std::sync::Arc;
use std::time::Duration;

use crate::connection;

use super::ClientError;

/// A broker address: host and port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BrokerAddress {
    /// Host name or IP address (IPv6 without brackets).
    pub host: Arc<str>,
    /// TCP port.
    pub port: u16,
}

impl BrokerAddress {
    /// Parses `host:port` (`[v6addr]:port` for IPv6).
    ///
    /// ```
    /// use kafka_sansio::client::BrokerAddress;
    /// let a = BrokerAddress::parse("kafka-1.example:9092").unwrap();
    /// assert_eq!((&*a.host, a.port), ("kafka-1.example", 9092));
    /// assert_eq!(&*BrokerAddress::parse("[::1]:9093").unwrap().host, "::1");
    /// assert!(BrokerAddress::parse("no-port").is_err());
    /// ```
    ///
    /// # Errors
    /// No port, a port that is not a number in 1..=65535, or an empty host.
    pub fn parse(text: &str) -> Result<Self, ClientError> {
        let text = text.trim();
        let bad =
            || ClientError::InvalidArgument(format!("broker address {text:?}: expected host:port"));
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(Self {
            host: host.into(),
            port,
        })
    }
}

impl std::fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How a [`Client`](super::Client) behaves. Build with [`ClientConfig::new`] and
/// adjust the fields; the defaults follow the Java client's where it has one.
///
/// ```
/// use std::time::Duration;
/// use kafka_sansio::client::ClientConfig;
///
/// let mut config = ClientConfig::new("broker-1:9092,broker-2:9092").unwrap();
/// config.connection.client_id = Some("billing".into());
/// config.operation_timeout = Duration::from_secs(10);
/// config.seed = 42; // bootstrap order and retry jitter follow it
/// assert_eq!(config.bootstrap.len(), 2);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Brokers to bootstrap from, tried in an order shuffled by [`seed`](Self::seed).
    pub bootstrap: Vec<BrokerAddress>,
    /// Settings of every broker connection: client id, SASL, frame size limit,
    /// in-flight and queue limits, request timeout. Its `broker` label is replaced
    /// per connection.
    pub connection: connection::Config,
    /// Seed of every random choice (bootstrap order, retry jitter, broker picks), so
    /// one seed gives one run.
    pub seed: u64,
    /// How long a TCP connect (reported by the runtime) may take.
    pub connect_timeout: Duration,
    /// The default deadline of an operation, retries included (Java's
    /// `default.api.timeout.ms`: 60 s).
    pub operation_timeout: Duration,
    /// First retry backoff (Java's `retry.backoff.ms`: 100 ms); doubles per attempt.
    pub retry_backoff: Duration,
    /// Largest retry backoff (`retry.backoff.max.ms`: 1 s). Each backoff is jittered
    /// by ±20 % (KIP-580).
    pub retry_backoff_max: Duration,
    /// First reconnect backoff after a failed connection (`reconnect.backoff.ms`).
    pub reconnect_backoff: Duration,
    /// Largest reconnect backoff (`reconnect.backoff.max.ms`).
    pub reconnect_backoff_max: Duration,
    /// Metadata is refreshed at least this often while topics are in use
    /// (`metadata.max.age.ms`: 5 min).
    pub metadata_max_age: Duration,
    /// Refreshes triggered by errors are at least this far apart (debounce).
    pub metadata_min_interval: Duration,
    /// Connections idle this long are closed (`connections.max.idle.ms`: 9 min).
    pub connections_max_idle: Duration,
    /// Whether Metadata requests may create unknown topics (when the broker allows it).
    pub allow_auto_topic_creation: bool,
    /// How the producer ([`Client::send`](super::Client::send)) batches and retries.
    pub producer: super::ProducerConfig,
    /// How the consumer ([`Client::assign`](super::Client::assign)) fetches.
    pub consumer: super::ConsumerConfig,
    /// A planted bug, for proving that the simulation suite catches a routing error
    /// (`tests/client_invariants.rs`): requests for a partition go to its first
    /// replica (the preferred leader) instead of its current leader. Never set this
    /// outside such a test.
    #[doc(hidden)]
    pub planted_bug_route_to_first_replica: bool,
}

impl ClientConfig {
    /// A configuration bootstrapping from a comma-separated `host:port` list, with
    /// the defaults documented on each field.
    ///
    /// # Errors
    /// The list is empty or an address does not parse.
    pub fn new(bootstrap: &str) -> Result<Self, ClientError> {
        let bootstrap = bootstrap
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(BrokerAddress::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if bootstrap.is_empty() {
            return Err(ClientError::InvalidArgument(
                "the bootstrap list is empty".into(),
            ));
        }
        Ok(Self::with_addresses(bootstrap))
    }

    /// A configuration bootstrapping from these addresses, with the defaults.
    #[must_use]
    pub fn with_addresses(bootstrap: Vec<BrokerAddress>) -> Self {
        Self {
            bootstrap,
            connection: connection::Config::new("bootstrap"),
            seed: 0,
            connect_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(60),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
            metadata_max_age: Duration::from_secs(300),
            metadata_min_interval: Duration::from_millis(100),
            connections_max_idle: Duration::from_secs(540),
            allow_auto_topic_creation: false,
            producer: super::ProducerConfig::default(),
            consumer: super::ConsumerConfig::default(),
            planted_bug_route_to_first_replica: false,
        }
    }
}
