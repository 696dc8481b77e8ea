//! The scenarios, a module each; each runs its servers and returns its section of
//! the report.

mod echo;
mod fan_out;
mod idle_memory;
mod polling;
mod read_buffer;
mod redis_hop;
mod rooms;
mod slow_consumer;

use std::fmt::Display;
use std::io;

use crate::Plan;
use crate::process::Binaries;
use crate::stats::Runs;

/// A scenario of the report (`--only` names them: echo, idle-memory, ...).
#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum Scenario {
    Echo,
    IdleMemory,
    ReadBuffer,
    FanOut,
    SlowConsumer,
    Polling,
    Rooms,
    RedisHop,
}

impl Scenario {
    /// Every scenario, in the order of the report's sections.
    pub const ALL: [Scenario; 8] = [
        Scenario::Echo,
        Scenario::IdleMemory,
        Scenario::ReadBuffer,
        Scenario::FanOut,
        Scenario::SlowConsumer,
        Scenario::Polling,
        Scenario::Rooms,
        Scenario::RedisHop,
    ];

    /// Runs the scenario; returns its section of the report.
    pub async fn run(
        self,
        binaries: &Binaries,
        plan: &Plan,
    ) -> io::Result<String> {
        match self {
            Scenario::Echo => echo::run(binaries, plan).await,
            Scenario::IdleMemory => idle_memory::run(binaries, plan).await,
            Scenario::ReadBuffer => read_buffer::run(binaries, plan).await,
            Scenario::FanOut => fan_out::run(binaries, plan).await,
            Scenario::SlowConsumer => slow_consumer::run(binaries, plan).await,
            Scenario::Polling => polling::run(binaries, plan).await,
            Scenario::Rooms => rooms::run(binaries, plan).await,
            Scenario::RedisHop => redis_hop::run(binaries, plan).await,
        }
    }
}

/// Runs `measure` on each of `servers` in turn, round after round (A B C A B C
/// ...), so that a noisy machine moves them all alike. `what` names the
/// measurement in the progress lines.
async fn interleaved<S, R>(
    plan: &Plan,
    what: &str,
    servers: &[S],
    mut measure: impl AsyncFnMut(S) -> io::Result<R>,
) -> io::Result<Runs<S, R>>
where
    S: Copy + Ord + Display,
{
    let mut runs = Runs::new();
    for round in 1..=plan.rounds {
        for &server in servers {
            eprintln!("{what}, round {round}: {server}");
            runs.push(server, measure(server).await?);
        }
    }
    Ok(runs)
}
