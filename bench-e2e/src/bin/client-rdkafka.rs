//! librdkafka through the `rdkafka` crate: a `BaseProducer` flushed after every
//! batch (so one batch is in flight, as with the others) and a `BaseConsumer`
//! assigned to the partition.

use std::time::Duration;

use kafka_sansio_bench_e2e::client_main;
use kafka_sansio_bench_e2e::measure::{self, Phase};
use kafka_sansio_bench_e2e::workload::{Reader, Workload, key, value};

fn main() {
    client_main(run);
}
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicU64, Ordering};

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
    drop(producer);

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
    phases
}
