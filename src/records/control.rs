//! Control batches (transaction markers) and read_committed filtering.

use bytes::BytesMut;

use super::DecodeOptions;
use super::batch::{Batch, RecordBatch};
use super::builder::{BatchBuilder, BatchConfig, NewRecord};
use super::error::{EncodeError, RecordsError, RecordsErrorKind};

/// The kind of a control record, from the `type` field of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// The transaction was aborted (type 0).
    Abort,
    /// The transaction committed (type 1).
    Commit,
    /// Another control type (leader change, KRaft snapshot markers, ...), kept as its id.
    Other(i16),
}

impl ControlRecordType {
    /// The id written in the key.
    #[must_use]
    pub fn id(self) -> i16 {
        match self {
            Self::Abort => 0,
            Self::Commit => 1,
            Self::Other(id) => id,
        }
    }

    fn from_id(id: i16) -> Self {
        match id {
            0 => Self::Abort,
            1 => Self::Commit,
            other => Self::Other(other),
        }
    }
}

/// A decoded control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlRecord {
    /// Version of the key schema (0).
    pub version: i16,
    /// What the marker says.
    pub kind: ControlRecordType,
    /// The transaction coordinator's epoch, from the value of commit/abort markers.
    pub coordinator_epoch: Option<i32>,
}

impl ControlRecord {
    /// A commit or abort marker at key/value version 0.
    #[must_use]
    pub fn marker(kind: ControlRecordType, coordinator_epoch: i32) -> Self {
        Self {
            version: 0,
            kind,
            coordinator_epoch: Some(coordinator_epoch),
        }
    }
}

impl RecordBatch {
    /// The control record of a control batch; `None` for an ordinary batch.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use kafka_sansio::records::*;
    ///
    /// let mut buf = BytesMut::new();
    /// let config = BatchConfig { producer_id: 7, producer_epoch: 0, ..BatchConfig::default() };
    /// write_control_batch(&mut buf, &config, ControlRecord::marker(ControlRecordType::Commit, 3), 0)?;
    /// let batch = BatchReader::new(buf.freeze(), DecodeOptions::default())
    ///     .next().expect("batch")?.into_v2().expect("v2");
    /// let marker = batch.control_record(&DecodeOptions::default())?.expect("control");
    /// assert_eq!(marker.kind, ControlRecordType::Commit);
    /// assert_eq!(marker.coordinator_epoch, Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn control_record(
        &self,
        opts: &DecodeOptions,
    ) -> Result<Option<ControlRecord>, RecordsError> {
        if !self.header.is_control() {
            return Ok(None);
        }
        let invalid = |why| {
            RecordsError::new(
                "ControlRecord",
                self.position,
                RecordsErrorKind::InvalidControlRecord(why),
            )
        };
        let record = self
            .records(opts)?
            .next()
            .ok_or_else(|| invalid("control batch holds no record"))??;
        let key = record.key().ok_or_else(|| invalid("null key"))?;
        let (Some(v), Some(t)) = (key.first_chunk::<2>(), key.get(2..4)) else {
            return Err(invalid("key shorter than 4 bytes"));
        };
        let version = i16::from_be_bytes(*v);
        if version < 0 {
            return Err(invalid("negative key version"));
        }
        let kind = ControlRecordType::from_id(i16::from_be_bytes([t[0], t[1]]));
        let coordinator_epoch = match kind {
            ControlRecordType::Abort | ControlRecordType::Commit => {
                let value = record
                    .value()
                    .ok_or_else(|| invalid("marker without a value"))?;
                let epoch = value
                    .get(2..6)
                    .ok_or_else(|| invalid("marker value shorter than 6 bytes"))?;
                Some(i32::from_be_bytes([epoch[0], epoch[1], epoch[2], epoch[3]]))
            }
            ControlRecordType::Other(_) => None,
        };
        Ok(Some(ControlRecord {
            version,
            kind,
            coordinator_epoch,
        }))
    }
}

/// Appends a control batch holding `marker` to `buf`, as a transaction coordinator
/// writes it (transactional, control, one record). `config` supplies the offset and
/// producer fields; its compression is ignored (markers are never compressed).
pub fn write_control_batch(
    buf: &mut BytesMut,
    config: &BatchConfig,
    marker: ControlRecord,
    timestamp: i64,
) -> Result<usize, EncodeError> {
    let mut key = [0u8; 4];
    key[..2].copy_from_slice(&marker.version.to_be_bytes());
    key[2..].copy_from_slice(&marker.kind.id().to_be_bytes());
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&marker.coordinator_epoch.unwrap_or(0).to_be_bytes());
    let config = BatchConfig {
        transactional: true,
        compression: super::Compression::None,
        max_batch_bytes: usize::MAX,
        ..*config
    };
    let mut builder = BatchBuilder::new(buf, &config);
    builder.set_control();
    let mut record = NewRecord::new(timestamp).key(&key);
    if marker.coordinator_epoch.is_some() {
        record = record.value(&value);
    }
    // With no byte limit and a tiny record, appending cannot fail.
    builder
        .append(&record)
        .map_err(|_| EncodeError::BatchTooLong(0))?;
    builder.finish()
}

/// One entry of a Fetch response's `aborted_transactions` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTransaction {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// The first offset of the aborted transaction.
    pub first_offset: i64,
}

/// Drops aborted transactional records for an `isolation.level=read_committed`
/// consumer, the way the Java consumer does.
///
/// Feed it every batch of a partition's fetched records, in offset order; it answers
/// whether to deliver the batch's records. Control batches are never delivered.
///
/// ```
/// use bytes::BytesMut;
/// use kafka_sansio::records::*;
///
/// let producer = BatchConfig { producer_id: 9, producer_epoch: 0, transactional: true, ..BatchConfig::default() };
/// let mut buf = BytesMut::new();
/// let mut b = BatchBuilder::new(&mut buf, &producer);
/// b.append(&NewRecord::new(0).value(b"aborted"))?;
/// b.finish()?;
/// let marker = ControlRecord::marker(ControlRecordType::Abort, 0);
/// write_control_batch(&mut buf, &BatchConfig { base_offset: 1, ..producer }, marker, 0)?;
///
/// let opts = DecodeOptions::default();
/// let mut filter = ReadCommitted::new([AbortedTransaction { producer_id: 9, first_offset: 0 }]);
/// let mut kept = 0;
/// for batch in BatchReader::new(buf.freeze(), opts) {
///     if filter.keep(&batch?, &opts)? {
///         kept += 1;
///     }
/// }
/// assert_eq!(kept, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ReadCommitted {
    /// Aborted transactions not yet reached, sorted by first offset, latest first.
    pending: Vec<AbortedTransaction>,
    /// Producers whose currently open transaction is aborted.
    aborted_producers: Vec<i64>,
}

/// Whether a fetched batch's records go to the application: never a control
/// batch's; under read_committed (a `filter`), not an aborted transaction's. The
/// one rule of every fetch, the partition client's and the consumer's.
pub(crate) fn delivered(
    filter: Option<&mut ReadCommitted>,
    batch: &Batch,
    opts: &DecodeOptions,
) -> Result<bool, RecordsError> {
    match filter {
        Some(f) => f.keep(batch, opts),
        None => Ok(!matches!(batch, Batch::V2(b) if b.header.is_control())),
    }
}

impl ReadCommitted {
    /// A filter for one partition's fetched records and its aborted transactions.
    pub fn new(aborted: impl IntoIterator<Item = AbortedTransaction>) -> Self {
        let mut pending: Vec<AbortedTransaction> = aborted.into_iter().collect();
        pending.sort_unstable_by_key(|t| std::cmp::Reverse(t.first_offset));
        Self {
            pending,
            aborted_producers: Vec::new(),
        }
    }

    /// Whether the records of `batch` should be delivered.
    pub fn keep(&mut self, batch: &Batch, opts: &DecodeOptions) -> Result<bool, RecordsError> {
        let Batch::V2(batch) = batch else {
            // Legacy messages predate transactions.
            return Ok(true);
        };
        let header = &batch.header;
        let last = header.last_offset();
        while let Some(next) = self.pending.last() {
            if next.first_offset > last {
                break;
            }
            if !self.aborted_producers.contains(&next.producer_id) {
                self.aborted_producers.push(next.producer_id);
            }
            self.pending.pop();
        }
        if header.is_control() {
            if let Some(ControlRecord {
                kind: ControlRecordType::Abort,
                ..
            }) = batch.control_record(opts)?
            {
                self.aborted_producers.retain(|&p| p != header.producer_id);
            }
            return Ok(false);
        }
        Ok(!(header.is_transactional() && self.aborted_producers.contains(&header.producer_id)))
    }
}
