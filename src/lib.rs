//! planexe: a file-system-native, make-style build tool for LLM pipelines.
//!
//! [`run`] is the whole program: it parses the command line, runs one
//! command, prints any error once and returns the exit status. The layers,
//! from file to work: [`pipeline`] (parsed TOML) → [`graph`] (resolved,
//! checked tasks and edges) → [`plan`] (what is stale and why) →
//! [`scheduler`] (ninja's loop) → [`build`] (running and recording).

pub mod build;
pub mod certificate;
pub mod clean;
pub mod cli;
pub mod command;
pub mod error;
pub mod events;
pub mod explain;
pub mod fanout;
pub mod fingerprint;
pub mod graph;
pub mod inflight;
pub mod interrupt;
pub mod llm;
pub mod pipeline;
pub mod plan;
pub mod printer;
pub mod report;
pub mod run;
pub mod rundir;
pub mod scheduler;
pub mod session;
pub mod stamp;
pub mod state;
pub mod status;
pub mod summary;
pub mod touch;
pub mod trace;

use std::ffi::OsString;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};
use crate::error::{Error, EXIT_OK, EXIT_USAGE};
use crate::interrupt::Interrupt;
use crate::printer::{Printer, Verbosity};

/// Runs planexe with `args` (including the program name) and returns the
/// process exit status.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    let mut printer = Printer::new(if cli.quiet {
        Verbosity::Quiet
    } else {
        Verbosity::Normal
    });
    match dispatch(&cli, &mut printer) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            printer.end();
            if !e.is_silent() {
                printer.error(&e);
            }
            e.code()
        }
    }
}

fn dispatch(cli: &Cli, printer: &mut Printer) -> Result<(), Error> {
    match &cli.command {
        Command::Build(args) => {
            // Dry runs and questions change nothing: Ctrl-C may end them
            // the default way.
            let interrupt = if args.dry_run || args.question {
                Interrupt::never()
            } else {
                Interrupt::install()
            };
            build::build(cli, args, printer, &interrupt)
        }
        Command::Clean(args) => clean::clean(cli, args, printer),
        Command::Touch(args) => touch::touch(cli, args, printer),
        Command::Status(args) => status::status(cli, args, printer),
        Command::Wait(args) => status::wait(cli, args, printer),
        Command::Explain(args) => explain::explain(cli, args, printer),
        Command::Graph(args) => explain::graph(cli, args, printer),
        Command::Report(args) => report::report(cli, args, printer),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(*shell, &mut command, "planexe", &mut std::io::stdout());
            Ok(())
        }
    }
}
