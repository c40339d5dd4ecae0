//! Batches real clients put on the wire (kcat and confluent-kafka over librdkafka,
//! kafka-python, KafkaJS), captured from their Produce requests by the peers work
//! (tests/data/records/README.md), decode to exactly what `expected.json` says.

use bytes::Bytes;
use kafka_sansio::records::*;
use serde_json::Value;

fn dir() -> String {
    format!("{}/tests/data/records", env!("CARGO_MANIFEST_DIR"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `{"hex": ..}` or null, as the expected file writes bytes.
fn expected_bytes(v: &Value) -> Option<String> {
    v.get("hex").and_then(Value::as_str).map(str::to_owned)
}

fn int(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} missing in {v}"))
}

fn check_v2(name: &str, batches: &[Batch], expected: &[Value], opts: &DecodeOptions) {
    assert_eq!(batches.len(), expected.len(), "{name}: batch count");
    for (batch, want) in batches.iter().zip(expected) {
        let Batch::V2(b) = batch else {
            panic!("{name}: expected v2")
        };
        let h = &b.header;
        assert_eq!(h.base_offset, int(want, "base_offset"), "{name}");
        assert_eq!(
            i64::from(h.partition_leader_epoch),
            int(want, "partition_leader_epoch"),
            "{name}"
        );
        assert_eq!(i64::from(h.crc), int(want, "crc"), "{name}");
        assert_eq!(i64::from(h.attributes), int(want, "attributes"), "{name}");
        assert_eq!(
            i64::from(h.last_offset_delta),
            int(want, "last_offset_delta"),
            "{name}"
        );
        assert_eq!(h.base_timestamp, int(want, "base_timestamp"), "{name}");
        assert_eq!(h.max_timestamp, int(want, "max_timestamp"), "{name}");
        assert_eq!(h.producer_id, int(want, "producer_id"), "{name}");
        assert_eq!(
            i64::from(h.producer_epoch),
            int(want, "producer_epoch"),
            "{name}"
        );
        assert_eq!(
            i64::from(h.base_sequence),
            int(want, "base_sequence"),
            "{name}"
        );
        assert_eq!(
            i64::from(h.record_count),
            int(want, "records_count"),
            "{name}"
        );
        assert_eq!(
            h.is_transactional(),
            want["transactional"].as_bool().expect("bool"),
            "{name}"
        );
        assert_eq!(
            h.is_control(),
            want["control"].as_bool().expect("bool"),
            "{name}"
        );
        assert_eq!(
            h.compression().expect("codec").name(),
            want["compression"].as_str().expect("str"),
            "{name}"
        );

        let records: Vec<Record> = b
            .records(opts)
            .expect("records")
            .collect::<Result<_, _>>()
            .expect(name);
        let want_records = want["records"].as_array().expect("records");
        assert_eq!(records.len(), want_records.len(), "{name}");
        for (r, w) in records.iter().zip(want_records) {
            assert_eq!(r.offset, h.base_offset + int(w, "offset_delta"), "{name}");
            assert_eq!(r.timestamp, int(w, "timestamp"), "{name}");
            assert_eq!(r.key().map(hex), expected_bytes(&w["key"]), "{name} key");
            assert_eq!(
                r.value().map(hex),
                expected_bytes(&w["value"]),
                "{name} value"
            );
            let headers: Vec<(String, Option<String>)> = r
                .headers()
                .map(|h| (hex(h.key), h.value.map(hex)))
                .collect();
            let want_headers: Vec<(String, Option<String>)> = w["headers"]
                .as_array()
                .expect("headers")
                .iter()
                .map(|h| {
                    (
                        expected_bytes(&h["key"]).expect("key"),
                        expected_bytes(&h["value"]),
                    )
                })
                .collect();
            assert_eq!(
                headers, want_headers,
                "{name}: headers in order, duplicates and nulls kept"
            );
        }
    }
}

fn check_legacy(name: &str, batches: &[Batch], expected: &[Value], opts: &DecodeOptions) {
    assert_eq!(batches.len(), expected.len(), "{name}: message count");
    for (batch, want) in batches.iter().zip(expected) {
        let Batch::Legacy(m) = batch else {
            panic!("{name}: expected legacy")
        };
        assert_eq!(m.offset, int(want, "offset"), "{name}");
        assert_eq!(i64::from(m.crc), int(want, "crc"), "{name}");
        assert_eq!(i64::from(m.attributes), int(want, "attributes"), "{name}");
        let records = m.records(opts).expect(name);
        // Uncompressed: the message is the record. Compressed: its inner messages,
        // magic 1 inner offsets made absolute from the wrapper's (the last inner one).
        let inner: Vec<&Value> = match want.get("inner").and_then(Value::as_array) {
            Some(inner) => inner.iter().collect(),
            None => vec![want],
        };
        assert_eq!(records.len(), inner.len(), "{name}");
        let last_inner = int(inner.last().expect("inner"), "offset");
        for (r, w) in records.iter().zip(&inner) {
            let offset = if m.magic == 1 && want.get("inner").is_some() {
                m.offset - last_inner + int(w, "offset")
            } else {
                int(w, "offset")
            };
            assert_eq!(r.offset, offset, "{name}");
            let ts = if m.magic == 1 {
                int(w, "timestamp")
            } else {
                -1
            };
            assert_eq!(r.timestamp, ts, "{name}");
            assert_eq!(r.key().map(hex), expected_bytes(&w["key"]), "{name} key");
            assert_eq!(
                r.value().map(hex),
                expected_bytes(&w["value"]),
                "{name} value"
            );
            assert_eq!(r.header_count(), 0);
        }
    }
}

#[test]
fn every_captured_batch_decodes_as_expected() {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/expected.json", dir())).expect("expected.json"),
    )
    .expect("json");
    let files = expected.as_object().expect("map");
    assert!(files.len() >= 20, "all captured files are listed");
    for (name, want) in files {
        let raw = Bytes::from(std::fs::read(format!("{}/{name}", dir())).expect(name));
        assert_eq!(raw.len() as i64, int(want, "bytes"), "{name}");
        for opts in [
            DecodeOptions::default(),
            DecodeOptions {
                verify_crc: false,
                ..DecodeOptions::default()
            },
        ] {
            let mut reader = BatchReader::new(raw.clone(), opts);
            let batches: Vec<Batch> = reader.by_ref().collect::<Result<_, _>>().expect(name);
            assert_eq!(reader.truncated(), None, "{name}");
            if let Some(expected_batches) = want.get("batches").and_then(Value::as_array) {
                check_v2(name, &batches, expected_batches, &opts);
            } else {
                let messages = want["messages"].as_array().expect("batches or messages");
                check_legacy(name, &batches, messages, &opts);
            }
        }
    }
}

#[test]
fn captured_batches_survive_our_reencoding() {
    // What a real client wrote, re-encoded by us with every codec, decodes the same.
    let opts = DecodeOptions::default();
    for name in [
        "kcat_none.bin",
        "confluent-kafka_zstd.bin",
        "kafka-python_snappy.bin",
        "kafkajs_gzip.bin",
    ] {
        let raw = Bytes::from(std::fs::read(format!("{}/{name}", dir())).expect(name));
        let batch = BatchReader::new(raw, opts)
            .next()
            .expect("batch")
            .expect(name)
            .into_v2()
            .expect("v2");
        let original: Vec<Record> = batch
            .records(&opts)
            .expect("records")
            .collect::<Result<_, _>>()
            .expect(name);
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut buf = bytes::BytesMut::new();
            let config = BatchConfig {
                base_offset: batch.header.base_offset,
                compression: codec,
                ..BatchConfig::default()
            };
            let mut builder = BatchBuilder::new(&mut buf, &config);
            for r in &original {
                let headers: Vec<(String, Option<Vec<u8>>)> = r
                    .headers()
                    .map(|h| {
                        (
                            h.key_str().expect("utf8 key").to_owned(),
                            h.value.map(<[u8]>::to_vec),
                        )
                    })
                    .collect();
                let headers: Vec<NewHeader<'_>> = headers
                    .iter()
                    .map(|(k, v)| NewHeader::new(k, v.as_deref()))
                    .collect();
                let mut new = NewRecord::new(r.timestamp).headers(&headers);
                new.key = r.key();
                new.value = r.value();
                builder.append(&new).expect("append");
            }
            builder.finish().expect("finish");
            let again = BatchReader::new(buf.freeze(), opts)
                .next()
                .expect("batch")
                .expect("ours")
                .into_v2()
                .expect("v2");
            let decoded: Vec<Record> = again
                .records(&opts)
                .expect("records")
                .collect::<Result<_, _>>()
                .expect("ours");
            assert_eq!(decoded.len(), original.len());
            for (a, b) in decoded.iter().zip(&original) {
                assert_eq!(
                    (a.offset, a.timestamp, a.key(), a.value()),
                    (b.offset, b.timestamp, b.key(), b.value())
                );
                let pairs = |r: &Record| -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
                    r.headers()
                        .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                };
                assert_eq!(pairs(a), pairs(b), "{name} {codec:?}");
                assert!(a.headers().eq(b.headers()), "{name} {codec:?}");
            }
        }
    }
}
