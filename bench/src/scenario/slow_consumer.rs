//! Slow consumer: whether one client that stops reading costs the dashboard
//! memory, or the other clients delay, and what the dashboard does with it. The
//! stopped client is a program of its own (src/bin/idle_client.rs), so that
//! SIGSTOP freezes it whole, and its socket is no longer read. The run checks
//! that it really fell behind: the dashboard's `/stats` (its live connections,
//! its resyncs and its heartbeat's drops), and what the client receives once
//! it is let go on (SIGCONT) say what became of it.

use std::fmt;
use std::io;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::Instant;

use super::interleaved;
use crate::Plan;
use crate::load;
use crate::process::{Binaries, SlowClients, counter, stats};
use crate::report::{Section, Table};
use crate::stats::median;
use ws_harness::{Log, Process, Running};

/// The two runs: every client reading, and the same with one more whose process
/// is stopped.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Run {
    Without,
    WithStoppedClient,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Run::Without => "without",
            Run::WithStoppedClient => "with a stopped client",
        })
    }
}

/// Readings per second: fast enough that the stopped client's backlog (about 100
/// bytes a reading) fills the server's socket buffer (at most 4 MB by Linux's
/// default `tcp_wmem`) in under 15 s, well before the heartbeat's first ping (30
/// s) and the end of the stop.
const RATE: u32 = 3_000;

/// How many changes a client may fall behind (the dashboard's `--queue`; a power
/// of two, as tokio's `broadcast` channel would round it to): about 0.7 s at
/// `RATE`, so that the pauses of a busy machine do not resynchronise the clients
/// that read, as the default 256 (85 ms at this rate) does.
const QUEUE: u32 = 2048;

/// Clients that read, besides the stopped one: with `RATE`, 96,000 deliveries a
/// second.
const READING_CLIENTS: usize = 32;

/// The stopped client's receive buffer, in bytes: small (the kernel doubles it,
/// and no longer grows it), so that its backlog piles up on the server's side, as
/// it would for a machine that went to sleep, not in the stopped client's kernel.
/// Not smaller: a window under one loopback segment (about 32 KiB) leaves the
/// backlog to the zero-window probes, whose intervals double, and the client, let
/// go on, may wait seconds for its data.
const RECEIVE_BUFFER: &str = "65536";

/// How long the stopped client has, once let go on, to say it was resynchronised.
const RESUME_WAIT: Duration = Duration::from_secs(10);

/// What became of the stopped client.
#[derive(Clone, Copy, PartialEq)]
enum Fate {
    /// Once let go on, it received a snapshot saying how many changes it missed.
    Resynchronised { missed: u64 },
    /// The dashboard dropped it.
    Dropped,
    /// Neither, as far as the run saw: still connected, and no resynchronisation
    /// came within `RESUME_WAIT` of SIGCONT.
    NotSeen,
}

/// What one run measured.
struct SlowConsumerRun {
    /// The dashboard's resident memory from the end of the warm-up to the end of
    /// the stop.
    growth_mib: f64,
    /// The delay of the readings to the clients that read, 99th percentile.
    p99_ms: f64,
    /// Live connections by the dashboard's `/stats` just before the stop ends.
    connections: f64,
    /// Resynchronisations and heartbeat drops, by the dashboard's `/stats`.
    slow: SlowClients,
    /// The changes the resynchronised clients missed, in all (`/stats`).
    missed_changes: u64,
    /// The stopped client's fate; None without one.
    fate: Option<Fate>,
}

/// Runs the dashboard without, then with, the stopped client, round after round;
/// returns the section.
pub async fn run(binaries: &Binaries, plan: &Plan) -> io::Result<String> {
    let runs = [Run::Without, Run::WithStoppedClient];
    let what = "slow consumer";
    let results = interleaved(plan, what, &runs, async |run| {
        measure(binaries, plan, run).await
    })
    .await?;
    let mut table = Table::new(&[
        "run",
        "resident memory growth",
        "healthy clients' delay p99",
        "live connections at the end of the stop (`/stats`)",
        "the dashboard's resyncs and drops (`/stats`)",
        "the stopped client, let go on",
    ]);
    for run in runs {
        let all = results.all(run);
        let clients =
            READING_CLIENTS + usize::from(run == Run::WithStoppedClient);
        table.row(format_args!(
            "{run} | {:.2} MiB | {:.0} ms | {:.0} of {clients} | {} | {}",
            results.median(run, |r| r.growth_mib),
            results.median(run, |r| r.p99_ms),
            results.median(run, |r| r.connections),
            slow_cell(&all),
            fate_cell(&all),
        ));
    }
    let p99 = |run| results.median(run, |r| r.p99_ms);
    let stop = plan.warm_up + plan.slow_consumer;
    let mut section = Section::new("Slow consumer");
    section.paragraph(format_args!(
        "The dashboard at {RATE} readings/s with {READING_CLIENTS} clients that read, with and without one more client whose process is stopped (SIGSTOP) for {:.0} s, then let go on (SIGCONT). A client may fall {QUEUE} changes behind (`--queue {QUEUE}`) before it is resynchronised. The stopped client's receive buffer is {RECEIVE_BUFFER} bytes, so that its backlog piles up in the dashboard's socket buffer (4 MB at most), as it would for a machine gone to sleep, and not in its own kernel; at this rate that buffer fills well within the stop. Memory growth is measured from the end of the warm-up ({} ms) to the end of the stop. The evidence that the stopped client fell behind: the dashboard's `/stats` (its live connections just before the stop ends; at the end of the run, `resyncs` with the `missed_changes` they skipped, and the heartbeat's `missed_pongs` and `blocked_sends`), and the snapshot the client receives once let go on.",
        stop.as_secs_f64(),
        plan.warm_up.as_millis(),
    ));
    section.table(table);
    section.paragraph(format_args!(
        "Healthy clients' p99 with the stopped client: {:.2}x of the run without (target: within 1.2x; memory growth under 2 MB).",
        p99(Run::WithStoppedClient) / p99(Run::Without).max(1.0)
    ));
    Ok(section.into())
}

/// The `/stats` column: the resynchronisations and heartbeat drops the
/// dashboard counted, in all rounds.
fn slow_cell(runs: &[&SlowConsumerRun]) -> String {
    let resyncs: u64 = runs.iter().map(|r| r.slow.resyncs).sum();
    let missed: u64 = runs.iter().map(|r| r.missed_changes).sum();
    let drops = runs.iter().map(|r| r.slow.drops).sum::<u64>() as usize;
    let mut cell = match resyncs {
        0 => "no resynchronisation".to_owned(),
        n => format!(
            "{}, {missed} changes missed in all",
            count(n as usize, "resynchronisation"),
        ),
    };
    if drops > 0 {
        cell += &format!("; {}", count(drops, "heartbeat drop"));
    }
    format!("{cell} in {}", count(runs.len(), "round"))
}

/// The stopped client's column: what became of it in each round.
fn fate_cell(runs: &[&SlowConsumerRun]) -> String {
    let fates: Vec<Fate> = runs.iter().filter_map(|r| r.fate).collect();
    if fates.is_empty() {
        return "(none)".into();
    }
    let rounds = fates.len();
    let missed: Vec<u64> = fates
        .iter()
        .filter_map(|fate| match fate {
            Fate::Resynchronised { missed } => Some(*missed),
            _ => None,
        })
        .collect();
    let rounds_of =
        |wanted: Fate| fates.iter().filter(|&&fate| fate == wanted).count();
    let mut parts = Vec::new();
    if !missed.is_empty() {
        parts.push(format!(
            "resynchronised: yes in {} of {}, missed={}",
            missed.len(),
            count(rounds, "round"),
            list(&missed)
        ));
    }
    let not_seen = format!(
        "still connected, not resynchronised within {} s",
        RESUME_WAIT.as_secs()
    );
    for (fate, name) in [
        (Fate::Dropped, "dropped"),
        (Fate::NotSeen, not_seen.as_str()),
    ] {
        match rounds_of(fate) {
            0 => {}
            n => {
                parts.push(format!("{name} in {n} of {}", count(rounds, "round")))
            }
        }
    }
    parts.join("; ")
}

/// `n` things, as `1 round` or `3 rounds`.
fn count(n: usize, thing: &str) -> String {
    match n {
        1 => format!("1 {thing}"),
        n => format!("{n} {thing}s"),
    }
}

/// Numbers as `a, b, c`, at most six of them, then their median.
fn list(values: &[u64]) -> String {
    let mut text: Vec<String> =
        values.iter().take(6).map(u64::to_string).collect();
    if values.len() > 6 {
        text.push(format!(
            "... (median {:.0})",
            median(values.iter().map(|&v| v as f64))
        ));
    }
    text.join(", ")
}

/// One run: the dashboard, its reading clients and, in `Run::WithStoppedClient`,
/// the stopped one, for `plan.warm_up + plan.slow_consumer`.
async fn measure(
    binaries: &Binaries,
    plan: &Plan,
    run: Run,
) -> io::Result<SlowConsumerRun> {
    let (rate, queue) = (RATE.to_string(), QUEUE.to_string());
    let args = ["--rate", &rate, "--sensors", "4", "--queue", &queue];
    let server = Running::start_binary(
        &binaries.example("05_dashboard"),
        &args,
        Log::Discarded,
    )
    .await?;
    let conns = load::open(server.addr, READING_CLIENTS).await?;
    let stopped = if run == Run::WithStoppedClient {
        let addr = server.addr.to_string();
        let args = [addr.as_str(), RECEIVE_BUFFER];
        let idle_client = binaries.bin("idle_client");
        let mut client = Process::start(&idle_client, &args, Log::Discarded)?;
        client.startup_line(Duration::from_secs(30)).await?;
        // Let it read for a while first, as a client that stops reading at some
        // point.
        tokio::time::sleep(Duration::from_millis(500)).await;
        client.signal(Signal::SIGSTOP);
        Some(client)
    } else {
        None
    };
    // Memory from the end of the warm-up, when every slot of the channel has been
    // written (2048 at 3000/s take 0.7 s), to the end of the stop.
    let stop_ends = Instant::now() + plan.warm_up + plan.slow_consumer;
    let before = async {
        tokio::time::sleep(plan.warm_up).await;
        server.rss_kib()
    };
    let gauge = async {
        tokio::time::sleep_until(stop_ends - Duration::from_millis(200)).await;
        counter(&stats(&server).await?, "/connections")
    };
    let (followed, before, connections) = tokio::join!(
        load::follow(conns, plan.warm_up, plan.slow_consumer),
        before,
        gauge
    );
    let growth_mib = server.rss_kib().saturating_sub(before) as f64 / 1024.0;
    let connections = connections?;
    let fate = match stopped {
        Some(mut client) => {
            client.signal(Signal::SIGCONT);
            let said = client.next_stdout_within(RESUME_WAIT).await;
            let missed = said.as_deref().and_then(|line| {
                line.strip_prefix("resynchronised missed=")?.parse().ok()
            });
            client.stop().await;
            Some(match missed {
                Some(missed) => Fate::Resynchronised { missed },
                None if connections <= READING_CLIENTS as u64 => Fate::Dropped,
                None => Fate::NotSeen,
            })
        }
        None => None,
    };
    let slow = SlowClients::of(&server).await?;
    let missed_changes = counter(&stats(&server).await?, "/missed_changes")?;
    server.stop().await;
    Ok(SlowConsumerRun {
        growth_mib,
        p99_ms: followed.p99_ms,
        connections: connections as f64,
        slow,
        missed_changes,
        fate,
    })
}
