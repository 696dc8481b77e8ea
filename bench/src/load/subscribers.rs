//! Subscribers that time the readings a server pushes to them all: the delay
//! of each reading at the last client to receive it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::stats::{histogram, now_ms};
use ws_bench::wire::{Conn, json_number};

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
