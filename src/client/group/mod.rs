//! Consumer group membership: the [`GroupMember`] state machine, for the classic
//! protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup; the leader assigns with
//! `range`, `roundrobin` or `cooperative-sticky`) and for KIP-848
//! (ConsumerGroupHeartbeat, the coordinator assigns), with static membership
//! (KIP-345) in both.
//!
//! Both protocols share one [`Reconciler`](reconcile::Reconciler) (revoke, commit,
//! then assign, with the application's acknowledgement in between) and one commit
//! queue ([`commit`]: one commit at a time, never backwards). The member is plain
//! state: the [`Client`](super::Client) feeds it replies and time and carries out
//! what it [wants](Want) (requests to the coordinator, commits, metadata), and it
//! drives the fetcher ([`Consumer`]) directly: which partitions are assigned,
//! paused, dropped.
//!
//! How errors are handled follows the Java client: a coordinator that moved or is
//! loading (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS)
//! is found again and the request resent (the client's operation machinery does
//! that); REBALANCE_IN_PROGRESS makes the member rejoin (an eager member revokes
//! everything first, a cooperative one keeps its partitions); UNKNOWN_MEMBER_ID,
//! ILLEGAL_GENERATION and FENCED_MEMBER_EPOCH mean the membership is gone: the
//! partitions are *lost* (dropped without a commit, which would fail) and the member
//! joins again; FENCED_INSTANCE_ID (another process took this static instance id)
//! and configuration errors are fatal and reported.
//!
//! One departure from the Java client, for safety: a member that has not had a
//! heartbeat answered for its whole session timeout (counted from when the last
//! answered heartbeat was *sent*, so never after the coordinator could have expired
//! it) considers its partitions lost and stops consuming them, instead of consuming
//! on until it hears that it was fenced. So a member cut off from the coordinator
//! cannot consume a partition the group has already handed to someone else.

pub(crate) mod assignor;
pub(crate) mod call;
mod classic;
pub(crate) mod commit;
mod next;
pub(crate) mod reconcile;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::messages::{ApiKey, ErrorCode};
use crate::wire::Uuid;

use super::consumer::{Consumer, ConsumerConfig, TopicPartition};
use super::{ClientError, CommitMember, OpId, OpOutput};

pub use assignor::Assignor;
use call::{Call, CallReply};
use commit::{Commits, NextCommit, Overtaken, Pending};
use reconcile::{Reconciler, Why};

/// Which group protocol a member speaks
/// ([`ConsumerConfig::group_protocol`](super::ConsumerConfig::group_protocol)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupProtocol {
    /// The classic protocol (JoinGroup, SyncGroup, Heartbeat): the group's leader
    /// assigns partitions with one of the configured
    /// [`assignors`](super::ConsumerConfig::assignors). The default, as in the Java
    /// client and librdkafka.
    #[default]
    Classic,
    /// KIP-848 (`group.protocol=consumer`): one ConsumerGroupHeartbeat request, the
    /// coordinator assigns, members reconcile on their own. Used where the
    /// coordinator offers ConsumerGroupHeartbeat v1; otherwise the member falls back
    /// to the classic protocol.
    Consumer,
}

/// What a consumer group member is doing, for the application and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStatus {
    /// The protocol in use (after any fallback to classic).
    pub protocol: GroupProtocol,
    /// The member id the coordinator knows this member by (empty before joining).
    pub member_id: String,
    /// The generation (classic) or member epoch (KIP-848); `-1`/`0` outside one.
    pub generation: i32,
    /// Whether this member is the classic group's leader.
    pub leader: bool,
    /// Partitions the member holds now.
    pub owned: Vec<TopicPartition>,
    /// Whether the member is in a stable generation with no change in progress.
    pub stable: bool,
}

/// Something the member asks of the client.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // a few at a time, moved once
pub(crate) enum Want {
    /// Send this request to the group's coordinator; `hold` is how long the broker
    /// may keep it, `timeout` the operation's deadline.
    Call {
        id: u64,
        call: Call,
        hold: Duration,
        timeout: Duration,
    },
    /// Commit these offsets as this member.
    Commit {
        id: u64,
        member: CommitMember,
        offsets: Vec<(TopicPartition, i64, Option<i32>)>,
    },
    /// Metadata of these topics is needed (the client answers with
    /// [`GroupMember::metadata_requested`]).
    Metadata(Vec<Arc<str>>),
}

/// Something the member reports.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Note {
    Rebalance {
        revoked: Vec<TopicPartition>,
        lost: Vec<TopicPartition>,
        assigned: Vec<TopicPartition>,
    },
    Error(ClientError),
    Done {
        op: OpId,
        result: Result<OpOutput, ClientError>,
    },
}

/// What the member needs to know of the cluster.
pub(crate) trait GroupEnv {
    /// A topic's partition count, if its metadata is loaded (`Some(0)` for a topic
    /// known not to exist).
    fn partition_count(&self, topic: &str) -> Option<i32>;
    fn topic_name(&self, id: Uuid) -> Option<Arc<str>>;
    fn topic_id(&self, name: &str) -> Option<Uuid>;
    /// Metadata answers received so far (see [`Want::Metadata`]).
    fn metadata_answered(&self) -> u64;
}

/// The group settings, taken from [`ConsumerConfig`].
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub group_id: Arc<str>,
    pub protocol: GroupProtocol,
    pub assignors: Vec<Assignor>,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub rebalance_timeout: Duration,
    pub instance_id: Option<String>,
    pub remote_assignor: Option<String>,
    pub auto_commit: bool,
    pub auto_commit_interval: Duration,
    pub request_timeout: Duration,
    pub retry_backoff: Duration,
    pub planted_double_assignment: bool,
    /// Auto-commit and revocation commits store what the application was handed,
    /// which a runtime facade's buffer runs behind: positions stored with
    /// [`GroupMember::store_positions`], and a revocation's positions only once
    /// the application acknowledged it (see `deferred_revoke`).
    pub explicit_store: bool,
}

impl Settings {
    pub(crate) fn new(
        config: &ConsumerConfig,
        group_id: &str,
        request_timeout: Duration,
        retry_backoff: Duration,
    ) -> Self {
        Settings {
            group_id: group_id.into(),
            protocol: config.group_protocol,
            assignors: config.assignors.clone(),
            session_timeout: config.session_timeout,
            heartbeat_interval: config.heartbeat_interval,
            rebalance_timeout: config.rebalance_timeout,
            instance_id: config.group_instance_id.clone(),
            remote_assignor: config.group_remote_assignor.clone(),
            auto_commit: config.enable_auto_commit,
            auto_commit_interval: config.auto_commit_interval,
            request_timeout,
            retry_backoff,
            planted_double_assignment: config.planted_double_assignment,
            explicit_store: false,
        }
    }

    /// Cooperative only if every configured assignor is (Java's rule: the protocol
    /// all assignors support).
    fn cooperative(&self) -> bool {
        !self.assignors.is_empty() && self.assignors.iter().all(|a| a.is_cooperative())
    }
}

/// Where the member is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Life {
    /// Not subscribed (commits only, as a non-member).
    Idle,
    /// Subscribed: joining or in the group.
    Active,
    /// Leaving: giving partitions up, then telling the coordinator, by `until`
    /// (the instant, and the timeout it came from).
    Leaving {
        op: Option<OpId>,
        call: Option<u64>,
        until: (Instant, Duration),
    },
    /// Stopped by a fatal error.
    Failed,
    /// Out of the group because the application stopped polling
    /// ([`poll_expired`](GroupMember::poll_expired)); joins again, with the
    /// protocol it spoke (`classic`: after any fallback), once the application
    /// polled (`polled`) and the leave it sent (`leave`, a call id) has been
    /// answered: a KIP-848 member rejoins under the same member id, which a leave
    /// arriving after the join would remove.
    Stale {
        classic: bool,
        leave: Option<u64>,
        polled: bool,
    },
}

/// The protocol state.
#[derive(Debug)]
enum Proto {
    None,
    Classic(classic::Classic),
    Next(next::Next),
}

/// One consumer group member (see the module doc).
#[derive(Debug)]
pub(crate) struct GroupMember {
    settings: Settings,
    subscription: BTreeSet<Arc<str>>,
    life: Life,
    proto: Proto,
    reconciler: Reconciler,
    commits: Commits,
    wants: Vec<Want>,
    notes: VecDeque<Note>,
    next_id: u64,
    next_auto_commit: Option<Instant>,
    /// A metadata answer numbered at least this is awaited.
    metadata_ticket: Option<u64>,
    seed: u64,
    /// Times this member lost partitions the application held (its membership
    /// ended, or the coordinator took them without a revocation).
    losses: u64,
    /// Who the application was given the records of its open transaction as,
    /// and `losses` then (see `txn_commit_member`).
    polled_as: Option<(u64, CommitMember)>,
    /// Who the application was last given records as, and `losses` then.
    last_polled: Option<(u64, CommitMember)>,
    /// With `explicit_store`: the positions the application had been handed all
    /// records before, per owned partition, as last stored.
    stored: BTreeMap<TopicPartition, (i64, Option<i32>)>,
    /// With `explicit_store`: the revoked partitions' positions of the transition
    /// in progress, committed when the application acknowledges it (by then it
    /// was handed every record before them); not at all if it never does.
    deferred_revoke: Vec<(TopicPartition, i64, Option<i32>)>,
}

impl GroupMember {
    pub(crate) fn new(settings: Settings, seed: u64) -> Self {
        GroupMember {
            settings,
            subscription: BTreeSet::new(),
            life: Life::Idle,
            proto: Proto::None,
            reconciler: Reconciler::default(),
            commits: Commits::default(),
            wants: Vec::new(),
            notes: VecDeque::new(),
            next_id: 1,
            next_auto_commit: None,
            metadata_ticket: None,
            seed,
            losses: 0,
            polled_as: None,
            last_polled: None,
            stored: BTreeMap::new(),
            deferred_revoke: Vec::new(),
        }
    }

    pub(crate) fn group_id(&self) -> &Arc<str> {
        &self.settings.group_id
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(crate) fn take_wants(&mut self) -> Vec<Want> {
        std::mem::take(&mut self.wants)
    }

    pub(crate) fn take_notes(&mut self) -> VecDeque<Note> {
        std::mem::take(&mut self.notes)
    }

    /// The client asked for the metadata of [`Want::Metadata`]; the answer numbered
    /// `ticket` or later carries it.
    pub(crate) fn metadata_requested(&mut self, ticket: u64) {
        self.metadata_ticket = Some(ticket);
    }

    fn metadata_ready(&self, env: &dyn GroupEnv) -> bool {
        self.metadata_ticket
            .is_none_or(|t| env.metadata_answered() >= t)
    }

    /// Subscribes to `topics` (replacing any earlier subscription) and joins.
    pub(crate) fn subscribe(&mut self, topics: Vec<Arc<str>>) -> Result<(), ClientError> {
        if matches!(self.life, Life::Leaving { .. }) {
            return Err(ClientError::InvalidArgument(
                "the member is leaving its group".into(),
            ));
        }
        let topics: BTreeSet<Arc<str>> = topics.into_iter().filter(|t| !t.is_empty()).collect();
        if topics.is_empty() {
            return Err(ClientError::InvalidArgument(
                "subscribe needs at least one topic".into(),
            ));
        }
        if self.settings.protocol == GroupProtocol::Classic && self.settings.assignors.is_empty() {
            return Err(ClientError::InvalidArgument(
                "the classic protocol needs at least one assignor".into(),
            ));
        }
        let changed = topics != self.subscription;
        self.subscription = topics;
        match self.life {
            Life::Idle | Life::Failed => {
                self.join(self.settings.protocol == GroupProtocol::Classic);
            }
            Life::Stale { .. } => self.app_polled(),
            Life::Active if changed => match &mut self.proto {
                Proto::Classic(c) => c.rejoin = true,
                Proto::Next(n) => n.heartbeat_now(),
                Proto::None => {}
            },
            _ => {}
        }
        Ok(())
    }

    /// Becomes active with a fresh membership of the protocol: joins at the next
    /// drive.
    fn join(&mut self, classic: bool) {
        self.life = Life::Active;
        self.proto = if classic {
            let mut c = classic::Classic::new();
            // A static member joins into the generation its previous incarnation
            // (a process that crashed, or this member before it left for want of
            // polls) was in, without a rebalance. If that one was in the middle of
            // a cooperative move, the partitions it was giving up wait, unassigned,
            // for the rejoin its revocation owed, and a leader that was that same
            // member cannot notice. One more rejoin after the first assignment
            // (cooperative only: nothing moves in it unless something must) hands
            // them out.
            if self.settings.instance_id.is_some() {
                c.rejoin_after_first_assignment();
            }
            Proto::Classic(c)
        } else {
            Proto::Next(next::Next::new(self.seed ^ 0x848, &self.settings))
        };
    }

    /// Whether the application's polls are watched
    /// ([`ConsumerConfig::max_poll_interval`](super::ConsumerConfig::max_poll_interval)):
    /// only while the member is in its group or joining it.
    pub(crate) fn watches_polls(&self) -> bool {
        self.life == Life::Active
    }

    /// The application polled: a member that left for want of polls joins again
    /// (once its leave is answered).
    pub(crate) fn app_polled(&mut self) {
        match self.life {
            Life::Stale {
                classic,
                leave: None,
                ..
            } => {
                tracing::info!(group = %self.settings.group_id, "the application polls again; joining the group");
                self.join(classic);
            }
            Life::Stale {
                classic,
                leave: Some(leave),
                polled: false,
            } => {
                self.life = Life::Stale {
                    classic,
                    leave: Some(leave),
                    polled: true,
                };
            }
            _ => {}
        }
    }

    /// Records waited for the application for
    /// [`max_poll_interval`](super::ConsumerConfig::max_poll_interval) and it did
    /// not poll: the member takes it to be stuck and leaves, as the Java client
    /// does, so that the group hands its partitions to the other members. The
    /// partitions are lost (nothing is committed: what the application did with
    /// the records it has is unknown), queued commits fail, the coordinator is
    /// told (a LeaveGroup, or a leave heartbeat; a static member sends none on the
    /// classic protocol and epoch -2 on KIP-848, so it keeps its place for its
    /// session timeout), and the application hears `error` at its next poll,
    /// which joins again ([`app_polled`](Self::app_polled)).
    pub(crate) fn poll_expired(&mut self, error: ClientError, consumer: &mut Consumer) {
        if self.life != Life::Active {
            return;
        }
        tracing::warn!(group = %self.settings.group_id, %error, "leaving the group");
        let (leave, classic) = match &self.proto {
            Proto::Classic(c) => (c.leave_call(&self.settings, true), true),
            Proto::Next(n) => (n.leave_call(&self.settings, true), false),
            Proto::None => (None, true),
        };
        let leave = leave.map(|call| self.send_leave(call));
        self.drop_membership(&error, consumer);
        self.commits.release();
        self.notes.push_back(Note::Error(error));
        self.proto = Proto::None;
        self.next_auto_commit = None;
        self.life = Life::Stale {
            classic,
            leave,
            polled: false,
        };
    }

    /// The application acknowledged the last rebalance event.
    /// (With `explicit_store`, the revocation's positions are committed now,
    /// but no further than the first record of `unhanded`.)
    pub(crate) fn ack(&mut self, consumer: &mut Consumer, unhanded: &[(TopicPartition, i64)]) {
        self.reconciler.ack(consumer);
        if !self.deferred_revoke.is_empty() {
            let mut offsets = std::mem::take(&mut self.deferred_revoke);
            for (tp, offset, _) in &mut offsets {
                if let Some((_, first)) = unhanded.iter().find(|(t, _)| t == tp) {
                    *offset = (*offset).min(*first);
                }
            }
            self.commits.enqueue(Pending::automatic(offsets));
        }
    }

    /// With `explicit_store`: the application was handed every record before the
    /// positions now, except in the partitions of `unhanded` (before the offset
    /// given there); auto-commit stores up to them.
    pub(crate) fn store_positions(
        &mut self,
        consumer: &Consumer,
        unhanded: &[(TopicPartition, i64)],
    ) {
        if !self.settings.explicit_store {
            return;
        }
        let owned = self.owned_positions(consumer);
        self.stored
            .retain(|tp, _| owned.iter().any(|(o, _, _)| o == tp));
        for (tp, mut offset, epoch) in owned {
            if let Some((_, first)) = unhanded.iter().find(|(t, _)| *t == tp) {
                offset = offset.min(*first);
            }
            self.stored.insert(tp, (offset, epoch));
        }
    }

    /// Queues a commit: these offsets, or every owned partition's position.
    pub(crate) fn commit(
        &mut self,
        op: Option<OpId>,
        offsets: Option<Vec<(TopicPartition, i64, Option<i32>)>>,
        consumer: &Consumer,
        until: Option<(Instant, Duration)>,
    ) {
        let offsets = offsets.unwrap_or_else(|| self.owned_positions(consumer));
        self.commits.enqueue(Pending {
            op,
            offsets,
            retries: 0,
            overtaken: None,
            until,
        });
    }

    /// Positions of the partitions the member holds and consumes (or, outside a
    /// group, every assigned partition's).
    fn owned_positions(&self, consumer: &Consumer) -> Vec<(TopicPartition, i64, Option<i32>)> {
        let owned = self.reconciler.owned();
        consumer
            .positions()
            .into_iter()
            .filter(|(tp, _, _)| self.life == Life::Idle || owned.contains(tp))
            .collect()
    }

    /// The application seeked `tp`.
    pub(crate) fn on_seek(&mut self, tp: &TopicPartition) {
        self.commits.lift_floor(tp);
    }

    /// The application cancelled operation `op`.
    pub(crate) fn cancel(&mut self, op: OpId) {
        self.commits.cancel(op);
        if let Life::Leaving { op: o, .. } = &mut self.life
            && *o == Some(op)
        {
            *o = None;
        }
    }

    /// Leaves the group: partitions are revoked (committed first with auto-commit),
    /// then the coordinator is told. `op` ends when that is done, or with a
    /// timeout at `until`, the member out of the group either way.
    pub(crate) fn leave(&mut self, op: Option<OpId>, until: (Instant, Duration)) {
        match self.life {
            Life::Active => {
                self.life = Life::Leaving {
                    op,
                    call: None,
                    until,
                };
            }
            Life::Leaving { op: Some(_), .. } => {
                if let Some(op) = op {
                    self.notes.push_back(Note::Done {
                        op,
                        result: Err(ClientError::InvalidArgument(
                            "the member is already leaving".into(),
                        )),
                    });
                }
            }
            Life::Leaving { op: None, call, .. } => {
                self.life = Life::Leaving { op, call, until };
            }
            Life::Stale { .. } => {
                self.life = Life::Idle;
                self.subscription.clear();
                if let Some(op) = op {
                    self.notes.push_back(Note::Done {
                        op,
                        result: Ok(OpOutput::Committed(Vec::new())),
                    });
                }
            }
            Life::Idle | Life::Failed => {
                if let Some(op) = op {
                    self.notes.push_back(Note::Done {
                        op,
                        result: Ok(OpOutput::Committed(Vec::new())),
                    });
                }
            }
        }
    }

    /// The request to send, without waiting for its answer, when the client closes:
    /// a LeaveGroup (or a KIP-848 leave heartbeat) for a dynamic member; a static
    /// member sends nothing and keeps its partitions for a restart within its
    /// session timeout (KIP-345), as the Java client does.
    pub(crate) fn farewell(&self) -> Option<Call> {
        if !matches!(self.life, Life::Active | Life::Leaving { .. }) {
            return None;
        }
        match &self.proto {
            Proto::Classic(c) => c.leave_call(&self.settings, true),
            Proto::Next(n) => n.leave_call(&self.settings, true),
            Proto::None => None,
        }
    }

    /// The client closes: queued commits and a pending leave fail with
    /// [`ClientError::Closed`].
    pub(crate) fn close(&mut self) -> Vec<(OpId, ClientError)> {
        let mut failed = self.commits.fail_all(&ClientError::Closed);
        if let Life::Leaving { op: Some(op), .. } = self.life {
            failed.push((op, ClientError::Closed));
        }
        self.life = Life::Idle;
        self.proto = Proto::None;
        failed
    }

    pub(crate) fn status(&self) -> GroupStatus {
        let (protocol, member_id, generation, leader, stable) = match &self.proto {
            Proto::Classic(c) => (
                GroupProtocol::Classic,
                c.member_id.clone(),
                c.generation,
                c.leader,
                c.is_stable(),
            ),
            Proto::Next(n) => (
                GroupProtocol::Consumer,
                n.member_id.clone(),
                n.epoch,
                false,
                n.is_stable(),
            ),
            Proto::None => (self.settings.protocol, String::new(), -1, false, false),
        };
        GroupStatus {
            protocol,
            member_id,
            generation,
            leader,
            owned: self.reconciler.owned().iter().cloned().collect(),
            stable: stable
                && self.life == Life::Active
                && !self.reconciler.busy()
                && self.commits_settled(),
        }
    }

    fn commits_settled(&self) -> bool {
        !self.commits.busy()
    }

    /// Who commits: the member's identity in its generation, or a non-member.
    pub(crate) fn commit_member(&self) -> CommitMember {
        match self.identity() {
            Some((generation, member_id)) => CommitMember {
                generation,
                member_id: member_id.to_owned(),
                group_instance_id: self.settings.instance_id.clone(),
            },
            None => CommitMember::none(),
        }
    }

    /// The generation (classic) or member epoch (KIP-848) and member id the member
    /// holds now, if it is in the group.
    fn identity(&self) -> Option<(i32, &str)> {
        match &self.proto {
            Proto::Classic(c) if c.generation >= 0 => Some((c.generation, &c.member_id)),
            Proto::Next(n) if n.epoch > 0 => Some((n.epoch, &n.member_id)),
            _ => None,
        }
    }

    /// Who a transaction's offsets are committed as (TxnOffsetCommit, KIP-447):
    /// the member's current generation (or member epoch) and member id, unless it
    /// lost partitions since the application was given records this transaction
    /// may hold, or is out of the group now (its session expired, it was kicked out
    /// for not polling, it left). Then the identity those records were polled
    /// under goes, even if the member holds a new one (it joined again in the
    /// background, say), so that the coordinator refuses offsets of records
    /// another member may have been given and processed meanwhile. A transaction
    /// may hold records polled since the last one ended, and those of the last
    /// poll before (an application, or a facade's buffer, can keep records across
    /// a transaction's end).
    pub(crate) fn txn_commit_member(&self) -> CommitMember {
        match &self.polled_as {
            Some((losses, member)) if *losses != self.losses || self.identity().is_none() => {
                member.clone()
            }
            _ => self.commit_member(),
        }
    }

    /// The application was given records: note who as, for the transaction they
    /// go into (see `txn_commit_member`). Within one membership the newest
    /// identity is kept; once partitions were lost, the one from before.
    pub(crate) fn records_polled(&mut self) {
        let Some((generation, member_id)) = self.identity() else {
            return;
        };
        // Nearly every poll: the identity of the last one, so nothing changes
        // (`polled_as` is that one, or older).
        if self.last_polled.as_ref().is_some_and(|(losses, m)| {
            *losses == self.losses && m.generation == generation && m.member_id == member_id
        }) {
            return;
        }
        let now = (self.losses, self.commit_member());
        if self
            .polled_as
            .as_ref()
            .is_none_or(|(losses, _)| *losses == self.losses)
        {
            self.polled_as = Some(now.clone());
        }
        self.last_polled = Some(now);
    }

    /// The application ended its transaction (commit or abort): the next one
    /// holds records polled from now on, and may hold those of the last poll.
    pub(crate) fn transaction_ended(&mut self) {
        self.polled_as.clone_from(&self.last_polled);
    }

    /// When [`drive`](Self::drive) should next run without an input.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        // Only an active member drives its protocol (heartbeats, joins, expiry):
        // while it leaves, those timers stand still and waking for them would spin.
        let busy = self.reconciler.busy();
        let protocol = match &self.proto {
            Proto::Classic(c) if self.life == Life::Active => c.next_deadline(&self.settings, busy),
            Proto::Next(n) if self.life == Life::Active => n.next_deadline(&self.settings, busy),
            _ => None,
        };
        let auto = self
            .next_auto_commit
            .filter(|_| self.settings.auto_commit && self.life == Life::Active);
        let leave = match self.life {
            Life::Leaving { until, .. } => Some(until.0),
            _ => None,
        };
        // A classic member leaving heartbeats until its LeaveGroup goes.
        let leaving_heartbeat = match (&self.life, &self.proto) {
            (Life::Leaving { call: None, .. }, Proto::Classic(c)) => c.heartbeat_due(),
            _ => None,
        };
        let commit = self.commits.next_deadline();
        [
            protocol,
            auto,
            self.reconciler.deadline(),
            leave,
            leaving_heartbeat,
            commit,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Starts a transition to `target` and reports it.
    fn transition(
        &mut self,
        now: Instant,
        why: Why,
        target: &BTreeSet<TopicPartition>,
        consumer: &mut Consumer,
    ) {
        // A leaving member takes nothing new: an assignment that was on its way
        // (a SyncGroup or heartbeat answered after the leave began) would hand it
        // partitions it then drops without a revocation or a commit.
        if matches!(self.life, Life::Leaving { .. })
            && matches!(why, Why::Assignment | Why::BeforeJoin)
        {
            tracing::debug!(group = %self.settings.group_id, ?why, "leaving: the assignment is ignored");
            return;
        }
        let started =
            self.reconciler
                .start(now, why, target, self.settings.rebalance_timeout, consumer);
        tracing::debug!(
            group = %self.settings.group_id,
            ?why,
            revoked = started.revoked.len(),
            lost = started.lost.len(),
            assigned = started.assigned.len(),
            "rebalance"
        );
        for tp in started.revoked.iter().chain(&started.lost) {
            self.stored.remove(tp);
        }
        if why != Why::Lost && self.settings.auto_commit && !started.revoked_positions.is_empty() {
            if self.settings.explicit_store {
                self.deferred_revoke = started.revoked_positions.clone();
            } else {
                self.commits
                    .enqueue(Pending::automatic(started.revoked_positions.clone()));
            }
        }
        if !started.lost.is_empty() {
            self.losses += 1;
        }
        if !started.is_empty() {
            self.notes.push_back(Note::Rebalance {
                revoked: started.revoked,
                lost: started.lost,
                assigned: started.assigned,
            });
        }
    }

    /// Moves everything that can move: finished transitions, the protocol, commits.
    pub(crate) fn drive(&mut self, now: Instant, env: &dyn GroupEnv, consumer: &mut Consumer) {
        self.expire_commits(now);
        for _ in 0..4 {
            let before = (self.wants.len(), self.notes.len(), self.reconciler.busy());
            // A transition that ends is progress even if another starts in the
            // same pass (busy before and after): the new one may be able to end
            // at once, and the loop stopped with it waiting while its protocol's
            // passed timer was the member's next deadline.
            let mut ended = false;
            if let Some((why, unacked)) = self.reconciler.poll(now, self.commits.idle(), consumer) {
                ended = true;
                // Never acknowledged: the application may not have had every
                // record before the revoked positions, so they are not committed.
                self.deferred_revoke.clear();
                if unacked {
                    self.notes.push_back(Note::Error(ClientError::Timeout {
                        operation: "rebalance acknowledgement",
                        timeout: self.settings.rebalance_timeout,
                        last_error: None,
                    }));
                }
                let owned = self.reconciler.owned().clone();
                self.commits.retain_floors(|tp| owned.contains(tp));
                self.transition_done(why, now);
            }
            match self.life.clone() {
                Life::Active => self.drive_protocol(now, env, consumer),
                Life::Leaving {
                    op,
                    until: (at, timeout),
                    ..
                } if at <= now => self.leave_timed_out(op, timeout, consumer),
                Life::Leaving { op, call, .. } => {
                    if call.is_none() {
                        self.classic_heartbeat(now);
                    }
                    self.drive_leave(now, env, op, call, consumer);
                }
                Life::Idle | Life::Failed | Life::Stale { .. } => {}
            }
            self.auto_commit(now, consumer);
            self.pump_commits();
            let after = (self.wants.len(), self.notes.len(), self.reconciler.busy());
            if before == after && !ended {
                break;
            }
        }
    }

    fn drive_protocol(&mut self, now: Instant, env: &dyn GroupEnv, consumer: &mut Consumer) {
        if matches!(self.proto, Proto::Classic(_)) {
            self.drive_classic(now, env, consumer);
        } else if matches!(self.proto, Proto::Next(_)) {
            self.drive_next(now, env, consumer);
        }
    }

    fn transition_done(&mut self, why: Why, now: Instant) {
        match &mut self.proto {
            Proto::Classic(c) => c.transition_done(why, now, &self.settings),
            Proto::Next(n) => n.transition_done(why),
            Proto::None => {}
        }
    }

    fn auto_commit(&mut self, now: Instant, consumer: &Consumer) {
        if !self.settings.auto_commit || self.life != Life::Active {
            return;
        }
        let in_generation = self.commit_member().generation > 0;
        let Some(at) = self.next_auto_commit else {
            if in_generation {
                self.next_auto_commit = Some(now + self.settings.auto_commit_interval);
            }
            return;
        };
        if now < at {
            return;
        }
        self.next_auto_commit = Some(now + self.settings.auto_commit_interval);
        if !in_generation || self.reconciler.busy() || self.commits.busy() {
            return;
        }
        let positions = if self.settings.explicit_store {
            let owned = self.reconciler.owned();
            self.stored
                .iter()
                .filter(|(tp, _)| owned.contains(*tp))
                .map(|(tp, (o, e))| (tp.clone(), *o, *e))
                .collect()
        } else {
            self.owned_positions(consumer)
        };
        let offsets: Vec<_> = positions
            .into_iter()
            .filter(|(tp, o, _)| self.commits.floor(tp).is_none_or(|f| f < *o))
            .collect();
        if !offsets.is_empty() {
            self.commits.enqueue(Pending::automatic(offsets));
        }
    }

    fn pump_commits(&mut self) {
        loop {
            let id = self.next_id + 1;
            let proto = &self.proto;
            let raced = match proto {
                Proto::Classic(c) => c.joining().map(|join| Overtaken {
                    generation: c.generation,
                    join,
                }),
                _ => None,
            };
            let may_retry = |o: &Overtaken| matches!(proto, Proto::Classic(c) if c.joined_after(o));
            match self.commits.next(id, raced, may_retry) {
                None => return,
                Some(NextCommit::Send { id, offsets }) => {
                    self.next_id = id;
                    let member = self.commit_member();
                    self.wants.push(Want::Commit {
                        id,
                        member,
                        offsets,
                    });
                    return;
                }
                Some(NextCommit::Done { op, results }) => {
                    if let Some(op) = op {
                        self.notes.push_back(Note::Done {
                            op,
                            result: Ok(OpOutput::Committed(results)),
                        });
                    }
                }
            }
        }
    }

    /// A commit answered.
    ///
    /// A classic member's commit sent while its own JoinGroup was on its way can
    /// reach the coordinator after that join made the next generation: refused with
    /// ILLEGAL_GENERATION though the member is in the group (and its answer may
    /// come before the join's). It goes again in the generation that join made,
    /// once the member's SyncGroup is answered; if the join fails instead, the
    /// commit ends refused. That is safe: the join listed the partitions the member
    /// owned then, which include every partition it commits (it is assigned
    /// nothing between a JoinGroup and its answer), so no other member can own them
    /// in that generation, and the retry cannot land behind a new owner's commit.
    /// Without it, a member leaving during a cooperative rebalance lost its
    /// commit-on-revoke and the next owner read those records again.
    pub(crate) fn on_commit(&mut self, id: u64, result: Result<OpOutput, ClientError>) {
        tracing::trace!(group = %self.settings.group_id, id, ?result, "commit answered");
        // Only a member in a group gets the heartbeat that releases a held commit.
        let may_hold = matches!(self.life, Life::Active | Life::Leaving { .. })
            && !matches!(self.proto, Proto::None);
        let overtaken = self
            .commits
            .raced(id)
            .filter(|o| matches!(&self.proto, Proto::Classic(c) if c.overtook(o)));
        let (done, stale) = self.commits.on_result(id, result, may_hold, overtaken);
        if stale && let Proto::Next(n) = &mut self.proto {
            n.heartbeat_now();
        }
        // Held for a rebalance that is over already: nothing else would release
        // it. That is a raced commit's once the member is out of its rebalance,
        // and any commit refused while the member is stable: a SyncGroup answered
        // before the refusal came (the two travel on different connections), so
        // no SyncGroup answer is left to release it.
        if stale
            && matches!(&self.proto, Proto::Classic(c)
                if (overtaken.is_some() && !c.in_rebalance()) || c.is_stable())
        {
            self.commits.release();
        }
        if let Some((op, result)) = done {
            self.notes.push_back(Note::Done { op, result });
        }
    }

    /// Application commits past their deadline end with a timeout (one in flight
    /// may still land; its answer is no longer reported).
    fn expire_commits(&mut self, now: Instant) {
        for (op, timeout) in self.commits.expire(now) {
            self.notes.push_back(Note::Done {
                op,
                result: Err(ClientError::Timeout {
                    operation: "OffsetCommit",
                    timeout,
                    last_error: None,
                }),
            });
        }
    }

    /// A membership request answered (or failed).
    pub(crate) fn on_call(
        &mut self,
        id: u64,
        now: Instant,
        result: Result<CallReply, ClientError>,
        consumer: &mut Consumer,
    ) {
        if let Life::Stale {
            classic,
            leave: Some(leave),
            polled,
        } = self.life
            && leave == id
        {
            if let Err(e) = leave_outcome(result) {
                tracing::warn!(error = %e, "leaving the group failed; the coordinator drops the member when its session times out");
            }
            self.life = Life::Stale {
                classic,
                leave: None,
                polled,
            };
            if polled {
                self.app_polled();
            }
            return;
        }
        if let Life::Leaving {
            op,
            call: Some(call),
            ..
        } = self.life.clone()
            && call == id
        {
            let outcome = leave_outcome(result);
            if let Err(e) = &outcome {
                tracing::warn!(error = %e, "leaving the group failed; the coordinator drops the member when its session times out");
            }
            self.finish_leave_with(op, consumer, outcome);
            return;
        }
        match &mut self.proto {
            Proto::Classic(_) => self.classic_reply(id, now, result, consumer),
            Proto::Next(_) => self.next_reply(id, now, result, consumer),
            Proto::None => {}
        }
    }

    fn drive_leave(
        &mut self,
        now: Instant,
        env: &dyn GroupEnv,
        op: Option<OpId>,
        call: Option<u64>,
        consumer: &mut Consumer,
    ) {
        if call.is_some() {
            return;
        }
        if self.reconciler.busy() {
            // A leaving member joins no more: a commit held for the rebalance it
            // was in goes once that member is not waiting for a join or sync. A
            // leader still hands out that round's assignment for it (the group is
            // not stable, and takes no commit, until the leader's SyncGroup).
            if self.commits.held()
                && matches!(&self.proto, Proto::Classic(c) if c.assigning())
                && self.metadata_ready(env)
            {
                self.assign_and_sync(now, env);
            }
            // A KIP-848 commit refused for a stale epoch waits for a heartbeat's
            // answer, which brings the current epoch. A leaving member no longer
            // heartbeats on its own, so it sends one; let go without it, the
            // commit went again at the epoch it had just been refused for.
            if self.commits.held()
                && let Proto::Next(n) = &self.proto
                && !n.heartbeat_in_flight()
            {
                self.send_heartbeat(now, env);
            }
            let waiting = match &self.proto {
                Proto::Classic(c) => c.in_rebalance(),
                Proto::Next(n) => n.heartbeat_in_flight(),
                Proto::None => false,
            };
            if self.commits.held() && !waiting {
                self.commits.release();
            }
            return;
        }
        if !self.reconciler.owned().is_empty() {
            self.transition(now, Why::Leave, &BTreeSet::new(), consumer);
            return;
        }
        let leave = match &self.proto {
            Proto::Classic(c) => c.leave_call(&self.settings, false),
            Proto::Next(n) => n.leave_call(&self.settings, false),
            Proto::None => None,
        };
        match leave {
            Some(call) => {
                let id = self.send_leave(call);
                if let Life::Leaving { call, .. } = &mut self.life {
                    *call = Some(id);
                }
            }
            None => self.finish_leave(op, consumer),
        }
    }

    /// The leave ran out of time (a coordinator that cannot be reached, a commit
    /// on revoke that does not end): the member stops here, what the application
    /// still holds by its events is lost, queued commits fail, and the leave ends
    /// with the timeout. The coordinator drops the member at its session's end.
    fn leave_timed_out(&mut self, op: Option<OpId>, timeout: Duration, consumer: &mut Consumer) {
        let error = ClientError::Timeout {
            operation: "leaving the group",
            timeout,
            last_error: None,
        };
        tracing::warn!(group = %self.settings.group_id, %error, "the member stops without the coordinator told");
        self.drop_membership(&error, consumer);
        self.finish_leave_with(op, consumer, Err(error));
    }

    fn finish_leave(&mut self, op: Option<OpId>, consumer: &mut Consumer) {
        self.finish_leave_with(op, consumer, Ok(()));
    }

    /// The member is out of the group here whatever the coordinator answered; the
    /// leave's caller learns whether the coordinator was told (`outcome`).
    fn finish_leave_with(
        &mut self,
        op: Option<OpId>,
        consumer: &mut Consumer,
        outcome: Result<(), ClientError>,
    ) {
        // Out of the group no heartbeat comes to release a held commit: it goes
        // now, as a non-member's (it waited forever).
        self.commits.release();
        self.reconciler.clear(consumer);
        self.proto = Proto::None;
        self.life = Life::Idle;
        self.subscription.clear();
        self.next_auto_commit = None;
        if let Some(op) = op {
            self.notes.push_back(Note::Done {
                op,
                result: outcome.map(|()| OpOutput::Committed(Vec::new())),
            });
        }
    }

    /// A fatal error: the member stops and says why.
    fn fail(&mut self, error: ClientError, consumer: &mut Consumer) {
        tracing::warn!(group = %self.settings.group_id, %error, "the group member stops");
        self.drop_membership(&error, consumer);
        // A leave in progress ends with the member (it never ended: the member
        // stopped mid-leave dropped its operation).
        if let Life::Leaving { op: Some(op), .. } = self.life {
            self.notes.push_back(Note::Done {
                op,
                result: Err(error.clone()),
            });
        }
        self.notes.push_back(Note::Error(error));
        self.life = Life::Failed;
    }

    /// Everything the application holds by its events is lost, and queued
    /// commits fail with `error`: the membership is gone. Lost is what the
    /// events gave: a partition whose revocation was reported is not lost again
    /// (it was, twice: revoked by a leave, then lost when FENCED_INSTANCE_ID
    /// stopped the member), and one whose assignment was reported is lost too,
    /// though not yet owned.
    fn drop_membership(&mut self, error: &ClientError, consumer: &mut Consumer) {
        let lost: Vec<TopicPartition> = self.reconciler.reported().into_iter().collect();
        self.reconciler.clear(consumer);
        if !lost.is_empty() {
            self.losses += 1;
            self.notes.push_back(Note::Rebalance {
                revoked: Vec::new(),
                lost,
                assigned: Vec::new(),
            });
        }
        for (op, e) in self.commits.fail_all(error) {
            self.notes.push_back(Note::Done { op, result: Err(e) });
        }
    }

    /// Sends a leave (a LeaveGroup, or a leave heartbeat): not held by the
    /// coordinator, bounded by the request timeout. Returns its call id.
    fn send_leave(&mut self, call: Call) -> u64 {
        let id = self.id();
        self.wants.push(Want::Call {
            id,
            call,
            hold: Duration::ZERO,
            timeout: self.settings.request_timeout,
        });
        id
    }

    /// Sends a membership request.
    fn send_call(&mut self, call: Call, hold: Duration) -> u64 {
        let id = self.id();
        let timeout = self.settings.request_timeout + hold + self.settings.request_timeout;
        self.wants.push(Want::Call {
            id,
            call,
            hold,
            timeout,
        });
        id
    }

    /// Asks for the metadata of these topics and waits for it.
    fn want_metadata(&mut self, topics: Vec<Arc<str>>) {
        self.metadata_ticket = None;
        self.wants.push(Want::Metadata(topics));
    }

    /// The partitions of `owned` in topics no longer subscribed to.
    fn unsubscribed_owned(&self) -> BTreeSet<TopicPartition> {
        self.reconciler
            .owned()
            .iter()
            .filter(|tp| !self.subscription.contains(&tp.topic))
            .cloned()
            .collect()
    }
}

/// Partitions of a by-topic map, as a set.
fn flatten(by_topic: &BTreeMap<Arc<str>, Vec<i32>>) -> BTreeSet<TopicPartition> {
    by_topic
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| TopicPartition::new(t.clone(), *p)))
        .collect()
}

/// Whether a leave (LeaveGroup, or KIP-848's leave heartbeat) reached its goal: the
/// coordinator answered without error, or said the member was gone already
/// (unknown, or fenced: nothing of it is left to remove). A transport failure, a
/// timeout or another error code means the coordinator may still count the member
/// until its session times out.
fn leave_outcome(result: Result<CallReply, ClientError>) -> Result<(), ClientError> {
    let reply = result?;
    let (api, top, message, members) = match &reply {
        CallReply::Leave(r) => (
            ApiKey::LeaveGroup,
            r.error_code,
            None,
            r.members.iter().map(|m| m.error_code).collect::<Vec<_>>(),
        ),
        CallReply::Next(r) => (
            ApiKey::ConsumerGroupHeartbeat,
            r.error_code,
            r.error_message.as_ref().map(|m| m.to_string()),
            Vec::new(),
        ),
        other => (ApiKey::LeaveGroup, other.error_code().0, None, Vec::new()),
    };
    let gone = |code: i16| {
        let code = ErrorCode(code);
        code == ErrorCode::NONE
            || code == ErrorCode::UNKNOWN_MEMBER_ID
            || code == ErrorCode::FENCED_INSTANCE_ID
            || code == ErrorCode::FENCED_MEMBER_EPOCH
    };
    match std::iter::once(top).chain(members).find(|&c| !gone(c)) {
        None => Ok(()),
        Some(code) => Err(ClientError::Broker {
            api,
            code: ErrorCode(code),
            message,
        }),
    }
}
