//! What the built-in instrumentations read from the environment, once per process: the
//! environment does not change under a running server.

use std::sync::OnceLock;

use ferrotel_config::{CaptureHeaders, Config, SemconvMode};
use ferrotel_propagation::Composite;

use crate::propagation::{configured_formats, has_python_propagators};

pub(crate) struct Settings {
    pub(crate) propagator: Composite,
    /// `OTEL_PROPAGATORS` names propagators only Python provides: extraction and injection
    /// then go through the API's global propagator, which has them all.
    pub(crate) python_propagators: bool,
    pub(crate) http_semconv: SemconvMode,
    pub(crate) db_semconv: SemconvMode,
    pub(crate) capture: CaptureHeaders,
    /// `FERROTEL_ASGI_MESSAGE_EVENTS`: websocket messages as events on the server span.
    pub(crate) message_events: bool,
}

pub(crate) fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let config = Config::from_env().config;
        ferrotel_semconv::set_capture_all_methods(config.python.capture_all_methods);
        Settings {
            propagator: Composite::new(configured_formats(&config)),
            python_propagators: has_python_propagators(&config),
            http_semconv: config.python.http_semconv,
            db_semconv: config.python.database_semconv,
            capture: config.python.capture_headers.clone(),
            message_events: config.python.asgi_message_events,
        }
    })
}
