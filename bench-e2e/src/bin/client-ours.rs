//! kafka-sansio through `runtime::ClientBuilder` and `PartitionClient`.

use kafka_sansio_bench_e2e::measure::{self, Phase};
use kafka_sansio_bench_e2e::ours::producer_record;
use kafka_sansio_bench_e2e::workload::{Reader, VALUE_LEN, Workload, key, send_value_into, value};
use kafka_sansio_bench_e2e::{client_main, runtime};

fn main() {
    client_main(run);
}
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use kafka_sansio::client::{
    BorrowedRecord, ClientConfig, Offset, OffsetReset, Record, RecordBuffer, TopicPartition,
    UnknownTopicHandling,
};
use kafka_sansio::records::Compression;
use kafka_sansio::runtime::{ClientBuilder, Producer};
use kafka_sansio_bench_e2e::workload::{PACED_TOPIC, SEND1_TOPIC, SEND4_TOPIC};

/// `records` records of `value_len`-byte values through `Producer::send`, keeping
/// at most `window` delivery reports outstanding; every one must succeed.
async fn send_all(producer: &Producer, topic: &str, w: &Workload) {
    let (records, window) = (w.records, w.send_window);
    let topic: Arc<str> = topic.into();
    let mut pending = VecDeque::with_capacity(window);
    for i in 0..records {
        pending.push_back(producer.send(producer_record(&topic, i, w.send_value_len)));
        if pending.len() >= window {
            pending.pop_front().unwrap().await.expect("delivery");
        }
    }
    for delivery in pending {
        delivery.await.expect("delivery");
    }
}

/// `records` records through `Producer::send_when_room` from `sender_tasks` tasks
/// at once (each its share, in a row), each keeping its share of `window` delivery
/// reports outstanding; every one must succeed.
async fn send_from_tasks(producer: &Producer, topic: &str, w: &Workload) {
    let topic: Arc<str> = topic.into();
    let tasks = w.sender_tasks as u64;
    let per_task = w.records.div_ceil(tasks);
    let window = (w.send_window / w.sender_tasks).max(1);
    let tasks: Vec<_> = (0..tasks)
        .map(|t| {
            let (producer, topic, value_len) = (producer.clone(), topic.clone(), w.send_value_len);
            let first = t * per_task;
            let last = (first + per_task).min(w.records);
            tokio::spawn(async move {
                let mut pending = VecDeque::with_capacity(window);
                for i in first..last {
                    let record = producer_record(&topic, i, value_len);
                    pending.push_back(producer.send_when_room(record).await);
                    if pending.len() >= window {
                        pending.pop_front().unwrap().await.expect("delivery");
                    }
                }
                for delivery in pending {
                    delivery.await.expect("delivery");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("sender task");
    }
}

/// `records` records through `Producer::send_buffer`, 1,000 to a buffer filled from
/// borrowed keys and values (no allocation per record: each value is written into
/// one reused scratch buffer), keeping at most `window` records' deliveries
/// outstanding; every one must succeed.
async fn send_buffers(producer: &Producer, topic: &str, w: &Workload) {
    let (records, window) = (w.records, w.send_window);
    let record_bytes = key(0).len() + w.send_value_len;
    // 1,000 records a buffer, fewer when they are large (at most 1 MiB of them) or
    // the window is smaller.
    let per_buffer = (1_000.min(window) as u64)
        .min((1 << 20) / record_bytes as u64)
        .max(1);
    let mut pending = VecDeque::new();
    let mut outstanding = 0u64;
    let mut first = 0;
    let mut scratch = Vec::with_capacity(w.send_value_len);
    while first < records {
        let n = per_buffer.min(records - first);
        let mut buffer = RecordBuffer::with_capacity(n as usize, n as usize * record_bytes);
        for i in first..first + n {
            scratch.clear();
            send_value_into(i, w.send_value_len, &mut scratch);
            buffer.push(BorrowedRecord::new(topic, &scratch).key(&key(i)));
        }
        pending.push_back((n, producer.send_buffer(buffer)));
        outstanding += n;
        first += n;
        while outstanding >= window as u64 {
            let (n, delivery) = pending.pop_front().unwrap();
            assert!(delivery.await.iter().all(Result::is_ok), "delivery");
            outstanding -= n;
        }
    }
    for (_, delivery) in pending {
        assert!(delivery.await.iter().all(Result::is_ok), "delivery");
    }
}

/// `rate` records a second for `secs` seconds; the latency of each delivery.
async fn paced(producer: &Producer, rate: u64, secs: u64) -> Vec<Duration> {
    let n = rate * secs;
    let mut latencies = Vec::with_capacity(n as usize);
    let mut in_flight = FuturesUnordered::new();
    let topic: Arc<str> = PACED_TOPIC.into();
    let start = Instant::now();
    for i in 0..n {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        loop {
            tokio::select! {
                biased;
                Some(latency) = in_flight.next(), if !in_flight.is_empty() => latencies.push(latency),
                () = tokio::time::sleep_until(due.into()) => break,
            }
        }
        let sent = Instant::now();
        let delivery = producer.send(producer_record(&topic, i, VALUE_LEN));
        in_flight.push(async move {
            delivery.await.expect("delivery");
            sent.elapsed()
        });
    }
    while let Some(latency) = in_flight.next().await {
        latencies.push(latency);
    }
    latencies
}

/// The `paced` loop's timing without a record: sleeps until each record's time.
async fn pace_only(rate: u64, secs: u64) {
    let start = Instant::now();
    for i in 0..rate * secs {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
    }
}

/// One batch of records as a user of this API builds it: owned key and value.
fn batch(first: u64, n: usize) -> Vec<Record> {
    (first..first + n as u64)
        .map(|i| Record::new(Bytes::from(value(i).to_vec())).key(Bytes::from(key(i).to_vec())))
        .collect()
}

/// The consumer's fetch sizes, as the other clients are given them.
fn consumer_config(c: &mut ClientConfig, w: &Workload) {
    c.consumer.fetch_max_bytes = w.fetch_max_bytes;
    c.consumer.partition_max_bytes = w.fetch_max_bytes;
    c.consumer.fetch_max_wait = Duration::from_millis(w.max_wait_ms as u64);
}

pub fn run(bootstrap: &str, w: &Workload) -> Vec<Phase> {
    runtime().block_on(async {
        let mut phases = Vec::new();
        let m = measure::start();
        let client = ClientBuilder::new(bootstrap)
            .client_id("bench-e2e")
            .configure(|c| {
                c.producer.linger = Duration::from_millis(w.linger_ms);
                consumer_config(c, w);
            })
            .build_tokio()
            .await
            .expect("connect");
        let partition = client
            .partition_client(&w.topic, 0, UnknownTopicHandling::Retry)
            .await
            .expect("partition client");
        phases.push(m.end("connect", 0));

        if w.runs("build") {
            let m = measure::start();
            let mut first = 0;
            while first < w.records {
                let n = w.batch.min((w.records - first) as usize);
                std::hint::black_box(batch(first, n));
                first += n as u64;
            }
            phases.push(m.end("build", w.records));
        }

        if w.runs("produce") {
            let m = measure::start();
            let mut first = 0;
            while first < w.records {
                let n = w.batch.min((w.records - first) as usize);
                let offsets = partition
                    .produce(batch(first, n), Compression::None)
                    .await
                    .expect("produce");
                assert_eq!(offsets.len(), n);
                assert_eq!(offsets[0], first as i64, "offset of record {first}");
                first += n as u64;
            }
            phases.push(m.end("produce", w.records));
        }

        if w.runs("fetch") {
            let m = measure::start();
            let start = first_offset(&partition, w).await;
            let mut reader = Reader::new(start, w.window);
            while reader.decoded < w.records {
                let (records, high_watermark) = partition
                    .fetch_records(reader.next, 1..w.fetch_max_bytes, w.max_wait_ms)
                    .await
                    .expect("fetch");
                for r in &records {
                    reader.record(r.offset, r.key(), r.value());
                }
                reader.after_fetch(high_watermark);
            }
            phases.push(m.end("fetch", reader.decoded));
        }

        if w.runs("fetch-lent") {
            let m = measure::start();
            let start = first_offset(&partition, w).await;
            let mut reader = Reader::new(start, w.window);
            let options = kafka_sansio::client::FetchOptions::default()
                .min_bytes(1)
                .max_bytes(w.fetch_max_bytes)
                .max_wait(Duration::from_millis(w.max_wait_ms as u64));
            while reader.decoded < w.records {
                let out = partition
                    .fetch_record_set(reader.next, options.clone())
                    .await
                    .expect("fetch");
                let mut records = out.records.reader();
                while let Some(r) = records.next_ref() {
                    let r = r.expect("record");
                    reader.record(r.offset, r.key(), r.value());
                }
                reader.after_fetch(out.high_watermark);
            }
            phases.push(m.end("fetch-lent", reader.decoded));
        }

        // The mock keeps only the partition's tail: a stream cannot read 1M records.
        if w.runs("consume") && !w.window {
            let m = measure::start();
            let mut consumer = client.consumer();
            consumer
                .assign(vec![TopicPartition::new(&*w.topic, 0)], Offset::Beginning)
                .expect("assign");
            let mut reader = Reader::new(0, false);
            while reader.decoded < w.records {
                let r = consumer
                    .next()
                    .await
                    .expect("stream ended")
                    .expect("consume");
                reader.record(r.record.offset, r.record.key(), r.record.value());
            }
            phases.push(m.end("consume", reader.decoded));
            drop(consumer);
        }

        // The same through a group of one member: subscribe, the group's assignment,
        // auto-commit on its interval. A group id of its own, so it starts from the
        // beginning (no committed offsets) on every run.
        if w.runs("consume-group") && !w.window {
            let group = format!(
                "bench-e2e-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            );
            let grouped = ClientBuilder::new(bootstrap)
                .client_id("bench-e2e")
                .group_id(group)
                .configure(|c| {
                    consumer_config(c, w);
                    c.consumer.auto_offset_reset = OffsetReset::Earliest;
                })
                .build_tokio()
                .await
                .expect("connect");
            let m = measure::start();
            let mut consumer = grouped.consumer();
            consumer.subscribe([&*w.topic]).expect("subscribe");
            let mut reader = Reader::new(0, false);
            while reader.decoded < w.records {
                let r = consumer
                    .next()
                    .await
                    .expect("stream ended")
                    .expect("consume");
                reader.record(r.record.offset, r.record.key(), r.record.value());
            }
            phases.push(m.end("consume-group", reader.decoded));
            consumer.close().await.expect("leave the group");
            grouped.close().await;
        }

        let producer = client.producer();
        for (phase, topic) in [("send1", SEND1_TOPIC), ("send4", SEND4_TOPIC)] {
            if w.runs(phase) {
                let m = measure::start();
                send_all(&producer, topic, w).await;
                phases.push(m.end(phase, w.records));
            }
        }
        for (phase, topic) in [("send1-buffer", SEND1_TOPIC), ("send4-buffer", SEND4_TOPIC)] {
            if w.runs(phase) {
                let m = measure::start();
                send_buffers(&producer, topic, w).await;
                phases.push(m.end(phase, w.records));
            }
        }
        if w.runs("send1-tasks") {
            let tasks_client = ClientBuilder::new(bootstrap)
                .client_id("bench-e2e-tasks")
                .configure(|c| {
                    c.producer.linger = Duration::from_millis(w.linger_ms);
                    c.producer.buffer_max_bytes = w.sender_budget;
                })
                .build_tokio()
                .await
                .expect("connect");
            let m = measure::start();
            send_from_tasks(&tasks_client.producer(), SEND1_TOPIC, w).await;
            phases.push(m.end("send1-tasks", w.records));
            tasks_client.close().await;
        }
        if w.runs("paced") {
            let m = measure::start();
            let latencies = paced(&producer, w.paced_rate, w.paced_secs).await;
            phases.push(m.end_paced("paced", latencies));
        }
        if w.runs("paced-idle") {
            // The pacing loop alone, sending nothing: the floor of the paced phase's
            // CPU (a timer wake-up per record), common to every client.
            let m = measure::start();
            pace_only(w.paced_rate, w.paced_secs).await;
            phases.push(m.end_paced("paced-idle", Vec::new()));
        }
        client.close().await;
        phases
    })
}

/// Where the reading phases start: the partition's start on the simulated cluster,
/// the retained window's on the mock.
async fn first_offset(partition: &kafka_sansio::runtime::PartitionClient, w: &Workload) -> i64 {
    if w.window {
        partition
            .get_offset(kafka_sansio::client::OffsetSpec::Earliest)
            .await
            .expect("earliest offset")
    } else {
        0
    }
}
