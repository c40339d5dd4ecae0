//! What can go wrong on a connection and with one request.
//!
//! As h11 does, the types keep apart what the *caller* did wrong (a [`UsageError`],
//! returned at once and leaving the connection usable) from what the *broker* did
//! wrong or the transport did (a [`ConnectionError`], fatal: every outstanding request
//! ends with it and the connection accepts nothing more). Errors that end a single
//! request are [`RequestError`]s and carry the API, version, correlation id and broker.

use std::sync::Arc;
use std::time::Duration;

use crate::messages::{ApiKey, ErrorCode};
use crate::wire::{DecodeError, EncodeError, VersionRange};

use super::frame::FrameError;
use super::sasl::SaslError;

/// A correlation id: names one request on one connection.
pub type CorrelationId = i32;

/// A fatal connection error: where, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("connection to {broker}: {kind}")]
pub struct ConnectionError {
    /// The broker's label, as given in [`Config::broker`](super::Config::broker).
    pub broker: Arc<str>,
    /// Why the connection failed.
    pub kind: ConnectionErrorKind,
}

impl ConnectionError {
    /// Whether the broker (or the transport) caused it, rather than this side.
    #[must_use]
    pub fn is_remote(&self) -> bool {
        !matches!(self.kind, ConnectionErrorKind::ClosedLocally)
    }
}

/// Why a connection failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionErrorKind {
    /// The caller closed the connection.
    #[error("closed by the client")]
    ClosedLocally,
    /// The peer closed the stream (between frames or, if `mid_frame`, inside one).
    #[error("closed by the broker{}", if *.mid_frame { " in the middle of a frame" } else { "" })]
    ClosedByPeer {
        /// Whether part of a frame had arrived.
        mid_frame: bool,
    },
    /// The transport failed (reported by the runtime adapter).
    #[error("transport error: {0}")]
    Transport(TransportError),
    /// The byte stream cannot be split into frames.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A response header could not be decoded.
    #[error("undecodable response header: {0}")]
    ResponseHeader(DecodeError),
    /// A response answers a request other than the oldest one awaiting an answer.
    #[error("response correlation id {got} does not match the oldest request awaiting one ({})",
        .expected.map_or_else(|| "none".to_owned(), |e| e.to_string()))]
    CorrelationMismatch {
        /// The id the FIFO expected, `None` if nothing was awaiting a response.
        expected: Option<CorrelationId>,
        /// The id that arrived.
        got: CorrelationId,
    },
    /// ApiVersions failed: an error code other than the one version fallback handles.
    #[error("ApiVersions v{version} failed with {error:?}")]
    ApiVersions {
        /// The ApiVersions version sent.
        version: i16,
        /// The broker's error code.
        error: ErrorCode,
    },
    /// ApiVersions could not be decoded.
    #[error("undecodable ApiVersions v{version} response: {source}")]
    ApiVersionsDecode {
        /// The ApiVersions version sent.
        version: i16,
        /// The decode failure.
        source: DecodeError,
    },
    /// The broker rejected ApiVersions at a version whose fallback would not go lower.
    #[error("ApiVersions fallback from v{from} would not lower the version; refusing to loop")]
    VersionFallbackLoop {
        /// The version the broker rejected.
        from: i16,
    },
    /// The broker does not support the SASL handshake or authenticate versions needed.
    #[error("broker does not support SASL (needs SaslHandshake v1 and SaslAuthenticate)")]
    SaslUnsupported,
    /// The broker refused the mechanism; it offers these.
    #[error("broker refused SASL mechanism {mechanism} ({error:?}); it offers {enabled:?}")]
    SaslMechanism {
        /// The mechanism asked for.
        mechanism: &'static str,
        /// The broker's error code.
        error: ErrorCode,
        /// The mechanisms the broker offers.
        enabled: Vec<String>,
    },
    /// SaslAuthenticate returned an error.
    #[error("SASL authentication failed ({error:?}): {message}")]
    SaslAuthentication {
        /// The broker's error code.
        error: ErrorCode,
        /// The broker's error message.
        message: String,
    },
    /// The client side of the SASL exchange failed.
    #[error("SASL: {0}")]
    Sasl(#[from] SaslError),
    /// A connection-setup request (ApiVersions, SaslHandshake, SaslAuthenticate)
    /// timed out, could not be encoded, or its answer could not be decoded.
    #[error("{api:?} v{version} during connection setup: {kind}")]
    Handshake {
        /// The API.
        api: ApiKey,
        /// The version used.
        version: i16,
        /// What failed.
        kind: HandshakeErrorKind,
    },
}

/// What failed in a connection-setup request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeErrorKind {
    /// No answer within the request timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The request could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(EncodeError),
    /// The answer could not be decoded.
    #[error("cannot decode the answer: {0}")]
    Decode(DecodeError),
}

/// A transport failure reported by the runtime adapter: the I/O error's kind, so a
/// caller can tell a refused connection from a reset, and its text.
///
/// ```
/// use kafka_sansio::connection::TransportError;
/// let e = TransportError::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer"));
/// assert_eq!(e.kind, std::io::ErrorKind::ConnectionReset);
/// assert_eq!(e.to_string(), "reset by peer");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if tls.is_some() { "TLS: " } else { "" })]
pub struct TransportError {
    /// The I/O error kind (`Other` when the adapter gave only text; `InvalidData`
    /// for TLS failures).
    pub kind: std::io::ErrorKind,
    /// Set when TLS failed: what about it.
    pub tls: Option<TlsFailure>,
    /// The error's text.
    pub message: String,
}

impl TransportError {
    /// A transport error of `kind` with `message`.
    #[must_use]
    pub fn new(kind: std::io::ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            tls: None,
            message: message.into(),
        }
    }

    /// A TLS failure.
    #[must_use]
    pub fn tls(failure: TlsFailure, message: impl Into<String>) -> Self {
        Self {
            kind: std::io::ErrorKind::InvalidData,
            tls: Some(failure),
            message: message.into(),
        }
    }
}

/// Why TLS failed, as far as a caller can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The broker's certificate is not signed by a trusted CA.
    UnknownIssuer,
    /// The certificate is not valid for the host name connected to.
    HostnameMismatch,
    /// The certificate has expired or is not valid yet.
    Expired,
    /// The certificate is malformed or unusable.
    BadCertificate,
    /// The host name cannot be used for TLS (SNI).
    InvalidServerName,
    /// The broker refused the handshake (for example, it wanted a client certificate).
    Rejected,
    /// Any other TLS protocol failure.
    Protocol,
}

impl From<std::io::Error> for TransportError {
    fn from(e: std::io::Error) -> Self {
        Self::new(e.kind(), e.to_string())
    }
}

impl From<&std::io::Error> for TransportError {
    fn from(e: &std::io::Error) -> Self {
        Self::new(e.kind(), e.to_string())
    }
}

impl From<&str> for TransportError {
    fn from(message: &str) -> Self {
        Self::new(std::io::ErrorKind::Other, message)
    }
}

impl From<String> for TransportError {
    fn from(message: String) -> Self {
        Self::new(std::io::ErrorKind::Other, message)
    }
}

/// Where a request error happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The request's API.
    pub api_key: ApiKey,
    /// The version it was (or would have been) sent at, if one was chosen.
    pub api_version: Option<i16>,
    /// Its correlation id.
    pub correlation_id: CorrelationId,
    /// The broker's label.
    pub broker: Arc<str>,
}

impl std::fmt::Display for RequestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.api_key)?;
        if let Some(v) = self.api_version {
            write!(f, " v{v}")?;
        }
        write!(
            f,
            ", correlation id {}, broker {}",
            self.correlation_id, self.broker
        )
    }
}

/// One request ended without a response.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{context}: {kind}")]
pub struct RequestError {
    /// Which request, where.
    pub context: RequestContext,
    /// Why it ended.
    pub kind: RequestErrorKind,
}

/// Why a request ended without a response.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestErrorKind {
    /// No response within the request's timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The broker does not offer this API at all.
    #[error("the broker does not support this API")]
    UnsupportedApi,
    /// The broker's versions and ours do not overlap.
    #[error("no common version: we support {ours}, the broker {theirs}")]
    NoCommonVersion {
        /// Versions this client can encode (after any caller cap).
        ours: VersionRange,
        /// Versions the broker offers.
        theirs: VersionRange,
    },
    /// The request could not be encoded at the chosen version.
    #[error("cannot encode: {0}")]
    Encode(EncodeError),
    /// The connection failed before the response arrived.
    #[error("{0}")]
    Connection(ConnectionError),
}

/// Misuse of a [`Connection`](super::Connection) by the caller; the connection is
/// unchanged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The connection has failed or was closed; it takes no more requests.
    #[error("the connection is closed: {0}")]
    Closed(ConnectionError),
    /// [`Config::max_queued`](super::Config::max_queued) requests already wait to be
    /// written; try again once some have been sent.
    #[error("{limit} requests already wait to be written")]
    QueueFull {
        /// The configured limit.
        limit: usize,
    },
}

/// A response could not be turned into the type asked for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The response answers a different API than the type asked for.
    #[error("response is for {actual:?}, not {expected:?} ({context})")]
    WrongApi {
        /// The API of the type asked for.
        expected: ApiKey,
        /// The API the response answers.
        actual: ApiKey,
        /// Which request.
        context: RequestContext,
    },
    /// The body does not decode at the version it was requested at.
    #[error("cannot decode response ({context}): {source}")]
    Decode {
        /// Which request.
        context: RequestContext,
        /// The decode failure.
        source: DecodeError,
    },
}
