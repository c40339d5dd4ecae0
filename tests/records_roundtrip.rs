//! Property round-trips: whatever the builder writes, the reader gives back, for
//! arbitrary records, headers, batch fields and codecs; several batches per buffer;
//! truncated tails; and the builder's byte limit.

use bytes::{Bytes, BytesMut};
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

fn bytes_opt(max: usize) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Vec::new())),
        6 => proptest::collection::vec(any::<u8>(), 0..max).prop_map(Some),
    ]
}

fn rec() -> impl Strategy<Value = Rec> {
    let header_key = prop_oneof![
        Just("dup".to_string()),
        Just(String::new()),
        "[a-z\u{e9}\u{4e16}]{0,12}"
    ];
    (
        prop_oneof![any::<i64>(), 1_600_000_000_000i64..1_600_000_100_000],
        bytes_opt(40),
        bytes_opt(300),
        proptest::collection::vec((header_key, bytes_opt(20)), 0..4),
    )
        .prop_map(|(timestamp, key, value, headers)| Rec {
            timestamp,
            key,
            value,
            headers,
        })
}

fn codec() -> impl Strategy<Value = (Compression, Option<i32>, SnappyFraming)> {
    prop_oneof![
        Just((Compression::None, None, SnappyFraming::Xerial)),
        (prop_oneof![Just(None), (0..=9).prop_map(Some)]).prop_map(|l| (
            Compression::Gzip,
            l,
            SnappyFraming::Xerial
        )),
        Just((Compression::Snappy, None, SnappyFraming::Xerial)),
        Just((Compression::Snappy, None, SnappyFraming::Raw)),
        Just((Compression::Lz4, None, SnappyFraming::Xerial)),
        (prop_oneof![Just(None), (-5..=19).prop_map(Some)]).prop_map(|l| (
            Compression::Zstd,
            l,
            SnappyFraming::Xerial
        )),
    ]
}

fn config() -> impl Strategy<Value = BatchConfig> {
    (
        0i64..i64::MAX / 2,
        any::<i32>(),
        any::<i64>(),
        any::<i16>(),
        any::<i32>(),
        any::<bool>(),
        any::<bool>(),
        codec(),
    )
        .prop_map(
            |(
                base_offset,
                ple,
                pid,
                epoch,
                seq,
                txn,
                log_append,
                (compression, level, framing),
            )| BatchConfig {
                base_offset,
                partition_leader_epoch: ple,
                producer_id: pid,
                producer_epoch: epoch,
                base_sequence: seq,
                transactional: txn,
                timestamp_type: if log_append {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                },
                compression,
                compression_level: level,
                snappy_framing: framing,
                max_batch_bytes: usize::MAX,
            },
        )
}

fn encode(buf: &mut BytesMut, config: &BatchConfig, recs: &[Rec]) -> usize {
    let mut builder = BatchBuilder::new(buf, config);
    for r in recs {
        let headers: Vec<NewHeader<'_>> = r
            .headers
            .iter()
            .map(|(k, v)| NewHeader::new(k, v.as_deref()))
            .collect();
        let mut new = NewRecord::new(r.timestamp).headers(&headers);
        new.key = r.key.as_deref();
        new.value = r.value.as_deref();
        builder.append(&new).expect("no limit");
    }
    builder.finish().expect("finish")
}

fn check_batch(
    batch: &RecordBatch,
    config: &BatchConfig,
    recs: &[Rec],
) -> Result<(), TestCaseError> {
    let h = &batch.header;
    prop_assert_eq!(h.base_offset, config.base_offset);
    prop_assert_eq!(h.partition_leader_epoch, config.partition_leader_epoch);
    prop_assert_eq!(h.magic, 2);
    prop_assert_eq!(h.producer_id, config.producer_id);
    prop_assert_eq!(h.producer_epoch, config.producer_epoch);
    prop_assert_eq!(h.base_sequence, config.base_sequence);
    prop_assert_eq!(h.is_transactional(), config.transactional);
    prop_assert!(!h.is_control());
    prop_assert_eq!(h.timestamp_type(), config.timestamp_type);
    prop_assert_eq!(h.compression(), Ok(config.compression));
    prop_assert_eq!(h.record_count as usize, recs.len());
    prop_assert_eq!(h.last_offset_delta as usize, recs.len().saturating_sub(1));
    let max_ts = recs.iter().map(|r| r.timestamp).max().unwrap_or(-1);
    prop_assert_eq!(h.max_timestamp, max_ts);
    prop_assert_eq!(h.base_timestamp, recs.first().map_or(-1, |r| r.timestamp));

    let opts = DecodeOptions::default();
    let decoded: Vec<Record> = batch.records(&opts)?.collect::<Result<_, _>>()?;
    // The borrowing iterator sees exactly the same records.
    let mut by_ref = batch.records(&opts)?;
    let mut i = 0;
    while let Some(r) = by_ref.next_ref() {
        let r = r?;
        let owned = decoded
            .get(i)
            .ok_or_else(|| TestCaseError::fail("extra record"))?;
        prop_assert_eq!(&r.to_record(), owned);
        prop_assert_eq!(
            (r.offset, r.timestamp, r.key(), r.value()),
            (owned.offset, owned.timestamp, owned.key(), owned.value())
        );
        prop_assert_eq!(r.key_bytes(), owned.key_bytes());
        prop_assert_eq!(r.value_bytes(), owned.value_bytes());
        let borrowed: Vec<_> = r
            .headers()
            .map(|h| (h.key_bytes(), h.value_bytes()))
            .collect();
        let kept: Vec<_> = owned
            .headers()
            .map(|h| (h.key_bytes(), h.value_bytes()))
            .collect();
        prop_assert_eq!(borrowed, kept);
        prop_assert_eq!(r.header_count(), owned.header_count());
        i += 1;
    }
    prop_assert_eq!(i, decoded.len());
    prop_assert_eq!(decoded.len(), recs.len());
    for (i, (d, r)) in decoded.iter().zip(recs).enumerate() {
        prop_assert_eq!(d.offset, config.base_offset + i as i64);
        let expected_ts = match config.timestamp_type {
            TimestampType::CreateTime => r.timestamp,
            TimestampType::LogAppendTime => max_ts,
        };
        prop_assert_eq!(d.timestamp, expected_ts);
        prop_assert_eq!(d.key(), r.key.as_deref());
        prop_assert_eq!(d.value(), r.value.as_deref());
        prop_assert_eq!(d.header_count(), r.headers.len());
        for (h, (rk, rv)) in d.headers().zip(&r.headers) {
            prop_assert_eq!(h.key, rk.as_bytes());
            prop_assert_eq!(h.value, rv.as_deref());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/records_roundtrip.txt"))),
        ..ProptestConfig::default()
    })]

    /// One batch with any fields, records and codec comes back exactly.
    #[test]
    fn one_batch_round_trips(config in config(), recs in proptest::collection::vec(rec(), 0..12)) {
        let mut buf = BytesMut::new();
        let len = encode(&mut buf, &config, &recs);
        prop_assert_eq!(len, buf.len());
        let mut reader = BatchReader::new(buf.freeze(), DecodeOptions::default());
        let batch = reader.next().expect("a batch")?.into_v2().expect("v2");
        check_batch(&batch, &config, &recs)?;
        prop_assert!(reader.next().is_none());
        prop_assert_eq!(reader.truncated(), None);
    }

    /// Several batches share one buffer; a cut anywhere yields exactly the batches
    /// wholly before it and reports the one it falls in as truncated.
    #[test]
    fn several_batches_and_any_cut(
        batches in proptest::collection::vec((config(), proptest::collection::vec(rec(), 0..5)), 1..4),
        cut_at in any::<prop::sample::Index>(),
    ) {
        let mut buf = BytesMut::new();
        let mut ends = Vec::new();
        for (config, recs) in &batches {
            encode(&mut buf, config, recs);
            ends.push(buf.len());
        }
        let whole = buf.freeze();
        let decoded: Vec<Batch> = BatchReader::new(whole.clone(), DecodeOptions::default())
            .collect::<Result<_, _>>()?;
        prop_assert_eq!(decoded.len(), batches.len());
        for (b, (config, recs)) in decoded.iter().zip(&batches) {
            check_batch(b.clone().into_v2().as_ref().expect("v2"), config, recs)?;
        }

        let cut = cut_at.index(whole.len() + 1);
        let mut reader = BatchReader::new(whole.slice(..cut), DecodeOptions::default());
        let complete = ends.iter().filter(|&&e| e <= cut).count();
        let got: Vec<Batch> = reader.by_ref().collect::<Result<_, _>>()?;
        prop_assert_eq!(got.len(), complete);
        let start_of_partial = if complete == 0 { 0 } else { ends[complete - 1] };
        match reader.truncated() {
            None => prop_assert_eq!(cut, start_of_partial),
            Some(t) => {
                prop_assert_eq!(t.position, start_of_partial);
                prop_assert_eq!(t.available, cut - start_of_partial);
                if t.available >= 12 {
                    prop_assert_eq!(t.needed, Some(ends[complete] - start_of_partial));
                    prop_assert_eq!(t.base_offset, Some(batches[complete].0.base_offset));
                }
            }
        }
    }

    /// The builder never lets the uncompressed batch cross its limit, refuses only
    /// what does not fit, and what it accepted decodes.
    #[test]
    fn byte_limit_is_respected(limit in 61usize..3000, recs in proptest::collection::vec(rec(), 1..30)) {
        let mut buf = BytesMut::from(&b"prefix"[..]);
        let config = BatchConfig { max_batch_bytes: limit, ..BatchConfig::default() };
        let mut builder = BatchBuilder::new(&mut buf, &config);
        let mut accepted = Vec::new();
        for r in &recs {
            let headers: Vec<NewHeader<'_>> = r.headers.iter().map(|(k, v)| NewHeader::new(k, v.as_deref())).collect();
            let mut new = NewRecord::new(r.timestamp).headers(&headers);
            new.key = r.key.as_deref();
            new.value = r.value.as_deref();
            let before = builder.size();
            let needed = builder.encoded_len(&new)?;
            match builder.append(&new) {
                Ok(()) => {
                    prop_assert!(before + needed <= limit);
                    prop_assert_eq!(builder.size(), before + needed);
                    accepted.push(r.clone());
                }
                Err(AppendError::BatchFull { record_bytes, remaining }) => {
                    prop_assert!(!accepted.is_empty());
                    prop_assert_eq!(record_bytes, needed);
                    prop_assert!(needed > remaining);
                    prop_assert_eq!(builder.size(), before, "a refused record leaves no trace");
                    break;
                }
                Err(AppendError::RecordTooLarge { .. }) => {
                    prop_assert!(accepted.is_empty());
                    prop_assert!(61 + needed > limit);
                    break;
                }
                Err(e) => return Err(TestCaseError::fail(format!("unexpected {e}"))),
            }
        }
        let len = builder.finish()?;
        prop_assert!(len <= limit);
        let bytes = buf.freeze();
        prop_assert_eq!(&bytes[..6], b"prefix");
        let batch = BatchReader::new(bytes.slice(6..), DecodeOptions::default())
            .next().expect("batch")?.into_v2().expect("v2");
        check_batch(&batch, &config, &accepted)?;
    }
}

#[test]
fn dropping_an_unfinished_builder_removes_its_bytes() {
    let mut buf = BytesMut::from(&b"keep"[..]);
    {
        let mut builder = BatchBuilder::new(&mut buf, &BatchConfig::default());
        builder
            .append(&NewRecord::new(1).value(b"gone"))
            .expect("append");
    }
    assert_eq!(&buf[..], b"keep");
}

#[test]
fn crc_check_can_be_skipped() {
    let mut buf = BytesMut::new();
    let mut builder = BatchBuilder::new(&mut buf, &BatchConfig::default());
    builder
        .append(&NewRecord::new(1).value(b"v"))
        .expect("append");
    builder.finish().expect("finish");
    buf[17] ^= 0xff; // corrupt the stored CRC only
    let bytes = buf.freeze();
    let strict = BatchReader::new(bytes.clone(), DecodeOptions::default())
        .next()
        .expect("item");
    assert!(matches!(
        strict,
        Err(RecordsError {
            kind: RecordsErrorKind::CrcMismatch { .. },
            ..
        })
    ));
    let lax = DecodeOptions {
        verify_crc: false,
        ..DecodeOptions::default()
    };
    let batch = BatchReader::new(bytes, lax)
        .next()
        .expect("item")
        .expect("no check");
    let values: Vec<_> = batch
        .records(&lax)
        .expect("records")
        .map(|r| r.expect("record").value_bytes())
        .collect();
    assert_eq!(values, vec![Some(Bytes::from_static(b"v"))]);
}

#[test]
fn decoded_values_are_slices_of_the_input() {
    let mut buf = BytesMut::new();
    let mut builder = BatchBuilder::new(&mut buf, &BatchConfig::default());
    let headers = [NewHeader::new("h", Some(b"hv"))];
    builder
        .append(
            &NewRecord::new(1)
                .key(b"key")
                .value(b"value")
                .headers(&headers),
        )
        .expect("append");
    builder.finish().expect("finish");
    let input = buf.freeze();
    let range = input.as_ptr_range();
    let batch = BatchReader::new(input.clone(), DecodeOptions::default())
        .next()
        .expect("item")
        .expect("batch");
    let record = batch
        .records(&DecodeOptions::default())
        .expect("records")
        .next()
        .expect("one")
        .expect("ok");
    let inside = |b: &[u8]| range.contains(&b.as_ptr());
    assert!(inside(record.key().expect("key")));
    assert!(inside(record.value().expect("value")));
    assert!(inside(&record.key_bytes().expect("key")));
    assert!(inside(&record.value_bytes().expect("value")));
    assert_eq!(record.key(), Some(&b"key"[..]));
    let header = record.headers().next().expect("header");
    assert!(inside(header.key) && inside(header.value.expect("hv")));
    assert!(inside(&header.key_bytes()) && inside(&header.value_bytes().expect("hv")));
    assert_eq!(header.value, Some(&b"hv"[..]));
    assert_eq!(header.key, b"h");
    // The borrowing view hands out slices of the same buffer.
    let v2 = batch.into_v2().expect("v2");
    let mut records = v2.records(&DecodeOptions::default()).expect("records");
    let view = records.next_ref().expect("one").expect("ok");
    assert!(inside(&view.key_bytes().expect("key")));
    assert!(inside(&view.value_bytes().expect("value")));
    let h = view.headers().next().expect("header");
    assert!(inside(&h.key_bytes()) && inside(&h.value_bytes().expect("hv")));
}

/// Decodes every record of `buf`'s batches.
fn decode_all(buf: Bytes) -> Vec<Record> {
    let opts = DecodeOptions::default();
    let mut out = Vec::new();
    for batch in BatchReader::new(buf, opts) {
        for r in batch.expect("batch").records(&opts).expect("records") {
            out.push(r.expect("record"));
        }
    }
    out
}

#[test]
fn records_compare_by_fields_wherever_their_bytes_sit() {
    let headers = [NewHeader::new("h", Some(b"1")), NewHeader::new("h", None)];
    let encode = |before: &[u8], compression: Compression| {
        let mut buf = BytesMut::new();
        let config = BatchConfig {
            compression,
            ..BatchConfig::default()
        };
        let mut b = BatchBuilder::new(&mut buf, &config);
        b.append(&NewRecord::new(7).value(before)).expect("append");
        b.append(&NewRecord::new(9).key(b"k").value(b"v").headers(&headers))
            .expect("append");
        b.finish().expect("finish");
        decode_all(buf.freeze()).pop().expect("two records")
    };
    // At another position of another buffer (a longer record before it, or the
    // decompressed records of a compressed batch), the same record is equal.
    let plain = encode(b"x", Compression::None);
    assert_eq!(plain, encode(&[0; 300], Compression::None));
    assert_eq!(plain, encode(b"x", Compression::Gzip));
    assert_eq!(plain.clone(), plain);
    // Any field differing makes it differ.
    let mut buf = BytesMut::new();
    let mut b = BatchBuilder::new(&mut buf, &BatchConfig::default());
    b.append(&NewRecord::new(7).value(b"x")).expect("append");
    b.append(
        &NewRecord::new(9)
            .key(b"k")
            .value(b"v")
            .headers(&headers[..1]),
    )
    .expect("append");
    b.finish().expect("finish");
    assert_ne!(plain, decode_all(buf.freeze()).pop().expect("two records"));
    // Debug shows the fields, not the buffer.
    assert_eq!(
        format!("{plain:?}"),
        r#"Record { offset: 1, timestamp: 9, key: Some(b"k"), value: Some(b"v"), headers: [(b"h", Some(b"1")), (b"h", None)] }"#
    );
    // One handle: keeping a field keeps its bytes after the record goes.
    let key = plain.key_bytes().expect("key");
    let header = plain.headers().next().expect("header").value_bytes();
    drop(plain);
    assert_eq!((&key[..], header.as_deref()), (&b"k"[..], Some(&b"1"[..])));
}
