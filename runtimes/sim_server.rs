//! The simulated cluster served on loopback over tokio (features `sim` and `tokio`),
//! so that clients in any language can talk to it over TCP.
//!
//! [`serve`] binds one `127.0.0.1` listener per broker, tells the
//! [`Cluster`] which port each broker advertises, and then only carries bytes:
//! what a socket reads goes to [`Cluster::handle_input`], what
//! [`Cluster::poll_transmit`] returns is written back, connections in
//! [`Cluster::poll_closed`] are closed, and a timer calls
//! [`Cluster::handle_timeout`] at [`Cluster::poll_timeout`]. Time is the real clock
//! here (this is a runtime adapter); the cluster's logic is the same deterministic
//! state machine the simulation tests drive in virtual time.
//!
//! The cluster lives behind a mutex; [`Server::with_cluster`] runs a closure on it to
//! create topics, inject faults or look inside, and then delivers whatever the change
//! produced (a crashed broker's connections close at once, for example).
//!
//! A crashed broker keeps its listener but closes every connection it accepts until
//! it is restarted, which a client sees as a broker that is down.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use kafka_sansio::connection::Config;
//! use kafka_sansio::messages::MetadataRequest;
//! use kafka_sansio::sim::ClusterConfig;
//! use kafka_sansio::sim_server::serve;
//! use kafka_sansio::tokio_runtime::Connection;
//!
//! // base_port 0: every broker listens on an ephemeral loopback port.
//! let server = serve(ClusterConfig { brokers: 3, base_port: 0, ..ClusterConfig::default() }).await?;
//! server.with_cluster(|cluster, _now| cluster.create_topic("orders", 4, 3))?;
//!
//! let conn = Connection::connect(server.addrs()[0], Config::new("sim-0")).await?;
//! let metadata = conn.send(MetadataRequest::default()).await?;
//! assert_eq!(metadata.brokers.len(), 3);
//! println!("bootstrap {}", server.bootstrap());
//!
//! // A fault: broker 0 crashes; its connections close, its partitions move.
//! server.with_cluster(|cluster, now| cluster.crash_broker(0, now));
//! assert_ne!(server.with_cluster(|c, _| c.partition_leader("orders", 0)), Some(0));
//! server.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::runtime::now;
use crate::sim::{Cluster, ClusterConfig, ConnectionId};

/// Most bytes read from a socket at once. The cluster takes one request at a time
/// (Cluster::read_limit); what a read brings beyond it waits here, and the socket is
/// not read again until it is used up and the last reply written.
const READ_CHUNK: usize = 64 * 1024;

/// How the cluster reaches one connection's task: a nudge when it has a reply for
/// it (or closed it).
#[derive(Default)]
struct ConnHandle {
    notify: Notify,
    closed: AtomicBool,
}

struct State {
    cluster: Cluster,
    conns: HashMap<ConnectionId, Arc<ConnHandle>>,
}

impl State {
    /// Nudges the tasks of connections with a reply to take and of connections the
    /// cluster closed: only those, never every connection. Called after every change
    /// to the cluster.
    fn deliver(&mut self) {
        while let Some(id) = self.cluster.poll_ready() {
            if let Some(handle) = self.conns.get(&id) {
                handle.notify.notify_one();
            }
        }
        while let Some(id) = self.cluster.poll_closed() {
            if let Some(handle) = self.conns.remove(&id) {
                handle.closed.store(true, Ordering::Release);
                handle.notify.notify_one();
            }
        }
    }
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the timer task to recompute the cluster's next deadline.
    wake: Notify,
    /// Every connection task, so that shutdown can wait for them.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic inside `with_cluster` poisons the lock; the cluster itself is still
        // consistent between calls, so keep serving.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the cluster at the current time, then delivers what it produced and
    /// lets the timer see the new deadline.
    fn with<T>(&self, f: impl FnOnce(&mut Cluster, Instant) -> T) -> T {
        let result = {
            let mut state = self.lock();
            let now = now();
            let result = f(&mut state.cluster, now);
            // Whatever came due meanwhile (cheap: only what is due is looked at).
            state.cluster.handle_timeout(now);
            state.deliver();
            result
        };
        self.wake.notify_one();
        result
    }
}

/// A simulated cluster served on loopback, running on the tokio runtime that called
/// [`serve`]. Dropping it stops accepting and closes every connection (the tasks see
/// the shutdown signal); [`Server::shutdown`] also waits for them.
pub struct Server {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

/// Starts serving a new simulated cluster on loopback, on the current tokio runtime
/// (which needs its I/O and time drivers enabled).
///
/// Broker `i` listens on `127.0.0.1:(config.base_port + i)`, or on an ephemeral port
/// for every broker when `config.base_port` is 0, and advertises the port it got.
///
/// # Errors
/// The configuration does not validate ([`ClusterConfig::validate`]), `config.host`
/// is not `127.0.0.1` (the server binds loopback only, and the brokers must
/// advertise the address they listen on), or a listener cannot be bound.
pub async fn serve(config: ClusterConfig) -> io::Result<Server> {
    serve_with(config, None).await
}

/// TLS for the served cluster (feature `sim-tls`): the brokers' certificate chain and
/// key, and optionally the CA whose client certificates they require (mutual TLS).
#[cfg(feature = "sim-tls")]
#[derive(Clone)]
pub struct TlsServer {
    config: Arc<rustls::ServerConfig>,
}

#[cfg(feature = "sim-tls")]
impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsServer")
    }
}

#[cfg(feature = "sim-tls")]
impl TlsServer {
    /// TLS with this certificate chain and private key (PEM); clients are not asked
    /// for certificates unless `client_ca_pem` is given, then they must present one
    /// signed by it.
    ///
    /// # Errors
    /// The PEM does not hold a usable certificate, key or CA.
    pub fn new(
        cert_chain_pem: &[u8],
        key_pem: &[u8],
        client_ca_pem: Option<&[u8]>,
    ) -> io::Result<Self> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
        };
        let chain = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("certificate", &e))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad("key", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("TLS versions", &e))?;
        let builder = match client_ca_pem {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca) {
                    roots
                        .add(cert.map_err(|e| bad("client CA", &e))?)
                        .map_err(|e| bad("client CA", &e))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| bad("client CA", &e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| bad("certificate", &e))?;
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

/// As [`serve`], with every broker speaking TLS (feature `sim-tls`), the way a Kafka
/// listener with `security.protocol=SSL` does.
///
/// # Errors
/// As [`serve`].
#[cfg(feature = "sim-tls")]
pub async fn serve_tls(config: ClusterConfig, tls: TlsServer) -> io::Result<Server> {
    serve_with(config, Some(tls)).await
}

#[cfg(feature = "sim-tls")]
type Acceptor = Option<tokio_rustls::TlsAcceptor>;
#[cfg(not(feature = "sim-tls"))]
type Acceptor = Option<std::convert::Infallible>;

async fn serve_with(
    config: ClusterConfig,
    #[cfg(feature = "sim-tls")] tls: Option<TlsServer>,
    #[cfg(not(feature = "sim-tls"))] _tls: Option<std::convert::Infallible>,
) -> io::Result<Server> {
    #[cfg(feature = "sim-tls")]
    let acceptor: Acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.config));
    #[cfg(not(feature = "sim-tls"))]
    let acceptor: Acceptor = None;
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    if config.host != "127.0.0.1" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the simulated cluster is served on 127.0.0.1 only; config.host is {:?}",
                config.host
            ),
        ));
    }
    let brokers = config.brokers.max(1);
    let base_port = config.base_port;
    let mut listeners = Vec::with_capacity(brokers);
    for i in 0..brokers {
        let port = if base_port == 0 {
            0
        } else {
            u16::try_from(usize::from(base_port) + i).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("broker {i}: port {base_port}+{i} is out of range"),
                )
            })?
        };
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|e| {
                io::Error::new(e.kind(), format!("broker {i}: bind 127.0.0.1:{port}: {e}"))
            })?;
        listeners.push(listener);
    }
    let addrs = listeners
        .iter()
        .map(TcpListener::local_addr)
        .collect::<io::Result<Vec<_>>>()?;
    let mut cluster = Cluster::new(config, now());
    for (i, addr) in addrs.iter().enumerate() {
        cluster
            .set_advertised_port(i as i32, addr.port())
            .map_err(|e| io::Error::other(e.to_string()))?;
    }
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            cluster,
            conns: HashMap::new(),
        }),
        wake: Notify::new(),
        tasks: Mutex::new(Vec::new()),
    });
    let (shutdown, _) = watch::channel(false);
    let mut tasks = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        tasks.push(tokio::spawn(accept_loop(
            shared.clone(),
            i as i32,
            listener,
            acceptor.clone(),
            shutdown.subscribe(),
        )));
    }
    tasks.push(tokio::spawn(timer_loop(
        shared.clone(),
        shutdown.subscribe(),
    )));
    Ok(Server {
        shared,
        addrs,
        shutdown,
        tasks,
    })
}

impl Server {
    /// The listening address of each broker, by broker id.
    #[must_use]
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Every broker's address, comma-separated: a client's `bootstrap.servers`.
    #[must_use]
    pub fn bootstrap(&self) -> String {
        bootstrap(&self.addrs)
    }

    /// Runs `f` on the cluster with the current time (for faults such as
    /// [`Cluster::crash_broker`] that take one), then sends what the change produced:
    /// responses it released, connections it closed.
    ///
    /// The cluster is locked while `f` runs: keep it short, and do not call back into
    /// the server from it (that would deadlock).
    pub fn with_cluster<T>(&self, f: impl FnOnce(&mut Cluster, Instant) -> T) -> T {
        self.shared.with(f)
    }

    /// Stops accepting, closes every connection and waits for the server's tasks.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let conns = std::mem::take(
            &mut *self
                .shared
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for t in conns {
            let _ = t.await;
        }
    }
}

fn bootstrap(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

async fn accept_loop(
    shared: Arc<Shared>,
    broker: i32,
    listener: TcpListener,
    acceptor: Acceptor,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: the client sees a failed
                // connect; keep accepting, after a pause rather than a busy loop.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let registered = {
            let mut state = shared.lock();
            let now = now();
            match state.cluster.connect(broker, now) {
                Ok(id) => {
                    let handle = Arc::new(ConnHandle::default());
                    state.conns.insert(id, handle.clone());
                    Some((id, handle))
                }
                // A crashed broker, or max connections open: close it at once.
                Err(_) => None,
            }
        };
        let Some((id, handle)) = registered else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let task = match &acceptor {
            None => tokio::spawn(connection_loop(
                shared.clone(),
                id,
                handle,
                stream,
                shutdown.clone(),
            )),
            #[cfg(feature = "sim-tls")]
            Some(acceptor) => {
                let (acceptor, shared, shutdown) =
                    (acceptor.clone(), shared.clone(), shutdown.clone());
                tokio::spawn(async move {
                    // A failed handshake is a client that went away.
                    let handshake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(tls)) => connection_loop(shared, id, handle, tls, shutdown).await,
                        _ => {
                            let mut state = shared.lock();
                            state.cluster.disconnect(id);
                            state.conns.remove(&id);
                        }
                    }
                })
            }
            #[cfg(not(feature = "sim-tls"))]
            Some(never) => match *never {},
        };
        let mut tasks = shared
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }
}

/// One connection, with Kafka's backpressure: bytes read from the socket go to the
/// cluster only as far as it reads (one request at a time), its reply is written
/// whole before anything more is given to it, and the socket is read only when the
/// last read is used up and nothing waits to be written. A client that does not
/// read its replies stops being read; one that floods requests fills its own send
/// buffer, not the server.
async fn connection_loop<S>(
    shared: Arc<Shared>,
    id: ConnectionId,
    handle: Arc<ConnHandle>,
    stream: S,
    mut shutdown: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut inbuf = BytesMut::new();
    let mut out: Option<Bytes> = None;
    loop {
        let mut limit = 0;
        if out.is_none() {
            let mut state = shared.lock();
            let now = now();
            let mut fed = false;
            loop {
                let n = state.cluster.read_limit(id).min(inbuf.len());
                if n == 0 {
                    break;
                }
                let chunk = inbuf.split_to(n);
                state.cluster.handle_input(id, now, &chunk);
                fed = true;
            }
            out = state.cluster.poll_transmit(id);
            limit = state.cluster.read_limit(id);
            if fed {
                // The request may have answered parked fetches of other connections.
                state.deliver();
            }
            drop(state);
            if fed {
                shared.wake.notify_one();
            }
        }
        let closed = handle.closed.load(Ordering::Acquire);
        if closed && out.is_none() {
            break;
        }
        let can_read = out.is_none() && inbuf.is_empty() && limit > 0 && !closed;
        if can_read {
            inbuf.reserve(READ_CHUNK);
        }
        enum Wake {
            Shutdown,
            Nudged,
            Read(io::Result<usize>),
            Wrote(io::Result<usize>),
        }
        let wake = tokio::select! {
            _ = shutdown.changed() => Wake::Shutdown,
            () = handle.notify.notified() => Wake::Nudged,
            r = writer.write(out.as_deref().unwrap_or_default()), if out.is_some() => Wake::Wrote(r),
            r = reader.read_buf(&mut inbuf), if can_read => Wake::Read(r),
        };
        match wake {
            Wake::Shutdown => break,
            Wake::Nudged | Wake::Read(Ok(1..)) => {}
            Wake::Read(Ok(0) | Err(_)) | Wake::Wrote(Ok(0) | Err(_)) => {
                // The client went away (or the socket failed).
                let mut state = shared.lock();
                state.cluster.disconnect(id);
                state.conns.remove(&id);
                break;
            }
            Wake::Wrote(Ok(n)) => {
                if let Some(front) = out.as_mut() {
                    if n >= front.len() {
                        out = None;
                    } else {
                        let _ = front.split_to(n);
                    }
                }
            }
        }
    }
    let _ = writer.shutdown().await;
}

async fn timer_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let deadline = shared.lock().cluster.poll_timeout();
        tokio::select! {
            _ = shutdown.changed() => return,
            () = shared.wake.notified() => {}
            () = sleep_until(deadline), if deadline.is_some() => {
                shared.with(|cluster, now| cluster.handle_timeout(now));
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
    }
}

/// A simulated cluster served on loopback from a thread of its own (with its own
/// single-threaded tokio runtime), for synchronous code, tests that run other
/// processes as clients, and programs without a runtime.
///
/// ```
/// use kafka_sansio::sim::ClusterConfig;
/// use kafka_sansio::sim_server::BackgroundServer;
///
/// let server = BackgroundServer::start(ClusterConfig { base_port: 0, ..ClusterConfig::default() })?;
/// server.with_cluster(|cluster, _now| cluster.create_topic("events", 2, 1))?;
/// assert!(server.bootstrap().starts_with("127.0.0.1:"));
/// server.shutdown();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BackgroundServer {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for BackgroundServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundServer")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl BackgroundServer {
    /// Starts a thread that serves a new cluster (see [`serve`]) and returns once
    /// every listener is bound.
    ///
    /// # Errors
    /// The runtime or thread cannot be created, or [`serve`] fails.
    pub fn start(config: ClusterConfig) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kafka-sim-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match serve(config).await {
                        Ok(server) => {
                            let _ =
                                ready_tx.send(Ok((server.shared.clone(), server.addrs.clone())));
                            // Until `shutdown` or drop (the sender goes away either way).
                            let _ = stopped.await;
                            server.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })?;
        match ready_rx.recv() {
            Ok(Ok((shared, addrs))) => Ok(Self {
                shared,
                addrs,
                stop: Some(stop),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(io::Error::other(
                    "the simulated cluster's server thread died",
                ))
            }
        }
    }

    /// The listening address of each broker, by broker id.
    #[must_use]
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Every broker's address, comma-separated: a client's `bootstrap.servers`.
    #[must_use]
    pub fn bootstrap(&self) -> String {
        bootstrap(&self.addrs)
    }

    /// Runs `f` on the cluster with the current time; see [`Server::with_cluster`].
    pub fn with_cluster<T>(&self, f: impl FnOnce(&mut Cluster, Instant) -> T) -> T {
        self.shared.with(f)
    }

    /// Stops the server: closes the listeners and every connection, and joins the
    /// thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
