//! Idle memory: the resident memory of the echo servers with many connections
//! that do nothing, which is what a server with many quiet clients pays for;
//! then that of lesson 01's echo on the other stacks against `01_echo`'s.

use super::echo::EchoServer;
use super::interleaved;
use std::io;

use crate::Plan;
use crate::load;
use crate::process::{self, Binaries};
use crate::report::{Section, Table};

/// File descriptors a server needs besides its connections' (the listener,
/// epoll, its runtime's pipes and the like), with room to spare.
const RESERVED_DESCRIPTORS: u64 = 100;

/// Opens `plan.idle_connections` to each echo server, or as many as its file
/// descriptors allow (`connections`); returns the section.
pub async fn run(binaries: &Binaries, plan: &Plan) -> io::Result<String> {
    let n = plan.idle_connections;
    let limit = process::open_file_limit();
    let what = format!("idle memory, {n} connections");
    let runs = interleaved(plan, &what, &EchoServer::ALL, async |kind| {
        let server = kind.start(binaries).await?;
        let memory = load::idle(&server, connections(kind, n, limit)).await;
        server.stop().await;
        memory
    })
    .await?;
    let mut table = Table::new(&[
        "server",
        "resident memory per connection",
        "resident memory in all",
    ]);
    for server in EchoServer::ALL {
        table.row(format_args!(
            "{server} | {:.1} KB | {:.1} MiB",
            runs.median(server, |r| r.per_connection_bytes) / 1000.0,
            runs.median(server, |r| r.resident_mib)
        ));
    }
    let per_connection = |server| runs.median(server, |r| r.per_connection_bytes);
    let mut stacks = Table::new(&["stack", "memory per connection vs 01_echo"]);
    for stack in EchoServer::STACKS {
        stacks.row(format_args!(
            "{stack} | {:.2}x",
            per_connection(stack) / per_connection(EchoServer::Lesson)
        ));
    }
    let mut section = Section::new("Idle memory");
    section.paragraph(format_args!(
        "{n} idle connections to each server of the Echo section{} (target for `01_echo`: at most 8 KB each, under 100 MB resident in all):",
        fewer(n, limit)
    ));
    section.table(table);
    section.paragraph(
        "Resident memory per connection of lesson 01's echo on the other stacks, against `01_echo`'s (no targets):",
    );
    section.table(stacks);
    Ok(section.into())
}

/// How many idle connections `server` gets: `n`, or, if its descriptors for
/// `n` would not fit in the open-file limit it inherits (`limit`), as many
/// whole thousands as fit.
fn connections(server: EchoServer, n: usize, limit: u64) -> usize {
    let fit = limit.saturating_sub(RESERVED_DESCRIPTORS)
        / server.descriptors_per_connection();
    let fit = usize::try_from(fit).unwrap_or(usize::MAX);
    match fit {
        fit if fit >= n => n,
        fit if fit >= 1000 => fit / 1000 * 1000,
        fit => fit,
    }
}

/// The report's words for the servers that get fewer than `n` connections
/// (`connections`), and why; empty if none does.
fn fewer(n: usize, limit: u64) -> String {
    EchoServer::ALL
        .into_iter()
        .filter(|&server| connections(server, n, limit) < n)
        .map(|server| {
            format!(
                ", but {} to `{server}`: it holds {} file descriptors per connection, and the open-file limit here is {limit}",
                connections(server, n, limit),
                server.descriptors_per_connection()
            )
        })
        .collect()
}
