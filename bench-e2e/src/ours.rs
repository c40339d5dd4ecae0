//! What our client's binaries (`client-ours`, `client-ours-blocking`) share.

use std::sync::Arc;

use bytes::Bytes;
use kafka_sansio::client::ProducerRecord;

use crate::workload::{key, send_value};

/// Record `i` for `Producer::send`, built as a user following `send`'s docs does:
/// owned key and value, the topic's `Arc<str>` cloned (rdkafka takes a `&str` and
/// rskafka's `BatchProducer` is bound to its partition: neither allocates a name
/// per record either).
pub fn producer_record(topic: &Arc<str>, i: u64, value_len: usize) -> ProducerRecord {
    ProducerRecord::new(topic.clone(), Bytes::from(send_value(i, value_len)))
        .key(Bytes::from(key(i).to_vec()))
}
