//! Signing a browser in. Browsers cannot set headers on a WebSocket request, so
//! the page signs in once here and the browser then sends an HttpOnly cookie with
//! every upgrade; the page's JavaScript never sees the token.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::Policy;
use crate::checks::same_token;

const LOGIN_PAGE: &str = include_str!("login.html");

/// `GET /login`: the sign-in form.
pub async fn page() -> Html<String> {
    Html(LOGIN_PAGE.replace("<!--error-->", ""))
}

#[derive(Deserialize)]
pub struct Login {
    token: String,
}

// ANCHOR: login
/// `POST /login`: checks the token once and hands the browser an HttpOnly,
/// SameSite=Strict cookie, which it sends with the WebSocket upgrade. Over TLS
/// the cookie is also `Secure`, so that the browser never sends it in clear; not
/// over plain HTTP, where browsers refuse a `Secure` cookie from any host but
/// localhost.
pub async fn sign_in(
    State(policy): State<Arc<Policy>>,
    Form(login): Form<Login>,
) -> Response {
    let Some(expected) = &policy.token else {
        return Redirect::to("/").into_response();
    };
    if !same_token(&login.token, expected) {
        tracing::warn!("a sign-in with a wrong token");
        let page = LOGIN_PAGE.replace("<!--error-->", "Wrong token.");
        return (StatusCode::UNAUTHORIZED, Html(page)).into_response();
    }
    let session = cookie::Cookie::build(("session", login.token))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .secure(policy.secure_cookie)
        .build();
    let set_cookie = [(header::SET_COOKIE, session.to_string())];
    (set_cookie, Redirect::to("/")).into_response()
}
// ANCHOR_END: login
