//! Errors of the record layer: decoding batches and records, and building them.

/// Why decoding a batch or a record failed, without the context of where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordsErrorKind {
    /// The value needed more bytes than its enclosing batch or record holds.
    ///
    /// A batch that runs past the end of the whole buffer is not this error: it is
    /// reported as [`Truncated`](super::Truncated) by the batch reader.
    #[error("needed {needed} bytes but only {remaining} remain")]
    UnexpectedEof {
        /// Bytes the value needed.
        needed: u64,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A batch or message length that is too small to hold its own fixed fields.
    #[error("length {length} is below the minimum {minimum} for this format")]
    InvalidLength {
        /// The length read.
        length: i64,
        /// The smallest length the format allows.
        minimum: usize,
    },
    /// The magic byte names a format this crate does not know.
    #[error("unsupported magic {0}")]
    UnsupportedMagic(i8),
    /// The checksum stored in the batch does not match its bytes.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// The CRC stored in the batch.
        stored: u32,
        /// The CRC of the bytes as received.
        computed: u32,
    },
    /// A record count that is negative or larger than the bytes could hold.
    #[error("record count {count} cannot fit in {bytes} bytes")]
    RecordCountExceedsBytes {
        /// The count declared by the batch.
        count: i64,
        /// Bytes available for the records.
        bytes: usize,
    },
    /// Bytes left over after the declared number of records.
    #[error("{0} bytes left after the declared records")]
    TrailingBytes(usize),
    /// A length that is negative (other than the null marker) where a length is read.
    #[error("negative length {0}")]
    NegativeLength(i64),
    /// A record's fields ended before or after its declared length.
    #[error("record declares {declared} bytes but its fields use {used}")]
    RecordLengthMismatch {
        /// The record length from its prefix.
        declared: usize,
        /// The bytes its fields took.
        used: usize,
    },
    /// A varint with too many continuation bytes or value bits for its type.
    #[error("varint longer than {max_bytes} bytes or wider than its type")]
    VarintOverflow {
        /// Longest encoding the type allows.
        max_bytes: u8,
    },
    /// The compression codec id is not one Kafka defines.
    #[error("unknown compression codec id {0}")]
    UnknownCompression(u8),
    /// The codec is known but this build was compiled without its cargo feature.
    #[error("compression codec {0} is not enabled in this build (cargo feature)")]
    CodecDisabled(&'static str),
    /// Decompressing would produce more than the configured maximum.
    #[error("decompressed data exceeds the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// The configured limit
        /// ([`DecodeOptions::max_decompressed_bytes`](super::DecodeOptions::max_decompressed_bytes)).
        limit: usize,
    },
    /// The compressed payload is malformed for its codec.
    #[error("{codec} data is malformed: {reason}")]
    Decompress {
        /// The codec's name.
        codec: &'static str,
        /// What the codec reported.
        reason: String,
    },
    /// A compressed legacy message inside a compressed legacy message.
    #[error("nested compression inside a legacy wrapper message")]
    NestedCompression,
    /// Bytes that break the format in a way no more specific kind describes.
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// A control record whose key or value is not a valid control record.
    #[error("invalid control record: {0}")]
    InvalidControlRecord(&'static str),
}

/// A decode failure of the record layer: what was being decoded, where, and why.
///
/// `position` is the byte offset of the failing value. For batch-level fields it is
/// counted from the start of the buffer given to the [`BatchReader`](super::BatchReader);
/// for a record inside a compressed batch it is counted from the start of the
/// decompressed records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {field} at byte {position}: {kind}")]
pub struct RecordsError {
    /// What was being decoded, such as `RecordBatch.crc` or `Record.key`.
    pub field: &'static str,
    /// Byte offset of the failing value (see the type's documentation).
    pub position: usize,
    /// Why it failed.
    pub kind: RecordsErrorKind,
}

impl RecordsError {
    #[cold]
    #[inline(never)]
    pub(crate) fn new(field: &'static str, position: usize, kind: RecordsErrorKind) -> Self {
        Self {
            field,
            position,
            kind,
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn eof(field: &'static str, position: usize, needed: u64, remaining: usize) -> Self {
        Self::new(
            field,
            position,
            RecordsErrorKind::UnexpectedEof { needed, remaining },
        )
    }
}

/// Why a record could not be appended to a [`BatchBuilder`](super::BatchBuilder).
///
/// Nothing was written when this is returned: the batch is exactly as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The record would take the batch past its byte limit; finish this batch and
    /// start another.
    #[error(
        "record of {record_bytes} bytes does not fit: {remaining} bytes remain under the limit"
    )]
    BatchFull {
        /// Encoded size of the record.
        record_bytes: usize,
        /// Bytes left under the limit.
        remaining: usize,
    },
    /// The record alone is larger than the limit of an empty batch; it can never fit.
    #[error("record of {record_bytes} bytes exceeds the batch limit of {limit} bytes")]
    RecordTooLarge {
        /// Encoded size of the record, with the batch header.
        record_bytes: usize,
        /// The batch byte limit.
        limit: usize,
    },
    /// A key, value, header or the record itself is longer than a varint length can say.
    #[error("{field} is {length} bytes, more than a record field can hold")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        length: usize,
    },
    /// The batch already holds as many records as an offset delta can count.
    #[error("the batch already holds the maximum number of records")]
    TooManyRecords,
}

/// Why a batch could not be finished.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The codec is known but this build was compiled without its cargo feature.
    #[error("compression codec {0} is not enabled in this build (cargo feature)")]
    CodecDisabled(&'static str),
    /// The compressor failed.
    #[error("{codec} compression failed: {reason}")]
    Compress {
        /// The codec's name.
        codec: &'static str,
        /// What the codec reported.
        reason: String,
    },
    /// The finished batch would be longer than its 32-bit length field can say.
    #[error("batch of {0} bytes is longer than a batch length can say")]
    BatchTooLong(usize),
}
