//! Record batches: RecordBatch v2 encode/decode, legacy message sets and compression.
//!
//! # Reading
//! A Fetch response carries each partition's records as one byte buffer holding
//! several batches, possibly ending in a partial batch. [`BatchReader`] walks it
//! without copying: each [`Batch`] is a v2 [`RecordBatch`] (CRC32C checked unless
//! [`DecodeOptions::verify_crc`] is off) or a legacy [`LegacyMessage`] (magic 0/1),
//! and [`RecordBatch::records`] iterates the records lazily: each [`Record`] holds one
//! [`bytes::Bytes`] handle on the fetched buffer and lends its key, value and headers
//! from it ([`Records::next_ref`] lends a [`RecordRef`] without even that). A compressed
//! batch is decompressed once into one buffer, bounded by
//! [`DecodeOptions::max_decompressed_bytes`]. For `read_committed`, [`ReadCommitted`]
//! drops aborted transactions using the response's aborted-transactions list.
//!
//! # Writing
//! [`BatchBuilder`] writes a RecordBatch v2 at the end of a caller's `BytesMut`:
//! records go straight into the buffer, a byte limit is respected, and `finish`
//! compresses (feature-gated codecs), fills in the header and patches the CRC.
//! [`write_control_batch`] writes transaction markers.
//!
//! ```
//! use bytes::BytesMut;
//! use kafka_sansio::records::*;
//!
//! let mut buf = BytesMut::new();
//! let config = BatchConfig { compression: Compression::Lz4, ..BatchConfig::default() };
//! let mut builder = BatchBuilder::new(&mut buf, &config);
//! let headers = [NewHeader::new("h", Some(b"1")), NewHeader::new("h", None)];
//! builder.append(&NewRecord::new(1000).key(b"k").value(b"v1").headers(&headers))?;
//! builder.append(&NewRecord::new(1001).value(b"v2"))?;
//! builder.finish()?;
//!
//! let opts = DecodeOptions::default();
//! let mut values = Vec::new();
//! for batch in BatchReader::new(buf.freeze(), opts) {
//!     for record in batch?.records(&opts)? {
//!         let record = record?;
//!         values.push((record.offset, record.value_bytes(), record.header_count()));
//!     }
//! }
//! assert_eq!(values.len(), 2);
//! assert_eq!(values[0].2, 2, "duplicate header keys are kept");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod batch;
mod builder;
mod compression;
mod control;
mod error;
mod legacy;
mod record;
mod set;

pub use batch::{
    BATCH_HEADER_LEN, Batch, BatchHeader, BatchReader, BatchRecords, RecordBatch, RecordRef,
    Records, Truncated,
};
pub(crate) use builder::OpenBatch;
pub use builder::{BatchBuilder, BatchConfig, DEFAULT_MAX_BATCH_BYTES, NewHeader, NewRecord};
pub use compression::{Compression, SnappyFraming};
pub(crate) use control::delivered;
pub use control::{
    AbortedTransaction, ControlRecord, ControlRecordType, ReadCommitted, write_control_batch,
};
pub use error::{AppendError, EncodeError, RecordsError, RecordsErrorKind};
pub use legacy::LegacyMessage;
pub use record::{HeaderRef, HeaderRefIter, LOG_OVERHEAD, Record};
pub use set::{RecordSet, RecordSetReader};

/// Default bound on the output of decompressing one batch: 100 MiB, the default
/// frame limit of a connection, since no honest batch expands past the frame it
/// could be re-sent in.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 100 * 1024 * 1024;

/// Bits of a v2 batch's attributes.
pub(crate) mod attributes {
    pub(crate) const COMPRESSION_MASK: i16 = 0x07;
    pub(crate) const LOG_APPEND_TIME: i16 = 0x08;
    pub(crate) const TRANSACTIONAL: i16 = 0x10;
    pub(crate) const CONTROL: i16 = 0x20;
    pub(crate) const DELETE_HORIZON: i16 = 0x40;
}

/// Who set a batch's timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// The producer (attribute bit 3 clear).
    #[default]
    CreateTime,
    /// The broker, on append (bit 3 set); every record's timestamp is then the batch's
    /// max timestamp.
    LogAppendTime,
}

/// Choices for decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Verify each batch's CRC (librdkafka's `check.crcs`). On by default.
    pub verify_crc: bool,
    /// Largest decompressed size of one batch; more is an error, so a decompression
    /// bomb cannot exhaust memory. Default [`DEFAULT_MAX_DECOMPRESSED_BYTES`].
    pub max_decompressed_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            verify_crc: true,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
        }
    }
}
