//! The URLs to connect to, tried in turn from the one that last worked, and
//! left for good when they refuse the upgrade or their certificate.

use std::time::Duration;

use tokio_tungstenite::{Connector, tungstenite};

use crate::events::{self, Connection};
use crate::reconnect::{NextStep, Socket};
use crate::tls;

/// The URLs to try, and what each one answered.
pub struct Urls {
    /// Each URL, and why it refused the upgrade, if it did.
    urls: Vec<(String, Option<String>)>,
    /// The one that last worked, tried first.
    current: usize,
    /// What `wss://` URLs are checked with; `None` when there are none.
    tls: Option<Connector>,
}

impl Urls {
    /// `urls`, none tried yet. The `wss://` ones are checked with the
    /// connector of `tls.rs`, which trusts `ca` too.
    pub fn new(urls: Vec<String>, ca: Option<&tls::Ca>) -> Self {
        let secure = urls.iter().any(|url| url.starts_with("wss://"));
        let tls = secure.then(|| tls::connector(ca));
        let urls = urls.into_iter().map(|url| (url, None)).collect();
        Self {
            urls,
            current: 0,
            tls,
        }
    }
}

// ANCHOR: connect
impl Urls {
    /// One round: tries each URL once, from the one that last worked, and
    /// returns the first connection.
    pub async fn connect(&mut self) -> Result<Socket, NextStep> {
        for i in 0..self.urls.len() {
            let i = (self.current + i) % self.urls.len();
            let (url, refused) = &mut self.urls[i];
            if refused.is_some() {
                continue;
            }
            let connecting = tokio_tungstenite::connect_async_tls_with_config(
                url.as_str(),
                None,
                false,
                self.tls.clone(),
            );
            // The HTTP status of a refused upgrade.
            let mut status = None;
            let why = match tokio::time::timeout(TIMEOUT, connecting).await {
                Ok(Ok((socket, _response))) => {
                    events::info(&Connection::Connected { url });
                    self.current = i;
                    return Ok(socket);
                }
                // A 4xx answer to the handshake (401, 403, 404) says this URL
                // will not work, however often we try: drop it.
                Ok(Err(tungstenite::Error::Http(response)))
                    if response.status().is_client_error() =>
                {
                    let code = *status.insert(response.status());
                    let why = format!("{url} refused the upgrade: {code}");
                    refused.insert(why).clone()
                }
                // So does a certificate that does not verify: retrying would
                // not make it verify, and falling back to no check is out.
                Ok(Err(e)) => match tls::refusal(&e) {
                    Some(why) => refused.insert(format!("{url}: {why}")).clone(),
                    None => format!("cannot connect to {url}: {e}"),
                },
                Err(_) => format!("no answer from {url} in {TIMEOUT:?}"),
            };
            let (why, status) = (why.as_str(), status.map(|s| s.as_u16()));
            events::warn(&match refused {
                Some(_) => Connection::Refused { url, status, why },
                None => Connection::Unreachable { url, why },
            });
        }
        let refusals: Option<Vec<&str>> =
            self.urls.iter().map(|(_, why)| why.as_deref()).collect();
        Err(match refusals {
            Some(refusals) => NextStep::GiveUp(refusals.join("; ")),
            None => NextStep::Reconnect("no URL answered".into()),
        })
    }
}
// ANCHOR_END: connect

/// How long a handshake may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
