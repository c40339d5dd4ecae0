//! The transactional producer's calls on the [`Client`]: records sent between
//! [`begin_transaction`](Client::begin_transaction) and
//! [`commit_transaction`](Client::commit_transaction) are read by read_committed
//! consumers all together or, after
//! [`abort_transaction`](Client::abort_transaction), not at all.

use std::sync::Arc;
use std::time::Instant;

use super::ops::transactions::{AddPartitions, EndTxn, InitProducerId, SendOffsets, txn_target};
use super::producer::{ProducerId, TxnWant, is_fatal};
use super::{
    Client, ClientError, Event, Internal, OpId, OpOutput, TopicPartition, TransactionError,
};

/// Which transactional request an internal operation is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TxnCall {
    Init,
    AddPartitions(Vec<(Arc<str>, i32)>),
    /// The application's `send_offsets_to_transaction`.
    Offsets(OpId),
    End,
}

impl Client {
    /// Readies a transactional producer
    /// ([`ProducerConfig::transactional_id`](super::ProducerConfig::transactional_id)):
    /// finds its transaction coordinator and takes the id's producer id with a new
    /// epoch, which fences every earlier instance with the same id and aborts what
    /// one left open. Call once, before the first
    /// [`begin_transaction`](Self::begin_transaction). The operation ends with
    /// [`OpOutput::Transaction`]; after a timeout ([`ClientError::Timeout`]) the
    /// lookup goes on, and calling again waits for it.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, _) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Client, ClientConfig, OpOutput, ProducerRecord};
    /// let mut config = ClientConfig::new(&sim.bootstrap())?;
    /// config.producer.transactional_id = Some("payments-1".into());
    /// let now = sim.now();
    /// let host = sim.add_client(Client::new(config, now));
    /// let op = sim.client(host).init_transactions(now);
    /// let done = sim.run_until_done(host, op, Duration::from_secs(10));
    /// assert_eq!(done, Ok(OpOutput::Transaction));
    ///
    /// let now = sim.now();
    /// sim.client(host).begin_transaction(now)?;
    /// sim.client(host).send(now, ProducerRecord::new("orders", "paid"))?;
    /// let op = sim.client(host).commit_transaction(now);
    /// let done = sim.run_until_done(host, op, Duration::from_secs(10));
    /// assert_eq!(done, Ok(OpOutput::Transaction));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn init_transactions(&mut self, now: Instant) -> OpId {
        let (op, timeout) = self.txn_call(now);
        if let Some(p) = self.txn_producer(op)
            && let Some(txn) = p.txn.as_mut()
            && let Some(w) = txn.init(op, now, timeout)
        {
            self.start_txn(now, w);
        }
        self.emit_txn_done();
        self.drive(now);
        op
    }

    /// Opens a transaction: records sent from now on belong to it until
    /// [`commit_transaction`](Self::commit_transaction) or
    /// [`abort_transaction`](Self::abort_transaction). The coordinator hears of it
    /// with the first record's partition (or offsets sent).
    ///
    /// ```
    /// use kafka_sansio::client::{Client, ClientConfig, ClientError, TransactionError};
    /// # #[allow(clippy::disallowed_methods)]
    /// let now = std::time::Instant::now();
    /// let mut config = ClientConfig::new("localhost:9092")?;
    /// config.producer.transactional_id = Some("payments-1".into());
    /// let mut client = Client::new(config, now);
    /// // Not before init_transactions has ended.
    /// let refused = client.begin_transaction(now).unwrap_err();
    /// assert!(matches!(refused, ClientError::Transaction(TransactionError::State { .. })));
    /// # Ok::<(), ClientError>(())
    /// ```
    ///
    /// # Errors
    /// [`TransactionError::NotTransactional`], [`TransactionError::State`] when the
    /// producer is not initialized or a transaction is open, or
    /// [`TransactionError::Fatal`] once it was fenced.
    pub fn begin_transaction(&mut self, now: Instant) -> Result<(), ClientError> {
        self.advance(now);
        self.producer_mut()
            .txn
            .as_mut()
            .ok_or(ClientError::Transaction(TransactionError::NotTransactional))?
            .begin()
    }

    /// Commits consumed offsets as part of the open transaction (the
    /// consume-transform-produce loop): the group's committed offsets move if and
    /// only if the transaction commits. `offsets` are the next offsets to read. If
    /// this client is a member of `group`, its generation and member id go with
    /// them (KIP-447). If it lost its partitions after
    /// [`poll_records`](Self::poll_records) gave it this transaction's records
    /// (kicked out for not polling, its session expired), the identity those
    /// records were polled under goes, whether it is out of the group now or has
    /// joined again since under a new one: the coordinator then refuses offsets of
    /// records another member may have processed meanwhile. (A transaction's
    /// records are taken to be those polled since the last
    /// [`commit_transaction`](Self::commit_transaction) or
    /// [`abort_transaction`](Self::abort_transaction) call, and those of the last
    /// poll before it, which an application may still hold.) The operation ends
    /// with [`OpOutput::Transaction`]; if it fails, it ends with
    /// [`TransactionError::Abortable`] (or [`TransactionError::Fatal`] when the
    /// producer was fenced) and the transaction can only be aborted.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, _) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Client, ClientConfig, OpOutput, ProducerRecord, TopicPartition};
    /// let mut config = ClientConfig::new(&sim.bootstrap())?;
    /// config.producer.transactional_id = Some("enricher-1".into());
    /// let now = sim.now();
    /// let host = sim.add_client(Client::new(config, now));
    /// let op = sim.client(host).init_transactions(now);
    /// sim.run_until_done(host, op, Duration::from_secs(10))?;
    /// let now = sim.now();
    /// sim.client(host).begin_transaction(now)?;
    /// sim.client(host).send(now, ProducerRecord::new("orders", "enriched"))?;
    /// let read = vec![(TopicPartition::new("orders", 0), 42)];
    /// let op = sim.client(host).send_offsets_to_transaction(now, "enricher", read);
    /// assert_eq!(sim.run_until_done(host, op, Duration::from_secs(10)), Ok(OpOutput::Transaction));
    /// let now = sim.now();
    /// let op = sim.client(host).commit_transaction(now);
    /// sim.run_until_done(host, op, Duration::from_secs(10))?;
    /// // The group's offset moved with the commit.
    /// let now = sim.now();
    /// let op = sim.client(host).fetch_committed(now, "enricher", vec![TopicPartition::new("orders", 0)]);
    /// let Ok(OpOutput::Committed(c)) = sim.run_until_done(host, op, Duration::from_secs(10)) else { panic!() };
    /// assert_eq!(c[0].offset, Ok(42));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_offsets_to_transaction(
        &mut self,
        now: Instant,
        group: &str,
        offsets: Vec<(TopicPartition, i64)>,
    ) -> OpId {
        let (op, timeout) = self.txn_call(now);
        if let Some(e) = offsets
            .iter()
            .find_map(|(tp, o)| super::ops::offsets::invalid_commit(tp, *o))
        {
            self.events.push_back(Event::Done { op, result: Err(e) });
            return op;
        }
        let member = self
            .group
            .as_deref()
            .filter(|g| &**g.group_id() == group)
            .map_or_else(super::CommitMember::none, |g| g.txn_commit_member());
        let Some(p) = self.txn_producer(op) else {
            self.emit_txn_done();
            return op;
        };
        let (Some(txn), ProducerId::Ready { id, epoch }) = (p.txn.as_mut(), p.pid) else {
            self.events.push_back(Event::Done {
                op,
                result: Err(ClientError::Transaction(TransactionError::State {
                    operation: "send_offsets_to_transaction",
                    state: "the producer is not initialized",
                })),
            });
            return op;
        };
        if let Err(e) = txn.offsets_started() {
            self.events.push_back(Event::Done { op, result: Err(e) });
            return op;
        }
        txn.offsets_calls.insert(op);
        let call = SendOffsets {
            id: txn.id.clone(),
            producer: (id, epoch),
            group: Arc::from(group),
            member,
            offsets,
        };
        let targets = call.targets();
        let started = self.start_entry(
            now,
            Box::new(call),
            targets,
            Some(timeout),
            Some(Internal::Txn(TxnCall::Offsets(op))),
        );
        self.dispatch(started, now);
        self.drive(now);
        op
    }

    /// Commits the open transaction: sends every record still buffered, waits
    /// until each is written, then has the coordinator commit (EndTxn). The
    /// operation ends with [`OpOutput::Transaction`] once read_committed consumers
    /// can read the transaction's records. If a record failed, or a partition or
    /// offsets were refused, it ends with [`TransactionError::Abortable`] and the
    /// transaction can only be aborted; after a timeout, calling it again waits
    /// for the same commit.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, _) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Client, ClientConfig, ClientError, OpOutput, ProducerRecord, TransactionError};
    /// let mut config = ClientConfig::new(&sim.bootstrap())?;
    /// config.producer.transactional_id = Some("payments-1".into());
    /// let now = sim.now();
    /// let host = sim.add_client(Client::new(config, now));
    /// let op = sim.client(host).init_transactions(now);
    /// sim.run_until_done(host, op, Duration::from_secs(10))?;
    /// // Nothing is open: there is nothing to commit.
    /// let now = sim.now();
    /// let op = sim.client(host).commit_transaction(now);
    /// let refused = sim.run_until_done(host, op, Duration::from_secs(10)).unwrap_err();
    /// assert!(matches!(refused, ClientError::Transaction(TransactionError::State { .. })));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit_transaction(&mut self, now: Instant) -> OpId {
        let (op, timeout) = self.txn_call(now);
        self.group_transaction_ended();
        if let Some(p) = self.txn_producer(op)
            && let Some(txn) = p.txn.as_mut()
        {
            txn.commit(op, now, timeout);
            p.flush();
        }
        self.emit_txn_done();
        self.drive(now);
        op
    }

    /// Aborts the open transaction: records not yet sent fail with
    /// [`TransactionError::Aborted`], those on the wire settle, and the coordinator
    /// writes abort markers, so read_committed consumers skip everything it wrote.
    /// Offsets sent to it are dropped. The operation ends with
    /// [`OpOutput::Transaction`], the producer ready for the next transaction.
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// # let (mut sim, _) = kafka_sansio::doc_support::sim();
    /// use std::time::Duration;
    /// use kafka_sansio::client::{Client, ClientConfig, OpOutput, ProducerRecord};
    /// let mut config = ClientConfig::new(&sim.bootstrap())?;
    /// config.producer.transactional_id = Some("payments-1".into());
    /// let now = sim.now();
    /// let host = sim.add_client(Client::new(config, now));
    /// let op = sim.client(host).init_transactions(now);
    /// sim.run_until_done(host, op, Duration::from_secs(10))?;
    /// let now = sim.now();
    /// sim.client(host).begin_transaction(now)?;
    /// sim.client(host).send(now, ProducerRecord::new("orders", "never read committed"))?;
    /// let op = sim.client(host).abort_transaction(now);
    /// assert_eq!(sim.run_until_done(host, op, Duration::from_secs(10)), Ok(OpOutput::Transaction));
    /// // The next transaction may begin.
    /// let now = sim.now();
    /// sim.client(host).begin_transaction(now)?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn abort_transaction(&mut self, now: Instant) -> OpId {
        let (op, timeout) = self.txn_call(now);
        self.group_transaction_ended();
        if let Some(p) = self.txn_producer(op)
            && let Some(txn) = p.txn.as_mut()
            && txn.abort(op, now, timeout)
        {
            p.abort_unsent();
        }
        self.emit_txn_done();
        self.emit_deliveries();
        self.drive(now);
        op
    }

    /// The application ends its transaction: records it polls from now on are
    /// the next one's input.
    fn group_transaction_ended(&mut self) {
        if let Some(g) = self.group.as_deref_mut() {
            g.transaction_ended();
        }
    }

    /// An operation that ended already, with `result` (for the facades' calls that
    /// need no round trip).
    #[cfg_attr(
        not(any(feature = "tokio", feature = "smol", feature = "blocking")),
        allow(dead_code)
    )]
    pub(crate) fn answered(&mut self, result: Result<OpOutput, ClientError>) -> OpId {
        let op = OpId(self.next_op);
        self.next_op += 1;
        self.events.push_back(Event::Done { op, result });
        op
    }

    /// A new call's id and timeout.
    fn txn_call(&mut self, now: Instant) -> (OpId, std::time::Duration) {
        self.advance(now);
        let op = OpId(self.next_op);
        self.next_op += 1;
        let timeout = self
            .next_timeout
            .take()
            .unwrap_or(self.config.operation_timeout);
        (op, timeout)
    }

    /// How the transaction not yet ended should end before the client closes
    /// (see `Txn::end_on_close`): the facades' `close` waits for it.
    #[cfg_attr(
        not(any(feature = "tokio", feature = "smol", feature = "blocking")),
        allow(dead_code)
    )]
    pub(crate) fn transaction_end_on_close(&self) -> Option<bool> {
        self.producer
            .as_deref()
            .and_then(|p| p.txn.as_ref())
            .and_then(super::producer::Txn::end_on_close)
    }

    /// The producer, if it is transactional; otherwise `op` fails.
    fn txn_producer(&mut self, op: OpId) -> Option<&mut super::producer::Producer> {
        if self.closed {
            self.events.push_back(Event::Done {
                op,
                result: Err(ClientError::Closed),
            });
            return None;
        }
        if self.producer_mut().txn.is_none() {
            self.events.push_back(Event::Done {
                op,
                result: Err(ClientError::Transaction(TransactionError::NotTransactional)),
            });
            return None;
        }
        self.producer.as_deref_mut()
    }

    /// Starts what the transaction asks of the coordinator; the operation's id, to
    /// dispatch.
    pub(crate) fn start_txn(&mut self, now: Instant, want: TxnWant) -> Option<OpId> {
        let p = self.producer.as_deref()?;
        let txn = p.txn.as_ref()?;
        let id = txn.id.clone();
        let target = txn_target(&id);
        let current = match p.pid {
            ProducerId::Ready { id, epoch } | ProducerId::BumpWanted { id, epoch } => {
                Some((id, epoch))
            }
            _ => None,
        };
        let (op, call): (Box<dyn super::op::Operation>, TxnCall) = match want {
            TxnWant::Init => {
                let timeout_ms = i32::try_from(p.config.transaction_timeout.as_millis())
                    .unwrap_or(i32::MAX)
                    .max(1);
                (
                    Box::new(InitProducerId {
                        transactional: Some(id),
                        timeout_ms,
                        current,
                    }),
                    TxnCall::Init,
                )
            }
            TxnWant::AddPartitions(partitions) => {
                let Some(producer) = current else {
                    // No producer id to add them under (not reachable while the
                    // phase machine holds): the transaction fails rather than wait.
                    self.txn_without_id(TxnCall::AddPartitions(partitions));
                    return None;
                };
                (
                    Box::new(AddPartitions {
                        id,
                        producer,
                        partitions: partitions.clone(),
                    }),
                    TxnCall::AddPartitions(partitions),
                )
            }
            TxnWant::End { commit } => {
                let Some(producer) = current else {
                    self.txn_without_id(TxnCall::End);
                    return None;
                };
                (
                    Box::new(EndTxn {
                        id,
                        producer,
                        commit,
                    }),
                    TxnCall::End,
                )
            }
        };
        Some(self.start_entry(now, op, vec![target], None, Some(Internal::Txn(call))))
    }

    /// A request the transaction asked for cannot be made without a producer id.
    fn txn_without_id(&mut self, call: TxnCall) {
        let e = ClientError::Transaction(TransactionError::State {
            operation: "a transactional request",
            state: "the producer has no producer id",
        });
        if let Some(txn) = self.producer.as_deref_mut().and_then(|p| p.txn.as_mut()) {
            match call {
                TxnCall::AddPartitions(keys) => txn.on_added(keys, Err(e)),
                _ => drop(txn.on_end(Err(e))),
            }
        }
    }

    /// A transactional request ended.
    pub(crate) fn txn_call_done(&mut self, call: TxnCall, result: Result<OpOutput, ClientError>) {
        let now = self.now;
        let Some(p) = self.producer.as_deref_mut() else {
            return;
        };
        let Some(txn) = p.txn.as_mut() else {
            return;
        };
        let next = match call {
            TxnCall::Init => {
                // Success was applied when the answer arrived (`Ctx::producer_id`).
                txn.on_init(result.map(drop));
                None
            }
            TxnCall::AddPartitions(keys) => {
                txn.on_added(keys, result.map(drop));
                None
            }
            TxnCall::Offsets(op) => {
                txn.on_offsets(&result);
                if txn.offsets_calls.remove(&op) {
                    // Reported as the transaction now stands, as commit reports it.
                    let result = result.map_err(|e| match e {
                        ClientError::Transaction(_) => e,
                        e if is_fatal(&e) => {
                            ClientError::Transaction(TransactionError::Fatal(Box::new(e)))
                        }
                        e => ClientError::Transaction(TransactionError::Abortable(Box::new(e))),
                    });
                    self.events.push_back(Event::Done { op, result });
                }
                None
            }
            TxnCall::End => txn.on_end(result.map(drop)),
        };
        if let Some(w) = next
            && let Some(id) = self.start_txn(now, w)
        {
            self.dispatch(id, now);
        }
        self.emit_txn_done();
        // What the transaction waited for may let the producer go on.
        self.drive_producer(now);
    }

    /// Reports the transactional calls that ended.
    pub(crate) fn emit_txn_done(&mut self) {
        if let Some(txn) = self.producer.as_deref_mut().and_then(|p| p.txn.as_mut()) {
            for (op, result) in txn.done.drain(..) {
                self.events.push_back(Event::Done { op, result });
            }
        }
    }
}
