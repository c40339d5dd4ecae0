//! The KIP-848 consumer group APIs: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe, over the coordinator of `sim/consumer_groups.rs`.

use super::Call;
use crate::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, ErrorCode,
    consumer_group_describe_response,
};
use crate::sim::consumer_groups::HeartbeatContext;
use crate::wire::{ByteString, Uuid};

pub(super) fn heartbeat(
    call: &mut Call,
    r: &ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let fail = |e: ErrorCode| ConsumerGroupHeartbeatResponse {
        error_code: e.code(),
        error_message: super::error_message(e),
        ..Default::default()
    };
    let group = &*r.group_id;
    if !group.is_empty() {
        if let Some(e) = call.group_error(group, ApiKey::ConsumerGroupHeartbeat) {
            return fail(e);
        }
        // A classic group with members keeps its protocol (Kafka, without online
        // migration, says the group is not a consumer group); an empty one changes.
        let classic = &mut call.cluster.groups;
        if classic.has_members(group) {
            return fail(ErrorCode::GROUP_ID_NOT_FOUND);
        }
        if classic.contains(group) && r.member_epoch == 0 {
            classic.remove_if_empty(group);
        }
    }
    let client_id = call.client_id.clone().unwrap_or_default();
    let cluster = &mut *call.cluster;
    let topics = &cluster.topics;
    let topic = |name: &str| -> Option<(Uuid, i32)> {
        topics
            .get(name)
            .filter(|t| !t.internal)
            .map(|t| (t.id, t.partitions.len() as i32))
    };
    let ctx = HeartbeatContext {
        version: call.version,
        client_id: &client_id,
        now: call.now,
        topic: &topic,
    };
    cluster.consumer_groups.heartbeat(r, &ctx)
}

pub(super) fn describe(
    call: &mut Call,
    r: &ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let groups = r
        .group_ids
        .iter()
        .map(|group| {
            let error = if group.is_empty() {
                Some(ErrorCode::INVALID_GROUP_ID)
            } else {
                call.group_error(group, ApiKey::ConsumerGroupDescribe)
            };
            let cluster = &*call.cluster;
            let name = |id| cluster.topic_name(id).cloned();
            let found = match error {
                Some(e) => Err((e, None)),
                None => cluster
                    .consumer_groups
                    .describe(group, &name)
                    .ok_or_else(|| {
                        let why = if cluster.groups.contains(group) {
                            format!("Group {group} is not a consumer group.")
                        } else {
                            format!("Group {group} not found.")
                        };
                        (ErrorCode::GROUP_ID_NOT_FOUND, Some(why))
                    }),
            };
            found.unwrap_or_else(
                |(e, why)| consumer_group_describe_response::DescribedGroup {
                    error_code: e.code(),
                    error_message: Some(ByteString::from(
                        why.unwrap_or_else(|| e.message().unwrap_or_default().to_owned()),
                    )),
                    group_id: group.clone(),
                    authorized_operations: i32::MIN,
                    ..Default::default()
                },
            )
        })
        .collect();
    ConsumerGroupDescribeResponse {
        groups,
        ..Default::default()
    }
}
