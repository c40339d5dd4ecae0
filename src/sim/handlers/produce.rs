//! Produce: appends each partition's batches on its leader, with the idempotent
//! producer's sequence checks, and acknowledges by `acks`.

use super::{Call, configs, error_code, per_partition};
use crate::messages::{ErrorCode, ProduceRequest, ProduceResponse};
use crate::messages::{produce_request, produce_response};
use crate::sim::log::{AppendRefusal, Appended};
use std::time::Instant;

/// Answers a Produce; `None` for `acks=0`, which Kafka never answers.
pub(super) fn produce(call: &mut Call, r: &ProduceRequest) -> Option<ProduceResponse> {
    let replicated_at = if r.acks == -1 {
        call.now
    } else {
        call.now + call.cluster.config.replication_delay
    };
    let responses = per_partition(
        &r.topic_data,
        |t| (&t.name, &t.partition_data[..]),
        |t, pd| {
            let result = if call.injected.is_none() && !matches!(r.acks, -1..=1) {
                Err(ErrorCode::INVALID_REQUIRED_ACKS)
            } else {
                append(call, &t.name, pd, replicated_at)
            };
            if let Ok((Appended::New(_), _)) = result
                && r.acks == -1
            {
                planted_bug(call, &t.name, pd.index);
            }
            let mut out = produce_response::PartitionProduceResponse {
                index: pd.index,
                base_offset: -1,
                log_append_time_ms: -1,
                log_start_offset: -1,
                error_code: error_code(&result),
                ..Default::default()
            };
            if let Ok((Appended::New(base) | Appended::Duplicate(base), start)) = result {
                out.base_offset = base;
                out.log_start_offset = start;
            }
            out
        },
    );
    (r.acks != 0).then(|| ProduceResponse {
        responses,
        ..Default::default()
    })
}

/// Appends one partition's records on its leader; the append's outcome and the log
/// start offset. The fetches waiting on the partition wake (now, or once an `acks=1`
/// batch reaches the followers).
fn append(
    call: &mut Call,
    topic: &str,
    pd: &produce_request::PartitionProduceData,
    replicated_at: Instant,
) -> Result<(Appended, i64), ErrorCode> {
    let now = call.now;
    let max_batch = match call.cluster.topics.get(topic) {
        // Clients cannot write to the coordinator's topic (Kafka: "Cannot append to
        // internal topic").
        Some(t) if t.internal && call.injected.is_none() => {
            return Err(ErrorCode::INVALID_TOPIC_EXCEPTION);
        }
        Some(t) => configs::max_message_bytes(&call.cluster.config, &t.configs),
        None => call.cluster.config.message_max_bytes,
    };
    let records = pd.records.clone().unwrap_or_default();
    let transaction = match call.injected {
        None => super::transactions::check_transactional_produce(call, &records, topic, pd.index),
        Some(_) => Ok(()),
    };
    // The leader answers first (NOT_LEADER_OR_FOLLOWER sends the client on), then
    // the transaction's checks.
    let p = call.on_leader(topic, pd.index)?;
    transaction?;
    let appended = p
        .log
        .append(&records, p.leader_epoch, now, replicated_at, max_batch)
        .map_err(|e| match e {
            AppendRefusal::Corrupt => ErrorCode::CORRUPT_MESSAGE,
            AppendRefusal::UnsupportedMagic => ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT,
            AppendRefusal::OutOfOrderSequence => ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
            AppendRefusal::InvalidProducerEpoch => ErrorCode::INVALID_PRODUCER_EPOCH,
            AppendRefusal::TooLarge => ErrorCode::MESSAGE_TOO_LARGE,
        })?;
    let start = p.log.log_start_offset;
    if let Appended::New(_) = appended {
        if replicated_at > now {
            call.cluster.replicating(topic, pd.index, replicated_at);
        } else if let Some(id) = call.cluster.topics.get(topic).map(|t| t.id) {
            call.cluster.conns.wake_partition(id, pd.index);
        }
    }
    Ok((appended, start))
}

/// The planted bug of [`Faults::planted_bug_lose_acked`](crate::sim::Faults): drops
/// the batch just acknowledged, with the configured chance.
fn planted_bug(call: &mut Call, topic: &str, partition: i32) {
    let cluster = &mut *call.cluster;
    let chance = cluster.faults.planted_bug_lose_acked;
    if chance <= 0.0 || (cluster.next_random() >> 11) as f64 / (1u64 << 53) as f64 > chance {
        return;
    }
    if let Some(t) = cluster.topics.get_mut(topic)
        && let Some(part) = usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.get_mut(i))
    {
        part.log.lose_last();
    }
}
