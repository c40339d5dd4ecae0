//! Fetch: reads each partition below its high watermark, within the request's byte
//! limits, and waits in virtual time for min bytes up to max wait.

use super::{Call, error_code, per_partition};
use crate::messages::{ErrorCode, FetchRequest, FetchResponse};
use crate::messages::{fetch_request, fetch_response};
use crate::wire::{ByteString, Bytes};
use std::time::Duration;

/// Answers a Fetch, or `None` while it must wait (for its fault delay, or for min
/// bytes until its max wait).
pub(super) fn fetch(call: &mut Call, r: &FetchRequest) -> Option<FetchResponse> {
    let now = call.now;
    let delay = call.cluster.faults.fetch_delay;
    let pending = &mut *call.pending;
    if pending.not_before.is_none() && !delay.is_zero() {
        pending.not_before = Some(now + delay);
    }
    if pending.not_before.is_some_and(|t| now < t) {
        return None;
    }
    let deadline = *pending
        .deadline
        .get_or_insert(now + Duration::from_millis(r.max_wait_ms.max(0) as u64));
    let (resp, bytes) = read(call, r);
    let errors = resp.error_code != 0
        || resp
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|p| p.error_code != 0);
    if !errors && (bytes as i64) < i64::from(r.min_bytes) && now < deadline {
        return None;
    }
    Some(resp)
}

/// The response to a Fetch as the logs stand now, and how many record bytes it
/// carries (for min bytes).
fn read(call: &mut Call, r: &FetchRequest) -> (FetchResponse, usize) {
    let partial = call.cluster.faults.partial_batches;
    let by_id = call.version >= 13;
    let now = call.now;
    let mut budget = r.max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut responses: Vec<fetch_response::FetchableTopicResponse> = per_partition(
        &r.topics,
        |t| (&t.topic, &t.partitions[..]),
        |t, fp| {
            let result = call
                .check_injected()
                .and_then(|()| topic_name(call, t, by_id))
                .and_then(|name| call.on_leader(&name, fp.partition))
                .and_then(|p| {
                    let hw = p.log.high_watermark(now);
                    // As Kafka: only an offset past the log end (or before its start)
                    // is out of range; between the high watermark and the log end a
                    // consumer gets no records yet and waits.
                    if fp.fetch_offset < p.log.log_start_offset
                        || fp.fetch_offset > p.log.log_end_offset
                    {
                        return Err(ErrorCode::OFFSET_OUT_OF_RANGE);
                    }
                    let limit = (fp.partition_max_bytes.max(0) as usize).min(budget);
                    let data = p.log.read(fp.fetch_offset, limit, now, partial);
                    Ok((data, hw, p.log.log_start_offset))
                });
            let mut out = fetch_response::PartitionData {
                partition_index: fp.partition,
                records: Some(Bytes::new()),
                aborted_transactions: Some(Vec::new()),
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                preferred_read_replica: -1,
                error_code: error_code(&result),
                ..Default::default()
            };
            if let Ok((data, hw, start)) = result {
                budget = budget.saturating_sub(data.len());
                total += data.len();
                out.high_watermark = hw;
                out.last_stable_offset = hw;
                out.log_start_offset = start;
                out.records = Some(data);
            }
            out
        },
    );
    if by_id {
        // From v13 topics go by id only.
        for (entry, t) in responses.iter_mut().zip(&r.topics) {
            entry.topic = ByteString::new();
            entry.topic_id = t.topic_id;
        }
    }
    let resp = FetchResponse {
        // Sessions are not kept: session id 0 tells the client to send full fetches.
        session_id: 0,
        responses,
        ..Default::default()
    };
    (resp, total)
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
            .ok_or(ErrorCode::UNKNOWN_TOPIC_ID)
    } else {
        Ok(t.topic.to_string())
    }
}
