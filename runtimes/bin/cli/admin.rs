//! Cluster, topic and group administration: `metadata`, `topics`, `partitions`,
//! `groups`.

use clap::{Args, Subcommand};
use kafka_sansio::client::{
    AlterConfigOp, ConfigResource, NewTopic, OffsetSpec, TopicMetadata, TopicPartition,
    UnknownTopicHandling,
};
use kafka_sansio::runtime::Client;
use serde_json::json;

use crate::{ConnectionArgs, Failure, Outcome};

/// `metadata`.
#[derive(Debug, Args)]
pub struct MetadataArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Only these topics.
    #[arg(short, long = "topic")]
    topics: Vec<String>,
}

/// `topics ...`.
#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Topic names with partition counts.
    List {
        /// Include internal topics (`__consumer_offsets`, ...).
        #[arg(long)]
        internal: bool,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Partitions, leaders, replicas and non-default configs of topics.
    Describe {
        /// The topics.
        #[arg(required = true)]
        topics: Vec<String>,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create a topic.
    Create {
        /// Its name.
        topic: String,
        /// Partitions (-1: the broker's default).
        #[arg(short, long, default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replication factor (-1: the broker's default).
        #[arg(short, long, default_value_t = -1, allow_negative_numbers = true)]
        replication: i16,
        /// A topic config `KEY=VALUE` (repeatable).
        #[arg(short, long = "config", value_parser = key_value)]
        configs: Vec<(String, String)>,
    },
    /// Delete topics.
    Delete {
        /// The topics.
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Change a topic's configs.
    AlterConfig {
        /// The topic.
        topic: String,
        /// Set `KEY=VALUE` (repeatable).
        #[arg(long = "set", value_parser = key_value)]
        set: Vec<(String, String)>,
        /// Reset KEY to its default (repeatable).
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
}

/// `partitions ...`.
#[derive(Debug, Subcommand)]
pub enum PartitionsCommand {
    /// Grow a topic to a total number of partitions.
    Add {
        /// The topic.
        topic: String,
        /// The new total.
        #[arg(long)]
        total: i32,
    },
}

/// `groups ...`.
#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Every group of the cluster.
    List {
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A group's state, members and their assignments, and committed offsets.
    Describe {
        /// The group.
        group: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A group's committed offsets with log end and lag.
    Offsets {
        /// The group.
        group: String,
        /// Only this topic.
        #[arg(short, long)]
        topic: Option<String>,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Move a group's committed offsets (the group must have no members).
    ResetOffsets {
        /// The group.
        group: String,
        /// The topic.
        #[arg(short, long)]
        topic: String,
        /// Only this partition (default: all).
        #[arg(short, long)]
        partition: Option<i32>,
        /// Where to: `earliest`, `latest`, `offset:N`, `timestamp:MS` or `shift:N`
        /// (N may be negative).
        #[arg(long, allow_hyphen_values = true)]
        to: String,
        /// Commit the new offsets; without it, only show them.
        #[arg(long)]
        execute: bool,
    },
    /// Delete (empty) groups.
    Delete {
        /// The groups.
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?}: expected KEY=VALUE"))
}

fn topic_json(t: &TopicMetadata) -> serde_json::Value {
    json!({
        "topic": &*t.name,
        "id": t.id.to_string(),
        "internal": t.internal,
        "partitions": t.partitions.iter().map(|p| json!({
            "partition": p.partition,
            "leader": p.leader,
            "leader_epoch": p.leader_epoch,
            "replicas": p.replicas,
            "isr": p.isr,
            "offline": p.offline_replicas,
            "error": if !p.error.is_ok() { Some(format!("{:?}", p.error)) } else { None },
        })).collect::<Vec<_>>(),
    })
}

fn print_topic(t: &TopicMetadata) {
    println!(
        "topic {} with {} partition(s){}",
        t.name,
        t.partitions.len(),
        if t.internal { " (internal)" } else { "" }
    );
    for p in &t.partitions {
        let leader = p.leader.map_or("none".to_owned(), |l| l.to_string());
        println!(
            "  partition {:>3}  leader {leader:>4}  replicas {:?}  isr {:?}{}",
            p.partition,
            p.replicas,
            p.isr,
            if !p.error.is_ok() {
                format!("  error {:?}", p.error)
            } else {
                String::new()
            }
        );
    }
}

/// `metadata`.
pub async fn metadata(conn: &ConnectionArgs, a: MetadataArgs) -> Outcome {
    let client = conn.connect(|_| {}).await?;
    let cluster = client.describe_cluster().await?;
    let topics = if a.topics.is_empty() {
        client.list_topics().await?
    } else {
        described(&client, a.topics).await?
    };
    if a.json {
        let out = json!({
            "cluster_id": cluster.cluster_id,
            "controller": cluster.controller,
            "brokers": cluster.brokers.iter().map(|b| json!({
                "id": b.id, "host": &*b.host, "port": b.port, "rack": b.rack,
            })).collect::<Vec<_>>(),
            "topics": topics.iter().map(topic_json).collect::<Vec<_>>(),
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "cluster {}, controller {}",
        cluster.cluster_id.as_deref().unwrap_or("(unknown)"),
        cluster
            .controller
            .map_or("(none)".to_owned(), |c| c.to_string())
    );
    println!("{} broker(s):", cluster.brokers.len());
    for b in &cluster.brokers {
        println!(
            "  broker {} at {}:{}{}",
            b.id,
            b.host,
            b.port,
            b.rack
                .as_ref()
                .map_or(String::new(), |r| format!(" rack {r}"))
        );
    }
    println!("{} topic(s):", topics.len());
    for t in &topics {
        print_topic(t);
    }
    Ok(())
}

/// The metadata of these topics; an unknown one is an error naming it.
pub async fn described(client: &Client, names: Vec<String>) -> Outcome<Vec<TopicMetadata>> {
    let found = client.describe_topics(names.clone()).await?;
    for name in &names {
        if !found.iter().any(|t| &*t.name == name) {
            return Err(Failure::new(format!("unknown topic {name:?}")));
        }
    }
    Ok(found)
}

/// `topics ...`.
pub async fn topics(conn: &ConnectionArgs, c: TopicsCommand) -> Outcome {
    let client = conn.connect(|_| {}).await?;
    let timeout = conn.timeout;
    match c {
        TopicsCommand::List { internal, json } => {
            let mut topics = client.list_topics().await?;
            topics.retain(|t| internal || !t.internal);
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            for t in &topics {
                if json {
                    println!(
                        "{}",
                        json!({"topic": &*t.name, "partitions": t.partitions.len(), "internal": t.internal})
                    );
                } else {
                    println!("{}\t{}", t.name, t.partitions.len());
                }
            }
        }
        TopicsCommand::Describe { topics, json } => {
            let found = described(&client, topics.clone()).await?;
            let resources = topics.iter().map(ConfigResource::topic).collect();
            // Brokers without DescribeConfigs (the simulated cluster on main) still
            // describe their partitions.
            let configs = match client.describe_configs(resources).await {
                Ok(c) => c,
                Err(kafka_sansio::client::ClientError::Unsupported(_)) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            for name in &topics {
                let Some(t) = found.iter().find(|t| &*t.name == name) else {
                    continue;
                };
                let set: Vec<(String, Option<String>)> = configs
                    .iter()
                    .filter(|(r, _)| r.name == *name)
                    .filter_map(|(_, entries)| entries.as_ref().ok())
                    .flatten()
                    .filter(|e| !e.is_default())
                    .map(|e| {
                        let value = if e.sensitive { None } else { e.value.clone() };
                        (e.name.clone(), value)
                    })
                    .collect();
                if json {
                    let mut v = topic_json(t);
                    v["configs"] = set
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v)))
                        .collect::<serde_json::Map<_, _>>()
                        .into();
                    println!("{v}");
                } else {
                    print_topic(t);
                    for (k, v) in &set {
                        println!("  config {k}={}", v.as_deref().unwrap_or("(sensitive)"));
                    }
                }
            }
        }
        TopicsCommand::Create {
            topic,
            partitions,
            replication,
            configs,
        } => {
            let mut new = NewTopic::new(topic.clone(), partitions, replication);
            for (k, v) in configs {
                new = new.config(k, v);
            }
            let results = client.create_topics(vec![new], timeout).await?;
            for r in results {
                r.result
                    .map_err(|e| Failure::new(format!("creating topic {:?}: {e}", r.name)))?;
            }
            eprintln!("created topic {topic}");
        }
        TopicsCommand::Delete { topics } => {
            let results = client.delete_topics(topics, timeout).await?;
            let mut failed = Vec::new();
            for r in results {
                match r.result {
                    Ok(()) => eprintln!("deleted topic {}", r.name),
                    Err(e) => failed.push(format!("{:?}: {e}", r.name)),
                }
            }
            if !failed.is_empty() {
                return Err(Failure::new(format!(
                    "deleting topic {}",
                    failed.join("; ")
                )));
            }
        }
        TopicsCommand::AlterConfig { topic, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                return Err(Failure::with_code(
                    "alter-config: nothing to change (use --set KEY=VALUE or --delete KEY)",
                    2,
                ));
            }
            described(&client, vec![topic.clone()]).await?;
            let mut ops: Vec<AlterConfigOp> = set
                .into_iter()
                .map(|(k, v)| AlterConfigOp::Set(k, v))
                .collect();
            ops.extend(delete.into_iter().map(AlterConfigOp::Delete));
            let results = client
                .alter_configs(vec![(ConfigResource::topic(topic.clone()), ops)])
                .await?;
            for (_, r) in results {
                r.map_err(|e| Failure::new(format!("altering configs of {topic:?}: {e}")))?;
            }
            eprintln!("altered configs of topic {topic}");
        }
    }
    Ok(())
}

/// `partitions ...`.
pub async fn partitions(conn: &ConnectionArgs, c: PartitionsCommand) -> Outcome {
    let client = conn.connect(|_| {}).await?;
    match c {
        PartitionsCommand::Add { topic, total } => {
            described(&client, vec![topic.clone()]).await?;
            client
                .create_partitions(&topic, total)
                .await
                .map_err(|e| Failure::new(format!("adding partitions to {topic:?}: {e}")))?;
            eprintln!("topic {topic} now has {total} partitions");
        }
    }
    Ok(())
}

/// One partition's committed offset with the log's end.
#[derive(Debug, Clone)]
pub struct GroupOffset {
    /// The partition.
    pub partition: TopicPartition,
    /// The committed offset.
    pub committed: i64,
    /// The log end offset.
    pub log_end: Option<i64>,
}

/// The log end offset of a partition, or `None` if it cannot be read.
pub async fn log_end(client: &Client, tp: &TopicPartition) -> Option<i64> {
    let pc = client
        .partition_client(&tp.topic, tp.partition, UnknownTopicHandling::Error)
        .await
        .ok()?;
    pc.get_offset(OffsetSpec::Latest).await.ok()
}

/// A group's committed offsets on every (or one) topic.
pub async fn group_offsets(
    client: &Client,
    group: &str,
    topic: Option<&str>,
) -> Outcome<Vec<GroupOffset>> {
    let topics = match topic {
        Some(t) => described(client, vec![t.to_owned()]).await?,
        None => client.list_topics().await?,
    };
    let partitions: Vec<TopicPartition> = topics
        .iter()
        .filter(|t| !t.internal)
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(t.name.clone(), p.partition))
        })
        .collect();
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let committed = client.fetch_committed(group, partitions).await?;
    let mut out = Vec::new();
    for c in committed {
        let offset = c
            .offset
            .map_err(|e| Failure::new(format!("committed offset of {}: {e}", c.partition)))?;
        if offset < 0 {
            continue;
        }
        let end = log_end(client, &c.partition).await;
        out.push(GroupOffset {
            partition: c.partition,
            committed: offset,
            log_end: end,
        });
    }
    out.sort_by(|a, b| a.partition.cmp(&b.partition));
    Ok(out)
}

fn offset_json(o: &GroupOffset) -> serde_json::Value {
    json!({
        "topic": &*o.partition.topic,
        "partition": o.partition.partition,
        "committed": o.committed,
        "log_end": o.log_end,
        "lag": o.log_end.map(|e| (e - o.committed).max(0)),
    })
}

fn print_offsets(offsets: &[GroupOffset]) {
    println!(
        "{:<30} {:>9} {:>12} {:>12} {:>8}",
        "TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG"
    );
    for o in offsets {
        let (end, lag) = match o.log_end {
            Some(e) => (e.to_string(), (e - o.committed).max(0).to_string()),
            None => ("?".into(), "?".into()),
        };
        println!(
            "{:<30} {:>9} {:>12} {end:>12} {lag:>8}",
            o.partition.topic, o.partition.partition, o.committed
        );
    }
}

/// `groups ...`.
pub async fn groups(conn: &ConnectionArgs, c: GroupsCommand) -> Outcome {
    let client = conn.connect(|_| {}).await?;
    match c {
        GroupsCommand::List { json } => {
            let mut groups = client.list_groups().await?;
            groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
            for g in groups {
                if json {
                    println!(
                        "{}",
                        json!({
                            "group": g.group_id, "protocol_type": g.protocol_type,
                            "state": g.state, "type": g.group_type, "coordinator": g.coordinator,
                        })
                    );
                } else {
                    println!(
                        "{}\t{}\t{}",
                        g.group_id,
                        g.state.as_deref().unwrap_or("?"),
                        if g.protocol_type.is_empty() {
                            "-"
                        } else {
                            &g.protocol_type
                        }
                    );
                }
            }
        }
        GroupsCommand::Describe { group, json } => {
            let offsets = group_offsets(&client, &group, None).await?;
            // A broker without DescribeGroups (older simulated clusters) still
            // shows the group's committed offsets.
            let described = match client.describe_groups(vec![group.clone()]).await {
                Ok(d) => d
                    .into_iter()
                    .next()
                    .unwrap_or(Err(kafka_sansio::client::ClientError::Closed)),
                Err(e) => Err(e),
            };
            let mut d = match described {
                Ok(d) => d,
                Err(kafka_sansio::client::ClientError::Unsupported(_)) if !offsets.is_empty() => {
                    kafka_sansio::client::GroupDescription {
                        group_id: group.clone(),
                        state: "Unknown (the broker does not support DescribeGroups)".into(),
                        protocol_type: String::new(),
                        protocol: String::new(),
                        members: Vec::new(),
                    }
                }
                Err(e) => return Err(Failure::new(format!("group {group:?}: {e}"))),
            };
            if d.state == "Dead" {
                // DescribeGroups covers classic groups only: a KIP-848 group is
                // "Dead" there, but listed with its state and type.
                if let Some(g) = client
                    .list_groups()
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .find(|g| g.group_id == group && g.group_type.as_deref() == Some("consumer"))
                {
                    d.state = format!(
                        "{} (KIP-848 consumer group: members not shown)",
                        g.state.as_deref().unwrap_or("?")
                    );
                    d.protocol_type = g.protocol_type;
                }
            }
            if d.state == "Dead" && offsets.is_empty() {
                return Err(Failure::new(format!("unknown group {group:?}")));
            }
            if json {
                let out = json!({
                    "group": d.group_id, "state": d.state, "protocol_type": d.protocol_type,
                    "protocol": d.protocol,
                    "members": d.members.iter().map(|m| json!({
                        "member_id": m.member_id, "instance_id": m.group_instance_id,
                        "client_id": m.client_id, "host": m.client_host,
                        "subscription": m.subscription,
                        "assignment": m.assignment.iter().map(|(t, p)| json!({"topic": t, "partitions": p})).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                    "offsets": offsets.iter().map(offset_json).collect::<Vec<_>>(),
                });
                println!("{out}");
            } else {
                println!(
                    "group {} state {} protocol {}/{} with {} member(s)",
                    d.group_id,
                    d.state,
                    if d.protocol_type.is_empty() {
                        "-"
                    } else {
                        &d.protocol_type
                    },
                    if d.protocol.is_empty() {
                        "-"
                    } else {
                        &d.protocol
                    },
                    d.members.len()
                );
                for m in &d.members {
                    let assignment: Vec<String> = m
                        .assignment
                        .iter()
                        .map(|(t, p)| format!("{t}:{p:?}"))
                        .collect();
                    println!(
                        "  member {} client {} host {} subscribed {:?} assigned {}",
                        m.member_id,
                        m.client_id,
                        m.client_host,
                        m.subscription,
                        assignment.join(" ")
                    );
                }
                print_offsets(&offsets);
            }
        }
        GroupsCommand::Offsets { group, topic, json } => {
            let offsets = group_offsets(&client, &group, topic.as_deref()).await?;
            if json {
                for o in &offsets {
                    println!("{}", offset_json(o));
                }
            } else {
                print_offsets(&offsets);
            }
        }
        GroupsCommand::ResetOffsets {
            group,
            topic,
            partition,
            to,
            execute,
        } => {
            reset_offsets(&client, &group, &topic, partition, &to, execute).await?;
        }
        GroupsCommand::Delete { groups } => {
            let results = client.delete_groups(groups).await?;
            let mut failed = Vec::new();
            for (g, r) in results {
                match r {
                    Ok(()) => eprintln!("deleted group {g}"),
                    Err(e) => failed.push(format!("{g:?}: {e}")),
                }
            }
            if !failed.is_empty() {
                return Err(Failure::new(format!(
                    "deleting group {}",
                    failed.join("; ")
                )));
            }
        }
    }
    Ok(())
}

/// Where `reset-offsets --to` moves a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The log start.
    Earliest,
    /// The log end.
    Latest,
    /// This offset (clamped into the log).
    Offset(i64),
    /// The first offset at or after this timestamp.
    Timestamp(i64),
    /// The committed offset moved by this much (clamped into the log).
    Shift(i64),
}

/// Parses `earliest|latest|offset:N|timestamp:MS|shift:N`.
pub fn parse_reset(text: &str) -> Result<ResetTo, String> {
    let bad =
        || format!("--to {text:?}: expected earliest, latest, offset:N, timestamp:MS or shift:N");
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad());
    Ok(match text {
        "earliest" | "beginning" => ResetTo::Earliest,
        "latest" | "end" => ResetTo::Latest,
        _ => match text.split_once(':') {
            Some(("offset", n)) => ResetTo::Offset(num(n)?),
            Some(("timestamp", n)) => ResetTo::Timestamp(num(n)?),
            Some(("shift", n)) => ResetTo::Shift(num(n)?),
            _ => return Err(bad()),
        },
    })
}

async fn reset_offsets(
    client: &Client,
    group: &str,
    topic: &str,
    partition: Option<i32>,
    to: &str,
    execute: bool,
) -> Outcome {
    let to = parse_reset(to).map_err(|e| Failure::with_code(e, 2))?;
    let meta = described(client, vec![topic.to_owned()]).await?;
    let partitions: Vec<TopicPartition> = meta[0]
        .partitions
        .iter()
        .filter(|p| partition.is_none_or(|want| want == p.partition))
        .map(|p| TopicPartition::new(topic, p.partition))
        .collect();
    if partitions.is_empty() {
        return Err(Failure::new(format!(
            "topic {topic:?} has no partition {}",
            partition.unwrap_or(-1)
        )));
    }
    let committed = client.fetch_committed(group, partitions.clone()).await?;
    let mut plan = Vec::new();
    for (tp, c) in partitions.iter().zip(committed) {
        let current = c.offset.unwrap_or(-1);
        let pc = client
            .partition_client(topic, tp.partition, UnknownTopicHandling::Error)
            .await?;
        let start = pc.get_offset(OffsetSpec::Earliest).await?;
        let end = pc.get_offset(OffsetSpec::Latest).await?;
        let target = match to {
            ResetTo::Earliest => start,
            ResetTo::Latest => end,
            ResetTo::Offset(n) => n,
            ResetTo::Timestamp(ts) => {
                let o = pc.get_offset(OffsetSpec::Timestamp(ts)).await?;
                if o < 0 { end } else { o }
            }
            ResetTo::Shift(n) => {
                if current < 0 {
                    eprintln!("{tp}: nothing committed to shift from; left as it is");
                    continue;
                }
                current.saturating_add(n)
            }
        }
        .clamp(start, end);
        plan.push((tp.clone(), current, target));
    }
    if plan.is_empty() {
        return Err(Failure::new("no offset to reset"));
    }
    println!(
        "{:<30} {:>9} {:>12} {:>12}",
        "TOPIC", "PARTITION", "CURRENT", "NEW"
    );
    for (tp, current, target) in &plan {
        println!(
            "{:<30} {:>9} {:>12} {:>12}",
            tp.topic, tp.partition, current, target
        );
    }
    if !execute {
        eprintln!("dry run: add --execute to commit these offsets");
        return Ok(());
    }
    let results = client
        .commit_offsets(
            group,
            plan.iter().map(|(tp, _, t)| (tp.clone(), *t)).collect(),
        )
        .await?;
    for r in results {
        r.offset.map_err(|e| {
            Failure::new(format!(
                "committing {} for group {group:?}: {e}",
                r.partition
            ))
        })?;
    }
    eprintln!("committed {} offset(s) for group {group}", plan.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_targets() {
        assert_eq!(parse_reset("earliest"), Ok(ResetTo::Earliest));
        assert_eq!(parse_reset("latest"), Ok(ResetTo::Latest));
        assert_eq!(parse_reset("offset:5"), Ok(ResetTo::Offset(5)));
        assert_eq!(parse_reset("shift:-3"), Ok(ResetTo::Shift(-3)));
        assert_eq!(parse_reset("timestamp:17"), Ok(ResetTo::Timestamp(17)));
        for bad in ["", "offset:", "offset:x", "shift", "middle", "at:3"] {
            assert!(parse_reset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_values() {
        assert_eq!(
            key_value("retention.ms=1000"),
            Ok(("retention.ms".into(), "1000".into()))
        );
        assert!(key_value("novalue").is_err());
        assert!(key_value("=x").is_err());
    }
}
