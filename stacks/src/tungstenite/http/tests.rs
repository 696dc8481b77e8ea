//! The little HTTP of the bare tokio-tungstenite stack, on in-memory streams.

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

use super::{Rewind, Route, route};

/// Routes `request`, sent by a client on an in-memory stream; returns what
/// `route` decided and everything the client read back.
async fn routed(request: &[u8]) -> (Route<DuplexStream>, String) {
    let (mut client, server) = duplex(64 * 1024);
    client.write_all(request).await.expect("write");
    let route = route(server, None).await;
    let mut answer = Vec::new();
    if matches!(route, Route::Answered) {
        client.read_to_end(&mut answer).await.expect("read");
    }
    (route, String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn get_slash_is_the_page() {
    let (route, answer) = routed(b"GET /?x=1 HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(matches!(route, Route::Answered));
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with(ws_lessons::page::TRY_IT), "{answer}");
}

#[tokio::test]
async fn a_plain_get_on_ws_is_400_a_post_405_and_elsewhere_404() {
    let (_, answer) = routed(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    let (_, answer) = routed(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    let (_, answer) = routed(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
    let (_, answer) = routed(b"\x00\x01 nonsense\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
}

#[tokio::test]
async fn a_head_that_never_ends_is_refused_at_8_kib() {
    let endless = [b'a'; 9 * 1024];
    let (_, answer) = routed(&endless).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
}

#[tokio::test]
async fn an_upgrade_keeps_its_head_for_tungstenite() {
    let request =
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n\r\nmore";
    let (route, _) = routed(request).await;
    let Route::Upgrade(mut stream) = route else {
        panic!("not routed as an upgrade");
    };
    let mut replayed = vec![0; request.len()];
    stream.read_exact(&mut replayed).await.expect("read");
    assert_eq!(replayed, request);
}

#[tokio::test]
async fn rewind_reads_its_prefix_then_the_stream() {
    let (mut client, server) = duplex(64);
    let mut stream = Rewind::new("head".into(), server);
    client.write_all(b" and body").await.expect("write");
    let mut read = [0; 13];
    stream.read_exact(&mut read).await.expect("read");
    assert_eq!(&read, b"head and body");
}
