//! The `intake` binary: logging, argument parsing, then [`intake::cli::run`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    intake::telemetry::init("info", std::io::stderr);
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match intake::cli::Cli::try_parse_from(&args) {
        Ok(cli) => intake::cli::run(cli),
        Err(e) => intake::cli::usage_error(e, &args),
    }
}
