//! Serving HTTP with deadlines, against slowloris: a client that opens
//! connections and sends each request head a few bytes at a time, or not at
//! all, so that every connection stays open and waits.
//!
//! `axum::serve` answers each connection with hyper's defaults and cannot be
//! configured. hyper's deadline on request heads needs a timer that
//! `axum::serve` does not give it, and before hyper sees a byte, hyper-util
//! reads the first bytes to tell HTTP/1.1 from HTTP/2, without a deadline at
//! all: a head that never completes holds its connection, and its file
//! descriptor, for as long as the client likes. This file serves each
//! connection with hyper's HTTP/1.1 builder itself, and adds two bounds:
//! - **a header timeout** (`--header-timeout`): hyper closes a connection whose
//!   request head (request line and headers) is not complete in time. The clock
//!   starts when hyper begins to wait for a head: when the connection opens, and
//!   again after each response, so an idle keep-alive connection closes after
//!   the same time;
//! - **a cap on connections that have not upgraded** (`--max-http-connections`):
//!   HTTP requests, idle keep-alive connections and heads still arriving. A
//!   connection beyond it is closed as soon as it is accepted. A connection
//!   gives its place back when it upgrades: WebSockets have their own cap,
//!   `--max-connections`, so that slow heads cannot keep out the dashboards
//!   already open, and open dashboards cannot keep out the login page.
//!
//! With TLS, the handshake comes first, in `ws_lessons::tls`, under a deadline
//! of its own (`tls::HANDSHAKE_TIMEOUT`); the cap counts connections from the
//! end of their handshake.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::serve::Listener as _;
use axum::{Json, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use ws_lessons::server::Listener;

use crate::feed::{Feed, FeedStats};
use crate::limits::PerAddress;

// ANCHOR: args
/// The deadlines and the cap on connections before they upgrade.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct HttpArgs {
    /// How long a client may take to send a request head (the request line and
    /// headers), from when the connection opens or its previous response was
    /// sent; then the connection is closed. An idle keep-alive connection
    /// closes after this time too
    #[arg(
        long,
        default_value = "10s",
        value_parser = ws_lessons::cli::duration
    )]
    header_timeout: Duration,
    /// The most connections not upgraded to a WebSocket: HTTP requests, idle
    /// keep-alive connections and request heads still arriving. A connection
    /// beyond it is closed at once (WebSockets have --max-connections)
    #[arg(
        long,
        default_value_t = 1000,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    max_http_connections: u32,
}
// ANCHOR_END: args

/// Serves HTTP on the connections a `Listener` accepts, with the bounds of
/// [`HttpArgs`]; `GET /stats` reads its [`Gauge`].
pub struct Http {
    builder: http1::Builder,
    gauge: Gauge,
}

/// The connections [`Http`] serves, as `GET /stats` reports them. Clones
/// share the same counts.
#[derive(Clone)]
pub struct Gauge(Arc<Counts>);

struct Counts {
    /// One permit for each connection that has not upgraded.
    slots: Arc<Semaphore>,
    max: usize,
    refused: AtomicU64,
    header_timeouts: AtomicU64,
}

/// What `GET /stats` says about connections that have not upgraded.
#[derive(Debug, Serialize)]
pub struct HttpStats {
    /// Connections open and not upgraded, the one asking for /stats included.
    open: usize,
    /// Connections closed at once because `open` was at the cap.
    refused: u64,
    /// Connections closed because a request head did not arrive in time, idle
    /// keep-alive connections included.
    header_timeouts: u64,
}

impl Http {
    // ANCHOR: builder
    /// hyper's HTTP/1.1 connection builder, with a timer for the header
    /// timeout.
    pub fn new(args: &HttpArgs) -> Self {
        // HTTP/1.1 only, as a browser speaks it to a WebSocket server: with
        // HTTP/2 as well, hyper-util would first read to tell the two apart,
        // and that read has no deadline.
        let mut builder = http1::Builder::new();
        builder
            // hyper measures its header timeout on this timer; without one,
            // the timeout is silently off.
            .timer(TokioTimer::new())
            .header_read_timeout(args.header_timeout)
            .keep_alive(true);
        let max = args.max_http_connections as usize;
        let gauge = Gauge(Arc::new(Counts {
            slots: Arc::new(Semaphore::new(max)),
            max,
            refused: AtomicU64::new(0),
            header_timeouts: AtomicU64::new(0),
        }));
        Self { builder, gauge }
    }
    // ANCHOR_END: builder

    /// The counts `GET /stats` reports.
    pub fn gauge(&self) -> Gauge {
        self.gauge.clone()
    }

    // ANCHOR: serve
    /// Accepts connections until `shutdown`, serves each in a task of its own,
    /// then waits for the requests in flight (`ws_lessons::server::serve_with`
    /// bounds that wait).
    pub async fn serve(
        self,
        mut listener: Listener,
        app: Router,
        shutdown: CancellationToken,
    ) -> io::Result<()> {
        let counts = &self.gauge.0;
        let tasks = TaskTracker::new();
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => accepted,
                () = shutdown.cancelled() => break,
            };
            // Taken here, in the accepting loop, before the next accept: a
            // connection is counted before any later one is looked at.
            let Ok(slot) = counts.slots.clone().try_acquire_owned() else {
                counts.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "closed a connection: too many open");
                continue;
            };
            // Each request knows its peer, for `ConnectInfo` and `ClientAddr`.
            let app = app.clone().map_request(move |request: Request<_>| {
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
            let service = TowerToHyperService::new(app);
            let builder = self.builder.clone();
            let (shutdown, gauge) = (shutdown.clone(), self.gauge.clone());
            tasks.spawn(async move {
                let io = TokioIo::new(stream);
                let connection =
                    builder.serve_connection(io, service).with_upgrades();
                let mut connection = pin!(connection);
                // This future ends when the connection closes, or as soon as
                // it upgrades: the WebSocket then lives on in its handler, and
                // the slot is free again.
                let ended = tokio::select! {
                    ended = connection.as_mut() => ended,
                    () = shutdown.cancelled() => {
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                };
                drop(slot);
                if let Err(e) = ended {
                    gauge.count_error(&e);
                }
            });
        }
        tasks.close();
        tasks.wait().await;
        Ok(())
    }
    // ANCHOR_END: serve
}

impl Gauge {
    /// Counts a header timeout, and logs any other failure at debug level.
    fn count_error(&self, error: &hyper::Error) {
        if error.is_timeout() {
            self.0.header_timeouts.fetch_add(1, Ordering::Relaxed);
        } else {
            tracing::debug!("connection failed: {error}");
        }
    }

    fn stats(&self) -> HttpStats {
        let counts = &self.0;
        HttpStats {
            open: counts.max - counts.slots.available_permits(),
            refused: counts.refused.load(Ordering::Relaxed),
            header_timeouts: counts.header_timeouts.load(Ordering::Relaxed),
        }
    }
}

/// What lesson 08's `GET /stats` reports: the dashboard's counts (lesson 05),
/// the connections that have not upgraded, and the WebSockets open from each
/// client address.
#[derive(Debug, Serialize)]
pub struct Stats {
    #[serde(flatten)]
    feed: FeedStats,
    http: HttpStats,
    /// `{"127.0.0.2":1}`: the addresses the WebSockets open now were counted
    /// against (`--max-per-address`), as `ClientAddr` worked them out.
    addresses: BTreeMap<IpAddr, usize>,
}

/// `GET /stats`, with [`HttpStats`] under `http`.
pub async fn stats(
    State(feed): State<Feed>,
    State(gauge): State<Gauge>,
    State(per_address): State<Arc<PerAddress>>,
) -> Json<Stats> {
    Json(Stats {
        feed: feed.stats(),
        http: gauge.stats(),
        addresses: per_address.open(),
    })
}
