//! One consumer group mixing our members with members other people wrote
//! (confluent-kafka on librdkafka 2.16, and kafka-python): the classic protocol
//! against the simulated cluster served on loopback, and KIP-848 against librdkafka
//! 2.16's mock cluster, the one coordinator here that speaks it (issue 14's
//! real-peer proof). The classic protocol is not run against the mock: its
//! SyncGroup and OffsetCommit during a rebalance differ from Kafka's (see
//! tests/group_real_peers.rs).
//!
//! Each test runs one scenario over a 6-partition topic holding records produced
//! beforehand: a Python member joins first (so the first generation's leader, who
//! computes the assignment, is theirs), then ours and a second Python member join;
//! more records are produced; the first Python member leaves (commits and sends
//! LeaveGroup), then one of ours does, each time with more records produced; the
//! rest close. Whenever the group is asked to settle, the test checks what a user
//! checks: every member holds partitions, no partition has two owners, every
//! partition has one, and (simulated cluster only; the mock has no DescribeGroups)
//! the coordinator, asked with DescribeGroups, reports a Stable group using the
//! strategy under test in which each member, by client id, is assigned exactly
//! what that member says it holds. With cooperative-sticky the
//! members that stay keep what they held when another leaves. At the end every
//! record produced was read by the group exactly once (members only leave cleanly,
//! committing on revoke and on close), with the value produced at its offset, and
//! the group's committed offsets (asked with OffsetFetch) are every partition's end.
//!
//! Checked to fail: with our `planted_double_assignment` switched on, both range
//! tests fail once one of ours leads ("partition 0 held by [a, py2]"); with the
//! Python members not committing on revoke, all four fail on records read twice.
//!
//! The Python members are `tests/group_mixed_member.py` (one process each, printing
//! JSON lines), installed by `scripts/peers/install.sh`; if that fails the tests
//! fail, they never skip.
#![cfg(all(
    feature = "sim",
    feature = "tokio",
    feature = "smol",
    feature = "blocking"
))]
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use kafka_sansio::client::{Assignor, GroupProtocol, OffsetReset, ProducerRecord, TopicPartition};
use kafka_sansio::runtime::{ClientBuilder, Consumer};
use kafka_sansio::sim::ClusterConfig;
use kafka_sansio::sim_server::BackgroundServer;
use serde_json::Value;

#[path = "integration_util.rs"]
mod util;

const TOPIC: &str = "t";
const PARTITIONS: i32 = 6;
/// Records produced per partition each round.
const PER_ROUND: usize = 20;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The peers' environment from `install.sh` (installing them if needed), once per run.
fn peers() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(util::peers_env)
}

/// Which classic assignor the whole group uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Range,
    CooperativeSticky,
    /// KIP-848: the coordinator assigns (ConsumerGroupHeartbeat).
    Kip848,
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Strategy::Range => "range",
            Strategy::CooperativeSticky => "cooperative-sticky",
            Strategy::Kip848 => "consumer",
        }
    }

    fn assignor(self) -> Assignor {
        match self {
            Strategy::Range | Strategy::Kip848 => Assignor::Range,
            Strategy::CooperativeSticky => Assignor::CooperativeSticky,
        }
    }

    fn protocol(self) -> GroupProtocol {
        match self {
            Strategy::Kip848 => GroupProtocol::Consumer,
            _ => GroupProtocol::Classic,
        }
    }
}

/// Member name → the partitions it holds.
type Held = BTreeMap<String, BTreeSet<i32>>;

/// (partition, offset) → who read it, in order.
type Seen = BTreeMap<(i32, i64), Vec<String>>;

/// A member in a Python process (`tests/group_mixed_member.py`).
struct PyMember {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<Value>,
    stderr: Arc<Mutex<String>>,
    owned: BTreeSet<i32>,
    closed: bool,
}

impl PyMember {
    fn start(client: &str, boot: &str, group: &str, strategy: Strategy, name: &str) -> Self {
        let mut child = Command::new(&peers()["PEERS_PYTHON"])
            .arg(repo().join("tests/group_mixed_member.py"))
            .args([client, boot, TOPIC, group, strategy.name(), name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tests/group_mixed_member.py");
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        let who = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("{who} printed {line:?}: {e}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        PyMember {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            events,
            stderr,
            owned: BTreeSet::new(),
            closed: false,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Takes the events printed so far, and checks the process is still running or
    /// closed cleanly.
    fn drain(&mut self, seen: &mut Seen) {
        self.take_events(seen);
        if !self.closed
            && let Some(status) = self.child.try_wait().unwrap()
        {
            // Its last lines may still be in the pipe.
            std::thread::sleep(Duration::from_millis(100));
            self.take_events(seen);
            assert!(
                self.closed && status.success(),
                "{} exited ({status}):\n{}",
                self.name,
                self.stderr()
            );
        }
    }

    fn take_events(&mut self, seen: &mut Seen) {
        while let Ok(ev) = self.events.try_recv() {
            match ev["ev"].as_str().unwrap() {
                "rec" => {
                    let p = i32::try_from(ev["p"].as_i64().unwrap()).unwrap();
                    let o = ev["o"].as_i64().unwrap();
                    let v = ev["v"].as_str().unwrap();
                    assert_eq!(
                        v,
                        value(p, o),
                        "{} read the wrong value at {p}@{o}",
                        self.name
                    );
                    seen.entry((p, o)).or_default().push(self.name.clone());
                }
                "assigned" | "revoked" | "lost" => {
                    assert_ne!(ev["ev"], "lost", "{}: lost partitions: {ev}", self.name);
                    self.owned = ev["owned"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| i32::try_from(p.as_i64().unwrap()).unwrap())
                        .collect();
                }
                "committed" => {}
                "closed" => self.closed = true,
                other => panic!("{}: unknown event {other}", self.name),
            }
        }
    }

    fn close(&mut self) {
        let mut stdin = self.stdin.take().unwrap();
        writeln!(stdin, "close").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for PyMember {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The value produced at `offset` of `partition`: round `r` wrote offsets
/// `r*PER_ROUND..(r+1)*PER_ROUND`.
fn value(partition: i32, offset: i64) -> String {
    let per = PER_ROUND as i64;
    format!("r{}-p{partition}-{}", offset / per, offset % per)
}

/// One member of ours.
struct Ours {
    name: String,
    consumer: Option<Consumer>,
    client: kafka_sansio::runtime::Client,
}

impl Ours {
    fn owned(&self) -> BTreeSet<i32> {
        self.consumer.as_ref().map_or_else(BTreeSet::new, |c| {
            c.assignment()
                .iter()
                .filter(|tp| &*tp.topic == TOPIC)
                .map(|tp| tp.partition)
                .collect()
        })
    }
}

/// The group coordinator under test.
enum Peer {
    /// Our simulated cluster, served on loopback.
    Sim(BackgroundServer),
    /// librdkafka 2.16's mock cluster (`scripts/peers/start_mock.sh`; held so it
    /// stops when the test ends).
    Mock {
        _held: util::Mock,
        bootstrap: String,
    },
}

impl Peer {
    fn bootstrap(&self) -> String {
        match self {
            Peer::Sim(s) => s.bootstrap(),
            Peer::Mock { bootstrap, .. } => bootstrap.clone(),
        }
    }
}

struct Group {
    peer: Peer,
    group: String,
    strategy: Strategy,
    ours: Vec<Ours>,
    py: Vec<PyMember>,
    seen: Seen,
    rounds: usize,
    deadline: Instant,
    /// Our client asking the coordinator (DescribeGroups).
    admin: kafka_sansio::runtime::Client,
}

impl Group {
    async fn new(group: &str, strategy: Strategy, on_mock: bool) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let _ = peers();
        let peer = if on_mock {
            let mock = util::Mock::start(
                util::Librdkafka::V216,
                1,
                &[&format!("{TOPIC}:{PARTITIONS}")],
            );
            Peer::Mock {
                bootstrap: mock.bootstrap.join(","),
                _held: mock,
            }
        } else {
            let server = BackgroundServer::start(ClusterConfig {
                brokers: 2,
                base_port: 0,
                auto_create_topics: false,
                group_min_session_timeout: Duration::from_millis(500),
                ..ClusterConfig::default()
            })
            .unwrap();
            server.with_cluster(|c, _| c.create_topic(TOPIC, PARTITIONS, 2).unwrap());
            Peer::Sim(server)
        };
        let admin = ClientBuilder::new(&peer.bootstrap())
            .client_id("admin")
            .build_tokio()
            .await
            .unwrap();
        Group {
            admin,
            peer,
            group: group.to_owned(),
            strategy,
            ours: Vec::new(),
            py: Vec::new(),
            seen: Seen::new(),
            rounds: 0,
            deadline: Instant::now() + Duration::from_secs(50),
        }
    }

    /// Produces one more round of `PER_ROUND` records to every partition.
    fn produce(&mut self) {
        let client = ClientBuilder::new(&self.peer.bootstrap())
            .build_blocking()
            .unwrap();
        let producer = client.producer();
        let round = self.rounds as i64;
        let deliveries: Vec<_> = (0..PARTITIONS)
            .flat_map(|p| (0..PER_ROUND as i64).map(move |i| (p, i)))
            .map(|(p, i)| {
                let offset = round * PER_ROUND as i64 + i;
                (
                    offset,
                    producer.send(ProducerRecord::new(TOPIC, value(p, offset)).partition(p)),
                )
            })
            .collect();
        for (offset, d) in deliveries {
            assert_eq!(d.wait().unwrap().offset, Some(offset));
        }
        client.close();
        self.rounds += 1;
    }

    fn produced(&self) -> usize {
        self.rounds * PER_ROUND * PARTITIONS as usize
    }

    fn start_py(&mut self, client: &str, name: &str) {
        let boot = self.peer.bootstrap();
        self.py.push(PyMember::start(
            client,
            &boot,
            &self.group,
            self.strategy,
            name,
        ));
    }

    async fn start_ours(&mut self, name: &str) {
        let assignor = self.strategy.assignor();
        let protocol = self.strategy.protocol();
        let client = ClientBuilder::new(&self.peer.bootstrap())
            .client_id(name)
            .group_id(self.group.clone())
            .configure(move |c| {
                c.consumer.auto_offset_reset = OffsetReset::Earliest;
                c.consumer.group_protocol = protocol;
                c.consumer.assignors = vec![assignor];
                c.consumer.session_timeout = Duration::from_secs(6);
                c.consumer.heartbeat_interval = Duration::from_millis(200);
                c.consumer.rebalance_timeout = Duration::from_secs(10);
                c.consumer.auto_commit_interval = Duration::from_millis(300);
            })
            .build_tokio()
            .await
            .unwrap();
        let mut consumer = client.consumer();
        consumer.subscribe([TOPIC]).unwrap();
        self.ours.push(Ours {
            name: name.to_owned(),
            consumer: Some(consumer),
            client,
        });
    }

    /// One turn for every member: ours read what is there, the Python members'
    /// events are taken.
    async fn pump(&mut self) {
        for m in &mut self.ours {
            let Some(c) = m.consumer.as_mut() else {
                continue;
            };
            while let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(20), c.next()).await
            {
                let r = r.unwrap();
                assert_eq!(
                    r.record.value.as_deref(),
                    Some(value(r.partition, r.record.offset).as_bytes()),
                    "{} read the wrong value at {}@{}",
                    m.name,
                    r.partition,
                    r.record.offset
                );
                self.seen
                    .entry((r.partition, r.record.offset))
                    .or_default()
                    .push(m.name.clone());
            }
        }
        for m in &mut self.py {
            m.drain(&mut self.seen);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    /// Who holds what, by the members' own reports (those still in the group).
    fn reported(&self) -> Vec<(String, BTreeSet<i32>)> {
        self.ours
            .iter()
            .filter(|m| m.consumer.is_some())
            .map(|m| (m.name.clone(), m.owned()))
            .chain(
                self.py
                    .iter()
                    .filter(|m| m.stdin.is_some())
                    .map(|m| (m.name.clone(), m.owned.clone())),
            )
            .collect()
    }

    /// `Ok` once the group has settled: see the file's doc.
    async fn settled(&self) -> Result<Held, String> {
        let reported = self.reported();
        let mut owners: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
        for (name, parts) in &reported {
            if parts.is_empty() {
                return Err(format!("{name} holds nothing: {reported:?}"));
            }
            for p in parts {
                owners.entry(*p).or_default().push(name);
            }
        }
        if let Some((p, who)) = owners.iter().find(|(_, who)| who.len() > 1) {
            // Not settled yet is fine while a rebalance runs; the caller panics if
            // it stays so.
            return Err(format!("partition {p} held by {who:?}"));
        }
        if owners.keys().copied().ne(0..PARTITIONS) {
            return Err(format!("not every partition held: {reported:?}"));
        }
        let mine: Held = reported.into_iter().collect();
        if let Peer::Mock { .. } = self.peer {
            // The mock answers no DescribeGroups (and an unknown API closes the
            // connection): the members' reports are what there is.
            return Ok(mine);
        }
        // The coordinator's view, through DescribeGroups: a Stable group using the
        // strategy, each member (by its client id) assigned what it says it holds.
        let described = tokio::time::timeout(
            Duration::from_secs(5),
            self.admin.describe_groups(vec![self.group.clone()]),
        )
        .await
        .map_err(|_| "DescribeGroups took over 5 s".to_owned())?
        .map_err(|e| format!("DescribeGroups: {e}"))?
        .remove(0)
        .map_err(|e| format!("DescribeGroups: {e}"))?;
        if described.state != "Stable" {
            return Err(format!("coordinator: {}", described.state));
        }
        assert_eq!(
            (
                described.protocol_type.as_str(),
                described.protocol.as_str()
            ),
            ("consumer", self.strategy.name()),
            "the group's assignor"
        );
        let theirs: Held = described
            .members
            .iter()
            .map(|m| {
                let parts = m
                    .assignment
                    .iter()
                    .filter(|(t, _)| t == TOPIC)
                    .flat_map(|(_, ps)| ps.iter().copied())
                    .collect();
                (m.client_id.clone(), parts)
            })
            .collect();
        if theirs != mine || described.members.len() != mine.len() {
            return Err(format!(
                "the coordinator handed out {theirs:?}, the members hold {mine:?}"
            ));
        }
        Ok(mine)
    }

    /// Pumps until the group has settled and has read everything produced.
    async fn settle(&mut self, what: &str) -> Held {
        let mut ok_turns = 0;
        let mut last = Held::new();
        // A few settled turns in a row: a rebalance that just started shows.
        while ok_turns < 5 {
            self.pump().await;
            let state =
                self.settled()
                    .await
                    .and_then(|held| match self.seen.len() < self.produced() {
                        true => Err(format!("read {} of {}", self.seen.len(), self.produced())),
                        false => Ok(held),
                    });
            match state {
                Ok(held) => {
                    if ok_turns == 0 {
                        eprintln!("{} {what}: settled: {held:?}", self.group);
                    }
                    ok_turns += 1;
                    last = held;
                }
                Err(why) => {
                    ok_turns = 0;
                    assert!(
                        Instant::now() < self.deadline,
                        "{} {}: {what}: {why}\n{}",
                        self.group,
                        self.strategy.name(),
                        self.stderrs()
                    );
                }
            }
        }
        self.assert_once();
        last
    }

    fn stderrs(&self) -> String {
        self.py
            .iter()
            .map(|m| format!("--- {} stderr:\n{}", m.name, m.stderr()))
            .collect()
    }

    fn assert_once(&self) {
        let twice: Vec<_> = self.seen.iter().filter(|(_, who)| who.len() > 1).collect();
        assert!(twice.is_empty(), "{}: read twice: {twice:?}", self.group);
        let per = (self.rounds * PER_ROUND) as i64;
        let want: Vec<(i32, i64)> = (0..PARTITIONS)
            .flat_map(|p| (0..per).map(move |o| (p, o)))
            .collect();
        let got: Vec<(i32, i64)> = self.seen.keys().copied().collect();
        assert_eq!(got, want, "{}: every record read", self.group);
    }

    async fn close_py(&mut self, name: &str) {
        let i = self.py.iter().position(|m| m.name == name).unwrap();
        self.py[i].close();
        while !self.py[i].closed {
            assert!(
                Instant::now() < self.deadline,
                "{name} did not close:\n{}",
                self.py[i].stderr()
            );
            self.pump().await;
        }
    }

    async fn close_ours(&mut self, name: &str) {
        let i = self.ours.iter().position(|m| m.name == name).unwrap();
        let consumer = self.ours[i].consumer.take().unwrap();
        tokio::time::timeout(Duration::from_secs(20), consumer.close())
            .await
            .expect("our close took over 20 s")
            .unwrap();
    }

    /// Who read how many records.
    fn readers(&self) -> BTreeMap<String, usize> {
        let mut n = BTreeMap::new();
        for who in self.seen.values().flatten() {
            *n.entry(who.clone()).or_default() += 1;
        }
        n
    }

    async fn finish(mut self) -> BTreeMap<String, usize> {
        for name in self.ours.iter().map(|m| m.name.clone()).collect::<Vec<_>>() {
            if self
                .ours
                .iter()
                .any(|m| m.name == name && m.consumer.is_some())
            {
                self.close_ours(&name).await;
            }
        }
        for name in self.py.iter().map(|m| m.name.clone()).collect::<Vec<_>>() {
            if self.py.iter().any(|m| m.name == name && m.stdin.is_some()) {
                self.close_py(&name).await;
            }
        }
        self.assert_once();
        // The group's commits, asked of the coordinator (OffsetFetch).
        let end = (self.rounds * PER_ROUND) as i64;
        let committed = tokio::time::timeout(
            Duration::from_secs(10),
            self.admin.fetch_committed(
                &self.group,
                (0..PARTITIONS)
                    .map(|p| TopicPartition::new(TOPIC, p))
                    .collect(),
            ),
        )
        .await
        .expect("OffsetFetch took over 10 s")
        .unwrap();
        assert_eq!(committed.len(), PARTITIONS as usize);
        for c in committed {
            assert_eq!(
                c.offset,
                Ok(end),
                "{}: the group committed {c:?} to its end",
                self.group
            );
        }
        let readers = self.readers();
        for m in std::mem::take(&mut self.ours) {
            m.client.close().await;
        }
        self.admin.close().await;
        readers
    }
}

/// The scenario of the file's doc: `first` (Python) joins alone, then our `a`,
/// `second` (Python) and our `b`; `first` leaves, then `a`; then the rest close.
async fn mixed_group(group: &str, strategy: Strategy, first: &str, second: &str, on_mock: bool) {
    let mut g = Group::new(group, strategy, on_mock).await;
    g.produce();
    g.start_py(first, "py1");
    g.settle("py1 alone").await;
    g.start_ours("a").await;
    g.settle("py1 + a").await;
    g.start_py(second, "py2");
    g.start_ours("b").await;
    g.settle("py1 + a + py2 + b").await;
    g.produce();
    let mut before = g.settle("all four, second round").await;
    // The first member, the first generation's leader, leaves: the others take its
    // partitions over from its commits. Then one of ours leaves.
    for (leaving, theirs) in [("py1", true), ("a", false)] {
        if theirs {
            g.close_py(leaving).await;
        } else {
            g.close_ours(leaving).await;
        }
        g.produce();
        let after = g.settle(&format!("after {leaving} left")).await;
        // Cooperative-sticky keeps what the others held (only the leaver's
        // partitions move).
        if strategy == Strategy::CooperativeSticky {
            for (who, held) in &after {
                assert!(
                    held.is_superset(&before[who]),
                    "{group}: after {leaving} left {who} went from {:?} to {held:?}",
                    before[who]
                );
            }
        }
        before = after;
    }
    let readers = g.finish().await;
    // Every member read something (records were there for each of them).
    for who in ["py1", "a", "py2", "b"] {
        assert!(
            readers.get(who).copied().unwrap_or(0) > 0,
            "{group}: {who} read nothing: {readers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_and_our_members_share_a_range_group() {
    mixed_group(
        "mixed-range",
        Strategy::Range,
        "confluent",
        "confluent",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_and_our_members_share_a_cooperative_sticky_group() {
    mixed_group(
        "mixed-coop",
        Strategy::CooperativeSticky,
        "confluent",
        "confluent",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_confluent_kafka_and_our_members_share_a_range_group() {
    mixed_group(
        "mixed-kafka-python",
        Strategy::Range,
        "kafka-python",
        "confluent",
        false,
    )
    .await;
}

/// KIP-848 on librdkafka 2.16's mock, the one coordinator here that speaks it: our
/// members with confluent-kafka members (`group.protocol=consumer`), the mock's
/// assignor deciding. The coordinator's view is not asked (no DescribeGroups on the
/// mock); the rest is checked as above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_and_our_kip848_members_share_a_group_on_librdkafkas_mock() {
    mixed_group(
        "mixed-kip848",
        Strategy::Kip848,
        "confluent",
        "confluent",
        true,
    )
    .await;
}
