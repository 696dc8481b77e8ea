//! Polling, long polling and WebSockets: one client following the readings each way, and
//! what it costs on the wire and in delay.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::Plan;
use crate::process::{Binaries, Server};
use crate::report::{Section, Table};
use crate::stats::{histogram, now_ms};
use ws_bench::wire::{Conn, Http, json_number};

/// How the client learns of new readings.
#[derive(Clone, Copy)]
enum Transport {
    /// `07_long_polling` asked once a second, answering at once.
    Polling,
    /// `07_long_polling` asked again as soon as it answers, which it does when there is news.
    LongPolling,
    /// `05_dashboard` pushing each reading.
    WebSocket,
}

impl Transport {
    /// In the order of the report's rows.
    const ALL: [Transport; 3] = [
        Transport::Polling,
        Transport::LongPolling,
        Transport::WebSocket,
    ];
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Transport::Polling => "polling every 1 s",
            Transport::LongPolling => "long polling (07)",
            Transport::WebSocket => "WebSocket (05)",
        })
    }
}

/// Readings per second, as the servers are told (`--rate`).
const RATE: &str = "4";

/// What the client measured over `plan.polling`.
struct PollingRun {
    delivered: u64,
    /// On the wire, both directions, HTTP headers and WebSocket frame headers included.
    bytes: u64,
    /// From a reading's creation to its arrival, in ms.
    delays: Histogram<u64>,
}

/// Follows the readings each way in turn; returns the section.
pub async fn run(binaries: &Binaries, plan: &Plan) -> io::Result<String> {
    let mut table = Table::new(&[
        "transport",
        "readings delivered",
        "bytes per reading",
        "delay p50",
        "delay p99",
    ]);
    for transport in Transport::ALL {
        let run = match transport {
            Transport::WebSocket => websocket(binaries, plan).await?,
            Transport::Polling => poll(binaries, plan, false).await?,
            Transport::LongPolling => poll(binaries, plan, true).await?,
        };
        table.row(format_args!(
            "{transport} | {} | {:.0} | {} ms | {} ms",
            run.delivered,
            run.bytes as f64 / run.delivered.max(1) as f64,
            run.delays.value_at_quantile(0.5),
            run.delays.value_at_quantile(0.99)
        ));
    }
    let mut section = Section::new("Polling, long polling and WebSockets");
    section.paragraph(format_args!(
        "One client for {} s, readings at {RATE}/s. Bytes on the wire are counted by the client, both directions, HTTP headers and WebSocket frame headers included.",
        plan.polling.as_secs()
    ));
    section.table(table);
    Ok(section.into())
}

/// A WebSocket client of `05_dashboard`, reading what it pushes.
async fn websocket(binaries: &Binaries, plan: &Plan) -> io::Result<PollingRun> {
    let server =
        Server::start(&binaries.example("05_dashboard"), &["--rate", RATE])
            .await?;
    let mut conn = Conn::open(server.addr).await?;
    let until = Instant::now() + plan.polling;
    let (mut delivered, mut delays) = (0, histogram());
    while let Ok(Ok(_)) =
        tokio::time::timeout_at(until.into(), conn.read_frame()).await
    {
        if let Some(at) = json_number(conn.payload(), "at_ms") {
            delivered += 1;
            let _ = delays.record(now_ms().saturating_sub(at));
        }
    }
    server.stop().await;
    Ok(PollingRun {
        delivered,
        bytes: conn.bytes_in + conn.bytes_out,
        delays,
    })
}

/// An HTTP client of `07_long_polling`: asking once a second for what is new, or (`long`)
/// asking again as soon as the server answers.
async fn poll(
    binaries: &Binaries,
    plan: &Plan,
    long: bool,
) -> io::Result<PollingRun> {
    let server =
        Server::start(&binaries.example("07_long_polling"), &["--rate", RATE])
            .await?;
    let mut http = Http::open(server.addr).await?;
    // Start from the newest reading, as a client that has just loaded the page.
    let first = http.get("/poll?after=0&wait=false").await?;
    let mut after = json_number(&first, "next").unwrap_or(0);
    http.bytes_in = 0;
    http.bytes_out = 0;
    let until = Instant::now() + plan.polling;
    let (mut delivered, mut delays) = (0, histogram());
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
        let Ok(Ok(body)) =
            tokio::time::timeout_at(until.into(), http.get(&path)).await
        else {
            break;
        };
        let arrived = now_ms();
        let text = String::from_utf8_lossy(&body);
        for reading in text.split(r#"{"type":"reading""#).skip(1) {
            if let Some(at) = json_number(reading.as_bytes(), "at_ms") {
                delivered += 1;
                let _ = delays.record(arrived.saturating_sub(at));
            }
        }
        after = json_number(&body, "next").unwrap_or(after);
    }
    server.stop().await;
    Ok(PollingRun {
        delivered,
        bytes: http.bytes_in + http.bytes_out,
        delays,
    })
}
