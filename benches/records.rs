//! Record-batch codec comparison: kafka-sansio vs the `kafka-protocol` crate vs
//! `rskafka`, on the same workloads, in one process.
//!
//! Workloads: W1 = batches of 1,000 records, key 16 B, value 100 B, one header
//! ("trace" => 8 B); W2 = the same with 1,000 B values. `--grid` runs a grid of record
//! shapes instead (keys null to 64 B, values 10 B to 10 KB, 0, 1 or 3 headers; see
//! `grid_shapes`), uncompressed, with the CRC32C-plus-copy floor beside the three
//! implementations. Bytes come from a seeded xorshift generator. Each case encodes or
//! decodes one batch per iteration ("decode" = walk every record and touch key, value
//! and headers, CRC checked).
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
//! cargo bench --bench records -- --grid --jobs 2   # the shape grid, instructions only
//! cargo bench --bench records -- --callgrind --text   # compressible (JSON-like) payloads
//! target/release/deps/records-* --case ours-k17-v100-h1-encode-none --iters 3
//! ```
//!
//! `scripts/bench.sh records` runs `--callgrind` under both profiles, one after the other.
//!
//! Header keys within a record are distinct, since kafka-protocol keeps headers in a map.
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

const TS: i64 = 1_700_000_000_000;

/// A record's headers in a [`Shape`]: keys and value lengths.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum HeaderShape {
    /// No header.
    H0,
    /// One header, "trace" => 8 bytes (W1's).
    H1,
    /// One header, "trace" => 16 bytes.
    H1Wide,
    /// Three: "trace" => 8, "content-type" => 16, "traceparent" => 55 (a W3C trace
    /// context is 55 characters).
    H3,
}

impl HeaderShape {
    fn fields(self) -> &'static [(&'static str, usize)] {
        match self {
            Self::H0 => &[],
            Self::H1 => &[("trace", 8)],
            Self::H1Wide => &[("trace", 16)],
            Self::H3 => &[("trace", 8), ("content-type", 16), ("traceparent", 55)],
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::H0 => "h0",
            Self::H1 => "h1",
            Self::H1Wide => "h1w",
            Self::H3 => "h3",
        }
    }
}

/// The shape of every record of a batch: key length (`None`: null key), value length
/// and headers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Shape {
    key: Option<usize>,
    value: usize,
    headers: HeaderShape,
}

/// W1: 16-byte key, 100-byte value, one header "trace" => 8 bytes.
const W1: Shape = Shape {
    key: Some(16),
    value: 100,
    headers: HeaderShape::H1,
};
/// W2: W1 with 1,000-byte values.
const W2: Shape = Shape { value: 1000, ..W1 };

impl Shape {
    const fn new(key: Option<usize>, value: usize, headers: HeaderShape) -> Self {
        Self {
            key,
            value,
            headers,
        }
    }

    /// "w1", "w2", else e.g. "k17-v100-h1" or "knull-v10-h0".
    fn name(&self) -> String {
        if *self == W1 {
            return "w1".to_string();
        }
        if *self == W2 {
            return "w2".to_string();
        }
        let key = self
            .key
            .map_or_else(|| "null".to_string(), |k| k.to_string());
        format!("k{key}-v{}-{}", self.value, self.headers.code())
    }

    /// Records per batch: 1,000, fewer for values over 1,000 bytes (100 of 10,000
    /// bytes) so that a batch stays near 1 MB.
    fn records(&self) -> usize {
        (1_000_000 / self.value.max(1)).clamp(1, 1000)
    }
}

/// The grid of `--grid`: each axis varied around W1 (every key size with W1's value
/// and header, every value size with W1's key and header, every header shape with
/// W1's key and value), plus the four corners of small and large keys and values.
fn grid_shapes() -> Vec<Shape> {
    use HeaderShape::*;
    let mut shapes = Vec::new();
    for key in [None, Some(8), Some(16), Some(17), Some(36), Some(64)] {
        shapes.push(Shape::new(key, 100, H1));
    }
    for value in [10, 40, 129, 300, 1000, 10_000] {
        shapes.push(Shape::new(Some(16), value, H1));
    }
    for headers in [H0, H1Wide, H3] {
        shapes.push(Shape::new(Some(16), 100, headers));
    }
    shapes.push(Shape::new(None, 10, H0));
    shapes.push(Shape::new(None, 10_000, H0));
    shapes.push(Shape::new(Some(64), 10, H3));
    shapes.push(Shape::new(Some(64), 10_000, H3));
    shapes
}

struct Data {
    shape: Shape,
    records: usize,
    keys: Vec<u8>,
    values: Vec<u8>,
    header_values: Vec<u8>,
    /// Bytes of header values per record.
    header_stride: usize,
}

/// `--text`: keys, values and header values are words from a small vocabulary
/// (compressible, as most payloads are) instead of random bytes (which are not).
static TEXT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

const WORDS: [&[u8]; 16] = [
    b"{\"id\":",
    b"\"user\":",
    b"\"order\", ",
    b"true,",
    b"false,",
    b"null,",
    b"\"eu-west-1\",",
    b"\"status\":",
    b"\"ok\"}",
    b"\"amount\":",
    b"12.50,",
    b"\"items\":[",
    b"],",
    b"\"sku-",
    b"42",
    b"\"ts\":",
];

impl Data {
    fn new(shape: Shape, seed: u64) -> Self {
        let mut state = seed;
        let text = TEXT.load(Ordering::Relaxed);
        let mut bytes = |n: usize| -> Vec<u8> {
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            if text {
                let mut out = Vec::with_capacity(n + 16);
                while out.len() < n {
                    out.extend_from_slice(WORDS[(next() % 16) as usize]);
                }
                out.truncate(n);
                return out;
            }
            (0..n).map(|_| next() as u8).collect()
        };
        let records = shape.records();
        let header_stride = shape.headers.fields().iter().map(|(_, n)| n).sum::<usize>();
        Self {
            shape,
            records,
            keys: bytes(records * shape.key.unwrap_or(0)),
            values: bytes(records * shape.value),
            header_values: bytes(records * header_stride),
            header_stride,
        }
    }
    fn key(&self, i: usize) -> Option<&[u8]> {
        let k = self.shape.key?;
        Some(&self.keys[i * k..(i + 1) * k])
    }
    fn value(&self, i: usize) -> &[u8] {
        let v = self.shape.value;
        &self.values[i * v..(i + 1) * v]
    }
    /// Record `i`'s headers: key and value.
    fn headers(&self, i: usize) -> impl Iterator<Item = (&'static str, &[u8])> + '_ {
        let mut at = i * self.header_stride;
        self.shape.headers.fields().iter().map(move |&(key, n)| {
            let value = &self.header_values[at..at + n];
            at += n;
            (key, value)
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Imp {
    Ours,
    KafkaProtocol,
    Rskafka,
    /// The floor no encoder can go below: the batch's bytes copied into the output
    /// and their CRC32C computed (encode); the CRC32C alone (decode: a zero-copy
    /// decoder need not copy).
    Floor,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Encode,
    Decode,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    imp: Imp,
    shape: Shape,
    op: Op,
    codec: Compression,
}

impl Case {
    fn name(&self) -> String {
        let imp = match self.imp {
            Imp::Ours => "ours",
            Imp::KafkaProtocol => "kafka-protocol",
            Imp::Rskafka => "rskafka",
            Imp::Floor => "floor",
        };
        let op = match self.op {
            Op::Encode => "encode",
            Op::Decode => "decode",
        };
        format!("{imp}-{}-{op}-{}", self.shape.name(), self.codec.name())
    }

    /// The default run: W1 and W2, each codec, the three implementations.
    fn all() -> Vec<Case> {
        let mut out = Vec::new();
        for shape in [W1, W2] {
            for op in [Op::Encode, Op::Decode] {
                for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
                    for imp in [Imp::Ours, Imp::KafkaProtocol, Imp::Rskafka] {
                        out.push(Case {
                            imp,
                            shape,
                            op,
                            codec,
                        });
                    }
                }
            }
        }
        out
    }

    /// `--grid`: every shape of [`grid_shapes`] uncompressed, with the floor, and
    /// zstd on W1 and W2.
    fn grid() -> Vec<Case> {
        let mut out = Vec::new();
        for shape in grid_shapes() {
            let zstd: &[Compression] = if shape == W1 || shape == W2 {
                &[Compression::None, Compression::Zstd]
            } else {
                &[Compression::None]
            };
            for &codec in zstd {
                for op in [Op::Encode, Op::Decode] {
                    for imp in [Imp::Ours, Imp::KafkaProtocol, Imp::Rskafka, Imp::Floor] {
                        if imp == Imp::Floor && codec != Compression::None {
                            continue;
                        }
                        out.push(Case {
                            imp,
                            shape,
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
    let n = data.shape.headers.fields().len();
    let headers: &'static [NewHeader<'static>] = Vec::leak(
        (0..data.records)
            .flat_map(|i| data.headers(i))
            .map(|(k, v)| NewHeader::new(k, Some(v)))
            .collect(),
    );
    (0..data.records)
        .map(|i| NewRecord {
            timestamp: TS + i as i64,
            key: data.key(i),
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
    (0..data.records)
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
                key: data.key(i).map(Bytes::copy_from_slice),
                value: Some(Bytes::copy_from_slice(data.value(i))),
                headers: Default::default(),
            };
            for (k, v) in data.headers(i) {
                r.headers.insert(
                    kp::StrBytes::from_static_str(k),
                    Some(Bytes::copy_from_slice(v)),
                );
            }
            r
        })
        .collect()
}

fn rs_batch(data: &Data, codec: Compression) -> rs::RecordBatch {
    let records = (0..data.records)
        .map(|i| rs::Record {
            timestamp_delta: i as i64,
            offset_delta: i as i32,
            key: data.key(i).map(<[u8]>::to_vec),
            value: Some(data.value(i).to_vec()),
            headers: data
                .headers(i)
                .map(|(k, v)| rs::RecordHeader {
                    key: k.to_string(),
                    value: v.to_vec(),
                })
                .collect(),
        })
        .collect();
    rs::RecordBatch {
        base_offset: 0,
        partition_leader_epoch: -1,
        last_offset_delta: data.records as i32 - 1,
        first_timestamp: TS,
        max_timestamp: TS + data.records as i64 - 1,
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
    /// Records per batch.
    records: usize,
    kp_records: Vec<kp::Record>,
    rs_batch: Option<rs::RecordBatch>,
    /// Our batch uncompressed: MB/s counts its bytes.
    plain: Bytes,
    /// For a peer's encode case, what [`check_same_batch`] found.
    same_batch: Option<String>,
}

fn prepare(case: Case) -> Prepared {
    let data: &'static Data = Box::leak(Box::new(Data::new(case.shape, 0x9E37_79B9_7F4A_7C15)));
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
        records: data.records,
        kp_records,
        rs_batch,
        same_batch: None,
    };
    if matches!(case.imp, Imp::KafkaProtocol | Imp::Rskafka) && case.op == Op::Encode {
        run_once(&mut p);
        let theirs = match case.imp {
            Imp::KafkaProtocol => Bytes::copy_from_slice(&p.out),
            _ => Bytes::copy_from_slice(&p.out_vec),
        };
        p.same_batch = Some(check_same_batch(
            case, p.records, &p.plain, &p.input, theirs,
        ));
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
fn check_same_batch(
    case: Case,
    records: usize,
    plain: &Bytes,
    ours: &Bytes,
    theirs: Bytes,
) -> String {
    let name = case.name();
    let theirs_batch = only_batch(&theirs, &name);
    assert_eq!(
        theirs_batch.header.record_count, records as i32,
        "{name}: record count"
    );
    if theirs == *ours {
        return format!(
            "{name}: byte-identical to ours ({} bytes, one batch of {records} records)",
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
    let plain_records = only_batch(plain, "ours uncompressed").records_data;
    let theirs_records = decompress(case.codec, &theirs_batch.records_data, &name);
    assert!(
        decompress(case.codec, &ours_batch.records_data, "ours") == plain_records,
        "{name}: our own records do not decompress to our uncompressed records"
    );
    assert!(
        theirs_records == plain_records,
        "{name}: records differ from ours after decompression ({} bytes, ours {})",
        theirs_records.len(),
        plain_records.len()
    );
    format!(
        "{name}: one batch of {records} records, header as ours but length and CRC, the same \
         {} bytes of records after decompression; compressed {} bytes, ours {}",
        plain_records.len(),
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
        (Imp::Floor, Op::Encode) => {
            p.out.clear();
            p.out.extend_from_slice(&p.plain);
            let crc = crc32c::crc32c(&p.out[21..]);
            p.out.len() as u64 + u64::from(crc)
        }
        (Imp::Floor, Op::Decode) => u64::from(crc32c::crc32c(&p.input[21..])),
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
    let records = (iters as usize * p.records) as f64;
    Timing {
        ns_per_record: elapsed.as_nanos() as f64 / records,
        mb_per_s: (p.plain.len() as f64 * iters as f64) / elapsed.as_secs_f64() / 1e6,
        allocs_per_record: allocs as f64 / records,
        bytes: match (case.imp, case.op) {
            (_, Op::Decode) => p.input.len(),
            (Imp::Rskafka, Op::Encode) => p.out_vec.len(),
            (Imp::Floor, Op::Encode) => p.plain.len(),
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
        ])
        .args(TEXT.load(Ordering::Relaxed).then_some("--text"))
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
    Ok(collected as f64 / (CALLGRIND_ITERS as f64 * case.shape.records() as f64))
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

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Encode => "encode",
        Op::Decode => "decode",
    }
}

/// The rows of a summary: each shape, operation and codec measured, in run order.
fn rows(instr: &[(Case, f64)]) -> Vec<(Shape, Op, Compression)> {
    let mut rows = Vec::new();
    for (case, _) in instr {
        let key = (case.shape, case.op, case.codec);
        if !rows.contains(&key) {
            rows.push(key);
        }
    }
    rows
}

/// One implementation's count in a row.
fn count_of(instr: &[(Case, f64)], row: (Shape, Op, Compression), imp: Imp) -> Option<f64> {
    instr
        .iter()
        .find_map(|(c, n)| (c.imp == imp && (c.shape, c.op, c.codec) == row).then_some(*n))
}

fn count(n: Option<f64>) -> String {
    n.map_or_else(|| "-".to_string(), thousands)
}

/// The `--callgrind` summary: one row per workload, operation and codec, the three
/// implementations' instructions per record side by side and the peers' over ours.
fn print_instruction_table(instr: &[(Case, f64)]) {
    println!(
        "\n| case | ours | kafka-protocol | rskafka | kafka-protocol / ours | rskafka / ours |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in rows(instr) {
        let of = |imp: Imp| count_of(instr, row, imp);
        let ratio = |n: Option<f64>| match (n, of(Imp::Ours)) {
            (Some(n), Some(ours)) => format!("{:.2}x", n / ours),
            _ => "-".to_string(),
        };
        let (shape, op, codec) = row;
        println!(
            "| {} {}, {} | {} | {} | {} | {} | {} |",
            shape.name().to_uppercase(),
            op_name(op),
            codec.name(),
            count(of(Imp::Ours)),
            count(of(Imp::KafkaProtocol)),
            count(of(Imp::Rskafka)),
            ratio(of(Imp::KafkaProtocol)),
            ratio(of(Imp::Rskafka)),
        );
    }
}

/// The `--grid` summary: per shape and operation, the three implementations and the
/// floor, the better peer over ours, ours over the floor, and whether the cell meets
/// issue 17's goal (encode: 2x fewer than the better peer, decode: 3x, or either
/// within 1.3x of the floor).
fn print_grid_table(instr: &[(Case, f64)]) {
    println!(
        "\n| shape | op | ours | kafka-protocol | rskafka | floor | better peer / ours | ours / floor | goal |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|");
    for row in rows(instr) {
        let of = |imp: Imp| count_of(instr, row, imp);
        let (shape, op, codec) = row;
        let ours = of(Imp::Ours);
        let peer = match (of(Imp::KafkaProtocol), of(Imp::Rskafka)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let lead = peer.zip(ours).map(|(p, o)| p / o);
        let over_floor = of(Imp::Floor).zip(ours).map(|(f, o)| o / f);
        let want = if op == Op::Encode { 2.0 } else { 3.0 };
        let goal = match (lead, over_floor) {
            (Some(l), _) if codec != Compression::None => {
                if l >= 1.0 {
                    "no slower"
                } else {
                    "slower"
                }
            }
            (Some(l), _) if l >= want => "lead",
            (_, Some(f)) if f <= 1.3 => "floor",
            (Some(_), _) => "NO",
            _ => "-",
        };
        let fmt = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"));
        println!(
            "| {} | {} {} | {} | {} | {} | {} | {} | {} | {goal} |",
            shape.name(),
            op_name(op),
            codec.name(),
            count(ours),
            count(of(Imp::KafkaProtocol)),
            count(of(Imp::Rskafka)),
            count(of(Imp::Floor)),
            fmt(lead),
            fmt(over_floor),
        );
    }
}

/// Runs the callgrind child of every case, `jobs` at a time, in the cases' order.
fn callgrind_all(cases: &[Case], jobs: usize) -> Vec<(Case, f64)> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(vec![None; cases.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&case) = cases.get(i) else { break };
                    match callgrind_case(case) {
                        Ok(n) => {
                            eprintln!("{:<40} {n:>10.0}", case.name());
                            results.lock().expect("results")[i] = Some((case, n));
                        }
                        Err(e) => eprintln!("{e}"),
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .expect("results")
        .into_iter()
        .flatten()
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let grid = args.iter().any(|a| a == "--grid");
    let text = args.iter().any(|a| a == "--text");
    TEXT.store(text, Ordering::Relaxed);
    let cases = if grid { Case::grid() } else { Case::all() };

    if let Some(name) = value_of("--case") {
        let case = Case::all()
            .into_iter()
            .chain(Case::grid())
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("unknown case {name}"));
        let iters = value_of("--iters").map_or(1, |s| s.parse().expect("iters"));
        let mut p = prepare(case);
        black_box(warmup(&mut p));
        black_box(measured(&mut p, iters));
        return;
    }

    let filter = value_of("--filter");
    let selected: Vec<Case> = cases
        .into_iter()
        .filter(|c| {
            filter
                .as_ref()
                .is_none_or(|f| c.name().contains(f.as_str()))
        })
        .collect();
    println!(
        "profile {}; {} payloads",
        build_profile::describe(),
        if text { "text (--text)" } else { "random" }
    );

    if args.iter().any(|a| a == "--check") {
        for case in selected
            .iter()
            .filter(|c| matches!(c.imp, Imp::KafkaProtocol | Imp::Rskafka) && c.op == Op::Encode)
        {
            println!("{}", prepare(*case).same_batch.expect("checked"));
        }
        return;
    }

    if grid {
        // Instruction counts only: the wall-clock columns would take a minute more
        // and mean little on a shared machine.
        let jobs = value_of("--jobs").map_or(1, |s| s.parse().expect("--jobs takes a count"));
        let instr = callgrind_all(&selected, jobs);
        print_grid_table(&instr);
        println!(
            "\n(instructions per record under callgrind, GLIBC_TUNABLES=glibc.cpu.hwcaps=-ERMS, \
             collection only inside the measured loop; peers' encodes checked to be our batch)"
        );
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
