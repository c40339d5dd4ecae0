//! The one driver of a single broker connection, shared by the tokio, smol and
//! blocking adapters: a future that carries bytes between a socket and the sans-IO
//! [`Connection`](crate::connection::Connection), takes requests from the handles and
//! sleeps until the connection's next deadline. Each adapter only dials the socket and
//! runs the future (a tokio task, a future the caller spawns, a thread).
//!
//! The socket, the timer and the clock come through [`Net`], as for the client's
//! driver.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use futures_lite::Stream as _;

use crate::connection::{self as sansio, Config, ConnectionError, RequestOptions};
use crate::driver::Net;
use crate::messages::{ApiKey, Request};
use crate::runtime::{Core, Error, Notify, Outcome, Submit, Versions, now, submit};
use crate::wire::VersionRange;

/// A request for the driver, and whom to tell how it ended.
struct Command {
    submit: Submit,
    notify: Notify,
}

/// What every adapter's connection handle holds: the way to the driver, the versions
/// negotiated at connect, and the error that closed the connection once it has.
#[derive(Clone)]
pub(crate) struct Handle {
    commands: async_channel::Sender<Command>,
    broker: Arc<str>,
    versions: Versions,
    closed: Arc<OnceLock<ConnectionError>>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

impl Handle {
    /// Hands a request to the driver; the receiver yields how it ended.
    pub(crate) fn submit<R: Request + Send + 'static>(
        &self,
        request: R,
        options: RequestOptions,
    ) -> crate::oneshot::Receiver<Result<Outcome, Error>> {
        let (tx, rx) = crate::oneshot::channel();
        let command = Command {
            submit: submit(request, options),
            notify: Box::new(move |r| tx.send(r)),
        };
        // Unbounded: never waits. If the driver is gone, `command` (and so `tx`) is
        // dropped and the receiver yields `None`, read as "gone" by the callers.
        let _ = self.commands.try_send(command);
        rx
    }

    /// Sends a request and waits (asynchronously) for its outcome.
    #[cfg_attr(not(any(feature = "tokio", feature = "smol")), allow(dead_code))]
    pub(crate) async fn send_with<R: Request + Send + 'static>(
        &self,
        request: R,
        options: RequestOptions,
    ) -> Result<Outcome, Error> {
        self.submit(request, options)
            .await
            .unwrap_or_else(|| Err(self.gone()))
    }

    /// Sends a request and blocks the calling thread until its outcome.
    #[cfg_attr(not(feature = "blocking"), allow(dead_code))]
    pub(crate) fn send_with_blocking<R: Request + Send + 'static>(
        &self,
        request: R,
        options: RequestOptions,
    ) -> Result<Outcome, Error> {
        self.submit(request, options)
            .wait()
            .unwrap_or_else(|| Err(self.gone()))
    }

    /// Closes the connection: requests not yet answered fail.
    #[cfg_attr(not(feature = "blocking"), allow(dead_code))]
    pub(crate) fn close(&self) {
        self.commands.close();
        // Closed from here on, whenever the driver gets to it.
        let _ = self.closed.set(ConnectionError {
            broker: self.broker.clone(),
            kind: sansio::ConnectionErrorKind::ClosedLocally,
        });
    }

    pub(crate) fn broker_versions(&self) -> &std::collections::BTreeMap<i16, VersionRange> {
        &self.versions
    }

    pub(crate) fn version_for(&self, api_key: ApiKey) -> Option<i16> {
        crate::runtime::version_for(&self.versions, api_key)
    }

    pub(crate) fn closed(&self) -> Option<ConnectionError> {
        self.closed.get().cloned()
    }

    fn gone(&self) -> Error {
        Error::Closed(self.closed().unwrap_or_else(|| ConnectionError {
            broker: self.broker.clone(),
            kind: sansio::ConnectionErrorKind::ClosedLocally,
        }))
    }
}

/// The future that carries one connection's bytes until it closes.
pub(crate) type DriverFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs version negotiation (and SASL) over `stream` until the connection is ready,
/// then returns the handle and the future that drives the connection from then on,
/// for the adapter to run. A SCRAM nonce left empty in the config is drawn from the
/// operating system.
pub(crate) async fn start<N: Net>(
    stream: N::Stream,
    config: Config,
) -> Result<(Handle, DriverFuture), Error> {
    let broker = config.broker.clone();
    let core = Core::new(sansio::Connection::new(
        crate::runtime::with_nonce(config),
        now(),
    ));
    let (tx, rx) = async_channel::unbounded();
    let mut io = Io::<N> {
        core,
        stream,
        timer: crate::runtime::DeadlineTimer::new(),
        commands: None,
    };
    std::future::poll_fn(|cx| io.poll_run(cx)).await;
    if let Some(e) = io.core.closed.clone() {
        return Err(Error::Closed(e));
    }
    let versions = crate::runtime::versions_of(&io.core);
    let closed = Arc::new(OnceLock::new());
    let closed_by_driver = closed.clone();
    let broker_for_driver = broker.clone();
    io.commands = Some(Box::pin(rx));
    let driver = Box::pin(async move {
        std::future::poll_fn(|cx| io.poll_run(cx)).await;
        let error = io.core.closed.take().unwrap_or(ConnectionError {
            broker: broker_for_driver,
            kind: sansio::ConnectionErrorKind::ClosedLocally,
        });
        let _ = closed_by_driver.set(error.clone());
        // Requests handed over after the last look at the channel would otherwise
        // wait for ever: a closed channel keeps its queue while a handle lives.
        if let Some(commands) = io.commands.take() {
            commands.close();
            while let Ok(c) = commands.try_recv() {
                (c.notify)(Err(Error::Closed(error.clone())));
            }
        }
    });
    let handle = Handle {
        commands: tx,
        broker,
        versions,
        closed,
    };
    Ok((handle, driver))
}

struct Io<N: Net> {
    core: Core,
    stream: N::Stream,
    timer: crate::runtime::DeadlineTimer<N::Sleep>,
    /// `None` while the connection is being set up: then the driver runs until ready.
    commands: Option<Pin<Box<async_channel::Receiver<Command>>>>,
}

impl<N: Net> Io<N> {
    /// Makes progress until the connection closes (or, during setup, is ready), or
    /// until nothing can move without a wake-up.
    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            self.core.pump();
            if self.core.closed.is_some()
                || (self.commands.is_none() && self.core.ready && self.core.out.is_empty())
            {
                return Poll::Ready(());
            }
            let progressed = self.poll_commands(cx)
                | self.poll_write(cx)
                | self.poll_read(cx)
                | self.poll_timer(cx);
            if !progressed {
                return Poll::Pending;
            }
        }
    }

    fn poll_commands(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(commands) = &mut self.commands else {
            return false;
        };
        let mut progressed = false;
        loop {
            match commands.as_mut().poll_next(cx) {
                Poll::Ready(Some(c)) => self.core.submit(now(), c.submit, c.notify),
                // Every handle is gone, or one closed the connection.
                Poll::Ready(None) => {
                    self.core.conn.close();
                    self.core.pump();
                    return true;
                }
                Poll::Pending => return progressed,
            }
            progressed = true;
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progressed = false;
        while !self.core.out.is_empty() {
            let mut slices = [io::IoSlice::new(&[]); crate::runtime::MAX_WRITE_SLICES];
            let n = crate::runtime::write_slices(&self.core.out, &mut slices);
            match N::poll_write(&mut self.stream, cx, &slices[..n]) {
                Poll::Pending => break,
                Poll::Ready(Ok(0)) => {
                    self.core
                        .conn
                        .handle_transport_error(now(), "socket accepted no bytes");
                    return true;
                }
                Poll::Ready(Ok(n)) => {
                    self.core.advance(n);
                    progressed = true;
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => {
                    self.core.conn.handle_transport_error(now(), e);
                    return true;
                }
            }
        }
        progressed
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> bool {
        // Straight into the connection's frame buffer: no copy.
        let room = self.core.conn.read_buffer();
        match N::poll_read(&mut self.stream, cx, room) {
            Poll::Pending => false,
            Poll::Ready(Ok(0)) => {
                self.core.conn.handle_eof(now());
                true
            }
            Poll::Ready(Ok(n)) => {
                self.core.conn.handle_read(now(), n);
                true
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => true,
            Poll::Ready(Err(e)) => {
                self.core.conn.handle_transport_error(now(), e);
                true
            }
        }
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.core.conn.poll_timeout();
        match self.timer.poll(deadline, cx, N::sleep_until) {
            Some(now) => {
                self.core.conn.handle_timeout(now);
                true
            }
            None => false,
        }
    }
}
