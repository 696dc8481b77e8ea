//! What the client tells, once for people and once for programs: text by
//! default (what it shows on stdout, how its connection fares in the log on
//! stderr), and with `--events` one JSON object per line on stdout, whose
//! `event` field names what happened. The log is the same either way.

use std::fmt::{self, Display};
use std::sync::OnceLock;

use serde::Serialize;

/// True once `--events` asked for JSON on stdout; set once, at start-up, like
/// the log's filter.
static JSON: OnceLock<bool> = OnceLock::new();

// ANCHOR: report
/// Sends every event from here on as JSON (`--events`), or as text.
pub fn init(json: bool) {
    let _ = JSON.set(json);
}

fn json() -> bool {
    JSON.get().copied().unwrap_or(false)
}

/// The JSON line of `event`, for a program to read.
fn print_json(event: &impl Serialize) {
    let line = serde_json::to_string(event).expect("an event always serializes");
    print_line(&line);
}

/// Writes `line` to stdout. `println!` would panic once its reader has gone
/// (`06_client | head`); the client says so once, in the log, and goes on.
fn print_line(line: &str) {
    use std::io::Write;
    static GONE: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}").is_err()
        && !GONE.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::warn!("stdout is closed: nothing more is shown");
    }
}

/// Something the client shows: a line of text on stdout, or its JSON.
pub fn show(event: &(impl Serialize + Display)) {
    if json() {
        print_json(event);
    } else {
        print_line(&event.to_string());
    }
}

/// Something about the connection: an `info` line in the log, and its JSON
/// with `--events`.
pub fn info(event: &(impl Serialize + Display)) {
    tracing::info!("{event}");
    if json() {
        print_json(event);
    }
}

/// Something that went wrong: a `warn` line in the log, and its JSON with
/// `--events`.
pub fn warn(event: &(impl Serialize + Display)) {
    tracing::warn!("{event}");
    if json() {
        print_json(event);
    }
}
// ANCHOR_END: report

// ANCHOR: connection
/// What happened to the connection: the same events for every server.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Connection<'a> {
    /// A connection to `url` is open.
    Connected {
        /// The URL, as connected to.
        url: &'a str,
    },
    /// `url` did not answer, or failed: a later round tries it again.
    Unreachable {
        /// The URL it tried.
        url: &'a str,
        /// What went wrong, URL and all, for a person to read.
        why: &'a str,
    },
    /// `url` refused the upgrade (with a 4xx `status`) or its certificate: it
    /// is left out from now on.
    Refused {
        /// The URL that refused.
        url: &'a str,
        /// The HTTP status that refused the upgrade, if one did.
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// Why, URL and all, for a person to read.
        why: &'a str,
    },
    /// The connection ended, or no URL answered: the next round of attempts
    /// starts after `delay_ms`.
    Reconnecting {
        /// Why, for a person to read.
        why: &'a str,
        /// The wait before the next round, in milliseconds.
        delay_ms: u64,
    },
}
// ANCHOR_END: connection

impl Display for Connection<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connected { url } => write!(f, "connected to {url}"),
            Self::Unreachable { why, .. } | Self::Refused { why, .. } => {
                f.write_str(why)
            }
            Self::Reconnecting { why, delay_ms } => {
                write!(f, "{why}; reconnecting in {delay_ms} ms")
            }
        }
    }
}

/// A message from the server that the client shows, as it came:
/// `{"event":"message","message":{"type":...}}`. Each client says in text
/// what its own messages mean.
#[derive(Serialize)]
#[serde(tag = "event", rename = "message")]
pub struct Shown<'a, M> {
    /// The message, serialized as the protocol's own type.
    pub message: &'a M,
}

/// A request the client sent: `{"event":"sent","request":{"type":...}}`.
#[derive(Serialize)]
#[serde(tag = "event", rename = "sent")]
pub struct Sent<'a, R> {
    /// The request, as it was sent.
    pub request: &'a R,
}

impl<R: Serialize> Display for Sent<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string(self.request).map_err(|_| fmt::Error)?;
        write!(f, "sent {json}")
    }
}
