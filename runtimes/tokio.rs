//! The tokio adapter: one task per connection carries bytes between a
//! [`tokio::net::TcpStream`] and the sans-IO [`Connection`](crate::connection::Connection).
//!
//! [`Connection::connect`] dials, runs version negotiation (and SASL) to completion,
//! then spawns the driver task and hands back a cheap, cloneable handle. Any number of
//! tasks may call [`Connection::send`] at once; requests are pipelined up to
//! [`Config::max_in_flight`]. Dropping a `send` future is safe: only the driver task
//! touches the socket, so a cancelled call cannot leave half a request on the wire;
//! its response is read and discarded.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kafka_sansio::runtime::Error> {
//! use kafka_sansio::connection::Config;
//! use kafka_sansio::messages::MetadataRequest;
//! use kafka_sansio::tokio_runtime::Connection;
//!
//! let conn = Connection::connect("127.0.0.1:9092", Config::new("bootstrap")).await?;
//! let metadata = conn.send(MetadataRequest::default()).await?;
//! println!("{} brokers", metadata.brokers.len());
//! # Ok(()) }
//! ```
// The adapters are the crate's I/O boundary: the only code allowed sockets,
// threads, timers and the clock (see tests/connection_no_io.rs for src/).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::time::Instant;

use tokio::net::{TcpStream, ToSocketAddrs};

use crate::conn_driver::Handle;
use crate::connection::{Config, ConnectionError, RequestOptions};
use crate::messages::Request;
use crate::runtime::{Error, Outcome, decode};

/// A handle to one broker connection driven by a tokio task. Clone it freely; the
/// connection closes when the last handle is dropped.
///
/// ```
/// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
/// # let server = kafka_sansio::doc_support::serve().await;
/// use kafka_sansio::connection::Config;
/// use kafka_sansio::messages::MetadataRequest;
/// use kafka_sansio::tokio_runtime::Connection;
///
/// let conn = Connection::connect(server.addrs()[0], Config::new("broker-0")).await?;
/// let (a, b) = (conn.clone(), conn.clone()); // pipelined on one socket
/// let (m1, m2) = tokio::join!(a.send(MetadataRequest::default()), b.send(MetadataRequest::default()));
/// assert_eq!(m1?.brokers, m2?.brokers);
/// # Ok(()) });
/// ```
#[derive(Debug, Clone)]
pub struct Connection {
    handle: Handle,
}

impl Connection {
    /// Connects to `addr`, negotiates versions and authenticates, then spawns the
    /// driver on the current tokio runtime. A SCRAM nonce left empty in the config is
    /// drawn from the operating system.
    ///
    /// # Errors
    /// The TCP connection fails, or the connection fails before it is ready.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let server = kafka_sansio::doc_support::serve().await;
    /// use kafka_sansio::connection::Config;
    /// use kafka_sansio::tokio_runtime::Connection;
    ///
    /// let conn = Connection::connect(server.addrs()[0], Config::new("broker-0")).await?;
    /// assert!(conn.closed().is_none());
    /// # Ok(()) });
    /// ```
    pub async fn connect(
        addr: impl ToSocketAddrs + std::fmt::Display,
        config: Config,
    ) -> Result<Self, Error> {
        let addr_text = addr.to_string();
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| Error::Connect {
                addr: addr_text,
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let (handle, driver) = crate::conn_driver::start::<TokioNet>(stream, config).await?;
        tokio::spawn(driver);
        Ok(Self { handle })
    }

    /// Sends a request and waits for its typed response.
    ///
    /// # Errors
    /// The request ends without a response (timeout, unsupported, connection failure),
    /// the response does not decode, or the request is an acks=0 Produce
    /// ([`Error::NoResponse`], after it was written).
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let server = kafka_sansio::doc_support::serve().await;
    /// use kafka_sansio::connection::Config;
    /// use kafka_sansio::messages::MetadataRequest;
    /// use kafka_sansio::tokio_runtime::Connection;
    ///
    /// let conn = Connection::connect(server.addrs()[0], Config::new("broker-0")).await?;
    /// let metadata = conn.send(MetadataRequest::default()).await?;
    /// assert_eq!(metadata.brokers.len(), 3);
    /// # Ok(()) });
    /// ```
    pub async fn send<R: Request + Send + 'static>(
        &self,
        request: R,
    ) -> Result<R::Response, Error> {
        decode::<R>(self.send_with(request, RequestOptions::default()).await?)
    }

    /// Sends a request with options and waits for its raw outcome.
    ///
    /// # Errors
    /// The request ends without a response.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let server = kafka_sansio::doc_support::serve().await;
    /// use std::time::Duration;
    /// use kafka_sansio::connection::{Config, RequestOptions};
    /// use kafka_sansio::messages::MetadataRequest;
    /// use kafka_sansio::runtime::Outcome;
    /// use kafka_sansio::tokio_runtime::Connection;
    ///
    /// let conn = Connection::connect(server.addrs()[0], Config::new("broker-0")).await?;
    /// let outcome = conn.send_with(MetadataRequest::default(), RequestOptions::timeout(Duration::from_secs(2))).await?;
    /// assert!(matches!(outcome, Outcome::Response(_)));
    /// # Ok(()) });
    /// ```
    pub async fn send_with<R: Request + Send + 'static>(
        &self,
        request: R,
        options: RequestOptions,
    ) -> Result<Outcome, Error> {
        self.handle.send_with(request, options).await
    }

    /// The versions the broker offers per API key, as negotiated at connect.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let server = kafka_sansio::doc_support::serve().await;
    /// use kafka_sansio::connection::Config;
    /// use kafka_sansio::messages::ApiKey;
    /// use kafka_sansio::tokio_runtime::Connection;
    ///
    /// let conn = Connection::connect(server.addrs()[0], Config::new("broker-0")).await?;
    /// assert!(conn.broker_versions().contains_key(&(ApiKey::Fetch as i16)));
    /// # Ok(()) });
    /// ```
    #[must_use]
    pub fn broker_versions(&self) -> &std::collections::BTreeMap<i16, crate::wire::VersionRange> {
        self.handle.broker_versions()
    }

    /// The version requests of `api_key` are sent at: the highest both sides support
    /// (`None` if there is none). Lets a caller fill version-dependent fields.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let server = kafka_sansio::doc_support::serve().await;
    /// use kafka_sansio::connection::Config;
    /// use kafka_sansio::messages::ApiKey;
    /// use kafka_sansio::tokio_runtime::Connection;
    ///
    /// let conn = Connection::connect(server.addrs()[0], Config::new("broker-0")).await?;
    /// assert!(conn.version_for(ApiKey::Metadata).is_some());
    /// assert_eq!(conn.version_for(ApiKey::DescribeAcls), None); // not offered by the simulation
    /// # Ok(()) });
    /// ```
    #[must_use]
    pub fn version_for(&self, api_key: crate::messages::ApiKey) -> Option<i16> {
        self.handle.version_for(api_key)
    }

    /// The error that closed the connection, once it has closed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let server = kafka_sansio::doc_support::serve().await;
    /// use kafka_sansio::connection::Config;
    /// use kafka_sansio::tokio_runtime::Connection;
    ///
    /// let conn = Connection::connect(server.addrs()[0], Config::new("broker-0")).await?;
    /// assert_eq!(conn.closed(), None); // open
    /// # Ok(()) });
    /// ```
    #[must_use]
    pub fn closed(&self) -> Option<ConnectionError> {
        self.handle.closed()
    }
}

/// The driver's network under tokio.
pub(crate) struct TokioNet;

impl crate::driver::Net for TokioNet {
    type Stream = TcpStream;
    type Connecting =
        std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<TcpStream>> + Send>>;
    type Sleep = std::pin::Pin<Box<tokio::time::Sleep>>;

    fn connect(host: std::sync::Arc<str>, port: u16) -> Self::Connecting {
        Box::pin(async move {
            let stream = TcpStream::connect((&*host, port)).await?;
            let _ = stream.set_nodelay(true);
            Ok(stream)
        })
    }

    fn poll_read(
        s: &mut TcpStream,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut rb = tokio::io::ReadBuf::new(buf);
        match tokio::io::AsyncRead::poll_read(std::pin::Pin::new(s), cx, &mut rb) {
            std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(Ok(rb.filled().len())),
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }

    fn poll_write(
        s: &mut TcpStream,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write_vectored(std::pin::Pin::new(s), cx, bufs)
    }

    fn sleep_until(deadline: Instant) -> Self::Sleep {
        Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
            deadline,
        )))
    }
}

impl crate::runtime::ClientBuilder {
    /// Starts the client's driver on the current tokio runtime and checks that the
    /// cluster answers (within the connect timeout).
    ///
    /// # Errors
    /// The configuration is invalid, or no bootstrap broker answered in time.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let server = kafka_sansio::doc_support::serve().await;
    /// use kafka_sansio::runtime::ClientBuilder;
    ///
    /// let client = ClientBuilder::new(&server.bootstrap()).build_tokio().await?;
    /// assert_eq!(client.describe_cluster().await?.brokers.len(), 3);
    /// // Nothing answers here: the build fails within the connect timeout.
    /// let nobody = ClientBuilder::new("127.0.0.1:1")
    ///     .connect_timeout(std::time::Duration::from_millis(200))
    ///     .build_tokio()
    ///     .await;
    /// assert!(nobody.is_err());
    /// # Ok(()) });
    /// ```
    pub async fn build_tokio(self) -> Result<crate::runtime::Client, crate::client::ClientError> {
        let timeout = self.bootstrap_timeout();
        let (core, client, commands, tls) = self.parts()?;
        tokio::spawn(crate::driver::Driver::<TokioNet>::new(core, commands, tls));
        Self::bootstrap(&client, timeout).await?;
        Ok(client)
    }
}
