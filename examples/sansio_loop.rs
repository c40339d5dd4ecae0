//! The whole driving loop of a sans-IO [`Connection`] over a plain `std::net`
//! socket, in one function: what every runtime adapter does, written out.
//!
//! ```text
//! cargo run --example sansio_loop -- 127.0.0.1:9092
//! ```
//!
//! Without an address it starts librdkafka's mock cluster through
//! `scripts/peers/start_mock.sh` and talks to that.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // this loop is the I/O

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kafka_sansio::connection::{Config, Connection, Event};
use kafka_sansio::messages::{ApiKey, MetadataRequest};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut mock = None;
    let addr = match std::env::args().nth(1) {
        Some(a) => a,
        None => {
            let mut child = Command::new("bash")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/scripts/peers/start_mock.sh"
                ))
                .args(["-b", "1", "-t", "demo:3"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            let mut line = String::new();
            BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
            mock = Some(child);
            line.trim().split(',').next().unwrap_or_default().to_owned()
        }
    };

    let mut socket = TcpStream::connect(&addr)?;
    let mut conn = Connection::new(Config::new(addr.as_str()), Instant::now());
    // Queued now, written as soon as versions are negotiated.
    let metadata = conn.send(
        Instant::now(),
        MetadataRequest {
            topics: None,
            ..Default::default()
        },
    )?;

    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // 1. Write everything the connection wants written.
        while let Some(bytes) = conn.poll_transmit() {
            socket.write_all(&bytes)?;
        }
        // 2. Act on every event.
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Ready => println!(
                    "ready: Metadata v{:?}, Produce v{:?}, Fetch v{:?}",
                    conn.version_for(ApiKey::Metadata),
                    conn.version_for(ApiKey::Produce),
                    conn.version_for(ApiKey::Fetch),
                ),
                Event::Response(r) if r.context.correlation_id == metadata => {
                    let m = r.decode::<MetadataRequest>()?;
                    for b in &m.brokers {
                        println!("broker {} at {}:{}", b.node_id, b.host, b.port);
                    }
                    for t in &m.topics {
                        println!("topic {:?}: {} partitions", t.name, t.partitions.len());
                    }
                    conn.close();
                }
                Event::Closed(e) if !e.is_remote() => {
                    if let Some(mut m) = mock {
                        let _ = m.kill();
                        let _ = m.wait();
                    }
                    return Ok(());
                }
                Event::Closed(e) => return Err(e.into()),
                Event::RequestFailed(e) => return Err(e.into()),
                other => println!("{other:?}"),
            }
        }
        // 3. Wait for bytes, but no longer than the next deadline.
        let now = Instant::now();
        let wait = conn
            .poll_timeout()
            .map_or(Duration::from_secs(1), |d| d.saturating_duration_since(now));
        socket.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        match socket.read(&mut buf) {
            Ok(0) => conn.handle_eof(Instant::now()),
            Ok(n) => conn.handle_input(Instant::now(), &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                conn.handle_timeout(Instant::now())
            }
            Err(e) => conn.handle_transport_error(Instant::now(), e),
        }
    }
}
