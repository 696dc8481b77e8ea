//! A client that connects and then reads whatever the server sends, until the connection
//! ends. The slow-consumer scenario starts it and stops it (SIGSTOP): a program of its own,
//! so that the signal freezes it whole and its socket is no longer read.
//! Usage: idle_client HOST:PORT; prints `connected to ws://HOST:PORT/ws` once it is.

use std::net::SocketAddr;
use std::process::ExitCode;

use ws_bench::wire::Conn;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(addr) = std::env::args().nth(1) else {
        eprintln!("usage: idle_client HOST:PORT");
        return ExitCode::FAILURE;
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        eprintln!("error: not a HOST:PORT address: {addr}");
        return ExitCode::FAILURE;
    };
    let mut conn = match Conn::open(addr).await {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("error: cannot connect to ws://{addr}/ws: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("connected to ws://{addr}/ws");
    while conn.read_frame().await.is_ok() {}
    ExitCode::SUCCESS
}
