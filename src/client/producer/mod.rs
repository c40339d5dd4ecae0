//! The producer: records handed over one at a time, batched per partition (linger,
//! byte and count limits, one byte budget for everything buffered), compressed,
//! sent per leader, retried, and reported back one delivery event per record.
//!
//! The shape is franz-go's: a record buffer per partition and, per broker, requests
//! carrying one batch for each partition it leads. With idempotence (the default)
//! every batch carries the producer id, epoch and its partition's next sequence
//! number; the broker drops duplicates, so retries never write a record twice. The
//! rules that keep that promise (after librdkafka#4953, KAFKA-12152, franz-go#223):
//! - at most `max_in_flight` batches per partition, but only one until the
//!   partition's first success (the broker may not know the producer yet);
//! - a batch that must be retried is sent again with the same sequence, and nothing
//!   later of its partition goes out before it: the partition waits until all its
//!   requests have answered, then resends in sequence order;
//! - an OUT_OF_ORDER_SEQUENCE or UNKNOWN_PRODUCER_ID answer (the broker lost or
//!   never had what came before) bumps the epoch once every partition has drained
//!   (KIP-360), and batches not yet acknowledged restart at sequence 0 under it;
//! - a batch whose outcome is unknown is never given a new sequence: it is retried
//!   as it was until its delivery timeout, then reported as failed;
//! - a batch that fails with sequence numbers (its delivery timeout, a fatal error)
//!   bumps the epoch as well, as the Java client does for an expired batch: the
//!   broker would refuse everything after the gap it leaves;
//! - DUPLICATE_SEQUENCE_NUMBER is a success (the broker has the records).

mod aggregator;
mod partitioner;
mod queue;
mod transaction;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

pub use aggregator::{
    Aggregator, BatchProducer, Demux, ItemId, ItemOutput, Push, RecordAggregator, RecordDemux,
};
pub use partitioner::{Partitioner, TopicPartitions, murmur2, partition_for_key};

use crate::messages::{ApiKey, ErrorCode, ProduceRequest, ProduceResponse, produce_request};
use crate::records::{AppendError, BatchConfig, Compression, NewHeader, NewRecord, OpenBatch};

use super::ClientError;
use super::ops::partition::RecordHeader;
use super::rng::Rng;
use partitioner::Sticky;
#[cfg(all(test, any(feature = "tokio", feature = "smol", feature = "blocking")))]
pub(crate) use queue::COPIED_QUEUE_RECORDS;
pub use queue::{BorrowedRecord, RecordBuffer};
pub(crate) use queue::{QueuedRecord, RecordChain, RecordQueue};
pub(crate) use transaction::{Txn, TxnWant, is_fatal};

/// How the producer batches, retries and acknowledges. Defaults follow librdkafka's
/// and the Java client's.
///
/// ```
/// use std::time::Duration;
/// use kafka_sansio::client::ProducerConfig;
/// use kafka_sansio::records::Compression;
///
/// let mut config = ProducerConfig::default();
/// config.linger = Duration::from_millis(20);
/// config.compression = Compression::Zstd;
/// assert!(config.idempotence, "idempotence is on by default");
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// Acknowledgements: `-1` all in-sync replicas (required by idempotence), `1`
    /// the leader, `0` none.
    pub acks: i16,
    /// Idempotent writes (no duplicates, no reordering on retry). On by default.
    pub idempotence: bool,
    /// How long a partition's first record waits for more before its batch is sent.
    pub linger: Duration,
    /// Largest batch (uncompressed); also the largest record accepted.
    pub batch_max_bytes: usize,
    /// Most records in one batch.
    pub batch_max_records: usize,
    /// Bytes buffered across all partitions (records not yet acknowledged); a send
    /// over it is refused at once with [`SendError::BufferFull`]. The facades'
    /// producer counts records waiting to enter it in the same budget: its
    /// `send_when_room` waits for room and `try_send` gives the record back.
    pub buffer_max_bytes: usize,
    /// Largest Produce request; several partitions' batches share one up to it.
    pub request_max_bytes: usize,
    /// Batches in flight per partition (at most 5 with idempotence, as Kafka keeps
    /// the last five per producer).
    pub max_in_flight: usize,
    /// The codec.
    pub compression: Compression,
    /// The codec's level (`None`: its default).
    pub compression_level: Option<i32>,
    /// How long a record may take from `send` to its delivery, retries included;
    /// then it fails with a timeout.
    pub delivery_timeout: Duration,
    /// How long a broker may wait for replication (`timeout_ms` of Produce).
    pub broker_timeout: Duration,
    /// Chooses partitions for records without one (the default is Java-compatible:
    /// murmur2 for keys, KIP-794 sticky for null keys).
    pub partitioner: Option<Arc<std::sync::Mutex<dyn Partitioner>>>,
    /// Makes the producer transactional (`transactional.id`: none): records are
    /// sent only inside a transaction, which commits or aborts as a whole, and a
    /// newer producer with the same id fences this one. Needs idempotence. See
    /// [`Client::init_transactions`](super::Client::init_transactions).
    pub transactional_id: Option<String>,
    /// How long the coordinator lets a transaction stay open before it aborts it
    /// (`transaction.timeout.ms`: 60 s).
    pub transaction_timeout: Duration,
    /// A planted bug, for proving that the simulation suite catches a sequence error
    /// (`tests/producer_invariants.rs`): a batch whose request failed without an
    /// answer (reset connection, request timeout), so that it may have been written,
    /// is treated as not written: the epoch is bumped and it is sent again under a
    /// new sequence, which the broker cannot recognise as a duplicate. Never set this
    /// outside such a test.
    #[doc(hidden)]
    pub planted_bug_renumber_unknown_outcome: bool,
    /// A planted bug, for proving that `tests/transactions_invariants.rs` catches a
    /// commit that does not wait for its records: EndTxn goes out as soon as the
    /// commit is asked, while batches are still buffered or on the wire. Never set
    /// this outside such a test.
    #[doc(hidden)]
    pub planted_bug_commit_before_records_settle: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            acks: -1,
            idempotence: true,
            linger: Duration::from_millis(5),
            batch_max_bytes: 1024 * 1024,
            batch_max_records: 10_000,
            buffer_max_bytes: 32 * 1024 * 1024,
            request_max_bytes: 1024 * 1024,
            max_in_flight: 5,
            compression: Compression::None,
            compression_level: None,
            delivery_timeout: Duration::from_secs(120),
            broker_timeout: Duration::from_secs(30),
            partitioner: None,
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
            planted_bug_renumber_unknown_outcome: false,
            planted_bug_commit_before_records_settle: false,
        }
    }
}

impl std::fmt::Debug for ProducerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerConfig")
            .field("acks", &self.acks)
            .field("idempotence", &self.idempotence)
            .field("linger", &self.linger)
            .field("batch_max_bytes", &self.batch_max_bytes)
            .field("buffer_max_bytes", &self.buffer_max_bytes)
            .field("compression", &self.compression)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("custom_partitioner", &self.partitioner.is_some())
            .field("transactional_id", &self.transactional_id)
            .finish_non_exhaustive()
    }
}

/// A record for the producer: where it goes and what it holds.
///
/// ```
/// use kafka_sansio::client::ProducerRecord;
/// let r = ProducerRecord::new("orders", "paid").key("order-17").header("source", "web");
/// assert_eq!(r.partition, None); // the partitioner decides
/// let pinned = ProducerRecord::new("orders", "paid").partition(2);
/// assert_eq!(pinned.partition, Some(2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition, or `None` for the partitioner's choice.
    pub partition: Option<i32>,
    /// The key (`None` for null).
    pub key: Option<Bytes>,
    /// The value (`None` for a tombstone).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<RecordHeader>,
    /// Milliseconds since the epoch; `None` is filled in by the facades (the core
    /// writes `-1`).
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with this value for `topic`.
    ///
    /// ```
    /// use kafka_sansio::client::ProducerRecord;
    /// let r = ProducerRecord::new("orders", "paid");
    /// assert_eq!((&*r.topic, r.key, r.partition), ("orders", None, None));
    /// ```
    #[must_use]
    pub fn new(topic: impl Into<Arc<str>>, value: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the key.
    ///
    /// ```
    /// use kafka_sansio::client::{ProducerRecord, partition_for_key};
    /// // Keyed records go where Java's producer would send them: murmur2 of the key.
    /// let r = ProducerRecord::new("orders", "paid").key("order-17");
    /// assert_eq!(r.key.as_deref(), Some(&b"order-17"[..]));
    /// assert!((0..6).contains(&partition_for_key(b"order-17", 6)));
    /// ```
    #[must_use]
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Pins the partition.
    ///
    /// ```
    /// use kafka_sansio::client::ProducerRecord;
    /// assert_eq!(ProducerRecord::new("orders", "paid").partition(2).partition, Some(2));
    /// ```
    #[must_use]
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    ///
    /// ```
    /// use kafka_sansio::client::ProducerRecord;
    /// let r = ProducerRecord::new("orders", "paid").header("source", "web");
    /// assert_eq!(r.headers[0].key, "source");
    /// ```
    #[must_use]
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(RecordHeader {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// Sets the timestamp.
    ///
    /// ```
    /// use kafka_sansio::client::ProducerRecord;
    /// let r = ProducerRecord::new("orders", "paid").timestamp(1_700_000_000_000);
    /// assert_eq!(r.timestamp, Some(1_700_000_000_000));
    /// ```
    #[must_use]
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }
}

/// Names one record handed to [`Client::send`](super::Client::send); its
/// [`Event::Delivered`](super::Event::Delivered) carries the same id.
///
/// ```
/// use kafka_sansio::client::{Client, ClientConfig, ProducerRecord};
/// # #[allow(clippy::disallowed_methods)]
/// let now = std::time::Instant::now();
/// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
/// let a = client.send(now, ProducerRecord::new("orders", "a"))?;
/// let b = client.send(now, ProducerRecord::new("orders", "b"))?;
/// assert!(a < b); // ids grow; Event::Delivered names the record by it
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(pub u64);

/// Where a record landed.
///
/// ```
/// # #[cfg(feature = "sim")] {
/// # let (mut sim, host) = kafka_sansio::doc_support::sim();
/// use std::time::Duration;
/// use kafka_sansio::client::{Event, ProducerRecord};
/// let now = sim.now();
/// sim.client(host).send(now, ProducerRecord::new("orders", "paid").partition(1).timestamp(1_700_000_000_000))?;
/// let mut written = None;
/// sim.run_until(Duration::from_secs(10), |sim| {
///     for e in sim.client_events(host) {
///         if let Event::Delivered { result, .. } = e {
///             written = Some(result);
///         }
///     }
///     written.is_some()
/// });
/// let meta = written.unwrap()?;
/// assert_eq!((&*meta.topic, meta.partition, meta.offset, meta.timestamp), ("orders", 1, Some(0), 1_700_000_000_000));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// Its offset (`None` with acks=0, or when the broker reported the batch as a
    /// duplicate without its offset).
    pub offset: Option<i64>,
    /// Its timestamp (the broker's append time if the topic uses log-append time).
    pub timestamp: i64,
}

/// Why [`Client::send`](super::Client::send) refused a record at once.
///
/// ```
/// use kafka_sansio::client::{Client, ClientConfig, ProducerRecord, SendError};
/// # #[allow(clippy::disallowed_methods)]
/// let now = std::time::Instant::now();
/// let mut config = ClientConfig::new("localhost:9092")?;
/// config.producer.batch_max_bytes = 1024;
/// let mut client = Client::new(config, now);
/// let error = client.send(now, ProducerRecord::new("orders", vec![0u8; 4096])).unwrap_err();
/// assert!(matches!(error, SendError::RecordTooLarge { .. }));
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The byte budget ([`ProducerConfig::buffer_max_bytes`]) is used up; try again
    /// once deliveries free some.
    #[error("the producer buffer is full ({buffered} of {limit} bytes)")]
    BufferFull {
        /// Bytes buffered now.
        buffered: usize,
        /// The budget.
        limit: usize,
    },
    /// The record alone is larger than a batch may be
    /// ([`ProducerConfig::batch_max_bytes`]) or than the whole byte budget
    /// ([`ProducerConfig::buffer_max_bytes`]).
    #[error("record of {size} bytes is larger than the {limit}-byte limit")]
    RecordTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The configuration cannot work (idempotence without acks=all, ...).
    #[error("invalid producer configuration: {0}")]
    InvalidConfig(String),
    /// The producer was closed.
    #[error("the producer is closed")]
    Closed,
    /// A transactional producer refused the record: no transaction is open, or
    /// it must be aborted first.
    #[error(transparent)]
    Transaction(super::TransactionError),
}

/// A topic's records waiting for its metadata: the records, compact, and beside
/// them each one's id, budget bytes and deadline, in the same order.
#[derive(Debug)]
struct Unrouted {
    /// Each chunk is freed as routing empties it: the batches the records go
    /// into grow as the chunks go.
    records: RecordChain,
    waiting: VecDeque<Waiting>,
}

impl Default for Unrouted {
    fn default() -> Self {
        Self {
            records: RecordChain::keeping(0),
            waiting: VecDeque::new(),
        }
    }
}

/// One record waiting for its topic's metadata.
#[derive(Debug)]
struct Waiting {
    id: RecordId,
    size: usize,
    deadline: Instant,
}

impl Unrouted {
    fn pop_front(&mut self) -> Option<Waiting> {
        self.records.pop_front();
        self.waiting.pop_front()
    }
}

/// A sealed batch: its records' ids and timestamps, and its bytes.
#[derive(Debug)]
pub(crate) struct Batch {
    ids: Vec<(RecordId, i64)>,
    bytes: Bytes,
    /// Budget bytes it holds.
    size: usize,
    base_sequence: i32,
    epoch: i16,
    deadline: Instant,
    attempts: u32,
    /// Whether a request with it may have reached the broker (its outcome unknown).
    maybe_written: bool,
    /// Whether an attempt ended without a definite answer (the connection went away,
    /// the request or the replication timed out): it may be in the log whatever
    /// later attempts are told, so it is never renumbered.
    unknown: bool,
    /// The last retriable error, for the timeout report.
    last_error: Option<ClientError>,
}

/// The batch a partition's records are encoded into as they come.
#[derive(Debug)]
struct Open {
    batch: OpenBatch,
    /// Its records' ids and timestamps.
    ids: Vec<(RecordId, i64)>,
    /// Budget bytes of its records.
    size: usize,
    /// When its first record came: linger counts from then.
    since: Instant,
    /// The earliest delivery deadline of its records.
    deadline: Instant,
}

/// One partition's buffer and sending state.
#[derive(Debug, Default)]
struct PartBuf {
    open: Option<Open>,
    /// Records and bytes of the last batch sealed here: the next open batch is
    /// sized for as much, so that it rarely grows (and copies) while filling.
    last_sealed: (usize, usize),
    /// Sealed batches not in flight, in sequence order (retries first).
    ready: VecDeque<Batch>,
    /// Batches in flight, in sequence order.
    in_flight: VecDeque<Batch>,
    /// The broker connection its in-flight batches went to.
    in_flight_node: Option<i32>,
    next_sequence: i32,
    /// Succeeded batches (idempotence allows more than one in flight after the first).
    successes: u64,
    /// A batch failed retriably: send nothing until `in_flight` drains.
    draining: bool,
    /// No retry before this.
    backoff_until: Option<Instant>,
    /// A sequence error here: it waits for the epoch bump.
    needs_bump: bool,
}

/// A Produce request on the wire: which partitions' batches it carries.
#[derive(Debug)]
pub(crate) struct InFlightRequest {
    partitions: Vec<(Arc<str>, i32)>,
}

/// The producer id and epoch, for idempotence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProducerId {
    /// Not needed (idempotence off) or not asked for yet.
    None,
    /// InitProducerId is outstanding.
    Requesting,
    /// Known.
    Ready { id: i64, epoch: i16 },
    /// An epoch bump is needed once every partition has drained.
    BumpWanted { id: i64, epoch: i16 },
}

/// What the producer asks of the client when it drives.
#[allow(clippy::large_enum_variant)] // built a few at a time, moved once
pub(crate) enum Want {
    /// Metadata of this topic is needed.
    Metadata(Arc<str>),
    /// A Produce request for these partitions to this broker.
    Send {
        node: i32,
        request: ProduceRequest,
        req: InFlightRequest,
        timeout: Duration,
    },
    /// InitProducerId: a producer id and epoch are needed.
    InitProducerId,
    /// A connection to this broker's produce lane is needed.
    Connect(i32),
    /// The transaction needs the coordinator.
    Txn(TxnWant),
}

/// A delivery: the record's id and where it landed, or why not.
pub(crate) type Delivery = (RecordId, Result<RecordMetadata, ClientError>);

/// A batch the broker wrote: its records' deliveries, reported together (one entry
/// per batch, not per record, on the producer's hottest path).
#[derive(Debug)]
pub(crate) struct WrittenBatch {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    /// The records' ids and timestamps, in offset order.
    pub(crate) ids: Vec<(RecordId, i64)>,
    /// The first record's offset (`None`: acks=0, or a duplicate reported without it).
    pub(crate) base_offset: Option<i64>,
    /// The broker's append time, if the topic uses it.
    pub(crate) append_time: Option<i64>,
}

impl WrittenBatch {
    /// Each record's id, offset (`None` if the batch's is not known) and timestamp
    /// (the broker's append time, if the topic uses it).
    pub(crate) fn reports(&self) -> impl Iterator<Item = (RecordId, Option<i64>, i64)> + '_ {
        self.ids.iter().enumerate().map(|(i, &(id, ts))| {
            let offset = self.base_offset.map(|b| b + i as i64);
            (id, offset, self.append_time.unwrap_or(ts))
        })
    }

    /// Each record's delivery, as an event's [`RecordMetadata`].
    pub(crate) fn each(self, mut f: impl FnMut(RecordId, Result<RecordMetadata, ClientError>)) {
        // The batch's reports share a copy of the name of their own: an application
        // may drop them on other threads while the client goes on with the
        // producer's copy, and one count for both would be a contended cache line.
        let topic: Arc<str> = Arc::from(&*self.topic);
        for (id, offset, timestamp) in self.reports() {
            let meta = RecordMetadata {
                topic: topic.clone(),
                partition: self.partition,
                offset,
                timestamp,
            };
            f(id, Ok(meta));
        }
    }
}

/// The producer's state; the [`Client`](super::Client) drives it.
pub(crate) struct Producer {
    pub(crate) config: ProducerConfig,
    /// Buffers of acknowledged batches, for the next open batches to fill (at
    /// most [`KEPT_BATCH_BUFFERS`]).
    spare_batches: Vec<BytesMut>,
    /// Where records without a partition go: the built-in scheme (with its seeded
    /// random source), or the application's partitioner.
    placement: Placement,
    next_id: u64,
    buffered: usize,
    /// Records whose topic's metadata is not known yet.
    unrouted: BTreeMap<Arc<str>, Unrouted>,
    parts: BTreeMap<(Arc<str>, i32), PartBuf>,
    pub(crate) pid: ProducerId,
    flushing: bool,
    /// Records that failed (or were written without their batch: duplicates).
    pub(crate) deliveries: VecDeque<Delivery>,
    /// Batches written, their records not yet reported.
    pub(crate) written: VecDeque<WrittenBatch>,
    retries: u64,
    /// Topics routed to, with their metadata as of the last drive: a record for one
    /// of them goes straight into its partition's open batch. Keyed by the
    /// producer's own copy of each name, which partitions, batches and delivery
    /// reports share: the application's copy, which its threads clone per record,
    /// is not touched again.
    views: BTreeMap<Arc<str>, Routed>,
    /// The metadata generation `views` were last refreshed at: they are rebuilt
    /// only when the metadata changed, not on every drive (each rebuild allocates
    /// a view per topic, and a paced producer drives once per record).
    views_generation: Option<u64>,
    /// A transactional producer's transaction.
    pub(crate) txn: Option<Txn>,
}

/// Where records without a partition go.
enum Placement {
    /// Murmur2 for keys, sticky for null keys ([`Sticky`], kept per topic in
    /// [`Routed`]); switching partitions after `switch_after` bytes.
    BuiltIn { rng: Rng, switch_after: usize },
    /// The application's.
    Custom(Arc<std::sync::Mutex<dyn Partitioner>>),
}

impl Placement {
    /// The partition for `record` (of `size` bytes) in a topic routed as `routed`.
    fn choose(&mut self, routed: &mut Routed, record: &BorrowedRecord<'_>, size: usize) -> i32 {
        let partitions = TopicPartitions {
            count: routed.view.count,
            available: &routed.view.available,
        };
        match self {
            Self::BuiltIn { rng, switch_after } => {
                let p = routed
                    .sticky
                    .partition(rng, *switch_after, record.key, partitions);
                if record.key.is_none() {
                    routed.sticky.appended(p, size);
                }
                p
            }
            Self::Custom(custom) => {
                let mut custom = custom
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let p = custom.partition(record.topic, record.key, partitions);
                custom.on_append(record.topic, p, size);
                p
            }
        }
    }
}

/// A partition's key, `(topic, partition)`, as the partition map stores it or
/// borrowed: the map is searched by a borrowed name, without a reference count
/// touched per record.
trait PartKey {
    fn parts(&self) -> (&str, i32);
}

impl PartKey for (Arc<str>, i32) {
    fn parts(&self) -> (&str, i32) {
        (&self.0, self.1)
    }
}

impl PartKey for (&str, i32) {
    fn parts(&self) -> (&str, i32) {
        (self.0, self.1)
    }
}

impl<'a> std::borrow::Borrow<dyn PartKey + 'a> for (Arc<str>, i32) {
    fn borrow(&self) -> &(dyn PartKey + 'a) {
        self
    }
}

// Ordered as `(Arc<str>, i32)` is (by name, then partition), as `Borrow` requires.
impl PartialEq for dyn PartKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn PartKey + '_ {}

impl PartialOrd for dyn PartKey + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn PartKey + '_ {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.parts().cmp(&other.parts())
    }
}

/// A routed topic: its metadata and the built-in partitioner's state for it.
struct Routed {
    /// The producer's own copy of the name (see [`Producer::views`]).
    topic: Arc<str>,
    view: TopicViewOwned,
    sticky: Sticky,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("buffered", &self.buffered)
            .field("partitions", &self.parts.len())
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Producer {
    pub(crate) fn new(config: ProducerConfig, seed: u64) -> Self {
        let placement = match &config.partitioner {
            Some(custom) => Placement::Custom(custom.clone()),
            None => Placement::BuiltIn {
                rng: Rng::new(seed ^ 0x5EED_0F5A_171C_E5A1),
                switch_after: config.batch_max_bytes.max(1),
            },
        };
        Self {
            placement,
            next_id: 0,
            buffered: 0,
            unrouted: BTreeMap::new(),
            spare_batches: Vec::new(),
            parts: BTreeMap::new(),
            pid: ProducerId::None,
            flushing: false,
            deliveries: VecDeque::new(),
            written: VecDeque::new(),
            retries: 0,
            views: BTreeMap::new(),
            views_generation: None,
            txn: config.transactional_id.as_deref().map(|id| {
                let mut t = Txn::new(id);
                t.planted_early_commit = config.planted_bug_commit_before_records_settle;
                t
            }),
            config,
        }
    }

    /// Bytes buffered now (records not yet delivered).
    pub(crate) fn buffered(&self) -> usize {
        self.buffered
    }

    /// Records handed over and not yet delivered.
    pub(crate) fn pending_records(&self) -> usize {
        let unrouted: usize = self.unrouted.values().map(|u| u.waiting.len()).sum();
        let parts: usize = self
            .parts
            .values()
            .map(|p| {
                p.open.as_ref().map_or(0, |o| o.ids.len())
                    + p.ready.iter().map(|b| b.ids.len()).sum::<usize>()
                    + p.in_flight.iter().map(|b| b.ids.len()).sum::<usize>()
            })
            .sum();
        unrouted + parts
    }

    /// Per partition: records buffered (not yet sent) and batches in flight.
    pub(crate) fn partition_stats(&self) -> Vec<(Arc<str>, i32, usize, usize)> {
        self.parts
            .iter()
            .map(|((t, p), b)| {
                let buffered = b.open.as_ref().map_or(0, |o| o.ids.len())
                    + b.ready.iter().map(|x| x.ids.len()).sum::<usize>();
                (t.clone(), *p, buffered, b.in_flight.len())
            })
            .collect()
    }

    #[allow(dead_code)]
    pub(crate) fn dump(&self, now: Instant) -> String {
        let mut out = format!("pid {:?} unrouted {}\n", self.pid, self.unrouted.len());
        for ((t, p), b) in &self.parts {
            out += &format!(
                "{t}/{p}: open {} draining {} backoff {:?} needs_bump {} next_seq {} successes {}\n",
                b.open.as_ref().map_or(0, |o| o.ids.len()),
                b.draining,
                b.backoff_until.map(|x| x.saturating_duration_since(now)),
                b.needs_bump,
                b.next_sequence,
                b.successes
            );
            for (k, q) in [("ready", &b.ready), ("inflight", &b.in_flight)] {
                for x in q.iter() {
                    out += &format!(
                        "  {k} ids {:?}.. n{} seq {} ep {} deadline_in {:?} past {:?} unknown {} mw {} attempts {}\n",
                        x.ids.first().map(|i| i.0),
                        x.ids.len(),
                        x.base_sequence,
                        x.epoch,
                        x.deadline.saturating_duration_since(now),
                        now.saturating_duration_since(x.deadline),
                        x.unknown,
                        x.maybe_written,
                        x.attempts
                    );
                }
            }
        }
        out
    }

    pub(crate) fn retries(&self) -> u64 {
        self.retries
    }

    fn check_config(&self) -> Result<(), SendError> {
        if self.config.idempotence && self.config.acks != -1 {
            return Err(SendError::InvalidConfig(
                "idempotence needs acks=-1 (all)".into(),
            ));
        }
        if self.txn.is_some() && !self.config.idempotence {
            return Err(SendError::InvalidConfig(
                "a transactional producer needs idempotence".into(),
            ));
        }
        if let Some(e) = self.txn.as_ref().and_then(Txn::refuse_send) {
            return Err(SendError::Transaction(e));
        }
        Ok(())
    }

    /// Takes a record: refused at once (and handed back) if it cannot fit,
    /// buffered otherwise.
    #[allow(clippy::result_large_err)] // the record comes back by value, to be sent again
    pub(crate) fn send(
        &mut self,
        now: Instant,
        record: ProducerRecord,
    ) -> Result<RecordId, (SendError, ProducerRecord)> {
        let id = RecordId(self.next_id);
        self.send_as(now, record, id)?;
        Ok(id)
    }

    /// As [`send`](Self::send), with the caller's id for the record (ids grow).
    #[allow(clippy::result_large_err)] // as send
    pub(crate) fn send_as(
        &mut self,
        now: Instant,
        record: ProducerRecord,
        id: RecordId,
    ) -> Result<(), (SendError, ProducerRecord)> {
        // A large key or value waiting for metadata keeps its handle, not a copy.
        let deadline = now + self.config.delivery_timeout;
        match self.send_queued(now, &QueuedRecord::of(&record), id, deadline) {
            Ok(_) => Ok(()),
            Err(e) => Err((e, record)),
        }
    }

    /// As [`send_as`](Self::send_as), with the record borrowed: on success it is
    /// encoded, or kept until its topic's metadata comes: a copy of its bytes, and
    /// the key and value handles it comes with (shared, not copied). It fails at
    /// `deadline` if not delivered by then; a batch it opens lingers from `arrived`
    /// (when it was handed over: now, or before). Returns the bytes it takes of the
    /// budget.
    pub(crate) fn send_queued(
        &mut self,
        arrived: Instant,
        queued: &QueuedRecord<'_>,
        id: RecordId,
        deadline: Instant,
    ) -> Result<usize, SendError> {
        let record = &queued.fields;
        self.check_config()?;
        let size = record.size();
        let limit = self.config.batch_max_bytes;
        if size + crate::records::BATCH_HEADER_LEN > limit {
            return Err(SendError::RecordTooLarge { size, limit });
        }
        // Larger than the whole budget: no amount of waiting makes room for it.
        let limit = self.config.buffer_max_bytes;
        if size > limit {
            return Err(SendError::RecordTooLarge { size, limit });
        }
        if self.buffered + size > self.config.buffer_max_bytes {
            return Err(SendError::BufferFull {
                buffered: self.buffered,
                limit: self.config.buffer_max_bytes,
            });
        }
        self.next_id = self.next_id.max(id.0 + 1);
        self.buffered += size;
        let topic: &str = record.topic;
        // A topic routed to before, with nothing of it waiting for metadata: the
        // record is encoded into its partition's open batch now, and only its
        // encoded bytes are kept.
        if !self.unrouted.contains_key(topic)
            && let Some(routed) = self.views.get_mut(topic)
        {
            let count = routed.view.count;
            let partition = match record.partition {
                Some(p) => p,
                None => self.placement.choose(routed, record, size),
            };
            self.place(arrived, topic, partition, count, id, record, size, deadline);
            return Ok(size);
        }
        let queue = match self.unrouted.get_mut(topic) {
            Some(queue) => queue,
            None => self.unrouted.entry(Arc::from(topic)).or_default(),
        };
        queue.records.push_queued(queued);
        queue.waiting.push_back(Waiting { id, size, deadline });
        Ok(size)
    }

    /// Sends every buffered batch without waiting for linger.
    pub(crate) fn flush(&mut self) {
        self.flushing = true;
    }

    /// The next deadline: linger, backoff, or delivery timeout. (A connection waiting
    /// out its broker's backoff wakes the client through `Client::connect_lane`.)
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for q in self.unrouted.values() {
            if let Some(p) = q.waiting.front() {
                at(p.deadline);
            }
        }
        for b in self.parts.values() {
            if let Some(open) = &b.open {
                at(open.since + self.config.linger);
                at(open.deadline);
            }
            for r in &b.ready {
                at(r.deadline);
            }
            if let Some(t) = b.backoff_until {
                at(t);
            }
        }
        if let Some(t) = self.txn.as_ref().and_then(Txn::next_deadline) {
            at(t);
        }
        next
    }

    /// Moves records forward: route to partitions, seal batches, expire what timed
    /// out, and say what to send.
    pub(crate) fn drive(
        &mut self,
        now: Instant,
        metadata_generation: u64,
        topic: &dyn Fn(&str) -> Option<TopicViewOwned>,
        node_ready: &dyn Fn(i32) -> bool,
        wants: &mut Vec<Want>,
    ) {
        let queued = self.deliveries.len();
        self.route(now, metadata_generation, topic, wants);
        self.expire(now);
        let mut may_send = true;
        if self.config.idempotence {
            match self.pid {
                // A transactional producer's id comes from init_transactions.
                ProducerId::None if self.txn.is_some() => may_send = false,
                ProducerId::None => {
                    may_send = false;
                    if self.pending_records() > 0 {
                        self.pid = ProducerId::Requesting;
                        wants.push(Want::InitProducerId);
                    }
                }
                ProducerId::Requesting => may_send = false,
                ProducerId::BumpWanted { id, epoch } => {
                    let settled = self.parts.values().all(|p| {
                        p.in_flight.is_empty()
                            && !p.ready.iter().any(|b| b.unknown)
                            && (p.needs_bump || !p.ready.iter().any(|b| b.maybe_written))
                    });
                    if settled {
                        // An idempotent (not transactional) producer bumps its epoch
                        // itself, as Java's does (KIP-360): the broker takes a higher
                        // epoch starting at sequence 0. Only an exhausted epoch needs
                        // a new producer id.
                        if epoch < i16::MAX - 1 {
                            self.on_producer_id(Ok((id, epoch + 1)));
                        } else {
                            self.pid = ProducerId::Requesting;
                            wants.push(Want::InitProducerId);
                            may_send = false;
                        }
                    }
                }
                ProducerId::Ready { .. } => {}
            }
        }
        // A passed backoff is over, whatever else holds the partition (left in
        // place, a past deadline would make poll_timeout spin).
        for buf in self.parts.values_mut() {
            if buf.backoff_until.is_some_and(|t| t <= now) {
                buf.backoff_until = None;
            }
        }
        // Batches sealed before the producer id is known carry none; they are
        // stamped with it (and their sequences) when it arrives.
        self.seal(now);
        self.txn_failed_since(queued);
        if let Some(t) = self.txn.as_mut() {
            // Partitions with records are added to the transaction as soon as
            // records wait for them, so the round trip overlaps the linger.
            let new: Vec<(Arc<str>, i32)> = self
                .parts
                .iter()
                .filter(|(k, b)| (b.open.is_some() || !b.ready.is_empty()) && !t.may_send(k))
                .map(|(k, _)| k.clone())
                .collect();
            if !new.is_empty()
                && let Some(w) = t.want_added(new)
            {
                wants.push(Want::Txn(w));
            }
        }
        if may_send {
            self.build_requests(topic, node_ready, wants);
        }
        if self.txn.is_some() {
            let idle = self.pending_records() == 0;
            if let Some(w) = self.txn.as_mut().and_then(|t| t.drive(now, idle)) {
                wants.push(Want::Txn(w));
            }
            // A fenced producer sends nothing more: what it holds fails now, not at
            // its delivery timeout.
            if let Some(e) = self.txn.as_ref().and_then(Txn::fatal_error)
                && !idle
            {
                let e =
                    ClientError::Transaction(super::TransactionError::Fatal(Box::new(e.clone())));
                self.fail_all(&e);
            }
        }
        if self.flushing
            && self.parts.values().all(|p| p.open.is_none())
            && self.unrouted.is_empty()
        {
            self.flushing = false;
        }
    }

    /// Records failed since the deliveries queue held `before` (a timeout before
    /// their batch was sealed, a batch that could not be encoded): the transaction
    /// they were in can only be aborted.
    fn txn_failed_since(&mut self, before: usize) {
        if let Some(t) = self.txn.as_mut()
            && let Some((_, Err(e))) = self
                .deliveries
                .range(before.min(self.deliveries.len())..)
                .find(|(_, r)| r.is_err())
        {
            t.record_failed(e);
        }
    }

    /// Fails every record not yet sent with [`TransactionError::Aborted`]
    /// (`abort_transaction`); batches on the wire settle as they answer.
    ///
    /// [`TransactionError::Aborted`]: super::TransactionError::Aborted
    pub(crate) fn abort_unsent(&mut self) {
        let error = ClientError::Transaction(super::TransactionError::Aborted);
        self.fail_all(&error);
    }

    /// Gives records without a partition theirs, once their topic's metadata is known.
    fn route(
        &mut self,
        now: Instant,
        metadata_generation: u64,
        topic: &dyn Fn(&str) -> Option<TopicViewOwned>,
        wants: &mut Vec<Want>,
    ) {
        // What `send` routes by at once is refreshed from the metadata whenever it
        // changed (every change bumps its generation).
        if self.views_generation != Some(metadata_generation) {
            self.views_generation = Some(metadata_generation);
            self.views
                .retain(|name, routed| match topic(name).filter(|v| v.count > 0) {
                    Some(v) => {
                        routed.view = v;
                        true
                    }
                    None => false,
                });
        }
        let names: Vec<Arc<str>> = self.unrouted.keys().cloned().collect();
        for name in names {
            // A topic listed without partitions (a broker's answer mid-creation, or a
            // hostile one) cannot be routed to: its records wait for better metadata
            // or their delivery timeout. (Found by the `producer` fuzz target: the
            // sticky partitioner picked from an empty list and panicked.)
            let Some(view) = topic(&name).filter(|v| v.count > 0) else {
                wants.push(Want::Metadata(name));
                continue;
            };
            let Some(mut queue) = self.unrouted.remove(&name) else {
                continue;
            };
            // The producer's own copy of the name (see `views`).
            let name: Arc<str> = Arc::from(&*name);
            let mut routed = Routed {
                topic: name.clone(),
                view,
                sticky: Sticky::default(),
            };
            debug_assert_eq!(queue.records.len(), queue.waiting.len());
            // Each record leaves the queue once encoded, so that a key or value kept
            // as a handle is freed as its copy in the batch is made, not held until
            // the whole queue has been encoded.
            while let (Some(record), Some(waiting)) =
                (queue.records.front_queued(), queue.waiting.front())
            {
                let record = &record.fields;
                let partition = match record.partition {
                    Some(p) => p,
                    None => self.placement.choose(&mut routed, record, waiting.size),
                };
                self.place(
                    now,
                    &name,
                    partition,
                    routed.view.count,
                    waiting.id,
                    record,
                    waiting.size,
                    waiting.deadline,
                );
                queue.pop_front();
            }
            self.views.insert(name, routed);
        }
    }

    /// Encodes a record into its partition's open batch (sealing that batch first
    /// if the record does not fit), or fails it if the partition does not exist or
    /// the record cannot be encoded. A batch it opens lingers from `since`.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        since: Instant,
        topic: &str,
        partition: i32,
        count: usize,
        id: RecordId,
        record: &BorrowedRecord<'_>,
        size: usize,
        deadline: Instant,
    ) {
        if partition < 0 || partition as usize >= count {
            let error = ClientError::UnknownPartition {
                topic: Arc::from(topic),
                partition,
                count,
            };
            self.buffered -= size;
            self.deliveries.push_back((id, Err(error)));
            return;
        }
        let pid = self.stamp();
        // Looked up by the borrowed name: no reference count is touched per record.
        // One search when the partition has had records before.
        let key = (topic, partition);
        let buf = match self.parts.get_mut(&key as &dyn PartKey) {
            Some(buf) => buf,
            None => {
                let name = self
                    .views
                    .get(topic)
                    .map_or_else(|| Arc::from(topic), |r| r.topic.clone());
                self.parts.entry((name, partition)).or_default()
            }
        };
        let mut headers: Vec<NewHeader<'_>> = Vec::new();
        if !record.headers.is_empty() {
            headers.extend(
                record
                    .headers
                    .iter()
                    .map(|h| NewHeader::new(&h.key, h.value.as_deref())),
            );
        }
        let timestamp = record.timestamp.unwrap_or(-1);
        let new = NewRecord {
            timestamp,
            key: record.key,
            value: record.value,
            headers: &headers,
        };
        loop {
            let config = &self.config;
            let (last_records, last_bytes) = buf.last_sealed;
            let open = buf.open.get_or_insert_with(|| Open {
                batch: OpenBatch::new(
                    &batch_config(config),
                    (last_bytes + last_bytes / 8).max(OPEN_BATCH_CAPACITY),
                    self.spare_batches.pop(),
                ),
                ids: Vec::with_capacity(last_records.max(16)),
                size: 0,
                since,
                deadline,
            });
            match open.batch.append(&new) {
                Ok(()) => {
                    open.ids.push((id, timestamp));
                    open.size += size;
                    open.deadline = open.deadline.min(deadline);
                    if open.ids.len() >= self.config.batch_max_records.max(1) {
                        seal_open(buf, pid, &mut self.deliveries, &mut self.buffered);
                    }
                    return;
                }
                Err(AppendError::BatchFull { .. }) if !open.ids.is_empty() => {
                    seal_open(buf, pid, &mut self.deliveries, &mut self.buffered);
                }
                Err(e) => {
                    if open.ids.is_empty() {
                        buf.open = None;
                    }
                    self.buffered -= size;
                    self.deliveries
                        .push_back((id, Err(ClientError::Records(e.to_string()))));
                    return;
                }
            }
        }
    }

    /// The producer id and epoch sealed batches carry now (`None`: not known yet, or
    /// a bump is waiting; they are stamped when it comes).
    fn stamp(&self) -> Option<(i64, i16)> {
        match self.pid {
            ProducerId::Ready { id, epoch } => Some((id, epoch)),
            _ => None,
        }
    }

    /// Fails records and batches past their delivery timeout that are not in flight.
    fn expire(&mut self, now: Instant) {
        let timeout = self.config.delivery_timeout;
        for queue in self.unrouted.values_mut() {
            while queue.waiting.front().is_some_and(|p| p.deadline <= now) {
                if let Some(p) = queue.pop_front() {
                    self.buffered -= p.size;
                    self.deliveries
                        .push_back((p.id, Err(delivery_timeout(timeout, None))));
                }
            }
        }
        self.unrouted.retain(|_, q| !q.waiting.is_empty());
        let mut expired_batches = Vec::new();
        for buf in self.parts.values_mut() {
            // An open batch lingers for milliseconds; one whose first record's
            // deadline passed (a delivery timeout shorter than linger) fails whole.
            if buf.open.as_ref().is_some_and(|o| o.deadline <= now)
                && let Some(open) = buf.open.take()
            {
                self.buffered -= open.size;
                for (id, _) in open.ids {
                    self.deliveries
                        .push_back((id, Err(delivery_timeout(timeout, None))));
                }
            }
            // A sealed batch not in flight expires whole, wherever it waits: a retry
            // goes back in sequence order (without idempotence, to the back), so
            // the front is not always the oldest. (Found by the `producer` fuzz
            // target: a retried batch behind younger ones was reported 215 ms past
            // its delivery timeout plus one request.) Under idempotence its
            // sequence numbers are then missing, and the epoch is bumped
            // (`fail_batch`). One whose outcome is unknown fails too: its records
            // may be in the log, as with any timeout; batches after it that may
            // have been written keep their numbers until their outcome is known.
            if buf.ready.iter().any(|b| b.deadline <= now) {
                let (expired, kept): (VecDeque<Batch>, VecDeque<Batch>) =
                    std::mem::take(&mut buf.ready)
                        .into_iter()
                        .partition(|b| b.deadline <= now);
                buf.ready = kept;
                expired_batches.extend(expired);
            }
        }
        for b in expired_batches {
            let error = delivery_timeout(timeout, b.last_error.clone());
            self.fail_batch(b, error);
        }
    }

    /// Seals open batches that lingered long enough, or all of them when flushing.
    /// (A full batch is sealed as the record that does not fit comes.)
    fn seal(&mut self, now: Instant) {
        let linger = self.config.linger;
        let pid = self.stamp();
        for buf in self.parts.values_mut() {
            if buf
                .open
                .as_ref()
                .is_some_and(|o| self.flushing || o.since + linger <= now)
            {
                seal_open(buf, pid, &mut self.deliveries, &mut self.buffered);
            }
        }
    }

    /// Groups ready batches by leader into Produce requests.
    fn build_requests(
        &mut self,
        topic: &dyn Fn(&str) -> Option<TopicViewOwned>,
        node_ready: &dyn Fn(i32) -> bool,
        wants: &mut Vec<Want>,
    ) {
        let mut per_node: BTreeMap<
            i32,
            (
                Vec<produce_request::TopicProduceData>,
                InFlightRequest,
                usize,
            ),
        > = BTreeMap::new();
        let idempotent = self.config.idempotence;
        let bumping = matches!(self.pid, ProducerId::BumpWanted { .. });
        let max_in_flight = if idempotent {
            self.config.max_in_flight.clamp(1, 5)
        } else {
            self.config.max_in_flight.max(1)
        };
        let txn = self.txn.as_ref();
        for (key, buf) in &mut self.parts {
            let (name, partition) = (&key.0, &key.1);
            if buf.ready.is_empty() || buf.draining || buf.backoff_until.is_some() {
                continue;
            }
            // In a transaction, only once the coordinator added the partition.
            if txn.is_some_and(|t| !t.may_send(key)) {
                continue;
            }
            let limit = if idempotent && buf.successes == 0 {
                1
            } else {
                max_in_flight
            };
            if buf.in_flight.len() >= limit {
                continue;
            }
            let Some(view) = topic(name) else {
                wants.push(Want::Metadata(name.clone()));
                continue;
            };
            let Some(leader) = usize::try_from(*partition)
                .ok()
                .and_then(|i| view.leaders.get(i))
                .copied()
                .flatten()
            else {
                wants.push(Want::Metadata(name.clone()));
                continue;
            };
            // Batches of a partition in flight all go to one connection, so their
            // answers come back in order; a new leader waits until they are back.
            if buf.in_flight_node.is_some_and(|n| n != leader) && !buf.in_flight.is_empty() {
                continue;
            }
            if !node_ready(leader) {
                // the client opens the connection; this runs again once it is ready
                wants.push(Want::Connect(leader));
                continue;
            }
            // (A batch of unknown outcome behind the front one is learned only
            // through the front one: the broker takes sequences in order.)
            let unresolved_behind = || buf.ready.iter().skip(1).any(|b| b.unknown);
            if bumping
                && !buf.ready.front().is_some_and(|b| {
                    b.unknown || (b.maybe_written && (!buf.needs_bump || unresolved_behind()))
                })
            {
                // While an epoch bump waits, only retries of batches that may have
                // been written go out (with the old epoch): their outcome must be
                // known before anything is renumbered.
                continue;
            }
            let (topics, req, bytes) = per_node.entry(leader).or_insert_with(|| {
                (
                    Vec::new(),
                    InFlightRequest {
                        partitions: Vec::new(),
                    },
                    0,
                )
            });
            let Some(front) = buf.ready.front() else {
                continue;
            };
            if *bytes > 0 && *bytes + front.bytes.len() > self.config.request_max_bytes {
                continue; // the next request takes it
            }
            let Some(mut batch) = buf.ready.pop_front() else {
                continue;
            };
            *bytes += batch.bytes.len();
            batch.attempts += 1;
            batch.maybe_written = true;
            let data = produce_request::PartitionProduceData {
                index: *partition,
                records: Some(batch.bytes.clone()),
                ..Default::default()
            };
            match topics.iter_mut().find(|t| *t.name == **name) {
                Some(t) => t.partition_data.push(data),
                None => topics.push(produce_request::TopicProduceData {
                    name: (&**name).into(),
                    partition_data: vec![data],
                    ..Default::default()
                }),
            }
            req.partitions.push((name.clone(), *partition));
            buf.in_flight.push_back(batch);
            buf.in_flight_node = Some(leader);
        }
        let timeout = self.config.broker_timeout;
        for (node, (topics, req, _)) in per_node {
            if req.partitions.is_empty() {
                continue;
            }
            let request = ProduceRequest {
                transactional_id: txn.map(|t| (&*t.id).into()),
                acks: self.config.acks,
                timeout_ms: i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX),
                topic_data: topics,
                ..Default::default()
            };
            wants.push(Want::Send {
                node,
                request,
                req,
                timeout,
            });
        }
    }

    /// A request could not be sent after all (the connection went away first): its
    /// batches go back to the front of their partitions, unchanged.
    pub(crate) fn unsend(&mut self, req: InFlightRequest) {
        for key in req.partitions.iter().rev() {
            if let Some(buf) = self.parts.get_mut(key)
                && let Some(mut b) = buf.in_flight.pop_back()
            {
                b.attempts = b.attempts.saturating_sub(1);
                b.maybe_written = false;
                buf.ready.push_front(b);
            }
        }
    }

    /// Keeps an acknowledged batch's buffer for a next open batch, if nothing
    /// else holds it (a request being written, a caller) and fewer than
    /// [`KEPT_BATCH_BUFFERS`] are kept. Reusing it costs nothing; freeing a batch's
    /// megabyte and allocating the next costs page faults as the allocator gives
    /// the memory back and maps it again.
    fn keep_buffer(&mut self, bytes: Bytes) {
        if self.spare_batches.len() < KEPT_BATCH_BUFFERS
            && let Ok(buffer) = bytes.try_into_mut()
        {
            self.spare_batches.push(buffer);
        }
    }

    /// The answer to a Produce request (or why none came).
    pub(crate) fn on_reply(
        &mut self,
        now: Instant,
        req: InFlightRequest,
        reply: Result<Option<ProduceResponse>, ClientError>,
        backoff: &mut dyn FnMut(u32) -> Duration,
        invalidate: &mut dyn FnMut(&Arc<str>, i32),
    ) {
        for key in req.partitions {
            let Some(buf) = self.parts.get_mut(&key) else {
                continue;
            };
            let Some(mut batch) = buf.in_flight.pop_front() else {
                continue;
            };
            if buf.in_flight.is_empty() {
                buf.in_flight_node = None;
            }
            let outcome = match &reply {
                Ok(None) => Outcome::Written {
                    base_offset: None,
                    append_time: None,
                },
                Ok(Some(resp)) => partition_outcome(resp, &key.0, key.1),
                Err(e) => {
                    if e.is_retriable() && self.config.planted_bug_renumber_unknown_outcome {
                        Outcome::Sequence(e.clone())
                    } else if e.is_retriable() {
                        // No answer: the request may have been written.
                        batch.unknown = true;
                        Outcome::Retry(e.clone(), false)
                    } else {
                        Outcome::Fail(e.clone())
                    }
                }
            };
            match outcome {
                Outcome::Written {
                    base_offset,
                    append_time,
                } => {
                    buf.successes += 1;
                    self.buffered -= batch.size;
                    // The broker takes a sequence only after the one before it: every
                    // batch of this epoch numbered below this one is in the log, even
                    // one whose own attempts were refused or went unanswered (its
                    // offsets are not known here).
                    if batch.base_sequence >= 0 {
                        let (epoch, seq) = (batch.epoch, batch.base_sequence);
                        let (written, rest): (VecDeque<Batch>, VecDeque<Batch>) =
                            std::mem::take(&mut buf.ready).into_iter().partition(|b| {
                                b.epoch == epoch && b.base_sequence >= 0 && b.base_sequence < seq
                            });
                        buf.ready = rest;
                        for b in written {
                            self.buffered -= b.size;
                            self.written.push_back(WrittenBatch {
                                topic: key.0.clone(),
                                partition: key.1,
                                ids: b.ids,
                                base_offset: None,
                                append_time: None,
                            });
                        }
                    }
                    self.written.push_back(WrittenBatch {
                        topic: key.0.clone(),
                        partition: key.1,
                        ids: std::mem::take(&mut batch.ids),
                        base_offset,
                        append_time,
                    });
                    self.keep_buffer(std::mem::take(&mut batch.bytes));
                }
                Outcome::Retry(error, stale_leader) => {
                    self.retries += 1;
                    if error.error_code().is_some_and(|c| {
                        c == ErrorCode::REQUEST_TIMED_OUT
                            || c == ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
                    }) {
                        // Appended on the leader, not yet replicated: it may be
                        // committed later.
                        batch.unknown = true;
                    }
                    if stale_leader {
                        invalidate(&key.0, key.1);
                    }
                    if now >= batch.deadline {
                        self.fail_batch(
                            batch,
                            delivery_timeout(self.config.delivery_timeout, Some(error)),
                        );
                        continue;
                    }
                    batch.last_error = Some(error);
                    let wait = backoff(batch.attempts.saturating_sub(1));
                    let Some(buf) = self.parts.get_mut(&key) else {
                        continue;
                    };
                    buf.backoff_until = Some(now + wait);
                    Self::requeue(buf, batch);
                }
                Outcome::Sequence(error) if self.txn.is_some() => {
                    // In a transaction the producer does not bump its own epoch:
                    // the batch fails, and with it the transaction, which can only
                    // be aborted (a new epoch follows the abort).
                    self.fail_batch(batch, error);
                }
                Outcome::Sequence(error) => {
                    // The broker lost (or never had) what came before: this attempt
                    // was not written. Bump the epoch once everything drained, then
                    // resend from sequence 0.
                    self.retries += 1;
                    if let ProducerId::Ready { id, epoch } = self.pid {
                        self.pid = ProducerId::BumpWanted { id, epoch };
                    }
                    batch.last_error = Some(error);
                    buf.needs_bump = true;
                    if batch.unknown {
                        // An earlier attempt may be in the log: it keeps its number
                        // and is retried as it is (the bump waits for it) until a
                        // later batch proves it written, the broker says duplicate,
                        // or its delivery timeout fails it.
                        let wait = backoff(batch.attempts.saturating_sub(1));
                        buf.backoff_until = Some(now + wait);
                    } else {
                        // Never written, so nothing of this epoch after it is either:
                        // those batches get new numbers after the bump.
                        let (epoch, seq) = (batch.epoch, batch.base_sequence);
                        batch.maybe_written = false;
                        for b in &mut buf.ready {
                            if b.epoch == epoch && b.base_sequence > seq {
                                b.maybe_written = false;
                                b.unknown = false;
                            }
                        }
                    }
                    Self::requeue(buf, batch);
                }
                Outcome::Fail(error) => self.fail_batch(batch, error),
            }
        }
    }

    /// Puts a batch back in sequence order and holds the partition until its other
    /// requests have answered.
    fn requeue(buf: &mut PartBuf, batch: Batch) {
        let pos = buf
            .ready
            .iter()
            .position(|b| b.base_sequence > batch.base_sequence || b.epoch != batch.epoch)
            .unwrap_or(buf.ready.len());
        buf.ready.insert(pos, batch);
        // The broker takes a sequence only after the one before it: behind a
        // batch known not to be in the log, nothing of its epoch is either, even
        // one whose answer was lost (it was in flight when the refusal came).
        let mut unwritten_epoch = None;
        for b in &mut buf.ready {
            if b.base_sequence < 0 {
                continue;
            }
            if unwritten_epoch == Some(b.epoch) {
                b.maybe_written = false;
                b.unknown = false;
            } else if !b.maybe_written {
                unwritten_epoch = Some(b.epoch);
            }
        }
        buf.draining = !buf.in_flight.is_empty();
        if buf.in_flight.is_empty() {
            buf.draining = false;
        }
    }

    /// Fails every record of a sealed batch. A batch that had sequence numbers
    /// takes them with it, and unless it was written the broker refuses every later
    /// batch of its partition as out of order: the epoch is bumped (once nothing
    /// that may have been written is still unresolved), as the Java client does
    /// for an expired batch, so that later batches start afresh. Waiting for the
    /// refusal instead held them for their whole delivery timeout when the first
    /// later batch's own outcome was unknown (a batch of unknown outcome refused as
    /// out of order is retried as it is, in case an earlier attempt is in the log).
    fn fail_batch(&mut self, batch: Batch, error: ClientError) {
        if let Some(t) = self.txn.as_mut() {
            t.record_failed(&error);
            t.bump |= batch.base_sequence >= 0;
        } else if self.config.idempotence
            && batch.base_sequence >= 0
            && let ProducerId::Ready { id, epoch } = self.pid
        {
            self.pid = ProducerId::BumpWanted { id, epoch };
        }
        self.buffered -= batch.size;
        for (id, _) in batch.ids {
            self.deliveries.push_back((id, Err(error.clone())));
        }
    }

    /// Clears the drain hold of partitions whose requests have all answered.
    pub(crate) fn settle(&mut self) {
        for buf in self.parts.values_mut() {
            if buf.draining && buf.in_flight.is_empty() {
                buf.draining = false;
            }
        }
        self.parts.retain(|_, b| {
            b.open.is_some()
                || !b.ready.is_empty()
                || !b.in_flight.is_empty()
                || b.next_sequence != 0
                || b.successes != 0
        });
    }

    /// InitProducerId answered: a new id or epoch. Every batch not acknowledged
    /// restarts at sequence 0 under it.
    pub(crate) fn on_producer_id(&mut self, result: Result<(i64, i16), ClientError>) {
        match result {
            Ok((id, epoch)) => {
                self.pid = ProducerId::Ready { id, epoch };
                for buf in self.parts.values_mut() {
                    let mut seq = 0i32;
                    for b in &mut buf.ready {
                        restamp(b, id, epoch, seq);
                        seq = seq.wrapping_add(b.ids.len() as i32);
                    }
                    buf.next_sequence = seq;
                    buf.successes = 0;
                    buf.draining = false;
                    buf.needs_bump = false;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "InitProducerId failed");
                // Records wait; the request is tried again on the next drive unless
                // the error is fatal, which fails everything buffered.
                self.pid = ProducerId::None;
                if !e.is_retriable() {
                    self.fail_all(&e);
                }
            }
        }
    }

    /// Fails every record not in flight.
    pub(crate) fn fail_all(&mut self, error: &ClientError) {
        for (_, q) in std::mem::take(&mut self.unrouted) {
            for p in q.waiting {
                self.buffered -= p.size;
                self.deliveries.push_back((p.id, Err(error.clone())));
            }
        }
        let keys: Vec<(Arc<str>, i32)> = self.parts.keys().cloned().collect();
        for key in keys {
            let Some(buf) = self.parts.get_mut(&key) else {
                continue;
            };
            let ready = std::mem::take(&mut buf.ready);
            if let Some(open) = buf.open.take() {
                self.buffered -= open.size;
                for (id, _) in open.ids {
                    self.deliveries.push_back((id, Err(error.clone())));
                }
            }
            for b in ready {
                self.fail_batch(b, error.clone());
            }
        }
    }
}

/// A topic's metadata as the producer needs it.
pub(crate) struct TopicViewOwned {
    /// Every partition of the topic.
    pub count: usize,
    /// Partitions with a leader, ascending.
    pub available: Vec<i32>,
    /// Each partition's leader, by index.
    pub leaders: Vec<Option<i32>>,
}

enum Outcome {
    Written {
        base_offset: Option<i64>,
        append_time: Option<i64>,
    },
    /// Retry the same batch; `true` if the leader is stale.
    Retry(ClientError, bool),
    /// A sequence error: the epoch must be bumped.
    Sequence(ClientError),
    Fail(ClientError),
}

fn partition_outcome(resp: &ProduceResponse, topic: &str, partition: i32) -> Outcome {
    let found = resp
        .responses
        .iter()
        .filter(|t| *t.name == *topic)
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == partition);
    let Some(p) = found else {
        return Outcome::Fail(ClientError::InvalidResponse {
            api: ApiKey::Produce,
            detail: format!("no result for {topic}-{partition}"),
        });
    };
    let code = ErrorCode(p.error_code);
    let message = p.error_message.as_ref().map(|m| m.to_string());
    let error = || ClientError::broker(ApiKey::Produce, code, message.clone());
    match code {
        ErrorCode::NONE => Outcome::Written {
            base_offset: Some(p.base_offset),
            append_time: (p.log_append_time_ms >= 0).then_some(p.log_append_time_ms),
        },
        // The broker has these records already (a retry of a written batch).
        ErrorCode::DUPLICATE_SEQUENCE_NUMBER => Outcome::Written {
            base_offset: (p.base_offset >= 0).then_some(p.base_offset),
            append_time: None,
        },
        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
        | ErrorCode::UNKNOWN_PRODUCER_ID
        | ErrorCode::INVALID_PRODUCER_EPOCH => Outcome::Sequence(error()),
        ErrorCode::NOT_LEADER_OR_FOLLOWER
        | ErrorCode::LEADER_NOT_AVAILABLE
        | ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
        | ErrorCode::FENCED_LEADER_EPOCH
        | ErrorCode::UNKNOWN_LEADER_EPOCH
        | ErrorCode::KAFKA_STORAGE_ERROR => Outcome::Retry(error(), true),
        c if c.is_retriable() => Outcome::Retry(error(), false),
        _ => Outcome::Fail(error()),
    }
}

fn delivery_timeout(timeout: Duration, last: Option<ClientError>) -> ClientError {
    ClientError::Timeout {
        operation: "delivery",
        timeout,
        last_error: last.map(Box::new),
    }
}

/// Buffers of acknowledged batches the producer keeps for the next ones: one
/// being filled while one is in flight, the steady state of a partition sending
/// at full speed.
const KEPT_BATCH_BUFFERS: usize = 2;

/// A first guess at an open batch's size: it grows (to the batch limit) as records
/// come.
const OPEN_BATCH_CAPACITY: usize = 16 * 1024;

/// How the producer's batches are encoded (the producer fields come at sealing).
fn batch_config(config: &ProducerConfig) -> BatchConfig {
    BatchConfig {
        transactional: config.transactional_id.is_some(),
        compression: config.compression,
        compression_level: config.compression_level,
        max_batch_bytes: config.batch_max_bytes,
        ..BatchConfig::default()
    }
}

/// Seals a partition's open batch into its ready queue, with the producer id and
/// the partition's next sequence if known (otherwise it is stamped when they are).
fn seal_open(
    buf: &mut PartBuf,
    pid: Option<(i64, i16)>,
    deliveries: &mut VecDeque<Delivery>,
    buffered: &mut usize,
) {
    let Some(open) = buf.open.take() else {
        return;
    };
    let (id, epoch, base_sequence) = match pid {
        Some((id, epoch)) => (id, epoch, buf.next_sequence),
        None => (-1, -1, -1),
    };
    match open.batch.finish(id, epoch, base_sequence) {
        Ok(bytes) => {
            buf.last_sealed = (open.ids.len(), bytes.len());
            if pid.is_some() {
                buf.next_sequence = buf.next_sequence.wrapping_add(open.ids.len() as i32);
            }
            buf.ready.push_back(Batch {
                ids: open.ids,
                bytes,
                size: open.size,
                base_sequence,
                epoch,
                deadline: open.deadline,
                attempts: 0,
                maybe_written: false,
                unknown: false,
                last_error: None,
            });
        }
        Err(e) => {
            *buffered -= open.size;
            for (id, _) in open.ids {
                deliveries.push_back((id, Err(ClientError::Records(e.to_string()))));
            }
        }
    }
}

/// Rewrites a sealed batch's producer id, epoch and base sequence (after an epoch
/// bump) and its CRC.
fn restamp(batch: &mut Batch, id: i64, epoch: i16, base_sequence: i32) {
    let mut b = BytesMut::from(&batch.bytes[..]);
    if b.len() >= crate::records::BATCH_HEADER_LEN {
        b[43..51].copy_from_slice(&id.to_be_bytes());
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        b[53..57].copy_from_slice(&base_sequence.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    batch.bytes = b.freeze();
    batch.epoch = epoch;
    batch.base_sequence = base_sequence;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An acknowledged batch's buffer is filled again by the partition's next
    /// batch, not freed and allocated again; one still held elsewhere (here, by a
    /// request kept alive) is left alone.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn an_acknowledged_batch_buffer_is_reused_unless_held() {
        use crate::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
        let config = ProducerConfig {
            idempotence: false,
            acks: 1,
            ..ProducerConfig::default()
        };
        let mut p = Producer::new(config, 7);
        let now = crate::test_clock::start();
        let view = |_: &str| {
            Some(TopicViewOwned {
                count: 1,
                available: vec![0],
                leaders: vec![Some(0)],
            })
        };
        let ok = || ProduceResponse {
            responses: vec![TopicProduceResponse {
                name: "t".into(),
                partition_responses: vec![PartitionProduceResponse {
                    index: 0,
                    error_code: 0,
                    base_offset: 0,
                    ..PartitionProduceResponse::default()
                }],
                ..TopicProduceResponse::default()
            }],
            ..ProduceResponse::default()
        };
        // Sends one batch of `n` records; its buffer's address, and the request
        // (the caller drops it, or keeps it alive) with what the reply needs.
        let send_sized = |p: &mut Producer, n: usize, pad: usize| {
            for i in 0..n {
                let value = format!("value-{i}{}", " ".repeat(pad));
                p.send(now, ProducerRecord::new("t", value)).unwrap();
            }
            p.flush();
            let mut wants = Vec::new();
            p.drive(now, 0, &view, &|_| true, &mut wants);
            let sent = wants.into_iter().find_map(|w| match w {
                Want::Send { request, req, .. } => Some((request, req)),
                _ => None,
            });
            let (request, req) = sent.unwrap();
            let at = request.topic_data[0].partition_data[0]
                .records
                .as_ref()
                .unwrap()
                .as_ptr();
            (at, request, req)
        };
        let send_batch = |p: &mut Producer, n: usize| send_sized(p, n, 0);
        let reply = |p: &mut Producer, req| {
            p.on_reply(
                now,
                req,
                Ok(Some(ok())),
                &mut |_| Duration::ZERO,
                &mut |_, _| {},
            );
        };
        let (first, request, req) = send_batch(&mut p, 10);
        drop(request);
        reply(&mut p, req);
        assert_eq!(p.spare_batches.len(), 1, "the acknowledged buffer is kept");
        let (second, held, req) = send_batch(&mut p, 10);
        assert_eq!(second, first, "the next batch fills the same buffer");
        assert!(p.spare_batches.is_empty());
        reply(&mut p, req);
        assert!(
            p.spare_batches.is_empty(),
            "a buffer still held is not kept"
        );
        let records = held.topic_data[0].partition_data[0]
            .records
            .as_ref()
            .unwrap();
        let opts = crate::records::DecodeOptions::default();
        let batches: Vec<_> = crate::records::BatchReader::new(records.clone(), opts)
            .collect::<Result<_, _>>()
            .unwrap();
        let records: Vec<_> = batches[0]
            .records(&opts)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(records.len(), 10, "the held batch is intact");
        assert_eq!(records[9].value(), Some(&b"value-9"[..]));

        // A burst's large buffer is reused while batches stay about as large, and
        // freed (not kept in use) once they are small again.
        let (large, request, req) = send_sized(&mut p, 8000, 100);
        drop(request);
        reply(&mut p, req);
        let (again, request, req) = send_sized(&mut p, 8000, 100);
        assert_eq!(again, large, "a batch as large fills the large buffer");
        drop(request);
        reply(&mut p, req);
        // The next batch is guessed as large as the last: it takes the buffer.
        let (_, request, req) = send_batch(&mut p, 10);
        drop(request);
        reply(&mut p, req);
        assert_eq!(p.spare_batches.len(), 1);
        // Guessed small now (the last was small): the large buffer is not used.
        let (small, request, req) = send_batch(&mut p, 10);
        assert_ne!(
            small, large,
            "a small batch does not keep the burst's buffer"
        );
        assert!(p.spare_batches.is_empty(), "the large buffer was freed");
        drop(request);
        reply(&mut p, req);
    }

    /// Found by the producer suite on the simulated runtime (tests/sim_runtime.rs,
    /// seed 1061): while an epoch bump waited for a partition to settle, a batch
    /// whose answer was lost (outcome unknown) sat behind one refused with a
    /// retriable error. The bump waited for the unknown batch, the unknown batch
    /// for the one in front (the broker takes sequences in order), and that one was
    /// held back because the partition needed the bump: nothing moved until the
    /// delivery timeout failed the records. The front batch now goes out (with the
    /// old epoch) to learn the fate of the one behind it.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn an_unknown_batch_behind_a_refused_one_does_not_hold_a_bump_forever() {
        use crate::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
        let config = ProducerConfig {
            linger: Duration::ZERO,
            ..ProducerConfig::default()
        };
        let mut p = Producer::new(config, 7);
        p.on_producer_id(Ok((1000, 0)));
        let start = crate::test_clock::start();
        let view = |_: &str| {
            Some(TopicViewOwned {
                count: 1,
                available: vec![0],
                leaders: vec![Some(0)],
            })
        };
        let answer = |code: ErrorCode| ProduceResponse {
            responses: vec![TopicProduceResponse {
                name: "t".into(),
                partition_responses: vec![PartitionProduceResponse {
                    index: 0,
                    error_code: code.0,
                    base_offset: if code == ErrorCode::NONE { 0 } else { -1 },
                    ..PartitionProduceResponse::default()
                }],
                ..TopicProduceResponse::default()
            }],
            ..ProduceResponse::default()
        };
        // One batch per call: sent (the first alone, until it succeeds).
        let send = |p: &mut Producer, now: Instant, value: &str| {
            p.send(now, ProducerRecord::new("t", value.to_owned()).partition(0))
                .unwrap();
            p.flush();
            let mut wants = Vec::new();
            p.drive(now, 0, &view, &|_| true, &mut wants);
            wants
                .into_iter()
                .filter_map(|w| match w {
                    Want::Send { req, .. } => Some(req),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let reply =
            |p: &mut Producer, now, req, answer: Result<Option<ProduceResponse>, ClientError>| {
                p.on_reply(
                    now,
                    req,
                    answer,
                    &mut |_| Duration::from_millis(10),
                    &mut |_, _| {},
                );
            };
        let first = send(&mut p, start, "first").pop().unwrap();
        reply(&mut p, start, first, Ok(Some(answer(ErrorCode::NONE))));
        // Three batches in flight at once.
        let a = send(&mut p, start, "a").pop().unwrap();
        let b = send(&mut p, start, "b").pop().unwrap();
        let c = send(&mut p, start, "c").pop().unwrap();
        // a: refused, retriable (not written); b: no answer (maybe written);
        // c: out of order, so the partition needs an epoch bump.
        reply(
            &mut p,
            start,
            a,
            Ok(Some(answer(ErrorCode::NOT_ENOUGH_REPLICAS))),
        );
        let lost = ClientError::Timeout {
            operation: "Produce",
            timeout: Duration::from_secs(30),
            last_error: None,
        };
        reply(&mut p, start, b, Err(lost));
        reply(
            &mut p,
            start,
            c,
            Ok(Some(answer(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER))),
        );
        assert!(matches!(p.pid, ProducerId::BumpWanted { .. }));
        // After the backoff, `a` goes out again with the old epoch.
        let later = start + Duration::from_millis(50);
        let mut wants = Vec::new();
        p.drive(later, 0, &view, &|_| true, &mut wants);
        let retried: Vec<_> = wants
            .into_iter()
            .filter_map(|w| match w {
                Want::Send { request, req, .. } => Some((request, req)),
                _ => None,
            })
            .collect();
        assert_eq!(
            retried.len(),
            1,
            "the batch in front goes out to resolve the one behind"
        );
        let (request, req) = retried.into_iter().next().unwrap();
        let records = request.topic_data[0].partition_data[0]
            .records
            .clone()
            .unwrap();
        let opts = crate::records::DecodeOptions::default();
        let batch = crate::records::BatchReader::new(records, opts)
            .next()
            .unwrap()
            .unwrap();
        let batch = batch.into_v2().unwrap();
        assert_eq!(batch.header.producer_epoch, 0, "the old epoch");
        // It was written after all (a duplicate); then `b` is retried as it is,
        // and was written too.
        reply(
            &mut p,
            later,
            req,
            Ok(Some(answer(ErrorCode::DUPLICATE_SEQUENCE_NUMBER))),
        );
        let mut wants = Vec::new();
        p.drive(later, 0, &view, &|_| true, &mut wants);
        let b_again = wants
            .into_iter()
            .find_map(|w| match w {
                Want::Send { req, .. } => Some(req),
                _ => None,
            })
            .expect("the unknown batch is retried");
        reply(
            &mut p,
            later,
            b_again,
            Ok(Some(answer(ErrorCode::DUPLICATE_SEQUENCE_NUMBER))),
        );
        // Now nothing is unresolved: the epoch is bumped and `c` goes out
        // renumbered.
        let mut wants = Vec::new();
        p.drive(
            later + Duration::from_millis(50),
            0,
            &view,
            &|_| true,
            &mut wants,
        );
        assert!(
            matches!(p.pid, ProducerId::Ready { epoch: 1, .. }),
            "{:?}",
            p.pid
        );
        assert!(wants.iter().any(|w| matches!(w, Want::Send { .. })));
    }

    /// Found by the `producer` fuzz target: a Metadata answer listing a topic with no
    /// partitions made the sticky partitioner pick from an empty list and panic.
    /// Such a topic is not routed to; its records wait, then fail by their delivery
    /// timeout.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_topic_listed_without_partitions_is_not_routed_to() {
        let mut p = Producer::new(ProducerConfig::default(), 7);
        let now = crate::test_clock::start();
        p.send(now, ProducerRecord::new("t", "keyless")).unwrap();
        p.send(now, ProducerRecord::new("t", "keyed").key("k"))
            .unwrap();
        let empty = |_: &str| {
            Some(TopicViewOwned {
                count: 0,
                available: Vec::new(),
                leaders: Vec::new(),
            })
        };
        let mut wants = Vec::new();
        p.drive(now, 0, &empty, &|_| false, &mut wants);
        assert!(wants.iter().any(|w| matches!(w, Want::Metadata(_))));
        assert_eq!((p.pending_records(), p.deliveries.len()), (2, 0));
        let later = now + p.config.delivery_timeout;
        p.drive(later, 0, &empty, &|_| false, &mut wants);
        assert_eq!(p.deliveries.len(), 2);
        assert!(
            p.deliveries
                .iter()
                .all(|(_, r)| matches!(r, Err(ClientError::Timeout { .. })))
        );
        assert_eq!((p.pending_records(), p.buffered()), (0, 0));
    }

    /// The views `send` routes by are rebuilt when the metadata's generation
    /// moves, not on every drive: a partition added to the topic counts only once
    /// the generation says the metadata changed, and then at once.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn routing_views_follow_the_metadata_generation() {
        let mut p = Producer::new(ProducerConfig::default(), 7);
        let now = crate::test_clock::start();
        let partitions = std::cell::Cell::new(1usize);
        let looked_up = std::cell::Cell::new(0usize);
        let view = |_: &str| {
            looked_up.set(looked_up.get() + 1);
            let n = partitions.get();
            Some(TopicViewOwned {
                count: n,
                available: (0..n as i32).collect(),
                leaders: vec![Some(0); n],
            })
        };
        p.send(now, ProducerRecord::new("t", "first")).unwrap();
        p.drive(now, 5, &view, &|_| false, &mut Vec::new());
        let count = |p: &Producer| p.views.get("t").map(|r| r.view.count);
        assert_eq!(count(&p), Some(1));
        let before = looked_up.get();
        partitions.set(3);
        for _ in 0..10 {
            p.drive(now, 5, &view, &|_| false, &mut Vec::new());
        }
        assert_eq!(looked_up.get(), before, "no lookup while nothing changed");
        assert_eq!(count(&p), Some(1));
        p.drive(now, 6, &view, &|_| false, &mut Vec::new());
        assert_eq!(count(&p), Some(3), "the new generation is routed by");
    }

    /// A record sent before its topic's metadata is known waits with its large
    /// value kept as the sender's handle (not copied), counts whole in the byte
    /// budget while it waits and once encoded, and lets the handle go once it is
    /// in its batch.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_large_value_waits_for_metadata_as_its_handle_and_counts_in_the_budget() {
        let mut p = Producer::new(ProducerConfig::default(), 7);
        let now = crate::test_clock::start();
        let value = Bytes::from(vec![3u8; 64 * 1024]);
        let records = [
            ProducerRecord::new("t", "small").key("k"),
            ProducerRecord::new("t", value.clone()).key("big"),
            ProducerRecord::new("t", "after").key("k"),
        ];
        let sizes: usize = records.iter().map(|r| r.borrowed().size()).sum();
        assert!(sizes > value.len());
        for r in records {
            p.send(now, r).unwrap();
        }
        assert_eq!(p.buffered(), sizes);
        let waiting: Vec<_> = p.unrouted["t"].records.iter_queued().collect();
        let kept = waiting[1].fields.value.unwrap();
        assert_eq!(
            kept.as_ptr(),
            value.as_ptr(),
            "the sender's bytes, not a copy"
        );
        assert!(!value.is_unique());
        let view = |_: &str| {
            Some(TopicViewOwned {
                count: 1,
                available: vec![0],
                leaders: vec![Some(0)],
            })
        };
        let mut wants = Vec::new();
        p.drive(now, 0, &view, &|_| false, &mut wants);
        assert!(p.unrouted.is_empty());
        assert_eq!((p.pending_records(), p.buffered()), (3, sizes));
        assert!(
            value.is_unique(),
            "the queue's handle is dropped once encoded"
        );
        // Once routed, a record goes straight into its batch: nothing keeps it.
        let another = ProducerRecord::new("t", value.clone());
        let size = another.borrowed().size();
        p.send(now, another).unwrap();
        assert_eq!((p.pending_records(), p.buffered()), (4, sizes + size));
        assert!(value.is_unique());
    }

    /// Routing a topic's waiting records frees each one's kept value once it is
    /// encoded, not after the whole queue is: a burst sent before the metadata came
    /// is not held twice (kept and encoded) at its peak. Each value tells when it is
    /// dropped; the partitioner, asked about each record in turn, checks that those
    /// before it are gone.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn routing_frees_each_kept_value_once_encoded() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        struct Value(Vec<u8>, Arc<AtomicUsize>);
        impl AsRef<[u8]> for Value {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
        impl Drop for Value {
            fn drop(&mut self) {
                self.1.fetch_add(1, Ordering::SeqCst);
            }
        }
        struct Checks(Arc<AtomicUsize>, usize);
        impl Partitioner for Checks {
            fn partition(&mut self, _: &str, key: Option<&[u8]>, _: TopicPartitions<'_>) -> i32 {
                let i = usize::from(key.unwrap()[0]);
                assert_eq!(
                    self.0.load(Ordering::SeqCst),
                    i,
                    "values dropped before record {i}"
                );
                self.1 += 1;
                0
            }
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let checks = Arc::new(std::sync::Mutex::new(Checks(dropped.clone(), 0)));
        let config = ProducerConfig {
            partitioner: Some(checks.clone()),
            ..ProducerConfig::default()
        };
        let mut p = Producer::new(config, 7);
        let now = crate::test_clock::start();
        for i in 0..5u8 {
            let value = Bytes::from_owner(Value(vec![i; queue::SHARED_MIN * 4], dropped.clone()));
            p.send(now, ProducerRecord::new("t", value).key(vec![i]))
                .unwrap();
        }
        assert_eq!(dropped.load(Ordering::SeqCst), 0, "kept while waiting");
        let view = |_: &str| {
            Some(TopicViewOwned {
                count: 1,
                available: vec![0],
                leaders: vec![Some(0)],
            })
        };
        p.drive(now, 0, &view, &|_| false, &mut Vec::new());
        assert_eq!(checks.lock().unwrap().1, 5, "every record was partitioned");
        assert_eq!(
            (dropped.load(Ordering::SeqCst), p.pending_records()),
            (5, 5)
        );
    }
}
