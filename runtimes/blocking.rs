//! The blocking adapter over `std::net`: plain calls, safe from many threads.
//!
//! [`Connection::connect`] dials and finishes negotiation (and SASL) on the calling
//! thread, then starts one reader thread. A caller of [`Connection::send`] hands its
//! request to the sans-IO [`Connection`](crate::connection::Connection), writes what it
//! emits, and waits for its own answer; the reader thread feeds the socket's bytes in
//! and wakes whichever callers were answered. Requests from many threads are
//! pipelined up to [`Config::max_in_flight`].
//!
//! Timeouts are checked whenever bytes arrive and at least every
//! [`TIMER_GRANULARITY`], since a blocked read cannot be woken early.
//!
//! ```no_run
//! use kafka_sansio::blocking_runtime::Connection;
//! use kafka_sansio::connection::Config;
//! use kafka_sansio::messages::MetadataRequest;
//!
//! let conn = Connection::connect("127.0.0.1:9092", Config::new("bootstrap"))?;
//! let metadata = conn.send(MetadataRequest::default())?;
//! println!("{} brokers", metadata.brokers.len());
//! # Ok::<(), kafka_sansio::runtime::Error>(())
//! ```
// The adapters are the crate's I/O boundary: the only code allowed sockets,
// threads, timers and the clock (see tests/connection_no_io.rs for src/).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::connection::{self as sansio, Config, ConnectionError, RequestOptions};
use crate::messages::Request;
use crate::runtime::{Core, Error, Outcome, decode, now, submit};

/// The longest the reader thread blocks before it checks deadlines.
pub const TIMER_GRANULARITY: Duration = Duration::from_millis(20);

const READ_CHUNK: usize = 64 * 1024;

struct Shared {
    /// Taken with `try_lock` only while `core` is held (see [`flush`]).
    core: Mutex<Core>,
    writer: Mutex<TcpStream>,
    broker: Arc<str>,
}

/// A handle to one broker connection. Clone it freely (or share it by reference
/// across threads); the connection closes when [`close`](Self::close) is called or
/// the last handle is dropped.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
    versions: crate::runtime::Versions,
    _guard: Arc<CloseOnDrop>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("broker", &self.shared.broker)
            .finish_non_exhaustive()
    }
}

/// Closes the connection when the last user handle goes (the reader thread holds
/// only `Shared`).
struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let mut core = lock(&self.0.core);
        core.conn.close();
        core.pump();
        drop(core);
        let _ = lock(&self.0.writer).shutdown(Shutdown::Both);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the state machine consistent enough to
    // fail requests; keep going rather than poisoning every caller.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Connection {
    /// Connects to `addr`, negotiates versions and authenticates, and starts the
    /// reader thread. A SCRAM nonce left empty in the config is drawn from the OS.
    ///
    /// # Errors
    /// The TCP connection fails, or the connection fails before it is ready.
    pub fn connect(
        addr: impl ToSocketAddrs + std::fmt::Display,
        config: Config,
    ) -> Result<Self, Error> {
        let addr_text = addr.to_string();
        let connect_err = |source| Error::Connect {
            addr: addr_text.clone(),
            source,
        };
        let mut stream = TcpStream::connect(addr).map_err(connect_err)?;
        let _ = stream.set_nodelay(true);
        let broker = config.broker.clone();
        let mut core = Core::new(sansio::Connection::new(
            crate::runtime::with_nonce(config),
            now(),
        ));
        let mut buf = vec![0; READ_CHUNK];
        // Setup runs on this thread: write, read, repeat until ready.
        while core.closed.is_none() && !(core.ready && core.out.is_empty()) {
            if let Some(chunk) = core.out.pop_front() {
                if let Err(e) = stream.write_all(&chunk) {
                    core.conn.handle_transport_error(now(), e);
                }
            } else {
                let wait = read_timeout(&core);
                let _ = stream.set_read_timeout(Some(wait));
                read_once(&mut stream, &mut buf, &mut core);
            }
            core.pump();
        }
        if let Some(e) = core.closed.clone() {
            return Err(Error::Closed(e));
        }
        let versions = crate::runtime::versions_of(&core);
        let reader = stream.try_clone().map_err(connect_err)?;
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            writer: Mutex::new(stream),
            broker,
        });
        let for_reader = shared.clone();
        std::thread::Builder::new()
            .name("kafka-sansio-reader".into())
            .spawn(move || reader_loop(&for_reader, reader))
            .map_err(connect_err)?;
        Ok(Self {
            _guard: Arc::new(CloseOnDrop(shared.clone())),
            versions,
            shared,
        })
    }

    /// Sends a request and waits for its typed response.
    ///
    /// # Errors
    /// The request ends without a response (timeout, unsupported, connection failure),
    /// the response does not decode, or the request is an acks=0 Produce
    /// ([`Error::NoResponse`], after it was written).
    pub fn send<R: Request + Send + 'static>(&self, request: R) -> Result<R::Response, Error> {
        decode::<R>(self.send_with(request, RequestOptions::default())?)
    }

    /// Sends a request with options and waits for its raw outcome.
    ///
    /// # Errors
    /// The request ends without a response.
    pub fn send_with<R: Request + Send + 'static>(
        &self,
        request: R,
        options: RequestOptions,
    ) -> Result<Outcome, Error> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let mut core = lock(&self.shared.core);
        core.submit(
            now(),
            submit(request, options),
            Box::new(move |r| {
                let _ = tx.try_send(r);
            }),
        );
        flush(&self.shared, core);
        rx.recv().unwrap_or_else(|_| Err(self.gone()))
    }

    /// Closes the connection: outstanding requests fail, the socket is shut down.
    pub fn close(&self) {
        let mut core = lock(&self.shared.core);
        core.conn.close();
        core.pump();
        drop(core);
        let _ = lock(&self.shared.writer).shutdown(Shutdown::Both);
    }

    /// The versions the broker offers per API key, as negotiated at connect.
    #[must_use]
    pub fn broker_versions(&self) -> &std::collections::BTreeMap<i16, crate::wire::VersionRange> {
        &self.versions
    }

    /// The version requests of `api_key` are sent at: the highest both sides support
    /// (`None` if there is none). Lets a caller fill version-dependent fields.
    #[must_use]
    pub fn version_for(&self, api_key: crate::messages::ApiKey) -> Option<i16> {
        crate::runtime::version_for(&self.versions, api_key)
    }

    /// The error that closed the connection, once it has closed.
    #[must_use]
    pub fn closed(&self) -> Option<ConnectionError> {
        lock(&self.shared.core).closed.clone()
    }

    fn gone(&self) -> Error {
        Error::Closed(self.closed().unwrap_or_else(|| ConnectionError {
            broker: self.shared.broker.clone(),
            kind: sansio::ConnectionErrorKind::ClosedLocally,
        }))
    }
}

/// Writes whatever the core emitted, in order, unless another thread is writing: then
/// that thread writes these chunks too. Whoever holds the writer lock keeps writing
/// until it finds the outgoing queue empty *while holding the core lock*, and only
/// then lets go, so no chunk is ever stranded. Nobody blocks on the writer lock while
/// holding the core lock, so the reader thread can always feed responses in even
/// while a large request is being written (no write/read deadlock).
fn flush<'a>(shared: &'a Shared, mut core: MutexGuard<'a, Core>) {
    if core.out.is_empty() {
        return;
    }
    let mut writer = match shared.writer.try_lock() {
        Ok(w) => w,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    loop {
        let chunks: Vec<_> = core.out.drain(..).collect();
        if chunks.is_empty() {
            drop(writer);
            return;
        }
        drop(core);
        for chunk in chunks {
            if let Err(e) = writer.write_all(&chunk) {
                drop(writer);
                let mut core = lock(&shared.core);
                core.conn.handle_transport_error(now(), e);
                core.pump();
                return;
            }
        }
        core = lock(&shared.core);
    }
}

fn read_timeout(core: &Core) -> Duration {
    let wait = core
        .conn
        .poll_timeout()
        .map_or(TIMER_GRANULARITY, |d| d.saturating_duration_since(now()));
    wait.clamp(Duration::from_millis(1), TIMER_GRANULARITY)
}

/// One read (or read timeout) fed to the core.
fn read_once(stream: &mut TcpStream, buf: &mut [u8], core: &mut Core) {
    match stream.read(buf) {
        Ok(0) => core.conn.handle_eof(now()),
        Ok(n) => core.conn.handle_input(now(), &buf[..n]),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            core.conn.handle_timeout(now());
        }
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
        Err(e) => core.conn.handle_transport_error(now(), e),
    }
}

fn reader_loop(shared: &Shared, mut stream: TcpStream) {
    let mut buf = vec![0; READ_CHUNK];
    loop {
        let wait = read_timeout(&lock(&shared.core));
        let _ = stream.set_read_timeout(Some(wait));
        let result = stream.read(&mut buf);
        let mut core = lock(&shared.core);
        let now = now();
        match result {
            Ok(0) => core.conn.handle_eof(now),
            Ok(n) => core.conn.handle_input(now, &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => core.conn.handle_transport_error(now, e),
        }
        core.conn.handle_timeout(now);
        core.pump();
        if core.closed.is_some() {
            drop(core);
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        flush(shared, core);
    }
}

/// Mirrors async methods of the facade as blocking ones: each call hands the
/// operation to the driver thread and waits for its result.
macro_rules! blocking_methods {
    ($( $(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
        $(
            $(#[$doc])*
            #[doc = ""]
            #[doc = concat!("The blocking form of the async `", stringify!($name), "`.")]
            pub fn $name(&self $(, $arg: $ty)*) -> $ret {
                futures_lite::future::block_on(self.inner.$name($($arg),*))
            }
        )*
    };
}

/// A handle to a Kafka cluster for blocking code: the same calls as the async
/// [`runtime::Client`](crate::runtime::Client), without `async`. A thread of its own
/// drives the connections; handles are cheap to clone and safe to share.
///
/// ```no_run
/// use kafka_sansio::client::{Record, UnknownTopicHandling};
/// use kafka_sansio::records::Compression;
/// use kafka_sansio::runtime::ClientBuilder;
///
/// # fn demo() -> Result<(), kafka_sansio::client::ClientError> {
/// let client = ClientBuilder::new("localhost:9092").build_blocking()?;
/// client.create_topic("orders", 3, 1)?;
/// let partition = client.partition_client("orders", 0, UnknownTopicHandling::Retry)?;
/// let offsets = partition.produce(vec![Record::new("hello")], Compression::None)?;
/// let (records, _high_watermark) = partition.fetch_records(offsets[0], 1..1_000_000, 500)?;
/// assert_eq!(records.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: crate::runtime::Client,
}

use crate::client::{
    AlterConfigOp, AlteredConfigs, ClientError, ClientStats, ClusterMetadata, ConfigResource,
    DeleteRecordsResult, DeletedGroups, DescribedConfigs, FetchOptions, FetchOutput, FetchedRecord,
    GroupDescription, GroupListing, NewTopic, OffsetSpec, ProduceOptions, ProduceOutput, Record,
    TopicMetadata, TopicResult, UnknownTopicHandling,
};

impl Client {
    blocking_methods! {
        /// Every topic of the cluster.
        fn list_topics(&self) -> Result<Vec<TopicMetadata>, ClientError>;
        /// These topics; missing ones are absent.
        fn describe_topics(&self, topics: Vec<String>) -> Result<Vec<TopicMetadata>, ClientError>;
        /// The cluster id, controller and brokers.
        fn describe_cluster(&self) -> Result<ClusterMetadata, ClientError>;
        /// Creates topics; each has its own result.
        fn create_topics(&self, topics: Vec<NewTopic>, timeout: Duration) -> Result<Vec<TopicResult>, ClientError>;
        /// Creates one topic.
        fn create_topic(&self, name: &str, partitions: i32, replication_factor: i16) -> Result<(), ClientError>;
        /// Deletes topics; each has its own result.
        fn delete_topics(&self, topics: Vec<String>, timeout: Duration) -> Result<Vec<TopicResult>, ClientError>;
        /// Deletes one topic.
        fn delete_topic(&self, name: &str) -> Result<(), ClientError>;
        /// Grows a topic to `total` partitions.
        fn create_partitions(&self, topic: &str, total: i32) -> Result<(), ClientError>;
        /// Reads configs.
        fn describe_configs(&self, resources: Vec<ConfigResource>) -> Result<DescribedConfigs, ClientError>;
        /// Changes configs incrementally.
        fn alter_configs(&self, changes: Vec<(ConfigResource, Vec<AlterConfigOp>)>) -> Result<AlteredConfigs, ClientError>;
        /// Deletes records before the given offsets.
        fn delete_records(&self, partitions: Vec<(String, i32, i64)>, timeout: Duration) -> Result<Vec<DeleteRecordsResult>, ClientError>;
        /// Every group of every broker.
        fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError>;
        /// Describes groups.
        fn describe_groups(&self, groups: Vec<String>) -> Result<Vec<Result<GroupDescription, ClientError>>, ClientError>;
        /// Deletes (empty) groups.
        fn delete_groups(&self, groups: Vec<String>) -> Result<DeletedGroups, ClientError>;
        /// A snapshot of per-broker counters.
        fn stats(&self) -> Result<ClientStats, ClientError>;
        /// Closes every connection and stops the driver thread.
        fn close(&self) -> ();
    }

    /// A client for one partition; see the async `partition_client`.
    ///
    /// # Errors
    /// With `Error` handling: the topic or partition does not exist.
    pub fn partition_client(
        &self,
        topic: &str,
        partition: i32,
        unknown_topic: UnknownTopicHandling,
    ) -> Result<PartitionClient, ClientError> {
        let inner = futures_lite::future::block_on(self.inner.partition_client(
            topic,
            partition,
            unknown_topic,
        ))?;
        Ok(PartitionClient { inner })
    }

    /// The async handle to the same client, for code that mixes both.
    #[must_use]
    pub fn as_async(&self) -> &crate::runtime::Client {
        &self.inner
    }
}

/// Produce, fetch and offsets for one partition, blocking; see the async
/// [`runtime::PartitionClient`](crate::runtime::PartitionClient).
#[derive(Debug, Clone)]
pub struct PartitionClient {
    inner: crate::runtime::PartitionClient,
}

impl PartitionClient {
    blocking_methods! {
        /// Produces records as one batch with acks=all; returns their offsets.
        fn produce(&self, records: Vec<Record>, compression: crate::records::Compression) -> Result<Vec<i64>, ClientError>;
        /// Produces records with options.
        fn produce_with(&self, records: Vec<Record>, options: ProduceOptions) -> Result<ProduceOutput, ClientError>;
        /// Fetches records and the high watermark.
        fn fetch_records(&self, offset: i64, bytes: std::ops::Range<i32>, max_wait_ms: i32) -> Result<(Vec<FetchedRecord>, i64), ClientError>;
        /// Fetches records with options.
        fn fetch(&self, offset: i64, options: FetchOptions) -> Result<FetchOutput, ClientError>;
        /// Looks up an offset.
        fn get_offset(&self, at: OffsetSpec) -> Result<i64, ClientError>;
        /// Deletes the records before `offset`.
        fn delete_records(&self, offset: i64, timeout_ms: i32) -> Result<i64, ClientError>;
    }
}

impl crate::runtime::ClientBuilder {
    /// Starts the client's driver on a thread of its own and checks that the cluster
    /// answers (within the connect timeout).
    ///
    /// # Errors
    /// The configuration is invalid, no bootstrap broker answered in time, or the
    /// thread could not be started.
    pub fn build_blocking(self) -> Result<Client, ClientError> {
        let timeout = self.bootstrap_timeout();
        let (core, client, commands, tls) = self.parts()?;
        let driver = crate::driver::Driver::<crate::smol_net::AsyncIoNet>::new(core, commands, tls);
        std::thread::Builder::new()
            .name("kafka-sansio-client".into())
            .spawn(move || async_io::block_on(driver))
            .map_err(|e| {
                ClientError::InvalidArgument(format!("cannot start the driver thread: {e}"))
            })?;
        futures_lite::future::block_on(Self::bootstrap(&client, timeout))?;
        Ok(Client { inner: client })
    }
}

/// The client's producer for blocking code: the same calls as the async
/// [`runtime::Producer`](crate::runtime::Producer); `send` returns at once and each
/// delivery can be waited for with [`DeliveryFuture::wait`](crate::runtime::DeliveryFuture::wait).
///
/// ```no_run
/// use kafka_sansio::client::ProducerRecord;
/// use kafka_sansio::runtime::ClientBuilder;
///
/// # fn demo() -> Result<(), kafka_sansio::client::ClientError> {
/// let producer = ClientBuilder::new("localhost:9092").build_blocking()?.producer();
/// let delivery = producer.send(ProducerRecord::new("events", "hello"));
/// producer.flush()?;
/// println!("offset {:?}", delivery.wait()?.offset);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Producer {
    inner: crate::runtime::Producer,
}

impl Client {
    /// The client's producer.
    #[must_use]
    pub fn producer(&self) -> Producer {
        Producer {
            inner: self.inner.producer(),
        }
    }
}

impl Producer {
    /// Hands a record over at once; see the async `send`.
    pub fn send(&self, record: crate::client::ProducerRecord) -> crate::runtime::DeliveryFuture {
        self.inner.send(record)
    }

    /// Hands many records over at once; see the async `send_batch`.
    pub fn send_batch(
        &self,
        records: Vec<crate::client::ProducerRecord>,
    ) -> Vec<crate::runtime::DeliveryFuture> {
        self.inner.send_batch(records)
    }

    /// Sends everything buffered and waits until every record handed over before
    /// has been delivered.
    ///
    /// # Errors
    /// The client is closed.
    pub fn flush(&self) -> Result<(), ClientError> {
        futures_lite::future::block_on(self.inner.flush())
    }
}

/// A consumer for blocking code: an iterator of records that keeps going after
/// errors; see the async [`runtime::Consumer`](crate::runtime::Consumer).
///
/// ```no_run
/// use kafka_sansio::client::{Offset, TopicPartition};
/// use kafka_sansio::runtime::ClientBuilder;
///
/// # fn demo() -> Result<(), kafka_sansio::client::ClientError> {
/// let mut consumer = ClientBuilder::new("localhost:9092").build_blocking()?.consumer();
/// consumer.assign(vec![TopicPartition::new("orders", 0)], Offset::Beginning)?;
/// for record in consumer.by_ref().take(10) {
///     println!("{:?}", record?.record.value);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Consumer {
    inner: crate::runtime::Consumer,
}

impl Client {
    /// A consumer over this client's connections.
    #[must_use]
    pub fn consumer(&self) -> Consumer {
        Consumer {
            inner: self.inner.consumer(),
        }
    }
}

impl Consumer {
    /// Consumes these partitions (no group), each from `start`.
    ///
    /// # Errors
    /// The client is closed.
    pub fn assign(
        &self,
        partitions: Vec<crate::client::TopicPartition>,
        start: crate::client::Offset,
    ) -> Result<(), ClientError> {
        self.inner.assign(partitions, start)
    }

    /// Stops consuming these partitions.
    ///
    /// # Errors
    /// The client is closed.
    pub fn unassign(
        &mut self,
        partitions: Vec<crate::client::TopicPartition>,
    ) -> Result<(), ClientError> {
        self.inner.unassign(partitions)
    }

    /// Moves a partition's position.
    ///
    /// # Errors
    /// The client is closed.
    pub fn seek(
        &mut self,
        partition: crate::client::TopicPartition,
        to: crate::client::Offset,
    ) -> Result<(), ClientError> {
        self.inner.seek(partition, to)
    }

    /// Stops fetching these partitions.
    ///
    /// # Errors
    /// The client is closed.
    pub fn pause(&self, partitions: Vec<crate::client::TopicPartition>) -> Result<(), ClientError> {
        self.inner.pause(partitions)
    }

    /// Fetches these partitions again.
    ///
    /// # Errors
    /// The client is closed.
    pub fn resume(
        &self,
        partitions: Vec<crate::client::TopicPartition>,
    ) -> Result<(), ClientError> {
        self.inner.resume(partitions)
    }

    /// Waits for the next record (or error).
    ///
    /// # Errors
    /// Consuming a partition failed, or the client is closed.
    pub fn recv(&mut self) -> Result<crate::client::ConsumedRecord, ClientError> {
        futures_lite::future::block_on(self.inner.recv())
    }

    /// Joins the configured consumer group for these topics; see the async
    /// [`Consumer::subscribe`](crate::runtime::Consumer::subscribe).
    ///
    /// ```
    /// # #[cfg(all(feature = "tokio", feature = "sim"))]
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use kafka_sansio::client::{OffsetReset, ProducerRecord};
    /// use kafka_sansio::runtime::ClientBuilder;
    /// use kafka_sansio::sim::ClusterConfig;
    /// use kafka_sansio::sim_server::BackgroundServer;
    ///
    /// let server = BackgroundServer::start(ClusterConfig { base_port: 0, ..Default::default() })?;
    /// server.with_cluster(|cluster, _| cluster.create_topic("invoices", 1, 1))?;
    /// let client = ClientBuilder::new(&server.bootstrap())
    ///     .group_id("billing")
    ///     .configure(|c| c.consumer.auto_offset_reset = OffsetReset::Earliest)
    ///     .build_blocking()?;
    /// client.producer().send(ProducerRecord::new("invoices", "one")).wait()?;
    /// let mut consumer = client.consumer();
    /// consumer.subscribe(["invoices"])?;
    /// let record = consumer.recv()?;
    /// assert_eq!(record.record.offset, 0);
    /// consumer.commit()?;
    /// consumer.close()?;
    /// # Ok(()) }
    /// # #[cfg(not(all(feature = "tokio", feature = "sim")))]
    /// # fn main() {}
    /// ```
    ///
    /// # Errors
    /// The client is closed.
    pub fn subscribe<T: Into<String>>(
        &mut self,
        topics: impl IntoIterator<Item = T>,
    ) -> Result<(), ClientError> {
        self.inner.subscribe(topics)
    }

    /// The rebalances received since the last call; each is acknowledged when the
    /// application next asks for records.
    pub fn rebalances(&mut self) -> Vec<crate::runtime::Rebalance> {
        self.inner.rebalances()
    }

    /// The partitions the group gave this member.
    #[must_use]
    pub fn assignment(&self) -> Vec<crate::client::TopicPartition> {
        self.inner.assignment()
    }

    /// Commits what was handed to the application and waits for the answer.
    ///
    /// # Errors
    /// As [`Consumer::commit`](crate::runtime::Consumer::commit).
    pub fn commit(&self) -> Result<Vec<(crate::client::TopicPartition, i64)>, ClientError> {
        futures_lite::future::block_on(self.inner.commit())
    }

    /// Starts the same commit without waiting; its outcome is not reported (a later
    /// [`commit`](Self::commit) waits behind it, commits go in order).
    ///
    /// # Errors
    /// The client is closed.
    pub fn commit_async(&self) -> Result<(), ClientError> {
        self.inner.commit_async().map(drop)
    }

    /// Commits, then leaves the group; see
    /// [`Consumer::close`](crate::runtime::Consumer::close).
    ///
    /// # Errors
    /// The commit or the leave failed, or the client is closed.
    pub fn close(self) -> Result<(), ClientError> {
        futures_lite::future::block_on(self.inner.close())
    }
}

impl Iterator for Consumer {
    type Item = Result<crate::client::ConsumedRecord, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        futures_lite::future::block_on(futures_lite::StreamExt::next(&mut self.inner))
    }
}
