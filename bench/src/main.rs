//! Benchmarks of the ws-lessons examples, side by side with peer servers, in one
//! run on one machine, reported as ratios. Run from the repository's root:
//!
//!     cargo run --release -p ws-bench            # the full run, about 30 minutes on 2 cores
//!     cargo run --release -p ws-bench -- --quick # a short run, to see that it works
//!
//! Every scenario runs each of its servers or settings in turn, round after round
//! (A B C A B C ...), so that a noisy machine moves them all alike; the report
//! gives medians over the rounds. The report is printed and written to
//! bench/results/latest.md, which the book includes.

mod load;
mod process;
mod proxy;
mod report;
mod scenario;
mod stats;

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use process::Binaries;
use scenario::Scenario;

/// Benchmarks of the ws-lessons examples beside peer servers; writes a Markdown
/// report.
#[derive(Parser)]
struct Args {
    /// Short measurements and few rounds: a smoke test of the benchmark, not a
    /// result
    #[arg(long)]
    quick: bool,
    /// Rounds per scenario (the report shows medians)
    #[arg(long)]
    rounds: Option<usize>,
    /// Where to write the report
    #[arg(long, default_value = "bench/results/latest.md")]
    output: std::path::PathBuf,
    /// Run only these scenarios (comma-separated); the report then has only their
    /// sections
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
}

/// How many rounds, how long and how many connections: the full run's, or the
/// quick run's.
pub struct Plan {
    /// Rounds per scenario; the report gives medians over them.
    pub rounds: usize,
    /// Load before the measurement starts, not counted.
    pub warm_up: Duration,
    /// How long each echo and fan-out run is measured.
    pub measure: Duration,
    /// Idle connections per server (the read-buffer sweep opens 2,000 at most).
    pub idle_connections: usize,
    /// Subscribers: the fewer and the more.
    pub fan_out: [usize; 2],
    /// How long the slow-consumer runs are measured (after `warm_up`, for which
    /// the stopped client is already stopped too).
    pub slow_consumer: Duration,
    /// How long the polling clients follow the readings, in each run.
    pub polling: Duration,
    /// Clients of the rooms scenario, spread over its 100 rooms (or sensors).
    pub rooms_clients: usize,
    /// How long the rooms scenario is measured, once its clients are set up and
    /// warmed up.
    pub rooms_measure: Duration,
    /// Clients of the redis-hop scenario's heavy load, half on each instance of
    /// lesson 10.
    pub hop_clients: usize,
    /// How long the redis-hop scenario measures its light load (the delay), and
    /// its heavy load (the CPU per delivery), once warmed up.
    pub hop_delay: Duration,
    pub hop_measure: Duration,
}

impl Plan {
    /// The quick run's plan with `--quick`, else the full run's; `--rounds`
    /// overrides either.
    fn new(args: &Args) -> Plan {
        if args.quick {
            Plan {
                rounds: args.rounds.unwrap_or(1),
                warm_up: Duration::from_millis(300),
                measure: Duration::from_secs(1),
                idle_connections: 1_000,
                fan_out: [100, 1_000],
                slow_consumer: Duration::from_secs(20),
                polling: Duration::from_secs(3),
                rooms_clients: 1_000,
                rooms_measure: Duration::from_secs(3),
                hop_clients: 1_000,
                hop_delay: Duration::from_secs(3),
                hop_measure: Duration::from_secs(3),
            }
        } else {
            Plan {
                rounds: args.rounds.unwrap_or(3),
                warm_up: Duration::from_secs(1),
                measure: Duration::from_secs(5),
                idle_connections: 10_000,
                fan_out: [1_000, 10_000],
                slow_consumer: Duration::from_secs(30),
                polling: Duration::from_secs(10),
                rooms_clients: 10_000,
                rooms_measure: Duration::from_secs(20),
                hop_clients: 10_000,
                hop_delay: Duration::from_secs(10),
                hop_measure: Duration::from_secs(20),
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(&Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the programs, runs the chosen scenarios, prints the report and writes
/// it.
async fn run(args: &Args) -> io::Result<()> {
    let plan = Plan::new(args);
    process::raise_open_file_limit();
    eprintln!("building the examples, the stacks and the peers (release)...");
    let binaries = Binaries::build()?;

    let mut report = report::header(&plan);
    let chosen = Scenario::ALL
        .into_iter()
        .filter(|scenario| args.only.is_empty() || args.only.contains(scenario));
    for scenario in chosen {
        report += &scenario.run(&binaries, &plan).await?;
    }
    report += &report::footer();

    println!("{report}");
    if let Some(dir) = args.output.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&args.output, &report).map_err(|e| {
        io::Error::other(format!("cannot write {}: {e}", args.output.display()))
    })?;
    eprintln!("written to {}", args.output.display());
    Ok(())
}
