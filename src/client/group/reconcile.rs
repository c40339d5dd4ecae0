//! One reconciler for both group protocols: it moves the member from the partitions
//! it holds to a target assignment in a fixed order — revoke, commit, assign — and
//! waits for the application's acknowledgement in between.
//!
//! A transition, once started:
//! 1. takes the revoked and lost partitions out of the fetcher at once, dropping
//!    what was buffered for them (so no later poll returns a record of a partition
//!    the member gave up, franz-go#1087), after noting the revoked partitions'
//!    positions for the commit on revoke;
//! 2. puts the assigned partitions into the fetcher, held (paused) so the
//!    application can seek them before anything is fetched;
//! 3. reports one [`Note::Rebalance`](super::Note::Rebalance) and waits for
//!    [`ack`](Reconciler::ack) (bounded by the rebalance timeout);
//! 4. then waits for every commit queued or in flight (the commit on revoke and any
//!    the application made in answer to the event);
//! 5. and only then is done: the revoked partitions stop being reported as owned,
//!    the assigned ones start to be.
//!
//! The protocol is told when a transition is done, and only then moves on (rejoins,
//! acknowledges to the coordinator), so a partition is given up before anyone else
//! can be handed it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::client::consumer::{Consumer, Offset, TopicPartition};

/// Why a transition was started: what the protocol does once it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// A new assignment from the coordinator.
    Assignment,
    /// Giving partitions up before (re)joining.
    BeforeJoin,
    /// The membership was lost (fenced, session expired): no commit.
    Lost,
    /// Leaving the group.
    Leave,
}

#[derive(Debug)]
struct Transition {
    why: Why,
    revoked: Vec<TopicPartition>,
    assigned: Vec<TopicPartition>,
    announced: bool,
    acked: bool,
    deadline: Instant,
}

/// What [`Reconciler::start`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Started {
    pub revoked: Vec<TopicPartition>,
    pub lost: Vec<TopicPartition>,
    pub assigned: Vec<TopicPartition>,
    /// Positions of the revoked partitions when they were taken away: what a commit
    /// on revoke stores.
    pub revoked_positions: Vec<(TopicPartition, i64, Option<i32>)>,
}

impl Started {
    /// Whether anything changed for the application.
    pub(crate) fn is_empty(&self) -> bool {
        self.revoked.is_empty() && self.lost.is_empty() && self.assigned.is_empty()
    }
}

/// The member's partitions and the change in progress.
#[derive(Debug, Default)]
pub(crate) struct Reconciler {
    /// What the member holds, as the coordinator is told.
    owned: BTreeSet<TopicPartition>,
    current: Option<Transition>,
    /// Assigned partitions paused until the application acknowledges.
    held: BTreeSet<TopicPartition>,
}

impl Reconciler {
    /// Partitions held now (revoked ones until their transition is done).
    pub(crate) fn owned(&self) -> &BTreeSet<TopicPartition> {
        &self.owned
    }

    /// What the member holds or is being handed: [`owned`](Self::owned) plus what
    /// the transition in progress assigned. A KIP-848 heartbeat reports this: a
    /// coordinator that moves a partition takes a heartbeat without it as its
    /// revocation, so one whose assignment the application has not acknowledged
    /// yet (a stalled application) must still be listed, or it is handed to
    /// another member while this one's application is about to be told it has it
    /// (and would commit its stale position on revoking it).
    pub(crate) fn holding(&self) -> BTreeSet<TopicPartition> {
        let mut out = self.owned.clone();
        if let Some(t) = &self.current {
            out.extend(t.assigned.iter().cloned());
        }
        out
    }

    /// What the application was last told it holds: [`owned`](Self::owned) less
    /// what the transition in progress revoked, plus what it assigned (both
    /// already reported in its event).
    pub(crate) fn reported(&self) -> BTreeSet<TopicPartition> {
        let mut out = self.owned.clone();
        if let Some(t) = &self.current {
            for tp in &t.revoked {
                out.remove(tp);
            }
            out.extend(t.assigned.iter().cloned());
        }
        out
    }

    /// Whether a transition is in progress.
    pub(crate) fn busy(&self) -> bool {
        self.current.is_some()
    }

    /// When the transition in progress stops waiting.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.current.as_ref().map(|t| t.deadline)
    }

    /// Starts moving to `target` (with `why == Lost`, everything held is lost
    /// instead and `target` must be empty). Must not be called while
    /// [`busy`](Self::busy).
    pub(crate) fn start(
        &mut self,
        now: Instant,
        why: Why,
        target: &BTreeSet<TopicPartition>,
        timeout: Duration,
        consumer: &mut Consumer,
    ) -> Started {
        debug_assert!(self.current.is_none(), "a transition is already running");
        let (revoked, lost): (Vec<TopicPartition>, Vec<TopicPartition>) = if why == Why::Lost {
            (Vec::new(), self.owned.iter().cloned().collect())
        } else {
            (self.owned.difference(target).cloned().collect(), Vec::new())
        };
        let assigned: Vec<TopicPartition> = if why == Why::Lost {
            Vec::new()
        } else {
            target.difference(&self.owned).cloned().collect()
        };
        let revoked_positions: Vec<(TopicPartition, i64, Option<i32>)> = consumer
            .positions()
            .into_iter()
            .filter(|(tp, _, _)| revoked.binary_search(tp).is_ok())
            .collect();
        let gone: Vec<TopicPartition> = revoked.iter().chain(&lost).cloned().collect();
        consumer.unassign(&gone);
        for tp in &lost {
            self.owned.remove(tp);
        }
        // Held partitions of an earlier transition never acknowledged are released
        // by it; these wait for this one's acknowledgement.
        consumer.assign(assigned.iter().cloned(), Offset::Committed);
        consumer.pause(&assigned, true);
        self.held.extend(assigned.iter().cloned());
        let started = Started {
            revoked: revoked.clone(),
            lost,
            assigned: assigned.clone(),
            revoked_positions,
        };
        self.current = Some(Transition {
            why,
            revoked,
            assigned,
            announced: !started.is_empty(),
            acked: started.is_empty(),
            deadline: now + timeout,
        });
        started
    }

    /// The application acknowledged the event: held partitions start fetching.
    pub(crate) fn ack(&mut self, consumer: &mut Consumer) {
        if let Some(t) = self.current.as_mut()
            && t.announced
        {
            t.acked = true;
        }
        let held: Vec<TopicPartition> = std::mem::take(&mut self.held).into_iter().collect();
        consumer.pause(&held, false);
    }

    /// Finishes the transition if it may: acknowledged (or out of time) and no
    /// commit outstanding (or out of time). Returns why it was started, and whether
    /// it ended by its deadline without an acknowledgement.
    pub(crate) fn poll(
        &mut self,
        now: Instant,
        commits_idle: bool,
        consumer: &mut Consumer,
    ) -> Option<(Why, bool)> {
        let t = self.current.as_ref()?;
        let late = now >= t.deadline;
        if !(late || (t.acked && commits_idle)) {
            return None;
        }
        let t = self.current.take()?;
        let unacked = !t.acked;
        if unacked {
            self.ack(consumer);
        }
        for tp in &t.revoked {
            self.owned.remove(tp);
        }
        self.owned.extend(t.assigned);
        Some((t.why, unacked))
    }

    /// Forgets everything (the member is gone): what is held is dropped from the
    /// fetcher.
    pub(crate) fn clear(&mut self, consumer: &mut Consumer) {
        let all: Vec<TopicPartition> = self
            .owned
            .iter()
            .chain(self.held.iter())
            .chain(self.current.iter().flat_map(|t| t.assigned.iter()))
            .cloned()
            .collect();
        consumer.unassign(&all);
        self.owned.clear();
        self.held.clear();
        self.current = None;
    }
}
