//! Polling, long polling and WebSockets: clients following the readings each way,
//! on loopback and through a proxy that adds a network's latency, and what each
//! way costs on the wire and in delay.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::interleaved;
use crate::Plan;
use crate::process::Binaries;
use crate::proxy::DelayProxy;
use crate::report::{Section, Table};
use crate::stats::{histogram, now_ms, random_fraction};
use ws_bench::wire::{Conn, Http, json_number};
use ws_harness::{Log, Running};

/// How the clients learn of new readings.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Transport {
    /// `07_long_polling` asked once a second, answering at once.
    Polling,
    /// `07_long_polling` asked again as soon as it answers, which it does when
    /// there is news.
    LongPolling,
    /// `05_dashboard` pushing each reading.
    WebSocket,
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

/// What lies between the clients and the server.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Network {
    /// Nothing: loopback, a round trip of a few microseconds.
    Loopback,
    /// The delaying proxy (`crate::proxy`), `ONE_WAY` each way.
    Delayed,
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Network::Loopback => f.write_str("loopback"),
            Network::Delayed => write!(f, "+{} ms each way", ONE_WAY.as_millis()),
        }
    }
}

/// One row of the report: how fast the readings come, over what, and how they are
/// followed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Setup {
    /// Readings per second, as the server is told (`--rate`).
    rate: u32,
    network: Network,
    transport: Transport,
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}, {}/s, {}", self.transport, self.rate, self.network)
    }
}

/// The latency the proxy adds to each direction: a 50 ms round trip, a
/// long-distance link.
const ONE_WAY: Duration = Duration::from_millis(25);

/// The dashboard's pace (4 readings a second, 250 ms apart: longer than the round
/// trip), and a pace whose readings come closer together than the round trip (25
/// ms apart).
const SLOW: u32 = 4;
const FAST: u32 = 40;

/// Every transport at the dashboard's pace with and without the latency; then
/// long polling and the WebSocket with the latency at the fast pace.
const SETUPS: [Setup; 8] = [
    setup(SLOW, Network::Loopback, Transport::Polling),
    setup(SLOW, Network::Loopback, Transport::LongPolling),
    setup(SLOW, Network::Loopback, Transport::WebSocket),
    setup(SLOW, Network::Delayed, Transport::Polling),
    setup(SLOW, Network::Delayed, Transport::LongPolling),
    setup(SLOW, Network::Delayed, Transport::WebSocket),
    setup(FAST, Network::Delayed, Transport::LongPolling),
    setup(FAST, Network::Delayed, Transport::WebSocket),
];

/// A row of `SETUPS`.
const fn setup(rate: u32, network: Network, transport: Transport) -> Setup {
    Setup {
        rate,
        network,
        transport,
    }
}

/// Clients in each run, all following the same server.
const CLIENTS: usize = 10;

/// The most answers (HTTP responses or WebSocket frames) one client reads in a
/// run.
const MAX_ANSWERS: usize = 100_000;

/// How often a polling client asks.
const POLL_PERIOD: Duration = Duration::from_secs(1);

/// What the clients of one run measured together over `plan.polling`.
struct PollingRun {
    delivered: u64,
    /// On the wire, both directions, HTTP headers and WebSocket frame headers
    /// included, from the first answer (HTTP) or the snapshot (WebSocket) on.
    bytes: u64,
    /// From a reading's creation to its arrival, in ms.
    delays: Histogram<u64>,
}

impl PollingRun {
    /// Nothing delivered yet.
    fn new() -> PollingRun {
        PollingRun {
            delivered: 0,
            bytes: 0,
            delays: histogram(),
        }
    }

    /// Counts a reading created at `at_ms` that arrived at `arrived_ms`.
    fn record(&mut self, at_ms: u64, arrived_ms: u64) {
        self.delivered += 1;
        let _ = self.delays.record(arrived_ms.saturating_sub(at_ms));
    }

    /// Adds another client's run to this one.
    fn add(&mut self, other: PollingRun) {
        self.delivered += other.delivered;
        self.bytes += other.bytes;
        let _ = self.delays.add(other.delays);
    }
}

/// One run, as the report shows it.
struct PollingSummary {
    per_client: f64,
    bytes_per_reading: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs every setup, round after round; returns the section.
pub async fn run(binaries: &Binaries, plan: &Plan) -> io::Result<String> {
    let runs = interleaved(plan, "polling", &SETUPS, async |setup| {
        let run = measure(binaries, plan, setup).await?;
        Ok(PollingSummary {
            per_client: run.delivered as f64 / CLIENTS as f64,
            bytes_per_reading: run.bytes as f64 / run.delivered.max(1) as f64,
            p50_ms: run.delays.value_at_quantile(0.5) as f64,
            p99_ms: run.delays.value_at_quantile(0.99) as f64,
        })
    })
    .await?;
    let mut table = Table::new(&[
        "readings/s",
        "network",
        "transport",
        "readings per client",
        "bytes per reading",
        "delay p50",
        "delay p99",
    ]);
    for setup in SETUPS {
        let Setup {
            rate,
            network,
            transport,
        } = setup;
        table.row(format_args!(
            "{rate} | {network} | {transport} | {:.0} | {:.0} | {:.0} ms | {:.0} ms",
            runs.median(setup, |r| r.per_client),
            runs.median(setup, |r| r.bytes_per_reading),
            runs.median(setup, |r| r.p50_ms),
            runs.median(setup, |r| r.p99_ms),
        ));
    }
    let mut section = Section::new("Polling, long polling and WebSockets");
    section.paragraph(format_args!(
        "{CLIENTS} clients each way for {} s, on loopback and through a proxy in the bench that delays every byte by {} ms in each direction (a {} ms round trip). The polling clients make their first request at moments spread evenly over the second from a random point, and count the readings of the polls after it, so their polls fall at every phase of the readings. Delay: from a reading's creation to its arrival, in whole milliseconds. Bytes on the wire are counted by the clients from their first answer (HTTP) or the snapshot (WebSocket) on, both directions, HTTP headers and WebSocket frame headers included.",
        plan.polling.as_secs(),
        ONE_WAY.as_millis(),
        2 * ONE_WAY.as_millis()
    ));
    section.table(table);
    Ok(section.into())
}

/// One run of `setup`: its server, the proxy if any, and `CLIENTS` clients for
/// `plan.polling`.
async fn measure(
    binaries: &Binaries,
    plan: &Plan,
    setup: Setup,
) -> io::Result<PollingRun> {
    let example = match setup.transport {
        Transport::WebSocket => "05_dashboard",
        Transport::Polling | Transport::LongPolling => "07_long_polling",
    };
    let rate = setup.rate.to_string();
    let server = Running::start_binary(
        &binaries.example(example),
        &["--rate", &rate],
        Log::Discarded,
    )
    .await?;
    let proxy = match setup.network {
        Network::Loopback => None,
        Network::Delayed => Some(DelayProxy::start(server.addr, ONE_WAY).await?),
    };
    let addr = proxy.as_ref().map_or(server.addr, |proxy| proxy.addr);
    let until = Instant::now() + plan.polling;
    // Polling clients start spread over the period, from a random point.
    let shift = random_fraction();
    let mut clients = Vec::with_capacity(CLIENTS);
    for k in 0..CLIENTS {
        let offset = POLL_PERIOD.mul_f64((k as f64 + shift) / CLIENTS as f64);
        clients.push(tokio::spawn(async move {
            match setup.transport {
                Transport::WebSocket => websocket(addr, until).await,
                Transport::Polling => poll(addr, until, Some(offset)).await,
                Transport::LongPolling => poll(addr, until, None).await,
            }
        }));
    }
    let mut total = PollingRun::new();
    let mut failure = None;
    for client in clients {
        match client.await {
            Ok(Ok(run)) => total.add(run),
            Ok(Err(e)) => failure = Some(e),
            Err(e) => failure = Some(io::Error::other(e)),
        }
    }
    drop(proxy);
    server.stop().await;
    match failure {
        Some(e) => Err(io::Error::other(format!("a client of {setup}: {e}"))),
        None => Ok(total),
    }
}

/// A WebSocket client of `05_dashboard` at `addr`, reading what it pushes until
/// `until`.
async fn websocket(addr: SocketAddr, until: Instant) -> io::Result<PollingRun> {
    let mut conn = Conn::open(addr).await?;
    let mut run = PollingRun::new();
    let mut counting = false;
    for _ in 0..MAX_ANSWERS {
        let Ok(Ok(_)) = tokio::time::timeout_at(until, conn.read_frame()).await
        else {
            break;
        };
        let payload = conn.payload();
        if payload.starts_with(br#"{"type":"snapshot""#) && !counting {
            // Count the bytes from here on, as the HTTP clients do from their
            // first answer.
            (conn.bytes_in, conn.bytes_out, counting) = (0, 0, true);
        } else if payload.starts_with(br#"{"type":"reading""#)
            && let Some(at) = json_number(payload, "at_ms")
        {
            run.record(at, now_ms());
        }
    }
    run.bytes = conn.bytes_in + conn.bytes_out;
    Ok(run)
}

/// An HTTP client of `07_long_polling` at `addr`, until `until`: asking every
/// `POLL_PERIOD` from `offset` on, or, without one, long polling (asking again as
/// soon as it answers). The first answer only says where the feed is: its
/// readings are not counted.
async fn poll(
    addr: SocketAddr,
    until: Instant,
    offset: Option<Duration>,
) -> io::Result<PollingRun> {
    let mut http = Http::open(addr).await?;
    // A polling client starts at its offset, and then asks every period: every
    // reading it counts has waited for a poll a whole period after the one
    // before.
    let mut ticks = offset.map(|offset| {
        tokio::time::interval_at(Instant::now() + offset, POLL_PERIOD)
    });
    if let Some(ticks) = ticks.as_mut() {
        ticks.tick().await;
    }
    // Start from the newest reading, as a client that has just loaded the page.
    let first = http.get("/poll?after=0&wait=false").await?;
    let mut after = json_number(&first, "next").unwrap_or(0);
    (http.bytes_in, http.bytes_out) = (0, 0);
    let mut run = PollingRun::new();
    for _ in 0..MAX_ANSWERS {
        if Instant::now() >= until {
            break;
        }
        if let Some(ticks) = ticks.as_mut()
            && tokio::time::timeout_at(until, ticks.tick()).await.is_err()
        {
            break;
        }
        let path = match ticks {
            Some(_) => format!("/poll?after={after}&wait=false"),
            None => format!("/poll?after={after}"),
        };
        let Ok(Ok(body)) = tokio::time::timeout_at(until, http.get(&path)).await
        else {
            break;
        };
        let arrived = now_ms();
        let text = String::from_utf8_lossy(&body);
        for reading in text.split(r#"{"type":"reading""#).skip(1) {
            if let Some(at) = json_number(reading.as_bytes(), "at_ms") {
                run.record(at, arrived);
            }
        }
        after = json_number(&body, "next").unwrap_or(after);
    }
    run.bytes = http.bytes_in + http.bytes_out;
    Ok(run)
}
