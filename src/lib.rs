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

/// Logs go to stderr, so that stdout carries only the start-up line.
///
/// The level comes from `RUST_LOG` (for example `RUST_LOG=debug`) and defaults to
/// `info`.
pub fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
