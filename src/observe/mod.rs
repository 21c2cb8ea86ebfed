//! Observation: what a run looks like from outside, as data. Events and
//! hooks ([`events`]; a webhook's POST, `webhook`), the trace ([`trace`]), and a build's
//! [`recorder`] (an observer of `exec` that feeds both and keeps the live
//! `status` snapshot); the run after a build ([`summary`]); where each task
//! stands ([`standing`]), the run at a glance ([`status`]), why a task is
//! stale and the graph ([`explain`]), the HTML [`report`] and its JUnit
//! form for CI ([`junit`]); and the one
//! [`palette`] they are shown in.
//!
//! Above execution (it observes builds through `exec::Observer`); below the
//! CLI, which turns its data into text.

pub mod events;
pub mod explain;
mod hook_command;
pub mod junit;
pub mod palette;
pub mod recorder;
pub mod report;
pub mod standing;
pub mod status;
pub mod summary;
pub mod trace;
mod webhook;

pub use recorder::Recorder;
pub use standing::Standing;
