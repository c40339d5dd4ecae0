//! Encoding: a RecordBatch v2 builder that writes records straight into one buffer.

use bytes::BytesMut;

use super::batch::{BATCH_HEADER_LEN, CRC_START, LOG_OVERHEAD};
use super::compression::{self, Compression, SnappyFraming};
use super::error::{AppendError, EncodeError};
use super::varint::{put_uvarint, uvarint_len, zigzag64};
use super::{TimestampType, attributes};

/// Kafka's default `max.message.bytes`: the default byte limit of a batch.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 1_048_588;

/// A record to append: borrowed key, value and headers.
///
/// ```
/// use kafka_sansio::records::{NewHeader, NewRecord};
/// let headers = [NewHeader::new("trace", Some(b"abc"))];
/// let record = NewRecord::new(1_700_000_000_000).key(b"k").value(b"v").headers(&headers);
/// assert_eq!(record.key, Some(&b"k"[..]));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NewRecord<'a> {
    /// Timestamp in milliseconds.
    pub timestamp: i64,
    /// The key, `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The value, `None` for a null value (a tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers in order; duplicate keys are allowed and kept.
    pub headers: &'a [NewHeader<'a>],
}

impl<'a> NewRecord<'a> {
    /// A record with the given timestamp, null key and value and no headers.
    #[must_use]
    pub fn new(timestamp: i64) -> Self {
        Self {
            timestamp,
            ..Self::default()
        }
    }

    /// Sets the key.
    #[must_use]
    pub fn key(mut self, key: &'a [u8]) -> Self {
        self.key = Some(key);
        self
    }

    /// Sets the value.
    #[must_use]
    pub fn value(mut self, value: &'a [u8]) -> Self {
        self.value = Some(value);
        self
    }

    /// Sets the headers.
    #[must_use]
    pub fn headers(mut self, headers: &'a [NewHeader<'a>]) -> Self {
        self.headers = headers;
        self
    }
}

/// A header to append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewHeader<'a> {
    /// The key.
    pub key: &'a str,
    /// The value, `None` for null.
    pub value: Option<&'a [u8]>,
}

impl<'a> NewHeader<'a> {
    /// A header.
    #[must_use]
    pub fn new(key: &'a str, value: Option<&'a [u8]>) -> Self {
        Self { key, value }
    }
}

/// The batch-level fields and encoding choices of a [`BatchBuilder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Offset of the first record (producers write 0; the broker assigns offsets).
    pub base_offset: i64,
    /// Partition leader epoch; `-1` from producers.
    pub partition_leader_epoch: i32,
    /// Idempotent/transactional producer id, `-1` for none.
    pub producer_id: i64,
    /// Producer epoch, `-1` for none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, `-1` for none.
    pub base_sequence: i32,
    /// Whether the batch is part of a transaction.
    pub transactional: bool,
    /// Who set the timestamps.
    pub timestamp_type: TimestampType,
    /// The codec for the records.
    pub compression: Compression,
    /// Codec level: gzip 0-9 (default 6), zstd 1-22 and negatives (default 3).
    /// Ignored by snappy and by lz4 (lz4_flex has one speed/ratio setting).
    pub compression_level: Option<i32>,
    /// Framing of snappy output.
    pub snappy_framing: SnappyFraming,
    /// Upper bound on the batch's uncompressed size, header included: a record that
    /// would cross it is refused with [`AppendError::BatchFull`]. Compressed batches
    /// are checked on their uncompressed size, which bounds the compressed size except
    /// for a few bytes of codec framing on incompressible data.
    pub max_batch_bytes: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            base_offset: 0,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            timestamp_type: TimestampType::CreateTime,
            compression: Compression::None,
            compression_level: None,
            snappy_framing: SnappyFraming::Xerial,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
        }
    }
}

/// Builds one RecordBatch v2 at the end of a caller's buffer.
///
/// `new` reserves the header; each [`append`](Self::append) writes one record in
/// place (no allocation per record); [`finish`](Self::finish) compresses if asked,
/// fills in the header and patches in the CRC32C. Dropping a builder without
/// finishing it removes its partial batch from the buffer.
///
/// ```
/// use bytes::BytesMut;
/// use kafka_sansio::records::{AppendError, BatchBuilder, BatchConfig, NewRecord};
///
/// let mut buf = BytesMut::new();
/// let config = BatchConfig { max_batch_bytes: 200, ..BatchConfig::default() };
/// let mut builder = BatchBuilder::new(&mut buf, &config);
/// let value = [7u8; 40];
/// let mut appended = 0;
/// loop {
///     match builder.append(&NewRecord::new(0).value(&value)) {
///         Ok(()) => appended += 1,
///         Err(AppendError::BatchFull { .. }) => break,
///         Err(e) => return Err(e.into()),
///     }
/// }
/// let len = builder.finish()?;
/// assert!(len <= 200);
/// assert_eq!(appended, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct BatchBuilder<'a> {
    buf: &'a mut BytesMut,
    start: usize,
    /// Logical end of the batch in `buf`. The buffer itself is grown ahead of it in
    /// large zeroed steps (so zeroing is paid per step, not per record) and cut
    /// back to this length by `finish` or on drop.
    end: usize,
    config: BatchConfig,
    control: bool,
    count: i32,
    first_timestamp: i64,
    max_timestamp: i64,
    finished: bool,
}

impl<'a> BatchBuilder<'a> {
    /// Starts a batch at the end of `buf`.
    pub fn new(buf: &'a mut BytesMut, config: &BatchConfig) -> Self {
        let start = buf.len();
        buf.reserve(BATCH_HEADER_LEN);
        buf.extend_from_slice(&[0u8; BATCH_HEADER_LEN]);
        let end = buf.len();
        Self {
            buf,
            start,
            end,
            config: *config,
            control: false,
            count: 0,
            first_timestamp: -1,
            max_timestamp: -1,
            finished: false,
        }
    }

    /// Marks the batch as a control batch (used by the control-record writer).
    pub(crate) fn set_control(&mut self) {
        self.control = true;
    }

    /// Records appended so far.
    #[must_use]
    pub fn record_count(&self) -> usize {
        self.count as usize
    }

    /// Whether no record has been appended.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The batch's uncompressed size so far, header included.
    #[must_use]
    pub fn size(&self) -> usize {
        self.end - self.start
    }

    /// Bytes left under [`BatchConfig::max_batch_bytes`].
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.config.max_batch_bytes.saturating_sub(self.size())
    }

    /// The encoded size `record` would add to this batch.
    pub fn encoded_len(&self, record: &NewRecord<'_>) -> Result<usize, AppendError> {
        let (body, _, _) = self.body_len(record)?;
        Ok(uvarint_len(zz_len(body)) + body)
    }

    #[inline(always)]
    fn body_len(&self, record: &NewRecord<'_>) -> Result<(usize, u64, u64), AppendError> {
        let ts_delta = if self.count == 0 {
            0
        } else {
            zigzag64(record.timestamp.wrapping_sub(self.first_timestamp))
        };
        let off_delta = zz_len(self.count as usize);
        let mut body = 1 + uvarint_len(ts_delta) + uvarint_len(off_delta);
        body += nullable_len(record.key);
        body += nullable_len(record.value);
        body += uvarint_len(zz_len(record.headers.len()));
        for h in record.headers {
            body += nullable_len(Some(h.key.as_bytes()));
            body += nullable_len(h.value);
        }
        // Every field is part of the body, so one check covers each field's own
        // 32-bit length too (a longer field's truncated varint size cannot matter).
        if body > i32::MAX as usize {
            return Err(AppendError::TooLong {
                field: "Record",
                length: body,
            });
        }
        Ok((body, ts_delta, off_delta))
    }

    /// Appends a record, or refuses it without writing anything if it would take
    /// the batch past its byte limit.
    ///
    /// Offsets are assigned in order (offset delta = records before this one). The
    /// first record's timestamp becomes the batch's base timestamp.
    #[inline]
    pub fn append(&mut self, record: &NewRecord<'_>) -> Result<(), AppendError> {
        if self.count == i32::MAX {
            return Err(AppendError::TooManyRecords);
        }
        let ts_delta = if self.count == 0 {
            0
        } else {
            zigzag64(record.timestamp.wrapping_sub(self.first_timestamp))
        };
        let off_delta = zz_len(self.count as usize);
        // One pass when possible: bound the body from the payload sizes alone; if
        // both bounds need the same length-prefix size and the upper bound fits the
        // limit, write the fields straight after a prefix of that size, sizing each
        // varint only as it is written, and fill the prefix in last.
        let mut payload = field_len(record.key) + field_len(record.value);
        for h in record.headers {
            payload += h.key.len() + field_len(h.value);
        }
        let headers = record.headers.len();
        // attributes + timestamp + offset + key/value lengths + header count, then
        // two lengths per header: at least one byte each, at most 10/5 bytes each.
        let min_body = payload + 6 + 2 * headers;
        let max_body = payload
            .saturating_add(1 + 10 + 5 + 5 + 5 + 5)
            .saturating_add(headers.saturating_mul(10));
        let prefix = uvarint_len(zz_len(min_body));
        if max_body > i32::MAX as usize
            || prefix != uvarint_len(zz_len(max_body))
            || prefix + max_body > self.config.max_batch_bytes.saturating_sub(self.size())
        {
            return self.append_exact(record, ts_delta, off_delta);
        }
        let at = self.end;
        let window = prefix + max_body;
        if self.buf.len() < at + window {
            self.grow(at + window);
        }
        let Some(out) = self.buf.get_mut(at..at + window) else {
            return self.append_exact(record, ts_delta, off_delta);
        };
        let n = write_body(out, prefix, ts_delta, off_delta, record);
        put_uvarint(out, 0, zz_len(n - prefix));
        self.end = at + n;
        self.note_appended(record.timestamp);
        Ok(())
    }

    /// The two-pass append: sizes the record exactly first. Used near varint-size
    /// boundaries and near the byte limit, where the estimate cannot decide.
    #[cold]
    #[inline(never)]
    fn append_exact(
        &mut self,
        record: &NewRecord<'_>,
        ts_delta: u64,
        off_delta: u64,
    ) -> Result<(), AppendError> {
        let (body, _, _) = self.body_len(record)?;
        // The record length is itself a zig-zag varint.
        let prefix = uvarint_len(zz_len(body));
        let total = prefix + body;
        let size = self.size();
        if total > self.config.max_batch_bytes.saturating_sub(size) {
            return Err(if self.count == 0 {
                AppendError::RecordTooLarge {
                    record_bytes: size + total,
                    limit: self.config.max_batch_bytes,
                }
            } else {
                AppendError::BatchFull {
                    record_bytes: total,
                    remaining: self.remaining(),
                }
            });
        }
        let at = self.end;
        if self.buf.len() < at + total {
            self.grow(at + total);
        }
        let Some(out) = self.buf.get_mut(at..at + total) else {
            return Err(AppendError::TooLong {
                field: "Record",
                length: total,
            });
        };
        let n = write_body(out, prefix, ts_delta, off_delta, record);
        debug_assert_eq!(n, total);
        put_uvarint(out, 0, zz_len(body));
        self.end = at + total;
        self.note_appended(record.timestamp);
        Ok(())
    }

    #[inline(always)]
    fn note_appended(&mut self, timestamp: i64) {
        if self.count == 0 {
            self.first_timestamp = timestamp;
            self.max_timestamp = timestamp;
        } else if timestamp > self.max_timestamp {
            self.max_timestamp = timestamp;
        }
        self.count += 1;
    }

    /// Grows the buffer to at least `needed` bytes, a step ahead.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, needed: usize) {
        const STEP: usize = 64 * 1024;
        let target = needed.max(self.buf.len().saturating_add(STEP));
        self.buf.resize(target, 0);
    }

    fn attributes(&self) -> i16 {
        let mut a = i16::from(self.config.compression.id());
        if self.config.timestamp_type == TimestampType::LogAppendTime {
            a |= attributes::LOG_APPEND_TIME;
        }
        if self.config.transactional {
            a |= attributes::TRANSACTIONAL;
        }
        if self.control {
            a |= attributes::CONTROL;
        }
        a
    }

    /// Compresses the records if configured, writes the header and the CRC, and
    /// returns the batch's length in bytes. The batch is then complete in the buffer.
    pub fn finish(mut self) -> Result<usize, EncodeError> {
        let start = self.start;
        self.buf.truncate(self.end);
        let records_at = start + BATCH_HEADER_LEN;
        if self.config.compression != Compression::None && self.count > 0 {
            let mut compressed = BytesMut::with_capacity((self.buf.len() - records_at) / 2 + 64);
            compression::compress(
                self.config.compression,
                &self.buf[records_at..],
                self.config.compression_level,
                self.config.snappy_framing,
                &mut compressed,
            )?;
            self.buf.truncate(records_at);
            self.buf.extend_from_slice(&compressed);
        }
        let total = self.buf.len() - start;
        let batch_length =
            i32::try_from(total - LOG_OVERHEAD).map_err(|_| EncodeError::BatchTooLong(total))?;
        let attributes = self.attributes();
        let c = &self.config;
        let h = &mut self.buf[start..records_at];
        h[0..8].copy_from_slice(&c.base_offset.to_be_bytes());
        h[8..12].copy_from_slice(&batch_length.to_be_bytes());
        h[12..16].copy_from_slice(&c.partition_leader_epoch.to_be_bytes());
        h[16] = 2;
        h[21..23].copy_from_slice(&attributes.to_be_bytes());
        h[23..27].copy_from_slice(&(self.count - 1).max(0).to_be_bytes());
        h[27..35].copy_from_slice(&self.first_timestamp.to_be_bytes());
        h[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        h[43..51].copy_from_slice(&c.producer_id.to_be_bytes());
        h[51..53].copy_from_slice(&c.producer_epoch.to_be_bytes());
        h[53..57].copy_from_slice(&c.base_sequence.to_be_bytes());
        h[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&self.buf[start + CRC_START..]);
        self.buf[start + 17..start + 21].copy_from_slice(&crc.to_be_bytes());
        self.finished = true;
        Ok(total)
    }
}

impl Drop for BatchBuilder<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.buf.truncate(self.start);
        }
    }
}

/// Writes a record's fields after its length prefix (at `pos`), returning the end.
#[inline(always)]
fn write_body(
    out: &mut [u8],
    mut n: usize,
    ts_delta: u64,
    off_delta: u64,
    record: &NewRecord<'_>,
) -> usize {
    if let Some(slot) = out.get_mut(n) {
        *slot = 0; // attributes
    }
    n += 1;
    n = put_uvarint(out, n, ts_delta);
    n = put_uvarint(out, n, off_delta);
    n = put_nullable(out, n, record.key);
    n = put_nullable(out, n, record.value);
    n = put_uvarint(out, n, zz_len(record.headers.len()));
    for h in record.headers {
        n = put_nullable(out, n, Some(h.key.as_bytes()));
        n = put_nullable(out, n, h.value);
    }
    n
}

/// `dst.copy_from_slice(src)` (equal lengths), with short keys and header fields
/// copied as one or two overlapping word moves instead of a call into `memcpy`.
#[inline(always)]
fn copy_small(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n != dst.len() {
        return;
    }
    if (8..=16).contains(&n) {
        let head: [u8; 8] = src[..8].try_into().unwrap_or_default();
        let tail: [u8; 8] = src[n - 8..].try_into().unwrap_or_default();
        dst[..8].copy_from_slice(&head);
        dst[n - 8..].copy_from_slice(&tail);
    } else if (4..8).contains(&n) {
        let head: [u8; 4] = src[..4].try_into().unwrap_or_default();
        let tail: [u8; 4] = src[n - 4..].try_into().unwrap_or_default();
        dst[..4].copy_from_slice(&head);
        dst[n - 4..].copy_from_slice(&tail);
    } else {
        dst.copy_from_slice(src);
    }
}

/// The zig-zag form of a non-negative length or count: twice its value.
#[inline(always)]
fn zz_len(n: usize) -> u64 {
    (n as u64) << 1
}

#[inline(always)]
fn field_len(field: Option<&[u8]>) -> usize {
    field.map_or(0, <[u8]>::len)
}

#[inline(always)]
fn nullable_len(field: Option<&[u8]>) -> usize {
    match field {
        None => 1,
        Some(b) => uvarint_len(zz_len(b.len())) + b.len(),
    }
}

/// Writes a nullable length-prefixed field into `out` at `pos`; `out` was sized
/// from the same lengths, so the copy always fits (a mismatch would only skip bytes).
#[inline(always)]
fn put_nullable(out: &mut [u8], pos: usize, field: Option<&[u8]>) -> usize {
    match field {
        None => put_uvarint(out, pos, 1), // zig-zag of -1
        Some(b) => {
            let pos = put_uvarint(out, pos, zz_len(b.len()));
            let end = pos + b.len();
            if let Some(dst) = out.get_mut(pos..end) {
                copy_small(dst, b);
            }
            end
        }
    }
}
