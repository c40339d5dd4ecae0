//! Where a record without an explicit partition goes.
//!
//! The default places keyed records exactly where Apache Kafka's Java client and
//! librdkafka's `murmur2_random` put them: murmur2 of the key bytes (an empty key is
//! hashed too), `& 0x7fffffff`, modulo the topic's partition count, available or not.
//! Records with a null key follow KIP-794's sticky scheme: they stick to one
//! partition (with a leader) until a batch's worth of bytes went there, then switch
//! to another picked at random (from the client's seed).

use super::super::rng::Rng;

/// Murmur2 as Kafka computes it (`Utils.murmur2`), over `data`.
///
/// ```
/// use kafka_sansio::client::murmur2;
/// assert_eq!(murmur2(b"21") as i32, -973_932_308);
/// assert_eq!(murmur2(b"foobar") as i32, -790_332_482);
/// assert_eq!(murmur2(b"kafka"), 0xd067_cf64);
/// assert_eq!(murmur2(b""), 0x106e_08d9);
/// ```
#[must_use]
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    #[allow(clippy::cast_possible_truncation)] // Kafka hashes the length as an int
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition the Java client picks for a keyed record: `toPositive(murmur2(key))
/// % partitions`.
///
/// ```
/// use kafka_sansio::client::partition_for_key;
/// // The Java console producer's choices (node-rdkafka#817 and #616).
/// assert_eq!(partition_for_key(b"fd7af248-ce5c-46a5-93d7-1c0c9005b99d", 32), 26);
/// assert_eq!(partition_for_key(b"354afe16-939a-4ea8-8e17-8bb0840b6886", 10), 4);
/// ```
#[must_use]
pub fn partition_for_key(key: &[u8], partitions: usize) -> i32 {
    if partitions == 0 {
        return 0;
    }
    let p = (murmur2(key) & 0x7fff_ffff) as usize % partitions;
    i32::try_from(p).unwrap_or(0)
}

/// What a partitioner knows of the topic: its partition count (all partitions,
/// available or not) and which partitions have a leader now.
///
/// ```
/// use kafka_sansio::client::TopicPartitions;
/// let partitions = TopicPartitions { count: 6, available: &[0, 1, 3, 4, 5] }; // 2 has no leader now
/// assert_eq!(partitions.count, 6);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TopicPartitions<'a> {
    /// Every partition of the topic.
    pub count: usize,
    /// Partitions with a leader, ascending.
    pub available: &'a [i32],
}

/// Chooses a partition for records produced without one.
///
/// ```
/// use kafka_sansio::client::{Partitioner, TopicPartitions};
///
/// /// Everything with a key starting "eu-" goes to partition 0, the rest to 1.
/// struct ByRegion;
/// impl Partitioner for ByRegion {
///     fn partition(&mut self, _topic: &str, key: Option<&[u8]>, partitions: TopicPartitions<'_>) -> i32 {
///         let eu = key.is_some_and(|k| k.starts_with(b"eu-"));
///         if eu || partitions.count < 2 { 0 } else { 1 }
///     }
/// }
/// let mut p = ByRegion;
/// assert_eq!(p.partition("t", Some(b"eu-7"), TopicPartitions { count: 4, available: &[0, 1, 2, 3] }), 0);
/// ```
pub trait Partitioner: Send {
    /// The partition (in `0..partitions.count`) for a record with this key.
    ///
    /// ```
    /// use kafka_sansio::client::{Partitioner, TopicPartitions, partition_for_key};
    /// struct KeyHash;
    /// impl Partitioner for KeyHash {
    ///     fn partition(&mut self, _topic: &str, key: Option<&[u8]>, partitions: TopicPartitions<'_>) -> i32 {
    ///         // Keyed: Java's murmur2 choice; null keys: the first available partition.
    ///         key.map_or(partitions.available.first().copied().unwrap_or(0), |k| partition_for_key(k, partitions.count))
    ///     }
    /// }
    /// let p = KeyHash.partition("orders", None, TopicPartitions { count: 3, available: &[1, 2] });
    /// assert_eq!(p, 1);
    /// ```
    fn partition(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        partitions: TopicPartitions<'_>,
    ) -> i32;

    /// A record of `bytes` was appended to `partition` (the sticky scheme uses it).
    ///
    /// ```
    /// use kafka_sansio::client::{Partitioner, TopicPartitions};
    /// /// Moves to the next partition after every 1 MB appended (a simple sticky scheme).
    /// struct EveryMegabyte { current: i32, bytes: usize }
    /// impl Partitioner for EveryMegabyte {
    ///     fn partition(&mut self, _topic: &str, _key: Option<&[u8]>, partitions: TopicPartitions<'_>) -> i32 {
    ///         self.current % partitions.count.max(1) as i32
    ///     }
    ///     fn on_append(&mut self, _topic: &str, _partition: i32, bytes: usize) {
    ///         self.bytes += bytes;
    ///         if self.bytes >= 1 << 20 {
    ///             (self.current, self.bytes) = (self.current + 1, 0);
    ///         }
    ///     }
    /// }
    /// let mut p = EveryMegabyte { current: 0, bytes: 0 };
    /// p.on_append("orders", 0, 1 << 20);
    /// assert_eq!(p.partition("orders", None, TopicPartitions { count: 3, available: &[0, 1, 2] }), 1);
    /// ```
    fn on_append(&mut self, _topic: &str, _partition: i32, _bytes: usize) {}
}

/// The built-in choice for one topic's records without a partition: murmur2 for
/// keyed records; for null keys the partition they stick to (KIP-794) and the
/// bytes appended there since it was picked. The producer keeps one per routed
/// topic, beside the topic's metadata, so choosing costs no lookup and no lock.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sticky {
    current: Option<(i32, usize)>,
}

impl Sticky {
    /// The partition for a record with this key; a null key sticks to the current
    /// partition until `switch_after` bytes went there or it lost its leader, then
    /// moves to another picked with `rng`.
    pub(crate) fn partition(
        &mut self,
        rng: &mut Rng,
        switch_after: usize,
        key: Option<&[u8]>,
        partitions: TopicPartitions<'_>,
    ) -> i32 {
        if let Some(key) = key {
            return partition_for_key(key, partitions.count);
        }
        match self.current {
            Some((p, sent))
                if sent < switch_after
                    && usize::try_from(p).is_ok_and(|i| i < partitions.count)
                    && (partitions.available.is_empty()
                        || partitions.available.binary_search(&p).is_ok()) =>
            {
                p
            }
            _ => {
                let p = pick(rng, partitions, self.current.map(|c| c.0));
                self.current = Some((p, 0));
                p
            }
        }
    }

    /// A record of `bytes` was appended to `partition`: past `switch_after` bytes,
    /// the next null-key record picks another partition.
    pub(crate) fn appended(&mut self, partition: i32, bytes: usize) {
        if let Some((p, sent)) = &mut self.current
            && *p == partition
        {
            *sent = sent.saturating_add(bytes);
        }
    }
}

/// A partition picked at random from those with a leader (all of them when none is
/// known to have one), other than `avoid` when there is a choice.
fn pick(rng: &mut Rng, partitions: TopicPartitions<'_>, avoid: Option<i32>) -> i32 {
    let available = partitions.available;
    let len = if available.is_empty() {
        partitions.count
    } else {
        available.len()
    };
    let nth = |i: usize| -> i32 {
        if available.is_empty() {
            i32::try_from(i).unwrap_or(i32::MAX)
        } else {
            available[i]
        }
    };
    // Where `avoid` sits in the pool, if it is there and there is a choice.
    let skip = avoid.filter(|_| len > 1).and_then(|a| {
        if available.is_empty() {
            usize::try_from(a).ok().filter(|&i| i < len)
        } else {
            available.binary_search(&a).ok()
        }
    });
    let i = rng.below(len - usize::from(skip.is_some()));
    match skip {
        Some(s) if i >= s => nth(i + 1),
        _ if len == 0 => 0,
        _ => nth(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka_and_librdkafka_vectors() {
        // UtilsTest.testMurmur2 (Java) and rdmurmur2.c's unit test.
        assert_eq!(murmur2(b"21") as i32, -973_932_308);
        assert_eq!(murmur2(b"foobar") as i32, -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985_981_536);
        assert_eq!(
            murmur2(b"a-little-bit-longer-string") as i32,
            -1_486_304_829
        );
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32,
            -58_897_971
        );
        assert_eq!(murmur2(b"abc") as i32, 479_470_107);
        assert_eq!(murmur2(b"kafka"), 0xd067_cf64);
        assert_eq!(murmur2(b"giberish123456789"), 0x8f55_2b0c);
        assert_eq!(murmur2(b""), 0x106e_08d9);
    }

    #[test]
    fn null_keys_stick_until_a_batch_worth_then_move() {
        let mut rng = Rng::new(1);
        let mut s = Sticky::default();
        let parts = TopicPartitions {
            count: 4,
            available: &[0, 1, 2, 3],
        };
        let first = s.partition(&mut rng, 100, None, parts);
        for _ in 0..10 {
            assert_eq!(s.partition(&mut rng, 100, None, parts), first);
        }
        s.appended(first, 60);
        assert_eq!(s.partition(&mut rng, 100, None, parts), first);
        s.appended(first, 60);
        let second = s.partition(&mut rng, 100, None, parts);
        assert_ne!(second, first, "switched after 100 bytes");
        // an unavailable sticky partition is left at once
        let only = TopicPartitions {
            count: 4,
            available: &[3],
        };
        assert_eq!(s.partition(&mut rng, 100, None, only), 3);
        // keys ignore stickiness
        assert_eq!(
            s.partition(
                &mut rng,
                100,
                Some(b"fd7af248-ce5c-46a5-93d7-1c0c9005b99d"),
                TopicPartitions {
                    count: 32,
                    available: &[]
                }
            ),
            26
        );
    }

    #[test]
    fn a_switch_picks_uniformly_among_the_others() {
        // Every available partition but the current one is picked, and only those.
        for (count, available) in [(5usize, &[][..]), (6, &[0, 2, 3, 5][..])] {
            let parts = TopicPartitions { count, available };
            let pool: Vec<i32> = if available.is_empty() {
                (0..count as i32).collect()
            } else {
                available.to_vec()
            };
            let mut rng = Rng::new(7);
            for &avoid in &pool {
                let mut seen = std::collections::BTreeSet::new();
                for _ in 0..400 {
                    let p = pick(&mut rng, parts, Some(avoid));
                    assert_ne!(p, avoid);
                    assert!(pool.contains(&p), "{p} is not in {pool:?}");
                    seen.insert(p);
                }
                assert_eq!(seen.len(), pool.len() - 1, "avoiding {avoid}: {seen:?}");
            }
            // One partition: it is picked even when it is the one to avoid.
            let one = TopicPartitions {
                count: 1,
                available: &[],
            };
            assert_eq!(pick(&mut rng, one, Some(0)), 0);
        }
    }
}
