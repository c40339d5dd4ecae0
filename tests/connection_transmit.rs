//! What the connection hands out to write: a produced record batch goes out by
//! reference, as a chunk of its own for a vectored write, not copied into the
//! transmit buffer; the chunks in order are exactly the frames.
#![allow(clippy::unwrap_used)]

#[path = "connection_util.rs"]
mod util;

use bytes::{Bytes, BytesMut};
use kafka_sansio::connection::{Config, Event};
use kafka_sansio::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_sansio::messages::{ApiKey, MetadataRequest, ProduceRequest};
use kafka_sansio::records::{BatchBuilder, BatchConfig, NewRecord};
use util::*;

fn batch(records: usize) -> Bytes {
    let mut buf = BytesMut::new();
    let mut b = BatchBuilder::new(&mut buf, &BatchConfig::default());
    for i in 0..records {
        b.append(&NewRecord {
            timestamp: 1_700_000_000_000,
            key: Some(format!("key-{i}").as_bytes()),
            value: Some(&[i as u8; 100]),
            headers: &[],
        })
        .unwrap();
    }
    b.finish().unwrap();
    buf.freeze()
}

fn produce(acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest {
        acks,
        timeout_ms: 1000,
        topic_data: vec![TopicProduceData {
            name: "t".into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(records),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Everything handed out, chunk by chunk.
fn chunks(conn: &mut kafka_sansio::connection::Connection) -> Vec<Bytes> {
    std::iter::from_fn(|| conn.poll_transmit()).collect()
}

#[test]
fn a_produced_batch_is_handed_out_by_reference() {
    let now = t0();
    let mut conn = ready(Config::new("b"), now);
    let records = batch(50);
    assert!(records.len() > 4096);
    conn.send(now, MetadataRequest::default()).unwrap();
    conn.send(now, produce(-1, records.clone())).unwrap();
    conn.send(now, MetadataRequest::default()).unwrap();
    let out = chunks(&mut conn);
    // What comes before the batch, the batch itself, what comes after it.
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(out[1].as_ptr(), records.as_ptr(), "the batch was copied");
    assert_eq!(out[1].len(), records.len());
    // Reassembled, they are the three requests, the batch intact.
    let mut d = kafka_sansio::connection::frame::FrameDecoder::new(usize::MAX);
    for c in &out {
        d.extend(c);
    }
    let mut keys = Vec::new();
    while let Some(frame) = d.next_frame().unwrap() {
        keys.push(i16::from_be_bytes([frame[0], frame[1]]));
    }
    assert_eq!(
        keys,
        [
            ApiKey::Metadata as i16,
            ApiKey::Produce as i16,
            ApiKey::Metadata as i16
        ]
    );
}

#[test]
fn the_frames_decode_to_the_requests_sent() {
    let now = t0();
    let mut conn = ready(Config::new("b"), now);
    let (a, b) = (batch(40), batch(3));
    conn.send(now, produce(-1, a.clone())).unwrap();
    conn.send(now, produce(1, b.clone())).unwrap();
    let reqs = take_requests(&mut conn);
    assert_eq!(reqs.len(), 2);
    let first: ProduceRequest = reqs[0].decode();
    let second: ProduceRequest = reqs[1].decode();
    assert_eq!(first, produce(-1, a));
    assert_eq!(second, produce(1, b));
}

#[test]
fn acks0_produce_ends_once_its_last_chunk_is_handed_out() {
    let now = t0();
    let mut conn = ready(Config::new("b"), now);
    let fire = conn.send(now, produce(0, batch(50))).unwrap();
    let first = conn.poll_transmit().unwrap();
    assert!(!first.is_empty());
    assert!(
        events(&mut conn).is_empty(),
        "ended before all of its bytes were handed out"
    );
    let rest = chunks(&mut conn);
    assert!(!rest.is_empty());
    let ev = events(&mut conn);
    assert!(
        matches!(&ev[..], [Event::Sent(c)] if c.correlation_id == fire),
        "{ev:?}"
    );
}
