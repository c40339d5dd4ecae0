//! Real peers for the integration tests, installed and started through the project's
//! own scripts (`scripts/peers/`), and one synchronous face over the three runtime
//! adapters so every scenario runs through each. Shared through `#[path]`; on its own
//! it holds no tests.
#![cfg(all(feature = "tokio", feature = "smol", feature = "blocking"))]
#![allow(dead_code, clippy::unwrap_used, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;

use kafka_sansio::connection::{Config, RequestOptions};
use kafka_sansio::messages::Request;
use kafka_sansio::runtime::{Error, Outcome};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script(name: &str) -> PathBuf {
    repo().join("scripts/peers").join(name)
}

/// librdkafka's mock cluster, started by `scripts/peers/start_mock.sh`.
pub struct Mock {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub bootstrap: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Librdkafka {
    /// Debian's 2.0.2.
    Debian,
    /// 2.16, from the confluent-kafka wheel.
    V216,
}

impl Mock {
    pub fn start(flavour: Librdkafka, brokers: usize, topics: &[&str]) -> Mock {
        let _ = peers_env();
        let mut cmd = Command::new("bash");
        cmd.arg(script("start_mock.sh"));
        if flavour == Librdkafka::V216 {
            cmd.args(["--librdkafka", "2.16"]);
        }
        cmd.args(["-b", &brokers.to_string()]);
        for t in topics {
            cmd.args(["-t", t]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start_mock.sh");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let bootstrap: Vec<String> = line.trim().split(',').map(str::to_owned).collect();
        assert!(
            bootstrap.iter().all(|b| b.contains(':')),
            "mock launcher printed {line:?}"
        );
        Mock {
            child,
            stdin,
            stdout,
            bootstrap,
        }
    }

    /// Sends one launcher command and returns its answer line.
    pub fn command(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        assert!(answer.starts_with("ok"), "{line}: {answer}");
        answer.trim().to_owned()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        // the launcher stops on quit; make sure of it
        std::thread::sleep(std::time::Duration::from_millis(50));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tansu, started by `scripts/peers/start_tansu.sh`.
pub struct Tansu {
    child: Child,
    pub addr: String,
}

impl Tansu {
    pub fn start() -> Tansu {
        let _ = peers_env();
        let mut child = Command::new("bash")
            .arg(script("start_tansu.sh"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start_tansu.sh");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line.trim().to_owned();
        assert!(
            addr.starts_with("127.0.0.1:"),
            "tansu launcher printed {line:?}"
        );
        Tansu { child, addr }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        // SIGTERM lets the script stop tansu and remove its folder
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The peers' environment from `install.sh` (KEY=VALUE lines), installing if needed.
/// Runs the installer once per test binary, so tests starting peers in parallel on a
/// fresh machine do not race two installs.
pub fn peers_env() -> std::collections::HashMap<String, String> {
    static ENV: std::sync::OnceLock<std::collections::HashMap<String, String>> =
        std::sync::OnceLock::new();
    ENV.get_or_init(install).clone()
}

fn install() -> std::collections::HashMap<String, String> {
    let out = Command::new("bash")
        .arg(script("install.sh"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("install.sh");
    assert!(out.status.success(), "install.sh failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Which adapter a [`Client`] goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    Tokio,
    Smol,
    Blocking,
}

pub const ADAPTERS: [Adapter; 3] = [Adapter::Tokio, Adapter::Smol, Adapter::Blocking];

/// One synchronous face over the three adapters.
pub enum Client {
    Tokio(
        Arc<tokio::runtime::Runtime>,
        kafka_sansio::tokio_runtime::Connection,
    ),
    Smol(kafka_sansio::smol_runtime::Connection),
    Blocking(kafka_sansio::blocking_runtime::Connection),
}

impl Client {
    pub fn connect(adapter: Adapter, addr: &str, config: Config) -> Result<Client, Error> {
        match adapter {
            Adapter::Tokio => {
                let rt = Arc::new(
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .unwrap(),
                );
                let conn = rt.block_on(kafka_sansio::tokio_runtime::Connection::connect(
                    addr.to_owned(),
                    config,
                ))?;
                Ok(Client::Tokio(rt, conn))
            }
            Adapter::Smol => {
                let (conn, driver) = futures_lite::future::block_on(
                    kafka_sansio::smol_runtime::Connection::connect(addr.to_owned(), config),
                )?;
                std::thread::spawn(move || futures_lite::future::block_on(driver));
                Ok(Client::Smol(conn))
            }
            Adapter::Blocking => Ok(Client::Blocking(
                kafka_sansio::blocking_runtime::Connection::connect(addr.to_owned(), config)?,
            )),
        }
    }

    pub fn version_for(&self, api_key: kafka_sansio::messages::ApiKey) -> Option<i16> {
        match self {
            Client::Tokio(_, c) => c.version_for(api_key),
            Client::Smol(c) => c.version_for(api_key),
            Client::Blocking(c) => c.version_for(api_key),
        }
    }

    pub fn send<R: Request + Send + 'static>(&self, request: R) -> Result<R::Response, Error> {
        match self {
            Client::Tokio(rt, c) => rt.block_on(c.send(request)),
            Client::Smol(c) => futures_lite::future::block_on(c.send(request)),
            Client::Blocking(c) => c.send(request),
        }
    }

    pub fn send_with<R: Request + Send + 'static>(
        &self,
        request: R,
        options: RequestOptions,
    ) -> Result<Outcome, Error> {
        match self {
            Client::Tokio(rt, c) => rt.block_on(c.send_with(request, options)),
            Client::Smol(c) => futures_lite::future::block_on(c.send_with(request, options)),
            Client::Blocking(c) => c.send_with(request, options),
        }
    }
}

// ----- Kafka calls the scenarios share -------------------------------------------

use bytes::{Bytes, BytesMut};
use kafka_sansio::messages::{
    FetchRequest, ListOffsetsRequest, MetadataRequest, MetadataResponse, ProduceRequest,
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_sansio::records::{
    BatchBuilder, BatchConfig, BatchReader, Compression, DecodeOptions, NewRecord,
};
use kafka_sansio::wire::Uuid;

pub const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// Metadata for one topic (auto-creating it where the broker does that).
pub fn metadata(client: &Client, topic: &str) -> MetadataResponse {
    client
        .send(MetadataRequest {
            topics: Some(vec![MetadataRequestTopic {
                name: Some(topic.into()),
                ..Default::default()
            }]),
            allow_auto_topic_creation: true,
            ..Default::default()
        })
        .unwrap()
}

/// The topic's id and partition count, retrying while the broker creates it.
pub fn topic_info(client: &Client, topic: &str) -> (Uuid, usize) {
    for _ in 0..50 {
        let md = metadata(client, topic);
        if let Some(t) = md.topics.iter().find(|t| {
            t.name.as_deref() == Some(topic) && t.error_code == 0 && !t.partitions.is_empty()
        }) {
            return (t.topic_id, t.partitions.len());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("topic {topic} never appeared");
}

/// One record batch holding `values`.
pub fn batch(
    values: &[Vec<u8>],
    compression: Compression,
    producer: Option<(i64, i16, i32)>,
) -> Bytes {
    let mut buf = BytesMut::new();
    let mut config = BatchConfig {
        compression,
        max_batch_bytes: 16 << 20,
        ..BatchConfig::default()
    };
    if let Some((id, epoch, seq)) = producer {
        config.producer_id = id;
        config.producer_epoch = epoch;
        config.base_sequence = seq;
    }
    let mut b = BatchBuilder::new(&mut buf, &config);
    for (i, v) in values.iter().enumerate() {
        let key = format!("k{i}");
        b.append(
            &NewRecord::new(1_700_000_000_000 + i as i64)
                .key(key.as_bytes())
                .value(v),
        )
        .unwrap();
    }
    b.finish().unwrap();
    buf.freeze()
}

pub fn produce_request(topic: &str, partition: i32, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest {
        acks,
        timeout_ms: 5000,
        topic_data: vec![TopicProduceData {
            name: topic.into(),
            partition_data: vec![PartitionProduceData {
                index: partition,
                records: Some(records),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Produces with acks=all and returns the base offset.
pub fn produce(client: &Client, topic: &str, partition: i32, records: Bytes) -> i64 {
    let resp = client
        .send(produce_request(topic, partition, -1, records))
        .unwrap();
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "produce error {:?}", p);
    p.base_offset
}

thread_local! {
    static SEEN_CODECS: std::cell::RefCell<Vec<Compression>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The codecs of the v2 batches [`fetch`] decoded on this thread since the last call.
pub fn take_seen_codecs() -> Vec<Compression> {
    SEEN_CODECS.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

/// Fetches from `offset` until `count` records were read (or a few tries passed);
/// returns (offset, key, value) per record.
pub fn fetch(
    client: &Client,
    topic: &str,
    topic_id: Uuid,
    partition: i32,
    offset: i64,
    count: usize,
) -> Vec<(i64, Option<Bytes>, Option<Bytes>)> {
    let mut out = Vec::new();
    let mut next = offset;
    for _ in 0..20 {
        if out.len() >= count {
            break;
        }
        let resp = client
            .send(FetchRequest {
                replica_id: -1,
                max_wait_ms: 100,
                min_bytes: 1,
                max_bytes: 8 << 20,
                topics: vec![FetchTopic {
                    topic: topic.into(),
                    topic_id,
                    partitions: vec![FetchPartition {
                        partition,
                        fetch_offset: next,
                        partition_max_bytes: 4 << 20,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(resp.error_code, 0);
        for t in &resp.responses {
            for p in &t.partitions {
                assert_eq!(p.error_code, 0, "fetch error on {topic}/{partition}");
                let Some(records) = p.records.clone() else {
                    continue;
                };
                let opts = DecodeOptions::default();
                for b in BatchReader::new(records, opts) {
                    let b = b.unwrap();
                    if let Some(v2) = b.clone().into_v2() {
                        SEEN_CODECS.with(|s| s.borrow_mut().push(v2.header.compression().unwrap()));
                    }
                    for r in b.records(&opts).unwrap() {
                        let r = r.unwrap();
                        if r.offset >= next {
                            next = r.offset + 1;
                            out.push((r.offset, r.key_bytes(), r.value_bytes()));
                        }
                    }
                }
            }
        }
    }
    out
}

/// The latest offset (high watermark) of a partition.
pub fn latest_offset(client: &Client, topic: &str, partition: i32) -> i64 {
    let resp = client
        .send(ListOffsetsRequest {
            replica_id: -1,
            topics: vec![ListOffsetsTopic {
                name: topic.into(),
                partitions: vec![ListOffsetsPartition {
                    partition_index: partition,
                    timestamp: -1,
                    max_num_offsets: 1,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap();
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    if p.offset >= 0 {
        p.offset
    } else {
        p.old_style_offsets[0]
    }
}

/// Values that differ per codec and per record, some compressible, some not.
pub fn values(tag: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut v = format!("{tag}-{i}-").into_bytes();
            v.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, i * 7));
            v.extend((0..(i * 13) as u32).map(|x| (x.wrapping_mul(2654435761) >> 13) as u8));
            v
        })
        .collect()
}

pub fn codec_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

/// A one-member consumer group: FindCoordinator, JoinGroup (with the
/// MEMBER_ID_REQUIRED round of v4+), SyncGroup, Heartbeat, LeaveGroup.
pub fn group_lifecycle(addr: &str, adapter: Adapter, non_flexible_only: bool) {
    // JoinGroup, SyncGroup, Heartbeat become flexible at v6, v4, v4
    let cap = |flexible_from: i16| {
        if non_flexible_only {
            flexible_from - 1
        } else {
            i16::MAX
        }
    };
    use kafka_sansio::messages::{
        HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
        join_group_request::JoinGroupRequestProtocol,
        sync_group_request::SyncGroupRequestAssignment,
    };
    let client = Client::connect(adapter, addr, Config::new("group")).unwrap();
    // a fresh group id per run: the mock does not let a group id be reused
    let group = format!("group-{adapter:?}-{}", std::process::id());
    let join = |member_id: &str| {
        send_capped(
            &client,
            JoinGroupRequest {
                group_id: group.as_str().into(),
                session_timeout_ms: 6000,
                rebalance_timeout_ms: 1000,
                member_id: member_id.into(),
                protocol_type: "consumer".into(),
                protocols: vec![JoinGroupRequestProtocol {
                    name: "range".into(),
                    metadata: bytes::Bytes::from_static(b"\0\0\0\0\0\x01\0\x01g\0\0\0\0"),
                    ..Default::default()
                }],
                ..Default::default()
            },
            cap(6),
        )
    };
    let mut joined = join("");
    if kafka_sansio::messages::ErrorCode(joined.error_code)
        == kafka_sansio::messages::ErrorCode::MEMBER_ID_REQUIRED
    {
        let id = joined.member_id.to_string();
        joined = join(&id);
    }
    assert_eq!(joined.error_code, 0, "{joined:?}");
    assert_eq!(joined.leader, joined.member_id, "the only member leads");
    let member = joined.member_id.clone();
    let synced = send_capped(
        &client,
        SyncGroupRequest {
            group_id: group.as_str().into(),
            generation_id: joined.generation_id,
            member_id: member.clone(),
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments: vec![SyncGroupRequestAssignment {
                member_id: member.clone(),
                assignment: bytes::Bytes::from_static(b"assigned"),
                ..Default::default()
            }],
            ..Default::default()
        },
        cap(4),
    );
    assert_eq!(synced.error_code, 0, "{synced:?}");
    assert_eq!(synced.assignment.as_ref(), b"assigned");
    let hb = send_capped(
        &client,
        HeartbeatRequest {
            group_id: group.as_str().into(),
            generation_id: joined.generation_id,
            member_id: member.clone(),
            ..Default::default()
        },
        cap(4),
    );
    assert_eq!(hb.error_code, 0);
    let left = send_capped(
        &client,
        LeaveGroupRequest {
            group_id: group.as_str().into(),
            member_id: member,
            ..Default::default()
        },
        2,
    );
    assert_eq!(left.error_code, 0);
}

/// Sends with a version cap and decodes the response.
pub fn send_capped<R: kafka_sansio::messages::Request + Send + 'static>(
    client: &Client,
    request: R,
    max_version: i16,
) -> R::Response {
    match client
        .send_with(
            request,
            kafka_sansio::connection::RequestOptions::max_version(max_version),
        )
        .unwrap()
    {
        kafka_sansio::runtime::Outcome::Response(r) => r.decode::<R>().unwrap(),
        other => panic!("{other:?}"),
    }
}
