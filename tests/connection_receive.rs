//! Reading in place: bytes read into the room the connection lends
//! (`read_buffer` / `handle_read`) decode exactly as bytes handed to `handle_input`;
//! a response the request expects gets all of its room at once, and one it does not
//! expect gets room that grows with the bytes received.
#![allow(clippy::unwrap_used)]

#[path = "connection_util.rs"]
mod util;

use kafka_sansio::connection::{Config, Connection, Event, RequestOptions};
use kafka_sansio::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_sansio::messages::{FetchRequest, FetchResponse};
use util::*;

fn fetch_response(records: usize) -> FetchResponse {
    FetchResponse {
        responses: vec![FetchableTopicResponse {
            partitions: vec![PartitionData {
                partition_index: 0,
                high_watermark: 9,
                records: Some((0..records).map(|i| i as u8).collect::<Vec<u8>>().into()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Feeds `bytes` through the lent room, in reads of at most `step` bytes; returns
/// the size of each room lent.
fn read_in_place(conn: &mut Connection, bytes: &[u8], step: usize) -> Vec<usize> {
    let mut rooms = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let room = conn.read_buffer();
        rooms.push(room.len());
        let n = room.len().min(step).min(bytes.len() - at);
        room[..n].copy_from_slice(&bytes[at..at + n]);
        conn.handle_read(t0(), n);
        at += n;
    }
    rooms
}

fn send_fetch(conn: &mut Connection, expected: Option<usize>) -> Seen {
    let mut options = RequestOptions::default();
    options.expected_response_bytes = expected;
    conn.send_with(t0(), FetchRequest::default(), options)
        .unwrap();
    take_one(conn)
}

/// What a test compares: the partition's records and high watermark (a mismatch
/// prints their lengths and a hash, not megabytes).
fn summary(r: &FetchResponse) -> (usize, u64, i64) {
    use std::hash::{Hash, Hasher};
    let p = &r.responses[0].partitions[0];
    let records = p.records.clone().unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    records.hash(&mut h);
    (records.len(), h.finish(), p.high_watermark)
}

fn response_of(conn: &mut Connection) -> FetchResponse {
    let ev = events(conn);
    let [Event::Response(r)] = &ev[..] else {
        panic!("expected one response, got {ev:?}")
    };
    r.decode::<FetchRequest>().unwrap()
}

#[test]
fn an_expected_response_is_read_into_one_buffer_of_its_size() {
    let now = t0();
    let mut conn = ready(Config::new("b"), now);
    let req = send_fetch(&mut conn, Some(1 << 20));
    let sent = fetch_response(500_000);
    let frame = answer(&req, &sent);
    let rooms = read_in_place(&mut conn, &frame, usize::MAX);
    // The first read finds the size; the second has room for all the rest.
    assert_eq!(rooms.len(), 2, "{rooms:?}");
    assert_eq!(rooms[0] + rooms[1], frame.len().max(rooms[0]), "{rooms:?}");
    assert_eq!(summary(&response_of(&mut conn)), summary(&sent));
}

#[test]
fn an_unexpected_large_response_gets_room_as_its_bytes_arrive() {
    let now = t0();
    let mut conn = ready(Config::new("b"), now);
    let req = send_fetch(&mut conn, None);
    let sent = fetch_response(500_000);
    let frame = answer(&req, &sent);
    let rooms = read_in_place(&mut conn, &frame, usize::MAX);
    assert!(rooms.len() > 3, "{rooms:?}");
    let mut received = 0;
    for room in &rooms {
        assert!(*room <= received.max(64 * 1024) + 64 * 1024, "{rooms:?}");
        received += room;
    }
    assert_eq!(summary(&response_of(&mut conn)), summary(&sent));
}

#[test]
fn small_reads_in_place_decode_like_handle_input() {
    let now = t0();
    let mut conn = ready(Config::new("b"), now);
    let mut expected = Vec::new();
    let mut stream = Vec::new();
    for i in 0..5 {
        let req = send_fetch(&mut conn, Some(4096 * (i % 2)));
        let sent = fetch_response(1000 * i);
        stream.extend(answer(&req, &sent));
        expected.push(sent);
    }
    read_in_place(&mut conn, &stream, 333);
    let got: Vec<_> = events(&mut conn)
        .into_iter()
        .map(|e| match e {
            Event::Response(r) => summary(&r.decode::<FetchRequest>().unwrap()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, expected.iter().map(summary).collect::<Vec<_>>());
}
