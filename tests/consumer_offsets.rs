//! Parsing `__consumer_offsets` records and consumer-protocol blobs.

use kafka_sansio::messages::consumer_offsets::{
    ConsumerGroupMetadataKey, ConsumerGroupMetadataValue, ConsumerOffsetsRecord, GroupMetadataKey,
    GroupMetadataValue, OffsetCommitKey, OffsetCommitValue, group_metadata_value::MemberMetadata,
    parse_record,
};
use kafka_sansio::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_sansio::wire::{self, BufMut, Bytes, BytesMut, Message};

fn versioned<T: Message>(version: i16, value: &T) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(version);
    value.encode(&mut b, version).unwrap();
    b.freeze()
}

#[test]
fn offset_commit_records_of_every_key_and_value_version() {
    for key_version in 0..=1 {
        for value_version in 0..=4 {
            let key = OffsetCommitKey {
                group: "payments".into(),
                topic: "orders".into(),
                partition: 7,
            };
            let value = OffsetCommitValue {
                offset: 1234,
                leader_epoch: if value_version >= 3 { 5 } else { -1 },
                metadata: "m".into(),
                commit_timestamp: 1_700_000_000_000,
                expire_timestamp: if value_version == 1 {
                    1_800_000_000_000
                } else {
                    -1
                },
                ..Default::default()
            };
            let record = parse_record(
                &versioned(key_version, &key),
                Some(&versioned(value_version, &value)),
            )
            .unwrap();
            let ConsumerOffsetsRecord::OffsetCommit(entry) = record else {
                panic!("{record:?}")
            };
            assert_eq!(entry.key_version, key_version);
            assert_eq!(entry.key, key);
            let v = entry.value.unwrap();
            assert_eq!(v.version, value_version);
            assert_eq!(v.data, value);
        }
    }
}

#[test]
fn group_metadata_with_members_and_tombstones() {
    let key = GroupMetadataKey { group: "g1".into() };
    let value = GroupMetadataValue {
        protocol_type: "consumer".into(),
        generation: 3,
        protocol: Some("range".into()),
        leader: Some("member-1".into()),
        current_state_timestamp: 99,
        members: vec![MemberMetadata {
            member_id: "member-1".into(),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout: 300_000,
            session_timeout: 45_000,
            subscription: Bytes::from_static(b"sub"),
            assignment: Bytes::from_static(b"asg"),
            ..Default::default()
        }],
        ..Default::default()
    };
    let ConsumerOffsetsRecord::GroupMetadata(entry) =
        parse_record(&versioned(2, &key), Some(&versioned(3, &value))).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        entry.value.unwrap().data.members[0].client_host,
        "/127.0.0.1"
    );

    // A tombstone: the value is null.
    let ConsumerOffsetsRecord::GroupMetadata(entry) =
        parse_record(&versioned(2, &key), None).unwrap()
    else {
        panic!()
    };
    assert_eq!(entry.key.group, "g1");
    assert!(entry.value.is_none());
}

#[test]
fn newer_consumer_group_records_and_unknown_kinds() {
    let key = ConsumerGroupMetadataKey {
        group_id: "cg".into(),
    };
    let value = ConsumerGroupMetadataValue {
        epoch: 12,
        ..Default::default()
    };
    let ConsumerOffsetsRecord::ConsumerGroupMetadata(entry) =
        parse_record(&versioned(3, &key), Some(&versioned(0, &value))).unwrap()
    else {
        panic!()
    };
    assert_eq!(entry.value.unwrap().data.epoch, 12);

    // A key version from a future broker is kept, not rejected.
    let raw = Bytes::from_static(b"\x00\x63rest");
    match parse_record(&raw, Some(&Bytes::from_static(b"v"))).unwrap() {
        ConsumerOffsetsRecord::Unknown {
            key_version,
            key,
            value,
        } => {
            assert_eq!(key_version, 99);
            assert_eq!(&key[..], b"rest");
            assert_eq!(value.as_deref(), Some(&b"v"[..]));
        }
        other => panic!("{other:?}"),
    }
    // A known key with a value version its schema lacks is an error, not a guess.
    let bad_value = Bytes::from_static(b"\x00\x09");
    assert!(
        parse_record(
            &versioned(2, &GroupMetadataKey { group: "g".into() }),
            Some(&bad_value)
        )
        .is_err()
    );
    // Truncated keys are errors.
    assert!(parse_record(&Bytes::from_static(b"\x00"), None).is_err());
}

#[test]
fn consumer_protocol_blobs_from_newer_clients_parse_forward_compatibly() {
    let subscription = ConsumerProtocolSubscription {
        topics: vec!["a".into(), "b".into()],
        user_data: Some(Bytes::from_static(b"u")),
        generation_id: 4,
        rack_id: Some("r1".into()),
        ..Default::default()
    };
    let mut blob = BytesMut::new();
    blob.put_i16(3);
    subscription.encode(&mut blob, 3).unwrap();
    // A hypothetical v9 from a newer client appends fields we do not know.
    let mut newer = blob.clone();
    newer[1] = 9;
    newer.put_slice(b"appended by v9");
    let parsed = wire::decode_versioned_forward_compatible::<ConsumerProtocolSubscription>(
        &mut newer.freeze(),
    )
    .unwrap();
    assert_eq!(parsed.version, 9);
    assert_eq!(parsed.data, subscription);
    // The strict reader refuses the unknown version.
    let mut blob9 = BytesMut::new();
    blob9.put_i16(9);
    assert!(wire::decode_versioned::<ConsumerProtocolAssignment>(&mut blob9.freeze()).is_err());
}
