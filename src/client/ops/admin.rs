//! Admin operations and the client's own lookups (metadata, coordinators).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};

use crate::client::metadata::{Metadata, TopicMetadata};
use crate::client::op::{
    Built, CoordinatorKind, Ctx, Operation, Refresh, Reply, Step, Target, Versions, all, decode,
    version,
};
use crate::client::ops::partition::partition_step;
use crate::client::{Client, ClientError, OpId, OpOutput};
use crate::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, ErrorCode, FindCoordinatorRequest,
    IncrementalAlterConfigsRequest, ListGroupsRequest, MetadataRequest, MetadataResponse,
    create_partitions_request, create_topics_request, delete_records_request,
    delete_topics_request, describe_configs_request, incremental_alter_configs_request,
    metadata_request,
};
use crate::wire::{ByteString, Message};

fn text(s: &Option<ByteString>) -> Option<String> {
    s.as_ref().map(|m| m.to_string()).filter(|m| !m.is_empty())
}

fn ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

fn missing(api: ApiKey, what: &str) -> Step {
    Step::Fail(ClientError::InvalidResponse {
        api,
        detail: format!("no result for {what}"),
    })
}

/// A Metadata request at version `v` for `topics` (`None`: all topics).
fn metadata_request(topics: Option<&[Arc<str>]>, v: i16, auto_create: bool) -> MetadataRequest {
    MetadataRequest {
        topics: topics.map(|ts| {
            ts.iter()
                .map(|t| metadata_request::MetadataRequestTopic {
                    name: Some((&**t).into()),
                    ..Default::default()
                })
                .collect()
        }),
        // the field exists from v4; before, brokers auto-create as configured
        allow_auto_topic_creation: if v >= 4 { auto_create } else { true },
        ..Default::default()
    }
}

fn metadata_version(versions: &Versions) -> Result<i16, ClientError> {
    version(versions, ApiKey::Metadata)
        .filter(|v| *v >= 1) // v0 cannot ask for "no topics"
        .ok_or(ClientError::Unsupported(ApiKey::Metadata))
}

fn decode_metadata(reply: &Reply) -> Result<MetadataResponse, Step> {
    let response = decode::<MetadataRequest>(reply).map_err(Step::Fail)?;
    let code = ErrorCode(response.error_code);
    if !code.is_ok() {
        return Err(Step::from_code(
            ApiKey::Metadata,
            code,
            None,
            Refresh::Nothing,
        ));
    }
    Ok(response)
}

/// The client's metadata refresh.
pub(crate) struct MetadataRefresh {
    topics: Option<Vec<Arc<str>>>,
    auto_create: bool,
}

impl MetadataRefresh {
    pub(crate) fn new(topics: Option<Vec<Arc<str>>>, auto_create: bool) -> Self {
        Self {
            topics,
            auto_create,
        }
    }
}

impl Operation for MetadataRefresh {
    fn name(&self) -> &'static str {
        "Metadata"
    }

    fn build(
        &mut self,
        _items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        let v = metadata_version(versions)?;
        Ok(Built::new(
            metadata_request(self.topics.as_deref(), v, self.auto_create),
            v,
        ))
    }

    fn on_reply(&mut self, items: &[usize], reply: Reply, ctx: &mut Ctx<'_>) -> Vec<(usize, Step)> {
        match decode_metadata(&reply) {
            Ok(response) => {
                let report = ctx
                    .metadata
                    .apply(&response, self.topics.as_deref(), ctx.now);
                if report != Default::default() {
                    tracing::debug!(?report, "metadata applied");
                }
                all(items, || Step::Done)
            }
            Err(step) => {
                let mut step = Some(step);
                items
                    .iter()
                    .map(|i| (*i, step.take().unwrap_or(Step::Done)))
                    .collect()
            }
        }
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        match failed.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(OpOutput::Topics(Vec::new())),
        }
    }
}

/// The client's coordinator lookup.
pub(crate) struct FindCoordinator {
    kind: CoordinatorKind,
    key: Arc<str>,
}

impl FindCoordinator {
    pub(crate) fn new(kind: CoordinatorKind, key: Arc<str>) -> Self {
        Self { kind, key }
    }
}

impl Operation for FindCoordinator {
    fn name(&self) -> &'static str {
        "FindCoordinator"
    }

    fn build(
        &mut self,
        _items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        let v = version(versions, ApiKey::FindCoordinator)
            .ok_or(ClientError::Unsupported(ApiKey::FindCoordinator))?;
        let key_type = match self.kind {
            CoordinatorKind::Group => 0,
            CoordinatorKind::Transaction => 1,
        };
        if v == 0 && key_type != 0 {
            return Err(ClientError::Unsupported(ApiKey::FindCoordinator));
        }
        let request = FindCoordinatorRequest {
            key: if v <= 3 {
                (&*self.key).into()
            } else {
                ByteString::new()
            },
            key_type,
            coordinator_keys: if v >= 4 {
                vec![(&*self.key).into()]
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        Ok(Built::new(request, v))
    }

    fn on_reply(&mut self, items: &[usize], reply: Reply, ctx: &mut Ctx<'_>) -> Vec<(usize, Step)> {
        let response = match decode::<FindCoordinatorRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        let (code, message, node) = match response.coordinators.iter().find(|c| *c.key == *self.key)
        {
            Some(c) => (ErrorCode(c.error_code), text(&c.error_message), c.node_id),
            None if response.coordinators.is_empty() => (
                ErrorCode(response.error_code),
                text(&response.error_message),
                response.node_id,
            ),
            None => return all(items, || missing(ApiKey::FindCoordinator, &self.key)),
        };
        if code.is_ok() {
            ctx.coordinator = Some(node);
            return all(items, || Step::Done);
        }
        all(items, || {
            Step::from_code(
                ApiKey::FindCoordinator,
                code,
                message.clone(),
                Refresh::Nothing,
            )
        })
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        match failed.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(OpOutput::Topics(Vec::new())),
        }
    }
}

/// List topics or describe the cluster: one Metadata request, its answer also
/// refreshing the cache.
struct MetadataQuery {
    /// `None`: every topic; `Some([])`: only brokers (DescribeCluster).
    topics: Option<Vec<Arc<str>>>,
    output: Option<OpOutput>,
}

impl Operation for MetadataQuery {
    fn name(&self) -> &'static str {
        match &self.topics {
            None => "ListTopics",
            Some(t) if t.is_empty() => "DescribeCluster",
            Some(_) => "DescribeTopics",
        }
    }

    fn build(
        &mut self,
        _items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        let v = metadata_version(versions)?;
        Ok(Built::new(
            metadata_request(self.topics.as_deref(), v, false),
            v,
        ))
    }

    fn on_reply(&mut self, items: &[usize], reply: Reply, ctx: &mut Ctx<'_>) -> Vec<(usize, Step)> {
        match decode_metadata(&reply) {
            Ok(response) => {
                let asked = self.topics.as_deref();
                ctx.metadata.apply(&response, asked, ctx.now);
                // What a cache makes of this answer alone: validated brokers and leaders.
                let mut m = Metadata::default();
                m.apply(&response, asked, ctx.now);
                self.output = Some(match &self.topics {
                    Some(t) if t.is_empty() => OpOutput::Cluster(m.cluster()),
                    _ => OpOutput::Topics(m.topics().cloned().collect::<Vec<TopicMetadata>>()),
                });
                all(items, || Step::Done)
            }
            Err(step) => {
                let mut step = Some(step);
                items
                    .iter()
                    .map(|i| (*i, step.take().unwrap_or(Step::Done)))
                    .collect()
            }
        }
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        if let Some((_, e)) = failed.into_iter().next() {
            return Err(e);
        }
        self.output.ok_or(ClientError::Closed)
    }
}

/// A topic to create.
///
/// ```
/// use kafka_sansio::client::NewTopic;
/// let t = NewTopic::new("orders", 6, 3).config("retention.ms", "86400000");
/// assert_eq!(t.configs.len(), 1);
/// let defaults = NewTopic::new("events", -1, -1); // the broker's defaults (Kafka 2.4+)
/// assert_eq!(defaults.partitions, -1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// The topic's name.
    pub name: String,
    /// Partitions, `-1` for the broker's default.
    pub partitions: i32,
    /// Replication factor, `-1` for the broker's default.
    pub replication_factor: i16,
    /// Topic configs (`retention.ms`, `cleanup.policy`, ...).
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with this layout and no configs.
    ///
    /// ```
    /// use kafka_sansio::client::NewTopic;
    /// let t = NewTopic::new("orders", 6, 3);
    /// assert_eq!((t.partitions, t.replication_factor), (6, 3));
    /// ```
    #[must_use]
    pub fn new(name: impl Into<String>, partitions: i32, replication_factor: i16) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication_factor,
            configs: Vec::new(),
        }
    }

    /// Adds a topic config.
    ///
    /// ```
    /// use kafka_sansio::client::NewTopic;
    /// let t = NewTopic::new("orders", 6, 3).config("cleanup.policy", "compact").config("min.insync.replicas", "2");
    /// assert_eq!(t.configs[0], ("cleanup.policy".to_string(), "compact".to_string()));
    /// ```
    #[must_use]
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// The result for one topic of a topic admin call.
///
/// ```
/// # #[cfg(feature = "sim")] {
/// # let (mut sim, host) = kafka_sansio::doc_support::sim();
/// use std::time::Duration;
/// use kafka_sansio::client::{NewTopic, OpOutput};
/// use kafka_sansio::messages::ErrorCode;
/// let now = sim.now();
/// let topics = vec![NewTopic::new("payments", 1, 1), NewTopic::new("orders", 1, 1)];
/// let op = sim.client(host).create_topics(now, topics, Duration::from_secs(5));
/// let OpOutput::TopicResults(results) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
/// assert_eq!(results[0].name, "payments");
/// assert!(results[0].result.is_ok());
/// assert_eq!(results[1].result.as_ref().unwrap_err().error_code(), Some(ErrorCode::TOPIC_ALREADY_EXISTS));
/// # }
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TopicResult {
    /// The topic.
    pub name: String,
    /// Whether it worked; `TOPIC_ALREADY_EXISTS` and the like come back as
    /// [`ClientError::Broker`].
    pub result: Result<(), ClientError>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TopicAdmin {
    Create,
    Delete,
    AddPartitions,
}

/// CreateTopics, DeleteTopics and CreatePartitions: one item per topic, to the
/// controller; NOT_CONTROLLER retries after a metadata refresh.
struct TopicOp {
    kind: TopicAdmin,
    topics: Vec<NewTopic>,
    timeout: Duration,
    validate_only: bool,
    results: Vec<Option<Result<(), ClientError>>>,
}

impl TopicOp {
    fn api(&self) -> ApiKey {
        match self.kind {
            TopicAdmin::Create => ApiKey::CreateTopics,
            TopicAdmin::Delete => ApiKey::DeleteTopics,
            TopicAdmin::AddPartitions => ApiKey::CreatePartitions,
        }
    }

    fn step(
        &mut self,
        item: usize,
        code: ErrorCode,
        message: Option<String>,
        ctx: &mut Ctx<'_>,
    ) -> Step {
        if code.is_ok() {
            ctx.metadata.invalidate_topic(&self.topics[item].name);
            self.results[item] = Some(Ok(()));
            return Step::Done;
        }
        // The controller knows which topics exist: deleting or growing one it does
        // not know is a final answer (as in Java's admin client), not a reason to
        // retry until the deadline.
        if code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION && self.kind != TopicAdmin::Create {
            self.results[item] = Some(Err(ClientError::broker(self.api(), code, message)));
            return Step::Done;
        }
        let refresh = if code == ErrorCode::NOT_CONTROLLER {
            Refresh::Metadata
        } else {
            Refresh::Nothing
        };
        match Step::from_code(self.api(), code, message, refresh) {
            Step::Fail(e) => {
                self.results[item] = Some(Err(e));
                Step::Done
            }
            s => s,
        }
    }
}

impl Operation for TopicOp {
    fn name(&self) -> &'static str {
        match self.kind {
            TopicAdmin::Create => "CreateTopics",
            TopicAdmin::Delete => "DeleteTopics",
            TopicAdmin::AddPartitions => "CreatePartitions",
        }
    }

    fn build(
        &mut self,
        items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        let api = self.api();
        let v = version(versions, api).ok_or(ClientError::Unsupported(api))?;
        let timeout_ms = ms(self.timeout);
        let chosen = || items.iter().map(|i| &self.topics[*i]);
        let built = match self.kind {
            TopicAdmin::Create => Built::new(
                CreateTopicsRequest {
                    topics: chosen()
                        .map(|t| create_topics_request::CreatableTopic {
                            name: t.name.as_str().into(),
                            num_partitions: t.partitions,
                            replication_factor: t.replication_factor,
                            configs: t
                                .configs
                                .iter()
                                .map(|(k, v)| create_topics_request::CreatableTopicConfig {
                                    name: k.as_str().into(),
                                    value: Some(v.as_str().into()),
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    timeout_ms,
                    validate_only: self.validate_only && v >= 1,
                    ..Default::default()
                },
                v,
            ),
            TopicAdmin::Delete => Built::new(
                DeleteTopicsRequest {
                    topics: if v >= 6 {
                        chosen()
                            .map(|t| delete_topics_request::DeleteTopicState {
                                name: Some(t.name.as_str().into()),
                                ..Default::default()
                            })
                            .collect()
                    } else {
                        Vec::new()
                    },
                    topic_names: if v < 6 {
                        chosen().map(|t| t.name.as_str().into()).collect()
                    } else {
                        Vec::new()
                    },
                    timeout_ms,
                    ..Default::default()
                },
                v,
            ),
            TopicAdmin::AddPartitions => Built::new(
                CreatePartitionsRequest {
                    topics: chosen()
                        .map(|t| create_partitions_request::CreatePartitionsTopic {
                            name: t.name.as_str().into(),
                            count: t.partitions,
                            assignments: None,
                            ..Default::default()
                        })
                        .collect(),
                    timeout_ms,
                    validate_only: self.validate_only,
                    ..Default::default()
                },
                v,
            ),
        };
        Ok(built.hold(self.timeout))
    }

    fn on_reply(&mut self, items: &[usize], reply: Reply, ctx: &mut Ctx<'_>) -> Vec<(usize, Step)> {
        let api = self.api();
        let answers: Result<Vec<(String, i16, Option<String>)>, ClientError> = match self.kind {
            TopicAdmin::Create => decode::<CreateTopicsRequest>(&reply).map(|r| {
                r.topics
                    .iter()
                    .map(|t| (t.name.to_string(), t.error_code, text(&t.error_message)))
                    .collect()
            }),
            TopicAdmin::Delete => decode::<DeleteTopicsRequest>(&reply).map(|r| {
                r.responses
                    .iter()
                    .map(|t| {
                        let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
                        (name, t.error_code, text(&t.error_message))
                    })
                    .collect()
            }),
            TopicAdmin::AddPartitions => decode::<CreatePartitionsRequest>(&reply).map(|r| {
                r.results
                    .iter()
                    .map(|t| (t.name.to_string(), t.error_code, text(&t.error_message)))
                    .collect()
            }),
        };
        let answers = match answers {
            Ok(a) => a,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        items
            .iter()
            .map(|&i| {
                let name = self.topics[i].name.clone();
                let step = match answers.iter().find(|(n, _, _)| *n == name) {
                    Some((_, code, message)) => {
                        self.step(i, ErrorCode(*code), message.clone(), ctx)
                    }
                    None => missing(api, &name),
                };
                (i, step)
            })
            .collect()
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        let mut results = self.results;
        for (i, e) in failed {
            results[i] = Some(Err(e));
        }
        Ok(OpOutput::TopicResults(
            self.topics
                .into_iter()
                .zip(results)
                .map(|(t, r)| TopicResult {
                    name: t.name,
                    result: r.unwrap_or(Err(ClientError::Closed)),
                })
                .collect(),
        ))
    }
}

/// What a config belongs to.
///
/// ```
/// use kafka_sansio::client::{ConfigResource, ConfigResourceType};
/// let group = ConfigResource { kind: ConfigResourceType::Group, name: "billing".into() };
/// assert_eq!(ConfigResource::topic("orders").kind, ConfigResourceType::Topic);
/// # let _ = group;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigResourceType {
    /// A topic.
    Topic,
    /// A broker (by node id in the resource name; empty for the cluster default).
    Broker,
    /// A broker's loggers.
    BrokerLogger,
    /// A consumer group (Kafka 3.8+).
    Group,
}

impl ConfigResourceType {
    fn wire(self) -> i8 {
        match self {
            Self::Topic => 2,
            Self::Broker => 4,
            Self::BrokerLogger => 8,
            Self::Group => 32,
        }
    }
}

/// A topic, broker or group whose configs to read or change.
///
/// ```
/// use kafka_sansio::client::{ConfigResource, ConfigResourceType};
/// let topic = ConfigResource::topic("orders");
/// assert_eq!(topic.kind, ConfigResourceType::Topic);
/// let broker = ConfigResource::broker(1);
/// assert_eq!(broker.name, "1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigResource {
    /// The kind of resource.
    pub kind: ConfigResourceType,
    /// Its name (a topic name, a broker id as text, a group id).
    pub name: String,
}

impl ConfigResource {
    /// A topic's configs.
    ///
    /// ```
    /// use kafka_sansio::client::ConfigResource;
    /// assert_eq!(ConfigResource::topic("orders").name, "orders");
    /// ```
    #[must_use]
    pub fn topic(name: impl Into<String>) -> Self {
        Self {
            kind: ConfigResourceType::Topic,
            name: name.into(),
        }
    }

    /// A broker's configs.
    ///
    /// ```
    /// use kafka_sansio::client::{ConfigResource, ConfigResourceType};
    /// let b = ConfigResource::broker(2); // sent to broker 2 itself
    /// assert_eq!((b.kind, b.name.as_str()), (ConfigResourceType::Broker, "2"));
    /// ```
    #[must_use]
    pub fn broker(id: i32) -> Self {
        Self {
            kind: ConfigResourceType::Broker,
            name: id.to_string(),
        }
    }

    /// Broker resources go to that broker; the rest to any broker.
    fn target(&self) -> Target {
        match self.kind {
            ConfigResourceType::Broker | ConfigResourceType::BrokerLogger => {
                match self.name.parse() {
                    Ok(id) => Target::Broker(id),
                    Err(_) => Target::Any,
                }
            }
            _ => Target::Any,
        }
    }
}

/// Where a config value comes from.
///
/// ```
/// use kafka_sansio::client::{ConfigEntry, ConfigSource};
/// let entry = ConfigEntry { name: "retention.ms".into(), value: Some("3600000".into()), read_only: false, sensitive: false, source: ConfigSource::DynamicTopic };
/// assert!(!entry.is_default()); // set on the topic
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (or group).
    DynamicTopic,
    /// Set dynamically on this broker.
    DynamicBroker,
    /// Set dynamically as the cluster-wide broker default.
    DynamicDefaultBroker,
    /// The broker's static configuration file.
    StaticBroker,
    /// Kafka's default.
    Default,
    /// A dynamic broker logger setting.
    DynamicBrokerLogger,
    /// Unknown, or not reported.
    Unknown,
}

impl ConfigSource {
    fn from_wire(v: i8) -> Self {
        match v {
            1 => Self::DynamicTopic,
            2 => Self::DynamicBroker,
            3 => Self::DynamicDefaultBroker,
            4 => Self::StaticBroker,
            5 => Self::Default,
            6 => Self::DynamicBrokerLogger,
            _ => Self::Unknown,
        }
    }
}

/// One config of a resource.
///
/// ```
/// use kafka_sansio::client::{ConfigEntry, ConfigSource};
/// let entry = ConfigEntry { name: "cleanup.policy".into(), value: Some("delete".into()), read_only: false, sensitive: false, source: ConfigSource::Default };
/// if !entry.sensitive {
///     println!("{} = {}", entry.name, entry.value.as_deref().unwrap_or("(unset)"));
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The config's name.
    pub name: String,
    /// Its value (`None` when sensitive or unset).
    pub value: Option<String>,
    /// Whether it cannot be changed.
    pub read_only: bool,
    /// Whether it is secret (its value is then hidden).
    pub sensitive: bool,
    /// Where the value comes from.
    pub source: ConfigSource,
}

impl ConfigEntry {
    /// Whether the value is Kafka's default.
    ///
    /// ```
    /// use kafka_sansio::client::{ConfigEntry, ConfigSource};
    /// let entry = ConfigEntry { name: "cleanup.policy".into(), value: Some("delete".into()), read_only: false, sensitive: false, source: ConfigSource::Default };
    /// assert!(entry.is_default());
    /// ```
    #[must_use]
    pub fn is_default(&self) -> bool {
        self.source == ConfigSource::Default
    }
}

/// A change to one config, for [`Client::alter_configs`] (IncrementalAlterConfigs).
///
/// ```
/// use kafka_sansio::client::{AlterConfigOp, Client, ClientConfig, ConfigResource};
/// # #[allow(clippy::disallowed_methods)]
/// let now = std::time::Instant::now();
/// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
/// let changes = vec![(ConfigResource::topic("orders"), vec![
///     AlterConfigOp::Set("retention.ms".into(), "3600000".into()),
///     AlterConfigOp::Delete("segment.bytes".into()), // back to the default
///     AlterConfigOp::Append("leader.replication.throttled.replicas".into(), "0:1".into()),
/// ])];
/// let op = client.alter_configs(now, changes);
/// # let _ = op;
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    /// Sets the config.
    Set(String, String),
    /// Removes it (back to the default).
    Delete(String),
    /// Appends to a list config.
    Append(String, String),
    /// Removes a value from a list config.
    Subtract(String, String),
}

struct DescribeConfigs {
    resources: Vec<ConfigResource>,
    results: Vec<Option<Result<Vec<ConfigEntry>, ClientError>>>,
}

impl Operation for DescribeConfigs {
    fn name(&self) -> &'static str {
        "DescribeConfigs"
    }

    fn build(
        &mut self,
        items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        let v = version(versions, ApiKey::DescribeConfigs)
            .ok_or(ClientError::Unsupported(ApiKey::DescribeConfigs))?;
        let request = DescribeConfigsRequest {
            resources: items
                .iter()
                .map(|i| {
                    let r = &self.resources[*i];
                    describe_configs_request::DescribeConfigsResource {
                        resource_type: r.kind.wire(),
                        resource_name: r.name.as_str().into(),
                        configuration_keys: None,
                        ..Default::default()
                    }
                })
                .collect(),
            ..Default::default()
        };
        Ok(Built::new(request, v))
    }

    fn on_reply(
        &mut self,
        items: &[usize],
        reply: Reply,
        _ctx: &mut Ctx<'_>,
    ) -> Vec<(usize, Step)> {
        let response = match decode::<DescribeConfigsRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        let version = match &reply {
            Reply::Response(r) => r.api_version(),
            Reply::Sent => 0,
        };
        items
            .iter()
            .map(|&i| {
                let res = &self.resources[i];
                let found = response
                    .results
                    .iter()
                    .find(|r| r.resource_type == res.kind.wire() && *r.resource_name == *res.name);
                let Some(r) = found else {
                    return (i, missing(ApiKey::DescribeConfigs, &res.name));
                };
                let code = ErrorCode(r.error_code);
                if !code.is_ok() {
                    return match Step::from_code(
                        ApiKey::DescribeConfigs,
                        code,
                        text(&r.error_message),
                        Refresh::Nothing,
                    ) {
                        Step::Fail(e) => {
                            self.results[i] = Some(Err(e));
                            (i, Step::Done)
                        }
                        s => (i, s),
                    };
                }
                let entries = r
                    .configs
                    .iter()
                    .map(|c| ConfigEntry {
                        name: c.name.to_string(),
                        value: c.value.as_ref().map(|v| v.to_string()),
                        read_only: c.read_only,
                        sensitive: c.is_sensitive,
                        source: if version == 0 {
                            if c.is_default {
                                ConfigSource::Default
                            } else {
                                ConfigSource::Unknown
                            }
                        } else {
                            ConfigSource::from_wire(c.config_source)
                        },
                    })
                    .collect();
                self.results[i] = Some(Ok(entries));
                (i, Step::Done)
            })
            .collect()
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        let mut results = self.results;
        for (i, e) in failed {
            results[i] = Some(Err(e));
        }
        Ok(OpOutput::Configs(
            self.resources
                .into_iter()
                .zip(results)
                .map(|(r, x)| (r, x.unwrap_or(Err(ClientError::Closed))))
                .collect(),
        ))
    }
}

struct AlterConfigs {
    changes: Vec<(ConfigResource, Vec<AlterConfigOp>)>,
    validate_only: bool,
    results: Vec<Option<Result<(), ClientError>>>,
}

impl Operation for AlterConfigs {
    fn name(&self) -> &'static str {
        "IncrementalAlterConfigs"
    }

    fn build(
        &mut self,
        items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        let api = ApiKey::IncrementalAlterConfigs;
        let v = version(versions, api).ok_or(ClientError::Unsupported(api))?;
        let request = IncrementalAlterConfigsRequest {
            resources: items
                .iter()
                .map(|i| {
                    let (r, ops) = &self.changes[*i];
                    incremental_alter_configs_request::AlterConfigsResource {
                        resource_type: r.kind.wire(),
                        resource_name: r.name.as_str().into(),
                        configs: ops
                            .iter()
                            .map(|op| {
                                let (name, operation, value) = match op {
                                    AlterConfigOp::Set(k, v) => (k, 0, Some(v)),
                                    AlterConfigOp::Delete(k) => (k, 1, None),
                                    AlterConfigOp::Append(k, v) => (k, 2, Some(v)),
                                    AlterConfigOp::Subtract(k, v) => (k, 3, Some(v)),
                                };
                                incremental_alter_configs_request::AlterableConfig {
                                    name: name.as_str().into(),
                                    config_operation: operation,
                                    value: value.map(|v| v.as_str().into()),
                                    ..Default::default()
                                }
                            })
                            .collect(),
                        ..Default::default()
                    }
                })
                .collect(),
            validate_only: self.validate_only,
            ..Default::default()
        };
        Ok(Built::new(request, v))
    }

    fn on_reply(
        &mut self,
        items: &[usize],
        reply: Reply,
        _ctx: &mut Ctx<'_>,
    ) -> Vec<(usize, Step)> {
        let response = match decode::<IncrementalAlterConfigsRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        items
            .iter()
            .map(|&i| {
                let res = &self.changes[i].0;
                let found = response
                    .responses
                    .iter()
                    .find(|r| r.resource_type == res.kind.wire() && *r.resource_name == *res.name);
                let Some(r) = found else {
                    return (i, missing(ApiKey::IncrementalAlterConfigs, &res.name));
                };
                let code = ErrorCode(r.error_code);
                match Step::from_code(
                    ApiKey::IncrementalAlterConfigs,
                    code,
                    text(&r.error_message),
                    Refresh::Nothing,
                ) {
                    Step::Done => {
                        self.results[i] = Some(Ok(()));
                        (i, Step::Done)
                    }
                    Step::Fail(e) => {
                        self.results[i] = Some(Err(e));
                        (i, Step::Done)
                    }
                    s => (i, s),
                }
            })
            .collect()
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        let mut results = self.results;
        for (i, e) in failed {
            results[i] = Some(Err(e));
        }
        Ok(OpOutput::ConfigsAltered(
            self.changes
                .into_iter()
                .zip(results)
                .map(|((r, _), x)| (r, x.unwrap_or(Err(ClientError::Closed))))
                .collect(),
        ))
    }
}

/// The result of deleting one partition's records.
///
/// ```
/// # #[cfg(feature = "sim")] {
/// # let (mut sim, host) = kafka_sansio::doc_support::sim();
/// use std::time::Duration;
/// use kafka_sansio::client::OpOutput;
/// let now = sim.now();
/// let op = sim.client(host).delete_records(now, vec![("orders".into(), 1, 0)], Duration::from_secs(5));
/// let OpOutput::RecordsDeleted(results) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
/// assert_eq!((results[0].topic.as_str(), results[0].partition), ("orders", 1));
/// assert_eq!(results[0].low_watermark, Ok(0));
/// # }
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteRecordsResult {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The new log start offset, or why it failed.
    pub low_watermark: Result<i64, ClientError>,
}

struct DeleteRecords {
    partitions: Vec<(Arc<str>, i32, i64)>,
    timeout: Duration,
    results: Vec<Option<Result<i64, ClientError>>>,
}

impl Operation for DeleteRecords {
    fn name(&self) -> &'static str {
        "DeleteRecords"
    }

    fn build(
        &mut self,
        items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        let v = version(versions, ApiKey::DeleteRecords)
            .ok_or(ClientError::Unsupported(ApiKey::DeleteRecords))?;
        let mut topics: Vec<delete_records_request::DeleteRecordsTopic> = Vec::new();
        for &i in items {
            let (topic, partition, offset) = &self.partitions[i];
            let p = delete_records_request::DeleteRecordsPartition {
                partition_index: *partition,
                offset: *offset,
                ..Default::default()
            };
            match topics.iter_mut().find(|t| *t.name == **topic) {
                Some(t) => t.partitions.push(p),
                None => topics.push(delete_records_request::DeleteRecordsTopic {
                    name: (&**topic).into(),
                    partitions: vec![p],
                    ..Default::default()
                }),
            }
        }
        let request = DeleteRecordsRequest {
            topics,
            timeout_ms: ms(self.timeout),
            ..Default::default()
        };
        Ok(Built::new(request, v).hold(self.timeout))
    }

    fn on_reply(
        &mut self,
        items: &[usize],
        reply: Reply,
        _ctx: &mut Ctx<'_>,
    ) -> Vec<(usize, Step)> {
        let response = match decode::<DeleteRecordsRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        items
            .iter()
            .map(|&i| {
                let (topic, partition, _) = &self.partitions[i];
                let found = response
                    .topics
                    .iter()
                    .filter(|t| *t.name == **topic)
                    .flat_map(|t| t.partitions.iter())
                    .find(|p| p.partition_index == *partition);
                let Some(p) = found else {
                    return (
                        i,
                        missing(ApiKey::DeleteRecords, &format!("{topic}-{partition}")),
                    );
                };
                let code = ErrorCode(p.error_code);
                match partition_step(ApiKey::DeleteRecords, code, topic, *partition) {
                    Step::Done => {
                        self.results[i] = Some(Ok(p.low_watermark));
                        (i, Step::Done)
                    }
                    Step::Fail(e) => {
                        self.results[i] = Some(Err(e));
                        (i, Step::Done)
                    }
                    s => (i, s),
                }
            })
            .collect()
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        let mut results = self.results;
        for (i, e) in failed {
            results[i] = Some(Err(e));
        }
        Ok(OpOutput::RecordsDeleted(
            self.partitions
                .into_iter()
                .zip(results)
                .map(|((topic, partition, _), r)| DeleteRecordsResult {
                    topic: topic.to_string(),
                    partition,
                    low_watermark: r.unwrap_or(Err(ClientError::Closed)),
                })
                .collect(),
        ))
    }
}

/// A group as ListGroups reports it.
///
/// ```
/// use kafka_sansio::client::{GroupListing, OpOutput};
/// fn consumer_groups(output: OpOutput) -> Vec<GroupListing> {
///     match output {
///         OpOutput::Groups(groups) => groups.into_iter().filter(|g| g.protocol_type == "consumer").collect(),
///         _ => Vec::new(),
///     }
/// }
/// assert!(consumer_groups(OpOutput::Groups(Vec::new())).is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// `consumer` for consumer groups, empty for groups that only commit offsets.
    pub protocol_type: String,
    /// Its state (`Stable`, `Empty`, ...), from brokers that report it (ListGroups v4+).
    pub state: Option<String>,
    /// Its type (`classic`, `consumer`, ...), from brokers that report it (v5+).
    pub group_type: Option<String>,
    /// The coordinator that reported it.
    pub coordinator: i32,
}

struct ListGroups {
    groups: Vec<GroupListing>,
    /// The brokers the metadata answer listed: item `i + 1` asks `brokers[i]`.
    brokers: Vec<i32>,
}

impl Operation for ListGroups {
    fn name(&self) -> &'static str {
        "ListGroups"
    }

    fn build(
        &mut self,
        items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        if items.contains(&0) {
            // The first item learns the brokers; one item per broker follows.
            let v = metadata_version(versions)?;
            return Ok(Built::new(metadata_request(Some(&[]), v, false), v));
        }
        let v = version(versions, ApiKey::ListGroups)
            .ok_or(ClientError::Unsupported(ApiKey::ListGroups))?;
        Ok(Built::new(ListGroupsRequest::default(), v))
    }

    fn on_reply(&mut self, items: &[usize], reply: Reply, ctx: &mut Ctx<'_>) -> Vec<(usize, Step)> {
        if items.contains(&0) {
            return match decode_metadata(&reply) {
                Ok(response) => {
                    ctx.metadata.apply(&response, Some(&[]), ctx.now);
                    let mut ids: Vec<i32> = response.brokers.iter().map(|b| b.node_id).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    self.brokers.extend(&ids);
                    ctx.spawn.extend(ids.into_iter().map(Target::Broker));
                    all(items, || Step::Done)
                }
                Err(step) => {
                    let mut step = Some(step);
                    items
                        .iter()
                        .map(|i| (*i, step.take().unwrap_or(Step::Done)))
                        .collect()
                }
            };
        }
        let coordinator = match &reply {
            Reply::Response(r) => r
                .context
                .broker
                .split('@')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(-1),
            Reply::Sent => -1,
        };
        let response = match decode::<ListGroupsRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        let code = ErrorCode(response.error_code);
        if !code.is_ok() {
            return all(items, || {
                Step::from_code(ApiKey::ListGroups, code, None, Refresh::Nothing)
            });
        }
        for g in &response.groups {
            let opt = |s: &ByteString| (!s.is_empty()).then(|| s.to_string());
            self.groups.push(GroupListing {
                group_id: g.group_id.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: opt(&g.group_state),
                group_type: opt(&g.group_type),
                coordinator,
            });
        }
        all(items, || Step::Done)
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        if let Some((i, e)) = failed.into_iter().next() {
            // A listed broker that left the cluster before it was asked resolves as
            // "no broker n": not the caller's invalid argument, but an incomplete
            // listing that listing again completes.
            return Err(match (e, self.brokers.get(i.wrapping_sub(1))) {
                (ClientError::InvalidArgument(_), Some(n)) => ClientError::NoBrokers(format!(
                    "broker {n} left the cluster while its groups were listed"
                )),
                (e, _) => e,
            });
        }
        let mut groups = self.groups;
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        groups.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(OpOutput::Groups(groups))
    }
}

/// One member of a described group.
///
/// ```
/// use kafka_sansio::client::GroupDescription;
/// fn owners(group: &GroupDescription, topic: &str) -> Vec<(String, Vec<i32>)> {
///     group.members.iter()
///         .flat_map(|m| m.assignment.iter().filter(|(t, _)| t == topic).map(|(_, p)| (m.member_id.clone(), p.clone())))
///         .collect()
/// }
/// # let _ = owners;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its static instance id (KIP-345), if any.
    pub group_instance_id: Option<String>,
    /// Its client id.
    pub client_id: String,
    /// Its host as the coordinator saw it.
    pub client_host: String,
    /// The topics it subscribed to (decoded for `consumer` groups).
    pub subscription: Vec<String>,
    /// The partitions assigned to it, by topic (decoded for `consumer` groups).
    pub assignment: Vec<(String, Vec<i32>)>,
    /// The raw member metadata.
    pub metadata: Bytes,
    /// The raw assignment.
    pub raw_assignment: Bytes,
}

/// A group as DescribeGroups reports it.
///
/// ```
/// use kafka_sansio::client::{ClientError, GroupDescription};
/// fn stable(described: Vec<Result<GroupDescription, ClientError>>) -> Vec<String> {
///     described.into_iter().flatten().filter(|g| g.state == "Stable").map(|g| g.group_id).collect()
/// }
/// assert!(stable(Vec::new()).is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// Its state (`Stable`, `PreparingRebalance`, `Empty`, `Dead`, ...).
    pub state: String,
    /// `consumer` for consumer groups.
    pub protocol_type: String,
    /// The assignor chosen (`range`, `cooperative-sticky`, ...).
    pub protocol: String,
    /// Its members.
    pub members: Vec<GroupMember>,
}

/// Decodes a versioned consumer-protocol blob (an i16 version, then the body).
fn consumer_protocol<M: Message>(bytes: &Bytes, max: i16) -> Option<M> {
    let mut b = bytes.clone();
    if b.remaining() < 2 {
        return None;
    }
    let v = b.get_i16();
    M::decode(&mut b, v.clamp(0, max)).ok()
}

struct DescribeGroups {
    groups: Vec<Arc<str>>,
    results: Vec<Option<Result<GroupDescription, ClientError>>>,
}

impl Operation for DescribeGroups {
    fn name(&self) -> &'static str {
        "DescribeGroups"
    }

    fn build(
        &mut self,
        items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        let v = version(versions, ApiKey::DescribeGroups)
            .ok_or(ClientError::Unsupported(ApiKey::DescribeGroups))?;
        let request = DescribeGroupsRequest {
            groups: items.iter().map(|i| (&*self.groups[*i]).into()).collect(),
            ..Default::default()
        };
        Ok(Built::new(request, v))
    }

    fn on_reply(
        &mut self,
        items: &[usize],
        reply: Reply,
        _ctx: &mut Ctx<'_>,
    ) -> Vec<(usize, Step)> {
        let response = match decode::<DescribeGroupsRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        items
            .iter()
            .map(|&i| {
                let id = self.groups[i].clone();
                let Some(g) = response.groups.iter().find(|g| *g.group_id == *id) else {
                    return (i, missing(ApiKey::DescribeGroups, &id));
                };
                let code = ErrorCode(g.error_code);
                if !code.is_ok() {
                    let step = coordinator_step(
                        ApiKey::DescribeGroups,
                        code,
                        text(&g.error_message),
                        CoordinatorKind::Group,
                        &id,
                    );
                    return match step {
                        Step::Fail(e) => {
                            self.results[i] = Some(Err(e));
                            (i, Step::Done)
                        }
                        s => (i, s),
                    };
                }
                let consumer = &*g.protocol_type == "consumer";
                let members = g
                    .members
                    .iter()
                    .map(|m| {
                        let sub = consumer
                            .then(|| {
                                consumer_protocol::<ConsumerProtocolSubscription>(
                                    &m.member_metadata,
                                    3,
                                )
                            })
                            .flatten();
                        let asg = consumer
                            .then(|| {
                                consumer_protocol::<ConsumerProtocolAssignment>(
                                    &m.member_assignment,
                                    3,
                                )
                            })
                            .flatten();
                        GroupMember {
                            member_id: m.member_id.to_string(),
                            group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                            client_id: m.client_id.to_string(),
                            client_host: m.client_host.to_string(),
                            subscription: sub
                                .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
                                .unwrap_or_default(),
                            assignment: asg
                                .map(|a| {
                                    a.assigned_partitions
                                        .iter()
                                        .map(|t| {
                                            (
                                                t.topic.to_string(),
                                                t.partitions.iter().copied().collect(),
                                            )
                                        })
                                        .collect()
                                })
                                .unwrap_or_default(),
                            metadata: m.member_metadata.clone(),
                            raw_assignment: m.member_assignment.clone(),
                        }
                    })
                    .collect();
                self.results[i] = Some(Ok(GroupDescription {
                    group_id: id.to_string(),
                    state: g.group_state.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    protocol: g.protocol_data.to_string(),
                    members,
                }));
                (i, Step::Done)
            })
            .collect()
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        let mut results = self.results;
        for (i, e) in failed {
            results[i] = Some(Err(e));
        }
        Ok(OpOutput::GroupDescriptions(
            results
                .into_iter()
                .map(|r| r.unwrap_or(Err(ClientError::Closed)))
                .collect(),
        ))
    }
}

/// Retry (after a new coordinator lookup) or fail for a group error code.
pub(crate) fn coordinator_step(
    api: ApiKey,
    code: ErrorCode,
    message: Option<String>,
    kind: CoordinatorKind,
    key: &Arc<str>,
) -> Step {
    let refresh = match code {
        ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => Refresh::Coordinator {
            kind,
            key: key.clone(),
        },
        _ => Refresh::Nothing,
    };
    Step::from_code(api, code, message, refresh)
}

struct DeleteGroups {
    groups: Vec<Arc<str>>,
    results: Vec<Option<Result<(), ClientError>>>,
}

impl Operation for DeleteGroups {
    fn name(&self) -> &'static str {
        "DeleteGroups"
    }

    fn build(
        &mut self,
        items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        let v = version(versions, ApiKey::DeleteGroups)
            .ok_or(ClientError::Unsupported(ApiKey::DeleteGroups))?;
        let request = DeleteGroupsRequest {
            groups_names: items.iter().map(|i| (&*self.groups[*i]).into()).collect(),
            ..Default::default()
        };
        Ok(Built::new(request, v))
    }

    fn on_reply(
        &mut self,
        items: &[usize],
        reply: Reply,
        _ctx: &mut Ctx<'_>,
    ) -> Vec<(usize, Step)> {
        let response = match decode::<DeleteGroupsRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        items
            .iter()
            .map(|&i| {
                let id = self.groups[i].clone();
                let Some(g) = response.results.iter().find(|g| *g.group_id == *id) else {
                    return (i, missing(ApiKey::DeleteGroups, &id));
                };
                match coordinator_step(
                    ApiKey::DeleteGroups,
                    ErrorCode(g.error_code),
                    None,
                    CoordinatorKind::Group,
                    &id,
                ) {
                    Step::Done => {
                        self.results[i] = Some(Ok(()));
                        (i, Step::Done)
                    }
                    Step::Fail(e) => {
                        self.results[i] = Some(Err(e));
                        (i, Step::Done)
                    }
                    s => (i, s),
                }
            })
            .collect()
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        let mut results = self.results;
        for (i, e) in failed {
            results[i] = Some(Err(e));
        }
        Ok(OpOutput::GroupsDeleted(
            self.groups
                .into_iter()
                .zip(results)
                .map(|(g, r)| (g.to_string(), r.unwrap_or(Err(ClientError::Closed))))
                .collect(),
        ))
    }
}

impl Client {
    /// Lists every topic of the cluster (Metadata for all topics), internal ones
    /// included.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::OpOutput;
    /// let now = sim.now();
    /// let op = sim.client(host).list_topics(now);
    /// let OpOutput::Topics(topics) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
    /// assert!(topics.iter().any(|t| &*t.name == "orders"));
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn list_topics(&mut self, now: Instant) -> OpId {
        let op = MetadataQuery {
            topics: None,
            output: None,
        };
        self.start_op(now, Box::new(op), vec![Target::Any], None)
    }

    /// Describes these topics (Metadata for them): the ones that exist come back,
    /// in name order; a missing topic is simply absent.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::OpOutput;
    /// let now = sim.now();
    /// let op = sim.client(host).describe_topics(now, vec!["orders".into(), "missing".into()]);
    /// let OpOutput::Topics(topics) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
    /// assert_eq!(topics.len(), 1); // missing topics are left out
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn describe_topics(&mut self, now: Instant, topics: Vec<String>) -> OpId {
        let op = MetadataQuery {
            topics: Some(topics.into_iter().map(Arc::from).collect()),
            output: None,
        };
        self.start_op(now, Box::new(op), vec![Target::Any], None)
    }

    /// Describes the cluster: its id, controller and brokers.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::OpOutput;
    /// let now = sim.now();
    /// let op = sim.client(host).describe_cluster(now);
    /// let OpOutput::Cluster(cluster) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
    /// assert_eq!(cluster.brokers.len(), 3);
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn describe_cluster(&mut self, now: Instant) -> OpId {
        let op = MetadataQuery {
            topics: Some(Vec::new()),
            output: None,
        };
        self.start_op(now, Box::new(op), vec![Target::Any], None)
    }

    /// Creates topics (CreateTopics, sent to the controller); `timeout` is how long
    /// the controller may take. Each topic gets its own result: an existing topic
    /// is `Err` with `TOPIC_ALREADY_EXISTS`.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{NewTopic, OpOutput};
    /// let now = sim.now();
    /// let op = sim.client(host).create_topics(now, vec![NewTopic::new("payments", 6, 3)], Duration::from_secs(5));
    /// let OpOutput::TopicResults(results) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
    /// assert!(results[0].result.is_ok());
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn create_topics(
        &mut self,
        now: Instant,
        topics: Vec<NewTopic>,
        timeout: Duration,
    ) -> OpId {
        self.topic_op(now, TopicAdmin::Create, topics, timeout, false)
    }

    /// Checks that topics could be created, without creating them.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{NewTopic, OpOutput};
    /// let now = sim.now();
    /// let op = sim.client(host).validate_create_topics(now, vec![NewTopic::new("payments", 6, 3)], Duration::from_secs(5));
    /// let OpOutput::TopicResults(results) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
    /// assert!(results[0].result.is_ok()); // it would work...
    /// let now = sim.now();
    /// let op = sim.client(host).describe_topics(now, vec!["payments".into()]);
    /// let OpOutput::Topics(found) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
    /// assert!(found.is_empty()); // ...but nothing was created
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn validate_create_topics(
        &mut self,
        now: Instant,
        topics: Vec<NewTopic>,
        timeout: Duration,
    ) -> OpId {
        self.topic_op(now, TopicAdmin::Create, topics, timeout, true)
    }

    /// Deletes topics (DeleteTopics, sent to the controller).
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::OpOutput;
    /// let now = sim.now();
    /// let op = sim.client(host).delete_topics(now, vec!["orders".into()], Duration::from_secs(5));
    /// let OpOutput::TopicResults(results) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
    /// assert!(results[0].result.is_ok());
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn delete_topics(&mut self, now: Instant, topics: Vec<String>, timeout: Duration) -> OpId {
        let topics = topics.into_iter().map(|t| NewTopic::new(t, 0, 0)).collect();
        self.topic_op(now, TopicAdmin::Delete, topics, timeout, false)
    }

    /// Grows topics to `total` partitions each (CreatePartitions).
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::OpOutput;
    /// let now = sim.now();
    /// // "orders" grows from 3 to 5 partitions.
    /// let op = sim.client(host).create_partitions(now, vec![("orders".into(), 5)], Duration::from_secs(5));
    /// let OpOutput::TopicResults(results) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
    /// assert!(results[0].result.is_ok());
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn create_partitions(
        &mut self,
        now: Instant,
        topics: Vec<(String, i32)>,
        timeout: Duration,
    ) -> OpId {
        let topics = topics
            .into_iter()
            .map(|(t, n)| NewTopic::new(t, n, 0))
            .collect();
        self.topic_op(now, TopicAdmin::AddPartitions, topics, timeout, false)
    }

    fn topic_op(
        &mut self,
        now: Instant,
        kind: TopicAdmin,
        topics: Vec<NewTopic>,
        timeout: Duration,
        validate_only: bool,
    ) -> OpId {
        let n = topics.len();
        let op = TopicOp {
            kind,
            topics,
            timeout,
            validate_only,
            results: vec![None; n],
        };
        self.start_op(now, Box::new(op), vec![Target::Controller; n], None)
    }

    /// Reads the configs of topics, brokers or groups (DescribeConfigs; broker
    /// resources go to that broker).
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{ClientError, ConfigResource, OpOutput};
    /// use kafka_sansio::messages::ApiKey;
    /// let now = sim.now();
    /// let op = sim.client(host).describe_configs(now, vec![ConfigResource::topic("orders")]);
    /// let result = sim.run_until_done(host, op, Duration::from_secs(10));
    /// let Ok(OpOutput::Configs(configs)) = result else { panic!("{result:?}") };
    /// for (resource, entries) in configs {
    ///     match entries {
    ///         Ok(entries) => {
    ///             assert!(entries.iter().any(|e| e.name == "cleanup.policy"));
    ///             entries.iter().for_each(|e| println!("{} {} = {:?}", resource.name, e.name, e.value));
    ///         }
    ///         // A broker without DescribeConfigs says so for each resource.
    ///         Err(e) => assert_eq!(e, ClientError::Unsupported(ApiKey::DescribeConfigs)),
    ///     }
    /// }
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn describe_configs(&mut self, now: Instant, resources: Vec<ConfigResource>) -> OpId {
        let targets = resources.iter().map(ConfigResource::target).collect();
        let n = resources.len();
        let op = DescribeConfigs {
            resources,
            results: vec![None; n],
        };
        self.start_op(now, Box::new(op), targets, None)
    }

    /// Changes configs incrementally (IncrementalAlterConfigs): set, delete, append
    /// or subtract single configs, leaving the others as they are.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{AlterConfigOp, ClientError, ConfigResource, OpOutput};
    /// use kafka_sansio::messages::ApiKey;
    /// let now = sim.now();
    /// let set = AlterConfigOp::Set("retention.ms".into(), "3600000".into());
    /// let op = sim.client(host).alter_configs(now, vec![(ConfigResource::topic("orders"), vec![set])]);
    /// let Ok(OpOutput::ConfigsAltered(results)) = sim.run_until_done(host, op, Duration::from_secs(10)) else { panic!() };
    /// for (resource, result) in results {
    ///     match result {
    ///         Ok(()) => println!("{} changed", resource.name),
    ///         // The simulated cluster has no IncrementalAlterConfigs: each resource says so.
    ///         Err(e) => assert_eq!(e, ClientError::Unsupported(ApiKey::IncrementalAlterConfigs)),
    ///     }
    /// }
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn alter_configs(
        &mut self,
        now: Instant,
        changes: Vec<(ConfigResource, Vec<AlterConfigOp>)>,
    ) -> OpId {
        let targets = changes.iter().map(|(r, _)| r.target()).collect();
        let n = changes.len();
        let op = AlterConfigs {
            changes,
            validate_only: false,
            results: vec![None; n],
        };
        self.start_op(now, Box::new(op), targets, None)
    }

    /// Deletes records before the given offsets (`-1`: the high watermark), each
    /// partition at its leader.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{OpOutput, Record};
    /// let now = sim.now();
    /// let op = sim.client(host).produce(now, "orders", 0, vec![Record::new("a"), Record::new("b")], Default::default());
    /// sim.run_until_done(host, op, Duration::from_secs(10))?;
    /// // Everything before offset 1 of orders-0 goes.
    /// let now = sim.now();
    /// let op = sim.client(host).delete_records(now, vec![("orders".into(), 0, 1)], Duration::from_secs(5));
    /// let OpOutput::RecordsDeleted(results) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
    /// assert_eq!(results[0].low_watermark, Ok(1));
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn delete_records(
        &mut self,
        now: Instant,
        partitions: Vec<(String, i32, i64)>,
        timeout: Duration,
    ) -> OpId {
        let partitions: Vec<(Arc<str>, i32, i64)> = partitions
            .into_iter()
            .map(|(t, p, o)| (Arc::from(t), p, o))
            .collect();
        let targets = partitions
            .iter()
            .map(|(t, p, _)| Target::Leader {
                topic: t.clone(),
                partition: *p,
            })
            .collect();
        let n = partitions.len();
        let op = DeleteRecords {
            partitions,
            timeout,
            results: vec![None; n],
        };
        self.start_op(now, Box::new(op), targets, None)
    }

    /// Lists the groups of every broker.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{ClientError, OpOutput};
    /// let now = sim.now();
    /// let op = sim.client(host).list_groups(now);
    /// match sim.run_until_done(host, op, Duration::from_secs(10)) {
    ///     Ok(OpOutput::Groups(groups)) => groups.iter().for_each(|g| println!("{}", g.group_id)),
    ///     Err(ClientError::Unsupported(_)) => {} // the simulated cluster has no ListGroups
    ///     other => panic!("{other:?}"),
    /// }
    /// # }
    /// ```
    pub fn list_groups(&mut self, now: Instant) -> OpId {
        let op = ListGroups {
            groups: Vec::new(),
            brokers: Vec::new(),
        };
        self.start_op(now, Box::new(op), vec![Target::Any], None)
    }

    /// Describes groups, each at its coordinator.
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, Event, OpOutput};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// let op = client.describe_groups(now, vec!["billing".into()]);
    /// // ... drive the client (see [`Client`]) until the operation's event comes:
    /// let handle = |event: Event| {
    ///     if let Event::Done { op: o, result: Ok(OpOutput::GroupDescriptions(groups)) } = event {
    ///         assert_eq!(o, op);
    ///         for g in groups.into_iter().flatten() {
    ///             println!("{}: {} with {} members", g.group_id, g.state, g.members.len());
    ///         }
    ///     }
    /// };
    /// # let _ = handle;
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn describe_groups(&mut self, now: Instant, groups: Vec<String>) -> OpId {
        let groups: Vec<Arc<str>> = groups.into_iter().map(Arc::from).collect();
        let targets = groups
            .iter()
            .map(|g| Target::Coordinator {
                kind: CoordinatorKind::Group,
                key: g.clone(),
            })
            .collect();
        let n = groups.len();
        let op = DescribeGroups {
            groups,
            results: vec![None; n],
        };
        self.start_op(now, Box::new(op), targets, None)
    }

    /// Deletes groups (they must be empty), each at its coordinator.
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, Event, OpOutput};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// let op = client.delete_groups(now, vec!["old-billing".into()]);
    /// // ... drive the client (see [`Client`]) until the operation's event comes:
    /// let handle = |event: Event| {
    ///     if let Event::Done { op: o, result: Ok(OpOutput::GroupsDeleted(results)) } = event {
    ///         assert_eq!(o, op);
    ///         for (group, result) in results {
    ///             println!("{group}: {result:?}"); // NON_EMPTY_GROUP if members remain
    ///         }
    ///     }
    /// };
    /// # let _ = handle;
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn delete_groups(&mut self, now: Instant, groups: Vec<String>) -> OpId {
        let groups: Vec<Arc<str>> = groups.into_iter().map(Arc::from).collect();
        let targets = groups
            .iter()
            .map(|g| Target::Coordinator {
                kind: CoordinatorKind::Group,
                key: g.clone(),
            })
            .collect();
        let n = groups.len();
        let op = DeleteGroups {
            groups,
            results: vec![None; n],
        };
        self.start_op(now, Box::new(op), targets, None)
    }
}
