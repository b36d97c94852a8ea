//! The web UI's files (`ui/`), compiled into the binary: no CDN, nothing to install, and they
//! always match the API served beside them.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::viewer::Viewer;

pub(crate) fn routes() -> Router<Arc<Viewer>> {
    Router::new()
        .route(
            "/",
            get(|| asset("text/html; charset=utf-8", include_str!("../ui/index.html"))),
        )
        .route(
            "/ui/app.js",
            get(|| asset("text/javascript; charset=utf-8", include_str!("../ui/app.js"))),
        )
        .route(
            "/ui/app.css",
            get(|| asset("text/css; charset=utf-8", include_str!("../ui/app.css"))),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> std::future::Ready<Response> {
    std::future::ready(
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-cache"),
                // Telemetry carries user data; the page must not load or send it elsewhere.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                ),
            ],
            body,
        )
            .into_response(),
    )
}
