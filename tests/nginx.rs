//! Behind a real nginx (`deploy/nginx.conf`, filled in by `common::Nginx`): the
//! upgrade goes through, the heartbeat keeps an idle connection past nginx's
//! `proxy_read_timeout` while silence gets it cut, and the servers see the
//! client's address, not nginx's, only from the proxy they trust.
#![cfg(feature = "with-nginx")]

use ws_harness as common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::{Client, Nginx, Running, WAIT, connect_from, next_data, next_json};
use futures::{SinkExt, StreamExt};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::{Error, Message};

/// nginx's `proxy_read_timeout` in these tests: 1 s instead of 60 s, so that a
/// connection outlives it several times over in a few seconds.
const IDLE: Duration = Duration::from_secs(1);

/// Addresses of 127.0.0.0/8, which Linux routes to the loopback interface.
/// nginx itself connects to the servers from 127.0.0.1.
fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Opens a WebSocket to `path` through `nginx`, from `source`.
async fn through(
    nginx: &Nginx,
    source: IpAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Client, Error> {
    connect_from(source, nginx.addr, &nginx.ws_url(path), headers).await
}

/// The status of a refused handshake.
fn refused_with(result: Result<Client, Error>) -> u16 {
    match result {
        Err(Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("the handshake failed without an HTTP answer: {e}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

// ANCHOR: upgrade
#[tokio::test]
async fn the_upgrade_and_the_page_go_through_nginx() {
    let server = Running::start("05_dashboard", &[]).await;
    let nginx = Nginx::start(&[server.addr], IDLE).await;
    let mut client = through(&nginx, loopback(1), "/ws", &[])
        .await
        .expect("the upgrade succeeds through nginx");
    let snapshot = next_json(&mut client).await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    let reading = next_json(&mut client).await;
    assert_eq!(reading["type"], "reading", "{reading}");
    // Plain HTTP goes through as well: the page and /stats.
    let page = common::http_get(nginx.addr, "/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("new WebSocket"), "{}", page.body);
    let stats = common::http_get(nginx.addr, "/stats").await.json();
    assert_eq!(stats["connections"], 1, "{stats}");
}
// ANCHOR_END: upgrade

/// Reads for `window`, answering the server's pings as any client library
/// does; returns the number of pings, or how the connection ended.
async fn stay_idle(client: &mut Client, window: Duration) -> Result<u32, String> {
    let end = Instant::now() + window;
    let mut pings = 0;
    loop {
        match timeout_at(end, client.next()).await {
            Err(_) => return Ok(pings), // the window is over, still open
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(other))) => return Err(format!("got {other:?}")),
            Ok(Some(Err(e))) => return Err(format!("failed: {e}")),
            Ok(None) => return Err("the stream ended".into()),
        }
    }
}

// ANCHOR: idle
#[tokio::test]
async fn an_idle_connection_outlives_proxy_read_timeout_because_the_server_pings()
{
    // Lesson 03 echoes, and sends nothing else but its pings: every 300 ms,
    // well within nginx's 1 s.
    let args = ["--ping-interval", "300ms", "--pong-timeout", "1s"];
    let server = Running::start("03_heartbeat", &args).await;
    let nginx = Nginx::start(&[server.addr], IDLE).await;
    let mut client = through(&nginx, loopback(1), "/ws", &[]).await.unwrap();
    // Three times nginx's timeout without a word from the client.
    let pings = stay_idle(&mut client, 3 * IDLE).await;
    let pings = pings.expect("the connection stays open");
    assert!(pings >= 5, "only {pings} pings in {:?}", 3 * IDLE);
    // Still connected, end to end.
    client.send(Message::text("still here")).await.unwrap();
    assert_eq!(next_data(&mut client).await, Message::text("still here"));
    assert!(!nginx.error_log().contains("upstream timed out"));
}

#[tokio::test]
async fn an_idle_connection_without_pings_is_cut_by_nginx_after_its_timeout() {
    // The same server, but its first ping would come after a minute.
    let args = ["--ping-interval", "60s"];
    let server = Running::start("03_heartbeat", &args).await;
    let nginx = Nginx::start(&[server.addr], IDLE).await;
    let mut client = through(&nginx, loopback(1), "/ws", &[]).await.unwrap();
    let connected = Instant::now();
    let ended = timeout(WAIT, client.next()).await;
    let after = connected.elapsed();
    // nginx closes both TCP connections, with no Close frame: to the client,
    // an abnormal closure (1006).
    match ended.expect("nginx cuts the connection within WAIT") {
        Some(Err(Error::Protocol(_) | Error::Io(_))) | None => {}
        other => panic!("expected the connection to be cut, got {other:?}"),
    }
    assert!(after >= IDLE / 2, "cut after {after:?}, before the timeout");
    // nginx says why, at level info.
    let line = nginx.wait_for_error_log("upstream timed out").await;
    let upgraded = "while proxying upgraded connection";
    assert!(line.contains(upgraded), "{line}");
    // And the server saw its end go too.
    let what = "the server's handler has ended";
    server.wait_for_stats(what, |s| s["connections"] == 0).await;
}
// ANCHOR_END: idle

#[tokio::test]
async fn a_page_served_through_nginx_is_the_same_origin_as_its_websocket() {
    // Lesson 08 compares the Origin with the Host the browser asked for, which
    // nginx passes on (`proxy_set_header Host $http_host`).
    let server = Running::start("08_production", &["--no-auth"]).await;
    let nginx = Nginx::start(&[server.addr], IDLE).await;
    let own = format!("http://{}", nginx.addr);
    let origin = [("Origin", own.as_str())];
    through(&nginx, loopback(1), "/ws", &origin).await.unwrap();
    let other = [("Origin", "http://elsewhere.example")];
    let refused = through(&nginx, loopback(1), "/ws", &other).await;
    assert_eq!(refused_with(refused), 403);
}

/// Lesson 08 with one connection per client address, and `extra` flags.
async fn one_per_address(extra: &[&str]) -> Running {
    let args = [&["--no-auth", "--max-per-address", "1"], extra].concat();
    Running::start("08_production", &args).await
}

/// Waits until lesson 08's `/stats` counts one open WebSocket for each of
/// `clients`, and none for any other address: the addresses it counted the
/// connections against.
async fn counted_against(server: &Running, clients: &[u8]) {
    let expected: serde_json::Map<_, _> = clients
        .iter()
        .map(|&last| (loopback(last).to_string(), 1.into()))
        .collect();
    let expected = serde_json::Value::Object(expected);
    let what = format!("one connection counted against each of {expected}");
    server
        .wait_for_stats(&what, |s| s["addresses"] == expected)
        .await;
}

// ANCHOR: client_addr
#[tokio::test]
async fn behind_a_trusted_nginx_each_client_is_counted_by_its_own_address() {
    let server = one_per_address(&["--trust-proxy", "127.0.0.1"]).await;
    let nginx = Nginx::start(&[server.addr], IDLE).await;
    let _first = through(&nginx, loopback(2), "/ws", &[]).await.unwrap();
    counted_against(&server, &[2]).await;
    // A second connection from 127.0.0.2 is one too many...
    let second = through(&nginx, loopback(2), "/ws", &[]).await;
    assert_eq!(refused_with(second), 429);
    // ...but another client behind the same nginx is welcome,
    let _other = through(&nginx, loopback(4), "/ws", &[]).await.unwrap();
    counted_against(&server, &[2, 4]).await;
    // and so is one that claims to be 127.0.0.2: nginx appends the address it
    // saw, and the server believes only that one.
    let forged = [("X-Forwarded-For", "127.0.0.2")];
    let _liar = through(&nginx, loopback(5), "/ws", &forged).await.unwrap();
    counted_against(&server, &[2, 4, 5]).await;
}

#[tokio::test]
async fn without_trust_proxy_every_client_behind_nginx_is_nginx() {
    let server = one_per_address(&[]).await;
    let nginx = Nginx::start(&[server.addr], IDLE).await;
    let _first = through(&nginx, loopback(2), "/ws", &[]).await.unwrap();
    counted_against(&server, &[1]).await;
    // Two different clients, one address: nginx's.
    let other = through(&nginx, loopback(4), "/ws", &[]).await;
    assert_eq!(refused_with(other), 429);
    counted_against(&server, &[1]).await;
}

#[tokio::test]
async fn a_forged_x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let server = one_per_address(&["--trust-proxy", "127.0.0.1"]).await;
    // Straight to the server, from 127.0.0.3, which is no trusted proxy.
    let (from, to, url) = (loopback(3), server.addr, server.ws_url());
    let forged = [("X-Forwarded-For", "6.6.6.6")];
    let _first = connect_from(from, to, &url, &forged).await.unwrap();
    counted_against(&server, &[3]).await;
    // Another made-up address does not make it another client.
    let forged = [("X-Forwarded-For", "7.7.7.7")];
    let second = connect_from(from, to, &url, &forged).await;
    assert_eq!(refused_with(second), 429);
    counted_against(&server, &[3]).await;
}
// ANCHOR_END: client_addr

/// The template's purpose: two instances of lesson 11 (lesson 10 with its
/// drain), sharing a Redis, behind one nginx.
#[cfg(feature = "with-redis")]
#[tokio::test]
async fn two_instances_of_lesson_11_behind_nginx_serve_one_room() {
    use common::{Redis, next_of, send_json};
    use serde_json::json;

    let redis = Redis::start().await;
    let url = redis.url();
    let args = ["--redis", url.as_str(), "--sites", "2", "--rate", "100"];
    let a =
        Running::start("11_deploy", &[&args[..], &["--produce"]].concat()).await;
    let b = Running::start("11_deploy", &args).await;
    let nginx = Nginx::start(&[a.addr, b.addr], IDLE).await;
    let mut clients = Vec::new();
    for user in ["ann", "bob"] {
        let path = format!("/ws?user={user}");
        let mut client = through(&nginx, loopback(1), &path, &[]).await.unwrap();
        send_json(&mut client, json!({"type": "join", "room": "site-1"})).await;
        next_of(&mut client, "snapshot").await;
        clients.push(client);
    }
    // least_conn: the second client went to the instance without one, as
    // nginx's two workers share their counts (`zone`).
    for server in [&a, &b] {
        let what = "one client on each instance";
        server.wait_for_stats(what, |s| s["connections"] == 1).await;
    }
    // A change made through one instance reaches both, with one number.
    let threshold = json!({"type": "set_threshold", "room": "site-1",
        "sensor": "sensor-2", "threshold": 42.5});
    send_json(&mut clients[0], threshold).await;
    let mut seqs = Vec::new();
    for client in &mut clients {
        let change = next_of(client, "threshold").await;
        assert_eq!(change["threshold"], 42.5);
        seqs.push(change["seq"].as_u64().expect("a seq"));
    }
    assert_eq!(seqs[0], seqs[1]);
}
