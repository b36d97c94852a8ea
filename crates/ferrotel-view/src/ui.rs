//! The web UI's files (`ui/`), compiled into the binary: no CDN, nothing to install, and they
//! always match the API served beside them.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::viewer::Viewer;

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Path, content type and body of every file; the scripts are ES modules importing each other.
const ASSETS: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", include_str!("../ui/index.html")),
    ("/ui/app.css", "text/css; charset=utf-8", include_str!("../ui/app.css")),
    ("/ui/app.js", JAVASCRIPT, include_str!("../ui/app.js")),
    ("/ui/dom.js", JAVASCRIPT, include_str!("../ui/dom.js")),
    ("/ui/keys.js", JAVASCRIPT, include_str!("../ui/keys.js")),
    ("/ui/analysis.js", JAVASCRIPT, include_str!("../ui/analysis.js")),
    ("/ui/traces.js", JAVASCRIPT, include_str!("../ui/traces.js")),
    ("/ui/trace.js", JAVASCRIPT, include_str!("../ui/trace.js")),
    ("/ui/compare.js", JAVASCRIPT, include_str!("../ui/compare.js")),
    ("/ui/logs.js", JAVASCRIPT, include_str!("../ui/logs.js")),
    ("/ui/metrics.js", JAVASCRIPT, include_str!("../ui/metrics.js")),
    ("/ui/services.js", JAVASCRIPT, include_str!("../ui/services.js")),
    ("/ui/favicon.svg", SVG, include_str!("../ui/favicon.svg")),
    // Browsers and other tools ask for this one whatever the page says.
    ("/favicon.ico", SVG, include_str!("../ui/favicon.svg")),
];

pub(crate) fn routes() -> Router<Arc<Viewer>> {
    ASSETS
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            router.route(path, get(move || asset(content_type, body)))
        })
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
