//! Consumer groups against the simulated cluster on a virtual clock: the classic
//! protocol with eager (range, roundrobin) and cooperative (cooperative-sticky)
//! rebalancing, rebalance events and their acknowledgement, commits (auto, on
//! revoke, by hand, never backwards), leaving, and the fall back to classic when
//! the coordinator lacks KIP-848; DescribeGroups and ListGroups as Kafka answers them.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_sansio::client::{
    Assignor, Client, ClientConfig, ClientError, Event, GroupProtocol, OffsetReset, OpId, OpOutput,
    ProducerRecord, TopicPartition,
};
use kafka_sansio::sim::{ClusterConfig, HostId, NetworkConfig, Simulation};

const GROUP: &str = "g";

fn sim(seed: u64, brokers: usize) -> Simulation {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    Simulation::new(
        seed,
        ClusterConfig {
            brokers,
            auto_create_topics: false,
            group_min_session_timeout: Duration::from_millis(500),
            ..Default::default()
        },
        NetworkConfig::default(),
        Instant::now(),
    )
}

fn member_config(
    sim: &Simulation,
    seed: u64,
    tweak: impl FnOnce(&mut ClientConfig),
) -> ClientConfig {
    let mut config = ClientConfig::new(&sim.bootstrap()).unwrap();
    config.seed = seed;
    config.consumer.group_id = Some(GROUP.into());
    config.consumer.auto_offset_reset = OffsetReset::Earliest;
    config.consumer.session_timeout = Duration::from_secs(6);
    config.consumer.heartbeat_interval = Duration::from_millis(500);
    config.consumer.rebalance_timeout = Duration::from_secs(10);
    config.consumer.auto_commit_interval = Duration::from_secs(1);
    tweak(&mut config);
    config
}

/// One group member as an application drives it: acknowledges every rebalance at
/// once, polls everything, and remembers what it saw.
struct Member {
    host: HostId,
    /// (partition, offset, value) in the order polled.
    got: Vec<(i32, i64, String)>,
    events: Vec<Event>,
    /// Partitions it may consume now, by its own events.
    mine: BTreeSet<TopicPartition>,
    ack: bool,
    /// The application is stuck: it neither reads events nor polls.
    stalled: bool,
    /// Most records taken a poll.
    per_poll: usize,
    /// Calls into the client only when an event asks for it (records ready, a
    /// rebalance), as a runtime's driver does, instead of on every step.
    lazy: bool,
    /// The last poll may have left records (it took `per_poll`).
    more: bool,
}

impl Member {
    fn join(
        sim: &mut Simulation,
        seed: u64,
        topics: &[&str],
        tweak: impl FnOnce(&mut ClientConfig),
    ) -> Member {
        let config = member_config(sim, seed, tweak);
        let host = sim.add_client(Client::new(config, sim.now()));
        let now = sim.now();
        sim.client(host)
            .subscribe(now, topics.iter().copied())
            .unwrap();
        Member {
            host,
            got: Vec::new(),
            events: Vec::new(),
            mine: BTreeSet::new(),
            ack: true,
            stalled: false,
            per_poll: 10_000,
            // Half the members (odd seeds) call in as a runtime's driver does, so
            // that a client which moves only when the application calls is seen
            // (the KIP-848 fallback once waited for an unrelated timer).
            lazy: seed % 2 == 1,
            more: false,
        }
    }

    /// Handles events and polls records; panics on a record of a partition the
    /// member was not given.
    fn step(&mut self, sim: &mut Simulation) {
        if self.stalled {
            return;
        }
        let now = sim.now();
        let events: Vec<Event> = sim.client_events(self.host).collect();
        let woken = !self.lazy
            || self.more
            || events
                .iter()
                .any(|e| matches!(e, Event::RecordsReady | Event::Rebalance { .. }));
        for e in events {
            if let Event::Rebalance {
                revoked,
                lost,
                assigned,
            } = &e
            {
                for tp in revoked.iter().chain(lost) {
                    assert!(self.mine.remove(tp), "{tp} revoked but not held");
                }
                for tp in assigned {
                    assert!(self.mine.insert(tp.clone()), "{tp} assigned twice");
                }
                if self.ack {
                    sim.client(self.host).ack_rebalance(now);
                }
            }
            self.events.push(e);
        }
        if !woken {
            return;
        }
        let polled = sim.client(self.host).poll_records(now, self.per_poll);
        self.more = polled.len() == self.per_poll;
        for r in polled {
            let tp = TopicPartition::new(r.topic.clone(), r.partition);
            assert!(
                self.mine.contains(&tp),
                "polled {tp}@{} without holding it",
                r.record.offset
            );
            let v = String::from_utf8(r.record.value().unwrap().to_vec()).unwrap();
            self.got.push((r.partition, r.record.offset, v));
        }
    }

    fn rebalances(
        &self,
    ) -> Vec<(
        Vec<TopicPartition>,
        Vec<TopicPartition>,
        Vec<TopicPartition>,
    )> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Rebalance {
                    revoked,
                    lost,
                    assigned,
                } => Some((revoked.clone(), lost.clone(), assigned.clone())),
                _ => None,
            })
            .collect()
    }

    fn stable(&self, sim: &mut Simulation) -> bool {
        sim.client(self.host)
            .group_status()
            .is_some_and(|s| s.stable)
    }
}

/// Steps every member until `done` or `limit`.
fn run(
    sim: &mut Simulation,
    members: &mut [&mut Member],
    limit: Duration,
    mut done: impl FnMut(&mut Simulation, &[&mut Member]) -> bool,
) -> bool {
    sim.run_until(limit, |sim| {
        for m in members.iter_mut() {
            m.step(sim);
        }
        done(sim, members)
    })
}

/// Sends `n` records to each partition (values `p{partition}-{i}`), delivered.
fn produce(sim: &mut Simulation, topic: &str, partitions: i32, n: usize, tag: &str) {
    let mut config = ClientConfig::new(&sim.bootstrap()).unwrap();
    config.seed = 99;
    let host = sim.add_client(Client::new(config, sim.now()));
    let now = sim.now();
    let mut ids = 0;
    for p in 0..partitions {
        for i in 0..n {
            sim.client(host)
                .send(
                    now,
                    ProducerRecord::new(topic, format!("{tag}p{p}-{i}")).partition(p),
                )
                .unwrap();
            ids += 1;
        }
    }
    let mut delivered = 0;
    sim.run_until(Duration::from_secs(30), |sim| {
        delivered += sim
            .client_events(host)
            .filter(|e| matches!(e, Event::Delivered { result: Ok(_), .. }))
            .count();
        delivered == ids
    });
    assert_eq!(delivered, ids);
}

/// Steps the members until every one is stable and they read `want` records in
/// all; fails after 30 s.
fn settle(sim: &mut Simulation, members: &mut [&mut Member], want: usize) {
    assert!(
        run(sim, members, Duration::from_secs(30), |sim, ms| {
            all_stable(sim, ms) && ms.iter().map(|m| m.got.len()).sum::<usize>() == want
        }),
        "the group did not settle with {want} records read"
    );
}

/// Steps the members for `d`, whatever happens.
fn run_for(sim: &mut Simulation, members: &mut [&mut Member], d: Duration) {
    run(sim, members, d, |_, _| false);
}

/// How operation `op` of member `m` ended, if it did.
fn ended(m: &Member, op: OpId) -> Option<Result<OpOutput, ClientError>> {
    m.events.iter().find_map(|e| match e {
        Event::Done { op: o, result } if *o == op => Some(result.clone()),
        _ => None,
    })
}

/// Steps the members until operation `op` of the first one ends (within
/// `limit`); its result and when.
fn run_until_ended(
    sim: &mut Simulation,
    members: &mut [&mut Member],
    op: OpId,
    limit: Duration,
) -> (Result<OpOutput, ClientError>, Instant) {
    let mut out = None;
    run(sim, members, limit, |sim, ms| {
        out = ended(ms[0], op).map(|r| (r, sim.now()));
        out.is_some()
    });
    out.expect("the operation ended")
}

fn all_stable(sim: &mut Simulation, members: &[&mut Member]) -> bool {
    members.iter().all(|m| m.stable(sim))
}

/// Every record exactly once across members.
fn assert_exactly_once(members: &[&Member], want: usize) {
    let mut seen: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for m in members {
        for (p, o, _) in &m.got {
            *seen.entry((*p, *o)).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    assert_eq!(seen.len(), want, "every record once");
}

#[test]
fn a_single_member_gets_every_partition_and_commits_what_it_read() {
    let mut sim = sim(1, 3);
    sim.cluster().create_topic("t", 4, 3).unwrap();
    produce(&mut sim, "t", 4, 50, "");
    let mut a = Member::join(&mut sim, 1, &["t"], |_| {});
    assert!(run(
        &mut sim,
        &mut [&mut a],
        Duration::from_secs(30),
        |_, ms| ms[0].got.len() == 200
    ));
    assert_eq!(a.rebalances().len(), 1);
    assert_eq!(a.rebalances()[0].2.len(), 4);
    let status = sim.client(a.host).group_status().unwrap();
    assert_eq!(status.protocol, GroupProtocol::Classic);
    assert!(status.leader);
    // Auto-commit stores the positions.
    sim.run_for(Duration::from_secs(3));
    for p in 0..4 {
        assert_eq!(
            sim.cluster().committed_offset(GROUP, "t", p),
            Some(50),
            "partition {p}"
        );
    }
}

#[test]
fn eager_range_splits_partitions_and_hands_them_over_exactly_once() {
    let mut sim = sim(2, 3);
    sim.cluster().create_topic("t", 6, 3).unwrap();
    produce(&mut sim, "t", 6, 100, "a");
    let mut a = Member::join(&mut sim, 1, &["t"], |c| {
        c.consumer.assignors = vec![Assignor::Range]
    });
    assert!(run(
        &mut sim,
        &mut [&mut a],
        Duration::from_secs(30),
        |_, ms| ms[0].got.len() >= 300
    ));
    let mut b = Member::join(&mut sim, 2, &["t"], |c| {
        c.consumer.assignors = vec![Assignor::Range]
    });
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |sim, ms| { all_stable(sim, ms) && ms[0].mine.len() == 3 && ms[1].mine.len() == 3 }
    ));
    produce(&mut sim, "t", 6, 100, "b");
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |_, ms| { ms[0].got.len() + ms[1].got.len() >= 1200 }
    ));
    assert_exactly_once(&[&a, &b], 1200);
    // Eager: a gave up everything, then got its half back.
    let ra = a.rebalances();
    assert_eq!(ra[1].0.len(), 6, "revoked all before rejoining: {ra:?}");
    assert_eq!(ra[2].2.len(), 3);
    // Range: consecutive partitions.
    let mine: Vec<i32> = a
        .mine
        .iter()
        .chain(&b.mine)
        .map(|tp| tp.partition)
        .collect();
    assert!(
        mine == [0, 1, 2, 3, 4, 5] || mine == [3, 4, 5, 0, 1, 2],
        "{mine:?}"
    );
}

#[test]
fn roundrobin_deals_partitions_in_turn() {
    let mut sim = sim(3, 1);
    sim.cluster().create_topic("t", 4, 1).unwrap();
    let rr = |c: &mut ClientConfig| c.consumer.assignors = vec![Assignor::RoundRobin];
    let mut a = Member::join(&mut sim, 1, &["t"], rr);
    let mut b = Member::join(&mut sim, 2, &["t"], rr);
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |sim, ms| { all_stable(sim, ms) && ms[0].mine.len() == 2 && ms[1].mine.len() == 2 }
    ));
    let a_parts: Vec<i32> = a.mine.iter().map(|tp| tp.partition).collect();
    assert!(a_parts == [0, 2] || a_parts == [1, 3], "{a_parts:?}");
}

#[test]
fn cooperative_sticky_revokes_only_what_moves() {
    let mut sim = sim(4, 3);
    sim.cluster().create_topic("t", 6, 3).unwrap();
    produce(&mut sim, "t", 6, 100, "a");
    let coop = |c: &mut ClientConfig| c.consumer.assignors = vec![Assignor::CooperativeSticky];
    let mut a = Member::join(&mut sim, 1, &["t"], coop);
    assert!(run(
        &mut sim,
        &mut [&mut a],
        Duration::from_secs(30),
        |_, ms| ms[0].got.len() >= 200
    ));
    let mut b = Member::join(&mut sim, 2, &["t"], coop);
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |sim, ms| { all_stable(sim, ms) && ms[0].mine.len() == 3 && ms[1].mine.len() == 3 }
    ));
    produce(&mut sim, "t", 6, 100, "b");
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |_, ms| { ms[0].got.len() + ms[1].got.len() >= 1200 }
    ));
    assert_exactly_once(&[&a, &b], 1200);
    // a never revoked what it kept: one revocation of exactly the three that moved.
    let ra = a.rebalances();
    let revoked: Vec<&Vec<TopicPartition>> =
        ra.iter().map(|r| &r.0).filter(|r| !r.is_empty()).collect();
    assert_eq!(revoked.len(), 1, "{ra:?}");
    assert_eq!(revoked[0].len(), 3);
    assert!(revoked[0].iter().all(|tp| b.mine.contains(tp)));
    assert!(ra.iter().all(|r| r.1.is_empty()), "nothing lost");
}

#[test]
fn a_member_that_leaves_hands_its_partitions_over_after_committing() {
    let mut sim = sim(5, 3);
    sim.cluster().create_topic("t", 4, 3).unwrap();
    produce(&mut sim, "t", 4, 100, "a");
    let mut a = Member::join(&mut sim, 1, &["t"], |_| {});
    let mut b = Member::join(&mut sim, 2, &["t"], |_| {});
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |sim, ms| { all_stable(sim, ms) && ms[0].got.len() + ms[1].got.len() >= 400 }
    ));
    let now = sim.now();
    let op = sim.client(b.host).leave_group(now);
    let mut left = false;
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |_, ms| {
            left |= ms[1]
                .events
                .iter()
                .any(|e| matches!(e, Event::Done { op: o, result: Ok(_) } if *o == op));
            left && ms[0].mine.len() == 4
        }
    ));
    assert!(b.mine.is_empty());
    produce(&mut sim, "t", 4, 100, "b");
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |_, ms| { ms[0].got.len() + ms[1].got.len() >= 800 }
    ));
    assert_exactly_once(&[&a, &b], 800);
}

#[test]
fn a_leave_the_coordinator_refuses_is_reported_and_the_member_is_out_anyway() {
    use kafka_sansio::messages::{ApiKey, ErrorCode};
    // (error injected into LeaveGroup, whether the leave reports it)
    for (code, reported) in [
        (ErrorCode::GROUP_AUTHORIZATION_FAILED, true),
        (ErrorCode::UNKNOWN_MEMBER_ID, false),
    ] {
        let mut sim = sim(15, 1);
        sim.cluster().create_topic("t", 2, 1).unwrap();
        let mut a = Member::join(&mut sim, 1, &["t"], |_| {});
        assert!(run(
            &mut sim,
            &mut [&mut a],
            Duration::from_secs(30),
            |sim, ms| all_stable(sim, ms) && ms[0].mine.len() == 2
        ));
        sim.cluster().inject_error(ApiKey::LeaveGroup, code, 1);
        let now = sim.now();
        let op = sim.client(a.host).leave_group(now);
        let mut result = None;
        assert!(run(
            &mut sim,
            &mut [&mut a],
            Duration::from_secs(30),
            |_, ms| {
                result = ms[0].events.iter().find_map(|e| match e {
                    Event::Done { op: o, result } if *o == op => Some(result.clone()),
                    _ => None,
                });
                result.is_some()
            }
        ));
        assert_eq!(sim.cluster().injected_pending(ApiKey::LeaveGroup), 0);
        match result.unwrap() {
            Err(ClientError::Broker { api, code: c, .. }) if reported => {
                assert_eq!((api, c), (ApiKey::LeaveGroup, code));
            }
            Ok(_) if !reported => {}
            other => panic!("{code:?}: the leave ended with {other:?}"),
        }
        // Out of the group here either way: nothing owned, nothing fetched.
        assert!(a.mine.is_empty());
        assert!(
            sim.client(a.host)
                .group_status()
                .is_none_or(|s| s.owned.is_empty())
        );
    }
}

#[test]
fn assigned_partitions_wait_for_the_acknowledgement() {
    let mut sim = sim(6, 1);
    sim.cluster().create_topic("t", 2, 1).unwrap();
    produce(&mut sim, "t", 2, 10, "");
    let mut a = Member::join(&mut sim, 1, &["t"], |_| {});
    a.ack = false;
    assert!(run(
        &mut sim,
        &mut [&mut a],
        Duration::from_secs(10),
        |_, ms| !ms[0].mine.is_empty()
    ));
    sim.run_for(Duration::from_secs(2));
    a.step(&mut sim);
    assert!(
        a.got.is_empty(),
        "nothing fetched before the acknowledgement"
    );
    let now = sim.now();
    sim.client(a.host).ack_rebalance(now);
    assert!(run(
        &mut sim,
        &mut [&mut a],
        Duration::from_secs(10),
        |_, ms| ms[0].got.len() == 20
    ));
}

#[test]
fn an_unacknowledged_rebalance_goes_on_after_the_rebalance_timeout() {
    let mut sim = sim(7, 1);
    sim.cluster().create_topic("t", 2, 1).unwrap();
    let mut a = Member::join(&mut sim, 1, &["t"], |c| {
        c.consumer.rebalance_timeout = Duration::from_secs(3)
    });
    a.ack = false;
    assert!(run(
        &mut sim,
        &mut [&mut a],
        Duration::from_secs(10),
        |_, ms| {
            ms[0].events.iter().any(|e| {
                matches!(
                    e,
                    Event::ConsumerError {
                        error: ClientError::Timeout { .. },
                        ..
                    }
                )
            })
        }
    ));
    assert!(a.stable(&mut sim));
}

#[test]
fn manual_commits_are_ordered_and_never_go_backwards() {
    let mut sim = sim(8, 1);
    sim.cluster().create_topic("t", 1, 1).unwrap();
    produce(&mut sim, "t", 1, 20, "");
    let mut a = Member::join(&mut sim, 1, &["t"], |c| {
        c.consumer.enable_auto_commit = false
    });
    assert!(run(
        &mut sim,
        &mut [&mut a],
        Duration::from_secs(10),
        |_, ms| ms[0].got.len() == 20
    ));
    let tp = TopicPartition::new("t", 0);
    let now = sim.now();
    let first = sim.client(a.host).commit(now, None);
    let back = sim.client(a.host).commit(now, Some(vec![(tp.clone(), 5)]));
    let done = |sim: &mut Simulation, op| sim.run_until_done(a.host, op, Duration::from_secs(10));
    let Ok(OpOutput::Committed(r)) = done(&mut sim, first) else {
        panic!()
    };
    assert_eq!(r[0].offset, Ok(20));
    let Ok(OpOutput::Committed(r)) = done(&mut sim, back) else {
        panic!()
    };
    assert!(
        matches!(r[0].offset, Err(ClientError::InvalidArgument(_))),
        "{r:?}"
    );
    assert_eq!(sim.cluster().committed_offset(GROUP, "t", 0), Some(20));
    // After a seek back, a lower commit is the application's decision.
    let now = sim.now();
    assert!(
        sim.client(a.host)
            .seek(now, &tp, kafka_sansio::client::Offset::At(5))
    );
    let op = sim.client(a.host).commit(now, Some(vec![(tp.clone(), 5)]));
    let Ok(OpOutput::Committed(r)) = done(&mut sim, op) else {
        panic!()
    };
    assert_eq!(r[0].offset, Ok(5));
    assert_eq!(sim.cluster().committed_offset(GROUP, "t", 0), Some(5));
}

#[test]
fn the_kip848_protocol_falls_back_to_classic_where_the_coordinator_lacks_it() {
    // How long a member speaking `protocol` takes to read everything from a
    // coordinator without KIP-848.
    let read_all = |protocol: GroupProtocol| {
        let mut sim = Simulation::new(
            9,
            ClusterConfig {
                auto_create_topics: false,
                group_min_session_timeout: Duration::from_millis(500),
                consumer_group_protocol: false,
                ..Default::default()
            },
            NetworkConfig::default(),
            Instant::now(),
        );
        sim.cluster().create_topic("t", 2, 1).unwrap();
        produce(&mut sim, "t", 2, 10, "");
        let mut a = Member::join(&mut sim, 1, &["t"], |c| {
            c.consumer.group_protocol = protocol
        });
        let start = sim.now();
        assert!(run(
            &mut sim,
            &mut [&mut a],
            Duration::from_secs(20),
            |_, ms| ms[0].got.len() == 20
        ));
        assert_eq!(
            sim.client(a.host).group_status().unwrap().protocol,
            GroupProtocol::Classic
        );
        sim.now() - start
    };
    let classic = read_all(GroupProtocol::Classic);
    let fallen_back = read_all(GroupProtocol::Consumer);
    // A member whose application does not call in (as a runtime's driver, which
    // moves the client only on its own timers and sockets) falls back as soon.
    let mut sim = Simulation::new(
        9,
        ClusterConfig {
            consumer_group_protocol: false,
            ..Default::default()
        },
        NetworkConfig::default(),
        Instant::now(),
    );
    sim.cluster().create_topic("t", 2, 1).unwrap();
    let mut a = Member::join(&mut sim, 1, &["t"], |c| {
        c.consumer.group_protocol = GroupProtocol::Consumer
    });
    a.stalled = true;
    let start = sim.now();
    assert!(run(
        &mut sim,
        &mut [&mut a],
        Duration::from_secs(20),
        |sim, ms| {
            sim.client(ms[0].host)
                .group_status()
                .is_some_and(|s| s.protocol == GroupProtocol::Classic)
        }
    ));
    let waited = sim.now() - start;
    assert!(
        waited < Duration::from_secs(1),
        "the fallback waited {waited:?}"
    );
    // The fallback is decided by the coordinator's ApiVersions: it costs no wait
    // (it once waited for an unrelated timer, 10 s on tansu).
    assert!(
        fallen_back <= classic + Duration::from_millis(100),
        "classic {classic:?}, after the fallback {fallen_back:?}"
    );
}

#[test]
fn kip848_members_split_partitions_and_hand_them_over_exactly_once() {
    let mut sim = sim(10, 3);
    sim.cluster().create_topic("t", 6, 3).unwrap();
    produce(&mut sim, "t", 6, 100, "a");
    let kip848 = |c: &mut ClientConfig| c.consumer.group_protocol = GroupProtocol::Consumer;
    let mut a = Member::join(&mut sim, 1, &["t"], kip848);
    assert!(run(
        &mut sim,
        &mut [&mut a],
        Duration::from_secs(30),
        |_, ms| ms[0].got.len() >= 200
    ));
    assert_eq!(
        sim.client(a.host).group_status().unwrap().protocol,
        GroupProtocol::Consumer
    );
    let mut b = Member::join(&mut sim, 2, &["t"], kip848);
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(60),
        |sim, ms| { all_stable(sim, ms) && ms[0].mine.len() == 3 && ms[1].mine.len() == 3 }
    ));
    produce(&mut sim, "t", 6, 100, "b");
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |_, ms| { ms[0].got.len() + ms[1].got.len() >= 1200 }
    ));
    assert_exactly_once(&[&a, &b], 1200);
    // KIP-848 is incremental: a revoked only what moved and never lost anything.
    let ra = a.rebalances();
    let revoked: usize = ra.iter().map(|r| r.0.len()).sum();
    assert_eq!(revoked, 3, "{ra:?}");
    assert!(ra.iter().all(|r| r.1.is_empty()), "nothing lost: {ra:?}");
    // b leaves; a takes everything back and reads the rest once.
    let now = sim.now();
    let op = sim.client(b.host).leave_group(now);
    let mut left = false;
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(60),
        |_, ms| {
            left |= ms[1]
                .events
                .iter()
                .any(|e| matches!(e, Event::Done { op: o, result: Ok(_) } if *o == op));
            left && ms[0].mine.len() == 6
        }
    ));
    produce(&mut sim, "t", 6, 100, "c");
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |_, ms| { ms[0].got.len() + ms[1].got.len() >= 1800 }
    ));
    assert_exactly_once(&[&a, &b], 1800);
}

/// The broker coordinating the group crashes and stays down: its groups move
/// with their `__consumer_offsets` partition, and the member must find the new
/// coordinator on its own, keep its membership and partitions (no rebalance),
/// and get its commits there. Until the client looked a coordinator up again
/// when its connection failed, the member asked the dead broker until it came
/// back: its session ran out at the new coordinator and no commit landed.
fn a_member_whose_coordinator_crashes_finds_the_new_one(protocol: GroupProtocol) {
    let mut sim = sim(21, 3);
    sim.cluster().create_topic("t", 4, 3).unwrap();
    produce(&mut sim, "t", 4, 50, "a");
    let mut a = Member::join(&mut sim, 1, &["t"], |c| {
        c.consumer.group_protocol = protocol
    });
    settle(&mut sim, &mut [&mut a], 200);
    assert_eq!(
        sim.client(a.host).group_status().unwrap().protocol,
        protocol
    );
    let old = sim.cluster().coordinator(GROUP).unwrap();
    let now = sim.now();
    sim.cluster().crash_broker(old, now);
    let new = sim.cluster().coordinator(GROUP).unwrap();
    assert_ne!(new, old);
    produce(&mut sim, "t", 4, 10, "b");
    // Longer than the session (6 s): a member that never reached the new
    // coordinator would be gone from the group by the end.
    run_for(&mut sim, &mut [&mut a], Duration::from_secs(10));
    assert_eq!(a.got.len(), 240);
    assert_eq!(
        a.rebalances().len(),
        1,
        "the member kept its partitions: {:?}",
        a.rebalances()
    );
    assert!(a.stable(&mut sim));
    let members = sim.cluster().group(GROUP).unwrap().members.len();
    assert_eq!(members, 1, "the new coordinator knows the member");
    for p in 0..4 {
        assert_eq!(
            sim.cluster().committed_offset(GROUP, "t", p),
            Some(60),
            "partition {p}: auto-commit reached the new coordinator"
        );
    }
    assert!(!sim.cluster().is_up(old));
}

#[test]
fn a_classic_member_whose_coordinator_crashes_finds_the_new_one() {
    a_member_whose_coordinator_crashes_finds_the_new_one(GroupProtocol::Classic);
}

#[test]
fn a_kip848_member_whose_coordinator_crashes_finds_the_new_one() {
    a_member_whose_coordinator_crashes_finds_the_new_one(GroupProtocol::Consumer);
}

/// Partitions added to a subscribed topic are taken up by the group within the
/// metadata refresh interval (the classic leader sees the new count and
/// rebalances; a KIP-848 coordinator assigns them itself), each to one member,
/// and their records are read from the start (none were committed).
fn partitions_added_to_a_subscribed_topic_are_consumed(
    protocol: GroupProtocol,
    assignor: Assignor,
) {
    let mut sim = sim(23, 3);
    sim.cluster().create_topic("t", 2, 3).unwrap();
    produce(&mut sim, "t", 2, 20, "a");
    let tweak = |c: &mut ClientConfig| {
        c.consumer.group_protocol = protocol;
        c.consumer.assignors = vec![assignor];
        c.metadata_max_age = Duration::from_secs(10);
    };
    let mut a = Member::join(&mut sim, 1, &["t"], tweak);
    let mut b = Member::join(&mut sim, 2, &["t"], tweak);
    settle(&mut sim, &mut [&mut a, &mut b], 40);
    let OpOutput::TopicResults(grown) = admin_op(&mut sim, |c, now| {
        c.create_partitions(now, vec![("t".into(), 4)], Duration::from_secs(5))
    }) else {
        panic!("not topic results")
    };
    grown[0].result.clone().unwrap();
    produce(&mut sim, "t", 4, 5, "b");
    let taken_up = run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(40),
        |sim, ms| {
            all_stable(sim, ms)
                && ms[0].mine.len() + ms[1].mine.len() == 4
                && ms[0].got.len() + ms[1].got.len() == 60
        },
    );
    assert!(
        taken_up,
        "the new partitions were not consumed: a holds {:?}, b {:?}, {} records read",
        a.mine,
        b.mine,
        a.got.len() + b.got.len()
    );
    assert!(a.mine.is_disjoint(&b.mine), "{:?} {:?}", a.mine, b.mine);
    assert_exactly_once(&[&a, &b], 60);
}

#[test]
fn partitions_added_to_a_subscribed_topic_are_consumed_by_a_classic_eager_group() {
    partitions_added_to_a_subscribed_topic_are_consumed(GroupProtocol::Classic, Assignor::Range);
}

#[test]
fn partitions_added_to_a_subscribed_topic_are_consumed_by_a_cooperative_group() {
    partitions_added_to_a_subscribed_topic_are_consumed(
        GroupProtocol::Classic,
        Assignor::CooperativeSticky,
    );
}

#[test]
fn partitions_added_to_a_subscribed_topic_are_consumed_by_a_kip848_group() {
    partitions_added_to_a_subscribed_topic_are_consumed(GroupProtocol::Consumer, Assignor::Range);
}

/// A pause in a group lasts while the member keeps the partition, across a
/// cooperative rebalance that moves other partitions, and ends with the
/// partition: the member it moves to reads it from where the pausing member
/// stopped (its commit on revoke), and nothing is read twice or skipped.
#[test]
fn a_pause_lasts_while_the_partition_stays_and_ends_when_it_moves() {
    let mut sim = sim(24, 3);
    sim.cluster().create_topic("t", 4, 3).unwrap();
    produce(&mut sim, "t", 4, 20, "a");
    let coop = |c: &mut ClientConfig| c.consumer.assignors = vec![Assignor::CooperativeSticky];
    let mut a = Member::join(&mut sim, 1, &["t"], coop);
    settle(&mut sim, &mut [&mut a], 80);
    let paused: Vec<TopicPartition> = (0..4).map(|p| TopicPartition::new("t", p)).collect();
    let now = sim.now();
    sim.client(a.host).pause(now, &paused);
    produce(&mut sim, "t", 4, 10, "b");
    run_for(&mut sim, &mut [&mut a], Duration::from_secs(3));
    assert_eq!(a.got.len(), 80, "nothing of a paused partition is read");
    // b joins: a gives two partitions up and keeps two, still paused.
    let mut b = Member::join(&mut sim, 2, &["t"], coop);
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |sim, ms| all_stable(sim, ms) && ms[1].mine.len() == 2 && ms[1].got.len() == 20
    ));
    assert_eq!(a.mine.len(), 2);
    run_for(&mut sim, &mut [&mut a, &mut b], Duration::from_secs(3));
    assert_eq!(a.got.len(), 80, "a's kept partitions stay paused");
    assert!(
        b.got.iter().all(|(_, o, _)| *o >= 20),
        "b starts where a stopped: {:?}",
        b.got
    );
    let kept: Vec<TopicPartition> = a.mine.iter().cloned().collect();
    let now = sim.now();
    sim.client(a.host).resume(now, &kept);
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |_, ms| ms[0].got.len() + ms[1].got.len() == 120
    ));
    assert_exactly_once(&[&a, &b], 120);
}

/// A leave that cannot reach the coordinator (its only broker is down) ends by
/// its timeout with a typed error, the member out of the group: its partitions
/// are given up (revoked or lost), and nothing waits for the broker to return.
#[test]
fn a_leave_that_cannot_reach_the_coordinator_ends_by_its_timeout() {
    let mut sim = sim(25, 1);
    sim.cluster().create_topic("t", 2, 1).unwrap();
    produce(&mut sim, "t", 2, 10, "a");
    let mut a = Member::join(&mut sim, 1, &["t"], |_| {});
    settle(&mut sim, &mut [&mut a], 20);
    let now = sim.now();
    sim.cluster().crash_broker(0, now);
    let started = sim.now();
    let op = sim
        .client(a.host)
        .with_timeout(Duration::from_secs(2), |c| c.leave_group(now));
    let (result, at) = run_until_ended(&mut sim, &mut [&mut a], op, Duration::from_secs(10));
    assert!(
        matches!(result, Err(ClientError::Timeout { .. })),
        "{result:?}"
    );
    let took = at - started;
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(2100),
        "ended after {took:?}"
    );
    assert!(a.mine.is_empty(), "still holds {:?}", a.mine);
    assert!(
        sim.client(a.host)
            .group_status()
            .is_none_or(|s| !s.stable && s.owned.is_empty()),
        "{:?}",
        sim.client(a.host).group_status()
    );
}

/// A commit refused with REBALANCE_IN_PROGRESS while the member is in a stable
/// generation (its SyncGroup answer came first, on the group's own connection,
/// and the refusal, for a commit the coordinator saw before that SyncGroup,
/// after it) goes again at once and lands. It was held for a SyncGroup answer
/// that had come already: the commit never ended, nor did any later one, and
/// auto-commit stopped for good (found by the group suite, seed 54683).
#[test]
fn a_commit_refused_for_a_rebalance_that_is_over_goes_again() {
    let mut sim = sim(26, 3);
    sim.cluster().create_topic("t", 2, 3).unwrap();
    produce(&mut sim, "t", 2, 10, "a");
    let mut a = Member::join(&mut sim, 1, &["t"], |c| {
        c.consumer.enable_auto_commit = false;
    });
    settle(&mut sim, &mut [&mut a], 20);
    sim.cluster().inject_group_error(
        GROUP,
        Some(kafka_sansio::messages::ApiKey::OffsetCommit),
        kafka_sansio::messages::ErrorCode::REBALANCE_IN_PROGRESS,
        1,
    );
    let now = sim.now();
    let op = sim.client(a.host).commit(now, None);
    let (result, _) = run_until_ended(&mut sim, &mut [&mut a], op, Duration::from_secs(10));
    assert!(result.is_ok(), "{result:?}");
    for p in 0..2 {
        assert_eq!(sim.cluster().committed_offset(GROUP, "t", p), Some(10));
    }
    assert!(a.stable(&mut sim));
}

/// An application's commit ends by its timeout whatever holds it: here the
/// network takes 5 s each way, and a commit given 1 s ends with a timeout at
/// 1 s (it waited for its request, which had the client's own 60 s, before).
#[test]
fn a_commit_ends_by_its_timeout_when_the_coordinator_is_slow() {
    let mut sim = sim(27, 3);
    sim.cluster().create_topic("t", 2, 3).unwrap();
    produce(&mut sim, "t", 2, 10, "a");
    let mut a = Member::join(&mut sim, 1, &["t"], |c| {
        c.consumer.enable_auto_commit = false;
    });
    settle(&mut sim, &mut [&mut a], 20);
    sim.network.latency_min = Duration::from_secs(5);
    sim.network.latency_max = Duration::from_secs(5);
    let now = sim.now();
    let started = now;
    let op = sim
        .client(a.host)
        .with_timeout(Duration::from_secs(1), |c| c.commit(now, None));
    let (result, at) = run_until_ended(&mut sim, &mut [&mut a], op, Duration::from_secs(20));
    assert!(
        matches!(result, Err(ClientError::Timeout { .. })),
        "{result:?}"
    );
    let took = at - started;
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_millis(1100),
        "ended after {took:?}"
    );
}

/// A classic member leaving keeps heartbeating while its commit on revoke is
/// refused for longer than its session (a coordinator loading for seconds, here
/// about 5 s against a 2 s session, within the 10 s rebalance timeout): it
/// stays in the group until the commit lands, then leaves, and the member that
/// takes its partitions over reads none of its records again. It went quiet as
/// soon as it started leaving, before: the coordinator dropped it at its
/// session's end and handed its partitions on from the last commit that landed.
#[test]
fn a_leaving_member_heartbeats_until_its_commit_on_revoke_lands() {
    let mut sim = sim(28, 3);
    sim.cluster().create_topic("t", 2, 3).unwrap();
    produce(&mut sim, "t", 2, 20, "a");
    // A 2 s session, inside a 10 s rebalance timeout (which bounds how long a
    // revocation waits for its commit).
    let short = |c: &mut ClientConfig| {
        c.consumer.session_timeout = Duration::from_secs(2);
        c.consumer.heartbeat_interval = Duration::from_millis(300);
    };
    let mut a = Member::join(&mut sim, 1, &["t"], short);
    let mut b = Member::join(&mut sim, 2, &["t"], short);
    settle(&mut sim, &mut [&mut a, &mut b], 40);
    assert_eq!(a.mine.len(), 1);
    // Every commit is refused for a while: a's records from here on are
    // committed only by its commit on revoke.
    sim.cluster().inject_group_error(
        GROUP,
        Some(kafka_sansio::messages::ApiKey::OffsetCommit),
        kafka_sansio::messages::ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
        16,
    );
    produce(&mut sim, "t", 2, 10, "b");
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |_, ms| ms[0].got.len() + ms[1].got.len() == 60
    ));
    let now = sim.now();
    let op = sim.client(a.host).leave_group(now);
    let (left, at) = run_until_ended(&mut sim, &mut [&mut a, &mut b], op, Duration::from_secs(90));
    left.unwrap();
    // The leave waited for refusals that outlasted the 2 s session.
    assert!(
        at - now > Duration::from_secs(2),
        "left after {:?}",
        at - now
    );
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |_, ms| ms[1].mine.len() == 2
    ));
    produce(&mut sim, "t", 2, 5, "c");
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |_, ms| ms[0].got.len() + ms[1].got.len() >= 70
    ));
    assert_exactly_once(&[&a, &b], 70);
}

/// Runs an admin operation on its own client to its end.
fn admin_op(
    sim: &mut Simulation,
    start: impl FnOnce(&mut Client, Instant) -> kafka_sansio::client::OpId,
) -> OpOutput {
    let mut config = ClientConfig::new(&sim.bootstrap()).unwrap();
    config.seed = 77;
    let host = sim.add_client(Client::new(config, sim.now()));
    let now = sim.now();
    let op = start(sim.client(host), now);
    let mut out = None;
    sim.run_until(Duration::from_secs(10), |sim| {
        for e in sim.client_events(host) {
            if let Event::Done { op: o, result } = e
                && o == op
            {
                out = Some(result.unwrap());
            }
        }
        out.is_some()
    });
    out.expect("the operation ended")
}

#[test]
fn describe_groups_and_list_groups_show_groups_as_kafka_does() {
    let mut sim = sim(3, 3);
    sim.cluster().create_topic("t", 4, 3).unwrap();
    let mut a = Member::join(&mut sim, 1, &["t"], |_| {});
    assert!(run(
        &mut sim,
        &mut [&mut a],
        Duration::from_secs(30),
        all_stable
    ));
    // A KIP-848 group beside it.
    let mut k = Member::join(&mut sim, 2, &["t"], |c| {
        c.consumer.group_id = Some("k".into());
        c.consumer.group_protocol = GroupProtocol::Consumer;
    });
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut k],
        Duration::from_secs(30),
        all_stable
    ));

    let OpOutput::GroupDescriptions(d) = admin_op(&mut sim, |c, now| {
        c.describe_groups(now, vec![GROUP.into(), "k".into(), "none".into()])
    }) else {
        panic!("not descriptions")
    };
    let g = d[0].as_ref().unwrap();
    assert_eq!(
        (g.state.as_str(), g.protocol_type.as_str()),
        ("Stable", "consumer")
    );
    assert!(!g.protocol.is_empty());
    assert_eq!(g.members.len(), 1);
    assert_eq!(g.members[0].subscription, vec!["t".to_owned()]);
    assert_eq!(
        g.members[0].assignment,
        vec![("t".to_owned(), vec![0, 1, 2, 3])]
    );
    // DescribeGroups covers classic groups: a KIP-848 one and an unknown one are Dead.
    assert_eq!(d[1].as_ref().unwrap().state, "Dead");
    assert_eq!(d[2].as_ref().unwrap().state, "Dead");

    let OpOutput::Groups(mut groups) = admin_op(&mut sim, |c, now| c.list_groups(now)) else {
        panic!("not a listing")
    };
    groups.sort_by(|x, y| x.group_id.cmp(&y.group_id));
    let seen: Vec<(&str, &str, Option<&str>, Option<&str>)> = groups
        .iter()
        .map(|g| {
            (
                g.group_id.as_str(),
                g.protocol_type.as_str(),
                g.state.as_deref(),
                g.group_type.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (GROUP, "consumer", Some("Stable"), Some("classic")),
            ("k", "consumer", Some("Stable"), Some("consumer")),
        ]
    );
}

/// The application of `b` stops (no events read, no polls) while records keep
/// coming: after `max_poll_interval` (3 s, well inside the 30 s session, which
/// the member's own heartbeats would keep alive for ever) the member leaves the
/// group and `a` takes every partition over from the committed offsets. When the
/// application comes back it hears why, its partitions are reported lost, and it
/// joins again; every record is read exactly once throughout. A static member
/// (`session`: its session timeout) sends no leave: the coordinator hands its
/// partitions over when the session it no longer heartbeats ends.
fn a_member_whose_application_stops_polling_leaves(
    protocol: GroupProtocol,
    seed: u64,
    session: Option<Duration>,
) {
    let mut sim = sim(seed, 3);
    sim.cluster().create_topic("t", 4, 3).unwrap();
    produce(&mut sim, "t", 4, 100, "a");
    let tweak = |instance: &'static str| {
        move |c: &mut ClientConfig| {
            c.consumer.group_protocol = protocol;
            c.consumer.session_timeout = session.unwrap_or(Duration::from_secs(30));
            c.consumer.max_poll_interval = Duration::from_secs(3);
            if session.is_some() {
                c.consumer.group_instance_id = Some(instance.into());
            }
        }
    };
    let mut a = Member::join(&mut sim, 1, &["t"], tweak("a"));
    let mut b = Member::join(&mut sim, 2, &["t"], tweak("b"));
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(60),
        |sim, ms| all_stable(sim, ms)
            && ms[0].mine.len() == 2
            && ms[0].got.len() + ms[1].got.len() >= 400
    ));
    // Let auto-commit store what b read, then b's application stops.
    sim.run_for(Duration::from_secs(2));
    b.stalled = true;
    let stalled_at = sim.now();
    produce(&mut sim, "t", 4, 100, "b");
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(20),
        |_, ms| ms[0].mine.len() == 4 && ms[0].got.len() + ms[1].got.len() >= 800
    ));
    let took = sim.now() - stalled_at;
    // A static member's session still runs after it stops heartbeating.
    let earliest =
        Duration::from_secs(3) + session.map_or(Duration::ZERO, |s| s - Duration::from_secs(1));
    assert!(
        took >= earliest && took < Duration::from_secs(15),
        "a took the partitions over {took:?} after b stopped polling"
    );
    assert_exactly_once(&[&a, &b], 800);
    // b's application comes back: the error, its partitions lost, and a rejoin.
    b.stalled = false;
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(60),
        |sim, ms| all_stable(sim, ms) && ms[0].mine.len() == 2 && ms[1].mine.len() == 2
    ));
    let exceeded = b
        .events
        .iter()
        .filter(|e| {
            matches!(e, Event::ConsumerError { partition: None, error: ClientError::PollIntervalExceeded { max_poll_interval } }
                if *max_poll_interval == Duration::from_secs(3))
        })
        .count();
    assert_eq!(exceeded, 1, "{:?}", b.events);
    let lost: usize = b.rebalances().iter().map(|r| r.1.len()).sum();
    assert_eq!(lost, 2, "{:?}", b.rebalances());
    assert!(
        a.events
            .iter()
            .all(|e| !matches!(e, Event::ConsumerError { .. })),
        "{:?}",
        a.events
    );
    produce(&mut sim, "t", 4, 100, "c");
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |_, ms| ms[0].got.len() + ms[1].got.len() >= 1200
    ));
    assert_exactly_once(&[&a, &b], 1200);
}

#[test]
fn a_classic_member_whose_application_stops_polling_leaves_and_rejoins() {
    a_member_whose_application_stops_polling_leaves(GroupProtocol::Classic, 21, None);
}

#[test]
fn a_kip848_member_whose_application_stops_polling_leaves_and_rejoins() {
    a_member_whose_application_stops_polling_leaves(GroupProtocol::Consumer, 22, None);
}

#[test]
fn a_static_classic_member_whose_application_stops_polling_is_dropped_at_its_session_end() {
    a_member_whose_application_stops_polling_leaves(
        GroupProtocol::Classic,
        24,
        Some(Duration::from_secs(4)),
    );
}

/// The poll clock runs only while records wait, and each poll starts it again:
/// an application that polls one record a second with a backlog, and one that
/// stops polling while nothing arrives, both stay in the group far past a 2 s
/// `max_poll_interval`.
#[test]
fn slow_polls_and_idle_waits_do_not_count_as_a_stuck_application() {
    let mut sim = sim(23, 1);
    sim.cluster().create_topic("t", 2, 1).unwrap();
    let tweak = |c: &mut ClientConfig| {
        c.consumer.max_poll_interval = Duration::from_secs(2);
    };
    let mut a = Member::join(&mut sim, 1, &["t"], tweak);
    let mut b = Member::join(&mut sim, 2, &["t"], tweak);
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(60),
        |sim, ms| all_stable(sim, ms) && ms[0].mine.len() == 1
    ));
    // b waits with nothing to read: no records arrive for it for 20 s.
    b.stalled = true;
    sim.run_for(Duration::from_secs(20));
    b.stalled = false;
    // Each has a backlog of 100 records and takes one every 1.5 s.
    produce(&mut sim, "t", 2, 100, "a");
    for _ in 0..20 {
        sim.run_for(Duration::from_millis(1500));
        for m in [&mut a, &mut b] {
            m.per_poll = 1;
            m.step(&mut sim);
        }
    }
    for m in [&a, &b] {
        assert!(
            m.events
                .iter()
                .all(|e| !matches!(e, Event::ConsumerError { .. })
                    && !matches!(e, Event::Rebalance { lost, .. } if !lost.is_empty())),
            "{:?}",
            m.events
        );
        assert_eq!(m.mine.len(), 1);
        assert!(m.got.len() >= 20, "{} records", m.got.len());
    }
}

/// The member id a KIP-848 member with this client seed names itself.
fn kip848_member_id(sim: &Simulation, seed: u64) -> String {
    let mut config = member_config(sim, seed, |c| {
        c.consumer.group_protocol = GroupProtocol::Consumer
    });
    config.seed = seed;
    let mut client = Client::new(config, sim.now());
    client.subscribe(sim.now(), ["t"]).unwrap();
    client.group_status().unwrap().member_id
}

/// A partition whose assignment waits for a stalled application's acknowledgement
/// is still that member's: a KIP-848 coordinator moving it elsewhere waits for the
/// member to give it up. Reported as not owned, it was handed to the next member at
/// once, and the stalled application, coming back, was told it had it, then that
/// it was revoked, and its commit on revoke put the committed offset back over what
/// the next owner had read and committed.
#[test]
fn a_kip848_partition_waiting_for_a_stalled_application_moves_only_once_it_is_given_up() {
    // Heartbeats every 300 ms: the stalled member's client goes on heartbeating.
    let mut sim = Simulation::new(
        23,
        ClusterConfig {
            brokers: 1,
            auto_create_topics: false,
            consumer_group_heartbeat_interval: Duration::from_millis(300),
            ..Default::default()
        },
        NetworkConfig::default(),
        Instant::now(),
    );
    sim.cluster().create_topic("t", 1, 1).unwrap();
    produce(&mut sim, "t", 1, 20, "a");
    // Range over one partition gives it to the member whose id sorts first: b
    // before a, and c before b.
    let seeds: Vec<(u64, String)> = (1..200).map(|s| (s, kip848_member_id(&sim, s))).collect();
    let (a_seed, a_id) = seeds[0].clone();
    let (b_seed, b_id) = seeds.iter().find(|(_, id)| *id < a_id).unwrap().clone();
    let (c_seed, _) = seeds.iter().find(|(_, id)| *id < b_id).unwrap().clone();
    let kip848 = |c: &mut ClientConfig| {
        c.consumer.group_protocol = GroupProtocol::Consumer;
        c.consumer.group_remote_assignor = Some("range".into());
    };
    let committed = |sim: &mut Simulation| sim.cluster().committed_offset(GROUP, "t", 0);
    let mut a = Member::join(&mut sim, a_seed, &["t"], kip848);
    assert!(run(
        &mut sim,
        &mut [&mut a],
        Duration::from_secs(30),
        |sim, ms| ms[0].got.len() == 20 && committed(sim) == Some(20)
    ));
    // b's application is stuck from the start: it is handed the partition and
    // never acknowledges it.
    let mut b = Member::join(&mut sim, b_seed, &["t"], kip848);
    b.stalled = true;
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(30),
        |_, ms| ms[0].mine.is_empty()
    ));
    // b's next heartbeats bring it the partition.
    run(
        &mut sim,
        &mut [&mut a, &mut b],
        Duration::from_secs(2),
        |_, _| false,
    );
    let mut c = Member::join(&mut sim, c_seed, &["t"], kip848);
    produce(&mut sim, "t", 1, 20, "b");
    let mut highest = 20;
    let mut back = Vec::new();
    let mut watch = |sim: &mut Simulation| {
        let now = committed(sim).unwrap_or(0);
        if now < highest {
            back.push((highest, now));
        }
        highest = highest.max(now);
    };
    run(
        &mut sim,
        &mut [&mut a, &mut b, &mut c],
        Duration::from_secs(3),
        |sim, _| {
            watch(sim);
            false
        },
    );
    assert!(
        c.mine.is_empty() && c.got.is_empty(),
        "c was handed the partition while b's application had not given it up: read {}",
        c.got.len()
    );
    b.stalled = false;
    assert!(run(
        &mut sim,
        &mut [&mut a, &mut b, &mut c],
        Duration::from_secs(30),
        |sim, ms| {
            watch(sim);
            ms[2].got.len() == 20 && committed(sim) == Some(40)
        }
    ));
    assert!(back.is_empty(), "the committed offset went back: {back:?}");
    let t0 = TopicPartition::new("t", 0);
    assert_eq!(
        b.rebalances(),
        vec![
            (vec![], vec![], vec![t0.clone()]),
            (vec![t0.clone()], vec![], vec![])
        ]
    );
    assert_exactly_once(&[&a, &b, &c], 40);
}
