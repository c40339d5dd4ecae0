//! The simulated cluster driven by hand-made request frames and a virtual clock:
//! the harness the sim_* tests share.
#![allow(dead_code, clippy::unwrap_used)]

use kafka_sansio::messages::{
    FetchRequest, Message, ProduceRequest, Request, RequestHeader, ResponseHeader, fetch_request,
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
        let mut body = BytesMut::new();
        RequestHeader {
            request_api_key: R::API_KEY.as_i16(),
            request_api_version: version,
            correlation_id,
            client_id: Some("sim-test".into()),
            ..Default::default()
        }
        .encode(&mut body, R::API_KEY.request_header_version(version))
        .unwrap();
        request.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        (frame.freeze(), correlation_id)
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

pub fn values_of(records: &Bytes) -> Vec<(i64, String)> {
    let opts = DecodeOptions::default();
    let mut out = Vec::new();
    for b in BatchReader::new(records.clone(), opts) {
        for r in b.unwrap().records(&opts).unwrap() {
            let r = r.unwrap();
            out.push((
                r.offset,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            ));
        }
    }
    out
}
