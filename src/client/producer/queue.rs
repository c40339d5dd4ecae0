//! Records waiting to be encoded, kept compact: every record's fields and bytes are
//! copied into one growing byte buffer, so that a waiting record costs its bytes
//! and a 29-byte entry instead of a [`ProducerRecord`] (128 bytes) and the
//! allocations of its key and value. The facades' inbox (records handed over and
//! not yet taken by the driver) and the producer's records waiting for their
//! topic's metadata are such queues.
//!
//! Copying happens where the record is handed over, so the sender's key and value
//! are freed by the thread that made them, and nothing the sender allocated crosses
//! to the driver's thread (a reference count or a free on another core costs more
//! than copying a hundred bytes).
//!
//! An entry is, in native byte order: flags (`u8`), topic index (`u32`), partition
//! (`i32`), timestamp (`i64`), key length (`u32`), value length (`u32`), header list
//! index (`u32`), then the key's and the value's bytes. Headers are rare on the hot
//! path and stay as they came, moved into a side list.

use std::collections::VecDeque;
use std::sync::Arc;

use super::ProducerRecord;
use crate::client::ops::partition::RecordHeader;

const HAS_PARTITION: u8 = 1;
const HAS_KEY: u8 = 2;
const HAS_VALUE: u8 = 4;
const HAS_TIMESTAMP: u8 = 8;
const HAS_HEADERS: u8 = 16;

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
        let h: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, bytes::Bytes::len) + 10)
            .sum();
        k + v + h + 25
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
        Self { queue }
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
}

impl std::fmt::Debug for RecordQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordQueue")
            .field("len", &self.len)
            .field("bytes", &(self.bytes.len() - self.read))
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
    let key_len = u32_at(bytes, at + KEY_LEN_AT)?;
    let value_len = u32_at(bytes, at + VALUE_LEN_AT)?;
    Some(at + ENTRY_LEN + key_len + value_len)
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
    }

    /// Makes room for `records` more records of `bytes` key and value bytes.
    pub(crate) fn reserve(&mut self, records: usize, bytes: usize) {
        self.bytes.reserve(records * ENTRY_LEN + bytes);
    }

    /// The records, in order, with room made for all of them at once.
    pub(crate) fn from_records(records: Vec<ProducerRecord>) -> Self {
        let bytes = records
            .iter()
            .map(|r| {
                r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len())
            })
            .sum();
        let mut queue = Self::default();
        queue.reserve(records.len(), bytes);
        for record in records {
            queue.push(record);
        }
        queue
    }

    /// Adds a record at the back, taking its header list as it is.
    pub(crate) fn push(&mut self, record: ProducerRecord) {
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

    fn push_fields(
        &mut self,
        topic: Topic<'_>,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Option<Vec<RecordHeader>>,
        timestamp: Option<i64>,
    ) {
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
        out.reserve(ENTRY_LEN + key.len() + value.len());
        out.extend_from_slice(&entry);
        out.extend_from_slice(key);
        out.extend_from_slice(value);
        self.len += 1;
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

    /// Appends a copy of every record of `other`.
    pub(crate) fn extend_from(&mut self, other: &RecordQueue) {
        self.reserve(other.len(), other.bytes.len() - other.read);
        for record in other.iter() {
            self.push_ref(&record);
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

    /// The front record and where the next one starts.
    fn entry(&self, at: usize) -> Option<(BorrowedRecord<'_>, usize)> {
        let b = &self.bytes;
        let head: &[u8; ENTRY_LEN] = b.get(at..at + ENTRY_LEN)?.try_into().ok()?;
        let flags = head[0];
        let topic = u32_at(head, TOPIC_AT)?;
        let partition = u32_at(head, PARTITION_AT)? as i32;
        let timestamp = i64::from_ne_bytes(head[TIMESTAMP_AT..KEY_LEN_AT].try_into().ok()?);
        let key_len = u32_at(head, KEY_LEN_AT)?;
        let value_len = u32_at(head, VALUE_LEN_AT)?;
        let headers_index = u32_at(head, HEADERS_AT)?;
        let mut at = at + ENTRY_LEN;
        let key = b.get(at..at + key_len)?;
        at += key_len;
        let value = b.get(at..at + value_len)?;
        at += value_len;
        let headers: &[RecordHeader] = if flags & HAS_HEADERS == 0 {
            &[]
        } else {
            self.headers
                .get(headers_index.checked_sub(self.headers_base as usize)?)?
        };
        let record = BorrowedRecord {
            topic: self.topics.get(topic).map(|t| &**t)?,
            partition: (flags & HAS_PARTITION != 0).then_some(partition),
            key: (flags & HAS_KEY != 0).then_some(key),
            value: (flags & HAS_VALUE != 0).then_some(value),
            headers,
            timestamp: (flags & HAS_TIMESTAMP != 0).then_some(timestamp),
        };
        Some((record, at))
    }

    /// The front record.
    pub(crate) fn front(&self) -> Option<BorrowedRecord<'_>> {
        if self.len == 0 {
            return None;
        }
        let entry = self.entry(self.read);
        // Every entry was written by `push_fields`; one that does not read back is
        // a bug here, not bad input.
        debug_assert!(entry.is_some(), "a record queue entry does not read back");
        entry.map(|(r, _)| r)
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
        if flags & HAS_HEADERS != 0 {
            self.headers.pop_front();
            self.headers_base += 1;
        }
        self.read = next;
        self.len -= 1;
        if self.len == 0 {
            self.clear();
        }
    }

    /// The records from the front, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = BorrowedRecord<'_>> {
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
            same(&q.front().unwrap(), b);
            q.pop_front();
            assert_eq!(q.len(), records.len() - i - 1);
            for (a, b) in q.iter().zip(&records[i + 1..]) {
                same(&a, b);
            }
        }
        assert!(q.is_empty() && q.front().is_none());
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
}
