//! Counters per broker connection, the kind librdkafka's statistics report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Counters for one broker (by its connection label, such as `1@host:9092`); all
/// lanes to the broker are summed.
///
/// ```
/// # #[cfg(feature = "sim")] {
/// # let (mut sim, host) = kafka_sansio::doc_support::sim();
/// use std::time::Duration;
/// let now = sim.now();
/// let op = sim.client(host).describe_cluster(now);
/// sim.run_until_done(host, op, Duration::from_secs(10))?;
/// for b in sim.client(host).stats().brokers {
///     println!("{}: {} requests, {} B out, {} B in, rtt avg {:?}", b.broker, b.requests, b.bytes_sent, b.bytes_received, b.rtt_avg());
/// }
/// # }
/// # Ok::<(), kafka_sansio::client::ClientError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerStats {
    /// The broker's label: `node@host:port`, or `bootstrap@host:port`.
    pub broker: Arc<str>,
    /// Connections opened (transport connected).
    pub connects: u64,
    /// Connections closed or failed.
    pub disconnects: u64,
    /// Requests sent (connection setup excluded).
    pub requests: u64,
    /// Requests awaiting a reply now.
    pub outstanding: usize,
    /// Bytes handed out to write.
    pub bytes_sent: u64,
    /// Bytes read.
    pub bytes_received: u64,
    /// Replies received (with a round-trip time).
    pub replies: u64,
    /// Sum of round-trip times, for an average.
    pub rtt_total: Duration,
    /// Longest round-trip time.
    pub rtt_max: Duration,
    /// Responses that asked the client to hold off (KIP-219).
    pub throttled: u64,
    /// Total throttle time asked for.
    pub throttle_time: Duration,
}

impl BrokerStats {
    /// Average round-trip time, `None` before the first reply.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kafka_sansio::client::BrokerStats;
    /// let mut b = BrokerStats::default();
    /// assert_eq!(b.rtt_avg(), None); // no reply yet
    /// (b.replies, b.rtt_total) = (4, Duration::from_millis(20));
    /// assert_eq!(b.rtt_avg(), Some(Duration::from_millis(5)));
    /// ```
    #[must_use]
    pub fn rtt_avg(&self) -> Option<Duration> {
        (self.replies > 0).then(|| self.rtt_total / u32::try_from(self.replies).unwrap_or(u32::MAX))
    }
}

/// A snapshot of a client's counters, from [`Client::stats`](super::Client::stats).
///
/// ```
/// use kafka_sansio::client::{Client, ClientConfig};
/// # #[allow(clippy::disallowed_methods)]
/// let client = Client::new(ClientConfig::new("localhost:9092").unwrap(), std::time::Instant::now());
/// let stats = client.stats();
/// assert!(stats.brokers.is_empty()); // nothing connected yet
/// assert_eq!(stats.retries, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Per broker, by label.
    pub brokers: Vec<BrokerStats>,
    /// Items retried after a retriable error, over the client's life (producer
    /// batches included).
    pub retries: u64,
    /// Per partition the producer writes to: records buffered and batches in flight.
    pub partitions: Vec<PartitionStats>,
    /// Bytes the producer buffers now.
    pub producer_buffered_bytes: usize,
}

/// The producer's state for one partition.
///
/// ```
/// use kafka_sansio::client::{Client, ClientConfig, ProducerRecord};
/// # #[allow(clippy::disallowed_methods)]
/// let now = std::time::Instant::now();
/// let mut client = Client::new(ClientConfig::new("localhost:9092")?, now);
/// client.send(now, ProducerRecord::new("orders", "a").partition(0))?;
/// for p in client.stats().partitions {
///     println!("{}-{}: {} buffered, {} batches in flight", p.topic, p.partition, p.buffered_records, p.in_flight_batches);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionStats {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// Records waiting to be sent.
    pub buffered_records: usize,
    /// Batches sent and not yet answered.
    pub in_flight_batches: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    brokers: BTreeMap<Arc<str>, BrokerStats>,
    pub(crate) retries: u64,
}

impl Stats {
    fn broker(&mut self, label: &Arc<str>) -> &mut BrokerStats {
        self.brokers
            .entry(label.clone())
            .or_insert_with(|| BrokerStats {
                broker: label.clone(),
                ..BrokerStats::default()
            })
    }

    pub(crate) fn connected(&mut self, label: &Arc<str>) {
        self.broker(label).connects += 1;
    }

    pub(crate) fn disconnected(&mut self, label: &Arc<str>) {
        self.broker(label).disconnects += 1;
    }

    pub(crate) fn request(&mut self, label: &Arc<str>) {
        self.broker(label).requests += 1;
    }

    pub(crate) fn sent(&mut self, label: &Arc<str>, n: usize) {
        self.broker(label).bytes_sent += n as u64;
    }

    pub(crate) fn received(&mut self, label: &Arc<str>, n: usize) {
        self.broker(label).bytes_received += n as u64;
    }

    pub(crate) fn round_trip(&mut self, label: &Arc<str>, rtt: Duration) {
        let b = self.broker(label);
        b.replies += 1;
        b.rtt_total += rtt;
        b.rtt_max = b.rtt_max.max(rtt);
    }

    pub(crate) fn throttled(&mut self, label: &Arc<str>, d: Duration) {
        let b = self.broker(label);
        b.throttled += 1;
        b.throttle_time += d;
    }

    pub(crate) fn snapshot(
        &self,
        outstanding: impl Iterator<Item = (Arc<str>, usize)>,
    ) -> ClientStats {
        let mut brokers = self.brokers.clone();
        for b in brokers.values_mut() {
            b.outstanding = 0;
        }
        for (label, n) in outstanding {
            brokers
                .entry(label.clone())
                .or_insert_with(|| BrokerStats {
                    broker: label,
                    ..BrokerStats::default()
                })
                .outstanding += n;
        }
        ClientStats {
            brokers: brokers.into_values().collect(),
            retries: self.retries,
            partitions: Vec::new(),
            producer_buffered_bytes: 0,
        }
    }
}
