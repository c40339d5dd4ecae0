//! The producer facade: hand over records one at a time (or many), get each one's
//! delivery as a future, while the client batches, compresses, retries and keeps
//! order behind it.
#![allow(clippy::disallowed_methods)]

use crate::client::{ClientError, ProducerRecord};
use crate::delivery::PlaceInLine;
use crate::driver::Command;

/// A producer over a [`Client`](crate::runtime::Client): cheap to clone, shares the
/// client's connections. Configure it with the builder's
/// [`ClientBuilder::configure`](crate::runtime::ClientBuilder::configure)
/// (`config.producer`: linger, batch size, budget, acks, compression, idempotence).
///
/// ```no_run
/// # #[cfg(feature = "tokio")]
/// # async fn demo() -> Result<(), kafka_sansio::client::ClientError> {
/// use kafka_sansio::client::ProducerRecord;
/// use kafka_sansio::runtime::ClientBuilder;
///
/// let client = ClientBuilder::new("localhost:9092")
///     .configure(|c| c.producer.linger = std::time::Duration::from_millis(10))
///     .build_tokio()
///     .await?;
/// let producer = client.producer();
/// // Sending does not wait; the future resolves once the record is written.
/// let deliveries: Vec<_> = (0..1000)
///     .map(|i| producer.send(ProducerRecord::new("events", format!("event {i}")).key(format!("user-{}", i % 10))))
///     .collect();
/// for d in deliveries {
///     let meta = d.await?;
///     assert!(meta.offset.is_some());
/// }
/// producer.flush().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Producer {
    client: crate::runtime::Client,
}

pub use crate::delivery::{BatchDelivery, DeliveryFuture, NoRoom};

impl crate::runtime::Client {
    /// The client's producer.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::ProducerRecord;
    ///
    /// let producer = client.producer(); // cheap; clones share one buffer and connections
    /// producer.send(ProducerRecord::new("orders", "paid")).await?;
    /// # Ok(()) });
    /// ```
    #[must_use]
    pub fn producer(&self) -> Producer {
        Producer {
            client: self.clone(),
        }
    }
}

impl Producer {
    /// Hands a record over at once and returns its delivery. A record without a
    /// timestamp gets the current time. If the producer's buffer is full the record
    /// waits for room (up to its delivery timeout) instead of failing; records
    /// handed over this way are not limited by the buffer's budget, so a sender
    /// faster than the cluster grows its memory without bound. To wait for room
    /// before handing a record over, use [`send_when_room`](Self::send_when_room);
    /// to be refused at once, [`try_send`](Self::try_send). After
    /// [`Client::close`](crate::runtime::Client::close) (or once the client is gone)
    /// the delivery fails at once with [`ClientError::Closed`].
    ///
    /// Sending costs a slot in a shared table and a lock, no allocation of its own;
    /// the client's driver takes records in bursts. A topic given as an
    /// `Arc<str>` and cloned per record saves allocating its name for each one.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::ProducerRecord;
    ///
    /// let producer = client.producer();
    /// // Same key, same partition, in order.
    /// let first = producer.send(ProducerRecord::new("orders", "created").key("order-17"));
    /// let second = producer.send(ProducerRecord::new("orders", "paid").key("order-17"));
    /// let (first, second) = (first.await?, second.await?);
    /// assert_eq!(first.partition, second.partition);
    /// assert!(first.offset < second.offset);
    /// # Ok(()) });
    /// ```
    pub fn send(&self, mut record: ProducerRecord) -> DeliveryFuture {
        record
            .timestamp
            .get_or_insert_with(crate::runtime::wall_clock_ms);
        let (future, wake) = self.client.deliveries().push_one(record);
        if wake {
            // If the driver is gone its table is closed and every future fails.
            let _ = self.client.command(Command::Produce);
        }
        future
    }

    /// Hands a record over once the producer's byte budget
    /// ([`ProducerConfig::buffer_max_bytes`](crate::client::ProducerConfig::buffer_max_bytes))
    /// has room for it beside every record buffered or waiting to be, and returns
    /// its delivery. A sender that sends this way never holds more than the budget
    /// (plus one record) in the producer: it waits instead, as Java's `send` blocks
    /// on a full `buffer.memory`. Room comes as records are delivered or fail, each
    /// within its delivery timeout, so the wait is bounded by theirs. The record's
    /// timestamp, if it has none, is the time of this call. When room comes, every
    /// sender waiting for it is woken and the first to run takes it (there is no
    /// order among waiting senders). Dropping the future before it is ready drops
    /// the record unsent; once ready, the record is the producer's and is delivered
    /// whatever happens to the [`DeliveryFuture`].
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::ProducerRecord;
    ///
    /// let producer = client.producer();
    /// let mut deliveries = Vec::new();
    /// for i in 0..1000 {
    ///     // Waits here whenever the producer's buffer is full.
    ///     let delivery = producer.send_when_room(ProducerRecord::new("orders", format!("event {i}"))).await;
    ///     deliveries.push(delivery);
    /// }
    /// for d in deliveries {
    ///     d.await?;
    /// }
    /// # Ok(()) });
    /// ```
    pub async fn send_when_room(&self, mut record: ProducerRecord) -> DeliveryFuture {
        record
            .timestamp
            .get_or_insert_with(crate::runtime::wall_clock_ms);
        // Dropped before the record is taken: leaves the line.
        let mut place = PlaceInLine::new(self.client.deliveries());
        let mut record = Some(record);
        std::future::poll_fn(|cx| {
            let Some(r) = record.take() else {
                return std::task::Poll::Pending; // polled after it was ready
            };
            match place.push(r, cx) {
                Ok((future, wake)) => {
                    if wake {
                        let _ = self.client.command(Command::Produce);
                    }
                    std::task::Poll::Ready(future)
                }
                Err((r, first_to_wait)) => {
                    if first_to_wait {
                        // The budget is full: the driver sends what it buffers now.
                        let _ = self.client.command(Command::Produce);
                    }
                    record = Some(r);
                    std::task::Poll::Pending
                }
            }
        })
        .await
    }

    /// Hands a record over if the producer's byte budget has room for it beside
    /// every record buffered or waiting to be (as
    /// [`send_when_room`](Self::send_when_room) would, without waiting), and returns
    /// its delivery; else gives it back at once in a [`NoRoom`], as librdkafka's
    /// produce refuses with `QUEUE_FULL`. After the client is closed the record is
    /// taken, and its delivery fails with [`ClientError::Closed`].
    ///
    /// # Errors
    /// [`NoRoom`], holding the record, when the budget is full.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::ProducerRecord;
    ///
    /// let producer = client.producer();
    /// let delivery = producer.try_send(ProducerRecord::new("orders", "paid")).expect("an idle producer has room");
    /// assert!(delivery.await?.offset.is_some());
    /// # Ok(()) });
    /// ```
    #[allow(clippy::result_large_err)] // the record comes back whole
    pub fn try_send(&self, mut record: ProducerRecord) -> Result<DeliveryFuture, NoRoom> {
        record
            .timestamp
            .get_or_insert_with(crate::runtime::wall_clock_ms);
        let (future, wake) = self.client.deliveries().try_push(record)?;
        if wake {
            let _ = self.client.command(Command::Produce);
        }
        Ok(future)
    }

    /// Hands many records over at once; their deliveries in the same order.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::ProducerRecord;
    ///
    /// let records = (0..10).map(|i| ProducerRecord::new("orders", format!("event {i}")).partition(0)).collect();
    /// let deliveries = client.producer().send_batch(records);
    /// for (i, delivery) in deliveries.into_iter().enumerate() {
    ///     assert_eq!(delivery.await?.offset, Some(i as i64));
    /// }
    /// # Ok(()) });
    /// ```
    pub fn send_batch(&self, records: Vec<ProducerRecord>) -> Vec<DeliveryFuture> {
        let now_ms = crate::runtime::wall_clock_ms();
        let mut futures = Vec::with_capacity(records.len());
        let records = records.into_iter().map(|mut r| {
            r.timestamp.get_or_insert(now_ms);
            r
        });
        if self.client.deliveries().push(records, &mut futures) {
            let _ = self.client.command(Command::Produce);
        }
        futures
    }

    /// Hands many records over at once, with one future for all their deliveries:
    /// each record's result, in the order given, once the last is delivered. Cheaper
    /// to await than [`send_batch`](Self::send_batch)'s future per record when the
    /// application handles a batch's results together (a bulk loader, a pipe).
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::ProducerRecord;
    ///
    /// let records = (0..100).map(|i| ProducerRecord::new("orders", format!("event {i}")).key(format!("user-{}", i % 7))).collect();
    /// let results = client.producer().send_all(records).await;
    /// assert_eq!(results.len(), 100);
    /// let failed = results.iter().filter(|r| r.is_err()).count();
    /// assert_eq!(failed, 0);
    /// # Ok(()) });
    /// ```
    pub fn send_all(&self, records: Vec<ProducerRecord>) -> BatchDelivery {
        // Copied here, outside the table's lock, which the driver needs to report.
        let bytes = records.iter().map(|r| r.size()).sum();
        self.send_buffer(crate::client::RecordBuffer {
            queue: crate::client::RecordQueue::from_records(records),
            bytes,
        })
    }

    /// Hands a [`RecordBuffer`](crate::client::RecordBuffer) of records over, with
    /// one future for all their deliveries, as [`send_all`](Self::send_all) does.
    /// The cheapest way to send records whose bytes are borrowed (lines of a file,
    /// frames of a socket, a reused scratch buffer): each was copied once into the
    /// buffer, and the buffer goes to the producer whole. Records without a
    /// timestamp get the current time.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{BorrowedRecord, RecordBuffer};
    ///
    /// let input = "user-1:login\nuser-2:logout\nuser-1:logout\n";
    /// let mut buffer = RecordBuffer::new();
    /// for line in input.lines() {
    ///     let (key, value) = line.split_once(':').unwrap();
    ///     buffer.push(BorrowedRecord::new("orders", value.as_bytes()).key(key.as_bytes()));
    /// }
    /// let results = client.producer().send_buffer(buffer).await;
    /// assert_eq!(results.len(), 3);
    /// assert!(results.iter().all(Result::is_ok));
    /// # Ok(()) });
    /// ```
    pub fn send_buffer(&self, records: crate::client::RecordBuffer) -> BatchDelivery {
        let mut queue = records.queue;
        queue.fill_timestamps(crate::runtime::wall_clock_ms());
        let (batch, wake) = self.client.deliveries().push_queue(queue, records.bytes);
        if wake {
            let _ = self.client.command(Command::Produce);
        }
        batch
    }

    /// Sends everything buffered without waiting for linger, and returns once every
    /// record handed over before this call has been delivered (or has failed).
    ///
    /// # Errors
    /// The client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::ProducerRecord;
    ///
    /// let producer = client.producer();
    /// let delivery = producer.send(ProducerRecord::new("orders", "paid"));
    /// producer.flush().await?;
    /// // Everything sent before the flush is delivered: the future is ready.
    /// assert!(futures_lite::future::poll_once(delivery).await.is_some());
    /// # Ok(()) });
    /// ```
    pub async fn flush(&self) -> Result<(), ClientError> {
        let (tx, rx) = async_channel::bounded(1);
        let mark = self.client.deliveries().next_number();
        self.client.command(Command::Flush(mark, tx))?;
        rx.recv().await.map_err(|_| ClientError::Closed)
    }

    /// Readies a transactional producer (configured with
    /// [`ProducerConfig::transactional_id`](crate::client::ProducerConfig::transactional_id)):
    /// finds its transaction coordinator and takes the id's producer id with a
    /// new epoch, which fences every earlier instance with the same id and aborts
    /// what one left open. Call once, before the first transaction. See
    /// [`Client::init_transactions`](crate::client::Client::init_transactions).
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let server = kafka_sansio::doc_support::serve().await;
    /// use kafka_sansio::client::ProducerRecord;
    /// use kafka_sansio::runtime::ClientBuilder;
    ///
    /// let client = ClientBuilder::new(&server.bootstrap())
    ///     .configure(|c| c.producer.transactional_id = Some("payments-1".into()))
    ///     .build_tokio()
    ///     .await?;
    /// let producer = client.producer();
    /// producer.init_transactions().await?;
    /// producer.begin_transaction().await?;
    /// let paid = producer.send(ProducerRecord::new("orders", "paid"));
    /// let shipped = producer.send(ProducerRecord::new("orders", "shipped"));
    /// producer.commit_transaction().await?;
    /// // Both are written, and read_committed consumers read both or neither.
    /// assert!(paid.await?.offset < shipped.await?.offset);
    /// # Ok(()) });
    /// ```
    ///
    /// # Errors
    /// [`TransactionError::NotTransactional`](crate::client::TransactionError::NotTransactional),
    /// [`TransactionError::Fatal`](crate::client::TransactionError::Fatal) when the
    /// id is not authorized, or a timeout (calling again waits for the same lookup).
    pub async fn init_transactions(&self) -> Result<(), ClientError> {
        self.client
            .run(|c, now| c.init_transactions(now))
            .await
            .map(drop)
    }

    /// Opens a transaction: records sent from now until
    /// [`commit_transaction`](Self::commit_transaction) or
    /// [`abort_transaction`](Self::abort_transaction) belong to it. See
    /// [`Client::begin_transaction`](crate::client::Client::begin_transaction).
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// use kafka_sansio::client::{ClientError, TransactionError};
    /// // A producer without a transactional id has no transactions.
    /// let refused = client.producer().begin_transaction().await.unwrap_err();
    /// assert_eq!(refused, ClientError::Transaction(TransactionError::NotTransactional));
    /// # Ok(()) });
    /// ```
    ///
    /// # Errors
    /// [`TransactionError::State`](crate::client::TransactionError::State) before
    /// `init_transactions` ended or while a transaction is open,
    /// [`TransactionError::Fatal`](crate::client::TransactionError::Fatal) once
    /// fenced.
    pub async fn begin_transaction(&self) -> Result<(), ClientError> {
        self.client
            .run(|c, now| {
                let result = c.begin_transaction(now);
                c.answered(result.map(|()| crate::client::OpOutput::Transaction))
            })
            .await
            .map(drop)
    }

    /// Commits consumed offsets with the open transaction (consume, transform,
    /// produce exactly once): `offsets` are the next offsets to read in `group`;
    /// they become the group's committed offsets if and only if the transaction
    /// commits. See
    /// [`Client::send_offsets_to_transaction`](crate::client::Client::send_offsets_to_transaction).
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let server = kafka_sansio::doc_support::serve().await;
    /// use kafka_sansio::client::{ProducerRecord, TopicPartition};
    /// use kafka_sansio::runtime::ClientBuilder;
    ///
    /// let client = ClientBuilder::new(&server.bootstrap())
    ///     .configure(|c| c.producer.transactional_id = Some("enricher-1".into()))
    ///     .build_tokio()
    ///     .await?;
    /// let producer = client.producer();
    /// producer.init_transactions().await?;
    /// producer.begin_transaction().await?;
    /// producer.send(ProducerRecord::new("orders", "enriched"));
    /// let read = vec![(TopicPartition::new("orders", 0), 17)];
    /// producer.send_offsets_to_transaction("enricher", read).await?;
    /// producer.commit_transaction().await?;
    /// let committed = client.fetch_committed("enricher", vec![TopicPartition::new("orders", 0)]).await?;
    /// assert_eq!(committed[0].offset, Ok(17));
    /// # Ok(()) });
    /// ```
    ///
    /// # Errors
    /// As the commit's: the transaction can then only be aborted
    /// ([`TransactionError::Abortable`](crate::client::TransactionError::Abortable)),
    /// or the producer was fenced.
    pub async fn send_offsets_to_transaction(
        &self,
        group: &str,
        offsets: Vec<(crate::client::TopicPartition, i64)>,
    ) -> Result<(), ClientError> {
        let group = group.to_owned();
        self.client
            .run(move |c, now| c.send_offsets_to_transaction(now, &group, offsets))
            .await
            .map(drop)
    }

    /// Commits the open transaction: every record sent in it is written, then the
    /// coordinator commits, and read_committed consumers read them all. If one
    /// failed, this fails with
    /// [`TransactionError::Abortable`](crate::client::TransactionError::Abortable)
    /// and the transaction can only be aborted. See
    /// [`Client::commit_transaction`](crate::client::Client::commit_transaction).
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let server = kafka_sansio::doc_support::serve().await;
    /// use kafka_sansio::client::ProducerRecord;
    /// use kafka_sansio::runtime::ClientBuilder;
    ///
    /// let client = ClientBuilder::new(&server.bootstrap())
    ///     .configure(|c| c.producer.transactional_id = Some("payments-1".into()))
    ///     .build_tokio()
    ///     .await?;
    /// let producer = client.producer();
    /// producer.init_transactions().await?;
    /// for batch in 0..3 {
    ///     producer.begin_transaction().await?;
    ///     for i in 0..10 {
    ///         producer.send(ProducerRecord::new("orders", format!("{batch}-{i}")));
    ///     }
    ///     producer.commit_transaction().await?;
    /// }
    /// # Ok(()) });
    /// ```
    ///
    /// # Errors
    /// [`TransactionError::Abortable`](crate::client::TransactionError::Abortable),
    /// [`TransactionError::Fatal`](crate::client::TransactionError::Fatal) once
    /// fenced, [`TransactionError::State`](crate::client::TransactionError::State)
    /// with no transaction open, or a timeout (calling again waits for the same
    /// commit).
    pub async fn commit_transaction(&self) -> Result<(), ClientError> {
        self.client
            .run(|c, now| c.commit_transaction(now))
            .await
            .map(drop)
    }

    /// Aborts the open transaction: records not yet sent fail with
    /// [`TransactionError::Aborted`](crate::client::TransactionError::Aborted), and
    /// read_committed consumers skip everything it wrote. The producer is then
    /// ready for the next transaction. See
    /// [`Client::abort_transaction`](crate::client::Client::abort_transaction).
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let server = kafka_sansio::doc_support::serve().await;
    /// use kafka_sansio::client::ProducerRecord;
    /// use kafka_sansio::runtime::ClientBuilder;
    ///
    /// let client = ClientBuilder::new(&server.bootstrap())
    ///     .configure(|c| c.producer.transactional_id = Some("payments-1".into()))
    ///     .build_tokio()
    ///     .await?;
    /// let producer = client.producer();
    /// producer.init_transactions().await?;
    /// producer.begin_transaction().await?;
    /// let dropped = producer.send(ProducerRecord::new("orders", "never committed"));
    /// producer.abort_transaction().await?;
    /// // Sent or not, read_committed consumers never read it.
    /// let _ = dropped.await;
    /// producer.begin_transaction().await?; // the next one
    /// # Ok(()) });
    /// ```
    ///
    /// # Errors
    /// [`TransactionError::State`](crate::client::TransactionError::State) with no
    /// transaction open,
    /// [`TransactionError::Fatal`](crate::client::TransactionError::Fatal) once
    /// fenced, or a timeout (calling again waits for the same abort).
    pub async fn abort_transaction(&self) -> Result<(), ClientError> {
        self.client
            .run(|c, now| c.abort_transaction(now))
            .await
            .map(drop)
    }
}
