//! A task's output checks (docs/checks.md): the `check` command run on
//! its outputs before they are accepted, the smallest size an output may
//! have (`min_bytes`), how much a failed check matters (`severity`), an
//! LLM judge ([`Judge`], `[tasks.NAME.judge]`), and whether a command that
//! fails after writing every output may be rescued by its check or judge
//! (`rescue`).
//!
//! Resolved from a task's table with `file:line:col` refusals (the judge
//! once the task's inputs are known, in `resolve`), and folded into the
//! task's fingerprint only where they differ from the defaults, so
//! pipelines that set none keep their fingerprints.

use super::fingerprint::Fingerprint;
use super::judge::{self, Judge};
use super::pipeline::{Source, TaskDef};
use crate::error::{Error, Result};
use crate::store::Severity;

/// The smallest size of an output unless a task says otherwise: an empty
/// output is never a silent success.
pub const DEFAULT_MIN_BYTES: u64 = 1;

/// A task's output checks.
#[derive(Debug, Clone)]
pub struct Checks {
    /// The `check` command, run with `sh -c` and the outputs as arguments.
    pub command: Option<String>,
    /// An output (a regular file) smaller than this fails the task.
    pub min_bytes: u64,
    /// What a failed check does: fail the task, or warn.
    pub severity: Severity,
    /// A command that exits non-zero after writing every output is done
    /// if its check (and judge) accept them.
    pub rescue: bool,
    /// A model that scores the outputs (set by `resolve`, which knows the
    /// task's inputs and models).
    pub judge: Option<Judge>,
}

impl Default for Checks {
    fn default() -> Checks {
        Checks {
            command: None,
            min_bytes: DEFAULT_MIN_BYTES,
            severity: Severity::Error,
            rescue: false,
            judge: None,
        }
    }
}

impl Checks {
    /// The checks `def` asks for; a refusal points at the key.
    pub fn resolve(source: &Source, def: &TaskDef) -> Result<Checks> {
        let err = |span, message: &str| Error::pipeline(source.diagnostic(span, message));
        let mut checks = Checks {
            command: def.check.as_ref().map(|c| c.get_ref().clone()),
            ..Checks::default()
        };
        if let Some(c) = &def.check {
            if c.get_ref().trim().is_empty() {
                return Err(err(c.span(), "`check` is empty")
                    .hint("give a shell command that exits 0 when the outputs are good"));
            }
        }
        if let Some(m) = &def.min_bytes {
            checks.min_bytes = u64::try_from(*m.get_ref()).map_err(|_| {
                err(m.span(), "`min_bytes` must be 0 or more")
                    .hint("write min_bytes = 0 to allow empty outputs")
            })?;
        }
        if let Some(s) = &def.severity {
            checks.severity = match s.get_ref().as_str() {
                "error" => Severity::Error,
                "warn" => Severity::Warn,
                other => {
                    return Err(err(s.span(), &format!("unknown severity `{other}`"))
                        .hint("write severity = \"error\" (the default) or \"warn\""))
                }
            };
        }
        if let Some(r) = &def.rescue {
            checks.rescue = *r.get_ref();
            // A prompt task is told so first: a check would not make
            // its rescue mean anything.
            if checks.rescue && def.command.is_none() {
                return Err(err(r.span(), "`rescue` applies to command tasks only")
                    .hint("drop rescue: a prompt task's failures are retried, not rescued"));
            }
            if checks.rescue && checks.command.is_none() && def.judge.is_none() {
                return Err(err(r.span(), "`rescue = true` needs a `check` or a judge").hint(
                    "add check = \"...\" or a [tasks.NAME.judge] table to judge what the failed command wrote, or drop rescue",
                ));
            }
        }
        Ok(checks)
    }

    /// Whether anything is checked after a run: a `check` command, a
    /// judge, or a `min_bytes` above 0.
    pub fn any(&self) -> bool {
        self.command.is_some() || self.judge.is_some() || self.min_bytes > 0
    }

    /// Whether every setting is its default.
    fn is_default(&self) -> bool {
        self.command.is_none()
            && self.min_bytes == DEFAULT_MIN_BYTES
            && self.severity == Severity::Error
            && !self.rescue
            && self.judge.is_none()
    }

    /// The fingerprint of a task whose action's is `action`: that one when
    /// every setting is a default, else a hash of it and each setting that
    /// differs from its default.
    pub fn seal(&self, action: String) -> String {
        if self.is_default() {
            return action;
        }
        let mut fp = Fingerprint::new("checked");
        fp.field("task", action.as_bytes());
        if let Some(c) = &self.command {
            fp.field("check", c.as_bytes());
        }
        if self.min_bytes != DEFAULT_MIN_BYTES {
            fp.field("min_bytes", self.min_bytes.to_string().as_bytes());
        }
        if self.severity != Severity::Error {
            fp.field("severity", self.severity.as_str().as_bytes());
        }
        if self.rescue {
            fp.field("rescue", b"true");
        }
        if let Some(j) = &self.judge {
            judge::fingerprint(&mut fp, j);
        }
        fp.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_leave_the_fingerprint_alone() {
        assert_eq!(Checks::default().seal("f".into()), "f");
        let checked = Checks {
            command: Some("test -s \"$1\"".into()),
            ..Checks::default()
        };
        let a = checked.seal("f".into());
        assert_ne!(a, "f");
        let warn = Checks {
            severity: Severity::Warn,
            ..checked.clone()
        };
        assert_ne!(a, warn.seal("f".into()));
        assert_ne!(a, checked.seal("g".into()));
    }
}
