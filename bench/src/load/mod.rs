//! The load generator's clients: idle connections (here), the closed-loop echo
//! load (`closed_loop`), subscribers that time the readings a server pushes
//! (`subscribers`), and clients that each follow one room or sensor, set up by
//! the thousand (`followers`), which count what they receive (`tally`).
//! Several scenarios share them, by the names re-exported here (`load::echo`,
//! `load::Tally`, ...), whichever file holds them.

mod closed_loop;
mod followers;
mod subscribers;
mod tally;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use ws_bench::wire::Conn;
use ws_harness::Running;

pub use closed_loop::echo;
pub use followers::{Follow, SETUP_CONCURRENCY, follow_source, set_up_clients};
pub use subscribers::follow;
pub use tally::{Counts, Tally};

/// How long one connection may take to open (TCP and the handshake): a server
/// that stops accepting, out of file descriptors say, fails the run instead of
/// hanging it.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens `n` connections to `addr`, one after another.
pub async fn open(addr: SocketAddr, n: usize) -> io::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    for i in 1..=n {
        let conn = tokio::time::timeout(OPEN_TIMEOUT, Conn::open(addr))
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::other(format!(
                    "no handshake within {} s",
                    OPEN_TIMEOUT.as_secs()
                )))
            })
            .map_err(|e| {
                io::Error::other(format!("connection {i} of {n} to {addr}: {e}"))
            })?;
        conns.push(conn);
    }
    Ok(conns)
}

/// A server's resident memory with idle connections open.
pub struct IdleMemory {
    /// Growth from before the connections opened, per connection, in bytes.
    pub per_connection_bytes: f64,
    /// All of it, in MiB.
    pub resident_mib: f64,
}

/// Opens `n` connections to `server` that send and read nothing, and measures its
/// memory.
pub async fn idle(server: &Running, n: usize) -> io::Result<IdleMemory> {
    let before = server.rss_kib();
    let conns = open(server.addr, n).await?;
    // Let the server finish setting up the last connections.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server.rss_kib();
    drop(conns);
    Ok(IdleMemory {
        per_connection_bytes: after.saturating_sub(before) as f64 * 1024.0
            / n as f64,
        resident_mib: after as f64 / 1024.0,
    })
}

/// How the messages the clients count begin; here, as both `followers` (which
/// waits for the snapshot that answers a join) and `tally` look for them.
const READING: &[u8] = br#"{"type":"reading""#;
const SNAPSHOT: &[u8] = br#"{"type":"snapshot""#;
