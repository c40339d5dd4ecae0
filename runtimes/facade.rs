//! The client facade: a cheap, cloneable handle over the sans-IO
//! [`Client`](crate::client::Client), driven by the one [`driver`](super::driver)
//! under tokio, smol or a thread of its own.
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn demo() -> Result<(), kafka_sansio::client::ClientError> {
//! use kafka_sansio::client::{Record, UnknownTopicHandling};
//! use kafka_sansio::records::Compression;
//! use kafka_sansio::runtime::ClientBuilder;
//!
//! let client = ClientBuilder::new("localhost:9092").client_id("demo").build_tokio().await?;
//! client.create_topic("orders", 3, 1).await?;
//! let partition = client.partition_client("orders", 0, UnknownTopicHandling::Retry).await?;
//! let offsets = partition.produce(vec![Record::new("hello").key("k")], Compression::None).await?;
//! let (records, high_watermark) = partition.fetch_records(offsets[0], 1..1_000_000, 500).await?;
//! assert_eq!(records[0].value(), Some(&b"hello"[..]));
//! # let _ = high_watermark;
//! # Ok(()) }
//! ```
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::client::{
    AlterConfigOp, AlteredConfigs, Client as Core, ClientConfig, ClientError, ClientStats,
    ClusterMetadata, CommitMember, CommittedOffset, ConfigResource, DeleteRecordsResult,
    DeletedGroups, DescribedConfigs, FetchOptions, FetchOutput, FetchedRecord, GroupDescription,
    GroupListing, NewTopic, OffsetSpec, OpId, OpOutput, ProduceOptions, ProduceOutput, Record,
    TopicMetadata, TopicPartition, TopicResult, UnknownTopicHandling,
};
use crate::connection::sasl::SaslConfig;
use crate::records::{Compression, RecordSet};

use crate::driver::{Command, DriverTls};

/// Builds a [`Client`]: where to bootstrap, who we are, how to authenticate, and
/// which runtime drives it.
///
/// ```
/// use std::time::Duration;
/// use kafka_sansio::runtime::ClientBuilder;
///
/// let builder = ClientBuilder::new("broker-1:9092,broker-2:9092")
///     .client_id("billing")
///     .operation_timeout(Duration::from_secs(30))
///     .seed(7);
/// assert_eq!(builder.config().bootstrap.len(), 2);
/// ```
#[derive(Debug)]
pub struct ClientBuilder {
    config: Result<ClientConfig, ClientError>,
    /// A seed was given ([`seed`](Self::seed)); else it is random (or, on a
    /// simulated runtime, the runtime's).
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    seeded: bool,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsConfig>,
}

impl ClientBuilder {
    /// A builder bootstrapping from a comma-separated `host:port` list (a list that
    /// does not parse fails at `build_*`).
    ///
    /// ```
    /// use kafka_sansio::runtime::ClientBuilder;
    /// let builder = ClientBuilder::new("kafka-1:9092,kafka-2:9092");
    /// assert_eq!(builder.config().bootstrap.len(), 2);
    /// ```
    #[must_use]
    pub fn new(bootstrap: &str) -> Self {
        Self::from(ClientConfig::new(bootstrap))
    }

    /// A builder from a complete configuration.
    ///
    /// ```
    /// use kafka_sansio::client::ClientConfig;
    /// use kafka_sansio::runtime::ClientBuilder;
    /// let mut config = ClientConfig::new("localhost:9092")?;
    /// config.producer.acks = 1;
    /// let builder = ClientBuilder::from_config(config);
    /// assert_eq!(builder.config().producer.acks, 1);
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn from_config(config: ClientConfig) -> Self {
        Self::from(Ok(config))
    }

    fn from(config: Result<ClientConfig, ClientError>) -> Self {
        Self {
            config: config.map(|mut c| {
                // Retry jitter and bootstrap order: random per process unless seeded.
                c.seed = random_seed();
                c
            }),
            seeded: false,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut ClientConfig)) -> Self {
        if let Ok(c) = &mut self.config {
            f(c);
        }
        self
    }

    /// The configuration so far (defaults if the bootstrap list did not parse).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::runtime::ClientBuilder;
    /// let builder = ClientBuilder::new("localhost:9092");
    /// assert_eq!(builder.config().operation_timeout, Duration::from_secs(60)); // the default
    /// ```
    #[must_use]
    pub fn config(&self) -> ClientConfig {
        match &self.config {
            Ok(c) => c.clone(),
            Err(_) => ClientConfig::with_addresses(Vec::new()),
        }
    }

    /// Changes the configuration in place: anything [`ClientConfig`] has.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::OffsetReset;
    /// use kafka_sansio::runtime::ClientBuilder;
    /// let builder = ClientBuilder::new("localhost:9092").configure(|c| {
    ///     c.producer.linger = Duration::from_millis(20);
    ///     c.consumer.auto_offset_reset = OffsetReset::Earliest;
    /// });
    /// assert_eq!(builder.config().producer.linger, Duration::from_millis(20));
    /// ```
    #[must_use]
    pub fn configure(self, f: impl FnOnce(&mut ClientConfig)) -> Self {
        self.edit(f)
    }

    /// The client id sent with every request.
    ///
    /// ```
    /// use kafka_sansio::runtime::ClientBuilder;
    /// let builder = ClientBuilder::new("localhost:9092").client_id("billing");
    /// assert_eq!(builder.config().connection.client_id.as_deref(), Some("billing"));
    /// ```
    #[must_use]
    pub fn client_id(self, id: impl Into<String>) -> Self {
        let id = id.into();
        self.edit(|c| c.connection.client_id = Some(id))
    }

    /// SASL credentials (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER).
    ///
    /// ```
    /// use kafka_sansio::connection::sasl::{SaslConfig, SaslMechanism};
    /// use kafka_sansio::runtime::ClientBuilder;
    /// let sasl = SaslConfig::new(SaslMechanism::ScramSha512, "alice", "secret");
    /// let builder = ClientBuilder::new("localhost:9092").sasl(sasl);
    /// assert!(builder.config().connection.sasl.is_some());
    /// ```
    #[must_use]
    pub fn sasl(self, sasl: SaslConfig) -> Self {
        self.edit(|c| c.connection.sasl = Some(sasl))
    }

    /// The consumer group [`Consumer::subscribe`](crate::runtime::Consumer::subscribe)
    /// joins (`group.id`).
    #[must_use]
    pub fn group_id(self, id: impl Into<String>) -> Self {
        let id = id.into();
        self.edit(|c| c.consumer.group_id = Some(id))
    }

    /// The seed of every random choice (bootstrap order, jitter); random by default.
    ///
    /// ```
    /// use kafka_sansio::runtime::ClientBuilder;
    /// // Two clients with one seed try the bootstrap brokers in the same order.
    /// assert_eq!(ClientBuilder::new("a:9092,b:9092").seed(7).config().seed, 7);
    /// ```
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seeded = true;
        self.edit(|c| c.seed = seed)
    }

    /// This builder with `seed` as its seed, unless one was given.
    #[cfg(feature = "sim")]
    pub(crate) fn seed_unless_given(self, seed: u64) -> Self {
        if self.seeded { self } else { self.seed(seed) }
    }

    /// The default deadline of an operation, retries included.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::runtime::ClientBuilder;
    /// let builder = ClientBuilder::new("localhost:9092").operation_timeout(Duration::from_secs(10));
    /// assert_eq!(builder.config().operation_timeout, Duration::from_secs(10));
    /// ```
    #[must_use]
    pub fn operation_timeout(self, d: Duration) -> Self {
        self.edit(|c| c.operation_timeout = d)
    }

    /// How long one request may wait for its response.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::runtime::ClientBuilder;
    /// let builder = ClientBuilder::new("localhost:9092").request_timeout(Duration::from_secs(5));
    /// assert_eq!(builder.config().connection.request_timeout, Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn request_timeout(self, d: Duration) -> Self {
        self.edit(|c| c.connection.request_timeout = d)
    }

    /// How long a TCP connect may take; also bounds the first bootstrap at build.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::runtime::ClientBuilder;
    /// let builder = ClientBuilder::new("localhost:9092").connect_timeout(Duration::from_secs(3));
    /// assert_eq!(builder.config().connect_timeout, Duration::from_secs(3));
    /// ```
    #[must_use]
    pub fn connect_timeout(self, d: Duration) -> Self {
        self.edit(|c| c.connect_timeout = d)
    }

    /// TLS for every connection (feature `tls`).
    ///
    /// ```no_run
    /// use kafka_sansio::runtime::{ClientBuilder, TlsConfig};
    /// let builder = ClientBuilder::new("kafka.example.com:9093").tls(TlsConfig::ca_file("ca.pem")?);
    /// # let _ = builder;
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, tls: crate::tls::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The core, the driver's command channel and its TLS settings.
    /// The connect timeout, which bounds the first bootstrap.
    #[cfg_attr(not(any(feature = "tokio", feature = "blocking")), allow(dead_code))]
    pub(crate) fn bootstrap_timeout(&self) -> Duration {
        self.config
            .as_ref()
            .map_or(Duration::from_secs(10), |c| c.connect_timeout)
    }

    pub(crate) fn parts(
        self,
    ) -> Result<(Core, Client, crate::driver::DriverPort, DriverTls), ClientError> {
        let mut config = self.config?;
        // The SCRAM nonce's random part, drawn here (the core draws nothing); the
        // core makes it unique per connection.
        config.connection = crate::runtime::with_nonce(config.connection);
        #[cfg(feature = "tls")]
        let tls = DriverTls {
            config: self.tls.map(|t| t.into_rustls()).transpose()?,
        };
        #[cfg(not(feature = "tls"))]
        let tls = DriverTls::default();
        let deliveries = crate::delivery::Deliveries::for_producer(
            config.producer.buffer_max_bytes,
            config.producer.batch_max_bytes,
        );
        let core = Core::new(config, crate::runtime::now());
        let (tx, rx) = async_channel::unbounded();
        let handle = Client {
            inner: Arc::new(Inner {
                commands: tx,
                tokens: AtomicU64::new(0),
                deliveries: deliveries.clone(),
            }),
        };
        let port = crate::driver::DriverPort {
            commands: rx,
            deliveries,
        };
        Ok((core, handle, port, tls))
    }

    /// Checks that the cluster answers: the first bootstrap, bounded by the connect
    /// timeout.
    #[cfg_attr(not(any(feature = "tokio", feature = "blocking")), allow(dead_code))]
    pub(crate) async fn bootstrap(client: &Client, timeout: Duration) -> Result<(), ClientError> {
        client
            .run(move |c, now| c.with_timeout(timeout, |c| c.describe_cluster(now)))
            .await
            .map(|_| ())
    }
}

fn random_seed() -> u64 {
    let mut raw = [0u8; 8];
    if getrandom::getrandom(&mut raw).is_err() {
        let h =
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8);
        return h;
    }
    u64::from_le_bytes(raw)
}

#[derive(Debug)]
struct Inner {
    commands: async_channel::Sender<Command>,
    tokens: AtomicU64,
    /// The producer's records in transit and their delivery reports.
    deliveries: Arc<crate::delivery::Deliveries>,
}

/// A handle to a Kafka cluster. Cheap to clone; every clone drives the same
/// connections. The driver stops (closing its connections) when the last handle is
/// dropped or [`close`](Self::close) is called.
///
/// Every call ends by its deadline with a result or a typed [`ClientError`].
/// Dropping a call's future cancels the operation cleanly: the driver forgets it,
/// nothing half-written reaches a socket, and the client stays usable.
///
/// ```
/// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
/// # let server = kafka_sansio::doc_support::serve().await;
/// use kafka_sansio::runtime::ClientBuilder;
///
/// let client = ClientBuilder::new(&server.bootstrap()).client_id("billing").build_tokio().await?;
/// let cluster = client.describe_cluster().await?;
/// assert_eq!(cluster.brokers.len(), 3);
/// let clone = client.clone(); // the same connections
/// assert!(clone.list_topics().await?.iter().any(|t| &*t.name == "orders"));
/// client.close().await;
/// # Ok(()) });
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// Sends a cancel if the call's future is dropped before it finished.
struct CancelOnDrop<'a> {
    commands: &'a async_channel::Sender<Command>,
    token: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self
                .commands
                .try_send(Command::Cancel { token: self.token });
        }
    }
}

macro_rules! expect {
    ($result:expr, $variant:ident) => {
        match $result? {
            OpOutput::$variant(x) => Ok(x),
            other => Err(ClientError::InvalidResponse {
                api: crate::messages::ApiKey::Metadata,
                detail: format!("unexpected operation output {other:?}"),
            }),
        }
    };
}

impl Client {
    /// Names the driver behind this handle (and its clones) while it lives.
    #[cfg(feature = "sim")]
    pub(crate) fn driver_key(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    pub(crate) async fn run(
        &self,
        start: impl FnOnce(&mut Core, Instant) -> OpId + Send + 'static,
    ) -> Result<OpOutput, ClientError> {
        let token = self.inner.tokens.fetch_add(1, Ordering::Relaxed);
        let (done, result) = async_channel::bounded(1);
        let command = Command::Start {
            start: Box::new(start),
            done,
            token,
        };
        if self.inner.commands.try_send(command).is_err() {
            return Err(ClientError::Closed);
        }
        let mut guard = CancelOnDrop {
            commands: &self.inner.commands,
            token,
            armed: true,
        };
        let out = result.recv().await.unwrap_or(Err(ClientError::Closed));
        guard.armed = false;
        out
    }

    /// Every topic of the cluster.
    ///
    /// # Errors
    /// No broker answered in time.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// let topics = client.list_topics().await?;
    /// let orders = topics.iter().find(|t| &*t.name == "orders").expect("orders exists");
    /// assert_eq!(orders.partitions.len(), 3);
    /// # Ok(()) });
    /// ```
    pub async fn list_topics(&self) -> Result<Vec<TopicMetadata>, ClientError> {
        expect!(self.run(|c, now| c.list_topics(now)).await, Topics)
    }

    /// These topics; missing ones are absent from the answer.
    ///
    /// # Errors
    /// No broker answered in time.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// let found = client.describe_topics(vec!["orders".into(), "no-such-topic".into()]).await?;
    /// assert_eq!(found.len(), 1);
    /// assert_eq!(&*found[0].name, "orders");
    /// # Ok(()) });
    /// ```
    pub async fn describe_topics(
        &self,
        topics: Vec<String>,
    ) -> Result<Vec<TopicMetadata>, ClientError> {
        expect!(
            self.run(move |c, now| c.describe_topics(now, topics)).await,
            Topics
        )
    }

    /// The cluster id, controller and brokers.
    ///
    /// # Errors
    /// No broker answered in time.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// let cluster = client.describe_cluster().await?;
    /// assert_eq!(cluster.brokers.len(), 3);
    /// assert!(cluster.controller.is_some());
    /// # Ok(()) });
    /// ```
    pub async fn describe_cluster(&self) -> Result<ClusterMetadata, ClientError> {
        expect!(self.run(|c, now| c.describe_cluster(now)).await, Cluster)
    }

    /// Creates topics; each has its own result.
    ///
    /// # Errors
    /// The operation itself failed (no controller reachable in time).
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use std::time::Duration;
    /// use kafka_sansio::client::NewTopic;
    ///
    /// let topics = vec![
    ///     NewTopic::new("payments", 6, 3).config("retention.ms", "86400000"),
    ///     NewTopic::new("orders", 3, 3), // exists already
    /// ];
    /// let results = client.create_topics(topics, Duration::from_secs(30)).await?;
    /// assert!(results[0].result.is_ok());
    /// assert!(results[1].result.is_err());
    /// # Ok(()) });
    /// ```
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        timeout: Duration,
    ) -> Result<Vec<TopicResult>, ClientError> {
        expect!(
            self.run(move |c, now| c.create_topics(now, topics, timeout))
                .await,
            TopicResults
        )
    }

    /// Creates one topic (`-1` for the broker's default partitions or replication).
    ///
    /// # Errors
    /// The topic could not be created: it exists (`TOPIC_ALREADY_EXISTS`), the layout
    /// is invalid, or no controller answered in time.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::messages::ErrorCode;
    ///
    /// client.create_topic("payments", 6, 3).await?;
    /// let again = client.create_topic("payments", 6, 3).await.unwrap_err();
    /// assert_eq!(again.error_code(), Some(ErrorCode::TOPIC_ALREADY_EXISTS));
    /// # Ok(()) });
    /// ```
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<(), ClientError> {
        let topics = vec![NewTopic::new(name, partitions, replication_factor)];
        first(self.create_topics(topics, Duration::from_secs(30)).await?)
    }

    /// Deletes topics; each has its own result.
    ///
    /// # Errors
    /// The operation itself failed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use std::time::Duration;
    ///
    /// let results = client.delete_topics(vec!["orders".into()], Duration::from_secs(30)).await?;
    /// assert!(results[0].result.is_ok());
    /// # Ok(()) });
    /// ```
    pub async fn delete_topics(
        &self,
        topics: Vec<String>,
        timeout: Duration,
    ) -> Result<Vec<TopicResult>, ClientError> {
        expect!(
            self.run(move |c, now| c.delete_topics(now, topics, timeout))
                .await,
            TopicResults
        )
    }

    /// Deletes one topic.
    ///
    /// # Errors
    /// The topic could not be deleted (`UNKNOWN_TOPIC_OR_PARTITION`, ...).
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// client.delete_topic("orders").await?;
    /// assert!(client.delete_topic("orders").await.is_err()); // gone
    /// # Ok(()) });
    /// ```
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        first(
            self.delete_topics(vec![name.to_owned()], Duration::from_secs(30))
                .await?,
        )
    }

    /// Grows a topic to `total` partitions.
    ///
    /// # Errors
    /// The partitions could not be added.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// client.create_partitions("orders", 6).await?; // from 3 to 6
    /// let topics = client.describe_topics(vec!["orders".into()]).await?;
    /// assert_eq!(topics[0].partitions.len(), 6);
    /// # Ok(()) });
    /// ```
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<(), ClientError> {
        let topics = vec![(topic.to_owned(), total)];
        let results = expect!(
            self.run(move |c, now| c.create_partitions(now, topics, Duration::from_secs(30)))
                .await,
            TopicResults
        )?;
        first(results)
    }

    /// Reads configs of topics, brokers or groups.
    ///
    /// # Errors
    /// The operation itself failed.
    ///
    /// ```no_run
    /// # async fn demo(client: kafka_sansio::runtime::Client) -> Result<(), kafka_sansio::client::ClientError> {
    /// use kafka_sansio::client::ConfigResource;
    ///
    /// // (The simulated cluster has no DescribeConfigs; this runs against Kafka.)
    /// for (resource, entries) in client.describe_configs(vec![ConfigResource::topic("orders")]).await? {
    ///     for entry in entries? {
    ///         println!("{resource:?} {} = {:?}", entry.name, entry.value);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn describe_configs(
        &self,
        resources: Vec<ConfigResource>,
    ) -> Result<DescribedConfigs, ClientError> {
        expect!(
            self.run(move |c, now| c.describe_configs(now, resources))
                .await,
            Configs
        )
    }

    /// Changes configs incrementally.
    ///
    /// # Errors
    /// The operation itself failed.
    ///
    /// ```no_run
    /// # async fn demo(client: kafka_sansio::runtime::Client) -> Result<(), kafka_sansio::client::ClientError> {
    /// use kafka_sansio::client::{AlterConfigOp, ConfigResource};
    ///
    /// // (The simulated cluster has no IncrementalAlterConfigs; this runs against Kafka.)
    /// let changes = vec![(
    ///     ConfigResource::topic("orders"),
    ///     vec![AlterConfigOp::Set("retention.ms".into(), "3600000".into())],
    /// )];
    /// for (resource, result) in client.alter_configs(changes).await? {
    ///     result?; // each resource is applied (or refused) on its own
    ///     println!("{resource:?} changed");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn alter_configs(
        &self,
        changes: Vec<(ConfigResource, Vec<AlterConfigOp>)>,
    ) -> Result<AlteredConfigs, ClientError> {
        expect!(
            self.run(move |c, now| c.alter_configs(now, changes)).await,
            ConfigsAltered
        )
    }

    /// Deletes records before the given offsets.
    ///
    /// # Errors
    /// The operation itself failed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Record, UnknownTopicHandling};
    /// use kafka_sansio::records::Compression;
    ///
    /// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry).await?;
    /// p0.produce(vec![Record::new("a"), Record::new("b"), Record::new("c")], Compression::None).await?;
    /// let results = client.delete_records(vec![("orders".into(), 0, 2)], Duration::from_secs(30)).await?;
    /// assert_eq!(results[0].low_watermark, Ok(2)); // offsets 0 and 1 are gone
    /// # Ok(()) });
    /// ```
    pub async fn delete_records(
        &self,
        partitions: Vec<(String, i32, i64)>,
        timeout: Duration,
    ) -> Result<Vec<DeleteRecordsResult>, ClientError> {
        expect!(
            self.run(move |c, now| c.delete_records(now, partitions, timeout))
                .await,
            RecordsDeleted
        )
    }

    /// Every group of every broker.
    ///
    /// # Errors
    /// A broker did not answer in time.
    ///
    /// ```no_run
    /// # async fn demo(client: kafka_sansio::runtime::Client) -> Result<(), kafka_sansio::client::ClientError> {
    /// // (The simulated cluster has no ListGroups; this runs against Kafka.)
    /// for group in client.list_groups().await? {
    ///     println!("{} ({})", group.group_id, group.protocol_type);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError> {
        expect!(self.run(|c, now| c.list_groups(now)).await, Groups)
    }

    /// Describes groups, each at its coordinator.
    ///
    /// # Errors
    /// The operation itself failed.
    ///
    /// ```no_run
    /// # async fn demo(client: kafka_sansio::runtime::Client) -> Result<(), kafka_sansio::client::ClientError> {
    /// // (The simulated cluster has no DescribeGroups; this runs against Kafka.)
    /// for group in client.describe_groups(vec!["billing".into()]).await? {
    ///     let group = group?;
    ///     println!("{} is {} with {} members", group.group_id, group.state, group.members.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn describe_groups(
        &self,
        groups: Vec<String>,
    ) -> Result<Vec<Result<GroupDescription, ClientError>>, ClientError> {
        expect!(
            self.run(move |c, now| c.describe_groups(now, groups)).await,
            GroupDescriptions
        )
    }

    /// Deletes (empty) groups.
    ///
    /// # Errors
    /// The operation itself failed.
    ///
    /// ```no_run
    /// # async fn demo(client: kafka_sansio::runtime::Client) -> Result<(), kafka_sansio::client::ClientError> {
    /// // (The simulated cluster has no DeleteGroups; this runs against Kafka.)
    /// for (group, result) in client.delete_groups(vec!["old-billing".into()]).await? {
    ///     match result {
    ///         Ok(()) => println!("{group} deleted"),
    ///         Err(e) => println!("{group}: {e}"), // e.g. NON_EMPTY_GROUP
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn delete_groups(&self, groups: Vec<String>) -> Result<DeletedGroups, ClientError> {
        expect!(
            self.run(move |c, now| c.delete_groups(now, groups)).await,
            GroupsDeleted
        )
    }

    /// A group's committed offsets for these partitions (OffsetFetch at the group's
    /// coordinator); `-1` where nothing is committed.
    ///
    /// # Errors
    /// The coordinator could not be found or did not answer in time.
    pub async fn fetch_committed(
        &self,
        group: &str,
        partitions: Vec<TopicPartition>,
    ) -> Result<Vec<CommittedOffset>, ClientError> {
        let group = group.to_owned();
        expect!(
            self.run(move |c, now| c.fetch_committed(now, &group, partitions))
                .await,
            Committed
        )
    }

    /// Commits offsets for a group from outside it ([`CommitMember::none`]: the
    /// coordinator accepts them while the group has no members); each offset is the
    /// next record to consume. Each partition gets its own result.
    ///
    /// ```no_run
    /// # #[cfg(feature = "tokio")]
    /// # async fn demo() -> Result<(), kafka_sansio::client::ClientError> {
    /// use kafka_sansio::client::TopicPartition;
    /// use kafka_sansio::runtime::ClientBuilder;
    ///
    /// let client = ClientBuilder::new("localhost:9092").build_tokio().await?;
    /// let p0 = TopicPartition::new("orders", 0);
    /// client.commit_offsets("billing", vec![(p0.clone(), 42)]).await?;
    /// let committed = client.fetch_committed("billing", vec![p0]).await?;
    /// assert_eq!(committed[0].offset, Ok(42));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The coordinator could not be found or did not answer in time.
    pub async fn commit_offsets(
        &self,
        group: &str,
        offsets: Vec<(TopicPartition, i64)>,
    ) -> Result<Vec<CommittedOffset>, ClientError> {
        let group = group.to_owned();
        let offsets = offsets.into_iter().map(|(tp, o)| (tp, o, None)).collect();
        expect!(
            self.run(move |c, now| c.commit_offsets(now, &group, CommitMember::none(), offsets))
                .await,
            Committed
        )
    }

    /// A client for topic administration at the controller (rskafka's
    /// `ControllerClient`).
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// let controller = client.controller_client();
    /// controller.create_topic("payments", 6, 3, 5_000).await?;
    /// controller.delete_topic("payments", 5_000).await?;
    /// # Ok(()) });
    /// ```
    #[must_use]
    pub fn controller_client(&self) -> ControllerClient {
        ControllerClient {
            client: self.clone(),
        }
    }

    /// A client for one partition (rskafka's `PartitionClient`). With
    /// [`UnknownTopicHandling::Error`] it checks now that the partition exists.
    ///
    /// # Errors
    /// With `Error` handling: the topic or partition does not exist.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{ClientError, UnknownTopicHandling};
    ///
    /// let p2 = client.partition_client("orders", 2, UnknownTopicHandling::Retry).await?;
    /// assert_eq!((p2.topic(), p2.partition()), ("orders", 2));
    /// // With Error, a partition that does not exist is refused at once.
    /// let missing = client.partition_client("orders", 9, UnknownTopicHandling::Error).await;
    /// assert!(matches!(missing, Err(ClientError::UnknownPartition { .. })));
    /// # Ok(()) });
    /// ```
    pub async fn partition_client(
        &self,
        topic: &str,
        partition: i32,
        unknown_topic: UnknownTopicHandling,
    ) -> Result<PartitionClient, ClientError> {
        if unknown_topic == UnknownTopicHandling::Error {
            let found = self.describe_topics(vec![topic.to_owned()]).await?;
            let t = found
                .iter()
                .find(|t| &*t.name == topic)
                .ok_or_else(|| ClientError::UnknownTopic(topic.into()))?;
            if !t.partitions.iter().any(|p| p.partition == partition) {
                return Err(ClientError::UnknownPartition {
                    topic: topic.into(),
                    partition,
                    count: t.partitions.len(),
                });
            }
        }
        Ok(PartitionClient {
            client: self.clone(),
            topic: topic.into(),
            partition,
            unknown_topic,
        })
    }

    /// Sends a command to the driver.
    /// A token naming an operation started with [`Command::Start`].
    pub(crate) fn next_token(&self) -> u64 {
        self.inner.tokens.fetch_add(1, Ordering::Relaxed)
    }

    /// The producer's records in transit and their delivery reports.
    pub(crate) fn deliveries(&self) -> &Arc<crate::delivery::Deliveries> {
        &self.inner.deliveries
    }

    pub(crate) fn command(&self, command: Command) -> Result<(), ClientError> {
        self.inner
            .commands
            .try_send(command)
            .map_err(|_| ClientError::Closed)
    }

    /// A snapshot of per-broker counters.
    ///
    /// # Errors
    /// The client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// client.list_topics().await?;
    /// let stats = client.stats().await?;
    /// assert!(stats.brokers.iter().map(|b| b.requests).sum::<u64>() > 0);
    /// # Ok(()) });
    /// ```
    pub async fn stats(&self) -> Result<ClientStats, ClientError> {
        let (tx, rx) = async_channel::bounded(1);
        self.inner
            .commands
            .try_send(Command::Stats(tx))
            .map_err(|_| ClientError::Closed)?;
        rx.recv().await.map_err(|_| ClientError::Closed)
    }

    /// Closes every connection; pending calls fail with [`ClientError::Closed`].
    /// Returns once the driver has stopped. A transaction not yet ended is ended
    /// first, waiting at most the request timeout for the coordinator: one being
    /// committed (its `commit_transaction` future dropped, say) is committed, any
    /// other aborted, as the Java client's and librdkafka's close do. Left open, it
    /// would hold read_committed consumers of its partitions back until the
    /// coordinator's transaction timeout.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::ClientError;
    ///
    /// let other_handle = client.clone();
    /// client.close().await;
    /// assert_eq!(other_handle.list_topics().await, Err(ClientError::Closed));
    /// # Ok(()) });
    /// ```
    pub async fn close(&self) {
        // Records sent from now on fail at once; those sent before are ended by
        // the driver's close.
        self.inner.deliveries.refuse_new();
        let _ = self
            .run(|c, now| {
                let timeout = c.config().connection.request_timeout;
                match c.transaction_end_on_close() {
                    Some(true) => c.with_timeout(timeout, |c| c.commit_transaction(now)),
                    Some(false) => c.with_timeout(timeout, |c| c.abort_transaction(now)),
                    None => c.answered(Ok(OpOutput::Transaction)),
                }
            })
            .await;
        let (tx, rx) = async_channel::bounded(1);
        if self.inner.commands.try_send(Command::Close(tx)).is_ok() {
            let _ = rx.recv().await;
        }
    }
}

fn first(results: Vec<TopicResult>) -> Result<(), ClientError> {
    results
        .into_iter()
        .next()
        .map_or(Err(ClientError::Closed), |r| r.result)
}

/// Topic administration at the controller.
///
/// ```
/// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
/// # let (_server, client) = kafka_sansio::doc_support::client().await;
/// let controller = client.controller_client();
/// controller.create_topic("payments", 6, 3, 5_000).await?;
/// # Ok(()) });
/// ```
#[derive(Debug, Clone)]
pub struct ControllerClient {
    client: Client,
}

impl ControllerClient {
    /// Creates a topic; `timeout_ms` is how long the controller may take.
    ///
    /// # Errors
    /// As [`Client::create_topic`].
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// // 6 partitions, 3 replicas; the controller may take up to 5 s.
    /// client.controller_client().create_topic("payments", 6, 3, 5_000).await?;
    /// assert_eq!(client.describe_topics(vec!["payments".into()]).await?[0].partitions.len(), 6);
    /// # Ok(()) });
    /// ```
    pub async fn create_topic(
        &self,
        name: &str,
        num_partitions: i32,
        replication_factor: i16,
        timeout_ms: i32,
    ) -> Result<(), ClientError> {
        let timeout = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
        let topics = vec![NewTopic::new(name, num_partitions, replication_factor)];
        first(self.client.create_topics(topics, timeout).await?)
    }

    /// Deletes a topic.
    ///
    /// # Errors
    /// As [`Client::delete_topic`].
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// client.controller_client().delete_topic("orders", 5_000).await?;
    /// assert!(client.describe_topics(vec!["orders".into()]).await?.is_empty());
    /// # Ok(()) });
    /// ```
    pub async fn delete_topic(&self, name: &str, timeout_ms: i32) -> Result<(), ClientError> {
        let timeout = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
        first(
            self.client
                .delete_topics(vec![name.to_owned()], timeout)
                .await?,
        )
    }
}

/// Produce, fetch and offsets for one partition, routed to its leader wherever it
/// moves.
///
/// ```
/// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
/// # let (_server, client) = kafka_sansio::doc_support::client().await;
/// use kafka_sansio::client::{Record, UnknownTopicHandling};
/// use kafka_sansio::records::Compression;
///
/// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry).await?;
/// let offsets = p0.produce(vec![Record::new("hello").key("k")], Compression::Zstd).await?;
/// let (records, high_watermark) = p0.fetch_records(offsets[0], 1..1_000_000, 500).await?;
/// assert_eq!(records[0].value(), Some(&b"hello"[..]));
/// assert_eq!(high_watermark, 1);
/// # Ok(()) });
/// ```
#[derive(Debug, Clone)]
pub struct PartitionClient {
    client: Client,
    topic: Arc<str>,
    partition: i32,
    unknown_topic: UnknownTopicHandling,
}

impl PartitionClient {
    /// The topic.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::UnknownTopicHandling;
    /// let p1 = client.partition_client("orders", 1, UnknownTopicHandling::Retry).await?;
    /// assert_eq!(p1.topic(), "orders");
    /// # Ok(()) });
    /// ```
    #[must_use]
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::UnknownTopicHandling;
    /// let p1 = client.partition_client("orders", 1, UnknownTopicHandling::Retry).await?;
    /// assert_eq!(p1.partition(), 1);
    /// # Ok(()) });
    /// ```
    #[must_use]
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Produces records as one batch with acks=all and returns their offsets.
    /// Records without a timestamp get the current time.
    ///
    /// # Errors
    /// The records do not fit one batch, or the broker refused them, or the deadline
    /// passed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{Record, UnknownTopicHandling};
    /// use kafka_sansio::records::Compression;
    ///
    /// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry).await?;
    /// let records = vec![Record::new("a").key("k1"), Record::new("b").header("trace", "42")];
    /// assert_eq!(p0.produce(records, Compression::Lz4).await?, vec![0, 1]);
    /// # Ok(()) });
    /// ```
    pub async fn produce(
        &self,
        records: Vec<Record>,
        compression: Compression,
    ) -> Result<Vec<i64>, ClientError> {
        let out = self
            .produce_with(records, ProduceOptions::default().compression(compression))
            .await?;
        Ok(out.offsets().collect())
    }

    /// Produces records with options (acks, codec, deadline).
    ///
    /// # Errors
    /// As [`produce`](Self::produce).
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{ProduceOptions, Record, UnknownTopicHandling};
    /// use kafka_sansio::records::Compression;
    ///
    /// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry).await?;
    /// let options = ProduceOptions::default().acks(1).compression(Compression::Gzip);
    /// let out = p0.produce_with(vec![Record::new("a"), Record::new("b")], options).await?;
    /// assert_eq!(out.base_offset, Some(0));
    /// assert_eq!(out.offsets().collect::<Vec<_>>(), vec![0, 1]);
    /// # Ok(()) });
    /// ```
    pub async fn produce_with(
        &self,
        mut records: Vec<Record>,
        options: ProduceOptions,
    ) -> Result<ProduceOutput, ClientError> {
        let now_ms = crate::runtime::wall_clock_ms();
        for r in &mut records {
            r.timestamp.get_or_insert(now_ms);
        }
        let (topic, partition) = (self.topic.clone(), self.partition);
        let options = options.unknown_topic(self.unknown_topic);
        expect!(
            self.client
                .run(move |c, now| c.produce(now, &topic, partition, records, options))
                .await,
            Produced
        )
    }

    /// Fetches records from `offset`: at least `bytes.start` bytes (waiting up to
    /// `max_wait_ms` for them), at most `bytes.end`. Returns the records and the
    /// high watermark (rskafka's `fetch_records`). Each record is an owned handle on
    /// the response; [`fetch_record_set`](Self::fetch_record_set) lends them instead,
    /// for about half the CPU per record.
    ///
    /// # Errors
    /// The offset is out of range, or the deadline passed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{Record, UnknownTopicHandling};
    /// use kafka_sansio::records::Compression;
    ///
    /// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry).await?;
    /// p0.produce(vec![Record::new("a"), Record::new("b")], Compression::None).await?;
    /// // From offset 1: at least 1 byte, at most 1 MB, waiting up to 500 ms for them.
    /// let (records, high_watermark) = p0.fetch_records(1, 1..1_000_000, 500).await?;
    /// assert_eq!(records.len(), 1);
    /// assert_eq!(records[0].value(), Some(&b"b"[..]));
    /// assert_eq!(high_watermark, 2);
    /// # Ok(()) });
    /// ```
    pub async fn fetch_records(
        &self,
        offset: i64,
        bytes: Range<i32>,
        max_wait_ms: i32,
    ) -> Result<(Vec<FetchedRecord>, i64), ClientError> {
        let options = FetchOptions::default()
            .min_bytes(bytes.start)
            .max_bytes(bytes.end)
            .max_wait(Duration::from_millis(
                u64::try_from(max_wait_ms).unwrap_or(0),
            ));
        let out = self.fetch(offset, options).await?;
        Ok((out.records, out.high_watermark))
    }

    /// Fetches records with options.
    ///
    /// # Errors
    /// As [`fetch_records`](Self::fetch_records).
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use std::time::Duration;
    /// use kafka_sansio::client::{FetchOptions, IsolationLevel, Record, UnknownTopicHandling};
    /// use kafka_sansio::records::Compression;
    ///
    /// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry).await?;
    /// p0.produce(vec![Record::new("a")], Compression::None).await?;
    /// let options = FetchOptions::default()
    ///     .max_wait(Duration::from_millis(100))
    ///     .isolation(IsolationLevel::ReadCommitted);
    /// let out = p0.fetch(0, options).await?;
    /// assert_eq!(out.records.len(), 1);
    /// assert_eq!(out.high_watermark, 1);
    /// # Ok(()) });
    /// ```
    pub async fn fetch(
        &self,
        offset: i64,
        options: FetchOptions,
    ) -> Result<FetchOutput, ClientError> {
        let (topic, partition) = (self.topic.clone(), self.partition);
        let options = options.unknown_topic(self.unknown_topic);
        expect!(
            self.client
                .run(move |c, now| c.fetch(now, &topic, partition, offset, options))
                .await,
            Fetched
        )
    }

    /// Fetches records with options, lending them from the response instead of
    /// decoding them into owned records: the cheapest way through a fetch (no
    /// allocation or reference count per record). Read them with
    /// [`RecordSet::reader`](crate::records::RecordSet::reader); keep one with
    /// [`RecordRef::to_record`](crate::records::RecordRef::to_record). A record that
    /// does not parse is reported by the reader when it is reached.
    ///
    /// # Errors
    /// As [`fetch_records`](Self::fetch_records).
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{FetchOptions, Record, UnknownTopicHandling};
    /// use kafka_sansio::records::Compression;
    ///
    /// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry).await?;
    /// p0.produce(vec![Record::new("a").key("k1"), Record::new("b").key("k2")], Compression::None).await?;
    /// let out = p0.fetch_record_set(0, FetchOptions::default()).await?;
    /// let mut reader = out.records.reader();
    /// let mut keys = Vec::new();
    /// while let Some(record) = reader.next_ref() {
    ///     let record = record?;
    ///     keys.push(record.key().unwrap_or_default().to_vec());
    /// }
    /// assert_eq!(keys, [b"k1".to_vec(), b"k2".to_vec()]);
    /// assert_eq!(out.next_offset, 2);
    /// # Ok(()) });
    /// ```
    pub async fn fetch_record_set(
        &self,
        offset: i64,
        options: FetchOptions,
    ) -> Result<FetchOutput<RecordSet>, ClientError> {
        let (topic, partition) = (self.topic.clone(), self.partition);
        let options = options.unknown_topic(self.unknown_topic);
        expect!(
            self.client
                .run(move |c, now| c.fetch_record_set(now, &topic, partition, offset, options))
                .await,
            FetchedSet
        )
    }

    /// Looks up an offset: earliest, latest, or the first at or after a timestamp.
    ///
    /// # Errors
    /// The broker refused, or the deadline passed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{OffsetSpec, Record, UnknownTopicHandling};
    /// use kafka_sansio::records::Compression;
    ///
    /// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry).await?;
    /// p0.produce(vec![Record::new("a"), Record::new("b")], Compression::None).await?;
    /// assert_eq!(p0.get_offset(OffsetSpec::Earliest).await?, 0);
    /// assert_eq!(p0.get_offset(OffsetSpec::Latest).await?, 2); // the next offset to be written
    /// # Ok(()) });
    /// ```
    pub async fn get_offset(&self, at: OffsetSpec) -> Result<i64, ClientError> {
        let (topic, partition) = (self.topic.clone(), self.partition);
        match self
            .client
            .run(move |c, now| c.list_offsets(now, &topic, partition, at))
            .await?
        {
            OpOutput::Offset { offset, .. } => Ok(offset),
            other => Err(ClientError::InvalidResponse {
                api: crate::messages::ApiKey::ListOffsets,
                detail: format!("unexpected operation output {other:?}"),
            }),
        }
    }

    /// Deletes the records before `offset`; returns the new log start offset.
    ///
    /// # Errors
    /// The broker refused, or the deadline passed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{OffsetSpec, Record, UnknownTopicHandling};
    /// use kafka_sansio::records::Compression;
    ///
    /// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry).await?;
    /// p0.produce(vec![Record::new("a"), Record::new("b")], Compression::None).await?;
    /// assert_eq!(p0.delete_records(1, 5_000).await?, 1);
    /// assert_eq!(p0.get_offset(OffsetSpec::Earliest).await?, 1);
    /// # Ok(()) });
    /// ```
    pub async fn delete_records(&self, offset: i64, timeout_ms: i32) -> Result<i64, ClientError> {
        let timeout = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
        let partitions = vec![(self.topic.to_string(), self.partition, offset)];
        let results = self.client.delete_records(partitions, timeout).await?;
        results
            .into_iter()
            .next()
            .map_or(Err(ClientError::Closed), |r| r.low_watermark)
    }
}
