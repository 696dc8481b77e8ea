//! Echo: messages per second, round-trip latency and the server's CPU time per
//! message of `01_echo`, against the two echo peers, at three loads; then
//! `01_echo`'s ratios to them.

use std::fmt;
use std::io;

use super::interleaved;
use crate::Plan;
use crate::load;
use crate::process::{Binaries, Server};
use crate::report::{Section, Table};

/// The echo servers: the lesson's, and the two peers it is measured against.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EchoServer {
    Lesson,
    Tungstenite,
    FastWebSockets,
}

impl EchoServer {
    /// In the order of the report's rows.
    pub const ALL: [EchoServer; 3] = [
        EchoServer::Lesson,
        EchoServer::Tungstenite,
        EchoServer::FastWebSockets,
    ];

    /// Starts the server, with its default settings.
    pub async fn start(self, binaries: &Binaries) -> io::Result<Server> {
        let binary = match self {
            EchoServer::Lesson => binaries.example("01_echo"),
            EchoServer::Tungstenite => binaries.bin("peer_tungstenite"),
            EchoServer::FastWebSockets => binaries.bin("peer_fastwebsockets"),
        };
        Server::start(&binary, &[]).await
    }
}

impl fmt::Display for EchoServer {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            EchoServer::Lesson => "01_echo",
            EchoServer::Tungstenite => "tokio-tungstenite",
            EchoServer::FastWebSockets => "fastwebsockets",
        })
    }
}

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
        "throughput vs tokio-tungstenite",
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
    }
    let mut section = Section::new("Echo");
    section.table(table);
    section.paragraph(
        "Ratios of `01_echo` (targets: throughput at least 0.9x fastwebsockets, CPU per message at most 1.15x, throughput at least 1.8x tokio-tungstenite):",
    );
    section.table(ratios);
    Ok(section.into())
}
