//! The `intake` binary: logging, argument parsing, then [`intake::cli::run`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    intake::telemetry::init("info", std::io::stderr);
    let cli = intake::cli::Cli::parse();
    intake::cli::run(cli)
}
