//! Fuzz target bodies for the state machines: one broker [`Connection`] driven by a
//! scripted, hostile broker; the SCRAM client fed arbitrary server messages; and the
//! simulated cluster (feature `sim`) fed arbitrary client bytes.
//!
//! Each input is a script read with `arbitrary`: a few configuration choices, then
//! up to [`MAX_STEPS`] operations (send a request, answer the oldest request well or
//! badly, inject raw bytes, deliver some of the bytes in flight, let time pass, close,
//! ...). After every operation every output is drained and checked.
//!
//! No clock is read here: the caller passes the origin of the script's virtual time,
//! and every later instant is that origin plus durations from the input, so a run
//! replays exactly.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use arbitrary::{Result as ArbResult, Unstructured};

use super::{ALL_MESSAGES, CheckFailure};
use crate::connection::frame::FrameDecoder;
use crate::connection::sasl::{SaslConfig, SaslMechanism, ScramClient, ScramHash};
use crate::connection::{Config, Connection, Event, RequestOptions};
use crate::messages::api_versions_response::ApiVersion;
use crate::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FindCoordinatorRequest,
    MetadataRequest, ProduceRequest, RequestBody, RequestHeader, ResponseHeader,
    SaslAuthenticateResponse, SaslHandshakeResponse,
};
use crate::wire::{Bytes, BytesMut, Message};

/// Most operations one input may script.
pub const MAX_STEPS: usize = 96;

const NONCE: &str = "fuzzclientnonce";

fn fail(msg: String) -> CheckFailure {
    CheckFailure(msg)
}

/// Up to `max` bytes of the input, as many as it says.
pub(crate) fn take<'a>(u: &mut Unstructured<'a>, max: usize) -> ArbResult<&'a [u8]> {
    let n = u.int_in_range(0..=max)?;
    u.bytes(n)
}

/// A size-prefixed frame around `body`.
pub(crate) fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The broker side of the script: what the client wrote, decoded, and the bytes the
/// broker has queued for the client.
struct Broker {
    from_client: FrameDecoder,
    /// Requests awaiting an answer, oldest first: correlation id, API key, version.
    unanswered: VecDeque<(i32, ApiKey, i16)>,
    to_client: Vec<u8>,
}

/// What the client side has promised: user requests not yet ended.
struct Ledger {
    outstanding: BTreeSet<i32>,
    closed: bool,
    accepted: bool,
}

impl Ledger {
    fn end(&mut self, id: i32, how: &str) -> Result<(), CheckFailure> {
        if !self.outstanding.remove(&id) {
            return Err(fail(format!(
                "connection: {how} for correlation id {id}, which is not outstanding (ended twice, or never sent)"
            )));
        }
        Ok(())
    }
}

/// Carries the connection's output to the broker and checks every event.
fn drain(
    conn: &mut Connection,
    broker: &mut Broker,
    ledger: &mut Ledger,
) -> Result<(), CheckFailure> {
    while let Some(bytes) = conn.poll_transmit() {
        broker.from_client.extend(&bytes);
        loop {
            let frame = match broker.from_client.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(fail(format!("connection: wrote a bad frame: {e}"))),
            };
            let mut body = frame.clone();
            let (Some(k), Some(v)) = (frame.get(0..2), frame.get(2..4)) else {
                return Err(fail(
                    "connection: wrote a frame shorter than a header".into(),
                ));
            };
            let key = i16::from_be_bytes([k[0], k[1]]);
            let version = i16::from_be_bytes([v[0], v[1]]);
            let api = ApiKey::try_from(key)
                .map_err(|_| fail(format!("connection: wrote unknown API key {key}")))?;
            let header = RequestHeader::decode(&mut body, api.request_header_version(version))
                .map_err(|e| fail(format!("connection: wrote a bad header: {e}")))?;
            RequestBody::decode(api, &mut body, version).map_err(|e| {
                fail(format!(
                    "connection: wrote a {api:?} v{version} body that does not decode: {e}"
                ))
            })?;
            if !body.is_empty() {
                return Err(fail(format!(
                    "connection: {} bytes after a {api:?} v{version} body",
                    body.len()
                )));
            }
            broker
                .unanswered
                .push_back((header.correlation_id, api, version));
        }
    }
    while let Some(event) = conn.poll_event() {
        if ledger.closed {
            return Err(fail(format!("connection: event after Closed: {event:?}")));
        }
        match event {
            Event::Response(r) => ledger.end(r.context.correlation_id, "a response")?,
            Event::Sent(c) => ledger.end(c.correlation_id, "Sent")?,
            Event::RequestFailed(e) => ledger.end(e.context.correlation_id, "a failure")?,
            Event::Closed(_) => {
                ledger.closed = true;
                if !ledger.outstanding.is_empty() {
                    return Err(fail(format!(
                        "connection: Closed with requests never ended: {:?}",
                        ledger.outstanding
                    )));
                }
            }
            Event::Ready => ledger.accepted = true,
            _ => {}
        }
    }
    Ok(())
}

/// A response to `(id, api, version)`, well formed or not as the input says.
pub(crate) fn answer(
    u: &mut Unstructured<'_>,
    id: i32,
    api: ApiKey,
    version: i16,
) -> ArbResult<Vec<u8>> {
    let mut out = BytesMut::new();
    let mut header_version = api.response_header_version(version);
    let mut id = id;
    if u.ratio(1, 16)? {
        id = u.arbitrary()?;
    }
    if u.ratio(1, 16)? {
        header_version = 1 - header_version;
    }
    let _ = ResponseHeader {
        correlation_id: id,
        ..Default::default()
    }
    .encode(&mut out, header_version);
    let choice: u8 = u.int_in_range(0..=7)?;
    match api {
        ApiKey::ApiVersions if choice < 5 => {
            let mut body = ApiVersionsResponse::default();
            let mut at = version;
            if choice == 0 {
                // Too new for the broker: it answers in v0 with its own range.
                body.error_code = 35;
                at = 0;
                body.api_keys.push(ApiVersion {
                    api_key: ApiKey::ApiVersions as i16,
                    min_version: 0,
                    max_version: u.int_in_range(-1..=5)?,
                    ..Default::default()
                });
            } else {
                for key in (0..=100).filter_map(|k| ApiKey::try_from(k).ok()) {
                    if u.ratio(1, 32)? {
                        continue;
                    }
                    let ours = key.valid_versions();
                    let max = if u.ratio(1, 8)? {
                        u.int_in_range(-1..=ours.max.saturating_add(2))?
                    } else {
                        ours.max
                    };
                    body.api_keys.push(ApiVersion {
                        api_key: key as i16,
                        min_version: ours.min,
                        max_version: max,
                        ..Default::default()
                    });
                }
                body.throttle_time_ms = if u.ratio(1, 8)? { u.arbitrary()? } else { 0 };
            }
            let _ = body.encode(&mut out, at);
        }
        ApiKey::SaslHandshake if choice < 5 => {
            let body = SaslHandshakeResponse {
                error_code: if choice == 0 { 33 } else { 0 },
                mechanisms: ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
                    .into_iter()
                    .filter(|_| choice != 1)
                    .map(Into::into)
                    .collect(),
            };
            let _ = body.encode(&mut out, version);
        }
        ApiKey::SaslAuthenticate if choice < 6 => {
            let auth_bytes = match choice {
                0 => Bytes::new(),
                // A server-first message that carries our nonce, with the minimum
                // iteration count (anything more only slows the fuzzer).
                1 | 2 => {
                    let ext: String = (0..u.int_in_range(0..=8)?)
                        .map(|_| u.int_in_range(b'a'..=b'z').map(char::from))
                        .collect::<ArbResult<_>>()?;
                    Bytes::from(format!("r={NONCE}{ext},s=c2FsdA==,i=4096"))
                }
                _ => Bytes::copy_from_slice(take(u, 48)?),
            };
            let body = SaslAuthenticateResponse {
                error_code: if choice == 3 { 58 } else { 0 },
                auth_bytes,
                session_lifetime_ms: u.arbitrary()?,
                ..Default::default()
            };
            let _ = body.encode(&mut out, version);
        }
        _ if choice < 6 => {
            let name = format!("{}Response", api.name());
            if let Some(entry) = ALL_MESSAGES.iter().find(|e| e.name == name)
                && let Some(body) = (entry.arbitrary_encoding)(u, version)
            {
                out.extend_from_slice(&body);
            }
        }
        _ => out.extend_from_slice(take(u, 32)?),
    }
    Ok(framed(&out))
}

/// One broker [`Connection`] against a scripted broker: requests, well-formed and
/// hostile answers, raw bytes, fragmentation, timeouts, end of stream, close.
///
/// Checks: no panic; every request written decodes (header and body, nothing left
/// over); every request ends exactly once (response, `Sent` or failure), and all have
/// ended when `Closed` arrives; nothing follows `Closed`; after `handle_timeout(now)`
/// no deadline at or before `now` remains.
pub fn connection(data: &[u8], origin: Instant) -> Result<bool, CheckFailure> {
    let mut u = Unstructured::new(data);
    match run_connection(&mut u, origin) {
        Ok(Ok(accepted)) => Ok(accepted),
        Ok(Err(e)) => Err(e),
        // The script ran out of bytes.
        Err(_) => Ok(false),
    }
}

fn run_connection(
    u: &mut Unstructured<'_>,
    origin: Instant,
) -> ArbResult<Result<bool, CheckFailure>> {
    let mut now = origin;
    let mut config = Config::new("fuzz");
    config.client_id = Some("fuzz".into());
    config.max_in_flight = u.int_in_range(1..=6)?;
    config.max_frame_size = u.int_in_range(4..=1 << 16)?;
    config.request_timeout = Duration::from_millis(u.int_in_range(1..=60_000)?);
    config.api_versions_version = u.int_in_range(-1..=5)?;
    let mechanism = match u.int_in_range(0..=5)? {
        0 => Some(SaslMechanism::Plain),
        1 => Some(SaslMechanism::ScramSha256),
        2 => Some(SaslMechanism::ScramSha512),
        3 => Some(SaslMechanism::OAuthBearer),
        _ => None,
    };
    config.sasl = mechanism.map(|mechanism| SaslConfig {
        nonce: NONCE.into(),
        oauth: Some(crate::connection::sasl::OAuthTokenProvider::new(|| {
            Ok(crate::connection::sasl::OAuthToken::new(
                "token",
                Duration::from_secs(60),
            ))
        })),
        ..SaslConfig::new(mechanism, "user", "secret")
    });
    let mut conn = Connection::new(config, now);
    let mut broker = Broker {
        from_client: FrameDecoder::new(usize::MAX),
        unanswered: VecDeque::new(),
        to_client: Vec::new(),
    };
    let mut ledger = Ledger {
        outstanding: BTreeSet::new(),
        closed: false,
        accepted: false,
    };
    macro_rules! check {
        ($e:expr) => {
            if let Err(e) = $e {
                return Ok(Err(e));
            }
        };
    }
    check!(drain(&mut conn, &mut broker, &mut ledger));
    for _ in 0..MAX_STEPS {
        if u.is_empty() {
            break;
        }
        match u.int_in_range(0..=11u8)? {
            0 | 1 => {
                let mut options = RequestOptions::default();
                if u.ratio(1, 4)? {
                    options.max_version = Some(u.int_in_range(-1..=20)?);
                }
                if u.ratio(1, 4)? {
                    options.timeout = Some(Duration::from_millis(u.int_in_range(1..=5_000)?));
                }
                let sent = match u.int_in_range(0..=4u8)? {
                    0 => conn.send_with(now, MetadataRequest::default(), options),
                    1 => {
                        let acks = *u.choose(&[0i16, 1, -1])?;
                        let request = ProduceRequest {
                            acks,
                            timeout_ms: 1000,
                            ..Default::default()
                        };
                        conn.send_with(now, request, options)
                    }
                    2 => conn.send_with(now, FetchRequest::default(), options),
                    3 => conn.send_with(now, FindCoordinatorRequest::default(), options),
                    _ => conn.send_with(now, ApiVersionsRequest::default(), options),
                };
                match sent {
                    Ok(id) => {
                        if !ledger.outstanding.insert(id) {
                            return Ok(Err(fail(format!(
                                "connection: correlation id {id} handed out twice"
                            ))));
                        }
                    }
                    Err(e) if !ledger.closed => {
                        return Ok(Err(fail(format!(
                            "connection: send refused before Closed: {e}"
                        ))));
                    }
                    Err(_) => {}
                }
            }
            2..=4 => {
                if let Some((id, api, version)) = broker.unanswered.pop_front() {
                    let bytes = answer(u, id, api, version)?;
                    broker.to_client.extend_from_slice(&bytes);
                }
            }
            5 => {
                let n = u.int_in_range(0..=24)?;
                broker.to_client.extend_from_slice(u.bytes(n)?);
            }
            6 | 7 => {
                // Deliver part of what the broker wrote: fragmentation.
                if !broker.to_client.is_empty() {
                    let n = u.int_in_range(1..=broker.to_client.len())?;
                    let chunk: Vec<u8> = broker.to_client.drain(..n).collect();
                    conn.handle_input(now, &chunk);
                }
            }
            8 => {
                let chunk = std::mem::take(&mut broker.to_client);
                conn.handle_input(now, &chunk);
            }
            9 => {
                let step = if u.ratio(1, 2)? {
                    // Straight to the next deadline, as a runtime would.
                    conn.poll_timeout()
                        .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
                } else {
                    Duration::from_millis(u.int_in_range(0..=70_000)?)
                };
                now += step;
                conn.handle_timeout(now);
                check!(drain(&mut conn, &mut broker, &mut ledger));
                if let Some(next) = conn.poll_timeout()
                    && next <= now
                {
                    return Ok(Err(fail(format!(
                        "connection: after handle_timeout the next deadline is {:?} before now",
                        now - next
                    ))));
                }
            }
            10 => match u.int_in_range(0..=2u8)? {
                0 => conn.handle_eof(now),
                1 => conn.handle_transport_error(now, "reset"),
                _ => conn.close(),
            },
            _ => {
                // The broker drops a request on the floor (never answers it).
                broker.unanswered.pop_front();
            }
        }
        check!(drain(&mut conn, &mut broker, &mut ledger));
    }
    // End of the script: the transport goes away, and every request must end.
    conn.handle_eof(now);
    check!(drain(&mut conn, &mut broker, &mut ledger));
    if !ledger.closed {
        return Ok(Err(fail(
            "connection: no Closed after end of stream".into(),
        )));
    }
    Ok(Ok(ledger.accepted))
}

/// The SCRAM client (SHA-256 or SHA-512) against arbitrary server messages: the
/// server-first message, then the server-final one. Server-first messages asking
/// for more than 4096 iterations are skipped (they are valid but only slow).
///
/// Checks: no panic; the client-final message carries the client's nonce prefix and
/// the server's full nonce; the exchange is done only after a server-final that
/// verified.
pub fn sasl_scram(data: &[u8], _origin: Instant) -> Result<bool, CheckFailure> {
    let Some((&selector, rest)) = data.split_first() else {
        return Ok(false);
    };
    let hash = if selector & 1 == 0 {
        ScramHash::Sha256
    } else {
        ScramHash::Sha512
    };
    let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let server_first = &rest[..split];
    let server_final = rest.get(split + 1..).unwrap_or_default();
    if too_many_iterations(server_first) {
        return Ok(false);
    }
    let mut client = ScramClient::new(hash, "user", "pencil", NONCE);
    let first = client.client_first();
    if !first.ends_with(format!("r={NONCE}").as_bytes()) {
        return Err(fail(format!(
            "scram: client-first lacks the nonce: {:?}",
            String::from_utf8_lossy(&first)
        )));
    }
    let Ok(client_final) = client.handle_server_first(server_first) else {
        if client.is_done() {
            return Err(fail("scram: done after a rejected server-first".into()));
        }
        return Ok(false);
    };
    let server_nonce = std::str::from_utf8(server_first)
        .ok()
        .and_then(|s| s.split(',').find_map(|a| a.strip_prefix("r=")))
        .map(str::to_owned);
    let text = String::from_utf8_lossy(&client_final).into_owned();
    match server_nonce {
        Some(n) if n.starts_with(NONCE) && text.contains(&format!(",r={n},")) => {}
        _ => {
            return Err(fail(format!(
                "scram: accepted server-first {:?} and answered {text:?}",
                String::from_utf8_lossy(server_first)
            )));
        }
    }
    let verified = client.handle_server_final(server_final).is_ok();
    if verified != client.is_done() {
        return Err(fail(format!(
            "scram: server-final {} but is_done is {}",
            if verified { "verified" } else { "rejected" },
            client.is_done()
        )));
    }
    Ok(true)
}

fn too_many_iterations(server_first: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(server_first) else {
        return false;
    };
    s.split(',')
        .filter_map(|a| a.strip_prefix("i="))
        .any(|i| i.parse::<u64>().map_or(true, |n| n > 4096))
}

/// The simulated cluster (feature `sim`) fed client bytes: requests of every API it
/// serves and of others, at any version, built from arbitrary values, plus raw bytes,
/// fragmentation, several connections, disconnects and time.
///
/// Checks: no panic; every response frame it writes is well framed and, on a
/// connection that got only whole requests from the script, answers one of them, in
/// the order they were sent.
#[cfg(feature = "sim")]
pub fn sim_cluster(data: &[u8], origin: Instant) -> Result<bool, CheckFailure> {
    let mut u = Unstructured::new(data);
    match run_sim(&mut u, origin) {
        Ok(r) => r,
        Err(_) => Ok(false),
    }
}

#[cfg(feature = "sim")]
fn run_sim(u: &mut Unstructured<'_>, origin: Instant) -> ArbResult<Result<bool, CheckFailure>> {
    use crate::sim::{Cluster, ClusterConfig, ConnectionId};
    const APIS: [ApiKey; 11] = [
        ApiKey::ApiVersions,
        ApiKey::Metadata,
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::CreatePartitions,
        ApiKey::DeleteRecords,
        ApiKey::InitProducerId,
        ApiKey::FindCoordinator,
    ];
    struct Client {
        id: ConnectionId,
        to_sim: Vec<u8>,
        sent: VecDeque<i32>,
        from_sim: FrameDecoder,
        closed: bool,
        /// Raw bytes were written on this connection; they may form requests the
        /// script did not count, so answers are not matched against `sent`.
        raw: bool,
    }
    let mut now = origin;
    let brokers = u.int_in_range(1..=3)?;
    let config = sim_limits(ClusterConfig {
        brokers,
        max_frame_size: 1 << 16,
        seed: u.arbitrary()?,
        ..ClusterConfig::default()
    });
    let mut cluster = Cluster::new(config.clone(), now);
    let _ = cluster.create_topic("t", u.int_in_range(1..=3)?, 1);
    let mut clients: Vec<Client> = Vec::new();
    let mut next_id = 0i32;
    let mut answered = false;
    // The Fetch requests the script sent, by correlation id, to check their answers
    // against the byte limits.
    let mut fetches: std::collections::BTreeMap<i32, (i16, FetchRequest)> =
        std::collections::BTreeMap::new();
    // Connections the cluster said have a reply (`poll_ready`), not yet taken.
    let mut announced: BTreeSet<ConnectionId> = BTreeSet::new();
    for _ in 0..MAX_STEPS {
        if u.is_empty() {
            break;
        }
        let op = u.int_in_range(0..=9u8)?;
        if clients.is_empty() || op == 0 {
            if clients.len() < 4 {
                let broker = u.int_in_range(0..=brokers as i32)?;
                if let Ok(id) = cluster.connect(broker, now) {
                    clients.push(Client {
                        id,
                        to_sim: Vec::new(),
                        sent: VecDeque::new(),
                        from_sim: FrameDecoder::new(usize::MAX),
                        closed: false,
                        raw: false,
                    });
                }
            }
            continue;
        }
        let which = u.choose_index(clients.len())?;
        let client = &mut clients[which];
        match op {
            1..=3 => {
                let api = if u.ratio(1, 16)? {
                    ApiKey::try_from(u.int_in_range(0..=80)?).unwrap_or(ApiKey::Metadata)
                } else {
                    *u.choose(&APIS)?
                };
                let range = api.valid_versions();
                let version = if u.ratio(1, 16)? {
                    u.int_in_range(-1..=range.max.saturating_add(1))?
                } else {
                    u.int_in_range(range.min..=range.max)?
                };
                let id = next_id;
                next_id = next_id.wrapping_add(1);
                let mut frame = BytesMut::new();
                let _ = RequestHeader {
                    request_api_key: api as i16,
                    request_api_version: version,
                    correlation_id: id,
                    client_id: Some("fuzz".into()),
                    ..Default::default()
                }
                .encode(&mut frame, api.request_header_version(version));
                let name = format!("{}Request", api.name());
                if api == ApiKey::Produce && u.ratio(1, 2)? {
                    produce_body(u, version, &mut frame)?;
                } else if let Some(entry) = ALL_MESSAGES.iter().find(|e| e.name == name)
                    && let Some(body) = (entry.arbitrary_encoding)(u, version)
                {
                    if api == ApiKey::Fetch
                        && let Ok(fetch) = FetchRequest::decode(&mut body.clone(), version)
                    {
                        fetches.insert(id, (version, fetch));
                    }
                    frame.extend_from_slice(&body);
                }
                client.to_sim.extend_from_slice(&framed(&frame));
                client.sent.push_back(id);
            }
            4 => {
                let n = u.int_in_range(0..=24)?;
                client.to_sim.extend_from_slice(u.bytes(n)?);
                client.raw = true;
            }
            5 | 6 => {
                if !client.to_sim.is_empty() {
                    let mut n = u.int_in_range(1..=client.to_sim.len())?;
                    if op == 6 {
                        // As a transport that reads only what the cluster asks for.
                        n = n.min(cluster.read_limit(client.id));
                    }
                    let chunk: Vec<u8> = client.to_sim.drain(..n).collect();
                    cluster.handle_input(client.id, now, &chunk);
                }
            }
            7 => {
                let chunk = std::mem::take(&mut client.to_sim);
                cluster.handle_input(client.id, now, &chunk);
            }
            8 => {
                now += Duration::from_millis(u.int_in_range(0..=5_000)?);
                cluster.handle_timeout(now);
            }
            _ => {
                cluster.disconnect(client.id);
                client.closed = true;
            }
        }
        // Drain every connection and check its answers.
        while let Some(c) = cluster.poll_closed() {
            if let Some(client) = clients.iter_mut().find(|cl| cl.id == c) {
                client.closed = true;
            }
        }
        if cluster.connection_count() > config.max_connections {
            return Ok(Err(fail(format!(
                "sim: {} connections open, over max_connections {}",
                cluster.connection_count(),
                config.max_connections
            ))));
        }
        for client in &mut clients {
            loop {
                announced.extend(std::iter::from_fn(|| cluster.poll_ready()));
                let Some(bytes) = cluster.poll_transmit(client.id) else {
                    break;
                };
                if !announced.remove(&client.id) {
                    return Ok(Err(fail("sim: a reply poll_ready did not announce".into())));
                }
                client.from_sim.extend(&bytes);
                loop {
                    let frame = match client.from_sim.next_frame() {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => {
                            return Ok(Err(fail(format!("sim: wrote a bad frame: {e}"))));
                        }
                    };
                    let Some(id) = frame.first_chunk::<4>().map(|b| i32::from_be_bytes(*b)) else {
                        return Ok(Err(fail("sim: response frame without a header".into())));
                    };
                    answered = true;
                    if client.raw {
                        continue;
                    }
                    // Requests without a response (acks=0) are skipped over.
                    while client.sent.front().is_some_and(|&s| s != id) {
                        client.sent.pop_front();
                    }
                    if client.sent.pop_front() != Some(id) {
                        return Ok(Err(fail(format!(
                            "sim: answered correlation id {id}, not an unanswered request of that connection"
                        ))));
                    }
                    if let Some((version, request)) = fetches.remove(&id)
                        && let Err(e) = fetch_within_limits(&config, &request, version, frame)
                    {
                        return Ok(Err(fail(e)));
                    }
                }
            }
        }
        clients.retain(|c| !c.closed);
    }
    Ok(Ok(answered))
}

/// The cluster's limits for one script, drawn from its seed so that the script's
/// own bytes mean what they meant before the limits existed: each limit is tight
/// (small enough for a script to reach) half of the time, Kafka's default otherwise.
#[cfg(feature = "sim")]
fn sim_limits(config: crate::sim::ClusterConfig) -> crate::sim::ClusterConfig {
    let mut bits = config.seed.rotate_left(29) ^ 0xA5A5_5A5A_F00D_BEEF;
    let mut tight = |range: std::ops::RangeInclusive<u64>| {
        let on = bits & 1 == 1;
        bits = bits.rotate_right(7).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        on.then(|| range.start() + bits % (range.end() - range.start() + 1))
    };
    let ms = Duration::from_millis;
    let mut c = config;
    if let Some(n) = tight(1..=4) {
        c.max_connections = n as usize;
    }
    if let Some(n) = tight(1..=10_000) {
        c.connections_max_idle = ms(n);
    }
    if let Some(n) = tight(0..=4096) {
        c.max_queued_bytes = n as usize;
    }
    if let Some(n) = tight(64..=4096) {
        c.message_max_bytes = n as usize;
    }
    if let Some(n) = tight(1..=4096) {
        c.fetch_max_bytes = n as usize;
    }
    if let Some(n) = tight(1..=64) {
        c.max_partitions = n as usize;
        c.max_auto_created_partitions = (n / 2) as usize;
    }
    if let Some(n) = tight(3..=16) {
        c.max_partitions_per_topic = n as i32;
    }
    if let Some(n) = tight(1..=1000) {
        c.group_min_session_timeout = ms(n);
        c.group_max_session_timeout = ms(n * 10);
    }
    c
}

/// A Fetch answer within the byte limits: no partition over its own limit or what
/// is left of `min(max_bytes, fetch.max.bytes)`, except the first partition with
/// data, which may return one batch (at most `message.max.bytes`) over them.
#[cfg(feature = "sim")]
fn fetch_within_limits(
    config: &crate::sim::ClusterConfig,
    request: &FetchRequest,
    version: i16,
    frame: Bytes,
) -> Result<(), String> {
    use crate::messages::FetchResponse;
    let mut body = frame;
    ResponseHeader::decode(&mut body, ApiKey::Fetch.response_header_version(version))
        .and_then(|_| FetchResponse::decode(&mut body, version))
        .map_err(|e| format!("sim: a Fetch answer does not decode: {e}"))
        .and_then(|response| {
            let mut left = (request.max_bytes.max(0) as usize).min(config.fetch_max_bytes);
            let mut first = true;
            let asked = request.topics.iter().flat_map(|t| &t.partitions);
            let got = response.responses.iter().flat_map(|t| &t.partitions);
            for (asked, got) in asked.zip(got) {
                let n = got.records.as_ref().map_or(0, Bytes::len);
                if n == 0 {
                    continue;
                }
                let limit = (asked.partition_max_bytes.max(0) as usize).min(left);
                if n > limit && !(first && n <= config.message_max_bytes) {
                    return Err(format!(
                        "sim: a Fetch answer gave partition {} {n} bytes over its limit {limit}",
                        asked.partition
                    ));
                }
                first = false;
                left = left.saturating_sub(n);
            }
            Ok(())
        })
}

/// A Produce body carrying a real record batch, so the sim's log is reached.
#[cfg(feature = "sim")]
fn produce_body(u: &mut Unstructured<'_>, version: i16, out: &mut BytesMut) -> ArbResult<()> {
    use crate::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use crate::records::{BatchBuilder, BatchConfig, NewRecord};
    let mut batch = BytesMut::new();
    {
        let config = BatchConfig {
            producer_id: if u.ratio(1, 3)? { 1 } else { -1 },
            producer_epoch: 0,
            base_sequence: u.int_in_range(-1..=3)?,
            ..BatchConfig::default()
        };
        let mut builder = BatchBuilder::new(&mut batch, &config);
        for _ in 0..u.int_in_range(0..=4)? {
            let value = take(u, 16)?;
            let _ = builder.append(&NewRecord::new(u.int_in_range(0..=2000)?).value(value));
        }
        let _ = builder.finish();
    }
    let request = ProduceRequest {
        acks: *u.choose(&[0i16, 1, -1])?,
        timeout_ms: u.int_in_range(0..=3000)?,
        topic_data: vec![TopicProduceData {
            name: (if u.ratio(1, 4)? { "other" } else { "t" }).into(),
            partition_data: vec![PartitionProduceData {
                index: u.int_in_range(-1..=3)?,
                records: Some(batch.freeze()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let _ = request.encode(out, version);
    Ok(())
}
