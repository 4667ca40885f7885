//! The `otel-pinpoint-bridge` binary: parse the command line and run it.

use clap::Parser;

fn main() -> std::process::ExitCode {
    otel_pinpoint_bridge::cli::main(otel_pinpoint_bridge::cli::Cli::parse())
}
