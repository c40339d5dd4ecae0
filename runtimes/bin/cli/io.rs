//! `produce`, `consume` and `offsets`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use clap::Args;
use kafka_sansio::client::{
    BorrowedRecord, ConsumedRecord, GroupProtocol, IsolationLevel, Offset, OffsetReset, OffsetSpec,
    RecordBuffer, TopicPartition, UnknownTopicHandling,
};
use kafka_sansio::messages::consumer_offsets::{ConsumerOffsetsRecord, parse_record};
use kafka_sansio::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_sansio::runtime::Client;
use serde_json::json;

use crate::format::{Fields, Format};
use crate::spec::{self, StartAt};
use crate::{ConnectionArgs, Failure, Outcome, admin, interactive};

/// `produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The topic.
    #[arg(short, long)]
    topic: String,
    /// The partition (default: the partitioner: murmur2 of the key, sticky without).
    #[arg(short, long)]
    partition: Option<i32>,
    /// Read records from this file instead of stdin.
    #[arg(short, long)]
    file: Option<PathBuf>,
    /// Split each line at the first DELIM into key and value.
    #[arg(short = 'K', long = "key-delimiter", value_name = "DELIM")]
    key_delimiter: Option<String>,
    /// A header `KEY=VALUE` on every record (repeatable).
    #[arg(short = 'H', long = "header", value_parser = spec::parse_header)]
    headers: Vec<(String, Option<Vec<u8>>)>,
    /// Acknowledgements: all, 1 or 0 (1 and 0 turn idempotence off).
    #[arg(short, long, default_value = "all", value_parser = spec::parse_acks, allow_hyphen_values = true)]
    acks: i16,
    /// Compression: none, gzip, snappy, lz4, zstd.
    #[arg(short = 'z', long, default_value = "none", value_parser = spec::parse_compression)]
    compression: kafka_sansio::records::Compression,
    /// Turn idempotent writes off.
    #[arg(long)]
    no_idempotence: bool,
    /// How long a batch waits for more records.
    #[arg(long, default_value = "5ms", value_parser = spec::parse_duration)]
    linger: Duration,
    /// Keep empty lines as records with an empty value (default: skip them).
    #[arg(long)]
    keep_empty: bool,
    /// Read and split the input into records, and send nothing (no connection):
    /// checks the lines (with -K), and measures the tool's own part of producing.
    #[arg(long)]
    dry_run: bool,
}

/// Counts of the deliveries.
#[derive(Debug, Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

/// What the reader thread hands over.
enum Input {
    /// A batch of this many records was handed to the producer; its deliveries.
    Sent(u64, kafka_sansio::runtime::BatchDelivery),
    /// A batch of this many records was read (`--dry-run`: nothing sent).
    Read(u64),
    Bad(String),
}

/// Splits one line (without its newline) into its key and value, both slices of
/// the line.
pub fn line_parts<'a>(
    line: &'a [u8],
    key_delimiter: Option<&[u8]>,
) -> Result<(Option<&'a [u8]>, &'a [u8]), String> {
    match key_delimiter {
        None => Ok((None, line)),
        Some(d) => {
            let at = line.windows(d.len()).position(|w| w == d).ok_or_else(|| {
                format!(
                    "no key delimiter {:?} in the line",
                    String::from_utf8_lossy(d)
                )
            })?;
            Ok((Some(&line[..at]), &line[at + d.len()..]))
        }
    }
}

/// How much input is read at once.
const READ_BLOCK: usize = 128 * 1024;

/// Records handed to the producer at once.
const BATCH: usize = 1000;

/// Batches of [`BATCH`] records in the producer's hands at most.
const IN_FLIGHT_BATCHES: usize = 16;

/// Reads `input` in blocks and hands each complete line (without its newline) to
/// `each` as `Some(line)`, a slice of the block it was read in: lines are never
/// copied, and the block's memory is reused for the next read. A last line without
/// a newline counts too. After the lines of each read comes `None` (so what was
/// typed on a terminal goes out at once). `each` stops the reading by answering
/// `false`.
fn read_lines(
    input: &mut dyn std::io::Read,
    mut each: impl FnMut(Option<&[u8]>) -> bool,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    // `buf[..filled]` holds what was read and not yet handed out: a partial line.
    let mut filled = 0;
    loop {
        if buf.len() - filled < READ_BLOCK / 4 {
            buf.resize(filled + READ_BLOCK, 0);
        }
        let n = loop {
            match input.read(&mut buf[filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            if filled > 0 && each(Some(&buf[..filled])) {
                each(None);
            }
            return Ok(());
        }
        let read_from = filled;
        filled += n;
        // Complete lines only; a partial one waits for the next read.
        if let Some(end) = memchr::memrchr(b'\n', &buf[read_from..filled]) {
            let end = read_from + end;
            let mut start = 0;
            while start <= end {
                let stop = memchr::memchr(b'\n', &buf[start..=end]).map_or(end, |i| start + i);
                if !each(Some(&buf[start..stop])) {
                    return Ok(());
                }
                start = stop + 1;
            }
            buf.copy_within(end + 1..filled, 0);
            filled -= end + 1;
        }
        if !each(None) {
            return Ok(());
        }
    }
}

fn progress(what: &'static str) -> Option<indicatif::ProgressBar> {
    if !interactive() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {pos} {msg} ({per_sec}, {elapsed})")
    {
        bar.set_style(style);
    }
    bar.set_message(what);
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

/// `produce`.
pub async fn produce(conn: &ConnectionArgs, a: ProduceArgs) -> Outcome {
    if a.key_delimiter.as_deref() == Some("") {
        return Err(Failure::with_code("-K: the key delimiter is empty", 2));
    }
    let idempotence = !a.no_idempotence && a.acks == -1;
    let (acks, compression, linger) = (a.acks, a.compression, a.linger);
    let timeout = conn.timeout;
    let client = if a.dry_run {
        None
    } else {
        let client = conn
            .connect(|c| {
                c.producer.acks = acks;
                c.producer.idempotence = idempotence;
                c.producer.compression = compression;
                c.producer.linger = linger;
                // --timeout bounds each record's delivery too.
                c.producer.delivery_timeout = timeout;
            })
            .await?;
        let meta = admin::described(&client, vec![a.topic.clone()]).await?;
        if let Some(p) = a.partition
            && !meta[0].partitions.iter().any(|m| m.partition == p)
        {
            return Err(Failure::new(format!(
                "topic {:?} has no partition {p}",
                a.topic
            )));
        }
        Some(client)
    };
    let input: Box<dyn std::io::Read + Send> = match &a.file {
        Some(path) => Box::new(
            std::fs::File::open(path)
                .map_err(|e| Failure::new(format!("cannot open {}: {e}", path.display())))?,
        ),
        None => Box::new(std::io::stdin()),
    };
    let topic: Arc<str> = a.topic.as_str().into();
    let producer = client.as_ref().map(Client::producer);
    // The reader thread hands each batch to the producer itself and its deliveries
    // to this task; the channel's bound is how many batches may be in the
    // producer's hands and not yet delivered: enough to keep it busy, few enough
    // that memory stays small.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Input>(IN_FLIGHT_BATCHES);
    let runtime = tokio::runtime::Handle::current();
    {
        let topic = topic.clone();
        let producer = producer.clone();
        let delimiter = a.key_delimiter.clone().map(String::into_bytes);
        let (partition, headers, keep_empty) = (a.partition, a.headers.clone(), a.keep_empty);
        let mut input = input;
        std::thread::spawn(move || {
            let headers: Vec<kafka_sansio::client::RecordHeader> = headers
                .into_iter()
                .map(|(key, value)| kafka_sansio::client::RecordHeader {
                    key,
                    value: value.map(Bytes::from),
                })
                .collect();
            // Each line is copied once, into the batch's buffer, which goes to the
            // producer whole: nothing of this thread's is shared with the driver.
            let new_batch = || RecordBuffer::with_capacity(BATCH, BATCH * 128);
            let mut batch = new_batch();
            let mut number = 0u64;
            let mut bad = None;
            let mut closed = false;
            // Hands the batch over (to the producer, or only counted in a dry run).
            // `false`: the channel is closed (Ctrl-C), and the batch was not sent.
            let hand_over = |batch: &mut RecordBuffer| {
                // A place in the channel first: once it is ours, the batch goes to
                // the producer and its deliveries will be counted.
                let Ok(place) = runtime.block_on(tx.reserve()) else {
                    return false;
                };
                let full = std::mem::replace(batch, new_batch());
                let count = full.len() as u64;
                place.send(match &producer {
                    Some(p) => Input::Sent(count, p.send_buffer(full)),
                    None => Input::Read(count),
                });
                true
            };
            let read = read_lines(&mut *input, |line| {
                let Some(line) = line else {
                    // What one read brought goes out now (a line typed on a
                    // terminal is sent at once).
                    if batch.is_empty() {
                        return true;
                    }
                    closed = !hand_over(&mut batch);
                    return !closed;
                };
                number += 1;
                if line.is_empty() && !keep_empty {
                    return true;
                }
                match line_parts(line, delimiter.as_deref()) {
                    Ok((key, value)) => batch.push(BorrowedRecord {
                        topic: &topic,
                        partition,
                        key,
                        value: Some(value),
                        headers: &headers,
                        timestamp: None,
                    }),
                    Err(e) => {
                        bad = Some(format!("line {number}: {e}"));
                        return false;
                    }
                }
                if batch.len() >= BATCH {
                    closed = !hand_over(&mut batch);
                    return !closed;
                }
                true
            });
            if closed {
                return;
            }
            if !batch.is_empty() && !hand_over(&mut batch) {
                return;
            }
            if let Some(e) = bad {
                let _ = tx.blocking_send(Input::Bad(e));
            } else if let Err(e) = read {
                let _ = tx.blocking_send(Input::Bad(format!("reading input: {e}")));
            }
        });
    }
    let counts = Deliveries::default();
    let bar = progress("records delivered");
    let started = Instant::now();
    let mut sent = 0u64;
    let mut problem: Option<Failure> = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let input = tokio::select! {
            input = rx.recv() => input,
            _ = &mut ctrl_c, if problem.is_none() => {
                // Nothing more is handed over; what was is still delivered and
                // counted (the channel drains, then ends).
                problem = Some(Failure::with_code("interrupted", 130));
                rx.close();
                continue;
            }
        };
        match input {
            None => break,
            Some(Input::Bad(e)) => {
                problem.get_or_insert(Failure::new(e));
            }
            Some(Input::Read(count)) => sent += count,
            Some(Input::Sent(count, deliveries)) => {
                sent += count;
                let (mut delivered, mut failed) = (0u64, 0u64);
                for result in deliveries.await {
                    match result {
                        Ok(_) => delivered += 1,
                        Err(e) => {
                            failed += 1;
                            let mut first = counts
                                .first_error
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            first.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                counts.delivered.fetch_add(delivered, Ordering::Relaxed);
                counts.failed.fetch_add(failed, Ordering::Relaxed);
                if let Some(b) = &bar {
                    b.inc(delivered);
                }
            }
        }
    }
    if producer.is_none() {
        eprintln!(
            "read {sent} record(s) for {} in {:.2} s (dry run: nothing sent)",
            a.topic,
            started.elapsed().as_secs_f64()
        );
        return problem.map_or(Ok(()), Err);
    }
    // Everything handed over is delivered or has failed before the summary.
    if let Some(p) = &producer {
        let _ = p.flush().await;
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let delivered = counts.delivered.load(Ordering::Relaxed);
    let failed = counts.failed.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "produced {sent} record(s) to {}: {delivered} delivered, {failed} failed in {secs:.2} s ({:.0}/s)",
        a.topic,
        delivered as f64 / secs.max(1e-9)
    );
    if let Some(p) = problem {
        return Err(p);
    }
    if failed > 0 {
        let first = counts
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .unwrap_or_default();
        return Err(Failure::with_code(
            format!("{failed} of {sent} record(s) not delivered (first error: {first})"),
            3,
        ));
    }
    Ok(())
}

/// `consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The topic.
    #[arg(short, long)]
    topic: String,
    /// Only these partitions (repeatable; default: all).
    #[arg(short, long = "partition")]
    partitions: Vec<i32>,
    /// Where to start: beginning, end, an offset N, -N (N records before the end),
    /// or @TIMESTAMP_MS. Default: end. With -G the committed offsets: beginning
    /// (the default) or end says where a partition without one starts.
    #[arg(short, long, allow_hyphen_values = true, value_parser = spec::parse_start)]
    offset: Option<StartAt>,
    /// Exit once every partition's end (as of the start) is reached.
    #[arg(short, long)]
    exit: bool,
    /// Exit after this many records.
    #[arg(short, long)]
    count: Option<u64>,
    /// Output format (kcat's tokens: %t %p %o %T %k %K %s %S %h %%, escapes \n \t \r \\).
    #[arg(short, long, conflicts_with = "json")]
    format: Option<String>,
    /// Print key DELIM value per line (a shorthand for -f '%kDELIM%s\n').
    #[arg(
        short = 'K',
        long = "key-delimiter",
        value_name = "DELIM",
        conflicts_with = "format"
    )]
    key_delimiter: Option<String>,
    /// One JSON object per record.
    #[arg(long)]
    json: bool,
    /// Consume as a member of this group (as kcat -G): join, consume the partitions
    /// the group assigns from their committed offsets, commit what was printed
    /// (every second, before partitions move, and at exit) and leave on exit. With
    /// -e, exit once every assigned partition is at its end.
    #[arg(short = 'G', long = "group")]
    pub group: Option<String>,
    /// With -G, the group protocol: classic (JoinGroup/SyncGroup, the default) or
    /// consumer (KIP-848, where the coordinator offers it; else classic).
    #[arg(long, value_name = "PROTOCOL", value_parser = parse_group_protocol, requires = "group", default_value = "classic")]
    group_protocol: GroupProtocol,
    /// With -G, the session timeout (session.timeout.ms, default 45s): how long
    /// the coordinator keeps this member without a heartbeat. Heartbeats go every
    /// third of it, at most every 3s. Some brokers (tansu) hold every join for half
    /// of it.
    #[arg(long, value_name = "DURATION", value_parser = spec::parse_duration, requires = "group")]
    session_timeout: Option<Duration>,
    /// Which records to read: read_uncommitted (every record written, the Java
    /// client's default) or read_committed (only what transactions committed, and
    /// nothing past a transaction still open: kcat's isolation.level default). With
    /// -e the end is then the last stable offset.
    #[arg(long, value_name = "LEVEL", value_parser = parse_isolation, default_value = "read_uncommitted")]
    isolation: IsolationLevel,
}

fn parse_isolation(text: &str) -> Result<IsolationLevel, String> {
    match text.to_ascii_lowercase().replace('-', "_").as_str() {
        "read_uncommitted" | "uncommitted" => Ok(IsolationLevel::ReadUncommitted),
        "read_committed" | "committed" => Ok(IsolationLevel::ReadCommitted),
        _ => Err(format!(
            "{text:?}: expected read_uncommitted or read_committed"
        )),
    }
}

/// Where the log ends for a reader at `isolation`: the high watermark, or the last
/// stable offset at read_committed.
fn end_spec(isolation: IsolationLevel) -> OffsetSpec {
    match isolation {
        IsolationLevel::ReadCommitted => OffsetSpec::LastStable,
        IsolationLevel::ReadUncommitted => OffsetSpec::Latest,
    }
}

fn parse_group_protocol(text: &str) -> Result<GroupProtocol, String> {
    match text.to_ascii_lowercase().as_str() {
        "classic" => Ok(GroupProtocol::Classic),
        "consumer" => Ok(GroupProtocol::Consumer),
        _ => Err(format!("{text:?}: expected classic or consumer")),
    }
}

/// One partition to consume: where from, and where its end was at the start.
#[derive(Debug, Clone)]
struct Plan {
    tp: TopicPartition,
    start: i64,
    end: i64,
}

async fn plan(
    client: &Client,
    topic: &str,
    only: &[i32],
    at: StartAt,
    group: Option<&str>,
    end_at: OffsetSpec,
) -> Outcome<Vec<Plan>> {
    let meta = admin::described(client, vec![topic.to_owned()]).await?;
    let mut partitions: Vec<i32> = meta[0].partitions.iter().map(|p| p.partition).collect();
    partitions.sort_unstable();
    for p in only {
        if !partitions.contains(p) {
            return Err(Failure::new(format!(
                "topic {topic:?} has no partition {p}"
            )));
        }
    }
    if !only.is_empty() {
        partitions.retain(|p| only.contains(p));
    }
    let committed: BTreeMap<i32, i64> = match (at, group) {
        (StartAt::Stored, Some(g)) => client
            .fetch_committed(
                g,
                partitions
                    .iter()
                    .map(|p| TopicPartition::new(topic, *p))
                    .collect(),
            )
            .await?
            .into_iter()
            .map(|c| (c.partition.partition, c.offset.unwrap_or(-1)))
            .collect(),
        (StartAt::Stored, None) => {
            return Err(Failure::with_code("-o stored needs a group (-G)", 2));
        }
        _ => BTreeMap::new(),
    };
    let mut plans = Vec::new();
    for p in partitions {
        let pc = client
            .partition_client(topic, p, UnknownTopicHandling::Error)
            .await?;
        let earliest = pc.get_offset(OffsetSpec::Earliest).await?;
        let end = pc.get_offset(end_at).await?;
        let start = match at {
            StartAt::Beginning => earliest,
            StartAt::End => end,
            StartAt::Offset(n) => n.clamp(earliest, end),
            StartAt::FromEnd(n) => spec::from_end(earliest, end, n),
            StartAt::Timestamp(ts) => {
                let o = pc.get_offset(OffsetSpec::Timestamp(ts)).await?;
                if o < 0 { end } else { o }
            }
            StartAt::Stored => match committed.get(&p) {
                Some(&c) if c >= 0 => c.clamp(earliest, end),
                _ => earliest,
            },
        };
        plans.push(Plan {
            tp: TopicPartition::new(topic, p),
            start,
            end,
        });
    }
    Ok(plans)
}

/// Consumes the planned partitions, handing each record to `on_record`, until the
/// ends (with `exit_at_end`), `max` records, Ctrl-C, or forever. Returns the count.
async fn run_consumer(
    client: &Client,
    plans: &[Plan],
    exit_at_end: bool,
    max: Option<u64>,
    mut on_record: impl FnMut(&ConsumedRecord) -> Outcome<bool>,
    mut flush: impl FnMut() -> Outcome,
) -> Outcome<u64> {
    let mut consumer = client.consumer();
    // Per partition (the plans are of one topic): the next offset and the end.
    let mut parts: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    let mut open: usize = 0;
    for p in plans {
        consumer.assign(vec![p.tp.clone()], Offset::At(p.start))?;
        parts.insert(p.tp.partition, (p.start, p.end));
        if p.start < p.end {
            open += 1;
        }
    }
    let mut count = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut interrupted = false;
    let done =
        |open: usize, count: u64| (exit_at_end && open == 0) || max.is_some_and(|m| count >= m);
    // A partition's end may lie past its last record (a log written by a
    // transactional producer ends with a marker): with -e, the consumer's
    // positions are looked at whenever no record came for a while.
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !done(open, count) {
        tokio::select! {
            _ = ticks.tick(), if exit_at_end => {
                for (tp, position) in consumer.positions().await? {
                    let Some(state) = parts.get_mut(&tp.partition) else {
                        continue;
                    };
                    let (before, end) = *state;
                    if before < end && position >= end {
                        open = open.saturating_sub(1);
                    }
                    state.0 = state.0.max(position);
                }
            }
            batch = consumer.recv_batch() => {
                let batch = match batch {
                    Ok(b) => b,
                    Err(kafka_sansio::client::ClientError::Closed) => {
                        return Err(Failure::new("the client closed"));
                    }
                    Err(e) => {
                        eprintln!("kafka-sansio: consuming: {e}");
                        continue;
                    }
                };
                for r in &batch {
                    let Some(state) = parts.get_mut(&r.partition) else {
                        continue;
                    };
                    let (before, end) = *state;
                    if r.record.offset < before {
                        continue;
                    }
                    if before < end && r.record.offset + 1 >= end {
                        open = open.saturating_sub(1);
                    }
                    state.0 = r.record.offset + 1;
                    if on_record(r)? {
                        count += 1;
                    }
                    if done(open, count) {
                        break;
                    }
                }
                flush()?;
                ticks.reset();
            }
            _ = &mut ctrl_c => {
                interrupted = true;
                break;
            }
        }
    }
    flush()?;
    if interrupted {
        return Err(Failure::with_code(
            format!("interrupted after {count} record(s)"),
            130,
        ));
    }
    Ok(count)
}

/// One partition a group member consumes, for `-e`: where it started and where
/// its log ended when the group gave it to this member.
#[derive(Debug, Clone, Copy)]
struct Held {
    next: i64,
    end: i64,
}

/// Where a partition the group just gave this member starts (its committed offset,
/// else the reset policy's end of the log) and where its log ends now.
async fn held_from(
    client: &Client,
    group: &str,
    tps: &[TopicPartition],
    reset: OffsetReset,
    end_at: OffsetSpec,
) -> Outcome<Vec<(TopicPartition, Held)>> {
    let committed: BTreeMap<TopicPartition, i64> = client
        .fetch_committed(group, tps.to_vec())
        .await?
        .into_iter()
        .map(|c| (c.partition, c.offset.unwrap_or(-1)))
        .collect();
    let mut out = Vec::with_capacity(tps.len());
    for tp in tps {
        let pc = client
            .partition_client(&tp.topic, tp.partition, UnknownTopicHandling::Error)
            .await?;
        let earliest = pc.get_offset(OffsetSpec::Earliest).await?;
        let end = pc.get_offset(end_at).await?;
        let next = match committed.get(tp) {
            Some(&c) if c >= 0 => c.clamp(earliest, end),
            _ => match reset {
                OffsetReset::Latest => end,
                _ => earliest,
            },
        };
        out.push((tp.clone(), Held { next, end }));
    }
    Ok(out)
}

/// Consumes `topic` as a member of `group` (the client was built with it): joins,
/// consumes what the group assigns, auto-commits what was handed out (every second
/// and before partitions move), and on the way out commits what was printed and
/// leaves the group. With `exit_at_end`, stops once every partition this member
/// holds is at the end its log had when assigned; `max` stops after that many
/// records; Ctrl-C stops too (exit status 130, after the commit and the leave).
/// What a group member consumes and when it stops.
struct GroupRun<'a> {
    topic: &'a str,
    group: &'a str,
    /// Where a partition without a committed offset starts.
    reset: OffsetReset,
    exit_at_end: bool,
    max: Option<u64>,
    /// The bound of the final commit and leave.
    timeout: Duration,
    /// Where a partition's log ends for this reader (for `exit_at_end`).
    end_at: OffsetSpec,
}

async fn run_group_consumer(
    client: &Client,
    run: GroupRun<'_>,
    mut on_record: impl FnMut(&ConsumedRecord) -> Outcome<bool>,
    mut flush: impl FnMut() -> Outcome,
) -> Outcome<u64> {
    let GroupRun {
        topic,
        group,
        reset,
        exit_at_end,
        max,
        timeout,
        end_at,
    } = run;
    // The topic must exist: a subscription to an unknown one would wait forever.
    admin::described(client, vec![topic.to_owned()]).await?;
    let mut consumer = client.consumer();
    consumer.subscribe([topic])?;
    let mut held: BTreeMap<TopicPartition, Held> = BTreeMap::new();
    let mut assigned_once = false;
    let mut count = 0u64;
    // Rebalances arrive while records are awaited; look at them this often even
    // when no record comes (a partition assigned at its end brings none).
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut interrupted = false;
    let mut problem: Option<Failure> = None;
    // The offset after the last record printed, per partition (records may come
    // before the rebalance that assigned their partition is looked at).
    let mut printed: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    let at_end = |held: &BTreeMap<TopicPartition, Held>,
                  printed: &BTreeMap<TopicPartition, i64>,
                  assigned_once: bool| {
        exit_at_end
            && assigned_once
            && held
                .iter()
                .all(|(tp, h)| h.next.max(printed.get(tp).copied().unwrap_or(-1)) >= h.end)
    };
    'consume: loop {
        for rebalance in consumer.rebalances() {
            assigned_once = true;
            for tp in rebalance.revoked.iter().chain(&rebalance.lost) {
                held.remove(tp);
            }
            if exit_at_end && !rebalance.assigned.is_empty() {
                match held_from(client, group, &rebalance.assigned, reset, end_at).await {
                    Ok(h) => held.extend(h),
                    Err(f) => {
                        problem = Some(f);
                        break 'consume;
                    }
                }
            }
        }
        if at_end(&held, &printed, assigned_once) || max.is_some_and(|m| count >= m) {
            break;
        }
        let first = tokio::select! {
            r = consumer.recv() => r,
            _ = ticks.tick() => {
                // With -e: where the consumer is, for partitions whose end lies
                // past their last record (a transaction marker).
                if exit_at_end && !held.is_empty() {
                    match consumer.positions().await {
                        Ok(positions) => {
                            for (tp, position) in positions {
                                let next = printed.entry(tp).or_insert(0);
                                *next = (*next).max(position);
                            }
                        }
                        Err(e) => {
                            problem = Some(Failure::new(format!("consuming: {e}")));
                            break 'consume;
                        }
                    }
                }
                continue;
            }
            _ = &mut ctrl_c => {
                interrupted = true;
                break;
            }
        };
        let mut next = Some(first);
        // What the consumer holds already, without waiting, then one flush.
        while let Some(r) = next.take() {
            match r {
                Ok(r) => {
                    if exit_at_end {
                        let tp = TopicPartition::new(r.topic.clone(), r.partition);
                        let next = printed.entry(tp).or_insert(0);
                        *next = (*next).max(r.record.offset + 1);
                    }
                    match on_record(&r) {
                        Ok(true) => count += 1,
                        Ok(false) => {}
                        Err(f) => {
                            problem = Some(f);
                            break 'consume;
                        }
                    }
                    if max.is_some_and(|m| count >= m) {
                        break;
                    }
                }
                Err(kafka_sansio::client::ClientError::Closed) => {
                    problem = Some(Failure::new("the client closed"));
                    break 'consume;
                }
                Err(e @ kafka_sansio::client::ClientError::InvalidArgument(_)) => {
                    problem = Some(Failure::new(format!("group {group:?}: {e}")));
                    break 'consume;
                }
                Err(e) => eprintln!("kafka-sansio: consuming: {e}"),
            }
            next = futures_lite::future::poll_once(consumer.recv()).await;
        }
        if let Err(f) = flush() {
            problem = Some(f);
            break;
        }
    }
    let flushed = flush();
    // Commit what was handed out (records held back go back first) and leave, so
    // the group moves on at once; bounded like every other operation.
    let closed = match tokio::time::timeout(timeout, consumer.close()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::new(format!(
            "committing and leaving group {group:?}: {e}"
        ))),
        Err(_) => Err(Failure::new(format!(
            "committing and leaving group {group:?}: no answer within {timeout:?}"
        ))),
    };
    if let Some(p) = problem {
        return Err(p);
    }
    flushed?;
    if interrupted {
        let also = closed.err().map(|f| format!("; {}", f.message));
        return Err(Failure::with_code(
            format!(
                "interrupted after {count} record(s){}",
                also.unwrap_or_default()
            ),
            130,
        ));
    }
    closed?;
    Ok(count)
}

fn bytes_json(obj: &mut serde_json::Map<String, serde_json::Value>, name: &str, b: Option<&[u8]>) {
    match b {
        None => {
            obj.insert(name.into(), serde_json::Value::Null);
        }
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => {
                obj.insert(name.into(), s.into());
            }
            Err(_) => {
                obj.insert(name.into(), serde_json::Value::Null);
                obj.insert(
                    format!("{name}_base64"),
                    base64::engine::general_purpose::STANDARD.encode(b).into(),
                );
            }
        },
    }
}

/// A consumed record as a JSON object: key and value as strings when UTF-8, else
/// null with `key_base64`/`value_base64`.
pub fn record_json(r: &ConsumedRecord) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    obj.insert("topic".into(), (*r.topic).into());
    obj.insert("partition".into(), r.partition.into());
    obj.insert("offset".into(), r.record.offset.into());
    obj.insert("timestamp".into(), r.record.timestamp.into());
    bytes_json(&mut obj, "key", r.record.key());
    bytes_json(&mut obj, "value", r.record.value());
    let headers: Vec<serde_json::Value> = r
        .record
        .headers()
        .map(|h| {
            let mut o = serde_json::Map::new();
            o.insert(
                "key".into(),
                String::from_utf8_lossy(h.key).into_owned().into(),
            );
            bytes_json(&mut o, "value", h.value);
            o.into()
        })
        .collect();
    obj.insert("headers".into(), headers.into());
    obj.into()
}

/// `consume`.
pub async fn consume(conn: &ConnectionArgs, a: ConsumeArgs) -> Outcome {
    let format = match (&a.format, &a.key_delimiter) {
        (Some(f), _) => Format::parse(f).map_err(|e| Failure::with_code(e.to_string(), 2))?,
        (None, Some(d)) => Format::parse(&format!("%k{}%s\\n", d.replace('%', "%%")))
            .map_err(|e| Failure::with_code(e.to_string(), 2))?,
        (None, None) => Format::parse("%s\\n").map_err(|e| Failure::new(e.to_string()))?,
    };
    // With a group the start is the group's committed offset; -o beginning or end
    // only says where a partition without one starts (auto.offset.reset, as kcat).
    let reset = match (&a.group, a.offset) {
        (None, _) => OffsetReset::Earliest,
        (Some(_), None | Some(StartAt::Stored | StartAt::Beginning)) => OffsetReset::Earliest,
        (Some(_), Some(StartAt::End)) => OffsetReset::Latest,
        (Some(_), Some(_)) => {
            return Err(Failure::with_code(
                "-o with -G: a group starts from its committed offsets; -o beginning or end says where a partition without one starts (move them with `groups reset-offsets`)",
                2,
            ));
        }
    };
    if a.group.is_some() && !a.partitions.is_empty() {
        return Err(Failure::with_code(
            "-p with -G: the group assigns the partitions",
            2,
        ));
    }
    let (group, group_protocol) = (a.group.clone(), a.group_protocol);
    let session_timeout = a.session_timeout;
    let isolation = a.isolation;
    let client = conn
        .connect(|c| {
            c.consumer.group_id = group;
            c.consumer.isolation = isolation;
            c.consumer.group_protocol = group_protocol;
            if let Some(session) = session_timeout {
                c.consumer.session_timeout = session;
                c.consumer.heartbeat_interval = c.consumer.heartbeat_interval.min(session / 3);
            }
            c.consumer.auto_offset_reset = reset;
            // What was printed is committed every second, and before partitions
            // move to another member or this one leaves.
            c.consumer.enable_auto_commit = true;
            c.consumer.auto_commit_interval = Duration::from_secs(1);
        })
        .await?;
    let plans = match &a.group {
        Some(_) => Vec::new(),
        None => {
            let at = a.offset.unwrap_or(StartAt::End);
            plan(
                &client,
                &a.topic,
                &a.partitions,
                at,
                None,
                end_spec(isolation),
            )
            .await?
        }
    };
    let show_progress = !std::io::stdout().is_terminal_ext();
    let bar = if show_progress {
        progress("records consumed")
    } else {
        None
    };
    let stdout = std::io::stdout();
    // Shared by the record handler and the per-batch flush (a reader of a pipe
    // sees each batch as it arrives, as with kcat).
    let out = std::cell::RefCell::new(Output::new(stdout.lock()));
    let failed_write: std::cell::RefCell<Option<std::io::Error>> = std::cell::RefCell::new(None);
    let mut headers: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    let uses_headers = format.uses_headers();
    let json = a.json;
    let bar2 = bar.clone();
    let on_record = |r: &ConsumedRecord| {
        let mut out = out.borrow_mut();
        if json {
            let _ = writeln!(out.buf, "{}", record_json(r));
        } else {
            if uses_headers {
                headers.clear();
                headers.extend(r.record.headers().map(|h| {
                    (
                        String::from_utf8_lossy(h.key).into_owned(),
                        h.value.map(<[u8]>::to_vec),
                    )
                }));
            }
            // Rendered straight into the output buffer: the value is copied once.
            format.render(
                &Fields {
                    topic: &r.topic,
                    partition: r.partition,
                    offset: r.record.offset,
                    timestamp: r.record.timestamp,
                    key: r.record.key(),
                    value: r.record.value(),
                    headers: &headers,
                },
                &mut out.buf,
            );
        }
        if let Err(e) = out.spill_if_full() {
            *failed_write.borrow_mut() = Some(e);
            return Err(Failure::new("writing output failed"));
        }
        if let Some(b) = &bar2 {
            b.inc(1);
        }
        Ok(true)
    };
    let flush = || {
        out.borrow_mut().flush().map_err(|e| {
            *failed_write.borrow_mut() = Some(e);
            Failure::new("writing output failed")
        })
    };
    let count = match &a.group {
        Some(g) => {
            let run = GroupRun {
                topic: &a.topic,
                group: g,
                reset,
                exit_at_end: a.exit,
                max: a.count,
                timeout: conn.timeout,
                end_at: end_spec(isolation),
            };
            run_group_consumer(&client, run, on_record, flush).await
        }
        None => run_consumer(&client, &plans, a.exit, a.count, on_record, flush).await,
    };
    let flushed = out.borrow_mut().flush();
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(e) = failed_write.into_inner() {
        // A closed pipe (`| head`) is a normal way to stop reading.
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(());
        }
        return Err(Failure::new(format!("writing output: {e}")));
    }
    let count = count?;
    flushed?;
    if bar.is_some() || a.exit {
        eprintln!("consumed {count} record(s) from {}", a.topic);
    }
    Ok(())
}

/// Output bytes gathered in one buffer and written in large pieces.
struct Output<W: Write> {
    buf: Vec<u8>,
    sink: W,
}

impl<W: Write> Output<W> {
    /// Bytes gathered before they are written.
    const CHUNK: usize = 256 * 1024;

    fn new(sink: W) -> Self {
        Self {
            buf: Vec::with_capacity(Self::CHUNK + 4096),
            sink,
        }
    }

    /// Writes what was gathered once it is a chunk.
    fn spill_if_full(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= Self::CHUNK {
            self.sink.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes everything gathered and flushes the sink.
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.sink.write_all(&self.buf)?;
            self.buf.clear();
        }
        self.sink.flush()
    }
}

trait TerminalExt {
    fn is_terminal_ext(&self) -> bool;
}

impl TerminalExt for std::io::Stdout {
    fn is_terminal_ext(&self) -> bool {
        std::io::IsTerminal::is_terminal(self)
    }
}

/// `offsets`.
#[derive(Debug, Args)]
pub struct OffsetsArgs {
    /// Only records of this group.
    #[arg(short = 'G', long)]
    pub group: Option<String>,
    /// Only offset commits of this topic (and group metadata mentioning it).
    #[arg(short, long)]
    topic: Option<String>,
    /// One JSON object per record.
    #[arg(long)]
    json: bool,
    /// Keep reading new records instead of exiting at the end.
    #[arg(long)]
    follow: bool,
    /// Include tombstones (deleted offsets and groups).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tombstones: bool,
    /// Read the records from this topic instead (a mirror or a copy of
    /// `__consumer_offsets`, as tools that replicate it write).
    #[arg(long, default_value = "__consumer_offsets")]
    source_topic: String,
}

/// One decoded `__consumer_offsets` record for printing.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The record kind.
    pub kind: &'static str,
    /// Its group.
    pub group: Option<String>,
    /// Topics it mentions.
    pub topics: Vec<String>,
    /// One line of text.
    pub text: String,
    /// The JSON form.
    pub json: serde_json::Value,
}

fn versioned_member<T: kafka_sansio::wire::Message>(b: &Bytes) -> Option<T> {
    if b.is_empty() {
        return None;
    }
    kafka_sansio::wire::decode_versioned::<T>(&mut b.clone())
        .ok()
        .map(|v| v.data)
}

/// Decodes one `__consumer_offsets` record into text and JSON.
pub fn decode_offsets_record(key: &Bytes, value: Option<&Bytes>) -> Decoded {
    let record = match parse_record(key, value) {
        Ok(r) => r,
        Err(e) => {
            return Decoded {
                kind: "undecodable",
                group: None,
                topics: Vec::new(),
                text: format!("undecodable: {e}"),
                json: json!({"type": "undecodable", "error": e.to_string()}),
            };
        }
    };
    match record {
        ConsumerOffsetsRecord::OffsetCommit(e) => {
            let (group, topic, partition) = (
                e.key.group.to_string(),
                e.key.topic.to_string(),
                e.key.partition,
            );
            let (text, json) = match &e.value {
                None => (
                    format!(
                        "offset-commit group={group} topic={topic} partition={partition} (tombstone)"
                    ),
                    json!({"type": "offset-commit", "group": group, "topic": topic, "partition": partition, "tombstone": true}),
                ),
                Some(v) => {
                    let d = &v.data;
                    (
                        format!(
                            "offset-commit group={group} topic={topic} partition={partition} offset={} leader_epoch={} metadata={:?} commit_timestamp={} expire_timestamp={}",
                            d.offset,
                            d.leader_epoch,
                            &*d.metadata,
                            d.commit_timestamp,
                            d.expire_timestamp
                        ),
                        json!({
                            "type": "offset-commit", "group": group, "topic": topic, "partition": partition,
                            "offset": d.offset, "leader_epoch": d.leader_epoch, "metadata": &*d.metadata,
                            "commit_timestamp": d.commit_timestamp, "expire_timestamp": d.expire_timestamp,
                            "value_version": v.version,
                        }),
                    )
                }
            };
            Decoded {
                kind: "offset-commit",
                group: Some(group),
                topics: vec![topic],
                text,
                json,
            }
        }
        ConsumerOffsetsRecord::GroupMetadata(e) => {
            let group = e.key.group.to_string();
            let Some(v) = &e.value else {
                return Decoded {
                    kind: "group-metadata",
                    text: format!("group-metadata group={group} (tombstone)"),
                    json: json!({"type": "group-metadata", "group": group, "tombstone": true}),
                    group: Some(group),
                    topics: Vec::new(),
                };
            };
            let d = &v.data;
            let mut topics = Vec::new();
            let mut members_text = Vec::new();
            let mut members_json = Vec::new();
            for m in &d.members {
                let sub = versioned_member::<ConsumerProtocolSubscription>(&m.subscription);
                let asg = versioned_member::<ConsumerProtocolAssignment>(&m.assignment);
                let sub_topics: Vec<String> = sub
                    .as_ref()
                    .map(|s| s.topics.iter().map(ToString::to_string).collect())
                    .unwrap_or_default();
                let assigned: Vec<(String, Vec<i32>)> = asg
                    .as_ref()
                    .map(|a| {
                        a.assigned_partitions
                            .iter()
                            .map(|tp| {
                                (
                                    tp.topic.to_string(),
                                    tp.partitions.iter().copied().collect(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                topics.extend(sub_topics.iter().cloned());
                topics.extend(assigned.iter().map(|(t, _)| t.clone()));
                members_text.push(format!(
                    "[member={} client={} host={} session_timeout={} subscription={:?} assignment={}]",
                    &*m.member_id,
                    &*m.client_id,
                    &*m.client_host,
                    m.session_timeout,
                    sub_topics,
                    assigned
                        .iter()
                        .map(|(t, p)| format!("{t}:{p:?}"))
                        .collect::<Vec<_>>()
                        .join(",")
                ));
                members_json.push(json!({
                    "member_id": &*m.member_id,
                    "instance_id": m.group_instance_id.as_deref(),
                    "client_id": &*m.client_id, "host": &*m.client_host,
                    "rebalance_timeout": m.rebalance_timeout, "session_timeout": m.session_timeout,
                    "subscription": sub_topics,
                    "assignment": assigned.iter().map(|(t, p)| json!({"topic": t, "partitions": p})).collect::<Vec<_>>(),
                }));
            }
            topics.sort();
            topics.dedup();
            Decoded {
                kind: "group-metadata",
                text: format!(
                    "group-metadata group={group} protocol_type={} generation={} protocol={} leader={} members={}",
                    &*d.protocol_type,
                    d.generation,
                    d.protocol.as_deref().unwrap_or("-"),
                    d.leader.as_deref().unwrap_or("-"),
                    members_text.join(" ")
                ),
                json: json!({
                    "type": "group-metadata", "group": group, "protocol_type": &*d.protocol_type,
                    "generation": d.generation, "protocol": d.protocol.as_deref(),
                    "leader": d.leader.as_deref(), "current_state_timestamp": d.current_state_timestamp,
                    "members": members_json, "value_version": v.version,
                }),
                group: Some(group),
                topics,
            }
        }
        ConsumerOffsetsRecord::Unknown { key_version, .. } => Decoded {
            kind: "unknown",
            group: None,
            topics: Vec::new(),
            text: format!("unknown key_version={key_version}"),
            json: json!({"type": "unknown", "key_version": key_version}),
        },
        other => consumer_group_record(&other).unwrap_or_else(|| kip848(&other)),
    }
}

/// `k=v` pairs of a JSON object, in its key order, for the text form.
fn text_fields(kind: &str, fields: &serde_json::Value) -> String {
    let mut out = String::from(kind);
    if let Some(map) = fields.as_object() {
        for (k, v) in map {
            if k == "type" {
                continue;
            }
            out.push(' ');
            out.push_str(k);
            out.push('=');
            match v {
                serde_json::Value::String(s) => out.push_str(s),
                other => out.push_str(&other.to_string()),
            }
        }
    }
    out
}

/// Topic ids with their partitions, as `[{"topic_id": .., "partitions": [..]}]`.
fn id_partitions<'a>(
    items: impl Iterator<Item = (&'a kafka_sansio::wire::Uuid, &'a [i32])>,
) -> serde_json::Value {
    items
        .map(|(id, p)| json!({"topic_id": id.to_string(), "partitions": p}))
        .collect::<Vec<_>>()
        .into()
}

/// The KIP-848 consumer group records, field by field (`None` for the other
/// kinds).
fn consumer_group_record(record: &ConsumerOffsetsRecord) -> Option<Decoded> {
    use ConsumerOffsetsRecord as R;
    // (kind, group, member, topics named, the value's fields or None for a tombstone)
    let (kind, group, member, topics, value): (
        &'static str,
        String,
        Option<String>,
        Vec<String>,
        Option<serde_json::Value>,
    ) = match record {
        R::ConsumerGroupMetadata(e) => (
            "consumer-group-metadata",
            e.key.group_id.to_string(),
            None,
            Vec::new(),
            e.value.as_ref().map(|v| json!({"epoch": v.data.epoch})),
        ),
        R::ConsumerGroupPartitionMetadata(e) => {
            let topics = e.value.as_ref().map_or_else(Vec::new, |v| {
                v.data.topics.iter().map(|t| t.topic_name.to_string()).collect()
            });
            (
                "consumer-group-partition-metadata",
                e.key.group_id.to_string(),
                None,
                topics,
                e.value.as_ref().map(|v| {
                    json!({"topics": v.data.topics.iter().map(|t| json!({
                        "topic_id": t.topic_id.to_string(), "topic": &*t.topic_name,
                        "partitions": t.num_partitions,
                    })).collect::<Vec<_>>()})
                }),
            )
        }
        R::ConsumerGroupMemberMetadata(e) => {
            let topics = e.value.as_ref().map_or_else(Vec::new, |v| {
                v.data.subscribed_topic_names.iter().map(ToString::to_string).collect()
            });
            (
                "consumer-group-member-metadata",
                e.key.group_id.to_string(),
                Some(e.key.member_id.to_string()),
                topics,
                e.value.as_ref().map(|v| {
                    let d = &v.data;
                    json!({
                        "instance_id": d.instance_id.as_deref(), "rack_id": d.rack_id.as_deref(),
                        "client_id": &*d.client_id, "host": &*d.client_host,
                        "subscribed_topics": d.subscribed_topic_names.iter().map(|t| &**t).collect::<Vec<_>>(),
                        "subscribed_regex": d.subscribed_topic_regex.as_deref(),
                        "rebalance_timeout": d.rebalance_timeout_ms,
                        "server_assignor": d.server_assignor.as_deref(),
                        "classic_protocols": d.classic_member_metadata.as_ref().map(|c| {
                            c.supported_protocols.iter().map(|p| &*p.name).collect::<Vec<_>>()
                        }),
                    })
                }),
            )
        }
        R::ConsumerGroupTargetAssignmentMetadata(e) => (
            "consumer-group-target-assignment-metadata",
            e.key.group_id.to_string(),
            None,
            Vec::new(),
            e.value
                .as_ref()
                .map(|v| json!({"assignment_epoch": v.data.assignment_epoch})),
        ),
        R::ConsumerGroupTargetAssignmentMember(e) => (
            "consumer-group-target-assignment-member",
            e.key.group_id.to_string(),
            Some(e.key.member_id.to_string()),
            Vec::new(),
            e.value.as_ref().map(|v| {
                json!({"assignment": id_partitions(
                    v.data.topic_partitions.iter().map(|t| (&t.topic_id, &t.partitions[..])),
                )})
            }),
        ),
        R::ConsumerGroupCurrentMemberAssignment(e) => (
            "consumer-group-current-member-assignment",
            e.key.group_id.to_string(),
            Some(e.key.member_id.to_string()),
            Vec::new(),
            e.value.as_ref().map(|v| {
                let d = &v.data;
                json!({
                    "member_epoch": d.member_epoch, "previous_member_epoch": d.previous_member_epoch,
                    "state": d.state,
                    "assigned": id_partitions(d.assigned_partitions.iter().map(|t| (&t.topic_id, &t.partitions[..]))),
                    "pending_revocation": id_partitions(d.partitions_pending_revocation.iter().map(|t| (&t.topic_id, &t.partitions[..]))),
                })
            }),
        ),
        R::ConsumerGroupRegularExpression(e) => (
            "consumer-group-regular-expression",
            e.key.group_id.to_string(),
            None,
            e.value.as_ref().map_or_else(Vec::new, |v| {
                v.data.topics.iter().map(ToString::to_string).collect()
            }),
            e.value.as_ref().map(|v| {
                json!({
                    "regular_expression": &*e.key.regular_expression,
                    "topics": v.data.topics.iter().map(|t| &**t).collect::<Vec<_>>(),
                    "version": v.data.version, "timestamp": v.data.timestamp,
                })
            }),
        ),
        _ => return None,
    };
    let mut fields = serde_json::Map::new();
    fields.insert("type".into(), kind.into());
    fields.insert("group".into(), group.clone().into());
    if let Some(m) = &member {
        fields.insert("member".into(), m.clone().into());
    }
    match value {
        None => {
            fields.insert("tombstone".into(), true.into());
        }
        Some(serde_json::Value::Object(v)) => fields.extend(v),
        Some(_) => {}
    }
    let json = serde_json::Value::Object(fields);
    let mut topics = topics;
    topics.sort();
    topics.dedup();
    Some(Decoded {
        kind,
        group: Some(group),
        topics,
        text: if json["tombstone"] == true {
            format!(
                "{} (tombstone)",
                text_fields(kind, &json).replace(" tombstone=true", "")
            )
        } else {
            text_fields(kind, &json)
        },
        json,
    })
}

/// The KIP-848 and share-group records: their group and a debug rendering of the
/// decoded key and value.
fn kip848(record: &ConsumerOffsetsRecord) -> Decoded {
    macro_rules! entry {
        ($($variant:ident => $kind:literal),* $(,)?) => {
            match record {
                $(ConsumerOffsetsRecord::$variant(e) => {
                    let group = e.key.group_id.to_string();
                    let value = e.value.as_ref().map(|v| format!("{:?}", v.data));
                    let key = format!("{:?}", e.key);
                    Decoded {
                        kind: $kind,
                        text: format!("{} group={group} key={key} value={}", $kind, value.as_deref().unwrap_or("(tombstone)")),
                        json: json!({"type": $kind, "group": group, "key": key, "value": value, "tombstone": e.value.is_none()}),
                        group: Some(group),
                        topics: Vec::new(),
                    }
                })*
                _ => Decoded {
                    kind: "unknown",
                    group: None,
                    topics: Vec::new(),
                    text: "unknown".into(),
                    json: json!({"type": "unknown"}),
                },
            }
        };
    }
    entry!(
        ConsumerGroupMetadata => "consumer-group-metadata",
        ConsumerGroupPartitionMetadata => "consumer-group-partition-metadata",
        ConsumerGroupMemberMetadata => "consumer-group-member-metadata",
        ConsumerGroupTargetAssignmentMetadata => "consumer-group-target-assignment-metadata",
        ConsumerGroupTargetAssignmentMember => "consumer-group-target-assignment-member",
        ConsumerGroupCurrentMemberAssignment => "consumer-group-current-member-assignment",
        ConsumerGroupRegularExpression => "consumer-group-regular-expression",
        ShareGroupMetadata => "share-group-metadata",
        ShareGroupPartitionMetadata => "share-group-partition-metadata",
        ShareGroupMemberMetadata => "share-group-member-metadata",
        ShareGroupTargetAssignmentMetadata => "share-group-target-assignment-metadata",
        ShareGroupTargetAssignmentMember => "share-group-target-assignment-member",
        ShareGroupCurrentMemberAssignment => "share-group-current-member-assignment",
        ShareGroupStatePartitionMetadata => "share-group-state-partition-metadata",
    )
}

/// `offsets`.
pub async fn offsets(conn: &ConnectionArgs, a: OffsetsArgs) -> Outcome {
    let client = conn.connect(|_| {}).await?;
    let topic = a.source_topic.as_str();
    let plans = match plan(
        &client,
        topic,
        &[],
        StartAt::Beginning,
        None,
        OffsetSpec::Latest,
    )
    .await
    {
        Ok(p) => p,
        Err(f) if f.message.starts_with("unknown topic") => {
            return Err(Failure::new(format!(
                "the cluster has no {topic} topic yet (no group has committed)"
            )));
        }
        Err(f) => return Err(f),
    };
    let stdout = std::io::stdout();
    let out = std::cell::RefCell::new(std::io::BufWriter::new(stdout.lock()));
    let write_error: std::cell::RefCell<Option<std::io::Error>> = std::cell::RefCell::new(None);
    let count = run_consumer(
        &client,
        &plans,
        !a.follow,
        None,
        |r| {
            let Some(key) = r.record.key_bytes() else {
                return Ok(false);
            };
            let d = decode_offsets_record(&key, r.record.value_bytes().as_ref());
            if a.group
                .as_ref()
                .is_some_and(|g| d.group.as_ref() != Some(g))
            {
                return Ok(false);
            }
            if a.topic.as_ref().is_some_and(|t| !d.topics.contains(t)) {
                return Ok(false);
            }
            if !a.tombstones && r.record.value().is_none() {
                return Ok(false);
            }
            let line = if a.json {
                let mut j = d.json;
                // Where the record sits in __consumer_offsets (apart from the
                // decoded fields, which have their own partition and offset).
                j["log_partition"] = r.partition.into();
                j["log_offset"] = r.record.offset.into();
                j["log_timestamp"] = r.record.timestamp.into();
                j.to_string()
            } else {
                format!(
                    "{}@{} {} {}",
                    r.partition, r.record.offset, r.record.timestamp, d.text
                )
            };
            if let Err(e) = writeln!(out.borrow_mut(), "{line}") {
                *write_error.borrow_mut() = Some(e);
                return Err(Failure::new("writing output failed"));
            }
            Ok(true)
        },
        || {
            out.borrow_mut().flush().map_err(|e| {
                *write_error.borrow_mut() = Some(e);
                Failure::new("writing output failed")
            })
        },
    )
    .await;
    let _ = out.borrow_mut().flush();
    if let Some(e) = write_error.into_inner() {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(());
        }
        return Err(Failure::new(format!("writing output: {e}")));
    }
    let count = count?;
    if interactive() {
        eprintln!("{count} record(s) decoded");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_sansio::messages::consumer_offsets::{
        GroupMetadataKey, GroupMetadataValue, OffsetCommitKey, OffsetCommitValue,
        group_metadata_value::MemberMetadata,
    };
    use kafka_sansio::wire::{BufMut, BytesMut, Message};

    fn encode<M: Message>(version: i16, m: &M) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(version);
        m.encode(&mut b, version).unwrap();
        b.freeze()
    }

    #[test]
    fn lines_split_at_the_first_key_delimiter() {
        let (key, value) = line_parts(b"k1::v:1", Some(b"::")).unwrap();
        assert_eq!((key, value), (Some(&b"k1"[..]), &b"v:1"[..]));
        let (key, value) = line_parts(b"\x00\xffbin", None).unwrap();
        assert_eq!((key, value), (None, &b"\x00\xffbin"[..]));
        let e = line_parts(b"no delimiter", Some(b":")).unwrap_err();
        assert!(e.contains("no key delimiter"), "{e}");
    }

    /// A reader that hands out at most `step` bytes per read, as a pipe may.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn lines_are_whole_across_reads_and_the_last_needs_no_newline() {
        let text = b"first\n\nthird line\r\nlast without newline";
        for step in [1, 2, 3, 7, 1 << 20] {
            let mut lines = Vec::new();
            let mut reads = 0;
            read_lines(&mut Trickle { data: text, step }, |l| {
                match l {
                    Some(l) => lines.push(l.to_vec()),
                    None => reads += 1,
                }
                true
            })
            .unwrap();
            assert_eq!(
                lines,
                vec![
                    b"first".to_vec(),
                    Vec::new(),
                    b"third line\r".to_vec(),
                    b"last without newline".to_vec(),
                ],
                "step {step}"
            );
            assert!(reads >= 1, "step {step}");
        }
        // Stopping early reads no further.
        let mut seen = 0;
        read_lines(
            &mut Trickle {
                data: text,
                step: 100,
            },
            |l| {
                seen += usize::from(l.is_some());
                seen < 2
            },
        )
        .unwrap();
        assert_eq!(seen, 2);
    }

    #[test]
    fn offset_commits_decode_with_their_fields() {
        let key = encode(
            1,
            &OffsetCommitKey {
                group: "g1".into(),
                topic: "orders".into(),
                partition: 2,
            },
        );
        let value = encode(
            3,
            &OffsetCommitValue {
                offset: 42,
                leader_epoch: 5,
                metadata: "m".into(),
                commit_timestamp: 1000,
                ..Default::default()
            },
        );
        let d = decode_offsets_record(&key, Some(&value));
        assert_eq!(d.kind, "offset-commit");
        assert_eq!(d.group.as_deref(), Some("g1"));
        assert_eq!(d.topics, vec!["orders".to_owned()]);
        assert_eq!(d.json["offset"], 42);
        assert_eq!(d.json["leader_epoch"], 5);
        assert!(d.text.contains("offset=42"), "{}", d.text);
        let tomb = decode_offsets_record(&key, None);
        assert_eq!(tomb.json["tombstone"], true);
    }

    #[test]
    fn group_metadata_decodes_members_subscriptions_and_assignments() {
        use kafka_sansio::messages::consumer_protocol_assignment::TopicPartition as AssignedTp;
        let sub = encode(
            1,
            &ConsumerProtocolSubscription {
                topics: vec!["orders".into(), "payments".into()],
                ..Default::default()
            },
        );
        let asg = encode(
            1,
            &ConsumerProtocolAssignment {
                assigned_partitions: vec![AssignedTp {
                    topic: "orders".into(),
                    partitions: vec![0, 2].into(),
                }],
                ..Default::default()
            },
        );
        let key = encode(2, &GroupMetadataKey { group: "g2".into() });
        let value = encode(
            3,
            &GroupMetadataValue {
                protocol_type: "consumer".into(),
                generation: 4,
                protocol: Some("range".into()),
                leader: Some("m1".into()),
                members: vec![MemberMetadata {
                    member_id: "m1".into(),
                    client_id: "c1".into(),
                    client_host: "/127.0.0.1".into(),
                    session_timeout: 10_000,
                    subscription: sub,
                    assignment: asg,
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
        let d = decode_offsets_record(&key, Some(&value));
        assert_eq!(d.kind, "group-metadata");
        assert_eq!(d.topics, vec!["orders".to_owned(), "payments".to_owned()]);
        let m = &d.json["members"][0];
        assert_eq!(m["subscription"], json!(["orders", "payments"]));
        assert_eq!(m["assignment"][0]["partitions"], json!([0, 2]));
        assert_eq!(d.json["generation"], 4);
        assert!(d.text.contains("assignment=orders:[0, 2]"), "{}", d.text);
    }

    #[test]
    fn regular_expression_records_decode_with_their_topics() {
        use kafka_sansio::messages::consumer_offsets::{
            ConsumerGroupRegularExpressionKey, ConsumerGroupRegularExpressionValue,
        };
        let key = encode(
            16,
            &ConsumerGroupRegularExpressionKey {
                group_id: "rg".into(),
                regular_expression: "orders-.*".into(),
            },
        );
        let value = encode(
            0,
            &ConsumerGroupRegularExpressionValue {
                topics: vec!["orders-eu".into(), "orders-us".into()],
                version: 12,
                timestamp: 1_700_000_000_000,
                ..Default::default()
            },
        );
        let d = decode_offsets_record(&key, Some(&value));
        assert_eq!(d.kind, "consumer-group-regular-expression");
        assert_eq!(d.group.as_deref(), Some("rg"));
        assert_eq!(
            d.topics,
            vec!["orders-eu".to_owned(), "orders-us".to_owned()]
        );
        assert_eq!(d.json["regular_expression"], "orders-.*");
        assert_eq!(d.json["topics"], json!(["orders-eu", "orders-us"]));
        assert_eq!(d.json["version"], 12);
        assert!(
            d.text.contains("regular_expression=orders-.*"),
            "{}",
            d.text
        );
        let tomb = decode_offsets_record(&key, None);
        assert_eq!(tomb.json["tombstone"], true);
        assert!(tomb.text.ends_with("(tombstone)"), "{}", tomb.text);
    }

    #[test]
    // Some keys are the group id alone, others have a member id too.
    #[allow(clippy::needless_update)]
    fn share_group_records_decode_with_their_group() {
        use kafka_sansio::messages::consumer_offsets as co;
        macro_rules! check {
            ($($key:ident, $value:ident, $version:literal => $kind:literal;)*) => {$(
                let key = encode($version, &co::$key { group_id: "sg".into(), ..Default::default() });
                let value = encode(0, &co::$value::default());
                let d = decode_offsets_record(&key, Some(&value));
                assert_eq!(d.kind, $kind);
                assert_eq!(d.group.as_deref(), Some("sg"), "{}", $kind);
                assert_eq!(d.json["tombstone"], false, "{}", $kind);
                assert!(d.text.starts_with(concat!($kind, " group=sg")), "{}", d.text);
                let tomb = decode_offsets_record(&key, None);
                assert_eq!(tomb.json["tombstone"], true, "{}", $kind);
            )*};
        }
        check! {
            ShareGroupPartitionMetadataKey, ShareGroupPartitionMetadataValue, 9 => "share-group-partition-metadata";
            ShareGroupMemberMetadataKey, ShareGroupMemberMetadataValue, 10 => "share-group-member-metadata";
            ShareGroupMetadataKey, ShareGroupMetadataValue, 11 => "share-group-metadata";
            ShareGroupTargetAssignmentMetadataKey, ShareGroupTargetAssignmentMetadataValue, 12 => "share-group-target-assignment-metadata";
            ShareGroupTargetAssignmentMemberKey, ShareGroupTargetAssignmentMemberValue, 13 => "share-group-target-assignment-member";
            ShareGroupCurrentMemberAssignmentKey, ShareGroupCurrentMemberAssignmentValue, 14 => "share-group-current-member-assignment";
            ShareGroupStatePartitionMetadataKey, ShareGroupStatePartitionMetadataValue, 15 => "share-group-state-partition-metadata";
        }
    }

    #[test]
    fn garbage_is_reported_not_a_panic() {
        let d = decode_offsets_record(&Bytes::from_static(b"\x00"), None);
        assert_eq!(d.kind, "undecodable");
        let d = decode_offsets_record(&Bytes::from_static(b"\x7f\x00abc"), None);
        assert_eq!(d.kind, "unknown");
    }
}
