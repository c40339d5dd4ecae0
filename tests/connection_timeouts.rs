//! Time: per-request timeouts from the caller's clock, setup timeouts, and broker
//! throttling, all on a virtual clock.
#![allow(clippy::unwrap_used)]

#[path = "connection_util.rs"]
mod util;

use std::time::Duration;

use kafka_sansio::connection::{
    Config, Connection, ConnectionErrorKind, Event, RequestErrorKind, RequestOptions,
};
use kafka_sansio::messages::{
    ApiKey, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse,
};
use util::*;

#[test]
fn request_times_out_at_its_deadline_and_its_late_response_is_dropped() {
    let t = t0();
    let mut config = Config::new("b");
    config.request_timeout = ms(1000);
    let mut conn = ready(config, t);
    let slow = conn.send(t, MetadataRequest::default()).unwrap();
    let fast = conn
        .send_with(
            t + ms(10),
            MetadataRequest::default(),
            RequestOptions::timeout(ms(5000)),
        )
        .unwrap();
    let reqs = take_requests(&mut conn);
    assert_eq!(conn.poll_timeout(), Some(t + ms(1000)));
    conn.handle_timeout(t + ms(999));
    assert!(
        events(&mut conn).is_empty(),
        "no timeout before the deadline"
    );
    conn.handle_timeout(t + ms(1000));
    let ev = events(&mut conn);
    let [Event::RequestFailed(f)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(f.context.correlation_id, slow);
    assert_eq!(f.context.api_version, Some(12));
    assert_eq!(f.kind, RequestErrorKind::Timeout(ms(1000)));
    assert!(f.to_string().contains("Metadata v12"), "{f}");
    assert_eq!(conn.poll_timeout(), Some(t + ms(5010)));
    // the broker answers both after all: the late one is dropped, the next matched
    conn.handle_input(
        t + ms(1500),
        &answer(&reqs[0], &MetadataResponse::default()),
    );
    conn.handle_input(
        t + ms(1500),
        &answer(&reqs[1], &MetadataResponse::default()),
    );
    let ev = events(&mut conn);
    assert!(
        matches!(&ev[..], [Event::Response(r)] if r.context.correlation_id == fast),
        "{ev:?}"
    );
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn timed_out_requests_keep_their_in_flight_slot_until_answered() {
    let t = t0();
    let mut config = Config::new("b");
    config.max_in_flight = 1;
    config.request_timeout = ms(100);
    let mut conn = ready(config, t);
    conn.send(t, MetadataRequest::default()).unwrap();
    let first = take_one(&mut conn);
    conn.handle_timeout(t + ms(100));
    let _ = events(&mut conn);
    let second = conn
        .send_with(
            t + ms(100),
            MetadataRequest::default(),
            RequestOptions::timeout(ms(1000)),
        )
        .unwrap();
    assert!(
        take_requests(&mut conn).is_empty(),
        "the broker still owes an answer"
    );
    conn.handle_input(t + ms(200), &answer(&first, &MetadataResponse::default()));
    assert_eq!(take_one(&mut conn).id(), second);
}

#[test]
fn queued_request_times_out_while_negotiation_stalls() {
    let t = t0();
    let mut config = Config::new("b");
    config.request_timeout = ms(10_000);
    let mut conn = Connection::new(config, t);
    let _hello = take_one(&mut conn);
    let id = conn
        .send_with(
            t,
            MetadataRequest::default(),
            RequestOptions::timeout(ms(50)),
        )
        .unwrap();
    assert_eq!(conn.poll_timeout(), Some(t + ms(50)));
    conn.handle_timeout(t + ms(50));
    let ev = events(&mut conn);
    let [Event::RequestFailed(f)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (f.context.correlation_id, f.context.api_version),
        (id, None)
    );
    assert_eq!(f.kind, RequestErrorKind::Timeout(ms(50)));
}

#[test]
fn unanswered_setup_is_fatal() {
    let t = t0();
    let mut config = Config::new("b");
    config.request_timeout = ms(300);
    let mut conn = Connection::new(config, t);
    let mut ledger = Ledger::default();
    ledger.sent.push(
        conn.send_with(
            t,
            MetadataRequest::default(),
            RequestOptions::timeout(ms(900)),
        )
        .unwrap(),
    );
    let _ = take_one(&mut conn);
    assert_eq!(conn.poll_timeout(), Some(t + ms(300)));
    conn.handle_timeout(t + ms(300));
    let ev = events(&mut conn);
    ledger.record(&ev);
    ledger.assert_all_ended();
    let Some(Event::Closed(e)) = ev.last() else {
        panic!("{ev:?}")
    };
    assert!(
        matches!(
            e.kind,
            ConnectionErrorKind::Handshake {
                api: ApiKey::ApiVersions,
                version: 4,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn throttle_time_holds_the_next_request() {
    let t = t0();
    let mut conn = ready(Config::new("b"), t);
    conn.send(t, FetchRequest::default()).unwrap();
    let fetch = take_one(&mut conn);
    assert_eq!(fetch.version(), 17);
    let resp = FetchResponse {
        throttle_time_ms: 250,
        ..Default::default()
    };
    conn.handle_input(t + ms(10), &answer(&fetch, &resp));
    let ev = events(&mut conn);
    assert!(
        matches!(&ev[0], Event::Throttled { duration, until, .. } if *duration == ms(250) && *until == t + ms(260)),
        "{ev:?}"
    );
    assert!(
        matches!(&ev[1], Event::Response(r) if r.decode::<FetchRequest>().unwrap().throttle_time_ms == 250)
    );
    let id = conn.send(t + ms(20), MetadataRequest::default()).unwrap();
    assert!(take_requests(&mut conn).is_empty(), "throttled");
    assert_eq!(conn.poll_timeout(), Some(t + ms(260)));
    conn.handle_timeout(t + ms(259));
    assert!(take_requests(&mut conn).is_empty(), "still throttled");
    conn.handle_timeout(t + ms(260));
    assert_eq!(take_one(&mut conn).id(), id);
    assert_eq!(conn.throttled_until(), None);
}

#[test]
fn zero_throttle_changes_nothing() {
    let t = t0();
    let mut conn = ready(Config::new("b"), t);
    conn.send(t, MetadataRequest::default()).unwrap();
    let md = take_one(&mut conn);
    conn.handle_input(t, &answer(&md, &MetadataResponse::default()));
    assert!(matches!(&events(&mut conn)[..], [Event::Response(_)]));
    conn.send(t, MetadataRequest::default()).unwrap();
    assert_eq!(take_requests(&mut conn).len(), 1);
    assert_eq!(conn.throttled_until(), None);
    let _ = Duration::ZERO;
}
