//! Rooms: lesson 09's channel per room against lesson 05's one stream that every
//! connection filters, under the same load: many clients, each following one of
//! `SOURCES` sources (a room of 09, a sensor of 05) that produce `RATE` readings
//! a second in all, so that every client receives one reading a second from
//! either server. 09 wakes a connection only for its room's readings; 05 wakes
//! every connection for every reading, and the connection drops the 99 in 100
//! it does not follow. What that costs: the server's CPU time per message
//! delivered.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::interleaved;
use crate::Plan;
use crate::load::{self, Counts, SETUP_CONCURRENCY, Tally};
use crate::process::{Binaries, SlowClients};
use crate::report::{Section, Table};
use ws_bench::wire::Conn;
use ws_harness::{Log, Running};

/// The two ways to send each client only its source's readings.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum RoomsServer {
    /// `09_rooms`: a `broadcast` channel per room; a client joins one room.
    ChannelPerRoom,
    /// `05_dashboard`: one channel of every reading; a client unsubscribes from
    /// every sensor but one, and its connection skips the readings of the others.
    FilteredStream,
}

impl RoomsServer {
    /// In the order of the report's rows.
    const ALL: [RoomsServer; 2] =
        [RoomsServer::ChannelPerRoom, RoomsServer::FilteredStream];

    /// How each server sends a client only its source's readings, for the
    /// report's table.
    fn how(self) -> &'static str {
        match self {
            RoomsServer::ChannelPerRoom => "a channel per room",
            RoomsServer::FilteredStream => {
                "one stream, filtered by each connection"
            }
        }
    }

    /// Starts the server: `SOURCES` sources, `RATE` readings a second in all.
    async fn start(self, binaries: &Binaries) -> io::Result<Running> {
        let (sources, rate) = (SOURCES.to_string(), RATE.to_string());
        let mut args = match self {
            RoomsServer::ChannelPerRoom => vec![
                "--sites",
                &sources,
                "--sensors",
                "1",
                "--queue",
                QUEUE_PER_ROOM,
            ],
            RoomsServer::FilteredStream => {
                vec!["--sensors", &sources, "--queue", QUEUE_STREAM]
            }
        };
        args.extend([
            "--rate",
            &rate,
            "--ping-interval",
            PING_INTERVAL,
            "--pong-timeout",
            PONG_TIMEOUT,
        ]);
        let example = binaries.example(&self.to_string());
        Running::start_binary(&example, &args, Log::Discarded).await
    }

    /// Opens client `n`'s connection and has it follow its one source (spread
    /// evenly over the sources); returns it once the server has confirmed that.
    async fn set_up(self, addr: SocketAddr, n: usize) -> io::Result<Conn> {
        let follow = match self {
            RoomsServer::ChannelPerRoom => load::Follow::Room,
            RoomsServer::FilteredStream => load::Follow::Sensor,
        };
        load::follow_source(addr, follow, n, SOURCES).await
    }
}

impl fmt::Display for RoomsServer {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            RoomsServer::ChannelPerRoom => "09_rooms",
            RoomsServer::FilteredStream => "05_dashboard",
        })
    }
}

/// Rooms of 09 (`--sites`), sensors of 05 (`--sensors`).
const SOURCES: usize = 100;

/// Readings a second, of all sources together (`--rate`): one a second for each.
const RATE: u32 = 100;

/// How far a client may fall behind before it is resynchronised (`--queue`), in
/// its channel's messages. In 05's one stream, 4096 is 40 s of readings, so that
/// a busy moment resynchronises nobody. A room of 09 carries one reading a
/// second and a presence message per join: its default, 256, holds more than a
/// room's whole set-up, and several minutes of readings. (Every room has a
/// channel of its own, and a channel's slots are allocated when it is created:
/// 4096 held some 20 MB more in 09's 100 rooms, whatever the clients.)
const QUEUE_PER_ROOM: &str = "256";
const QUEUE_STREAM: &str = "4096";

/// The heartbeat: no ping within a run, and a send may wait up to a minute
/// before the server gives up on the client.
const PING_INTERVAL: &str = "1h";
const PONG_TIMEOUT: &str = "60s";

/// What one run measured.
struct RoomsRun {
    /// How long the clients took to set up, in seconds.
    setup_s: f64,
    /// `reading` messages the clients received in the window, per second.
    deliveries_per_s: f64,
    /// The server's CPU time (user and system) in the window, per delivery.
    cpu_us_per_delivery: f64,
    /// The same, per second of the window: how many cores it kept busy.
    cores: f64,
    /// The delay of the readings from their creation to their arrival, in whole
    /// ms.
    p50_ms: f64,
    p99_ms: f64,
    /// The server's resident memory at the end of the window.
    rss_mib: f64,
    /// Messages other than readings that the clients received in the window.
    others: u64,
    /// From the end of the set-up to the end of the window: snapshots the
    /// clients received (resynchronisations), and connections that ended.
    snapshots: u64,
    closed: u64,
    /// By the server's `/stats` at the end: resynchronisations, and clients
    /// dropped.
    slow: SlowClients,
}

/// Runs both servers, round after round; returns the section.
pub async fn run(binaries: &Binaries, plan: &Plan) -> io::Result<String> {
    let clients = plan.rooms_clients;
    let what = format!("rooms, {clients} clients");
    let runs = interleaved(plan, &what, &RoomsServer::ALL, async |kind| {
        measure(binaries, plan, kind).await
    })
    .await?;
    let mut table = Table::new(&[
        "server",
        "each client's readings",
        "deliveries/s",
        "server CPU per delivered message",
        "server CPU (cores busy)",
        "delay p50",
        "delay p99",
        "resident memory",
        "set-up",
        "resyncs, drops, other messages",
    ]);
    for server in RoomsServer::ALL {
        table.row(format_args!(
            "{server} | {} | {:.0} | {:.1} µs | {:.2} | {:.0} ms | {:.0} ms | {:.0} MiB | {:.0} s | {}",
            server.how(),
            runs.median(server, |r| r.deliveries_per_s),
            runs.median(server, |r| r.cpu_us_per_delivery),
            runs.median(server, |r| r.cores),
            runs.median(server, |r| r.p50_ms),
            runs.median(server, |r| r.p99_ms),
            runs.median(server, |r| r.rss_mib),
            runs.median(server, |r| r.setup_s),
            trouble_cell(&runs.all(server)),
        ));
    }
    let cpu = |server| runs.median(server, |r| r.cpu_us_per_delivery);
    let cores = |server| runs.median(server, |r| r.cores);
    let machine = std::thread::available_parallelism().map_or(0, |n| n.get());
    let ratio = cpu(RoomsServer::FilteredStream)
        / cpu(RoomsServer::ChannelPerRoom).max(f64::MIN_POSITIVE);
    let per_round: Vec<String> = RoomsServer::ALL
        .iter()
        .map(|&server| {
            let runs = runs.all(server);
            let values: Vec<String> = runs
                .iter()
                .map(|r| format!("{:.1}", r.cpu_us_per_delivery))
                .collect();
            format!("{server} {} µs", values.join(", "))
        })
        .collect();
    // Each join sends its room's members, the newcomer included, a presence
    // message.
    let per_room = clients / SOURCES;
    let presence = SOURCES * per_room * (per_room + 1) / 2;
    let warm_up = plan.warm_up * 2;
    let mut section =
        Section::new("Rooms: a channel per room against one filtered stream");
    section.paragraph(format_args!(
        "{clients} clients over {SOURCES} sources that produce {RATE} readings/s in all, so that each client receives 1 reading a second and each server should deliver {clients} a second. `09_rooms --sites {SOURCES} --sensors 1 --rate {RATE}`: each client connects to `/ws?user=uN` and joins one room (`site-K`, K spread evenly), and a reading wakes only its room's connections. `05_dashboard --sensors {SOURCES} --rate {RATE}`: each client unsubscribes from every sensor but one, and every reading wakes every connection, which skips the 99 in 100 it does not follow. A client may fall `--queue` messages of its channel behind before it is resynchronised: {QUEUE_STREAM} in 05's stream (40 s of readings), {QUEUE_PER_ROOM} in each room of 09 (its default, over 4 minutes of the room's readings); no ping within a run. The clients are set up {SETUP_CONCURRENCY} at a time (09's set-up is the longer: each join sends a presence message to every member of the room, {presence} messages in all); after the last one and {:.0} s of warm-up, the window of {:.0} s starts. Server CPU: user and system time from /proc/PID/stat over the window, per `reading` message the clients received in it. Delay: from a reading's creation to its arrival, in whole milliseconds. The last column counts, over all rounds, the resynchronisations and dropped clients by the server's `/stats`, the snapshots the clients received after their set-up and the connections that ended, and the messages other than readings in the windows.",
        warm_up.as_secs_f64(),
        plan.rooms_measure.as_secs_f64(),
    ));
    section.table(table);
    section.paragraph(format_args!(
        "Per delivered message, `05_dashboard` uses {ratio:.1}x the CPU of `09_rooms` (every round's CPU per message: {}).",
        per_round.join("; ")
    ));
    section.paragraph(format_args!(
        "To deliver the same readings, `05_dashboard` keeps {:.2} of the machine's {machine} cores busy, and `09_rooms` {:.2}.",
        cores(RoomsServer::FilteredStream),
        cores(RoomsServer::ChannelPerRoom),
    ));
    Ok(section.into())
}

/// The last column: anything that says a client fell behind or was lost, over
/// all rounds.
fn trouble_cell(runs: &[&RoomsRun]) -> String {
    let sum = |field: fn(&RoomsRun) -> u64| -> u64 {
        runs.iter().map(|r| field(r)).sum()
    };
    let counts = [
        (sum(|r| r.slow.resyncs), "resynchronisation"),
        (sum(|r| r.slow.drops), "dropped client"),
        (sum(|r| r.snapshots), "snapshot after set-up"),
        (sum(|r| r.closed), "connection ended"),
        (sum(|r| r.others), "other message"),
    ];
    crate::report::counts_in_rounds(&counts, runs.len())
}

/// One run of `kind`: the server, `plan.rooms_clients` clients set up, a
/// warm-up, and the measured window.
async fn measure(
    binaries: &Binaries,
    plan: &Plan,
    kind: RoomsServer,
) -> io::Result<RoomsRun> {
    let server = kind.start(binaries).await?;
    let tally = Arc::new(Tally::new());
    let started = Instant::now();
    let addr = server.addr;
    let mut clients = {
        let tally = tally.clone();
        load::set_up_clients(plan.rooms_clients, move |n| {
            let tally = tally.clone();
            async move { Ok((tally, kind.set_up(addr, n).await?)) }
        })
        .await
        .map_err(|e| io::Error::other(format!("{kind}: {e}")))?
    };
    let setup_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(plan.warm_up * 2).await;
    let before = Gauges::take(&server, &tally);
    tally.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(plan.rooms_measure).await;
    tally.measuring.store(false, Ordering::Relaxed);
    let after = Gauges::take(&server, &tally);
    let rss_mib = server.rss_kib() as f64 / 1024.0;
    let slow = SlowClients::of(&server).await?;
    clients.shutdown().await;
    server.stop().await;

    let seconds = (after.at - before.at).as_secs_f64();
    let deliveries = after.counts.readings - before.counts.readings;
    let cpu = after.cpu_seconds - before.cpu_seconds;
    let delays = tally.delays();
    Ok(RoomsRun {
        setup_s,
        deliveries_per_s: deliveries as f64 / seconds,
        cpu_us_per_delivery: cpu * 1e6 / deliveries.max(1) as f64,
        cores: cpu / seconds,
        p50_ms: delays.value_at_quantile(0.5) as f64,
        p99_ms: delays.value_at_quantile(0.99) as f64,
        rss_mib,
        others: after.counts.others - before.counts.others,
        snapshots: after.counts.snapshots,
        closed: after.counts.closed,
        slow,
    })
}

/// The counts and the server's CPU time at one moment: the window is the
/// difference of two.
struct Gauges {
    at: Instant,
    cpu_seconds: f64,
    counts: Counts,
}

impl Gauges {
    fn take(server: &Running, tally: &Tally) -> Gauges {
        Gauges {
            at: Instant::now(),
            cpu_seconds: server.cpu_seconds(),
            counts: tally.counts(),
        }
    }
}
