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
//! assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
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
    ClusterMetadata, ConfigResource, DeleteRecordsResult, DeletedGroups, DescribedConfigs,
    FetchOptions, FetchOutput, FetchedRecord, GroupDescription, GroupListing, NewTopic, OffsetSpec,
    OpId, OpOutput, ProduceOptions, ProduceOutput, Record, TopicMetadata, TopicResult,
    UnknownTopicHandling,
};
use crate::connection::sasl::SaslConfig;
use crate::records::Compression;

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
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsConfig>,
}

impl ClientBuilder {
    /// A builder bootstrapping from a comma-separated `host:port` list (a list that
    /// does not parse fails at `build_*`).
    #[must_use]
    pub fn new(bootstrap: &str) -> Self {
        Self::from(ClientConfig::new(bootstrap))
    }

    /// A builder from a complete configuration.
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
    #[must_use]
    pub fn config(&self) -> ClientConfig {
        match &self.config {
            Ok(c) => c.clone(),
            Err(_) => ClientConfig::with_addresses(Vec::new()),
        }
    }

    /// Changes the configuration in place: anything [`ClientConfig`] has.
    #[must_use]
    pub fn configure(self, f: impl FnOnce(&mut ClientConfig)) -> Self {
        self.edit(f)
    }

    /// The client id sent with every request.
    #[must_use]
    pub fn client_id(self, id: impl Into<String>) -> Self {
        let id = id.into();
        self.edit(|c| c.connection.client_id = Some(id))
    }

    /// SASL credentials (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER).
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
    #[must_use]
    pub fn seed(self, seed: u64) -> Self {
        self.edit(|c| c.seed = seed)
    }

    /// The default deadline of an operation, retries included.
    #[must_use]
    pub fn operation_timeout(self, d: Duration) -> Self {
        self.edit(|c| c.operation_timeout = d)
    }

    /// How long one request may wait for its response.
    #[must_use]
    pub fn request_timeout(self, d: Duration) -> Self {
        self.edit(|c| c.connection.request_timeout = d)
    }

    /// How long a TCP connect may take; also bounds the first bootstrap at build.
    #[must_use]
    pub fn connect_timeout(self, d: Duration) -> Self {
        self.edit(|c| c.connect_timeout = d)
    }

    /// TLS for every connection (feature `tls`).
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
    ) -> Result<(Core, Client, async_channel::Receiver<Command>, DriverTls), ClientError> {
        let config = self.config?;
        #[cfg(feature = "tls")]
        let tls = DriverTls {
            config: self.tls.map(|t| t.into_rustls()).transpose()?,
        };
        #[cfg(not(feature = "tls"))]
        let tls = DriverTls::default();
        let core = Core::new(config, crate::runtime::now());
        let (tx, rx) = async_channel::unbounded();
        let handle = Client {
            inner: Arc::new(Inner {
                commands: tx,
                tokens: AtomicU64::new(0),
            }),
        };
        Ok((core, handle, rx, tls))
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
}

/// A handle to a Kafka cluster. Cheap to clone; every clone drives the same
/// connections. The driver stops (closing its connections) when the last handle is
/// dropped or [`close`](Self::close) is called.
///
/// Every call ends by its deadline with a result or a typed [`ClientError`].
/// Dropping a call's future cancels the operation cleanly: the driver forgets it,
/// nothing half-written reaches a socket, and the client stays usable.
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
    pub async fn list_topics(&self) -> Result<Vec<TopicMetadata>, ClientError> {
        expect!(self.run(|c, now| c.list_topics(now)).await, Topics)
    }

    /// These topics; missing ones are absent from the answer.
    ///
    /// # Errors
    /// No broker answered in time.
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
    pub async fn describe_cluster(&self) -> Result<ClusterMetadata, ClientError> {
        expect!(self.run(|c, now| c.describe_cluster(now)).await, Cluster)
    }

    /// Creates topics; each has its own result.
    ///
    /// # Errors
    /// The operation itself failed (no controller reachable in time).
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
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError> {
        expect!(self.run(|c, now| c.list_groups(now)).await, Groups)
    }

    /// Describes groups, each at its coordinator.
    ///
    /// # Errors
    /// The operation itself failed.
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
    pub async fn delete_groups(&self, groups: Vec<String>) -> Result<DeletedGroups, ClientError> {
        expect!(
            self.run(move |c, now| c.delete_groups(now, groups)).await,
            GroupsDeleted
        )
    }

    /// A client for topic administration at the controller (rskafka's
    /// `ControllerClient`).
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
    pub async fn stats(&self) -> Result<ClientStats, ClientError> {
        let (tx, rx) = async_channel::bounded(1);
        self.inner
            .commands
            .try_send(Command::Stats(tx))
            .map_err(|_| ClientError::Closed)?;
        rx.recv().await.map_err(|_| ClientError::Closed)
    }

    /// Closes every connection; pending calls fail with [`ClientError::Closed`].
    /// Returns once the driver has stopped.
    pub async fn close(&self) {
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

/// The current wall-clock time in milliseconds, for records without a timestamp.
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Topic administration at the controller.
#[derive(Debug, Clone)]
pub struct ControllerClient {
    client: Client,
}

impl ControllerClient {
    /// Creates a topic; `timeout_ms` is how long the controller may take.
    ///
    /// # Errors
    /// As [`Client::create_topic`].
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
#[derive(Debug, Clone)]
pub struct PartitionClient {
    client: Client,
    topic: Arc<str>,
    partition: i32,
    unknown_topic: UnknownTopicHandling,
}

impl PartitionClient {
    /// The topic.
    #[must_use]
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
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
    pub async fn produce_with(
        &self,
        mut records: Vec<Record>,
        options: ProduceOptions,
    ) -> Result<ProduceOutput, ClientError> {
        let now_ms = wall_clock_ms();
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
    /// high watermark (rskafka's `fetch_records`).
    ///
    /// # Errors
    /// The offset is out of range, or the deadline passed.
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

    /// Looks up an offset: earliest, latest, or the first at or after a timestamp.
    ///
    /// # Errors
    /// The broker refused, or the deadline passed.
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
