//! The client driver's network over async-io: used by the smol facade and by the
//! blocking facade's driver thread.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;

use async_io::{Async, Timer};

/// The driver's network over async-io (smol, and the blocking facade's thread).
pub(crate) struct AsyncIoNet;

impl crate::driver::Net for AsyncIoNet {
    type Stream = Async<TcpStream>;
    type Connecting = std::pin::Pin<
        Box<dyn std::future::Future<Output = std::io::Result<Async<TcpStream>>> + Send>,
    >;
    type Sleep = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

    fn connect(host: Arc<str>, port: u16) -> Self::Connecting {
        Box::pin(async move {
            // Name resolution is std's (blocking); brokers are usually named by
            // address or resolve from a local cache.
            let addrs: Vec<std::net::SocketAddr> = (&*host, port).to_socket_addrs()?.collect();
            let mut last =
                std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host}: no address"));
            for addr in addrs {
                match Async::<TcpStream>::connect(addr).await {
                    Ok(s) => {
                        let _ = s.get_ref().set_nodelay(true);
                        return Ok(s);
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    }

    fn poll_read(
        s: &mut Async<TcpStream>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        futures_lite::AsyncRead::poll_read(std::pin::Pin::new(s), cx, buf)
    }

    fn poll_write(
        s: &mut Async<TcpStream>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        futures_lite::AsyncWrite::poll_write_vectored(std::pin::Pin::new(s), cx, bufs)
    }

    fn sleep_until(deadline: std::time::Instant) -> Self::Sleep {
        Box::pin(async move {
            Timer::at(deadline).await;
        })
    }
}
