//! Cluster administration: Metadata (with auto-creation), CreateTopics,
//! DeleteTopics, CreatePartitions and InitProducerId.

use super::{Call, configs, error_message, valid_topic_name};
use crate::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, ErrorCode, InitProducerIdRequest,
    InitProducerIdResponse, MetadataRequest, MetadataResponse,
};
use crate::messages::{
    create_partitions_response, create_topics_response, delete_topics_response, metadata_response,
};
use crate::sim::coordinator::OFFSETS_TOPIC;
use crate::sim::{Cluster, Partition, Topic, TopicOrigin};
use crate::wire::{ByteString, Uuid};

pub(super) fn metadata(call: &mut Call, r: &MetadataRequest) -> MetadataResponse {
    let cluster = &mut *call.cluster;
    let version = call.version;
    let injected = call.injected;
    // Which topics: all (null list, or an empty one before v1), or those named.
    let names: Vec<(Option<String>, Uuid)> = match &r.topics {
        Some(t) if !t.is_empty() || version > 0 => t
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
            .collect(),
        _ => cluster
            .topics
            .keys()
            .map(|n| (Some(n.clone()), Uuid::ZERO))
            .collect(),
    };
    let auto_create =
        cluster.config.auto_create_topics && (r.allow_auto_topic_creation || version < 4);
    let mut topics = Vec::with_capacity(names.len());
    for (name, id) in names {
        let unknown =
            |error: ErrorCode, name: Option<String>| metadata_response::MetadataResponseTopic {
                error_code: error.code(),
                name: name.map(ByteString::from),
                topic_id: id,
                ..Default::default()
            };
        let name = match name.or_else(|| cluster.topic_name(id).cloned()) {
            Some(n) => n,
            None => {
                topics.push(unknown(ErrorCode::UNKNOWN_TOPIC_ID, None));
                continue;
            }
        };
        if let Some(code) = injected {
            topics.push(metadata_response::MetadataResponseTopic {
                error_code: code.code(),
                name: Some(ByteString::from(name)),
                ..Default::default()
            });
            continue;
        }
        if name == OFFSETS_TOPIC && (r.allow_auto_topic_creation || version < 4) {
            // As Kafka: naming the internal topic creates it.
            cluster.ensure_offsets_topic();
        }
        if !cluster.topics.contains_key(&name) && auto_create && valid_topic_name(&name) {
            let replication = cluster
                .config
                .default_replication
                .min(cluster.broker_ids().count() as i16);
            let partitions = cluster.config.default_partitions;
            // Over the auto-creation limits the topic stays unknown (and explicit
            // creations keep their room).
            let _ = cluster.create_topic_as(&name, partitions, replication, TopicOrigin::Auto);
        }
        let Some(topic) = cluster.topics.get(&name) else {
            let error = if valid_topic_name(&name) {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                ErrorCode::INVALID_TOPIC_EXCEPTION
            };
            let mut entry = unknown(error, Some(name));
            entry.topic_id = Uuid::ZERO;
            topics.push(entry);
            continue;
        };
        topics.push(metadata_response::MetadataResponseTopic {
            error_code: 0,
            name: Some(ByteString::from(name)),
            topic_id: if version >= 10 { topic.id } else { Uuid::ZERO },
            is_internal: topic.internal,
            partitions: partition_metadata(cluster, topic, version),
            ..Default::default()
        });
    }
    let brokers = cluster
        .live_brokers()
        .into_iter()
        .map(|(id, port)| metadata_response::MetadataResponseBroker {
            node_id: id,
            host: ByteString::from(cluster.config.host.clone()),
            port,
            rack: None,
            ..Default::default()
        })
        .collect();
    let controller_id = cluster.live_brokers().first().map_or(-1, |(id, _)| *id);
    MetadataResponse {
        brokers,
        cluster_id: if version >= 2 {
            Some(ByteString::from(cluster.config.cluster_id.clone()))
        } else {
            None
        },
        controller_id: if version >= 1 { controller_id } else { -1 },
        topics,
        ..Default::default()
    }
}

/// Each partition of `topic` as Metadata describes it: leader, replicas, in-sync and
/// offline replicas.
fn partition_metadata(
    cluster: &Cluster,
    topic: &Topic,
    version: i16,
) -> Vec<metadata_response::MetadataResponsePartition> {
    topic
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (isr, offline): (Vec<i32>, Vec<i32>) =
                p.replicas.iter().copied().partition(|b| cluster.is_up(*b));
            metadata_response::MetadataResponsePartition {
                error_code: if p.leader < 0 {
                    ErrorCode::LEADER_NOT_AVAILABLE.code()
                } else {
                    0
                },
                partition_index: i as i32,
                leader_id: p.leader,
                leader_epoch: p.leader_epoch,
                replica_nodes: p.replicas.iter().copied().collect(),
                isr_nodes: isr.into(),
                offline_replicas: if version >= 5 {
                    offline.into()
                } else {
                    Default::default()
                },
                ..Default::default()
            }
        })
        .collect()
}

/// InitProducerId: a new producer id, or (KIP-360) a new epoch for a producer that
/// names its id; for a transactional id, its producer with a new epoch
/// ([`transactions::init_transactional`](super::transactions::init_transactional)).
pub(super) fn init_producer_id(
    call: &mut Call,
    r: &InitProducerIdRequest,
) -> InitProducerIdResponse {
    let transactional = r.transactional_id.as_deref().filter(|id| !id.is_empty());
    let (error, producer_id, producer_epoch) = if let Some(e) = call.injected {
        (e, -1, -1)
    } else if let Some(id) = transactional {
        let id = id.to_string();
        match super::transactions::init_transactional(call, r, &id) {
            Ok((producer_id, epoch)) => (ErrorCode::NONE, producer_id, epoch),
            Err(e) => (e, -1, -1),
        }
    } else if r.producer_id >= 0 && r.producer_epoch >= 0 {
        (
            ErrorCode::NONE,
            r.producer_id,
            r.producer_epoch.wrapping_add(1).max(0),
        )
    } else {
        let id = call.cluster.next_producer_id;
        call.cluster.next_producer_id += 1;
        (ErrorCode::NONE, id, 0)
    };
    InitProducerIdResponse {
        error_code: error.code(),
        producer_id,
        producer_epoch,
        ..Default::default()
    }
}

pub(super) fn create_topics(call: &mut Call, r: &CreateTopicsRequest) -> CreateTopicsResponse {
    let cluster = &mut *call.cluster;
    let injected = call.injected;
    let brokers = cluster.broker_ids().count() as i32;
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in &r.topics {
        let partitions = if t.num_partitions == -1 {
            cluster.config.default_partitions
        } else {
            t.num_partitions
        };
        let replication = if t.replication_factor == -1 {
            cluster.config.default_replication.min(brokers as i16)
        } else {
            t.replication_factor
        };
        let mut out = create_topics_response::CreatableTopicResult {
            name: t.name.clone(),
            num_partitions: partitions,
            replication_factor: replication,
            ..Default::default()
        };
        let configs = configs::creation_configs(
            &cluster.config,
            t.configs.iter().map(|c| (&*c.name, c.value.as_deref())),
        );
        let mut message = None;
        let error = if let Some(code) = injected {
            Some(code)
        } else if !valid_topic_name(&t.name) {
            Some(ErrorCode::INVALID_TOPIC_EXCEPTION)
        } else if cluster.topics.contains_key(&*t.name) {
            Some(ErrorCode::TOPIC_ALREADY_EXISTS)
        } else if *t.name == *OFFSETS_TOPIC {
            message = Some(format!(
                "{OFFSETS_TOPIC} is the group coordinator's own topic."
            ));
            Some(ErrorCode::INVALID_REQUEST)
        } else if cluster.partition_room(0, partitions, false).is_err() {
            Some(ErrorCode::INVALID_PARTITIONS)
        } else if replication < 1 || i32::from(replication) > brokers {
            Some(ErrorCode::INVALID_REPLICATION_FACTOR)
        } else if let Err((e, why)) = &configs {
            message = Some(why.clone());
            Some(*e)
        } else if r.validate_only {
            None
        } else {
            match cluster.create_topic(&t.name, partitions, replication) {
                Ok(id) => {
                    out.topic_id = id;
                    if let (Ok(overrides), Some(topic)) =
                        (configs, cluster.topics.get_mut(&*t.name))
                    {
                        topic.configs = overrides;
                    }
                    None
                }
                Err(_) => Some(ErrorCode::INVALID_REQUEST),
            }
        };
        if let Some(e) = error {
            out.error_code = e.code();
            out.error_message = match message {
                Some(m) => Some(ByteString::from(m)),
                None => error_message(e),
            };
            out.num_partitions = -1;
            out.replication_factor = -1;
        } else if call.version >= 5 {
            // v5+: the topic's configs as created.
            let empty = std::collections::BTreeMap::new();
            let overrides = cluster.topics.get(&*t.name).map_or(&empty, |t| &t.configs);
            out.configs = Some(
                configs::created_configs(&cluster.config, overrides)
                    .into_iter()
                    .map(
                        |(name, value, source)| create_topics_response::CreatableTopicConfigs {
                            name: ByteString::from(name),
                            value: Some(ByteString::from(value)),
                            read_only: false,
                            config_source: source,
                            is_sensitive: false,
                            ..Default::default()
                        },
                    )
                    .collect(),
            );
        }
        topics.push(out);
    }
    CreateTopicsResponse {
        topics,
        ..Default::default()
    }
}

pub(super) fn delete_topics(call: &mut Call, r: &DeleteTopicsRequest) -> DeleteTopicsResponse {
    let cluster = &mut *call.cluster;
    let injected = call.injected;
    let targets = r
        .topic_names
        .iter()
        .map(|n| (Some(n.to_string()), Uuid::ZERO))
        .chain(
            r.topics
                .iter()
                .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id)),
        );
    let mut responses = Vec::new();
    for (name, id) in targets {
        let found = match &name {
            Some(n) => cluster.topics.get(n).map(|t| (n.clone(), t.id)),
            None => cluster.topic_name(id).map(|n| (n.clone(), id)),
        };
        let mut out = delete_topics_response::DeletableTopicResult {
            name: name.clone().map(ByteString::from),
            topic_id: id,
            ..Default::default()
        };
        match (injected, found) {
            (Some(code), _) => out.error_code = code.code(),
            (None, Some((n, _))) if cluster.topics.get(&n).is_some_and(|t| t.internal) => {
                out.error_code = ErrorCode::INVALID_REQUEST.code();
                out.error_message = Some(ByteString::from(format!(
                    "{n} is the group coordinator's own topic; it cannot be deleted."
                )));
            }
            (None, Some((n, tid))) => {
                cluster.delete_topic(&n);
                out.name = Some(ByteString::from(n));
                out.topic_id = tid;
            }
            (None, None) => {
                out.error_code = if name.is_some() {
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
                } else {
                    ErrorCode::UNKNOWN_TOPIC_ID.code()
                };
            }
        }
        responses.push(out);
    }
    DeleteTopicsResponse {
        responses,
        ..Default::default()
    }
}

pub(super) fn create_partitions(
    call: &mut Call,
    r: &CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let cluster = &mut *call.cluster;
    let injected = call.injected;
    let mut results = Vec::with_capacity(r.topics.len());
    for t in &r.topics {
        // Kafka's own wording when the count does not grow (the generic text of
        // INVALID_PARTITIONS, "Number of partitions is below 1.", would mislead).
        let mut message = None;
        let error = if let Some(code) = injected {
            Some(code)
        } else {
            match cluster.topics.get(&*t.name) {
                None => Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                Some(topic) if topic.internal => {
                    message = Some(format!(
                        "{} is the group coordinator's own topic; its groups would move.",
                        t.name
                    ));
                    Some(ErrorCode::INVALID_REQUEST)
                }
                Some(topic) if t.count <= topic.partitions.len() as i32 => {
                    let current = topic.partitions.len();
                    message = Some(if t.count == current as i32 {
                        format!("Topic already has {current} partitions.")
                    } else {
                        format!(
                            "Topic currently has {current} partitions, which is higher than \
                             the requested {}.",
                            t.count
                        )
                    });
                    Some(ErrorCode::INVALID_PARTITIONS)
                }
                Some(topic)
                    if cluster
                        .partition_room(topic.partitions.len(), t.count, topic.auto_created)
                        .is_err() =>
                {
                    let why = cluster
                        .partition_room(topic.partitions.len(), t.count, topic.auto_created)
                        .err()
                        .unwrap_or_default();
                    message = Some(format!("The simulated cluster cannot hold {why}."));
                    Some(ErrorCode::INVALID_PARTITIONS)
                }
                Some(_) if r.validate_only => None,
                Some(topic) => {
                    let replication = topic
                        .partitions
                        .first()
                        .map_or(1, |p| p.replicas.len() as i16);
                    let start = topic.partitions.len() as i32;
                    let new: Vec<Partition> = (start..t.count)
                        .map(|i| cluster.new_partition(i, replication))
                        .collect();
                    cluster.add_partitions(&t.name, new);
                    None
                }
            }
        };
        results.push(create_partitions_response::CreatePartitionsTopicResult {
            name: t.name.clone(),
            error_code: error.map_or(0, ErrorCode::code),
            error_message: error.map(|e| {
                ByteString::from(message.unwrap_or_else(|| e.message().unwrap_or("").to_string()))
            }),
            ..Default::default()
        });
    }
    CreatePartitionsResponse {
        results,
        ..Default::default()
    }
}
