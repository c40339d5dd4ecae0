//! One partition's log on the simulated leader: batches with assigned offsets, what is
//! replicated, and idempotent-producer state.
//!
//! Every question a request asks of a log is answered in time that grows with the
//! answer, not with the log: batches are found by binary search on their offsets,
//! byte counts come from running totals, the high watermark from the short list of
//! batches still replicating, and leader epochs from their own small index.

use crate::records::{
    BatchConfig, BatchHeader, BatchReader, ControlRecord, ControlRecordType, DecodeOptions,
    RecordsError, write_control_batch,
};
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
    /// Bytes of every batch this log stored up to and including this one: the bytes
    /// between two batches are the difference of their positions.
    end_position: u64,
    /// The largest record timestamp of this batch and every one before it.
    max_timestamp_so_far: i64,
}

impl StoredBatch {
    fn start_position(&self) -> u64 {
        self.end_position - self.bytes.len() as u64
    }
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
    /// A batch larger than `message.max.bytes`.
    TooLarge,
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

/// Which batches a fetch returns, found without copying any: `whole` batches from
/// index `start`, then `partial` bytes of the next one (a cut batch, when the fault
/// asks for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadPlan {
    start: usize,
    whole: usize,
    /// Bytes of the whole batches.
    whole_bytes: usize,
    partial: usize,
}

impl ReadPlan {
    /// Bytes the fetch returns.
    pub fn len(&self) -> usize {
        self.whole_bytes + self.partial
    }
}

/// A transaction aborted in this partition: what a read_committed Fetch reports
/// so that the consumer drops its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of its abort marker.
    pub last_offset: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct PartitionLog {
    pub batches: VecDeque<StoredBatch>,
    pub log_start_offset: i64,
    /// Offset the next appended record gets.
    pub log_end_offset: i64,
    pub producers: BTreeMap<i64, ProducerState>,
    /// (base offset, replicated at) of the batches that were not on every replica
    /// when appended, in log order; dropped once replicated.
    replicating: VecDeque<(i64, Instant)>,
    /// (leader epoch, offset of its first batch) of each epoch that wrote data.
    epochs: Vec<(i32, i64)>,
    /// Bytes of every batch ever appended (the next batch's start position).
    appended_bytes: u64,
    /// Producer id to the offset of the first batch of its open transaction here:
    /// the last stable offset is the least of them (or the high watermark).
    ongoing: BTreeMap<i64, i64>,
    /// Transactions aborted here, in the order of their markers.
    aborted: Vec<AbortedTxn>,
}

impl PartitionLog {
    pub fn new() -> Self {
        PartitionLog {
            batches: VecDeque::new(),
            log_start_offset: 0,
            log_end_offset: 0,
            producers: BTreeMap::new(),
            replicating: VecDeque::new(),
            epochs: Vec::new(),
            appended_bytes: 0,
            ongoing: BTreeMap::new(),
            aborted: Vec::new(),
        }
    }

    /// The last stable offset: the first offset of a transaction still open here,
    /// or the high watermark if that comes first (Kafka's LSO). A read_committed
    /// consumer reads up to it.
    pub fn last_stable_offset(&self, now: Instant) -> i64 {
        let hw = self.high_watermark(now);
        self.ongoing
            .values()
            .copied()
            .min()
            .map_or(hw, |first| first.min(hw))
    }

    /// Where a fetch stops: the last stable offset for read_committed, else the
    /// high watermark.
    pub fn read_bound(&self, now: Instant, read_committed: bool) -> i64 {
        if read_committed {
            self.last_stable_offset(now)
        } else {
            self.high_watermark(now)
        }
    }

    /// The aborted transactions a read_committed fetch of `from..upto` must be told
    /// about: those whose records or marker fall in it (Kafka's
    /// `collectAbortedTransactions`).
    pub fn aborted_between(&self, from: i64, upto: i64) -> impl Iterator<Item = AbortedTxn> + '_ {
        self.aborted
            .iter()
            .filter(move |a| a.last_offset >= from && a.first_offset < upto)
            .copied()
    }

    /// Writes a transaction's commit or abort marker for `producer_id` (as the
    /// transaction coordinator does in every partition of the transaction), on
    /// every replica at once; the marker's offset. The producer's transaction here
    /// ends: the last stable offset moves past it, and an aborted one is reported
    /// to read_committed fetches from then on.
    pub fn write_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        kind: ControlRecordType,
        leader_epoch: i32,
        timestamp: i64,
        now: Instant,
    ) -> i64 {
        let config = BatchConfig {
            producer_id,
            producer_epoch,
            ..BatchConfig::default()
        };
        let mut buf = BytesMut::new();
        let appended =
            write_control_batch(&mut buf, &config, ControlRecord::marker(kind, 0), timestamp)
                .ok()
                .and_then(|_| {
                    self.append(&buf.freeze(), leader_epoch, now, now, usize::MAX)
                        .ok()
                });
        // A one-record control batch always encodes and is appended (it carries
        // no sequence to check).
        debug_assert!(appended.is_some(), "a marker batch that was not appended");
        match appended {
            Some(Appended::New(base) | Appended::Duplicate(base)) => base,
            None => self.log_end_offset,
        }
    }

    /// The sequence number `producer_id`'s next batch at `epoch` takes here.
    pub fn next_sequence(&self, producer_id: i64, epoch: i16) -> i32 {
        self.producers
            .get(&producer_id)
            .filter(|s| s.epoch == epoch)
            .and_then(|s| s.recent.back())
            .map_or(0, |(_, last, _)| last.wrapping_add(1))
    }

    /// A marker's epoch is the producer's from then on: batches of an older epoch
    /// are refused (a fenced instance of a transactional producer), and a newer
    /// epoch starts its sequences afresh.
    fn fence(&mut self, producer_id: i64, epoch: i16) {
        let state = self.producers.entry(producer_id).or_default();
        if epoch > state.epoch {
            state.epoch = epoch;
            state.recent.clear();
        }
    }

    /// Notes a batch in the producer's open transaction, or a marker ending it.
    fn track_transaction(
        &mut self,
        header: &BatchHeader,
        base: i64,
        marker: Option<ControlRecordType>,
    ) {
        match marker {
            Some(kind) => {
                self.end_transaction(header.producer_id, kind, base);
                self.fence(header.producer_id, header.producer_epoch);
            }
            None if header.is_transactional() && !header.is_control() => {
                self.ongoing.entry(header.producer_id).or_insert(base);
            }
            None => {}
        }
    }

    fn end_transaction(&mut self, producer_id: i64, kind: ControlRecordType, marker_offset: i64) {
        if let Some(first_offset) = self.ongoing.remove(&producer_id)
            && kind == ControlRecordType::Abort
        {
            self.aborted.push(AbortedTxn {
                producer_id,
                first_offset,
                last_offset: marker_offset,
            });
        }
    }

    /// The offset below which every batch is on every replica.
    pub fn high_watermark(&self, now: Instant) -> i64 {
        let first_unreplicated = self
            .replicating
            .iter()
            .find(|(_, at)| *at > now)
            .map(|(base, _)| *base);
        first_unreplicated
            .unwrap_or(self.log_end_offset)
            .max(self.log_start_offset)
    }

    /// Forgets the batches that are replicated by `now` (they no longer hold the high
    /// watermark back); returns the next time a batch becomes replicated, if any.
    pub fn settle(&mut self, now: Instant) -> Option<Instant> {
        while self.replicating.front().is_some_and(|(_, at)| *at <= now) {
            self.replicating.pop_front();
        }
        self.replicating.iter().map(|(_, at)| *at).min()
    }

    /// Bytes the log holds.
    pub fn stored_bytes(&self) -> u64 {
        match (self.batches.front(), self.batches.back()) {
            (Some(first), Some(last)) => last.end_position - first.start_position(),
            _ => 0,
        }
    }

    /// The index of the first batch holding offsets at or after `offset`.
    fn index_of(&self, offset: i64) -> usize {
        self.batches.partition_point(|b| b.next_offset <= offset)
    }

    /// Validates and appends every batch of a produce request's `records` as one unit:
    /// either all are appended (or recognised as duplicates) or none.
    pub fn append(
        &mut self,
        records: &Bytes,
        leader_epoch: i32,
        now: Instant,
        replicated_at: Instant,
        max_batch: usize,
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
            if len > max_batch {
                return Err(AppendRefusal::TooLarge);
            }
            let whole = records.slice(v2.position..v2.position + len);
            // A transaction marker ends its producer's transaction here.
            let marker = v2.control_record(&opts).ok().flatten().map(|c| c.kind);
            parsed.push((v2.header, whole, marker));
        }
        if reader.truncated().is_some() || parsed.is_empty() {
            return Err(AppendRefusal::Corrupt);
        }
        // Idempotence: Kafka sends one batch per partition per request.
        let (first, _, _) = &parsed[0];
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
        self.settle(now);
        let mut first_offset = None;
        for (header, whole, marker) in parsed {
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
            self.push(StoredBatch {
                base_offset: base,
                next_offset: next,
                bytes: bytes.freeze(),
                header: stored_header,
                replicated_at,
                end_position: 0,
                max_timestamp_so_far: 0,
            });
            if replicated_at > now {
                self.replicating.push_back((base, replicated_at));
            }
            first_offset.get_or_insert(base);
            self.remember(&header, base);
            self.track_transaction(&header, base, marker);
        }
        Ok(Appended::New(first_offset.unwrap_or(self.log_end_offset)))
    }

    /// Adds a batch at the end, keeping the running totals and the epoch index.
    fn push(&mut self, mut batch: StoredBatch) {
        self.appended_bytes += batch.bytes.len() as u64;
        batch.end_position = self.appended_bytes;
        batch.max_timestamp_so_far = self.batches.back().map_or(batch.header.max_timestamp, |b| {
            b.max_timestamp_so_far.max(batch.header.max_timestamp)
        });
        let epoch = batch.header.partition_leader_epoch;
        if self.epochs.last().is_none_or(|(last, _)| epoch > *last) {
            self.epochs.push((epoch, batch.base_offset));
        }
        self.log_end_offset = batch.next_offset;
        self.batches.push_back(batch);
    }

    /// Which batches a fetch from `offset` returns: whole batches below the high
    /// watermark up to `max_bytes`, the first one even if it is larger when
    /// `may_exceed` (KIP-74: the first batch of the first partition with data), or cut
    /// at `max_bytes` mid-batch when `partial` is set (as brokers that send a partial
    /// last batch do). A `read_committed` fetch stops at the last stable offset.
    pub fn plan_read(
        &self,
        offset: i64,
        max_bytes: usize,
        may_exceed: bool,
        now: Instant,
        partial: bool,
        read_committed: bool,
    ) -> ReadPlan {
        let hw = self.read_bound(now, read_committed);
        let start = self.index_of(offset);
        let visible_end = self.batches.partition_point(|b| b.base_offset < hw);
        let mut plan = ReadPlan {
            start,
            whole: 0,
            whole_bytes: 0,
            partial: 0,
        };
        let Some(first) = self.batches.get(start).filter(|_| start < visible_end) else {
            return plan;
        };
        let base = first.start_position();
        // Positions grow along the log, so the batches that fit are found by binary
        // search (those before `start` end before `base` and count as fitting).
        let limit = base.saturating_add(max_bytes as u64);
        let fits_end = self
            .batches
            .partition_point(|b| b.end_position <= limit)
            .min(visible_end);
        let fits = fits_end.saturating_sub(start);
        let whole = if fits == 0 && may_exceed { 1 } else { fits };
        plan.whole = whole;
        plan.whole_bytes = match whole {
            0 => 0,
            n => (self.batches[start + n - 1].end_position - base) as usize,
        };
        if partial && plan.whole_bytes < max_bytes && start + whole < visible_end {
            let room = max_bytes - plan.whole_bytes;
            plan.partial = room.min(self.batches[start + whole].bytes.len());
        }
        plan
    }

    /// The offset after the last batch a [`ReadPlan`] made on this log returns
    /// (wholly or in part); `from` when it returns none.
    pub fn plan_end_offset(&self, plan: &ReadPlan, from: i64) -> i64 {
        let last = plan.start + plan.whole + usize::from(plan.partial > 0);
        last.checked_sub(1)
            .filter(|_| last > plan.start)
            .and_then(|i| self.batches.get(i))
            .map_or(from, |b| b.next_offset)
    }

    /// The bytes of a [`ReadPlan`] made on this log (without changes since).
    pub fn read(&self, plan: &ReadPlan) -> Bytes {
        let batches = self.batches.range(plan.start..plan.start + plan.whole);
        if plan.whole == 1 && plan.partial == 0 {
            return batches.map(|b| b.bytes.clone()).next().unwrap_or_default();
        }
        let mut out = BytesMut::with_capacity(plan.len());
        for b in batches {
            out.extend_from_slice(&b.bytes);
        }
        if let Some(next) = self.batches.get(plan.start + plan.whole) {
            out.extend_from_slice(&next.bytes[..plan.partial.min(next.bytes.len())]);
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
        self.aborted.retain(|a| a.last_offset >= offset);
        while self
            .batches
            .front()
            .is_some_and(|b| b.next_offset <= offset)
        {
            self.batches.pop_front();
        }
        // As Kafka's leader epoch cache: epochs that ended below the new start go,
        // the first one kept starts at the first batch kept.
        match self.batches.front() {
            None => self.epochs.clear(),
            Some(first) => {
                let gone = self
                    .epochs
                    .partition_point(|(_, start)| *start <= first.base_offset)
                    .saturating_sub(1);
                self.epochs.drain(..gone);
                if let Some(e) = self.epochs.first_mut() {
                    e.1 = first.base_offset;
                }
            }
        }
    }

    /// Loses the batches a new leader never received (those not replicated by `now`).
    pub fn truncate_unreplicated(&mut self, now: Instant) {
        let hw = self.high_watermark(now);
        let kept: Vec<StoredBatch> = std::mem::take(&mut self.batches)
            .into_iter()
            .filter(|b| b.replicated_at <= now)
            .collect();
        self.replicating.clear();
        self.epochs.clear();
        self.appended_bytes = kept.first().map_or(0, StoredBatch::start_position);
        self.log_end_offset = self.log_start_offset.max(hw);
        for b in kept {
            self.push(b);
        }
        // Producer and transaction state is rebuilt from what survives, as Kafka
        // does from the log.
        let survivors: Vec<(BatchHeader, i64, Option<ControlRecordType>)> = self
            .batches
            .iter()
            .map(|b| (b.header, b.base_offset, marker_of(b)))
            .collect();
        self.producers.clear();
        self.ongoing.clear();
        self.aborted.clear();
        for (h, base, marker) in survivors {
            self.remember(&h, base);
            self.track_transaction(&h, base, marker);
        }
    }

    /// Every batch reaches the followers now (an orderly leader change).
    pub fn replicate_all(&mut self, now: Instant) {
        for (base, _) in std::mem::take(&mut self.replicating) {
            let i = self.index_of(base);
            if let Some(b) = self.batches.get_mut(i) {
                b.replicated_at = b.replicated_at.min(now);
            }
        }
    }

    /// Drops the last batch, keeping the offsets it had (the planted bug of
    /// `Faults::planted_bug_lose_acked`).
    pub fn lose_last(&mut self) {
        if let Some(b) = self.batches.pop_back()
            && self
                .epochs
                .last()
                .is_some_and(|(_, start)| *start >= b.base_offset)
        {
            self.epochs.pop();
        }
    }

    /// (epoch, start offset) of each leader epoch that wrote data, oldest first.
    pub fn epochs(&self) -> &[(i32, i64)] {
        &self.epochs
    }

    /// The offset of the first record whose timestamp is at least `ts`, and that
    /// timestamp; `None` if no visible record is that late (below the last stable
    /// offset for `read_committed`, as Kafka looks).
    pub fn offset_for_timestamp(
        &self,
        ts: i64,
        now: Instant,
        read_committed: bool,
    ) -> Option<(i64, i64)> {
        let hw = self.read_bound(now, read_committed);
        let opts = DecodeOptions::default();
        // No batch before the first whose running maximum reaches `ts` can hold it.
        let from = self
            .batches
            .partition_point(|b| b.max_timestamp_so_far < ts);
        for b in self.batches.range(from..) {
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

/// What a stored transaction marker says (`None` for every other batch).
fn marker_of(b: &StoredBatch) -> Option<ControlRecordType> {
    if !b.header.is_control() {
        return None;
    }
    let opts = DecodeOptions::default();
    let batch = BatchReader::new(b.bytes.clone(), opts)
        .next()?
        .ok()?
        .into_v2()?;
    batch.control_record(&opts).ok()?.map(|c| c.kind)
}
