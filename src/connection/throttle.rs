//! Broker throttling (KIP-219): where a response carries its throttle time.

use bytes::{Buf, Bytes};

use crate::messages::{ApiKey, Message, ProduceResponse};

/// The throttle time of a response, for the APIs whose throttle time is the first
/// field of the body (from the version given) and for Produce (last field, v1+).
/// Other responses (ApiVersions is handled in setup; delegation tokens, OffsetDelete)
/// are not inspected.
pub(super) fn throttle_time_ms(api_key: ApiKey, version: i16, body: &Bytes) -> Option<i32> {
    let key = api_key as i16;
    if key == ApiKey::Produce as i16 {
        if version < 1 {
            return None;
        }
        return ProduceResponse::decode(&mut body.clone(), version)
            .ok()
            .map(|r| r.throttle_time_ms);
    }
    let since = THROTTLE_FIRST_SINCE
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)?;
    if version < since {
        return None;
    }
    let mut b = body.clone();
    (b.remaining() >= 4).then(|| b.get_i32())
}

/// `(api key, first version)` of every response whose first field is ThrottleTimeMs,
/// taken from Kafka's message schemas.
const THROTTLE_FIRST_SINCE: &[(i16, i16)] = &[
    (1, 1),  // Fetch
    (2, 2),  // ListOffsets
    (3, 3),  // Metadata
    (8, 3),  // OffsetCommit
    (9, 3),  // OffsetFetch
    (10, 1), // FindCoordinator
    (11, 2), // JoinGroup
    (12, 1), // Heartbeat
    (13, 1), // LeaveGroup
    (14, 1), // SyncGroup
    (15, 1), // DescribeGroups
    (16, 1), // ListGroups
    (19, 2), // CreateTopics
    (20, 1), // DeleteTopics
    (21, 0), // DeleteRecords
    (22, 0), // InitProducerId
    (23, 2), // OffsetForLeaderEpoch
    (24, 0), // AddPartitionsToTxn
    (25, 0), // AddOffsetsToTxn
    (26, 0), // EndTxn
    (28, 0), // TxnOffsetCommit
    (29, 0), // DescribeAcls
    (30, 0), // CreateAcls
    (31, 0), // DeleteAcls
    (32, 0), // DescribeConfigs
    (33, 0), // AlterConfigs
    (34, 0), // AlterReplicaLogDirs
    (35, 0), // DescribeLogDirs
    (37, 0), // CreatePartitions
    (42, 0), // DeleteGroups
    (43, 0), // ElectLeaders
    (44, 0), // IncrementalAlterConfigs
    (45, 0), // AlterPartitionReassignments
    (46, 0), // ListPartitionReassignments
    (48, 0), // DescribeClientQuotas
    (49, 0), // AlterClientQuotas
    (50, 0), // DescribeUserScramCredentials
    (51, 0), // AlterUserScramCredentials
    (60, 0), // DescribeCluster
    (61, 0), // DescribeProducers
    (65, 0), // DescribeTransactions
    (66, 0), // ListTransactions
    (68, 0), // ConsumerGroupHeartbeat
    (69, 0), // ConsumerGroupDescribe
    (75, 0), // DescribeTopicPartitions
];
