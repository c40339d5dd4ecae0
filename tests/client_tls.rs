//! TLS end to end: the simulated cluster served over TLS (rustls), our client
//! connecting with a CA and with a client certificate, typed errors for a wrong CA
//! or host name, and confluent-kafka (librdkafka's OpenSSL) producing and consuming
//! through the same listener. Certificates are made at test time with rcgen.
#![cfg(all(feature = "sim-tls", feature = "blocking"))]
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[path = "integration_util.rs"]
mod util;

use std::process::Command;
use std::time::{Duration, Instant};

use kafka_sansio::client::{ClientError, Record, UnknownTopicHandling};
use kafka_sansio::connection::{ConnectionErrorKind, TlsFailure};
use kafka_sansio::records::Compression;
use kafka_sansio::runtime::{ClientBuilder, TlsConfig};
use kafka_sansio::sim::ClusterConfig;
use kafka_sansio::sim_server::{TlsServer, serve_tls};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

struct Pki {
    ca_pem: String,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let ca_key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        Pki {
            ca_pem: ca.pem(),
            ca,
            ca_key,
        }
    }

    /// A certificate for these names (DNS names or IP addresses), signed by the CA.
    fn leaf(&self, names: &[&str]) -> (String, String) {
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn cluster() -> ClusterConfig {
    ClusterConfig {
        brokers: 2,
        base_port: 0,
        ..ClusterConfig::default()
    }
}

fn tls_error(err: &ClientError) -> Option<TlsFailure> {
    let conn = match err {
        ClientError::Connection(c) => c,
        ClientError::Timeout {
            last_error: Some(e),
            ..
        } => return tls_error(e),
        _ => return None,
    };
    match &conn.kind {
        ConnectionErrorKind::Transport(t) => t.tls,
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_over_tls_with_a_ca_and_typed_failures() {
    let pki = Pki::new("kafka-sansio test CA");
    let (cert, key) = pki.leaf(&["127.0.0.1", "localhost"]);
    let server = serve_tls(
        cluster(),
        TlsServer::new(cert.as_bytes(), key.as_bytes(), None).unwrap(),
    )
    .await
    .unwrap();

    let client = ClientBuilder::new(&server.bootstrap())
        .tls(TlsConfig::ca_pem(pki.ca_pem.clone()))
        .build_tokio()
        .await
        .unwrap();
    client.create_topic("secure", 1, 2).await.unwrap();
    let p = client
        .partition_client("secure", 0, UnknownTopicHandling::Error)
        .await
        .unwrap();
    let offsets = p
        .produce(vec![Record::new("over TLS").key("k")], Compression::Zstd)
        .await
        .unwrap();
    let (records, _) = p
        .fetch_records(offsets[0], 1..1_000_000, 100)
        .await
        .unwrap();
    assert_eq!(records[0].value(), Some(&b"over TLS"[..]));
    client.close().await;

    // A CA that did not sign the broker's certificate: a typed error, at once.
    let other = Pki::new("someone else");
    let started = Instant::now();
    let err = ClientBuilder::new(&server.bootstrap())
        .tls(TlsConfig::ca_pem(other.ca_pem.clone()))
        .build_tokio()
        .await
        .unwrap_err();
    assert_eq!(tls_error(&err), Some(TlsFailure::UnknownIssuer), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "not retried to the deadline"
    );
    server.shutdown().await;

    // A certificate for another host name.
    let (cert, key) = pki.leaf(&["broker.elsewhere.example"]);
    let server = serve_tls(
        cluster(),
        TlsServer::new(cert.as_bytes(), key.as_bytes(), None).unwrap(),
    )
    .await
    .unwrap();
    let err = ClientBuilder::new(&server.bootstrap())
        .tls(TlsConfig::ca_pem(pki.ca_pem.clone()))
        .build_tokio()
        .await
        .unwrap_err();
    assert_eq!(tls_error(&err), Some(TlsFailure::HostnameMismatch), "{err}");
    server.shutdown().await;
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pki = Pki::new("mtls CA");
    let (cert, key) = pki.leaf(&["127.0.0.1"]);
    let server = rt
        .block_on(serve_tls(
            cluster(),
            TlsServer::new(cert.as_bytes(), key.as_bytes(), Some(pki.ca_pem.as_bytes())).unwrap(),
        ))
        .unwrap();
    let (client_cert, client_key) = pki.leaf(&["client-1"]);
    // The blocking facade, to show TLS is the same under every runtime.
    let client = ClientBuilder::new(&server.bootstrap())
        .tls(TlsConfig::ca_pem(pki.ca_pem.clone()).client_auth_pem(client_cert, client_key))
        .build_blocking()
        .unwrap();
    assert_eq!(client.describe_cluster().unwrap().brokers.len(), 2);
    client.close();
    let started = Instant::now();
    let err = ClientBuilder::new(&server.bootstrap())
        .tls(TlsConfig::ca_pem(pki.ca_pem.clone()))
        .connect_timeout(Duration::from_secs(5))
        .build_blocking()
        .unwrap_err();
    // The broker refuses the handshake (TLS 1.3's certificate_required alert).
    assert_eq!(tls_error(&err), Some(TlsFailure::Rejected), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "not retried to the deadline"
    );
    rt.block_on(server.shutdown());
}

#[test]
fn confluent_kafka_produces_and_consumes_through_the_tls_listener() {
    let env = util::peers_env();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pki = Pki::new("confluent CA");
    let (cert, key) = pki.leaf(&["127.0.0.1", "localhost"]);
    let server = rt
        .block_on(serve_tls(
            cluster(),
            TlsServer::new(cert.as_bytes(), key.as_bytes(), None).unwrap(),
        ))
        .unwrap();
    let dir = std::env::temp_dir().join(format!("kafka-sansio-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, &pki.ca_pem).unwrap();
    let script = r#"
import os, sys, confluent_kafka as ck
conf = {"bootstrap.servers": os.environ["BOOT"], "security.protocol": "SSL",
        "ssl.ca.location": os.environ["CA"], "ssl.endpoint.identification.algorithm": "https"}
p = ck.Producer(dict(conf, **{"compression.codec": "lz4", "enable.idempotence": True}))
for i in range(50):
    p.produce("tls-topic", key=b"k%d" % i, value=b"v%d" % i, partition=0)
assert p.flush(30) == 0
c = ck.Consumer(dict(conf, **{"group.id": "tls-group", "auto.offset.reset": "earliest"}))
c.assign([ck.TopicPartition("tls-topic", 0, 0)])
got = []
while len(got) < 50:
    m = c.poll(10)
    if m is None: sys.exit("timed out")
    if m.error(): sys.exit(str(m.error()))
    got.append(m.value())
c.close()
print(" ".join(v.decode() for v in got))
"#;
    server
        .with_cluster(|c, _| c.create_topic("tls-topic", 1, 2))
        .unwrap();
    let out = Command::new(&env["PEERS_PYTHON"])
        .args(["-c", script])
        .env("BOOT", server.bootstrap())
        .env("CA", &ca_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let values: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(values, (0..50).map(|i| format!("v{i}")).collect::<Vec<_>>());

    // And our client reads what confluent-kafka wrote, over the same listener.
    let client = ClientBuilder::new(&server.bootstrap())
        .tls(TlsConfig::ca_pem(pki.ca_pem.clone()))
        .build_blocking()
        .unwrap();
    let p = client
        .partition_client("tls-topic", 0, UnknownTopicHandling::Error)
        .unwrap();
    let (records, hwm) = p.fetch_records(0, 1..1_000_000, 100).unwrap();
    assert_eq!((records.len(), hwm), (50, 50));
    assert_eq!(records[7].key(), Some(&b"k7"[..]));
    client.close();
    rt.block_on(server.shutdown());
    let _ = std::fs::remove_dir_all(dir);
}
