//! TLS at both ends: the servers' `--tls-cert` and `--tls-key` (`src/tls.rs`),
//! lesson 06's `wss://` with `--ca`, and lesson 08's `Secure` cookie.
//!
//! Each test makes its own CA and a server certificate for `localhost` and
//! `127.0.0.1` with rcgen, in a temporary directory: nothing secret is in the
//! repository, and nothing outlives the test.

use ws_harness as common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Client, HttpResponse, Process, Running, WAIT, close, next_data};
use futures::SinkExt;
use nix::sys::signal::Signal;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

// ANCHOR: pki
/// A CA of the test's own, and a server certificate it signed, as PEM files in
/// a fresh directory that is removed on drop.
struct Pki {
    dir: PathBuf,
    ca: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        ca.distinguished_name
            .push(DnType::CommonName, "ws-lessons test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("the CA certificate");
        let issuer = Issuer::new(ca, ca_key);

        // A server certificate for the names the tests connect to.
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let key = KeyPair::generate().expect("a server key");
        let cert = CertificateParams::new(names)
            .and_then(|params| params.signed_by(&key, &issuer))
            .expect("the server certificate");

        let dir = fresh_dir();
        let write = |name: &str, pem: String| {
            std::fs::write(dir.join(name), pem).expect("a PEM file")
        };
        write("ca.pem", ca_cert.pem());
        write("cert.pem", cert.pem());
        write("key.pem", key.serialize_pem());
        let ca = ca_cert.der().clone();
        Pki { dir, ca }
    }
}
// ANCHOR_END: pki

impl Pki {
    /// The path of one of the PEM files: `ca.pem`, `cert.pem` or `key.pem`.
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The flags that make a server example serve TLS with this certificate.
    fn server_args(&self) -> [String; 4] {
        let (cert, key) = (self.path("cert.pem"), self.path("key.pem"));
        ["--tls-cert".into(), cert, "--tls-key".into(), key]
    }

    /// A client configuration that trusts this CA only.
    fn trusting(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).expect("the CA is a root");
        client_config(roots)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new empty directory, unique to this process and this call.
fn fresh_dir() -> PathBuf {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir()
        .join(format!("ws-lessons-tls-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("a temporary directory");
    dir
}

fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Starts `example` with TLS, and extra `args`.
async fn start_tls(example: &'static str, pki: &Pki, args: &[&str]) -> Running {
    let tls = pki.server_args();
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    Running::start(example, &[&tls[..], args].concat()).await
}

/// `wss://localhost:PORT/ws` of `server`.
fn wss_url(server: &Running) -> String {
    format!("wss://localhost:{}/ws", server.addr.port())
}

/// Opens `url` with a client that trusts what `config` trusts.
async fn connect_wss(
    url: &str,
    config: Arc<ClientConfig>,
) -> Result<Client, tungstenite::Error> {
    let connector = Some(Connector::Rustls(config));
    let connecting = connect_async_tls_with_config(url, None, false, connector);
    let (client, _) = timeout(WAIT, connecting).await.expect("in time")?;
    Ok(client)
}

/// Sends `text` and expects it back.
async fn echoes(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.expect("send");
    assert_eq!(next_data(client).await, Message::text(text));
}

/// `GET /stats`, as [`https`] sends it.
const STATS: &str =
    "GET /stats HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// Asks for `/stats` over TLS until `ready` holds, for at most `WAIT`.
async fn https_stats_until(
    server: &Running,
    pki: &Pki,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) {
    let mut every = tokio::time::interval(std::time::Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        every.tick().await;
        let stats = https(server, pki, STATS).await.json();
        if ready(&stats) {
            return;
        }
        let now = tokio::time::Instant::now();
        assert!(now < deadline, "{what}: /stats still reads {stats}");
    }
}

/// One HTTP/1.1 request over TLS on a new connection, read until the server
/// closes it.
async fn https(server: &Running, pki: &Pki, request: &str) -> HttpResponse {
    let exchange = async {
        let tcp = TcpStream::connect(server.addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("a name");
        let connector = TlsConnector::from(pki.trusting());
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        tls.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        tls.read_to_end(&mut response).await.expect("read");
        String::from_utf8_lossy(&response).into_owned()
    };
    let response = timeout(WAIT, exchange).await.expect("a response in time");
    HttpResponse::parse(&response)
}

// ANCHOR: echo
#[tokio::test]
async fn a_client_that_trusts_the_ca_gets_its_echo_over_wss() {
    let pki = Pki::new();
    let server = start_tls("01_echo", &pki, &[]).await;
    let addr = server.addr;
    let line = &server.startup_line;
    assert!(line.contains(&format!("wss://{addr}/ws")), "{line}");
    assert!(line.contains(&format!("https://{addr}/ ")), "{line}");

    // By name and by address: the certificate names both.
    for url in [wss_url(&server), format!("wss://{addr}/ws")] {
        let mut client = connect_wss(&url, pki.trusting()).await.expect(&url);
        echoes(&mut client, "hello over TLS").await;
        // The closing handshake ends the TLS stream cleanly too: `close`
        // reads on to the end, and would fail on a cut connection.
        let reply = close(&mut client, 1000, "bye").await.expect("a Close");
        assert_eq!(u16::from(reply.code), 1000);
    }
    let page = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let page = https(&server, &pki, page).await;
    assert_eq!(page.status, 200, "{page}");
}
// ANCHOR_END: echo

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let pki = Pki::new();
    let server = start_tls("01_echo", &pki, &[]).await;
    // The system's roots, or none at all: neither knows the test's CA.
    let system = rustls_native_certs::load_native_certs().certs;
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(system);
    for roots in [roots, RootCertStore::empty()] {
        let refused = connect_wss(&wss_url(&server), client_config(roots)).await;
        let Err(tungstenite::Error::Io(e)) = refused else {
            panic!("expected a TLS error, got {refused:?}");
        };
        let why = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
        assert!(
            matches!(
                why,
                Some(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer
                ))
            ),
            "{e}"
        );
    }
    // The server still serves whoever trusts its CA.
    let mut client = connect_wss(&wss_url(&server), pki.trusting()).await;
    echoes(client.as_mut().expect("a trusting client"), "still here").await;
}

// ANCHOR: plain
#[tokio::test]
async fn plain_ws_to_the_tls_port_fails_and_disturbs_no_one() {
    let pki = Pki::new();
    let server = start_tls("01_echo", &pki, &[]).await;
    let mut before = connect_wss(&wss_url(&server), pki.trusting()).await;
    let before = before.as_mut().expect("a client before");
    // A peer that opens TCP and never shakes hands, to the end of the test.
    let _silent = TcpStream::connect(server.addr).await.expect("connect");

    // A plain WebSocket client: the server's TLS layer answers its HTTP request
    // with an alert and hangs up, before HTTP.
    let url = format!("ws://{}/ws", server.addr);
    let plain = timeout(WAIT, tokio_tungstenite::connect_async(url)).await;
    let plain = plain.expect("in time");
    assert!(plain.is_err(), "a plain client got through: {plain:?}");
    // The server counts the failed handshake once its task sees it end.
    let what = "the plain client's handshake is counted as failed";
    https_stats_until(&server, &pki, what, |s| {
        s["tls"]["handshakes_failed"] == 1
    })
    .await;

    // The client from before still talks, and the next good client gets in,
    // while the silent peer still holds its handshake open.
    echoes(before, "still here").await;
    let mut after = connect_wss(&wss_url(&server), pki.trusting()).await;
    echoes(after.as_mut().expect("a client after"), "next").await;
    let stats = https(&server, &pki, STATS).await.json();
    assert_eq!(stats["connections"], 2, "{stats}");
    // No other handshake failed: the good clients' succeeded, and the silent
    // peer's is still under way (or, on a very slow machine, timed out).
    assert_eq!(stats["tls"]["handshakes_failed"], 1, "{stats}");
}
// ANCHOR_END: plain

#[tokio::test]
async fn sigterm_over_tls_closes_with_1001_and_exits_0() {
    let pki = Pki::new();
    let mut server = start_tls("01_echo", &pki, &[]).await;
    let mut clients = Vec::new();
    for _ in 0..2 {
        let client = connect_wss(&wss_url(&server), pki.trusting()).await;
        clients.push(client.expect("a client"));
    }
    server.shut_down_with(Signal::SIGTERM, &mut clients).await;
}

// ANCHOR: cookie
#[tokio::test]
async fn the_login_cookie_is_secure_over_tls_and_only_then() {
    const TOKEN: &str = "test-token-71c2";
    let login = format!(
        "POST /login HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\ntoken={TOKEN}",
        TOKEN.len() + "token=".len()
    );
    let pki = Pki::new();
    let server = start_tls("08_production", &pki, &["--token", TOKEN]).await;
    let signed_in = https(&server, &pki, &login).await;
    assert_eq!(signed_in.status, 303, "{signed_in}");
    let cookie = signed_in.header("set-cookie").expect("a session cookie");
    let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
    assert!(attributes.contains(&"Secure"), "{cookie}");
    assert!(attributes.contains(&"HttpOnly"), "{cookie}");

    // Over plain HTTP the same sign-in sets no `Secure`: browsers would drop
    // such a cookie from a site that is not HTTPS.
    let plain = Running::start("08_production", &["--token", TOKEN]).await;
    let form = format!("token={TOKEN}");
    let signed_in = common::http_post_form(plain.addr, "/login", &form).await;
    let cookie = signed_in.header("set-cookie").expect("a session cookie");
    assert!(!cookie.contains("Secure"), "{cookie}");
}
// ANCHOR_END: cookie

// ANCHOR: client
#[tokio::test]
async fn lesson_06_follows_the_dashboard_over_wss_with_its_ca() {
    let pki = Pki::new();
    let server = start_tls("05_dashboard", &pki, &["--rate", "40"]).await;
    let ca = pki.path("ca.pem");
    let url = wss_url(&server);
    let args = [&*url, "--ca", &ca, "--events"];
    let mut client = Process::spawn("06_client", &args);
    let connected = client.wait_for_event("connected").await;
    assert_eq!(connected["url"], url);
    let is_reading = |e: &serde_json::Value| e["message"]["type"] == "reading";
    for _ in 0..3 {
        let shown = client.events_until(&mut Vec::new(), is_reading).await;
        let sensor = shown["message"]["sensor"].as_str().unwrap_or_default();
        assert!(sensor.starts_with("sensor-"), "{shown}");
    }
}

#[tokio::test]
async fn lesson_06_without_the_ca_stops_with_a_certificate_error() {
    let pki = Pki::new();
    let server = start_tls("05_dashboard", &pki, &[]).await;
    let url = wss_url(&server);
    let args = [&*url, "--events"];
    let (status, stdout, stderr) = common::run_to_exit("06_client", &args).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    let error = stderr.lines().find(|l| l.starts_with("error:"));
    let error = error.unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(error.contains(&url), "{error}");
    assert!(error.contains("certificate does not verify"), "{error}");
    assert!(error.contains("UnknownIssuer"), "{error}");
    // Final at once: one refusal (no HTTP status), no round of retries first.
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect();
    assert_eq!(events.len(), 1, "{stdout}");
    assert_eq!(events[0]["event"], "refused", "{stdout}");
    assert_eq!(events[0]["url"], url, "{stdout}");
    assert!(events[0].get("status").is_none(), "{stdout}");
}
// ANCHOR_END: client

#[tokio::test]
async fn missing_or_mismatched_files_are_one_clear_error() {
    let pki = Pki::new();
    let other = Pki::new();
    let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));
    let missing = pki.path("missing.pem");
    let wrong_key = other.path("key.pem");
    let cases = [
        (&missing, &key, "cannot read the TLS certificate"),
        (&cert, &missing, "cannot read the TLS key"),
        (&key, &key, "no certificate in"),
        (&cert, &cert, "no private key in"),
        (&cert, &wrong_key, "is not the key of"),
    ];
    for (cert, key, expected) in cases {
        let args = ["127.0.0.1:0", "--tls-cert", cert, "--tls-key", key];
        let (status, stdout, stderr) =
            common::run_to_exit("01_echo", &args).await;
        assert_eq!(status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "no start-up line: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // Both or neither: clap refuses one without the other.
    let args = ["127.0.0.1:0", "--tls-cert", &cert];
    let (status, _, stderr) = common::run_to_exit("01_echo", &args).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--tls-key"), "{stderr}");
    // And lesson 06's `--ca`.
    let args = ["wss://localhost:1/ws", "--ca", &missing];
    let (status, _, stderr) = common::run_to_exit("06_client", &args).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--ca"), "{stderr}");
}
