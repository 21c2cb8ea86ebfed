//! The store: the run directory and every file planexe keeps in it, with
//! typed reads and writes of each. The lowest layer above `error` and
//! `clock`; it knows nothing of pipelines, graphs or builds.
//!
//! - [`rundir`]: the run directory and every `.planexe/` file name;
//!   [`lock`]: one writer at a time; [`files`]: atomic writes, moves,
//!   leftovers of crashed writers; [`process`]: whether a writer lives.
//! - [`stamp`]: what a file looked like (size, mtime, blake3);
//!   [`stamps`]: a record's stamps by path;
//!   [`by_name`]: many paths statted by name in folders opened once.
//! - [`record`]: a task's [`record::Status`] and its parts; [`remedy`]:
//!   what to do about a failure, as data; [`sidecar`]:
//!   `tasks/NAME.status` and `NAME.DONE`; [`log`]: the state log, loaded
//!   into a [`log::StateStore`]; [`recorded`]: the one derivation of a
//!   task's last run from its records.
//! - [`run_record`]: `run.json`; [`inflight`]: the running build's journal;
//!   [`ledger`]: model-call ledgers; [`snapshot`]: `status.snapshot`;
//!   [`history`]: `events.jsonl` and `trace.json` kept bounded.
//! - [`origin`]: how the run was made (`origin.json`); [`archive`]: the
//!   marker of an archived run.
//! - [`untrusted`]: text from outside made safe to keep and show (secrets
//!   redacted in every spelling, control characters escaped).
//! - [`wrong_kind`]: a path that is the wrong kind of thing, in words (the
//!   file standing where a folder on its way should be).
//! - `target`: a target named by its absolute path, as a path in the run
//!   directory ([`RunDir::target`]).

pub mod archive;
pub mod by_name;
pub mod files;
pub mod history;
pub mod inflight;
pub mod ledger;
pub mod lock;
pub mod log;
pub mod origin;
pub mod process;
pub mod record;
pub mod recorded;
pub mod remedy;
pub mod run_record;
pub mod rundir;
pub mod sidecar;
pub mod snapshot;
pub mod spare;
pub mod stamp;
pub mod stamps;
mod target;
pub mod untrusted;
pub mod usage;
pub mod wrong_kind;

pub use log::{StateStore, TaskRecord};
pub use record::{
    AttemptRecord, CheckRecord, ErrorKind, JudgeUsage, Severity, Status, TaskError, TaskState,
    Usage,
};
pub use recorded::{Builder, Recorded};
pub use rundir::RunDir;
pub use stamp::{CheckMode, Stamp, Stamper};
pub use stamps::Stamps;
