//! The transactional producer's requests (KIP-98): InitProducerId with a
//! transactional id, AddPartitionsToTxn, AddOffsetsToTxn and TxnOffsetCommit,
//! EndTxn. Each goes to the transaction coordinator (TxnOffsetCommit to the
//! group's), found and retried by the client.

use std::sync::Arc;

use crate::client::consumer::TopicPartition;
use crate::client::metadata::Metadata;
use crate::client::op::{
    Built, CoordinatorKind, Ctx, Operation, Refresh, Reply, Step, Target, Versions, all, decode,
    version,
};
use crate::client::ops::admin::coordinator_step;
use crate::client::ops::offsets::CommitMember;
use crate::client::{ClientError, OpOutput};
use crate::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, ApiKey, EndTxnRequest, ErrorCode,
    InitProducerIdRequest, TxnOffsetCommitRequest, add_partitions_to_txn_request,
    txn_offset_commit_request,
};

/// The transaction coordinator of `id`.
pub(crate) fn txn_target(id: &Arc<str>) -> Target {
    Target::Coordinator {
        kind: CoordinatorKind::Transaction,
        key: id.clone(),
    }
}

fn finish_one(failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
    match failed.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(OpOutput::Transaction),
    }
}

/// InitProducerId: for an idempotent producer (`transactional` is `None`), a new
/// producer id from any broker; for a transactional one, the id's producer id with
/// a new epoch from its coordinator, which aborts what an earlier instance left
/// open. `current` names this producer's id and epoch for a bump (KIP-360, v3+).
pub(crate) struct InitProducerId {
    pub transactional: Option<Arc<str>>,
    pub timeout_ms: i32,
    pub current: Option<(i64, i16)>,
}

impl InitProducerId {
    /// The idempotent producer's.
    pub(crate) fn idempotent() -> Self {
        Self {
            transactional: None,
            timeout_ms: i32::MAX,
            current: None,
        }
    }
}

impl Operation for InitProducerId {
    fn name(&self) -> &'static str {
        "InitProducerId"
    }

    fn build(
        &mut self,
        _items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        let v = version(versions, ApiKey::InitProducerId)
            .ok_or(ClientError::Unsupported(ApiKey::InitProducerId))?;
        let (producer_id, producer_epoch) = match self.current {
            Some(current) if v >= 3 => current,
            _ => (-1, -1),
        };
        let request = InitProducerIdRequest {
            transactional_id: self.transactional.as_deref().map(Into::into),
            transaction_timeout_ms: self.timeout_ms,
            producer_id,
            producer_epoch,
            ..Default::default()
        };
        Ok(Built::new(request, v))
    }

    fn on_reply(&mut self, items: &[usize], reply: Reply, ctx: &mut Ctx<'_>) -> Vec<(usize, Step)> {
        let response = match decode::<InitProducerIdRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        let code = ErrorCode(response.error_code);
        if code.is_ok() {
            ctx.producer_id = Some((response.producer_id, response.producer_epoch));
        }
        all(items, || match &self.transactional {
            Some(id) => coordinator_step(
                ApiKey::InitProducerId,
                code,
                None,
                CoordinatorKind::Transaction,
                id,
            ),
            None => Step::from_code(ApiKey::InitProducerId, code, None, Refresh::Nothing),
        })
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        finish_one(failed)
    }
}

/// AddPartitionsToTxn (v0-3, the client's versions): every partition or none.
pub(crate) struct AddPartitions {
    pub id: Arc<str>,
    pub producer: (i64, i16),
    pub partitions: Vec<(Arc<str>, i32)>,
}

impl Operation for AddPartitions {
    fn name(&self) -> &'static str {
        "AddPartitionsToTxn"
    }

    fn build(
        &mut self,
        _items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        let v = version(versions, ApiKey::AddPartitionsToTxn)
            .map(|v| v.min(3))
            .ok_or(ClientError::Unsupported(ApiKey::AddPartitionsToTxn))?;
        let mut topics: Vec<add_partitions_to_txn_request::AddPartitionsToTxnTopic> = Vec::new();
        for (topic, partition) in &self.partitions {
            match topics.iter_mut().find(|t| *t.name == **topic) {
                Some(t) => t.partitions.push(*partition),
                None => topics.push(add_partitions_to_txn_request::AddPartitionsToTxnTopic {
                    name: (&**topic).into(),
                    partitions: std::iter::once(*partition).collect(),
                    ..Default::default()
                }),
            }
        }
        let request = AddPartitionsToTxnRequest {
            v3_and_below_transactional_id: (&*self.id).into(),
            v3_and_below_producer_id: self.producer.0,
            v3_and_below_producer_epoch: self.producer.1,
            v3_and_below_topics: topics,
            ..Default::default()
        };
        Ok(Built::new(request, v))
    }

    fn on_reply(
        &mut self,
        items: &[usize],
        reply: Reply,
        _ctx: &mut Ctx<'_>,
    ) -> Vec<(usize, Step)> {
        let response = match decode::<AddPartitionsToTxnRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        // The partition whose error decides: OPERATION_NOT_ATTEMPTED only says
        // another one failed.
        let mut code = ErrorCode(response.error_code);
        for t in &response.results_by_topic_v3_and_below {
            for p in &t.results_by_partition {
                let c = ErrorCode(p.partition_error_code);
                if !c.is_ok() && (code.is_ok() || code == ErrorCode::OPERATION_NOT_ATTEMPTED) {
                    code = c;
                }
            }
        }
        if code == ErrorCode::OPERATION_NOT_ATTEMPTED {
            code = ErrorCode::UNKNOWN_SERVER_ERROR;
        }
        // Every partition asked for must be answered.
        let answered = |(topic, partition): &(Arc<str>, i32)| {
            response.results_by_topic_v3_and_below.iter().any(|t| {
                *t.name == **topic
                    && t.results_by_partition
                        .iter()
                        .any(|p| p.partition_index == *partition)
            })
        };
        if code.is_ok() && !self.partitions.iter().all(answered) {
            let e = ClientError::InvalidResponse {
                api: ApiKey::AddPartitionsToTxn,
                detail: "a partition asked for is missing from the answer".into(),
            };
            return all(items, || Step::Fail(e.clone()));
        }
        all(items, || {
            coordinator_step(
                ApiKey::AddPartitionsToTxn,
                code,
                None,
                CoordinatorKind::Transaction,
                &self.id,
            )
        })
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        finish_one(failed)
    }
}

/// AddOffsetsToTxn at the transaction coordinator (item 0), then TxnOffsetCommit
/// at the group's (item 1, added when the first succeeds).
pub(crate) struct SendOffsets {
    pub id: Arc<str>,
    pub producer: (i64, i16),
    pub group: Arc<str>,
    pub member: CommitMember,
    pub offsets: Vec<(TopicPartition, i64)>,
}

impl SendOffsets {
    pub(crate) fn targets(&self) -> Vec<Target> {
        vec![txn_target(&self.id)]
    }
}

impl Operation for SendOffsets {
    fn name(&self) -> &'static str {
        "SendOffsetsToTransaction"
    }

    fn build(
        &mut self,
        items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        if items.contains(&0) {
            let v = version(versions, ApiKey::AddOffsetsToTxn)
                .ok_or(ClientError::Unsupported(ApiKey::AddOffsetsToTxn))?;
            let request = AddOffsetsToTxnRequest {
                transactional_id: (&*self.id).into(),
                producer_id: self.producer.0,
                producer_epoch: self.producer.1,
                group_id: (&*self.group).into(),
                ..Default::default()
            };
            return Ok(Built::new(request, v));
        }
        let v = version(versions, ApiKey::TxnOffsetCommit)
            .ok_or(ClientError::Unsupported(ApiKey::TxnOffsetCommit))?;
        let mut topics: Vec<txn_offset_commit_request::TxnOffsetCommitRequestTopic> = Vec::new();
        for (tp, offset) in &self.offsets {
            let p = txn_offset_commit_request::TxnOffsetCommitRequestPartition {
                partition_index: tp.partition,
                committed_offset: *offset,
                committed_leader_epoch: -1,
                committed_metadata: Some("".into()),
                ..Default::default()
            };
            match topics.iter_mut().find(|t| *t.name == *tp.topic) {
                Some(t) => t.partitions.push(p),
                None => topics.push(txn_offset_commit_request::TxnOffsetCommitRequestTopic {
                    name: (&*tp.topic).into(),
                    partitions: vec![p],
                    ..Default::default()
                }),
            }
        }
        let mut request = TxnOffsetCommitRequest {
            transactional_id: (&*self.id).into(),
            group_id: (&*self.group).into(),
            producer_id: self.producer.0,
            producer_epoch: self.producer.1,
            topics,
            ..Default::default()
        };
        // The member's identity (KIP-447) is a v3 field: an older coordinator
        // cannot check it, and takes the offsets by group alone (as librdkafka
        // sends them).
        if v >= 3 {
            request.generation_id = self.member.generation;
            request.member_id = self.member.member_id.as_str().into();
            request.group_instance_id = self.member.group_instance_id.as_deref().map(Into::into);
        }
        Ok(Built::new(request, v))
    }

    fn on_reply(&mut self, items: &[usize], reply: Reply, ctx: &mut Ctx<'_>) -> Vec<(usize, Step)> {
        if items.contains(&0) {
            let response = match decode::<AddOffsetsToTxnRequest>(&reply) {
                Ok(r) => r,
                Err(e) => return all(items, || Step::Fail(e.clone())),
            };
            let code = ErrorCode(response.error_code);
            if code.is_ok() {
                ctx.spawn.push(Target::Coordinator {
                    kind: CoordinatorKind::Group,
                    key: self.group.clone(),
                });
            }
            return all(items, || {
                coordinator_step(
                    ApiKey::AddOffsetsToTxn,
                    code,
                    None,
                    CoordinatorKind::Transaction,
                    &self.id,
                )
            });
        }
        let response = match decode::<TxnOffsetCommitRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        // One partition's error is the commit's: the coordinator refuses a
        // request whole (a coordinator moved, a fenced producer).
        let mut code = ErrorCode::NONE;
        for t in &response.topics {
            for p in &t.partitions {
                if code.is_ok() {
                    code = ErrorCode(p.error_code);
                }
            }
        }
        let answered = self.offsets.iter().all(|(tp, _)| {
            response.topics.iter().any(|t| {
                *t.name == *tp.topic
                    && t.partitions
                        .iter()
                        .any(|p| p.partition_index == tp.partition)
            })
        });
        if code.is_ok() && !answered {
            let e = ClientError::InvalidResponse {
                api: ApiKey::TxnOffsetCommit,
                detail: "a partition asked for is missing from the answer".into(),
            };
            return all(items, || Step::Fail(e.clone()));
        }
        all(items, || {
            coordinator_step(
                ApiKey::TxnOffsetCommit,
                code,
                None,
                CoordinatorKind::Group,
                &self.group,
            )
        })
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        finish_one(failed)
    }
}

/// EndTxn: commit or abort (v0-4: the epoch stays; KIP-890's v5 is not asked).
pub(crate) struct EndTxn {
    pub id: Arc<str>,
    pub producer: (i64, i16),
    pub commit: bool,
}

impl Operation for EndTxn {
    fn name(&self) -> &'static str {
        "EndTxn"
    }

    fn build(
        &mut self,
        _items: &[usize],
        versions: &Versions,
        _m: &Metadata,
    ) -> Result<Built, ClientError> {
        let v = version(versions, ApiKey::EndTxn)
            .map(|v| v.min(4))
            .ok_or(ClientError::Unsupported(ApiKey::EndTxn))?;
        let request = EndTxnRequest {
            transactional_id: (&*self.id).into(),
            producer_id: self.producer.0,
            producer_epoch: self.producer.1,
            committed: self.commit,
            ..Default::default()
        };
        Ok(Built::new(request, v))
    }

    fn on_reply(
        &mut self,
        items: &[usize],
        reply: Reply,
        _ctx: &mut Ctx<'_>,
    ) -> Vec<(usize, Step)> {
        let response = match decode::<EndTxnRequest>(&reply) {
            Ok(r) => r,
            Err(e) => return all(items, || Step::Fail(e.clone())),
        };
        let code = ErrorCode(response.error_code);
        all(items, || {
            coordinator_step(
                ApiKey::EndTxn,
                code,
                None,
                CoordinatorKind::Transaction,
                &self.id,
            )
        })
    }

    fn finish(self: Box<Self>, failed: Vec<(usize, ClientError)>) -> Result<OpOutput, ClientError> {
        finish_one(failed)
    }
}
