//! The Redis hop: lesson 10 runs lesson 09's rooms on several instances that
//! share one Redis. A reading leaves the producing instance through a Lua
//! script into its room's Redis Stream, and every instance, the producing one
//! included, reads it back (`XREAD`) into its mirror of the rooms before its
//! clients get it. Against one process at the same rate (`09_rooms`, which is
//! lesson 10 without Redis, and `05_dashboard`): the delay that hop adds, and
//! what it costs in CPU per delivered message, redis-server's included.
//!
//! Here, the setups, what all of them share, and the section's text;
//! `deployment` starts the processes of a run, `hop_run` measures one run, and
//! `tables` draws the tables and the sentences from the rounds.

mod deployment;
mod hop_run;
mod tables;

use std::fmt;
use std::io;

use super::interleaved;
use crate::Plan;
use crate::load::SETUP_CONCURRENCY;
use crate::process::Binaries;
use crate::report::Section;
use crate::stats::Runs;
use deployment::HopServer;
use hop_run::HopRun;
use tables::{busiest_commands, heavy_table, hop_cost, light_table};

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

/// Every round's run of each setup.
type HopRuns = Runs<Setup, HopRun>;

/// Runs every setup, round after round; returns the section.
pub async fn run(binaries: &Binaries, plan: &Plan) -> io::Result<String> {
    let runs = interleaved(plan, "redis hop", &SETUPS, async |setup| {
        hop_run::measure(binaries, plan, setup).await
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
        "Heavy load, for what a delivery costs: {clients} clients, {} on each instance of 10, against {clients} on 09 in one process, so that each setup should deliver {} readings a second; set up {SETUP_CONCURRENCY} at a time, then {:.0} s of warm-up and a window of {:.0} s. 05 is not run at this load: it wakes every connection for every reading (the rooms scenario measured 1.7 cores for 10,000 clients at a fifth of this rate). The last column counts, over all rounds, the resynchronisations and dropped clients by the servers' `/stats`, the Redis troubles by lesson 10's `/stats` (outages, readings not stored, reloads after a gap, entries skipped), the snapshots the clients received after their set-up and the connections that ended, and the messages other than readings in the windows.",
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
