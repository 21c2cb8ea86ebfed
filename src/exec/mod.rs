//! Execution: what changes a run directory. One build ([`build::Build`],
//! callable many times in one process) with the scheduler
//! ([`scheduler`]: ninja's loop behind its `Runner`/`Hooks` seams), the
//! per-task transaction ([`attempt`]) and the run around it ([`runner`]:
//! checks and judges on the outputs, [`checks`]; re-runs after a judge's
//! low score; rescues; re-checks; recording each failure: [`failure`]),
//! `planexe check` ([`recheck`]) and the actions it runs
//! ([`actions`]: shell [`command`]s in process groups under one watchdog,
//! model calls through [`llm`]), the deletion of what committed runs set
//! aside, off their thread ([`reaper`]), crash recovery ([`recovery`], which stops
//! only what it can tell is a task's command: [`process`]), interrupts
//! ([`interrupt`], installed once), the environment a build is given
//! ([`mod@env`]), a prompt task's answer a full disk had no room for
//! ([`own_write`]), make's jobserver and `MAKEFLAGS` ([`jobserver`]); and the
//! other writers, [`clean`], [`touch`] and [`new_run`] (the making of a
//! run directory).
//!
//! Above the plan, the model and the store. Reports only through the
//! [`observer::Observer`] trait: events, traces, snapshots and terminal
//! text are the layers above.

pub mod actions;
pub mod attempt;
pub mod build;
pub mod checks;
pub mod clean;
pub mod command;
pub mod env;
pub mod failure;
pub mod interrupt;
pub mod jobserver;
pub mod llm;
pub mod new_run;
pub mod observer;
pub mod own_write;
pub mod process;
pub mod reaper;
pub mod recheck;
pub mod recovery;
pub mod runner;
pub mod scheduler;
pub mod touch;

pub use attempt::Executor;
pub use build::{Build, BuildOptions, BuildReport, Ended};
pub use env::Env;
pub use interrupt::Interrupt;
pub use observer::{Notice, Observer};
