//! The group coordinator's APIs: FindCoordinator, and JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup and DescribeGroups over the classic protocol of
//! `sim/groups.rs`, and ListGroups over the groups of both protocols.

use super::{Call, error_message};
use crate::messages::{
    ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, ErrorCode, FindCoordinatorRequest,
    FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, SyncGroupRequest, SyncGroupResponse, describe_groups_response,
    find_coordinator_response, list_groups_response,
};
use crate::sim::coordinator::partition_for;
use crate::sim::groups::Reply;
use crate::wire::ByteString;

/// The coordinator of a transactional id: a live broker picked by the key's hash
/// (Kafka hashes it onto a partition of `__transaction_state` and answers that
/// partition's leader; the simulation keeps no such topic, so it hashes onto the live
/// brokers directly). Groups have a real `__consumer_offsets`
/// ([`Cluster::group_coordinator`](crate::sim::Cluster)).
pub(super) fn transaction_coordinator(live: &[(i32, i32)], key: &str) -> Option<i32> {
    let n = i32::try_from(live.len()).ok().filter(|n| *n > 0)?;
    usize::try_from(partition_for(key, n))
        .ok()
        .and_then(|i| live.get(i))
        .map(|(id, _)| *id)
}

impl Call<'_> {
    /// Whether this broker coordinates `group`, or the error that says why not.
    pub(super) fn check_coordinator(&mut self, group: &str) -> Result<(), ErrorCode> {
        if group.is_empty() {
            return Err(ErrorCode::INVALID_GROUP_ID);
        }
        match self.cluster.group_coordinator(group)? {
            id if id == self.broker => Ok(()),
            _ => Err(ErrorCode::NOT_COORDINATOR),
        }
    }

    /// The error a request of `api` for `group` fails with before the group looks at
    /// it: one injected for the API, the wrong coordinator, or one injected for the
    /// group ([`Cluster::inject_group_error`](crate::sim::Cluster::inject_group_error)).
    pub(super) fn group_error(&mut self, group: &str, api: ApiKey) -> Option<ErrorCode> {
        if let Err(e) = self.check_injected() {
            return Some(e);
        }
        if let Err(e) = self.check_coordinator(group) {
            return Some(e);
        }
        if !self.first_look() {
            return None;
        }
        self.cluster.take_group_injected(group, api)
    }

    /// A group's answer now, or `None` with the request parked until `until` or
    /// until the group changes.
    fn now_or_park<T>(&mut self, group: &str, reply: Reply<T>) -> Option<T> {
        match reply {
            Reply::Now(resp) => Some(resp),
            Reply::Wait(until) => {
                self.pending.deadline = Some(until);
                self.cluster.groups.watch(group, self.conn);
                None
            }
        }
    }

    /// Whether the request is looked at for the first time (not a parked one).
    pub(super) fn first_look(&self) -> bool {
        self.pending.deadline.is_none()
    }
}

pub(super) fn find_coordinator(
    call: &mut Call,
    r: &FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let live = call.cluster.live_brokers();
    let host = ByteString::from(call.cluster.config.host.clone());
    let version = call.version;
    // (node id, host, port) of the coordinator of `key`.
    let mut lookup = |key: &str| -> Result<(i32, ByteString, i32), ErrorCode> {
        call.check_injected()?;
        let id = match r.key_type {
            0 => {
                if let Some(e) = call
                    .cluster
                    .take_group_injected(key, ApiKey::FindCoordinator)
                {
                    return Err(e);
                }
                call.cluster.group_coordinator(key)?
            }
            1 => transaction_coordinator(&live, key).ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)?,
            // Share groups (2) are not simulated.
            _ => return Err(ErrorCode::INVALID_REQUEST),
        };
        live.iter()
            .find(|(b, _)| *b == id)
            .map(|(_, port)| (id, host.clone(), *port))
            .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)
    };
    let unknown = (-1, ByteString::new(), -1);
    if version >= 4 {
        let coordinators = r
            .coordinator_keys
            .iter()
            .map(|key| {
                let found = lookup(key);
                let error = found.as_ref().err().copied();
                let (node_id, host, port) = found.unwrap_or_else(|_| unknown.clone());
                find_coordinator_response::Coordinator {
                    key: key.clone(),
                    node_id,
                    host,
                    port,
                    error_code: error.map_or(0, ErrorCode::code),
                    error_message: error.and_then(error_message),
                    ..Default::default()
                }
            })
            .collect();
        return FindCoordinatorResponse {
            coordinators,
            ..Default::default()
        };
    }
    let found = lookup(&r.key);
    let error = found.as_ref().err().copied();
    let (node_id, host, port) = found.unwrap_or(unknown);
    FindCoordinatorResponse {
        node_id,
        host,
        port,
        error_code: error.map_or(0, ErrorCode::code),
        error_message: error.filter(|_| version >= 1).and_then(error_message),
        ..Default::default()
    }
}

/// JoinGroup; `None` while the request waits for the rebalance (parked on its
/// connection until the deadline the group gave, or until the group changes).
pub(super) fn join_group(call: &mut Call, r: &JoinGroupRequest) -> Option<JoinGroupResponse> {
    let error = call
        .group_error(&r.group_id, ApiKey::JoinGroup)
        .or_else(|| {
            // A consumer group (KIP-848) with members keeps its protocol; an empty one
            // becomes a classic group.
            let cgroups = &mut call.cluster.consumer_groups;
            if cgroups.has_members(&r.group_id) {
                Some(ErrorCode::INCONSISTENT_GROUP_PROTOCOL)
            } else {
                cgroups.remove_if_empty(&r.group_id);
                None
            }
        });
    if let Some(e) = error {
        return Some(JoinGroupResponse {
            error_code: e.code(),
            generation_id: -1,
            protocol_name: (call.version < 7).then(ByteString::new),
            member_id: r.member_id.clone(),
            ..Default::default()
        });
    }
    let first = call.first_look();
    let client_id = call.client_id.clone().unwrap_or_default();
    let reply = call
        .cluster
        .groups
        .join(r, call.version, &client_id, first, call.now);
    call.now_or_park(&r.group_id, reply)
}

/// SyncGroup; `None` while a follower waits for the leader's assignment.
pub(super) fn sync_group(call: &mut Call, r: &SyncGroupRequest) -> Option<SyncGroupResponse> {
    if let Some(e) = call.group_error(&r.group_id, ApiKey::SyncGroup) {
        return Some(SyncGroupResponse {
            error_code: e.code(),
            ..Default::default()
        });
    }
    let reply = call.cluster.groups.sync(r, call.version, call.now);
    call.now_or_park(&r.group_id, reply)
}

pub(super) fn heartbeat(call: &mut Call, r: &HeartbeatRequest) -> HeartbeatResponse {
    let error = call
        .group_error(&r.group_id, ApiKey::Heartbeat)
        .unwrap_or_else(|| call.cluster.groups.heartbeat(r, call.now));
    HeartbeatResponse {
        error_code: error.code(),
        ..Default::default()
    }
}

pub(super) fn leave_group(call: &mut Call, r: &LeaveGroupRequest) -> LeaveGroupResponse {
    match call.group_error(&r.group_id, ApiKey::LeaveGroup) {
        Some(e) => LeaveGroupResponse {
            error_code: e.code(),
            ..Default::default()
        },
        None => call.cluster.groups.leave(r, call.version, call.now),
    }
}

/// DescribeGroups: classic groups this broker coordinates (a KIP-848 group is `Dead`
/// here, as Kafka answers: ConsumerGroupDescribe describes it).
pub(super) fn describe_groups(
    call: &mut Call,
    r: &DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let groups = r
        .groups
        .iter()
        .map(
            |group| match call.group_error(group, ApiKey::DescribeGroups) {
                Some(e) => describe_groups_response::DescribedGroup {
                    error_code: e.code(),
                    group_id: group.clone(),
                    authorized_operations: i32::MIN,
                    ..Default::default()
                },
                None => call.cluster.groups.describe(group),
            },
        )
        .collect();
    DescribeGroupsResponse {
        groups,
        ..Default::default()
    }
}

/// ListGroups: the groups of either protocol this broker coordinates, filtered by
/// state (v4+) and type (v5+), both case-insensitive as in Kafka.
pub(super) fn list_groups(call: &mut Call, r: &ListGroupsRequest) -> ListGroupsResponse {
    if let Err(e) = call.check_injected() {
        return ListGroupsResponse {
            error_code: e.code(),
            ..Default::default()
        };
    }
    let classic = call
        .cluster
        .groups
        .listing()
        .into_iter()
        .map(|(id, protocol_type, state)| (id, protocol_type, state, "classic"));
    let consumer = call
        .cluster
        .consumer_groups
        .listing()
        .into_iter()
        .map(|(id, state)| (id, "consumer".to_owned(), state, "consumer"));
    let all: Vec<_> = classic.chain(consumer).collect();
    let wanted = |filter: &[ByteString], value: &str| {
        filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value))
    };
    let mut groups = Vec::new();
    for (id, protocol_type, state, kind) in all {
        let here = matches!(call.cluster.group_coordinator(&id), Ok(b) if b == call.broker);
        if here && wanted(&r.states_filter, state) && wanted(&r.types_filter, kind) {
            groups.push(list_groups_response::ListedGroup {
                group_id: ByteString::from(id),
                protocol_type: ByteString::from(protocol_type),
                group_state: ByteString::from(state),
                group_type: ByteString::from(kind),
                ..Default::default()
            });
        }
    }
    ListGroupsResponse {
        groups,
        ..Default::default()
    }
}
