//! Idle memory: the resident memory of the echo servers with many connections
//! that do nothing, which is what a server with many quiet clients pays for;
//! then that of lesson 01's echo on the other stacks against `01_echo`'s.

use super::echo::EchoServer;
use super::interleaved;
use std::io;

use crate::Plan;
use crate::load;
use crate::process::Binaries;
use crate::report::{Section, Table};

/// Opens `plan.idle_connections` to each echo server; returns the section.
pub async fn run(binaries: &Binaries, plan: &Plan) -> io::Result<String> {
    let n = plan.idle_connections;
    let what = format!("idle memory, {n} connections");
    let runs = interleaved(plan, &what, &EchoServer::ALL, async |kind| {
        let server = kind.start(binaries).await?;
        let memory = load::idle(&server, n).await;
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
        "{n} idle connections to each server of the Echo section (target for `01_echo`: at most 8 KB each, under 100 MB resident in all):"
    ));
    section.table(table);
    section.paragraph(
        "Resident memory per connection of lesson 01's echo on the other stacks, against `01_echo`'s (no targets):",
    );
    section.table(stacks);
    Ok(section.into())
}
