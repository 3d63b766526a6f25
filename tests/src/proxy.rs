//! A pausable TCP proxy on loopback, standing in for the network between agents and the
//! coordinator. Paused, it drops every open connection and refuses new ones at once (accept and
//! close), so the chaos suite can cut agent↔coordinator traffic for as long as it likes.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Shared between the test and the proxy's threads.
struct Inner {
    upstream: SocketAddr,
    paused: AtomicBool,
    stopped: AtomicBool,
    /// Both ends of every forwarded connection, so a pause can cut them all.
    open: Mutex<Vec<(u64, TcpStream, TcpStream)>>,
    next_id: AtomicU64,
    /// Connections refused while paused, for the report.
    refused: AtomicU64,
}

/// The proxy: listens on `127.0.0.1:<port>` and forwards each connection to `upstream`. The
/// listening port stays the same for the whole run, so agents reconnect to it after a cut.
pub struct Proxy {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

impl Proxy {
    /// Starts forwarding from a free loopback port to `upstream`.
    pub fn start(upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            upstream,
            paused: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let accept_inner = inner.clone();
        thread::Builder::new().name("proxy-accept".into()).spawn(move || accept_loop(listener, accept_inner))?;
        Ok(Proxy { inner, addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, the address agents are given.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops forwarding: cuts every open connection and refuses new ones until [`Proxy::resume`].
    pub fn pause(&self) {
        self.inner.paused.store(true, Ordering::SeqCst);
        cut_all(&self.inner);
    }

    pub fn resume(&self) {
        self.inner.paused.store(false, Ordering::SeqCst);
    }

    /// Connections refused while paused so far.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        cut_all(&self.inner);
        // Wake the accept loop so it sees `stopped` and ends.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn cut_all(inner: &Inner) {
    for (_, a, b) in inner.open.lock().expect("proxy connections").drain(..) {
        let _ = a.shutdown(Shutdown::Both);
        let _ = b.shutdown(Shutdown::Both);
    }
}

fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    for client in listener.incoming() {
        if inner.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if inner.paused.load(Ordering::SeqCst) {
            inner.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        // The coordinator may be down (killed by the suite): then the client sees a closed
        // connection, as it would see a refused one without the proxy.
        let Ok(server) = TcpStream::connect_timeout(&inner.upstream, Duration::from_secs(2)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let id = inner.next_id.fetch_add(1, Ordering::SeqCst);
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) =
            (client.try_clone(), server.try_clone(), client.try_clone(), server.try_clone())
        else {
            continue;
        };
        inner.open.lock().expect("proxy connections").push((id, c3, s3));
        let done = inner.clone();
        thread::spawn(move || pipe(client, server, id, done));
        let done = inner.clone();
        thread::spawn(move || pipe(s2, c2, id, done));
    }
}

/// Copies `from` to `to` until either side closes, then closes both and forgets the pair.
fn pipe(mut from: TcpStream, mut to: TcpStream, id: u64, inner: Arc<Inner>) {
    let _ = io::copy(&mut from, &mut to);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    inner.open.lock().expect("proxy connections").retain(|(i, _, _)| *i != id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn forwards_and_cuts() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let up_addr = upstream.local_addr().unwrap();
        thread::spawn(move || {
            for s in upstream.incoming() {
                let mut s = s.unwrap();
                thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let proxy = Proxy::start(up_addr).unwrap();
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");

        proxy.pause();
        let mut rest = Vec::new();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(c.read_to_end(&mut rest).unwrap_or(0), 0, "a pause closes open connections");
        let mut d = TcpStream::connect(proxy.addr()).unwrap();
        d.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(d.read(&mut buf).unwrap_or(0), 0, "a paused proxy closes new connections");

        proxy.resume();
        let mut e = TcpStream::connect(proxy.addr()).unwrap();
        e.write_all(b"pong").unwrap();
        e.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
    }
}
