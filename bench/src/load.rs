//! The load generator's clients: idle connections, the closed-loop echo load,
//! subscribers that time the readings a server pushes, and clients that each
//! follow one room or sensor, set up by the thousand. Several scenarios share
//! them.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::Plan;
use crate::process::Server;
use crate::stats::{histogram, now_ms};
use ws_bench::wire::{
    Conn, OPCODE_CLOSE, OPCODE_TEXT, json_number, masked_frame,
};

/// Opens `n` connections to `addr`, one after another.
pub async fn open(addr: SocketAddr, n: usize) -> io::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    for i in 1..=n {
        let conn = Conn::open(addr).await.map_err(|e| {
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
pub async fn idle(server: &Server, n: usize) -> io::Result<IdleMemory> {
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

/// What one closed-loop echo run measured.
#[derive(Clone, Copy)]
pub struct EchoRun {
    /// Messages echoed per second, all connections together.
    pub per_second: f64,
    /// The round trip's median and 99th percentile, in µs.
    pub p50_us: f64,
    pub p99_us: f64,
    /// The server's CPU time (user and system) per message echoed.
    pub cpu_us_per_message: f64,
}

/// The echo load, after the `load_test` tools of fastwebsockets and uWebSockets:
/// `connections` connections, one message of `size` bytes in flight on each,
/// closed loop; `plan.warm_up`, then `plan.measure` counted.
pub async fn echo(
    server: &Server,
    connections: usize,
    size: usize,
    plan: &Plan,
) -> io::Result<EchoRun> {
    let frame = Arc::new(masked_frame(0x2, &vec![0x5a; size]));
    // Connect everyone first: the clock starts when the load does.
    let conns = open(server.addr, connections).await?;
    let measure_from = Instant::now() + plan.warm_up;
    let measure_until = measure_from + plan.measure;
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (frame, count, done) = (frame.clone(), count.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut histogram = histogram();
            while !done.load(Ordering::Relaxed) {
                let sent = Instant::now();
                if conn.write(&frame).await.is_err()
                    || conn.read_frame().await.is_err()
                {
                    break;
                }
                let now = Instant::now();
                if sent >= measure_from && now <= measure_until {
                    count.fetch_add(1, Ordering::Relaxed);
                    let _ = histogram.record((now - sent).as_micros() as u64);
                }
                if now > measure_until {
                    break;
                }
            }
            histogram
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = server.cpu_seconds();
    tokio::time::sleep_until(measure_until.into()).await;
    let cpu_after = server.cpu_seconds();
    done.store(true, Ordering::Relaxed);
    let mut histogram = histogram();
    for task in tasks {
        if let Ok(h) = task.await {
            let _ = histogram.add(h);
        }
    }
    let messages = count.load(Ordering::Relaxed) as f64;
    Ok(EchoRun {
        per_second: messages / plan.measure.as_secs_f64(),
        p50_us: histogram.value_at_quantile(0.5) as f64,
        p99_us: histogram.value_at_quantile(0.99) as f64,
        cpu_us_per_message: (cpu_after - cpu_before) * 1e6 / messages.max(1.0),
    })
}

/// What subscribers measured of the readings a server pushed to them all.
#[derive(Clone, Copy)]
pub struct FanOutRun {
    /// The delay from a reading's creation to its arrival at the last client, in
    /// whole ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Readings received, by all clients together.
    pub deliveries_per_s: f64,
}

/// Reads the readings (`{"type":"reading","seq":..,"at_ms":..}`) arriving on
/// `conns`: `warm_up` ignored, then `measure` timed.
pub async fn follow(
    conns: Vec<Conn>,
    warm_up: Duration,
    measure: Duration,
) -> FanOutRun {
    // Per reading (its `seq`), the longest delay of any client so far.
    let latest = Arc::new(std::sync::Mutex::new(BTreeMap::<u64, u64>::new()));
    let delivered = Arc::new(AtomicU64::new(0));
    let measure_from = Instant::now() + warm_up;
    let until = measure_from + measure;
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (latest, delivered) = (latest.clone(), delivered.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let Ok(Ok(opcode)) =
                    tokio::time::timeout_at(until.into(), conn.read_frame())
                        .await
                else {
                    break;
                };
                if opcode != 0x1 || Instant::now() < measure_from {
                    continue;
                }
                let payload = conn.payload();
                if !payload.starts_with(br#"{"type":"reading""#) {
                    continue;
                }
                let (Some(seq), Some(at)) =
                    (json_number(payload, "seq"), json_number(payload, "at_ms"))
                else {
                    continue;
                };
                delivered.fetch_add(1, Ordering::Relaxed);
                let delay = now_ms().saturating_sub(at);
                let mut latest = latest.lock().unwrap_or_else(|e| e.into_inner());
                let slot = latest.entry(seq).or_insert(0);
                *slot = (*slot).max(delay);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let latest = latest.lock().unwrap_or_else(|e| e.into_inner());
    let mut delays: Histogram<u64> = histogram();
    for delay in latest.values() {
        let _ = delays.record(*delay);
    }
    FanOutRun {
        p50_ms: delays.value_at_quantile(0.5) as f64,
        p99_ms: delays.value_at_quantile(0.99) as f64,
        deliveries_per_s: delivered.load(Ordering::Relaxed) as f64
            / measure.as_secs_f64(),
    }
}

/// Clients that may be setting up at once, in the scenarios that set up
/// thousands (`set_up_clients`).
pub const SETUP_CONCURRENCY: usize = 64;

/// How long all the clients of one run have to set up.
pub const SETUP_LIMIT: Duration = Duration::from_secs(180);

/// How the messages the clients count begin.
const READING: &[u8] = br#"{"type":"reading""#;
const SNAPSHOT: &[u8] = br#"{"type":"snapshot""#;

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

/// Client `user` of a server of rooms (lessons 09 and 10): connects to
/// `/ws?user=USER`, joins `site-ROOM`, and returns once the room's snapshot
/// has answered.
pub async fn join_room(
    addr: SocketAddr,
    user: &str,
    room: usize,
) -> io::Result<Conn> {
    let mut conn = Conn::open_path(addr, &format!("/ws?user={user}")).await?;
    let join = format!(r#"{{"type":"join","room":"site-{room}"}}"#);
    conn.write(&masked_frame(OPCODE_TEXT, join.as_bytes()))
        .await?;
    // The room's snapshot answers the join.
    read_until(&mut conn, SNAPSHOT).await?;
    Ok(conn)
}

/// A client of the dashboard (lesson 05) with `sensors` sensors that follows
/// only `sensor-SENSOR`: it unsubscribes from every other one, and returns
/// once the dashboard has acknowledged that.
pub async fn follow_one_sensor(
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
    conn.write(&masked_frame(OPCODE_TEXT, unsubscribe.as_bytes()))
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

/// What a group of clients counts, once set up, in one place: a scenario
/// reads the counts at the window's start and end (`Tally::counts`).
pub struct Tally {
    /// Set during the window: the delays are recorded only then.
    pub measuring: AtomicBool,
    readings: AtomicU64,
    /// Snapshots after the set-up: resynchronisations.
    snapshots: AtomicU64,
    /// Any other text message.
    others: AtomicU64,
    /// Connections that ended.
    closed: AtomicU64,
    /// The delay of each reading received in the window, from its creation
    /// (`at_ms`) to its arrival, in whole ms.
    delays: Mutex<Histogram<u64>>,
}

/// A `Tally`'s counts at one moment: readings, snapshots after the set-up,
/// other text messages, and connections that ended.
#[derive(Clone, Copy)]
pub struct Counts {
    pub readings: u64,
    pub snapshots: u64,
    pub others: u64,
    pub closed: u64,
}

impl Tally {
    /// Nothing counted yet, and not measuring.
    pub fn new() -> Tally {
        Tally {
            measuring: AtomicBool::new(false),
            readings: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
            others: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            delays: Mutex::new(histogram()),
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counts {
            readings: count(&self.readings),
            snapshots: count(&self.snapshots),
            others: count(&self.others),
            closed: count(&self.closed),
        }
    }

    /// The delays recorded in the window, in whole ms.
    pub fn delays(&self) -> Histogram<u64> {
        self.delays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads and counts what arrives on `conn` until the connection ends (or
    /// the task is aborted at the end of the run).
    async fn follow(&self, mut conn: Conn) {
        while let Ok(opcode) = conn.read_frame().await {
            match opcode {
                OPCODE_TEXT => self.count(conn.payload()),
                OPCODE_CLOSE => break,
                _ => {}
            }
        }
        self.closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one text message, and times it if it is a reading in the window.
    fn count(&self, payload: &[u8]) {
        let counter = if payload.starts_with(READING) {
            if self.measuring.load(Ordering::Relaxed)
                && let Some(at) = json_number(payload, "at_ms")
            {
                let delay = now_ms().saturating_sub(at);
                let mut delays =
                    self.delays.lock().unwrap_or_else(|e| e.into_inner());
                let _ = delays.record(delay);
            }
            &self.readings
        } else if payload.starts_with(SNAPSHOT) {
            &self.snapshots
        } else {
            &self.others
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
