//! The Redis harness itself (`harness/src/redis.rs`): a real `redis-server`
//! keeps its data across a stop and a crash, leaves nothing behind when
//! dropped, and two of them never share a port.
#![cfg(feature = "with-redis")]

use ws_harness as common;

use common::Redis;

/// Whether a `redis-server` (running, or exited and not yet reaped) has `pid`.
fn redis_server_with(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|name| name.trim() == "redis-server")
}

#[tokio::test]
async fn data_survives_a_stop_and_a_crash_and_drop_cleans_up() {
    let mut redis = Redis::start().await;
    let url = redis.url();
    assert_eq!(url, format!("redis://127.0.0.1:{}", redis.port()));
    assert_eq!(
        redis.command(&["SET", "greeting", "hello"]).await,
        "+OK\r\n"
    );

    let first = redis.pid();
    redis.stop().await;
    assert!(!redis_server_with(first), "stop waits for the exit");
    redis.start_again().await;
    assert_eq!(redis.url(), url, "the same address after a restart");
    assert_eq!(redis.command(&["GET", "greeting"]).await, "$5\r\nhello\r\n");

    // A crash: every acknowledged write is on disk already.
    assert_eq!(redis.command(&["RPUSH", "list", "a", "b"]).await, ":2\r\n");
    redis.kill();
    redis.start_again().await;
    assert_eq!(
        redis.command(&["LRANGE", "list", "0", "-1"]).await,
        "*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
    assert_eq!(redis.command(&["DBSIZE"]).await, ":2\r\n");

    let (pid, dir) = (redis.pid(), redis.dir().to_owned());
    drop(redis);
    assert!(!redis_server_with(pid), "dropping kills redis-server");
    assert!(!dir.exists(), "dropping removes {}", dir.display());
}

#[tokio::test]
async fn two_at_once_get_their_own_port_and_data() {
    let (a, b) = tokio::join!(Redis::start(), Redis::start());
    assert_ne!(a.url(), b.url());
    assert_ne!(a.dir(), b.dir());
    assert_eq!(a.command(&["SET", "only-in", "a"]).await, "+OK\r\n");
    assert_eq!(b.command(&["DBSIZE"]).await, ":0\r\n");
    assert_eq!(b.command(&["GET", "only-in"]).await, "$-1\r\n");

    // A reply of nested arrays arrives whole: one entry, its id and its fields.
    b.command(&["XADD", "readings", "*", "value", "42"]).await;
    assert_eq!(b.command(&["XLEN", "readings"]).await, ":1\r\n");
    let entries = b.command(&["XRANGE", "readings", "-", "+"]).await;
    assert!(entries.starts_with("*1\r\n*2\r\n$"), "{entries:?}");
    assert!(entries.ends_with("*2\r\n$5\r\nvalue\r\n$2\r\n42\r\n"));
}
