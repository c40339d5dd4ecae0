//! # kafka-sansio
//!
//! A pure-Rust Apache Kafka client built as a sans-IO protocol core: plain state
//! machines and codecs that turn bytes into values and values into bytes, with no
//! socket, clock or task of their own. Time is an argument and bytes come back to the
//! caller, so the same code runs under any runtime, in a deterministic simulation and
//! under a fuzzer; nothing outside the runtime adapters reads a clock, sleeps, spawns
//! or opens a socket.
//!
//! ## Layers, bottom up
//!
//! - [`wire`]: Kafka's primitive types (fixed-width integers, varints, compact and
//!   nullable strings, bytes and arrays, tagged fields, UUIDs), one `read_*` and one
//!   `put_*` function each. Decoding never panics, slices strings and bytes out of the
//!   input instead of copying them, and never allocates more than the remaining input
//!   can justify.
//! - [`messages`]: every request and response of every API key and version, generated
//!   from Apache Kafka's JSON message schemas by this repository's `codegen/`, plus
//!   the request and response headers, [`ErrorCode`](messages::ErrorCode), the
//!   [`ApiKey`](messages::ApiKey) table (versions, header rules, where a response
//!   carries its throttle time) and the `__consumer_offsets` record schemas.
//! - [`records`]: record batches: RecordBatch v2 encode and decode with CRC32C, lazy
//!   zero-copy record iteration, control batches and `read_committed` filtering,
//!   legacy message sets (magic 0 and 1), and gzip, snappy, lz4 and zstd behind the
//!   features of those names, with decompression bounded.
//! - [`connection`]: one broker connection as a state machine. Requests go in, bytes
//!   to write come out; bytes read go in, typed responses and events come out; the
//!   caller asks it for the next deadline. It frames messages, negotiates versions
//!   (ApiVersions), authenticates (SASL PLAIN and SCRAM), tracks correlation ids,
//!   pipelines up to a limit, times requests out and honours broker throttling, and
//!   ends every request exactly once.
//! - A cluster client (`client`): many connections driven as one state machine
//!   (bootstrap, metadata, leader routing, retries, produce and fetch) is being added.
//!
//! ## Runtime adapters
//!
//! Thin drivers that carry bytes between a TCP socket and a
//! [`Connection`](connection::Connection), sleep until its next deadline and hand each
//! caller its response; they are the crate's only I/O:
//!
//! - `tokio_runtime` (feature `tokio`): one driver task per connection, a cloneable
//!   async handle.
//! - `smol_runtime` (feature `smol`): the same over `async-io`, with a driver future
//!   the caller spawns on any executor.
//! - `blocking_runtime` (feature `blocking`): plain blocking calls over `std::net`,
//!   safe from many threads.
//! - `runtime` (any of the three): what the adapters share, their error type and
//!   request outcome.
//!
//! ## Simulation
//!
//! - `sim` (feature `sim`): a deterministic in-memory Kafka cluster that speaks the
//!   wire protocol from the broker side, as a sans-IO state machine itself, with
//!   faults to inject (broker crashes and restarts, leader moves, error codes,
//!   throttling, delayed and cut-short fetches). One seed gives one exact run.
//! - `sim_server` (features `sim` and `tokio`): that cluster served on loopback, one
//!   listener per broker, for clients in any language.
//!
//! ```
//! use kafka_sansio::messages::{ApiKey, MetadataRequest, Request};
//! use kafka_sansio::wire::{BytesMut, Message};
//!
//! let request = MetadataRequest { topics: None, ..Default::default() }; // all topics
//! let mut buf = BytesMut::new();
//! request.encode(&mut buf, 12)?;
//! assert_eq!(MetadataRequest::API_KEY, ApiKey::Metadata);
//! assert_eq!(MetadataRequest::decode(&mut buf.freeze(), 12)?, request);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

pub mod client;
pub mod connection;
#[cfg(feature = "sim")]
#[doc(hidden)]
#[path = "../runtimes/doc_support.rs"]
pub mod doc_support;
#[cfg(feature = "arbitrary")]
#[doc(hidden)]
pub mod fuzzing;
pub mod messages;
pub mod records;
mod scram;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
pub mod wire;

/// The README's Rust blocks, compiled and run as doctests (they need the runtimes and
/// the simulation).
#[cfg(all(doctest, feature = "sim", feature = "tokio", feature = "blocking"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(feature = "blocking")]
#[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
#[path = "../runtimes/blocking.rs"]
pub mod blocking_runtime;
#[cfg(any(feature = "tokio", feature = "smol", feature = "blocking"))]
#[path = "../runtimes/conn_driver.rs"]
mod conn_driver;
#[cfg(any(feature = "tokio", feature = "smol", feature = "blocking"))]
#[path = "../runtimes/consumer.rs"]
mod consumer_facade;
#[cfg(any(feature = "tokio", feature = "smol", feature = "blocking"))]
#[path = "../runtimes/delivery.rs"]
mod delivery;
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
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "tokio", feature = "smol", feature = "blocking")))
)]
#[path = "../runtimes/common.rs"]
pub mod runtime;
#[cfg(all(
    feature = "sim",
    any(feature = "tokio", feature = "smol", feature = "blocking")
))]
#[cfg_attr(
    docsrs,
    doc(cfg(all(
        feature = "sim",
        any(feature = "tokio", feature = "smol", feature = "blocking")
    )))
)]
#[path = "../runtimes/sim_runtime.rs"]
pub mod sim_runtime;
#[cfg(all(feature = "sim", feature = "tokio"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "sim", feature = "tokio"))))]
#[path = "../runtimes/sim_server.rs"]
pub mod sim_server;
#[cfg(any(feature = "smol", feature = "blocking"))]
#[path = "../runtimes/async_io_net.rs"]
mod smol_net;
#[cfg(feature = "smol")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
#[path = "../runtimes/smol.rs"]
pub mod smol_runtime;
#[cfg(test)]
#[path = "../runtimes/test_clock.rs"]
mod test_clock;
#[cfg(all(
    feature = "tls",
    any(feature = "tokio", feature = "smol", feature = "blocking")
))]
#[path = "../runtimes/tls.rs"]
mod tls;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[path = "../runtimes/tokio.rs"]
pub mod tokio_runtime;
