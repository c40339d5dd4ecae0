//! Membership requests (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! ConsumerGroupHeartbeat) as client operations: sent to the group's coordinator on
//! the group lane, retried by the client while the coordinator moves or loads, and
//! answered back to the group member with the broker's own error code to act on.

use std::sync::Arc;
use std::time::Duration;

use crate::client::metadata::Metadata;
use crate::client::op::{
    Built, CoordinatorKind, Ctx, Lane, Operation, Refresh, Reply, Step, Target, Versions, all,
    decode, version,
};
use crate::client::{ClientError, OpOutput};
use crate::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, ErrorCode,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse, leave_group_request,
};

/// A membership request, filled for the newest version; [`Call::request_for`] fits
/// it to the version the coordinator speaks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Call {
    Join(JoinGroupRequest),
    Sync(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    Leave(LeaveGroupRequest),
    Next(ConsumerGroupHeartbeatRequest),
}

/// A membership response, with the version it was read at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CallReply {
    Join(JoinGroupResponse, i16),
    Sync(SyncGroupResponse),
    Heartbeat(HeartbeatResponse),
    Leave(LeaveGroupResponse),
    Next(ConsumerGroupHeartbeatResponse),
}

impl CallReply {
    /// The response's top-level error code.
    pub(crate) fn error_code(&self) -> ErrorCode {
        ErrorCode(match self {
            CallReply::Join(r, _) => r.error_code,
            CallReply::Sync(r) => r.error_code,
            CallReply::Heartbeat(r) => r.error_code,
            CallReply::Leave(r) => r.error_code,
            CallReply::Next(r) => r.error_code,
        })
    }
}

impl Call {
    pub(crate) fn api(&self) -> ApiKey {
        match self {
            Call::Join(_) => ApiKey::JoinGroup,
            Call::Sync(_) => ApiKey::SyncGroup,
            Call::Heartbeat(_) => ApiKey::Heartbeat,
            Call::Leave(_) => ApiKey::LeaveGroup,
            Call::Next(_) => ApiKey::ConsumerGroupHeartbeat,
        }
    }

    fn group_id(&self) -> &str {
        match self {
            Call::Join(r) => &r.group_id,
            Call::Sync(r) => &r.group_id,
            Call::Heartbeat(r) => &r.group_id,
            Call::Leave(r) => &r.group_id,
            Call::Next(r) => &r.group_id,
        }
    }

    /// The version to send at, given what the coordinator offers.
    pub(crate) fn version(&self, versions: &Versions) -> Result<i16, ClientError> {
        let api = self.api();
        let v = version(versions, api).ok_or(ClientError::Unsupported(api))?;
        let needed = match self {
            // KIP-1082: v1 lets the member name itself; franz-go's `should848` also
            // asks for v1 before using the new protocol.
            Call::Next(_) => 1,
            // Static membership needs the instance id field.
            Call::Join(r) if r.group_instance_id.is_some() => 5,
            Call::Sync(r) if r.group_instance_id.is_some() => 3,
            Call::Heartbeat(r) if r.group_instance_id.is_some() => 3,
            Call::Leave(r) if r.members.iter().any(|m| m.group_instance_id.is_some()) => 3,
            _ => 0,
        };
        if v < needed {
            return Err(ClientError::Unsupported(api));
        }
        Ok(v)
    }

    /// The request as sent at `v` (fields that version lacks left out).
    pub(crate) fn request_for(&self, v: i16) -> Built {
        match self {
            Call::Join(r) => {
                let mut r = r.clone();
                if v < 8 {
                    r.reason = None;
                }
                Built::new(r, v)
            }
            Call::Sync(r) => Built::new(r.clone(), v),
            Call::Heartbeat(r) => Built::new(r.clone(), v),
            Call::Leave(r) => {
                let mut r = r.clone();
                if v >= 3 {
                    r.member_id = Default::default();
                } else {
                    let first = r.members.first().map(|m| m.member_id.clone());
                    r.member_id = first.unwrap_or_default();
                    r.members.clear();
                }
                if v < 5 {
                    for m in &mut r.members {
                        m.reason = None;
                    }
                }
                Built::new(r, v)
            }
            Call::Next(r) => Built::new(r.clone(), v),
        }
    }
}

/// A LeaveGroup for one member (built for every version; see [`Call::request_for`]).
pub(crate) fn leave_request(
    group: &str,
    member_id: &str,
    instance_id: Option<&str>,
) -> LeaveGroupRequest {
    LeaveGroupRequest {
        group_id: group.into(),
        members: vec![leave_group_request::MemberIdentity {
            member_id: member_id.into(),
            group_instance_id: instance_id.map(Into::into),
            reason: Some("the consumer is leaving the group".into()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// One membership request as an operation.
pub(crate) struct GroupCall {
    call: Call,
    group: Arc<str>,
    hold: Duration,
    reply: Option<CallReply>,
}

impl GroupCall {
    /// The operation and its one target (the group's coordinator). `hold` is how
    /// long the coordinator may legitimately keep the request (a JoinGroup waits for
    /// the rebalance).
    pub(crate) fn start(call: Call, hold: Duration) -> (Box<dyn Operation>, Vec<Target>) {
        let group: Arc<str> = call.group_id().into();
        let target = Target::Coordinator {
            kind: CoordinatorKind::Group,
            key: group.clone(),
        };
        let op = GroupCall {
            call,
            group,
            hold,
            reply: None,
        };
        (Box::new(op), vec![target])
    }
}

impl Operation for GroupCall {
    fn name(&self) -> &'static str {
        match self.call.api() {
            ApiKey::JoinGroup => "JoinGroup",
            ApiKey::SyncGroup => "SyncGroup",
            ApiKey::Heartbeat => "Heartbeat",
            ApiKey::LeaveGroup => "LeaveGroup",
            _ => "ConsumerGroupHeartbeat",
        }
    }

    fn lane(&self) -> Lane {
        Lane::Group
    }

    fn build(
        &mut self,
        _items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        let v = self.call.version(versions)?;
        Ok(self.call.request_for(v).hold(self.hold))
    }

    fn on_reply(
        &mut self,
        items: &[usize],
        reply: Reply,
        _ctx: &mut Ctx<'_>,
    ) -> Vec<(usize, Step)> {
        let version = match &reply {
            Reply::Response(r) => r.context.api_version.unwrap_or(0),
            Reply::Sent => 0,
        };
        let decoded = match self.call {
            Call::Join(_) => {
                decode::<JoinGroupRequest>(&reply).map(|r| CallReply::Join(r, version))
            }
            Call::Sync(_) => decode::<SyncGroupRequest>(&reply).map(CallReply::Sync),
            Call::Heartbeat(_) => decode::<HeartbeatRequest>(&reply).map(CallReply::Heartbeat),
            Call::Leave(_) => decode::<LeaveGroupRequest>(&reply).map(CallReply::Leave),
            Call::Next(_) => decode::<ConsumerGroupHeartbeatRequest>(&reply).map(CallReply::Next),
        };
        let reply = match decoded {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        let code = reply.error_code();
        // The coordinator moved or is loading: the client finds it again and resends.
        // Everything else is the member's to act on.
        let refresh = match code {
            ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => {
                Some(Refresh::Coordinator {
                    kind: CoordinatorKind::Group,
                    key: self.group.clone(),
                })
            }
            ErrorCode::COORDINATOR_LOAD_IN_PROGRESS => Some(Refresh::Nothing),
            _ => None,
        };
        if let Some(refresh) = refresh {
            let error = ClientError::broker(self.call.api(), code, None);
            return all(items, || Step::Retry {
                error: error.clone(),
                refresh: refresh.clone(),
            });
        }
        self.reply = Some(reply);
        all(items, || Step::Done)
    }

    fn take_group_reply(&mut self) -> Option<CallReply> {
        self.reply.take()
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        match failed.into_iter().next() {
            Some((_, e)) => Err(e),
            // The reply itself went out through `take_group_reply`.
            None => Ok(OpOutput::Topics(Vec::new())),
        }
    }
}
