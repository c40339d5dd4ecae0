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
        let t = self
            .topics
            .get(topic)
            .ok_or_else(|| SimError::NoSuchTopic(topic.to_owned()))?;
        let p = usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .ok_or_else(|| SimError::NoSuchPartition(topic.to_owned(), partition))?;
        if p.leader < 0 {
            return Err(SimError::PartitionOffline(topic.to_owned(), partition));
        }
        let timestamp = self.wall_clock().ms(now);
        let fresh = self.next_producer_id;
        let txn = self
            .transactions
            .by_id
            .entry(id.to_owned())
            .or_insert_with(|| Txn {
                producer_id: fresh,
                epoch: 0,
                timeout_ms: 60_000,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                groups: BTreeSet::new(),
                offsets: BTreeMap::new(),
                started: None,
            });
        if txn.producer_id == fresh {
            self.next_producer_id += 1;
        }
        txn.partitions.insert((topic.to_owned(), partition));
        txn.state = TxnState::Ongoing;
        txn.started.get_or_insert(now);
        let (producer_id, epoch) = (txn.producer_id, txn.epoch);
        let t = self
            .topics
            .get_mut(topic)
            .ok_or_else(|| SimError::NoSuchTopic(topic.to_owned()))?;
        let topic_id = t.id;
        let p = usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.get_mut(i))
            .ok_or_else(|| SimError::NoSuchPartition(topic.to_owned(), partition))?;
        let sequence = p.log.next_sequence(producer_id, epoch);
        let mut buf = BytesMut::new();
        let config = BatchConfig {
            producer_id,
            producer_epoch: epoch,
            base_sequence: sequence,
            transactional: true,
            max_batch_bytes: usize::MAX,
            ..BatchConfig::default()
        };
        let mut builder = BatchBuilder::new(&mut buf, &config);
        for v in values {
            // No byte limit: appending cannot fail.
            let _ = builder.append(&NewRecord::new(timestamp).value(v));
        }
        let base = match builder.finish() {
            Ok(_) => {
                let leader_epoch = p.leader_epoch;
                match p
                    .log
                    .append(&buf.freeze(), leader_epoch, now, now, usize::MAX)
                {
                    Ok(Appended::New(base) | Appended::Duplicate(base)) => base,
                    Err(_) => p.log.log_end_offset,
                }
            }
            Err(_) => p.log.log_end_offset,
        };
        self.conns.wake_partition(topic_id, partition);
        Ok(base)
    }

    /// Commits (`commit`) or aborts the open transaction of transactional id `id`,
    /// as its producer's EndTxn does: a marker in each of its partitions. Nothing
    /// happens when none is open.
    pub fn complete_transaction(&mut self, id: &str, commit: bool, now: Instant) {
        self.end_transaction(id, commit, now);
    }

    /// Ends `id`'s open transaction: a commit or abort marker in each of its
    /// partitions (the fetches waiting on them wake: the last stable offset moved),
    /// and its offsets committed or dropped. Nothing happens when none is open.
    pub(crate) fn end_transaction(&mut self, id: &str, commit: bool, now: Instant) {
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
            let Some(t) = self.topics.get_mut(&topic) else {
                continue;
            };
            let id = t.id;
            let Some(p) = usize::try_from(partition)
                .ok()
                .and_then(|i| t.partitions.get_mut(i))
            else {
                continue;
            };
            let leader_epoch = p.leader_epoch;
            p.log
                .write_marker(producer_id, epoch, kind, leader_epoch, timestamp, now);
            self.conns.wake_partition(id, partition);
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
            self.end_transaction(&id, false, now);
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
    /// When the open transaction runs out of time (`None` when none is open).
    fn expires_at(&self) -> Option<Instant> {
        let timeout = Duration::from_millis(u64::try_from(self.timeout_ms).unwrap_or(0));
        self.started
            .filter(|_| self.state == TxnState::Ongoing)
            .map(|s| s + timeout)
    }
}
