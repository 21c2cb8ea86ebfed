//! What to do about a failure, as data: a [`Remedy`] is a change to make
//! first, if any, then a step ([`Then`]) that each door words its own way
//! (`planexe build` on the command line, the build tool for the MCP
//! server: `model::Advice`, `Trouble::Failed`). No words of a door live
//! here, so none can reach the other.
//!
//! A failure of a task's judge ([`TaskError::judge`]) asks for changes of
//! its own ([`ErrorKind::judge_remedy`]): a judge's schema and answer
//! length (`max_tokens`) are planexe's, so what the user can change is the
//! judge's table (`prompt`, `model`, `threshold`, `retries`, `severity`),
//! the `[models.NAME]` table of the model it names, and the task's
//! `timeout`, never the task's own prompt, schema or `max_tokens`.

use super::record::{ErrorKind, TaskError};

impl ErrorKind {
    /// What to do about a failure of this kind, as data (the words are the
    /// door's: `model::Advice`, `Trouble::Failed`). `recoverable` is the
    /// failure's own: a command killed from outside may well succeed when
    /// run again.
    pub fn remedy(self, recoverable: bool) -> Remedy {
        let change = |what| Remedy {
            change: Some(what),
            then: Then::Nothing,
        };
        match self {
            ErrorKind::Signal if recoverable => Remedy {
                change: None,
                then: Then::BuildAgain(
                    "something outside killed the command (the OOM killer, a user)",
                ),
            },
            ErrorKind::Stopped => Remedy {
                change: None,
                then: Then::Resume,
            },
            ErrorKind::Runaway => change("lower max_tokens, bound the task's schema if it has one (maxItems, maxLength), or raise the model's timeout"),
            // A command's timeout too: no server is involved there.
            ErrorKind::Timeout => Remedy {
                change: None,
                then: Then::BuildAgain(
                    "a less busy machine or server may finish in time; else raise the timeout",
                ),
            },
            // Retried within the build, but a server that keeps
            // answering in another shape needs a change.
            ErrorKind::BadResponse => change("check the model's provider and base_url: the server's answer is not in that provider's shape (the message says what it sent)"),
            kind if kind.transient() => Remedy {
                change: None,
                then: Then::BuildAgain("the server may answer this time"),
            },
            ErrorKind::Auth | ErrorKind::MissingKey => {
                change("check the API key and the model's base_url")
            }
            ErrorKind::NotFound => change("check the model name and base_url"),
            ErrorKind::BadRequest => change("change what the server refused, as its message says (a model setting or a schema feature it does not support, the prompt), or check the model's provider and base_url"),
            ErrorKind::ContextOverflow => change("shorten the prompt or its inputs, or use a model with a larger context"),
            ErrorKind::Truncated => change("raise max_tokens (the task's own when it sets one, else its model's) or ask for a shorter answer"),
            ErrorKind::TooLarge => change("raise the model's max_answer_bytes, or ask for a shorter answer (max_tokens)"),
            ErrorKind::Refused => change("change the prompt or its inputs (a content filter or the model refused the answer), or ask another model (fallback)"),
            ErrorKind::Schema | ErrorKind::InvalidJson | ErrorKind::EmptyAnswer => {
                change("fix the prompt or the schema first")
            }
            ErrorKind::Template => change("fix the prompt template"),
            ErrorKind::JudgeRejected => {
                change("improve the prompt or its inputs, lower the judge's threshold, or use a stronger model")
            }
            ErrorKind::ReplayMiss => Remedy {
                change: None,
                then: Then::Record,
            },
            ErrorKind::MissingInput => {
                change("create the missing input, or build what produces it")
            }
            ErrorKind::MissingOutput => change("make the command write every declared output"),
            ErrorKind::CheckFailed => change("fix the output or the check"),
            // The command could not be started or its output not kept,
            // or an output not moved or written: not the command's fault.
            ErrorKind::Spawn | ErrorKind::Io => Remedy {
                change: Some("fix what the message names (for example a full disk, permissions or a missing /bin/sh)"),
                then: Then::Build,
            },
            ErrorKind::BadList => Remedy {
                change: Some("fix what the error names: the list file (or what writes it), the foreach `items` and `key`, or an input an instance reads"),
                then: Then::Build,
            },
            _ => Remedy {
                change: Some("fix the command or its inputs"),
                then: Then::Build,
            },
        }
    }
}

impl ErrorKind {
    /// What to do about a failure of this kind of a task's judge (its
    /// call, its prompt, its score): the changes of the judge's table and
    /// its model's, where they differ from the task's own
    /// ([`ErrorKind::remedy`]).
    pub fn judge_remedy(self, recoverable: bool) -> Remedy {
        let change = |what| Remedy {
            change: Some(what),
            then: Then::Nothing,
        };
        match self {
            ErrorKind::Runaway => change("a judge's schema and max_tokens are planexe's: raise the timeout of the judge's model (or the task's timeout, whichever expired), or judge with another model (`model` in the judge's table)"),
            ErrorKind::Auth | ErrorKind::MissingKey => {
                change("check the API key and base_url of the judge's model (`model` in the judge's table)")
            }
            ErrorKind::NotFound => {
                change("check the judge's `model` and that model's name and base_url")
            }
            ErrorKind::ContextOverflow => change("shorten the judge's prompt (the outputs and inputs it quotes), or judge with a model with a larger context (`model` in the judge's table)"),
            ErrorKind::Truncated => change("a judge's max_tokens is planexe's: ask for a short reason in the judge's prompt, or judge with another model (`model` in the judge's table)"),
            ErrorKind::TooLarge => change("raise max_answer_bytes of the judge's model, or judge with another model (`model` in the judge's table)"),
            ErrorKind::Refused => change("change the judge's prompt (the outputs and inputs it quotes), or judge with another model (`model` in the judge's table)"),
            ErrorKind::Schema | ErrorKind::InvalidJson | ErrorKind::EmptyAnswer => {
                change("a judge's schema is planexe's: make the judge's prompt ask for a score and a reason, or judge with a stronger model (`model` in the judge's table)")
            }
            ErrorKind::Template => change("fix the judge's prompt template"),
            ErrorKind::BadRequest => Remedy {
                change: Some("check the judge's model (its provider and base_url)"),
                then: Then::Build,
            },
            // The same advice as for the task's own call: a stop, the
            // server's weather, a timeout, a replay's missing answer, the
            // score itself (which is about the judge already).
            kind => kind.remedy(recoverable),
        }
    }
}

impl ErrorKind {
    /// What to do about a failure of this kind: of a task's judge
    /// ([`ErrorKind::judge_remedy`]) or of the task itself
    /// ([`ErrorKind::remedy`]).
    pub fn remedy_of(self, recoverable: bool, judge: bool) -> Remedy {
        if judge {
            self.judge_remedy(recoverable)
        } else {
            self.remedy(recoverable)
        }
    }
}

/// What a runaway generation's message (planexe's own words) says when the
/// task's own `timeout` expired on it, not the model's.
const TASKS_TIMEOUT_EXPIRED: &str = "when the task's timeout (";

/// What a runaway generation's message says when its answer was held to a
/// schema, which may be what let it run on.
const SCHEMA_TO_BOUND: &str = "bound the schema's arrays";

/// What the message of a failed `min_bytes` check says (`exec::checks`),
/// after the output's size: the failure asks for that size or a lower
/// `min_bytes`, not for a fixed check.
pub const UNDER_MIN_BYTES: &str = "bytes, less than min_bytes = ";

impl TaskError {
    /// What to do about it ([`ErrorKind::remedy_of`]). For a runaway
    /// generation, what its message says: the task's own `timeout` rather
    /// than the model's when that one ended it, and its schema only when
    /// its answer was held to one. For an output under `min_bytes`, that
    /// size or a lower `min_bytes`. A failure of a kind that needs a
    /// change, recoverable all the same (a chain of models whose last
    /// failed for good after an earlier one failed in a way that may
    /// clear): build again first, then the change if it fails again.
    pub fn remedy(&self) -> Remedy {
        if self.kind == ErrorKind::Runaway && !self.judge {
            let schema = self.message.contains(SCHEMA_TO_BOUND);
            let task = self.message.contains(TASKS_TIMEOUT_EXPIRED);
            let change = match (schema, task) {
                (true, true) => "bound the schema (maxItems, maxLength), lower max_tokens, or raise the task's timeout",
                (true, false) => "bound the schema (maxItems, maxLength), lower max_tokens, or raise the model's timeout",
                (false, true) => "lower max_tokens, or raise the task's timeout",
                (false, false) => "lower max_tokens, or raise the model's timeout",
            };
            return Remedy {
                change: Some(change),
                then: Then::Nothing,
            };
        }
        if self.kind == ErrorKind::CheckFailed && self.message.contains(UNDER_MIN_BYTES) {
            return Remedy {
                change: Some("make the task write more, or set min_bytes lower (0 if an empty output is right)"),
                then: Then::Nothing,
            };
        }
        let remedy = self.kind.remedy_of(self.recoverable, self.judge);
        let chain = self.recoverable && !self.kind.recoverable() && self.kind != ErrorKind::Signal;
        match remedy.change {
            Some(_) if chain => Remedy {
                change: remedy.change,
                then: Then::BuildAgainFirst(
                    "an earlier model of the task's chain failed in a way that may clear (the message says which: a server error, a timeout) and is asked first",
                ),
            },
            _ => remedy,
        }
    }
}

/// What to do about a failure: a change to make first, if any, then a step
/// that each door words its own way (`planexe build` on the command line,
/// the build tool for the MCP server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remedy {
    pub change: Option<&'static str>,
    pub then: Then,
}

/// The step after a [`Remedy`]'s change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Nothing more: the change says it all.
    Nothing,
    /// Build (again) once the change is made.
    Build,
    /// Build again, changing nothing; why that may work.
    BuildAgain(&'static str),
    /// Build again first, changing nothing (why that may work); if it
    /// fails again, make the remedy's change.
    BuildAgainFirst(&'static str),
    /// Build again to resume what was stopped.
    Resume,
    /// Record the answer the replay lacks, with a live model.
    Record,
}
