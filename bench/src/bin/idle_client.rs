//! A client that connects and then reads whatever the server sends, until the
//! connection ends. The slow-consumer scenario starts it and stops it (SIGSTOP):
//! a program of its own, so that the signal freezes it whole and its socket is no
//! longer read.
//!
//! Usage: idle_client HOST:PORT [RECEIVE_BUFFER_BYTES]. It prints
//! `connected to ws://HOST:PORT/ws` once it is, then, for every snapshot that
//! says changes were missed (the dashboard's resynchronisation),
//! `resynchronised missed=N`.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use ws_bench::wire::{Conn, OPCODE_TEXT, json_number};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(addr) = args.next() else {
        eprintln!("usage: idle_client HOST:PORT [RECEIVE_BUFFER_BYTES]");
        return ExitCode::FAILURE;
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        eprintln!("error: not a HOST:PORT address: {addr}");
        return ExitCode::FAILURE;
    };
    let receive_buffer = match args.next().map(|bytes| bytes.parse::<u32>()) {
        None => None,
        Some(Ok(bytes)) => Some(bytes),
        Some(Err(e)) => {
            eprintln!("error: RECEIVE_BUFFER_BYTES: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut conn = match Conn::open_with(addr, receive_buffer).await {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("error: cannot connect to ws://{addr}/ws: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Written with `writeln!`, not `println!`, which would panic once nobody
    // reads stdout.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "connected to ws://{addr}/ws");
    while let Ok(opcode) = conn.read_frame().await {
        let payload = conn.payload();
        if opcode != OPCODE_TEXT || !payload.starts_with(br#"{"type":"snapshot""#)
        {
            continue;
        }
        if let Some(missed) = json_number(payload, "missed").filter(|&n| n > 0) {
            let _ = writeln!(stdout, "resynchronised missed={missed}");
        }
    }
    ExitCode::SUCCESS
}
