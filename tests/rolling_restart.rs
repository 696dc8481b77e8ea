//! Lesson 11: a rolling restart that loses nothing. Two instances of lesson 11
//! on a real Redis, behind a real nginx; clients (`10_rooms_client`, with
//! `--events`) follow a room through nginx while each instance in turn is restarted with
//! SIGTERM, draining its connections with 1012 over `--drain`.
#![cfg(all(feature = "with-nginx", feature = "with-redis"))]

use ws_harness as common;

use std::time::Duration;

use common::{Nginx, Process, Redis, Running, is_room_change};
use nix::sys::signal::Signal;
use serde_json::Value;

const INSTANCE: &str = "11_deploy";
const CLIENTS: usize = 4;

/// Lesson 11 on the shared Redis, on `addr`, draining over 1 s on SIGTERM.
async fn instance(redis: &Redis, addr: &str, produce: bool) -> Running {
    let url = redis.url();
    let mut args = vec!["--redis", url.as_str(), "--rate", "100"];
    args.extend(["--drain", "1s", "--ping-interval", "300ms"]);
    if produce {
        args.push("--produce");
    }
    Running::start_on(INSTANCE, addr, &args).await
}

/// Reads a client's events, each kept in `seen`, until it has shown `count`
/// more changes, and fails on one that says changes were missed: the history
/// (1,000 changes) holds every change of a restart, so a rejoin must replay
/// them all.
async fn changes(client: &mut Process, seen: &mut Vec<Value>, count: usize) {
    for _ in 0..count {
        let from = seen.len();
        client.events_until(seen, is_room_change).await;
        for event in &seen[from..] {
            assert_eq!(
                event["message"]["missed"].as_u64().unwrap_or(0),
                0,
                "{event}"
            );
            assert_ne!(event["event"], "renumbered", "{event}");
        }
    }
}

// ANCHOR: rolling
#[tokio::test]
async fn every_client_keeps_every_change_through_a_rolling_restart() {
    let redis = Redis::start().await;
    let mut a = instance(&redis, "127.0.0.1:0", true).await;
    let mut b = instance(&redis, "127.0.0.1:0", false).await;
    let (at_a, at_b) = (a.addr.to_string(), b.addr.to_string());
    let nginx = Nginx::start(&[a.addr, b.addr], Duration::from_secs(5)).await;
    let url = nginx.ws_url("/ws");
    let args = [url.as_str(), "--room", "site-1", "--max-backoff", "200ms"];
    let args = [&args[..], &["--events"]].concat();
    let mut clients: Vec<(Process, Vec<Value>)> = (0..CLIENTS)
        .map(|_| (Process::spawn("10_rooms_client", &args), Vec::new()))
        .collect();
    for (client, seen) in &mut clients {
        changes(client, seen, 5).await;
    }

    // Each instance in turn: SIGTERM, a drain with 1012, an exit, and a new
    // process on the same address. The producer is restarted too.
    for (server, addr, produce) in [(&mut a, &at_a, true), (&mut b, &at_b, false)]
    {
        server.signal(Signal::SIGTERM);
        let status = server.wait_exit(Duration::from_secs(4)).await;
        assert!(status.success(), "{status}");
        *server = instance(&redis, addr, produce).await;
        for (client, seen) in &mut clients {
            changes(client, seen, 10).await;
        }
    }

    // Every client went through at least one restart of its instance: wait
    // until each has come back and shown changes since. The rooms client
    // checks every change against the last itself: no gap, nothing twice, no
    // error.
    let connected = |seen: &[Value]| {
        seen.iter().filter(|e| e["event"] == "connected").count()
    };
    for (client, seen) in &mut clients {
        for _ in 0..2_000 {
            if connected(seen) >= 2 {
                break;
            }
            changes(client, seen, 1).await;
        }
        changes(client, seen, 5).await;
        client.signal(Signal::SIGINT);
        assert!(client.wait_exit(common::WAIT).await.success());
        seen.extend(client.events_to_end().await);
        assert!(connected(seen) >= 2, "never back: {seen:?}");
        let gap = seen.iter().find(|e| e["event"] == "gap");
        assert!(gap.is_none(), "a change lost or repeated: {gap:?}");
        let error = seen.iter().find(|e| e["message"]["type"] == "error");
        assert!(error.is_none(), "{error:?}");
    }
}
// ANCHOR_END: rolling
