//! Against tansu 0.6.0 (an Apache-Kafka-compatible broker, started by
//! `scripts/peers/start_tansu.sh`), through each runtime adapter: ApiVersions v4 with
//! flexible versions everywhere, CreateTopics, Produce in every codec, Fetch back
//! byte for byte, ListOffsets, InitProducerId and FindCoordinator.
#![cfg(all(feature = "tokio", feature = "smol", feature = "blocking"))]
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

#[path = "integration_util.rs"]
mod util;

use kafka_sansio::connection::Config;
use kafka_sansio::messages::{
    CreateTopicsRequest, FindCoordinatorRequest, InitProducerIdRequest,
    create_topics_request::CreatableTopic,
};
use kafka_sansio::records::Compression;
use util::*;

#[test]
fn tansu_roundtrip_through_every_adapter() {
    let tansu = Tansu::start();
    for adapter in ADAPTERS {
        let client = Client::connect(
            adapter,
            &tansu.addr,
            Config::new(format!("tansu/{adapter:?}")),
        )
        .unwrap();
        let topic = format!("tansu-{adapter:?}").to_lowercase();
        let created = client
            .send(CreateTopicsRequest {
                topics: vec![CreatableTopic {
                    name: topic.as_str().into(),
                    num_partitions: 3,
                    replication_factor: 1,
                    ..Default::default()
                }],
                timeout_ms: 5000,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(created.topics[0].error_code, 0, "{created:?}");
        let (topic_id, partitions) = topic_info(&client, &topic);
        assert_eq!(partitions, 3);
        for (i, codec) in CODECS.into_iter().enumerate() {
            let partition = (i % partitions) as i32;
            let vals = values(codec_name(codec), 25);
            let base = produce(&client, &topic, partition, batch(&vals, codec, None));
            let got = fetch(&client, &topic, topic_id, partition, base, vals.len());
            let got_vals: Vec<Vec<u8>> = got
                .iter()
                .take(vals.len())
                .map(|(_, _, v)| v.clone().unwrap().to_vec())
                .collect();
            assert_eq!(got_vals, vals, "{adapter:?} {codec:?}: payloads differ");
            assert_eq!(got[0].0, base);
            // tansu's LATEST can lag (see real-peers.md); it must at least answer
            let _ = latest_offset(&client, &topic, partition);
        }
        let pid = client
            .send(InitProducerIdRequest {
                transaction_timeout_ms: -1,
                producer_id: -1,
                producer_epoch: -1,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(pid.error_code, 0);
        let vals = values("idem", 4);
        let base = produce(
            &client,
            &topic,
            0,
            batch(
                &vals,
                Compression::Snappy,
                Some((pid.producer_id, pid.producer_epoch, 0)),
            ),
        );
        assert_eq!(fetch(&client, &topic, topic_id, 0, base, 4).len(), 4);
        let fc = client
            .send(FindCoordinatorRequest {
                coordinator_keys: vec!["g1".into()],
                ..Default::default()
            })
            .unwrap();
        let err = fc
            .coordinators
            .first()
            .map_or(fc.error_code, |c| c.error_code);
        assert_eq!(err, 0, "{fc:?}");
    }
}

/// JoinGroup at tansu's newest versions (flexible), SyncGroup, Heartbeat, LeaveGroup.
#[test]
fn tansu_group_calls() {
    let tansu = Tansu::start();
    group_lifecycle(&tansu.addr, Adapter::Smol, false);
}

/// tansu run without SASL configured answers SaslHandshake with
/// UNSUPPORTED_SASL_MECHANISM: the connection must fail before it is ready, with an
/// error naming the mechanism and what the broker offered, through every adapter.
#[test]
fn tansu_without_sasl_refuses_it_clearly() {
    use kafka_sansio::connection::ConnectionErrorKind;
    use kafka_sansio::connection::sasl::{SaslConfig, SaslMechanism};
    use kafka_sansio::messages::ErrorCode;
    use kafka_sansio::runtime::Error;
    let tansu = Tansu::start();
    for (adapter, mechanism) in ADAPTERS.into_iter().zip([
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ]) {
        let mut config = Config::new("tansu-sasl");
        config.sasl = Some(SaslConfig {
            oauth: None,
            mechanism,
            username: "alice".into(),
            password: "secret".into(),
            nonce: String::new(),
        });
        match Client::connect(adapter, &tansu.addr, config) {
            Err(Error::Closed(e)) => match e.kind {
                ConnectionErrorKind::SaslMechanism {
                    mechanism: m,
                    error,
                    ..
                } => {
                    assert_eq!(m, mechanism.name());
                    assert_eq!(error, ErrorCode::UNSUPPORTED_SASL_MECHANISM);
                }
                other => panic!("{adapter:?}: {other:?}"),
            },
            Err(other) => panic!("{adapter:?}: {other:?}"),
            Ok(_) => panic!("{adapter:?}: connected without authenticating"),
        }
    }
}

/// Large requests and large responses crossing on one blocking connection from
/// several threads: writes of multi-megabyte produce requests must not stop the reader
/// from taking multi-megabyte fetch responses in (the adapter's write/read deadlock).
#[test]
fn blocking_adapter_large_traffic_both_ways() {
    let tansu = Tansu::start();
    let client = std::sync::Arc::new(
        Client::connect(Adapter::Blocking, &tansu.addr, Config::new("big")).unwrap(),
    );
    let created = client
        .send(CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: "big".into(),
                num_partitions: 4,
                replication_factor: 1,
                ..Default::default()
            }],
            timeout_ms: 5000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(created.topics[0].error_code, 0);
    let (topic_id, _) = topic_info(&client, "big");
    let handles: Vec<_> = (0..4)
        .map(|p| {
            let c = client.clone();
            std::thread::spawn(move || {
                for round in 0..3u8 {
                    let vals: Vec<Vec<u8>> = (0..48)
                        .map(|i| vec![round.wrapping_mul(31).wrapping_add(i as u8); 48 * 1024])
                        .collect();
                    let base = produce(&c, "big", p, batch(&vals, Compression::None, None));
                    let got = fetch(&c, "big", topic_id, p, base, vals.len());
                    assert!(got.len() >= vals.len());
                    for (j, (_, _, v)) in got.into_iter().take(vals.len()).enumerate() {
                        assert_eq!(v.unwrap().as_ref(), &vals[j][..]);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
