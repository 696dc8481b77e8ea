//! The read buffer: `08_production --echo` with three read buffer sizes, the
//! memory an idle connection costs against the echo throughput of large messages,
//! which a small buffer reads in more pieces.

use std::io;

use super::interleaved;
use crate::Plan;
use crate::load;
use crate::process::Binaries;
use crate::report::{Section, Table};
use ws_harness::{Log, Running};

/// The sizes given to `--read-buffer`, as the report shows them.
const SIZES: [&str; 3] = ["4KiB", "16KiB", "128KiB"];

/// Measures `08_production` with each read buffer size in turn, round after
/// round; returns the section.
pub async fn run(binaries: &Binaries, plan: &Plan) -> io::Result<String> {
    let n = plan.idle_connections.min(2_000);
    let mut table = Table::new(&[
        "read buffer",
        "memory per idle connection",
        "10 x 16 KiB messages/s",
    ]);
    let args = |size| {
        [
            "--no-auth",
            "--echo",
            "--rate-limit",
            "0",
            "--max-message",
            "1MiB",
            "--max-frame",
            "1MiB",
            "--read-buffer",
            size,
            "--max-connections",
            "100000",
        ]
    };
    let runs = interleaved(plan, "read buffer", &SIZES, async |size| {
        let server = Running::start_binary(
            &binaries.example("08_production"),
            &args(size),
            Log::Discarded,
        )
        .await?;
        let memory = load::idle(&server, n).await?.per_connection_bytes;
        let rate = load::echo(&server, 10, 16 * 1024, plan).await?.per_second;
        server.stop().await;
        Ok((memory, rate))
    })
    .await?;
    for size in SIZES {
        table.row(format_args!(
            "{size} | {:.1} KB | {:.0}",
            runs.median(size, |(memory, _)| *memory) / 1000.0,
            runs.median(size, |(_, rate)| *rate)
        ));
    }
    let mut section =
        Section::new("The read buffer: memory against large messages");
    section.paragraph(
        "`08_production --echo` with three read buffer sizes (`--read-buffer`): resident memory per idle connection, and echo throughput with 10 connections of 16 KiB messages.",
    );
    section.table(table);
    Ok(section.into())
}
