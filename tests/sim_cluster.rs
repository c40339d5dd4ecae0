//! The simulated cluster, driven by hand-made request frames and a virtual clock.
#![cfg(feature = "sim")]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // tests and tools own their clock and sockets

use kafka_sansio::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, DeleteRecordsRequest, ErrorCode, FetchRequest,
    InitProducerIdRequest, ListOffsetsRequest, Message, MetadataRequest, RequestHeader,
    create_topics_request, delete_records_request, list_offsets_request, metadata_request,
};
use kafka_sansio::wire::{BufMut, Bytes, BytesMut};
use std::time::Duration;

mod sim_harness;
use sim_harness::*;

#[test]
fn api_versions_lists_what_the_broker_answers_and_rejects_newer_versions_at_v0() {
    let mut h = Harness::new(1);
    let c = h.cluster.connect(0, h.now).unwrap();
    let r = h.call(
        c,
        &ApiVersionsRequest {
            client_software_name: "t".into(),
            client_software_version: "1".into(),
            ..Default::default()
        },
        3,
    );
    assert_eq!(r.error_code, 0);
    let produce = r
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce.as_i16())
        .unwrap();
    assert_eq!((produce.min_version, produce.max_version), (3, 11));
    assert!(
        r.api_keys
            .iter()
            .all(|k| k.api_key != ApiKey::DescribeAcls.as_i16())
    );

    // A version from the future: the header is read, the answer is v0 with error 35.
    let mut body = BytesMut::new();
    RequestHeader {
        request_api_key: 18,
        request_api_version: 9,
        correlation_id: 77,
        client_id: Some("x".into()),
        ..Default::default()
    }
    .encode(&mut body, 1)
    .unwrap();
    body.put_slice(b"\x00\x00\x00"); // whatever a v9 body is
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    h.cluster.handle_input(c, h.now, &frame);
    let r = h.read::<ApiVersionsRequest>(c, 0, 77).unwrap();
    assert_eq!(
        ErrorCode::from(r.error_code),
        ErrorCode::UNSUPPORTED_VERSION
    );
    assert!(!r.api_keys.is_empty());
}

#[test]
fn metadata_auto_creates_and_lists_brokers_and_leaders() {
    let mut h = Harness::new(3);
    let c = h.cluster.connect(1, h.now).unwrap();
    let request = MetadataRequest {
        topics: Some(vec![metadata_request::MetadataRequestTopic {
            name: Some("events".into()),
            ..Default::default()
        }]),
        allow_auto_topic_creation: true,
        ..Default::default()
    };
    let r = h.call(c, &request, 12);
    assert_eq!(r.brokers.len(), 3);
    assert_eq!(r.cluster_id.as_deref(), Some("kafka-sansio-sim"));
    let t = &r.topics[0];
    assert_eq!(t.error_code, 0);
    assert!(!t.topic_id.is_zero());
    assert_eq!(t.partitions.len(), 1);
    assert_eq!(t.partitions[0].replica_nodes.len(), 3);
    // Not allowed to create: unknown topic.
    let request = MetadataRequest {
        topics: Some(vec![metadata_request::MetadataRequestTopic {
            name: Some("other".into()),
            ..Default::default()
        }]),
        allow_auto_topic_creation: false,
        ..Default::default()
    };
    let r = h.call(c, &request, 12);
    assert_eq!(
        ErrorCode::from(r.topics[0].error_code),
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
    );
}

#[test]
fn produce_then_fetch_assigns_offsets_and_keeps_values() {
    let mut h = Harness::new(1);
    h.cluster.create_topic("t", 2, 1).unwrap();
    let c = h.cluster.connect(0, h.now).unwrap();
    let r = h.call(c, &produce("t", 1, -1, batch(&["a", "b", "c"], None)), 9);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    let r = h.call(c, &produce("t", 1, -1, batch(&["d"], None)), 9);
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 3);

    let f = h.call(c, &fetch("t", 1, 0, 1, 500), 12);
    let pd = &f.responses[0].partitions[0];
    assert_eq!(pd.high_watermark, 4);
    let values = values_of(pd.records.as_ref().unwrap());
    assert_eq!(
        values,
        vec![
            (0, "a".into()),
            (1, "b".into()),
            (2, "c".into()),
            (3, "d".into())
        ]
    );
    // Fetching from the middle of a batch returns the whole batch (as Kafka does).
    let f = h.call(c, &fetch("t", 1, 1, 1, 500), 12);
    assert_eq!(
        values_of(f.responses[0].partitions[0].records.as_ref().unwrap()).len(),
        4
    );
    // Past the end: OFFSET_OUT_OF_RANGE.
    let f = h.call(c, &fetch("t", 1, 9, 1, 500), 12);
    assert_eq!(
        ErrorCode::from(f.responses[0].partitions[0].error_code),
        ErrorCode::OFFSET_OUT_OF_RANGE
    );
}

#[test]
fn a_fetch_waits_in_virtual_time_for_data_or_its_max_wait() {
    let mut h = Harness::new(1);
    h.cluster.create_topic("t", 1, 1).unwrap();
    let consumer = h.cluster.connect(0, h.now).unwrap();
    let producer = h.cluster.connect(0, h.now).unwrap();
    let (frame, id) = h.frame(&fetch("t", 0, 0, 1, 1000), 12);
    h.cluster.handle_input(consumer, h.now, &frame);
    assert!(
        h.cluster.poll_transmit(consumer).is_none(),
        "parked: no data yet"
    );
    assert_eq!(
        h.cluster.poll_timeout(),
        Some(h.now + Duration::from_millis(1000))
    );
    h.advance(Duration::from_millis(100));
    assert!(h.cluster.poll_transmit(consumer).is_none());
    h.call(producer, &produce("t", 0, -1, batch(&["x"], None)), 9);
    h.advance(Duration::ZERO);
    let f = h
        .read::<FetchRequest>(consumer, 12, id)
        .expect("answered once data arrived");
    assert_eq!(
        values_of(f.responses[0].partitions[0].records.as_ref().unwrap()),
        vec![(0, "x".into())]
    );

    // With nothing arriving, the answer comes empty at the deadline.
    let (frame, id) = h.frame(&fetch("t", 0, 1, 1, 250), 12);
    h.cluster.handle_input(consumer, h.now, &frame);
    h.advance(Duration::from_millis(249));
    assert!(h.cluster.poll_transmit(consumer).is_none());
    h.advance(Duration::from_millis(1));
    let f = h.read::<FetchRequest>(consumer, 12, id).unwrap();
    assert!(
        f.responses[0].partitions[0]
            .records
            .as_ref()
            .unwrap()
            .is_empty()
    );
}

/// As Kafka's delayed fetch: min bytes counts what the partitions hold from the
/// offsets asked (each up to its partition max bytes), not what the request's max
/// bytes lets one answer carry; so a fetch whose max bytes is below its min bytes is
/// answered at once when enough is there, not at its max wait.
#[test]
fn min_bytes_counts_what_is_there_not_what_max_bytes_lets_through() {
    let mut h = Harness::new(1);
    h.cluster.create_topic("t", 1, 1).unwrap();
    let consumer = h.cluster.connect(0, h.now).unwrap();
    let producer = h.cluster.connect(0, h.now).unwrap();
    for i in 0..30 {
        let value = format!("{i:0>100}");
        h.call(
            producer,
            &produce("t", 0, -1, batch(&[value.as_str()], None)),
            9,
        );
    }
    let mut request = fetch("t", 0, 0, 2000, 1000);
    request.max_bytes = 600;
    let (frame, id) = h.frame(&request, 12);
    h.cluster.handle_input(consumer, h.now, &frame);
    h.advance(Duration::ZERO);
    let f = h
        .read::<FetchRequest>(consumer, 12, id)
        .expect("answered at once: the partition holds over 2000 bytes");
    let got = values_of(f.responses[0].partitions[0].records.as_ref().unwrap());
    assert!(!got.is_empty() && got.len() < 30, "{} records", got.len());
}

#[test]
fn acks_one_data_is_lost_if_the_leader_crashes_before_replication_but_acks_all_survives() {
    let mut h = Harness::new(3);
    h.cluster.create_topic("t", 1, 3).unwrap();
    let leader = h.cluster.partition_leader("t", 0).unwrap();
    let c = h.cluster.connect(leader, h.now).unwrap();
    let r = h.call(c, &produce("t", 0, -1, batch(&["safe"], None)), 9);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    let r = h.call(c, &produce("t", 0, 1, batch(&["at-risk"], None)), 9);
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 1);
    // acks=0: no response at all.
    let (frame, _) = h.frame(&produce("t", 0, 0, batch(&["fire-and-forget"], None)), 9);
    h.cluster.handle_input(c, h.now, &frame);
    assert!(h.cluster.poll_transmit(c).is_none());

    h.cluster
        .crash_broker(leader, h.now + Duration::from_millis(1));
    assert_eq!(h.cluster.poll_closed(), Some(c));
    let new_leader = h.cluster.partition_leader("t", 0).unwrap();
    assert_ne!(new_leader, leader);
    let c2 = h.cluster.connect(new_leader, h.now).unwrap();
    let f = h.call(c2, &fetch("t", 0, 0, 1, 0), 12);
    assert_eq!(
        values_of(f.responses[0].partitions[0].records.as_ref().unwrap()),
        vec![(0, "safe".into())]
    );
    // The old leader's broker refuses connections while down and takes them again later.
    assert!(h.cluster.connect(leader, h.now).is_err());
    h.cluster.restart_broker(leader, h.now);
    let c3 = h.cluster.connect(leader, h.now).unwrap();
    let r = h.call(c3, &produce("t", 0, -1, batch(&["wrong broker"], None)), 9);
    assert_eq!(
        ErrorCode::from(r.responses[0].partition_responses[0].error_code),
        ErrorCode::NOT_LEADER_OR_FOLLOWER
    );
}

#[test]
fn idempotent_producer_retries_are_acknowledged_once_and_gaps_refused() {
    let mut h = Harness::new(1);
    h.cluster.create_topic("t", 1, 1).unwrap();
    let c = h.cluster.connect(0, h.now).unwrap();
    let init = h.call(
        c,
        &InitProducerIdRequest {
            transactional_id: None,
            transaction_timeout_ms: 0,
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        },
        4,
    );
    let (pid, epoch) = (init.producer_id, init.producer_epoch);
    assert!(pid >= 0);
    let first = batch(&["a", "b"], Some((pid, epoch, 0)));
    let r = h.call(c, &produce("t", 0, -1, first.clone()), 9);
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 0);
    // The same batch again (a retry after a lost response): same offset, no duplicate.
    let r = h.call(c, &produce("t", 0, -1, first), 9);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    // A gap in sequence numbers is refused.
    let r = h.call(
        c,
        &produce("t", 0, -1, batch(&["z"], Some((pid, epoch, 5)))),
        9,
    );
    assert_eq!(
        ErrorCode::from(r.responses[0].partition_responses[0].error_code),
        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    let r = h.call(
        c,
        &produce("t", 0, -1, batch(&["c"], Some((pid, epoch, 2)))),
        9,
    );
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 2);
    let f = h.call(c, &fetch("t", 0, 0, 1, 0), 12);
    assert_eq!(
        values_of(f.responses[0].partitions[0].records.as_ref().unwrap()).len(),
        3
    );
}

#[test]
fn list_offsets_delete_records_and_create_topics() {
    let mut h = Harness::new(1);
    let c = h.cluster.connect(0, h.now).unwrap();
    let create = CreateTopicsRequest {
        topics: vec![
            create_topics_request::CreatableTopic {
                name: "logs".into(),
                num_partitions: 2,
                replication_factor: 1,
                ..Default::default()
            },
            create_topics_request::CreatableTopic {
                name: "bad".into(),
                num_partitions: 1,
                replication_factor: 3,
                ..Default::default()
            },
        ],
        timeout_ms: 1000,
        ..Default::default()
    };
    let r = h.call(c, &create, 7);
    assert_eq!(r.topics[0].error_code, 0);
    assert!(!r.topics[0].topic_id.is_zero());
    assert_eq!(
        ErrorCode::from(r.topics[1].error_code),
        ErrorCode::INVALID_REPLICATION_FACTOR
    );
    let r = h.call(c, &create, 7);
    assert_eq!(
        ErrorCode::from(r.topics[0].error_code),
        ErrorCode::TOPIC_ALREADY_EXISTS
    );

    for values in [&["a", "b"][..], &["c"], &["d", "e"]] {
        h.call(c, &produce("logs", 0, -1, batch(values, None)), 9);
    }
    let list = |ts: i64| ListOffsetsRequest {
        replica_id: -1,
        topics: vec![list_offsets_request::ListOffsetsTopic {
            name: "logs".into(),
            partitions: vec![list_offsets_request::ListOffsetsPartition {
                partition_index: 0,
                timestamp: ts,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let offset = |h: &mut Harness, ts| h.call(c, &list(ts), 7).topics[0].partitions[0].offset;
    assert_eq!(offset(&mut h, -2), 0);
    assert_eq!(offset(&mut h, -1), 5);
    // Timestamps are 1000 + index within each batch: the first record at or after 1001.
    assert_eq!(offset(&mut h, 1001), 1);
    assert_eq!(offset(&mut h, 5000), -1);

    let delete = DeleteRecordsRequest {
        topics: vec![delete_records_request::DeleteRecordsTopic {
            name: "logs".into(),
            partitions: vec![delete_records_request::DeleteRecordsPartition {
                partition_index: 0,
                offset: 3,
                ..Default::default()
            }],
            ..Default::default()
        }],
        timeout_ms: 1000,
        ..Default::default()
    };
    let r = h.call(c, &delete, 2);
    assert_eq!(r.topics[0].partitions[0].low_watermark, 3);
    assert_eq!(offset(&mut h, -2), 3);
    let f = h.call(c, &fetch("logs", 0, 0, 1, 0), 12);
    assert_eq!(
        ErrorCode::from(f.responses[0].partitions[0].error_code),
        ErrorCode::OFFSET_OUT_OF_RANGE
    );
}

#[test]
fn injected_errors_and_throttling() {
    let mut h = Harness::new(1);
    h.cluster.create_topic("t", 1, 1).unwrap();
    let c = h.cluster.connect(0, h.now).unwrap();
    h.cluster
        .inject_error(ApiKey::Produce, ErrorCode::NOT_ENOUGH_REPLICAS, 1);
    h.cluster.faults.throttle_ms = 250;
    let r = h.call(c, &produce("t", 0, -1, batch(&["x"], None)), 9);
    assert_eq!(
        ErrorCode::from(r.responses[0].partition_responses[0].error_code),
        ErrorCode::NOT_ENOUGH_REPLICAS
    );
    assert_eq!(r.throttle_time_ms, 250);
    assert_eq!(
        h.cluster.partition_offsets("t", 0),
        Some((0, 0)),
        "nothing written"
    );
    let r = h.call(c, &produce("t", 0, -1, batch(&["x"], None)), 9);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
}

#[test]
fn garbage_and_unknown_apis_close_the_connection() {
    let mut h = Harness::new(1);
    let c = h.cluster.connect(0, h.now).unwrap();
    // DescribeAcls is not implemented: the connection closes, as Kafka does for
    // requests it cannot handle.
    h.cluster.handle_input(
        c,
        h.now,
        b"\x00\x00\x00\x0a\x00\x1d\x00\x01\x00\x00\x00\x01\xff\xff",
    );
    assert_eq!(h.cluster.poll_closed(), Some(c));
    let c = h.cluster.connect(0, h.now).unwrap();
    h.cluster.handle_input(c, h.now, b"\x7f\xff\xff\xff");
    assert_eq!(h.cluster.poll_closed(), Some(c), "an oversized frame");
}

mod sasl {
    use kafka_sansio::connection::sasl::{SaslConfig, SaslMechanism};
    use kafka_sansio::connection::{Config, Event};
    use kafka_sansio::messages::MetadataRequest;
    use kafka_sansio::sim::{ClusterConfig, NetworkConfig, SimSasl, Simulation};
    use std::time::{Duration, Instant};

    fn login(mechanism: SaslMechanism, password: &str) -> Vec<Event> {
        let cluster = ClusterConfig {
            sasl: Some(SimSasl::user("alice", "s3cret")),
            ..ClusterConfig::default()
        };
        let mut sim = Simulation::new(11, cluster, NetworkConfig::default(), Instant::now());
        let mut config = Config::new("sim-0");
        config.sasl = Some(SaslConfig {
            oauth: None,
            mechanism,
            username: "alice".into(),
            password: password.into(),
            nonce: "fyko+d2lbbFgONRv9qkxdawL".into(),
        });
        let c = sim.connect(0, config);
        let now = sim.now();
        sim.connection(c)
            .send(
                now,
                MetadataRequest {
                    topics: None,
                    ..Default::default()
                },
            )
            .unwrap();
        sim.run_for(Duration::from_secs(1));
        sim.events(c).collect()
    }

    #[test]
    fn plain_and_both_scram_hashes_log_in_and_open_the_other_apis() {
        for mechanism in [
            SaslMechanism::Plain,
            SaslMechanism::ScramSha256,
            SaslMechanism::ScramSha512,
        ] {
            let events = login(mechanism, "s3cret");
            assert!(
                matches!(events.first(), Some(Event::Ready)),
                "{mechanism:?}: {events:?}"
            );
            assert!(
                events.iter().any(
                    |e| matches!(e, Event::Response(r) if r.decode::<MetadataRequest>().is_ok())
                ),
                "{mechanism:?}: {events:?}"
            );
        }
    }

    #[test]
    fn a_wrong_password_fails_the_connection_and_its_requests() {
        for mechanism in [
            SaslMechanism::Plain,
            SaslMechanism::ScramSha256,
            SaslMechanism::ScramSha512,
        ] {
            let events = login(mechanism, "wrong");
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, Event::Ready | Event::Response(_))),
                "{mechanism:?}: {events:?}"
            );
            assert!(
                events.iter().any(|e| matches!(e, Event::RequestFailed(_))),
                "{mechanism:?}: {events:?}"
            );
            assert!(
                matches!(events.last(), Some(Event::Closed(_))),
                "{mechanism:?}: {events:?}"
            );
        }
    }
}

/// librdkafka takes FindCoordinator v0 as the sign that a broker decompresses gzip and
/// snappy, and v1 as the sign for lz4: without it, kcat and confluent-kafka produce
/// uncompressed batches whatever codec they are asked for (found by
/// tests/sim_real_clients.rs). Every Kafka broker answers it.
#[test]
fn find_coordinator_is_advertised_and_names_a_live_broker() {
    use kafka_sansio::messages::FindCoordinatorRequest;
    let mut h = Harness::new(3);
    let c = h.cluster.connect(1, h.now).unwrap();
    let versions = h.call(c, &ApiVersionsRequest::default(), 0);
    let fc = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::FindCoordinator.as_i16())
        .expect("FindCoordinator advertised");
    assert_eq!((fc.min_version, fc.max_version), (0, 6));

    let ports: Vec<i32> = (0..3).map(|i| 9092 + i).collect();
    let single = |h: &mut Harness, version: i16, key: &str, key_type: i8| {
        h.call(
            c,
            &FindCoordinatorRequest {
                key: key.into(),
                key_type,
                ..Default::default()
            },
            version,
        )
    };
    let mut first = None;
    for version in 0..=3 {
        let r = single(&mut h, version, "my-group", 0);
        assert_eq!(r.error_code, 0, "v{version}");
        assert!((0..3).contains(&r.node_id), "v{version}: {r:?}");
        assert_eq!(r.host, "127.0.0.1");
        assert_eq!(r.port, ports[r.node_id as usize]);
        // The same key always maps to the same coordinator.
        assert_eq!(*first.get_or_insert(r.node_id), r.node_id);
    }
    // Share groups (key type 2) are not simulated.
    let r = single(&mut h, 3, "my-group", 2);
    assert_eq!(ErrorCode::from(r.error_code), ErrorCode::INVALID_REQUEST);
    assert_eq!(r.node_id, -1);

    // v4+: batched keys, group and transaction alike.
    let r = h.call(
        c,
        &FindCoordinatorRequest {
            key_type: 1,
            coordinator_keys: vec!["txn-a".into(), "txn-b".into()],
            ..Default::default()
        },
        6,
    );
    assert_eq!(r.coordinators.len(), 2);
    for co in &r.coordinators {
        assert_eq!(co.error_code, 0);
        assert_eq!(co.port, ports[co.node_id as usize]);
    }

    // The coordinators move to live brokers when brokers crash (broker 1, which we
    // are connected to, stays up).
    for dead in [0, 2] {
        h.cluster.crash_broker(dead, h.now);
        for key in ["my-group", "other", "g3", "g4"] {
            let r = single(&mut h, 3, key, 0);
            assert_eq!(r.error_code, 0);
            assert!(h.cluster.is_up(r.node_id), "{key}: {r:?}");
        }
    }
    let r = single(&mut h, 3, "my-group", 0);
    assert_eq!(r.node_id, 1, "the only live broker");
}

/// Consumers that assign partitions themselves (kcat, confluent-kafka and
/// kafka-python with assign()) commit and read offsets for a group with no members:
/// OffsetCommit with generation -1, at the group's coordinator.
#[test]
fn offsets_commit_and_fetch_for_a_group_without_members() {
    use kafka_sansio::messages::{
        FindCoordinatorRequest, OffsetCommitRequest, OffsetFetchRequest, offset_commit_request,
        offset_fetch_request,
    };
    let mut h = Harness::new(3);
    h.cluster.create_topic("t", 2, 3).unwrap();
    let any = h.cluster.connect(0, h.now).unwrap();
    let coordinator = h
        .call(
            any,
            &FindCoordinatorRequest {
                key: "g".into(),
                ..Default::default()
            },
            3,
        )
        .node_id;
    let at = h.cluster.connect(coordinator, h.now).unwrap();
    let elsewhere = h.cluster.connect((coordinator + 1) % 3, h.now).unwrap();
    let versions = h.call(at, &ApiVersionsRequest::default(), 0);
    for (api, range) in [
        (ApiKey::OffsetCommit, (2, 9)),
        (ApiKey::OffsetFetch, (1, 9)),
    ] {
        let k = versions
            .api_keys
            .iter()
            .find(|k| k.api_key == api.as_i16())
            .unwrap();
        assert_eq!((k.min_version, k.max_version), range, "{api:?}");
    }

    let commit = |generation: i32, parts: &[(i32, i64, &str)]| OffsetCommitRequest {
        group_id: "g".into(),
        generation_id_or_member_epoch: generation,
        topics: vec![offset_commit_request::OffsetCommitRequestTopic {
            name: "t".into(),
            partitions: parts
                .iter()
                .map(
                    |(p, o, m)| offset_commit_request::OffsetCommitRequestPartition {
                        partition_index: *p,
                        committed_offset: *o,
                        committed_leader_epoch: 4,
                        committed_metadata: Some((*m).into()),
                        ..Default::default()
                    },
                )
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let codes = |r: &kafka_sansio::messages::OffsetCommitResponse| -> Vec<ErrorCode> {
        r.topics[0]
            .partitions
            .iter()
            .map(|p| ErrorCode::from(p.error_code))
            .collect()
    };
    let too_big = "x".repeat(4097);
    for version in [2, 7, 9] {
        let r = h.call(
            at,
            &commit(
                -1,
                &[
                    (0, 10 + i64::from(version), "m"),
                    (1, 5, ""),
                    (7, 1, ""),
                    (1, 6, &too_big),
                ],
            ),
            version,
        );
        assert_eq!(
            codes(&r),
            [
                ErrorCode::NONE,
                ErrorCode::NONE,
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                ErrorCode::OFFSET_METADATA_TOO_LARGE
            ],
            "v{version}"
        );
    }
    // Only the coordinator takes commits; a member's generation is refused (no group
    // has members here).
    let r = h.call(elsewhere, &commit(-1, &[(0, 99, "")]), 8);
    assert_eq!(codes(&r), [ErrorCode::NOT_COORDINATOR]);
    let r = h.call(at, &commit(3, &[(0, 99, "")]), 8);
    assert_eq!(codes(&r), [ErrorCode::ILLEGAL_GENERATION]);

    // v1: per partition, errors inside; unknown partitions read -1.
    let fetch_v7 = |topics: Option<Vec<i32>>| OffsetFetchRequest {
        group_id: "g".into(),
        topics: topics.map(|ps| {
            vec![offset_fetch_request::OffsetFetchRequestTopic {
                name: "t".into(),
                partition_indexes: ps.into(),
                ..Default::default()
            }]
        }),
        ..Default::default()
    };
    let r = h.call(at, &fetch_v7(Some(vec![0, 1, 5])), 1);
    let got: Vec<(i32, i64, i16)> = r.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset, p.error_code))
        .collect();
    assert_eq!(got, [(0, 19, 0), (1, 5, 0), (5, -1, 0)]);
    assert_eq!(h.cluster.committed_offset("g", "t", 0), Some(19));
    assert_eq!(h.cluster.committed_offset("g", "t", 5), None);
    let r = h.call(elsewhere, &fetch_v7(Some(vec![0])), 1);
    assert_eq!(
        ErrorCode::from(r.topics[0].partitions[0].error_code),
        ErrorCode::NOT_COORDINATOR
    );
    // v7: null topics = everything the group committed; leader epoch and metadata kept.
    let r = h.call(at, &fetch_v7(None), 7);
    assert_eq!(r.error_code, 0);
    let p0 = &r.topics[0].partitions[0];
    assert_eq!(
        (
            p0.committed_offset,
            p0.committed_leader_epoch,
            p0.metadata.as_deref()
        ),
        (19, 4, Some("m"))
    );
    assert_eq!(r.topics[0].partitions.len(), 2);
    let r = h.call(elsewhere, &fetch_v7(None), 7);
    assert_eq!(ErrorCode::from(r.error_code), ErrorCode::NOT_COORDINATOR);
    // v8+: batched groups; an unknown group has no offsets.
    let r = h.call(
        at,
        &OffsetFetchRequest {
            groups: vec![offset_fetch_request::OffsetFetchRequestGroup {
                group_id: "g".into(),
                topics: None,
                ..Default::default()
            }],
            ..Default::default()
        },
        9,
    );
    let g = &r.groups[0];
    assert_eq!((g.error_code, g.topics[0].partitions.len()), (0, 2));
    assert_eq!(g.topics[0].partitions[1].committed_offset, 5);

    // Deleting the topic drops its committed offsets.
    let r = h.call(
        at,
        &kafka_sansio::messages::DeleteTopicsRequest {
            topic_names: vec!["t".into()],
            ..Default::default()
        },
        4,
    );
    assert_eq!(r.responses[0].error_code, 0);
    let r = h.call(at, &fetch_v7(None), 7);
    assert!(r.topics.is_empty(), "{r:?}");
}

/// Kafka answers a fetch between the high watermark and the log end offset with no
/// records (the consumer waits there); only past the log end is out of range. The sim
/// used to say out of range, and confluent-kafka with auto.offset.reset=earliest then
/// re-read the partition from the start (tests/sim_real_clients.rs).
#[test]
fn a_fetch_between_high_watermark_and_log_end_waits_instead_of_out_of_range() {
    let mut h = Harness::new(3);
    h.cluster.create_topic("t", 1, 3).unwrap();
    let c = h.cluster.connect(0, h.now).unwrap();
    // acks=1: written (log end 2) but not replicated yet (high watermark 0).
    let r = h.call(c, &produce("t", 0, 1, batch(&["a", "b"], None)), 9);
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 0);
    assert_eq!(h.cluster.partition_offsets("t", 0), Some((0, 0)));

    for offset in [1, 2] {
        let f = h.call(c, &fetch("t", 0, offset, 0, 0), 12);
        let pd = &f.responses[0].partitions[0];
        assert_eq!(pd.error_code, 0, "offset {offset} is below the log end");
        assert_eq!(pd.high_watermark, 0);
        assert!(pd.records.as_ref().is_none_or(|r| r.is_empty()));
    }
    let f = h.call(c, &fetch("t", 0, 3, 0, 0), 12);
    assert_eq!(
        ErrorCode::from(f.responses[0].partitions[0].error_code),
        ErrorCode::OFFSET_OUT_OF_RANGE,
        "past the log end"
    );

    // A long poll from offset 1 is answered once the batch is replicated.
    let (frame, id) = h.frame(&fetch("t", 0, 1, 1, 10_000), 12);
    h.cluster.handle_input(c, h.now, &frame);
    assert!(h.cluster.poll_transmit(c).is_none(), "it waits");
    h.advance(Duration::from_millis(10));
    let f = h
        .read::<FetchRequest>(c, 12, id)
        .expect("answered after replication");
    let pd = &f.responses[0].partitions[0];
    assert_eq!(pd.high_watermark, 2);
    assert_eq!(
        values_of(pd.records.as_ref().unwrap()),
        vec![(0, "a".into()), (1, "b".into())]
    );
}

/// Consumers check their position against a new leader with OffsetForLeaderEpoch
/// (KIP-320); kafka-python stops fetching a partition for good when the broker lacks
/// it (tests/sim_real_clients.rs). The answer follows Kafka's leader epoch cache.
#[test]
fn offset_for_leader_epoch_answers_the_end_of_each_epoch() {
    use kafka_sansio::messages::{OffsetForLeaderEpochRequest, offset_for_leader_epoch_request};
    let mut h = Harness::new(3);
    h.cluster.create_topic("t", 1, 3).unwrap();
    let c0 = h.cluster.connect(0, h.now).unwrap();
    let versions = h.call(c0, &ApiVersionsRequest::default(), 0);
    let k = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::OffsetForLeaderEpoch.as_i16())
        .expect("advertised");
    assert_eq!((k.min_version, k.max_version), (2, 4));
    // Epoch 0 on broker 0: offsets 0-2.
    h.call(c0, &produce("t", 0, -1, batch(&["a", "b"], None)), 9);
    h.call(c0, &produce("t", 0, -1, batch(&["c"], None)), 9);
    h.cluster.crash_broker(0, h.now);
    let leader = h.cluster.partition_leader("t", 0).unwrap();
    let c = h.cluster.connect(leader, h.now).unwrap();
    // Epoch 1 on the new leader: offset 3.
    let r = h.call(c, &produce("t", 0, -1, batch(&["d"], None)), 9);
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 3);

    let ask = |h: &mut Harness, conn, current: i32, epoch: i32| {
        let r = h.call(
            conn,
            &OffsetForLeaderEpochRequest {
                replica_id: -1,
                topics: vec![offset_for_leader_epoch_request::OffsetForLeaderTopic {
                    topic: "t".into(),
                    partitions: vec![offset_for_leader_epoch_request::OffsetForLeaderPartition {
                        partition: 0,
                        current_leader_epoch: current,
                        leader_epoch: epoch,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
            4,
        );
        let p = &r.topics[0].partitions[0];
        (ErrorCode::from(p.error_code), p.leader_epoch, p.end_offset)
    };
    // Epoch 0 ended where epoch 1 began; the current epoch ends at the log end.
    assert_eq!(ask(&mut h, c, 1, 0), (ErrorCode::NONE, 0, 3));
    assert_eq!(ask(&mut h, c, 1, 1), (ErrorCode::NONE, 1, 4));
    assert_eq!(
        ask(&mut h, c, -1, 0),
        (ErrorCode::NONE, 0, 3),
        "no epoch check"
    );
    assert_eq!(
        ask(&mut h, c, -1, 7),
        (ErrorCode::NONE, -1, -1),
        "an unknown epoch"
    );
    // The caller's view of the leader epoch is checked.
    assert_eq!(ask(&mut h, c, 0, 0).0, ErrorCode::FENCED_LEADER_EPOCH);
    assert_eq!(ask(&mut h, c, 2, 0).0, ErrorCode::UNKNOWN_LEADER_EPOCH);
    // Only the leader answers.
    let other = (0..3)
        .find(|b| *b != leader && h.cluster.is_up(*b))
        .unwrap();
    let c2 = h.cluster.connect(other, h.now).unwrap();
    assert_eq!(ask(&mut h, c2, 1, 0).0, ErrorCode::NOT_LEADER_OR_FOLLOWER);
}

/// CreatePartitions grows a topic; a count that does not grow it is refused with
/// Kafka's own wording (confluent-kafka's AdminClient showed the generic
/// "Number of partitions is below 1." for a request of 2 on a 3-partition topic).
#[test]
fn create_partitions_grows_and_explains_a_refusal() {
    use kafka_sansio::messages::{CreatePartitionsRequest, create_partitions_request};
    let mut h = Harness::new(3);
    h.cluster.create_topic("t", 2, 3).unwrap();
    let c = h.cluster.connect(0, h.now).unwrap();
    let ask = |h: &mut Harness, name: &str, count: i32| {
        let r = h.call(
            c,
            &CreatePartitionsRequest {
                topics: vec![create_partitions_request::CreatePartitionsTopic {
                    name: name.into(),
                    count,
                    assignments: None,
                    ..Default::default()
                }],
                timeout_ms: 1000,
                ..Default::default()
            },
            3,
        );
        let t = &r.results[0];
        (
            ErrorCode::from(t.error_code),
            t.error_message.as_deref().map(str::to_owned),
        )
    };
    assert_eq!(ask(&mut h, "t", 4), (ErrorCode::NONE, None));
    assert!(h.cluster.partition_leader("t", 3).is_some());
    assert_eq!(
        ask(&mut h, "t", 3),
        (
            ErrorCode::INVALID_PARTITIONS,
            Some("Topic currently has 4 partitions, which is higher than the requested 3.".into())
        )
    );
    assert_eq!(
        ask(&mut h, "t", 4),
        (
            ErrorCode::INVALID_PARTITIONS,
            Some("Topic already has 4 partitions.".into())
        )
    );
    assert_eq!(
        ask(&mut h, "nope", 4).0,
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
    );
}

#[test]
fn injected_pending_counts_errors_not_yet_served() {
    let mut h = Harness::new(1);
    h.cluster.create_topic("t", 1, 1).unwrap();
    h.cluster
        .inject_error(ApiKey::Produce, ErrorCode::NOT_LEADER_OR_FOLLOWER, 2);
    assert_eq!(h.cluster.injected_pending(ApiKey::Produce), 2);
    assert_eq!(h.cluster.injected_pending(ApiKey::Fetch), 0);
    let c = h.cluster.connect(0, h.now).unwrap();
    let r = h.call(c, &produce("t", 0, -1, batch(&["a"], None)), 9);
    assert_eq!(
        ErrorCode::from(r.responses[0].partition_responses[0].error_code),
        ErrorCode::NOT_LEADER_OR_FOLLOWER
    );
    assert_eq!(h.cluster.injected_pending(ApiKey::Produce), 1);
}

/// Found by fuzzing the simulated cluster: a CreatePartitions or CreateTopics count
/// near i32::MAX made the sim build two billion partitions and abort. Now an error.
#[test]
fn absurd_partition_counts_are_refused_not_allocated() {
    use kafka_sansio::messages::{CreatePartitionsRequest, create_partitions_request};
    use kafka_sansio::sim::MAX_PARTITIONS_PER_TOPIC;
    let mut h = Harness::new(1);
    h.cluster.create_topic("t", 1, 1).unwrap();
    assert!(h.cluster.create_topic("huge", i32::MAX, 1).is_err());
    let c = h.cluster.connect(0, h.now).unwrap();
    let grow = CreatePartitionsRequest {
        topics: vec![create_partitions_request::CreatePartitionsTopic {
            name: "t".into(),
            count: i32::MAX,
            ..Default::default()
        }],
        timeout_ms: 1000,
        ..Default::default()
    };
    let r = h.call(c, &grow, 3);
    assert_eq!(
        ErrorCode::from(r.results[0].error_code),
        ErrorCode::INVALID_PARTITIONS
    );
    let create = CreateTopicsRequest {
        topics: vec![create_topics_request::CreatableTopic {
            name: "big".into(),
            num_partitions: MAX_PARTITIONS_PER_TOPIC + 1,
            replication_factor: 1,
            ..Default::default()
        }],
        timeout_ms: 1000,
        ..Default::default()
    };
    let r = h.call(c, &create, 7);
    assert_eq!(
        ErrorCode::from(r.topics[0].error_code),
        ErrorCode::INVALID_PARTITIONS
    );
    assert_eq!(h.cluster.topic_names().collect::<Vec<_>>(), vec!["t"]);
}

/// The classic consumer group protocol on the coordinator: member ids (KIP-394), a
/// second member makes the first rejoin, the leader's assignment reaches the follower
/// parked in SyncGroup, commits are checked against the generation, a member that
/// leaves or stops heartbeating is dropped.
#[test]
fn consumer_group_join_sync_heartbeat_commit_leave_and_expiry() {
    use kafka_sansio::messages::{
        HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
        leave_group_request, sync_group_request,
    };
    let mut h = Harness::new(1);
    h.cluster.create_topic("t", 2, 1).unwrap();
    let a = h.cluster.connect(0, h.now).unwrap();
    let b = h.cluster.connect(0, h.now).unwrap();
    let join = |member: &str| JoinGroupRequest {
        rebalance_timeout_ms: 10_000,
        ..sim_harness::join("g", member, 6000)
    };
    let sync =
        |member: &str, generation: i32, assignments: &[(&str, &'static [u8])]| SyncGroupRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member.into(),
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments: assignments
                .iter()
                .map(|(m, a)| sync_group_request::SyncGroupRequestAssignment {
                    member_id: (*m).into(),
                    assignment: Bytes::from_static(a),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
    let heartbeat = |h: &mut Harness, conn, member: &str, generation: i32| {
        let r = h.call(
            conn,
            &HeartbeatRequest {
                group_id: "g".into(),
                generation_id: generation,
                member_id: member.into(),
                ..Default::default()
            },
            4,
        );
        ErrorCode::from(r.error_code)
    };

    // A new member first gets its id, then joins: alone, it leads generation 1.
    let r = h.call(a, &join(""), 9);
    assert_eq!(ErrorCode::from(r.error_code), ErrorCode::MEMBER_ID_REQUIRED);
    let ma = r.member_id.to_string();
    let r = h.call(a, &join(&ma), 9);
    assert_eq!((r.error_code, r.generation_id), (0, 1));
    assert_eq!((r.leader.to_string(), r.members.len()), (ma.clone(), 1));
    let r = h.call(a, &sync(&ma, 1, &[(&ma, b"a1")]), 5);
    assert_eq!((r.error_code, &r.assignment[..]), (0, &b"a1"[..]));
    assert_eq!(heartbeat(&mut h, a, &ma, 1), ErrorCode::NONE);
    // An id the coordinator never handed out is refused.
    let r = h.call(b, &join("made-up"), 9);
    assert_eq!(ErrorCode::from(r.error_code), ErrorCode::UNKNOWN_MEMBER_ID);

    // B joins: its JoinGroup waits until A rejoins (A learns from its heartbeat).
    let mb = h.call(b, &join(""), 9).member_id.to_string();
    let (frame, b_join) = h.frame(&join(&mb), 9);
    h.cluster.handle_input(b, h.now, &frame);
    assert!(h.cluster.poll_transmit(b).is_none(), "B waits for A");
    assert_eq!(
        heartbeat(&mut h, a, &ma, 1),
        ErrorCode::REBALANCE_IN_PROGRESS
    );
    let r = h.call(a, &join(&ma), 9);
    assert_eq!((r.error_code, r.generation_id, r.members.len()), (0, 2, 2));
    h.advance(Duration::ZERO);
    let rb = h
        .read::<JoinGroupRequest>(b, 9, b_join)
        .expect("B's join is answered once A rejoined");
    assert_eq!((rb.generation_id, rb.leader.to_string()), (2, ma.clone()));
    assert!(
        rb.members.is_empty(),
        "only the leader gets the member list"
    );

    // B's SyncGroup waits for the leader's assignment.
    let (frame, b_sync) = h.frame(&sync(&mb, 2, &[]), 5);
    h.cluster.handle_input(b, h.now, &frame);
    assert!(
        h.cluster.poll_transmit(b).is_none(),
        "B waits for the leader"
    );
    let r = h.call(a, &sync(&ma, 2, &[(&ma, b"a2"), (&mb, b"b2")]), 5);
    assert_eq!(&r.assignment[..], b"a2");
    h.advance(Duration::ZERO);
    let r = h.read::<SyncGroupRequest>(b, 5, b_sync).expect("answered");
    assert_eq!((r.error_code, &r.assignment[..]), (0, &b"b2"[..]));
    // A follower joining again unchanged gets the current generation, no rebalance.
    let r = h.call(b, &join(&mb), 9);
    assert_eq!((r.error_code, r.generation_id), (0, 2));
    assert_eq!(heartbeat(&mut h, a, &ma, 2), ErrorCode::NONE);

    // Commits are checked against the member and its generation.
    let commit = |member: &str, generation: i32| sim_harness::commit("g", member, generation, 7);
    let code = |r: kafka_sansio::messages::OffsetCommitResponse| {
        ErrorCode::from(r.topics[0].partitions[0].error_code)
    };
    assert_eq!(code(h.call(a, &commit(&ma, 2), 8)), ErrorCode::NONE);
    assert_eq!(h.cluster.committed_offset("g", "t", 0), Some(7));
    assert_eq!(
        code(h.call(a, &commit(&ma, 1), 8)),
        ErrorCode::ILLEGAL_GENERATION
    );
    assert_eq!(
        code(h.call(a, &commit("stranger", 2), 8)),
        ErrorCode::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        code(h.call(a, &commit("", -1), 8)),
        ErrorCode::UNKNOWN_MEMBER_ID,
        "a group with members takes no anonymous commits"
    );

    // B leaves: A rebalances alone into generation 3.
    let r = h.call(
        b,
        &LeaveGroupRequest {
            group_id: "g".into(),
            members: vec![leave_group_request::MemberIdentity {
                member_id: mb.as_str().into(),
                ..Default::default()
            }],
            ..Default::default()
        },
        5,
    );
    assert_eq!(r.members[0].error_code, 0);
    assert_eq!(
        heartbeat(&mut h, a, &ma, 2),
        ErrorCode::REBALANCE_IN_PROGRESS
    );
    let r = h.call(a, &join(&ma), 9);
    assert_eq!((r.generation_id, r.members.len()), (3, 1));
    h.call(a, &sync(&ma, 3, &[(&ma, b"a3")]), 5);

    // A goes silent past its session timeout: it is dropped (the group empties into
    // generation 4, as Kafka's does) and a newcomer does not wait for it.
    h.advance(Duration::from_secs(7));
    let mc = h.call(b, &join(""), 9).member_id.to_string();
    let r = h.call(b, &join(&mc), 9);
    assert_eq!((r.error_code, r.generation_id), (0, 5));
    assert_eq!((r.leader.to_string(), r.members.len()), (mc, 1));
    assert_eq!(heartbeat(&mut h, a, &ma, 3), ErrorCode::UNKNOWN_MEMBER_ID);
}

/// Found by fuzzing: one CreateTopics request may name many topics of 10,000
/// partitions each; the cluster as a whole is capped too.
#[test]
fn the_cluster_caps_its_total_partition_count() {
    use kafka_sansio::sim::{MAX_PARTITIONS_PER_CLUSTER, MAX_PARTITIONS_PER_TOPIC};
    let mut h = Harness::new(1);
    let c = h.cluster.connect(0, h.now).unwrap();
    let topics = (0..(MAX_PARTITIONS_PER_CLUSTER / MAX_PARTITIONS_PER_TOPIC as usize + 2))
        .map(|i| create_topics_request::CreatableTopic {
            name: format!("t{i}").into(),
            num_partitions: MAX_PARTITIONS_PER_TOPIC,
            replication_factor: 1,
            ..Default::default()
        })
        .collect();
    let r = h.call(
        c,
        &CreateTopicsRequest {
            topics,
            timeout_ms: 1000,
            ..Default::default()
        },
        7,
    );
    let created = r.topics.iter().filter(|t| t.error_code == 0).count();
    assert_eq!(
        created,
        MAX_PARTITIONS_PER_CLUSTER / MAX_PARTITIONS_PER_TOPIC as usize
    );
    assert!(
        r.topics
            .iter()
            .any(|t| ErrorCode::from(t.error_code) == ErrorCode::INVALID_PARTITIONS)
    );
    assert_eq!(h.cluster.partition_count(), MAX_PARTITIONS_PER_CLUSTER);
}
