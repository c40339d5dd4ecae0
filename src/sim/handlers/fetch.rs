//! Fetch: reads each partition below its high watermark, within the request's byte
//! limits and the broker's `fetch.max.bytes`, waits in virtual time for min bytes up
//! to max wait, and keeps incremental fetch sessions (KIP-227, `sim/fetch_sessions.rs`).
//!
//! The first look at a Fetch settles its session (created, resumed at the next
//! epoch, or closed) and fixes the partitions it reads: those it names, or every
//! partition of its session. Each look then plans the read (which batches of which
//! partitions, and how many bytes) without copying anything; a Fetch that must wait
//! for more data copies nothing and watches the partitions it reads, so that only an
//! append to one of them looks at it again.

use super::{Call, error_code};
use crate::messages::{ErrorCode, FetchRequest, FetchResponse};
use crate::messages::{fetch_request, fetch_response};
use crate::sim::fetch_sessions::{SessionError, SessionPartition};
use crate::sim::log::ReadPlan;
use crate::wire::{ByteString, Bytes, Uuid};
use std::collections::BTreeSet;
use std::time::Duration;

/// One partition a Fetch reads.
#[derive(Debug, Clone)]
pub(crate) struct FetchItem {
    /// The topic's name (empty when its id is unknown).
    topic: String,
    topic_id: Uuid,
    partition: i32,
    fetch_offset: i64,
    max_bytes: i32,
    /// An error known before reading (an unknown topic id).
    error: Option<ErrorCode>,
}

/// How a Fetch's session was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionMode {
    /// No session: answer every partition, session id 0.
    None,
    /// A new session: answer every partition, with its id.
    Full(i32),
    /// An incremental fetch of this session: answer what changed.
    Incremental(i32),
}

/// What the first look at a Fetch settled, kept while it waits.
#[derive(Debug, Clone)]
pub(crate) enum FetchContext {
    /// A session error answers the whole request.
    Failed(ErrorCode),
    /// The partitions to read, and the session they answer for.
    Read {
        mode: SessionMode,
        items: Vec<FetchItem>,
    },
}

/// One partition's part of a Fetch, planned.
struct Planned {
    topic: Uuid,
    plan: ReadPlan,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    /// For a read_committed fetch, the aborted transactions among what it returns
    /// (`None` for read_uncommitted, as Kafka answers it).
    aborted: Option<Vec<fetch_response::AbortedTransaction>>,
}

/// Answers a Fetch, or `None` while it must wait (for its fault delay, or for min
/// bytes until its max wait).
pub(super) fn fetch(call: &mut Call, r: &FetchRequest) -> Option<FetchResponse> {
    let ctx = match call.pending.fetch.take() {
        Some(ctx) => ctx,
        None => Box::new(settle(call, r)),
    };
    let out = fetch_with(call, r, &ctx);
    if out.is_none() {
        call.pending.fetch = Some(ctx);
    }
    out
}

fn fetch_with(call: &mut Call, r: &FetchRequest, ctx: &FetchContext) -> Option<FetchResponse> {
    let now = call.now;
    let delay = call.cluster.faults.fetch_delay;
    let max_wait = Duration::from_millis(u64::try_from(r.max_wait_ms).unwrap_or(0));
    if call.pending.not_before.is_none() && !delay.is_zero() {
        call.pending.not_before = Some(call.cluster.later(delay));
    }
    if call.pending.not_before.is_some_and(|t| now < t) {
        return None;
    }
    let (mode, items) = match ctx {
        FetchContext::Failed(e) => {
            return Some(FetchResponse {
                error_code: e.code(),
                session_id: 0,
                ..Default::default()
            });
        }
        FetchContext::Read { mode, items } => (*mode, items),
    };
    let deadline = match call.pending.deadline {
        Some(d) => d,
        None => *call.pending.deadline.insert(call.cluster.later(max_wait)),
    };
    let plans = plan(call, r, items);
    let bytes: usize = plans.iter().flatten().map(|p| p.plan.len()).sum();
    let errors = plans.iter().any(Result::is_err);
    if !errors
        && (bytes.max(available(call, items, read_committed(r))) as i64) < i64::from(r.min_bytes)
        && now < deadline
    {
        for (planned, item) in plans.iter().zip(items) {
            if let Ok(planned) = planned {
                call.cluster
                    .conns
                    .watch_partition(call.conn, planned.topic, item.partition);
            }
        }
        return None;
    }
    Some(respond(call, items, plans, mode))
}

/// The partitions a request names, as fetch items (topics by id from v13).
fn named(call: &Call, r: &FetchRequest) -> Vec<FetchItem> {
    let by_id = call.version >= 13;
    let mut items = Vec::new();
    for t in &r.topics {
        let (topic, topic_id, error) = if by_id {
            match call.cluster.topic_name(t.topic_id) {
                Some(name) => (name.clone(), t.topic_id, None),
                None => (String::new(), t.topic_id, Some(ErrorCode::UNKNOWN_TOPIC_ID)),
            }
        } else {
            let id = call.cluster.topics.get(&*t.topic).map(|x| x.id);
            (t.topic.to_string(), id.unwrap_or(Uuid::ZERO), None)
        };
        for p in &t.partitions {
            items.push(FetchItem {
                topic: topic.clone(),
                topic_id,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                error,
            });
        }
    }
    items
}

/// Whether a fetch item names a partition that exists (only those enter a session).
fn exists(call: &Call, item: &FetchItem) -> bool {
    item.error.is_none()
        && call
            .cluster
            .topics
            .get(&item.topic)
            .is_some_and(|t| (0..t.partitions.len() as i32).contains(&item.partition))
}

/// The forgotten partitions of an incremental fetch, as (topic, partition).
fn forgotten(call: &Call, r: &FetchRequest) -> Vec<(String, i32)> {
    let by_id = call.version >= 13;
    r.forgotten_topics_data
        .iter()
        .filter_map(|t: &fetch_request::ForgottenTopic| {
            let name = if by_id {
                call.cluster.topic_name(t.topic_id)?.clone()
            } else {
                t.topic.to_string()
            };
            Some(t.partitions.iter().map(move |p| (name.clone(), *p)))
        })
        .flatten()
        .collect()
}

/// Settles the request's session (KIP-227) and the partitions it reads.
fn settle(call: &mut Call, r: &FetchRequest) -> FetchContext {
    let (broker, now) = (call.broker, call.now);
    let requested = named(call, r);
    let (id, epoch) = (r.session_id, r.session_epoch);
    match epoch {
        e if e < -1 => FetchContext::Failed(ErrorCode::INVALID_FETCH_SESSION_EPOCH),
        -1 | 0 => {
            if id != 0 {
                call.cluster.fetch_sessions.close(broker, id);
            }
            let mode = if epoch == 0 {
                new_session(call, &requested)
            } else {
                SessionMode::None
            };
            FetchContext::Read {
                mode,
                items: requested,
            }
        }
        _ if id == 0 => FetchContext::Failed(ErrorCode::INVALID_FETCH_SESSION_EPOCH),
        _ => {
            let gone = forgotten(call, r);
            let keep: Vec<bool> = requested.iter().map(|i| exists(call, i)).collect();
            let session = match call.cluster.fetch_sessions.resume(broker, id, epoch, now) {
                Ok(s) => s,
                Err(SessionError::NotFound) => {
                    return FetchContext::Failed(ErrorCode::FETCH_SESSION_ID_NOT_FOUND);
                }
                Err(SessionError::InvalidEpoch) => {
                    return FetchContext::Failed(ErrorCode::INVALID_FETCH_SESSION_EPOCH);
                }
            };
            for (topic, p) in &gone {
                session.forget(topic, *p);
            }
            let mut errors = Vec::new();
            for (item, keep) in requested.into_iter().zip(keep) {
                if keep {
                    session.upsert(
                        &item.topic,
                        item.partition,
                        SessionPartition {
                            topic_id: item.topic_id,
                            fetch_offset: item.fetch_offset,
                            max_bytes: item.max_bytes,
                            reported: None,
                        },
                    );
                } else {
                    errors.push(item);
                }
            }
            let mut items: Vec<FetchItem> = session
                .order
                .iter()
                .filter_map(|key| {
                    let p = session.partitions.get(key)?;
                    Some(FetchItem {
                        topic: key.0.clone(),
                        topic_id: p.topic_id,
                        partition: key.1,
                        fetch_offset: p.fetch_offset,
                        max_bytes: p.max_bytes,
                        error: None,
                    })
                })
                .collect();
            items.extend(errors);
            FetchContext::Read {
                mode: SessionMode::Incremental(id),
                items,
            }
        }
    }
}

/// A new session holding the partitions of `items` that exist, if the broker has
/// room for one.
fn new_session(call: &mut Call, items: &[FetchItem]) -> SessionMode {
    let slots = call.cluster.config.max_incremental_fetch_sessions;
    if slots == 0 {
        return SessionMode::None;
    }
    let keep: Vec<bool> = items.iter().map(|i| exists(call, i)).collect();
    // A random id no session has (ids are positive, as Kafka's).
    let mut id = 0;
    for _ in 0..8 {
        let candidate = (call.cluster.next_random() as i32) & 0x7fff_ffff;
        if candidate != 0 && !call.cluster.fetch_sessions.contains(candidate) {
            id = candidate;
            break;
        }
    }
    let (broker, now) = (call.broker, call.now);
    let Some(session) = call.cluster.fetch_sessions.create(broker, id, slots, now) else {
        return SessionMode::None;
    };
    for (item, keep) in items.iter().zip(keep) {
        if keep {
            session.upsert(
                &item.topic,
                item.partition,
                SessionPartition {
                    topic_id: item.topic_id,
                    fetch_offset: item.fetch_offset,
                    max_bytes: item.max_bytes,
                    reported: None,
                },
            );
        }
    }
    SessionMode::Full(id)
}

/// Bytes the fetch's partitions hold from the offsets asked, below the high
/// watermark, each up to its partition max bytes but not limited by the request's
/// max bytes: what Kafka counts against min bytes (`DelayedFetch.tryComplete`), so a
/// request whose max bytes is below its min bytes is answered once that much is
/// there rather than at its max wait.
fn available(call: &Call, items: &[FetchItem], read_committed: bool) -> usize {
    items
        .iter()
        .filter_map(|item| {
            let p = call.cluster.partition(&item.topic, item.partition)?;
            let limit = item.max_bytes.max(0) as usize;
            Some(
                p.log
                    .plan_read(
                        item.fetch_offset,
                        limit,
                        false,
                        call.now,
                        true,
                        read_committed,
                    )
                    .len(),
            )
        })
        .sum()
}

/// Plans every partition, in order: the first partition with data may return one
/// batch over the limits (KIP-74), no other may.
fn plan(call: &mut Call, r: &FetchRequest, items: &[FetchItem]) -> Vec<Result<Planned, ErrorCode>> {
    let partial = call.cluster.faults.partial_batches;
    let now = call.now;
    let committed = read_committed(r);
    let mut budget = (r.max_bytes.max(0) as usize).min(call.cluster.config.fetch_max_bytes);
    let mut any_data = false;
    let mut plans = Vec::with_capacity(items.len());
    for item in items {
        let planned = call
            .check_injected()
            .and_then(|()| item.error.map_or(Ok(()), Err))
            .and_then(|()| {
                let p = call.on_leader(&item.topic, item.partition)?;
                // As Kafka: only an offset past the log end (or before its start) is
                // out of range; between the high watermark and the log end a consumer
                // gets no records yet and waits.
                if item.fetch_offset < p.log.log_start_offset
                    || item.fetch_offset > p.log.log_end_offset
                {
                    return Err(ErrorCode::OFFSET_OUT_OF_RANGE);
                }
                let limit = (item.max_bytes.max(0) as usize).min(budget);
                let plan =
                    p.log
                        .plan_read(item.fetch_offset, limit, !any_data, now, partial, committed);
                any_data |= plan.len() > 0;
                budget = budget.saturating_sub(plan.len());
                let aborted = committed.then(|| {
                    let upto = p.log.plan_end_offset(&plan, item.fetch_offset);
                    p.log
                        .aborted_between(item.fetch_offset, upto)
                        .map(|a| fetch_response::AbortedTransaction {
                            producer_id: a.producer_id,
                            first_offset: a.first_offset,
                            ..Default::default()
                        })
                        .collect()
                });
                Ok(Planned {
                    topic: item.topic_id,
                    plan,
                    high_watermark: p.log.high_watermark(now),
                    last_stable_offset: p.log.last_stable_offset(now),
                    log_start_offset: p.log.log_start_offset,
                    aborted,
                })
            });
        plans.push(planned);
    }
    plans
}

/// The response to a Fetch from its plans: here the record bytes are copied. An
/// incremental fetch answers only the partitions with records, an error, or a high
/// watermark or log start offset its session has not reported yet.
fn respond(
    call: &mut Call,
    items: &[FetchItem],
    plans: Vec<Result<Planned, ErrorCode>>,
    mode: SessionMode,
) -> FetchResponse {
    let by_id = call.version >= 13;
    let mut responses: Vec<fetch_response::FetchableTopicResponse> = Vec::new();
    let mut returned = BTreeSet::new();
    let session_id = match mode {
        SessionMode::None => 0,
        SessionMode::Full(id) | SessionMode::Incremental(id) => id,
    };
    for (item, planned) in items.iter().zip(plans) {
        let mut out = fetch_response::PartitionData {
            partition_index: item.partition,
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
            let log = call.cluster.partition_by_id(p.topic, item.partition);
            out.records = Some(log.map(|l| l.log.read(&p.plan)).unwrap_or_default());
            out.high_watermark = p.high_watermark;
            out.last_stable_offset = p.last_stable_offset;
            out.log_start_offset = p.log_start_offset;
            out.aborted_transactions = p.aborted;
        }
        let has_records = out.records.as_ref().is_some_and(|b| !b.is_empty());
        let key = (item.topic.clone(), item.partition);
        if has_records {
            returned.insert(key.clone());
        }
        if session_id != 0
            && let Some(s) = call.cluster.fetch_sessions.get_mut(session_id)
            && let Some(sp) = s.partitions.get_mut(&key)
        {
            let now_reported = Some((out.high_watermark, out.log_start_offset));
            let changed = sp.reported != now_reported;
            if out.error_code == 0 {
                sp.reported = now_reported;
            }
            if matches!(mode, SessionMode::Incremental(_))
                && !has_records
                && out.error_code == 0
                && !changed
            {
                continue;
            }
        }
        let same_topic = responses.last().is_some_and(|t| {
            if by_id {
                t.topic_id == item.topic_id
            } else {
                *t.topic == *item.topic
            }
        });
        if !same_topic {
            responses.push(fetch_response::FetchableTopicResponse {
                // From v13 topics go by id only.
                topic: if by_id {
                    ByteString::new()
                } else {
                    ByteString::from(item.topic.clone())
                },
                topic_id: if by_id { item.topic_id } else { Uuid::ZERO },
                ..Default::default()
            });
        }
        if let Some(t) = responses.last_mut() {
            t.partitions.push(out);
        }
    }
    if session_id != 0
        && let Some(s) = call.cluster.fetch_sessions.get_mut(session_id)
    {
        s.rotate(&returned);
    }
    FetchResponse {
        session_id,
        responses,
        ..Default::default()
    }
}

/// Whether a Fetch asks for committed records only (isolation level 1).
fn read_committed(r: &FetchRequest) -> bool {
    r.isolation_level == 1
}
