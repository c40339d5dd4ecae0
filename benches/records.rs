//! Record-batch codec comparison: kafka-sansio vs the `kafka-protocol` crate vs
//! `rskafka`, on the same workloads, in one process.
//!
//! Workloads: W1 = batches of 1,000 records, key 16 B, value 100 B, one header
//! ("trace" => 8 B); W2 = the same with 1,000 B values. Bytes come from a seeded
//! xorshift generator. Each case encodes or decodes one batch per iteration
//! ("decode" = walk every record and touch key, value and headers, CRC checked).
//!
//! Every implementation encodes the same batch: before a peer's encode case is measured,
//! its output must parse as exactly one batch of 1,000 records whose header is ours
//! (batch length and CRC aside when compressed, since the compressors differ) and whose
//! records are byte-identical to ours (after decompression when compressed); an
//! uncompressed batch must be ours byte for byte. The peers' inputs are what their own
//! decoders make of our batch.
//!
//! ```text
//! cargo bench --bench records                      # time every case: ns/record, MB/s, allocs/record
//! cargo bench --bench records -- --filter w1       # only cases whose name contains "w1"
//! cargo bench --bench records -- --callgrind       # also instructions/record under callgrind
//! cargo bench --bench records -- --check           # only the same-batch checks, one line each
//! cargo bench --profile bench-lto --bench records -- --callgrind   # fat LTO, 1 codegen unit
//! target/release/deps/records-* --case ours-w1-decode-none --iters 3   # one case, for profilers
//! cargo bench --bench records -- --headers 3       # N headers per record instead of one
//! ```
//!
//! `scripts/bench.sh records` runs `--callgrind` under both profiles, one after the other.
//!
//! With `--headers N` record headers are "trace" then "trace-1", "trace-2", ... (distinct,
//! since kafka-protocol keeps headers in a map), each with its own 8-byte value.
//!
//! Under `--callgrind` each case runs in its own `valgrind --tool=callgrind` child
//! with collection only inside `measured` (setup and warm-up excluded) and
//! `GLIBC_TUNABLES=glibc.cpu.hwcaps=-ERMS` so a large memcpy is not counted as one
//! instruction per byte.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // tests and tools own their clock and sockets

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::Cursor;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_sansio::records::{
    Batch, BatchBuilder, BatchConfig, BatchReader, Compression, DecodeOptions, NewHeader,
    NewRecord, RecordBatch,
};

#[path = "common/build_profile.rs"]
mod build_profile;

// ------------------------------------------------------------ counting allocator

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ------------------------------------------------------------ workload

const RECORDS: usize = 1000;
const KEY: usize = 16;
const HEADER_KEY: &str = "trace";
const HEADER_VALUE: usize = 8;

/// Headers per record: one, or `--headers N`.
static HEADERS: OnceLock<usize> = OnceLock::new();

fn headers_per_record() -> usize {
    *HEADERS.get().unwrap_or(&1)
}

/// The `j`th header's key: "trace", "trace-1", "trace-2", ...
fn header_key(j: usize) -> &'static str {
    static KEYS: OnceLock<Vec<&'static str>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        (0..headers_per_record())
            .map(|j| match j {
                0 => HEADER_KEY,
                _ => String::leak(format!("{HEADER_KEY}-{j}")),
            })
            .collect()
    });
    keys[j]
}
const TS: i64 = 1_700_000_000_000;

struct Data {
    value_len: usize,
    keys: Vec<u8>,
    values: Vec<u8>,
    header_values: Vec<u8>,
}

impl Data {
    fn new(value_len: usize, seed: u64) -> Self {
        let mut state = seed;
        let mut bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect()
        };
        Self {
            value_len,
            keys: bytes(RECORDS * KEY),
            values: bytes(RECORDS * value_len),
            header_values: bytes(RECORDS * HEADER_VALUE * headers_per_record()),
        }
    }
    fn key(&self, i: usize) -> &[u8] {
        &self.keys[i * KEY..(i + 1) * KEY]
    }
    fn value(&self, i: usize) -> &[u8] {
        &self.values[i * self.value_len..(i + 1) * self.value_len]
    }
    /// Record `i`'s `j`th header value.
    fn header_value(&self, i: usize, j: usize) -> &[u8] {
        let at = (i * headers_per_record() + j) * HEADER_VALUE;
        &self.header_values[at..at + HEADER_VALUE]
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Imp {
    Ours,
    KafkaProtocol,
    Rskafka,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Encode,
    Decode,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    imp: Imp,
    workload: usize,
    op: Op,
    codec: Compression,
}

impl Case {
    fn name(&self) -> String {
        let imp = match self.imp {
            Imp::Ours => "ours",
            Imp::KafkaProtocol => "kafka-protocol",
            Imp::Rskafka => "rskafka",
        };
        let op = match self.op {
            Op::Encode => "encode",
            Op::Decode => "decode",
        };
        format!("{imp}-w{}-{op}-{}", self.workload, self.codec.name())
    }

    fn all() -> Vec<Case> {
        let mut out = Vec::new();
        for workload in [1, 2] {
            for op in [Op::Encode, Op::Decode] {
                for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
                    for imp in [Imp::Ours, Imp::KafkaProtocol, Imp::Rskafka] {
                        out.push(Case {
                            imp,
                            workload,
                            op,
                            codec,
                        });
                    }
                }
            }
        }
        out
    }
}

fn our_config(codec: Compression) -> BatchConfig {
    BatchConfig {
        compression: codec,
        // kafka-protocol and rskafka both write zstd at level 3.
        compression_level: Some(3),
        max_batch_bytes: usize::MAX,
        ..BatchConfig::default()
    }
}

/// Our input records, built once like the peers' record structs: borrowed views of
/// the workload's bytes.
fn our_records(data: &'static Data) -> Vec<NewRecord<'static>> {
    let n = headers_per_record();
    let headers: &'static [NewHeader<'static>] = Vec::leak(
        (0..RECORDS)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .map(|(i, j)| NewHeader::new(header_key(j), Some(data.header_value(i, j))))
            .collect(),
    );
    (0..RECORDS)
        .map(|i| NewRecord {
            timestamp: TS + i as i64,
            key: Some(data.key(i)),
            value: Some(data.value(i)),
            headers: &headers[i * n..(i + 1) * n],
        })
        .collect()
}

fn our_encode(records: &[NewRecord<'_>], codec: Compression, buf: &mut BytesMut) {
    buf.clear();
    let config = our_config(codec);
    let mut builder = BatchBuilder::new(buf, &config);
    for record in records {
        builder.append(record).expect("append");
    }
    builder.finish().expect("finish");
}

mod kp {
    pub use kafka_protocol::protocol::StrBytes;
    pub use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };
}

mod rs {
    pub use rskafka::protocol::record::{
        ControlBatchOrRecords, Record, RecordBatch, RecordBatchCompression,
        RecordBatchTimestampType, RecordHeader,
    };
    pub use rskafka::protocol::traits::{ReadType, WriteType};
}

fn kp_codec(c: Compression) -> kp::Compression {
    match c {
        Compression::None => kp::Compression::None,
        Compression::Gzip => kp::Compression::Gzip,
        Compression::Snappy => kp::Compression::Snappy,
        Compression::Lz4 => kp::Compression::Lz4,
        Compression::Zstd => kp::Compression::Zstd,
    }
}

fn rs_codec(c: Compression) -> rs::RecordBatchCompression {
    match c {
        Compression::None => rs::RecordBatchCompression::NoCompression,
        Compression::Gzip => rs::RecordBatchCompression::Gzip,
        Compression::Snappy => rs::RecordBatchCompression::Snappy,
        Compression::Lz4 => rs::RecordBatchCompression::Lz4,
        Compression::Zstd => rs::RecordBatchCompression::Zstd,
    }
}

/// kafka-protocol's input: the records its decoder makes of our batch.
///
/// Its encoder starts a new batch wherever `offset - sequence` changes, and derives the
/// batch's base sequence from the first record's. A batch without producer sequence
/// (base sequence -1) holding offsets 0..999 therefore has sequence `offset - 1` on
/// every record, as the decoder reports; giving every record `-1` instead would make
/// 1,000 one-record batches (compressed one record at a time).
fn kp_records(data: &Data) -> Vec<kp::Record> {
    (0..RECORDS)
        .map(|i| {
            let mut r = kp::Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: kp::TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32 - 1,
                timestamp: TS + i as i64,
                key: Some(Bytes::copy_from_slice(data.key(i))),
                value: Some(Bytes::copy_from_slice(data.value(i))),
                headers: Default::default(),
            };
            for j in 0..headers_per_record() {
                r.headers.insert(
                    kp::StrBytes::from_static_str(header_key(j)),
                    Some(Bytes::copy_from_slice(data.header_value(i, j))),
                );
            }
            r
        })
        .collect()
}

fn rs_batch(data: &Data, codec: Compression) -> rs::RecordBatch {
    let records = (0..RECORDS)
        .map(|i| rs::Record {
            timestamp_delta: i as i64,
            offset_delta: i as i32,
            key: Some(data.key(i).to_vec()),
            value: Some(data.value(i).to_vec()),
            headers: (0..headers_per_record())
                .map(|j| rs::RecordHeader {
                    key: header_key(j).to_string(),
                    value: data.header_value(i, j).to_vec(),
                })
                .collect(),
        })
        .collect();
    rs::RecordBatch {
        base_offset: 0,
        partition_leader_epoch: -1,
        last_offset_delta: RECORDS as i32 - 1,
        first_timestamp: TS,
        max_timestamp: TS + RECORDS as i64 - 1,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records: rs::ControlBatchOrRecords::Records(records),
        compression: rs_codec(codec),
        is_transactional: false,
        timestamp_type: rs::RecordBatchTimestampType::CreateTime,
    }
}

/// Everything a case needs, built before measuring.
struct Prepared {
    case: Case,
    our_records: Vec<NewRecord<'static>>,
    /// Our batch of the workload with the case's codec: what every peer must encode,
    /// and what the decode cases read.
    input: Bytes,
    out: BytesMut,
    out_vec: Vec<u8>,
    kp_records: Vec<kp::Record>,
    rs_batch: Option<rs::RecordBatch>,
    /// Our batch uncompressed: MB/s counts its bytes.
    plain: Bytes,
    /// For a peer's encode case, what [`check_same_batch`] found.
    same_batch: Option<String>,
}

fn prepare(case: Case) -> Prepared {
    let value_len = if case.workload == 1 { 100 } else { 1000 };
    let data: &'static Data = Box::leak(Box::new(Data::new(value_len, 0x9E37_79B9_7F4A_7C15)));
    let our_records = our_records(data);
    let mut plain = BytesMut::new();
    our_encode(&our_records, Compression::None, &mut plain);
    let mut input = BytesMut::new();
    our_encode(&our_records, case.codec, &mut input);
    let input = input.freeze();
    let (kp_records, rs_batch) = match (case.imp, case.op) {
        (Imp::KafkaProtocol, Op::Encode) => {
            let records = kp_records(data);
            let decoded = kp::RecordBatchDecoder::decode(&mut input.clone()).expect("decode");
            assert!(
                decoded.records == records,
                "{}: kafka-protocol's input is not what it decodes from our batch",
                case.name()
            );
            (records, None)
        }
        (Imp::Rskafka, Op::Encode) => {
            use rs::ReadType;
            let batch = rs_batch(data, case.codec);
            let decoded = rs::RecordBatch::read(&mut Cursor::new(&input[..])).expect("read");
            assert!(
                decoded == batch,
                "{}: rskafka's input is not what it decodes from our batch",
                case.name()
            );
            (Vec::new(), Some(batch))
        }
        _ => (Vec::new(), None),
    };
    let mut p = Prepared {
        case,
        plain: plain.freeze(),
        our_records,
        input,
        out: BytesMut::new(),
        out_vec: Vec::new(),
        kp_records,
        rs_batch,
        same_batch: None,
    };
    if case.imp != Imp::Ours && case.op == Op::Encode {
        run_once(&mut p);
        let theirs = match case.imp {
            Imp::KafkaProtocol => Bytes::copy_from_slice(&p.out),
            _ => Bytes::copy_from_slice(&p.out_vec),
        };
        p.same_batch = Some(check_same_batch(case, &p.plain, &p.input, theirs));
    }
    p
}

// ------------------------------------------------------------ the same batch

/// The one v2 batch `bytes` holds (CRC checked); panics when there is anything else.
fn only_batch(bytes: &Bytes, who: &str) -> RecordBatch {
    let opts = DecodeOptions::default();
    let mut reader = BatchReader::new(bytes.clone(), opts);
    let batch = match reader.next() {
        Some(Ok(Batch::V2(batch))) => batch,
        other => panic!("{who}: not a v2 batch: {other:?}"),
    };
    let more = reader.by_ref().count();
    assert!(
        more == 0 && reader.truncated().is_none(),
        "{who}: {} batches in {} bytes, not one",
        1 + more,
        bytes.len()
    );
    batch
}

/// A compressed records section, decompressed by the codec's own crate (not by ours).
fn decompress(codec: Compression, data: &[u8], who: &str) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    let done = match codec {
        Compression::Lz4 => lz4_flex::frame::FrameDecoder::new(data).read_to_end(&mut out),
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(data).and_then(|mut d| d.read_to_end(&mut out))
        }
        other => panic!(
            "the bench compresses with lz4 and zstd only, not {}",
            other.name()
        ),
    };
    done.unwrap_or_else(|e| panic!("{who}: {} records do not decompress: {e}", codec.name()));
    out
}

/// Checks that a peer's encoding `theirs` of the workload is our batch `ours` (`plain`
/// is ours uncompressed) and says how: byte for byte, or, when the compressed bytes
/// differ, field for field outside batch length and CRC and byte for byte after
/// decompression. Panics on any other difference.
fn check_same_batch(case: Case, plain: &Bytes, ours: &Bytes, theirs: Bytes) -> String {
    let name = case.name();
    let theirs_batch = only_batch(&theirs, &name);
    assert_eq!(
        theirs_batch.header.record_count, RECORDS as i32,
        "{name}: record count"
    );
    if theirs == *ours {
        return format!(
            "{name}: byte-identical to ours ({} bytes, one batch of {RECORDS} records)",
            theirs.len()
        );
    }
    assert!(
        case.codec != Compression::None,
        "{name}: uncompressed, yet not byte-identical to ours ({} bytes, ours {})",
        theirs.len(),
        ours.len()
    );
    let ours_batch = only_batch(ours, "ours");
    let (mut a, mut b) = (ours_batch.header, theirs_batch.header);
    (a.batch_length, a.crc, b.batch_length, b.crc) = (0, 0, 0, 0);
    assert_eq!(
        b, a,
        "{name}: header differs from ours beyond length and CRC"
    );
    let records = only_batch(plain, "ours uncompressed").records_data;
    let theirs_records = decompress(case.codec, &theirs_batch.records_data, &name);
    assert!(
        decompress(case.codec, &ours_batch.records_data, "ours") == records,
        "{name}: our own records do not decompress to our uncompressed records"
    );
    assert!(
        theirs_records == records,
        "{name}: records differ from ours after decompression ({} bytes, ours {})",
        theirs_records.len(),
        records.len()
    );
    format!(
        "{name}: one batch of {RECORDS} records, header as ours but length and CRC, the same \
         {} bytes of records after decompression; compressed {} bytes, ours {}",
        records.len(),
        theirs.len(),
        ours.len()
    )
}

#[inline(always)]
fn touch(key: Option<&[u8]>, value: Option<&[u8]>) -> u64 {
    (key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len)) as u64
}

#[inline(always)]
fn run_once(p: &mut Prepared) -> u64 {
    let case = p.case;
    match (case.imp, case.op) {
        (Imp::Ours, Op::Encode) => {
            our_encode(&p.our_records, case.codec, &mut p.out);
            p.out.len() as u64
        }
        (Imp::Ours, Op::Decode) => {
            let opts = DecodeOptions::default();
            let mut sum = 0;
            for batch in BatchReader::new(p.input.clone(), opts) {
                let Batch::V2(batch) = batch.expect("batch") else {
                    panic!("v2 only")
                };
                let mut records = batch.records(&opts).expect("records");
                while let Some(record) = records.next_ref() {
                    let r = record.expect("record");
                    sum += touch(r.key(), r.value());
                    for h in r.headers() {
                        sum += touch(Some(h.key), h.value);
                    }
                }
            }
            sum
        }
        (Imp::KafkaProtocol, Op::Encode) => {
            p.out.clear();
            let options = kp::RecordEncodeOptions {
                version: 2,
                compression: kp_codec(case.codec),
            };
            kp::RecordBatchEncoder::encode(&mut p.out, &p.kp_records, &options).expect("encode");
            p.out.len() as u64
        }
        (Imp::KafkaProtocol, Op::Decode) => {
            let mut buf = p.input.clone();
            let set = kp::RecordBatchDecoder::decode(&mut buf).expect("decode");
            let mut sum = 0;
            for r in &set.records {
                sum += touch(r.key.as_deref(), r.value.as_deref());
                for (k, v) in &r.headers {
                    sum += touch(Some(k.as_bytes()), v.as_deref());
                }
            }
            sum
        }
        (Imp::Rskafka, Op::Encode) => {
            use rs::WriteType;
            p.out_vec.clear();
            p.rs_batch
                .as_ref()
                .expect("prepared")
                .write(&mut p.out_vec)
                .expect("write");
            p.out_vec.len() as u64
        }
        (Imp::Rskafka, Op::Decode) => {
            use rs::ReadType;
            let batch = rs::RecordBatch::read(&mut Cursor::new(&p.input[..])).expect("read");
            let mut sum = 0;
            if let rs::ControlBatchOrRecords::Records(records) = &batch.records {
                for r in records {
                    sum += touch(r.key.as_deref(), r.value.as_deref());
                    for h in &r.headers {
                        sum += touch(Some(h.key.as_bytes()), Some(&h.value));
                    }
                }
            }
            sum
        }
    }
}

/// The measured region (callgrind collects only inside this function).
#[inline(never)]
fn measured(p: &mut Prepared, iters: u64) -> u64 {
    let mut sum = 0;
    for _ in 0..iters {
        sum += black_box(run_once(p));
    }
    sum
}

#[inline(never)]
fn warmup(p: &mut Prepared) -> u64 {
    run_once(p) + run_once(p)
}

struct Timing {
    ns_per_record: f64,
    mb_per_s: f64,
    allocs_per_record: f64,
    /// The batch's size: what an encode case wrote, what a decode case read.
    bytes: usize,
    /// A peer's encode case: how its batch is ours ([`check_same_batch`]).
    same_batch: Option<String>,
}

fn time_case(case: Case) -> Timing {
    let mut p = prepare(case);
    black_box(warmup(&mut p));
    // Calibrate to roughly 300 ms per case.
    let start = Instant::now();
    black_box(measured(&mut p, 3));
    let per_iter = start.elapsed() / 3;
    let iters = (Duration::from_millis(300).as_nanos() / per_iter.as_nanos().max(1))
        .clamp(3, 100_000) as u64;
    let allocs_before = ALLOCS.load(Ordering::Relaxed);
    let start = Instant::now();
    black_box(measured(&mut p, iters));
    let elapsed = start.elapsed();
    let allocs = ALLOCS.load(Ordering::Relaxed) - allocs_before;
    let records = (iters as usize * RECORDS) as f64;
    Timing {
        ns_per_record: elapsed.as_nanos() as f64 / records,
        mb_per_s: (p.plain.len() as f64 * iters as f64) / elapsed.as_secs_f64() / 1e6,
        allocs_per_record: allocs as f64 / records,
        bytes: match (case.imp, case.op) {
            (_, Op::Decode) => p.input.len(),
            (Imp::Rskafka, Op::Encode) => p.out_vec.len(),
            (_, Op::Encode) => p.out.len(),
        },
        same_batch: p.same_batch,
    }
}

const CALLGRIND_ITERS: u64 = 3;

/// Instructions per record of `case`, from this binary run under callgrind with
/// collection only inside [`measured`].
fn callgrind_case(case: Case) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            "--collect-atstart=no",
            "--toggle-collect=*measured*",
        ])
        .arg(exe)
        .args([
            "--case",
            &case.name(),
            "--iters",
            &CALLGRIND_ITERS.to_string(),
            "--headers",
            &headers_per_record().to_string(),
        ])
        .env("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-ERMS")
        .output()
        .map_err(|e| format!("running valgrind: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let collected = stderr
        .lines()
        .find_map(|l| {
            let (_, rest) = l.split_once("Collected :")?;
            rest.trim().parse::<u64>().ok()
        })
        .filter(|_| output.status.success())
        .ok_or_else(|| format!("callgrind run of {} failed:\n{stderr}", case.name()))?;
    Ok(collected as f64 / (CALLGRIND_ITERS as f64 * RECORDS as f64))
}

/// A count rounded, with thousands separated by commas.
fn thousands(n: f64) -> String {
    let digits = format!("{n:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The `--callgrind` summary: one row per workload, operation and codec, the three
/// implementations' instructions per record side by side and the peers' over ours.
fn print_instruction_table(instr: &[(Case, f64)]) {
    println!(
        "\n| case | ours | kafka-protocol | rskafka | kafka-protocol / ours | rskafka / ours |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let mut rows: Vec<(usize, Op, Compression)> = Vec::new();
    for (case, _) in instr {
        let key = (case.workload, case.op, case.codec);
        if !rows.contains(&key) {
            rows.push(key);
        }
    }
    for (workload, op, codec) in rows {
        let of = |imp: Imp| {
            instr.iter().find_map(|(c, n)| {
                (c.imp == imp && c.workload == workload && c.op == op && c.codec == codec)
                    .then_some(*n)
            })
        };
        let count = |n: Option<f64>| n.map_or_else(|| "-".to_string(), thousands);
        let ratio = |n: Option<f64>| match (n, of(Imp::Ours)) {
            (Some(n), Some(ours)) => format!("{:.2}x", n / ours),
            _ => "-".to_string(),
        };
        let op = match op {
            Op::Encode => "encode",
            Op::Decode => "decode",
        };
        println!(
            "| W{workload} {op}, {} | {} | {} | {} | {} | {} |",
            codec.name(),
            count(of(Imp::Ours)),
            count(of(Imp::KafkaProtocol)),
            count(of(Imp::Rskafka)),
            ratio(of(Imp::KafkaProtocol)),
            ratio(of(Imp::Rskafka)),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(n) = value_of("--headers") {
        let _ = HEADERS.set(n.parse().expect("--headers takes a count"));
    }
    let cases = Case::all();

    if let Some(name) = value_of("--case") {
        let case = *cases
            .iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("unknown case {name}"));
        let iters = value_of("--iters").map_or(1, |s| s.parse().expect("iters"));
        let mut p = prepare(case);
        black_box(warmup(&mut p));
        black_box(measured(&mut p, iters));
        return;
    }

    let filter = value_of("--filter");
    let selected = cases.into_iter().filter(|c| {
        filter
            .as_ref()
            .is_none_or(|f| c.name().contains(f.as_str()))
    });
    println!(
        "profile {}; {} header(s) per record",
        build_profile::describe(),
        headers_per_record()
    );

    if args.iter().any(|a| a == "--check") {
        for case in selected.filter(|c| c.imp != Imp::Ours && c.op == Op::Encode) {
            println!("{}", prepare(case).same_batch.expect("checked"));
        }
        return;
    }

    let callgrind = args.iter().any(|a| a == "--callgrind");
    println!(
        "{:<32} {:>9} {:>11} {:>9} {:>14} {:>14}",
        "case", "bytes", "ns/record", "MB/s", "allocs/record", "instr/record"
    );
    let mut instr = Vec::new();
    let mut checks = Vec::new();
    for case in selected {
        let name = case.name();
        let t = time_case(case);
        let count = if callgrind {
            match callgrind_case(case) {
                Ok(n) => {
                    instr.push((case, n));
                    format!("{n:.0}")
                }
                Err(e) => {
                    eprintln!("{e}");
                    "n/a".to_string()
                }
            }
        } else {
            "-".to_string()
        };
        println!(
            "{name:<32} {:>9} {:>11.1} {:>9.0} {:>14.3} {:>14}",
            t.bytes, t.ns_per_record, t.mb_per_s, t.allocs_per_record, count
        );
        checks.extend(t.same_batch);
    }
    if callgrind {
        print_instruction_table(&instr);
        println!(
            "\n(instructions per record under callgrind, GLIBC_TUNABLES=glibc.cpu.hwcaps=-ERMS, \
             collection only inside the measured loop)"
        );
    }
    if !checks.is_empty() {
        println!("\nThe same batch, checked before measuring:");
        for line in checks {
            println!("  {line}");
        }
    }
}
