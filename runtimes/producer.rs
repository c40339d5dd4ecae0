//! The producer facade: hand over records one at a time (or many), get each one's
//! delivery as a future, while the client batches, compresses, retries and keeps
//! order behind it.
#![allow(clippy::disallowed_methods)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::client::{ClientError, ProducerRecord, RecordMetadata};
use crate::driver::Command;
use crate::oneshot;

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

/// The delivery of one record: where it landed, or why not. Await it, or `wait` for
/// it from blocking code. Dropping it does not cancel the record.
///
/// ```
/// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
/// # let (_server, client) = kafka_sansio::doc_support::client().await;
/// use kafka_sansio::client::ProducerRecord;
///
/// let delivery = client.producer().send(ProducerRecord::new("orders", "paid").partition(2));
/// let written = delivery.await?;
/// assert_eq!(&*written.topic, "orders");
/// assert_eq!((written.partition, written.offset), (2, Some(0)));
/// # Ok(()) });
/// ```
#[must_use = "a delivery report says whether the record was written"]
#[derive(Debug)]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Result<RecordMetadata, ClientError>>,
}

impl std::fmt::Debug for oneshot::Receiver<Result<RecordMetadata, ClientError>> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliveryReceiver")
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ClientError::Closed)))
    }
}

impl DeliveryFuture {
    /// Blocks the thread until the record is delivered or fails.
    ///
    /// # Errors
    /// The record could not be written (after retries, by its delivery timeout), or
    /// the client closed first.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio", feature = "blocking"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::ProducerRecord;
    ///
    /// let delivery = client.producer().send(ProducerRecord::new("orders", "paid").partition(1));
    /// let written = delivery.wait()?; // blocks this thread
    /// assert_eq!((written.partition, written.offset), (1, Some(0)));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(self) -> Result<RecordMetadata, ClientError> {
        self.rx.wait().unwrap_or(Err(ClientError::Closed))
    }
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

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
    /// waits for room (up to its delivery timeout) instead of failing.
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
    pub fn send(&self, record: ProducerRecord) -> DeliveryFuture {
        self.send_batch(vec![record]).pop().unwrap_or_else(|| {
            let (_, rx) = oneshot::channel();
            DeliveryFuture { rx }
        })
    }

    /// Hands many records over at once (one trip to the driver); their deliveries
    /// in the same order.
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
        let now_ms = wall_clock_ms();
        let mut batch = Vec::with_capacity(records.len());
        let mut futures = Vec::with_capacity(records.len());
        for mut record in records {
            record.timestamp.get_or_insert(now_ms);
            let (tx, rx) = oneshot::channel();
            batch.push((record, tx));
            futures.push(DeliveryFuture { rx });
        }
        // If the driver is gone the senders drop and every future says Closed.
        let _ = self.client.command(Command::Send(batch));
        futures
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
        self.client.command(Command::Flush(tx))?;
        rx.recv().await.map_err(|_| ClientError::Closed)
    }
}
