//! Fetch: reads each partition below its high watermark, within the request's byte
//! limits and the broker's `fetch.max.bytes`, and waits in virtual time for min bytes
//! up to max wait.
//!
//! A Fetch is first planned (which batches of which partitions, and how many bytes)
//! without copying anything; a Fetch that must wait for more data copies nothing and
//! watches the partitions it reads, so that only an append to one of them looks at it
//! again.

use super::{Call, error_code, per_partition};
use crate::messages::{ErrorCode, FetchRequest, FetchResponse};
use crate::messages::{fetch_request, fetch_response};
use crate::sim::log::ReadPlan;
use crate::wire::{ByteString, Bytes, Uuid};
use std::time::Duration;

/// One partition's part of a Fetch, planned.
struct Planned {
    topic: Uuid,
    plan: ReadPlan,
    high_watermark: i64,
    log_start_offset: i64,
}

/// Answers a Fetch, or `None` while it must wait (for its fault delay, or for min
/// bytes until its max wait).
pub(super) fn fetch(call: &mut Call, r: &FetchRequest) -> Option<FetchResponse> {
    let now = call.now;
    let delay = call.cluster.faults.fetch_delay;
    let max_wait = Duration::from_millis(u64::try_from(r.max_wait_ms).unwrap_or(0));
    if call.pending.not_before.is_none() && !delay.is_zero() {
        call.pending.not_before = Some(call.cluster.later(delay));
    }
    if call.pending.not_before.is_some_and(|t| now < t) {
        return None;
    }
    let deadline = match call.pending.deadline {
        Some(d) => d,
        None => *call.pending.deadline.insert(call.cluster.later(max_wait)),
    };
    let plans = plan(call, r);
    let bytes: usize = plans.iter().flatten().map(|p| p.plan.len()).sum();
    let errors = plans.iter().any(Result::is_err);
    if !errors && (bytes as i64) < i64::from(r.min_bytes) && now < deadline {
        for (planned, p) in plans
            .iter()
            .zip(r.topics.iter().flat_map(|t| &t.partitions))
        {
            if let Ok(planned) = planned {
                call.cluster
                    .conns
                    .watch_partition(call.conn, planned.topic, p.partition);
            }
        }
        return None;
    }
    Some(respond(call, r, plans))
}

/// Plans every partition of the request, in order: the first partition with data
/// may return one batch over the limits (KIP-74), no other may.
fn plan(call: &mut Call, r: &FetchRequest) -> Vec<Result<Planned, ErrorCode>> {
    let partial = call.cluster.faults.partial_batches;
    let now = call.now;
    let mut budget = (r.max_bytes.max(0) as usize).min(call.cluster.config.fetch_max_bytes);
    let mut any_data = false;
    let mut plans = Vec::new();
    for t in &r.topics {
        let topic = call
            .check_injected()
            .and_then(|()| topic_name(call, t, call.version >= 13))
            .and_then(|name| {
                let id = call.cluster.topics.get(&name).map(|x| x.id);
                id.map(|id| (name, id))
                    .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
            });
        for fp in &t.partitions {
            let planned = topic.as_ref().map_err(|e| *e).and_then(|(name, id)| {
                let p = call.on_leader(name, fp.partition)?;
                // As Kafka: only an offset past the log end (or before its start) is
                // out of range; between the high watermark and the log end a consumer
                // gets no records yet and waits.
                if fp.fetch_offset < p.log.log_start_offset
                    || fp.fetch_offset > p.log.log_end_offset
                {
                    return Err(ErrorCode::OFFSET_OUT_OF_RANGE);
                }
                let limit = (fp.partition_max_bytes.max(0) as usize).min(budget);
                let plan = p
                    .log
                    .plan_read(fp.fetch_offset, limit, !any_data, now, partial);
                any_data |= plan.len() > 0;
                budget = budget.saturating_sub(plan.len());
                Ok(Planned {
                    topic: *id,
                    plan,
                    high_watermark: p.log.high_watermark(now),
                    log_start_offset: p.log.log_start_offset,
                })
            });
            plans.push(planned);
        }
    }
    plans
}

/// The response to a Fetch from its plans: here the record bytes are copied.
fn respond(call: &Call, r: &FetchRequest, plans: Vec<Result<Planned, ErrorCode>>) -> FetchResponse {
    let mut plans = plans.into_iter();
    let mut responses: Vec<fetch_response::FetchableTopicResponse> = per_partition(
        &r.topics,
        |t| (&t.topic, &t.partitions[..]),
        |_, fp| {
            let planned = plans.next().unwrap_or(Err(ErrorCode::UNKNOWN_SERVER_ERROR));
            let mut out = fetch_response::PartitionData {
                partition_index: fp.partition,
                records: Some(Bytes::new()),
                aborted_transactions: Some(Vec::new()),
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                preferred_read_replica: -1,
                error_code: error_code(&planned),
                ..Default::default()
            };
            if let Ok(p) = planned {
                let log = call.cluster.partition_by_id(p.topic, fp.partition);
                out.records = Some(log.map(|l| l.log.read(&p.plan)).unwrap_or_default());
                out.high_watermark = p.high_watermark;
                out.last_stable_offset = p.high_watermark;
                out.log_start_offset = p.log_start_offset;
            }
            out
        },
    );
    if call.version >= 13 {
        // From v13 topics go by id only.
        for (entry, t) in responses.iter_mut().zip(&r.topics) {
            entry.topic = ByteString::new();
            entry.topic_id = t.topic_id;
        }
    }
    FetchResponse {
        // Sessions are not kept: session id 0 tells the client to send full fetches.
        session_id: 0,
        responses,
        ..Default::default()
    }
}

/// The name of a fetched topic: given (before v13) or looked up by id.
fn topic_name(
    call: &Call,
    t: &fetch_request::FetchTopic,
    by_id: bool,
) -> Result<String, ErrorCode> {
    if by_id {
        call.cluster
            .topic_name(t.topic_id)
            .cloned()
            .ok_or(ErrorCode::UNKNOWN_TOPIC_ID)
    } else {
        Ok(t.topic.to_string())
    }
}
