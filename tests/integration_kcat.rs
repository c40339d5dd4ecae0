//! Cross-check with a real client: records we produce (every codec) are consumed by
//! kcat with `check.crcs=true`, and records kcat produces (every codec) are fetched
//! and decoded by us; payloads must match byte for byte. The broker is librdkafka's
//! mock cluster; kcat is Debian's, installed by `scripts/peers/install.sh`.
#![cfg(all(feature = "tokio", feature = "smol", feature = "blocking"))]
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

#[path = "integration_util.rs"]
mod util;

use std::io::Write;
use std::process::{Command, Stdio};

use kafka_sansio::connection::Config;
use util::*;

/// Consumes a whole partition with kcat, CRCs checked; returns (offset, value) pairs.
fn kcat_consume(kcat: &str, bootstrap: &str, topic: &str, partition: i32) -> Vec<(i64, Vec<u8>)> {
    let out = Command::new(kcat)
        .args([
            "-C",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-p",
            &partition.to_string(),
        ])
        .args(["-o", "beginning", "-e", "-q", "-X", "check.crcs=true"])
        .args(["-f", "%o %S\n%s\n"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kcat -C failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rest = &out.stdout[..];
    let mut records = Vec::new();
    while !rest.is_empty() {
        let nl = rest.iter().position(|b| *b == b'\n').unwrap();
        let head = std::str::from_utf8(&rest[..nl]).unwrap();
        let (offset, len) = head.split_once(' ').unwrap();
        let len: usize = len.parse().unwrap();
        let start = nl + 1;
        records.push((offset.parse().unwrap(), rest[start..start + len].to_vec()));
        assert_eq!(rest[start + len], b'\n');
        rest = &rest[start + len + 1..];
    }
    records
}

#[test]
fn kcat_reads_what_we_write_in_every_codec() {
    let env = peers_env();
    let kcat = env["PEERS_KCAT"].clone();
    let mock = Mock::start(Librdkafka::Debian, 1, &["ours:5"]);
    let boot = mock.bootstrap.join(",");
    let client = Client::connect(Adapter::Blocking, &mock.bootstrap[0], Config::new("m")).unwrap();
    for (i, codec) in CODECS.into_iter().enumerate() {
        let vals = values(codec_name(codec), 30);
        let base = produce(&client, "ours", i as i32, batch(&vals, codec, None));
        let got = kcat_consume(&kcat, &boot, "ours", i as i32);
        assert_eq!(got.len(), vals.len(), "{codec:?}");
        for (j, (offset, value)) in got.into_iter().enumerate() {
            assert_eq!(offset, base + j as i64);
            assert_eq!(value, vals[j], "{codec:?} record {j}");
        }
    }
}

#[test]
fn we_read_what_kcat_writes_in_every_codec() {
    let env = peers_env();
    let kcat = env["PEERS_KCAT"].clone();
    let mock = Mock::start(Librdkafka::Debian, 1, &["theirs:5"]);
    let boot = mock.bootstrap.join(",");
    let client = Client::connect(Adapter::Tokio, &mock.bootstrap[0], Config::new("m")).unwrap();
    let (topic_id, _) = topic_info(&client, "theirs");
    for (i, codec) in CODECS.into_iter().enumerate() {
        let lines: Vec<String> = (0..40)
            .map(|j| format!("{}-{j}-{}", codec_name(codec), "xyz".repeat(j)))
            .collect();
        let mut child = Command::new(&kcat)
            .args([
                "-P",
                "-b",
                &boot,
                "-t",
                "theirs",
                "-p",
                &i.to_string(),
                "-z",
                codec_name(codec),
                "-K",
                ":",
            ])
            .args(["-X", "linger.ms=50"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        {
            let mut stdin = child.stdin.take().unwrap();
            for (j, l) in lines.iter().enumerate() {
                writeln!(stdin, "key{j}:{l}").unwrap();
            }
        }
        assert!(child.wait().unwrap().success(), "kcat -P failed");
        let _ = take_seen_codecs();
        let got = fetch(&client, "theirs", topic_id, i as i32, 0, lines.len());
        let codecs = take_seen_codecs();
        assert!(
            !codecs.is_empty() && codecs.iter().all(|c| *c == codec),
            "kcat wrote {codecs:?}, asked for {codec:?}"
        );
        assert_eq!(got.len(), lines.len(), "{codec:?}");
        for (j, (offset, key, value)) in got.into_iter().enumerate() {
            assert_eq!(offset, j as i64);
            assert_eq!(key.unwrap(), format!("key{j}").as_bytes());
            assert_eq!(value.unwrap(), lines[j].as_bytes(), "{codec:?} record {j}");
        }
    }
}

/// Reads `count` records of a partition with confluent-kafka (librdkafka 2.16),
/// `check.crcs` on; returns (offset, value) pairs.
fn confluent_consume(
    python: &str,
    bootstrap: &str,
    topic: &str,
    partition: i32,
    count: usize,
) -> Vec<(i64, Vec<u8>)> {
    let script = r#"
import sys, confluent_kafka as ck
boot, topic, part, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = ck.Consumer({"bootstrap.servers": boot, "group.id": "xcheck", "check.crcs": True,
                 "enable.auto.commit": False, "auto.offset.reset": "earliest"})
c.assign([ck.TopicPartition(topic, part, 0)])
got = 0
while got < n:
    m = c.poll(10)
    if m is None:
        sys.exit("timed out after %d records" % got)
    if m.error():
        sys.exit(str(m.error()))
    print(m.offset(), m.value().hex())
    got += 1
c.close()
"#;
    let out = Command::new(python)
        .args([
            "-c",
            script,
            bootstrap,
            topic,
            &partition.to_string(),
            &count.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "confluent-kafka failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (o, hex) = l.split_once(' ').unwrap();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (o.parse().unwrap(), bytes)
        })
        .collect()
}

#[test]
fn confluent_kafka_reads_what_we_write_in_every_codec() {
    let env = peers_env();
    let python = env["PEERS_PYTHON"].clone();
    let mock = Mock::start(Librdkafka::Debian, 1, &["ck:5"]);
    let boot = mock.bootstrap.join(",");
    let client = Client::connect(Adapter::Smol, &mock.bootstrap[0], Config::new("m")).unwrap();
    for (i, codec) in CODECS.into_iter().enumerate() {
        let vals = values(codec_name(codec), 30);
        let base = produce(&client, "ck", i as i32, batch(&vals, codec, None));
        let got = confluent_consume(&python, &boot, "ck", i as i32, vals.len());
        assert_eq!(got.len(), vals.len(), "{codec:?}");
        for (j, (offset, value)) in got.into_iter().enumerate() {
            assert_eq!(offset, base + j as i64);
            assert_eq!(value, vals[j], "{codec:?} record {j}");
        }
    }
}
