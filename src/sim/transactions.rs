//! The transaction coordinator's state: each transactional id's producer, its open
//! transaction (the partitions and the group offsets in it), and how a transaction
//! ends (markers written into every partition of it, its offsets committed or
//! dropped), as Kafka's `TransactionCoordinator` keeps them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::handlers::CommittedOffset;
use super::log::Appended;
use super::{Cluster, SimError};
use crate::records::{BatchBuilder, BatchConfig, ControlRecordType, NewRecord};

/// Where a transactional id's transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnState {
    /// No transaction open.
    Empty,
    /// Partitions or offsets were added: a transaction is open.
    Ongoing,
    /// The last transaction ended with this outcome (`true`: committed); a retried
    /// EndTxn asking the same is answered as done.
    Completed(bool),
}

/// One transactional id.
#[derive(Debug, Clone)]
pub(crate) struct Txn {
    pub producer_id: i64,
    pub epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Partitions in the open transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups whose offsets were added (AddOffsetsToTxn).
    pub groups: BTreeSet<String>,
    /// Offsets sent with TxnOffsetCommit, committed with the transaction, by
    /// (group, topic, partition).
    pub offsets: BTreeMap<(String, String, i32), CommittedOffset>,
    /// When the open transaction started.
    pub started: Option<Instant>,
}

/// Every transactional id the cluster has seen.
#[derive(Debug, Clone, Default)]
pub(crate) struct Transactions {
    pub by_id: BTreeMap<String, Txn>,
}

impl Transactions {
    /// The transactional id whose current producer is `producer_id`, if any.
    pub fn by_producer(&self, producer_id: i64) -> Option<&Txn> {
        self.by_id.values().find(|t| t.producer_id == producer_id)
    }

    /// Whether an open transaction holds an offset for `group`'s `topic`/`partition`
    /// (sent with TxnOffsetCommit, not yet committed or dropped): Kafka's pending
    /// transactional offset, which an OffsetFetch asking for stable offsets
    /// (KIP-447) is refused with UNSTABLE_OFFSET_COMMIT.
    pub fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.by_id.values().any(|t| {
            t.state == TxnState::Ongoing
                && t.offsets
                    .keys()
                    .any(|(g, tp, p)| g == group && tp == topic && *p == partition)
        })
    }
}

impl Cluster {
    /// Writes `values` (one record each, null keys) to `topic`/`partition` in the
    /// open transaction of transactional id `id`, as that id's producer would with
    /// InitProducerId (the first time), AddPartitionsToTxn and Produce; the
    /// transaction opens if none is. The batch is on every replica at once. For
    /// tests of consumers that read what a transactional producer wrote, without
    /// writing one: end the transaction with
    /// [`complete_transaction`](Self::complete_transaction). Returns the offset of
    /// the first record.
    ///
    /// # Errors
    /// The topic or partition does not exist, or the partition has no leader.
    ///
    /// ```
    /// use std::time::Instant;
    /// use kafka_sansio::sim::{Cluster, ClusterConfig};
    ///
    /// let now = Instant::now();
    /// let mut cluster = Cluster::new(ClusterConfig::default(), now);
    /// cluster.create_topic("orders", 1, 1)?;
    /// assert_eq!(cluster.write_in_transaction("tx", "orders", 0, &[b"a", b"b"], now)?, 0);
    /// // Open: read_committed consumers stop before it.
    /// assert_eq!(cluster.partition_last_stable_offset("orders", 0), Some(0));
    /// cluster.complete_transaction("tx", true, now);
    /// // Committed: the marker is at offset 2.
    /// assert_eq!(cluster.partition_last_stable_offset("orders", 0), Some(3));
    /// # Ok::<(), kafka_sansio::sim::SimError>(())
    /// ```
    pub fn write_in_transaction(
        &mut self,
        id: &str,
        topic: &str,
        partition: i32,
        values: &[&[u8]],
        now: Instant,
    ) -> Result<i64, SimError> {
        let topic_id = match (self.topics.get(topic), self.partition(topic, partition)) {
            (None, _) => return Err(SimError::NoSuchTopic(topic.to_owned())),
            (Some(_), None) => return Err(SimError::NoSuchPartition(topic.to_owned(), partition)),
            (Some(_), Some(p)) if p.leader < 0 => {
                return Err(SimError::PartitionOffline(topic.to_owned(), partition));
            }
            (Some(t), Some(_)) => t.id,
        };
        let timestamp = self.wall_clock().ms(now);
        let fresh = self.next_producer_id;
        let txn = self
            .transactions
            .by_id
            .entry(id.to_owned())
            .or_insert_with(|| Txn::new(fresh, 60_000));
        if txn.producer_id == fresh {
            self.next_producer_id += 1;
        }
        txn.partitions.insert((topic.to_owned(), partition));
        txn.open(now);
        let (producer_id, epoch) = (txn.producer_id, txn.epoch);
        let Some(p) = self.partition_mut(topic, partition) else {
            return Err(SimError::NoSuchPartition(topic.to_owned(), partition));
        };
        let mut buf = BytesMut::new();
        let config = BatchConfig {
            producer_id,
            producer_epoch: epoch,
            base_sequence: p.log.next_sequence(producer_id, epoch),
            transactional: true,
            max_batch_bytes: usize::MAX,
            ..BatchConfig::default()
        };
        let mut builder = BatchBuilder::new(&mut buf, &config);
        for v in values {
            // No byte limit: appending cannot fail.
            let _ = builder.append(&NewRecord::new(timestamp).value(v));
        }
        let leader_epoch = p.leader_epoch;
        // The batch takes the producer's next sequence: it is appended.
        let appended = builder.finish().ok().and_then(|_| {
            p.log
                .append(&buf.freeze(), leader_epoch, now, now, usize::MAX)
                .ok()
        });
        debug_assert!(
            appended.is_some(),
            "a transactional batch that was not appended"
        );
        let base = match appended {
            Some(Appended::New(base) | Appended::Duplicate(base)) => base,
            None => p.log.log_end_offset,
        };
        self.conns.wake_partition(topic_id, partition);
        Ok(base)
    }

    /// Commits (`commit`) or aborts the open transaction of transactional id `id`,
    /// as its producer's EndTxn does: a marker in each of its partitions (the
    /// fetches waiting on them wake: the last stable offset moved), and the
    /// offsets sent with it committed or dropped. Nothing happens when none is
    /// open.
    pub fn complete_transaction(&mut self, id: &str, commit: bool, now: Instant) {
        let Some(txn) = self.transactions.by_id.get_mut(id) else {
            return;
        };
        if txn.state != TxnState::Ongoing {
            return;
        }
        txn.state = TxnState::Completed(commit);
        txn.started = None;
        txn.groups.clear();
        let (producer_id, epoch) = (txn.producer_id, txn.epoch);
        let partitions = std::mem::take(&mut txn.partitions);
        let offsets = std::mem::take(&mut txn.offsets);
        let kind = if commit {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        };
        let timestamp = self.wall_clock().ms(now);
        for (topic, partition) in partitions {
            let Some(topic_id) = self.topics.get(&topic).map(|t| t.id) else {
                continue;
            };
            let Some(p) = self.partition_mut(&topic, partition) else {
                continue;
            };
            let leader_epoch = p.leader_epoch;
            p.log
                .write_marker(producer_id, epoch, kind, leader_epoch, timestamp, now);
            self.conns.wake_partition(topic_id, partition);
        }
        if commit {
            for ((group, topic, partition), offset) in offsets {
                self.store_committed(&group, &topic, partition, offset, now);
            }
        }
    }

    /// Aborts every transaction open longer than its timeout, as Kafka's
    /// coordinator does, and bumps its producer's epoch so that the producer is
    /// fenced rather than writing on into a new transaction.
    pub(crate) fn expire_transactions(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .transactions
            .by_id
            .iter()
            .filter(|(_, t)| t.expires_at().is_some_and(|d| d <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.complete_transaction(&id, false, now);
            if let Some(t) = self.transactions.by_id.get_mut(&id) {
                t.epoch = t.epoch.saturating_add(1);
            }
        }
    }

    /// When the next open transaction runs out of time.
    pub(crate) fn next_transaction_timeout(&self) -> Option<Instant> {
        self.transactions
            .by_id
            .values()
            .filter_map(Txn::expires_at)
            .min()
    }
}

impl Txn {
    /// A transactional id's state before its first transaction.
    pub fn new(producer_id: i64, timeout_ms: i32) -> Self {
        Txn {
            producer_id,
            epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            offsets: BTreeMap::new(),
            started: None,
        }
    }

    /// Something joined the transaction: it is open (from now, if it was not).
    pub fn open(&mut self, now: Instant) {
        self.state = TxnState::Ongoing;
        self.started.get_or_insert(now);
    }

    /// When the open transaction runs out of time (`None` when none is open).
    fn expires_at(&self) -> Option<Instant> {
        let timeout = Duration::from_millis(u64::try_from(self.timeout_ms).unwrap_or(0));
        self.started
            .filter(|_| self.state == TxnState::Ongoing)
            .map(|s| s + timeout)
    }
}
