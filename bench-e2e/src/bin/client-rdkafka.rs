//! librdkafka through the `rdkafka` crate: a `BaseProducer` flushed after every
//! batch (so one batch is in flight, as with the others) and a `BaseConsumer`
//! assigned to the partition.

use std::time::Duration;

use kafka_sansio_bench_e2e::client_main;
use kafka_sansio_bench_e2e::measure::{self, Phase};
use kafka_sansio_bench_e2e::workload::{Reader, Workload, key, send_value_into, value};

fn main() {
    client_main(run);
}
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use kafka_sansio_bench_e2e::workload::{PACED_TOPIC, SEND1_TOPIC, SEND4_TOPIC};

/// Counts deliveries of the `send` phases and keeps the latency of paced ones (the
/// send instant travels with each record, as nanoseconds after `base` plus one; 0 for
/// none).
struct Reports {
    base: Instant,
    ok: AtomicU64,
    failed: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
}

impl Default for Reports {
    fn default() -> Self {
        Reports {
            base: Instant::now(),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latencies: Mutex::new(Vec::new()),
        }
    }
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, sent: usize) {
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                if sent > 0 {
                    let at = Duration::from_nanos(sent as u64 - 1);
                    self.latencies
                        .lock()
                        .unwrap()
                        .push(self.base.elapsed() - at);
                }
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A producer as a user of librdkafka configures one for throughput: linger, acks=all,
/// idempotence (as ours has by default), the default partitioner.
fn linger_producer(bootstrap: &str, w: &Workload) -> BaseProducer<Reports> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "bench-e2e")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "none")
        .set("linger.ms", w.linger_ms.to_string())
        .create_with_context(Reports::default())
        .expect("producer")
}

/// Sends record `i` with value `v`, waiting in `poll` while the queue is full.
fn send_one(
    producer: &BaseProducer<Reports>,
    topic: &str,
    i: u64,
    v: &[u8],
    timestamp: i64,
    sent: usize,
) {
    let k = key(i);
    let mut record = BaseRecord::with_opaque_to(topic, sent)
        .key(&k[..])
        .payload(v)
        .timestamp(timestamp);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => panic!("send: {e}"),
        }
    }
}

#[derive(Default)]
struct Delivery {
    failed: AtomicU64,
    next_offset: AtomicU64,
    out_of_order: AtomicU64,
}

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let expected = self.next_offset.fetch_add(1, Ordering::Relaxed);
                if m.offset() != expected as i64 {
                    self.out_of_order.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

pub fn run(bootstrap: &str, w: &Workload) -> Vec<Phase> {
    let mut phases = Vec::new();
    let m = measure::start();
    let producer: BaseProducer<Delivery> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "bench-e2e")
        .set("acks", "all")
        .set("compression.type", "none")
        .set("enable.idempotence", "false")
        .set("batch.num.messages", w.batch.to_string())
        .create_with_context(Delivery::default())
        .expect("producer");
    // Connected once it knows the partition's leader.
    producer
        .client()
        .fetch_metadata(Some(&w.topic), Duration::from_secs(10))
        .expect("metadata");
    phases.push(m.end("connect", 0));

    // librdkafka's consumer is its prefetching consumer: its `fetch` row is also
    // what a stream costs it.
    if w.runs("produce") {
        let timestamp = chrono::Utc::now().timestamp_millis();
        let m = measure::start();
        let mut first = 0;
        while first < w.records {
            let n = w.batch.min((w.records - first) as usize);
            for i in first..first + n as u64 {
                let (k, v) = (key(i), value(i));
                let mut record = BaseRecord::to(&w.topic)
                    .partition(0)
                    .key(&k[..])
                    .payload(&v[..])
                    .timestamp(timestamp);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            record = r;
                            producer.poll(Duration::from_millis(1));
                        }
                        Err((e, _)) => panic!("send: {e}"),
                    }
                }
            }
            producer.flush(Duration::from_secs(30)).expect("flush");
            first += n as u64;
        }
        phases.push(m.end("produce", w.records));
        let d = producer.context();
        assert_eq!(d.failed.load(Ordering::Relaxed), 0, "failed deliveries");
        assert_eq!(
            d.out_of_order.load(Ordering::Relaxed),
            0,
            "offsets out of order"
        );
        assert_eq!(d.next_offset.load(Ordering::Relaxed), w.records);
    }
    drop(producer);

    if w.runs("fetch") {
        let m = measure::start();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("client.id", "bench-e2e")
            .set("group.id", "bench-e2e")
            .set("enable.auto.commit", "false")
            .set("fetch.max.bytes", w.fetch_max_bytes.to_string())
            // librdkafka refuses a fetch.max.bytes below message.max.bytes (1000000).
            .set(
                "message.max.bytes",
                w.fetch_max_bytes.clamp(1000, 1_000_000).to_string(),
            )
            .set("max.partition.fetch.bytes", w.fetch_max_bytes.to_string())
            .set("fetch.wait.max.ms", w.max_wait_ms.to_string())
            .create()
            .expect("consumer");
        let (low, high) = consumer
            .fetch_watermarks(&w.topic, 0, Duration::from_secs(10))
            .expect("watermarks");
        let start = if w.window { low } else { 0 };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&w.topic, 0, Offset::Offset(start))
            .expect("tpl");
        consumer.assign(&tpl).expect("assign");
        let mut reader = Reader::new(start, w.window);
        while reader.decoded < w.records {
            match consumer.poll(Duration::from_secs(10)) {
                Some(Ok(msg)) => {
                    reader.record(msg.offset(), msg.key(), msg.payload());
                    if reader.decoded < w.records && reader.after_fetch(high) {
                        consumer
                            .seek(&w.topic, 0, Offset::Offset(start), Duration::from_secs(10))
                            .expect("seek");
                    }
                }
                Some(Err(e)) => panic!("consume: {e}"),
                None => panic!("no message within 10 s at offset {}", reader.next),
            }
        }
        phases.push(m.end("fetch", reader.decoded));
        drop(consumer);
    }

    // Through a group of one member: subscribe, auto-commit (librdkafka's default),
    // a group id of its own so it starts from the beginning on every run. The mock
    // keeps only the partition's tail, so not there.
    if w.runs("consume-group") && !w.window {
        let group = format!(
            "bench-e2e-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
        );
        let m = measure::start();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("client.id", "bench-e2e")
            .set("group.id", &group)
            .set("auto.offset.reset", "earliest")
            .set("fetch.max.bytes", w.fetch_max_bytes.to_string())
            .set(
                "message.max.bytes",
                w.fetch_max_bytes.clamp(1000, 1_000_000).to_string(),
            )
            .set("max.partition.fetch.bytes", w.fetch_max_bytes.to_string())
            .set("fetch.wait.max.ms", w.max_wait_ms.to_string())
            .create()
            .expect("consumer");
        consumer.subscribe(&[&w.topic]).expect("subscribe");
        let mut reader = Reader::new(0, false);
        while reader.decoded < w.records {
            match consumer.poll(Duration::from_secs(30)) {
                Some(Ok(msg)) => reader.record(msg.offset(), msg.key(), msg.payload()),
                Some(Err(e)) => panic!("consume: {e}"),
                None => panic!("no message within 30 s at offset {}", reader.next),
            }
        }
        phases.push(m.end("consume-group", reader.decoded));
        consumer.unsubscribe();
        drop(consumer);
    }

    let timestamp = chrono::Utc::now().timestamp_millis();
    for (phase, topic) in [("send1", SEND1_TOPIC), ("send4", SEND4_TOPIC)] {
        if w.runs(phase) {
            let producer = linger_producer(bootstrap, w);
            producer
                .client()
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .expect("metadata");
            // librdkafka copies borrowed slices: each value is written into one
            // reused scratch buffer.
            let mut scratch = Vec::with_capacity(w.send_value_len);
            let m = measure::start();
            for i in 0..w.records {
                scratch.clear();
                send_value_into(i, w.send_value_len, &mut scratch);
                send_one(&producer, topic, i, &scratch, timestamp, 0);
                if i % 1000 == 0 {
                    producer.poll(Duration::ZERO);
                }
            }
            producer.flush(Duration::from_secs(60)).expect("flush");
            phases.push(m.end(phase, w.records));
            let r = producer.context();
            assert_eq!(r.failed.load(Ordering::Relaxed), 0, "failed deliveries");
            assert_eq!(r.ok.load(Ordering::Relaxed), w.records);
        }
    }
    if w.runs("paced") {
        let producer = linger_producer(bootstrap, w);
        producer
            .client()
            .fetch_metadata(Some(PACED_TOPIC), Duration::from_secs(10))
            .expect("metadata");
        let n = w.paced_rate * w.paced_secs;
        let m = measure::start();
        let start = Instant::now();
        for i in 0..n {
            let due = start + Duration::from_secs_f64(i as f64 / w.paced_rate as f64);
            // Serve delivery reports while waiting for the next record's time.
            loop {
                // Serve the delivery reports that are ready.
                producer.poll(Duration::ZERO);
                let now = Instant::now();
                if now >= due {
                    break;
                }
                // poll's timeout has millisecond granularity: a shorter wait would
                // spin, so it sleeps instead.
                if due - now >= Duration::from_millis(1) {
                    producer.poll(due - now);
                } else {
                    std::thread::sleep(due - now);
                }
            }
            let sent = producer.context().base.elapsed().as_nanos() as usize + 1;
            send_one(&producer, PACED_TOPIC, i, &value(i), timestamp, sent);
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
        let latencies = std::mem::take(&mut *producer.context().latencies.lock().unwrap());
        assert_eq!(latencies.len() as u64, n, "deliveries");
        phases.push(m.end_paced("paced", latencies));
    }
    phases
}
