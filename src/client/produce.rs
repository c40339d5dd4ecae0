//! The producer's place in the client: `send`, `flush`, and the glue that gives the
//! producer metadata, connections and replies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::messages::{ApiKey, ProduceRequest};

use super::backoff::backoff;
use super::metadata::{Leader, Metadata};
use super::op::{Lane, Reply, Target, decode, version};
use super::ops::transactions::InitProducerId;
use super::producer::{
    Producer, ProducerRecord, QueuedRecord, RecordId, RecordMetadata, SendError, TopicViewOwned,
    Want, WrittenBatch,
};
use super::{Client, ClientError, Endpoint, Event, Internal, Owner};
use crate::connection::{AnyRequest, RequestOptions};

/// What [`Client::take_deliveries`] hands over: one record's result, or a written
/// batch's (its records' reports built by the taker, not one by one here).
#[cfg_attr(
    not(any(feature = "tokio", feature = "smol", feature = "blocking")),
    allow(dead_code)
)]
pub(crate) enum Delivered<'a> {
    One(RecordId, Result<RecordMetadata, ClientError>),
    Batch(&'a WrittenBatch),
}

impl Client {
    /// Hands a record to the producer: it is batched with others for its partition
    /// (the partitioner picks one if the record names none), sent after
    /// [`ProducerConfig::linger`](super::ProducerConfig::linger) or once its batch is
    /// full, retried as needed, and reported by exactly one
    /// [`Event::Delivered`] with the returned id.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Client, ClientConfig, Event, ProducerRecord};
    /// use kafka_sansio::sim::{ClusterConfig, NetworkConfig, Simulation};
    ///
    /// # #[allow(clippy::disallowed_methods)]
    /// let mut sim = Simulation::new(1, ClusterConfig::default(), NetworkConfig::default(), std::time::Instant::now());
    /// sim.cluster().create_topic("orders", 4, 1).unwrap();
    /// let host = sim.add_client(Client::new(ClientConfig::new(&sim.bootstrap()).unwrap(), sim.now()));
    /// let now = sim.now();
    /// let id = sim.client(host).send(now, ProducerRecord::new("orders", "paid").key("order-17")).unwrap();
    /// sim.run_for(Duration::from_secs(1));
    /// let delivered = sim.client_events(host).find_map(|e| match e {
    ///     Event::Delivered { record, result } if record == id => Some(result),
    ///     _ => None,
    /// });
    /// let meta = delivered.unwrap().unwrap();
    /// assert_eq!((meta.partition, meta.offset), (kafka_sansio::client::partition_for_key(b"order-17", 4), Some(0)));
    /// # }
    /// ```
    ///
    /// # Errors
    /// Refused at once, without an event: the byte budget is full
    /// ([`SendError::BufferFull`]), the record is larger than a batch may be, or the
    /// producer configuration is invalid.
    pub fn send(&mut self, now: Instant, record: ProducerRecord) -> Result<RecordId, SendError> {
        self.try_send(now, record).map_err(|(e, _)| e)
    }

    /// As [`send`](Self::send), but a refused record comes back with the error, so
    /// it can be sent again once the buffer has room.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, ProducerRecord, SendError};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut config = ClientConfig::new("localhost:9092")?;
    /// config.producer.buffer_max_bytes = 1000;
    /// let mut client = Client::new(config, now);
    /// let big = ProducerRecord::new("orders", vec![0u8; 600]);
    /// client.try_send(now, big.clone()).unwrap();
    /// // The second does not fit: it comes back, to be sent once deliveries free room.
    /// let (error, back) = client.try_send(now, big).unwrap_err();
    /// assert!(matches!(error, SendError::BufferFull { .. }));
    /// assert_eq!(back.value.map(|v| v.len()), Some(600));
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[allow(clippy::result_large_err)] // the record comes back by value, to be sent again
    pub fn try_send(
        &mut self,
        now: Instant,
        record: ProducerRecord,
    ) -> Result<RecordId, (SendError, ProducerRecord)> {
        let id = self.accept_record(now, record)?;
        self.drive_producer(now);
        Ok(id)
    }

    /// Takes a record into the producer's buffers without driving the producer: a
    /// caller handing over many records at once drives it once after the last
    /// ([`drive_producer`](Self::drive_producer)), instead of once per record.
    #[allow(clippy::result_large_err)] // as try_send
    pub(crate) fn accept_record(
        &mut self,
        now: Instant,
        record: ProducerRecord,
    ) -> Result<RecordId, (SendError, ProducerRecord)> {
        self.advance(now);
        if self.closed {
            return Err((SendError::Closed, record));
        }
        self.producer_mut().send(now, record)
    }

    /// As [`accept_record`](Self::accept_record), with the record borrowed from a
    /// queue (encoded when taken, or kept while its topic's metadata is unknown: its
    /// bytes copied, its key and value handles shared) and named by the caller's
    /// `id` (the facades number records themselves). Ids must grow and never repeat.
    /// Returns the bytes the record takes of the producer's budget. The record
    /// fails at `deadline` if it is not delivered by then, and a batch it opens
    /// lingers from `arrived` (a facade's record counts both from when it was
    /// handed over, not from now).
    #[cfg_attr(
        not(any(feature = "tokio", feature = "smol", feature = "blocking")),
        allow(dead_code)
    )]
    pub(crate) fn accept_queued(
        &mut self,
        now: Instant,
        arrived: Instant,
        record: &QueuedRecord<'_>,
        id: RecordId,
        deadline: Instant,
    ) -> Result<usize, SendError> {
        debug_assert!(arrived <= now, "handed over after now");
        self.advance(now);
        if self.closed {
            return Err(SendError::Closed);
        }
        self.producer_mut()
            .send_queued(arrived, record, id, deadline)
    }

    #[allow(dead_code)]
    pub(crate) fn producer_dump(&self, now: Instant) -> String {
        self.producer
            .as_ref()
            .map_or(String::new(), |p| p.dump(now))
            + &format!(
                "produce_requests {:?}",
                self.produce_requests.keys().collect::<Vec<_>>()
            )
    }

    pub(crate) fn producer_mut(&mut self) -> &mut Producer {
        let (seed, config) = (self.config.seed, &self.config.producer);
        self.producer
            .get_or_insert_with(|| Box::new(Producer::new(config.clone(), seed)))
    }

    /// Deliveries are taken with [`take_deliveries`](Self::take_deliveries) from now
    /// on, instead of one [`Event::Delivered`] each.
    #[cfg_attr(
        not(any(feature = "tokio", feature = "smol", feature = "blocking")),
        allow(dead_code)
    )]
    pub(crate) fn report_deliveries_in_bulk(&mut self) {
        self.bulk_deliveries = true;
    }

    /// Whether deliveries wait for [`take_deliveries`](Self::take_deliveries).
    #[cfg_attr(
        not(any(feature = "tokio", feature = "smol", feature = "blocking")),
        allow(dead_code)
    )]
    pub(crate) fn has_deliveries(&self) -> bool {
        self.producer
            .as_ref()
            .is_some_and(|p| !p.deliveries.is_empty() || !p.written.is_empty())
    }

    /// Hands every finished record's delivery to `f` (with
    /// [`report_deliveries_in_bulk`](Self::report_deliveries_in_bulk)).
    #[cfg_attr(
        not(any(feature = "tokio", feature = "smol", feature = "blocking")),
        allow(dead_code)
    )]
    pub(crate) fn take_deliveries(&mut self, mut f: impl FnMut(Delivered<'_>)) {
        if let Some(p) = self.producer.as_mut() {
            for (record, result) in p.deliveries.drain(..) {
                f(Delivered::One(record, result));
            }
            for batch in p.written.drain(..) {
                f(Delivered::Batch(&batch));
            }
        }
    }

    /// Sends every buffered record now, without waiting for linger. Their
    /// deliveries follow as events.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Event, ProducerRecord};
    /// let now = sim.now();
    /// sim.client(host).send(now, ProducerRecord::new("orders", "paid"))?;
    /// sim.client(host).flush(now); // no linger: the batch goes now
    /// sim.run_until(Duration::from_secs(10), |sim| {
    ///     sim.client_events(host).any(|e| matches!(e, Event::Delivered { result: Ok(_), .. }))
    /// });
    /// assert_eq!(sim.client(host).pending_records(), 0);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&mut self, now: Instant) {
        self.advance(now);
        if let Some(p) = self.producer.as_mut() {
            p.flush();
        }
        self.drive_producer(now);
    }

    /// Records handed to [`send`](Self::send) and not yet delivered.
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, ProducerRecord};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// client.send(now, ProducerRecord::new("orders", "a"))?;
    /// client.send(now, ProducerRecord::new("orders", "b"))?;
    /// assert_eq!(client.pending_records(), 2); // until each one's Event::Delivered
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn pending_records(&self) -> usize {
        self.producer.as_ref().map_or(0, |p| p.pending_records())
    }

    /// Bytes the producer holds now (within
    /// [`ProducerConfig::buffer_max_bytes`](super::ProducerConfig::buffer_max_bytes)).
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, ProducerRecord};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// assert_eq!(client.buffered_bytes(), 0);
    /// client.send(now, ProducerRecord::new("orders", vec![0u8; 1000]))?;
    /// assert!(client.buffered_bytes() >= 1000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.producer.as_ref().map_or(0, |p| p.buffered())
    }

    /// Lets the producer move: route, seal, send; then report deliveries.
    pub(crate) fn drive_producer(&mut self, now: Instant) {
        let Some(mut p) = self.producer.take() else {
            return;
        };
        // Internal operations started here (InitProducerId) are not dispatched by
        // start_entry; send them below, or a send with nothing else going on (the
        // first record of an idempotent producer) would wait for no timer at all.
        let mut started = Vec::new();
        let mut txn_wants = Vec::new();
        for _ in 0..4 {
            let mut wants = Vec::new();
            {
                let metadata = &self.metadata;
                let topic = |name: &str| topic_view(metadata, name);
                let slots = &self.slots;
                let by_endpoint = &self.by_endpoint;
                let node_ready = |node: i32| {
                    by_endpoint
                        .get(&(Endpoint::Node(node), Lane::Produce))
                        .and_then(|c| slots.get(c))
                        .is_some_and(|s| s.is_ready())
                };
                p.drive(now, metadata.generation, &topic, &node_ready, &mut wants);
            }
            let mut sent = false;
            for want in wants {
                match want {
                    Want::Metadata(topic) => self.want_metadata(now, Some(topic), true),
                    // A broker backing off: the client wakes when it ends (found by
                    // tests/producer_invariants.rs, seed 4872, where nothing did).
                    Want::Connect(node) => self.connect_lane(now, node, Lane::Produce),
                    Want::Send {
                        node,
                        request,
                        req,
                        timeout,
                    } => match self.send_produce(now, node, request, timeout) {
                        Some(n) => {
                            self.produce_requests.insert(n, req);
                            sent = true;
                        }
                        None => p.unsend(req),
                    },
                    Want::Txn(w) => txn_wants.push(w),
                    Want::InitProducerId => {
                        let op = InitProducerId::idempotent();
                        let id = self.start_entry(
                            now,
                            Box::new(op),
                            vec![Target::Any],
                            None,
                            Some(Internal::ProducerId),
                        );
                        started.push(id);
                    }
                }
            }
            if !sent {
                break;
            }
        }
        self.producer = Some(p);
        for w in txn_wants {
            started.extend(self.start_txn(now, w));
        }
        for id in started {
            self.dispatch(id, now);
        }
        self.emit_txn_done();
        let deferred = std::mem::take(&mut self.deferred_produce_replies);
        for (req, reply) in deferred {
            self.produce_reply(req, now, reply);
        }
        self.emit_deliveries();
    }

    /// Writes a Produce request on the broker's produce connection; the request's
    /// number, or `None` if it could not be handed to the connection.
    fn send_produce(
        &mut self,
        now: Instant,
        node: i32,
        request: ProduceRequest,
        hold: Duration,
    ) -> Option<u64> {
        let timeout = self.config.connection.request_timeout + hold;
        self.send_on_lane(
            now,
            node,
            Lane::Produce,
            AnyRequest::new(request),
            |versions| {
                let v = version(versions?, ApiKey::Produce).filter(|v| *v >= 3)?;
                let mut options = RequestOptions::timeout(timeout);
                options.max_version = Some(v);
                Some(options)
            },
            Owner::Produce,
        )
    }

    /// A Produce request ended.
    pub(crate) fn produce_reply(
        &mut self,
        req: u64,
        now: Instant,
        reply: Result<Reply, ClientError>,
    ) {
        let Some(mut p) = self.producer.take() else {
            // The producer is driving (an answer during its own send): later.
            self.deferred_produce_replies.push((req, reply));
            return;
        };
        if let Some(inflight) = self.produce_requests.remove(&req) {
            let decoded = match reply {
                Ok(Reply::Sent) => Ok(None),
                Ok(r @ Reply::Response(_)) => decode::<ProduceRequest>(&r).map(Some),
                Err(e) => Err(e),
            };
            let config = &self.config;
            let rng = &mut self.rng;
            let metadata = &mut self.metadata;
            let mut stale = Vec::new();
            p.on_reply(
                now,
                inflight,
                decoded,
                &mut |attempt| {
                    backoff(config.retry_backoff, config.retry_backoff_max, attempt, rng)
                },
                &mut |topic: &Arc<str>, partition| {
                    metadata.invalidate_leader(topic, partition);
                    stale.push(topic.clone());
                },
            );
            p.settle();
            for topic in stale {
                self.want_metadata(now, Some(topic), true);
            }
        }
        self.producer = Some(p);
        self.emit_deliveries();
    }

    /// [`close`](Self::close) ends the producer's records too: requests on the wire
    /// (whose answers will never be read) and everything buffered fail with
    /// [`ClientError::Closed`], each record with its one delivery event.
    pub(crate) fn close_producer(&mut self, now: Instant) {
        // Answers that came while the producer was busy are real: first.
        let deferred = std::mem::take(&mut self.deferred_produce_replies);
        for (req, reply) in deferred {
            self.produce_reply(req, now, reply);
        }
        let outstanding: Vec<u64> = self.produce_requests.keys().copied().collect();
        for req in outstanding {
            self.produce_reply(req, now, Err(ClientError::Closed));
        }
        if let Some(p) = self.producer.as_mut() {
            p.fail_all(&ClientError::Closed);
            if let Some(t) = p.txn.as_mut() {
                t.close();
            }
        }
        self.emit_txn_done();
        self.emit_deliveries();
    }

    /// Turns the producer's finished records into events.
    pub(crate) fn emit_deliveries(&mut self) {
        if self.bulk_deliveries {
            return;
        }
        if let Some(p) = self.producer.as_mut() {
            for (record, result) in p.deliveries.drain(..) {
                self.events.push_back(Event::Delivered { record, result });
            }
            let events = &mut self.events;
            for batch in p.written.drain(..) {
                batch.each(|record, result| events.push_back(Event::Delivered { record, result }));
            }
        }
    }
}

/// What the producer needs of a topic, if its metadata is loaded.
fn topic_view(metadata: &Metadata, name: &str) -> Option<TopicViewOwned> {
    let t = metadata.topic(name)?;
    let count = t.partitions.len();
    let mut leaders = vec![None; count];
    let mut available = Vec::with_capacity(count);
    for p in &t.partitions {
        if let Leader::Known { node, .. } = metadata.leader(name, p.partition)
            && let Some(slot) = usize::try_from(p.partition)
                .ok()
                .and_then(|i| leaders.get_mut(i))
        {
            *slot = Some(node);
            available.push(p.partition);
        }
    }
    Some(TopicViewOwned {
        count,
        available,
        leaders,
    })
}
