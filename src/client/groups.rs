//! The consumer group's place in the client: subscribe, acknowledge rebalances,
//! commit, leave; and the glue that gives the group member metadata, requests to
//! the coordinator and their replies.

use std::sync::Arc;
use std::time::Instant;

use crate::connection::RequestOptions;
use crate::wire::Uuid;

use super::consumer::TopicPartition;
use super::group::call::{CallReply, GroupCall};
use super::group::{GroupEnv, GroupMember, GroupStatus, Note, Settings, Want};
use super::metadata::Metadata;
use super::op::{CoordinatorKind, Lane, Versions};
use super::{
    Client, ClientError, ConnState, CoordState, Endpoint, Event, Internal, OpId, OpOutput,
};

/// What the group member reads of the metadata cache.
struct Env<'a> {
    metadata: &'a Metadata,
    answered: u64,
}

impl GroupEnv for Env<'_> {
    fn partition_count(&self, topic: &str) -> Option<i32> {
        match self.metadata.leader(topic, 0) {
            super::metadata::Leader::NotLoaded => None,
            super::metadata::Leader::UnknownTopic => Some(0),
            _ => self
                .metadata
                .topic(topic)
                .map(|t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX)),
        }
    }

    fn topic_name(&self, id: Uuid) -> Option<Arc<str>> {
        if id.is_zero() {
            return None;
        }
        self.metadata
            .topics()
            .find(|t| t.id == id)
            .map(|t| t.name.clone())
    }

    fn topic_id(&self, name: &str) -> Option<Uuid> {
        self.metadata
            .topic(name)
            .map(|t| t.id)
            .filter(|id| !id.is_zero())
    }

    fn metadata_answered(&self) -> u64 {
        self.answered
    }
}

impl Client {
    /// The group member, made on first use from
    /// [`ConsumerConfig`](super::ConsumerConfig).
    fn group_member(&mut self) -> Result<&mut GroupMember, ClientError> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        if self.group.is_none() {
            let Some(group_id) = self.config.consumer.group_id.clone() else {
                return Err(ClientError::InvalidArgument(
                    "consumer groups need ConsumerConfig::group_id".into(),
                ));
            };
            let mut settings = Settings::new(
                &self.config.consumer,
                &group_id,
                self.config.connection.request_timeout,
                self.config.retry_backoff,
            );
            settings.explicit_store = self.explicit_store;
            self.group = Some(Box::new(GroupMember::new(settings, self.config.seed)));
        }
        self.group.as_deref_mut().ok_or(ClientError::Closed)
    }

    /// Joins the consumer group [`ConsumerConfig::group_id`](super::ConsumerConfig::group_id)
    /// consuming `topics` (a later call replaces the subscription). The group
    /// assigns the partitions: each change comes as one [`Event::Rebalance`], to
    /// acknowledge with [`ack_rebalance`](Self::ack_rebalance); records then arrive
    /// through [`poll_records`](Self::poll_records), starting at the group's
    /// committed offsets (or the reset policy). With auto-commit (the default)
    /// positions are committed every
    /// [`auto_commit_interval`](super::ConsumerConfig::auto_commit_interval) and
    /// before partitions are revoked; [`commit`](Self::commit) commits by hand.
    /// Do not mix with [`assign`](Self::assign).
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Client, ClientConfig, Event, OffsetReset, ProducerRecord};
    /// use kafka_sansio::sim::{ClusterConfig, NetworkConfig, Simulation};
    ///
    /// # #[allow(clippy::disallowed_methods)]
    /// let mut sim = Simulation::new(1, ClusterConfig::default(), NetworkConfig::default(), std::time::Instant::now());
    /// sim.cluster().create_topic("orders", 3, 1).unwrap();
    /// let mut config = ClientConfig::new(&sim.bootstrap()).unwrap();
    /// config.consumer.group_id = Some("billing".into());
    /// config.consumer.auto_offset_reset = OffsetReset::Earliest;
    /// let host = sim.add_client(Client::new(config, sim.now()));
    /// let now = sim.now();
    /// sim.client(host).send(now, ProducerRecord::new("orders", "paid").partition(1)).unwrap();
    /// sim.client(host).subscribe(now, ["orders"]).unwrap();
    /// let mut got = Vec::new();
    /// sim.run_until(Duration::from_secs(20), |sim| {
    ///     let now = sim.now();
    ///     let events: Vec<Event> = sim.client_events(host).collect();
    ///     for e in events {
    ///         if let Event::Rebalance { assigned, .. } = e {
    ///             assert_eq!(assigned.len(), 3, "the only member gets every partition");
    ///             sim.client(host).ack_rebalance(now);
    ///         }
    ///     }
    ///     got.extend(sim.client(host).poll_records(now, 100));
    ///     !got.is_empty()
    /// });
    /// assert_eq!(got[0].record.value(), Some(&b"paid"[..]));
    /// # }
    /// ```
    ///
    /// # Errors
    /// No group id is configured, no topic was given, the classic protocol has no
    /// assignor, or the member is leaving.
    pub fn subscribe<T: Into<Arc<str>>>(
        &mut self,
        now: Instant,
        topics: impl IntoIterator<Item = T>,
    ) -> Result<(), ClientError> {
        self.advance(now);
        let topics: Vec<Arc<str>> = topics.into_iter().map(Into::into).collect();
        self.group_member()?.subscribe(topics.clone())?;
        for t in topics {
            self.want_metadata(now, Some(t), false);
        }
        self.drive(now);
        Ok(())
    }

    /// From now on the group commits, on its auto-commit timer and for a
    /// revocation, only what the application was handed: positions stored with
    /// [`store_positions`](Self::store_positions), and a revocation's positions
    /// once it is acknowledged. For a runtime facade, whose buffer of polled
    /// records runs ahead of what the application took: committing the poll
    /// positions would skip the buffered records if the process died.
    #[cfg_attr(
        not(any(feature = "tokio", feature = "smol", feature = "blocking")),
        allow(dead_code)
    )]
    pub(crate) fn store_positions_explicitly(&mut self) {
        self.explicit_store = true;
    }

    /// With [`store_positions_explicitly`](Self::store_positions_explicitly): the
    /// application was handed every record before the positions now, except in
    /// the partitions of `unhanded` (only before the offset given there).
    #[cfg_attr(
        not(any(feature = "tokio", feature = "smol", feature = "blocking")),
        allow(dead_code)
    )]
    pub(crate) fn store_positions(&mut self, unhanded: &[(TopicPartition, i64)]) {
        if let (Some(g), Some(c)) = (self.group.as_deref_mut(), self.consumer.as_deref()) {
            g.store_positions(c, unhanded);
        }
    }

    /// Acknowledges the last [`Event::Rebalance`]: the revoked partitions are
    /// done with, the assigned ones may be fetched. Harmless when none is pending.
    pub fn ack_rebalance(&mut self, now: Instant) {
        self.ack_rebalance_handed(now, &[]);
    }

    /// [`ack_rebalance`](Self::ack_rebalance), saying that the application
    /// was handed every record before the revoked positions but those of the
    /// partitions in `unhanded` (from the offset given there): with
    /// [`store_positions_explicitly`](Self::store_positions_explicitly), the
    /// revocation commits no further.
    pub(crate) fn ack_rebalance_handed(
        &mut self,
        now: Instant,
        unhanded: &[(TopicPartition, i64)],
    ) {
        self.advance(now);
        if self.group.is_some() {
            let mut g = self.group.take();
            if let Some(g) = g.as_deref_mut() {
                g.ack(self.consumer_mut(), unhanded);
            }
            self.group = g;
        }
        self.drive(now);
    }

    /// Commits offsets for the group: `offsets` (the next offset to consume, per
    /// partition), or with `None` the position of every partition this member holds.
    /// Commits go one at a time, in the order asked, and never move a partition's
    /// committed offset back below what this member committed (a lower offset is
    /// refused in that partition's result, unless the partition was
    /// [`seek`](Self::seek)ed since); a partition named twice is committed at its
    /// first offset and the later entries refused. The returned operation ends with
    /// [`OpOutput::Committed`]: await its [`Event::Done`] for a synchronous commit,
    /// or ignore it for an asynchronous one. Outside a group (manual assignment)
    /// the commit is made as a non-member. It ends by the operation timeout (or
    /// [`with_timeout`](Self::with_timeout)'s) with [`ClientError::Timeout`] if it
    /// is still queued behind others, held for a rebalance or on the wire then
    /// (one on the wire may still land).
    pub fn commit(&mut self, now: Instant, offsets: Option<Vec<(TopicPartition, i64)>>) -> OpId {
        self.advance(now);
        let op = OpId(self.next_op);
        self.next_op += 1;
        let offsets = offsets.map(|os| {
            os.into_iter()
                .map(|(tp, o)| (tp, o, None))
                .collect::<Vec<_>>()
        });
        if let Err(e) = self.group_member() {
            self.events.push_back(Event::Done { op, result: Err(e) });
            return op;
        }
        let timeout = self.take_timeout();
        self.consumer_mut();
        if let (Some(g), Some(c)) = (self.group.as_deref_mut(), self.consumer.as_deref()) {
            g.commit(Some(op), offsets, c, Some((now + timeout, timeout)));
        }
        self.drive(now);
        op
    }

    /// The timeout of an operation started now: the one
    /// [`with_timeout`](Self::with_timeout) gave, else the operation timeout.
    fn take_timeout(&mut self) -> std::time::Duration {
        self.next_timeout
            .take()
            .unwrap_or(self.config.operation_timeout)
    }

    /// Leaves the group: the member's partitions are revoked (one
    /// [`Event::Rebalance`] to acknowledge; committed first with auto-commit),
    /// then the coordinator is told (a LeaveGroup, or a KIP-848 leave heartbeat).
    /// The returned operation ends when that is done, or with
    /// [`ClientError::Timeout`] after the operation timeout (or
    /// [`with_timeout`](Self::with_timeout)'s), the member out of the group either
    /// way (what it still held is reported lost; the coordinator drops it at its
    /// session's end). A static member leaves for good this way;
    /// [`close`](Self::close) alone keeps its place (KIP-345).
    pub fn leave_group(&mut self, now: Instant) -> OpId {
        self.advance(now);
        let op = OpId(self.next_op);
        self.next_op += 1;
        let timeout = self.take_timeout();
        match self.group.as_deref_mut() {
            Some(g) => g.leave(Some(op), (now + timeout, timeout)),
            None => self.events.push_back(Event::Done {
                op,
                result: Ok(OpOutput::Committed(Vec::new())),
            }),
        }
        self.drive(now);
        op
    }

    /// What the consumer group member is doing; `None` before
    /// [`subscribe`](Self::subscribe).
    #[must_use]
    pub fn group_status(&self) -> Option<GroupStatus> {
        self.group.as_ref().map(|g| g.status())
    }

    /// Lets the group member move, and carries out what it asks.
    pub(crate) fn drive_group(&mut self, now: Instant) {
        let Some(mut g) = self.group.take() else {
            return;
        };
        self.consumer_mut();
        if let Some(consumer) = self.consumer.as_deref_mut() {
            // Records waited for a whole max_poll_interval and the application
            // did not come for them: it is taken to be stuck.
            if let Some(due) = self.poll_due
                && due <= now
                && g.watches_polls()
            {
                self.poll_due = None;
                if consumer.has_ready() {
                    let max_poll_interval = self.config.consumer.max_poll_interval;
                    g.poll_expired(
                        ClientError::PollIntervalExceeded { max_poll_interval },
                        consumer,
                    );
                }
            }
            let env = Env {
                metadata: &self.metadata,
                answered: self.metadata_answered,
            };
            g.drive(now, &env, consumer);
        }
        let group = g.group_id().clone();
        for want in g.take_wants() {
            match want {
                Want::Call {
                    id,
                    call,
                    hold,
                    timeout,
                } => {
                    let (op, targets) = GroupCall::start(call, hold);
                    self.start_entry(now, op, targets, Some(timeout), Some(Internal::Group(id)));
                }
                Want::Commit {
                    id,
                    member,
                    offsets,
                } => {
                    let (op, targets) = super::ops::offsets::commit_op(&group, member, offsets);
                    self.start_entry(now, op, targets, None, Some(Internal::GroupCommit(id)));
                }
                Want::Metadata(topics) => {
                    let ticket = self.metadata_sent + 1;
                    for t in topics {
                        self.want_metadata(now, Some(t), false);
                    }
                    if self.metadata.topics().next().is_none() {
                        self.want_metadata(now, None, false);
                    }
                    g.metadata_requested(ticket);
                }
            }
        }
        self.emit_group_notes(&mut g);
        self.group = Some(g);
    }

    fn emit_group_notes(&mut self, g: &mut GroupMember) {
        for note in g.take_notes() {
            let event = match note {
                Note::Rebalance {
                    revoked,
                    lost,
                    assigned,
                } => Event::Rebalance {
                    revoked,
                    lost,
                    assigned,
                },
                Note::Error(error) => Event::ConsumerError {
                    partition: None,
                    error,
                },
                Note::Done { op, result } => Event::Done { op, result },
            };
            self.events.push_back(event);
        }
    }

    /// A membership request ended.
    pub(crate) fn group_call_done(&mut self, id: u64, result: Result<CallReply, ClientError>) {
        let Some(mut g) = self.group.take() else {
            return;
        };
        let now = self.now;
        let consumer = self.consumer_mut();
        g.on_call(id, now, result, consumer);
        self.emit_group_notes(&mut g);
        self.group = Some(g);
        self.group_moved = true;
    }

    /// A group commit ended.
    pub(crate) fn group_commit_done(&mut self, id: u64, result: Result<OpOutput, ClientError>) {
        let Some(mut g) = self.group.take() else {
            return;
        };
        g.on_commit(id, result);
        self.emit_group_notes(&mut g);
        self.group = Some(g);
        self.group_moved = true;
    }

    /// The client closes: a dynamic member's leave request is written on the
    /// coordinator's connection before it closes (not waited for); queued commits
    /// fail.
    pub(crate) fn group_close(&mut self, now: Instant) {
        let Some(mut g) = self.group.take() else {
            return;
        };
        if let Some(call) = g.farewell()
            && let Some(CoordState::Known(node)) = self
                .coordinators
                .get(&(CoordinatorKind::Group, g.group_id().clone()))
            && let Some(&conn_id) = self.by_endpoint.get(&(Endpoint::Node(*node), Lane::Group))
            && let Some(slot) = self.slots.get_mut(&conn_id)
            && let ConnState::Open { conn, ready: true } = &mut slot.state
        {
            let versions: Versions = conn.broker_versions().cloned().unwrap_or_default();
            if let Ok(v) = call.version(&versions) {
                let built = call.request_for(v);
                let mut options = RequestOptions::timeout(self.config.connection.request_timeout);
                options.max_version = built.max_version;
                if conn.send_any(now, built.request, options).is_ok() {
                    tracing::debug!(group = %g.group_id(), "leaving the group on close");
                    self.pump(conn_id, now);
                }
            }
        }
        for (op, error) in g.close() {
            self.events.push_back(Event::Done {
                op,
                result: Err(error),
            });
        }
    }
}
