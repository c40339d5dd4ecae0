//! Requests written to the broker and not yet answered, oldest first.
//!
//! Kafka answers the requests of one connection in the order they were sent, so the
//! tracker is a FIFO: a response must carry the correlation id of the oldest request
//! that expects one. Two kinds of entry bend that rule on purpose:
//! - a request that expects no response (acks=0 produce) is skipped when a later
//!   request's response arrives, and consumed silently if its own response arrives
//!   (some test brokers answer acks=0 anyway);
//! - a request that timed out has already ended for its caller; it stays in line,
//!   marked abandoned, so the stream stays in step, and its late response is dropped.
//!
//! Deadlines only need ordering, so the time type is a parameter (the connection uses
//! `Instant`; the unit tests use plain numbers and read no clock).

use std::collections::VecDeque;
use std::time::Instant;

/// Most unanswered no-response entries kept; older ones are forgotten, as a broker
/// that answers acks=0 does so promptly.
const MAX_NO_RESPONSE_ENTRIES: usize = 1024;

/// One request on the wire.
#[derive(Debug)]
pub(crate) struct Entry<T, Time = Instant> {
    pub(crate) correlation_id: i32,
    pub(crate) expects_response: bool,
    /// Already ended for its caller (timed out); its response is to be discarded.
    pub(crate) abandoned: bool,
    pub(crate) deadline: Option<Time>,
    pub(crate) data: T,
}

/// The response does not belong to the oldest request awaiting one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mismatch {
    /// The correlation id the FIFO expected, `None` if nothing awaited a response.
    pub(crate) expected: Option<i32>,
    /// The correlation id that arrived.
    pub(crate) got: i32,
}

#[derive(Debug)]
pub(crate) struct InFlight<T, Time = Instant> {
    entries: VecDeque<Entry<T, Time>>,
    /// Entries that expect a response and have not been abandoned.
    awaiting: usize,
    /// Entries that expect no response.
    no_response: usize,
}

impl<T, Time> Default for InFlight<T, Time> {
    fn default() -> Self {
        Self {
            entries: VecDeque::new(),
            awaiting: 0,
            no_response: 0,
        }
    }
}

impl<T, Time: Ord + Copy> InFlight<T, Time> {
    /// Requests that still count against the in-flight limit: those awaiting a
    /// response, abandoned ones included (they still occupy the broker).
    pub(crate) fn occupied(&self) -> usize {
        self.entries.len() - self.no_response
    }

    /// Requests whose caller still waits for an answer from this tracker.
    #[cfg(test)]
    pub(crate) fn awaiting(&self) -> usize {
        self.awaiting
    }

    pub(crate) fn push(&mut self, entry: Entry<T, Time>) {
        if entry.expects_response {
            if !entry.abandoned {
                self.awaiting += 1;
            }
        } else {
            self.no_response += 1;
            if self.no_response > MAX_NO_RESPONSE_ENTRIES {
                self.forget_oldest_no_response();
            }
        }
        self.entries.push_back(entry);
    }

    /// Puts an entry taken by [`match_response`](Self::match_response) back at the
    /// front, so that a failure found after matching still ends its request.
    pub(crate) fn push_front(&mut self, entry: Entry<T, Time>) {
        if entry.expects_response {
            if !entry.abandoned {
                self.awaiting += 1;
            }
        } else {
            self.no_response += 1;
        }
        self.entries.push_front(entry);
    }

    /// The entries, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry<T, Time>> {
        self.entries.iter()
    }

    fn forget_oldest_no_response(&mut self) {
        if let Some(i) = self.entries.iter().position(|e| !e.expects_response) {
            self.entries.remove(i);
            self.no_response -= 1;
        }
    }

    fn pop_front(&mut self) -> Option<Entry<T, Time>> {
        let e = self.entries.pop_front()?;
        if !e.expects_response {
            self.no_response -= 1;
        } else if !e.abandoned {
            self.awaiting -= 1;
        }
        Some(e)
    }

    /// Matches a response's correlation id against the FIFO.
    ///
    /// Returns the entry it answers (which may be abandoned or expect no response; the
    /// caller decides what to do with those), or a mismatch, which is fatal.
    pub(crate) fn match_response(
        &mut self,
        correlation_id: i32,
    ) -> Result<Entry<T, Time>, Mismatch> {
        // Skip no-response entries older than the one answered: their answers, if the
        // broker sends any, would have come first.
        while let Some(front) = self.entries.front() {
            if front.correlation_id == correlation_id {
                return self.pop_front().ok_or(Mismatch {
                    expected: None,
                    got: correlation_id,
                });
            }
            if front.expects_response {
                return Err(Mismatch {
                    expected: Some(front.correlation_id),
                    got: correlation_id,
                });
            }
            self.pop_front();
        }
        Err(Mismatch {
            expected: None,
            got: correlation_id,
        })
    }

    /// The earliest deadline among requests whose caller still waits.
    pub(crate) fn next_deadline(&self) -> Option<Time> {
        self.entries
            .iter()
            .filter(|e| e.expects_response && !e.abandoned)
            .filter_map(|e| e.deadline)
            .min()
    }

    /// Marks every waiting request whose deadline is at or before `now` as abandoned
    /// and hands each to `f` once.
    pub(crate) fn expire(&mut self, now: Time, mut f: impl FnMut(&mut Entry<T, Time>)) {
        for e in &mut self.entries {
            if e.expects_response && !e.abandoned && e.deadline.is_some_and(|d| d <= now) {
                e.abandoned = true;
                self.awaiting -= 1;
                f(e);
            }
        }
    }

    /// Removes every entry, oldest first (for failing them all at once).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Entry<T, Time>> + '_ {
        self.awaiting = 0;
        self.no_response = 0;
        self.entries.drain(..)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Time in milliseconds: the tracker only compares deadlines.
    fn entry(id: i32, expects: bool, deadline: Option<u64>) -> Entry<i32, u64> {
        Entry {
            correlation_id: id,
            expects_response: expects,
            abandoned: false,
            deadline,
            data: id,
        }
    }

    #[test]
    fn fifo_order_enforced() {
        let mut f = InFlight::default();
        f.push(entry(1, true, None));
        f.push(entry(2, true, None));
        assert_eq!(
            f.match_response(2).unwrap_err(),
            Mismatch {
                expected: Some(1),
                got: 2
            }
        );
        assert_eq!(f.match_response(1).unwrap().data, 1);
        assert_eq!(f.match_response(2).unwrap().data, 2);
        assert_eq!(
            f.match_response(3).unwrap_err(),
            Mismatch {
                expected: None,
                got: 3
            }
        );
        assert_eq!(f.occupied(), 0);
    }

    #[test]
    fn no_response_entries_skipped_or_consumed() {
        let mut f = InFlight::default();
        f.push(entry(1, false, None));
        f.push(entry(2, true, None));
        f.push(entry(3, false, None));
        f.push(entry(4, true, None));
        assert_eq!(f.occupied(), 2);
        // the broker did not answer 1: skipped
        assert_eq!(f.match_response(2).unwrap().data, 2);
        // the broker answered 3 anyway: consumed, flagged as expecting none
        assert!(!f.match_response(3).unwrap().expects_response);
        assert_eq!(f.match_response(4).unwrap().data, 4);
        assert_eq!(f.awaiting(), 0);
    }

    #[test]
    fn expiry_abandons_once_and_keeps_the_slot() {
        let t0: u64 = 0;
        let mut f = InFlight::default();
        f.push(entry(1, true, Some(t0 + 1000)));
        f.push(entry(2, true, Some(t0 + 2000)));
        assert_eq!(f.next_deadline(), Some(t0 + 1000));
        let mut ended = Vec::new();
        f.expire(t0 + 1000, |e| ended.push(e.correlation_id));
        f.expire(t0 + 1000, |e| ended.push(e.correlation_id));
        assert_eq!(ended, [1]);
        assert_eq!(f.awaiting(), 1);
        assert_eq!(f.occupied(), 2);
        assert_eq!(f.next_deadline(), Some(t0 + 2000));
        let late = f.match_response(1).unwrap();
        assert!(late.abandoned);
        assert_eq!(f.occupied(), 1);
    }

    #[test]
    fn unanswered_no_response_entries_are_bounded() {
        let mut f = InFlight::default();
        for id in 0..(MAX_NO_RESPONSE_ENTRIES as i32 + 10) {
            f.push(entry(id, false, None));
        }
        assert_eq!(f.entries.len(), MAX_NO_RESPONSE_ENTRIES);
        assert_eq!(f.occupied(), 0);
    }
}
