//! A server whose log reader has gone away: a log collector that died, a
//! `2>&1 | head` that ended. Each of its log writes then fails (EPIPE). None
//! may panic, block or stop a task: the server keeps serving, and still stops
//! on a signal with Close 1001 and exit status 0 within 2 s.
//!
//! Every server lesson that runs without Redis, lessons 10 and 11 with
//! `--features with-redis`, and the stacks' programs with `--features stacks`.

use ws_harness as common;

use common::{Program, Redis, Running};
use nix::sys::signal::Signal;

common::contract! {
    tests [
        keeps_serving_and_stops_cleanly_with_no_one_reading_its_logs,
    ]
    programs {
        lesson_01: Program::Example("01_echo"),
        lesson_02: Program::Example("02_split_spawn"),
        lesson_02_one_owner: Program::Example("02_one_owner"),
        lesson_03: Program::Example("03_heartbeat"),
        lesson_04: Program::Example("04_backpressure"),
        lesson_05: Program::Example("05_dashboard"),
        lesson_07: Program::Example("07_long_polling"),
        lesson_08: Program::Example("08_production"),
        lesson_09: Program::Example("09_rooms"),
        #[cfg(feature = "with-redis")]
        lesson_10: Program::Example("10_scale_out"),
        #[cfg(feature = "with-redis")]
        lesson_11: Program::Example("11_deploy"),
        #[cfg(feature = "stacks")]
        tungstenite_01: Program::Stack("tungstenite_01_echo"),
        #[cfg(feature = "stacks")]
        tungstenite_03: Program::Stack("tungstenite_03_heartbeat"),
        #[cfg(feature = "stacks")]
        actix_01: Program::Stack("actix_01_echo"),
        #[cfg(feature = "stacks")]
        actix_03: Program::Stack("actix_03_heartbeat"),
    }
}

/// Lesson 08's token, for its flag and its clients' header.
const TOKEN: &str = "test-token-5d1e";

async fn keeps_serving_and_stops_cleanly_with_no_one_reading_its_logs(
    program: Program,
) {
    // Lessons 10 and 11 need a Redis. Lesson 11 stays up for a drain on
    // SIGTERM: Ctrl-C is its signal for closing at once with 1001.
    let redis = match program.name() {
        "10_scale_out" | "11_deploy" => Some(Redis::start().await),
        _ => None,
    };
    let url = redis.as_ref().map(Redis::url);
    let (args, signal) = match (program.name(), &url) {
        ("08_production", _) => (vec!["--token", TOKEN], Signal::SIGTERM),
        ("10_scale_out", Some(url)) => (vec!["--redis", url], Signal::SIGTERM),
        ("11_deploy", Some(url)) => (vec!["--redis", url], Signal::SIGINT),
        _ => (vec![], Signal::SIGTERM),
    };
    // Everything at trace level: every connection and request is logged, by
    // the program or by the libraries under it.
    let mut server = Running::start_logging(program, &args, "trace").await;
    server.close_log().await;

    // Each step writes log lines, and each of those writes fails.
    let mut clients = Vec::new();
    for _ in 0..2 {
        if let Some(client) = connect(&server, program).await {
            clients.push(client);
        }
    }
    let page = server.get("/").await;
    assert_eq!(page.status, 200, "still serving: {page}");

    // Signalled, it logs "shutdown signal received" and closes everyone.
    server.shut_down_with(signal, &mut clients).await;
    drop(redis);
}

/// A WebSocket to `program`, as its clients open one; `None` for lesson 07,
/// which has none.
async fn connect(server: &Running, program: Program) -> Option<common::Client> {
    let bearer = format!("Bearer {TOKEN}");
    Some(match program.name() {
        "07_long_polling" => return None,
        "08_production" => {
            server.connect_with(&[("Authorization", &bearer)]).await
        }
        "09_rooms" | "10_scale_out" | "11_deploy" => {
            server.connect_as("ann").await
        }
        _ => server.connect().await,
    })
}
