//! ApiVersions negotiation: the happy path, every fallback path, refusal to loop, and
//! the per-request version choice that follows.
#![allow(clippy::unwrap_used)]

#[path = "connection_util.rs"]
mod util;

use bytes::{BufMut, BytesMut};
use kafka_sansio::connection::{
    Config, Connection, ConnectionErrorKind, Event, RequestErrorKind, RequestOptions,
};
use kafka_sansio::messages::{
    ApiKey, ApiVersionsRequest, ErrorCode, FetchRequest, MetadataRequest, MetadataResponse,
    SaslHandshakeRequest,
};
use kafka_sansio::wire::{Message, VersionRange};
use util::*;

#[test]
fn first_request_is_api_versions_v4_with_client_software() {
    let mut conn = Connection::new(Config::new("b"), t0());
    let req = take_one(&mut conn);
    assert_eq!(req.api_key, ApiKey::ApiVersions);
    assert_eq!(req.version(), 4);
    let body: ApiVersionsRequest = req.decode();
    assert_eq!(body.client_software_name, "kafka-sansio");
    assert_eq!(body.client_software_version, env!("CARGO_PKG_VERSION"));
    assert!(!conn.is_ready());
}

#[test]
fn ready_picks_highest_common_version_per_api() {
    let now = t0();
    let mut conn = Connection::new(Config::new("b"), now);
    let req = take_one(&mut conn);
    conn.handle_input(
        now,
        &answer(
            &req,
            &versions(&[
                (ApiKey::ApiVersions, 0, 4),
                (ApiKey::Metadata, 1, 9),
                (ApiKey::Fetch, 0, 99),
            ]),
        ),
    );
    assert_eq!(events(&mut conn), vec![Event::Ready]);
    assert_eq!(conn.version_for(ApiKey::Metadata), Some(9));
    // the broker's 99 is capped at the newest Fetch we can encode
    assert_eq!(
        conn.version_for(ApiKey::Fetch),
        Some(FetchRequest::VALID_VERSIONS.max)
    );
    assert_eq!(conn.version_for(ApiKey::Produce), None);
    assert_eq!(
        conn.broker_versions()
            .unwrap()
            .get(&(ApiKey::Metadata as i16)),
        Some(&VersionRange { min: 1, max: 9 })
    );
}

#[test]
fn requests_sent_before_negotiation_wait_then_use_negotiated_version() {
    let now = t0();
    let mut conn = Connection::new(Config::new("b"), now);
    let id = conn.send(now, MetadataRequest::default()).unwrap();
    let hello = take_one(&mut conn);
    assert_eq!(hello.api_key, ApiKey::ApiVersions);
    assert_eq!(conn.queued(), 1);
    conn.handle_input(
        now,
        &answer(
            &hello,
            &versions(&[(ApiKey::Metadata, 0, 7), (ApiKey::ApiVersions, 0, 4)]),
        ),
    );
    let req = take_one(&mut conn);
    assert_eq!(
        (req.api_key, req.version(), req.id()),
        (ApiKey::Metadata, 7, id)
    );
    conn.handle_input(now, &answer(&req, &MetadataResponse::default()));
    let ev = events(&mut conn);
    assert_eq!(ev[0], Event::Ready);
    let Event::Response(resp) = &ev[1] else {
        panic!("{ev:?}")
    };
    assert_eq!(resp.api_version(), 7);
    assert_eq!(
        resp.decode::<MetadataRequest>().unwrap(),
        MetadataResponse::default()
    );
}

/// Error 35 as a real Kafka broker sends it: a v0 body listing its ApiVersions range.
fn rejected_with_ranges(max: i16) -> Vec<u8> {
    let mut b = BytesMut::new();
    let mut resp = versions(&[(ApiKey::ApiVersions, 0, max), (ApiKey::Metadata, 0, 8)]);
    resp.error_code = ErrorCode::UNSUPPORTED_VERSION.0;
    resp.encode(&mut b, 0).unwrap();
    b.to_vec()
}

#[test]
fn rejected_with_ranges_retries_at_broker_max() {
    let now = t0();
    let mut conn = Connection::new(Config::new("b"), now);
    let first = take_one(&mut conn);
    conn.handle_input(now, &raw_frame(first.id(), 0, &rejected_with_ranges(2)));
    let second = take_one(&mut conn);
    assert_eq!((second.api_key, second.version()), (ApiKey::ApiVersions, 2));
    conn.handle_input(now, &answer(&second, &versions(&modern())));
    assert_eq!(events(&mut conn), vec![Event::Ready]);
}

#[test]
fn rejected_without_ranges_retries_at_v0() {
    let now = t0();
    let mut conn = Connection::new(Config::new("b"), now);
    let first = take_one(&mut conn);
    conn.handle_input(now, &raw_frame(first.id(), 0, &35i16.to_be_bytes()));
    let second = take_one(&mut conn);
    assert_eq!(second.version(), 0);
    conn.handle_input(now, &answer(&second, &versions(&modern())));
    assert_eq!(events(&mut conn), vec![Event::Ready]);
}

/// librdkafka's mock cluster answers v3/v4 with error 35 followed by a compact array
/// count and entries without tagged fields: unparseable as v0. Only the error code
/// may be trusted.
#[test]
fn librdkafka_mock_malformed_answer_falls_back_to_v0() {
    let now = t0();
    let mut conn = Connection::new(Config::new("b"), now);
    let first = take_one(&mut conn);
    let mut body = BytesMut::new();
    body.put_i16(35);
    body.put_u8(2); // compact count: 1 entry
    body.put_i16(18);
    body.put_i16(0);
    body.put_i16(2);
    conn.handle_input(now, &raw_frame(first.id(), 0, &body));
    let second = take_one(&mut conn);
    assert_eq!(second.version(), 0);
    conn.handle_input(now, &answer(&second, &versions(&modern())));
    assert_eq!(events(&mut conn), vec![Event::Ready]);
}

#[test]
fn a_broker_claiming_the_rejected_version_still_goes_lower() {
    let now = t0();
    let mut conn = Connection::new(Config::new("b"), now);
    let first = take_one(&mut conn);
    // rejects v4 yet claims to support up to v4: we must not resend v4
    conn.handle_input(now, &raw_frame(first.id(), 0, &rejected_with_ranges(4)));
    let second = take_one(&mut conn);
    assert_eq!(second.version(), 3);
}

#[test]
fn fallback_never_loops() {
    let now = t0();
    let mut conn = Connection::new(Config::new("b"), now);
    let mut seen = Vec::new();
    // a hostile broker rejects every version
    for _ in 0..10 {
        let reqs = take_requests(&mut conn);
        if reqs.is_empty() {
            break;
        }
        seen.push(reqs[0].version());
        conn.handle_input(now, &raw_frame(reqs[0].id(), 0, &rejected_with_ranges(4)));
    }
    assert_eq!(seen, vec![4, 3, 2, 1, 0]);
    let ev = events(&mut conn);
    let Some(Event::Closed(e)) = ev.last() else {
        panic!("{ev:?}")
    };
    assert_eq!(e.kind, ConnectionErrorKind::VersionFallbackLoop { from: 0 });
    assert!(e.is_remote());
}

#[test]
fn other_api_versions_error_is_fatal_and_fails_queued_requests() {
    let now = t0();
    let mut conn = Connection::new(Config::new("b"), now);
    let id = conn.send(now, MetadataRequest::default()).unwrap();
    let first = take_one(&mut conn);
    conn.handle_input(now, &raw_frame(first.id(), 0, &(-1i16).to_be_bytes()));
    let ev = events(&mut conn);
    assert_eq!(ev.len(), 2, "{ev:?}");
    let Event::RequestFailed(f) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(f.context.correlation_id, id);
    assert!(matches!(f.kind, RequestErrorKind::Connection(_)));
    let Event::Closed(e) = &ev[1] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        e.kind,
        ConnectionErrorKind::ApiVersions {
            version: 4,
            error: ErrorCode::UNKNOWN_SERVER_ERROR
        }
    );
    assert!(conn.send(now, MetadataRequest::default()).is_err());
    assert!(conn.poll_transmit().is_none());
}

#[test]
fn undecodable_api_versions_is_fatal() {
    let now = t0();
    let mut conn = Connection::new(Config::new("b"), now);
    let first = take_one(&mut conn);
    conn.handle_input(now, &raw_frame(first.id(), 0, &[0, 0, 0xff]));
    let ev = events(&mut conn);
    assert!(
        matches!(
            &ev[..],
            [Event::Closed(e)] if matches!(e.kind, ConnectionErrorKind::ApiVersionsDecode { version: 4, .. })
        ),
        "{ev:?}"
    );
}

#[test]
fn unsupported_api_and_disjoint_versions_end_the_request_clearly() {
    let now = t0();
    let mut conn = Connection::new(Config::new("b"), now);
    let hello = take_one(&mut conn);
    // Metadata only at versions beyond ours; no SaslHandshake at all
    conn.handle_input(
        now,
        &answer(
            &hello,
            &versions(&[(ApiKey::ApiVersions, 0, 4), (ApiKey::Metadata, 50, 60)]),
        ),
    );
    let _ = events(&mut conn);
    let a = conn.send(now, SaslHandshakeRequest::default()).unwrap();
    let b = conn.send(now, MetadataRequest::default()).unwrap();
    let ev = events(&mut conn);
    let kinds: Vec<_> = ev
        .iter()
        .map(|e| match e {
            Event::RequestFailed(f) => (f.context.correlation_id, f.kind.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds[0], (a, RequestErrorKind::UnsupportedApi));
    assert!(
        matches!(kinds[1], (id, RequestErrorKind::NoCommonVersion { theirs: VersionRange { min: 50, max: 60 }, .. }) if id == b)
    );
    assert!(conn.poll_transmit().is_none());
    assert!(conn.is_ready(), "a request error is not a connection error");
}

#[test]
fn caller_can_cap_the_version() {
    let now = t0();
    let mut conn = ready(Config::new("b"), now);
    conn.send_with(
        now,
        MetadataRequest::default(),
        RequestOptions::max_version(4),
    )
    .unwrap();
    assert_eq!(take_one(&mut conn).version(), 4);
}
