//! What can end a client operation, as values.

use std::sync::Arc;
use std::time::Duration;

use crate::connection::{ConnectionError, RequestError, ResponseError, UsageError};
use crate::messages::{ApiKey, ErrorCode};

/// Why a client operation failed.
///
/// As with the connection, the variants keep apart what the caller asked for that
/// cannot be done ([`InvalidArgument`](Self::InvalidArgument),
/// [`UnknownTopic`](Self::UnknownTopic), ...), what a broker answered
/// ([`Broker`](Self::Broker)), and what the network did
/// ([`Connection`](Self::Connection), [`Request`](Self::Request)). Retriable failures
/// are retried inside the client until the operation's deadline; the error an
/// operation ends with is the last one seen, wrapped in [`Timeout`](Self::Timeout) if
/// the deadline ended the retries.
///
/// ```
/// use kafka_sansio::client::ClientError;
/// use kafka_sansio::messages::{ApiKey, ErrorCode};
///
/// let e = ClientError::broker(ApiKey::CreateTopics, ErrorCode::TOPIC_ALREADY_EXISTS, None);
/// assert_eq!(e.error_code(), Some(ErrorCode::TOPIC_ALREADY_EXISTS));
/// assert!(!e.is_retriable());
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A broker answered with a Kafka error code.
    #[error("{api:?}: {code}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        /// The request's API.
        api: ApiKey,
        /// The broker's error code.
        code: ErrorCode,
        /// The broker's error message, if it sent one.
        message: Option<String>,
    },
    /// The operation's deadline passed before it could finish; `last_error` is what
    /// the last attempt ran into, if anything.
    #[error("{operation} did not finish within {timeout:?}{}",
        last_error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    Timeout {
        /// The operation.
        operation: &'static str,
        /// Its timeout.
        timeout: Duration,
        /// The last retriable failure before the deadline.
        last_error: Option<Box<ClientError>>,
    },
    /// The topic does not exist (after a fresh metadata refresh).
    #[error("unknown topic {0}")]
    UnknownTopic(Arc<str>),
    /// The topic exists but has no such partition.
    #[error("topic {topic} has no partition {partition} ({count} partitions)")]
    UnknownPartition {
        /// The topic.
        topic: Arc<str>,
        /// The partition asked for.
        partition: i32,
        /// How many partitions the topic has.
        count: usize,
    },
    /// A broker connection failed while the request was outstanding.
    #[error(transparent)]
    Connection(ConnectionError),
    /// A request ended without a response (timed out, unsupported by the broker, ...).
    #[error(transparent)]
    Request(RequestError),
    /// A response could not be decoded.
    #[error(transparent)]
    Response(ResponseError),
    /// A response decoded but does not answer what was asked (a partition missing
    /// from it, a leader that is not among the brokers, ...).
    #[error("invalid {api:?} response: {detail}")]
    InvalidResponse {
        /// The API.
        api: ApiKey,
        /// What is wrong with it.
        detail: String,
    },
    /// No broker could be reached to bootstrap from.
    #[error("no broker reachable: {0}")]
    NoBrokers(String),
    /// The records could not be encoded into a batch.
    #[error("cannot encode records: {0}")]
    Records(String),
    /// The call asked for something that cannot be done (an empty topic name, a
    /// negative partition count, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The broker lacks an API or version the operation needs.
    #[error("the broker does not support {0:?} at a version this client can use")]
    Unsupported(ApiKey),
    /// The client was closed before the operation finished.
    #[error("the client is closed")]
    Closed,
    /// A consumer group member's application did not poll for
    /// [`max_poll_interval`](crate::client::ConsumerConfig::max_poll_interval)
    /// while records waited for it: the member left the group (its partitions were
    /// lost, to be consumed by the other members from their committed offsets)
    /// and joins again when the application polls, which is when this error is
    /// reported.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::ClientError;
    /// let e = ClientError::PollIntervalExceeded { max_poll_interval: Duration::from_secs(300) };
    /// assert!(e.to_string().contains("300s"));
    /// assert!(!e.is_retriable());
    /// ```
    #[error(
        "the application did not poll within max_poll_interval ({max_poll_interval:?}) while records waited: the member left its group and joins again"
    )]
    PollIntervalExceeded {
        /// The configured interval.
        max_poll_interval: Duration,
    },
    /// A connection refused more work (its queue is full); retried internally.
    #[error(transparent)]
    Usage(UsageError),
    /// The producer refused a record (buffer full past the wait, record too large).
    #[error(transparent)]
    Send(crate::client::SendError),
    /// A transactional producer's call or record could not go on.
    #[error(transparent)]
    Transaction(TransactionError),
}

impl ClientError {
    /// A broker error code, with the broker's message if any.
    ///
    /// ```
    /// use kafka_sansio::client::ClientError;
    /// use kafka_sansio::messages::{ApiKey, ErrorCode};
    /// let e = ClientError::broker(ApiKey::Produce, ErrorCode::NOT_LEADER_OR_FOLLOWER, Some("moved".into()));
    /// assert!(e.to_string().contains("moved"));
    /// ```
    #[must_use]
    pub fn broker(api: ApiKey, code: ErrorCode, message: Option<String>) -> Self {
        Self::Broker { api, code, message }
    }

    /// The Kafka error code behind this error, if a broker sent one (looking through
    /// [`Timeout`](Self::Timeout) to its last error).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::ClientError;
    /// use kafka_sansio::messages::{ApiKey, ErrorCode};
    /// let last = ClientError::broker(ApiKey::Fetch, ErrorCode::LEADER_NOT_AVAILABLE, None);
    /// let e = ClientError::Timeout { operation: "Fetch", timeout: Duration::from_secs(5), last_error: Some(Box::new(last)) };
    /// assert_eq!(e.error_code(), Some(ErrorCode::LEADER_NOT_AVAILABLE)); // seen through the timeout
    /// assert_eq!(ClientError::Closed.error_code(), None);
    /// ```
    #[must_use]
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Broker { code, .. } => Some(*code),
            Self::Timeout {
                last_error: Some(e),
                ..
            } => e.error_code(),
            _ => None,
        }
    }

    /// Whether retrying the same call later could succeed: a retriable Kafka error
    /// code, a lost connection, a request timeout.
    ///
    /// ```
    /// use kafka_sansio::client::ClientError;
    /// use kafka_sansio::messages::{ApiKey, ErrorCode};
    /// assert!(ClientError::broker(ApiKey::Produce, ErrorCode::NOT_LEADER_OR_FOLLOWER, None).is_retriable());
    /// assert!(!ClientError::broker(ApiKey::Produce, ErrorCode::TOPIC_AUTHORIZATION_FAILED, None).is_retriable());
    /// assert!(!ClientError::Closed.is_retriable());
    /// ```
    #[must_use]
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Broker { code, .. } => code.is_retriable(),
            Self::Request(e) => match &e.kind {
                crate::connection::RequestErrorKind::Timeout(_) => true,
                crate::connection::RequestErrorKind::Connection(c) => connection_is_retriable(c),
                _ => false,
            },
            Self::Connection(c) => connection_is_retriable(c),
            Self::NoBrokers(_) | Self::Usage(_) => true,
            Self::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// A lost connection is worth retrying; one refused for its credentials or its TLS
/// certificate is not (Java's client fails those at once too).
fn connection_is_retriable(e: &crate::connection::ConnectionError) -> bool {
    use crate::connection::{ConnectionErrorKind as K, TlsFailure as T};
    match &e.kind {
        K::SaslAuthentication { .. }
        | K::SaslMechanism { .. }
        | K::SaslUnsupported
        | K::Sasl(_) => false,
        K::Transport(t) => !matches!(
            t.tls,
            Some(
                T::UnknownIssuer
                    | T::HostnameMismatch
                    | T::Expired
                    | T::BadCertificate
                    | T::InvalidServerName
                    | T::Rejected
            )
        ),
        _ => true,
    }
}

/// Why a transactional producer's call, or a record sent in a transaction, could
/// not go on. What the application should do is in the variant: call again later,
/// abort the transaction, or drop the producer.
///
/// ```
/// use kafka_sansio::client::{ClientError, TransactionError};
/// let e = TransactionError::State { operation: "commit_transaction", state: "no transaction is open" };
/// assert_eq!(e.to_string(), "commit_transaction: no transaction is open");
/// let fenced = TransactionError::Fatal(Box::new(ClientError::Closed));
/// assert!(fenced.to_string().contains("cannot go on"));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TransactionError {
    /// The producer has no
    /// [`transactional_id`](crate::client::ProducerConfig::transactional_id).
    #[error("the producer has no transactional_id")]
    NotTransactional,
    /// The call does not fit the transaction's state (a send before
    /// `begin_transaction`, a commit while none is open, ...).
    #[error("{operation}: {state}")]
    State {
        /// The call.
        operation: &'static str,
        /// What stood in its way.
        state: &'static str,
    },
    /// The record was not sent: its transaction was aborted.
    #[error("the transaction was aborted before the record was sent")]
    Aborted,
    /// Something in the open transaction failed (a record, an offset commit, a
    /// partition the coordinator refused): it can only be aborted, after which
    /// the producer goes on with a new transaction.
    #[error("the transaction must be aborted: {0}")]
    Abortable(Box<ClientError>),
    /// The producer cannot go on (another instance with its transactional id
    /// fenced it, or the id is not authorized): close it; a new one may start.
    #[error("the transactional producer cannot go on: {0}")]
    Fatal(Box<ClientError>),
}
