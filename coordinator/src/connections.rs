//! Bounds on the connections themselves, before any token is seen: a cap on how many are open at
//! once, a deadline for a new connection to start talking (the TLS or HTTP/2 handshake), and a
//! deadline for one that has gone quiet. Without them, clients that connect and send nothing hold
//! a file descriptor each forever, until authenticated calls can no longer get one.
//!
//! Live clients are never idle for long: the server pings every connection (HTTP/2 keepalive,
//! [`keepalive_interval`]) and a client's answer counts as traffic.

use crate::config::ConnectionConfig;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How often refused connections are logged at most: a flood must not flood the log too.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// How often the server pings a connection: well inside the idle timeout, so a client that answers
/// is never taken for idle.
pub fn keepalive_interval(limits: &ConnectionConfig) -> Duration {
    (limits.idle_timeout / 4).max(Duration::from_millis(100))
}

/// Accepts connections from `listener` within `limits`. A connection over the cap is closed at
/// once, and logged (at most every [`REFUSAL_LOG_EVERY`], with the count since the last line).
/// The accept loop runs as its own task and ends when the server drops the stream.
pub fn accept(listener: TcpListener, limits: ConnectionConfig) -> impl Stream<Item = io::Result<Guarded>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let open = Arc::new(Semaphore::new(limits.max_connections));
        let mut refused = 0u64;
        let mut last_log: Option<Instant> = None;
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let next = match accepted {
                Ok((stream, peer)) => match open.clone().try_acquire_owned() {
                    Ok(place) => {
                        let _ = stream.set_nodelay(true);
                        Ok(Guarded::new(stream, place, &limits))
                    }
                    Err(_) => {
                        drop(stream);
                        refused += 1;
                        if last_log.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_EVERY) {
                            last_log = Some(Instant::now());
                            tracing::warn!(
                                peer = %peer,
                                refused_so_far = refused,
                                max_connections = limits.max_connections,
                                "connection refused: --max-connections reached (quiet connections close after --handshake-timeout or --idle-timeout)"
                            );
                        }
                        continue;
                    }
                },
                // Out of file descriptors and the like: tonic logs it and goes on accepting.
                Err(e) => Err(e),
            };
            if tx.send(next).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// A connection that holds one of the cap's places while open and fails its reads once it has
/// been quiet past its deadline: [`ConnectionConfig::handshake_timeout`] from the accept, then
/// [`ConnectionConfig::idle_timeout`] from the last bytes received.
pub struct Guarded {
    stream: TcpStream,
    _place: OwnedSemaphorePermit,
    deadline: Pin<Box<Sleep>>,
    idle_timeout: Duration,
}

impl Guarded {
    fn new(stream: TcpStream, place: OwnedSemaphorePermit, limits: &ConnectionConfig) -> Guarded {
        Guarded {
            stream,
            _place: place,
            deadline: Box::pin(tokio::time::sleep(limits.handshake_timeout)),
            idle_timeout: limits.idle_timeout,
        }
    }
}

impl Connected for Guarded {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + self.idle_timeout;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection closed: nothing received within --handshake-timeout or --idle-timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
