//! # kafka-sansio
//!
//! A pure-Rust Apache Kafka client built as a sans-IO protocol core: plain state
//! machines and codecs that turn bytes into values and values into bytes, with no
//! socket, clock or task of their own.
//!
//! Layers, bottom up:
//! - [`wire`]: Kafka's primitive types (fixed ints, varints, compact and nullable
//!   strings, bytes and arrays, tagged fields, UUIDs).
//! - [`messages`]: every request and response of every API key and version, generated
//!   from Apache Kafka's JSON message schemas, plus request/response headers,
//!   [`ErrorCode`](messages::ErrorCode) and the `__consumer_offsets` record schemas.
//! - [`records`]: record batches (v2 and legacy message sets) with compression.
//!
//! With feature `sim`, `sim` is a deterministic simulated Kafka cluster; with `sim`
//! and `tokio`, `sim_server` serves it on loopback for clients in any language.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

pub mod client;
pub mod connection;
#[cfg(feature = "arbitrary")]
#[doc(hidden)]
pub mod fuzzing;
pub mod messages;
pub mod records;
mod scram;
#[cfg(feature = "sim")]
pub mod sim;
pub mod wire;

#[cfg(feature = "blocking")]
#[path = "../runtimes/blocking.rs"]
pub mod blocking_runtime;
#[cfg(any(feature = "tokio", feature = "smol", feature = "blocking"))]
#[path = "../runtimes/consumer.rs"]
mod consumer_facade;
#[cfg(any(feature = "tokio", feature = "smol", feature = "blocking"))]
#[path = "../runtimes/driver.rs"]
mod driver;
#[cfg(any(feature = "tokio", feature = "smol", feature = "blocking"))]
#[path = "../runtimes/facade.rs"]
mod facade;
#[cfg(any(feature = "tokio", feature = "smol", feature = "blocking"))]
#[path = "../runtimes/oneshot.rs"]
mod oneshot;
#[cfg(any(feature = "tokio", feature = "smol", feature = "blocking"))]
#[path = "../runtimes/producer.rs"]
mod producer_facade;
#[cfg(any(feature = "tokio", feature = "smol", feature = "blocking"))]
#[path = "../runtimes/common.rs"]
pub mod runtime;
#[cfg(all(feature = "sim", feature = "tokio"))]
#[path = "../runtimes/sim_server.rs"]
pub mod sim_server;
#[cfg(any(feature = "smol", feature = "blocking"))]
#[path = "../runtimes/async_io_net.rs"]
mod smol_net;
#[cfg(feature = "smol")]
#[path = "../runtimes/smol.rs"]
pub mod smol_runtime;
#[cfg(all(
    feature = "tls",
    any(feature = "tokio", feature = "smol", feature = "blocking")
))]
#[path = "../runtimes/tls.rs"]
mod tls;
#[cfg(feature = "tokio")]
#[path = "../runtimes/tokio.rs"]
pub mod tokio_runtime;
