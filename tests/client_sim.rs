//! The cluster client against the simulated cluster, on a virtual clock: every
//! operation end to end, and the retries its faults call for.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_sansio::client::{
    Client, ClientConfig, ClientError, NewTopic, OffsetSpec, OpOutput, ProduceOptions, Record,
};
use kafka_sansio::messages::{ApiKey, ErrorCode};
use kafka_sansio::records::Compression;
use kafka_sansio::sim::{ClusterConfig, HostId, NetworkConfig, Simulation};

const LIMIT: Duration = Duration::from_secs(120);

fn setup(brokers: usize, seed: u64) -> (Simulation, HostId) {
    setup_with(brokers, seed, |_| {})
}

fn setup_with(
    brokers: usize,
    seed: u64,
    configure: impl FnOnce(&mut ClientConfig),
) -> (Simulation, HostId) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut sim = Simulation::new(
        seed,
        ClusterConfig {
            brokers,
            auto_create_topics: false,
            ..Default::default()
        },
        NetworkConfig::default(),
        Instant::now(),
    );
    let mut config = ClientConfig::new(&sim.bootstrap()).unwrap();
    config.seed = seed;
    configure(&mut config);
    let client = Client::new(config, sim.now());
    let host = sim.add_client(client);
    (sim, host)
}

fn run(
    sim: &mut Simulation,
    host: HostId,
    f: impl FnOnce(&mut Client, Instant) -> kafka_sansio::client::OpId,
) -> Result<OpOutput, ClientError> {
    let now = sim.now();
    let op = f(sim.client(host), now);
    sim.run_until_done(host, op, LIMIT)
}

fn create(sim: &mut Simulation, host: HostId, name: &str, partitions: i32) {
    let out = run(sim, host, |c, now| {
        c.create_topics(
            now,
            vec![NewTopic::new(name, partitions, -1)],
            Duration::from_secs(5),
        )
    })
    .unwrap();
    let OpOutput::TopicResults(r) = out else {
        panic!("{out:?}")
    };
    assert_eq!(r.len(), 1);
    r[0].result.clone().unwrap();
}

fn records(n: usize, tag: &str) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::new(format!("{tag}-value-{i}"))
                .key(format!("k{i}"))
                .header("h", "x")
                .timestamp(1_000 + i as i64)
        })
        .collect()
}

#[test]
fn topics_are_created_listed_described_and_deleted() {
    let (mut sim, host) = setup(3, 1);
    create(&mut sim, host, "a", 3);
    create(&mut sim, host, "b", 1);
    // Creating it again is a typed per-topic error, not a failed operation.
    let OpOutput::TopicResults(again) = run(&mut sim, host, |c, now| {
        c.create_topics(
            now,
            vec![NewTopic::new("a", 3, 3), NewTopic::new("c", 2, 2)],
            Duration::from_secs(5),
        )
    })
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        again[0].result.as_ref().unwrap_err().error_code(),
        Some(ErrorCode::TOPIC_ALREADY_EXISTS)
    );
    assert!(again[1].result.is_ok());

    let OpOutput::Topics(topics) = run(&mut sim, host, |c, now| c.list_topics(now)).unwrap() else {
        panic!()
    };
    let names: Vec<&str> = topics.iter().map(|t| &*t.name).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(topics[0].partitions.len(), 3);
    assert!(
        topics[0]
            .partitions
            .iter()
            .all(|p| p.leader.is_some() && p.replicas.len() == 3)
    );

    let OpOutput::Cluster(cluster) = run(&mut sim, host, |c, now| c.describe_cluster(now)).unwrap()
    else {
        panic!()
    };
    assert_eq!(cluster.brokers.len(), 3);
    assert!(cluster.controller.is_some());

    let OpOutput::TopicResults(grown) = run(&mut sim, host, |c, now| {
        c.create_partitions(now, vec![("b".into(), 4)], Duration::from_secs(5))
    })
    .unwrap() else {
        panic!()
    };
    grown[0].result.clone().unwrap();

    let OpOutput::TopicResults(deleted) = run(&mut sim, host, |c, now| {
        c.delete_topics(now, vec!["a".into(), "nope".into()], Duration::from_secs(5))
    })
    .unwrap() else {
        panic!()
    };
    assert!(deleted[0].result.is_ok());
    assert_eq!(
        deleted[1].result.as_ref().unwrap_err().error_code(),
        Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
    );

    let OpOutput::Topics(topics) = run(&mut sim, host, |c, now| c.list_topics(now)).unwrap() else {
        panic!()
    };
    let listed: Vec<(&str, usize)> = topics
        .iter()
        .map(|t| (&*t.name, t.partitions.len()))
        .collect();
    assert_eq!(listed, [("b", 4), ("c", 2)]);
}

#[test]
fn produced_records_fetch_back_byte_for_byte_in_every_codec() {
    let (mut sim, host) = setup(3, 2);
    create(&mut sim, host, "t", 2);
    let mut expected_offset = 0;
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let batch = records(50, &format!("{codec:?}"));
        let opts = ProduceOptions::default().compression(codec);
        let OpOutput::Produced(p) = run(&mut sim, host, |c, now| {
            c.produce(now, "t", 1, batch.clone(), opts)
        })
        .unwrap() else {
            panic!()
        };
        assert_eq!(p.offsets(), expected_offset..expected_offset + 50);
        let OpOutput::Fetched(f) = run(&mut sim, host, |c, now| {
            c.fetch(now, "t", 1, expected_offset, Default::default())
        })
        .unwrap() else {
            panic!()
        };
        assert_eq!(f.records.len(), 50, "{codec:?}");
        assert_eq!(f.next_offset, expected_offset + 50);
        assert_eq!(f.high_watermark, expected_offset + 50);
        for (got, want) in f.records.iter().zip(&batch) {
            assert_eq!(got.key(), want.key.as_deref());
            assert_eq!(got.value(), want.value.as_deref());
            assert_eq!(Some(got.timestamp), want.timestamp);
            let headers: Vec<(String, Option<Bytes>)> = got
                .headers()
                .map(|h| (h.key_str().unwrap().to_owned(), h.value_bytes()))
                .collect();
            assert_eq!(headers, [("h".to_owned(), Some(Bytes::from("x")))]);
        }
        expected_offset += 50;
    }
    // A fetch from the middle of a batch starts at the offset asked for.
    let OpOutput::Fetched(f) = run(&mut sim, host, |c, now| {
        c.fetch(now, "t", 1, 7, Default::default())
    })
    .unwrap() else {
        panic!()
    };
    assert_eq!(f.records[0].offset, 7);
    // Lent from the response, from the middle of a batch on, across all five
    // codecs' batches: the same records, in order, and the same offsets around them.
    for from in [7, 49, 50, 123, 249, 250] {
        let OpOutput::Fetched(owned) = run(&mut sim, host, |c, now| {
            c.fetch(now, "t", 1, from, Default::default())
        })
        .unwrap() else {
            panic!()
        };
        let OpOutput::FetchedSet(lent) = run(&mut sim, host, |c, now| {
            c.fetch_record_set(now, "t", 1, from, Default::default())
        })
        .unwrap() else {
            panic!()
        };
        let mut reader = lent.records.reader();
        let mut read = Vec::new();
        while let Some(r) = reader.next_ref() {
            let r = r.unwrap();
            let headers: Vec<_> = r
                .headers()
                .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
                .collect();
            read.push((
                r.offset,
                r.timestamp,
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
                headers,
            ));
        }
        let expected: Vec<_> = owned
            .records
            .iter()
            .map(|r| {
                let headers: Vec<_> = r
                    .headers()
                    .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
                    .collect();
                (
                    r.offset,
                    r.timestamp,
                    r.key().map(<[u8]>::to_vec),
                    r.value().map(<[u8]>::to_vec),
                    headers,
                )
            })
            .collect();
        assert_eq!(read.len() as i64, 250 - from, "from {from}");
        assert_eq!(read, expected, "from {from}");
        assert_eq!(
            (lent.next_offset, lent.high_watermark, lent.log_start_offset),
            (
                owned.next_offset,
                owned.high_watermark,
                owned.log_start_offset
            ),
            "from {from}"
        );
    }
    // The other partition is empty.
    let OpOutput::Offset { offset, .. } = run(&mut sim, host, |c, now| {
        c.list_offsets(now, "t", 0, OffsetSpec::Latest)
    })
    .unwrap() else {
        panic!()
    };
    assert_eq!(offset, 0);
}

#[test]
fn list_offsets_and_delete_records() {
    let (mut sim, host) = setup(2, 3);
    create(&mut sim, host, "t", 1);
    run(&mut sim, host, |c, now| {
        c.produce(now, "t", 0, records(10, "a"), Default::default())
    })
    .unwrap();
    let offset = |sim: &mut Simulation, spec| match run(sim, host, |c, now| {
        c.list_offsets(now, "t", 0, spec)
    })
    .unwrap()
    {
        OpOutput::Offset { offset, .. } => offset,
        o => panic!("{o:?}"),
    };
    assert_eq!(offset(&mut sim, OffsetSpec::Earliest), 0);
    assert_eq!(offset(&mut sim, OffsetSpec::Latest), 10);
    assert_eq!(offset(&mut sim, OffsetSpec::Timestamp(1_004)), 4);
    let OpOutput::RecordsDeleted(d) = run(&mut sim, host, |c, now| {
        c.delete_records(now, vec![("t".into(), 0, 6)], Duration::from_secs(5))
    })
    .unwrap() else {
        panic!()
    };
    assert_eq!(d[0].low_watermark, Ok(6));
    assert_eq!(offset(&mut sim, OffsetSpec::Earliest), 6);
}

#[test]
fn an_unknown_topic_is_a_typed_error_after_a_fresh_refresh() {
    let (mut sim, host) = setup(1, 5);
    let started = sim.now();
    let err = run(&mut sim, host, |c, now| {
        c.produce(now, "missing", 0, records(1, "x"), Default::default())
    })
    .unwrap_err();
    assert_eq!(err, ClientError::UnknownTopic("missing".into()));
    assert!(
        sim.now() - started < Duration::from_secs(1),
        "no waiting for a deadline"
    );
    create(&mut sim, host, "there", 2);
    let err = run(&mut sim, host, |c, now| {
        c.fetch(now, "there", 5, 0, Default::default())
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::UnknownPartition {
                partition: 5,
                count: 2,
                ..
            }
        ),
        "{err}"
    );
    // A topic created after the cache said it was missing is found.
    create(&mut sim, host, "missing", 1);
    run(&mut sim, host, |c, now| {
        c.produce(now, "missing", 0, records(1, "x"), Default::default())
    })
    .unwrap();
}

#[test]
fn a_leader_crash_during_produce_is_retried_on_the_new_leader() {
    let (mut sim, host) = setup(3, 6);
    create(&mut sim, host, "t", 1);
    run(&mut sim, host, |c, now| {
        c.produce(now, "t", 0, records(5, "before"), Default::default())
    })
    .unwrap();
    let leader = sim.cluster().partition_leader("t", 0).unwrap();
    let now = sim.now();
    sim.cluster().crash_broker(leader, now);
    let OpOutput::Produced(p) = run(&mut sim, host, |c, now| {
        c.produce(now, "t", 0, records(5, "after"), Default::default())
    })
    .unwrap() else {
        panic!()
    };
    assert_eq!(p.base_offset, Some(5));
    assert_ne!(sim.cluster().partition_leader("t", 0), Some(leader));
    let OpOutput::Fetched(f) = run(&mut sim, host, |c, now| {
        c.fetch(now, "t", 0, 0, Default::default())
    })
    .unwrap() else {
        panic!()
    };
    assert_eq!(f.records.len(), 10, "acks=all data survives the crash");
    assert!(sim.client(host).stats().retries > 0);
}

#[test]
fn injected_retriable_errors_are_retried_and_fatal_ones_are_not() {
    let (mut sim, host) = setup(2, 7);
    create(&mut sim, host, "t", 1);
    sim.cluster()
        .inject_error(ApiKey::Produce, ErrorCode::NOT_LEADER_OR_FOLLOWER, 3);
    run(&mut sim, host, |c, now| {
        c.produce(now, "t", 0, records(1, "x"), Default::default())
    })
    .unwrap();
    sim.cluster()
        .inject_error(ApiKey::Produce, ErrorCode::INVALID_REQUIRED_ACKS, 1);
    let err = run(&mut sim, host, |c, now| {
        c.produce(now, "t", 0, records(1, "x"), Default::default())
    })
    .unwrap_err();
    assert_eq!(err.error_code(), Some(ErrorCode::INVALID_REQUIRED_ACKS));
}

#[test]
fn every_operation_ends_by_its_deadline_when_no_broker_answers() {
    let (mut sim, host) = setup(1, 8);
    let now = sim.now();
    sim.cluster().crash_broker(0, now);
    let opts = ProduceOptions::default().timeout(Duration::from_secs(3));
    let started = sim.now();
    let err = run(&mut sim, host, |c, now| {
        c.produce(now, "t", 0, records(1, "x"), opts)
    })
    .unwrap_err();
    let elapsed = sim.now() - started;
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(
        elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    let ClientError::Timeout {
        last_error: Some(last),
        ..
    } = err
    else {
        panic!()
    };
    assert!(
        matches!(*last, ClientError::Connection(_)),
        "the cause is kept: {last}"
    );
}

#[test]
fn a_cancelled_operation_ends_silently_and_the_client_stays_usable() {
    let (mut sim, host) = setup(1, 9);
    create(&mut sim, host, "t", 1);
    let now = sim.now();
    let op = sim
        .client(host)
        .produce(now, "t", 0, records(3, "x"), Default::default());
    sim.client(host).cancel(op);
    sim.run_for(Duration::from_secs(1));
    assert!(sim.client_events(host).next().is_none());
    assert_eq!(sim.client(host).pending_operations(), 0);
    run(&mut sim, host, |c, now| {
        c.produce(now, "t", 0, records(3, "y"), Default::default())
    })
    .unwrap();
}

#[test]
fn a_closed_client_opens_nothing_and_refuses_new_operations() {
    use kafka_sansio::client::{FetchOptions, UnknownTopicHandling};
    // An operation waiting for a metadata refresh, which is debounced, so that it
    // is still due when the client closes.
    let (mut sim, host) = setup_with(1, 12, |c| {
        c.metadata_min_interval = Duration::from_secs(5);
    });
    create(&mut sim, host, "t", 1);
    run(&mut sim, host, |c, now| c.list_topics(now)).unwrap();
    let now = sim.now();
    let waiting = sim.client(host).fetch(
        now,
        "t",
        1, // not yet created
        0,
        FetchOptions::default().unknown_topic(UnknownTopicHandling::Retry),
    );
    sim.client(host).close(now);
    let events: Vec<_> = sim.client_events(host).collect();
    assert!(
        events.iter().any(|e| matches!(e,
            kafka_sansio::client::Event::Done { op, result: Err(ClientError::Closed) } if *op == waiting)),
        "{events:?}"
    );
    // Nothing the client wanted before it closed opens a connection after.
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.client(host).connections(), 0);
    assert_eq!(sim.client(host).poll_timeout(), None, "nothing to wake for");
    // Nor when woken all the same, past when the refresh was due.
    let later = sim.now() + Duration::from_secs(10);
    sim.client(host).handle_timeout(later);
    assert_eq!(sim.client(host).poll_output(), None);
    assert_eq!(sim.client(host).connections(), 0);
    // A call after close ends at once.
    let started = sim.now();
    let err = run(&mut sim, host, |c, now| c.list_topics(now)).unwrap_err();
    assert_eq!(err, ClientError::Closed);
    assert_eq!(sim.now(), started);
    let now = sim.now();
    let refused = sim
        .client(host)
        .send(now, kafka_sansio::client::ProducerRecord::new("t", "late"));
    assert_eq!(refused, Err(kafka_sansio::client::SendError::Closed));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.client(host).connections(), 0);
}

#[test]
fn idle_connections_are_closed() {
    let (mut sim, host) = setup(1, 10);
    create(&mut sim, host, "t", 1);
    assert!(sim.client(host).connections() > 0);
    sim.run_for(Duration::from_secs(600));
    assert_eq!(sim.client(host).connections(), 0);
    // and reopened on demand
    run(&mut sim, host, |c, now| {
        c.produce(now, "t", 0, records(1, "x"), Default::default())
    })
    .unwrap();
}

#[test]
fn oauthbearer_tokens_are_refreshed_before_they_expire_and_bad_ones_fail_fast() {
    use kafka_sansio::connection::sasl::{OAuthToken, OAuthTokenProvider, SaslConfig};
    use kafka_sansio::sim::SimSasl;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let mut sasl = SimSasl::oauth_tokens(["token-0", "token-1", "token-2", "token-3"]);
    sasl.session_lifetime = Some(Duration::from_secs(60));
    let mut sim = Simulation::new(
        11,
        ClusterConfig {
            brokers: 1,
            sasl: Some(sasl),
            ..Default::default()
        },
        NetworkConfig::default(),
        Instant::now(),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let provider = OAuthTokenProvider::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        Ok(OAuthToken::new(
            format!("token-{n}"),
            Duration::from_secs(100),
        ))
    });
    let mut config = ClientConfig::new(&sim.bootstrap()).unwrap();
    config.connection.sasl = Some(SaslConfig::oauth_bearer(provider));
    let host = sim.add_client(Client::new(config, sim.now()));
    create(&mut sim, host, "t", 1);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one token serves every connection while fresh"
    );
    // Keep a connection busy past the session lifetime: the client re-authenticates
    // at 85 % of it (51 s), after the token's 80 % (80 s) has not yet passed, then
    // past 80 s it fetches a new token.
    for _ in 0..12 {
        sim.run_for(Duration::from_secs(10));
        run(&mut sim, host, |c, now| {
            c.produce(now, "t", 0, records(1, "x"), Default::default())
        })
        .unwrap();
    }
    assert!(
        calls.load(Ordering::SeqCst) >= 2,
        "a fresh token after 80 % of the lifetime"
    );

    // A token the broker refuses: a typed authentication error, well before the deadline.
    let bad = OAuthTokenProvider::new(|| Ok(OAuthToken::new("forged", Duration::from_secs(100))));
    let mut config = ClientConfig::new(&sim.bootstrap()).unwrap();
    config.connection.sasl = Some(SaslConfig::oauth_bearer(bad));
    config.operation_timeout = Duration::from_secs(5);
    let intruder = sim.add_client(Client::new(config, sim.now()));
    let started = sim.now();
    let err = run(&mut sim, intruder, |c, now| c.list_topics(now)).unwrap_err();
    assert!(
        sim.now() - started < Duration::from_secs(1),
        "not retried: {err}"
    );
    let ClientError::Connection(e) = &err else {
        panic!("{err}")
    };
    assert!(
        matches!(
            e.kind,
            kafka_sansio::connection::ConnectionErrorKind::SaslAuthentication { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("invalid_token"), "{err}");
}

/// A commit of a negative offset or partition is refused in that entry's result
/// and never sent (Kafka would store offset -1 as given); the other entries are
/// committed, and the results come back in the order asked.
#[test]
fn negative_commits_are_refused_without_reaching_the_broker() {
    use kafka_sansio::client::{CommitMember, TopicPartition};
    let (mut sim, host) = setup(1, 7);
    create(&mut sim, host, "c", 2);
    let tp = |p| TopicPartition::new("c", p);
    let out = run(&mut sim, host, |c, now| {
        c.commit_offsets(
            now,
            "g",
            CommitMember::none(),
            vec![(tp(0), -1, None), (tp(1), 5, None), (tp(-1), 3, None)],
        )
    })
    .unwrap();
    let OpOutput::Committed(results) = out else {
        panic!("{out:?}")
    };
    let asked: Vec<_> = results.iter().map(|r| r.partition.partition).collect();
    assert_eq!(asked, [0, 1, -1], "in the order asked");
    assert!(matches!(
        results[0].offset,
        Err(ClientError::InvalidArgument(_))
    ));
    assert_eq!(results[1].offset, Ok(5));
    assert!(matches!(
        results[2].offset,
        Err(ClientError::InvalidArgument(_))
    ));
    assert_eq!(sim.cluster().committed_offset("g", "c", 0), None);
    assert_eq!(sim.cluster().committed_offset("g", "c", 1), Some(5));
    // Nothing valid: refused at once.
    let out = run(&mut sim, host, |c, now| {
        c.commit_offsets(now, "g", CommitMember::none(), vec![(tp(1), -2, None)])
    })
    .unwrap();
    let OpOutput::Committed(results) = out else {
        panic!("{out:?}")
    };
    assert!(matches!(
        results[0].offset,
        Err(ClientError::InvalidArgument(_))
    ));
    assert_eq!(sim.cluster().committed_offset("g", "c", 1), Some(5));
}
