//! The Redis hop: lesson 10 runs lesson 09's rooms on several instances that
//! share one Redis. A reading leaves the producing instance through a Lua
//! script into its room's Redis Stream, and every instance, the producing one
//! included, reads it back (`XREAD`) into its mirror of the rooms before its
//! clients get it. Against one process at the same rate (`09_rooms`, which is
//! lesson 10 without Redis, and `05_dashboard`): the delay that hop adds, and
//! what it costs in CPU per delivered message, redis-server's included.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::interleaved;
use crate::Plan;
use crate::load::{self, Counts, SETUP_CONCURRENCY, Tally};
use crate::process::{Binaries, Log, Server};
use crate::redis::{CommandStats, Redis};
use crate::report::{Section, Table};
use crate::stats::{Runs, median};
use ws_bench::wire::Conn;

/// The ways from a reading's creation to the clients.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HopServer {
    /// Two instances of `10_scale_out` sharing a `redis-server`; the first
    /// runs the simulator (`--produce`), and each has half the clients.
    ScaleOut,
    /// `09_rooms` in one process: a channel per room.
    Rooms,
    /// `05_dashboard` in one process: one stream of every reading, which each
    /// connection filters.
    Dashboard,
}

impl HopServer {
    /// How a reading reaches the clients, for the report's tables.
    fn path(self) -> &'static str {
        match self {
            HopServer::ScaleOut => {
                "two instances: Lua script, Redis Stream, XREAD by each"
            }
            HopServer::Rooms => "one process: a channel per room",
            HopServer::Dashboard => "one process: one stream, filtered",
        }
    }

    /// Starts the server, and for lesson 10 its Redis and second instance.
    async fn start(self, binaries: &Binaries) -> io::Result<Deployment> {
        let (sources, rate) = (SOURCES.to_string(), RATE.to_string());
        let common = [
            "--rate",
            &rate,
            "--ping-interval",
            PING_INTERVAL,
            "--pong-timeout",
            PONG_TIMEOUT,
        ];
        let rooms =
            ["--sites", &sources, "--sensors", "1", "--queue", QUEUE_ROOM];
        let example = binaries.example(&self.to_string());
        let start = async |args: Vec<&str>| {
            Server::start_with(&example, &args, Log::Kept).await
        };
        match self {
            HopServer::ScaleOut => {
                let redis = Redis::start().await?;
                let url = redis.url();
                let args: Vec<&str> = ["--redis", &url]
                    .into_iter()
                    .chain(rooms)
                    .chain(common)
                    .collect();
                let producing =
                    start([&args[..], &["--produce"]].concat()).await?;
                let other = start(args).await?;
                Ok(Deployment {
                    redis: Some(redis),
                    servers: vec![producing, other],
                })
            }
            HopServer::Rooms => {
                let args = rooms.into_iter().chain(common).collect();
                Ok(Deployment {
                    redis: None,
                    servers: vec![start(args).await?],
                })
            }
            HopServer::Dashboard => {
                let stream = ["--sensors", &sources, "--queue", QUEUE_STREAM];
                let args = stream.into_iter().chain(common).collect();
                Ok(Deployment {
                    redis: None,
                    servers: vec![start(args).await?],
                })
            }
        }
    }

    /// Opens client `n`'s connection to `addr` and has it follow its one source
    /// (spread evenly over the sources); returns it once the server has
    /// confirmed that.
    async fn set_up(self, addr: SocketAddr, n: usize) -> io::Result<Conn> {
        let source = n % SOURCES + 1;
        match self {
            HopServer::ScaleOut | HopServer::Rooms => {
                load::join_room(addr, &format!("u{n}"), source).await
            }
            HopServer::Dashboard => {
                load::follow_one_sensor(addr, source, SOURCES).await
            }
        }
    }
}

impl fmt::Display for HopServer {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            HopServer::ScaleOut => "10_scale_out",
            HopServer::Rooms => "09_rooms",
            HopServer::Dashboard => "05_dashboard",
        })
    }
}

/// The two loads, at the same rate of readings.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Load {
    /// `LIGHT_CLIENTS` clients: the delay of the path itself.
    Light,
    /// `plan.hop_clients` clients: what a delivery costs.
    Heavy,
}

/// One run's load and server.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Setup {
    load: Load,
    server: HopServer,
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let load = match self.load {
            Load::Light => "light load",
            Load::Heavy => "heavy load",
        };
        write!(f, "{}, {load}", self.server)
    }
}

/// Every server at the light load; lesson 10 and 09 at the heavy one. 05 is
/// left out of the heavy load: it wakes every connection for every reading,
/// and the connection skips the 99 in 100 it does not follow, which the rooms
/// scenario measured at 1.7 cores for 10,000 clients at a fifth of this rate.
const SETUPS: [Setup; 5] = [
    setup(Load::Light, HopServer::ScaleOut),
    setup(Load::Light, HopServer::Rooms),
    setup(Load::Light, HopServer::Dashboard),
    setup(Load::Heavy, HopServer::ScaleOut),
    setup(Load::Heavy, HopServer::Rooms),
];

/// A row of `SETUPS`.
const fn setup(load: Load, server: HopServer) -> Setup {
    Setup { load, server }
}

/// Rooms of 09 and 10 (`--sites`, with `--sensors 1`), sensors of 05
/// (`--sensors`).
const SOURCES: usize = 100;

/// Readings a second, of all sources together (`--rate`), for every server and
/// both loads: 5 a second for each source, so that each client receives 5 a
/// second.
const RATE: u32 = 500;

/// Clients of the light load: one per source.
const LIGHT_CLIENTS: usize = 100;

/// How far a client may fall behind before it is resynchronised (`--queue`),
/// in its channel's messages: 256 in a room (the default of 09 and 10, 51 s
/// of a room's readings), 4096 in 05's one stream (8 s of readings).
const QUEUE_ROOM: &str = "256";
const QUEUE_STREAM: &str = "4096";

/// The heartbeat: no ping within a run, and a send may wait up to a minute
/// before the server gives up on the client.
const PING_INTERVAL: &str = "1h";
const PONG_TIMEOUT: &str = "60s";

/// What the servers' logs say on a resynchronisation, when the heartbeat drops
/// a client, and when lesson 10 loses Redis, or readings, or its place in a
/// stream.
const RESYNC_LOG: &str = "resynchronising a slow";
const DROP_LOGS: [&str; 2] = ["no pong within", "gave up on a send"];
const REDIS_LOGS: [&str; 4] = [
    "Redis is unreachable",
    "readings lost while Redis was down",
    "reloaded after a gap",
    "skipping an entry",
];

/// Which process a client is connected to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The instance of 10 that runs the simulator, or the one process of 09
    /// and 05.
    Producing,
    /// 10's other instance, which gets every reading from Redis only.
    Other,
}

impl Side {
    /// Index in `Deployment::servers` and in `HopRun::delays`.
    fn index(self) -> usize {
        match self {
            Side::Producing => 0,
            Side::Other => 1,
        }
    }
}

/// The processes of one run, stopped by `stop` (killed if dropped).
struct Deployment {
    /// Lesson 10's; none for 09 and 05.
    redis: Option<Redis>,
    /// The producing instance (or the one process) first, then 10's other
    /// instance.
    servers: Vec<Server>,
}

impl Deployment {
    /// Where the client on `side` connects.
    fn addr(&self, side: Side) -> SocketAddr {
        self.servers[side.index()].addr
    }

    /// The side of client `n` of `clients`: with two instances, the first half
    /// on the producing one, the second half on the other.
    fn side(&self, n: usize, clients: usize) -> Side {
        if self.servers.len() > 1 && n > clients / 2 {
            Side::Other
        } else {
            Side::Producing
        }
    }

    /// Resident memory of every process, in MiB.
    fn rss_mib(&self) -> f64 {
        let servers: u64 = self.servers.iter().map(Server::rss_kib).sum();
        let redis = self.redis.as_ref().map_or(0, Redis::rss_kib);
        (servers + redis) as f64 / 1024.0
    }

    /// Stops the servers, then Redis; returns the servers' log lines.
    async fn stop(self) -> Vec<String> {
        let mut log = Vec::new();
        for server in self.servers {
            log.extend(server.stop().await);
        }
        if let Some(redis) = self.redis {
            redis.stop().await;
        }
        log
    }
}

/// The delay of the readings from their creation to their arrival, in whole
/// ms, at the clients of one side.
#[derive(Clone, Copy)]
struct Delay {
    p50_ms: f64,
    p99_ms: f64,
    /// The mean of the whole-ms delays: finer than either percentile, but only
    /// roughly, as it depends on where in its millisecond each reading was
    /// created, which differs from run to run.
    mean_ms: f64,
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
struct HopRun {
    /// How long the clients took to set up, in seconds.
    setup_s: f64,
    /// `reading` messages the clients received in the window, per second.
    deliveries_per_s: f64,
    /// CPU time (user and system) in the window, per delivery: of the servers
    /// and redis-server together, and of redis-server alone.
    cpu_us_per_delivery: f64,
    redis_us_per_delivery: f64,
    /// The CPU time of them all, per second of the window: how many cores they
    /// kept busy.
    cores: f64,
    /// By side (`Side::index`); 09 and 05 have no other side.
    delays: [Option<Delay>; 2],
    /// Of every process, at the end of the window.
    rss_mib: f64,
    trouble: Trouble,
    /// What redis-server executed in the window, by command: calls a second,
    /// and microseconds of execution a call. Empty without Redis.
    redis_commands: BTreeMap<String, CommandRate>,
}

/// One command of redis-server in a window.
#[derive(Clone, Copy)]
struct CommandRate {
    calls_per_s: f64,
    usec_per_call: f64,
    /// Microseconds of execution a second: calls times time per call.
    usec_per_s: f64,
}

/// Anything that says a client fell behind or was lost, or that lesson 10 lost
/// Redis.
#[derive(Clone, Copy, Default)]
struct Trouble {
    /// In the servers' whole logs.
    resyncs: u64,
    drops: u64,
    redis: u64,
    /// From the end of the set-up to the end of the window: snapshots the
    /// clients received (resynchronisations), and connections that ended.
    snapshots: u64,
    closed: u64,
    /// Messages other than readings the clients received in the window.
    others: u64,
}

/// Every round's run of each setup.
type HopRuns = Runs<Setup, HopRun>;

/// Runs every setup, round after round; returns the section.
pub async fn run(binaries: &Binaries, plan: &Plan) -> io::Result<String> {
    let runs = interleaved(plan, "redis hop", &SETUPS, async |setup| {
        measure(binaries, plan, setup).await
    })
    .await?;
    let clients = plan.hop_clients;
    let per_client = RATE as usize / SOURCES;
    let mut section = Section::new(
        "The Redis hop: two instances of lesson 10 against one process",
    );
    section.paragraph(format_args!(
        "Every server has {SOURCES} sources that produce {RATE} readings/s in all, and each client follows one source, so that it receives {per_client} readings a second. `10_scale_out --redis URL --sites {SOURCES} --sensors 1 --rate {RATE}`, twice, on one `redis-server` (7.0, the Debian package) that the bench starts for each run, on a free port of 127.0.0.1 in a temporary directory, with persistence off (`--save '' --appendonly no`): nothing goes to disk. The first instance runs the simulator (`--produce`): each reading gets its creation time (`at_ms`), then goes through a Lua script into its room's Redis Stream, and each instance, the producing one too, reads it back with `XREAD` before its clients get it. Half the clients connect to each instance (`/ws?user=uN`, users distinct) and join one room (`site-K`, K spread evenly). `09_rooms --sites {SOURCES} --sensors 1 --rate {RATE}` is the same rooms in one process without Redis; `05_dashboard --sensors {SOURCES} --rate {RATE}` is one process whose clients unsubscribe from every sensor but one. `--queue` {QUEUE_ROOM} in a room, {QUEUE_STREAM} in 05's stream; no ping within a run. Delay: from a reading's creation (`at_ms`, the producer's clock) to its arrival at a client, in whole milliseconds, for every reading every client received in the window; the mean of those whole milliseconds is finer than the percentiles, but only roughly: it depends on where in its millisecond each reading was created, which differs from run to run. CPU: user and system time from /proc/PID/stat over the window, of the server processes and redis-server, per `reading` message the clients received in it."
    ));
    section.paragraph(format_args!(
        "Light load, for the delay of the path itself: {LIGHT_CLIENTS} clients, one per source (the first half on 10's producing instance, the second half on the other); after {:.0} s of warm-up, a window of {:.0} s.",
        plan.warm_up.as_secs_f64() * 2.0,
        plan.hop_delay.as_secs_f64(),
    ));
    section.table(light_table(&runs));
    section.paragraph(format_args!(
        "Heavy load, for what a delivery costs: {clients} clients, {} on each instance of 10, against {clients} on 09 in one process, so that each setup should deliver {} readings a second; set up {SETUP_CONCURRENCY} at a time, then {:.0} s of warm-up and a window of {:.0} s. 05 is not run at this load: it wakes every connection for every reading (the rooms scenario measured 1.7 cores for 10,000 clients at a fifth of this rate). The last column counts, over all rounds, the resynchronisations, dropped clients and Redis troubles (unreachable, readings lost, reloads after a gap) in the servers' logs, the snapshots the clients received after their set-up and the connections that ended, and the messages other than readings in the windows.",
        clients / 2,
        clients * per_client,
        plan.warm_up.as_secs_f64() * 2.0,
        plan.hop_measure.as_secs_f64(),
    ));
    section.table(heavy_table(&runs, clients));
    section.paragraph(hop_cost(&runs, clients));
    section.paragraph(format_args!(
        "Where redis-server's time went in the heavy load's window, by the execution time `INFO commandstats` counts (medians over the rounds; a script's time includes the commands it runs, which are also counted on their own): {}.",
        busiest_commands(&runs.all(setup(Load::Heavy, HopServer::ScaleOut))),
    ));
    Ok(section.into())
}

/// The median over the rounds of one measure of the delay at the clients on
/// `side`; NaN for a side without clients.
fn delay(
    runs: &HopRuns,
    setup: Setup,
    side: Side,
    field: fn(&Delay) -> f64,
) -> f64 {
    runs.median(setup, |r| {
        r.delays[side.index()].as_ref().map_or(f64::NAN, field)
    })
}

/// The light load's table: the delay at each server's clients, and at each
/// instance's for lesson 10.
fn light_table(runs: &HopRuns) -> Table {
    let mut table = Table::new(&[
        "server",
        "path of a reading",
        "clients on",
        "delay p50",
        "delay p99",
        "mean delay",
    ]);
    let half = LIGHT_CLIENTS / 2;
    for server in [HopServer::ScaleOut, HopServer::Rooms, HopServer::Dashboard] {
        let setup = setup(Load::Light, server);
        let sides = match server {
            HopServer::ScaleOut => vec![
                (Side::Other, format!("the other instance ({half})")),
                (Side::Producing, format!("the producing instance ({half})")),
            ],
            HopServer::Rooms | HopServer::Dashboard => vec![(
                Side::Producing,
                format!("the one process ({LIGHT_CLIENTS})"),
            )],
        };
        for (side, clients_on) in sides {
            table.row(format_args!(
                "{server} | {} | {clients_on} | {:.0} ms | {:.0} ms | {:.2} ms",
                server.path(),
                delay(runs, setup, side, |d| d.p50_ms),
                delay(runs, setup, side, |d| d.p99_ms),
                delay(runs, setup, side, |d| d.mean_ms),
            ));
        }
    }
    table
}

/// The heavy load's table: deliveries, CPU, delay and memory of lesson 10's two
/// instances and of 09 in one process, with `clients` clients.
fn heavy_table(runs: &HopRuns, clients: usize) -> Table {
    let mut table = Table::new(&[
        "server",
        "clients",
        "deliveries/s",
        "CPU per delivered message, all processes",
        "of which redis-server",
        "CPU (cores busy)",
        "delay p50 / p99, other instance",
        "delay p50 / p99, producing instance or one process",
        "resident memory, all processes",
        "set-up",
        "resyncs, drops, other messages",
    ]);
    for server in [HopServer::ScaleOut, HopServer::Rooms] {
        let setup = setup(Load::Heavy, server);
        let p50_p99 = |side| {
            format!(
                "{:.0} / {:.0} ms",
                delay(runs, setup, side, |d| d.p50_ms),
                delay(runs, setup, side, |d| d.p99_ms)
            )
        };
        let (split, other) = match server {
            HopServer::ScaleOut => (
                format!("{} + {}", clients / 2, clients - clients / 2),
                p50_p99(Side::Other),
            ),
            HopServer::Rooms | HopServer::Dashboard => {
                (clients.to_string(), "(none)".to_owned())
            }
        };
        table.row(format_args!(
            "{server} | {split} | {:.0} | {:.1} µs | {:.1} µs | {:.2} | {other} | {} | {:.0} MiB | {:.0} s | {}",
            runs.median(setup, |r| r.deliveries_per_s),
            runs.median(setup, |r| r.cpu_us_per_delivery),
            runs.median(setup, |r| r.redis_us_per_delivery),
            runs.median(setup, |r| r.cores),
            p50_p99(Side::Producing),
            runs.median(setup, |r| r.rss_mib),
            runs.median(setup, |r| r.setup_s),
            trouble_cell(&runs.all(setup)),
        ));
    }
    table
}

/// What the Redis hop costs, in a sentence: the delay it adds at light load,
/// and the CPU per delivered message at the heavy load, against 09.
fn hop_cost(runs: &HopRuns, clients: usize) -> String {
    let light_10 = setup(Load::Light, HopServer::ScaleOut);
    let light_09 = setup(Load::Light, HopServer::Rooms);
    let heavy_10 = setup(Load::Heavy, HopServer::ScaleOut);
    let heavy_09 = setup(Load::Heavy, HopServer::Rooms);
    let added = |field: fn(&Delay) -> f64| {
        delay(runs, light_10, Side::Other, field)
            - delay(runs, light_09, Side::Producing, field)
    };
    let cpu = |setup| runs.median(setup, |r| r.cpu_us_per_delivery);
    let ratio = cpu(heavy_10) / cpu(heavy_09).max(f64::MIN_POSITIVE);
    let per_round: Vec<String> = [heavy_10, heavy_09]
        .iter()
        .map(|&setup| {
            let values: Vec<String> = runs
                .all(setup)
                .iter()
                .map(|r| format!("{:.1}", r.cpu_us_per_delivery))
                .collect();
            format!("{} {} µs", setup.server, values.join(", "))
        })
        .collect();
    let redis_share = median(
        runs.all(heavy_10)
            .iter()
            .map(|r| r.redis_us_per_delivery / r.cpu_us_per_delivery),
    );
    format!(
        "The Redis hop: at light load it adds {:+.0} ms to the median delay and {:+.0} ms to the 99th percentile ({:+.2} ms to the mean) of a client on the other instance, against `09_rooms` in one process; at {clients} clients, the two instances and redis-server use {ratio:.2}x the CPU per delivered message of `09_rooms` in one process, redis-server {:.0}% of it (every round's CPU per message: {}).",
        added(|d| d.p50_ms),
        added(|d| d.p99_ms),
        added(|d| d.mean_ms),
        redis_share * 100.0,
        per_round.join("; "),
    )
}

/// The commands redis-server spent the most time executing in `runs`, three at
/// most: calls a second and time a call, medians over the runs.
fn busiest_commands(runs: &[&HopRun]) -> String {
    let names: BTreeSet<&String> =
        runs.iter().flat_map(|r| r.redis_commands.keys()).collect();
    let of = |name: &String, field: fn(&CommandRate) -> f64| {
        median(
            runs.iter()
                .map(|r| r.redis_commands.get(name).map_or(0.0, field)),
        )
    };
    let mut busiest: Vec<(&String, f64)> = names
        .into_iter()
        .map(|name| (name, of(name, |c| c.usec_per_s)))
        .collect();
    busiest.sort_by(|a, b| b.1.total_cmp(&a.1));
    let described: Vec<String> = busiest
        .iter()
        .take(3)
        .map(|&(name, usec_per_s)| {
            format!(
                "{name} {:.0} calls/s at {:.1} µs each ({:.1} ms a second)",
                of(name, |c| c.calls_per_s),
                of(name, |c| c.usec_per_call),
                usec_per_s / 1000.0,
            )
        })
        .collect();
    if described.is_empty() {
        "nothing recorded".to_owned()
    } else {
        described.join("; ")
    }
}

/// The last column: anything that says a client fell behind or was lost, or
/// that lesson 10 lost Redis, over all rounds.
fn trouble_cell(runs: &[&HopRun]) -> String {
    let sum = |field: fn(&Trouble) -> u64| -> u64 {
        runs.iter().map(|r| field(&r.trouble)).sum()
    };
    let counts = [
        (sum(|t| t.resyncs), "resynchronisation"),
        (sum(|t| t.drops), "dropped client"),
        (sum(|t| t.redis), "Redis trouble"),
        (sum(|t| t.snapshots), "snapshot after set-up"),
        (sum(|t| t.closed), "connection ended"),
        (sum(|t| t.others), "other message"),
    ];
    let parts: Vec<String> = counts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|&(n, what)| match n {
            1 => format!("1 {what}"),
            n => format!("{n} {what}s"),
        })
        .collect();
    let rounds = match runs.len() {
        1 => "1 round".to_owned(),
        n => format!("{n} rounds"),
    };
    if parts.is_empty() {
        format!("none in {rounds}")
    } else {
        format!("{} in {rounds}", parts.join(", "))
    }
}

/// One run of `setup`: the processes, the clients set up, a warm-up, and the
/// measured window.
async fn measure(
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
    followers.shutdown().await;
    let log = deployment.stop().await;

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
    let logged = |patterns: &[&str]| -> u64 {
        let hits = log
            .iter()
            .filter(|line| patterns.iter().any(|pattern| line.contains(pattern)));
        hits.count() as u64
    };
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
            resyncs: logged(&[RESYNC_LOG]),
            drops: logged(&DROP_LOGS),
            redis: logged(&REDIS_LOGS),
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
            servers_cpu: deployment.servers.iter().map(Server::cpu_seconds).sum(),
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
