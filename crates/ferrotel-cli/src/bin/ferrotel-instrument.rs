//! `ferrotel-instrument`: the same as `ferrotel instrument`, under upstream's command shape.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = ferrotel_launcher::run("ferrotel-instrument", std::env::args_os().skip(1));
    ExitCode::from(code.clamp(0, 255) as u8)
}
