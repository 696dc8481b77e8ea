//! What the programs of ws-bench share: the hand-made WebSocket client, with
//! which the load generator (`ws-bench`) and the idle client
//! (`src/bin/idle_client.rs`) connect, and how a peer server starts listening.

pub mod wire;

use tokio::net::TcpListener;

/// For a peer server: binds the address given as the program's first argument
/// (127.0.0.1:0 without one) and prints `listening on ws://ADDR/ws`, the line
/// from which the bench learns the port (`ws_harness::Running::start_binary`).
pub async fn listen() -> std::io::Result<TcpListener> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on ws://{}/ws", listener.local_addr()?);
    Ok(listener)
}
