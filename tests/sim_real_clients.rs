//! The honesty check: real Kafka clients that others wrote must accept the simulated
//! cluster served on loopback ([`kafka_sansio::sim_server`]).
//!
//! - kcat (Debian's, librdkafka 2.0.2, and the same kcat on librdkafka 2.16 from the
//!   confluent-kafka wheel): `-L` metadata, including after a broker crash; producing
//!   with every codec (none, gzip, snappy, lz4, zstd) and consuming it back with
//!   `check.crcs=true` (Debian's librdkafka sends gzip, snappy and lz4 uncompressed to
//!   a broker without Produce v0, as to Kafka 4.0; see
//!   [`kcat_produces_and_consumes_every_codec`]).
//! - confluent-kafka (PyPI): AdminClient create_topics and list_topics; producers with
//!   every codec, idempotent (acks=all) and plain (acks=1); a consumer assigned at
//!   explicit offsets with CRC checks, which then commits offsets and reads them back
//!   (FindCoordinator, OffsetCommit, OffsetFetch); an idempotent producer that
//!   survives a leader crash with every record exactly once; a consumer that waits
//!   between the high watermark and the log end; a consumer that reads on across a
//!   leader crash (OffsetForLeaderEpoch).
//! - kafka-python (PyPI): the same through its own pure-Python protocol code (admin,
//!   every codec, assigned consumer with commits, producer and consumer across a
//!   leader crash).
//! - both Python clients retry injected NOT_LEADER_OR_FOLLOWER errors on Produce and
//!   Fetch and still end with every record exactly once.
//! - both Python clients run a consumer group (subscribe): two members share the
//!   partitions after a rebalance, read every record exactly once and commit.
//! - both Python clients' transactional producers write four transactions
//!   (committed, aborted, committed, left open); each client's read_committed
//!   consumer reads the committed records only and stops at the open one, its
//!   read_uncommitted consumer reads them all, and our consumer and partition
//!   client read exactly the same at each level.
//!
//! Every key and value must come back byte for byte, with the offsets the producer
//! was told. Independently, the test decodes what the simulated brokers stored and
//! checks it holds exactly those records, in batches compressed with the codec asked
//! for (so a client that silently fell back to no compression is caught), carrying a
//! producer id exactly when the producer was idempotent.
//!
//! The peers are installed by `scripts/peers/install.sh` (as the other integration
//! tests do); if that fails the tests fail, they never skip.
#![cfg(all(feature = "sim", feature = "tokio"))]
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use kafka_sansio::records::{BatchReader, Compression, DecodeOptions};
use kafka_sansio::sim::ClusterConfig;
use kafka_sansio::sim_server::BackgroundServer;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The peers' environment from `install.sh` (installing them if needed), once per run.
fn peers() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("scripts/peers/install.sh"))
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("cannot run bash scripts/peers/install.sh");
        assert!(
            out.status.success(),
            "scripts/peers/install.sh failed (see its log above): the real clients \
             (kcat, confluent-kafka, kafka-python) are required for this test"
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    })
}

fn peer(key: &str) -> String {
    let v = peers()
        .get(key)
        .unwrap_or_else(|| panic!("install.sh printed no {key}"));
    assert!(!v.is_empty(), "install.sh printed an empty {key}");
    v.clone()
}

fn start(brokers: usize) -> BackgroundServer {
    BackgroundServer::start(ClusterConfig {
        brokers,
        base_port: 0,
        ..ClusterConfig::default()
    })
    .expect("serve the simulated cluster")
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// (offset, key, value)
type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>);
/// (key, value)
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// What the simulated leader stored for a partition, decoded by us: the records, and
/// per batch its codec and producer id.
fn stored(
    server: &BackgroundServer,
    topic: &str,
    partition: i32,
) -> (Vec<Rec>, Vec<(Compression, i64)>) {
    let batches = server.with_cluster(|c, _| c.partition_batches(topic, partition));
    let opts = DecodeOptions::default();
    let mut records = Vec::new();
    let mut kinds = Vec::new();
    for bytes in batches {
        for batch in BatchReader::new(bytes, opts) {
            let batch = batch.unwrap();
            let v2 = batch
                .clone()
                .into_v2()
                .expect("the sim stores v2 batches only");
            kinds.push((v2.header.compression().unwrap(), v2.header.producer_id));
            for r in batch.records(&opts).unwrap() {
                let r = r.unwrap();
                records.push((
                    r.offset,
                    r.key().map(|b| b.to_vec()),
                    r.value().map(|b| b.to_vec()),
                ));
            }
        }
    }
    (records, kinds)
}

/// Deterministic bytes: runs that compress and noise that does not.
fn payload(seed: u64, len: usize, forbidden: &[u8]) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = if (out.len() / 16) % 2 == 0 {
            b'a' + (seed % 26) as u8
        } else {
            (x >> 24) as u8
        };
        if !forbidden.contains(&b) {
            out.push(b);
        }
    }
    out
}

// ------------------------------------------------------------------------- kcat --

#[derive(Debug, Clone, Copy)]
enum Kcat {
    /// Debian's kcat on Debian's librdkafka 2.0.2.
    Debian,
    /// The same kcat on librdkafka 2.16 from the confluent-kafka wheel.
    V216,
}

fn kcat(flavour: Kcat) -> Command {
    let mut cmd = Command::new(peer("PEERS_KCAT"));
    if let Kcat::V216 = flavour {
        cmd.env("LD_LIBRARY_PATH", peer("PEERS_LIBRDKAFKA216_DIR"));
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn run(mut cmd: Command, what: &str) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The librdkafka version a kcat flavour really runs on (so that the 2.16 runs are
/// not silently Debian's library).
fn check_librdkafka(flavour: Kcat) {
    let mut cmd = kcat(flavour);
    cmd.arg("-V");
    let text = String::from_utf8(run(cmd, "kcat -V")).unwrap();
    let want = match flavour {
        Kcat::Debian => "librdkafka 2.0",
        Kcat::V216 => "librdkafka 2.16",
    };
    assert!(
        text.contains(want),
        "{flavour:?}: kcat -V says {text:?}, expected {want}"
    );
}

fn kcat_metadata(flavour: Kcat) {
    check_librdkafka(flavour);
    let server = start(3);
    server
        .with_cluster(|c, _| c.create_topic("meta", 4, 3))
        .unwrap();
    let list = |server: &BackgroundServer| {
        let mut cmd = kcat(flavour);
        cmd.args(["-L", "-b", &server.bootstrap(), "-m", "10"]);
        String::from_utf8(run(cmd, "kcat -L")).unwrap()
    };
    let text = list(&server);
    assert!(text.contains(" 3 brokers:"), "{text}");
    for (id, addr) in server.addrs().iter().enumerate() {
        assert!(text.contains(&format!("broker {id} at {addr}")), "{text}");
    }
    assert!(text.contains("topic \"meta\" with 4 partitions:"), "{text}");
    for p in 0..4 {
        let leader = server.with_cluster(|c, _| c.partition_leader("meta", p).unwrap());
        assert!(
            text.contains(&format!("partition {p}, leader {leader},")),
            "{text}"
        );
    }
    // A fault shows: broker 0 crashes, leaves the broker list, and its partitions
    // get new leaders.
    server.with_cluster(|c, now| c.crash_broker(0, now));
    let text = list(&server);
    assert!(text.contains(" 2 brokers:"), "{text}");
    assert!(!text.contains("broker 0 at"), "{text}");
    for p in 0..4 {
        let leader = server.with_cluster(|c, _| c.partition_leader("meta", p).unwrap());
        assert_ne!(leader, 0);
        assert!(
            text.contains(&format!("partition {p}, leader {leader},")),
            "{text}"
        );
    }
}

#[test]
fn kcat_lists_metadata() {
    kcat_metadata(Kcat::Debian);
}

#[test]
fn kcat_on_librdkafka_2_16_lists_metadata() {
    kcat_metadata(Kcat::V216);
}

/// Reads kcat's `%o %K %S\n%k%s\n` output: (offset, key, value).
fn parse_kcat(mut rest: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        let nl = rest.iter().position(|b| *b == b'\n').unwrap();
        let head = std::str::from_utf8(&rest[..nl]).unwrap();
        let f: Vec<&str> = head.split(' ').collect();
        let (offset, klen, vlen): (i64, i64, i64) = (
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
        );
        let mut at = nl + 1;
        let mut take = |len: i64| {
            (len >= 0).then(|| {
                let v = rest[at..at + len as usize].to_vec();
                at += len as usize;
                v
            })
        };
        let key = take(klen);
        let value = take(vlen);
        assert_eq!(rest[at], b'\n', "kcat output framing");
        out.push((offset, key, value));
        rest = &rest[at + 1..];
    }
    out
}

/// Produces `sent` (key, value) to one partition with kcat, one record per line.
fn kcat_produce(
    flavour: Kcat,
    boot: &str,
    topic: &str,
    p: i32,
    codec: Compression,
    sent: &[(Vec<u8>, Vec<u8>)],
) {
    let mut cmd = kcat(flavour);
    cmd.args(["-P", "-b", boot, "-t", topic, "-p", &p.to_string()])
        .args(["-z", codec.name(), "-K", "\t"])
        .args(["-X", "acks=all", "-X", "linger.ms=20"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for (k, v) in sent {
            stdin.write_all(k).unwrap();
            stdin.write_all(b"\t").unwrap();
            stdin.write_all(v).unwrap();
            stdin.write_all(b"\n").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{flavour:?} kcat -P -z {}: {}",
        codec.name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Each codec gets a partition. Debian's kcat produces 40 records to it, then kcat on
/// librdkafka 2.16 produces 40 more; both kcats then consume all 80 with CRC checks.
///
/// Debian's librdkafka 2.0.2 compresses only zstd here: it takes gzip, snappy and lz4
/// as supported only if the broker answers Produce v0 (librdkafka issue #4956), and
/// the simulated broker, like Apache Kafka 4.0 (KIP-896), starts at Produce v3. It
/// sends those batches uncompressed, exactly as it does to Kafka 4.0; the test pins
/// that, and relies on the 2.16 batches for the compressed ones.
#[test]
fn kcat_produces_and_consumes_every_codec() {
    check_librdkafka(Kcat::Debian);
    check_librdkafka(Kcat::V216);
    let server = start(3);
    server
        .with_cluster(|c, _| c.create_topic("codecs", 5, 3))
        .unwrap();
    let boot = server.bootstrap();
    for (p, codec) in CODECS.into_iter().enumerate() {
        let p = p as i32;
        let mut expected: Vec<Rec> = Vec::new();
        let mut codecs = Vec::new();
        for (round, flavour) in [Kcat::Debian, Kcat::V216].into_iter().enumerate() {
            // kcat reads one record per line, key and value split at the first tab.
            let sent: Vec<(Vec<u8>, Vec<u8>)> = (0..40)
                .map(|j| {
                    let seed = (p * 1000 + round as i32 * 100 + j) as u64;
                    (
                        payload(seed, 1 + (j as usize % 9), b"\n\t"),
                        payload(seed + 7, 1 + (j as usize * 37) % 700, b"\n\t"),
                    )
                })
                .collect();
            kcat_produce(flavour, &boot, "codecs", p, codec, &sent);
            let base = expected.len() as i64;
            expected.extend(
                sent.into_iter()
                    .enumerate()
                    .map(|(j, (k, v))| (base + j as i64, Some(k), Some(v))),
            );
            // What the sim stored: exactly these records, compressed as kcat chose.
            let (records, kinds) = stored(&server, "codecs", p);
            assert_eq!(records, expected, "{flavour:?} stored, {}", codec.name());
            let chosen = match (flavour, codec) {
                (Kcat::Debian, Compression::Gzip | Compression::Snappy | Compression::Lz4) => {
                    Compression::None
                }
                _ => codec,
            };
            let new: Vec<Compression> = kinds[codecs.len()..].iter().map(|(c, _)| *c).collect();
            assert!(
                !new.is_empty() && new.iter().all(|c| *c == chosen),
                "{flavour:?} asked for {codec:?}: expected {chosen:?} batches, stored {new:?}"
            );
            codecs.extend(new);
        }
        // Both kcats read everything back, CRCs checked.
        for flavour in [Kcat::Debian, Kcat::V216] {
            let mut cmd = kcat(flavour);
            cmd.args(["-C", "-b", &boot, "-t", "codecs", "-p", &p.to_string()])
                .args(["-o", "beginning", "-e", "-q", "-X", "check.crcs=true"])
                .args(["-f", "%o %K %S\n%k%s\n"]);
            let got = parse_kcat(&run(cmd, "kcat -C"));
            assert_eq!(
                got,
                expected,
                "{flavour:?} consumed, {} ({codecs:?})",
                codec.name()
            );
        }
    }
}

// ---------------------------------------------------------------- Python clients --

/// Runs `tests/sim_real_clients.py CLIENT BOOTSTRAP ARGS...` with `input` on stdin;
/// returns its stdout lines.
fn python(client: &str, boot: &str, args: &[&str], input: &str) -> Vec<String> {
    let mut child = Command::new(peer("PEERS_PYTHON"))
        .arg(repo().join("tests/sim_real_clients.py"))
        .args([client, boot])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{client} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn hex(data: &Option<Vec<u8>>) -> String {
    match data {
        None => "-".into(),
        Some(d) => d.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (text != "-").then(|| {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    })
}

/// Records for partition `p`, starting at `first`: null keys, null and empty values,
/// binary bytes of every value, some long and compressible.
fn python_records(p: i32, first: usize, n: usize) -> Vec<KeyValue> {
    (first..first + n)
        .map(|j| {
            let seed = (p as u64) * 10_000 + j as u64;
            let key = (j % 7 != 3).then(|| payload(seed, 1 + j % 12, b""));
            let value = match j % 11 {
                // kafka-python refuses a record whose key and value are both null.
                5 if key.is_some() => None,
                5 | 6 => Some(Vec::new()),
                _ => Some(payload(seed + 3, (j * 53) % 2000, b"")),
            };
            (key, value)
        })
        .collect()
}

fn python_client(client: &str) {
    let server = start(3);
    let boot = server.bootstrap();
    let topic = format!("{client}-topic");

    // Admin: CreateTopics, then the topic listing (Metadata) matches the cluster.
    let listed = python(client, &boot, &["create", &topic, "5", "3"], "");
    assert!(
        listed.contains(&format!("topic {topic} 5")),
        "{client} listed {listed:?}"
    );
    for p in 0..5 {
        let leader = server
            .with_cluster(|c, _| c.partition_leader(&topic, p))
            .expect("the topic exists in the sim with a leader");
        assert!(
            listed.contains(&format!("partition {topic} {p} {leader}")),
            "{client} listed {listed:?}"
        );
    }
    assert_eq!(
        server.with_cluster(|c, _| c.partition_leader(&topic, 5)),
        None,
        "5 partitions, not more"
    );

    // Produce: every codec, one partition each; first idempotent (acks=all), then a
    // plain producer (acks=1) appends more.
    let mut expected: Vec<Vec<Rec>> = vec![Vec::new(); 5];
    for (mode, first, n) in [("idempotent", 0, 30), ("acks1", 30, 12)] {
        let mut input = String::new();
        let mut rows = Vec::new();
        for (p, codec) in CODECS.into_iter().enumerate() {
            for (k, v) in python_records(p as i32, first, n) {
                input.push_str(&format!("{p} {} {} {}\n", codec.name(), hex(&k), hex(&v)));
                rows.push((p, k, v));
            }
        }
        let offsets = python(client, &boot, &["produce", &topic, mode], &input);
        assert_eq!(offsets.len(), rows.len(), "{client} {mode}: {offsets:?}");
        for ((p, k, v), line) in rows.into_iter().zip(offsets) {
            let next = expected[p].len() as i64;
            assert_eq!(
                line,
                format!("{p} {next}"),
                "{client} {mode}: the offset the producer was told"
            );
            expected[p].push((next, k, v));
        }
        for (p, codec) in CODECS.into_iter().enumerate() {
            let (records, kinds) = stored(&server, &topic, p as i32);
            assert_eq!(records, expected[p], "{client} {mode}: stored in {p}");
            let idempotent_batches = kinds.iter().filter(|(_, pid)| *pid >= 0).count();
            assert!(
                kinds.iter().all(|(c, _)| *c == codec),
                "{client} {mode}: asked for {codec:?}, stored {kinds:?}"
            );
            match mode {
                "idempotent" => assert_eq!(
                    idempotent_batches,
                    kinds.len(),
                    "{client}: idempotent batches carry a producer id: {kinds:?}"
                ),
                _ => assert!(
                    kinds.iter().any(|(_, pid)| *pid < 0),
                    "{client}: a plain producer's batches carry none: {kinds:?}"
                ),
            }
        }
    }

    // Consume: partitions assigned at explicit offsets (partition 2 from the middle),
    // CRCs checked; everything comes back byte for byte.
    let starts = [0usize, 0, 17, 0, 0];
    let specs: Vec<String> = (0..5)
        .map(|p| format!("{p}:{}:{}", starts[p], expected[p].len() - starts[p]))
        .collect();
    let mut args = vec!["consume", topic.as_str()];
    args.extend(specs.iter().map(String::as_str));
    let mut consumed = python(client, &boot, &args, "");
    let committed = consumed.split_off(consumed.len() - 5);
    let want_committed: Vec<String> = (0..5)
        .map(|p| format!("committed {p} {}", expected[p].len()))
        .collect();
    assert_eq!(
        committed, want_committed,
        "{client}: offsets committed and read back"
    );
    for (p, want) in expected.iter().enumerate() {
        assert_eq!(
            server.with_cluster(|c, _| c.committed_offset("sim-real-clients", &topic, p as i32)),
            Some(want.len() as i64),
            "{client}: the commit reached the sim"
        );
    }
    let want: Vec<(usize, Rec)> = (0..5)
        .flat_map(|p| expected[p][starts[p]..].iter().map(move |r| (p, r.clone())))
        .collect();
    assert_eq!(consumed.len(), want.len(), "{client} consumed {consumed:?}");
    for (line, (p, (offset, k, v))) in consumed.iter().zip(want) {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 4, "{client}: {line:?}");
        assert_eq!(
            (f[0].parse::<usize>().unwrap(), f[1].parse::<i64>().unwrap()),
            (p, offset),
            "{client}: {line:?}"
        );
        assert_eq!(unhex(f[2]), k, "{client}: key at {p}/{offset}");
        assert_eq!(unhex(f[3]), v, "{client}: value at {p}/{offset}");
    }
}

#[test]
fn confluent_kafka_admin_produce_consume() {
    python_client("confluent");
}

#[test]
fn kafka_python_admin_produce_consume() {
    python_client("kafka-python");
}

/// A fault with a real client: the partition leader crashes while confluent-kafka's
/// idempotent producer (acks=all) is sending. The producer must recover on its own
/// (metadata, the new leader, retries), and the log must hold every record exactly
/// once, in order: what was acknowledged survived the crash, and retried batches the
/// new leader already had are recognised as duplicates.
#[test]
fn confluent_kafka_idempotent_producer_survives_a_leader_crash() {
    idempotent_producer_survives_a_leader_crash("confluent");
}

/// The same with kafka-python's idempotent producer.
#[test]
fn kafka_python_idempotent_producer_survives_a_leader_crash() {
    idempotent_producer_survives_a_leader_crash("kafka-python");
}

fn idempotent_producer_survives_a_leader_crash(client: &str) {
    let server = start(3);
    server
        .with_cluster(|c, _| c.create_topic("crash", 1, 3))
        .unwrap();
    let leader = server.with_cluster(|c, _| c.partition_leader("crash", 0).unwrap());
    let count = 150;
    let mut child = Command::new(peer("PEERS_PYTHON"))
        .arg(repo().join("tests/sim_real_clients.py"))
        .args([
            "confluent",
            &server.bootstrap(),
            "produce-paced",
            "crash",
            "0",
        ])
        .args([&count.to_string(), "5"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(
        line.trim(),
        "started",
        "{client}: the producer did not start"
    );
    // Crash the leader once a third of the records are in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let before = loop {
        let crashed = server.with_cluster(|c, now| {
            let (high_watermark, _) = c.partition_offsets("crash", 0).unwrap();
            (high_watermark >= count as i64 / 3).then(|| {
                c.crash_broker(leader, now);
                high_watermark
            })
        });
        if let Some(hw) = crashed {
            break hw;
        }
        assert!(std::time::Instant::now() < deadline, "the producer stalled");
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    assert!(
        before < count as i64,
        "the crash came mid-stream ({before} of {count} written)"
    );
    let rest: Vec<String> = std::io::BufRead::lines(out).map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{client}: producer failed: {stderr}");
    let new_leader = server.with_cluster(|c, _| c.partition_leader("crash", 0).unwrap());
    assert_ne!(new_leader, leader, "the leader moved");

    let (records, kinds) = stored(&server, "crash", 0);
    let expected: Vec<Rec> = (0..count)
        .map(|i| (i as i64, None, Some(format!("record-{i}").into_bytes())))
        .collect();
    assert_eq!(
        records, expected,
        "{client}: every record exactly once, in order"
    );
    assert!(kinds.iter().all(|(_, pid)| *pid >= 0), "{kinds:?}");
    let told: Vec<String> = (0..count).map(|i| format!("0 {i}")).collect();
    assert_eq!(rest, told, "{client}: the offsets the producer was told");
}

/// A consumer positioned between the high watermark and the log end offset (right
/// after a record written with acks=1 that the followers do not have yet) must wait
/// there, as Kafka answers such a fetch with no records; only an offset past the log
/// end is out of range. The sim used to call it out of range, and confluent-kafka,
/// with `auto.offset.reset=earliest`, then re-read the partition from its start.
#[test]
fn confluent_kafka_consumer_waits_between_high_watermark_and_log_end() {
    let server = BackgroundServer::start(ClusterConfig {
        brokers: 3,
        base_port: 0,
        // acks=1 data reaches the followers (and consumers) 1.5 s after it is written.
        replication_delay: std::time::Duration::from_millis(1500),
        ..ClusterConfig::default()
    })
    .unwrap();
    server
        .with_cluster(|c, _| c.create_topic("hw", 1, 3))
        .unwrap();
    let out = python(
        "confluent",
        &server.bootstrap(),
        &["consume-past-hw", "hw"],
        "",
    );
    assert_eq!(
        out,
        ["1"],
        "the consumer assigned at offset 1 reads offset 1 only"
    );
}

/// A consumer reading from the leader when it crashes goes on from the new leader
/// (Metadata, then OffsetForLeaderEpoch to check its position, then Fetch) without
/// losing, repeating or resetting anything. kafka-python stopped fetching for good
/// before the sim answered OffsetForLeaderEpoch.
fn consumer_continues_across_a_leader_crash(client: &str) {
    let server = start(3);
    server
        .with_cluster(|c, _| c.create_topic("across", 1, 3))
        .unwrap();
    let leader = server.with_cluster(|c, _| c.partition_leader("across", 0).unwrap());
    let mut child = Command::new(peer("PEERS_PYTHON"))
        .arg(repo().join("tests/sim_real_clients.py"))
        .args([
            client,
            &server.bootstrap(),
            "consume-across-crash",
            "across",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    if line.trim() != "reached" {
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        panic!("{client}: expected `reached`, got {line:?}: {stderr}");
    }
    server.with_cluster(|c, now| c.crash_broker(leader, now));
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    let got: Vec<String> = std::io::BufRead::lines(out).map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{client}: {stderr}");
    assert_ne!(
        server.with_cluster(|c, _| c.partition_leader("across", 0)),
        Some(leader)
    );
    let want: Vec<String> = (0..200).map(|i| format!("{i} r{i}")).collect();
    assert_eq!(got, want, "{client}: every record once, in order");
}

#[test]
fn confluent_kafka_consumer_continues_across_a_leader_crash() {
    consumer_continues_across_a_leader_crash("confluent");
}

#[test]
fn kafka_python_consumer_continues_across_a_leader_crash() {
    consumer_continues_across_a_leader_crash("kafka-python");
}

/// Injected errors (a fault of the sim's own): the next Produce and Fetch requests
/// answer NOT_LEADER_OR_FOLLOWER. Each real client refreshes its metadata, retries,
/// and ends with every record exactly once.
fn retries_injected_errors(client: &str) {
    use kafka_sansio::messages::{ApiKey, ErrorCode};
    let server = start(3);
    let boot = server.bootstrap();
    let topic = format!("{client}-injected");
    server
        .with_cluster(|c, _| c.create_topic(&topic, 1, 3))
        .unwrap();
    server.with_cluster(|c, _| {
        c.inject_error(ApiKey::Produce, ErrorCode::NOT_LEADER_OR_FOLLOWER, 3);
        c.inject_error(ApiKey::Fetch, ErrorCode::NOT_LEADER_OR_FOLLOWER, 2);
    });
    let input: String = (0..20)
        .map(|i| format!("0 none - {}\n", hex(&Some(format!("v{i}").into_bytes()))))
        .collect();
    let offsets = python(client, &boot, &["produce", &topic, "idempotent"], &input);
    let want: Vec<String> = (0..20).map(|i| format!("0 {i}")).collect();
    assert_eq!(offsets, want, "{client}: acknowledged offsets");
    let (records, _) = stored(&server, &topic, 0);
    let expected: Vec<Rec> = (0..20)
        .map(|i| (i, None, Some(format!("v{i}").into_bytes())))
        .collect();
    assert_eq!(records, expected, "{client}: stored exactly once");
    let mut consumed = python(client, &boot, &["consume", &topic, "0:0:20"], "");
    consumed.truncate(20); // then the `committed` line
    let want: Vec<String> = (0..20)
        .map(|i| format!("0 {i} - {}", hex(&Some(format!("v{i}").into_bytes()))))
        .collect();
    assert_eq!(consumed, want, "{client}: consumed");
    // Every injected error was served (the clients did meet them).
    let pending = server.with_cluster(|c, _| {
        (
            c.injected_pending(ApiKey::Produce),
            c.injected_pending(ApiKey::Fetch),
        )
    });
    assert_eq!(
        pending,
        (0, 0),
        "{client}: not every injected error was met"
    );
}

#[test]
fn confluent_kafka_retries_injected_errors() {
    retries_injected_errors("confluent");
}

#[test]
fn kafka_python_retries_injected_errors() {
    retries_injected_errors("kafka-python");
}

/// Consumer groups (subscribe): two consumers of one group share the partitions
/// after a rebalance (FindCoordinator, JoinGroup with MEMBER_ID_REQUIRED, SyncGroup,
/// Heartbeat, OffsetCommit/OffsetFetch with generations, LeaveGroup); every record
/// is read exactly once, by the consumer that owns its partition, and the group's
/// commits reach the sim.
fn consumer_group(client: &str) {
    let server = start(3);
    let topic = format!("{client}-group");
    let group = format!("{client}-members");
    server
        .with_cluster(|c, _| c.create_topic(&topic, 4, 3))
        .unwrap();
    let out = python(client, &server.bootstrap(), &["group", &topic, &group], "");
    let parse = |line: &str| -> std::collections::BTreeSet<i32> {
        line.split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().unwrap())
            .collect()
    };
    let a1 = parse(&out[0]);
    let a2 = parse(&out[1]);
    assert!(
        out[0].starts_with("assign c1") && out[1].starts_with("assign c2"),
        "{out:?}"
    );
    assert!(
        !a1.is_empty() && !a2.is_empty(),
        "{client}: both own partitions: {out:?}"
    );
    assert!(a1.is_disjoint(&a2), "{client}: {a1:?} and {a2:?} overlap");
    let all: std::collections::BTreeSet<i32> = a1.union(&a2).copied().collect();
    assert_eq!(all, (0..4).collect(), "{client}: every partition owned");
    let mut values = Vec::new();
    for (i, line) in out[2..].iter().enumerate() {
        let f: Vec<&str> = line.split(' ').collect();
        let (who, p): (&str, i32) = (f[0], f[1].parse().unwrap());
        if i >= 100 {
            let owner = if who == "c1" { &a1 } else { &a2 };
            assert!(
                owner.contains(&p),
                "{client}: {who} read {line} outside its share"
            );
        }
        values.push(f[3].to_owned());
    }
    values.sort();
    let mut want: Vec<String> = (0..200).map(|i| format!("v{i}")).collect();
    want.sort();
    assert_eq!(values, want, "{client}: every record exactly once");
    for p in 0..4 {
        let (end, _) = server
            .with_cluster(|c, _| c.partition_offsets(&topic, p))
            .unwrap();
        assert_eq!(
            server.with_cluster(|c, _| c.committed_offset(&group, &topic, p)),
            Some(end),
            "{client}: the group committed partition {p} to its end"
        );
    }
}

#[test]
fn confluent_kafka_consumer_group_shares_partitions() {
    consumer_group("confluent");
}

#[test]
fn kafka_python_consumer_group_shares_partitions() {
    consumer_group("kafka-python");
}

/// Transactions, with confluent-kafka's transactional producer writing and its
/// read_committed consumer reading: four transactions of three records
/// (committed, aborted, committed, left open). What librdkafka reads checks the
/// simulated coordinator (markers, the last stable offset, the aborted list)
/// against a client that others wrote and that filters by them; what our consumer
/// and our partition client read must then be what librdkafka read, record for
/// record, at both isolation levels.
#[cfg(feature = "blocking")]
#[test]
fn confluent_kafka_transactions_read_committed_as_librdkafka_and_we_read_them() {
    transactions_read_as_the_peer_reads_them("confluent");
}

/// The same with kafka-python's transactional producer and consumer: a second
/// implementation of both sides, in pure Python.
#[cfg(feature = "blocking")]
#[test]
fn kafka_python_transactions_read_committed_as_it_and_we_read_them() {
    transactions_read_as_the_peer_reads_them("kafka-python");
}

/// Our transactional producer writes the same four transactions (committed,
/// aborted after being written, committed, left open); confluent-kafka's and
/// kafka-python's read_committed consumers must skip the aborted and the open
/// one, as they do for their own producers' (so our batches carry what their
/// filters look for: the transactional bit, the producer id, the markers' epoch).
#[cfg(feature = "blocking")]
#[test]
fn librdkafka_and_kafka_python_read_our_transactions_committed_only() {
    use kafka_sansio::client::ProducerRecord;
    use kafka_sansio::runtime::ClientBuilder;

    let server = start(1);
    server
        .with_cluster(|c, _| c.create_topic("ours", 1, 1))
        .unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(|c| {
            c.producer.transactional_id = Some("ours-tx".into());
            c.producer.linger = std::time::Duration::from_millis(5);
        })
        .build_blocking()
        .unwrap();
    let producer = client.producer();
    producer.init_transactions().unwrap();
    for (n, outcome) in ["commit", "abort", "commit", "open"]
        .into_iter()
        .enumerate()
    {
        producer.begin_transaction().unwrap();
        let sent: Vec<_> = (0..3)
            .map(|i| {
                producer.send(
                    ProducerRecord::new("ours", format!("{outcome}-{n}-{i}"))
                        .key(format!("txn-{n}"))
                        .partition(0),
                )
            })
            .collect();
        match outcome {
            "commit" => producer.commit_transaction().unwrap(),
            "abort" => {
                // Written first, so that the log holds what the abort must hide.
                producer.flush().unwrap();
                producer.abort_transaction().unwrap();
            }
            _ => producer.flush().unwrap(),
        }
        for d in sent {
            d.wait().unwrap();
        }
    }
    let committed = transaction_values(&[(0, "commit"), (2, "commit")]);
    let uncommitted =
        transaction_values(&[(0, "commit"), (1, "abort"), (2, "commit"), (3, "open")]);
    for peer in ["confluent", "kafka-python"] {
        let out = python(
            peer,
            &server.bootstrap(),
            &["read-transactions", "ours", "6", "12"],
            "",
        );
        let read = |level: &str| level_read(&out, level);
        assert_eq!(
            read("read_committed"),
            (12, committed.clone()),
            "{peer}, read_committed"
        );
        assert_eq!(
            read("read_uncommitted"),
            (15, uncommitted.clone()),
            "{peer}, read_uncommitted"
        );
    }
    client.close();
}

/// `OFFSET:OUTCOME-N-I` of the three records of each transaction `N` of the
/// four-transaction scenario (each ended one is followed by its marker).
#[cfg(feature = "blocking")]
fn transaction_values(outcomes: &[(usize, &str)]) -> Vec<String> {
    outcomes
        .iter()
        .flat_map(|(n, what)| (0..3).map(move |i| format!("{}:{what}-{n}-{i}", 4 * n + i)))
        .collect()
}

/// The end offset and the `OFFSET:VALUE`s the script printed for one isolation
/// level.
#[cfg(feature = "blocking")]
fn level_read(out: &[String], level: &str) -> (i64, Vec<String>) {
    let line = out
        .iter()
        .find(|l| l.split(' ').next() == Some(level))
        .unwrap_or_else(|| panic!("no {level} line in {out:?}"));
    let mut fields = line.split(' ').skip(1);
    let end = fields.next().unwrap().parse().unwrap();
    (end, fields.map(str::to_owned).collect())
}

#[cfg(feature = "blocking")]
fn transactions_read_as_the_peer_reads_them(peer: &str) {
    use kafka_sansio::client::{
        FetchOptions, IsolationLevel, Offset, TopicPartition, UnknownTopicHandling,
    };
    use kafka_sansio::records::ControlRecordType;
    use kafka_sansio::runtime::ClientBuilder;
    use std::time::{Duration, Instant};

    let server = start(1);
    server
        .with_cluster(|c, _| c.create_topic("txn", 1, 1))
        .unwrap();
    let out = python(peer, &server.bootstrap(), &["transactions", "txn"], "");
    let read = |level: &str| level_read(&out, level);
    // Offsets: three records and a marker per ended transaction.
    let committed = transaction_values(&[(0, "commit"), (2, "commit")]);
    let uncommitted =
        transaction_values(&[(0, "commit"), (1, "abort"), (2, "commit"), (3, "open")]);
    assert_eq!(
        read("read_committed"),
        (12, committed.clone()),
        "{peer}, read_committed"
    );
    assert_eq!(
        read("read_uncommitted"),
        (15, uncommitted.clone()),
        "{peer}, read_uncommitted"
    );

    // What the simulated leader stored: the producer's batches, transactional, and
    // the coordinator's markers between them.
    let batches = server.with_cluster(|c, _| c.partition_batches("txn", 0));
    let opts = DecodeOptions::default();
    let mut markers = Vec::new();
    let mut producers = std::collections::BTreeSet::new();
    for bytes in batches {
        for batch in BatchReader::new(bytes, opts) {
            let v2 = batch.unwrap().into_v2().unwrap();
            assert!(v2.header.is_transactional());
            producers.insert(v2.header.producer_id);
            if v2.header.is_control() {
                let kind = v2.control_record(&opts).unwrap().unwrap().kind;
                markers.push((v2.header.base_offset, kind));
            }
        }
    }
    assert_eq!(
        markers,
        [
            (3, ControlRecordType::Commit),
            (7, ControlRecordType::Abort),
            (11, ControlRecordType::Commit)
        ]
    );
    assert_eq!(
        producers.len(),
        1,
        "one producer wrote it all: {producers:?}"
    );

    // Ours, at each level: the consumer, then the partition client.
    for (isolation, want) in [
        (IsolationLevel::ReadCommitted, (12, &committed)),
        (IsolationLevel::ReadUncommitted, (15, &uncommitted)),
    ] {
        let client = ClientBuilder::new(&server.bootstrap())
            .configure(|c| c.consumer.isolation = isolation)
            .build_blocking()
            .unwrap();
        let mut consumer = client.consumer();
        consumer
            .assign(vec![TopicPartition::new("txn", 0)], Offset::Beginning)
            .unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut settle = None;
        while Instant::now() < settle.unwrap_or(deadline) {
            if let Some(r) = consumer.recv_timeout(Duration::from_millis(100)).unwrap() {
                let value = String::from_utf8(r.record.value().unwrap().to_vec()).unwrap();
                got.push(format!("{}:{value}", r.record.offset));
            }
            if settle.is_none() && got.len() >= want.1.len() {
                settle = Some(Instant::now() + Duration::from_millis(500));
            }
        }
        assert_eq!(&got, want.1, "our consumer at {isolation:?}");

        let p0 = client
            .partition_client("txn", 0, UnknownTopicHandling::Error)
            .unwrap();
        let fetched = p0
            .fetch(
                0,
                FetchOptions::default()
                    .max_wait(Duration::from_millis(10))
                    .isolation(isolation),
            )
            .unwrap();
        let got: Vec<String> = fetched
            .records
            .iter()
            .map(|r| {
                let value = String::from_utf8(r.value().unwrap().to_vec()).unwrap();
                format!("{}:{value}", r.offset)
            })
            .collect();
        assert_eq!(&got, want.1, "our partition client at {isolation:?}");
        let end = match isolation {
            IsolationLevel::ReadCommitted => fetched.last_stable_offset,
            IsolationLevel::ReadUncommitted => fetched.high_watermark,
        };
        assert_eq!(
            end, want.0,
            "the end our partition client was told at {isolation:?}"
        );
        client.close();
    }
}
