//! A deterministic network between clients and a simulated [`Cluster`]: one virtual
//! clock, one seeded random source, latency, fragmentation and resets. A client is
//! either a single [`Connection`] (the connection's own tests) or a whole cluster
//! [`Client`](client::Client) whose connections the harness dials for it.

use super::{Cluster, ClusterConfig, ConnectionId};
use crate::client::{self, ConnId, OpId, OpOutput};
use crate::connection::{self, Connection, Event};
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// How the simulated network misbehaves; everything is drawn from the simulation's seed.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Shortest one-way delay.
    pub latency_min: Duration,
    /// Longest one-way delay (uniform between the two).
    pub latency_max: Duration,
    /// Split written bytes into random fragments delivered separately (in order).
    pub fragment: bool,
    /// Chance, per chunk sent, that the connection is reset instead (0.0 - 1.0).
    pub reset_probability: f64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            latency_min: Duration::from_micros(100),
            latency_max: Duration::from_millis(2),
            fragment: false,
            reset_probability: 0.0,
        }
    }
}

/// A client connection in the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub usize);

/// A cluster client hosted by the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(pub usize);

#[derive(Debug)]
enum Delivery {
    ToServer(Bytes),
    ToClient(Bytes),
    /// The server side closed: the client sees end of stream.
    ClientEof,
    /// A hosted client's dial completed.
    Connected,
    /// A hosted client's dial failed.
    ConnectFailed(String),
}

/// Which state machine owns the client side of a link.
enum Owner {
    /// A bare connection.
    Raw(Box<Connection>),
    /// Connection `conn` of hosted client `host`.
    Hosted { host: usize, conn: ConnId },
    /// A socket dialed from outside the simulation (a facade's driver under the
    /// simulated runtime): what reaches it waits here until it is read.
    #[cfg_attr(
        not(any(feature = "tokio", feature = "smol", feature = "blocking")),
        allow(dead_code)
    )]
    Socket(SocketEnd),
}

/// The client side of a socket dialed with [`Simulation::dial`].
#[derive(Debug, Default)]
struct SocketEnd {
    /// The dial's outcome, once it arrived.
    connected: Option<Result<(), String>>,
    /// Bytes delivered and not yet read, oldest first.
    unread: VecDeque<Bytes>,
    /// The server side closed, and everything before that was delivered.
    eof: bool,
    /// The connection was reset.
    reset: bool,
}

/// What reading a dialed socket found.
#[cfg_attr(
    not(any(feature = "tokio", feature = "smol", feature = "blocking")),
    allow(dead_code)
)]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SocketRead {
    /// This many bytes were copied.
    Data(usize),
    /// Nothing yet.
    Empty,
    /// The peer closed its side.
    Eof,
    /// The connection was reset (or never connected).
    Reset,
}

struct Host {
    client: client::Client,
    events: VecDeque<client::Event>,
    /// Crashed: never driven again.
    dead: bool,
}

struct Client {
    owner: Owner,
    /// This link's latency range, overriding the network's.
    latency: Option<(Duration, Duration)>,
    server: Option<ConnectionId>,
    events: VecDeque<Event>,
    /// Latest delivery time scheduled in each direction, so TCP order holds.
    last_to_server: Instant,
    last_to_client: Instant,
    closed: bool,
    /// Bytes that reached the server side and that it has not read yet (its socket
    /// buffer): the cluster reads a request only once the previous reply is out.
    inbox: VecDeque<Bytes>,
}

/// The seeded random source of a simulation (splitmix64).
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    /// A generator for `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        SimRng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// A duration uniformly between `lo` and `hi`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_nanos() as u64;
        lo + Duration::from_nanos(self.below(span.saturating_add(1)))
    }
}

/// A whole deterministic run: a [`Cluster`], client [`Connection`]s, and the network
/// between them, all on one virtual clock. The same seed gives the same run, event for
/// event; [`Simulation::trace_hash`] fingerprints it.
///
/// ```
/// use kafka_sansio::connection::{Config, Event};
/// use kafka_sansio::messages::{MetadataRequest, Request};
/// use kafka_sansio::sim::{ClusterConfig, NetworkConfig, Simulation};
/// use std::time::Duration;
///
/// let start = std::time::Instant::now(); // the caller's clock, read once
/// let mut sim = Simulation::new(7, ClusterConfig { brokers: 3, ..Default::default() }, NetworkConfig::default(), start);
/// let client = sim.connect(0, Config::new("sim-0"));
/// let now = sim.now();
/// sim.connection(client).send(now, MetadataRequest { topics: None, ..Default::default() }).unwrap();
/// sim.run_for(Duration::from_millis(100));
/// let brokers = sim.events(client).find_map(|e| match e {
///     Event::Response(r) => Some(r.decode::<MetadataRequest>().unwrap().brokers.len()),
///     _ => None,
/// });
/// assert_eq!(brokers, Some(3));
/// ```
pub struct Simulation {
    cluster: Cluster,
    hosts: Vec<Host>,
    hosted_links: BTreeMap<(usize, ConnId), usize>,
    start: Instant,
    now: Instant,
    rng: SimRng,
    /// Network behaviour; change it between steps.
    pub network: NetworkConfig,
    clients: Vec<Client>,
    by_server: BTreeMap<ConnectionId, usize>,
    in_transit: BTreeMap<(Instant, u64), (usize, Delivery)>,
    seq: u64,
    trace: u64,
}

impl Simulation {
    /// A simulation whose every random choice comes from `seed`, with virtual time
    /// starting at `start` (any `Instant`: only offsets from it matter, so two runs of
    /// a seed are identical whatever `start` is).
    #[must_use]
    pub fn new(
        seed: u64,
        mut cluster: ClusterConfig,
        network: NetworkConfig,
        start: Instant,
    ) -> Self {
        cluster.seed ^= seed;
        Simulation {
            cluster: Cluster::new(cluster, start),
            hosts: Vec::new(),
            hosted_links: BTreeMap::new(),
            start,
            now: start,
            rng: SimRng::new(seed),
            network,
            clients: Vec::new(),
            by_server: BTreeMap::new(),
            in_transit: BTreeMap::new(),
            seq: 0,
            trace: 0xcbf2_9ce4_8422_2325,
        }
    }

    /// The virtual time now.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The cluster, to create topics, inject faults and inspect logs.
    pub fn cluster(&mut self) -> &mut Cluster {
        &mut self.cluster
    }

    /// The simulation's random source (for workloads, so they follow the seed too).
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }

    /// Opens a client connection to broker `broker`. If the broker is down, the
    /// connection fails at once (its events say so).
    pub fn connect(&mut self, broker: i32, config: connection::Config) -> ClientId {
        let mut conn = Connection::new(config, self.now);
        let server = match self.cluster.connect(broker, self.now) {
            Ok(s) => Some(s),
            Err(e) => {
                conn.handle_transport_error(self.now, format!("connect: {e}"));
                None
            }
        };
        let id = self.clients.len();
        if let Some(s) = server {
            self.by_server.insert(s, id);
        }
        self.clients.push(Client {
            owner: Owner::Raw(Box::new(conn)),
            latency: None,
            server,
            events: VecDeque::new(),
            last_to_server: self.now,
            last_to_client: self.now,
            closed: false,
            inbox: VecDeque::new(),
        });
        self.mix(&[1, id as u64, broker as u64]);
        self.pump();
        ClientId(id)
    }

    /// The client's connection state machine, to send requests on. Call
    /// [`Simulation::run_for`] or [`Simulation::step`] afterwards to move bytes.
    ///
    /// # Panics
    /// `client` is not a connection opened with [`Simulation::connect`].
    pub fn connection(&mut self, client: ClientId) -> &mut Connection {
        match &mut self.clients[client.0].owner {
            Owner::Raw(conn) => conn,
            Owner::Hosted { .. } | Owner::Socket(_) => {
                panic!("{client:?} is not a connection opened with `connect`")
            }
        }
    }

    /// The bootstrap list of the simulated cluster (`host:port` of every broker).
    #[must_use]
    pub fn bootstrap(&self) -> String {
        self.cluster.bootstrap()
    }

    /// Hosts a cluster client: the simulation dials the connections it asks for
    /// (mapping each advertised port to its simulated broker), carries its bytes over
    /// the simulated network and drives its timers.
    pub fn add_client(&mut self, client: client::Client) -> HostId {
        self.hosts.push(Host {
            client,
            events: VecDeque::new(),
            dead: false,
        });
        let id = self.hosts.len() - 1;
        self.mix(&[3, id as u64]);
        self.pump();
        HostId(id)
    }

    /// Crashes a hosted client as a killed process would: every connection it has
    /// closes at once (the brokers see them go), and it is never driven again. A
    /// restart is a new client ([`add_client`](Self::add_client)).
    pub fn crash_client(&mut self, host: HostId) {
        self.hosts[host.0].dead = true;
        let links: Vec<usize> = self
            .hosted_links
            .iter()
            .filter(|((h, _), _)| *h == host.0)
            .map(|(_, i)| *i)
            .collect();
        self.hosted_links.retain(|(h, _), _| *h != host.0);
        for i in links {
            self.close_link(i);
        }
        self.mix(&[4, host.0 as u64]);
        self.pump();
    }

    /// A hosted client, to start operations on. Call [`Simulation::run_for`],
    /// [`Simulation::step`] or [`Simulation::run_until_done`] afterwards.
    pub fn client(&mut self, host: HostId) -> &mut client::Client {
        &mut self.hosts[host.0].client
    }

    /// Events a hosted client reported, oldest first (drained).
    pub fn client_events(&mut self, host: HostId) -> impl Iterator<Item = client::Event> + '_ {
        self.pump();
        self.hosts[host.0].events.drain(..)
    }

    /// Runs until operation `op` of a hosted client ends (its event is taken from the
    /// client's queue; other events stay) or `limit` of virtual time passes.
    ///
    /// # Errors
    /// The operation's error, or [`client::ClientError::Timeout`] if it had not ended
    /// within `limit`.
    pub fn run_until_done(
        &mut self,
        host: HostId,
        op: OpId,
        limit: std::time::Duration,
    ) -> Result<OpOutput, client::ClientError> {
        let mut result = None;
        self.run_until(limit, |sim| {
            sim.pump();
            let events = &mut sim.hosts[host.0].events;
            if let Some(i) = events
                .iter()
                .position(|e| matches!(e, client::Event::Done { op: o, .. } if *o == op))
                && let Some(client::Event::Done { result: r, .. }) = events.remove(i)
            {
                result = Some(r);
            }
            result.is_some()
        });
        result.unwrap_or(Err(client::ClientError::Timeout {
            operation: "simulation run",
            timeout: limit,
            last_error: None,
        }))
    }

    /// Events the client's connection reported, oldest first (drained).
    pub fn events(&mut self, client: ClientId) -> impl Iterator<Item = Event> + '_ {
        self.pump();
        self.clients[client.0].events.drain(..)
    }

    /// Gives one client's link its own latency range (both directions), e.g. a slow
    /// or distant client; `None` returns it to the network's.
    pub fn set_link_latency(&mut self, client: ClientId, range: Option<(Duration, Duration)>) {
        self.clients[client.0].latency = range;
    }

    /// Resets a client's connection, as a network failure would: the client sees a
    /// transport error, the server side is dropped.
    pub fn reset(&mut self, client: ClientId) {
        let now = self.now;
        let c = &mut self.clients[client.0];
        if let Some(s) = c.server.take() {
            self.cluster.disconnect(s);
            self.by_server.remove(&s);
        }
        const RESET: &str = "connection reset (simulated)";
        match &mut c.owner {
            Owner::Raw(conn) => conn.handle_transport_error(now, RESET),
            Owner::Hosted { host, conn } => {
                c.closed = true;
                let (host, conn) = (*host, *conn);
                self.hosted_links.remove(&(host, conn));
                self.hosts[host]
                    .client
                    .handle_transport_error(conn, now, RESET);
            }
            Owner::Socket(end) => {
                c.closed = true;
                end.reset = true;
            }
        }
        self.mix(&[2, client.0 as u64]);
        self.pump();
    }

    /// A fingerprint of everything that happened so far: every delivery and every
    /// event, with its virtual time. The same seed and workload give the same hash.
    #[must_use]
    pub fn trace_hash(&self) -> u64 {
        self.trace
    }

    fn mix(&mut self, words: &[u64]) {
        let t = (self.now - self.start).as_nanos() as u64;
        for w in std::iter::once(t).chain(words.iter().copied()) {
            for b in w.to_le_bytes() {
                self.trace ^= u64::from(b);
                self.trace = self.trace.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }

    fn mix_bytes(&mut self, tag: u64, bytes: &[u8]) {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.mix(&[tag, bytes.len() as u64, h]);
    }

    fn schedule(&mut self, at: Instant, client: usize, d: Delivery) {
        self.seq += 1;
        self.in_transit.insert((at, self.seq), (client, d));
    }

    /// Moves every output of every state machine onto the network or into the event
    /// queues, until nothing more comes out.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.clients.len() {
                let Owner::Raw(conn) = &mut self.clients[i].owner else {
                    continue;
                };
                let mut transmits = Vec::new();
                let mut events = Vec::new();
                while let Some(bytes) = conn.poll_transmit() {
                    transmits.push(bytes);
                }
                while let Some(ev) = conn.poll_event() {
                    events.push(ev);
                }
                for bytes in transmits {
                    moved = true;
                    self.send_from_client(i, bytes);
                }
                for ev in events {
                    moved = true;
                    let tag = match &ev {
                        Event::Ready => 10,
                        Event::Response(r) => 11 + ((r.context.correlation_id as u64) << 8),
                        Event::Sent(c) => 12 + ((c.correlation_id as u64) << 8),
                        Event::RequestFailed(e) => 13 + ((e.context.correlation_id as u64) << 8),
                        Event::Throttled { .. } => 14,
                        Event::Closed(_) => 15,
                    };
                    self.mix(&[tag, i as u64]);
                    if let Event::Closed(_) = ev {
                        self.close_link(i);
                    }
                    self.clients[i].events.push_back(ev);
                }
            }
            for h in 0..self.hosts.len() {
                if self.hosts[h].dead {
                    continue;
                }
                moved |= self.pump_host(h);
            }
            while let Some(s) = self.cluster.poll_ready() {
                let Some(&i) = self.by_server.get(&s) else {
                    continue;
                };
                while let Some(bytes) = self.cluster.poll_transmit(s) {
                    moved = true;
                    self.send_to_client(i, bytes);
                }
                // The reply is on its way: the server reads the link again.
                moved |= self.feed_server(i);
            }
            while let Some(s) = self.cluster.poll_closed() {
                moved = true;
                if let Some(i) = self.by_server.remove(&s) {
                    self.clients[i].server = None;
                    let at = self.clients[i].last_to_client.max(self.now) + self.latency(i);
                    self.clients[i].last_to_client = at;
                    self.schedule(at, i, Delivery::ClientEof);
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Gives the server side of link `i` what it is willing to read now (Kafka's
    /// one request at a time), from what reached it; the rest waits in the link.
    fn feed_server(&mut self, i: usize) -> bool {
        let Some(s) = self.clients[i].server else {
            self.clients[i].inbox.clear();
            return false;
        };
        let mut fed = false;
        while let Some(front) = self.clients[i].inbox.front_mut() {
            let n = self.cluster.read_limit(s).min(front.len());
            if n == 0 {
                break;
            }
            let chunk = front.split_to(n);
            if front.is_empty() {
                self.clients[i].inbox.pop_front();
            }
            self.cluster.handle_input(s, self.now, &chunk);
            fed = true;
        }
        fed
    }

    /// Closes the client side of a link and drops its server side.
    fn close_link(&mut self, i: usize) {
        let c = &mut self.clients[i];
        c.closed = true;
        if let Some(s) = c.server.take() {
            self.cluster.disconnect(s);
            self.by_server.remove(&s);
        }
    }

    /// Carries out a hosted client's outputs and collects its events.
    fn pump_host(&mut self, h: usize) -> bool {
        let mut moved = false;
        while let Some(out) = self.hosts[h].client.poll_output() {
            moved = true;
            match out {
                client::Output::Connect { conn, port, .. } => {
                    self.mix(&[30, h as u64, conn.0]);
                    let i = self.open_link(Owner::Hosted { host: h, conn }, port);
                    self.hosted_links.insert((h, conn), i);
                }
                client::Output::Transmit { conn, bytes } => {
                    if let Some(&i) = self.hosted_links.get(&(h, conn)) {
                        self.send_from_client(i, bytes);
                    }
                }
                client::Output::Close { conn } => {
                    self.mix(&[31, h as u64, conn.0]);
                    if let Some(i) = self.hosted_links.remove(&(h, conn)) {
                        self.close_link(i);
                    }
                }
            }
        }
        while let Some(ev) = self.hosts[h].client.poll_event() {
            moved = true;
            match &ev {
                client::Event::Done { op, result } => {
                    self.mix(&[32, h as u64, op.0, u64::from(result.is_ok())]);
                }
                client::Event::Delivered { record, result } => {
                    let offset = result.as_ref().ok().and_then(|m| m.offset).unwrap_or(-1);
                    self.mix(&[33, h as u64, record.0, offset as u64]);
                }
                client::Event::RecordsReady => self.mix(&[34, h as u64]),
                client::Event::ConsumerError { .. } => self.mix(&[35, h as u64]),
                client::Event::Rebalance {
                    revoked,
                    lost,
                    assigned,
                } => self.mix(&[
                    36,
                    h as u64,
                    revoked.len() as u64,
                    lost.len() as u64,
                    assigned.len() as u64,
                ]),
            }
            self.hosts[h].events.push_back(ev);
        }
        moved
    }

    /// A new link for `owner` to the broker advertised on `port`: the dial's
    /// outcome arrives after one network delay.
    fn open_link(&mut self, owner: Owner, port: u16) -> usize {
        let i = self.clients.len();
        let server = self
            .cluster
            .broker_at(port)
            .ok_or_else(|| format!("nothing listens on port {port}"))
            .and_then(|b| self.cluster.connect(b, self.now).map_err(|e| e.to_string()));
        self.clients.push(Client {
            owner,
            latency: None,
            server: server.as_ref().ok().copied(),
            events: VecDeque::new(),
            last_to_server: self.now,
            last_to_client: self.now,
            closed: false,
            inbox: VecDeque::new(),
        });
        let at = self.now + self.latency(i);
        match server {
            Ok(s) => {
                self.by_server.insert(s, i);
                self.clients[i].last_to_client = at;
                self.schedule(at, i, Delivery::Connected);
            }
            Err(e) => self.schedule(at, i, Delivery::ConnectFailed(e)),
        }
        i
    }

    fn latency(&mut self, client: usize) -> Duration {
        let (lo, hi) = self.clients[client]
            .latency
            .unwrap_or((self.network.latency_min, self.network.latency_max));
        self.rng.between(lo, hi.max(lo))
    }

    fn fragments(&mut self, bytes: Bytes) -> Vec<Bytes> {
        if !self.network.fragment || bytes.len() < 2 {
            return vec![bytes];
        }
        let mut out = Vec::new();
        let mut rest = bytes;
        while rest.len() > 1 && self.rng.chance(0.5) {
            let cut = 1 + self.rng.below(rest.len() as u64 - 1) as usize;
            out.push(rest.split_to(cut));
        }
        out.push(rest);
        out
    }

    fn send_from_client(&mut self, i: usize, bytes: Bytes) {
        if self.clients[i].server.is_none() {
            return;
        }
        if self.rng.chance(self.network.reset_probability) {
            self.reset(ClientId(i));
            return;
        }
        for frag in self.fragments(bytes) {
            let at = self.clients[i].last_to_server.max(self.now) + self.latency(i);
            self.clients[i].last_to_server = at;
            self.schedule(at, i, Delivery::ToServer(frag));
        }
    }

    fn send_to_client(&mut self, i: usize, bytes: Bytes) {
        for frag in self.fragments(bytes) {
            let at = self.clients[i].last_to_client.max(self.now) + self.latency(i);
            self.clients[i].last_to_client = at;
            self.schedule(at, i, Delivery::ToClient(frag));
        }
    }

    /// The next time anything happens: a delivery or a state machine's timeout.
    pub(crate) fn next_time(&self) -> Option<Instant> {
        let delivery = self.in_transit.keys().next().map(|(t, _)| *t);
        let clients = self
            .clients
            .iter()
            .filter(|c| !c.closed)
            .filter_map(|c| match &c.owner {
                Owner::Raw(conn) => conn.poll_timeout(),
                Owner::Hosted { .. } | Owner::Socket(_) => None,
            });
        let hosts = self
            .hosts
            .iter()
            .filter(|h| !h.dead)
            .filter_map(|h| h.client.poll_timeout());
        let cluster = self.cluster.poll_timeout();
        delivery
            .into_iter()
            .chain(clients)
            .chain(hosts)
            .chain(cluster)
            .min()
    }

    /// Advances to the next event and handles it. Returns `false` when nothing is
    /// left to happen (every request ended, nothing in flight, no timer set).
    pub fn step(&mut self) -> bool {
        self.pump();
        let Some(at) = self.next_time() else {
            return false;
        };
        if at > self.now {
            self.now = at;
        }
        let now = self.now;
        // Deliveries due now, in order.
        while let Some(entry) = self.in_transit.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (i, d) = entry.remove();
            let closed = self.clients[i].closed;
            match d {
                Delivery::ToServer(bytes) => {
                    if self.clients[i].server.is_some() {
                        self.mix_bytes(20 + ((i as u64) << 8), &bytes);
                        self.clients[i].inbox.push_back(bytes);
                        self.feed_server(i);
                    }
                }
                Delivery::ToClient(bytes) => {
                    if !closed {
                        self.mix_bytes(21 + ((i as u64) << 8), &bytes);
                        match &mut self.clients[i].owner {
                            Owner::Raw(conn) => conn.handle_input(now, &bytes),
                            Owner::Hosted { host, conn } => {
                                self.hosts[*host].client.handle_input(*conn, now, &bytes);
                            }
                            Owner::Socket(end) => end.unread.push_back(bytes),
                        }
                    }
                }
                Delivery::ClientEof => {
                    if !closed {
                        self.mix(&[22, i as u64]);
                        match &mut self.clients[i].owner {
                            Owner::Raw(conn) => conn.handle_eof(now),
                            Owner::Hosted { host, conn } => {
                                self.hosts[*host].client.handle_eof(*conn, now);
                            }
                            Owner::Socket(end) => end.eof = true,
                        }
                    }
                }
                Delivery::Connected => match (&mut self.clients[i].owner, closed) {
                    (Owner::Socket(end), _) => {
                        end.connected.get_or_insert(Ok(()));
                        self.mix(&[23, i as u64]);
                    }
                    (Owner::Hosted { host, conn }, false) => {
                        let (host, conn) = (*host, *conn);
                        self.mix(&[23, i as u64]);
                        self.hosts[host].client.handle_connected(conn, now);
                    }
                    _ => {}
                },
                Delivery::ConnectFailed(e) => match &mut self.clients[i].owner {
                    Owner::Socket(end) => {
                        end.connected = Some(Err(e));
                        self.clients[i].closed = true;
                        self.mix(&[24, i as u64]);
                    }
                    Owner::Hosted { host, conn } if !self.hosts[*host].dead => {
                        let (host, conn) = (*host, *conn);
                        self.mix(&[24, i as u64]);
                        self.clients[i].closed = true;
                        self.hosted_links.remove(&(host, conn));
                        let refused = connection::TransportError::new(
                            std::io::ErrorKind::ConnectionRefused,
                            e,
                        );
                        self.hosts[host]
                            .client
                            .handle_connect_failed(conn, now, refused);
                    }
                    _ => {}
                },
            }
            self.pump();
        }
        for c in &mut self.clients {
            if let (false, Owner::Raw(conn)) = (c.closed, &mut c.owner)
                && conn.poll_timeout().is_some_and(|t| t <= now)
            {
                conn.handle_timeout(now);
            }
        }
        for h in self.hosts.iter_mut().filter(|h| !h.dead) {
            if h.client.poll_timeout().is_some_and(|t| t <= now) {
                h.client.handle_timeout(now);
            }
        }
        if self.cluster.poll_timeout().is_some_and(|t| t <= now) {
            self.cluster.handle_timeout(now);
        }
        self.pump();
        true
    }

    /// Runs until virtual time has advanced by `d` or nothing is left to happen.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        // Outputs made between steps (a command on a hosted client) go out first.
        self.pump();
        while self.next_time().is_some_and(|t| t <= until) {
            self.step();
        }
        if self.now < until {
            self.now = until;
        }
    }

    /// Runs until `done` holds (checked after every step) or `limit` of virtual time
    /// passes; returns whether `done` held.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut Simulation) -> bool,
    ) -> bool {
        let until = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            // What `done` (or the caller before) asked of a hosted client goes out
            // before the next time is computed.
            self.pump();
            match self.next_time() {
                Some(t) if t <= until => {
                    self.step();
                }
                _ => return done(self),
            }
        }
    }

    /// Client connections that still have requests queued or in flight.
    #[must_use]
    pub fn busy_clients(&self) -> Vec<ClientId> {
        self.clients
            .iter()
            .enumerate()
            .filter(|(_, c)| match &c.owner {
                Owner::Raw(conn) => !c.closed && (conn.in_flight() > 0 || conn.queued() > 0),
                Owner::Hosted { .. } | Owner::Socket(_) => false,
            })
            .map(|(i, _)| ClientId(i))
            .collect()
    }

    /// Whether the client's connection has closed.
    #[must_use]
    pub fn is_closed(&self, client: ClientId) -> bool {
        self.clients[client.0].closed
    }
}

/// The sockets of the simulated runtime (`sim_runtime`), which drives the facades'
/// driver over this network.
#[cfg_attr(
    not(any(feature = "tokio", feature = "smol", feature = "blocking")),
    allow(dead_code)
)]
impl Simulation {
    /// Dials the broker advertised on `port` for a driver outside the simulation
    /// (the simulated runtime's sockets); the outcome arrives after one network
    /// delay ([`socket_connected`](Self::socket_connected)). Returns the link.
    pub(crate) fn dial(&mut self, port: u16) -> usize {
        self.mix(&[40, self.clients.len() as u64, u64::from(port)]);
        self.open_link(Owner::Socket(SocketEnd::default()), port)
    }

    /// The outcome of dialing `link`, once it arrived.
    pub(crate) fn socket_connected(&self, link: usize) -> Option<Result<(), String>> {
        match &self.clients.get(link)?.owner {
            Owner::Socket(end) => end.connected.clone(),
            _ => None,
        }
    }

    /// Writes to a dialed socket: the bytes travel as any client's do. Returns
    /// `false` when the link was reset or closed (the bytes go nowhere).
    pub(crate) fn socket_write(&mut self, link: usize, bytes: Bytes) -> bool {
        let Some(c) = self.clients.get(link) else {
            return false;
        };
        if c.closed {
            return false;
        }
        self.send_from_client(link, bytes);
        self.pump();
        true
    }

    /// Reads what reached a dialed socket into `buf`.
    pub(crate) fn socket_read(&mut self, link: usize, buf: &mut [u8]) -> SocketRead {
        let Some(Client {
            owner: Owner::Socket(end),
            ..
        }) = self.clients.get_mut(link)
        else {
            return SocketRead::Reset;
        };
        if let Some(front) = end.unread.front_mut() {
            let n = front.len().min(buf.len());
            buf[..n].copy_from_slice(&front[..n]);
            let _ = front.split_to(n);
            if front.is_empty() {
                end.unread.pop_front();
            }
            return SocketRead::Data(n);
        }
        if end.reset || matches!(end.connected, Some(Err(_))) {
            SocketRead::Reset
        } else if end.eof {
            SocketRead::Eof
        } else {
            SocketRead::Empty
        }
    }

    /// Closes a dialed socket from the client side: the broker sees it go.
    pub(crate) fn socket_close(&mut self, link: usize) {
        if link < self.clients.len() && !self.clients[link].closed {
            self.mix(&[41, link as u64]);
            self.close_link(link);
            self.pump();
        }
    }

    /// Moves virtual time forward to `at` (never back) without handling anything:
    /// the simulated runtime's own timers fire there.
    pub(crate) fn advance_to(&mut self, at: Instant) {
        if at > self.now {
            self.now = at;
        }
    }
}
