//! The async facades on a virtual clock: a deterministic runtime for testing a
//! service written against [`Client`](crate::runtime::Client), [`Producer`](crate::runtime::Producer) and
//! [`Consumer`](crate::runtime::Consumer) — the code it runs in production, not a
//! sans-IO rewrite of it — against the simulated cluster.
//!
//! [`SimRuntime`] is a single-threaded executor joined to a seeded
//! [`Simulation`]. The client's driver (the same one tokio and smol run) dials
//! simulated sockets; the application's tasks sleep on the simulation's clock
//! ([`sleep`], [`timeout`]). When no task can move, virtual time jumps to the next
//! thing that happens: a delivery on the simulated network, a broker's timer, or a
//! task's sleep. The seed decides the network's delays and the order in which
//! ready tasks run, so a run repeats exactly ([`SimRuntime::trace_hash`]) and a
//! campaign over seeds explores the interleavings a real runtime would produce
//! only now and then: a reply landing between a cancelled receive and a seek,
//! a rebalance during a commit.
//!
//! ```
//! use std::time::Duration;
//! use kafka_sansio::client::{Offset, ProducerRecord, TopicPartition};
//! use kafka_sansio::runtime::ClientBuilder;
//! use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
//! use kafka_sansio::sim_runtime::{self, SimRuntime};
//!
//! let cluster = ClusterConfig { brokers: 3, ..ClusterConfig::default() };
//! let rt = SimRuntime::new(7, cluster, NetworkConfig::default());
//! rt.with_simulation(|sim| sim.cluster().create_topic("orders", 1, 3))?;
//! let client = ClientBuilder::new(&rt.bootstrap()).build_sim(&rt)?;
//! let offset = rt.block_on(async move {
//!     let producer = client.producer();
//!     let written = producer.send(ProducerRecord::new("orders", "paid").partition(0)).await?;
//!     let mut consumer = client.consumer();
//!     consumer.assign(vec![TopicPartition::new("orders", 0)], Offset::Beginning)?;
//!     // A receive that waits longer than its deadline gives up on the virtual clock.
//!     let record = sim_runtime::timeout(Duration::from_secs(5), consumer.recv()).await??;
//!     assert_eq!(Some(record.record.offset), written.offset);
//!     client.close().await;
//!     Ok::<_, Box<dyn std::error::Error>>(record.record.offset)
//! })??;
//! assert_eq!(offset, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::client::ClientError;
use crate::sim::SocketRead;
use crate::sim::{ClusterConfig, NetworkConfig, SimRng, Simulation};

/// The wall clock of a simulated run starts here (2026-01-01T00:00:00Z), so that
/// record timestamps repeat from run to run.
const WALL_CLOCK_START_MS: i64 = 1_767_225_600_000;

thread_local! {
    /// The runtime whose tasks this thread is running (set inside `block_on`).
    static CURRENT: RefCell<Option<Rc<World>>> = const { RefCell::new(None) };
    /// Its virtual time, read by [`crate::runtime::now`].
    static NOW: Cell<Option<(Instant, Instant)>> = const { Cell::new(None) };
}

/// The virtual time, when called from a simulated runtime's task.
pub(crate) fn virtual_now() -> Option<Instant> {
    NOW.with(|n| n.get().map(|(now, _)| now))
}

/// The virtual wall clock in milliseconds, when called from a simulated runtime's
/// task.
pub(crate) fn virtual_wall_clock_ms() -> Option<i64> {
    NOW.with(|n| {
        n.get().map(|(now, start)| {
            WALL_CLOCK_START_MS + i64::try_from((now - start).as_millis()).unwrap_or(i64::MAX / 2)
        })
    })
}

/// Why [`SimRuntime::block_on`] returned without its future's output.
///
/// ```
/// use std::time::Duration;
/// use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
/// use kafka_sansio::sim_runtime::{self, SimRunError, SimRuntime};
///
/// let rt = SimRuntime::new(1, ClusterConfig::default(), NetworkConfig::default());
/// rt.set_time_limit(Duration::from_secs(1));
/// match rt.block_on(sim_runtime::sleep(Duration::from_secs(2))) {
///     Err(SimRunError::TimeLimit { limit }) => assert_eq!(limit, Duration::from_secs(1)),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimRunError {
    /// Nothing could happen any more: no task was ready, nothing was in flight on
    /// the network and no timer was set, yet the future had not finished (it waits
    /// for something that will never come).
    #[error(
        "the simulation stalled after {elapsed:?} of virtual time: nothing left can wake the future"
    )]
    Stalled {
        /// Virtual time since the runtime started.
        elapsed: Duration,
    },
    /// The future had not finished within the runtime's time limit
    /// ([`SimRuntime::set_time_limit`]) of virtual time.
    #[error("the future did not finish within {limit:?} of virtual time")]
    TimeLimit {
        /// The limit.
        limit: Duration,
    },
}

/// A [`timeout`] ran out before its future finished.
///
/// ```
/// use std::time::Duration;
/// use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
/// use kafka_sansio::sim_runtime::{self, Elapsed, SimRuntime};
///
/// let rt = SimRuntime::new(1, ClusterConfig::default(), NetworkConfig::default());
/// let waited = rt.block_on(sim_runtime::timeout(
///     Duration::from_secs(1),
///     std::future::pending::<()>(),
/// ))?;
/// assert_eq!(waited, Err(Elapsed(Duration::from_secs(1))));
/// assert_eq!(waited.unwrap_err().to_string(), "timed out after 1s of virtual time");
/// # Ok::<(), kafka_sansio::sim_runtime::SimRunError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {0:?} of virtual time")]
pub struct Elapsed(pub Duration);

type Task = Pin<Box<dyn Future<Output = ()>>>;

struct World {
    sim: RefCell<Simulation>,
    /// The tasks, each with its waker; a task is out of its slot while it is
    /// polled.
    tasks: RefCell<BTreeMap<u64, (Option<Task>, Waker)>>,
    next_task: Cell<u64>,
    /// Tasks woken and not yet polled (wakers may be called from any thread).
    ready: Arc<Mutex<BTreeSet<u64>>>,
    /// Sleeping tasks by deadline.
    timers: RefCell<BTreeMap<(Instant, u64), Waker>>,
    next_timer: Cell<u64>,
    /// Drivers waiting on a simulated socket (to connect or to read), by link.
    sockets: RefCell<BTreeMap<usize, Waker>>,
    /// The task of each client's driver, by the client's driver key.
    drivers: RefCell<BTreeMap<usize, u64>>,
    /// Orders the ready tasks of each round.
    rng: RefCell<SimRng>,
    time_limit: Cell<Duration>,
}

impl World {
    fn now(&self) -> Instant {
        self.sim.borrow().now()
    }

    fn spawn(&self, task: Task) -> u64 {
        let id = self.next_task.get();
        self.next_task.set(id + 1);
        let waker = Waker::from(Arc::new(TaskWaker {
            id,
            ready: self.ready.clone(),
        }));
        self.tasks.borrow_mut().insert(id, (Some(task), waker));
        self.ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
        id
    }

    /// Polls every ready task once, in an order drawn from the seed. Returns
    /// whether any task was polled.
    fn run_ready(&self) -> bool {
        let mut ready: Vec<u64> =
            std::mem::take(&mut *self.ready.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        if ready.is_empty() {
            return false;
        }
        {
            let mut rng = self.rng.borrow_mut();
            for i in (1..ready.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                ready.swap(i, j);
            }
        }
        for id in ready {
            let taken = self
                .tasks
                .borrow_mut()
                .get_mut(&id)
                .and_then(|(task, waker)| Some((task.take()?, waker.clone())));
            let Some((mut task, waker)) = taken else {
                continue;
            };
            let done = task
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_ready();
            let mut tasks = self.tasks.borrow_mut();
            if done {
                tasks.remove(&id);
            } else if let Some((slot, _)) = tasks.get_mut(&id) {
                *slot = Some(task);
            }
        }
        true
    }

    /// Moves virtual time to the next thing that happens and wakes whoever waits
    /// for it. Returns `false` when nothing is left to happen.
    fn advance(&self) -> bool {
        let next_sim = self.sim.borrow().next_time();
        let next_timer = self.timers.borrow().keys().next().map(|(t, _)| *t);
        let step_simulation = match (next_sim, next_timer) {
            (None, None) => return false,
            (Some(s), Some(t)) => s <= t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        if step_simulation {
            self.sim.borrow_mut().step();
            self.wake_sockets();
        } else if let Some(t) = next_timer {
            self.sim.borrow_mut().advance_to(t);
        }
        self.publish_now();
        let now = self.now();
        let due: Vec<(Instant, u64)> = self
            .timers
            .borrow()
            .range(..=(now, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            if let Some(w) = self.timers.borrow_mut().remove(&key) {
                w.wake();
            }
        }
        true
    }

    /// Whatever arrived, the drivers read their sockets again.
    fn wake_sockets(&self) {
        let waiting = std::mem::take(&mut *self.sockets.borrow_mut());
        for w in waiting.into_values() {
            w.wake();
        }
    }

    /// Publishes the simulation's time to [`virtual_now`] (with the start, for
    /// the wall clock).
    fn publish_now(&self) {
        let sim = self.sim.borrow();
        NOW.with(|n| n.set(Some((sim.now(), sim.now() - sim.elapsed()))));
    }
}

struct TaskWaker {
    id: u64,
    ready: Arc<Mutex<BTreeSet<u64>>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.id);
    }
}

/// Makes `world` the thread's current runtime until the guard drops (restoring
/// whatever was current before).
struct Enter {
    previous: Option<Rc<World>>,
    previous_now: Option<(Instant, Instant)>,
}

impl Enter {
    fn new(world: &Rc<World>) -> Self {
        let previous = CURRENT.with(|c| c.borrow_mut().replace(world.clone()));
        let previous_now = NOW.with(Cell::get);
        world.publish_now();
        Enter {
            previous,
            previous_now,
        }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
        NOW.with(|n| n.set(self.previous_now));
    }
}

fn with_world<R>(f: impl FnOnce(&World) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow().as_ref().map(|w| f(w)))
}

/// A deterministic single-threaded runtime joined to a [`Simulation`]; see the
/// [module docs](self). Cheap to clone: clones share the runtime.
///
/// ```
/// use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
/// use kafka_sansio::sim_runtime::SimRuntime;
///
/// let rt = SimRuntime::new(1, ClusterConfig::default(), NetworkConfig::default());
/// assert_eq!(rt.bootstrap().split(',').count(), 1); // one broker by default
/// ```
#[derive(Clone)]
pub struct SimRuntime {
    world: Rc<World>,
}

impl std::fmt::Debug for SimRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimRuntime")
            .field("elapsed", &self.elapsed())
            .field("tasks", &self.world.tasks.borrow().len())
            .finish_non_exhaustive()
    }
}

impl SimRuntime {
    /// A runtime over a new simulated cluster and network, every random choice of
    /// both (and the order of ready tasks) drawn from `seed`.
    ///
    /// ```
    /// use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
    /// use kafka_sansio::sim_runtime::SimRuntime;
    ///
    /// let rt = SimRuntime::new(42, ClusterConfig::default(), NetworkConfig::default());
    /// assert_eq!(rt.elapsed(), std::time::Duration::ZERO);
    /// ```
    #[must_use]
    pub fn new(seed: u64, cluster: ClusterConfig, network: NetworkConfig) -> Self {
        let start = Instant::now();
        SimRuntime {
            world: Rc::new(World {
                sim: RefCell::new(Simulation::new(seed, cluster, network, start)),
                tasks: RefCell::new(BTreeMap::new()),
                next_task: Cell::new(0),
                ready: Arc::new(Mutex::new(BTreeSet::new())),
                timers: RefCell::new(BTreeMap::new()),
                next_timer: Cell::new(0),
                sockets: RefCell::new(BTreeMap::new()),
                drivers: RefCell::new(BTreeMap::new()),
                rng: RefCell::new(SimRng::new(seed ^ 0x5eed_7a5c_0000_0001)),
                time_limit: Cell::new(Duration::from_secs(3600)),
            }),
        }
    }

    /// The simulated cluster's bootstrap list, for
    /// [`ClientBuilder::new`](crate::runtime::ClientBuilder::new).
    ///
    /// ```
    /// # use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
    /// # use kafka_sansio::sim_runtime::SimRuntime;
    /// let rt = SimRuntime::new(1, ClusterConfig::default(), NetworkConfig::default());
    /// assert!(rt.bootstrap().contains(':'));
    /// ```
    #[must_use]
    pub fn bootstrap(&self) -> String {
        self.world.sim.borrow().bootstrap()
    }

    /// The virtual time now.
    ///
    /// ```
    /// # use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
    /// # use kafka_sansio::sim_runtime::{self, SimRuntime};
    /// let rt = SimRuntime::new(1, ClusterConfig::default(), NetworkConfig::default());
    /// let before = rt.now();
    /// rt.block_on(sim_runtime::sleep(std::time::Duration::from_secs(60)))?;
    /// assert_eq!(rt.now() - before, std::time::Duration::from_secs(60));
    /// # Ok::<(), kafka_sansio::sim_runtime::SimRunError>(())
    /// ```
    #[must_use]
    pub fn now(&self) -> Instant {
        self.world.now()
    }

    /// Virtual time since the runtime started.
    ///
    /// ```
    /// # use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
    /// # use kafka_sansio::sim_runtime::{self, SimRuntime};
    /// let rt = SimRuntime::new(1, ClusterConfig::default(), NetworkConfig::default());
    /// rt.block_on(sim_runtime::sleep(std::time::Duration::from_millis(5)))?;
    /// assert_eq!(rt.elapsed(), std::time::Duration::from_millis(5));
    /// # Ok::<(), kafka_sansio::sim_runtime::SimRunError>(())
    /// ```
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.world.sim.borrow().elapsed()
    }

    /// Runs `f` on the simulation: create topics, crash and restart brokers,
    /// inject errors, read logs and committed offsets. Callable from a task too,
    /// but not from inside another `with_simulation`.
    ///
    /// ```
    /// # use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
    /// # use kafka_sansio::sim_runtime::SimRuntime;
    /// let rt = SimRuntime::new(1, ClusterConfig::default(), NetworkConfig::default());
    /// let partitions = rt.with_simulation(|sim| {
    ///     sim.cluster().create_topic("events", 4, 1)?;
    ///     Ok::<_, kafka_sansio::sim::SimError>(sim.cluster().partition_count())
    /// })?;
    /// assert_eq!(partitions, 4);
    /// # Ok::<(), kafka_sansio::sim::SimError>(())
    /// ```
    pub fn with_simulation<R>(&self, f: impl FnOnce(&mut Simulation) -> R) -> R {
        let out = f(&mut self.world.sim.borrow_mut());
        // `f` may have stepped the simulation itself: the runtime's clock and
        // its sockets follow.
        if CURRENT.with(|c| {
            c.borrow()
                .as_ref()
                .is_some_and(|w| Rc::ptr_eq(w, &self.world))
        }) {
            self.world.publish_now();
        }
        self.world.wake_sockets();
        out
    }

    /// How much virtual time one [`block_on`](Self::block_on) may take before it
    /// gives up with [`SimRunError::TimeLimit`] (an hour by default).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
    /// # use kafka_sansio::sim_runtime::{self, SimRunError, SimRuntime};
    /// let rt = SimRuntime::new(1, ClusterConfig::default(), NetworkConfig::default());
    /// rt.set_time_limit(Duration::from_secs(10));
    /// let late = rt.block_on(sim_runtime::sleep(Duration::from_secs(11)));
    /// assert!(matches!(late, Err(SimRunError::TimeLimit { .. })));
    /// ```
    pub fn set_time_limit(&self, limit: Duration) {
        self.world.time_limit.set(limit);
    }

    /// A fingerprint of everything that crossed the simulated network, with its
    /// virtual time: the same seed and the same program give the same hash.
    ///
    /// ```
    /// # use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
    /// # use kafka_sansio::sim_runtime::SimRuntime;
    /// let a = SimRuntime::new(3, ClusterConfig::default(), NetworkConfig::default());
    /// let b = SimRuntime::new(3, ClusterConfig::default(), NetworkConfig::default());
    /// assert_eq!(a.trace_hash(), b.trace_hash());
    /// ```
    #[must_use]
    pub fn trace_hash(&self) -> u64 {
        self.world.sim.borrow().trace_hash()
    }

    /// Kills a client built with [`ClientBuilder::build_sim`](crate::runtime::ClientBuilder::build_sim)
    /// as a killed process dies: its driver stops at once, and its connections
    /// close without a word (no group leave, no transaction ended, nothing that
    /// lingers sent). The brokers see the connections go; the group coordinator
    /// notices only when the member's session times out, the transaction
    /// coordinator when the transaction does. Every handle of the client fails
    /// from then on. Returns whether the client's driver was still running.
    ///
    /// ```
    /// # use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
    /// # use kafka_sansio::sim_runtime::SimRuntime;
    /// use kafka_sansio::client::ClientError;
    /// use kafka_sansio::runtime::ClientBuilder;
    ///
    /// let rt = SimRuntime::new(1, ClusterConfig::default(), NetworkConfig::default());
    /// let client = ClientBuilder::new(&rt.bootstrap()).build_sim(&rt)?;
    /// assert!(rt.crash(&client));
    /// let after = rt.block_on(async move { client.describe_cluster().await })?;
    /// assert!(matches!(after, Err(ClientError::Closed)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn crash(&self, client: &crate::runtime::Client) -> bool {
        let Some(task) = self.world.drivers.borrow_mut().remove(&client.driver_key()) else {
            return false;
        };
        let driver = self
            .world
            .tasks
            .borrow_mut()
            .remove(&task)
            .and_then(|(task, _)| task);
        let Some(driver) = driver else {
            return false;
        };
        // Its sockets close as it drops, which needs the runtime current.
        let _enter = Enter::new(&self.world);
        drop(driver);
        true
    }

    /// Starts a task; it runs while [`block_on`](Self::block_on) runs. Await the
    /// handle for its output.
    ///
    /// ```
    /// # use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
    /// # use kafka_sansio::sim_runtime::SimRuntime;
    /// let rt = SimRuntime::new(1, ClusterConfig::default(), NetworkConfig::default());
    /// let task = rt.spawn(async { 6 * 7 });
    /// assert_eq!(rt.block_on(task)?, 42);
    /// # Ok::<(), kafka_sansio::sim_runtime::SimRunError>(())
    /// ```
    pub fn spawn<F>(&self, future: F) -> SimTask<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let slot = Rc::new(RefCell::new(TaskSlot {
            output: None,
            waker: None,
        }));
        let done = slot.clone();
        self.world.spawn(Box::pin(async move {
            let output = future.await;
            let mut slot = done.borrow_mut();
            slot.output = Some(output);
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }));
        SimTask { slot }
    }

    /// Runs the runtime's tasks and the simulation until `future` finishes, and
    /// returns its output. Other tasks that have not finished stay for the next
    /// call.
    ///
    /// # Errors
    /// [`SimRunError::Stalled`] when nothing left can wake the future, and
    /// [`SimRunError::TimeLimit`] when it takes longer than the time limit.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
    /// # use kafka_sansio::sim_runtime::{SimRunError, SimRuntime};
    /// let rt = SimRuntime::new(1, ClusterConfig::default(), NetworkConfig::default());
    /// // A future that never finishes, with nothing else to happen: a stall, not a hang.
    /// let never = rt.block_on(std::future::pending::<()>());
    /// assert!(matches!(never, Err(SimRunError::Stalled { .. })));
    /// ```
    pub fn block_on<F>(&self, future: F) -> Result<F::Output, SimRunError>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let _enter = Enter::new(&self.world);
        let task = self.spawn(future);
        let until = self.now() + self.world.time_limit.get();
        loop {
            while self.world.run_ready() {
                if let Some(output) = task.slot.borrow_mut().output.take() {
                    return Ok(output);
                }
            }
            if let Some(output) = task.slot.borrow_mut().output.take() {
                return Ok(output);
            }
            if !self.world.advance() {
                return Err(SimRunError::Stalled {
                    elapsed: self.elapsed(),
                });
            }
            if self.now() > until {
                return Err(SimRunError::TimeLimit {
                    limit: self.world.time_limit.get(),
                });
            }
        }
    }
}

struct TaskSlot<T> {
    output: Option<T>,
    waker: Option<Waker>,
}

/// A task started with [`SimRuntime::spawn`]: a future of its output. Dropping it
/// lets the task run on.
///
/// ```
/// # use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
/// # use kafka_sansio::sim_runtime::SimRuntime;
/// let rt = SimRuntime::new(1, ClusterConfig::default(), NetworkConfig::default());
/// let a = rt.spawn(async { 1 });
/// let b = rt.spawn(async { 2 });
/// assert_eq!(rt.block_on(async move { a.await + b.await })?, 3);
/// # Ok::<(), kafka_sansio::sim_runtime::SimRunError>(())
/// ```
pub struct SimTask<T> {
    slot: Rc<RefCell<TaskSlot<T>>>,
}

impl<T> std::fmt::Debug for SimTask<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimTask")
            .field("finished", &self.slot.borrow().output.is_some())
            .finish()
    }
}

impl<T> Future for SimTask<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.slot.borrow_mut();
        match slot.output.take() {
            Some(output) => Poll::Ready(output),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// A future that finishes once `duration` of virtual time has passed (at once
/// outside a simulated runtime's task).
///
/// ```
/// # use std::time::Duration;
/// # use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
/// # use kafka_sansio::sim_runtime::{self, SimRuntime};
/// let rt = SimRuntime::new(1, ClusterConfig::default(), NetworkConfig::default());
/// rt.set_time_limit(Duration::from_secs(7 * 24 * 3600));
/// rt.block_on(sim_runtime::sleep(Duration::from_secs(24 * 3600)))?; // a day, at once
/// assert_eq!(rt.elapsed(), Duration::from_secs(24 * 3600));
/// # Ok::<(), kafka_sansio::sim_runtime::SimRunError>(())
/// ```
#[must_use]
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        wait: Wait::For(duration),
        key: None,
    }
}

/// A future of [`sleep`]: its time counts from its first poll. Polled outside a
/// simulated runtime's task (where there is no virtual clock), it finishes at once.
///
/// ```
/// use std::time::Duration;
/// use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
/// use kafka_sansio::sim_runtime::{self, SimRuntime};
///
/// let rt = SimRuntime::new(1, ClusterConfig::default(), NetworkConfig::default());
/// let nap = sim_runtime::sleep(Duration::from_millis(30)); // made here, counted from its first poll
/// let clock = rt.clone();
/// let woke_after = rt.block_on(async move {
///     let before = clock.now();
///     nap.await;
///     clock.now() - before
/// })?;
/// assert_eq!(woke_after, Duration::from_millis(30));
/// # Ok::<(), kafka_sansio::sim_runtime::SimRunError>(())
/// ```
#[derive(Debug)]
pub struct Sleep {
    wait: Wait,
    key: Option<(Instant, u64)>,
}

#[derive(Debug, Clone, Copy)]
enum Wait {
    /// Not polled yet.
    For(Duration),
    Until(Instant),
}

impl Sleep {
    fn forget(&mut self) {
        if let Some(key) = self.key.take() {
            with_world(|w| {
                if let Ok(mut timers) = w.timers.try_borrow_mut() {
                    timers.remove(&key);
                }
            });
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(now) = virtual_now() else {
            return Poll::Ready(());
        };
        let deadline = match self.wait {
            Wait::For(d) => now + d,
            Wait::Until(t) => t,
        };
        self.wait = Wait::Until(deadline);
        if now >= deadline {
            self.forget();
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(key) => key,
            None => {
                let Some(seq) = with_world(|w| {
                    let seq = w.next_timer.get();
                    w.next_timer.set(seq + 1);
                    seq
                }) else {
                    return Poll::Ready(());
                };
                let key = (deadline, seq);
                self.key = Some(key);
                key
            }
        };
        with_world(|w| w.timers.borrow_mut().insert(key, cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.forget();
    }
}

/// Runs `future` for at most `duration` of virtual time.
///
/// # Errors
/// [`Elapsed`] when the time ran out first (the future is dropped).
///
/// ```
/// # use std::time::Duration;
/// # use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
/// # use kafka_sansio::sim_runtime::{self, Elapsed, SimRuntime};
/// let rt = SimRuntime::new(1, ClusterConfig::default(), NetworkConfig::default());
/// let late = rt.block_on(sim_runtime::timeout(
///     Duration::from_millis(10),
///     sim_runtime::sleep(Duration::from_millis(20)),
/// ))?;
/// assert_eq!(late, Err(Elapsed(Duration::from_millis(10))));
/// # Ok::<(), kafka_sansio::sim_runtime::SimRunError>(())
/// ```
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    let mut future = std::pin::pin!(future);
    let mut timer = sleep(duration);
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match Pin::new(&mut timer).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(duration))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The driver's network in a simulated runtime: sockets are links of the
/// runtime's [`Simulation`], timers its virtual clock.
pub(crate) struct SimNet;

/// A connected simulated socket (a link of the current runtime's simulation).
pub(crate) struct SimStream {
    link: usize,
}

impl Drop for SimStream {
    fn drop(&mut self) {
        let link = self.link;
        with_world(|w| {
            if let Ok(mut sim) = w.sim.try_borrow_mut() {
                sim.socket_close(link);
            }
            w.sockets.borrow_mut().remove(&link);
        });
    }
}

fn outside() -> io::Error {
    io::Error::other("a simulated socket used outside its SimRuntime")
}

/// A dial under way.
pub(crate) struct SimConnecting {
    link: Result<usize, Option<io::Error>>,
}

impl Future for SimConnecting {
    type Output = io::Result<SimStream>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let link = match &mut self.link {
            Ok(link) => *link,
            Err(e) => return Poll::Ready(Err(e.take().unwrap_or_else(outside))),
        };
        let outcome = with_world(|w| {
            let outcome = w.sim.borrow().socket_connected(link);
            if outcome.is_none() {
                w.sockets.borrow_mut().insert(link, cx.waker().clone());
            }
            outcome
        });
        match outcome {
            None => Poll::Ready(Err(outside())),
            Some(None) => Poll::Pending,
            Some(Some(Ok(()))) => {
                // The stream owns the link from here (closing it when dropped).
                self.link = Err(None);
                Poll::Ready(Ok(SimStream { link }))
            }
            Some(Some(Err(e))) => {
                self.link = Err(None);
                Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionRefused, e)))
            }
        }
    }
}

impl Drop for SimConnecting {
    fn drop(&mut self) {
        // An abandoned dial (a connect timeout) closes its link.
        if let Ok(link) = self.link {
            drop(SimStream { link });
        }
    }
}

impl crate::driver::Net for SimNet {
    type Stream = SimStream;
    type Connecting = SimConnecting;
    type Sleep = Sleep;

    fn connect(_host: Arc<str>, port: u16) -> SimConnecting {
        SimConnecting {
            link: with_world(|w| w.sim.borrow_mut().dial(port)).ok_or(None),
        }
    }

    fn poll_read(
        s: &mut SimStream,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let read = with_world(|w| {
            let read = w.sim.borrow_mut().socket_read(s.link, buf);
            if read == SocketRead::Empty {
                w.sockets.borrow_mut().insert(s.link, cx.waker().clone());
            }
            read
        });
        match read {
            None => Poll::Ready(Err(outside())),
            Some(SocketRead::Data(n)) => Poll::Ready(Ok(n)),
            Some(SocketRead::Empty) => Poll::Pending,
            Some(SocketRead::Eof) => Poll::Ready(Ok(0)),
            Some(SocketRead::Reset) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset (simulated)",
            ))),
        }
    }

    fn poll_write(
        s: &mut SimStream,
        _cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut bytes = BytesMut::with_capacity(total);
        for b in bufs {
            bytes.extend_from_slice(b);
        }
        let bytes: Bytes = bytes.freeze();
        match with_world(|w| w.sim.borrow_mut().socket_write(s.link, bytes)) {
            None => Poll::Ready(Err(outside())),
            Some(true) => Poll::Ready(Ok(total)),
            Some(false) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset (simulated)",
            ))),
        }
    }

    fn sleep_until(deadline: Instant) -> Sleep {
        Sleep {
            wait: Wait::Until(deadline),
            key: None,
        }
    }
}

impl crate::runtime::ClientBuilder {
    /// The client on a [`SimRuntime`]: its driver becomes one of the runtime's
    /// tasks and dials the runtime's simulated cluster. Nothing is dialed until
    /// the first call. Unless [`seed`](Self::seed) was given, the client's seed
    /// comes from the runtime's.
    ///
    /// # Errors
    /// The configuration is invalid.
    ///
    /// ```
    /// # use kafka_sansio::sim::{ClusterConfig, NetworkConfig};
    /// # use kafka_sansio::sim_runtime::SimRuntime;
    /// use kafka_sansio::runtime::ClientBuilder;
    ///
    /// let rt = SimRuntime::new(1, ClusterConfig::default(), NetworkConfig::default());
    /// let client = ClientBuilder::new(&rt.bootstrap()).build_sim(&rt)?;
    /// let cluster = rt.block_on(async move { client.describe_cluster().await })??;
    /// assert_eq!(cluster.brokers.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build_sim(self, rt: &SimRuntime) -> Result<crate::runtime::Client, ClientError> {
        let seed = rt.world.rng.borrow_mut().next_u64();
        let _enter = Enter::new(&rt.world);
        let (core, client, port, tls) = self.seed_unless_given(seed).parts()?;
        let driver = crate::driver::Driver::<SimNet>::new(core, port, tls);
        let task = rt.world.spawn(Box::pin(driver));
        rt.world
            .drivers
            .borrow_mut()
            .insert(client.driver_key(), task);
        Ok(client)
    }
}
