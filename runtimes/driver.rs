//! The one driver loop of the client facades, written once for every runtime.
//!
//! [`Driver`] is a future that owns the sans-IO [`Client`]: it dials the connections
//! the client asks for, reads and writes every socket, runs TLS (rustls's own
//! sans-IO session) between the sockets and the client, sleeps until the client's
//! next deadline, takes commands from the cloneable handles and completes their
//! futures. It polls all of its sockets itself, so it needs no executor of its own:
//! the tokio facade spawns it on tokio, the smol facade hands it to the caller to
//! spawn, and the blocking facade runs it on a thread of its own. What differs per
//! runtime is only the [`Net`] implementation: how to connect, read, write and sleep.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_lite::Stream;

use crate::client::{
    Client, ClientError, ClientStats, ConnId, ConsumedRecord, Delivered, Event, Offset, OpId,
    OpOutput, Output, RecordId, RecordMetadata, SendError, TopicPartition,
};
use crate::connection::TransportError;
use crate::delivery::{Deliveries, Inbox};
use crate::runtime::now;

/// How the driver talks to the network of one runtime.
pub(crate) trait Net: Send + 'static {
    /// A connected socket.
    type Stream: Send + Unpin + 'static;
    /// A connection attempt.
    type Connecting: Future<Output = io::Result<Self::Stream>> + Send + Unpin + 'static;
    /// A timer.
    type Sleep: Future<Output = ()> + Send + Unpin + 'static;

    fn connect(host: Arc<str>, port: u16) -> Self::Connecting;
    fn poll_read(
        s: &mut Self::Stream,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>>;
    fn poll_write(
        s: &mut Self::Stream,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>>;
    fn sleep_until(deadline: Instant) -> Self::Sleep;
}

/// Starts an operation on the core.
pub(crate) type StartFn = Box<dyn FnOnce(&mut Client, Instant) -> OpId + Send>;

/// What a handle asks the driver.
pub(crate) enum Command {
    /// Start an operation; its result goes to `done`. `token` names it for `Cancel`.
    Start {
        start: StartFn,
        done: async_channel::Sender<Result<OpOutput, ClientError>>,
        token: u64,
    },
    /// The caller dropped its future: forget the operation.
    Cancel { token: u64 },
    /// A snapshot of the client's counters.
    Stats(async_channel::Sender<ClientStats>),
    /// The consumer's position in each partition it reads. A waiting poll is
    /// answered first, with whatever is buffered (perhaps nothing), so that every
    /// record behind a position has reached the application's side.
    Positions(async_channel::Sender<Vec<(TopicPartition, i64)>>),
    /// Close every connection, fail what is pending, and stop.
    Close(async_channel::Sender<()>),
    /// Records wait in the delivery table's inbox (sent when the inbox stops being
    /// empty, so once per burst, and not while the driver wakes by itself within
    /// a linger).
    Produce,
    /// Send everything buffered now; answer once every record numbered below the
    /// mark has been delivered.
    Flush(u64, async_channel::Sender<()>),
    /// A change to what the consumer reads.
    Consume(ConsumeCommand),
    /// Up to `max` records (or a consumer error), as soon as there are some,
    /// in `buf` (the caller's emptied buffer, so its allocation is reused).
    /// The consumer sends it with no record left to hand out but those of
    /// `unhanded` partitions (paused ones, from the offset given), so the
    /// group's auto-commit may store the positions up to them.
    Poll {
        max: usize,
        buf: Vec<ConsumedRecord>,
        reply: crate::oneshot::Sender<PollResult>,
        unhanded: Vec<(TopicPartition, i64)>,
    },
}

/// Consumer commands that change state and wait for nothing.
#[derive(Debug)]
pub(crate) enum ConsumeCommand {
    /// Join the configured group with these topics (errors go to the next poll).
    Subscribe(Vec<String>),
    /// The application has handled the rebalances it was handed: every record
    /// before them was handed out but those of the partitions listed (from the
    /// offset given), so a revocation commits no further.
    AckRebalance(Vec<(TopicPartition, i64)>),
    /// Acknowledge every rebalance at once from now on (while closing); the
    /// partitions listed had records not handed out, from the offset given.
    AutoAck(Vec<(TopicPartition, i64)>),
    Assign(Vec<TopicPartition>, Offset),
    Unassign(Vec<TopicPartition>),
    Seek(TopicPartition, Offset),
    Pause(Vec<TopicPartition>, bool),
}

/// What a poll gets: records and the group's rebalances since the last poll, or the
/// errors consuming ran into.
pub(crate) type PollResult =
    Result<(Vec<ConsumedRecord>, Vec<crate::consumer_facade::Rebalance>), Vec<ClientError>>;

/// What the driver's handles give it: their commands, and the producer's records
/// and delivery reports.
pub(crate) struct DriverPort {
    pub(crate) commands: async_channel::Receiver<Command>,
    pub(crate) deliveries: Arc<Deliveries>,
}

/// The producer's side of the driver: records on their way into the client, and
/// reports on their way out to the table. A record is named by its number in the
/// table, which is also its [`RecordId`] in the client.
struct Produce {
    table: Arc<Deliveries>,
    /// The table's inbox has records (a `Produce` command came), or may have
    /// (the driver woke while records need not tell it).
    inbox_waiting: bool,
    /// What the driver last told the table: it wakes by itself within a linger,
    /// so records handed over do not wake it (see `Deliveries::driver_wakes_itself`).
    wakes_itself: bool,
    /// Records taken from the inbox and not yet in the producer, the first
    /// numbered `incoming_first`. When the producer's buffer is full they wait
    /// here, in order, for room until their delivery deadline.
    incoming: Inbox,
    incoming_first: u64,
    /// The takes `incoming` holds records of, in order: the number of each one's
    /// first record and its date (that record's hand-over), which starts the
    /// delivery timeout of every record of the take and its batch's linger. The
    /// front one is the first waiting record's.
    takes: VecDeque<(u64, Instant)>,
    /// An empty inbox to take records into while others wait in `incoming` (its
    /// kept chunks go to the table for the next records).
    taken: Inbox,
    /// Budget bytes of the records taken into the producer (or failed) since the
    /// table last heard of it: they no longer wait in front of it.
    admitted_bytes: usize,
    /// Reports not yet written to the table.
    done: Vec<(u64, Result<RecordMetadata, ClientError>)>,
    /// Flushes waiting for every record below their mark.
    flushes: Vec<(u64, async_channel::Sender<()>)>,
}

impl Produce {
    /// Takes the table's inbox in: into `incoming` in one swap when nothing waits
    /// there, else behind the records waiting for room.
    fn take_in(&mut self) {
        if !self.incoming.is_empty() {
            return self.take_behind_waiting();
        }
        let (first, since) = self.table.take_inbox(&mut self.incoming);
        self.incoming_first = first;
        self.takes.clear();
        self.takes.push_back((first, since));
    }

    /// Takes the inbox in behind records still waiting for room, dated by its
    /// first record: left in the inbox for as long as the wait lasts, the records
    /// handed over meanwhile would all share the first one's date, and fail early.
    /// (Out of line: the common take, into an empty `incoming`, is a swap.)
    #[cold]
    #[inline(never)]
    fn take_behind_waiting(&mut self) {
        let (first, since) = self.table.take_inbox(&mut self.taken);
        if !self.taken.is_empty() {
            self.takes.push_back((first, since));
            self.incoming.append(&mut self.taken);
        }
    }
}

const READ_CHUNK: usize = 64 * 1024;
/// Reads per connection per wakeup, so one busy socket cannot starve the others.
const READS_PER_POLL: usize = 16;

enum Sock<N: Net> {
    Dialing(N::Connecting),
    Open(N::Stream),
}

struct Conn<N: Net> {
    sock: Sock<N>,
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::ClientConnection>>,
    /// Bytes to write (encrypted when TLS is on), oldest first.
    out: VecDeque<Bytes>,
    /// The client has forgotten this connection: close it once `out` is written,
    /// or at this deadline if the peer has not read it all by then.
    closing: Option<Instant>,
}

/// TLS settings the driver applies to every connection.
#[derive(Clone, Default)]
pub(crate) struct DriverTls {
    #[cfg(feature = "tls")]
    pub(crate) config: Option<Arc<rustls::ClientConfig>>,
}

/// The driver future; see the module docs.
pub(crate) struct Driver<N: Net> {
    client: Client,
    commands: Pin<Box<async_channel::Receiver<Command>>>,
    conns: BTreeMap<ConnId, Conn<N>>,
    waiters: HashMap<OpId, (u64, async_channel::Sender<Result<OpOutput, ClientError>>)>,
    tokens: HashMap<u64, OpId>,
    timer: crate::runtime::DeadlineTimer<N::Sleep>,
    /// The connections' ids, copied for one round of polling them (kept for the
    /// next round: a poll per record sent must not allocate).
    conn_ids: Vec<ConnId>,
    #[allow(dead_code)] // without the tls feature nothing reads it
    tls: DriverTls,
    /// Where TLS records are read to (plaintext is read into the client).
    buf: Box<[u8]>,
    closing: Option<Vec<async_channel::Sender<()>>>,
    /// The earliest deadline of a connection closing (see `Conn::closing`), kept
    /// so that a round of polling need not scan the connections for it; it may
    /// outlive its connection (written out in time), and is recomputed when due.
    closing_by: Option<Instant>,
    produce: Produce,
    /// A poll waiting for records: how many, the buffer for them, where they go.
    poller: Option<(
        usize,
        Vec<ConsumedRecord>,
        crate::oneshot::Sender<PollResult>,
    )>,
    /// Rebalances not yet handed to a poll.
    rebalances: Vec<crate::consumer_facade::Rebalance>,
    /// Acknowledge rebalances as they come (a consumer that closes).
    auto_ack: bool,
    /// Consumer errors not yet handed to a poll.
    consumer_errors: Vec<ClientError>,
}

impl<N: Net> Driver<N> {
    pub(crate) fn new(mut client: Client, port: DriverPort, tls: DriverTls) -> Self {
        client.report_deliveries_in_bulk();
        // The consumer's buffer runs ahead of the application: the group commits
        // what the application was handed, as the polls say.
        if !client.config().consumer.planted_bug_commit_buffered {
            client.store_positions_explicitly();
        }
        Self {
            client,
            commands: Box::pin(port.commands),
            conns: BTreeMap::new(),
            waiters: HashMap::new(),
            tokens: HashMap::new(),
            timer: crate::runtime::DeadlineTimer::new(),
            conn_ids: Vec::new(),
            tls,
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            closing: None,
            closing_by: None,
            produce: Produce {
                table: port.deliveries,
                inbox_waiting: false,
                wakes_itself: false,
                incoming: Inbox::default(),
                incoming_first: 0,
                takes: VecDeque::new(),
                taken: Inbox::default(),
                admitted_bytes: 0,
                done: Vec::new(),
                flushes: Vec::new(),
            },
            poller: None,
            rebalances: Vec::new(),
            auto_ack: false,
            consumer_errors: Vec::new(),
        }
    }

    fn command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Start { start, done, token } => {
                if self.closing.is_some() {
                    let _ = done.try_send(Err(ClientError::Closed));
                    return;
                }
                // Records handed over before the call go in first: a transaction's
                // commit or abort takes them with it.
                self.produce.inbox_waiting = true;
                self.admit();
                let op = start(&mut self.client, now);
                self.tokens.insert(token, op);
                self.waiters.insert(op, (token, done));
            }
            Command::Cancel { token } => {
                if let Some(op) = self.tokens.remove(&token) {
                    self.waiters.remove(&op);
                    self.client.cancel(op);
                }
            }
            Command::Stats(reply) => {
                let _ = reply.try_send(self.client.stats());
            }
            Command::Positions(reply) => {
                if let Some((max, mut records, waiting)) = self.poller.take() {
                    self.client.poll_records_into(now, max, &mut records);
                    waiting.send(Ok((records, std::mem::take(&mut self.rebalances))));
                }
                let positions = self
                    .client
                    .positions()
                    .into_iter()
                    .map(|(tp, offset, _)| (tp, offset))
                    .collect();
                let _ = reply.try_send(positions);
            }
            Command::Close(reply) => {
                self.produce.table.refuse_new();
                self.produce.inbox_waiting = true; // fail what is in it
                self.client.close(now);
                self.closing.get_or_insert_with(Vec::new).push(reply);
                self.fail_unsent(&ClientError::Closed);
            }
            // Taken in by `drain` once the commands at hand are read, so that a
            // burst of sends drives the producer once.
            Command::Produce => self.produce.inbox_waiting = true,
            Command::Flush(mark, reply) => {
                // Records handed over before the flush are in the inbox: take them
                // in first, so that the flush sends them too.
                self.produce.inbox_waiting = true;
                self.admit();
                self.client.flush(now);
                self.produce.flushes.push((mark, reply));
                self.finish_flushes();
            }
            Command::Consume(c) => match c {
                ConsumeCommand::Subscribe(topics) => {
                    if let Err(e) = self.client.subscribe(now, topics) {
                        self.consumer_errors.push(e);
                        self.answer_poll(now);
                    }
                }
                ConsumeCommand::AckRebalance(unhanded) => {
                    self.client.ack_rebalance_handed(now, &unhanded);
                }
                ConsumeCommand::AutoAck(unhanded) => {
                    self.auto_ack = true;
                    self.client.ack_rebalance_handed(now, &unhanded);
                }
                ConsumeCommand::Assign(tps, start) => {
                    self.release_poll();
                    self.client.assign(now, tps, start);
                }
                ConsumeCommand::Unassign(tps) => {
                    self.release_poll();
                    self.client.unassign(now, &tps);
                }
                ConsumeCommand::Seek(tp, to) => {
                    self.release_poll();
                    self.client.seek(now, &tp, to);
                }
                ConsumeCommand::Pause(tps, true) => self.client.pause(now, &tps),
                ConsumeCommand::Pause(tps, false) => self.client.resume(now, &tps),
            },
            Command::Poll {
                max,
                mut buf,
                reply,
                unhanded,
            } => {
                if self.closing.is_some() {
                    reply.send(Err(vec![ClientError::Closed]));
                    return;
                }
                // Everything polled before was handed to the application (but
                // the unhanded): what auto-commit may store.
                self.client.store_positions(&unhanded);
                buf.clear();
                // A newer poll replaces an abandoned one.
                self.poller = Some((max.max(1), buf, reply));
                self.answer_poll(now);
            }
        }
    }

    /// Answers a waiting poll now, with no records (it would have been answered
    /// if there were any), before a seek, assign or unassign: every record in an
    /// answer to a poll the consumer sent before such a command is then from
    /// before it, and the consumer drops those of the partitions it moved.
    fn release_poll(&mut self) {
        if let Some((_, records, reply)) = self.poller.take() {
            reply.send(Ok((records, std::mem::take(&mut self.rebalances))));
        }
    }

    /// Answers a waiting poll if there are records or errors for it.
    fn answer_poll(&mut self, now: Instant) {
        let Some((max, buf, _)) = self.poller.as_mut() else {
            return;
        };
        if !self.consumer_errors.is_empty() {
            // Still a poll to the group member, though errors answer it: one
            // that left for want of polls joins again now, not a poll later.
            self.client.poll_records_into(now, 0, buf);
            if let Some((_, _, reply)) = self.poller.take() {
                reply.send(Err(std::mem::take(&mut self.consumer_errors)));
            }
            return;
        }
        let max = *max;
        self.client.poll_records_into(now, max, buf);
        if (!buf.is_empty() || !self.rebalances.is_empty())
            && let Some((_, records, reply)) = self.poller.take()
        {
            reply.send(Ok((records, std::mem::take(&mut self.rebalances))));
        }
    }

    /// Moves records waiting for buffer room, then those new in the inbox, into
    /// the producer, in order; those that waited past their delivery timeout fail.
    /// Returns whether any record moved.
    fn admit(&mut self) -> bool {
        let p = &mut self.produce;
        if p.inbox_waiting {
            p.inbox_waiting = false;
            p.take_in();
        }
        if p.incoming.is_empty() {
            return false;
        }
        if self.closing.is_some() {
            self.fail_unsent(&ClientError::Closed);
            return true;
        }
        // Read once there is something to take in: most drains have nothing.
        let now = now();
        // Records are taken in first and the producer driven once after, not once per
        // record (which scans every partition each time).
        let mut moved = false;
        let mut accepted = false;
        let timeout = self.client.config().producer.delivery_timeout;
        let Some(&(_, mut since)) = p.takes.front() else {
            debug_assert!(false, "records waiting without their take's date");
            return false;
        };
        let mut deadline = since + timeout;
        let mut next_take = p.takes.get(1).map_or(u64::MAX, |t| t.0);
        while let Some((record, next)) = p.incoming.front_and_next() {
            let n = p.incoming_first;
            if n == next_take {
                p.takes.pop_front();
                if let Some(&(_, date)) = p.takes.front() {
                    since = date;
                    deadline = since + timeout;
                }
                next_take = p.takes.get(1).map_or(u64::MAX, |t| t.0);
            }
            match self
                .client
                .accept_queued(now, since, &record, RecordId(n), deadline)
            {
                Ok(size) => {
                    accepted = true;
                    p.admitted_bytes += size;
                }
                // It and those behind it wait, in order, until deliveries free room.
                Err(SendError::BufferFull { .. }) if now < deadline => break,
                Err(e) => {
                    p.admitted_bytes += record.fields.size();
                    p.done.push((n, Err(ClientError::Send(e))));
                }
            }
            p.incoming.pop_front_to(next);
            p.incoming_first += 1;
            moved = true;
        }
        if accepted {
            self.client.drive_producer(now);
        }
        moved
    }

    /// Writes the reports gathered into the table, and answers flushes.
    fn report(&mut self) {
        let p = &mut self.produce;
        if !p.done.is_empty() || self.client.has_deliveries() || p.admitted_bytes > 0 {
            // One lock for everything delivered since the last report.
            let mut table = p.table.completing();
            for (n, result) in p.done.drain(..) {
                table.deliver(n, result);
            }
            self.client.take_deliveries(|delivered| match delivered {
                Delivered::One(id, result) => table.deliver(id.0, result),
                Delivered::Batch(batch) => table.deliver_written(batch),
            });
            // What the producer holds now, and what no longer waits in front of it:
            // senders waiting for room see both.
            table.buffered(
                std::mem::take(&mut p.admitted_bytes),
                self.client.buffered_bytes(),
            );
        }
        // Records wait for room in the producer's budget (in `incoming`, which
        // `admit` leaves only at a full producer, or senders in the table's line):
        // what is buffered cannot grow, so it goes without waiting out its linger,
        // as Java's accumulator sends when its memory is exhausted. So does what a
        // waiting flush covers that came in after it began (records that waited
        // for room then).
        if !p.incoming.is_empty() || p.table.senders_waiting() || !p.flushes.is_empty() {
            self.client.flush(now());
        }
        self.finish_flushes();
    }

    fn finish_flushes(&mut self) {
        let p = &mut self.produce;
        if p.flushes.is_empty() {
            return;
        }
        let table = &p.table;
        p.flushes.retain(|(mark, reply)| {
            let done = table.delivered_below(*mark);
            if done {
                let _ = reply.try_send(());
            }
            !done
        });
    }

    /// Fails records not yet handed to the producer.
    fn fail_unsent(&mut self, error: &ClientError) {
        let p = &mut self.produce;
        p.inbox_waiting = false;
        p.takes.clear();
        loop {
            if p.incoming.is_empty() {
                p.incoming_first = p.table.take_inbox(&mut p.incoming).0;
                if p.incoming.is_empty() {
                    break;
                }
            }
            let first = p.incoming_first;
            for i in 0..p.incoming.len() as u64 {
                p.done.push((first + i, Err(error.clone())));
            }
            p.incoming_first += p.incoming.len() as u64;
            p.incoming.clear();
        }
        self.report();
    }

    /// Carries out the client's outputs and completes finished operations.
    fn drain(&mut self) -> bool {
        let mut progressed = false;
        while let Some(out) = self.client.poll_output() {
            progressed = true;
            match out {
                Output::Connect {
                    conn, host, port, ..
                } => {
                    #[cfg(feature = "tls")]
                    let tls = match &self.tls.config {
                        Some(config) => match tls_session(config, &host) {
                            Ok(s) => Some(Box::new(s)),
                            Err(e) => {
                                self.client.handle_connect_failed(conn, now(), e);
                                continue;
                            }
                        },
                        None => None,
                    };
                    tracing::trace!(%host, port, "dialing");
                    self.conns.insert(
                        conn,
                        Conn {
                            sock: Sock::Dialing(N::connect(host, port)),
                            #[cfg(feature = "tls")]
                            tls,
                            out: VecDeque::new(),
                            closing: None,
                        },
                    );
                }
                Output::Transmit { conn, bytes } => {
                    if let Some(c) = self.conns.get_mut(&conn)
                        && let Err(e) = c.queue(bytes)
                    {
                        self.client.handle_transport_error(conn, now(), e);
                    }
                }
                Output::Close { conn } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        if matches!(c.sock, Sock::Dialing(_)) || c.out.is_empty() {
                            self.conns.remove(&conn);
                        } else {
                            // What the client wrote before closing (a farewell to
                            // its group) goes out, but no longer than a request
                            // may take: a peer that stopped reading holds nothing up.
                            let by = now() + self.client.config().connection.request_timeout;
                            c.closing = Some(by);
                            self.closing_by = Some(self.closing_by.map_or(by, |t| t.min(by)));
                        }
                    }
                }
            }
        }
        while let Some(event) = self.client.poll_event() {
            progressed = true;
            match event {
                Event::Done { op, result } => {
                    if let Some((token, done)) = self.waiters.remove(&op) {
                        self.tokens.remove(&token);
                        let _ = done.try_send(result);
                    }
                }
                // Reported in bulk (`take_deliveries`); a client driven by hand
                // would say it here.
                Event::Delivered { record, result } => self.produce.done.push((record.0, result)),
                // The consumer facade (a later change) takes these; nothing waits yet.
                Event::RecordsReady => self.answer_poll(now()),
                Event::ConsumerError { partition, error } => {
                    tracing::debug!(?partition, %error, "consumer error");
                    self.consumer_errors.push(error);
                    self.answer_poll(now());
                }
                // The group member's rebalance: handed to the next poll; the consumer
                // facade acknowledges it once the application asks for more records
                // (it has handled everything it was given before).
                Event::Rebalance {
                    revoked,
                    lost,
                    assigned,
                } => {
                    self.rebalances.push(crate::consumer_facade::Rebalance {
                        revoked,
                        lost,
                        assigned,
                    });
                    if self.auto_ack {
                        self.client.ack_rebalance(now());
                    }
                    self.answer_poll(now());
                }
            }
        }
        // What the producer made of records taken in is output for the next round.
        progressed |= self.admit();
        self.report();
        progressed
    }

    /// Polls one connection: dialing, reading, writing. Returns whether anything
    /// happened.
    fn poll_conn(&mut self, id: ConnId, cx: &mut Context<'_>) -> bool {
        let Some(c) = self.conns.get_mut(&id) else {
            return false;
        };
        let mut progressed = false;
        if let Sock::Dialing(fut) = &mut c.sock {
            match Pin::new(fut).poll(cx) {
                Poll::Pending => return false,
                Poll::Ready(Ok(stream)) => {
                    c.sock = Sock::Open(stream);
                    self.client.handle_connected(id, now());
                    progressed = true;
                    // TLS: the ClientHello is ready to go.
                    if let Some(c) = self.conns.get_mut(&id)
                        && let Err(e) = c.flush_tls()
                    {
                        self.client.handle_transport_error(id, now(), e);
                    }
                }
                Poll::Ready(Err(e)) => {
                    self.conns.remove(&id);
                    self.client.handle_connect_failed(id, now(), e);
                    return true;
                }
            }
        }
        // Write what is pending.
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return progressed;
            };
            let Sock::Open(stream) = &mut c.sock else {
                break;
            };
            if c.out.is_empty() {
                if c.closing.is_some() {
                    self.conns.remove(&id);
                    return true;
                }
                break;
            }
            let mut slices = [io::IoSlice::new(&[]); crate::runtime::MAX_WRITE_SLICES];
            let n = crate::runtime::write_slices(&c.out, &mut slices);
            match N::poll_write(stream, cx, &slices[..n]) {
                Poll::Pending => break,
                Poll::Ready(Ok(0)) => {
                    self.fail(
                        id,
                        io::Error::new(io::ErrorKind::WriteZero, "socket accepted no bytes"),
                    );
                    return true;
                }
                Poll::Ready(Ok(n)) => {
                    progressed = true;
                    crate::runtime::advance_chunks(&mut c.out, n);
                }
                Poll::Ready(Err(e)) => {
                    self.fail(id, e);
                    return true;
                }
            }
        }
        // Read what arrived.
        for _ in 0..READS_PER_POLL {
            let Some(c) = self.conns.get_mut(&id) else {
                return progressed;
            };
            if c.closing.is_some() {
                break;
            }
            let plain = c.is_plain();
            let Sock::Open(stream) = &mut c.sock else {
                break;
            };
            // Plaintext goes straight into the connection's frame buffer (no copy);
            // TLS records into ours, to be decrypted.
            let room: &mut [u8] = if plain {
                let Some(room) = self.client.read_buffer(id) else {
                    break;
                };
                room
            } else {
                &mut self.buf
            };
            match N::poll_read(stream, cx, room) {
                Poll::Pending => break,
                Poll::Ready(Ok(0)) => {
                    self.conns.remove(&id);
                    self.client.handle_eof(id, now());
                    return true;
                }
                Poll::Ready(Ok(n)) if plain => {
                    progressed = true;
                    self.client.handle_read(id, now(), n);
                }
                Poll::Ready(Ok(n)) => {
                    progressed = true;
                    let now = now();
                    match c.receive(&self.buf[..n]) {
                        Ok(Received::Plain) => self.client.handle_input(id, now, &self.buf[..n]),
                        #[cfg(feature = "tls")]
                        Ok(Received::Decrypted(plain)) => {
                            if !plain.is_empty() {
                                self.client.handle_input(id, now, &plain);
                            }
                        }
                        Err(e) => {
                            self.conns.remove(&id);
                            self.client.handle_transport_error(id, now, e);
                            return true;
                        }
                    }
                }
                Poll::Ready(Err(e)) => {
                    self.fail(id, e);
                    return true;
                }
            }
        }
        progressed
    }

    fn fail(&mut self, id: ConnId, e: io::Error) {
        self.conns.remove(&id);
        self.client.handle_transport_error(id, now(), e);
    }

    /// Before the driver waits: tells the delivery table whether it wakes by itself
    /// within a linger (its timer is armed for a deadline by then), so that records
    /// handed over until then need not wake it. Returns whether records wait that
    /// nobody told it of (it stopped waking by itself): it takes them now.
    fn tell_table_whether_it_wakes_itself(&mut self) -> bool {
        let linger = self.client.config().producer.linger;
        let wakes = !linger.is_zero()
            && self.closing.is_none()
            && self.timer.armed_for().is_some_and(|t| t <= now() + linger);
        let p = &mut self.produce;
        if wakes == p.wakes_itself {
            return false;
        }
        p.wakes_itself = wakes;
        let untold = p.table.driver_wakes_itself(wakes);
        p.inbox_waiting |= untold;
        untold
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let mut deadline = self.client.poll_timeout();
        if let Some(by) = self.closing_by {
            deadline = Some(deadline.map_or(by, |d| d.min(by)));
        }
        match self.timer.poll(deadline, cx, N::sleep_until) {
            Some(now) => {
                if self.closing_by.is_some_and(|by| by <= now) {
                    self.drop_overdue_closing(now);
                }
                self.client.handle_timeout(now);
                true
            }
            None => false,
        }
    }

    /// Drops connections the client closed whose peer did not read what was left
    /// to write by their deadline.
    fn drop_overdue_closing(&mut self, now: Instant) {
        self.conns.retain(|id, c| {
            let overdue = c.closing.is_some_and(|by| by <= now);
            if overdue {
                tracing::debug!(conn = ?id, unwritten = c.out.iter().map(Bytes::len).sum::<usize>(),
                    "dropping a closed connection whose peer stopped reading");
            }
            !overdue
        });
        self.closing_by = self.conns.values().filter_map(|c| c.closing).min();
    }
}

impl<N: Net> Drop for Driver<N> {
    fn drop(&mut self) {
        // Calls still queued would wait for ever on a driver that is gone: refuse
        // new ones and fail the queued ones (dropping their reply senders).
        self.commands.close();
        self.produce.table.close(&ClientError::Closed);
        while let Ok(cmd) = self.commands.try_recv() {
            if let Command::Start { done, .. } = cmd {
                let _ = done.try_send(Err(ClientError::Closed));
            }
        }
    }
}

enum Received {
    /// No TLS: the bytes read are the plaintext.
    Plain,
    #[cfg(feature = "tls")]
    Decrypted(Vec<u8>),
}

impl<N: Net> Conn<N> {
    /// Whether bytes read are the plaintext (no TLS).
    fn is_plain(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_none();
        #[cfg(not(feature = "tls"))]
        true
    }

    /// Queues plaintext from the client (encrypting it first under TLS).
    fn queue(&mut self, bytes: Bytes) -> Result<(), TransportError> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            use std::io::Write as _;
            tls.writer()
                .write_all(&bytes)
                .map_err(|e| TransportError::from(&e))?;
            return self.flush_tls();
        }
        self.out.push_back(bytes);
        Ok(())
    }

    /// Moves TLS records rustls wants to send into `out`.
    fn flush_tls(&mut self) -> Result<(), TransportError> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            while tls.wants_write() {
                let mut v = Vec::new();
                tls.write_tls(&mut v)
                    .map_err(|e| TransportError::from(&e))?;
                self.out.push_back(Bytes::from(v));
            }
        }
        Ok(())
    }

    /// Takes bytes read from the socket.
    fn receive(&mut self, bytes: &[u8]) -> Result<Received, TransportError> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            use std::io::Read as _;
            let mut rest = bytes;
            let mut plain = Vec::new();
            while !rest.is_empty() {
                tls.read_tls(&mut rest)
                    .map_err(|e| TransportError::from(&e))?;
                let state = tls.process_new_packets().map_err(tls_error)?;
                let n = state.plaintext_bytes_to_read();
                if n > 0 {
                    let start = plain.len();
                    plain.resize(start + n, 0);
                    tls.reader()
                        .read_exact(&mut plain[start..])
                        .map_err(|e| TransportError::from(&e))?;
                }
            }
            self.flush_tls()?;
            return Ok(Received::Decrypted(plain));
        }
        let _ = bytes;
        Ok(Received::Plain)
    }
}

#[cfg(feature = "tls")]
fn tls_session(
    config: &Arc<rustls::ClientConfig>,
    host: &str,
) -> Result<rustls::ClientConnection, TransportError> {
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
        TransportError::tls(
            crate::connection::TlsFailure::InvalidServerName,
            format!("{host}: {e}"),
        )
    })?;
    rustls::ClientConnection::new(config.clone(), name).map_err(tls_error)
}

#[cfg(feature = "tls")]
fn tls_error(e: rustls::Error) -> TransportError {
    use crate::connection::TlsFailure;
    use rustls::CertificateError as C;
    let failure = match &e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer | C::BadSignature => TlsFailure::UnknownIssuer,
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsFailure::HostnameMismatch,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => TlsFailure::Expired,
            _ => TlsFailure::BadCertificate,
        },
        rustls::Error::AlertReceived(_) => TlsFailure::Rejected,
        _ => TlsFailure::Protocol,
    };
    TransportError::tls(failure, e.to_string())
}

impl<N: Net> Future for Driver<N> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Records handed over while the driver woke by itself did not tell it.
        if this.produce.wakes_itself {
            this.produce.inbox_waiting = true;
        }
        loop {
            let mut progressed = false;
            // Commands from the handles.
            loop {
                match this.commands.as_mut().poll_next(cx) {
                    Poll::Ready(Some(cmd)) => {
                        this.command(cmd, now());
                        progressed = true;
                    }
                    Poll::Ready(None) => {
                        // Every handle is gone: nobody can wait for anything.
                        if this.closing.is_none() {
                            this.produce.table.refuse_new();
                            this.produce.inbox_waiting = true;
                            this.client.close(now());
                            this.closing = Some(Vec::new());
                            progressed = true;
                        }
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            progressed |= this.drain();
            // Polling a connection may close it (and drain would open others).
            let mut ids = std::mem::take(&mut this.conn_ids);
            ids.extend(this.conns.keys());
            for &id in &ids {
                progressed |= this.poll_conn(id, cx);
            }
            ids.clear();
            this.conn_ids = ids;
            progressed |= this.drain();
            progressed |= this.poll_timer(cx);
            progressed |= this.drain();
            if let Some(replies) = &this.closing
                && this.conns.is_empty()
                && this.client.pending_operations() == 0
            {
                this.commands.close();
                for r in replies {
                    let _ = r.try_send(());
                }
                return Poll::Ready(());
            }
            if !progressed {
                if this.tell_table_whether_it_wakes_itself() {
                    continue;
                }
                return Poll::Pending;
            }
        }
    }
}
