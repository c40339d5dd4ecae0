//! The producer against real peers: confluent-kafka (librdkafka 2.16) reads back
//! what we produced to both mocks and tansu, every key in the partition librdkafka
//! itself chooses; and idempotent producing against the mock with injected
//! NOT_LEADER and OUT_OF_ORDER_SEQUENCE errors and a broker going down loses and
//! duplicates nothing.
#![cfg(all(feature = "tokio", feature = "smol", feature = "blocking"))]
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[path = "integration_util.rs"]
mod util;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use kafka_sansio::client::{ProducerRecord, partition_for_key};
use kafka_sansio::runtime::ClientBuilder;
use util::{Librdkafka, Mock, Tansu, peers_env, repo};

fn check(args: &[&str], input: &str) -> Vec<String> {
    let env = peers_env();
    let mut child = Command::new(&env["PEERS_PYTHON"])
        .arg(repo().join("tests/peers/librdkafka_check.py"))
        .args(args)
        .env("LD_LIBRARY_PATH", "")
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
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Produces `n` keyed records with our producer and checks, with confluent-kafka,
/// that each is in the log once, in the partition murmur2 gives, in send order.
fn produce_and_read_back(bootstrap: &str, topic: &str, partitions: usize, n: usize) {
    let client = ClientBuilder::new(bootstrap)
        .configure(|c| c.producer.linger = Duration::from_millis(10))
        .build_blocking()
        .unwrap();
    let producer = client.producer();
    let records: Vec<ProducerRecord> = (0..n)
        .map(|i| ProducerRecord::new(topic, format!("value-{i}")).key(format!("key-{}", i % 257)))
        .collect();
    let deliveries = producer.send_batch(records);
    producer.flush().unwrap();
    for (i, d) in deliveries.into_iter().enumerate() {
        let m = d.wait().unwrap();
        assert_eq!(
            m.partition,
            partition_for_key(format!("key-{}", i % 257).as_bytes(), partitions)
        );
    }
    client.close();
    let lines = check(&["consume", bootstrap, topic, &n.to_string()], "");
    let mut per: BTreeMap<i32, Vec<(i64, String, String)>> = BTreeMap::new();
    for l in lines {
        let mut f = l.split(' ');
        let (p, o, k, v) = (
            f.next().unwrap(),
            f.next().unwrap(),
            f.next().unwrap(),
            f.next().unwrap(),
        );
        per.entry(p.parse().unwrap()).or_default().push((
            o.parse().unwrap(),
            k.to_owned(),
            v.to_owned(),
        ));
    }
    let mut total = 0;
    for (p, rows) in &per {
        let values: Vec<usize> = rows
            .iter()
            .map(|(_, _, v)| v["value-".len()..].parse().unwrap())
            .collect();
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "partition {p}: in send order, no duplicates"
        );
        for (_, k, _) in rows {
            assert_eq!(partition_for_key(k.as_bytes(), partitions), *p, "{k}");
        }
        total += rows.len();
    }
    assert_eq!(total, n);
}

#[test]
fn librdkafka_reads_back_what_we_produce_to_both_mocks_and_tansu() {
    for flavour in [Librdkafka::Debian, Librdkafka::V216] {
        let mock = Mock::start(flavour, 3, &["keyed:6:2"]);
        produce_and_read_back(&mock.bootstrap.join(","), "keyed", 6, 3000);
    }
    let tansu = Tansu::start();
    let admin = ClientBuilder::new(&tansu.addr).build_blocking().unwrap();
    admin.create_topic("keyed", 6, 1).unwrap();
    admin.close();
    produce_and_read_back(&tansu.addr, "keyed", 6, 3000);
}

#[test]
fn our_partitions_match_librdkafkas_murmur2_on_thousands_of_keys() {
    let mock = Mock::start(Librdkafka::V216, 1, &["p7:7:1", "p32:32:1"]);
    let boot = mock.bootstrap.join(",");
    let keys: Vec<String> = (0..5000usize)
        .map(|i| match i % 4 {
            0 => format!("{i}"),
            1 => format!("user-{i:08x}"),
            2 => format!("{:x}-{}", (i as u64) * 2_654_435_761, "ü".repeat(i % 5)), // multi-byte UTF-8
            _ => "k".repeat(1 + i % 97),
        })
        .collect();
    for (topic, n) in [("p7", 7), ("p32", 32)] {
        let lines = check(&["partition", &boot, topic], &keys.join("\n"));
        assert_eq!(lines.len(), keys.len());
        for l in lines {
            let (k, p) = l.rsplit_once(' ').unwrap();
            assert_eq!(
                partition_for_key(k.as_bytes(), n),
                p.parse::<i32>().unwrap(),
                "key {k:?} of {topic}"
            );
        }
    }
}

#[test]
fn idempotent_producing_through_mock_faults_loses_and_duplicates_nothing() {
    for flavour in [Librdkafka::Debian, Librdkafka::V216] {
        let mut mock = Mock::start(flavour, 3, &["idem:2:3"]);
        let boot = mock.bootstrap.join(",");
        let client = ClientBuilder::new(&boot)
            .configure(|c| c.producer.linger = Duration::from_millis(2))
            .build_blocking()
            .unwrap();
        let producer = client.producer();
        let mut all = Vec::new();
        for round in 0..6 {
            match round {
                1 => drop(mock.command("errors 0 6 6")), // NOT_LEADER_OR_FOLLOWER twice
                2 => drop(mock.command("errors 0 45")),  // OUT_OF_ORDER_SEQUENCE_NUMBER
                3 => drop(mock.command("errors 0 59")),  // UNKNOWN_PRODUCER_ID
                4 => {
                    drop(mock.command("down 1"));
                    drop(mock.command("leader idem 0 2"));
                    drop(mock.command("leader idem 1 3"));
                }
                5 => drop(mock.command("up 1")),
                _ => {}
            }
            let records = (0..300)
                .map(|i| ProducerRecord::new("idem", format!("r{round}-{i}")).partition(i % 2))
                .collect();
            all.extend(producer.send_batch(records));
            producer.flush().unwrap();
        }
        let n = all.len();
        for d in all {
            d.wait().unwrap();
        }
        client.close();
        let lines = check(&["consume", &boot, "idem", &n.to_string()], "");
        let mut per: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for l in &lines {
            let mut f = l.split(' ');
            let p = f.next().unwrap();
            per.entry(p).or_default().push(f.nth(2).unwrap().to_owned());
        }
        for (p, values) in per {
            let want: Vec<String> = (0..6)
                .flat_map(|round| {
                    (0..300)
                        .filter(|i| i % 2 == p.parse::<usize>().unwrap())
                        .map(move |i| format!("r{round}-{i}"))
                })
                .collect();
            assert_eq!(
                values, want,
                "{flavour:?} partition {p}: each record once, in order"
            );
        }
    }
}
