//! `kafka-sansio` and kcat on the same (simulated) cluster, both ways, in every
//! codec: what one produces the other consumes byte for byte (kcat checks CRCs).
//! kcat is the one `scripts/peers/install.sh` installs (Debian's). And a group
//! consumed with `-G` on tansu, a broker others wrote.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use kafka_sansio::sim::ClusterConfig;
use kafka_sansio::sim_server::BackgroundServer;

#[path = "integration_util.rs"]
mod util;

const BIN: &str = env!("CARGO_BIN_EXE_kafka-sansio");

fn run(mut cmd: Command, stdin: &[u8], what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn payload(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend_from_slice(format!("key-{}\t", i % 7).as_bytes());
        out.extend_from_slice(format!("value {i} héllo \r \0 ").as_bytes());
        out.extend_from_slice(&[0xff, 0xfe, b'\t', 0x01]);
        out.extend_from_slice("repeat ".repeat(i % 5 + 1).as_bytes());
        out.push(b'\n');
    }
    out
}

#[test]
fn kcat_and_kafka_sansio_read_each_other_in_every_codec() {
    let env = util::peers_env();
    let kcat = env
        .get("PEERS_KCAT")
        .expect("install.sh names PEERS_KCAT")
        .clone();
    let server = BackgroundServer::start(ClusterConfig {
        brokers: 1,
        base_port: 0,
        auto_create_topics: false,
        ..ClusterConfig::default()
    })
    .unwrap();
    let b = server.bootstrap();
    let input = payload(200);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        // Ours produces, kcat consumes.
        let ours = format!("ours-{codec}");
        server
            .with_cluster(|c, _| c.create_topic(&ours, 1, 1))
            .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args([
            "-b",
            &b,
            "--timeout",
            "20s",
            "produce",
            "-t",
            &ours,
            "-K",
            "\t",
            "-z",
            codec,
        ]);
        run(cmd, &input, "kafka-sansio produce");
        let mut cmd = Command::new(&kcat);
        cmd.args([
            "-C",
            "-b",
            &b,
            "-t",
            &ours,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
        ])
        .args(["-X", "check.crcs=true", "-f", "%k\t%s\n"]);
        let out = run(cmd, b"", "kcat -C");
        assert!(
            out.stdout == input,
            "{codec}: kcat read other bytes than we wrote"
        );

        // kcat produces, ours consumes.
        let theirs = format!("kcat-{codec}");
        server
            .with_cluster(|c, _| c.create_topic(&theirs, 1, 1))
            .unwrap();
        let mut cmd = Command::new(&kcat);
        cmd.args([
            "-P", "-b", &b, "-t", &theirs, "-p", "0", "-z", codec, "-K", "\t",
        ]);
        run(cmd, &input, "kcat -P");
        let mut cmd = Command::new(BIN);
        cmd.args(["-b", &b, "--timeout", "20s", "consume", "-t", &theirs])
            .args(["-o", "beginning", "-e", "-f", "%k\\t%s\\n"]);
        let out = run(cmd, b"", "kafka-sansio consume");
        assert!(
            out.stdout == input,
            "{codec}: we read other bytes than kcat wrote"
        );
    }
    server.shutdown();
}

/// `consume -G` as a member of a group whose coordinator is tansu: it reads
/// everything once, commits it, and a second run finds nothing new. (tansu's
/// ListOffsets LATEST can be off, so the log ends it reports are not checked.)
/// tansu holds every JoinGroup for half the session timeout: 22.5 s at the
/// default 45 s, 3 s at the 6 s given here.
#[test]
fn group_consume_with_commits_on_tansu() {
    let tansu = util::Tansu::start();
    let b = tansu.addr.clone();
    let cli = |args: &[&str], stdin: &[u8]| {
        let mut cmd = Command::new(BIN);
        cmd.args(["-b", &b, "--timeout", "20s"]).args(args);
        run(cmd, stdin, &args.join(" "))
    };
    cli(&["topics", "create", "tg", "-p", "3", "-r", "1"], b"");
    let lines: String = (0..30).map(|i| format!("k{i}:v{i}\n")).collect();
    cli(&["produce", "-t", "tg", "-K", ":"], lines.as_bytes());
    let group = ["-G", "tg-group", "--session-timeout", "6s", "-e"];
    let first = cli(&[&["consume", "-t", "tg"][..], &group].concat(), b"");
    let mut got: Vec<String> = String::from_utf8(first.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    got.sort();
    let mut expected: Vec<String> = (0..30).map(|i| format!("v{i}")).collect();
    expected.sort();
    assert_eq!(got, expected);
    let offsets = cli(&["groups", "offsets", "tg-group", "--json"], b"");
    let committed: i64 = String::from_utf8(offsets.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["committed"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert_eq!(committed, 30);
    let again = cli(&[&["consume", "-t", "tg"][..], &group].concat(), b"");
    assert_eq!(String::from_utf8(again.stdout).unwrap(), "");
}
