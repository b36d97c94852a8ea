//! ferrotel's messages to the user from threads that run without the interpreter (export
//! workers): one line each on standard error with the `ferrotel:` prefix, filtered by the
//! level the process set from `OTEL_LOG_LEVEL`. Never through a logging framework, which
//! could loop back into an instrumented logger.

use std::sync::atomic::{AtomicU8, Ordering};

use ferrotel_config::LogLevel;

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);

/// The level below which messages are not shown (the whole process shares it).
pub fn set_level(level: LogLevel) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: LogLevel) -> bool {
    level != LogLevel::None && level as u8 >= LEVEL.load(Ordering::Relaxed)
}

pub fn label(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warning => "warning",
        LogLevel::Error | LogLevel::None => "error",
    }
}

/// The line as the user sees it, newline included.
pub fn line(level: LogLevel, message: &str) -> String {
    format!("ferrotel: {}: {message}\n", label(level))
}

/// Writes `message` to standard error if `level` is shown. A closed or broken standard error
/// (the interpreter ignores SIGPIPE) loses the line; it never panics the calling thread.
pub fn say(level: LogLevel, message: &str) {
    if enabled(level) {
        write_stderr(&line(level, message));
    }
}

/// Standard error without the panic `eprint!` raises when the write fails.
pub fn write_stderr(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(text.as_bytes());
}
