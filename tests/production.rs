//! Lesson 08, `examples/08_production/`: every defence, tested from outside.

use ws_harness as common;

use std::time::Duration;

use common::{
    Client, Running, WAIT, close_code_after, expect_close, http_post_form,
    masked_frame, next, next_of, raw_upgrade_with, silent_peer, unmasked_frame,
};
use futures::SinkExt;
use nix::sys::signal::Signal;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use ws_lessons::protocol::RECENT;

const EXAMPLE: &str = "08_production";
const TOKEN: &str = "test-token-3f9a";

/// The server the bad-input table runs against: small limits, so that they are
/// quick to hit.
async fn strict_server() -> Running {
    let args = [
        "--token",
        TOKEN,
        "--max-frame",
        "1KiB",
        "--max-message",
        "4KiB",
        "--rate-limit",
        "20",
        "--burst",
        "20",
    ];
    Running::start(EXAMPLE, &args).await
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// A tokio-tungstenite client that presents the token.
async fn connect(server: &Running) -> Client {
    server.connect_with(&[("Authorization", &bearer())]).await
}

/// `count` clients with the token, once the gauge counts them all.
async fn connect_many(server: &Running, count: u64) -> Vec<Client> {
    let mut clients = Vec::new();
    for _ in 0..count {
        clients.push(connect(server).await);
    }
    server
        .wait_for_stats("every client is connected", |s| {
            s["connections"] == count
        })
        .await;
    clients
}

/// Proof that the server still serves: a new client gets its snapshot and an ack.
async fn still_serves(server: &Running) {
    let mut client = connect(server).await;
    let subscribe = r#"{"type":"subscribe","id":42,"sensors":[]}"#;
    client.send(Message::text(subscribe)).await.expect("send");
    let ack = next_of(&mut client, "ack").await;
    assert_eq!(ack["id"], 42, "{ack}");
}

// ANCHOR: table
#[tokio::test]
async fn bad_frames_get_the_right_close_code_and_the_server_carries_on() {
    let server = strict_server().await;
    let big = vec![b'x'; 2000];
    let fragmented_over_the_limit: Vec<u8> = [
        masked_frame(0x02, &[b'x'; 1000]), // binary, more to come
        masked_frame(0x00, &[b'x'; 1000]), // continuation
        masked_frame(0x00, &[b'x'; 1000]),
        masked_frame(0x00, &[b'x'; 1000]),
        // The final continuation: 5000 bytes in all.
        masked_frame(0x80, &[b'x'; 1000]),
    ]
    .concat();
    let table: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "invalid UTF-8 in a text frame",
            masked_frame(0x81, &[0xC3, 0x28]),
            1007,
        ),
        (
            "an unmasked client frame",
            unmasked_frame(0x81, b"hello"),
            1002,
        ),
        (
            "a frame over the 1 KiB frame limit",
            masked_frame(0x82, &big),
            1009,
        ),
        (
            "a fragmented message over the 4 KiB limit",
            fragmented_over_the_limit,
            1009,
        ),
        ("a reserved opcode", masked_frame(0x83, b"?"), 1002),
        (
            "a control frame over 125 bytes",
            masked_frame(0x89, &[0; 126]),
            1002,
        ),
        ("a fragmented ping", masked_frame(0x09, b"ping"), 1002),
        ("RSV bits set", masked_frame(0xC1, b"hi"), 1002),
        (
            "a continuation with nothing to continue",
            masked_frame(0x80, b"x"),
            1002,
        ),
        (
            "an invalid close code",
            masked_frame(0x88, &999u16.to_be_bytes()),
            1002,
        ),
    ];
    // ANCHOR_END: table
    // ANCHOR: table_check
    for (case, bytes, expected) in table {
        let (tcp, response) =
            raw_upgrade_with(server.addr, &[("Authorization", &bearer())]).await;
        assert_eq!(response.status, 101, "{case}: {response}");
        assert_eq!(
            close_code_after(tcp, &bytes).await,
            Some(expected),
            "{case}"
        );
        still_serves(&server).await;
    }
}
// ANCHOR_END: table_check

/// Header lines for a hand-made upgrade request.
type Headers = Vec<(&'static str, String)>;

// ANCHOR: refusals
#[tokio::test]
async fn refused_upgrades_get_the_right_status_and_the_server_carries_on() {
    let server = strict_server().await;
    let own_origin = format!("http://{}", server.addr);
    let table: Vec<(&str, Headers, u16)> = vec![
        (
            "a cross-site Origin",
            vec![
                ("Authorization", bearer()),
                ("Origin", "https://evil.example".into()),
            ],
            403,
        ),
        ("no token", vec![("Origin", own_origin.clone())], 401),
        (
            "a wrong token",
            vec![("Authorization", "Bearer guess".into())],
            401,
        ),
        (
            "a wrong session cookie",
            vec![("Cookie", "session=guess".into())],
            401,
        ),
        (
            "the right token, same origin",
            vec![("Authorization", bearer()), ("Origin", own_origin.clone())],
            101,
        ),
        (
            "the right session cookie",
            vec![("Cookie", format!("theme=dark; session={TOKEN}"))],
            101,
        ),
    ];
    for (case, headers, expected) in table {
        let headers: Vec<(&str, &str)> =
            headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (_, response) = raw_upgrade_with(server.addr, &headers).await;
        assert_eq!(response.status, expected, "{case}: {response}");
        still_serves(&server).await;
    }
    // A plain GET on /ws is told what the URL wants.
    let plain = server.get("/ws").await;
    assert_eq!(plain.status, 426, "{plain}");
    assert!(
        plain
            .header("upgrade")
            .is_some_and(|value| value.eq_ignore_ascii_case("websocket")),
        "{plain}"
    );
    still_serves(&server).await;
}
// ANCHOR_END: refusals

// ANCHOR: flood
#[tokio::test]
async fn a_message_flood_is_closed_with_1008() {
    let server = strict_server().await;
    let mut client = connect(&server).await;
    // 20 a second with a burst of 20: the 21st message in a row is over the
    // limit.
    for id in 0..60 {
        let request = format!(r#"{{"type":"subscribe","id":{id},"sensors":[]}}"#);
        if client.send(Message::text(request)).await.is_err() {
            break; // closed already
        }
    }
    let frame = expect_close(&mut client).await.expect("a Close frame");
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(frame.reason.as_str(), "rate limit exceeded");
    still_serves(&server).await;
}
// ANCHOR_END: flood

#[tokio::test]
async fn origins_follow_the_allow_list_and_the_no_origin_rule() {
    let args = [
        "--token",
        TOKEN,
        "--allow-origin",
        "https://dash.example",
        "--no-origin",
        "deny",
    ];
    let server = Running::start(EXAMPLE, &args).await;
    let auth = ("Authorization", bearer());
    for (origin, expected) in [
        (Some("https://dash.example"), 101),
        (Some("https://other.example"), 403),
        (None, 403),
    ] {
        let mut headers = vec![(auth.0, auth.1.as_str())];
        headers.extend(origin.map(|o| ("Origin", o)));
        let (_, response) = raw_upgrade_with(server.addr, &headers).await;
        assert_eq!(response.status, expected, "{origin:?}: {response}");
    }
}

// ANCHOR: login
#[tokio::test]
async fn a_browser_signs_in_once_and_its_cookie_opens_the_websocket() {
    let mut server = Running::start(EXAMPLE, &["--token", TOKEN]).await;
    let refused = http_post_form(server.addr, "/login", "token=guess").await;
    assert_eq!(refused.status, 401, "{refused}");

    let signed_in =
        http_post_form(server.addr, "/login", &format!("token={TOKEN}")).await;
    assert_eq!(signed_in.status, 303, "{signed_in}");
    let cookie = signed_in.header("set-cookie").expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("name=value");
    let origin = format!("http://{}", server.addr);
    let (_, response) = raw_upgrade_with(
        server.addr,
        &[("Cookie", session), ("Origin", &origin)],
    )
    .await;
    assert_eq!(response.status, 101, "{response}");

    // Nothing the server logged, on any of these paths, contains the token.
    for line in server.log_so_far() {
        assert!(!line.contains(TOKEN), "the token reached the log: {line}");
    }
}
// ANCHOR_END: login

#[tokio::test]
async fn the_connection_limit_answers_503() {
    let server =
        Running::start(EXAMPLE, &["--token", TOKEN, "--max-connections", "2"])
            .await;
    let _first = connect(&server).await;
    let _second = connect(&server).await;
    let (_, response) =
        raw_upgrade_with(server.addr, &[("Authorization", &bearer())]).await;
    assert_eq!(response.status, 503, "{response}");
    assert_eq!(response.header("retry-after"), Some("5"), "{response}");
    drop(_first);
    server
        .wait_for_stats("a slot is free again", |s| s["connections"] == 1)
        .await;
    let (_, response) =
        raw_upgrade_with(server.addr, &[("Authorization", &bearer())]).await;
    assert_eq!(response.status, 101, "{response}");
}

#[tokio::test]
async fn fifty_clients_that_vanish_leave_the_gauge_at_zero() {
    let server = Running::start(EXAMPLE, &["--token", TOKEN]).await;
    let clients = connect_many(&server, 50).await;
    drop(clients); // no Close frames: the TCP connections just go away
    server
        .wait_for_stats("all fifty are gone", |s| s["connections"] == 0)
        .await;
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_dropped_even_while_a_send_is_blocked() {
    let args = [&["--token", TOKEN][..], &Running::PUSHING_FAST].concat();
    let mut server = Running::start(EXAMPLE, &args).await;
    let bearer = bearer();
    let bound = Running::STUCK_PEER_BOUND;
    server
        .drops_a_stuck_peer_within(&[("Authorization", &bearer)], bound)
        .await;
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped_in_time() {
    let args = [
        "--token",
        TOKEN,
        "--ping-interval",
        "200ms",
        "--pong-timeout",
        "200ms",
    ];
    let server = Running::start(EXAMPLE, &args).await;
    let elapsed = silent_peer(server.addr, &[("Authorization", &bearer())])
        .await
        .dropped_after;
    assert!(
        elapsed >= Duration::from_millis(400),
        "dropped early, after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(400) + common::LATE,
        "dropped late, after {elapsed:?}"
    );
}

#[tokio::test]
async fn twenty_clients_all_get_1001_on_shutdown() {
    let mut server = Running::start(EXAMPLE, &["--token", TOKEN]).await;
    let mut clients = connect_many(&server, 20).await;
    server.shut_down_with(Signal::SIGTERM, &mut clients).await;
}

#[tokio::test]
async fn no_token_and_no_no_auth_is_refused_at_start_up() {
    let (status, _, stderr) = common::run_to_exit(EXAMPLE, &[]).await;
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("set WS_LESSONS_TOKEN"), "{stderr}");
    let (status, _, stderr) =
        common::run_to_exit(EXAMPLE, &["--max-message", "lots"]).await;
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("--max-message"), "{stderr}");
}

/// The limit on what a client sends does not limit what the dashboard sends:
/// a snapshot of 100 sensors with their recent values is some 47 KB, far over
/// a 1 KiB `--max-message`.
#[tokio::test]
async fn a_full_snapshot_goes_out_whatever_the_message_limit() {
    let args = [
        "--no-auth",
        "--max-message",
        "1KiB",
        "--max-frame",
        "1KiB",
        "--sensors",
        "100",
        "--rate",
        "20000",
    ];
    let server = Running::start(EXAMPLE, &args).await;
    let full = |sensor: &serde_json::Value| {
        sensor["recent"].as_array().map(Vec::len) == Some(RECENT)
    };
    // New clients until one's snapshot has every sensor's recent values.
    let deadline = Instant::now() + WAIT;
    for _ in 0..1000 {
        let mut client = server.connect().await;
        let snapshot = next_of(&mut client, "snapshot").await;
        let sensors = snapshot["sensors"].as_array().expect("sensors");
        if sensors.len() == 100 && sensors.iter().all(full) {
            assert!(snapshot.to_string().len() > 32 * 1024);
            return;
        }
        assert!(Instant::now() < deadline, "not full in time: {snapshot}");
    }
    panic!("no full snapshot in 1000 connections");
}

#[tokio::test]
async fn echo_mode_echoes() {
    let server = Running::start(EXAMPLE, &["--no-auth", "--echo"]).await;
    let mut client = server.connect().await;
    client.send(Message::text("hello")).await.unwrap();
    assert_eq!(next(&mut client).await, Some(Message::text("hello")));
}
