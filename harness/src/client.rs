//! A tokio-tungstenite client's side of a conversation: the next message, in the
//! shape the test expects, and the closing handshake.

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::WAIT;

/// A WebSocket client, as `Running::connect` opens it.
pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

// ANCHOR: next
/// The next message from the server, within `WAIT`. `None` when the stream has
/// ended.
pub async fn next(client: &mut Client) -> Option<Message> {
    match timeout(WAIT, client.next()).await {
        Ok(Some(Ok(message))) => Some(message),
        Ok(Some(Err(e))) => panic!("the connection failed: {e}"),
        Ok(None) => None,
        Err(_) => panic!("no message from the server in time"),
    }
}
// ANCHOR_END: next

/// The next Text or Binary message, skipping the server's Pings (which
/// tungstenite answers).
pub async fn next_data(client: &mut Client) -> Message {
    loop {
        match next(client).await {
            Some(Message::Ping(_) | Message::Pong(_)) => continue,
            Some(message) => return message,
            None => panic!("the stream ended while a message was expected"),
        }
    }
}

/// The next Text message, as a string.
pub async fn next_text(client: &mut Client) -> String {
    match next_data(client).await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// The next Text message, parsed as JSON.
pub async fn next_json(client: &mut Client) -> Value {
    serde_json::from_str(&next_text(client).await).expect("JSON")
}

/// The next JSON message whose `type` is `kind`, skipping the others on the way.
pub async fn next_of(client: &mut Client, kind: &str) -> Value {
    for _ in 0..10_000 {
        let message = next_json(client).await;
        if message["type"] == kind {
            return message;
        }
    }
    panic!("no {kind} message among 10000");
}

/// Sends `value` as a Text message.
pub async fn send_json(client: &mut Client, value: Value) {
    client
        .send(Message::text(value.to_string()))
        .await
        .expect("send");
}

/// Sends `request` with `"id": id` and returns the next message that carries
/// an `id` (lessons 09 and 10), within `WAIT`: the one that answers it, since
/// a request with an id gets exactly one answer and nothing else carries one.
pub async fn answer_to(
    client: &mut Client,
    id: u64,
    mut request: Value,
) -> Value {
    request["id"] = id.into();
    send_json(client, request).await;
    let answer = async {
        for _ in 0..10_000 {
            let message = next_json(client).await;
            if message.get("id").is_some() {
                return Some(message);
            }
        }
        None
    };
    match timeout(WAIT, answer).await {
        Ok(Some(message)) => {
            assert_eq!(message["id"], id, "an answer to another request");
            message
        }
        _ => panic!("no answer to request {id} in time"),
    }
}

/// Reads until the server's Close frame and then the end of the stream; returns
/// the frame.
pub async fn expect_close(client: &mut Client) -> Option<CloseFrame> {
    loop {
        match next(client).await {
            Some(Message::Close(frame)) => {
                // Keep reading: tungstenite sends our reply, then the stream
                // ends.
                if let Some(message) = next(client).await {
                    panic!("a message after Close: {message:?}");
                }
                return frame;
            }
            Some(_) => continue,
            None => panic!("the stream ended without a Close frame"),
        }
    }
}

/// Starts the closing handshake with `code` and returns the server's Close reply.
pub async fn close(
    client: &mut Client,
    code: u16,
    reason: &str,
) -> Option<CloseFrame> {
    let frame = CloseFrame {
        code: code.into(),
        reason: reason.into(),
    };
    timeout(WAIT, client.send(Message::Close(Some(frame))))
        .await
        .expect("the Close is sent in time")
        .expect("the Close is sent");
    expect_close(client).await
}

/// A message as one line of a transcript: `text "hello"`, `binary 00 01`,
/// `close 1000 "bye"`.
pub fn describe(message: &Message) -> String {
    let hex = |bytes: &[u8]| {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match message {
        Message::Text(text) => format!("text {:?}", text.as_str()),
        Message::Binary(bytes) => format!("binary {}", hex(bytes)),
        Message::Ping(bytes) => {
            format!("ping {:?}", String::from_utf8_lossy(bytes))
        }
        Message::Pong(bytes) => {
            format!("pong {:?}", String::from_utf8_lossy(bytes))
        }
        Message::Close(Some(frame)) => format!(
            "close {} {:?}",
            u16::from(frame.code),
            frame.reason.as_str()
        ),
        Message::Close(None) => "close (no code)".into(),
        Message::Frame(_) => "raw frame".into(),
    }
}

/// Joins a room of lesson 09 (or 10) without an `id`, and returns the snapshot
/// that answers.
pub async fn join(client: &mut Client, room: &str) -> Value {
    send_json(client, serde_json::json!({"type": "join", "room": room})).await;
    let snapshot = next_of(client, "snapshot").await;
    assert_eq!(snapshot["room"], room);
    snapshot
}
