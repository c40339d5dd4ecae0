//! The client facades (tokio, smol, blocking) over real sockets, against the
//! simulated cluster served on loopback: the same calls work under every runtime.
#![cfg(all(
    feature = "sim",
    feature = "tokio",
    feature = "smol",
    feature = "blocking"
))]
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use std::time::Duration;

use kafka_sansio::client::{ClientError, FetchOptions, OffsetSpec, Record, UnknownTopicHandling};
use kafka_sansio::records::Compression;
use kafka_sansio::runtime::ClientBuilder;
use kafka_sansio::sim::ClusterConfig;
use kafka_sansio::sim_server::{BackgroundServer, serve};

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn cluster(brokers: usize) -> ClusterConfig {
    init_logs();
    ClusterConfig {
        brokers,
        base_port: 0,
        auto_create_topics: false,
        ..ClusterConfig::default()
    }
}

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::new(format!("value-{i}"))
                .key(format!("key-{i}"))
                .header("n", i.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_facade_creates_produces_fetches_and_survives_a_leader_crash() {
    let server = serve(cluster(3)).await.unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .client_id("tokio-test")
        .build_tokio()
        .await
        .unwrap();
    client.create_topic("t", 2, 3).await.unwrap();
    let err = client.create_topic("t", 2, 3).await.unwrap_err();
    assert_eq!(
        err.error_code(),
        Some(kafka_sansio::messages::ErrorCode::TOPIC_ALREADY_EXISTS)
    );

    let partition = client
        .partition_client("t", 1, UnknownTopicHandling::Error)
        .await
        .unwrap();
    let offsets = partition
        .produce(records(100), Compression::Lz4)
        .await
        .unwrap();
    assert_eq!(offsets, (0..100).collect::<Vec<_>>());
    let (fetched, hwm) = partition
        .fetch_records(0, 1..10_000_000, 100)
        .await
        .unwrap();
    assert_eq!(hwm, 100);
    assert_eq!(fetched.len(), 100);
    assert_eq!(fetched[42].key(), Some(&b"key-42"[..]));
    assert_eq!(fetched[42].value(), Some(&b"value-42"[..]));
    assert!(
        fetched[42].timestamp > 1_600_000_000_000,
        "the facade stamps the wall clock"
    );
    assert_eq!(partition.get_offset(OffsetSpec::Latest).await.unwrap(), 100);

    // The leader crashes: the same partition client follows the new leader.
    let leader = server
        .with_cluster(|c, _| c.partition_leader("t", 1))
        .unwrap();
    server.with_cluster(|c, now| c.crash_broker(leader, now));
    let offsets = partition
        .produce(records(10), Compression::None)
        .await
        .unwrap();
    assert_eq!(offsets[0], 100);
    let (fetched, _) = partition
        .fetch_records(95, 1..10_000_000, 100)
        .await
        .unwrap();
    assert_eq!(fetched.len(), 15);

    assert_eq!(partition.delete_records(50, 5_000).await.unwrap(), 50);
    assert_eq!(
        partition.get_offset(OffsetSpec::Earliest).await.unwrap(),
        50
    );

    let topics = client.list_topics().await.unwrap();
    assert_eq!(topics.iter().map(|t| &*t.name).collect::<Vec<_>>(), ["t"]);
    let cluster = client.describe_cluster().await.unwrap();
    assert_eq!(
        cluster.brokers.len(),
        2,
        "the crashed broker is gone from metadata"
    );

    let missing = client
        .partition_client("nope", 0, UnknownTopicHandling::Error)
        .await
        .unwrap_err();
    assert_eq!(missing, ClientError::UnknownTopic("nope".into()));

    let stats = client.stats().await.unwrap();
    assert!(stats.brokers.iter().map(|b| b.requests).sum::<u64>() > 5);
    assert!(stats.brokers.iter().all(|b| b.bytes_sent > 0));

    client.close().await;
    assert_eq!(client.list_topics().await.unwrap_err(), ClientError::Closed);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_call_cancels_it_and_the_client_stays_usable() {
    let server = serve(cluster(1)).await.unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .build_tokio()
        .await
        .unwrap();
    client.create_topic("t", 1, 1).await.unwrap();
    let partition = client
        .partition_client("t", 0, UnknownTopicHandling::Error)
        .await
        .unwrap();
    // A fetch waiting for data that never comes, abandoned after 50 ms.
    let waiting = partition.fetch_records(0, 1_000..1_000_000, 10_000);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), waiting)
            .await
            .is_err()
    );
    // Many produces dropped at random points, then one awaited.
    for i in 0..50u64 {
        let p = partition.clone();
        let call = tokio::spawn(async move { p.produce(records(3), Compression::None).await });
        tokio::time::sleep(Duration::from_micros(i * 37 % 500)).await;
        call.abort();
    }
    let offsets = partition
        .produce(records(1), Compression::None)
        .await
        .unwrap();
    let (fetched, _) = partition
        .fetch_records(0, 1..10_000_000, 100)
        .await
        .unwrap();
    assert_eq!(
        fetched.last().unwrap().offset,
        offsets[0],
        "every batch is whole: nothing half-written"
    );
    assert!(fetched.len() % 3 == 1);
    server.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_bootstrap_fails_at_build_within_the_connect_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener); // nothing listens there now
    let started = std::time::Instant::now();
    let err = ClientBuilder::new(&format!("127.0.0.1:{port}"))
        .connect_timeout(Duration::from_secs(1))
        .build_tokio()
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let ClientError::Timeout {
        last_error: Some(last),
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert!(matches!(**last, ClientError::Connection(_)), "{err}");
    let bad = ClientBuilder::new("no-port-here")
        .build_tokio()
        .await
        .unwrap_err();
    assert!(matches!(bad, ClientError::InvalidArgument(_)));
}

#[test]
fn smol_facade_runs_on_async_io() {
    let server = BackgroundServer::start(cluster(2)).unwrap();
    let (client, driver) = ClientBuilder::new(&server.bootstrap())
        .build_smol()
        .unwrap();
    let test = async move {
        client.create_topic("s", 1, 2).await.unwrap();
        let p = client
            .partition_client("s", 0, UnknownTopicHandling::Error)
            .await
            .unwrap();
        let offsets = p.produce(records(20), Compression::Zstd).await.unwrap();
        let (fetched, hwm) = p
            .fetch_records(offsets[0], 1..1_000_000, 100)
            .await
            .unwrap();
        assert_eq!((fetched.len(), hwm), (20, 20));
        let lent = p
            .fetch_record_set(offsets[5], FetchOptions::default())
            .await
            .unwrap();
        let mut reader = lent.records.reader();
        let mut n = 0;
        while let Some(r) = reader.next_ref() {
            let r = r.unwrap();
            assert_eq!(
                (r.offset, r.value()),
                (fetched[5 + n].offset, fetched[5 + n].value())
            );
            n += 1;
        }
        assert_eq!((n, lent.next_offset), (15, 20));
        client.close().await;
    };
    async_io::block_on(futures_lite::future::zip(driver, test));
    server.shutdown();
}

#[test]
fn blocking_facade_needs_no_runtime() {
    let server = BackgroundServer::start(cluster(2)).unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .build_blocking()
        .unwrap();
    client.create_topic("b", 3, 2).unwrap();
    let threads: Vec<_> = (0..3)
        .map(|partition| {
            let client = client.clone();
            std::thread::spawn(move || {
                let p = client
                    .partition_client("b", partition, UnknownTopicHandling::Error)
                    .unwrap();
                for _ in 0..5 {
                    p.produce(records(10), Compression::Snappy).unwrap();
                }
                // Lent records, from the middle of the second batch.
                let lent = p.fetch_record_set(15, FetchOptions::default()).unwrap();
                let mut reader = lent.records.reader();
                let mut offsets = Vec::new();
                while let Some(r) = reader.next_ref() {
                    offsets.push(r.unwrap().offset);
                }
                assert_eq!(offsets, (15..50).collect::<Vec<_>>());
                p.get_offset(OffsetSpec::Latest).unwrap()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 50);
    }
    let described = client
        .describe_topics(vec!["b".into(), "none".into()])
        .unwrap();
    assert_eq!(described.len(), 1);
    assert_eq!(described[0].partitions.len(), 3);
    client.close();
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_facade_sends_without_waiting_and_reports_each_record() {
    use kafka_sansio::client::ProducerRecord;
    let server = serve(cluster(3)).await.unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(|c| c.producer.linger = Duration::from_millis(5))
        .build_tokio()
        .await
        .unwrap();
    client.create_topic("p", 4, 3).await.unwrap();
    let producer = client.producer();
    let futures: Vec<_> = (0..5000)
        .map(|i| {
            producer.send(ProducerRecord::new("p", format!("v{i}")).key(format!("k{}", i % 100)))
        })
        .collect();
    // Dropping some futures does not cancel their records.
    let kept: Vec<_> = futures
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 10 != 0)
        .map(|(_, f)| f)
        .collect();
    producer.flush().await.unwrap();
    let mut per_partition = std::collections::BTreeMap::<i32, usize>::new();
    for f in kept {
        let m = f.await.unwrap();
        *per_partition.entry(m.partition).or_default() += 1;
    }
    assert_eq!(per_partition.values().sum::<usize>(), 4500);
    let mut total = 0;
    for p in 0..4 {
        let pc = client
            .partition_client("p", p, UnknownTopicHandling::Error)
            .await
            .unwrap();
        total += pc.get_offset(OffsetSpec::Latest).await.unwrap();
    }
    assert_eq!(total, 5000, "the dropped futures' records were written too");
    client.close().await;
    server.shutdown().await;
}

/// The first records of an idempotent producer, flushed at once with nothing else
/// going on in the client (their topic's metadata already known), are delivered:
/// the InitProducerId they need is sent at once. It used to wait for a timer that
/// never came (flush took linger's away), so the records hung until their delivery
/// timeout; the CLI's `produce` met it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_first_records_flushed_at_once_are_delivered() {
    use kafka_sansio::client::ProducerRecord;
    let server = serve(cluster(3)).await.unwrap();
    server
        .with_cluster(|c, _| c.create_topic("first", 3, 3))
        .unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .build_tokio()
        .await
        .unwrap();
    // The topic's metadata is known, so the record is routed at once and the
    // producer id is the only thing missing.
    assert_eq!(
        client
            .describe_topics(vec!["first".into()])
            .await
            .unwrap()
            .len(),
        1
    );
    // A moment with nothing going on, as when a tool waits for its input.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let producer = client.producer();
    let deliveries = producer.send_batch(vec![
        ProducerRecord::new("first", "1").key("a"),
        ProducerRecord::new("first", "2").key("b"),
    ]);
    // Flushing at once takes linger's timer away: nothing but the producer id
    // request itself can move the records now.
    tokio::time::timeout(Duration::from_secs(20), producer.flush())
        .await
        .expect("flush did not end within 20 s")
        .unwrap();
    for delivery in deliveries {
        let meta = tokio::time::timeout(Duration::from_secs(20), delivery)
            .await
            .expect("the first idempotent records were not delivered within 20 s")
            .unwrap();
        assert!(meta.offset.is_some());
    }
    client.close().await;
    server.shutdown().await;
}

/// A send after `close` fails at once with `Closed`; every record sent before it
/// gets exactly one report (written, or `Closed` if it was still buffered); and a
/// client dropped with deliveries outstanding ends them instead of leaving them
/// waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_sends_after_close_are_refused_and_none_before_it_hang() {
    use kafka_sansio::client::{ClientError, ProducerRecord};
    let server = serve(cluster(1)).await.unwrap();
    server
        .with_cluster(|c, _| c.create_topic("c", 1, 1))
        .unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(|c| c.producer.linger = Duration::from_secs(60))
        .build_tokio()
        .await
        .unwrap();
    let producer = client.producer();
    let before: Vec<_> = (0..100)
        .map(|i| producer.send(ProducerRecord::new("c", format!("{i}"))))
        .collect();
    client.close().await;
    let after = producer.send(ProducerRecord::new("c", "late"));
    let refused = tokio::time::timeout(Duration::from_secs(5), after)
        .await
        .expect("a send after close must fail at once");
    assert_eq!(refused, Err(ClientError::Closed));
    for d in before {
        let r = tokio::time::timeout(Duration::from_secs(5), d)
            .await
            .expect("a record sent before close must end when the client closes");
        // Lingering a minute, nothing was sent: each one fails with Closed.
        assert_eq!(r, Err(ClientError::Closed));
    }

    // Dropped rather than closed: the driver stops and ends what is outstanding.
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(|c| c.producer.linger = Duration::from_secs(60))
        .build_tokio()
        .await
        .unwrap();
    let pending = client.producer().send(ProducerRecord::new("c", "x"));
    drop(client);
    let r = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("a record of a dropped client must not wait for ever");
    assert_eq!(r, Err(ClientError::Closed));
    server.shutdown().await;
}

/// A broker that stops reading leaves bytes the client wrote unsent; the client
/// gives up on them when their request times out, and `close` ends within that
/// deadline too instead of waiting for the broker to read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_by_its_deadline_when_a_broker_stops_reading() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = serve(cluster(1)).await.unwrap();
    server
        .with_cluster(|c, _| c.create_topic("t", 1, 1))
        .unwrap();
    // A proxy in front of the broker that can stop reading what the client sends
    // (with a small receive buffer, so that little fits in it).
    let proxy = tokio::net::TcpSocket::new_v4().unwrap();
    proxy.set_recv_buffer_size(16 * 1024).unwrap();
    proxy.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let proxy = proxy.listen(16).unwrap();
    let proxy_port = proxy.local_addr().unwrap().port();
    let broker = server.addrs()[0];
    server
        .with_cluster(|c, _| c.set_advertised_port(0, proxy_port))
        .unwrap();
    let stalled = Arc::new(AtomicBool::new(false));
    let stall = stalled.clone();
    tokio::spawn(async move {
        while let Ok((from_client, _)) = proxy.accept().await {
            let to_broker = tokio::net::TcpStream::connect(broker).await.unwrap();
            let (mut client_read, mut client_write) = from_client.into_split();
            let (mut broker_read, mut broker_write) = to_broker.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut broker_read, &mut client_write).await;
            });
            let stall = stall.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                loop {
                    if stall.load(Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    let n = match client_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if broker_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let request_timeout = Duration::from_secs(1);
    let client = ClientBuilder::new(&format!("127.0.0.1:{proxy_port}"))
        .request_timeout(request_timeout)
        .configure(|c| c.connection.max_in_flight = 32)
        .build_tokio()
        .await
        .unwrap();
    let p = client
        .partition_client("t", 0, UnknownTopicHandling::Error)
        .await
        .unwrap();
    p.produce(records(3), Compression::None).await.unwrap();
    stalled.store(true, Ordering::SeqCst);
    // Far more than the sockets between client and broker hold.
    let sends: Vec<_> = (0..32)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move {
                let big = vec![Record::new(vec![7u8; 1000 << 10])];
                p.produce(big, Compression::None).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for send in &sends {
        assert!(!send.is_finished(), "the broker reads nothing");
    }
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), client.close())
        .await
        .expect("close must not wait for a broker that does not read");
    let took = started.elapsed();
    assert!(
        took < request_timeout + Duration::from_millis(900),
        "close took {took:?}"
    );
    for send in sends {
        let result = send.await.unwrap();
        assert!(
            result.is_err(),
            "never written, so not produced: {result:?}"
        );
    }
    server.shutdown().await;
}

/// With a buffer far smaller than what is sent, records wait for room in the
/// driver and still go out in send order, each reported once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_records_waiting_for_buffer_room_keep_their_order() {
    use kafka_sansio::client::ProducerRecord;
    let server = serve(cluster(1)).await.unwrap();
    server
        .with_cluster(|c, _| c.create_topic("b", 2, 1))
        .unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(|c| {
            c.producer.buffer_max_bytes = 4 * 1024;
            c.producer.batch_max_bytes = 2 * 1024;
            c.producer.linger = Duration::from_millis(1);
        })
        .build_tokio()
        .await
        .unwrap();
    let producer = client.producer();
    let n = 3000;
    let futures: Vec<_> = (0..n)
        .map(|i| producer.send(ProducerRecord::new("b", format!("value {i:06}")).partition(i % 2)))
        .collect();
    producer.flush().await.unwrap();
    let mut next = [0i64; 2];
    for (i, f) in futures.into_iter().enumerate() {
        let m = f.await.unwrap();
        assert_eq!(m.partition, (i % 2) as i32);
        assert_eq!(m.offset, Some(next[i % 2]), "record {i} out of send order");
        next[i % 2] += 1;
    }
    assert_eq!(next, [1500, 1500]);
    client.close().await;
    server.shutdown().await;
}

/// Records handed over in a `RecordBuffer` are written as they were filled: keys,
/// null keys and values, headers, pinned partitions, their own timestamps or the
/// wall clock's, in order with records sent one by one before and after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_buffer_is_written_as_it_was_filled_in_send_order() {
    use kafka_sansio::client::{BorrowedRecord, ProducerRecord, RecordBuffer, RecordHeader};
    let server = serve(cluster(1)).await.unwrap();
    server
        .with_cluster(|c, _| c.create_topic("rb", 2, 1))
        .unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .build_tokio()
        .await
        .unwrap();
    let producer = client.producer();
    let headers = [
        RecordHeader {
            key: "h".into(),
            value: Some("1".into()),
        },
        RecordHeader {
            key: "null".into(),
            value: None,
        },
    ];
    let before = producer.send(ProducerRecord::new("rb", "before").partition(0));
    let mut buffer = RecordBuffer::with_capacity(4, 64);
    let mut scratch = Vec::new();
    for i in 0..200u32 {
        // One scratch buffer for every value: the buffer keeps copies.
        scratch.clear();
        scratch.extend_from_slice(format!("value {i}").as_bytes());
        let key = i.to_be_bytes();
        let mut r = BorrowedRecord::new("rb", &scratch).partition((i % 2) as i32);
        match i % 4 {
            0 => r = r.key(&key),
            1 => r.value = None,
            2 => {
                r = r
                    .headers(&headers)
                    .timestamp(1_600_000_000_000 + i64::from(i))
            }
            _ => {}
        }
        buffer.push(r);
    }
    assert_eq!(buffer.len(), 200);
    let batch = producer.send_buffer(buffer);
    let after = producer.send(ProducerRecord::new("rb", "after").partition(0));
    assert_eq!(before.await.unwrap().offset, Some(0));
    let results = batch.await;
    assert_eq!(after.await.unwrap().offset, Some(101));
    for (i, r) in results.iter().enumerate() {
        let m = r.as_ref().unwrap();
        assert_eq!(m.partition, (i % 2) as i32);
        let expected = if i % 2 == 0 { 1 + i / 2 } else { i / 2 };
        assert_eq!(m.offset, Some(expected as i64), "record {i}");
    }
    for p in 0..2 {
        let partition = client
            .partition_client("rb", p, UnknownTopicHandling::Error)
            .await
            .unwrap();
        let (fetched, _) = partition
            .fetch_records(0, 1..10_000_000, 1000)
            .await
            .unwrap();
        let fetched: Vec<_> = fetched
            .into_iter()
            .filter(|r| !matches!(r.value(), Some(b"before" | b"after")))
            .collect();
        assert_eq!(fetched.len(), 100);
        for (j, r) in fetched.iter().enumerate() {
            let i = (2 * j) as u32 + p as u32;
            let value = format!("value {i}");
            assert_eq!(
                r.key(),
                i.is_multiple_of(4).then_some(&i.to_be_bytes()[..]),
                "record {i}"
            );
            assert_eq!(
                r.value(),
                (i % 4 != 1).then_some(value.as_bytes()),
                "record {i}"
            );
            let got: Vec<_> = r.headers().map(|h| (h.key, h.value)).collect();
            if i % 4 == 2 {
                assert_eq!(got, [(&b"h"[..], Some(&b"1"[..])), (&b"null"[..], None)]);
                assert_eq!(r.timestamp, 1_600_000_000_000 + i64::from(i));
            } else {
                assert!(got.is_empty(), "record {i}");
                assert!(r.timestamp > 1_700_000_000_000, "the wall clock's time");
            }
        }
    }
    client.close().await;
    server.shutdown().await;
}

/// Keys and values of sizes around the one from which the producer keeps an owned
/// record's bytes as its handle instead of copying them (1 KiB), mixed in one
/// partition, sent one by one before the topic's metadata is known (they wait for
/// it), then in a batch and in a `send_all`: each is written as it was sent, in
/// send order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_small_values_are_written_as_sent_in_send_order() {
    use kafka_sansio::client::ProducerRecord;
    const SIZES: [usize; 8] = [0, 16, 100, 1023, 1024, 1025, 10 * 1024, 100 * 1024];
    let key = |i: usize| -> Vec<u8> {
        let len = SIZES[(i / 3) % 7]; // keys up to 10 KiB
        (0..len).map(|j| (i * 7 + j) as u8).collect()
    };
    let value = |i: usize| -> Vec<u8> {
        let len = SIZES[i % SIZES.len()];
        (0..len).map(|j| (i + j) as u8).collect()
    };
    let record = |i: usize| {
        let r = ProducerRecord::new("big", value(i)).partition(0);
        if i % 5 == 4 { r } else { r.key(key(i)) }
    };
    let server = serve(cluster(1)).await.unwrap();
    server
        .with_cluster(|c, _| c.create_topic("big", 1, 1))
        .unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .build_tokio()
        .await
        .unwrap();
    let producer = client.producer();
    let one_by_one: Vec<_> = (0..48).map(|i| producer.send(record(i))).collect();
    let batch = producer.send_batch((48..96).map(record).collect());
    let all = producer.send_all((96..144).map(record).collect());
    let mut offsets = Vec::new();
    for d in one_by_one.into_iter().chain(batch) {
        offsets.push(d.await.unwrap().offset.unwrap());
    }
    for r in all.await {
        offsets.push(r.unwrap().offset.unwrap());
    }
    assert_eq!(offsets, (0..144).collect::<Vec<i64>>());
    let partition = client
        .partition_client("big", 0, UnknownTopicHandling::Error)
        .await
        .unwrap();
    let mut next = 0;
    while next < 144 {
        let (fetched, _) = partition
            .fetch_records(next, 1..10_000_000, 1000)
            .await
            .unwrap();
        for r in fetched {
            let i = usize::try_from(r.offset).unwrap();
            assert_eq!(r.offset, next, "in send order");
            assert_eq!(r.value(), Some(&value(i)[..]), "record {i}'s value");
            let expected = (i % 5 != 4).then(|| key(i));
            assert_eq!(r.key(), expected.as_deref(), "record {i}'s key");
            next += 1;
        }
    }
    client.close().await;
    server.shutdown().await;
}

#[test]
fn blocking_producer_waits_for_each_delivery() {
    use kafka_sansio::client::ProducerRecord;
    let server = BackgroundServer::start(cluster(1)).unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .build_blocking()
        .unwrap();
    client.create_topic("bp", 1, 1).unwrap();
    let producer = client.producer();
    let deliveries = producer.send_batch(
        (0..100)
            .map(|i| ProducerRecord::new("bp", format!("{i}")))
            .collect(),
    );
    producer.flush().unwrap();
    let offsets: Vec<i64> = deliveries
        .into_iter()
        .map(|d| d.wait().unwrap().offset.unwrap())
        .collect();
    assert_eq!(offsets, (0..100).collect::<Vec<_>>());
    client.close();
    server.shutdown();
}

/// Waits until `count` reaches `n` (or fails after 10 s), then checks that it stays
/// there a while: a sender waiting for room stopped at the budget.
fn settles_at(count: &std::sync::atomic::AtomicUsize, n: usize) {
    use std::sync::atomic::Ordering::SeqCst;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count.load(SeqCst) < n && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        count.load(SeqCst),
        n,
        "the sender did not stop at the budget"
    );
}

/// 100-byte values: 125 bytes of the producer's budget each, so 32 fit in 4096.
fn padded(i: usize) -> String {
    format!("{i:0100}")
}

fn small_budget(c: &mut kafka_sansio::client::ClientConfig) {
    c.producer.buffer_max_bytes = 4096;
    c.producer.batch_max_bytes = 2048;
    c.producer.linger = Duration::from_millis(1);
}

/// A sender that waits for room never has more than the producer's budget handed
/// over: while nothing can be delivered (its topic does not exist yet) it stops at
/// the budget and `try_send` gives a record back whole; once the topic exists the
/// sender goes on, and every record is written once, in send order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_waiting_for_room_holds_at_most_the_budget() {
    use kafka_sansio::client::ProducerRecord;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let server = serve(cluster(1)).await.unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(small_budget)
        .build_tokio()
        .await
        .unwrap();
    let producer = client.producer();
    let handed = Arc::new(AtomicUsize::new(0));
    let sender = tokio::spawn({
        let (producer, handed) = (producer.clone(), handed.clone());
        async move {
            let mut deliveries = Vec::new();
            for i in 0..200 {
                let record = ProducerRecord::new("late", padded(i)).partition(0);
                deliveries.push(producer.send_when_room(record).await);
                handed.fetch_add(1, SeqCst);
            }
            deliveries
        }
    });
    let watched = handed.clone();
    tokio::task::spawn_blocking(move || settles_at(&watched, 32))
        .await
        .unwrap();
    let full = producer
        .try_send(ProducerRecord::new("late", padded(7)).partition(0))
        .unwrap_err();
    assert_eq!((full.used(), full.limit()), (32 * 125, 4096));
    assert_eq!(
        full.into_record().value.as_deref(),
        Some(padded(7).as_bytes())
    );

    server
        .with_cluster(|c, _| c.create_topic("late", 1, 1))
        .unwrap();
    let deliveries = tokio::time::timeout(Duration::from_secs(30), sender)
        .await
        .unwrap()
        .unwrap();
    for (i, d) in deliveries.into_iter().enumerate() {
        assert_eq!(d.await.unwrap().offset, Some(i as i64), "record {i}");
    }
    // Everything delivered: the whole budget is free again.
    assert!(
        producer
            .try_send(ProducerRecord::new("late", padded(0)).partition(0))
            .is_ok()
    );
    client.close().await;
    server.shutdown().await;
}

/// Many senders waiting for room at once all get through once room comes, each
/// record written once, and one that gives up waiting leaves the line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_senders_waiting_for_room_all_get_through() {
    use kafka_sansio::client::ProducerRecord;
    let server = serve(cluster(1)).await.unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(small_budget)
        .build_tokio()
        .await
        .unwrap();
    let producer = client.producer();
    let record = |i: usize| ProducerRecord::new("late", padded(i)).partition(0);
    // The topic does not exist yet: 32 records fill the budget and stay.
    let mut first = Vec::new();
    for i in 0..32 {
        first.push(producer.send_when_room(record(i)).await);
    }
    let waiting = |expected: usize| {
        let refused = producer.try_send(record(999)).unwrap_err();
        refused.waiting_senders() == expected
    };
    let mut senders = Vec::new();
    for i in 32..96 {
        let producer = producer.clone();
        senders.push(tokio::spawn(async move {
            let send = producer.send_when_room(record(i));
            if i == 40 {
                // Gives up while in line.
                let gave_up = tokio::time::timeout(Duration::from_millis(100), send).await;
                assert!(gave_up.is_err(), "no room came for it");
                None
            } else {
                Some(send.await)
            }
        }));
        // In line before the next one starts.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !waiting(i - 31) {
            assert!(
                std::time::Instant::now() < deadline,
                "sender {i} never waited"
            );
            tokio::task::yield_now().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(waiting(63), "the sender that gave up left the line");

    server
        .with_cluster(|c, _| c.create_topic("late", 1, 1))
        .unwrap();
    let mut offsets = Vec::new();
    for d in first {
        offsets.push(d.await.unwrap().offset.unwrap());
    }
    for s in senders {
        let handed = tokio::time::timeout(Duration::from_secs(30), s)
            .await
            .expect("every sender in line got through")
            .unwrap();
        if let Some(d) = handed {
            offsets.push(d.await.unwrap().offset.unwrap());
        }
    }
    offsets.sort_unstable();
    let expected: Vec<i64> = (0..95).collect();
    assert_eq!(offsets, expected, "every record written once");
    client.close().await;
    server.shutdown().await;
}

/// A full budget sends what it buffers without waiting out the linger (nothing more
/// can join it until it is delivered), whether the records wait in front of the
/// producer (`send`) or their senders wait for room (`send_when_room`): with a
/// 10-second linger, 200 records through a budget of 32 go in a few round trips
/// (the last ones, which fit, are flushed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_budget_does_not_wait_out_the_linger() {
    full_budget_sends_without_lingering(100, 200 - 32).await;
}

/// As above, with every record sent by `send`: they wait in front of the full
/// producer, and no sender waits for room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_waiting_in_front_of_a_full_producer_do_not_wait_out_the_linger() {
    full_budget_sends_without_lingering(200, 200 - 32).await;
}

/// A flush covers the records handed over before it that were still waiting for
/// room when it began: they go without lingering once they are taken in (a flush
/// of more records than the budget holds used to wait out the linger for them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_sends_records_that_waited_for_room_without_lingering() {
    full_budget_sends_without_lingering(200, 0).await;
}

/// 200 records to a producer with a 32-record budget and a 10-second linger: those
/// below `sent_from` through `send`, the rest through `send_when_room`; the first
/// `before_flush` deliveries are awaited before a flush, the rest after it.
async fn full_budget_sends_without_lingering(sent_from: usize, before_flush: usize) {
    use kafka_sansio::client::ProducerRecord;
    let server = serve(cluster(1)).await.unwrap();
    server
        .with_cluster(|c, _| c.create_topic("full", 1, 1))
        .unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(|c| {
            small_budget(c);
            // Batches that never fill: only the linger or a full budget sends them.
            c.producer.batch_max_bytes = 1 << 20;
            c.producer.linger = Duration::from_secs(10);
        })
        .build_tokio()
        .await
        .unwrap();
    let producer = client.producer();
    let record = |i: usize| ProducerRecord::new("full", padded(i)).partition(0);
    let start = std::time::Instant::now();
    let mut deliveries = Vec::new();
    for i in 0..sent_from {
        deliveries.push(producer.send(record(i)));
    }
    for i in sent_from..200 {
        deliveries.push(producer.send_when_room(record(i)).await);
    }
    // All but the last budget's worth can be delivered without a flush; the last
    // records fit, so they linger, as any would, unless flushed.
    let mut offsets = Vec::new();
    let mut deliveries = deliveries.into_iter();
    for d in deliveries.by_ref().take(before_flush) {
        offsets.push(d.await.unwrap().offset.unwrap());
    }
    producer.flush().await.unwrap();
    for d in deliveries {
        offsets.push(d.await.unwrap().offset.unwrap());
    }
    assert_eq!(offsets, (0..200).collect::<Vec<i64>>());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "waited {:?}: the full budget waited out its linger",
        start.elapsed()
    );
    client.close().await;
    server.shutdown().await;
}

/// A record handed over while the driver sleeps until a linger does not wake it,
/// and still lingers from its own send: one to another partition 100 ms after the
/// first waits for the driver's wake-up and goes 300 ms after it was sent, not
/// 300 ms after the driver took it in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_sent_while_the_driver_sleeps_lingers_from_its_own_send() {
    use kafka_sansio::client::ProducerRecord;
    let linger = Duration::from_millis(300);
    let server = serve(cluster(1)).await.unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(|c| c.producer.linger = linger)
        .build_tokio()
        .await
        .unwrap();
    client.create_topic("l", 2, 1).await.unwrap();
    let producer = client.producer();
    let send = |partition| producer.send(ProducerRecord::new("l", "v").partition(partition));
    send(0).await.unwrap(); // the topic's metadata, and nothing buffered
    let start = std::time::Instant::now();
    let first = send(0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second_sent = start.elapsed();
    let second = send(1);
    // It did not wake the driver (asked for them, the driver answers before it
    // takes records in): the producer holds the first record, not the second.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stats = client.stats().await.unwrap();
    let buffered = |p| {
        stats
            .partitions
            .iter()
            .find(|s| &*s.topic == "l" && s.partition == p)
            .map_or(0, |s| s.buffered_records)
    };
    assert_eq!((buffered(0), buffered(1)), (1, 0), "{stats:?}");
    first.await.unwrap();
    let first_lived = start.elapsed();
    second.await.unwrap();
    let second_lived = start.elapsed() - second_sent;
    for lived in [first_lived, second_lived] {
        assert!(
            lived >= linger - Duration::from_millis(5) && lived < linger * 3 / 2,
            "delivered {lived:?} after its send, with a linger of {linger:?} \
             (the first after {first_lived:?}, the second after {second_lived:?})"
        );
    }
    client.close().await;
    server.shutdown().await;
}

/// A batch that fills while the driver sleeps until a long linger goes at once:
/// records waiting for it wake it once they are a batch's worth (here 16 KiB, less
/// than the 64 KiB that wake it with large batches), instead of waiting for the
/// linger it sleeps until.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_filling_while_the_driver_sleeps_goes_without_waiting_out_its_linger() {
    use kafka_sansio::client::ProducerRecord;
    let linger = Duration::from_secs(3);
    let server = serve(cluster(1)).await.unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(|c| {
            c.producer.linger = linger;
            c.producer.batch_max_bytes = 16 << 10;
        })
        .build_tokio()
        .await
        .unwrap();
    client.create_topic("f", 1, 1).await.unwrap();
    let producer = client.producer();
    let send = || producer.send(ProducerRecord::new("f", vec![7u8; 1000]));
    let metadata = send(); // the topic's metadata (a flush ends its linger)
    producer.flush().await.unwrap();
    metadata.await.unwrap();
    let start = std::time::Instant::now();
    let first = send(); // opens a batch: the driver sleeps until its linger
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rest: Vec<_> = (0..40).map(|_| send()).collect(); // 40 KB, 2-3 batches
    first.await.unwrap();
    let took = start.elapsed();
    assert!(
        took < linger / 3,
        "the first batch filled and went after {took:?}, with a linger of {linger:?}"
    );
    producer.flush().await.unwrap();
    for d in rest {
        d.await.unwrap();
    }
    client.close().await;
    server.shutdown().await;
}

/// A record's delivery timeout counts from when it was handed over, also when it
/// waits for room in front of a full producer: records sent while the budget is
/// full (their topic does not exist, so nothing is delivered) fail a timeout after
/// their own send, not a timeout after they found room (later), nor a timeout
/// after an earlier burst that waited with them (sooner: two bursts sent a second
/// apart while others wait do not share the first one's start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_sent_during_a_stall_each_get_their_whole_delivery_timeout() {
    use kafka_sansio::client::ProducerRecord;
    let timeout = Duration::from_secs(2);
    let server = serve(cluster(1)).await.unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(|c| {
            small_budget(c);
            c.producer.delivery_timeout = timeout;
        })
        .build_tokio()
        .await
        .unwrap();
    let producer = client.producer();
    let send = |records: std::ops::Range<usize>| {
        let sent = std::time::Instant::now();
        let deliveries: Vec<_> = records
            .map(|i| producer.send(ProducerRecord::new("never", padded(i)).partition(0)))
            .collect();
        (sent, deliveries)
    };
    // Twice the budget: half of it waits for room until the first half fails.
    let full = send(0..64);
    tokio::time::sleep(timeout / 8).await;
    let early = send(64..96);
    tokio::time::sleep(timeout / 2).await;
    let late = send(96..128);
    for (sent, deliveries) in [full, early, late] {
        for d in deliveries {
            assert!(d.await.is_err());
            let lived = sent.elapsed();
            assert!(
                lived + Duration::from_millis(20) >= timeout
                    && lived < timeout + Duration::from_millis(600),
                "a record failed {lived:?} after it was sent, with a {timeout:?} delivery timeout"
            );
        }
    }
    client.close().await;
    server.shutdown().await;
}

/// The blocking `send_when_room` blocks at the budget and goes on once records are
/// delivered.
#[test]
fn blocking_sender_blocks_at_the_budget() {
    use kafka_sansio::client::ProducerRecord;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let server = BackgroundServer::start(cluster(1)).unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(small_budget)
        .build_blocking()
        .unwrap();
    let producer = client.producer();
    let handed = Arc::new(AtomicUsize::new(0));
    let (done, sent) = std::sync::mpsc::channel();
    std::thread::spawn({
        let (producer, handed) = (producer.clone(), handed.clone());
        move || {
            let deliveries = (0..50)
                .map(|i| {
                    let d = producer
                        .send_when_room(ProducerRecord::new("later", padded(i)).partition(0));
                    handed.fetch_add(1, SeqCst);
                    d
                })
                .collect::<Vec<_>>();
            let _ = done.send(deliveries);
        }
    });
    settles_at(&handed, 32);
    server
        .with_cluster(|c, _| c.create_topic("later", 1, 1))
        .unwrap();
    let offsets: Vec<_> = sent
        .recv_timeout(Duration::from_secs(30))
        .expect("the sender goes on once records are delivered")
        .into_iter()
        .map(|d| d.wait().unwrap().offset.unwrap())
        .collect();
    assert_eq!(offsets, (0..50).collect::<Vec<_>>());
    client.close();
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_stream_reads_what_the_producer_wrote_and_goes_on_after_errors() {
    use futures_lite::StreamExt;
    use kafka_sansio::client::{Offset, OffsetReset, ProducerRecord, TopicPartition};
    let server = serve(cluster(2)).await.unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(|c| c.consumer.auto_offset_reset = OffsetReset::Error)
        .build_tokio()
        .await
        .unwrap();
    client.create_topic("c", 2, 2).await.unwrap();
    let producer = client.producer();
    for i in 0..4000 {
        drop(producer.send(ProducerRecord::new("c", format!("v{i}")).partition(i % 2)));
    }
    producer.flush().await.unwrap();
    let mut consumer = client.consumer();
    consumer
        .assign(
            vec![TopicPartition::new("c", 0), TopicPartition::new("c", 1)],
            Offset::Beginning,
        )
        .unwrap();
    // A partition that does not exist fails on its own; the stream goes on.
    consumer
        .assign(vec![TopicPartition::new("c", 7)], Offset::At(0))
        .unwrap();
    let mut per = [Vec::new(), Vec::new()];
    let mut errors = 0;
    while per[0].len() + per[1].len() < 4000 {
        match tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .unwrap()
            .unwrap()
        {
            Ok(r) => per[r.partition as usize].push(r.record.offset),
            Err(_) => errors += 1,
        }
    }
    assert_eq!(per[0], (0..2000).collect::<Vec<_>>());
    assert_eq!(per[1], (0..2000).collect::<Vec<_>>());
    assert!(errors <= 1, "{errors}");
    client.close().await;
    assert!(
        consumer.next().await.is_none(),
        "the stream ends when the client closes"
    );
    server.shutdown().await;
}

#[test]
fn blocking_consumer_is_an_iterator() {
    use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    let server = BackgroundServer::start(cluster(1)).unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .build_blocking()
        .unwrap();
    client.create_topic("bc", 1, 1).unwrap();
    let producer = client.producer();
    let _ = producer.send_batch(
        (0..300)
            .map(|i| ProducerRecord::new("bc", format!("{i}")))
            .collect(),
    );
    producer.flush().unwrap();
    let mut consumer = client.consumer();
    consumer
        .assign(vec![TopicPartition::new("bc", 0)], Offset::At(100))
        .unwrap();
    let offsets: Vec<i64> = consumer
        .by_ref()
        .take(200)
        .map(|r| r.unwrap().record.offset)
        .collect();
    assert_eq!(offsets, (100..300).collect::<Vec<_>>());
    client.close();
    server.shutdown();
}

/// A blocking consumer's loop that must notice a shutdown flag: `recv_timeout` and
/// `recv_batch_timeout` return within their time when nothing comes, and records that
/// arrive while calls keep timing out are each handed out once, in order (the receive
/// dropped at a timeout keeps its place).
#[test]
fn blocking_consumer_waits_with_a_timeout_and_loses_nothing_when_it_runs_out() {
    use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;
    let server = BackgroundServer::start(cluster(1)).unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(|c| c.consumer.fetch_max_wait = Duration::from_millis(20))
        .build_blocking()
        .unwrap();
    client.create_topic("bt", 1, 1).unwrap();
    let mut consumer = client.consumer();
    consumer
        .assign(vec![TopicPartition::new("bt", 0)], Offset::Beginning)
        .unwrap();
    let started = Instant::now();
    assert!(
        consumer
            .recv_timeout(Duration::from_millis(150))
            .unwrap()
            .is_none()
    );
    assert!(
        consumer
            .recv_batch_timeout(Duration::from_millis(150))
            .unwrap()
            .is_empty()
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(20), "{waited:?}");

    // A producer trickles 400 records in while the consumer polls with short
    // timeouts, most of which run out mid-fetch.
    let done = AtomicBool::new(false);
    let mut got = Vec::new();
    let mut timeouts = 0;
    std::thread::scope(|s| {
        s.spawn(|| {
            let producer = client.producer();
            for i in 0..400 {
                producer
                    .send(ProducerRecord::new("bt", format!("{i}")).partition(0))
                    .wait()
                    .unwrap();
                if i % 40 == 0 {
                    std::thread::sleep(Duration::from_millis(30));
                }
            }
            done.store(true, Ordering::SeqCst);
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while got.len() < 400 && Instant::now() < deadline {
            let batch = if got.len() % 2 == 0 {
                consumer
                    .recv_timeout(Duration::from_millis(3))
                    .unwrap()
                    .into_iter()
                    .collect()
            } else {
                consumer
                    .recv_batch_timeout(Duration::from_millis(3))
                    .unwrap()
            };
            if batch.is_empty() {
                timeouts += 1;
            }
            got.extend(batch.into_iter().map(|r| r.record.offset));
        }
    });
    assert!(done.load(Ordering::SeqCst));
    assert_eq!(got, (0..400).collect::<Vec<_>>());
    assert!(timeouts > 0, "no call ran out of time");
    assert!(
        consumer
            .recv_timeout(Duration::from_millis(50))
            .unwrap()
            .is_none(),
        "nothing is handed out twice"
    );
    client.close();
    assert!(matches!(
        consumer.recv_timeout(Duration::from_secs(5)),
        Err(ClientError::Closed)
    ));
    server.shutdown();
}

/// A producer's first record for a topic the client has not seen yet asks for its
/// metadata at once: it used to wait out the 100 ms minimum interval between
/// refreshes, counted from the bootstrap's, so every new topic's first record took
/// over 100 ms on a local broker.
#[tokio::test(flavor = "current_thread")]
async fn a_new_topics_first_record_does_not_wait_for_the_metadata_debounce() {
    use kafka_sansio::client::ProducerRecord;
    let server = serve(cluster(1)).await.unwrap();
    server
        .with_cluster(|c, _| c.create_topic("fresh", 1, 1))
        .unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(|c| {
            c.metadata_min_interval = Duration::from_secs(30);
            c.producer.linger = Duration::ZERO;
        })
        .build_tokio()
        .await
        .unwrap();
    let producer = client.producer();
    let first = producer.send(ProducerRecord::new("fresh", "1"));
    tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the first record waited for the 30 s debounce")
        .unwrap();
    client.close().await;
    server.shutdown().await;
}

/// The facade's consumer hands out no record of a paused partition, also of those it
/// took from the client before the pause, and hands them out in order after the
/// resume.
#[test]
fn blocking_consumer_holds_a_paused_partitions_records_until_resume() {
    use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    let server = BackgroundServer::start(cluster(1)).unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(|c| c.consumer.fetch_max_wait = Duration::from_millis(20))
        .build_blocking()
        .unwrap();
    client.create_topic("bp", 2, 1).unwrap();
    let producer = client.producer();
    let _ = producer.send_batch(
        (0..200)
            .map(|i| ProducerRecord::new("bp", format!("{i}")).partition(i % 2))
            .collect(),
    );
    producer.flush().unwrap();
    let mut consumer = client.consumer();
    let (p0, p1) = (TopicPartition::new("bp", 0), TopicPartition::new("bp", 1));
    consumer
        .assign(vec![p0.clone(), p1.clone()], Offset::Beginning)
        .unwrap();
    // The first record comes with others of both partitions, taken in one go.
    let first = consumer.recv().unwrap();
    let paused = if first.partition == 0 {
        p1.clone()
    } else {
        p0.clone()
    };
    let mut next = [0i64; 2];
    next[first.partition as usize] = first.record.offset + 1;
    consumer.pause(vec![paused.clone()]).unwrap();
    while let Some(r) = consumer.recv_timeout(Duration::from_millis(300)).unwrap() {
        assert_ne!(
            r.partition, paused.partition,
            "a record of the paused partition"
        );
        assert_eq!(r.record.offset, next[r.partition as usize]);
        next[r.partition as usize] += 1;
    }
    assert_eq!(next[1 - paused.partition as usize], 100);
    assert_eq!(next[paused.partition as usize], 0);
    consumer.resume(vec![paused.clone()]).unwrap();
    for offset in 0..100 {
        let r = consumer
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("a record");
        assert_eq!((r.partition, r.record.offset), (paused.partition, offset));
    }
    client.close();
    server.shutdown();
}

/// A seek made while a receive was cancelled with the driver's answer on its way
/// (a `select!` or a timeout around `recv`) still decides the next record: the
/// answer's records from before the seek are not handed out, and records the
/// driver finds for that poll after the seek are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seek_after_a_cancelled_receive_decides_the_next_record() {
    use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    let server = serve(cluster(1)).await.unwrap();
    server
        .with_cluster(|c, _| c.create_topic("t", 1, 1))
        .unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(|c| c.consumer.fetch_max_wait = Duration::from_millis(20))
        .build_tokio()
        .await
        .unwrap();
    for i in 0..10 {
        client
            .producer()
            .send(ProducerRecord::new("t", format!("{i}")).partition(0))
            .await
            .unwrap();
    }
    let mut consumer = client.consumer();
    let p0 = TopicPartition::new("t", 0);
    consumer
        .assign(vec![p0.clone()], Offset::Beginning)
        .unwrap();
    for round in 0..10 {
        // A receive started and dropped: the consumer asked the driver for records.
        let _ = futures_lite::future::poll_once(consumer.recv()).await;
        // The driver's answer (records from offset 0) is on its way meanwhile.
        tokio::time::sleep(Duration::from_millis(50)).await;
        consumer.seek(p0.clone(), Offset::At(5)).unwrap();
        let r = consumer.recv().await.unwrap();
        assert_eq!(r.record.offset, 5, "round {round}");
        consumer.seek(p0.clone(), Offset::Beginning).unwrap();
    }
    // And a poll that is still waiting in the driver when the seek comes (nothing
    // was there to answer it) is answered with records from after the seek.
    consumer.seek(p0.clone(), Offset::End).unwrap();
    for round in 0..10 {
        let _ = futures_lite::future::poll_once(consumer.recv()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        consumer.seek(p0.clone(), Offset::At(round)).unwrap();
        let r = tokio::time::timeout(Duration::from_secs(5), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("round {round}: no record after the seek"))
            .unwrap();
        assert_eq!(r.record.offset, round, "round {round}");
        consumer.seek(p0.clone(), Offset::End).unwrap();
    }
    client.close().await;
}

/// The consumer facade under what applications do between receives, in a random
/// order from a seed: receives cut short by timeouts (some before, some after the
/// driver answered), seeks, pauses and resumes, unassigns and assigns. Whatever the
/// timing, each record handed out is of an assigned, unpaused partition and is the
/// one its partition's position says: the offset after the last one handed out,
/// or where the last seek or assign put it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_hands_out_what_its_positions_say_through_cancelled_receives_and_moves() {
    use std::collections::{BTreeMap, BTreeSet};

    use kafka_sansio::client::{ConsumedRecord, Offset, ProducerRecord, TopicPartition};
    const PARTITIONS: i32 = 3;
    const PER_PARTITION: i64 = 40;
    let server = serve(cluster(1)).await.unwrap();
    server
        .with_cluster(|c, _| c.create_topic("t", PARTITIONS, 1))
        .unwrap();
    let client = ClientBuilder::new(&server.bootstrap())
        .configure(|c| {
            c.consumer.fetch_max_wait = Duration::from_millis(5);
            c.consumer.fetch_max_bytes = 2_000; // a few records a fetch
        })
        .build_tokio()
        .await
        .unwrap();
    let producer = client.producer();
    let sent: Vec<_> = (0..PARTITIONS)
        .flat_map(|p| (0..PER_PARTITION).map(move |i| (p, i)))
        .map(|(p, i)| producer.send(ProducerRecord::new("t", format!("{p}-{i}")).partition(p)))
        .collect();
    for d in sent {
        d.await.unwrap();
    }

    let tp = |p: i32| TopicPartition::new("t", p);
    let mut consumer = client.consumer();
    consumer
        .assign((0..PARTITIONS).map(tp).collect(), Offset::Beginning)
        .unwrap();
    // The model: each assigned partition's next offset, and the paused ones.
    let mut next: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let mut paused: BTreeSet<i32> = BTreeSet::new();
    let mut seed = 0x5eed_u64;
    let mut random = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut handed = 0;
    let check =
        |r: &ConsumedRecord, next: &mut BTreeMap<i32, i64>, paused: &BTreeSet<i32>, step: usize| {
            let p = r.partition;
            assert!(!paused.contains(&p), "step {step}: a record of paused {p}");
            let want = next.get_mut(&p).unwrap_or_else(|| {
                panic!(
                    "step {step}: a record of unassigned {p} at {}",
                    r.record.offset
                )
            });
            assert_eq!(r.record.offset, *want, "step {step}: partition {p}");
            assert_eq!(
                r.record.value(),
                Some(format!("{p}-{}", r.record.offset).as_bytes())
            );
            *want += 1;
        };
    for step in 0..600 {
        let p = random(PARTITIONS as u64) as i32;
        match random(10) {
            0..=3 => {
                let wait = Duration::from_millis(random(3));
                if let Ok(r) = tokio::time::timeout(wait, consumer.recv()).await {
                    check(&r.unwrap(), &mut next, &paused, step);
                    handed += 1;
                }
            }
            4 => {
                let wait = Duration::from_millis(random(3));
                if let Ok(batch) = tokio::time::timeout(wait, consumer.recv_batch()).await {
                    for r in batch.unwrap() {
                        check(&r, &mut next, &paused, step);
                        handed += 1;
                    }
                }
            }
            5 | 6 if next.contains_key(&p) => {
                let to = random(PER_PARTITION as u64) as i64;
                consumer.seek(tp(p), Offset::At(to)).unwrap();
                next.insert(p, to);
            }
            7 if next.contains_key(&p) => {
                if paused.insert(p) {
                    consumer.pause(vec![tp(p)]).unwrap();
                } else {
                    paused.remove(&p);
                    consumer.resume(vec![tp(p)]).unwrap();
                }
            }
            8 if next.contains_key(&p) => {
                consumer.unassign(vec![tp(p)]).unwrap();
                next.remove(&p);
                paused.remove(&p);
            }
            9 if !next.contains_key(&p) => {
                let to = random(PER_PARTITION as u64) as i64;
                consumer.assign(vec![tp(p)], Offset::At(to)).unwrap();
                next.insert(p, to);
            }
            // Time for the driver to answer a receive that was cut short.
            _ => tokio::time::sleep(Duration::from_millis(random(10))).await,
        }
    }
    assert!(handed > 100, "{handed} records handed out");
    client.close().await;
}
