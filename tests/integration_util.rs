//! Real peers for the integration tests, installed and started through the project's
//! own scripts (`scripts/peers/`), and one synchronous face over the three runtime
//! adapters so every scenario runs through each. Shared through `#[path]`; on its own
//! it holds no tests.
#![allow(dead_code, clippy::unwrap_used, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;

use kafka_sansio::connection::{Config, RequestOptions};
use kafka_sansio::messages::Request;
use kafka_sansio::runtime::{Error, Outcome};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script(name: &str) -> PathBuf {
    repo().join("scripts/peers").join(name)
}

/// librdkafka's mock cluster, started by `scripts/peers/start_mock.sh`.
pub struct Mock {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub bootstrap: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Librdkafka {
    /// Debian's 2.0.2.
    Debian,
    /// 2.16, from the confluent-kafka wheel.
    V216,
}

impl Mock {
    pub fn start(flavour: Librdkafka, brokers: usize, topics: &[&str]) -> Mock {
        let mut cmd = Command::new("bash");
        cmd.arg(script("start_mock.sh"));
        if flavour == Librdkafka::V216 {
            cmd.args(["--librdkafka", "2.16"]);
        }
        cmd.args(["-b", &brokers.to_string()]);
        for t in topics {
            cmd.args(["-t", t]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start_mock.sh");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let bootstrap: Vec<String> = line.trim().split(',').map(str::to_owned).collect();
        assert!(
            bootstrap.iter().all(|b| b.contains(':')),
            "mock launcher printed {line:?}"
        );
        Mock {
            child,
            stdin,
            stdout,
            bootstrap,
        }
    }

    /// Sends one launcher command and returns its answer line.
    pub fn command(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        assert!(answer.starts_with("ok"), "{line}: {answer}");
        answer.trim().to_owned()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        // the launcher stops on quit; make sure of it
        std::thread::sleep(std::time::Duration::from_millis(50));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tansu, started by `scripts/peers/start_tansu.sh`.
pub struct Tansu {
    child: Child,
    pub addr: String,
}

impl Tansu {
    pub fn start() -> Tansu {
        let mut child = Command::new("bash")
            .arg(script("start_tansu.sh"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start_tansu.sh");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line.trim().to_owned();
        assert!(addr.starts_with("127.0.0.1:"), "tansu launcher printed {line:?}");
        Tansu { child, addr }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        // SIGTERM lets the script stop tansu and remove its folder
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The peers' environment from `install.sh` (KEY=VALUE lines), installing if needed.
pub fn peers_env() -> std::collections::HashMap<String, String> {
    let out = Command::new("bash")
        .arg(script("install.sh"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("install.sh");
    assert!(out.status.success(), "install.sh failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Which adapter a [`Client`] goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    Tokio,
    Smol,
    Blocking,
}

pub const ADAPTERS: [Adapter; 3] = [Adapter::Tokio, Adapter::Smol, Adapter::Blocking];

/// One synchronous face over the three adapters.
pub enum Client {
    Tokio(Arc<tokio::runtime::Runtime>, kafka_sansio::tokio_runtime::Connection),
    Smol(kafka_sansio::smol_runtime::Connection),
    Blocking(kafka_sansio::blocking_runtime::Connection),
}

impl Client {
    pub fn connect(adapter: Adapter, addr: &str, config: Config) -> Result<Client, Error> {
        match adapter {
            Adapter::Tokio => {
                let rt = Arc::new(
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .unwrap(),
                );
                let conn = rt.block_on(kafka_sansio::tokio_runtime::Connection::connect(
                    addr.to_owned(),
                    config,
                ))?;
                Ok(Client::Tokio(rt, conn))
            }
            Adapter::Smol => {
                let (conn, driver) = futures_lite::future::block_on(
                    kafka_sansio::smol_runtime::Connection::connect(addr.to_owned(), config),
                )?;
                std::thread::spawn(move || futures_lite::future::block_on(driver));
                Ok(Client::Smol(conn))
            }
            Adapter::Blocking => Ok(Client::Blocking(
                kafka_sansio::blocking_runtime::Connection::connect(addr.to_owned(), config)?,
            )),
        }
    }

    pub fn send<R: Request + Send + 'static>(&self, request: R) -> Result<R::Response, Error> {
        match self {
            Client::Tokio(rt, c) => rt.block_on(c.send(request)),
            Client::Smol(c) => futures_lite::future::block_on(c.send(request)),
            Client::Blocking(c) => c.send(request),
        }
    }

    pub fn send_with<R: Request + Send + 'static>(
        &self,
        request: R,
        options: RequestOptions,
    ) -> Result<Outcome, Error> {
        match self {
            Client::Tokio(rt, c) => rt.block_on(c.send_with(request, options)),
            Client::Smol(c) => futures_lite::future::block_on(c.send_with(request, options)),
            Client::Blocking(c) => c.send_with(request, options),
        }
    }
}
