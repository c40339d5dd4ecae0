//! A deterministic, in-memory Kafka cluster that speaks the wire protocol from the
//! broker side (feature `sim`).
//!
//! [`Cluster`] is a sans-IO state machine like the client side: bytes from a client
//! connection go in with [`Cluster::handle_input`], response bytes come out of
//! [`Cluster::poll_transmit`], and time is an argument ([`Cluster::handle_timeout`],
//! [`Cluster::poll_timeout`]). It never reads a clock or touches a socket, so one seed
//! gives one exact run, and the same cluster can be served on loopback by a runtime
//! adapter for clients in any language.
//!
//! What it implements: ApiVersions, Metadata (with auto-creation), Produce (acks 0, 1
//! and all; idempotent sequence checks), Fetch (min bytes and max wait in virtual time,
//! max bytes, optional partial last batch), ListOffsets (earliest, latest, by
//! timestamp), CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords,
//! InitProducerId, FindCoordinator, OffsetForLeaderEpoch, OffsetCommit/OffsetFetch,
//! and the classic consumer group protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup). Other APIs are not advertised, and a request for one closes the
//! connection, as Kafka does with requests it cannot parse.
//!
//! Durability follows Kafka's rules closely enough to judge a client: a batch written
//! with `acks=all` is on every replica before it is acknowledged; one written with
//! `acks=1` reaches the followers only after [`ClusterConfig::replication_delay`], and
//! a leader crash before then loses it. Consumers only see data below the high
//! watermark (what every replica holds).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use kafka_sansio::sim::{Cluster, ClusterConfig};
//!
//! let t0 = Instant::now(); // the only clock read: the caller's
//! let mut cluster = Cluster::new(ClusterConfig { brokers: 3, ..ClusterConfig::default() }, t0);
//! cluster.create_topic("orders", 4, 3).unwrap();
//! let conn = cluster.connect(0, t0).unwrap();
//! // ...feed request frames with handle_input(conn, now, bytes), read poll_transmit(conn)...
//! assert_eq!(cluster.partition_leader("orders", 0), Some(0));
//! cluster.crash_broker(0, t0 + Duration::from_millis(5));
//! assert_ne!(cluster.partition_leader("orders", 0), Some(0));
//! ```

mod groups;
mod handlers;
mod harness;
mod log;
mod sasl;

pub use harness::{ClientId, HostId, NetworkConfig, SimRng, Simulation};
pub use sasl::SimSasl;

use crate::connection::frame::{FrameDecoder, put_frame};
use crate::messages::{ApiKey, RequestHeader};
use crate::wire::{Bytes, BytesMut, Message, Uuid};
use log::PartitionLog;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// How the simulated cluster is set up.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Number of brokers, with ids `0..brokers`.
    pub brokers: usize,
    /// The cluster id Metadata reports.
    pub cluster_id: String,
    /// The host every broker advertises.
    pub host: String,
    /// The port broker `i` advertises is `base_port + i` until
    /// [`Cluster::set_advertised_port`] says otherwise.
    pub base_port: u16,
    /// Create unknown topics on Metadata requests that allow it.
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic (and of a CreateTopics request asking -1).
    pub default_partitions: i32,
    /// Replication factor of auto-created topics (capped at the broker count).
    pub default_replication: i16,
    /// How long an `acks=1` batch takes to reach the followers.
    pub replication_delay: Duration,
    /// Largest request frame accepted; a larger one closes the connection.
    pub max_frame_size: usize,
    /// Seed for everything random in the cluster (topic ids, SCRAM nonces, ...).
    pub seed: u64,
    /// Require SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) before any other API.
    pub sasl: Option<SimSasl>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            brokers: 1,
            cluster_id: "kafka-sansio-sim".into(),
            host: "127.0.0.1".into(),
            base_port: 9092,
            auto_create_topics: true,
            default_partitions: 1,
            default_replication: 3,
            replication_delay: Duration::from_millis(5),
            max_frame_size: 100 * 1024 * 1024,
            seed: 0x5EED,
            sasl: None,
        }
    }
}

/// Faults the cluster injects; all off by default. Switch them at any time.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Throttle time reported in every response, in milliseconds.
    pub throttle_ms: i32,
    /// Extra virtual time before a Fetch response is sent.
    pub fetch_delay: Duration,
    /// Cut Fetch responses at max bytes in the middle of a batch, as some brokers do.
    pub partial_batches: bool,
    /// A planted bug, for proving that a simulation test can catch one: the chance
    /// that an `acks=all` batch is dropped from the log right after it was
    /// acknowledged. Never set this outside such a test.
    #[doc(hidden)]
    pub planted_bug_lose_acked: f64,
}

/// The most partitions one simulated topic may have. Kafka sets no such limit, but a
/// simulation holds every partition in memory, and a client asking for two billion
/// (found by fuzzing) must get an error, not exhaust the process.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// The most partitions the whole simulated cluster may hold, for the same reason: one
/// CreateTopics request may name many topics (found by fuzzing).
pub const MAX_PARTITIONS_PER_CLUSTER: usize = 50_000;

/// A client connection to one simulated broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

/// Errors from the cluster's own API (not from clients' requests, which get Kafka
/// error codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The broker id is not in the cluster.
    #[error("no broker {0} in the cluster")]
    NoSuchBroker(i32),
    /// The broker is crashed.
    #[error("broker {0} is down")]
    BrokerDown(i32),
    /// The topic already exists.
    #[error("topic {0} already exists")]
    TopicExists(String),
    /// The topic does not exist.
    #[error("topic {0} does not exist")]
    NoSuchTopic(String),
    /// A partition count or replication factor the cluster cannot hold.
    #[error("invalid topic layout: {0}")]
    InvalidLayout(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Partition {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub log: PartitionLog,
}

#[derive(Debug, Clone)]
pub(crate) struct Topic {
    pub id: Uuid,
    pub partitions: Vec<Partition>,
}

#[derive(Debug, Clone)]
struct Broker {
    port: i32,
    up: bool,
}

/// A request waiting its turn on a connection (Kafka answers in order).
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
}

#[derive(Debug)]
pub(crate) struct ServerConn {
    broker: i32,
    pub(crate) auth: sasl::AuthState,
    /// Request frames as they arrive, through the client's own framing (and its cap).
    frames: FrameDecoder,
    pending: VecDeque<Pending>,
    out: VecDeque<Bytes>,
}

/// A deterministic in-memory Kafka cluster, driven like every sans-IO state machine.
///
/// Driving contract, for each client connection `c` (see [`Cluster::connect`]):
/// 1. bytes from the client: [`handle_input(c, now, bytes)`](Self::handle_input);
/// 2. then drain [`poll_transmit(c)`](Self::poll_transmit) and send what it returns;
/// 3. drain [`poll_closed`](Self::poll_closed) and close those connections;
/// 4. when [`poll_timeout`](Self::poll_timeout) passes, call
///    [`handle_timeout(now)`](Self::handle_timeout) and go to 2 for every connection.
///
/// `now` must never go backwards.
#[derive(Debug)]
pub struct Cluster {
    pub(crate) config: ClusterConfig,
    /// Faults to inject; change them between calls.
    pub faults: Faults,
    brokers: Vec<Broker>,
    pub(crate) topics: BTreeMap<String, Topic>,
    pub(crate) conns: BTreeMap<ConnectionId, ServerConn>,
    closed: VecDeque<ConnectionId>,
    next_conn: u64,
    pub(crate) next_producer_id: i64,
    pub(crate) injected: BTreeMap<i16, VecDeque<i16>>,
    /// Offsets committed by groups without members (OffsetCommit with generation -1),
    /// by (group, topic, partition).
    pub(crate) committed: BTreeMap<(String, String, i32), handlers::CommittedOffset>,
    /// Consumer groups (the classic protocol), by group id.
    pub(crate) groups: groups::Groups,
    rng: u64,
    now: Instant,
}

impl Cluster {
    /// A cluster with no topics; every broker up.
    #[must_use]
    pub fn new(config: ClusterConfig, now: Instant) -> Self {
        let brokers = (0..config.brokers.max(1))
            .map(|i| Broker {
                port: i32::from(config.base_port) + i as i32,
                up: true,
            })
            .collect();
        let rng = config.seed ^ 0x9E37_79B9_7F4A_7C15;
        Cluster {
            config,
            faults: Faults::default(),
            brokers,
            topics: BTreeMap::new(),
            conns: BTreeMap::new(),
            closed: VecDeque::new(),
            next_conn: 1,
            next_producer_id: 1000,
            injected: BTreeMap::new(),
            committed: BTreeMap::new(),
            groups: groups::Groups::default(),
            rng,
            now,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub(crate) fn next_random(&mut self) -> u64 {
        // splitmix64: small, fast, and the same on every platform.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Sets the port broker `id` advertises (a server adapter calls this once it has
    /// bound the listener).
    pub fn set_advertised_port(&mut self, id: i32, port: u16) -> Result<(), SimError> {
        let b = self.broker_mut(id)?;
        b.port = i32::from(port);
        Ok(())
    }

    fn broker_mut(&mut self, id: i32) -> Result<&mut Broker, SimError> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.brokers.get_mut(i))
            .ok_or(SimError::NoSuchBroker(id))
    }

    /// Broker ids, in order.
    pub fn broker_ids(&self) -> impl Iterator<Item = i32> + '_ {
        (0..self.brokers.len()).map(|i| i as i32)
    }

    /// The broker advertising `port` (on the configured host), if any.
    #[must_use]
    pub fn broker_at(&self, port: u16) -> Option<i32> {
        self.brokers
            .iter()
            .position(|b| b.port == i32::from(port))
            .map(|i| i as i32)
    }

    /// The bootstrap list a client would be given: every broker's `host:port`.
    #[must_use]
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(|b| format!("{}:{}", self.config.host, b.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether broker `id` is up.
    #[must_use]
    pub fn is_up(&self, id: i32) -> bool {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.brokers.get(i))
            .is_some_and(|b| b.up)
    }

    pub(crate) fn live_brokers(&self) -> Vec<(i32, i32)> {
        self.brokers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.up)
            .map(|(i, b)| (i as i32, b.port))
            .collect()
    }

    /// Opens a client connection to broker `id`.
    pub fn connect(&mut self, id: i32, now: Instant) -> Result<ConnectionId, SimError> {
        self.advance(now);
        if !self.broker_mut(id)?.up {
            return Err(SimError::BrokerDown(id));
        }
        let c = ConnectionId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(
            c,
            ServerConn {
                broker: id,
                auth: sasl::AuthState::default(),
                frames: FrameDecoder::new(self.config.max_frame_size),
                pending: VecDeque::new(),
                out: VecDeque::new(),
            },
        );
        Ok(c)
    }

    /// The client closed connection `c` (or the transport failed).
    pub fn disconnect(&mut self, c: ConnectionId) {
        self.conns.remove(&c);
    }

    /// Bytes the client sent on `c`.
    pub fn handle_input(&mut self, c: ConnectionId, now: Instant, bytes: &[u8]) {
        self.advance(now);
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        conn.frames.extend(bytes);
        loop {
            let Some(conn) = self.conns.get_mut(&c) else {
                return;
            };
            let accepted = match conn.frames.next_frame() {
                Ok(Some(frame)) => self.accept_frame(c, frame),
                Ok(None) => break,
                // A size prefix over the cap or negative: the stream is lost.
                Err(_) => false,
            };
            if !accepted {
                self.close(c);
                return;
            }
        }
        self.process(c);
    }

    /// Parses a request header and queues the request; `false` closes the connection
    /// (an unknown API or version, or a header that does not parse).
    fn accept_frame(&mut self, c: ConnectionId, frame: Bytes) -> bool {
        if frame.len() < 4 {
            return false;
        }
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let Ok(api) = ApiKey::try_from(key) else {
            return false;
        };
        let supported = handlers::supported_versions(api, self.config.sasl.is_some());
        let mut buf = frame.clone();
        let header_version = if supported.is_some_and(|r| r.contains(version)) {
            api.request_header_version(version)
        } else if api == ApiKey::ApiVersions {
            // An ApiVersions request newer than ours: read the header as v1 (its client
            // id is never compact) and answer UNSUPPORTED_VERSION at v0.
            1
        } else {
            return false;
        };
        let Ok(header) = RequestHeader::decode(&mut buf, header_version) else {
            return false;
        };
        let Some(conn) = self.conns.get_mut(&c) else {
            return false;
        };
        conn.pending.push_back(Pending {
            header,
            body: buf,
            deadline: None,
            not_before: None,
            seen: false,
        });
        true
    }

    fn close(&mut self, c: ConnectionId) {
        if self.conns.remove(&c).is_some() {
            self.closed.push_back(c);
        }
    }

    /// Answers queued requests on `c` in order until one must wait.
    fn process(&mut self, c: ConnectionId) {
        loop {
            let now = self.now;
            let Some(conn) = self.conns.get_mut(&c) else {
                return;
            };
            let broker = conn.broker;
            let Some(mut pending) = conn.pending.pop_front() else {
                return;
            };
            match handlers::handle(self, c, broker, &mut pending, now) {
                handlers::Outcome::Respond(body) => {
                    let mut frame = BytesMut::new();
                    if put_frame(&mut frame, &body).is_err() {
                        // Over 2 GiB: no size prefix can say it.
                        self.close(c);
                        return;
                    }
                    if let Some(conn) = self.conns.get_mut(&c) {
                        conn.out.push_back(frame.freeze());
                    }
                }
                handlers::Outcome::NoResponse => {}
                handlers::Outcome::Wait => {
                    if let Some(conn) = self.conns.get_mut(&c) {
                        conn.pending.push_front(pending);
                    }
                    return;
                }
                handlers::Outcome::Close => {
                    self.close(c);
                    return;
                }
            }
        }
    }

    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// Time passed: answers parked fetches whose wait is over or whose data arrived.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        let ids: Vec<ConnectionId> = self.conns.keys().copied().collect();
        for c in ids {
            self.process(c);
        }
    }

    /// Response bytes for connection `c`, in order.
    #[must_use]
    pub fn poll_transmit(&mut self, c: ConnectionId) -> Option<Bytes> {
        self.conns.get_mut(&c)?.out.pop_front()
    }

    /// A connection the cluster closed (bad request, broker crash); the transport
    /// should close it.
    #[must_use]
    pub fn poll_closed(&mut self) -> Option<ConnectionId> {
        self.closed.pop_front()
    }

    /// The next time something happens without input: a parked Fetch's deadline or a
    /// replication completing.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let parked = self
            .conns
            .values()
            .filter_map(|c| c.pending.front())
            .flat_map(|p| [p.deadline, p.not_before])
            .flatten();
        let replication = self
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter_map(|p| p.log.next_replication(self.now));
        parked.chain(replication).min()
    }

    /// Creates a topic; replicas are spread round-robin from partition index.
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication: i16,
    ) -> Result<Uuid, SimError> {
        if self.topics.contains_key(name) {
            return Err(SimError::TopicExists(name.into()));
        }
        let n = self.brokers.len() as i32;
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions)
            || self.partition_count() + partitions as usize > MAX_PARTITIONS_PER_CLUSTER
            || replication < 1
            || i32::from(replication) > n
        {
            return Err(SimError::InvalidLayout(format!(
                "{partitions} partitions, replication {replication}, {n} brokers"
            )));
        }
        let hi = self.next_random();
        let lo = self.next_random();
        let id = Uuid::from_u128((u128::from(hi) << 64) | u128::from(lo));
        let mut topic = Topic {
            id,
            partitions: Vec::new(),
        };
        for p in 0..partitions {
            topic.partitions.push(self.new_partition(p, replication));
        }
        self.topics.insert(name.into(), topic);
        Ok(id)
    }

    pub(crate) fn new_partition(&self, index: i32, replication: i16) -> Partition {
        let n = self.brokers.len() as i32;
        let replicas: Vec<i32> = (0..i32::from(replication))
            .map(|r| (index + r) % n)
            .collect();
        let leader = replicas
            .iter()
            .copied()
            .find(|b| self.is_up(*b))
            .unwrap_or(-1);
        Partition {
            leader,
            leader_epoch: 0,
            replicas,
            log: PartitionLog::new(),
        }
    }

    /// How many partitions the cluster holds, over every topic.
    #[must_use]
    pub fn partition_count(&self) -> usize {
        self.topics.values().map(|t| t.partitions.len()).sum()
    }

    /// The current leader of a partition (`None` if unknown or offline).
    #[must_use]
    pub fn partition_leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let p = self
            .topics
            .get(topic)?
            .partitions
            .get(usize::try_from(partition).ok()?)?;
        (p.leader >= 0).then_some(p.leader)
    }

    /// The high watermark and log start offset of a partition.
    #[must_use]
    pub fn partition_offsets(&self, topic: &str, partition: i32) -> Option<(i64, i64)> {
        let p = self
            .topics
            .get(topic)?
            .partitions
            .get(usize::try_from(partition).ok()?)?;
        Some((p.log.high_watermark(self.now), p.log.log_start_offset))
    }

    /// The batches a partition holds (committed or not), as the leader stored them.
    #[must_use]
    pub fn partition_batches(&self, topic: &str, partition: i32) -> Vec<Bytes> {
        self.topics
            .get(topic)
            .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
            .map(|p| p.log.batches.iter().map(|b| b.bytes.clone()).collect())
            .unwrap_or_default()
    }

    /// The offset group `group` committed for a partition (OffsetCommit), if any.
    #[must_use]
    pub fn committed_offset(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        self.committed
            .get(&(group.to_owned(), topic.to_owned(), partition))
            .map(|c| c.offset)
    }

    /// The name of the topic with id `id`.
    pub(crate) fn topic_name(&self, id: Uuid) -> Option<String> {
        self.topics
            .iter()
            .find(|(_, t)| t.id == id)
            .map(|(n, _)| n.clone())
    }

    /// Deletes a topic, and the offsets groups committed for it (as Kafka does).
    pub(crate) fn delete_topic(&mut self, name: &str) {
        self.topics.remove(name);
        self.committed.retain(|(_, t, _), _| t != name);
    }

    /// Adds partitions at the end of topic `name` (CreatePartitions).
    pub(crate) fn add_partitions(&mut self, name: &str, new: Vec<Partition>) {
        if let Some(topic) = self.topics.get_mut(name) {
            topic.partitions.extend(new);
        }
    }

    /// Topic names, sorted.
    pub fn topic_names(&self) -> impl Iterator<Item = &str> {
        self.topics.keys().map(String::as_str)
    }

    /// Crashes broker `id`: its connections close, and every partition it led moves to
    /// another live replica, losing the batches that had not reached the followers.
    pub fn crash_broker(&mut self, id: i32, now: Instant) {
        self.advance(now);
        let Ok(b) = self.broker_mut(id) else { return };
        b.up = false;
        let victims: Vec<ConnectionId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.broker == id)
            .map(|(k, _)| *k)
            .collect();
        for c in victims {
            self.close(c);
        }
        let up: Vec<bool> = self.brokers.iter().map(|b| b.up).collect();
        let now = self.now;
        for topic in self.topics.values_mut() {
            for p in &mut topic.partitions {
                if p.leader == id {
                    p.log.truncate_unreplicated(now);
                    p.leader = p
                        .replicas
                        .iter()
                        .copied()
                        .find(|r| {
                            usize::try_from(*r)
                                .ok()
                                .and_then(|i| up.get(i))
                                .copied()
                                .unwrap_or(false)
                        })
                        .unwrap_or(-1);
                    p.leader_epoch += 1;
                }
            }
        }
    }

    /// Brings broker `id` back; offline partitions it replicates get it as leader.
    pub fn restart_broker(&mut self, id: i32, now: Instant) {
        self.advance(now);
        let Ok(b) = self.broker_mut(id) else { return };
        b.up = true;
        for topic in self.topics.values_mut() {
            for p in &mut topic.partitions {
                if p.leader < 0 && p.replicas.contains(&id) {
                    p.leader = id;
                    p.leader_epoch += 1;
                }
            }
        }
    }

    /// Moves a partition's leadership to replica `to` in an orderly way (the new
    /// leader first catches up, so nothing is lost).
    pub fn move_leader(&mut self, topic: &str, partition: i32, to: i32) -> Result<(), SimError> {
        if !self.is_up(to) {
            return Err(SimError::BrokerDown(to));
        }
        let now = self.now;
        let t = self
            .topics
            .get_mut(topic)
            .ok_or_else(|| SimError::NoSuchTopic(topic.into()))?;
        let p = t
            .partitions
            .get_mut(usize::try_from(partition).unwrap_or(usize::MAX))
            .ok_or_else(|| SimError::NoSuchTopic(format!("{topic}-{partition}")))?;
        if !p.replicas.contains(&to) {
            p.replicas.push(to);
        }
        for b in &mut p.log.batches {
            b.replicated_at = b.replicated_at.min(now);
        }
        p.leader = to;
        p.leader_epoch += 1;
        Ok(())
    }

    /// The next `count` requests of `api` are answered with `error` (in every
    /// partition or at the top level, as the API has it) and change nothing.
    pub fn inject_error(&mut self, api: ApiKey, error: crate::messages::ErrorCode, count: usize) {
        let q = self.injected.entry(api.as_i16()).or_default();
        q.extend(std::iter::repeat_n(error.code(), count));
    }

    /// How many errors injected for `api` are still waiting for a request.
    #[must_use]
    pub fn injected_pending(&self, api: ApiKey) -> usize {
        self.injected.get(&api.as_i16()).map_or(0, VecDeque::len)
    }

    pub(crate) fn take_injected(&mut self, api: ApiKey) -> Option<i16> {
        self.injected.get_mut(&api.as_i16())?.pop_front()
    }
}
