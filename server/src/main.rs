//! The `dartmouth` binary: the command line, and `dartmouth serve` (HTTP and gRPC).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // `cli::run` sets up logging (and span export) once it has read the command line.
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
