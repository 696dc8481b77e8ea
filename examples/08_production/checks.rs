//! The checks before an upgrade, as axum middleware on the `/ws` route: a plain
//! GET is told what the URL wants (426), a page from another site is refused
//! (403), and a client without the token is refused (401). A refused request
//! costs an HTTP response, never a WebSocket connection, and its log line names
//! the client's address.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use ws_lessons::proxy::ClientAddr;

use crate::{NoOrigin, Policy};

// ANCHOR: plain_get
/// 426 for a request that does not ask for a WebSocket: a person who opens the
/// URL in a browser learns what it is, before being asked for a token they would
/// not need. (Over HTTP/2 a WebSocket is a CONNECT without these headers, and
/// `WebSocketUpgrade` checks it; it passes here.)
pub async fn refuse_plain_requests(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let upgrade = has_token(headers, header::UPGRADE, "websocket");
    let asks = upgrade && has_token(headers, header::CONNECTION, "upgrade");
    if !asks && request.method() != Method::CONNECT {
        let headers = [
            (header::UPGRADE, "websocket"),
            (header::CONNECTION, "Upgrade"),
        ];
        let body = "this URL speaks WebSocket\n";
        return (StatusCode::UPGRADE_REQUIRED, headers, body).into_response();
    }
    next.run(request).await
}

/// Whether the comma-separated header `name` lists `token` (in any case).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}
// ANCHOR_END: plain_get

// ANCHOR: origin
/// 403 unless the Origin is the server's own (the scheme and the `Host` the
/// browser asked for) or on the `--allow-origin` list. A request without an
/// Origin, which browsers always send, passes with `--no-origin allow`.
pub async fn check_origin(
    State(policy): State<Arc<Policy>>,
    client: ClientAddr,
    request: Request,
    next: Next,
) -> Response {
    match origin_allowed(&policy, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(why) => {
            tracing::warn!("refused an upgrade from {client}: {why}");
            (StatusCode::FORBIDDEN, format!("{why}\n")).into_response()
        }
    }
}

fn origin_allowed(policy: &Policy, headers: &HeaderMap) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return match policy.no_origin {
            NoOrigin::Allow => Ok(()),
            NoOrigin::Deny => Err("no Origin header".into()),
        };
    };
    let origin = origin
        .to_str()
        .map_err(|_| "an Origin that is not text".to_owned())?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let same_origin = [format!("http://{host}"), format!("https://{host}")];
    let allowed = same_origin
        .iter()
        .chain(&policy.allow_origins)
        .any(|o| o.eq_ignore_ascii_case(origin));
    if allowed {
        Ok(())
    } else {
        Err(format!("origin {origin:?} is not allowed"))
    }
}
// ANCHOR_END: origin

// ANCHOR: auth
/// 401 unless the request carries the token, as `Authorization: Bearer TOKEN`
/// or in the `session` cookie that `/login` sets for browsers.
pub async fn require_token(
    State(policy): State<Arc<Policy>>,
    client: ClientAddr,
    request: Request,
    next: Next,
) -> Response {
    if authenticated(&policy, request.headers()) {
        return next.run(request).await;
    }
    // Say nothing about the token itself, in the response or in the log.
    tracing::warn!("refused an upgrade from {client}: missing or wrong token");
    let challenge = [(header::WWW_AUTHENTICATE, "Bearer")];
    let body = "sign in at /login first\n";
    (StatusCode::UNAUTHORIZED, challenge, body).into_response()
}

fn authenticated(policy: &Policy, headers: &HeaderMap) -> bool {
    let Some(expected) = &policy.token else {
        return true; // --no-auth
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let cookies: Vec<_> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .collect();
    let session = cookies
        .iter()
        .find(|cookie| cookie.name() == "session")
        .map(|cookie| cookie.value());
    [bearer, session]
        .into_iter()
        .flatten()
        .any(|token| same_token(token, expected))
}

/// Compares in constant time, so that how long the comparison takes says
/// nothing about how much of a guess was right.
pub fn same_token(given: &str, expected: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}
// ANCHOR_END: auth
