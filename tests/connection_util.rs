//! A scripted broker for driving `kafka_sansio::connection::Connection` by hand: it
//! reads the requests the connection wrote and builds response frames. Shared by the
//! `connection_*` tests through `#[path]`; on its own it holds no tests.
#![allow(dead_code, clippy::disallowed_methods, clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_sansio::connection::frame::FrameDecoder;
use kafka_sansio::connection::{Config, Connection, CorrelationId, Event};
use kafka_sansio::messages::api_versions_response::ApiVersion;
use kafka_sansio::messages::{ApiKey, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_sansio::wire::Message;

/// A request as the broker sees it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub body: Bytes,
}

impl Seen {
    pub fn decode<M: Message>(&self) -> M {
        let mut b = self.body.clone();
        let m = M::decode(&mut b, self.header.request_api_version).unwrap();
        assert!(b.is_empty(), "trailing bytes after {}", M::NAME);
        m
    }
    pub fn id(&self) -> CorrelationId {
        self.header.correlation_id
    }
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
}

/// A point in virtual time.
pub fn t0() -> Instant {
    Instant::now()
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Everything the connection wants written, split into requests.
pub fn take_requests(conn: &mut Connection) -> Vec<Seen> {
    let mut d = FrameDecoder::new(usize::MAX);
    while let Some(t) = conn.poll_transmit() {
        d.extend(&t);
    }
    let mut out = Vec::new();
    while let Some(mut frame) = d.next_frame().unwrap() {
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let api_key = ApiKey::try_from(key).unwrap();
        let header =
            RequestHeader::decode(&mut frame, api_key.request_header_version(version)).unwrap();
        out.push(Seen {
            header,
            api_key,
            body: frame,
        });
    }
    assert!(!d.is_mid_frame(), "a transmit ended inside a frame");
    out
}

/// Exactly one request.
pub fn take_one(conn: &mut Connection) -> Seen {
    let mut r = take_requests(conn);
    assert_eq!(r.len(), 1, "expected one request, got {r:?}");
    r.pop().unwrap()
}

/// A response frame with a raw body.
pub fn raw_frame(correlation_id: i32, header_version: i16, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    ResponseHeader {
        correlation_id,
        ..Default::default()
    }
    .encode(&mut b, header_version)
    .unwrap();
    b.extend_from_slice(body);
    let mut out = (b.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&b);
    out
}

/// The response frame answering `req` with `msg`, at the request's version and the
/// right header version.
pub fn answer<M: Message>(req: &Seen, msg: &M) -> Vec<u8> {
    let mut body = BytesMut::new();
    msg.encode(&mut body, req.version()).unwrap();
    raw_frame(
        req.id(),
        req.api_key.response_header_version(req.version()),
        &body,
    )
}

/// An ApiVersions response offering `ranges` (api key, min, max).
pub fn versions(ranges: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
    ApiVersionsResponse {
        api_keys: ranges
            .iter()
            .map(|&(k, min, max)| ApiVersion {
                api_key: k as i16,
                min_version: min,
                max_version: max,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Ranges like a modern broker's, for the APIs the tests use.
pub fn modern() -> Vec<(ApiKey, i16, i16)> {
    vec![
        (ApiKey::Produce, 0, 11),
        (ApiKey::Fetch, 0, 17),
        (ApiKey::ListOffsets, 0, 10),
        (ApiKey::Metadata, 0, 12),
        (ApiKey::ApiVersions, 0, 4),
        (ApiKey::SaslHandshake, 0, 1),
        (ApiKey::SaslAuthenticate, 0, 2),
        (ApiKey::FindCoordinator, 0, 6),
    ]
}

/// A connection made ready by answering ApiVersions with `modern()` ranges.
pub fn ready(config: Config, now: Instant) -> Connection {
    let mut conn = Connection::new(config, now);
    let req = take_one(&mut conn);
    assert_eq!(req.api_key, ApiKey::ApiVersions);
    conn.handle_input(now, &answer(&req, &versions(&modern())));
    assert_eq!(conn.poll_event(), Some(Event::Ready));
    conn
}

/// Pulls every event.
pub fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// Checks the exactly-once promise: every id in `sent` ended exactly once across
/// `events`, and nothing else ended.
#[derive(Default)]
pub struct Ledger {
    pub sent: Vec<CorrelationId>,
    pub ended: HashMap<CorrelationId, usize>,
    pub closed: usize,
}

impl Ledger {
    pub fn record(&mut self, events: &[Event]) {
        for e in events {
            let id = match e {
                Event::Response(r) => r.context.correlation_id,
                Event::Sent(c) => c.correlation_id,
                Event::RequestFailed(f) => f.context.correlation_id,
                Event::Closed(_) => {
                    self.closed += 1;
                    continue;
                }
                _ => continue,
            };
            assert!(self.sent.contains(&id), "ended an unknown request {id}");
            assert_eq!(self.closed, 0, "request {id} ended after Closed");
            *self.ended.entry(id).or_default() += 1;
            assert_eq!(self.ended[&id], 1, "request {id} ended twice");
        }
        assert!(self.closed <= 1, "Closed reported twice");
    }

    pub fn assert_all_ended(&self) {
        for id in &self.sent {
            assert_eq!(self.ended.get(id), Some(&1), "request {id} never ended");
        }
    }
}
