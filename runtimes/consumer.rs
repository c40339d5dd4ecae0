//! The consumer facade: a `Stream` of records (async) and an iterator (blocking)
//! over the client's fetcher, with assignment, seeks and pauses.
#![allow(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::Stream;

use crate::client::{ClientError, ConsumedRecord, Offset, TopicPartition};
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
///         Ok(r) => println!("{}-{}@{}: {:?}", r.topic, r.partition, r.record.offset, r.record.value),
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
}

impl std::fmt::Debug for oneshot::Receiver<PollResult> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PollReceiver")
    }
}

impl crate::runtime::Client {
    /// A consumer over this client's connections.
    #[must_use]
    pub fn consumer(&self) -> Consumer {
        Consumer {
            client: self.clone(),
            records: VecDeque::new(),
            errors: VecDeque::new(),
            waiting: None,
            closed: false,
        }
    }
}

impl Consumer {
    fn command(&self, c: ConsumeCommand) -> Result<(), ClientError> {
        self.client.command(Command::Consume(c))
    }

    /// Consumes these partitions (no group), each from `start`.
    ///
    /// # Errors
    /// The client is closed.
    pub fn assign(
        &self,
        partitions: Vec<TopicPartition>,
        start: Offset,
    ) -> Result<(), ClientError> {
        self.command(ConsumeCommand::Assign(partitions, start))
    }

    /// Stops consuming these partitions; nothing buffered for them comes out later.
    ///
    /// # Errors
    /// The client is closed.
    pub fn unassign(&mut self, partitions: Vec<TopicPartition>) -> Result<(), ClientError> {
        self.records.retain(|r| {
            !partitions
                .iter()
                .any(|p| *p.topic == *r.topic && p.partition == r.partition)
        });
        self.command(ConsumeCommand::Unassign(partitions))
    }

    /// Moves a partition's position; records buffered for it are dropped.
    ///
    /// # Errors
    /// The client is closed.
    pub fn seek(&mut self, partition: TopicPartition, to: Offset) -> Result<(), ClientError> {
        self.records
            .retain(|r| !(*r.topic == *partition.topic && r.partition == partition.partition));
        self.command(ConsumeCommand::Seek(partition, to))
    }

    /// Stops fetching these partitions.
    ///
    /// # Errors
    /// The client is closed.
    pub fn pause(&self, partitions: Vec<TopicPartition>) -> Result<(), ClientError> {
        self.command(ConsumeCommand::Pause(partitions, true))
    }

    /// Fetches these partitions again.
    ///
    /// # Errors
    /// The client is closed.
    pub fn resume(&self, partitions: Vec<TopicPartition>) -> Result<(), ClientError> {
        self.command(ConsumeCommand::Pause(partitions, false))
    }

    /// The next record, or the next error (the consumer goes on after it).
    ///
    /// # Errors
    /// Consuming a partition failed, or the client is closed.
    pub async fn recv(&mut self) -> Result<ConsumedRecord, ClientError> {
        std::future::poll_fn(|cx| self.poll_item(cx))
            .await
            .unwrap_or(Err(ClientError::Closed))
    }

    /// Every record buffered now, or waits for some (or an error).
    ///
    /// # Errors
    /// Consuming a partition failed, or the client is closed.
    pub async fn recv_batch(&mut self) -> Result<Vec<ConsumedRecord>, ClientError> {
        let first = self.recv().await?;
        let mut out = Vec::with_capacity(self.records.len() + 1);
        out.push(first);
        out.extend(self.records.drain(..));
        Ok(out)
    }

    fn poll_item(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<ConsumedRecord, ClientError>>> {
        loop {
            if let Some(e) = self.errors.pop_front() {
                return Poll::Ready(Some(Err(e)));
            }
            if let Some(r) = self.records.pop_front() {
                return Poll::Ready(Some(Ok(r)));
            }
            if self.closed {
                return Poll::Ready(None);
            }
            if self.waiting.is_none() {
                let (reply, rx) = oneshot::channel();
                if self
                    .client
                    .command(Command::Poll {
                        max: POLL_BATCH,
                        reply,
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
                    match answer {
                        Some(Ok(records)) => self.records.extend(records),
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
        }
    }
}

impl Stream for Consumer {
    type Item = Result<ConsumedRecord, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_item(cx)
    }
}
