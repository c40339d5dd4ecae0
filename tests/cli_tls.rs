//! `kafka-sansio` over TLS (`--tls-ca`, `--tls-cert`, `--tls-key`) against the
//! simulated cluster's TLS listener, mutual TLS included. Certificates are made at
//! test time with rcgen.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kafka_sansio::sim::ClusterConfig;
use kafka_sansio::sim_server::{TlsServer, serve_tls};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

const BIN: &str = env!("CARGO_BIN_EXE_kafka-sansio");

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

    fn leaf(&self, names: &[&str]) -> (String, String) {
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn produce_and_consume_over_mutual_tls() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pki = Pki::new("cli CA");
    let (cert, key) = pki.leaf(&["127.0.0.1"]);
    let server = rt
        .block_on(serve_tls(
            ClusterConfig {
                brokers: 1,
                base_port: 0,
                ..ClusterConfig::default()
            },
            TlsServer::new(cert.as_bytes(), key.as_bytes(), Some(pki.ca_pem.as_bytes())).unwrap(),
        ))
        .unwrap();
    let b = server.bootstrap();
    let dir: PathBuf =
        std::env::temp_dir().join(format!("kafka-sansio-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = write(&dir, "ca.pem", &pki.ca_pem);
    let (client_cert, client_key) = pki.leaf(&["client-1"]);
    let cert = write(&dir, "client.pem", &client_cert);
    let key = write(&dir, "client.key", &client_key);
    let tls = [
        "-b",
        &b,
        "--timeout",
        "10s",
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ];

    let out = run(
        &[
            &tls[..],
            &["topics", "create", "secure", "-p", "1", "-r", "1"],
        ]
        .concat(),
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        &[&tls[..], &["produce", "-t", "secure", "-K", ":"]].concat(),
        b"k:v1\nk:v2\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        &[
            &tls[..],
            &[
                "consume",
                "-t",
                "secure",
                "-o",
                "beginning",
                "-e",
                "-f",
                "%k=%s\\n",
            ],
        ]
        .concat(),
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"k=v1\nk=v2\n");

    // Without the client certificate the broker refuses: one line, exit 1.
    let out = run(
        &["-b", &b, "--timeout", "5s", "--tls-ca", &ca, "metadata"],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("kafka-sansio: cannot reach the cluster"),
        "{err}"
    );
    // A CA file that does not exist is named.
    let out = run(
        &["-b", &b, "--tls-ca", "/nonexistent/ca.pem", "metadata"],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ca.pem"));

    std::fs::remove_dir_all(&dir).unwrap();
    rt.block_on(server.shutdown());
}
