//! Support code for the ws-lessons examples.
//!
//! Everything here would distract from a lesson: parsing the listen address, printing the
//! start-up line, turning Ctrl-C into a shutdown signal, counting live connections, and
//! simulating sensors. What a lesson teaches (how to receive, send, split, ping, and push back)
//! always stays in its example, in `examples/`.

pub mod cli;
pub mod dashboard;
pub mod page;
pub mod sensor;
pub mod server;

pub use cli::ListenArgs;
pub use server::{Connections, finish_close, going_away, serve};

/// Logs go to stderr, so that stdout carries only the start-up line.
///
/// The level comes from `RUST_LOG` (for example `RUST_LOG=debug`) and defaults to `info`.
pub fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
