//! Control batches (transaction markers) and read_committed filtering with a Fetch
//! response's aborted-transactions list.

use bytes::{Bytes, BytesMut};
use kafka_sansio::records::*;

struct Log {
    buf: BytesMut,
    next_offset: i64,
}

impl Log {
    fn new() -> Self {
        Self {
            buf: BytesMut::new(),
            next_offset: 0,
        }
    }

    /// Appends a data batch; returns its first offset.
    fn data(&mut self, producer_id: i64, transactional: bool, values: &[&str]) -> i64 {
        let base = self.next_offset;
        let config = BatchConfig {
            base_offset: base,
            producer_id,
            producer_epoch: 0,
            base_sequence: 0,
            transactional,
            compression: Compression::Lz4,
            ..BatchConfig::default()
        };
        let mut b = BatchBuilder::new(&mut self.buf, &config);
        for v in values {
            b.append(&NewRecord::new(base).value(v.as_bytes()))
                .expect("append");
        }
        b.finish().expect("finish");
        self.next_offset += values.len() as i64;
        base
    }

    fn marker(&mut self, producer_id: i64, kind: ControlRecordType) {
        let config = BatchConfig {
            base_offset: self.next_offset,
            producer_id,
            producer_epoch: 0,
            ..BatchConfig::default()
        };
        write_control_batch(&mut self.buf, &config, ControlRecord::marker(kind, 5), 0)
            .expect("marker");
        self.next_offset += 1;
    }

    fn bytes(&self) -> Bytes {
        self.buf.clone().freeze()
    }
}

fn read_committed(log: Bytes, aborted: &[AbortedTransaction]) -> Vec<String> {
    let opts = DecodeOptions::default();
    let mut filter = ReadCommitted::new(aborted.iter().copied());
    let mut out = Vec::new();
    for batch in BatchReader::new(log, opts) {
        let batch = batch.expect("batch");
        if filter.keep(&batch, &opts).expect("filter") {
            for r in batch.records(&opts).expect("records") {
                let r = r.expect("record");
                let v = r.value().expect("value");
                out.push(String::from_utf8(v.to_vec()).expect("utf8"));
            }
        }
    }
    out
}

#[test]
fn markers_decode_to_typed_values() {
    for (kind, id) in [
        (ControlRecordType::Abort, 0),
        (ControlRecordType::Commit, 1),
        (ControlRecordType::Other(2), 2),
    ] {
        assert_eq!(kind.id(), id);
        let mut buf = BytesMut::new();
        let marker = if let ControlRecordType::Other(_) = kind {
            ControlRecord {
                version: 0,
                kind,
                coordinator_epoch: None,
            }
        } else {
            ControlRecord::marker(kind, 42)
        };
        let config = BatchConfig {
            base_offset: 9,
            producer_id: 3,
            producer_epoch: 1,
            ..BatchConfig::default()
        };
        write_control_batch(&mut buf, &config, marker, 1234).expect("write");
        let batch = BatchReader::new(buf.freeze(), DecodeOptions::default())
            .next()
            .expect("item")
            .expect("batch")
            .into_v2()
            .expect("v2");
        assert!(batch.header.is_control());
        assert!(batch.header.is_transactional());
        assert_eq!(batch.header.base_offset, 9);
        assert_eq!(
            batch.control_record(&DecodeOptions::default()),
            Ok(Some(marker))
        );
    }
}

#[test]
fn ordinary_batches_have_no_control_record() {
    let mut log = Log::new();
    log.data(1, false, &["a"]);
    let batch = BatchReader::new(log.bytes(), DecodeOptions::default())
        .next()
        .expect("item")
        .expect("batch")
        .into_v2()
        .expect("v2");
    assert_eq!(batch.control_record(&DecodeOptions::default()), Ok(None));
}

#[test]
fn malformed_control_records_are_errors() {
    // A control batch whose record key is too short.
    let mut buf = BytesMut::new();
    let mut b = BatchBuilder::new(&mut buf, &BatchConfig::default());
    b.append(&NewRecord::new(0).key(&[0, 0])).expect("append");
    b.finish().expect("finish");
    buf[22] |= 0x20; // control bit
    let crc = crc32c::crc32c(&buf[21..]);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
    let batch = BatchReader::new(buf.freeze(), DecodeOptions::default())
        .next()
        .expect("item")
        .expect("batch")
        .into_v2()
        .expect("v2");
    let err = batch
        .control_record(&DecodeOptions::default())
        .expect_err("short key");
    assert!(
        matches!(err.kind, RecordsErrorKind::InvalidControlRecord(_)),
        "{err}"
    );
}

#[test]
fn aborted_transactions_are_dropped_and_markers_hidden() {
    let mut log = Log::new();
    log.data(10, false, &["plain-1"]);
    let t1 = log.data(1, true, &["p1-aborted-a", "p1-aborted-b"]);
    log.data(2, true, &["p2-committed-a"]);
    log.data(1, true, &["p1-aborted-c"]);
    log.marker(1, ControlRecordType::Abort);
    log.data(2, true, &["p2-committed-b"]);
    log.marker(2, ControlRecordType::Commit);
    // Producer 1 starts a new transaction after its abort: that one commits.
    log.data(1, true, &["p1-committed"]);
    log.marker(1, ControlRecordType::Commit);
    log.data(10, false, &["plain-2"]);

    let aborted = [AbortedTransaction {
        producer_id: 1,
        first_offset: t1,
    }];
    assert_eq!(
        read_committed(log.bytes(), &aborted),
        [
            "plain-1",
            "p2-committed-a",
            "p2-committed-b",
            "p1-committed",
            "plain-2"
        ]
    );
    // read_uncommitted equivalent: no aborted list still hides control batches.
    assert_eq!(read_committed(log.bytes(), &[]).len(), 8);
}

#[test]
fn aborted_list_order_does_not_matter_and_other_producers_are_untouched() {
    let mut log = Log::new();
    let a = log.data(1, true, &["p1-x"]);
    let b = log.data(2, true, &["p2-x"]);
    log.data(3, true, &["p3-kept"]);
    log.marker(1, ControlRecordType::Abort);
    log.marker(2, ControlRecordType::Abort);
    log.marker(3, ControlRecordType::Commit);
    let c = log.data(2, true, &["p2-y"]);
    log.marker(2, ControlRecordType::Abort);
    let aborted = [
        AbortedTransaction {
            producer_id: 2,
            first_offset: c,
        },
        AbortedTransaction {
            producer_id: 1,
            first_offset: a,
        },
        AbortedTransaction {
            producer_id: 2,
            first_offset: b,
        },
    ];
    assert_eq!(read_committed(log.bytes(), &aborted), ["p3-kept"]);
}

#[test]
fn a_non_transactional_batch_from_an_aborted_producer_is_kept() {
    let mut log = Log::new();
    let t = log.data(1, true, &["aborted"]);
    log.data(1, false, &["idempotent-only"]);
    log.marker(1, ControlRecordType::Abort);
    let aborted = [AbortedTransaction {
        producer_id: 1,
        first_offset: t,
    }];
    assert_eq!(read_committed(log.bytes(), &aborted), ["idempotent-only"]);
}
