//! The operator dashboard at `/ui` (SPEC §12): three static files embedded in the
//! binary (no CDN, nothing fetched at run time, no JavaScript library), served with a
//! strict Content-Security-Policy. The page talks to the documented `/v1` API only,
//! with the API key the operator enters (kept in the tab's session storage), and
//! follows `GET /v1/events/sessions` for live updates. docs/adr/0009-dashboard.md
//! says why it is hand-written and how it stays live.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The page.
pub const INDEX_HTML: &str = include_str!("assets/index.html");
/// Its script.
pub const APP_JS: &str = include_str!("assets/app.js");
/// Its style sheet.
pub const APP_CSS: &str = include_str!("assets/app.css");

/// What the browser may load: only this origin's script, style and API; nothing may
/// frame the page.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// Routes `/ui`, `/ui/`, `/ui/app.js` and `/ui/app.css`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/ui",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/ui/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
}

/// One embedded file with its type and the security headers. `no-cache`: the browser
/// revalidates, so a new server version is never mixed with an old script.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_script_and_style() {
        // Given the embedded page
        // When its references are listed
        let refs: Vec<&str> = INDEX_HTML
            .split(['"', '\''])
            .filter(|s| s.starts_with("http") || s.starts_with("//"))
            .collect();
        // Then it names no other origin, and loads the two embedded files
        assert!(refs.is_empty(), "{refs:?}");
        assert!(INDEX_HTML.contains("/ui/app.js"));
        assert!(INDEX_HTML.contains("/ui/app.css"));
    }

    #[test]
    fn the_whole_page_weighs_under_200_kib() {
        // Given the three embedded files
        // When their sizes are added
        let total = INDEX_HTML.len() + APP_JS.len() + APP_CSS.len();
        // Then the page stays under the documented budget
        assert!(total < 200 * 1024, "{total} bytes");
    }

    #[test]
    fn the_script_never_writes_markup_from_data() {
        // Given the script
        // When it is searched for the ways to write HTML from strings
        // Then it has none: every text it shows is a text node (no injection)
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!APP_JS.contains(sink), "app.js uses {sink}");
        }
    }
}
