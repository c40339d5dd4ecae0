//! The group coordinator's place and log: `__consumer_offsets` as a real internal
//! topic, as Kafka keeps it.
//!
//! A group belongs to partition `abs(hashCode(group id)) % offsets_topic_partitions`
//! (Java's `String.hashCode`, as Kafka's `partitionFor`), and its coordinator is
//! that partition's leader: a leader move or a broker crash moves the coordinator of
//! every group of the partition, and requests at the old broker get NOT_COORDINATOR.
//! The topic is created the first time a group needs it (FindCoordinator, a group
//! request, or a Metadata request naming it), as Kafka does.
//!
//! Every change the coordinators make is also written to the topic, as record
//! batches holding the records Kafka writes (the schemas of
//! `crate::messages::consumer_offsets`): committed offsets, classic group metadata
//! with each member's subscription and assignment, and the KIP-848 consumer group
//! records. Clients read them with Fetch like any topic. The coordinators still
//! serve from memory; the log is what a reader of the topic sees, never read back.

use super::{Cluster, SimError, TopicOrigin};
use crate::messages::consumer_offsets::{
    ConsumerGroupCurrentMemberAssignmentKey, ConsumerGroupCurrentMemberAssignmentValue,
    ConsumerGroupMemberMetadataKey, ConsumerGroupMemberMetadataValue, ConsumerGroupMetadataKey,
    ConsumerGroupMetadataValue, ConsumerGroupPartitionMetadataKey,
    ConsumerGroupPartitionMetadataValue, ConsumerGroupTargetAssignmentMemberKey,
    ConsumerGroupTargetAssignmentMemberValue, ConsumerGroupTargetAssignmentMetadataKey,
    ConsumerGroupTargetAssignmentMetadataValue, GroupMetadataKey, GroupMetadataValue,
    OffsetCommitKey, OffsetCommitValue,
};
use crate::messages::{ApiKey, ErrorCode};
use crate::records::{BatchBuilder, BatchConfig, NewRecord};
use crate::wire::{BufMut, Bytes, BytesMut, Message};
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

/// The name of the group coordinator's topic.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode` (over UTF-16 code units), as Kafka hashes keys.
pub(crate) fn java_hash(key: &str) -> i32 {
    key.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// Kafka's `Utils.abs(key.hashCode) % partitions` (`Utils.abs` masks the sign bit).
pub(crate) fn partition_for(key: &str, partitions: i32) -> i32 {
    (java_hash(key) & 0x7fff_ffff) % partitions.max(1)
}

/// The wall clock the coordinator stamps its records with: the configured origin
/// plus the virtual time since the cluster started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    pub start: Instant,
    pub origin_ms: i64,
}

impl WallClock {
    /// Milliseconds since the Unix epoch at `now`.
    pub fn ms(&self, now: Instant) -> i64 {
        let elapsed = i64::try_from(now.saturating_duration_since(self.start).as_millis())
            .unwrap_or(i64::MAX);
        self.origin_ms.saturating_add(elapsed)
    }
}

/// One record for `__consumer_offsets`: the group it belongs to (which says the
/// partition), its key, and its value (`None`: a tombstone).
#[derive(Debug, Clone)]
pub(crate) struct CoordinatorRecord {
    pub group: String,
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// Records waiting to be written, in the order the coordinator made them.
pub(crate) type Outbox = Vec<CoordinatorRecord>;

/// `version` then `message` at that version, as keys and values are written.
fn versioned<M: Message>(version: i16, message: &M) -> Option<Bytes> {
    let mut out = BytesMut::new();
    out.put_i16(version);
    // A field the schema cannot hold (a group id over 32,767 bytes in a key's
    // int16-length string) leaves the record out rather than writing a wrong one.
    message.encode(&mut out, version).ok()?;
    Some(out.freeze())
}

impl CoordinatorRecord {
    fn new<K: Message, V: Message>(
        group: &str,
        key_version: i16,
        key: &K,
        value: Option<(i16, &V)>,
    ) -> Option<Self> {
        let key = versioned(key_version, key)?;
        let value = match value {
            Some((version, v)) => Some(versioned(version, v)?),
            None => None,
        };
        Some(CoordinatorRecord {
            group: group.to_owned(),
            key,
            value,
        })
    }

    /// A committed offset (key v1, value v3, as Kafka 4 writes them), or its
    /// tombstone.
    pub fn offset_commit(
        group: &str,
        topic: &str,
        partition: i32,
        value: Option<&OffsetCommitValue>,
    ) -> Option<Self> {
        let key = OffsetCommitKey {
            group: group.into(),
            topic: topic.into(),
            partition,
        };
        Self::new(group, 1, &key, value.map(|v| (3, v)))
    }

    /// A classic group's metadata (key v2, value v3), or its tombstone.
    pub fn group_metadata(group: &str, value: Option<&GroupMetadataValue>) -> Option<Self> {
        let key = GroupMetadataKey {
            group: group.into(),
        };
        Self::new(group, 2, &key, value.map(|v| (3, v)))
    }

    /// A consumer group's epoch (ConsumerGroupMetadata, key v3), or its tombstone.
    pub fn consumer_group_metadata(group: &str, epoch: Option<i32>) -> Option<Self> {
        let key = ConsumerGroupMetadataKey {
            group_id: group.into(),
        };
        let value = epoch.map(|epoch| ConsumerGroupMetadataValue {
            epoch,
            ..Default::default()
        });
        Self::new(group, 3, &key, value.as_ref().map(|v| (0, v)))
    }

    /// The topics a consumer group subscribes to, with their partition counts
    /// (ConsumerGroupPartitionMetadata, key v4), or its tombstone.
    pub fn consumer_group_partition_metadata(
        group: &str,
        value: Option<&ConsumerGroupPartitionMetadataValue>,
    ) -> Option<Self> {
        let key = ConsumerGroupPartitionMetadataKey {
            group_id: group.into(),
        };
        Self::new(group, 4, &key, value.map(|v| (0, v)))
    }

    /// A consumer group member (ConsumerGroupMemberMetadata, key v5), or its
    /// tombstone.
    pub fn consumer_group_member(
        group: &str,
        member: &str,
        value: Option<&ConsumerGroupMemberMetadataValue>,
    ) -> Option<Self> {
        let key = ConsumerGroupMemberMetadataKey {
            group_id: group.into(),
            member_id: member.into(),
        };
        Self::new(group, 5, &key, value.map(|v| (0, v)))
    }

    /// The target assignment's epoch (ConsumerGroupTargetAssignmentMetadata, key
    /// v6), or its tombstone.
    pub fn consumer_group_target_metadata(group: &str, epoch: Option<i32>) -> Option<Self> {
        let key = ConsumerGroupTargetAssignmentMetadataKey {
            group_id: group.into(),
        };
        let value = epoch.map(
            |assignment_epoch| ConsumerGroupTargetAssignmentMetadataValue {
                assignment_epoch,
                ..Default::default()
            },
        );
        Self::new(group, 6, &key, value.as_ref().map(|v| (0, v)))
    }

    /// One member's target assignment (ConsumerGroupTargetAssignmentMember, key
    /// v7), or its tombstone.
    pub fn consumer_group_target_member(
        group: &str,
        member: &str,
        value: Option<&ConsumerGroupTargetAssignmentMemberValue>,
    ) -> Option<Self> {
        let key = ConsumerGroupTargetAssignmentMemberKey {
            group_id: group.into(),
            member_id: member.into(),
        };
        Self::new(group, 7, &key, value.map(|v| (0, v)))
    }

    /// One member's current assignment and epochs
    /// (ConsumerGroupCurrentMemberAssignment, key v8), or its tombstone.
    pub fn consumer_group_current_member(
        group: &str,
        member: &str,
        value: Option<&ConsumerGroupCurrentMemberAssignmentValue>,
    ) -> Option<Self> {
        let key = ConsumerGroupCurrentMemberAssignmentKey {
            group_id: group.into(),
            member_id: member.into(),
        };
        Self::new(group, 8, &key, value.map(|v| (0, v)))
    }
}

/// Errors injected for one group ([`Cluster::inject_group_error`]): runs of (error
/// code, count) per API (`None`: any group API), oldest first.
pub(crate) type GroupInjections = BTreeMap<(String, Option<i16>), VecDeque<(i16, usize)>>;

impl Cluster {
    /// The partition of `__consumer_offsets` that holds `group`.
    pub(crate) fn offsets_partition(&self, group: &str) -> i32 {
        partition_for(group, self.config.offsets_topic_partitions)
    }

    /// Creates `__consumer_offsets` if it does not exist yet.
    pub(crate) fn ensure_offsets_topic(&mut self) {
        if self.topics.contains_key(OFFSETS_TOPIC) {
            return;
        }
        let replication = self
            .config
            .offsets_topic_replication
            .min(self.brokers.len() as i16)
            .max(1);
        let partitions = self.config.offsets_topic_partitions;
        if self
            .create_topic_as(
                OFFSETS_TOPIC,
                partitions,
                replication,
                TopicOrigin::Internal,
            )
            .is_ok()
            && let Some(t) = self.topics.get_mut(OFFSETS_TOPIC)
        {
            // Kafka's overrides for the topic.
            for (k, v) in [
                ("cleanup.policy", "compact"),
                ("compression.type", "producer"),
                ("segment.bytes", "104857600"),
            ] {
                t.configs.insert(k.into(), v.into());
            }
        }
    }

    /// The broker coordinating `group` (creating `__consumer_offsets` if needed), or
    /// COORDINATOR_NOT_AVAILABLE while its partition has no leader.
    pub(crate) fn group_coordinator(&mut self, group: &str) -> Result<i32, ErrorCode> {
        self.ensure_offsets_topic();
        let p = self.offsets_partition(group);
        self.partition_leader(OFFSETS_TOPIC, p)
            .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)
    }

    /// The broker coordinating `group` now (`None` before any group used the
    /// cluster, or while the group's partition of `__consumer_offsets` is offline).
    #[must_use]
    pub fn coordinator(&self, group: &str) -> Option<i32> {
        self.partition_leader(OFFSETS_TOPIC, self.offsets_partition(group))
    }

    /// Moves the coordinator of `group` to broker `to`, as Kafka does by moving the
    /// leadership of the group's partition of `__consumer_offsets` (so every group of
    /// that partition moves with it). Requests at the old coordinator get
    /// NOT_COORDINATOR, the requests parked there are answered so, and the new
    /// coordinator starts every member's session afresh, as Kafka's does when it
    /// loads a group.
    ///
    /// # Errors
    /// Broker `to` does not exist or is down.
    pub fn move_coordinator(&mut self, group: &str, to: i32) -> Result<(), SimError> {
        if !self.broker_ids().any(|b| b == to) {
            return Err(SimError::NoSuchBroker(to));
        }
        self.ensure_offsets_topic();
        let p = self.offsets_partition(group);
        self.move_leader(OFFSETS_TOPIC, p, to)?;
        self.coordinator_moved(&[p]);
        Ok(())
    }

    /// The coordinator of the groups in `partitions` of `__consumer_offsets` moved:
    /// their members' sessions start afresh and their parked requests look again.
    pub(crate) fn coordinator_moved(&mut self, partitions: &[i32]) {
        if partitions.is_empty() {
            return;
        }
        let n = self.config.offsets_topic_partitions;
        let now = self.now;
        let moved = |g: &str| partitions.contains(&partition_for(g, n));
        self.groups.coordinator_moved(&moved, now);
        self.consumer_groups.coordinator_moved(&moved, now);
        self.run_woken();
    }

    /// The next `count` requests for `group` of `api` (`None`: of any group API —
    /// FindCoordinator for the group, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
    /// OffsetCommit, OffsetFetch, ConsumerGroupHeartbeat, ConsumerGroupDescribe) are
    /// answered with `error` and change nothing. Errors injected for every request
    /// of an API ([`Cluster::inject_error`]) come first.
    pub fn inject_group_error(
        &mut self,
        group: &str,
        api: Option<ApiKey>,
        error: ErrorCode,
        count: usize,
    ) {
        if count == 0 {
            return;
        }
        let q = self
            .group_injected
            .entry((group.to_owned(), api.map(ApiKey::as_i16)))
            .or_default();
        match q.back_mut() {
            Some((code, n)) if *code == error.code() => *n = n.saturating_add(count),
            _ => q.push_back((error.code(), count)),
        }
    }

    /// The error injected for the next request of `api` for `group`, if any (the
    /// API's own queue first, then the group's for any API).
    pub(crate) fn take_group_injected(&mut self, group: &str, api: ApiKey) -> Option<ErrorCode> {
        if self.group_injected.is_empty() {
            return None;
        }
        for key in [Some(api.as_i16()), None] {
            let k = (group.to_owned(), key);
            let Some(q) = self.group_injected.get_mut(&k) else {
                continue;
            };
            let Some((code, n)) = q.front_mut() else {
                continue;
            };
            let code = *code;
            *n -= 1;
            if *n == 0 {
                q.pop_front();
                if q.is_empty() {
                    self.group_injected.remove(&k);
                }
            }
            return Some(ErrorCode::from(code));
        }
        None
    }

    /// The wall clock the coordinator's records are stamped with.
    pub(crate) fn wall_clock(&self) -> WallClock {
        WallClock {
            start: self.started,
            origin_ms: self.config.clock_origin_ms,
        }
    }

    /// Writes what the coordinators decided since last asked to `__consumer_offsets`:
    /// one batch per partition touched, on every replica at once (Kafka's
    /// coordinator writes with `acks=all`), waking the fetches that read it.
    pub(crate) fn write_coordinator_records(&mut self) {
        let mut records = std::mem::take(&mut self.outbox);
        records.append(&mut self.groups.take_records());
        records.append(&mut self.consumer_groups.take_records());
        if records.is_empty() {
            return;
        }
        self.ensure_offsets_topic();
        let n = self.config.offsets_topic_partitions;
        let mut by_partition: BTreeMap<i32, Vec<CoordinatorRecord>> = BTreeMap::new();
        for r in records {
            by_partition
                .entry(partition_for(&r.group, n))
                .or_default()
                .push(r);
        }
        let now = self.now;
        let timestamp = self.wall_clock().ms(now);
        let Some(topic) = self.topics.get_mut(OFFSETS_TOPIC) else {
            return;
        };
        let id = topic.id;
        let mut touched = Vec::new();
        for (p, records) in by_partition {
            let Some(partition) = usize::try_from(p)
                .ok()
                .and_then(|i| topic.partitions.get_mut(i))
            else {
                continue;
            };
            let mut buf = BytesMut::new();
            let config = BatchConfig {
                max_batch_bytes: i32::MAX as usize,
                ..BatchConfig::default()
            };
            let mut builder = BatchBuilder::new(&mut buf, &config);
            for r in &records {
                let mut record = NewRecord::new(timestamp).key(&r.key);
                if let Some(v) = &r.value {
                    record = record.value(v);
                }
                // Only a batch over 2 GiB could refuse a record.
                let _ = builder.append(&record);
            }
            if builder.finish().is_err() {
                continue;
            }
            let batch = buf.freeze();
            let epoch = partition.leader_epoch;
            if partition
                .log
                .append(&batch, epoch, now, now, usize::MAX)
                .is_ok()
            {
                touched.push(p);
            }
        }
        for p in touched {
            self.conns.wake_partition(id, p);
        }
    }
}

/// Which protocol a group speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupProtocol {
    /// JoinGroup, SyncGroup, Heartbeat and LeaveGroup.
    Classic,
    /// KIP-848's ConsumerGroupHeartbeat, assigned by the coordinator.
    Consumer,
}

/// What the coordinator holds for a group ([`Cluster::group`]), for tests and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupSummary {
    /// Its protocol.
    pub protocol: GroupProtocol,
    /// Its state as Kafka names it (classic: `Empty`, `PreparingRebalance`,
    /// `CompletingRebalance`, `Stable`; consumer: `Empty`, `Assigning`,
    /// `Reconciling`, `Stable`).
    pub state: String,
    /// The generation (classic) or group epoch (consumer).
    pub epoch: i32,
    /// Its members, by member id.
    pub members: Vec<MemberSummary>,
}

/// One member of a [`GroupSummary`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberSummary {
    /// The member id.
    pub member_id: String,
    /// The group instance id of a static member.
    pub instance_id: Option<String>,
    /// The member epoch (consumer) or the group's generation (classic).
    pub epoch: i32,
    /// The partitions it holds, sorted (classic: decoded from its consumer protocol
    /// assignment; empty for other protocol types).
    pub assigned: Vec<(String, i32)>,
}

impl Cluster {
    /// What the coordinator holds for `group`, of either protocol (`None`: no such
    /// group).
    #[must_use]
    pub fn group(&self, group: &str) -> Option<GroupSummary> {
        self.groups.summary(group).or_else(|| {
            let name = |id| self.topic_name(id).cloned();
            self.consumer_groups.summary(group, &name)
        })
    }
}
