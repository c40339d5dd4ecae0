//! Hostile input: every truncation, wrong CRCs, counts and lengths that lie, varint
//! overflow, decompression bombs, random bytes and random mutations. Each must be an
//! error (or a reported partial batch), never a panic or an unbounded allocation.

use bytes::{Bytes, BytesMut};
use kafka_sansio::records::*;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const ALL_CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn lax() -> DecodeOptions {
    DecodeOptions {
        verify_crc: false,
        ..DecodeOptions::default()
    }
}

/// A batch with several records, headers, null fields.
fn valid_batch(compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    let config = BatchConfig {
        compression,
        ..BatchConfig::default()
    };
    let mut b = BatchBuilder::new(&mut buf, &config);
    let headers = [NewHeader::new("a", Some(b"1")), NewHeader::new("a", None)];
    for i in 0..6u8 {
        let value = vec![i; 20 + usize::from(i) * 30];
        let mut r = NewRecord::new(1000 + i64::from(i))
            .value(&value)
            .headers(&headers);
        if i % 2 == 0 {
            r = r.key(b"key");
        }
        b.append(&r).expect("append");
    }
    b.finish().expect("finish");
    buf.freeze()
}

/// Decodes everything, returning whether any error was met. Never panics (that is
/// what the tests check).
fn drain(buf: Bytes, opts: DecodeOptions) -> (usize, bool) {
    let mut records = 0;
    let mut failed = false;
    for batch in BatchReader::new(buf, opts) {
        let Ok(batch) = batch else {
            failed = true;
            break;
        };
        if let Batch::V2(b) = &batch {
            let _ = b.control_record(&opts);
        }
        match batch.records(&opts) {
            Ok(iter) => {
                for r in iter {
                    match r {
                        Ok(r) => {
                            records += 1;
                            for h in r.headers() {
                                let _ = h.key_str();
                            }
                        }
                        Err(e) => {
                            // The fast and the diagnosing record parsers must agree:
                            // every rejection gets a specific reason.
                            assert!(
                                !matches!(e.kind, RecordsErrorKind::Malformed(_)),
                                "parsers disagree: {e}"
                            );
                            failed = true;
                        }
                    }
                }
            }
            Err(_) => failed = true,
        }
    }
    (records, failed)
}

/// Rewrites a v2 batch's length and CRC after its bytes were edited, so the edit
/// reaches the record parser instead of the CRC check.
fn reseal(mut raw: Vec<u8>) -> Bytes {
    let len = (raw.len() - 12) as i32;
    raw[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&raw[21..]);
    raw[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(raw)
}

#[test]
fn every_truncation_is_a_partial_batch_not_an_error() {
    for codec in ALL_CODECS {
        let whole = valid_batch(codec);
        assert_eq!(drain(whole.clone(), DecodeOptions::default()), (6, false));
        for cut in 0..whole.len() {
            let mut reader = BatchReader::new(whole.slice(..cut), DecodeOptions::default());
            assert!(reader.next().is_none(), "{codec:?} cut {cut}");
            let t = reader.truncated();
            if cut == 0 {
                assert_eq!(t, None);
            } else {
                let t = t.expect("partial");
                assert_eq!((t.position, t.available), (0, cut));
                if cut >= 12 {
                    assert_eq!(t.needed, Some(whole.len()));
                }
            }
        }
    }
}

#[test]
fn every_truncation_of_the_records_inside_a_sealed_batch_is_an_error() {
    for codec in ALL_CODECS {
        let whole = valid_batch(codec);
        for cut in 61..whole.len() {
            let raw = reseal(whole[..cut].to_vec());
            let (records, failed) = drain(raw, DecodeOptions::default());
            assert!(
                failed,
                "{codec:?} cut {cut} decoded {records} records without error"
            );
            assert!(records < 6);
        }
    }
}

#[test]
fn any_flipped_byte_after_the_magic_fails_the_crc() {
    for codec in ALL_CODECS {
        let whole = valid_batch(codec);
        for at in 17..whole.len() {
            let mut raw = whole.to_vec();
            raw[at] ^= 0x5a;
            let err = BatchReader::new(Bytes::from(raw), DecodeOptions::default())
                .next()
                .expect("item")
                .expect_err("crc");
            assert!(
                matches!(err.kind, RecordsErrorKind::CrcMismatch { .. }),
                "{codec:?} byte {at}: {err}"
            );
        }
    }
}

#[test]
fn any_flipped_byte_without_crc_check_never_panics() {
    for codec in ALL_CODECS {
        let whole = valid_batch(codec);
        for at in 0..whole.len() {
            for mask in [0x01, 0x80, 0xff] {
                let mut raw = whole.to_vec();
                raw[at] ^= mask;
                drain(Bytes::from(raw), lax());
            }
        }
    }
}

#[test]
fn record_count_larger_than_the_bytes() {
    for codec in ALL_CODECS {
        let whole = valid_batch(codec);
        // Far too many: refused up front (after decompression for compressed batches).
        let mut raw = whole.to_vec();
        raw[57..61].copy_from_slice(&1_000_000i32.to_be_bytes());
        let raw = reseal(raw);
        let batch = BatchReader::new(raw.clone(), DecodeOptions::default())
            .next()
            .expect("item");
        let err = match batch {
            Err(e) => e,
            Ok(b) => b.records(&DecodeOptions::default()).expect_err("count"),
        };
        assert!(
            matches!(
                err.kind,
                RecordsErrorKind::RecordCountExceedsBytes {
                    count: 1_000_000,
                    ..
                }
            ),
            "{codec:?}: {err}"
        );
        // One too many: the missing record is an error at its turn.
        let mut raw = whole.to_vec();
        raw[57..61].copy_from_slice(&7i32.to_be_bytes());
        assert_eq!(
            drain(reseal(raw), DecodeOptions::default()),
            (6, true),
            "{codec:?}"
        );
        // Negative.
        let mut raw = whole.to_vec();
        raw[57..61].copy_from_slice(&(-3i32).to_be_bytes());
        assert!(drain(reseal(raw), DecodeOptions::default()).1, "{codec:?}");
        // One too few: the leftover bytes are reported.
        let mut raw = whole.to_vec();
        raw[57..61].copy_from_slice(&5i32.to_be_bytes());
        assert_eq!(
            drain(reseal(raw), DecodeOptions::default()),
            (5, true),
            "{codec:?}"
        );
    }
}

/// A hand-written uncompressed batch around one record body.
fn batch_with_record(record: &[u8]) -> Bytes {
    let mut raw = vec![0u8; 61];
    raw[16] = 2;
    raw[57..61].copy_from_slice(&1i32.to_be_bytes());
    raw.extend_from_slice(record);
    reseal(raw)
}

fn first_record_error(record: &[u8]) -> RecordsError {
    let batch = BatchReader::new(batch_with_record(record), DecodeOptions::default())
        .next()
        .expect("item")
        .expect("batch");
    batch
        .records(&DecodeOptions::default())
        .expect("records")
        .next()
        .expect("one")
        .expect_err("malformed record")
}

#[test]
fn lengths_past_the_end_and_varint_overflow() {
    // A valid record body: attrs, ts 0, offset 0, key null, value "ab", 0 headers.
    let good = [9u8 * 2 / 2 * 2, 0, 0, 0, 1, 4, b'a', b'b', 0];
    let mut good = good.to_vec();
    good[0] = 16; // zig-zag 8: the eight bytes after the length
    let batch = BatchReader::new(batch_with_record(&good), DecodeOptions::default())
        .next()
        .expect("item")
        .expect("batch");
    let r = batch
        .records(&DecodeOptions::default())
        .expect("records")
        .next()
        .expect("one")
        .expect("ok");
    assert_eq!(r.value(), Some(&b"ab"[..]));
    assert_eq!(r.key(), None);

    // Record length past the end of the batch.
    let mut bad = good.clone();
    bad[0] = 40;
    assert!(matches!(
        first_record_error(&bad).kind,
        RecordsErrorKind::UnexpectedEof { .. }
    ));
    // Record length negative.
    bad[0] = 3;
    assert!(matches!(
        first_record_error(&bad).kind,
        RecordsErrorKind::NegativeLength(-2)
    ));
    // Value length past the record's own end (but within the batch).
    let mut bad = good.clone();
    bad[5] = 8;
    bad.extend_from_slice(b"xxxx");
    let e = first_record_error(&bad);
    assert_eq!(e.field, "Record.value");
    // Key length -2.
    let mut bad = good.clone();
    bad[4] = 3;
    assert!(matches!(
        first_record_error(&bad).kind,
        RecordsErrorKind::NegativeLength(-2)
    ));
    // Header count larger than the bytes.
    let mut bad = good.clone();
    bad[8] = 100;
    assert!(matches!(
        first_record_error(&bad).kind,
        RecordsErrorKind::RecordCountExceedsBytes { count: 50, .. }
    ));
    // Null header key.
    let mut bad = good.clone();
    bad[0] = 20;
    bad[8] = 2;
    bad.extend_from_slice(&[1, 1]);
    assert_eq!(first_record_error(&bad).field, "Header.key");
    // Fields shorter than the declared length.
    let mut bad = good.clone();
    bad[0] = 18;
    bad.push(0);
    assert!(matches!(
        first_record_error(&bad).kind,
        RecordsErrorKind::RecordLengthMismatch {
            declared: 9,
            used: 8
        }
    ));
    // A six-byte varint for the record length, and an 11-byte timestamp delta.
    let overlong = [0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0, 0];
    assert!(matches!(
        first_record_error(&overlong).kind,
        RecordsErrorKind::VarintOverflow { max_bytes: 5 }
    ));
    let mut bad = vec![30u8, 0];
    bad.extend_from_slice(&[0xff; 10]);
    bad.extend_from_slice(&[0x01, 0, 1, 1, 0]);
    let e = first_record_error(&bad);
    assert_eq!(e.field, "Record.timestamp_delta");
    assert!(matches!(
        e.kind,
        RecordsErrorKind::VarintOverflow { max_bytes: 10 }
    ));
    // Value bits past 32 in a five-byte varint.
    let wide = [0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0];
    assert!(matches!(
        first_record_error(&wide).kind,
        RecordsErrorKind::VarintOverflow { .. }
    ));
}

#[test]
fn batch_level_lies() {
    let whole = valid_batch(Compression::None);
    // Batch length below any format's minimum.
    let mut raw = whole.to_vec();
    raw[8..12].copy_from_slice(&5i32.to_be_bytes());
    let e = BatchReader::new(Bytes::from(raw), DecodeOptions::default())
        .next()
        .expect("item")
        .expect_err("len");
    assert!(matches!(e.kind, RecordsErrorKind::InvalidLength { .. }));
    // Negative batch length.
    let mut raw = whole.to_vec();
    raw[8..12].copy_from_slice(&(-1i32).to_be_bytes());
    assert!(
        BatchReader::new(Bytes::from(raw), DecodeOptions::default())
            .next()
            .expect("item")
            .is_err()
    );
    // Long enough for legacy but not for a v2 header.
    let mut raw = whole[..40].to_vec();
    raw[8..12].copy_from_slice(&28i32.to_be_bytes());
    let e = BatchReader::new(Bytes::from(raw), lax())
        .next()
        .expect("item")
        .expect_err("short");
    assert!(matches!(e.kind, RecordsErrorKind::InvalidLength { .. }));
    // Unknown magic.
    let mut raw = whole.to_vec();
    raw[16] = 3;
    let e = BatchReader::new(Bytes::from(raw), DecodeOptions::default())
        .next()
        .expect("item")
        .expect_err("magic");
    assert_eq!(e.kind, RecordsErrorKind::UnsupportedMagic(3));
    // Unknown codec id.
    let mut raw = whole.to_vec();
    raw[22] |= 0x07;
    let e = BatchReader::new(reseal(raw), DecodeOptions::default())
        .next()
        .expect("item")
        .expect_err("codec");
    assert_eq!(e.kind, RecordsErrorKind::UnknownCompression(7));
    // After an error the reader stops.
    let mut two = whole.to_vec();
    two[16] = 9;
    two.extend_from_slice(&whole);
    let mut reader = BatchReader::new(Bytes::from(two), DecodeOptions::default());
    assert!(reader.next().expect("item").is_err());
    assert!(reader.next().is_none());
}

fn compressed_batch(compression: Compression, framing: SnappyFraming, value: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    let config = BatchConfig {
        compression,
        snappy_framing: framing,
        max_batch_bytes: usize::MAX,
        ..BatchConfig::default()
    };
    let mut b = BatchBuilder::new(&mut buf, &config);
    b.append(&NewRecord::new(0).value(value)).expect("append");
    b.finish().expect("finish");
    buf.freeze()
}

#[test]
fn decompression_bombs_are_errors() {
    let zeros = vec![0u8; 4 << 20];
    let opts = DecodeOptions {
        max_decompressed_bytes: 1 << 20,
        ..DecodeOptions::default()
    };
    for (codec, framing) in [
        (Compression::Gzip, SnappyFraming::Xerial),
        (Compression::Snappy, SnappyFraming::Xerial),
        (Compression::Snappy, SnappyFraming::Raw),
        (Compression::Lz4, SnappyFraming::Xerial),
        (Compression::Zstd, SnappyFraming::Xerial),
    ] {
        let bomb = compressed_batch(codec, framing, &zeros);
        assert!(bomb.len() < 300 * 1024, "{codec:?} compresses zeros");
        let batch = BatchReader::new(bomb.clone(), opts)
            .next()
            .expect("item")
            .expect("header is fine");
        let e = batch.records(&opts).expect_err("bomb");
        assert_eq!(
            e.kind,
            RecordsErrorKind::DecompressedTooLarge { limit: 1 << 20 },
            "{codec:?} {framing:?}"
        );
        // The same batch within a limit that allows it decodes.
        let big = DecodeOptions {
            max_decompressed_bytes: 8 << 20,
            ..DecodeOptions::default()
        };
        assert_eq!(drain(bomb, big), (1, false), "{codec:?}");
    }
}

#[test]
fn codec_headers_that_lie_are_errors_without_big_allocations() {
    let opts = DecodeOptions::default();
    let sealed = |codec: Compression, payload: &[u8]| {
        let mut raw = vec![0u8; 61];
        raw[16] = 2;
        raw[21..23].copy_from_slice(&i16::from(codec.id()).to_be_bytes());
        raw[57..61].copy_from_slice(&1i32.to_be_bytes());
        raw.extend_from_slice(payload);
        reseal(raw)
    };
    let expect_err = |codec, payload: &[u8]| {
        let batch = BatchReader::new(sealed(codec, payload), opts)
            .next()
            .expect("item")
            .expect("batch");
        batch.records(&opts).expect_err("lying payload")
    };
    // Raw snappy declaring 4 GiB - 1 from five bytes.
    let e = expect_err(Compression::Snappy, &[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(
        matches!(
            e.kind,
            RecordsErrorKind::Decompress {
                codec: "snappy",
                ..
            }
        ),
        "{e}"
    );
    // xerial chunk length past the end.
    let mut xerial = vec![
        0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
    ];
    xerial.extend_from_slice(&u32::MAX.to_be_bytes());
    let e = expect_err(Compression::Snappy, &xerial);
    assert!(matches!(e.kind, RecordsErrorKind::Decompress { .. }), "{e}");
    // LZ4 frame with a 4 MiB block size whose block claims 2 GiB.
    let mut lz4 = 0x184D_2204u32.to_le_bytes().to_vec();
    lz4.extend_from_slice(&[0x60, 0x70, 0x00]);
    lz4.extend_from_slice(&0x7fff_ffffu32.to_le_bytes());
    lz4.extend_from_slice(&[0u8; 16]);
    let e = expect_err(Compression::Lz4, &lz4);
    assert!(
        matches!(e.kind, RecordsErrorKind::Decompress { codec: "lz4", .. }),
        "{e}"
    );
    // LZ4 with a bad magic, a bad version, and a truncated header.
    for bad in [
        &[1u8, 2, 3, 4, 5, 6, 7][..],
        &[0x04, 0x22, 0x4d, 0x18, 0xc0, 0x40, 0],
        &[0x04, 0x22, 0x4d],
    ] {
        assert!(matches!(
            expect_err(Compression::Lz4, bad).kind,
            RecordsErrorKind::Decompress { .. }
        ));
    }
    // gzip and zstd garbage.
    assert!(matches!(
        expect_err(Compression::Gzip, b"not gzip at all").kind,
        RecordsErrorKind::Decompress { .. }
    ));
    assert!(matches!(
        expect_err(Compression::Zstd, b"not zstd at all").kind,
        RecordsErrorKind::Decompress { .. }
    ));
}

#[test]
fn default_decompression_limit_is_the_frame_limit() {
    assert_eq!(
        DecodeOptions::default().max_decompressed_bytes,
        100 * 1024 * 1024
    );
    assert!(DecodeOptions::default().verify_crc);
}

/// A legacy message with the given magic/attributes/value, CRC filled in.
#[cfg(feature = "gzip")]
fn legacy_message(
    offset: i64,
    magic: u8,
    attributes: u8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Vec<u8> {
    let mut body = vec![magic, attributes];
    if magic == 1 {
        body.extend_from_slice(&timestamp.to_be_bytes());
    }
    for field in [key, value] {
        match field {
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(b) => {
                body.extend_from_slice(&(b.len() as i32).to_be_bytes());
                body.extend_from_slice(b);
            }
        }
    }
    let mut crc = crc32fast_like(&body).to_be_bytes().to_vec();
    crc.extend_from_slice(&body);
    let mut out = offset.to_be_bytes().to_vec();
    out.extend_from_slice(&(crc.len() as i32).to_be_bytes());
    out.extend_from_slice(&crc);
    out
}

/// A bit-at-a-time CRC32 (IEEE), independent of the crate's table-driven one.
#[cfg(feature = "gzip")]
fn crc32fast_like(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[cfg(feature = "gzip")]
fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

#[test]
#[cfg(feature = "gzip")]
fn legacy_wrappers_log_append_time_and_nested_compression() {
    // Magic 1 wrapper with log-append time: inner timestamps are replaced by the wrapper's.
    let mut inner = Vec::new();
    for i in 0..3 {
        inner.extend(legacy_message(i, 1, 0, 5 + i, None, Some(b"x")));
    }
    let wrapper = legacy_message(102, 1, 0x01 | 0x08, 999, None, Some(&gzip(&inner)));
    let opts = DecodeOptions::default();
    let batch = BatchReader::new(Bytes::from(wrapper), opts)
        .next()
        .expect("item")
        .expect("batch");
    let records: Vec<Record> = batch
        .records(&opts)
        .expect("records")
        .collect::<Result<_, _>>()
        .expect("ok");
    let got: Vec<(i64, i64)> = records.iter().map(|r| (r.offset, r.timestamp)).collect();
    assert_eq!(got, vec![(100, 999), (101, 999), (102, 999)]);

    // A compressed message inside a compressed wrapper is refused.
    let nested_inner = legacy_message(
        0,
        1,
        0x01,
        0,
        None,
        Some(&gzip(&legacy_message(0, 1, 0, 0, None, Some(b"y")))),
    );
    let wrapper = legacy_message(0, 1, 0x01, 0, None, Some(&gzip(&nested_inner)));
    let batch = BatchReader::new(Bytes::from(wrapper), opts)
        .next()
        .expect("item")
        .expect("batch");
    assert_eq!(
        batch.records(&opts).expect_err("nested").kind,
        RecordsErrorKind::NestedCompression
    );

    // A truncated inner message set is an error, not a partial batch.
    let wrapper = legacy_message(0, 1, 0x01, 0, None, Some(&gzip(&inner[..inner.len() - 2])));
    let batch = BatchReader::new(Bytes::from(wrapper), opts)
        .next()
        .expect("item")
        .expect("batch");
    assert!(batch.records(&opts).is_err());

    // A wrapper with a null value.
    let wrapper = legacy_message(0, 0, 0x01, 0, None, None);
    let batch = BatchReader::new(Bytes::from(wrapper), opts)
        .next()
        .expect("item")
        .expect("batch");
    assert!(batch.records(&opts).is_err());

    // Every truncation of a legacy set is a partial batch; every flipped byte past
    // the CRC field is a CRC error.
    let mut set = legacy_message(7, 0, 0, 0, Some(b"k"), Some(b"v"));
    set.extend(legacy_message(8, 1, 0, 12, None, Some(b"w")));
    assert_eq!(drain(Bytes::from(set.clone()), opts), (2, false));
    let first_len = 12 + 4 + 2 + 4 + 1 + 4 + 1;
    for cut in 1..set.len() {
        let mut reader = BatchReader::new(Bytes::from(set[..cut].to_vec()), opts);
        let mut complete = 0;
        for b in reader.by_ref() {
            b.expect("complete ones decode");
            complete += 1;
        }
        assert_eq!(complete, usize::from(cut >= first_len), "cut {cut}");
        assert_eq!(reader.truncated().is_none(), cut == first_len, "cut {cut}");
    }
    // Byte 16 is the magic itself: flipping it is an unknown format, not a CRC error.
    for at in 17..first_len {
        let mut bad = set.clone();
        bad[at] ^= 0x10;
        let e = BatchReader::new(Bytes::from(bad), opts)
            .next()
            .expect("item")
            .expect_err("crc");
        assert!(
            matches!(e.kind, RecordsErrorKind::CrcMismatch { .. }),
            "byte {at}: {e}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/records_hostile.txt"))),
        ..ProptestConfig::default()
    })]

    /// Random bytes, with or without a plausible batch prefix, never panic.
    #[test]
    fn random_bytes_never_panic(
        magic in 0u8..4,
        attrs in any::<u8>(),
        tail in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut raw = vec![0u8; 61];
        raw[16] = magic;
        raw[22] = attrs;
        raw[57..61].copy_from_slice(&3i32.to_be_bytes());
        raw.extend_from_slice(&tail);
        drain(reseal(raw), DecodeOptions::default());
        drain(Bytes::from(tail), lax());
    }

    /// Random edits of valid batches of every codec never panic.
    #[test]
    fn mutated_batches_never_panic(
        codec in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        reseal_it in any::<bool>(),
    ) {
        let mut raw = valid_batch(ALL_CODECS[codec]).to_vec();
        for (at, byte) in edits {
            let i = at.index(raw.len());
            raw[i] = byte;
        }
        if reseal_it {
            drain(reseal(raw), DecodeOptions::default());
        } else {
            drain(Bytes::from(raw), lax());
        }
    }
}
