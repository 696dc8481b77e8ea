//! The section's tables, and the sentences drawn from the same runs: medians
//! over the rounds of what `hop_run` measured.

use std::collections::BTreeSet;

use super::deployment::{HopServer, Side};
use super::hop_run::{CommandRate, Delay, HopRun, Trouble};
use super::{HopRuns, LIGHT_CLIENTS, Load, Setup, setup};
use crate::report::Table;
use crate::stats::median;

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
pub fn light_table(runs: &HopRuns) -> Table {
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
pub fn heavy_table(runs: &HopRuns, clients: usize) -> Table {
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
pub fn hop_cost(runs: &HopRuns, clients: usize) -> String {
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
pub fn busiest_commands(runs: &[&HopRun]) -> String {
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
        (sum(|t| t.slow.resyncs), "resynchronisation"),
        (sum(|t| t.slow.drops), "dropped client"),
        (sum(|t| t.redis), "Redis trouble"),
        (sum(|t| t.snapshots), "snapshot after set-up"),
        (sum(|t| t.closed), "connection ended"),
        (sum(|t| t.others), "other message"),
    ];
    crate::report::counts_in_rounds(&counts, runs.len())
}
