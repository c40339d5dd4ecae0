//! Transactions: InitProducerId for a transactional id, AddPartitionsToTxn,
//! AddOffsetsToTxn and EndTxn on the transaction coordinator, TxnOffsetCommit on the
//! group coordinator. Markers, the last stable offset and the aborted transactions
//! a read_committed Fetch reports live in the partition logs (`sim/log.rs`).

use super::groups::transaction_coordinator;
use super::{Call, CommittedOffset};
use crate::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, ErrorCode, InitProducerIdRequest,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use crate::messages::{add_partitions_to_txn_response as apr, txn_offset_commit_response as tcr};
use crate::sim::transactions::{Txn, TxnState};
use std::collections::{BTreeMap, BTreeSet};

/// Kafka's default `transaction.max.timeout.ms`: a producer asking for longer is
/// refused with INVALID_TRANSACTION_TIMEOUT.
const MAX_TRANSACTION_TIMEOUT_MS: i32 = 900_000;

impl Call<'_> {
    /// Whether this broker coordinates transactional id `id`.
    fn check_transaction_coordinator(&self, id: &str) -> Result<(), ErrorCode> {
        self.check_injected()?;
        if id.is_empty() {
            return Err(ErrorCode::INVALID_REQUEST);
        }
        match transaction_coordinator(&self.cluster.live_brokers(), id) {
            Some(b) if b == self.broker => Ok(()),
            Some(_) => Err(ErrorCode::NOT_COORDINATOR),
            None => Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
        }
    }

    /// `id`'s state if `producer_id` and `epoch` are its current producer's; else
    /// the error Kafka gives an unknown producer or a fenced one (PRODUCER_FENCED
    /// from `fenced_from` on, INVALID_PRODUCER_EPOCH before it).
    fn current_transaction(
        &mut self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        fenced_from: i16,
    ) -> Result<&mut Txn, ErrorCode> {
        let fenced = if self.version >= fenced_from {
            ErrorCode::PRODUCER_FENCED
        } else {
            ErrorCode::INVALID_PRODUCER_EPOCH
        };
        let txn = self
            .cluster
            .transactions
            .by_id
            .get_mut(id)
            .filter(|t| t.producer_id == producer_id)
            .ok_or(ErrorCode::INVALID_PRODUCER_ID_MAPPING)?;
        if txn.epoch != epoch {
            return Err(fenced);
        }
        Ok(txn)
    }
}

/// InitProducerId with a transactional id: the id's producer (a new one the first
/// time) with its epoch bumped, which fences every older instance; a transaction
/// the id left open is aborted first. (producer id, epoch), or the error.
pub(super) fn init_transactional(
    call: &mut Call,
    r: &InitProducerIdRequest,
    id: &str,
) -> Result<(i64, i16), ErrorCode> {
    call.check_transaction_coordinator(id)?;
    if !(1..=MAX_TRANSACTION_TIMEOUT_MS).contains(&r.transaction_timeout_ms) {
        return Err(ErrorCode::INVALID_TRANSACTION_TIMEOUT);
    }
    let now = call.now;
    let fenced = if call.version >= 4 {
        ErrorCode::PRODUCER_FENCED
    } else {
        ErrorCode::INVALID_PRODUCER_EPOCH
    };
    let cluster = &mut *call.cluster;
    let Some(txn) = cluster.transactions.by_id.get_mut(id) else {
        let producer_id = cluster.next_producer_id;
        cluster.next_producer_id += 1;
        cluster.transactions.by_id.insert(
            id.to_owned(),
            Txn {
                producer_id,
                epoch: 0,
                timeout_ms: r.transaction_timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                groups: BTreeSet::new(),
                offsets: BTreeMap::new(),
                started: None,
            },
        );
        return Ok((producer_id, 0));
    };
    // KIP-360 (v3+): a producer that names its id and epoch must name the current
    // ones; any other instance has been fenced.
    if r.producer_id >= 0 && (r.producer_id, r.producer_epoch) != (txn.producer_id, txn.epoch) {
        return Err(fenced);
    }
    // The new epoch goes first, so that the open transaction's abort markers carry
    // it and fence the old instance in every partition it wrote to. An id whose
    // epochs are used up gets a new producer id after that abort.
    let exhausted = txn.epoch >= i16::MAX - 1;
    txn.epoch += 1;
    txn.timeout_ms = r.transaction_timeout_ms;
    cluster.end_transaction(id, false, now);
    let fresh = cluster.next_producer_id;
    let Some(txn) = cluster.transactions.by_id.get_mut(id) else {
        return Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING);
    };
    if exhausted {
        txn.producer_id = fresh;
        txn.epoch = 0;
        cluster.next_producer_id += 1;
    }
    txn.state = TxnState::Empty;
    Ok((txn.producer_id, txn.epoch))
}

/// AddPartitionsToTxn (v0-3, the client's versions): the partitions join the open
/// transaction (opening one). If any partition is unknown, none is added: the
/// unknown ones get UNKNOWN_TOPIC_OR_PARTITION, the others OPERATION_NOT_ATTEMPTED.
pub(super) fn add_partitions_to_txn(
    call: &mut Call,
    r: &AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let id = r.v3_and_below_transactional_id.to_string();
    let asked: Vec<(String, i32)> = r
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p)))
        .collect();
    let exists = |call: &Call, (topic, p): &(String, i32)| {
        call.cluster
            .topics
            .get(topic)
            .is_some_and(|t| usize::try_from(*p).is_ok_and(|i| i < t.partitions.len()))
    };
    let known: Vec<bool> = asked.iter().map(|tp| exists(call, tp)).collect();
    let now = call.now;
    let checked = call.check_transaction_coordinator(&id).and_then(|()| {
        call.current_transaction(
            &id,
            r.v3_and_below_producer_id,
            r.v3_and_below_producer_epoch,
            2,
        )
        .map(|_| ())
    });
    let all_known = known.iter().all(|k| *k);
    if checked.is_ok()
        && all_known
        && let Some(txn) = call.cluster.transactions.by_id.get_mut(&id)
    {
        txn.partitions.extend(asked.iter().cloned());
        txn.state = TxnState::Ongoing;
        txn.started.get_or_insert(now);
    }
    let mut results: Vec<apr::AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, partition), known) in asked.into_iter().zip(known) {
        let error = match checked {
            Err(e) => e,
            Ok(()) if !known => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            Ok(()) if !all_known => ErrorCode::OPERATION_NOT_ATTEMPTED,
            Ok(()) => ErrorCode::NONE,
        };
        let result = apr::AddPartitionsToTxnPartitionResult {
            partition_index: partition,
            partition_error_code: error.code(),
            ..Default::default()
        };
        match results.last_mut() {
            Some(t) if *t.name == *topic => t.results_by_partition.push(result),
            _ => results.push(apr::AddPartitionsToTxnTopicResult {
                name: topic.into(),
                results_by_partition: vec![result],
                ..Default::default()
            }),
        }
    }
    AddPartitionsToTxnResponse {
        results_by_topic_v3_and_below: results,
        ..Default::default()
    }
}

/// AddOffsetsToTxn: the group's offsets will be committed with the transaction
/// (sent with TxnOffsetCommit to the group's coordinator); opens one if needed.
pub(super) fn add_offsets_to_txn(
    call: &mut Call,
    r: &AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let id = r.transactional_id.to_string();
    let now = call.now;
    let result = call.check_transaction_coordinator(&id).and_then(|()| {
        if r.group_id.is_empty() {
            return Err(ErrorCode::INVALID_GROUP_ID);
        }
        let txn = call.current_transaction(&id, r.producer_id, r.producer_epoch, 2)?;
        txn.groups.insert(r.group_id.to_string());
        txn.state = TxnState::Ongoing;
        txn.started.get_or_insert(now);
        Ok(())
    });
    AddOffsetsToTxnResponse {
        error_code: result.err().map_or(0, ErrorCode::code),
        ..Default::default()
    }
}

/// TxnOffsetCommit, on the group's coordinator: offsets that are committed when
/// the transaction commits and dropped when it aborts. The group must have been
/// added to the transaction (AddOffsetsToTxn) first.
pub(super) fn txn_offset_commit(
    call: &mut Call,
    r: &TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let id = r.transactional_id.to_string();
    let group = r.group_id.to_string();
    let checked = call
        .check_injected()
        .and_then(|()| call.check_coordinator(&group))
        .and_then(|()| {
            let txn = call.current_transaction(&id, r.producer_id, r.producer_epoch, 2)?;
            if txn.groups.contains(&group) {
                Ok(())
            } else {
                Err(ErrorCode::INVALID_TXN_STATE)
            }
        });
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in &r.topics {
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let known = call.cluster.topics.get(&*t.name).is_some_and(|topic| {
                    usize::try_from(p.partition_index).is_ok_and(|i| i < topic.partitions.len())
                });
                let result = match checked {
                    Err(e) => Err(e),
                    Ok(()) if !known => Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                    Ok(()) => {
                        if let Some(txn) = call.cluster.transactions.by_id.get_mut(&id) {
                            txn.offsets.insert(
                                (group.clone(), t.name.to_string(), p.partition_index),
                                CommittedOffset {
                                    offset: p.committed_offset,
                                    leader_epoch: p.committed_leader_epoch,
                                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                                },
                            );
                        }
                        Ok(())
                    }
                };
                tcr::TxnOffsetCommitResponsePartition {
                    partition_index: p.partition_index,
                    error_code: result.err().map_or(0, ErrorCode::code),
                    ..Default::default()
                }
            })
            .collect();
        topics.push(tcr::TxnOffsetCommitResponseTopic {
            name: t.name.clone(),
            partitions,
            ..Default::default()
        });
    }
    TxnOffsetCommitResponse {
        topics,
        ..Default::default()
    }
}

/// EndTxn: commits or aborts the open transaction (markers in each of its
/// partitions, its offsets committed or dropped). A retry of the EndTxn that
/// ended the last transaction is answered as done; any other EndTxn without an
/// open transaction gets INVALID_TXN_STATE.
pub(super) fn end_txn(call: &mut Call, r: &EndTxnRequest) -> EndTxnResponse {
    let id = r.transactional_id.to_string();
    let now = call.now;
    let result = call.check_transaction_coordinator(&id).and_then(|()| {
        let txn = call.current_transaction(&id, r.producer_id, r.producer_epoch, 2)?;
        match txn.state {
            TxnState::Ongoing => Ok(true),
            TxnState::Completed(committed) if committed == r.committed => Ok(false),
            _ => Err(ErrorCode::INVALID_TXN_STATE),
        }
    });
    if result == Ok(true) {
        call.cluster.end_transaction(&id, r.committed, now);
    }
    EndTxnResponse {
        error_code: result.err().map_or(0, ErrorCode::code),
        producer_id: -1,
        producer_epoch: -1,
        ..Default::default()
    }
}

/// Whether a produced batch (raw v2 batch bytes) may be appended to
/// `topic`/`partition`: a transactional batch must come from its transactional
/// id's current producer epoch (else INVALID_PRODUCER_EPOCH) and to a partition
/// added to the open transaction (else INVALID_TXN_STATE), as Kafka verifies since
/// KIP-890.
pub(super) fn check_transactional_produce(
    call: &Call,
    records: &[u8],
    topic: &str,
    partition: i32,
) -> Result<(), ErrorCode> {
    let field = |at: usize, len: usize| records.get(at..at + len);
    let Some(attributes) = field(21, 2).map(|b| i16::from_be_bytes([b[0], b[1]])) else {
        return Ok(());
    };
    if attributes & crate::records::attributes::TRANSACTIONAL == 0 {
        return Ok(());
    }
    let (Some(pid), Some(epoch)) = (field(43, 8), field(51, 2)) else {
        return Ok(());
    };
    let mut id = [0u8; 8];
    id.copy_from_slice(pid);
    let producer_id = i64::from_be_bytes(id);
    let epoch = i16::from_be_bytes([epoch[0], epoch[1]]);
    let Some(txn) = call.cluster.transactions.by_producer(producer_id) else {
        return Ok(());
    };
    if epoch < txn.epoch {
        return Err(ErrorCode::INVALID_PRODUCER_EPOCH);
    }
    if txn.state != TxnState::Ongoing || !txn.partitions.contains(&(topic.to_owned(), partition)) {
        return Err(ErrorCode::INVALID_TXN_STATE);
    }
    Ok(())
}
