//! Lesson 08: the dashboard server, hardened the way a careful team ships it.
//!
//! It is lesson 05 with defences added, and only the defences are written here:
//! the dashboard's state and connection loop are 05's files (`state.rs`,
//! `feed.rs`), included with `#[path]`. What it teaches, one defence per section:
//! - **Origin check**: a browser page from another site must not open a WebSocket
//!   to us with the user's cookies (Cross-Site WebSocket Hijacking, RFC 6455
//!   section 10.2). axum checks no Origin by itself; this server answers 403
//!   before the upgrade (`checks.rs`).
//! - **Authentication during the upgrade**: a token, checked before `on_upgrade`
//!   (401 on failure). Browsers cannot set headers on a WebSocket request, so the
//!   page signs in once at `/login` and the browser sends an HttpOnly cookie;
//!   other clients send `Authorization: Bearer TOKEN`. The token never appears in
//!   a URL, so never in a log (`checks.rs`, `login.rs`).
//! - **Size limits**: `max_message_size` and `max_frame_size`, set deliberately.
//! - **Rate limits**: a token bucket per connection (`governor`), closing with
//!   1008 when exceeded (`limits.rs`), a cap on connections for the whole
//!   server (503 when full), and one for each client address (429).
//! - **The client's address**, behind a reverse proxy too: from
//!   `X-Forwarded-For` when the request comes from a proxy named by
//!   `--trust-proxy`, and never otherwise (`ws_lessons::proxy`). The per-address
//!   cap counts it, and every refusal and every connection's log names it.
//! - **Close codes on protocol errors**: tungstenite reports an error but sends
//!   no Close frame; this server sends the right one (1002, 1007, 1009, 1011)
//!   before dropping, so the client learns why instead of seeing 1006
//!   (`limits.rs`).
//! - **Slow clients before the upgrade** (slowloris): a deadline on request
//!   heads, which also closes idle keep-alive connections, and a cap on the
//!   connections that have not upgraded (`http.rs`).
//! - **Graceful shutdown**, and the buffer settings that matter for memory and
//!   speed.
//!
//! Try it:
//!     WS_LESSONS_TOKEN=s3cret cargo run --example 08_production
//! then open http://127.0.0.1:3000/login, sign in with `s3cret`, and you see the
//! dashboard. `--echo` turns /ws into an echo server (for the Autobahn
//! conformance suite). Behind a reverse proxy (`deploy/nginx.conf`), name it with
//! `--trust-proxy ADDR`, or every client will seem to be the proxy.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{FromRef, State};
use axum::http::{StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytesize::ByteSize;
use clap::{Parser, ValueEnum};
use governor::Quota;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceBuilder;
use tracing::Instrument;
use ws_lessons::proxy::{ClientAddr, ProxyArgs, TrustedProxies};
use ws_lessons::{Connections, ListenArgs};

// ANCHOR: modules
// Lesson 05's state and connection loop, and lesson 03's heartbeat, as they are.
#[path = "../05_dashboard/feed.rs"]
mod feed;
#[path = "../03_heartbeat/heartbeat.rs"]
mod heartbeat;
#[path = "../05_dashboard/state.rs"]
mod state;
// What this lesson adds.
mod checks;
mod http;
mod limits;
mod login;
// ANCHOR_END: modules

use feed::{DashboardArgs, Feed};
use limits::{AddressSlot, PerAddress, RateLimited};
use ws_lessons::server::Ended;

// ANCHOR: args
/// The sensor dashboard with origin checks, authentication, limits and proper
/// close codes.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    /// An origin allowed to open a WebSocket, besides the server's own
    /// (repeatable)
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origins: Vec<String>,
    /// What to do with an upgrade request without an Origin header (browsers
    /// always send one)
    #[arg(long, value_enum, default_value_t = NoOrigin::Allow)]
    no_origin: NoOrigin,
    /// The token clients must present. Set it in the environment: on the command
    /// line it would show in `ps` and in shell history
    #[arg(long, env = "WS_LESSONS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Run without authentication (for local experiments and the conformance
    /// suite)
    #[arg(long, conflicts_with = "token")]
    no_auth: bool,
    /// The largest message a client may send
    #[arg(long, default_value = "64KiB")]
    max_message: ByteSize,
    /// The largest frame a client may send
    #[arg(long, default_value = "16KiB")]
    max_frame: ByteSize,
    /// Messages a client may send per second (0: no limit)
    #[arg(long, default_value_t = 20)]
    rate_limit: u32,
    /// The most messages a client may send in one burst (the token bucket's size)
    #[arg(
        long,
        default_value_t = 40,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    burst: u32,
    // ANCHOR_END: args
    // ANCHOR: args_more
    /// The read buffer of each connection: memory per idle client against reads
    /// per large message (see the benchmarks)
    #[arg(long, default_value = "4KiB")]
    read_buffer: ByteSize,
    /// The most WebSocket connections served at once
    #[arg(
        long,
        default_value_t = 1000,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    max_connections: u32,
    /// The most WebSocket connections from one client address (behind a NAT,
    /// a whole office shares one)
    #[arg(
        long,
        default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    max_per_address: u32,
    #[command(flatten)]
    http: http::HttpArgs,
    #[command(flatten)]
    proxy: ProxyArgs,
    /// Echo messages instead of serving the dashboard (for the Autobahn
    /// conformance suite)
    #[arg(long)]
    echo: bool,
    #[command(flatten)]
    dashboard: DashboardArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum NoOrigin {
    /// Accept it: non-browser clients cannot be tricked into cross-site requests
    Allow,
    /// Refuse it with 403
    Deny,
}
// ANCHOR_END: args_more

// ANCHOR: policy
/// Everything the checks and limits need, fixed at start-up.
pub struct Policy {
    allow_origins: Vec<String>,
    no_origin: NoOrigin,
    token: Option<String>,
    max_message: usize,
    max_frame: usize,
    read_buffer: usize,
    rate_limit: Option<Quota>,
    echo: bool,
    /// The session cookie is `Secure` (sent over TLS only) when we serve TLS.
    secure_cookie: bool,
}
// ANCHOR_END: policy

#[derive(Clone, FromRef)]
struct AppState {
    feed: Feed,
    policy: Arc<Policy>,
    /// One permit per WebSocket connection: the server-wide connection limit.
    slots: Arc<Semaphore>,
    /// The connections of each client address, held to `--max-per-address`
    /// and listed by `GET /stats`.
    per_address: Arc<PerAddress>,
    /// Whose X-Forwarded-For to believe, for `ClientAddr`.
    proxies: TrustedProxies,
    /// The connections that have not upgraded, for `GET /stats`.
    http: http::Gauge,
}

impl FromRef<AppState> for Connections {
    fn from_ref(app: &AppState) -> Self {
        app.feed.connections.clone()
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = ws_lessons::init_tracing();

    if args.token.is_none() && !args.no_auth {
        eprintln!(
            "error: no token: set WS_LESSONS_TOKEN (or pass --token), \
             or pass --no-auth to let anyone connect"
        );
        return ExitCode::from(2);
    }
    let to_usize =
        |size: ByteSize| usize::try_from(size.as_u64()).unwrap_or(usize::MAX);
    let rate_limit = NonZeroU32::new(args.rate_limit).map(|per_second| {
        let burst = NonZeroU32::new(args.burst).unwrap_or(per_second);
        Quota::per_second(per_second).allow_burst(burst)
    });
    let policy = Arc::new(Policy {
        allow_origins: args.allow_origins,
        no_origin: args.no_origin,
        token: args.token,
        max_message: to_usize(args.max_message),
        max_frame: to_usize(args.max_frame),
        read_buffer: to_usize(args.read_buffer).max(1),
        rate_limit,
        echo: args.echo,
        secure_cookie: args.listen.addr.serves_tls(),
    });

    let connections = Connections::new();
    let http = http::Http::new(&args.http);
    let state = AppState {
        feed: Feed::start(&args.dashboard, connections.clone()),
        policy,
        slots: Arc::new(Semaphore::new(args.max_connections as usize)),
        per_address: PerAddress::new(args.max_per_address),
        proxies: args.proxy.trusted(),
        http: http.gauge(),
    };
    // ANCHOR: layers
    // The checks before an upgrade, in the order they run (`checks.rs`).
    let checks = ServiceBuilder::new()
        .layer(from_fn(checks::refuse_plain_requests))
        .layer(from_fn_with_state(state.clone(), checks::check_origin))
        .layer(from_fn_with_state(state.clone(), checks::require_token));
    let app = Router::new()
        .route("/", get(feed::page))
        .route("/login", get(login::page).post(login::sign_in))
        .route("/ws", any(upgrade).layer(checks))
        .route("/stats", get(http::stats))
        .with_state(state);
    // ANCHOR_END: layers

    // ANCHOR: serve
    // Every connection is served by `http.rs`, with its deadlines and its cap.
    let startup = ws_lessons::server::startup_line;
    let serve = |listener, app, shutdown| http.serve(listener, app, shutdown);
    let addr = args.listen.addr;
    ws_lessons::server::serve_with(addr, app, connections, startup, serve).await
    // ANCHOR_END: serve
}

// ANCHOR: upgrade
/// Past the checks: a place for the client's address (or 429) and a slot (or
/// 503), then the limits on what a client may send and on what may wait for it.
async fn upgrade(
    ws: WebSocketUpgrade,
    ClientAddr(client): ClientAddr,
    State(app): State<AppState>,
) -> Response {
    let Some(address_slot) = app.per_address.try_acquire(client) else {
        let why = "too many connections from this address";
        return refuse(client, StatusCode::TOO_MANY_REQUESTS, why);
    };
    let Ok(slot) = app.slots.clone().try_acquire_owned() else {
        let why = "the connection limit is reached";
        return refuse(client, StatusCode::SERVICE_UNAVAILABLE, why);
    };
    let policy = &app.policy;
    let ws = ws
        // Size limits: a client cannot make us buffer more than this for one
        // message.
        .max_message_size(policy.max_message)
        .max_frame_size(policy.max_frame)
        // Memory per connection: the 128 KiB default read buffer is zero-filled
        // and kept for the connection's life, about 130 KB per idle client.
        .read_buffer_size(policy.read_buffer)
        // Every `send` flushes, so there is nothing to gain from collecting
        // writes...
        .write_buffer_size(0)
        // ...and what can wait for a client that does not read is one outgoing
        // message: an echo of the largest a client may send, or a snapshot.
        // Unbounded by default.
        .max_write_buffer_size(policy.max_message.max(SNAPSHOT_ROOM) + 16 * 1024);
    let connections = app.feed.connections.clone();
    // Every line the connection logs names its client.
    let span = tracing::info_span!("connection", %client);
    let slots = (slot, address_slot);
    ws.on_upgrade(move |socket| {
        connections.track(run(socket, app, slots).instrument(span))
    })
}

/// Runs one connection behind the rate limit, and ends it with the close code
/// that says why; the slots are released when it returns.
async fn run(socket: WebSocket, app: AppState, _slots: Slots) {
    tracing::info!("connection opened");
    let mut socket = RateLimited::new(socket, app.policy.rate_limit);
    let ended = if app.policy.echo {
        limits::echo(&mut socket, &app.feed.connections).await
    } else {
        feed::run(&mut socket, &app.feed).await
    };
    let socket = socket.into_inner();
    match ended {
        Ended::Failed(error) => match limits::close_for(&error) {
            Some(frame) => limits::close_with(socket, frame).await,
            None => tracing::debug!("connection error: {error}"),
        },
        ended => ws_lessons::server::end(socket, ended).await,
    }
}
// ANCHOR_END: upgrade

/// Room for the dashboard's largest message, a snapshot: some 47 KB with 100
/// sensors, the most `--sensors` allows. The write buffer must take it whatever
/// `--max-message` says, or sending it fails and the client is dropped.
const SNAPSHOT_ROOM: usize = 256 * 1024;

/// What a connection holds while it lasts: its slot in the server, and its
/// place among its address's connections.
type Slots = (OwnedSemaphorePermit, AddressSlot);

/// Refuses an upgrade for a limit reached, in the log (with the client's
/// address) and to the client, who may try again in a few seconds.
fn refuse(client: IpAddr, status: StatusCode, why: &str) -> Response {
    tracing::warn!("refused an upgrade from {client}: {why}");
    let retry = [(header::RETRY_AFTER, "5")];
    (status, retry, format!("{why}\n")).into_response()
}
