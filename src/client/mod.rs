//! A Kafka cluster as one sans-IO state machine over many broker connections.
//!
//! [`Client`] owns a [`Connection`] per broker and
//! kind of traffic, a metadata cache and a coordinator cache, and runs operations
//! across them: admin calls (create and delete topics, configs, groups, ...) and
//! partition operations (produce, fetch, list offsets). It routes each request to the
//! partition leader, the controller, a coordinator or any broker; retries retriable
//! errors with capped, jittered exponential backoff (KIP-580) after refreshing what
//! the error says is stale; and ends every operation by its deadline. Like the rest
//! of the crate it never touches a socket, a clock or a thread: it asks for
//! connections and transmits through [`poll_output`](Client::poll_output), and time
//! is an argument.
//!
//! The runtime facades (`runtime::ClientBuilder`, features `tokio`, `smol`,
//! `blocking`) drive it over real sockets; the simulation (feature `sim`) drives it
//! against the simulated cluster on a virtual clock.
//!
//! ```
//! # #[cfg(feature = "sim")] {
//! use std::time::Duration;
//! use kafka_sansio::client::{Client, ClientConfig, Event, Offset, ProducerRecord, TopicPartition};
//! use kafka_sansio::sim::{ClusterConfig, NetworkConfig, Simulation};
//!
//! # #[allow(clippy::disallowed_methods)]
//! let mut sim = Simulation::new(7, ClusterConfig::default(), NetworkConfig::default(), std::time::Instant::now());
//! sim.cluster().create_topic("orders", 1, 1).unwrap();
//! let host = sim.add_client(Client::new(ClientConfig::new(&sim.bootstrap()).unwrap(), sim.now()));
//!
//! // Produce: send hands the record over; Event::Delivered says where it landed.
//! let now = sim.now();
//! let id = sim.client(host).send(now, ProducerRecord::new("orders", "paid").key("order-17")).unwrap();
//! sim.run_until(Duration::from_secs(5), |sim| {
//!     sim.client_events(host).any(|e| matches!(e, Event::Delivered { record, .. } if record == id))
//! });
//!
//! // Consume: assign partitions, then poll records as they arrive.
//! let now = sim.now();
//! sim.client(host).assign(now, vec![TopicPartition::new("orders", 0)], Offset::Beginning);
//! let mut records = Vec::new();
//! sim.run_until(Duration::from_secs(5), |sim| {
//!     let now = sim.now();
//!     records.extend(sim.client(host).poll_records(now, 100));
//!     !records.is_empty()
//! });
//! assert_eq!(records[0].record.value(), Some(&b"paid"[..]));
//! # }
//! ```

mod backoff;
mod config;
mod consume;
mod consumer;
mod error;
mod group;
mod groups;
mod metadata;
mod op;
mod ops;
mod produce;
mod producer;
mod rng;
mod stats;
mod transaction;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::connection::{
    self, Connection, ConnectionError, CorrelationId, RequestErrorKind, RequestOptions,
    TransportError, UsageError,
};

pub use config::{BrokerAddress, ClientConfig};
pub use consumer::{ConsumedRecord, ConsumerConfig, Offset, OffsetReset, TopicPartition};
pub use error::{ClientError, TransactionError};
pub use group::{Assignor, GroupProtocol, GroupStatus};
pub use metadata::{BrokerMetadata, ClusterMetadata, PartitionMetadata, TopicMetadata};
pub use op::{CoordinatorKind, Lane, UnknownTopicHandling};
pub use ops::admin::{
    AlterConfigOp, ConfigEntry, ConfigResource, ConfigResourceType, ConfigSource,
    DeleteRecordsResult, GroupDescription, GroupListing, GroupMember, NewTopic, TopicResult,
};
pub use ops::offsets::{CommitMember, CommittedOffset};
pub use ops::partition::{
    FetchOptions, FetchOutput, FetchedRecord, IsolationLevel, OffsetSpec, ProduceOptions,
    ProduceOutput, Record, RecordHeader,
};
#[cfg_attr(
    not(any(feature = "tokio", feature = "smol", feature = "blocking")),
    allow(unused_imports)
)]
pub(crate) use produce::Delivered;
#[cfg(all(test, any(feature = "tokio", feature = "smol", feature = "blocking")))]
pub(crate) use producer::COPIED_QUEUE_RECORDS;
pub use producer::{
    Aggregator, BatchProducer, BorrowedRecord, Demux, ItemId, ItemOutput, Partitioner,
    ProducerConfig, ProducerRecord, Push, RecordAggregator, RecordBuffer, RecordDemux, RecordId,
    RecordMetadata, SendError, TopicPartitions, murmur2, partition_for_key,
};
#[cfg_attr(
    not(any(feature = "tokio", feature = "smol", feature = "blocking")),
    allow(unused_imports)
)]
pub(crate) use producer::{RecordChain, RecordQueue, WrittenBatch};
pub use stats::{BrokerStats, ClientStats, PartitionStats};

use backoff::backoff;
use metadata::{Leader, Metadata};
use op::{Built, Ctx, Operation, Refresh, Reply, Step, Target, Versions};
use rng::Rng;

/// Per resource, its configs or why they could not be read.
///
/// ```
/// use kafka_sansio::client::{ConfigEntry, DescribedConfigs};
/// fn print(configs: DescribedConfigs) {
///     for (resource, entries) in configs {
///         match entries {
///             Ok(entries) => entries.iter().for_each(|e: &ConfigEntry| println!("{} {} = {:?}", resource.name, e.name, e.value)),
///             Err(e) => println!("{}: {e}", resource.name),
///         }
///     }
/// }
/// # print(Vec::new());
/// ```
pub type DescribedConfigs = Vec<(ConfigResource, Result<Vec<ConfigEntry>, ClientError>)>;
/// Per resource, whether its change was applied.
///
/// ```
/// use kafka_sansio::client::AlteredConfigs;
/// fn failed(results: &AlteredConfigs) -> Vec<&str> {
///     results.iter().filter(|(_, r)| r.is_err()).map(|(res, _)| res.name.as_str()).collect()
/// }
/// assert!(failed(&Vec::new()).is_empty());
/// ```
pub type AlteredConfigs = Vec<(ConfigResource, Result<(), ClientError>)>;
/// Per group, whether it was deleted.
///
/// ```
/// use kafka_sansio::client::{ClientError, DeletedGroups};
/// let results: DeletedGroups = vec![("old".into(), Ok(())), ("busy".into(), Err(ClientError::Closed))];
/// let deleted: Vec<_> = results.iter().filter(|(_, r)| r.is_ok()).map(|(g, _)| g.as_str()).collect();
/// assert_eq!(deleted, ["old"]);
/// ```
pub type DeletedGroups = Vec<(String, Result<(), ClientError>)>;

/// Names one connection the client asked for with [`Output::Connect`].
///
/// ```
/// use kafka_sansio::client::{Client, ClientConfig, Output};
/// # #[allow(clippy::disallowed_methods)]
/// let now = std::time::Instant::now();
/// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
/// client.describe_cluster(now);
/// let Some(Output::Connect { conn, .. }) = client.poll_output() else { unreachable!() };
/// client.handle_connected(conn, now); // every later call about this socket names `conn`
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// Names one operation started on a client; its [`Event::Done`] carries the same id.
///
/// ```
/// use kafka_sansio::client::{Client, ClientConfig};
/// # #[allow(clippy::disallowed_methods)]
/// let now = std::time::Instant::now();
/// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
/// let a = client.list_topics(now);
/// let b = client.list_topics(now);
/// assert_ne!(a, b); // each operation its own id; its Event::Done carries it
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

/// Something the client wants done with a transport; pulled with
/// [`Client::poll_output`].
///
/// ```
/// use kafka_sansio::client::{Client, ClientConfig, Output};
/// # #[allow(clippy::disallowed_methods)]
/// let now = std::time::Instant::now();
/// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
/// client.list_topics(now);
/// while let Some(output) = client.poll_output() {
///     match output {
///         Output::Connect { conn, host, port, .. } => {
///             println!("open {host}:{port} as {conn:?}");
///             client.handle_connected(conn, now); // once the socket is open
///         }
///         Output::Transmit { conn, bytes } => println!("write {} bytes on {conn:?}", bytes.len()),
///         Output::Close { conn } => println!("close {conn:?}"),
///     }
/// }
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to `host:port` and report it with
    /// [`Client::handle_connected`] or [`Client::handle_connect_failed`].
    Connect {
        /// The connection's id, for every later call about it.
        conn: ConnId,
        /// The broker's node id (`None` for a bootstrap address).
        broker: Option<i32>,
        /// Host to connect to.
        host: Arc<str>,
        /// Port to connect to.
        port: u16,
    },
    /// Write these bytes on the connection, after everything written before.
    Transmit {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        bytes: Bytes,
    },
    /// Close the connection (after writing what was handed out before); the client
    /// has forgotten it.
    Close {
        /// The connection.
        conn: ConnId,
    },
}

/// The result of a finished operation.
///
/// ```
/// # #[cfg(feature = "sim")] {
/// # let (mut sim, host) = kafka_sansio::doc_support::sim();
/// use std::time::Duration;
/// use kafka_sansio::client::{OffsetSpec, OpOutput};
/// let now = sim.now();
/// let op = sim.client(host).list_offsets(now, "orders", 0, OffsetSpec::Latest);
/// match sim.run_until_done(host, op, Duration::from_secs(10))? {
///     OpOutput::Offset { offset, .. } => assert_eq!(offset, 0),
///     other => panic!("list_offsets gives Offset, not {other:?}"),
/// }
/// # }
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum OpOutput {
    /// [`Client::list_topics`].
    Topics(Vec<TopicMetadata>),
    /// [`Client::describe_cluster`].
    Cluster(ClusterMetadata),
    /// [`Client::create_topics`], [`Client::delete_topics`],
    /// [`Client::create_partitions`]: one result per topic, in the order asked.
    TopicResults(Vec<TopicResult>),
    /// [`Client::describe_configs`]: one entry per resource, in the order asked.
    Configs(DescribedConfigs),
    /// [`Client::alter_configs`]: one result per resource, in the order asked.
    ConfigsAltered(AlteredConfigs),
    /// [`Client::delete_records`]: one result per partition, in the order asked.
    RecordsDeleted(Vec<DeleteRecordsResult>),
    /// [`Client::list_groups`].
    Groups(Vec<GroupListing>),
    /// [`Client::describe_groups`]: one entry per group, in the order asked.
    GroupDescriptions(Vec<Result<GroupDescription, ClientError>>),
    /// [`Client::delete_groups`]: one result per group, in the order asked.
    GroupsDeleted(DeletedGroups),
    /// [`Client::produce`].
    Produced(ProduceOutput),
    /// [`Client::fetch`].
    Fetched(FetchOutput),
    /// [`Client::fetch_record_set`]: the records lent from the response.
    FetchedSet(FetchOutput<crate::records::RecordSet>),
    /// [`Client::fetch_committed`], [`Client::commit_offsets`]: per partition.
    Committed(Vec<CommittedOffset>),
    /// A transactional call ended as asked: [`Client::init_transactions`],
    /// [`Client::commit_transaction`], [`Client::abort_transaction`],
    /// [`Client::send_offsets_to_transaction`].
    Transaction,
    /// [`Client::list_offsets`]: the offset and its record's timestamp (`-1` when
    /// the broker gives none).
    Offset {
        /// The offset.
        offset: i64,
        /// The timestamp of the record at that offset, `-1` if not reported.
        timestamp: i64,
    },
}

/// Something the client reports; pulled with [`Client::poll_event`].
///
/// ```
/// # #[cfg(feature = "sim")] {
/// # let (mut sim, host) = kafka_sansio::doc_support::sim();
/// use std::time::Duration;
/// use kafka_sansio::client::{Event, ProducerRecord};
/// let now = sim.now();
/// let op = sim.client(host).describe_cluster(now);
/// let record = sim.client(host).send(now, ProducerRecord::new("orders", "paid"))?;
/// let (mut done, mut delivered) = (false, false);
/// sim.run_until(Duration::from_secs(10), |sim| {
///     for event in sim.client_events(host).collect::<Vec<_>>() {
///         match event {
///             Event::Done { op: o, result } if o == op => done = result.is_ok(),
///             Event::Delivered { record: r, result } if r == record => delivered = result.is_ok(),
///             _ => {}
///         }
///     }
///     done && delivered
/// });
/// assert!(done && delivered);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// An operation ended, with its output or why it failed. Every operation
    /// started ends with exactly one `Done`, unless it was cancelled.
    Done {
        /// The operation.
        op: OpId,
        /// Its result.
        result: Result<OpOutput, ClientError>,
    },
    /// Fetched records wait to be taken with [`Client::poll_records`].
    RecordsReady,
    /// Consuming hit an error the application must know of: a partition without a
    /// position under [`OffsetReset::Error`], a fatal fetch error, a corrupt batch.
    ConsumerError {
        /// The partition concerned, if one.
        partition: Option<TopicPartition>,
        /// What happened.
        error: ClientError,
    },
    /// This consumer group member's partitions change (see
    /// [`Client::subscribe`]). The revoked and lost partitions are already out of
    /// the fetcher: nothing buffered for them is returned by a later
    /// [`poll_records`](Client::poll_records). Handle them (commit what was
    /// processed, if you commit by hand), get ready for the assigned ones (seek
    /// them to start elsewhere than the committed offset), then call
    /// [`Client::ack_rebalance`]: the rebalance goes on only then (or after the
    /// rebalance timeout), and the assigned partitions are fetched only then.
    Rebalance {
        /// Partitions taken away; with auto-commit their positions are committed
        /// before the group moves on.
        revoked: Vec<TopicPartition>,
        /// Partitions lost without a chance to commit (the membership was fenced or
        /// expired): another member may own them already.
        lost: Vec<TopicPartition>,
        /// Partitions added, held until the acknowledgement.
        assigned: Vec<TopicPartition>,
    },
    /// A record handed to [`Client::send`] was written (or could not be). Every
    /// record accepted gets exactly one.
    Delivered {
        /// The record.
        record: RecordId,
        /// Where it landed, or why it failed.
        result: Result<RecordMetadata, ClientError>,
    },
}

/// Which broker a connection goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Endpoint {
    /// The n-th bootstrap address (in shuffled order).
    Bootstrap(usize),
    /// A broker by node id.
    Node(i32),
}

#[derive(Debug)]
enum ConnState {
    Connecting { deadline: Instant },
    Open { conn: Box<Connection>, ready: bool },
}

/// Who waits for a request.
#[derive(Debug)]
struct Waiter {
    owner: Owner,
    sent_at: Instant,
}

/// What a request was sent for.
#[derive(Debug)]
enum Owner {
    /// Items of an operation.
    Op { op: OpId, items: Vec<usize> },
    /// The producer's Produce request with this number.
    Produce(u64),
    /// The consumer's Fetch request with this number.
    Fetch(u64),
}

#[derive(Debug)]
struct Slot {
    endpoint: Endpoint,
    lane: Lane,
    label: Arc<str>,
    state: ConnState,
    last_active: Instant,
    waiters: BTreeMap<CorrelationId, Waiter>,
}

impl Slot {
    fn is_ready(&self) -> bool {
        matches!(self.state, ConnState::Open { ready: true, .. })
    }

    fn busy(&self) -> bool {
        !self.waiters.is_empty()
            || match &self.state {
                ConnState::Open { conn, .. } => conn.in_flight() > 0 || conn.queued() > 0,
                ConnState::Connecting { .. } => true,
            }
    }
}

#[derive(Debug, Clone)]
enum ItemState {
    Ready,
    Backoff(Instant),
    /// Waiting for a metadata response numbered at least this.
    WaitMetadata(u64),
    WaitCoordinator,
    InFlight,
    Done,
    Failed(ClientError),
}

#[derive(Debug)]
struct Item {
    target: Target,
    state: ItemState,
    attempts: u32,
    last_error: Option<ClientError>,
}

/// What an internal operation feeds when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Internal {
    /// The n-th metadata request.
    Metadata(u64),
    Coordinator(CoordinatorKind, Arc<str>),
    /// The producer's InitProducerId.
    ProducerId,
    /// The consumer's ListOffsets for a partition's start.
    ConsumerOffset(TopicPartition, u64),
    /// The consumer's OffsetForLeaderEpoch check of a partition.
    Validate(TopicPartition, u64),
    /// The consumer's lookup of committed offsets.
    Committed(Vec<TopicPartition>),
    /// The group member's membership request with this number.
    Group(u64),
    /// The group member's commit with this number.
    GroupCommit(u64),
    /// A transactional producer's request.
    Txn(transaction::TxnCall),
}

struct OpEntry {
    op: Option<Box<dyn Operation>>,
    name: &'static str,
    timeout: Duration,
    deadline: Instant,
    items: Vec<Item>,
    internal: Option<Internal>,
    /// Metadata answers numbered at least this were asked after the op started.
    fresh_metadata: u64,
}

impl std::fmt::Debug for OpEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpEntry")
            .field("name", &self.name)
            .field("deadline", &self.deadline)
            .field("items", &self.items)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
enum CoordState {
    Known(i32),
    Looking,
}

#[derive(Debug, Clone, Copy)]
struct EndpointBackoff {
    failures: u32,
    until: Instant,
}

/// A Kafka cluster client as a sans-IO state machine.
///
/// # Driving contract
///
/// The methods are of four kinds, as on [`Connection`]:
/// - **getters** ([`metadata_topic`](Self::metadata_topic), [`stats`](Self::stats),
///   ...), which change nothing;
/// - **inputs**: [`handle_connected`](Self::handle_connected) /
///   [`handle_connect_failed`](Self::handle_connect_failed) for each
///   [`Output::Connect`], [`handle_input`](Self::handle_input) with bytes read,
///   [`handle_eof`](Self::handle_eof) and
///   [`handle_transport_error`](Self::handle_transport_error) when a socket ends, and
///   [`handle_timeout`](Self::handle_timeout) once the deadline from
///   [`poll_timeout`](Self::poll_timeout) has passed;
/// - **commands**: the operations ([`create_topics`](Self::create_topics),
///   [`produce`](Self::produce), [`fetch`](Self::fetch), ...), each returning an
///   [`OpId`] at once, and [`cancel`](Self::cancel);
/// - **outputs**, pulled until they return `None`: [`poll_output`](Self::poll_output)
///   (connect, write, close), [`poll_event`](Self::poll_event) (operations ending)
///   and [`poll_timeout`](Self::poll_timeout).
///
/// After **every** input or command, call `poll_output` until `None` and carry out
/// each output in order, then `poll_event` until `None`, then ask `poll_timeout` for
/// the next deadline (the previous one is void). Time passed in must never go
/// backwards. Nothing here reads a clock, and every random choice comes from
/// [`ClientConfig::seed`], so the same inputs give the same outputs.
///
/// # Promise
///
/// Every operation ends exactly once with [`Event::Done`] (or is cancelled): with its
/// output, a typed error, or [`ClientError::Timeout`] by its deadline. Retriable
/// errors (the [`ErrorCode`](crate::messages::ErrorCode) table says which, plus lost
/// connections and request timeouts) are retried until then.
///
/// # Example
///
/// Against the simulated cluster on a virtual clock (feature `sim`); the runtime
/// facades do the same over sockets:
///
/// ```
/// # #[cfg(feature = "sim")] {
/// use std::time::Duration;
/// use kafka_sansio::client::{Client, ClientConfig, Event, NewTopic, OpOutput, Record};
/// use kafka_sansio::sim::{ClusterConfig, NetworkConfig, Simulation};
///
/// # #[allow(clippy::disallowed_methods)]
/// let start = std::time::Instant::now(); // the caller's clock, read once
/// let mut sim = Simulation::new(1, ClusterConfig { brokers: 3, ..Default::default() },
///     NetworkConfig::default(), start);
/// let config = ClientConfig::new(&sim.bootstrap()).unwrap();
/// let client = sim.add_client(Client::new(config, sim.now()));
///
/// let now = sim.now();
/// let op = sim.client(client).create_topics(now, vec![NewTopic::new("orders", 3, 3)], Duration::from_secs(5));
/// let done = sim.run_until_done(client, op, Duration::from_secs(10)).unwrap();
/// assert!(matches!(done, OpOutput::TopicResults(r) if r[0].result.is_ok()));
///
/// let now = sim.now();
/// let op = sim.client(client).produce(now, "orders", 1, vec![Record::new("hello")], Default::default());
/// let Ok(OpOutput::Produced(p)) = sim.run_until_done(client, op, Duration::from_secs(10)) else { panic!() };
/// assert_eq!(p.base_offset, Some(0));
/// # }
/// ```
pub struct Client {
    config: ClientConfig,
    rng: Rng,
    bootstrap: Vec<config::BrokerAddress>,
    next_bootstrap: usize,
    metadata: Metadata,
    /// Metadata requests sent so far (the n-th answer carries number n).
    metadata_sent: u64,
    /// The number of the last metadata answer applied.
    metadata_answered: u64,
    metadata_error: Option<ClientError>,
    coordinators: BTreeMap<(CoordinatorKind, Arc<str>), CoordState>,
    slots: BTreeMap<ConnId, Slot>,
    by_endpoint: BTreeMap<(Endpoint, Lane), ConnId>,
    endpoint_backoff: BTreeMap<Endpoint, EndpointBackoff>,
    /// When a producer or fetcher connection waited out a broker's backoff: the
    /// client is woken then to open it.
    lane_wake: Option<Instant>,
    /// A group call or commit ended since the group member was last driven: it
    /// may have something to send now (an answer found inside a dispatch, such as
    /// a request the coordinator cannot take, is otherwise seen only when some
    /// unrelated timer next wakes the client).
    group_moved: bool,
    ops: BTreeMap<OpId, OpEntry>,
    outputs: VecDeque<Output>,
    events: VecDeque<Event>,
    next_conn: u64,
    next_op: u64,
    stats: stats::Stats,
    now: Instant,
    /// A deadline override for the next operation started (see `with_timeout`).
    next_timeout: Option<Duration>,
    /// The producer, once a record was sent.
    producer: Option<Box<producer::Producer>>,
    /// The producer's Produce requests on the wire, by number.
    produce_requests: BTreeMap<u64, producer::InFlightRequest>,
    next_produce_request: u64,
    /// Replies for the producer that arrived while it was busy driving.
    deferred_produce_replies: Vec<(u64, Result<Reply, ClientError>)>,
    /// Deliveries wait for `take_deliveries` instead of becoming events (the facades).
    bulk_deliveries: bool,
    /// The group's auto-commit stores only positions given to `store_positions`
    /// (the facades, whose buffer runs ahead of the application).
    explicit_store: bool,
    /// The consumer, once partitions were assigned.
    consumer: Option<Box<consumer::Consumer>>,
    /// The consumer's Fetch requests on the wire, by number.
    fetch_requests: BTreeMap<u64, consumer::FetchInFlight>,
    /// The consumer group member, once subscribed (or committing).
    group: Option<Box<group::GroupMember>>,
    /// When the application should have polled by: records have waited for it
    /// since `max_poll_interval` before this instant (`None`: none wait, or it
    /// polled since they came). Acted on only in a group
    /// ([`GroupMember::poll_expired`](group::GroupMember::poll_expired)).
    poll_due: Option<Instant>,
    /// [`close`](Client::close) was called: nothing starts or connects again.
    closed: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("connections", &self.slots.len())
            .field("operations", &self.ops.len())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client that will bootstrap from `config.bootstrap` on its first operation.
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now(); // the caller's clock: the client reads none
    /// let client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// assert_eq!(client.connections(), 0); // nothing happens before the first operation
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        let mut rng = Rng::new(config.seed);
        let mut bootstrap = config.bootstrap.clone();
        rng.shuffle(&mut bootstrap);
        Self {
            config,
            rng,
            bootstrap,
            next_bootstrap: 0,
            metadata: Metadata::default(),
            metadata_sent: 0,
            metadata_answered: 0,
            metadata_error: None,
            coordinators: BTreeMap::new(),
            slots: BTreeMap::new(),
            by_endpoint: BTreeMap::new(),
            endpoint_backoff: BTreeMap::new(),
            lane_wake: None,
            group_moved: false,
            ops: BTreeMap::new(),
            outputs: VecDeque::new(),
            events: VecDeque::new(),
            next_conn: 0,
            next_op: 0,
            stats: stats::Stats::default(),
            now,
            next_timeout: None,
            producer: None,
            produce_requests: BTreeMap::new(),
            next_produce_request: 0,
            deferred_produce_replies: Vec::new(),
            bulk_deliveries: false,
            explicit_store: false,
            consumer: None,
            fetch_requests: BTreeMap::new(),
            group: None,
            poll_due: None,
            closed: false,
        }
    }

    // ----- getters -------------------------------------------------------------

    /// The configuration.
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig};
    /// # #[allow(clippy::disallowed_methods)]
    /// let client = Client::new(ClientConfig::new("localhost:9092")?, std::time::Instant::now());
    /// assert_eq!(client.config().bootstrap[0].port, 9092);
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// What the metadata cache knows of a topic (`None` if not loaded).
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// assert!(sim.client(host).metadata_topic("orders").is_none()); // not loaded yet
    /// let now = sim.now();
    /// let op = sim.client(host).describe_topics(now, vec!["orders".into()]);
    /// sim.run_until_done(host, op, Duration::from_secs(10))?;
    /// assert_eq!(sim.client(host).metadata_topic("orders").unwrap().partitions.len(), 3);
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn metadata_topic(&self, topic: &str) -> Option<&TopicMetadata> {
        self.metadata.topic(topic)
    }

    /// What the metadata cache knows of the cluster.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// let now = sim.now();
    /// let op = sim.client(host).describe_cluster(now);
    /// sim.run_until_done(host, op, Duration::from_secs(10))?;
    /// assert_eq!(sim.client(host).metadata_cluster().brokers.len(), 3);
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn metadata_cluster(&self) -> ClusterMetadata {
        self.metadata.cluster()
    }

    /// Operations started and not yet ended.
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// let op = client.list_topics(now);
    /// assert_eq!(client.pending_operations(), 1);
    /// client.cancel(op);
    /// assert_eq!(client.pending_operations(), 0);
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn pending_operations(&self) -> usize {
        self.ops.values().filter(|o| o.internal.is_none()).count()
    }

    /// Open or opening connections.
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// client.list_topics(now);
    /// assert_eq!(client.connections(), 1); // the bootstrap connection, being opened
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn connections(&self) -> usize {
        self.slots.len()
    }

    /// A snapshot of per-broker counters (requests, bytes, round trips, throttling),
    /// like librdkafka's statistics.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// let now = sim.now();
    /// let op = sim.client(host).list_topics(now);
    /// sim.run_until_done(host, op, Duration::from_secs(10))?;
    /// let stats = sim.client(host).stats();
    /// let requests: u64 = stats.brokers.iter().map(|b| b.requests).sum();
    /// assert!(requests >= 1);
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn stats(&self) -> ClientStats {
        let mut stats = self.stats.snapshot(
            self.slots
                .values()
                .map(|s| (s.label.clone(), s.waiters.len())),
        );
        if let Some(p) = &self.producer {
            stats.retries += p.retries();
            stats.producer_buffered_bytes = p.buffered();
            stats.partitions = p
                .partition_stats()
                .into_iter()
                .map(
                    |(topic, partition, buffered_records, in_flight_batches)| PartitionStats {
                        topic,
                        partition,
                        buffered_records,
                        in_flight_batches,
                    },
                )
                .collect();
        }
        stats
    }

    // ----- inputs --------------------------------------------------------------

    /// The transport for `conn` connected.
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, Output};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// client.list_topics(now);
    /// let Some(Output::Connect { conn, .. }) = client.poll_output() else { unreachable!() };
    /// client.handle_connected(conn, now);
    /// // Connected: the client writes its first request (ApiVersions).
    /// assert!(matches!(client.poll_output(), Some(Output::Transmit { conn: c, .. }) if c == conn));
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn handle_connected(&mut self, conn: ConnId, now: Instant) {
        self.advance(now);
        let Some(slot) = self.slots.get_mut(&conn) else {
            return;
        };
        if !matches!(slot.state, ConnState::Connecting { .. }) {
            return;
        }
        let mut config = self.config.connection.clone();
        config.broker = slot.label.clone();
        // Every connection's SCRAM nonce differs: the configured (random) one with
        // this connection's number.
        if let Some(sasl) = config.sasl.as_mut().filter(|s| !s.nonce.is_empty()) {
            sasl.nonce = format!("{}-{}", sasl.nonce, conn.0);
        }
        slot.state = ConnState::Open {
            conn: Box::new(Connection::new(config, now)),
            ready: false,
        };
        slot.last_active = now;
        self.stats.connected(&slot.label);
        tracing::debug!(broker = %slot.label, lane = ?slot.lane, "connected");
        self.pump(conn, now);
        self.drive(now);
    }

    /// The transport for `conn` could not connect.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Client, ClientConfig, ClientError, Event, Output};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// let op = client.with_timeout(Duration::from_millis(100), |c| c.list_topics(now));
    /// let Some(Output::Connect { conn, .. }) = client.poll_output() else { unreachable!() };
    /// client.handle_connect_failed(conn, now, "connection refused");
    /// // The client backs off and retries until the operation's deadline.
    /// client.handle_timeout(now + Duration::from_millis(100));
    /// let Some(Event::Done { op: o, result }) = client.poll_event() else { unreachable!() };
    /// assert_eq!(o, op);
    /// assert!(matches!(result, Err(ClientError::Timeout { .. })));
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn handle_connect_failed(
        &mut self,
        conn: ConnId,
        now: Instant,
        error: impl Into<TransportError>,
    ) {
        self.advance(now);
        let error = error.into();
        if let Some(slot) = self.slots.get(&conn) {
            let err = ConnectionError {
                broker: slot.label.clone(),
                kind: connection::ConnectionErrorKind::Transport(error),
            };
            self.drop_slot(conn, now, err, false);
        }
        self.drive(now);
    }

    /// Bytes read from `conn`.
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, Output};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// client.list_topics(now);
    /// let Some(Output::Connect { conn, .. }) = client.poll_output() else { unreachable!() };
    /// client.handle_connected(conn, now);
    /// # let read_from_socket = || -> Vec<u8> { Vec::new() };
    /// // Whatever the socket gave, in any chunking: the client reassembles frames.
    /// let bytes: Vec<u8> = read_from_socket();
    /// client.handle_input(conn, now, &bytes);
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn handle_input(&mut self, conn: ConnId, now: Instant, bytes: &[u8]) {
        self.advance(now);
        let Some(slot) = self.slots.get_mut(&conn) else {
            return;
        };
        let ConnState::Open { conn: c, .. } = &mut slot.state else {
            return;
        };
        self.stats.received(&slot.label, bytes.len());
        c.handle_input(now, bytes);
        self.pump(conn, now);
        self.drive(now);
    }

    /// Room to read the next bytes of `conn` into, instead of handing them to
    /// [`handle_input`](Self::handle_input) (which copies them); `None` if `conn` is
    /// not open. Write the bytes at its start, then call
    /// [`handle_read`](Self::handle_read) with their count. A Fetch response gets
    /// room for all of it at once (see [`Connection::read_buffer`]).
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, Output};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// client.list_topics(now);
    /// let Some(Output::Connect { conn, .. }) = client.poll_output() else { unreachable!() };
    /// assert!(client.read_buffer(conn).is_none()); // not open yet
    /// client.handle_connected(conn, now);
    /// # let mut socket = std::io::empty();
    /// // Read from the socket straight into the client's buffer: no copy.
    /// let buf = client.read_buffer(conn).expect("open");
    /// let n = std::io::Read::read(&mut socket, buf)?;
    /// client.handle_read(conn, now, n);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_buffer(&mut self, conn: ConnId) -> Option<&mut [u8]> {
        match &mut self.slots.get_mut(&conn)?.state {
            ConnState::Open { conn, .. } => Some(conn.read_buffer()),
            ConnState::Connecting { .. } => None,
        }
    }

    /// `n` bytes were read from `conn` into the room [`read_buffer`](Self::read_buffer)
    /// gave.
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, Output};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// client.list_topics(now);
    /// let Some(Output::Connect { conn, .. }) = client.poll_output() else { unreachable!() };
    /// client.handle_connected(conn, now);
    /// // Part of a response frame (its 4-byte length prefix) arrives; the rest comes later.
    /// let frame_start = [0u8, 0, 0, 8];
    /// let buf = client.read_buffer(conn).expect("open");
    /// buf[..4].copy_from_slice(&frame_start);
    /// client.handle_read(conn, now, 4);
    /// assert_eq!(client.pending_operations(), 1); // still waiting for the whole response
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle_read(&mut self, conn: ConnId, now: Instant, n: usize) {
        self.advance(now);
        let Some(slot) = self.slots.get_mut(&conn) else {
            return;
        };
        let ConnState::Open { conn: c, .. } = &mut slot.state else {
            return;
        };
        self.stats.received(&slot.label, n);
        c.handle_read(now, n);
        self.pump(conn, now);
        self.drive(now);
    }

    /// The peer closed `conn`.
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, Output};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// client.list_topics(now);
    /// let Some(Output::Connect { conn, .. }) = client.poll_output() else { unreachable!() };
    /// client.handle_connected(conn, now);
    /// while client.poll_output().is_some() {} // (the ApiVersions request, written)
    /// client.handle_eof(conn, now); // the broker hung up: the client forgets the connection
    /// assert_eq!(client.connections(), 0);
    /// assert_eq!(client.pending_operations(), 1); // the operation is retried elsewhere
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn handle_eof(&mut self, conn: ConnId, now: Instant) {
        self.advance(now);
        if let Some(Slot {
            state: ConnState::Open { conn: c, .. },
            ..
        }) = self.slots.get_mut(&conn)
        {
            c.handle_eof(now);
            self.pump(conn, now);
        }
        self.drive(now);
    }

    /// The transport of `conn` failed.
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, Output};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// client.list_topics(now);
    /// let Some(Output::Connect { conn, .. }) = client.poll_output() else { unreachable!() };
    /// client.handle_connected(conn, now);
    /// let error = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
    /// client.handle_transport_error(conn, now, error);
    /// assert_eq!(client.pending_operations(), 1); // retried after a backoff
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn handle_transport_error(
        &mut self,
        conn: ConnId,
        now: Instant,
        error: impl Into<TransportError>,
    ) {
        self.advance(now);
        let error = error.into();
        match self.slots.get_mut(&conn) {
            Some(Slot {
                state: ConnState::Open { conn: c, .. },
                ..
            }) => {
                c.handle_transport_error(now, error);
                self.pump(conn, now);
            }
            Some(slot) => {
                let err = ConnectionError {
                    broker: slot.label.clone(),
                    kind: connection::ConnectionErrorKind::Transport(error),
                };
                self.drop_slot(conn, now, err, false);
            }
            None => {}
        }
        self.drive(now);
    }

    /// Time has reached the deadline from [`poll_timeout`](Self::poll_timeout)
    /// (calling it earlier or more often is harmless).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Client, ClientConfig, Event};
    /// # #[allow(clippy::disallowed_methods)]
    /// let start = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, start);
    /// let op = client.with_timeout(Duration::from_secs(1), |c| c.list_topics(start));
    /// while client.poll_output().is_some() {} // (no socket is ever opened here)
    /// let deadline = client.poll_timeout().unwrap();
    /// client.handle_timeout(deadline.max(start + Duration::from_secs(1)));
    /// assert!(matches!(client.poll_event(), Some(Event::Done { op: o, result: Err(_) }) if o == op));
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        // Lanes that waited for a backoff are asked for again by the drive below.
        if self.lane_wake.is_some_and(|t| t <= now) {
            self.lane_wake = None;
        }
        let ids: Vec<ConnId> = self.slots.keys().copied().collect();
        for id in ids {
            let Some(slot) = self.slots.get_mut(&id) else {
                continue;
            };
            match &mut slot.state {
                ConnState::Connecting { deadline } if *deadline <= now => {
                    let err = ConnectionError {
                        broker: slot.label.clone(),
                        kind: connection::ConnectionErrorKind::Transport(TransportError::new(
                            std::io::ErrorKind::TimedOut,
                            format!("connect timed out after {:?}", self.config.connect_timeout),
                        )),
                    };
                    self.drop_slot(id, now, err, true);
                }
                ConnState::Connecting { .. } => {}
                ConnState::Open { conn, .. } => {
                    if conn.poll_timeout().is_some_and(|t| t <= now) {
                        conn.handle_timeout(now);
                        self.pump(id, now);
                    }
                }
            }
        }
        self.close_idle(now);
        self.expire_ops(now);
        self.drive(now);
    }

    // ----- outputs -------------------------------------------------------------

    /// The next thing to do with a transport; `None` when there is none.
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, Output};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// assert_eq!(client.poll_output(), None); // nothing to do yet
    /// client.describe_cluster(now);
    /// let Some(Output::Connect { host, port, broker, .. }) = client.poll_output() else { unreachable!() };
    /// assert_eq!((&*host, port, broker), ("localhost", 9092, None)); // a bootstrap address
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next event; `None` when there is none.
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, ClientError, Event};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// let op = client.list_topics(now);
    /// client.close(now);
    /// assert_eq!(client.poll_event(), Some(Event::Done { op, result: Err(ClientError::Closed) }));
    /// assert_eq!(client.poll_event(), None);
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Client, ClientConfig};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// assert_eq!(client.poll_timeout(), None); // idle
    /// client.with_timeout(Duration::from_secs(3), |c| c.list_topics(now));
    /// let next = client.poll_timeout().unwrap();
    /// assert!(next <= now + Duration::from_secs(3)); // sleep until then, then handle_timeout
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for slot in self.slots.values() {
            match &slot.state {
                ConnState::Connecting { deadline } => at(*deadline),
                ConnState::Open { conn, .. } => {
                    if let Some(t) = conn.poll_timeout() {
                        at(t);
                    }
                    if !slot.busy() {
                        at(slot.last_active + self.config.connections_max_idle);
                    }
                }
            }
        }
        for op in self.ops.values() {
            at(op.deadline);
            for item in &op.items {
                if let ItemState::Backoff(t) = item.state {
                    at(t);
                }
            }
        }
        if !self.metadata.in_flight
            && let Some(t) = self.metadata.refresh_at
        {
            at(t);
        }
        if let Some(t) = self.producer.as_ref().and_then(|p| p.next_deadline()) {
            at(t);
        }
        if let Some(t) = self.lane_wake {
            at(t);
        }
        if let Some(t) = self.group.as_ref().and_then(|g| g.next_deadline()) {
            at(t);
        }
        if let Some(t) = self
            .poll_due
            .filter(|_| self.group.as_ref().is_some_and(|g| g.watches_polls()))
        {
            at(t);
        }
        next
    }

    // ----- commands ------------------------------------------------------------

    /// Cancels an operation: it ends without an event, and replies to requests it
    /// already sent are discarded when they arrive (nothing half-written is left on a
    /// connection: requests are written whole or not at all).
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// let op = client.list_topics(now);
    /// client.cancel(op);
    /// assert_eq!(client.pending_operations(), 0);
    /// assert_eq!(client.poll_event(), None); // a cancelled operation reports nothing
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn cancel(&mut self, op: OpId) {
        if self.ops.get(&op).is_some_and(|o| o.internal.is_none()) {
            self.ops.remove(&op);
        }
        if let Some(g) = self.group.as_mut() {
            g.cancel(op);
        }
        if let Some(t) = self.producer.as_deref_mut().and_then(|p| p.txn.as_mut()) {
            t.cancel(op);
        }
    }

    /// Closes every connection and fails every pending operation with
    /// [`ClientError::Closed`], for good: the client opens no connection after
    /// this (nor for a metadata refresh it wanted before), an operation started
    /// later ends at once with `Closed`, and a record sent later is refused with
    /// [`SendError::Closed`]. It takes no round trip: a transaction still open stays
    /// open on its coordinator until the transaction timeout, so abort it first
    /// ([`abort_transaction`](Self::abort_transaction), as the facades' `close`
    /// does).
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, Event, Output};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// client.list_topics(now);
    /// let Some(Output::Connect { conn, .. }) = client.poll_output() else { unreachable!() };
    /// client.close(now);
    /// assert_eq!(client.poll_output(), Some(Output::Close { conn }));
    /// assert!(matches!(client.poll_event(), Some(Event::Done { result: Err(_), .. })));
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn close(&mut self, now: Instant) {
        self.advance(now);
        self.closed = true;
        self.group_close(now);
        let ids: Vec<OpId> = self.ops.keys().copied().collect();
        for id in ids {
            if let Some(mut entry) = self.ops.remove(&id)
                && entry.internal.is_none()
            {
                for item in &mut entry.items {
                    if !matches!(item.state, ItemState::Done | ItemState::Failed(_)) {
                        item.state = ItemState::Failed(ClientError::Closed);
                    }
                }
                self.finish(id, entry);
            }
        }
        self.close_producer(now);
        for (id, _) in std::mem::take(&mut self.slots) {
            self.outputs.push_back(Output::Close { conn: id });
        }
        self.by_endpoint.clear();
    }

    /// Starts the operation `start` starts with `timeout` as its deadline instead of
    /// its default (operations that take their own timeout option keep it).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Client, ClientConfig};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092").unwrap(), now);
    /// let op = client.with_timeout(Duration::from_secs(2), |c| c.describe_cluster(now));
    /// assert_eq!(client.pending_operations(), 1);
    /// # let _ = op;
    /// ```
    pub fn with_timeout(
        &mut self,
        timeout: Duration,
        start: impl FnOnce(&mut Self) -> OpId,
    ) -> OpId {
        self.next_timeout = Some(timeout);
        let op = start(self);
        self.next_timeout = None;
        op
    }

    /// Starts an operation.
    fn start_op(
        &mut self,
        now: Instant,
        op: Box<dyn Operation>,
        targets: Vec<Target>,
        timeout: Option<Duration>,
    ) -> OpId {
        self.start_entry(now, op, targets, timeout, None)
    }

    fn start_entry(
        &mut self,
        now: Instant,
        op: Box<dyn Operation>,
        targets: Vec<Target>,
        timeout: Option<Duration>,
        internal: Option<Internal>,
    ) -> OpId {
        self.advance(now);
        let id = OpId(self.next_op);
        self.next_op += 1;
        let timeout = match internal {
            None => timeout.or(self.next_timeout.take()),
            Some(_) => timeout,
        }
        .unwrap_or(self.config.operation_timeout);
        let mut entry = OpEntry {
            name: op.name(),
            op: Some(op),
            timeout,
            deadline: now + timeout,
            items: targets
                .into_iter()
                .map(|target| Item {
                    target,
                    state: ItemState::Ready,
                    attempts: 0,
                    last_error: None,
                })
                .collect(),
            internal,
            fresh_metadata: self.metadata_sent + 1,
        };
        let empty = entry.items.is_empty();
        if self.closed {
            if entry.internal.is_none() {
                for item in &mut entry.items {
                    item.state = ItemState::Failed(ClientError::Closed);
                }
                self.finish(id, entry);
            }
            return id;
        }
        self.ops.insert(id, entry);
        if empty {
            if let Some(entry) = self.ops.remove(&id) {
                self.finish(id, entry);
            }
        } else if internal_is_none(&self.ops, id) {
            self.drive(now);
        }
        id
    }

    // ----- internals -----------------------------------------------------------

    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// Opens `node`'s connection for `lane` unless there is one or the broker is
    /// backing off; then the client wakes when the backoff ends (`lane_wake`), so
    /// the producer or fetcher waiting for it asks again.
    fn connect_lane(&mut self, now: Instant, node: i32, lane: Lane) {
        let endpoint = Endpoint::Node(node);
        if self.by_endpoint.contains_key(&(endpoint, lane)) {
            return;
        }
        if let Some(until) = self
            .endpoint_backoff
            .get(&endpoint)
            .map(|b| b.until)
            .filter(|until| *until > now)
        {
            self.lane_wake = Some(self.lane_wake.map_or(until, |w| w.min(until)));
            return;
        }
        let _ = self.open(endpoint, lane, now);
    }

    /// Sends `request` on `node`'s ready connection for `lane` (a producer's or the
    /// fetcher's own lane), with the options `options` makes from the broker's
    /// versions; its reply goes to `owner` of the returned request number. `None`:
    /// not sent (no ready connection, no usable version, or a full queue).
    fn send_on_lane(
        &mut self,
        now: Instant,
        node: i32,
        lane: Lane,
        request: crate::connection::AnyRequest,
        options: impl FnOnce(Option<&Versions>) -> Option<RequestOptions>,
        owner: fn(u64) -> Owner,
    ) -> Option<u64> {
        let conn_id = *self.by_endpoint.get(&(Endpoint::Node(node), lane))?;
        let slot = self.slots.get_mut(&conn_id)?;
        let ConnState::Open { conn, ready: true } = &mut slot.state else {
            return None;
        };
        let options = options(conn.broker_versions())?;
        let corr = conn.send_any(now, request, options).ok()?;
        let n = self.next_produce_request;
        self.next_produce_request += 1;
        slot.waiters.insert(
            corr,
            Waiter {
                owner: owner(n),
                sent_at: now,
            },
        );
        slot.last_active = now;
        self.stats.request(&slot.label);
        self.pump(conn_id, now);
        Some(n)
    }

    /// Drains a connection's transmits and events.
    fn pump(&mut self, id: ConnId, now: Instant) {
        let mut events = Vec::new();
        {
            let Some(slot) = self.slots.get_mut(&id) else {
                return;
            };
            let ConnState::Open { conn, .. } = &mut slot.state else {
                return;
            };
            while let Some(bytes) = conn.poll_transmit() {
                self.stats.sent(&slot.label, bytes.len());
                slot.last_active = now;
                self.outputs.push_back(Output::Transmit { conn: id, bytes });
            }
            while let Some(e) = conn.poll_event() {
                events.push(e);
            }
        }
        for event in events {
            self.on_connection_event(id, now, event);
        }
    }

    fn on_connection_event(&mut self, id: ConnId, now: Instant, event: connection::Event) {
        match event {
            connection::Event::Ready => {
                if let Some(slot) = self.slots.get_mut(&id) {
                    if let ConnState::Open { ready, .. } = &mut slot.state {
                        *ready = true;
                    }
                    self.endpoint_backoff.remove(&slot.endpoint);
                }
            }
            connection::Event::Response(r) => {
                let corr = r.context.correlation_id;
                self.on_reply(id, corr, now, Ok(Reply::Response(r)));
            }
            connection::Event::Sent(c) => self.on_reply(id, c.correlation_id, now, Ok(Reply::Sent)),
            connection::Event::RequestFailed(e) => {
                let corr = e.context.correlation_id;
                let timed_out = matches!(e.kind, RequestErrorKind::Timeout(_));
                let error = match e.kind {
                    RequestErrorKind::Connection(c) => ClientError::Connection(c),
                    _ => ClientError::Request(e),
                };
                self.on_reply(id, corr, now, Err(error));
                if timed_out {
                    self.close_stalled(id, now);
                }
            }
            connection::Event::Throttled { duration, .. } => {
                if let Some(slot) = self.slots.get(&id) {
                    self.stats.throttled(&slot.label, duration);
                    tracing::debug!(broker = %slot.label, ?duration, "throttled by the broker");
                }
            }
            connection::Event::Closed(e) => {
                let remote = e.is_remote();
                self.drop_slot(id, now, e, remote);
            }
        }
    }

    /// A request on this connection timed out: the connection is closed, as the Java
    /// client does, and what waits on it fails as a reset would fail it. Answers on
    /// it come later than the request timeout (a stalled broker, a backlog on the
    /// link), so every request after it would time out as well; a fresh connection
    /// gets the retries through. (Found by `tests/producer_invariants.rs`: after a
    /// latency spike, metadata refreshes and produce retries kept timing out on the
    /// old connections long after the cluster healed.)
    fn close_stalled(&mut self, id: ConnId, now: Instant) {
        let Some(label) = self.slots.get(&id).map(|s| s.label.clone()) else {
            return;
        };
        let error = ConnectionError {
            broker: label,
            kind: connection::ConnectionErrorKind::Transport(TransportError::new(
                std::io::ErrorKind::TimedOut,
                "closed after a request on it timed out",
            )),
        };
        self.drop_slot(id, now, error, false);
    }

    /// Forgets a connection: its waiters were already failed by the connection (or
    /// there were none yet); the endpoint backs off if the failure was remote.
    fn drop_slot(
        &mut self,
        id: ConnId,
        now: Instant,
        error: ConnectionError,
        backoff_endpoint: bool,
    ) {
        let Some(slot) = self.slots.remove(&id) else {
            return;
        };
        self.by_endpoint.remove(&(slot.endpoint, slot.lane));
        self.outputs.push_back(Output::Close { conn: id });
        self.stats.disconnected(&slot.label);
        let never_ready = !slot.is_ready();
        tracing::debug!(broker = %slot.label, %error, "connection closed");
        // A coordinator that cannot be reached is looked up again, as the Java
        // client marks it unknown on a disconnect: when its broker is down, Kafka
        // has moved its groups to another, and asking the old one until it comes
        // back would let the members' sessions run out and their commits wait.
        if let Endpoint::Node(node) = slot.endpoint {
            self.coordinators
                .retain(|_, c| !matches!(c, CoordState::Known(n) if *n == node));
        }
        for (_, w) in slot.waiters {
            let failed = Err(ClientError::Connection(error.clone()));
            match w.owner {
                Owner::Op { op, items } => self.end_items(op, &items, now, failed),
                Owner::Produce(req) => self.produce_reply(req, now, failed),
                Owner::Fetch(req) => self.fetch_reply(req, now, failed),
            }
        }
        if backoff_endpoint || never_ready {
            let failures = self
                .endpoint_backoff
                .get(&slot.endpoint)
                .map_or(0, |b| b.failures);
            let wait = backoff(
                self.config.reconnect_backoff,
                self.config.reconnect_backoff_max,
                failures,
                &mut self.rng,
            );
            self.endpoint_backoff.insert(
                slot.endpoint,
                EndpointBackoff {
                    failures: failures + 1,
                    until: now + wait,
                },
            );
            if let Endpoint::Bootstrap(i) = slot.endpoint {
                self.next_bootstrap = i + 1;
            }
            // A broker that cannot be reached may have left the cluster.
            self.want_metadata(now, None, true);
            let failed = ClientError::Connection(error);
            // Refused credentials or certificates fail every waiting call at once:
            // every connection of this client presents the same ones.
            let fatal = !failed.is_retriable();
            for op in self.ops.values_mut() {
                for item in &mut op.items {
                    if matches!(
                        item.state,
                        ItemState::Ready | ItemState::WaitMetadata(_) | ItemState::Backoff(_)
                    ) {
                        item.last_error = Some(failed.clone());
                        if fatal {
                            item.state = ItemState::Failed(failed.clone());
                        }
                    }
                }
            }
            if fatal {
                let ids: Vec<OpId> = self.ops.keys().copied().collect();
                for id in ids {
                    self.maybe_finish(id);
                }
            }
        }
    }

    /// A request ended: hand it to its operation.
    fn on_reply(
        &mut self,
        conn: ConnId,
        corr: CorrelationId,
        now: Instant,
        reply: Result<Reply, ClientError>,
    ) {
        let Some(slot) = self.slots.get_mut(&conn) else {
            return;
        };
        let Some(waiter) = slot.waiters.remove(&corr) else {
            return;
        };
        tracing::trace!(broker = %slot.label, corr, ok = reply.is_ok(), "reply");
        slot.last_active = now;
        if reply.is_ok() {
            self.stats
                .round_trip(&slot.label, now.saturating_duration_since(waiter.sent_at));
        }
        match waiter.owner {
            Owner::Op { op, items } => self.end_items(op, &items, now, reply),
            Owner::Produce(req) => self.produce_reply(req, now, reply),
            Owner::Fetch(req) => self.fetch_reply(req, now, reply),
        }
    }

    fn end_items(
        &mut self,
        op_id: OpId,
        items: &[usize],
        now: Instant,
        reply: Result<Reply, ClientError>,
    ) {
        let Some(entry) = self.ops.get_mut(&op_id) else {
            return; // cancelled or timed out: the reply is discarded
        };
        let steps = match reply {
            Ok(reply) => {
                let Some(op) = entry.op.as_mut() else { return };
                let mut ctx = Ctx {
                    metadata: &mut self.metadata,
                    now,
                    spawn: Vec::new(),
                    coordinator: None,
                    producer_id: None,
                };
                let steps = op.on_reply(items, reply, &mut ctx);
                if let (Some(pid), Some(p)) = (ctx.producer_id, self.producer.as_mut()) {
                    p.on_producer_id(Ok(pid));
                }
                if let (Some(node), Some(Internal::Coordinator(kind, key))) =
                    (ctx.coordinator, &entry.internal)
                {
                    self.coordinators
                        .insert((*kind, key.clone()), CoordState::Known(node));
                }
                for target in ctx.spawn {
                    entry.items.push(Item {
                        target,
                        state: ItemState::Ready,
                        attempts: 0,
                        last_error: None,
                    });
                }
                steps
            }
            Err(error) => items
                .iter()
                .map(|i| {
                    let step = if error.is_retriable() {
                        Step::Retry {
                            error: error.clone(),
                            refresh: Refresh::Nothing,
                        }
                    } else {
                        Step::Fail(error.clone())
                    };
                    (*i, step)
                })
                .collect(),
        };
        for (i, step) in steps {
            self.apply_step(op_id, i, step, now);
        }
        self.maybe_finish(op_id);
    }

    fn apply_step(&mut self, op_id: OpId, i: usize, step: Step, now: Instant) {
        let mut refresh = Refresh::Nothing;
        {
            let Some(entry) = self.ops.get_mut(&op_id) else {
                return;
            };
            let Some(item) = entry.items.get_mut(i) else {
                return;
            };
            if !matches!(item.state, ItemState::InFlight) {
                return; // a duplicate step for the same item: ignore
            }
            match step {
                Step::Done => item.state = ItemState::Done,
                Step::Fail(e) => item.state = ItemState::Failed(e),
                Step::Retry { error, refresh: r } => {
                    let wait = backoff(
                        self.config.retry_backoff,
                        self.config.retry_backoff_max,
                        item.attempts,
                        &mut self.rng,
                    );
                    tracing::debug!(operation = entry.name, attempt = item.attempts + 1, %error, "retrying");
                    item.attempts += 1;
                    item.last_error = Some(error);
                    item.state = ItemState::Backoff(now + wait);
                    refresh = r;
                    self.stats.retries += 1;
                }
            }
        }
        match refresh {
            Refresh::Nothing => {}
            Refresh::Metadata => self.want_metadata(now, None, true),
            Refresh::Leader { topic, partition } => {
                self.metadata.invalidate_leader(&topic, partition);
                self.want_metadata(now, Some(topic), true);
            }
            Refresh::Topic(topic) => {
                self.metadata.invalidate_topic(&topic);
                self.want_metadata(now, Some(topic), true);
            }
            Refresh::Coordinator { kind, key } => {
                self.coordinators.remove(&(kind, key));
            }
        }
    }

    fn maybe_finish(&mut self, op_id: OpId) {
        let done = self.ops.get(&op_id).is_some_and(|e| {
            e.items
                .iter()
                .all(|i| matches!(i.state, ItemState::Done | ItemState::Failed(_)))
        });
        if done && let Some(entry) = self.ops.remove(&op_id) {
            self.finish(op_id, entry);
        }
    }

    fn finish(&mut self, id: OpId, mut entry: OpEntry) {
        let failed: Vec<(usize, ClientError)> = entry
            .items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match &item.state {
                ItemState::Failed(e) => Some((i, e.clone())),
                _ => None,
            })
            .collect();
        let Some(mut op) = entry.op.take() else {
            return;
        };
        let group_reply = op.take_group_reply();
        let result = op.finish(failed);
        match entry.internal {
            None => {
                if let Err(e) = &result {
                    tracing::debug!(operation = entry.name, error = %e, "operation failed");
                }
                self.events.push_back(Event::Done { op: id, result });
            }
            Some(Internal::Metadata(n)) => {
                self.metadata.in_flight = false;
                let now = self.now;
                match result {
                    Ok(_) => {
                        self.metadata_answered = self.metadata_answered.max(n);
                        self.metadata_error = None;
                        self.wake_metadata_waiters();
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "metadata refresh failed");
                        self.metadata.last_failure = Some(now);
                        self.metadata_error = Some(e.clone());
                        // Waiting items retry the refresh, unless it can never work
                        // (credentials or certificates refused): then they fail.
                        let fatal = !e.is_retriable();
                        for op in self.ops.values_mut() {
                            for item in &mut op.items {
                                if let ItemState::WaitMetadata(_) = item.state {
                                    item.last_error = Some(e.clone());
                                    item.state = if fatal {
                                        ItemState::Failed(e.clone())
                                    } else {
                                        ItemState::Ready
                                    };
                                }
                            }
                        }
                        if fatal {
                            let ids: Vec<OpId> = self.ops.keys().copied().collect();
                            for id in ids {
                                self.maybe_finish(id);
                            }
                        } else {
                            self.want_metadata(now, None, true);
                        }
                    }
                }
            }
            Some(
                i
                @ (Internal::ConsumerOffset(..) | Internal::Validate(..) | Internal::Committed(_)),
            ) => {
                self.consumer_op_done(i, result);
            }
            Some(Internal::Group(n)) => {
                let reply = result.and_then(|_| group_reply.ok_or(ClientError::Closed));
                self.group_call_done(n, reply);
            }
            Some(Internal::GroupCommit(n)) => self.group_commit_done(n, result),
            Some(Internal::Txn(call)) => self.txn_call_done(call, result),
            Some(Internal::ProducerId) => {
                // Success was applied when the answer arrived (`Ctx::producer_id`).
                if let (Err(e), Some(p)) = (result, self.producer.as_mut()) {
                    p.on_producer_id(Err(e));
                }
                self.emit_deliveries();
            }
            Some(Internal::Coordinator(kind, key)) => {
                let known = matches!(
                    self.coordinators.get(&(kind, key.clone())),
                    Some(CoordState::Known(_))
                );
                let error = match result {
                    Err(e) => Some(e),
                    Ok(_) if known => None,
                    Ok(_) => Some(ClientError::InvalidResponse {
                        api: crate::messages::ApiKey::FindCoordinator,
                        detail: format!("no coordinator for {key}"),
                    }),
                };
                if error.is_some() {
                    self.coordinators.remove(&(kind, key.clone()));
                }
                let now = self.now;
                for op in self.ops.values_mut() {
                    for item in &mut op.items {
                        let waits = matches!(item.state, ItemState::WaitCoordinator)
                            && matches!(&item.target, Target::Coordinator { kind: k, key: q } if *k == kind && *q == key);
                        if !waits {
                            continue;
                        }
                        match &error {
                            None => item.state = ItemState::Ready,
                            Some(e) => {
                                item.last_error = Some(e.clone());
                                let wait = backoff(
                                    self.config.retry_backoff,
                                    self.config.retry_backoff_max,
                                    item.attempts,
                                    &mut self.rng,
                                );
                                item.attempts += 1;
                                item.state = ItemState::Backoff(now + wait);
                            }
                        }
                    }
                }
            }
        }
    }

    fn wake_metadata_waiters(&mut self) {
        let answered = self.metadata_answered;
        for op in self.ops.values_mut() {
            for item in &mut op.items {
                if let ItemState::WaitMetadata(n) = item.state
                    && answered >= n
                {
                    item.state = ItemState::Ready;
                }
            }
        }
    }

    /// Fails every item of operations whose deadline has passed.
    fn expire_ops(&mut self, now: Instant) {
        let expired: Vec<OpId> = self
            .ops
            .iter()
            .filter(|(_, e)| e.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let Some(mut entry) = self.ops.remove(&id) else {
                continue;
            };
            for item in &mut entry.items {
                if !matches!(item.state, ItemState::Done | ItemState::Failed(_)) {
                    item.state = ItemState::Failed(ClientError::Timeout {
                        operation: entry.name,
                        timeout: entry.timeout,
                        last_error: item.last_error.take().map(Box::new),
                    });
                }
            }
            self.finish(id, entry);
        }
    }

    fn close_idle(&mut self, now: Instant) {
        let idle: Vec<ConnId> = self
            .slots
            .iter()
            .filter(|(_, s)| {
                matches!(s.state, ConnState::Open { .. })
                    && !s.busy()
                    && s.last_active + self.config.connections_max_idle <= now
            })
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            if let Some(slot) = self.slots.remove(&id) {
                tracing::debug!(broker = %slot.label, "closing an idle connection");
                self.by_endpoint.remove(&(slot.endpoint, slot.lane));
                self.stats.disconnected(&slot.label);
                self.outputs.push_back(Output::Close { conn: id });
            }
        }
    }

    /// Asks for a metadata refresh including `topic` (or only brokers), debounced.
    fn want_metadata(&mut self, now: Instant, topic: Option<Arc<str>>, debounce: bool) {
        let mut first_ask = false;
        if let Some(t) = topic {
            first_ask = self.metadata.topic(&t).is_none() && self.metadata.asked.insert(t.clone());
            self.metadata.wanted.insert(t);
        }
        let last = self.metadata.last_update.max(self.metadata.last_failure);
        let earliest = match (debounce && !first_ask, last) {
            (true, Some(last)) => (last + self.config.metadata_min_interval).max(now),
            _ => now,
        };
        self.metadata.refresh_at = Some(
            self.metadata
                .refresh_at
                .map_or(earliest, |t| t.min(earliest)),
        );
    }

    /// Sends a metadata refresh if one is due and none is outstanding.
    fn maybe_refresh_metadata(&mut self, now: Instant) {
        if self.metadata.in_flight || self.metadata.refresh_at.is_none_or(|t| t > now) {
            return;
        }
        self.metadata.refresh_at = None;
        let topics: Option<Vec<Arc<str>>> = if std::mem::take(&mut self.metadata.want_all) {
            self.metadata.wanted.clear();
            None
        } else {
            let mut set: BTreeSet<Arc<str>> = std::mem::take(&mut self.metadata.wanted);
            set.extend(self.metadata.cached_names().cloned());
            Some(set.into_iter().collect())
        };
        self.metadata.in_flight = true;
        self.metadata_sent += 1;
        let n = self.metadata_sent;
        let op = ops::admin::MetadataRefresh::new(topics, self.config.allow_auto_topic_creation);
        let timeout = self.config.connection.request_timeout + self.config.connect_timeout;
        self.start_entry(
            now,
            Box::new(op),
            vec![Target::Any],
            Some(timeout),
            Some(Internal::Metadata(n)),
        );
    }

    /// Moves every ready item forward: resolve, group, send.
    fn drive(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        // The group member, the producer and the consumer first: what they start
        // (lookups, metadata wishes) is dispatched below, in this same call.
        self.drive_group(now);
        self.group_moved = false;
        self.drive_producer(now);
        self.drive_consumer(now);
        // Repeat while sending makes progress that may unblock more (a metadata
        // refresh started, a coordinator lookup started, a group call that ended
        // while being dispatched).
        for _ in 0..4 {
            self.maybe_refresh_metadata(now);
            let ids: Vec<OpId> = self.ops.keys().copied().collect();
            let mut progressed = false;
            for id in ids {
                progressed |= self.dispatch(id, now);
            }
            if std::mem::take(&mut self.group_moved) {
                self.drive_group(now);
                progressed = true;
            }
            // Resolving can make a refresh due now (stale metadata, a target waiting
            // for one): send it in the next round rather than leave poll_timeout at now.
            let refresh_due =
                !self.metadata.in_flight && self.metadata.refresh_at.is_some_and(|t| t <= now);
            if !progressed && !refresh_due {
                break;
            }
        }
    }

    /// Sends what can be sent of one operation; returns whether anything changed.
    fn dispatch(&mut self, id: OpId, now: Instant) -> bool {
        let mut groups: BTreeMap<(Endpoint, Lane), Vec<usize>> = BTreeMap::new();
        let mut changed = false;
        let mut to_fail: Vec<(usize, ClientError)> = Vec::new();
        let Some(entry) = self.ops.get(&id) else {
            return false;
        };
        let lane = entry.op.as_ref().map_or(Lane::Normal, |o| o.lane());
        let unknown = entry
            .op
            .as_ref()
            .map_or(UnknownTopicHandling::Error, |o| o.unknown_topic());
        let fresh = entry.fresh_metadata;
        let candidates: Vec<(usize, Target)> = entry
            .items
            .iter()
            .enumerate()
            .filter(|(_, item)| match item.state {
                ItemState::Ready => true,
                ItemState::Backoff(t) => t <= now,
                _ => false,
            })
            .map(|(i, item)| (i, item.target.clone()))
            .collect();
        // A backoff that has passed is over, whether or not the item can go now
        // (a past deadline left in place would make poll_timeout spin).
        for (i, _) in &candidates {
            if let Some(item) = self.ops.get_mut(&id).and_then(|e| e.items.get_mut(*i)) {
                item.state = ItemState::Ready;
            }
        }
        if candidates.is_empty() {
            return false;
        }
        for (i, target) in candidates {
            match self.resolve(&target, now, unknown, fresh) {
                Resolved::Endpoint(ep) => {
                    if let Some(b) = self.endpoint_backoff.get(&ep).filter(|b| b.until > now) {
                        let until = b.until;
                        if let Some(item) = self.item(id, i) {
                            item.state = ItemState::Backoff(until);
                        }
                        continue;
                    }
                    let lane = if matches!(ep, Endpoint::Bootstrap(_)) {
                        Lane::Normal
                    } else {
                        lane
                    };
                    groups.entry((ep, lane)).or_default().push(i);
                }
                Resolved::WaitMetadata(n) => {
                    if let Some(item) = self.item(id, i) {
                        item.state = ItemState::WaitMetadata(n);
                        changed = true;
                    }
                }
                Resolved::WaitCoordinator => {
                    if let Some(item) = self.item(id, i) {
                        item.state = ItemState::WaitCoordinator;
                        changed = true;
                    }
                }
                Resolved::Fail(e) => to_fail.push((i, e)),
            }
        }
        for (i, e) in to_fail {
            if let Some(item) = self.item(id, i) {
                item.state = ItemState::Failed(e);
                changed = true;
            }
        }
        for ((ep, lane), items) in groups {
            changed |= self.send_group(id, ep, lane, &items, now);
        }
        self.maybe_finish(id);
        changed
    }

    fn item(&mut self, op: OpId, i: usize) -> Option<&mut Item> {
        self.ops.get_mut(&op).and_then(|e| e.items.get_mut(i))
    }

    /// Sends one request for `items` to `ep`, opening a connection if needed.
    fn send_group(
        &mut self,
        id: OpId,
        ep: Endpoint,
        lane: Lane,
        items: &[usize],
        now: Instant,
    ) -> bool {
        let conn_id = match self.by_endpoint.get(&(ep, lane)) {
            Some(c) => *c,
            None => {
                let Some(c) = self.open(ep, lane, now) else {
                    return false;
                };
                c
            }
        };
        let Some(slot) = self.slots.get_mut(&conn_id) else {
            return false;
        };
        let ConnState::Open { conn, ready: true } = &mut slot.state else {
            return false; // sent once the connection is ready
        };
        let versions: Versions = conn.broker_versions().cloned().unwrap_or_default();
        let Some(entry) = self.ops.get_mut(&id) else {
            return false;
        };
        let Some(op) = entry.op.as_mut() else {
            return false;
        };
        let built = op.build(items, &versions, &self.metadata);
        let Built {
            request,
            max_version,
            hold,
            expected_response_bytes,
        } = match built {
            Ok(b) => b,
            Err(e) => {
                for i in items {
                    if let Some(item) = entry.items.get_mut(*i) {
                        item.state = ItemState::Failed(e.clone());
                    }
                }
                return true;
            }
        };
        let remaining = entry.deadline.saturating_duration_since(now);
        let timeout = (self.config.connection.request_timeout + hold)
            .min(remaining.max(Duration::from_millis(1)));
        let mut options = RequestOptions::timeout(timeout);
        options.max_version = max_version;
        options.expected_response_bytes = expected_response_bytes;
        let api = request.api_key();
        match conn.send_any(now, request, options) {
            Ok(corr) => {
                tracing::trace!(broker = %slot.label, ?api, corr, op = id.0, ?items, "sent");
                for i in items {
                    if let Some(item) = entry.items.get_mut(*i) {
                        item.state = ItemState::InFlight;
                    }
                }
                slot.waiters.insert(
                    corr,
                    Waiter {
                        owner: Owner::Op {
                            op: id,
                            items: items.to_vec(),
                        },
                        sent_at: now,
                    },
                );
                slot.last_active = now;
                self.stats.request(&slot.label);
                self.pump(conn_id, now);
                true
            }
            Err(UsageError::QueueFull { .. }) => false, // stays ready; retried later
            Err(e) => {
                for i in items {
                    if let Some(item) = entry.items.get_mut(*i) {
                        item.last_error = Some(ClientError::Usage(e.clone()));
                    }
                }
                false
            }
        }
    }

    /// Asks the runtime for a connection to `ep`.
    fn open(&mut self, ep: Endpoint, lane: Lane, now: Instant) -> Option<ConnId> {
        if self.closed {
            return None;
        }
        let (broker, address) = match ep {
            Endpoint::Bootstrap(i) => (None, self.bootstrap.get(i)?.clone()),
            Endpoint::Node(n) => {
                let b = self.metadata.broker(n)?;
                (
                    Some(n),
                    config::BrokerAddress {
                        host: b.host.clone(),
                        port: b.port,
                    },
                )
            }
        };
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let label: Arc<str> = match broker {
            Some(n) => format!("{n}@{address}").into(),
            None => format!("bootstrap@{address}").into(),
        };
        tracing::debug!(broker = %label, ?lane, "connecting");
        self.slots.insert(
            id,
            Slot {
                endpoint: ep,
                lane,
                label,
                state: ConnState::Connecting {
                    deadline: now + self.config.connect_timeout,
                },
                last_active: now,
                waiters: BTreeMap::new(),
            },
        );
        self.by_endpoint.insert((ep, lane), id);
        self.outputs.push_back(Output::Connect {
            conn: id,
            broker,
            host: address.host,
            port: address.port,
        });
        Some(id)
    }

    /// Where a target's request goes now, or what it waits for.
    fn resolve(
        &mut self,
        target: &Target,
        now: Instant,
        unknown: UnknownTopicHandling,
        fresh: u64,
    ) -> Resolved {
        let stale_after = self
            .metadata
            .last_update
            .map(|t| t + self.config.metadata_max_age);
        if stale_after.is_some_and(|t| t <= now)
            && self.metadata.refresh_at.is_none()
            && !self.metadata.in_flight
        {
            // Debounced like every other ask: right after a refresh failed (one
            // the broker refuses at once, say, for want of a Metadata version), an
            // undebounced ask is due at `now` again and the client spins.
            self.want_metadata(now, None, true);
        }
        match target {
            Target::Any => Resolved::Endpoint(self.any_endpoint(now)),
            Target::Broker(n) => {
                if self.metadata.broker(*n).is_some() {
                    Resolved::Endpoint(Endpoint::Node(*n))
                } else if self.metadata_answered >= fresh {
                    Resolved::Fail(ClientError::InvalidArgument(format!(
                        "no broker {n} in the cluster"
                    )))
                } else {
                    self.wait_metadata(now, None)
                }
            }
            Target::Controller => match self.metadata.controller() {
                Some(n) => Resolved::Endpoint(Endpoint::Node(n)),
                // Fresh metadata names no controller (some brokers never do): any
                // broker, which answers NOT_CONTROLLER if it cannot serve.
                None if self.metadata_answered >= fresh => {
                    Resolved::Endpoint(self.any_endpoint(now))
                }
                None => self.wait_metadata(now, None),
            },
            Target::Leader { topic, partition } => match self.metadata.leader(topic, *partition) {
                Leader::Known { node, .. } if self.config.planted_bug_route_to_first_replica => {
                    let first = self
                        .metadata
                        .topic(topic)
                        .and_then(|t| t.partitions.iter().find(|p| p.partition == *partition))
                        .and_then(|p| p.replicas.first().copied())
                        .filter(|n| self.metadata.broker(*n).is_some());
                    Resolved::Endpoint(Endpoint::Node(first.unwrap_or(node)))
                }
                Leader::Known { node, .. } => Resolved::Endpoint(Endpoint::Node(node)),
                Leader::NotLoaded | Leader::None => self.wait_metadata(now, Some(topic.clone())),
                Leader::UnknownTopic => {
                    if self.metadata_answered >= fresh && unknown == UnknownTopicHandling::Error {
                        Resolved::Fail(ClientError::UnknownTopic(topic.clone()))
                    } else {
                        self.wait_metadata(now, Some(topic.clone()))
                    }
                }
                Leader::UnknownPartition { count } => {
                    if self.metadata_answered >= fresh && unknown == UnknownTopicHandling::Error {
                        Resolved::Fail(ClientError::UnknownPartition {
                            topic: topic.clone(),
                            partition: *partition,
                            count,
                        })
                    } else {
                        self.wait_metadata(now, Some(topic.clone()))
                    }
                }
            },
            Target::Coordinator { kind, key } => match self.coordinators.get(&(*kind, key.clone()))
            {
                Some(CoordState::Known(n)) => {
                    if self.metadata.broker(*n).is_some() {
                        Resolved::Endpoint(Endpoint::Node(*n))
                    } else {
                        self.wait_metadata(now, None)
                    }
                }
                Some(CoordState::Looking) => Resolved::WaitCoordinator,
                None => {
                    self.coordinators
                        .insert((*kind, key.clone()), CoordState::Looking);
                    let op = ops::admin::FindCoordinator::new(*kind, key.clone());
                    self.start_entry(
                        now,
                        Box::new(op),
                        vec![Target::Any],
                        Some(self.config.connection.request_timeout + self.config.connect_timeout),
                        Some(Internal::Coordinator(*kind, key.clone())),
                    );
                    Resolved::WaitCoordinator
                }
            },
        }
    }

    fn wait_metadata(&mut self, now: Instant, topic: Option<Arc<str>>) -> Resolved {
        // The answer must come from a request sent after this point.
        let next = self.metadata_sent + 1;
        self.want_metadata(now, topic, true);
        Resolved::WaitMetadata(next)
    }

    /// A broker for a request any broker can answer: an open connection if there is
    /// one, else a known broker, else the next bootstrap address.
    fn any_endpoint(&mut self, now: Instant) -> Endpoint {
        let open = self
            .slots
            .values()
            .filter(|s| s.is_ready() && s.lane == Lane::Normal)
            .min_by_key(|s| s.waiters.len())
            .map(|s| s.endpoint);
        if let Some(ep) = open {
            return ep;
        }
        let connecting = self
            .slots
            .values()
            .find(|s| s.lane == Lane::Normal && matches!(s.state, ConnState::Connecting { .. }))
            .map(|s| s.endpoint);
        if let Some(ep) = connecting {
            return ep;
        }
        let usable = |ep: &Endpoint, backoff: &BTreeMap<Endpoint, EndpointBackoff>| {
            backoff.get(ep).is_none_or(|b| b.until <= now)
        };
        let nodes: Vec<Endpoint> = self
            .metadata
            .brokers()
            .map(|b| Endpoint::Node(b.id))
            .filter(|ep| usable(ep, &self.endpoint_backoff))
            .collect();
        if !nodes.is_empty() {
            return nodes[self.rng.below(nodes.len())];
        }
        let n = self.bootstrap.len().max(1);
        for k in 0..n {
            let ep = Endpoint::Bootstrap((self.next_bootstrap + k) % n);
            if usable(&ep, &self.endpoint_backoff) {
                return ep;
            }
        }
        // Everything is backing off: the soonest.
        let all = (0..n)
            .map(Endpoint::Bootstrap)
            .chain(self.metadata.brokers().map(|b| Endpoint::Node(b.id)));
        all.min_by_key(|ep| self.endpoint_backoff.get(ep).map(|b| b.until))
            .unwrap_or(Endpoint::Bootstrap(0))
    }
}

fn internal_is_none(ops: &BTreeMap<OpId, OpEntry>, id: OpId) -> bool {
    ops.get(&id).is_some_and(|e| e.internal.is_none())
}

enum Resolved {
    Endpoint(Endpoint),
    WaitMetadata(u64),
    WaitCoordinator,
    Fail(ClientError),
}
