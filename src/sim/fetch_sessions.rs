//! Incremental fetch sessions (KIP-227), as each Kafka broker keeps them.
//!
//! A Fetch with session id 0 and epoch 0 asks for a new session: the broker keeps
//! the partitions it names, with their fetch offsets, and answers with a session id.
//! The next Fetch names that id and the next epoch, and only the partitions whose
//! fetch offset or limit changed, plus those to forget; the broker reads every
//! partition the session holds and answers only those with something to say (records,
//! an error, a new high watermark or log start offset). An unknown id is
//! FETCH_SESSION_ID_NOT_FOUND, a wrong epoch INVALID_FETCH_SESSION_EPOCH; epoch -1
//! closes the session (and fetches without one).
//!
//! Each broker keeps at most `max_incremental_fetch_sessions`; when they are in use,
//! a new session evicts the least recently used one if it has been idle for two
//! minutes, and otherwise the fetch is answered without a session (id 0), which
//! clients take as "send full fetches". A session holds only partitions that exist,
//! so its size is bounded by the cluster's, and a broker crash drops its sessions.

use crate::wire::Uuid;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// How long a session must have been idle before a new one may evict it (Kafka's
/// fetch session cache evicts only sessions idle for its eviction time).
const EVICTABLE_AFTER: Duration = Duration::from_secs(120);

/// One partition a session holds.
#[derive(Debug, Clone)]
pub(crate) struct SessionPartition {
    pub topic_id: Uuid,
    pub fetch_offset: i64,
    pub max_bytes: i32,
    /// The high watermark and log start offset last sent, `None` before the first
    /// response that named the partition.
    pub reported: Option<(i64, i64)>,
}

/// A session: what one consumer fetches from one broker.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    broker: i32,
    /// The epoch the next incremental fetch must carry.
    pub epoch: i32,
    last_used: Instant,
    /// The partitions by (topic, partition), and their order in responses
    /// (partitions that returned records go to the back, for fairness).
    pub partitions: BTreeMap<(String, i32), SessionPartition>,
    pub order: Vec<(String, i32)>,
}

impl Session {
    /// Adds or updates a partition.
    pub fn upsert(&mut self, topic: &str, partition: i32, value: SessionPartition) {
        let key = (topic.to_owned(), partition);
        match self.partitions.get_mut(&key) {
            Some(p) => {
                p.fetch_offset = value.fetch_offset;
                p.max_bytes = value.max_bytes;
                p.topic_id = value.topic_id;
            }
            None => {
                self.order.push(key.clone());
                self.partitions.insert(key, value);
            }
        }
    }

    /// Forgets a partition.
    pub fn forget(&mut self, topic: &str, partition: i32) {
        let key = (topic.to_owned(), partition);
        if self.partitions.remove(&key).is_some() {
            self.order.retain(|k| *k != key);
        }
    }

    /// Moves the partitions that returned records to the back of the order.
    pub fn rotate(&mut self, returned: &BTreeSet<(String, i32)>) {
        if returned.is_empty() {
            return;
        }
        let (mut front, back): (Vec<_>, Vec<_>) = std::mem::take(&mut self.order)
            .into_iter()
            .partition(|k| !returned.contains(k));
        front.extend(back);
        self.order = front;
    }
}

/// Every broker's fetch sessions.
#[derive(Debug, Default)]
pub(crate) struct FetchSessions {
    sessions: HashMap<i32, Session>,
    /// Each broker's sessions by last use, oldest first.
    by_broker: BTreeMap<i32, BTreeSet<(Instant, i32)>>,
}

/// Why a session request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionError {
    NotFound,
    InvalidEpoch,
}

impl FetchSessions {
    /// Session `id` on `broker`, checked against `epoch` and marked used: the epoch
    /// moves on.
    pub fn resume(
        &mut self,
        broker: i32,
        id: i32,
        epoch: i32,
        now: Instant,
    ) -> Result<&mut Session, SessionError> {
        let s = self
            .sessions
            .get_mut(&id)
            .filter(|s| s.broker == broker)
            .ok_or(SessionError::NotFound)?;
        if s.epoch != epoch {
            return Err(SessionError::InvalidEpoch);
        }
        s.epoch = if s.epoch == i32::MAX { 1 } else { s.epoch + 1 };
        if let Some(set) = self.by_broker.get_mut(&broker) {
            set.remove(&(s.last_used, id));
            set.insert((now, id));
        }
        s.last_used = now;
        Ok(s)
    }

    /// Closes session `id` if `broker` has it.
    pub fn close(&mut self, broker: i32, id: i32) {
        if self.sessions.get(&id).is_some_and(|s| s.broker == broker)
            && let Some(s) = self.sessions.remove(&id)
            && let Some(set) = self.by_broker.get_mut(&broker)
        {
            set.remove(&(s.last_used, id));
        }
    }

    /// A new, empty session on `broker` with id `id` (unused, non-zero), if the
    /// broker has room (evicting one idle long enough); `None`: no session.
    pub fn create(
        &mut self,
        broker: i32,
        id: i32,
        slots: usize,
        now: Instant,
    ) -> Option<&mut Session> {
        if slots == 0 || id == 0 || self.sessions.contains_key(&id) {
            return None;
        }
        let set = self.by_broker.entry(broker).or_default();
        if set.len() >= slots {
            let &(used, oldest) = set.first()?;
            if now.saturating_duration_since(used) < EVICTABLE_AFTER {
                return None;
            }
            set.pop_first();
            self.sessions.remove(&oldest);
        }
        set.insert((now, id));
        Some(self.sessions.entry(id).or_insert(Session {
            broker,
            epoch: 1,
            last_used: now,
            partitions: BTreeMap::new(),
            order: Vec::new(),
        }))
    }

    /// Whether session id `id` is taken.
    pub fn contains(&self, id: i32) -> bool {
        self.sessions.contains_key(&id)
    }

    /// The session `id`, for a response to update.
    pub fn get_mut(&mut self, id: i32) -> Option<&mut Session> {
        self.sessions.get_mut(&id)
    }

    /// How many sessions `broker` keeps.
    pub fn count(&self, broker: i32) -> usize {
        self.by_broker.get(&broker).map_or(0, BTreeSet::len)
    }

    /// Broker `broker` crashed: its sessions are gone.
    pub fn broker_gone(&mut self, broker: i32) {
        if let Some(set) = self.by_broker.remove(&broker) {
            for (_, id) in set {
                self.sessions.remove(&id);
            }
        }
    }
}
