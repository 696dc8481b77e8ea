//! Lesson 08: the dashboard server, hardened the way a careful team ships it.
//!
//! What it teaches, one defence per section:
//! - **Origin check**: a browser page from another site must not open a WebSocket to us with
//!   the user's cookies (Cross-Site WebSocket Hijacking, RFC 6455 section 10.2). axum checks
//!   no Origin by itself; this server answers 403 before the upgrade.
//! - **Authentication during the upgrade**: a token, checked before `on_upgrade` (401 on
//!   failure). Browsers cannot set headers on a WebSocket request, so the page signs in once
//!   at `/login` and the browser sends an HttpOnly cookie; other clients send
//!   `Authorization: Bearer TOKEN`. The token never appears in a URL, so never in a log.
//! - **Size limits**: `max_message_size` and `max_frame_size`, set deliberately.
//! - **Rate limits**: a token bucket per connection (`governor`), closing with 1008 when
//!   exceeded, and a cap on connections for the whole server (503 when full).
//! - **Close codes on protocol errors**: tungstenite reports an error but sends no Close
//!   frame; this server sends the right one (1002, 1007, 1009, 1011) before dropping, so the
//!   client learns why instead of seeing 1006.
//! - **Graceful shutdown**, and the buffer settings that matter for memory and speed.
//!
//! Try it:
//!     WS_LESSONS_TOKEN=s3cret cargo run --example 08_production
//! then open http://127.0.0.1:3000/login, sign in with `s3cret`, and you see the dashboard.
//! `--echo` turns /ws into an echo server (for the Autobahn conformance suite).

use std::num::NonZeroU32;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use axum::{Form, Router};
use bytesize::ByteSize;
use clap::{Parser, ValueEnum};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, MissedTickBehavior, timeout};
use ws_lessons::dashboard::{Dashboard, ServerMessage};
use ws_lessons::sensor::Simulator;
use ws_lessons::{Connections, ListenArgs};

// ANCHOR: args
/// The sensor dashboard with origin checks, authentication, limits and proper close codes.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    /// An origin allowed to open a WebSocket, besides the server's own (repeatable)
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origins: Vec<String>,
    /// What to do with an upgrade request without an Origin header (browsers always send one)
    #[arg(long, value_enum, default_value_t = NoOrigin::Allow)]
    no_origin: NoOrigin,
    /// The token clients must present. Set it in the environment: on the command line it
    /// would show in `ps` and in shell history
    #[arg(long, env = "WS_LESSONS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Run without authentication (for local experiments and the conformance suite)
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
    /// Messages a client may send in a burst above --rate-limit
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    burst: u32,
    /// The read buffer of each connection: memory per idle client against reads per large
    /// message (see the benchmarks)
    #[arg(long, default_value = "4KiB")]
    read_buffer: ByteSize,
    /// The most WebSocket connections served at once
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Echo messages instead of serving the dashboard (for the Autobahn conformance suite)
    #[arg(long)]
    echo: bool,
    /// Number of simulated sensors
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=100))]
    sensors: u16,
    /// Readings per second, across all sensors
    #[arg(long, default_value_t = 4.0, value_parser = ws_lessons::cli::rate)]
    rate: f64,
    /// How many changes a client may fall behind before it is resynchronised
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    queue: u32,
    /// Time between pings
    #[arg(long, default_value = "30s", value_parser = ws_lessons::cli::duration)]
    ping_interval: Duration,
    /// How long to wait for the pong before the peer is considered gone
    #[arg(long, default_value = "10s", value_parser = ws_lessons::cli::duration)]
    pong_timeout: Duration,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum NoOrigin {
    /// Accept it: non-browser clients cannot be tricked into cross-site requests
    Allow,
    /// Refuse it with 403
    Deny,
}
// ANCHOR_END: args

#[derive(Clone, FromRef)]
struct AppState {
    connections: Connections,
    dashboard: Arc<Dashboard>,
    policy: Arc<Policy>,
    /// One permit per WebSocket connection: the server-wide connection limit.
    slots: Arc<Semaphore>,
}

/// Everything the checks and limits need, fixed at start-up.
struct Policy {
    allow_origins: Vec<String>,
    no_origin: NoOrigin,
    token: Option<String>,
    max_message: usize,
    max_frame: usize,
    read_buffer: usize,
    rate_limit: Option<Quota>,
    echo: bool,
    ping_interval: Duration,
    pong_timeout: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    ws_lessons::init_tracing();

    if args.token.is_none() && !args.no_auth {
        eprintln!(
            "error: no token: set WS_LESSONS_TOKEN (or pass --token), or pass --no-auth to let \
             anyone connect"
        );
        return ExitCode::from(2);
    }
    let to_usize = |size: ByteSize| usize::try_from(size.as_u64()).unwrap_or(usize::MAX);
    let rate_limit = NonZeroU32::new(args.rate_limit).map(|per_second| {
        let burst = NonZeroU32::new(args.burst).unwrap_or(per_second);
        Quota::per_second(per_second).allow_burst(burst)
    });
    let policy = Policy {
        allow_origins: args.allow_origins,
        no_origin: args.no_origin,
        token: args.token,
        max_message: to_usize(args.max_message),
        max_frame: to_usize(args.max_frame),
        read_buffer: to_usize(args.read_buffer).max(1),
        rate_limit,
        echo: args.echo,
        ping_interval: args.ping_interval,
        pong_timeout: args.pong_timeout,
    };

    let simulator = Simulator::new(args.sensors.into());
    let dashboard = Arc::new(Dashboard::new(simulator.sensors(), args.queue as usize));
    tokio::spawn(dashboard.clone().simulate(simulator, args.rate));

    let connections = Connections::new();
    let state = AppState {
        connections: connections.clone(),
        dashboard,
        policy: Arc::new(policy),
        slots: Arc::new(Semaphore::new(args.max_connections as usize)),
    };
    let app = Router::new()
        .route(
            "/",
            get(|| async { Html(include_str!("05_dashboard/dashboard.html")) }),
        )
        .route("/login", get(login_page).post(login))
        .route("/ws", any(upgrade))
        .route("/stats", get(ws_lessons::server::stats))
        .with_state(state);

    ws_lessons::serve(args.listen.addr, app, connections).await
}

// ANCHOR: upgrade
/// Every check happens here, before `on_upgrade`: a refused request costs an HTTP response,
/// not a WebSocket connection.
async fn upgrade(
    State(app): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match upgrade {
        Ok(ws) => ws,
        // A plain GET on /ws: say what this URL wants.
        Err(
            WebSocketUpgradeRejection::InvalidConnectionHeader(_)
            | WebSocketUpgradeRejection::InvalidUpgradeHeader(_),
        ) => {
            let headers = [
                (header::UPGRADE, "websocket"),
                (header::CONNECTION, "Upgrade"),
            ];
            return (
                StatusCode::UPGRADE_REQUIRED,
                headers,
                "this URL speaks WebSocket\n",
            )
                .into_response();
        }
        Err(rejection) => return rejection.into_response(),
    };
    if let Err(why) = check_origin(&app.policy, &headers) {
        tracing::warn!("refused an upgrade: {why}");
        return (StatusCode::FORBIDDEN, format!("{why}\n")).into_response();
    }
    if !authenticated(&app.policy, &headers) {
        // Say nothing about the token itself, in the response or in the log.
        tracing::warn!("refused an upgrade: missing or wrong token");
        let challenge = [(header::WWW_AUTHENTICATE, "Bearer")];
        return (
            StatusCode::UNAUTHORIZED,
            challenge,
            "sign in at /login first\n",
        )
            .into_response();
    }
    let Ok(slot) = app.slots.clone().try_acquire_owned() else {
        tracing::warn!("refused an upgrade: the connection limit is reached");
        let retry = [(header::RETRY_AFTER, "5")];
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            retry,
            "too many connections\n",
        )
            .into_response();
    };

    let policy = &app.policy;
    let ws = ws
        // Size limits: a client cannot make us buffer more than this for one message.
        .max_message_size(policy.max_message)
        .max_frame_size(policy.max_frame)
        // Memory per connection: the 128 KiB default read buffer is zero-filled and kept for
        // the connection's life, about 130 KB per idle client; small messages need far less.
        .read_buffer_size(policy.read_buffer)
        // Every `send` flushes, so there is nothing to gain from collecting writes first...
        .write_buffer_size(0)
        // ...and what can wait for a client that does not read is one outgoing message, at
        // most an echo of the largest message a client may send. Unbounded by default.
        .max_write_buffer_size(policy.max_message + 16 * 1024);
    let connections = app.connections.clone();
    ws.on_upgrade(move |socket| connections.track(run(socket, app, slot)))
}

/// Runs one connection; the slot is released when it ends.
async fn run(socket: WebSocket, app: AppState, _slot: OwnedSemaphorePermit) {
    if app.policy.echo {
        echo(socket, app).await
    } else {
        feed(socket, app).await
    }
}
// ANCHOR_END: upgrade

// ANCHOR: origin
/// Allows the server's own origin (the scheme and the `Host` the browser asked for), the
/// `--allow-origin` list, and requests without an Origin if `--no-origin allow`.
fn check_origin(policy: &Policy, headers: &HeaderMap) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return match policy.no_origin {
            NoOrigin::Allow => Ok(()),
            NoOrigin::Deny => Err("no Origin header".into()),
        };
    };
    let origin = origin
        .to_str()
        .map_err(|_| "an Origin that is not text".to_owned())?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let same_origin = [format!("http://{host}"), format!("https://{host}")];
    let allowed = same_origin
        .iter()
        .chain(&policy.allow_origins)
        .any(|o| o.eq_ignore_ascii_case(origin));
    if allowed {
        Ok(())
    } else {
        Err(format!("origin {origin:?} is not allowed"))
    }
}
// ANCHOR_END: origin

// ANCHOR: auth
/// The token from `Authorization: Bearer TOKEN` or from the `session` cookie, compared in
/// constant time so that the comparison's duration says nothing about the token.
fn authenticated(policy: &Policy, headers: &HeaderMap) -> bool {
    let Some(expected) = &policy.token else {
        return true; // --no-auth
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == "session")
        .map(|cookie| cookie.value().to_owned());
    [bearer, cookie]
        .into_iter()
        .flatten()
        .any(|token| bool::from(token.as_bytes().ct_eq(expected.as_bytes())))
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

/// Checks the token once and hands the browser an HttpOnly, SameSite=Strict cookie, which it
/// then sends with the WebSocket upgrade: the page's JavaScript never sees the token.
async fn login(State(app): State<AppState>, Form(login): Form<Login>) -> Response {
    let Some(expected) = &app.policy.token else {
        return Redirect::to("/").into_response();
    };
    if !bool::from(login.token.as_bytes().ct_eq(expected.as_bytes())) {
        tracing::warn!("a sign-in with a wrong token");
        return (
            StatusCode::UNAUTHORIZED,
            Html(LOGIN_PAGE.replace("<!--error-->", "Wrong token.")),
        )
            .into_response();
    }
    let session = cookie::Cookie::build(("session", login.token))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .build();
    (
        [(header::SET_COOKIE, session.to_string())],
        Redirect::to("/"),
    )
        .into_response()
}

async fn login_page() -> Html<String> {
    Html(LOGIN_PAGE.replace("<!--error-->", ""))
}

const LOGIN_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title>
<style>body{font:15px/1.4 system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}
input,button{font:inherit;padding:.3rem}</style></head>
<body><h1>Sensor dashboard</h1>
<form method="post" action="/login"><p><label>Token <input name="token" type="password" autofocus></label>
<button>Sign in</button></p><p><!--error--></p></form></body></html>"#;
// ANCHOR_END: auth

// ANCHOR: close_codes
/// The Close frame that tells a client why its connection failed, for an error from `recv`.
/// `None` when the connection itself is gone and nothing can be written.
fn close_for(error: &axum::Error) -> Option<CloseFrame> {
    use std::error::Error as _;
    use tungstenite::Error as Ws;
    let (code, reason) = match error.source()?.downcast_ref::<Ws>()? {
        Ws::Capacity(_) => (close_code::SIZE, "message too big"),
        Ws::Utf8(_) => (close_code::INVALID, "text is not valid UTF-8"),
        Ws::Protocol(_) => (close_code::PROTOCOL, "protocol error"),
        Ws::ConnectionClosed | Ws::AlreadyClosed | Ws::Io(_) => return None,
        _ => (close_code::ERROR, "internal error"),
    };
    Some(CloseFrame {
        code,
        reason: reason.into(),
    })
}

/// Sends `frame` and gives up on the connection, without waiting long for a peer that has
/// already misbehaved.
async fn close_with(mut socket: WebSocket, frame: CloseFrame) {
    tracing::info!(code = frame.code, reason = %frame.reason, "closing a connection");
    if let Ok(Ok(())) = timeout(
        Duration::from_secs(1),
        socket.send(Message::Close(Some(frame))),
    )
    .await
    {
        ws_lessons::finish_close(socket).await;
    }
}

fn rate_limited(quota: &Option<Quota>) -> Option<DefaultDirectRateLimiter> {
    quota.map(RateLimiter::direct)
}

fn too_fast(limiter: &Option<DefaultDirectRateLimiter>) -> bool {
    limiter
        .as_ref()
        .is_some_and(|limiter| limiter.check().is_err())
}

fn over_the_rate_limit() -> CloseFrame {
    CloseFrame {
        code: close_code::POLICY,
        reason: "rate limit exceeded".into(),
    }
}
// ANCHOR_END: close_codes

// ANCHOR: feed
/// The dashboard's connection loop from lesson 05, with the rate limit and close codes.
async fn feed(mut socket: WebSocket, app: AppState) {
    let (mut changes, mut last_seq, snapshot) = app.dashboard.subscribe();
    if socket.send(Message::Text(snapshot)).await.is_err() {
        return;
    }
    let mut following = vec![true; app.dashboard.sensor_count()];
    let limiter = rate_limited(&app.policy.rate_limit);

    let (interval, pong_timeout) = (app.policy.ping_interval, app.policy.pong_timeout);
    let mut pings = tokio::time::interval_at(Instant::now() + interval, interval);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut outstanding: Option<Bytes> = None;
    let pong_deadline = tokio::time::sleep(pong_timeout);
    tokio::pin!(pong_deadline);
    let mut ping_count: u64 = 0;

    loop {
        let outgoing = tokio::select! {
            change = changes.recv() => match change {
                Ok(change) if change.seq <= last_seq => continue,
                Ok(change) => {
                    last_seq = change.seq;
                    if !(change.for_everyone || following[change.sensor]) {
                        continue;
                    }
                    Message::Text(change.json)
                }
                Err(RecvError::Lagged(_)) => {
                    let (seq, snapshot) = app.dashboard.resync(last_seq);
                    last_seq = seq;
                    Message::Text(snapshot)
                }
                Err(RecvError::Closed) => return,
            },

            message = socket.recv() => match message {
                Some(Ok(Message::Text(_) | Message::Binary(_))) if too_fast(&limiter) => {
                    return close_with(socket, over_the_rate_limit()).await;
                }
                Some(Ok(Message::Text(text))) => {
                    Message::Text(app.dashboard.answer(&text, &mut following).to_json().into())
                }
                Some(Ok(Message::Binary(_))) => {
                    let message = "send requests as JSON in text frames".to_owned();
                    Message::Text(ServerMessage::Error { id: None, message }.to_json().into())
                }
                Some(Ok(Message::Pong(payload))) if outstanding.as_ref() == Some(&payload) => {
                    outstanding = None;
                    continue;
                }
                Some(Ok(Message::Close(_))) => return ws_lessons::finish_close(socket).await,
                Some(Ok(_)) => continue,
                Some(Err(error)) => match close_for(&error) {
                    Some(frame) => return close_with(socket, frame).await,
                    None => return,
                },
                None => return,
            },

            _ = pings.tick(), if outstanding.is_none() => {
                ping_count += 1;
                let payload = Bytes::from(ping_count.to_be_bytes().to_vec());
                outstanding = Some(payload.clone());
                pong_deadline.as_mut().reset(Instant::now() + pong_timeout);
                Message::Ping(payload)
            }

            () = &mut pong_deadline, if outstanding.is_some() => {
                tracing::info!("no pong within {pong_timeout:?}; disconnecting");
                return;
            }

            () = app.connections.shutting_down() => return ws_lessons::going_away(socket).await,
        };
        if socket.send(outgoing).await.is_err() {
            return;
        }
    }
}
// ANCHOR_END: feed

// ANCHOR: echo
/// Echo mode: lesson 01's loop with the same limits and close codes, for the conformance suite.
async fn echo(mut socket: WebSocket, app: AppState) {
    let limiter = rate_limited(&app.policy.rate_limit);
    loop {
        let message = tokio::select! {
            message = socket.recv() => message,
            () = app.connections.shutting_down() => return ws_lessons::going_away(socket).await,
        };
        match message {
            Some(Ok(Message::Text(_) | Message::Binary(_))) if too_fast(&limiter) => {
                return close_with(socket, over_the_rate_limit()).await;
            }
            Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                if socket.send(message).await.is_err() {
                    return;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => match close_for(&error) {
                Some(frame) => return close_with(socket, frame).await,
                None => return,
            },
            None => return,
        }
    }
}
// ANCHOR_END: echo
