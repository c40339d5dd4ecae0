//! The producer facade's records in transit and their delivery reports, shared by
//! the senders and the driver.
//!
//! Every record handed to [`Producer::send`](crate::runtime::Producer::send) gets a
//! number, in order, and a slot in one ring indexed by it: the driver writes each
//! record's result into its slot, and the record's [`DeliveryFuture`] reads it from
//! there. The records themselves wait in an inbox the driver empties in one swap.
//! So a record costs a slot and a lock, not a channel of its own, a trip through
//! the command queue and a map entry in the driver; and the driver is woken once
//! per burst of sends (when the inbox stops being empty), not once per record.
//!
//! A slot is freed when its future has taken the result, or when the result comes
//! for a future that was dropped; the ring's front advances over freed slots.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)] // std Mutex and Condvar: a runtime part, not the sans-IO core

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::client::{ClientError, ProducerRecord, RecordMetadata};

/// One record's report.
enum Slot {
    /// Not delivered yet; the waker of the future waiting for it.
    Waiting(Option<Waker>),
    /// Not delivered yet, and its future was dropped: nobody reads the result.
    Abandoned,
    /// Written.
    Written(RecordMetadata),
    /// Failed (boxed: errors are rare and large, the ring holds many slots).
    Failed(Box<ClientError>),
    /// Read, or abandoned and then delivered.
    Free,
}

impl Slot {
    fn is_delivered(&self) -> bool {
        matches!(self, Self::Written(_) | Self::Failed(_) | Self::Free)
    }

    /// Writes a record's result (the first one stands); the waker of the future
    /// waiting for it, if any.
    fn deliver(&mut self, result: Result<RecordMetadata, ClientError>) -> Option<Waker> {
        match self {
            Self::Waiting(waker) => {
                let waker = waker.take();
                *self = match result {
                    Ok(meta) => Self::Written(meta),
                    Err(e) => Self::Failed(Box::new(e)),
                };
                waker
            }
            Self::Abandoned => {
                *self = Self::Free;
                None
            }
            Self::Written(_) | Self::Failed(_) | Self::Free => None,
        }
    }
}

struct State {
    /// The number of `slots[0]`; every record numbered below it is delivered and read.
    base: u64,
    slots: VecDeque<Slot>,
    /// Records handed over and not yet taken by the driver; the first is numbered
    /// `inbox_first`.
    inbox: Vec<ProducerRecord>,
    inbox_first: u64,
    /// Every record numbered below this one is delivered.
    delivered_below: u64,
    /// No more records are taken (the client is closing or gone).
    closed: bool,
    /// Threads blocked in [`DeliveryFuture::wait`].
    sleepers: usize,
}

/// The shared table; see the module docs.
pub(crate) struct Deliveries {
    state: Mutex<State>,
    delivered: Condvar,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("Deliveries")
            .field("base", &s.base)
            .field("slots", &s.slots.len())
            .field("inbox", &s.inbox.len())
            .field("closed", &s.closed)
            .finish()
    }
}

impl Deliveries {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                base: 0,
                slots: VecDeque::new(),
                inbox: Vec::new(),
                inbox_first: 0,
                delivered_below: 0,
                closed: false,
                sleepers: 0,
            }),
            delivered: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands records over. Returns their futures, in order, and whether the inbox
    /// was empty before (then the driver must be told). Once the table is closed,
    /// every future fails at once with [`ClientError::Closed`].
    pub(crate) fn push(
        self: &Arc<Self>,
        records: impl IntoIterator<Item = ProducerRecord>,
        futures: &mut Vec<DeliveryFuture>,
    ) -> bool {
        let mut s = self.lock();
        let was_empty = s.inbox.is_empty();
        futures.extend(records.into_iter().map(|r| self.enqueue(&mut s, r)));
        was_empty && !s.inbox.is_empty()
    }

    /// One record, as [`push`](Self::push).
    pub(crate) fn push_one(self: &Arc<Self>, record: ProducerRecord) -> (DeliveryFuture, bool) {
        let mut s = self.lock();
        let was_empty = s.inbox.is_empty();
        let future = self.enqueue(&mut s, record);
        let wake = was_empty && !s.inbox.is_empty();
        (future, wake)
    }

    /// Numbers a record, gives it a slot and puts it in the inbox.
    fn enqueue(self: &Arc<Self>, s: &mut State, record: ProducerRecord) -> DeliveryFuture {
        if s.closed {
            return DeliveryFuture::ready(Err(ClientError::Closed));
        }
        let n = s.base + s.slots.len() as u64;
        if s.inbox.is_empty() {
            s.inbox_first = n;
        }
        s.slots.push_back(Slot::Waiting(None));
        s.inbox.push(record);
        DeliveryFuture {
            state: Future_::Slot {
                table: self.clone(),
                n,
            },
        }
    }

    /// The records handed over since the last call, swapped into `into` (which must
    /// be empty), and the number of the first.
    pub(crate) fn take_inbox(&self, into: &mut Vec<ProducerRecord>) -> u64 {
        debug_assert!(into.is_empty());
        let mut s = self.lock();
        std::mem::swap(&mut s.inbox, into);
        s.inbox_first
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
            for slot in &mut s.slots {
                wakers.extend(slot.deliver(Err(error.clone())));
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
        self.lock().closed = true;
    }
}

/// Results being written into the table (see [`Deliveries::completing`]).
pub(crate) struct Completing<'a> {
    table: &'a Deliveries,
    state: Option<MutexGuard<'a, State>>,
    wakers: Vec<Waker>,
}

impl Completing<'_> {
    /// Writes record `n`'s result; the first result of a record stands.
    pub(crate) fn deliver(&mut self, n: u64, result: Result<RecordMetadata, ClientError>) {
        let Some(s) = self.state.as_mut() else {
            return;
        };
        if let Some(waker) = s.slot(n).and_then(|slot| slot.deliver(result)) {
            self.wakers.push(waker);
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
        if sleepers > 0 {
            self.table.delivered.notify_all();
        }
        for w in self.wakers.drain(..) {
            w.wake();
        }
    }
}

impl State {
    fn slot(&mut self, n: u64) -> Option<&mut Slot> {
        let i = usize::try_from(n.checked_sub(self.base)?).ok()?;
        self.slots.get_mut(i)
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
        while matches!(self.slots.front(), Some(Slot::Free)) {
            self.slots.pop_front();
            self.base += 1;
        }
        if self.delivered_below < self.base {
            self.delivered_below = self.base;
        }
    }

    /// Takes a delivered record's result, freeing its slot; `None` if not delivered.
    fn take(&mut self, n: u64) -> Option<Result<RecordMetadata, ClientError>> {
        let slot = self.slot(n)?;
        let result = match std::mem::replace(slot, Slot::Free) {
            Slot::Written(meta) => Ok(meta),
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
    /// Known already (refused before it reached the table), or taken.
    Ready(Option<Result<RecordMetadata, ClientError>>),
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
            state: Future_::Ready(Some(result)),
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
            Future_::Ready(r) => r.unwrap_or(Err(ClientError::Closed)),
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
            Future_::Ready(r) => return Poll::Ready(r.take().unwrap_or(Err(ClientError::Closed))),
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
            let mut s = table.lock();
            if let Some(slot) = s.slot(*n) {
                *slot = match slot {
                    Slot::Waiting(_) | Slot::Abandoned => Slot::Abandoned,
                    _ => Slot::Free,
                };
                s.pop_freed();
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn meta(offset: i64) -> RecordMetadata {
        RecordMetadata {
            topic: "t".into(),
            partition: 0,
            offset: Some(offset),
            timestamp: 0,
        }
    }

    fn complete(table: &Deliveries, done: Vec<(u64, Result<RecordMetadata, ClientError>)>) {
        let mut c = table.completing();
        for (n, result) in done {
            c.deliver(n, result);
        }
    }

    fn poll_now(f: &mut DeliveryFuture) -> Poll<Result<RecordMetadata, ClientError>> {
        let waker = Waker::noop();
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn results_reach_their_futures_in_any_order_and_the_ring_shrinks() {
        let table = Deliveries::new();
        let mut futures = Vec::new();
        assert!(table.push(
            (0..4).map(|i| ProducerRecord::new("t", vec![i])),
            &mut futures
        ));
        let mut inbox = Vec::new();
        assert_eq!(table.take_inbox(&mut inbox), 0);
        assert_eq!(inbox.len(), 4);
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
        let s = table.lock();
        assert!(s.slots.is_empty(), "every slot freed");
        assert_eq!(s.base, 4);
    }

    #[test]
    fn a_closed_table_fails_waiting_records_and_refuses_new_ones() {
        let table = Deliveries::new();
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

    #[test]
    fn a_blocked_waiter_wakes_when_its_record_is_delivered() {
        let table = Deliveries::new();
        let (future, _) = table.push_one(ProducerRecord::new("t", "a"));
        let t2 = table.clone();
        let waiter = std::thread::spawn(move || future.wait());
        std::thread::sleep(std::time::Duration::from_millis(20));
        complete(&t2, vec![(0, Ok(meta(7)))]);
        assert_eq!(waiter.join().unwrap(), Ok(meta(7)));
    }
}
