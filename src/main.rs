//! `mutua`: one binary that serves the exchange (`mutua serve`) and speaks to it (every other
//! subcommand). Parsing and dispatch live in `mutua_gateway::cli`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match mutua_gateway::cli::run(mutua_gateway::cli::Cli::parse_args()).await {
        Ok(()) => ExitCode::SUCCESS,
        // A refused call is an answer, not a crash: one line a person can read, no backtrace.
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
