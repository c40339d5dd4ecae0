//! What the runtime adapters share: the error type, the outcome of a request, and the
//! bookkeeping that routes the [`Connection`]'s events to the callers waiting on them.
//!
//! None of this does I/O either; each adapter owns the socket and the clock and calls
//! in here. The adapters are the only code in the crate that reads the clock
//! ([`now`]), and they say so where they do.
//!
//! The facades start here: [`ClientBuilder`] builds a [`Client`] under tokio, smol or
//! a thread of its own, and the client hands out a [`Producer`], a [`Consumer`] and
//! per-partition [`PartitionClient`]s.
//!
//! ```
//! # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
//! # let server = kafka_sansio::doc_support::serve().await;
//! use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
//! use kafka_sansio::runtime::ClientBuilder;
//!
//! let client = ClientBuilder::new(&server.bootstrap()).build_tokio().await?;
//! let written = client.producer().send(ProducerRecord::new("orders", "paid").partition(0)).await?;
//! let mut consumer = client.consumer();
//! consumer.assign(vec![TopicPartition::new("orders", 0)], Offset::Beginning)?;
//! assert_eq!(Some(consumer.recv().await?.record.offset), written.offset);
//! # Ok(()) });
//! ```

use std::collections::HashMap;
use std::time::Instant;

use crate::connection::{
    Config, Connection, ConnectionError, CorrelationId, Event, RequestContext, RequestError,
    RequestOptions, Response, ResponseError, UsageError,
};
use crate::messages::{ApiKey, Request};
use crate::wire::VersionRange;

pub use crate::consumer_facade::{Consumer, Rebalance};
pub use crate::facade::{Client, ClientBuilder, ControllerClient, PartitionClient};
pub use crate::producer_facade::{BatchDelivery, DeliveryFuture, NoRoom, Producer};
#[cfg(feature = "tls")]
pub use crate::tls::TlsConfig;

/// The current time: the one place the adapters read the clock for the core.
///
/// ```
/// let before = kafka_sansio::runtime::now();
/// assert!(kafka_sansio::runtime::now() >= before);
/// ```
///
/// Inside a [`SimRuntime`](crate::sim_runtime::SimRuntime)'s tasks it is the
/// runtime's virtual time.
#[allow(clippy::disallowed_methods)] // the adapters are the I/O boundary
#[must_use]
pub fn now() -> Instant {
    #[cfg(feature = "sim")]
    if let Some(now) = crate::sim_runtime::virtual_now() {
        return now;
    }
    Instant::now()
}

/// The wall clock in milliseconds since the Unix epoch, for records without a
/// timestamp (virtual inside a simulated runtime, so that runs repeat).
#[allow(clippy::disallowed_methods)] // the adapters are the I/O boundary
pub(crate) fn wall_clock_ms() -> i64 {
    #[cfg(feature = "sim")]
    if let Some(ms) = crate::sim_runtime::virtual_wall_clock_ms() {
        return ms;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What ended a request successfully.
///
/// ```
/// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
/// # let server = kafka_sansio::doc_support::serve().await;
/// use kafka_sansio::connection::{Config, RequestOptions};
/// use kafka_sansio::messages::MetadataRequest;
/// use kafka_sansio::runtime::Outcome;
/// use kafka_sansio::tokio_runtime::Connection;
///
/// let conn = Connection::connect(server.addrs()[0], Config::new("broker-0")).await?;
/// match conn.send_with(MetadataRequest::default(), RequestOptions::default()).await? {
///     Outcome::Response(response) => {
///         let metadata = response.decode::<MetadataRequest>()?;
///         assert_eq!(metadata.brokers.len(), 3);
///     }
///     Outcome::Sent(_) => unreachable!("Metadata has a response"),
/// }
/// # Ok(()) });
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The broker's response, to decode with [`Response::decode`].
    Response(Response),
    /// The request expects no response (acks=0 Produce) and has been written.
    Sent(RequestContext),
}

/// Why an adapter call failed.
///
/// ```
/// # #[cfg(feature = "blocking")] {
/// use kafka_sansio::blocking_runtime::Connection;
/// use kafka_sansio::connection::Config;
/// use kafka_sansio::runtime::Error;
///
/// match Connection::connect("127.0.0.1:1", Config::new("nobody")) {
///     Err(Error::Connect { addr, source }) => println!("{addr}: {source}"),
///     other => panic!("nothing listens on port 1: {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TCP connection could not be made.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The connection failed or was closed (before or during the call).
    #[error(transparent)]
    Closed(ConnectionError),
    /// The call misused the connection.
    #[error(transparent)]
    Usage(UsageError),
    /// The request ended without a response.
    #[error(transparent)]
    Request(RequestError),
    /// The response did not decode.
    #[error(transparent)]
    Response(ResponseError),
    /// The request expects no response (acks=0 Produce); use `send_with` for those.
    #[error("{0} expects no response")]
    NoResponse(RequestContext),
}

impl Error {
    fn from_usage(e: UsageError) -> Self {
        match e {
            UsageError::Closed(c) => Self::Closed(c),
            other => Self::Usage(other),
        }
    }
}

/// The config with a fresh SCRAM nonce from the operating system if SASL is on and
/// the nonce was left empty.
pub(crate) fn with_nonce(mut config: Config) -> Config {
    if let Some(sasl) = config.sasl.as_mut().filter(|s| s.nonce.is_empty()) {
        {
            let mut raw = [0u8; 24];
            // Without OS randomness, fall back to a nonce unique to this process.
            if getrandom::getrandom(&mut raw).is_err() {
                let h = std::hash::BuildHasher::hash_one(
                    &std::collections::hash_map::RandomState::new(),
                    now(),
                );
                raw[..8].copy_from_slice(&h.to_le_bytes());
            }
            use base64::Engine as _;
            sasl.nonce = base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw);
        }
    }
    config
}

/// The versions negotiated at connect, shared by every clone of an adapter handle.
pub(crate) type Versions = std::sync::Arc<std::collections::BTreeMap<i16, VersionRange>>;

/// The negotiated versions of a core that just became ready.
pub(crate) fn versions_of(core: &Core) -> Versions {
    std::sync::Arc::new(core.conn.broker_versions().cloned().unwrap_or_default())
}

/// The highest version of `api_key` both sides support.
pub(crate) fn version_for(versions: &Versions, api_key: ApiKey) -> Option<i16> {
    let theirs = versions.get(&api_key.as_i16())?;
    api_key.valid_versions().intersect(theirs).map(|r| r.max)
}

/// Decodes an outcome as the response to `R`.
pub(crate) fn decode<R: Request>(outcome: Outcome) -> Result<R::Response, Error> {
    match outcome {
        Outcome::Response(r) => r.decode::<R>().map_err(Error::Response),
        Outcome::Sent(c) => Err(Error::NoResponse(c)),
    }
}

/// Hands a request to the core; boxed so a channel can carry requests of any type.
pub(crate) type Submit =
    Box<dyn FnOnce(&mut Connection, Instant) -> Result<CorrelationId, UsageError> + Send>;
/// Called once with how a request ended.
pub(crate) type Notify = Box<dyn FnOnce(Result<Outcome, Error>) + Send>;

/// Wraps a typed request for [`Core::submit`].
pub(crate) fn submit<R: Request + Send + 'static>(request: R, options: RequestOptions) -> Submit {
    Box::new(move |conn, now| conn.send_with(now, request, options))
}

/// The core plus who waits for what.
pub(crate) struct Core {
    pub(crate) conn: Connection,
    waiters: HashMap<CorrelationId, Notify>,
    /// Outgoing chunks not yet written, oldest first.
    pub(crate) out: std::collections::VecDeque<bytes::Bytes>,
    pub(crate) ready: bool,
    pub(crate) closed: Option<ConnectionError>,
}

impl Core {
    pub(crate) fn new(conn: Connection) -> Self {
        let mut core = Self {
            conn,
            waiters: HashMap::new(),
            out: std::collections::VecDeque::new(),
            ready: false,
            closed: None,
        };
        core.pump();
        core
    }

    /// Submits a request; `notify` is called exactly once, now or later.
    pub(crate) fn submit(&mut self, now: Instant, submit: Submit, notify: Notify) {
        match submit(&mut self.conn, now) {
            Ok(id) => {
                self.waiters.insert(id, notify);
            }
            Err(e) => notify(Err(Error::from_usage(e))),
        }
        self.pump();
    }

    /// Drains the core's outputs: transmits into `out`, events to their waiters.
    pub(crate) fn pump(&mut self) {
        while let Some(t) = self.conn.poll_transmit() {
            self.out.push_back(t);
        }
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Ready => self.ready = true,
                Event::Response(r) => {
                    self.notify(r.context.correlation_id, Ok(Outcome::Response(r)))
                }
                Event::Sent(c) => self.notify(c.correlation_id, Ok(Outcome::Sent(c))),
                Event::RequestFailed(e) => {
                    let id = e.context.correlation_id;
                    let err = match e.kind {
                        crate::connection::RequestErrorKind::Connection(c) => Error::Closed(c),
                        _ => Error::Request(e),
                    };
                    self.notify(id, Err(err));
                }
                Event::Closed(e) => {
                    self.out.clear();
                    // Nothing should be left; end any stragglers all the same.
                    for (_, n) in self.waiters.drain() {
                        n(Err(Error::Closed(e.clone())));
                    }
                    self.closed = Some(e);
                }
                _ => {}
            }
        }
    }

    /// Drops `n` written bytes from the front of the outgoing queue.
    pub(crate) fn advance(&mut self, n: usize) {
        advance_chunks(&mut self.out, n);
    }

    fn notify(&mut self, id: CorrelationId, result: Result<Outcome, Error>) {
        if let Some(n) = self.waiters.remove(&id) {
            n(result);
        }
    }
}

/// Most chunks handed to one vectored write.
pub(crate) const MAX_WRITE_SLICES: usize = 64;

/// Points `slices` at the first chunks of `out` (on the caller's stack: no
/// allocation per write); how many it filled.
pub(crate) fn write_slices<'a>(
    out: &'a std::collections::VecDeque<bytes::Bytes>,
    slices: &mut [std::io::IoSlice<'a>; MAX_WRITE_SLICES],
) -> usize {
    let mut n = 0;
    for (slot, chunk) in slices.iter_mut().zip(out) {
        *slot = std::io::IoSlice::new(chunk);
        n += 1;
    }
    n
}

/// Drops `n` written bytes from the front of `out`, across chunks.
pub(crate) fn advance_chunks(out: &mut std::collections::VecDeque<bytes::Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = out.front_mut() else {
            return;
        };
        if n >= front.len() {
            n -= front.len();
            out.pop_front();
        } else {
            let _ = front.split_to(n);
            n = 0;
        }
    }
}

/// Runtime timers fire at millisecond granularity, rounded up (tokio's timer wheel,
/// epoll's timeout): armed for a deadline, they fire up to a millisecond or two past
/// it, which a producer's 5 ms linger felt as a 25 % longer wait. So a
/// [`DeadlineTimer`] is armed up to this much early (at most a quarter of the wait,
/// so that a 1 ms linger is not cut to nothing), and handles the deadline when that
/// timer fires, as if it were reached (a sans-IO core's clock only moves forward).
/// A driver polled for other reasons before then does not handle it early.
pub(crate) const TIMER_SLACK: std::time::Duration = std::time::Duration::from_millis(1);

/// The runtime timer of a driver for a sans-IO core's next deadline, written once for
/// both drivers (the client's and one connection's).
pub(crate) struct DeadlineTimer<S> {
    armed: Option<(Instant, S)>,
}

impl<S: std::future::Future<Output = ()> + Unpin> DeadlineTimer<S> {
    pub(crate) fn new() -> Self {
        Self { armed: None }
    }

    /// The deadline the runtime timer is armed for, if it is.
    pub(crate) fn armed_for(&self) -> Option<Instant> {
        self.armed.as_ref().map(|(deadline, _)| *deadline)
    }

    /// Polls for `deadline` (the core's `poll_timeout`): the instant to hand to the
    /// core's `handle_timeout` once it is due, `None` until then (the waker is
    /// registered).
    pub(crate) fn poll(
        &mut self,
        deadline: Option<Instant>,
        cx: &mut std::task::Context<'_>,
        sleep_until: impl FnOnce(Instant) -> S,
    ) -> Option<Instant> {
        let Some(deadline) = deadline else {
            self.armed = None;
            return None;
        };
        let now = now();
        if deadline <= now {
            self.armed = None;
            return Some(now);
        }
        // A later deadline keeps a timer armed for an earlier one, which then fires
        // early: the core finds nothing due, and the timer is armed again for
        // what is. That costs a wake-up where the deadline passes unreplaced (a
        // request's, once its reply came), rarely; arming anew costs a runtime
        // timer each time a deadline moves later (async-io's reactor is woken
        // for every timer it is given: a system call and a round of polling).
        if self.armed.as_ref().is_none_or(|(d, _)| deadline < *d) {
            let slack = TIMER_SLACK.min((deadline - now) / 4);
            self.armed = Some((deadline, sleep_until(deadline - slack)));
        }
        if let Some((armed_for, sleep)) = &mut self.armed
            && std::pin::Pin::new(sleep).poll(cx).is_ready()
        {
            // As at the deadline it was armed for, which may be earlier than the
            // core's deadline now (then nothing is due yet).
            let due = crate::runtime::now().max(*armed_for);
            self.armed = None;
            return Some(due);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    /// A runtime timer that fires when the test says.
    struct TestSleep(Rc<Cell<bool>>);

    impl std::future::Future for TestSleep {
        type Output = ();
        fn poll(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if self.0.get() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    /// Polls `timer` for `deadline`; the instant its runtime timer was armed for,
    /// if it was armed on this poll.
    fn poll(
        timer: &mut DeadlineTimer<TestSleep>,
        deadline: Instant,
        fired: &Rc<Cell<bool>>,
    ) -> (Option<Instant>, Option<Instant>) {
        let mut cx = Context::from_waker(Waker::noop());
        let armed = Cell::new(None);
        let due = timer.poll(Some(deadline), &mut cx, |at| {
            armed.set(Some(at));
            TestSleep(fired.clone())
        });
        (due, armed.get())
    }

    #[test]
    fn a_deadline_a_moment_away_waits_for_its_timer() {
        // A 1 ms linger's deadline, polled 200 us in: not handled early (it was, as
        // anything within a millisecond was due at once, so a busy driver sealed
        // every batch as soon as it opened), and armed at most a quarter early.
        let fired = Rc::new(Cell::new(false));
        let mut timer = DeadlineTimer::new();
        let deadline = now() + Duration::from_micros(800);
        let (due, armed) = poll(&mut timer, deadline, &fired);
        assert_eq!(due, None);
        let early = deadline - armed.expect("armed");
        assert!(early <= Duration::from_micros(200), "armed {early:?} early");
        // Polled again before the timer fires: still not due, not armed again.
        assert_eq!(poll(&mut timer, deadline, &fired), (None, None));
        fired.set(true);
        let (due, _) = poll(&mut timer, deadline, &fired);
        assert!(
            due.is_some_and(|t| t >= deadline),
            "handled as at the deadline"
        );
    }

    #[test]
    fn a_later_deadline_keeps_the_timer_armed_for_an_earlier_one() {
        let fired = Rc::new(Cell::new(false));
        let mut timer = DeadlineTimer::new();
        let first = now() + Duration::from_millis(50);
        let (_, armed) = poll(&mut timer, first, &fired);
        assert!(armed.is_some());
        // The deadline moves later (a reply came): the timer is not armed anew.
        let later = first + Duration::from_secs(30);
        assert_eq!(poll(&mut timer, later, &fired), (None, None));
        assert_eq!(timer.armed_for(), Some(first));
        // It moves earlier: armed anew.
        let earlier = first - Duration::from_millis(20);
        let (_, armed) = poll(&mut timer, earlier, &fired);
        assert_eq!(armed, Some(earlier - TIMER_SLACK));
        // The early timer fires: due no later than it was armed for, though the
        // core's deadline is later; the next poll arms for that one.
        fired.set(true);
        let (due, _) = poll(&mut timer, later, &fired);
        assert!(due.is_some_and(|t| t < later), "{due:?}");
        fired.set(false);
        let (due, armed) = poll(&mut timer, later, &fired);
        assert_eq!((due, armed), (None, Some(later - TIMER_SLACK)));
    }

    #[test]
    fn a_far_deadline_is_armed_a_millisecond_early_and_a_passed_one_is_due_at_once() {
        let fired = Rc::new(Cell::new(false));
        let mut timer = DeadlineTimer::new();
        let deadline = now() + Duration::from_millis(50);
        let (due, armed) = poll(&mut timer, deadline, &fired);
        assert_eq!(due, None);
        assert_eq!(deadline - armed.expect("armed"), TIMER_SLACK);
        let before = now();
        let passed = before - Duration::from_millis(1);
        let (due, armed) = poll(&mut timer, passed, &fired);
        assert!(due.is_some_and(|t| t >= before));
        assert_eq!(armed, None);
    }
}
