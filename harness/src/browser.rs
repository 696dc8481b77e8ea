//! A headless Chromium for the page tests, driven through chromedriver
//! (WebDriver) by fantoccini: one browser at a time, each with a profile of its
//! own, and waits that are bounded like every other wait in the tests.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};

use fantoccini::ClientBuilder;
/// fantoccini's names that the page tests use, from here: the root crate has
/// no fantoccini of its own.
pub use fantoccini::{Client, Locator};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, MutexGuard};

use crate::WAIT;

/// One test drives a browser at a time: two Chromiums at once on a two-core
/// machine can starve the dashboard page long enough to miss its 300 ms pong.
pub static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// chromedriver on a free loopback port, and the directory of the browsers'
/// profiles (one each: a profile is locked by the browser that uses it).
pub struct Driver {
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
pub fn shutdown(port: u16) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(WAIT))?;
    let request = "GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                   Connection: close\r\n\r\n";
    tcp.write_all(request.as_bytes())?;
    tcp.read_to_end(&mut Vec::new()).map(drop)
}

/// Starts chromedriver on a free port, once it is this test's turn
/// ([`ONE_AT_A_TIME`]), and waits for it to say it has started.
pub async fn start_driver() -> Driver {
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

/// Opens a headless Chromium through `driver`, with a fresh profile of its
/// own.
pub async fn open_browser(driver: &Driver) -> Client {
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
pub async fn wait_for(browser: &Client, xpath: &str) {
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|e| panic!("nothing matched {xpath} in time: {e}"));
}

/// The text of the element that `xpath` matches now; panics if none does.
pub async fn text_of(browser: &Client, xpath: &str) -> String {
    browser
        .find(Locator::XPath(xpath))
        .await
        .expect("the element exists")
        .text()
        .await
        .expect("its text")
}

/// Clicks the element that `xpath` matches now; panics if none does.
pub async fn click(browser: &Client, xpath: &str) {
    browser
        .find(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|e| panic!("no {xpath} to click: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("{xpath} does not take a click: {e}"));
}

/// Replaces the value of the input that `xpath` matches with `text`, typed
/// key by key as a person would.
pub async fn type_into(browser: &Client, xpath: &str, text: &str) {
    let input = browser
        .find(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|e| panic!("no {xpath} to type into: {e}"));
    input.clear().await.expect("the input clears");
    input.send_keys(text).await.expect("the input takes keys");
}

/// How many elements match `xpath` now, without waiting.
pub async fn count(browser: &Client, xpath: &str) -> usize {
    let found = browser.find_all(Locator::XPath(xpath)).await;
    found.expect("a search").len()
}
