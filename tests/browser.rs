//! The dashboard page in a real headless Chromium, driven through chromedriver
//! (WebDriver) by fantoccini: its live values, a command sent from the page, and
//! reconnection. The rooms page has its own file, `tests/browser_rooms.rs`.
//!
//! Needs `chromium` and `chromedriver` on the machine, so it runs only with the
//! `browser` feature: `cargo test --features browser --test browser`. CI always
//! runs it.
#![cfg(feature = "browser")]

use ws_harness as common;

use std::time::Duration;

use common::browser::Locator;
use common::browser::{open_browser, start_driver, text_of, wait_for};
use common::{Running, WAIT, next_of};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// An XPath that matches a sensor's card when its threshold reads `value`.
fn threshold_of(sensor: &str, value: &str) -> String {
    let card = format!("//section[@data-sensor='{sensor}']");
    format!("{card}//span[@class='threshold' and text()='{value}']")
}

/// Three sensors, and a ping every 300 ms, which only a page that answers pings
/// survives.
const ARGS: [&str; 8] = [
    "--sensors",
    "3",
    "--rate",
    "30",
    "--ping-interval",
    "300ms",
    "--pong-timeout",
    "300ms",
];

// ANCHOR: browser
#[tokio::test]
async fn the_dashboard_page_shows_live_values_sends_commands_and_reconnects() {
    let mut server = Running::start("05_dashboard", &ARGS).await;
    // Let the server record a history before the page opens: readings go round
    // the three sensors, so by change 36 sensor-1 has had 12.
    let mut watcher = server.connect().await;
    for _ in 0..1_000 {
        if next_of(&mut watcher, "reading").await["seq"].as_u64() >= Some(36) {
            break;
        }
    }
    // From here on the watcher reads in a task of its own, so that it answers
    // the server's pings too, and hands over the threshold changes it sees.
    let (changes, mut thresholds) =
        tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        for _ in 0..100_000 {
            let change = next_of(&mut watcher, "threshold").await;
            if changes.send(change).is_err() {
                break;
            }
        }
    });
    let driver = start_driver().await;
    let browser = open_browser(&driver).await;
    browser
        .goto(&format!("http://{}/", server.addr))
        .await
        .expect("the page loads");

    // Connected, and the charts drawn at once from the snapshot's history.
    wait_for(&browser, "//span[@id='status' and text()='live']").await;
    let card = "//section[@data-sensor='sensor-1' and @data-snapshot-points]";
    wait_for(&browser, card).await;
    let points = browser
        .find(Locator::XPath(card))
        .await
        .expect("the card")
        .attr("data-snapshot-points")
        .await
        .expect("the attribute");
    let points: usize = points.and_then(|p| p.parse().ok()).unwrap_or(0);
    assert!(points >= 12, "the chart began with {points} points");

    // The values move.
    let value = "//section[@data-sensor='sensor-1']//div[@class='value']";
    wait_for(&browser, &format!("{value}[text()!='–']")).await;
    let first = text_of(&browser, value).await;
    wait_for(&browser, &format!("{value}[text()!='{first}']")).await;

    // ANCHOR_END: browser
    // ANCHOR: browser_command
    // A command from the page reaches the server, and through it every client.
    let input = "//section[@data-sensor='sensor-2']//input";
    browser
        .find(Locator::XPath(input))
        .await
        .unwrap()
        .send_keys("42.5")
        .await
        .unwrap();
    browser
        .find(Locator::XPath("//section[@data-sensor='sensor-2']//button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&browser, &threshold_of("sensor-2", "42.50")).await;
    let change = tokio::time::timeout(WAIT, thresholds.recv()).await;
    let change = change.expect("in time").expect("the watcher's threshold");
    assert_eq!(
        (&change["sensor"], &change["threshold"]),
        (&json!("sensor-2"), &json!(42.5))
    );

    // The page answered every ping by itself: had the server dropped it, the
    // page would have noted the close.
    let notes = text_of(&browser, "//div[@id='notes']").await;
    assert!(!notes.contains("connection closed"), "{notes}");

    // A picture for people, next to the build's other output.
    if let Ok(png) = browser.screenshot().await {
        let _ = std::fs::write(
            env!("CARGO_TARGET_TMPDIR").to_owned() + "/dashboard.png",
            png,
        );
    }

    // ANCHOR_END: browser_command
    // ANCHOR: browser_reconnect
    // The server goes away: the page says so, and comes back by itself when the
    // server does.
    let addr = server.addr.to_string();
    server.signal(Signal::SIGINT);
    assert!(server.wait_exit(Duration::from_secs(2)).await.success());
    wait_for(
        &browser,
        "//span[@id='status' and starts-with(text(), 'reconnecting')]",
    )
    .await;
    let _again = Running::start_on("05_dashboard", &addr, &ARGS).await;
    wait_for(&browser, "//span[@id='status' and text()='live']").await;
    wait_for(&browser, &threshold_of("sensor-2", "27.50")).await;

    browser.close().await.expect("the session closes");
}
// ANCHOR_END: browser_reconnect
