//! Slow consumer: whether one client that stops reading costs the dashboard memory, or the
//! other clients delay. The stopped client is a program of its own (src/bin/idle_client.rs),
//! so that SIGSTOP freezes it whole, and its socket is no longer read.

use std::fmt;
use std::io;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::Plan;
use crate::load;
use crate::process::{Binaries, Process, Server};
use crate::report::{Section, Table};

/// The two runs: every client reading, and the same with one more whose process is stopped.
#[derive(Clone, Copy, PartialEq)]
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

/// What one run measured.
struct SlowConsumerRun {
    /// The dashboard's resident memory from when every client is connected to the end.
    growth_mib: f64,
    /// The delay of the readings to the clients that read, 99th percentile.
    p99_ms: f64,
}

/// Clients that read, besides the stopped one.
const READING_CLIENTS: usize = 999;

/// Runs the dashboard without, then with, the stopped client; returns the section.
pub async fn run(binaries: &Binaries, plan: &Plan) -> io::Result<String> {
    let mut table = Table::new(&[
        "run",
        "resident memory growth",
        "healthy clients' delay p99",
    ]);
    let without = measure(binaries, plan, Run::Without).await?;
    let with_stopped = measure(binaries, plan, Run::WithStoppedClient).await?;
    for (run, result) in [
        (Run::Without, &without),
        (Run::WithStoppedClient, &with_stopped),
    ] {
        table.row(format_args!(
            "{run} | {:.2} MiB | {:.0} ms",
            result.growth_mib, result.p99_ms
        ));
    }
    let mut section = Section::new("Slow consumer");
    section.paragraph(format_args!(
        "The dashboard at 100 readings/s with {READING_CLIENTS} clients that read, with and without a 1,000th client whose process is stopped (SIGSTOP) for {} s.",
        plan.slow_consumer.as_secs()
    ));
    section.table(table);
    section.paragraph(format_args!(
        "Healthy clients' p99 with the stopped client: {:.2}x of the run without (target: within 1.2x; memory growth under 2 MB).",
        with_stopped.p99_ms / without.p99_ms.max(1.0)
    ));
    Ok(section.into())
}

/// One run: the dashboard, its reading clients and, in `Run::WithStoppedClient`, the
/// stopped one, for `plan.slow_consumer`.
async fn measure(
    binaries: &Binaries,
    plan: &Plan,
    run: Run,
) -> io::Result<SlowConsumerRun> {
    let server = Server::start(
        &binaries.example("05_dashboard"),
        &["--rate", "100", "--sensors", "4"],
    )
    .await?;
    let conns = load::open(server.addr, READING_CLIENTS).await?;
    let stopped = if run == Run::WithStoppedClient {
        let addr = server.addr.to_string();
        let (client, _) =
            Process::start(&binaries.bin("idle_client"), &[&addr]).await?;
        // Let it read for a while first, as a client that stops reading at some point.
        tokio::time::sleep(Duration::from_millis(500)).await;
        client.signal(Signal::SIGSTOP);
        Some(client)
    } else {
        None
    };
    // Memory from when every client is connected to the end of the run.
    let before = server.rss_kib();
    let followed = load::follow(conns, plan.warm_up, plan.slow_consumer).await;
    let growth_mib = server.rss_kib().saturating_sub(before) as f64 / 1024.0;
    if let Some(client) = stopped {
        client.signal(Signal::SIGCONT);
        client.stop().await;
    }
    server.stop().await;
    Ok(SlowConsumerRun {
        growth_mib,
        p99_ms: followed.p99_ms,
    })
}
