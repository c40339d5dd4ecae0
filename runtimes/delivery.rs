//! The producer facade's records in transit and their delivery reports, shared by
//! the senders and the driver.
//!
//! Every record handed to [`Producer::send`](crate::runtime::Producer::send) gets a
//! number, in order, and a slot in one ring indexed by it: the driver writes each
//! record's result into its slot, and the record's [`DeliveryFuture`] reads it from
//! there. The records themselves wait in an [`Inbox`] the driver empties in one
//! swap, copied into compact buffers as they come (a [`RecordQueue`]): the sender's
//! key and value are freed by the sender's thread, and a waiting record costs its
//! bytes and a small entry. (A key or value of 1 KiB or more is not copied: its
//! handle waits instead, and the driver frees it once it is encoded.) A queue
//! handed over whole (`send_buffer`, `send_all`) waits as it came, behind what came
//! before it, and is not copied again. So a record costs a slot, a lock and a copy,
//! not a channel of its own, a trip through the command queue and a map entry in
//! the driver; and the driver is woken once per burst of sends (when the inbox
//! stops being empty), not once per record. While the driver waits for a timer
//! due within a linger (a batch lingering), records do not wake it at all unless
//! a batch's worth of them (at most 64 KiB) waits: its wake-up takes them in, and a
//! batch one of them opens
//! lingers from the record's hand-over (`driver_wakes_itself`).
//!
//! A slot is freed when its future has taken the result, or when the result comes
//! for a future that was dropped; the ring's front advances over freed slots. A
//! result that waits unread at the front (a future kept and never awaited) would
//! hold the ring behind it: once the ring is large and mostly freed, such results
//! move aside (`parked`) and the front advances past them.
//!
//! The table also keeps the producer's byte budget
//! ([`ProducerConfig::buffer_max_bytes`](crate::client::ProducerConfig::buffer_max_bytes))
//! for senders that ask for room first (`send_when_room`, `try_send`): the budget
//! bytes of the records waiting in front of the producer (counted as they are
//! handed over, uncounted as the driver takes them in or fails them) plus what the
//! producer held when the driver last reported. `send` does not ask.
//!
//! Senders that wait for room (`send_when_room`) are each registered once, in a
//! line numbered as they came: a sender polled again updates its entry, one that
//! gives up (its future dropped) leaves the line, so registering costs the same
//! however many wait. When room comes every waiting sender is woken, and they race
//! for it: the first to run takes what fits, the others register again. While any
//! waits the budget is full, and the driver sends what the producer buffers without
//! waiting out its linger (`senders_waiting`).
#![allow(clippy::disallowed_types, clippy::disallowed_methods)] // std Mutex and Condvar: a runtime part, not the sans-IO core

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::client::{
    ClientError, ProducerRecord, RecordChain, RecordMetadata, RecordQueue, WrittenBatch,
};

/// Slots the ring keeps room for between bursts.
const KEPT_SLOTS: usize = 4096;

/// The ring's length at which results unread at its front are first considered
/// for moving aside (see [`State::park_unread`]).
const PARK_FROM: usize = KEPT_SLOTS;

/// One record's report. A sender keeping many deliveries outstanding holds a slot
/// for each: 32 bytes (a [`RecordMetadata`] in the slot made it 48).
enum Slot {
    /// Not delivered yet; the waker of the future waiting for it.
    Waiting(Option<Waker>),
    /// Not delivered yet, and its future was dropped: nobody reads the result.
    Abandoned,
    /// Written.
    Written(Written),
    /// Failed (boxed: errors are rare and large, the ring holds many slots).
    Failed(Box<ClientError>),
    /// Read, or abandoned and then delivered.
    Free,
}

/// Where a record was written, its topic named by its index in the table's
/// [`Topics`].
#[derive(Debug, Clone, Copy)]
struct Written {
    /// The offset, or [`NO_OFFSET`].
    offset: i64,
    timestamp: i64,
    partition: i32,
    topic: u32,
}

/// [`Written::offset`] of a record written without a known offset.
const NO_OFFSET: i64 = i64::MIN;

impl Slot {
    fn is_delivered(&self) -> bool {
        matches!(self, Self::Written(_) | Self::Failed(_) | Self::Free)
    }

    /// Takes the waker of a record not delivered yet and whose future waits, to
    /// write its result; frees an abandoned record's slot instead. `None` (and no
    /// result to write) if the record is delivered already: the first result
    /// stands.
    fn take_waiting(&mut self) -> Option<Option<Waker>> {
        match self {
            Self::Waiting(waker) => Some(waker.take()),
            Self::Abandoned => {
                *self = Self::Free;
                None
            }
            Self::Written(_) | Self::Failed(_) | Self::Free => None,
        }
    }
}

/// The result in a slot taken out of the table (see [`State::take_delivered`]): a
/// slot read already (or one not delivered, never taken out) reads as closed.
fn read(topics: &mut Topics, slot: Slot) -> Result<RecordMetadata, ClientError> {
    match slot {
        Slot::Written(w) => Ok(topics.read(w)),
        Slot::Failed(e) => Err(*e),
        Slot::Waiting(_) | Slot::Abandoned | Slot::Free => Err(ClientError::Closed),
    }
}

/// The topics of written slots, each with how many slots name it. An entry no
/// slot names any more is reused for the next topic not listed, so the list is
/// as long as the most topics that had records delivered and unread at once.
#[derive(Default)]
struct Topics {
    names: Vec<(Arc<str>, usize)>,
    /// The entry named last: records come mostly for one topic, or a few.
    last: usize,
}

impl Topics {
    /// A written slot for `meta`, naming its topic.
    fn written(&mut self, meta: &RecordMetadata) -> Written {
        let topic = self.name(&meta.topic);
        self.written_in(topic, meta.partition, meta.offset, meta.timestamp)
    }

    /// A written slot naming entry `topic` (from [`name`](Self::name)), counted.
    fn written_in(
        &mut self,
        topic: u32,
        partition: i32,
        offset: Option<i64>,
        timestamp: i64,
    ) -> Written {
        self.names[topic as usize].1 += 1;
        Written {
            offset: offset.unwrap_or(NO_OFFSET),
            timestamp,
            partition,
            topic,
        }
    }

    /// The entry for `topic`, found or made (naming no slot yet).
    fn name(&mut self, topic: &str) -> u32 {
        let same = |(name, _): &(Arc<str>, usize)| **name == *topic;
        let at = if self.names.get(self.last).is_some_and(same) {
            self.last
        } else if let Some(at) = self.names.iter().position(same) {
            at
        } else if let Some(at) = self.names.iter().position(|(_, slots)| *slots == 0) {
            self.names[at].0 = Arc::from(topic);
            at
        } else {
            self.names.push((Arc::from(topic), 0));
            self.names.len() - 1
        };
        self.last = at;
        // As many entries as topics with unread records, far below 2^32.
        at as u32
    }

    /// The record's metadata, as delivered; its slot no longer names the topic.
    fn read(&mut self, w: Written) -> RecordMetadata {
        // Every written slot names an entry `name` made, kept while it does.
        let topic = self.names[w.topic as usize].0.clone();
        self.forget(w);
        RecordMetadata {
            topic,
            partition: w.partition,
            offset: (w.offset != NO_OFFSET).then_some(w.offset),
            timestamp: w.timestamp,
        }
    }

    /// A written slot freed unread.
    fn forget(&mut self, w: Written) {
        if let Some((_, slots)) = self.names.get_mut(w.topic as usize) {
            *slots -= 1;
        }
    }
}

/// Record `n`'s slot in `slots` (whose first is numbered `base`) and the waker of
/// its future, if its result is still to be written (see [`Slot::take_waiting`]).
fn waiting_slot(
    slots: &mut VecDeque<Slot>,
    base: u64,
    n: u64,
) -> Option<(&mut Slot, Option<Waker>)> {
    let i = usize::try_from(n.checked_sub(base)?).ok()?;
    let slot = slots.get_mut(i)?;
    let waker = slot.take_waiting()?;
    Some((slot, waker))
}

struct State {
    /// The number of `slots[0]`; every record numbered below it is delivered, and
    /// read unless its result is in `parked`.
    base: u64,
    slots: VecDeque<Slot>,
    /// Results numbered below `base` and not read yet, moved out of the ring so
    /// that its front could advance (only `Written` and `Failed` slots).
    parked: std::collections::BTreeMap<u64, Slot>,
    /// The ring's length at which `park_unread` looks at it next.
    park_check_at: usize,
    /// The topics the written slots name.
    topics: Topics,
    /// Records handed over and not yet taken by the driver; the first is numbered
    /// `inbox_first`.
    inbox: Inbox,
    inbox_first: u64,
    /// When the inbox's first record was handed over: the start of every record
    /// taken with it, for its delivery timeout and its batch's linger.
    inbox_since: Instant,
    /// Budget bytes of the records in the inbox.
    inbox_bytes: usize,
    /// The driver was told of the records in the inbox (it takes them soon).
    driver_told: bool,
    /// The driver wakes by itself within a linger (see
    /// [`Deliveries::driver_wakes_itself`]): records need not tell it until
    /// `wake_bytes` of them wait.
    driver_wakes_itself: bool,
    /// A batch's worth of budget bytes, at most [`WAKE_BYTES`].
    wake_bytes: usize,
    /// Every record numbered below this one is delivered.
    delivered_below: u64,
    /// No more records are taken (the client is closing or gone).
    closed: bool,
    /// Threads blocked in [`DeliveryFuture::wait`].
    sleepers: usize,
    /// How many times a thread went to sleep waiting for a delivery.
    #[cfg(test)]
    naps: usize,
    /// Budget bytes of the records handed over and not yet taken into the producer
    /// (or failed) by the driver.
    waiting_bytes: usize,
    /// The producer's buffered bytes when the driver last reported.
    producer_bytes: usize,
    /// The budget both share.
    limit: usize,
    /// Senders waiting for room, in the order they asked; their numbers increase.
    room_line: VecDeque<WaitingSender>,
    /// The number the next sender to wait in line gets.
    next_in_line: u64,
}

/// A sender in line for room: its number and its task.
struct WaitingSender {
    n: u64,
    waker: Waker,
}

/// A record the producer did not take because its byte budget
/// ([`ProducerConfig::buffer_max_bytes`](crate::client::ProducerConfig::buffer_max_bytes))
/// had no room for it: [`Producer::try_send`](crate::runtime::Producer::try_send)
/// gives it back whole, to send later or elsewhere.
///
/// ```
/// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
/// # let (_server, client) = kafka_sansio::doc_support::client().await;
/// use kafka_sansio::client::ProducerRecord;
///
/// let producer = client.producer();
/// match producer.try_send(ProducerRecord::new("orders", "paid")) {
///     Ok(delivery) => {
///         delivery.await?;
///     }
///     Err(full) => {
///         println!("{full}: {} of {} bytes used", full.used(), full.limit());
///         let record = full.into_record(); // nothing lost: try again later
///         producer.send_when_room(record).await.await?;
///     }
/// }
/// # Ok(()) });
/// ```
#[derive(Debug, thiserror::Error)]
#[error(
    "the producer's buffer has no room for the record ({used} of {limit} bytes used, {waiting_senders} senders waiting for room)"
)]
pub struct NoRoom {
    record: ProducerRecord,
    used: usize,
    limit: usize,
    waiting_senders: usize,
}

/// A sender's place in line for room in a [`Deliveries`] table (see the module
/// docs): [`push`](Self::push) until the record is taken. Dropped before, it leaves
/// the line.
pub(crate) struct PlaceInLine<'a> {
    table: &'a Arc<Deliveries>,
    n: Option<u64>,
}

impl<'a> PlaceInLine<'a> {
    /// Not in line yet: the first [`push`](Self::push) takes a place if it must.
    pub(crate) fn new(table: &'a Arc<Deliveries>) -> Self {
        Self { table, n: None }
    }

    /// The record's future once it is taken, and whether the driver must be told
    /// (as [`Deliveries::push_one`]); else the record comes back, with whether the
    /// driver must be told (the first sender to wait), and the task of `cx` is
    /// woken when room comes.
    #[allow(clippy::result_large_err)] // the record comes back whole
    pub(crate) fn push(
        &mut self,
        record: ProducerRecord,
        cx: &Context<'_>,
    ) -> Result<(DeliveryFuture, bool), (ProducerRecord, bool)> {
        self.table.push_when_room(record, &mut self.n, cx)
    }
}

impl Drop for PlaceInLine<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.n.take() {
            self.table.leave_line(n);
        }
    }
}

impl NoRoom {
    /// The record, given back.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// # use kafka_sansio::client::ProducerRecord;
    /// if let Err(full) = client.producer().try_send(ProducerRecord::new("orders", "paid")) {
    ///     assert_eq!(full.into_record().value.as_deref(), Some(&b"paid"[..]));
    /// }
    /// # Ok(()) });
    /// ```
    #[must_use]
    pub fn into_record(self) -> ProducerRecord {
        self.record
    }

    /// The record, borrowed.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// # use kafka_sansio::client::ProducerRecord;
    /// if let Err(full) = client.producer().try_send(ProducerRecord::new("orders", "paid")) {
    ///     assert_eq!(&*full.record().topic, "orders");
    /// }
    /// # Ok(()) });
    /// ```
    #[must_use]
    pub fn record(&self) -> &ProducerRecord {
        &self.record
    }

    /// Budget bytes in use when it was refused: records waiting to enter the
    /// producer and records in it.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// # use kafka_sansio::client::ProducerRecord;
    /// if let Err(full) = client.producer().try_send(ProducerRecord::new("orders", "paid")) {
    ///     assert!(full.used() > 0);
    /// }
    /// # Ok(()) });
    /// ```
    #[must_use]
    pub fn used(&self) -> usize {
        self.used
    }

    /// The budget.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// # use kafka_sansio::client::ProducerRecord;
    /// if let Err(full) = client.producer().try_send(ProducerRecord::new("orders", "paid")) {
    ///     assert!(full.limit() < full.used() + full.record().value.as_ref().map_or(0, |v| v.len()) + 64);
    /// }
    /// # Ok(()) });
    /// ```
    #[must_use]
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Senders that were waiting for room
    /// ([`send_when_room`](crate::runtime::Producer::send_when_room)) when it was
    /// refused.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
    /// # let (_server, client) = kafka_sansio::doc_support::client().await;
    /// # use kafka_sansio::client::ProducerRecord;
    /// if let Err(full) = client.producer().try_send(ProducerRecord::new("orders", "paid")) {
    ///     println!("{} senders wait for room", full.waiting_senders());
    /// }
    /// # Ok(()) });
    /// ```
    #[must_use]
    pub fn waiting_senders(&self) -> usize {
        self.waiting_senders
    }
}

/// The shared table; see the module docs.
pub(crate) struct Deliveries {
    state: Mutex<State>,
    delivered: Condvar,
    /// Whether senders wait in `room_line`, readable by the driver without the
    /// lock (written under it).
    senders_waiting: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("Deliveries")
            .field("base", &s.base)
            .field("slots", &s.slots.len())
            .field("parked", &s.parked.len())
            .field("inbox", &s.inbox.len())
            .field("closed", &s.closed)
            .finish()
    }
}

impl Deliveries {
    /// An empty table; senders asking for room share `limit` bytes with the
    /// producer.
    #[cfg(test)]
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Self::for_producer(limit, usize::MAX)
    }

    /// An empty table for a producer whose byte budget is `limit` and whose
    /// batches hold at most `batch_bytes`: records waiting untold tell the driver
    /// once a batch's worth (at most [`WAKE_BYTES`]) waits.
    pub(crate) fn for_producer(limit: usize, batch_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                base: 0,
                slots: VecDeque::new(),
                parked: std::collections::BTreeMap::new(),
                park_check_at: PARK_FROM,
                topics: Topics::default(),
                inbox: Inbox::default(),
                inbox_first: 0,
                inbox_since: crate::runtime::now(),
                inbox_bytes: 0,
                driver_told: false,
                driver_wakes_itself: false,
                wake_bytes: WAKE_BYTES.min(batch_bytes),
                delivered_below: 0,
                closed: false,
                sleepers: 0,
                #[cfg(test)]
                naps: 0,
                waiting_bytes: 0,
                producer_bytes: 0,
                limit,
                room_line: VecDeque::new(),
                next_in_line: 0,
            }),
            delivered: Condvar::new(),
            senders_waiting: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands records over. Returns their futures, in order, and whether the driver
    /// must be told (see [`State::tell_driver`]). Once the table is closed, every
    /// future fails at once with [`ClientError::Closed`].
    pub(crate) fn push(
        self: &Arc<Self>,
        records: impl IntoIterator<Item = ProducerRecord>,
        futures: &mut Vec<DeliveryFuture>,
    ) -> bool {
        let mut s = self.lock();
        futures.extend(records.into_iter().map(|r| self.enqueue(&mut s, r)));
        s.tell_driver()
    }

    /// One record, as [`push`](Self::push).
    pub(crate) fn push_one(self: &Arc<Self>, record: ProducerRecord) -> (DeliveryFuture, bool) {
        self.enqueue_one(&mut self.lock(), record)
    }

    /// One record if the budget has room for it (see the module docs), as
    /// [`push_one`](Self::push_one); else it comes back. A closed table takes it,
    /// to fail it.
    #[allow(clippy::result_large_err)] // the record comes back whole
    pub(crate) fn try_push(
        self: &Arc<Self>,
        record: ProducerRecord,
    ) -> Result<(DeliveryFuture, bool), NoRoom> {
        let size = record.size();
        let mut s = self.lock();
        if !s.closed && !s.has_room(size) {
            return Err(NoRoom {
                record,
                used: s.used(),
                limit: s.limit,
                waiting_senders: s.room_line.len(),
            });
        }
        Ok(self.enqueue_one(&mut s, record))
    }

    /// One record for the sender whose place in line is `place` (none yet: `None`),
    /// as [`try_push`](Self::try_push), except that a record that does not fit
    /// takes (or keeps) a place in line and comes back, with whether the line was
    /// empty before (then the driver must be told: a full budget sends at once);
    /// the task of `cx` is woken when room comes (the next call then tries again),
    /// or the table is closed. See [`PlaceInLine`].
    #[allow(clippy::result_large_err)] // the record comes back whole
    fn push_when_room(
        self: &Arc<Self>,
        record: ProducerRecord,
        place: &mut Option<u64>,
        cx: &Context<'_>,
    ) -> Result<(DeliveryFuture, bool), (ProducerRecord, bool)> {
        let size = record.size();
        let mut s = self.lock();
        if !s.closed && !s.has_room(size) {
            let entry = place.and_then(|n| s.room_line.binary_search_by_key(&n, |w| w.n).ok());
            let was_empty = s.room_line.is_empty();
            match entry {
                Some(i) => s.room_line[i].waker.clone_from(cx.waker()),
                // New, or woken since (room came and others took it): at the back.
                None => {
                    let n = s.next_in_line;
                    s.next_in_line += 1;
                    s.room_line.push_back(WaitingSender {
                        n,
                        waker: cx.waker().clone(),
                    });
                    *place = Some(n);
                }
            }
            self.note_line(&s);
            return Err((record, was_empty));
        }
        if let Some(n) = place.take() {
            s.leave_line(n);
            self.note_line(&s);
        }
        Ok(self.enqueue_one(&mut s, record))
    }

    /// The sender numbered `n` stops waiting: it leaves the line (if it is still in
    /// it).
    fn leave_line(&self, n: u64) {
        let mut s = self.lock();
        s.leave_line(n);
        self.note_line(&s);
    }

    /// Publishes whether senders wait in line (call under the lock, after changing
    /// it).
    fn note_line(&self, s: &State) {
        self.senders_waiting.store(
            !s.room_line.is_empty(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Whether senders wait for room (a full budget: the driver sends what is
    /// buffered without waiting out its linger).
    pub(crate) fn senders_waiting(&self) -> bool {
        self.senders_waiting
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn enqueue_one(
        self: &Arc<Self>,
        s: &mut State,
        record: ProducerRecord,
    ) -> (DeliveryFuture, bool) {
        let future = self.enqueue(s, record);
        (future, s.tell_driver())
    }

    /// Hands a queue of records over for one [`BatchDelivery`]; as
    /// [`push`](Self::push). The queue waits whole in the inbox, uncopied (a short
    /// one is copied behind what waits, see [`Inbox::push_queue`]). `bytes` is the
    /// budget its records take.
    pub(crate) fn push_queue(
        self: &Arc<Self>,
        queue: RecordQueue,
        bytes: usize,
    ) -> (BatchDelivery, bool) {
        let count = queue.len();
        let mut s = self.lock();
        if s.closed {
            let failed = (0..count).map(|_| Err(ClientError::Closed)).collect();
            return (BatchDelivery::ready(failed), false);
        }
        let first = s.base + s.slots.len() as u64;
        if s.inbox.is_empty() {
            s.inbox_first = first;
            s.inbox_since = crate::runtime::now();
        }
        s.inbox.push_queue(queue);
        s.waiting_bytes += bytes;
        s.inbox_bytes += bytes;
        s.slots.extend((0..count).map(|_| Slot::Waiting(None)));
        let end = first + count as u64;
        let batch = BatchDelivery {
            state: Batch_::Slots {
                table: self.clone(),
                first,
                end,
                waiting_at: first,
            },
        };
        let wake = s.tell_driver();
        (batch, wake)
    }

    /// Numbers a record, gives it a slot and puts it in the inbox.
    fn enqueue(self: &Arc<Self>, s: &mut State, record: ProducerRecord) -> DeliveryFuture {
        if s.closed {
            return DeliveryFuture::ready(Err(ClientError::Closed));
        }
        let size = record.size();
        s.waiting_bytes += size;
        s.inbox_bytes += size;
        let n = s.enqueue_slot(record);
        DeliveryFuture {
            state: Future_::Slot {
                table: self.clone(),
                n,
            },
        }
    }

    /// The records handed over since the last call, swapped into `into` (which must
    /// be empty, and whose kept allocation the table then fills), the number of the
    /// first, and when the first was handed over (every record taken counts its
    /// delivery timeout from then, as Java's count from their batch's creation).
    pub(crate) fn take_inbox(&self, into: &mut Inbox) -> (u64, Instant) {
        debug_assert!(into.is_empty());
        let mut s = self.lock();
        std::mem::swap(&mut s.inbox, into);
        s.inbox_bytes = 0;
        s.driver_told = false;
        (s.inbox_first, s.inbox_since)
    }

    /// The driver says whether it wakes by itself within a linger of now (a timer
    /// of its own is due by then): records handed over meanwhile then wait for
    /// that wake-up, which takes them in, instead of each burst waking it (a
    /// producer sending one record at a time woke it once a record; librdkafka's
    /// wakes its broker thread once a batch). A record waits at most about a
    /// linger, as it would have in its batch, whose linger counts from its
    /// hand-over all the same; [`WAKE_BYTES`] waiting tell the driver at once.
    /// Returns whether records wait that nobody told it of, now that it does not
    /// wake by itself: it takes them now (and counts as told).
    pub(crate) fn driver_wakes_itself(&self, wakes: bool) -> bool {
        let mut s = self.lock();
        s.driver_wakes_itself = wakes;
        if wakes || s.driver_told || s.inbox.is_empty() {
            return false;
        }
        s.driver_told = true;
        true
    }

    /// The number the next record will get: a flush waits for every record below it.
    pub(crate) fn next_number(&self) -> u64 {
        let s = self.lock();
        s.base + s.slots.len() as u64
    }

    /// Whether every record numbered below `mark` is delivered.
    pub(crate) fn delivered_below(&self, mark: u64) -> bool {
        self.lock().delivered_below >= mark
    }

    /// Locks the table to write results into it; the futures are woken when the
    /// returned guard is dropped.
    pub(crate) fn completing(&self) -> Completing<'_> {
        Completing {
            table: self,
            state: Some(self.lock()),
            wakers: Vec::new(),
            delivered: false,
        }
    }

    /// Takes no more records, and fails every one not yet delivered (the inbox's
    /// included) with `error`.
    pub(crate) fn close(&self, error: &ClientError) {
        let mut wakers = Vec::new();
        {
            let mut s = self.lock();
            s.closed = true;
            s.inbox.clear();
            s.inbox_bytes = 0;
            s.empty_line(&mut wakers);
            self.note_line(&s);
            for slot in &mut s.slots {
                if let Some(waker) = slot.take_waiting() {
                    *slot = Slot::Failed(Box::new(error.clone()));
                    if let Some(waker) = waker {
                        wakers.push(waker);
                    }
                }
            }
            s.advance();
        }
        self.delivered.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    /// Takes no more records; those handed over already are still delivered.
    pub(crate) fn refuse_new(&self) {
        let mut wakers = Vec::new();
        {
            let mut s = self.lock();
            s.closed = true;
            s.empty_line(&mut wakers);
            self.note_line(&s);
        }
        for w in wakers {
            w.wake();
        }
    }
}

/// Records handed over and not yet in the producer, in order (see
/// [`RecordChain`]). Taken from the table in one swap: the driver's emptied inbox
/// goes back, with the emptied chunks it keeps for the next records.
pub(crate) type Inbox = RecordChain;

/// Budget bytes of records waiting in the inbox that tell the driver even while it
/// wakes by itself, at most: a batch may be full, and should not wait out its
/// linger. (A batch's byte limit, when it is smaller.)
const WAKE_BYTES: usize = 64 << 10;

/// Results being written into the table (see [`Deliveries::completing`]).
pub(crate) struct Completing<'a> {
    table: &'a Deliveries,
    state: Option<MutexGuard<'a, State>>,
    wakers: Vec<Waker>,
    /// A result was written: threads blocked on deliveries are woken (news of
    /// the budget alone, once a take, does not concern them).
    delivered: bool,
}

impl Completing<'_> {
    /// Writes record `n`'s result; the first result of a record stands.
    pub(crate) fn deliver(&mut self, n: u64, result: Result<RecordMetadata, ClientError>) {
        let Some(s) = self.state.as_mut() else {
            return;
        };
        self.delivered = true;
        s.deliver(n, result, &mut self.wakers);
    }

    /// Writes the results of a written batch's records, as [`deliver`](Self::deliver)
    /// would one by one: its topic is looked up once, not per record.
    pub(crate) fn deliver_written(&mut self, batch: &WrittenBatch) {
        let Some(s) = self.state.as_mut() else {
            return;
        };
        self.delivered = true;
        s.deliver_written(batch, &mut self.wakers);
    }

    /// The driver's news for the budget: `admitted` bytes of records no longer wait
    /// in front of the producer (taken in, or failed), which now holds `producer`
    /// bytes. Senders waiting for room are woken if there is some.
    pub(crate) fn buffered(&mut self, admitted: usize, producer: usize) {
        let Some(s) = self.state.as_mut() else {
            return;
        };
        debug_assert!(
            admitted <= s.waiting_bytes,
            "admitted more than was handed over"
        );
        s.waiting_bytes = s.waiting_bytes.saturating_sub(admitted);
        s.producer_bytes = producer;
        if s.used() < s.limit {
            s.empty_line(&mut self.wakers);
            self.table.note_line(s);
        }
    }
}

impl Drop for Completing<'_> {
    fn drop(&mut self) {
        let sleepers = match self.state.take() {
            Some(mut s) => {
                s.advance();
                s.sleepers
            }
            None => 0,
        };
        if sleepers > 0 && self.delivered {
            self.table.delivered.notify_all();
        }
        for w in self.wakers.drain(..) {
            w.wake();
        }
    }
}

impl State {
    /// Whether a record of `size` budget bytes fits beside what is buffered and
    /// waiting (always, if nothing is: a record larger than the budget is then
    /// handed over, for the producer to refuse).
    fn has_room(&self, size: usize) -> bool {
        let used = self.used();
        used == 0 || used + size <= self.limit
    }

    /// Budget bytes taken: waiting in front of the producer and in it.
    fn used(&self) -> usize {
        self.waiting_bytes + self.producer_bytes
    }

    /// The sender numbered `n` leaves the line (if it is in it).
    fn leave_line(&mut self, n: u64) {
        if let Ok(i) = self.room_line.binary_search_by_key(&n, |w| w.n) {
            self.room_line.remove(i);
        }
    }

    /// Collects every sender in line to wake (room came, or the table is closing).
    fn empty_line(&mut self, wakers: &mut Vec<Waker>) {
        wakers.extend(self.room_line.drain(..).map(|w| w.waker));
    }

    /// After records were put in the inbox: whether the driver must be told. Once
    /// per take, and not while it wakes by itself within a linger unless a
    /// batch's worth waits (`wake_bytes`: a batch may be full) or the budget is
    /// used up (a full producer sends what it holds without lingering, and
    /// records waiting for room must not wait out a linger for the driver).
    fn tell_driver(&mut self) -> bool {
        if self.driver_told
            || self.inbox.is_empty()
            || (self.driver_wakes_itself
                && self.inbox_bytes < self.wake_bytes
                && self.used() < self.limit)
        {
            return false;
        }
        self.driver_told = true;
        true
    }

    /// Gives a record (of an open table) the next number and a slot, and puts it in
    /// the inbox; its number.
    fn enqueue_slot(&mut self, record: ProducerRecord) -> u64 {
        let n = self.base + self.slots.len() as u64;
        if self.inbox.is_empty() {
            self.inbox_first = n;
            // Once per burst, not per record.
            self.inbox_since = crate::runtime::now();
        }
        self.slots.push_back(Slot::Waiting(None));
        self.inbox.push(record);
        n
    }

    /// Writes record `n`'s result (the first one stands), and the waker of the
    /// future waiting for it, if any, into `wakers`.
    fn deliver(
        &mut self,
        n: u64,
        result: Result<RecordMetadata, ClientError>,
        wakers: &mut Vec<Waker>,
    ) {
        let Some((slot, waker)) = waiting_slot(&mut self.slots, self.base, n) else {
            return;
        };
        *slot = match result {
            Ok(meta) => Slot::Written(self.topics.written(&meta)),
            Err(e) => Slot::Failed(Box::new(e)),
        };
        wakers.extend(waker);
    }

    /// [`Completing::deliver_written`].
    fn deliver_written(&mut self, batch: &WrittenBatch, wakers: &mut Vec<Waker>) {
        let topic = self.topics.name(&batch.topic);
        for (id, offset, timestamp) in batch.reports() {
            let Some((slot, waker)) = waiting_slot(&mut self.slots, self.base, id.0) else {
                continue;
            };
            let written = self
                .topics
                .written_in(topic, batch.partition, offset, timestamp);
            *slot = Slot::Written(written);
            if let Some(waker) = waker {
                wakers.push(waker);
            }
        }
    }

    /// Marks records `first..end` as no longer read: a delivered one's slot is freed,
    /// a waiting one's is freed when its result comes.
    fn abandon(&mut self, first: u64, end: u64) {
        for n in first..end {
            match self.take_delivered(n) {
                Some(Slot::Written(w)) => self.topics.forget(w),
                Some(_) => {}
                None => {
                    if let Some(slot) = self.slot(n) {
                        *slot = Slot::Abandoned;
                    }
                }
            }
        }
        self.pop_freed();
    }

    /// Record `n`'s slot, in the ring or parked.
    fn slot(&mut self, n: u64) -> Option<&mut Slot> {
        match n.checked_sub(self.base) {
            Some(i) => self.slots.get_mut(usize::try_from(i).ok()?),
            None => self.parked.get_mut(&n),
        }
    }

    /// Takes record `n`'s slot out if it is delivered (written, failed, or read
    /// already), freed: a `Free` slot takes its place in the ring, a parked one
    /// leaves the map. `None` if it is not delivered yet, or not in the table.
    fn take_delivered(&mut self, n: u64) -> Option<Slot> {
        match n.checked_sub(self.base) {
            Some(i) => {
                let slot = self.slots.get_mut(usize::try_from(i).ok()?)?;
                if matches!(slot, Slot::Waiting(_) | Slot::Abandoned) {
                    return None;
                }
                Some(std::mem::replace(slot, Slot::Free))
            }
            // Only delivered results are parked.
            None => self.parked.remove(&n),
        }
    }

    /// Moves `delivered_below` past delivered slots and drops freed ones from the
    /// front.
    fn advance(&mut self) {
        let base = self.base;
        while let Some(i) = self
            .delivered_below
            .checked_sub(base)
            .and_then(|i| usize::try_from(i).ok())
            && self.slots.get(i).is_some_and(Slot::is_delivered)
        {
            self.delivered_below += 1;
        }
        self.pop_freed();
    }

    /// Drops freed slots from the front. (Every slot below `base` is delivered, so
    /// `delivered_below` is at least `base`.)
    fn pop_freed(&mut self) {
        let freed = self
            .slots
            .iter()
            .take_while(|slot| matches!(slot, Slot::Free))
            .count();
        if freed > 0 {
            self.slots.drain(..freed);
            self.base += freed as u64;
        }
        if self.slots.len() >= self.park_check_at {
            self.park_unread();
        }
        if self.delivered_below < self.base {
            self.delivered_below = self.base;
        }
        // A burst grew the ring; once it is mostly empty the room goes back, so
        // that memory follows what is in transit.
        if self.slots.capacity() > KEPT_SLOTS && self.slots.len() < self.slots.capacity() / 8 {
            self.slots
                .shrink_to(self.slots.len().max(KEPT_SLOTS / 2) * 2);
        }
    }

    /// Moves the results unread at the front of a ring that is large and mostly
    /// freed (at most a quarter of its slots in use) aside, into `parked`, and drops
    /// the freed slots between them, up to the first record not delivered yet. A
    /// result kept unread then costs a map entry of its own rather than a slot for
    /// every record sent after it. Looking costs a pass over the ring, so the next
    /// look waits until the ring has doubled: amortized, a constant per record.
    fn park_unread(&mut self) {
        let in_use = self
            .slots
            .iter()
            .filter(|slot| !matches!(slot, Slot::Free))
            .count();
        if in_use.saturating_mul(4) <= self.slots.len() {
            // Up to the first record not delivered yet.
            while self
                .slots
                .front()
                .is_some_and(|s| !matches!(s, Slot::Waiting(_) | Slot::Abandoned))
            {
                if let Some(slot) = self.slots.pop_front()
                    && !matches!(slot, Slot::Free)
                {
                    self.parked.insert(self.base, slot);
                }
                self.base += 1;
            }
        }
        self.park_check_at = self.slots.len().saturating_mul(2).max(PARK_FROM);
    }

    /// Takes a delivered record's result, freeing its slot; `None` if not delivered
    /// yet (or read already). Every single delivery is read here, so the ring's
    /// slot is matched in place rather than through
    /// [`take_delivered`](Self::take_delivered) (which cost `send1` 10-40
    /// instructions a record).
    fn take(&mut self, n: u64) -> Option<Result<RecordMetadata, ClientError>> {
        let Some(i) = n.checked_sub(self.base) else {
            // Parked: delivered.
            let slot = self.parked.remove(&n)?;
            return Some(read(&mut self.topics, slot));
        };
        let slot = self.slots.get_mut(usize::try_from(i).ok()?)?;
        let result = match std::mem::replace(slot, Slot::Free) {
            Slot::Written(w) => Ok(self.topics.read(w)),
            Slot::Failed(e) => Err(*e),
            other => {
                *slot = other;
                return None;
            }
        };
        // Delivered before and delivered now: only the front can move.
        self.pop_freed();
        Some(result)
    }
}

/// The delivery of one record: where it landed, or why not. Await it, or `wait` for
/// it from blocking code. Dropping it does not cancel the record.
///
/// ```
/// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
/// # let (_server, client) = kafka_sansio::doc_support::client().await;
/// use kafka_sansio::client::ProducerRecord;
///
/// let delivery = client.producer().send(ProducerRecord::new("orders", "paid").partition(2));
/// let written = delivery.await?;
/// assert_eq!(&*written.topic, "orders");
/// assert_eq!((written.partition, written.offset), (2, Some(0)));
/// # Ok(()) });
/// ```
#[must_use = "a delivery report says whether the record was written"]
pub struct DeliveryFuture {
    state: Future_,
}

enum Future_ {
    /// Waiting in the table for the record numbered `n`.
    Slot { table: Arc<Deliveries>, n: u64 },
    /// Known already (refused before it reached the table), or taken. Boxed: it
    /// is rare, and applications hold many futures (24 bytes each rather than 96).
    Ready(Option<Box<Result<RecordMetadata, ClientError>>>),
}

impl std::fmt::Debug for DeliveryFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.state {
            Future_::Slot { n, .. } => f.debug_struct("DeliveryFuture").field("record", n).finish(),
            Future_::Ready(r) => f.debug_struct("DeliveryFuture").field("ready", r).finish(),
        }
    }
}

impl DeliveryFuture {
    fn ready(result: Result<RecordMetadata, ClientError>) -> Self {
        Self {
            state: Future_::Ready(Some(Box::new(result))),
        }
    }

    /// Blocks the thread until the record is delivered or fails.
    ///
    /// # Errors
    /// The record could not be written (after retries, by its delivery timeout), or
    /// the client closed first.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio", feature = "blocking"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::ProducerRecord;
    ///
    /// let delivery = client.producer().send(ProducerRecord::new("orders", "paid").partition(1));
    /// let written = delivery.wait()?; // blocks this thread
    /// assert_eq!((written.partition, written.offset), (1, Some(0)));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(mut self) -> Result<RecordMetadata, ClientError> {
        let state = std::mem::replace(&mut self.state, Future_::Ready(None));
        match state {
            Future_::Ready(r) => r.map_or(Err(ClientError::Closed), |r| *r),
            Future_::Slot { table, n } => {
                let mut s = table.lock();
                loop {
                    if let Some(result) = s.take(n) {
                        return result;
                    }
                    if !matches!(s.slot(n), Some(Slot::Waiting(_))) {
                        return Err(ClientError::Closed);
                    }
                    s.sleepers += 1;
                    #[cfg(test)]
                    {
                        s.naps += 1;
                    }
                    s = table
                        .delivered
                        .wait(s)
                        .unwrap_or_else(PoisonError::into_inner);
                    s.sleepers -= 1;
                }
            }
        }
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let taken = match &mut self.state {
            Future_::Ready(r) => {
                return Poll::Ready(r.take().map_or(Err(ClientError::Closed), |r| *r));
            }
            Future_::Slot { table, n } => {
                let mut s = table.lock();
                if let Some(result) = s.take(*n) {
                    result
                } else {
                    match s.slot(*n) {
                        Some(Slot::Waiting(waker)) => {
                            match waker {
                                Some(w) if w.will_wake(cx.waker()) => {}
                                _ => *waker = Some(cx.waker().clone()),
                            }
                            return Poll::Pending;
                        }
                        // Not in the table: cannot happen while this future holds
                        // its number, but never wait for nothing.
                        _ => Err(ClientError::Closed),
                    }
                }
            }
        };
        self.state = Future_::Ready(None);
        Poll::Ready(taken)
    }
}

impl Drop for DeliveryFuture {
    fn drop(&mut self) {
        if let Future_::Slot { table, n } = &self.state {
            table.lock().abandon(*n, *n + 1);
        }
    }
}

/// The deliveries of records handed over together with
/// [`Producer::send_all`](crate::runtime::Producer::send_all): one future for all of
/// them, ready when the last is delivered, with each record's result in the order
/// given. Awaiting it costs one lock and one wake-up per batch rather than per
/// record. Dropping it does not cancel the records.
///
/// ```
/// # #[cfg(all(feature = "sim", feature = "tokio"))] kafka_sansio::doc_support::tokio(async {
/// # let (_server, client) = kafka_sansio::doc_support::client().await;
/// use kafka_sansio::client::ProducerRecord;
///
/// let records = (0..3).map(|i| ProducerRecord::new("orders", format!("event {i}")).partition(0)).collect();
/// let results = client.producer().send_all(records).await;
/// let offsets: Vec<_> = results.into_iter().map(|r| r.map(|m| m.offset)).collect::<Result<_, _>>()?;
/// assert_eq!(offsets, [Some(0), Some(1), Some(2)]);
/// # Ok(()) });
/// ```
#[must_use = "a delivery report says whether the records were written"]
pub struct BatchDelivery {
    state: Batch_,
}

enum Batch_ {
    /// Waiting in the table for records `first..end`; every record numbered below
    /// `waiting_at` is known to be delivered.
    Slots {
        table: Arc<Deliveries>,
        first: u64,
        end: u64,
        waiting_at: u64,
    },
    /// Known already (refused before the table took them), or taken.
    Ready(Option<Vec<Result<RecordMetadata, ClientError>>>),
}

impl std::fmt::Debug for BatchDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.state {
            Batch_::Slots { first, end, .. } => f
                .debug_struct("BatchDelivery")
                .field("records", &(*first..*end))
                .finish(),
            Batch_::Ready(r) => f
                .debug_struct("BatchDelivery")
                .field("ready", &r.as_ref().map(Vec::len))
                .finish(),
        }
    }
}

impl BatchDelivery {
    fn ready(results: Vec<Result<RecordMetadata, ClientError>>) -> Self {
        Self {
            state: Batch_::Ready(Some(results)),
        }
    }

    /// Blocks the thread until every record is delivered or has failed; their
    /// results, in the order the records were given.
    ///
    /// ```
    /// # #[cfg(all(feature = "sim", feature = "tokio", feature = "blocking"))] {
    /// # let (_server, client) = kafka_sansio::doc_support::blocking_client();
    /// use kafka_sansio::client::ProducerRecord;
    ///
    /// let records = (0..3).map(|i| ProducerRecord::new("orders", format!("{i}")).partition(1)).collect();
    /// let results = client.producer().send_all(records).wait(); // blocks this thread
    /// assert!(results.iter().all(Result::is_ok));
    /// # }
    /// ```
    #[must_use]
    pub fn wait(mut self) -> Vec<Result<RecordMetadata, ClientError>> {
        let state = std::mem::replace(&mut self.state, Batch_::Ready(None));
        match state {
            Batch_::Ready(r) => r.unwrap_or_default(),
            Batch_::Slots {
                table,
                first,
                end,
                mut waiting_at,
            } => {
                let mut s = table.lock();
                while !s.all_delivered(&mut waiting_at, end, None) {
                    s.sleepers += 1;
                    #[cfg(test)]
                    {
                        s.naps += 1;
                    }
                    s = table
                        .delivered
                        .wait(s)
                        .unwrap_or_else(PoisonError::into_inner);
                    s.sleepers -= 1;
                }
                s.take_range(first, end)
            }
        }
    }
}

impl Future for BatchDelivery {
    type Output = Vec<Result<RecordMetadata, ClientError>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let taken = match &mut self.state {
            Batch_::Ready(r) => return Poll::Ready(r.take().unwrap_or_default()),
            Batch_::Slots {
                table,
                first,
                end,
                waiting_at,
            } => {
                let mut s = table.lock();
                if !s.all_delivered(waiting_at, *end, Some(cx.waker())) {
                    return Poll::Pending;
                }
                s.take_range(*first, *end)
            }
        };
        self.state = Batch_::Ready(None);
        Poll::Ready(taken)
    }
}

impl Drop for BatchDelivery {
    fn drop(&mut self) {
        if let Batch_::Slots {
            table, first, end, ..
        } = &self.state
        {
            table.lock().abandon(*first, *end);
        }
    }
}

impl State {
    /// Whether records `*from..end` are all delivered, moving `*from` past those
    /// that are; if not, `waker` (if any) waits on the first that is not.
    fn all_delivered(&mut self, from: &mut u64, end: u64, waker: Option<&Waker>) -> bool {
        *from = (*from).max(self.delivered_below.min(end));
        while *from < end {
            match self.slot(*from) {
                Some(Slot::Waiting(w)) => {
                    if let Some(waker) = waker {
                        match w {
                            Some(w) if w.will_wake(waker) => {}
                            _ => *w = Some(waker.clone()),
                        }
                    }
                    return false;
                }
                // Delivered (a slot not in the table cannot happen while a batch
                // holds its numbers; it is failed below rather than waited for).
                _ => *from += 1,
            }
        }
        true
    }

    /// Takes records `first..end`'s results (all delivered), freeing their slots.
    fn take_range(&mut self, first: u64, end: u64) -> Vec<Result<RecordMetadata, ClientError>> {
        let count = usize::try_from(end.saturating_sub(first)).unwrap_or(0);
        let mut results = Vec::with_capacity(count);
        // While a batch holds its numbers its slots are side by side, in the ring
        // unless the front moved past some of them (`park_unread`): one pass over
        // them, not a lookup per record.
        let base = self.base;
        let (slots, topics) = (&mut self.slots, &mut self.topics);
        let at = first
            .checked_sub(base)
            .and_then(|i| usize::try_from(i).ok());
        match at.filter(|at| at.checked_add(count).is_some_and(|e| e <= slots.len())) {
            Some(at) => {
                results.extend(
                    slots
                        .range_mut(at..at + count)
                        .map(|slot| read(topics, std::mem::replace(slot, Slot::Free))),
                );
            }
            None => {
                for n in first..end {
                    let result = match self.take_delivered(n) {
                        Some(slot) => read(&mut self.topics, slot),
                        None => Err(ClientError::Closed),
                    };
                    results.push(result);
                }
            }
        }
        self.pop_freed();
        results
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::client::COPIED_QUEUE_RECORDS;

    fn meta(offset: i64) -> RecordMetadata {
        RecordMetadata {
            topic: "t".into(),
            partition: 0,
            offset: Some(offset),
            timestamp: 0,
        }
    }

    /// Many records handed over for one `BatchDelivery`, as `send_all` does.
    /// Whether no written slot names a topic any more.
    fn no_topic_named(table: &Deliveries) -> bool {
        let s = table.lock();
        s.topics.names.iter().all(|(_, slots)| *slots == 0)
    }

    fn push_all(table: &Arc<Deliveries>, records: Vec<ProducerRecord>) -> (BatchDelivery, bool) {
        table.push_queue(RecordQueue::from_records(records), 0)
    }

    fn complete(table: &Deliveries, done: Vec<(u64, Result<RecordMetadata, ClientError>)>) {
        let mut c = table.completing();
        for (n, result) in done {
            c.deliver(n, result);
        }
    }

    /// Every slot is freed and the ring's front is past record `base - 1`.
    fn assert_all_freed(table: &Deliveries, base: u64) {
        let s = table.lock();
        assert!(s.slots.is_empty(), "every slot freed");
        assert_eq!(s.base, base);
    }

    fn poll_now(f: &mut DeliveryFuture) -> Poll<Result<RecordMetadata, ClientError>> {
        let waker = Waker::noop();
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    /// Counts its wakes.
    struct CountingWaker(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    impl CountingWaker {
        fn wakes(&self) -> usize {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    /// 100 value bytes: 125 bytes of the budget.
    fn sized(i: usize) -> ProducerRecord {
        ProducerRecord::new("t", format!("{i:0100}"))
    }

    /// A task's waker that counts its wakes, and its context.
    fn counting() -> (Arc<CountingWaker>, Waker) {
        let counter = Arc::new(CountingWaker(std::sync::atomic::AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        (counter, waker)
    }

    #[test]
    fn senders_asking_for_room_share_the_budget_with_the_producer() {
        let table = Deliveries::new(1000);
        // Eight records of 125 bytes fill it; the ninth comes back whole.
        for i in 0..8 {
            assert!(table.try_push(sized(i)).is_ok(), "record {i}");
        }
        let full = table.try_push(sized(8)).unwrap_err();
        assert_eq!((full.used(), full.limit()), (1000, 1000));
        assert_eq!(full.waiting_senders(), 0);
        assert_eq!(full.into_record(), sized(8));
        // `send` does not ask: it is taken, and counts.
        let (_unasked, _) = table.push_one(sized(8));
        let (counter, waker) = counting();
        let cx = Context::from_waker(&waker);
        let mut place = PlaceInLine::new(&table);
        let (record, first_to_wait) = place.push(sized(9), &cx).unwrap_err();
        assert!(first_to_wait, "the first sender to wait tells the driver");
        let (record, first_to_wait) = place.push(record, &cx).unwrap_err();
        assert!(!first_to_wait, "the driver was told when it began to wait");
        assert!(table.senders_waiting());
        assert_eq!(table.lock().room_line.len(), 1, "one entry per sender");
        // The driver takes 4 records in and they wait in the producer: still full,
        // and the sender still waits.
        table.completing().buffered(500, 500);
        assert!(table.senders_waiting());
        assert_eq!(counter.wakes(), 0);
        assert_eq!(table.try_push(sized(10)).unwrap_err().waiting_senders(), 1);
        // 5 more taken in, and the producer delivered some: room, and the sender is
        // woken.
        table.completing().buffered(625, 875);
        assert!(!table.senders_waiting());
        assert_eq!(counter.wakes(), 1);
        assert!(!table.senders_waiting());
        assert!(place.push(record, &cx).is_ok());
        drop(place);
        let s = table.lock();
        assert_eq!((s.waiting_bytes, s.producer_bytes), (125, 875));
        assert!(s.room_line.is_empty());
    }

    #[test]
    fn waiting_senders_are_woken_when_room_comes_and_register_again_if_others_took_it() {
        let table = Deliveries::new(1000);
        for i in 0..8 {
            assert!(table.try_push(sized(i)).is_ok());
        }
        let tasks: Vec<_> = (0..3).map(|_| counting()).collect();
        let mut places: Vec<_> = (0..3).map(|_| PlaceInLine::new(&table)).collect();
        let mut records: Vec<_> = (0..3)
            .map(|i| {
                let cx = Context::from_waker(&tasks[i].1);
                Some(places[i].push(sized(i), &cx).unwrap_err().0)
            })
            .collect();
        let wakes = || tasks.iter().map(|t| t.0.wakes()).collect::<Vec<_>>();
        let mut run = |i: usize| {
            let cx = Context::from_waker(&tasks[i].1);
            match places[i].push(records[i].take().unwrap(), &cx) {
                Ok(_) => true,
                Err((record, _)) => {
                    records[i] = Some(record);
                    false
                }
            }
        };
        // Polled again without room: each keeps its one entry.
        assert!(!run(1));
        assert_eq!(table.lock().room_line.len(), 3);
        // Room for one: all are woken; the first to run takes it, the others find
        // none and wait again.
        table.completing().buffered(1000, 875);
        assert_eq!(wakes(), [1, 1, 1]);
        assert!(table.lock().room_line.is_empty());
        assert!(run(2));
        assert!(!run(0));
        assert!(!run(1));
        assert_eq!(table.lock().room_line.len(), 2);
        // A report without room wakes no one.
        table.completing().buffered(125, 1000);
        assert_eq!(wakes(), [1, 1, 1]);
        table.completing().buffered(0, 750);
        assert_eq!(wakes(), [2, 2, 1]);
        assert!(run(0) && run(1));
        assert!(table.lock().room_line.is_empty());
    }

    #[test]
    fn a_sender_that_stops_waiting_leaves_the_line() {
        let table = Deliveries::new(1000);
        for i in 0..8 {
            assert!(table.try_push(sized(i)).is_ok());
        }
        let tasks: Vec<_> = (0..3).map(|_| counting()).collect();
        let mut places: Vec<_> = (0..3).map(|_| PlaceInLine::new(&table)).collect();
        for (i, place) in places.iter_mut().enumerate() {
            let cx = Context::from_waker(&tasks[i].1);
            assert!(place.push(sized(i), &cx).is_err());
        }
        let mut places = places.into_iter();
        drop(places.next());
        assert_eq!(table.lock().room_line.len(), 2);
        let rest: Vec<_> = places.collect();
        // Room: only those still waiting are woken.
        table.completing().buffered(1000, 875);
        assert_eq!(
            tasks.iter().map(|t| t.0.wakes()).collect::<Vec<_>>(),
            [0, 1, 1]
        );
        // Dropped after it was woken (no longer in line): nothing to leave.
        drop(rest);
        assert!(table.lock().room_line.is_empty());
        assert!(table.try_push(sized(3)).is_ok());
    }

    #[test]
    fn a_record_larger_than_the_budget_is_taken_when_nothing_waits_and_closing_wakes_senders() {
        let table = Deliveries::new(100);
        // Nothing waits: taken, for the producer to refuse as too large.
        assert!(table.try_push(sized(0)).is_ok());
        let (counter, waker) = counting();
        let cx = Context::from_waker(&waker);
        let mut place = PlaceInLine::new(&table);
        let record = place.push(sized(1), &cx).unwrap_err().0;
        // Once the producer holds nothing, it is taken although it is larger.
        table.completing().buffered(125, 0);
        assert_eq!(counter.wakes(), 1);
        assert!(place.push(record, &cx).is_ok());
        let mut place = PlaceInLine::new(&table);
        let record = place.push(sized(2), &cx).unwrap_err().0;
        table.refuse_new();
        assert_eq!(counter.wakes(), 2, "closing wakes senders waiting for room");
        // A closed table takes the record to fail it, room or not.
        let (mut closed, wake) = place.push(record, &cx).unwrap();
        assert!(!wake);
        assert_eq!(poll_now(&mut closed), Poll::Ready(Err(ClientError::Closed)));
        let (mut closed, _) = table.try_push(sized(3)).unwrap();
        assert_eq!(poll_now(&mut closed), Poll::Ready(Err(ClientError::Closed)));
    }

    #[test]
    fn the_inbox_is_dated_by_its_first_record() {
        let table = Deliveries::new(usize::MAX);
        let before = crate::runtime::now();
        let _a = table.push_one(ProducerRecord::new("t", "a"));
        let after_first = crate::runtime::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let _b = table.push_one(ProducerRecord::new("t", "b"));
        let mut inbox = Inbox::default();
        let (first, since) = table.take_inbox(&mut inbox);
        assert_eq!((first, inbox.len()), (0, 2));
        assert!(
            before <= since && since <= after_first,
            "dated by the later record"
        );
        // The next burst starts a new date.
        let mut next = Inbox::default();
        let _c = table.push_one(ProducerRecord::new("t", "c"));
        let (first, since) = table.take_inbox(&mut next);
        assert_eq!(first, 2);
        assert!(since > after_first);
    }

    #[test]
    fn queues_count_their_records_budget() {
        let table = Deliveries::new(10_000);
        let mut buffer = crate::client::RecordBuffer::new();
        for i in 0..4 {
            buffer.push(sized(i).borrowed());
        }
        let bytes = buffer.bytes;
        assert_eq!(bytes, 500);
        let _batch = table.push_queue(buffer.queue, bytes);
        let _one = table.push_one(sized(4));
        assert_eq!(table.lock().waiting_bytes, 625);
        buffer = crate::client::RecordBuffer::new();
        buffer.push(sized(0).borrowed());
        buffer.clear();
        assert_eq!(buffer.bytes, 0);
    }

    #[test]
    fn results_reach_their_futures_in_any_order_and_the_ring_shrinks() {
        let table = Deliveries::new(usize::MAX);
        let mut futures = Vec::new();
        assert!(table.push(
            (0..4).map(|i| ProducerRecord::new("t", vec![i])),
            &mut futures
        ));
        let mut inbox = Inbox::default();
        assert_eq!(table.take_inbox(&mut inbox).0, 0);
        let values: Vec<_> = inbox.iter().map(|r| r.value.unwrap().to_vec()).collect();
        assert_eq!(values, [[0], [1], [2], [3]]);
        assert!(poll_now(&mut futures[0]).is_pending());
        complete(&table, vec![(2, Ok(meta(2))), (0, Ok(meta(0)))]);
        assert!(table.delivered_below(1) && !table.delivered_below(2));
        let mut futures = futures.into_iter();
        let mut f0 = futures.next().unwrap();
        assert_eq!(poll_now(&mut f0), Poll::Ready(Ok(meta(0))));
        let f1 = futures.next().unwrap();
        drop(f1); // abandoned before delivery
        complete(
            &table,
            vec![(1, Err(ClientError::Closed)), (3, Ok(meta(3)))],
        );
        assert!(table.delivered_below(4));
        let mut rest: Vec<_> = futures.collect();
        assert_eq!(poll_now(&mut rest[1]), Poll::Ready(Ok(meta(3))));
        assert_eq!(rest.remove(0).wait(), Ok(meta(2)));
        drop(rest);
        drop(f0);
        assert_all_freed(&table, 4);
    }

    /// Records tell the driver once a take; not while it wakes by itself, until a
    /// batch's worth ([`WAKE_BYTES`]) waits; when it stops waking by itself,
    /// records nobody told it of are its to take at once.
    #[test]
    fn records_tell_the_driver_once_a_take_and_not_while_it_wakes_by_itself() {
        let table = Deliveries::new(usize::MAX);
        let mut futures = Vec::new();
        let mut push = || {
            let (future, tell) = table.push_one(sized(0));
            futures.push(future);
            tell
        };
        let take = || {
            let mut inbox = Inbox::default();
            table.take_inbox(&mut inbox);
            inbox.len()
        };
        assert!(push());
        assert!(!push(), "told already");
        assert_eq!(take(), 2);
        assert!(push(), "a new take");
        take();

        assert!(!table.driver_wakes_itself(true), "nothing waits");
        let quiet = (0..).take_while(|_| !push()).count();
        let size = sized(0).size();
        let told_at = WAKE_BYTES.div_ceil(size) - 1;
        assert_eq!(quiet, told_at, "told at {WAKE_BYTES} bytes");
        assert!(!push(), "told already");
        assert_eq!(take(), told_at + 2);
        assert!(!push(), "it wakes by itself");
        assert!(!table.driver_wakes_itself(true), "nothing changed");
        assert!(table.driver_wakes_itself(false), "one record waits untold");
        assert!(!push(), "it takes them now: told");
        assert!(!table.driver_wakes_itself(false));
        assert_eq!(take(), 2);
        assert!(push(), "it no longer wakes by itself");
        take();
        assert!(!table.driver_wakes_itself(false), "the inbox is empty");

        // Batches smaller than WAKE_BYTES: a batch's worth tells it.
        let small = Deliveries::for_producer(usize::MAX, 1000);
        small.driver_wakes_itself(true);
        let quiet = (0..).take_while(|_| !small.push_one(sized(0)).1).count();
        assert_eq!(quiet, 1000usize.div_ceil(size) - 1, "told at 1000 bytes");

        // A budget smaller than a batch: the record that uses it up tells it.
        let budget = 3 * size + size / 2;
        let full = Deliveries::for_producer(budget, WAKE_BYTES);
        full.driver_wakes_itself(true);
        let quiet = (0..).take_while(|_| !full.push_one(sized(0)).1).count();
        assert_eq!(quiet, 3, "told once the budget is used up");
    }

    #[test]
    fn a_closed_table_fails_waiting_records_and_refuses_new_ones() {
        let table = Deliveries::new(usize::MAX);
        let (mut waiting, wake) = table.push_one(ProducerRecord::new("t", "a"));
        assert!(wake);
        let (_second, wake) = table.push_one(ProducerRecord::new("t", "b"));
        assert!(!wake, "the driver was told already");
        table.close(&ClientError::Closed);
        assert_eq!(
            poll_now(&mut waiting),
            Poll::Ready(Err(ClientError::Closed))
        );
        let (mut late, wake) = table.push_one(ProducerRecord::new("t", "c"));
        assert!(!wake);
        assert_eq!(poll_now(&mut late), Poll::Ready(Err(ClientError::Closed)));
        assert!(table.delivered_below(2));
    }

    /// The driver's news of the budget, once a take, does not wake threads
    /// blocked on deliveries; a delivery does.
    #[test]
    fn a_blocked_waiter_sleeps_through_reports_that_deliver_nothing() {
        let table = Deliveries::new(usize::MAX);
        let (future, _) = table.push_one(ProducerRecord::new("t", "a"));
        let t2 = table.clone();
        let waiter = std::thread::spawn(move || future.wait());
        while table.lock().naps == 0 {
            std::thread::yield_now();
        }
        for _ in 0..5 {
            let mut report = table.completing();
            report.buffered(0, 100);
            drop(report);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        complete(&t2, vec![(0, Ok(meta(7)))]);
        assert_eq!(waiter.join().unwrap(), Ok(meta(7)));
        assert_eq!(
            table.lock().naps,
            1,
            "woken by reports that delivered nothing"
        );
    }

    #[test]
    fn a_blocked_waiter_wakes_when_its_record_is_delivered() {
        let table = Deliveries::new(usize::MAX);
        let (future, _) = table.push_one(ProducerRecord::new("t", "a"));
        let t2 = table.clone();
        let waiter = std::thread::spawn(move || future.wait());
        std::thread::sleep(std::time::Duration::from_millis(20));
        complete(&t2, vec![(0, Ok(meta(7)))]);
        assert_eq!(waiter.join().unwrap(), Ok(meta(7)));
    }

    /// A waker that counts its wakes.
    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_batch_is_ready_once_its_last_record_is_delivered_with_every_result_in_order() {
        let table = Deliveries::new(usize::MAX);
        // One record before the batch, answered last: the batch does not wait for it.
        let (before, _) = table.push_one(ProducerRecord::new("t", "x"));
        let (mut batch, wake) = push_all(
            &table,
            (0..5).map(|i| ProducerRecord::new("t", vec![i])).collect(),
        );
        assert!(!wake, "the inbox was not empty");
        let count = Arc::new(Count(0.into()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut batch).poll(&mut cx).is_pending());
        // Out of order, as partitions answer: the first record (1) still waits.
        complete(
            &table,
            vec![(3, Ok(meta(3))), (5, Err(ClientError::Closed))],
        );
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        complete(&table, vec![(1, Ok(meta(1))), (2, Ok(meta(2)))]);
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(Pin::new(&mut batch).poll(&mut cx).is_pending(), "4 waits");
        complete(&table, vec![(4, Ok(meta(4)))]);
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 2);
        let Poll::Ready(results) = Pin::new(&mut batch).poll(&mut cx) else {
            panic!("every record is delivered")
        };
        assert_eq!(
            results,
            vec![
                Ok(meta(1)),
                Ok(meta(2)),
                Ok(meta(3)),
                Ok(meta(4)),
                Err(ClientError::Closed)
            ]
        );
        drop(batch);
        assert_eq!(
            table.lock().slots.len(),
            6,
            "record 0 still holds the front"
        );
        drop(before);
        complete(&table, vec![(0, Ok(meta(0)))]);
        assert_all_freed(&table, 6);
    }

    #[test]
    fn a_dropped_batch_frees_its_slots_as_results_come() {
        let table = Deliveries::new(usize::MAX);
        let (batch, wake) = push_all(
            &table,
            (0..3).map(|i| ProducerRecord::new("t", vec![i])).collect(),
        );
        assert!(wake);
        complete(&table, vec![(1, Ok(meta(1)))]);
        drop(batch);
        complete(&table, vec![(0, Ok(meta(0))), (2, Ok(meta(2)))]);
        assert_all_freed(&table, 3);
    }

    fn queue(values: &[&str]) -> RecordQueue {
        let mut q = RecordQueue::default();
        for v in values {
            q.push(ProducerRecord::new("t", v.to_string()));
        }
        q
    }

    fn inbox_values(inbox: &Inbox) -> Vec<String> {
        inbox
            .iter()
            .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
            .collect()
    }

    /// Queues wait as they came, behind what came before them, in order with single
    /// records before and after; short queues are copied behind what waits; each
    /// batch's futures get their own records' results.
    #[test]
    fn queues_wait_whole_in_order_with_single_records() {
        let long: Vec<String> = (0..COPIED_QUEUE_RECORDS).map(|i| format!("q{i}")).collect();
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        let table = Deliveries::new(usize::MAX);
        let (first, wake) = table.push_queue(queue(&["a", "b"]), 0);
        assert!(wake, "the inbox was empty");
        let (_one, wake) = table.push_one(ProducerRecord::new("t", "c"));
        assert!(!wake);
        let (second, wake) = table.push_queue(queue(&["d", "e"]), 0);
        assert!(!wake, "the inbox was not empty");
        let (third, _) = table.push_queue(queue(&long), 0);
        let (_two, _) = table.push_one(ProducerRecord::new("t", "f"));
        let (_, _) = table.push_queue(RecordQueue::default(), 0);
        let mut inbox = Inbox::default();
        assert_eq!(table.take_inbox(&mut inbox).0, 0);
        let mut expected: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        expected.extend(long.iter().map(|v| v.to_string()));
        expected.push("f".to_string());
        assert_eq!(inbox_values(&inbox), expected);
        assert_eq!(inbox.len(), expected.len());
        assert_eq!(
            inbox.queue_lens().len(),
            3,
            "the short queues and single records were copied into the inbox's own \
             queue, the long one waits as it came, and the last record goes into a \
             queue of the inbox's own behind it, not into the sender's"
        );
        let lens = inbox.queue_lens();
        assert_eq!(lens, [5, COPIED_QUEUE_RECORDS, 1]);
        let n = expected.len() as u64;
        complete(&table, (0..n).map(|i| (i, Ok(meta(i as i64)))).collect());
        let offsets = |r: Vec<Result<RecordMetadata, ClientError>>| -> Vec<_> {
            r.into_iter().map(|m| m.unwrap().offset.unwrap()).collect()
        };
        assert_eq!(offsets(futures_lite::future::block_on(first)), [0, 1]);
        assert_eq!(offsets(futures_lite::future::block_on(second)), [3, 4]);
        assert_eq!(
            offsets(futures_lite::future::block_on(third)),
            (5..5 + COPIED_QUEUE_RECORDS as i64).collect::<Vec<_>>()
        );
    }

    /// A long queue handed over is the very queue the driver takes (its buffer is
    /// not copied), and the driver's emptied inbox keeps its emptied chunk for the
    /// records sent next.
    #[test]
    fn a_long_queue_is_taken_uncopied_and_an_emptied_inbox_keeps_room() {
        let long: Vec<String> = (0..100).map(|i| format!("value-{i}")).collect();
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        let table = Deliveries::new(usize::MAX);
        let (_one, _) = table.push_one(ProducerRecord::new("t", "single"));
        let q = queue(&long);
        let at = q.front_queued().unwrap().fields.value.unwrap().as_ptr();
        let (_batch, _) = table.push_queue(q, 0);
        let mut inbox = Inbox::default();
        table.take_inbox(&mut inbox);
        let (_, next) = inbox.front_and_next().unwrap();
        inbox.pop_front_to(next);
        assert_eq!(
            inbox
                .front_and_next()
                .unwrap()
                .0
                .fields
                .value
                .unwrap()
                .as_ptr(),
            at,
            "the queue's own bytes"
        );
        while let Some((_, next)) = inbox.front_and_next() {
            inbox.pop_front_to(next);
        }
        assert!(inbox.is_empty());
        let room = inbox.spare_capacities();
        assert_eq!(room.len(), 1, "the emptied chunk is kept");
        // The emptied inbox goes back in the driver's next swap; the next record
        // fills its room.
        table.take_inbox(&mut inbox);
        assert!(inbox.is_empty());
        let (_next, wake) = table.push_one(ProducerRecord::new("t", "next"));
        assert!(wake);
        let mut taken = Inbox::default();
        table.take_inbox(&mut taken);
        assert_eq!(inbox_values(&taken), ["next"]);
        assert_eq!(taken.queue_capacities(), room, "the kept room was reused");
    }

    #[test]
    fn a_burst_gives_its_memory_back_once_delivered() {
        let table = Deliveries::new(usize::MAX);
        let n = 20 * KEPT_SLOTS as u64;
        let (batch, _) = push_all(
            &table,
            (0..n)
                .map(|i| ProducerRecord::new("t", vec![i as u8]))
                .collect(),
        );
        let mut inbox = Inbox::default();
        table.take_inbox(&mut inbox);
        assert_eq!(inbox.len() as u64, n);
        assert!(table.lock().slots.capacity() >= n as usize);
        complete(&table, (0..n).map(|i| (i, Ok(meta(i as i64)))).collect());
        assert_eq!(futures_lite::future::block_on(batch).len() as u64, n);
        assert_all_freed(&table, n);
        let capacity = table.lock().slots.capacity();
        assert!(
            capacity <= KEPT_SLOTS,
            "the ring kept room for {capacity} slots"
        );
    }

    /// A future kept and never awaited, while every later record is sent, delivered
    /// and read, must not hold a slot for each of them: its result moves aside and
    /// the ring stays short; the kept futures still get their own results.
    #[test]
    fn a_result_kept_unread_does_not_hold_the_ring() {
        let table = Deliveries::new(usize::MAX);
        let (mut kept, _) = table.push_one(ProducerRecord::new("t", "kept"));
        let (kept_batch, _) = push_all(
            &table,
            vec![
                ProducerRecord::new("t", "b0"),
                ProducerRecord::new("t", "b1"),
            ],
        );
        let (failed, _) = table.push_one(ProducerRecord::new("t", "failed"));
        let (dropped_later, _) = table.push_one(ProducerRecord::new("other", "x"));
        let timeout = ClientError::UnknownTopic("t".into());
        let mut other = meta(4);
        other.topic = "other".into();
        complete(
            &table,
            vec![
                (0, Ok(meta(0))),
                (1, Ok(meta(1))),
                (2, Ok(meta(2))),
                (3, Err(timeout.clone())),
                (4, Ok(other)),
            ],
        );
        let mut inbox = Inbox::default();
        let mut longest = 0;
        let sent = 50 * PARK_FROM as u64;
        for i in 5..sent {
            let (mut f, _) = table.push_one(ProducerRecord::new("t", "x"));
            table.take_inbox(&mut inbox);
            inbox.clear();
            complete(&table, vec![(i, Ok(meta(i as i64)))]);
            assert_eq!(poll_now(&mut f), Poll::Ready(Ok(meta(i as i64))));
            longest = longest.max(table.lock().slots.len());
        }
        assert!(
            longest <= 2 * PARK_FROM,
            "the ring reached {longest} slots for 5 unread results"
        );
        assert_eq!(table.lock().parked.len(), 5);
        drop(dropped_later);
        {
            let s = table.lock();
            assert_eq!(s.parked.len(), 4, "a dropped future's result is freed");
            assert!(
                s.topics
                    .names
                    .iter()
                    .all(|(name, n)| &**name != "other" || *n == 0)
            );
        }
        assert_eq!(poll_now(&mut kept), Poll::Ready(Ok(meta(0))));
        assert_eq!(kept_batch.wait(), vec![Ok(meta(1)), Ok(meta(2))]);
        assert_eq!(failed.wait(), Err(timeout));
        assert!(table.lock().parked.is_empty());
        assert!(no_topic_named(&table));
        assert!(table.delivered_below(sent));
        assert_all_freed(&table, sent);
    }

    /// Records sent singly and in batches, delivered mostly in order (some out of
    /// it, some failed), their futures read mostly in order, some kept unread for
    /// thousands of records, some dropped: every future reads exactly its own
    /// record's result, wherever the result waited, and everything is freed at the
    /// end.
    #[test]
    fn every_future_reads_its_own_result_wherever_it_waited() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rng = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n.max(1)
        };
        let table = Deliveries::new(usize::MAX);
        let result = |n: u64, fail: bool| {
            if fail {
                Err(ClientError::UnknownTopic(format!("{n}").into()))
            } else {
                Ok(meta(n as i64))
            }
        };
        let mut expected: Vec<Option<Result<RecordMetadata, ClientError>>> = Vec::new();
        let want = |expected: &[Option<_>], first: u64, end: u64| -> Vec<_> {
            (first..end)
                .map(|n| expected[n as usize].clone().unwrap())
                .collect()
        };
        let mut singles: VecDeque<(u64, DeliveryFuture)> = VecDeque::new();
        // Futures left alone until a step: read then, in order with the rest.
        let mut kept: Vec<(u64, DeliveryFuture, usize)> = Vec::new();
        let mut batches: VecDeque<(u64, u64, BatchDelivery)> = VecDeque::new();
        let mut undelivered: VecDeque<u64> = VecDeque::new();
        let mut inbox = Inbox::default();
        let (mut most_parked, mut longest) = (0, 0);
        for step in 0..100_000 {
            match rng(10) {
                0 | 1 => {
                    let (f, _) = table.push_one(ProducerRecord::new("t", "v"));
                    let n = expected.len() as u64;
                    expected.push(None);
                    undelivered.push_back(n);
                    if rng(300) == 0 {
                        kept.push((n, f, step + 1_000 + rng(30_000) as usize));
                    } else {
                        singles.push_back((n, f));
                    }
                }
                2 => {
                    let count = 1 + rng(4);
                    let first = expected.len() as u64;
                    let records = (0..count).map(|_| ProducerRecord::new("t", "v")).collect();
                    let (b, _) = push_all(&table, records);
                    for n in first..first + count {
                        expected.push(None);
                        undelivered.push_back(n);
                    }
                    batches.push_back((first, first + count, b));
                }
                3..=5 => {
                    for _ in 0..=rng(3) {
                        // Mostly the oldest; now and then one further back.
                        let i = if rng(8) == 0 {
                            rng(undelivered.len() as u64)
                        } else {
                            0
                        };
                        if let Some(n) = undelivered.remove(i as usize) {
                            let r = result(n, rng(16) == 0);
                            expected[n as usize] = Some(r.clone());
                            complete(&table, vec![(n, r)]);
                        }
                    }
                }
                6..=8 => {
                    let i = if rng(4) == 0 {
                        rng(singles.len() as u64) as usize
                    } else {
                        0
                    };
                    if let Some((n, mut f)) = singles.remove(i) {
                        match (poll_now(&mut f), &expected[n as usize]) {
                            (Poll::Ready(got), Some(want)) => assert_eq!(&got, want, "record {n}"),
                            (Poll::Pending, None) => singles.push_back((n, f)),
                            (got, want) => panic!("record {n}: {got:?}, delivered: {want:?}"),
                        }
                    }
                }
                _ => {
                    if rng(8) == 0 && !singles.is_empty() {
                        let i = rng(singles.len() as u64) as usize;
                        drop(singles.remove(i));
                    } else {
                        for _ in 0..4 {
                            let Some((first, end, b)) = batches.pop_front() else {
                                break;
                            };
                            if rng(8) == 0 {
                                drop(b);
                            } else if (first..end).all(|n| expected[n as usize].is_some()) {
                                assert_eq!(
                                    b.wait(),
                                    want(&expected, first, end),
                                    "records {first}..{end}"
                                );
                            } else {
                                batches.push_back((first, end, b));
                            }
                        }
                    }
                }
            }
            let (due, waiting): (Vec<_>, Vec<_>) = kept.into_iter().partition(|k| k.2 <= step);
            kept = waiting;
            singles.extend(due.into_iter().map(|(n, f, _)| (n, f)));
            table.take_inbox(&mut inbox);
            inbox.clear();
            let s = table.lock();
            most_parked = most_parked.max(s.parked.len());
            longest = longest.max(s.slots.len());
        }
        assert!(most_parked > 0, "the run never moved a result aside");
        assert!(
            longest < expected.len() / 4,
            "the ring reached {longest} slots"
        );
        while let Some(n) = undelivered.pop_front() {
            let r = result(n, false);
            expected[n as usize] = Some(r.clone());
            complete(&table, vec![(n, r)]);
        }
        singles.extend(kept.into_iter().map(|(n, f, _)| (n, f)));
        for (n, f) in singles {
            assert_eq!(
                &f.wait(),
                expected[n as usize].as_ref().unwrap(),
                "record {n}"
            );
        }
        for (first, end, b) in batches {
            assert_eq!(
                b.wait(),
                want(&expected, first, end),
                "records {first}..{end}"
            );
        }
        assert!(table.lock().parked.is_empty());
        assert!(no_topic_named(&table));
        assert_all_freed(&table, expected.len() as u64);
    }

    #[test]
    fn a_closed_table_fails_a_whole_batch_and_a_blocked_batch_waiter_wakes() {
        let table = Deliveries::new(usize::MAX);
        let (batch, _) = push_all(
            &table,
            vec![ProducerRecord::new("t", "a"), ProducerRecord::new("t", "b")],
        );
        let t2 = table.clone();
        let waiter = std::thread::spawn(move || batch.wait());
        std::thread::sleep(std::time::Duration::from_millis(20));
        complete(&t2, vec![(1, Ok(meta(1)))]);
        t2.close(&ClientError::Closed);
        assert_eq!(
            waiter.join().unwrap(),
            vec![Err(ClientError::Closed), Ok(meta(1))]
        );
        let (late, wake) = push_all(&table, vec![ProducerRecord::new("t", "c")]);
        assert!(!wake);
        assert_eq!(late.wait(), vec![Err(ClientError::Closed)]);
        let (empty, _) = push_all(&Deliveries::new(usize::MAX), Vec::new());
        assert_eq!(empty.wait(), Vec::new());
    }

    #[test]
    fn futures_are_small_enough_to_hold_many() {
        // A sender keeping 50,000 deliveries outstanding holds 50,000 of these,
        // and the table a slot for each.
        assert!(std::mem::size_of::<DeliveryFuture>() <= 24);
        assert!(std::mem::size_of::<BatchDelivery>() <= 40);
        assert!(std::mem::size_of::<Slot>() <= 32);
    }

    /// Reports for several topics, delivered out of order and read back, keep
    /// their own topic, partition, offset (or none) and timestamp; a topic's entry
    /// is reused by another once no unread report names it, including reports
    /// freed unread.
    #[test]
    fn reports_keep_their_topics_and_the_topic_list_stays_short() {
        let table = Deliveries::new(usize::MAX);
        let futures: Vec<DeliveryFuture> = (0..6)
            .map(|i| {
                table
                    .push_one(ProducerRecord::new(["a", "b"][i % 2], "v"))
                    .0
            })
            .collect();
        let report = |topic: &str, i: i64| RecordMetadata {
            topic: topic.into(),
            partition: i as i32,
            offset: (i != 3).then_some(100 + i),
            timestamp: 1_000 + i,
        };
        let expected: Vec<RecordMetadata> = (0..6)
            .map(|i| report(["a", "b"][i % 2], i as i64))
            .collect();
        complete(
            &table,
            (0..6)
                .rev()
                .map(|i| (i, Ok(expected[i as usize].clone())))
                .collect(),
        );
        assert_eq!(table.lock().topics.names.len(), 2);
        for (future, want) in futures.into_iter().zip(&expected) {
            assert_eq!(&futures_lite::future::block_on(future).unwrap(), want);
        }
        assert!(no_topic_named(&table), "every report was read or dropped");
        // New topics take freed entries; a report dropped unread frees its entry
        // too ("e" holds the other one meanwhile, so "d" needs that of "c").
        let (dropped, _) = table.push_one(ProducerRecord::new("c", "v"));
        let (held, _) = table.push_one(ProducerRecord::new("e", "v"));
        complete(
            &table,
            vec![(6, Ok(report("c", 6))), (7, Ok(report("e", 7)))],
        );
        drop(dropped);
        let (kept, _) = table.push_one(ProducerRecord::new("d", "v"));
        complete(&table, vec![(8, Ok(report("d", 8)))]);
        assert_eq!(table.lock().topics.names.len(), 2, "entries are reused");
        assert_eq!(
            futures_lite::future::block_on(kept).unwrap(),
            report("d", 8)
        );
        assert_eq!(
            futures_lite::future::block_on(held).unwrap(),
            report("e", 7)
        );
        assert!(no_topic_named(&table), "every report was read or dropped");
    }

    /// A written batch's reports, written in one pass: offsets from its base (or
    /// none), the broker's append time or each record's own timestamp, and a slot
    /// already delivered or abandoned left alone.
    #[test]
    fn a_written_batch_reports_each_record() {
        use crate::client::{RecordId, WrittenBatch};
        let table = Deliveries::new(usize::MAX);
        let futures: Vec<DeliveryFuture> = (0..6)
            .map(|_| table.push_one(ProducerRecord::new("t", "v")).0)
            .collect();
        let mut futures = futures.into_iter();
        let batch = |ids: &[u64], base_offset, append_time| WrittenBatch {
            topic: "t".into(),
            partition: 3,
            ids: ids.iter().map(|&n| (RecordId(n), 10 * n as i64)).collect(),
            base_offset,
            append_time,
        };
        let mut c = table.completing();
        c.deliver_written(&batch(&[0, 1], Some(40), None));
        c.deliver_written(&batch(&[2, 3], None, Some(7)));
        drop(c);
        let expect = |offset, timestamp| RecordMetadata {
            topic: "t".into(),
            partition: 3,
            offset,
            timestamp,
        };
        for want in [
            expect(Some(40), 0),
            expect(Some(41), 10),
            expect(None, 7),
            expect(None, 7),
        ] {
            let got = futures_lite::future::block_on(futures.next().unwrap()).unwrap();
            assert_eq!(got, want);
        }
        // Record 4's future dropped before its report; record 5 reported already.
        drop(futures.next());
        complete(&table, vec![(5, Ok(meta(99)))]);
        table
            .completing()
            .deliver_written(&batch(&[4, 5], Some(50), None));
        assert_eq!(
            futures_lite::future::block_on(futures.next().unwrap()).unwrap(),
            meta(99),
            "the first result stands"
        );
        assert!(no_topic_named(&table), "every report was read or dropped");
    }
}
