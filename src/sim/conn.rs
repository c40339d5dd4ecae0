//! Client connections to the simulated brokers, kept as Kafka's socket server keeps
//! them: at most one request in progress per connection, reads paused until its
//! reply is taken, idle connections closed, and no work for a connection that no
//! event concerns.
//!
//! A connection's request is answered at once, or parked: a Fetch waiting for data
//! or its max wait, a JoinGroup or SyncGroup waiting for the group. A parked request
//! sits in a deadline-ordered set and, for a Fetch, in the watch list of each
//! partition it reads; an append to a partition wakes only the fetches watching it,
//! and time wakes only the requests whose deadline passed.

use super::handlers::{self, Outcome};
use super::sasl::AuthState;
use super::{Cluster, ClusterConfig, ConnectionId, SimError};
use crate::connection::frame::FrameDecoder;
use crate::messages::{ApiKey, RequestHeader};
use crate::wire::{Bytes, Message, Uuid};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A request on its connection, being answered or parked.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub header: RequestHeader,
    pub body: Bytes,
    /// When a parked Fetch must be answered even without enough data.
    pub deadline: Option<Instant>,
    /// Not before this time (slow fetches).
    pub not_before: Option<Instant>,
    /// Looked at before (an injected error is taken only the first time).
    pub seen: bool,
    /// A Fetch's session and partitions, settled at its first look.
    pub fetch: Option<Box<handlers::FetchContext>>,
}

impl Pending {
    /// When a parked request must be looked at again without another event.
    fn wake_at(&self, now: Instant) -> Option<Instant> {
        match self.not_before {
            Some(t) if t > now => Some(t),
            _ => self.deadline,
        }
    }
}

#[derive(Debug)]
pub(crate) struct ServerConn {
    pub broker: i32,
    pub auth: AuthState,
    /// Request frames as they arrive, through the client's own framing (and its cap).
    frames: FrameDecoder,
    /// The request in progress: Kafka reads no other until it is answered.
    current: Option<Pending>,
    /// Its reply, until the transport takes it with `poll_transmit`.
    reply: Option<Bytes>,
    /// The last input, or reply taken, for `connections.max.idle.ms`.
    last_active: Instant,
    /// The key of the parked request in `Conns::parked`.
    parked_until: Option<Instant>,
    /// The partitions a parked Fetch watches.
    watching: Vec<(Uuid, i32)>,
    /// Queued in `Conns::wake`.
    woken: bool,
}

impl ServerConn {
    /// Whether reads are paused: a request is in progress or its reply not taken.
    fn muted(&self) -> bool {
        self.current.is_some() || self.reply.is_some()
    }
}

/// Every connection of the cluster, and the indexes that find the few an event
/// concerns.
#[derive(Debug, Default)]
pub(crate) struct Conns {
    pub map: BTreeMap<ConnectionId, ServerConn>,
    next: u64,
    /// Connections the cluster closed, for the transport.
    closed: VecDeque<ConnectionId>,
    /// Connections with a reply to take.
    ready: VecDeque<ConnectionId>,
    /// Parked requests by the time they must be looked at.
    parked: BTreeSet<(Instant, ConnectionId)>,
    /// Every connection by when it may next be idle for too long (a connection that
    /// was active since is put back at its new time when its entry comes up).
    idle: BTreeSet<(Instant, ConnectionId)>,
    /// Parked requests to look at again now.
    wake: VecDeque<ConnectionId>,
    /// The parked fetches watching each partition, by (topic id, partition).
    watchers: HashMap<(Uuid, i32), BTreeSet<ConnectionId>>,
}

impl Conns {
    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The next time something is due: a parked request or an idle check.
    pub fn next_timeout(&self) -> Option<Instant> {
        let parked = self.parked.first().map(|(t, _)| *t);
        let idle = self.idle.first().map(|(t, _)| *t);
        parked.into_iter().chain(idle).min()
    }

    /// Queues `c`'s parked request to be looked at again.
    fn wake(&mut self, c: ConnectionId) {
        if let Some(conn) = self.map.get_mut(&c)
            && conn.current.is_some()
            && !conn.woken
        {
            conn.woken = true;
            self.wake.push_back(c);
        }
    }

    /// Wakes the fetches watching a partition.
    pub fn wake_partition(&mut self, topic: Uuid, partition: i32) {
        if let Some(set) = self.watchers.remove(&(topic, partition)) {
            for c in set {
                self.wake(c);
            }
        }
    }

    /// Wakes every parked request (after a change that may concern any of them).
    pub fn wake_all(&mut self) {
        let parked: Vec<ConnectionId> = self.parked.iter().map(|(_, c)| *c).collect();
        for c in parked {
            self.wake(c);
        }
    }

    /// Wakes the requests parked on groups that changed.
    pub fn wake_each(&mut self, conns: Vec<ConnectionId>) {
        for c in conns {
            self.wake(c);
        }
    }

    /// `c`'s parked Fetch waits for data on a partition.
    pub fn watch_partition(&mut self, c: ConnectionId, topic: Uuid, partition: i32) {
        if let Some(conn) = self.map.get_mut(&c) {
            conn.watching.push((topic, partition));
            self.watchers
                .entry((topic, partition))
                .or_default()
                .insert(c);
        }
    }

    /// Forgets what `c` watches and when it was to wake.
    fn unpark(&mut self, c: ConnectionId) {
        let Some(conn) = self.map.get_mut(&c) else {
            return;
        };
        if let Some(t) = conn.parked_until.take() {
            self.parked.remove(&(t, c));
        }
        for key in std::mem::take(&mut conn.watching) {
            if let Some(set) = self.watchers.get_mut(&key) {
                set.remove(&c);
                if set.is_empty() {
                    self.watchers.remove(&key);
                }
            }
        }
    }

    fn park(&mut self, c: ConnectionId, until: Option<Instant>) {
        let Some(conn) = self.map.get_mut(&c) else {
            return;
        };
        if let Some(t) = conn.parked_until.take() {
            self.parked.remove(&(t, c));
        }
        if let Some(t) = until {
            conn.parked_until = Some(t);
            self.parked.insert((t, c));
        }
    }

    /// Removes a connection and everything that refers to it (stale idle entries are
    /// skipped when they come up).
    fn remove(&mut self, c: ConnectionId) -> bool {
        self.unpark(c);
        self.map.remove(&c).is_some()
    }
}

impl Cluster {
    /// Opens a client connection to broker `id`.
    ///
    /// # Errors
    /// The broker does not exist or is down, or [`ClusterConfig::max_connections`]
    /// are open.
    ///
    /// [`ClusterConfig::max_connections`]: super::ClusterConfig::max_connections
    pub fn connect(&mut self, id: i32, now: Instant) -> Result<ConnectionId, SimError> {
        self.advance(now);
        if !self.is_up(id) {
            return Err(if self.broker_ids().any(|b| b == id) {
                SimError::BrokerDown(id)
            } else {
                SimError::NoSuchBroker(id)
            });
        }
        if self.conns.len() >= self.config.max_connections {
            return Err(SimError::TooManyConnections(self.config.max_connections));
        }
        let c = ConnectionId(self.conns.next);
        self.conns.next += 1;
        self.conns.map.insert(
            c,
            ServerConn {
                broker: id,
                auth: AuthState::default(),
                frames: FrameDecoder::new(self.config.max_frame_size),
                current: None,
                reply: None,
                last_active: self.now,
                parked_until: None,
                watching: Vec::new(),
                woken: false,
            },
        );
        let idle_at = self.later(self.config.connections_max_idle);
        self.conns.idle.insert((idle_at, c));
        Ok(c)
    }

    /// The client closed connection `c` (or the transport failed).
    pub fn disconnect(&mut self, c: ConnectionId) {
        self.conns.remove(c);
    }

    /// How many bytes the cluster takes on `c` now: 0 while a request is in progress
    /// or its reply waits in [`poll_transmit`](Self::poll_transmit) (as Kafka mutes a
    /// channel, so a client that does not read its replies stops being read), else
    /// the bytes that complete the frame being read. A transport that reads at most
    /// this much from the socket holds no more than one request per connection.
    #[must_use]
    pub fn read_limit(&self, c: ConnectionId) -> usize {
        match self.conns.map.get(&c) {
            Some(conn) if !conn.muted() => conn.frames.needed().max(1),
            _ => 0,
        }
    }

    /// Bytes the client sent on `c`.
    ///
    /// The cluster keeps what it is given, but reads requests one at a time: bytes
    /// beyond [`read_limit`](Self::read_limit) wait, and more than
    /// [`ClusterConfig::max_queued_bytes`](super::ClusterConfig::max_queued_bytes) of
    /// them close the connection.
    pub fn handle_input(&mut self, c: ConnectionId, now: Instant, bytes: &[u8]) {
        self.advance(now);
        let Some(conn) = self.conns.map.get_mut(&c) else {
            return;
        };
        conn.last_active = self.now;
        conn.frames.extend(bytes);
        self.pump(c);
        self.check_queue(c);
        self.run_woken();
    }

    /// Closes `c` if it has more input waiting behind its request than allowed.
    fn check_queue(&mut self, c: ConnectionId) {
        let over = self.conns.map.get(&c).is_some_and(|conn| {
            conn.muted() && conn.frames.buffered() > self.config.max_queued_bytes
        });
        if over {
            self.close(c);
        }
    }

    /// The reply frame for connection `c`, one at a time. Taking it lets the
    /// connection read its next request.
    #[must_use]
    pub fn poll_transmit(&mut self, c: ConnectionId) -> Option<Bytes> {
        let conn = self.conns.map.get_mut(&c)?;
        let reply = conn.reply.take()?;
        conn.last_active = self.now;
        if conn.frames.buffered() > 0 {
            // Requests a transport gave beyond the read limit: the next one's turn.
            self.pump(c);
            self.run_woken();
        }
        Some(reply)
    }

    /// A connection with a reply to take with [`poll_transmit`](Self::poll_transmit)
    /// (a parked request answered, or any request answered). A transport need not
    /// look at the others.
    #[must_use]
    pub fn poll_ready(&mut self) -> Option<ConnectionId> {
        self.conns.ready.pop_front()
    }

    /// A connection the cluster closed (bad request, idle, broker crash); the
    /// transport should close it.
    #[must_use]
    pub fn poll_closed(&mut self) -> Option<ConnectionId> {
        self.conns.closed.pop_front()
    }

    /// How many client connections are open.
    #[must_use]
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    pub(crate) fn close(&mut self, c: ConnectionId) {
        if self.conns.remove(c) {
            self.conns.closed.push_back(c);
        }
    }

    /// `now + d`, or far in the future if that overflows.
    pub(crate) fn later(&self, d: Duration) -> Instant {
        let far = Duration::from_secs(100 * 365 * 24 * 3600);
        self.now
            .checked_add(d.min(far))
            .unwrap_or(self.now + Duration::from_secs(365 * 24 * 3600))
    }

    /// Reads and answers `c`'s requests in order until one must wait, its reply
    /// waits to be taken, or no whole request is left.
    fn pump(&mut self, c: ConnectionId) {
        loop {
            let Some(conn) = self.conns.map.get_mut(&c) else {
                return;
            };
            if conn.reply.is_some() {
                return;
            }
            let pending = match conn.current.take() {
                Some(p) => p,
                None => match conn.frames.next_frame() {
                    Ok(Some(frame)) => match accept_frame(frame, &self.config) {
                        Some(p) => p,
                        None => return self.close(c),
                    },
                    Ok(None) => return,
                    // A size prefix over the cap or negative: the stream is lost.
                    Err(_) => return self.close(c),
                },
            };
            let broker = conn.broker;
            // A parked request is looked at afresh: it watches again what it needs.
            self.conns.unpark(c);
            let mut pending = pending;
            let outcome = handlers::handle(self, c, broker, &mut pending, self.now);
            self.after_request();
            let Some(conn) = self.conns.map.get_mut(&c) else {
                return;
            };
            match outcome {
                Outcome::Respond(frame) => {
                    conn.reply = Some(frame);
                    self.conns.ready.push_back(c);
                    return;
                }
                Outcome::NoResponse => {}
                Outcome::Wait => {
                    // Strictly later: a request never waits for the present.
                    let soonest = self.now + Duration::from_nanos(1);
                    let until = pending.wake_at(self.now).map(|t| t.max(soonest));
                    conn.current = Some(pending);
                    self.conns.park(c, until);
                    return;
                }
                Outcome::Close => return self.close(c),
            }
        }
    }

    /// What a request changed beyond its own partitions: groups whose parked
    /// requests must look again, groups left empty.
    fn after_request(&mut self) {
        let woken = self.groups.take_woken();
        self.conns.wake_each(woken);
        let woken = self.consumer_groups.take_woken();
        self.conns.wake_each(woken);
        // As Kafka's offset cleanup: an empty group without offsets goes.
        for group in self.groups.take_emptied() {
            if !self.has_offsets(&group) {
                self.groups.remove_if_empty(&group);
            }
        }
        for group in self.consumer_groups.take_emptied() {
            if !self.has_offsets(&group) {
                self.consumer_groups.remove_if_empty(&group);
            }
        }
        self.write_coordinator_records();
    }

    /// Whether `group` has committed offsets.
    fn has_offsets(&self, group: &str) -> bool {
        self.committed
            .range((group.to_owned(), String::new(), i32::MIN)..)
            .next()
            .is_some_and(|((g, _, _), _)| g == group)
    }

    /// Looks again at every parked request an event woke.
    pub(crate) fn run_woken(&mut self) {
        self.after_request();
        while let Some(c) = self.conns.wake.pop_front() {
            if let Some(conn) = self.conns.map.get_mut(&c) {
                conn.woken = false;
                self.pump(c);
            }
            self.after_request();
        }
    }

    /// Time passed: parked requests whose deadline came are looked at, replicated
    /// batches become visible (waking the fetches that wait for them), group timers
    /// run, and connections idle for `connections.max.idle.ms` close.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        let now = self.now;
        while let Some(&(t, c)) = self.conns.parked.first() {
            if t > now {
                break;
            }
            self.conns.parked.pop_first();
            if let Some(conn) = self.conns.map.get_mut(&c) {
                conn.parked_until = None;
            }
            self.conns.wake(c);
        }
        self.replicate_due(now);
        self.groups.handle_timers(now);
        self.consumer_groups.handle_timers(now);
        self.expire_transactions(now);
        self.close_idle(now);
        self.run_woken();
    }

    fn close_idle(&mut self, now: Instant) {
        let idle = self.config.connections_max_idle;
        while let Some(&(t, c)) = self.conns.idle.first() {
            if t > now {
                break;
            }
            self.conns.idle.pop_first();
            let Some(conn) = self.conns.map.get(&c) else {
                continue;
            };
            let next = if conn.muted() {
                // A request in progress is not idleness.
                now + idle
            } else {
                conn.last_active + idle
            };
            if next <= now {
                self.close(c);
            } else {
                self.conns.idle.insert((next, c));
            }
        }
    }

    /// The next time something happens without input: a parked request's deadline,
    /// a replication completing, a group timer or an idle connection.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let replication = self.replications.first_key_value().map(|((t, _), _)| *t);
        [
            self.conns.next_timeout(),
            replication,
            self.groups.next_timer(),
            self.consumer_groups.next_timer(),
            self.next_transaction_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// Parses a request header; `None` closes the connection (an unknown API or
/// version, or a header that does not parse).
fn accept_frame(frame: Bytes, config: &ClusterConfig) -> Option<Pending> {
    let key = i16::from_be_bytes([*frame.first()?, *frame.get(1)?]);
    let version = i16::from_be_bytes([*frame.get(2)?, *frame.get(3)?]);
    let api = ApiKey::try_from(key).ok()?;
    let supported = handlers::supported_versions(api, config);
    let header_version = if supported.is_some_and(|r| r.contains(version)) {
        api.request_header_version(version)
    } else if api == ApiKey::ApiVersions {
        // An ApiVersions request newer than ours: read the header as v1 (its client
        // id is never compact) and answer UNSUPPORTED_VERSION at v0.
        1
    } else {
        return None;
    };
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, header_version).ok()?;
    Some(Pending {
        header,
        body,
        deadline: None,
        not_before: None,
        seen: false,
        fetch: None,
    })
}
