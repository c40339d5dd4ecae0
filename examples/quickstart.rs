//! The README's first command: a Kafka cluster in this process, no setup.
//!
//! ```text
//! cargo run --example quickstart --features sim,tokio
//! KAFKA_BOOTSTRAP=host:9092 cargo run --example quickstart --features sim,tokio
//! ```
//!
//! Without `KAFKA_BOOTSTRAP` it serves the simulated cluster (3 brokers) on loopback
//! ports; with it, the same program runs against that cluster instead. Either way it
//! creates a topic with CreateTopics, produces a compressed batch with acks=all
//! through the tokio adapter, fetches the records back from the partition leader and
//! checks them. Against the simulation it then crashes the leader and reads the same
//! records from the new one: acks=all data survives a leader crash.
#![allow(clippy::disallowed_methods)] // an application reads its own clock

use std::time::Duration;

use kafka_sansio::connection::{Config, RequestErrorKind};
use kafka_sansio::messages::{
    CreateTopicsRequest, ErrorCode, FetchRequest, MetadataRequest, MetadataResponse,
    ProduceRequest, create_topics_request, fetch_request, metadata_request, produce_request,
};
use kafka_sansio::records::{
    BatchBuilder, BatchConfig, BatchReader, Compression, DecodeOptions, NewRecord,
};
use kafka_sansio::runtime::Error as RuntimeError;
use kafka_sansio::sim::ClusterConfig;
use kafka_sansio::sim_server::{Server, serve};
use kafka_sansio::tokio_runtime::Connection;
use kafka_sansio::wire::{BytesMut, Uuid};

type Error = Box<dyn std::error::Error + Send + Sync>;

const TOPIC: &str = "kafka-sansio-quickstart";

#[tokio::main]
async fn main() -> Result<(), Error> {
    // 1. A cluster: the one named by KAFKA_BOOTSTRAP, or the simulation on loopback.
    let (bootstrap, sim): (String, Option<Server>) = match std::env::var("KAFKA_BOOTSTRAP") {
        Ok(b) if !b.trim().is_empty() => {
            println!("using the cluster at {b} (KAFKA_BOOTSTRAP)");
            (b, None)
        }
        _ => {
            let server = serve(ClusterConfig {
                brokers: 3,
                base_port: 0,
                ..ClusterConfig::default()
            })
            .await?;
            println!(
                "serving a simulated 3-broker Kafka cluster on {}",
                server.bootstrap()
            );
            (server.bootstrap(), Some(server))
        }
    };
    let first = bootstrap.split(',').next().unwrap_or_default().trim();
    let conn = Connection::connect(first.to_owned(), Config::new(first)).await?;

    // 2. CreateTopics, sent to the controller (an existing topic is fine). A broker
    //    without CreateTopics (librdkafka's mock cluster) creates the topic on first use.
    let md = conn.send(MetadataRequest::default()).await?;
    println!(
        "connected to {first}: {} broker(s), controller {}",
        md.brokers.len(),
        md.controller_id
    );
    let controller = if md.brokers.iter().any(|b| b.node_id == md.controller_id) {
        broker_conn(&md, md.controller_id).await?
    } else {
        conn.clone()
    };
    let request = CreateTopicsRequest {
        topics: vec![create_topics_request::CreatableTopic {
            name: TOPIC.into(),
            num_partitions: 3,
            replication_factor: -1, // the cluster's default
            ..Default::default()
        }],
        timeout_ms: 10_000,
        ..Default::default()
    };
    match controller.send(request).await {
        Ok(created) => {
            let result = &created.topics[0];
            match ErrorCode::from(result.error_code) {
                ErrorCode::NONE => println!(
                    "created topic {TOPIC}: {} partitions, replication {}",
                    result.num_partitions, result.replication_factor
                ),
                ErrorCode::TOPIC_ALREADY_EXISTS => println!("topic {TOPIC} already exists"),
                e => return Err(format!("CreateTopics {TOPIC}: {e:?}").into()),
            }
        }
        Err(RuntimeError::Request(e)) if matches!(e.kind, RequestErrorKind::UnsupportedApi) => {
            println!("the cluster has no CreateTopics; asking Metadata to auto-create {TOPIC}");
        }
        Err(e) => return Err(e.into()),
    }

    // 3. Who leads partition 0?
    let (topic_id, leader_id, leader) = leader_of(&conn, 0).await?;
    println!("partition 0 is led by broker {leader_id}");

    // 4. Produce one zstd batch with acks=all.
    let values: Vec<String> = (0..5)
        .map(|i| format!("hello #{i} from kafka-sansio"))
        .collect();
    let mut buf = BytesMut::new();
    let config = BatchConfig {
        compression: Compression::Zstd,
        ..BatchConfig::default()
    };
    let mut batch = BatchBuilder::new(&mut buf, &config);
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    for (i, v) in values.iter().enumerate() {
        let key = format!("key-{i}");
        batch.append(
            &NewRecord::new(timestamp)
                .key(key.as_bytes())
                .value(v.as_bytes()),
        )?;
    }
    batch.finish()?;
    let produced = leader
        .send(ProduceRequest {
            acks: -1,
            timeout_ms: 10_000,
            topic_data: vec![produce_request::TopicProduceData {
                name: TOPIC.into(),
                partition_data: vec![produce_request::PartitionProduceData {
                    index: 0,
                    records: Some(buf.freeze()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        })
        .await?;
    let p = &produced.responses[0].partition_responses[0];
    if p.error_code != 0 {
        return Err(format!("Produce: {:?}", ErrorCode::from(p.error_code)).into());
    }
    let base = p.base_offset;
    println!(
        "produced {} records (zstd, acks=all) at offsets {base}..={}",
        values.len(),
        base + values.len() as i64 - 1
    );

    // 5. Fetch them back and check every byte.
    let fetched = fetch(&leader, topic_id, base, values.len()).await?;
    for (offset, key, value) in &fetched {
        println!("  fetched offset {offset}: {key} = {value}");
    }
    check(&fetched, &values)?;
    println!("fetched all {} records back, byte for byte", values.len());

    // 6. In the simulation, a fault: the leader crashes; acks=all data survives.
    if let Some(server) = sim {
        server.with_cluster(|cluster, now| cluster.crash_broker(leader_id, now));
        println!("crashed broker {leader_id} (the leader)");
        let (_, new_id, new_leader) =
            leader_of(&conn_to_live(&server, leader_id).await?, 0).await?;
        let again = fetch(&new_leader, topic_id, base, values.len()).await?;
        check(&again, &values)?;
        println!(
            "broker {new_id} leads partition 0 now and serves the same {} records",
            again.len()
        );
        server.shutdown().await;
    }
    println!("done");
    Ok(())
}

/// A connection to broker `id`, from the addresses a Metadata response lists.
async fn broker_conn(md: &MetadataResponse, id: i32) -> Result<Connection, Error> {
    let b = md
        .brokers
        .iter()
        .find(|b| b.node_id == id)
        .ok_or_else(|| format!("broker {id} is not in the metadata"))?;
    let addr = format!("{}:{}", b.host, b.port);
    Ok(Connection::connect(addr.clone(), Config::new(format!("{id}@{addr}"))).await?)
}

/// Any live broker of the simulation other than `not`.
async fn conn_to_live(server: &Server, not: i32) -> Result<Connection, Error> {
    let id = server
        .with_cluster(|c, _| c.broker_ids().find(|b| *b != not && c.is_up(*b)))
        .ok_or("no live broker left")?;
    let addr = server.addrs()[id as usize];
    Ok(Connection::connect(addr, Config::new(format!("{id}@{addr}"))).await?)
}

/// The topic's id and a connection to the leader of `partition`, waiting while a
/// new topic gets a leader.
async fn leader_of(conn: &Connection, partition: i32) -> Result<(Uuid, i32, Connection), Error> {
    for _ in 0..50 {
        let md = conn
            .send(MetadataRequest {
                topics: Some(vec![metadata_request::MetadataRequestTopic {
                    name: Some(TOPIC.into()),
                    ..Default::default()
                }]),
                allow_auto_topic_creation: true,
                ..Default::default()
            })
            .await?;
        let leader = md
            .topics
            .iter()
            .find(|t| t.error_code == 0 && t.name.as_deref() == Some(TOPIC))
            .and_then(|t| {
                let p = t
                    .partitions
                    .iter()
                    .find(|p| p.partition_index == partition)?;
                (p.error_code == 0 && p.leader_id >= 0).then_some((t.topic_id, p.leader_id))
            });
        if let Some((topic_id, leader_id)) = leader {
            return Ok((topic_id, leader_id, broker_conn(&md, leader_id).await?));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{TOPIC}/{partition} has no leader").into())
}

/// Fetches from `offset` until `count` records arrived: (offset, key, value).
async fn fetch(
    leader: &Connection,
    topic_id: Uuid,
    offset: i64,
    count: usize,
) -> Result<Vec<(i64, String, String)>, Error> {
    let mut out = Vec::new();
    let mut next = offset;
    for _ in 0..20 {
        if out.len() >= count {
            break;
        }
        let resp = leader
            .send(FetchRequest {
                replica_id: -1,
                max_wait_ms: 500,
                min_bytes: 1,
                max_bytes: 1 << 20,
                topics: vec![fetch_request::FetchTopic {
                    topic: TOPIC.into(),
                    topic_id,
                    partitions: vec![fetch_request::FetchPartition {
                        partition: 0,
                        fetch_offset: next,
                        partition_max_bytes: 1 << 20,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .await?;
        for p in resp.responses.iter().flat_map(|t| &t.partitions) {
            if p.error_code != 0 {
                return Err(format!("Fetch: {:?}", ErrorCode::from(p.error_code)).into());
            }
            let opts = DecodeOptions::default();
            for batch in BatchReader::new(p.records.clone().unwrap_or_default(), opts) {
                for r in batch?.records(&opts)? {
                    let r = r?;
                    if r.offset < next || out.len() >= count {
                        continue;
                    }
                    next = r.offset + 1;
                    let text = |b: Option<kafka_sansio::wire::Bytes>| {
                        String::from_utf8_lossy(&b.unwrap_or_default()).into_owned()
                    };
                    out.push((r.offset, text(r.key), text(r.value)));
                }
            }
        }
    }
    Ok(out)
}

fn check(fetched: &[(i64, String, String)], values: &[String]) -> Result<(), Error> {
    let got: Vec<&str> = fetched.iter().map(|(_, _, v)| v.as_str()).collect();
    if got != values {
        return Err(format!("fetched {got:?}, produced {values:?}").into());
    }
    Ok(())
}
