//! The classic group protocol: JoinGroup (with the KIP-394 member id round),
//! SyncGroup (the leader runs the assignor), Heartbeat, LeaveGroup; eager and
//! cooperative (KIP-429) rebalancing; static membership (KIP-345).
//!
//! The phases, as in the Java client's `AbstractCoordinator`:
//! `Unjoined` → (revoke what must go before joining) → `Joining` → (leader:
//! `Assigning`, waiting for the metadata of every member's topics) → `Syncing` →
//! `Stable` (heartbeats every `heartbeat_interval`). A heartbeat answered
//! REBALANCE_IN_PROGRESS sends the member back to `Unjoined`; an eager member then
//! revokes everything (committing first) before it joins, a cooperative member joins
//! with what it owns and, after the SyncGroup, revokes what the new assignment takes
//! away and joins once more.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::assignor::{self, Assignor, MemberSubscription};
use super::call::{Call, CallReply, leave_request};
use super::commit::Overtaken;
use super::reconcile::Why;
use super::{GroupEnv, GroupMember, Proto, Settings, flatten};
use crate::client::ClientError;
use crate::client::consumer::{Consumer, TopicPartition};
use crate::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, ErrorCode, HeartbeatRequest,
    JoinGroupRequest, JoinGroupResponse, SyncGroupRequest, consumer_protocol_assignment,
    consumer_protocol_subscription, join_group_request, sync_group_request,
};
use crate::wire::{self, Message};

/// The consumer protocol version this member writes (Kafka 3.5+: owned partitions,
/// generation, rack).
const CONSUMER_PROTOCOL_VERSION: i16 = 3;

#[derive(Debug)]
enum Phase {
    /// Must (re)join, after the revocations that go first.
    Unjoined,
    Joining {
        id: u64,
        sent: Instant,
    },
    /// The leader waits for the metadata of every member's topics.
    Assigning {
        join: Box<JoinGroupResponse>,
        sent: Instant,
    },
    Syncing {
        id: u64,
        sent: Instant,
    },
    Stable,
}

#[derive(Debug)]
pub(super) struct Classic {
    pub member_id: String,
    pub generation: i32,
    pub leader: bool,
    pub protocol: Option<String>,
    phase: Phase,
    /// A rejoin is wanted (the coordinator rebalances, the subscription changed, a
    /// cooperative revocation finished).
    pub rejoin: bool,
    /// The partitions were lost; the member drops them before it joins again.
    lost: bool,
    heartbeat_at: Option<Instant>,
    /// The heartbeat in flight: its id, generation and send time.
    heartbeat: Option<(u64, i32, Instant)>,
    /// When the last answered membership request was sent (the coordinator saw the
    /// member alive no earlier than that).
    last_ok: Option<Instant>,
    /// No join before this (a backoff after an error).
    join_after: Option<Instant>,
    failures: u32,
    /// The leader's view of partition counts when it assigned.
    snapshot: BTreeMap<Arc<str>, i32>,
    /// The assignment being applied revoked something (cooperative: rejoin after).
    revoking: bool,
    /// Rejoin after the first assignment whatever it revoked (cooperative; see
    /// [`rejoin_after_first_assignment`](Self::rejoin_after_first_assignment)).
    follow_up: bool,
    /// The JoinGroup whose answer made the member's current generation.
    pub joined_by: Option<u64>,
}

impl Classic {
    pub(super) fn new() -> Self {
        Classic {
            member_id: String::new(),
            generation: -1,
            leader: false,
            protocol: None,
            phase: Phase::Unjoined,
            rejoin: false,
            lost: false,
            heartbeat_at: None,
            heartbeat: None,
            last_ok: None,
            join_after: None,
            failures: 0,
            snapshot: BTreeMap::new(),
            revoking: false,
            follow_up: false,
            joined_by: None,
        }
    }

    /// Rejoins once more after the first assignment (cooperative only), as a
    /// member that revoked partitions does.
    pub(super) fn rejoin_after_first_assignment(&mut self) {
        self.follow_up = true;
    }

    pub(super) fn is_stable(&self) -> bool {
        matches!(self.phase, Phase::Stable) && !self.rejoin && !self.lost
    }

    /// Heartbeats go out while the member holds a generation and is not joining.
    fn heartbeats(&self) -> bool {
        self.generation >= 0
            && !self.member_id.is_empty()
            && matches!(self.phase, Phase::Stable | Phase::Unjoined)
    }

    /// When the next heartbeat is due, if the member heartbeats now.
    pub(super) fn heartbeat_due(&self) -> Option<Instant> {
        self.heartbeat_at
            .filter(|_| self.heartbeats() && self.heartbeat.is_none())
    }

    /// When [`drive_classic`](GroupMember::drive_classic) has something to do;
    /// `busy` is whether a transition is in progress. While one is, lost
    /// partitions and a join wait for it to end (its deadline, or the commit or
    /// acknowledgement that ends it, wakes the member): their timers, already
    /// passed, would only wake the client again and again at the same instant.
    pub(super) fn next_deadline(&self, settings: &Settings, busy: bool) -> Option<Instant> {
        if self.lost && busy {
            return None;
        }
        let heartbeat = self.heartbeat_due();
        let join = match self.phase {
            Phase::Unjoined if !busy => self.join_after,
            _ => None,
        };
        let expiry = self
            .last_ok
            .filter(|_| matches!(self.phase, Phase::Stable))
            .map(|t| t + settings.session_timeout);
        [heartbeat, join, expiry].into_iter().flatten().min()
    }

    /// The JoinGroup on its way, if one is.
    pub(super) fn joining(&self) -> Option<u64> {
        match self.phase {
            Phase::Joining { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The member is in the generation that JoinGroup `o.join` made, newer than the
    /// one its commit carried.
    pub(super) fn joined_after(&self, o: &Overtaken) -> bool {
        self.joined_by == Some(o.join) && self.generation > o.generation
    }

    /// That JoinGroup overtook the commit: it is still on its way (its answer
    /// will be the next generation) or it made the member's current one.
    pub(super) fn overtook(&self, o: &Overtaken) -> bool {
        self.joining() == Some(o.join) || self.joined_after(o)
    }

    /// The leader between its JoinGroup's answer and its SyncGroup.
    pub(super) fn assigning(&self) -> bool {
        matches!(self.phase, Phase::Assigning { .. })
    }

    /// Between a JoinGroup sent and its SyncGroup answered (the leader's
    /// assignment included: a commit held for this rebalance must wait for the
    /// SyncGroup, the group is not stable before).
    pub(super) fn in_rebalance(&self) -> bool {
        matches!(
            self.phase,
            Phase::Joining { .. } | Phase::Assigning { .. } | Phase::Syncing { .. }
        )
    }

    /// The membership is gone: the generation (and with `reset_member` the member
    /// id) is forgotten and the partitions dropped before joining again.
    fn lose(&mut self, reset_member: bool) {
        self.generation = -1;
        self.joined_by = None;
        if reset_member {
            self.member_id.clear();
        }
        self.leader = false;
        self.lost = true;
        self.phase = Phase::Unjoined;
        self.heartbeat = None;
        self.last_ok = None;
    }

    fn backoff(&mut self, now: Instant, settings: &Settings) {
        self.failures += 1;
        let exp = settings
            .retry_backoff
            .saturating_mul(1 << self.failures.min(5))
            .min(Duration::from_secs(1));
        self.join_after = Some(now + exp);
        self.phase = Phase::Unjoined;
    }

    pub(super) fn transition_done(&mut self, why: Why, _now: Instant, settings: &Settings) {
        let follow_up = why == Why::Assignment && std::mem::take(&mut self.follow_up);
        if why == Why::Assignment && (self.revoking || follow_up) && settings.cooperative() {
            // KIP-429: partitions were given up; the follow-up rebalance hands them
            // to their new owners.
            self.rejoin = true;
        }
        self.revoking = false;
    }

    /// The LeaveGroup this member sends (none before it has a member id; none for a
    /// static member on close).
    pub(super) fn leave_call(&self, settings: &Settings, closing: bool) -> Option<Call> {
        if self.member_id.is_empty() || (closing && settings.instance_id.is_some()) {
            return None;
        }
        Some(Call::Leave(leave_request(
            &settings.group_id,
            &self.member_id,
            settings.instance_id.as_deref(),
        )))
    }
}

/// `version` then `message`, as the consumer protocol writes its blobs.
fn versioned<T: Message>(version: i16, message: &T) -> Bytes {
    let mut out = version.to_be_bytes().to_vec();
    // Our own messages at a version we define: encoding cannot fail.
    if let Err(e) = message.encode_into(&mut out, version) {
        tracing::warn!(error = %e, "cannot encode a consumer protocol blob");
    }
    Bytes::from(out)
}

/// Partitions grouped by topic, for the consumer protocol.
fn by_topic(parts: &BTreeSet<TopicPartition>) -> BTreeMap<Arc<str>, Vec<i32>> {
    let mut out: BTreeMap<Arc<str>, Vec<i32>> = BTreeMap::new();
    for tp in parts {
        out.entry(tp.topic.clone()).or_default().push(tp.partition);
    }
    out
}

/// A member's subscription as the leader reads it; `None` if it does not decode.
fn read_subscription(
    member_id: &str,
    instance_id: Option<&str>,
    metadata: &Bytes,
) -> Option<MemberSubscription> {
    let mut buf = metadata.clone();
    let s =
        wire::decode_versioned_forward_compatible::<ConsumerProtocolSubscription>(&mut buf).ok()?;
    let mut topics: Vec<Arc<str>> = s.data.topics.iter().map(|t| Arc::from(&**t)).collect();
    topics.sort();
    topics.dedup();
    let owned = s
        .data
        .owned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| TopicPartition::new(&*t.topic, *p))
        })
        .collect();
    // The generation of the owned partitions: the v2 field, or (older Java
    // cooperative-sticky members) four bytes of user data.
    let generation = if s.version >= 2 {
        s.data.generation_id
    } else {
        s.data
            .user_data
            .as_ref()
            .and_then(|u| <[u8; 4]>::try_from(&u[..]).ok())
            .map_or(-1, i32::from_be_bytes)
    };
    Some(MemberSubscription {
        member_id: member_id.to_owned(),
        instance_id: instance_id.map(str::to_owned),
        topics,
        owned,
        generation,
    })
}

impl GroupMember {
    /// This member's JoinGroup metadata.
    fn subscription_bytes(&self, generation: i32) -> Bytes {
        let owned = by_topic(self.reconciler.owned());
        let s = ConsumerProtocolSubscription {
            topics: self.subscription.iter().map(|t| (&**t).into()).collect(),
            user_data: None,
            owned_partitions: owned
                .iter()
                .map(|(t, ps)| consumer_protocol_subscription::TopicPartition {
                    topic: (&**t).into(),
                    partitions: ps.iter().copied().collect(),
                })
                .collect(),
            generation_id: generation,
            rack_id: None,
        };
        versioned(CONSUMER_PROTOCOL_VERSION, &s)
    }

    pub(super) fn drive_classic(
        &mut self,
        now: Instant,
        env: &dyn GroupEnv,
        consumer: &mut Consumer,
    ) {
        let busy = self.reconciler.busy();
        let Proto::Classic(c) = &mut self.proto else {
            return;
        };
        // Our own view of the session: unanswered for a whole session timeout.
        // Checked before lost partitions are handled, so that a loss found here is
        // handled in this same pass: the drive loop sees no progress in a lost
        // flag alone, and the member asked to be woken for a passed join timer.
        if matches!(c.phase, Phase::Stable)
            && c.last_ok
                .is_some_and(|t| t + self.settings.session_timeout <= now)
        {
            tracing::info!(group = %self.settings.group_id, "no heartbeat answered for a session timeout; the partitions are lost");
            c.lose(false);
        }
        // Lost partitions go first, once nothing else is in progress.
        if c.lost {
            if busy {
                return;
            }
            c.lost = false;
            self.transition(now, Why::Lost, &BTreeSet::new(), consumer);
            return;
        }
        if matches!(c.phase, Phase::Stable) && c.leader && !c.rejoin {
            let changed = c
                .snapshot
                .iter()
                .any(|(t, n)| env.partition_count(t).is_some_and(|m| m != *n));
            if changed {
                tracing::info!(group = %self.settings.group_id, "partition counts changed; the leader rebalances");
                c.rejoin = true;
            }
        }
        if matches!(c.phase, Phase::Stable) && c.rejoin && !busy {
            c.phase = Phase::Unjoined;
        }
        self.classic_heartbeat(now);
        let Proto::Classic(c) = &mut self.proto else {
            return;
        };
        match &c.phase {
            Phase::Unjoined => {
                if busy || c.join_after.is_some_and(|t| t > now) {
                    return;
                }
                // What must go before joining: everything (eager), or what the
                // subscription no longer covers (cooperative).
                let keep: BTreeSet<TopicPartition> = if self.settings.cooperative() {
                    let gone = self.unsubscribed_owned();
                    self.reconciler.owned().difference(&gone).cloned().collect()
                } else {
                    BTreeSet::new()
                };
                if keep.len() != self.reconciler.owned().len() {
                    self.transition(now, Why::BeforeJoin, &keep, consumer);
                    return;
                }
                self.send_join(now);
            }
            Phase::Assigning { .. } => {
                if self.metadata_ready(env) {
                    self.assign_and_sync(now, env);
                }
            }
            Phase::Joining { .. } | Phase::Syncing { .. } | Phase::Stable => {}
        }
    }

    /// Sends a heartbeat when one is due. Also while the member leaves, until
    /// its LeaveGroup goes: its commit on revoke may take longer than a session,
    /// and a member that went quiet meanwhile was dropped by the coordinator,
    /// which handed its partitions on before that commit landed (the next owner
    /// read them again; the Java client's heartbeat thread goes on through its
    /// leave's revocation too).
    pub(super) fn classic_heartbeat(&mut self, now: Instant) {
        let Proto::Classic(c) = &mut self.proto else {
            return;
        };
        if c.heartbeats() && c.heartbeat.is_none() && c.heartbeat_at.is_some_and(|t| t <= now) {
            let call = Call::Heartbeat(HeartbeatRequest {
                group_id: (&*self.settings.group_id).into(),
                generation_id: c.generation,
                member_id: c.member_id.as_str().into(),
                group_instance_id: self.settings.instance_id.as_deref().map(Into::into),
                ..Default::default()
            });
            let generation = c.generation;
            c.heartbeat_at = Some(now + self.settings.heartbeat_interval);
            let id = self.send_call(call, Duration::ZERO);
            if let Proto::Classic(c) = &mut self.proto {
                c.heartbeat = Some((id, generation, now));
            }
        }
    }

    fn send_join(&mut self, now: Instant) {
        let Proto::Classic(c) = &mut self.proto else {
            return;
        };
        let generation = c.generation;
        let member_id = c.member_id.clone();
        let metadata = self.subscription_bytes(generation);
        let call = Call::Join(JoinGroupRequest {
            group_id: (&*self.settings.group_id).into(),
            session_timeout_ms: millis(self.settings.session_timeout),
            rebalance_timeout_ms: millis(self.settings.rebalance_timeout),
            member_id: member_id.as_str().into(),
            group_instance_id: self.settings.instance_id.as_deref().map(Into::into),
            protocol_type: "consumer".into(),
            protocols: self
                .settings
                .assignors
                .iter()
                .map(|a| join_group_request::JoinGroupRequestProtocol {
                    name: a.name().into(),
                    metadata: metadata.clone(),
                    ..Default::default()
                })
                .collect(),
            reason: Some("joining the group".into()),
            ..Default::default()
        });
        let id = self.send_call(call, self.settings.rebalance_timeout);
        if let Proto::Classic(c) = &mut self.proto {
            c.rejoin = false;
            c.join_after = None;
            c.phase = Phase::Joining { id, sent: now };
        }
    }

    /// The leader assigns every member's partitions and sends them in SyncGroup.
    pub(super) fn assign_and_sync(&mut self, now: Instant, env: &dyn GroupEnv) {
        let Proto::Classic(c) = &mut self.proto else {
            return;
        };
        let Phase::Assigning { join, sent } = std::mem::replace(&mut c.phase, Phase::Unjoined)
        else {
            return;
        };
        let protocol = join.protocol_name.as_deref().unwrap_or_default().to_owned();
        let assignor = Assignor::from_name(&protocol)
            .filter(|a| self.settings.assignors.contains(a))
            .unwrap_or(self.settings.assignors[0]);
        let members: Vec<MemberSubscription> = join
            .members
            .iter()
            .filter_map(|m| {
                let s = read_subscription(&m.member_id, m.group_instance_id.as_deref(), &m.metadata);
                if s.is_none() {
                    tracing::warn!(member = %m.member_id, "unreadable subscription; the member gets nothing");
                }
                s
            })
            .collect();
        let topics: BTreeSet<Arc<str>> = members.iter().flat_map(|m| m.topics.clone()).collect();
        let counts: BTreeMap<Arc<str>, i32> = topics
            .iter()
            .map(|t| (t.clone(), env.partition_count(t).unwrap_or(0)))
            .collect();
        let count = |t: &str| counts.get(t).copied().unwrap_or(0);
        let mut result = assignor::assign(assignor, &members, &count);
        if self.settings.planted_double_assignment
            && members.len() > 1
            && let Some(last) = members.last()
            && let Some(parts) = result.get_mut(&last.member_id)
        {
            for t in &last.topics {
                let tp = TopicPartition::new(t.clone(), 0);
                if !parts.contains(&tp) {
                    parts.push(tp);
                }
            }
        }
        let assignments = join
            .members
            .iter()
            .map(|m| {
                let parts: BTreeSet<TopicPartition> = result
                    .get(&*m.member_id)
                    .map(|ps| ps.iter().cloned().collect())
                    .unwrap_or_default();
                let a = ConsumerProtocolAssignment {
                    assigned_partitions: by_topic(&parts)
                        .iter()
                        .map(|(t, ps)| consumer_protocol_assignment::TopicPartition {
                            topic: (&**t).into(),
                            partitions: ps.iter().copied().collect(),
                        })
                        .collect(),
                    user_data: None,
                };
                sync_group_request::SyncGroupRequestAssignment {
                    member_id: m.member_id.clone(),
                    assignment: versioned(CONSUMER_PROTOCOL_VERSION, &a),
                    ..Default::default()
                }
            })
            .collect();
        tracing::debug!(group = %self.settings.group_id, %protocol, members = members.len(), "assigned as leader");
        let Proto::Classic(c) = &mut self.proto else {
            return;
        };
        c.snapshot = counts;
        let call = Call::Sync(SyncGroupRequest {
            group_id: (&*self.settings.group_id).into(),
            generation_id: c.generation,
            member_id: c.member_id.as_str().into(),
            group_instance_id: self.settings.instance_id.as_deref().map(Into::into),
            protocol_type: Some("consumer".into()),
            protocol_name: Some(protocol.as_str().into()),
            assignments,
            ..Default::default()
        });
        let _ = sent;
        let id = self.send_call(call, self.settings.session_timeout);
        if let Proto::Classic(c) = &mut self.proto {
            c.phase = Phase::Syncing { id, sent: now };
        }
    }

    /// A follower's SyncGroup (no assignments).
    fn sync_as_follower(&mut self, now: Instant) {
        let Proto::Classic(c) = &mut self.proto else {
            return;
        };
        let call = Call::Sync(SyncGroupRequest {
            group_id: (&*self.settings.group_id).into(),
            generation_id: c.generation,
            member_id: c.member_id.as_str().into(),
            group_instance_id: self.settings.instance_id.as_deref().map(Into::into),
            protocol_type: Some("consumer".into()),
            protocol_name: c.protocol.as_deref().map(Into::into),
            assignments: Vec::new(),
            ..Default::default()
        });
        let id = self.send_call(call, self.settings.session_timeout);
        if let Proto::Classic(c) = &mut self.proto {
            c.phase = Phase::Syncing { id, sent: now };
        }
    }

    pub(super) fn classic_reply(
        &mut self,
        id: u64,
        now: Instant,
        result: Result<CallReply, ClientError>,
        consumer: &mut Consumer,
    ) {
        let settings = self.settings.clone();
        let Proto::Classic(c) = &mut self.proto else {
            return;
        };
        // A heartbeat's answer.
        if let Some((hid, generation, sent)) = c.heartbeat
            && hid == id
        {
            c.heartbeat = None;
            let Ok(reply) = result else { return };
            if generation != c.generation || !matches!(c.phase, Phase::Stable | Phase::Unjoined) {
                return; // from an older generation, or the member is joining already
            }
            match reply.error_code() {
                ErrorCode::NONE => c.last_ok = Some(sent),
                ErrorCode::REBALANCE_IN_PROGRESS => {
                    c.last_ok = Some(sent);
                    c.rejoin = true;
                }
                ErrorCode::ILLEGAL_GENERATION => c.lose(false),
                ErrorCode::UNKNOWN_MEMBER_ID => c.lose(true),
                ErrorCode::FENCED_INSTANCE_ID => {
                    self.fail(
                        ClientError::broker(ApiKey::Heartbeat, ErrorCode::FENCED_INSTANCE_ID, None),
                        consumer,
                    );
                }
                code => tracing::debug!(%code, "heartbeat error"),
            }
            return;
        }
        match &c.phase {
            Phase::Joining { id: jid, sent } if *jid == id => {
                let sent = *sent;
                self.join_reply(id, now, sent, result, &settings, consumer);
                // A JoinGroup that failed (the member backs off) ends this
                // rebalance for the member as a SyncGroup answer does: a commit held
                // for it goes again (and is reported if refused once more), or a
                // coordinator that never answers would hold it forever.
                if matches!(&self.proto, Proto::Classic(c) if c.join_after.is_some()) {
                    self.commits.release();
                }
            }
            Phase::Syncing { id: sid, sent } if *sid == id => {
                let sent = *sent;
                self.sync_reply(now, sent, result, &settings, consumer);
            }
            _ => {} // stale
        }
    }

    fn join_reply(
        &mut self,
        id: u64,
        now: Instant,
        sent: Instant,
        result: Result<CallReply, ClientError>,
        settings: &Settings,
        consumer: &mut Consumer,
    ) {
        let Proto::Classic(c) = &mut self.proto else {
            return;
        };
        let join = match result {
            Ok(CallReply::Join(r, _)) => r,
            Ok(_) => return,
            Err(ClientError::Unsupported(api)) => {
                self.fail(ClientError::Unsupported(api), consumer);
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "JoinGroup failed; joining again");
                c.backoff(now, settings);
                return;
            }
        };
        let code = ErrorCode(join.error_code);
        match code {
            ErrorCode::NONE => {}
            ErrorCode::MEMBER_ID_REQUIRED => {
                // KIP-394: join again at once with the id the coordinator gave.
                c.member_id = join.member_id.to_string();
                c.phase = Phase::Unjoined;
                c.join_after = None;
                return;
            }
            ErrorCode::UNKNOWN_MEMBER_ID => {
                c.lose(true);
                c.backoff(now, settings);
                return;
            }
            ErrorCode::ILLEGAL_GENERATION => {
                c.lose(false);
                c.backoff(now, settings);
                return;
            }
            ErrorCode::REBALANCE_IN_PROGRESS => {
                c.phase = Phase::Unjoined;
                return;
            }
            ErrorCode::FENCED_INSTANCE_ID
            | ErrorCode::INCONSISTENT_GROUP_PROTOCOL
            | ErrorCode::INVALID_SESSION_TIMEOUT
            | ErrorCode::INVALID_GROUP_ID
            | ErrorCode::GROUP_AUTHORIZATION_FAILED
            | ErrorCode::GROUP_MAX_SIZE_REACHED
            | ErrorCode::UNSUPPORTED_VERSION => {
                self.fail(ClientError::broker(ApiKey::JoinGroup, code, None), consumer);
                return;
            }
            _ => {
                tracing::debug!(%code, "JoinGroup error; joining again");
                c.backoff(now, settings);
                return;
            }
        }
        c.failures = 0;
        c.member_id = join.member_id.to_string();
        c.generation = join.generation_id;
        c.joined_by = Some(id);
        c.leader = !join.leader.is_empty() && join.leader == join.member_id;
        c.protocol = join.protocol_name.as_ref().map(|p| p.to_string());
        c.last_ok = Some(sent);
        c.heartbeat = None;
        tracing::debug!(group = %settings.group_id, member = %c.member_id, generation = c.generation, leader = c.leader, "joined");
        if c.leader && !join.skip_assignment {
            let topics: BTreeSet<Arc<str>> = join
                .members
                .iter()
                .filter_map(|m| read_subscription(&m.member_id, None, &m.metadata))
                .flat_map(|m| m.topics)
                .collect();
            c.phase = Phase::Assigning {
                join: Box::new(join),
                sent,
            };
            self.want_metadata(topics.into_iter().collect());
        } else {
            self.sync_as_follower(now);
        }
    }

    fn sync_reply(
        &mut self,
        now: Instant,
        sent: Instant,
        result: Result<CallReply, ClientError>,
        settings: &Settings,
        consumer: &mut Consumer,
    ) {
        // The rebalance is over for this member, well or not: a commit held back
        // by it goes (with the generation the member has now).
        self.commits.release();
        let Proto::Classic(c) = &mut self.proto else {
            return;
        };
        let sync = match result {
            Ok(CallReply::Sync(r)) => r,
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(error = %e, "SyncGroup failed; joining again");
                c.backoff(now, settings);
                return;
            }
        };
        let code = ErrorCode(sync.error_code);
        match code {
            ErrorCode::NONE => {}
            ErrorCode::REBALANCE_IN_PROGRESS => {
                c.phase = Phase::Unjoined;
                return;
            }
            ErrorCode::UNKNOWN_MEMBER_ID => {
                c.lose(true);
                return;
            }
            ErrorCode::ILLEGAL_GENERATION => {
                c.lose(false);
                return;
            }
            ErrorCode::FENCED_INSTANCE_ID
            | ErrorCode::INCONSISTENT_GROUP_PROTOCOL
            | ErrorCode::GROUP_AUTHORIZATION_FAILED => {
                self.fail(ClientError::broker(ApiKey::SyncGroup, code, None), consumer);
                return;
            }
            _ => {
                c.backoff(now, settings);
                return;
            }
        }
        let mut blob = sync.assignment.clone();
        let assigned: BTreeMap<Arc<str>, Vec<i32>> = if blob.is_empty() {
            BTreeMap::new()
        } else {
            match wire::decode_versioned_forward_compatible::<ConsumerProtocolAssignment>(&mut blob)
            {
                Ok(a) => a
                    .data
                    .assigned_partitions
                    .iter()
                    .map(|t| (Arc::from(&*t.topic), t.partitions.iter().copied().collect()))
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable assignment; joining again");
                    c.backoff(now, settings);
                    return;
                }
            }
        };
        let mut target = flatten(&assigned);
        let foreign = target
            .iter()
            .any(|tp| !self.subscription.contains(&tp.topic));
        target.retain(|tp| self.subscription.contains(&tp.topic));
        let Proto::Classic(c) = &mut self.proto else {
            return;
        };
        c.phase = Phase::Stable;
        c.last_ok = Some(sent);
        c.heartbeat_at = Some(now + settings.heartbeat_interval);
        if foreign {
            tracing::warn!("the assignment names topics not subscribed to; joining again");
            c.rejoin = true;
        }
        let revoking = self
            .reconciler
            .owned()
            .iter()
            .any(|tp| !target.contains(tp));
        if let Proto::Classic(c) = &mut self.proto {
            c.revoking = revoking;
        }
        self.transition(now, Why::Assignment, &target, consumer);
    }
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}
