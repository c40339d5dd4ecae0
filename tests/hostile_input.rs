//! Hostile bytes: every decoder returns an error value, never panics, never reads past
//! the input, and never allocates more than a fixed multiple of the input's length.
#![cfg(feature = "arbitrary")]

mod common;

use arbitrary::Unstructured;
use common::{CountingAllocator, Rng, measure};
use kafka_sansio::fuzzing::ALL_MESSAGES;
use kafka_sansio::messages::MetadataResponse;
use kafka_sansio::wire::{self, Bytes, BytesMut, DecodeErrorKind, Message};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

/// The most a decoder may allocate for `len` input bytes. Arrays reserve at most one
/// element per minimal element size of remaining input, and nesting re-counts the same
/// bytes a few times, so the bound is linear with a generous factor; a decoder that
/// trusted a hostile count would allocate gigabytes.
fn allocation_bound(len: usize) -> usize {
    512 * len + 64 * 1024
}

#[test]
fn every_truncation_of_every_message_is_an_error() {
    let mut rng = Rng(0x5151_7777_0000_0001);
    let mut checked = 0usize;
    for entry in ALL_MESSAGES {
        for version in entry.versions.min..=entry.versions.max {
            let seed = rng.bytes(200);
            let Some(full) = (entry.arbitrary_encoding)(&mut Unstructured::new(&seed), version)
            else {
                continue;
            };
            assert_eq!(
                (entry.decode_only)(full.clone(), version),
                Ok(0),
                "{} v{version}",
                entry.name
            );
            for cut in 0..full.len() {
                let prefix = full.slice(..cut);
                let result = (entry.decode_only)(prefix, version);
                assert!(
                    result.is_err(),
                    "{} v{version}: {cut} of {} bytes decoded as a whole message",
                    entry.name,
                    full.len()
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 10_000, "only {checked} truncations checked");
}

#[test]
fn random_and_mutated_input_allocates_boundedly() {
    let mut rng = Rng(0xA110_CA7E_D00D_0001);
    let mut worst_ratio = 0.0f64;
    for entry in ALL_MESSAGES {
        for version in entry.versions.min..=entry.versions.max {
            for round in 0..6 {
                let input: Vec<u8> = if round < 3 {
                    // Bytes with many 0x7f/0xff, which read as large lengths and counts.
                    (0..rng.below(64) + 1)
                        .map(|_| match rng.below(4) {
                            0 => 0xff,
                            1 => 0x7f,
                            _ => rng.next_u64() as u8,
                        })
                        .collect()
                } else {
                    let seed = rng.bytes(512);
                    match (entry.arbitrary_encoding)(&mut Unstructured::new(&seed), version) {
                        Some(e) if !e.is_empty() => {
                            let mut v = e.to_vec();
                            for _ in 0..4 {
                                let i = rng.below(v.len() as u64) as usize;
                                v[i] = [0xff, 0x7f, 0x80, 0x00][rng.below(4) as usize];
                            }
                            v
                        }
                        _ => continue,
                    }
                };
                let len = input.len();
                let bytes = Bytes::from(input);
                let (_, allocated) = measure(|| (entry.decode_only)(bytes, version));
                assert!(
                    allocated.bytes <= allocation_bound(len),
                    "{} v{version}: {} bytes allocated for {len} input bytes",
                    entry.name,
                    allocated.bytes
                );
                worst_ratio = worst_ratio.max(allocated.bytes as f64 / len as f64);
            }
        }
    }
    eprintln!("worst allocation per input byte: {worst_ratio:.1}");
}

#[test]
fn a_count_of_two_billion_in_ten_bytes_is_refused_without_allocating() {
    // ARRAY count 0x7fffffff, then 6 bytes.
    let input = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0]);
    let (result, allocated) = measure(|| {
        let mut b = input.clone();
        wire::read_array(&mut b, false, 1, "T.items", |b| wire::read_i8(b, "T.items"))
    });
    let err = result.unwrap_err();
    assert!(matches!(
        err.kind,
        DecodeErrorKind::CountExceedsInput {
            count: 0x7fff_ffff,
            remaining: 6
        }
    ));
    assert_eq!(err.field, "T.items");
    assert!(
        allocated.bytes <= 64,
        "only the boxed error may allocate: {allocated:?}"
    );

    // COMPACT_ARRAY with the largest unsigned varint count.
    let input = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3, 4, 5]);
    let (result, allocated) = measure(|| {
        let mut b = input.clone();
        wire::read_array(&mut b, true, 1, "T.items", |b| wire::read_i8(b, "T.items"))
    });
    assert!(matches!(
        result.unwrap_err().kind,
        DecodeErrorKind::CountExceedsInput { .. }
    ));
    assert!(
        allocated.bytes <= 64,
        "only the boxed error may allocate: {allocated:?}"
    );
}

#[test]
fn a_hostile_topic_count_in_a_real_message_is_refused() {
    // A Metadata v12 response whose topic array claims 2^31 - 2 entries.
    let mut buf = BytesMut::new();
    MetadataResponse::default().encode(&mut buf, 12).unwrap();
    let mut bytes = buf.to_vec();
    // Layout: throttle (4), brokers (compact len 1 byte), cluster id (null: 1),
    // controller id (4), then the topics compact array length.
    let topics_at = 4 + 1 + 1 + 4;
    assert_eq!(bytes[topics_at], 1, "empty compact array");
    bytes.splice(topics_at..=topics_at, [0xff, 0xff, 0xff, 0xff, 0x07]);
    let input = Bytes::from(bytes);
    let (result, allocated) = measure(|| MetadataResponse::decode(&mut input.clone(), 12));
    let err = result.unwrap_err();
    assert!(
        matches!(err.kind, DecodeErrorKind::CountExceedsInput { .. }),
        "{err}"
    );
    assert_eq!(err.field, "MetadataResponse.Topics");
    assert_eq!(err.offset, topics_at, "{err}");
    assert!(allocated.bytes < 1024, "{allocated:?}");
}

#[test]
fn malformed_lengths_varints_and_text_are_errors() {
    let kind = |bytes: &'static [u8], f: fn(&mut Bytes) -> Result<(), wire::DecodeError>| {
        f(&mut Bytes::from_static(bytes)).unwrap_err().kind.clone()
    };
    // Negative lengths other than -1.
    assert_eq!(
        kind(&[0xff, 0xfe], |b| wire::read_nullable_string(b, false, "s")
            .map(drop)),
        DecodeErrorKind::NegativeLength(-2)
    );
    assert_eq!(
        kind(&[0x80, 0, 0, 0], |b| wire::read_nullable_bytes(
            b, false, "b"
        )
        .map(drop)),
        DecodeErrorKind::NegativeLength(i64::from(i32::MIN))
    );
    // Null where the field is not nullable: -1, and compact length 0.
    assert_eq!(
        kind(&[0xff, 0xff], |b| wire::read_string(b, false, "s")
            .map(drop)),
        DecodeErrorKind::UnexpectedNull
    );
    assert_eq!(
        kind(&[0x00], |b| wire::read_string(b, true, "s").map(drop)),
        DecodeErrorKind::UnexpectedNull
    );
    assert_eq!(
        kind(&[0x00], |b| wire::read_bytes(b, true, "b").map(drop)),
        DecodeErrorKind::UnexpectedNull
    );
    // A length past the end.
    assert!(matches!(
        kind(&[0x7f, 0xff, b'a'], |b| wire::read_string(b, false, "s")
            .map(drop)),
        DecodeErrorKind::UnexpectedEof {
            needed: 32769,
            remaining: 3
        }
    ));
    // Varints: six continuation bytes; a fifth byte with bits past 32; an 11-byte varlong.
    assert!(matches!(
        kind(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01], |b| {
            wire::read_unsigned_varint(b, "v").map(drop)
        }),
        DecodeErrorKind::VarintOverflow { max_bytes: 5 }
    ));
    assert!(matches!(
        kind(&[0x80, 0x80, 0x80, 0x80, 0x10], |b| wire::read_varint(
            b, "v"
        )
        .map(drop)),
        DecodeErrorKind::VarintOverflow { max_bytes: 5 }
    ));
    assert!(matches!(
        kind(&[0xff; 11], |b| wire::read_varlong(b, "v").map(drop)),
        DecodeErrorKind::VarintOverflow { max_bytes: 10 }
    ));
    assert!(matches!(
        kind(&[0xff, 0xff], |b| wire::read_varint(b, "v").map(drop)),
        DecodeErrorKind::UnexpectedEof { .. }
    ));
    // Bad UTF-8.
    assert_eq!(
        kind(&[0x00, 0x02, 0xc3, 0x28], |b| wire::read_string(
            b, false, "s"
        )
        .map(drop)),
        DecodeErrorKind::InvalidUtf8
    );
    // A tagged-field count larger than the input.
    assert!(matches!(
        kind(&[0xff, 0xff, 0x03, 0x00], |b| wire::read_raw_tagged_fields(
            b, "t"
        )
        .map(drop)),
        DecodeErrorKind::CountExceedsInput { .. }
    ));
    // A version the message does not define.
    let err = MetadataResponse::decode(&mut Bytes::new(), 99).unwrap_err();
    assert_eq!(
        err.kind,
        DecodeErrorKind::UnsupportedVersion { version: 99 }
    );
}

#[test]
fn errors_say_which_field_failed_and_where() {
    use kafka_sansio::messages::ApiVersionsRequest;
    // v3: two compact strings then tagged fields; cut inside the second string.
    let mut buf = BytesMut::new();
    ApiVersionsRequest {
        client_software_name: "abc".into(),
        client_software_version: "1.0".into(),
        ..Default::default()
    }
    .encode(&mut buf, 3)
    .unwrap();
    let cut = buf.freeze().slice(..6);
    let err = ApiVersionsRequest::decode(&mut cut.clone(), 3).unwrap_err();
    assert_eq!(err.field, "ApiVersionsRequest.ClientSoftwareVersion");
    assert_eq!(err.offset, 4);
    assert!(
        err.to_string()
            .contains("ApiVersionsRequest.ClientSoftwareVersion at byte 4"),
        "{err}"
    );
}
