//! What the tests (`tests/`) and the benchmarks (`bench/`) share. It drives the
//! examples as a reader runs them: the real binary that `cargo run --example`
//! builds, on `127.0.0.1:0`, talked to over loopback by a tokio-tungstenite
//! client. The tests name it `common` (`use ws_harness as common;`).
//!
//! Every wait here has a timeout, so a broken example fails a test instead of
//! hanging it.
//!
//! - `process`: build and spawn an example (or a program of `stacks/`), read its
//!   output, signal it, wait for its exit; what it uses of CPU and memory.
//! - `contract!`: the same test bodies run against several programs.
//! - `running`: a started server program, its `/ws` and `/stats`, and its
//!   shutdown contract.
//! - `client`: what a tokio-tungstenite client reads (text, JSON, a message by
//!   type) and sends.
//! - `frames`: a peer made by hand on a plain TCP stream: the handshake, raw
//!   frames, silence.
//! - `http`: HTTP/1.1 requests on a plain TCP stream, and their typed responses.
//! - `pacing`: changes the test makes itself, a batch at a time, for the tests
//!   of slow clients.
//! - `redis`: a real `redis-server` on a free port, its data kept across a
//!   restart (or none kept, for the benchmarks), and raw commands to check what
//!   the server under test wrote.
//! - `nginx`: a real `nginx` on a free port in front of the servers under test,
//!   configured by `deploy/nginx.conf`, and clients that connect from any
//!   address of 127.0.0.0/8.
#![warn(missing_docs)]

#[cfg(feature = "browser")]
pub mod browser;
mod client;
mod frames;
mod http;
mod nginx;
mod pacing;
mod process;
mod redis;
mod running;

pub use client::{
    Client, answer_to, close, describe, expect_close, join, next, next_data,
    next_json, next_of, next_text, send_json,
};
pub use frames::{
    FIN, ServerFrame, SilentPeer, close_code_after, frame_extent, masked_frame,
    raw_upgrade, raw_upgrade_with, read_until_hangup, server_frames, silent_peer,
    stuck_peer, unmasked_frame, upgrade_request, upgrade_request_to,
    upgrade_request_with,
};
pub use http::{HttpResponse, http_get, http_post_form, read_head};
pub use nginx::{Nginx, connect_from};
pub use pacing::{
    Drain, PACED, PACED_QUEUE, changes_to_overflow, follow_own_changes,
    send_batch,
};
pub use process::{
    Exited, Log, Process, Program, example_binary, free_port, fresh_dir,
    is_room_change, run_to_exit,
};
pub use redis::{CommandStats, Persistence, Redis};
pub use running::Running;

// ANCHOR: contract
/// Runs each of `tests`, async functions of the test file that take a
/// [`Program`], once for each of `programs`: one test body, the same assertions
/// for every stack. The tests are named `MODULE::TEST`.
#[macro_export]
macro_rules! contract {
    (
        tests $tests:tt
        programs { $($(#[$attr:meta])* $module:ident: $program:expr,)* }
    ) => {
        $(
            $(#[$attr])*
            mod $module {
                use super::*;
                $crate::contract!(@each $program, $tests);
            }
        )*
    };
    (@each $program:expr, [$($test:ident),* $(,)?]) => {
        $(
            #[tokio::test]
            async fn $test() {
                super::$test($program).await
            }
        )*
    };
}
// ANCHOR_END: contract

/// The bound on any single wait for the server: start-up, a reply, a close.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How late a server's timer may fire on a machine busy with other work (a
/// build beside the tests, other tests): the margin of every "and not long
/// after" bound. A server without the deadline under test misses it by far
/// more: it never acts at all.
pub const LATE: std::time::Duration = std::time::Duration::from_secs(3);
