//! The page and its assets, embedded in the binary: no CDN, no build
//! step, works offline.

use axum::extract::{OriginalUri, Path};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

const INDEX: &str = include_str!("../assets/index.html");

/// Name, content type, body.
const FILES: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../assets/favicon.svg"),
    ),
];

/// The page. Mounted under `/admin/jobs`, `/admin/jobs` redirects to
/// `/admin/jobs/` so that the page's relative URLs resolve under it.
pub(crate) async fn index(OriginalUri(uri): OriginalUri) -> Response {
    let path = uri.path();
    if !path.ends_with('/') {
        return Redirect::to(&format!("{path}/")).into_response();
    }
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}

/// One embedded asset.
pub(crate) async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                // Embedded in this build: they change only with the binary.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => not_found().await,
    }
}

/// Anything else.
pub(crate) async fn not_found() -> Response {
    crate::access::error(StatusCode::NOT_FOUND, "no such page")
}
