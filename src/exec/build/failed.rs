//! What the end of a build that failed says about its first failed task:
//! where to look (its log, the answer kept, the ledgers) or, for the
//! failures whose remedy the task's message does not carry, what to do,
//! in the words of the session's door.

use crate::model::{Action, Task, Trouble};
use crate::plan::Session;
use crate::store::remedy::Then;
use crate::store::{AttemptRecord, ErrorKind, Recorded, TaskError};

/// The first part of the build's hint about `task`, which failed.
pub(super) fn details(session: &Session, task: &Task) -> String {
    let name = &task.name;
    let run_dir = &session.run_dir;
    let (error, refused, missed, called, replay, unkept) =
        match session.store.recorded(run_dir, name) {
            Recorded::Failed(s) => (
                s.error.clone(),
                s.judge.as_ref().is_some_and(|j| !j.passed),
                missed(&s.attempts),
                !s.attempts.is_empty(),
                s.replay_missed_by()
                    .and_then(|m| session.graph.replay_missed(m)),
                s.attempts.last().is_some_and(|a| a.no_response),
            ),
            _ => (None, false, "its request".to_string(), true, None, false),
        };
    let kind = error.as_ref().map(|e| e.kind);
    match &task.action {
        Action::Expand(list) => format!("{name} could not expand its list {list}"),
        Action::Command(_) if run_dir.task_log_path(name).exists() => format!(
            "the output of {name} is in {}",
            run_dir.show(&run_dir.task_log_path(name))
        ),
        // A command's judge's failure asks for changes of the
        // judge's, not the command's (TaskError::remedy).
        Action::Command(_) => match &error {
            Some(e)
                if !matches!(
                    e.kind,
                    ErrorKind::Exit | ErrorKind::Signal | ErrorKind::Timeout
                ) =>
            {
                first_change(session, e)
            }
            _ => format!("{name} printed nothing"),
        },
        // Its message says where the answers were looked for;
        // what to do about it is the door's.
        Action::Prompt(_) if kind == Some(ErrorKind::ReplayMiss) => {
            let trouble = match &replay {
                Some((dir, live)) => Trouble::ReplayMissed { dir, live },
                None => Trouble::Failed(ErrorKind::ReplayMiss.remedy(false)),
            };
            let how = session.advice().hint(&trouble);
            format!("{name} has no recorded answer for {missed}; {how}")
        }
        // An answer its checks or judge refused: kept (also when a
        // fallback model failed after its judge refused one).
        Action::Prompt(_)
            if (refused
                || matches!(
                    kind,
                    Some(ErrorKind::JudgeRejected | ErrorKind::CheckFailed)
                ))
                && run_dir.failed_dir(name).exists() =>
        {
            format!(
                "the refused answer of {name} is kept in {}, every failed call in {}",
                run_dir.show(&run_dir.failed_dir(name)),
                run_dir.show(&run_dir.failures_path())
            )
        }
        // Failed before any call (its prompt could not be rendered): no
        // response to look at; its message says why.
        Action::Prompt(_) if !called => match &error {
            Some(e) => first_change(session, e),
            None => format!("{name} made no call"),
        },
        // The server never answered its last call: no response to look
        // at (what `raw/` holds, if anything, is an earlier one's).
        Action::Prompt(_) if kind == Some(ErrorKind::Connection) => format!(
            "every failed call of {name} is in {}; the server never answered its last",
            run_dir.show(&run_dir.failures_path())
        ),
        // What to change first, when its kind says (a context too small,
        // a schema that lets the model run on), then where to look: the
        // last response, when the last call left one (else `raw/` holds
        // an earlier call's, or nothing).
        Action::Prompt(_) => format!(
            "{}every failed call of {name} is in {}{}",
            error
                .as_ref()
                .and_then(|e| first_step(session, e))
                .map(|step| format!("{step}; "))
                .unwrap_or_default(),
            run_dir.show(&run_dir.failures_path()),
            if unkept {
                "; no response of its last call is kept (none came back before it ended)"
                    .to_string()
            } else {
                format!(
                    ", the last response in {}",
                    run_dir.show(&run_dir.raw_path(name))
                )
            }
        ),
    }
}

/// What a failure's kind says to change, without `then run planexe
/// build`, which the build's hint goes on to say; its whole remedy when
/// it has nothing to change.
fn first_change(session: &Session, e: &TaskError) -> String {
    let remedy = e.remedy();
    match remedy.change {
        Some(change) => change.to_string(),
        None => session.advice().hint(&Trouble::Failed(remedy)),
    }
}

/// What to do first about a prompt task's failure: the change its kind
/// asks for, or, when building again may do (a chain whose earlier model
/// may recover), that and then the change.
fn first_step(session: &Session, e: &TaskError) -> Option<String> {
    let remedy = e.remedy();
    match remedy.then {
        Then::BuildAgainFirst(_) => Some(session.advice().hint(&Trouble::Failed(remedy))),
        _ => remedy.change.map(str::to_string),
    }
}

/// Whose requests of a task's run had no recorded answer, from its
/// attempts: `its request to model b`, `its requests to model a, its
/// judge's model j`. A chain's other models may have had theirs (refused,
/// or failed otherwise): the task's message says what each did.
fn missed(attempts: &[AttemptRecord]) -> String {
    let mut who: Vec<String> = Vec::new();
    let misses = attempts
        .iter()
        .filter(|a| a.outcome == ErrorKind::ReplayMiss.as_str());
    for a in misses {
        let named = if a.judge {
            format!("its judge's model {}", a.model)
        } else {
            format!("model {}", a.model)
        };
        if !who.contains(&named) {
            who.push(named);
        }
    }
    match who.len() {
        0 => "its request".into(),
        1 => format!("its request to {}", who[0]),
        _ => format!("its requests to {}", who.join(", ")),
    }
}
