//! Offsets: ListOffsets, DeleteRecords and OffsetForLeaderEpoch on the partition
//! leaders; OffsetCommit and OffsetFetch on the group coordinator.

use super::{Call, TopicResponse, error_code, per_partition};
use crate::messages::consumer_offsets::OffsetCommitValue;
use crate::messages::{
    ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, ErrorCode, ListOffsetsRequest,
    ListOffsetsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use crate::messages::{
    delete_records_response, list_offsets_response, offset_commit_response, offset_fetch_response,
    offset_for_leader_epoch_response,
};
use crate::sim::coordinator::CoordinatorRecord;
use crate::sim::{Cluster, Partition};
use crate::wire::ByteString;
use std::time::Instant;

/// A committed offset, as OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Kafka's default `offset.metadata.max.bytes`.
const MAX_OFFSET_METADATA: usize = 4096;

pub(super) fn list_offsets(call: &mut Call, r: &ListOffsetsRequest) -> ListOffsetsResponse {
    let (now, version) = (call.now, call.version);
    let topics = per_partition(
        &r.topics,
        |t| (&t.name, &t.partitions[..]),
        |t, lp| {
            let result = call.on_leader(&t.name, lp.partition_index).map(|p| {
                let found = match lp.timestamp {
                    -2 => Some((p.log.log_start_offset, -1)),
                    // The latest offset a read_committed consumer may read up to
                    // is the last stable offset.
                    -1 => Some((p.log.read_bound(now, r.isolation_level == 1), -1)),
                    ts if ts >= 0 => p.log.offset_for_timestamp(ts, now, r.isolation_level == 1),
                    // Other special timestamps (max timestamp, tiered storage) are not
                    // kept: report no offset.
                    _ => None,
                };
                (found, p.leader_epoch)
            });
            let mut out = list_offsets_response::ListOffsetsPartitionResponse {
                partition_index: lp.partition_index,
                error_code: error_code(&result),
                timestamp: -1,
                offset: -1,
                leader_epoch: -1,
                ..Default::default()
            };
            if let Ok((Some((offset, ts)), epoch)) = result {
                out.offset = offset;
                out.timestamp = ts;
                out.leader_epoch = if version >= 4 { epoch } else { -1 };
            }
            out
        },
    );
    ListOffsetsResponse {
        topics,
        ..Default::default()
    }
}

/// DeleteRecords: moves each partition's log start offset up to the offset asked (or
/// the high watermark for -1).
pub(super) fn delete_records(call: &mut Call, r: &DeleteRecordsRequest) -> DeleteRecordsResponse {
    let now = call.now;
    let topics = per_partition(
        &r.topics,
        |t| (&t.name, &t.partitions[..]),
        |t, dp| {
            let result = call.on_leader(&t.name, dp.partition_index).and_then(|p| {
                let hw = p.log.high_watermark(now);
                let target = if dp.offset == -1 { hw } else { dp.offset };
                if target < 0 || target > hw {
                    return Err(ErrorCode::OFFSET_OUT_OF_RANGE);
                }
                p.log.delete_before(target);
                Ok(p.log.log_start_offset)
            });
            delete_records_response::DeleteRecordsPartitionResult {
                partition_index: dp.partition_index,
                error_code: error_code(&result),
                low_watermark: result.unwrap_or(-1),
                ..Default::default()
            }
        },
    );
    DeleteRecordsResponse {
        topics,
        ..Default::default()
    }
}

/// Kafka's `LeaderEpochFileCache.endOffsetFor`: (the largest epoch not above
/// `requested`, the start offset of the first epoch above it), or the log end offset
/// for the current epoch, or (-1, -1) for an epoch above every known one.
fn end_offset_for_epoch(p: &Partition, requested: i32) -> (i32, i64) {
    // (epoch, start offset) of each leader epoch that wrote data, then the current
    // one, which starts where the log ended when it was elected (or later).
    let mut epochs: Vec<(i32, i64)> = p.log.epochs().to_vec();
    if epochs.last().is_none_or(|(last, _)| p.leader_epoch > *last) {
        epochs.push((p.leader_epoch, p.log.log_end_offset));
    }
    if requested < 0 {
        return (-1, -1);
    }
    if requested == p.leader_epoch {
        return (requested, p.log.log_end_offset);
    }
    let higher = epochs.iter().find(|(e, _)| *e > requested);
    let floor = epochs.iter().rev().find(|(e, _)| *e <= requested);
    match (higher, floor) {
        (None, _) => (-1, -1),
        (Some(&(_, start)), None) => (requested, start),
        (Some(&(_, start)), Some(&(e, _))) => (e, start),
    }
}

/// OffsetForLeaderEpoch (KIP-320), as a consumer asks it after a leader change: the
/// end offset of the requested leader epoch on this leader, so that the consumer can
/// tell whether the log was truncated below its position.
pub(super) fn offset_for_leader_epoch(
    call: &mut Call,
    r: &OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = per_partition(
        &r.topics,
        |t| (&t.topic, &t.partitions[..]),
        |t, p| {
            let result = call.on_leader(&t.topic, p.partition).and_then(|part| {
                // The caller's view of the leader epoch must be this leader's.
                match p.current_leader_epoch {
                    e if e >= 0 && e < part.leader_epoch => Err(ErrorCode::FENCED_LEADER_EPOCH),
                    e if e > part.leader_epoch => Err(ErrorCode::UNKNOWN_LEADER_EPOCH),
                    _ => Ok(end_offset_for_epoch(part, p.leader_epoch)),
                }
            });
            let (leader_epoch, end_offset) = *result.as_ref().unwrap_or(&(-1, -1));
            offset_for_leader_epoch_response::EpochEndOffset {
                partition: p.partition,
                error_code: error_code(&result),
                leader_epoch,
                end_offset,
                ..Default::default()
            }
        },
    );
    OffsetForLeaderEpochResponse {
        topics,
        ..Default::default()
    }
}

/// Who sends a commit: a member id, its generation (classic) or member epoch
/// (KIP-848), and its static instance id; no id and -1 outside the group.
pub(super) struct CommitBy<'a> {
    pub member: &'a str,
    pub generation: i32,
    pub instance: Option<&'a ByteString>,
}

/// Whether `group`'s coordinator takes a commit from `by` (Kafka's
/// `validateOffsetCommit`): a consumer group's (KIP-848) checks, else the classic
/// group's. `transactional` for TxnOffsetCommit, whose rules differ (see each).
pub(super) fn check_commit(
    cluster: &mut Cluster,
    group: &str,
    by: &CommitBy<'_>,
    version: i16,
    transactional: bool,
    now: Instant,
) -> Result<(), ErrorCode> {
    match cluster.consumer_groups.check_commit(
        group,
        by.member,
        by.generation,
        version,
        transactional,
    ) {
        Some(checked) => checked,
        None => cluster.groups.check_commit(
            group,
            by.generation,
            by.member,
            by.instance,
            transactional,
            now,
        ),
    }
}

/// OffsetCommit: by a group member for its generation (classic) or member epoch
/// (KIP-848, v9+), or for a group with no members (generation -1, no member id), as
/// consumers that assign partitions themselves and admin clients send. Each offset
/// committed is also written to `__consumer_offsets`.
pub(super) fn offset_commit(call: &mut Call, r: &OffsetCommitRequest) -> OffsetCommitResponse {
    let group = r.group_id.to_string();
    let (now, version) = (call.now, call.version);
    let group_error = call.group_error(&group, ApiKey::OffsetCommit).or_else(|| {
        let member = CommitBy {
            member: &r.member_id,
            generation: r.generation_id_or_member_epoch,
            instance: r.group_instance_id.as_ref(),
        };
        check_commit(call.cluster, &group, &member, version, false, now).err()
    });
    let cluster = &mut *call.cluster;
    let topics = per_partition(
        &r.topics,
        |t| (&t.name, &t.partitions[..]),
        |t, p| {
            let exists = cluster.topics.get(&*t.name).is_some_and(|topic| {
                (0..topic.partitions.len() as i32).contains(&p.partition_index)
            });
            let metadata_len = p.committed_metadata.as_ref().map_or(0, |m| m.len());
            let result = if let Some(e) = group_error {
                Err(e)
            } else if !exists {
                Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
            } else if metadata_len > MAX_OFFSET_METADATA {
                Err(ErrorCode::OFFSET_METADATA_TOO_LARGE)
            } else {
                let committed = CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                };
                cluster.store_committed(&group, &t.name, p.partition_index, committed, now);
                Ok(())
            };
            offset_commit_response::OffsetCommitResponsePartition {
                partition_index: p.partition_index,
                error_code: error_code(&result),
                ..Default::default()
            }
        },
    );
    OffsetCommitResponse {
        topics,
        ..Default::default()
    }
}

impl Cluster {
    /// Commits `committed` for `group`'s `topic`/`partition`, and writes it to
    /// `__consumer_offsets` as Kafka's coordinator does (an OffsetCommit, or a
    /// transaction's offsets when it commits).
    pub(crate) fn store_committed(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        committed: CommittedOffset,
        now: Instant,
    ) {
        let value = OffsetCommitValue {
            offset: committed.offset,
            leader_epoch: committed.leader_epoch,
            metadata: ByteString::from(committed.metadata.clone().unwrap_or_default()),
            commit_timestamp: self.wall_clock().ms(now),
            expire_timestamp: -1,
            ..Default::default()
        };
        self.outbox.extend(CoordinatorRecord::offset_commit(
            group,
            topic,
            partition,
            Some(&value),
        ));
        self.committed
            .insert((group.to_owned(), topic.to_owned(), partition), committed);
    }
}

/// A topic's partitions with what was committed for each (`None`: nothing).
type TopicOffsets = (String, Vec<(i32, Option<CommittedOffset>)>);

/// One group's committed offsets for the partitions asked (`None`: every partition
/// the group committed), as (topic, [(partition, offset or none)]).
fn committed_for(
    cluster: &Cluster,
    group: &str,
    asked: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<TopicOffsets> {
    match asked {
        Some(topics) => topics
            .into_iter()
            .map(|(name, parts)| {
                let found = parts
                    .into_iter()
                    .map(|p| {
                        let key = (group.to_owned(), name.clone(), p);
                        (p, cluster.committed.get(&key).cloned())
                    })
                    .collect();
                (name, found)
            })
            .collect(),
        None => {
            let mut out: Vec<TopicOffsets> = Vec::new();
            for ((g, topic, p), c) in &cluster.committed {
                if g != group {
                    continue;
                }
                match out.last_mut() {
                    Some((t, parts)) if t == topic => parts.push((*p, Some(c.clone()))),
                    _ => out.push((topic.clone(), vec![(*p, Some(c.clone()))])),
                }
            }
            out
        }
    }
}

/// The topics and partitions an OffsetFetch names (`None`: all the group has).
fn asked<'a>(topics: impl Iterator<Item = (&'a ByteString, &'a [i32])>) -> Vec<(String, Vec<i32>)> {
    topics
        .map(|(name, parts)| (name.to_string(), parts.to_vec()))
        .collect()
}

/// Builds an OffsetFetch response's topics from `found`: `partition` makes one
/// partition's entry.
fn offset_fetch_topics<TP, PP>(
    found: Vec<TopicOffsets>,
    partition: impl Fn(&str, i32, Option<&CommittedOffset>) -> PP,
) -> Vec<TP>
where
    TP: TopicResponse<PP>,
{
    found
        .into_iter()
        .map(|(name, parts)| {
            let parts = parts
                .iter()
                .map(|(p, c)| partition(&name, *p, c.as_ref()))
                .collect();
            TP::new(ByteString::from(name), parts)
        })
        .collect()
}

/// Whether an OffsetFetch asking for stable offsets (`require_stable`, v7+, KIP-447)
/// is refused `group`'s offset of `topic`/`partition`: an open transaction holds a
/// newer one, so the offset stored may be about to change.
fn unstable(
    cluster: &Cluster,
    require_stable: bool,
    group: &str,
    topic: &str,
    partition: i32,
) -> bool {
    require_stable
        && cluster
            .transactions
            .has_pending_offset(group, topic, partition)
}

/// The metadata OffsetFetch reports for a committed offset ("" when none).
fn reported_metadata(c: Option<&CommittedOffset>) -> Option<ByteString> {
    Some(ByteString::from(
        c.and_then(|c| c.metadata.clone()).unwrap_or_default(),
    ))
}

pub(super) fn offset_fetch(call: &mut Call, r: &OffsetFetchRequest) -> OffsetFetchResponse {
    let version = call.version;
    if version >= 8 {
        let groups = r
            .groups
            .iter()
            .map(|g| {
                // v9: a KIP-848 member reads its group's offsets at its own epoch.
                let error = call
                    .group_error(&g.group_id, ApiKey::OffsetFetch)
                    .or_else(|| {
                        call.cluster
                            .consumer_groups
                            .check_fetch(&g.group_id, g.member_id.as_deref(), g.member_epoch)
                            .err()
                    });
                let found = match error {
                    Some(_) => Vec::new(),
                    None => {
                        let names = g.topics.as_ref().map(|ts| {
                            asked(ts.iter().map(|t| (&t.name, &t.partition_indexes[..])))
                        });
                        committed_for(call.cluster, &g.group_id, names)
                    }
                };
                let group = &*g.group_id;
                let topics = offset_fetch_topics(found, |topic, p, c| {
                    if unstable(call.cluster, r.require_stable, group, topic, p) {
                        return offset_fetch_response::OffsetFetchResponsePartitions {
                            partition_index: p,
                            committed_offset: -1,
                            error_code: ErrorCode::UNSTABLE_OFFSET_COMMIT.code(),
                            ..Default::default()
                        };
                    }
                    offset_fetch_response::OffsetFetchResponsePartitions {
                        partition_index: p,
                        committed_offset: c.map_or(-1, |c| c.offset),
                        committed_leader_epoch: c.map_or(-1, |c| c.leader_epoch),
                        metadata: reported_metadata(c),
                        ..Default::default()
                    }
                });
                offset_fetch_response::OffsetFetchResponseGroup {
                    group_id: g.group_id.clone(),
                    topics,
                    error_code: error.map_or(0, ErrorCode::code),
                    ..Default::default()
                }
            })
            .collect();
        return OffsetFetchResponse {
            groups,
            ..Default::default()
        };
    }
    let error = call.group_error(&r.group_id, ApiKey::OffsetFetch);
    let cluster = &*call.cluster;
    let names = r
        .topics
        .as_ref()
        .map(|ts| asked(ts.iter().map(|t| (&t.name, &t.partition_indexes[..]))));
    // Before v2 there is no top-level error: it goes in every partition asked.
    let (found, partition_error) = match (error, version) {
        (Some(_), 2..) => (Vec::new(), None),
        (Some(e), _) => {
            let none = names
                .unwrap_or_default()
                .into_iter()
                .map(|(name, parts)| (name, parts.into_iter().map(|p| (p, None)).collect()))
                .collect();
            (none, Some(e))
        }
        (None, _) => (committed_for(cluster, &r.group_id, names), None),
    };
    let stable = version >= 7 && r.require_stable;
    let topics = offset_fetch_topics(found, |topic, p, c| {
        let error = partition_error.or_else(|| {
            unstable(cluster, stable, &r.group_id, topic, p)
                .then_some(ErrorCode::UNSTABLE_OFFSET_COMMIT)
        });
        match error {
            Some(e) => offset_fetch_response::OffsetFetchResponsePartition {
                partition_index: p,
                committed_offset: -1,
                error_code: e.code(),
                ..Default::default()
            },
            None => offset_fetch_response::OffsetFetchResponsePartition {
                partition_index: p,
                committed_offset: c.map_or(-1, |c| c.offset),
                committed_leader_epoch: if version >= 5 {
                    c.map_or(-1, |c| c.leader_epoch)
                } else {
                    -1
                },
                metadata: reported_metadata(c),
                ..Default::default()
            },
        }
    });
    OffsetFetchResponse {
        topics,
        error_code: if version >= 2 {
            error.map_or(0, ErrorCode::code)
        } else {
            0
        },
        ..Default::default()
    }
}
