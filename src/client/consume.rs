//! The consumer's place in the client: assignment, seeks, polling, and the glue that
//! gives the fetcher metadata, connections, offsets and replies.

use std::time::Instant;

use crate::connection::{AnyRequest, RequestOptions};
use crate::messages::{ApiKey, FetchRequest};

use super::consumer::{
    ConsumedRecord, Consumer, FetchInFlight, Note, Offset, PartitionView, TopicPartition, Want,
};
use super::metadata::Leader;
use super::op::{Lane, Reply, Target, Versions, decode, version};
use super::ops::offsets::EpochEnd;
use super::ops::partition::{IsolationLevel, OffsetSpec};
use super::{Client, ClientError, ConnState, Endpoint, Event, Internal, OpOutput, Owner};

impl Client {
    pub(super) fn consumer_mut(&mut self) -> &mut Consumer {
        let config = self.config.consumer.clone();
        self.consumer
            .get_or_insert_with(|| Box::new(Consumer::new(config)))
    }

    /// Assigns partitions to this client (manual assignment, no group): each starts
    /// at `start` (`Offset::Committed` reads the group's committed offset when
    /// [`ConsumerConfig::group_id`](super::ConsumerConfig::group_id) is set, else
    /// follows the reset policy). Records then arrive through
    /// [`poll_records`](Self::poll_records).
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Client, ClientConfig, Offset, ProducerRecord, TopicPartition};
    /// use kafka_sansio::sim::{ClusterConfig, NetworkConfig, Simulation};
    ///
    /// # #[allow(clippy::disallowed_methods)]
    /// let mut sim = Simulation::new(1, ClusterConfig::default(), NetworkConfig::default(), std::time::Instant::now());
    /// sim.cluster().create_topic("t", 1, 1).unwrap();
    /// let host = sim.add_client(Client::new(ClientConfig::new(&sim.bootstrap()).unwrap(), sim.now()));
    /// let now = sim.now();
    /// for i in 0..3 {
    ///     sim.client(host).send(now, ProducerRecord::new("t", format!("r{i}")).partition(0)).unwrap();
    /// }
    /// sim.client(host).assign(now, vec![TopicPartition::new("t", 0)], Offset::Beginning);
    /// let mut got = Vec::new();
    /// sim.run_until(Duration::from_secs(5), |sim| {
    ///     let now = sim.now();
    ///     got.extend(sim.client(host).poll_records(now, 100));
    ///     got.len() == 3
    /// });
    /// assert_eq!(got.iter().map(|r| r.record.offset).collect::<Vec<_>>(), [0, 1, 2]);
    /// # }
    /// ```
    pub fn assign(&mut self, now: Instant, partitions: Vec<TopicPartition>, start: Offset) {
        self.advance(now);
        self.consumer_mut().assign(partitions, start);
        self.drive(now);
    }

    /// Stops consuming these partitions; records buffered for them are dropped at
    /// once, so no later poll returns them.
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, Offset, TopicPartition};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// let (p0, p1) = (TopicPartition::new("orders", 0), TopicPartition::new("orders", 1));
    /// client.assign(now, vec![p0.clone(), p1.clone()], Offset::Beginning);
    /// client.unassign(now, &[p1]);
    /// assert_eq!(client.assignment(), vec![p0]);
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn unassign(&mut self, now: Instant, partitions: &[TopicPartition]) {
        self.advance(now);
        self.consumer_mut().unassign(partitions);
        self.drive(now);
    }

    /// Partitions consumed now.
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, Offset, TopicPartition};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// assert!(client.assignment().is_empty());
    /// client.assign(now, vec![TopicPartition::new("orders", 2)], Offset::End);
    /// assert_eq!(client.assignment(), vec![TopicPartition::new("orders", 2)]);
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.consumer
            .as_ref()
            .map_or_else(Vec::new, |c| c.assignment())
    }

    /// Moves a partition's position (an offset, the beginning, the end, a time, or
    /// the committed offset); buffered records of it are dropped. Returns whether
    /// the partition is assigned.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Offset, Record, TopicPartition};
    ///
    /// let now = sim.now();
    /// let records = vec![Record::new("a"), Record::new("b"), Record::new("c")];
    /// let op = sim.client(host).produce(now, "orders", 0, records, Default::default());
    /// sim.run_until_done(host, op, Duration::from_secs(5))?;
    /// let now = sim.now();
    /// let p0 = TopicPartition::new("orders", 0);
    /// sim.client(host).assign(now, vec![p0.clone()], Offset::Beginning);
    /// assert!(sim.client(host).seek(now, &p0, Offset::At(2))); // assigned: moved
    /// assert!(!sim.client(host).seek(now, &TopicPartition::new("orders", 1), Offset::At(0)));
    /// let mut got = Vec::new();
    /// sim.run_until(Duration::from_secs(5), |sim| {
    ///     let now = sim.now();
    ///     got.extend(sim.client(host).poll_records(now, 100));
    ///     !got.is_empty()
    /// });
    /// assert_eq!(got[0].record.offset, 2);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seek(&mut self, now: Instant, partition: &TopicPartition, to: Offset) -> bool {
        self.advance(now);
        let moved = self.consumer_mut().seek(partition, to);
        if let Some(g) = self.group.as_mut() {
            g.on_seek(partition);
        }
        self.drive(now);
        moved
    }

    /// Stops fetching these partitions and handing out their records (as Java's
    /// `pause`): polls return none of them until [`resume`](Self::resume). What was
    /// fetched for them and not yet polled is dropped, so that a paused partition
    /// holds none of the byte budget, and is fetched again after the resume, from
    /// the position.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    ///
    /// let now = sim.now();
    /// sim.client(host).send(now, ProducerRecord::new("orders", "a").partition(0))?;
    /// let p0 = TopicPartition::new("orders", 0);
    /// sim.client(host).assign(now, vec![p0.clone()], Offset::Beginning);
    /// sim.client(host).pause(now, &[p0]);
    /// sim.run_for(Duration::from_secs(2));
    /// let now = sim.now();
    /// assert!(sim.client(host).poll_records(now, 100).is_empty()); // paused: nothing fetched
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause(&mut self, now: Instant, partitions: &[TopicPartition]) {
        self.consumer_mut().pause(partitions, true);
        self.drive(now);
    }

    /// Fetches these partitions and hands out their records again.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    ///
    /// let now = sim.now();
    /// sim.client(host).send(now, ProducerRecord::new("orders", "a").partition(0))?;
    /// let p0 = TopicPartition::new("orders", 0);
    /// sim.client(host).assign(now, vec![p0.clone()], Offset::Beginning);
    /// sim.client(host).pause(now, &[p0.clone()]);
    /// sim.client(host).resume(now, &[p0]);
    /// let mut got = Vec::new();
    /// sim.run_until(Duration::from_secs(5), |sim| {
    ///     let now = sim.now();
    ///     got.extend(sim.client(host).poll_records(now, 100));
    ///     !got.is_empty()
    /// });
    /// assert_eq!(got.len(), 1);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resume(&mut self, now: Instant, partitions: &[TopicPartition]) {
        self.consumer_mut().pause(partitions, false);
        self.drive(now);
    }

    /// The next offset to consume of each assigned partition with a known
    /// position, and the leader epoch of the last record consumed: what a commit
    /// would store.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    ///
    /// let now = sim.now();
    /// sim.client(host).send(now, ProducerRecord::new("orders", "a").partition(0))?;
    /// sim.client(host).assign(now, vec![TopicPartition::new("orders", 0)], Offset::Beginning);
    /// sim.run_until(Duration::from_secs(5), |sim| {
    ///     let now = sim.now();
    ///     !sim.client(host).poll_records(now, 100).is_empty()
    /// });
    /// let (partition, next, _epoch) = sim.client(host).positions().remove(0);
    /// assert_eq!((partition.partition, next), (0, 1)); // the next offset to read
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn positions(&self) -> Vec<(TopicPartition, i64, Option<i32>)> {
        self.consumer
            .as_ref()
            .map_or_else(Vec::new, |c| c.positions())
    }

    /// Up to `max` fetched records, in offset order per partition; positions move
    /// past them. Polling frees budget, so fetches may follow.
    ///
    /// In a consumer group a poll also says the application is alive: records
    /// left waiting for
    /// [`max_poll_interval`](super::ConsumerConfig::max_poll_interval) without a
    /// poll make the member leave the group (an [`Event::ConsumerError`] with
    /// [`ClientError::PollIntervalExceeded`]
    /// and the partitions reported lost), and the next poll joins it again.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Event, Offset, ProducerRecord, TopicPartition};
    ///
    /// let now = sim.now();
    /// sim.client(host).send(now, ProducerRecord::new("orders", "hello").partition(1))?;
    /// sim.client(host).assign(now, vec![TopicPartition::new("orders", 1)], Offset::Beginning);
    /// // Event::RecordsReady says when polling has something to give.
    /// sim.run_until(Duration::from_secs(5), |sim| {
    ///     sim.client_events(host).any(|e| matches!(e, Event::RecordsReady))
    /// });
    /// let now = sim.now();
    /// let records = sim.client(host).poll_records(now, 10);
    /// assert_eq!(records[0].record.value(), Some(&b"hello"[..]));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_records(&mut self, now: Instant, max: usize) -> Vec<ConsumedRecord> {
        let mut out = Vec::new();
        self.poll_records_into(now, max, &mut out);
        out
    }

    /// As [`poll_records`](Self::poll_records), appending up to `max` records to
    /// `out`: a caller polling in a loop reuses one allocation.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    ///
    /// let now = sim.now();
    /// for v in ["a", "b", "c"] {
    ///     sim.client(host).send(now, ProducerRecord::new("orders", v).partition(0))?;
    /// }
    /// sim.client(host).assign(now, vec![TopicPartition::new("orders", 0)], Offset::Beginning);
    /// let mut got = Vec::with_capacity(100);
    /// sim.run_until(Duration::from_secs(5), |sim| {
    ///     let now = sim.now();
    ///     sim.client(host).poll_records_into(now, 2, &mut got); // at most 2 a call
    ///     got.len() == 3
    /// });
    /// assert_eq!(got.iter().map(|r| r.record.offset).collect::<Vec<_>>(), [0, 1, 2]);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_records_into(&mut self, now: Instant, max: usize, out: &mut Vec<ConsumedRecord>) {
        self.advance(now);
        if let Some(g) = self.group.as_deref_mut() {
            g.app_polled();
        }
        if let Some(c) = self.consumer.as_mut() {
            let had = out.len();
            let limit = had.saturating_add(max);
            c.poll(limit, out);
            if out.len() > had
                && let Some(g) = self.group.as_deref_mut()
            {
                g.records_polled();
            }
            // Records left for a next poll wait from now.
            let more = out.len() >= limit && c.has_ready();
            self.emit_consumer_notes();
            self.poll_due = more.then(|| now + self.config.consumer.max_poll_interval);
        }
        self.drive(now);
    }

    /// Bytes of fetched records held or reserved now (within
    /// [`ConsumerConfig::buffer_max_bytes`](super::ConsumerConfig::buffer_max_bytes)).
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig};
    /// # #[allow(clippy::disallowed_methods)]
    /// let client = Client::new(ClientConfig::new("localhost:9092")?, std::time::Instant::now());
    /// assert_eq!(client.consumer_buffered_bytes(), 0);
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn consumer_buffered_bytes(&self) -> usize {
        self.consumer.as_ref().map_or(0, |c| c.buffered_bytes())
    }

    /// Lets the fetcher move: positions, validations, fetches.
    pub(crate) fn drive_consumer(&mut self, now: Instant) {
        let Some(mut c) = self.consumer.take() else {
            return;
        };
        let mut wants = Vec::new();
        {
            let metadata = &self.metadata;
            let view = |tp: &TopicPartition| -> Option<PartitionView> {
                let t = metadata.topic(&tp.topic)?;
                let (leader, leader_epoch) = match metadata.leader(&tp.topic, tp.partition) {
                    Leader::Known { node, epoch } => (Some(node), epoch),
                    _ => (None, -1),
                };
                Some(PartitionView {
                    leader,
                    leader_epoch,
                    topic_id: t.id,
                })
            };
            let slots = &self.slots;
            let by_endpoint = &self.by_endpoint;
            let fetch_slot = |node: i32| {
                by_endpoint
                    .get(&(Endpoint::Node(node), Lane::Fetch))
                    .and_then(|id| slots.get(id))
            };
            let node_ready = |node: i32| fetch_slot(node).is_some_and(|s| s.is_ready());
            let fetch_version = |node: i32| {
                fetch_slot(node).and_then(|s| match &s.state {
                    ConnState::Open { conn, .. } => conn
                        .broker_versions()
                        .and_then(|v: &Versions| version(v, ApiKey::Fetch)),
                    ConnState::Connecting { .. } => None,
                })
            };
            c.drive(now, &view, &node_ready, &fetch_version, &mut wants);
        }
        self.consumer = Some(c);
        for want in wants {
            match want {
                Want::Metadata(topic) => self.want_metadata(now, Some(topic), true),
                Want::Connect(node) => self.connect_lane(now, node, Lane::Fetch),
                Want::Fetch {
                    node,
                    request,
                    version_cap,
                    flight,
                    hold,
                } => {
                    if let Err(flight) =
                        self.send_fetch(now, node, request, version_cap, hold, flight)
                        && let Some(c) = self.consumer.as_mut()
                    {
                        c.unfetch(flight);
                    }
                }
                Want::ListOffsets {
                    tp,
                    spec,
                    generation,
                } => {
                    let spec = match spec {
                        -2 => OffsetSpec::Earliest,
                        -1 => OffsetSpec::Latest,
                        t => OffsetSpec::Timestamp(t),
                    };
                    // At the consumer's isolation level: read_committed starts a
                    // reset or a seek to the end at the last stable offset.
                    let isolation = self
                        .consumer
                        .as_ref()
                        .map_or(IsolationLevel::ReadUncommitted, |c| c.config.isolation);
                    let op = super::ops::partition::ListOffsets::new(
                        tp.topic.clone(),
                        tp.partition,
                        spec,
                        isolation,
                    );
                    let target = Target::Leader {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                    };
                    self.start_entry(
                        now,
                        Box::new(op),
                        vec![target],
                        None,
                        Some(Internal::ConsumerOffset(tp, generation)),
                    );
                }
                Want::Validate {
                    tp,
                    epoch,
                    generation,
                } => {
                    let op = EpochEnd {
                        tp: tp.clone(),
                        epoch,
                        result: None,
                    };
                    let target = Target::Leader {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                    };
                    self.start_entry(
                        now,
                        Box::new(op),
                        vec![target],
                        None,
                        Some(Internal::Validate(tp, generation)),
                    );
                }
                Want::Committed(tps) => {
                    let Some(group) = self.config.consumer.group_id.clone() else {
                        continue;
                    };
                    let stable = self
                        .consumer
                        .as_ref()
                        .is_some_and(|c| c.config.isolation == IsolationLevel::ReadCommitted);
                    let (op, targets) =
                        super::ops::offsets::committed_op(&group, tps.clone(), stable);
                    self.start_entry(now, op, targets, None, Some(Internal::Committed(tps)));
                }
            }
        }
        self.emit_consumer_notes();
    }

    /// Writes a Fetch on the broker's fetch connection.
    fn send_fetch(
        &mut self,
        now: Instant,
        node: i32,
        request: FetchRequest,
        version_cap: i16,
        hold: std::time::Duration,
        flight: FetchInFlight,
    ) -> Result<(), FetchInFlight> {
        // Room for the whole response at once (read without copies).
        let expected = usize::try_from(request.max_bytes)
            .unwrap_or(0)
            .saturating_add(super::ops::partition::FETCH_RESPONSE_OVERHEAD);
        let mut options = RequestOptions::timeout(self.config.connection.request_timeout + hold);
        options.max_version = Some(version_cap);
        options.expected_response_bytes = Some(expected);
        let sent = self.send_on_lane(
            now,
            node,
            Lane::Fetch,
            AnyRequest::new(request),
            |_| Some(options),
            Owner::Fetch,
        );
        match sent {
            Some(n) => {
                self.fetch_requests.insert(n, flight);
                Ok(())
            }
            None => Err(flight),
        }
    }

    /// A Fetch ended.
    pub(crate) fn fetch_reply(
        &mut self,
        req: u64,
        now: Instant,
        reply: Result<Reply, ClientError>,
    ) {
        let Some(flight) = self.fetch_requests.remove(&req) else {
            return;
        };
        let Some(mut c) = self.consumer.take() else {
            return;
        };
        let decoded = match reply {
            Ok(r) => decode::<FetchRequest>(&r),
            Err(e) => Err(e),
        };
        let mut stale = Vec::new();
        {
            let metadata = &self.metadata;
            let names = |id| {
                metadata
                    .topics()
                    .find(|t| t.id == id)
                    .map(|t| t.name.clone())
            };
            c.on_fetch(flight, decoded, &names, &mut stale);
        }
        self.consumer = Some(c);
        for tp in stale {
            self.metadata.invalidate_leader(&tp.topic, tp.partition);
            self.want_metadata(now, Some(tp.topic.clone()), true);
        }
        self.emit_consumer_notes();
    }

    /// An internal consumer operation ended.
    pub(super) fn consumer_op_done(
        &mut self,
        internal: Internal,
        result: Result<OpOutput, ClientError>,
    ) {
        let Some(c) = self.consumer.as_mut() else {
            return;
        };
        match internal {
            Internal::ConsumerOffset(tp, generation) => {
                let r = result.and_then(|o| match o {
                    OpOutput::Offset { offset, .. } => Ok(offset),
                    _ => Err(ClientError::Closed),
                });
                c.on_offset(&tp, generation, r);
            }
            Internal::Validate(tp, generation) => {
                let r = result.and_then(|o| match o {
                    OpOutput::Offset { offset, .. } => Ok(offset),
                    _ => Err(ClientError::Closed),
                });
                c.on_validated(&tp, generation, r);
            }
            Internal::Committed(tps) => match result {
                Ok(OpOutput::Committed(offsets)) => {
                    let mut ok = Vec::new();
                    for o in offsets {
                        match o.offset {
                            Ok(offset) => ok.push((o.partition, offset)),
                            Err(e) => {
                                c.committed_failed(std::slice::from_ref(&o.partition));
                                c.notes.push_back(Note::Error {
                                    partition: Some(o.partition),
                                    error: e,
                                });
                            }
                        }
                    }
                    c.set_committed(ok);
                }
                Ok(_) => c.committed_failed(&tps),
                Err(e) => {
                    c.committed_failed(&tps);
                    if !e.is_retriable() {
                        c.notes.push_back(Note::Error {
                            partition: None,
                            error: e,
                        });
                    }
                }
            },
            _ => {}
        }
        self.emit_consumer_notes();
    }

    fn emit_consumer_notes(&mut self) {
        let Some(c) = self.consumer.as_mut() else {
            return;
        };
        let mut ready = false;
        for note in c.notes.drain(..) {
            match note {
                Note::RecordsReady => ready = true,
                Note::Error { partition, error } => {
                    self.events
                        .push_back(Event::ConsumerError { partition, error });
                }
            }
        }
        if ready {
            if self.poll_due.is_none() {
                self.poll_due = Some(self.now + self.config.consumer.max_poll_interval);
            }
            if !self.events.iter().any(|e| matches!(e, Event::RecordsReady)) {
                self.events.push_back(Event::RecordsReady);
            }
        }
    }
}
