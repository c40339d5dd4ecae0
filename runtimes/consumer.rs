//! The consumer facade: a `Stream` of records (async) and an iterator (blocking)
//! over the client's fetcher, with assignment, seeks and pauses, or a consumer group
//! membership (`subscribe`), its rebalances, commits and a clean `close`.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::Stream;

use crate::client::{
    ClientError, CommittedOffset, ConsumedRecord, Offset, OpOutput, TopicPartition,
};
use crate::driver::{Command, ConsumeCommand, PollResult};
use crate::oneshot;

/// Records per trip to the driver.
const POLL_BATCH: usize = 1024;

/// A consumer over a [`Client`](crate::runtime::Client): a `Stream` of records
/// that keeps going after errors (each comes out as one `Err` item) until the client
/// closes. Configure fetching with the builder's
/// [`ClientBuilder::configure`](crate::runtime::ClientBuilder::configure)
/// (`config.consumer`: reset policy, isolation, budget, fetch sizes).
///
/// ```no_run
/// # #[cfg(feature = "tokio")]
/// # async fn demo() -> Result<(), kafka_sansio::client::ClientError> {
/// use futures_lite::StreamExt;
/// use kafka_sansio::client::{Offset, TopicPartition};
/// use kafka_sansio::runtime::ClientBuilder;
///
/// let client = ClientBuilder::new("localhost:9092").build_tokio().await?;
/// let mut consumer = client.consumer();
/// consumer.assign(vec![TopicPartition::new("orders", 0)], Offset::Beginning)?;
/// while let Some(record) = consumer.next().await {
///     match record {
///         Ok(r) => println!("{}-{}@{}: {:?}", r.topic, r.partition, r.record.offset, r.record.value()),
///         Err(e) => eprintln!("consuming: {e}"), // the stream goes on
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Consumer {
    client: crate::runtime::Client,
    records: VecDeque<ConsumedRecord>,
    errors: VecDeque<ClientError>,
    waiting: Option<oneshot::Receiver<PollResult>>,
    closed: bool,
    /// Rebalances received and not yet taken by the application.
    rebalances: VecDeque<Rebalance>,
    /// A rebalance was received and is not acknowledged yet: the acknowledgement
    /// goes with the next request for records, once every record handed over
    /// before it has been taken.
    unacked: bool,
    /// Partitions the group gave this member, by its rebalances.
    owned: BTreeSet<TopicPartition>,
    /// Per partition, the offset after the last record handed to the application:
    /// what [`commit`](Self::commit) stores.
    handed: BTreeMap<TopicPartition, i64>,
    /// The partition of the last record handed out and the offset after it, not
    /// yet in `handed`: the map is updated once per run of records of one
    /// partition, not once per record.
    last: Option<(Arc<str>, i32, i64)>,
    /// Subscribed to a group: commits only what the group gave it.
    grouped: bool,
    /// Partitions revoked by rebalances not yet acknowledged: a commit may still
    /// store where they ended.
    revoking: BTreeSet<TopicPartition>,
    /// Partitions the application paused: none of their records is handed out.
    paused: BTreeSet<TopicPartition>,
    /// Records of paused partitions taken from the client before it heard of the
    /// pause, in the order taken: handed out first after the resume.
    held: VecDeque<ConsumedRecord>,
    /// Partitions sought, assigned or unassigned while a poll was out: the
    /// answer to that poll holds records from before (the driver answers it
    /// before it moves them), and those of these partitions are dropped.
    moved: BTreeSet<TopicPartition>,
}

/// A change of the partitions a group member consumes. Records of `revoked` and
/// `lost` partitions handed out before it are the last of them; auto-commit, or
/// the application's `commit` (or transaction) before it asks for more records,
/// stores where they ended before the partitions move on. The consumer
/// acknowledges it to the group when the application next asks for records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebalance {
    /// Partitions given up in a clean rebalance (with auto-commit, committed
    /// before they move).
    pub revoked: Vec<TopicPartition>,
    /// Partitions taken away without the chance to commit (the membership was lost).
    pub lost: Vec<TopicPartition>,
    /// Partitions now consumed.
    pub assigned: Vec<TopicPartition>,
}

impl std::fmt::Debug for oneshot::Receiver<PollResult> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PollReceiver")
    }
}

impl crate::runtime::Client {
    /// A consumer over this client's connections.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{Offset, TopicPartition};
    ///
    /// let mut consumer = client.consumer();
    /// consumer.assign(vec![TopicPartition::new("orders", 0)], Offset::Beginning)?;
    /// # let _ = &mut consumer;
    /// # Ok(()) });
    /// ```
    #[must_use]
    pub fn consumer(&self) -> Consumer {
        Consumer {
            client: self.clone(),
            records: VecDeque::new(),
            errors: VecDeque::new(),
            waiting: None,
            closed: false,
            rebalances: VecDeque::new(),
            unacked: false,
            owned: BTreeSet::new(),
            handed: BTreeMap::new(),
            last: None,
            grouped: false,
            revoking: BTreeSet::new(),
            paused: BTreeSet::new(),
            held: VecDeque::new(),
            moved: BTreeSet::new(),
        }
    }
}

impl Consumer {
    fn command(&self, c: ConsumeCommand) -> Result<(), ClientError> {
        self.client.command(Command::Consume(c))
    }

    /// Joins the consumer group set with
    /// [`ClientBuilder::group_id`](crate::runtime::ClientBuilder::group_id) (or
    /// `config.consumer.group_id`) for these topics. The group protocol is
    /// `config.consumer.group_protocol`: KIP-848 (`Consumer`) where the coordinator
    /// speaks it, else the classic protocol with `config.consumer.assignors`. The
    /// partitions come and go by [`Rebalance`]s ([`rebalances`](Self::rebalances)).
    ///
    /// ```
    /// # #[cfg(all(feature = "tokio", feature = "sim"))]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use futures_lite::StreamExt;
    /// use kafka_sansio::client::{OffsetReset, ProducerRecord};
    /// use kafka_sansio::runtime::ClientBuilder;
    /// use kafka_sansio::sim::ClusterConfig;
    /// use kafka_sansio::sim_server::BackgroundServer;
    ///
    /// let server = BackgroundServer::start(ClusterConfig { base_port: 0, ..Default::default() })?;
    /// server.with_cluster(|cluster, _| cluster.create_topic("orders", 1, 1))?;
    /// let client = ClientBuilder::new(&server.bootstrap())
    ///     .group_id("orders-service")
    ///     .configure(|c| c.consumer.auto_offset_reset = OffsetReset::Earliest)
    ///     .build_tokio()
    ///     .await?;
    /// client.producer().send(ProducerRecord::new("orders", "first")).await?;
    ///
    /// let mut consumer = client.consumer();
    /// consumer.subscribe(["orders"])?;
    /// let record = consumer.next().await.unwrap()?;
    /// assert_eq!(record.record.value(), Some(&b"first"[..]));
    /// assert_eq!(consumer.rebalances()[0].assigned.len(), 1);
    /// consumer.commit().await?; // stores offset 1 for orders-0
    /// consumer.close().await?; // commits (auto-commit is on) and leaves the group
    /// # client.close().await;
    /// # Ok(()) }
    /// # #[cfg(not(all(feature = "tokio", feature = "sim")))]
    /// # fn main() {}
    /// ```
    ///
    /// # Errors
    /// The client is closed. A client without a group id reports
    /// [`ClientError::InvalidArgument`] as the stream's next item.
    pub fn subscribe<T: Into<String>>(
        &mut self,
        topics: impl IntoIterator<Item = T>,
    ) -> Result<(), ClientError> {
        let topics = topics.into_iter().map(Into::into).collect();
        self.grouped = true;
        self.command(ConsumeCommand::Subscribe(topics))
    }

    /// The rebalances received since the last call, oldest first. Each is
    /// acknowledged to the group when the application next asks for records.
    pub fn rebalances(&mut self) -> Vec<Rebalance> {
        self.rebalances.drain(..).collect()
    }

    /// The partitions the group gave this member, by the rebalances received.
    #[must_use]
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.owned.iter().cloned().collect()
    }

    /// Moves `last` into `handed`.
    fn flush_handed(&mut self) {
        if let Some((topic, partition, next)) = self.last.take() {
            self.handed
                .insert(TopicPartition::new(topic, partition), next);
        }
    }

    /// Notes that `r` is handed to the application: inline for a record of the
    /// partition handed last (nearly every one), out of line for another.
    #[inline]
    fn hand(&mut self, r: &ConsumedRecord) {
        let next = r.record.offset + 1;
        if let Some((topic, partition, at)) = &mut self.last
            && *partition == r.partition
            && (Arc::ptr_eq(topic, &r.topic) || **topic == *r.topic)
        {
            *at = next;
            return;
        }
        self.hand_another_partition(r, next);
    }

    #[inline(never)]
    fn hand_another_partition(&mut self, r: &ConsumedRecord, next: i64) {
        self.flush_handed();
        self.last = Some((r.topic.clone(), r.partition, next));
    }

    fn commit_offsets(&self) -> Vec<(TopicPartition, i64)> {
        let mut handed = self.handed.clone();
        if let Some((topic, partition, next)) = &self.last {
            handed.insert(TopicPartition::new(topic.clone(), *partition), *next);
        }
        handed
            .into_iter()
            .filter(|(tp, _)| {
                !self.grouped || self.owned.contains(tp) || self.revoking.contains(tp)
            })
            .collect()
    }

    /// Commits, for every partition it consumes (and those revoked by a rebalance
    /// not yet acknowledged), the offset after the last record handed to the
    /// application, and waits for the coordinator's answer. Commits never go
    /// backwards: a lower offset than one committed before is refused (after a
    /// [`seek`](Self::seek) back it is the application's call). Auto-commit
    /// (`config.consumer.enable_auto_commit`, on by default) stores on its timer
    /// what the application had been handed when this consumer last asked the
    /// client for more records, as Java's poll does: never a record it holds
    /// and has not handed out, so a process that dies skips nothing it was not
    /// given; a revoked partition is committed once the application took every
    /// record of it that was buffered. To commit only by hand, turn it off (the
    /// group then commits nothing on revoke either: commit when
    /// [`rebalances`](Self::rebalances) reports a revocation, before asking for
    /// more records).
    ///
    /// # Errors
    /// The commit failed (the first partition's error), or the client is closed.
    pub async fn commit(&self) -> Result<Vec<(TopicPartition, i64)>, ClientError> {
        self.commit_async()?.await
    }

    /// Starts the same commit as [`commit`](Self::commit) now; the returned future
    /// reports it and may be dropped (the commit goes on). Commits are sent in
    /// order.
    ///
    /// # Errors
    /// The client is closed.
    pub fn commit_async(
        &self,
    ) -> Result<
        impl Future<Output = Result<Vec<(TopicPartition, i64)>, ClientError>> + Send + 'static,
        ClientError,
    > {
        self.commit_handed(false)
    }

    /// Commits what was handed out, as [`commit_async`](Self::commit_async); with
    /// `only_auto`, only if the client auto-commits (what `close` stores), else
    /// nothing.
    fn commit_handed(
        &self,
        only_auto: bool,
    ) -> Result<
        impl Future<Output = Result<Vec<(TopicPartition, i64)>, ClientError>> + Send + 'static,
        ClientError,
    > {
        let offsets = self.commit_offsets();
        let (done, result) = async_channel::bounded(1);
        let empty = offsets.is_empty();
        if !empty {
            self.client.command(Command::Start {
                start: Box::new(move |c, now| {
                    if only_auto && !c.config().consumer.enable_auto_commit {
                        c.answered(Ok(OpOutput::Committed(Vec::new())))
                    } else {
                        c.commit(now, Some(offsets))
                    }
                }),
                done,
                token: self.client.next_token(),
            })?;
        }
        Ok(async move {
            if empty {
                return Ok(Vec::new());
            }
            match result.recv().await.unwrap_or(Err(ClientError::Closed))? {
                OpOutput::Committed(results) => committed(results),
                other => Err(ClientError::InvalidResponse {
                    api: crate::messages::ApiKey::OffsetCommit,
                    detail: format!("unexpected operation output {other:?}"),
                }),
            }
        })
    }

    /// Leaves the group: with auto-commit on (the default) it first commits what
    /// was handed to the application, the partitions are revoked (committed once
    /// more) and the coordinator is told, so the others take them over at once.
    /// With `enable_auto_commit` off nothing is committed, as with Java's `close`:
    /// the application commits what it processed ([`commit`](Self::commit), or a
    /// transaction's `send_offsets_to_transaction`), and records handed out
    /// since are read again by the partition's next owner. The client stays
    /// open. A static member (`group_instance_id`) leaves for good this way. It
    /// ends within the client's operation timeout: when the coordinator cannot be
    /// reached by then, the member stops anyway and `close` says why.
    ///
    /// # Errors
    /// The commit or the leave failed, or the client is closed.
    pub async fn close(mut self) -> Result<(), ClientError> {
        // Records fetched but never handed over go back: their partitions' positions
        // move back to the first of them, so the commits below (and the one on
        // revoke) store only what the application had.
        self.flush_handed();
        let mut back: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        // (Records held back for a paused partition were never handed out either.)
        for r in self.records.drain(..).chain(self.held.drain(..)) {
            let first = back
                .entry(TopicPartition::new(r.topic.clone(), r.partition))
                .or_insert(r.record.offset);
            *first = (*first).min(r.record.offset);
        }
        let unhanded: Vec<(TopicPartition, i64)> = back.into_iter().collect();
        for (tp, offset) in &unhanded {
            self.handed.insert(tp.clone(), *offset);
            self.command(ConsumeCommand::Seek(tp.clone(), Offset::At(*offset)))?;
        }
        // The commit and the leave start together, so that the whole close ends
        // within one operation timeout: the leave's revocation waits for the
        // commit anyway (commits go in order), and a leave that runs out of time
        // fails the commit with it.
        let committed = self.commit_handed(true)?;
        // Leaving revokes everything and nothing is left to hand over, so the
        // revocation needs no application to acknowledge it.
        // A revocation under way commits no further than what was handed.
        self.command(ConsumeCommand::AutoAck(unhanded))?;
        let left = self.client.run(|c, now| c.leave_group(now)).await;
        let committed = committed.await;
        self.closed = true;
        committed?;
        left.map(|_| ())
    }

    /// Consumes these partitions (no group), each from `start`.
    ///
    /// # Errors
    /// The client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    ///
    /// for v in ["a", "b", "c"] {
    ///     client.producer().send(ProducerRecord::new("orders", v).partition(0)).await?;
    /// }
    /// let mut consumer = client.consumer();
    /// // Partition 0 from offset 1; more partitions, or other starts, in later calls.
    /// consumer.assign(vec![TopicPartition::new("orders", 0)], Offset::At(1))?;
    /// assert_eq!(consumer.recv().await?.record.value(), Some(&b"b"[..]));
    /// # Ok(()) });
    /// ```
    pub fn assign(
        &mut self,
        partitions: Vec<TopicPartition>,
        start: Offset,
    ) -> Result<(), ClientError> {
        // A partition assigned anew starts unpaused in the client.
        self.unpause(&partitions);
        self.moving(&partitions);
        self.command(ConsumeCommand::Assign(partitions, start))
    }

    /// Stops consuming these partitions; nothing buffered for them comes out later.
    ///
    /// # Errors
    /// The client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{Offset, TopicPartition};
    ///
    /// let mut consumer = client.consumer();
    /// let partitions: Vec<_> = (0..3).map(|p| TopicPartition::new("orders", p)).collect();
    /// consumer.assign(partitions, Offset::End)?;
    /// consumer.unassign(vec![TopicPartition::new("orders", 2)])?; // 0 and 1 go on
    /// # Ok(()) });
    /// ```
    pub fn unassign(&mut self, partitions: Vec<TopicPartition>) -> Result<(), ClientError> {
        let of = |r: &ConsumedRecord| {
            partitions
                .iter()
                .any(|p| *p.topic == *r.topic && p.partition == r.partition)
        };
        self.records.retain(|r| !of(r));
        self.held.retain(|r| !of(r));
        for tp in &partitions {
            self.paused.remove(tp);
        }
        self.moving(&partitions);
        self.command(ConsumeCommand::Unassign(partitions))
    }

    /// Moves a partition's position; records buffered for it are dropped.
    ///
    /// # Errors
    /// The client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    ///
    /// for v in ["a", "b"] {
    ///     client.producer().send(ProducerRecord::new("orders", v).partition(0)).await?;
    /// }
    /// let mut consumer = client.consumer();
    /// let p0 = TopicPartition::new("orders", 0);
    /// consumer.assign(vec![p0.clone()], Offset::Beginning)?;
    /// assert_eq!(consumer.recv().await?.record.offset, 0);
    /// consumer.seek(p0, Offset::At(0))?; // read it again
    /// assert_eq!(consumer.recv().await?.record.offset, 0);
    /// # Ok(()) });
    /// ```
    pub fn seek(&mut self, partition: TopicPartition, to: Offset) -> Result<(), ClientError> {
        let of =
            |r: &ConsumedRecord| *r.topic == *partition.topic && r.partition == partition.partition;
        self.records.retain(|r| !of(r));
        self.held.retain(|r| !of(r));
        self.moving(std::slice::from_ref(&partition));
        self.command(ConsumeCommand::Seek(partition, to))
    }

    /// The application moves these partitions: records of theirs in the answer
    /// to a poll already sent are from before, and are not handed out.
    fn moving(&mut self, partitions: &[TopicPartition]) {
        if self.waiting.is_some() {
            self.moved.extend(partitions.iter().cloned());
        }
    }

    /// The first offset of every partition with records held back (paused), which
    /// the application has not had yet.
    fn unhanded(&self) -> Vec<(TopicPartition, i64)> {
        let mut first: Vec<(TopicPartition, i64)> = Vec::new();
        for r in &self.held {
            if !first
                .iter()
                .any(|(tp, _)| tp.partition == r.partition && *tp.topic == *r.topic)
            {
                first.push((
                    TopicPartition::new(r.topic.clone(), r.partition),
                    r.record.offset,
                ));
            }
        }
        first
    }

    /// Moves the records of paused partitions from `records` to `held`, in order.
    fn hold_paused(&mut self) {
        if self.paused.is_empty() {
            return;
        }
        let paused = &self.paused;
        let is_paused = |r: &ConsumedRecord| {
            paused
                .iter()
                .any(|p| *p.topic == *r.topic && p.partition == r.partition)
        };
        if !self.records.iter().any(is_paused) {
            return;
        }
        let (held, kept): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.records)
            .into_iter()
            .partition(is_paused);
        self.held.extend(held);
        self.records = kept;
    }

    /// Stops fetching these partitions and handing out their records, as Java's
    /// `pause`: [`recv`](Self::recv) returns none of them until
    /// [`resume`](Self::resume), after which they go on from the first record not
    /// handed out. A paused partition holds none of the consumer's byte budget.
    ///
    /// # Errors
    /// The client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{Offset, TopicPartition};
    ///
    /// let mut consumer = client.consumer();
    /// consumer.assign(vec![TopicPartition::new("orders", 0), TopicPartition::new("orders", 1)], Offset::Beginning)?;
    /// // Back-pressure: stop fetching partition 1 while its records are worked on.
    /// consumer.pause(vec![TopicPartition::new("orders", 1)])?;
    /// consumer.resume(vec![TopicPartition::new("orders", 1)])?;
    /// # Ok(()) });
    /// ```
    pub fn pause(&mut self, partitions: Vec<TopicPartition>) -> Result<(), ClientError> {
        self.paused.extend(partitions.iter().cloned());
        self.hold_paused();
        self.command(ConsumeCommand::Pause(partitions, true))
    }

    /// Fetches these partitions and hands out their records again.
    ///
    /// # Errors
    /// The client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    ///
    /// let mut consumer = client.consumer();
    /// let p0 = TopicPartition::new("orders", 0);
    /// consumer.assign(vec![p0.clone()], Offset::Beginning)?;
    /// consumer.pause(vec![p0.clone()])?;
    /// client.producer().send(ProducerRecord::new("orders", "paid").partition(0)).await?;
    /// consumer.resume(vec![p0])?; // fetching goes on where it stopped
    /// assert_eq!(consumer.recv().await?.record.offset, 0);
    /// # Ok(()) });
    /// ```
    pub fn resume(&mut self, partitions: Vec<TopicPartition>) -> Result<(), ClientError> {
        self.unpause(&partitions);
        self.command(ConsumeCommand::Pause(partitions, false))
    }

    /// Forgets the pause of these partitions; their held records go first (the
    /// client's position for them is past every one).
    fn unpause(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.paused.remove(tp);
        }
        if self.held.is_empty() {
            return;
        }
        let paused = &self.paused;
        let (still, resumed): (VecDeque<_>, VecDeque<_>) =
            std::mem::take(&mut self.held).into_iter().partition(|r| {
                paused
                    .iter()
                    .any(|p| *p.topic == *r.topic && p.partition == r.partition)
            });
        self.held = still;
        let rest = std::mem::take(&mut self.records);
        self.records = resumed;
        self.records.extend(rest);
    }

    /// The next record, or the next error (the consumer goes on after it).
    ///
    /// Cancel-safe: a record is taken only when it is handed out, so this future
    /// can be dropped (a `select!` branch, `tokio::time::timeout`) without losing
    /// one; a fetch under way goes on and its records wait for the next call.
    ///
    /// # Errors
    /// Consuming a partition failed, or the client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    ///
    /// client.producer().send(ProducerRecord::new("orders", "paid").key("order-17").partition(0)).await?;
    /// let mut consumer = client.consumer();
    /// consumer.assign(vec![TopicPartition::new("orders", 0)], Offset::Beginning)?;
    /// let r = consumer.recv().await?;
    /// assert_eq!((&*r.topic, r.partition, r.record.offset), ("orders", 0, 0));
    /// assert_eq!(r.record.key(), Some(&b"order-17"[..]));
    /// # Ok(()) });
    /// ```
    pub async fn recv(&mut self) -> Result<ConsumedRecord, ClientError> {
        std::future::poll_fn(|cx| self.poll_item(cx))
            .await
            .unwrap_or(Err(ClientError::Closed))
    }

    /// The position of each partition this consumer reads: the offset of the next
    /// record it will hand out (as Java's `position`). A position moves past
    /// records nobody is handed, transaction markers and (at read_committed)
    /// aborted records, so it says when a partition is read to an end even where
    /// the last record's offset cannot: a log written by a transactional producer
    /// ends with a marker. Partitions whose position is not known yet (a reset
    /// under way) are left out.
    ///
    /// # Errors
    /// The client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{Offset, TopicPartition};
    ///
    /// // Three records written in a transaction, then its commit marker at offset 3.
    /// server.with_cluster(|c, now| {
    ///     c.write_in_transaction("tx", "orders", 0, &[b"a", b"b", b"c"], now)?;
    ///     c.complete_transaction("tx", true, now);
    ///     Ok::<_, kafka_sansio::sim::SimError>(())
    /// })?;
    /// let mut consumer = client.consumer();
    /// let p0 = TopicPartition::new("orders", 0);
    /// consumer.assign(vec![p0.clone()], Offset::Beginning)?;
    /// let mut last = 0;
    /// while last < 2 {
    ///     last = consumer.recv().await?.record.offset;
    /// }
    /// // The last record is at 2, but the log ends at 4: the position says so.
    /// let mut position = 0;
    /// while position < 4 {
    ///     position = consumer.positions().await?.into_iter().find(|(tp, _)| *tp == p0).map_or(0, |(_, o)| o);
    /// }
    /// # Ok(()) });
    /// ```
    pub async fn positions(&mut self) -> Result<Vec<(TopicPartition, i64)>, ClientError> {
        let (tx, rx) = async_channel::bounded(1);
        self.client.command(Command::Positions(tx))?;
        let mut positions = rx.recv().await.map_err(|_| ClientError::Closed)?;
        // The driver answered a waiting poll before it answered this: its records
        // are behind the positions, so they are taken in first.
        if let Some(waiting) = self.waiting.as_mut() {
            let answer = std::future::poll_fn(|cx| Pin::new(&mut *waiting).poll(cx)).await;
            self.waiting = None;
            self.take_answer(answer);
        }
        // A record still here (held for a pause, or not handed out yet) is the
        // partition's next.
        for (tp, position) in &mut positions {
            if let Some(r) = self
                .held
                .iter()
                .chain(&self.records)
                .filter(|r| r.partition == tp.partition && *r.topic == *tp.topic)
                .min_by_key(|r| r.record.offset)
            {
                *position = (*position).min(r.record.offset);
            }
        }
        Ok(positions)
    }

    /// Every record buffered now, or waits for some (or an error).
    ///
    /// # Errors
    /// Consuming a partition failed, or the client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    ///
    /// let producer = client.producer();
    /// let sent: Vec<_> = (0..5).map(|i| producer.send(ProducerRecord::new("orders", format!("{i}")).partition(0))).collect();
    /// producer.flush().await?;
    /// # drop(sent);
    /// let mut consumer = client.consumer();
    /// consumer.assign(vec![TopicPartition::new("orders", 0)], Offset::Beginning)?;
    /// let mut got = Vec::new();
    /// while got.len() < 5 {
    ///     got.extend(consumer.recv_batch().await?); // one or more records
    /// }
    /// assert_eq!(got.iter().map(|r| r.record.offset).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    /// # Ok(()) });
    /// ```
    pub async fn recv_batch(&mut self) -> Result<Vec<ConsumedRecord>, ClientError> {
        let first = self.recv().await?;
        let mut out = Vec::with_capacity(self.records.len() + 1);
        out.push(first);
        out.extend(self.records.drain(..));
        // what a commit stores: after the last of them
        for r in &out[1..] {
            self.hand(r);
        }
        Ok(out)
    }

    /// The next record or error: a record buffered (the common case) is taken
    /// here, everything else in [`poll_refill`](Self::poll_refill), whose frame
    /// (its locals, the registers it saves) a buffered record then does not pay.
    #[inline]
    fn poll_item(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<ConsumedRecord, ClientError>>> {
        if self.errors.is_empty()
            && let Some(r) = self.records.pop_front()
        {
            self.hand(&r);
            return Poll::Ready(Some(Ok(r)));
        }
        self.poll_refill(cx)
    }

    /// [`poll_item`](Self::poll_item) when no record is buffered or an error
    /// waits: errors first, then records, then a poll of the driver.
    #[inline(never)]
    fn poll_refill(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<ConsumedRecord, ClientError>>> {
        loop {
            if let Some(e) = self.errors.pop_front() {
                return Poll::Ready(Some(Err(e)));
            }
            if let Some(r) = self.records.pop_front() {
                self.hand(&r);
                return Poll::Ready(Some(Ok(r)));
            }
            if self.closed {
                return Poll::Ready(None);
            }
            if self.waiting.is_none() {
                // Everything handed over before is taken: the rebalances received
                // may go on (revoked partitions are committed where they ended).
                if self.unacked {
                    self.unacked = false;
                    self.flush_handed();
                    for tp in std::mem::take(&mut self.revoking) {
                        if !self.owned.contains(&tp) {
                            self.handed.remove(&tp);
                        }
                    }
                    if self
                        .command(ConsumeCommand::AckRebalance(self.unhanded()))
                        .is_err()
                    {
                        self.closed = true;
                        continue;
                    }
                }
                let (reply, rx) = oneshot::channel();
                // The emptied queue's allocation goes along to be filled again.
                let buf = Vec::from(std::mem::take(&mut self.records));
                if self
                    .client
                    .command(Command::Poll {
                        max: POLL_BATCH,
                        buf,
                        reply,
                        unhanded: self.unhanded(),
                    })
                    .is_err()
                {
                    self.closed = true;
                    continue;
                }
                self.waiting = Some(rx);
            }
            let Some(rx) = self.waiting.as_mut() else {
                continue;
            };
            match Pin::new(rx).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(answer) => {
                    self.waiting = None;
                    self.take_answer(answer);
                }
            }
        }
    }

    /// Takes in the driver's answer to a poll: its records and rebalances, or
    /// its errors.
    fn take_answer(&mut self, answer: Option<PollResult>) {
        let moved = std::mem::take(&mut self.moved);
        match answer {
            Some(Ok((mut records, rebalances))) => {
                if !moved.is_empty() {
                    records.retain(|r| {
                        !moved
                            .iter()
                            .any(|tp| tp.partition == r.partition && *tp.topic == *r.topic)
                    });
                }
                self.flush_handed();
                for r in &rebalances {
                    for tp in &r.revoked {
                        self.owned.remove(tp);
                        self.revoking.insert(tp.clone());
                    }
                    for tp in &r.lost {
                        self.owned.remove(tp);
                        self.handed.remove(tp);
                    }
                    self.owned.extend(r.assigned.iter().cloned());
                    // A partition that moves on is no longer paused here
                    // (nor one assigned anew: the client starts it unpaused).
                    for tp in r.revoked.iter().chain(&r.lost).chain(&r.assigned) {
                        if self.paused.remove(tp) {
                            self.held.retain(|h| {
                                !(*h.topic == *tp.topic && h.partition == tp.partition)
                            });
                        }
                    }
                }
                self.unacked |= !rebalances.is_empty();
                self.rebalances.extend(rebalances);
                if self.records.is_empty() {
                    // no copy: the queue takes the Vec's allocation
                    self.records = VecDeque::from(records);
                } else {
                    self.records.extend(records);
                }
                self.hold_paused();
            }
            Some(Err(errors)) => {
                if errors.contains(&ClientError::Closed) {
                    self.closed = true;
                }
                self.errors
                    .extend(errors.into_iter().filter(|e| *e != ClientError::Closed));
            }
            None => self.closed = true,
        }
    }
}

/// The committed offsets, or the first partition's error.
fn committed(results: Vec<CommittedOffset>) -> Result<Vec<(TopicPartition, i64)>, ClientError> {
    results
        .into_iter()
        .map(|r| r.offset.map(|o| (r.partition, o)))
        .collect()
}

impl Stream for Consumer {
    type Item = Result<ConsumedRecord, ClientError>;

    #[inline]
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_item(cx)
    }
}
