//! Cancellation safety of the async adapters against librdkafka's mock: futures
//! dropped while their request is in flight (or still queued) never corrupt the
//! stream; the next requests on the same connection get their own responses.
#![cfg(all(feature = "tokio", feature = "smol", feature = "blocking"))]
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

#[path = "integration_util.rs"]
mod util;

use std::time::Duration;

use futures_lite::FutureExt as _;
use kafka_sansio::connection::Config;
use kafka_sansio::messages::{MetadataRequest, ProduceRequest};
use kafka_sansio::records::Compression;
use util::*;

fn big_produce(topic: &str) -> ProduceRequest {
    // ~2 MB, so writing it takes several socket writes
    let vals: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 32 * 1024]).collect();
    produce_request(topic, 0, -1, batch(&vals, Compression::None, None))
}

#[test]
fn tokio_dropped_sends_leave_the_connection_usable() {
    let mut mock = Mock::start(Librdkafka::Debian, 1, &["c:1"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = kafka_sansio::tokio_runtime::Connection::connect(
            mock.bootstrap[0].clone(),
            Config::new("cancel"),
        )
        .await
        .unwrap();
        mock.command("rtt 1 300");
        for _ in 0..5 {
            let r = tokio::time::timeout(
                Duration::from_millis(20),
                conn.send(MetadataRequest::default()),
            )
            .await;
            assert!(r.is_err(), "should have been cancelled");
            let r =
                tokio::time::timeout(Duration::from_millis(1), conn.send(big_produce("c"))).await;
            assert!(r.is_err(), "should have been cancelled");
        }
        mock.command("rtt 1 0");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let c = conn.clone();
                tokio::spawn(async move { c.send(MetadataRequest::default()).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().brokers.len(), 1);
        }
        let r = conn.send(big_produce("c")).await.unwrap();
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    });
}

#[test]
fn smol_dropped_sends_leave_the_connection_usable() {
    let mut mock = Mock::start(Librdkafka::Debian, 1, &["c:1"]);
    futures_lite::future::block_on(async {
        let (conn, driver) = kafka_sansio::smol_runtime::Connection::connect(
            mock.bootstrap[0].clone(),
            Config::new("cancel"),
        )
        .await
        .unwrap();
        std::thread::spawn(move || futures_lite::future::block_on(driver));
        mock.command("rtt 1 300");
        async fn timeout<T>(ms: u64) -> Option<T> {
            async_io::Timer::after(Duration::from_millis(ms)).await;
            None
        }
        for _ in 0..5 {
            let r = async { Some(conn.send(MetadataRequest::default()).await) }
                .or(timeout(20))
                .await;
            assert!(r.is_none(), "should have been cancelled");
            let r = async { Some(conn.send(big_produce("c")).await) }
                .or(timeout(1))
                .await;
            assert!(r.is_none(), "should have been cancelled");
        }
        mock.command("rtt 1 0");
        for _ in 0..8 {
            assert_eq!(
                conn.send(MetadataRequest::default())
                    .await
                    .unwrap()
                    .brokers
                    .len(),
                1
            );
        }
        let r = conn.send(big_produce("c")).await.unwrap();
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    });
}
