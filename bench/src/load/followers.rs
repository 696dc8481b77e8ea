//! Clients that each follow one room (lessons 09 and 10) or one sensor (lesson
//! 05), set up by the thousand; once set up, each counts what it receives in
//! its group's `Tally`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::SNAPSHOT;
use super::tally::Tally;
use ws_bench::wire::{Conn, OPCODE_CLOSE, OPCODE_TEXT};
use ws_harness::{FIN, masked_frame};

/// Clients that may be setting up at once, in the scenarios that set up
/// thousands (`set_up_clients`).
pub const SETUP_CONCURRENCY: usize = 64;

/// How long all the clients of one run have to set up.
pub const SETUP_LIMIT: Duration = Duration::from_secs(180);

/// Sets up clients 1 to `n`, `SETUP_CONCURRENCY` at a time: `set_up(i)` opens
/// client i's connection, has it follow what it should, and returns it with
/// the tally that counts what it receives from then on. Returns once every
/// client is set up (an error if one fails, or if they are not all set up
/// within `SETUP_LIMIT`); the clients go on reading until the set is shut down
/// or dropped.
pub async fn set_up_clients<F, Fut>(
    n: usize,
    set_up: F,
) -> io::Result<JoinSet<()>>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<(Arc<Tally>, Conn)>> + Send + 'static,
{
    let set_up = Arc::new(set_up);
    let mut clients = JoinSet::new();
    let (ready, mut readies) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    for i in 1..=n {
        let (set_up, ready, permits) =
            (set_up.clone(), ready.clone(), permits.clone());
        clients.spawn(async move {
            let permit = permits.acquire_owned().await;
            let client = set_up(i).await;
            drop(permit);
            match client {
                Ok((tally, conn)) => {
                    let _ = ready.send(Ok(()));
                    tally.follow(conn).await;
                }
                Err(e) => {
                    let e = io::Error::other(format!("client {i} of {n}: {e}"));
                    let _ = ready.send(Err(e));
                }
            }
        });
    }
    drop(ready);
    let all_ready = async {
        for _ in 0..n {
            match readies.recv().await {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(e),
                None => return Err(io::Error::other("a client ended")),
            }
        }
        Ok(())
    };
    tokio::time::timeout(SETUP_LIMIT, all_ready)
        .await
        .map_err(|_| {
            io::Error::other(format!(
                "the clients were not set up in {} s",
                SETUP_LIMIT.as_secs()
            ))
        })??;
    Ok(clients)
}

/// What the clients of the rooms and redis-hop scenarios follow: a room of
/// lesson 09 or 10, or one sensor of lesson 05's dashboard.
#[derive(Clone, Copy)]
pub enum Follow {
    /// `/ws?user=uN`, then a join of one room.
    Room,
    /// The dashboard's `/ws`, then unsubscribing from all sensors but one.
    Sensor,
}

/// Client `n` of `sources` rooms or sensors: follows source `n % sources + 1`,
/// so that the clients spread evenly over them, and returns once the server
/// has confirmed that.
pub async fn follow_source(
    addr: SocketAddr,
    follow: Follow,
    n: usize,
    sources: usize,
) -> io::Result<Conn> {
    let source = n % sources + 1;
    match follow {
        Follow::Room => join_room(addr, &format!("u{n}"), source).await,
        Follow::Sensor => follow_one_sensor(addr, source, sources).await,
    }
}

/// Client `user` of a server of rooms (lessons 09 and 10): connects to
/// `/ws?user=USER`, joins `site-ROOM`, and returns once the room's snapshot
/// has answered.
async fn join_room(
    addr: SocketAddr,
    user: &str,
    room: usize,
) -> io::Result<Conn> {
    let mut conn = Conn::open_path(addr, &format!("/ws?user={user}")).await?;
    let join = format!(r#"{{"type":"join","room":"site-{room}"}}"#);
    conn.write(&masked_frame(FIN | OPCODE_TEXT, join.as_bytes()))
        .await?;
    // The room's snapshot answers the join.
    read_until(&mut conn, SNAPSHOT).await?;
    Ok(conn)
}

/// A client of the dashboard (lesson 05) with `sensors` sensors that follows
/// only `sensor-SENSOR`: it unsubscribes from every other one, and returns
/// once the dashboard has acknowledged that.
async fn follow_one_sensor(
    addr: SocketAddr,
    sensor: usize,
    sensors: usize,
) -> io::Result<Conn> {
    let mut conn = Conn::open(addr).await?;
    read_until(&mut conn, SNAPSHOT).await?;
    let others: Vec<String> = (1..=sensors)
        .filter(|&other| other != sensor)
        .map(|other| format!(r#""sensor-{other}""#))
        .collect();
    let unsubscribe = format!(
        r#"{{"type":"unsubscribe","id":1,"sensors":[{}]}}"#,
        others.join(",")
    );
    conn.write(&masked_frame(FIN | OPCODE_TEXT, unsubscribe.as_bytes()))
        .await?;
    read_until(&mut conn, br#"{"type":"ack","id":1}"#).await?;
    Ok(conn)
}

/// Reads frames until a text frame that begins with `prefix`; an `error`
/// message from the server fails.
async fn read_until(conn: &mut Conn, prefix: &[u8]) -> io::Result<()> {
    loop {
        let opcode = conn.read_frame().await?;
        let payload = conn.payload();
        if opcode == OPCODE_CLOSE {
            return Err(io::Error::other("the server closed the connection"));
        }
        if opcode != OPCODE_TEXT {
            continue;
        }
        if payload.starts_with(prefix) {
            return Ok(());
        }
        if payload.starts_with(br#"{"type":"error""#) {
            let error = String::from_utf8_lossy(payload).into_owned();
            return Err(io::Error::other(error));
        }
    }
}
