//! Fan-out: the dashboard pushing readings to many subscribers, against a
//! fastwebsockets server that serializes each reading once and writes the same
//! buffer to every client.

use std::fmt;
use std::io;

use super::interleaved;
use crate::Plan;
use crate::load;
use crate::process::Binaries;
use crate::report::{Section, Table};
use ws_harness::{Log, Running};

/// The servers that push readings to every subscriber.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FanOutServer {
    Dashboard,
    FastWebSockets,
}

impl FanOutServer {
    /// In the order of the report's rows.
    const ALL: [FanOutServer; 2] =
        [FanOutServer::Dashboard, FanOutServer::FastWebSockets];

    /// Starts the server producing `rate` readings per second.
    async fn start(self, binaries: &Binaries, rate: u32) -> io::Result<Running> {
        let rate = rate.to_string();
        match self {
            FanOutServer::Dashboard => {
                let args = ["--rate", &rate, "--sensors", "4", "--queue", "1024"];
                Running::start_binary(
                    &binaries.example("05_dashboard"),
                    &args,
                    Log::Discarded,
                )
                .await
            }
            FanOutServer::FastWebSockets => {
                Running::start_binary(
                    &binaries.bin("peer_fanout"),
                    &[&rate],
                    Log::Discarded,
                )
                .await
            }
        }
    }
}

impl fmt::Display for FanOutServer {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            FanOutServer::Dashboard => "05_dashboard",
            FanOutServer::FastWebSockets => "fastwebsockets",
        })
    }
}

/// Runs both servers at three sizes (subscribers, readings per second); returns
/// the section.
pub async fn run(binaries: &Binaries, plan: &Plan) -> io::Result<String> {
    let mut table = Table::new(&[
        "subscribers",
        "readings/s",
        "server",
        "delay p50",
        "delay p99",
        "deliveries/s",
    ]);
    let [fewer, more] = plan.fan_out;
    for (n, rate) in [(fewer, 10), (more, 10), (more, 100)] {
        let what = format!("fan-out to {n} at {rate}/s");
        let runs = interleaved(plan, &what, &FanOutServer::ALL, async |kind| {
            let server = kind.start(binaries, rate).await?;
            let subscribers = load::open(server.addr, n).await?;
            let run =
                load::follow(subscribers, plan.warm_up * 2, plan.measure).await;
            server.stop().await;
            Ok(run)
        })
        .await?;
        for server in FanOutServer::ALL {
            table.row(format_args!(
                "{n} | {rate} | {server} | {:.0} ms | {:.0} ms | {:.0}",
                runs.median(server, |r| r.p50_ms),
                runs.median(server, |r| r.p99_ms),
                runs.median(server, |r| r.deliveries_per_s)
            ));
        }
    }
    let mut section = Section::new("Fan-out");
    section.paragraph(
        "The dashboard (`05_dashboard`) and a fastwebsockets server that serializes each reading once and writes the same buffer to every client. Delay: from a reading's creation to its arrival at the last client, in whole milliseconds (the readings carry a millisecond clock).",
    );
    section.table(table);
    section.paragraph(
        "Targets: to 1,000 clients at 10 readings/s, p99 under 20 ms; to 10,000, at least 0.8x the deliveries per second of the fastwebsockets server. Each reading is serialized once: `examples/05_dashboard/state.rs` has a unit test that every client's copy of a change shares one buffer.",
    );
    Ok(section.into())
}
