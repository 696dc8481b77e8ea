//! Echo: messages per second, round-trip latency and the server's CPU time per
//! message of `01_echo`, against the two echo peers and against lesson 01's echo
//! on the other stacks (`stacks/`), at three loads; then `01_echo`'s ratios to
//! the peers, and the stacks' ratios to `01_echo` and to fastwebsockets.

use std::fmt;
use std::io;

use super::interleaved;
use crate::Plan;
use crate::load;
use crate::process::Binaries;
use crate::report::{Section, Table};
use ws_harness::{Log, Running};

/// The echo servers: the lesson's, the two peers it is measured against, and
/// the lesson's echo on the other stacks.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EchoServer {
    /// `examples/01_echo`: axum.
    Lesson,
    /// `peer_tungstenite`: tokio-tungstenite with its default settings (a 128
    /// KiB read buffer per connection).
    Tungstenite,
    /// `peer_fastwebsockets`.
    FastWebSockets,
    /// `tungstenite_01_echo` of ws-stacks: lesson 01 on bare tokio-tungstenite,
    /// with lesson 01's 3 KiB read buffer.
    StackTungstenite,
    /// `actix_01_echo` of ws-stacks: lesson 01 on actix-web with actix-ws.
    StackActix,
}

impl EchoServer {
    /// In the order of the report's rows.
    pub const ALL: [EchoServer; 5] = [
        EchoServer::Lesson,
        EchoServer::Tungstenite,
        EchoServer::FastWebSockets,
        EchoServer::StackTungstenite,
        EchoServer::StackActix,
    ];

    /// The lesson's echo on the other stacks, which the report compares with
    /// `01_echo` and fastwebsockets.
    pub const STACKS: [EchoServer; 2] =
        [EchoServer::StackTungstenite, EchoServer::StackActix];

    /// Starts the server, with its default settings.
    pub async fn start(self, binaries: &Binaries) -> io::Result<Running> {
        let binary = match self {
            EchoServer::Lesson => binaries.example("01_echo"),
            EchoServer::Tungstenite => binaries.bin("peer_tungstenite"),
            EchoServer::FastWebSockets => binaries.bin("peer_fastwebsockets"),
            EchoServer::StackTungstenite => binaries.stack("tungstenite_01_echo"),
            EchoServer::StackActix => binaries.stack("actix_01_echo"),
        };
        Running::start_binary(&binary, &[], Log::Discarded).await
    }

    /// The file descriptors the server holds for each connection: one, its
    /// socket, but for `actix_01_echo`, which keeps a copy of each socket to
    /// shut a stuck connection down (stacks/src/actix/tcp.rs).
    pub fn descriptors_per_connection(self) -> u64 {
        match self {
            EchoServer::StackActix => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for EchoServer {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            EchoServer::Lesson => "01_echo",
            EchoServer::Tungstenite => "tokio-tungstenite (defaults)",
            EchoServer::FastWebSockets => "fastwebsockets",
            EchoServer::StackTungstenite => "stacks: tokio-tungstenite",
            EchoServer::StackActix => "stacks: actix-web",
        })
    }
}

/// Which program each row of the Echo section is (the Idle memory section
/// refers to it).
const SERVERS: &str = "`01_echo` is lesson 01 (axum); `tokio-tungstenite (defaults)` is a plain tokio-tungstenite echo with its default settings (a 128 KiB read buffer per connection) and `fastwebsockets` a fastwebsockets echo, both in `bench/src/bin/`; `stacks: tokio-tungstenite` and `stacks: actix-web` are lesson 01's echo on the other stacks (`stacks/`: `tungstenite_01_echo`, on bare tokio-tungstenite with lesson 01's 3 KiB read buffer, and `actix_01_echo`, on actix-web with actix-ws).";

/// (connections, message size in bytes): many small messages, more of them, few
/// large ones.
const LOADS: [(usize, usize); 3] = [(100, 20), (1000, 20), (10, 16 * 1024)];

/// Runs each load on every echo server; returns the section with the table and
/// the ratios.
pub async fn run(binaries: &Binaries, plan: &Plan) -> io::Result<String> {
    let mut table = Table::new(&[
        "load",
        "server",
        "messages/s",
        "p50",
        "p99",
        "server CPU per message",
    ]);
    let mut ratios = Table::new(&[
        "load",
        "throughput vs fastwebsockets",
        "CPU per message vs fastwebsockets",
        "throughput vs tokio-tungstenite (defaults)",
    ]);
    let mut stack_ratios = Table::new(&[
        "load",
        "stack",
        "throughput vs 01_echo",
        "CPU per message vs 01_echo",
        "throughput vs fastwebsockets",
        "CPU per message vs fastwebsockets",
    ]);
    for (connections, size) in LOADS {
        let load = format!("{connections} x {size} B");
        let what = format!("echo {load}");
        let runs = interleaved(plan, &what, &EchoServer::ALL, async |kind| {
            let server = kind.start(binaries).await?;
            let run = load::echo(&server, connections, size, plan).await;
            server.stop().await;
            run
        })
        .await?;
        for server in EchoServer::ALL {
            table.row(format_args!(
                "{load} | {server} | {:.0} | {:.0} µs | {:.0} µs | {:.1} µs",
                runs.median(server, |r| r.per_second),
                runs.median(server, |r| r.p50_us),
                runs.median(server, |r| r.p99_us),
                runs.median(server, |r| r.cpu_us_per_message)
            ));
        }
        let throughput = |server| runs.median(server, |r| r.per_second);
        let cpu = |server| runs.median(server, |r| r.cpu_us_per_message);
        ratios.row(format_args!(
            "{load} | {:.2}x | {:.2}x | {:.2}x",
            throughput(EchoServer::Lesson)
                / throughput(EchoServer::FastWebSockets),
            cpu(EchoServer::Lesson) / cpu(EchoServer::FastWebSockets),
            throughput(EchoServer::Lesson) / throughput(EchoServer::Tungstenite),
        ));
        for stack in EchoServer::STACKS {
            stack_ratios.row(format_args!(
                "{load} | {stack} | {:.2}x | {:.2}x | {:.2}x | {:.2}x",
                throughput(stack) / throughput(EchoServer::Lesson),
                cpu(stack) / cpu(EchoServer::Lesson),
                throughput(stack) / throughput(EchoServer::FastWebSockets),
                cpu(stack) / cpu(EchoServer::FastWebSockets),
            ));
        }
    }
    let mut section = Section::new("Echo");
    section.paragraph(SERVERS);
    section.table(table);
    section.paragraph(
        "Ratios of `01_echo` (targets: throughput at least 0.9x fastwebsockets, CPU per message at most 1.15x, throughput at least 1.8x tokio-tungstenite (defaults)):",
    );
    section.table(ratios);
    section.paragraph(
        "Ratios of lesson 01's echo on the other stacks, to `01_echo` and to fastwebsockets (no targets; above 1x, throughput is higher and CPU per message costlier):",
    );
    section.table(stack_ratios);
    Ok(section.into())
}
