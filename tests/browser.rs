//! The pages in a real headless Chromium, driven through chromedriver (WebDriver)
//! by fantoccini: the dashboard's live values, a command sent from the page, and
//! reconnection; the rooms page's presence and notices between two users, its
//! thresholds, and how it resumes its rooms after losing its connection.
//!
//! Needs `chromium` and `chromedriver` on the machine, so it runs only with the
//! `browser` feature: `cargo test --features browser --test browser`. CI always
//! runs it.
#![cfg(feature = "browser")]

mod common;

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Server, WAIT, next_of, send_json};
use fantoccini::{Client, ClientBuilder, Locator};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, MutexGuard, watch};

/// One test drives a browser at a time: two Chromiums at once on a two-core
/// machine can starve the dashboard page long enough to miss its 300 ms pong.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// chromedriver on a free loopback port, and the directory of the browsers'
/// profiles (one each: a profile is locked by the browser that uses it).
struct Driver {
    _process: Child,
    port: u16,
    url: String,
    profile: std::path::PathBuf,
    sessions: AtomicUsize,
    /// Dropped last, after chromedriver is gone.
    _turn: MutexGuard<'static, ()>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // A test that failed never closed its sessions, and chromedriver killed
        // on drop would leave their browsers running: its /shutdown quits them.
        let _ = shutdown(self.port);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `GET /shutdown` to chromedriver, blocking (it runs in `drop`).
fn shutdown(port: u16) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(WAIT))?;
    let request = "GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                   Connection: close\r\n\r\n";
    tcp.write_all(request.as_bytes())?;
    tcp.read_to_end(&mut Vec::new()).map(drop)
}

async fn start_driver() -> Driver {
    let turn = ONE_AT_A_TIME.lock().await;
    // Ask the system for a free port, then hand it to chromedriver.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let mut process = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect(
            "chromedriver (Debian: apt-get install chromium chromium-driver)",
        );
    let stdout = process.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("started successfully") {
                return true;
            }
        }
        false
    });
    assert!(ready.await.unwrap_or(false), "chromedriver did not start");
    let profile = std::env::temp_dir()
        .join(format!("ws-lessons-chromium-{}-{port}", std::process::id()));
    Driver {
        _process: process,
        port,
        url: format!("http://127.0.0.1:{port}"),
        profile,
        sessions: AtomicUsize::new(0),
        _turn: turn,
    }
}

async fn open_browser(driver: &Driver) -> Client {
    let session = driver.sessions.fetch_add(1, Ordering::Relaxed);
    let profile = driver.profile.join(session.to_string());
    let mut capabilities = serde_json::Map::new();
    let arguments = [
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--no-first-run".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({ "binary": "/usr/bin/chromium", "args": arguments }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    tokio::time::timeout(
        WAIT,
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver.url),
    )
    .await
    .expect("a browser session in time")
    .expect("a browser session")
}

/// Waits until an element matches `xpath`: the page's state, observed without
/// sleeping.
async fn wait_for(browser: &Client, xpath: &str) {
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|e| panic!("nothing matched {xpath} in time: {e}"));
}

async fn text_of(browser: &Client, xpath: &str) -> String {
    browser
        .find(Locator::XPath(xpath))
        .await
        .expect("the element exists")
        .text()
        .await
        .expect("its text")
}

async fn click(browser: &Client, xpath: &str) {
    browser
        .find(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|e| panic!("no {xpath} to click: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("{xpath} does not take a click: {e}"));
}

async fn type_into(browser: &Client, xpath: &str, text: &str) {
    let input = browser
        .find(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|e| panic!("no {xpath} to type into: {e}"));
    input.clear().await.expect("the input clears");
    input.send_keys(text).await.expect("the input takes keys");
}

/// How many elements match `xpath` now, without waiting.
async fn count(browser: &Client, xpath: &str) -> usize {
    let found = browser.find_all(Locator::XPath(xpath)).await;
    found.expect("a search").len()
}

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
    let mut server = Server::start("05_dashboard", &ARGS).await;
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
    let _again = Server::start_on("05_dashboard", &addr, &ARGS).await;
    wait_for(&browser, "//span[@id='status' and text()='live']").await;
    wait_for(&browser, &threshold_of("sensor-2", "27.50")).await;

    browser.close().await.expect("the session closes");
}
// ANCHOR_END: browser_reconnect

/// The rooms page (lesson 09) of `user`, connected, with site-1 joined.
async fn rooms_page_of(driver: &Driver, addr: &str, user: &str) -> Client {
    let browser = open_browser(driver).await;
    browser
        .set_window_size(1100, 720)
        .await
        .expect("a window size");
    let page = format!("http://{addr}/");
    browser.goto(&page).await.expect("the page loads");
    type_into(&browser, "//input[@id='user']", user).await;
    click(&browser, "//button[@id='connect']").await;
    let status = format!("//span[@id='status' and text()='connected as {user}']");
    wait_for(&browser, &status).await;
    click(&browser, &join_button("site-1")).await;
    wait_for(&browser, &presence_line("site-1")).await;
    browser
}

fn join_button(site: &str) -> String {
    format!(
        "//span[@data-site='{site}']/button[text()='Join' and not(@disabled)]"
    )
}

fn leave_button(site: &str) -> String {
    format!(
        "//span[@data-site='{site}']/button[text()='Leave' and not(@disabled)]"
    )
}

/// The list of who is watching, on the room's card.
fn presence_line(room: &str) -> String {
    format!("//section[@data-room='{room}']//span[@class='presence']")
}

/// The list of who is watching, when it reads `users`.
fn presence(room: &str, users: &str) -> String {
    format!("{}[text()='{users}']", presence_line(room))
}

const NOTICES: &str = "//ul[@id='notices']/li";

#[tokio::test]
async fn the_rooms_page_shows_presence_and_notices_between_two_users() {
    // Readings often enough that every sensor of site-1 has a value soon.
    let server = Server::start("09_rooms", &["--rate", "60"]).await;
    let addr = server.addr.to_string();
    let driver = start_driver().await;

    // A name the server would refuse with a 400, which a page cannot see: the
    // page says so itself, and does not try.
    let alice = open_browser(&driver).await;
    alice
        .goto(&format!("http://{addr}/"))
        .await
        .expect("the page loads");
    type_into(&alice, "//input[@id='user']", "Alice!").await;
    click(&alice, "//button[@id='connect']").await;
    wait_for(
        &alice,
        "//span[@id='status' and starts-with(text(), 'a name is')]",
    )
    .await;
    alice.close().await.expect("the session closes");

    // Both join site-1, alice first: her page learns of bob from a presence
    // message, his from his snapshot.
    let alice = rooms_page_of(&driver, &addr, "alice").await;
    let bob = rooms_page_of(&driver, &addr, "bob").await;
    wait_for(&alice, &presence("site-1", "alice, bob")).await;
    wait_for(&bob, &presence("site-1", "alice, bob")).await;
    let value = "//section[@data-room='site-1']//tr[@data-sensor='sensor-1']\
                 /td[@class='value' and text()!='–']";
    wait_for(&alice, value).await;

    // A notice from bob reaches alice's page, and bob's page has the server's
    // word that it did; it is not among bob's own notices.
    type_into(&bob, "//input[@id='to']", "alice").await;
    type_into(&bob, "//input[@id='text']", "the pump at site 1 is back").await;
    click(&bob, "//form[@id='notify']//button").await;
    let notice = "//ul[@id='notices']/li[span[@class='from' and text()='bob']\
                  and contains(., 'the pump at site 1 is back')]";
    wait_for(&alice, notice).await;
    let sent = "//ul[@id='log']/li[contains(., \
                'notice delivered to alice (open tabs: 1)')]";
    wait_for(&bob, sent).await;
    assert_eq!(count(&alice, NOTICES).await, 1);

    // A picture for people, next to the build's other output.
    if let Ok(png) = alice.screenshot().await {
        let path = env!("CARGO_TARGET_TMPDIR").to_owned() + "/rooms.png";
        let _ = std::fs::write(path, png);
    }

    // Alice leaves: her card goes, her Join button comes back, and bob's page
    // shows him alone.
    click(&alice, &leave_button("site-1")).await;
    wait_for(&alice, &join_button("site-1")).await;
    assert_eq!(count(&alice, "//section[@data-room='site-1']").await, 0);
    wait_for(&bob, &presence("site-1", "bob")).await;
    // Checked this late so that a notice wrongly sent to bob as well would
    // have arrived by now.
    assert_eq!(count(&bob, NOTICES).await, 0, "bob got his own notice");

    alice.close().await.expect("the session closes");
    bob.close().await.expect("the session closes");
}

/// A TCP relay in front of a server, which the page is loaded from: the test
/// can end the page's connection as a network failure would, without stopping
/// the server, and hold the page's next attempt while another server starts.
struct Relay {
    addr: String,
    gate: watch::Sender<Gate>,
}

#[derive(Clone, Copy, Default)]
struct Gate {
    /// New connections wait while this holds, as they would for a slow server.
    held: bool,
    /// Each change ends every connection going through.
    cuts: u32,
}

impl Relay {
    async fn start(to: std::net::SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("its address").to_string();
        let (gate, gates) = watch::channel(Gate::default());
        tokio::spawn(async move {
            while let Ok((page, _)) = listener.accept().await {
                tokio::spawn(relay(page, to, gates.clone()));
            }
        });
        Relay { addr, gate }
    }

    /// Ends every connection through the relay, without a Close frame.
    fn cut(&self) {
        self.gate.send_modify(|gate| gate.cuts += 1);
    }

    /// Holds new connections, or lets them through.
    fn hold(&self, held: bool) {
        self.gate.send_modify(|gate| gate.held = held);
    }
}

async fn relay(
    mut page: TcpStream,
    to: std::net::SocketAddr,
    mut gate: watch::Receiver<Gate>,
) {
    let cuts = match gate.wait_for(|gate| !gate.held).await {
        Ok(gate) => gate.cuts,
        Err(_) => return,
    };
    let Ok(mut server) = TcpStream::connect(to).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut page, &mut server) => {}
        _ = gate.wait_for(|gate| gate.cuts != cuts) => {}
    }
}

/// A room's card on the page.
fn card(room: &str) -> String {
    format!("//section[@data-room='{room}']")
}

/// The row of a sensor in a room's card.
fn sensor_row(room: &str, sensor: &str) -> String {
    format!("{}//tr[@data-sensor='{sensor}']", card(room))
}

/// The number of the room's last change that the page has.
async fn seq_of(browser: &Client, room: &str) -> u64 {
    let card = browser.find(Locator::XPath(&card(room))).await;
    let seq = card.expect("the card").attr("data-seq").await;
    let seq = seq.expect("the attribute").unwrap_or_default();
    seq.parse()
        .unwrap_or_else(|_| panic!("{room}'s data-seq is {seq:?}"))
}

/// Waits until the page is in `room` again, live, and has taken changes
/// beyond the last one it has now.
async fn changes_flow(browser: &Client, room: &str) {
    let seq = seq_of(browser, room).await;
    let live = format!(
        "{}[not(contains(@class, 'stale')) and @data-seq > {seq}]",
        card(room)
    );
    wait_for(browser, &live).await;
}

/// The note on a room's card, when it starts with `start` (and says `also`).
fn note(room: &str, start: &str, also: &str) -> String {
    format!(
        "{}/div[contains(@class, 'note') and starts-with(text(), '{start}') \
         and contains(text(), '{also}')]",
        card(room)
    )
}

/// Waits until `server`'s room has got past change `seq`.
async fn wait_past(server: &Server, room: &str, seq: u64) {
    let mut watcher = server.connect_to("/ws?user=watcher").await;
    send_json(&mut watcher, json!({ "type": "join", "room": room })).await;
    let snapshot = next_of(&mut watcher, "snapshot").await;
    let mut last = snapshot["seq"].as_u64().expect("a seq");
    let past = tokio::time::timeout(WAIT, async {
        while last <= seq {
            let reading = next_of(&mut watcher, "reading").await;
            last = reading["seq"].as_u64().expect("a seq");
        }
    });
    past.await
        .expect("the new server gets past the page in time");
}

const ROOMS: [&str; 2] = ["site-1", "site-2"];

#[tokio::test]
async fn the_rooms_page_sets_thresholds_and_resumes_its_rooms_by_itself() {
    let driver = start_driver().await;
    let mut server = Server::start("09_rooms", &["--rate", "60"]).await;
    let addr = server.addr.to_string();
    let relay = Relay::start(server.addr).await;
    let alice = rooms_page_of(&driver, &relay.addr, "alice").await;
    click(&alice, &join_button("site-2")).await;
    wait_for(&alice, &presence_line("site-2")).await;
    let connected =
        format!("//span[@id='server' and text()='server {}']", relay.addr);
    wait_for(&alice, &connected).await;
    for room in ROOMS {
        changes_flow(&alice, room).await;
    }

    // A threshold set on the page comes back from the server as the room's
    // next change, and the page shows it.
    let row = sensor_row("site-1", "sensor-2");
    type_into(&alice, &format!("{row}//input"), "31.5").await;
    click(&alice, &format!("{row}//button[text()='Set']")).await;
    let limit = format!("{row}/td[@class='limit' and text()='alert > 31.5']");
    wait_for(&alice, &limit).await;

    // The connection drops, and the server stays: the page reconnects by
    // itself and resumes both rooms where it was, with every change since.
    relay.cut();
    let host = &relay.addr;
    for room in ROOMS {
        let resumed = note(room, &format!("resumed on {host} after change "), "");
        wait_for(&alice, &resumed).await;
        changes_flow(&alice, room).await;
    }
    wait_for(&alice, &limit).await;

    // The server restarts. The page's attempts wait in the relay until the new
    // server, faster and keeping no history, is past the page's last change in
    // both rooms: it cannot replay what the page missed, and must say so with a
    // snapshot that counts it. (With the old flags it would still be short of
    // the page's last change, and a server answers a join after a change it
    // has not reached yet with `joined`, as a lagging instance of lesson 10.)
    relay.hold(true);
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(2)).await.success());
    let reconnecting =
        "//span[@id='status' and starts-with(text(), 'reconnecting')]";
    wait_for(&alice, reconnecting).await;
    let args = ["--rate", "600", "--history", "0"];
    let server = Server::start_on("09_rooms", &addr, &args).await;
    for room in ROOMS {
        wait_past(&server, room, seq_of(&alice, room).await).await;
    }
    relay.hold(false);
    wait_for(
        &alice,
        "//span[@id='status' and text()='connected as alice']",
    )
    .await;
    for room in ROOMS {
        let snapshot = format!("snapshot from {host}: ");
        wait_for(&alice, &note(room, &snapshot, " changes missed")).await;
        changes_flow(&alice, room).await;
    }
    // The new server's thresholds, not the old one's.
    assert_eq!(count(&alice, &limit).await, 0);
    let gaps = "//div[contains(@class, 'note') and contains(@class, 'gap')]";
    assert_eq!(count(&alice, gaps).await, 0, "a change went missing");

    // A picture for people, next to the build's other output.
    if let Ok(png) = alice.screenshot().await {
        let path = env!("CARGO_TARGET_TMPDIR").to_owned() + "/rooms-resumed.png";
        let _ = std::fs::write(path, png);
    }
    alice.close().await.expect("the session closes");
}
