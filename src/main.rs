//! The `isola` binary: command line, configuration, logging, signals, and the wiring of the
//! front to the pool. No request handling or process supervision lives here.

mod check;
mod cli;
mod import;
mod logging;
mod notify;
mod run;
mod store_link;
mod tools;
mod watch;

use clap::Parser;
use std::process::ExitCode;

// Every request allocates its head, its CGI parameters and its records; glibc's malloc was
// a tenth of the front's cycles under load (contended arenas across runtime threads).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `arena_eager_commit`: on Linux it commits whole arenas up front, which made
/// the front's resident memory 8 MiB larger for no measurable speed.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Runs before `main` and before the first allocation (an ELF constructor): mimalloc
/// reserves its first arena with the options in force then.
#[allow(unsafe_code)]
#[used]
#[link_section = ".init_array"]
static ALLOCATOR_OPTIONS: extern "C" fn() = {
    extern "C" fn set() {
        // SAFETY: a process-wide allocator option, set while only this thread exists.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
    }
    set
};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Serve(args) if args.check => ExitCode::from(check::run(&args)),
        cli::Command::Check(args) => ExitCode::from(check::run(&args)),
        cli::Command::Serve(args) => match run::serve(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("isola: {e:#}");
                ExitCode::from(run::exit_code(&e))
            }
        },
        cli::Command::Reload(args) => report(run::reload(&args.pid_file)),
        cli::Command::Queue(args) => report(tools::queue(args)),
        cli::Command::StoreCli(args) => report(tools::store_cli(args)),
        cli::Command::Import(args) => ExitCode::from(import::run(&args)),
        // Dispatched before any runtime exists: the engine host forks, and a fork copies
        // only the calling thread.
        cli::Command::PhpZygote(z) => {
            let creds = z.uid.zip(z.gid);
            let code = isola_engine::zygote::run(z.ini_file.as_deref(), creds);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}

fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("isola: {e:#}");
            ExitCode::FAILURE
        }
    }
}
