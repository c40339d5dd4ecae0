//! The member's offset commits: one at a time, in the order asked, and never
//! backwards.
//!
//! Commits are sent one after another (a commit waits for the previous one to
//! answer), so a retried older commit can never land after a newer one. For each
//! partition the member remembers the highest offset it committed since it was
//! assigned the partition (its *floor*); a later commit of a lower offset is refused
//! (that partition's result is [`ClientError::InvalidArgument`]) and a commit of the
//! same offset is answered without asking the broker. An explicit
//! [`Client::seek`](crate::client::Client::seek) of a partition lifts its floor: a seek
//! backwards is the application saying it wants to go back, and its next commit may.
//! The floor is also forgotten when the partition is revoked (whoever gets it next
//! starts from what was committed). A partition named more than once in one commit
//! is committed at its first offset; the others are refused (one request carrying
//! both would leave the broker at the last one, below the floor).
//!
//! A commit refused because the membership moved on goes again once, when the
//! member has caught up: a stale KIP-848 epoch (after the next heartbeat) or a
//! classic group between JoinGroup and SyncGroup (after the SyncGroup). A classic
//! commit refused with ILLEGAL_GENERATION because the member's own JoinGroup,
//! sent before it, made the next generation goes again in that generation only
//! ([`Overtaken`]; see `GroupMember::on_commit` for why that is safe).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::client::consumer::TopicPartition;
use crate::client::{ClientError, CommittedOffset, OpId, OpOutput};
use crate::messages::ErrorCode;

/// An application's commit that ended: its operation and result.
pub(crate) type Finished = (OpId, Result<OpOutput, ClientError>);

/// A commit waiting to be sent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pending {
    /// The application's operation, if it asked (auto-commits have none).
    pub op: Option<OpId>,
    pub offsets: Vec<(TopicPartition, i64, Option<i32>)>,
    /// Times it was sent again after a stale member epoch (KIP-848).
    pub retries: u32,
    /// Refused because the member's own join overtook it: it may go again only
    /// in the generation that join made.
    pub overtaken: Option<Overtaken>,
    /// When the application's commit must have ended, and the timeout that
    /// came from (auto-commits have none).
    pub until: Option<(Instant, Duration)>,
}

impl Pending {
    /// A commit the member makes by itself (auto-commit, a revocation's).
    pub(crate) fn automatic(offsets: Vec<(TopicPartition, i64, Option<i32>)>) -> Self {
        Pending {
            op: None,
            offsets,
            retries: 0,
            overtaken: None,
            until: None,
        }
    }
}

/// A classic member's commit sent with `generation` while its JoinGroup `join` was
/// on its way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Overtaken {
    pub generation: i32,
    pub join: u64,
}

/// What to do next about commits.
#[derive(Debug, PartialEq)]
pub(crate) enum NextCommit {
    /// Send these offsets.
    Send {
        id: u64,
        offsets: Vec<(TopicPartition, i64, Option<i32>)>,
    },
    /// A commit whose every offset was settled without the broker.
    Done {
        op: Option<OpId>,
        results: Vec<CommittedOffset>,
    },
}

#[derive(Debug)]
struct InFlight {
    id: u64,
    pending: Pending,
    /// Results decided without the broker (offsets not sent).
    settled: Vec<CommittedOffset>,
    /// Sent while the member's JoinGroup was on its way: which, and the generation.
    raced: Option<Overtaken>,
}

#[derive(Debug, Default)]
pub(crate) struct Commits {
    queue: VecDeque<Pending>,
    in_flight: Option<InFlight>,
    floor: BTreeMap<TopicPartition, i64>,
    /// Waiting for a fresh member epoch before sending again.
    held: bool,
}

impl Commits {
    /// Nothing queued and nothing in flight.
    pub(crate) fn idle(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_none()
    }

    /// Whether a commit is queued or in flight.
    pub(crate) fn busy(&self) -> bool {
        !self.idle()
    }

    pub(crate) fn enqueue(&mut self, pending: Pending) {
        self.queue.push_back(pending);
    }

    /// The highest offset committed by this member for `tp` since it was assigned.
    pub(crate) fn floor(&self, tp: &TopicPartition) -> Option<i64> {
        self.floor.get(tp).copied()
    }

    /// The application seeked `tp`: its next commit may go lower.
    pub(crate) fn lift_floor(&mut self, tp: &TopicPartition) {
        self.floor.remove(tp);
    }

    /// Forgets the floors of partitions `keep` rejects (no longer assigned).
    pub(crate) fn retain_floors(&mut self, keep: impl Fn(&TopicPartition) -> bool) {
        self.floor.retain(|tp, _| keep(tp));
    }

    /// A heartbeat answered: commits may go again.
    /// Whether a commit waits for the membership to catch up.
    pub(crate) fn held(&self) -> bool {
        self.held
    }

    pub(crate) fn release(&mut self) {
        self.held = false;
    }

    /// The earliest deadline of an application's commit queued or in flight.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let in_flight = self.in_flight.as_ref().map(|f| &f.pending);
        self.queue
            .iter()
            .chain(in_flight)
            .filter(|p| p.op.is_some())
            .filter_map(|p| p.until.map(|(at, _)| at))
            .min()
    }

    /// Application commits past their deadline, with their timeouts: a queued
    /// one is dropped, one in flight goes on without its operation (it may
    /// still land; its answer is not reported).
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<(OpId, Duration)> {
        let due = |p: &Pending| match (p.op, p.until) {
            (Some(op), Some((at, timeout))) if at <= now => Some((op, timeout)),
            _ => None,
        };
        let mut expired: Vec<(OpId, Duration)> = self.queue.iter().filter_map(due).collect();
        self.queue.retain(|p| due(p).is_none());
        if let Some(f) = self.in_flight.as_mut()
            && let Some(e) = due(&f.pending)
        {
            f.pending.op = None;
            expired.push(e);
        }
        expired
    }

    /// Drops the application's queued commit `op` (cancelled).
    pub(crate) fn cancel(&mut self, op: OpId) {
        self.queue.retain(|p| p.op != Some(op));
        if let Some(f) = self.in_flight.as_mut()
            && f.pending.op == Some(op)
        {
            f.pending.op = None;
        }
    }

    /// Every queued application commit, failed with `error` (the member is gone).
    pub(crate) fn fail_all(&mut self, error: &ClientError) -> Vec<(OpId, ClientError)> {
        let mut out: Vec<(OpId, ClientError)> = self
            .queue
            .drain(..)
            .filter_map(|p| p.op.map(|op| (op, error.clone())))
            .collect();
        if let Some(f) = self.in_flight.take()
            && let Some(op) = f.pending.op
        {
            out.push((op, error.clone()));
        }
        out
    }

    /// The next commit to send (numbered `id`), or one settled at once; `None` when
    /// a commit is in flight, commits are held, or none is queued. `raced`: a
    /// JoinGroup of the member is on its way as it goes (see [`raced`](Self::raced)).
    /// `may_retry` says whether an overtaken commit may go again now (the member
    /// is in the generation its join made); if not, it ends refused as it was.
    pub(crate) fn next(
        &mut self,
        id: u64,
        raced: Option<Overtaken>,
        may_retry: impl Fn(&Overtaken) -> bool,
    ) -> Option<NextCommit> {
        if self.in_flight.is_some() || self.held {
            return None;
        }
        let pending = self.queue.pop_front()?;
        if pending.overtaken.as_ref().is_some_and(|o| !may_retry(o)) {
            let refused = ClientError::broker(
                crate::messages::ApiKey::OffsetCommit,
                ErrorCode::ILLEGAL_GENERATION,
                None,
            );
            return Some(NextCommit::Done {
                op: pending.op,
                results: pending
                    .offsets
                    .into_iter()
                    .map(|(tp, _, _)| CommittedOffset {
                        partition: tp,
                        offset: Err(refused.clone()),
                    })
                    .collect(),
            });
        }
        let mut send = Vec::new();
        let mut settled = Vec::new();
        let mut named = BTreeSet::new();
        for (tp, offset, epoch) in &pending.offsets {
            // A partition named twice in one commit would go twice in one request,
            // where the broker keeps the last: `[(p, 16), (p, 14)]` moved the
            // committed offset back to 14 while the floor said 16. Only the first
            // is committed.
            if let Some(e) = crate::client::ops::offsets::invalid_commit(tp, *offset) {
                settled.push(CommittedOffset {
                    partition: tp.clone(),
                    offset: Err(e),
                });
                continue;
            }
            if !named.insert(tp) {
                settled.push(CommittedOffset {
                    partition: tp.clone(),
                    offset: Err(ClientError::InvalidArgument(format!(
                        "{tp} is named more than once in one commit; only its first offset is committed"
                    ))),
                });
                continue;
            }
            match self.floor.get(tp) {
                Some(f) if offset < f => settled.push(CommittedOffset {
                    partition: tp.clone(),
                    offset: Err(ClientError::InvalidArgument(format!(
                        "committing {offset} for {tp} would move its committed offset back \
                         from {f}; seek the partition first to go back"
                    ))),
                }),
                Some(f) if offset == f => settled.push(CommittedOffset {
                    partition: tp.clone(),
                    offset: Ok(*offset),
                }),
                _ => send.push((tp.clone(), *offset, *epoch)),
            }
        }
        if send.is_empty() {
            return Some(NextCommit::Done {
                op: pending.op,
                results: settled,
            });
        }
        self.in_flight = Some(InFlight {
            id,
            pending,
            settled,
            raced,
        });
        Some(NextCommit::Send { id, offsets: send })
    }

    /// The JoinGroup that commit `id`, in flight, went out beside, and the
    /// generation it carried.
    pub(crate) fn raced(&self, id: u64) -> Option<Overtaken> {
        self.in_flight
            .as_ref()
            .filter(|f| f.id == id)
            .and_then(|f| f.raced)
    }

    /// Commit `id` answered. Returns the application's operation and its result, if
    /// it was one; `stale` is set when the broker said the member epoch was stale
    /// (the commit is queued again, once, to go after the next heartbeat, when
    /// `may_hold`: a member in a group; outside one no heartbeat would release it).
    /// `overtaken`: the commit went while the member's own JoinGroup was on its
    /// way, so ILLEGAL_GENERATION is stale too (that join made the next
    /// generation); its retry is not counted, and [`next`](Self::next) sends it only
    /// in the generation that join made.
    pub(crate) fn on_result(
        &mut self,
        id: u64,
        result: Result<OpOutput, ClientError>,
        may_hold: bool,
        overtaken: Option<Overtaken>,
    ) -> (Option<Finished>, bool) {
        let Some(f) = self.in_flight.take_if(|f| f.id == id) else {
            return (None, false);
        };
        let InFlight {
            pending, settled, ..
        } = f;
        // A stale KIP-848 epoch, or a classic group between its JoinGroup and
        // SyncGroup (Kafka refuses commits then): the commit goes again, once, when
        // the membership has caught up.
        let stale_code = |e: &ClientError| match e.error_code() {
            Some(ErrorCode::STALE_MEMBER_EPOCH | ErrorCode::REBALANCE_IN_PROGRESS) => true,
            Some(ErrorCode::ILLEGAL_GENERATION) => overtaken.is_some(),
            _ => false,
        };
        let stale = match &result {
            Ok(OpOutput::Committed(rs)) => {
                rs.iter().any(|r| r.offset.as_ref().is_err_and(stale_code))
            }
            Err(e) => stale_code(e),
            _ => false,
        };
        if stale && (pending.retries == 0 || overtaken.is_some()) && may_hold {
            self.held = true;
            self.queue.push_front(Pending {
                retries: pending.retries + u32::from(overtaken.is_none()),
                overtaken: overtaken.or(pending.overtaken),
                ..pending
            });
            return (None, true);
        }
        let result = match result {
            Ok(OpOutput::Committed(rs)) => {
                for r in &rs {
                    if let Ok(o) = r.offset {
                        let f = self.floor.entry(r.partition.clone()).or_insert(o);
                        *f = (*f).max(o);
                    }
                }
                // Back in the order asked: a partition's results (the broker's for
                // its first entry, then any refused) take its entries' places in turn.
                let all: Vec<CommittedOffset> = rs.into_iter().chain(settled).collect();
                let mut places: BTreeMap<&TopicPartition, VecDeque<usize>> = BTreeMap::new();
                for (i, (tp, _, _)) in pending.offsets.iter().enumerate() {
                    places.entry(tp).or_default().push_back(i);
                }
                let mut keyed: Vec<(usize, CommittedOffset)> = all
                    .into_iter()
                    .map(|r| {
                        let place = places
                            .get_mut(&r.partition)
                            .and_then(VecDeque::pop_front)
                            .unwrap_or(usize::MAX);
                        (place, r)
                    })
                    .collect();
                keyed.sort_by_key(|(place, _)| *place);
                Ok(OpOutput::Committed(
                    keyed.into_iter().map(|(_, r)| r).collect(),
                ))
            }
            Ok(other) => Ok(other),
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            tracing::warn!(error = %e, "offset commit failed");
        }
        (pending.op.map(|op| (op, result)), stale)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn committed(rs: &[(i32, i64)]) -> Result<OpOutput, ClientError> {
        Ok(OpOutput::Committed(
            rs.iter()
                .map(|(p, o)| CommittedOffset {
                    partition: tp(*p),
                    offset: Ok(*o),
                })
                .collect(),
        ))
    }

    /// A negative offset or partition is refused in its own result and not sent:
    /// Kafka would store offset -1 as a commit (the Java client refuses it when
    /// the offset is made), and no partition has a negative number.
    #[test]
    fn negative_offsets_and_partitions_are_refused_before_sending() {
        let mut c = Commits::default();
        c.enqueue(Pending {
            op: Some(OpId(3)),
            offsets: vec![(tp(0), -1, None), (tp(1), 4, None), (tp(-1), 2, None)],
            retries: 0,
            overtaken: None,
            until: None,
        });
        let Some(NextCommit::Send { id, offsets }) = c.next(1, None, |_| true) else {
            panic!("the valid entry is sent");
        };
        assert_eq!(offsets, vec![(tp(1), 4, None)]);
        let (done, _) = c.on_result(id, committed(&[(1, 4)]), false, None);
        let (op, Ok(OpOutput::Committed(rs))) = done.unwrap() else {
            panic!("a commit result");
        };
        assert_eq!(op, OpId(3));
        let parts: Vec<_> = rs.iter().map(|r| r.partition.partition).collect();
        assert_eq!(parts, [0, 1, -1], "in the order asked");
        assert!(matches!(rs[0].offset, Err(ClientError::InvalidArgument(_))));
        assert_eq!(rs[1].offset, Ok(4));
        assert!(matches!(rs[2].offset, Err(ClientError::InvalidArgument(_))));
        assert_eq!(
            c.floor(&tp(0)),
            None,
            "nothing was committed for partition 0"
        );
        // Nothing valid at all: settled at once, nothing sent.
        c.enqueue(Pending {
            op: Some(OpId(4)),
            offsets: vec![(tp(0), -5, None)],
            retries: 0,
            overtaken: None,
            until: None,
        });
        let Some(NextCommit::Done { op, results }) = c.next(2, None, |_| true) else {
            panic!("settled without a request");
        };
        assert_eq!(op, Some(OpId(4)));
        assert!(matches!(
            results[0].offset,
            Err(ClientError::InvalidArgument(_))
        ));
    }

    #[test]
    fn commits_go_one_at_a_time_and_never_backwards() {
        let mut c = Commits::default();
        c.enqueue(Pending {
            op: None,
            offsets: vec![(tp(0), 10, None), (tp(1), 5, None)],
            retries: 0,
            overtaken: None,
            until: None,
        });
        c.enqueue(Pending {
            op: Some(OpId(7)),
            offsets: vec![(tp(0), 8, None), (tp(1), 5, None), (tp(2), 1, None)],
            retries: 0,
            overtaken: None,
            until: None,
        });
        let Some(NextCommit::Send { id, offsets }) = c.next(1, None, |_| true) else {
            panic!()
        };
        assert_eq!(offsets.len(), 2);
        assert_eq!(c.next(2, None, |_| true), None, "one in flight at a time");
        let (done, _) = c.on_result(id, committed(&[(0, 10), (1, 5)]), true, None);
        assert!(done.is_none(), "an auto-commit has no operation");
        let Some(NextCommit::Send { id, offsets }) = c.next(2, None, |_| true) else {
            panic!()
        };
        assert_eq!(
            offsets,
            vec![(tp(2), 1, None)],
            "8 < 10 refused, 5 == 5 settled"
        );
        let (done, _) = c.on_result(id, committed(&[(2, 1)]), true, None);
        let (op, Ok(OpOutput::Committed(rs))) = done.unwrap() else {
            panic!()
        };
        assert_eq!(op, OpId(7));
        assert_eq!(
            rs.iter().map(|r| r.partition.partition).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(rs[0].offset.is_err());
        assert_eq!(rs[1].offset, Ok(5));
        c.lift_floor(&tp(0));
        c.enqueue(Pending {
            op: None,
            offsets: vec![(tp(0), 3, None)],
            retries: 0,
            overtaken: None,
            until: None,
        });
        assert!(
            matches!(c.next(3, None, |_| true), Some(NextCommit::Send { .. })),
            "after a seek"
        );
    }

    /// ILLEGAL_GENERATION is final for a commit whose member's join did not overtake
    /// it, and a retry (held for the rebalance, not counted) for one that did
    /// (group seed 12793); the retry goes only in the generation that join made,
    /// and ends refused when the member is not there (the join failed).
    #[test]
    fn an_overtaken_commit_goes_again_only_in_the_generation_its_join_made() {
        let refused = || {
            Ok(OpOutput::Committed(vec![CommittedOffset {
                partition: tp(4),
                offset: Err(ClientError::broker(
                    crate::messages::ApiKey::OffsetCommit,
                    ErrorCode::ILLEGAL_GENERATION,
                    None,
                )),
            }]))
        };
        let o = Overtaken {
            generation: 4,
            join: 9,
        };
        let pending = |op| Pending {
            op: Some(OpId(op)),
            offsets: vec![(tp(4), 24, None)],
            retries: 0,
            overtaken: None,
            until: None,
        };
        let mut c = Commits::default();
        c.enqueue(pending(1));
        for (round, id) in [(0, 1), (1, 2)] {
            let Some(NextCommit::Send { id: sent, .. }) = c.next(id, None, |_| true) else {
                panic!("round {round}: sent")
            };
            let (done, stale) = c.on_result(sent, refused(), true, Some(o));
            assert!(done.is_none() && stale, "round {round}: to go again");
            assert!(c.held());
            assert_eq!(
                c.next(10, None, |_| true),
                None,
                "held until the rebalance ends"
            );
            c.release();
        }
        let Some(NextCommit::Send { id, offsets }) = c.next(3, None, |got| *got == o) else {
            panic!("sent a third time, in the join's generation")
        };
        assert_eq!(offsets, vec![(tp(4), 24, None)]);
        let (done, stale) = c.on_result(id, refused(), true, None);
        assert!(!stale, "not overtaken: the membership is gone");
        let (op, Ok(OpOutput::Committed(rs))) = done.unwrap() else {
            panic!()
        };
        assert_eq!(op, OpId(1));
        assert_eq!(
            rs[0].offset.as_ref().unwrap_err().error_code(),
            Some(ErrorCode::ILLEGAL_GENERATION)
        );
        assert_eq!(c.floor(&tp(4)), None);

        // Overtaken, then the join failed: refused without going again.
        c.enqueue(pending(2));
        let Some(NextCommit::Send { id, .. }) = c.next(4, None, |_| true) else {
            panic!()
        };
        assert!(c.on_result(id, refused(), true, Some(o)).1);
        c.release();
        let Some(NextCommit::Done { op, results }) = c.next(5, None, |_| false) else {
            panic!("settled without the broker")
        };
        assert_eq!(op, Some(OpId(2)));
        assert_eq!(
            results[0].offset.as_ref().unwrap_err().error_code(),
            Some(ErrorCode::ILLEGAL_GENERATION)
        );
    }

    /// Found by the `consumer` fuzz target: `[(p, 0), (p, 16), (p, 14)]` went in one
    /// request, the broker kept 14 and the floor said 16.
    #[test]
    fn a_partition_named_twice_in_one_commit_is_committed_once() {
        let mut c = Commits::default();
        c.enqueue(Pending {
            op: Some(OpId(1)),
            offsets: vec![(tp(0), 16, None), (tp(1), 3, None), (tp(0), 14, None)],
            retries: 0,
            overtaken: None,
            until: None,
        });
        let Some(NextCommit::Send { id, offsets }) = c.next(1, None, |_| true) else {
            panic!()
        };
        assert_eq!(offsets, vec![(tp(0), 16, None), (tp(1), 3, None)]);
        let (done, _) = c.on_result(id, committed(&[(0, 16), (1, 3)]), true, None);
        let (_, Ok(OpOutput::Committed(rs))) = done.unwrap() else {
            panic!()
        };
        let got: Vec<(i32, Option<i64>)> = rs
            .iter()
            .map(|r| (r.partition.partition, r.offset.as_ref().ok().copied()))
            .collect();
        assert_eq!(
            got,
            [(0, Some(16)), (1, Some(3)), (0, None)],
            "in the order asked"
        );
        assert_eq!(c.floor(&tp(0)), Some(16));
    }
}
