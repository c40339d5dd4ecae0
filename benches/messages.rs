//! Decode/encode throughput and allocations of large responses, side by side with the
//! `kafka-protocol` crate on the same bytes.
//!
//! Cases: a Metadata response of 1,000 topics x 10 partitions (v12 flexible, v8 the newest
//! non-flexible) and a Fetch response holding 1 MiB of records over 10 partitions (v12
//! flexible, v11 non-flexible). The input bytes are built once by our encoder; before
//! anything is timed, both implementations must decode them to the same content and
//! re-encode them to the same bytes.
//!
//! ```text
//! cargo bench --bench messages --no-run          # build once; prints the binary's path
//! target/release/deps/messages-HASH              # timing + allocation table
//! target/release/deps/messages-HASH --callgrind  # ... plus instructions per op (valgrind)
//! target/release/deps/messages-HASH --list       # the single ops, for a profiler:
//! target/release/deps/messages-HASH --only metadata-v12/decode/ours --iters 3
//! cargo bench --bench messages -- --callgrind                       # build and run in one
//! cargo bench --profile bench-lto --bench messages -- --callgrind   # fat LTO, 1 codegen unit
//! ```
//!
//! `scripts/bench.sh messages` runs `--callgrind` under both profiles, one after the other.
//!
//! Options: `--rounds N` (timed rounds, alternating sides; default 15), `--sample-ms N`
//! (length of one timed batch; default 40), `--callgrind-dir DIR` (where callgrind's
//! output files are kept for `callgrind_annotate`; default `target/callgrind/PROFILE`,
//! `release` or `bench-lto`), and a bare word to run only the cases whose name contains it.
//!
//! "decode" is decode + drop of the decoded value, from a `Bytes` handle of the input;
//! "encode" writes the whole message into a reused, pre-sized `BytesMut`; "encode-zero-copy"
//! is our `encode_chunks` (record batches by reference, for a vectored write) against
//! kafka-protocol into `BytesMut`, its only path; "encode-vec"
//! the same into a reused `Vec<u8>` (both crates accept either; ours through
//! `Message::encode_to_vec`, which writes through a cursor instead of one `Vec` capacity
//! check per field).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // tests and tools own their clock and sockets

#[path = "common/build_profile.rs"]
mod build_profile;
#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use kafka_protocol::messages as kp;
use kafka_protocol::protocol::{Decodable as _, Encodable as _, StrBytes};
use kafka_sansio::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_sansio::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_sansio::messages::{FetchResponse, MetadataResponse};
use kafka_sansio::wire::{BufMut, Bytes, BytesMut, Message, Uuid};

#[global_allocator]
static ALLOC: counting_alloc::CountingAlloc = counting_alloc::CountingAlloc;

// ---------------------------------------------------------------------------------------
// Inputs

const TOPICS: usize = 1_000;
const PARTITIONS: usize = 10;
const BROKERS: usize = 6;
const FETCH_PARTITIONS: usize = 10;
const FETCH_RECORD_BYTES: usize = 1 << 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Metadata,
    Fetch,
}

/// One message at one version.
#[derive(Clone, Copy)]
struct CaseDef {
    name: &'static str,
    api: Api,
    version: i16,
}

const CASES: [CaseDef; 4] = [
    CaseDef {
        name: "metadata-v12",
        api: Api::Metadata,
        version: 12,
    },
    CaseDef {
        name: "metadata-v8",
        api: Api::Metadata,
        version: 8,
    },
    CaseDef {
        name: "fetch-v12",
        api: Api::Fetch,
        version: 12,
    },
    CaseDef {
        name: "fetch-v11",
        api: Api::Fetch,
        version: 11,
    },
];

/// A deterministic pseudo-random sequence (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn build_metadata(version: i16) -> MetadataResponse {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let brokers = (0..BROKERS as i32)
        .map(|id| MetadataResponseBroker {
            node_id: id,
            host: format!("broker-{id}.kafka.bench.svc.cluster.local").into(),
            port: 9092,
            rack: Some(format!("rack-{}", id % 3).into()),
            ..Default::default()
        })
        .collect();
    let topics = (0..TOPICS)
        .map(|t| MetadataResponseTopic {
            error_code: 0,
            name: Some(format!("bench.events.topic-{t:05}").into()),
            topic_id: if version >= 10 {
                Uuid::from_u128(u128::from(rng.next()) << 64 | u128::from(rng.next()))
            } else {
                Uuid::ZERO
            },
            is_internal: false,
            partitions: (0..PARTITIONS)
                .map(|p| {
                    let leader = ((t + p) % BROKERS) as i32;
                    let replicas: Vec<i32> =
                        (0..3).map(|r| (leader + r) % BROKERS as i32).collect();
                    // Every seventh partition has a replica out of sync.
                    let isr = if (t + p) % 7 == 0 {
                        replicas[..2].to_vec()
                    } else {
                        replicas.clone()
                    };
                    MetadataResponsePartition {
                        error_code: 0,
                        partition_index: p as i32,
                        leader_id: leader,
                        leader_epoch: (t % 50) as i32,
                        replica_nodes: replicas.into(),
                        isr_nodes: isr.into(),
                        offline_replicas: Default::default(),
                        ..Default::default()
                    }
                })
                .collect(),
            topic_authorized_operations: i32::MIN,
            ..Default::default()
        })
        .collect();
    MetadataResponse {
        throttle_time_ms: 0,
        brokers,
        cluster_id: Some("bench-cluster-Zx3kQvW9T1uOaLbC".into()),
        controller_id: 1,
        topics,
        ..Default::default()
    }
}

fn build_fetch() -> FetchResponse {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let per = FETCH_RECORD_BYTES / FETCH_PARTITIONS;
    let partitions = (0..FETCH_PARTITIONS)
        .map(|p| {
            let len = if p + 1 == FETCH_PARTITIONS {
                FETCH_RECORD_BYTES - per * (FETCH_PARTITIONS - 1)
            } else {
                per
            };
            // Opaque bytes: at this layer RECORDS is a byte string (both crates keep it
            // as `Bytes`); the record-batch layer parses it later.
            let records: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            PartitionData {
                partition_index: p as i32,
                error_code: 0,
                high_watermark: 1_000_000 + p as i64,
                last_stable_offset: 1_000_000 + p as i64,
                log_start_offset: 0,
                aborted_transactions: Some(Vec::new()),
                preferred_read_replica: -1,
                records: Some(Bytes::from(records)),
                ..Default::default()
            }
        })
        .collect();
    FetchResponse {
        throttle_time_ms: 0,
        error_code: 0,
        session_id: 12345,
        responses: vec![FetchableTopicResponse {
            topic: "bench.events.orders".into(),
            partitions,
            ..Default::default()
        }],
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------
// Equivalence of the two decodings

fn same_str(a: &str, b: &StrBytes) -> bool {
    a == b.as_str()
}

fn same_opt_str(a: Option<&str>, b: Option<&StrBytes>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same_str(a, b),
        (None, None) => true,
        _ => false,
    }
}

fn same_ids(a: &[i32], b: &[kp::BrokerId]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| *x == y.0)
}

fn same_metadata(a: &MetadataResponse, b: &kp::MetadataResponse) -> bool {
    a.throttle_time_ms == b.throttle_time_ms
        && a.controller_id == b.controller_id.0
        && a.cluster_authorized_operations == b.cluster_authorized_operations
        && a.error_code == b.error_code
        && same_opt_str(a.cluster_id.as_deref(), b.cluster_id.as_ref())
        && a.unknown_tagged_fields.is_empty()
        && b.unknown_tagged_fields.is_empty()
        && a.brokers.len() == b.brokers.len()
        && a.brokers.iter().zip(&b.brokers).all(|(x, y)| {
            x.node_id == y.node_id.0
                && same_str(&x.host, &y.host)
                && x.port == y.port
                && same_opt_str(x.rack.as_deref(), y.rack.as_ref())
        })
        && a.topics.len() == b.topics.len()
        && a.topics.iter().zip(&b.topics).all(|(x, y)| {
            x.error_code == y.error_code
                && same_opt_str(x.name.as_deref(), y.name.as_ref().map(|n| &n.0))
                && x.topic_id.as_bytes() == y.topic_id.as_bytes()
                && x.is_internal == y.is_internal
                && x.topic_authorized_operations == y.topic_authorized_operations
                && x.partitions.len() == y.partitions.len()
                && x.partitions.iter().zip(&y.partitions).all(|(p, q)| {
                    p.error_code == q.error_code
                        && p.partition_index == q.partition_index
                        && p.leader_id == q.leader_id.0
                        && p.leader_epoch == q.leader_epoch
                        && same_ids(&p.replica_nodes, &q.replica_nodes)
                        && same_ids(&p.isr_nodes, &q.isr_nodes)
                        && same_ids(&p.offline_replicas, &q.offline_replicas)
                })
        })
}

fn same_fetch(a: &FetchResponse, b: &kp::FetchResponse) -> bool {
    a.throttle_time_ms == b.throttle_time_ms
        && a.error_code == b.error_code
        && a.session_id == b.session_id
        && a.node_endpoints.is_empty()
        && b.node_endpoints.is_empty()
        && a.responses.len() == b.responses.len()
        && a.responses.iter().zip(&b.responses).all(|(x, y)| {
            same_str(&x.topic, &y.topic.0)
                && x.topic_id.as_bytes() == y.topic_id.as_bytes()
                && x.partitions.len() == y.partitions.len()
                && x.partitions.iter().zip(&y.partitions).all(|(p, q)| {
                    p.partition_index == q.partition_index
                        && p.error_code == q.error_code
                        && p.high_watermark == q.high_watermark
                        && p.last_stable_offset == q.last_stable_offset
                        && p.log_start_offset == q.log_start_offset
                        && p.preferred_read_replica == q.preferred_read_replica.0
                        && p.aborted_transactions.as_ref().map(Vec::len)
                            == q.aborted_transactions.as_ref().map(Vec::len)
                        && p.records == q.records
                        && p.current_leader.leader_id == q.current_leader.leader_id.0
                        && p.current_leader.leader_epoch == q.current_leader.leader_epoch
                        && p.diverging_epoch.epoch == q.diverging_epoch.epoch
                        && p.diverging_epoch.end_offset == q.diverging_epoch.end_offset
                        && p.snapshot_id.epoch == q.snapshot_id.epoch
                        && p.snapshot_id.end_offset == q.snapshot_id.end_offset
                })
        })
}

/// Heap blocks a decoded value needs at the least: one per non-empty `Vec`. Strings,
/// bytes and records are slices of the input, so any allocation above this is one per
/// string or byte field.
fn metadata_min_allocs(m: &MetadataResponse) -> u64 {
    let nonempty = |n: usize| u64::from(n > 0);
    // Scalar lists keep a few values inline and allocate only past that.
    let heap_list = |n: usize| u64::from(n > kafka_sansio::wire::INLINE_CAPACITY);
    nonempty(m.brokers.len())
        + nonempty(m.topics.len())
        + m.topics
            .iter()
            .map(|t| {
                nonempty(t.partitions.len())
                    + t.partitions
                        .iter()
                        .map(|p| {
                            heap_list(p.replica_nodes.len())
                                + heap_list(p.isr_nodes.len())
                                + heap_list(p.offline_replicas.len())
                        })
                        .sum::<u64>()
            })
            .sum::<u64>()
}

fn fetch_min_allocs(f: &FetchResponse) -> u64 {
    let nonempty = |n: usize| u64::from(n > 0);
    nonempty(f.responses.len())
        + f.responses
            .iter()
            .map(|t| {
                nonempty(t.partitions.len())
                    + t.partitions
                        .iter()
                        .map(|p| nonempty(p.aborted_transactions.as_ref().map_or(0, Vec::len)))
                        .sum::<u64>()
            })
            .sum::<u64>()
}

/// The encoded bytes of a case, checked against both implementations, and both
/// decodings of them.
struct Case {
    def: CaseDef,
    input: Bytes,
    ours: Ours,
    theirs: Theirs,
    min_allocs: u64,
}

enum Ours {
    Metadata(MetadataResponse),
    Fetch(FetchResponse),
}

enum Theirs {
    Metadata(kp::MetadataResponse),
    Fetch(kp::FetchResponse),
}

fn encode_ours<B: BufMut>(value: &Ours, version: i16, buf: &mut B) {
    match value {
        Ours::Metadata(m) => m.encode(buf, version).expect("our Metadata encodes"),
        Ours::Fetch(f) => f.encode(buf, version).expect("our Fetch encodes"),
    }
}

/// Our encoder straight into a `Vec<u8>` (`Message::encode_to_vec`).
fn encode_ours_into_vec(value: &Ours, version: i16, buf: &mut Vec<u8>) {
    match value {
        Ours::Metadata(m) => m.encode_to_vec(buf, version).expect("our Metadata encodes"),
        Ours::Fetch(f) => f.encode_to_vec(buf, version).expect("our Fetch encodes"),
    }
}

/// Our zero-copy encoder: chunks for a vectored write, records by reference.
fn encode_ours_chunks(value: &Ours, version: i16) -> Vec<Bytes> {
    match value {
        Ours::Metadata(m) => m.encode_chunks(version).expect("our Metadata encodes"),
        Ours::Fetch(f) => f.encode_chunks(version).expect("our Fetch encodes"),
    }
}

fn encode_theirs<B: kafka_protocol::protocol::buf::ByteBufMut>(
    value: &Theirs,
    version: i16,
    buf: &mut B,
) {
    match value {
        Theirs::Metadata(m) => m.encode(buf, version).expect("kafka-protocol encodes"),
        Theirs::Fetch(f) => f.encode(buf, version).expect("kafka-protocol encodes"),
    }
}

fn decode_ours(api: Api, input: &Bytes, version: i16) -> Ours {
    let mut buf = input.clone();
    let value = match api {
        Api::Metadata => Ours::Metadata(MetadataResponse::decode(&mut buf, version).unwrap()),
        Api::Fetch => Ours::Fetch(FetchResponse::decode(&mut buf, version).unwrap()),
    };
    assert!(buf.is_empty(), "our decoder left input behind");
    value
}

fn decode_theirs(api: Api, input: &Bytes, version: i16) -> Theirs {
    let mut buf = input.clone();
    let value = match api {
        Api::Metadata => Theirs::Metadata(kp::MetadataResponse::decode(&mut buf, version).unwrap()),
        Api::Fetch => Theirs::Fetch(kp::FetchResponse::decode(&mut buf, version).unwrap()),
    };
    assert!(buf.is_empty(), "kafka-protocol left input behind");
    value
}

fn build_case(def: CaseDef) -> Case {
    let original = match def.api {
        Api::Metadata => Ours::Metadata(build_metadata(def.version)),
        Api::Fetch => Ours::Fetch(build_fetch()),
    };
    let mut out = BytesMut::new();
    encode_ours(&original, def.version, &mut out);
    let input = out.freeze();

    let ours = decode_ours(def.api, &input, def.version);
    let theirs = decode_theirs(def.api, &input, def.version);
    let (same_as_built, same_content, min_allocs) = match (&original, &ours, &theirs) {
        (Ours::Metadata(o), Ours::Metadata(a), Theirs::Metadata(b)) => {
            (o == a, same_metadata(a, b), metadata_min_allocs(a))
        }
        (Ours::Fetch(o), Ours::Fetch(a), Theirs::Fetch(b)) => {
            (o == a, same_fetch(a, b), fetch_min_allocs(a))
        }
        _ => unreachable!(),
    };
    assert!(
        same_as_built,
        "{}: our decode differs from what we built",
        def.name
    );
    assert!(same_content, "{}: the two decodings differ", def.name);
    let mut ours_bytes = BytesMut::new();
    encode_ours(&ours, def.version, &mut ours_bytes);
    let mut theirs_bytes = BytesMut::new();
    encode_theirs(&theirs, def.version, &mut theirs_bytes);
    assert!(ours_bytes == input, "{}: our re-encoding differs", def.name);
    let mut into_vec = Vec::new();
    encode_ours_into_vec(&ours, def.version, &mut into_vec);
    assert!(into_vec == input, "{}: our encode_to_vec differs", def.name);
    let mut plain_vec = Vec::new();
    match &ours {
        Ours::Metadata(m) => m.encode_into(&mut plain_vec, def.version),
        Ours::Fetch(f) => f.encode_into(&mut plain_vec, def.version),
    }
    .expect("ours encodes");
    assert!(plain_vec == input, "{}: our encode_into differs", def.name);
    let chunks = encode_ours_chunks(&ours, def.version);
    assert!(chunks.concat() == input, "{}: our chunks differ", def.name);
    assert!(
        theirs_bytes == input,
        "{}: kafka-protocol's re-encoding differs",
        def.name
    );
    Case {
        def,
        input,
        ours,
        theirs,
        min_allocs,
    }
}

// ---------------------------------------------------------------------------------------
// Operations

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Decode,
    Encode,
    /// Encode into a reused, pre-sized `Vec<u8>` instead of a `BytesMut`.
    EncodeVec,
    /// Ours: `encode_chunks`, which keeps record batches by reference for a vectored
    /// write. Theirs: kafka-protocol has no such path, so its best, into `BytesMut`.
    EncodeZeroCopy,
}

const OPS: [Op; 4] = [Op::Decode, Op::Encode, Op::EncodeVec, Op::EncodeZeroCopy];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Decode => "decode",
            Op::Encode => "encode",
            Op::EncodeVec => "encode-vec",
            Op::EncodeZeroCopy => "encode-zero-copy",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Theirs,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Theirs => "theirs",
        }
    }
}

/// One iteration of `op` on `side`, as a closure over the case.
fn operation<'a>(case: &'a Case, op: Op, side: Side) -> Box<dyn FnMut() + 'a> {
    let (api, version, input) = (case.def.api, case.def.version, &case.input);
    match (op, side) {
        (Op::Decode, Side::Ours) => Box::new(move || {
            black_box(decode_ours(api, black_box(input), version));
        }),
        (Op::Decode, Side::Theirs) => Box::new(move || {
            black_box(decode_theirs(api, black_box(input), version));
        }),
        (Op::Encode, side) => {
            let mut buf = BytesMut::with_capacity(input.len());
            Box::new(move || {
                buf.clear();
                match side {
                    Side::Ours => encode_ours(black_box(&case.ours), version, &mut buf),
                    Side::Theirs => encode_theirs(black_box(&case.theirs), version, &mut buf),
                }
                black_box(&buf);
            })
        }
        (Op::EncodeVec, side) => {
            let mut buf = Vec::with_capacity(input.len());
            Box::new(move || {
                buf.clear();
                match side {
                    Side::Ours => encode_ours_into_vec(black_box(&case.ours), version, &mut buf),
                    Side::Theirs => encode_theirs(black_box(&case.theirs), version, &mut buf),
                }
                black_box(&buf);
            })
        }
        (Op::EncodeZeroCopy, Side::Ours) => Box::new(move || {
            black_box(encode_ours_chunks(black_box(&case.ours), version));
        }),
        (Op::EncodeZeroCopy, Side::Theirs) => {
            let mut buf = BytesMut::with_capacity(input.len());
            Box::new(move || {
                buf.clear();
                encode_theirs(black_box(&case.theirs), version, &mut buf);
                black_box(&buf);
            })
        }
    }
}

/// The loop callgrind measures (`--toggle-collect=*bench_measured_loop*`).
#[inline(never)]
fn bench_measured_loop(f: &mut dyn FnMut(), iters: u64) {
    for _ in 0..iters {
        f();
    }
}

fn time_batch(f: &mut dyn FnMut(), iters: u64) -> f64 {
    let start = Instant::now();
    bench_measured_loop(f, iters);
    start.elapsed().as_secs_f64() / iters as f64
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Seconds per iteration of each side, as medians over `rounds` rounds that alternate
/// which side goes first.
fn time_pair(ours: &mut dyn FnMut(), theirs: &mut dyn FnMut(), opts: &Opts) -> (f64, f64) {
    let target = opts.sample_ms as f64 / 1e3;
    // Calibrate on the slower side so both batches take about `target`.
    ours();
    theirs();
    let one = time_batch(ours, 1).max(time_batch(theirs, 1));
    let iters = ((target / one) as u64).max(1);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..opts.rounds {
        if round % 2 == 0 {
            a.push(time_batch(ours, iters));
            b.push(time_batch(theirs, iters));
        } else {
            b.push(time_batch(theirs, iters));
            a.push(time_batch(ours, iters));
        }
    }
    (median(a), median(b))
}

fn allocs_of(f: &mut dyn FnMut()) -> u64 {
    f();
    counting_alloc::count(f).1.count
}

/// Instructions per iteration of `case/op/side`, measured by running this binary under
/// callgrind with collection only inside [`bench_measured_loop`].
fn callgrind(name: &str, opts: &Opts) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&opts.callgrind_dir).map_err(|e| e.to_string())?;
    let out = format!(
        "{}/{}.callgrind.out",
        opts.callgrind_dir,
        name.replace('/', "_")
    );
    let iters = 3u64;
    let output = Command::new("valgrind")
        .env("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-ERMS")
        .arg("--tool=callgrind")
        .arg("--collect-atstart=no")
        .arg("--toggle-collect=*bench_measured_loop*")
        .arg(format!("--callgrind-out-file={out}"))
        .arg(&exe)
        .args(["--only", name, "--iters", &iters.to_string()])
        .output()
        .map_err(|e| format!("running valgrind: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("valgrind failed for {name}:\n{stderr}"));
    }
    let collected = stderr
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .ok_or_else(|| format!("no 'Collected' line from callgrind for {name}:\n{stderr}"))?;
    Ok(collected as f64 / iters as f64)
}

// ---------------------------------------------------------------------------------------
// Command line

struct Opts {
    rounds: usize,
    sample_ms: u64,
    callgrind: bool,
    callgrind_dir: String,
    only: Option<String>,
    iters: u64,
    list: bool,
    filter: Option<String>,
}

fn parse_args() -> Opts {
    let mut opts = Opts {
        rounds: 15,
        sample_ms: 40,
        callgrind: false,
        callgrind_dir: format!("target/callgrind/{}", build_profile::dir_name()),
        only: None,
        iters: 3,
        list: false,
        filter: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().unwrap_or_else(|| panic!("{arg} needs {what}"));
        match arg.as_str() {
            "--rounds" => opts.rounds = value("a number").parse().expect("--rounds N"),
            "--sample-ms" => opts.sample_ms = value("a number").parse().expect("--sample-ms N"),
            "--iters" => opts.iters = value("a number").parse().expect("--iters N"),
            "--only" => opts.only = Some(value("case/op/side")),
            "--callgrind-dir" => opts.callgrind_dir = value("a directory"),
            "--callgrind" => opts.callgrind = true,
            "--list" => opts.list = true,
            // What `cargo bench` passes to every bench binary.
            "--bench" => {}
            other if other.starts_with('-') => panic!("unknown option {other}"),
            other => opts.filter = Some(other.to_string()),
        }
    }
    opts
}

fn op_names() -> Vec<String> {
    let mut names = Vec::new();
    for def in CASES {
        for op in OPS {
            for side in [Side::Ours, Side::Theirs] {
                names.push(format!("{}/{}/{}", def.name, op.name(), side.name()));
            }
        }
    }
    names
}

/// `--only case/op/side`: build that case, warm up once, then run the measured loop.
fn run_only(name: &str, iters: u64) {
    let parts: Vec<&str> = name.split('/').collect();
    let [case_name, op_name, side_name] = parts[..] else {
        panic!(
            "--only takes case/op/side, one of:\n{}",
            op_names().join("\n")
        );
    };
    let def = CASES
        .into_iter()
        .find(|d| d.name == case_name)
        .unwrap_or_else(|| panic!("no case {case_name}"));
    let op = OPS
        .into_iter()
        .find(|o| o.name() == op_name)
        .unwrap_or_else(|| panic!("no op {op_name}"));
    let side = [Side::Ours, Side::Theirs]
        .into_iter()
        .find(|s| s.name() == side_name)
        .unwrap_or_else(|| panic!("no side {side_name}"));
    let case = build_case(def);
    let mut f = operation(&case, op, side);
    f();
    bench_measured_loop(&mut *f, iters);
}

fn main() {
    let opts = parse_args();
    if opts.list {
        println!("{}", op_names().join("\n"));
        return;
    }
    if let Some(name) = &opts.only {
        run_only(name, opts.iters);
        return;
    }

    println!("profile {}", build_profile::describe());
    println!(
        "kafka-sansio vs kafka-protocol 0.18 on the same bytes; MB/s = 10^6 bytes of the encoded \
         message per second, median of {} alternating rounds; ratio = our speed / theirs.",
        opts.rounds
    );
    println!(
        "Decode = decode + drop from a Bytes handle; encode into a reused pre-sized BytesMut \
         (encode-vec: Vec<u8>). Strings, bytes and RECORDS are zero-copy Bytes slices on both \
         sides.\n"
    );
    let mut header = String::from(
        "| case | size | op | ours MB/s | kafka-protocol MB/s | ratio | allocs ours | allocs kafka-protocol |",
    );
    let mut rule = String::from("|---|---:|---|---:|---:|---:|---:|---:|");
    if opts.callgrind {
        header.push_str(" instr ours | instr kafka-protocol | instr ratio |");
        rule.push_str("---:|---:|---:|");
    }
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for def in CASES {
        if opts
            .filter
            .as_ref()
            .is_some_and(|f| !def.name.contains(f.as_str()))
        {
            continue;
        }
        let case = build_case(def);
        let size = case.input.len();
        for op in OPS {
            let mut ours = operation(&case, op, Side::Ours);
            let mut theirs = operation(&case, op, Side::Theirs);
            let allocs = (allocs_of(&mut *ours), allocs_of(&mut *theirs));
            let (t_ours, t_theirs) = time_pair(&mut *ours, &mut *theirs, &opts);
            drop((ours, theirs));
            let mbps = |t: f64| size as f64 / t / 1e6;
            let mut row = format!(
                "| {} | {:.1} KB | {} | {:.0} | {:.0} | {:.2}x | {} | {} |",
                def.name,
                size as f64 / 1e3,
                op.name(),
                mbps(t_ours),
                mbps(t_theirs),
                t_theirs / t_ours,
                allocs.0,
                allocs.1,
            );
            if op == Op::Decode {
                notes.push(format!(
                    "{}: {} non-empty arrays in the decoded value; allocations beyond one per \
                     array: ours {}, kafka-protocol {}",
                    def.name,
                    case.min_allocs,
                    allocs.0 as i64 - case.min_allocs as i64,
                    allocs.1 as i64 - case.min_allocs as i64,
                ));
            }
            if opts.callgrind {
                let base = format!("{}/{}", def.name, op.name());
                let ir = (
                    callgrind(&format!("{base}/ours"), &opts),
                    callgrind(&format!("{base}/theirs"), &opts),
                );
                match ir {
                    (Ok(a), Ok(b)) => {
                        row.push_str(&format!(" {a:.0} | {b:.0} | {:.2}x |", b / a));
                    }
                    (a, b) => {
                        for e in [a.err(), b.err()].into_iter().flatten() {
                            eprintln!("{e}");
                        }
                        row.push_str(" ? | ? | ? |");
                    }
                }
            }
            println!("{row}");
            rows.push(row);
        }
    }
    println!("\n{header}\n{rule}");
    for row in &rows {
        println!("{row}");
    }
    println!();
    for note in &notes {
        println!("{note}");
    }
    if opts.callgrind {
        println!(
            "\ninstr = instructions per op under callgrind (GLIBC_TUNABLES=glibc.cpu.hwcaps=-ERMS, \
             collection only inside the measured loop); profiles in {}/",
            opts.callgrind_dir
        );
    }
}
