//! A transactional producer's state (KIP-98): which phase its transaction is in,
//! which partitions the coordinator was told of, and the application's call that
//! waits on it.
//!
//! The rules, as the Java client and librdkafka keep them:
//! - records are taken only inside a transaction, and a partition's batches go
//!   out only after AddPartitionsToTxn put it in the transaction (asked as soon
//!   as records for it are buffered, so the round trip overlaps the linger);
//! - a commit first sends and settles every record; if one failed, or a partition
//!   or an offset commit was refused, the transaction can only be aborted;
//! - an abort fails what was not sent, waits for what is on the wire, then ends
//!   the transaction; if sequence numbers were lost with failed batches the
//!   producer takes a new epoch (InitProducerId again) before the next one;
//! - a fenced producer (a newer instance with its id) cannot go on.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{ClientError, OpId, OpOutput, TransactionError};
use crate::messages::ErrorCode;

/// Where a transactional producer is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Phase {
    /// `init_transactions` not called yet.
    Uninitialized,
    /// The first InitProducerId is out.
    Initializing,
    /// An abort's epoch bump (InitProducerId) is out: the abort is not over.
    Bumping,
    /// No transaction open.
    Ready,
    /// A transaction is open.
    InTransaction,
    /// Commit asked: records are being sent and settled.
    Committing,
    /// Abort asked: what is on the wire is settling.
    Aborting,
    /// EndTxn is out.
    Ending { commit: bool },
    /// The producer cannot go on.
    Fatal(ClientError),
}

/// What the transaction asks of the client.
#[derive(Debug)]
pub(crate) enum TxnWant {
    /// InitProducerId with the transactional id.
    Init,
    /// AddPartitionsToTxn for these partitions.
    AddPartitions(Vec<(Arc<str>, i32)>),
    /// EndTxn.
    End { commit: bool },
}

/// The application's call waiting on a phase to end.
#[derive(Debug)]
struct Waiter {
    op: OpId,
    deadline: Instant,
    timeout: Duration,
    operation: &'static str,
}

#[derive(Debug)]
pub(crate) struct Txn {
    pub(crate) id: Arc<str>,
    pub(crate) phase: Phase,
    /// Partitions the coordinator put in the open transaction.
    added: BTreeSet<(Arc<str>, i32)>,
    /// An AddPartitionsToTxn on the wire.
    adding: bool,
    /// Offsets being added to the transaction (AddOffsetsToTxn, TxnOffsetCommit).
    pub(crate) offsets_in_flight: usize,
    /// Whether the coordinator knows of the open transaction (a partition or a
    /// group was added): only then does it end with EndTxn.
    started: bool,
    /// The first failure of the open transaction: it can only be aborted.
    failure: Option<ClientError>,
    /// Sequence numbers were lost (a batch failed or was dropped after it was
    /// numbered): a new epoch before the next transaction.
    pub(crate) bump: bool,
    waiter: Option<Waiter>,
    /// EndTxn failed without an answer that ends the transaction: sent again when
    /// the application calls commit (or abort) again.
    end_failed: bool,
    /// ... and it did.
    resend_end: bool,
    /// That bump failed: tried again when the application calls abort again.
    bump_held: bool,
    /// The application's `send_offsets_to_transaction` calls not ended or
    /// cancelled.
    pub(crate) offsets_calls: BTreeSet<OpId>,
    /// `ProducerConfig::planted_bug_commit_before_records_settle`.
    pub(crate) planted_early_commit: bool,
    /// Calls that ended, for the client to report.
    pub(crate) done: VecDeque<(OpId, Result<OpOutput, ClientError>)>,
}

/// How a transactional call ends well.
fn ok() -> Result<OpOutput, ClientError> {
    Ok(OpOutput::Transaction)
}

fn state(operation: &'static str, state: &'static str) -> ClientError {
    ClientError::Transaction(TransactionError::State { operation, state })
}

/// Whether a coordinator's answer means the producer was fenced or may not go on.
pub(crate) fn is_fatal(e: &ClientError) -> bool {
    matches!(e, ClientError::Transaction(TransactionError::Fatal(_)))
        || e.error_code().is_some_and(|c| {
            c == ErrorCode::PRODUCER_FENCED
                || c == ErrorCode::INVALID_PRODUCER_EPOCH
                || c == ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
                || c == ErrorCode::CLUSTER_AUTHORIZATION_FAILED
                || c == ErrorCode::UNSUPPORTED_VERSION
                || c == ErrorCode::INVALID_PRODUCER_ID_MAPPING
        })
}

impl Txn {
    pub(crate) fn new(id: &str) -> Self {
        Self {
            id: Arc::from(id),
            phase: Phase::Uninitialized,
            added: BTreeSet::new(),
            adding: false,
            offsets_in_flight: 0,
            started: false,
            failure: None,
            bump: false,
            waiter: None,
            end_failed: false,
            resend_end: false,
            bump_held: false,
            planted_early_commit: false,
            offsets_calls: BTreeSet::new(),
            done: VecDeque::new(),
        }
    }

    /// Why a record cannot be taken now, if it cannot.
    pub(crate) fn refuse_send(&self) -> Option<TransactionError> {
        match &self.phase {
            Phase::InTransaction => self
                .failure
                .clone()
                .map(|e| TransactionError::Abortable(Box::new(e))),
            Phase::Fatal(e) => Some(TransactionError::Fatal(Box::new(e.clone()))),
            Phase::Uninitialized | Phase::Initializing | Phase::Ready => {
                Some(TransactionError::State {
                    operation: "send",
                    state: "no transaction is open (call begin_transaction first)",
                })
            }
            Phase::Committing | Phase::Aborting | Phase::Ending { .. } | Phase::Bumping => {
                Some(TransactionError::State {
                    operation: "send",
                    state: "the transaction is ending",
                })
            }
        }
    }

    /// Whether a partition's batches may go out now.
    pub(crate) fn may_send(&self, key: &(Arc<str>, i32)) -> bool {
        matches!(
            self.phase,
            Phase::InTransaction | Phase::Committing | Phase::Aborting
        ) && self.added.contains(key)
    }

    /// Whether partitions may be added now (and which of these still need it).
    pub(crate) fn want_added(&mut self, keys: Vec<(Arc<str>, i32)>) -> Option<TxnWant> {
        if self.adding
            || self.failure.is_some()
            || !matches!(self.phase, Phase::InTransaction | Phase::Committing)
        {
            return None;
        }
        let keys: Vec<_> = keys
            .into_iter()
            .filter(|k| !self.added.contains(k))
            .collect();
        if keys.is_empty() {
            return None;
        }
        self.adding = true;
        Some(TxnWant::AddPartitions(keys))
    }

    /// AddPartitionsToTxn ended.
    pub(crate) fn on_added(&mut self, keys: Vec<(Arc<str>, i32)>, result: Result<(), ClientError>) {
        self.adding = false;
        match result {
            Ok(()) => {
                self.started = true;
                self.added.extend(keys);
            }
            Err(e) => self.fail(e),
        }
    }

    /// Something of the open transaction failed: it can only be aborted now (or
    /// the producer cannot go on).
    pub(crate) fn fail(&mut self, e: ClientError) {
        if is_fatal(&e) {
            self.fatal(e);
        } else if self.failure.is_none() {
            tracing::debug!(transactional_id = %self.id, error = %e, "the transaction must be aborted");
            self.failure = Some(e);
        }
    }

    fn fatal(&mut self, e: ClientError) {
        let e = match e {
            ClientError::Transaction(TransactionError::Fatal(inner)) => *inner,
            e => e,
        };
        tracing::warn!(transactional_id = %self.id, error = %e, "the transactional producer cannot go on");
        if let Some(w) = self.waiter.take() {
            self.done.push_back((
                w.op,
                Err(ClientError::Transaction(TransactionError::Fatal(Box::new(
                    e.clone(),
                )))),
            ));
        }
        self.phase = Phase::Fatal(e);
    }

    /// The error a record of the open transaction fails with when it cannot be
    /// sent (a lost sequence, its delivery timeout).
    pub(crate) fn record_failed(&mut self, e: &ClientError) {
        if matches!(
            self.phase,
            Phase::InTransaction | Phase::Committing | Phase::Aborting
        ) {
            self.fail(e.clone());
        }
    }

    /// Offsets were added to the transaction (or failed to be).
    pub(crate) fn on_offsets(&mut self, result: &Result<OpOutput, ClientError>) {
        self.offsets_in_flight = self.offsets_in_flight.saturating_sub(1);
        match result {
            Ok(_) => {}
            Err(e) => self.fail(e.clone()),
        }
    }

    /// How a transaction not yet ended ends when the client closes: `Some(true)`
    /// when it is being committed (the commit goes on), `Some(false)` when it is
    /// open with nothing decided or being aborted; `None` with none open.
    pub(crate) fn end_on_close(&self) -> Option<bool> {
        match self.phase {
            Phase::Committing | Phase::Ending { commit: true } => Some(true),
            Phase::InTransaction
            | Phase::Aborting
            | Phase::Ending { commit: false }
            | Phase::Bumping => Some(false),
            _ => None,
        }
    }

    /// Offsets are being added: the group is in the transaction from now on.
    pub(crate) fn offsets_started(&mut self) -> Result<(), ClientError> {
        if let Some(e) = self.refuse_send() {
            return Err(ClientError::Transaction(match e {
                TransactionError::State { state, .. } => TransactionError::State {
                    operation: "send_offsets_to_transaction",
                    state,
                },
                e => e,
            }));
        }
        self.offsets_in_flight += 1;
        self.started = true;
        Ok(())
    }

    fn wait(&mut self, op: OpId, now: Instant, timeout: Duration, operation: &'static str) {
        if let Some(old) = self.waiter.take() {
            // The same call again: the earlier one is answered as this one will be.
            self.done.push_back((
                old.op,
                Err(state(operation, "called again before it ended")),
            ));
        }
        self.waiter = Some(Waiter {
            op,
            deadline: now + timeout,
            timeout,
            operation,
        });
    }

    fn answer(&mut self, result: Result<OpOutput, ClientError>) {
        if let Some(w) = self.waiter.take() {
            self.done.push_back((w.op, result));
        }
    }

    /// `init_transactions`.
    pub(crate) fn init(&mut self, op: OpId, now: Instant, timeout: Duration) -> Option<TxnWant> {
        match &self.phase {
            Phase::Uninitialized => {
                self.phase = Phase::Initializing;
                self.wait(op, now, timeout, "init_transactions");
                Some(TxnWant::Init)
            }
            Phase::Initializing => {
                self.wait(op, now, timeout, "init_transactions");
                None
            }
            Phase::Fatal(e) => {
                let e = TransactionError::Fatal(Box::new(e.clone()));
                self.done.push_back((op, Err(ClientError::Transaction(e))));
                None
            }
            _ => {
                self.done.push_back((
                    op,
                    Err(state("init_transactions", "the producer is initialized")),
                ));
                None
            }
        }
    }

    /// InitProducerId answered.
    pub(crate) fn on_init(&mut self, result: Result<(), ClientError>) {
        let bumping = match self.phase {
            Phase::Initializing => false,
            Phase::Bumping => true,
            _ => return,
        };
        match result {
            Ok(()) => {
                self.phase = Phase::Ready;
                self.bump = false;
                self.answer(ok());
            }
            Err(e) if is_fatal(&e) => self.fatal(e),
            Err(e) if bumping => {
                // The abort's new epoch is not there yet: the abort is not over,
                // and calling it again asks again.
                self.phase = Phase::Aborting;
                self.bump_held = true;
                self.answer(Err(e));
            }
            Err(e) => {
                // A timeout or a coordinator not found: the call may be made again.
                self.phase = Phase::Uninitialized;
                self.answer(Err(e));
            }
        }
    }

    /// `begin_transaction`.
    pub(crate) fn begin(&mut self) -> Result<(), ClientError> {
        match &self.phase {
            Phase::Ready => {
                self.phase = Phase::InTransaction;
                Ok(())
            }
            Phase::Fatal(e) => Err(ClientError::Transaction(TransactionError::Fatal(Box::new(
                e.clone(),
            )))),
            Phase::Bumping => Err(state(
                "begin_transaction",
                "the last abort is not over (call abort_transaction again)",
            )),
            Phase::Uninitialized | Phase::Initializing => Err(state(
                "begin_transaction",
                "the producer is not initialized (call init_transactions first)",
            )),
            _ => Err(state("begin_transaction", "a transaction is open")),
        }
    }

    /// `commit_transaction`.
    pub(crate) fn commit(&mut self, op: OpId, now: Instant, timeout: Duration) {
        match &self.phase {
            Phase::InTransaction => {
                if let Some(e) = &self.failure {
                    let e = TransactionError::Abortable(Box::new(e.clone()));
                    self.done.push_back((op, Err(ClientError::Transaction(e))));
                    return;
                }
                self.phase = Phase::Committing;
                self.wait(op, now, timeout, "commit_transaction");
            }
            // Called again after a timeout: wait for the same end.
            Phase::Committing | Phase::Ending { commit: true } => {
                self.wait(op, now, timeout, "commit_transaction");
                self.resend_end = std::mem::take(&mut self.end_failed);
            }
            Phase::Fatal(e) => {
                let e = TransactionError::Fatal(Box::new(e.clone()));
                self.done.push_back((op, Err(ClientError::Transaction(e))));
            }
            _ => self.done.push_back((
                op,
                Err(state("commit_transaction", "no transaction is open")),
            )),
        }
    }

    /// `abort_transaction`: true if what was not sent must be failed now.
    pub(crate) fn abort(&mut self, op: OpId, now: Instant, timeout: Duration) -> bool {
        match &self.phase {
            Phase::InTransaction | Phase::Committing => {
                self.phase = Phase::Aborting;
                self.wait(op, now, timeout, "abort_transaction");
                true
            }
            // An abort whose epoch bump is still out: the same abort.
            Phase::Bumping => {
                self.wait(op, now, timeout, "abort_transaction");
                false
            }
            Phase::Aborting | Phase::Ending { commit: false } => {
                self.wait(op, now, timeout, "abort_transaction");
                self.resend_end = std::mem::take(&mut self.end_failed);
                self.bump_held = false;
                false
            }
            // A commit whose EndTxn failed: the coordinator decides; asking it to
            // abort is answered by its state.
            Phase::Ending { commit: true } if self.end_failed => {
                self.end_failed = false;
                self.resend_end = true;
                self.phase = Phase::Ending { commit: false };
                self.wait(op, now, timeout, "abort_transaction");
                false
            }
            Phase::Fatal(e) => {
                let e = TransactionError::Fatal(Box::new(e.clone()));
                self.done.push_back((op, Err(ClientError::Transaction(e))));
                false
            }
            _ => {
                self.done.push_back((
                    op,
                    Err(state("abort_transaction", "no transaction is open")),
                ));
                false
            }
        }
    }

    /// Moves the phase on once what it waits for has settled: `idle` when the
    /// producer holds no record (or, aborting, none on the wire).
    pub(crate) fn drive(&mut self, now: Instant, idle: bool) -> Option<TxnWant> {
        if let Some(w) = &self.waiter
            && now >= w.deadline
        {
            let w = self.waiter.take()?;
            // The work goes on; calling again waits for it.
            self.done.push_back((
                w.op,
                Err(ClientError::Timeout {
                    operation: w.operation,
                    timeout: w.timeout,
                    last_error: None,
                }),
            ));
        }
        let settled = (idle || self.planted_early_commit && self.phase == Phase::Committing)
            && !self.adding
            && self.offsets_in_flight == 0;
        if let Phase::Ending { commit } = self.phase
            && std::mem::take(&mut self.resend_end)
        {
            return Some(TxnWant::End { commit });
        }
        match self.phase {
            // A failed transaction cannot commit: said at once (records of it that
            // cannot be sent wait for the abort).
            Phase::Committing if self.failure.is_some() => {
                let e = self.failure.clone().map(Box::new)?;
                self.phase = Phase::InTransaction;
                self.answer(Err(ClientError::Transaction(TransactionError::Abortable(
                    e,
                ))));
                None
            }
            Phase::Committing if settled => {
                if self.started {
                    self.phase = Phase::Ending { commit: true };
                    Some(TxnWant::End { commit: true })
                } else {
                    self.ended()
                }
            }
            Phase::Aborting if settled && !self.bump_held => {
                if self.started {
                    self.phase = Phase::Ending { commit: false };
                    Some(TxnWant::End { commit: false })
                } else {
                    self.ended()
                }
            }
            _ => None,
        }
    }

    /// The transaction ended (EndTxn answered, or nothing to tell).
    fn ended(&mut self) -> Option<TxnWant> {
        self.added.clear();
        self.started = false;
        self.failure = None;
        if self.bump {
            // The call is answered once the new epoch is there.
            self.phase = Phase::Bumping;
            Some(TxnWant::Init)
        } else {
            self.phase = Phase::Ready;
            self.answer(ok());
            None
        }
    }

    /// EndTxn answered.
    pub(crate) fn on_end(&mut self, result: Result<(), ClientError>) -> Option<TxnWant> {
        if !matches!(self.phase, Phase::Ending { .. }) {
            return None;
        }
        match result {
            Ok(()) => self.ended(),
            Err(e) if e.is_retriable() && !is_fatal(&e) => {
                // Not known to have ended (a timeout, the coordinator not
                // reached): the same call again sends EndTxn again.
                self.end_failed = true;
                self.answer(Err(e));
                None
            }
            Err(e) => {
                // The coordinator refused to end it: nothing more can be done
                // with this producer's transaction.
                self.fatal(e);
                None
            }
        }
    }

    /// The fatal error, once the producer cannot go on.
    pub(crate) fn fatal_error(&self) -> Option<&ClientError> {
        match &self.phase {
            Phase::Fatal(e) => Some(e),
            _ => None,
        }
    }

    /// The earliest deadline of a waiting call.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.waiter.as_ref().map(|w| w.deadline)
    }

    /// The application gave up on call `op`: it is not answered (the work goes on).
    pub(crate) fn cancel(&mut self, op: OpId) {
        if self.waiter.as_ref().is_some_and(|w| w.op == op) {
            self.waiter = None;
        }
        self.offsets_calls.remove(&op);
        self.done.retain(|(o, _)| *o != op);
    }

    /// The producer is closing: a waiting call ends.
    pub(crate) fn close(&mut self) {
        self.answer(Err(ClientError::Closed));
    }
}
