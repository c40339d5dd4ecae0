//! Every generated message, at every valid version, survives encode -> decode with
//! its value intact, and decode -> encode -> decode of any bytes the decoder accepts
//! is stable. Values are structure-aware (built by `arbitrary` from seed bytes).
#![cfg(feature = "arbitrary")]

mod common;

use arbitrary::Unstructured;
use common::Rng;
use kafka_sansio::fuzzing::ALL_MESSAGES;
use kafka_sansio::wire::{Bytes, BytesMut, Message};

use proptest::prelude::*;

/// Deterministic sweep: each (message, version) pair gets seeds of several sizes,
/// and must build at least one value and round-trip every one it builds.
#[test]
fn every_message_every_version_round_trips() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut failures = Vec::new();
    let mut pairs = 0;
    let mut values = 0;
    for entry in ALL_MESSAGES {
        for version in entry.versions.min..=entry.versions.max {
            pairs += 1;
            let mut built = 0;
            for len in [0usize, 8, 32, 128, 512, 2048, 8192] {
                for _ in 0..3 {
                    let data = rng.bytes(len);
                    let mut u = Unstructured::new(&data);
                    match (entry.arbitrary_roundtrip)(&mut u, version) {
                        Ok(true) => built += 1,
                        Ok(false) => {}
                        Err(e) => failures.push(e.0),
                    }
                }
            }
            if built == 0 {
                failures.push(format!(
                    "{} v{version}: no value could be built",
                    entry.name
                ));
            }
            values += built;
        }
    }
    let expected: usize = ALL_MESSAGES
        .iter()
        .map(|e| (e.versions.max - e.versions.min + 1) as usize)
        .sum();
    assert_eq!(pairs, expected);
    assert!(pairs > 600, "only {pairs} (message, version) pairs");
    assert!(
        failures.is_empty(),
        "{} failures over {pairs} pairs, first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    eprintln!("{values} values round-tripped over {pairs} (message, version) pairs");
}

/// Decoding the encodings of random values with a few bits flipped: whenever the
/// decoder accepts the bytes, re-encoding and decoding again must be stable.
#[test]
fn mutated_encodings_decode_stably() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut failures = Vec::new();
    let mut accepted = 0;
    let mut tried = 0;
    for entry in ALL_MESSAGES {
        for version in entry.versions.min..=entry.versions.max {
            for _ in 0..4 {
                let seed = rng.bytes(1024);
                let Some(encoded) =
                    (entry.arbitrary_encoding)(&mut Unstructured::new(&seed), version)
                else {
                    continue;
                };
                let mut bytes = encoded.to_vec();
                if !bytes.is_empty() {
                    for _ in 0..1 + rng.below(3) {
                        let i = rng.below(bytes.len() as u64) as usize;
                        bytes[i] ^= 1 << rng.below(8);
                    }
                }
                tried += 1;
                match (entry.decode_roundtrip)(Bytes::from(bytes), version) {
                    Ok(true) => accepted += 1,
                    Ok(false) => {}
                    Err(e) => failures.push(e.0),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        accepted > tried / 10,
        "only {accepted} of {tried} mutated inputs decoded"
    );
    eprintln!("{accepted} of {tried} mutated inputs were accepted and re-encoded stably");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Random (message, version, seed) triples, shrunk on failure.
    #[test]
    fn arbitrary_values_round_trip(
        index in 0..ALL_MESSAGES.len(),
        version_pick in any::<u16>(),
        data in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let entry = &ALL_MESSAGES[index];
        let span = (entry.versions.max - entry.versions.min + 1) as u16;
        let version = entry.versions.min + (version_pick % span) as i16;
        let mut u = Unstructured::new(&data);
        if let Err(e) = (entry.arbitrary_roundtrip)(&mut u, version) {
            prop_assert!(false, "{}", e.0);
        }
    }

    /// Random bytes fed to every decoder: no panic, and what decodes re-encodes stably.
    #[test]
    fn random_bytes_decode_stably(
        index in 0..ALL_MESSAGES.len(),
        version_pick in any::<u16>(),
        data in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let entry = &ALL_MESSAGES[index];
        let span = (entry.versions.max - entry.versions.min + 1) as u16;
        let version = entry.versions.min + (version_pick % span) as i16;
        if let Err(e) = (entry.decode_roundtrip)(Bytes::from(data), version) {
            prop_assert!(false, "{}", e.0);
        }
    }
}

/// A hand-written value checked field by field after a round trip, so the sweep above
/// is not the only witness that values survive.
#[test]
fn produce_request_fields_survive_round_trip() {
    use kafka_sansio::messages::ProduceRequest;
    use kafka_sansio::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let request = ProduceRequest {
        transactional_id: None,
        acks: -1,
        timeout_ms: 30_000,
        topic_data: vec![TopicProduceData {
            name: "orders".into(),
            partition_data: vec![PartitionProduceData {
                index: 3,
                records: Some(Bytes::from_static(b"raw record batch bytes")),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    for version in [3, 8, 9, 11] {
        let mut buf = BytesMut::new();
        request.encode(&mut buf, version).unwrap();
        let mut bytes = buf.freeze();
        let back = ProduceRequest::decode(&mut bytes, version).unwrap();
        assert!(bytes.is_empty());
        assert_eq!(back.acks, -1);
        assert_eq!(back.timeout_ms, 30_000);
        assert_eq!(back.topic_data[0].name, "orders");
        assert_eq!(back.topic_data[0].partition_data[0].index, 3);
        assert_eq!(
            back.topic_data[0].partition_data[0].records.as_deref(),
            Some(&b"raw record batch bytes"[..])
        );
    }
}
