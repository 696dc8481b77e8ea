//! Peer: a plain tokio-tungstenite echo server with default settings.
//! Usage: peer_tungstenite [ADDR]; prints `listening on ws://ADDR/ws`.

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = ws_bench::listen().await?;
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
