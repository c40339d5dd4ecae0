//! rskafka 0.6 through its `PartitionClient`.

use kafka_sansio_bench_e2e::measure::{self, Phase};
use kafka_sansio_bench_e2e::workload::{Reader, Workload, key, value};
use kafka_sansio_bench_e2e::{client_main, runtime};

fn main() {
    client_main(run);
}
use rskafka::client::ClientBuilder;
use rskafka::client::partition::{Compression, OffsetAt, UnknownTopicHandling};
use rskafka::record::Record;
use std::collections::BTreeMap;

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
        phases
    })
}
