//! Encoding: a RecordBatch v2 builder that writes records straight into one buffer.
//!
//! # Which record takes which path
//!
//! [`BatchBuilder::append`] writes a record in one of two ways. Both copy every
//! field the same way: up to 256 bytes as two to four fixed-size moves, longer
//! ones with `memcpy` (`copy_short`), so no field size has a copy of its own.
//!
//! | record | path | why |
//! |---|---|---|
//! | a batch's first | two-pass (`append_exact`) | it sets the base timestamp; sizing one record per batch costs nothing per record |
//! | body under 8 KiB, under 64 headers, timestamp within about 8 s of the batch's first, under 8,192 records before it | one-pass (`append_short`) | every varint in it takes one or two bytes, so the length is written last into a two-byte slot, each field goes through one bounds check and nothing is sized twice |
//! | the same, but the buffer's zero-filled room ends before the record does | two-pass | the room is grown (never past the byte limit) or the record refused there, not per record on the hot path: by 64 KiB steps for a batch built in one go, doubling from 4 KiB for a producer's open batch (which often holds a few records) |
//! | body of 8 KiB or more, 64 headers or more, a timestamp further out, the 8,192nd record on | two-pass | a varint of three bytes or more; sizing first costs little beside copying 8 KiB, and such records are rare |
//! | the same, of 8 KiB or more, when the room ends before it | two-pass, appended by extending the buffer (`extend_record`) | zero-filling room for it first would cost about a copy of it: 10,000-byte values take 6-7% fewer instructions |
//!
//! Inside the one-pass path, a key of up to 16 bytes goes in the same 32-byte
//! chunk as the fields before it, and a header whose key and value have at most
//! 16 bytes each in one 34-byte chunk (one bounds check for both); a longer key or
//! header field takes a bounds check of its own, which is the whole difference
//! (a 17-byte key costs 10 instructions more than a 16-byte one under fat LTO, 4%;
//! see `docs/benchmarks-records.md`). The path writes the record's length as two
//! bytes and moves the body back one byte when the body turns out shorter than 64
//! bytes (a fixed 64-byte move). Anything it cannot write it leaves to the
//! two-pass path without having appended anything: bytes past the batch's end are
//! scratch.

use bytes::{Bytes, BytesMut};

use super::batch::{BATCH_HEADER_LEN, CRC_START};
use super::compression::{self, Compression, SnappyFraming};
use super::error::{AppendError, EncodeError};
use super::record::LOG_OVERHEAD;
use super::{TimestampType, attributes};
use crate::wire::{unsigned_varint_len, write_unsigned_at, zigzag64};

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
    /// The least the room grows by at a time (see [`grow`](Self::grow)).
    grow_min: usize,
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
            grow_min: GROW_STEP,
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
        Ok(unsigned_varint_len(zz_len(body)) + body)
    }

    #[inline(always)]
    fn body_len(&self, record: &NewRecord<'_>) -> Result<(usize, u64, u64), AppendError> {
        let ts_delta = if self.count == 0 {
            0
        } else {
            zigzag64(record.timestamp.wrapping_sub(self.first_timestamp))
        };
        let off_delta = zz_len(self.count as usize);
        let mut body = 1 + unsigned_varint_len(ts_delta) + unsigned_varint_len(off_delta);
        body += nullable_len(record.key);
        body += nullable_len(record.value);
        body += unsigned_varint_len(zz_len(record.headers.len()));
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
        if self.append_short(record).is_some() {
            return Ok(());
        }
        self.append_exact(record)
    }

    /// The path taken by nearly every record a producer writes after a batch's
    /// first: a body under 8,192 bytes, under 64 headers, in a batch of under
    /// 8,192 records, with a timestamp within about 8 s of the batch's first.
    /// Every varint of such a record takes one or two bytes.
    ///
    /// The record is written in one pass into the buffer's zero-filled room
    /// after a two-byte length slot: the fields up to the value's length (key
    /// included when it has at most 16 bytes) inside one 32-byte chunk and each
    /// short header inside one 34-byte chunk, so that only the chunk and the
    /// value need a bounds check. The length goes in last (the body moves back a
    /// byte in the rare case of a one-byte length). The room never reaches past
    /// the batch limit, so a record that fits the room is within the limit.
    ///
    /// Returns `None` when the record is not of that shape or does not fit the
    /// room grown so far: nothing is appended (bytes past the batch's end are
    /// scratch) and [`append_exact`](Self::append_exact) decides, growing the room
    /// or refusing the record.
    #[inline(always)]
    fn append_short(&mut self, record: &NewRecord<'_>) -> Option<()> {
        let count = self.count as usize;
        // The first record sets the base timestamp; it takes the two-pass path.
        if count == 0 {
            return None;
        }
        let ts_delta = zigzag64(record.timestamp.wrapping_sub(self.first_timestamp));
        let at = self.end;
        let out = self.buf.get_mut(at..)?;
        // The length slot, attributes, timestamp and offset deltas, the key's
        // length, a key of up to 16 bytes and the value's length: at most 28
        // bytes, all inside one 32-byte chunk.
        let head = out.first_chunk_mut::<32>()?;
        put_byte(head, 2, 0); // attributes
        let ts_delta = usize::try_from(ts_delta).unwrap_or(usize::MAX);
        let mut n = put_small(head, 3, ts_delta)?;
        n = put_small(head, n, count << 1)?;
        match record.key {
            Some(k) if k.len() > 16 => {
                n = put_small(head, n, small_len(k)? << 1)?;
                n = put_bytes(out, n, Some(k))?;
                n = put_small_field(out, n, record.value)?;
            }
            key => {
                n = match key {
                    None => put_byte(head, n, 1), // zig-zag of -1
                    Some(k) => {
                        let at = put_byte(head, n, (k.len() << 1) as u8);
                        let end = at + k.len();
                        copy_short(head.get_mut(at..end)?, k);
                        end
                    }
                };
                n = match record.value {
                    None => put_byte(head, n, 1),
                    Some(v) => put_small(head, n, small_len(v)? << 1)?,
                };
                n = put_bytes(out, n, record.value)?;
            }
        }
        let headers = record.headers.len();
        n = put_at(
            out,
            n,
            u8::try_from(headers << 1).ok().filter(|c| *c < 0x80)?,
        )?;
        // No header or one (a trace id, say) is the common case, and it skips the
        // loop: the loop keeps more values alive than there are registers, which
        // spilled some to the stack on every record (10-20 instructions).
        match record.headers {
            [] => {}
            [h] => n = put_short_header(out, n, h)?,
            headers => {
                for h in headers {
                    n = put_short_header(out, n, h)?;
                }
            }
        }
        // The pair below, like the other spelled-out length and copy forms in this
        // function, is written inline on purpose: routing them through `put_small`
        // or a shared helper measured 6-10 instructions more per record.
        let body = n - 2;
        let total = if body >= 64 {
            if body >= SMALL_BODY {
                return None;
            }
            let len = body << 1;
            let pair = (len as u16 & 0x7f) | 0x80 | (((len >> 7) as u16) << 8);
            *out.first_chunk_mut::<2>()? = pair.to_le_bytes();
            n
        } else {
            // Move the body back a byte: as one fixed 64-byte move when the room
            // holds it (what lies past the record is scratch), else exactly.
            match out.get_mut(..66) {
                Some(chunk) => chunk.copy_within(2..66, 1),
                None => out.get_mut(..n)?.copy_within(2.., 1),
            }
            put_at(out, 0, (body << 1) as u8)?;
            n - 1
        };
        // Every byte up to `at + n` was written through a checked index into the
        // buffer, which `grow` never takes past `limit_end()`: the record is within
        // the batch's byte limit without a check of its own.
        let end = at + total;
        debug_assert!(end <= self.limit_end());
        self.end = end;
        if record.timestamp > self.max_timestamp {
            self.max_timestamp = record.timestamp;
        }
        self.count += 1;
        Some(())
    }

    /// The two-pass path: sizes the record exactly, refuses it if it would cross
    /// the byte limit, then writes it. Taken by each batch's first record, by
    /// records with a body of 8 KiB or more and by the rare record
    /// [`append_short`](Self::append_short) turns away (see the module docs).
    #[inline(never)]
    fn append_exact(&mut self, record: &NewRecord<'_>) -> Result<(), AppendError> {
        if self.count == i32::MAX {
            return Err(AppendError::TooManyRecords);
        }
        let (body, ts_delta, off_delta) = self.body_len(record)?;
        // The record length is itself a zig-zag varint.
        let prefix = unsigned_varint_len(zz_len(body));
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
            if total >= EXTEND_MIN {
                self.extend_record(total, body, ts_delta, off_delta, record);
                return Ok(());
            }
            self.grow(at + total);
        }
        // `grow` made the room, so this cannot fail; if it did, refusing the record
        // beats writing a batch with a hole in it.
        let out = self.buf.get_mut(at..at + total);
        debug_assert!(out.is_some(), "grow left less than {total} bytes of room");
        let Some(out) = out else {
            return Err(AppendError::TooLong {
                field: "Record",
                length: total,
            });
        };
        let n = write_unsigned_at(out, 0, zz_len(body));
        let n = write_body(out, n, ts_delta, off_delta, record);
        debug_assert_eq!(n, total, "record sized as {total} bytes, written as {n}");
        self.end = at + total;
        self.note_appended(record.timestamp);
        Ok(())
    }

    /// Writes a large record the room does not hold by extending the buffer with
    /// its bytes: the room would be zero-filled first and then overwritten, which
    /// for a record of kilobytes costs about as much as copying it again. What room
    /// there was past the batch's end is given up (it is scratch) and regrown by
    /// the next record that needs it.
    #[inline(never)]
    fn extend_record(
        &mut self,
        total: usize,
        body: usize,
        ts_delta: u64,
        off_delta: u64,
        record: &NewRecord<'_>,
    ) {
        let at = self.end;
        self.buf.truncate(at);
        self.buf.reserve(total);
        // Length, attributes, both deltas and the key's length in one append (at
        // most 5 + 1 + 10 + 5 + 5 bytes), then the fields in `write_body`'s order.
        let mut head = [0u8; 26];
        let mut n = write_unsigned_at(&mut head, 0, zz_len(body));
        n += 1; // attributes, 0
        n = write_unsigned_at(&mut head, n, ts_delta);
        n = write_unsigned_at(&mut head, n, off_delta);
        n = write_unsigned_at(&mut head, n, nullable_prefix(record.key));
        self.buf.extend_from_slice(&head[..n]);
        if let Some(key) = record.key {
            self.buf.extend_from_slice(key);
        }
        extend_nullable(self.buf, record.value);
        extend_varint(self.buf, zz_len(record.headers.len()));
        for h in record.headers {
            extend_nullable(self.buf, Some(h.key.as_bytes()));
            extend_nullable(self.buf, h.value);
        }
        debug_assert_eq!(
            self.buf.len(),
            at + total,
            "record sized as {total} bytes, written as {}",
            self.buf.len() - at
        );
        self.end = at + total;
        self.note_appended(record.timestamp);
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

    /// Grows the buffer to at least `needed` bytes (callers never ask past the
    /// batch's byte limit), a step ahead but never past that limit. The step is
    /// what the batch's room holds already, from `grow_min` up to [`GROW_STEP`]:
    /// a batch built in one go grows by whole steps (`grow_min` is a step), and a
    /// producer's [`OpenBatch`] doubles its room from [`GROW_MIN`], so that a
    /// batch of a few records zero-fills a few KiB, not a whole step.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, needed: usize) {
        let limit_end = self.limit_end();
        debug_assert!(needed <= limit_end);
        let len = self.buf.len();
        let step = len
            .saturating_sub(self.start)
            .clamp(self.grow_min, GROW_STEP);
        let ahead = len.saturating_add(step).min(limit_end);
        self.buf.resize(needed.max(ahead), 0);
    }

    /// Where the batch may end at the latest: `start + max_batch_bytes` (saturated).
    fn limit_end(&self) -> usize {
        self.start.saturating_add(self.config.max_batch_bytes)
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

/// How far ahead a builder grows (and zeroes) its buffer at most: a batch's
/// room doubles from [`GROW_MIN`] until it grows by this much at a time.
const GROW_STEP: usize = 64 * 1024;

/// How far ahead an [`OpenBatch`] grows its buffer at least. A producer lingering
/// over a few records a batch zero-filled a whole [`GROW_STEP`] for each batch's
/// first record before: 64 KiB for batches of a kilobyte, most of the CPU of a
/// paced producer under callgrind. (A batch built in one go starts at a whole
/// step: doubling from 4 KiB cost it 1-2 instructions a record for the extra
/// growths, and it is freed or reused once written.)
const GROW_MIN: usize = 4 * 1024;

/// Records of at least this many bytes that the room does not hold are written
/// by extending the buffer ([`BatchBuilder::extend_record`]), not into room
/// zero-filled for them. Such records take the two-pass path anyway; below it,
/// extending (a few short `memcpy` calls) costs more than the one-pass path
/// plus the zero fill (1,000-byte values: 1,146 instructions per record against
/// 793 with a threshold of 512 bytes).
const EXTEND_MIN: usize = SMALL_BODY;

/// How many times an open batch's first guess a kept buffer may be and still be
/// used for it. At full speed with a window of records outstanding, batches
/// alternate between full ones and the window's remainder (a megabyte, then a
/// fifth of one): those share buffers. A producer sending a few records at a time
/// after a burst (16 KiB guesses) frees the burst's megabyte instead.
const SPARE_MAX_RATIO: usize = 8;

/// A batch being built in a buffer of its own, appended to a record at a time
/// between other work: the producer keeps one per partition and encodes each record
/// as it is handed over, so that it holds encoded bytes, not the records.
///
/// It is a [`BatchBuilder`] paused between appends (the same encoding paths); the
/// producer fields are filled in by [`finish`](Self::finish), since the sequence
/// is known only when the batch is sealed.
#[derive(Debug)]
pub(crate) struct OpenBatch {
    buf: BytesMut,
    end: usize,
    config: BatchConfig,
    count: i32,
    first_timestamp: i64,
    max_timestamp: i64,
}

impl OpenBatch {
    /// An empty batch; `capacity` is a first guess at its size. The buffer is
    /// `spare` (an earlier batch's, emptied) if that has room for the guess and is
    /// at most [`SPARE_MAX_RATIO`] times it (a burst's large buffer is freed once
    /// batches are small again, not kept in use), or else allocated for whole
    /// growth steps, so that filling it up to the guess never reallocates.
    pub(crate) fn new(config: &BatchConfig, capacity: usize, spare: Option<BytesMut>) -> Self {
        let steps = capacity.div_ceil(GROW_STEP).max(1);
        let room = steps
            .saturating_mul(GROW_STEP)
            .min(config.max_batch_bytes)
            .saturating_add(BATCH_HEADER_LEN);
        let mut buf = match spare {
            Some(mut b)
                if (room..=room.saturating_mul(SPARE_MAX_RATIO)).contains(&b.capacity()) =>
            {
                b.clear();
                b
            }
            _ => BytesMut::with_capacity(room),
        };
        buf.extend_from_slice(&[0u8; BATCH_HEADER_LEN]);
        Self {
            end: buf.len(),
            buf,
            config: *config,
            count: 0,
            first_timestamp: -1,
            max_timestamp: -1,
        }
    }

    /// As [`BatchBuilder::append`].
    #[inline]
    pub(crate) fn append(&mut self, record: &NewRecord<'_>) -> Result<(), AppendError> {
        let mut b = self.resume();
        let result = b.append(record);
        // Paused, not dropped: the partial batch stays in the buffer.
        b.finished = true;
        let (end, count, first, max) = (b.end, b.count, b.first_timestamp, b.max_timestamp);
        drop(b);
        self.end = end;
        self.count = count;
        self.first_timestamp = first;
        self.max_timestamp = max;
        result
    }

    /// Completes the batch with the producer's id, epoch and the batch's first
    /// sequence number, as [`BatchBuilder::finish`].
    pub(crate) fn finish(
        mut self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Result<Bytes, EncodeError> {
        self.config.producer_id = producer_id;
        self.config.producer_epoch = producer_epoch;
        self.config.base_sequence = base_sequence;
        self.resume().finish()?;
        Ok(self.buf.freeze())
    }

    /// The builder this batch was paused in, resumed over its buffer (dropped
    /// unfinished, it cuts the buffer back to the batch's start).
    #[inline(always)]
    fn resume(&mut self) -> BatchBuilder<'_> {
        BatchBuilder {
            end: self.end,
            config: self.config,
            control: false,
            count: self.count,
            first_timestamp: self.first_timestamp,
            max_timestamp: self.max_timestamp,
            start: 0,
            finished: false,
            grow_min: GROW_MIN,
            buf: &mut self.buf,
        }
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
    n = write_unsigned_at(out, n, ts_delta);
    n = write_unsigned_at(out, n, off_delta);
    n = put_nullable(out, n, record.key);
    n = put_nullable(out, n, record.value);
    n = write_unsigned_at(out, n, zz_len(record.headers.len()));
    for h in record.headers {
        n = put_nullable(out, n, Some(h.key.as_bytes()));
        n = put_nullable(out, n, h.value);
    }
    n
}

/// `dst.copy_from_slice(src)` for slices of equal length, with fields of up to
/// 256 bytes copied as two to four moves of a fixed size (4 to 64 bytes, the last
/// overlapping) instead of a call into `memcpy`, whose call, size dispatch and saved
/// registers cost more than the move itself at these sizes.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n != dst.len() {
        // Every caller cuts `dst` to the field's length; skipping the copy keeps a
        // sizing bug from panicking in a release build, and tests catch it here.
        debug_assert_eq!(n, dst.len(), "copy into a slot of the wrong size");
        return;
    }
    // A tree of compares rather than a chain: two to four per field whatever its
    // size, each taken the same way record after record.
    if n > 64 {
        if n <= 128 {
            copy_two::<64>(dst, src);
        } else if n <= 256 {
            // The first, second and last 64 bytes, and the third when there is one:
            // three moves of 64 for a 129-byte value rather than two of 128.
            copy_two::<64>(dst, src);
            copy_at::<64>(dst, src, 64);
            if n > 192 {
                copy_at::<64>(dst, src, 128);
            }
        } else {
            dst.copy_from_slice(src);
        }
    } else if n > 16 {
        if n > 32 {
            copy_two::<32>(dst, src);
        } else {
            copy_two::<16>(dst, src);
        }
    } else if n >= 8 {
        copy_two::<8>(dst, src);
    } else if n >= 4 {
        copy_two::<4>(dst, src);
    } else if n > 0 {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

/// Copies `src` (`N` to `2N` bytes) into `dst` of the same length as its first and
/// its last `N` bytes, which overlap.
#[inline(always)]
fn copy_two<const N: usize>(dst: &mut [u8], src: &[u8]) {
    if let (Some(d), Some(s)) = (dst.first_chunk_mut::<N>(), src.first_chunk::<N>()) {
        *d = *s;
    }
    if let (Some(d), Some(s)) = (dst.last_chunk_mut::<N>(), src.last_chunk::<N>()) {
        *d = *s;
    }
}

/// Copies bytes `at..at + N` of `src` into `dst` (of the same length), if both
/// reach that far.
#[inline(always)]
fn copy_at<const N: usize>(dst: &mut [u8], src: &[u8], at: usize) {
    let d = dst.get_mut(at..).and_then(<[u8]>::first_chunk_mut::<N>);
    let s = src.get(at..).and_then(<[u8]>::first_chunk::<N>);
    if let (Some(d), Some(s)) = (d, s) {
        *d = *s;
    }
}

/// Writes one header of a record on [`BatchBuilder::append_short`]'s path at
/// `n`, returning the position after it.
#[inline(always)]
fn put_short_header(out: &mut [u8], mut n: usize, h: &NewHeader<'_>) -> Option<usize> {
    let (key, value) = (h.key.as_bytes(), h.value);
    let value_len = value.map_or(0, <[u8]>::len);
    // Two compares, not the bit-or this once was (`5 | 16 > 16` sent a 16-byte
    // value with a 5-byte key down the slow branch), nor `max` (a conditional
    // move, after which the compiler no longer knows either length is at most 16
    // and checks each copy against the chunk again).
    if key.len() <= 16 && value_len <= 16 {
        // Both lengths and both fields: at most 34 bytes, one chunk.
        let chunk = out.get_mut(n..)?.first_chunk_mut::<34>()?;
        let at = put_byte(chunk, 0, (key.len() << 1) as u8);
        let mut end = at + key.len();
        copy_short(chunk.get_mut(at..end)?, key);
        end = match value {
            None => put_byte(chunk, end, 1),
            Some(v) => {
                let at = put_byte(chunk, end, (value_len << 1) as u8);
                let end = at + value_len;
                copy_short(chunk.get_mut(at..end)?, v);
                end
            }
        };
        n += end;
    } else {
        n = put_small_field(out, n, Some(key))?;
        n = put_small_field(out, n, value)?;
    }
    Some(n)
}

/// Records with a body shorter than this may take [`BatchBuilder::append_short`]:
/// every length inside them and their own length prefix fit two varint bytes.
const SMALL_BODY: usize = 1 << 13;

/// Writes `byte` at `pos` of a chunk and returns the position after it.
#[inline(always)]
fn put_byte<const N: usize>(chunk: &mut [u8; N], pos: usize, byte: u8) -> usize {
    if let Some(slot) = chunk.get_mut(pos) {
        *slot = byte;
    }
    pos + 1
}

/// Writes the varint `v` at `pos` of a chunk if it takes one or two bytes
/// (`v < 2^14`), returning the position after it; `None` for a longer one.
#[inline(always)]
fn put_small<const N: usize>(chunk: &mut [u8; N], pos: usize, v: usize) -> Option<usize> {
    if v < 0x80 {
        return Some(put_byte(chunk, pos, v as u8));
    }
    if v >= 1 << 14 {
        return None;
    }
    put_byte(chunk, pos, (v as u8) | 0x80);
    Some(put_byte(chunk, pos + 1, (v >> 7) as u8))
}

/// Writes one byte at `pos` of `out`, returning the position after it, or
/// `None` past the end.
#[inline(always)]
fn put_at(out: &mut [u8], pos: usize, byte: u8) -> Option<usize> {
    *out.get_mut(pos)? = byte;
    Some(pos + 1)
}

/// A field's length, if under [`SMALL_BODY`].
#[inline(always)]
fn small_len(field: &[u8]) -> Option<usize> {
    (field.len() < SMALL_BODY).then_some(field.len())
}

/// Copies a field's bytes (no length) to `pos`, returning the position after
/// them, or `None` if they do not fit.
#[inline(always)]
fn put_bytes(out: &mut [u8], pos: usize, field: Option<&[u8]>) -> Option<usize> {
    match field {
        None => Some(pos),
        Some(b) => {
            let end = pos + b.len();
            copy_short(out.get_mut(pos..end)?, b);
            Some(end)
        }
    }
}

/// [`put_nullable`] for fields shorter than [`SMALL_BODY`]; `None` for longer
/// ones and when out of room.
#[inline(always)]
fn put_small_field(out: &mut [u8], pos: usize, field: Option<&[u8]>) -> Option<usize> {
    match field {
        None => put_at(out, pos, 1), // zig-zag of -1
        Some(b) => {
            let len = b.len();
            let at = if len < 64 {
                put_at(out, pos, (len << 1) as u8)?
            } else if len < SMALL_BODY {
                let pair = ((len << 1) as u16 & 0x7f) | 0x80 | (((len >> 6) as u16) << 8);
                let slot = out.get_mut(pos..)?.first_chunk_mut::<2>()?;
                *slot = pair.to_le_bytes();
                pos + 2
            } else {
                return None;
            };
            put_bytes(out, at, Some(b))
        }
    }
}

/// The varint before a nullable field: its zig-zag length, or 1 (the zig-zag of -1)
/// for null.
#[inline(always)]
fn nullable_prefix(field: Option<&[u8]>) -> u64 {
    field.map_or(1, |b| zz_len(b.len()))
}

/// Appends `value` as an unsigned varint to `buf`.
#[inline(always)]
fn extend_varint(buf: &mut BytesMut, value: u64) {
    let mut bytes = [0u8; 10];
    let n = write_unsigned_at(&mut bytes, 0, value);
    buf.extend_from_slice(&bytes[..n]);
}

/// Appends a nullable length-prefixed field to `buf`.
#[inline(always)]
fn extend_nullable(buf: &mut BytesMut, field: Option<&[u8]>) {
    extend_varint(buf, nullable_prefix(field));
    if let Some(b) = field {
        buf.extend_from_slice(b);
    }
}

/// The zig-zag form of a non-negative length or count: twice its value.
#[inline(always)]
fn zz_len(n: usize) -> u64 {
    (n as u64) << 1
}

#[inline(always)]
fn nullable_len(field: Option<&[u8]>) -> usize {
    match field {
        None => 1,
        Some(b) => unsigned_varint_len(zz_len(b.len())) + b.len(),
    }
}

/// Writes a nullable length-prefixed field into `out` at `pos`; `out` was sized
/// from the same lengths, so the copy always fits (a mismatch would only skip bytes).
#[inline(always)]
fn put_nullable(out: &mut [u8], pos: usize, field: Option<&[u8]>) -> usize {
    let pos = write_unsigned_at(out, pos, nullable_prefix(field));
    let Some(b) = field else {
        return pos;
    };
    let end = pos + b.len();
    if let Some(dst) = out.get_mut(pos..end) {
        copy_short(dst, b);
    }
    end
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The room a producer's open batch zero-fills ahead of its records: a few KiB
    /// for a batch of a few records, then doubling, then whole steps, and never
    /// more than a step (or the room itself) ahead of what the records need. A
    /// batch built in one go grows by whole steps.
    #[test]
    fn an_open_batch_doubles_its_room_from_a_few_kib_then_grows_by_steps() {
        let config = BatchConfig {
            max_batch_bytes: 4 << 20,
            ..BatchConfig::default()
        };
        let record = |i: i64| {
            NewRecord::new(i)
                .key(b"0123456789abcdef")
                .value(&[7u8; 100])
        };
        let mut open = OpenBatch::new(&config, 16 << 10, None);
        let mut rooms = vec![open.buf.len()];
        for i in 0..30_000 {
            open.append(&record(i)).unwrap();
            let (room, before) = (open.buf.len(), *rooms.last().unwrap());
            if room != before {
                // Grown for this record: at most a step, or the room it had,
                // past what it needed.
                let ahead = room - open.end;
                assert!(
                    ahead <= GROW_STEP.min(before.max(GROW_MIN)),
                    "record {i}: {ahead} bytes of room past the batch's {} bytes",
                    open.end
                );
                rooms.push(room);
            }
        }
        let first = rooms[1];
        assert!(
            first <= BATCH_HEADER_LEN + GROW_MIN,
            "the first record zero-filled {first} bytes"
        );
        // 4 KiB, 8, 16, 32, 64 (each the room so far again), then 64 KiB steps
        // to about 3.9 MB.
        assert!(rooms.len() > 50, "{} growths", rooms.len());
        assert!(
            rooms.windows(2).skip(1).take(4).all(|w| w[1] == 2 * w[0]),
            "{rooms:?}"
        );
        let batch = open.finish(1, 0, 0).unwrap();
        let batch = super::super::batch::RecordBatch::parse(batch, 0, true).unwrap();
        let records = batch
            .records(&crate::records::DecodeOptions::default())
            .unwrap();
        assert_eq!(records.count(), 30_000);

        let mut buf = BytesMut::new();
        let mut b = BatchBuilder::new(&mut buf, &config);
        b.append(&record(0)).unwrap();
        assert_eq!(b.buf.len(), BATCH_HEADER_LEN + GROW_STEP, "one step");
    }
}
