//! The closed-loop echo load, after the `load_test` tools of fastwebsockets and
//! uWebSockets: each connection sends a message and waits for its echo before
//! it sends the next.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use super::open;
use crate::Plan;
use crate::stats::histogram;
use ws_harness::{FIN, Running, masked_frame};

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
    server: &Running,
    connections: usize,
    size: usize,
    plan: &Plan,
) -> io::Result<EchoRun> {
    let frame = Arc::new(masked_frame(FIN | 0x2, &vec![0x5a; size]));
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
