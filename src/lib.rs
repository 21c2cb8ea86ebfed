//! planexe: a file-system-native, make-style build tool for LLM pipelines.
//!
//! [`run`] is the whole program. The library is in layers, each importing
//! only those below it (docs/architecture.md):
//!
//! - [`cli`]: the command line, the terminal, the environment;
//! - [`mcp`]: the Model Context Protocol server (`planexe mcp`);
//! - [`observe`]: events, trace, summary, status, explain, report;
//! - [`exec`]: a build (scheduler, per-task transaction, commands, model
//!   calls, crash recovery), clean, touch;
//! - [`plan`]: staleness, the up-to-date certificate, the session;
//! - [`model`]: the parsed pipeline and the resolved graph;
//! - [`store`]: the run directory and every file in it;
//! - [`error`], [`clock`] and [`phases`] (where the time goes), used by
//!   all.

pub mod cli;
pub mod clock;
pub mod error;
pub mod exec;
pub mod mcp;
pub mod model;
pub mod observe;
pub mod phases;
pub mod plan;
pub mod store;

use std::ffi::OsString;

/// Runs planexe with `args` (including the program name) and returns the
/// process exit status.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    cli::run(args)
}
