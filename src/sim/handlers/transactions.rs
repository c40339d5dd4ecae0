//! Transactions: InitProducerId for a transactional id, AddPartitionsToTxn,
//! AddOffsetsToTxn and EndTxn on the transaction coordinator, TxnOffsetCommit on the
//! group coordinator. Markers, the last stable offset and the aborted transactions
//! a read_committed Fetch reports live in the partition logs (`sim/log.rs`).

use super::groups::transaction_coordinator;
use super::offsets::{CommitBy, check_commit};
use super::{Call, CommittedOffset, error_code, per_partition};
use super::{apr, tcr};
use crate::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, ErrorCode, InitProducerIdRequest,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use crate::records::{BatchReader, DecodeOptions};
use crate::sim::transactions::{Txn, TxnState};
use crate::wire::Bytes;

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

    /// The error a fenced producer gets: PRODUCER_FENCED from request version
    /// `from` on, INVALID_PRODUCER_EPOCH before it.
    fn fenced(&self, from: i16) -> ErrorCode {
        if self.version >= from {
            ErrorCode::PRODUCER_FENCED
        } else {
            ErrorCode::INVALID_PRODUCER_EPOCH
        }
    }

    /// `id`'s state if `producer_id` and `epoch` are its current producer's; else
    /// the error Kafka gives an unknown producer or a fenced one
    /// ([`fenced`](Self::fenced) from `fenced_from`).
    fn current_transaction(
        &mut self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        fenced_from: i16,
    ) -> Result<&mut Txn, ErrorCode> {
        let fenced = self.fenced(fenced_from);
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
    let fenced = call.fenced(4);
    let cluster = &mut *call.cluster;
    let Some(txn) = cluster.transactions.by_id.get_mut(id) else {
        let producer_id = cluster.next_producer_id;
        cluster.next_producer_id += 1;
        cluster.transactions.by_id.insert(
            id.to_owned(),
            Txn::new(producer_id, r.transaction_timeout_ms),
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
    cluster.complete_transaction(id, false, now);
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
    let topics = &r.v3_and_below_topics;
    let known = |call: &Call, topic: &str, p: i32| call.cluster.partition(topic, p).is_some();
    let all_known = topics
        .iter()
        .all(|t| t.partitions.iter().all(|p| known(call, &t.name, *p)));
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
    if checked.is_ok()
        && all_known
        && let Some(txn) = call.cluster.transactions.by_id.get_mut(&id)
    {
        for t in topics {
            txn.partitions
                .extend(t.partitions.iter().map(|p| (t.name.to_string(), *p)));
        }
        txn.open(now);
    }
    let results = per_partition(
        topics,
        |t| (&t.name, &t.partitions[..]),
        |t, p| {
            let error = match checked {
                Err(e) => e,
                Ok(()) if !known(call, &t.name, *p) => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                Ok(()) if !all_known => ErrorCode::OPERATION_NOT_ATTEMPTED,
                Ok(()) => ErrorCode::NONE,
            };
            apr::AddPartitionsToTxnPartitionResult {
                partition_index: *p,
                partition_error_code: error.code(),
                ..Default::default()
            }
        },
    );
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
        txn.open(now);
        Ok(())
    });
    AddOffsetsToTxnResponse {
        error_code: result.err().map_or(0, ErrorCode::code),
        ..Default::default()
    }
}

/// KIP-447 (v3+): offsets sent with a member's identity are taken only from a
/// current member at its current generation (classic) or member epoch (KIP-848),
/// as Kafka checks them; without one (generation -1, no member id: older clients)
/// they are taken as before.
fn check_txn_member(
    call: &mut Call,
    r: &TxnOffsetCommitRequest,
    group: &str,
) -> Result<(), ErrorCode> {
    if call.version < 3 {
        return Ok(());
    }
    let by = CommitBy {
        member: &r.member_id,
        generation: r.generation_id,
        instance: r.group_instance_id.as_ref(),
    };
    check_commit(call.cluster, group, &by, call.version, true, call.now)
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
        })
        .and_then(|()| check_txn_member(call, r, &group));
    let cluster = &mut *call.cluster;
    let topics = per_partition(
        &r.topics,
        |t| (&t.name, &t.partitions[..]),
        |t, p| {
            let result = checked.and_then(|()| {
                if cluster.partition(&t.name, p.partition_index).is_none() {
                    return Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
                }
                if let Some(txn) = cluster.transactions.by_id.get_mut(&id) {
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
            });
            tcr::TxnOffsetCommitResponsePartition {
                partition_index: p.partition_index,
                error_code: error_code(&result),
                ..Default::default()
            }
        },
    );
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
        call.cluster.complete_transaction(&id, r.committed, now);
    }
    EndTxnResponse {
        error_code: result.err().map_or(0, ErrorCode::code),
        producer_id: -1,
        producer_epoch: -1,
        ..Default::default()
    }
}

/// Whether a produced batch may be appended to `topic`/`partition`: a
/// transactional batch must come from its transactional id's current producer
/// epoch (else INVALID_PRODUCER_EPOCH) and to a partition added to the open
/// transaction (else INVALID_TXN_STATE), as Kafka verifies since KIP-890. Only
/// the first batch's header is read (Kafka's producers send one batch per
/// partition); the append checks the rest.
pub(super) fn check_transactional_produce(
    call: &Call,
    records: &Bytes,
    topic: &str,
    partition: i32,
) -> Result<(), ErrorCode> {
    let opts = DecodeOptions {
        verify_crc: false,
        ..DecodeOptions::default()
    };
    let Some(header) = BatchReader::new(records.clone(), opts)
        .next()
        .and_then(Result::ok)
        .and_then(|b| b.into_v2())
        .map(|b| b.header)
        .filter(|h| h.is_transactional() && !h.is_control())
    else {
        return Ok(());
    };
    let Some(txn) = call.cluster.transactions.by_producer(header.producer_id) else {
        return Ok(());
    };
    if header.producer_epoch < txn.epoch {
        return Err(ErrorCode::INVALID_PRODUCER_EPOCH);
    }
    if txn.state != TxnState::Ongoing || !txn.partitions.contains(&(topic.to_owned(), partition)) {
        return Err(ErrorCode::INVALID_TXN_STATE);
    }
    Ok(())
}
