//! The batch builder against an independent reference encoder, byte for byte.
//!
//! `BatchBuilder::append` has a one-pass path for records whose varints all take one
//! or two bytes and a two-pass path for everything else, and it switches between
//! them on field lengths, timestamp deltas, record counts, header counts, the
//! buffer's grown room and the byte limit; inside both, fields are copied with moves
//! whose size depends on the field's length. The strategies here sit on
//! each of those boundaries, and every batch must equal what a plain, obviously
//! correct encoder written from the protocol description produces.

use bytes::BytesMut;
use kafka_sansio::records::*;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

#[derive(Debug, Clone)]
struct Rec {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

// ------------------------------------------------------------ reference encoder

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_field(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

fn reference_record(r: &Rec, base_timestamp: i64, offset_delta: i64) -> Vec<u8> {
    let mut body = vec![0u8]; // attributes
    put_varlong(&mut body, r.timestamp.wrapping_sub(base_timestamp));
    put_varlong(&mut body, offset_delta);
    put_field(&mut body, r.key.as_deref());
    put_field(&mut body, r.value.as_deref());
    put_varlong(&mut body, r.headers.len() as i64);
    for (k, v) in &r.headers {
        put_field(&mut body, Some(k.as_bytes()));
        put_field(&mut body, v.as_deref());
    }
    let mut out = Vec::new();
    put_varlong(&mut out, body.len() as i64);
    out.extend_from_slice(&body);
    out
}

/// An uncompressed CreateTime batch with the default producer fields.
fn reference_batch(recs: &[Rec]) -> Vec<u8> {
    let base = recs.first().map_or(-1, |r| r.timestamp);
    let max = recs.iter().map(|r| r.timestamp).max().unwrap_or(-1);
    let mut records = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        records.extend_from_slice(&reference_record(r, base, i as i64));
    }
    let mut after_crc = Vec::new();
    after_crc.extend_from_slice(&0i16.to_be_bytes()); // attributes
    after_crc.extend_from_slice(&(recs.len() as i32 - 1).max(0).to_be_bytes());
    after_crc.extend_from_slice(&base.to_be_bytes());
    after_crc.extend_from_slice(&max.to_be_bytes());
    after_crc.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    after_crc.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    after_crc.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    after_crc.extend_from_slice(&(recs.len() as i32).to_be_bytes());
    after_crc.extend_from_slice(&records);
    let mut out = Vec::new();
    out.extend_from_slice(&0i64.to_be_bytes()); // base offset
    out.extend_from_slice(&((after_crc.len() + 9) as i32).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    out.push(2); // magic
    out.extend_from_slice(&crc32c::crc32c(&after_crc).to_be_bytes());
    out.extend_from_slice(&after_crc);
    out
}

// ------------------------------------------------------------ the builder

fn append(builder: &mut BatchBuilder<'_>, r: &Rec) -> Result<(), AppendError> {
    let headers: Vec<NewHeader<'_>> = r
        .headers
        .iter()
        .map(|(k, v)| NewHeader::new(k, v.as_deref()))
        .collect();
    let mut new = NewRecord::new(r.timestamp).headers(&headers);
    new.key = r.key.as_deref();
    new.value = r.value.as_deref();
    builder.append(&new)
}

fn built(recs: &[Rec], buf: &mut BytesMut) -> Vec<u8> {
    let start = buf.len();
    let config = BatchConfig {
        max_batch_bytes: usize::MAX,
        ..BatchConfig::default()
    };
    let mut builder = BatchBuilder::new(buf, &config);
    for r in recs {
        append(&mut builder, r).expect("no limit");
    }
    let len = builder.finish().expect("finish");
    assert_eq!(buf.len(), start + len);
    buf[start..].to_vec()
}

// ------------------------------------------------------------ strategies

/// `n` bytes that differ from their neighbours, so a copy that puts the right
/// number of bytes in the wrong order or place cannot match the reference.
fn varied(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| seed.wrapping_add((i as u8).wrapping_mul(37)))
        .collect()
}

/// Lengths on every boundary the builder branches on, and some ordinary ones.
fn len_near_edges() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..40,
        1 => Just(16usize),
        1 => Just(17usize),
        1 => 40usize..80, // a record body near 64 bytes: one- or two-byte length
        1 => prop::sample::select(vec![63usize, 64, 65, 127, 128, 129, 255, 256, 257]),
        // Where the inline copy changes its move size (4, 8, 16, 32, 64 bytes) or
        // hands over to `memcpy`.
        1 => prop::sample::select(vec![1usize, 3, 4, 7, 8, 15, 16, 31, 32, 33, 63, 64, 128, 129]),
        1 => prop::sample::select(vec![8190usize, 8191, 8192, 8193, 9000, 20_000]),
    ]
}

fn bytes_near_edges() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        6 => (len_near_edges(), any::<u8>()).prop_map(|(n, b)| Some(varied(n, b))),
    ]
}

fn header_field() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        6 => (prop_oneof![
                4 => 0usize..18,
                2 => prop::sample::select(vec![31usize, 32, 33, 55, 63, 64, 65, 128, 129]),
                1 => Just(300usize),
            ], any::<u8>())
            .prop_map(|(n, b)| Some(varied(n, b))),
    ]
}

fn header_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{0,17}",
        1 => "[a-z]{30,34}",
        1 => Just("k".repeat(64)),
        1 => Just("\u{e9}".repeat(20)),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, Option<Vec<u8>>)>> {
    prop_oneof![
        6 => proptest::collection::vec((header_key(), header_field()), 0..4),
        1 => prop::sample::select(vec![31usize, 63, 64, 65])
            .prop_map(|n| (0..n).map(|i| (format!("h{i}"), Some(vec![i as u8; i % 5]))).collect()),
    ]
}

/// Timestamp deltas on the one/two/three-byte varint edges, negative ones, and
/// deltas that wrap.
fn delta() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => -100i64..100,
        2 => prop::sample::select(vec![63i64, 64, -64, -65, 8191, 8192, -8192, -8193, 1 << 20]),
        1 => any::<i64>(),
    ]
}

fn batch() -> impl Strategy<Value = Vec<Rec>> {
    (
        any::<i64>(),
        proptest::collection::vec(
            (delta(), bytes_near_edges(), bytes_near_edges(), headers()),
            0..24,
        ),
    )
        .prop_map(|(base, recs)| {
            recs.into_iter()
                .map(|(d, key, value, headers)| Rec {
                    timestamp: base.wrapping_add(d),
                    key,
                    value,
                    headers,
                })
                .collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/records_builder_paths.txt"))),
        ..ProptestConfig::default()
    })]

    /// Every batch equals the reference encoding, whatever the buffer held before.
    #[test]
    fn batches_equal_the_reference(recs in batch(), prefix in 0usize..70_000) {
        let mut buf = BytesMut::new();
        buf.resize(prefix, 0xAB);
        let ours = built(&recs, &mut buf);
        prop_assert!(buf[..prefix].iter().all(|b| *b == 0xAB), "bytes before the batch kept");
        prop_assert_eq!(ours, reference_batch(&recs));
    }

    /// With the limit one byte short of the first `k + 1` records, the builder
    /// takes `k`, refuses the next without a trace, and the batch equals the
    /// reference for the `k`; with the limit exactly their size it takes all.
    #[test]
    fn a_limit_is_exact_to_the_byte(recs in batch(), k in 0usize..24) {
        prop_assume!(recs.len() >= 2);
        let k = k.clamp(1, recs.len() - 1);
        let exact = reference_batch(&recs[..=k]).len();

        let config = BatchConfig { max_batch_bytes: exact - 1, ..BatchConfig::default() };
        let mut buf = BytesMut::new();
        let mut builder = BatchBuilder::new(&mut buf, &config);
        for r in &recs[..k] {
            append(&mut builder, r)?;
        }
        let size = builder.size();
        let refused = append(&mut builder, &recs[k]);
        prop_assert!(matches!(refused, Err(AppendError::BatchFull { .. })), "{:?}", refused);
        prop_assert_eq!(builder.size(), size);
        builder.finish()?;
        prop_assert_eq!(&buf[..], &reference_batch(&recs[..k])[..]);

        let config = BatchConfig { max_batch_bytes: exact, ..BatchConfig::default() };
        let mut buf = BytesMut::new();
        let mut builder = BatchBuilder::new(&mut buf, &config);
        for r in &recs[..=k] {
            append(&mut builder, r)?;
        }
        prop_assert_eq!(builder.finish()?, exact);
        prop_assert_eq!(&buf[..], &reference_batch(&recs[..=k])[..]);
    }
}

fn small_record(i: usize, base: i64) -> Rec {
    Rec {
        timestamp: base + (i % 300) as i64,
        key: Some(format!("key-{i:06}").into_bytes()),
        value: Some(varied(20 + i % 90, i as u8)),
        headers: vec![("trace".to_string(), Some((i as u64).to_be_bytes().to_vec()))],
    }
}

/// Past 8,192 records the offset delta needs a three-byte varint, and a batch
/// this size crosses the builder's buffer growth steps several times.
#[test]
fn long_batches_cross_count_and_growth_edges() {
    let recs: Vec<Rec> = (0..9_000)
        .map(|i| small_record(i, 1_700_000_000_000))
        .collect();
    let mut buf = BytesMut::new();
    assert_eq!(built(&recs, &mut buf), reference_batch(&recs));
    // The same buffer, cleared and reused, gives the same bytes.
    buf.clear();
    assert_eq!(built(&recs, &mut buf), reference_batch(&recs));
}

/// A record body of exactly 63 and 64 bytes: the length prefix goes from one
/// byte to two there.
#[test]
fn record_bodies_either_side_of_a_two_byte_length() {
    for value_len in 40..80 {
        let recs: Vec<Rec> = (0..3)
            .map(|i| Rec {
                timestamp: 10 + i,
                key: Some(b"k".to_vec()),
                value: Some(varied(value_len, 7)),
                headers: Vec::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        assert_eq!(
            built(&recs, &mut buf),
            reference_batch(&recs),
            "value of {value_len} bytes"
        );
    }
}

/// Every length from 0 to 300 bytes, for the key, the value, a header's key and a
/// header's value at once, on both paths (each batch's first record takes the
/// two-pass path, the others the one-pass path): every size class of the inline
/// copy, both one- and two-byte lengths, and record bodies either side of 64 bytes.
#[test]
fn every_field_length_up_to_300_on_both_paths() {
    for len in 0..=300 {
        let recs: Vec<Rec> = (0..3)
            .map(|i| Rec {
                timestamp: 1_000 + i,
                key: Some(varied(len, 1 + i as u8)),
                value: Some(varied(len, 100 + i as u8)),
                headers: vec![
                    ("a".repeat(len), Some(varied(len, 200 + i as u8))),
                    ("b".to_string(), Some(varied(len / 3, 50))),
                ],
            })
            .collect();
        let mut buf = BytesMut::new();
        assert_eq!(
            built(&recs, &mut buf),
            reference_batch(&recs),
            "fields of {len} bytes"
        );
        // A lone field of that length among null ones: its record's body is short,
        // so its length prefix takes one byte and the body moves back.
        let lone: Vec<Rec> = (0..3)
            .map(|i| Rec {
                timestamp: 1_000 + i,
                key: None,
                value: Some(varied(len, 9)),
                headers: Vec::new(),
            })
            .collect();
        assert_eq!(
            built(&lone, &mut buf),
            reference_batch(&lone),
            "value of {len} bytes"
        );
    }
}

/// Records of 8 KiB and more are written in place when the buffer's zero-filled
/// room holds them and appended by extending the buffer when it does not (no
/// room is zero-filled for them); small records after either regrow the room.
/// Every mix of the two gives the reference bytes.
#[test]
fn large_records_in_room_and_past_it() {
    let large = |i: usize, len: usize| Rec {
        timestamp: 5_000 + i as i64,
        key: i.is_multiple_of(2).then(|| varied(17, i as u8)),
        value: Some(varied(len, 3 + i as u8)),
        headers: (0..i % 3)
            .map(|h| (format!("h{h}"), Some(varied(9 + h * 40, h as u8))))
            .collect(),
    };
    let sizes = [
        20_000, 0, 0, 9_000, 50_000, 0, 8_300, 8_300, 0, 70_000, 8_200, 0,
    ];
    let recs: Vec<Rec> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            if len == 0 {
                small_record(i, 5_000)
            } else {
                large(i, len)
            }
        })
        .collect();
    // Each prefix of the sequence, so that each record is some batch's last.
    for n in 1..=recs.len() {
        let mut buf = BytesMut::new();
        assert_eq!(
            built(&recs[..n], &mut buf),
            reference_batch(&recs[..n]),
            "first {n} records"
        );
    }
    // After bytes that leave the room just short of a large record.
    for prefix in [0, 100, 65_000, 65_536] {
        let mut buf = BytesMut::new();
        buf.resize(prefix, 0xCD);
        let ours = built(&recs, &mut buf);
        assert!(buf[..prefix].iter().all(|b| *b == 0xCD));
        assert_eq!(ours, reference_batch(&recs), "after {prefix} bytes");
    }
}
