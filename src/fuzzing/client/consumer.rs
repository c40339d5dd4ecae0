//! The `consumer` target: the client's fetcher and consumer group member against the
//! `client` target's scripted hostile brokers.
//!
//! The script either assigns partitions by hand (the fetcher alone: Fetch with
//! sessions, ListOffsets resets, OffsetForLeaderEpoch validation, OffsetFetch for
//! `Offset::Committed`) or subscribes to a group (classic or KIP-848), and mixes
//! polls, seeks, pauses, commits, rebalance acknowledgements and leaving with the
//! brokers' answers. Every answer is chosen by the input: error codes (the group and
//! fetch-session ones among them), assignments naming unknown topics and partitions,
//! generations and member epochs that go backwards, fetch responses with record
//! batches near the asked offset, corrupt batches or garbage, diverging epochs,
//! sessions that vanish, throttle times.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use arbitrary::{Result as ArbResult, Unstructured};

use super::super::CheckFailure;
use super::super::machines::{answer, framed, take};
use super::{
    State, TOPICS, batch, code, drain, fail, find_coordinator, list_offsets, metadata, node,
    respond, text,
};
use crate::client::{
    Assignor, ClientConfig, ClientError, GroupProtocol, IsolationLevel, Offset, OffsetReset, OpId,
    OpOutput, TopicPartition,
};
use crate::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    ConsumerProtocolAssignment, FetchRequest, FetchResponse, FindCoordinatorRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, ResponseHeader, SyncGroupRequest, SyncGroupResponse,
    consumer_group_heartbeat_response, consumer_protocol_assignment, fetch_response,
    join_group_response, leave_group_response, offset_commit_response, offset_fetch_response,
    offset_for_leader_epoch_response,
};
use crate::records::{BatchBuilder, BatchConfig, NewRecord};
use crate::wire::{ByteString, Bytes, BytesMut, Message, Uuid};

/// What the `consumer` script has seen, and the limits the consumer is held to.
pub(super) struct Consumed {
    /// Subscribed to a group (else partitions are assigned by hand).
    group: bool,
    /// `buffer_max_bytes`.
    pub(super) budget: usize,
    /// Per partition, the era its records belong to: a new era starts whenever its
    /// position may legitimately move back (assigned, unassigned, seeked, named by
    /// a rebalance, or answered with OFFSET_OUT_OF_RANGE, a diverging epoch or an
    /// OffsetForLeaderEpoch end offset).
    era: BTreeMap<TopicPartition, u64>,
    /// Bumped to start a new era for every partition at once.
    all_era: u64,
    next_era: u64,
    /// The last offset handed out per partition, and its era.
    last: BTreeMap<TopicPartition, ((u64, u64), i64)>,
    /// Group mode: the partitions the rebalance events gave this member.
    owned: BTreeSet<TopicPartition>,
    /// The highest offset the client reported committed per partition, since it
    /// was last seeked or revoked.
    floors: BTreeMap<TopicPartition, i64>,
    /// The script's commit operations.
    pub(super) commit_ops: BTreeSet<OpId>,
    /// Records handed out.
    polled: usize,
    /// Partitions paused while assigned and not resumed, unassigned or moved by a
    /// rebalance since: none of their records may be handed out.
    paused: BTreeSet<TopicPartition>,
}

impl Consumed {
    fn era_of(&self, tp: &TopicPartition) -> (u64, u64) {
        (self.all_era, self.era.get(tp).copied().unwrap_or(0))
    }

    fn rewind(&mut self, tp: &TopicPartition) {
        self.next_era += 1;
        self.era.insert(tp.clone(), self.next_era);
    }

    /// Any partition of this index (a topic named by id only).
    fn rewind_index(&mut self, partition: i32) {
        for t in TOPICS {
            self.rewind(&TopicPartition::new(t, partition));
        }
    }

    fn rewind_all(&mut self) {
        self.all_era += 1;
        self.floors.clear();
    }

    /// A rebalance event: it only revokes or loses partitions this member had and
    /// only assigns ones it had not.
    pub(super) fn on_rebalance(
        &mut self,
        revoked: &[TopicPartition],
        lost: &[TopicPartition],
        assigned: &[TopicPartition],
    ) -> Result<(), CheckFailure> {
        for tp in revoked.iter().chain(lost).chain(assigned) {
            self.paused.remove(tp);
        }
        for tp in revoked.iter().chain(lost) {
            if !self.owned.remove(tp) {
                return Err(fail(format!(
                    "consumer: a rebalance took {tp}, which no rebalance gave (owned {:?})",
                    self.owned
                )));
            }
            self.floors.remove(tp);
            self.rewind(tp);
        }
        for tp in assigned {
            if !self.owned.insert(tp.clone()) {
                return Err(fail(format!(
                    "consumer: a rebalance assigned {tp}, which the member already had"
                )));
            }
            self.rewind(tp);
        }
        Ok(())
    }

    /// The script's commit ended: no offset it reports committed is below one
    /// reported before for that partition (since its last seek or revocation).
    pub(super) fn on_commit_done(
        &mut self,
        result: &Result<OpOutput, ClientError>,
        owned: &BTreeSet<TopicPartition>,
    ) -> Result<(), CheckFailure> {
        let Ok(OpOutput::Committed(results)) = result else {
            return Ok(());
        };
        for r in results {
            let Ok(o) = r.offset else { continue };
            if let Some(f) = self.floors.get(&r.partition)
                && o < *f
            {
                return Err(fail(format!(
                    "consumer: commit of {} reported at {o}, below {f} committed before",
                    r.partition
                )));
            }
            // A group member forgets the floors of partitions it does not hold
            // once a rebalance settles: only those it holds are tracked.
            if !self.group || owned.contains(&r.partition) {
                let f = self.floors.entry(r.partition.clone()).or_insert(o);
                *f = (*f).max(o);
            }
        }
        Ok(())
    }

    /// Checks a request the client wrote: no commit below a floor or naming a
    /// partition twice, no fetch for more than the budget.
    pub(super) fn check_request(
        &self,
        api: ApiKey,
        version: i16,
        body: &Bytes,
    ) -> Result<(), CheckFailure> {
        let mut body = body.clone();
        match api {
            ApiKey::OffsetCommit => {
                let Ok(r) = OffsetCommitRequest::decode(&mut body, version) else {
                    return Ok(()); // checked by the caller
                };
                let mut named = BTreeSet::new();
                for t in &r.topics {
                    for p in &t.partitions {
                        let tp = TopicPartition::new(&*t.name, p.partition_index);
                        // The broker keeps the last of a partition named twice, which
                        // may be below the first (`regress-commit-named-twice`).
                        if !named.insert(tp.clone()) {
                            return Err(fail(format!("consumer: OffsetCommit names {tp} twice")));
                        }
                        if let Some(f) = self.floors.get(&tp)
                            && p.committed_offset < *f
                        {
                            return Err(fail(format!(
                                "consumer: OffsetCommit of {tp} at {}, below {f} committed before",
                                p.committed_offset
                            )));
                        }
                    }
                }
            }
            ApiKey::Fetch => {
                let Ok(r) = FetchRequest::decode(&mut body, version) else {
                    return Ok(());
                };
                // Fetch v0-2 has no max_bytes (it decodes as i32::MAX).
                if version >= 3 && usize::try_from(r.max_bytes).is_ok_and(|m| m > self.budget) {
                    return Err(fail(format!(
                        "consumer: a Fetch for {} bytes, over the {}-byte budget",
                        r.max_bytes, self.budget
                    )));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The consumer's configuration from the input.
pub(super) fn consumer_setup(
    u: &mut Unstructured<'_>,
    config: &mut ClientConfig,
) -> ArbResult<Consumed> {
    let ms = |u: &mut Unstructured<'_>, lo: u64, hi: u64| -> ArbResult<Duration> {
        Ok(Duration::from_millis(u.int_in_range(lo..=hi)?))
    };
    let group = u.arbitrary()?;
    let c = &mut config.consumer;
    c.group_id = Some(if u.ratio(1, 16)? { "" } else { "g" }.into());
    c.auto_offset_reset = *u.choose(&[
        OffsetReset::Earliest,
        OffsetReset::Latest,
        OffsetReset::Error,
    ])?;
    c.isolation = if u.ratio(1, 4)? {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    c.fetch_max_wait = ms(u, 0, 1_000)?;
    c.fetch_min_bytes = u.int_in_range(0..=64)?;
    c.fetch_max_bytes = u.int_in_range(1..=65_536)?;
    c.partition_max_bytes = u.int_in_range(1..=16_384)?;
    c.buffer_max_bytes = u.int_in_range(1..=65_536)?;
    c.fetch_sessions = u.ratio(3, 4)?;
    c.check_crcs = u.ratio(7, 8)?;
    c.group_protocol = if u.arbitrary()? {
        GroupProtocol::Consumer
    } else {
        GroupProtocol::Classic
    };
    c.assignors = match u.int_in_range(0..=4u8)? {
        0 => vec![Assignor::Range],
        1 => vec![Assignor::CooperativeSticky],
        2 => vec![Assignor::RoundRobin],
        3 => Vec::new(),
        _ => vec![Assignor::Range, Assignor::CooperativeSticky],
    };
    c.session_timeout = ms(u, 10, 10_000)?;
    c.heartbeat_interval = ms(u, 1, 3_000)?.max(Duration::from_millis(10));
    c.rebalance_timeout = ms(u, 10, 5_000)?;
    c.group_instance_id = u.ratio(1, 4)?.then(|| "i".to_owned());
    c.group_remote_assignor = u.ratio(1, 8)?.then(|| "uniform".to_owned());
    c.enable_auto_commit = u.ratio(3, 4)?;
    c.auto_commit_interval = ms(u, 10, 2_000)?;
    c.max_poll_interval = ms(u, 10, 5_000)?;
    Ok(Consumed {
        group,
        budget: c.buffer_max_bytes,
        era: BTreeMap::new(),
        all_era: 0,
        next_era: 0,
        last: BTreeMap::new(),
        owned: BTreeSet::new(),
        floors: BTreeMap::new(),
        commit_ops: BTreeSet::new(),
        polled: 0,
        paused: BTreeSet::new(),
    })
}

fn tp(u: &mut Unstructured<'_>) -> ArbResult<TopicPartition> {
    Ok(TopicPartition::new(
        *u.choose(&TOPICS)?,
        u.int_in_range(-1..=3)?,
    ))
}

fn tps(u: &mut Unstructured<'_>) -> ArbResult<Vec<TopicPartition>> {
    (0..u.int_in_range(1..=4)?).map(|_| tp(u)).collect()
}

fn offset(u: &mut Unstructured<'_>) -> ArbResult<Offset> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => Offset::At(u.int_in_range(-1..=20)?),
        1 => Offset::Beginning,
        2 => Offset::End,
        3 => Offset::Timestamp(u.int_in_range(-1..=5)?),
        _ => Offset::Committed,
    })
}

/// A partition the client has, or any.
fn some_partition(u: &mut Unstructured<'_>, s: &State) -> ArbResult<TopicPartition> {
    let assigned = s.client.assignment();
    if !assigned.is_empty() && u.ratio(3, 4)? {
        Ok(assigned[u.choose_index(assigned.len())?].clone())
    } else {
        tp(u)
    }
}

/// One consumer step: poll (most often), assign or subscribe, seek, pause or
/// resume, commit, acknowledge a rebalance, leave, close.
pub(super) fn consume_step(
    u: &mut Unstructured<'_>,
    s: &mut State,
) -> ArbResult<Result<(), CheckFailure>> {
    let now = s.now;
    let Some(group) = s.consumer.as_ref().map(|c| c.group) else {
        return Ok(Ok(()));
    };
    match u.int_in_range(0..=15u8)? {
        0..=5 => {
            let max = u.int_in_range(1..=50)?;
            let before: BTreeSet<TopicPartition> = s.client.assignment().into_iter().collect();
            let records = s.client.poll_records(now, max);
            if records.len() > max {
                return Ok(Err(fail(format!(
                    "consumer: {} records for a poll of at most {max}",
                    records.len()
                ))));
            }
            let Some(c) = s.consumer.as_mut() else {
                return Ok(Ok(()));
            };
            for r in &records {
                let tp = TopicPartition::new(r.topic.clone(), r.partition);
                if !before.contains(&tp) {
                    return Ok(Err(fail(format!(
                        "consumer: a record of {tp} at {}, which is not assigned",
                        r.record.offset
                    ))));
                }
                if c.paused.contains(&tp) {
                    return Ok(Err(fail(format!(
                        "consumer: a record of {tp} at {}, which is paused",
                        r.record.offset
                    ))));
                }
                if c.group && !c.owned.contains(&tp) {
                    return Ok(Err(fail(format!(
                        "consumer: a record of {tp} at {}, which no rebalance gave the member",
                        r.record.offset
                    ))));
                }
                let era = c.era_of(&tp);
                if let Some((e, last)) = c.last.get(&tp)
                    && *e == era
                    && r.record.offset <= *last
                {
                    return Ok(Err(fail(format!(
                        "consumer: {tp} handed out offset {} after {last}, with no seek, reset or rebalance between",
                        r.record.offset
                    ))));
                }
                c.last.insert(tp, (era, r.record.offset));
            }
            c.polled += records.len();
            s.progress += records.len() * 100;
            if !records.is_empty() {
                s.accepted = true;
            }
        }
        6 | 7 => {
            if group {
                let topics: Vec<&str> = (0..u.int_in_range(0..=3)?)
                    .map(|_| u.choose(&TOPICS).copied())
                    .collect::<ArbResult<_>>()?;
                let _ = s.client.subscribe(now, topics);
            } else {
                let parts = tps(u)?;
                let start = offset(u)?;
                if let Some(c) = s.consumer.as_mut() {
                    for p in &parts {
                        c.rewind(p);
                    }
                }
                s.client.assign(now, parts, start);
            }
        }
        8 => {
            let p = some_partition(u, s)?;
            let to = offset(u)?;
            if let Some(c) = s.consumer.as_mut() {
                c.rewind(&p);
                c.floors.remove(&p);
            }
            s.client.seek(now, &p, to);
        }
        9 => {
            let p = some_partition(u, s)?;
            let assigned = s.client.assignment().contains(&p);
            if u.arbitrary()? {
                if let Some(c) = s.consumer.as_mut()
                    && assigned
                {
                    c.paused.insert(p.clone());
                }
                s.client.pause(now, &[p]);
            } else {
                if let Some(c) = s.consumer.as_mut() {
                    c.paused.remove(&p);
                }
                s.client.resume(now, &[p]);
            }
        }
        10 | 11 => {
            let offsets = if u.arbitrary()? {
                None
            } else {
                let mut os = Vec::new();
                for _ in 0..u.int_in_range(1..=3)? {
                    os.push((some_partition(u, s)?, u.int_in_range(-1..=30)?));
                }
                Some(os)
            };
            let op = s.client.commit(now, offsets);
            started(s, op);
        }
        12 | 13 => s.client.ack_rebalance(now),
        14 => {
            if group {
                if u.ratio(1, 4)? {
                    let op = s.client.leave_group(now);
                    started(s, op);
                }
            } else {
                let parts = tps(u)?;
                if let Some(c) = s.consumer.as_mut() {
                    for p in &parts {
                        c.rewind(p);
                        c.paused.remove(p);
                    }
                }
                s.client.unassign(now, &parts);
            }
        }
        _ => {
            if u.ratio(1, 4)? {
                s.closed = true;
                if let Some(c) = s.consumer.as_mut() {
                    c.rewind_all();
                    c.owned.clear();
                    c.paused.clear();
                }
                s.client.close(now);
            }
        }
    }
    Ok(drain(s))
}

/// An operation the consumer script started (commit, leave): it has no deadline of
/// its own, but must end once the brokers fall silent.
fn started(s: &mut State, op: OpId) {
    if let Some(c) = s.consumer.as_mut() {
        c.commit_ops.insert(op);
    }
    s.ops.insert(
        op,
        super::Started {
            deadline: s.now + Duration::from_secs(365 * 24 * 3600),
            cancelled: false,
            ended: false,
        },
    );
}

/// A group error code: mostly none, else the coordinator, membership and
/// rebalance errors, or an arbitrary one.
fn group_code(u: &mut Unstructured<'_>) -> ArbResult<i16> {
    // NONE; COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
    // ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL, UNKNOWN_MEMBER_ID,
    // REBALANCE_IN_PROGRESS, GROUP_AUTHORIZATION_FAILED, MEMBER_ID_REQUIRED,
    // FENCED_INSTANCE_ID, FENCED_MEMBER_EPOCH, UNRELEASED_INSTANCE_ID,
    // UNSUPPORTED_ASSIGNOR, STALE_MEMBER_EPOCH, UNKNOWN_TOPIC_OR_PARTITION.
    const CODES: [i16; 24] = [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 14, 15, 16, 22, 23, 25, 27, 30, 79, 82, 110, 111, 112, 113, 3,
    ];
    if u.ratio(1, 32)? {
        u.arbitrary()
    } else {
        Ok(*u.choose(&CODES)?)
    }
}

fn throttle(u: &mut Unstructured<'_>) -> ArbResult<i32> {
    Ok(if u.ratio(1, 8)? {
        u.int_in_range(0..=2_000)?
    } else {
        0
    })
}

/// A topic id the metadata answers may have given (they use 0 to 2).
fn topic_id(u: &mut Unstructured<'_>) -> ArbResult<Uuid> {
    Ok(Uuid::from_u128(u.int_in_range(0..=3)?))
}

/// A partition index, mostly small and valid, sometimes not.
fn index(u: &mut Unstructured<'_>) -> ArbResult<i32> {
    if u.ratio(1, 16)? {
        u.arbitrary()
    } else {
        u.int_in_range(-1..=4)
    }
}

fn versioned<T: Message>(version: i16, m: &T) -> Bytes {
    let mut out = BytesMut::new();
    out.extend_from_slice(&version.to_be_bytes());
    let _ = m.encode(&mut out, version);
    out.freeze()
}

/// An answer for the consumer: the `client` target's for Metadata, ListOffsets and
/// FindCoordinator; the consumer's own for Fetch, OffsetForLeaderEpoch and the group
/// APIs. Answers that may move a position back start a new era for the partitions
/// they name.
pub(super) fn answer_consumer(
    u: &mut Unstructured<'_>,
    id: i32,
    api: ApiKey,
    version: i16,
    body: &Bytes,
    c: &mut Consumed,
) -> ArbResult<Vec<u8>> {
    if api == ApiKey::ApiVersions || u.ratio(1, 8)? {
        return answer(u, id, api, version);
    }
    let mut req = body.clone();
    let mut out = BytesMut::new();
    let id = if u.ratio(1, 64)? { u.arbitrary()? } else { id };
    let _ = ResponseHeader {
        correlation_id: id,
        ..Default::default()
    }
    .encode(&mut out, api.response_header_version(version));
    let encoded = match api {
        ApiKey::Metadata => match MetadataRequest::decode(&mut req, version) {
            Ok(r) => metadata(u, &r)?.encode(&mut out, version).is_ok(),
            Err(_) => false,
        },
        ApiKey::ListOffsets => match ListOffsetsRequest::decode(&mut req, version) {
            Ok(r) => list_offsets(u, &r)?.encode(&mut out, version).is_ok(),
            Err(_) => false,
        },
        ApiKey::FindCoordinator => match FindCoordinatorRequest::decode(&mut req, version) {
            Ok(r) => find_coordinator(u, &r)?.encode(&mut out, version).is_ok(),
            Err(_) => false,
        },
        ApiKey::Fetch => match FetchRequest::decode(&mut req, version) {
            Ok(r) => fetch(u, &r, c)?.encode(&mut out, version).is_ok(),
            Err(_) => false,
        },
        ApiKey::OffsetForLeaderEpoch => {
            match OffsetForLeaderEpochRequest::decode(&mut req, version) {
                Ok(r) => epoch_ends(u, &r, c)?.encode(&mut out, version).is_ok(),
                Err(_) => false,
            }
        }
        ApiKey::JoinGroup => match JoinGroupRequest::decode(&mut req, version) {
            Ok(r) => join(u, &r)?.encode(&mut out, version).is_ok(),
            Err(_) => false,
        },
        ApiKey::SyncGroup => match SyncGroupRequest::decode(&mut req, version) {
            Ok(r) => sync(u, &r)?.encode(&mut out, version).is_ok(),
            Err(_) => false,
        },
        ApiKey::Heartbeat => HeartbeatResponse {
            throttle_time_ms: throttle(u)?,
            error_code: group_code(u)?,
            ..Default::default()
        }
        .encode(&mut out, version)
        .is_ok(),
        ApiKey::LeaveGroup => match LeaveGroupRequest::decode(&mut req, version) {
            Ok(r) => LeaveGroupResponse {
                throttle_time_ms: throttle(u)?,
                error_code: group_code(u)?,
                members: r
                    .members
                    .iter()
                    .map(|m| {
                        Ok(leave_group_response::MemberResponse {
                            member_id: m.member_id.clone(),
                            group_instance_id: m.group_instance_id.clone(),
                            error_code: group_code(u)?,
                            ..Default::default()
                        })
                    })
                    .collect::<ArbResult<_>>()?,
                ..Default::default()
            }
            .encode(&mut out, version)
            .is_ok(),
            Err(_) => false,
        },
        ApiKey::OffsetFetch => match OffsetFetchRequest::decode(&mut req, version) {
            Ok(r) => offset_fetch(u, &r, version)?
                .encode(&mut out, version)
                .is_ok(),
            Err(_) => false,
        },
        ApiKey::OffsetCommit => match OffsetCommitRequest::decode(&mut req, version) {
            Ok(r) => offset_commit(u, &r)?.encode(&mut out, version).is_ok(),
            Err(_) => false,
        },
        ApiKey::ConsumerGroupHeartbeat => {
            match ConsumerGroupHeartbeatRequest::decode(&mut req, version) {
                Ok(r) => heartbeat(u, &r)?.encode(&mut out, version).is_ok(),
                Err(_) => false,
            }
        }
        _ => return respond(u, id, api, version, body, false),
    };
    if !encoded {
        return answer(u, id, api, version);
    }
    Ok(framed(&out))
}

/// One to three batches from near `offset`, each after the last, sometimes
/// transactional, in another leader epoch or with a byte flipped.
fn batches(u: &mut Unstructured<'_>, offset: i64) -> ArbResult<Bytes> {
    let mut buf = BytesMut::new();
    let mut at = offset.saturating_add(u.int_in_range(-3..=2)?);
    for _ in 0..u.int_in_range(1..=3)? {
        let config = BatchConfig {
            base_offset: at,
            partition_leader_epoch: u.int_in_range(-1..=3)?,
            producer_id: u.int_in_range(-1..=2)?,
            transactional: u.ratio(1, 8)?,
            ..BatchConfig::default()
        };
        let mut builder = BatchBuilder::new(&mut buf, &config);
        let n = u.int_in_range(0..=4)?;
        for i in 0..n {
            let _ = builder.append(&NewRecord::new(i).value(take(u, 8)?));
        }
        let _ = builder.finish();
        // Gaps (compacted logs) and overlaps (a broker resending) both happen.
        at = at.saturating_add(n + u.int_in_range(-1..=2)?);
    }
    if !buf.is_empty() && u.ratio(1, 16)? {
        let i = u.choose_index(buf.len())?;
        buf[i] ^= u.int_in_range(1..=255)?;
    }
    if !buf.is_empty() && u.ratio(1, 16)? {
        // A partial batch at the end, as a broker cutting at max_bytes sends.
        let keep = u.choose_index(buf.len())?;
        buf.truncate(keep.max(1));
    }
    Ok(buf.freeze())
}

fn fetch(u: &mut Unstructured<'_>, r: &FetchRequest, c: &mut Consumed) -> ArbResult<FetchResponse> {
    let mut responses = Vec::new();
    for t in &r.topics {
        let mut partitions = Vec::new();
        for p in &t.partitions {
            if u.ratio(1, 16)? {
                continue; // nothing new for it (an incremental session leaves it out)
            }
            let records = match u.int_in_range(0..=7u8)? {
                0 => None,
                1 => Some(Bytes::copy_from_slice(take(u, 64)?)),
                2 => Some(batch(u, p.fetch_offset)?),
                _ => Some(batches(u, p.fetch_offset)?),
            };
            // OFFSET_OUT_OF_RANGE, NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_ID,
            // FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, CORRUPT_MESSAGE.
            let error_code = if u.ratio(3, 4)? {
                0
            } else if u.ratio(1, 2)? {
                *u.choose(&[1i16, 6, 100, 74, 75, 2])?
            } else {
                code(u)?
            };
            let diverging = u.ratio(1, 16)?;
            let partition_index = if u.ratio(1, 32)? {
                index(u)?
            } else {
                p.partition
            };
            if error_code == 1 || diverging {
                if t.topic.is_empty() {
                    c.rewind_index(partition_index);
                } else {
                    c.rewind(&TopicPartition::new(&*t.topic, partition_index));
                }
            }
            partitions.push(fetch_response::PartitionData {
                partition_index,
                error_code,
                high_watermark: u.int_in_range(-1..=100)?,
                last_stable_offset: u.int_in_range(-1..=100)?,
                log_start_offset: u.int_in_range(-1..=100)?,
                diverging_epoch: fetch_response::EpochEndOffset {
                    epoch: if diverging {
                        u.int_in_range(0..=3)?
                    } else {
                        -1
                    },
                    end_offset: if diverging {
                        u.int_in_range(-1..=50)?
                    } else {
                        -1
                    },
                    ..Default::default()
                },
                aborted_transactions: if u.ratio(1, 8)? {
                    Some(
                        (0..u.int_in_range(0..=2)?)
                            .map(|_| {
                                Ok(fetch_response::AbortedTransaction {
                                    producer_id: u.int_in_range(-1..=2)?,
                                    first_offset: u.int_in_range(-1..=30)?,
                                    ..Default::default()
                                })
                            })
                            .collect::<ArbResult<_>>()?,
                    )
                } else {
                    None
                },
                preferred_read_replica: if u.ratio(1, 32)? { node(u)? } else { -1 },
                records,
                ..Default::default()
            });
        }
        responses.push(fetch_response::FetchableTopicResponse {
            topic: t.topic.clone(),
            topic_id: if u.ratio(1, 32)? {
                topic_id(u)?
            } else {
                t.topic_id
            },
            partitions,
            ..Default::default()
        });
    }
    // A session keeps answering for partitions the request did not name.
    if u.ratio(1, 8)? {
        let name = *u.choose(&TOPICS)?;
        let partition_index = index(u)?;
        let error_code = if u.ratio(1, 2)? { 0 } else { 1 };
        if error_code == 1 {
            c.rewind_index(partition_index);
        }
        let offset = u.int_in_range(0..=20)?;
        responses.push(fetch_response::FetchableTopicResponse {
            topic: if r.topics.first().is_some_and(|t| t.topic.is_empty()) {
                ByteString::default()
            } else {
                name.into()
            },
            topic_id: topic_id(u)?,
            partitions: vec![fetch_response::PartitionData {
                partition_index,
                error_code,
                high_watermark: 100,
                last_stable_offset: -1,
                log_start_offset: -1,
                preferred_read_replica: -1,
                records: Some(batches(u, offset)?),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    Ok(FetchResponse {
        throttle_time_ms: throttle(u)?,
        // FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH.
        error_code: if u.ratio(1, 16)? {
            *u.choose(&[70i16, 71])?
        } else if u.ratio(1, 32)? {
            code(u)?
        } else {
            0
        },
        session_id: match u.int_in_range(0..=7u8)? {
            0 => 0,
            1 => u.arbitrary()?,
            2 => r.session_id.wrapping_add(1),
            _ if r.session_id != 0 => r.session_id,
            _ => u.int_in_range(1..=3)?,
        },
        responses,
        ..Default::default()
    })
}

fn epoch_ends(
    u: &mut Unstructured<'_>,
    r: &OffsetForLeaderEpochRequest,
    c: &mut Consumed,
) -> ArbResult<OffsetForLeaderEpochResponse> {
    let mut topics = Vec::new();
    for t in &r.topics {
        let mut partitions = Vec::new();
        for p in &t.partitions {
            c.rewind(&TopicPartition::new(&*t.topic, p.partition));
            partitions.push(offset_for_leader_epoch_response::EpochEndOffset {
                error_code: if u.ratio(3, 4)? { 0 } else { code(u)? },
                partition: if u.ratio(1, 32)? {
                    index(u)?
                } else {
                    p.partition
                },
                leader_epoch: u.int_in_range(-1..=3)?,
                end_offset: u.int_in_range(-1..=50)?,
                ..Default::default()
            });
        }
        topics.push(
            offset_for_leader_epoch_response::OffsetForLeaderTopicResult {
                topic: t.topic.clone(),
                partitions,
                ..Default::default()
            },
        );
    }
    Ok(OffsetForLeaderEpochResponse {
        throttle_time_ms: throttle(u)?,
        topics,
        ..Default::default()
    })
}

fn member_id(u: &mut Unstructured<'_>, asked: &str) -> ArbResult<ByteString> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => ByteString::default(),
        1 => "m2".into(),
        2 => String::from_utf8_lossy(take(u, 6)?).into_owned().into(),
        _ if asked.is_empty() => "m1".into(),
        _ => asked.into(),
    })
}

fn join(u: &mut Unstructured<'_>, r: &JoinGroupRequest) -> ArbResult<JoinGroupResponse> {
    let me = member_id(u, &r.member_id)?;
    let protocol = match r.protocols.len() {
        0 => None,
        n if u.ratio(15, 16)? => Some(r.protocols[u.choose_index(n)?].name.clone()),
        _ => Some("nope".into()),
    };
    let leader = if u.arbitrary()? {
        me.clone()
    } else {
        "m2".into()
    };
    let mut members = Vec::new();
    if leader == me {
        let mine = r
            .protocols
            .iter()
            .find(|p| Some(&p.name) == protocol.as_ref())
            .map(|p| p.metadata.clone())
            .unwrap_or_default();
        members.push(join_group_response::JoinGroupResponseMember {
            member_id: me.clone(),
            group_instance_id: r.group_instance_id.clone(),
            metadata: mine.clone(),
            ..Default::default()
        });
        for i in 0..u.int_in_range(0..=2)? {
            members.push(join_group_response::JoinGroupResponseMember {
                member_id: format!("o{i}").into(),
                group_instance_id: None,
                metadata: if u.ratio(3, 4)? {
                    mine.clone()
                } else {
                    Bytes::copy_from_slice(take(u, 24)?)
                },
                ..Default::default()
            });
        }
    }
    Ok(JoinGroupResponse {
        throttle_time_ms: throttle(u)?,
        error_code: group_code(u)?,
        generation_id: if u.ratio(1, 16)? {
            u.arbitrary()?
        } else {
            u.int_in_range(-1..=4)?
        },
        protocol_type: Some("consumer".into()),
        protocol_name: protocol,
        leader,
        skip_assignment: false,
        member_id: me,
        members,
        ..Default::default()
    })
}

/// A consumer protocol assignment: partitions of known and unknown topics, or junk.
fn assignment(u: &mut Unstructured<'_>) -> ArbResult<Bytes> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => Bytes::new(),
        1 => Bytes::copy_from_slice(take(u, 24)?),
        _ => {
            let topics = (0..u.int_in_range(0..=3)?)
                .map(|_| {
                    Ok(consumer_protocol_assignment::TopicPartition {
                        topic: if u.ratio(1, 8)? {
                            "zz".into()
                        } else {
                            (*u.choose(&TOPICS)?).into()
                        },
                        partitions: (0..u.int_in_range(0..=3)?)
                            .map(|_| index(u))
                            .collect::<ArbResult<_>>()?,
                    })
                })
                .collect::<ArbResult<_>>()?;
            let a = ConsumerProtocolAssignment {
                assigned_partitions: topics,
                user_data: None,
            };
            versioned(u.int_in_range(0..=3)?, &a)
        }
    })
}

fn sync(u: &mut Unstructured<'_>, r: &SyncGroupRequest) -> ArbResult<SyncGroupResponse> {
    // Usually what the leader (this member, if it was) asked for itself.
    let own = r
        .assignments
        .iter()
        .find(|a| a.member_id == r.member_id)
        .map(|a| a.assignment.clone());
    let assignment = match own {
        Some(a) if u.ratio(3, 4)? => a,
        _ => assignment(u)?,
    };
    Ok(SyncGroupResponse {
        throttle_time_ms: throttle(u)?,
        error_code: group_code(u)?,
        protocol_type: r.protocol_type.clone(),
        protocol_name: if u.ratio(1, 16)? {
            Some("nope".into())
        } else {
            r.protocol_name.clone()
        },
        assignment,
        ..Default::default()
    })
}

fn committed(u: &mut Unstructured<'_>) -> ArbResult<(i64, i16)> {
    let offset = if u.ratio(1, 4)? {
        -1
    } else {
        u.int_in_range(0..=40)?
    };
    let error = if u.ratio(7, 8)? { 0 } else { group_code(u)? };
    Ok((offset, error))
}

fn offset_fetch(
    u: &mut Unstructured<'_>,
    r: &OffsetFetchRequest,
    version: i16,
) -> ArbResult<OffsetFetchResponse> {
    if version >= 8 {
        let groups = r
            .groups
            .iter()
            .map(|g| {
                let topics = g
                    .topics
                    .iter()
                    .flatten()
                    .map(|t| {
                        Ok(offset_fetch_response::OffsetFetchResponseTopics {
                            name: t.name.clone(),
                            partitions: t
                                .partition_indexes
                                .iter()
                                .map(|p| {
                                    let (committed_offset, error_code) = committed(u)?;
                                    Ok(offset_fetch_response::OffsetFetchResponsePartitions {
                                        partition_index: if u.ratio(1, 32)? {
                                            index(u)?
                                        } else {
                                            *p
                                        },
                                        committed_offset,
                                        committed_leader_epoch: u.int_in_range(-1..=3)?,
                                        metadata: text(u)?,
                                        error_code,
                                        ..Default::default()
                                    })
                                })
                                .collect::<ArbResult<_>>()?,
                            ..Default::default()
                        })
                    })
                    .collect::<ArbResult<_>>()?;
                Ok(offset_fetch_response::OffsetFetchResponseGroup {
                    group_id: g.group_id.clone(),
                    topics,
                    error_code: if u.ratio(7, 8)? { 0 } else { group_code(u)? },
                    ..Default::default()
                })
            })
            .collect::<ArbResult<_>>()?;
        return Ok(OffsetFetchResponse {
            throttle_time_ms: throttle(u)?,
            groups,
            ..Default::default()
        });
    }
    let topics = r
        .topics
        .iter()
        .flatten()
        .map(|t| {
            Ok(offset_fetch_response::OffsetFetchResponseTopic {
                name: t.name.clone(),
                partitions: t
                    .partition_indexes
                    .iter()
                    .map(|p| {
                        let (committed_offset, error_code) = committed(u)?;
                        Ok(offset_fetch_response::OffsetFetchResponsePartition {
                            partition_index: *p,
                            committed_offset,
                            committed_leader_epoch: -1,
                            metadata: None,
                            error_code,
                            ..Default::default()
                        })
                    })
                    .collect::<ArbResult<_>>()?,
                ..Default::default()
            })
        })
        .collect::<ArbResult<_>>()?;
    Ok(OffsetFetchResponse {
        throttle_time_ms: throttle(u)?,
        topics,
        error_code: if u.ratio(7, 8)? { 0 } else { group_code(u)? },
        ..Default::default()
    })
}

fn offset_commit(
    u: &mut Unstructured<'_>,
    r: &OffsetCommitRequest,
) -> ArbResult<OffsetCommitResponse> {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            Ok(offset_commit_response::OffsetCommitResponseTopic {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| {
                        Ok(offset_commit_response::OffsetCommitResponsePartition {
                            partition_index: if u.ratio(1, 32)? {
                                index(u)?
                            } else {
                                p.partition_index
                            },
                            error_code: group_code(u)?,
                            ..Default::default()
                        })
                    })
                    .collect::<ArbResult<_>>()?,
                ..Default::default()
            })
        })
        .collect::<ArbResult<_>>()?;
    Ok(OffsetCommitResponse {
        throttle_time_ms: throttle(u)?,
        topics,
        ..Default::default()
    })
}

/// A KIP-848 heartbeat answer: the member id echoed or made up, an epoch that goes
/// up, stays, goes back or is arbitrary, an assignment of topic ids (some unknown).
fn heartbeat(
    u: &mut Unstructured<'_>,
    r: &ConsumerGroupHeartbeatRequest,
) -> ArbResult<ConsumerGroupHeartbeatResponse> {
    let member_epoch = match u.int_in_range(0..=7u8)? {
        0 => r.member_epoch,
        1 => r.member_epoch.saturating_sub(u.int_in_range(1..=3)?),
        2 => u.arbitrary()?,
        3 => -1,
        _ => r.member_epoch.saturating_add(1).max(1),
    };
    let assignment = if u.ratio(1, 2)? {
        Some(consumer_group_heartbeat_response::Assignment {
            topic_partitions: (0..u.int_in_range(0..=3)?)
                .map(|_| {
                    Ok(consumer_group_heartbeat_response::TopicPartitions {
                        topic_id: topic_id(u)?,
                        partitions: (0..u.int_in_range(0..=3)?)
                            .map(|_| index(u))
                            .collect::<ArbResult<_>>()?,
                        ..Default::default()
                    })
                })
                .collect::<ArbResult<_>>()?,
            ..Default::default()
        })
    } else {
        None
    };
    Ok(ConsumerGroupHeartbeatResponse {
        throttle_time_ms: throttle(u)?,
        error_code: group_code(u)?,
        error_message: text(u)?,
        member_id: Some(member_id(u, &r.member_id)?),
        member_epoch,
        heartbeat_interval_ms: if u.ratio(1, 16)? {
            u.arbitrary()?
        } else {
            u.int_in_range(0..=3_000)?
        },
        assignment,
        ..Default::default()
    })
}
