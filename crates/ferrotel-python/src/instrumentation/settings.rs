//! What the built-in instrumentations read from the environment, once per process: the
//! environment does not change under a running server.

use std::sync::OnceLock;

use ferrotel_config::{CaptureHeaders, Config, SemconvMode};
use ferrotel_propagation::Composite;

use crate::propagation::configured_formats;

pub(crate) struct Settings {
    pub(crate) propagator: Composite,
    pub(crate) http_semconv: SemconvMode,
    pub(crate) db_semconv: SemconvMode,
    pub(crate) capture: CaptureHeaders,
}

pub(crate) fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let config = Config::from_env().config;
        Settings {
            propagator: Composite::new(configured_formats(&config)),
            http_semconv: config.python.http_semconv,
            db_semconv: config.python.database_semconv,
            capture: config.python.capture_headers.clone(),
        }
    })
}
