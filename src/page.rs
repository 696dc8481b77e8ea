//! The small page that `GET /` serves, so that every example can be tried from a
//! browser.
//!
//! It connects to `/ws` on the same host, shows what arrives, and sends what you
//! type. It loads nothing from elsewhere.

use axum::response::Html;

/// The whole page, its script inline: one response, and nothing for the
/// browser to fetch from elsewhere.
pub const TRY_IT: &str = include_str!("page.html");

/// `GET /`: the try-it page.
pub async fn try_it() -> Html<&'static str> {
    Html(TRY_IT)
}
