//! The simulated cluster's transactions, driven by hand-made requests: the
//! transaction coordinator (InitProducerId with a transactional id,
//! AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn), the markers it
//! writes, and what read_committed readers are told (the last stable offset, the
//! aborted transactions, ListOffsets' latest offset).
#![cfg(feature = "sim")]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // tests own their clock

use kafka_sansio::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, ErrorCode, FetchResponse,
    InitProducerIdRequest, ListOffsetsRequest, OffsetFetchRequest, TxnOffsetCommitRequest,
    add_partitions_to_txn_request, list_offsets_request, offset_fetch_request,
    txn_offset_commit_request,
};
use kafka_sansio::records::{
    AbortedTransaction, BatchBuilder, BatchConfig, BatchReader, ControlRecordType, DecodeOptions,
    NewRecord, ReadCommitted,
};
use kafka_sansio::sim::ConnectionId;
use kafka_sansio::wire::{Bytes, BytesMut};
use std::time::Duration;

mod sim_harness;
use sim_harness::*;

/// One broker (so it coordinates every transactional id and group), topic `t`
/// with two partitions, and a connection to it.
fn setup() -> (Harness, ConnectionId) {
    let mut h = Harness::new(1);
    h.cluster.create_topic("t", 2, 1).unwrap();
    let c = h.cluster.connect(0, h.now).unwrap();
    (h, c)
}

fn init(h: &mut Harness, c: ConnectionId, id: &str, timeout_ms: i32) -> (ErrorCode, i64, i16) {
    let r = h.call(
        c,
        &InitProducerIdRequest {
            transactional_id: Some(id.into()),
            transaction_timeout_ms: timeout_ms,
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        },
        4,
    );
    (r.error_code.into(), r.producer_id, r.producer_epoch)
}

fn add_partitions(
    h: &mut Harness,
    c: ConnectionId,
    id: &str,
    (pid, epoch): (i64, i16),
    partitions: &[(&str, i32)],
) -> Vec<(String, i32, ErrorCode)> {
    let topics = partitions
        .iter()
        .map(
            |(t, p)| add_partitions_to_txn_request::AddPartitionsToTxnTopic {
                name: (*t).into(),
                partitions: vec![*p].into(),
                ..Default::default()
            },
        )
        .collect();
    let r = h.call(
        c,
        &AddPartitionsToTxnRequest {
            v3_and_below_transactional_id: id.into(),
            v3_and_below_producer_id: pid,
            v3_and_below_producer_epoch: epoch,
            v3_and_below_topics: topics,
            ..Default::default()
        },
        3,
    );
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition.iter().map(|p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    p.partition_error_code.into(),
                )
            })
        })
        .collect()
}

fn end(
    h: &mut Harness,
    c: ConnectionId,
    id: &str,
    (pid, epoch): (i64, i16),
    commit: bool,
) -> ErrorCode {
    let r = h.call(
        c,
        &EndTxnRequest {
            transactional_id: id.into(),
            producer_id: pid,
            producer_epoch: epoch,
            committed: commit,
            ..Default::default()
        },
        3,
    );
    r.error_code.into()
}

/// A transactional batch of `values` from producer `pid`/`epoch` at sequence `seq`.
fn txn_batch(values: &[&str], (pid, epoch): (i64, i16), seq: i32) -> Bytes {
    let mut buf = BytesMut::new();
    let config = BatchConfig {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        transactional: true,
        ..BatchConfig::default()
    };
    let mut b = BatchBuilder::new(&mut buf, &config);
    for v in values {
        b.append(&NewRecord::new(1_000).value(v.as_bytes()))
            .unwrap();
    }
    b.finish().unwrap();
    buf.freeze()
}

fn produce_txn(
    h: &mut Harness,
    c: ConnectionId,
    partition: i32,
    values: &[&str],
    producer: (i64, i16),
    seq: i32,
) -> (ErrorCode, i64) {
    let r = h.call(
        c,
        &produce("t", partition, -1, txn_batch(values, producer, seq)),
        9,
    );
    let p = &r.responses[0].partition_responses[0];
    (p.error_code.into(), p.base_offset)
}

/// A Fetch of `t`-`partition` from offset 0 at `isolation_level`, answered at once.
fn fetch_at(
    h: &mut Harness,
    c: ConnectionId,
    partition: i32,
    isolation_level: i8,
) -> FetchResponse {
    let mut r = fetch("t", partition, 0, 0, 0);
    r.isolation_level = isolation_level;
    h.call(c, &r, 12)
}

/// What a read_committed consumer is given of a fetch: the values the records
/// layer keeps with the aborted transactions the response lists.
fn committed_values(f: &FetchResponse) -> Vec<String> {
    let p = &f.responses[0].partitions[0];
    let aborted = p
        .aborted_transactions
        .clone()
        .expect("read_committed lists aborted transactions");
    let mut filter = ReadCommitted::new(aborted.iter().map(|a| AbortedTransaction {
        producer_id: a.producer_id,
        first_offset: a.first_offset,
    }));
    let opts = DecodeOptions::default();
    let mut out = Vec::new();
    for batch in BatchReader::new(p.records.clone().unwrap_or_default(), opts) {
        let batch = batch.unwrap();
        if filter.keep(&batch, &opts).unwrap() {
            for r in batch.records(&opts).unwrap() {
                out.push(String::from_utf8(r.unwrap().value().unwrap().to_vec()).unwrap());
            }
        }
    }
    out
}

/// The control records a fetch returned, in order: (offset, commit?).
fn markers(f: &FetchResponse) -> Vec<(i64, ControlRecordType)> {
    let p = &f.responses[0].partitions[0];
    let opts = DecodeOptions::default();
    BatchReader::new(p.records.clone().unwrap_or_default(), opts)
        .filter_map(|b| b.unwrap().into_v2())
        .filter(|b| b.header.is_control())
        .map(|b| {
            let kind = b.control_record(&opts).unwrap().unwrap().kind;
            (b.header.base_offset, kind)
        })
        .collect()
}

fn latest(h: &mut Harness, c: ConnectionId, isolation_level: i8) -> i64 {
    let r = h.call(
        c,
        &ListOffsetsRequest {
            replica_id: -1,
            isolation_level,
            topics: vec![list_offsets_request::ListOffsetsTopic {
                name: "t".into(),
                partitions: vec![list_offsets_request::ListOffsetsPartition {
                    partition_index: 0,
                    timestamp: -1,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
        7,
    );
    r.topics[0].partitions[0].offset
}

#[test]
fn a_committed_and_an_aborted_transaction_as_read_committed_readers_see_them() {
    let (mut h, c) = setup();
    let (e, pid, epoch) = init(&mut h, c, "tx", 60_000);
    assert_eq!((e, epoch), (ErrorCode::NONE, 0));
    let p = (pid, epoch);

    assert_eq!(
        add_partitions(&mut h, c, "tx", p, &[("t", 0)]),
        [("t".to_owned(), 0, ErrorCode::NONE)]
    );
    assert_eq!(
        produce_txn(&mut h, c, 0, &["a", "b"], p, 0),
        (ErrorCode::NONE, 0)
    );

    // Open: read_committed sees nothing and the last stable offset holds at 0;
    // read_uncommitted reads both records and is told of no aborted list.
    let f = fetch_at(&mut h, c, 0, 1);
    let part = &f.responses[0].partitions[0];
    assert_eq!((part.high_watermark, part.last_stable_offset), (2, 0));
    assert!(part.records.as_ref().unwrap().is_empty());
    let f = fetch_at(&mut h, c, 0, 0);
    let part = &f.responses[0].partitions[0];
    assert_eq!(values_of(part.records.as_ref().unwrap()).len(), 2);
    assert_eq!(part.aborted_transactions, None);
    assert_eq!((latest(&mut h, c, 1), latest(&mut h, c, 0)), (0, 2));

    assert_eq!(end(&mut h, c, "tx", p, true), ErrorCode::NONE);
    // A retried EndTxn is answered as done; the opposite one is refused.
    assert_eq!(end(&mut h, c, "tx", p, true), ErrorCode::NONE);
    assert_eq!(end(&mut h, c, "tx", p, false), ErrorCode::INVALID_TXN_STATE);
    let f = fetch_at(&mut h, c, 0, 1);
    let part = &f.responses[0].partitions[0];
    assert_eq!((part.high_watermark, part.last_stable_offset), (3, 3));
    assert_eq!(markers(&f), [(2, ControlRecordType::Commit)]);
    assert_eq!(committed_values(&f), ["a", "b"]);
    assert_eq!(part.aborted_transactions.as_deref(), Some(&[][..]));

    // The second transaction aborts: its records stay in the log, listed as aborted.
    add_partitions(&mut h, c, "tx", p, &[("t", 0)]);
    assert_eq!(
        produce_txn(&mut h, c, 0, &["c", "d"], p, 2),
        (ErrorCode::NONE, 3)
    );
    assert_eq!(end(&mut h, c, "tx", p, false), ErrorCode::NONE);
    let f = fetch_at(&mut h, c, 0, 1);
    let part = &f.responses[0].partitions[0];
    assert_eq!(part.last_stable_offset, 6);
    let aborted: Vec<(i64, i64)> = part
        .aborted_transactions
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| (a.producer_id, a.first_offset))
        .collect();
    assert_eq!(aborted, [(pid, 3)]);
    assert_eq!(
        markers(&f),
        [
            (2, ControlRecordType::Commit),
            (5, ControlRecordType::Abort)
        ]
    );
    assert_eq!(committed_values(&f), ["a", "b"]);
    assert_eq!(values_of(part.records.as_ref().unwrap()).len(), 4 + 2);
    // A fetch from inside the aborted transaction is told about it (its marker is
    // still ahead), one from past it is not.
    let mut r = fetch("t", 0, 4, 0, 0);
    r.isolation_level = 1;
    let f = h.call(c, &r, 12);
    assert_eq!(
        f.responses[0].partitions[0]
            .aborted_transactions
            .as_ref()
            .map(Vec::len),
        Some(1)
    );
    assert!(committed_values(&f).is_empty());
    // A fetch from past the aborted transaction is not told about it.
    let mut r = fetch("t", 0, 6, 0, 0);
    r.isolation_level = 1;
    let f = h.call(c, &r, 12);
    assert_eq!(
        f.responses[0].partitions[0].aborted_transactions.as_deref(),
        Some(&[][..])
    );
}

#[test]
fn the_last_stable_offset_waits_for_the_oldest_open_transaction() {
    let (mut h, c) = setup();
    let (_, a, _) = init(&mut h, c, "a", 60_000);
    let (_, b, _) = init(&mut h, c, "b", 60_000);
    add_partitions(&mut h, c, "a", (a, 0), &[("t", 0)]);
    add_partitions(&mut h, c, "b", (b, 0), &[("t", 0)]);
    produce_txn(&mut h, c, 0, &["a1"], (a, 0), 0);
    produce_txn(&mut h, c, 0, &["b1"], (b, 0), 0);
    produce_txn(&mut h, c, 0, &["a2"], (a, 0), 1);
    // b commits first: a still holds the LSO at its first record.
    assert_eq!(end(&mut h, c, "b", (b, 0), true), ErrorCode::NONE);
    assert_eq!(latest(&mut h, c, 1), 0);
    assert_eq!(end(&mut h, c, "a", (a, 0), false), ErrorCode::NONE);
    let f = fetch_at(&mut h, c, 0, 1);
    assert_eq!(f.responses[0].partitions[0].last_stable_offset, 5);
    assert_eq!(committed_values(&f), ["b1"]);
}

#[test]
fn a_new_instance_fences_the_old_one_and_aborts_what_it_left_open() {
    let (mut h, c) = setup();
    let (_, pid, e0) = init(&mut h, c, "tx", 60_000);
    add_partitions(&mut h, c, "tx", (pid, e0), &[("t", 0), ("t", 1)]);
    produce_txn(&mut h, c, 0, &["zombie"], (pid, e0), 0);

    let (e, pid1, e1) = init(&mut h, c, "tx", 60_000);
    assert_eq!((e, pid1, e1), (ErrorCode::NONE, pid, 1));
    // The open transaction was aborted in both of its partitions, with the new
    // epoch, so the old instance can write nothing more.
    let f = fetch_at(&mut h, c, 0, 1);
    assert_eq!(markers(&f), [(1, ControlRecordType::Abort)]);
    assert!(committed_values(&f).is_empty());
    assert_eq!(
        markers(&fetch_at(&mut h, c, 1, 1)),
        [(0, ControlRecordType::Abort)]
    );
    assert_eq!(
        produce_txn(&mut h, c, 0, &["late"], (pid, e0), 1).0,
        ErrorCode::INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        end(&mut h, c, "tx", (pid, e0), true),
        ErrorCode::PRODUCER_FENCED
    );
    assert_eq!(
        add_partitions(&mut h, c, "tx", (pid, e0), &[("t", 0)])[0].2,
        ErrorCode::PRODUCER_FENCED
    );
    // The new instance starts its sequences afresh.
    add_partitions(&mut h, c, "tx", (pid, e1), &[("t", 0)]);
    assert_eq!(
        produce_txn(&mut h, c, 0, &["new"], (pid, e1), 0),
        (ErrorCode::NONE, 2)
    );
    assert_eq!(end(&mut h, c, "tx", (pid, e1), true), ErrorCode::NONE);
    assert_eq!(committed_values(&fetch_at(&mut h, c, 0, 1)), ["new"]);
}

#[test]
fn the_coordinator_refuses_what_kafka_refuses() {
    let (mut h, c) = setup();
    assert_eq!(
        init(&mut h, c, "tx", 0).0,
        ErrorCode::INVALID_TRANSACTION_TIMEOUT
    );
    assert_eq!(
        init(&mut h, c, "tx", 900_001).0,
        ErrorCode::INVALID_TRANSACTION_TIMEOUT
    );
    let (_, pid, epoch) = init(&mut h, c, "tx", 60_000);
    let p = (pid, epoch);
    // A partition not added to the transaction.
    assert_eq!(
        produce_txn(&mut h, c, 0, &["x"], p, 0).0,
        ErrorCode::INVALID_TXN_STATE
    );
    // Nothing open to end.
    assert_eq!(end(&mut h, c, "tx", p, true), ErrorCode::INVALID_TXN_STATE);
    // An unknown producer id for the transactional id.
    assert_eq!(
        end(&mut h, c, "tx", (pid + 1, epoch), true),
        ErrorCode::INVALID_PRODUCER_ID_MAPPING
    );
    // One unknown partition: nothing is added.
    assert_eq!(
        add_partitions(&mut h, c, "tx", p, &[("t", 0), ("t", 9)]),
        [
            ("t".to_owned(), 0, ErrorCode::OPERATION_NOT_ATTEMPTED),
            ("t".to_owned(), 9, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );
    assert_eq!(
        produce_txn(&mut h, c, 0, &["x"], p, 0).0,
        ErrorCode::INVALID_TXN_STATE
    );

    // A second broker: one of the two does not coordinate "tx".
    let mut h = Harness::new(2);
    h.cluster.create_topic("t", 1, 2).unwrap();
    let wrong: Vec<ErrorCode> = (0..2)
        .map(|b| {
            let c = h.cluster.connect(b, h.now).unwrap();
            init(&mut h, c, "tx", 60_000).0
        })
        .collect();
    wrong
        .iter()
        .filter(|e| **e == ErrorCode::NOT_COORDINATOR)
        .count();
    assert_eq!(
        (
            wrong
                .iter()
                .filter(|e| **e == ErrorCode::NOT_COORDINATOR)
                .count(),
            wrong.iter().filter(|e| **e == ErrorCode::NONE).count()
        ),
        (1, 1),
        "{wrong:?}"
    );
}

#[test]
fn a_transaction_open_past_its_timeout_is_aborted() {
    let (mut h, c) = setup();
    let (_, pid, epoch) = init(&mut h, c, "tx", 1_000);
    add_partitions(&mut h, c, "tx", (pid, epoch), &[("t", 0)]);
    produce_txn(&mut h, c, 0, &["slow"], (pid, epoch), 0);
    h.advance(Duration::from_millis(900));
    assert_eq!(latest(&mut h, c, 1), 0);
    h.advance(Duration::from_millis(200));
    let f = fetch_at(&mut h, c, 0, 1);
    assert_eq!(f.responses[0].partitions[0].last_stable_offset, 2);
    assert_eq!(markers(&f), [(1, ControlRecordType::Abort)]);
    assert!(committed_values(&f).is_empty());
    // The producer was fenced: its EndTxn comes too late.
    assert_eq!(
        end(&mut h, c, "tx", (pid, epoch), true),
        ErrorCode::PRODUCER_FENCED
    );
}

fn txn_commit_offset(h: &mut Harness, c: ConnectionId, p: (i64, i16), offset: i64) -> ErrorCode {
    let r = h.call(
        c,
        &TxnOffsetCommitRequest {
            transactional_id: "tx".into(),
            group_id: "g".into(),
            producer_id: p.0,
            producer_epoch: p.1,
            generation_id: -1,
            member_id: "".into(),
            topics: vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic {
                name: "t".into(),
                partitions: vec![txn_offset_commit_request::TxnOffsetCommitRequestPartition {
                    partition_index: 0,
                    committed_offset: offset,
                    committed_leader_epoch: -1,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
        3,
    );
    r.topics[0].partitions[0].error_code.into()
}

fn committed_offset(h: &mut Harness, c: ConnectionId) -> i64 {
    let r = h.call(
        c,
        &OffsetFetchRequest {
            group_id: "g".into(),
            topics: Some(vec![offset_fetch_request::OffsetFetchRequestTopic {
                name: "t".into(),
                partition_indexes: vec![0].into(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        7,
    );
    r.topics[0].partitions[0].committed_offset
}

#[test]
fn offsets_sent_in_a_transaction_are_committed_with_it_and_dropped_with_an_abort() {
    let (mut h, c) = setup();
    let (_, pid, epoch) = init(&mut h, c, "tx", 60_000);
    let p = (pid, epoch);
    // Before AddOffsetsToTxn the group is not in the transaction.
    assert_eq!(
        txn_commit_offset(&mut h, c, p, 7),
        ErrorCode::INVALID_TXN_STATE
    );
    let add = |h: &mut Harness| {
        let r = h.call(
            c,
            &AddOffsetsToTxnRequest {
                transactional_id: "tx".into(),
                producer_id: pid,
                producer_epoch: epoch,
                group_id: "g".into(),
                ..Default::default()
            },
            3,
        );
        ErrorCode::from(r.error_code)
    };
    assert_eq!(add(&mut h), ErrorCode::NONE);
    assert_eq!(txn_commit_offset(&mut h, c, p, 7), ErrorCode::NONE);
    assert_eq!(committed_offset(&mut h, c), -1, "visible before the commit");
    assert_eq!(end(&mut h, c, "tx", p, true), ErrorCode::NONE);
    assert_eq!(committed_offset(&mut h, c), 7);

    assert_eq!(add(&mut h), ErrorCode::NONE);
    assert_eq!(txn_commit_offset(&mut h, c, p, 9), ErrorCode::NONE);
    assert_eq!(end(&mut h, c, "tx", p, false), ErrorCode::NONE);
    assert_eq!(committed_offset(&mut h, c), 7, "an aborted offset was kept");
}

/// An id whose epochs are used up gets a new producer id, after its open
/// transaction is aborted under the old one (whose partitions would otherwise hold
/// their last stable offset for good).
#[test]
fn a_producer_out_of_epochs_gets_a_new_id_and_its_open_transaction_ends() {
    let (mut h, c) = setup();
    let (_, pid, mut epoch) = init(&mut h, c, "tx", 60_000);
    while epoch < i16::MAX - 1 {
        let (e, same, next) = init(&mut h, c, "tx", 60_000);
        assert_eq!((e, same), (ErrorCode::NONE, pid));
        assert_eq!(next, epoch + 1);
        epoch = next;
    }
    add_partitions(&mut h, c, "tx", (pid, epoch), &[("t", 0)]);
    produce_txn(&mut h, c, 0, &["last"], (pid, epoch), 0);
    assert_eq!(latest(&mut h, c, 1), 0);
    let (e, new_pid, new_epoch) = init(&mut h, c, "tx", 60_000);
    assert_eq!(e, ErrorCode::NONE);
    assert_ne!(new_pid, pid);
    assert_eq!(new_epoch, 0);
    let f = fetch_at(&mut h, c, 0, 1);
    assert_eq!(markers(&f), [(1, ControlRecordType::Abort)]);
    assert_eq!(f.responses[0].partitions[0].last_stable_offset, 2);
}
