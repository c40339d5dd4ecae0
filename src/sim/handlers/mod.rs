//! The broker side of each API the simulated cluster implements, one file per
//! protocol area: [`produce`], [`fetch`], [`offsets`] (ListOffsets, DeleteRecords,
//! OffsetForLeaderEpoch, OffsetCommit, OffsetFetch), [`admin`] (ApiVersions,
//! Metadata, topics and partitions, InitProducerId), [`configs`] (DescribeConfigs,
//! AlterConfigs, IncrementalAlterConfigs), [`groups`] (FindCoordinator and the
//! classic group protocol), [`consumer_groups`] (KIP-848) and [`sasl`].
//!
//! This file holds what they share: the dispatcher, the versions the broker answers,
//! and [`per_partition`], the one loop that turns a request's topics and partitions
//! into a response's.

mod admin;
mod configs;
mod consumer_groups;
mod fetch;
mod groups;
mod offsets;
mod produce;
mod sasl;
mod transactions;

pub(crate) use fetch::FetchContext;
pub(crate) use offsets::CommittedOffset;

use super::{Cluster, ClusterConfig, ConnectionId, Partition, Pending};
use crate::messages::{
    ApiKey, ErrorCode, Message, RequestBody, ResponseBody, ResponseHeader, api_versions_response,
};
use crate::messages::{add_partitions_to_txn_response as apr, txn_offset_commit_response as tcr};
use crate::messages::{
    delete_records_response as drs, fetch_response as fs, list_offsets_response as los,
    offset_commit_response as ocs, offset_fetch_response as ofs,
    offset_for_leader_epoch_response as oes, produce_response as ps,
};
use crate::wire::{BufMut, ByteString, Bytes, BytesMut, VersionRange};
use std::time::Instant;

/// What became of a request.
pub(crate) enum Outcome {
    /// The response frame, size prefix included.
    Respond(Bytes),
    /// A request without a response (Produce with acks=0).
    NoResponse,
    /// Not answerable yet: keep it and look again later.
    Wait,
    /// Close the connection, as Kafka does with a request it cannot handle.
    Close,
}

/// One request being answered: the cluster, and what every handler needs to know
/// about the request besides its body.
pub(crate) struct Call<'a> {
    cluster: &'a mut Cluster,
    /// The request as it waits on its connection (a parked request keeps its
    /// deadline there between looks).
    pending: &'a mut Pending,
    /// The connection it came on.
    conn: ConnectionId,
    /// The broker that connection reaches.
    broker: i32,
    /// The request's version.
    version: i16,
    /// The request header's client id.
    client_id: Option<ByteString>,
    /// The cluster's time.
    now: Instant,
    /// An error injected for this request ([`Cluster::inject_error`]): it answers
    /// the request, in every partition or at the top level as the API has it, and
    /// nothing changes. Taken the first time the request is looked at.
    injected: Option<ErrorCode>,
}

impl Call<'_> {
    /// The injected error as a result, for chaining before a handler's own checks.
    pub(super) fn check_injected(&self) -> Result<(), ErrorCode> {
        self.injected.map_or(Ok(()), Err)
    }

    /// The partition `topic`/`partition` if this broker leads it, else the error a
    /// client gets for asking the wrong broker (an injected error comes first).
    pub(super) fn on_leader(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<&mut Partition, ErrorCode> {
        self.check_injected()?;
        let t = self
            .cluster
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
        if p.leader != self.broker {
            return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
        }
        Ok(p)
    }
}

/// The versions the simulated broker answers for `api` (`None`: not implemented).
pub(crate) fn supported_versions(api: ApiKey, config: &ClusterConfig) -> Option<VersionRange> {
    let sasl = config.sasl.is_some();
    let kip848 = config.consumer_group_protocol;
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
        // Transactions (handlers/transactions.rs), at the versions clients send
        // (AddPartitionsToTxn v4+ is between brokers); before KIP-890's part 2.
        ApiKey::AddPartitionsToTxn => (0, 3),
        ApiKey::AddOffsetsToTxn => (0, 3),
        ApiKey::TxnOffsetCommit => (0, 3),
        ApiKey::EndTxn => (0, 3),
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
        ApiKey::DescribeGroups => (0, 5),
        ApiKey::ListGroups => (0, 5),
        // KIP-848, as Kafka 4 (src/sim/consumer_groups.rs).
        ApiKey::ConsumerGroupHeartbeat if kip848 => (0, 1),
        ApiKey::ConsumerGroupDescribe if kip848 => (0, 1),
        // Topic configs, and a read-only set of broker configs (handlers/configs.rs).
        ApiKey::DescribeConfigs => (0, 4),
        ApiKey::AlterConfigs => (0, 2),
        ApiKey::IncrementalAlterConfigs => (0, 1),
        _ => return None,
    };
    VersionRange { min, max }.intersect(&api.valid_versions())
}

/// Encodes a response frame (size, header and body) at `version`, in one buffer of
/// the exact size (a Fetch response's record data is copied once, not grown into);
/// a frame over 2 GiB, which no size prefix can say, closes the connection instead
/// of going out with a wrapped size.
fn respond(api: ApiKey, version: i16, correlation_id: i32, body: ResponseBody) -> Outcome {
    let mut head = BytesMut::new();
    let header = ResponseHeader {
        correlation_id,
        ..Default::default()
    };
    if header
        .encode(&mut head, api.response_header_version(version))
        .is_err()
    {
        return Outcome::Close;
    }
    let body = match &body {
        ResponseBody::Fetch(fetch) => fetch.encode_chunks(version),
        other => {
            let mut out = BytesMut::new();
            other.encode(&mut out, version).map(|()| vec![out.freeze()])
        }
    };
    let Ok(body) = body else {
        return Outcome::Close;
    };
    let len = head.len() + body.iter().map(Bytes::len).sum::<usize>();
    let Ok(size) = i32::try_from(len) else {
        return Outcome::Close;
    };
    // One allocation of the exact size, one copy of the record data.
    let mut frame = BytesMut::with_capacity(4 + len);
    frame.put_i32(size);
    frame.extend_from_slice(&head);
    for chunk in &body {
        frame.extend_from_slice(chunk);
    }
    Outcome::Respond(frame.freeze())
}

/// Answers (or parks) the request `pending` that arrived on `conn`.
pub(crate) fn handle(
    cluster: &mut Cluster,
    conn: ConnectionId,
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
    let client_id = header.client_id.clone();
    let Some(supported) = supported_versions(api, &cluster.config) else {
        return Outcome::Close;
    };
    if !sasl::may_call(cluster, conn, api) {
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
    let takes_errors = !matches!(
        api,
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
    );
    let injected = if takes_errors && !pending.seen {
        cluster.take_injected(api).map(ErrorCode::from)
    } else {
        None
    };
    pending.seen = true;
    let throttle = cluster.faults.throttle_ms;
    let mut call = Call {
        cluster,
        pending,
        conn,
        broker,
        version,
        client_id,
        now,
        injected,
    };
    match answer(&mut call, request) {
        Ok(mut body) => {
            set_throttle(&mut body, throttle);
            respond(api, version, correlation_id, body)
        }
        Err(outcome) => outcome,
    }
}

/// The handler of each API; `Err` for a request answered otherwise than now.
fn answer(call: &mut Call, request: RequestBody) -> Result<ResponseBody, Outcome> {
    Ok(match request {
        RequestBody::ApiVersions(_) => api_versions(call.cluster, ErrorCode::NONE).into(),
        RequestBody::Metadata(r) => admin::metadata(call, &r).into(),
        RequestBody::CreateTopics(r) => admin::create_topics(call, &r).into(),
        RequestBody::DeleteTopics(r) => admin::delete_topics(call, &r).into(),
        RequestBody::CreatePartitions(r) => admin::create_partitions(call, &r).into(),
        RequestBody::InitProducerId(r) => admin::init_producer_id(call, &r).into(),
        RequestBody::AddPartitionsToTxn(r) => transactions::add_partitions_to_txn(call, &r).into(),
        RequestBody::AddOffsetsToTxn(r) => transactions::add_offsets_to_txn(call, &r).into(),
        RequestBody::TxnOffsetCommit(r) => transactions::txn_offset_commit(call, &r).into(),
        RequestBody::EndTxn(r) => transactions::end_txn(call, &r).into(),
        // acks=0: Kafka never answers.
        RequestBody::Produce(r) => produce::produce(call, &r)
            .ok_or(Outcome::NoResponse)?
            .into(),
        RequestBody::Fetch(r) => fetch::fetch(call, &r).ok_or(Outcome::Wait)?.into(),
        RequestBody::ListOffsets(r) => offsets::list_offsets(call, &r).into(),
        RequestBody::DeleteRecords(r) => offsets::delete_records(call, &r).into(),
        RequestBody::OffsetForLeaderEpoch(r) => offsets::offset_for_leader_epoch(call, &r).into(),
        RequestBody::OffsetCommit(r) => offsets::offset_commit(call, &r).into(),
        RequestBody::OffsetFetch(r) => offsets::offset_fetch(call, &r).into(),
        RequestBody::FindCoordinator(r) => groups::find_coordinator(call, &r).into(),
        RequestBody::JoinGroup(r) => groups::join_group(call, &r).ok_or(Outcome::Wait)?.into(),
        RequestBody::SyncGroup(r) => groups::sync_group(call, &r).ok_or(Outcome::Wait)?.into(),
        RequestBody::Heartbeat(r) => groups::heartbeat(call, &r).into(),
        RequestBody::LeaveGroup(r) => groups::leave_group(call, &r).into(),
        RequestBody::DescribeGroups(r) => groups::describe_groups(call, &r).into(),
        RequestBody::ListGroups(r) => groups::list_groups(call, &r).into(),
        RequestBody::ConsumerGroupHeartbeat(r) => consumer_groups::heartbeat(call, &r).into(),
        RequestBody::ConsumerGroupDescribe(r) => consumer_groups::describe(call, &r).into(),
        RequestBody::DescribeConfigs(r) => configs::describe_configs(call, &r).into(),
        RequestBody::AlterConfigs(r) => configs::alter_configs(call, &r).into(),
        RequestBody::IncrementalAlterConfigs(r) => {
            configs::incremental_alter_configs(call, &r).into()
        }
        RequestBody::SaslHandshake(r) => sasl::handshake(call, &r).into(),
        RequestBody::SaslAuthenticate(r) => {
            sasl::authenticate(call, &r).ok_or(Outcome::Close)?.into()
        }
        _ => return Err(Outcome::Close),
    })
}

/// Reports [`Faults::throttle_ms`](crate::sim::Faults::throttle_ms) in a response
/// that has a throttle time.
fn set_throttle(body: &mut ResponseBody, ms: i32) {
    let field = match body {
        ResponseBody::ApiVersions(r) => &mut r.throttle_time_ms,
        ResponseBody::Metadata(r) => &mut r.throttle_time_ms,
        ResponseBody::CreateTopics(r) => &mut r.throttle_time_ms,
        ResponseBody::DeleteTopics(r) => &mut r.throttle_time_ms,
        ResponseBody::CreatePartitions(r) => &mut r.throttle_time_ms,
        ResponseBody::InitProducerId(r) => &mut r.throttle_time_ms,
        ResponseBody::AddPartitionsToTxn(r) => &mut r.throttle_time_ms,
        ResponseBody::AddOffsetsToTxn(r) => &mut r.throttle_time_ms,
        ResponseBody::TxnOffsetCommit(r) => &mut r.throttle_time_ms,
        ResponseBody::EndTxn(r) => &mut r.throttle_time_ms,
        ResponseBody::Produce(r) => &mut r.throttle_time_ms,
        ResponseBody::Fetch(r) => &mut r.throttle_time_ms,
        ResponseBody::ListOffsets(r) => &mut r.throttle_time_ms,
        ResponseBody::DeleteRecords(r) => &mut r.throttle_time_ms,
        ResponseBody::OffsetForLeaderEpoch(r) => &mut r.throttle_time_ms,
        ResponseBody::OffsetCommit(r) => &mut r.throttle_time_ms,
        ResponseBody::OffsetFetch(r) => &mut r.throttle_time_ms,
        ResponseBody::FindCoordinator(r) => &mut r.throttle_time_ms,
        ResponseBody::JoinGroup(r) => &mut r.throttle_time_ms,
        ResponseBody::SyncGroup(r) => &mut r.throttle_time_ms,
        ResponseBody::Heartbeat(r) => &mut r.throttle_time_ms,
        ResponseBody::LeaveGroup(r) => &mut r.throttle_time_ms,
        ResponseBody::DescribeGroups(r) => &mut r.throttle_time_ms,
        ResponseBody::ListGroups(r) => &mut r.throttle_time_ms,
        ResponseBody::ConsumerGroupHeartbeat(r) => &mut r.throttle_time_ms,
        ResponseBody::ConsumerGroupDescribe(r) => &mut r.throttle_time_ms,
        ResponseBody::DescribeConfigs(r) => &mut r.throttle_time_ms,
        ResponseBody::AlterConfigs(r) => &mut r.throttle_time_ms,
        ResponseBody::IncrementalAlterConfigs(r) => &mut r.throttle_time_ms,
        _ => return,
    };
    *field = ms;
}

/// The ApiVersions answer: every API the broker implements, with its versions.
fn api_versions(cluster: &Cluster, error: ErrorCode) -> crate::messages::ApiVersionsResponse {
    let api_keys = ApiKey::ALL
        .iter()
        .filter_map(|k| {
            supported_versions(*k, &cluster.config).map(|r| api_versions_response::ApiVersion {
                api_key: k.as_i16(),
                min_version: r.min,
                max_version: r.max,
                ..Default::default()
            })
        })
        .collect();
    crate::messages::ApiVersionsResponse {
        error_code: error.code(),
        api_keys,
        ..Default::default()
    }
}

/// A response's entry for one topic, made of the topic's name and the answers for
/// its partitions (`P`), in the order they were asked.
pub(super) trait TopicResponse<P> {
    fn new(topic: ByteString, partitions: Vec<P>) -> Self;
}

/// `TopicResponse` for response topic entry types: `Type { name field, partitions
/// field }: partition entry type;`.
macro_rules! topic_responses {
    ($($resp:ty { $name:ident, $parts:ident }: $part:ty;)*) => {$(
        impl TopicResponse<$part> for $resp {
            fn new(topic: ByteString, partitions: Vec<$part>) -> Self {
                Self { $name: topic, $parts: partitions, ..Default::default() }
            }
        }
    )*};
}
topic_responses! {
    ps::TopicProduceResponse { name, partition_responses }: ps::PartitionProduceResponse;
    fs::FetchableTopicResponse { topic, partitions }: fs::PartitionData;
    los::ListOffsetsTopicResponse { name, partitions }: los::ListOffsetsPartitionResponse;
    drs::DeleteRecordsTopicResult { name, partitions }: drs::DeleteRecordsPartitionResult;
    oes::OffsetForLeaderTopicResult { topic, partitions }: oes::EpochEndOffset;
    ocs::OffsetCommitResponseTopic { name, partitions }: ocs::OffsetCommitResponsePartition;
    ofs::OffsetFetchResponseTopic { name, partitions }: ofs::OffsetFetchResponsePartition;
    ofs::OffsetFetchResponseTopics { name, partitions }: ofs::OffsetFetchResponsePartitions;
    apr::AddPartitionsToTxnTopicResult { name, results_by_partition }: apr::AddPartitionsToTxnPartitionResult;
    tcr::TxnOffsetCommitResponseTopic { name, partitions }: tcr::TxnOffsetCommitResponsePartition;
}

/// The one loop over a request's topics and their partitions: `entry` gives a
/// request topic's name and partitions, `each` answers one partition (given its
/// topic), and the answers come back as the response's topic entries, in the
/// request's order.
pub(super) fn per_partition<'r, T, P: 'r, A, R>(
    topics: &'r [T],
    entry: impl Fn(&'r T) -> (&'r ByteString, &'r [P]),
    mut each: impl FnMut(&'r T, &'r P) -> A,
) -> Vec<R>
where
    R: TopicResponse<A>,
{
    topics
        .iter()
        .map(|t| {
            let (name, partitions) = entry(t);
            let answers = partitions.iter().map(|p| each(t, p)).collect();
            R::new(name.clone(), answers)
        })
        .collect()
}

/// The error code a partition's answer carries: 0 for `Ok`.
pub(super) fn error_code<T>(result: &Result<T, ErrorCode>) -> i16 {
    result.as_ref().err().map_or(0, |e| e.code())
}

/// An error's own text, as Kafka puts it in a response's error message.
pub(super) fn error_message(e: ErrorCode) -> Option<ByteString> {
    Some(ByteString::from(e.message().unwrap_or("").to_string()))
}

/// Kafka's topic name rule: 1-249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub(super) fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}
