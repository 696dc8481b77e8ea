//! Lessons 01 and 03 on two other stacks, with the contract of the lessons:
//! the same address argument and start-up line, the try-it page at `/`, Close
//! 1001 to every client and exit 0 on Ctrl-C or SIGTERM, and the same errors.
//!
//! - [`tungstenite`]: tokio-tungstenite alone. Its own small HTTP handling
//!   serves the page and hands upgrades to `accept_hdr_async`; its own tasks
//!   and token shut down.
//! - [`actix`]: actix-web with actix-ws. actix-web serves HTTP and runs its
//!   own workers; this module makes its shutdown send 1001.
//!
//! The programs are in `tungstenite/` and `actix/` beside `src/`; what every
//! stack shares (the command line, the signals) is here.
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

pub mod actix;
pub mod tungstenite;

/// The address argument of every server, as in lesson 01 (`ws_lessons::cli`,
/// without TLS: these stacks leave it to a proxy).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ListenArgs {
    /// Address to listen on, as IP:PORT; port 0 lets the system choose a free
    /// port
    #[arg(value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
}

/// What `GET /stats` answers, as JSON, made afresh for each request: for a
/// program with counts to report (lesson 03's heartbeat), at the same place in
/// the JSON as the lesson's own `/stats`. A program without it answers 404.
pub type Stats = Arc<dyn Fn() -> String + Send + Sync>;

/// [`Stats`] with what `counts` makes under `heartbeat`, where lesson 03's
/// `/stats` has the heartbeat's counts.
pub fn heartbeat_stats<T: serde::Serialize>(
    counts: impl Fn() -> T + Send + Sync + 'static,
) -> Stats {
    Arc::new(move || serde_json::json!({ "heartbeat": counts() }).to_string())
}

/// Prints the start-up line of every server example to stdout, and flushes
/// it: tests and scripts wait for it.
pub fn print_startup_line(local: SocketAddr) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", ws_lessons::server::startup_line(local));
    let _ = stdout.flush();
}

/// Resolves on the first Ctrl-C (SIGINT) or SIGTERM. The handlers are
/// installed when this is called, not when it is first polled, so a signal
/// that comes right after the start-up line is not missed.
pub fn shutdown_signal()
-> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutdown signal received");
    })
}
