//! Support code for the ws-lessons examples.
//!
//! Two kinds of thing live here. What would distract every lesson: serving and
//! shutting down ([`server`]), with TLS when asked ([`tls`]), the
//! command-line pieces ([`cli`]), the client's address behind a proxy
//! ([`proxy`]), the sensor simulator ([`sensor`]) and the try-it page
//! ([`page`]). And what several programs must agree on: the dashboard's wire
//! protocol ([`protocol`]). What a lesson teaches (how to receive, send, split,
//! ping, push back, fan out) always stays in its own files in `examples/`.
#![warn(missing_docs)]

pub mod cli;
pub mod page;
pub mod protocol;
pub mod proxy;
pub mod sensor;
pub mod server;
pub mod tls;

pub use cli::{ListenAddr, ListenArgs};
pub use server::{Connections, Socket, finish_close, going_away, serve};

// ANCHOR: init_tracing
/// Logs go to stderr, so that stdout carries only the start-up line. Keep what
/// this returns until `main` ends: dropping it writes out the lines still
/// queued, waiting about a second at most (tracing-appender 0.2.5: 100 ms
/// to hand over, then up to 1 s for the thread).
///
/// The level comes from `RUST_LOG` (for example `RUST_LOG=debug`) and defaults to
/// `info`.
///
/// No log line can hold up or stop the program: each goes into a queue that a
/// thread of its own writes to stderr (tracing-appender's `non_blocking`). A
/// reader that stops reading fills the pipe and blocks that thread only; the
/// queue then drops lines rather than wait. A reader that went away makes the
/// writes fail, and the thread drops those lines quietly (tracing-subscriber
/// would report a failed write with `eprintln!`, which panics when stderr is
/// gone: in the task that logs "shutdown signal received", that stopped the
/// shutdown itself).
#[must_use = "dropping it stops the logs"]
pub fn init_tracing() -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (stderr, guard) =
        tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(true)
            .thread_name("logs")
            .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    guard
}
// ANCHOR_END: init_tracing
