//! The README's consume-transform-produce loop, as written there, through the
//! tokio facade over real sockets against the simulated cluster served on
//! loopback, on the classic group protocol and on KIP-848: three members of one group join one after another, one closes while
//! the others go on, and every fourth transaction is aborted and its input read
//! again. What a user checks: every input record is in the output exactly once,
//! as a read_committed reader sees it, and the group's committed offsets end at
//! the input's end.
#![cfg(all(feature = "sim", feature = "tokio"))]
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kafka_sansio::client::{
    ClientError, FetchOptions, GroupProtocol, IsolationLevel, Offset, OffsetReset, ProducerRecord,
    TopicPartition, UnknownTopicHandling,
};
use kafka_sansio::runtime::ClientBuilder;
use kafka_sansio::sim::ClusterConfig;
use kafka_sansio::sim_server::BackgroundServer;

const GROUP: &str = "enricher";
const IN: &str = "orders";
const OUT: &str = "enriched";
const PARTITIONS: i32 = 4;
const PER_PARTITION: usize = 200;

fn server() -> BackgroundServer {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let server = BackgroundServer::start(ClusterConfig {
        brokers: 2,
        base_port: 0,
        auto_create_topics: false,
        group_min_session_timeout: Duration::from_millis(500),
        consumer_group_session_timeout: Duration::from_secs(3),
        consumer_group_heartbeat_interval: Duration::from_millis(200),
        ..ClusterConfig::default()
    })
    .unwrap();
    server.with_cluster(|c, _| {
        c.create_topic(IN, PARTITIONS, 2).unwrap();
        c.create_topic(OUT, PARTITIONS, 2).unwrap();
    });
    server
}

/// Writes input record `i` of every partition (`p{p}-{i}`) every `pace`, so that
/// the members' transactions are many and small and span their rebalances.
async fn produce_input(bootstrap: String, pace: Duration) {
    let client = ClientBuilder::new(&bootstrap).build_tokio().await.unwrap();
    let producer = client.producer();
    let mut deliveries = Vec::new();
    for i in 0..PER_PARTITION {
        for p in 0..PARTITIONS {
            deliveries
                .push(producer.send(ProducerRecord::new(IN, format!("p{p}-{i}")).partition(p)));
        }
        tokio::time::sleep(pace).await;
    }
    for d in deliveries {
        d.await.unwrap();
    }
    client.close().await;
}

/// One member running the README's loop until `stop`: a transaction per batch,
/// committed before asking for more records, and after an abort (every fourth
/// transaction on purpose, and any that fails) a rewind to what the group
/// committed. Returns how many transactions it committed and aborted.
async fn member(
    bootstrap: String,
    protocol: GroupProtocol,
    id: usize,
    stop: Arc<AtomicBool>,
) -> Result<(usize, usize), ClientError> {
    let client = ClientBuilder::new(&bootstrap)
        .group_id(GROUP)
        .configure(move |c| {
            c.producer.transactional_id = Some(format!("enricher-{id}"));
            c.producer.linger = Duration::from_millis(2);
            c.consumer.group_protocol = protocol;
            c.consumer.enable_auto_commit = false;
            c.consumer.isolation = IsolationLevel::ReadCommitted;
            c.consumer.auto_offset_reset = OffsetReset::Earliest;
            c.consumer.session_timeout = Duration::from_secs(3);
            c.consumer.heartbeat_interval = Duration::from_millis(200);
            c.consumer.rebalance_timeout = Duration::from_secs(10);
        })
        .build_tokio()
        .await?;
    let producer = client.producer();
    producer.init_transactions().await?;
    let mut consumer = client.consumer();
    consumer.subscribe([IN])?;
    let (mut transactions, mut committed, mut aborted) = (0, 0, 0);
    while !stop.load(Ordering::Relaxed) {
        // A bounded wait, so that the member sees `stop`; dropping the wait
        // cancels it and loses nothing.
        let Ok(batch) =
            tokio::time::timeout(Duration::from_millis(100), consumer.recv_batch()).await
        else {
            continue;
        };
        let batch = batch?;
        if batch.is_empty() {
            continue;
        }
        producer.begin_transaction().await?;
        let mut next = BTreeMap::new();
        for r in &batch {
            let value =
                String::from_utf8_lossy(r.record.value().unwrap_or_default()).to_uppercase();
            let _delivery = producer.send(ProducerRecord::new(OUT, value).partition(r.partition));
            next.insert(
                TopicPartition::new(r.topic.clone(), r.partition),
                r.record.offset + 1,
            );
        }
        transactions += 1;
        let sent = producer
            .send_offsets_to_transaction(GROUP, next.into_iter().collect())
            .await;
        let planned_abort = transactions % 4 == 0;
        if sent.is_err() || planned_abort || producer.commit_transaction().await.is_err() {
            producer.abort_transaction().await?;
            for tp in consumer.assignment() {
                consumer.seek(tp, Offset::Committed)?;
            }
            aborted += 1;
        } else {
            committed += 1;
        }
    }
    consumer.close().await?;
    client.close().await;
    Ok((committed, aborted))
}

/// The group's committed offset of every input partition (-1: none).
async fn committed(client: &kafka_sansio::runtime::Client) -> Vec<i64> {
    let tps = (0..PARTITIONS)
        .map(|p| TopicPartition::new(IN, p))
        .collect();
    client
        .fetch_committed(GROUP, tps)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.offset.unwrap())
        .collect()
}

/// Every value of `OUT` as a read_committed reader sees it, partition by
/// partition.
async fn read_committed(client: &kafka_sansio::runtime::Client) -> Vec<String> {
    let mut values = Vec::new();
    for p in 0..PARTITIONS {
        let partition = client
            .partition_client(OUT, p, UnknownTopicHandling::Error)
            .await
            .unwrap();
        let mut offset = 0;
        loop {
            let options = FetchOptions::default()
                .max_wait(Duration::ZERO)
                .isolation(IsolationLevel::ReadCommitted);
            let out = partition.fetch(offset, options).await.unwrap();
            values.extend(
                out.records
                    .iter()
                    .map(|r| String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned()),
            );
            if out.next_offset >= out.last_stable_offset {
                break;
            }
            offset = out.next_offset;
        }
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_pipeline_writes_every_record_once_through_joins_a_close_and_aborts() {
    pipeline(GroupProtocol::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_pipeline_on_kip848_writes_every_record_once_through_joins_a_close_and_aborts() {
    pipeline(GroupProtocol::Consumer).await;
}

async fn pipeline(protocol: GroupProtocol) {
    let server = server();
    let bootstrap = server.bootstrap();
    // The input arrives over about two seconds while the group changes.
    let input = tokio::spawn(produce_input(bootstrap.clone(), Duration::from_millis(10)));

    let start = |id: usize| {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(member(bootstrap.clone(), protocol, id, stop.clone()));
        (stop, task)
    };
    let first = start(1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = start(2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let third = start(3);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The first member closes (commits nothing on its own, leaves the group);
    // the other two take its partitions from what it committed.
    first.0.store(true, Ordering::Relaxed);
    let first_ended = first.1.await.unwrap().unwrap();
    input.await.unwrap();

    let admin = ClientBuilder::new(&bootstrap).build_tokio().await.unwrap();
    let end = vec![PER_PARTITION as i64; PARTITIONS as usize];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut now_committed = committed(&admin).await;
    while now_committed != end {
        assert!(
            Instant::now() < deadline,
            "the group's committed offsets stopped at {now_committed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        now_committed = committed(&admin).await;
    }
    let (mut transactions, mut aborts) = first_ended;
    for (stop, task) in [second, third] {
        stop.store(true, Ordering::Relaxed);
        let (c, a) = task.await.unwrap().unwrap();
        transactions += c;
        aborts += a;
    }
    assert!(
        transactions > 3 && aborts > 0,
        "{transactions} transactions committed, {aborts} aborted"
    );

    let mut times: BTreeMap<String, usize> = BTreeMap::new();
    for v in read_committed(&admin).await {
        *times.entry(v).or_default() += 1;
    }
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).take(10).collect();
    let missing: Vec<String> = (0..PARTITIONS)
        .flat_map(|p| (0..PER_PARTITION).map(move |i| format!("P{p}-{i}")))
        .filter(|v| !times.contains_key(v))
        .collect();
    assert!(
        twice.is_empty() && missing.is_empty(),
        "in the output more than once (the first ten): {twice:?}; missing ({}): {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(times.len(), PARTITIONS as usize * PER_PARTITION);
    assert_eq!(committed(&admin).await, end);
    admin.close().await;
}

/// A transactional client (records lingering `linger`) with its transaction
/// begun.
async fn in_a_transaction(
    bootstrap: &str,
    linger: Duration,
) -> (
    kafka_sansio::runtime::Client,
    kafka_sansio::runtime::Producer,
) {
    let client = ClientBuilder::new(bootstrap)
        .configure(move |c| {
            c.producer.transactional_id = Some("closing".into());
            c.producer.linger = linger;
        })
        .build_tokio()
        .await
        .unwrap();
    let producer = client.producer();
    producer.init_transactions().await.unwrap();
    producer.begin_transaction().await.unwrap();
    (client, producer)
}

/// Another client, and a read of `OUT`'s partition 0 through it.
async fn reader_of_out(
    bootstrap: &str,
) -> (
    kafka_sansio::runtime::Client,
    kafka_sansio::runtime::PartitionClient,
) {
    let reader = ClientBuilder::new(bootstrap).build_tokio().await.unwrap();
    let out = reader
        .partition_client(OUT, 0, UnknownTopicHandling::Error)
        .await
        .unwrap();
    (reader, out)
}

/// A transactional client with three records written in its transaction; and a
/// read_committed fetch of them from another client.
async fn three_in_a_transaction(
    bootstrap: &str,
) -> (
    kafka_sansio::runtime::Client,
    kafka_sansio::runtime::Producer,
    kafka_sansio::runtime::Client,
    kafka_sansio::runtime::PartitionClient,
) {
    let (client, producer) = in_a_transaction(bootstrap, Duration::from_millis(5)).await;
    for i in 0..3 {
        producer
            .send(ProducerRecord::new(OUT, format!("open-{i}")).partition(0))
            .await
            .unwrap();
    }
    let (reader, out) = reader_of_out(bootstrap).await;
    let before = read_committed_from(&out).await;
    assert_eq!(
        (before.last_stable_offset, before.high_watermark),
        (0, 3),
        "the open transaction holds the last stable offset back"
    );
    (client, producer, reader, out)
}

async fn read_committed_from(
    out: &kafka_sansio::runtime::PartitionClient,
) -> kafka_sansio::client::FetchOutput {
    let options = FetchOptions::default()
        .max_wait(Duration::ZERO)
        .isolation(IsolationLevel::ReadCommitted);
    out.fetch(0, options).await.unwrap()
}

/// Waits (5 s at most) until the transaction's marker is written and returns
/// the values a read_committed reader then reads.
async fn after_the_marker(out: &kafka_sansio::runtime::PartitionClient) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let after = read_committed_from(out).await;
        if after.last_stable_offset == after.high_watermark {
            assert_eq!(after.high_watermark, 4, "three records and a marker");
            return after
                .records
                .iter()
                .map(|r| String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned())
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "the transaction is still open after the close: {after:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client closed with its transaction open aborts it, as Java's and
/// librdkafka's close do: a read_committed reader of its partition goes on at
/// once instead of waiting for the coordinator's transaction timeout (60 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_with_a_transaction_open_aborts_it() {
    let server = server();
    let (client, _producer, reader, out) = three_in_a_transaction(&server.bootstrap()).await;
    client.close().await;
    assert_eq!(after_the_marker(&out).await, Vec::<String>::new());
    reader.close().await;
}

/// A commit whose future the application dropped is still being made when the
/// client closes (its records still lingering in the producer): the close lets it
/// end, and the records are committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_during_a_commit_lets_it_end() {
    let server = server();
    let bootstrap = server.bootstrap();
    let (client, producer) = in_a_transaction(&bootstrap, Duration::from_millis(200)).await;
    let sent: Vec<_> = (0..3)
        .map(|i| producer.send(ProducerRecord::new(OUT, format!("open-{i}")).partition(0)))
        .collect();
    // The commit starts, sending what lingers; its future is dropped before it
    // ends, and the client closes at once.
    let _ = futures_lite::future::poll_once(producer.commit_transaction()).await;
    client.close().await;
    for d in sent {
        d.await.unwrap();
    }
    let (reader, out) = reader_of_out(&bootstrap).await;
    assert_eq!(after_the_marker(&out).await, ["open-0", "open-1", "open-2"]);
    reader.close().await;
}
