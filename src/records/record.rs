//! What every record format shares: the decoded [`Record`] with its [`Headers`], and
//! the log entry prefix both v2 batches and legacy messages start with.
//!
//! The v2 batch reader (`batch`) and the legacy message reader (`legacy`) both build
//! these; neither imports the other's records.

use bytes::Bytes;

use crate::wire::read_varint_at;

/// Bytes of the base offset and batch length, which every batch format starts with.
pub const LOG_OVERHEAD: usize = 12;

/// A record decoded from a batch. Key, value and header values are [`Bytes`]
/// slices of the buffer the batch was read from (or of its decompressed records),
/// never copies.
///
/// [`Records::next_ref`](super::Records::next_ref) gives the same record as a
/// borrowed [`RecordRef`](super::RecordRef) without the reference counting these
/// owned slices cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset: the batch's base offset plus the record's offset delta.
    pub offset: i64,
    /// Absolute timestamp in milliseconds (the batch's max timestamp when the batch
    /// uses log-append time).
    pub timestamp: i64,
    /// The key, `None` when null.
    pub key: Option<Bytes>,
    /// The value, `None` when null (a tombstone in a compacted topic).
    pub value: Option<Bytes>,
    /// The headers, in order, duplicates kept.
    pub headers: Headers,
}

/// The headers of a record, parsed lazily from their already-validated bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers {
    data: Bytes,
    count: u32,
}

impl Headers {
    /// The `count` headers in `data`, bytes a record parser has already validated.
    pub(super) fn new(data: Bytes, count: u32) -> Self {
        Headers { data, count }
    }

    /// How many headers the record carries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the record carries no headers.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The headers in order; keys may repeat.
    #[must_use]
    pub fn iter(&self) -> HeaderIter<'_> {
        HeaderIter {
            inner: HeaderRefIter {
                data: &self.data,
                pos: 0,
                remaining: self.count,
            },
        }
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = Header;
    type IntoIter = HeaderIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// One record header, owning [`Bytes`] slices of the fetched buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The key; Kafka says UTF-8, see [`Header::key_str`].
    pub key: Bytes,
    /// The value, `None` when null.
    pub value: Option<Bytes>,
}

impl Header {
    /// The key as a string, if it is UTF-8 as Kafka requires.
    pub fn key_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.key)
    }
}

/// Iterator over a record's [`Headers`].
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    inner: HeaderRefIter<'a>,
}

impl Iterator for HeaderIter<'_> {
    type Item = Header;

    #[inline]
    fn next(&mut self) -> Option<Header> {
        let h = self.inner.next()?;
        Some(Header {
            key: h.key_bytes(),
            value: h.value_bytes(),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// One record header borrowed from its record. Equality compares key and value.
#[derive(Debug, Clone, Copy)]
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

impl HeaderRef<'_> {
    /// The key as a string, if it is UTF-8 as Kafka requires.
    pub fn key_str(&self) -> Result<&str, std::str::Utf8Error> {
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
