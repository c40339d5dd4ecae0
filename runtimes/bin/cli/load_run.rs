//! Running `load`: sends what the profile's integral owes every few milliseconds,
//! measures each record's delivery latency, and reports once a second.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use kafka_sansio::client::ProducerRecord;
use serde_json::json;

use crate::load::{Curve, Generator, Histogram, Profile, Rng};
use crate::{ConnectionArgs, Failure, Outcome, admin, spec};

/// `load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The topic.
    #[arg(short, long)]
    topic: String,
    /// Records per second in the `min` phase.
    #[arg(long, default_value_t = 10.0)]
    min: f64,
    /// How long `min` lasts.
    #[arg(long, default_value = "10s", value_parser = spec::parse_duration)]
    min_sec: Duration,
    /// Records per second in the `max` phase.
    #[arg(long, default_value_t = 100.0)]
    max: f64,
    /// How long `max` lasts.
    #[arg(long, default_value = "10s", value_parser = spec::parse_duration)]
    max_sec: Duration,
    /// The `up` transition: none, linear, ease-in, ease-out, ease-in-out, spike-in,
    /// spike-out.
    #[arg(long, default_value = "linear", value_parser = Curve::parse)]
    up: Curve,
    /// How long `up` lasts.
    #[arg(long, default_value = "5s", value_parser = spec::parse_duration)]
    up_sec: Duration,
    /// The `down` transition.
    #[arg(long, default_value = "linear", value_parser = Curve::parse)]
    down: Curve,
    /// How long `down` lasts.
    #[arg(long, default_value = "5s", value_parser = spec::parse_duration)]
    down_sec: Duration,
    /// How many cycles (0: until Ctrl-C).
    #[arg(long, default_value_t = 1)]
    cycles: u32,
    /// Keys: none, fixed:TEXT, random:LEN, alnum:LEN or file:PATH.
    #[arg(long, default_value = "none", value_parser = Generator::parse)]
    key: Generator,
    /// Values: none, fixed:TEXT, random:LEN, alnum:LEN or file:PATH.
    #[arg(long, default_value = "alnum:100", value_parser = Generator::parse)]
    value: Generator,
    /// A header `KEY=VALUE` on every record (repeatable).
    #[arg(short = 'H', long = "header", value_parser = spec::parse_header)]
    headers: Vec<(String, Option<Vec<u8>>)>,
    /// The partition (default: the partitioner).
    #[arg(short, long)]
    partition: Option<i32>,
    /// Acknowledgements: all, 1 or 0.
    #[arg(short, long, default_value = "all", value_parser = spec::parse_acks, allow_hyphen_values = true)]
    acks: i16,
    /// Compression: none, gzip, snappy, lz4, zstd.
    #[arg(short = 'z', long, default_value = "none", value_parser = spec::parse_compression)]
    compression: kafka_sansio::records::Compression,
    /// Report as JSON lines on stdout instead of text on stderr.
    #[arg(long)]
    json: bool,
    /// Seed of the generated keys and values (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
}

/// One second's deliveries.
#[derive(Debug, Default, Clone)]
struct Second {
    delivered: u64,
    errors: u64,
    latency: Histogram,
}

#[derive(Debug, Default)]
struct Tally {
    seconds: Vec<Second>,
    first_error: Option<String>,
}

impl Tally {
    fn at(&mut self, second: usize) -> &mut Second {
        if self.seconds.len() <= second {
            self.seconds.resize(second + 1, Second::default());
        }
        &mut self.seconds[second]
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn report(second: usize, target: f64, sent: u64, s: &Second, phase: &str, json: bool) {
    if json {
        println!(
            "{}",
            json!({
                "type": "second", "second": second + 1, "phase": phase,
                "target": (target * 10.0).round() / 10.0, "sent": sent, "achieved": s.delivered,
                "errors": s.errors,
                "latency_ms": {"p50": ms(s.latency.quantile(0.5)), "p99": ms(s.latency.quantile(0.99)), "max": ms(s.latency.max())},
            })
        );
    } else {
        eprintln!(
            "{:>5}s {:<4} target {:>8.1}/s sent {:>7} achieved {:>7}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  errors {}",
            second + 1,
            phase,
            target,
            sent,
            s.delivered,
            ms(s.latency.quantile(0.5)),
            ms(s.latency.quantile(0.99)),
            ms(s.latency.max()),
            s.errors
        );
    }
}

/// `load`.
pub async fn load(conn: &ConnectionArgs, a: LoadArgs) -> Outcome {
    if !(a.min >= 0.0 && a.max >= 0.0 && a.min.is_finite() && a.max.is_finite()) {
        return Err(Failure::with_code("--min and --max: rates of 0 or more", 2));
    }
    let profile = Profile {
        min: a.min,
        min_for: a.min_sec,
        max: a.max,
        max_for: a.max_sec,
        up: a.up,
        up_for: a.up_sec,
        down: a.down,
        down_for: a.down_sec,
    };
    if profile.cycle().is_zero() {
        return Err(Failure::with_code("the phases last no time at all", 2));
    }
    let total = (a.cycles > 0).then(|| profile.cycle() * a.cycles);
    let (acks, compression, timeout) = (a.acks, a.compression, conn.timeout);
    let client = conn
        .connect(|c| {
            c.producer.acks = acks;
            c.producer.idempotence = acks == -1;
            c.producer.compression = compression;
            c.producer.linger = Duration::from_millis(2);
            c.producer.delivery_timeout = timeout;
        })
        .await?;
    admin::described(&client, vec![a.topic.clone()]).await?;
    let producer = client.producer();
    let topic: Arc<str> = a.topic.as_str().into();
    let mut rng = Rng::new(a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    }));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    let mut sent_total = 0u64;
    let (mut owed_acc, mut integrated_to) = (0.0f64, Duration::ZERO);
    let mut sent_per_second: Vec<u64> = Vec::new();
    let mut reported = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut interrupted = false;
    if !a.json {
        eprintln!(
            "load on {}: min {}/s for {:?}, up {} over {:?}, max {}/s for {:?}, down {} over {:?}, {} cycle(s)",
            a.topic,
            a.min,
            a.min_sec,
            a.up.name(),
            a.up_sec,
            a.max,
            a.max_sec,
            a.down.name(),
            a.down_sec,
            if a.cycles == 0 {
                "endless".to_owned()
            } else {
                a.cycles.to_string()
            }
        );
    }
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut ctrl_c => { interrupted = true; break; }
        }
        let mut now = start.elapsed();
        let finished = total.is_some_and(|t| now >= t);
        if let Some(t) = total {
            now = now.min(t);
        }
        // Report every whole second that has passed (deliveries land by their time).
        let whole = now.as_secs() as usize;
        while reported < whole {
            let s = tally
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .at(reported)
                .clone();
            let from = Duration::from_secs(reported as u64);
            let target = profile.records_between(from, from + Duration::from_secs(1));
            let phase = profile.rate_at(from + Duration::from_millis(500)).1;
            let sent = sent_per_second.get(reported).copied().unwrap_or(0);
            report(reported, target, sent, &s, phase.name(), a.json);
            reported += 1;
        }
        if finished {
            break;
        }
        // What the integral owes by now, less what was sent.
        owed_acc += profile.records_between(integrated_to, now);
        integrated_to = now;
        let owed = owed_acc.floor() as u64;
        if owed <= sent_total {
            continue;
        }
        let n = owed - sent_total;
        let second = now.as_secs() as usize;
        if sent_per_second.len() <= second {
            sent_per_second.resize(second + 1, 0);
        }
        sent_per_second[second] += n;
        let mut records = Vec::with_capacity(n as usize);
        for i in 0..n {
            let seq = sent_total + i;
            let value = a.value.make(seq, &mut rng).map(Bytes::from);
            let mut r = ProducerRecord::new(topic.clone(), Bytes::new());
            r.value = value;
            r.key = a.key.make(seq, &mut rng).map(Bytes::from);
            r.partition = a.partition;
            for (k, v) in &a.headers {
                if let Some(v) = v {
                    r = r.header(k.clone(), Bytes::copy_from_slice(v));
                }
            }
            records.push(r);
        }
        sent_total = owed;
        let sent_at = Instant::now();
        let futures = producer.send_batch(records);
        let tally = tally.clone();
        tasks.spawn(async move {
            for f in futures {
                let result = f.await;
                let done = Instant::now();
                let second = done.duration_since(start).as_secs() as usize;
                let mut t = tally.lock().unwrap_or_else(PoisonError::into_inner);
                match result {
                    Ok(_) => {
                        let s = t.at(second);
                        s.delivered += 1;
                        s.latency
                            .add(done.duration_since(sent_at).as_micros() as u64);
                    }
                    Err(e) => {
                        t.at(second).errors += 1;
                        t.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
        });
        // Reap finished delivery tasks so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    let _ = producer.flush().await;
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    let t = tally.lock().unwrap_or_else(PoisonError::into_inner);
    // Deliveries that landed after the last reported second.
    for (i, s) in t.seconds.iter().enumerate().skip(reported) {
        if s.delivered + s.errors > 0 {
            let from = Duration::from_secs(i as u64);
            let target = if total.is_some_and(|t| from >= t) {
                0.0
            } else {
                profile.records_between(from, from + Duration::from_secs(1))
            };
            let sent = sent_per_second.get(i).copied().unwrap_or(0);
            report(i, target, sent, s, "tail", a.json);
        }
    }
    let mut all = Histogram::default();
    let (mut delivered, mut errors) = (0, 0);
    for s in &t.seconds {
        all.merge(&s.latency);
        delivered += s.delivered;
        errors += s.errors;
    }
    let secs = elapsed.as_secs_f64();
    if a.json {
        println!(
            "{}",
            json!({
                "type": "summary", "seconds": (secs * 1000.0).round() / 1000.0, "sent": sent_total,
                "delivered": delivered, "errors": errors,
                "rate": (delivered as f64 / secs.max(1e-9) * 10.0).round() / 10.0,
                "latency_ms": {"p50": ms(all.quantile(0.5)), "p99": ms(all.quantile(0.99)), "max": ms(all.max())},
                "first_error": t.first_error,
            })
        );
    } else {
        eprintln!();
        eprintln!("  {:<22} {:>12}", "duration", format!("{secs:.2} s"));
        eprintln!("  {:<22} {:>12}", "records sent", sent_total);
        eprintln!("  {:<22} {:>12}", "records delivered", delivered);
        eprintln!("  {:<22} {:>12}", "errors", errors);
        eprintln!(
            "  {:<22} {:>12}",
            "average rate",
            format!("{:.1}/s", delivered as f64 / secs.max(1e-9))
        );
        eprintln!(
            "  {:<22} {:>12}",
            "latency p50",
            format!("{:.2} ms", ms(all.quantile(0.5)))
        );
        eprintln!(
            "  {:<22} {:>12}",
            "latency p99",
            format!("{:.2} ms", ms(all.quantile(0.99)))
        );
        eprintln!(
            "  {:<22} {:>12}",
            "latency max",
            format!("{:.2} ms", ms(all.max()))
        );
    }
    if interrupted {
        return Err(Failure::with_code("interrupted", 130));
    }
    if errors > 0 {
        return Err(Failure::with_code(
            format!(
                "{errors} of {sent_total} record(s) not delivered (first error: {})",
                t.first_error.as_deref().unwrap_or("?")
            ),
            3,
        ));
    }
    Ok(())
}
