//! The simulated cluster served on loopback (`kafka_sansio::sim_server`) and the
//! `kafka-sim` binary, driven through the tokio adapter over real sockets.
#![cfg(all(feature = "sim", feature = "tokio"))]
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kafka_sansio::connection::Config;
use kafka_sansio::messages::{ErrorCode, FetchRequest, MetadataRequest};
use kafka_sansio::records::{BatchReader, DecodeOptions};
use kafka_sansio::runtime::Error;
use kafka_sansio::sim::ClusterConfig;
use kafka_sansio::sim_server::{BackgroundServer, serve};
use kafka_sansio::tokio_runtime::Connection;
use kafka_sansio::wire::Bytes;

mod sim_harness;
use sim_harness::{batch, fetch, produce};

fn config(brokers: usize) -> ClusterConfig {
    ClusterConfig {
        brokers,
        base_port: 0,
        ..ClusterConfig::default()
    }
}

fn values(records: Option<Bytes>) -> Vec<String> {
    let opts = DecodeOptions::default();
    let mut out = Vec::new();
    for b in BatchReader::new(records.unwrap_or_default(), opts) {
        for r in b.unwrap().records(&opts).unwrap() {
            let v = r.unwrap().value_bytes().unwrap();
            out.push(String::from_utf8(v.to_vec()).unwrap());
        }
    }
    out
}

/// A Fetch parked on one connection (waiting for data up to its max wait) is answered
/// as soon as a Produce arrives on another connection, not at its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_fetch_wakes_when_another_connection_produces() {
    let server = serve(config(1)).await.unwrap();
    server
        .with_cluster(|c, _| c.create_topic("t", 1, 1))
        .unwrap();
    let consumer = Connection::connect(server.addrs()[0], Config::new("c"))
        .await
        .unwrap();
    let producer = Connection::connect(server.addrs()[0], Config::new("p"))
        .await
        .unwrap();
    // Fetch v12: topics by name (v13+ would need the topic id).
    let started = Instant::now();
    let parked = tokio::spawn({
        let consumer = consumer.clone();
        async move {
            consumer
                .send_with(
                    fetch("t", 0, 0, 1, 10_000),
                    kafka_sansio::connection::RequestOptions::max_version(12),
                )
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!parked.is_finished(), "the fetch waits for data");
    let r = producer
        .send(produce("t", 0, -1, batch(&["a", "b"], None)))
        .await
        .unwrap();
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    let outcome = tokio::time::timeout(Duration::from_secs(3), parked)
        .await
        .expect("the parked fetch is answered when data arrives, not at its 10 s deadline")
        .unwrap()
        .unwrap();
    let resp = match outcome {
        kafka_sansio::runtime::Outcome::Response(r) => r.decode::<FetchRequest>().unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        values(resp.responses[0].partitions[0].records.clone()),
        ["a", "b"]
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    server.shutdown().await;
}

/// A crash closes the broker's connections at once and refuses new ones; the
/// partitions move, acks=all data survives; a restart accepts connections again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_closes_connections_and_restart_accepts_again() {
    let server = serve(config(3)).await.unwrap();
    server
        .with_cluster(|c, _| c.create_topic("t", 1, 3))
        .unwrap();
    let leader = server.with_cluster(|c, _| c.partition_leader("t", 0).unwrap());
    let addr = server.addrs()[leader as usize];
    let conn = Connection::connect(addr, Config::new("leader"))
        .await
        .unwrap();
    let r = conn
        .send(produce("t", 0, -1, batch(&["kept"], None)))
        .await
        .unwrap();
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);

    server.with_cluster(|c, now| c.crash_broker(leader, now));
    let err = tokio::time::timeout(
        Duration::from_secs(3),
        conn.send(MetadataRequest::default()),
    )
    .await
    .expect("a request on a crashed broker's connection fails promptly")
    .unwrap_err();
    assert!(matches!(err, Error::Closed(_)), "{err:?}");
    // New connections to the crashed broker are closed before they are ready.
    let refused = tokio::time::timeout(
        Duration::from_secs(3),
        Connection::connect(addr, Config::new("again")),
    )
    .await
    .expect("connecting to a crashed broker fails promptly");
    assert!(refused.is_err(), "a crashed broker serves nobody");

    // The new leader has the acks=all record.
    let new_leader = server.with_cluster(|c, _| c.partition_leader("t", 0).unwrap());
    assert_ne!(new_leader, leader);
    let other = Connection::connect(server.addrs()[new_leader as usize], Config::new("new"))
        .await
        .unwrap();
    let md = other.send(MetadataRequest::default()).await.unwrap();
    assert_eq!(md.brokers.len(), 2, "the crashed broker left the metadata");
    let outcome = other
        .send_with(
            fetch("t", 0, 0, 1, 0),
            kafka_sansio::connection::RequestOptions::max_version(12),
        )
        .await
        .unwrap();
    let kafka_sansio::runtime::Outcome::Response(resp) = outcome else {
        panic!("no response")
    };
    let resp = resp.decode::<FetchRequest>().unwrap();
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "{:?}", ErrorCode::from(p.error_code));
    assert_eq!(values(p.records.clone()), ["kept"]);

    server.with_cluster(|c, now| c.restart_broker(leader, now));
    let back = Connection::connect(addr, Config::new("back"))
        .await
        .unwrap();
    let md = back.send(MetadataRequest::default()).await.unwrap();
    assert_eq!(md.brokers.len(), 3);
    server.shutdown().await;
}

/// Shutdown closes live connections and the listeners.
#[test]
fn background_server_shutdown_closes_everything() {
    let server = BackgroundServer::start(config(2)).unwrap();
    let addrs = server.addrs().to_vec();
    assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = rt
        .block_on(Connection::connect(addrs[0], Config::new("x")))
        .unwrap();
    let md = rt.block_on(conn.send(MetadataRequest::default())).unwrap();
    let ports: Vec<i32> = md.brokers.iter().map(|b| b.port).collect();
    let bound: Vec<i32> = addrs.iter().map(|a| i32::from(a.port())).collect();
    assert_eq!(ports, bound, "brokers advertise the ports they listen on");
    server.shutdown();
    let err = rt
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(3),
                conn.send(MetadataRequest::default()),
            )
            .await
        })
        .expect("fails promptly")
        .unwrap_err();
    assert!(matches!(err, Error::Closed(_)), "{err:?}");
    for a in addrs {
        assert!(
            std::net::TcpStream::connect(a).is_err(),
            "{a} still accepts after shutdown"
        );
    }
}

#[test]
fn serve_refuses_a_non_loopback_host() {
    let err = BackgroundServer::start(ClusterConfig {
        host: "0.0.0.0".into(),
        ..config(1)
    })
    .unwrap_err();
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
}

/// The binary: bootstrap on the first line, then commands answered line by line.
#[test]
fn kafka_sim_binary_prints_bootstrap_and_takes_commands() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafka-sim"))
        .args(["--brokers", "3", "--topic", "orders:4:3", "--topic", "logs"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let bootstrap: Vec<String> = line.trim().split(',').map(str::to_owned).collect();
    assert_eq!(bootstrap.len(), 3, "{line:?}");
    assert!(bootstrap.iter().all(|b| b.starts_with("127.0.0.1:")));
    let mut command = |c: &str| {
        writeln!(stdin, "{c}").unwrap();
        stdin.flush().unwrap();
        let mut answer = String::new();
        out.read_line(&mut answer).unwrap();
        answer.trim().to_owned()
    };
    assert_eq!(command("leader? orders 3"), "ok 0");
    assert_eq!(command("leader? logs 0"), "ok 0");
    assert_eq!(command("crash 0"), "ok");
    assert_eq!(command("leader? orders 3"), "ok 1");
    assert_eq!(command("restart 0"), "ok");
    assert_eq!(command("leader orders 3 2"), "ok");
    assert_eq!(command("leader? orders 3"), "ok 2");
    assert_eq!(command("topic more 2 2"), "ok");
    assert_eq!(command("offsets more 1"), "ok 0 0");
    assert_eq!(command("txn tx more 1 a b"), "ok 0");
    assert_eq!(command("lso more 1"), "ok 0");
    assert_eq!(command("offsets more 1"), "ok 2 0");
    assert_eq!(command("abort tx"), "ok");
    assert_eq!(command("lso more 1"), "ok 3");
    assert!(command("txn tx more 9 a").starts_with("error: topic more has no partition 9"));
    assert!(command("txn tx more 1").starts_with("error: "));
    assert_eq!(command("errors 0 6 2"), "ok");
    assert_eq!(command("throttle 5"), "ok");
    assert!(command("crash 9").starts_with("error: no broker 9"));
    assert!(command("topic more").starts_with("error: "));
    assert!(command("bogus").starts_with("error: unknown command"));
    // The cluster answers Kafka requests meanwhile.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = Connection::connect(bootstrap[1].clone(), Config::new("b1"))
            .await
            .unwrap();
        let all = MetadataRequest {
            topics: None,
            ..Default::default()
        };
        let md = conn.send(all).await.unwrap();
        let mut names: Vec<String> = md
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
            .collect();
        names.sort();
        assert_eq!(names, ["logs", "more", "orders"]);
        assert_eq!(md.throttle_time_ms, 5);
    });
    assert_eq!(command("quit"), "ok");
    assert!(child.wait().unwrap().success());
}
