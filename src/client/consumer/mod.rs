//! The consumer's fetching: assigned partitions, their positions, one fetch in
//! flight per broker with incremental fetch sessions (KIP-227), a byte budget
//! reserved before each fetch is sent, offset reset, and truncation detection after
//! leader changes (KIP-320).
//!
//! Memory is bounded by configuration, not by the broker: a fetch asks for at most
//! the budget that is free and reserves it before it goes out; the response's raw
//! bytes are kept (slices of the received frame) and decoded one batch at a time as
//! the application polls, so at most one decompressed batch per partition exists
//! beside the budget. A partition's chunk releases its bytes once consumed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::messages::{ApiKey, ErrorCode, FetchRequest, FetchResponse, fetch_request};
use crate::records::{
    AbortedTransaction, Batch, BatchReader, BatchRecords, DecodeOptions, ReadCommitted, Record,
};
use crate::wire::Uuid;

use super::ClientError;
use super::ops::partition::IsolationLevel;

/// A topic and partition.
///
/// ```
/// use kafka_sansio::client::TopicPartition;
/// let p = TopicPartition::new("orders", 3);
/// assert_eq!(p.to_string(), "orders-3");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    ///
    /// ```
    /// use kafka_sansio::client::TopicPartition;
    /// let p = TopicPartition::new("orders", 3);
    /// assert_eq!((&*p.topic, p.partition), ("orders", 3));
    /// ```
    #[must_use]
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Where consuming a partition starts (or moves to with a seek).
///
/// ```
/// use kafka_sansio::client::{Client, ClientConfig, Offset, TopicPartition};
/// # #[allow(clippy::disallowed_methods)]
/// let now = std::time::Instant::now();
/// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
/// client.assign(now, vec![TopicPartition::new("orders", 0)], Offset::At(42));
/// client.assign(now, vec![TopicPartition::new("orders", 1)], Offset::Timestamp(1_700_000_000_000));
/// client.assign(now, vec![TopicPartition::new("orders", 2)], Offset::End);
/// assert_eq!(client.assignment().len(), 3);
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// This offset.
    At(i64),
    /// The log start.
    Beginning,
    /// The log end: only records produced from now on.
    End,
    /// The first record at or after this timestamp (ms since the epoch).
    Timestamp(i64),
    /// The group's committed offset, or the reset policy if there is none. A seek
    /// here asks the coordinator again (after an aborted transaction, say), so it
    /// goes back to what the group holds now.
    Committed,
}

/// What to do when a partition has no valid position (no committed offset, or the
/// position fell out of the log).
///
/// ```
/// use kafka_sansio::client::{ClientConfig, OffsetReset};
/// let mut config = ClientConfig::new("localhost:9092")?;
/// assert_eq!(config.consumer.auto_offset_reset, OffsetReset::Latest); // the default
/// config.consumer.auto_offset_reset = OffsetReset::Earliest;
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// Start at the log start.
    Earliest,
    /// Start at the log end.
    #[default]
    Latest,
    /// Report [`Event::ConsumerError`](super::Event::ConsumerError) and pause the
    /// partition.
    Error,
}

/// How the consumer fetches. Defaults follow the Java client's.
///
/// ```
/// use std::time::Duration;
/// use kafka_sansio::client::{ConsumerConfig, OffsetReset};
/// let mut c = ConsumerConfig::default();
/// c.auto_offset_reset = OffsetReset::Earliest;
/// c.buffer_max_bytes = 16 << 20; // at most 16 MiB of fetched records buffered
/// assert_eq!(c.fetch_max_wait, Duration::from_millis(500));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// The consumer group, for committed offsets and group membership.
    pub group_id: Option<String>,
    /// Where to start without a valid position.
    pub auto_offset_reset: OffsetReset,
    /// Which records to return. A read_committed member of a group also asks for
    /// stable committed offsets (KIP-447, OffsetFetch v7+, as the Java client
    /// does): where an open transaction holds an offset for a partition it is
    /// given, it waits for that transaction to end rather than start from the
    /// offset the transaction is about to replace.
    pub isolation: IsolationLevel,
    /// Bytes a broker should gather before answering a fetch.
    pub fetch_min_bytes: i32,
    /// How long a broker may wait for them.
    pub fetch_max_wait: Duration,
    /// Most bytes one fetch asks for (across its partitions).
    pub fetch_max_bytes: i32,
    /// Most bytes per partition in a fetch.
    pub partition_max_bytes: i32,
    /// Bytes of fetched records held at once (reserved before a fetch is sent:
    /// 64 MiB). Each broker with partitions to read may reserve an equal share of
    /// it for its fetch (at most `fetch_max_bytes`), so a broker that holds a fetch
    /// for lack of new data never keeps the others from fetching; a fetch goes out
    /// only when the budget has room for its share, `partition_max_bytes` or
    /// `fetch_max_bytes`, whichever is least. A broker still answers with at least
    /// one whole batch (KIP-74), so a share below a batch's size slows reading but
    /// never stops it.
    pub buffer_max_bytes: usize,
    /// Incremental fetch sessions (KIP-227) where the broker offers them.
    pub fetch_sessions: bool,
    /// Verify record batch CRCs.
    pub check_crcs: bool,
    /// Which group protocol [`Client::subscribe`](super::Client::subscribe) speaks
    /// (`group.protocol`: classic).
    pub group_protocol: super::GroupProtocol,
    /// Classic protocol: the assignors offered, in order of preference
    /// (`partition.assignment.strategy`: range, then cooperative-sticky, as Java's
    /// default; the rebalance is cooperative only when every assignor listed is).
    pub assignors: Vec<super::Assignor>,
    /// Classic protocol: how long the coordinator keeps a member that stopped
    /// heartbeating (`session.timeout.ms`: 45 s). Both protocols also use it as the
    /// member's own bound: a member whose heartbeats went unanswered this long
    /// drops its partitions (with KIP-848 keep it at most the broker's
    /// `group.consumer.session.timeout.ms`).
    pub session_timeout: Duration,
    /// Classic protocol: how often the member heartbeats (`heartbeat.interval.ms`:
    /// 3 s; with KIP-848 the coordinator says).
    pub heartbeat_interval: Duration,
    /// How long a rebalance may take the member: the coordinator's wait for it to
    /// rejoin or revoke, and the member's wait for
    /// [`Client::ack_rebalance`](super::Client::ack_rebalance)
    /// (Java sets it from `max.poll.interval.ms`: 5 min).
    pub rebalance_timeout: Duration,
    /// How long fetched records may wait for the application of a group member
    /// before it is taken to be stuck (`max.poll.interval.ms`: 5 min): when records
    /// have been ready this long and the application has not polled since, the
    /// member leaves the group, so that the other members consume its partitions
    /// (from the committed offsets; a static member sends no leave and is dropped
    /// when its session times out). Its next poll gets
    /// [`ClientError::PollIntervalExceeded`](super::ClientError::PollIntervalExceeded)
    /// with the partitions reported lost, and the member joins again. Waiting for
    /// records never counts: the clock runs only while records wait. The facades
    /// hand records over up to 1,024 at a time, so an application must get
    /// through such a batch within this interval.
    pub max_poll_interval: Duration,
    /// A static member's instance id (`group.instance.id`, KIP-345): a restart with
    /// the same id within the session timeout gets its partitions back without a
    /// rebalance; a static member does not leave the group on close. With a
    /// cooperative assignor it makes one more rebalance after its first
    /// assignment (nothing moves in it unless something must): its previous
    /// incarnation may have left partitions in the middle of a move, which only
    /// a rejoin hands out.
    pub group_instance_id: Option<String>,
    /// KIP-848: the coordinator's assignor to ask for (`group.remote.assignor`;
    /// `None`: the coordinator's default).
    pub group_remote_assignor: Option<String>,
    /// Commit the positions of the partitions the member holds every
    /// [`auto_commit_interval`](Self::auto_commit_interval), and before they are
    /// revoked or the member leaves (`enable.auto.commit`: true).
    pub enable_auto_commit: bool,
    /// How often auto-commit runs (`auto.commit.interval.ms`: 5 s).
    pub auto_commit_interval: Duration,
    /// A planted bug for the simulation suite only: a classic group leader that
    /// hands partition 0 of every topic to a second member too. It exists to prove
    /// the invariants catch a double assignment; never set it.
    #[doc(hidden)]
    pub planted_double_assignment: bool,
    /// A planted bug for the simulation suite only: after a retriable error in a
    /// partition's fetch answer, its next fetch starts one record further on. It
    /// exists to prove the consumer invariants catch a skipped record; never set it.
    #[doc(hidden)]
    pub planted_bug_skip_after_error: bool,
    /// A planted bug for the simulation suite only: the facades' group
    /// auto-commits the poll positions, past records the consumer's buffer holds
    /// and has not handed out. It exists to prove the facade suite catches records
    /// skipped when a member dies; never set it.
    #[doc(hidden)]
    pub planted_bug_commit_buffered: bool,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            group_id: None,
            auto_offset_reset: OffsetReset::Latest,
            isolation: IsolationLevel::ReadUncommitted,
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            fetch_max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
            buffer_max_bytes: 64 * 1024 * 1024,
            fetch_sessions: true,
            check_crcs: true,
            group_protocol: super::GroupProtocol::Classic,
            assignors: vec![super::Assignor::Range, super::Assignor::CooperativeSticky],
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            rebalance_timeout: Duration::from_secs(300),
            max_poll_interval: Duration::from_secs(300),
            group_instance_id: None,
            group_remote_assignor: None,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            planted_double_assignment: false,
            planted_bug_skip_after_error: false,
            planted_bug_commit_buffered: false,
        }
    }
}

/// A record handed to the application.
///
/// ```
/// # #[cfg(feature = "sim")] {
/// # let (mut sim, host) = kafka_sansio::doc_support::sim();
/// use std::time::Duration;
/// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
///
/// let now = sim.now();
/// sim.client(host).send(now, ProducerRecord::new("orders", "paid").key("order-17").partition(2))?;
/// sim.client(host).assign(now, vec![TopicPartition::new("orders", 2)], Offset::Beginning);
/// let mut got = Vec::new();
/// sim.run_until(Duration::from_secs(5), |sim| {
///     let now = sim.now();
///     got.extend(sim.client(host).poll_records(now, 10));
///     !got.is_empty()
/// });
/// let r = &got[0];
/// assert_eq!((&*r.topic, r.partition, r.record.offset), ("orders", 2, 0));
/// assert_eq!(r.record.key(), Some(&b"order-17"[..]));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record: offset, timestamp, key, value, headers.
    pub record: Record,
    /// The leader epoch of its batch (`-1` if unknown).
    pub leader_epoch: i32,
}

/// A fetched, not yet consumed piece of one partition's log.
#[derive(Debug)]
struct Chunk {
    /// The raw records (a slice of the response frame), up to the first batch
    /// that failed its checks when the response arrived; their CRCs were checked
    /// then.
    reader: BatchReader,
    /// Why the batches after the reader's end could not be read: reported once
    /// the reader reaches its end.
    bad: Option<crate::records::RecordsError>,
    /// Bytes it holds against the budget.
    bytes: usize,
    /// The read_committed filter, if any.
    filter: Option<ReadCommitted>,
    /// The batch being handed out, parsed as its records are taken.
    current: Option<BatchRecords>,
    /// Its last offset.
    current_last: i64,
    /// Whether it gave any record yet.
    yielded: bool,
    current_epoch: i32,
}

/// Where a partition stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Waiting for a start: the committed offset, or a reset.
    Unknown(Offset),
    /// A ListOffsets (reset or seek by time) for this start is out.
    Resolving(Offset),
    /// Consuming from here.
    At { offset: i64, epoch: Option<i32> },
    /// Stopped by an error under [`OffsetReset::Error`].
    Failed,
}

#[derive(Debug)]
struct PartState {
    position: Position,
    /// Where the next fetch starts (past what is buffered).
    fetch_offset: i64,
    /// The leader epoch the last fetched batch was written in.
    fetch_epoch: Option<i32>,
    paused: bool,
    chunks: VecDeque<Chunk>,
    /// Set from the consumer's counter when assigned and at every seek, so answers
    /// to fetches asked before (of this partition, or of an earlier assignment of
    /// it) are dropped.
    generation: u64,
    /// A fetch for it is on the wire.
    in_flight: bool,
    /// The leader epoch seen in metadata when last checked; a newer one calls for
    /// validation (OffsetForLeaderEpoch).
    leader_epoch: Option<i32>,
    validating: bool,
    high_watermark: i64,
    /// The batch at `fetch_offset` failed its checks (a CRC mismatch, a malformed
    /// header): the error was reported, and the partition is not fetched again
    /// until a seek moves it (fetching it again would bring the same bytes).
    stuck: bool,
    /// The consumer's `answers_with_records` when a fetch last brought records for
    /// it: the lower, the earlier a fetch names it.
    last_records: u64,
    /// Paused while a fetch for it was on the wire: that fetch's answer for it is
    /// dropped (it starts past the position the pause went back to).
    drop_answer: bool,
}

impl PartState {
    fn new(start: Offset, generation: u64) -> Self {
        Self {
            position: Position::Unknown(start),
            fetch_offset: 0,
            fetch_epoch: None,
            paused: false,
            chunks: VecDeque::new(),
            generation,
            in_flight: false,
            leader_epoch: None,
            validating: false,
            high_watermark: -1,
            last_records: 0,
            drop_answer: false,
            stuck: false,
        }
    }

    fn buffered(&self) -> usize {
        self.chunks.iter().map(|c| c.bytes).sum()
    }

    /// Drops what is buffered; the bytes it held.
    fn drop_buffered(&mut self) -> usize {
        let bytes = self.buffered();
        self.chunks.clear();
        bytes
    }
}

/// One broker's fetch session (KIP-227).
#[derive(Debug, Default)]
struct Session {
    id: i32,
    /// The next epoch to send: 0 asks for a new session (a full fetch).
    epoch: i32,
    /// What the broker's session holds: per partition, the fetch offset and epoch
    /// it was last told.
    partitions: BTreeMap<TopicPartition, (i64, i32)>,
}

/// A fetch on the wire.
#[derive(Debug)]
pub(crate) struct FetchInFlight {
    node: i32,
    reserved: usize,
    /// The partitions asked for, with their generation when asked.
    partitions: Vec<(TopicPartition, u64)>,
    /// Topic ids used in the request, to map the answer back.
    ids: BTreeMap<Uuid, Arc<str>>,
}

/// What the consumer asks of the client.
#[allow(clippy::large_enum_variant)] // built a few at a time, moved once
pub(crate) enum Want {
    Metadata(Arc<str>),
    Connect(i32),
    Fetch {
        node: i32,
        request: FetchRequest,
        version_cap: i16,
        flight: FetchInFlight,
        hold: Duration,
    },
    /// Look up the offset for `spec` (-2 earliest, -1 latest, or a timestamp).
    ListOffsets {
        tp: TopicPartition,
        spec: i64,
        generation: u64,
    },
    /// Check the position against the leader's log (KIP-320).
    Validate {
        tp: TopicPartition,
        epoch: i32,
        generation: u64,
    },
    /// The group's committed offsets for these partitions are needed.
    Committed(Vec<TopicPartition>),
}

/// What the consumer reports.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Note {
    Error {
        partition: Option<TopicPartition>,
        error: ClientError,
    },
    RecordsReady,
}

/// The metadata the consumer needs of a partition.
pub(crate) struct PartitionView {
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    pub topic_id: Uuid,
}

/// The consumer's fetching state; the [`Client`](super::Client) drives it.
#[derive(Debug)]
pub(crate) struct Consumer {
    pub(crate) config: ConsumerConfig,
    parts: BTreeMap<TopicPartition, PartState>,
    sessions: BTreeMap<i32, Session>,
    /// Brokers with a fetch on the wire.
    fetching: BTreeSet<i32>,
    /// Bytes reserved or held.
    buffered: usize,
    /// Partitions with chunks to hand out, in arrival order.
    ready: VecDeque<TopicPartition>,
    pub(crate) notes: VecDeque<Note>,
    /// Committed offsets known (from the group).
    committed: BTreeMap<TopicPartition, i64>,
    /// Partitions whose committed offset has been asked for.
    committed_asked: BTreeSet<TopicPartition>,
    /// The last partition generation handed out: one counter for all partitions
    /// and assignments, so a partition revoked and assigned again while a fetch
    /// for it is on the wire never takes that fetch's answer as its own.
    generations: u64,
    /// Partition answers that brought records, counted: each partition remembers
    /// the count at its last one, and a fetch names first the partitions that
    /// waited longest (a broker fills partitions in the order asked).
    answers_with_records: u64,
    /// The broker after the last one sent a fetch: when the budget admits only
    /// some brokers' fetches, the next round starts there, so every broker gets
    /// its turn instead of the lowest ids every time.
    next_fetch_node: i32,
}

impl Consumer {
    pub(crate) fn new(config: ConsumerConfig) -> Self {
        Self {
            config,
            parts: BTreeMap::new(),
            sessions: BTreeMap::new(),
            fetching: BTreeSet::new(),
            buffered: 0,
            ready: VecDeque::new(),
            notes: VecDeque::new(),
            committed: BTreeMap::new(),
            committed_asked: BTreeSet::new(),
            generations: 0,
            answers_with_records: 0,
            next_fetch_node: 0,
        }
    }

    /// Partitions assigned now.
    pub(crate) fn assignment(&self) -> Vec<TopicPartition> {
        self.parts.keys().cloned().collect()
    }

    /// Whether records wait to be handed out (a partition in the ready queue
    /// whose chunks were not dropped since it was queued).
    pub(crate) fn has_ready(&self) -> bool {
        self.ready
            .iter()
            .any(|tp| self.parts.get(tp).is_some_and(|p| !p.chunks.is_empty()))
    }

    /// Bytes reserved or held for fetched records.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Adds partitions, each starting at `start`.
    pub(crate) fn assign(&mut self, tps: impl IntoIterator<Item = TopicPartition>, start: Offset) {
        for tp in tps {
            let generations = &mut self.generations;
            self.parts.entry(tp).or_insert_with(|| {
                *generations += 1;
                PartState::new(start, *generations)
            });
        }
    }

    /// Removes partitions; their buffered records are dropped at once (so no later
    /// poll returns them).
    pub(crate) fn unassign(&mut self, tps: &[TopicPartition]) {
        for tp in tps {
            if let Some(p) = self.parts.remove(tp) {
                self.buffered -= p.buffered();
            }
            self.ready.retain(|r| r != tp);
            // Whoever holds it next may commit: a later assignment asks again.
            self.committed.remove(tp);
            self.committed_asked.remove(tp);
        }
    }

    /// Moves a partition's position; what was buffered for it is dropped.
    pub(crate) fn seek(&mut self, tp: &TopicPartition, to: Offset) -> bool {
        let Some(p) = self.parts.get_mut(tp) else {
            return false;
        };
        self.buffered -= p.drop_buffered();
        self.generations += 1;
        p.generation = self.generations;
        p.position = match to {
            Offset::At(offset) => {
                p.fetch_offset = offset;
                p.fetch_epoch = None;
                Position::At {
                    offset,
                    epoch: None,
                }
            }
            other => Position::Unknown(other),
        };
        p.validating = false;
        p.stuck = false;
        self.ready.retain(|r| r != tp);
        if to == Offset::Committed {
            // What the group holds now, not what it held when the partition was
            // assigned: commits since (this member's own, or a transaction's) moved it.
            self.committed.remove(tp);
            self.committed_asked.remove(tp);
        }
        true
    }

    /// Pauses (or resumes) fetching these partitions and handing out their
    /// records. A pause drops what is buffered for a partition and fetches it
    /// again from its position after the resume: a paused partition holds none of
    /// the byte budget, which the other partitions need (a budget smaller than a
    /// fetch would otherwise stop every fetch while one partition is paused).
    pub(crate) fn pause(&mut self, tps: &[TopicPartition], paused: bool) {
        for tp in tps {
            let Some(p) = self.parts.get_mut(tp) else {
                continue;
            };
            // (Before it has a position nothing is fetched for it.)
            if paused
                && !p.paused
                && let Position::At { offset, epoch } = p.position
            {
                self.buffered -= p.drop_buffered();
                // An answer on the wire for it is dropped when it comes (the
                // generation stays, for a validation or a lookup on the wire).
                p.drop_answer = p.in_flight;
                p.fetch_offset = offset;
                p.fetch_epoch = epoch;
                self.ready.retain(|r| r != tp);
            }
            p.paused = paused;
        }
    }

    /// The positions to commit: the next offset to consume, per partition.
    pub(crate) fn positions(&self) -> Vec<(TopicPartition, i64, Option<i32>)> {
        self.parts
            .iter()
            .filter_map(|(tp, p)| match p.position {
                Position::At { offset, epoch } => Some((tp.clone(), offset, epoch)),
                _ => None,
            })
            .collect()
    }

    /// Committed offsets arrived (or `-1` for none).
    pub(crate) fn set_committed(&mut self, offsets: Vec<(TopicPartition, i64)>) {
        for (tp, offset) in offsets {
            // An answer for a partition unassigned since it was asked is stale.
            if !self.committed_asked.remove(&tp) {
                continue;
            }
            self.committed.insert(tp.clone(), offset);
            if let Some(p) = self.parts.get_mut(&tp)
                && p.position == Position::Unknown(Offset::Committed)
            {
                p.position = if offset >= 0 {
                    p.fetch_offset = offset;
                    Position::At {
                        offset,
                        epoch: None,
                    }
                } else {
                    Position::Unknown(match self.config.auto_offset_reset {
                        OffsetReset::Earliest => Offset::Beginning,
                        OffsetReset::Latest => Offset::End,
                        OffsetReset::Error => Offset::Committed,
                    })
                };
                if offset < 0 && self.config.auto_offset_reset == OffsetReset::Error {
                    p.position = Position::Failed;
                    self.notes.push_back(Note::Error {
                        partition: Some(tp.clone()),
                        error: ClientError::InvalidArgument(format!(
                            "{tp} has no committed offset and the reset policy is Error"
                        )),
                    });
                }
            }
        }
    }

    /// Asking for committed offsets failed: ask again later.
    pub(crate) fn committed_failed(&mut self, tps: &[TopicPartition]) {
        for tp in tps {
            self.committed_asked.remove(tp);
        }
    }

    /// A ListOffsets for a reset or a seek by time answered.
    pub(crate) fn on_offset(
        &mut self,
        tp: &TopicPartition,
        generation: u64,
        result: Result<i64, ClientError>,
    ) {
        let Some(p) = self.parts.get_mut(tp) else {
            return;
        };
        let Position::Resolving(start) = p.position else {
            return;
        };
        if p.generation != generation {
            return;
        }
        match result {
            Ok(offset) if offset >= 0 => {
                p.position = Position::At {
                    offset,
                    epoch: None,
                };
                p.fetch_offset = offset;
            }
            Ok(_) => {
                // no record at or after that time: the end
                p.position = Position::Unknown(Offset::End);
            }
            // asked again on the next drive
            Err(e) if e.is_retriable() => p.position = Position::Unknown(start),
            Err(e) => {
                p.position = Position::Failed;
                self.notes.push_back(Note::Error {
                    partition: Some(tp.clone()),
                    error: e,
                });
            }
        }
    }

    /// OffsetForLeaderEpoch answered: truncate the position if the log diverged.
    pub(crate) fn on_validated(
        &mut self,
        tp: &TopicPartition,
        generation: u64,
        end_offset: Result<i64, ClientError>,
    ) {
        let Some(p) = self.parts.get_mut(tp) else {
            return;
        };
        if p.generation != generation {
            return;
        }
        p.validating = false;
        if let (Ok(end), Position::At { offset, .. }) = (end_offset, p.position)
            && end >= 0
            && end < offset
        {
            tracing::info!(partition = %tp, from = offset, to = end, "log truncated under the consumer; moving back");
            self.truncate(tp, end);
        }
    }

    fn truncate(&mut self, tp: &TopicPartition, to: i64) {
        let reset = self.config.auto_offset_reset;
        if reset == OffsetReset::Error {
            if let Some(p) = self.parts.get_mut(tp) {
                p.position = Position::Failed;
            }
            self.notes.push_back(Note::Error {
                partition: Some(tp.clone()),
                error: ClientError::InvalidResponse {
                    api: ApiKey::OffsetForLeaderEpoch,
                    detail: format!(
                        "log of {tp} truncated below the consumer's position (to {to})"
                    ),
                },
            });
            return;
        }
        self.seek(tp, Offset::At(to));
    }

    /// Decides what to ask for: positions, validations, fetches.
    pub(crate) fn drive(
        &mut self,
        _now: Instant,
        view: &dyn Fn(&TopicPartition) -> Option<PartitionView>,
        node_ready: &dyn Fn(i32) -> bool,
        fetch_version: &dyn Fn(i32) -> Option<i16>,
        wants: &mut Vec<Want>,
    ) {
        // Positions first.
        let mut need_committed = Vec::new();
        for (tp, p) in &mut self.parts {
            match p.position {
                Position::Unknown(Offset::Committed) if self.config.group_id.is_some() => {
                    if let Some(c) = self.committed.get(tp).copied() {
                        if c >= 0 {
                            p.position = Position::At {
                                offset: c,
                                epoch: None,
                            };
                            p.fetch_offset = c;
                            continue;
                        }
                    } else {
                        if self.committed_asked.insert(tp.clone()) {
                            need_committed.push(tp.clone());
                        }
                        continue;
                    }
                    let spec = match self.config.auto_offset_reset {
                        OffsetReset::Earliest => -2,
                        _ => -1,
                    };
                    p.position = Position::Resolving(Offset::Committed);
                    wants.push(Want::ListOffsets {
                        tp: tp.clone(),
                        spec,
                        generation: p.generation,
                    });
                }
                Position::Unknown(start) => {
                    let spec = match start {
                        Offset::Beginning => -2,
                        Offset::End => -1,
                        Offset::Timestamp(t) => t,
                        Offset::At(o) => {
                            p.position = Position::At {
                                offset: o,
                                epoch: None,
                            };
                            p.fetch_offset = o;
                            continue;
                        }
                        Offset::Committed => match self.config.auto_offset_reset {
                            OffsetReset::Earliest => -2,
                            _ => -1,
                        },
                    };
                    p.position = Position::Resolving(start);
                    wants.push(Want::ListOffsets {
                        tp: tp.clone(),
                        spec,
                        generation: p.generation,
                    });
                }
                _ => {}
            }
        }
        if !need_committed.is_empty() {
            wants.push(Want::Committed(need_committed));
        }
        // Leader changes: validate the position against the new leader's log. As
        // the Java client does, nothing is handed out while the position is being
        // validated: what was buffered past it (fetched from the old leader) is
        // dropped, answers to fetches on the wire are ignored (a new generation),
        // and it is all fetched again once the position stands. Otherwise a record
        // polled meanwhile moved the position past the offset asked about, and an
        // answer that only said where the old epoch ended read as a truncation
        // (the record was handed out twice).
        let mut to_validate = Vec::new();
        for (tp, p) in &mut self.parts {
            let Some(v) = view(tp) else {
                wants.push(Want::Metadata(tp.topic.clone()));
                continue;
            };
            if v.leader_epoch >= 0 {
                let changed = p.leader_epoch.is_some_and(|e| e < v.leader_epoch);
                p.leader_epoch = Some(v.leader_epoch);
                if changed
                    && !p.validating
                    && let Position::At {
                        offset,
                        epoch: Some(epoch),
                    } = p.position
                {
                    to_validate.push((tp.clone(), offset, epoch));
                }
            }
        }
        for (tp, offset, epoch) in to_validate {
            // A seek to the position drops the buffer and starts a new generation;
            // the position keeps its epoch, which is what is asked about.
            self.seek(&tp, Offset::At(offset));
            if let Some(p) = self.parts.get_mut(&tp) {
                p.position = Position::At {
                    offset,
                    epoch: Some(epoch),
                };
                p.fetch_epoch = Some(epoch);
                p.validating = true;
                wants.push(Want::Validate {
                    tp,
                    epoch,
                    generation: p.generation,
                });
            }
        }
        self.build_fetches(view, node_ready, fetch_version, wants);
    }

    fn build_fetches(
        &mut self,
        view: &dyn Fn(&TopicPartition) -> Option<PartitionView>,
        node_ready: &dyn Fn(i32) -> bool,
        fetch_version: &dyn Fn(i32) -> Option<i16>,
        wants: &mut Vec<Want>,
    ) {
        let part_max = self.config.partition_max_bytes.max(1) as usize;
        // Which partitions each broker should fetch now.
        let mut per_node: BTreeMap<i32, Vec<(TopicPartition, i64, i32, Uuid)>> = BTreeMap::new();
        // Brokers with partitions to fetch, fetching now or not: each may reserve
        // its share of the budget, so fetches held by brokers without new data
        // cannot starve a broker that has some.
        let mut sources: BTreeSet<i32> = BTreeSet::new();
        for (tp, p) in &self.parts {
            let Position::At { .. } = p.position else {
                continue;
            };
            if p.paused || p.in_flight || p.validating || p.stuck || p.buffered() >= part_max {
                continue;
            }
            let Some(v) = view(tp) else { continue };
            let Some(leader) = v.leader else {
                wants.push(Want::Metadata(tp.topic.clone()));
                continue;
            };
            sources.insert(leader);
            if self.fetching.contains(&leader) {
                continue;
            }
            per_node.entry(leader).or_default().push((
                tp.clone(),
                p.fetch_offset,
                v.leader_epoch,
                v.topic_id,
            ));
        }
        sources.extend(self.fetching.iter().copied());
        // Brokers from the one after the last sent a fetch, round the ring.
        let mut per_node: Vec<_> = per_node.into_iter().collect();
        let first = per_node.partition_point(|(node, _)| *node < self.next_fetch_node);
        per_node.rotate_left(first);
        for (node, mut partitions) in per_node {
            if !node_ready(node) {
                wants.push(Want::Connect(node));
                continue;
            }
            // Each broker may hold an equal share of the budget, so a fetch held
            // by a broker without new data (for its max wait) leaves the others
            // theirs; a request asks for no more than its share, nor less than the
            // least worth asking for (a partition's max, or one fetch's, if less).
            let free = self.config.buffer_max_bytes.saturating_sub(self.buffered);
            let share = (self.config.buffer_max_bytes / sources.len().max(1)).max(1);
            let fetch_max = self.config.fetch_max_bytes.max(1) as usize;
            if free < share.min(part_max).min(fetch_max) {
                break; // the budget is spoken for: fetch again once records are consumed
            }
            let Some(v) = fetch_version(node) else {
                continue;
            };
            // The partitions that waited longest for records first.
            partitions.sort_by_key(|(tp, ..)| self.parts.get(tp).map_or(0, |p| p.last_records));
            let max_bytes = free.min(share).min(fetch_max);
            let ids_known = partitions.iter().all(|(_, _, _, id)| *id != Uuid::ZERO);
            let v = if ids_known { v } else { v.min(12) };
            let session = self.sessions.entry(node).or_default();
            if !self.config.fetch_sessions || v < 7 {
                session.id = 0;
                session.epoch = -1;
            }
            let incremental = session.id != 0 && session.epoch > 0;
            // What the request must name: everything (full), or what changed.
            let wanted: BTreeMap<TopicPartition, (i64, i32, Uuid)> = partitions
                .iter()
                .map(|(tp, off, ep, id)| (tp.clone(), (*off, *ep, *id)))
                .collect();
            let mut named: Vec<(TopicPartition, i64, i32, Uuid)> = Vec::new();
            let mut forgotten: Vec<TopicPartition> = Vec::new();
            if incremental {
                for (tp, (off, ep, id)) in &wanted {
                    if session.partitions.get(tp) != Some(&(*off, *ep)) {
                        named.push((tp.clone(), *off, *ep, *id));
                    }
                }
                for tp in session.partitions.keys() {
                    if !wanted.contains_key(tp) {
                        forgotten.push(tp.clone());
                    }
                }
            } else {
                named = partitions.clone();
            }
            let mut topics: Vec<fetch_request::FetchTopic> = Vec::new();
            let mut ids = BTreeMap::new();
            for (tp, offset, epoch, id) in &named {
                ids.insert(*id, tp.topic.clone());
                let fp = fetch_request::FetchPartition {
                    partition: tp.partition,
                    current_leader_epoch: if v >= 9 { *epoch } else { -1 },
                    fetch_offset: *offset,
                    last_fetched_epoch: -1,
                    log_start_offset: -1,
                    partition_max_bytes: self.config.partition_max_bytes,
                    ..Default::default()
                };
                match topics.iter_mut().find(|t| {
                    if v >= 13 {
                        t.topic_id == *id
                    } else {
                        *t.topic == *tp.topic
                    }
                }) {
                    Some(t) => t.partitions.push(fp),
                    None => topics.push(fetch_request::FetchTopic {
                        topic: if v <= 12 {
                            (&*tp.topic).into()
                        } else {
                            Default::default()
                        },
                        topic_id: if v >= 13 { *id } else { Uuid::ZERO },
                        partitions: vec![fp],
                        ..Default::default()
                    }),
                }
            }
            let mut forgotten_topics: Vec<fetch_request::ForgottenTopic> = Vec::new();
            for tp in &forgotten {
                let id = view(tp).map_or(Uuid::ZERO, |v| v.topic_id);
                match forgotten_topics.iter_mut().find(|t| {
                    if v >= 13 {
                        t.topic_id == id
                    } else {
                        *t.topic == *tp.topic
                    }
                }) {
                    Some(t) => t.partitions.push(tp.partition),
                    None => forgotten_topics.push(fetch_request::ForgottenTopic {
                        topic: if v <= 12 {
                            (&*tp.topic).into()
                        } else {
                            Default::default()
                        },
                        topic_id: if v >= 13 { id } else { Uuid::ZERO },
                        partitions: std::iter::once(tp.partition).collect(),
                        ..Default::default()
                    }),
                }
            }
            let (session_id, session_epoch) = if session.epoch < 0 {
                (0, -1)
            } else {
                (session.id, session.epoch)
            };
            let request = FetchRequest {
                max_wait_ms: i32::try_from(self.config.fetch_max_wait.as_millis())
                    .unwrap_or(i32::MAX),
                min_bytes: self.config.fetch_min_bytes,
                max_bytes: i32::try_from(max_bytes).unwrap_or(i32::MAX),
                isolation_level: match self.config.isolation {
                    IsolationLevel::ReadUncommitted => 0,
                    IsolationLevel::ReadCommitted => 1,
                },
                session_id,
                session_epoch,
                topics,
                forgotten_topics_data: forgotten_topics,
                ..Default::default()
            };
            // The session now holds what this request named, less what it forgot.
            if session.epoch >= 0 {
                if !incremental {
                    session.partitions.clear();
                }
                for (tp, off, ep, _) in &named {
                    session.partitions.insert(tp.clone(), (*off, *ep));
                }
                for tp in &forgotten {
                    session.partitions.remove(tp);
                }
            }
            let mut flight_parts = Vec::new();
            for (tp, _, _, _) in &partitions {
                if let Some(p) = self.parts.get_mut(tp) {
                    p.in_flight = true;
                    p.drop_answer = false;
                    flight_parts.push((tp.clone(), p.generation));
                }
            }
            // An incremental fetch also returns partitions it did not name; they are
            // all in flight for this broker.
            self.buffered += max_bytes;
            self.fetching.insert(node);
            self.next_fetch_node = node.saturating_add(1);
            wants.push(Want::Fetch {
                node,
                request,
                version_cap: v,
                flight: FetchInFlight {
                    node,
                    reserved: max_bytes,
                    partitions: flight_parts,
                    ids,
                },
                hold: self.config.fetch_max_wait,
            });
        }
    }

    /// A fetch could not be handed to its connection: undo its reservation.
    pub(crate) fn unfetch(&mut self, flight: FetchInFlight) {
        self.buffered -= flight.reserved;
        self.fetching.remove(&flight.node);
        for (tp, _) in flight.partitions {
            if let Some(p) = self.parts.get_mut(&tp) {
                p.in_flight = false;
            }
        }
        // the session was told nothing
        self.sessions.remove(&flight.node);
    }

    /// A fetch answered (or failed).
    pub(crate) fn on_fetch(
        &mut self,
        flight: FetchInFlight,
        reply: Result<FetchResponse, ClientError>,
        names: &dyn Fn(Uuid) -> Option<Arc<str>>,
        stale: &mut Vec<TopicPartition>,
    ) {
        self.fetching.remove(&flight.node);
        let mut reserved = flight.reserved;
        let generations: BTreeMap<TopicPartition, u64> =
            flight.partitions.iter().cloned().collect();
        for tp in generations.keys() {
            if let Some(p) = self.parts.get_mut(tp) {
                p.in_flight = false;
            }
        }
        let response = match reply {
            Ok(r) => r,
            Err(e) => {
                self.buffered -= reserved;
                // a lost fetch leaves the broker's session unknown
                self.sessions.remove(&flight.node);
                if !e.is_retriable() {
                    self.notes.push_back(Note::Error {
                        partition: None,
                        error: e,
                    });
                }
                return;
            }
        };
        let top = ErrorCode(response.error_code);
        let session = self.sessions.entry(flight.node).or_default();
        if top == ErrorCode::FETCH_SESSION_ID_NOT_FOUND
            || top == ErrorCode::INVALID_FETCH_SESSION_EPOCH
        {
            *session = Session::default(); // start over with a full fetch
            self.buffered -= reserved;
            return;
        }
        if !top.is_ok() {
            self.buffered -= reserved;
            *session = Session::default();
            if !top.is_retriable() {
                self.notes.push_back(Note::Error {
                    partition: None,
                    error: ClientError::broker(ApiKey::Fetch, top, None),
                });
            }
            return;
        }
        if session.epoch >= 0 {
            if response.session_id != 0 {
                session.id = response.session_id;
                session.epoch = if session.epoch == i32::MAX {
                    1
                } else {
                    session.epoch + 1
                };
            } else {
                // the broker keeps no session: full fetches from now on
                session.id = 0;
                session.epoch = 0;
                session.partitions.clear();
            }
        }
        let opts = DecodeOptions {
            verify_crc: self.config.check_crcs,
            ..DecodeOptions::default()
        };
        let mut truncations = Vec::new();
        for t in response.responses {
            let topic: Arc<str> = if t.topic.is_empty() {
                match flight
                    .ids
                    .get(&t.topic_id)
                    .cloned()
                    .or_else(|| names(t.topic_id))
                {
                    Some(n) => n,
                    None => continue,
                }
            } else {
                Arc::from(&*t.topic)
            };
            for pd in t.partitions {
                let tp = TopicPartition::new(topic.clone(), pd.partition_index);
                let Some(p) = self.parts.get_mut(&tp) else {
                    continue;
                };
                // An answer for a partition this fetch did not ask for (a session
                // the broker still holds it in; the next request forgets it), or
                // asked before a seek, is stale.
                if generations.get(&tp).is_none_or(|g| *g != p.generation) {
                    continue;
                }
                // Paused since it was asked: fetched again from the position after
                // the resume.
                if std::mem::take(&mut p.drop_answer) {
                    continue;
                }
                let code = ErrorCode(pd.error_code);
                if !code.is_ok() {
                    // The broker's session keeps the partition: the client's view
                    // keeps it too, so that a request after a leader change forgets
                    // it there (else every answer from this broker would repeat the
                    // error, and each would send the client back to its metadata).
                    match code {
                        ErrorCode::OFFSET_OUT_OF_RANGE => {
                            Self::out_of_range(
                                &mut self.notes,
                                self.config.auto_offset_reset,
                                &tp,
                                p,
                                &mut self.generations,
                            );
                        }
                        c if c.is_retriable() || c == ErrorCode::UNKNOWN_TOPIC_ID => {
                            if self.config.planted_bug_skip_after_error {
                                p.fetch_offset += 1;
                            }
                            stale.push(tp);
                        }
                        c => {
                            p.position = Position::Failed;
                            self.notes.push_back(Note::Error {
                                partition: Some(tp),
                                error: ClientError::broker(ApiKey::Fetch, c, None),
                            });
                        }
                    }
                    continue;
                }
                p.high_watermark = pd.high_watermark;
                // KIP-320 by Fetch v12+: the log diverged from what we fetched.
                if pd.diverging_epoch.epoch >= 0 && pd.diverging_epoch.end_offset >= 0 {
                    truncations.push((tp, pd.diverging_epoch.end_offset));
                    continue;
                }
                let records = pd.records.unwrap_or_default();
                if records.is_empty() {
                    continue;
                }
                let bytes = records.len();
                // Where the next fetch starts: past the last complete batch. This
                // walk checks the batches (CRCs included); the chunk keeps what it
                // checked, and the error that ended it, so polling reads them
                // without checking them twice.
                let mut next = p.fetch_offset;
                let mut last_epoch = p.fetch_epoch;
                let mut walk = BatchReader::new(records.clone(), opts);
                let mut bad = None;
                for batch in walk.by_ref() {
                    let batch = match batch {
                        Ok(b) => b,
                        Err(e) => {
                            bad = Some(e);
                            break;
                        }
                    };
                    next = next.max(batch.last_offset() + 1);
                    if let Batch::V2(b) = &batch {
                        last_epoch = Some(b.header.partition_leader_epoch);
                    }
                }
                let checked = records.slice(..walk.position());
                if next == p.fetch_offset {
                    if let Some(e) = bad {
                        // The first batch itself is bad: said once, and the
                        // partition waits for a seek past it.
                        p.stuck = true;
                        self.notes.push_back(Note::Error {
                            partition: Some(tp.clone()),
                            error: ClientError::Records(format!(
                                "the batch at offset {next} fails its checks ({e}); \
                                 the partition is not read further until a seek moves it"
                            )),
                        });
                    }
                    continue; // else only a partial batch: ask again with more room
                }
                p.fetch_offset = next;
                self.answers_with_records += 1;
                p.last_records = self.answers_with_records;
                // The broker's session keeps the offset this request named (KIP-227:
                // it never moves it on its own), so the next request names the
                // partition again at `next`; the session entry stays as sent.
                p.fetch_epoch = last_epoch;
                let filter = (self.config.isolation == IsolationLevel::ReadCommitted).then(|| {
                    ReadCommitted::new(pd.aborted_transactions.iter().flatten().map(|a| {
                        AbortedTransaction {
                            producer_id: a.producer_id,
                            first_offset: a.first_offset,
                        }
                    }))
                });
                let bytes = bytes.min(reserved);
                reserved -= bytes;
                p.chunks.push_back(Chunk {
                    reader: BatchReader::new(
                        checked,
                        DecodeOptions {
                            verify_crc: false,
                            ..opts
                        },
                    ),
                    bad,
                    bytes,
                    filter,
                    current: None,
                    current_last: -1,
                    yielded: false,
                    current_epoch: -1,
                });
                if !self.ready.contains(&tp) {
                    self.ready.push_back(tp);
                }
            }
        }
        // What was reserved and not filled is free again.
        self.buffered -= reserved;
        for (tp, to) in truncations {
            let behind = self
                .parts
                .get(&tp)
                .is_some_and(|p| matches!(p.position, Position::At { offset, .. } if offset > to));
            if behind {
                tracing::info!(partition = %tp, to, "the log diverged under the consumer; moving back");
                self.truncate(&tp, to);
            }
        }
        if !self.ready.is_empty() {
            self.notes.push_back(Note::RecordsReady);
        }
    }

    fn out_of_range(
        notes: &mut VecDeque<Note>,
        reset: OffsetReset,
        tp: &TopicPartition,
        p: &mut PartState,
        generations: &mut u64,
    ) {
        *generations += 1;
        p.generation = *generations;
        match reset {
            OffsetReset::Error => {
                p.position = Position::Failed;
                notes.push_back(Note::Error {
                    partition: Some(tp.clone()),
                    error: ClientError::broker(ApiKey::Fetch, ErrorCode::OFFSET_OUT_OF_RANGE, None),
                });
            }
            OffsetReset::Earliest => p.position = Position::Unknown(Offset::Beginning),
            OffsetReset::Latest => p.position = Position::Unknown(Offset::End),
        }
    }

    /// Hands out up to `max` buffered records, partition by partition.
    pub(crate) fn poll(&mut self, max: usize, out: &mut Vec<ConsumedRecord>) {
        // (A paused partition has nothing buffered: see `pause`.)
        while out.len() < max {
            let Some(tp) = self.ready.front().cloned() else {
                break;
            };
            let Some(p) = self.parts.get_mut(&tp) else {
                self.ready.pop_front();
                continue;
            };
            let Position::At { offset, .. } = p.position else {
                self.ready.pop_front();
                continue;
            };
            let mut position = offset;
            let mut epoch = None;
            let opts = DecodeOptions {
                verify_crc: self.config.check_crcs,
                ..DecodeOptions::default()
            };
            let mut exhausted = false;
            while out.len() < max {
                let Some(chunk) = p.chunks.front_mut() else {
                    exhausted = true;
                    break;
                };
                // The batch being handed out: its records are parsed one at a time,
                // straight into `out` (no staging copy of each record).
                if let Some(records) = chunk.current.as_mut() {
                    match records.next() {
                        Some(Ok(r)) => {
                            chunk.yielded = true;
                            if r.offset >= position {
                                position = r.offset + 1;
                                epoch = Some(chunk.current_epoch);
                                out.push(ConsumedRecord {
                                    topic: tp.topic.clone(),
                                    partition: tp.partition,
                                    record: r,
                                    leader_epoch: chunk.current_epoch,
                                });
                            }
                        }
                        end => {
                            // A bad record ends its batch: the records before it
                            // were handed out, the rest of the batch is skipped.
                            if let Some(Err(e)) = end {
                                self.notes.push_back(Note::Error {
                                    partition: Some(tp.clone()),
                                    error: ClientError::Records(e.to_string()),
                                });
                            }
                            chunk.current = None;
                            // a batch that gave no record at all still moves the
                            // position past it
                            if !chunk.yielded && chunk.current_last >= position {
                                position = chunk.current_last + 1;
                            }
                        }
                    }
                    continue;
                }
                match chunk.reader.next() {
                    Some(Ok(batch)) => {
                        let keep = crate::records::delivered(chunk.filter.as_mut(), &batch, &opts)
                            .unwrap_or(false);
                        let last = batch.last_offset();
                        if let Batch::V2(b) = &batch {
                            chunk.current_epoch = b.header.partition_leader_epoch;
                        }
                        if last < position {
                            continue;
                        }
                        if keep {
                            match batch.records(&opts) {
                                Ok(records) => {
                                    chunk.current = Some(records);
                                    chunk.current_last = last;
                                    chunk.yielded = false;
                                    continue;
                                }
                                Err(e) => self.notes.push_back(Note::Error {
                                    partition: Some(tp.clone()),
                                    error: ClientError::Records(e.to_string()),
                                }),
                            }
                        }
                        // skipped batches (control, aborted, unreadable) still move
                        // the position
                        position = last + 1;
                    }
                    Some(Err(e)) => {
                        self.notes.push_back(Note::Error {
                            partition: Some(tp.clone()),
                            error: ClientError::Records(e.to_string()),
                        });
                        let c = p.chunks.pop_front();
                        self.buffered -= c.map_or(0, |c| c.bytes);
                    }
                    None => {
                        if let Some(e) = chunk.bad.take() {
                            self.notes.push_back(Note::Error {
                                partition: Some(tp.clone()),
                                error: ClientError::Records(e.to_string()),
                            });
                        }
                        let c = p.chunks.pop_front();
                        self.buffered -= c.map_or(0, |c| c.bytes);
                    }
                }
            }
            p.position = Position::At {
                offset: position,
                epoch: epoch.or(match p.position {
                    Position::At { epoch, .. } => epoch,
                    _ => None,
                }),
            };
            if exhausted || p.chunks.is_empty() {
                self.ready.pop_front();
            } else if out.len() >= max {
                break;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use crate::records::{BatchBuilder, BatchConfig, NewRecord};
    use bytes::{Bytes, BytesMut};

    /// What `c` asks for, every partition led by broker 1 at epoch 0.
    fn drive(c: &mut Consumer) -> Vec<Want> {
        let view = |_: &TopicPartition| {
            Some(PartitionView {
                leader: Some(1),
                leader_epoch: 0,
                topic_id: Uuid::ZERO,
            })
        };
        let mut wants = Vec::new();
        let now = crate::test_clock::start();
        c.drive(now, &view, &|_| true, &|_| Some(12), &mut wants);
        wants
    }

    /// A consumer assigned `t-0` from offset 0, with the fetch it sends.
    fn fetching() -> (Consumer, FetchInFlight) {
        let mut c = Consumer::new(ConsumerConfig::default());
        c.assign([TopicPartition::new("t", 0)], Offset::At(0));
        let flight = drive(&mut c)
            .into_iter()
            .find_map(|w| match w {
                Want::Fetch { flight, .. } => Some(flight),
                _ => None,
            })
            .expect("a fetch");
        (c, flight)
    }

    /// Three batches of two records at offsets 0, 2 and 4; the second one's CRC
    /// is broken when `corrupt`.
    fn three_batches(corrupt: bool) -> Bytes {
        let mut buf = BytesMut::new();
        let mut second = 0;
        for base in [0i64, 2, 4] {
            if base == 2 {
                second = buf.len();
            }
            let config = BatchConfig {
                base_offset: base,
                ..BatchConfig::default()
            };
            let mut b = BatchBuilder::new(&mut buf, &config);
            b.append(&NewRecord::new(0).value(b"a")).unwrap();
            b.append(&NewRecord::new(0).value(b"b")).unwrap();
            b.finish().unwrap();
        }
        if corrupt {
            // the last byte of the second batch's records: covered by its CRC
            let end = second
                + 12
                + i32::from_be_bytes(buf[second + 8..second + 12].try_into().unwrap()) as usize;
            buf[end - 1] ^= 0xff;
        }
        buf.freeze()
    }

    fn response(records: Bytes) -> FetchResponse {
        FetchResponse {
            responses: vec![FetchableTopicResponse {
                topic: "t".into(),
                partitions: vec![PartitionData {
                    partition_index: 0,
                    high_watermark: 6,
                    records: Some(records),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn offsets(out: &[ConsumedRecord]) -> Vec<i64> {
        out.iter().map(|r| r.record.offset).collect()
    }

    #[test]
    fn a_whole_response_is_handed_out_in_order_across_polls() {
        let (mut c, flight) = fetching();
        c.on_fetch(
            flight,
            Ok(response(three_batches(false))),
            &|_| None,
            &mut Vec::new(),
        );
        let mut out = Vec::new();
        c.poll(3, &mut out); // stops inside the second batch
        assert_eq!(offsets(&out), [0, 1, 2]);
        c.poll(100, &mut out);
        assert_eq!(offsets(&out), [0, 1, 2, 3, 4, 5]);
        assert!(c.notes.iter().all(|n| !matches!(n, Note::Error { .. })));
        assert_eq!(c.buffered_bytes(), 0, "every chunk released");
        assert_eq!(c.positions()[0].1, 6);
    }

    #[test]
    fn a_batch_failing_its_crc_ends_the_chunk_after_the_good_ones_with_one_error() {
        let (mut c, flight) = fetching();
        c.on_fetch(
            flight,
            Ok(response(three_batches(true))),
            &|_| None,
            &mut Vec::new(),
        );
        let mut out = Vec::new();
        c.poll(100, &mut out);
        // the batch before it comes out; nothing of it or after it does
        assert_eq!(offsets(&out), [0, 1]);
        let errors: Vec<_> = c
            .notes
            .iter()
            .filter(|n| {
                matches!(
                    n,
                    Note::Error {
                        error: ClientError::Records(_),
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(errors.len(), 1, "{:?}", c.notes);
        assert_eq!(c.buffered_bytes(), 0, "the chunk is released");
        // the next fetch asks again from the bad batch, not past it
        assert_eq!(c.parts[&TopicPartition::new("t", 0)].fetch_offset, 2);
        assert_eq!(c.positions()[0].1, 2);
    }

    #[test]
    fn a_bad_first_batch_is_reported_once_and_not_fetched_again_until_a_seek() {
        let (mut c, flight) = fetching();
        // The answer starts with the batch whose CRC fails (the one at offset 2 in
        // `three_batches(true)`), as a fetch from that batch gets it.
        let all = three_batches(true);
        let second = 12 + i32::from_be_bytes(all[8..12].try_into().unwrap()) as usize;
        c.on_fetch(
            flight,
            Ok(response(all.slice(second..))),
            &|_| None,
            &mut Vec::new(),
        );
        let errors = |c: &Consumer| {
            c.notes
                .iter()
                .filter(|n| matches!(n, Note::Error { error: ClientError::Records(m), .. } if m.contains("seek")))
                .count()
        };
        assert_eq!(errors(&c), 1, "{:?}", c.notes);
        let mut out = Vec::new();
        c.poll(100, &mut out);
        assert!(out.is_empty());
        let fetches = |c: &mut Consumer| {
            drive(c)
                .iter()
                .filter(|w| matches!(w, Want::Fetch { .. }))
                .count()
        };
        // Asking again would bring the same bytes: it waits for a seek.
        assert_eq!(fetches(&mut c), 0);
        assert_eq!(errors(&c), 1, "said once");
        c.seek(&TopicPartition::new("t", 0), Offset::At(4));
        assert_eq!(fetches(&mut c), 1, "a seek past it goes on");
    }

    /// The fetches `c` sends now, partition `p` of `t` led by broker `p + 1`: each
    /// as (broker, bytes it reserves, bytes it asks for), and their flights.
    fn fetches_by_broker(c: &mut Consumer) -> (Vec<(i32, usize, i32)>, Vec<FetchInFlight>) {
        let view = |tp: &TopicPartition| {
            Some(PartitionView {
                leader: Some(tp.partition + 1),
                leader_epoch: 0,
                topic_id: Uuid::ZERO,
            })
        };
        let mut wants = Vec::new();
        let now = crate::test_clock::start();
        c.drive(now, &view, &|_| true, &|_| Some(12), &mut wants);
        wants
            .into_iter()
            .filter_map(|w| match w {
                Want::Fetch {
                    node,
                    request,
                    flight,
                    ..
                } => Some(((node, flight.reserved, request.max_bytes), flight)),
                _ => None,
            })
            .unzip()
    }

    /// A broker without new data holds its fetch for the max wait; with a budget
    /// below a partition's max, that must not keep the other brokers from fetching
    /// (each had to wait for it, and read one fetch per max wait).
    #[test]
    fn a_fetch_held_by_a_broker_without_data_leaves_the_others_their_share() {
        for (fetch_max, share) in [(600, 600), (1 << 20, 4096)] {
            let config = ConsumerConfig {
                buffer_max_bytes: 8192,
                partition_max_bytes: 65536,
                fetch_max_bytes: fetch_max,
                ..ConsumerConfig::default()
            };
            let mut c = Consumer::new(config);
            c.assign(
                [TopicPartition::new("t", 0), TopicPartition::new("t", 1)],
                Offset::At(0),
            );
            let (sent, mut flights) = fetches_by_broker(&mut c);
            assert_eq!(
                sent,
                [(1, share, share as i32), (2, share, share as i32)],
                "fetch max {fetch_max}: both brokers at once, each within its share"
            );
            assert!(c.buffered <= 8192);
            // Broker 1 answers with records; broker 2 holds its fetch. Once they
            // are read, broker 1 fetches again while broker 2's is still out.
            c.on_fetch(
                flights.swap_remove(0),
                Ok(response(three_batches(false))),
                &|_| None,
                &mut Vec::new(),
            );
            let mut out = Vec::new();
            c.poll(100, &mut out);
            assert_eq!(offsets(&out), [0, 1, 2, 3, 4, 5]);
            assert_eq!(
                fetches_by_broker(&mut c).0,
                [(1, share, share as i32)],
                "fetch max {fetch_max}: broker 1 again, beside broker 2's held fetch"
            );
        }
    }

    /// A pause drops what is buffered and goes back to the position; a fetch on
    /// the wire then starts past it, so its answer is dropped even when the
    /// partition is resumed before the answer comes.
    #[test]
    fn a_fetch_answered_after_a_pause_and_resume_is_dropped_and_asked_again() {
        let tp = TopicPartition::new("t", 0);
        let (mut c, flight) = fetching();
        c.on_fetch(
            flight,
            Ok(response(three_batches(false))),
            &|_| None,
            &mut Vec::new(),
        );
        let mut out = Vec::new();
        c.poll(1, &mut out);
        assert_eq!(offsets(&out), [0]);
        // Records 1-5 are buffered; the next fetch, from 6, goes out.
        let next = drive(&mut c)
            .into_iter()
            .find_map(|w| match w {
                Want::Fetch { flight, .. } => Some(flight),
                _ => None,
            })
            .expect("a fetch from 6");
        c.pause(std::slice::from_ref(&tp), true);
        assert_eq!(
            c.buffered, next.reserved,
            "only the fetch on the wire is reserved"
        );
        c.pause(std::slice::from_ref(&tp), false);
        c.on_fetch(
            next,
            Ok(response(three_batches(false))),
            &|_| None,
            &mut Vec::new(),
        );
        c.poll(100, &mut out);
        assert_eq!(
            offsets(&out),
            [0],
            "nothing past the position the pause went back to"
        );
        let again = drive(&mut c).into_iter().find_map(|w| match w {
            Want::Fetch { request, .. } => Some(request.topics[0].partitions[0].fetch_offset),
            _ => None,
        });
        assert_eq!(again, Some(1), "fetched again from the position");
    }
}
