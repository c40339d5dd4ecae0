//! The KIP-848 consumer group protocol: one ConsumerGroupHeartbeat request, sent
//! every heartbeat interval the coordinator names; the coordinator computes the
//! assignment and hands each member its target, which the member reconciles to
//! (revoke, commit, assign) and acknowledges by reporting what it owns in its next
//! heartbeat. The coordinator gives a partition to a new owner only after its old
//! owner reported it gone, so no partition has two owners; a heartbeat therefore
//! lists, beside what the member owns, what it is handing to the application and
//! the application has not acknowledged yet (a stalled application's partitions
//! stay its own until it gives them up or the coordinator fences the member).
//! A leaving member whose commit on revoke was refused for a stale epoch sends
//! one more heartbeat to learn its epoch before the commit goes again.
//!
//! The member names itself (KIP-1082, ConsumerGroupHeartbeat v1): a random id from
//! the client's seed, kept for the member's life. Epoch 0 joins, -1 leaves, -2 leaves
//! as a static member that will be back. Every heartbeat carries the full state
//! (subscription and owned partitions): a coordinator treats that the same as the
//! incremental form, and a request lost in a coordinator move cannot leave it with a
//! stale view. FENCED_MEMBER_EPOCH and UNKNOWN_MEMBER_ID lose the partitions and
//! rejoin at epoch 0 with the same id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::call::{Call, CallReply};
use super::reconcile::Why;
use super::{GroupEnv, GroupMember, Proto, Settings, classic::Classic};
use crate::client::ClientError;
use crate::client::consumer::{Consumer, TopicPartition};
use crate::client::rng::Rng;
use crate::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ErrorCode, consumer_group_heartbeat_request,
};
use crate::wire::Uuid;

#[derive(Debug)]
pub(super) struct Next {
    pub member_id: String,
    pub epoch: i32,
    interval: Duration,
    /// The heartbeat in flight: its id and send time.
    call: Option<(u64, Instant)>,
    heartbeat_at: Option<Instant>,
    /// Send a heartbeat as soon as none is in flight.
    asap: bool,
    /// When the last answered heartbeat was sent.
    last_ok: Option<Instant>,
    /// The coordinator's latest assignment for this member, by topic id.
    target: Option<BTreeMap<Uuid, Vec<i32>>>,
    /// Topic ids of the topics the member holds partitions of.
    ids: BTreeMap<Arc<str>, Uuid>,
    lost: bool,
    /// The coordinator does not speak KIP-848: switch to the classic protocol.
    fallback: bool,
    joined: bool,
}

impl Next {
    pub(super) fn new(seed: u64, settings: &Settings) -> Self {
        let mut rng = Rng::new(seed);
        let id = Uuid::from_u128((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64()));
        Next {
            member_id: id.to_string(),
            epoch: 0,
            interval: settings.heartbeat_interval,
            call: None,
            heartbeat_at: None,
            asap: true,
            last_ok: None,
            target: None,
            ids: BTreeMap::new(),
            lost: false,
            fallback: false,
            joined: false,
        }
    }

    pub(super) fn heartbeat_now(&mut self) {
        self.asap = true;
    }

    /// Whether a heartbeat is on its way.
    pub(super) fn heartbeat_in_flight(&self) -> bool {
        self.call.is_some()
    }

    pub(super) fn is_stable(&self) -> bool {
        self.joined && self.epoch > 0 && !self.lost
    }

    /// When [`drive_next`](GroupMember::drive_next) has something to do; `busy`
    /// is whether a transition is in progress. Lost partitions wait for it to end
    /// (its deadline, or the commit or acknowledgement that ends it, wakes the
    /// member), and nothing else moves until then: a heartbeat timer already
    /// passed would only wake the client again and again at the same instant.
    pub(super) fn next_deadline(&self, settings: &Settings, busy: bool) -> Option<Instant> {
        if self.lost && busy {
            return None;
        }
        let heartbeat = self.heartbeat_at.filter(|_| self.call.is_none());
        let expiry = self
            .last_ok
            .filter(|_| self.joined)
            .map(|t| t + settings.session_timeout);
        [heartbeat, expiry].into_iter().flatten().min()
    }

    pub(super) fn transition_done(&mut self, why: Why) {
        // The acknowledgement (or the rejoin after a loss) goes out at once.
        if matches!(why, Why::Assignment | Why::Lost) {
            self.asap = true;
        }
    }

    fn lose(&mut self) {
        self.epoch = 0;
        self.lost = true;
        self.joined = false;
        self.target = None;
        self.last_ok = None;
        self.asap = true;
    }

    /// The leave heartbeat: epoch -1, or -2 for a static member closing (it keeps
    /// its assignment for a restart within the session timeout).
    pub(super) fn leave_call(&self, settings: &Settings, closing: bool) -> Option<Call> {
        if !self.joined && self.epoch <= 0 {
            return None;
        }
        let epoch = if closing && settings.instance_id.is_some() {
            -2
        } else {
            -1
        };
        Some(Call::Next(ConsumerGroupHeartbeatRequest {
            group_id: (&*settings.group_id).into(),
            member_id: self.member_id.as_str().into(),
            member_epoch: epoch,
            instance_id: settings.instance_id.as_deref().map(Into::into),
            rebalance_timeout_ms: -1,
            ..Default::default()
        }))
    }
}

impl GroupMember {
    pub(super) fn drive_next(&mut self, now: Instant, env: &dyn GroupEnv, consumer: &mut Consumer) {
        let busy = self.reconciler.busy();
        let session = self.settings.session_timeout;
        let Proto::Next(n) = &mut self.proto else {
            return;
        };
        if n.fallback {
            // The classic protocol needs an assignor (subscribe checks it for a
            // classic member): without one a member chosen leader indexed an empty
            // list and panicked.
            if self.settings.assignors.is_empty() {
                self.fail(
                    ClientError::InvalidArgument(
                        "the coordinator lacks ConsumerGroupHeartbeat v1, and the classic \
                         protocol needs at least one assignor"
                            .into(),
                    ),
                    consumer,
                );
                return;
            }
            tracing::info!(
                "the coordinator lacks ConsumerGroupHeartbeat v1; using the classic protocol"
            );
            self.proto = Proto::Classic(Classic::new());
            self.drive_classic(now, env, consumer);
            return;
        }
        // Checked before lost partitions are handled, so that a loss found here is
        // handled in this same pass: the drive loop sees no progress in a lost
        // flag alone, and the member asked to be woken for a passed heartbeat timer.
        if n.joined && n.last_ok.is_some_and(|t| t + session <= now) {
            tracing::info!("no heartbeat answered for a session timeout; the partitions are lost");
            n.lose();
        }
        if n.lost {
            if busy {
                return;
            }
            n.lost = false;
            self.transition(now, Why::Lost, &BTreeSet::new(), consumer);
            return;
        }
        // Reconcile to the coordinator's target once nothing else is in progress.
        if !busy && let Some(target) = n.target.clone() {
            let mut resolved = BTreeSet::new();
            let mut unresolved = false;
            for (id, parts) in &target {
                match env.topic_name(*id) {
                    Some(name) => {
                        n.ids.insert(name.clone(), *id);
                        resolved
                            .extend(parts.iter().map(|p| TopicPartition::new(name.clone(), *p)));
                    }
                    None => unresolved = true,
                }
            }
            if unresolved && self.metadata_ready(env) {
                // Topic ids not in the metadata yet: ask for the subscribed topics.
                let topics: Vec<Arc<str>> = self.subscription.iter().cloned().collect();
                self.want_metadata(topics);
            }
            if &resolved != self.reconciler.owned() {
                self.transition(now, Why::Assignment, &resolved, consumer);
            }
        }
        let Proto::Next(n) = &mut self.proto else {
            return;
        };
        if n.call.is_none() && (n.asap || n.heartbeat_at.is_some_and(|t| t <= now)) {
            self.send_heartbeat(now, env);
        }
    }

    /// Sends a heartbeat at the member's epoch, reporting what it holds.
    pub(super) fn send_heartbeat(&mut self, now: Instant, env: &dyn GroupEnv) {
        let Proto::Next(n) = &mut self.proto else {
            return;
        };
        let mut owned: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
        for tp in &self.reconciler.holding() {
            let id = n
                .ids
                .get(&tp.topic)
                .copied()
                .or_else(|| env.topic_id(&tp.topic));
            if let Some(id) = id {
                owned.entry(id).or_default().push(tp.partition);
            }
        }
        let request = ConsumerGroupHeartbeatRequest {
            group_id: (&*self.settings.group_id).into(),
            member_id: n.member_id.as_str().into(),
            member_epoch: n.epoch,
            instance_id: self.settings.instance_id.as_deref().map(Into::into),
            rack_id: None,
            rebalance_timeout_ms: i32::try_from(self.settings.rebalance_timeout.as_millis())
                .unwrap_or(i32::MAX),
            subscribed_topic_names: Some(self.subscription.iter().map(|t| (&**t).into()).collect()),
            // No regex, said as librdkafka says it: the empty string, which is
            // Kafka's own "no regex" (ConsumerGroupDescribe reports "" for a
            // member subscribed by name). librdkafka 2.16's mock coordinator
            // aborts (an assertion; the process exits) on names with a null
            // regex.
            subscribed_topic_regex: Some("".into()),
            server_assignor: self.settings.remote_assignor.as_deref().map(Into::into),
            topic_partitions: Some(
                owned
                    .into_iter()
                    .map(
                        |(topic_id, ps)| consumer_group_heartbeat_request::TopicPartitions {
                            topic_id,
                            partitions: ps.into_iter().collect(),
                            ..Default::default()
                        },
                    )
                    .collect(),
            ),
            ..Default::default()
        };
        n.asap = false;
        n.heartbeat_at = None;
        let id = self.send_call(Call::Next(request), Duration::ZERO);
        if let Proto::Next(n) = &mut self.proto {
            n.call = Some((id, now));
        }
    }

    pub(super) fn next_reply(
        &mut self,
        id: u64,
        now: Instant,
        result: Result<CallReply, ClientError>,
        consumer: &mut Consumer,
    ) {
        let backoff = self.settings.retry_backoff;
        let Proto::Next(n) = &mut self.proto else {
            return;
        };
        let Some((cid, sent)) = n.call else { return };
        if cid != id {
            return;
        }
        n.call = None;
        // A commit held for a stale epoch waits for this heartbeat's end, however
        // it ends: with a fresh epoch it goes again; after an error it goes again
        // too (and is reported if refused once more). Released only on success, it
        // waited forever for a coordinator that never answers.
        self.commits.release();
        let response = match result {
            Ok(CallReply::Next(r)) => r,
            Ok(_) => return,
            Err(ClientError::Unsupported(ApiKey::ConsumerGroupHeartbeat)) if !n.joined => {
                n.fallback = true;
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "ConsumerGroupHeartbeat failed");
                n.heartbeat_at = Some(now + n.interval.min(Duration::from_secs(1)).max(backoff));
                return;
            }
        };
        let code = ErrorCode(response.error_code);
        let fatal = match code {
            ErrorCode::NONE => {
                if let Some(m) = response.member_id.as_deref().filter(|m| !m.is_empty()) {
                    n.member_id = m.to_owned();
                }
                n.epoch = response.member_epoch;
                n.joined = true;
                n.last_ok = Some(sent);
                if response.heartbeat_interval_ms > 0 {
                    n.interval = Duration::from_millis(response.heartbeat_interval_ms as u64);
                }
                n.heartbeat_at = Some(now + n.interval);
                if let Some(a) = response.assignment {
                    n.target = Some(
                        a.topic_partitions
                            .iter()
                            .map(|t| (t.topic_id, t.partitions.iter().copied().collect()))
                            .collect(),
                    );
                }
                None
            }
            ErrorCode::FENCED_MEMBER_EPOCH | ErrorCode::UNKNOWN_MEMBER_ID => {
                tracing::info!(%code, "fenced; the partitions are lost and the member rejoins");
                n.lose();
                None
            }
            ErrorCode::UNSUPPORTED_VERSION if !n.joined => {
                n.fallback = true;
                None
            }
            ErrorCode::UNRELEASED_INSTANCE_ID => {
                // The previous instance with this id has not left yet.
                n.heartbeat_at = Some(now + n.interval);
                None
            }
            ErrorCode::FENCED_INSTANCE_ID
            | ErrorCode::GROUP_AUTHORIZATION_FAILED
            | ErrorCode::TOPIC_AUTHORIZATION_FAILED
            | ErrorCode::INVALID_REQUEST
            | ErrorCode::UNSUPPORTED_ASSIGNOR
            | ErrorCode::GROUP_MAX_SIZE_REACHED
            | ErrorCode::UNSUPPORTED_VERSION => Some(code),
            _ => {
                tracing::debug!(%code, "ConsumerGroupHeartbeat error");
                n.heartbeat_at = Some(now + n.interval.max(backoff));
                None
            }
        };
        if let Some(code) = fatal {
            let message = response.error_message.as_deref().map(str::to_owned);
            self.fail(
                ClientError::broker(ApiKey::ConsumerGroupHeartbeat, code, message),
                consumer,
            );
        }
    }
}
