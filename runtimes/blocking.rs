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
///
/// ```
/// # #[cfg(all(feature = "sim", feature = "tokio"))] {
/// # let server = kafka_sansio::doc_support::background();
/// use kafka_sansio::blocking_runtime::Connection;
/// use kafka_sansio::connection::Config;
/// use kafka_sansio::messages::MetadataRequest;
///
/// let conn = Connection::connect(server.addrs()[0], Config::new("broker-0"))?;
/// std::thread::scope(|s| {
///     for _ in 0..2 {
///         s.spawn(|| assert_eq!(conn.send(MetadataRequest::default()).unwrap().brokers.len(), 3));
///     }
/// });
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let server = kafka_sansio::doc_support::background();
    /// use kafka_sansio::blocking_runtime::Connection;
    /// use kafka_sansio::connection::Config;
    /// let conn = Connection::connect(server.addrs()[0], Config::new("broker-0"))?;
    /// assert!(conn.closed().is_none());
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
        let (handle, driver) =
            async_io::block_on(crate::conn_driver::start::<crate::smol_net::AsyncIoNet>(
                crate::smol_net::AsyncIoStream::new(stream),
                config,
            ))?;
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
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let server = kafka_sansio::doc_support::background();
    /// use kafka_sansio::blocking_runtime::Connection;
    /// use kafka_sansio::connection::Config;
    /// use kafka_sansio::messages::MetadataRequest;
    /// let conn = Connection::connect(server.addrs()[0], Config::new("broker-0"))?;
    /// let metadata = conn.send(MetadataRequest::default())?;
    /// assert_eq!(metadata.brokers.len(), 3);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send<R: Request + Send + 'static>(&self, request: R) -> Result<R::Response, Error> {
        decode::<R>(self.send_with(request, RequestOptions::default())?)
    }

    /// Sends a request with options and waits for its raw outcome.
    ///
    /// # Errors
    /// The request ends without a response.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let server = kafka_sansio::doc_support::background();
    /// use std::time::Duration;
    /// use kafka_sansio::blocking_runtime::Connection;
    /// use kafka_sansio::connection::{Config, RequestOptions};
    /// use kafka_sansio::messages::MetadataRequest;
    /// use kafka_sansio::runtime::Outcome;
    /// let conn = Connection::connect(server.addrs()[0], Config::new("broker-0"))?;
    /// let outcome = conn.send_with(MetadataRequest::default(), RequestOptions::timeout(Duration::from_secs(2)))?;
    /// let Outcome::Response(response) = outcome else { unreachable!() };
    /// assert_eq!(response.decode::<MetadataRequest>()?.brokers.len(), 3);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_with<R: Request + Send + 'static>(
        &self,
        request: R,
        options: RequestOptions,
    ) -> Result<Outcome, Error> {
        self.handle.send_with_blocking(request, options)
    }

    /// Closes the connection: outstanding requests fail, the socket is shut down.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let server = kafka_sansio::doc_support::background();
    /// use kafka_sansio::blocking_runtime::Connection;
    /// use kafka_sansio::connection::Config;
    /// use kafka_sansio::messages::MetadataRequest;
    /// let conn = Connection::connect(server.addrs()[0], Config::new("broker-0"))?;
    /// conn.close();
    /// assert!(conn.send(MetadataRequest::default()).is_err()); // nothing more is sent
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) {
        self.handle.close();
    }

    /// The versions the broker offers per API key, as negotiated at connect.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let server = kafka_sansio::doc_support::background();
    /// use kafka_sansio::blocking_runtime::Connection;
    /// use kafka_sansio::connection::Config;
    /// use kafka_sansio::messages::ApiKey;
    /// let conn = Connection::connect(server.addrs()[0], Config::new("broker-0"))?;
    /// let produce = conn.broker_versions()[&(ApiKey::Produce as i16)];
    /// assert_eq!(produce.min, 3); // like Kafka 4.0
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn broker_versions(&self) -> &std::collections::BTreeMap<i16, crate::wire::VersionRange> {
        self.handle.broker_versions()
    }

    /// The version requests of `api_key` are sent at: the highest both sides support
    /// (`None` if there is none). Lets a caller fill version-dependent fields.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let server = kafka_sansio::doc_support::background();
    /// use kafka_sansio::blocking_runtime::Connection;
    /// use kafka_sansio::connection::Config;
    /// use kafka_sansio::messages::ApiKey;
    /// let conn = Connection::connect(server.addrs()[0], Config::new("broker-0"))?;
    /// assert!(conn.version_for(ApiKey::Fetch).is_some());
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn version_for(&self, api_key: crate::messages::ApiKey) -> Option<i16> {
        self.handle.version_for(api_key)
    }

    /// The error that closed the connection, once it has closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let server = kafka_sansio::doc_support::background();
    /// use kafka_sansio::blocking_runtime::Connection;
    /// use kafka_sansio::connection::Config;
    /// use kafka_sansio::messages::MetadataRequest;
    /// use kafka_sansio::runtime::Error;
    /// let conn = Connection::connect(server.addrs()[0], Config::new("broker-0"))?;
    /// assert_eq!(conn.closed(), None); // open
    /// conn.close(); // closed() says why once the connection has closed
    /// assert!(matches!(conn.send(MetadataRequest::default()), Err(Error::Closed(_))));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn closed(&self) -> Option<ConnectionError> {
        self.handle.closed()
    }
}

/// Mirrors async methods of the facade as blocking ones: each call hands the
/// operation to the driver thread and waits for its result.
macro_rules! blocking_methods {
    ($( #[doc = $summary:literal] $(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
        $(
            #[doc = $summary]
            #[doc = ""]
            #[doc = concat!("The blocking form of the async `", stringify!($name), "`.")]
            $(#[$doc])*
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
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// let topics = client.list_topics()?;
        /// assert!(topics.iter().any(|t| &*t.name == "orders"));
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        fn list_topics(&self) -> Result<Vec<TopicMetadata>, ClientError>;
        /// These topics; missing ones are absent.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// let found = client.describe_topics(vec!["orders".into()])?;
        /// assert_eq!(found[0].partitions.len(), 3);
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        fn describe_topics(&self, topics: Vec<String>) -> Result<Vec<TopicMetadata>, ClientError>;
        /// The cluster id, controller and brokers.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// assert_eq!(client.describe_cluster()?.brokers.len(), 3);
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        fn describe_cluster(&self) -> Result<ClusterMetadata, ClientError>;
        /// Creates topics; each has its own result.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// use std::time::Duration;
        /// use kafka_sansio::client::NewTopic;
        /// let results = client.create_topics(vec![NewTopic::new("payments", 6, 3)], Duration::from_secs(30))?;
        /// assert!(results[0].result.is_ok());
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        fn create_topics(&self, topics: Vec<NewTopic>, timeout: Duration) -> Result<Vec<TopicResult>, ClientError>;
        /// Creates one topic.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// client.create_topic("payments", 6, 3)?;
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        fn create_topic(&self, name: &str, partitions: i32, replication_factor: i16) -> Result<(), ClientError>;
        /// Deletes topics; each has its own result.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// use std::time::Duration;
        /// let results = client.delete_topics(vec!["orders".into()], Duration::from_secs(30))?;
        /// assert!(results[0].result.is_ok());
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        fn delete_topics(&self, topics: Vec<String>, timeout: Duration) -> Result<Vec<TopicResult>, ClientError>;
        /// Deletes one topic.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// client.delete_topic("orders")?;
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        fn delete_topic(&self, name: &str) -> Result<(), ClientError>;
        /// Grows a topic to `total` partitions.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// client.create_partitions("orders", 4)?;
        /// assert_eq!(client.describe_topics(vec!["orders".into()])?[0].partitions.len(), 4);
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        fn create_partitions(&self, topic: &str, total: i32) -> Result<(), ClientError>;
        /// Reads configs.
        ///
        /// ```no_run
        /// # fn demo(client: kafka_sansio::blocking_runtime::Client) -> Result<(), kafka_sansio::client::ClientError> {
        /// use kafka_sansio::client::ConfigResource;
        /// let configs = client.describe_configs(vec![ConfigResource::broker(1)])?;
        /// # let _ = configs; Ok(()) }
        /// ```
        fn describe_configs(&self, resources: Vec<ConfigResource>) -> Result<DescribedConfigs, ClientError>;
        /// Changes configs incrementally.
        ///
        /// ```no_run
        /// # fn demo(client: kafka_sansio::blocking_runtime::Client) -> Result<(), kafka_sansio::client::ClientError> {
        /// use kafka_sansio::client::{AlterConfigOp, ConfigResource};
        /// let change = (ConfigResource::topic("orders"), vec![AlterConfigOp::Delete("retention.ms".into())]);
        /// for (_, result) in client.alter_configs(vec![change])? {
        ///     result?;
        /// }
        /// # Ok(()) }
        /// ```
        fn alter_configs(&self, changes: Vec<(ConfigResource, Vec<AlterConfigOp>)>) -> Result<AlteredConfigs, ClientError>;
        /// Deletes records before the given offsets.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// use std::time::Duration;
        /// let results = client.delete_records(vec![("orders".into(), 0, 0)], Duration::from_secs(30))?;
        /// assert_eq!(results[0].low_watermark, Ok(0));
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        fn delete_records(&self, partitions: Vec<(String, i32, i64)>, timeout: Duration) -> Result<Vec<DeleteRecordsResult>, ClientError>;
        /// Every group of every broker.
        ///
        /// ```no_run
        /// # fn demo(client: kafka_sansio::blocking_runtime::Client) -> Result<(), kafka_sansio::client::ClientError> {
        /// let names: Vec<String> = client.list_groups()?.into_iter().map(|g| g.group_id).collect();
        /// # let _ = names; Ok(()) }
        /// ```
        fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError>;
        /// Describes groups.
        ///
        /// ```no_run
        /// # fn demo(client: kafka_sansio::blocking_runtime::Client) -> Result<(), kafka_sansio::client::ClientError> {
        /// let billing = client.describe_groups(vec!["billing".into()])?.remove(0)?;
        /// println!("{} members", billing.members.len());
        /// # Ok(()) }
        /// ```
        fn describe_groups(&self, groups: Vec<String>) -> Result<Vec<Result<GroupDescription, ClientError>>, ClientError>;
        /// Deletes (empty) groups.
        ///
        /// ```no_run
        /// # fn demo(client: kafka_sansio::blocking_runtime::Client) -> Result<(), kafka_sansio::client::ClientError> {
        /// for (group, result) in client.delete_groups(vec!["old-billing".into()])? {
        ///     println!("{group}: {result:?}");
        /// }
        /// # Ok(()) }
        /// ```
        fn delete_groups(&self, groups: Vec<String>) -> Result<DeletedGroups, ClientError>;
        /// A snapshot of per-broker counters.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// let stats = client.stats()?;
        /// assert!(!stats.brokers.is_empty()); // the bootstrap connection at least
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        fn stats(&self) -> Result<ClientStats, ClientError>;
        /// Closes every connection and stops the driver thread.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// use kafka_sansio::client::ClientError;
        /// client.close();
        /// assert_eq!(client.list_topics(), Err(ClientError::Closed));
        /// # }
        /// ```
        fn close(&self) -> ();
    }

    /// A client for one partition; see the async `partition_client`.
    ///
    /// # Errors
    /// With `Error` handling: the topic or partition does not exist.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::UnknownTopicHandling;
    /// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Error)?;
    /// assert!(client.partition_client("orders", 7, UnknownTopicHandling::Error).is_err());
    /// # let _ = p0;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// let handle: kafka_sansio::runtime::Client = client.as_async().clone();
    /// let topics = futures_lite::future::block_on(handle.list_topics())?;
    /// # let _ = topics;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn as_async(&self) -> &crate::runtime::Client {
        &self.inner
    }
}

/// Produce, fetch and offsets for one partition, blocking; see the async
/// [`runtime::PartitionClient`](crate::runtime::PartitionClient).
///
/// ```
/// # #[cfg(all(feature = "sim", feature = "tokio"))] {
/// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
/// use kafka_sansio::client::{Record, UnknownTopicHandling};
/// use kafka_sansio::records::Compression;
/// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry)?;
/// let offsets = p0.produce(vec![Record::new("hello")], Compression::None)?;
/// let (records, _) = p0.fetch_records(offsets[0], 1..1_000_000, 500)?;
/// assert_eq!(records[0].value(), Some(&b"hello"[..]));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PartitionClient {
    inner: crate::runtime::PartitionClient,
}

impl PartitionClient {
    blocking_methods! {
        /// Produces records as one batch with acks=all; returns their offsets.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// use kafka_sansio::client::{Record, UnknownTopicHandling};
        /// use kafka_sansio::records::Compression;
        /// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry)?;
        /// assert_eq!(p0.produce(vec![Record::new("a"), Record::new("b")], Compression::Snappy)?, vec![0, 1]);
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        fn produce(&self, records: Vec<Record>, compression: crate::records::Compression) -> Result<Vec<i64>, ClientError>;
        /// Produces records with options.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// use kafka_sansio::client::{ProduceOptions, Record, UnknownTopicHandling};
        /// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry)?;
        /// let out = p0.produce_with(vec![Record::new("a")], ProduceOptions::default().acks(1))?;
        /// assert_eq!(out.base_offset, Some(0));
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        fn produce_with(&self, records: Vec<Record>, options: ProduceOptions) -> Result<ProduceOutput, ClientError>;
        /// Fetches records and the high watermark.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// use kafka_sansio::client::{Record, UnknownTopicHandling};
        /// use kafka_sansio::records::Compression;
        /// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry)?;
        /// p0.produce(vec![Record::new("a"), Record::new("b")], Compression::None)?;
        /// let (records, high_watermark) = p0.fetch_records(0, 1..1_000_000, 500)?;
        /// assert_eq!((records.len(), high_watermark), (2, 2));
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        fn fetch_records(&self, offset: i64, bytes: std::ops::Range<i32>, max_wait_ms: i32) -> Result<(Vec<FetchedRecord>, i64), ClientError>;
        /// Fetches records with options.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// use kafka_sansio::client::{FetchOptions, Record, UnknownTopicHandling};
        /// use kafka_sansio::records::Compression;
        /// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry)?;
        /// p0.produce(vec![Record::new("a")], Compression::None)?;
        /// let out = p0.fetch(0, FetchOptions::default().max_bytes(64 * 1024))?;
        /// assert_eq!(out.records.len(), 1);
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        fn fetch(&self, offset: i64, options: FetchOptions) -> Result<FetchOutput, ClientError>;
        /// Fetches records with options, lent from the response as they are read.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// use kafka_sansio::client::{FetchOptions, Record, UnknownTopicHandling};
        /// use kafka_sansio::records::Compression;
        /// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry)?;
        /// p0.produce(vec![Record::new("a"), Record::new("b")], Compression::None)?;
        /// let out = p0.fetch_record_set(1, FetchOptions::default())?;
        /// let mut reader = out.records.reader();
        /// assert_eq!(reader.next_ref().expect("a record")?.value(), Some(&b"b"[..]));
        /// assert!(reader.next_ref().is_none());
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        fn fetch_record_set(&self, offset: i64, options: FetchOptions) -> Result<FetchOutput<crate::records::RecordSet>, ClientError>;
        /// Looks up an offset.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// use kafka_sansio::client::{OffsetSpec, UnknownTopicHandling};
        /// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry)?;
        /// assert_eq!(p0.get_offset(OffsetSpec::Latest)?, 0); // empty
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        fn get_offset(&self, at: OffsetSpec) -> Result<i64, ClientError>;
        /// Deletes the records before `offset`.
        ///
        /// ```
        /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
        /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
        /// use kafka_sansio::client::{Record, UnknownTopicHandling};
        /// use kafka_sansio::records::Compression;
        /// let p0 = client.partition_client("orders", 0, UnknownTopicHandling::Retry)?;
        /// p0.produce(vec![Record::new("a"), Record::new("b")], Compression::None)?;
        /// assert_eq!(p0.delete_records(1, 5_000)?, 1);
        /// # }
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
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
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let server = kafka_sansio::doc_support::background();
    /// use kafka_sansio::runtime::ClientBuilder;
    /// let client = ClientBuilder::new(&server.bootstrap()).client_id("billing").build_blocking()?;
    /// assert_eq!(client.describe_cluster()?.brokers.len(), 3);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::ProducerRecord;
    /// let producer = client.producer();
    /// assert_eq!(producer.send(ProducerRecord::new("orders", "paid").partition(0)).wait()?.offset, Some(0));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn producer(&self) -> Producer {
        Producer {
            inner: self.inner.producer(),
        }
    }
}

impl Producer {
    /// Hands a record over at once; see the async `send`.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::ProducerRecord;
    /// let producer = client.producer();
    /// let delivery = producer.send(ProducerRecord::new("orders", "paid").key("order-17")); // returns at once
    /// let written = delivery.wait()?;
    /// assert!(written.offset.is_some());
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&self, record: crate::client::ProducerRecord) -> crate::runtime::DeliveryFuture {
        self.inner.send(record)
    }

    /// Hands a record over once the producer's byte budget has room for it,
    /// blocking until then; see the async `send_when_room`. A loop sending this way
    /// holds at most the budget, as Java's `send` does.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::ProducerRecord;
    /// let producer = client.producer();
    /// let deliveries: Vec<_> = (0..100)
    ///     .map(|i| producer.send_when_room(ProducerRecord::new("orders", format!("{i}")).partition(1)))
    ///     .collect();
    /// for (i, d) in deliveries.into_iter().enumerate() {
    ///     assert_eq!(d.wait()?.offset, Some(i as i64));
    /// }
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_when_room(
        &self,
        record: crate::client::ProducerRecord,
    ) -> crate::runtime::DeliveryFuture {
        futures_lite::future::block_on(self.inner.send_when_room(record))
    }

    /// Hands a record over if the producer's byte budget has room for it, else
    /// gives it back at once; see the async `try_send`.
    ///
    /// # Errors
    /// [`NoRoom`](crate::runtime::NoRoom), holding the record, when the budget is
    /// full.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::ProducerRecord;
    /// let producer = client.producer();
    /// match producer.try_send(ProducerRecord::new("orders", "paid")) {
    ///     Ok(delivery) => assert!(delivery.wait()?.offset.is_some()),
    ///     Err(full) => println!("no room, later: {:?}", full.into_record()),
    /// }
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[allow(clippy::result_large_err)] // the record comes back whole
    pub fn try_send(
        &self,
        record: crate::client::ProducerRecord,
    ) -> Result<crate::runtime::DeliveryFuture, crate::runtime::NoRoom> {
        self.inner.try_send(record)
    }

    /// Hands many records over at once; see the async `send_batch`.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::ProducerRecord;
    /// let records = (0..3).map(|i| ProducerRecord::new("orders", format!("{i}")).partition(1)).collect();
    /// let offsets: Vec<_> = client.producer().send_batch(records).into_iter().map(|d| d.wait().map(|m| m.offset)).collect::<Result<_, _>>()?;
    /// assert_eq!(offsets, vec![Some(0), Some(1), Some(2)]);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_batch(
        &self,
        records: Vec<crate::client::ProducerRecord>,
    ) -> Vec<crate::runtime::DeliveryFuture> {
        self.inner.send_batch(records)
    }

    /// Hands many records over with one delivery for all of them; see the async
    /// `send_all`.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::ProducerRecord;
    /// let records = (0..3).map(|i| ProducerRecord::new("orders", format!("{i}")).partition(2)).collect();
    /// let offsets: Vec<_> = client.producer().send_all(records).wait().into_iter().map(|r| r.map(|m| m.offset)).collect::<Result<_, _>>()?;
    /// assert_eq!(offsets, vec![Some(0), Some(1), Some(2)]);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_all(
        &self,
        records: Vec<crate::client::ProducerRecord>,
    ) -> crate::runtime::BatchDelivery {
        self.inner.send_all(records)
    }

    /// Hands a buffer of records over with one delivery for all of them; see the
    /// async `send_buffer`.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::{BorrowedRecord, RecordBuffer};
    /// let mut buffer = RecordBuffer::new();
    /// for value in ["a", "b", "c"] {
    ///     buffer.push(BorrowedRecord::new("orders", value.as_bytes()).partition(0));
    /// }
    /// let offsets: Vec<_> = client.producer().send_buffer(buffer).wait().into_iter().map(|r| r.map(|m| m.offset)).collect::<Result<_, _>>()?;
    /// assert_eq!(offsets, vec![Some(0), Some(1), Some(2)]);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_buffer(
        &self,
        records: crate::client::RecordBuffer,
    ) -> crate::runtime::BatchDelivery {
        self.inner.send_buffer(records)
    }

    /// Sends everything buffered and waits until every record handed over before
    /// has been delivered.
    ///
    /// # Errors
    /// The client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::ProducerRecord;
    /// let producer = client.producer();
    /// let deliveries: Vec<_> = (0..100).map(|i| producer.send(ProducerRecord::new("orders", format!("{i}")))).collect();
    /// producer.flush()?; // all 100 are delivered now
    /// for d in deliveries {
    ///     d.wait()?;
    /// }
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&self) -> Result<(), ClientError> {
        futures_lite::future::block_on(self.inner.flush())
    }

    /// Readies a transactional producer; see the async
    /// [`runtime::Producer::init_transactions`](crate::runtime::Producer::init_transactions).
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let server = kafka_sansio::doc_support::background();
    /// use kafka_sansio::client::{ProducerRecord, TopicPartition};
    /// use kafka_sansio::runtime::ClientBuilder;
    ///
    /// let client = ClientBuilder::new(&server.bootstrap())
    ///     .configure(|c| c.producer.transactional_id = Some("payments-1".into()))
    ///     .build_blocking()?;
    /// let producer = client.producer();
    /// producer.init_transactions()?;
    /// producer.begin_transaction()?;
    /// let kept = producer.send(ProducerRecord::new("orders", "paid"));
    /// producer.send_offsets_to_transaction("billing", vec![(TopicPartition::new("orders", 1), 5)])?;
    /// producer.commit_transaction()?;
    /// assert!(kept.wait()?.offset.is_some());
    ///
    /// producer.begin_transaction()?;
    /// producer.send(ProducerRecord::new("orders", "undone"));
    /// producer.abort_transaction()?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As the async call's.
    pub fn init_transactions(&self) -> Result<(), ClientError> {
        futures_lite::future::block_on(self.inner.init_transactions())
    }

    /// Opens a transaction; see
    /// [`runtime::Producer::begin_transaction`](crate::runtime::Producer::begin_transaction)
    /// (and [`init_transactions`](Self::init_transactions) for an example).
    ///
    /// # Errors
    /// As the async call's.
    pub fn begin_transaction(&self) -> Result<(), ClientError> {
        futures_lite::future::block_on(self.inner.begin_transaction())
    }

    /// Commits consumed offsets with the open transaction; see
    /// [`runtime::Producer::send_offsets_to_transaction`](crate::runtime::Producer::send_offsets_to_transaction)
    /// (and [`init_transactions`](Self::init_transactions) for an example).
    ///
    /// # Errors
    /// As the async call's.
    pub fn send_offsets_to_transaction(
        &self,
        group: &str,
        offsets: Vec<(crate::client::TopicPartition, i64)>,
    ) -> Result<(), ClientError> {
        futures_lite::future::block_on(self.inner.send_offsets_to_transaction(group, offsets))
    }

    /// Commits the open transaction; see
    /// [`runtime::Producer::commit_transaction`](crate::runtime::Producer::commit_transaction)
    /// (and [`init_transactions`](Self::init_transactions) for an example).
    ///
    /// # Errors
    /// As the async call's.
    pub fn commit_transaction(&self) -> Result<(), ClientError> {
        futures_lite::future::block_on(self.inner.commit_transaction())
    }

    /// Aborts the open transaction; see
    /// [`runtime::Producer::abort_transaction`](crate::runtime::Producer::abort_transaction)
    /// (and [`init_transactions`](Self::init_transactions) for an example).
    ///
    /// # Errors
    /// As the async call's.
    pub fn abort_transaction(&self) -> Result<(), ClientError> {
        futures_lite::future::block_on(self.inner.abort_transaction())
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
///     println!("{:?}", record?.record.value());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Consumer {
    inner: crate::runtime::Consumer,
}

impl Client {
    /// A consumer over this client's connections.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    /// client.producer().send(ProducerRecord::new("orders", "paid").partition(0)).wait()?;
    /// let mut consumer = client.consumer();
    /// consumer.assign(vec![TopicPartition::new("orders", 0)], Offset::Beginning)?;
    /// assert_eq!(consumer.next().unwrap()?.record.value(), Some(&b"paid"[..]));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    /// for v in ["a", "b"] {
    ///     client.producer().send(ProducerRecord::new("orders", v).partition(0)).wait()?;
    /// }
    /// let mut consumer = client.consumer();
    /// consumer.assign(vec![TopicPartition::new("orders", 0)], Offset::At(1))?;
    /// assert_eq!(consumer.recv()?.record.offset, 1);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn assign(
        &mut self,
        partitions: Vec<crate::client::TopicPartition>,
        start: crate::client::Offset,
    ) -> Result<(), ClientError> {
        self.inner.assign(partitions, start)
    }

    /// Stops consuming these partitions.
    ///
    /// # Errors
    /// The client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::{Offset, TopicPartition};
    /// let mut consumer = client.consumer();
    /// consumer.assign(vec![TopicPartition::new("orders", 0), TopicPartition::new("orders", 1)], Offset::End)?;
    /// consumer.unassign(vec![TopicPartition::new("orders", 1)])?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    /// client.producer().send(ProducerRecord::new("orders", "a").partition(0)).wait()?;
    /// let mut consumer = client.consumer();
    /// let p0 = TopicPartition::new("orders", 0);
    /// consumer.assign(vec![p0.clone()], Offset::Beginning)?;
    /// assert_eq!(consumer.recv()?.record.offset, 0);
    /// consumer.seek(p0, Offset::Beginning)?; // again
    /// assert_eq!(consumer.recv()?.record.offset, 0);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seek(
        &mut self,
        partition: crate::client::TopicPartition,
        to: crate::client::Offset,
    ) -> Result<(), ClientError> {
        self.inner.seek(partition, to)
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
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::{Offset, TopicPartition};
    /// let mut consumer = client.consumer();
    /// consumer.assign(vec![TopicPartition::new("orders", 0)], Offset::Beginning)?;
    /// consumer.pause(vec![TopicPartition::new("orders", 0)])?; // nothing is handed out until resume
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause(
        &mut self,
        partitions: Vec<crate::client::TopicPartition>,
    ) -> Result<(), ClientError> {
        self.inner.pause(partitions)
    }

    /// Fetches these partitions and hands out their records again.
    ///
    /// # Errors
    /// The client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    /// let mut consumer = client.consumer();
    /// let p0 = TopicPartition::new("orders", 0);
    /// consumer.assign(vec![p0.clone()], Offset::Beginning)?;
    /// consumer.pause(vec![p0.clone()])?;
    /// client.producer().send(ProducerRecord::new("orders", "a").partition(0)).wait()?;
    /// consumer.resume(vec![p0])?;
    /// assert_eq!(consumer.recv()?.record.offset, 0);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resume(
        &mut self,
        partitions: Vec<crate::client::TopicPartition>,
    ) -> Result<(), ClientError> {
        self.inner.resume(partitions)
    }

    /// Waits for the next record (or error).
    ///
    /// # Errors
    /// Consuming a partition failed, or the client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    /// client.producer().send(ProducerRecord::new("orders", "paid").partition(2)).wait()?;
    /// let mut consumer = client.consumer();
    /// consumer.assign(vec![TopicPartition::new("orders", 2)], Offset::Beginning)?;
    /// let r = consumer.recv()?;
    /// assert_eq!((r.partition, r.record.offset), (2, 0));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv(&mut self) -> Result<crate::client::ConsumedRecord, ClientError> {
        futures_lite::future::block_on(self.inner.recv())
    }

    /// Waits at most `timeout` for the next record (or error); `Ok(None)` when none
    /// came in time. The loop of a consumer that must also notice a shutdown flag or
    /// do other work between records (Java's `poll(Duration)`). Nothing is lost when
    /// the time runs out: a record arriving later waits for the next call.
    ///
    /// # Errors
    /// Consuming a partition failed, or the client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    /// let mut consumer = client.consumer();
    /// consumer.assign(vec![TopicPartition::new("orders", 1)], Offset::Beginning)?;
    /// // an empty partition: the call returns after the timeout
    /// assert!(consumer.recv_timeout(Duration::from_millis(50))?.is_none());
    /// client.producer().send(ProducerRecord::new("orders", "late").partition(1)).wait()?;
    /// let r = consumer.recv_timeout(Duration::from_secs(10))?.expect("a record");
    /// assert_eq!(r.record.value(), Some(&b"late"[..]));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<crate::client::ConsumedRecord>, ClientError> {
        let inner = &mut self.inner;
        within(timeout, async move { inner.recv().await }).transpose()
    }

    /// Every record buffered now, or waits for some (or an error); see the async
    /// [`Consumer::recv_batch`](crate::runtime::Consumer::recv_batch).
    ///
    /// # Errors
    /// Consuming a partition failed, or the client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
    /// let producer = client.producer();
    /// let sent: Vec<_> = (0..3).map(|i| producer.send(ProducerRecord::new("orders", format!("{i}")).partition(0))).collect();
    /// for delivery in sent {
    ///     delivery.wait()?;
    /// }
    /// let mut consumer = client.consumer();
    /// consumer.assign(vec![TopicPartition::new("orders", 0)], Offset::Beginning)?;
    /// let mut got = Vec::new();
    /// while got.len() < 3 {
    ///     got.extend(consumer.recv_batch()?); // one or more records
    /// }
    /// assert_eq!(got.iter().map(|r| r.record.offset).collect::<Vec<_>>(), vec![0, 1, 2]);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_batch(&mut self) -> Result<Vec<crate::client::ConsumedRecord>, ClientError> {
        futures_lite::future::block_on(self.inner.recv_batch())
    }

    /// The position of each partition this consumer reads: the offset of the next
    /// record it will hand out; see the async
    /// [`Consumer::positions`](crate::runtime::Consumer::positions).
    ///
    /// # Errors
    /// The client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::{Offset, TopicPartition};
    /// // Two records in a transaction that aborts: read_uncommitted reads them, then
    /// // the marker at 2 moves the position to 3.
    /// server.with_cluster(|c, now| {
    ///     c.write_in_transaction("tx", "orders", 1, &[b"a", b"b"], now)?;
    ///     c.complete_transaction("tx", false, now);
    ///     Ok::<_, kafka_sansio::sim::SimError>(())
    /// })?;
    /// let mut consumer = client.consumer();
    /// let p1 = TopicPartition::new("orders", 1);
    /// consumer.assign(vec![p1.clone()], Offset::Beginning)?;
    /// assert_eq!(consumer.recv()?.record.offset, 0);
    /// // One record is still to be handed out (or fetched): the position is at most 1.
    /// assert!(consumer.positions()?.iter().all(|(_, o)| *o <= 1));
    /// assert_eq!(consumer.recv()?.record.offset, 1);
    /// let mut position = 0;
    /// while position < 3 {
    ///     position = consumer.positions()?.into_iter().find(|(tp, _)| *tp == p1).map_or(0, |(_, o)| o);
    /// }
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn positions(&mut self) -> Result<Vec<(crate::client::TopicPartition, i64)>, ClientError> {
        futures_lite::future::block_on(self.inner.positions())
    }

    /// As [`recv_batch`](Self::recv_batch), waiting at most `timeout`: an empty
    /// vector when nothing came in time (Java's `poll(Duration)`).
    ///
    /// # Errors
    /// Consuming a partition failed, or the client is closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Offset, TopicPartition};
    /// let mut consumer = client.consumer();
    /// consumer.assign(vec![TopicPartition::new("orders", 2)], Offset::Beginning)?;
    /// assert!(consumer.recv_batch_timeout(Duration::from_millis(50))?.is_empty());
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_batch_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Vec<crate::client::ConsumedRecord>, ClientError> {
        let inner = &mut self.inner;
        Ok(within(timeout, async move { inner.recv_batch().await })
            .transpose()?
            .unwrap_or_default())
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

    /// Commits (with auto-commit on), then leaves the group; see
    /// [`Consumer::close`](crate::runtime::Consumer::close).
    ///
    /// # Errors
    /// The commit or the leave failed, or the client is closed.
    pub fn close(self) -> Result<(), ClientError> {
        futures_lite::future::block_on(self.inner.close())
    }
}

/// Runs `work` on this thread for at most `timeout`: `None` when the time ran out
/// first (the future is dropped there, which the consumer's receive survives: it
/// takes a record only when it hands it out).
fn within<T>(timeout: Duration, work: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::block_on(futures_lite::future::or(
        async { Some(work.await) },
        async {
            async_io::Timer::after(timeout).await;
            None
        },
    ))
}

impl Iterator for Consumer {
    type Item = Result<crate::client::ConsumedRecord, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        futures_lite::future::block_on(futures_lite::StreamExt::next(&mut self.inner))
    }
}
