//! What a build's notices say on the terminal: each [`Notice`] as a note
//! or a warning, in the words of the door the build came in by (its
//! `Advice`), with the resume line and the closing line of a build.

use super::printer::Printer;
use crate::exec::observer::{Notice, Ran, ResumeSummary, Unexpanded};
use crate::model::{Advice, Trouble};
use crate::store::untrusted::printable;
use crate::store::ErrorKind;

/// A line for the terminal.
enum Line {
    Note(String),
    Warning(String),
}

/// Prints what a notice says, saying what to do in `advice`'s words.
pub(super) fn say(printer: &Printer, notice: &Notice, advice: &Advice) {
    match describe(notice, advice) {
        Line::Note(text) => printer.note(&text),
        Line::Warning(text) => printer.warn(&text),
    }
}

/// What a notice says, saying what to do in `advice`'s words.
fn describe(notice: &Notice, advice: &Advice) -> Line {
    use Line::{Note, Warning};
    let resume = || advice.hint(&Trouble::Failed(ErrorKind::Stopped.remedy(true)));
    match notice {
        Notice::StoppedLeftover { task, pid } => Note(format!(
            "stopped {task} (pid {pid}), left running by a build that crashed"
        )),
        Notice::LeftAlone { task, pid, why } => Note(format!(
            "left pid {pid} alone: a crashed build recorded it for {task}, but {why}"
        )),
        Notice::TemporariesRemoved(n) => Note(format!(
            "removed {n} temporary file(s) left by a build that crashed mid-write"
        )),
        Notice::Restored { task, count } => Note(format!(
            "restored {count} output(s) of {task} from before an interrupted run"
        )),
        Notice::SetApart {
            task,
            outputs,
            folder,
        } => Note(format!(
            "moved what an interrupted run of {task} left at its outputs ({}) to {folder}/: it may be cut short",
            outputs.join(", ")
        )),
        Notice::InstanceRemoved { task, outputs } => Note(format!(
            "removed {task} (its item is gone){}",
            if outputs.is_empty() {
                String::new()
            } else {
                format!(": {}", outputs.join(", "))
            }
        )),
        Notice::UnreadableStatus { path, task } => Warning(format!(
            "{path} is unreadable; {task} counts as not built and will run"
        )),
        Notice::StatusRepaired {
            path,
            dry_run: false,
        } => Warning(format!(
            "{path} was damaged; rewrote it from the state log"
        )),
        Notice::StatusRepaired { path, .. } => Warning(format!(
            "{path} is damaged; a build rewrites it from the state log"
        )),
        Notice::LogDamaged { message } => Warning(message.clone()),
        Notice::TaskLeft { task, outputs } => Warning(format!(
            "task {task} is no longer in the pipeline; its outputs stay on disk: {} ({})",
            outputs.join(", "),
            advice.hint(&Trouble::TaskLeft { task })
        )),
        Notice::OutputsDropped { outputs } => Warning(dropped(outputs)),
        Notice::Resuming(summary) => Note(resuming(summary, advice)),
        Notice::DefinitionsChanged { tasks, unexpanded } => Note(format!(
            "the definition of {} changed since its last run: it will re-run; every other finished task keeps its result{}",
            tasks.join(", "),
            match unexpanded.len() {
                0 => String::new(),
                n => format!(
                    " (the instances of {} are judged when {} built)",
                    unexpanded.join(", "),
                    if n == 1 { "its list is" } else { "their lists are" }
                ),
            }
        )),
        Notice::ModelFromRun(model) => Note(format!(
            "using model {model}, {}",
            advice.hint(&Trouble::ModelFromRun)
        )),
        Notice::EditedKept {
            task,
            path,
            dry_run: true,
        } => Note(format!(
            "output {path} of task {task} was edited by hand: it would be kept, and tasks that read it re-run"
        )),
        Notice::EditedKept { task, path, .. } => Note(format!(
            "kept hand-edited {path} (output of {task}); tasks that read it will re-run"
        )),
        Notice::NothingToDo { tasks } => Note(format!("nothing to do: {tasks} task(s) up to date")),
        Notice::Expanded {
            task, instances, ..
        } => Note(format!(
            "expanded {task}: {instances} instance(s), as its list now says"
        )),
        Notice::Ran(ran) => Note(ran_line(ran, &resume())),
        Notice::StoppedEarly => Note(format!("stopped: no task started; {}", resume())),
        Notice::WaitingForLock(who) => Note(format!(
            "waiting: {who}; this build starts when it ends (Ctrl-C stops waiting)"
        )),
        Notice::Answers(warning)
        | Notice::GlobLeavesOut(warning)
        | Notice::LineLost(warning)
        | Notice::WouldBeRefused(warning) => Warning(warning.clone()),
    }
}

/// The warning of outputs tasks no longer declare (task, path): the
/// first few named, with their tasks.
fn dropped(outputs: &[(String, String)]) -> String {
    const SHOWN: usize = 3;
    let mut named: Vec<String> = (outputs.iter().take(SHOWN))
        .map(|(task, path)| format!("{path} ({task})"))
        .collect();
    if outputs.len() > SHOWN {
        named.push(format!("{} more", outputs.len() - SHOWN));
    }
    let named = named.join(", ");
    if outputs.len() == 1 {
        format!(
            "an output its task no longer declares stays on disk from its last run, and no task makes it now: {named}; delete it if nothing needs it (a glob still finds it)"
        )
    } else {
        format!(
            "outputs their tasks no longer declare stay on disk from their last runs, and no task makes them now: {named}; delete them if nothing needs them (a glob still finds them)"
        )
    }
}

/// `resuming run 2026-03-06T19:47Z: 23 done, 1 failed (assumptions: schema:
/// ...), 1 interrupted, 38 to run; starting with assumptions, risks`; a dry
/// run's says what a build would do: `would resume run ...; would start
/// with ...`.
fn resuming(s: &ResumeSummary, advice: &Advice) -> String {
    let created = s
        .created_at
        .parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%Y-%m-%dT%H:%MZ").to_string())
        .unwrap_or_else(|_| s.created_at.clone());
    let (resume, start) = match s.dry_run {
        true => ("would resume", "would start"),
        false => ("resuming", "starting"),
    };
    let mut line = format!("{resume} run {created}: {} done", s.done);
    if let Some((name, message)) = s.failed.first() {
        let more = if s.failed.len() > 1 {
            format!(", and {} more", s.failed.len() - 1)
        } else {
            String::new()
        };
        line.push_str(&format!(
            ", {} failed ({name}: {}{more})",
            s.failed.len(),
            gist(&printable(message))
        ));
    }
    if s.interrupted > 0 {
        line.push_str(&format!(", {} stopped", s.interrupted));
    }
    line.push_str(&format!(", {} to run", s.to_run));
    if s.forced > 0 {
        let by = advice.hint(&Trouble::Forced);
        line.push_str(&format!(" ({} forced by {by})", s.forced));
    }
    if s.maybe > 0 {
        line.push_str(&format!(", {} more if what they read changes", s.maybe));
    }
    if !s.expanding.is_empty() {
        line.push_str(&format!(
            ", {} fan-out(s) to expand once their list is built ({}{})",
            s.expanding.len(),
            names(&s.expanding),
            done_before(
                &s.expanding,
                ", each kept if its item and its inputs are unchanged"
            )
        ));
    }
    if !s.stuck.is_empty() {
        line.push_str(&format!(
            ", {} fan-out(s) whose list is not built ({}{})",
            s.stuck.len(),
            names(&s.stuck),
            done_before(&s.stuck, "")
        ));
        if s.behind > 0 {
            line.push_str(&format!(" and {} task(s) waiting behind them", s.behind));
        }
    }
    if !s.starting_with.is_empty() {
        line.push_str(&format!("; {start} with {}", s.starting_with.join(", ")));
    }
    line
}

/// What a failure's message says before the advice it ends with (`...
/// (5 attempts); is the server running at ...?`), at most 120 characters:
/// a line that sums up a run names what failed; `planexe status` says
/// the rest.
fn gist(message: &str) -> String {
    const MOST: usize = 120;
    let what = message.split("; ").next().unwrap_or(message);
    match what.char_indices().nth(MOST) {
        Some((end, _)) => format!("{}…", what[..end].trim_end()),
        None => what.to_string(),
    }
}

fn names(fanouts: &[Unexpanded]) -> String {
    let names: Vec<&str> = fanouts.iter().map(|f| f.name.as_str()).collect();
    names.join(", ")
}

/// `; N instance(s) done before` and `then`, when the fan-outs' records
/// hold instances that succeeded: the `done` count leaves them out, as
/// their list, yet to be read, decides which keep their result.
fn done_before(fanouts: &[Unexpanded], then: &str) -> String {
    match fanouts.iter().map(|f| f.done_before).sum::<usize>() {
        0 => String::new(),
        n => format!("; {n} instance(s) done before{then}"),
    }
}

/// What the build's tasks came to; `resume`: what to do when it stopped.
fn ran_line(ran: &Ran, resume: &str) -> String {
    let line = ran_counts(ran, resume);
    match (ran.unexpanded.len(), ran.behind_unexpanded) {
        (0, _) => line,
        (n, 0) => format!(
            "{line}; {n} fan-out(s) did not expand, their list not built, so their instances are not counted: {}",
            ran.unexpanded.join(", ")
        ),
        (n, behind) => format!(
            "{line}; {behind} of them {} behind {n} fan-out(s) whose list was not built ({}), as do their instances, counted once the list exists",
            if behind == 1 { "waits" } else { "wait" },
            ran.unexpanded.join(", ")
        ),
    }
}

/// The counts of [`ran_line`].
fn ran_counts(ran: &Ran, resume: &str) -> String {
    if ran.interrupted {
        let failed = match ran.failed.len() {
            0 => String::new(),
            n => format!("{n} failed ({}), ", crate::error::listed(&ran.failed)),
        };
        return format!(
            "stopped: {} task(s) finished, {failed}{} stopped, {} not started; {resume}",
            ran.succeeded, ran.stopped, ran.not_run
        );
    }
    if !ran.failed.is_empty() {
        return format!(
            "{} task(s) succeeded, {} failed ({}), {} not run",
            ran.succeeded,
            ran.failed.len(),
            crate::error::listed(&ran.failed),
            ran.not_run
        );
    }
    let mut line = format!(
        "built {} task(s) in {:.2}s",
        ran.succeeded,
        ran.elapsed.as_secs_f64()
    );
    if ran.skipped > 0 {
        line.push_str(&format!(
            ", {} found up to date after their inputs were rebuilt",
            ran.skipped
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::gist;

    #[test]
    fn a_failures_gist_is_what_failed_without_the_advice_and_short() {
        assert_eq!(
            gist("local: connection: refused (5 attempts); is the server running at x? Start it"),
            "local: connection: refused (5 attempts)"
        );
        assert_eq!(gist("exit status 1"), "exit status 1");
        let long = format!("schema: {}", "é".repeat(200));
        let cut = gist(&long);
        assert_eq!(cut.chars().count(), 121, "{cut}");
        assert!(cut.ends_with("é…"), "{cut}");
    }
}
