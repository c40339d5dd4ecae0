//! `RecordSet`: records of several batches read in place from an offset on. Its
//! reader must yield exactly what decoding every batch into owned records and
//! dropping those before the offset yields, in every codec and format, and stop at
//! the first record that does not parse.

use bytes::{Bytes, BytesMut};
use kafka_sansio::records::*;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// What a user reads of a record.
type Seen = (
    i64,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
);

/// What a user reads of a lent record, through its own accessors (the same shape as
/// `seen_owned`, on purpose: each type's accessors are what is checked).
fn seen_ref(r: &RecordRef<'_>) -> Seen {
    (
        r.offset,
        r.timestamp,
        r.key().map(<[u8]>::to_vec),
        r.value().map(<[u8]>::to_vec),
        r.headers()
            .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
            .collect(),
    )
}

fn seen_owned(r: &Record) -> Seen {
    (
        r.offset,
        r.timestamp,
        r.key().map(<[u8]>::to_vec),
        r.value().map(<[u8]>::to_vec),
        r.headers()
            .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
            .collect(),
    )
}

/// The reference: every batch decoded into owned records, those before `from`
/// dropped; the error ends it.
fn reference(batches: &[Batch], from: i64, opts: &DecodeOptions) -> (Vec<Seen>, bool) {
    let mut out = Vec::new();
    for batch in batches {
        let records = match batch.records(opts) {
            Ok(r) => r,
            Err(_) => return (out, true),
        };
        for r in records {
            match r {
                Ok(r) if r.offset >= from => out.push(seen_owned(&r)),
                Ok(_) => {}
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

/// The reader's records and whether it ended with an error (after which it must
/// yield nothing more).
fn read(set: &RecordSet) -> (Vec<Seen>, bool) {
    let mut reader = set.reader();
    let mut out = Vec::new();
    while let Some(r) = reader.next_ref() {
        match r {
            Ok(r) => out.push(seen_ref(&r)),
            Err(_) => {
                assert!(reader.next_ref().is_none(), "nothing after an error");
                return (out, true);
            }
        }
    }
    (out, false)
}

fn batch_bytes(base: i64, records: &[NewRecordSpec], compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    let config = BatchConfig {
        base_offset: base,
        compression,
        ..BatchConfig::default()
    };
    let mut b = BatchBuilder::new(&mut buf, &config);
    for (i, (k, v, hs)) in records.iter().enumerate() {
        let headers: Vec<NewHeader<'_>> = hs
            .iter()
            .map(|(hk, hv)| NewHeader::new(hk, hv.as_deref()))
            .collect();
        let record = NewRecord {
            timestamp: 1_700_000_000_000 + i as i64,
            key: k.as_deref(),
            value: v.as_deref(),
            headers: &headers,
        };
        b.append(&record).expect("append");
    }
    b.finish().expect("finish");
    buf.freeze()
}

fn batches_of(buf: Bytes, opts: DecodeOptions) -> Vec<Batch> {
    BatchReader::new(buf, opts)
        .collect::<Result<_, _>>()
        .expect("batches")
}

fn fixture(name: &str) -> Bytes {
    let path = format!(
        "{}/tests/data/records/kafka-python/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        3 => Just(Compression::None),
        1 => Just(Compression::Gzip),
        1 => Just(Compression::Snappy),
        1 => Just(Compression::Lz4),
        1 => Just(Compression::Zstd),
    ]
}

fn bytes_opt() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        4 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Some),
    ]
}

type NewRecordSpec = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
);

fn record_spec() -> impl Strategy<Value = NewRecordSpec> {
    (
        bytes_opt(),
        bytes_opt(),
        proptest::collection::vec(("[a-z]{0,6}", bytes_opt()), 0..3),
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/records_set.txt"))),
        ..ProptestConfig::default()
    })]

    /// Batches of any codec (some legacy message sets among them) read from any
    /// offset give the reference's records, the same again on a second reading,
    /// and the same as owned records.
    #[test]
    fn reader_matches_decoding_every_batch(
        specs in proptest::collection::vec((proptest::collection::vec(record_spec(), 1..12), codec()), 1..6),
        legacy_at in proptest::option::of((0usize..6, 0usize..8)),
        from_pick in 0usize..100,
    ) {
        let opts = DecodeOptions::default();
        let mut buf = BytesMut::new();
        let mut base = 0i64;
        let mut offsets = Vec::new();
        for (i, (records, compression)) in specs.iter().enumerate() {
            if let Some((at, which)) = legacy_at && at == i {
                // kafka-python's message sets hold offsets 500..=509.
                let magic = which % 2;
                let codec = ["none", "gzip", "snappy", "lz4"][which / 2];
                buf.extend_from_slice(&fixture(&format!("legacy_v{magic}_{codec}.bin")));
                offsets.extend(500..510);
                base = 510;
            }
            buf.extend_from_slice(&batch_bytes(base, records, *compression));
            offsets.extend(base..base + records.len() as i64);
            base += records.len() as i64;
        }
        let batches = batches_of(buf.freeze(), opts);
        // An offset in the log, or just before or past its ends.
        let from = if from_pick < offsets.len() { offsets[from_pick] } else { [-1, base, base + 1][from_pick % 3] };
        let set = RecordSet::new(batches.clone(), from, opts);
        let expected = reference(&batches, from, &opts);
        prop_assert!(!expected.1);
        prop_assert_eq!(read(&set), expected.clone());
        prop_assert_eq!(read(&set), expected.clone(), "a second reader reads the same");
        let owned: Vec<Seen> = set.to_records().expect("records").iter().map(seen_owned).collect();
        prop_assert_eq!(owned, expected.0.clone());
        // A lent record kept as an owned one is the same record.
        let mut reader = set.reader();
        let mut kept = Vec::new();
        while let Some(r) = reader.next_ref() {
            kept.push(seen_owned(&r.expect("record").to_record()));
        }
        prop_assert_eq!(kept, expected.0);
    }

    /// A record that does not parse ends the reading there, after every record
    /// before it, as the reference's decoding does, and fails `to_records`.
    #[test]
    fn a_bad_record_ends_the_reading(
        records in proptest::collection::vec(record_spec(), 2..10),
        bad_pick in any::<prop::sample::Index>(),
        from_pick in 0i64..12,
    ) {
        // The CRC is not checked, so the damaged record is reached.
        let opts = DecodeOptions { verify_crc: false, ..DecodeOptions::default() };
        let first = batch_bytes(0, &records[..1], Compression::None);
        let mut second = batch_bytes(1, &records[1..], Compression::None).to_vec();
        // Records of the second batch start after its 61-byte header; make the
        // length of the one picked a negative varint.
        let mut pos = BATCH_HEADER_LEN;
        let bad = bad_pick.index(records.len() - 1);
        for _ in 0..bad {
            let (len, n) = zigzag_at(&second[pos..]);
            pos += n + len;
        }
        second[pos] = 0x01; // zig-zag -1
        // A good batch after it must not be read either.
        let third = batch_bytes(records.len() as i64, &records[..1], Compression::Lz4);
        let mut buf = BytesMut::from(&first[..]);
        buf.extend_from_slice(&second);
        buf.extend_from_slice(&third);
        let batches = batches_of(buf.freeze(), opts);
        let set = RecordSet::new(batches.clone(), from_pick, opts);
        let expected = reference(&batches, from_pick, &opts);
        prop_assert!(expected.1);
        prop_assert_eq!(read(&set), expected);
        prop_assert!(set.to_records().is_err());
    }
}

/// A zig-zag varint's value and length.
fn zigzag_at(d: &[u8]) -> (usize, usize) {
    let (mut raw, mut shift, mut n) = (0u64, 0, 0);
    loop {
        let b = d[n];
        raw |= u64::from(b & 0x7f) << shift;
        n += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    ((raw >> 1) as usize, n)
}

#[test]
fn legacy_records_are_lent_from_the_reader() {
    let opts = DecodeOptions::default();
    for magic in [0, 1] {
        for codec in ["none", "gzip", "snappy", "lz4"] {
            let batches = batches_of(fixture(&format!("legacy_v{magic}_{codec}.bin")), opts);
            let set = RecordSet::new(batches, 503, opts);
            let (records, failed) = read(&set);
            assert!(!failed);
            let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
            assert_eq!(offsets, (503..510).collect::<Vec<_>>(), "v{magic} {codec}");
            let value = format!("value-{}-", 3).repeat(4).into_bytes();
            assert_eq!(records[0].3.as_deref(), Some(&value[..]));
        }
    }
}

#[test]
fn an_empty_set_and_one_past_its_end_read_nothing() {
    let opts = DecodeOptions::default();
    assert_eq!(read(&RecordSet::default()), (Vec::new(), false));
    let buf = batch_bytes(
        0,
        &[(None, Some(b"v".to_vec()), Vec::new())],
        Compression::Lz4,
    );
    let set = RecordSet::new(batches_of(buf, opts), 1, opts);
    assert_eq!(read(&set), (Vec::new(), false));
    assert_eq!(set.batches().len(), 1);
}
