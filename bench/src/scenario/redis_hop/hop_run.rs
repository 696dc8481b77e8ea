//! One run of a setup, and what it measured: the processes started, the
//! clients set up, a warm-up, then the window over which the deliveries, the
//! delays, the CPU and redis-server's commands are counted.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::deployment::{Deployment, HopServer, Side};
use super::{LIGHT_CLIENTS, Load, Setup};
use crate::Plan;
use crate::load::{self, Counts, Tally};
use crate::process::{Binaries, SlowClients};
use ws_harness::Running;
use ws_harness::{CommandStats, Redis};

/// The delay of the readings from their creation to their arrival, in whole
/// ms, at the clients of one side.
#[derive(Clone, Copy)]
pub struct Delay {
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The mean of the whole-ms delays: finer than either percentile, but only
    /// roughly, as it depends on where in its millisecond each reading was
    /// created, which differs from run to run.
    pub mean_ms: f64,
}

impl Delay {
    fn of(delays: &Histogram<u64>) -> Delay {
        Delay {
            p50_ms: delays.value_at_quantile(0.5) as f64,
            p99_ms: delays.value_at_quantile(0.99) as f64,
            mean_ms: delays.mean(),
        }
    }
}

/// What one run measured.
pub struct HopRun {
    /// How long the clients took to set up, in seconds.
    pub setup_s: f64,
    /// `reading` messages the clients received in the window, per second.
    pub deliveries_per_s: f64,
    /// CPU time (user and system) in the window, per delivery: of the servers
    /// and redis-server together, and of redis-server alone.
    pub cpu_us_per_delivery: f64,
    pub redis_us_per_delivery: f64,
    /// The CPU time of them all, per second of the window: how many cores they
    /// kept busy.
    pub cores: f64,
    /// By side (`Side::index`); 09 and 05 have no other side.
    pub delays: [Option<Delay>; 2],
    /// Of every process, at the end of the window.
    pub rss_mib: f64,
    pub trouble: Trouble,
    /// What redis-server executed in the window, by command: calls a second,
    /// and microseconds of execution a call. Empty without Redis.
    pub redis_commands: BTreeMap<String, CommandRate>,
}

/// One command of redis-server in a window.
#[derive(Clone, Copy)]
pub struct CommandRate {
    pub calls_per_s: f64,
    pub usec_per_call: f64,
    /// Microseconds of execution a second: calls times time per call.
    pub usec_per_s: f64,
}

/// Anything that says a client fell behind or was lost, or that lesson 10 lost
/// Redis.
#[derive(Clone, Copy, Default)]
pub struct Trouble {
    /// By the servers' `/stats` at the end: resynchronisations, and clients
    /// the heartbeat dropped.
    pub slow: SlowClients,
    /// By lesson 10's `/stats` at the end of the window (`outages`, `unstored`,
    /// `reloads`, `skipped`): its troubles with Redis.
    pub redis: u64,
    /// From the end of the set-up to the end of the window: snapshots the
    /// clients received (resynchronisations), and connections that ended.
    pub snapshots: u64,
    pub closed: u64,
    /// Messages other than readings the clients received in the window.
    pub others: u64,
}

/// One run of `setup`: the processes, the clients set up, a warm-up, and the
/// measured window.
pub async fn measure(
    binaries: &Binaries,
    plan: &Plan,
    setup: Setup,
) -> io::Result<HopRun> {
    let Setup { load, server } = setup;
    let (clients, window) = match load {
        Load::Light => (LIGHT_CLIENTS, plan.hop_delay),
        Load::Heavy => (plan.hop_clients, plan.hop_measure),
    };
    let deployment = server.start(binaries).await?;
    let tallies = [Arc::new(Tally::new()), Arc::new(Tally::new())];
    let started = Instant::now();
    let mut followers = {
        let sides: Vec<(SocketAddr, Side)> = (1..=clients)
            .map(|n| {
                let side = deployment.side(n, clients);
                (deployment.addr(side), side)
            })
            .collect();
        let tallies = tallies.clone();
        load::set_up_clients(clients, move |n| {
            let (addr, side) = sides[n - 1];
            let tally = tallies[side.index()].clone();
            async move { Ok((tally, server.set_up(addr, n).await?)) }
        })
        .await
        .map_err(|e| io::Error::other(format!("{setup}: {e}")))?
    };
    let setup_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(plan.warm_up * 2).await;
    let before = Gauges::take(&deployment, &tallies).await;
    for tally in &tallies {
        tally.measuring.store(true, Ordering::Relaxed);
    }
    tokio::time::sleep(window).await;
    for tally in &tallies {
        tally.measuring.store(false, Ordering::Relaxed);
    }
    let after = Gauges::take(&deployment, &tallies).await;
    let rss_mib = deployment.rss_mib();
    let redis = deployment.redis_troubles().await?;
    let slow = deployment.slow_clients().await?;
    followers.shutdown().await;
    deployment.stop().await;

    let seconds = (after.at - before.at).as_secs_f64();
    let change = |field: fn(&Counts) -> u64| -> u64 {
        let sum = |gauges: &Gauges| gauges.counts.iter().map(field).sum::<u64>();
        sum(&after) - sum(&before)
    };
    let deliveries = change(|c| c.readings).max(1) as f64;
    let servers_cpu = after.servers_cpu - before.servers_cpu;
    let redis_cpu = after.redis_cpu - before.redis_cpu;
    let sides = deployment_sides(server);
    let delays = [Side::Producing, Side::Other].map(|side| {
        sides
            .contains(&side)
            .then(|| Delay::of(&tallies[side.index()].delays()))
    });
    let total = |field: fn(&Counts) -> u64| after.counts.iter().map(field).sum();
    Ok(HopRun {
        setup_s,
        deliveries_per_s: deliveries / seconds,
        cpu_us_per_delivery: (servers_cpu + redis_cpu) * 1e6 / deliveries,
        redis_us_per_delivery: redis_cpu * 1e6 / deliveries,
        cores: (servers_cpu + redis_cpu) / seconds,
        delays,
        rss_mib,
        redis_commands: command_rates(&before, &after, seconds),
        trouble: Trouble {
            slow,
            redis,
            snapshots: total(|c| c.snapshots),
            closed: total(|c| c.closed),
            others: change(|c| c.others),
        },
    })
}

/// The sides that have clients: both for lesson 10, the one process for the
/// others.
fn deployment_sides(server: HopServer) -> &'static [Side] {
    match server {
        HopServer::ScaleOut => &[Side::Producing, Side::Other],
        HopServer::Rooms | HopServer::Dashboard => &[Side::Producing],
    }
}

/// The counts and the CPU times at one moment: the window is the difference
/// of two.
struct Gauges {
    at: Instant,
    /// Of every server process together, and of redis-server (0 without).
    servers_cpu: f64,
    redis_cpu: f64,
    /// By side.
    counts: [Counts; 2],
    /// redis-server's `INFO commandstats`; empty without Redis.
    commands: BTreeMap<String, CommandStats>,
}

impl Gauges {
    async fn take(deployment: &Deployment, tallies: &[Arc<Tally>; 2]) -> Gauges {
        let commands = match &deployment.redis {
            Some(redis) => redis.command_stats().await,
            None => BTreeMap::new(),
        };
        Gauges {
            at: Instant::now(),
            servers_cpu: deployment
                .servers
                .iter()
                .map(Running::cpu_seconds)
                .sum(),
            redis_cpu: deployment.redis.as_ref().map_or(0.0, Redis::cpu_seconds),
            counts: [tallies[0].counts(), tallies[1].counts()],
            commands,
        }
    }
}

/// What redis-server executed between `before` and `after`, by command.
fn command_rates(
    before: &Gauges,
    after: &Gauges,
    seconds: f64,
) -> BTreeMap<String, CommandRate> {
    let rate = |name: &String, stats: &CommandStats| {
        let earlier = before.commands.get(name).copied().unwrap_or_default();
        let calls = stats.calls.saturating_sub(earlier.calls) as f64;
        let usec = stats.usec.saturating_sub(earlier.usec) as f64;
        let rate = CommandRate {
            calls_per_s: calls / seconds,
            usec_per_call: usec / calls.max(1.0),
            usec_per_s: usec / seconds,
        };
        (calls > 0.0).then(|| (name.clone(), rate))
    };
    after
        .commands
        .iter()
        .filter_map(|(name, stats)| rate(name, stats))
        .collect()
}
