//! The load generator's clients: idle connections, the closed-loop echo load, and
//! subscribers that time the readings a server pushes. Several scenarios share
//! them.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::Plan;
use crate::process::Server;
use crate::stats::{histogram, now_ms};
use ws_bench::wire::{Conn, json_number, masked_frame};

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
