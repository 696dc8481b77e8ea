//! The URLs to connect to, tried in turn from the one that last worked, and
//! left for good when they refuse the upgrade or their certificate.

use std::time::Duration;

use axum::http::Uri;
use tokio_tungstenite::{Connector, tungstenite};

use crate::{Args, Ended, Socket, tls};

/// The URLs to try, and what each one answered.
pub struct Urls {
    /// Each URL as connected to, and why it refused the upgrade, if it did.
    urls: Vec<(String, Option<String>)>,
    /// The one that last worked, tried first.
    current: usize,
    /// What `wss://` URLs are checked with; `None` when there are none.
    tls: Option<Connector>,
}

impl Urls {
    /// The URLs of `args`; in rooms mode, with `?user=NAME`. The `wss://` ones
    /// are checked with the connector of `tls.rs`.
    pub fn new(args: &Args) -> Self {
        let url = |url: &Uri| match (args.rooms.is_empty(), url.query()) {
            (true, _) => url.to_string(),
            (false, None) => format!("{url}?user={}", args.user),
            (false, Some(_)) => format!("{url}&user={}", args.user),
        };
        let urls = args.urls.iter().map(|u| (url(u), None)).collect();
        let secure = args.urls.iter().any(|u| u.scheme_str() == Some("wss"));
        let tls = secure.then(|| tls::connector(args.ca.as_ref()));
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
    pub async fn connect(&mut self) -> Result<Socket, Ended> {
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
            let why = match tokio::time::timeout(TIMEOUT, connecting).await {
                Ok(Ok((socket, _response))) => {
                    tracing::info!("connected to {url}");
                    self.current = i;
                    return Ok(socket);
                }
                // A 4xx answer to the handshake (401, 403, 404) says this URL
                // will not work, however often we try: drop it.
                Ok(Err(tungstenite::Error::Http(response)))
                    if response.status().is_client_error() =>
                {
                    let status = response.status();
                    let why = format!("{url} refused the upgrade: {status}");
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
            tracing::warn!("{why}");
        }
        let refusals: Option<Vec<&str>> =
            self.urls.iter().map(|(_, why)| why.as_deref()).collect();
        Err(match refusals {
            Some(refusals) => Ended::Failed(refusals.join("; ")),
            None => Ended::Lost("no URL answered".into()),
        })
    }
}
// ANCHOR_END: connect

/// How long a handshake may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
