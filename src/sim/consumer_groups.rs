//! The KIP-848 consumer group protocol on the simulated coordinator:
//! ConsumerGroupHeartbeat, with the assignment computed on the broker.
//!
//! As in Kafka's `GroupMetadataManager`:
//! - a group has an epoch, bumped whenever a member joins, leaves, is fenced or
//!   changes its subscription, or a subscribed topic is created, deleted or grows;
//! - when the group epoch is ahead of the target assignment's epoch, the group's
//!   assignor (`uniform` or `range`, the one most members ask for) computes a new
//!   target for every member over the subscribed topics' partitions;
//! - each member reconciles towards its target one heartbeat at a time: first it is
//!   told to revoke what it must give up (its epoch stays), and only once a heartbeat
//!   says it no longer owns them does it get the new epoch and the partitions that
//!   are free; a partition still held by its previous owner goes to its new owner
//!   only after that owner revoked it (states Stable, UnrevokedPartitions,
//!   UnreleasedPartitions);
//! - a member that misses its session (`group.consumer.session.timeout.ms`) or does
//!   not revoke within its rebalance timeout is fenced: it is removed, and its next
//!   heartbeat gets UNKNOWN_MEMBER_ID (or FENCED_MEMBER_EPOCH for an epoch the
//!   coordinator never gave);
//! - epoch -1 leaves; a static member (`group.instance.id`) leaving with -2 keeps its
//!   assignment until its session ends, and a restart joining with the same instance
//!   id (epoch 0, a new member id) takes it over with no rebalance; an instance id
//!   still in use by a live member gets UNRELEASED_INSTANCE_ID, and the old member id
//!   FENCED_INSTANCE_ID.
//!
//! Every change is written to `__consumer_offsets` as Kafka writes it (group epoch,
//! subscribed topics, member metadata, target assignment, current assignment).
//!
//! Not simulated: regular-expression subscriptions (refused with
//! INVALID_REGULAR_EXPRESSION), rack-aware assignment, and members of the classic
//! protocol inside a consumer group (a group is one or the other; an empty group
//! changes protocol).

use super::ConnectionId;
use super::assignors::{Assignment, Assignor, AssignorMember, assign};
use super::coordinator::{CoordinatorRecord, Outbox};
use crate::messages::consumer_offsets::{
    ConsumerGroupCurrentMemberAssignmentValue, ConsumerGroupMemberMetadataValue,
    ConsumerGroupPartitionMetadataValue, ConsumerGroupTargetAssignmentMemberValue,
    consumer_group_current_member_assignment_value as current_value,
    consumer_group_partition_metadata_value as partition_value,
    consumer_group_target_assignment_member_value as target_value,
};
use crate::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, ErrorCode,
    consumer_group_describe_response as cgd, consumer_group_heartbeat_response as cgh,
};
use crate::wire::{ByteString, Uuid};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The member epoch that asks to leave the group.
const LEAVE: i32 = -1;
/// The member epoch of a static member that leaves for a while (it may come back).
const LEAVE_STATIC: i32 = -2;

/// How the KIP-848 coordinator is set up.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerSettings {
    /// `group.consumer.session.timeout.ms`.
    pub session_timeout: Duration,
    /// `group.consumer.heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `group.consumer.max.size`.
    pub max_size: usize,
    /// The host members' records name.
    pub client_host: String,
    /// Keys the member ids handed out to v0 clients that send none.
    pub secret: u64,
}

/// A member's reconciliation state, with the codes Kafka writes in
/// ConsumerGroupCurrentMemberAssignmentValue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberState {
    /// Must revoke partitions before getting anything new.
    UnrevokedPartitions = 0,
    /// Has the target epoch, but some target partitions are still held by others.
    UnreleasedPartitions = 1,
    /// Holds its whole target.
    Stable = 2,
}

#[derive(Debug, Clone)]
struct Member {
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    /// Subscribed topic names, sorted, without duplicates.
    topics: Vec<String>,
    server_assignor: Option<String>,
    rebalance_timeout: Duration,
    epoch: i32,
    previous_epoch: i32,
    state: MemberState,
    assigned: Assignment,
    pending_revocation: Assignment,
    last_seen: Instant,
    /// When it must have revoked what it was asked to.
    revoke_by: Option<Instant>,
    /// The time of its live entry in `ConsumerGroups::timers`.
    scheduled: Option<Instant>,
}

impl Member {
    fn new(now: Instant) -> Self {
        Member {
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            topics: Vec::new(),
            server_assignor: None,
            rebalance_timeout: Duration::from_secs(300),
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            last_seen: now,
            revoke_by: None,
            scheduled: None,
        }
    }

    /// When it is fenced unless it heartbeats (or revokes) first.
    fn deadline(&self, session: Duration) -> Instant {
        let expiry = self.last_seen + session;
        self.revoke_by.map_or(expiry, |r| r.min(expiry))
    }

    /// What the current assignment record holds, to tell whether it changed.
    fn current(&self) -> (i32, i32, MemberState, Assignment, Assignment) {
        (
            self.epoch,
            self.previous_epoch,
            self.state,
            self.assigned.clone(),
            self.pending_revocation.clone(),
        )
    }

    fn metadata_value(&self, host: &str) -> ConsumerGroupMemberMetadataValue {
        ConsumerGroupMemberMetadataValue {
            instance_id: self.instance_id.clone().map(ByteString::from),
            rack_id: self.rack_id.clone().map(ByteString::from),
            client_id: ByteString::from(self.client_id.clone()),
            client_host: ByteString::from(host.to_owned()),
            subscribed_topic_names: self
                .topics
                .iter()
                .map(|t| ByteString::from(t.clone()))
                .collect(),
            subscribed_topic_regex: None,
            rebalance_timeout_ms: i32::try_from(self.rebalance_timeout.as_millis())
                .unwrap_or(i32::MAX),
            server_assignor: self.server_assignor.clone().map(ByteString::from),
            classic_member_metadata: None,
            ..Default::default()
        }
    }

    fn current_value(&self) -> ConsumerGroupCurrentMemberAssignmentValue {
        let list = |a: &Assignment| -> Vec<current_value::TopicPartitions> {
            a.iter()
                .map(|(t, ps)| current_value::TopicPartitions {
                    topic_id: *t,
                    partitions: ps.iter().copied().collect(),
                    ..Default::default()
                })
                .collect()
        };
        ConsumerGroupCurrentMemberAssignmentValue {
            member_epoch: self.epoch,
            previous_member_epoch: self.previous_epoch,
            state: self.state as i8,
            assigned_partitions: list(&self.assigned),
            partitions_pending_revocation: list(&self.pending_revocation),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Group {
    epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    /// Static members: the member id of each instance id.
    static_members: BTreeMap<String, String>,
    /// Each member's target assignment.
    target: BTreeMap<String, Assignment>,
    /// Who holds each partition (assigned, or not yet revoked).
    owners: BTreeMap<(Uuid, i32), String>,
    /// How many members subscribe to each topic.
    subscriptions: BTreeMap<String, usize>,
    /// The subscribed topics as of the last epoch bump: name to (id, partitions).
    metadata: BTreeMap<String, (Uuid, i32)>,
}

/// Every KIP-848 consumer group the cluster coordinates, by group id.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerGroups {
    groups: BTreeMap<String, Group>,
    settings: ConsumerSettings,
    /// When each member must be looked at: (time, group, member); an entry whose
    /// time is not its member's `scheduled` is stale and skipped.
    timers: BTreeSet<(Instant, String, String)>,
    /// Records for `__consumer_offsets`, until the cluster writes them.
    records: Outbox,
    /// Groups that became empty (the cluster removes those without offsets).
    emptied: Vec<String>,
    next_member: u64,
}

/// What a heartbeat needs to know besides its body.
pub(crate) struct HeartbeatContext<'a> {
    pub version: i16,
    pub client_id: &'a str,
    pub now: Instant,
    /// A topic's id and partition count, by name (`None`: no such topic).
    pub topic: &'a dyn Fn(&str) -> Option<(Uuid, i32)>,
}

/// The heartbeat's answer: the member, its epoch and, when it must be told, its
/// assignment.
fn answer(member_id: &str, epoch: i32, interval: Duration) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse {
        member_id: Some(ByteString::from(member_id.to_owned())),
        member_epoch: epoch,
        heartbeat_interval_ms: i32::try_from(interval.as_millis()).unwrap_or(i32::MAX),
        ..Default::default()
    }
}

/// A request's owned partitions as an assignment.
fn owned_of(r: &ConsumerGroupHeartbeatRequest) -> Option<Assignment> {
    r.topic_partitions.as_ref().map(|tps| {
        let mut out = Assignment::new();
        for t in tps {
            out.entry(t.topic_id)
                .or_default()
                .extend(t.partitions.iter().copied());
        }
        out.retain(|_, ps| !ps.is_empty());
        out
    })
}

/// Whether `a` holds any partition of `b`.
fn overlaps(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|other| !ps.is_disjoint(other)))
}

/// Whether every partition of `a` is in `b`.
fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(t, ps)| b.get(t).is_some_and(|other| ps.is_subset(other)))
}

fn pairs(a: &Assignment) -> impl Iterator<Item = (Uuid, i32)> + '_ {
    a.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
}

/// Kafka's checks of a heartbeat before anything changes.
fn validate(
    r: &ConsumerGroupHeartbeatRequest,
    version: i16,
) -> Result<(), (ErrorCode, &'static str)> {
    let invalid = |why| Err((ErrorCode::INVALID_REQUEST, why));
    if r.group_id.is_empty() {
        return Err((ErrorCode::INVALID_GROUP_ID, "GroupId can't be empty."));
    }
    if r.instance_id.as_ref().is_some_and(|i| i.is_empty()) {
        return invalid("InstanceId can't be empty.");
    }
    if r.rack_id.as_ref().is_some_and(|i| i.is_empty()) {
        return invalid("RackId can't be empty.");
    }
    let needs_id = version >= 1 || r.member_epoch != 0;
    if needs_id && r.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    match r.member_epoch {
        0 => {
            if r.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if r.topic_partitions.as_ref().is_some_and(|t| !t.is_empty()) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if r.subscribed_topic_names.is_none() && r.subscribed_topic_regex.is_none() {
                return invalid(
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                );
            }
        }
        LEAVE_STATIC if r.instance_id.is_none() => {
            return invalid("InstanceId can't be null when leaving as a static member.");
        }
        e if e < LEAVE_STATIC => return invalid("MemberEpoch is invalid."),
        _ => {}
    }
    if r.rebalance_timeout_ms < -1 {
        return invalid("RebalanceTimeoutMs is invalid.");
    }
    if r.subscribed_topic_regex
        .as_ref()
        .is_some_and(|re| !re.is_empty())
    {
        return Err((
            ErrorCode::INVALID_REGULAR_EXPRESSION,
            "The simulated cluster does not evaluate regular expressions; subscribe by name.",
        ));
    }
    if let Some(a) = &r.server_assignor
        && Assignor::named(a).is_none()
    {
        return Err((
            ErrorCode::UNSUPPORTED_ASSIGNOR,
            "Unknown server assignor; the cluster has uniform and range.",
        ));
    }
    Ok(())
}

impl ConsumerGroups {
    pub(crate) fn new(settings: ConsumerSettings) -> Self {
        ConsumerGroups {
            groups: BTreeMap::new(),
            settings,
            timers: BTreeSet::new(),
            records: Vec::new(),
            emptied: Vec::new(),
            next_member: 0,
        }
    }

    /// How many groups there are.
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether `group` is a consumer group with members.
    pub(crate) fn has_members(&self, group: &str) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// Records for `__consumer_offsets` made since last asked.
    pub(crate) fn take_records(&mut self) -> Outbox {
        std::mem::take(&mut self.records)
    }

    /// Groups that became empty since last asked.
    pub(crate) fn take_emptied(&mut self) -> Vec<String> {
        std::mem::take(&mut self.emptied)
    }

    /// Parked requests never wait on a consumer group; nothing to wake.
    pub(crate) fn take_woken(&mut self) -> Vec<ConnectionId> {
        Vec::new()
    }

    /// Removes `group` if it has no members, with the tombstones Kafka writes.
    pub(crate) fn remove_if_empty(&mut self, group: &str) {
        if self.groups.get(group).is_some_and(|g| g.members.is_empty()) {
            self.groups.remove(group);
            self.records.extend(
                [
                    CoordinatorRecord::consumer_group_target_metadata(group, None),
                    CoordinatorRecord::consumer_group_partition_metadata(group, None),
                    CoordinatorRecord::consumer_group_metadata(group, None),
                ]
                .into_iter()
                .flatten(),
            );
        }
    }

    /// The coordinator of the groups `moved` selects changed: their members'
    /// sessions start afresh, as when Kafka's new coordinator loads a group.
    pub(crate) fn coordinator_moved(&mut self, moved: &dyn Fn(&str) -> bool, now: Instant) {
        let ids: Vec<String> = self.groups.keys().filter(|g| moved(g)).cloned().collect();
        for id in ids {
            let members: Vec<String> = match self.groups.get_mut(&id) {
                Some(g) => {
                    for m in g.members.values_mut() {
                        m.last_seen = now;
                    }
                    g.members.keys().cloned().collect()
                }
                None => continue,
            };
            for m in members {
                self.schedule(&id, &m);
            }
        }
    }

    /// The next time a member must be looked at without a heartbeat.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _, _)| *t)
    }

    /// Fences the members whose session ended, or who did not revoke in time.
    pub(crate) fn handle_timers(&mut self, now: Instant) {
        while let Some((at, group, member)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let session = self.settings.session_timeout;
            let Some(m) = self
                .groups
                .get_mut(&group)
                .and_then(|g| g.members.get_mut(&member))
            else {
                continue;
            };
            if m.scheduled != Some(at) {
                continue;
            }
            m.scheduled = None;
            if m.deadline(session) <= now {
                self.fence(&group, &member);
            } else {
                self.schedule(&group, &member);
            }
        }
    }

    /// Puts `member`'s timer at its deadline.
    fn schedule(&mut self, group: &str, member: &str) {
        let session = self.settings.session_timeout;
        let Some(m) = self
            .groups
            .get_mut(group)
            .and_then(|g| g.members.get_mut(member))
        else {
            return;
        };
        let at = m.deadline(session) + Duration::from_nanos(1);
        if m.scheduled == Some(at) {
            return;
        }
        if let Some(old) = m.scheduled.replace(at) {
            self.timers
                .remove(&(old, group.to_owned(), member.to_owned()));
        }
        self.timers
            .insert((at, group.to_owned(), member.to_owned()));
    }

    /// A member id for a v0 client that sent none (from v1 the client makes it).
    fn new_member_id(&mut self) -> String {
        use base64::Engine as _;
        self.next_member += 1;
        let mut z = self.settings.secret ^ self.next_member.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut bytes = [0u8; 16];
        for chunk in bytes.chunks_mut(8) {
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_be_bytes());
        }
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// ConsumerGroupHeartbeat: joins, heartbeats, reconciles, leaves.
    pub(crate) fn heartbeat(
        &mut self,
        r: &ConsumerGroupHeartbeatRequest,
        ctx: &HeartbeatContext<'_>,
    ) -> ConsumerGroupHeartbeatResponse {
        let result = validate(r, ctx.version)
            .map_err(|(e, why)| (e, Some(why)))
            .and_then(|()| match r.member_epoch {
                LEAVE | LEAVE_STATIC => self.leave(r, ctx.now).map_err(|e| (e, None)),
                _ => self.join_or_heartbeat(r, ctx).map_err(|e| (e, None)),
            });
        match result {
            Ok(resp) => resp,
            Err((e, why)) => ConsumerGroupHeartbeatResponse {
                error_code: e.code(),
                error_message: Some(ByteString::from(
                    why.or(e.message()).unwrap_or_default().to_owned(),
                )),
                ..Default::default()
            },
        }
    }

    /// The member a request names: by instance id for a static member that says it,
    /// else by member id.
    fn resolve(g: &Group, r: &ConsumerGroupHeartbeatRequest) -> Result<String, ErrorCode> {
        match &r.instance_id {
            Some(instance) => match g.static_members.get(&**instance) {
                None => Err(ErrorCode::UNKNOWN_MEMBER_ID),
                Some(id) if *id != *r.member_id => Err(ErrorCode::FENCED_INSTANCE_ID),
                Some(id) => Ok(id.clone()),
            },
            None if g.members.contains_key(&*r.member_id) => Ok(r.member_id.to_string()),
            None => Err(ErrorCode::UNKNOWN_MEMBER_ID),
        }
    }

    /// Epoch -1 (leave) or -2 (a static member leaving for a while).
    fn leave(
        &mut self,
        r: &ConsumerGroupHeartbeatRequest,
        now: Instant,
    ) -> Result<ConsumerGroupHeartbeatResponse, ErrorCode> {
        let interval = self.settings.heartbeat_interval;
        let group = r.group_id.to_string();
        let g = self
            .groups
            .get_mut(&group)
            .ok_or(ErrorCode::UNKNOWN_MEMBER_ID)?;
        let id = Self::resolve(g, r)?;
        if r.member_epoch == LEAVE {
            self.fence(&group, &id);
            return Ok(answer(&r.member_id, LEAVE, interval));
        }
        // Static: keep the assignment (the instance may come back), release what
        // was being revoked, and keep the session running.
        let Some(m) = g.members.get_mut(&id) else {
            return Err(ErrorCode::UNKNOWN_MEMBER_ID);
        };
        m.last_seen = now;
        m.previous_epoch = m.epoch;
        m.epoch = LEAVE_STATIC;
        m.revoke_by = None;
        let pending = std::mem::take(&mut m.pending_revocation);
        let value = m.current_value();
        for tp in pairs(&pending) {
            if g.owners.get(&tp) == Some(&id) {
                g.owners.remove(&tp);
            }
        }
        self.records
            .extend(CoordinatorRecord::consumer_group_current_member(
                &group,
                &id,
                Some(&value),
            ));
        self.schedule(&group, &id);
        Ok(answer(&r.member_id, LEAVE_STATIC, interval))
    }

    /// Removes `member` from `group` (left, or fenced): its partitions are free, the
    /// group epoch goes up, and its records get tombstones.
    fn fence(&mut self, group: &str, member: &str) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let Some(m) = g.members.remove(member) else {
            return;
        };
        if let Some(at) = m.scheduled {
            self.timers
                .remove(&(at, group.to_owned(), member.to_owned()));
        }
        for tp in pairs(&m.assigned).chain(pairs(&m.pending_revocation)) {
            if g.owners.get(&tp).map(String::as_str) == Some(member) {
                g.owners.remove(&tp);
            }
        }
        for t in &m.topics {
            unsubscribe(&mut g.subscriptions, t);
        }
        if let Some(i) = &m.instance_id
            && g.static_members.get(i).map(String::as_str) == Some(member)
        {
            g.static_members.remove(i);
        }
        g.target.remove(member);
        g.epoch += 1;
        self.records.extend(
            [
                CoordinatorRecord::consumer_group_current_member(group, member, None),
                CoordinatorRecord::consumer_group_target_member(group, member, None),
                CoordinatorRecord::consumer_group_member(group, member, None),
                CoordinatorRecord::consumer_group_metadata(group, Some(g.epoch)),
            ]
            .into_iter()
            .flatten(),
        );
        if g.members.is_empty() {
            self.emptied.push(group.to_owned());
        }
    }

    fn join_or_heartbeat(
        &mut self,
        r: &ConsumerGroupHeartbeatRequest,
        ctx: &HeartbeatContext<'_>,
    ) -> Result<ConsumerGroupHeartbeatResponse, ErrorCode> {
        let now = ctx.now;
        let group_id = r.group_id.to_string();
        let joining = r.member_epoch == 0;
        if !self.groups.contains_key(&group_id) {
            if !joining {
                return Err(ErrorCode::UNKNOWN_MEMBER_ID);
            }
            self.groups.insert(group_id.clone(), Group::default());
        }
        let generated = (joining && r.member_id.is_empty()).then(|| self.new_member_id());
        let host = self.settings.client_host.clone();
        let max_size = self.settings.max_size;
        let Some(g) = self.groups.get_mut(&group_id) else {
            return Err(ErrorCode::UNKNOWN_MEMBER_ID);
        };
        let member_id = generated.unwrap_or_else(|| r.member_id.to_string());
        let mut records: Outbox = Vec::new();
        let mut bump = false;
        let owned = owned_of(r);

        // Which member, and is it new (or a restarted static member)?
        let static_old = r
            .instance_id
            .as_ref()
            .and_then(|i| g.static_members.get(&**i).cloned());
        let existed = g.members.contains_key(&member_id);
        if joining {
            match &static_old {
                Some(old) => {
                    // Only an instance that left with -2 may be taken over.
                    let old_epoch = g.members.get(old).map_or(LEAVE_STATIC, |m| m.epoch);
                    if old_epoch != LEAVE_STATIC {
                        return Err(ErrorCode::UNRELEASED_INSTANCE_ID);
                    }
                    replace_static(g, &group_id, old, &member_id, now, &mut records);
                }
                _ if existed => {
                    // A rejoin with epoch 0: the member starts over owning nothing.
                    if let Some(m) = g.members.get_mut(&member_id) {
                        let released: Vec<(Uuid, i32)> = pairs(&m.assigned)
                            .chain(pairs(&m.pending_revocation))
                            .collect();
                        m.assigned.clear();
                        m.pending_revocation.clear();
                        m.epoch = 0;
                        m.state = MemberState::Stable;
                        m.revoke_by = None;
                        for tp in released {
                            if g.owners.get(&tp) == Some(&member_id) {
                                g.owners.remove(&tp);
                            }
                        }
                    }
                }
                _ => {
                    if g.members.len() >= max_size {
                        return Err(ErrorCode::GROUP_MAX_SIZE_REACHED);
                    }
                    g.members.insert(member_id.clone(), Member::new(now));
                    bump = true;
                }
            }
        } else {
            if let Some(instance) = &r.instance_id {
                match g.static_members.get(&**instance) {
                    None => return Err(ErrorCode::UNKNOWN_MEMBER_ID),
                    Some(id) if *id != member_id => return Err(ErrorCode::FENCED_INSTANCE_ID),
                    Some(_) => {}
                }
            }
            let m = g
                .members
                .get(&member_id)
                .ok_or(ErrorCode::UNKNOWN_MEMBER_ID)?;
            // Kafka's throwIfMemberEpochIsInvalid: a lower epoch is the previous one
            // of a member that missed the answer that bumped it, if it owns no more
            // than it was given.
            if r.member_epoch > m.epoch {
                return Err(ErrorCode::FENCED_MEMBER_EPOCH);
            }
            if r.member_epoch < m.epoch
                && (r.member_epoch != m.previous_epoch
                    || !owned.as_ref().is_some_and(|o| is_subset(o, &m.assigned)))
            {
                return Err(ErrorCode::FENCED_MEMBER_EPOCH);
            }
        }

        // The member's own fields, from what the request says (null: unchanged).
        let Some(m) = g.members.get_mut(&member_id) else {
            return Err(ErrorCode::UNKNOWN_MEMBER_ID);
        };
        let before = m.metadata_value(&host);
        let before_current = m.current();
        let assigned_before = m.assigned.clone();
        m.last_seen = now;
        m.client_id = ctx.client_id.to_owned();
        if let Some(i) = &r.instance_id {
            m.instance_id = Some(i.to_string());
        }
        if let Some(rack) = &r.rack_id {
            m.rack_id = Some(rack.to_string());
        }
        if r.rebalance_timeout_ms >= 0 {
            m.rebalance_timeout = Duration::from_millis(r.rebalance_timeout_ms as u64);
        }
        if let Some(a) = &r.server_assignor {
            m.server_assignor = Some(a.to_string());
        }
        let mut resubscribed = None;
        if let Some(names) = &r.subscribed_topic_names {
            let mut topics: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            topics.sort();
            topics.dedup();
            if topics != m.topics {
                resubscribed = Some((std::mem::replace(&mut m.topics, topics.clone()), topics));
            }
        }
        let instance = m.instance_id.clone();
        let member_value = m.metadata_value(&host);
        if let Some((old, new)) = resubscribed {
            for t in &old {
                unsubscribe(&mut g.subscriptions, t);
            }
            for t in new {
                *g.subscriptions.entry(t).or_default() += 1;
            }
            bump = true;
        }
        if let Some(i) = instance {
            g.static_members.insert(i, member_id.clone());
        }
        if member_value != before || !existed {
            records.extend(CoordinatorRecord::consumer_group_member(
                &group_id,
                &member_id,
                Some(&member_value),
            ));
        }

        // The subscribed topics as they are now: a topic created, deleted or grown
        // is a new group epoch.
        let metadata: BTreeMap<String, (Uuid, i32)> = g
            .subscriptions
            .keys()
            .filter_map(|t| (ctx.topic)(t).map(|found| (t.clone(), found)))
            .collect();
        if metadata != g.metadata {
            g.metadata = metadata;
            records.extend(CoordinatorRecord::consumer_group_partition_metadata(
                &group_id,
                Some(&partition_metadata(&g.metadata)),
            ));
            bump = true;
        }
        if bump {
            g.epoch += 1;
            records.extend(CoordinatorRecord::consumer_group_metadata(
                &group_id,
                Some(g.epoch),
            ));
        }
        if g.epoch > g.assignment_epoch {
            new_target(g, &group_id, &mut records);
        }

        // Reconcile this member towards its target.
        reconcile(g, &member_id, owned.as_ref(), now);
        let Some(m) = g.members.get(&member_id) else {
            return Err(ErrorCode::UNKNOWN_MEMBER_ID);
        };
        if m.current() != before_current {
            records.extend(CoordinatorRecord::consumer_group_current_member(
                &group_id,
                &member_id,
                Some(&m.current_value()),
            ));
        }
        let full = r.rebalance_timeout_ms != -1
            && (r.subscribed_topic_names.is_some() || r.subscribed_topic_regex.is_some())
            && r.topic_partitions.is_some();
        let mut resp = answer(&member_id, m.epoch, self.settings.heartbeat_interval);
        if joining || full || m.assigned != assigned_before {
            resp.assignment = Some(cgh::Assignment {
                topic_partitions: m
                    .assigned
                    .iter()
                    .map(|(t, ps)| cgh::TopicPartitions {
                        topic_id: *t,
                        partitions: ps.iter().copied().collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            });
        }
        self.records.append(&mut records);
        self.schedule(&group_id, &member_id);
        Ok(resp)
    }

    /// Whether an OffsetCommit (of this `version`) or, `transactional`, a
    /// TxnOffsetCommit by `member` at `epoch` may go ahead in `group` (`None`: not a
    /// consumer group). Kafka's `ConsumerGroup.validateOffsetCommit`.
    pub(crate) fn check_commit(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
        version: i16,
        transactional: bool,
    ) -> Option<Result<(), ErrorCode>> {
        let g = self.groups.get(group)?;
        Some((|| {
            // The admin client, or a consumer that assigns partitions itself, may
            // commit for an empty group; a transaction without a member's identity
            // (an older client) for any group.
            if epoch < 0 && (g.members.is_empty() || transactional && member.is_empty()) {
                return Ok(());
            }
            let m = g.members.get(member).ok_or(ErrorCode::UNKNOWN_MEMBER_ID)?;
            if version < 9 && !transactional {
                return Err(ErrorCode::UNSUPPORTED_VERSION);
            }
            if epoch != m.epoch {
                return Err(ErrorCode::STALE_MEMBER_EPOCH);
            }
            Ok(())
        })())
    }

    /// Whether an OffsetFetch (v9+) by `member` at `epoch` may read `group`'s
    /// offsets: epoch -1 is the admin client's; others must be the member's.
    pub(crate) fn check_fetch(
        &self,
        group: &str,
        member: Option<&str>,
        epoch: i32,
    ) -> Result<(), ErrorCode> {
        let Some(g) = self.groups.get(group) else {
            return Ok(());
        };
        if epoch == -1 {
            return Ok(());
        }
        let m = member
            .and_then(|id| g.members.get(id))
            .ok_or(ErrorCode::UNKNOWN_MEMBER_ID)?;
        if m.epoch != epoch {
            return Err(ErrorCode::STALE_MEMBER_EPOCH);
        }
        Ok(())
    }

    /// ConsumerGroupDescribe of one group (`None`: not a consumer group); `name`
    /// gives a topic's name by id.
    pub(crate) fn describe(
        &self,
        group: &str,
        name: &dyn Fn(Uuid) -> Option<String>,
    ) -> Option<cgd::DescribedGroup> {
        let g = self.groups.get(group)?;
        let list = |a: &Assignment| cgd::Assignment {
            topic_partitions: a
                .iter()
                .map(|(t, ps)| cgd::TopicPartitions {
                    topic_id: *t,
                    topic_name: ByteString::from(name(*t).unwrap_or_default()),
                    partitions: ps.iter().copied().collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let empty = Assignment::new();
        Some(cgd::DescribedGroup {
            group_id: ByteString::from(group.to_owned()),
            group_state: ByteString::from(state_name(g).to_owned()),
            group_epoch: g.epoch,
            assignment_epoch: g.assignment_epoch,
            assignor_name: ByteString::from(group_assignor(g).name().to_owned()),
            members: g
                .members
                .iter()
                .map(|(id, m)| cgd::Member {
                    member_id: ByteString::from(id.clone()),
                    instance_id: m.instance_id.clone().map(ByteString::from),
                    rack_id: m.rack_id.clone().map(ByteString::from),
                    member_epoch: m.epoch,
                    client_id: ByteString::from(m.client_id.clone()),
                    client_host: ByteString::from(self.settings.client_host.clone()),
                    subscribed_topic_names: m
                        .topics
                        .iter()
                        .map(|t| ByteString::from(t.clone()))
                        .collect(),
                    subscribed_topic_regex: None,
                    assignment: list(&m.assigned),
                    target_assignment: list(g.target.get(id).unwrap_or(&empty)),
                    member_type: 1,
                    ..Default::default()
                })
                .collect(),
            authorized_operations: i32::MIN,
            ..Default::default()
        })
    }

    /// Every group id with its state as ListGroups names it.
    pub(crate) fn listing(&self) -> Vec<(String, &'static str)> {
        self.groups
            .iter()
            .map(|(id, g)| (id.clone(), state_name(g)))
            .collect()
    }

    /// What the coordinator holds for `group`; `name` gives a topic's name by id.
    pub(crate) fn summary(
        &self,
        group: &str,
        name: &dyn Fn(Uuid) -> Option<String>,
    ) -> Option<super::GroupSummary> {
        let g = self.groups.get(group)?;
        Some(super::GroupSummary {
            protocol: super::GroupProtocol::Consumer,
            state: state_name(g).to_owned(),
            epoch: g.epoch,
            members: g
                .members
                .iter()
                .map(|(id, m)| {
                    let mut assigned: Vec<(String, i32)> = pairs(&m.assigned)
                        .map(|(t, p)| (name(t).unwrap_or_default(), p))
                        .collect();
                    assigned.sort();
                    super::MemberSummary {
                        member_id: id.clone(),
                        instance_id: m.instance_id.clone(),
                        epoch: m.epoch,
                        assigned,
                    }
                })
                .collect(),
        })
    }
}

fn unsubscribe(subscriptions: &mut BTreeMap<String, usize>, topic: &str) {
    if let Some(n) = subscriptions.get_mut(topic) {
        *n -= 1;
        if *n == 0 {
            subscriptions.remove(topic);
        }
    }
}

/// Kafka's group states: Empty, Assigning (a new target is due), Reconciling (some
/// member has not reached it), Stable.
fn state_name(g: &Group) -> &'static str {
    if g.members.is_empty() {
        "Empty"
    } else if g.epoch > g.assignment_epoch {
        "Assigning"
    } else if g
        .members
        .values()
        .any(|m| m.epoch != g.assignment_epoch || m.state != MemberState::Stable)
    {
        "Reconciling"
    } else {
        "Stable"
    }
}

/// The assignor most members ask for (ties: the first by name), `uniform` if none
/// asks.
fn group_assignor(g: &Group) -> Assignor {
    let mut votes: BTreeMap<Assignor, usize> = BTreeMap::new();
    for m in g.members.values() {
        if let Some(a) = m.server_assignor.as_deref().and_then(Assignor::named) {
            *votes.entry(a).or_default() += 1;
        }
    }
    votes
        .iter()
        .max_by_key(|(a, n)| (**n, std::cmp::Reverse(**a)))
        .map_or(Assignor::Uniform, |(a, _)| *a)
}

fn partition_metadata(
    metadata: &BTreeMap<String, (Uuid, i32)>,
) -> ConsumerGroupPartitionMetadataValue {
    ConsumerGroupPartitionMetadataValue {
        topics: metadata
            .iter()
            .map(|(name, (id, n))| partition_value::TopicMetadata {
                topic_id: *id,
                topic_name: ByteString::from(name.clone()),
                num_partitions: *n,
                partition_metadata: Vec::new(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A restarted static member (`new_id`) takes the place of `old_id`, which left
/// with epoch -2: it gets the old member's assignment and target, and the group
/// does not rebalance.
fn replace_static(
    g: &mut Group,
    group: &str,
    old_id: &str,
    new_id: &str,
    now: Instant,
    records: &mut Outbox,
) {
    let Some(old) = g.members.remove(old_id) else {
        return;
    };
    let mut member = old.clone();
    member.epoch = 0;
    member.previous_epoch = 0;
    member.state = MemberState::Stable;
    member.pending_revocation.clear();
    member.revoke_by = None;
    member.scheduled = None;
    member.last_seen = now;
    if old_id != new_id {
        records.extend(
            [
                CoordinatorRecord::consumer_group_current_member(group, old_id, None),
                CoordinatorRecord::consumer_group_target_member(group, old_id, None),
                CoordinatorRecord::consumer_group_member(group, old_id, None),
            ]
            .into_iter()
            .flatten(),
        );
    }
    for tp in pairs(&old.assigned) {
        g.owners.insert(tp, new_id.to_owned());
    }
    for tp in pairs(&old.pending_revocation) {
        if g.owners.get(&tp).map(String::as_str) == Some(old_id) {
            g.owners.remove(&tp);
        }
    }
    if let Some(t) = g.target.remove(old_id) {
        let value = target_value_of(&t);
        g.target.insert(new_id.to_owned(), t);
        records.extend(CoordinatorRecord::consumer_group_target_member(
            group,
            new_id,
            Some(&value),
        ));
    }
    if let Some(i) = &old.instance_id {
        g.static_members.insert(i.clone(), new_id.to_owned());
    }
    g.members.insert(new_id.to_owned(), member);
}

fn target_value_of(a: &Assignment) -> ConsumerGroupTargetAssignmentMemberValue {
    ConsumerGroupTargetAssignmentMemberValue {
        topic_partitions: a
            .iter()
            .map(|(t, ps)| target_value::TopicPartition {
                topic_id: *t,
                partitions: ps.iter().copied().collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Computes the target assignment for the group's epoch, writing the members' whose
/// target changed and the new assignment epoch.
fn new_target(g: &mut Group, group: &str, records: &mut Outbox) {
    let assignor = group_assignor(g);
    let ids: Vec<&String> = g.members.keys().collect();
    let inputs: Vec<AssignorMember<'_>> = ids
        .iter()
        .map(|id| AssignorMember {
            topics: &g.members[*id].topics,
            current: g.target.get(*id),
        })
        .collect();
    let targets = assign(assignor, &inputs, &g.metadata);
    let mut changed = Vec::new();
    for (id, t) in ids.iter().zip(targets) {
        if g.target.get(*id) != Some(&t) {
            changed.push(((*id).clone(), t));
        }
    }
    for (id, t) in changed {
        records.extend(CoordinatorRecord::consumer_group_target_member(
            group,
            &id,
            Some(&target_value_of(&t)),
        ));
        g.target.insert(id, t);
    }
    g.assignment_epoch = g.epoch;
    records.extend(CoordinatorRecord::consumer_group_target_metadata(
        group,
        Some(g.assignment_epoch),
    ));
}

/// Kafka's `CurrentAssignmentBuilder`: moves `member` one step towards its target.
/// `owned`: the partitions its heartbeat says it holds (`None`: not said).
fn reconcile(g: &mut Group, member: &str, owned: Option<&Assignment>, now: Instant) {
    let Some(m) = g.members.get(member) else {
        return;
    };
    if m.epoch == LEAVE_STATIC {
        return;
    }
    match m.state {
        MemberState::UnrevokedPartitions => {
            // Revoked once its heartbeat no longer lists them.
            if !no_longer_owns(owned, &m.pending_revocation) {
                return;
            }
            let pending = m.pending_revocation.clone();
            release(g, member, &pending);
            if let Some(m) = g.members.get_mut(member) {
                m.pending_revocation.clear();
                m.revoke_by = None;
            }
            next_assignment(g, member, owned, now);
        }
        MemberState::UnreleasedPartitions => next_assignment(g, member, owned, now),
        MemberState::Stable if m.epoch != g.assignment_epoch => {
            next_assignment(g, member, owned, now);
        }
        MemberState::Stable => {}
    }
}

/// Whether a heartbeat that lists the partitions it holds (`owned`; `None`: it
/// does not say) holds none of `parts`: their revocation is done.
fn no_longer_owns(owned: Option<&Assignment>, parts: &Assignment) -> bool {
    owned.is_some_and(|o| !overlaps(o, parts))
}

/// Frees those of `parts` that `member` owns.
fn release(g: &mut Group, member: &str, parts: &Assignment) {
    for tp in pairs(parts) {
        if g.owners.get(&tp).map(String::as_str) == Some(member) {
            g.owners.remove(&tp);
        }
    }
}

/// The member's next assignment: revoke what is no longer its own (keeping its
/// epoch), or else take the new epoch with every target partition that is free.
/// Partitions to revoke that the heartbeat says the member no longer owns
/// (`owned`, when the request lists them) are released at once, as Kafka's
/// `ownsRevokedPartitions` lets the member move on: a static member that rejoins
/// at epoch 0 owning nothing takes the new epoch in that same answer, instead of
/// waiting at epoch 0 for a revocation it cannot acknowledge (its next heartbeat,
/// at epoch 0, may not list partitions).
fn next_assignment(g: &mut Group, member: &str, owned: Option<&Assignment>, now: Instant) {
    let empty = Assignment::new();
    let target = g.target.get(member).unwrap_or(&empty).clone();
    let epoch = g.assignment_epoch;
    let Some(m) = g.members.get_mut(member) else {
        return;
    };
    let mut keep = Assignment::new();
    let mut revoke = Assignment::new();
    for (t, p) in pairs(&m.assigned) {
        let dest = if target.get(&t).is_some_and(|ps| ps.contains(&p)) {
            &mut keep
        } else {
            &mut revoke
        };
        dest.entry(t).or_default().insert(p);
    }
    if !revoke.is_empty() && no_longer_owns(owned, &revoke) {
        release(g, member, &revoke);
        revoke.clear();
    }
    let Some(m) = g.members.get_mut(member) else {
        return;
    };
    if !revoke.is_empty() {
        m.assigned = keep;
        m.pending_revocation = revoke;
        m.state = MemberState::UnrevokedPartitions;
        m.revoke_by = Some(now + m.rebalance_timeout);
        return;
    }
    let mut unreleased = false;
    for (t, p) in pairs(&target) {
        match g.owners.get(&(t, p)) {
            Some(owner) if owner != member => unreleased = true,
            _ => {
                g.owners.insert((t, p), member.to_owned());
                keep.entry(t).or_default().insert(p);
            }
        }
    }
    m.assigned = keep;
    if m.epoch != epoch {
        m.previous_epoch = m.epoch;
        m.epoch = epoch;
    }
    m.state = if unreleased {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    };
}
