//! Lesson 11: a rolling restart that loses nothing. Two instances of lesson 10
//! on a real Redis, behind a real nginx; clients (lesson 06's, in rooms mode)
//! follow a room through nginx while each instance in turn is restarted with
//! SIGTERM, draining its connections with 1012 over `--drain`.
#![cfg(all(feature = "with-nginx", feature = "with-redis"))]

use ws_harness as common;

use std::time::Duration;

use common::{Nginx, Process, Redis, Running};
use nix::sys::signal::Signal;

const INSTANCE: &str = "10_scale_out";
const CLIENTS: usize = 4;

/// Lesson 10 on the shared Redis, on `addr`, draining over 1 s on SIGTERM.
async fn instance(redis: &Redis, addr: &str, produce: bool) -> Running {
    let url = redis.url();
    let mut args = vec!["--redis", url.as_str(), "--rate", "100"];
    args.extend(["--drain", "1s", "--ping-interval", "300ms"]);
    if produce {
        args.push("--produce");
    }
    Running::start_on(INSTANCE, addr, &args).await
}

/// Reads a client's output until it has printed `count` more changes, and
/// fails on a line that says changes were missed: the history (1,000 changes)
/// holds every change of a restart, so a rejoin must replay them all.
async fn changes(client: &mut Process, count: usize) {
    let mut seen = 0;
    while seen < count {
        let line = client.next_stdout().await;
        assert!(!line.contains("missed"), "{line}");
        assert!(!line.contains("anew"), "{line}");
        if line.starts_with("site-1 seq ") {
            seen += 1;
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
    let mut clients: Vec<Process> = (0..CLIENTS)
        .map(|_| Process::spawn("06_client", &args))
        .collect();
    for client in &mut clients {
        changes(client, 5).await;
    }

    // Each instance in turn: SIGTERM, a drain with 1012, an exit, and a new
    // process on the same address. The producer is restarted too.
    for (server, addr, produce) in [(&mut a, &at_a, true), (&mut b, &at_b, false)]
    {
        server.signal(Signal::SIGTERM);
        let status = server.wait_exit(Duration::from_secs(4)).await;
        assert!(status.success(), "{status}");
        *server = instance(&redis, addr, produce).await;
        for client in &mut clients {
            changes(client, 10).await;
        }
    }

    // Every client went through at least one restart of its instance: wait
    // until each has come back and printed changes since. lesson 06 checks
    // every change against the last itself: no gap, nothing twice, no error.
    for client in &mut clients {
        let mut log = Vec::new();
        for _ in 0..2_000 {
            log.extend(client.stderr_so_far());
            if log.iter().filter(|l| l.contains("connected to")).count() >= 2 {
                break;
            }
            changes(client, 1).await;
        }
        changes(client, 5).await;
        // Its warnings come from a thread of their own: read them all, after
        // it has exited.
        client.signal(Signal::SIGINT);
        assert!(client.wait_exit(common::WAIT).await.success());
        log.extend(client.stderr_to_end().await);
        let log = log.join("\n");
        assert!(
            log.matches("connected to").count() >= 2,
            "never back:\n{log}"
        );
        assert!(!log.contains("gap in"), "a change lost or repeated:\n{log}");
        assert!(!log.contains("ERROR"), "{log}");
    }
}
// ANCHOR_END: rolling
