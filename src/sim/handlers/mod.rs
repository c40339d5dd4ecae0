//! The broker side of each API the simulated cluster implements.

use super::groups;
use super::log::{AppendRefusal, Appended};
use super::{Cluster, Pending};
use crate::messages::{
    ApiKey, ErrorCode, Message, RequestBody, ResponseBody, ResponseHeader, api_versions_response,
    create_partitions_response, create_topics_response, delete_records_response,
    delete_topics_response, fetch_response, find_coordinator_response, list_offsets_response,
    metadata_response, offset_commit_response, offset_fetch_response,
    offset_for_leader_epoch_response, produce_response,
};
use crate::messages::{
    ApiVersionsResponse, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, FetchRequest, FetchResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, ProduceRequest, ProduceResponse,
};
use crate::messages::{
    HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, SyncGroupResponse,
};
use crate::wire::{ByteString, Bytes, BytesMut, Uuid, VersionRange};
use std::time::{Duration, Instant};

pub(crate) enum Outcome {
    Respond(Bytes),
    NoResponse,
    Wait,
    Close,
}

/// The versions the simulated broker answers for `api` (`None`: not implemented).
pub(crate) fn supported_versions(api: ApiKey, sasl: bool) -> Option<VersionRange> {
    let (min, max) = match api {
        // Handshake v1 only: v0 would mean raw SASL frames instead of SaslAuthenticate.
        ApiKey::SaslHandshake if sasl => (1, 1),
        ApiKey::SaslAuthenticate if sasl => (0, 2),
        ApiKey::ApiVersions => (0, 4),
        ApiKey::Metadata => (0, 12),
        // Message format v2 only: Produce v3+ and Fetch v4+ carry it.
        ApiKey::Produce => (3, 11),
        ApiKey::Fetch => (4, 17),
        ApiKey::ListOffsets => (1, 10),
        ApiKey::CreateTopics => (0, 7),
        ApiKey::DeleteTopics => (0, 6),
        ApiKey::CreatePartitions => (0, 3),
        ApiKey::DeleteRecords => (0, 2),
        ApiKey::InitProducerId => (0, 5),
        // Every Kafka broker answers FindCoordinator, and librdkafka takes it as the
        // sign that the broker decompresses gzip and snappy (v0) and lz4 (v1): without
        // it, librdkafka silently produces uncompressed batches.
        ApiKey::FindCoordinator => (0, 6),
        // Offsets of consumers that assign partitions themselves; the versions Kafka
        // 4.0 keeps (KIP-896).
        ApiKey::OffsetCommit => (2, 9),
        ApiKey::OffsetFetch => (1, 9),
        // Consumers validate their position after a leader change with it (KIP-320);
        // kafka-python stops fetching a partition for good when it is missing.
        ApiKey::OffsetForLeaderEpoch => (2, 4),
        // The classic consumer group protocol (src/sim/groups.rs). JoinGroup from v4,
        // where a new member first gets its id with MEMBER_ID_REQUIRED (KIP-394).
        ApiKey::JoinGroup => (4, 9),
        ApiKey::SyncGroup => (0, 5),
        ApiKey::Heartbeat => (0, 4),
        ApiKey::LeaveGroup => (0, 5),
        _ => return None,
    };
    VersionRange { min, max }.intersect(&api.valid_versions())
}

fn respond(api: ApiKey, version: i16, correlation_id: i32, body: ResponseBody) -> Outcome {
    let mut out = BytesMut::new();
    let header = ResponseHeader {
        correlation_id,
        ..Default::default()
    };
    if header
        .encode(&mut out, api.response_header_version(version))
        .is_err()
        || body.encode(&mut out, version).is_err()
    {
        return Outcome::Close;
    }
    Outcome::Respond(out.freeze())
}

pub(crate) fn handle(
    cluster: &mut Cluster,
    conn: super::ConnectionId,
    broker: i32,
    pending: &mut Pending,
    now: Instant,
) -> Outcome {
    let header = &pending.header;
    let Ok(api) = ApiKey::try_from(header.request_api_key) else {
        return Outcome::Close;
    };
    let version = header.request_api_version;
    let correlation_id = header.correlation_id;
    let client_id = header.client_id.as_deref().unwrap_or_default().to_owned();
    let sasl_on = cluster.config.sasl.is_some();
    let Some(supported) = supported_versions(api, sasl_on) else {
        return Outcome::Close;
    };
    let authenticated = !sasl_on
        || matches!(
            cluster.conns.get(&conn).map(|c| &c.auth),
            Some(super::sasl::AuthState::Authenticated)
        );
    if !authenticated
        && !matches!(
            api,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        )
    {
        // Kafka closes a connection that skips authentication.
        return Outcome::Close;
    }
    if api == ApiKey::ApiVersions && !supported.contains(version) {
        let body = ResponseBody::ApiVersions(api_versions(cluster, ErrorCode::UNSUPPORTED_VERSION));
        return respond(api, 0, correlation_id, body);
    }
    let mut input = pending.body.clone();
    let Ok(request) = RequestBody::decode(api, &mut input, version) else {
        return Outcome::Close;
    };
    let throttle = cluster.faults.throttle_ms;
    let body = match request {
        RequestBody::ApiVersions(_) => {
            let mut r = api_versions(cluster, ErrorCode::NONE);
            r.throttle_time_ms = throttle;
            ResponseBody::ApiVersions(r)
        }
        RequestBody::Metadata(r) => {
            ResponseBody::Metadata(metadata(cluster, &r, version, throttle))
        }
        RequestBody::Produce(r) => {
            let acks = r.acks;
            let resp = produce(cluster, broker, &r, now, throttle);
            if acks == 0 {
                return Outcome::NoResponse;
            }
            ResponseBody::Produce(resp)
        }
        RequestBody::Fetch(r) => {
            if pending.not_before.is_none() && !cluster.faults.fetch_delay.is_zero() {
                pending.not_before = Some(now + cluster.faults.fetch_delay);
            }
            if pending.not_before.is_some_and(|t| now < t) {
                return Outcome::Wait;
            }
            let deadline = *pending
                .deadline
                .get_or_insert(now + Duration::from_millis(r.max_wait_ms.max(0) as u64));
            let (resp, bytes) = fetch(cluster, broker, &r, version, now, throttle);
            let errors = resp.error_code != 0
                || resp
                    .responses
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .any(|p| p.error_code != 0);
            if !errors && (bytes as i64) < i64::from(r.min_bytes) && now < deadline {
                return Outcome::Wait;
            }
            ResponseBody::Fetch(resp)
        }
        RequestBody::ListOffsets(r) => {
            ResponseBody::ListOffsets(list_offsets(cluster, broker, &r, version, now, throttle))
        }
        RequestBody::CreateTopics(r) => {
            ResponseBody::CreateTopics(create_topics(cluster, &r, throttle))
        }
        RequestBody::DeleteTopics(r) => {
            ResponseBody::DeleteTopics(delete_topics(cluster, &r, throttle))
        }
        RequestBody::CreatePartitions(r) => {
            ResponseBody::CreatePartitions(create_partitions(cluster, &r, throttle))
        }
        RequestBody::DeleteRecords(r) => {
            ResponseBody::DeleteRecords(delete_records(cluster, broker, &r, now, throttle))
        }
        RequestBody::InitProducerId(r) => {
            ResponseBody::InitProducerId(init_producer_id(cluster, &r, throttle))
        }
        RequestBody::SaslHandshake(r) => {
            let chosen = super::sasl::mechanism(&r.mechanism);
            let state = cluster.conns.get_mut(&conn).map(|c| &mut c.auth);
            let error = match (chosen, state) {
                (Some(m), Some(st @ super::sasl::AuthState::Start)) => {
                    *st = super::sasl::AuthState::Mechanism(m);
                    ErrorCode::NONE
                }
                (Some(_), _) => ErrorCode::ILLEGAL_SASL_STATE,
                (None, _) => ErrorCode::UNSUPPORTED_SASL_MECHANISM,
            };
            ResponseBody::SaslHandshake(crate::messages::SaslHandshakeResponse {
                error_code: error.code(),
                mechanisms: super::sasl::MECHANISMS
                    .iter()
                    .map(|m| ByteString::from_static(m))
                    .collect(),
            })
        }
        RequestBody::SaslAuthenticate(r) => {
            let nonce = format!(
                "{:016x}{:016x}",
                cluster.next_random(),
                cluster.next_random()
            );
            let Some(config) = cluster.config.sasl.clone() else {
                return Outcome::Close;
            };
            let Some(c) = cluster.conns.get_mut(&conn) else {
                return Outcome::Close;
            };
            let result = super::sasl::step(&mut c.auth, &config, &r.auth_bytes, &nonce);
            let mut resp = crate::messages::SaslAuthenticateResponse::default();
            match result {
                Ok(bytes) => resp.auth_bytes = Bytes::from(bytes),
                Err(message) => {
                    resp.error_code = ErrorCode::SASL_AUTHENTICATION_FAILED.code();
                    resp.error_message = Some(ByteString::from(message));
                    c.auth = super::sasl::AuthState::Start;
                }
            }
            ResponseBody::SaslAuthenticate(resp)
        }
        RequestBody::FindCoordinator(r) => {
            ResponseBody::FindCoordinator(find_coordinator(cluster, &r, version, throttle))
        }
        RequestBody::OffsetCommit(r) => {
            ResponseBody::OffsetCommit(offset_commit(cluster, broker, &r, now, throttle))
        }
        RequestBody::OffsetFetch(r) => {
            ResponseBody::OffsetFetch(offset_fetch(cluster, broker, &r, version, throttle))
        }
        RequestBody::OffsetForLeaderEpoch(r) => ResponseBody::OffsetForLeaderEpoch(
            offset_for_leader_epoch(cluster, broker, &r, throttle),
        ),
        RequestBody::JoinGroup(r) => {
            let first = pending.deadline.is_none();
            let failed = match cluster.take_injected(ApiKey::JoinGroup).filter(|_| first) {
                Some(code) => Some(ErrorCode::from(code)),
                None => check_coordinator(cluster, broker, &r.group_id).err(),
            };
            let mut resp = match failed {
                Some(e) => JoinGroupResponse {
                    error_code: e.code(),
                    generation_id: -1,
                    protocol_name: (version < 7).then(ByteString::new),
                    member_id: r.member_id.clone(),
                    ..Default::default()
                },
                None => match cluster.groups.join(&r, version, &client_id, first, now) {
                    groups::Reply::Now(resp) => resp,
                    groups::Reply::Wait(until) => {
                        pending.deadline = Some(until);
                        return Outcome::Wait;
                    }
                },
            };
            resp.throttle_time_ms = throttle;
            ResponseBody::JoinGroup(resp)
        }
        RequestBody::SyncGroup(r) => {
            let first = pending.deadline.is_none();
            let failed = match cluster.take_injected(ApiKey::SyncGroup).filter(|_| first) {
                Some(code) => Some(ErrorCode::from(code)),
                None => check_coordinator(cluster, broker, &r.group_id).err(),
            };
            let mut resp = match failed {
                Some(e) => SyncGroupResponse {
                    error_code: e.code(),
                    ..Default::default()
                },
                None => match cluster.groups.sync(&r, version, now) {
                    groups::Reply::Now(resp) => resp,
                    groups::Reply::Wait(until) => {
                        pending.deadline = Some(until);
                        return Outcome::Wait;
                    }
                },
            };
            resp.throttle_time_ms = throttle;
            ResponseBody::SyncGroup(resp)
        }
        RequestBody::Heartbeat(r) => {
            let error = match cluster.take_injected(ApiKey::Heartbeat) {
                Some(code) => ErrorCode::from(code),
                None => match check_coordinator(cluster, broker, &r.group_id) {
                    Err(e) => e,
                    Ok(()) => cluster.groups.heartbeat(&r, now),
                },
            };
            ResponseBody::Heartbeat(HeartbeatResponse {
                throttle_time_ms: throttle,
                error_code: error.code(),
                ..Default::default()
            })
        }
        RequestBody::LeaveGroup(r) => {
            let failed = match cluster.take_injected(ApiKey::LeaveGroup) {
                Some(code) => Some(ErrorCode::from(code)),
                None => check_coordinator(cluster, broker, &r.group_id).err(),
            };
            let mut resp = match failed {
                Some(e) => LeaveGroupResponse {
                    error_code: e.code(),
                    ..Default::default()
                },
                None => cluster.groups.leave(&r, version, now),
            };
            resp.throttle_time_ms = throttle;
            ResponseBody::LeaveGroup(resp)
        }
        _ => return Outcome::Close,
    };
    respond(api, version, correlation_id, body)
}

fn api_versions(cluster: &mut Cluster, error: ErrorCode) -> ApiVersionsResponse {
    let sasl = cluster.config.sasl.is_some();
    let api_keys = ApiKey::ALL
        .iter()
        .filter_map(|k| {
            supported_versions(*k, sasl).map(|r| api_versions_response::ApiVersion {
                api_key: k.as_i16(),
                min_version: r.min,
                max_version: r.max,
                ..Default::default()
            })
        })
        .collect();
    ApiVersionsResponse {
        error_code: error.code(),
        api_keys,
        ..Default::default()
    }
}

fn metadata(
    cluster: &mut Cluster,
    r: &MetadataRequest,
    version: i16,
    throttle: i32,
) -> MetadataResponse {
    let injected = cluster.take_injected(ApiKey::Metadata);
    // Which topics: all (null list, or an empty one before v1), or those named.
    let names: Vec<(Option<String>, Uuid)> = match &r.topics {
        None => cluster
            .topics
            .keys()
            .map(|n| (Some(n.clone()), Uuid::ZERO))
            .collect(),
        Some(t) if t.is_empty() && version == 0 => cluster
            .topics
            .keys()
            .map(|n| (Some(n.clone()), Uuid::ZERO))
            .collect(),
        Some(t) => t
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
            .collect(),
    };
    let auto_create =
        cluster.config.auto_create_topics && (r.allow_auto_topic_creation || version < 4);
    let mut topics = Vec::new();
    for (name, id) in names {
        let name = match name {
            Some(n) => n,
            None => match cluster.topics.iter().find(|(_, t)| t.id == id) {
                Some((n, _)) => n.clone(),
                None => {
                    topics.push(metadata_response::MetadataResponseTopic {
                        error_code: ErrorCode::UNKNOWN_TOPIC_ID.code(),
                        name: None,
                        topic_id: id,
                        ..Default::default()
                    });
                    continue;
                }
            },
        };
        if let Some(code) = injected {
            topics.push(metadata_response::MetadataResponseTopic {
                error_code: code,
                name: Some(ByteString::from(name)),
                ..Default::default()
            });
            continue;
        }
        if !cluster.topics.contains_key(&name) && auto_create && valid_topic_name(&name) {
            let replication = cluster
                .config
                .default_replication
                .min(cluster.broker_ids().count() as i16);
            let _ = cluster.create_topic(&name, cluster.config.default_partitions, replication);
        }
        let Some(topic) = cluster.topics.get(&name) else {
            topics.push(metadata_response::MetadataResponseTopic {
                error_code: if valid_topic_name(&name) {
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                } else {
                    ErrorCode::INVALID_TOPIC_EXCEPTION
                }
                .code(),
                name: Some(ByteString::from(name)),
                ..Default::default()
            });
            continue;
        };
        let partitions = topic
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let isr: Vec<i32> = p
                    .replicas
                    .iter()
                    .copied()
                    .filter(|b| cluster.is_up(*b))
                    .collect();
                let offline: Vec<i32> = p
                    .replicas
                    .iter()
                    .copied()
                    .filter(|b| !cluster.is_up(*b))
                    .collect();
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
            .collect();
        topics.push(metadata_response::MetadataResponseTopic {
            error_code: 0,
            name: Some(ByteString::from(name)),
            topic_id: if version >= 10 { topic.id } else { Uuid::ZERO },
            is_internal: false,
            partitions,
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
        throttle_time_ms: throttle,
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

/// Kafka's topic name rule: 1-249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn leader_partition<'a>(
    cluster: &'a mut Cluster,
    broker: i32,
    topic: &str,
    partition: i32,
) -> Result<&'a mut super::Partition, ErrorCode> {
    let t = cluster
        .topics
        .get_mut(topic)
        .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)?;
    let p = usize::try_from(partition)
        .ok()
        .and_then(|i| t.partitions.get_mut(i))
        .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)?;
    if p.leader < 0 {
        return Err(ErrorCode::LEADER_NOT_AVAILABLE);
    }
    if p.leader != broker {
        return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
    }
    Ok(p)
}

fn produce(
    cluster: &mut Cluster,
    broker: i32,
    r: &ProduceRequest,
    now: Instant,
    throttle: i32,
) -> ProduceResponse {
    let injected = cluster.take_injected(ApiKey::Produce);
    let delay = cluster.config.replication_delay;
    let replicated_at = if r.acks == -1 { now } else { now + delay };
    let mut responses = Vec::new();
    for t in &r.topic_data {
        let mut partition_responses = Vec::new();
        for pd in &t.partition_data {
            let mut out = produce_response::PartitionProduceResponse {
                index: pd.index,
                base_offset: -1,
                log_append_time_ms: -1,
                log_start_offset: -1,
                ..Default::default()
            };
            let result = if let Some(code) = injected {
                Err(ErrorCode::from(code))
            } else if !matches!(r.acks, -1..=1) {
                Err(ErrorCode::INVALID_REQUIRED_ACKS)
            } else {
                leader_partition(cluster, broker, &t.name, pd.index).and_then(|p| {
                    let records = pd.records.clone().unwrap_or_default();
                    let epoch = p.leader_epoch;
                    let appended =
                        p.log
                            .append(&records, epoch, replicated_at)
                            .map_err(|e| match e {
                                AppendRefusal::Corrupt => ErrorCode::CORRUPT_MESSAGE,
                                AppendRefusal::UnsupportedMagic => {
                                    ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT
                                }
                                AppendRefusal::OutOfOrderSequence => {
                                    ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
                                }
                                AppendRefusal::InvalidProducerEpoch => {
                                    ErrorCode::INVALID_PRODUCER_EPOCH
                                }
                            })?;
                    Ok((appended, p.log.log_start_offset))
                })
            };
            if let Ok((Appended::New(_), _)) = result
                && r.acks == -1
                && cluster.faults.planted_bug_lose_acked > 0.0
            {
                let p = cluster.faults.planted_bug_lose_acked;
                if (cluster.next_random() >> 11) as f64 / (1u64 << 53) as f64 <= p
                    && let Some(t) = cluster.topics.get_mut(&*t.name)
                    && let Some(part) = usize::try_from(pd.index)
                        .ok()
                        .and_then(|i| t.partitions.get_mut(i))
                {
                    part.log.batches.pop();
                }
            }
            match result {
                Ok((Appended::New(base) | Appended::Duplicate(base), start)) => {
                    out.base_offset = base;
                    out.log_start_offset = start;
                }
                Err(code) => out.error_code = code.code(),
            }
            partition_responses.push(out);
        }
        responses.push(produce_response::TopicProduceResponse {
            name: t.name.clone(),
            partition_responses,
            ..Default::default()
        });
    }
    ProduceResponse {
        responses,
        throttle_time_ms: throttle,
        ..Default::default()
    }
}

/// Answers a Fetch; also returns how many record bytes it carries (for min bytes).
fn fetch(
    cluster: &mut Cluster,
    broker: i32,
    r: &FetchRequest,
    version: i16,
    now: Instant,
    throttle: i32,
) -> (FetchResponse, usize) {
    let injected = cluster.take_injected(ApiKey::Fetch);
    let partial = cluster.faults.partial_batches;
    let mut budget = if version >= 3 {
        r.max_bytes.max(0) as usize
    } else {
        usize::MAX
    };
    let mut total = 0usize;
    let mut responses = Vec::new();
    for t in &r.topics {
        let name = if version >= 13 {
            cluster
                .topics
                .iter()
                .find(|(_, topic)| topic.id == t.topic_id)
                .map(|(n, _)| n.clone())
        } else {
            Some(t.topic.to_string())
        };
        let mut partitions = Vec::new();
        for fp in &t.partitions {
            let mut out = fetch_response::PartitionData {
                partition_index: fp.partition,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                aborted_transactions: Some(Vec::new()),
                preferred_read_replica: -1,
                records: Some(Bytes::new()),
                ..Default::default()
            };
            let result = match (&name, injected) {
                (_, Some(code)) => Err(ErrorCode::from(code)),
                (None, _) => Err(ErrorCode::UNKNOWN_TOPIC_ID),
                (Some(name), None) => leader_partition(cluster, broker, name, fp.partition)
                    .and_then(|p| {
                        let hw = p.log.high_watermark(now);
                        // As Kafka: only an offset past the log end (or before its
                        // start) is out of range; between the high watermark and the
                        // log end a consumer gets no records yet and waits.
                        if fp.fetch_offset < p.log.log_start_offset
                            || fp.fetch_offset > p.log.log_end_offset
                        {
                            return Err(ErrorCode::OFFSET_OUT_OF_RANGE);
                        }
                        let limit = (fp.partition_max_bytes.max(0) as usize).min(budget);
                        let data = p.log.read(fp.fetch_offset, limit, now, partial);
                        Ok((data, hw, p.log.log_start_offset))
                    }),
            };
            match result {
                Ok((data, hw, start)) => {
                    budget = budget.saturating_sub(data.len());
                    total += data.len();
                    out.high_watermark = hw;
                    out.last_stable_offset = hw;
                    out.log_start_offset = start;
                    out.records = Some(data);
                }
                Err(code) => out.error_code = code.code(),
            }
            partitions.push(out);
        }
        responses.push(fetch_response::FetchableTopicResponse {
            topic: if version >= 13 {
                ByteString::new()
            } else {
                t.topic.clone()
            },
            topic_id: if version >= 13 {
                t.topic_id
            } else {
                Uuid::ZERO
            },
            partitions,
            ..Default::default()
        });
    }
    let resp = FetchResponse {
        throttle_time_ms: throttle,
        error_code: 0,
        // Sessions are not kept: session id 0 tells the client to send full fetches.
        session_id: 0,
        responses,
        ..Default::default()
    };
    (resp, total)
}

fn list_offsets(
    cluster: &mut Cluster,
    broker: i32,
    r: &ListOffsetsRequest,
    version: i16,
    now: Instant,
    throttle: i32,
) -> ListOffsetsResponse {
    let injected = cluster.take_injected(ApiKey::ListOffsets);
    let mut topics = Vec::new();
    for t in &r.topics {
        let mut partitions = Vec::new();
        for lp in &t.partitions {
            let mut out = list_offsets_response::ListOffsetsPartitionResponse {
                partition_index: lp.partition_index,
                timestamp: -1,
                offset: -1,
                leader_epoch: -1,
                ..Default::default()
            };
            let result = match injected {
                Some(code) => Err(ErrorCode::from(code)),
                None => leader_partition(cluster, broker, &t.name, lp.partition_index).map(|p| {
                    let hw = p.log.high_watermark(now);
                    let found = match lp.timestamp {
                        -2 => Some((p.log.log_start_offset, -1)),
                        -1 => Some((hw, -1)),
                        ts if ts >= 0 => p.log.offset_for_timestamp(ts, now),
                        // Other special timestamps (max timestamp, tiered storage) are
                        // not kept: report no offset.
                        _ => None,
                    };
                    (found, p.leader_epoch)
                }),
            };
            match result {
                Ok((Some((offset, ts)), epoch)) => {
                    out.offset = offset;
                    out.timestamp = ts;
                    out.leader_epoch = if version >= 4 { epoch } else { -1 };
                }
                Ok((None, _)) => {}
                Err(code) => out.error_code = code.code(),
            }
            partitions.push(out);
        }
        topics.push(list_offsets_response::ListOffsetsTopicResponse {
            name: t.name.clone(),
            partitions,
            ..Default::default()
        });
    }
    ListOffsetsResponse {
        throttle_time_ms: throttle,
        topics,
        ..Default::default()
    }
}

fn create_topics(
    cluster: &mut Cluster,
    r: &CreateTopicsRequest,
    throttle: i32,
) -> CreateTopicsResponse {
    let injected = cluster.take_injected(ApiKey::CreateTopics);
    let brokers = cluster.broker_ids().count() as i32;
    let mut topics = Vec::new();
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
        let error = if let Some(code) = injected {
            Some(ErrorCode::from(code))
        } else if !valid_topic_name(&t.name) {
            Some(ErrorCode::INVALID_TOPIC_EXCEPTION)
        } else if cluster.topics.contains_key(&*t.name) {
            Some(ErrorCode::TOPIC_ALREADY_EXISTS)
        } else if !(1..=super::MAX_PARTITIONS_PER_TOPIC).contains(&partitions)
            || cluster.partition_count() + partitions as usize > super::MAX_PARTITIONS_PER_CLUSTER
        {
            Some(ErrorCode::INVALID_PARTITIONS)
        } else if replication < 1 || i32::from(replication) > brokers {
            Some(ErrorCode::INVALID_REPLICATION_FACTOR)
        } else if r.validate_only {
            None
        } else {
            match cluster.create_topic(&t.name, partitions, replication) {
                Ok(id) => {
                    out.topic_id = id;
                    None
                }
                Err(_) => Some(ErrorCode::INVALID_REQUEST),
            }
        };
        if let Some(e) = error {
            out.error_code = e.code();
            out.error_message = Some(ByteString::from(e.message().unwrap_or("").to_string()));
            out.num_partitions = -1;
            out.replication_factor = -1;
        }
        topics.push(out);
    }
    CreateTopicsResponse {
        throttle_time_ms: throttle,
        topics,
        ..Default::default()
    }
}

fn delete_topics(
    cluster: &mut Cluster,
    r: &DeleteTopicsRequest,
    throttle: i32,
) -> DeleteTopicsResponse {
    let injected = cluster.take_injected(ApiKey::DeleteTopics);
    let mut targets: Vec<(Option<String>, Uuid)> = r
        .topic_names
        .iter()
        .map(|n| (Some(n.to_string()), Uuid::ZERO))
        .collect();
    targets.extend(
        r.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id)),
    );
    let mut responses = Vec::new();
    for (name, id) in targets {
        let found = match &name {
            Some(n) => cluster.topics.get(n).map(|t| (n.clone(), t.id)),
            None => cluster
                .topics
                .iter()
                .find(|(_, t)| t.id == id)
                .map(|(n, t)| (n.clone(), t.id)),
        };
        let mut out = delete_topics_response::DeletableTopicResult {
            name: name.clone().map(ByteString::from),
            topic_id: id,
            ..Default::default()
        };
        match (injected, found) {
            (Some(code), _) => out.error_code = code,
            (None, Some((n, tid))) => {
                cluster.topics.remove(&n);
                // Kafka drops a deleted topic's committed offsets too.
                cluster.committed.retain(|(_, t, _), _| *t != n);
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
        throttle_time_ms: throttle,
        responses,
        ..Default::default()
    }
}

fn create_partitions(
    cluster: &mut Cluster,
    r: &CreatePartitionsRequest,
    throttle: i32,
) -> CreatePartitionsResponse {
    let injected = cluster.take_injected(ApiKey::CreatePartitions);
    let mut results = Vec::new();
    for t in &r.topics {
        // Kafka's own wording when the count does not grow (the generic text of
        // INVALID_PARTITIONS, "Number of partitions is below 1.", would mislead).
        let mut message = None;
        let error = if let Some(code) = injected {
            Some(ErrorCode::from(code))
        } else {
            match cluster.topics.get(&*t.name) {
                None => Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
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
                    if t.count > super::MAX_PARTITIONS_PER_TOPIC
                        || cluster.partition_count()
                            + (t.count as usize - topic.partitions.len())
                            > super::MAX_PARTITIONS_PER_CLUSTER =>
                {
                    message = Some(format!(
                        "The simulated cluster holds at most {} partitions per topic and {} in all.",
                        super::MAX_PARTITIONS_PER_TOPIC,
                        super::MAX_PARTITIONS_PER_CLUSTER
                    ));
                    Some(ErrorCode::INVALID_PARTITIONS)
                }
                Some(_) if r.validate_only => None,
                Some(topic) => {
                    let replication = topic
                        .partitions
                        .first()
                        .map_or(1, |p| p.replicas.len() as i16);
                    let start = topic.partitions.len() as i32;
                    let new: Vec<super::Partition> = (start..t.count)
                        .map(|i| cluster.new_partition(i, replication))
                        .collect();
                    if let Some(topic) = cluster.topics.get_mut(&*t.name) {
                        topic.partitions.extend(new);
                    }
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
        throttle_time_ms: throttle,
        results,
        ..Default::default()
    }
}

fn delete_records(
    cluster: &mut Cluster,
    broker: i32,
    r: &DeleteRecordsRequest,
    now: Instant,
    throttle: i32,
) -> DeleteRecordsResponse {
    let injected = cluster.take_injected(ApiKey::DeleteRecords);
    let mut topics = Vec::new();
    for t in &r.topics {
        let mut partitions = Vec::new();
        for dp in &t.partitions {
            let mut out = delete_records_response::DeleteRecordsPartitionResult {
                partition_index: dp.partition_index,
                low_watermark: -1,
                ..Default::default()
            };
            let result = match injected {
                Some(code) => Err(ErrorCode::from(code)),
                None => {
                    leader_partition(cluster, broker, &t.name, dp.partition_index).and_then(|p| {
                        let hw = p.log.high_watermark(now);
                        let target = if dp.offset == -1 { hw } else { dp.offset };
                        if target < 0 || target > hw {
                            return Err(ErrorCode::OFFSET_OUT_OF_RANGE);
                        }
                        p.log.delete_before(target);
                        Ok(p.log.log_start_offset)
                    })
                }
            };
            match result {
                Ok(low) => out.low_watermark = low,
                Err(code) => out.error_code = code.code(),
            }
            partitions.push(out);
        }
        topics.push(delete_records_response::DeleteRecordsTopicResult {
            name: t.name.clone(),
            partitions,
            ..Default::default()
        });
    }
    DeleteRecordsResponse {
        throttle_time_ms: throttle,
        topics,
        ..Default::default()
    }
}

fn init_producer_id(
    cluster: &mut Cluster,
    r: &InitProducerIdRequest,
    throttle: i32,
) -> InitProducerIdResponse {
    if let Some(code) = cluster.take_injected(ApiKey::InitProducerId) {
        return InitProducerIdResponse {
            throttle_time_ms: throttle,
            error_code: code,
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        };
    }
    let (producer_id, producer_epoch) = if r.producer_id >= 0 && r.producer_epoch >= 0 {
        // KIP-360: an existing producer asks for a new epoch.
        (r.producer_id, r.producer_epoch.wrapping_add(1).max(0))
    } else {
        let id = cluster.next_producer_id;
        cluster.next_producer_id += 1;
        (id, 0)
    };
    InitProducerIdResponse {
        throttle_time_ms: throttle,
        error_code: 0,
        producer_id,
        producer_epoch,
        ..Default::default()
    }
}

/// The coordinator of a group or transactional id: a live broker picked by the key's
/// hash (Kafka hashes the key onto a partition of `__consumer_offsets` or
/// `__transaction_state` and answers that partition's leader; the simulation keeps no
/// such topics, so it hashes onto the live brokers directly). Only the lookup is
/// simulated: the group and transaction APIs themselves are not advertised.
fn coordinator_for(live: &[(i32, i32)], key: &str) -> Option<(i32, i32)> {
    if live.is_empty() {
        return None;
    }
    // Java's String.hashCode, as Kafka's partitionFor uses: stable across runs.
    let hash = key
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    Some(live[(hash & 0x7fff_ffff) as usize % live.len()])
}

fn find_coordinator(
    cluster: &mut Cluster,
    r: &FindCoordinatorRequest,
    version: i16,
    throttle: i32,
) -> FindCoordinatorResponse {
    let injected = cluster.take_injected(ApiKey::FindCoordinator);
    let live = cluster.live_brokers();
    let host = ByteString::from(cluster.config.host.clone());
    let lookup = |key: &str| -> Result<(i32, i32), ErrorCode> {
        if let Some(code) = injected {
            return Err(ErrorCode::from(code));
        }
        // 0: group, 1: transaction; share groups (2) are not simulated.
        if !matches!(r.key_type, 0 | 1) {
            return Err(ErrorCode::INVALID_REQUEST);
        }
        coordinator_for(&live, key).ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)
    };
    let message = |e: ErrorCode| Some(ByteString::from(e.message().unwrap_or("").to_string()));
    if version >= 4 {
        let coordinators = r
            .coordinator_keys
            .iter()
            .map(|key| {
                let mut c = find_coordinator_response::Coordinator {
                    key: key.clone(),
                    node_id: -1,
                    host: ByteString::new(),
                    port: -1,
                    ..Default::default()
                };
                match lookup(key) {
                    Ok((id, port)) => {
                        c.node_id = id;
                        c.host = host.clone();
                        c.port = port;
                    }
                    Err(e) => {
                        c.error_code = e.code();
                        c.error_message = message(e);
                    }
                }
                c
            })
            .collect();
        return FindCoordinatorResponse {
            throttle_time_ms: throttle,
            coordinators,
            ..Default::default()
        };
    }
    let mut out = FindCoordinatorResponse {
        throttle_time_ms: throttle,
        node_id: -1,
        host: ByteString::new(),
        port: -1,
        ..Default::default()
    };
    match lookup(&r.key) {
        Ok((id, port)) => {
            out.node_id = id;
            out.host = host;
            out.port = port;
        }
        Err(e) => {
            out.error_code = e.code();
            if version >= 1 {
                out.error_message = message(e);
            }
        }
    }
    out
}

/// A committed offset, as OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Kafka's default `offset.metadata.max.bytes`.
const MAX_OFFSET_METADATA: usize = 4096;

/// Whether `broker` coordinates `group`, or the error that says why not.
fn check_coordinator(cluster: &Cluster, broker: i32, group: &str) -> Result<(), ErrorCode> {
    if group.is_empty() {
        return Err(ErrorCode::INVALID_GROUP_ID);
    }
    match coordinator_for(&cluster.live_brokers(), group) {
        Some((id, _)) if id == broker => Ok(()),
        Some(_) => Err(ErrorCode::NOT_COORDINATOR),
        None => Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
    }
}

/// OffsetCommit: by a group member for its generation, or for a group with no members
/// (generation -1, no member id), as consumers that assign partitions themselves and
/// admin clients send.
fn offset_commit(
    cluster: &mut Cluster,
    broker: i32,
    r: &OffsetCommitRequest,
    now: Instant,
    throttle: i32,
) -> OffsetCommitResponse {
    let injected = cluster.take_injected(ApiKey::OffsetCommit);
    let group = r.group_id.to_string();
    let group_error = match injected {
        Some(code) => Some(ErrorCode::from(code)),
        None => check_coordinator(cluster, broker, &group)
            .err()
            .or_else(|| {
                // The classic coordinator's checks of the member and its generation.
                cluster
                    .groups
                    .check_commit(&group, r.generation_id_or_member_epoch, &r.member_id, now)
                    .err()
            }),
    };
    let mut topics = Vec::new();
    for t in &r.topics {
        let mut partitions = Vec::new();
        for p in &t.partitions {
            let exists = cluster.topics.get(&*t.name).is_some_and(|topic| {
                (0..topic.partitions.len() as i32).contains(&p.partition_index)
            });
            let metadata_len = p.committed_metadata.as_ref().map_or(0, |m| m.len());
            let error = if let Some(e) = group_error {
                Some(e)
            } else if !exists {
                Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
            } else if metadata_len > MAX_OFFSET_METADATA {
                Some(ErrorCode::OFFSET_METADATA_TOO_LARGE)
            } else {
                cluster.committed.insert(
                    (group.clone(), t.name.to_string(), p.partition_index),
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    },
                );
                None
            };
            partitions.push(offset_commit_response::OffsetCommitResponsePartition {
                partition_index: p.partition_index,
                error_code: error.map_or(0, ErrorCode::code),
                ..Default::default()
            });
        }
        topics.push(offset_commit_response::OffsetCommitResponseTopic {
            name: t.name.clone(),
            partitions,
            ..Default::default()
        });
    }
    OffsetCommitResponse {
        throttle_time_ms: throttle,
        topics,
        ..Default::default()
    }
}

/// A topic's partitions with what was committed for each (`None`: nothing).
type TopicOffsets = (String, Vec<(i32, Option<CommittedOffset>)>);

/// One group's committed offsets for the partitions asked (`None`: every partition
/// the group committed), as (topic, [(partition, offset or none)]).
fn committed_for(
    cluster: &Cluster,
    group: &str,
    asked: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<TopicOffsets> {
    match asked {
        Some(topics) => topics
            .into_iter()
            .map(|(name, parts)| {
                let found = parts
                    .into_iter()
                    .map(|p| {
                        let key = (group.to_owned(), name.clone(), p);
                        (p, cluster.committed.get(&key).cloned())
                    })
                    .collect();
                (name, found)
            })
            .collect(),
        None => {
            let mut out: Vec<TopicOffsets> = Vec::new();
            for ((g, topic, p), c) in &cluster.committed {
                if g != group {
                    continue;
                }
                match out.last_mut() {
                    Some((t, parts)) if t == topic => parts.push((*p, Some(c.clone()))),
                    _ => out.push((topic.clone(), vec![(*p, Some(c.clone()))])),
                }
            }
            out
        }
    }
}

fn offset_fetch(
    cluster: &mut Cluster,
    broker: i32,
    r: &OffsetFetchRequest,
    version: i16,
    throttle: i32,
) -> OffsetFetchResponse {
    let injected = cluster.take_injected(ApiKey::OffsetFetch);
    let group_error = |cluster: &Cluster, group: &str| match injected {
        Some(code) => Some(ErrorCode::from(code)),
        None => check_coordinator(cluster, broker, group).err(),
    };
    let metadata = |c: &Option<CommittedOffset>| {
        Some(ByteString::from(
            c.as_ref()
                .and_then(|c| c.metadata.clone())
                .unwrap_or_default(),
        ))
    };
    if version >= 8 {
        let groups =
            r.groups
                .iter()
                .map(|g| {
                    let error = group_error(cluster, &g.group_id);
                    let asked = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| {
                                (
                                    t.name.to_string(),
                                    t.partition_indexes.iter().copied().collect(),
                                )
                            })
                            .collect()
                    });
                    let topics =
                        if error.is_some() {
                            Vec::new()
                        } else {
                            committed_for(cluster, &g.group_id, asked)
                                .into_iter()
                                .map(|(name, parts)| {
                                    offset_fetch_response::OffsetFetchResponseTopics {
                            name: ByteString::from(name),
                            partitions: parts
                                .into_iter()
                                .map(|(p, c)| offset_fetch_response::OffsetFetchResponsePartitions {
                                    partition_index: p,
                                    committed_offset: c.as_ref().map_or(-1, |c| c.offset),
                                    committed_leader_epoch: c
                                        .as_ref()
                                        .map_or(-1, |c| c.leader_epoch),
                                    metadata: metadata(&c),
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        }
                                })
                                .collect()
                        };
                    offset_fetch_response::OffsetFetchResponseGroup {
                        group_id: g.group_id.clone(),
                        topics,
                        error_code: error.map_or(0, ErrorCode::code),
                        ..Default::default()
                    }
                })
                .collect();
        return OffsetFetchResponse {
            throttle_time_ms: throttle,
            groups,
            ..Default::default()
        };
    }
    let error = group_error(cluster, &r.group_id);
    let asked = r.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| {
                let parts: Vec<i32> = t.partition_indexes.iter().copied().collect();
                (t.name.to_string(), parts)
            })
            .collect::<Vec<_>>()
    });
    // Before v2 there is no top-level error: it goes in every partition asked.
    let topics = match (error, version) {
        (Some(_), 2..) => Vec::new(),
        (Some(e), _) => asked
            .unwrap_or_default()
            .into_iter()
            .map(
                |(name, parts)| offset_fetch_response::OffsetFetchResponseTopic {
                    name: ByteString::from(name),
                    partitions: parts
                        .into_iter()
                        .map(|p| offset_fetch_response::OffsetFetchResponsePartition {
                            partition_index: p,
                            committed_offset: -1,
                            error_code: e.code(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                },
            )
            .collect(),
        (None, _) => committed_for(cluster, &r.group_id, asked)
            .into_iter()
            .map(
                |(name, parts)| offset_fetch_response::OffsetFetchResponseTopic {
                    name: ByteString::from(name),
                    partitions: parts
                        .into_iter()
                        .map(
                            |(p, c)| offset_fetch_response::OffsetFetchResponsePartition {
                                partition_index: p,
                                committed_offset: c.as_ref().map_or(-1, |c| c.offset),
                                committed_leader_epoch: if version >= 5 {
                                    c.as_ref().map_or(-1, |c| c.leader_epoch)
                                } else {
                                    -1
                                },
                                metadata: metadata(&c),
                                ..Default::default()
                            },
                        )
                        .collect(),
                    ..Default::default()
                },
            )
            .collect(),
    };
    OffsetFetchResponse {
        throttle_time_ms: throttle,
        topics,
        error_code: if version >= 2 {
            error.map_or(0, ErrorCode::code)
        } else {
            0
        },
        ..Default::default()
    }
}

/// OffsetForLeaderEpoch (KIP-320), as a consumer asks it after a leader change: the
/// end offset of the requested leader epoch on this leader, so that the consumer can
/// tell whether the log was truncated below its position.
fn offset_for_leader_epoch(
    cluster: &mut Cluster,
    broker: i32,
    r: &OffsetForLeaderEpochRequest,
    throttle: i32,
) -> OffsetForLeaderEpochResponse {
    let injected = cluster.take_injected(ApiKey::OffsetForLeaderEpoch);
    let mut topics = Vec::new();
    for t in &r.topics {
        let mut partitions = Vec::new();
        for p in &t.partitions {
            let mut out = offset_for_leader_epoch_response::EpochEndOffset {
                partition: p.partition,
                leader_epoch: -1,
                end_offset: -1,
                ..Default::default()
            };
            let result = match injected {
                Some(code) => Err(ErrorCode::from(code)),
                None => leader_partition(cluster, broker, &t.topic, p.partition).and_then(|part| {
                    // The caller's view of the leader epoch must be this leader's.
                    match p.current_leader_epoch {
                        e if e >= 0 && e < part.leader_epoch => Err(ErrorCode::FENCED_LEADER_EPOCH),
                        e if e > part.leader_epoch => Err(ErrorCode::UNKNOWN_LEADER_EPOCH),
                        _ => Ok(end_offset_for_epoch(part, p.leader_epoch)),
                    }
                }),
            };
            match result {
                Ok((epoch, end)) => {
                    out.leader_epoch = epoch;
                    out.end_offset = end;
                }
                Err(code) => out.error_code = code.code(),
            }
            partitions.push(out);
        }
        topics.push(
            offset_for_leader_epoch_response::OffsetForLeaderTopicResult {
                topic: t.topic.clone(),
                partitions,
                ..Default::default()
            },
        );
    }
    OffsetForLeaderEpochResponse {
        throttle_time_ms: throttle,
        topics,
        ..Default::default()
    }
}

/// Kafka's `LeaderEpochFileCache.endOffsetFor`: (the largest epoch not above
/// `requested`, the start offset of the first epoch above it), or the log end offset
/// for the current epoch, or (-1, -1) for an epoch above every known one.
fn end_offset_for_epoch(p: &super::Partition, requested: i32) -> (i32, i64) {
    // (epoch, start offset) of each leader epoch that wrote data, then the current
    // one, which starts where the log ended when it was elected (or later).
    let mut epochs: Vec<(i32, i64)> = Vec::new();
    for b in &p.log.batches {
        let e = b.header.partition_leader_epoch;
        if epochs.last().is_none_or(|(last, _)| e > *last) {
            epochs.push((e, b.base_offset));
        }
    }
    if epochs.last().is_none_or(|(last, _)| p.leader_epoch > *last) {
        epochs.push((p.leader_epoch, p.log.log_end_offset));
    }
    if requested < 0 {
        return (-1, -1);
    }
    if requested == p.leader_epoch {
        return (requested, p.log.log_end_offset);
    }
    let higher = epochs.iter().find(|(e, _)| *e > requested);
    let floor = epochs.iter().rev().find(|(e, _)| *e <= requested);
    match (higher, floor) {
        (None, _) => (-1, -1),
        (Some(&(_, start)), None) => (requested, start),
        (Some(&(_, start)), Some(&(e, _))) => (e, start),
    }
}
