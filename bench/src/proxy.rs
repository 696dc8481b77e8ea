//! A delaying TCP proxy, for measurements over a network slower than loopback:
//! this kernel has no `netem`, so the bench adds the latency itself. Every byte
//! that crosses the proxy, either way, is written on `delay` after it was read,
//! as a link with that one-way latency would deliver it; order is kept, and bytes
//! are not held back any longer than that.
//!
//! It listens on loopback only, forwards to a loopback server only, serves at
//! most `MAX_CONNECTIONS` connections, and stops, with every connection it
//! carries, when dropped.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The most connections one proxy accepts; it then stops listening, and refuses
/// more.
const MAX_CONNECTIONS: usize = 256;

/// The most chunks read but not yet written, per direction of a connection: the
/// reading side waits beyond that, which bounds the proxy's memory.
const MAX_CHUNKS_IN_FLIGHT: usize = 1024;

/// The largest chunk read at once.
const CHUNK_BYTES: usize = 16 * 1024;

/// A running proxy in front of one server; stops when dropped.
pub struct DelayProxy {
    /// Where clients connect instead of the server.
    pub addr: SocketAddr,
    /// The accept loop, which owns every connection's tasks.
    accept: JoinHandle<()>,
}

impl DelayProxy {
    /// Starts a proxy on 127.0.0.1 in front of `upstream` (a loopback address),
    /// adding `delay` to each direction of every connection.
    pub async fn start(
        upstream: SocketAddr,
        delay: Duration,
    ) -> io::Result<DelayProxy> {
        if !upstream.ip().is_loopback() {
            return Err(io::Error::other(format!(
                "the delaying proxy forwards to loopback only, not {upstream}"
            )));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(accept(listener, upstream, delay));
        Ok(DelayProxy { addr, accept })
    }
}

impl Drop for DelayProxy {
    /// Aborting the accept loop drops its `JoinSet`, which aborts every
    /// connection's tasks.
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Accepts up to `MAX_CONNECTIONS` clients, each forwarded to `upstream` both
/// ways; then refuses more and carries on with those it has until they end.
async fn accept(listener: TcpListener, upstream: SocketAddr, delay: Duration) {
    let mut connections = JoinSet::new();
    for _ in 0..MAX_CONNECTIONS {
        let Ok((client, _)) = listener.accept().await else {
            break;
        };
        let Ok(server) = TcpStream::connect(upstream).await else {
            continue;
        };
        if client.set_nodelay(true).is_err() || server.set_nodelay(true).is_err()
        {
            continue;
        }
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        connections.spawn(forward(client_read, server_write, delay));
        connections.spawn(forward(server_read, client_write, delay));
        // Reap the connections that have ended, so the set does not grow with
        // them.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// One direction of one connection: what `from` reads, `to` writes `delay` later.
/// Ends when `from` ends (then shuts `to` down, after the bytes still in flight)
/// or either side fails.
async fn forward(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay: Duration,
) {
    let (chunks, mut due) =
        mpsc::channel::<(Instant, Vec<u8>)>(MAX_CHUNKS_IN_FLIGHT);
    let writer = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    let reader = async move {
        let mut buffer = vec![0; CHUNK_BYTES];
        loop {
            let n = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return, // dropping `chunks` lets the writer finish
                Ok(n) => n,
            };
            let at = Instant::now() + delay;
            if chunks.send((at, buffer[..n].to_vec())).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes cross the proxy whole and in order, both ways, and an end of stream
    /// crosses too.
    #[tokio::test]
    async fn the_proxy_carries_every_byte_in_order_both_ways() -> io::Result<()> {
        // An upstream that echoes what it reads until the stream ends.
        let upstream = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let upstream_addr = upstream.local_addr()?;
        tokio::spawn(async move {
            if let Ok((mut tcp, _)) = upstream.accept().await {
                let (mut read, mut write) = tcp.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            }
        });
        let proxy =
            DelayProxy::start(upstream_addr, Duration::from_millis(1)).await?;
        let mut tcp = TcpStream::connect(proxy.addr).await?;
        let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (mut read, mut write) = tcp.split();
        let writing = async {
            write.write_all(&sent).await?;
            write.shutdown().await
        };
        let mut received = Vec::new();
        let (written, read) =
            tokio::join!(writing, read.read_to_end(&mut received));
        written?;
        read?;
        assert_eq!(received, sent);
        Ok(())
    }

    #[tokio::test]
    async fn the_proxy_forwards_to_loopback_only() {
        let elsewhere = SocketAddr::from(([192, 0, 2, 1], 80));
        assert!(DelayProxy::start(elsewhere, Duration::ZERO).await.is_err());
    }
}
