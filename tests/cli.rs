//! The `kafka-sansio` binary run as a user would (std::process), against the
//! simulated cluster served in-test: produce then consume byte for byte in every
//! codec, topic administration, group offsets, the load generator's curve, the
//! `sim` command, and bad input (one clear line, a non-zero exit status).
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kafka_sansio::sim::ClusterConfig;
use kafka_sansio::sim_server::BackgroundServer;

const BIN: &str = env!("CARGO_BIN_EXE_kafka-sansio");

fn cluster(brokers: usize) -> BackgroundServer {
    BackgroundServer::start(ClusterConfig {
        brokers,
        base_port: 0,
        auto_create_topics: false,
        ..ClusterConfig::default()
    })
    .expect("the simulated cluster starts")
}

/// Runs the binary with `args` against `bootstrap`, feeding `stdin`.
fn run(bootstrap: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(["-b", bootstrap, "--timeout", "20s"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    // A command that hangs fails the test instead of hanging it.
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            return true;
        }
        false
    });
    let out = child.wait_with_output().expect("the binary ends");
    let _ = done.send(());
    writer.join().expect("stdin writer");
    assert!(
        !watchdog.join().unwrap(),
        "{args:?} did not end within 60 s; stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Lines of bytes that exercise the byte-for-byte claim: binary, UTF-8, `\r`,
/// the key delimiter inside values, repetition (so codecs have work to do).
fn payload(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend_from_slice(format!("key-{}\t", i % 7).as_bytes());
        out.extend_from_slice(format!("value {i} héllo \r \0 \u{1F600} ").as_bytes());
        out.extend_from_slice(&[0xff, 0xfe, b'\t', 0x01]);
        out.extend_from_slice("repeat ".repeat(i % 5 + 1).as_bytes());
        out.push(b'\n');
    }
    out
}

#[test]
fn produce_then_consume_byte_for_byte_in_every_codec() {
    let server = cluster(3);
    let bootstrap = server.bootstrap();
    let input = payload(300);
    let mut stored = Vec::new();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        server
            .with_cluster(|c, _| c.create_topic(&topic, 1, 3))
            .unwrap();
        let before = server.with_cluster(|c, _| c.stored_bytes());
        let out = run(
            &bootstrap,
            &["produce", "-t", &topic, "-K", "\t", "-z", codec],
            &input,
        );
        ok(&out);
        assert!(
            stderr(&out).contains("300 delivered, 0 failed"),
            "{codec}: {}",
            stderr(&out)
        );
        stored.push((codec, server.with_cluster(|c, _| c.stored_bytes()) - before));
        let out = run(
            &bootstrap,
            &[
                "consume",
                "-t",
                &topic,
                "-o",
                "beginning",
                "-e",
                "-f",
                "%k\\t%s\\n",
            ],
            b"",
        );
        ok(&out);
        assert!(
            out.stdout == input,
            "{codec}: consumed bytes differ from produced ones"
        );
        // The count form of the same: -c stops after that many.
        let out = run(
            &bootstrap,
            &[
                "consume", "-t", &topic, "-o", "-2", "-c", "2", "-f", "%o\\n",
            ],
            b"",
        );
        assert_eq!(ok(&out), "298\n299\n", "{codec}: -o -2 -c 2");
    }
    // The codec was applied: every compressed topic is smaller than the plain one.
    let plain = stored[0].1;
    for (codec, bytes) in &stored[1..] {
        assert!(bytes < &plain, "{codec} stored {bytes} bytes, none {plain}");
    }
    server.shutdown();
}

#[test]
fn consume_formats_and_json_carry_every_field() {
    let server = cluster(1);
    let b = server.bootstrap();
    server
        .with_cluster(|c, _| c.create_topic("f", 2, 1))
        .unwrap();
    ok(&run(
        &b,
        &[
            "produce", "-t", "f", "-p", "1", "-K", "=", "-H", "h1=x", "-H", "h2=y",
        ],
        b"k=v\n",
    ));
    let out = run(
        &b,
        &[
            "consume",
            "-t",
            "f",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%t|%p|%o|%k|%s|%K|%S|%h|%%\\n",
        ],
        b"",
    );
    assert_eq!(ok(&out), "f|1|0|k|v|1|1|h1=x,h2=y|%\n");
    let out = run(
        &b,
        &["consume", "-t", "f", "-o", "beginning", "-e", "--json"],
        b"",
    );
    let v: serde_json::Value = serde_json::from_str(ok(&out).trim()).unwrap();
    assert_eq!(v["topic"], "f");
    assert_eq!(v["partition"], 1);
    assert_eq!(v["offset"], 0);
    assert_eq!(v["key"], "k");
    assert_eq!(v["value"], "v");
    assert_eq!(v["headers"][1]["key"], "h2");
    assert_eq!(v["headers"][1]["value"], "y");
    assert!(v["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    // Records from a file, to a chosen partition, empty lines skipped.
    let file = std::env::temp_dir().join(format!("kafka-sansio-cli-{}.txt", std::process::id()));
    std::fs::write(&file, b"x1\n\nx2\n").unwrap();
    let path = file.to_string_lossy().into_owned();
    let out = run(&b, &["produce", "-t", "f", "-p", "0", "-f", &path], b"");
    assert!(stderr(&out).contains("2 delivered"), "{}", stderr(&out));
    std::fs::remove_file(&file).unwrap();
    let out = run(
        &b,
        &["consume", "-t", "f", "-p", "0", "-o", "beginning", "-e"],
        b"",
    );
    assert_eq!(ok(&out), "x1\nx2\n");
    // @timestamp far in the future: nothing, and -e ends at once.
    let out = run(
        &b,
        &["consume", "-t", "f", "-o", "@99999999999999", "-e"],
        b"",
    );
    assert_eq!(ok(&out), "");
    server.shutdown();
}

#[test]
fn topics_create_describe_add_partitions_delete() {
    let server = cluster(3);
    let b = server.bootstrap();
    ok(&run(
        &b,
        &["topics", "create", "admin-t", "-p", "2", "-r", "3"],
        b"",
    ));
    let out = ok(&run(&b, &["topics", "describe", "admin-t", "--json"], b""));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["partitions"].as_array().unwrap().len(), 2);
    assert_eq!(v["partitions"][0]["replicas"].as_array().unwrap().len(), 3);
    // Creating it again fails, saying why.
    let again = run(&b, &["topics", "create", "admin-t", "-p", "2"], b"");
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("admin-t"), "{}", stderr(&again));
    ok(&run(
        &b,
        &["partitions", "add", "admin-t", "--total", "5"],
        b"",
    ));
    let out = ok(&run(&b, &["topics", "list"], b""));
    assert!(out.lines().any(|l| l == "admin-t\t5"), "{out}");
    let meta = ok(&run(&b, &["metadata", "--json"], b""));
    let m: serde_json::Value = serde_json::from_str(meta.trim()).unwrap();
    assert_eq!(m["brokers"].as_array().unwrap().len(), 3);
    ok(&run(&b, &["topics", "delete", "admin-t"], b""));
    let gone = run(&b, &["topics", "describe", "admin-t"], b"");
    assert_eq!(gone.status.code(), Some(1));
    assert_eq!(
        stderr(&gone).trim(),
        "kafka-sansio: unknown topic \"admin-t\""
    );
    server.shutdown();
}

#[test]
fn group_consume_commits_and_groups_show_and_reset_them() {
    let server = cluster(3);
    let b = server.bootstrap();
    server
        .with_cluster(|c, _| c.create_topic("g-t", 3, 3))
        .unwrap();
    let lines: String = (0..90).map(|i| format!("k{i}:v{i}\n")).collect();
    ok(&run(
        &b,
        &["produce", "-t", "g-t", "-K", ":"],
        lines.as_bytes(),
    ));
    // The group starts where nothing is committed: the beginning; -e ends at the end.
    let out = run(
        &b,
        &[
            "consume",
            "-t",
            "g-t",
            "-G",
            "grp",
            "-e",
            "--session-timeout",
            "7s",
        ],
        b"",
    );
    assert_eq!(ok(&out).lines().count(), 90);
    let offsets = ok(&run(&b, &["groups", "offsets", "grp", "--json"], b""));
    let rows: Vec<serde_json::Value> = offsets
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{offsets}");
    let committed: i64 = rows.iter().map(|r| r["committed"].as_i64().unwrap()).sum();
    assert_eq!(committed, 90, "{offsets}");
    // Every partition's committed offset is its log end.
    assert!(
        rows.iter()
            .all(|r| r["committed"] == r["log_end"] && r["lag"] == 0),
        "{offsets}"
    );
    // describe shows the group, left by its member on exit (Empty, no members),
    // and the same commits.
    let described = ok(&run(&b, &["groups", "describe", "grp", "--json"], b""));
    let d: serde_json::Value = serde_json::from_str(described.trim()).unwrap();
    assert_eq!(d["group"], "grp", "{described}");
    assert_eq!(d["state"], "Empty", "{described}");
    assert_eq!(d["protocol_type"], "consumer", "{described}");
    assert_eq!(d["members"].as_array().unwrap().len(), 0, "{described}");
    assert_eq!(d["offsets"].as_array().unwrap().len(), 3);
    let listed = ok(&run(&b, &["groups", "list", "--json"], b""));
    assert!(
        listed
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .any(|g| g["group"] == "grp"),
        "{listed}"
    );
    // The coordinator wrote what the member did to __consumer_offsets: its joins
    // (a member subscribed to g-t holding all three partitions) and, for each
    // partition, a last commit at the log end.
    let log = ok(&run(&b, &["offsets", "-G", "grp", "--json"], b""));
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ends: std::collections::BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                r["log_end"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut last_commit = std::collections::BTreeMap::new();
    for r in records.iter().filter(|r| r["type"] == "offset-commit") {
        assert_eq!(r["group"], "grp", "{r}");
        assert_eq!(r["topic"], "g-t", "{r}");
        last_commit.insert(
            r["partition"].as_i64().unwrap(),
            r["offset"].as_i64().unwrap(),
        );
    }
    assert_eq!(last_commit, ends, "{log}");
    let member = records
        .iter()
        .filter(|r| r["type"] == "group-metadata")
        .flat_map(|r| r["members"].as_array().cloned().unwrap_or_default())
        .next()
        .unwrap_or_else(|| panic!("no group metadata with a member: {log}"));
    assert_eq!(member["subscription"], serde_json::json!(["g-t"]), "{log}");
    assert_eq!(member["session_timeout"], 7000, "--session-timeout: {log}");
    assert_eq!(
        member["assignment"][0]["partitions"],
        serde_json::json!([0, 1, 2]),
        "{log}"
    );
    // The last group metadata is the group after the member left: no members.
    let last = records
        .iter()
        .rev()
        .find(|r| r["type"] == "group-metadata")
        .unwrap();
    assert_eq!(last["members"], serde_json::json!([]), "{log}");
    // Again with the group: nothing new.
    let out = run(&b, &["consume", "-t", "g-t", "-G", "grp", "-e"], b"");
    assert_eq!(ok(&out), "");
    // -c stops mid-way: exactly what was printed is committed, and the next run
    // goes on from there.
    let more: String = (90..120).map(|i| format!("k{i}:v{i}\n")).collect();
    ok(&run(
        &b,
        &["produce", "-t", "g-t", "-K", ":"],
        more.as_bytes(),
    ));
    let first = ok(&run(
        &b,
        &[
            "consume", "-t", "g-t", "-G", "grp", "-c", "7", "-f", "%s\\n",
        ],
        b"",
    ));
    assert_eq!(first.lines().count(), 7, "{first}");
    let sum = |b: &str| -> i64 {
        ok(&run(b, &["groups", "offsets", "grp", "--json"], b""))
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["committed"]
                    .as_i64()
                    .unwrap()
            })
            .sum()
    };
    assert_eq!(sum(&b), 97, "7 more committed");
    let rest = ok(&run(
        &b,
        &["consume", "-t", "g-t", "-G", "grp", "-e", "-f", "%s\\n"],
        b"",
    ));
    let mut seen: Vec<&str> = first.lines().chain(rest.lines()).collect();
    seen.sort_unstable();
    let mut expected: Vec<String> = (90..120).map(|i| format!("v{i}")).collect();
    expected.sort_unstable();
    assert_eq!(seen, expected, "every new record once, none twice");
    assert_eq!(sum(&b), 120);
    // A dry run changes nothing; --execute moves every partition back to the start.
    ok(&run(
        &b,
        &[
            "groups",
            "reset-offsets",
            "grp",
            "-t",
            "g-t",
            "--to",
            "earliest",
        ],
        b"",
    ));
    let out = run(&b, &["consume", "-t", "g-t", "-G", "grp", "-e"], b"");
    assert_eq!(ok(&out), "");
    ok(&run(
        &b,
        &[
            "groups",
            "reset-offsets",
            "grp",
            "-t",
            "g-t",
            "--to",
            "shift:-5",
            "--execute",
        ],
        b"",
    ));
    let out = run(&b, &["consume", "-t", "g-t", "-G", "grp", "-e"], b"");
    assert_eq!(
        ok(&out).lines().count(),
        15,
        "5 back on each of 3 partitions"
    );
    // -o other than beginning/end, or -p, with -G: a usage error.
    for args in [&["-o", "5"][..], &["-p", "0"][..]] {
        let out = run(
            &b,
            &[&["consume", "-t", "g-t", "-G", "grp", "-e"][..], args].concat(),
            b"",
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
    server.shutdown();
}

#[test]
fn load_follows_its_curve_within_ten_percent_per_second() {
    let server = cluster(1);
    let b = server.bootstrap();
    server
        .with_cluster(|c, _| c.create_topic("load", 4, 1))
        .unwrap();
    let out = run(
        &b,
        &[
            "load",
            "-t",
            "load",
            "--json",
            "--seed",
            "7",
            "--min",
            "200",
            "--min-sec",
            "1",
            "--up",
            "linear",
            "--up-sec",
            "2",
            "--max",
            "1000",
            "--max-sec",
            "1",
            "--down",
            "ease-in-out",
            "--down-sec",
            "2",
            "--key",
            "alnum:8",
            "--value",
            "random:100",
        ],
        b"",
    );
    let text = ok(&out);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seconds: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["type"] == "second" && l["phase"] != "tail")
        .collect();
    assert_eq!(seconds.len(), 6, "{text}");
    // The targets are the curve's: 200, then the ramp's two halves (400 and 800 on
    // average), 1000, then the smoothstep's two halves (it covers 3/16 of the drop
    // in its first half: 850, then 350).
    let targets: Vec<f64> = seconds
        .iter()
        .map(|s| s["target"].as_f64().unwrap())
        .collect();
    let want = [200.0, 400.0, 800.0, 1000.0, 850.0, 350.0];
    for (got, want) in targets.iter().zip(want) {
        assert!((got - want).abs() < 1.0, "targets {targets:?}");
    }
    for s in &seconds {
        let (target, achieved) = (
            s["target"].as_f64().unwrap(),
            s["achieved"].as_f64().unwrap(),
        );
        assert!(
            (achieved - target).abs() <= target * 0.10,
            "second {}: achieved {achieved}/s for a target of {target}/s\n{text}",
            s["second"]
        );
    }
    let summary = lines
        .iter()
        .find(|l| l["type"] == "summary")
        .expect("a summary");
    assert_eq!(summary["errors"], 0);
    assert_eq!(summary["sent"], summary["delivered"]);
    // Every delivered record is in the topic.
    let stored: i64 = (0..4)
        .map(|p| {
            server
                .with_cluster(|c, _| c.partition_offsets("load", p))
                .unwrap()
                .0
        })
        .sum();
    assert_eq!(Some(stored), summary["delivered"].as_i64());
    server.shutdown();
}

#[test]
fn bad_input_is_one_clear_line_and_a_non_zero_status() {
    // Unreachable: nothing listens on port 1; the deadline bounds the wait.
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["-b", "127.0.0.1:1", "--timeout", "2s", "metadata"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("kafka-sansio: cannot reach the cluster at 127.0.0.1:1"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the 2 s deadline was not kept"
    );

    let server = cluster(1);
    let b = server.bootstrap();
    server
        .with_cluster(|c, _| c.create_topic("bad", 1, 1))
        .unwrap();
    // Unknown topic, for produce and consume.
    for args in [
        &["produce", "-t", "nope"][..],
        &["consume", "-t", "nope", "-e"][..],
    ] {
        let out = run(&b, args, b"x\n");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out).trim(), "kafka-sansio: unknown topic \"nope\"");
    }
    // A malformed format string: a usage error, before connecting.
    let out = run(&b, &["consume", "-t", "bad", "-f", "%s %q"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "kafka-sansio: format string: unknown token %q (known: %t %p %o %T %k %K %s %S %h %%) at position 3"
    );
    // A malformed line: the lines before it are delivered and counted, then a
    // clear error.
    let out = run(
        &b,
        &["produce", "-t", "bad", "-K", ":"],
        b"a:1\nb:2\nno delimiter\nc:3\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("2 delivered, 0 failed"), "{err}");
    assert!(
        err.contains("kafka-sansio: line 3: no key delimiter \":\""),
        "{err}"
    );
    assert_eq!(
        server.with_cluster(|c, _| c.partition_offsets("bad", 0)),
        Some((2, 0))
    );
    // A bad offset spec is a usage error from the parser.
    let out = run(&b, &["consume", "-t", "bad", "-o", "yesterday"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("expected beginning, end"),
        "{}",
        stderr(&out)
    );
    server.shutdown();
}

#[test]
fn ctrl_c_mid_produce_reports_what_was_delivered() {
    let server = cluster(1);
    let b = server.bootstrap();
    server
        .with_cluster(|c, _| c.create_topic("int", 1, 1))
        .unwrap();
    let mut child = Command::new(BIN)
        .args(["-b", &b, "--timeout", "20s", "produce", "-t", "int"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Some lines, then stdin stays open: the producer waits for more.
    stdin.write_all(b"one\ntwo\nthree\n").unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while server
        .with_cluster(|c, _| c.partition_offsets("int", 0))
        .map(|o| o.0)
        != Some(3)
    {
        assert!(
            Instant::now() < deadline,
            "the three lines were not produced"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(130));
    let err = stderr(&out);
    assert!(err.contains("3 delivered, 0 failed"), "{err}");
    assert!(err.contains("kafka-sansio: interrupted"), "{err}");
    server.shutdown();
}

#[test]
fn sim_command_serves_the_cluster_and_takes_fault_commands() {
    let mut child = Command::new(BIN)
        .args(["sim", "--brokers", "2", "-t", "s:2:2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut bootstrap = String::new();
    stdout.read_line(&mut bootstrap).unwrap();
    let bootstrap = bootstrap.trim().to_owned();
    assert_eq!(bootstrap.split(',').count(), 2, "{bootstrap}");
    ok(&run(
        &bootstrap,
        &["produce", "-t", "s", "-p", "1"],
        b"a\nb\n",
    ));
    let mut ask = |command: &str| {
        writeln!(stdin, "{command}").unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line.trim().to_owned()
    };
    assert_eq!(ask("offsets s 1"), "ok 2 0");
    assert_eq!(ask("crash 9"), "error: no broker 9");
    assert_eq!(ask("quit"), "ok");
    assert!(child.wait().unwrap().success());
}

/// Encodes a `__consumer_offsets` key or value: its version, then the message.
fn versioned<M: kafka_sansio::wire::Message>(version: i16, m: &M) -> bytes::Bytes {
    use kafka_sansio::wire::{BufMut, BytesMut};
    let mut b = BytesMut::new();
    b.put_i16(version);
    m.encode(&mut b, version).unwrap();
    b.freeze()
}

#[test]
fn offsets_decodes_the_consumer_offsets_topic_with_filters() {
    use kafka_sansio::client::{Record, UnknownTopicHandling};
    use kafka_sansio::messages::consumer_offsets::{
        GroupMetadataKey, GroupMetadataValue, OffsetCommitKey, OffsetCommitValue,
        group_metadata_value::MemberMetadata,
    };
    use kafka_sansio::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
    use kafka_sansio::records::Compression;
    use kafka_sansio::runtime::ClientBuilder;

    let server = cluster(1);
    let b = server.bootstrap();
    // No __consumer_offsets yet: a clear line.
    let out = run(&b, &["offsets"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no __consumer_offsets topic"),
        "{}",
        stderr(&out)
    );

    // The coordinator's records, as Kafka writes them, in a copy of the topic (the
    // simulated cluster keeps __consumer_offsets to itself: clients cannot write it).
    server
        .with_cluster(|c, _| c.create_topic("offsets-copy", 1, 1))
        .unwrap();
    let commit = |group: &str, topic: &str, partition: i32, offset: Option<i64>| {
        let key = versioned(
            1,
            &OffsetCommitKey {
                group: group.into(),
                topic: topic.into(),
                partition,
            },
        );
        let mut r = Record::new(bytes::Bytes::new()).key(key);
        r.value = offset.map(|offset| {
            versioned(
                3,
                &OffsetCommitValue {
                    offset,
                    leader_epoch: 2,
                    commit_timestamp: 1_700_000_000_000,
                    ..Default::default()
                },
            )
        });
        r
    };
    let subscription = versioned(
        1,
        &ConsumerProtocolSubscription {
            topics: vec!["orders".into()],
            ..Default::default()
        },
    );
    let assignment = versioned(
        1,
        &ConsumerProtocolAssignment {
            assigned_partitions: vec![
                kafka_sansio::messages::consumer_protocol_assignment::TopicPartition {
                    topic: "orders".into(),
                    partitions: vec![0, 1].into(),
                },
            ],
            ..Default::default()
        },
    );
    let metadata = Record::new(versioned(
        3,
        &GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("member-1".into()),
            members: vec![MemberMetadata {
                member_id: "member-1".into(),
                client_id: "app".into(),
                client_host: "/10.0.0.1".into(),
                session_timeout: 45_000,
                subscription,
                assignment,
                ..Default::default()
            }],
            ..Default::default()
        },
    ))
    .key(versioned(2, &GroupMetadataKey { group: "g1".into() }));
    let records = vec![
        commit("g1", "orders", 0, Some(42)),
        commit("g2", "other", 1, Some(7)),
        metadata,
        commit("g1", "orders", 1, None),
    ];
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let client = ClientBuilder::new(&b).build_tokio().await.unwrap();
            let pc = client
                .partition_client("offsets-copy", 0, UnknownTopicHandling::Error)
                .await
                .unwrap();
            pc.produce(records, Compression::None).await.unwrap();
            client.close().await;
        });

    let all = ok(&run(
        &b,
        &["offsets", "--json", "--source-topic", "offsets-copy"],
        b"",
    ));
    let rows: Vec<serde_json::Value> = all
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4, "{all}");
    assert_eq!(rows[0]["type"], "offset-commit");
    assert_eq!(rows[0]["group"], "g1");
    assert_eq!(rows[0]["offset"], 42);
    assert_eq!(rows[0]["leader_epoch"], 2);
    assert_eq!(rows[0]["partition"], 0);
    assert_eq!(rows[3]["log_offset"], 3);
    assert_eq!(rows[2]["type"], "group-metadata");
    assert_eq!(rows[2]["generation"], 7);
    assert_eq!(
        rows[2]["members"][0]["subscription"],
        serde_json::json!(["orders"])
    );
    assert_eq!(
        rows[2]["members"][0]["assignment"][0]["partitions"],
        serde_json::json!([0, 1])
    );
    assert_eq!(rows[3]["tombstone"], true);
    // Filters: by group, by topic, and without tombstones.
    let g2 = ok(&run(
        &b,
        &["offsets", "-G", "g2", "--source-topic", "offsets-copy"],
        b"",
    ));
    assert_eq!(g2.lines().count(), 1, "{g2}");
    assert!(
        g2.contains("offset-commit group=g2 topic=other partition=1 offset=7"),
        "{g2}"
    );
    let orders = ok(&run(
        &b,
        &[
            "offsets",
            "-t",
            "orders",
            "--tombstones",
            "false",
            "--source-topic",
            "offsets-copy",
        ],
        b"",
    ));
    assert_eq!(orders.lines().count(), 2, "{orders}");
    assert!(
        orders
            .lines()
            .nth(1)
            .unwrap()
            .contains("group-metadata group=g1"),
        "{orders}"
    );
    server.shutdown();
}

#[test]
fn sasl_scram_and_plain_authenticate_and_a_wrong_password_is_one_line() {
    let server = BackgroundServer::start(ClusterConfig {
        brokers: 1,
        base_port: 0,
        sasl: Some(kafka_sansio::sim::SimSasl::user("alice", "s3cret")),
        ..ClusterConfig::default()
    })
    .unwrap();
    let b = server.bootstrap();
    server
        .with_cluster(|c, _| c.create_topic("auth", 1, 1))
        .unwrap();
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let sasl = ["--sasl-mechanism", mechanism, "--sasl-username", "alice"];
        let mut cmd = Command::new(BIN);
        cmd.args(["-b", &b, "--timeout", "10s"])
            .args(sasl)
            .env("KAFKA_SASL_PASSWORD", "s3cret")
            .args(["produce", "-t", "auth"]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(mechanism.as_bytes())
            .unwrap();
        ok(&child.wait_with_output().unwrap());
        let wrong = Command::new(BIN)
            .args(["-b", &b, "--timeout", "5s"])
            .args(sasl)
            .args(["--sasl-password", "nope", "metadata"])
            .output()
            .unwrap();
        assert_eq!(wrong.status.code(), Some(1), "{mechanism}");
        let err = stderr(&wrong);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("kafka-sansio: cannot reach the cluster"),
            "{err}"
        );
    }
    let out = run(
        &b,
        &[
            "--sasl-mechanism",
            "SCRAM-SHA-256",
            "--sasl-username",
            "alice",
            "--sasl-password",
            "s3cret",
            "consume",
            "-t",
            "auth",
            "-o",
            "beginning",
            "-e",
        ],
        b"",
    );
    assert_eq!(ok(&out), "PLAIN\nSCRAM-SHA-256\nSCRAM-SHA-512\n");
    server.shutdown();
}

#[test]
fn ctrl_c_mid_group_consume_commits_what_was_printed() {
    let server = cluster(1);
    let b = server.bootstrap();
    server
        .with_cluster(|c, _| c.create_topic("cc", 1, 1))
        .unwrap();
    let lines: String = (0..50).map(|i| format!("r{i}\n")).collect();
    ok(&run(&b, &["produce", "-t", "cc"], lines.as_bytes()));
    // No -e: it would wait for more records forever.
    let mut child = Command::new(BIN)
        .args([
            "-b",
            &b,
            "--timeout",
            "20s",
            "consume",
            "-t",
            "cc",
            "-G",
            "cg",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the 50 lines on a thread, so that output held back fails the test in
    // time instead of hanging it.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        for _ in 0..50 {
            line.clear();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
        }
        let _ = tx.send(());
        // Keep reading so the consumer never blocks on a full pipe.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
    });
    if rx.recv_timeout(Duration::from_secs(20)).is_err() {
        let _ = child.kill();
        panic!("the consumer did not print 50 lines within 20 s (output held back?)");
    }
    // It is a member of the group, holding the topic's one partition.
    let describe = || -> serde_json::Value {
        serde_json::from_str(ok(&run(&b, &["groups", "describe", "cg", "--json"], b"")).trim())
            .unwrap()
    };
    let d = describe();
    assert_eq!(d["state"], "Stable", "{d}");
    assert_eq!(d["members"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(
        d["members"][0]["assignment"],
        serde_json::json!([{"topic": "cc", "partitions": [0]}]),
        "{d}"
    );
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(
        stderr(&out).contains("kafka-sansio: interrupted after 50 record(s)"),
        "{}",
        stderr(&out)
    );
    // Everything printed was committed on the way out.
    let offsets = ok(&run(&b, &["groups", "offsets", "cg", "--json"], b""));
    let row: serde_json::Value = serde_json::from_str(offsets.trim()).unwrap();
    assert_eq!(row["committed"], 50, "{offsets}");
    // And it left the group on the way out.
    let d = describe();
    assert_eq!(d["state"], "Empty", "{d}");
    assert_eq!(d["members"].as_array().unwrap().len(), 0, "{d}");
    server.shutdown();
}

#[test]
fn group_protocol_consumer_records_decode_in_offsets() {
    let server = cluster(1);
    let b = server.bootstrap();
    server
        .with_cluster(|c, _| c.create_topic("kt", 3, 1))
        .unwrap();
    let lines: String = (0..60).map(|i| format!("k{i}:v{i}\n")).collect();
    ok(&run(
        &b,
        &["produce", "-t", "kt", "-K", ":"],
        lines.as_bytes(),
    ));
    let out = run(
        &b,
        &[
            "consume",
            "-t",
            "kt",
            "-G",
            "kg",
            "--group-protocol",
            "consumer",
            "-e",
        ],
        b"",
    );
    assert_eq!(ok(&out).lines().count(), 60);
    // A KIP-848 group: listed with its type, and described from the listing.
    let listed = ok(&run(&b, &["groups", "list", "--json"], b""));
    let row: serde_json::Value = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|g| g["group"] == "kg")
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(row["type"], "consumer", "{listed}");
    assert_eq!(row["state"], "Empty", "{listed}");
    let offsets = ok(&run(&b, &["groups", "offsets", "kg", "--json"], b""));
    let rows: Vec<serde_json::Value> = offsets
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{offsets}");
    assert!(
        rows.iter().all(|r| r["committed"] == r["log_end"]),
        "{offsets}"
    );

    // What the KIP-848 coordinator wrote, every kind of record, field by field.
    let log = ok(&run(&b, &["offsets", "-G", "kg", "--json"], b""));
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first = |kind: &str| -> &serde_json::Value {
        records
            .iter()
            .find(|r| r["type"] == kind && r["tombstone"].is_null())
            .unwrap_or_else(|| panic!("no {kind} in {log}"))
    };
    let member = first("consumer-group-member-metadata");
    let member_id = member["member"].as_str().unwrap().to_owned();
    assert!(!member_id.is_empty());
    assert_eq!(
        member["subscribed_topics"],
        serde_json::json!(["kt"]),
        "{log}"
    );
    assert_eq!(member["client_id"], "kafka-sansio", "{log}");
    assert_eq!(member["rebalance_timeout"], 300_000, "{log}");
    let partitions = first("consumer-group-partition-metadata");
    assert_eq!(partitions["topics"][0]["topic"], "kt", "{log}");
    assert_eq!(partitions["topics"][0]["partitions"], 3, "{log}");
    let topic_id = partitions["topics"][0]["topic_id"].clone();
    let epoch = first("consumer-group-metadata")["epoch"].as_i64().unwrap();
    assert!(epoch >= 1, "{log}");
    assert_eq!(
        first("consumer-group-target-assignment-metadata")["assignment_epoch"],
        epoch,
        "{log}"
    );
    let target = first("consumer-group-target-assignment-member");
    assert_eq!(target["member"], member_id.as_str(), "{log}");
    let everything = serde_json::json!([{"topic_id": topic_id, "partitions": [0, 1, 2]}]);
    assert_eq!(target["assignment"], everything, "{log}");
    let current = first("consumer-group-current-member-assignment");
    assert_eq!(current["member"], member_id.as_str(), "{log}");
    assert_eq!(current["member_epoch"], epoch, "{log}");
    assert_eq!(current["assigned"], everything, "{log}");
    assert_eq!(
        current["pending_revocation"],
        serde_json::json!([]),
        "{log}"
    );
    // The commits end at the log ends, and the member's records were deleted
    // (tombstones) when it left.
    let commits: std::collections::BTreeMap<i64, i64> = records
        .iter()
        .filter(|r| r["type"] == "offset-commit")
        .map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                r["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    let ends: std::collections::BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                r["log_end"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(commits, ends, "{log}");
    for kind in [
        "consumer-group-member-metadata",
        "consumer-group-target-assignment-member",
        "consumer-group-current-member-assignment",
    ] {
        assert!(
            records.iter().any(|r| r["type"] == kind
                && r["tombstone"] == true
                && r["member"] == member_id.as_str()),
            "no {kind} tombstone in {log}"
        );
    }
    // The text form says the same on one line each.
    let text = ok(&run(&b, &["offsets", "-G", "kg"], b""));
    assert!(
        text.lines()
            .any(|l| l.contains("consumer-group-member-metadata")
                && l.contains(&format!("member={member_id}"))
                && l.contains("subscribed_topics=[\"kt\"]")),
        "{text}"
    );
    server.shutdown();
}

#[test]
fn offsets_decodes_records_captured_from_a_real_kafka() {
    use kafka_sansio::client::{Record, UnknownTopicHandling};
    use kafka_sansio::records::Compression;
    use kafka_sansio::runtime::ClientBuilder;

    let server = cluster(1);
    let b = server.bootstrap();
    server
        .with_cluster(|c, _| c.create_topic("real-offsets", 1, 1))
        .unwrap();
    // tests/data/consumer_offsets/README.md says where these come from.
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/consumer_offsets/kafkesc"
    );
    let names: Vec<String> = (1..=5)
        .map(|i| format!("offset_commit_0{i}"))
        .chain((1..=5).map(|i| format!("group_metadata_0{i}")))
        .collect();
    let records: Vec<Record> = names
        .iter()
        .map(|n| {
            let read =
                |ext: &str| bytes::Bytes::from(std::fs::read(format!("{dir}/{n}.{ext}")).unwrap());
            Record::new(read("value")).key(read("key"))
        })
        .collect();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let client = ClientBuilder::new(&b).build_tokio().await.unwrap();
            let pc = client
                .partition_client("real-offsets", 0, UnknownTopicHandling::Error)
                .await
                .unwrap();
            pc.produce(records, Compression::None).await.unwrap();
            client.close().await;
        });
    let all = ok(&run(
        &b,
        &["offsets", "--json", "--source-topic", "real-offsets"],
        b"",
    ));
    let rows: Vec<serde_json::Value> = all
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 10, "{all}");
    // The offset commits (worked out by hand from the bytes).
    let commits = [
        (
            "ivan-experimental-consumer",
            "__consumer_offsets",
            46,
            97_507,
            1_672_871_009_232_i64,
        ),
        (
            "ivan-experimental-consumer",
            "__consumer_offsets",
            46,
            97_554,
            1_672_871_009_282,
        ),
        (
            "kafkesc-devcluster-group-id",
            "t01",
            0,
            106,
            1_672_788_047_244,
        ),
        (
            "ivan-experimental-consumer",
            "__consumer_offsets",
            46,
            99_158,
            1_672_871_010_428,
        ),
        (
            "kafkesc-devcluster-group-id",
            "t01",
            0,
            15_134,
            1_672_870_795_763,
        ),
    ];
    for (row, (group, topic, partition, offset, ts)) in rows.iter().zip(commits) {
        assert_eq!(row["type"], "offset-commit", "{row}");
        assert_eq!(row["group"], group, "{row}");
        assert_eq!(row["topic"], topic, "{row}");
        assert_eq!(row["partition"], partition, "{row}");
        assert_eq!(row["offset"], offset, "{row}");
        assert_eq!(row["leader_epoch"], -1, "{row}");
        assert_eq!(row["metadata"], "", "{row}");
        assert_eq!(row["commit_timestamp"], ts, "{row}");
        assert_eq!(row["value_version"], 3, "{row}");
    }
    // The group metadata: generation, members with subscriptions and assignments.
    let rd1 = "rdkafka-9f4fc1b0-1d7d-4471-90e8-e0f64f3c9d9f";
    let groups = &rows[5..];
    for g in groups {
        assert_eq!(g["type"], "group-metadata", "{g}");
        assert_eq!(g["protocol_type"], "consumer", "{g}");
        assert_eq!(g["value_version"], 3, "{g}");
    }
    let generations: Vec<i64> = groups
        .iter()
        .map(|g| g["generation"].as_i64().unwrap())
        .collect();
    assert_eq!(generations, vec![7, 3, 1, 6, 8]);
    assert_eq!(groups[0]["group"], "kafkesc-devcluster-group-id");
    assert_eq!(groups[0]["protocol"], "range");
    assert_eq!(groups[0]["leader"], rd1);
    assert_eq!(groups[0]["current_state_timestamp"], 1_672_870_956_437_i64);
    let m = &groups[0]["members"][0];
    assert_eq!(m["member_id"], rd1);
    assert_eq!(m["client_id"], "rdkafka");
    assert_eq!(m["host"], "/172.18.0.1");
    assert_eq!(m["session_timeout"], 45_000);
    assert_eq!(m["rebalance_timeout"], 300_000);
    assert_eq!(m["subscription"], serde_json::json!(["t01"]));
    assert_eq!(
        m["assignment"],
        serde_json::json!([{"topic": "t01", "partitions": [0, 1, 2]}])
    );
    // A member of __consumer_offsets itself, holding its 50 partitions.
    assert_eq!(groups[2]["group"], "ivan-experimental-consumer");
    let all50: Vec<i64> = (0..50).collect();
    assert_eq!(
        groups[2]["members"][0]["assignment"],
        serde_json::json!([{"topic": "__consumer_offsets", "partitions": all50}])
    );
    // Two members splitting t01.
    let split: Vec<&serde_json::Value> = groups[3]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["assignment"][0]["partitions"])
        .collect();
    assert_eq!(
        split,
        vec![&serde_json::json!([2]), &serde_json::json!([0, 1])]
    );
    // The group emptied: no protocol, no leader, no members.
    assert_eq!(groups[4]["protocol"], serde_json::Value::Null);
    assert_eq!(groups[4]["leader"], serde_json::Value::Null);
    assert_eq!(groups[4]["members"], serde_json::json!([]));
    // Filters work on them too.
    let t01 = ok(&run(
        &b,
        &["offsets", "-t", "t01", "--source-topic", "real-offsets"],
        b"",
    ));
    assert_eq!(
        t01.lines().count(),
        2 + 3,
        "2 commits, 3 groups mentioning t01: {t01}"
    );
    server.shutdown();
}

#[test]
fn produce_dry_run_reads_and_checks_lines_without_a_cluster() {
    // Nothing listens there: a dry run never connects.
    let nowhere = "127.0.0.1:1";
    let out = run(
        nowhere,
        &["produce", "-t", "t", "-K", ":", "--dry-run"],
        b"k1:v1\nk2:v2\n\nk3:v3",
    );
    ok(&out);
    assert!(
        stderr(&out).contains("read 3 record(s) for t") && stderr(&out).contains("dry run"),
        "{}",
        stderr(&out)
    );
    let out = run(
        nowhere,
        &["produce", "-t", "t", "-K", ":", "--dry-run"],
        b"k1:v1\nno delimiter\nk3:v3\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("line 2: no key delimiter"),
        "{}",
        stderr(&out)
    );
}

/// `consume -e` ends at each partition's end even where the end lies past the last
/// record: a log written by a transactional producer ends with its marker (kcat
/// stops there too). It waited for a record at the end's offset before, forever.
/// Assigned and in a group.
#[test]
fn consume_to_the_end_of_a_log_that_ends_with_a_transaction_marker() {
    let server = cluster(1);
    let b = server.bootstrap();
    server
        .with_cluster(|c, now| {
            c.create_topic("txn", 2, 1)?;
            c.write_in_transaction("tx", "txn", 0, &[b"a", b"b"], now)?;
            c.write_in_transaction("tx", "txn", 1, &[b"c"], now)?;
            c.complete_transaction("tx", true, now);
            // An aborted transaction after it: read (read_uncommitted), then its marker.
            c.write_in_transaction("tx", "txn", 0, &[b"x"], now)?;
            c.complete_transaction("tx", false, now);
            Ok::<_, kafka_sansio::sim::SimError>(())
        })
        .unwrap();
    let started = Instant::now();
    let out = ok(&run(
        &b,
        &[
            "consume",
            "-t",
            "txn",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%p:%o:%s\\n",
        ],
        b"",
    ));
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["0:0:a", "0:1:b", "0:3:x", "1:0:c"]);
    let out = ok(&run(
        &b,
        &["consume", "-t", "txn", "-G", "g", "-e", "-f", "%p:%o:%s\\n"],
        b"",
    ));
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["0:0:a", "0:1:b", "0:3:x", "1:0:c"]);
    // Well within the runner's 60 s watchdog: the end is seen, not waited out.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn consume_read_committed_skips_aborted_records_and_ends_before_an_open_transaction() {
    let server = cluster(1);
    let b = server.bootstrap();
    server
        .with_cluster(|c, now| {
            c.create_topic("rc", 2, 1)?;
            c.write_in_transaction("tx", "rc", 0, &[b"a", b"b"], now)?;
            c.complete_transaction("tx", true, now);
            c.write_in_transaction("tx", "rc", 0, &[b"x"], now)?;
            c.write_in_transaction("tx", "rc", 1, &[b"y"], now)?;
            c.complete_transaction("tx", false, now);
            c.write_in_transaction("tx", "rc", 1, &[b"c"], now)?;
            c.complete_transaction("tx", true, now);
            // Still open when the consumer starts: read_committed stops before it.
            c.write_in_transaction("open", "rc", 0, &[b"pending"], now)?;
            Ok::<_, kafka_sansio::sim::SimError>(())
        })
        .unwrap();
    let read = |args: &[&str]| {
        let base = ["consume", "-t", "rc", "-e", "-f", "%p:%o:%s\\n"];
        let out = ok(&run(&b, &[&base[..], args].concat(), b""));
        let mut lines: Vec<String> = out.lines().map(str::to_owned).collect();
        lines.sort_unstable();
        lines
    };
    assert_eq!(
        read(&["-o", "beginning"]),
        ["0:0:a", "0:1:b", "0:3:x", "0:5:pending", "1:0:y", "1:2:c"]
    );
    let committed = ["0:0:a", "0:1:b", "1:2:c"];
    assert_eq!(
        read(&["-o", "beginning", "--isolation", "read_committed"]),
        committed
    );
    assert_eq!(
        read(&["-G", "rc-group", "--isolation", "read_committed"]),
        committed
    );
    let out = run(&b, &["consume", "-t", "rc", "--isolation", "maybe"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("expected read_uncommitted or read_committed"));
}
