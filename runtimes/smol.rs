//! The async-io adapter (smol and any executor): carries bytes between an
//! [`async_io::Async`]`<TcpStream>` and the sans-IO
//! [`Connection`](crate::connection::Connection).
//!
//! [`Connection::connect`] dials and finishes negotiation (and SASL), then returns the
//! handle and a [`Driver`] future that the caller spawns on its executor (for smol:
//! `smol::spawn(driver).detach()`); the driver runs until the connection closes. Any
//! number of tasks may call [`Connection::send`] at once. Dropping a `send` future is
//! safe: only the driver touches the socket.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kafka_sansio::runtime::Error> {
//! use kafka_sansio::connection::Config;
//! use kafka_sansio::messages::MetadataRequest;
//! use kafka_sansio::smol_runtime::Connection;
//!
//! let (conn, driver) = Connection::connect("127.0.0.1:9092", Config::new("bootstrap")).await?;
//! # let spawn = |_d| ();
//! spawn(driver); // e.g. smol::spawn(driver).detach()
//! let metadata = conn.send(MetadataRequest::default()).await?;
//! println!("{} brokers", metadata.brokers.len());
//! # Ok(()) }
//! ```
// The adapters are the crate's I/O boundary: the only code allowed sockets,
// threads, timers and the clock (see tests/connection_no_io.rs for src/).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::{TcpStream, ToSocketAddrs};

use async_io::Async;

use crate::conn_driver::{DriverFuture, Handle};
use crate::connection::{Config, ConnectionError, RequestOptions};
use crate::messages::Request;
use crate::runtime::{Error, Outcome, decode};

/// A handle to one broker connection. Clone it freely; the connection closes when the
/// last handle is dropped.
///
/// ```
/// # #[cfg(all(feature = "sim", feature = "tokio"))] {
/// # let server = kafka_sansio::doc_support::background();
/// use kafka_sansio::connection::Config;
/// use kafka_sansio::messages::MetadataRequest;
/// use kafka_sansio::smol_runtime::Connection;
/// futures_lite::future::block_on(async {
///     let (conn, driver) = Connection::connect(server.addrs()[0], Config::new("broker-0")).await?;
///     std::thread::spawn(move || futures_lite::future::block_on(driver)); // or smol::spawn(driver).detach()
///     let other = conn.clone(); // both share the one socket
///     assert_eq!(other.send(MetadataRequest::default()).await?.brokers.len(), 3);
///     Ok::<_, kafka_sansio::runtime::Error>(())
/// })?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Connection {
    handle: Handle,
}

/// The future that carries the connection's bytes; spawn it on an executor.
///
/// ```
/// # #[cfg(all(feature = "sim", feature = "tokio"))] {
/// # let server = kafka_sansio::doc_support::background();
/// use kafka_sansio::connection::Config;
/// use kafka_sansio::messages::MetadataRequest;
/// use kafka_sansio::smol_runtime::Connection;
///
/// futures_lite::future::block_on(async {
///     let (conn, driver) = Connection::connect(server.addrs()[0], Config::new("broker-0")).await?;
///     std::thread::spawn(move || futures_lite::future::block_on(driver)); // or smol::spawn
///     let metadata = conn.send(MetadataRequest::default()).await?;
///     assert_eq!(metadata.brokers.len(), 3);
///     Ok::<_, kafka_sansio::runtime::Error>(())
/// })?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the connection makes no progress unless the driver runs"]
pub struct Driver {
    inner: DriverFuture,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Driver")
    }
}

impl std::future::Future for Driver {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        self.inner.as_mut().poll(cx)
    }
}

impl Connection {
    /// Connects to `addr`, negotiates versions and authenticates; returns the handle
    /// and the driver to spawn. A SCRAM nonce left empty in the config is drawn from
    /// the operating system.
    ///
    /// # Errors
    /// The TCP connection fails, or the connection fails before it is ready.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let server = kafka_sansio::doc_support::background();
    /// use kafka_sansio::connection::Config;
    /// use kafka_sansio::smol_runtime::Connection;
    /// futures_lite::future::block_on(async {
    ///     let (conn, driver) = Connection::connect(server.addrs()[0], Config::new("broker-0")).await?;
    ///     std::thread::spawn(move || futures_lite::future::block_on(driver));
    ///     assert!(conn.closed().is_none());
    ///     Ok::<_, kafka_sansio::runtime::Error>(())
    /// })?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn connect(
        addr: impl ToSocketAddrs + std::fmt::Display,
        config: Config,
    ) -> Result<(Self, Driver), Error> {
        let addr_text = addr.to_string();
        let connect_err = |source| Error::Connect {
            addr: addr_text.clone(),
            source,
        };
        let sock_addr = addr
            .to_socket_addrs()
            .map_err(connect_err)?
            .next()
            .ok_or_else(|| connect_err(std::io::ErrorKind::NotFound.into()))?;
        let stream = Async::<TcpStream>::connect(sock_addr)
            .await
            .map_err(connect_err)?;
        let _ = stream.get_ref().set_nodelay(true);
        let (handle, inner) = crate::conn_driver::start::<crate::smol_net::AsyncIoNet>(
            crate::smol_net::AsyncIoStream::new(stream),
            config,
        )
        .await?;
        Ok((Self { handle }, Driver { inner }))
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
    /// use kafka_sansio::connection::Config;
    /// use kafka_sansio::messages::MetadataRequest;
    /// use kafka_sansio::smol_runtime::Connection;
    /// futures_lite::future::block_on(async {
    ///     let (conn, driver) = Connection::connect(server.addrs()[0], Config::new("broker-0")).await?;
    ///     std::thread::spawn(move || futures_lite::future::block_on(driver));
    ///     let metadata = conn.send(MetadataRequest::default()).await?;
    ///     assert_eq!(metadata.brokers.len(), 3);
    ///     Ok::<_, kafka_sansio::runtime::Error>(())
    /// })?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
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
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let server = kafka_sansio::doc_support::background();
    /// use std::time::Duration;
    /// use kafka_sansio::connection::{Config, RequestOptions};
    /// use kafka_sansio::messages::MetadataRequest;
    /// use kafka_sansio::runtime::Outcome;
    /// use kafka_sansio::smol_runtime::Connection;
    /// futures_lite::future::block_on(async {
    ///     let (conn, driver) = Connection::connect(server.addrs()[0], Config::new("broker-0")).await?;
    ///     std::thread::spawn(move || futures_lite::future::block_on(driver));
    ///     let options = RequestOptions::timeout(Duration::from_secs(2));
    ///     assert!(matches!(conn.send_with(MetadataRequest::default(), options).await?, Outcome::Response(_)));
    ///     Ok::<_, kafka_sansio::runtime::Error>(())
    /// })?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
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
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let server = kafka_sansio::doc_support::background();
    /// use kafka_sansio::connection::Config;
    /// use kafka_sansio::messages::ApiKey;
    /// use kafka_sansio::smol_runtime::Connection;
    /// let (conn, driver) = futures_lite::future::block_on(Connection::connect(server.addrs()[0], Config::new("broker-0")))?;
    /// std::thread::spawn(move || futures_lite::future::block_on(driver));
    /// assert!(conn.broker_versions().contains_key(&(ApiKey::Metadata as i16)));
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
    /// use kafka_sansio::connection::Config;
    /// use kafka_sansio::messages::ApiKey;
    /// use kafka_sansio::smol_runtime::Connection;
    /// let (conn, driver) = futures_lite::future::block_on(Connection::connect(server.addrs()[0], Config::new("broker-0")))?;
    /// std::thread::spawn(move || futures_lite::future::block_on(driver));
    /// assert_eq!(conn.version_for(ApiKey::DescribeAcls), None); // the simulation offers no ACLs
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
    /// use kafka_sansio::connection::Config;
    /// use kafka_sansio::smol_runtime::Connection;
    /// let (conn, driver) = futures_lite::future::block_on(Connection::connect(server.addrs()[0], Config::new("broker-0")))?;
    /// std::thread::spawn(move || futures_lite::future::block_on(driver));
    /// assert_eq!(conn.closed(), None);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn closed(&self) -> Option<ConnectionError> {
        self.handle.closed()
    }
}

/// The future that drives a [`Client`](crate::runtime::Client) built with
/// [`build_smol`](crate::runtime::ClientBuilder::build_smol); spawn it on your
/// executor (`smol::spawn(driver).detach()`). It ends when the client is closed or
/// every handle is dropped.
///
/// ```
/// # #[cfg(all(feature = "sim", feature = "tokio"))] {
/// # let server = kafka_sansio::doc_support::background();
/// use kafka_sansio::runtime::ClientBuilder;
///
/// let (client, driver) = ClientBuilder::new(&server.bootstrap()).build_smol()?;
/// let driving = std::thread::spawn(move || futures_lite::future::block_on(driver));
/// futures_lite::future::block_on(client.close()); // the driver ends
/// driving.join().unwrap();
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the client makes no progress unless the driver runs"]
pub struct ClientDriver {
    inner: crate::driver::Driver<crate::smol_net::AsyncIoNet>,
}

impl std::fmt::Debug for ClientDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientDriver")
    }
}

impl std::future::Future for ClientDriver {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        std::pin::Pin::new(&mut self.inner).poll(cx)
    }
}

impl crate::runtime::ClientBuilder {
    /// The client and the future that drives it, for async-io executors (smol):
    /// spawn the driver, then use the client. Nothing is dialed until the first call.
    ///
    /// # Errors
    /// The configuration is invalid.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] {
    /// # let server = kafka_sansio::doc_support::background();
    /// use kafka_sansio::runtime::ClientBuilder;
    ///
    /// let (client, driver) = ClientBuilder::new(&server.bootstrap()).build_smol()?;
    /// // Spawn the driver on your executor: smol::spawn(driver).detach(). Here, a thread:
    /// std::thread::spawn(move || futures_lite::future::block_on(driver));
    /// let cluster = futures_lite::future::block_on(client.describe_cluster())?;
    /// assert_eq!(cluster.brokers.len(), 3);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build_smol(
        self,
    ) -> Result<(crate::runtime::Client, ClientDriver), crate::client::ClientError> {
        let (core, client, commands, tls) = self.parts()?;
        let inner = crate::driver::Driver::<crate::smol_net::AsyncIoNet>::new(core, commands, tls);
        Ok((client, ClientDriver { inner }))
    }
}
