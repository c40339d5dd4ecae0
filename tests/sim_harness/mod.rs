//! The simulated cluster driven by hand-made request frames and a virtual clock:
//! the harness the sim_* tests share.
#![allow(dead_code, clippy::unwrap_used)]

use kafka_sansio::messages::{
    FetchRequest, JoinGroupRequest, Message, OffsetCommitRequest, ProduceRequest, Request,
    RequestHeader, ResponseHeader, fetch_request, join_group_request, offset_commit_request,
    produce_request,
};
use kafka_sansio::records::{BatchBuilder, BatchConfig, BatchReader, DecodeOptions, NewRecord};
use kafka_sansio::sim::{Cluster, ClusterConfig, ConnectionId};
use kafka_sansio::wire::{BufMut, Bytes, BytesMut};
use std::time::{Duration, Instant};

pub struct Harness {
    pub cluster: Cluster,
    pub now: Instant,
    pub next_correlation: i32,
}

impl Harness {
    pub fn new(brokers: usize) -> Self {
        Self::with_config(ClusterConfig {
            brokers,
            ..ClusterConfig::default()
        })
    }

    pub fn with_config(config: ClusterConfig) -> Self {
        let now = Instant::now();
        Harness {
            cluster: Cluster::new(config, now),
            now,
            next_correlation: 1,
        }
    }

    pub fn frame<R: Request>(&mut self, request: &R, version: i16) -> (Bytes, i32) {
        let correlation_id = self.next_correlation;
        self.next_correlation += 1;
        let frame = request_frame(request, version, correlation_id, "sim-test");
        (frame, correlation_id)
    }

    /// A harness whose cluster (the default configuration, then `set`) holds
    /// `topic` with `partitions`, and a connection to it.
    pub fn with_topic(
        topic: &str,
        partitions: i32,
        set: impl FnOnce(&mut ClusterConfig),
    ) -> (Self, ConnectionId) {
        let mut config = ClusterConfig::default();
        set(&mut config);
        let mut h = Self::with_config(config);
        h.cluster.create_topic(topic, partitions, 1).unwrap();
        let c = h.cluster.connect(0, h.now).unwrap();
        (h, c)
    }

    pub fn read<R: Request>(
        &mut self,
        conn: ConnectionId,
        version: i16,
        correlation_id: i32,
    ) -> Option<R::Response> {
        let frame = self.cluster.poll_transmit(conn)?;
        let mut body = frame.slice(4..);
        let header =
            ResponseHeader::decode(&mut body, R::API_KEY.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation_id);
        let response = R::Response::decode(&mut body, version).unwrap();
        assert!(body.is_empty());
        Some(response)
    }

    pub fn call<R: Request>(
        &mut self,
        conn: ConnectionId,
        request: &R,
        version: i16,
    ) -> R::Response {
        let (frame, id) = self.frame(request, version);
        self.cluster.handle_input(conn, self.now, &frame);
        self.read::<R>(conn, version, id).expect("a response")
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.cluster.handle_timeout(self.now);
    }
}

pub fn batch(values: &[&str], producer: Option<(i64, i16, i32)>) -> Bytes {
    let mut buf = BytesMut::new();
    let mut config = BatchConfig::default();
    if let Some((id, epoch, seq)) = producer {
        config.producer_id = id;
        config.producer_epoch = epoch;
        config.base_sequence = seq;
    }
    let mut builder = BatchBuilder::new(&mut buf, &config);
    for (i, v) in values.iter().enumerate() {
        builder
            .append(
                &NewRecord::new(1_000 + i as i64)
                    .key(b"k")
                    .value(v.as_bytes()),
            )
            .unwrap();
    }
    builder.finish().unwrap();
    buf.freeze()
}

pub fn produce(topic: &str, partition: i32, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest {
        acks,
        timeout_ms: 1000,
        topic_data: vec![produce_request::TopicProduceData {
            name: topic.into(),
            partition_data: vec![produce_request::PartitionProduceData {
                index: partition,
                records: Some(records),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn fetch(
    topic: &str,
    partition: i32,
    offset: i64,
    min_bytes: i32,
    max_wait_ms: i32,
) -> FetchRequest {
    FetchRequest {
        replica_id: -1,
        max_wait_ms,
        min_bytes,
        max_bytes: 1 << 20,
        topics: vec![fetch_request::FetchTopic {
            topic: topic.into(),
            partitions: vec![fetch_request::FetchPartition {
                partition,
                fetch_offset: offset,
                partition_max_bytes: 1 << 20,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A request as the bytes on the wire: size prefix, header, body.
pub fn request_frame<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> Bytes {
    let mut body = BytesMut::new();
    RequestHeader {
        request_api_key: R::API_KEY.as_i16(),
        request_api_version: version,
        correlation_id,
        client_id: Some(client_id.into()),
        ..Default::default()
    }
    .encode(&mut body, R::API_KEY.request_header_version(version))
    .unwrap();
    request.encode(&mut body, version).unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    frame.freeze()
}

/// A batch of `records` records of `value_len` bytes each.
pub fn filler(value_len: usize, records: usize) -> Bytes {
    let value = "v".repeat(value_len);
    batch(&vec![value.as_str(); records], None)
}

/// `request` with `max_bytes` as its limit and its first partition's.
pub fn up_to(mut request: FetchRequest, max_bytes: i32) -> FetchRequest {
    request.max_bytes = max_bytes;
    for p in request.topics.iter_mut().flat_map(|t| &mut t.partitions) {
        p.partition_max_bytes = max_bytes;
    }
    request
}

/// A JoinGroup of the classic consumer protocol, one "range" protocol.
pub fn join(group: &str, member: &str, session_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest {
        group_id: group.into(),
        session_timeout_ms: session_ms,
        rebalance_timeout_ms: session_ms,
        member_id: member.into(),
        protocol_type: "consumer".into(),
        protocols: vec![join_group_request::JoinGroupRequestProtocol {
            name: "range".into(),
            metadata: Bytes::from_static(b"meta"),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// An OffsetCommit by `member` of `generation` in `group`: `offset` for "t"-0.
pub fn commit(group: &str, member: &str, generation: i32, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest {
        group_id: group.into(),
        generation_id_or_member_epoch: generation,
        member_id: member.into(),
        topics: vec![offset_commit_request::OffsetCommitRequestTopic {
            name: "t".into(),
            partitions: vec![offset_commit_request::OffsetCommitRequestPartition {
                partition_index: 0,
                committed_offset: offset,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn values_of(records: &Bytes) -> Vec<(i64, String)> {
    let opts = DecodeOptions::default();
    let mut out = Vec::new();
    for b in BatchReader::new(records.clone(), opts) {
        for r in b.unwrap().records(&opts).unwrap() {
            let r = r.unwrap();
            out.push((
                r.offset,
                String::from_utf8(r.value().unwrap().to_vec()).unwrap(),
            ));
        }
    }
    out
}
