//! The README's first command: a Kafka cluster in this process, no setup.
//!
//! ```text
//! cargo run --example quickstart --features sim,tokio
//! KAFKA_BOOTSTRAP=host:9092 cargo run --example quickstart --features sim,tokio
//! ```
//!
//! Without `KAFKA_BOOTSTRAP` it serves the simulated cluster (3 brokers) on loopback
//! ports; with it, the same program runs against that cluster. It creates a topic,
//! produces records with acks=all and reads them back; against the simulation it then
//! crashes the partition's leader and reads the same records from the new one.

use std::time::Duration;

use kafka_sansio::client::{ClientError, OffsetSpec, Record, UnknownTopicHandling};
use kafka_sansio::messages::ErrorCode;
use kafka_sansio::records::Compression;
use kafka_sansio::runtime::ClientBuilder;
use kafka_sansio::sim::ClusterConfig;
use kafka_sansio::sim_server::serve;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // 1. A cluster: the one named by KAFKA_BOOTSTRAP, or a simulated one on loopback.
    let sim = match std::env::var("KAFKA_BOOTSTRAP") {
        Ok(b) if !b.trim().is_empty() => None,
        _ => Some(
            serve(ClusterConfig {
                brokers: 3,
                base_port: 0,
                ..ClusterConfig::default()
            })
            .await?,
        ),
    };
    let bootstrap = match &sim {
        Some(server) => server.bootstrap(),
        None => std::env::var("KAFKA_BOOTSTRAP")?,
    };
    println!(
        "bootstrap: {bootstrap}{}",
        if sim.is_some() { " (simulated)" } else { "" }
    );

    // 2. A client: it finds the brokers, routes every call to the right one and
    //    retries what Kafka says is retriable.
    let client = ClientBuilder::new(&bootstrap)
        .client_id("quickstart")
        .operation_timeout(Duration::from_secs(30))
        .build_tokio()
        .await?;
    let cluster = client.describe_cluster().await?;
    println!(
        "{} broker(s), controller {:?}",
        cluster.brokers.len(),
        cluster.controller
    );

    // 3. A topic (an existing one is fine; a broker without CreateTopics, such as
    //    librdkafka's mock, creates topics on first use).
    let topic = "kafka-sansio-quickstart";
    match client.create_topic(topic, 3, -1).await {
        Ok(()) => println!("created {topic}"),
        Err(e) if e.error_code() == Some(ErrorCode::TOPIC_ALREADY_EXISTS) => {
            println!("{topic} exists")
        }
        Err(e @ (ClientError::Unsupported(_) | ClientError::Request(_))) => {
            println!("no CreateTopics here ({e})")
        }
        Err(e) => return Err(e.into()),
    }

    // 4. Produce five records to partition 0 (one zstd batch, acks=all).
    let partition = client
        .partition_client(topic, 0, UnknownTopicHandling::Retry)
        .await?;
    let records = (0..5)
        .map(|i| Record::new(format!("hello #{i}")).key(format!("key-{i}")))
        .collect();
    let offsets = partition.produce(records, Compression::Zstd).await?;
    println!("produced at offsets {offsets:?}");

    // 5. Read them back.
    let (fetched, high_watermark) = partition
        .fetch_records(offsets[0], 1..1_000_000, 500)
        .await?;
    for r in fetched.iter().take(5) {
        let value = String::from_utf8_lossy(r.value().unwrap_or_default());
        println!("  offset {}: {value}", r.offset);
    }
    println!(
        "high watermark {high_watermark}, latest {}",
        partition.get_offset(OffsetSpec::Latest).await?
    );

    // 6. Against the simulation: crash the leader; acks=all records survive on the new one.
    if let Some(server) = &sim {
        let leader = server.with_cluster(|c, _| c.partition_leader(topic, 0));
        server.with_cluster(|c, now| leader.map(|l| c.crash_broker(l, now)));
        let (again, _) = partition
            .fetch_records(offsets[0], 1..1_000_000, 500)
            .await?;
        let new_leader = server.with_cluster(|c, _| c.partition_leader(topic, 0));
        println!(
            "broker {leader:?} crashed; broker {new_leader:?} serves the same {} records",
            again.len()
        );
        assert_eq!(again.len(), fetched.len());
    }
    client.close().await;
    if let Some(server) = sim {
        server.shutdown().await;
    }
    Ok(())
}
