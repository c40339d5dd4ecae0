//! Group offsets at the coordinator (OffsetFetch, OffsetCommit) and the leader's
//! view of an epoch (OffsetForLeaderEpoch, KIP-320).

use std::sync::Arc;
use std::time::Instant;

use crate::client::consumer::TopicPartition;
use crate::client::metadata::Metadata;
use crate::client::op::{
    Built, CoordinatorKind, Ctx, Operation, Refresh, Reply, Step, Target, Versions, all, decode,
    version,
};
use crate::client::ops::admin::coordinator_step;
use crate::client::ops::partition::partition_step;
use crate::client::{Client, ClientError, Event, OpId, OpOutput};
use crate::messages::{
    ApiKey, ErrorCode, OffsetCommitRequest, OffsetFetchRequest, OffsetForLeaderEpochRequest,
    offset_commit_request, offset_fetch_request, offset_for_leader_epoch_request,
};

/// Who commits: the group member's identity, checked by the coordinator. A client
/// outside the group (an admin tool, a consumer with manual assignment) commits as
/// [`CommitMember::none`].
///
/// ```
/// use kafka_sansio::client::CommitMember;
/// // Outside a group (manual assignment, an admin tool):
/// let member = CommitMember::none();
/// assert_eq!((member.generation, member.member_id.as_str()), (-1, ""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitMember {
    /// The generation id (classic) or member epoch (KIP-848); `-1` outside a group.
    pub generation: i32,
    /// The member id; empty outside a group.
    pub member_id: String,
    /// The static instance id (KIP-345), if any.
    pub group_instance_id: Option<String>,
}

impl CommitMember {
    /// Not a member: commits are accepted only while the group has no members.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{CommitMember, OpOutput, TopicPartition};
    /// let now = sim.now();
    /// let offsets = vec![(TopicPartition::new("orders", 0), 42, None)];
    /// let op = sim.client(host).commit_offsets(now, "billing", CommitMember::none(), offsets);
    /// let OpOutput::Committed(results) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
    /// assert_eq!(results[0].offset, Ok(42));
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn none() -> Self {
        Self {
            generation: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// One partition's committed offset, or why it could not be read or written.
///
/// ```
/// # #[cfg(feature = "sim")] {
/// # let (mut sim, host) = kafka_sansio::doc_support::sim();
/// use std::time::Duration;
/// use kafka_sansio::client::{OpOutput, TopicPartition};
/// let now = sim.now();
/// let op = sim.client(host).fetch_committed(now, "billing", vec![TopicPartition::new("orders", 0)]);
/// let OpOutput::Committed(results) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
/// assert_eq!(results[0].partition, TopicPartition::new("orders", 0));
/// assert_eq!(results[0].offset, Ok(-1)); // nothing committed yet
/// # }
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedOffset {
    /// The partition.
    pub partition: TopicPartition,
    /// The offset (`-1`: nothing committed), or the error.
    pub offset: Result<i64, ClientError>,
}

/// Why an offset cannot be committed for `tp`, if it cannot: offsets are the next
/// record to read (0 or more) and partitions are numbered from 0. Kafka would store
/// a commit of -1 as given; the Java client refuses it when the offset is made.
pub(crate) fn invalid_commit(tp: &TopicPartition, offset: i64) -> Option<ClientError> {
    if tp.partition < 0 {
        return Some(ClientError::InvalidArgument(format!(
            "cannot commit {tp}: partitions are numbered from 0"
        )));
    }
    (offset < 0).then(|| {
        ClientError::InvalidArgument(format!(
            "cannot commit offset {offset} for {tp}: a committed offset is the next record \
             to read, 0 or more"
        ))
    })
}

fn group_target(group: &Arc<str>) -> Target {
    Target::Coordinator {
        kind: CoordinatorKind::Group,
        key: group.clone(),
    }
}

struct FetchCommitted {
    group: Arc<str>,
    partitions: Vec<TopicPartition>,
    /// Ask for stable offsets (KIP-447, v7+): a partition with an offset pending in
    /// an open transaction is answered UNSTABLE_OFFSET_COMMIT, and the lookup is
    /// retried until that transaction ends, instead of reading the offset it is
    /// about to replace.
    require_stable: bool,
    results: Option<Vec<CommittedOffset>>,
}

impl Operation for FetchCommitted {
    fn name(&self) -> &'static str {
        "OffsetFetch"
    }

    fn build(
        &mut self,
        _items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        let v = version(versions, ApiKey::OffsetFetch)
            .filter(|v| *v >= 1)
            .ok_or(ClientError::Unsupported(ApiKey::OffsetFetch))?;
        let mut request = OffsetFetchRequest {
            // Before v7 there is no such flag (nor KIP-447's transactional offsets to
            // wait for); librdkafka asks the same way, the Java client refuses.
            require_stable: self.require_stable && v >= 7,
            ..Default::default()
        };
        let mut by_topic: Vec<(Arc<str>, Vec<i32>)> = Vec::new();
        for tp in &self.partitions {
            match by_topic.iter_mut().find(|(t, _)| *t == tp.topic) {
                Some((_, ps)) => ps.push(tp.partition),
                None => by_topic.push((tp.topic.clone(), vec![tp.partition])),
            }
        }
        if v >= 8 {
            request.groups = vec![offset_fetch_request::OffsetFetchRequestGroup {
                group_id: (&*self.group).into(),
                topics: Some(
                    by_topic
                        .iter()
                        .map(|(t, ps)| offset_fetch_request::OffsetFetchRequestTopics {
                            name: (&**t).into(),
                            partition_indexes: ps.iter().copied().collect(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                member_epoch: -1,
                ..Default::default()
            }];
        } else {
            request.group_id = (&*self.group).into();
            request.topics = Some(
                by_topic
                    .iter()
                    .map(|(t, ps)| offset_fetch_request::OffsetFetchRequestTopic {
                        name: (&**t).into(),
                        partition_indexes: ps.iter().copied().collect(),
                        ..Default::default()
                    })
                    .collect(),
            );
        }
        Ok(Built::new(request, v))
    }

    fn on_reply(
        &mut self,
        items: &[usize],
        reply: Reply,
        _ctx: &mut Ctx<'_>,
    ) -> Vec<(usize, Step)> {
        let response = match decode::<OffsetFetchRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        // (group error, [(topic, partition, offset, error)])
        let (top, rows): (i16, Vec<(String, i32, i64, i16)>) =
            if let Some(g) = response.groups.first() {
                let rows = g
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(move |p| {
                            (
                                t.name.to_string(),
                                p.partition_index,
                                p.committed_offset,
                                p.error_code,
                            )
                        })
                    })
                    .collect();
                (g.error_code, rows)
            } else {
                let rows = response
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(move |p| {
                            (
                                t.name.to_string(),
                                p.partition_index,
                                p.committed_offset,
                                p.error_code,
                            )
                        })
                    })
                    .collect();
                (response.error_code, rows)
            };
        let code = ErrorCode(top);
        if !code.is_ok() {
            return all(items, || {
                coordinator_step(
                    ApiKey::OffsetFetch,
                    code,
                    None,
                    CoordinatorKind::Group,
                    &self.group,
                )
            });
        }
        // An offset still pending in a transaction: ask again after a backoff (the
        // code is retriable).
        let unstable = ErrorCode::UNSTABLE_OFFSET_COMMIT;
        if rows.iter().any(|(_, _, _, e)| ErrorCode(*e) == unstable) {
            return all(items, || {
                Step::from_code(ApiKey::OffsetFetch, unstable, None, Refresh::Nothing)
            });
        }
        let results = self
            .partitions
            .iter()
            .map(|tp| {
                let row = rows
                    .iter()
                    .find(|(t, p, _, _)| **t == *tp.topic && *p == tp.partition);
                let offset = match row {
                    Some((_, _, o, e)) if *e == 0 => Ok(*o),
                    Some((_, _, _, e)) => Err(ClientError::broker(
                        ApiKey::OffsetFetch,
                        ErrorCode(*e),
                        None,
                    )),
                    None => Ok(-1),
                };
                CommittedOffset {
                    partition: tp.clone(),
                    offset,
                }
            })
            .collect();
        self.results = Some(results);
        all(items, || Step::Done)
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        if let Some((_, e)) = failed.into_iter().next() {
            return Err(e);
        }
        self.results
            .map(OpOutput::Committed)
            .ok_or(ClientError::Closed)
    }
}

struct Commit {
    group: Arc<str>,
    member: CommitMember,
    offsets: Vec<(TopicPartition, i64, Option<i32>)>,
    results: Option<Vec<CommittedOffset>>,
    /// Entries refused before sending, with their places among those asked (the
    /// sent ones take the other places, in order).
    refused: Vec<(usize, CommittedOffset)>,
}

impl Operation for Commit {
    fn name(&self) -> &'static str {
        "OffsetCommit"
    }

    fn build(
        &mut self,
        _items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        let v = version(versions, ApiKey::OffsetCommit)
            .filter(|v| *v >= 2)
            .ok_or(ClientError::Unsupported(ApiKey::OffsetCommit))?;
        let mut topics: Vec<offset_commit_request::OffsetCommitRequestTopic> = Vec::new();
        for (tp, offset, epoch) in &self.offsets {
            let p = offset_commit_request::OffsetCommitRequestPartition {
                partition_index: tp.partition,
                committed_offset: *offset,
                committed_leader_epoch: if v >= 6 { epoch.unwrap_or(-1) } else { -1 },
                committed_metadata: Some("".into()),
                ..Default::default()
            };
            match topics.iter_mut().find(|t| *t.name == *tp.topic) {
                Some(t) => t.partitions.push(p),
                None => topics.push(offset_commit_request::OffsetCommitRequestTopic {
                    name: (&*tp.topic).into(),
                    partitions: vec![p],
                    ..Default::default()
                }),
            }
        }
        let request = OffsetCommitRequest {
            group_id: (&*self.group).into(),
            generation_id_or_member_epoch: self.member.generation,
            member_id: self.member.member_id.as_str().into(),
            group_instance_id: if v >= 7 {
                self.member.group_instance_id.as_deref().map(Into::into)
            } else {
                None
            },
            retention_time_ms: -1,
            topics,
            ..Default::default()
        };
        Ok(Built::new(request, v))
    }

    fn on_reply(
        &mut self,
        items: &[usize],
        reply: Reply,
        _ctx: &mut Ctx<'_>,
    ) -> Vec<(usize, Step)> {
        let response = match decode::<OffsetCommitRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        let mut results = Vec::new();
        let mut retry = None;
        for (tp, offset, _) in &self.offsets {
            let code = response
                .topics
                .iter()
                .filter(|t| *t.name == *tp.topic)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == tp.partition)
                .map_or(ErrorCode::NONE, |p| ErrorCode(p.error_code));
            match coordinator_step(
                ApiKey::OffsetCommit,
                code,
                None,
                CoordinatorKind::Group,
                &self.group,
            ) {
                Step::Done => results.push(CommittedOffset {
                    partition: tp.clone(),
                    offset: Ok(*offset),
                }),
                Step::Fail(e) => results.push(CommittedOffset {
                    partition: tp.clone(),
                    offset: Err(e),
                }),
                s => retry = Some(s),
            }
        }
        if let Some(step) = retry {
            // a coordinator move or load: the whole commit is sent again
            let mut step = Some(step);
            return items
                .iter()
                .map(|i| (*i, step.take().unwrap_or(Step::Done)))
                .collect();
        }
        self.results = Some(results);
        all(items, || Step::Done)
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        if let Some((_, e)) = failed.into_iter().next() {
            return Err(e);
        }
        let results = self.results.ok_or(ClientError::Closed)?;
        if self.refused.is_empty() {
            return Ok(OpOutput::Committed(results));
        }
        // Back in the order asked: refused entries at their places, the rest in turn.
        let mut refused = self.refused.into_iter().peekable();
        let mut sent = results.into_iter();
        let mut all = Vec::new();
        loop {
            if refused.peek().is_some_and(|(i, _)| *i == all.len()) {
                all.extend(refused.next().map(|(_, r)| r));
            } else if let Some(r) = sent.next() {
                all.push(r);
            } else {
                all.extend(refused.map(|(_, r)| r));
                break;
            }
        }
        Ok(OpOutput::Committed(all))
    }
}

/// OffsetForLeaderEpoch for one partition: where the leader's log for `epoch` ends.
pub(crate) struct EpochEnd {
    pub(crate) tp: TopicPartition,
    pub(crate) epoch: i32,
    pub(crate) result: Option<i64>,
}

impl Operation for EpochEnd {
    fn name(&self) -> &'static str {
        "OffsetForLeaderEpoch"
    }

    fn build(
        &mut self,
        _items: &[usize],
        versions: &Versions,
        metadata: &Metadata,
    ) -> Result<Built, ClientError> {
        let v = version(versions, ApiKey::OffsetForLeaderEpoch)
            .filter(|v| *v >= 2)
            .ok_or(ClientError::Unsupported(ApiKey::OffsetForLeaderEpoch))?;
        let current = match metadata.leader(&self.tp.topic, self.tp.partition) {
            crate::client::metadata::Leader::Known { epoch, .. } => epoch,
            _ => -1,
        };
        let request = OffsetForLeaderEpochRequest {
            replica_id: -1,
            topics: vec![offset_for_leader_epoch_request::OffsetForLeaderTopic {
                topic: (&*self.tp.topic).into(),
                partitions: vec![offset_for_leader_epoch_request::OffsetForLeaderPartition {
                    partition: self.tp.partition,
                    current_leader_epoch: current,
                    leader_epoch: self.epoch,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        Ok(Built::new(request, v))
    }

    fn on_reply(
        &mut self,
        items: &[usize],
        reply: Reply,
        _ctx: &mut Ctx<'_>,
    ) -> Vec<(usize, Step)> {
        let response = match decode::<OffsetForLeaderEpochRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        let found = response
            .topics
            .iter()
            .filter(|t| *t.topic == *self.tp.topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition == self.tp.partition);
        let Some(p) = found else {
            return all(items, || {
                Step::Fail(ClientError::InvalidResponse {
                    api: ApiKey::OffsetForLeaderEpoch,
                    detail: format!("no answer for {}", self.tp),
                })
            });
        };
        let code = ErrorCode(p.error_code);
        if code.is_ok() {
            self.result = Some(p.end_offset);
            return all(items, || Step::Done);
        }
        all(items, || {
            partition_step(
                ApiKey::OffsetForLeaderEpoch,
                code,
                &self.tp.topic,
                self.tp.partition,
            )
        })
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        if let Some((_, e)) = failed.into_iter().next() {
            return Err(e);
        }
        self.result
            .map(|offset| OpOutput::Offset {
                offset,
                timestamp: -1,
            })
            .ok_or(ClientError::Closed)
    }
}

/// The committed-offsets lookup as an operation, for the consumer: stable offsets
/// (`require_stable`) for a read_committed consumer, as the Java client asks.
pub(crate) fn committed_op(
    group: &str,
    partitions: Vec<TopicPartition>,
    require_stable: bool,
) -> (Box<dyn Operation>, Vec<Target>) {
    let group: Arc<str> = group.into();
    let target = group_target(&group);
    let op = FetchCommitted {
        group,
        partitions,
        require_stable,
        results: None,
    };
    (Box::new(op), vec![target])
}

/// A commit as an operation, for the group member.
pub(crate) fn commit_op(
    group: &Arc<str>,
    member: CommitMember,
    offsets: Vec<(TopicPartition, i64, Option<i32>)>,
) -> (Box<dyn Operation>, Vec<Target>) {
    let op = Commit {
        group: group.clone(),
        member,
        offsets,
        results: None,
        refused: Vec::new(),
    };
    (Box::new(op), vec![group_target(group)])
}

impl Client {
    /// Reads a group's committed offsets for these partitions (OffsetFetch at the
    /// group's coordinator); `-1` where nothing is committed.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{CommitMember, OpOutput, TopicPartition};
    /// let p0 = TopicPartition::new("orders", 0);
    /// let now = sim.now();
    /// let op = sim.client(host).commit_offsets(now, "billing", CommitMember::none(), vec![(p0.clone(), 7, None)]);
    /// sim.run_until_done(host, op, Duration::from_secs(10))?;
    /// let now = sim.now();
    /// let op = sim.client(host).fetch_committed(now, "billing", vec![p0]);
    /// let OpOutput::Committed(results) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
    /// assert_eq!(results[0].offset, Ok(7));
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn fetch_committed(
        &mut self,
        now: Instant,
        group: &str,
        partitions: Vec<TopicPartition>,
    ) -> OpId {
        let (op, targets) = committed_op(group, partitions, false);
        self.start_op(now, op, targets, None)
    }

    /// Commits offsets for a group (OffsetCommit at its coordinator): the offset is
    /// the next record to consume. Each partition gets its own result.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{CommitMember, OpOutput, TopicPartition};
    /// let now = sim.now();
    /// // The offset committed is the next record to read (the last one processed + 1).
    /// let offsets = vec![(TopicPartition::new("orders", 0), 10, None), (TopicPartition::new("orders", 1), 3, None)];
    /// let op = sim.client(host).commit_offsets(now, "billing", CommitMember::none(), offsets);
    /// let OpOutput::Committed(results) = sim.run_until_done(host, op, Duration::from_secs(10))? else { unreachable!() };
    /// assert!(results.iter().all(|r| r.offset.is_ok()));
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn commit_offsets(
        &mut self,
        now: Instant,
        group: &str,
        member: CommitMember,
        offsets: Vec<(TopicPartition, i64, Option<i32>)>,
    ) -> OpId {
        let group: Arc<str> = group.into();
        let mut refused = Vec::new();
        let mut valid = Vec::with_capacity(offsets.len());
        for (i, (tp, offset, epoch)) in offsets.into_iter().enumerate() {
            match invalid_commit(&tp, offset) {
                Some(e) => refused.push((
                    i,
                    CommittedOffset {
                        partition: tp,
                        offset: Err(e),
                    },
                )),
                None => valid.push((tp, offset, epoch)),
            }
        }
        if valid.is_empty() {
            // Nothing to send: every entry's result is its refusal.
            let op = OpId(self.next_op);
            self.next_op += 1;
            let results = refused.into_iter().map(|(_, r)| r).collect();
            self.events.push_back(Event::Done {
                op,
                result: Ok(OpOutput::Committed(results)),
            });
            return op;
        }
        let op = Commit {
            group: group.clone(),
            member,
            offsets: valid,
            results: None,
            refused,
        };
        self.start_op(now, Box::new(op), vec![group_target(&group)], None)
    }
}
