//! The group coordinator's APIs: FindCoordinator, and JoinGroup, SyncGroup,
//! Heartbeat and LeaveGroup over the classic protocol of `sim/groups.rs`.

use super::{Call, error_message};
use crate::messages::{
    ErrorCode, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    SyncGroupRequest, SyncGroupResponse, find_coordinator_response,
};
use crate::sim::groups::Reply;
use crate::wire::ByteString;

/// The coordinator of a group or transactional id: a live broker picked by the key's
/// hash (Kafka hashes the key onto a partition of `__consumer_offsets` or
/// `__transaction_state` and answers that partition's leader; the simulation keeps no
/// such topics, so it hashes onto the live brokers directly).
fn coordinator_for(live: &[(i32, i32)], key: &str) -> Option<(i32, i32)> {
    if live.is_empty() {
        return None;
    }
    // Java's String.hashCode, as Kafka's partitionFor uses: stable across runs.
    let hash = key
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    Some(live[(hash & 0x7fff_ffff) as usize % live.len()])
}

impl Call<'_> {
    /// Whether this broker coordinates `group`, or the error that says why not.
    pub(super) fn check_coordinator(&self, group: &str) -> Result<(), ErrorCode> {
        if group.is_empty() {
            return Err(ErrorCode::INVALID_GROUP_ID);
        }
        match coordinator_for(&self.cluster.live_brokers(), group) {
            Some((id, _)) if id == self.broker => Ok(()),
            Some(_) => Err(ErrorCode::NOT_COORDINATOR),
            None => Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
        }
    }

    /// The error a group request fails with before the group looks at it: the
    /// injected one, or the wrong coordinator.
    fn group_error(&self, group: &str) -> Option<ErrorCode> {
        self.check_injected()
            .and_then(|()| self.check_coordinator(group))
            .err()
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
    fn first_look(&self) -> bool {
        self.pending.deadline.is_none()
    }
}

pub(super) fn find_coordinator(
    call: &mut Call,
    r: &FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let live = call.cluster.live_brokers();
    let host = ByteString::from(call.cluster.config.host.clone());
    // (node id, host, port) of the coordinator of `key`.
    let lookup = |key: &str| -> Result<(i32, ByteString, i32), ErrorCode> {
        call.check_injected()?;
        // 0: group, 1: transaction; share groups (2) are not simulated.
        if !matches!(r.key_type, 0 | 1) {
            return Err(ErrorCode::INVALID_REQUEST);
        }
        coordinator_for(&live, key)
            .map(|(id, port)| (id, host.clone(), port))
            .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)
    };
    let unknown = (-1, ByteString::new(), -1);
    if call.version >= 4 {
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
        error_message: error.filter(|_| call.version >= 1).and_then(error_message),
        ..Default::default()
    }
}

/// JoinGroup; `None` while the request waits for the rebalance (parked on its
/// connection until the deadline the group gave, or until the group changes).
pub(super) fn join_group(call: &mut Call, r: &JoinGroupRequest) -> Option<JoinGroupResponse> {
    if let Some(e) = call.group_error(&r.group_id) {
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
    if let Some(e) = call.group_error(&r.group_id) {
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
        .group_error(&r.group_id)
        .unwrap_or_else(|| call.cluster.groups.heartbeat(r, call.now));
    HeartbeatResponse {
        error_code: error.code(),
        ..Default::default()
    }
}

pub(super) fn leave_group(call: &mut Call, r: &LeaveGroupRequest) -> LeaveGroupResponse {
    match call.group_error(&r.group_id) {
        Some(e) => LeaveGroupResponse {
            error_code: e.code(),
            ..Default::default()
        },
        None => call.cluster.groups.leave(r, call.version, call.now),
    }
}
