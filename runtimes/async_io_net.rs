//! The client driver's network over async-io: used by the smol facade and by the
//! blocking facade's driver thread.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;

use async_io::{Async, Timer};

/// The driver's network over async-io (smol, and the blocking facade's thread).
pub(crate) struct AsyncIoNet;

/// A socket registered with async-io's reactor, and whether its last read emptied
/// it.
pub(crate) struct AsyncIoStream {
    io: Async<TcpStream>,
    /// The last read found nothing more, or less than it had room for: the next
    /// one asks the reactor first.
    drained: bool,
}

impl AsyncIoStream {
    pub(crate) fn new(io: Async<TcpStream>) -> Self {
        Self { io, drained: false }
    }
}

impl crate::driver::Net for AsyncIoNet {
    type Stream = AsyncIoStream;
    type Connecting =
        std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<AsyncIoStream>> + Send>>;
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
                        return Ok(AsyncIoStream::new(s));
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    }

    /// Reads what the socket holds. async-io's own `poll_read` reads first and
    /// asks the reactor only after `WouldBlock`: one failed `recvfrom` for every
    /// connection each time the driver wakes for something else (a record sent, a
    /// timer), two a record in a paced producer. Once a read has emptied the
    /// socket, the reactor is asked first instead: it knows, without a system
    /// call, whether the socket became readable since.
    fn poll_read(
        s: &mut AsyncIoStream,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::io::Read as _;
        loop {
            if s.drained {
                std::task::ready!(s.io.poll_readable(cx))?;
            }
            match s.io.get_ref().read(buf) {
                Ok(n) => {
                    s.drained = n < buf.len();
                    return std::task::Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => s.drained = true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return std::task::Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_write(
        s: &mut AsyncIoStream,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        futures_lite::AsyncWrite::poll_write_vectored(std::pin::Pin::new(&mut s.io), cx, bufs)
    }

    fn sleep_until(deadline: std::time::Instant) -> Self::Sleep {
        Box::pin(async move {
            Timer::at(deadline).await;
        })
    }
}
