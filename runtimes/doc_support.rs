//! Setup shared by the doc examples: a simulated cluster with a topic, a hosted
//! sans-IO client, a served cluster for the runtime facades. Not part of the API.
#![allow(
    clippy::disallowed_methods,
    clippy::missing_panics_doc,
    clippy::expect_used
)]

use std::time::Duration;

use crate::client::{Client, ClientConfig, OpId, OpOutput};
use crate::sim::{ClusterConfig, HostId, NetworkConfig, Simulation};

/// The topic every example finds: `orders`, 3 partitions, 3 replicas.
pub const TOPIC: &str = "orders";

/// Three simulated brokers with [`TOPIC`] created, and a sans-IO client hosted on
/// them (seed 1, so every run is the same).
#[must_use]
pub fn sim() -> (Simulation, HostId) {
    let start = std::time::Instant::now();
    let mut sim = Simulation::new(
        1,
        ClusterConfig {
            brokers: 3,
            ..ClusterConfig::default()
        },
        NetworkConfig::default(),
        start,
    );
    sim.cluster()
        .create_topic(TOPIC, 3, 3)
        .expect("the topic is created");
    let config = ClientConfig::new(&sim.bootstrap()).expect("the simulation's bootstrap parses");
    let host = sim.add_client(Client::new(config, sim.now()));
    (sim, host)
}

/// Runs the simulation until `op` ends (at most 30 s of virtual time); its output.
pub fn run(sim: &mut Simulation, host: HostId, op: OpId) -> OpOutput {
    sim.run_until_done(host, op, Duration::from_secs(30))
        .expect("the operation succeeds")
}

/// The cluster config the served examples use: three brokers on ephemeral ports.
#[must_use]
pub fn cluster_config() -> ClusterConfig {
    ClusterConfig {
        brokers: 3,
        base_port: 0,
        ..ClusterConfig::default()
    }
}

/// The error type of the async examples.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Runs an async example on a current-thread tokio runtime; panics on its error.
#[cfg(feature = "tokio")]
pub fn tokio(example: impl std::future::Future<Output = Result<(), Error>>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(example)
        .expect("the example succeeds");
}

/// Serves three simulated brokers on loopback with [`TOPIC`] created (call inside
/// [`tokio`]).
#[cfg(feature = "tokio")]
pub async fn serve() -> crate::sim_server::Server {
    let server = crate::sim_server::serve(cluster_config())
        .await
        .expect("the simulated cluster serves");
    server
        .with_cluster(|c, _| c.create_topic(TOPIC, 3, 3))
        .expect("the topic is created");
    server
}

/// A served cluster with [`TOPIC`] and a tokio client connected to it.
#[cfg(feature = "tokio")]
pub async fn client() -> (crate::sim_server::Server, crate::runtime::Client) {
    let server = serve().await;
    let client = crate::runtime::ClientBuilder::new(&server.bootstrap())
        .seed(1)
        .build_tokio()
        .await
        .expect("the client connects");
    (server, client)
}

/// Serves three simulated brokers from a thread of their own, with [`TOPIC`]
/// created, for the blocking examples.
#[cfg(feature = "tokio")]
#[must_use]
pub fn background() -> crate::sim_server::BackgroundServer {
    let server = crate::sim_server::BackgroundServer::start(cluster_config())
        .expect("the simulated cluster serves");
    server
        .with_cluster(|c, _| c.create_topic(TOPIC, 3, 3))
        .expect("the topic is created");
    server
}

/// A background cluster with [`TOPIC`] and a blocking client connected to it.
#[cfg(all(feature = "tokio", feature = "blocking"))]
#[must_use]
pub fn blocking_client() -> (
    crate::sim_server::BackgroundServer,
    crate::blocking_runtime::Client,
) {
    let server = background();
    let client = crate::runtime::ClientBuilder::new(&server.bootstrap())
        .seed(1)
        .build_blocking()
        .expect("the client connects");
    (server, client)
}
