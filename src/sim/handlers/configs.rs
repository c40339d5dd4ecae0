//! Configs: DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics
//! (`sim/topic_configs.rs`), and a read-only set of broker configs taken from the
//! cluster's configuration.

use super::Call;
use crate::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    ErrorCode, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    alter_configs_response, describe_configs_response as dcs, incremental_alter_configs_response,
};
use crate::sim::topic_configs::{ConfigType, TOPIC_CONFIGS, list_items, topic_config};
use crate::sim::{Cluster, ClusterConfig};
use crate::wire::ByteString;
use std::collections::BTreeMap;

/// Resource types (Kafka's `ConfigResource.Type`).
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// Config sources (DescribeConfigs v1+).
const TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

/// A failed resource: its error and message.
type Failure = (ErrorCode, String);

/// One described config, before it is put in a response.
struct Described {
    name: String,
    value: String,
    source: i8,
    read_only: bool,
    kind: ConfigType,
    /// The broker setting behind a topic config, and its value.
    synonym: Option<(&'static str, String)>,
    doc: &'static str,
}

/// A topic's configs: every one Kafka knows, overridden or default.
fn topic_configs(config: &ClusterConfig, overrides: &BTreeMap<String, String>) -> Vec<Described> {
    TOPIC_CONFIGS
        .iter()
        .map(|d| {
            let default = d.default_value(config);
            let (value, source) = match overrides.get(d.name) {
                Some(v) => (v.clone(), TOPIC_CONFIG),
                None => (default.clone(), DEFAULT_CONFIG),
            };
            Described {
                name: d.name.to_owned(),
                value,
                source,
                read_only: false,
                kind: d.kind,
                synonym: Some((d.synonym, default)),
                doc: d.doc,
            }
        })
        .collect()
}

/// A broker's configs (read-only): what the cluster's configuration says, with
/// Kafka's default beside each to tell the source.
fn broker_configs(cluster: &Cluster, broker: i32) -> Vec<Described> {
    let c = &cluster.config;
    let ms = |d: std::time::Duration| d.as_millis().to_string();
    let port = cluster
        .live_brokers()
        .iter()
        .find(|(b, _)| *b == broker)
        .map_or(-1, |(_, p)| *p);
    let rows: Vec<(&str, String, Option<&str>, ConfigType)> = vec![
        (
            "advertised.listeners",
            format!("PLAINTEXT://{}:{port}", c.host),
            None,
            ConfigType::String,
        ),
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            Some("true"),
            ConfigType::Boolean,
        ),
        ("broker.id", broker.to_string(), None, ConfigType::Int),
        (
            "connections.max.idle.ms",
            ms(c.connections_max_idle),
            Some("600000"),
            ConfigType::Long,
        ),
        (
            "default.replication.factor",
            c.default_replication.to_string(),
            Some("1"),
            ConfigType::Int,
        ),
        (
            "fetch.max.bytes",
            c.fetch_max_bytes.to_string(),
            Some("57671680"),
            ConfigType::Int,
        ),
        (
            "group.consumer.heartbeat.interval.ms",
            ms(c.consumer_group_heartbeat_interval),
            Some("5000"),
            ConfigType::Int,
        ),
        (
            "group.consumer.max.size",
            c.group_max_size.to_string(),
            Some("2147483647"),
            ConfigType::Int,
        ),
        (
            "group.consumer.session.timeout.ms",
            ms(c.consumer_group_session_timeout),
            Some("45000"),
            ConfigType::Int,
        ),
        (
            "group.coordinator.rebalance.protocols",
            "classic,consumer".into(),
            Some("classic,consumer"),
            ConfigType::List,
        ),
        (
            "group.max.session.timeout.ms",
            ms(c.group_max_session_timeout),
            Some("1800000"),
            ConfigType::Int,
        ),
        (
            "group.max.size",
            c.group_max_size.to_string(),
            Some("2147483647"),
            ConfigType::Int,
        ),
        (
            "group.min.session.timeout.ms",
            ms(c.group_min_session_timeout),
            Some("6000"),
            ConfigType::Int,
        ),
        (
            "max.connections",
            c.max_connections.to_string(),
            Some("2147483647"),
            ConfigType::Int,
        ),
        (
            "max.incremental.fetch.session.cache.slots",
            c.max_incremental_fetch_sessions.to_string(),
            Some("1000"),
            ConfigType::Int,
        ),
        (
            "message.max.bytes",
            c.message_max_bytes.to_string(),
            Some("1048588"),
            ConfigType::Int,
        ),
        ("node.id", broker.to_string(), None, ConfigType::Int),
        (
            "num.partitions",
            c.default_partitions.to_string(),
            Some("1"),
            ConfigType::Int,
        ),
        (
            "offsets.topic.num.partitions",
            c.offsets_topic_partitions.to_string(),
            Some("50"),
            ConfigType::Int,
        ),
        (
            "offsets.topic.replication.factor",
            c.offsets_topic_replication.to_string(),
            Some("3"),
            ConfigType::Short,
        ),
        (
            "socket.request.max.bytes",
            c.max_frame_size.to_string(),
            Some("104857600"),
            ConfigType::Int,
        ),
    ];
    rows.into_iter()
        .map(|(name, value, kafka_default, kind)| Described {
            name: name.to_owned(),
            source: if kafka_default == Some(value.as_str()) {
                DEFAULT_CONFIG
            } else {
                STATIC_BROKER_CONFIG
            },
            value,
            read_only: true,
            kind,
            synonym: None,
            doc: "",
        })
        .collect()
}

/// The broker a broker resource names, if it is this one (`Ok(None)`: the
/// cluster-wide default, named "").
fn broker_resource(call: &Call, name: &str) -> Result<Option<i32>, Failure> {
    if name.is_empty() {
        return Ok(None);
    }
    match name.parse::<i32>() {
        Ok(id) if id == call.broker => Ok(Some(id)),
        _ => Err((
            ErrorCode::INVALID_REQUEST,
            format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                call.broker
            ),
        )),
    }
}

pub(super) fn describe_configs(
    call: &mut Call,
    r: &DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let version = call.version;
    let results = r
        .resources
        .iter()
        .map(|res| {
            let found: Result<Vec<Described>, Failure> = call
                .check_injected()
                .map_err(|e| (e, e.message().unwrap_or_default().to_owned()))
                .and_then(|()| match res.resource_type {
                    TOPIC => call
                        .cluster
                        .topics
                        .get(&*res.resource_name)
                        .map(|t| topic_configs(&call.cluster.config, &t.configs))
                        .ok_or_else(|| {
                            (
                                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                                format!("Topic {} does not exist.", res.resource_name),
                            )
                        }),
                    BROKER => Ok(match broker_resource(call, &res.resource_name)? {
                        Some(id) => broker_configs(call.cluster, id),
                        // No dynamic cluster-wide defaults are set.
                        None => Vec::new(),
                    }),
                    other => Err((
                        ErrorCode::INVALID_REQUEST,
                        format!("The simulated cluster has no configs of resource type {other}."),
                    )),
                });
            let mut out = dcs::DescribeConfigsResult {
                resource_type: res.resource_type,
                resource_name: res.resource_name.clone(),
                ..Default::default()
            };
            match found {
                Ok(configs) => {
                    out.error_message = None;
                    out.configs = configs
                        .into_iter()
                        .filter(|c| {
                            res.configuration_keys
                                .as_ref()
                                .is_none_or(|keys| keys.iter().any(|k| **k == *c.name))
                        })
                        .map(|c| described(c, version, r.include_synonyms, r.include_documentation))
                        .collect();
                }
                Err((e, message)) => {
                    out.error_code = e.code();
                    out.error_message = Some(ByteString::from(message));
                }
            }
            out
        })
        .collect();
    DescribeConfigsResponse {
        results,
        ..Default::default()
    }
}

fn described(
    c: Described,
    version: i16,
    synonyms: bool,
    docs: bool,
) -> dcs::DescribeConfigsResourceResult {
    let mut list = Vec::new();
    if synonyms && version >= 1 {
        if c.source == TOPIC_CONFIG {
            list.push(dcs::DescribeConfigsSynonym {
                name: ByteString::from(c.name.clone()),
                value: Some(ByteString::from(c.value.clone())),
                source: TOPIC_CONFIG,
                ..Default::default()
            });
        }
        if let Some((name, value)) = &c.synonym {
            list.push(dcs::DescribeConfigsSynonym {
                name: ByteString::from((*name).to_owned()),
                value: Some(ByteString::from(value.clone())),
                source: DEFAULT_CONFIG,
                ..Default::default()
            });
        }
    }
    // Each field only where its version has it: a value outside its versions does not
    // encode (IsDefault is v0 only; ConfigSource and Synonyms v1+; ConfigType and
    // Documentation v3+).
    let mut result = dcs::DescribeConfigsResourceResult {
        name: ByteString::from(c.name),
        value: Some(ByteString::from(c.value)),
        read_only: c.read_only,
        is_sensitive: false,
        ..Default::default()
    };
    if version == 0 {
        result.is_default = c.source == DEFAULT_CONFIG;
    } else {
        result.config_source = c.source;
        result.synonyms = list;
    }
    if version >= 3 {
        result.config_type = c.kind as i8;
        result.documentation =
            (docs && !c.doc.is_empty()).then(|| ByteString::from(c.doc.to_owned()));
    }
    result
}

/// One change of an IncrementalAlterConfigs (operation 0 set, 1 delete, 2 append,
/// 3 subtract) or an AlterConfigs (a set).
struct Change<'a> {
    name: &'a str,
    op: i8,
    value: Option<&'a str>,
}

/// A topic's overrides after `changes`, or why they cannot be made (nothing is
/// changed then).
fn apply(
    config: &ClusterConfig,
    overrides: &BTreeMap<String, String>,
    changes: &[Change<'_>],
) -> Result<BTreeMap<String, String>, Failure> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = overrides.clone();
    for c in changes {
        if !seen.insert(c.name) {
            return Err((
                ErrorCode::INVALID_REQUEST,
                format!("Error due to duplicate config keys: {}", c.name),
            ));
        }
        let def = topic_config(c.name).ok_or_else(|| {
            (
                ErrorCode::INVALID_CONFIG,
                format!("Unknown topic config name: {}", c.name),
            )
        })?;
        let invalid = |why: String| (ErrorCode::INVALID_CONFIG, why);
        let needs_value = || {
            c.value.ok_or_else(|| {
                (
                    ErrorCode::INVALID_REQUEST,
                    format!("Null value not supported for : {}", c.name),
                )
            })
        };
        match c.op {
            0 => {
                let v = needs_value()?;
                def.check(v).map_err(invalid)?;
                out.insert(c.name.to_owned(), v.to_owned());
            }
            1 => {
                out.remove(c.name);
            }
            2 | 3 => {
                if !def.is_list() {
                    return Err((
                        ErrorCode::INVALID_CONFIG,
                        format!(
                            "Config value append is not allowed for config key: {}",
                            c.name
                        ),
                    ));
                }
                let v = needs_value()?;
                let current = out
                    .get(c.name)
                    .cloned()
                    .unwrap_or_else(|| def.default_value(config));
                let mut items: Vec<String> = list_items(&current).map(str::to_owned).collect();
                for item in list_items(v) {
                    if c.op == 2 {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_owned());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                let joined = items.join(",");
                def.check(&joined).map_err(invalid)?;
                out.insert(c.name.to_owned(), joined);
            }
            other => {
                return Err((
                    ErrorCode::INVALID_REQUEST,
                    format!("Unknown config operation {other}"),
                ));
            }
        }
    }
    Ok(out)
}

/// Applies `changes` to resource (`kind`, `name`), or says why not; `replace`:
/// AlterConfigs, whose configs replace every override.
fn alter(
    call: &mut Call,
    kind: i8,
    name: &str,
    changes: &[Change<'_>],
    replace: bool,
    validate_only: bool,
) -> Result<(), Failure> {
    call.check_injected()
        .map_err(|e| (e, e.message().unwrap_or_default().to_owned()))?;
    match kind {
        TOPIC => {
            let cluster = &mut *call.cluster;
            let Some(topic) = cluster.topics.get(name) else {
                return Err((
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("Topic {name} does not exist."),
                ));
            };
            let base = if replace {
                BTreeMap::new()
            } else {
                topic.configs.clone()
            };
            let updated = apply(&cluster.config, &base, changes)?;
            if !validate_only && let Some(topic) = cluster.topics.get_mut(name) {
                topic.configs = updated;
            }
            Ok(())
        }
        BROKER => {
            broker_resource(call, name)?;
            if changes.is_empty() {
                return Ok(());
            }
            Err((
                ErrorCode::INVALID_REQUEST,
                "The simulated brokers' configs are read-only.".into(),
            ))
        }
        other => Err((
            ErrorCode::INVALID_REQUEST,
            format!("The simulated cluster has no configs of resource type {other}."),
        )),
    }
}

pub(super) fn incremental_alter_configs(
    call: &mut Call,
    r: &IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let responses = r
        .resources
        .iter()
        .map(|res| {
            let changes: Vec<Change<'_>> = res
                .configs
                .iter()
                .map(|c| Change {
                    name: &c.name,
                    op: c.config_operation,
                    value: c.value.as_deref(),
                })
                .collect();
            let result = alter(
                call,
                res.resource_type,
                &res.resource_name,
                &changes,
                false,
                r.validate_only,
            );
            let (error_code, error_message) = outcome(result);
            incremental_alter_configs_response::AlterConfigsResourceResponse {
                error_code,
                error_message,
                resource_type: res.resource_type,
                resource_name: res.resource_name.clone(),
                ..Default::default()
            }
        })
        .collect();
    IncrementalAlterConfigsResponse {
        responses,
        ..Default::default()
    }
}

pub(super) fn alter_configs(call: &mut Call, r: &AlterConfigsRequest) -> AlterConfigsResponse {
    let responses = r
        .resources
        .iter()
        .map(|res| {
            let changes: Vec<Change<'_>> = res
                .configs
                .iter()
                .map(|c| Change {
                    name: &c.name,
                    op: 0,
                    value: c.value.as_deref(),
                })
                .collect();
            let result = alter(
                call,
                res.resource_type,
                &res.resource_name,
                &changes,
                true,
                r.validate_only,
            );
            let (error_code, error_message) = outcome(result);
            alter_configs_response::AlterConfigsResourceResponse {
                error_code,
                error_message,
                resource_type: res.resource_type,
                resource_name: res.resource_name.clone(),
                ..Default::default()
            }
        })
        .collect();
    AlterConfigsResponse {
        responses,
        ..Default::default()
    }
}

fn outcome(result: Result<(), Failure>) -> (i16, Option<ByteString>) {
    match result {
        Ok(()) => (0, None),
        Err((e, message)) => (e.code(), Some(ByteString::from(message))),
    }
}

/// A CreateTopics request's configs as overrides, or why they are refused
/// (INVALID_CONFIG, INVALID_REQUEST for duplicates).
pub(super) fn creation_configs<'a>(
    config: &ClusterConfig,
    configs: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<BTreeMap<String, String>, Failure> {
    let changes: Vec<Change<'_>> = configs
        .map(|(name, value)| Change { name, op: 0, value })
        .collect();
    apply(config, &BTreeMap::new(), &changes)
}

/// A topic's configs as CreateTopics v5+ reports them: (name, value, source).
pub(super) fn created_configs(
    config: &ClusterConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<(String, String, i8)> {
    topic_configs(config, overrides)
        .into_iter()
        .map(|c| (c.name, c.value, c.source))
        .collect()
}

/// The largest batch a Produce may append to a topic with these overrides: its
/// `max.message.bytes`, else the cluster's `message.max.bytes`.
pub(crate) fn max_message_bytes(
    config: &ClusterConfig,
    overrides: &BTreeMap<String, String>,
) -> usize {
    overrides
        .get("max.message.bytes")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(config.message_max_bytes)
}
