//! The `dartmouth` binary: the command line, and `dartmouth serve` (HTTP and gRPC).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DARTMOUTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Text for people, or one JSON object a line for a log pipeline: each with the fields of
    // the spans it is in (the request and trace ids among them).
    match std::env::var("DARTMOUTH_LOG_FORMAT").as_deref() {
        Ok("json") => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init(),
        Ok("text") | Err(std::env::VarError::NotPresent) => logs.init(),
        Ok(other) => {
            eprintln!("error: DARTMOUTH_LOG_FORMAT: `{other}` is neither `text` nor `json`");
            return ExitCode::FAILURE;
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            eprintln!("error: DARTMOUTH_LOG_FORMAT: not UTF-8; `text` or `json`");
            return ExitCode::FAILURE;
        }
    }
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
