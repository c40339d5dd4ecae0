//! What a client reads from the generated messages to route a request and its response:
//! whether the broker answers at all (`Request::expects_response`) and where the
//! response carries its throttle time (`ApiKey::response_throttle_time`), both
//! generated from Kafka's schemas.

mod common;

use kafka_sansio::messages::{
    ApiKey, MetadataRequest, OffsetDeleteResponse, ProduceRequest, ProduceResponse, Request,
    RequestBody, ThrottleTimeField, produce_response::TopicProduceResponse,
};
use kafka_sansio::wire::{Bytes, Message};

#[test]
fn only_an_acks_0_produce_goes_unanswered() {
    assert!(MetadataRequest::default().expects_response());
    for acks in [-1, 1] {
        let produce = ProduceRequest {
            acks,
            ..Default::default()
        };
        assert!(produce.expects_response(), "acks {acks}");
        assert!(RequestBody::from(produce).expects_response(), "acks {acks}");
    }
    let fire_and_forget = ProduceRequest {
        acks: 0,
        ..Default::default()
    };
    assert!(!fire_and_forget.expects_response());
    assert!(!RequestBody::from(fire_and_forget).expects_response());
    assert!(RequestBody::from(MetadataRequest::default()).expects_response());
}

/// Every response whose first field is ThrottleTimeMs, with the version it first
/// appears in, as Kafka's schemas give it (the table the connection kept by hand).
const FIRST_FIELD_SINCE: &[(ApiKey, i16)] = &[
    (ApiKey::Fetch, 1),
    (ApiKey::ListOffsets, 2),
    (ApiKey::Metadata, 3),
    (ApiKey::OffsetCommit, 3),
    (ApiKey::OffsetFetch, 3),
    (ApiKey::FindCoordinator, 1),
    (ApiKey::JoinGroup, 2),
    (ApiKey::Heartbeat, 1),
    (ApiKey::LeaveGroup, 1),
    (ApiKey::SyncGroup, 1),
    (ApiKey::DescribeGroups, 1),
    (ApiKey::ListGroups, 1),
    (ApiKey::CreateTopics, 2),
    (ApiKey::DeleteTopics, 1),
    (ApiKey::DeleteRecords, 0),
    (ApiKey::InitProducerId, 0),
    (ApiKey::OffsetForLeaderEpoch, 2),
    (ApiKey::AddPartitionsToTxn, 0),
    (ApiKey::AddOffsetsToTxn, 0),
    (ApiKey::EndTxn, 0),
    (ApiKey::TxnOffsetCommit, 0),
    (ApiKey::DescribeAcls, 0),
    (ApiKey::CreateAcls, 0),
    (ApiKey::DeleteAcls, 0),
    (ApiKey::DescribeConfigs, 0),
    (ApiKey::AlterConfigs, 0),
    (ApiKey::AlterReplicaLogDirs, 0),
    (ApiKey::DescribeLogDirs, 0),
    (ApiKey::CreatePartitions, 0),
    (ApiKey::DeleteGroups, 0),
    (ApiKey::ElectLeaders, 0),
    (ApiKey::IncrementalAlterConfigs, 0),
    (ApiKey::AlterPartitionReassignments, 0),
    (ApiKey::ListPartitionReassignments, 0),
    (ApiKey::DescribeClientQuotas, 0),
    (ApiKey::AlterClientQuotas, 0),
    (ApiKey::DescribeUserScramCredentials, 0),
    (ApiKey::AlterUserScramCredentials, 0),
    (ApiKey::DescribeCluster, 0),
    (ApiKey::DescribeProducers, 0),
    (ApiKey::DescribeTransactions, 0),
    (ApiKey::ListTransactions, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0),
    (ApiKey::ConsumerGroupDescribe, 0),
    (ApiKey::DescribeTopicPartitions, 0),
];

#[test]
fn throttle_time_is_the_first_field_where_the_schemas_put_it_first() {
    for &(key, since) in FIRST_FIELD_SINCE {
        let valid = key.valid_versions();
        for version in valid.min..=valid.max {
            let expected = (version >= since).then_some(ThrottleTimeField::AtOffset(0));
            assert_eq!(
                key.response_throttle_time(version),
                expected,
                "{key} v{version}"
            );
        }
    }
    // Not first, but after fixed-width fields only: read in place.
    assert_eq!(
        ApiKey::OffsetDelete.response_throttle_time(0),
        Some(ThrottleTimeField::AtOffset(2))
    );
    // After variable-length fields: found by decoding.
    assert_eq!(ApiKey::Produce.response_throttle_time(0), None);
    for version in 1..=ApiKey::Produce.valid_versions().max {
        assert_eq!(
            ApiKey::Produce.response_throttle_time(version),
            Some(ThrottleTimeField::AfterVariableFields)
        );
    }
    assert_eq!(ApiKey::ApiVersions.response_throttle_time(0), None);
    assert_eq!(
        ApiKey::ApiVersions.response_throttle_time(3),
        Some(ThrottleTimeField::AfterVariableFields)
    );
    // Responses with no throttle time at all.
    assert_eq!(ApiKey::ControlledShutdown.response_throttle_time(3), None);
    assert_eq!(ApiKey::Vote.response_throttle_time(0), None);
}

#[test]
fn throttle_time_is_read_from_the_bytes_of_a_response() {
    let produce = ProduceResponse {
        responses: vec![TopicProduceResponse {
            name: "orders".into(),
            ..Default::default()
        }],
        throttle_time_ms: 1500,
        ..Default::default()
    };
    for version in [1, 8, 9, 11] {
        let mut body = Vec::new();
        produce.encode_to_vec(&mut body, version).unwrap();
        let body = Bytes::from(body);
        assert_eq!(
            ApiKey::Produce.response_throttle_time_ms(version, &body),
            Some(1500),
            "v{version}"
        );
        assert_eq!(
            ApiKey::Produce.response_throttle_time_ms(version, &body.slice(..body.len() - 1)),
            None,
            "a cut body does not decode"
        );
    }
    let delete = OffsetDeleteResponse {
        error_code: 16,
        throttle_time_ms: 70,
        ..Default::default()
    };
    let mut body = Vec::new();
    delete.encode_to_vec(&mut body, 0).unwrap();
    assert_eq!(
        ApiKey::OffsetDelete.response_throttle_time_ms(0, &Bytes::from(body)),
        Some(70)
    );
    let short = Bytes::from_static(&[0, 0, 1]);
    assert_eq!(ApiKey::Fetch.response_throttle_time_ms(4, &short), None);
}

/// For every response at every version, on values built by `arbitrary`: the throttle
/// time read through `response_throttle_time_ms` is the decoded value's, and a version
/// the method says has none never carries one.
#[cfg(feature = "arbitrary")]
#[test]
fn every_response_reads_the_throttle_time_its_value_holds() {
    use arbitrary::Unstructured;
    use kafka_sansio::fuzzing::ALL_MESSAGES;
    use kafka_sansio::messages::ResponseBody;

    /// The top-level `throttle_time_ms` of a response as its `Debug` shows it.
    fn shown(debug: &str) -> Option<i32> {
        let rest = debug.split("throttle_time_ms: ").nth(1)?;
        let end = rest.find([',', ' ', '}']).unwrap_or(rest.len());
        rest[..end].parse().ok()
    }

    let mut rng = common::Rng(0x7A11_C0DE_5EED_0001);
    let (mut values, mut nonzero) = (0, 0);
    for &key in ApiKey::ALL {
        let name = format!("{}Response", key.name());
        let entry = ALL_MESSAGES
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} is generated"));
        for version in entry.versions.min..=entry.versions.max {
            for len in [16, 128, 1024, 4096] {
                let data = rng.bytes(len);
                let Some(body) = (entry.arbitrary_encoding)(&mut Unstructured::new(&data), version)
                else {
                    continue;
                };
                let value = ResponseBody::decode(key, &mut body.clone(), version)
                    .unwrap_or_else(|e| panic!("{name} v{version}: {e}"));
                let held = shown(&format!("{value:?}"));
                let read = key.response_throttle_time_ms(version, &body);
                values += 1;
                if key.response_throttle_time(version).is_some() {
                    assert_eq!(read, held, "{name} v{version}");
                    nonzero += usize::from(read.is_some_and(|t| t != 0));
                } else {
                    assert_eq!(read, None, "{name} v{version}");
                    assert!(held.is_none_or(|t| t == 0), "{name} v{version}: {held:?}");
                }
            }
        }
    }
    assert!(values > 1000, "only {values} responses built");
    assert!(nonzero > 200, "only {nonzero} non-zero throttle times read");
}
