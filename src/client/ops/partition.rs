//! Partition operations (rskafka's `PartitionClient`): produce a set of records,
//! fetch records, list offsets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::client::metadata::Metadata;
use crate::client::op::{
    Built, Ctx, Lane, Operation, Refresh, Reply, Step, Target, UnknownTopicHandling, Versions, all,
    decode, version,
};
use crate::client::{Client, ClientError, OpId, OpOutput};
use crate::messages::{
    ApiKey, ErrorCode, FetchRequest, ListOffsetsRequest, ProduceRequest, fetch_request,
    list_offsets_request, produce_request,
};
use crate::records::{
    AbortedTransaction, BatchBuilder, BatchConfig, BatchReader, Compression, DecodeOptions,
    NewHeader, NewRecord, ReadCommitted, RecordSet,
};

/// A record to produce: owned key, value and headers.
///
/// ```
/// use kafka_sansio::client::Record;
/// let r = Record::new("payload").key("user-42").header("trace", "abc").timestamp(1_700_000_000_000);
/// assert_eq!(r.key.as_deref(), Some(&b"user-42"[..]));
/// assert_eq!(r.headers.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The key, `None` for null.
    pub key: Option<Bytes>,
    /// The value, `None` for null (a tombstone).
    pub value: Option<Bytes>,
    /// Headers in order (duplicate keys allowed).
    pub headers: Vec<RecordHeader>,
    /// Milliseconds since the Unix epoch. `None` leaves it to whoever reads the
    /// clock: the runtime facades fill in the current time, the sans-IO core (which
    /// reads no clock) writes `-1`, "no timestamp".
    pub timestamp: Option<i64>,
}

impl Record {
    /// A record with this value, a null key and no headers.
    ///
    /// ```
    /// use kafka_sansio::client::Record;
    /// let r = Record::new("hello");
    /// assert_eq!((r.key, r.value.as_deref()), (None, Some(&b"hello"[..])));
    /// ```
    #[must_use]
    pub fn new(value: impl Into<Bytes>) -> Self {
        Self {
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// Sets the key.
    ///
    /// ```
    /// use kafka_sansio::client::Record;
    /// assert_eq!(Record::new("v").key("k").key.as_deref(), Some(&b"k"[..]));
    /// ```
    #[must_use]
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    ///
    /// ```
    /// use kafka_sansio::client::Record;
    /// let r = Record::new("v").header("trace", "1").header("trace", "2"); // duplicates kept, in order
    /// assert_eq!(r.headers[1].value.as_deref(), Some(&b"2"[..]));
    /// ```
    #[must_use]
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(RecordHeader {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// Sets the timestamp (milliseconds since the Unix epoch).
    ///
    /// ```
    /// use kafka_sansio::client::Record;
    /// assert_eq!(Record::new("v").timestamp(1_700_000_000_000).timestamp, Some(1_700_000_000_000));
    /// ```
    #[must_use]
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }
}

/// A record header.
///
/// ```
/// use kafka_sansio::client::{Record, RecordHeader};
/// let r = Record::new("v").header("source", "web");
/// assert_eq!(r.headers[0], RecordHeader { key: "source".into(), value: Some("web".into()) });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// The key.
    pub key: String,
    /// The value, `None` for null.
    pub value: Option<Bytes>,
}

/// How a [`Client::produce`] call writes.
///
/// ```
/// use std::time::Duration;
/// use kafka_sansio::client::{ProduceOptions, UnknownTopicHandling};
/// use kafka_sansio::records::Compression;
/// let options = ProduceOptions::default()
///     .acks(1)
///     .compression(Compression::Zstd)
///     .timeout(Duration::from_secs(5))
///     .unknown_topic(UnknownTopicHandling::Retry);
/// assert_eq!(options.acks, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProduceOptions {
    /// Acknowledgements: `-1` all in-sync replicas (the default), `1` the leader, `0`
    /// none (the broker sends no response; no offsets come back).
    pub acks: i16,
    /// The codec for the batch.
    pub compression: Compression,
    /// How long the broker may wait for replication (`timeout_ms`).
    pub broker_timeout: Duration,
    /// Largest batch; bigger record sets are refused (Kafka's default
    /// `max.message.bytes`).
    pub max_batch_bytes: usize,
    /// The operation's deadline, retries included; `None` for the client's default.
    pub timeout: Option<Duration>,
    /// What to do if the topic does not exist (yet).
    pub unknown_topic: UnknownTopicHandling,
}

impl ProduceOptions {
    /// Sets the acknowledgements (`-1` all, `1` leader, `0` none).
    ///
    /// ```
    /// use kafka_sansio::client::ProduceOptions;
    /// assert_eq!(ProduceOptions::default().acks, -1); // all in-sync replicas
    /// assert_eq!(ProduceOptions::default().acks(0).acks, 0); // fire and forget
    /// ```
    #[must_use]
    pub fn acks(mut self, acks: i16) -> Self {
        self.acks = acks;
        self
    }

    /// Sets the codec.
    ///
    /// ```
    /// use kafka_sansio::client::ProduceOptions;
    /// use kafka_sansio::records::Compression;
    /// assert_eq!(ProduceOptions::default().compression(Compression::Lz4).compression, Compression::Lz4);
    /// ```
    #[must_use]
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets the operation's deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::ProduceOptions;
    /// assert_eq!(ProduceOptions::default().timeout(Duration::from_secs(5)).timeout, Some(Duration::from_secs(5)));
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets what to do if the topic does not exist (yet).
    ///
    /// ```
    /// use kafka_sansio::client::{ProduceOptions, UnknownTopicHandling};
    /// // Wait for a topic being created elsewhere instead of failing.
    /// let options = ProduceOptions::default().unknown_topic(UnknownTopicHandling::Retry);
    /// assert_eq!(options.unknown_topic, UnknownTopicHandling::Retry);
    /// ```
    #[must_use]
    pub fn unknown_topic(mut self, handling: UnknownTopicHandling) -> Self {
        self.unknown_topic = handling;
        self
    }
}

impl Default for ProduceOptions {
    fn default() -> Self {
        Self {
            acks: -1,
            compression: Compression::None,
            broker_timeout: Duration::from_secs(30),
            max_batch_bytes: crate::records::DEFAULT_MAX_BATCH_BYTES,
            timeout: None,
            unknown_topic: UnknownTopicHandling::Error,
        }
    }
}

/// Where produced records landed.
///
/// ```
/// # #[cfg(feature = "sim")] {
/// # let (mut sim, host) = kafka_sansio::doc_support::sim();
/// use std::time::Duration;
/// use kafka_sansio::client::{OpOutput, Record};
/// let now = sim.now();
/// let op = sim.client(host).produce(now, "orders", 0, vec![Record::new("a"), Record::new("b")], Default::default());
/// let OpOutput::Produced(out) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
/// assert_eq!((out.base_offset, out.record_count), (Some(0), 2));
/// # }
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceOutput {
    /// The offset of the first record (`None` with acks=0).
    pub base_offset: Option<i64>,
    /// How many records were written.
    pub record_count: usize,
    /// The broker's append time, if the topic uses log-append time.
    pub log_append_time: Option<i64>,
}

impl ProduceOutput {
    /// The offsets of the records, in order (empty with acks=0).
    ///
    /// ```
    /// use kafka_sansio::client::ProduceOutput;
    /// let out = ProduceOutput { base_offset: Some(10), record_count: 3, log_append_time: None };
    /// assert_eq!(out.offsets().collect::<Vec<_>>(), [10, 11, 12]);
    /// ```
    #[must_use]
    pub fn offsets(&self) -> std::ops::Range<i64> {
        match self.base_offset {
            Some(b) => b..b + self.record_count as i64,
            None => 0..0,
        }
    }
}

/// Which records a fetch returns.
///
/// ```
/// use kafka_sansio::client::{ClientConfig, FetchOptions, IsolationLevel};
/// // Skip records of aborted and open transactions:
/// let options = FetchOptions::default().isolation(IsolationLevel::ReadCommitted);
/// let mut config = ClientConfig::new("localhost:9092")?;
/// config.consumer.isolation = IsolationLevel::ReadCommitted;
/// # let _ = options;
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Every record below the high watermark.
    #[default]
    ReadUncommitted,
    /// Records of committed transactions only, below the last stable offset.
    ReadCommitted,
}

/// How a [`Client::fetch`] call reads.
///
/// ```
/// use std::time::Duration;
/// use kafka_sansio::client::FetchOptions;
/// let options = FetchOptions::default()
///     .min_bytes(64 * 1024)                  // wait for 64 KiB...
///     .max_wait(Duration::from_millis(200)) // ...or 200 ms
///     .max_bytes(4 << 20);
/// assert_eq!(options.max_bytes, 4 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchOptions {
    /// Bytes the broker should gather before answering (up to `max_wait`).
    pub min_bytes: i32,
    /// Most bytes for the partition (at least one batch is always returned).
    pub max_bytes: i32,
    /// How long the broker may wait for `min_bytes`.
    pub max_wait: Duration,
    /// Which records to return.
    pub isolation: IsolationLevel,
    /// The operation's deadline, retries included; `None` for the client's default.
    pub timeout: Option<Duration>,
    /// What to do if the topic does not exist (yet).
    pub unknown_topic: UnknownTopicHandling,
}

impl FetchOptions {
    /// Sets the bytes to wait for.
    ///
    /// ```
    /// use kafka_sansio::client::FetchOptions;
    /// assert_eq!(FetchOptions::default().min_bytes(1024).min_bytes, 1024);
    /// ```
    #[must_use]
    pub fn min_bytes(mut self, n: i32) -> Self {
        self.min_bytes = n;
        self
    }

    /// Sets the most bytes to return.
    ///
    /// ```
    /// use kafka_sansio::client::FetchOptions;
    /// assert_eq!(FetchOptions::default().max_bytes(1 << 20).max_bytes, 1 << 20);
    /// ```
    #[must_use]
    pub fn max_bytes(mut self, n: i32) -> Self {
        self.max_bytes = n;
        self
    }

    /// Sets how long the broker may wait for `min_bytes`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::FetchOptions;
    /// assert_eq!(FetchOptions::default().max_wait(Duration::ZERO).max_wait, Duration::ZERO); // answer at once
    /// ```
    #[must_use]
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.max_wait = d;
        self
    }

    /// Sets which records to return.
    ///
    /// ```
    /// use kafka_sansio::client::{FetchOptions, IsolationLevel};
    /// let options = FetchOptions::default().isolation(IsolationLevel::ReadCommitted);
    /// assert_eq!(options.isolation, IsolationLevel::ReadCommitted);
    /// ```
    #[must_use]
    pub fn isolation(mut self, level: IsolationLevel) -> Self {
        self.isolation = level;
        self
    }

    /// Sets the operation's deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::FetchOptions;
    /// assert_eq!(FetchOptions::default().timeout(Duration::from_secs(2)).timeout, Some(Duration::from_secs(2)));
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets what to do if the topic does not exist (yet).
    ///
    /// ```
    /// use kafka_sansio::client::{FetchOptions, UnknownTopicHandling};
    /// assert_eq!(FetchOptions::default().unknown_topic, UnknownTopicHandling::Error); // the default
    /// let options = FetchOptions::default().unknown_topic(UnknownTopicHandling::Retry);
    /// # let _ = options;
    /// ```
    #[must_use]
    pub fn unknown_topic(mut self, handling: UnknownTopicHandling) -> Self {
        self.unknown_topic = handling;
        self
    }
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            min_bytes: 1,
            max_bytes: 1024 * 1024,
            max_wait: Duration::from_millis(500),
            isolation: IsolationLevel::ReadUncommitted,
            timeout: None,
            unknown_topic: UnknownTopicHandling::Error,
        }
    }
}

/// A fetched record (offset, timestamp, key, value and headers, slices of the
/// response).
///
/// ```
/// use kafka_sansio::client::FetchedRecord;
/// fn show(r: &FetchedRecord) -> String {
///     let value = String::from_utf8_lossy(r.value().unwrap_or_default());
///     format!("@{} {}: {value}", r.offset, r.timestamp)
/// }
/// # let _ = show;
/// ```
pub type FetchedRecord = crate::records::Record;

/// What a fetch returned.
///
/// ```
/// # #[cfg(feature = "sim")] {
/// # let (mut sim, host) = kafka_sansio::doc_support::sim();
/// use std::time::Duration;
/// use kafka_sansio::client::{FetchOptions, OpOutput, Record};
/// let now = sim.now();
/// let op = sim.client(host).produce(now, "orders", 0, vec![Record::new("a"), Record::new("b")], Default::default());
/// sim.run_until_done(host, op, Duration::from_secs(10))?;
/// let now = sim.now();
/// let op = sim.client(host).fetch(now, "orders", 0, 0, FetchOptions::default());
/// let OpOutput::Fetched(out) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
/// assert_eq!(out.records.len(), 2);
/// assert_eq!((out.high_watermark, out.next_offset), (2, 2)); // fetch from next_offset next time
/// # }
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
///
/// [`Client::fetch_record_set`] returns a `FetchOutput<RecordSet>`: the same fields,
/// with the records lent from the response as they are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOutput<R = Vec<FetchedRecord>> {
    /// Records at or after the offset asked for, in offset order.
    pub records: R,
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// The last stable offset (`-1` if not reported).
    pub last_stable_offset: i64,
    /// The log start offset (`-1` if not reported).
    pub log_start_offset: i64,
    /// Where the next fetch should start: after the last record returned, past
    /// control batches and aborted records, or the offset asked for if nothing
    /// complete came back.
    pub next_offset: i64,
}

/// Which offset [`Client::list_offsets`] looks up.
///
/// ```
/// # #[cfg(feature = "sim")] {
/// # let (mut sim, host) = kafka_sansio::doc_support::sim();
/// use std::time::Duration;
/// use kafka_sansio::client::{OffsetSpec, OpOutput};
/// for (spec, expected) in [(OffsetSpec::Earliest, 0), (OffsetSpec::Latest, 0), (OffsetSpec::LastStable, 0), (OffsetSpec::Timestamp(0), -1)] {
///     let now = sim.now();
///     let op = sim.client(host).list_offsets(now, "orders", 0, spec);
///     let OpOutput::Offset { offset, .. } = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
///     assert_eq!(offset, expected, "{spec:?}"); // an empty partition; -1: no such record
/// }
/// # }
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the high watermark).
    Latest,
    /// The last stable offset: where a read_committed reader's log ends now (the
    /// first offset of the oldest transaction still open, else the high
    /// watermark). Asked at read_committed (ListOffsets v2+).
    LastStable,
    /// The first offset whose timestamp is at or after this (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            Self::Earliest => -2,
            Self::Latest | Self::LastStable => -1,
            Self::Timestamp(t) => t,
        }
    }
}

impl Client {
    /// Produces `records` to one partition as one batch (rskafka's
    /// `PartitionClient::produce`), and returns where they landed. Retried on
    /// retriable errors, after a leader move too; without idempotence a retry after a
    /// lost response can write the records twice (use the producer for exactly-once
    /// writes).
    ///
    /// The batch is encoded here, so a record set too large for one batch fails at
    /// once with [`ClientError::Records`].
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{OpOutput, ProduceOptions, Record};
    /// use kafka_sansio::records::Compression;
    /// let now = sim.now();
    /// let records = vec![Record::new("a").key("k").timestamp(1_700_000_000_000), Record::new("b")];
    /// let options = ProduceOptions::default().compression(Compression::Lz4);
    /// let op = sim.client(host).produce(now, "orders", 2, records, options);
    /// let OpOutput::Produced(out) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
    /// assert_eq!(out.offsets().collect::<Vec<_>>(), [0, 1]);
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn produce(
        &mut self,
        now: Instant,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
        options: ProduceOptions,
    ) -> OpId {
        let encoded = encode_batch(&records, &options);
        let timeout = options.timeout;
        let op = Produce {
            topic: topic.into(),
            partition,
            batch: encoded.as_ref().ok().cloned().unwrap_or_default(),
            count: records.len(),
            options,
            result: None,
            error: encoded.err(),
        };
        let targets = if op.error.is_some() {
            Vec::new()
        } else {
            vec![Target::Leader {
                topic: op.topic.clone(),
                partition,
            }]
        };
        self.start_op(now, Box::new(op), targets, timeout)
    }

    /// Fetches records of one partition from `offset`.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{FetchOptions, OpOutput, Record};
    /// let now = sim.now();
    /// let op = sim.client(host).produce(now, "orders", 0, vec![Record::new("a"), Record::new("b")], Default::default());
    /// sim.run_until_done(host, op, Duration::from_secs(10))?;
    /// let now = sim.now();
    /// let op = sim.client(host).fetch(now, "orders", 0, 1, FetchOptions::default().max_wait(Duration::ZERO));
    /// let OpOutput::Fetched(out) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
    /// assert_eq!(out.records.iter().map(|r| r.offset).collect::<Vec<_>>(), [1]);
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn fetch(
        &mut self,
        now: Instant,
        topic: &str,
        partition: i32,
        offset: i64,
        options: FetchOptions,
    ) -> OpId {
        self.start_fetch(now, topic, partition, offset, options, false)
    }

    /// Fetches records of one partition from `offset` as [`fetch`](Self::fetch)
    /// does, but leaves them in the response: the output's [`RecordSet`] lends each
    /// record as it is read, with no allocation per record (the cheapest way
    /// through a fetch). A record that does not parse is an error of the reading,
    /// not of the operation.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{FetchOptions, OpOutput, Record};
    /// let now = sim.now();
    /// let op = sim.client(host).produce(now, "orders", 0, vec![Record::new("a"), Record::new("b")], Default::default());
    /// sim.run_until_done(host, op, Duration::from_secs(10))?;
    /// let now = sim.now();
    /// let op = sim.client(host).fetch_record_set(now, "orders", 0, 1, FetchOptions::default().max_wait(Duration::ZERO));
    /// let OpOutput::FetchedSet(out) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
    /// let mut reader = out.records.reader();
    /// let record = reader.next_ref().expect("one record")?;
    /// assert_eq!((record.offset, record.value()), (1, Some(&b"b"[..])));
    /// assert!(reader.next_ref().is_none());
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fetch_record_set(
        &mut self,
        now: Instant,
        topic: &str,
        partition: i32,
        offset: i64,
        options: FetchOptions,
    ) -> OpId {
        self.start_fetch(now, topic, partition, offset, options, true)
    }

    fn start_fetch(
        &mut self,
        now: Instant,
        topic: &str,
        partition: i32,
        offset: i64,
        options: FetchOptions,
        lend: bool,
    ) -> OpId {
        let timeout = options.timeout;
        let op = Fetch {
            topic: topic.into(),
            partition,
            offset,
            options,
            lend,
            result: None,
        };
        let targets = vec![Target::Leader {
            topic: op.topic.clone(),
            partition,
        }];
        self.start_op(now, Box::new(op), targets, timeout)
    }

    /// Looks up an offset of one partition (earliest, latest, or by timestamp).
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{OffsetSpec, OpOutput, Record};
    /// let now = sim.now();
    /// let op = sim.client(host).produce(now, "orders", 0, vec![Record::new("a"), Record::new("b")], Default::default());
    /// sim.run_until_done(host, op, Duration::from_secs(10))?;
    /// let now = sim.now();
    /// let op = sim.client(host).list_offsets(now, "orders", 0, OffsetSpec::Latest);
    /// let OpOutput::Offset { offset, .. } = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
    /// assert_eq!(offset, 2);
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn list_offsets(
        &mut self,
        now: Instant,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> OpId {
        let op = ListOffsets::new(
            topic.into(),
            partition,
            spec,
            IsolationLevel::ReadUncommitted,
        );
        let targets = vec![Target::Leader {
            topic: op.topic.clone(),
            partition,
        }];
        self.start_op(now, Box::new(op), targets, None)
    }
}

/// Encodes records into one RecordBatch v2.
pub(crate) fn encode_batch(
    records: &[Record],
    options: &ProduceOptions,
) -> Result<Bytes, ClientError> {
    if records.is_empty() {
        return Err(ClientError::InvalidArgument("no records to produce".into()));
    }
    let config = BatchConfig {
        compression: options.compression,
        max_batch_bytes: options.max_batch_bytes,
        ..BatchConfig::default()
    };
    // One allocation of about the batch's size: growing from empty reallocates (and
    // copies the batch) about log2(size / 64 KiB) times.
    let mut buf = BytesMut::with_capacity(
        batch_size_estimate(records)
            .min(crate::records::BATCH_HEADER_LEN.saturating_add(config.max_batch_bytes)),
    );
    let mut builder = BatchBuilder::new(&mut buf, &config);
    let mut headers: Vec<NewHeader<'_>> = Vec::new();
    for r in records {
        headers.clear();
        headers.extend(
            r.headers
                .iter()
                .map(|h| NewHeader::new(&h.key, h.value.as_deref())),
        );
        let record = NewRecord {
            timestamp: r.timestamp.unwrap_or(-1),
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers: &headers,
        };
        builder
            .append(&record)
            .map_err(|e| ClientError::Records(e.to_string()))?;
    }
    builder
        .finish()
        .map_err(|e| ClientError::Records(e.to_string()))?;
    // The builder grows its buffer in 64 KiB steps; a small batch would otherwise
    // pin a whole step for as long as its operation lives (retries included).
    if buf.capacity() > 2 * buf.len() {
        return Ok(Bytes::copy_from_slice(&buf));
    }
    Ok(buf.freeze())
}

/// About how many bytes `records` take as one uncompressed batch: their keys, values
/// and headers plus the few varints around each (a compressed batch is smaller).
fn batch_size_estimate(records: &[Record]) -> usize {
    const PER_RECORD: usize = 16; // length, attributes, deltas, key and value lengths
    const PER_HEADER: usize = 4; // key and value lengths
    let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
    records
        .iter()
        .fold(crate::records::BATCH_HEADER_LEN, |n, r| {
            let headers = r
                .headers
                .iter()
                .map(|h| h.key.len() + len(&h.value) + PER_HEADER)
                .sum::<usize>();
            n.saturating_add(len(&r.key) + len(&r.value) + headers + PER_RECORD)
        })
}

/// Retry or fail for a partition-level error code of a leader-routed request.
pub(crate) fn partition_step(
    api: ApiKey,
    code: ErrorCode,
    topic: &Arc<str>,
    partition: i32,
) -> Step {
    let refresh = match code {
        ErrorCode::NOT_LEADER_OR_FOLLOWER
        | ErrorCode::LEADER_NOT_AVAILABLE
        | ErrorCode::FENCED_LEADER_EPOCH
        | ErrorCode::UNKNOWN_LEADER_EPOCH
        | ErrorCode::REPLICA_NOT_AVAILABLE
        | ErrorCode::KAFKA_STORAGE_ERROR
        | ErrorCode::NOT_ENOUGH_REPLICAS => Refresh::Leader {
            topic: topic.clone(),
            partition,
        },
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION | ErrorCode::UNKNOWN_TOPIC_ID => {
            Refresh::Topic(topic.clone())
        }
        _ => Refresh::Nothing,
    };
    Step::from_code(api, code, None, refresh)
}

struct Produce {
    topic: Arc<str>,
    partition: i32,
    batch: Bytes,
    count: usize,
    options: ProduceOptions,
    result: Option<ProduceOutput>,
    error: Option<ClientError>,
}

impl Operation for Produce {
    fn name(&self) -> &'static str {
        "Produce"
    }

    fn lane(&self) -> Lane {
        Lane::Produce
    }

    fn unknown_topic(&self) -> UnknownTopicHandling {
        self.options.unknown_topic
    }

    fn build(
        &mut self,
        _items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        let v = version(versions, ApiKey::Produce)
            .filter(|v| *v >= 3)
            .ok_or(ClientError::Unsupported(ApiKey::Produce))?;
        let request = ProduceRequest {
            transactional_id: None,
            acks: self.options.acks,
            timeout_ms: i32::try_from(self.options.broker_timeout.as_millis()).unwrap_or(i32::MAX),
            topic_data: vec![produce_request::TopicProduceData {
                name: (&*self.topic).into(),
                partition_data: vec![produce_request::PartitionProduceData {
                    index: self.partition,
                    records: Some(self.batch.clone()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        Ok(Built::new(request, v).hold(self.options.broker_timeout))
    }

    fn on_reply(
        &mut self,
        items: &[usize],
        reply: Reply,
        _ctx: &mut Ctx<'_>,
    ) -> Vec<(usize, Step)> {
        if matches!(reply, Reply::Sent) {
            self.result = Some(ProduceOutput {
                base_offset: None,
                record_count: self.count,
                log_append_time: None,
            });
            return all(items, || Step::Done);
        }
        let response = match decode::<ProduceRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        let p = response
            .responses
            .iter()
            .filter(|t| *t.name == *self.topic)
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == self.partition);
        let Some(p) = p else {
            return all(items, || {
                Step::Fail(ClientError::InvalidResponse {
                    api: ApiKey::Produce,
                    detail: format!("no result for {}-{}", self.topic, self.partition),
                })
            });
        };
        let code = ErrorCode(p.error_code);
        if code.is_ok() {
            self.result = Some(ProduceOutput {
                base_offset: Some(p.base_offset),
                record_count: self.count,
                log_append_time: (p.log_append_time_ms >= 0).then_some(p.log_append_time_ms),
            });
            return all(items, || Step::Done);
        }
        let message = p.error_message.as_ref().map(|m| m.to_string());
        all(items, || {
            match partition_step(ApiKey::Produce, code, &self.topic, self.partition) {
                Step::Fail(_) => {
                    Step::Fail(ClientError::broker(ApiKey::Produce, code, message.clone()))
                }
                s => s,
            }
        })
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if let Some((_, e)) = failed.into_iter().next() {
            return Err(e);
        }
        self.result
            .map(OpOutput::Produced)
            .ok_or(ClientError::Closed)
    }
}

/// Room for a Fetch response's fields around its records (headers, ids, offsets,
/// aborted transactions).
pub(crate) const FETCH_RESPONSE_OVERHEAD: usize = 64 * 1024;

impl FetchOutput<()> {
    /// These offsets with their records.
    fn with<R>(self, records: R) -> FetchOutput<R> {
        FetchOutput {
            records,
            high_watermark: self.high_watermark,
            last_stable_offset: self.last_stable_offset,
            log_start_offset: self.log_start_offset,
            next_offset: self.next_offset,
        }
    }
}

struct Fetch {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    options: FetchOptions,
    /// Return the records as a [`RecordSet`] instead of decoding them here.
    lend: bool,
    /// [`OpOutput::Fetched`] or [`OpOutput::FetchedSet`].
    result: Option<OpOutput>,
}

impl Operation for Fetch {
    fn name(&self) -> &'static str {
        "Fetch"
    }

    fn lane(&self) -> Lane {
        Lane::Fetch
    }

    fn unknown_topic(&self) -> UnknownTopicHandling {
        self.options.unknown_topic
    }

    fn build(
        &mut self,
        _items: &[usize],
        versions: &Versions,
        metadata: &Metadata,
    ) -> Result<Built, ClientError> {
        let mut v =
            version(versions, ApiKey::Fetch).ok_or(ClientError::Unsupported(ApiKey::Fetch))?;
        let topic_id = metadata
            .topic(&self.topic)
            .map(|t| t.id)
            .unwrap_or_default();
        if topic_id == crate::wire::Uuid::ZERO {
            v = v.min(12); // topic ids are needed from v13
        }
        let (epoch, max_wait) = (
            match metadata.leader(&self.topic, self.partition) {
                super::super::metadata::Leader::Known { epoch, .. } => epoch,
                _ => -1,
            },
            i32::try_from(self.options.max_wait.as_millis()).unwrap_or(i32::MAX),
        );
        let request = FetchRequest {
            max_wait_ms: max_wait,
            min_bytes: self.options.min_bytes,
            max_bytes: self.options.max_bytes.max(1),
            isolation_level: match self.options.isolation {
                IsolationLevel::ReadUncommitted => 0,
                IsolationLevel::ReadCommitted => 1,
            },
            session_id: 0,
            session_epoch: -1,
            topics: vec![fetch_request::FetchTopic {
                topic: if v <= 12 {
                    (&*self.topic).into()
                } else {
                    Default::default()
                },
                topic_id: if v >= 13 {
                    topic_id
                } else {
                    Default::default()
                },
                partitions: vec![fetch_request::FetchPartition {
                    partition: self.partition,
                    current_leader_epoch: if v >= 9 { epoch } else { -1 },
                    fetch_offset: self.offset,
                    partition_max_bytes: self.options.max_bytes.max(1),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        // The response is at most max_bytes of records plus its fields (a first
        // batch larger than max_bytes still comes whole, KIP-74: its room grows).
        let expected = usize::try_from(self.options.max_bytes.max(1))
            .unwrap_or(0)
            .saturating_add(FETCH_RESPONSE_OVERHEAD);
        Ok(Built::new(request, v)
            .hold(self.options.max_wait)
            .expect_response_bytes(expected))
    }

    fn on_reply(
        &mut self,
        items: &[usize],
        reply: Reply,
        _ctx: &mut Ctx<'_>,
    ) -> Vec<(usize, Step)> {
        let response = match decode::<FetchRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        let top = ErrorCode(response.error_code);
        if !top.is_ok() {
            return all(items, || {
                Step::from_code(ApiKey::Fetch, top, None, Refresh::Metadata)
            });
        }
        let p = response
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == self.partition);
        let Some(p) = p else {
            return all(items, || {
                Step::Fail(ClientError::InvalidResponse {
                    api: ApiKey::Fetch,
                    detail: format!("no data for {}-{}", self.topic, self.partition),
                })
            });
        };
        let code = ErrorCode(p.error_code);
        if !code.is_ok() {
            return all(items, || {
                partition_step(ApiKey::Fetch, code, &self.topic, self.partition)
            });
        }
        let aborted = (self.options.isolation == IsolationLevel::ReadCommitted).then(|| {
            ReadCommitted::new(p.aborted_transactions.iter().flatten().map(|t| {
                AbortedTransaction {
                    producer_id: t.producer_id,
                    first_offset: t.first_offset,
                }
            }))
        });
        let set = record_set(p.records.clone().unwrap_or_default(), self.offset, aborted);
        let output = set.and_then(|(records, next_offset)| {
            let offsets = FetchOutput {
                records: (),
                high_watermark: p.high_watermark,
                last_stable_offset: p.last_stable_offset,
                log_start_offset: p.log_start_offset,
                next_offset,
            };
            Ok(if self.lend {
                OpOutput::FetchedSet(offsets.with(records))
            } else {
                let owned = records
                    .to_records()
                    .map_err(|e| ClientError::Records(e.to_string()))?;
                OpOutput::Fetched(offsets.with(owned))
            })
        });
        match output {
            Ok(output) => {
                self.result = Some(output);
                all(items, || Step::Done)
            }
            Err(e) => all(items, || Step::Fail(e.clone())),
        }
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        if let Some((_, e)) = failed.into_iter().next() {
            return Err(e);
        }
        self.result.ok_or(ClientError::Closed)
    }
}

/// The batches of a partition's records holding offsets from `offset` on, as a
/// [`RecordSet`] (framing and CRCs checked, control batches and, with `filter`,
/// aborted transactions left out), and the offset to fetch next.
pub(crate) fn record_set(
    buf: Bytes,
    offset: i64,
    mut filter: Option<ReadCommitted>,
) -> Result<(RecordSet, i64), ClientError> {
    let opts = DecodeOptions::default();
    let bad = |e: crate::records::RecordsError| ClientError::Records(e.to_string());
    let mut kept = Vec::new();
    let mut next = offset;
    for batch in BatchReader::new(buf, opts) {
        let batch = batch.map_err(bad)?;
        let last = batch.last_offset();
        let keep = crate::records::delivered(filter.as_mut(), &batch, &opts).map_err(bad)?;
        next = next.max(last + 1);
        if keep && last >= offset {
            kept.push(batch);
        }
    }
    Ok((RecordSet::new(kept, offset, opts), next))
}

pub(crate) struct ListOffsets {
    topic: Arc<str>,
    partition: i32,
    spec: OffsetSpec,
    /// At read_committed the latest offset is the last stable offset (a consumer
    /// that starts there reads a transaction still open when it commits).
    isolation: IsolationLevel,
    result: Option<(i64, i64)>,
}

impl ListOffsets {
    pub(crate) fn new(
        topic: Arc<str>,
        partition: i32,
        spec: OffsetSpec,
        isolation: IsolationLevel,
    ) -> Self {
        let isolation = if spec == OffsetSpec::LastStable {
            IsolationLevel::ReadCommitted
        } else {
            isolation
        };
        Self {
            topic,
            partition,
            spec,
            isolation,
            result: None,
        }
    }
}

impl Operation for ListOffsets {
    fn name(&self) -> &'static str {
        "ListOffsets"
    }

    fn unknown_topic(&self) -> UnknownTopicHandling {
        UnknownTopicHandling::Error
    }

    fn build(
        &mut self,
        _items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        // The isolation level came with v2.
        let least = match self.isolation {
            IsolationLevel::ReadUncommitted => 1,
            IsolationLevel::ReadCommitted => 2,
        };
        let v = version(versions, ApiKey::ListOffsets)
            .filter(|v| *v >= least)
            .ok_or(ClientError::Unsupported(ApiKey::ListOffsets))?;
        let request = ListOffsetsRequest {
            replica_id: -1,
            isolation_level: match self.isolation {
                IsolationLevel::ReadUncommitted => 0,
                IsolationLevel::ReadCommitted => 1,
            },
            topics: vec![list_offsets_request::ListOffsetsTopic {
                name: (&*self.topic).into(),
                partitions: vec![list_offsets_request::ListOffsetsPartition {
                    partition_index: self.partition,
                    current_leader_epoch: -1,
                    timestamp: self.spec.wire(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        Ok(Built::new(request, v))
    }

    fn on_reply(
        &mut self,
        items: &[usize],
        reply: Reply,
        _ctx: &mut Ctx<'_>,
    ) -> Vec<(usize, Step)> {
        let response = match decode::<ListOffsetsRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        let p = response
            .topics
            .iter()
            .filter(|t| *t.name == *self.topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == self.partition);
        let Some(p) = p else {
            return all(items, || {
                Step::Fail(ClientError::InvalidResponse {
                    api: ApiKey::ListOffsets,
                    detail: format!("no offset for {}-{}", self.topic, self.partition),
                })
            });
        };
        let code = ErrorCode(p.error_code);
        if code.is_ok() {
            self.result = Some((p.offset, p.timestamp));
            return all(items, || Step::Done);
        }
        all(items, || {
            partition_step(ApiKey::ListOffsets, code, &self.topic, self.partition)
        })
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        if let Some((_, e)) = failed.into_iter().next() {
            return Err(e);
        }
        self.result
            .map(|(offset, timestamp)| OpOutput::Offset { offset, timestamp })
            .ok_or(ClientError::Closed)
    }
}
