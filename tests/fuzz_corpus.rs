//! Replays every committed fuzz input (`corpus/<target>/`) through its target body,
//! under the same counting allocator and allocation bound as the fuzz binaries, so
//! a regression of any crash the fuzzers ever found fails `cargo test`.
//!
//! `cargo test --all-features --test fuzz_corpus -- --ignored write_seeds` writes
//! fresh seeds (real-peer snapshots, traffic with the simulated cluster, record
//! fixtures, encodings of arbitrary values)
//! to `target/fuzz-seeds/<target>/`; `scripts/fuzz.sh seed` minimizes them into
//! `corpus/`.
#![cfg(feature = "arbitrary")]

#[path = "../fuzz/src/alloc.rs"]
mod alloc;
mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use kafka_sansio::fuzzing::targets::{self, TARGETS, Target};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// The origin of the state machines' virtual time (tests own their clock).
#[allow(clippy::disallowed_methods)]
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = root().join("corpus").join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// What replaying one input found wrong, if anything.
fn replay(target: &Target, data: &[u8]) -> Result<bool, String> {
    let origin = now();
    let (result, peak) = alloc::peak_during(|| (target.run)(data, origin));
    let accepted = result.map_err(|e| e.0)?;
    let bound = target.alloc_bound(data.len());
    if peak > bound {
        return Err(format!(
            "held {peak} heap bytes at once for a {}-byte input (bound {bound})",
            data.len()
        ));
    }
    Ok(accepted)
}

#[test]
fn every_corpus_input_passes_its_target() {
    let mut failures = Vec::new();
    for target in TARGETS {
        let files = corpus_files(target.name);
        let mut accepted = 0;
        for file in &files {
            let data = fs::read(file).expect("corpus file");
            match replay(target, &data) {
                Ok(true) => accepted += 1,
                Ok(false) => {}
                Err(e) => failures.push(format!("{}: {e}", file.display())),
            }
        }
        // A corpus the decoder rejects entirely would only fuzz error paths. Minimized
        // corpora keep many inputs for the error paths they reach, so the bar is low:
        // one input in twenty gets through.
        if accepted == 0 || accepted * 20 < files.len() {
            failures.push(format!(
                "corpus/{}: only {accepted} of {} inputs decode",
                target.name,
                files.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_target_has_a_binary_and_a_corpus_and_nothing_else_does() {
    let named: BTreeSet<String> = TARGETS.iter().map(|t| t.name.to_string()).collect();
    let in_dir = |dir: &Path, strip: &str| -> BTreeSet<String> {
        fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter_map(|n| n.strip_suffix(strip).map(str::to_string))
            .collect()
    };
    // Targets behind a feature are only in TARGETS when it is on.
    let gated: BTreeSet<String> = if cfg!(feature = "sim") {
        BTreeSet::new()
    } else {
        BTreeSet::from(["sim_cluster".to_string()])
    };
    let all: BTreeSet<String> = named.union(&gated).cloned().collect();
    assert_eq!(in_dir(&root().join("fuzz/fuzz_targets"), ".rs"), all);
    let corpora: BTreeSet<String> = fs::read_dir(root().join("corpus"))
        .expect("corpus/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(corpora, all);
    let manifest = fs::read_to_string(root().join("fuzz/Cargo.toml")).expect("fuzz/Cargo.toml");
    for name in &named {
        let body = fs::read_to_string(root().join(format!("fuzz/fuzz_targets/{name}.rs")))
            .expect("target file");
        assert!(
            body.contains(&format!("check(\"{name}\"")),
            "fuzz_targets/{name}.rs does not run the target {name}"
        );
        assert!(manifest.contains(&format!("name = \"{name}\"")));
    }
}

/// The allocation check itself can fail: a body that allocates past its bound is
/// caught.
#[test]
fn the_allocation_bound_is_enforced() {
    fn hog(
        data: &[u8],
        _: std::time::Instant,
    ) -> Result<bool, kafka_sansio::fuzzing::CheckFailure> {
        let v = vec![0u8; 1 << 20];
        Ok(v.len() > data.len())
    }
    let hungry = Target {
        name: "hog",
        run: hog,
        alloc_per_input_byte: 16,
        alloc_constant: 1024,
    };
    assert!(replay(&hungry, &[0; 64]).is_err());
    assert_eq!(replay(&hungry, &[0; 1 << 16]), Ok(true));
}

// ---------------------------------------------------------------------------------
// Seeds.

mod seeds {
    use super::common::Rng;
    use kafka_sansio::fuzzing::ALL_MESSAGES;
    use kafka_sansio::fuzzing::{arbitrary_encoding, targets};
    use kafka_sansio::messages::consumer_offsets::*;
    use kafka_sansio::messages::{ApiKey, RequestHeader, ResponseHeader};
    use kafka_sansio::records::*;
    use kafka_sansio::wire::arb::{ArbValue, Normalize};
    use kafka_sansio::wire::{Bytes, BytesMut, Message};
    use std::path::Path;

    pub type Seeds = Vec<(&'static str, String, Vec<u8>)>;

    fn api_keys() -> Vec<ApiKey> {
        (0..=200).filter_map(|k| ApiKey::try_from(k).ok()).collect()
    }

    fn entry_index(name: &str) -> Option<u16> {
        ALL_MESSAGES
            .iter()
            .position(|e| e.name == name)
            .map(|i| i as u16)
    }

    /// Requests and responses built from arbitrary values, for every API key and
    /// version, with real headers in front.
    pub fn messages(rng: &mut Rng, out: &mut Seeds) {
        for key in api_keys() {
            let range = key.valid_versions();
            for version in range.min..=range.max {
                for (kind, suffix) in [("request", "Request"), ("response", "Response")] {
                    let Some(index) = entry_index(&format!("{}{suffix}", key.name())) else {
                        continue;
                    };
                    let entry = &ALL_MESSAGES[usize::from(index)];
                    let raw = rng.bytes(256);
                    let mut u = arbitrary::Unstructured::new(&raw);
                    let Some(body) = (entry.arbitrary_encoding)(&mut u, version) else {
                        continue;
                    };
                    let mut frame = BytesMut::new();
                    if kind == "request" {
                        let header = RequestHeader {
                            request_api_key: key.as_i16(),
                            request_api_version: version,
                            correlation_id: 7,
                            client_id: Some("fuzz".into()),
                            ..Default::default()
                        };
                        header
                            .encode(&mut frame, key.request_header_version(version))
                            .expect("header encodes");
                    } else {
                        frame.extend_from_slice(&key.as_i16().to_be_bytes());
                        frame.extend_from_slice(&version.to_be_bytes());
                        let header = ResponseHeader {
                            correlation_id: 7,
                            ..Default::default()
                        };
                        header
                            .encode(&mut frame, key.response_header_version(version))
                            .expect("header encodes");
                    }
                    frame.extend_from_slice(&body);
                    out.push((
                        kind,
                        format!("arb-{}-v{version}", entry.name),
                        frame.to_vec(),
                    ));
                }
            }
        }
        for (index, entry) in ALL_MESSAGES.iter().enumerate() {
            for version in entry.versions.min..=entry.versions.max {
                let raw = rng.bytes(256);
                if let Some(seed) = targets::message_seed(index as u16, version, &raw) {
                    let name = format!("arb-{}-v{version}", entry.name);
                    out.push(("message_roundtrip", name.clone(), seed));
                    // The arbitrary target reads the same selector, then arbitrary bytes.
                    let mut arb = seed_selector(index as u16, entry.versions.min, version);
                    arb.extend_from_slice(&raw);
                    out.push(("message_arbitrary", name, arb));
                }
            }
        }
    }

    fn seed_selector(index: u16, min: i16, version: i16) -> Vec<u8> {
        let mut s = index.to_be_bytes().to_vec();
        s.push((version - min) as u8);
        s
    }

    /// Real-peer captures from `tests/data/snapshots/` (see its README), and the
    /// record batches inside their Produce requests and Fetch responses.
    pub fn snapshots(root: &Path, out: &mut Seeds) {
        let dir = root.join("tests/data/snapshots");
        let Ok(manifest) = std::fs::read_to_string(dir.join("manifest.tsv")) else {
            return;
        };
        for line in manifest.lines().skip(1) {
            let cols: Vec<&str> = line.split('\t').collect();
            let [file, direction, key, _, version, ..] = cols[..] else {
                continue;
            };
            let (Ok(key), Ok(version)) = (key.parse::<i16>(), version.parse::<i16>()) else {
                continue;
            };
            let Ok(bytes) = std::fs::read(dir.join(file)) else {
                continue;
            };
            let name = format!("snap-{}", file.replace('/', "-").trim_end_matches(".bin"));
            if direction == "request" {
                records_in_request(key, version, &bytes, &name, out);
                out.push(("request", name, bytes));
            } else {
                let mut framed = key.to_be_bytes().to_vec();
                framed.extend_from_slice(&version.to_be_bytes());
                framed.extend_from_slice(&bytes);
                records_in_response(key, version, &bytes, &name, out);
                out.push(("response", name, framed));
            }
        }
    }

    fn push_records(name: &str, records: Option<&Bytes>, out: &mut Seeds) {
        if let Some(r) = records.filter(|r| !r.is_empty()) {
            for flags in [0u8, 1] {
                let mut seed = vec![flags];
                seed.extend_from_slice(r);
                out.push(("records", format!("{name}-f{flags}"), seed));
            }
        }
    }

    pub fn records_in_request(key: i16, version: i16, bytes: &[u8], name: &str, out: &mut Seeds) {
        if key != 0 {
            return;
        }
        let Ok(api) = ApiKey::try_from(key) else {
            return;
        };
        let mut buf = Bytes::copy_from_slice(bytes);
        if RequestHeader::decode(&mut buf, api.request_header_version(version)).is_err() {
            return;
        }
        let Ok(req) = kafka_sansio::messages::ProduceRequest::decode(&mut buf, version) else {
            return;
        };
        for t in &req.topic_data {
            for p in &t.partition_data {
                push_records(name, p.records.as_ref(), out);
            }
        }
    }

    pub fn records_in_response(key: i16, version: i16, bytes: &[u8], name: &str, out: &mut Seeds) {
        if key != 1 {
            return;
        }
        let Ok(api) = ApiKey::try_from(key) else {
            return;
        };
        let mut buf = Bytes::copy_from_slice(bytes);
        if ResponseHeader::decode(&mut buf, api.response_header_version(version)).is_err() {
            return;
        }
        let Ok(resp) = kafka_sansio::messages::FetchResponse::decode(&mut buf, version) else {
            return;
        };
        for t in &resp.responses {
            for p in &t.partitions {
                push_records(name, p.records.as_ref(), out);
            }
        }
    }

    /// Real clients' batches from `tests/data/records/`, and batches of every codec,
    /// control batches and transactional batches from our own builder.
    pub fn records(root: &Path, out: &mut Seeds) {
        let dir = root.join("tests/data/records/kafka-python");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "bin") {
                    let name = path.file_stem().unwrap_or_default().to_string_lossy();
                    let bytes = std::fs::read(&path).unwrap_or_default();
                    push_records(
                        &format!("kafka-python-{name}"),
                        Some(&Bytes::from(bytes)),
                        out,
                    );
                }
            }
        }
        let headers = [NewHeader::new("h", Some(b"1")), NewHeader::new("h", None)];
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            for framing in [SnappyFraming::Xerial, SnappyFraming::Raw] {
                if framing == SnappyFraming::Raw && compression != Compression::Snappy {
                    continue;
                }
                let config = BatchConfig {
                    compression,
                    snappy_framing: framing,
                    producer_id: 5,
                    producer_epoch: 1,
                    base_sequence: 0,
                    transactional: true,
                    ..BatchConfig::default()
                };
                let mut buf = BytesMut::new();
                let mut b = BatchBuilder::new(&mut buf, &config);
                b.append(
                    &NewRecord::new(1000)
                        .key(b"k")
                        .value(b"v1")
                        .headers(&headers),
                )
                .expect("append");
                b.append(&NewRecord::new(1001).value(b"value two"))
                    .expect("append");
                b.append(&NewRecord::new(999)).expect("append");
                b.finish().expect("finish");
                let marker = ControlRecord::marker(ControlRecordType::Abort, 4);
                let after = BatchConfig {
                    base_offset: 3,
                    ..config
                };
                write_control_batch(&mut buf, &after, marker, 1002).expect("marker");
                let name = format!("own-{}-{framing:?}", compression.name());
                push_records(&name, Some(&buf.freeze()), out);
            }
        }
        // A read_committed scenario: aborted transactional batch, abort marker, commit.
        let producer = BatchConfig {
            producer_id: 9,
            producer_epoch: 0,
            transactional: true,
            ..BatchConfig::default()
        };
        let mut buf = BytesMut::new();
        let mut b = BatchBuilder::new(&mut buf, &producer);
        b.append(&NewRecord::new(0).value(b"aborted"))
            .expect("append");
        b.finish().expect("finish");
        write_control_batch(
            &mut buf,
            &BatchConfig {
                base_offset: 1,
                ..producer
            },
            ControlRecord::marker(ControlRecordType::Abort, 0),
            0,
        )
        .expect("marker");
        let mut seed = vec![3u8];
        seed.extend_from_slice(&buf);
        out.push(("records", "own-read-committed".into(), seed));
    }

    fn coordinator_pair<K, V>(rng: &mut Rng, out: &mut Seeds)
    where
        K: Message + ArbValue + Normalize,
        V: Message + ArbValue + Normalize,
    {
        for kv in K::VALID_VERSIONS.min..=K::VALID_VERSIONS.max {
            for vv in V::VALID_VERSIONS.min..=V::VALID_VERSIONS.max {
                let raw = rng.bytes(192);
                let mut u = arbitrary::Unstructured::new(&raw);
                let (Some(key), Some(value)) = (
                    arbitrary_encoding::<K>(&mut u, kv),
                    arbitrary_encoding::<V>(&mut u, vv),
                ) else {
                    continue;
                };
                let mut k = kv.to_be_bytes().to_vec();
                k.extend_from_slice(&key);
                let mut seed = (k.len() as u16).to_be_bytes().to_vec();
                seed.extend_from_slice(&k);
                let tombstone = seed.clone();
                seed.push(1);
                seed.extend_from_slice(&vv.to_be_bytes());
                seed.extend_from_slice(&value);
                out.push((
                    "consumer_offsets",
                    format!("arb-{}-v{kv}-v{vv}", V::NAME),
                    seed,
                ));
                if vv == V::VALID_VERSIONS.min {
                    out.push((
                        "consumer_offsets",
                        format!("arb-{}-v{kv}-tombstone", K::NAME),
                        tombstone,
                    ));
                }
            }
        }
    }

    /// The state-machine targets read scripts through `arbitrary`, which no one
    /// writes by hand: keep random scripts that get far (a connection that becomes
    /// ready, a client operation that ends with a result, a cluster that answers),
    /// and hand-written SCRAM server messages.
    pub fn scripts(rng: &mut Rng, out: &mut Seeds) {
        let mut machines = vec!["connection", "client"];
        if cfg!(feature = "sim") {
            machines.push("sim_cluster");
        }
        for name in machines {
            let target = targets::target(name).expect("target");
            let mut kept = 0;
            for i in 0..40_000 {
                let len = 64 + rng.below(1024) as usize;
                let script = rng.bytes(len);
                if (target.run)(&script, super::now()) == Ok(true) {
                    out.push((name, format!("random-{i}"), script));
                    kept += 1;
                    if kept == 40 {
                        break;
                    }
                }
            }
            // Short scripts too, which stop early.
            for i in 0..8 {
                out.push((name, format!("short-{i}"), rng.bytes(8 + i * 4)));
            }
        }
        let ext = "fuzzclientnonce";
        let firsts = [
            format!("r={ext}XYZ,s=c2FsdA==,i=4096"),
            format!("r={ext}XYZ,s=c2FsdA==,i=4096,ext=1"),
            format!("m=ext,r={ext}XYZ,s=c2FsdA==,i=4096"),
            "r=othernonce,s=c2FsdA==,i=4096".to_string(),
            format!("r={ext}XYZ,s=!!!,i=4096"),
            format!("r={ext}XYZ,s=c2FsdA==,i=1"),
            "e=other-error".to_string(),
        ];
        let finals = ["v=dGVzdA==", "e=invalid-proof", "", "v=", "x=1"];
        for (i, first) in firsts.iter().enumerate() {
            for (j, fin) in finals.iter().enumerate() {
                for selector in [0u8, 1] {
                    let mut seed = vec![selector];
                    seed.extend_from_slice(first.as_bytes());
                    seed.push(0);
                    seed.extend_from_slice(fin.as_bytes());
                    out.push(("sasl_scram", format!("hand-{i}-{j}-{selector}"), seed));
                }
            }
        }
    }

    /// The producer's scripts must get a record through brokers that answer
    /// ApiVersions, Metadata, InitProducerId and Produce, which random bytes almost
    /// never do (none of 40,000 did): each seed is grown by hill-climbing on
    /// `producer_progress` (requests written, weighted by depth, and deliveries),
    /// keeping byte mutations that get at least as far.
    pub fn producer_scripts(rng: &mut Rng, out: &mut Seeds) {
        use kafka_sansio::fuzzing::client::producer_progress;
        climb("producer", producer_progress, rng, out);
    }

    /// The consumer's scripts must get through ApiVersions, Metadata, FindCoordinator
    /// and a join (or ListOffsets) before a Fetch: grown the same way, on
    /// `consumer_progress` (requests written, weighted by depth, rebalances and
    /// records handed out).
    pub fn consumer_scripts(rng: &mut Rng, out: &mut Seeds) {
        use kafka_sansio::fuzzing::client::consumer_progress;
        climb("consumer", consumer_progress, rng, out);
    }

    fn climb(
        name: &'static str,
        progress: fn(&[u8], std::time::Instant) -> usize,
        rng: &mut Rng,
        out: &mut Seeds,
    ) {
        let producer_progress = progress;
        let target = targets::target(name).expect("target");
        let origin = super::now();
        let mut kept: Vec<Vec<u8>> = Vec::new();
        for climb in 0..60 {
            // Half the climbs go on from a script that already got a record
            // through, to reach further (more records, errors, resets after it).
            let mut best = if !kept.is_empty() && rng.below(2) == 0 {
                kept[rng.below(kept.len() as u64) as usize].clone()
            } else {
                let len = 256 + rng.below(512) as usize;
                rng.bytes(len)
            };
            let mut score = producer_progress(&best, origin);
            for _ in 0..1_500 {
                let mut next = best.clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(next.len() as u64) as usize;
                    match rng.below(4) {
                        0 => next[i] = rng.next_u64() as u8,
                        1 => next[i] ^= 1 << rng.below(8),
                        2 if next.len() < 2_048 => {
                            let n = 1 + rng.below(8) as usize;
                            let bytes = rng.bytes(n);
                            next.splice(i..i, bytes);
                        }
                        _ if next.len() > 64 => {
                            next.remove(i);
                        }
                        _ => {}
                    }
                }
                let s = producer_progress(&next, origin);
                if s >= score {
                    best = next;
                    score = s;
                }
            }
            if (target.run)(&best, origin) == Ok(true) && !kept.contains(&best) {
                out.push((name, format!("climb-{climb}"), best.clone()));
                kept.push(best);
                if kept.len() == 40 {
                    break;
                }
            }
        }
        for i in 0..8 {
            out.push((name, format!("short-{i}"), rng.bytes(8 + i * 4)));
        }
    }

    /// Traffic between our [`Connection`] and the simulated cluster: every request
    /// and response frame (the response prefixed with its API key and version), and
    /// the records inside Produce requests and Fetch responses.
    #[cfg(feature = "sim")]
    pub fn simulation(out: &mut Seeds) {
        use kafka_sansio::connection::{Config, Connection, RequestOptions};
        use kafka_sansio::messages::fetch_request::{FetchPartition, FetchTopic};
        use kafka_sansio::messages::list_offsets_request::{
            ListOffsetsPartition, ListOffsetsTopic,
        };
        use kafka_sansio::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_sansio::messages::{
            FetchRequest, InitProducerIdRequest, ListOffsetsRequest, MetadataRequest,
            ProduceRequest,
        };
        use kafka_sansio::sim::{Cluster, ClusterConfig};
        use std::collections::BTreeMap;
        use std::time::Duration;

        #[allow(clippy::disallowed_methods)]
        let mut now = std::time::Instant::now();
        let mut cluster = Cluster::new(ClusterConfig::default(), now);
        let topic_id = cluster.create_topic("t", 1, 1).expect("topic");
        let server = cluster.connect(0, now).expect("connect");
        let mut conn = Connection::new(Config::new("sim-seed"), now);
        let mut versions: BTreeMap<i32, (i16, i16)> = BTreeMap::new();
        let mut n = 0;
        let mut pump = |conn: &mut Connection,
                        cluster: &mut Cluster,
                        now: std::time::Instant,
                        out: &mut Seeds| {
            for _ in 0..8 {
                while let Some(bytes) = conn.poll_transmit() {
                    let mut rest = &bytes[..];
                    while rest.len() >= 4 {
                        let len = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                        let frame = &rest[4..4 + len];
                        let key = i16::from_be_bytes([frame[0], frame[1]]);
                        let version = i16::from_be_bytes([frame[2], frame[3]]);
                        let id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                        versions.insert(id, (key, version));
                        n += 1;
                        let name = format!("sim-{n:03}-{key}-v{version}-request");
                        super::seeds::records_in_request(key, version, frame, &name, out);
                        out.push(("request", name, frame.to_vec()));
                        rest = &rest[4 + len..];
                    }
                    cluster.handle_input(server, now, &bytes);
                }
                cluster.handle_timeout(now);
                let mut any = false;
                while let Some(bytes) = cluster.poll_transmit(server) {
                    any = true;
                    let mut rest = &bytes[..];
                    while rest.len() >= 4 {
                        let len = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                        let frame = &rest[4..4 + len];
                        let id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
                        if let Some(&(key, version)) = versions.get(&id) {
                            n += 1;
                            let name = format!("sim-{n:03}-{key}-v{version}-response");
                            super::seeds::records_in_response(key, version, frame, &name, out);
                            let mut seed = key.to_be_bytes().to_vec();
                            seed.extend_from_slice(&version.to_be_bytes());
                            seed.extend_from_slice(frame);
                            out.push(("response", name, seed));
                        }
                        rest = &rest[4 + len..];
                    }
                    conn.handle_input(now, &bytes);
                }
                while conn.poll_event().is_some() {}
                if !any {
                    break;
                }
            }
        };
        pump(&mut conn, &mut cluster, now, out);
        let _ = conn.send(now, MetadataRequest::default());
        let _ = conn.send(
            now,
            InitProducerIdRequest {
                transaction_timeout_ms: 1000,
                producer_id: -1,
                producer_epoch: -1,
                ..Default::default()
            },
        );
        pump(&mut conn, &mut cluster, now, out);
        for (i, max) in [3i16, 7, 9, 11, 20].into_iter().enumerate() {
            let mut batch = BytesMut::new();
            let config = BatchConfig {
                base_offset: 0,
                compression: [
                    Compression::None,
                    Compression::Gzip,
                    Compression::Lz4,
                    Compression::Snappy,
                    Compression::Zstd,
                ][i],
                ..BatchConfig::default()
            };
            let mut b = BatchBuilder::new(&mut batch, &config);
            let header = [NewHeader::new("sim", Some(b"1"))];
            b.append(
                &NewRecord::new(1000 + i as i64)
                    .key(b"k")
                    .value(b"sim value")
                    .headers(&header),
            )
            .expect("append");
            b.append(&NewRecord::new(1001 + i as i64).value(b"second"))
                .expect("append");
            b.finish().expect("finish");
            let produce = ProduceRequest {
                acks: -1,
                timeout_ms: 1000,
                topic_data: vec![TopicProduceData {
                    name: "t".into(),
                    partition_data: vec![PartitionProduceData {
                        index: 0,
                        records: Some(batch.freeze()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            };
            let _ = conn.send_with(now, produce, RequestOptions::max_version(max));
            pump(&mut conn, &mut cluster, now, out);
        }
        now += Duration::from_secs(1);
        pump(&mut conn, &mut cluster, now, out);
        for max in [4i16, 11, 12, 17] {
            let fetch = FetchRequest {
                max_wait_ms: 10,
                min_bytes: 1,
                max_bytes: 1 << 20,
                topics: vec![FetchTopic {
                    topic: "t".into(),
                    topic_id,
                    partitions: vec![FetchPartition {
                        partition: 0,
                        fetch_offset: 0,
                        partition_max_bytes: 1 << 20,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            };
            let _ = conn.send_with(now, fetch, RequestOptions::max_version(max));
            pump(&mut conn, &mut cluster, now, out);
            now += Duration::from_millis(20);
            pump(&mut conn, &mut cluster, now, out);
        }
        let list = ListOffsetsRequest {
            replica_id: -1,
            topics: vec![ListOffsetsTopic {
                name: "t".into(),
                partitions: vec![ListOffsetsPartition {
                    partition_index: 0,
                    timestamp: -1,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let _ = conn.send(now, list);
        pump(&mut conn, &mut cluster, now, out);
    }

    pub fn consumer_offsets(rng: &mut Rng, out: &mut Seeds) {
        coordinator_pair::<
            ConsumerGroupCurrentMemberAssignmentKey,
            ConsumerGroupCurrentMemberAssignmentValue,
        >(rng, out);
        coordinator_pair::<ConsumerGroupMemberMetadataKey, ConsumerGroupMemberMetadataValue>(
            rng, out,
        );
        coordinator_pair::<ConsumerGroupMetadataKey, ConsumerGroupMetadataValue>(rng, out);
        coordinator_pair::<ConsumerGroupPartitionMetadataKey, ConsumerGroupPartitionMetadataValue>(
            rng, out,
        );
        coordinator_pair::<ConsumerGroupRegularExpressionKey, ConsumerGroupRegularExpressionValue>(
            rng, out,
        );
        coordinator_pair::<
            ConsumerGroupTargetAssignmentMemberKey,
            ConsumerGroupTargetAssignmentMemberValue,
        >(rng, out);
        coordinator_pair::<
            ConsumerGroupTargetAssignmentMetadataKey,
            ConsumerGroupTargetAssignmentMetadataValue,
        >(rng, out);
        coordinator_pair::<GroupMetadataKey, GroupMetadataValue>(rng, out);
        coordinator_pair::<OffsetCommitKey, OffsetCommitValue>(rng, out);
        coordinator_pair::<
            ShareGroupCurrentMemberAssignmentKey,
            ShareGroupCurrentMemberAssignmentValue,
        >(rng, out);
        coordinator_pair::<ShareGroupMemberMetadataKey, ShareGroupMemberMetadataValue>(rng, out);
        coordinator_pair::<ShareGroupMetadataKey, ShareGroupMetadataValue>(rng, out);
        coordinator_pair::<ShareGroupPartitionMetadataKey, ShareGroupPartitionMetadataValue>(
            rng, out,
        );
        coordinator_pair::<
            ShareGroupStatePartitionMetadataKey,
            ShareGroupStatePartitionMetadataValue,
        >(rng, out);
        coordinator_pair::<
            ShareGroupTargetAssignmentMemberKey,
            ShareGroupTargetAssignmentMemberValue,
        >(rng, out);
        coordinator_pair::<
            ShareGroupTargetAssignmentMetadataKey,
            ShareGroupTargetAssignmentMetadataValue,
        >(rng, out);
    }
}

/// Not a check: writes seeds for every target to `target/fuzz-seeds/<target>/`
/// (or `$FUZZ_SEEDS_DIR`), each checked against its target first.
#[test]
#[ignore = "writes seed files; run by scripts/fuzz.sh seed"]
fn write_seeds() {
    let mut rng = common::Rng(0x5EED_F00D_1234_5678);
    let mut all = seeds::Seeds::new();
    seeds::snapshots(&root(), &mut all);
    seeds::records(&root(), &mut all);
    seeds::messages(&mut rng, &mut all);
    seeds::consumer_offsets(&mut rng, &mut all);
    seeds::scripts(&mut rng, &mut all);
    seeds::producer_scripts(&mut rng, &mut all);
    seeds::consumer_scripts(&mut rng, &mut all);
    #[cfg(feature = "sim")]
    seeds::simulation(&mut all);
    let out = std::env::var_os("FUZZ_SEEDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/fuzz-seeds"));
    let _ = fs::remove_dir_all(&out);
    let mut failures = Vec::new();
    for (target, name, bytes) in &all {
        let t = targets::target(target).expect("seed for a known target");
        if let Err(e) = replay(t, bytes) {
            failures.push(format!("{target}/{name}: {e}"));
        }
        let dir = out.join(target);
        fs::create_dir_all(&dir).expect("seed dir");
        fs::write(dir.join(name), bytes).expect("seed file");
    }
    for t in TARGETS {
        let n = all.iter().filter(|(name, ..)| *name == t.name).count();
        eprintln!("{}: {n} seeds", t.name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------------
// Regressions: every defect the fuzzers found, as a unit test beside its named input
// in corpus/<target>/regress-*.

/// `records` target (round trip, `corpus/records/regress-{gzip,zstd}-unlimited-
/// decompression`): a `max_decompressed_bytes` of `usize::MAX` overflowed
/// `limit as u64 + 1` in the gzip and zstd readers: a panic with overflow checks, and
/// without them a read limit of 0, so every compressed batch came back empty.
#[test]
fn regress_unlimited_decompression_limit() {
    use kafka_sansio::records::*;
    for compression in [Compression::Gzip, Compression::Zstd] {
        let mut buf = bytes::BytesMut::new();
        let config = BatchConfig {
            compression,
            ..BatchConfig::default()
        };
        let mut b = BatchBuilder::new(&mut buf, &config);
        b.append(&NewRecord::new(0).value(b"kept")).expect("append");
        b.finish().expect("finish");
        let opts = DecodeOptions {
            max_decompressed_bytes: usize::MAX,
            ..DecodeOptions::default()
        };
        let batch = BatchReader::new(buf.freeze(), opts)
            .next()
            .expect("one batch")
            .expect("decodes");
        let values: Vec<_> = batch
            .records(&opts)
            .expect("decompresses")
            .map(|r| r.expect("record").value_bytes())
            .collect();
        assert_eq!(
            values,
            [Some(bytes::Bytes::from_static(b"kept"))],
            "{compression:?}"
        );
    }
}

/// `sim_cluster` target (fixed on main by fc27839, "sim: refuse partition counts
/// above 10,000 per topic"): a CreatePartitions request with `count = i32::MAX` made
/// the simulated cluster build two billion partitions, and the process aborted with
/// "memory allocation of 34346060256 bytes failed". CreateTopics with
/// `num_partitions = i32::MAX` did the same. A broker must refuse such a count
/// (INVALID_PARTITIONS, 37) rather than die.
#[cfg(feature = "sim")]
#[test]
fn regress_sim_create_partitions_count() {
    use kafka_sansio::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_sansio::messages::{
        ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, RequestHeader, ResponseHeader,
    };
    use kafka_sansio::sim::{Cluster, ClusterConfig};
    use kafka_sansio::wire::{BytesMut, Message};
    #[allow(clippy::disallowed_methods)]
    let now = std::time::Instant::now();
    let mut cluster = Cluster::new(ClusterConfig::default(), now);
    cluster.create_topic("t", 1, 1).expect("topic");
    let conn = cluster.connect(0, now).expect("connect");
    let mut body = BytesMut::new();
    RequestHeader {
        request_api_key: ApiKey::CreatePartitions as i16,
        request_api_version: 0,
        correlation_id: 1,
        client_id: Some("fuzz".into()),
        ..Default::default()
    }
    .encode(&mut body, 1)
    .expect("header");
    CreatePartitionsRequest {
        topics: vec![CreatePartitionsTopic {
            name: "t".into(),
            count: i32::MAX,
            ..Default::default()
        }],
        timeout_ms: 1000,
        ..Default::default()
    }
    .encode(&mut body, 0)
    .expect("body");
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    cluster.handle_input(conn, now, &frame);
    let out = cluster.poll_transmit(conn).expect("an answer");
    let mut resp = out.slice(4..);
    ResponseHeader::decode(&mut resp, 0).expect("header");
    let resp = CreatePartitionsResponse::decode(&mut resp, 0).expect("body");
    assert_eq!(resp.results[0].error_code, 37, "INVALID_PARTITIONS");
}

/// Found while checking what the `records` target's counting allocator cannot see
/// (allocations in zstd's C code): a 10-byte zstd frame declaring a 128 MiB window
/// made zstd reserve it (VmPeak grew 64 MiB) before reading any data, whatever
/// `max_decompressed_bytes` said. The window is now capped by the limit (at least
/// 8 MiB, at most zstd's default 128 MiB), so such a frame is refused while a frame
/// with an 8 MiB window and a small body still decodes.
#[cfg(feature = "zstd")]
#[test]
fn regress_zstd_window_bounded_by_limit() {
    use kafka_sansio::records::*;
    fn batch_with_zstd_window(exponent: u8) -> bytes::Bytes {
        // zstd frame: magic, no content size, window descriptor 2^(10 + exponent),
        // then one last raw block holding a minimal record (null key and value).
        let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, exponent << 3];
        frame.extend_from_slice(&[(7 << 3) | 1, 0, 0]);
        frame.extend_from_slice(&[12, 0, 0, 0, 1, 1, 0]);
        let mut raw = vec![0u8; 61];
        raw[16] = 2;
        raw[22] = 4;
        raw[57..61].copy_from_slice(&1i32.to_be_bytes());
        raw.extend_from_slice(&frame);
        let len = (raw.len() - 12) as i32;
        raw[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c::crc32c(&raw[21..]);
        raw[17..21].copy_from_slice(&crc.to_be_bytes());
        bytes::Bytes::from(raw)
    }
    let opts = DecodeOptions {
        max_decompressed_bytes: 256 * 1024,
        ..DecodeOptions::default()
    };
    let decode = |exponent| {
        let batch = BatchReader::new(batch_with_zstd_window(exponent), opts)
            .next()
            .expect("one batch")
            .expect("batch header");
        batch.records(&opts).map(|r| r.count())
    };
    assert_eq!(decode(13).expect("an 8 MiB window decodes"), 1);
    let refused = decode(17).expect_err("a 128 MiB window for a 256 KiB limit");
    assert!(
        matches!(
            refused.kind,
            RecordsErrorKind::Decompress { codec: "zstd", .. }
        ),
        "{refused:?}"
    );
    // With the default limit (100 MiB) zstd's own cap is unchanged.
    let default = DecodeOptions::default();
    let batch = BatchReader::new(batch_with_zstd_window(17), default)
        .next()
        .expect("one batch")
        .expect("batch header");
    assert_eq!(batch.records(&default).map(|r| r.count()).ok(), Some(1));
}

/// Not a check: prints, per target, the largest heap held for any corpus input
/// against that input's length, to see how much room each bound leaves
/// (`cargo test --all-features --test fuzz_corpus -- --ignored allocation_report --nocapture`).
#[test]
#[ignore = "a report, not a check"]
fn allocation_report() {
    for target in TARGETS {
        let mut worst = (0.0f64, 0usize, 0usize, String::new());
        let mut largest = 0;
        for file in corpus_files(target.name) {
            let data = fs::read(&file).expect("corpus file");
            let origin = now();
            let (_, peak) = alloc::peak_during(|| (target.run)(&data, origin));
            largest = largest.max(peak);
            let over = peak as f64 / data.len().max(1) as f64;
            if over >= worst.0 {
                worst = (over, peak, data.len(), file.display().to_string());
            }
        }
        eprintln!(
            "{}: largest peak {largest} B; largest peak / len = {:.1} ({} B for {} B, {})",
            target.name, worst.0, worst.1, worst.2, worst.3
        );
    }
}

/// `sim_cluster` target (`corpus/sim_cluster/regress-ten-thousand-partitions`): a
/// 145-byte script made the simulated cluster hold 2.5 MB, the partitions a
/// CreateTopics asked for under the 10,000-per-topic cap (6 KB with the cap at 100).
/// A constant per topic rather than a multiple of the input, so the target's bound
/// now allows it; the number of topics one request may create this way is not
/// capped, which is reported.
#[cfg(feature = "sim")]
#[test]
fn regress_sim_partitions_within_bound() {
    let target = targets::target("sim_cluster").expect("target");
    let data =
        fs::read(root().join("corpus/sim_cluster/regress-ten-thousand-partitions")).expect("input");
    let origin = now();
    let (result, peak) = alloc::peak_during(|| (target.run)(&data, origin));
    assert_eq!(result, Ok(true));
    assert!(peak <= target.alloc_bound(data.len()), "{peak}");
}

/// `producer` target (`corpus/producer/regress-late-delivery`, found by the CI fuzz
/// run): a record was delivered 215 ms past its delivery timeout plus one request's
/// time. Its batch had been retried and went back behind younger batches (without
/// idempotence a retry goes to the back), and only the front of a partition's
/// sealed batches was checked for expiry. Every sealed batch not in flight now
/// expires at its deadline, wherever it waits.
#[test]
fn regress_producer_late_delivery() {
    let target = targets::target("producer").expect("target");
    let data = fs::read(root().join("corpus/producer/regress-late-delivery")).expect("input");
    let outcome = (target.run)(&data, now());
    assert!(outcome.is_ok(), "{outcome:?}");
}

/// How deep the `consumer` corpus (or `$FUZZ_DEPTH_DIR`) gets: per input,
/// `consumer_progress` (requests weighted by depth, rebalances, records handed out
/// at 100 each) and whether an operation ended with a result or a record came out.
#[test]
#[ignore = "a report, not a check: cargo test --all-features --test fuzz_corpus -- --ignored consumer_depth_report --nocapture"]
fn consumer_depth_report() {
    use kafka_sansio::fuzzing::client::consumer_progress;
    let dir = std::env::var_os("FUZZ_DEPTH_DIR")
        .map_or_else(|| root().join("corpus/consumer"), PathBuf::from);
    let target = targets::target("consumer").expect("target");
    let mut rows = Vec::new();
    for e in fs::read_dir(&dir).expect("directory") {
        let path = e.expect("entry").path();
        let data = fs::read(&path).expect("input");
        let progress = consumer_progress(&data, now());
        let accepted = replay(target, &data);
        rows.push((progress, accepted, data.len(), path));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    for (progress, accepted, len, path) in rows.iter().take(40) {
        eprintln!("{progress:>7} {accepted:?} {len:>5} {}", path.display());
    }
    let with_records = rows.iter().filter(|r| r.0 >= 100).count();
    eprintln!(
        "{} inputs, {} accepted, {with_records} scoring 100 or more",
        rows.len(),
        rows.iter().filter(|r| r.1 == Ok(true)).count()
    );
}

/// Only the `consumer` target's grown scripts (the slow part of `write_seeds` for
/// it), into `$FUZZ_SEEDS_DIR/consumer`.
#[test]
#[ignore = "writes seed files: FUZZ_SEEDS_DIR=... cargo test --all-features --test fuzz_corpus -- --ignored write_consumer_seeds"]
fn write_consumer_seeds() {
    let mut rng = common::Rng(0xC0_5EED_0000_0848);
    let mut all = seeds::Seeds::new();
    seeds::consumer_scripts(&mut rng, &mut all);
    let out = std::env::var_os("FUZZ_SEEDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/fuzz-seeds"))
        .join("consumer");
    fs::create_dir_all(&out).expect("seed dir");
    let target = targets::target("consumer").expect("target");
    for (_, name, bytes) in &all {
        replay(target, bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        fs::write(out.join(name), bytes).expect("seed file");
    }
    eprintln!("consumer: {} seeds", all.len());
}

/// `consumer` target (`corpus/consumer/regress-closed-links-memory`, found in its
/// first minutes): a defect of the harness, not the client. Once the brokers fall
/// silent, the client retries its pending commits for minutes of virtual time and
/// opens a connection at every attempt; the harness kept every connection's state
/// (decoder, queues) forever and held 1.47 MB for a 363-byte input. It now keeps
/// only the ids of connections the client closed.
#[test]
fn regress_consumer_harness_closed_links() {
    let target = targets::target("consumer").expect("target");
    let data = fs::read(root().join("corpus/consumer/regress-closed-links-memory")).expect("input");
    let origin = now();
    let (result, peak) = alloc::peak_during(|| (target.run)(&data, origin));
    assert!(result.is_ok(), "{result:?}");
    assert!(peak <= target.alloc_bound(data.len()), "{peak}");
}

/// `consumer` target (`corpus/consumer/regress-non-member-commit-held`, found in its
/// second run): a commit outside a group (manual assignment) answered with
/// REBALANCE_IN_PROGRESS for one partition was held for a retry after the next
/// heartbeat, and a client in no group sends none: the commit, and every commit
/// queued behind it, never ended. Only a member in a group holds a commit now.
#[test]
fn regress_consumer_non_member_commit_ends() {
    let target = targets::target("consumer").expect("target");
    let data =
        fs::read(root().join("corpus/consumer/regress-non-member-commit-held")).expect("input");
    let outcome = (target.run)(&data, now());
    assert!(outcome.is_ok(), "{outcome:?}");
}

/// Replays `corpus/consumer/<name>` through the `consumer` target and expects it to
/// pass every check.
fn consumer_regression(name: &str) {
    let target = targets::target("consumer").expect("target");
    let data = fs::read(root().join("corpus/consumer").join(name)).expect("input");
    let outcome = replay(target, &data);
    assert!(outcome.is_ok(), "{name}: {outcome:?}");
}

/// `consumer` target (`corpus/consumer/regress-metadata-refresh-spin`, the first
/// finds of its fourth run): a broker without a usable Metadata version fails
/// every refresh at once; the refresh for stale metadata was asked for without the
/// `metadata_min_interval` debounce, so right after the failure the next refresh
/// was due at `now` again and, after `handle_timeout(now)`, the client asked to be
/// woken at `now` (a busy loop for any runtime). It is debounced now.
#[test]
fn regress_consumer_metadata_refresh_does_not_spin() {
    consumer_regression("regress-metadata-refresh-spin");
}

/// `consumer` target (`corpus/consumer/regress-join-timer-while-rebalancing`): a
/// classic member whose JoinGroup backoff had passed, waiting for a transition
/// (lost partitions, a commit outstanding) to end before joining, still reported
/// the passed backoff as its next deadline: the client asked to be woken at `now`
/// after `handle_timeout(now)`. The join (and lost partitions, in both protocols)
/// no longer counts while a transition is in progress; the transition's own
/// deadline, or the input that ends it, wakes the member.
#[test]
fn regress_consumer_join_timer_waits_for_the_transition() {
    consumer_regression("regress-join-timer-while-rebalancing");
}

/// `consumer` target (`corpus/consumer/regress-held-commit-silent-coordinator`): a
/// KIP-848 commit answered STALE_MEMBER_EPOCH was held until a heartbeat was
/// answered without error; with a coordinator that never answers again the commit
/// never ended. The hold now ends with the next heartbeat however it ends (and a
/// classic member's, with a failed JoinGroup as with a SyncGroup answer): the commit
/// goes once more and is reported.
#[test]
fn regress_consumer_held_commit_ends_without_a_coordinator() {
    consumer_regression("regress-held-commit-silent-coordinator");
}

/// `consumer` target (`corpus/consumer/regress-commit-named-twice`): an explicit
/// commit of `[(t-1, 0), (t-1, 16), (t-1, 14)]` went in one OffsetCommit; the broker
/// keeps the last (14) while the client reported 16 and took 16 as the floor (so a
/// later commit of 16 would have been answered without asking the broker). Only a
/// partition's first entry in a commit is committed now; the others are refused.
#[test]
fn regress_consumer_commit_names_a_partition_once() {
    consumer_regression("regress-commit-named-twice");
}

/// `consumer` target (`corpus/consumer/regress-revoked-then-lost`, found in the
/// campaign after the fixes above): a KIP-848 static member leaving reported its
/// partition revoked; FENCED_INSTANCE_ID then stopped it before the revocation was
/// done, and the stop reported the same partition lost (the reconciler still held
/// it). The stop now reports what the application holds by the events it had.
#[test]
fn regress_consumer_stop_reports_no_partition_twice() {
    consumer_regression("regress-revoked-then-lost");
}

/// `consumer` target (`corpus/consumer/regress-session-expiry-loss`, a 13-minute
/// campaign after the fixes above, 4 of its 11 finds): a member that found its
/// session expired (no heartbeat answered for a session timeout) marked its
/// partitions lost and returned; the drive loop saw no progress in that flag
/// alone and stopped, so the loss waited for the next input while the member's
/// passed heartbeat (KIP-848) or join (classic) timer was its next deadline: after
/// `handle_timeout(now)` it asked to be woken in the past. The expiry is now
/// checked before lost partitions are handled, in the same pass.
#[test]
fn regress_consumer_session_expiry_is_handled_at_once() {
    consumer_regression("regress-session-expiry-loss");
}

/// `consumer` target (`corpus/consumer/regress-held-commit-after-leave`): a commit
/// held for the membership to catch up, when the member then left the group,
/// waited for a heartbeat a member outside the group never sends. Leaving
/// releases it (it goes as a non-member's commit).
#[test]
fn regress_consumer_held_commit_goes_after_leaving() {
    consumer_regression("regress-held-commit-after-leave");
}

/// `consumer` target (`corpus/consumer/regress-leave-ended-by-stop`): a fatal
/// error stopping the member while it was leaving dropped the leave's operation,
/// which never ended. It now ends with the error that stopped the member.
#[test]
fn regress_consumer_leave_ends_when_the_member_stops() {
    consumer_regression("regress-leave-ended-by-stop");
}

/// `consumer` target (`corpus/consumer/regress-fallback-without-assignor`, found
/// while checking a planted bug): a KIP-848 member configured with no classic
/// assignor fell back to the classic protocol (the coordinator lacked
/// ConsumerGroupHeartbeat), was chosen leader and indexed the empty assignor list:
/// a panic. The fallback now stops the member with an error instead.
#[test]
fn regress_consumer_fallback_without_an_assignor_does_not_panic() {
    consumer_regression("regress-fallback-without-assignor");
}

/// `consumer` target (`corpus/consumer/regress-transition-ends-and-another-starts`):
/// in one pass of `GroupMember::drive` a Lost transition ended (its commit had
/// timed out) and the session, found expired again, started another; the loop
/// judged progress by the reconciler being busy before and after, saw none and
/// stopped, leaving the new transition (which could end at once) waiting and the
/// passed heartbeat timer as the next deadline. A transition that ends now counts
/// as progress.
#[test]
fn regress_consumer_drive_goes_on_after_a_transition_ends() {
    consumer_regression("regress-transition-ends-and-another-starts");
}

/// Replays the files named in `$FUZZ_REPLAY` (separated by `:`) through
/// `$FUZZ_TARGET` (default `consumer`) and prints each outcome, with the client's
/// `tracing` output filtered by `RUST_LOG`: a debug build for triaging fuzz finds
/// without rebuilding the fuzz binary.
#[test]
#[ignore = "a triage tool: FUZZ_REPLAY=a:b RUST_LOG=debug cargo test --all-features --test fuzz_corpus -- --ignored replay_files --nocapture"]
fn replay_files() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let name = std::env::var("FUZZ_TARGET").unwrap_or_else(|_| "consumer".into());
    let target = targets::target(&name).expect("target");
    let files = std::env::var("FUZZ_REPLAY").unwrap_or_default();
    for file in files.split(':').filter(|f| !f.is_empty()) {
        let data = fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        eprintln!("{file}: {:?}", replay(target, &data));
    }
}
