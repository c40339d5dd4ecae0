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
//! Simplifications, all visible to a client only as Kafka's own behaviour under other
//! settings: no initial rebalance delay (`group.initial.rebalance.delay.ms=0`), no
//! static membership (a group instance id is recorded but treated as dynamic), every
//! JoinGroup of a known member starts a rebalance, and the protocol chosen is the
//! first one of the leader's list that every member supports.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::messages::{
    ErrorCode, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse, join_group_response,
    leave_group_response,
};
use crate::wire::{ByteString, Bytes};

/// Every group the cluster coordinates, by group id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Groups {
    groups: BTreeMap<String, Group>,
    next_member: u64,
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
    /// Member ids handed out with MEMBER_ID_REQUIRED, not joined yet.
    issued: BTreeSet<String>,
    rebalance_deadline: Option<Instant>,
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
            issued: BTreeSet::new(),
            rebalance_deadline: None,
        }
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

    /// When a parked request of this group should be looked at again: the rebalance
    /// deadline or the next session expiry.
    fn next_wake(&self, now: Instant, fallback: Instant) -> Instant {
        let expiry = self
            .members
            .values()
            .filter(|m| !(self.state == State::PreparingRebalance && m.joined))
            .map(|m| m.last_seen + m.session_timeout)
            .min();
        [self.rebalance_deadline, expiry, Some(fallback)]
            .into_iter()
            .flatten()
            .map(|t| t.max(now))
            .min()
            .unwrap_or(fallback)
    }

    fn touch(&mut self, member: &str, now: Instant) {
        if let Some(m) = self.members.get_mut(member) {
            m.last_seen = now;
        }
    }
}

impl Groups {
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
        if r.session_timeout_ms < 1 {
            return fail(ErrorCode::INVALID_SESSION_TIMEOUT, &r.member_id);
        }
        if r.protocol_type.is_empty() || r.protocols.is_empty() {
            return fail(ErrorCode::INCONSISTENT_GROUP_PROTOCOL, &r.member_id);
        }
        let group = self
            .groups
            .entry(r.group_id.to_string())
            .or_insert_with(Group::new);
        group.expire(now);
        let member_id = r.member_id.to_string();
        if first {
            if member_id.is_empty() {
                // KIP-394: hand out an id; the client joins again with it.
                self.next_member += 1;
                let id = format!("{client_id}-{}", self.next_member);
                group.issued.insert(id.clone());
                return fail(ErrorCode::MEMBER_ID_REQUIRED, &id);
            }
            if !group.members.contains_key(&member_id) && !group.issued.remove(&member_id) {
                return fail(ErrorCode::UNKNOWN_MEMBER_ID, &member_id);
            }
            // Kafka's GroupCoordinator: a member that joins again with the same
            // protocols gets the current generation back without a rebalance when the
            // group is completing one, or is Stable and the member is not the leader
            // (it may have missed the response).
            let unchanged = group.members.get(&member_id).is_some_and(|m| {
                m.protocols.len() == r.protocols.len()
                    && m.protocols
                        .iter()
                        .zip(&r.protocols)
                        .all(|((n, meta), p)| *n == *p.name && *meta == p.metadata)
            });
            let is_leader = group.leader.as_deref() == Some(member_id.as_str());
            let current = match group.state {
                State::CompletingRebalance => unchanged,
                State::Stable => unchanged && !is_leader,
                State::Empty | State::PreparingRebalance => false,
            };
            if current {
                group.touch(&member_id, now);
                return Reply::Now(join_response(group, &member_id, version));
            }
            // The group's protocol type, and a protocol every member speaks.
            let others: Vec<&Member> = group
                .members
                .iter()
                .filter(|(id, _)| **id != member_id)
                .map(|(_, m)| m)
                .collect();
            if !others.is_empty() {
                let common = r.protocols.iter().any(|p| {
                    others
                        .iter()
                        .all(|m| m.protocols.iter().any(|(n, _)| *n == *p.name))
                });
                if group.protocol_type != *r.protocol_type || !common {
                    return fail(ErrorCode::INCONSISTENT_GROUP_PROTOCOL, &member_id);
                }
            }
            group.protocol_type = r.protocol_type.to_string();
            let rebalance_timeout = if r.rebalance_timeout_ms > 0 {
                r.rebalance_timeout_ms
            } else {
                r.session_timeout_ms
            };
            group.members.insert(
                member_id.clone(),
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
            group.start_rebalance(now);
            if let Some(m) = group.members.get_mut(&member_id) {
                m.joined = true;
            }
            if group.state == State::PreparingRebalance {
                // The deadline grows with the longest rebalance timeout.
                let d = now + Duration::from_millis(rebalance_timeout as u64);
                group.rebalance_deadline = Some(group.rebalance_deadline.map_or(d, |x| x.max(d)));
            }
        }
        group.touch(&member_id, now);
        group.maybe_complete_join(now);
        let Some(member) = group.members.get(&member_id) else {
            // Dropped while waiting (the rebalance timed out without it).
            return fail(ErrorCode::UNKNOWN_MEMBER_ID, &member_id);
        };
        if group.state == State::PreparingRebalance || !member.joined {
            let fallback = now + member.rebalance_timeout;
            return Reply::Wait(group.next_wake(now, fallback));
        }
        Reply::Now(join_response(group, &member_id, version))
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
        let Some(group) = self.groups.get_mut(&*r.group_id) else {
            return fail(ErrorCode::UNKNOWN_MEMBER_ID);
        };
        group.expire(now);
        let member_id = r.member_id.to_string();
        if !group.members.contains_key(&member_id) {
            return fail(ErrorCode::UNKNOWN_MEMBER_ID);
        }
        if r.generation_id != group.generation {
            return fail(ErrorCode::ILLEGAL_GENERATION);
        }
        if version >= 5
            && (r
                .protocol_type
                .as_ref()
                .is_some_and(|t| **t != *group.protocol_type)
                || r.protocol_name
                    .as_ref()
                    .is_some_and(|n| Some(n.to_string()) != group.protocol))
        {
            return fail(ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
        }
        group.touch(&member_id, now);
        match group.state {
            State::Empty | State::PreparingRebalance => {
                return fail(ErrorCode::REBALANCE_IN_PROGRESS);
            }
            State::CompletingRebalance if group.leader.as_deref() == Some(&*member_id) => {
                for a in &r.assignments {
                    if let Some(m) = group.members.get_mut(&*a.member_id) {
                        m.assignment = a.assignment.clone();
                    }
                }
                group.state = State::Stable;
            }
            State::CompletingRebalance => {
                let m = &group.members[&member_id];
                return Reply::Wait(group.next_wake(now, now + m.session_timeout));
            }
            State::Stable => {}
        }
        Reply::Now(SyncGroupResponse {
            error_code: 0,
            protocol_type: (version >= 5).then(|| ByteString::from(group.protocol_type.clone())),
            protocol_name: if version >= 5 {
                group.protocol.clone().map(ByteString::from)
            } else {
                None
            },
            assignment: group.members[&member_id].assignment.clone(),
            ..Default::default()
        })
    }

    /// Heartbeat: keeps a member alive and tells it when to rejoin.
    pub(crate) fn heartbeat(&mut self, r: &HeartbeatRequest, now: Instant) -> ErrorCode {
        let Some(group) = self.groups.get_mut(&*r.group_id) else {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        };
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
        let group = self.groups.get_mut(&*r.group_id);
        let mut results = Vec::new();
        let mut left = false;
        let mut group = group;
        for (id, instance) in &ids {
            let known = group
                .as_mut()
                .is_some_and(|g| g.members.remove(id).is_some());
            left |= known;
            results.push(leave_group_response::MemberResponse {
                member_id: ByteString::from(id.clone()),
                group_instance_id: instance.clone(),
                error_code: if known {
                    0
                } else {
                    ErrorCode::UNKNOWN_MEMBER_ID.code()
                },
                ..Default::default()
            });
        }
        if let Some(g) = group.as_mut().filter(|_| left) {
            g.start_rebalance(now);
            // Those still waiting may now all have joined.
            g.maybe_complete_join(now);
        }
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
        let Some(g) = self.groups.get_mut(group) else {
            // Only a group used for offsets alone can be unknown here.
            return if generation < 0 && member.is_empty() {
                Ok(())
            } else {
                Err(ErrorCode::ILLEGAL_GENERATION)
            };
        };
        g.expire(now);
        if generation < 0 && member.is_empty() && g.state == State::Empty {
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
