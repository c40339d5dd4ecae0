//! Records waiting to be encoded, kept compact: every record's fields and bytes are
//! copied into one growing byte buffer, so that a waiting record costs its bytes
//! and a 29-byte entry instead of a [`ProducerRecord`] (128 bytes) and the
//! allocations of its key and value. The facades' inbox (records handed over and
//! not yet taken by the driver) and the producer's records waiting for their
//! topic's metadata are chains of such queues ([`RecordChain`]): fixed 64 KiB
//! chunks that a burst fills one after another and that are freed (or kept, a
//! few, for the next burst) as they empty, rather than one buffer doubled and
//! copied as it grows and held whole until its last record is taken.
//!
//! Copying happens where the record is handed over, so the sender's key and value
//! are freed by the thread that made them, and nothing the sender allocated crosses
//! to the driver's thread (a reference count or a free on another core costs more
//! than copying a hundred bytes).
//!
//! A key or value of an owned record ([`ProducerRecord`]) at least [`SHARED_MIN`]
//! bytes long is not copied: its [`Bytes`] handle is moved into a side list and the
//! entry names it. Copying it would cost more than the handle does (a 10 KiB value
//! copied in and then out again into the batch, and held twice while it waits), and
//! the encoder copies it from the handle as it would from the buffer. Borrowed
//! records ([`BorrowedRecord`]) are always copied: nothing else keeps their bytes.
//!
//! An entry is, in native byte order: flags (`u8`), topic index (`u32`), partition
//! (`i32`), timestamp (`i64`), key length (`u32`), value length (`u32`), header list
//! index (`u32`), then the key's and the value's bytes. A key or value kept as a
//! handle has no bytes in the entry, and its length field holds the handle's index
//! in the side list instead. Headers are rare on the hot path and stay as they
//! came, moved into a side list of their own.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use super::ProducerRecord;
use crate::client::ops::partition::RecordHeader;

const HAS_PARTITION: u8 = 1;
const HAS_KEY: u8 = 2;
const HAS_VALUE: u8 = 4;
const HAS_TIMESTAMP: u8 = 8;
const HAS_HEADERS: u8 = 16;
/// The key (value) is a handle in the side list; its length field is the index.
const KEY_SHARED: u8 = 32;
const VALUE_SHARED: u8 = 64;

/// Keys and values of owned records at least this long are kept as their handles
/// rather than copied (see the module docs). Below it, a copy costs less than the
/// handle's reference count and a free on another thread; above it, the copy costs
/// more (a second pass over the bytes, and a second copy of them held).
pub(crate) const SHARED_MIN: usize = 1024;

/// Whether an owned record's key or value is kept as its handle (see
/// [`SHARED_MIN`]) rather than copied into a queue.
#[inline(always)]
fn kept_as_handle(b: &Bytes) -> bool {
    b.len() >= SHARED_MIN
}

/// Where an entry's fields are, and its length (the key's and value's bytes follow).
const TOPIC_AT: usize = 1;
const PARTITION_AT: usize = 5;
const TIMESTAMP_AT: usize = 9;
const KEY_LEN_AT: usize = 17;
const VALUE_LEN_AT: usize = 21;
const HEADERS_AT: usize = 25;
const ENTRY_LEN: usize = 29;

/// A record to produce, with its bytes borrowed: what a [`RecordBuffer`] copies
/// in. The fields mean what [`ProducerRecord`]'s do.
///
/// ```
/// use kafka_sansio::client::BorrowedRecord;
/// let line = b"user-7:clicked";
/// let r = BorrowedRecord::new("events", &line[7..]).key(&line[..6]).partition(2);
/// assert_eq!((r.topic, r.key, r.value), ("events", Some(&b"user-7"[..]), Some(&b"clicked"[..])));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BorrowedRecord<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition, or `None` for the partitioner's choice.
    pub partition: Option<i32>,
    /// The key (`None` for null).
    pub key: Option<&'a [u8]>,
    /// The value (`None` for a tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers, in order.
    pub headers: &'a [RecordHeader],
    /// Milliseconds since the epoch; `None` is filled in when the record is handed
    /// to a producer (the core writes `-1`).
    pub timestamp: Option<i64>,
}

impl<'a> BorrowedRecord<'a> {
    /// A record with this value for `topic`.
    ///
    /// ```
    /// use kafka_sansio::client::BorrowedRecord;
    /// let r = BorrowedRecord::new("orders", b"paid");
    /// assert_eq!((r.key, r.partition, r.timestamp), (None, None, None));
    /// ```
    #[must_use]
    pub fn new(topic: &'a str, value: &'a [u8]) -> Self {
        Self {
            topic,
            partition: None,
            key: None,
            value: Some(value),
            headers: &[],
            timestamp: None,
        }
    }

    /// Sets the key.
    ///
    /// ```
    /// use kafka_sansio::client::BorrowedRecord;
    /// assert_eq!(BorrowedRecord::new("orders", b"paid").key(b"order-17").key, Some(&b"order-17"[..]));
    /// ```
    #[must_use]
    pub fn key(mut self, key: &'a [u8]) -> Self {
        self.key = Some(key);
        self
    }

    /// Pins the partition.
    ///
    /// ```
    /// use kafka_sansio::client::BorrowedRecord;
    /// assert_eq!(BorrowedRecord::new("orders", b"paid").partition(3).partition, Some(3));
    /// ```
    #[must_use]
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the headers.
    ///
    /// ```
    /// use kafka_sansio::client::{BorrowedRecord, RecordHeader};
    /// let headers = [RecordHeader { key: "source".into(), value: Some("web".into()) }];
    /// assert_eq!(BorrowedRecord::new("orders", b"paid").headers(&headers).headers.len(), 1);
    /// ```
    #[must_use]
    pub fn headers(mut self, headers: &'a [RecordHeader]) -> Self {
        self.headers = headers;
        self
    }

    /// Sets the timestamp.
    ///
    /// ```
    /// use kafka_sansio::client::BorrowedRecord;
    /// let r = BorrowedRecord::new("orders", b"paid").timestamp(1_700_000_000_000);
    /// assert_eq!(r.timestamp, Some(1_700_000_000_000));
    /// ```
    #[must_use]
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }

    /// The bytes this record takes in a batch (an upper bound of its encoding).
    pub(crate) fn size(&self) -> usize {
        let k = self.key.map_or(0, <[u8]>::len);
        let v = self.value.map_or(0, <[u8]>::len);
        k + v + headers_size(self.headers) + RECORD_SIZE
    }
}

/// What a record takes in a batch besides its key, value and headers (an upper
/// bound of its length, attributes, deltas and counts).
const RECORD_SIZE: usize = 25;

/// What a record's headers take in a batch (an upper bound).
fn headers_size(headers: &[RecordHeader]) -> usize {
    headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 10)
        .sum()
}

impl ProducerRecord {
    /// [`BorrowedRecord::size`], without building the borrowed view (every record
    /// `Producer::send` hands over is counted against the budget).
    #[inline]
    #[cfg_attr(
        not(any(feature = "tokio", feature = "smol", feature = "blocking")),
        allow(dead_code)
    )]
    pub(crate) fn size(&self) -> usize {
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        len(&self.key) + len(&self.value) + headers_size(&self.headers) + RECORD_SIZE
    }
}

impl ProducerRecord {
    /// The record's fields, borrowed.
    ///
    /// ```
    /// use kafka_sansio::client::ProducerRecord;
    /// let r = ProducerRecord::new("orders", "paid").key("order-17");
    /// assert_eq!(r.borrowed().key, Some(&b"order-17"[..]));
    /// ```
    #[must_use]
    pub fn borrowed(&self) -> BorrowedRecord<'_> {
        BorrowedRecord {
            topic: &self.topic,
            partition: self.partition,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: &self.headers,
            timestamp: self.timestamp,
        }
    }
}

/// Where the entry after a queue's front one starts, and the front one's flags.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NextEntry {
    at: usize,
    flags: u8,
}

/// A record as a [`RecordQueue`] holds it: its fields, borrowed, and the handles of
/// its key and value where the queue keeps them as handles (then `fields` borrows
/// from them). Another queue taking it keeps those handles too, instead of copying.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueuedRecord<'a> {
    pub(crate) fields: BorrowedRecord<'a>,
    pub(crate) key: Option<&'a Bytes>,
    pub(crate) value: Option<&'a Bytes>,
}

impl<'a> QueuedRecord<'a> {
    /// An owned record, with the handles of its key and value where they are large
    /// enough to keep rather than copy.
    pub(crate) fn of(record: &'a ProducerRecord) -> Self {
        let large = |b: &&Bytes| kept_as_handle(b);
        Self {
            fields: record.borrowed(),
            key: record.key.as_ref().filter(large),
            value: record.value.as_ref().filter(large),
        }
    }

    /// The bytes of entries a queue writes for this record: its entry and the
    /// bytes of its key and value, except those kept as handles.
    pub(crate) fn entry_len(&self) -> usize {
        let inline = |field: Option<&[u8]>, kept: Option<&Bytes>| match kept {
            Some(_) => 0,
            None => field.map_or(0, <[u8]>::len),
        };
        ENTRY_LEN + inline(self.fields.key, self.key) + inline(self.fields.value, self.value)
    }
}

/// Many records copied into one buffer, to hand to a producer at once (the
/// facades' `Producer::send_buffer`): filling it costs a copy of each record's
/// bytes and no allocation per record, and the records' own memory can be reused
/// or freed at once. For records read from a file or a socket, or built in a
/// reused scratch buffer.
///
/// ```
/// use kafka_sansio::client::{BorrowedRecord, RecordBuffer};
/// let input = b"a:1\nb:2\nc:3\n";
/// let mut buffer = RecordBuffer::new();
/// for line in input.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
///     buffer.push(BorrowedRecord::new("events", &line[2..]).key(&line[..1]));
/// }
/// assert_eq!(buffer.len(), 3);
/// ```
#[derive(Debug, Default)]
pub struct RecordBuffer {
    pub(crate) queue: RecordQueue,
    /// The budget its records take in a producer (their sizes as it counts them).
    pub(crate) bytes: usize,
}

impl RecordBuffer {
    /// An empty buffer.
    ///
    /// ```
    /// assert!(kafka_sansio::client::RecordBuffer::new().is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty buffer with room for `records` records of `bytes` key and value
    /// bytes in all.
    ///
    /// ```
    /// use kafka_sansio::client::{BorrowedRecord, RecordBuffer};
    /// let mut buffer = RecordBuffer::with_capacity(1000, 100_000);
    /// buffer.push(BorrowedRecord::new("events", b"x"));
    /// assert_eq!(buffer.len(), 1);
    /// ```
    #[must_use]
    pub fn with_capacity(records: usize, bytes: usize) -> Self {
        let mut queue = RecordQueue::default();
        queue.reserve(records, bytes);
        Self { queue, bytes: 0 }
    }

    /// Copies a record in, after those already there.
    ///
    /// ```
    /// use kafka_sansio::client::{BorrowedRecord, RecordBuffer};
    /// let mut buffer = RecordBuffer::new();
    /// let mut scratch = Vec::new();
    /// for i in 0..3 {
    ///     scratch.clear();
    ///     scratch.extend_from_slice(format!("reading {i}").as_bytes());
    ///     buffer.push(BorrowedRecord::new("metrics", &scratch)); // copied: scratch is reused
    /// }
    /// assert_eq!(buffer.len(), 3);
    /// ```
    pub fn push(&mut self, record: BorrowedRecord<'_>) {
        self.bytes += record.size();
        self.queue.push_ref(&record);
    }

    /// Records in the buffer.
    ///
    /// ```
    /// use kafka_sansio::client::{BorrowedRecord, RecordBuffer};
    /// let mut buffer = RecordBuffer::new();
    /// buffer.push(BorrowedRecord::new("t", b"v"));
    /// assert_eq!(buffer.len(), 1);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether the buffer holds no record.
    ///
    /// ```
    /// assert!(kafka_sansio::client::RecordBuffer::default().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Empties the buffer, keeping its memory for the next records.
    ///
    /// ```
    /// use kafka_sansio::client::{BorrowedRecord, RecordBuffer};
    /// let mut buffer = RecordBuffer::new();
    /// buffer.push(BorrowedRecord::new("t", b"v"));
    /// buffer.clear();
    /// assert!(buffer.is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.bytes = 0;
        self.queue.clear();
    }

    /// The records, in order, borrowed from the buffer.
    ///
    /// ```
    /// use kafka_sansio::client::{BorrowedRecord, RecordBuffer};
    /// let mut buffer = RecordBuffer::new();
    /// buffer.push(BorrowedRecord::new("t", b"v").key(b"k"));
    /// let first = buffer.iter().next().unwrap();
    /// assert_eq!((first.topic, first.key, first.value), ("t", Some(&b"k"[..]), Some(&b"v"[..])));
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = BorrowedRecord<'_>> {
        self.queue.iter()
    }
}

/// A queue's chunks are of this many bytes: a burst fills as many as it needs
/// instead of one queue doubled (and copied) as it grows. Every chunk is an
/// allocation of one size, small enough that the allocator serves it from its heap
/// (glibc maps blocks of 128 KiB and more on their own, and after freeing one it
/// raises that threshold and keeps more freed memory resident), and emptied chunks
/// are freed one by one as the records are taken, or kept as room for the next.
const CHUNK_BYTES: usize = 64 << 10;

/// Emptied chunks a [`RecordChain`] keeps by default (256 KiB of them); a longer
/// burst's other chunks are freed as they empty.
const KEPT_CHUNKS: usize = 4;

/// Queues shorter than this are copied behind what waits rather than kept as they
/// came: each kept queue is an allocation held until its last record is taken.
#[cfg_attr(
    not(any(feature = "tokio", feature = "smol", feature = "blocking")),
    allow(dead_code)
)]
pub(crate) const COPIED_QUEUE_RECORDS: usize = 32;

/// Records in order, in a chain of [`RecordQueue`]s: single records (and short
/// queues) are copied into chunks of the chain's own, of [`CHUNK_BYTES`] each; long
/// queues handed over whole wait as they came, one behind the other (a sender's
/// queue is never written into: it has no room to spare). The facades' inbox and
/// the producer's records waiting for their topic's metadata are such chains.
#[derive(Debug)]
pub(crate) struct RecordChain {
    /// Never an empty queue.
    queues: VecDeque<RecordQueue>,
    /// Whether the last queue is a chunk of the chain's own, which records are
    /// copied into.
    last_is_own: bool,
    /// Emptied chunks, at most `keep` of them.
    spares: Vec<RecordQueue>,
    keep: usize,
}

impl Default for RecordChain {
    /// An empty chain keeping [`KEPT_CHUNKS`] emptied chunks.
    fn default() -> Self {
        Self::keeping(KEPT_CHUNKS)
    }
}

// The facades' inbox uses what the producer's own chains do not.
#[cfg_attr(
    not(any(feature = "tokio", feature = "smol", feature = "blocking")),
    allow(dead_code)
)]
impl RecordChain {
    /// An empty chain keeping at most `keep` emptied chunks for the next records
    /// (0 frees each as it empties).
    pub(crate) fn keeping(keep: usize) -> Self {
        Self {
            queues: VecDeque::new(),
            last_is_own: false,
            spares: Vec::new(),
            keep,
        }
    }

    /// Records in the chain.
    pub(crate) fn len(&self) -> usize {
        self.queues.iter().map(RecordQueue::len).sum()
    }

    /// Whether the chain holds no record.
    pub(crate) fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// One record, copied behind the others (its large key and value kept as their
    /// handles, see the module docs).
    pub(crate) fn push(&mut self, record: ProducerRecord) {
        // Its entry length without building its `QueuedRecord` view: this is every
        // record `Producer::send` hands over (measured: about 10 instructions a
        // record).
        let copied = |b: &Option<Bytes>| match b {
            Some(b) if !kept_as_handle(b) => b.len(),
            _ => 0,
        };
        let bytes = ENTRY_LEN + copied(&record.key) + copied(&record.value);
        self.own_last(bytes).push(record);
    }

    /// A record another queue holds, copied behind the others (its handles shared).
    pub(crate) fn push_queued(&mut self, record: &QueuedRecord<'_>) {
        self.own_last(record.entry_len()).push_queued(record);
    }

    /// A queue of records behind the others: kept whole, or copied when it is short
    /// (then it is dropped here, by its sender's thread).
    pub(crate) fn push_queue(&mut self, queue: RecordQueue) {
        if queue.is_empty() {
            return;
        }
        if queue.len() < COPIED_QUEUE_RECORDS {
            self.own_last(queue.entry_bytes()).extend_from(&queue);
        } else {
            self.queues.push_back(queue);
            self.last_is_own = false;
        }
    }

    /// The chain's own chunk at the back with room for `bytes` more bytes of
    /// entries: the last queue, or a chunk started behind it (a spare one when
    /// there is one) if the last is a sender's queue, there is none, or it is full.
    /// A chunk holds at least one record, however large.
    fn own_last(&mut self, bytes: usize) -> &mut RecordQueue {
        let room_in_last = self.last_is_own && self.queues.back().is_some_and(|q| q.fits(bytes));
        if !room_in_last {
            let chunk = self
                .spares
                .pop()
                .unwrap_or_else(|| RecordQueue::with_room(CHUNK_BYTES));
            self.queues.push_back(chunk);
            self.last_is_own = true;
        }
        let last = self.queues.len() - 1; // at least the one pushed above
        &mut self.queues[last]
    }

    /// Moves every record of `other` behind these, as they are (nothing is
    /// copied); `other` is left empty, with its spare chunks.
    pub(crate) fn append(&mut self, other: &mut RecordChain) {
        if other.queues.is_empty() {
            return;
        }
        self.queues.append(&mut other.queues);
        self.last_is_own = std::mem::take(&mut other.last_is_own);
    }

    /// The first record.
    pub(crate) fn front_queued(&self) -> Option<QueuedRecord<'_>> {
        self.queues.front()?.front_queued()
    }

    /// The first record, and what [`pop_front_to`](Self::pop_front_to) needs.
    #[inline]
    pub(crate) fn front_and_next(&self) -> Option<(QueuedRecord<'_>, NextEntry)> {
        self.queues.front()?.front_and_next()
    }

    /// Drops the first record.
    pub(crate) fn pop_front(&mut self) {
        let Some(first) = self.queues.front_mut() else {
            return;
        };
        first.pop_front();
        if first.is_empty() {
            self.drop_emptied_front();
        }
    }

    /// Drops the first record, whose [`NextEntry`] came with it.
    #[inline]
    pub(crate) fn pop_front_to(&mut self, next: NextEntry) {
        let Some(first) = self.queues.front_mut() else {
            return;
        };
        first.pop_front_to(next);
        if first.is_empty() {
            self.drop_emptied_front();
        }
    }

    /// Takes the emptied front queue off, keeping it for the next records if it is
    /// a chunk's size and fewer than `keep` are kept.
    fn drop_emptied_front(&mut self) {
        if let Some(emptied) = self.queues.pop_front()
            && emptied.capacity() == CHUNK_BYTES
            && self.spares.len() < self.keep
        {
            self.spares.push(emptied);
        }
    }

    /// Drops every record (the spare chunks stay for the next ones).
    pub(crate) fn clear(&mut self) {
        self.queues.clear();
    }

    /// The records in order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = BorrowedRecord<'_>> {
        self.queues.iter().flat_map(RecordQueue::iter)
    }

    /// The records in order, with the handles kept.
    #[cfg(test)]
    pub(crate) fn iter_queued(&self) -> impl Iterator<Item = QueuedRecord<'_>> {
        self.queues.iter().flat_map(RecordQueue::iter_queued)
    }

    /// The capacities of the queues the records wait in, front first.
    #[cfg(test)]
    pub(crate) fn queue_capacities(&self) -> Vec<usize> {
        self.queues.iter().map(RecordQueue::capacity).collect()
    }

    /// The records of each queue, front first.
    #[cfg(test)]
    pub(crate) fn queue_lens(&self) -> Vec<usize> {
        self.queues.iter().map(RecordQueue::len).collect()
    }

    /// The capacities of the emptied chunks kept.
    #[cfg(test)]
    pub(crate) fn spare_capacities(&self) -> Vec<usize> {
        self.spares.iter().map(RecordQueue::capacity).collect()
    }
}

/// Records in order, compact (see the module docs). Taken from the front.
#[derive(Default)]
pub(crate) struct RecordQueue {
    bytes: Vec<u8>,
    /// Where the front record's entry starts.
    read: usize,
    /// Records from `read` on.
    len: usize,
    /// The topics named, each once (a record names its topic by index).
    topics: Vec<Arc<str>>,
    /// The header lists of the records that have headers, by index.
    headers: VecDeque<Vec<RecordHeader>>,
    /// The index of `headers[0]`.
    headers_base: u32,
    /// The keys and values kept as handles, in the order of their records (a
    /// record's key before its value), by index (wrapping).
    shared: VecDeque<Bytes>,
    /// The index of `shared[0]`.
    shared_base: u32,
}

impl std::fmt::Debug for RecordQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordQueue")
            .field("len", &self.len)
            .field("bytes", &(self.bytes.len() - self.read))
            .field("shared", &self.shared.len())
            .finish()
    }
}

/// A record's topic name as it comes: the application's shared copy (kept, not
/// copied, when the queue first meets it), or borrowed.
#[derive(Clone, Copy)]
enum Topic<'a> {
    Shared(&'a Arc<str>),
    Borrowed(&'a str),
}

impl Topic<'_> {
    fn name(&self) -> &str {
        match self {
            Topic::Shared(t) => t,
            Topic::Borrowed(t) => t,
        }
    }
}

fn as_u32(n: usize) -> [u8; 4] {
    // Lengths and indexes count what is in memory, under 4 GiB per record.
    debug_assert!(u32::try_from(n).is_ok());
    (n as u32).to_ne_bytes()
}

/// The `u32` field at `at`.
fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    let field = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_ne_bytes(field) as usize)
}

/// Where the entry that starts at `at` ends (the next one starts).
fn entry_end(bytes: &[u8], at: usize) -> Option<usize> {
    let flags = *bytes.get(at)?;
    let key_len = u32_at(bytes, at + KEY_LEN_AT)?;
    let value_len = u32_at(bytes, at + VALUE_LEN_AT)?;
    // A key or value kept as a handle has no bytes here (its field is an index).
    let inline = |len: usize, shared: u8| if flags & shared == 0 { len } else { 0 };
    Some(at + ENTRY_LEN + inline(key_len, KEY_SHARED) + inline(value_len, VALUE_SHARED))
}

// The facades' inbox uses what the producer's own queues do not.
#[cfg_attr(
    not(any(feature = "tokio", feature = "smol", feature = "blocking")),
    allow(dead_code)
)]
impl RecordQueue {
    /// Records in the queue.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the queue holds no record.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes allocated for the records' bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Empties the queue, keeping its allocation.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.read = 0;
        self.len = 0;
        self.topics.clear();
        self.headers.clear();
        self.headers_base = 0;
        self.shared.clear();
        self.shared_base = 0;
    }

    /// Makes room for `records` more records of `bytes` key and value bytes.
    pub(crate) fn reserve(&mut self, records: usize, bytes: usize) {
        self.bytes.reserve(records * ENTRY_LEN + bytes);
    }

    /// An empty queue with room for `bytes` bytes of entries, allocated exactly.
    pub(crate) fn with_room(bytes: usize) -> Self {
        let mut queue = Self::default();
        queue.bytes.reserve_exact(bytes);
        queue
    }

    /// Whether `bytes` more bytes of entries fit in the room already allocated.
    pub(crate) fn fits(&self, bytes: usize) -> bool {
        self.bytes.capacity() - self.bytes.len() >= bytes
    }

    /// The bytes of entries the records take here (what copying this queue into
    /// another writes there).
    pub(crate) fn entry_bytes(&self) -> usize {
        self.bytes.len() - self.read
    }

    /// The records, in order, with room made for all of them at once.
    pub(crate) fn from_records(records: Vec<ProducerRecord>) -> Self {
        let bytes = records
            .iter()
            .map(|r| QueuedRecord::of(r).entry_len())
            .sum();
        let mut queue = Self::default();
        queue.reserve(0, bytes);
        for record in records {
            queue.push(record);
        }
        queue
    }

    /// Adds a record at the back, taking its header list as it is, and its key and
    /// value handles where they are large enough to keep (see the module docs).
    pub(crate) fn push(&mut self, record: ProducerRecord) {
        let large = |b: &Option<Bytes>| b.as_ref().is_some_and(kept_as_handle);
        if large(&record.key) || large(&record.value) {
            return self.push_keeping(record);
        }
        let headers = if record.headers.is_empty() {
            None
        } else {
            Some(record.headers)
        };
        self.push_fields(
            Topic::Shared(&record.topic),
            record.partition,
            record.key.as_deref(),
            record.value.as_deref(),
            headers,
            record.timestamp,
        );
    }

    /// [`push`](Self::push) of a record with a key or value to keep as its handle.
    #[inline(never)]
    fn push_keeping(&mut self, mut record: ProducerRecord) {
        // A large key or value moves its handle in (no reference count touched).
        let large = |b: &mut Bytes| kept_as_handle(b);
        let (key_kept, value_kept) = (record.key.take_if(large), record.value.take_if(large));
        let headers = if record.headers.is_empty() {
            None
        } else {
            Some(record.headers)
        };
        self.push_with_handles(
            Topic::Shared(&record.topic),
            record.partition,
            (record.key.as_deref(), key_kept),
            (record.value.as_deref(), value_kept),
            headers,
            record.timestamp,
        );
    }

    /// Adds a copy of a record at the back.
    pub(crate) fn push_ref(&mut self, record: &BorrowedRecord<'_>) {
        let headers = (!record.headers.is_empty()).then(|| record.headers.to_vec());
        self.push_fields(
            Topic::Borrowed(record.topic),
            record.partition,
            record.key,
            record.value,
            headers,
            record.timestamp,
        );
    }

    /// Adds a record at the back: a copy of its bytes, except for the key and value
    /// handles it comes with, which are kept (shared, not copied).
    pub(crate) fn push_queued(&mut self, record: &QueuedRecord<'_>) {
        let fields = &record.fields;
        if record.key.is_none() && record.value.is_none() {
            return self.push_ref(fields);
        }
        let headers = (!fields.headers.is_empty()).then(|| fields.headers.to_vec());
        self.push_with_handles(
            Topic::Borrowed(fields.topic),
            fields.partition,
            (fields.key, record.key.cloned()),
            (fields.value, record.value.cloned()),
            headers,
            fields.timestamp,
        );
    }

    /// Writes an entry whose key and value are each kept as the handle given with
    /// it (the buffer then holds none of its bytes) or else copied.
    fn push_with_handles(
        &mut self,
        topic: Topic<'_>,
        partition: Option<i32>,
        (key, key_kept): (Option<&[u8]>, Option<Bytes>),
        (value, value_kept): (Option<&[u8]>, Option<Bytes>),
        headers: Option<Vec<RecordHeader>>,
        timestamp: Option<i64>,
    ) {
        fn copied<'a>(field: Option<&'a [u8]>, kept: &Option<Bytes>) -> Option<&'a [u8]> {
            match kept {
                Some(_) => Some(&[]),
                None => field,
            }
        }
        let at = self.push_fields(
            topic,
            partition,
            copied(key, &key_kept),
            copied(value, &value_kept),
            headers,
            timestamp,
        );
        self.keep(at, key_kept, value_kept);
    }

    /// Puts the handles of the key and value of the entry at `at` (pushed with no
    /// bytes of them) into the side list, the key's first (`pop_front` drops them
    /// in that order), and marks the entry as naming them.
    fn keep(&mut self, at: usize, key: Option<Bytes>, value: Option<Bytes>) {
        for (handle, flag, field) in [
            (key, KEY_SHARED, KEY_LEN_AT),
            (value, VALUE_SHARED, VALUE_LEN_AT),
        ] {
            let Some(handle) = handle else {
                continue;
            };
            let index = self.shared_base.wrapping_add(self.shared.len() as u32);
            self.shared.push_back(handle);
            if let Some(entry) = self.bytes.get_mut(at..at + ENTRY_LEN) {
                entry[0] |= flag;
                entry[field..field + 4].copy_from_slice(&index.to_ne_bytes());
            }
        }
    }

    /// Writes an entry and the key's and value's bytes; where the entry starts.
    fn push_fields(
        &mut self,
        topic: Topic<'_>,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Option<Vec<RecordHeader>>,
        timestamp: Option<i64>,
    ) -> usize {
        // An emptied queue was cleared by `pop_front` or `clear`: it starts over at 0.
        debug_assert!(self.len > 0 || (self.bytes.is_empty() && self.topics.is_empty()));
        let topic_index = self.topic_index(topic);
        let mut flags = 0;
        for (present, flag) in [
            (partition.is_some(), HAS_PARTITION),
            (key.is_some(), HAS_KEY),
            (value.is_some(), HAS_VALUE),
            (timestamp.is_some(), HAS_TIMESTAMP),
            (headers.is_some(), HAS_HEADERS),
        ] {
            if present {
                flags |= flag;
            }
        }
        let (key, value) = (key.unwrap_or_default(), value.unwrap_or_default());
        let headers_index = match headers {
            Some(list) => {
                self.headers.push_back(list);
                self.headers_base as usize + self.headers.len() - 1
            }
            None => 0,
        };
        let mut entry = [0u8; ENTRY_LEN];
        entry[0] = flags;
        entry[TOPIC_AT..PARTITION_AT].copy_from_slice(&as_u32(topic_index));
        entry[PARTITION_AT..TIMESTAMP_AT].copy_from_slice(&partition.unwrap_or(0).to_ne_bytes());
        entry[TIMESTAMP_AT..KEY_LEN_AT].copy_from_slice(&timestamp.unwrap_or(0).to_ne_bytes());
        entry[KEY_LEN_AT..VALUE_LEN_AT].copy_from_slice(&as_u32(key.len()));
        entry[VALUE_LEN_AT..HEADERS_AT].copy_from_slice(&as_u32(value.len()));
        entry[HEADERS_AT..ENTRY_LEN].copy_from_slice(&as_u32(headers_index));
        let out = &mut self.bytes;
        let at = out.len();
        out.reserve(ENTRY_LEN + key.len() + value.len());
        out.extend_from_slice(&entry);
        out.extend_from_slice(key);
        out.extend_from_slice(value);
        self.len += 1;
        at
    }

    fn topic_index(&mut self, topic: Topic<'_>) -> usize {
        let name = topic.name();
        // Records mostly come for one topic, or a few: the last one named first.
        if let Some(last) = self.topics.last()
            && (matches!(topic, Topic::Shared(t) if Arc::ptr_eq(last, t)) || **last == *name)
        {
            return self.topics.len() - 1;
        }
        if let Some(i) = self.topics.iter().position(|t| **t == *name) {
            return i;
        }
        self.topics.push(match topic {
            Topic::Shared(t) => t.clone(),
            Topic::Borrowed(t) => Arc::from(t),
        });
        self.topics.len() - 1
    }

    /// Appends every record of `other`: a copy of its bytes, and its handles shared.
    pub(crate) fn extend_from(&mut self, other: &RecordQueue) {
        self.reserve(0, other.entry_bytes());
        if other.shared.is_empty() {
            // No handle to share (a RecordBuffer's records, small ones): copies.
            for record in other.iter() {
                self.push_ref(&record);
            }
            return;
        }
        for record in other.iter_queued() {
            self.push_queued(&record);
        }
    }

    /// Gives every record without a timestamp this one.
    pub(crate) fn fill_timestamps(&mut self, ms: i64) {
        let mut at = self.read;
        for _ in 0..self.len {
            let (Some(next), Some(entry)) = (
                entry_end(&self.bytes, at),
                self.bytes.get_mut(at..at + ENTRY_LEN),
            ) else {
                debug_assert!(false, "a record queue entry does not read back");
                return;
            };
            if entry[0] & HAS_TIMESTAMP == 0 {
                entry[0] |= HAS_TIMESTAMP;
                entry[TIMESTAMP_AT..KEY_LEN_AT].copy_from_slice(&ms.to_ne_bytes());
            }
            at = next;
        }
    }

    /// The handle kept at `index`.
    fn shared_at(&self, index: usize) -> Option<&Bytes> {
        let index = u32::try_from(index).ok()?;
        self.shared
            .get(index.wrapping_sub(self.shared_base) as usize)
    }

    /// The key or value whose field is `field`: its bytes, after `at` in the buffer
    /// (then `at` moves past them) or kept as a handle. Out of line: `entry` reads
    /// entries without handles itself.
    #[inline(never)]
    fn part_at(
        &self,
        flags: u8,
        shared: u8,
        field: usize,
        at: &mut usize,
    ) -> Option<(&[u8], Option<&Bytes>)> {
        if flags & shared != 0 {
            let handle = self.shared_at(field)?;
            return Some((handle, Some(handle)));
        }
        let bytes = self.bytes.get(*at..*at + field)?;
        *at += field;
        Some((bytes, None))
    }

    /// The front record and where the next one starts.
    #[inline(always)]
    fn entry(&self, at: usize) -> Option<(QueuedRecord<'_>, usize)> {
        let head: &[u8; ENTRY_LEN] = self.bytes.get(at..at + ENTRY_LEN)?.try_into().ok()?;
        let flags = head[0];
        let topic = u32_at(head, TOPIC_AT)?;
        let partition = u32_at(head, PARTITION_AT)? as i32;
        let timestamp = i64::from_ne_bytes(head[TIMESTAMP_AT..KEY_LEN_AT].try_into().ok()?);
        let key_field = u32_at(head, KEY_LEN_AT)?;
        let value_field = u32_at(head, VALUE_LEN_AT)?;
        let headers_index = u32_at(head, HEADERS_AT)?;
        let mut at = at + ENTRY_LEN;
        let (key, key_handle, value, value_handle);
        if flags & (KEY_SHARED | VALUE_SHARED) == 0 {
            // Both in the buffer: the common case, read as directly as can be.
            (key, key_handle) = (self.bytes.get(at..at + key_field)?, None);
            at += key_field;
            (value, value_handle) = (self.bytes.get(at..at + value_field)?, None);
            at += value_field;
        } else {
            (key, key_handle) = self.part_at(flags, KEY_SHARED, key_field, &mut at)?;
            (value, value_handle) = self.part_at(flags, VALUE_SHARED, value_field, &mut at)?;
        }
        let headers: &[RecordHeader] = if flags & HAS_HEADERS == 0 {
            &[]
        } else {
            self.headers
                .get(headers_index.checked_sub(self.headers_base as usize)?)?
        };
        let fields = BorrowedRecord {
            topic: self.topics.get(topic).map(|t| &**t)?,
            partition: (flags & HAS_PARTITION != 0).then_some(partition),
            key: (flags & HAS_KEY != 0).then_some(key),
            value: (flags & HAS_VALUE != 0).then_some(value),
            headers,
            timestamp: (flags & HAS_TIMESTAMP != 0).then_some(timestamp),
        };
        let record = QueuedRecord {
            fields,
            key: key_handle,
            value: value_handle,
        };
        Some((record, at))
    }

    /// The front record, with the handles kept for its key and value.
    pub(crate) fn front_queued(&self) -> Option<QueuedRecord<'_>> {
        self.front_and_next().map(|(record, _)| record)
    }

    /// The front record, and what [`pop_front_to`](Self::pop_front_to) needs to
    /// drop it without reading its entry again.
    #[inline]
    pub(crate) fn front_and_next(&self) -> Option<(QueuedRecord<'_>, NextEntry)> {
        if self.len == 0 {
            return None;
        }
        let entry = self.entry(self.read);
        // Every entry was written by `push_fields`; one that does not read back is
        // a bug here, not bad input.
        debug_assert!(entry.is_some(), "a record queue entry does not read back");
        let (record, at) = entry?;
        let flags = *self.bytes.get(self.read)?;
        Some((record, NextEntry { at, flags }))
    }

    /// Drops the front record, whose [`NextEntry`] came with it from
    /// [`front_and_next`](Self::front_and_next).
    #[inline]
    pub(crate) fn pop_front_to(&mut self, next: NextEntry) {
        debug_assert_eq!(
            Some(next.at),
            entry_end(&self.bytes, self.read),
            "a NextEntry of another record"
        );
        if self.len == 0 {
            return;
        }
        if next.flags & (HAS_HEADERS | KEY_SHARED | VALUE_SHARED) != 0 {
            self.pop_side_lists(next.flags);
        }
        self.read = next.at;
        self.len -= 1;
        if self.len == 0 {
            self.clear();
        }
    }

    /// Drops the front record.
    pub(crate) fn pop_front(&mut self) {
        if self.len == 0 {
            return;
        }
        // Only the flags and lengths are read: where the next entry starts.
        let at = self.read;
        let (Some(&flags), Some(next)) = (self.bytes.get(at), entry_end(&self.bytes, at)) else {
            debug_assert!(false, "a record queue entry does not read back");
            self.clear();
            return;
        };
        self.pop_front_to(NextEntry { at: next, flags });
    }

    /// Drops the header list and the handles of the front record, which has them.
    #[inline(never)]
    fn pop_side_lists(&mut self, flags: u8) {
        if flags & HAS_HEADERS != 0 {
            self.headers.pop_front();
            self.headers_base += 1;
        }
        for shared in [KEY_SHARED, VALUE_SHARED] {
            if flags & shared != 0 {
                self.shared.pop_front();
                self.shared_base = self.shared_base.wrapping_add(1);
            }
        }
    }

    /// The records from the front, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = BorrowedRecord<'_>> {
        self.iter_queued().map(|r| r.fields)
    }

    /// The records from the front, in order, with the handles kept for their keys
    /// and values.
    pub(crate) fn iter_queued(&self) -> impl Iterator<Item = QueuedRecord<'_>> {
        let mut at = self.read;
        let mut left = self.len;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            let entry = self.entry(at);
            debug_assert!(entry.is_some(), "a record queue entry does not read back");
            let (record, next) = entry?;
            at = next;
            left -= 1;
            Some(record)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An owned record and its borrowed view count the same budget bytes, with and
    /// without key, value and headers (the facades count one, the producer the
    /// other, and the two must meet).
    #[test]
    fn an_owned_record_counts_what_its_borrowed_view_counts() {
        let with_headers = ProducerRecord::new("t", "value")
            .key("key")
            .header("h", "v")
            .header("longer-header-key", vec![0u8; 300]);
        let mut null_value = ProducerRecord::new("t", "");
        null_value.value = None;
        for r in [
            ProducerRecord::new("t", "v"),
            ProducerRecord::new("t", vec![1u8; 5000]).key(vec![2u8; 2000]),
            with_headers,
            null_value,
        ] {
            assert_eq!(r.size(), r.borrowed().size(), "{r:?}");
        }
        assert_eq!(
            ProducerRecord::new("t", "abc").key("k").size(),
            1 + 3 + RECORD_SIZE
        );
    }

    fn chain_values(chain: &RecordChain) -> Vec<Vec<u8>> {
        chain.iter().map(|r| r.value.unwrap().to_vec()).collect()
    }

    /// A burst of single records waits in chunks of one size, none grown or
    /// copied; as they are taken, as many emptied chunks as the chain keeps stay
    /// for the next burst, which fills them before allocating.
    #[test]
    fn a_burst_waits_in_chunks_and_the_next_reuses_the_kept_ones() {
        let value = vec![7u8; 100];
        let n = 2 * KEPT_CHUNKS * CHUNK_BYTES / (100 + 40);
        let fill = |chain: &mut RecordChain| {
            for i in 0..n {
                chain.push(ProducerRecord::new("t", value.clone()).key(format!("key-{i}")));
            }
        };
        let mut chain = RecordChain::default();
        fill(&mut chain);
        let chunks = chain.queue_capacities();
        assert!(chunks.len() > KEPT_CHUNKS, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|&c| c == CHUNK_BYTES), "{chunks:?}");
        let mut seen = 0;
        while let Some((r, next)) = chain.front_and_next() {
            assert_eq!(r.fields.key, Some(format!("key-{seen}").as_bytes()));
            seen += 1;
            chain.pop_front_to(next);
        }
        assert_eq!(seen, n);
        assert_eq!(chain.spare_capacities(), vec![CHUNK_BYTES; KEPT_CHUNKS]);
        fill(&mut chain);
        assert_eq!(chain.len(), n);
        assert!(
            chain.spare_capacities().is_empty(),
            "every kept chunk was filled first"
        );
        assert!(chain.queue_capacities().iter().all(|&c| c == CHUNK_BYTES));
    }

    /// Appending moves another chain's chunks and kept queues behind this one's
    /// records, in order and uncopied; the other keeps its spare chunks, and a
    /// record pushed after goes behind the appended ones.
    #[test]
    fn an_appended_chain_moves_behind_uncopied_and_keeps_its_spares() {
        let mut front = RecordChain::default();
        front.push(ProducerRecord::new("t", "a"));
        let mut back = RecordChain::default();
        // Two chunks' worth taken: two emptied chunks kept, one of them reused.
        for _ in 0..2 * CHUNK_BYTES / 1000 {
            back.push(ProducerRecord::new("t", vec![0u8; 1000]));
        }
        while let Some((_, next)) = back.front_and_next() {
            back.pop_front_to(next);
        }
        back.push(ProducerRecord::new("t", "b"));
        let long: Vec<ProducerRecord> = (0..COPIED_QUEUE_RECORDS)
            .map(|i| ProducerRecord::new("t", format!("q{i}")))
            .collect();
        back.push_queue(RecordQueue::from_records(long));
        back.push(ProducerRecord::new("t", "c"));
        let back_queues = back.queue_capacities();
        let back_spares = back.spare_capacities();
        assert_eq!((back_queues.len(), back_spares.len()), (3, 1));
        let mut wanted = chain_values(&front);
        wanted.extend(chain_values(&back));
        front.append(&mut back);
        assert!(back.is_empty());
        assert_eq!(back.spare_capacities(), back_spares);
        assert_eq!(
            front.queue_capacities()[1..],
            back_queues[..],
            "moved, not copied"
        );
        front.append(&mut back); // nothing to move
        front.push(ProducerRecord::new("t", "d"));
        wanted.push(b"d".to_vec());
        assert_eq!(chain_values(&front), wanted);
        assert_eq!(
            front.queue_lens().len(),
            4,
            "d went into the appended chunk"
        );
    }

    /// A chain keeping no chunk frees each as it empties (the producer's records
    /// waiting for metadata: their batches grow as the chunks go).
    #[test]
    fn a_chain_keeping_nothing_frees_each_chunk_as_it_empties() {
        let mut chain = RecordChain::keeping(0);
        let held = ProducerRecord::new("t", vec![1u8; 2 * SHARED_MIN]).key("k");
        let value = held.value.clone().unwrap();
        let n = 3 * CHUNK_BYTES / 100;
        for i in 0..n {
            if i == 1 {
                chain.push_queued(&QueuedRecord::of(&held));
            } else {
                chain.push(ProducerRecord::new("t", vec![2u8; 60]));
            }
        }
        assert!(chain.queue_lens().len() >= 3);
        let mut chunks = chain.queue_lens().len();
        while let Some(r) = chain.front_queued() {
            if r.value.is_some() {
                assert_eq!(r.fields.value, Some(&value[..]), "the handle, shared");
            }
            chain.pop_front();
            assert!(chain.spare_capacities().is_empty());
            assert!(chain.queue_lens().len() <= chunks);
            chunks = chain.queue_lens().len();
        }
        assert!(chain.is_empty());
    }

    /// A record larger than a chunk gets a chunk of its own, grown to fit; the
    /// records around it keep their order, and the grown chunk is not kept.
    #[test]
    fn a_record_larger_than_a_chunk_waits_in_order() {
        let mut chain = RecordChain::default();
        let long_key = vec![2u8; CHUNK_BYTES];
        let mut huge = RecordQueue::default();
        huge.push_ref(&BorrowedRecord::new("t", b"huge").key(&long_key));
        chain.push(ProducerRecord::new("t", "small-0"));
        chain.push(ProducerRecord::new("t", "big").key(vec![1u8; 1000]));
        chain.push_queue(huge);
        chain.push(ProducerRecord::new("t", "small-1"));
        let values: Vec<&[u8]> = vec![b"small-0", b"big", b"huge", b"small-1"];
        assert_eq!(chain_values(&chain), values);
        while let Some((_, next)) = chain.front_and_next() {
            chain.pop_front_to(next);
        }
        assert_eq!(chain.spare_capacities(), [CHUNK_BYTES], "not the grown one");
    }

    fn same(a: &BorrowedRecord<'_>, b: &ProducerRecord) {
        assert_eq!(a.topic, &*b.topic);
        assert_eq!(a.partition, b.partition);
        assert_eq!(a.key, b.key.as_deref());
        assert_eq!(a.value, b.value.as_deref());
        assert_eq!(a.headers, &b.headers[..]);
        assert_eq!(a.timestamp, b.timestamp);
        assert_eq!(a.size(), b.borrowed().size());
    }

    fn samples() -> Vec<ProducerRecord> {
        vec![
            ProducerRecord::new("a", "v1"),
            ProducerRecord::new("a", "v2").key("k").partition(3),
            ProducerRecord::new("b", "").key(""),
            ProducerRecord {
                value: None,
                ..ProducerRecord::new("a", "x").timestamp(-5).partition(-1)
            },
            ProducerRecord::new("c", vec![7u8; 1000])
                .header("h1", "x")
                .header("h2", ""),
            ProducerRecord::new("b", "after headers").timestamp(i64::MAX),
            ProducerRecord::new("c", "two").header("only", "y"),
        ]
    }

    #[test]
    fn records_read_back_as_they_were_pushed() {
        let records = samples();
        let mut q = RecordQueue::default();
        for (i, r) in records.iter().enumerate() {
            if i % 2 == 0 {
                q.push(r.clone());
            } else {
                q.push_ref(&r.borrowed());
            }
        }
        assert_eq!(q.len(), records.len());
        let read: Vec<_> = q.iter().collect();
        assert_eq!(read.len(), records.len());
        for (a, b) in read.iter().zip(&records) {
            same(a, b);
        }
        // Taken from the front one at a time, the rest still read back.
        for (i, b) in records.iter().enumerate() {
            same(&q.front_queued().unwrap().fields, b);
            q.pop_front();
            assert_eq!(q.len(), records.len() - i - 1);
            for (a, b) in q.iter().zip(&records[i + 1..]) {
                same(&a, b);
            }
        }
        assert!(q.is_empty() && q.front_queued().is_none());
        q.pop_front(); // nothing to drop: no effect
        assert!(q.is_empty());
    }

    #[test]
    fn missing_timestamps_are_filled_and_a_copy_reads_the_same() {
        let records = samples();
        let mut q = RecordQueue::default();
        for r in &records {
            q.push(r.clone());
        }
        q.pop_front(); // filling starts at the front, not at the buffer's start
        q.fill_timestamps(42);
        for (a, b) in q.iter().zip(&records[1..]) {
            assert_eq!(a.timestamp, Some(b.timestamp.unwrap_or(42)));
            assert_eq!(
                (a.key, a.value, a.headers),
                (b.key.as_deref(), b.value.as_deref(), &b.headers[..])
            );
        }
        let mut copy = RecordQueue::default();
        copy.push(ProducerRecord::new("z", "first"));
        copy.extend_from(&q);
        assert_eq!(copy.len(), records.len());
        let read: Vec<_> = copy.iter().skip(1).collect();
        assert_eq!(read, q.iter().collect::<Vec<_>>());
    }

    #[test]
    fn a_queue_emptied_is_reused_from_its_start() {
        let mut q = RecordQueue::default();
        for round in 0..3 {
            for r in samples() {
                q.push(r);
            }
            let capacity = q.capacity();
            while !q.is_empty() {
                q.pop_front();
            }
            assert_eq!((q.bytes.len(), q.topics.len(), q.headers.len()), (0, 0, 0));
            if round > 0 {
                assert_eq!(q.capacity(), capacity, "the allocation is kept");
            }
        }
        // Pushing after a partial drain keeps order and the header lists straight.
        for r in samples() {
            q.push(r);
        }
        q.pop_front();
        q.pop_front();
        for r in samples() {
            q.push(r);
        }
        let expected: Vec<_> = samples().into_iter().skip(2).chain(samples()).collect();
        let read: Vec<_> = q.iter().collect();
        assert_eq!(read.len(), expected.len());
        for (a, b) in read.iter().zip(&expected) {
            same(a, b);
        }
    }

    /// Records of every size around the threshold, keys and values, small and large
    /// mixed, with headers and tombstones: what `push` keeps as a handle and what it
    /// copies.
    fn mixed() -> Vec<ProducerRecord> {
        let bytes = |n: usize, seed: u8| -> Bytes {
            (0..n)
                .map(|i| seed.wrapping_add(i as u8))
                .collect::<Vec<u8>>()
                .into()
        };
        vec![
            ProducerRecord::new("a", bytes(SHARED_MIN - 1, 1)),
            ProducerRecord::new("a", bytes(SHARED_MIN, 2)).key("small key"),
            ProducerRecord::new("b", "small").key(bytes(10 * 1024, 3)),
            ProducerRecord::new("a", bytes(100 * 1024, 4))
                .key(bytes(SHARED_MIN, 5))
                .header("h", "x")
                .partition(1),
            ProducerRecord {
                value: None,
                ..ProducerRecord::new("a", "").key(bytes(4096, 6))
            },
            ProducerRecord::new("c", "v").timestamp(7),
            ProducerRecord::new("a", bytes(2048, 8)).timestamp(9),
        ]
    }

    fn large(b: &Option<Bytes>) -> bool {
        b.as_ref().is_some_and(|b| b.len() >= SHARED_MIN)
    }

    /// Whether `read` are the bytes of `original` themselves (its handle kept), not
    /// a copy.
    fn same_bytes(read: Option<&[u8]>, original: &Option<Bytes>) -> bool {
        match (read, original) {
            (Some(read), Some(original)) => read.as_ptr() == original.as_ptr(),
            _ => false,
        }
    }

    #[test]
    fn large_keys_and_values_of_owned_records_are_kept_not_copied() {
        let records = mixed();
        let mut q = RecordQueue::default();
        for r in &records {
            q.push(r.clone()); // a clone of a `Bytes` shares its bytes
        }
        let kept = records
            .iter()
            .map(|r| usize::from(large(&r.key)) + usize::from(large(&r.value)))
            .sum::<usize>();
        assert_eq!(q.shared.len(), kept);
        // The buffer holds the entries and the small parts only.
        let small: usize = records
            .iter()
            .flat_map(|r| [&r.key, &r.value])
            .filter(|b| !large(b))
            .map(|b| b.as_ref().map_or(0, Bytes::len))
            .sum();
        assert_eq!(q.bytes.len(), records.len() * ENTRY_LEN + small);
        for (read, r) in q.iter_queued().zip(&records) {
            same(&read.fields, r);
            assert_eq!(same_bytes(read.fields.key, &r.key), large(&r.key));
            assert_eq!(same_bytes(read.fields.value, &r.value), large(&r.value));
            assert_eq!(read.key.is_some(), large(&r.key));
            assert_eq!(read.value.is_some(), large(&r.value));
        }
        // A borrowed record is copied whatever its size: nothing keeps its bytes.
        let mut copies = RecordQueue::default();
        for r in &records {
            copies.push_ref(&r.borrowed());
        }
        assert!(copies.shared.is_empty());
        for (read, r) in copies.iter_queued().zip(&records) {
            same(&read.fields, r);
            assert!(!same_bytes(read.fields.key, &r.key));
            assert!(!same_bytes(read.fields.value, &r.value));
            assert!(read.key.is_none() && read.value.is_none());
        }
    }

    #[test]
    fn kept_handles_follow_their_records_through_partial_drains() {
        let mut q = RecordQueue::default();
        let mut expected: VecDeque<ProducerRecord> = VecDeque::new();
        for round in 0..4 {
            for r in mixed() {
                expected.push_back(r.clone());
                q.push(r);
            }
            // Take a different number each round, so that the fronts of the buffer,
            // the header list and the handle list move apart; both ways of taking the
            // front record, in turn.
            for i in 0..(3 + round * 2) {
                if i % 2 == 0 {
                    let front = q.front_queued().unwrap();
                    same(&front.fields, &expected[0]);
                    q.pop_front();
                } else {
                    let (front, next) = q.front_and_next().unwrap();
                    same(&front.fields, &expected[0]);
                    q.pop_front_to(next);
                }
                expected.pop_front();
            }
            assert_eq!(q.len(), expected.len());
            let kept = expected
                .iter()
                .map(|r| usize::from(large(&r.key)) + usize::from(large(&r.value)))
                .sum::<usize>();
            assert_eq!(q.shared.len(), kept, "a handle is dropped with its record");
            for (read, r) in q.iter().zip(&expected) {
                same(&read, r);
            }
        }
        q.fill_timestamps(11);
        for (read, r) in q.iter().zip(&expected) {
            assert_eq!(read.timestamp, Some(r.timestamp.unwrap_or(11)));
            assert_eq!(
                (read.key, read.value),
                (r.key.as_deref(), r.value.as_deref())
            );
        }
        while !q.is_empty() {
            q.pop_front();
        }
        assert_eq!((q.bytes.len(), q.shared.len(), q.shared_base), (0, 0, 0));
    }

    #[test]
    fn a_queue_taking_another_queues_records_shares_their_handles() {
        let records = mixed();
        let mut inbox = RecordQueue::default();
        for r in &records {
            inbox.push(r.clone());
        }
        // As the producer takes records into its queue for unrouted topics.
        let mut unrouted = RecordQueue::default();
        unrouted.push(ProducerRecord::new("z", vec![1u8; SHARED_MIN]));
        while let Some(r) = inbox.front_queued() {
            unrouted.push_queued(&r);
            inbox.pop_front();
        }
        // As a full inbox takes a handed-over queue.
        let mut again = RecordQueue::default();
        again.extend_from(&unrouted);
        for q in [&unrouted, &again] {
            let read: Vec<_> = q.iter_queued().skip(1).collect();
            assert_eq!(read.len(), records.len());
            for (read, r) in read.iter().zip(&records) {
                same(&read.fields, r);
                assert_eq!(same_bytes(read.fields.key, &r.key), large(&r.key));
                assert_eq!(same_bytes(read.fields.value, &r.value), large(&r.value));
            }
        }
    }

    #[test]
    fn from_records_makes_room_for_the_copied_bytes_only() {
        let records = mixed();
        let small: usize = records
            .iter()
            .flat_map(|r| [&r.key, &r.value])
            .filter(|b| !large(b))
            .map(|b| b.as_ref().map_or(0, Bytes::len))
            .sum();
        let q = RecordQueue::from_records(records.clone());
        assert_eq!(q.bytes.len(), records.len() * ENTRY_LEN + small);
        assert!(q.capacity() < records.len() * ENTRY_LEN + small + SHARED_MIN);
        for (read, r) in q.iter().zip(&records) {
            same(&read, r);
        }
    }
}
