//! What to do about a failure, as data: a [`Remedy`] is a change to make
//! first, if any, then a step ([`Then`]) that each door words its own way
//! (`planexe build` on the command line, the build tool for the MCP
//! server: `model::Advice`, `Trouble::Failed`). No words of a door live
//! here, so none can reach the other.

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
            ErrorKind::Runaway => change("bound the schema (maxItems, maxLength), lower max_tokens, or raise the model's timeout"),
            // A command's timeout too: no server is involved there.
            ErrorKind::Timeout => Remedy {
                change: None,
                then: Then::BuildAgain(
                    "a less busy machine or server may finish in time; else raise the timeout",
                ),
            },
            kind if kind.transient() => Remedy {
                change: None,
                then: Then::BuildAgain("the server may answer this time"),
            },
            ErrorKind::Auth | ErrorKind::MissingKey => {
                change("check the API key and the model's base_url")
            }
            ErrorKind::NotFound => change("check the model name and base_url"),
            ErrorKind::ContextOverflow => change("shorten the prompt or its inputs, or use a model with a larger context"),
            ErrorKind::Truncated => change("raise the model's max_tokens or ask for a shorter answer"),
            ErrorKind::TooLarge => change("raise the model's max_answer_bytes, or ask for a shorter answer (max_tokens)"),
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
            ErrorKind::BadList => Remedy {
                change: Some("fix what writes the list file (or the foreach `items` and `key`)"),
                then: Then::Build,
            },
            _ => Remedy {
                change: Some("fix the command or its inputs"),
                then: Then::Build,
            },
        }
    }
}

impl TaskError {
    /// What to do about it ([`ErrorKind::remedy`]).
    pub fn remedy(&self) -> Remedy {
        self.kind.remedy(self.recoverable)
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
    /// Build again to resume what was stopped.
    Resume,
    /// Record the answer the replay lacks, with a live model.
    Record,
}
