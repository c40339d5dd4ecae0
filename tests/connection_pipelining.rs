//! Request tracking: the in-flight limit, FIFO matching, acks=0 produce, framing
//! limits and arbitrary chunking of the byte stream.
#![allow(clippy::unwrap_used)]

#[path = "connection_util.rs"]
mod util;

use kafka_sansio::connection::frame::FrameError;
use kafka_sansio::connection::{Config, ConnectionErrorKind, Event, RequestErrorKind};
use kafka_sansio::messages::{
    ApiKey, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
};
use util::*;

#[test]
fn in_flight_limit_holds_requests_back_in_order() {
    let now = t0();
    let mut config = Config::new("b");
    config.max_in_flight = 2;
    let mut conn = ready(config, now);
    let ids: Vec<_> = (0..5)
        .map(|_| conn.send(now, MetadataRequest::default()).unwrap())
        .collect();
    let first = take_requests(&mut conn);
    assert_eq!(first.iter().map(|r| r.id()).collect::<Vec<_>>(), ids[..2]);
    assert_eq!((conn.in_flight(), conn.queued()), (2, 3));
    conn.handle_input(now, &answer(&first[0], &MetadataResponse::default()));
    let next = take_requests(&mut conn);
    assert_eq!(next.iter().map(|r| r.id()).collect::<Vec<_>>(), ids[2..3]);
    // answer the rest one at a time; every response lands on its own request
    let mut pending = vec![first[1].clone(), next[0].clone()];
    let mut answered = vec![ids[0]];
    while let Some(req) = (!pending.is_empty()).then(|| pending.remove(0)) {
        conn.handle_input(now, &answer(&req, &MetadataResponse::default()));
        answered.push(req.id());
        pending.extend(take_requests(&mut conn));
    }
    let responses: Vec<_> = events(&mut conn)
        .into_iter()
        .filter_map(|e| match e {
            Event::Response(r) => Some(r.context.correlation_id),
            _ => None,
        })
        .collect();
    assert_eq!(answered, ids);
    assert_eq!(responses, ids);
    assert_eq!((conn.in_flight(), conn.queued()), (0, 0));
}

#[test]
fn out_of_order_response_is_fatal_and_ends_everything_once() {
    let now = t0();
    let mut conn = ready(Config::new("b"), now);
    let mut ledger = Ledger::default();
    for _ in 0..7 {
        ledger
            .sent
            .push(conn.send(now, MetadataRequest::default()).unwrap());
    }
    let reqs = take_requests(&mut conn);
    assert_eq!(reqs.len(), 5);
    conn.handle_input(now, &answer(&reqs[1], &MetadataResponse::default()));
    let ev = events(&mut conn);
    ledger.record(&ev);
    ledger.assert_all_ended();
    let Some(Event::Closed(e)) = ev.last() else {
        panic!("{ev:?}")
    };
    assert_eq!(
        e.kind,
        ConnectionErrorKind::CorrelationMismatch {
            expected: Some(reqs[0].id()),
            got: reqs[1].id()
        }
    );
    assert_eq!(&*e.broker, "b");
    // later input is ignored; nothing ends twice
    conn.handle_input(now, &answer(&reqs[0], &MetadataResponse::default()));
    conn.handle_eof(now);
    assert!(events(&mut conn).is_empty());
}

fn produce(acks: i16) -> ProduceRequest {
    ProduceRequest {
        acks,
        timeout_ms: 1000,
        ..Default::default()
    }
}

#[test]
fn acks0_produce_ends_when_written_and_needs_no_response() {
    let now = t0();
    let mut conn = ready(Config::new("b"), now);
    let mut ledger = Ledger::default();
    let fire = conn.send(now, produce(0)).unwrap();
    let md = conn.send(now, MetadataRequest::default()).unwrap();
    ledger.sent.extend([fire, md]);
    assert!(
        events(&mut conn).is_empty(),
        "not ended before it is handed out"
    );
    let reqs = take_requests(&mut conn);
    assert_eq!(reqs[0].api_key, ApiKey::Produce);
    let ev = events(&mut conn);
    assert!(
        matches!(&ev[..], [Event::Sent(c)] if c.correlation_id == fire && c.api_key == ApiKey::Produce)
    );
    ledger.record(&ev);
    // Kafka sends nothing for acks=0: the next response is Metadata's
    conn.handle_input(now, &answer(&reqs[1], &MetadataResponse::default()));
    let ev = events(&mut conn);
    assert!(matches!(&ev[..], [Event::Response(r)] if r.context.correlation_id == md));
    ledger.record(&ev);
    ledger.assert_all_ended();
    assert_eq!(conn.in_flight(), 0);
}

#[test]
fn acks0_produce_answered_anyway_is_tolerated() {
    let now = t0();
    let mut conn = ready(Config::new("b"), now);
    conn.send(now, produce(0)).unwrap();
    let md = conn.send(now, MetadataRequest::default()).unwrap();
    let reqs = take_requests(&mut conn);
    let _ = events(&mut conn);
    // librdkafka's mock answers acks=0 produce
    conn.handle_input(now, &answer(&reqs[0], &ProduceResponse::default()));
    conn.handle_input(now, &answer(&reqs[1], &MetadataResponse::default()));
    let ev = events(&mut conn);
    assert!(
        matches!(&ev[..], [Event::Response(r)] if r.context.correlation_id == md),
        "{ev:?}"
    );
    assert!(conn.is_ready());
}

#[test]
fn acks0_does_not_count_against_the_in_flight_limit() {
    let now = t0();
    let mut config = Config::new("b");
    config.max_in_flight = 1;
    let mut conn = ready(config, now);
    for _ in 0..3 {
        conn.send(now, produce(0)).unwrap();
    }
    conn.send(now, MetadataRequest::default()).unwrap();
    assert_eq!(take_requests(&mut conn).len(), 4);
}

#[test]
fn acks1_produce_waits_for_its_response() {
    let now = t0();
    let mut conn = ready(Config::new("b"), now);
    let id = conn.send(now, produce(1)).unwrap();
    let req = take_one(&mut conn);
    assert!(events(&mut conn).is_empty());
    conn.handle_input(now, &answer(&req, &ProduceResponse::default()));
    let ev = events(&mut conn);
    assert!(matches!(&ev[..], [Event::Response(r)] if r.context.correlation_id == id));
}

#[test]
fn oversized_frame_is_fatal_before_its_body_arrives() {
    let now = t0();
    let mut config = Config::new("b");
    config.max_frame_size = 1024;
    let mut conn = ready(config, now);
    let mut ledger = Ledger::default();
    ledger
        .sent
        .push(conn.send(now, MetadataRequest::default()).unwrap());
    let _ = take_requests(&mut conn);
    conn.handle_input(now, &2048i32.to_be_bytes());
    let ev = events(&mut conn);
    ledger.record(&ev);
    ledger.assert_all_ended();
    let Some(Event::Closed(e)) = ev.last() else {
        panic!("{ev:?}")
    };
    assert_eq!(
        e.kind,
        ConnectionErrorKind::Frame(FrameError::TooLarge {
            size: 2048,
            max: 1024
        })
    );
}

#[test]
fn responses_split_at_every_byte_still_decode() {
    let now = t0();
    let mut conn = ready(Config::new("b"), now);
    let a = conn.send(now, MetadataRequest::default()).unwrap();
    let b = conn.send(now, MetadataRequest::default()).unwrap();
    let reqs = take_requests(&mut conn);
    let mut stream = answer(
        &reqs[0],
        &MetadataResponse {
            cluster_id: Some("c1".into()),
            ..Default::default()
        },
    );
    stream.extend(answer(&reqs[1], &MetadataResponse::default()));
    for byte in &stream {
        conn.handle_input(now, std::slice::from_ref(byte));
    }
    let ev = events(&mut conn);
    let ids: Vec<_> = ev
        .iter()
        .map(|e| match e {
            Event::Response(r) => r.context.correlation_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, [a, b]);
    let Event::Response(r) = &ev[0] else {
        unreachable!()
    };
    assert_eq!(
        r.decode::<MetadataRequest>().unwrap().cluster_id.as_deref(),
        Some("c1")
    );
    // decoding as the wrong type is refused
    assert!(r.decode::<ProduceRequest>().is_err());
}

#[test]
fn eof_mid_frame_fails_all_outstanding_once() {
    let now = t0();
    let mut conn = ready(Config::new("b"), now);
    let mut ledger = Ledger::default();
    for _ in 0..8 {
        ledger
            .sent
            .push(conn.send(now, MetadataRequest::default()).unwrap());
    }
    let reqs = take_requests(&mut conn);
    let frame = answer(&reqs[0], &MetadataResponse::default());
    conn.handle_input(now, &frame[..3]);
    conn.handle_eof(now);
    let ev = events(&mut conn);
    ledger.record(&ev);
    ledger.assert_all_ended();
    let Some(Event::Closed(e)) = ev.last() else {
        panic!("{ev:?}")
    };
    assert_eq!(
        e.kind,
        ConnectionErrorKind::ClosedByPeer { mid_frame: true }
    );
    for e in &ev[..ev.len() - 1] {
        assert!(
            matches!(e, Event::RequestFailed(f) if matches!(f.kind, RequestErrorKind::Connection(_)))
        );
    }
}

#[test]
fn local_close_is_not_remote() {
    let now = t0();
    let mut conn = ready(Config::new("b"), now);
    let id = conn.send(now, MetadataRequest::default()).unwrap();
    conn.close();
    let ev = events(&mut conn);
    assert!(matches!(&ev[0], Event::RequestFailed(f) if f.context.correlation_id == id));
    let Event::Closed(e) = &ev[1] else {
        panic!("{ev:?}")
    };
    assert!(!e.is_remote());
    assert!(
        conn.poll_transmit().is_none(),
        "unwritten bytes are dropped on close"
    );
}

#[test]
fn a_full_queue_refuses_new_requests_until_one_is_written() {
    let now = t0();
    let mut config = Config::new("b");
    config.max_in_flight = 1;
    config.max_queued = 2;
    let mut conn = ready(config, now);
    let first = conn.send(now, MetadataRequest::default()).unwrap(); // written at once
    conn.send(now, MetadataRequest::default()).unwrap();
    conn.send(now, MetadataRequest::default()).unwrap();
    assert_eq!((conn.in_flight(), conn.queued()), (1, 2));
    assert_eq!(
        conn.send(now, MetadataRequest::default()),
        Err(kafka_sansio::connection::UsageError::QueueFull { limit: 2 })
    );
    let written = take_requests(&mut conn);
    assert_eq!(written[0].id(), first);
    conn.handle_input(now, &answer(&written[0], &MetadataResponse::default()));
    assert_eq!(conn.queued(), 1, "one queued request moved onto the wire");
    assert!(conn.send(now, MetadataRequest::default()).is_ok());
}
