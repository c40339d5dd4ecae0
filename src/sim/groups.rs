//! The classic consumer group protocol on the simulated coordinator: JoinGroup,
//! SyncGroup, Heartbeat and LeaveGroup, enough for real clients' `subscribe()`.
//!
//! A group moves Empty -> PreparingRebalance -> CompletingRebalance -> Stable as in
//! Kafka's `GroupCoordinator`. A JoinGroup waits (parked on its connection) until
//! every known member has rejoined or the rebalance timeout passes; a follower's
//! SyncGroup waits for the leader's. Members whose session timed out are dropped
//! whenever the group is looked at (and parked requests wake at the next expiry), so
//! a dead consumer cannot hold a rebalance for longer than its session.
//!
//! What a client can make the coordinator hold is bounded as in Kafka: session
//! timeouts must lie within the cluster's `group.min/max.session.timeout.ms`; a member
//! id handed out with MEMBER_ID_REQUIRED expires after the session timeout of the
//! JoinGroup that asked for it (it is not even stored: the id itself carries when it
//! was issued, for how long, and a tag only this cluster can make); members expire on
//! a timer of their own, whether anyone looks at the group or not; and a group left
//! empty with no committed offsets is removed, as Kafka's offset cleanup does.
//!
//! Static membership (KIP-345): a member with a `group.instance.id` needs no
//! MEMBER_ID_REQUIRED round trip; a restarted static member joining with its instance
//! id and no member id replaces its old member id and, in a Stable group whose
//! protocol would not change, gets the current generation and its old assignment
//! without a rebalance; requests naming the instance id with the old member id get
//! FENCED_INSTANCE_ID.
//!
//! Every state Kafka persists is written to `__consumer_offsets` (see
//! `sim/coordinator.rs`): the group's metadata, with each member's subscription and
//! assignment, when a generation's assignment is in place, when a static member is
//! replaced, when the group becomes empty, and a tombstone when it is removed.
//!
//! Simplifications, all visible to a client only as Kafka's own behaviour under other
//! settings: no initial rebalance delay (`group.initial.rebalance.delay.ms=0`), every
//! JoinGroup of a known member starts a rebalance, and the protocol chosen is the
//! first one of the leader's list that every member supports.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::ConnectionId;
use super::coordinator::{CoordinatorRecord, Outbox, WallClock};

use crate::messages::consumer_offsets::{GroupMetadataValue, group_metadata_value};
use crate::messages::{
    ConsumerProtocolAssignment, ErrorCode, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
    describe_groups_response, join_group_response, leave_group_response,
};
use crate::wire::{ByteString, Bytes};

/// Every group the cluster coordinates, by group id.
#[derive(Debug, Clone)]
pub(crate) struct Groups {
    groups: BTreeMap<String, Group>,
    next_member: u64,
    /// Keys the tags of the member ids this coordinator hands out.
    secret: u64,
    /// When the cluster started: member ids carry their issue time as an offset.
    epoch: Instant,
    /// `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
    session_timeouts: (Duration, Duration),
    /// When each group must be looked at again (member expiry, rebalance deadline);
    /// an entry whose time is not its group's `scheduled` is stale and skipped.
    timers: BTreeSet<(Instant, String)>,
    /// Connections whose parked request waits on a group that changed.
    woken: Vec<ConnectionId>,
    /// Groups that became empty (the cluster removes those without offsets).
    emptied: Vec<String>,
    /// Records for `__consumer_offsets`, until the cluster writes them.
    records: Outbox,
    /// What the records are stamped with.
    clock: WallClock,
    /// The host members' records name (`/host`).
    client_host: String,
    /// `group.max.size`.
    max_size: usize,
}

/// How the classic coordinator is set up: see [`Groups::new`].
#[derive(Debug, Clone)]
pub(crate) struct ClassicSettings {
    /// Keys the tags of the member ids handed out.
    pub secret: u64,
    /// The records' clock (its start is also what member ids count from).
    pub clock: WallClock,
    /// `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
    pub session_timeouts: (Duration, Duration),
    /// The host members' records name.
    pub client_host: String,
    /// `group.max.size`.
    pub max_size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

#[derive(Debug, Clone)]
struct Group {
    state: State,
    generation: i32,
    protocol_type: String,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    rebalance_deadline: Option<Instant>,
    /// Connections with a JoinGroup or SyncGroup parked on this group.
    waiting: BTreeSet<ConnectionId>,
    /// The time of this group's live entry in `Groups::timers`.
    scheduled: Option<Instant>,
    /// Static members: the member id of each group instance id.
    static_members: BTreeMap<String, String>,
    /// The group's state must be written to `__consumer_offsets`.
    persist: bool,
    /// Its parked requests must look again (a static member was replaced).
    wake: bool,
}

#[derive(Debug, Clone)]
struct Member {
    instance_id: Option<String>,
    client_id: String,
    protocols: Vec<(String, Bytes)>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    last_seen: Instant,
    /// Joined the rebalance in progress (or the last one completed).
    joined: bool,
    /// Its JoinGroup of the generation last completed is parked, unanswered. Kafka
    /// answers every waiting JoinGroup the moment the join phase completes; here a
    /// parked request is answered when it is looked at again, so a rebalance that
    /// starts in between (another member's session ends) must not leave it waiting
    /// for the next generation, uncounted, until it is dropped.
    owed_join: bool,
    assignment: Bytes,
}

/// A JoinGroup as the group sees it.
struct Joining<'a> {
    request: &'a JoinGroupRequest,
    version: i16,
    client_id: &'a str,
}

impl Joining<'_> {
    /// The group instance id (KIP-345, JoinGroup v5+).
    fn instance(&self) -> Option<&str> {
        (self.version >= 5)
            .then_some(self.request.group_instance_id.as_deref())
            .flatten()
    }

    fn rebalance_timeout(&self) -> Duration {
        let r = self.request;
        let ms = if r.rebalance_timeout_ms > 0 {
            r.rebalance_timeout_ms
        } else {
            r.session_timeout_ms
        };
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    /// The member the request describes, not yet joined.
    fn member(&self, now: Instant) -> Member {
        let r = self.request;
        Member {
            instance_id: self.instance().map(str::to_owned),
            client_id: self.client_id.to_owned(),
            protocols: r
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            session_timeout: Duration::from_millis(
                u64::try_from(r.session_timeout_ms).unwrap_or(0),
            ),
            rebalance_timeout: self.rebalance_timeout(),
            last_seen: now,
            joined: false,
            owed_join: false,
            assignment: Bytes::new(),
        }
    }
}

/// Whole milliseconds of `d`, as Kafka's int fields hold them.
fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// What a group request handler decided.
pub(crate) enum Reply<T> {
    /// Answer now.
    Now(T),
    /// Park the request until this time (or until something changes).
    Wait(Instant),
}

impl Group {
    fn new() -> Self {
        Group {
            state: State::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            rebalance_deadline: None,
            waiting: BTreeSet::new(),
            scheduled: None,
            static_members: BTreeMap::new(),
            persist: false,
            wake: false,
        }
    }

    /// Forgets the instance ids of members that are gone.
    fn forget_departed(&mut self) {
        let members = &self.members;
        self.static_members.retain(|_, id| members.contains_key(id));
    }

    /// FENCED_INSTANCE_ID if `instance` belongs to another member than `member_id`
    /// (a static member that was replaced by a restart).
    fn check_instance(
        &self,
        member_id: &str,
        instance: Option<&ByteString>,
    ) -> Result<(), ErrorCode> {
        match instance.and_then(|i| self.static_members.get(&**i)) {
            Some(id) if id != member_id => Err(ErrorCode::FENCED_INSTANCE_ID),
            _ => Ok(()),
        }
    }

    /// The protocol the next generation would use: the first of the leader's list
    /// that every member supports.
    fn select_protocol(&self) -> Option<String> {
        let leader = self
            .leader
            .as_ref()
            .filter(|l| self.members.contains_key(*l))
            .or_else(|| self.members.keys().next())?;
        self.members[leader]
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .find(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// The group as Kafka writes it to `__consumer_offsets` (GroupMetadataValue).
    fn metadata_value(&self, ms: i64, host: &str) -> GroupMetadataValue {
        let protocol = self.protocol.clone();
        GroupMetadataValue {
            protocol_type: ByteString::from(self.protocol_type.clone()),
            generation: self.generation,
            protocol: protocol.clone().map(ByteString::from),
            leader: self.leader.clone().map(ByteString::from),
            current_state_timestamp: ms,
            members: self
                .members
                .iter()
                .map(|(id, m)| group_metadata_value::MemberMetadata {
                    member_id: ByteString::from(id.clone()),
                    group_instance_id: m.instance_id.clone().map(ByteString::from),
                    client_id: ByteString::from(m.client_id.clone()),
                    client_host: ByteString::from(host.to_owned()),
                    rebalance_timeout: millis(m.rebalance_timeout),
                    session_timeout: millis(m.session_timeout),
                    subscription: m
                        .protocols
                        .iter()
                        .find(|(n, _)| Some(n) == protocol.as_ref())
                        .map(|(_, meta)| meta.clone())
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// What other requests of the group care about: a change wakes them.
    fn fingerprint(&self) -> (State, i32, usize) {
        (self.state, self.generation, self.members.len())
    }

    /// When the group must next be looked at without a request: the rebalance
    /// deadline or the next member's session expiry (just after its session ends:
    /// a member is alive until then).
    fn next_deadline(&self) -> Option<Instant> {
        let expiry = self
            .members
            .values()
            .filter(|m| !(self.state == State::PreparingRebalance && m.joined))
            .map(|m| m.last_seen + m.session_timeout + Duration::from_nanos(1))
            .min();
        [self.rebalance_deadline, expiry]
            .into_iter()
            .flatten()
            .min()
    }

    /// Drops members whose session ran out; a Stable or completing group rebalances
    /// without them.
    fn expire(&mut self, now: Instant) {
        let dead: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                // A member waiting in a rebalance is alive (Kafka does not expire it).
                !(self.state == State::PreparingRebalance && m.joined)
                    && m.last_seen + m.session_timeout < now
            })
            .map(|(id, _)| id.clone())
            .collect();
        if dead.is_empty() {
            return;
        }
        for id in &dead {
            self.members.remove(id);
        }
        self.forget_departed();
        self.start_rebalance(now);
    }

    /// Starts a rebalance (or, with no members left, empties the group).
    fn start_rebalance(&mut self, now: Instant) {
        if self.members.is_empty() {
            self.state = State::Empty;
            self.generation += 1;
            self.protocol = None;
            self.leader = None;
            self.rebalance_deadline = None;
            self.persist = true;
            return;
        }
        if self.state != State::PreparingRebalance {
            for m in self.members.values_mut() {
                m.joined = false;
            }
            let timeout = self
                .members
                .values()
                .map(|m| m.rebalance_timeout)
                .max()
                .unwrap_or_default();
            self.rebalance_deadline = Some(now + timeout);
            self.state = State::PreparingRebalance;
        }
    }

    /// Completes the join phase once every member rejoined or the rebalance timed
    /// out (dropping who did not rejoin).
    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != State::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.joined);
        if !all_joined && self.rebalance_deadline.is_some_and(|d| now < d) {
            return;
        }
        self.members.retain(|_, m| m.joined);
        self.forget_departed();
        if self.members.is_empty() {
            self.start_rebalance(now);
            return;
        }
        self.generation += 1;
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.protocol = self.select_protocol();
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            m.owed_join = true;
        }
        self.rebalance_deadline = None;
        self.state = State::CompletingRebalance;
    }

    /// When a parked request of this group should be looked at again: the group's
    /// next deadline, or `fallback` if that is sooner.
    fn next_wake(&self, now: Instant, fallback: Instant) -> Instant {
        self.next_deadline()
            .map_or(fallback, |d| d.min(fallback))
            .max(now)
    }

    /// The first look at a JoinGroup from `member_id` (known, or holding an id this
    /// coordinator handed out, or a new static member's): `Some` answers it at once
    /// (the current generation, or an error); `None` means it joined the rebalance.
    fn add_or_rejoin(
        &mut self,
        joining: &Joining,
        member_id: &str,
        max_size: usize,
        now: Instant,
    ) -> Option<Result<Reply<JoinGroupResponse>, ErrorCode>> {
        let r = joining.request;
        // Kafka's GroupCoordinator: a member that joins again with the same
        // protocols gets the current generation back without a rebalance when the
        // group is completing one, or is Stable and the member is not the leader
        // (it may have missed the response).
        let unchanged = self.members.get(member_id).is_some_and(|m| {
            m.protocols.len() == r.protocols.len()
                && m.protocols
                    .iter()
                    .zip(&r.protocols)
                    .all(|((n, meta), p)| *n == *p.name && *meta == p.metadata)
        });
        let is_leader = self.leader.as_deref() == Some(member_id);
        let current = match self.state {
            State::CompletingRebalance => unchanged,
            State::Stable => unchanged && !is_leader,
            State::Empty | State::PreparingRebalance => false,
        };
        if current {
            self.touch(member_id, now);
            return Some(Ok(Reply::Now(join_response(
                self,
                member_id,
                joining.version,
                false,
            ))));
        }
        let known = self.members.contains_key(member_id);
        if !known && self.members.len() >= max_size {
            return Some(Err(ErrorCode::GROUP_MAX_SIZE_REACHED));
        }
        if let Some(e) = self.check_protocols(r, member_id) {
            return Some(Err(e));
        }
        self.protocol_type = r.protocol_type.to_string();
        let member = joining.member(now);
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member_id.to_owned());
        }
        self.members.insert(member_id.to_owned(), member);
        self.start_rebalance(now);
        self.mark_joined(member_id, joining.rebalance_timeout(), now);
        None
    }

    /// INCONSISTENT_GROUP_PROTOCOL if `r` does not fit the group's protocol type, or
    /// shares no protocol with the other members.
    fn check_protocols(&self, r: &JoinGroupRequest, member_id: &str) -> Option<ErrorCode> {
        let others: Vec<&Member> = self
            .members
            .iter()
            .filter(|(id, _)| *id != member_id)
            .map(|(_, m)| m)
            .collect();
        if others.is_empty() {
            return None;
        }
        let common = r.protocols.iter().any(|p| {
            others
                .iter()
                .all(|m| m.protocols.iter().any(|(n, _)| *n == *p.name))
        });
        (self.protocol_type != *r.protocol_type || !common)
            .then_some(ErrorCode::INCONSISTENT_GROUP_PROTOCOL)
    }

    /// `member_id` joined the rebalance in progress, whose deadline grows with the
    /// longest rebalance timeout.
    fn mark_joined(&mut self, member_id: &str, rebalance_timeout: Duration, now: Instant) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.joined = true;
        }
        if self.state == State::PreparingRebalance {
            let d = now + rebalance_timeout;
            self.rebalance_deadline = Some(self.rebalance_deadline.map_or(d, |x| x.max(d)));
        }
    }

    /// A static member restarted (KIP-345): `new_id` takes the place of the member id
    /// its instance id had, with its assignment. In a Stable group whose protocol
    /// stays the same it gets the current generation at once (`Some`), and no
    /// rebalance happens; otherwise it joins a rebalance (`None`). The old member id
    /// is fenced: its parked requests wake to FENCED_INSTANCE_ID.
    fn replace_static(
        &mut self,
        joining: &Joining,
        instance: &str,
        new_id: &str,
        now: Instant,
    ) -> Option<Result<Reply<JoinGroupResponse>, ErrorCode>> {
        let r = joining.request;
        let old_id = self.static_members.get(instance)?.clone();
        if let Some(e) = self.check_protocols(r, &old_id) {
            return Some(Err(e));
        }
        let old = self.members.remove(&old_id)?;
        let mut member = joining.member(now);
        member.assignment = old.assignment;
        member.joined = old.joined;
        self.members.insert(new_id.to_owned(), member);
        self.static_members
            .insert(instance.to_owned(), new_id.to_owned());
        if self.leader.as_deref() == Some(&*old_id) {
            self.leader = Some(new_id.to_owned());
        }
        self.wake = true;
        match self.state {
            State::Stable if self.select_protocol() == self.protocol => {
                // KIP-345: no rebalance; the new id is persisted with the old one's
                // assignment, and a rejoining leader is told to skip the assignment.
                self.persist = true;
                let leader = self.leader.as_deref() == Some(new_id);
                Some(Ok(Reply::Now(join_response(
                    self,
                    new_id,
                    joining.version,
                    leader,
                ))))
            }
            State::Stable | State::CompletingRebalance => {
                // Kafka rebalances: the old id may already have been sent to the
                // leader for assignment, or the protocol would change.
                self.start_rebalance(now);
                self.mark_joined(new_id, joining.rebalance_timeout(), now);
                None
            }
            State::PreparingRebalance | State::Empty => {
                self.mark_joined(new_id, joining.rebalance_timeout(), now);
                None
            }
        }
    }

    /// SyncGroup on this group: the leader hands out assignments; followers wait.
    fn sync(
        &mut self,
        r: &SyncGroupRequest,
        version: i16,
        now: Instant,
    ) -> Result<Reply<SyncGroupResponse>, ErrorCode> {
        self.expire(now);
        let member_id = r.member_id.to_string();
        self.check_instance(&member_id, r.group_instance_id.as_ref())?;
        if !self.members.contains_key(&member_id) {
            return Err(ErrorCode::UNKNOWN_MEMBER_ID);
        }
        if r.generation_id != self.generation {
            return Err(ErrorCode::ILLEGAL_GENERATION);
        }
        if version >= 5
            && (r
                .protocol_type
                .as_ref()
                .is_some_and(|t| **t != *self.protocol_type)
                || r.protocol_name
                    .as_ref()
                    .is_some_and(|n| Some(n.to_string()) != self.protocol))
        {
            return Err(ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
        }
        self.touch(&member_id, now);
        match self.state {
            State::Empty | State::PreparingRebalance => {
                return Err(ErrorCode::REBALANCE_IN_PROGRESS);
            }
            State::CompletingRebalance if self.leader.as_deref() == Some(&*member_id) => {
                for a in &r.assignments {
                    if let Some(m) = self.members.get_mut(&*a.member_id) {
                        m.assignment = a.assignment.clone();
                    }
                }
                self.state = State::Stable;
                self.persist = true;
            }
            State::CompletingRebalance => {
                let m = &self.members[&member_id];
                return Ok(Reply::Wait(self.next_wake(now, now + m.session_timeout)));
            }
            State::Stable => {}
        }
        Ok(Reply::Now(SyncGroupResponse {
            error_code: 0,
            protocol_type: (version >= 5).then(|| ByteString::from(self.protocol_type.clone())),
            protocol_name: if version >= 5 {
                self.protocol.clone().map(ByteString::from)
            } else {
                None
            },
            assignment: self.members[&member_id].assignment.clone(),
            ..Default::default()
        }))
    }

    fn touch(&mut self, member: &str, now: Instant) {
        if let Some(m) = self.members.get_mut(member) {
            m.last_seen = now;
        }
    }
}

impl Groups {
    /// No groups yet, set up as `settings` says.
    pub(crate) fn new(settings: ClassicSettings) -> Self {
        Groups {
            groups: BTreeMap::new(),
            next_member: 0,
            secret: settings.secret,
            epoch: settings.clock.start,
            session_timeouts: settings.session_timeouts,
            timers: BTreeSet::new(),
            woken: Vec::new(),
            emptied: Vec::new(),
            records: Vec::new(),
            clock: settings.clock,
            client_host: settings.client_host,
            max_size: settings.max_size,
        }
    }

    /// How many groups the coordinator holds.
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether `group` exists with members.
    pub(crate) fn has_members(&self, group: &str) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// Whether `group` exists (with members or not).
    pub(crate) fn contains(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    /// Parks `conn` on `group`: it is woken (see [`Groups::take_woken`]) when the
    /// group changes.
    pub(crate) fn watch(&mut self, group: &str, conn: ConnectionId) {
        if let Some(g) = self.groups.get_mut(group) {
            g.waiting.insert(conn);
        }
    }

    /// Connections parked on groups that changed since last asked.
    pub(crate) fn take_woken(&mut self) -> Vec<ConnectionId> {
        std::mem::take(&mut self.woken)
    }

    /// Groups that became empty since last asked.
    pub(crate) fn take_emptied(&mut self) -> Vec<String> {
        std::mem::take(&mut self.emptied)
    }

    /// Records for `__consumer_offsets` made since last asked.
    pub(crate) fn take_records(&mut self) -> Outbox {
        std::mem::take(&mut self.records)
    }

    /// Removes a group that is empty (no members); its parked requests wake, and
    /// its metadata gets a tombstone.
    pub(crate) fn remove_if_empty(&mut self, group: &str) {
        if self.groups.get(group).is_some_and(|g| g.members.is_empty())
            && let Some(g) = self.groups.remove(group)
        {
            self.woken.extend(g.waiting);
            self.records
                .extend(CoordinatorRecord::group_metadata(group, None));
        }
    }

    /// The coordinator of the groups `moved` selects changed: their members'
    /// sessions start afresh (as when Kafka's new coordinator loads a group) and
    /// their parked requests look again (to learn NOT_COORDINATOR).
    pub(crate) fn coordinator_moved(&mut self, moved: &dyn Fn(&str) -> bool, now: Instant) {
        let ids: Vec<String> = self.groups.keys().filter(|g| moved(g)).cloned().collect();
        for id in ids {
            self.changing(&id, now, |g| {
                for m in g.members.values_mut() {
                    m.last_seen = now;
                }
                g.wake = true;
            });
        }
    }

    /// The next time a group must be looked at without a request.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Looks at every group whose timer is due: members whose session ran out go,
    /// rebalances whose deadline passed complete.
    pub(crate) fn handle_timers(&mut self, now: Instant) {
        while let Some((at, id)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let live = self
                .groups
                .get(&id)
                .is_some_and(|g| g.scheduled == Some(at));
            if !live {
                continue;
            }
            if let Some(g) = self.groups.get_mut(&id) {
                g.scheduled = None;
            }
            self.changing(&id, now, |g| {
                g.expire(now);
                g.maybe_complete_join(now);
            });
        }
    }

    /// Runs `f` on group `id`, then wakes its parked requests if it changed, notes it
    /// if it became empty, writes its metadata if it must be persisted, and
    /// schedules its next timer.
    fn changing<T>(
        &mut self,
        id: &str,
        now: Instant,
        f: impl FnOnce(&mut Group) -> T,
    ) -> Option<T> {
        let g = self.groups.get_mut(id)?;
        let before = g.fingerprint();
        let out = f(g);
        if g.fingerprint() != before || std::mem::take(&mut g.wake) {
            self.woken.extend(std::mem::take(&mut g.waiting));
            if g.members.is_empty() {
                self.emptied.push(id.to_owned());
            }
        }
        if std::mem::take(&mut g.persist) {
            let value = g.metadata_value(self.clock.ms(now), &self.client_host);
            self.records
                .extend(CoordinatorRecord::group_metadata(id, Some(&value)));
        }
        if let Some(next) = g.next_deadline() {
            let at = next.max(now + Duration::from_nanos(1));
            if g.scheduled.is_none_or(|s| at < s) {
                g.scheduled = Some(at);
                self.timers.insert((at, id.to_owned()));
            }
        }
        Some(out)
    }

    /// A member id for a new member of `group` (KIP-394), valid for `session`: the
    /// client id, then the issue time, the session timeout, a serial number and a tag
    /// that only this coordinator can compute, so nothing has to be stored until the
    /// member joins with it.
    fn issue_member_id(
        &mut self,
        group: &str,
        client_id: &str,
        session: Duration,
        now: Instant,
    ) -> String {
        self.next_member += 1;
        let issued = u64::try_from(now.duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX);
        let session = u64::try_from(session.as_millis()).unwrap_or(u64::MAX);
        let tag = self.tag(group, issued, session, self.next_member);
        format!(
            "{client_id}-{issued:x}.{session:x}.{:x}.{tag:016x}",
            self.next_member
        )
    }

    /// A member id for a static member (KIP-345): its instance id, a serial number
    /// and a tag, unique in the cluster.
    fn static_member_id(&mut self, group: &str, instance: &str) -> String {
        self.next_member += 1;
        let tag = self.tag(group, u64::MAX, u64::MAX, self.next_member);
        format!("{instance}-{:x}.{tag:016x}", self.next_member)
    }

    /// Whether `member_id` is one this coordinator handed out for `group` and its
    /// session timeout has not passed since.
    fn pending_is_valid(&self, group: &str, member_id: &str, now: Instant) -> bool {
        let Some((_, token)) = member_id.rsplit_once('-') else {
            return false;
        };
        let fields: Vec<u64> = token
            .split('.')
            .filter_map(|f| u64::from_str_radix(f, 16).ok())
            .collect();
        let &[issued, session, serial, tag] = fields.as_slice() else {
            return false;
        };
        let expires = Duration::from_millis(issued).saturating_add(Duration::from_millis(session));
        tag == self.tag(group, issued, session, serial) && now.duration_since(self.epoch) <= expires
    }

    /// A keyed hash of a member id's fields (splitmix64 rounds over the secret).
    fn tag(&self, group: &str, issued: u64, session: u64, serial: u64) -> u64 {
        let mix = |h: u64, w: u64| {
            let mut z = (h ^ w).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let mut h = group.bytes().fold(self.secret, |h, b| mix(h, u64::from(b)));
        for w in [issued, session, serial] {
            h = mix(h, w);
        }
        h
    }

    /// JoinGroup. `first` is true the first time this request is looked at (it may be
    /// looked at again while parked).
    pub(crate) fn join(
        &mut self,
        r: &JoinGroupRequest,
        version: i16,
        client_id: &str,
        first: bool,
        now: Instant,
    ) -> Reply<JoinGroupResponse> {
        let fail = |e: ErrorCode, member_id: &str| {
            Reply::Now(JoinGroupResponse {
                error_code: e.code(),
                generation_id: -1,
                protocol_name: (version < 7).then(ByteString::new),
                member_id: ByteString::from(member_id.to_owned()),
                ..Default::default()
            })
        };
        let (min, max) = self.session_timeouts;
        let session = Duration::from_millis(u64::try_from(r.session_timeout_ms).unwrap_or(0));
        if r.session_timeout_ms < 1 || session < min || session > max {
            return fail(ErrorCode::INVALID_SESSION_TIMEOUT, &r.member_id);
        }
        if r.protocol_type.is_empty() || r.protocols.is_empty() {
            return fail(ErrorCode::INCONSISTENT_GROUP_PROTOCOL, &r.member_id);
        }
        let joining = Joining {
            request: r,
            version,
            client_id,
        };
        let instance = joining.instance().map(str::to_owned);
        let mut member_id = r.member_id.to_string();
        let group_id = r.group_id.to_string();
        // A static member's first JoinGroup carries no member id; the id it was given
        // at the first look is its instance's now (a later restart of the same
        // instance would have taken it, and this request is then fenced below, as
        // Kafka fences the replaced member's parked join).
        if !first
            && member_id.is_empty()
            && let Some(instance) = &instance
            && let Some(id) = self
                .groups
                .get(&group_id)
                .and_then(|g| g.static_members.get(instance))
        {
            member_id = id.clone();
        }
        let max_size = self.max_size;
        let mut replacing = None;
        if first {
            if member_id.is_empty() {
                let Some(instance) = &instance else {
                    // KIP-394: hand out an id; the client joins again with it.
                    let id = self.issue_member_id(&group_id, client_id, session, now);
                    return fail(ErrorCode::MEMBER_ID_REQUIRED, &id);
                };
                // KIP-345: a static member gets its id at once; a known instance id
                // means a restart, which replaces the old member id.
                member_id = self.static_member_id(&group_id, instance);
                let known = self
                    .groups
                    .get(&group_id)
                    .is_some_and(|g| g.static_members.contains_key(instance));
                if known {
                    replacing = Some(instance.clone());
                }
            } else {
                let group = self.groups.get(&group_id);
                if let Some(g) = group
                    && let Err(e) = g.check_instance(&member_id, r.group_instance_id.as_ref())
                    && instance.is_some()
                {
                    return fail(e, &member_id);
                }
                let known = group.is_some_and(|g| g.members.contains_key(&member_id));
                if !known && !self.pending_is_valid(&group_id, &member_id, now) {
                    return fail(ErrorCode::UNKNOWN_MEMBER_ID, &member_id);
                }
            }
            self.groups
                .entry(group_id.clone())
                .or_insert_with(Group::new);
        }
        let reply = self.changing(&group_id, now, |group| {
            group.expire(now);
            if first {
                let at_once = match &replacing {
                    Some(instance) if group.static_members.contains_key(instance) => {
                        group.replace_static(&joining, instance, &member_id, now)
                    }
                    _ => group.add_or_rejoin(&joining, &member_id, max_size, now),
                };
                if let Some(answer) = at_once {
                    return Some(answer);
                }
            }
            group.touch(&member_id, now);
            group.maybe_complete_join(now);
            let Some(member) = group.members.get(&member_id) else {
                // Replaced by a restart of its static instance, or dropped while
                // waiting (the rebalance timed out without it).
                let fenced = group.check_instance(&member_id, r.group_instance_id.as_ref());
                return Some(Err(fenced.err().unwrap_or(ErrorCode::UNKNOWN_MEMBER_ID)));
            };
            let owed = !first && member.owed_join;
            if (group.state == State::PreparingRebalance || !member.joined) && !owed {
                let fallback = now + member.rebalance_timeout;
                return Some(Ok(Reply::Wait(group.next_wake(now, fallback))));
            }
            // The generation it joined, even if another rebalance began since: its
            // SyncGroup then learns that and it joins again.
            if let Some(m) = group.members.get_mut(&member_id) {
                m.owed_join = false;
            }
            Some(Ok(Reply::Now(join_response(
                group, &member_id, version, false,
            ))))
        });
        match reply.flatten() {
            Some(Ok(reply)) => reply,
            Some(Err(e)) => fail(e, &member_id),
            // The group went away while the request waited.
            None => fail(ErrorCode::UNKNOWN_MEMBER_ID, &member_id),
        }
    }

    /// SyncGroup: the leader hands out assignments; followers wait for them.
    pub(crate) fn sync(
        &mut self,
        r: &SyncGroupRequest,
        version: i16,
        now: Instant,
    ) -> Reply<SyncGroupResponse> {
        let fail = |e: ErrorCode| {
            Reply::Now(SyncGroupResponse {
                error_code: e.code(),
                ..Default::default()
            })
        };
        let reply = self.changing(&r.group_id, now, |group| group.sync(r, version, now));
        match reply {
            Some(Ok(reply)) => reply,
            Some(Err(e)) => fail(e),
            None => fail(ErrorCode::UNKNOWN_MEMBER_ID),
        }
    }

    /// Heartbeat: keeps a member alive and tells it when to rejoin.
    pub(crate) fn heartbeat(&mut self, r: &HeartbeatRequest, now: Instant) -> ErrorCode {
        self.changing(&r.group_id, now, |group| {
            group.expire(now);
            if let Err(e) = group.check_instance(&r.member_id, r.group_instance_id.as_ref()) {
                return e;
            }
            if !group.members.contains_key(&*r.member_id) {
                return ErrorCode::UNKNOWN_MEMBER_ID;
            }
            group.touch(&r.member_id, now);
            if group.state == State::PreparingRebalance {
                return ErrorCode::REBALANCE_IN_PROGRESS;
            }
            if r.generation_id != group.generation {
                return ErrorCode::ILLEGAL_GENERATION;
            }
            ErrorCode::NONE
        })
        .unwrap_or(ErrorCode::UNKNOWN_MEMBER_ID)
    }

    /// LeaveGroup: the members go, and the others rebalance. From v3 a member may be
    /// named by its group instance id alone (KIP-345).
    pub(crate) fn leave(
        &mut self,
        r: &LeaveGroupRequest,
        version: i16,
        now: Instant,
    ) -> LeaveGroupResponse {
        let ids: Vec<(String, Option<ByteString>)> = if version >= 3 {
            r.members
                .iter()
                .map(|m| (m.member_id.to_string(), m.group_instance_id.clone()))
                .collect()
        } else {
            vec![(r.member_id.to_string(), None)]
        };
        let results: Vec<ErrorCode> = self
            .changing(&r.group_id, now, |g| {
                let results: Vec<ErrorCode> = ids
                    .iter()
                    .map(|(id, instance)| {
                        let target = match instance {
                            Some(inst) => match g.static_members.get(&**inst) {
                                None => return ErrorCode::UNKNOWN_MEMBER_ID,
                                Some(mapped) if !id.is_empty() && mapped != id => {
                                    return ErrorCode::FENCED_INSTANCE_ID;
                                }
                                Some(mapped) => mapped.clone(),
                            },
                            None => id.clone(),
                        };
                        if g.members.remove(&target).is_some() {
                            ErrorCode::NONE
                        } else {
                            ErrorCode::UNKNOWN_MEMBER_ID
                        }
                    })
                    .collect();
                if results.contains(&ErrorCode::NONE) {
                    g.forget_departed();
                    g.start_rebalance(now);
                    // Those still waiting may now all have joined.
                    g.maybe_complete_join(now);
                }
                results
            })
            .unwrap_or_else(|| vec![ErrorCode::UNKNOWN_MEMBER_ID; ids.len()]);
        let results: Vec<leave_group_response::MemberResponse> = ids
            .into_iter()
            .zip(results)
            .map(
                |((id, instance), error)| leave_group_response::MemberResponse {
                    member_id: ByteString::from(id),
                    group_instance_id: instance,
                    error_code: error.code(),
                    ..Default::default()
                },
            )
            .collect();
        if version >= 3 {
            LeaveGroupResponse {
                members: results,
                ..Default::default()
            }
        } else {
            LeaveGroupResponse {
                error_code: results.first().map_or(0, |m| m.error_code),
                ..Default::default()
            }
        }
    }

    /// Whether an offset commit for `generation` by `member` (with its group instance
    /// id, if static) may go ahead (Kafka's `validateOffsetCommit` for the classic
    /// protocol). A `transactional` one (TxnOffsetCommit, KIP-447) is checked for
    /// the member and its generation only: without an identity it is taken whatever
    /// the group's state, and a rebalance completing does not refuse it.
    pub(crate) fn check_commit(
        &mut self,
        group: &str,
        generation: i32,
        member: &str,
        instance: Option<&ByteString>,
        transactional: bool,
        now: Instant,
    ) -> Result<(), ErrorCode> {
        let anonymous = generation < 0 && member.is_empty();
        self.changing(group, now, |g| {
            g.expire(now);
            if anonymous && (transactional || g.state == State::Empty) {
                return Ok(());
            }
            // Kafka's order: who, which generation, then the state (a commit of an
            // older generation is ILLEGAL_GENERATION even while the next one
            // completes).
            g.check_instance(member, instance)?;
            if !g.members.contains_key(member) {
                return Err(ErrorCode::UNKNOWN_MEMBER_ID);
            }
            if generation != g.generation {
                return Err(ErrorCode::ILLEGAL_GENERATION);
            }
            if transactional {
                return Ok(());
            }
            if g.state == State::CompletingRebalance {
                return Err(ErrorCode::REBALANCE_IN_PROGRESS);
            }
            g.touch(member, now);
            Ok(())
        })
        // Only a group used for offsets alone can be unknown here.
        .unwrap_or(if anonymous {
            Ok(())
        } else {
            Err(ErrorCode::ILLEGAL_GENERATION)
        })
    }

    /// Every group id, with its protocol type and state as ListGroups names them.
    pub(crate) fn listing(&self) -> Vec<(String, String, &'static str)> {
        self.groups
            .iter()
            .map(|(id, g)| (id.clone(), g.protocol_type.clone(), state_name(g.state)))
            .collect()
    }

    /// DescribeGroups' answer for `group`, as Kafka gives it: in the Stable state
    /// the protocol and every member with its metadata for that protocol and its
    /// assignment; in the other states the members without them; an unknown group
    /// is `Dead` (no error).
    pub(crate) fn describe(&self, group: &str) -> describe_groups_response::DescribedGroup {
        let Some(g) = self.groups.get(group) else {
            return describe_groups_response::DescribedGroup {
                group_id: ByteString::from(group.to_owned()),
                group_state: ByteString::from("Dead"),
                authorized_operations: i32::MIN,
                ..Default::default()
            };
        };
        let stable = g.state == State::Stable;
        let protocol = g.protocol.clone().filter(|_| stable);
        describe_groups_response::DescribedGroup {
            group_id: ByteString::from(group.to_owned()),
            group_state: ByteString::from(state_name(g.state)),
            protocol_type: ByteString::from(g.protocol_type.clone()),
            protocol_data: ByteString::from(protocol.clone().unwrap_or_default()),
            members: g
                .members
                .iter()
                .map(|(id, m)| describe_groups_response::DescribedGroupMember {
                    member_id: ByteString::from(id.clone()),
                    group_instance_id: m.instance_id.clone().map(ByteString::from),
                    client_id: ByteString::from(m.client_id.clone()),
                    client_host: ByteString::from(self.client_host.clone()),
                    member_metadata: m
                        .protocols
                        .iter()
                        .find(|(n, _)| Some(n) == protocol.as_ref())
                        .map(|(_, meta)| meta.clone())
                        .unwrap_or_default(),
                    member_assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                    ..Default::default()
                })
                .collect(),
            authorized_operations: i32::MIN,
            ..Default::default()
        }
    }

    /// What the coordinator holds for `group`.
    pub(crate) fn summary(&self, group: &str) -> Option<super::GroupSummary> {
        let g = self.groups.get(group)?;
        let state = state_name(g.state);
        let consumer = g.protocol_type == "consumer";
        Some(super::GroupSummary {
            protocol: super::GroupProtocol::Classic,
            state: state.to_owned(),
            epoch: g.generation,
            members: g
                .members
                .iter()
                .map(|(id, m)| super::MemberSummary {
                    member_id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    epoch: g.generation,
                    assigned: if consumer {
                        decode_assignment(&m.assignment)
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        })
    }
}

/// A classic group state as Kafka names it.
fn state_name(state: State) -> &'static str {
    match state {
        State::Empty => "Empty",
        State::PreparingRebalance => "PreparingRebalance",
        State::CompletingRebalance => "CompletingRebalance",
        State::Stable => "Stable",
    }
}

/// The partitions a consumer protocol assignment names, by topic name (none if the
/// bytes are not one).
fn decode_assignment(bytes: &Bytes) -> Vec<(String, i32)> {
    let Ok(a) = crate::wire::decode_versioned_forward_compatible::<ConsumerProtocolAssignment>(
        &mut bytes.clone(),
    ) else {
        return Vec::new();
    };
    let mut out: Vec<(String, i32)> = a
        .data
        .assigned_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
        .collect();
    out.sort();
    out
}

/// The JoinGroup answer for a member of the current generation (the member list goes
/// to the leader only).
///
/// `skip_assignment`: a static leader rejoined without a rebalance (KIP-814, v9+):
/// it gets the members but must not assign.
fn join_response(
    group: &Group,
    member_id: &str,
    version: i16,
    skip_assignment: bool,
) -> JoinGroupResponse {
    let leader = group.leader.clone().unwrap_or_default();
    let protocol = group.protocol.clone();
    let members = if leader == member_id {
        group
            .members
            .iter()
            .map(|(id, m)| join_group_response::JoinGroupResponseMember {
                member_id: ByteString::from(id.clone()),
                group_instance_id: if version >= 5 {
                    m.instance_id.clone().map(ByteString::from)
                } else {
                    None
                },
                metadata: m
                    .protocols
                    .iter()
                    .find(|(n, _)| Some(n) == protocol.as_ref())
                    .map(|(_, meta)| meta.clone())
                    .unwrap_or_default(),
                ..Default::default()
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinGroupResponse {
        error_code: 0,
        generation_id: group.generation,
        protocol_type: (version >= 7).then(|| ByteString::from(group.protocol_type.clone())),
        protocol_name: match protocol {
            Some(p) => Some(ByteString::from(p)),
            None if version < 7 => Some(ByteString::new()),
            None => None,
        },
        leader: ByteString::from(leader),
        skip_assignment: skip_assignment && version >= 9,
        member_id: ByteString::from(member_id.to_owned()),
        members,
        ..Default::default()
    }
}
