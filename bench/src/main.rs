//! Benchmarks of the ws-lessons examples, side by side with peer servers, in one run on one
//! machine, reported as ratios. Run from the repository's root:
//!
//!     cargo run --release -p ws-bench            # the full run, about 15 minutes on 2 cores
//!     cargo run --release -p ws-bench -- --quick # a short run, to see that it works
//!
//! Every scenario runs each server in turn, round after round (A B C A B C ...), so that a
//! noisy machine moves them all alike; the report gives medians over the rounds. The table
//! is printed and written to bench/results/latest.md, which the book includes.

mod process;
mod wire;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use hdrhistogram::Histogram;
use process::{Binaries, Server};
use wire::{Conn, Http, json_number, masked_frame};

#[derive(Parser)]
struct Args {
    /// Short measurements and few rounds: a smoke test of the benchmark, not a result
    #[arg(long)]
    quick: bool,
    /// Rounds per scenario (the report shows medians)
    #[arg(long)]
    rounds: Option<usize>,
    /// Where to write the report
    #[arg(long, default_value = "bench/results/latest.md")]
    output: std::path::PathBuf,
}

struct Plan {
    rounds: usize,
    warm_up: Duration,
    measure: Duration,
    idle_connections: usize,
    fan_out: [usize; 2],
    slow_consumer: Duration,
    polling: Duration,
}

#[tokio::main]
async fn main() {
    // The slow-consumer scenario runs this program again as a client that reads until it is
    // stopped: a process of its own, so that SIGSTOP freezes it whole.
    if let Ok(address) = std::env::var("WS_BENCH_IDLE_CLIENT") {
        return idle_client(&address).await;
    }
    let args = Args::parse();
    let plan = if args.quick {
        Plan {
            rounds: args.rounds.unwrap_or(1),
            warm_up: Duration::from_millis(300),
            measure: Duration::from_secs(1),
            idle_connections: 1_000,
            fan_out: [100, 1_000],
            slow_consumer: Duration::from_secs(5),
            polling: Duration::from_secs(5),
        }
    } else {
        Plan {
            rounds: args.rounds.unwrap_or(3),
            warm_up: Duration::from_secs(1),
            measure: Duration::from_secs(5),
            idle_connections: 10_000,
            fan_out: [1_000, 10_000],
            slow_consumer: Duration::from_secs(60),
            polling: Duration::from_secs(20),
        }
    };
    raise_open_file_limit();
    eprintln!("building the examples and the peers (release)...");
    let binaries = Binaries::build();

    let mut report = String::new();
    writeln!(report, "# Benchmark results\n").unwrap();
    writeln!(report, "{}\n", machine()).unwrap();
    writeln!(
        report,
        "Medians over {} rounds; servers interleaved in each round.\n",
        plan.rounds
    )
    .unwrap();

    report += &echo(&binaries, &plan).await;
    report += &idle_memory(&binaries, &plan).await;
    report += &read_buffer_sweep(&binaries, &plan).await;
    report += &fan_out(&binaries, &plan).await;
    report += &slow_consumer(&binaries, &plan).await;
    report += &polling(&binaries, &plan).await;

    println!("{report}");
    if let Some(dir) = args.output.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&args.output, &report).expect("write the report");
    eprintln!("written to {}", args.output.display());
}

async fn idle_client(address: &str) {
    let Ok(addr) = address
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .parse()
    else {
        eprintln!("error: not a ws://HOST:PORT/ws address: {address}");
        return;
    };
    let Ok(mut conn) = Conn::open(addr).await else {
        return;
    };
    while conn.read_frame().await.is_ok() {}
}

/// Many connections need many file descriptors, in this process and in the servers it starts.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            line.strip_prefix("model name")
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024 / 1024);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "Machine: {cpu}, {cores} cores, {memory} GiB; Linux {}; {rustc}.",
        kernel.trim()
    )
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

// ---------------------------------------------------------------------------------------
// Echo

#[derive(Default, Clone, Copy)]
struct EchoRun {
    per_second: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_message: f64,
}

/// C connections, one message of `size` bytes in flight on each, closed loop.
async fn echo_load(server: &Server, connections: usize, size: usize, plan: &Plan) -> EchoRun {
    let frame = Arc::new(masked_frame(0x2, &vec![0x5a; size]));
    // Connect everyone first: the clock starts when the load does.
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(Conn::open(server.addr).await.expect("connect"));
    }
    let measure_from = Instant::now() + plan.warm_up;
    let measure_until = measure_from + plan.measure;
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (frame, count, done) = (frame.clone(), count.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new(3).expect("a histogram");
            while !done.load(Ordering::Relaxed) {
                let sent = Instant::now();
                if conn.write(&frame).await.is_err() || conn.read_frame().await.is_err() {
                    break;
                }
                let now = Instant::now();
                if sent >= measure_from && now <= measure_until {
                    count.fetch_add(1, Ordering::Relaxed);
                    let _ = histogram.record((now - sent).as_micros() as u64);
                }
                if now > measure_until {
                    break;
                }
            }
            histogram
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = server.cpu_seconds();
    tokio::time::sleep_until(measure_until.into()).await;
    let cpu_after = server.cpu_seconds();
    done.store(true, Ordering::Relaxed);
    let mut histogram = Histogram::<u64>::new(3).expect("a histogram");
    for task in tasks {
        if let Ok(h) = task.await {
            let _ = histogram.add(h);
        }
    }
    let messages = count.load(Ordering::Relaxed) as f64;
    EchoRun {
        per_second: messages / plan.measure.as_secs_f64(),
        p50_us: histogram.value_at_quantile(0.5) as f64,
        p99_us: histogram.value_at_quantile(0.99) as f64,
        cpu_us_per_message: (cpu_after - cpu_before) * 1e6 / messages.max(1.0),
    }
}

async fn echo(binaries: &Binaries, plan: &Plan) -> String {
    let servers = [
        ("01_echo", binaries.example("01_echo")),
        ("tokio-tungstenite", binaries.peer("peer_tungstenite")),
        ("fastwebsockets", binaries.peer("peer_fastwebsockets")),
    ];
    let mut out = String::from("## Echo\n\n");
    out += "| load | server | messages/s | p50 | p99 | server CPU per message |\n|---|---|---|---|---|---|\n";
    let mut ratios = String::new();
    for (connections, size) in [(100, 20), (1000, 20), (10, 16 * 1024)] {
        let mut runs: BTreeMap<&str, Vec<EchoRun>> = BTreeMap::new();
        for round in 0..plan.rounds {
            for (name, binary) in &servers {
                eprintln!("echo {connections} x {size} B, round {}: {name}", round + 1);
                let server = Server::start(binary, &[]).await;
                let run = echo_load(&server, connections, size, plan).await;
                server.stop().await;
                runs.entry(name).or_default().push(run);
            }
        }
        let med = |name: &str, f: fn(&EchoRun) -> f64| {
            median(&mut runs[name].iter().map(f).collect::<Vec<_>>())
        };
        let load = format!("{connections} x {size} B");
        for (name, _) in &servers {
            writeln!(
                out,
                "| {load} | {name} | {:.0} | {:.0} µs | {:.0} µs | {:.1} µs |",
                med(name, |r| r.per_second),
                med(name, |r| r.p50_us),
                med(name, |r| r.p99_us),
                med(name, |r| r.cpu_us_per_message)
            )
            .unwrap();
        }
        writeln!(
            ratios,
            "| {load} | {:.2}x | {:.2}x | {:.2}x |",
            med("01_echo", |r| r.per_second) / med("fastwebsockets", |r| r.per_second),
            med("01_echo", |r| r.cpu_us_per_message)
                / med("fastwebsockets", |r| r.cpu_us_per_message),
            med("01_echo", |r| r.per_second) / med("tokio-tungstenite", |r| r.per_second),
        )
        .unwrap();
    }
    out += "\nRatios of `01_echo` (targets: throughput at least 0.9x fastwebsockets, CPU per message at most 1.15x, throughput at least 1.8x tokio-tungstenite):\n\n";
    out += "| load | throughput vs fastwebsockets | CPU per message vs fastwebsockets | throughput vs tokio-tungstenite |\n|---|---|---|---|\n";
    out += &ratios;
    out += "\n";
    out
}

// ---------------------------------------------------------------------------------------
// Idle memory

async fn idle_memory(binaries: &Binaries, plan: &Plan) -> String {
    let servers = [
        ("01_echo", binaries.example("01_echo")),
        ("tokio-tungstenite", binaries.peer("peer_tungstenite")),
        ("fastwebsockets", binaries.peer("peer_fastwebsockets")),
    ];
    let n = plan.idle_connections;
    let mut runs: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for round in 0..plan.rounds {
        for (name, binary) in &servers {
            eprintln!("idle memory, {n} connections, round {}: {name}", round + 1);
            let server = Server::start(binary, &[]).await;
            let before = server.rss_kib();
            let mut conns = Vec::with_capacity(n);
            for _ in 0..n {
                match Conn::open(server.addr).await {
                    Ok(conn) => conns.push(conn),
                    Err(e) => panic!(
                        "connection {} of {n} to {name} failed: {e}",
                        conns.len() + 1
                    ),
                }
            }
            // Let the server finish setting up the last connections.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let after = server.rss_kib();
            let per_connection = (after.saturating_sub(before)) as f64 * 1024.0 / n as f64;
            runs.entry(name)
                .or_default()
                .push((per_connection, after as f64 / 1024.0));
            drop(conns);
            server.stop().await;
        }
    }
    let mut out = format!(
        "## Idle memory\n\n{n} idle connections (target for `01_echo`: at most 8 KB each, under 100 MB resident in all):\n\n"
    );
    out += "| server | resident memory per connection | resident memory in all |\n|---|---|---|\n";
    for (name, _) in &servers {
        let per = median(&mut runs[name].iter().map(|r| r.0).collect::<Vec<_>>());
        let total = median(&mut runs[name].iter().map(|r| r.1).collect::<Vec<_>>());
        writeln!(out, "| {name} | {:.1} KB | {total:.1} MiB |", per / 1000.0).unwrap();
    }
    out += "\n";
    out
}

// ---------------------------------------------------------------------------------------
// The read buffer: memory per connection against reads per message

async fn read_buffer_sweep(binaries: &Binaries, plan: &Plan) -> String {
    let mut out = String::from(
        "## The read buffer: memory against large messages

",
    );
    out += "`08_production --echo` with three read buffer sizes (`--read-buffer`): resident memory per idle connection, and echo throughput with 10 connections of 16 KiB messages.

";
    out += "| read buffer | memory per idle connection | 10 x 16 KiB messages/s |
|---|---|---|
";
    let n = plan.idle_connections.min(2_000);
    for size in ["4KiB", "16KiB", "128KiB"] {
        let args = [
            "--no-auth",
            "--echo",
            "--rate-limit",
            "0",
            "--max-message",
            "1MiB",
            "--max-frame",
            "1MiB",
            "--read-buffer",
            size,
            "--max-connections",
            "100000",
        ];
        let (mut memory, mut rates) = (Vec::new(), Vec::new());
        for round in 0..plan.rounds {
            eprintln!("read buffer {size}, round {}", round + 1);
            let server = Server::start(&binaries.example("08_production"), &args).await;
            let before = server.rss_kib();
            let conns = open(server.addr, n).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            memory.push(server.rss_kib().saturating_sub(before) as f64 * 1024.0 / n as f64);
            drop(conns);
            rates.push(echo_load(&server, 10, 16 * 1024, plan).await.per_second);
            server.stop().await;
        }
        writeln!(
            out,
            "| {size} | {:.1} KB | {:.0} |",
            median(&mut memory) / 1000.0,
            median(&mut rates)
        )
        .unwrap();
    }
    out += "
";
    out
}

// ---------------------------------------------------------------------------------------
// Fan-out

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Subscribers that record, per reading, the delay from its creation to its arrival.
/// Returns (delay to the last client per reading: p50, p99 in ms; deliveries per second).
async fn subscribers(
    addr: SocketAddr,
    n: usize,
    warm_up: Duration,
    measure: Duration,
) -> (f64, f64, f64) {
    let conns = open(addr, n).await;
    follow(conns, warm_up, measure).await
}

async fn open(addr: SocketAddr, n: usize) -> Vec<Conn> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Conn::open(addr).await.expect("subscribe"));
    }
    conns
}

async fn follow(conns: Vec<Conn>, warm_up: Duration, measure: Duration) -> (f64, f64, f64) {
    let latest = Arc::new(std::sync::Mutex::new(BTreeMap::<u64, u64>::new()));
    let delivered = Arc::new(AtomicU64::new(0));
    let measure_from = Instant::now() + warm_up;
    let until = measure_from + measure;
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (latest, delivered) = (latest.clone(), delivered.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let Ok(Ok(opcode)) = tokio::time::timeout_at(until.into(), conn.read_frame()).await
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
    let mut histogram = Histogram::<u64>::new(3).expect("a histogram");
    for delay in latest.values() {
        let _ = histogram.record(*delay);
    }
    (
        histogram.value_at_quantile(0.5) as f64,
        histogram.value_at_quantile(0.99) as f64,
        delivered.load(Ordering::Relaxed) as f64 / measure.as_secs_f64(),
    )
}

async fn fan_out(binaries: &Binaries, plan: &Plan) -> String {
    let mut out = String::from("## Fan-out\n\n");
    out += "The dashboard (`05_dashboard`) and a fastwebsockets server that serializes each reading once and writes the same buffer to every client. Delay: from a reading's creation to its arrival at the last client, in whole milliseconds (the readings carry a millisecond clock).\n\n";
    out += "| subscribers | readings/s | server | delay p50 | delay p99 | deliveries/s |\n|---|---|---|---|---|---|\n";
    for (n, rate) in [
        (plan.fan_out[0], 10.0),
        (plan.fan_out[1], 10.0),
        (plan.fan_out[1], 100.0),
    ] {
        let mut runs: BTreeMap<&str, Vec<(f64, f64, f64)>> = BTreeMap::new();
        for round in 0..plan.rounds {
            for name in ["05_dashboard", "fastwebsockets"] {
                eprintln!("fan-out to {n} at {rate}/s, round {}: {name}", round + 1);
                let rate_text = rate.to_string();
                let server = match name {
                    "05_dashboard" => {
                        let args = ["--rate", &rate_text, "--sensors", "4", "--queue", "1024"];
                        Server::start(&binaries.example("05_dashboard"), &args).await
                    }
                    _ => Server::start(&binaries.peer("peer_fanout"), &[&rate_text]).await,
                };
                let result = subscribers(server.addr, n, plan.warm_up * 2, plan.measure).await;
                server.stop().await;
                runs.entry(name).or_default().push(result);
            }
        }
        for name in ["05_dashboard", "fastwebsockets"] {
            let pick = |f: fn(&(f64, f64, f64)) -> f64| {
                median(&mut runs[name].iter().map(f).collect::<Vec<_>>())
            };
            writeln!(
                out,
                "| {n} | {rate} | {name} | {:.0} ms | {:.0} ms | {:.0} |",
                pick(|r| r.0),
                pick(|r| r.1),
                pick(|r| r.2)
            )
            .unwrap();
        }
    }
    out += "\nTargets: to 1,000 clients at 10 readings/s, p99 under 20 ms; to 10,000, at least 0.8x the deliveries per second of the fastwebsockets server. Each reading is serialized once: `src/dashboard.rs` has a unit test that every client's copy of a change shares one buffer.\n\n";
    out
}

// ---------------------------------------------------------------------------------------
// Slow consumer

async fn slow_consumer(binaries: &Binaries, plan: &Plan) -> String {
    let mut out = String::from("## Slow consumer\n\n");
    out += &format!(
        "The dashboard at 100 readings/s with 999 clients that read, with and without a 1,000th client whose process is stopped (SIGSTOP) for {} s.\n\n",
        plan.slow_consumer.as_secs()
    );
    out += "| run | resident memory growth | healthy clients' delay p99 |\n|---|---|---|\n";
    let mut results = BTreeMap::new();
    for with_stopped in [false, true] {
        let server = Server::start(
            &binaries.example("05_dashboard"),
            &["--rate", "100", "--sensors", "4"],
        )
        .await;
        let conns = open(server.addr, 999).await;
        let stopped = if with_stopped {
            // A client in a process of its own, so that SIGSTOP freezes it whole.
            let url = format!("ws://{}/ws", server.addr);
            let child =
                tokio::process::Command::new(std::env::current_exe().expect("this program"))
                    .env("WS_BENCH_IDLE_CLIENT", url)
                    .kill_on_drop(true)
                    .spawn()
                    .expect("the stopped client starts");
            tokio::time::sleep(Duration::from_millis(500)).await;
            let pid = nix::unistd::Pid::from_raw(child.id().expect("a pid") as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP);
            Some((child, pid))
        } else {
            None
        };
        // Memory from when every client is connected to the end of the run.
        let before = server.rss_kib();
        let (_, p99, _) = follow(conns, plan.warm_up, plan.slow_consumer).await;
        let growth = server.rss_kib().saturating_sub(before) as f64 / 1024.0;
        if let Some((mut child, pid)) = stopped {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
            let _ = child.kill().await;
        }
        server.stop().await;
        let run = if with_stopped {
            "with a stopped client"
        } else {
            "without"
        };
        writeln!(out, "| {run} | {growth:.2} MiB | {p99:.0} ms |").unwrap();
        results.insert(with_stopped, (growth, p99));
    }
    let (base, slow) = (results[&false], results[&true]);
    writeln!(
        out,
        "\nHealthy clients' p99 with the stopped client: {:.2}x of the run without (target: within 1.2x; memory growth under 2 MB).\n",
        slow.1 / base.1.max(1.0)
    )
    .unwrap();
    out
}

// ---------------------------------------------------------------------------------------
// Polling, long polling, WebSockets

async fn polling(binaries: &Binaries, plan: &Plan) -> String {
    let rate = "4";
    let mut out = String::from("## Polling, long polling and WebSockets\n\n");
    out += &format!(
        "One client for {} s, readings at {rate}/s. Bytes on the wire are counted by the client, both directions, HTTP headers and WebSocket frame headers included.\n\n",
        plan.polling.as_secs()
    );
    out += "| transport | readings delivered | bytes per reading | delay p50 | delay p99 |\n|---|---|---|---|---|\n";

    for transport in ["polling every 1 s", "long polling (07)", "WebSocket (05)"] {
        let mut histogram = Histogram::<u64>::new(3).expect("a histogram");
        let (delivered, bytes) = match transport {
            "WebSocket (05)" => {
                let server =
                    Server::start(&binaries.example("05_dashboard"), &["--rate", rate]).await;
                let mut conn = Conn::open(server.addr).await.expect("connect");
                let until = Instant::now() + plan.polling;
                let mut delivered = 0u64;
                while let Ok(Ok(_)) = tokio::time::timeout_at(until.into(), conn.read_frame()).await
                {
                    if let Some(at) = json_number(conn.payload(), "at_ms") {
                        delivered += 1;
                        let _ = histogram.record(now_ms().saturating_sub(at));
                    }
                }
                let bytes = conn.bytes_in + conn.bytes_out;
                server.stop().await;
                (delivered, bytes)
            }
            _ => {
                let long = transport.starts_with("long");
                let args: &[&str] = &["--rate", rate];
                let server = Server::start(&binaries.example("07_long_polling"), args).await;
                let mut http = Http::open(server.addr).await.expect("connect");
                // Start from the newest reading, as a client that has just loaded the page.
                let first = http.get("/poll?after=0&wait=false").await.expect("poll");
                let mut after = json_number(&first, "next").unwrap_or(0);
                http.bytes_in = 0;
                http.bytes_out = 0;
                let until = Instant::now() + plan.polling;
                let mut delivered = 0u64;
                let mut ticks = tokio::time::interval(Duration::from_secs(1));
                while Instant::now() < until {
                    if !long {
                        ticks.tick().await;
                    }
                    let path = if long {
                        format!("/poll?after={after}")
                    } else {
                        format!("/poll?after={after}&wait=false")
                    };
                    let Ok(Ok(body)) = tokio::time::timeout_at(until.into(), http.get(&path)).await
                    else {
                        break;
                    };
                    let arrived = now_ms();
                    let text = String::from_utf8_lossy(&body);
                    for reading in text.split(r#"{"type":"reading""#).skip(1) {
                        if let Some(at) = json_number(reading.as_bytes(), "at_ms") {
                            delivered += 1;
                            let _ = histogram.record(arrived.saturating_sub(at));
                        }
                    }
                    after = json_number(&body, "next").unwrap_or(after);
                }
                let bytes = http.bytes_in + http.bytes_out;
                server.stop().await;
                (delivered, bytes)
            }
        };
        writeln!(
            out,
            "| {transport} | {delivered} | {:.0} | {} ms | {} ms |",
            bytes as f64 / delivered.max(1) as f64,
            histogram.value_at_quantile(0.5),
            histogram.value_at_quantile(0.99)
        )
        .unwrap();
    }
    out += "\n";
    out
}
