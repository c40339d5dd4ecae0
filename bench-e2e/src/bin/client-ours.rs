//! kafka-sansio through `runtime::ClientBuilder` and `PartitionClient`.

use kafka_sansio_bench_e2e::measure::{self, Phase};
use kafka_sansio_bench_e2e::workload::{Reader, Workload, key, value};
use kafka_sansio_bench_e2e::{client_main, runtime};

fn main() {
    client_main(run);
}
use bytes::Bytes;
use kafka_sansio::client::{Record, UnknownTopicHandling};
use kafka_sansio::records::Compression;
use kafka_sansio::runtime::ClientBuilder;

/// One batch of records as a user of this API builds it: owned key and value.
fn batch(first: u64, n: usize) -> Vec<Record> {
    (first..first + n as u64)
        .map(|i| Record::new(Bytes::from(value(i).to_vec())).key(Bytes::from(key(i).to_vec())))
        .collect()
}

pub fn run(bootstrap: &str, w: &Workload) -> Vec<Phase> {
    runtime().block_on(async {
        let mut phases = Vec::new();
        let m = measure::start();
        let client = ClientBuilder::new(bootstrap)
            .client_id("bench-e2e")
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
            let start = if w.window {
                partition
                    .get_offset(kafka_sansio::client::OffsetSpec::Earliest)
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
                    reader.record(r.offset, r.key.as_deref(), r.value.as_deref());
                }
                reader.after_fetch(high_watermark);
            }
            phases.push(m.end("fetch", reader.decoded));
        }
        client.close().await;
        phases
    })
}
