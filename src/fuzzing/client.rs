//! Fuzz target body for the cluster [`Client`] against scripted hostile brokers.
//!
//! The input is a script read with `arbitrary`: a configuration (bootstrap list,
//! seed, timeouts, backoffs), then up to [`MAX_STEPS`](super::machines::MAX_STEPS)
//! operations: start any client operation (with names, partitions and deadlines from
//! the input), complete or refuse a connect, answer the oldest request of a
//! connection (well, with answers that echo the request and carry arbitrary leaders,
//! ports, error codes and records, or with arbitrary bodies, wrong correlation ids and
//! raw bytes), deliver part of the bytes in flight, let time pass, end or reset a
//! connection, cancel an operation, drop a request, close the client. After the
//! script, no broker answers any more and time runs on until every operation ended.
//!
//! The `producer` target runs the same brokers against the client's producer: the
//! script sends records ([`Client::send`], keyed, pinned or keyless, to the same
//! topics) and flushes instead of starting operations and closing, with a producer
//! configuration from the input (idempotence mostly on, small batches and budget,
//! linger, up to five batches in flight); InitProducerId is answered with arbitrary
//! errors, ids and epochs, and Produce with the sequence errors
//! (DUPLICATE_SEQUENCE_NUMBER, OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID,
//! INVALID_PRODUCER_EPOCH) among the others.
//!
//! No clock is read: the caller passes the origin of virtual time.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use arbitrary::{Result as ArbResult, Unstructured};

mod consumer;

use consumer::{Consumed, answer_consumer, consume_step, consumer_setup};

use super::CheckFailure;
use super::machines::{MAX_STEPS, answer, framed, take};
use crate::client::{
    AlterConfigOp, Client, ClientConfig, ClientError, ConfigResource, ConnId, Event, FetchOptions,
    NewTopic, OffsetSpec, OpId, OpOutput, Output, ProduceOptions, ProducerRecord, Record, RecordId,
    SendError,
};
use crate::connection::frame::FrameDecoder;
use crate::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use crate::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, FetchRequest, FetchResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    RequestBody, RequestHeader, ResponseHeader, create_partitions_response, create_topics_response,
    delete_records_response, delete_topics_response, fetch_response, find_coordinator_response,
    list_offsets_response, produce_response,
};
use crate::records::{BatchBuilder, BatchConfig, Compression, NewRecord};
use crate::wire::{ByteString, Bytes, BytesMut, Message};

const BASE_PORT: u16 = 9092;
const TOPICS: [&str; 3] = ["t", "u", ""];
/// Wake-ups of the client after the script before it counts as never finishing
/// (time moves forward at every one, and every deadline is at most 5 s away, so only
/// a client whose timers crowd ever closer together reaches it).
const MAX_WAKEUPS: usize = 200_000;

fn fail(msg: String) -> CheckFailure {
    CheckFailure(msg)
}

/// A connection the client asked for, as the scripted broker sees it.
struct Link {
    connected: bool,
    open: bool,
    from_client: FrameDecoder,
    /// Requests awaiting an answer, oldest first: correlation id, API, version, body.
    unanswered: VecDeque<(i32, ApiKey, i16, Bytes)>,
    to_client: Vec<u8>,
}

/// An operation the script started.
struct Started {
    deadline: Instant,
    cancelled: bool,
    ended: bool,
}

impl State {
    /// Notes an operation the script started, to check it ends by `deadline`.
    fn track(&mut self, op: OpId, deadline: Instant) {
        self.ops.insert(
            op,
            Started {
                deadline,
                cancelled: false,
                ended: false,
            },
        );
    }
}

struct State {
    client: Client,
    now: Instant,
    links: BTreeMap<ConnId, Link>,
    /// Connections the client closed: only their ids are kept (a client retrying
    /// for minutes of virtual time opens thousands).
    gone: BTreeSet<ConnId>,
    ops: BTreeMap<OpId, Started>,
    closed: bool,
    /// Some operation ended with a result (or a record was delivered).
    accepted: bool,
    /// The `producer` target's bookkeeping; `None` for the `client` target.
    producer: Option<Produced>,
    /// How far the script got (see [`producer_progress`]).
    progress: usize,
    /// The `consumer` target's bookkeeping; `None` for the other targets.
    consumer: Option<Consumed>,
}

/// Which target a script runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Client,
    Producer,
    Consumer,
}

/// Records the `producer` script handed over, and the limits they are held to.
struct Produced {
    /// `buffer_max_bytes`.
    budget: usize,
    /// How long after its delivery timeout a record may still be reported: a batch
    /// on the wire at its deadline ends when its request answers or times out.
    late: Duration,
    delivery_timeout: Duration,
    /// Each record: the latest its delivery may come, and whether it came.
    records: BTreeMap<RecordId, (Instant, bool)>,
}

/// The cluster [`Client`] against scripted hostile brokers (see the module doc).
///
/// Checks: no panic; every request the client writes decodes (header and body,
/// nothing left over) and goes on a connection that connected and was not closed;
/// every operation started ends exactly once with [`Event::Done`], none after it was
/// cancelled; no `Closed` error from a client nobody closed; after
/// `handle_timeout(now)` every operation whose deadline is at or before `now` has
/// ended and the client asks for no deadline at or before `now`; and once the brokers go silent, time runs on to every deadline without the
/// client going quiet while an operation is pending.
pub fn client(data: &[u8], origin: Instant) -> Result<bool, CheckFailure> {
    run(data, origin, Mode::Client)
}

/// The client's producer against the same scripted hostile brokers (see the module
/// doc).
///
/// Checks, beyond the `client` target's for the requests it writes and its timers:
/// every record accepted by [`Client::send`] gets exactly one
/// [`Event::Delivered`], none for an id never handed out, and by its delivery
/// timeout plus the request timeout and the broker timeout (a request on the wire at
/// the deadline is waited for); a refused record is refused for the budget only when
/// it would not fit; [`Client::buffered_bytes`] never exceeds the budget; and once the
/// brokers go silent every record is delivered and nothing stays buffered.
pub fn producer(data: &[u8], origin: Instant) -> Result<bool, CheckFailure> {
    run(data, origin, Mode::Producer)
}

/// The client as a consumer against the same scripted hostile brokers: assigned
/// partitions (the fetcher) or a consumer group member (classic or KIP-848), see
/// the `consumer` submodule's doc.
///
/// Checks, beyond the `client` target's for the requests it writes and its timers:
/// a poll returns at most what was asked, only records of partitions assigned (and,
/// in a group, given by a rebalance event) before the poll, and per partition
/// offsets that only go up until something may legitimately move the position
/// back (an assign, unassign or seek, a rebalance naming the partition, an
/// OFFSET_OUT_OF_RANGE, a diverging epoch or an OffsetForLeaderEpoch answer);
/// [`Client::consumer_buffered_bytes`] never exceeds the budget and no Fetch asks
/// for more; rebalance events revoke only partitions an earlier one assigned and
/// assign none twice; no commit (on the wire or in a commit's result) goes below an
/// offset a commit of the script reported for that partition, unless it was seeked
/// or revoked since, and no OffsetCommit names a partition twice (the broker keeps
/// the last); every commit and leave ends once the brokers go silent.
pub fn consumer(data: &[u8], origin: Instant) -> Result<bool, CheckFailure> {
    run(data, origin, Mode::Consumer)
}

/// How far a `producer` script gets: the requests the client wrote, weighted by how
/// deep into producing they are (InitProducerId, Produce), and the records
/// delivered. Not a check: random scripts seldom get a record through, so the seed
/// generator (`tests/fuzz_corpus.rs`) grows them by keeping mutations that get
/// further. A script that fails a check scores 0.
#[doc(hidden)]
#[must_use]
pub fn producer_progress(data: &[u8], origin: Instant) -> usize {
    let mut state = None;
    match run_with(data, origin, Mode::Producer, &mut state) {
        Ok(_) => state.map_or(0, |s| s.progress),
        Err(_) => 0,
    }
}

/// How far a `consumer` script gets: the requests the client wrote, weighted by
/// how deep into consuming they are (Fetch, SyncGroup, OffsetCommit, ...), the
/// rebalances it went through and the records it handed out. Not a check (see
/// [`producer_progress`]); a script that fails a check scores 0.
#[doc(hidden)]
#[must_use]
pub fn consumer_progress(data: &[u8], origin: Instant) -> usize {
    let mut state = None;
    match run_with(data, origin, Mode::Consumer, &mut state) {
        Ok(_) => state.map_or(0, |s| s.progress),
        Err(_) => 0,
    }
}

fn run(data: &[u8], origin: Instant, mode: Mode) -> Result<bool, CheckFailure> {
    run_with(data, origin, mode, &mut None)
}

fn run_with(
    data: &[u8],
    origin: Instant,
    mode: Mode,
    out: &mut Option<State>,
) -> Result<bool, CheckFailure> {
    let mut u = Unstructured::new(data);
    let Ok(state) = setup(&mut u, origin, mode) else {
        return Ok(false);
    };
    let state = out.insert(state);
    run_script(&mut u, state)
}

fn run_script(u: &mut Unstructured<'_>, state: &mut State) -> Result<bool, CheckFailure> {
    drain(state)?;
    for _ in 0..MAX_STEPS {
        if u.is_empty() {
            break;
        }
        match step(u, state) {
            Ok(checked) => checked?,
            Err(_) => break, // the script ran out of bytes
        }
        drain(state)?;
    }
    finish(state)?;
    Ok(state.accepted)
}

fn setup(u: &mut Unstructured<'_>, origin: Instant, mode: Mode) -> ArbResult<State> {
    let brokers = u.int_in_range(1..=3u16)?;
    let list: Vec<String> = (0..brokers)
        .map(|i| format!("127.0.0.1:{}", BASE_PORT + i))
        .collect();
    let Ok(mut config) = ClientConfig::new(&list.join(",")) else {
        return Err(arbitrary::Error::IncorrectFormat);
    };
    let ms = |u: &mut Unstructured<'_>, lo: u64, hi: u64| -> ArbResult<Duration> {
        Ok(Duration::from_millis(u.int_in_range(lo..=hi)?))
    };
    config.seed = u.arbitrary()?;
    config.operation_timeout = ms(u, 1, 5_000)?;
    config.connect_timeout = ms(u, 10, 2_000)?;
    config.connection.request_timeout = ms(u, 10, 2_000)?;
    config.connection.max_in_flight = u.int_in_range(1..=5)?;
    // Backoffs of 10 ms at least: shorter ones are valid, but with dozens of
    // operations retrying they only make the silent phase slow to run.
    let floor = Duration::from_millis(10);
    config.retry_backoff = ms(u, 1, 200)?.max(floor);
    config.retry_backoff_max = config.retry_backoff + ms(u, 0, 1_000)?;
    config.reconnect_backoff = ms(u, 1, 200)?.max(floor);
    config.reconnect_backoff_max = config.reconnect_backoff + ms(u, 0, 1_000)?;
    config.metadata_min_interval = ms(u, 10, 500)?;
    config.metadata_max_age = ms(u, 50, 60_000)?;
    config.connections_max_idle = ms(u, 50, 60_000)?;
    config.allow_auto_topic_creation = u.arbitrary()?;
    let produced = if mode == Mode::Producer {
        let p = &mut config.producer;
        p.idempotence = u.ratio(7, 8)?;
        p.acks = if p.idempotence {
            -1
        } else {
            *u.choose(&[-1i16, 1, 0])?
        };
        p.linger = ms(u, 0, 50)?;
        p.batch_max_bytes = u.int_in_range(128..=16_384)?;
        p.batch_max_records = u.int_in_range(1..=20)?;
        p.buffer_max_bytes = u.int_in_range(256..=65_536)?;
        p.request_max_bytes = u.int_in_range(128..=65_536)?;
        p.max_in_flight = u.int_in_range(1..=5)?;
        p.delivery_timeout = ms(u, 10, 5_000)?;
        p.broker_timeout = ms(u, 0, 1_000)?;
        p.compression = *u.choose(&[Compression::None, Compression::None, Compression::Lz4])?;
        // A quarter of the idempotent scripts are transactional, chosen by bytes
        // read already (so the stored corpus keeps its meaning for the rest).
        if p.idempotence && p.batch_max_records % 4 == 0 {
            p.transactional_id = Some("fuzz-tx".into());
        }
        Some(Produced {
            budget: p.buffer_max_bytes,
            late: config.connection.request_timeout + p.broker_timeout,
            delivery_timeout: p.delivery_timeout,
            records: BTreeMap::new(),
        })
    } else {
        None
    };
    let consumed = if mode == Mode::Consumer {
        Some(consumer_setup(u, &mut config)?)
    } else {
        None
    };
    Ok(State {
        client: Client::new(config, origin),
        now: origin,
        links: BTreeMap::new(),
        gone: BTreeSet::new(),
        ops: BTreeMap::new(),
        closed: false,
        accepted: false,
        producer: produced,
        progress: 0,
        consumer: consumed,
    })
}

/// One scripted step; `Ok(Err(_))` is a failed check.
fn step(u: &mut Unstructured<'_>, s: &mut State) -> ArbResult<Result<(), CheckFailure>> {
    match u.int_in_range(0..=15u8)? {
        0 | 1 | 15 if s.consumer.is_some() => {
            if let Err(e) = consume_step(u, s)? {
                return Ok(Err(e));
            }
        }
        0 | 1 if s.producer.is_some() => {
            if let Err(e) = send(u, s)? {
                return Ok(Err(e));
            }
        }
        0 | 1 => start_op(u, s)?,
        2 => {
            let pending: Vec<ConnId> = s
                .links
                .iter()
                .filter(|(_, l)| l.open && !l.connected)
                .map(|(c, _)| *c)
                .collect();
            if !pending.is_empty() {
                let conn = pending[u.choose_index(pending.len())?];
                if u.ratio(3, 4)? {
                    if let Some(l) = s.links.get_mut(&conn) {
                        l.connected = true;
                    }
                    s.client.handle_connected(conn, s.now);
                } else {
                    if let Some(l) = s.links.get_mut(&conn) {
                        l.open = false;
                    }
                    s.client.handle_connect_failed(
                        conn,
                        s.now,
                        crate::connection::TransportError::new(
                            std::io::ErrorKind::ConnectionRefused,
                            "refused",
                        ),
                    );
                }
            }
        }
        3..=5 => {
            let waiting: Vec<ConnId> = s
                .links
                .iter()
                .filter(|(_, l)| l.open && !l.unanswered.is_empty())
                .map(|(c, _)| *c)
                .collect();
            if !waiting.is_empty() {
                let conn = waiting[u.choose_index(waiting.len())?];
                let producing = s.producer.is_some();
                if let Some(link) = s.links.get_mut(&conn)
                    && let Some((id, api, version, body)) = link.unanswered.pop_front()
                {
                    let bytes = match s.consumer.as_mut() {
                        Some(c) => answer_consumer(u, id, api, version, &body, c)?,
                        None => respond(u, id, api, version, &body, producing)?,
                    };
                    link.to_client.extend_from_slice(&bytes);
                    // Usually straight to the client, as a runtime reading it would.
                    if u.ratio(3, 4)? {
                        let chunk = std::mem::take(&mut link.to_client);
                        s.client.handle_input(conn, s.now, &chunk);
                    }
                }
            }
        }
        6 => {
            if let Some(conn) = pick_open(u, s)? {
                let n = u.int_in_range(0..=24)?;
                let raw = u.bytes(n)?;
                if let Some(link) = s.links.get_mut(&conn) {
                    link.to_client.extend_from_slice(raw);
                }
            }
        }
        7..=9 => {
            if let Some(conn) = pick_open(u, s)?
                && let Some(link) = s.links.get_mut(&conn)
                && !link.to_client.is_empty()
            {
                let n = if u.ratio(1, 2)? {
                    link.to_client.len()
                } else {
                    u.int_in_range(1..=link.to_client.len())?
                };
                let chunk: Vec<u8> = link.to_client.drain(..n).collect();
                s.client.handle_input(conn, s.now, &chunk);
            }
        }
        10 | 11 => {
            let step = if u.ratio(1, 2)? {
                s.client
                    .poll_timeout()
                    .map_or(Duration::ZERO, |t| t.saturating_duration_since(s.now))
            } else {
                Duration::from_millis(u.int_in_range(0..=3_000)?)
            };
            s.now += step;
            s.client.handle_timeout(s.now);
            if let Err(e) = drain(s) {
                return Ok(Err(e));
            }
            if let Err(e) = after_timeout(s) {
                return Ok(Err(e));
            }
        }
        12 => {
            if let Some(conn) = pick_open(u, s)? {
                if let Some(link) = s.links.get_mut(&conn) {
                    link.open = false;
                }
                if u.ratio(1, 2)? {
                    s.client.handle_eof(conn, s.now);
                } else {
                    s.client.handle_transport_error(conn, s.now, "reset");
                }
            }
        }
        13 => {
            let live: Vec<OpId> = s
                .ops
                .iter()
                .filter(|(_, o)| !o.ended && !o.cancelled)
                .map(|(id, _)| *id)
                .collect();
            if !live.is_empty() {
                let op = live[u.choose_index(live.len())?];
                s.client.cancel(op);
                if let Some(o) = s.ops.get_mut(&op) {
                    o.cancelled = true;
                }
            }
        }
        14 => {
            // The broker drops a request on the floor.
            if let Some(conn) = pick_open(u, s)?
                && let Some(link) = s.links.get_mut(&conn)
            {
                link.unanswered.pop_front();
            }
        }
        _ if s.producer.is_some()
            && s.client.config().producer.transactional_id.is_some()
            && u.ratio(2, 3)? =>
        {
            txn_call(u, s)?;
        }
        _ if s.producer.is_some() => {
            if u.ratio(1, 2)? {
                s.client.flush(s.now);
            } else if u.ratio(1, 8)? {
                // Ends every record; the client may be used again afterwards.
                s.closed = true;
                s.client.close(s.now);
                if let Err(e) = drain(s) {
                    return Ok(Err(e));
                }
                let (pending, buffered) = (s.client.pending_records(), s.client.buffered_bytes());
                if pending != 0 || buffered != 0 {
                    return Ok(Err(fail(format!(
                        "producer: after close {pending} records pending and {buffered} bytes buffered"
                    ))));
                }
            }
        }
        _ => {
            if u.ratio(1, 8)? {
                s.closed = true;
                s.client.close(s.now);
            }
        }
    }
    Ok(Ok(()))
}

/// A transactional producer's call, with a deadline from the input (its ending is
/// checked as any operation's).
fn txn_call(u: &mut Unstructured<'_>, s: &mut State) -> ArbResult<()> {
    let timeout = Duration::from_millis(u.int_in_range(1..=5_000)?);
    let now = s.now;
    let c = &mut s.client;
    let op = match u.int_in_range(0..=4u8)? {
        0 => c.with_timeout(timeout, |c| c.init_transactions(now)),
        1 | 2 => {
            // Refused unless initialized and no transaction is open: either is fine.
            let _ = c.begin_transaction(now);
            return Ok(());
        }
        3 => c.with_timeout(timeout, |c| c.commit_transaction(now)),
        _ => c.with_timeout(timeout, |c| c.abort_transaction(now)),
    };
    s.track(op, now + timeout);
    Ok(())
}

/// Hands the producer one to four records, keyed, pinned or keyless.
fn send(u: &mut Unstructured<'_>, s: &mut State) -> ArbResult<Result<(), CheckFailure>> {
    for i in 0..u.int_in_range(1..=4u8)? {
        let value_len = if u.ratio(1, 16)? {
            u.int_in_range(0..=20_000)?
        } else {
            u.int_in_range(0..=64)?
        };
        let mut record = ProducerRecord::new(topic(u)?, vec![b'v'; value_len]);
        match u.int_in_range(0..=2u8)? {
            0 => record = record.partition(partition(u)?),
            1 => record = record.key(format!("k{}", u.int_in_range(0..=9u8)?)),
            _ => {}
        }
        if u.ratio(1, 8)? {
            record = record.header("h", vec![i; 3]);
        }
        let before = s.client.buffered_bytes();
        let now = s.now;
        match s.client.send(now, record) {
            Ok(id) if s.closed => {
                return Ok(Err(fail(format!("producer: {id:?} accepted after close"))));
            }
            Ok(id) => {
                let Some(p) = s.producer.as_mut() else {
                    break;
                };
                let latest = now + p.delivery_timeout + p.late;
                if p.records.insert(id, (latest, false)).is_some() {
                    return Ok(Err(fail(format!("producer: {id:?} handed out twice"))));
                }
            }
            Err(SendError::BufferFull { buffered, limit }) => {
                let budget = s.producer.as_ref().map_or(0, |p| p.budget);
                if buffered != before || limit != budget {
                    return Ok(Err(fail(format!(
                        "producer: BufferFull {{ buffered: {buffered}, limit: {limit} }} with {before} buffered of {budget}"
                    ))));
                }
            }
            Err(SendError::RecordTooLarge { .. } | SendError::InvalidConfig(_)) => {}
            // A transactional producer outside a transaction, or in one that failed.
            Err(SendError::Transaction(_))
                if s.client.config().producer.transactional_id.is_some() => {}
            // A closed client takes nothing more.
            Err(SendError::Closed) if s.closed => {}
            Err(e) => return Ok(Err(fail(format!("producer: send refused: {e}")))),
        }
        if let Err(e) = drain(s) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

fn pick_open(u: &mut Unstructured<'_>, s: &State) -> ArbResult<Option<ConnId>> {
    let open: Vec<ConnId> = s
        .links
        .iter()
        .filter(|(_, l)| l.open && l.connected)
        .map(|(c, _)| *c)
        .collect();
    if open.is_empty() {
        return Ok(None);
    }
    Ok(Some(open[u.choose_index(open.len())?]))
}

fn topic(u: &mut Unstructured<'_>) -> ArbResult<&'static str> {
    Ok(*u.choose(&TOPICS)?)
}

fn partition(u: &mut Unstructured<'_>) -> ArbResult<i32> {
    u.int_in_range(-1..=3)
}

/// Starts an operation chosen by the input, with a deadline from it.
fn start_op(u: &mut Unstructured<'_>, s: &mut State) -> ArbResult<()> {
    let timeout = Duration::from_millis(u.int_in_range(1..=5_000)?);
    let now = s.now;
    let c = &mut s.client;
    let op = match u.int_in_range(0..=16u8)? {
        0..=2 => {
            let records: Vec<Record> = (0..u.int_in_range(0..=3)?)
                .map(|i| Record::new(format!("v{i}")).key("k"))
                .collect();
            let options = ProduceOptions::default()
                .acks(*u.choose(&[-1i16, 1, 0, 2])?)
                .compression(*u.choose(&[
                    Compression::None,
                    Compression::None,
                    Compression::Lz4,
                ])?)
                .timeout(timeout);
            c.produce(now, topic(u)?, partition(u)?, records, options)
        }
        3 | 4 => {
            let options = FetchOptions::default()
                .max_wait(Duration::from_millis(u.int_in_range(0..=1_000)?))
                .max_bytes(u.int_in_range(-1..=1 << 20)?)
                .timeout(timeout);
            let (t, p, offset) = (topic(u)?, partition(u)?, u.int_in_range(-2..=10)?);
            if u.arbitrary()? {
                c.fetch_record_set(now, t, p, offset, options)
            } else {
                c.fetch(now, t, p, offset, options)
            }
        }
        _ => {
            let kind = u.int_in_range(5..=16u8)?;
            let (t, p) = (topic(u)?, partition(u)?);
            let n = u.int_in_range(-1..=3)?;
            let r = i16::try_from(n).unwrap_or(1);
            let broker_timeout = Duration::from_millis(u.int_in_range(0..=1_000)?);
            let spec = *u.choose(&[
                OffsetSpec::Earliest,
                OffsetSpec::Latest,
                OffsetSpec::Timestamp(5),
            ])?;
            c.with_timeout(timeout, |c| match kind {
                5 => c.list_offsets(now, t, p, spec),
                6 => c.create_topics(now, vec![NewTopic::new(t, n, r)], broker_timeout),
                7 => c.delete_topics(now, vec![t.into()], broker_timeout),
                8 => c.create_partitions(now, vec![(t.into(), n)], broker_timeout),
                9 => c.delete_records(now, vec![(t.into(), p, i64::from(n))], broker_timeout),
                10 => c.describe_cluster(now),
                11 => c.list_topics(now),
                12 => c.describe_topics(now, vec![t.into(), "u".into()]),
                13 => c.list_groups(now),
                14 => c.describe_groups(now, vec![t.into(), "g".into()]),
                15 => c.delete_groups(now, vec![t.into()]),
                _ => {
                    if n < 0 {
                        c.describe_configs(
                            now,
                            vec![ConfigResource::topic(t), ConfigResource::broker(n)],
                        )
                    } else {
                        c.alter_configs(
                            now,
                            vec![(
                                ConfigResource::topic(t),
                                vec![AlterConfigOp::Set("a".into(), "b".into())],
                            )],
                        )
                    }
                }
            })
        }
    };
    s.track(op, now + timeout);
    Ok(())
}

/// Carries out the client's outputs and checks its events.
fn drain(s: &mut State) -> Result<(), CheckFailure> {
    while let Some(out) = s.client.poll_output() {
        match out {
            Output::Connect { conn, .. } => {
                if s.links.contains_key(&conn) || s.gone.contains(&conn) {
                    return Err(fail(format!("client: {conn:?} handed out twice")));
                }
                s.links.insert(
                    conn,
                    Link {
                        connected: false,
                        open: true,
                        from_client: FrameDecoder::new(usize::MAX),
                        unanswered: VecDeque::new(),
                        to_client: Vec::new(),
                    },
                );
            }
            Output::Transmit { conn, bytes } => {
                if s.gone.contains(&conn) {
                    return Err(fail(format!(
                        "client: a transmit on {conn:?}, which it closed"
                    )));
                }
                let Some(link) = s.links.get_mut(&conn) else {
                    return Err(fail(format!("client: a transmit on unknown {conn:?}")));
                };
                if !link.connected || !link.open {
                    return Err(fail(format!(
                        "client: a transmit on {conn:?}, which is {}",
                        if link.open { "not connected" } else { "closed" }
                    )));
                }
                link.from_client.extend(&bytes);
                s.progress += read_requests(link, s.consumer.as_ref())?;
            }
            Output::Close { conn } => {
                if s.links.remove(&conn).is_none() && !s.gone.contains(&conn) {
                    return Err(fail(format!("client: Close of unknown {conn:?}")));
                }
                s.gone.insert(conn);
            }
        }
    }
    while let Some(event) = s.client.poll_event() {
        if let Some(c) = s.consumer.as_mut() {
            match &event {
                Event::RecordsReady => continue,
                Event::ConsumerError { .. } => {
                    // Typed by construction (`ClientError`); what matters is that
                    // it came instead of a panic.
                    continue;
                }
                Event::Rebalance {
                    revoked,
                    lost,
                    assigned,
                } => {
                    c.on_rebalance(revoked, lost, assigned)?;
                    s.progress += 5;
                    continue;
                }
                Event::Done { op, result } if c.commit_ops.contains(op) => {
                    let owned = s
                        .client
                        .group_status()
                        .map(|g| g.owned.into_iter().collect::<BTreeSet<_>>())
                        .unwrap_or_default();
                    c.on_commit_done(result, &owned)?;
                }
                _ => {}
            }
        }
        if let (Event::Delivered { record, result }, Some(p)) = (&event, s.producer.as_mut()) {
            // When it comes is checked after each `handle_timeout` (`after_timeout`).
            let Some((_, delivered)) = p.records.get_mut(record) else {
                return Err(fail(format!(
                    "producer: a delivery for {record:?}, never handed out"
                )));
            };
            if *delivered {
                return Err(fail(format!("producer: {record:?} delivered twice")));
            }
            *delivered = true;
            s.progress += 20;
            if result.is_ok() {
                s.accepted = true;
                s.progress += 1000;
            }
            continue;
        }
        // The client script never sends through the producer, and neither script
        // assigns partitions, so only operations end here.
        let Event::Done { op, result } = event else {
            return Err(fail(format!("client: unexpected event {event:?}")));
        };
        let Some(started) = s.ops.get_mut(&op) else {
            return Err(fail(format!("client: Done for {op:?}, never started")));
        };
        if started.ended {
            return Err(fail(format!("client: {op:?} ended twice")));
        }
        if started.cancelled {
            return Err(fail(format!("client: {op:?} ended after it was cancelled")));
        }
        if matches!(result, Err(ClientError::Closed)) && !s.closed {
            return Err(fail(format!(
                "client: {op:?} ended Closed, but the client was not closed"
            )));
        }
        started.ended = true;
        // Lent records are parsed only when read: read them all (a record that
        // does not parse is an error value here, never a panic).
        if let Ok(OpOutput::FetchedSet(out)) = &result {
            let mut reader = out.records.reader();
            while let Some(record) = reader.next_ref() {
                if let Ok(r) = record {
                    std::hint::black_box((r.key(), r.value(), r.headers().count()));
                }
            }
        }
        if let Ok(out) = &result
            && !matches!(out, OpOutput::Topics(t) if t.is_empty())
        {
            s.accepted = true;
        }
    }
    if let Some(c) = s.consumer.as_ref()
        && s.client.consumer_buffered_bytes() > c.budget
    {
        return Err(fail(format!(
            "consumer: {} bytes buffered, over the {}-byte budget",
            s.client.consumer_buffered_bytes(),
            c.budget
        )));
    }
    if let Some(p) = s.producer.as_ref()
        && s.client.buffered_bytes() > p.budget
    {
        return Err(fail(format!(
            "producer: {} bytes buffered, over the {}-byte budget",
            s.client.buffered_bytes(),
            p.budget
        )));
    }
    Ok(())
}

/// Splits what the client wrote into requests and checks each decodes; returns how
/// far they show the client got (see [`producer_progress`]).
fn read_requests(link: &mut Link, consumer: Option<&Consumed>) -> Result<usize, CheckFailure> {
    let mut progress = 0;
    loop {
        let frame = match link.from_client.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(progress),
            Err(e) => return Err(fail(format!("client: wrote a bad frame: {e}"))),
        };
        let (Some(k), Some(v)) = (frame.get(0..2), frame.get(2..4)) else {
            return Err(fail("client: wrote a frame shorter than a header".into()));
        };
        let key = i16::from_be_bytes([k[0], k[1]]);
        let version = i16::from_be_bytes([v[0], v[1]]);
        let api = ApiKey::try_from(key)
            .map_err(|_| fail(format!("client: wrote unknown API key {key}")))?;
        let mut body = frame;
        let header = RequestHeader::decode(&mut body, api.request_header_version(version))
            .map_err(|e| fail(format!("client: wrote a bad header: {e}")))?;
        let kept = body.clone();
        RequestBody::decode(api, &mut body, version).map_err(|e| {
            fail(format!(
                "client: wrote a {api:?} v{version} body that does not decode: {e}"
            ))
        })?;
        if !body.is_empty() {
            return Err(fail(format!(
                "client: {} bytes after a {api:?} v{version} body",
                body.len()
            )));
        }
        if let Some(c) = consumer {
            c.check_request(api, version, &kept)?;
        }
        progress += match api {
            ApiKey::Produce => 50,
            ApiKey::InitProducerId => 10,
            // Only the consumer sends these: how deep into consuming it got.
            ApiKey::Fetch | ApiKey::SyncGroup | ApiKey::OffsetForLeaderEpoch => 10,
            ApiKey::JoinGroup | ApiKey::ConsumerGroupHeartbeat | ApiKey::OffsetFetch => 5,
            ApiKey::OffsetCommit => 20,
            _ => 1,
        };
        link.unanswered
            .push_back((header.correlation_id, api, version, kept));
    }
}

/// After `handle_timeout(now)`: every operation whose deadline is at or before
/// `now` has ended, and no deadline at or before `now` is left.
fn after_timeout(s: &State) -> Result<(), CheckFailure> {
    // Every record is delivered by its delivery timeout plus one request's time (a
    // retried batch behind younger ones was reported late once:
    // `corpus/producer/regress-late-delivery`).
    if let Some((id, (latest, _))) = s
        .producer
        .iter()
        .flat_map(|p| p.records.iter())
        .find(|(_, (latest, delivered))| !delivered && *latest < s.now)
    {
        return Err(fail(format!(
            "producer: {id:?} not delivered at handle_timeout {:?} after its delivery timeout and the time its request may take\n{}",
            s.now - *latest,
            s.client.producer_dump(s.now)
        )));
    }
    if let Some((op, o)) = s
        .ops
        .iter()
        .find(|(_, o)| !o.ended && !o.cancelled && o.deadline <= s.now)
    {
        return Err(fail(format!(
            "client: {op:?} still pending at handle_timeout {:?} after its deadline",
            s.now - o.deadline
        )));
    }
    match s.client.poll_timeout() {
        Some(t) if t <= s.now => Err(fail(format!(
            "client: after handle_timeout the next deadline is {:?} in the past",
            s.now - t
        ))),
        _ => Ok(()),
    }
}

/// The brokers go silent; time runs on until every operation has ended.
fn finish(s: &mut State) -> Result<(), CheckFailure> {
    for _ in 0..MAX_WAKEUPS {
        if s.consumer.is_some() {
            // Nobody else will: a revocation waits for it (or the rebalance timeout).
            s.client.ack_rebalance(s.now);
        }
        drain(s)?;
        let undelivered = s
            .producer
            .as_ref()
            .map_or(0, |p| p.records.values().filter(|(_, d)| !d).count());
        if s.ops.values().all(|o| o.ended || o.cancelled) && undelivered == 0 {
            return quiet(s);
        }
        let Some(next) = s.client.poll_timeout() else {
            return Err(fail(format!(
                "client: {} operations pending and {undelivered} records undelivered, but no deadline to wake it: they would never end",
                s.ops.values().filter(|o| !o.ended && !o.cancelled).count()
            )));
        };
        s.now = s.now.max(next);
        s.client.handle_timeout(s.now);
        drain(s)?;
        after_timeout(s)?;
    }
    let pending: Vec<(OpId, Duration)> = s
        .ops
        .iter()
        .filter(|(_, o)| !o.ended && !o.cancelled)
        .map(|(id, o)| (*id, o.deadline.saturating_duration_since(s.now)))
        .collect();
    Err(fail(format!(
        "client: {MAX_WAKEUPS} wake-ups after the script and operations still pending (with their deadlines from now): {pending:?}"
    )))
}

/// Once every record is delivered, the producer holds nothing.
fn quiet(s: &State) -> Result<(), CheckFailure> {
    if s.producer.is_some() {
        let (pending, buffered) = (s.client.pending_records(), s.client.buffered_bytes());
        if pending != 0 || buffered != 0 {
            return Err(fail(format!(
                "producer: every record delivered, yet {pending} pending and {buffered} bytes buffered"
            )));
        }
    }
    Ok(())
}

/// An error code for a Produce answer to the producer: mostly none, else the
/// sequence errors, retriable, fatal or arbitrary ones.
fn producer_code(u: &mut Unstructured<'_>) -> ArbResult<i16> {
    // NONE; CORRUPT_MESSAGE, NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT,
    // MESSAGE_TOO_LARGE, NOT_ENOUGH_REPLICAS(_AFTER_APPEND), TOPIC_AUTHORIZATION_FAILED,
    // OUT_OF_ORDER_SEQUENCE_NUMBER, DUPLICATE_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH,
    // UNKNOWN_PRODUCER_ID, UNKNOWN_TOPIC_OR_PARTITION, KAFKA_STORAGE_ERROR.
    const CODES: [i16; 20] = [
        0, 0, 0, 0, 0, 0, 0, 0, 2, 6, 7, 10, 19, 20, 29, 45, 46, 47, 59, 3,
    ];
    if u.ratio(1, 32)? {
        u.arbitrary()
    } else if u.ratio(1, 32)? {
        Ok(56)
    } else {
        Ok(*u.choose(&CODES)?)
    }
}

/// An interesting error code: mostly none, else retriable, fatal or arbitrary ones.
fn code(u: &mut Unstructured<'_>) -> ArbResult<i16> {
    const CODES: [i16; 16] = [0, 0, 0, 0, 0, 0, 1, 3, 5, 6, 7, 15, 16, 29, 41, 74];
    if u.ratio(1, 16)? {
        u.arbitrary()
    } else {
        Ok(*u.choose(&CODES)?)
    }
}

fn text(u: &mut Unstructured<'_>) -> ArbResult<Option<ByteString>> {
    Ok(if u.ratio(1, 4)? {
        Some(ByteString::from(
            String::from_utf8_lossy(take(u, 12)?).into_owned(),
        ))
    } else {
        None
    })
}

/// A node id, mostly of a broker the script knows.
fn node(u: &mut Unstructured<'_>) -> ArbResult<i32> {
    if u.ratio(1, 16)? {
        u.arbitrary()
    } else {
        u.int_in_range(-1..=4)
    }
}

fn port(u: &mut Unstructured<'_>) -> ArbResult<i32> {
    if u.ratio(1, 8)? {
        Ok(*u.choose(&[0, -1, 70_000, i32::MIN])?)
    } else {
        Ok(i32::from(BASE_PORT) + u.int_in_range(0..=3)?)
    }
}

/// An answer to request `(id, api, version)`: usually one that echoes what was asked
/// with arbitrary leaders, codes and records; sometimes what the connection target
/// sends (arbitrary bodies, wrong ids and header versions, raw bytes).
fn respond(
    u: &mut Unstructured<'_>,
    id: i32,
    api: ApiKey,
    version: i16,
    body: &Bytes,
    producing: bool,
) -> ArbResult<Vec<u8>> {
    if api == ApiKey::ApiVersions || u.ratio(1, 6)? {
        return answer(u, id, api, version);
    }
    let mut req = body.clone();
    let mut out = BytesMut::new();
    let id = if u.ratio(1, 32)? { u.arbitrary()? } else { id };
    let _ = ResponseHeader {
        correlation_id: id,
        ..Default::default()
    }
    .encode(&mut out, api.response_header_version(version));
    let encoded = match api {
        ApiKey::Metadata => match MetadataRequest::decode(&mut req, version) {
            Ok(r) => metadata(u, &r)?.encode(&mut out, version).is_ok(),
            Err(_) => false,
        },
        ApiKey::Produce => match ProduceRequest::decode(&mut req, version) {
            Ok(r) => produce(u, &r, producing)?.encode(&mut out, version).is_ok(),
            Err(_) => false,
        },
        ApiKey::InitProducerId => match InitProducerIdRequest::decode(&mut req, version) {
            Ok(_) => init_producer_id(u)?.encode(&mut out, version).is_ok(),
            Err(_) => false,
        },
        ApiKey::Fetch => match FetchRequest::decode(&mut req, version) {
            Ok(r) => fetch(u, &r)?.encode(&mut out, version).is_ok(),
            Err(_) => false,
        },
        ApiKey::ListOffsets => match ListOffsetsRequest::decode(&mut req, version) {
            Ok(r) => list_offsets(u, &r)?.encode(&mut out, version).is_ok(),
            Err(_) => false,
        },
        ApiKey::FindCoordinator => match FindCoordinatorRequest::decode(&mut req, version) {
            Ok(r) => find_coordinator(u, &r)?.encode(&mut out, version).is_ok(),
            Err(_) => false,
        },
        ApiKey::CreateTopics => match CreateTopicsRequest::decode(&mut req, version) {
            Ok(r) => CreateTopicsResponse {
                topics: r
                    .topics
                    .iter()
                    .map(|t| {
                        Ok(create_topics_response::CreatableTopicResult {
                            name: t.name.clone(),
                            error_code: code(u)?,
                            error_message: text(u)?,
                            ..Default::default()
                        })
                    })
                    .collect::<ArbResult<_>>()?,
                ..Default::default()
            }
            .encode(&mut out, version)
            .is_ok(),
            Err(_) => false,
        },
        ApiKey::DeleteTopics => match DeleteTopicsRequest::decode(&mut req, version) {
            Ok(r) => {
                let names: Vec<Option<ByteString>> = if version >= 6 {
                    r.topics.iter().map(|t| t.name.clone()).collect()
                } else {
                    r.topic_names.iter().map(|n| Some(n.clone())).collect()
                };
                DeleteTopicsResponse {
                    responses: names
                        .into_iter()
                        .map(|name| {
                            Ok(delete_topics_response::DeletableTopicResult {
                                name,
                                error_code: code(u)?,
                                error_message: text(u)?,
                                ..Default::default()
                            })
                        })
                        .collect::<ArbResult<_>>()?,
                    ..Default::default()
                }
                .encode(&mut out, version)
                .is_ok()
            }
            Err(_) => false,
        },
        ApiKey::CreatePartitions => match CreatePartitionsRequest::decode(&mut req, version) {
            Ok(r) => CreatePartitionsResponse {
                results: r
                    .topics
                    .iter()
                    .map(|t| {
                        Ok(create_partitions_response::CreatePartitionsTopicResult {
                            name: t.name.clone(),
                            error_code: code(u)?,
                            error_message: text(u)?,
                            ..Default::default()
                        })
                    })
                    .collect::<ArbResult<_>>()?,
                ..Default::default()
            }
            .encode(&mut out, version)
            .is_ok(),
            Err(_) => false,
        },
        ApiKey::DeleteRecords => match DeleteRecordsRequest::decode(&mut req, version) {
            Ok(r) => DeleteRecordsResponse {
                topics: r
                    .topics
                    .iter()
                    .map(|t| {
                        Ok(delete_records_response::DeleteRecordsTopicResult {
                            name: t.name.clone(),
                            partitions: t
                                .partitions
                                .iter()
                                .map(|p| {
                                    Ok(delete_records_response::DeleteRecordsPartitionResult {
                                        partition_index: p.partition_index,
                                        low_watermark: u.arbitrary()?,
                                        error_code: code(u)?,
                                        ..Default::default()
                                    })
                                })
                                .collect::<ArbResult<_>>()?,
                            ..Default::default()
                        })
                    })
                    .collect::<ArbResult<_>>()?,
                ..Default::default()
            }
            .encode(&mut out, version)
            .is_ok(),
            Err(_) => false,
        },
        _ => false,
    };
    if !encoded {
        return answer(u, id, api, version);
    }
    Ok(framed(&out))
}

fn metadata(u: &mut Unstructured<'_>, r: &MetadataRequest) -> ArbResult<MetadataResponse> {
    let brokers = (0..u.int_in_range(0..=4)?)
        .map(|i| {
            Ok(MetadataResponseBroker {
                node_id: if u.ratio(1, 4)? { node(u)? } else { i },
                host: if u.ratio(1, 16)? {
                    "".into()
                } else {
                    "127.0.0.1".into()
                },
                port: port(u)?,
                ..Default::default()
            })
        })
        .collect::<ArbResult<Vec<_>>>()?;
    let names: Vec<Option<ByteString>> = match &r.topics {
        Some(t) => t.iter().map(|t| t.name.clone()).collect(),
        None => TOPICS.iter().map(|t| Some((*t).into())).collect(),
    };
    let mut topics = Vec::new();
    for name in names {
        if u.ratio(1, 8)? {
            continue; // a topic asked for and left out
        }
        let partitions = (0..u.int_in_range(0..=4)?)
            .map(|i| {
                let leader = node(u)?;
                Ok(MetadataResponsePartition {
                    error_code: code(u)?,
                    partition_index: if u.ratio(1, 8)? {
                        u.int_in_range(-2..=5)?
                    } else {
                        i
                    },
                    leader_id: leader,
                    leader_epoch: u.int_in_range(-1..=3)?,
                    replica_nodes: vec![leader].into(),
                    isr_nodes: vec![leader].into(),
                    ..Default::default()
                })
            })
            .collect::<ArbResult<Vec<_>>>()?;
        topics.push(MetadataResponseTopic {
            error_code: code(u)?,
            name,
            topic_id: crate::wire::Uuid::from_u128(u.int_in_range(0..=2)?),
            partitions,
            ..Default::default()
        });
    }
    Ok(MetadataResponse {
        brokers,
        cluster_id: Some("fuzz".into()),
        controller_id: node(u)?,
        topics,
        error_code: if u.ratio(1, 16)? { code(u)? } else { 0 },
        ..Default::default()
    })
}

/// InitProducerId answered with an arbitrary error, id and epoch (mostly small and
/// valid, sometimes negative, at the end of the epoch range or arbitrary).
fn init_producer_id(u: &mut Unstructured<'_>) -> ArbResult<InitProducerIdResponse> {
    // NONE; COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
    // CLUSTER_AUTHORIZATION_FAILED, PRODUCER_FENCED, CONCURRENT_TRANSACTIONS.
    const CODES: [i16; 10] = [0, 0, 0, 0, 14, 15, 16, 31, 90, 51];
    let error_code = if u.ratio(1, 16)? {
        u.arbitrary()?
    } else {
        *u.choose(&CODES)?
    };
    let producer_id = if u.ratio(1, 8)? {
        u.arbitrary()?
    } else {
        u.int_in_range(-1..=3)?
    };
    let producer_epoch = if u.ratio(1, 8)? {
        *u.choose(&[-1i16, i16::MAX - 1, i16::MAX, i16::MIN])?
    } else {
        u.int_in_range(0..=3)?
    };
    Ok(InitProducerIdResponse {
        error_code,
        producer_id,
        producer_epoch,
        throttle_time_ms: if u.ratio(1, 8)? {
            u.int_in_range(0..=2_000)?
        } else {
            0
        },
        ..Default::default()
    })
}

fn produce(
    u: &mut Unstructured<'_>,
    r: &ProduceRequest,
    producing: bool,
) -> ArbResult<ProduceResponse> {
    let responses = r
        .topic_data
        .iter()
        .map(|t| {
            Ok(produce_response::TopicProduceResponse {
                name: t.name.clone(),
                partition_responses: t
                    .partition_data
                    .iter()
                    .map(|p| {
                        Ok(produce_response::PartitionProduceResponse {
                            index: if u.ratio(1, 16)? {
                                u.arbitrary()?
                            } else {
                                p.index
                            },
                            error_code: if producing {
                                producer_code(u)?
                            } else {
                                code(u)?
                            },
                            base_offset: u.int_in_range(-1..=100)?,
                            log_append_time_ms: -1,
                            error_message: text(u)?,
                            ..Default::default()
                        })
                    })
                    .collect::<ArbResult<_>>()?,
                ..Default::default()
            })
        })
        .collect::<ArbResult<_>>()?;
    Ok(ProduceResponse {
        responses,
        throttle_time_ms: if u.ratio(1, 8)? {
            u.int_in_range(0..=2_000)?
        } else {
            0
        },
        ..Default::default()
    })
}

fn fetch(u: &mut Unstructured<'_>, r: &FetchRequest) -> ArbResult<FetchResponse> {
    let responses = r
        .topics
        .iter()
        .map(|t| {
            Ok(fetch_response::FetchableTopicResponse {
                topic: t.topic.clone(),
                topic_id: t.topic_id,
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| {
                        let records = match u.int_in_range(0..=3u8)? {
                            0 => None,
                            1 => Some(Bytes::copy_from_slice(take(u, 64)?)),
                            _ => Some(batch(u, p.fetch_offset)?),
                        };
                        Ok(fetch_response::PartitionData {
                            partition_index: p.partition,
                            error_code: code(u)?,
                            high_watermark: u.int_in_range(-1..=100)?,
                            last_stable_offset: -1,
                            log_start_offset: -1,
                            aborted_transactions: None,
                            preferred_read_replica: -1,
                            records,
                            ..Default::default()
                        })
                    })
                    .collect::<ArbResult<_>>()?,
                ..Default::default()
            })
        })
        .collect::<ArbResult<_>>()?;
    Ok(FetchResponse {
        error_code: if u.ratio(1, 16)? { code(u)? } else { 0 },
        responses,
        ..Default::default()
    })
}

/// A record batch starting near `offset`, sometimes with a byte flipped.
fn batch(u: &mut Unstructured<'_>, offset: i64) -> ArbResult<Bytes> {
    let mut buf = BytesMut::new();
    let config = BatchConfig {
        base_offset: offset.saturating_add(u.int_in_range(-2..=2)?),
        ..BatchConfig::default()
    };
    let mut builder = BatchBuilder::new(&mut buf, &config);
    for i in 0..u.int_in_range(0..=3)? {
        let _ = builder.append(&NewRecord::new(i).value(take(u, 8)?));
    }
    let _ = builder.finish();
    if !buf.is_empty() && u.ratio(1, 8)? {
        let i = u.choose_index(buf.len())?;
        buf[i] ^= u.int_in_range(1..=255)?;
    }
    Ok(buf.freeze())
}

fn list_offsets(
    u: &mut Unstructured<'_>,
    r: &ListOffsetsRequest,
) -> ArbResult<ListOffsetsResponse> {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            Ok(list_offsets_response::ListOffsetsTopicResponse {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| {
                        Ok(list_offsets_response::ListOffsetsPartitionResponse {
                            partition_index: p.partition_index,
                            error_code: code(u)?,
                            timestamp: -1,
                            offset: u.int_in_range(-1..=100)?,
                            leader_epoch: -1,
                            ..Default::default()
                        })
                    })
                    .collect::<ArbResult<_>>()?,
                ..Default::default()
            })
        })
        .collect::<ArbResult<_>>()?;
    Ok(ListOffsetsResponse {
        topics,
        ..Default::default()
    })
}

fn find_coordinator(
    u: &mut Unstructured<'_>,
    r: &FindCoordinatorRequest,
) -> ArbResult<FindCoordinatorResponse> {
    let coordinators = r
        .coordinator_keys
        .iter()
        .map(|key| {
            Ok(find_coordinator_response::Coordinator {
                key: key.clone(),
                node_id: node(u)?,
                host: "127.0.0.1".into(),
                port: port(u)?,
                error_code: code(u)?,
                error_message: text(u)?,
                ..Default::default()
            })
        })
        .collect::<ArbResult<_>>()?;
    Ok(FindCoordinatorResponse {
        error_code: code(u)?,
        node_id: node(u)?,
        host: "127.0.0.1".into(),
        port: port(u)?,
        coordinators,
        ..Default::default()
    })
}
