//! What every record format shares: the decoded [`Record`] with its headers, and
//! the log entry prefix both v2 batches and legacy messages start with.
//!
//! The v2 batch reader (`batch`) and the legacy message reader (`legacy`) both build
//! these; neither imports the other's records.

use bytes::Bytes;

use crate::wire::read_varint_at;

/// Bytes of the base offset and batch length, which every batch format starts with.
pub const LOG_OVERHEAD: usize = 12;

/// A record decoded from a batch: its offset, timestamp, key, value and headers.
///
/// The record holds one [`Bytes`] handle on the buffer it was read from (the fetched
/// batch, or its decompressed records) and the positions of its fields in it, so
/// taking, cloning or dropping a record is one reference-count operation however many
/// fields it has, and nothing is copied. [`Record::key`] and [`Record::value`] borrow
/// the fields; [`Record::key_bytes`] and [`Record::value_bytes`] hand out owned
/// [`Bytes`] slices for keeping one beyond the record.
///
/// [`Records::next_ref`](super::Records::next_ref) gives the same record as a
/// borrowed [`RecordRef`](super::RecordRef), with no reference counting at all.
///
/// ```
/// use bytes::BytesMut;
/// use kafka_sansio::records::*;
///
/// let mut buf = BytesMut::new();
/// let mut b = BatchBuilder::new(&mut buf, &BatchConfig::default());
/// b.append(&NewRecord::new(1_000).key(b"k").value(b"v").headers(&[NewHeader::new("h", Some(b"1"))]))?;
/// b.append(&NewRecord::new(1_001))?;
/// b.finish()?;
/// let opts = DecodeOptions::default();
/// let batch = BatchReader::new(buf.freeze(), opts).next().expect("one batch")?;
/// let records: Vec<Record> = batch.records(&opts)?.collect::<Result<_, _>>()?;
/// assert_eq!((records[0].offset, records[0].timestamp), (0, 1_000));
/// assert_eq!((records[0].key(), records[0].value()), (Some(&b"k"[..]), Some(&b"v"[..])));
/// assert_eq!(records[0].headers().next().map(|h| (h.key, h.value)), Some((&b"h"[..], Some(&b"1"[..]))));
/// assert_eq!((records[1].key(), records[1].value(), records[1].header_count()), (None, None, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Record {
    /// Absolute offset: the batch's base offset plus the record's offset delta.
    pub offset: i64,
    /// Absolute timestamp in milliseconds (the batch's max timestamp when the batch
    /// uses log-append time).
    pub timestamp: i64,
    /// The bytes the spans below point into: the record's own bytes.
    data: Bytes,
    key: Span,
    value: Span,
    /// Where the headers start in `data`, already validated by the parser.
    headers_start: u32,
    header_count: u32,
}

/// A field's bytes `start..end` in a record's `data`; `end == Span::NULL_END` for a
/// null field. `u32` is enough: a record's bytes are at most an `i32` length (v2) or
/// a message's `i32` size plus its 12-byte prefix (legacy).
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    const NULL_END: u32 = u32::MAX;
    const NULL: Span = Span {
        start: 0,
        end: Self::NULL_END,
    };

    /// The span of `field` (positions in a record's data), or the null span.
    #[inline(always)]
    fn new(field: Option<(usize, usize)>) -> Self {
        match field {
            // A span past `u32` cannot come from a parser (see above); it is made a
            // null field rather than a wrong slice.
            Some((start, end)) => match (u32::try_from(start), u32::try_from(end)) {
                (Ok(start), Ok(end)) if end != Self::NULL_END => Span { start, end },
                _ => Self::NULL,
            },
            None => Self::NULL,
        }
    }

    #[inline(always)]
    fn get(self, data: &[u8]) -> Option<&[u8]> {
        if self.end == Self::NULL_END {
            return None;
        }
        data.get(self.start as usize..self.end as usize)
    }
}

/// An owned record's buffer and field positions (see [`Record::parts`]).
pub(super) struct RecordParts<'a> {
    pub(super) data: &'a Bytes,
    pub(super) key: (usize, usize),
    pub(super) value: (usize, usize),
    pub(super) headers_start: usize,
    pub(super) header_count: u32,
}

impl Record {
    /// A record over `data`, its fields at the given positions of `data`, which a
    /// record parser has already validated (`headers_start` starts `header_count`
    /// well-formed headers).
    #[inline(always)]
    pub(super) fn from_parts(
        offset: i64,
        timestamp: i64,
        data: Bytes,
        key: Option<(usize, usize)>,
        value: Option<(usize, usize)>,
        headers_start: usize,
        header_count: u32,
    ) -> Self {
        Record {
            offset,
            timestamp,
            key: Span::new(key),
            value: Span::new(value),
            headers_start: u32::try_from(headers_start).unwrap_or(u32::MAX),
            header_count: if headers_start <= data.len() {
                header_count
            } else {
                0
            },
            data,
        }
    }

    /// The record's buffer and its fields' positions in it, as a borrowed view
    /// (`RecordRef`) keeps them: `(_, usize::MAX)` for a null field.
    pub(super) fn parts(&self) -> RecordParts<'_> {
        let span = |s: Span| {
            if s.end == Span::NULL_END {
                (0, usize::MAX)
            } else {
                (s.start as usize, s.end as usize)
            }
        };
        RecordParts {
            data: &self.data,
            key: span(self.key),
            value: span(self.value),
            headers_start: self.headers_start as usize,
            header_count: self.header_count,
        }
    }

    /// The key, `None` when null.
    ///
    /// ```
    /// # use bytes::BytesMut;
    /// # use kafka_sansio::records::*;
    /// # let mut buf = BytesMut::new();
    /// # let mut b = BatchBuilder::new(&mut buf, &BatchConfig::default());
    /// # b.append(&NewRecord::new(0).key(b"user-7").value(b"hello"))?;
    /// # b.finish()?;
    /// # let opts = DecodeOptions::default();
    /// # let batch = BatchReader::new(buf.freeze(), opts).next().expect("one batch")?;
    /// let record: Record = batch.records(&opts)?.next().expect("one record")?;
    /// assert_eq!(record.key(), Some(&b"user-7"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn key(&self) -> Option<&[u8]> {
        self.key.get(&self.data)
    }

    /// The value, `None` when null (a tombstone in a compacted topic).
    ///
    /// ```
    /// # use bytes::BytesMut;
    /// # use kafka_sansio::records::*;
    /// # let mut buf = BytesMut::new();
    /// # let mut b = BatchBuilder::new(&mut buf, &BatchConfig::default());
    /// # b.append(&NewRecord::new(0).key(b"user-7").value(b"hello"))?;
    /// # b.append(&NewRecord::new(0).key(b"user-7"))?;
    /// # b.finish()?;
    /// # let opts = DecodeOptions::default();
    /// # let batch = BatchReader::new(buf.freeze(), opts).next().expect("one batch")?;
    /// let values: Vec<Option<Vec<u8>>> = batch
    ///     .records(&opts)?
    ///     .map(|r| r.map(|r| r.value().map(<[u8]>::to_vec)))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(values, [Some(b"hello".to_vec()), None]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn value(&self) -> Option<&[u8]> {
        self.value.get(&self.data)
    }

    /// The key as a [`Bytes`] slice of the fetched buffer (no copy), to keep it
    /// after the record is dropped.
    ///
    /// ```
    /// # use bytes::BytesMut;
    /// # use kafka_sansio::records::*;
    /// # let mut buf = BytesMut::new();
    /// # let mut b = BatchBuilder::new(&mut buf, &BatchConfig::default());
    /// # b.append(&NewRecord::new(0).key(b"user-7").value(b"hello"))?;
    /// # b.finish()?;
    /// # let opts = DecodeOptions::default();
    /// # let batch = BatchReader::new(buf.freeze(), opts).next().expect("one batch")?;
    /// let record: Record = batch.records(&opts)?.next().expect("one record")?;
    /// let key: bytes::Bytes = record.key_bytes().expect("a key");
    /// drop(record);
    /// assert_eq!(key, "user-7");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn key_bytes(&self) -> Option<Bytes> {
        self.key().map(|k| self.data.slice_ref(k))
    }

    /// The value as a [`Bytes`] slice of the fetched buffer (no copy), to keep it
    /// after the record is dropped.
    ///
    /// ```
    /// # use bytes::BytesMut;
    /// # use kafka_sansio::records::*;
    /// # let mut buf = BytesMut::new();
    /// # let mut b = BatchBuilder::new(&mut buf, &BatchConfig::default());
    /// # b.append(&NewRecord::new(0).key(b"user-7").value(b"hello"))?;
    /// # b.finish()?;
    /// # let opts = DecodeOptions::default();
    /// # let batch = BatchReader::new(buf.freeze(), opts).next().expect("one batch")?;
    /// let record: Record = batch.records(&opts)?.next().expect("one record")?;
    /// assert_eq!(record.value_bytes().as_deref(), Some(&b"hello"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.value().map(|v| self.data.slice_ref(v))
    }

    /// How many headers the record carries.
    ///
    /// ```
    /// # use bytes::BytesMut;
    /// # use kafka_sansio::records::*;
    /// # let mut buf = BytesMut::new();
    /// # let mut b = BatchBuilder::new(&mut buf, &BatchConfig::default());
    /// # let headers = [NewHeader::new("trace", Some(b"1")), NewHeader::new("trace", None)];
    /// # b.append(&NewRecord::new(0).value(b"hello").headers(&headers))?;
    /// # b.finish()?;
    /// # let opts = DecodeOptions::default();
    /// # let batch = BatchReader::new(buf.freeze(), opts).next().expect("one batch")?;
    /// let record: Record = batch.records(&opts)?.next().expect("one record")?;
    /// assert_eq!(record.header_count(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }

    /// The headers in order, borrowed from the record; duplicate keys are kept, null
    /// values are `None`. [`HeaderRef::key_bytes`] and [`HeaderRef::value_bytes`]
    /// give owned slices.
    ///
    /// ```
    /// # use bytes::BytesMut;
    /// # use kafka_sansio::records::*;
    /// # let mut buf = BytesMut::new();
    /// # let mut b = BatchBuilder::new(&mut buf, &BatchConfig::default());
    /// # let headers = [NewHeader::new("trace", Some(b"1")), NewHeader::new("trace", None)];
    /// # b.append(&NewRecord::new(0).value(b"hello").headers(&headers))?;
    /// # b.finish()?;
    /// # let opts = DecodeOptions::default();
    /// # let batch = BatchReader::new(buf.freeze(), opts).next().expect("one batch")?;
    /// let record: Record = batch.records(&opts)?.next().expect("one record")?;
    /// let headers: Vec<(&str, Option<&[u8]>)> = record
    ///     .headers()
    ///     .map(|h| (h.key_str().expect("UTF-8"), h.value))
    ///     .collect();
    /// assert_eq!(headers, [("trace", Some(&b"1"[..])), ("trace", None)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn headers(&self) -> HeaderRefIter<'_> {
        HeaderRefIter::new(&self.data, self.headers_start as usize, self.header_count)
    }
}

/// Records are equal when their offsets, timestamps, keys, values and headers are,
/// wherever their bytes sit.
impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        self.offset == other.offset
            && self.timestamp == other.timestamp
            && self.key() == other.key()
            && self.value() == other.value()
            && self.header_count == other.header_count
            && self.headers().eq(other.headers())
    }
}

impl Eq for Record {}

/// Shows the fields (byte strings escaped as `b"..."`), not the buffer.
impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("key", &self.key().map(ByteStr))
            .field("value", &self.value().map(ByteStr))
            .field("headers", &HeadersDebug(self.headers()))
            .finish()
    }
}

/// Debug-formats bytes as an escaped byte string literal.
struct ByteStr<'a>(&'a [u8]);

impl std::fmt::Debug for ByteStr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

struct HeadersDebug<'a>(HeaderRefIter<'a>);

impl std::fmt::Debug for HeadersDebug<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.0
                    .clone()
                    .map(|h| (ByteStr(h.key), h.value.map(ByteStr))),
            )
            .finish()
    }
}

/// One record header borrowed from its record. Equality compares key and value.
#[derive(Clone, Copy)]
pub struct HeaderRef<'a> {
    /// The key; Kafka says UTF-8, see [`HeaderRef::key_str`].
    pub key: &'a [u8],
    /// The value, `None` when null.
    pub value: Option<&'a [u8]>,
    record: &'a Bytes,
}

impl PartialEq for HeaderRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.value == other.value
    }
}

impl Eq for HeaderRef<'_> {}

/// Shows the key and value (escaped as `b"..."`), not the record's buffer.
impl std::fmt::Debug for HeaderRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderRef")
            .field("key", &ByteStr(self.key))
            .field("value", &self.value.map(ByteStr))
            .finish()
    }
}

impl<'a> HeaderRef<'a> {
    /// The key as a string, if it is UTF-8 as Kafka requires.
    pub fn key_str(&self) -> Result<&'a str, std::str::Utf8Error> {
        std::str::from_utf8(self.key)
    }

    /// The key as a [`Bytes`] slice of the fetched buffer (no copy).
    #[must_use]
    pub fn key_bytes(&self) -> Bytes {
        self.record.slice_ref(self.key)
    }

    /// The value as a [`Bytes`] slice of the fetched buffer (no copy).
    #[must_use]
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.value.map(|v| self.record.slice_ref(v))
    }
}

/// Iterator over the headers of a [`RecordRef`](super::RecordRef).
#[derive(Debug, Clone)]
pub struct HeaderRefIter<'a> {
    data: &'a Bytes,
    pos: usize,
    remaining: u32,
}

impl<'a> HeaderRefIter<'a> {
    /// The `remaining` headers from `pos` of a record's validated bytes `data`.
    pub(super) fn new(data: &'a Bytes, pos: usize, remaining: u32) -> Self {
        HeaderRefIter {
            data,
            pos,
            remaining,
        }
    }
}

impl<'a> Iterator for HeaderRefIter<'a> {
    type Item = HeaderRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<HeaderRef<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // The record parser already walked these bytes, so a failure here would be a
        // bug; it ends the iteration instead of panicking.
        let d: &'a [u8] = self.data;
        let klen = usize::try_from(read_varint_at(d, &mut self.pos).ok()?).ok()?;
        let key = d.get(self.pos..self.pos + klen)?;
        self.pos += klen;
        let vlen = read_varint_at(d, &mut self.pos).ok()?;
        let value = if vlen < 0 {
            None
        } else {
            let v = d.get(self.pos..self.pos + vlen as usize)?;
            self.pos += vlen as usize;
            Some(v)
        };
        Some(HeaderRef {
            key,
            value,
            record: self.data,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}
