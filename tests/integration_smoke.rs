#![allow(clippy::unwrap_used)]
#[path = "integration_util.rs"]
mod util;
use kafka_sansio::connection::Config;
use kafka_sansio::messages::MetadataRequest;
use util::*;

#[test]
fn smoke() {
    let mock = Mock::start(Librdkafka::Debian, 1, &["t:2"]);
    for a in ADAPTERS {
        let c = Client::connect(a, &mock.bootstrap[0], Config::new("m1")).unwrap();
        let md = c.send(MetadataRequest::default()).unwrap();
        eprintln!("{a:?}: {} brokers {} topics", md.brokers.len(), md.topics.len());
    }
    let tansu = Tansu::start();
    for a in ADAPTERS {
        let c = Client::connect(a, &tansu.addr, Config::new("t")).unwrap();
        let md = c.send(MetadataRequest::default()).unwrap();
        eprintln!("{a:?}: {} brokers {} topics", md.brokers.len(), md.topics.len());
    }
}
