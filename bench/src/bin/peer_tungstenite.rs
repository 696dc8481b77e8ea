//! Peer: a plain tokio-tungstenite echo server with default settings.
//! Usage: peer_tungstenite [ADDR]; prints `listening on ws://ADDR/ws`.

use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on ws://{}/ws", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            while let Some(Ok(message)) = ws.next().await {
                if matches!(message, Message::Text(_) | Message::Binary(_))
                    && ws.send(message).await.is_err()
                {
                    break;
                }
            }
        });
    }
}
