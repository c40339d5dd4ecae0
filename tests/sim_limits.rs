//! Kafka's limits on the simulated cluster, driven by hand-made frames in virtual
//! time: one request in progress per connection, idle connections, the connection
//! cap, message and fetch sizes, group member ids and empty groups, the partition
//! caps, and injected error counts.
#![cfg(feature = "sim")]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // tests own their clock

use kafka_sansio::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, ErrorCode, FetchRequest, LeaveGroupRequest,
    MetadataRequest, SyncGroupRequest, create_topics_request, fetch_request, leave_group_request,
    metadata_request,
};
use kafka_sansio::sim::{ClusterConfig, SimError};
use kafka_sansio::wire::Bytes;
use std::time::Duration;

mod sim_harness;
use sim_harness::*;

fn config() -> ClusterConfig {
    ClusterConfig::default()
}

fn api_versions() -> ApiVersionsRequest {
    ApiVersionsRequest {
        client_software_name: "t".into(),
        client_software_version: "1".into(),
        ..Default::default()
    }
}

/// Kafka reads a connection's next request only once the reply to the previous one
/// is out; a transport that reads what `read_limit` asks never holds more.
#[test]
fn one_request_at_a_time_and_reads_pause_until_the_reply_is_taken() {
    let (mut h, c) = Harness::with_topic("t", 1, |c| c.max_queued_bytes = 1024);
    assert_eq!(h.cluster.read_limit(c), 4, "a size prefix first");
    let (first, id) = h.frame(&api_versions(), 3);
    h.cluster.handle_input(c, h.now, &first[..4]);
    assert_eq!(h.cluster.read_limit(c), first.len() - 4, "then its body");
    h.cluster.handle_input(c, h.now, &first[4..]);
    assert_eq!(h.cluster.read_limit(c), 0, "muted until the reply is taken");
    assert_eq!(h.cluster.poll_ready(), Some(c));
    assert!(h.read::<ApiVersionsRequest>(c, 3, id).is_some());
    assert_eq!(h.cluster.read_limit(c), 4, "reading again");

    // Two requests pushed at once: the second is read after the first reply.
    let (a, id_a) = h.frame(&api_versions(), 3);
    let (b, id_b) = h.frame(&MetadataRequest::default(), 12);
    h.cluster.handle_input(c, h.now, &[&a[..], &b[..]].concat());
    assert!(h.read::<ApiVersionsRequest>(c, 3, id_a).is_some());
    assert!(h.read::<MetadataRequest>(c, 12, id_b).is_some());

    // A Fetch waiting for data holds the connection: a Produce pushed behind it is
    // not read (nothing is written)...
    let (wait, _) = h.frame(&fetch("t", 0, 0, 1, 60_000), 12);
    h.cluster.handle_input(c, h.now, &wait);
    assert_eq!(h.cluster.read_limit(c), 0);
    let (write, _) = h.frame(&produce("t", 0, -1, batch(&["x"], None)), 9);
    h.cluster.handle_input(c, h.now, &write);
    assert_eq!(h.cluster.partition_offsets("t", 0), Some((0, 0)));
    assert_eq!(h.cluster.poll_closed(), None);
    // ...and more than max_queued_bytes of such input closes it.
    h.cluster.handle_input(c, h.now, &[0u8; 1024]);
    assert_eq!(h.cluster.poll_closed(), Some(c));
}

/// `connections.max.idle.ms`: a connection without a request in progress and
/// without input for that long is closed, half-sent frames included; a request in
/// progress is not idleness.
#[test]
fn idle_connections_close_but_a_waiting_request_keeps_its_connection() {
    let (mut h, idle) =
        Harness::with_topic("t", 1, |c| c.connections_max_idle = Duration::from_secs(10));
    let half = h.cluster.connect(0, h.now).unwrap();
    let waiting = h.cluster.connect(0, h.now).unwrap();
    h.cluster
        .handle_input(half, h.now, &[0, 0x10, 0, 0, 1, 2, 3]);
    let (wait, id) = h.frame(&fetch("t", 0, 0, 1, 30_000), 12);
    h.cluster.handle_input(waiting, h.now, &wait);
    assert_eq!(
        h.cluster.poll_timeout(),
        Some(h.now + Duration::from_secs(10))
    );
    h.advance(Duration::from_secs(9));
    assert_eq!(h.cluster.poll_closed(), None);
    h.advance(Duration::from_secs(1));
    let mut closed = vec![h.cluster.poll_closed(), h.cluster.poll_closed()];
    closed.sort();
    assert_eq!(closed, vec![Some(idle), Some(half)]);
    assert_eq!(
        h.cluster.poll_closed(),
        None,
        "the waiting fetch keeps its own"
    );
    h.advance(Duration::from_secs(20));
    assert!(h.read::<FetchRequest>(waiting, 12, id).is_some());
    h.advance(Duration::from_secs(10));
    assert_eq!(
        h.cluster.poll_closed(),
        Some(waiting),
        "idle after its answer"
    );
    assert_eq!(h.cluster.connection_count(), 0);
}

#[test]
fn max_connections_refuses_one_more() {
    let mut h = Harness::with_config(ClusterConfig {
        max_connections: 2,
        ..config()
    });
    let a = h.cluster.connect(0, h.now).unwrap();
    h.cluster.connect(0, h.now).unwrap();
    assert_eq!(
        h.cluster.connect(0, h.now),
        Err(SimError::TooManyConnections(2))
    );
    h.cluster.disconnect(a);
    assert!(h.cluster.connect(0, h.now).is_ok());
}

/// `message.max.bytes`: a larger batch is refused with MESSAGE_TOO_LARGE.
#[test]
fn message_max_bytes_refuses_a_larger_batch() {
    let (mut h, c) = Harness::with_topic("t", 1, |c| c.message_max_bytes = 300);
    let big = "x".repeat(400);
    let r = h.call(c, &produce("t", 0, -1, batch(&[&big], None)), 9);
    assert_eq!(
        ErrorCode::from(r.responses[0].partition_responses[0].error_code),
        ErrorCode::MESSAGE_TOO_LARGE
    );
    let r = h.call(c, &produce("t", 0, -1, batch(&["small"], None)), 9);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
}

/// A Fetch of partitions 0, 1 and 2 of "t" from `offsets`, with these limits.
fn fetch3(offsets: [i64; 3], max_bytes: i32, partition_max_bytes: i32) -> FetchRequest {
    FetchRequest {
        replica_id: -1,
        max_bytes,
        topics: vec![fetch_request::FetchTopic {
            topic: "t".into(),
            partitions: (0..3)
                .map(|p| fetch_request::FetchPartition {
                    partition: p,
                    fetch_offset: offsets[p as usize],
                    partition_max_bytes,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Record bytes per partition of a Fetch response.
fn sizes(r: &kafka_sansio::messages::FetchResponse) -> Vec<usize> {
    r.responses[0]
        .partitions
        .iter()
        .map(|p| p.records.as_ref().map_or(0, Bytes::len))
        .collect()
}

/// `fetch.max.bytes` caps a response whatever it asks, and as in Kafka (KIP-74) only
/// the first batch of the first partition with data may go over a limit.
#[test]
fn fetch_max_bytes_caps_a_response_and_only_the_first_partition_may_exceed() {
    let (mut h, c) = Harness::with_topic("t", 3, |c| c.fetch_max_bytes = 1000);
    let value = "v".repeat(500);
    for p in 0..3 {
        h.call(c, &produce("t", p, -1, batch(&[&value], None)), 9);
    }
    let one = h.cluster.partition_batches("t", 0)[0].len();
    assert!(one > 500 && one < 1000, "{one}");

    // max_bytes 100: partition 0's batch goes over it, 1 and 2 get nothing.
    let r = h.call(c, &fetch3([0, 0, 0], 100, 1 << 20), 12);
    assert_eq!(sizes(&r), vec![one, 0, 0]);
    // The request asks 1 MiB, the broker allows 1000 bytes: one batch fits.
    let r = h.call(c, &fetch3([0, 0, 0], 1 << 20, 1 << 20), 12);
    assert_eq!(sizes(&r), vec![one, 0, 0]);
    // Partition 0 has nothing past offset 1: partition 1 is the first with data and
    // may go over its partition limit; partition 2 may not.
    let r = h.call(c, &fetch3([1, 0, 0], 1 << 20, 100), 12);
    assert_eq!(sizes(&r), vec![0, one, 0]);
    assert!(r.responses[0].partitions.iter().all(|p| p.error_code == 0));
}

fn leave(group: &str, member: &str) -> LeaveGroupRequest {
    LeaveGroupRequest {
        group_id: group.into(),
        members: vec![leave_group_request::MemberIdentity {
            member_id: member.into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Member ids handed out with MEMBER_ID_REQUIRED cost nothing until used and expire
/// after the session timeout; session timeouts must be within the group limits; a
/// group left empty goes unless it has committed offsets; a silent member's group
/// goes on a timer, with nobody looking.
#[test]
fn pending_member_ids_expire_and_empty_groups_go() {
    let (mut h, c) = Harness::with_topic("t", 1, |c| {
        c.group_max_session_timeout = Duration::from_secs(60)
    });
    let code = |r: &kafka_sansio::messages::JoinGroupResponse| ErrorCode::from(r.error_code);

    for session in [5_999, 60_001] {
        let r = h.call(c, &join("g", "", session), 9);
        assert_eq!(code(&r), ErrorCode::INVALID_SESSION_TIMEOUT, "{session}");
    }
    let mut ids = Vec::new();
    for _ in 0..100 {
        let r = h.call(c, &join("g", "", 6_000), 9);
        assert_eq!(code(&r), ErrorCode::MEMBER_ID_REQUIRED);
        ids.push(r.member_id.to_string());
    }
    assert_eq!(h.cluster.group_count(), 0, "pending ids are not stored");
    assert_eq!(
        code(&h.call(c, &join("other", &ids[0], 6_000), 9)),
        ErrorCode::UNKNOWN_MEMBER_ID,
        "an id is for its group"
    );
    h.advance(Duration::from_millis(6_001));
    assert_eq!(
        code(&h.call(c, &join("g", &ids[1], 6_000), 9)),
        ErrorCode::UNKNOWN_MEMBER_ID,
        "expired after the session timeout"
    );

    // Joined then left, with no offsets: the group goes.
    let id = h.call(c, &join("g", "", 6_000), 9).member_id.to_string();
    assert_eq!(code(&h.call(c, &join("g", &id, 6_000), 9)), ErrorCode::NONE);
    assert_eq!(h.cluster.group_count(), 1);
    h.call(c, &leave("g", &id), 5);
    assert_eq!(h.cluster.group_count(), 0);

    // With a committed offset it stays (and keeps its generation), as in Kafka.
    let id = h.call(c, &join("kept", "", 6_000), 9).member_id.to_string();
    let r = h.call(c, &join("kept", &id, 6_000), 9);
    let sync = SyncGroupRequest {
        group_id: "kept".into(),
        generation_id: r.generation_id,
        member_id: id.as_str().into(),
        ..Default::default()
    };
    assert_eq!(h.call(c, &sync, 5).error_code, 0);
    let commit = commit("kept", &id, r.generation_id, 1);
    assert_eq!(h.call(c, &commit, 8).topics[0].partitions[0].error_code, 0);
    h.call(c, &leave("kept", &id), 5);
    assert_eq!(h.cluster.group_count(), 1);

    // A member that goes silent is dropped at its session's end, nobody asking.
    let id = h
        .call(c, &join("silent", "", 6_000), 9)
        .member_id
        .to_string();
    h.call(c, &join("silent", &id, 6_000), 9);
    assert_eq!(h.cluster.group_count(), 2);
    h.advance(Duration::from_millis(6_001));
    assert_eq!(h.cluster.group_count(), 1);
}

fn create(name: &str, partitions: i32) -> CreateTopicsRequest {
    CreateTopicsRequest {
        topics: vec![create_topics_request::CreatableTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: 1,
            ..Default::default()
        }],
        timeout_ms: 1000,
        ..Default::default()
    }
}

/// Metadata requests naming unknown topics auto-create them only up to their own
/// share of the partition cap: explicit creations keep their room.
#[test]
fn auto_creation_leaves_room_for_explicit_creations() {
    let mut h = Harness::with_config(ClusterConfig {
        max_partitions: 10,
        max_auto_created_partitions: 5,
        ..config()
    });
    let c = h.cluster.connect(0, h.now).unwrap();
    let names: Vec<String> = (0..8).map(|i| format!("auto{i}")).collect();
    let r = h.call(
        c,
        &MetadataRequest {
            topics: Some(
                names
                    .iter()
                    .map(|n| metadata_request::MetadataRequestTopic {
                        name: Some(n.as_str().into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            allow_auto_topic_creation: true,
            ..Default::default()
        },
        12,
    );
    let created = r.topics.iter().filter(|t| t.error_code == 0).count();
    assert_eq!(created, 5);
    assert_eq!(h.cluster.partition_count(), 5);
    let r = h.call(c, &create("explicit", 5), 7);
    assert_eq!(r.topics[0].error_code, 0, "the other half is still there");
    let r = h.call(c, &create("more", 1), 7);
    assert_eq!(
        ErrorCode::from(r.topics[0].error_code),
        ErrorCode::INVALID_PARTITIONS
    );
}

/// Any count of injected errors takes constant time and space (the kafka-sim command
/// `errors 0 6 18446744073709551615` once aborted the process, and
/// `errors 0 6 1000000000` stalled it).
#[test]
fn injected_error_counts_are_held_in_constant_space() {
    let (mut h, c) = Harness::with_topic("t", 1, |_| {});
    h.cluster.inject_error(
        ApiKey::Produce,
        ErrorCode::NOT_LEADER_OR_FOLLOWER,
        usize::MAX,
    );
    h.cluster.inject_error(
        ApiKey::Produce,
        ErrorCode::NOT_LEADER_OR_FOLLOWER,
        1_000_000_000,
    );
    assert_eq!(h.cluster.injected_pending(ApiKey::Produce), usize::MAX);
    h.cluster
        .inject_error(ApiKey::Fetch, ErrorCode::NOT_LEADER_OR_FOLLOWER, 2);
    h.cluster
        .inject_error(ApiKey::Fetch, ErrorCode::UNKNOWN_SERVER_ERROR, 1);
    let r = h.call(c, &produce("t", 0, -1, batch(&["x"], None)), 9);
    assert_eq!(
        ErrorCode::from(r.responses[0].partition_responses[0].error_code),
        ErrorCode::NOT_LEADER_OR_FOLLOWER
    );
    let codes: Vec<ErrorCode> = (0..4)
        .map(|_| {
            let f = h.call(c, &fetch("t", 0, 0, 0, 0), 12);
            ErrorCode::from(f.responses[0].partitions[0].error_code)
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            ErrorCode::NOT_LEADER_OR_FOLLOWER,
            ErrorCode::NOT_LEADER_OR_FOLLOWER,
            ErrorCode::UNKNOWN_SERVER_ERROR,
            ErrorCode::NONE
        ]
    );
}
