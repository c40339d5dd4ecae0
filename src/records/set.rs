//! The records of several batches from an offset on, read in place: what a fetch of
//! one partition returns when its records are lent rather than copied out.

use super::DecodeOptions;
use super::batch::{Batch, BatchRecords, FastRecord, RecordRef};
use super::error::RecordsError;
use super::record::Record;

/// The records of one fetched partition, kept as the response's bytes and parsed
/// only as they are read: each record is lent as a [`RecordRef`] (no allocation and
/// no reference counting per record), and [`RecordRef::to_record`] keeps one.
///
/// The batches in a set were checked when it was made (framing and CRC; for
/// `read_committed`, aborted transactions and control batches are already left
/// out); a record that does not parse is reported when it is reached. A compressed
/// batch is decompressed each time a reader reaches it.
///
/// ```
/// use bytes::BytesMut;
/// use kafka_sansio::records::{BatchBuilder, BatchConfig, BatchReader, DecodeOptions, NewRecord, RecordSet};
///
/// let mut buf = BytesMut::new();
/// let config = BatchConfig { base_offset: 10, ..BatchConfig::default() };
/// let mut b = BatchBuilder::new(&mut buf, &config);
/// for value in [&b"a"[..], b"b", b"c"] {
///     b.append(&NewRecord::new(0).value(value))?;
/// }
/// b.finish()?;
/// let opts = DecodeOptions::default();
/// let batches = BatchReader::new(buf.freeze(), opts).collect::<Result<Vec<_>, _>>()?;
/// // From offset 11: the batch starts at 10, so its first record is skipped.
/// let set = RecordSet::new(batches, 11, opts);
/// let mut reader = set.reader();
/// let mut seen = Vec::new();
/// while let Some(record) = reader.next_ref() {
///     let record = record?;
///     seen.push((record.offset, record.value().map(<[u8]>::to_vec)));
/// }
/// assert_eq!(seen, [(11, Some(b"b".to_vec())), (12, Some(b"c".to_vec()))]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordSet {
    batches: Vec<Batch>,
    from: i64,
    opts: DecodeOptions,
}

impl RecordSet {
    /// A set of `batches` (in offset order) whose records before offset `from` are
    /// skipped, decoded with `opts`.
    ///
    /// ```
    /// use kafka_sansio::records::{DecodeOptions, RecordSet};
    /// let empty = RecordSet::new(Vec::new(), 0, DecodeOptions::default());
    /// assert!(empty.reader().next_ref().is_none());
    /// ```
    #[must_use]
    pub fn new(batches: Vec<Batch>, from: i64, opts: DecodeOptions) -> Self {
        Self {
            batches,
            from,
            opts,
        }
    }

    /// The batches the records are read from (each whole, so the first may hold
    /// records before the offset asked for).
    ///
    /// ```
    /// use kafka_sansio::records::{DecodeOptions, RecordSet};
    /// assert!(RecordSet::new(Vec::new(), 0, DecodeOptions::default()).batches().is_empty());
    /// ```
    #[must_use]
    pub fn batches(&self) -> &[Batch] {
        &self.batches
    }

    /// A reader over the records, from the first batch; each call starts again.
    ///
    /// ```
    /// use kafka_sansio::records::{DecodeOptions, RecordSet};
    /// let set = RecordSet::new(Vec::new(), 0, DecodeOptions::default());
    /// let mut reader = set.reader();
    /// while let Some(record) = reader.next_ref() {
    ///     let record = record?;
    ///     println!("{}: {:?}", record.offset, record.value());
    /// }
    /// # Ok::<(), kafka_sansio::records::RecordsError>(())
    /// ```
    #[must_use]
    pub fn reader(&self) -> RecordSetReader<'_> {
        RecordSetReader {
            batches: self.batches.iter(),
            from: self.from,
            opts: &self.opts,
            current: None,
            held: None,
        }
    }

    /// Every record as an owned [`Record`] (each shares the set's buffer, no copy
    /// of its bytes), in offset order; the first record that does not parse fails
    /// the whole.
    ///
    /// ```
    /// use kafka_sansio::records::{DecodeOptions, RecordSet};
    /// assert!(RecordSet::new(Vec::new(), 0, DecodeOptions::default()).to_records()?.is_empty());
    /// # Ok::<(), kafka_sansio::records::RecordsError>(())
    /// ```
    pub fn to_records(&self) -> Result<Vec<Record>, RecordsError> {
        // Room for every record at once (a fetch holds thousands; growing the Vec
        // from empty copies it about log2(n) times and briefly holds it twice).
        let mut records = Vec::with_capacity(self.record_count_hint());
        for batch in &self.batches {
            for record in batch.records(&self.opts)? {
                let record = record?;
                if record.offset >= self.from {
                    records.push(record);
                }
            }
        }
        Ok(records)
    }

    /// How many records the uncompressed v2 batches declare: their counts were
    /// checked against their bytes, while a compressed batch's count is only
    /// checked once it is decompressed, so those count nothing here.
    fn record_count_hint(&self) -> usize {
        self.batches
            .iter()
            .map(|b| match b {
                Batch::V2(b) if b.header.compression() == Ok(super::Compression::None) => {
                    usize::try_from(b.header.record_count).unwrap_or(0)
                }
                _ => 0,
            })
            .sum()
    }
}

/// Reads a [`RecordSet`]'s records one at a time, each lent until the next call;
/// from [`RecordSet::reader`]. Ends after the first error.
///
/// It is not an [`Iterator`]: a record borrows the reader (a legacy message's
/// records are unpacked into it), so read them with `while let`, and keep one past
/// the next call with [`RecordRef::to_record`].
///
/// ```
/// use kafka_sansio::records::{DecodeOptions, Record, RecordSet, RecordSetReader};
///
/// // The values of the records that have one, kept as owned records.
/// fn with_values(mut reader: RecordSetReader<'_>) -> Result<Vec<Record>, kafka_sansio::records::RecordsError> {
///     let mut kept = Vec::new();
///     while let Some(record) = reader.next_ref() {
///         let record = record?;
///         if record.value().is_some() {
///             kept.push(record.to_record());
///         }
///     }
///     Ok(kept)
/// }
/// let set = RecordSet::new(Vec::new(), 0, DecodeOptions::default());
/// assert!(with_values(set.reader())?.is_empty());
/// # Ok::<(), kafka_sansio::records::RecordsError>(())
/// ```
#[derive(Debug)]
pub struct RecordSetReader<'a> {
    batches: std::slice::Iter<'a, Batch>,
    from: i64,
    opts: &'a DecodeOptions,
    current: Option<BatchRecords>,
    /// The legacy record last lent (legacy batches are unpacked into owned records).
    held: Option<Record>,
}

/// Where the record found by [`RecordSetReader::next_ref`] is.
enum Found {
    V2(FastRecord),
    Held,
}

impl RecordSetReader<'_> {
    /// The next record at or after the set's offset, borrowed from the set (or,
    /// for a legacy message, from the reader), or the error that ends the reading.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use kafka_sansio::records::*;
    ///
    /// let mut buf = BytesMut::new();
    /// let mut b = BatchBuilder::new(&mut buf, &BatchConfig::default());
    /// b.append(&NewRecord::new(0).key(b"k").value(b"v"))?;
    /// b.finish()?;
    /// let opts = DecodeOptions::default();
    /// let set = RecordSet::new(BatchReader::new(buf.freeze(), opts).collect::<Result<_, _>>()?, 0, opts);
    /// let mut reader = set.reader();
    /// let first = reader.next_ref().expect("one record")?;
    /// assert_eq!((first.offset, first.key(), first.value()), (0, Some(&b"k"[..]), Some(&b"v"[..])));
    /// assert!(reader.next_ref().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn next_ref(&mut self) -> Option<Result<RecordRef<'_>, RecordsError>> {
        // Find the record first and borrow it only once found: a borrow returned
        // from inside the loop would hold `current` through the steps that replace it.
        let found = loop {
            match &mut self.current {
                Some(BatchRecords::V2(records)) => match records.step() {
                    Some(Ok(f)) => {
                        if records.offset_of(&f) >= self.from {
                            break Found::V2(f);
                        }
                    }
                    Some(Err(e)) => return Some(Err(self.end(e))),
                    None => self.current = None,
                },
                Some(BatchRecords::Legacy(records)) => match records.next() {
                    Some(r) => {
                        if r.offset >= self.from {
                            self.held = Some(r);
                            break Found::Held;
                        }
                    }
                    None => self.current = None,
                },
                None => {
                    let batch = self.batches.next()?;
                    match batch.records(self.opts) {
                        Ok(records) => self.current = Some(records),
                        Err(e) => return Some(Err(self.end(e))),
                    }
                }
            }
        };
        match (found, &self.current, &self.held) {
            (Found::V2(f), Some(BatchRecords::V2(records)), _) => {
                Some(Ok(RecordRef::from_fast(records, &f)))
            }
            (Found::Held, _, Some(record)) => Some(Ok(RecordRef::of_record(record))),
            // The loop leaves only these two states behind.
            _ => {
                debug_assert!(false, "a found record is where the loop left it");
                None
            }
        }
    }

    /// Ends the reading at an error: nothing after it is read.
    #[cold]
    fn end(&mut self, e: RecordsError) -> RecordsError {
        self.current = None;
        self.held = None;
        self.batches = [].iter();
        e
    }
}
