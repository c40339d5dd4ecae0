//! How an operation tells the client what to send where, and what a reply means.
//!
//! An operation is a set of *items* (a topic to create, a partition to list offsets
//! of, a group to describe), each with a [`Target`]: a broker, the controller, a
//! partition's leader, a coordinator or any broker. The client resolves every ready
//! item's target, groups the items bound for the same broker into one request (built
//! by the operation with that broker's versions), and hands the reply back to the
//! operation, which says for each item whether it is done, should be retried (and
//! what to refresh first), or failed. A retried item is resolved afresh, so a
//! partition whose leader moved is sent to the new leader, alone or grouped with
//! others. This is the "sharded request" shape of franz-go's client, as plain state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::{AnyRequest, Response};
use crate::messages::ApiKey;
use crate::wire::VersionRange;

use super::metadata::Metadata;
use super::{ClientError, OpOutput};

/// The versions a broker offers, by API key.
pub(crate) type Versions = BTreeMap<i16, VersionRange>;

/// The highest version of `api` both this crate and the broker support.
pub(crate) fn version(versions: &Versions, api: ApiKey) -> Option<i16> {
    let theirs = versions.get(&(api as i16))?;
    api.valid_versions().intersect(theirs).map(|r| r.max)
}

/// Which coordinator a request needs.
///
/// ```
/// use kafka_sansio::client::CoordinatorKind;
/// // Group requests (OffsetCommit, JoinGroup, ...) go to the group's coordinator.
/// assert_ne!(CoordinatorKind::Group, CoordinatorKind::Transaction);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CoordinatorKind {
    /// A consumer group's coordinator.
    Group,
    /// A transactional producer's coordinator.
    Transaction,
}

/// Where an item's request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Any broker (an open connection if there is one).
    Any,
    /// This broker.
    Broker(i32),
    /// The controller.
    Controller,
    /// The leader of a partition.
    Leader { topic: Arc<str>, partition: i32 },
    /// A group or transaction coordinator.
    Coordinator {
        kind: CoordinatorKind,
        key: Arc<str>,
    },
}

/// Which connection to a broker a request travels on. Kafka answers a connection's
/// requests one at a time, in order, so a Fetch held for its max wait or a JoinGroup
/// held for a rebalance would delay everything behind it; each kind of traffic gets
/// its own connection, as franz-go does.
///
/// ```
/// use kafka_sansio::client::Lane;
/// // A broker gets one connection per lane, so a long-polling Fetch never delays a Produce.
/// let lanes = [Lane::Normal, Lane::Produce, Lane::Fetch, Lane::Group];
/// assert_eq!(lanes.len(), 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// Metadata, admin and offset requests.
    Normal,
    /// Produce requests.
    Produce,
    /// Fetch requests.
    Fetch,
    /// Group membership requests (JoinGroup, SyncGroup, Heartbeat, ...).
    Group,
}

/// What to do when a Leader target names a topic the cluster does not have.
///
/// ```
/// # #[cfg(feature = "sim")] {
/// # let (mut sim, host) = kafka_sansio::doc_support::sim();
/// use std::time::Duration;
/// use kafka_sansio::client::{ClientError, FetchOptions, UnknownTopicHandling};
/// let now = sim.now();
/// let options = FetchOptions::default().unknown_topic(UnknownTopicHandling::Error);
/// let op = sim.client(host).fetch(now, "no-such-topic", 0, 0, options);
/// let result = sim.run_until_done(host, op, Duration::from_secs(10));
/// assert!(matches!(result, Err(ClientError::UnknownTopic(_))));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownTopicHandling {
    /// Fail the operation with [`ClientError::UnknownTopic`] (after a fresh metadata
    /// refresh confirms it).
    #[default]
    Error,
    /// Keep refreshing metadata until the topic appears or the deadline passes.
    Retry,
}

/// A request ready to send.
pub(crate) struct Built {
    pub request: AnyRequest,
    /// Caps the version the connection picks (when the request was filled for it).
    pub max_version: Option<i16>,
    /// How long the broker may legitimately hold the request before answering (a
    /// Fetch's max wait, CreateTopics' timeout): added to the request timeout.
    pub hold: Duration,
    /// The largest response asked for (a Fetch's max bytes), so that the connection
    /// can read it straight into a buffer of its size.
    pub expected_response_bytes: Option<usize>,
}

impl Built {
    pub(crate) fn new<R: crate::messages::Request + Send + 'static>(
        request: R,
        version: i16,
    ) -> Self {
        Self {
            request: AnyRequest::new(request),
            max_version: Some(version),
            hold: Duration::ZERO,
            expected_response_bytes: None,
        }
    }

    pub(crate) fn hold(mut self, hold: Duration) -> Self {
        self.hold = hold;
        self
    }

    pub(crate) fn expect_response_bytes(mut self, bytes: usize) -> Self {
        self.expected_response_bytes = Some(bytes);
        self
    }
}

/// How a request ended.
pub(crate) enum Reply {
    /// The broker answered.
    Response(Response),
    /// The request expects no answer (acks=0 Produce) and was written.
    Sent,
}

/// What to refresh before an item is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refresh {
    Nothing,
    /// The metadata of these topics (or just brokers and the controller).
    Metadata,
    /// A partition's leader is wrong: forget it and refresh.
    Leader {
        topic: Arc<str>,
        partition: i32,
    },
    /// A topic id or the topic itself changed: forget it and refresh.
    Topic(Arc<str>),
    /// The coordinator moved: look it up again.
    Coordinator {
        kind: CoordinatorKind,
        key: Arc<str>,
    },
}

/// What became of one item.
#[derive(Debug)]
pub(crate) enum Step {
    Done,
    Retry {
        error: ClientError,
        refresh: Refresh,
    },
    Fail(ClientError),
}

impl Step {
    /// Retry for a retriable Kafka error code, fail for any other.
    pub(crate) fn from_code(
        api: ApiKey,
        code: crate::messages::ErrorCode,
        message: Option<String>,
        refresh: Refresh,
    ) -> Self {
        if code.is_ok() {
            return Step::Done;
        }
        let error = ClientError::broker(api, code, message);
        if code.is_retriable() {
            Step::Retry { error, refresh }
        } else {
            Step::Fail(error)
        }
    }
}

/// What an operation may read and change while it handles a reply.
pub(crate) struct Ctx<'a> {
    pub metadata: &'a mut Metadata,
    pub now: Instant,
    /// Items to add to the operation (fan-out decided by a reply).
    pub spawn: Vec<Target>,
    /// A coordinator lookup's answer: the coordinator's node id.
    pub coordinator: Option<i32>,
    /// InitProducerId's answer: the producer id and epoch.
    pub producer_id: Option<(i64, i16)>,
}

/// One operation's logic; the client does the routing, retries and deadlines.
pub(crate) trait Operation: Send {
    /// A name for errors and logs ("CreateTopics", ...).
    fn name(&self) -> &'static str;
    /// The connection lane its requests use.
    fn lane(&self) -> Lane {
        Lane::Normal
    }
    /// What to do about unknown topics in Leader targets.
    fn unknown_topic(&self) -> UnknownTopicHandling {
        UnknownTopicHandling::Error
    }
    /// Builds one request for `items`, which all go to the same broker.
    fn build(
        &mut self,
        items: &[usize],
        versions: &Versions,
        metadata: &Metadata,
    ) -> Result<Built, ClientError>;
    /// Handles the reply to the request that carried `items`: one step per item.
    fn on_reply(&mut self, items: &[usize], reply: Reply, ctx: &mut Ctx<'_>) -> Vec<(usize, Step)>;
    /// A membership request's answer, taken before [`finish`](Self::finish) (group
    /// calls only).
    fn take_group_reply(&mut self) -> Option<super::group::call::CallReply> {
        None
    }
    /// Every item has ended (`failed` lists the ones that failed, with why): the result.
    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError>;
}

/// Decodes a reply as the response to `R`, for operations.
pub(crate) fn decode<R: crate::messages::Request>(
    reply: &Reply,
) -> Result<R::Response, ClientError> {
    match reply {
        Reply::Response(r) => r.decode::<R>().map_err(ClientError::Response),
        Reply::Sent => Err(ClientError::InvalidResponse {
            api: R::API_KEY,
            detail: "no response to a request that expects one".into(),
        }),
    }
}

/// Every item in `items` takes the same step (a whole-response error).
pub(crate) fn all(items: &[usize], step: impl Fn() -> Step) -> Vec<(usize, Step)> {
    items.iter().map(|i| (*i, step())).collect()
}
