//! Lesson 01, `examples/01_echo.rs`, driven as a reader runs it; and the same
//! tests, one body each, against lesson 01 on the other stacks (`stacks/`, with
//! `--features stacks`).

use ws_harness as common;

use common::{Program, Running, close, describe, next, next_data};
use futures::SinkExt;
use nix::sys::signal::Signal;
use tokio_tungstenite::tungstenite::Message;

const EXAMPLE: &str = "01_echo";

// ANCHOR: programs
common::contract! {
    tests [
        echoes_text_and_binary_and_closes_with_1000,
        answers_ping_with_pong_and_does_not_echo_control_frames,
        echoes_large_messages_whole,
        ctrl_c_sends_1001_to_open_clients_and_exits_zero,
        sigterm_also_shuts_down_cleanly,
        serves_the_try_it_page_and_refuses_plain_get_on_ws,
        accepts_the_handshake_of_rfc_6455,
        bad_command_lines_fail_with_a_clear_message,
        help_describes_the_address_argument,
        a_session_transcript,
        an_echo_pushes_back_on_a_peer_that_does_not_read_and_recovers,
        a_signal_right_after_the_startup_line_is_a_clean_shutdown,
        a_half_sent_http_request_does_not_hold_up_the_shutdown,
        closes_the_connection_after_a_clients_close,
    ]
    programs {
        lesson_01: Program::Example(EXAMPLE),
        #[cfg(feature = "stacks")]
        tungstenite: Program::Stack("tungstenite_01_echo"),
        #[cfg(feature = "stacks")]
        actix: Program::Stack("actix_01_echo"),
    }
}
// ANCHOR_END: programs

// ANCHOR: echo_test
async fn echoes_text_and_binary_and_closes_with_1000(program: Program) {
    let server = Running::start(program, &[]).await;
    let mut client = server.connect().await;

    client.send(Message::text("hello")).await.unwrap();
    assert_eq!(next_data(&mut client).await, Message::text("hello"));

    client
        .send(Message::binary(vec![0, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        next_data(&mut client).await,
        Message::binary(vec![0, 1, 2, 255])
    );

    // The server keeps reading after our Close, so its reply reaches us: 1000,
    // not 1006.
    let reply = close(&mut client, 1000, "bye")
        .await
        .expect("a Close frame");
    assert_eq!(u16::from(reply.code), 1000);
}
// ANCHOR_END: echo_test

async fn answers_ping_with_pong_and_does_not_echo_control_frames(
    program: Program,
) {
    let server = Running::start(program, &[]).await;
    let mut client = server.connect().await;

    client
        .send(Message::Ping("are you there".into()))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        Some(Message::Pong("are you there".into()))
    );

    // An unsolicited Pong must not come back either. Send it, then a text: the
    // very next frame must be the text's echo, not a Pong or a Ping.
    client
        .send(Message::Pong("unsolicited".into()))
        .await
        .unwrap();
    client.send(Message::text("after the pong")).await.unwrap();
    assert_eq!(
        next(&mut client).await,
        Some(Message::text("after the pong"))
    );

    // The Ping's Pong came back once, not twice: the next frame is the Close
    // reply.
    let reply = close(&mut client, 1000, "").await.expect("a Close frame");
    assert_eq!(u16::from(reply.code), 1000);
}

async fn echoes_large_messages_whole(program: Program) {
    let server = Running::start(program, &[]).await;
    let mut client = server.connect().await;
    let big = "x".repeat(1 << 20);
    client.send(Message::text(big.clone())).await.unwrap();
    assert_eq!(next_data(&mut client).await, Message::text(big));
}

/// The closing handshake that a client starts ends with the server closing the
/// TCP connection, at once: a client waits for that.
async fn closes_the_connection_after_a_clients_close(program: Program) {
    let server = Running::start(program, &[]).await;
    server.hangs_up_after_a_clients_close().await;
}

async fn ctrl_c_sends_1001_to_open_clients_and_exits_zero(program: Program) {
    let mut server = Running::start(program, &[]).await;
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    // A round trip on each, so both handlers are surely running.
    for client in [&mut first, &mut second] {
        client.send(Message::text("ready")).await.unwrap();
        assert_eq!(next_data(client).await, Message::text("ready"));
    }

    server
        .shut_down_with(Signal::SIGINT, &mut [first, second])
        .await;
}

async fn sigterm_also_shuts_down_cleanly(program: Program) {
    let mut server = Running::start(program, &[]).await;
    let client = server.connect().await;
    server.shut_down_with(Signal::SIGTERM, &mut [client]).await;
}

#[tokio::test]
async fn a_client_that_vanishes_leaves_nothing_behind() {
    let server = Running::start(EXAMPLE, &[]).await;
    let idle = server.stats().await;
    let client = server.connect().await;
    server
        .wait_for_stats("the connection is counted", |s| s["connections"] == 1)
        .await;
    drop(client); // no Close frame: the TCP connection just goes away
    let after = server
        .wait_for_stats("the connection is gone", |s| {
            s["connections"] == 0 && s["tasks"] == idle["tasks"]
        })
        .await;
    assert_eq!(after["tasks"], idle["tasks"]);
}

async fn serves_the_try_it_page_and_refuses_plain_get_on_ws(program: Program) {
    let server = Running::start(program, &[]).await;
    let page = server.get("/").await;
    assert_eq!(page.status, 200, "{page}");
    assert!(page.body.contains("new WebSocket(url)"));
    assert!(
        !page.body.contains("<script src"),
        "the page loads no external script"
    );

    let plain = server.get("/ws").await;
    assert_eq!(plain.status, 400, "{plain}");
}

/// The accept value of RFC 6455, section 1.3, for the key it gives.
async fn accepts_the_handshake_of_rfc_6455(program: Program) {
    let server = Running::start(program, &[]).await;
    let (_tcp, response) = common::raw_upgrade(server.addr).await;
    assert_eq!(response.status, 101, "{response}");
    assert!(
        response
            .head
            .to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{response}"
    );
}

async fn bad_command_lines_fail_with_a_clear_message(program: Program) {
    let (status, _, stderr) =
        common::run_to_exit(program, &["not-an-address"]).await;
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("invalid value 'not-an-address'"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A port in use: take one with a running server, then start a second on the
    // same port.
    let server = Running::start(program, &[]).await;
    let taken = server.addr.to_string();
    let (status, stdout, stderr) = common::run_to_exit(program, &[&taken]).await;
    assert_eq!(status.code(), Some(1));
    assert!(stdout.is_empty(), "no start-up line on failure: {stdout}");
    assert!(
        stderr.contains(&format!("cannot listen on {taken}")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

async fn help_describes_the_address_argument(program: Program) {
    let (status, stdout, _) = common::run_to_exit(program, &["--help"]).await;
    assert!(status.success());
    assert!(
        stdout.contains("[ADDR]") && stdout.contains("127.0.0.1:3000"),
        "{stdout}"
    );
}

/// Replaces the port the system chose with `PORT`, so transcripts compare across
/// runs.
fn without_port(text: &str, server: &Running) -> String {
    text.replace(&server.addr.port().to_string(), "PORT")
}

// ANCHOR: transcript
async fn a_session_transcript(program: Program) {
    let server = Running::start(program, &[]).await;
    let mut client = server.connect().await;
    let mut transcript = vec![without_port(&server.startup_line, &server)];

    let sent = [
        Message::text("hello"),
        Message::binary(b"\x00\x01".to_vec()),
        Message::Ping("heartbeat?".into()),
        Message::text("héllo, wörld"),
    ];
    for message in sent {
        transcript.push(format!("client → {}", describe(&message)));
        client.send(message).await.unwrap();
        let reply = next(&mut client).await.expect("a reply");
        transcript.push(format!("server → {}", describe(&reply)));
    }
    transcript.push("client → close 1000 \"bye\"".into());
    let reply = close(&mut client, 1000, "bye").await;
    transcript.push(format!("server → {}", describe(&Message::Close(reply))));

    // One snapshot for every stack: the file does not depend on the module.
    insta::with_settings!({ prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(
            "echo__a_session_transcript",
            transcript.join("\n")
        );
    });
}
// ANCHOR_END: transcript

// ANCHOR: handshake
/// The opening handshake as it crosses the wire: the request of RFC 6455, section
/// 1.3, and our server's `101 Switching Protocols`, whose accept value the RFC
/// also gives.
#[tokio::test]
async fn the_upgrade_handshake() {
    let server = Running::start(EXAMPLE, &[]).await;
    let (_tcp, response) = common::raw_upgrade(server.addr).await;
    let head: Vec<&str> = response
        .head
        .lines()
        .filter(|line| !line.starts_with("date:")) // the only line that changes
        .collect();
    assert!(head.contains(&"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    let request = common::upgrade_request("127.0.0.1:PORT");
    insta::assert_snapshot!(format!("{request}{}", head.join("\n")));
}
// ANCHOR_END: handshake

// ANCHOR: no_deadlock
/// An echo that awaits each `send` does not deadlock by itself. While the peer
/// writes without reading, the echo's `send` waits for room, so it stops reading
/// too, and TCP pushes back on the peer: the peer's writes stop completing. As
/// soon as the peer reads, everything flows.
async fn an_echo_pushes_back_on_a_peer_that_does_not_read_and_recovers(
    program: Program,
) {
    use futures::StreamExt;
    use std::time::Duration;
    use tokio::time::timeout;

    // 48 MiB each way, more than every buffer between us holds.
    const MESSAGES: usize = 768;
    const SIZE: usize = 64 * 1024;
    let payload = vec![7u8; SIZE];
    let server = Running::start(program, &[]).await;
    let (mut sink, mut stream) = server.connect().await.split();

    // Write without reading until a write makes no progress for half a second.
    let mut sent = 0;
    while sent < MESSAGES {
        let write = sink.send(Message::binary(payload.clone()));
        match timeout(Duration::from_millis(500), write).await {
            Ok(result) => result.expect("the write succeeds"),
            // The message is queued in our sink, waiting for room; it is sent
            // later.
            Err(_) => break,
        }
        sent += 1;
    }
    assert!(
        sent < MESSAGES,
        "{MESSAGES} messages went through with no one reading"
    );
    let sent_before_reading = sent + 1; // the one that stalled counts too

    // Now read, concurrently with writing the rest: every message comes back.
    let reader = tokio::spawn(async move {
        let mut echoed = 0;
        while echoed < MESSAGES {
            match timeout(common::WAIT, stream.next()).await {
                Ok(Some(Ok(Message::Binary(data)))) if data.len() == SIZE => {}
                other => panic!("expected an echo, got {other:?}"),
            }
            echoed += 1;
        }
        echoed
    });
    for _ in sent_before_reading..MESSAGES {
        let write = sink.send(Message::binary(payload.clone()));
        timeout(common::WAIT, write).await.unwrap().unwrap();
    }
    timeout(common::WAIT, sink.flush()).await.unwrap().unwrap();
    assert_eq!(reader.await.unwrap(), MESSAGES);
}
// ANCHOR_END: no_deadlock

async fn a_signal_right_after_the_startup_line_is_a_clean_shutdown(
    program: Program,
) {
    // Whoever reads the start-up line may signal at once: the handlers are
    // already in place.
    let mut server = Running::start(program, &[]).await;
    server.signal(Signal::SIGINT);
    let status = server.wait_exit(std::time::Duration::from_secs(2)).await;
    assert!(status.success(), "exit status {status}");
}

async fn a_half_sent_http_request_does_not_hold_up_the_shutdown(
    program: Program,
) {
    use tokio::io::AsyncWriteExt;
    let mut server = Running::start(program, &[]).await;
    // A client that starts a request and never finishes it.
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: slow\r\n")
        .await
        .unwrap();
    // The server has accepted it once it serves a request that came after it.
    assert_eq!(server.get("/").await.status, 200);
    server.shut_down_with(Signal::SIGINT, &mut []).await;
    drop(slow);
}
