//! kafka-sansio through the blocking facade (`ClientBuilder::build_blocking`): the
//! producer phases (`send1`, `send4`, `paced`, `paced-idle`) as a program without an
//! async runtime writes them. The driver runs on the facade's own thread; the
//! program's threads block on deliveries.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kafka_sansio::blocking_runtime::Producer;
use kafka_sansio::runtime::ClientBuilder;
use kafka_sansio_bench_e2e::client_main;
use kafka_sansio_bench_e2e::measure::{self, Phase};
use kafka_sansio_bench_e2e::ours::producer_record;
use kafka_sansio_bench_e2e::workload::{
    PACED_TOPIC, SEND1_TOPIC, SEND4_TOPIC, VALUE_LEN, Workload,
};

fn main() {
    client_main(run);
}

/// `records` records through `Producer::send`, waiting for the oldest delivery once
/// `window` are outstanding; every one must succeed.
fn send_all(producer: &Producer, topic: &str, w: &Workload) {
    let topic: Arc<str> = topic.into();
    let mut pending = VecDeque::with_capacity(w.send_window);
    for i in 0..w.records {
        pending.push_back(producer.send(producer_record(&topic, i, w.send_value_len)));
        if pending.len() >= w.send_window {
            pending.pop_front().unwrap().wait().expect("delivery");
        }
    }
    for delivery in pending {
        delivery.wait().expect("delivery");
    }
}

/// `rate` records a second for `secs` seconds from this thread, sleeping until each
/// one's time; a second thread waits for the deliveries in send order (one partition:
/// they end in that order) and returns each one's latency.
fn paced(producer: &Producer, rate: u64, secs: u64) -> Vec<Duration> {
    let n = rate * secs;
    let (tx, rx) = mpsc::channel::<(Instant, kafka_sansio::runtime::DeliveryFuture)>();
    let waiter = std::thread::spawn(move || {
        let mut latencies = Vec::with_capacity(n as usize);
        for (sent, delivery) in rx {
            delivery.wait().expect("delivery");
            latencies.push(sent.elapsed());
        }
        latencies
    });
    let topic: Arc<str> = PACED_TOPIC.into();
    let start = Instant::now();
    for i in 0..n {
        sleep_until(start + Duration::from_secs_f64(i as f64 / rate as f64));
        let sent = Instant::now();
        let delivery = producer.send(producer_record(&topic, i, VALUE_LEN));
        tx.send((sent, delivery)).expect("waiter thread");
    }
    drop(tx);
    waiter.join().expect("waiter thread")
}

fn sleep_until(due: Instant) {
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}

/// The paced loop's timing alone: this facade's floor.
fn pace_only(rate: u64, secs: u64) {
    let start = Instant::now();
    for i in 0..rate * secs {
        sleep_until(start + Duration::from_secs_f64(i as f64 / rate as f64));
    }
}

pub fn run(bootstrap: &str, w: &Workload) -> Vec<Phase> {
    let mut phases = Vec::new();
    let m = measure::start();
    let client = ClientBuilder::new(bootstrap)
        .client_id("bench-e2e")
        .configure(|c| c.producer.linger = Duration::from_millis(w.linger_ms))
        .build_blocking()
        .expect("connect");
    phases.push(m.end("connect", 0));
    let producer = client.producer();
    for (phase, topic) in [("send1", SEND1_TOPIC), ("send4", SEND4_TOPIC)] {
        if w.runs(phase) {
            let m = measure::start();
            send_all(&producer, topic, w);
            phases.push(m.end(phase, w.records));
        }
    }
    if w.runs("paced") {
        let m = measure::start();
        let latencies = paced(&producer, w.paced_rate, w.paced_secs);
        phases.push(m.end_paced("paced", latencies));
    }
    if w.runs("paced-idle") {
        let m = measure::start();
        pace_only(w.paced_rate, w.paced_secs);
        phases.push(m.end_paced("paced-idle", Vec::new()));
    }
    client.close();
    phases
}
