//! The rooms page (lesson 09) in a real headless Chromium: presence and notices
//! between two users, thresholds, and how the page resumes its rooms after
//! losing its connection.
//!
//! Needs `chromium` and `chromedriver`, so it runs only with the `browser`
//! feature: `cargo test --features browser --test browser_rooms`. CI always
//! runs it.
#![cfg(feature = "browser")]

use ws_harness as common;

use std::time::Duration;

use common::Running;
use common::browser::{Client, Locator};
use common::browser::{
    Driver, click, count, open_browser, start_driver, type_into, wait_for,
};
use nix::sys::signal::Signal;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

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
    let server = Running::start("09_rooms", &["--rate", "60"]).await;
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
/// the server.
struct Relay {
    addr: String,
    /// Each change ends every connection going through.
    cuts: watch::Sender<u32>,
}

impl Relay {
    async fn start(to: std::net::SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("its address").to_string();
        let (cuts, watched) = watch::channel(0);
        tokio::spawn(async move {
            while let Ok((page, _)) = listener.accept().await {
                tokio::spawn(relay(page, to, watched.clone()));
            }
        });
        Relay { addr, cuts }
    }

    /// Ends every connection through the relay, without a Close frame.
    fn cut(&self) {
        self.cuts.send_modify(|cuts| *cuts += 1);
    }
}

async fn relay(
    mut page: TcpStream,
    to: std::net::SocketAddr,
    mut cuts: watch::Receiver<u32>,
) {
    let at = *cuts.borrow_and_update();
    let Ok(mut server) = TcpStream::connect(to).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut page, &mut server) => {}
        _ = cuts.wait_for(|cuts| *cuts != at) => {}
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

const ROOMS: [&str; 2] = ["site-1", "site-2"];

/// A line of the page's log of class `class` that starts, after its time,
/// with `text`.
fn log_line(class: &str, text: &str) -> String {
    format!("//ul[@id='log']/li[@class='{class}' and contains(., '  {text}')]")
}

#[tokio::test]
async fn the_rooms_page_sets_thresholds_and_resumes_its_rooms_by_itself() {
    let driver = start_driver().await;
    let mut server = Running::start("09_rooms", &["--rate", "60"]).await;
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
    // next change, and the page shows it; the `ack` with the request's id
    // says which request went through.
    let row = sensor_row("site-1", "sensor-2");
    type_into(&alice, &format!("{row}//input"), "31.5").await;
    click(&alice, &format!("{row}//button[text()='Set']")).await;
    let limit = format!("{row}/td[@class='limit' and text()='alert > 31.5']");
    wait_for(&alice, &limit).await;
    wait_for(&alice, &log_line("", "set site-1 sensor-2 to 31.5: done")).await;
    // One the server refuses: the `error` carries the id, so the page names
    // the request that failed, and marks the input it came from.
    type_into(&alice, &format!("{row}//input"), "5000").await;
    click(&alice, &format!("{row}//button[text()='Set']")).await;
    let refused = "set site-1 sensor-2 to 5000 refused: threshold 5000 is out";
    wait_for(&alice, &log_line("error", refused)).await;
    wait_for(&alice, &format!("{row}//input[@class='refused']")).await;

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

    // The server restarts, and numbers its changes anew: the page's rejoin
    // names the old numbering, and gets a snapshot that says so.
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(2)).await.success());
    let reconnecting =
        "//span[@id='status' and starts-with(text(), 'reconnecting')]";
    wait_for(&alice, reconnecting).await;
    let _server = Running::start_on("09_rooms", &addr, &["--rate", "60"]).await;
    wait_for(
        &alice,
        "//span[@id='status' and text()='connected as alice']",
    )
    .await;
    for room in ROOMS {
        let snapshot = format!("snapshot from {host}: a new numbering");
        wait_for(&alice, &note(room, &snapshot, "")).await;
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
