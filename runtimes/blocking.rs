//! The blocking adapter over `std::net`: plain calls, safe from many threads.
//!
//! [`Connection::connect`] dials and finishes negotiation (and SASL) on the calling
//! thread, then starts one thread that drives the connection (the same driver the
//! tokio and smol adapters run, over `async-io`). A caller of [`Connection::send`]
//! hands its request to that thread and waits for its own answer; requests from many
//! threads are pipelined up to [`Config::max_in_flight`], and every deadline of the
//! sans-IO [`Connection`](crate::connection::Connection) is kept exactly.
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

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use async_io::Async;

use crate::conn_driver::Handle;
use crate::connection::{Config, ConnectionError, RequestOptions};
use crate::messages::Request;
use crate::runtime::{Error, Outcome, decode};

/// A handle to one broker connection. Clone it freely (or share it by reference
/// across threads); the connection closes when [`close`](Self::close) is called or
/// the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Connection {
    handle: Handle,
    /// Closes the connection when the last user handle goes.
    _guard: Arc<CloseOnDrop>,
}

#[derive(Debug)]
struct CloseOnDrop(Handle);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Connection {
    /// Connects to `addr`, negotiates versions and authenticates, and starts the
    /// driver thread. A SCRAM nonce left empty in the config is drawn from the OS.
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
        let stream = TcpStream::connect(addr).map_err(connect_err)?;
        let _ = stream.set_nodelay(true);
        let stream = Async::new(stream).map_err(connect_err)?;
        let (handle, driver) = async_io::block_on(crate::conn_driver::start::<
            crate::smol_net::AsyncIoNet,
        >(stream, config))?;
        std::thread::Builder::new()
            .name("kafka-sansio-connection".into())
            .spawn(move || async_io::block_on(driver))
            .map_err(connect_err)?;
        Ok(Self {
            _guard: Arc::new(CloseOnDrop(handle.clone())),
            handle,
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
        self.handle.send_with_blocking(request, options)
    }

    /// Closes the connection: outstanding requests fail, the socket is shut down.
    pub fn close(&self) {
        self.handle.close();
    }

    /// The versions the broker offers per API key, as negotiated at connect.
    #[must_use]
    pub fn broker_versions(&self) -> &std::collections::BTreeMap<i16, crate::wire::VersionRange> {
        self.handle.broker_versions()
    }

    /// The version requests of `api_key` are sent at: the highest both sides support
    /// (`None` if there is none). Lets a caller fill version-dependent fields.
    #[must_use]
    pub fn version_for(&self, api_key: crate::messages::ApiKey) -> Option<i16> {
        self.handle.version_for(api_key)
    }

    /// The error that closed the connection, once it has closed.
    #[must_use]
    pub fn closed(&self) -> Option<ConnectionError> {
        self.handle.closed()
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
}

impl Iterator for Consumer {
    type Item = Result<crate::client::ConsumedRecord, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        futures_lite::future::block_on(futures_lite::StreamExt::next(&mut self.inner))
    }
}
