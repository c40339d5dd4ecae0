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
//! Simplifications, all visible to a client only as Kafka's own behaviour under other
//! settings: no initial rebalance delay (`group.initial.rebalance.delay.ms=0`), no
//! static membership (a group instance id is recorded but treated as dynamic), every
//! JoinGroup of a known member starts a rebalance, and the protocol chosen is the
//! first one of the leader's list that every member supports.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::ConnectionId;

use crate::messages::{
    ErrorCode, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse, join_group_response,
    leave_group_response,
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
}

#[derive(Debug, Clone)]
struct Member {
    instance_id: Option<String>,
    protocols: Vec<(String, Bytes)>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    last_seen: Instant,
    /// Joined the rebalance in progress (or the last one completed).
    joined: bool,
    assignment: Bytes,
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
        let leader = self.leader.clone().unwrap_or_default();
        let candidates: Vec<String> = self.members[&leader]
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .collect();
        self.protocol = candidates.into_iter().find(|name| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        });
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
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
    /// coordinator handed out): `Some` answers it at once (the current generation,
    /// or an error); `None` means it joined the rebalance.
    fn add_or_rejoin(
        &mut self,
        r: &JoinGroupRequest,
        member_id: &str,
        version: i16,
        now: Instant,
    ) -> Option<Result<Reply<JoinGroupResponse>, ErrorCode>> {
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
            return Some(Ok(Reply::Now(join_response(self, member_id, version))));
        }
        // The group's protocol type, and a protocol every member speaks.
        let others: Vec<&Member> = self
            .members
            .iter()
            .filter(|(id, _)| *id != member_id)
            .map(|(_, m)| m)
            .collect();
        if !others.is_empty() {
            let common = r.protocols.iter().any(|p| {
                others
                    .iter()
                    .all(|m| m.protocols.iter().any(|(n, _)| *n == *p.name))
            });
            if self.protocol_type != *r.protocol_type || !common {
                return Some(Err(ErrorCode::INCONSISTENT_GROUP_PROTOCOL));
            }
        }
        self.protocol_type = r.protocol_type.to_string();
        let rebalance_timeout = if r.rebalance_timeout_ms > 0 {
            r.rebalance_timeout_ms
        } else {
            r.session_timeout_ms
        };
        self.members.insert(
            member_id.to_owned(),
            Member {
                instance_id: r.group_instance_id.as_ref().map(|s| s.to_string()),
                protocols: r
                    .protocols
                    .iter()
                    .map(|p| (p.name.to_string(), p.metadata.clone()))
                    .collect(),
                session_timeout: Duration::from_millis(r.session_timeout_ms as u64),
                rebalance_timeout: Duration::from_millis(rebalance_timeout as u64),
                last_seen: now,
                joined: false,
                assignment: Bytes::new(),
            },
        );
        self.start_rebalance(now);
        if let Some(m) = self.members.get_mut(member_id) {
            m.joined = true;
        }
        if self.state == State::PreparingRebalance {
            // The deadline grows with the longest rebalance timeout.
            let d = now + Duration::from_millis(rebalance_timeout as u64);
            self.rebalance_deadline = Some(self.rebalance_deadline.map_or(d, |x| x.max(d)));
        }
        None
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
    /// No groups yet; member ids are tagged with `secret`, issue times counted from
    /// `epoch`, and session timeouts must lie within `session_timeouts`.
    pub(crate) fn new(secret: u64, epoch: Instant, session_timeouts: (Duration, Duration)) -> Self {
        Groups {
            groups: BTreeMap::new(),
            next_member: 0,
            secret,
            epoch,
            session_timeouts,
            timers: BTreeSet::new(),
            woken: Vec::new(),
            emptied: Vec::new(),
        }
    }

    /// How many groups the coordinator holds.
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
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

    /// Removes a group that is empty (no members); its parked requests wake.
    pub(crate) fn remove_if_empty(&mut self, group: &str) {
        if self.groups.get(group).is_some_and(|g| g.members.is_empty())
            && let Some(g) = self.groups.remove(group)
        {
            self.woken.extend(g.waiting);
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
    /// if it became empty, and schedules its next timer.
    fn changing<T>(
        &mut self,
        id: &str,
        now: Instant,
        f: impl FnOnce(&mut Group) -> T,
    ) -> Option<T> {
        let g = self.groups.get_mut(id)?;
        let before = g.fingerprint();
        let out = f(g);
        if g.fingerprint() != before {
            self.woken.extend(std::mem::take(&mut g.waiting));
            if g.members.is_empty() {
                self.emptied.push(id.to_owned());
            }
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
        let member_id = r.member_id.to_string();
        let group_id = r.group_id.to_string();
        if first {
            if member_id.is_empty() {
                // KIP-394: hand out an id; the client joins again with it.
                let id = self.issue_member_id(&group_id, client_id, session, now);
                return fail(ErrorCode::MEMBER_ID_REQUIRED, &id);
            }
            let known = self
                .groups
                .get(&group_id)
                .is_some_and(|g| g.members.contains_key(&member_id));
            if !known && !self.pending_is_valid(&group_id, &member_id, now) {
                return fail(ErrorCode::UNKNOWN_MEMBER_ID, &member_id);
            }
            self.groups
                .entry(group_id.clone())
                .or_insert_with(Group::new);
        }
        let reply = self.changing(&group_id, now, |group| {
            group.expire(now);
            if first && let Some(failed) = group.add_or_rejoin(r, &member_id, version, now) {
                return Some(failed);
            }
            group.touch(&member_id, now);
            group.maybe_complete_join(now);
            let Some(member) = group.members.get(&member_id) else {
                // Dropped while waiting (the rebalance timed out without it).
                return Some(Err(ErrorCode::UNKNOWN_MEMBER_ID));
            };
            if group.state == State::PreparingRebalance || !member.joined {
                let fallback = now + member.rebalance_timeout;
                return Some(Ok(Reply::Wait(group.next_wake(now, fallback))));
            }
            Some(Ok(Reply::Now(join_response(group, &member_id, version))))
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

    /// LeaveGroup: the members go, and the others rebalance.
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
        let left: Vec<bool> = self
            .changing(&r.group_id, now, |g| {
                let left: Vec<bool> = ids
                    .iter()
                    .map(|(id, _)| g.members.remove(id).is_some())
                    .collect();
                if left.contains(&true) {
                    g.start_rebalance(now);
                    // Those still waiting may now all have joined.
                    g.maybe_complete_join(now);
                }
                left
            })
            .unwrap_or_else(|| vec![false; ids.len()]);
        let results: Vec<leave_group_response::MemberResponse> = ids
            .into_iter()
            .zip(left)
            .map(
                |((id, instance), known)| leave_group_response::MemberResponse {
                    member_id: ByteString::from(id),
                    group_instance_id: instance,
                    error_code: if known {
                        0
                    } else {
                        ErrorCode::UNKNOWN_MEMBER_ID.code()
                    },
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

    /// Whether an offset commit for `generation` by `member` may go ahead (Kafka's
    /// checks for the classic protocol).
    pub(crate) fn check_commit(
        &mut self,
        group: &str,
        generation: i32,
        member: &str,
        now: Instant,
    ) -> Result<(), ErrorCode> {
        let anonymous = generation < 0 && member.is_empty();
        self.changing(group, now, |g| {
            g.expire(now);
            if anonymous && g.state == State::Empty {
                return Ok(());
            }
            if g.state == State::CompletingRebalance {
                return Err(ErrorCode::REBALANCE_IN_PROGRESS);
            }
            if !g.members.contains_key(member) {
                return Err(ErrorCode::UNKNOWN_MEMBER_ID);
            }
            if generation != g.generation {
                return Err(ErrorCode::ILLEGAL_GENERATION);
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
}

/// The JoinGroup answer for a member of the current generation (the member list goes
/// to the leader only).
fn join_response(group: &Group, member_id: &str, version: i16) -> JoinGroupResponse {
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
        member_id: ByteString::from(member_id.to_owned()),
        members,
        ..Default::default()
    }
}
