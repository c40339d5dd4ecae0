//! One partition's log on the simulated leader: batches with assigned offsets, what is
//! replicated, and idempotent-producer state.

use crate::records::{BatchHeader, BatchReader, DecodeOptions, RecordsError};
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

/// A batch as the leader stored it.
#[derive(Debug, Clone)]
pub(crate) struct StoredBatch {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Offset after the last record.
    pub next_offset: i64,
    /// The whole batch, with base offset and leader epoch rewritten.
    pub bytes: Bytes,
    /// The batch's header as appended.
    pub header: BatchHeader,
    /// When every replica holds the batch; until then a leader crash loses it.
    pub replicated_at: Instant,
}

/// What the leader remembers of an idempotent producer (the last five batches, as Kafka).
#[derive(Debug, Clone, Default)]
pub(crate) struct ProducerState {
    pub epoch: i16,
    /// (first sequence, last sequence, base offset) of recent batches, oldest first.
    pub recent: VecDeque<(i32, i32, i64)>,
}

/// Why a batch was not appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendRefusal {
    Corrupt,
    UnsupportedMagic,
    OutOfOrderSequence,
    InvalidProducerEpoch,
}

/// How a produced batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Appended {
    /// Written at this base offset.
    New(i64),
    /// A retry of a batch already written at this base offset: acknowledged again,
    /// not written twice.
    Duplicate(i64),
}

#[derive(Debug, Clone)]
pub(crate) struct PartitionLog {
    pub batches: Vec<StoredBatch>,
    pub log_start_offset: i64,
    /// Offset the next appended record gets.
    pub log_end_offset: i64,
    pub producers: BTreeMap<i64, ProducerState>,
}

impl PartitionLog {
    pub fn new() -> Self {
        PartitionLog {
            batches: Vec::new(),
            log_start_offset: 0,
            log_end_offset: 0,
            producers: BTreeMap::new(),
        }
    }

    /// The offset below which every batch is on every replica.
    pub fn high_watermark(&self, now: Instant) -> i64 {
        let mut hw = self.log_start_offset;
        for b in &self.batches {
            if b.replicated_at > now {
                break;
            }
            hw = b.next_offset;
        }
        hw.max(self.log_start_offset)
    }

    /// The next time the high watermark moves, if any batch is still replicating.
    pub fn next_replication(&self, now: Instant) -> Option<Instant> {
        self.batches
            .iter()
            .map(|b| b.replicated_at)
            .find(|t| *t > now)
    }

    /// Validates and appends every batch of a produce request's `records` as one unit:
    /// either all are appended (or recognised as duplicates) or none.
    pub fn append(
        &mut self,
        records: &Bytes,
        leader_epoch: i32,
        replicated_at: Instant,
    ) -> Result<Appended, AppendRefusal> {
        let opts = DecodeOptions::default();
        let mut parsed = Vec::new();
        let mut reader = BatchReader::new(records.clone(), opts);
        for batch in reader.by_ref() {
            let batch = batch.map_err(|_: RecordsError| AppendRefusal::Corrupt)?;
            let Some(v2) = batch.into_v2() else {
                return Err(AppendRefusal::UnsupportedMagic);
            };
            let len = v2.header.batch_length as usize + 12;
            let whole = records.slice(v2.position..v2.position + len);
            parsed.push((v2.header, whole));
        }
        if reader.truncated().is_some() || parsed.is_empty() {
            return Err(AppendRefusal::Corrupt);
        }
        // Idempotence: Kafka sends one batch per partition per request.
        let (first, _) = &parsed[0];
        if first.producer_id >= 0 && first.base_sequence >= 0 {
            let last_seq = first.base_sequence.wrapping_add(first.last_offset_delta);
            let state = self.producers.get(&first.producer_id);
            match state {
                Some(s) if first.producer_epoch < s.epoch => {
                    return Err(AppendRefusal::InvalidProducerEpoch);
                }
                Some(s) if first.producer_epoch == s.epoch => {
                    if let Some(&(_, _, offset)) = s
                        .recent
                        .iter()
                        .find(|(f, l, _)| *f == first.base_sequence && *l == last_seq)
                    {
                        return Ok(Appended::Duplicate(offset));
                    }
                    let expected = s.recent.back().map_or(0, |(_, l, _)| l.wrapping_add(1));
                    if first.base_sequence != expected {
                        return Err(AppendRefusal::OutOfOrderSequence);
                    }
                }
                // A new epoch (or a producer we have not seen) starts at sequence 0.
                _ if first.base_sequence != 0 => return Err(AppendRefusal::OutOfOrderSequence),
                _ => {}
            }
        }
        let mut first_offset = None;
        for (header, whole) in parsed {
            let base = self.log_end_offset;
            let mut bytes = BytesMut::from(&whole[..]);
            // Offsets and the leader epoch sit before the CRC-covered span, so a broker
            // rewrites them without recomputing the CRC.
            bytes[0..8].copy_from_slice(&base.to_be_bytes());
            bytes[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
            let next = base + i64::from(header.last_offset_delta) + 1;
            let mut stored_header = header;
            stored_header.base_offset = base;
            stored_header.partition_leader_epoch = leader_epoch;
            self.batches.push(StoredBatch {
                base_offset: base,
                next_offset: next,
                bytes: bytes.freeze(),
                header: stored_header,
                replicated_at,
            });
            self.log_end_offset = next;
            first_offset.get_or_insert(base);
            self.remember(&header, base);
        }
        Ok(Appended::New(first_offset.unwrap_or(self.log_end_offset)))
    }

    /// Bytes for a fetch from `offset`: whole batches below the high watermark, at least
    /// one batch even if it exceeds `max_bytes` (KIP-74), or cut at `max_bytes` mid-batch
    /// when `partial` is set (as brokers that send a partial last batch do).
    pub fn read(&self, offset: i64, max_bytes: usize, now: Instant, partial: bool) -> Bytes {
        let hw = self.high_watermark(now);
        let mut out = BytesMut::new();
        for b in &self.batches {
            if b.next_offset <= offset {
                continue;
            }
            if b.base_offset >= hw {
                break;
            }
            if !out.is_empty() && out.len() + b.bytes.len() > max_bytes {
                if partial && out.len() < max_bytes {
                    let room = max_bytes - out.len();
                    out.extend_from_slice(&b.bytes[..room.min(b.bytes.len())]);
                }
                break;
            }
            out.extend_from_slice(&b.bytes);
        }
        out.freeze()
    }

    /// Records an appended batch in its producer's state (the last five batches).
    fn remember(&mut self, header: &BatchHeader, base: i64) {
        if header.producer_id < 0 || header.base_sequence < 0 {
            return;
        }
        let state = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch != state.epoch {
            state.epoch = header.producer_epoch;
            state.recent.clear();
        }
        state.recent.push_back((
            header.base_sequence,
            header.base_sequence.wrapping_add(header.last_offset_delta),
            base,
        ));
        if state.recent.len() > 5 {
            state.recent.pop_front();
        }
    }

    /// Drops everything below `offset` (DeleteRecords).
    pub fn delete_before(&mut self, offset: i64) {
        self.log_start_offset = self.log_start_offset.max(offset);
        self.batches.retain(|b| b.next_offset > offset);
    }

    /// Loses the batches a new leader never received (those not replicated by `now`).
    pub fn truncate_unreplicated(&mut self, now: Instant) {
        self.batches.retain(|b| b.replicated_at <= now);
        self.log_end_offset = self
            .batches
            .last()
            .map_or(self.log_start_offset.max(self.high_watermark(now)), |b| {
                b.next_offset
            });
        // Producer state is rebuilt from what survives, as Kafka does from the log.
        let survivors: Vec<(BatchHeader, i64)> = self
            .batches
            .iter()
            .map(|b| (b.header, b.base_offset))
            .collect();
        self.producers.clear();
        for (h, base) in survivors {
            self.remember(&h, base);
        }
    }

    /// The offset of the first record whose timestamp is at least `ts`, and that
    /// timestamp; `None` if no visible record is that late.
    pub fn offset_for_timestamp(&self, ts: i64, now: Instant) -> Option<(i64, i64)> {
        let hw = self.high_watermark(now);
        let opts = DecodeOptions::default();
        for b in &self.batches {
            if b.base_offset >= hw {
                break;
            }
            if b.header.max_timestamp < ts {
                continue;
            }
            for batch in BatchReader::new(b.bytes.clone(), opts).flatten() {
                let Ok(records) = batch.records(&opts) else {
                    continue;
                };
                for r in records.flatten() {
                    if r.timestamp >= ts && r.offset >= self.log_start_offset {
                        return Some((r.offset, r.timestamp));
                    }
                }
            }
        }
        None
    }
}
