//! One broker connection as a sans-IO state machine.
//!
//! [`Connection`] turns requests into bytes to write and the bytes read back into
//! responses. It negotiates versions (ApiVersions), authenticates (SASL), tracks
//! correlation ids, pipelines up to a limit, times requests out and honours broker
//! throttling, yet never touches a socket, a clock or a thread: bytes and time are
//! arguments, and everything it wants done comes back from its `poll_*` methods.
//! The runtime adapters (features `tokio`, `smol`, `blocking`) carry bytes between
//! it and a TCP stream; a test can drive it by hand with scripted broker bytes.
//!
//! Its parts: [`frame`] (size-prefixed framing with a cap), [`sasl`] (PLAIN, SCRAM
//! and OAUTHBEARER steps), connection setup (ApiVersions, SASL) in `setup.rs`, and
//! the error types re-exported here. Where a response carries its throttle time and
//! whether a request expects a response at all are generated from the schemas
//! ([`ApiKey::response_throttle_time`](crate::messages::ApiKey::response_throttle_time),
//! [`Request::expects_response`]).

mod error;
pub mod frame;
mod inflight;
pub mod sasl;
mod setup;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use crate::messages::{ApiKey, ApiVersionsRequest, Request, RequestHeader, ResponseHeader};
use crate::wire::{ByteString, EncodeError, Message, VersionRange};

pub use error::{
    ConnectionError, ConnectionErrorKind, CorrelationId, HandshakeErrorKind, RequestContext,
    RequestError, RequestErrorKind, ResponseError, TlsFailure, TransportError, UsageError,
};
use frame::FrameDecoder;
use inflight::{Entry, InFlight};
use sasl::{SaslConfig, SaslSession};

/// How a [`Connection`] behaves. Build with [`Config::new`] and adjust the fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// A label for the broker in errors, such as `"1@127.0.0.1:9092"`.
    pub broker: Arc<str>,
    /// The client id sent in every request header.
    pub client_id: Option<String>,
    /// Sent in ApiVersions v3+ (KIP-511); letters, digits, `-` and `.` only.
    pub client_software_name: String,
    /// Sent in ApiVersions v3+ (KIP-511); letters, digits, `-` and `.` only.
    pub client_software_version: String,
    /// Largest response frame accepted; a larger size prefix is fatal.
    pub max_frame_size: usize,
    /// Most requests awaiting a response at once (connection setup excluded);
    /// further requests wait in order.
    pub max_in_flight: usize,
    /// Most requests accepted but not yet written; [`Connection::send`] refuses more
    /// with [`UsageError::QueueFull`] instead of growing without bound.
    pub max_queued: usize,
    /// How long a request may wait for its response, counted from
    /// [`Connection::send`]; also bounds each step of connection setup.
    pub request_timeout: Duration,
    /// SASL credentials; `None` skips authentication.
    pub sasl: Option<SaslConfig>,
    /// The highest ApiVersions version to try first.
    pub api_versions_version: i16,
}

impl Config {
    /// Defaults: no client id, this crate's name and version as the software, frames
    /// up to [`frame::DEFAULT_MAX_FRAME_SIZE`], 5 requests in flight and 1024 queued, a 30 s request
    /// timeout, no SASL, ApiVersions from the newest version this crate knows.
    #[must_use]
    pub fn new(broker: impl Into<Arc<str>>) -> Self {
        Self {
            broker: broker.into(),
            client_id: None,
            client_software_name: env!("CARGO_PKG_NAME").to_owned(),
            client_software_version: env!("CARGO_PKG_VERSION").to_owned(),
            max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            max_in_flight: 5,
            max_queued: 1024,
            request_timeout: Duration::from_secs(30),
            sasl: None,
            api_versions_version: ApiVersionsRequest::VALID_VERSIONS.max,
        }
    }
}

/// Per-request settings for [`Connection::send_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestOptions {
    /// Overrides [`Config::request_timeout`].
    pub timeout: Option<Duration>,
    /// Caps the version chosen for this request.
    pub max_version: Option<i16>,
}

impl RequestOptions {
    /// Options with a timeout.
    #[must_use]
    pub fn timeout(timeout: Duration) -> Self {
        Self {
            timeout: Some(timeout),
            ..Self::default()
        }
    }

    /// Options capping the version.
    #[must_use]
    pub fn max_version(version: i16) -> Self {
        Self {
            max_version: Some(version),
            ..Self::default()
        }
    }
}

/// A response body with what is needed to decode it.
///
/// The core does not decode bodies itself (beyond throttle time), so decoding runs
/// wherever the caller wants: call [`decode`](Self::decode) with the request type.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Which request this answers.
    pub context: RequestContext,
    /// The body after the response header, a slice of the received frame.
    pub body: Bytes,
}

impl Response {
    /// The API version the request was sent at (and the response is encoded in).
    #[must_use]
    pub fn api_version(&self) -> i16 {
        self.context.api_version.unwrap_or(0)
    }

    /// Decodes the body as the response to `R`.
    ///
    /// # Errors
    /// `R` is for another API, or the body does not decode at the version sent.
    pub fn decode<R: Request>(&self) -> Result<R::Response, ResponseError> {
        if R::API_KEY != self.context.api_key {
            return Err(ResponseError::WrongApi {
                expected: R::API_KEY,
                actual: self.context.api_key,
                context: self.context.clone(),
            });
        }
        let mut body = self.body.clone();
        R::Response::decode(&mut body, self.api_version()).map_err(|source| ResponseError::Decode {
            context: self.context.clone(),
            source,
        })
    }
}

/// Something the connection reports; pulled with [`Connection::poll_event`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Versions are negotiated and authentication (if any) succeeded; queued requests
    /// are now being sent. Reported once: a later re-authentication (KIP-368, when the
    /// broker grants a session lifetime) holds new requests while it runs but is not
    /// reported again.
    Ready,
    /// A request's response arrived. Ends the request.
    Response(Response),
    /// A request that expects no response (an acks=0 Produce) was handed to
    /// [`Connection::poll_transmit`]. Ends the request.
    Sent(RequestContext),
    /// A request ended without a response. Ends the request.
    RequestFailed(RequestError),
    /// The broker asked the client to hold off; no request is written before `until`.
    ///
    /// Read from the responses whose throttle time is their first field and from
    /// Produce. The hold applies at every version: since KIP-219 brokers answer at
    /// once and expect the client to wait, while older versions were already delayed
    /// by the broker, so for those the hold is conservative (it can only add delay).
    Throttled {
        /// The response that carried the throttle time.
        context: RequestContext,
        /// How long the broker asked for.
        duration: Duration,
        /// When sending resumes.
        until: Instant,
    },
    /// The connection failed or was closed; the last event. Every outstanding request
    /// has already ended with a [`RequestFailed`](Event::RequestFailed) before it.
    Closed(ConnectionError),
}

/// A request not yet encoded, of any type.
trait ErasedRequest: Send {
    fn api_key(&self) -> ApiKey;
    fn valid_versions(&self) -> VersionRange;
    fn encode_body(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError>;
}

impl<R: Request + Send> ErasedRequest for R {
    fn api_key(&self) -> ApiKey {
        R::API_KEY
    }
    fn valid_versions(&self) -> VersionRange {
        R::VALID_VERSIONS
    }
    fn encode_body(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError> {
        self.encode(buf, version)
    }
}

/// A request of any type, for code that sends requests whose type it does not know
/// statically (a client routing many operations over one connection).
///
/// ```
/// use kafka_sansio::connection::AnyRequest;
/// use kafka_sansio::messages::{ApiKey, MetadataRequest, ProduceRequest};
///
/// let metadata = AnyRequest::new(MetadataRequest::default());
/// assert_eq!(metadata.api_key(), ApiKey::Metadata);
/// assert!(metadata.expects_response());
/// // acks=0: the broker sends nothing back
/// assert!(!AnyRequest::new(ProduceRequest { acks: 0, ..Default::default() }).expects_response());
/// ```
pub struct AnyRequest {
    request: Box<dyn ErasedRequest>,
    expects_response: bool,
}

impl AnyRequest {
    /// Wraps a typed request.
    #[must_use]
    pub fn new<R: Request + Send + 'static>(request: R) -> Self {
        let expects_response = request.expects_response();
        Self {
            request: Box::new(request),
            expects_response,
        }
    }

    /// The request's API.
    #[must_use]
    pub fn api_key(&self) -> ApiKey {
        self.request.api_key()
    }

    /// Whether the broker answers it (every request but an acks=0 Produce).
    #[must_use]
    pub fn expects_response(&self) -> bool {
        self.expects_response
    }
}

impl std::fmt::Debug for AnyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyRequest")
            .field("api_key", &self.api_key())
            .finish_non_exhaustive()
    }
}

struct Queued {
    correlation_id: CorrelationId,
    request: Box<dyn ErasedRequest>,
    expects_response: bool,
    deadline: Instant,
    timeout: Duration,
    max_version: Option<i16>,
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queued")
            .field("correlation_id", &self.correlation_id)
            .field("api_key", &self.request.api_key())
            .finish_non_exhaustive()
    }
}

/// Why a request is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    User,
    ApiVersions,
    SaslHandshake,
    SaslAuthenticate,
}

#[derive(Debug)]
struct Sent {
    api_key: ApiKey,
    api_version: i16,
    purpose: Purpose,
    timeout: Duration,
}

#[derive(Debug)]
enum State {
    /// ApiVersions is in flight at this version.
    Negotiating,
    /// SASL is running.
    Authenticating {
        session: SaslSession,
        authenticate_version: i16,
    },
    Ready,
    Failed(ConnectionError),
}

/// One broker connection as a sans-IO state machine.
///
/// # Driving contract
///
/// Like quinn-proto's connection, its methods are of four kinds:
/// - **getters** ([`is_ready`](Self::is_ready), [`broker_versions`](Self::broker_versions), ...),
///   which change nothing;
/// - **inputs**: [`handle_input`](Self::handle_input) with bytes read from the socket,
///   [`handle_eof`](Self::handle_eof) when the peer closed it,
///   [`handle_transport_error`](Self::handle_transport_error) when the socket failed,
///   and [`handle_timeout`](Self::handle_timeout) when the deadline from
///   [`poll_timeout`](Self::poll_timeout) has passed;
/// - **commands**: [`send`](Self::send) / [`send_with`](Self::send_with) and
///   [`close`](Self::close);
/// - **outputs**, pulled until they return `None`:
///   [`poll_transmit`](Self::poll_transmit) (bytes to write, in order, each chunk
///   written completely before the next), [`poll_event`](Self::poll_event)
///   (responses, failures, readiness) and [`poll_timeout`](Self::poll_timeout) (when
///   to call `handle_timeout`).
///
/// After creating it and after **every** input or command, call `poll_transmit` until
/// `None` and write what it returns, call `poll_event` until `None`, then ask
/// `poll_timeout` for the next deadline (the previous one is void). Time passed in
/// must never go backwards. Nothing here reads a clock: a request's deadline is the
/// `now` given to `send` plus its timeout.
///
/// # Promise
///
/// Every request passed to `send` ends exactly once, with [`Event::Response`],
/// [`Event::Sent`] (acks=0 Produce only), or [`Event::RequestFailed`] — for a
/// timeout, a request the broker cannot take, an encoding failure, or the connection's
/// fatal error. After [`Event::Closed`] nothing more happens.
///
/// A whole run loop over a `std::net` socket fits in one function: see
/// `examples/sansio_loop.rs`. The runtime adapters (`tokio_runtime`, `smol_runtime`,
/// `blocking_runtime`) are that loop plus sharing between tasks.
///
/// # Example
///
/// Driving it by hand against a scripted broker that answers ApiVersions v4:
///
/// ```
/// use std::time::Instant;
/// use bytes::BytesMut;
/// use kafka_sansio::connection::{Config, Connection, Event};
/// use kafka_sansio::messages::{
///     ApiKey, ApiVersionsResponse, MetadataRequest, MetadataResponse,
///     ResponseHeader, api_versions_response::ApiVersion,
/// };
/// use kafka_sansio::wire::Message;
///
/// # #[allow(clippy::disallowed_methods)]
/// let now = Instant::now();
/// let mut conn = Connection::new(Config::new("doc-broker"), now);
/// let id = conn.send(now, MetadataRequest::default()).unwrap();
/// let hello = conn.poll_transmit().unwrap(); // ApiVersions; Metadata waits for it
/// assert!(conn.poll_transmit().is_none());
///
/// // The broker's answer: header v0 (correlation id 0) then an ApiVersions v4 body.
/// let body = ApiVersionsResponse {
///     api_keys: vec![
///         ApiVersion { api_key: ApiKey::ApiVersions as i16, min_version: 0, max_version: 4, ..Default::default() },
///         ApiVersion { api_key: ApiKey::Metadata as i16, min_version: 0, max_version: 12, ..Default::default() },
///     ],
///     ..Default::default()
/// };
/// let frame = frame_of(0, 0, |b| body.encode(b, 4).unwrap());
/// conn.handle_input(now, &frame);
/// assert_eq!(conn.poll_event(), Some(Event::Ready));
/// assert_eq!(conn.version_for(ApiKey::Metadata), Some(12));
/// let _metadata_request = conn.poll_transmit().unwrap();
///
/// let frame = frame_of(id, 1, |b| MetadataResponse::default().encode(b, 12).unwrap());
/// conn.handle_input(now, &frame);
/// let Some(Event::Response(resp)) = conn.poll_event() else { panic!() };
/// let metadata = resp.decode::<MetadataRequest>().unwrap();
/// assert!(metadata.brokers.is_empty());
///
/// // A response frame: size, response header, body.
/// fn frame_of(correlation_id: i32, header_version: i16, body: impl Fn(&mut BytesMut)) -> Vec<u8> {
///     let mut b = BytesMut::new();
///     ResponseHeader { correlation_id, ..Default::default() }.encode(&mut b, header_version).unwrap();
///     body(&mut b);
///     let mut out = (b.len() as i32).to_be_bytes().to_vec();
///     out.extend_from_slice(&b);
///     out
/// }
/// ```
#[derive(Debug)]
pub struct Connection {
    config: Config,
    state: State,
    decoder: FrameDecoder,
    transmit: BytesMut,
    /// No-response requests encoded into `transmit` but not yet handed out.
    unsent_no_response: Vec<RequestContext>,
    in_flight: InFlight<Sent>,
    queue: VecDeque<Queued>,
    events: VecDeque<Event>,
    broker_versions: Option<BTreeMap<i16, VersionRange>>,
    next_correlation_id: CorrelationId,
    throttled_until: Option<Instant>,
    /// When to re-authenticate (KIP-368), from the broker's session lifetime.
    reauth_at: Option<Instant>,
    /// Re-authentication is due: new requests wait until in-flight ones drain.
    reauth_due: bool,
    reauth_count: u32,
    became_ready: bool,
}

impl Connection {
    /// A new connection, for a transport that has just connected at `now`. It starts
    /// by writing ApiVersions; poll for transmits next.
    #[must_use]
    pub fn new(config: Config, now: Instant) -> Self {
        let mut conn = Self {
            decoder: FrameDecoder::new(config.max_frame_size),
            state: State::Negotiating,
            transmit: BytesMut::new(),
            unsent_no_response: Vec::new(),
            in_flight: InFlight::default(),
            queue: VecDeque::new(),
            events: VecDeque::new(),
            broker_versions: None,
            next_correlation_id: 0,
            throttled_until: None,
            reauth_at: None,
            reauth_due: false,
            reauth_count: 0,
            became_ready: false,
            config,
        };
        let version = conn
            .config
            .api_versions_version
            .clamp(0, ApiVersionsRequest::VALID_VERSIONS.max);
        conn.send_api_versions(now, version);
        conn
    }

    // ----- getters -------------------------------------------------------------

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether negotiation and authentication are done (false again while a KIP-368
    /// re-authentication runs; requests sent meanwhile wait).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready)
    }

    /// The fatal error, once the connection has failed or been closed.
    #[must_use]
    pub fn error(&self) -> Option<&ConnectionError> {
        match &self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// The versions the broker offers per API key, once ApiVersions has succeeded.
    #[must_use]
    pub fn broker_versions(&self) -> Option<&BTreeMap<i16, VersionRange>> {
        self.broker_versions.as_ref()
    }

    /// The version a request of this API would be sent at: the highest both sides
    /// support. `None` before negotiation or if there is none.
    #[must_use]
    pub fn version_for(&self, api_key: ApiKey) -> Option<i16> {
        let theirs = self.broker_versions.as_ref()?.get(&(api_key as i16))?;
        api_key.valid_versions().intersect(theirs).map(|r| r.max)
    }

    /// Requests written and awaiting a response (setup requests included).
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight.occupied()
    }

    /// Requests accepted but not yet written (waiting for setup, a free in-flight
    /// slot, or the end of a throttle).
    #[must_use]
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Until when the broker asked us to hold requests, if that is in the future of
    /// the last `now` seen.
    #[must_use]
    pub fn throttled_until(&self) -> Option<Instant> {
        self.throttled_until
    }

    // ----- commands ------------------------------------------------------------

    /// Queues a request with the default options; see [`send_with`](Self::send_with).
    ///
    /// # Errors
    /// The connection is closed, or its queue is full.
    pub fn send<R: Request + Send + 'static>(
        &mut self,
        now: Instant,
        request: R,
    ) -> Result<CorrelationId, UsageError> {
        self.send_with(now, request, RequestOptions::default())
    }

    /// Queues a request; it is written once the connection is ready, a slot in the
    /// in-flight limit is free and no throttle holds. The version is the highest both
    /// sides support (capped by `options.max_version`). An acks=0 Produce expects no
    /// response and ends with [`Event::Sent`].
    ///
    /// # Errors
    /// The connection is closed, or [`Config::max_queued`] requests already wait.
    /// Every other failure ends the request through [`Event::RequestFailed`].
    pub fn send_with<R: Request + Send + 'static>(
        &mut self,
        now: Instant,
        request: R,
        options: RequestOptions,
    ) -> Result<CorrelationId, UsageError> {
        self.send_any(now, AnyRequest::new(request), options)
    }

    /// Queues a request of any type; otherwise as [`send_with`](Self::send_with).
    ///
    /// # Errors
    /// As [`send_with`](Self::send_with).
    pub fn send_any(
        &mut self,
        now: Instant,
        request: AnyRequest,
        options: RequestOptions,
    ) -> Result<CorrelationId, UsageError> {
        if let State::Failed(e) = &self.state {
            return Err(UsageError::Closed(e.clone()));
        }
        if self.queue.len() >= self.config.max_queued {
            return Err(UsageError::QueueFull {
                limit: self.config.max_queued,
            });
        }
        let AnyRequest {
            request,
            expects_response,
        } = request;
        let timeout = options.timeout.unwrap_or(self.config.request_timeout);
        let correlation_id = self.next_id();
        self.queue.push_back(Queued {
            correlation_id,
            request,
            expects_response,
            deadline: now + timeout,
            timeout,
            max_version: options.max_version,
        });
        self.flush(now);
        Ok(correlation_id)
    }

    /// Closes the connection: every outstanding request fails and [`Event::Closed`]
    /// follows. The caller then closes the socket.
    pub fn close(&mut self) {
        self.fail(ConnectionErrorKind::ClosedLocally);
    }

    // ----- inputs --------------------------------------------------------------

    /// Feeds bytes read from the socket.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if matches!(self.state, State::Failed(_)) {
            return;
        }
        self.decoder.extend(bytes);
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => self.handle_frame(now, frame),
                Ok(None) => break,
                Err(e) => self.fail(e.into()),
            }
            if matches!(self.state, State::Failed(_)) {
                return;
            }
        }
        self.flush(now);
    }

    /// The peer closed the stream.
    pub fn handle_eof(&mut self, _now: Instant) {
        let mid_frame = self.decoder.is_mid_frame();
        self.fail(ConnectionErrorKind::ClosedByPeer { mid_frame });
    }

    /// The transport failed; `detail` is kept in the error.
    pub fn handle_transport_error(&mut self, _now: Instant, error: impl Into<TransportError>) {
        self.fail(ConnectionErrorKind::Transport(error.into()));
    }

    /// Time has reached the deadline from [`poll_timeout`](Self::poll_timeout) (calling
    /// it earlier or more often is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, State::Failed(_)) {
            return;
        }
        let mut expired = Vec::new();
        let mut setup_expired = None;
        self.in_flight.expire(now, |e| {
            if e.data.purpose == Purpose::User {
                expired.push((
                    e.correlation_id,
                    e.data.api_key,
                    e.data.api_version,
                    e.data.timeout,
                ));
            } else {
                setup_expired = Some((e.data.api_key, e.data.api_version));
            }
        });
        for (id, api, version, timeout) in expired {
            let context = self.context(api, Some(version), id);
            self.events.push_back(Event::RequestFailed(RequestError {
                context,
                kind: RequestErrorKind::Timeout(timeout),
            }));
        }
        if let Some((api, version)) = setup_expired {
            self.fail(ConnectionErrorKind::Handshake {
                api,
                version,
                kind: HandshakeErrorKind::Timeout(self.config.request_timeout),
            });
            return;
        }
        let mut i = 0;
        while i < self.queue.len() {
            if self.queue[i].deadline <= now {
                let Some(q) = self.queue.remove(i) else { break };
                let timeout = q.timeout;
                self.end_queued(q, RequestErrorKind::Timeout(timeout));
            } else {
                i += 1;
            }
        }
        if self.throttled_until.is_some_and(|t| t <= now) {
            self.throttled_until = None;
        }
        if self.reauth_at.is_some_and(|t| t <= now) {
            self.reauth_at = None;
            self.reauth_due = true;
        }
        self.flush(now);
    }

    // ----- outputs -------------------------------------------------------------

    /// Bytes to write to the socket, in order; `None` when there are none.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.transmit.is_empty() {
            return None;
        }
        for context in self.unsent_no_response.drain(..) {
            self.events.push_back(Event::Sent(context));
        }
        Some(self.transmit.split().freeze())
    }

    /// The next event; `None` when there are none.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called; `None`
    /// if no deadline is pending.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if matches!(self.state, State::Failed(_)) {
            return None;
        }
        let queued = self.queue.iter().map(|q| q.deadline).min();
        [
            self.in_flight.next_deadline(),
            queued,
            self.throttled_until,
            self.reauth_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----- internals -----------------------------------------------------------

    fn next_id(&mut self) -> CorrelationId {
        let id = self.next_correlation_id;
        self.next_correlation_id = if id == i32::MAX { 0 } else { id + 1 };
        id
    }

    fn context(
        &self,
        api_key: ApiKey,
        api_version: Option<i16>,
        id: CorrelationId,
    ) -> RequestContext {
        RequestContext {
            api_key,
            api_version,
            correlation_id: id,
            broker: self.config.broker.clone(),
        }
    }

    fn end_queued(&mut self, q: Queued, kind: RequestErrorKind) {
        let context = self.context(q.request.api_key(), None, q.correlation_id);
        self.events
            .push_back(Event::RequestFailed(RequestError { context, kind }));
    }

    /// Appends one request frame to `transmit`, or nothing if encoding fails.
    fn encode_frame(
        &mut self,
        api_key: ApiKey,
        version: i16,
        correlation_id: CorrelationId,
        body: &dyn Fn(&mut BytesMut, i16) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        let start = self.transmit.len();
        self.transmit.put_i32(0);
        let header = RequestHeader {
            request_api_key: api_key as i16,
            request_api_version: version,
            correlation_id,
            client_id: self.config.client_id.as_deref().map(ByteString::from),
            ..Default::default()
        };
        let result = header
            .encode(&mut self.transmit, api_key.request_header_version(version))
            .and_then(|()| body(&mut self.transmit, version));
        let len = self.transmit.len() - start - 4;
        let result = result.and_then(|()| {
            i32::try_from(len).map_err(|_| EncodeError::TooLong {
                field: "request frame",
                length: len,
                max: i32::MAX as usize,
            })
        });
        match result {
            Ok(len) => {
                self.transmit[start..start + 4].copy_from_slice(&len.to_be_bytes());
                Ok(())
            }
            Err(e) => {
                self.transmit.truncate(start);
                Err(e)
            }
        }
    }

    /// Writes queued requests while the connection is ready, unthrottled and under the
    /// in-flight limit.
    fn flush(&mut self, now: Instant) {
        if !matches!(self.state, State::Ready) {
            return;
        }
        if self.reauth_due {
            // KIP-368: hold new requests, let the broker answer the ones in flight,
            // then authenticate again on this connection.
            if self.in_flight.occupied() == 0 {
                self.reauthenticate(now);
            }
            return;
        }
        if let Some(until) = self.throttled_until {
            if until > now {
                return;
            }
            self.throttled_until = None;
        }
        while self.in_flight.occupied() < self.config.max_in_flight.max(1) {
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            let api_key = q.request.api_key();
            let ours = match q.max_version {
                Some(cap) => VersionRange {
                    min: q.request.valid_versions().min,
                    max: q.request.valid_versions().max.min(cap),
                },
                None => q.request.valid_versions(),
            };
            let Some(theirs) = self
                .broker_versions
                .as_ref()
                .and_then(|v| v.get(&(api_key as i16)).copied())
            else {
                self.end_queued(q, RequestErrorKind::UnsupportedApi);
                continue;
            };
            let Some(common) = ours.intersect(&theirs) else {
                self.end_queued(q, RequestErrorKind::NoCommonVersion { ours, theirs });
                continue;
            };
            let version = common.max;
            let id = q.correlation_id;
            let request = &q.request;
            if let Err(e) =
                self.encode_frame(api_key, version, id, &|b, v| request.encode_body(b, v))
            {
                let context = self.context(api_key, Some(version), id);
                self.events.push_back(Event::RequestFailed(RequestError {
                    context,
                    kind: RequestErrorKind::Encode(e),
                }));
                continue;
            }
            if !q.expects_response {
                let context = self.context(api_key, Some(version), id);
                self.unsent_no_response.push(context);
            }
            self.in_flight.push(Entry {
                correlation_id: id,
                expects_response: q.expects_response,
                abandoned: false,
                deadline: Some(q.deadline),
                data: Sent {
                    api_key,
                    api_version: version,
                    purpose: Purpose::User,
                    timeout: q.timeout,
                },
            });
        }
    }

    fn handle_frame(&mut self, now: Instant, mut frame: Bytes) {
        if frame.len() < 4 {
            self.fail(ConnectionErrorKind::ResponseHeader(
                crate::wire::DecodeError::new(
                    "ResponseHeader.correlation_id",
                    crate::wire::DecodeErrorKind::UnexpectedEof {
                        needed: 4,
                        remaining: frame.len(),
                    },
                ),
            ));
            return;
        }
        let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let entry = match self.in_flight.match_response(correlation_id) {
            Ok(e) => e,
            Err(m) => {
                self.fail(ConnectionErrorKind::CorrelationMismatch {
                    expected: m.expected,
                    got: m.got,
                });
                return;
            }
        };
        let (api_key, api_version, purpose) = (
            entry.data.api_key,
            entry.data.api_version,
            entry.data.purpose,
        );
        let header_version = api_key.response_header_version(api_version);
        if let Err(e) = ResponseHeader::decode(&mut frame, header_version) {
            // back in line, so the failure below ends its request too
            self.in_flight.push_front(entry);
            self.fail(ConnectionErrorKind::ResponseHeader(e));
            return;
        }
        if !entry.expects_response || entry.abandoned {
            // an answer to acks=0, or to a request that already timed out
            return;
        }
        match purpose {
            Purpose::User => {
                self.handle_user_response(now, api_key, api_version, correlation_id, frame)
            }
            Purpose::ApiVersions => self.handle_api_versions(now, api_version, frame),
            Purpose::SaslHandshake => self.handle_sasl_handshake(now, api_version, frame),
            Purpose::SaslAuthenticate => self.handle_sasl_authenticate(now, api_version, frame),
        }
    }

    fn handle_user_response(
        &mut self,
        now: Instant,
        api_key: ApiKey,
        api_version: i16,
        correlation_id: CorrelationId,
        body: Bytes,
    ) {
        let context = self.context(api_key, Some(api_version), correlation_id);
        // Where the schema puts ThrottleTimeMs in this response (generated, KIP-219).
        if let Some(ms) = api_key
            .response_throttle_time_ms(api_version, &body)
            .filter(|ms| *ms > 0)
        {
            let duration = Duration::from_millis(u64::from(ms.unsigned_abs()));
            let until = now + duration;
            if self.throttled_until.is_none_or(|t| t < until) {
                self.throttled_until = Some(until);
            }
            self.events.push_back(Event::Throttled {
                context: context.clone(),
                duration,
                until,
            });
        }
        self.events
            .push_back(Event::Response(Response { context, body }));
    }

    /// Moves to the failed state, ending every outstanding request once.
    fn fail(&mut self, kind: ConnectionErrorKind) {
        if matches!(self.state, State::Failed(_)) {
            return;
        }
        let err = ConnectionError {
            broker: self.config.broker.clone(),
            kind,
        };
        let mut ended = Vec::new();
        for e in self.in_flight.drain() {
            if e.expects_response && !e.abandoned && e.data.purpose == Purpose::User {
                ended.push((e.data.api_key, Some(e.data.api_version), e.correlation_id));
            }
        }
        // acks=0 requests whose bytes were never handed out did not go anywhere
        for c in std::mem::take(&mut self.unsent_no_response) {
            ended.push((c.api_key, c.api_version, c.correlation_id));
        }
        for q in std::mem::take(&mut self.queue) {
            ended.push((q.request.api_key(), None, q.correlation_id));
        }
        ended.sort_by_key(|(_, _, id)| *id);
        for (api, version, id) in ended {
            let context = self.context(api, version, id);
            self.events.push_back(Event::RequestFailed(RequestError {
                context,
                kind: RequestErrorKind::Connection(err.clone()),
            }));
        }
        self.transmit.clear();
        self.events.push_back(Event::Closed(err.clone()));
        self.state = State::Failed(err);
    }
}
