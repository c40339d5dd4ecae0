//! Custom aggregation (the design rskafka's `BatchProducer` follows): an application
//! collects its own items into a batch of records for one partition, decides when
//! the batch is full, and maps the broker's result for the batch back to each of its
//! items.
//!
//! [`BatchProducer`] is the sans-IO driver of an [`Aggregator`] over a
//! [`Client`]: it lingers, flushes full batches, produces them with
//! [`Client::produce`], and turns each batch's offsets into one output per item.
//! The default aggregator, [`RecordAggregator`], takes plain records.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{Client, ClientError, Event, OpId, OpOutput, ProduceOptions, Record};

/// What [`Aggregator::push`] did with an item.
///
/// ```
/// use kafka_sansio::client::{Aggregator, Push, Record, RecordAggregator};
/// let mut batch = RecordAggregator::new(100);
/// assert_eq!(batch.push(Record::new(vec![0u8; 50]))?, Push::Added(0));
/// // No room left: the record comes back; take the batch, then push it again.
/// assert!(matches!(batch.push(Record::new(vec![0u8; 50]))?, Push::Full(_)));
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push<I, T> {
    /// The item is in the batch; the tag finds its output later.
    Added(T),
    /// The batch has no room: flush it and push the item again.
    Full(I),
}

/// Collects items into one batch of records.
///
/// ```
/// use kafka_sansio::client::{Aggregator, ClientError, Push, Record, Demux};
///
/// /// Packs up to 100 readings into one record (a JSON array), as a metrics agent might.
/// #[derive(Default)]
/// struct Readings(Vec<f64>);
///
/// struct Positions;
/// impl Demux for Positions {
///     type Tag = usize;
///     type Output = (i64, usize); // (offset of the record, position in it)
///     fn output(&self, offsets: &[i64], tag: usize) -> Result<(i64, usize), ClientError> {
///         Ok((offsets[0], tag))
///     }
/// }
///
/// impl Aggregator for Readings {
///     type Item = f64;
///     type Tag = usize;
///     type Demux = Positions;
///     fn push(&mut self, item: f64) -> Result<Push<f64, usize>, ClientError> {
///         if self.0.len() == 100 {
///             return Ok(Push::Full(item));
///         }
///         self.0.push(item);
///         Ok(Push::Added(self.0.len() - 1))
///     }
///     fn is_empty(&self) -> bool { self.0.is_empty() }
///     fn take(&mut self) -> Result<(Vec<Record>, Positions), ClientError> {
///         let json = format!("{:?}", std::mem::take(&mut self.0));
///         Ok((vec![Record::new(json)], Positions))
///     }
/// }
///
/// let mut a = Readings::default();
/// assert_eq!(a.push(1.5).unwrap(), Push::Added(0));
/// let (records, demux) = a.take().unwrap();
/// assert_eq!(records.len(), 1);
/// assert_eq!(demux.output(&[41], 0).unwrap(), (41, 0));
/// ```
pub trait Aggregator: Send {
    /// What the application hands in.
    type Item: Send;
    /// Names an item inside its batch.
    type Tag: Send;
    /// Maps the batch's result back to its items.
    type Demux: Demux<Tag = Self::Tag>;

    /// Adds an item to the batch, or hands it back if the batch is full.
    ///
    /// # Errors
    /// The item cannot be aggregated at all (too large, malformed, ...).
    ///
    /// ```
    /// use kafka_sansio::client::{Aggregator, Push, Record, RecordAggregator};
    /// let mut batch = RecordAggregator::new(1 << 20);
    /// assert_eq!(batch.push(Record::new("a"))?, Push::Added(0));
    /// assert_eq!(batch.push(Record::new("b"))?, Push::Added(1)); // the tag: its index
    /// assert!(RecordAggregator::new(10).push(Record::new(vec![0u8; 100])).is_err()); // can never fit
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    fn push(&mut self, item: Self::Item) -> Result<Push<Self::Item, Self::Tag>, ClientError>;

    /// Whether the batch holds nothing.
    ///
    /// ```
    /// use kafka_sansio::client::{Aggregator, Record, RecordAggregator};
    /// let mut batch = RecordAggregator::new(1 << 20);
    /// assert!(batch.is_empty());
    /// batch.push(Record::new("a"))?;
    /// assert!(!batch.is_empty());
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    fn is_empty(&self) -> bool;

    /// Takes the batch: its records and what maps their offsets back to items.
    ///
    /// # Errors
    /// The batch cannot be turned into records.
    ///
    /// ```
    /// use kafka_sansio::client::{Aggregator, Demux, Record, RecordAggregator};
    /// let mut batch = RecordAggregator::new(1 << 20);
    /// batch.push(Record::new("a"))?;
    /// batch.push(Record::new("b"))?;
    /// let (records, demux) = batch.take()?;
    /// assert_eq!(records.len(), 2);
    /// assert!(batch.is_empty()); // a fresh batch begins
    /// assert_eq!(demux.output(&[40, 41], 1)?, 41); // once written at 40 and 41
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    fn take(&mut self) -> Result<(Vec<Record>, Self::Demux), ClientError>;
}

/// Maps a produced batch's offsets back to one of its items (a status
/// de-aggregator).
///
/// ```
/// use kafka_sansio::client::{Demux, RecordDemux};
/// assert_eq!(RecordDemux.output(&[7, 8, 9], 2)?, 9);
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
pub trait Demux: Send {
    /// The item's tag, from [`Aggregator::push`].
    type Tag: Send;
    /// What an item gets once its batch is written.
    type Output: Send;

    /// The output of the item tagged `tag`, given the offsets of the batch's
    /// records.
    ///
    /// # Errors
    /// The offsets do not fit the tag.
    ///
    /// ```
    /// use kafka_sansio::client::{Demux, RecordDemux};
    /// assert_eq!(RecordDemux.output(&[100, 101], 0)?, 100);
    /// assert!(RecordDemux.output(&[100, 101], 5).is_err()); // no such record in the batch
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    fn output(&self, offsets: &[i64], tag: Self::Tag) -> Result<Self::Output, ClientError>;
}

/// The default aggregator: plain records, up to a byte limit; each record's output
/// is its offset.
///
/// ```
/// use kafka_sansio::client::{Aggregator, Record, RecordAggregator};
/// let mut batch = RecordAggregator::new(1 << 20); // up to 1 MiB per batch
/// batch.push(Record::new("hello").key("k"))?;
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RecordAggregator {
    max_bytes: usize,
    bytes: usize,
    records: Vec<Record>,
}

impl RecordAggregator {
    /// Batches of at most `max_bytes` (key, value and header bytes).
    ///
    /// ```
    /// use kafka_sansio::client::{Aggregator, Push, Record, RecordAggregator};
    /// let mut small = RecordAggregator::new(64);
    /// assert_eq!(small.push(Record::new("x"))?, Push::Added(0));
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            bytes: 0,
            records: Vec::new(),
        }
    }
}

fn record_size(r: &Record) -> usize {
    r.key.as_ref().map_or(0, |k| k.len())
        + r.value.as_ref().map_or(0, |v| v.len())
        + r.headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
            .sum::<usize>()
        + 20
}

/// Offsets of a [`RecordAggregator`] batch: the record at an index gets its offset.
///
/// ```
/// use kafka_sansio::client::{Demux, RecordDemux};
/// assert_eq!(RecordDemux.output(&[5, 6], 1)?, 6);
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordDemux;

impl Demux for RecordDemux {
    type Tag = usize;
    type Output = i64;

    fn output(&self, offsets: &[i64], tag: usize) -> Result<i64, ClientError> {
        offsets
            .get(tag)
            .copied()
            .ok_or_else(|| ClientError::InvalidResponse {
                api: crate::messages::ApiKey::Produce,
                detail: format!("no offset for record {tag} of a batch of {}", offsets.len()),
            })
    }
}

impl Aggregator for RecordAggregator {
    type Item = Record;
    type Tag = usize;
    type Demux = RecordDemux;

    fn push(&mut self, item: Record) -> Result<Push<Record, usize>, ClientError> {
        let size = record_size(&item);
        if size > self.max_bytes {
            return Err(ClientError::InvalidArgument(format!(
                "record of {size} bytes exceeds the batch limit of {}",
                self.max_bytes
            )));
        }
        if self.bytes + size > self.max_bytes {
            return Ok(Push::Full(item));
        }
        self.bytes += size;
        self.records.push(item);
        Ok(Push::Added(self.records.len() - 1))
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn take(&mut self) -> Result<(Vec<Record>, RecordDemux), ClientError> {
        self.bytes = 0;
        Ok((std::mem::take(&mut self.records), RecordDemux))
    }
}

/// Names one item pushed into a [`BatchProducer`].
///
/// ```
/// use std::time::Duration;
/// use kafka_sansio::client::{BatchProducer, Client, ClientConfig, Record, RecordAggregator};
/// # #[allow(clippy::disallowed_methods)]
/// let now = std::time::Instant::now();
/// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
/// let mut batches = BatchProducer::new("orders", 0, RecordAggregator::new(1 << 20), Duration::from_millis(5), Default::default());
/// let a = batches.push(&mut client, now, Record::new("a"))?;
/// let b = batches.push(&mut client, now, Record::new("b"))?;
/// assert_ne!(a, b); // each item's output carries its id
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemId(pub u64);

/// One item's output from a [`BatchProducer`]: its id and its demuxed result.
///
/// ```
/// use kafka_sansio::client::{ItemOutput, RecordAggregator};
/// fn report(output: ItemOutput<RecordAggregator>) {
///     match output {
///         (id, Ok(offset)) => println!("{id:?} at offset {offset}"),
///         (id, Err(e)) => println!("{id:?} failed: {e}"),
///     }
/// }
/// # let _ = report;
/// ```
pub type ItemOutput<A> = (
    ItemId,
    Result<<<A as Aggregator>::Demux as Demux>::Output, ClientError>,
);

/// A batch on its way: the produce operation, its demux, and its items.
struct Flight<A: Aggregator> {
    demux: A::Demux,
    items: Vec<(ItemId, A::Tag)>,
}

/// Drives an [`Aggregator`] for one partition over a [`Client`]: lingers, flushes,
/// produces, and reports one output per item. Sans-IO like the client: call
/// [`handle_timeout`](Self::handle_timeout) by [`poll_timeout`](Self::poll_timeout),
/// pass the client's events through [`handle_event`](Self::handle_event), and pull
/// outputs with [`poll_output`](Self::poll_output).
///
/// ```
/// # #[cfg(feature = "sim")] {
/// use std::time::Duration;
/// use kafka_sansio::client::{BatchProducer, Client, ClientConfig, Record, RecordAggregator};
/// use kafka_sansio::sim::{ClusterConfig, NetworkConfig, Simulation};
///
/// # #[allow(clippy::disallowed_methods)]
/// let mut sim = Simulation::new(1, ClusterConfig::default(), NetworkConfig::default(), std::time::Instant::now());
/// sim.cluster().create_topic("t", 1, 1).unwrap();
/// let host = sim.add_client(Client::new(ClientConfig::new(&sim.bootstrap()).unwrap(), sim.now()));
/// let mut batches = BatchProducer::new("t", 0, RecordAggregator::new(1 << 20), Duration::from_millis(5), Default::default());
/// let now = sim.now();
/// let a = batches.push(sim.client(host), now, Record::new("a")).unwrap();
/// let b = batches.push(sim.client(host), now, Record::new("b")).unwrap();
/// // (a real loop would call handle_timeout at poll_timeout; here we flush)
/// batches.flush(sim.client(host), now);
/// let mut outputs = Vec::new();
/// sim.run_until(Duration::from_secs(1), |sim| {
///     for e in sim.client_events(host).collect::<Vec<_>>() {
///         batches.handle_event(e);
///     }
///     while let Some(o) = batches.poll_output() {
///         outputs.push(o);
///     }
///     outputs.len() == 2
/// });
/// assert_eq!(outputs, vec![(a, Ok(0)), (b, Ok(1))]);
/// # }
/// ```
pub struct BatchProducer<A: Aggregator> {
    topic: Arc<str>,
    partition: i32,
    aggregator: A,
    linger: Duration,
    options: ProduceOptions,
    open: Vec<(ItemId, A::Tag)>,
    open_since: Option<Instant>,
    flights: BTreeMap<OpId, Flight<A>>,
    outputs: VecDeque<ItemOutput<A>>,
    next: u64,
}

impl<A: Aggregator> std::fmt::Debug for BatchProducer<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchProducer")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("open", &self.open.len())
            .field("in_flight", &self.flights.len())
            .finish_non_exhaustive()
    }
}

impl<A: Aggregator> BatchProducer<A> {
    /// A producer of `aggregator`'s batches to one partition, each lingering at
    /// most `linger` after its first item.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::{BatchProducer, ProduceOptions, RecordAggregator};
    /// use kafka_sansio::records::Compression;
    /// let batches = BatchProducer::new(
    ///     "orders", 0,
    ///     RecordAggregator::new(1 << 20),
    ///     Duration::from_millis(10), // linger
    ///     ProduceOptions::default().compression(Compression::Zstd),
    /// );
    /// assert_eq!(batches.pending(), 0);
    /// ```
    #[must_use]
    pub fn new(
        topic: &str,
        partition: i32,
        aggregator: A,
        linger: Duration,
        options: ProduceOptions,
    ) -> Self {
        Self {
            topic: topic.into(),
            partition,
            aggregator,
            linger,
            options,
            open: Vec::new(),
            open_since: None,
            flights: BTreeMap::new(),
            outputs: VecDeque::new(),
            next: 0,
        }
    }

    /// Adds an item; a full batch is produced first.
    ///
    /// # Errors
    /// The aggregator refused the item outright.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::{BatchProducer, Client, ClientConfig, Record, RecordAggregator};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// let mut batches = BatchProducer::new("orders", 0, RecordAggregator::new(1 << 20), Duration::from_millis(5), Default::default());
    /// batches.push(&mut client, now, Record::new("a"))?;
    /// assert_eq!(batches.pending(), 1);
    /// assert!(batches.poll_timeout().is_some()); // its linger ends then
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn push(
        &mut self,
        client: &mut Client,
        now: Instant,
        item: A::Item,
    ) -> Result<ItemId, ClientError> {
        let id = ItemId(self.next);
        let tag = match self.aggregator.push(item)? {
            Push::Added(tag) => tag,
            Push::Full(item) => {
                self.flush(client, now);
                match self.aggregator.push(item)? {
                    Push::Added(tag) => tag,
                    Push::Full(_) => {
                        return Err(ClientError::InvalidArgument(
                            "the aggregator has no room even in an empty batch".into(),
                        ));
                    }
                }
            }
        };
        self.next += 1;
        if self.open.is_empty() {
            self.open_since = Some(now);
        }
        self.open.push((id, tag));
        Ok(id)
    }

    /// Produces the open batch now.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::{BatchProducer, Client, ClientConfig, Record, RecordAggregator};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// let mut batches = BatchProducer::new("orders", 0, RecordAggregator::new(1 << 20), Duration::from_secs(1), Default::default());
    /// batches.push(&mut client, now, Record::new("a"))?;
    /// batches.flush(&mut client, now); // produced now, not after the linger
    /// assert_eq!(batches.poll_timeout(), None);
    /// assert_eq!(client.pending_operations(), 1);
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn flush(&mut self, client: &mut Client, now: Instant) {
        self.open_since = None;
        if self.aggregator.is_empty() && self.open.is_empty() {
            return;
        }
        let items = std::mem::take(&mut self.open);
        match self.aggregator.take() {
            Ok((records, demux)) => {
                let op = client.produce(
                    now,
                    &self.topic,
                    self.partition,
                    records,
                    self.options.clone(),
                );
                self.flights.insert(op, Flight { demux, items });
            }
            Err(e) => {
                for (id, _) in items {
                    self.outputs.push_back((id, Err(e.clone())));
                }
            }
        }
    }

    /// When the open batch's linger ends.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::{BatchProducer, Client, ClientConfig, Record, RecordAggregator};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// let mut batches = BatchProducer::new("orders", 0, RecordAggregator::new(1 << 20), Duration::from_millis(5), Default::default());
    /// assert_eq!(batches.poll_timeout(), None);
    /// batches.push(&mut client, now, Record::new("a"))?;
    /// assert_eq!(batches.poll_timeout(), Some(now + Duration::from_millis(5)));
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.open_since.map(|t| t + self.linger)
    }

    /// Produces the open batch if its linger has ended.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::{BatchProducer, Client, ClientConfig, Record, RecordAggregator};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// let mut batches = BatchProducer::new("orders", 0, RecordAggregator::new(1 << 20), Duration::from_millis(5), Default::default());
    /// batches.push(&mut client, now, Record::new("a"))?;
    /// let linger_end = batches.poll_timeout().unwrap();
    /// batches.handle_timeout(&mut client, linger_end); // the batch is produced
    /// assert_eq!(client.pending_operations(), 1);
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn handle_timeout(&mut self, client: &mut Client, now: Instant) {
        if self.poll_timeout().is_some_and(|t| t <= now) {
            self.flush(client, now);
        }
    }

    /// Takes the client's events: the ends of this producer's batches are consumed,
    /// anything else is handed back.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::{BatchProducer, Event, RecordAggregator};
    /// let mut batches = BatchProducer::new("orders", 0, RecordAggregator::new(1 << 20), Duration::from_millis(5), Default::default());
    /// // Events that are not this producer's come back, for the rest of the application.
    /// assert_eq!(batches.handle_event(Event::RecordsReady), Some(Event::RecordsReady));
    /// ```
    pub fn handle_event(&mut self, event: Event) -> Option<Event> {
        let Event::Done { op, result } = event else {
            return Some(event);
        };
        let Some(flight) = self.flights.remove(&op) else {
            return Some(Event::Done { op, result });
        };
        match result {
            Ok(OpOutput::Produced(p)) => {
                let offsets: Vec<i64> = p.offsets().collect();
                for (id, tag) in flight.items {
                    self.outputs
                        .push_back((id, flight.demux.output(&offsets, tag)));
                }
            }
            Ok(_) => {
                for (id, _) in flight.items {
                    self.outputs.push_back((id, Err(ClientError::Closed)));
                }
            }
            Err(e) => {
                for (id, _) in flight.items {
                    self.outputs.push_back((id, Err(e.clone())));
                }
            }
        }
        None
    }

    /// The next item output; `None` when there is none.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, host) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{BatchProducer, Record, RecordAggregator};
    /// let mut batches = BatchProducer::new("orders", 1, RecordAggregator::new(1 << 20), Duration::ZERO, Default::default());
    /// let now = sim.now();
    /// let id = batches.push(sim.client(host), now, Record::new("a"))?;
    /// batches.flush(sim.client(host), now);
    /// let mut output = None;
    /// sim.run_until(Duration::from_secs(10), |sim| {
    ///     for e in sim.client_events(host).collect::<Vec<_>>() {
    ///         batches.handle_event(e);
    ///     }
    ///     output = batches.poll_output();
    ///     output.is_some()
    /// });
    /// assert_eq!(output, Some((id, Ok(0))));
    /// # }
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn poll_output(&mut self) -> Option<ItemOutput<A>> {
        self.outputs.pop_front()
    }

    /// Items pushed and not yet reported.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::{BatchProducer, Client, ClientConfig, Record, RecordAggregator};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
    /// let mut batches = BatchProducer::new("orders", 0, RecordAggregator::new(1 << 20), Duration::from_millis(5), Default::default());
    /// batches.push(&mut client, now, Record::new("a"))?;
    /// batches.push(&mut client, now, Record::new("b"))?;
    /// assert_eq!(batches.pending(), 2);
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    #[must_use]
    pub fn pending(&self) -> usize {
        self.open.len() + self.flights.values().map(|f| f.items.len()).sum::<usize>()
    }
}
