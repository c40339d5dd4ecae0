//! Decoding: the batch reader over a `records` buffer, RecordBatch v2 headers and the
//! lazy, zero-copy record iterator.

use bytes::Bytes;

use super::compression::{self, Compression};
use super::error::{RecordsError, RecordsErrorKind};
use super::legacy::{LegacyMessage, MIN_MESSAGE_LEN};
use super::record::{HeaderRefIter, LOG_OVERHEAD, Record};
use super::{DecodeOptions, TimestampType, attributes};
use crate::wire::{VarintError, read_unsigned_varint_at, read_varint_at, read_varlong_at};

/// Bytes of a RecordBatch v2 before its first record.
pub const BATCH_HEADER_LEN: usize = 61;
/// Where the CRC-covered span of a v2 batch starts (the attributes field).
pub(crate) const CRC_START: usize = 21;
/// The smallest possible encoded record: seven one-byte fields.
pub(crate) const MIN_RECORD_LEN: usize = 7;

/// The fixed fields of a RecordBatch v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the length field to the end of the batch.
    pub batch_length: i32,
    /// The leader epoch of the partition when the batch was appended.
    pub partition_leader_epoch: i32,
    /// The format version; always 2 here.
    pub magic: i8,
    /// CRC32C of the attributes through the end of the batch.
    pub crc: u32,
    /// Compression, timestamp type, transactional, control and delete-horizon bits.
    pub attributes: i16,
    /// `last offset - base offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record, or the delete horizon when that bit is set.
    pub base_timestamp: i64,
    /// The largest timestamp in the batch.
    pub max_timestamp: i64,
    /// The idempotent or transactional producer, `-1` when none.
    pub producer_id: i64,
    /// The producer's epoch, `-1` when none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, `-1` when none.
    pub base_sequence: i32,
    /// How many records the batch declares.
    pub record_count: i32,
}

impl BatchHeader {
    /// The compression codec, or the unknown id as an error.
    pub fn compression(&self) -> Result<Compression, RecordsErrorKind> {
        Compression::from_id((self.attributes & attributes::COMPRESSION_MASK) as u8)
    }

    /// Whether record timestamps were set by the producer or by the broker.
    #[must_use]
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & attributes::LOG_APPEND_TIME != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction.
    #[must_use]
    pub fn is_transactional(&self) -> bool {
        self.attributes & attributes::TRANSACTIONAL != 0
    }

    /// Whether the batch holds a control record (a transaction marker).
    #[must_use]
    pub fn is_control(&self) -> bool {
        self.attributes & attributes::CONTROL != 0
    }

    /// Whether `base_timestamp` holds the delete horizon (KIP-534).
    #[must_use]
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & attributes::DELETE_HORIZON != 0
    }

    /// Offset of the last record: `base_offset + last_offset_delta`.
    #[must_use]
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// The offset after this batch, where the next fetch continues.
    #[must_use]
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }
}

/// One RecordBatch v2: its header and its (possibly compressed) records bytes.
///
/// Records are only parsed when iterated, through [`RecordBatch::records`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    /// The fixed fields.
    pub header: BatchHeader,
    /// The bytes after the header: the records, compressed if the attributes say so.
    pub records_data: Bytes,
    /// Byte offset of this batch in the buffer it was read from.
    pub position: usize,
}

impl RecordBatch {
    /// Parses one v2 batch from `entry`, which holds exactly the batch.
    pub(crate) fn parse(
        entry: Bytes,
        position: usize,
        verify_crc: bool,
    ) -> Result<Self, RecordsError> {
        let d: &[u8] = &entry;
        if d.len() < BATCH_HEADER_LEN {
            return Err(RecordsError::new(
                "RecordBatch.batch_length",
                position + 8,
                RecordsErrorKind::InvalidLength {
                    length: d.len() as i64 - LOG_OVERHEAD as i64,
                    minimum: BATCH_HEADER_LEN - LOG_OVERHEAD,
                },
            ));
        }
        let i64_at = |at: usize| i64::from_be_bytes(d[at..at + 8].try_into().unwrap_or([0; 8]));
        let i32_at = |at: usize| i32::from_be_bytes(d[at..at + 4].try_into().unwrap_or([0; 4]));
        let i16_at = |at: usize| i16::from_be_bytes([d[at], d[at + 1]]);
        let header = BatchHeader {
            base_offset: i64_at(0),
            batch_length: i32_at(8),
            partition_leader_epoch: i32_at(12),
            magic: d[16] as i8,
            crc: i32_at(17) as u32,
            attributes: i16_at(21),
            last_offset_delta: i32_at(23),
            base_timestamp: i64_at(27),
            max_timestamp: i64_at(35),
            producer_id: i64_at(43),
            producer_epoch: i16_at(51),
            base_sequence: i32_at(53),
            record_count: i32_at(57),
        };
        if verify_crc {
            let computed = crc32c::crc32c(&d[CRC_START..]);
            if computed != header.crc {
                return Err(RecordsError::new(
                    "RecordBatch.crc",
                    position + 17,
                    RecordsErrorKind::CrcMismatch {
                        stored: header.crc,
                        computed,
                    },
                ));
            }
        }
        let compression = header.compression().map_err(|kind| {
            RecordsError::new("RecordBatch.attributes", position + CRC_START, kind)
        })?;
        let body = d.len() - BATCH_HEADER_LEN;
        if header.record_count < 0
            || (compression == Compression::None
                && header.record_count as usize > body / MIN_RECORD_LEN)
        {
            return Err(count_error(header.record_count, body, position + 57));
        }
        Ok(Self {
            header,
            records_data: entry.slice(BATCH_HEADER_LEN..),
            position,
        })
    }

    /// An iterator over the records, decompressing them first if the batch is
    /// compressed (one buffer per batch, bounded by
    /// [`DecodeOptions::max_decompressed_bytes`]).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use kafka_sansio::records::{BatchBuilder, BatchConfig, BatchReader, DecodeOptions, NewRecord};
    ///
    /// let mut buf = BytesMut::new();
    /// let mut builder = BatchBuilder::new(&mut buf, &BatchConfig::default());
    /// builder.append(&NewRecord::new(1_700_000_000_000).value(b"hello"))?;
    /// builder.finish()?;
    ///
    /// let opts = DecodeOptions::default();
    /// let mut reader = BatchReader::new(buf.freeze(), opts);
    /// let batch = reader.next().expect("one batch")?.into_v2().expect("v2");
    /// for record in batch.records(&opts)? {
    ///     let record = record?;
    ///     assert_eq!(record.value(), Some(&b"hello"[..]));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn records(&self, opts: &DecodeOptions) -> Result<Records, RecordsError> {
        let header = &self.header;
        let compression = header.compression().map_err(|kind| {
            RecordsError::new("RecordBatch.attributes", self.position + CRC_START, kind)
        })?;
        // An empty batch carries no records bytes, compressed or not.
        let data = if compression == Compression::None {
            self.records_data.clone()
        } else if header.record_count == 0 {
            Bytes::new()
        } else {
            let out = compression::decompress(
                compression,
                &self.records_data,
                opts.max_decompressed_bytes,
            )
            .map_err(|kind| {
                RecordsError::new(
                    "RecordBatch.records",
                    self.position + BATCH_HEADER_LEN,
                    kind,
                )
            })?;
            if out.len() >= u32::MAX as usize {
                return Err(RecordsError::new(
                    "RecordBatch.records",
                    self.position + BATCH_HEADER_LEN,
                    RecordsErrorKind::DecompressedTooLarge {
                        limit: u32::MAX as usize - 1,
                    },
                ));
            }
            if header.record_count as usize > out.len() / MIN_RECORD_LEN {
                return Err(count_error(
                    header.record_count,
                    out.len(),
                    self.position + 57,
                ));
            }
            Bytes::from(out)
        };
        Ok(Records {
            data,
            pos: 0,
            remaining: header.record_count.max(0) as u32,
            base_offset: header.base_offset,
            base_timestamp: header.base_timestamp,
            log_append_time: match header.timestamp_type() {
                TimestampType::LogAppendTime => Some(header.max_timestamp),
                TimestampType::CreateTime => None,
            },
            done: false,
        })
    }
}

#[cold]
fn count_error(count: i32, bytes: usize, position: usize) -> RecordsError {
    RecordsError::new(
        "RecordBatch.records_count",
        position,
        RecordsErrorKind::RecordCountExceedsBytes {
            count: i64::from(count),
            bytes,
        },
    )
}

/// The lazy iterator over the records of one batch.
///
/// Each record is validated as it is reached; after the first error the iterator
/// ends. Once the declared count is reached, bytes left over are reported as an error.
#[derive(Debug, Clone)]
pub struct Records {
    data: Bytes,
    pos: usize,
    remaining: u32,
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
    done: bool,
}

impl Records {
    /// Records not yet yielded, as the batch declared them.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.remaining as usize
    }

    #[cold]
    fn varint_error(field: &'static str, pos: usize, err: VarintError, len: usize) -> RecordsError {
        match err {
            VarintError::Eof => RecordsError::eof(field, pos, 1, len.saturating_sub(pos)),
            VarintError::Overflow => RecordsError::new(
                field,
                pos,
                RecordsErrorKind::VarintOverflow {
                    max_bytes: if field == "Record.timestamp_delta" {
                        10
                    } else {
                        5
                    },
                },
            ),
        }
    }

    #[inline(always)]
    fn varint(d: &[u8], pos: &mut usize, field: &'static str) -> Result<i32, RecordsError> {
        let at = *pos;
        read_varint_at(d, pos).map_err(|e| Self::varint_error(field, at, e, d.len()))
    }

    /// Reads a nullable length-prefixed field within `d`, returning its range.
    #[inline(always)]
    fn nullable(
        d: &[u8],
        pos: &mut usize,
        field: &'static str,
    ) -> Result<Option<(usize, usize)>, RecordsError> {
        let at = *pos;
        let len = Self::varint(d, pos, field)?;
        if len < 0 {
            if len == -1 {
                return Ok(None);
            }
            return Err(RecordsError::new(
                field,
                at,
                RecordsErrorKind::NegativeLength(i64::from(len)),
            ));
        }
        let start = *pos;
        let len = len as usize;
        if len > d.len() - start {
            return Err(RecordsError::eof(field, start, len as u64, d.len() - start));
        }
        *pos = start + len;
        Ok(Some((start, start + len)))
    }

    /// Parses the next record, first optimistically with no error bookkeeping, then,
    /// only if that fails, again with full diagnostics to say what and where.
    #[inline(always)]
    fn parse(&mut self) -> Result<FastRecord, RecordsError> {
        let all: &[u8] = &self.data;
        let start = self.pos;
        let Some(f) = fast_record(all, start) else {
            return Err(self.parse_checked().err().unwrap_or_else(|| {
                RecordsError::new(
                    "Record",
                    start,
                    RecordsErrorKind::Malformed("record rejected by the fast parser"),
                )
            }));
        };
        self.pos = f.end;
        Ok(f)
    }

    /// Steps to the next record: the shared body of `next` and `next_ref`.
    #[inline(always)]
    pub(super) fn step(&mut self) -> Option<Result<FastRecord, RecordsError>> {
        if self.remaining == 0 {
            if self.done {
                return None;
            }
            self.done = true;
            let left = self.data.len() - self.pos;
            if left != 0 {
                return Some(Err(RecordsError::new(
                    "RecordBatch.records",
                    self.pos,
                    RecordsErrorKind::TrailingBytes(left),
                )));
            }
            return None;
        }
        self.remaining -= 1;
        match self.parse() {
            Ok(r) => Some(Ok(r)),
            Err(e) => {
                self.remaining = 0;
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// The absolute offset of a record [`step`](Self::step) found.
    #[inline(always)]
    pub(super) fn offset_of(&self, f: &FastRecord) -> i64 {
        self.base_offset.wrapping_add(i64::from(f.offset_delta))
    }

    #[inline(always)]
    fn timestamp(&self, ts_delta: i64) -> i64 {
        match self.log_append_time {
            Some(ts) => ts,
            None => self.base_timestamp.wrapping_add(ts_delta),
        }
    }

    /// The next record as a view borrowed from this iterator's buffer: the fastest
    /// way through a batch, with no reference counting per record. Same records,
    /// order and errors as [`Iterator::next`]; use [`RecordRef::to_record`] to keep one.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use kafka_sansio::records::*;
    ///
    /// let mut buf = BytesMut::new();
    /// let mut b = BatchBuilder::new(&mut buf, &BatchConfig::default());
    /// b.append(&NewRecord::new(5).key(b"k").value(b"v"))?;
    /// b.finish()?;
    /// let opts = DecodeOptions::default();
    /// let batch = BatchReader::new(buf.freeze(), opts).next().expect("batch")?;
    /// let mut records = batch.into_v2().expect("v2").records(&opts)?;
    /// while let Some(record) = records.next_ref() {
    ///     let record = record?;
    ///     assert_eq!((record.key(), record.value()), (Some(&b"k"[..]), Some(&b"v"[..])));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    // Always inlined: a call returns the record through memory and saves and
    // restores registers around it, about 25 instructions per record.
    #[inline(always)]
    pub fn next_ref(&mut self) -> Option<Result<RecordRef<'_>, RecordsError>> {
        let f = match self.step()? {
            Ok(f) => f,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(RecordRef::from_fast(self, &f)))
    }

    /// The diagnosing parser: the same grammar as [`fast_record`], reporting the
    /// failing field and position.
    #[cold]
    #[inline(never)]
    fn parse_checked(&self) -> Result<(), RecordsError> {
        let all: &[u8] = &self.data;
        let mut pos = self.pos;
        let start = pos;
        let len = Self::varint(all, &mut pos, "Record.length")?;
        if len < 0 {
            return Err(RecordsError::new(
                "Record.length",
                start,
                RecordsErrorKind::NegativeLength(i64::from(len)),
            ));
        }
        let body_start = pos;
        let len = len as usize;
        if len > all.len() - body_start {
            return Err(RecordsError::eof(
                "Record.length",
                body_start,
                len as u64,
                all.len() - body_start,
            ));
        }
        let end = body_start + len;
        // Parse within the record's own bytes so no field can read past its end.
        let d = &all[..end];
        if pos >= end {
            return Err(RecordsError::eof("Record.attributes", pos, 1, 0));
        }
        pos += 1; // attributes: unused in v2
        let at = pos;
        let ts_delta = read_varlong_at(d, &mut pos)
            .map_err(|e| Self::varint_error("Record.timestamp_delta", at, e, d.len()))?;
        let offset_delta = Self::varint(d, &mut pos, "Record.offset_delta")?;
        let key = Self::nullable(d, &mut pos, "Record.key")?;
        let value = Self::nullable(d, &mut pos, "Record.value")?;
        let at = pos;
        let header_count = Self::varint(d, &mut pos, "Record.headers")?;
        let headers_start = pos;
        if header_count < 0 || header_count as usize > (end - pos) / 2 {
            return Err(RecordsError::new(
                "Record.headers",
                at,
                RecordsErrorKind::RecordCountExceedsBytes {
                    count: i64::from(header_count),
                    bytes: end - pos,
                },
            ));
        }
        for _ in 0..header_count {
            let at = pos;
            if Self::nullable(d, &mut pos, "Header.key")?.is_none() {
                return Err(RecordsError::new(
                    "Header.key",
                    at,
                    RecordsErrorKind::NegativeLength(-1),
                ));
            }
            Self::nullable(d, &mut pos, "Header.value")?;
        }
        if pos != end {
            return Err(RecordsError::new(
                "Record.length",
                start,
                RecordsErrorKind::RecordLengthMismatch {
                    declared: len,
                    used: pos - body_start,
                },
            ));
        }
        let _validated = (ts_delta, offset_delta, key, value, headers_start);
        Ok(())
    }
}

/// The fields of a record found by [`fast_record`]; spans are absolute positions,
/// `(_, usize::MAX)` for null.
pub(super) struct FastRecord {
    start: usize,
    end: usize,
    ts_delta: i64,
    offset_delta: i32,
    key: (usize, usize),
    value: (usize, usize),
    headers_start: usize,
    header_count: u32,
}

/// Skips a nullable length-prefixed field, returning its span.
#[inline(always)]
fn fast_nullable(d: &[u8], pos: &mut usize) -> Option<(usize, usize)> {
    // Work on the zig-zag form: 2n is length n, 1 is null (-1), other odd values
    // are negative lengths.
    let raw = read_unsigned_varint_at(d, pos).ok()?;
    let start = *pos;
    if raw & 1 == 0 {
        let end = start + (raw >> 1) as usize;
        if end > d.len() {
            return None;
        }
        *pos = end;
        Some((start, end))
    } else if raw == 1 {
        Some((0, usize::MAX))
    } else {
        None
    }
}

/// A non-negative varint (a length or count), from its zig-zag form.
#[inline(always)]
fn fast_len(d: &[u8], pos: &mut usize) -> Option<usize> {
    let raw = read_unsigned_varint_at(d, pos).ok()?;
    (raw & 1 == 0).then_some((raw >> 1) as usize)
}

/// Parses one record at `start` of `all`, or `None` if anything is wrong with it.
#[inline(always)]
fn fast_record(all: &[u8], start: usize) -> Option<FastRecord> {
    let mut pos = start;
    let len = fast_len(all, &mut pos)?;
    let end = pos + len;
    let d = all.get(..end)?;
    pos += 1; // attributes: unused in v2
    let ts_delta = read_varlong_at(d, &mut pos).ok()?;
    let offset_delta = read_varint_at(d, &mut pos).ok()?;
    let key = fast_nullable(d, &mut pos)?;
    let value = fast_nullable(d, &mut pos)?;
    let header_count = fast_len(d, &mut pos)?;
    let headers_start = pos;
    // Each header takes at least two bytes, so a lying count fails within the bytes.
    let mut left = header_count;
    while left > 0 {
        let k = fast_nullable(d, &mut pos)?;
        if k.1 == usize::MAX {
            return None;
        }
        fast_nullable(d, &mut pos)?;
        left -= 1;
    }
    if pos != end {
        return None;
    }
    Some(FastRecord {
        start,
        end,
        ts_delta,
        offset_delta,
        key,
        value,
        headers_start,
        header_count: header_count as u32,
    })
}

impl Iterator for Records {
    type Item = Result<Record, RecordsError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let f = match self.step()? {
            Ok(f) => f,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(RecordRef::from_fast(self, &f).to_record()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize + 1))
    }
}

/// A record borrowed from its batch's records buffer, from [`Records::next_ref`].
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// Absolute offset.
    pub offset: i64,
    /// Absolute timestamp in milliseconds.
    pub timestamp: i64,
    data: &'a Bytes,
    // Positions in `data`; `usize::MAX` ends a null field.
    start: usize,
    end: usize,
    key: (usize, usize),
    value: (usize, usize),
    headers_start: usize,
    header_count: u32,
}

impl<'a> RecordRef<'a> {
    #[inline(always)]
    fn field(&self, span: (usize, usize)) -> Option<&'a [u8]> {
        if span.1 == usize::MAX {
            return None;
        }
        let d: &'a [u8] = self.data;
        d.get(span.0..span.1)
    }

    /// The key, `None` when null.
    #[inline]
    #[must_use]
    pub fn key(&self) -> Option<&'a [u8]> {
        self.field(self.key)
    }

    /// The value, `None` when null.
    #[inline]
    #[must_use]
    pub fn value(&self) -> Option<&'a [u8]> {
        self.field(self.value)
    }

    /// How many headers the record carries.
    #[must_use]
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }

    /// The headers in order; duplicate keys are kept, null values are `None`.
    #[inline]
    #[must_use]
    pub fn headers(&self) -> HeaderRefIter<'a> {
        HeaderRefIter::new(self.data, self.headers_start, self.header_count)
    }

    /// The key as a [`Bytes`] slice of the fetched buffer (no copy).
    #[must_use]
    pub fn key_bytes(&self) -> Option<Bytes> {
        self.key().map(|k| self.data.slice_ref(k))
    }

    /// The value as a [`Bytes`] slice of the fetched buffer (no copy).
    #[must_use]
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.value().map(|v| self.data.slice_ref(v))
    }

    /// An owned [`Record`] sharing the same buffer (no copy): one handle on the
    /// record's bytes, one reference-count increment.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use kafka_sansio::records::*;
    ///
    /// let mut buf = BytesMut::new();
    /// let mut b = BatchBuilder::new(&mut buf, &BatchConfig::default());
    /// b.append(&NewRecord::new(5).key(b"k").value(b"v"))?;
    /// b.finish()?;
    /// let opts = DecodeOptions::default();
    /// let batch = BatchReader::new(buf.freeze(), opts).next().expect("batch")?;
    /// let mut records = batch.into_v2().expect("v2").records(&opts)?;
    /// let kept: Record = records.next_ref().expect("one record")?.to_record();
    /// assert_eq!(kept.value(), Some(&b"v"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn to_record(&self) -> Record {
        let start = self.start;
        let relative =
            |span: (usize, usize)| (span.1 != usize::MAX).then(|| (span.0 - start, span.1 - start));
        Record::from_parts(
            self.offset,
            self.timestamp,
            self.data.slice(start..self.end),
            relative(self.key),
            relative(self.value),
            self.headers_start - start,
            self.header_count,
        )
    }

    #[inline(always)]
    pub(super) fn from_fast(records: &'a Records, f: &FastRecord) -> Self {
        RecordRef {
            offset: records.offset_of(f),
            timestamp: records.timestamp(f.ts_delta),
            data: &records.data,
            start: f.start,
            end: f.end,
            key: f.key,
            value: f.value,
            headers_start: f.headers_start,
            header_count: f.header_count,
        }
    }

    /// A view of an owned record (a legacy message's, unpacked from its wrapper).
    pub(super) fn of_record(record: &'a Record) -> Self {
        let parts = record.parts();
        RecordRef {
            offset: record.offset,
            timestamp: record.timestamp,
            data: parts.data,
            start: 0,
            end: parts.data.len(),
            key: parts.key,
            value: parts.value,
            headers_start: parts.headers_start,
            header_count: parts.header_count,
        }
    }
}

/// A batch that runs past the end of the buffer: brokers cut the last batch of a
/// Fetch response at the byte limit. Not an error; fetch again from its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated {
    /// Byte offset where the partial batch starts.
    pub position: usize,
    /// The partial batch's base offset, when at least its first 8 bytes arrived.
    pub base_offset: Option<i64>,
    /// Bytes the whole batch needs, when its length field arrived.
    pub needed: Option<usize>,
    /// Bytes of it that are present.
    pub available: usize,
}

/// One entry of a `records` buffer: a v2 batch or a legacy (magic 0/1) message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Batch {
    /// A RecordBatch (magic 2).
    V2(RecordBatch),
    /// A legacy message (magic 0 or 1), possibly a compressed wrapper.
    Legacy(LegacyMessage),
}

impl Batch {
    /// The v2 batch, if this is one.
    #[must_use]
    pub fn into_v2(self) -> Option<RecordBatch> {
        match self {
            Self::V2(b) => Some(b),
            Self::Legacy(_) => None,
        }
    }

    /// Offset of the last record in this entry.
    #[must_use]
    pub fn last_offset(&self) -> i64 {
        match self {
            Self::V2(b) => b.header.last_offset(),
            Self::Legacy(m) => m.offset,
        }
    }

    /// The records of this entry, whatever its format.
    pub fn records(&self, opts: &DecodeOptions) -> Result<BatchRecords, RecordsError> {
        Ok(match self {
            Self::V2(b) => BatchRecords::V2(b.records(opts)?),
            Self::Legacy(m) => BatchRecords::Legacy(m.records(opts)?.into_iter()),
        })
    }
}

/// Records of a [`Batch`] of either format.
#[derive(Debug)]
pub enum BatchRecords {
    /// Lazily parsed v2 records.
    V2(Records),
    /// Legacy records, already unpacked from their wrapper.
    Legacy(std::vec::IntoIter<Record>),
}

impl Iterator for BatchRecords {
    type Item = Result<Record, RecordsError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::V2(r) => r.next(),
            Self::Legacy(r) => r.next().map(Ok),
        }
    }
}

/// Reads the batches of a `records` buffer (a Fetch response partition's records, or
/// a log segment) one at a time, without copying.
///
/// Yields each complete batch; stops at the first error (the rest of the buffer
/// cannot be trusted) or at a trailing partial batch, which [`BatchReader::truncated`]
/// then describes.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use kafka_sansio::records::{BatchBuilder, BatchConfig, BatchReader, DecodeOptions, NewRecord};
///
/// let mut buf = BytesMut::new();
/// for base in [0, 1] {
///     let config = BatchConfig { base_offset: base, ..BatchConfig::default() };
///     let mut b = BatchBuilder::new(&mut buf, &config);
///     b.append(&NewRecord::new(0).value(b"v"))?;
///     b.finish()?;
/// }
/// let whole = buf.freeze();
/// // Cut the second batch short, as a broker does at its fetch byte limit.
/// let cut = whole.slice(..whole.len() - 3);
/// let mut reader = BatchReader::new(cut, DecodeOptions::default());
/// assert!(reader.next().expect("first batch").is_ok());
/// assert!(reader.next().is_none());
/// assert_eq!(reader.truncated().expect("partial").base_offset, Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchReader {
    buf: Bytes,
    pos: usize,
    opts: DecodeOptions,
    truncated: Option<Truncated>,
    done: bool,
}

impl BatchReader {
    /// A reader over `buf` (the bytes of a `records` field).
    #[must_use]
    pub fn new(buf: Bytes, opts: DecodeOptions) -> Self {
        Self {
            buf,
            pos: 0,
            opts,
            truncated: None,
            done: false,
        }
    }

    /// The partial batch the buffer ended in, once iteration has reached it.
    #[must_use]
    pub fn truncated(&self) -> Option<Truncated> {
        self.truncated
    }

    /// Byte offset of the next batch to read.
    #[must_use]
    pub fn position(&self) -> usize {
        self.pos
    }

    fn read_next(&mut self) -> Result<Option<Batch>, RecordsError> {
        let d: &[u8] = &self.buf;
        let pos = self.pos;
        let avail = d.len() - pos;
        if avail == 0 {
            return Ok(None);
        }
        let rest = &d[pos..];
        if avail < LOG_OVERHEAD {
            self.truncated = Some(Truncated {
                position: pos,
                base_offset: rest.first_chunk::<8>().map(|b| i64::from_be_bytes(*b)),
                needed: None,
                available: avail,
            });
            return Ok(None);
        }
        let base_offset = i64::from_be_bytes(rest[..8].try_into().unwrap_or([0; 8]));
        let length = i32::from_be_bytes(rest[8..12].try_into().unwrap_or([0; 4]));
        if length < MIN_MESSAGE_LEN as i32 {
            return Err(RecordsError::new(
                "RecordBatch.batch_length",
                pos + 8,
                RecordsErrorKind::InvalidLength {
                    length: i64::from(length),
                    minimum: MIN_MESSAGE_LEN,
                },
            ));
        }
        let total = LOG_OVERHEAD + length as usize;
        if total > avail {
            self.truncated = Some(Truncated {
                position: pos,
                base_offset: Some(base_offset),
                needed: Some(total),
                available: avail,
            });
            return Ok(None);
        }
        let entry = self.buf.slice(pos..pos + total);
        let magic = rest[16] as i8;
        let batch = match magic {
            2 => Batch::V2(RecordBatch::parse(entry, pos, self.opts.verify_crc)?),
            0 | 1 => Batch::Legacy(LegacyMessage::parse(&entry, pos, self.opts.verify_crc)?),
            other => {
                return Err(RecordsError::new(
                    "RecordBatch.magic",
                    pos + 16,
                    RecordsErrorKind::UnsupportedMagic(other),
                ));
            }
        };
        self.pos = pos + total;
        Ok(Some(batch))
    }
}

impl Iterator for BatchReader {
    type Item = Result<Batch, RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_next() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
