//! The `isola` binary: command line, configuration, logging, signals, and the wiring of the
//! front to the pool. No request handling or process supervision lives here.

mod cli;
mod logging;
mod queue;
mod run;
mod schedule;
mod store_link;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Serve(args) => match run::serve(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("isola: {e:#}");
                ExitCode::from(run::exit_code(&e))
            }
        },
        cli::Command::Reload(args) => match run::reload(&args.pid_file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("isola: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
