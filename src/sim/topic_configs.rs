//! Topic configs as Kafka 4 knows them: names, defaults, types and what a value may
//! be, for CreateTopics, DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.
//!
//! A topic keeps only its overrides; everything else reads as the default (the
//! broker's setting where the cluster has one, as `max.message.bytes` from
//! `message.max.bytes`). Of the settings, the simulation acts on
//! `max.message.bytes` (the largest batch a Produce may append to the topic); the
//! others are stored and described as Kafka would, without effect on the logs.

use super::ClusterConfig;

/// The most bytes a config value may have (the simulation's bound on what a client
/// can make a topic hold; Kafka has none).
pub(crate) const MAX_VALUE_LEN: usize = 4096;

/// A config's type, with the codes DescribeConfigs v3+ reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
}

/// What values a config takes.
#[derive(Debug, Clone, Copy)]
enum Values {
    /// An integer of the type, at least this.
    AtLeast(i64),
    /// A double in this range.
    Between(f64, f64),
    /// `true` or `false`.
    Boolean,
    /// One of these.
    OneOf(&'static [&'static str]),
    /// A comma-separated list of these.
    ListOf(&'static [&'static str]),
    /// `*`, or a comma-separated list of `PARTITION:BROKER`.
    Replicas,
}

/// One topic config Kafka knows.
pub(crate) struct TopicConfigDef {
    pub name: &'static str,
    /// The broker setting it defaults to.
    pub synonym: &'static str,
    pub kind: ConfigType,
    default: &'static str,
    values: Values,
    pub doc: &'static str,
}

const fn def(
    name: &'static str,
    synonym: &'static str,
    kind: ConfigType,
    default: &'static str,
    values: Values,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        synonym,
        kind,
        default,
        values,
        doc,
    }
}

use ConfigType as T;
use Values as V;

const CODECS: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

/// Kafka 4's topic configs, by name.
pub(crate) const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def(
        "cleanup.policy",
        "log.cleanup.policy",
        T::List,
        "delete",
        V::ListOf(&["delete", "compact"]),
        "The retention policy of old log segments.",
    ),
    def(
        "compression.gzip.level",
        "compression.gzip.level",
        T::Int,
        "-1",
        V::AtLeast(-1),
        "The gzip level used when compression.type is gzip.",
    ),
    def(
        "compression.lz4.level",
        "compression.lz4.level",
        T::Int,
        "9",
        V::AtLeast(1),
        "The lz4 level used when compression.type is lz4.",
    ),
    def(
        "compression.type",
        "compression.type",
        T::String,
        "producer",
        V::OneOf(CODECS),
        "The final compression type of the topic's batches.",
    ),
    def(
        "compression.zstd.level",
        "compression.zstd.level",
        T::Int,
        "3",
        V::AtLeast(-131_072),
        "The zstd level used when compression.type is zstd.",
    ),
    def(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        T::Long,
        "86400000",
        V::AtLeast(0),
        "How long tombstones are kept on a compacted topic.",
    ),
    def(
        "file.delete.delay.ms",
        "log.segment.delete.delay.ms",
        T::Long,
        "60000",
        V::AtLeast(0),
        "The time to wait before deleting a file.",
    ),
    def(
        "flush.messages",
        "log.flush.interval.messages",
        T::Long,
        "9223372036854775807",
        V::AtLeast(1),
        "Records between forced fsyncs.",
    ),
    def(
        "flush.ms",
        "log.flush.interval.ms",
        T::Long,
        "9223372036854775807",
        V::AtLeast(0),
        "Time between forced fsyncs.",
    ),
    def(
        "follower.replication.throttled.replicas",
        "follower.replication.throttled.replicas",
        T::List,
        "",
        V::Replicas,
        "Replicas whose log replication is throttled on the follower side.",
    ),
    def(
        "index.interval.bytes",
        "log.index.interval.bytes",
        T::Int,
        "4096",
        V::AtLeast(0),
        "How often an offset index entry is added.",
    ),
    def(
        "leader.replication.throttled.replicas",
        "leader.replication.throttled.replicas",
        T::List,
        "",
        V::Replicas,
        "Replicas whose log replication is throttled on the leader side.",
    ),
    def(
        "local.retention.bytes",
        "log.local.retention.bytes",
        T::Long,
        "-2",
        V::AtLeast(-2),
        "Local bytes kept before deletion (tiered storage).",
    ),
    def(
        "local.retention.ms",
        "log.local.retention.ms",
        T::Long,
        "-2",
        V::AtLeast(-2),
        "Local time kept before deletion (tiered storage).",
    ),
    def(
        "max.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        T::Long,
        "9223372036854775807",
        V::AtLeast(1),
        "The longest a record stays uncompacted.",
    ),
    def(
        "max.message.bytes",
        "message.max.bytes",
        T::Int,
        "",
        V::AtLeast(0),
        "The largest record batch size allowed.",
    ),
    def(
        "message.timestamp.after.max.ms",
        "log.message.timestamp.after.max.ms",
        T::Long,
        "3600000",
        V::AtLeast(0),
        "How far in the future a record timestamp may be.",
    ),
    def(
        "message.timestamp.before.max.ms",
        "log.message.timestamp.before.max.ms",
        T::Long,
        "9223372036854775807",
        V::AtLeast(0),
        "How far in the past a record timestamp may be.",
    ),
    def(
        "message.timestamp.type",
        "log.message.timestamp.type",
        T::String,
        "CreateTime",
        V::OneOf(&["CreateTime", "LogAppendTime"]),
        "Whether record timestamps are the producer's or the broker's.",
    ),
    def(
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
        T::Double,
        "0.5",
        V::Between(0.0, 1.0),
        "How dirty the log must be before it is compacted.",
    ),
    def(
        "min.compaction.lag.ms",
        "log.cleaner.min.compaction.lag.ms",
        T::Long,
        "0",
        V::AtLeast(0),
        "The shortest a record stays uncompacted.",
    ),
    def(
        "min.insync.replicas",
        "min.insync.replicas",
        T::Int,
        "1",
        V::AtLeast(1),
        "The fewest replicas that must acknowledge an acks=all write.",
    ),
    def(
        "preallocate",
        "log.preallocate",
        T::Boolean,
        "false",
        V::Boolean,
        "Whether segment files are preallocated.",
    ),
    def(
        "remote.storage.enable",
        "remote.storage.enable",
        T::Boolean,
        "false",
        V::Boolean,
        "Whether the topic uses tiered storage.",
    ),
    def(
        "retention.bytes",
        "log.retention.bytes",
        T::Long,
        "-1",
        V::AtLeast(-1),
        "The most bytes a partition keeps before deleting old segments.",
    ),
    def(
        "retention.ms",
        "log.retention.ms",
        T::Long,
        "604800000",
        V::AtLeast(-1),
        "The longest a record is kept before deletion.",
    ),
    def(
        "segment.bytes",
        "log.segment.bytes",
        T::Int,
        "1073741824",
        V::AtLeast(14),
        "The segment file size.",
    ),
    def(
        "segment.index.bytes",
        "log.index.size.max.bytes",
        T::Int,
        "10485760",
        V::AtLeast(4),
        "The offset index size.",
    ),
    def(
        "segment.jitter.ms",
        "log.roll.jitter.ms",
        T::Long,
        "0",
        V::AtLeast(0),
        "Random jitter subtracted from segment.ms.",
    ),
    def(
        "segment.ms",
        "log.roll.ms",
        T::Long,
        "604800000",
        V::AtLeast(1),
        "The time after which a segment is rolled.",
    ),
    def(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        T::Boolean,
        "false",
        V::Boolean,
        "Whether an out-of-sync replica may become leader.",
    ),
];

/// The definition of topic config `name`.
pub(crate) fn topic_config(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS
        .binary_search_by(|d| d.name.cmp(name))
        .ok()
        .map(|i| &TOPIC_CONFIGS[i])
}

impl TopicConfigDef {
    /// Its default on a cluster set up as `config`.
    pub fn default_value(&self, config: &ClusterConfig) -> String {
        match self.name {
            "max.message.bytes" => config.message_max_bytes.to_string(),
            _ => self.default.to_owned(),
        }
    }

    /// Whether values may be appended to and subtracted from it.
    pub fn is_list(&self) -> bool {
        self.kind == ConfigType::List
    }

    /// Whether `value` is one it takes; the reason if not.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let bad = |why: &str| {
            Err(format!(
                "Invalid value {value} for configuration {}: {why}",
                self.name
            ))
        };
        if value.len() > MAX_VALUE_LEN {
            return bad("too long");
        }
        match self.values {
            V::AtLeast(min) => {
                let parsed = if self.kind == T::Int {
                    value.trim().parse::<i32>().map(i64::from).ok()
                } else {
                    value.trim().parse::<i64>().ok()
                };
                match parsed {
                    Some(n) if n >= min => Ok(()),
                    Some(_) => bad(&format!("Value must be at least {min}")),
                    None => bad("Not a number of the config's type"),
                }
            }
            V::Between(lo, hi) => match value.trim().parse::<f64>() {
                Ok(x) if (lo..=hi).contains(&x) => Ok(()),
                _ => bad(&format!("Value must be a number from {lo} to {hi}")),
            },
            V::Boolean => {
                if value.trim().eq_ignore_ascii_case("true")
                    || value.trim().eq_ignore_ascii_case("false")
                {
                    Ok(())
                } else {
                    bad("Expected value to be either true or false")
                }
            }
            V::OneOf(allowed) => {
                if allowed.contains(&value.trim()) {
                    Ok(())
                } else {
                    bad(&format!("String must be one of: {}", allowed.join(", ")))
                }
            }
            V::ListOf(allowed) => {
                let items: Vec<&str> = list_items(value).collect();
                if items.is_empty() || items.iter().any(|i| !allowed.contains(i)) {
                    bad(&format!("List items must be among: {}", allowed.join(", ")))
                } else {
                    Ok(())
                }
            }
            V::Replicas => {
                let ok = value.trim() == "*"
                    || list_items(value).all(|item| {
                        item.split_once(':').is_some_and(|(p, b)| {
                            p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
                        })
                    });
                if ok {
                    Ok(())
                } else {
                    bad("Expected * or a list of PARTITION:BROKER")
                }
            }
        }
    }
}

/// The items of a comma-separated list value.
pub(crate) fn list_items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_every_default_is_valid() {
        assert!(TOPIC_CONFIGS.windows(2).all(|w| w[0].name < w[1].name));
        let config = ClusterConfig::default();
        for d in TOPIC_CONFIGS {
            let v = d.default_value(&config);
            if !v.is_empty() {
                assert!(d.check(&v).is_ok(), "{}: {v}", d.name);
            }
        }
        let retention = topic_config("retention.ms").unwrap();
        assert!(retention.check("1234").is_ok());
        assert!(retention.check("-2").is_err());
        assert!(retention.check("soon").is_err());
        let policy = topic_config("cleanup.policy").unwrap();
        assert!(policy.check("compact,delete").is_ok());
        assert!(policy.check("shred").is_err());
    }
}
