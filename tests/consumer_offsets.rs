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

/// One record of `tests/data/consumer_offsets/kafkesc/` (see its README).
fn captured(name: &str) -> (Bytes, Bytes) {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/consumer_offsets/kafkesc"
    );
    let read = |ext: &str| Bytes::from(std::fs::read(format!("{dir}/{name}.{ext}")).unwrap());
    (read("key"), read("value"))
}

#[test]
fn records_captured_from_a_real_kafka_decode_field_by_field() {
    // Offset commits: (file, group, topic, partition, offset, commit timestamp).
    let commits = [
        (
            "offset_commit_01",
            "ivan-experimental-consumer",
            "__consumer_offsets",
            46,
            97_507,
            1_672_871_009_232,
        ),
        (
            "offset_commit_02",
            "ivan-experimental-consumer",
            "__consumer_offsets",
            46,
            97_554,
            1_672_871_009_282,
        ),
        (
            "offset_commit_03",
            "kafkesc-devcluster-group-id",
            "t01",
            0,
            106,
            1_672_788_047_244,
        ),
        (
            "offset_commit_04",
            "ivan-experimental-consumer",
            "__consumer_offsets",
            46,
            99_158,
            1_672_871_010_428,
        ),
        (
            "offset_commit_05",
            "kafkesc-devcluster-group-id",
            "t01",
            0,
            15_134,
            1_672_870_795_763,
        ),
    ];
    for (file, group, topic, partition, offset, ts) in commits {
        let (key, value) = captured(file);
        let ConsumerOffsetsRecord::OffsetCommit(e) = parse_record(&key, Some(&value)).unwrap()
        else {
            panic!("{file}: not an offset commit")
        };
        assert_eq!(e.key_version, 1, "{file}");
        assert_eq!(&*e.key.group, group, "{file}");
        assert_eq!(&*e.key.topic, topic, "{file}");
        assert_eq!(e.key.partition, partition, "{file}");
        let v = e.value.unwrap();
        assert_eq!(v.version, 3, "{file}");
        assert_eq!(v.data.offset, offset, "{file}");
        assert_eq!(v.data.leader_epoch, -1, "{file}");
        assert_eq!(&*v.data.metadata, "", "{file}");
        assert_eq!(v.data.commit_timestamp, ts, "{file}");
    }

    // Group metadata: (file, group, generation, state timestamp, members as
    // (member id, subscribed topics, assigned topic and partitions)).
    let rd1 = "rdkafka-9f4fc1b0-1d7d-4471-90e8-e0f64f3c9d9f";
    let rd2 = "rdkafka-6fdc40ae-296b-4ce4-8a8b-6b3fa4c9a932";
    let rd3 = "rdkafka-57736292-f08d-4ab0-8a85-b9951edbb13e";
    type Member<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, Vec<i32>)>);
    let groups: [(&str, &str, i32, i64, Vec<Member>); 5] = [
        (
            "group_metadata_01",
            "kafkesc-devcluster-group-id",
            7,
            1_672_870_956_437,
            vec![(rd1, vec!["t01"], vec![("t01", vec![0, 1, 2])])],
        ),
        (
            "group_metadata_02",
            "kafkesc-devcluster-group-id",
            3,
            1_672_870_558_659,
            vec![(rd1, vec!["t01"], vec![("t01", vec![0, 1, 2])])],
        ),
        (
            "group_metadata_03",
            "ivan-experimental-consumer",
            1,
            1_672_870_929_040,
            vec![(
                rd3,
                vec!["__consumer_offsets"],
                vec![("__consumer_offsets", (0..50).collect())],
            )],
        ),
        (
            "group_metadata_04",
            "kafkesc-devcluster-group-id",
            6,
            1_672_870_941_404,
            vec![
                (rd1, vec!["t01"], vec![("t01", vec![2])]),
                (rd2, vec!["t01"], vec![("t01", vec![0, 1])]),
            ],
        ),
        (
            "group_metadata_05",
            "kafkesc-devcluster-group-id",
            8,
            1_672_870_964_792,
            vec![],
        ),
    ];
    for (file, group, generation, ts, members) in groups {
        let (key, value) = captured(file);
        let ConsumerOffsetsRecord::GroupMetadata(e) = parse_record(&key, Some(&value)).unwrap()
        else {
            panic!("{file}: not group metadata")
        };
        assert_eq!(e.key_version, 2, "{file}");
        assert_eq!(&*e.key.group, group, "{file}");
        let v = e.value.unwrap();
        assert_eq!(v.version, 3, "{file}");
        let d = v.data;
        assert_eq!(&*d.protocol_type, "consumer", "{file}");
        assert_eq!(d.generation, generation, "{file}");
        assert_eq!(d.current_state_timestamp, ts, "{file}");
        if members.is_empty() {
            // The group emptied: no protocol, no leader.
            assert_eq!((d.protocol, d.leader), (None, None), "{file}");
        } else {
            assert_eq!(d.protocol.as_deref(), Some("range"), "{file}");
            // The leader is the first member (the one that joined first).
            assert_eq!(d.leader.as_deref(), Some(members[0].0), "{file}");
        }
        assert_eq!(d.members.len(), members.len(), "{file}");
        for (m, (id, topics, assigned)) in d.members.iter().zip(&members) {
            assert_eq!(&*m.member_id, *id, "{file}");
            assert_eq!(m.group_instance_id, None, "{file}");
            assert_eq!(&*m.client_id, "rdkafka", "{file}");
            assert_eq!(&*m.client_host, "/172.18.0.1", "{file}");
            assert_eq!(
                (m.rebalance_timeout, m.session_timeout),
                (300_000, 45_000),
                "{file}"
            );
            let sub =
                wire::decode_versioned::<ConsumerProtocolSubscription>(&mut m.subscription.clone())
                    .unwrap();
            assert_eq!(sub.version, 1, "{file}");
            let got: Vec<&str> = sub.data.topics.iter().map(|t| &**t).collect();
            assert_eq!(&got, topics, "{file}");
            assert!(sub.data.owned_partitions.is_empty(), "{file}");
            let asg =
                wire::decode_versioned::<ConsumerProtocolAssignment>(&mut m.assignment.clone())
                    .unwrap();
            assert_eq!(asg.version, 0, "{file}");
            let got: Vec<(&str, Vec<i32>)> = asg
                .data
                .assigned_partitions
                .iter()
                .map(|tp| (&*tp.topic, tp.partitions.iter().copied().collect()))
                .collect();
            assert_eq!(&got, assigned, "{file}");
        }
    }
}
