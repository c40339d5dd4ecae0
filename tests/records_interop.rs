//! Interop: batches other implementations wrote decode with ours, and ours decode
//! with theirs, for every codec.
//!
//! - kafka-python 3.0.12 (pure Python): fixture files in tests/data/records/kafka-python,
//!   including legacy magic 0/1 message sets with compressed wrappers.
//! - the `kafka-protocol` crate (lz4 through the C liblz4): both directions.
//! - `rskafka` (`unstable-fuzzing` exposes its record types): both directions.

use std::io::Cursor;

use bytes::{Bytes, BytesMut};
use kafka_sansio::records::*;

const TS: i64 = 1_600_000_000_000;

/// Timestamp, key, value and headers of one sample record.
type SampleRecord = (
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Vec<u8>)>,
);

/// A sample record set: unique header keys so map-based peers keep them all.
fn sample(n: usize) -> Vec<SampleRecord> {
    (0..n)
        .map(|i| {
            let key = (i % 4 != 3).then(|| format!("key-{i}").into_bytes());
            let value = (i != 5).then(|| format!("value-{i}-").repeat(i + 1).into_bytes());
            let headers = (0..i % 3)
                .map(|h| (format!("h{h}"), format!("{i}:{h}").into_bytes()))
                .collect();
            (TS + 7 * i as i64, key, value, headers)
        })
        .collect()
}

fn codecs() -> Vec<(Compression, SnappyFraming)> {
    vec![
        (Compression::None, SnappyFraming::Xerial),
        (Compression::Gzip, SnappyFraming::Xerial),
        (Compression::Snappy, SnappyFraming::Xerial),
        (Compression::Snappy, SnappyFraming::Raw),
        (Compression::Lz4, SnappyFraming::Xerial),
        (Compression::Zstd, SnappyFraming::Xerial),
    ]
}

fn ours_encode(compression: Compression, framing: SnappyFraming, base_offset: i64) -> Bytes {
    let mut buf = BytesMut::new();
    let config = BatchConfig {
        base_offset,
        producer_id: 77,
        producer_epoch: 2,
        base_sequence: 5,
        compression,
        snappy_framing: framing,
        ..BatchConfig::default()
    };
    let mut builder = BatchBuilder::new(&mut buf, &config);
    for (ts, key, value, headers) in sample(40) {
        let headers: Vec<NewHeader<'_>> = headers
            .iter()
            .map(|(k, v)| NewHeader::new(k, Some(v)))
            .collect();
        let mut r = NewRecord::new(ts).headers(&headers);
        r.key = key.as_deref();
        r.value = value.as_deref();
        builder.append(&r).expect("append");
    }
    builder.finish().expect("finish");
    buf.freeze()
}

/// Decodes every record of every batch in `buf` with our reader.
fn ours_decode(buf: Bytes) -> Vec<(BatchHeaderLite, Record)> {
    let opts = DecodeOptions::default();
    let mut reader = BatchReader::new(buf, opts);
    let mut out = Vec::new();
    for batch in reader.by_ref() {
        let batch = batch.expect("batch");
        let lite = match &batch {
            Batch::V2(b) => BatchHeaderLite {
                producer_id: b.header.producer_id,
                producer_epoch: b.header.producer_epoch,
                base_sequence: b.header.base_sequence,
                transactional: b.header.is_transactional(),
            },
            Batch::Legacy(_) => BatchHeaderLite::default(),
        };
        for r in batch.records(&opts).expect("records") {
            out.push((lite, r.expect("record")));
        }
    }
    assert_eq!(reader.truncated(), None);
    out
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct BatchHeaderLite {
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
}

fn header_pairs(r: &Record) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    r.headers()
        .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
        .collect()
}

// ---------------------------------------------------------------- kafka-python

fn fixture(name: &str) -> Bytes {
    let path = format!(
        "{}/tests/data/records/kafka-python/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

#[test]
fn decodes_kafka_python_v2_batches_of_every_codec() {
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let records = ours_decode(fixture(&format!("v2_{codec}.bin")));
        assert_eq!(records.len(), 20, "{codec}");
        for (i, (h, r)) in records.iter().enumerate() {
            assert_eq!(
                *h,
                BatchHeaderLite {
                    producer_id: 4242,
                    producer_epoch: 3,
                    base_sequence: 17,
                    transactional: true
                },
                "{codec}"
            );
            assert_eq!(r.offset, i as i64, "{codec}");
            assert_eq!(r.timestamp, TS + 3 * i as i64, "{codec}");
            let key = (i % 5 != 4).then(|| format!("key-{i}").into_bytes());
            assert_eq!(r.key(), key.as_deref(), "{codec} record {i}");
            let value = (i != 7).then(|| format!("value-{i}-").repeat(i + 1).into_bytes());
            assert_eq!(r.value(), value.as_deref(), "{codec} record {i}");
            assert_eq!(
                header_pairs(r),
                vec![
                    (b"h".to_vec(), Some(i.to_string().into_bytes())),
                    (b"h".to_vec(), None)
                ],
                "{codec}: duplicate keys and null values are kept in order"
            );
        }
    }
}

#[test]
fn decodes_kafka_python_legacy_message_sets() {
    for magic in [0, 1] {
        for codec in ["none", "gzip", "snappy", "lz4"] {
            let name = format!("legacy_v{magic}_{codec}.bin");
            let buf = fixture(&name);
            let batches: Vec<Batch> = BatchReader::new(buf.clone(), DecodeOptions::default())
                .collect::<Result<_, _>>()
                .expect(&name);
            let expected_entries = if codec == "none" { 10 } else { 1 };
            assert_eq!(batches.len(), expected_entries, "{name}");
            for b in &batches {
                let Batch::Legacy(m) = b else {
                    panic!("{name}: not legacy")
                };
                assert_eq!(m.magic, magic, "{name}");
            }
            let records = ours_decode(buf);
            assert_eq!(records.len(), 10, "{name}");
            for (i, (_, r)) in records.iter().enumerate() {
                assert_eq!(r.offset, 500 + i as i64, "{name}: absolute offsets");
                let ts = if magic == 1 { TS + 3 * i as i64 } else { -1 };
                assert_eq!(r.timestamp, ts, "{name}");
                let key = (i % 5 != 4).then(|| format!("key-{i}").into_bytes());
                assert_eq!(r.key(), key.as_deref(), "{name}");
                let value = format!("value-{i}-").repeat(i + 1).into_bytes();
                assert_eq!(r.value(), Some(&value[..]), "{name}");
                assert_eq!(r.header_count(), 0);
            }
        }
    }
}

#[test]
fn legacy_crc_is_checked() {
    let mut raw = fixture("legacy_v1_gzip.bin").to_vec();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let err = BatchReader::new(Bytes::from(raw.clone()), DecodeOptions::default())
        .next()
        .expect("item")
        .expect_err("bad crc");
    assert!(
        matches!(err.kind, RecordsErrorKind::CrcMismatch { .. }),
        "{err}"
    );
    let lax = DecodeOptions {
        verify_crc: false,
        ..DecodeOptions::default()
    };
    // Without the check the corrupted gzip stream is still caught by gzip itself.
    let batch = BatchReader::new(Bytes::from(raw), lax)
        .next()
        .expect("item")
        .expect("unchecked");
    assert!(batch.records(&lax).is_err());
}

// ---------------------------------------------------------------- kafka-protocol

mod kp {
    pub use kafka_protocol::protocol::StrBytes;
    pub use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };
}

fn kp_codec(c: Compression) -> kp::Compression {
    match c {
        Compression::None => kp::Compression::None,
        Compression::Gzip => kp::Compression::Gzip,
        Compression::Snappy => kp::Compression::Snappy,
        Compression::Lz4 => kp::Compression::Lz4,
        Compression::Zstd => kp::Compression::Zstd,
    }
}

#[test]
fn kafka_protocol_decodes_our_batches() {
    for (codec, framing) in codecs() {
        let mut buf = ours_encode(codec, framing, 1000);
        let sets = kp::RecordBatchDecoder::decode_all(&mut buf)
            .unwrap_or_else(|e| panic!("{codec:?} {framing:?}: {e}"));
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].compression, kp_codec(codec));
        let expected = sample(40);
        assert_eq!(sets[0].records.len(), expected.len());
        for (i, (r, (ts, key, value, headers))) in sets[0].records.iter().zip(expected).enumerate()
        {
            assert_eq!(r.offset, 1000 + i as i64);
            assert_eq!(r.timestamp, ts);
            assert_eq!(r.producer_id, 77);
            assert_eq!(r.producer_epoch, 2);
            assert_eq!(r.sequence, 5 + i as i32);
            assert_eq!(r.key.as_deref(), key.as_deref());
            assert_eq!(r.value.as_deref(), value.as_deref());
            let theirs: Vec<(String, Vec<u8>)> = r
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_ref().expect("value").to_vec()))
                .collect();
            assert_eq!(theirs, headers, "{codec:?}");
        }
    }
}

#[test]
fn we_decode_kafka_protocol_batches() {
    for (codec, _) in codecs() {
        let expected = sample(40);
        let records: Vec<kp::Record> = expected
            .iter()
            .enumerate()
            .map(|(i, (ts, key, value, headers))| {
                let mut r = kp::Record {
                    transactional: true,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: 9,
                    producer_id: 31,
                    producer_epoch: 4,
                    timestamp_type: kp::TimestampType::Creation,
                    offset: 200 + i as i64,
                    sequence: 8 + i as i32,
                    timestamp: *ts,
                    key: key.clone().map(Bytes::from),
                    value: value.clone().map(Bytes::from),
                    headers: Default::default(),
                };
                for (k, v) in headers {
                    r.headers.insert(
                        kp::StrBytes::from_string(k.clone()),
                        Some(Bytes::from(v.clone())),
                    );
                }
                r
            })
            .collect();
        let mut buf = BytesMut::new();
        kp::RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &kp::RecordEncodeOptions {
                version: 2,
                compression: kp_codec(codec),
            },
        )
        .expect("encode");
        let decoded = ours_decode(buf.freeze());
        assert_eq!(decoded.len(), expected.len(), "{codec:?}");
        for (i, ((h, r), (ts, key, value, headers))) in decoded.iter().zip(&expected).enumerate() {
            assert_eq!(
                *h,
                BatchHeaderLite {
                    producer_id: 31,
                    producer_epoch: 4,
                    base_sequence: 8,
                    transactional: true
                }
            );
            assert_eq!(r.offset, 200 + i as i64, "{codec:?}");
            assert_eq!(r.timestamp, *ts);
            assert_eq!(r.key(), key.as_deref());
            assert_eq!(r.value(), value.as_deref());
            let ours: Vec<(Vec<u8>, Option<Vec<u8>>)> = header_pairs(r);
            let want: Vec<(Vec<u8>, Option<Vec<u8>>)> = headers
                .iter()
                .map(|(k, v)| (k.clone().into_bytes(), Some(v.clone())))
                .collect();
            assert_eq!(ours, want);
        }
    }
}

// ---------------------------------------------------------------- rskafka

mod rs {
    pub use rskafka::protocol::record::{
        ControlBatchOrRecords, Record, RecordBatch, RecordBatchCompression,
        RecordBatchTimestampType, RecordHeader,
    };
    pub use rskafka::protocol::traits::{ReadType, WriteType};
}

fn rs_codec(c: Compression) -> rs::RecordBatchCompression {
    match c {
        Compression::None => rs::RecordBatchCompression::NoCompression,
        Compression::Gzip => rs::RecordBatchCompression::Gzip,
        Compression::Snappy => rs::RecordBatchCompression::Snappy,
        Compression::Lz4 => rs::RecordBatchCompression::Lz4,
        Compression::Zstd => rs::RecordBatchCompression::Zstd,
    }
}

#[test]
fn rskafka_decodes_our_batches() {
    use rs::ReadType;
    for (codec, framing) in codecs() {
        let buf = ours_encode(codec, framing, 50);
        let batch = rs::RecordBatch::read(&mut Cursor::new(&buf[..]))
            .unwrap_or_else(|e| panic!("{codec:?} {framing:?}: {e}"));
        assert_eq!(batch.base_offset, 50);
        assert_eq!(batch.compression, rs_codec(codec));
        assert_eq!(batch.producer_id, 77);
        let rs::ControlBatchOrRecords::Records(records) = batch.records else {
            panic!("not records")
        };
        let expected = sample(40);
        assert_eq!(records.len(), expected.len());
        for (i, (r, (ts, key, value, headers))) in records.iter().zip(expected).enumerate() {
            assert_eq!(i64::from(r.offset_delta), i as i64);
            assert_eq!(batch.first_timestamp + r.timestamp_delta, ts);
            assert_eq!(r.key, key);
            assert_eq!(r.value, value);
            let theirs: Vec<(String, Vec<u8>)> = r
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect();
            assert_eq!(theirs, headers);
        }
    }
}

#[test]
fn we_decode_rskafka_batches() {
    use rs::WriteType;
    for (codec, _) in codecs() {
        let expected = sample(40);
        let records = expected
            .iter()
            .enumerate()
            .map(|(i, (ts, key, value, headers))| rs::Record {
                timestamp_delta: ts - TS,
                offset_delta: i as i32,
                key: key.clone(),
                value: value.clone(),
                headers: headers
                    .iter()
                    .map(|(k, v)| rs::RecordHeader {
                        key: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
            })
            .collect();
        let batch = rs::RecordBatch {
            base_offset: 10,
            partition_leader_epoch: 0,
            last_offset_delta: expected.len() as i32 - 1,
            first_timestamp: TS,
            max_timestamp: expected.iter().map(|e| e.0).max().expect("records"),
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records: rs::ControlBatchOrRecords::Records(records),
            compression: rs_codec(codec),
            is_transactional: false,
            timestamp_type: rs::RecordBatchTimestampType::CreateTime,
        };
        let mut raw = Vec::new();
        batch.write(&mut raw).expect("write");
        let decoded = ours_decode(Bytes::from(raw));
        assert_eq!(decoded.len(), expected.len(), "{codec:?}");
        for (i, ((_, r), (ts, key, value, headers))) in decoded.iter().zip(&expected).enumerate() {
            assert_eq!(r.offset, 10 + i as i64);
            assert_eq!(r.timestamp, *ts);
            assert_eq!(r.key(), key.as_deref());
            assert_eq!(r.value(), value.as_deref());
            let want: Vec<(Vec<u8>, Option<Vec<u8>>)> = headers
                .iter()
                .map(|(k, v)| (k.clone().into_bytes(), Some(v.clone())))
                .collect();
            assert_eq!(header_pairs(r), want, "{codec:?}");
        }
    }
}
