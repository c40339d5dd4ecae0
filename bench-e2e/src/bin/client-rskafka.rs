//! rskafka 0.6 through its `PartitionClient`.

use kafka_sansio_bench_e2e::measure::{self, Phase};
use kafka_sansio_bench_e2e::workload::{Reader, VALUE_LEN, Workload, key, send_value, value};
use kafka_sansio_bench_e2e::{client_main, runtime};

fn main() {
    client_main(run);
}
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use kafka_sansio_bench_e2e::workload::{PACED_TOPIC, SEND1_TOPIC, SEND4_TOPIC};
use rskafka::client::consumer::{StartOffset, StreamConsumerBuilder};
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::producer::aggregator::RecordAggregator;
use rskafka::client::producer::{BatchProducer, BatchProducerBuilder};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn record(i: u64, value_len: usize) -> Record {
    Record {
        key: Some(key(i).to_vec()),
        value: Some(send_value(i, value_len)),
        headers: BTreeMap::new(),
        timestamp: chrono::Utc::now(),
    }
}

/// One `BatchProducer` per partition of `topic` (rskafka has no partitioner: record
/// `i` goes to partition `i % partitions`).
async fn producers(
    client: &Client,
    topic: &str,
    partitions: i32,
    w: &Workload,
) -> Vec<BatchProducer<RecordAggregator>> {
    let mut out = Vec::new();
    for p in 0..partitions {
        let pc: Arc<PartitionClient> = Arc::new(
            client
                .partition_client(topic, p, UnknownTopicHandling::Retry)
                .await
                .expect("partition client"),
        );
        out.push(
            BatchProducerBuilder::new(pc)
                .with_linger(Duration::from_millis(w.linger_ms))
                .build(RecordAggregator::new(500_000)),
        );
    }
    out
}

/// `records` records through `BatchProducer::produce`, at most `window`
/// outstanding; each produce future is polled once as it is made, so that it joins
/// a batch at once as with the other clients.
async fn send_all(producers: &[BatchProducer<RecordAggregator>], w: &Workload) {
    let (records, window) = (w.records, w.send_window);
    let mut in_flight = FuturesUnordered::new();
    let n = producers.len() as u64;
    for i in 0..records {
        in_flight.push(producers[(i % n) as usize].produce(record(i, w.send_value_len)));
        while let Some(Some(r)) = futures::FutureExt::now_or_never(in_flight.next()) {
            r.expect("delivery");
        }
        if in_flight.len() >= window {
            in_flight.next().await.unwrap().expect("delivery");
        }
    }
    while let Some(r) = in_flight.next().await {
        r.expect("delivery");
    }
}

async fn paced(producer: &BatchProducer<RecordAggregator>, rate: u64, secs: u64) -> Vec<Duration> {
    let n = rate * secs;
    let mut latencies = Vec::with_capacity(n as usize);
    let mut in_flight = FuturesUnordered::new();
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
        let delivery = producer.produce(record(i, VALUE_LEN));
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

fn batch(first: u64, n: usize) -> Vec<Record> {
    let timestamp = chrono::Utc::now();
    (first..first + n as u64)
        .map(|i| Record {
            key: Some(key(i).to_vec()),
            value: Some(value(i).to_vec()),
            headers: BTreeMap::new(),
            timestamp,
        })
        .collect()
}

pub fn run(bootstrap: &str, w: &Workload) -> Vec<Phase> {
    runtime().block_on(async {
        let mut phases = Vec::new();
        let m = measure::start();
        let client = ClientBuilder::new(bootstrap.split(',').map(str::to_owned).collect())
            .client_id("bench-e2e")
            .build()
            .await
            .expect("connect");
        let partition = Arc::new(
            client
                .partition_client(&w.topic, 0, UnknownTopicHandling::Retry)
                .await
                .expect("partition client"),
        );
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
                    .produce(batch(first, n), Compression::NoCompression)
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
            let start = if w.window {
                partition
                    .get_offset(OffsetAt::Earliest)
                    .await
                    .expect("earliest offset")
            } else {
                0
            };
            let mut reader = Reader::new(start, w.window);
            while reader.decoded < w.records {
                let (records, high_watermark) = partition
                    .fetch_records(reader.next, 1..w.fetch_max_bytes, w.max_wait_ms)
                    .await
                    .expect("fetch");
                for r in &records {
                    reader.record(r.offset, r.record.key.as_deref(), r.record.value.as_deref());
                }
                reader.after_fetch(high_watermark);
            }
            phases.push(m.end("fetch", reader.decoded));
        }

        if w.runs("consume") && !w.window {
            let m = measure::start();
            let mut stream = StreamConsumerBuilder::new(partition.clone(), StartOffset::Earliest)
                .with_max_wait_ms(w.max_wait_ms)
                .with_max_batch_size(w.fetch_max_bytes)
                .build();
            let mut reader = Reader::new(0, false);
            while reader.decoded < w.records {
                let (r, _) = stream.next().await.expect("stream ended").expect("consume");
                reader.record(r.offset, r.record.key.as_deref(), r.record.value.as_deref());
            }
            phases.push(m.end("consume", reader.decoded));
        }

        for (phase, topic, partitions) in [("send1", SEND1_TOPIC, 1), ("send4", SEND4_TOPIC, 4)] {
            if w.runs(phase) {
                let producers = producers(&client, topic, partitions, w).await;
                let m = measure::start();
                send_all(&producers, w).await;
                phases.push(m.end(phase, w.records));
            }
        }
        if w.runs("paced") {
            let producers = producers(&client, PACED_TOPIC, 1, w).await;
            let m = measure::start();
            let latencies = paced(&producers[0], w.paced_rate, w.paced_secs).await;
            phases.push(m.end_paced("paced", latencies));
        }
        phases
    })
}
