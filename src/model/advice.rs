//! What to tell a user whose pipeline file cannot be used, who named what
//! the pipeline does not have, whose task failed, whose build stopped or
//! was refused, or who makes a run, in the terms of the door they came in
//! by. The command line chooses a file per invocation (`-f FILE`,
//! `$PLANEXE_PIPELINE`, the run's record) and lists tasks with `planexe
//! status`; a server has other means (the MCP server names a pipeline when
//! it makes a run, lists tasks with its `status` tool, and builds with
//! its `build` tool rather than `planexe build`). The layers
//! below say what went wrong ([`Trouble`]); the words come from the
//! caller's [`Advice`], so no user is told to use a flag or a command it
//! cannot. On the command line, the commands a hint gives carry the `-C
//! DIR` its user named when the run directory is not the current one, so
//! they can be run where the user is (a Makefile's folder); a user who ran
//! a command in a folder inside a run is given that command back with the
//! `-C DIR` it lacks ([`Advice::ran`]).

use std::fmt;
use std::sync::Arc;

use crate::store::lock::BUSY;
use crate::store::remedy::{Remedy, Then};

/// Why the pipeline file chosen for an invocation cannot be used, or what
/// else the user must act on in words that depend on the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble<'a> {
    /// The file is not there.
    Missing,
    /// The file is not there, and the folder is inside `dir` (as a path
    /// from it, `../..`), which holds a run or a pipeline file.
    RunAbove { dir: &'a str },
    /// The file cannot be read (a folder, no permission, too big).
    Unreadable,
    /// The file holds binary data, not TOML text.
    Binary,
    /// The file the run directory recorded at its last build is gone.
    RecordedGone,
    /// The run directory records a pipeline file in another run directory
    /// and has one of its own (`own`, shown): a copy of that run, made when
    /// such a record held an absolute path.
    RecordedElsewhere { own: &'a str },
    /// The run directory's record of its pipeline file (shown as
    /// `record`) does not hold a usable path.
    RecordBroken { record: &'a str },
    /// The file `$PLANEXE_PIPELINE` names is not there (nothing is, or a
    /// file stands where a folder on its way should be).
    EnvGone,
    /// Another build recorded the pipeline file `recorded` for the run
    /// while this one was starting with `mine`.
    Moved { recorded: &'a str, mine: &'a str },
    /// A task name (of `explain`, `clean`, `touch`...) names no task,
    /// instance or fan-out: where to find the names.
    UnknownTask,
    /// A build's target names no task and no task's output: where to find
    /// the names.
    UnknownTarget,
    /// A model override names no model: where the override came from
    /// (`from`), words for the message rather than a hint line.
    ModelOverride { from: ModelSourceKind },
    /// A task's sidecar is damaged: what rewrites it, words for the end of
    /// a warning rather than a hint line.
    DamagedSidecar,
    /// The state log holds lines that do not parse: what rewrites it,
    /// words for the middle of a warning.
    DamagedLog,
    /// A task failed: what to do about it (the change its failure asks
    /// for, then the door's own step).
    Failed(Remedy),
    /// Tasks of a build failed: what to do once their cause is fixed,
    /// words for the end of the build's hint.
    TasksFailed,
    /// `count` tasks failed besides the first, which the build's hint is
    /// about: where to read why each failed, words for its middle.
    OthersFailed { count: usize },
    /// A model a build needs reads its API key from `$var`, which the
    /// process's environment does not set.
    MissingKey { var: &'a str },
    /// The folder of recorded answers `dir` a build needs does not exist:
    /// a replay model's (which replays `live`), or `--replay`'s (`None`).
    NoRecordings { dir: &'a str, live: Option<&'a str> },
    /// Another command holds the run directory's lock.
    Busy,
    /// A write of planexe's own in the run directory `dir` found the disk
    /// full (or the quota used up): what to free, and how to go on.
    NoSpace { dir: &'a str },
    /// A build asks the model the run remembers from an earlier build's
    /// choice: words for the end of its note.
    ModelFromRun,
    /// A task no longer in the pipeline left outputs on disk: what deletes
    /// them, words for the end of a warning.
    TaskLeft { task: &'a str },
    /// A new run's prompt tasks ask a replay model, whose answers were
    /// recorded for another plan: how to build the run (`run`, as its
    /// maker named it) asking the live model `live` it replays instead,
    /// words for the end of a note.
    ReplayForNewRun { live: &'a str, run: &'a str },
    /// The folder chosen for a new run (`run`, as its maker named it)
    /// holds a run already: what to do instead.
    RunExists { run: &'a str },
    /// The folder chosen for a new run (`run`, as its maker named it)
    /// holds files but no run (made by hand): what to do instead.
    FolderTaken { run: &'a str },
    /// A task reads `path`, which no task produces and the run directory
    /// `dir` (shown) does not hold. `new_run`: the run is being made
    /// (`planexe new`, `run_create`), seeded with `plan.txt` and the files
    /// its maker gave: no folder is left to create the file in once the
    /// run is refused.
    SourceMissing {
        path: &'a str,
        dir: &'a str,
        new_run: bool,
    },
    /// A build runs tasks whatever their state because it was told to:
    /// what told it, words for the resume line.
    Forced,
    /// A replay model, which replays the live model `live` from the folder
    /// `dir`, has no recorded answer for a task's request: how to have one.
    ReplayMissed { dir: &'a str, live: &'a str },
}

/// Where a model override (the model every prompt task of an invocation
/// asks) came from. The words for each are the door's ([`Advice`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSourceKind {
    /// Named for this invocation: `--model`, the build tool's `model`.
    Flag,
    /// `$PLANEXE_MODEL` of the process (for a server, the server's).
    Env,
    /// Remembered in `.planexe/run.json` from an earlier build's choice.
    Run,
}

/// How a caller says what to do about a [`Trouble`]: one `hint:` line.
#[derive(Clone)]
pub struct Advice(Door, bool);

#[derive(Clone)]
enum Door {
    /// The command line's words; `run` is the run directory as its user
    /// named it with `-C` (shell-quoted), when it is not the current one:
    /// every command a hint gives then names it, so the hint can be run
    /// where the user is (a Makefile's or CI's folder).
    ///
    /// `ran` is the command its user ran, the words after `planexe`
    /// (shell-quoted), when the caller said: a hint that asks for `-C DIR`
    /// gives it back with it.
    CommandLine {
        run: Option<Arc<str>>,
        ran: Option<Arc<[String]>>,
    },
    /// Another door's words (the MCP server's).
    Other(fn(&Trouble<'_>) -> String),
}

impl Advice {
    /// The command line's words: `-f FILE`, `$PLANEXE_PIPELINE`.
    pub const COMMAND_LINE: Advice = Advice(
        Door::CommandLine {
            run: None,
            ran: None,
        },
        false,
    );

    /// Advice in the words of `say`.
    pub const fn new(say: fn(&Trouble<'_>) -> String) -> Advice {
        Advice(Door::Other(say), false)
    }

    /// This advice, for a run being made ([`Advice::makes_run`]).
    pub fn making_run(self) -> Advice {
        Advice(self.0, true)
    }

    /// Whether the advice is for a run being made (`planexe new`,
    /// `run_create`): a refusal undoes the run, so no hint may send its
    /// user into the run's folder.
    pub fn makes_run(&self) -> bool {
        self.1
    }

    /// The command line's words for a run directory other than the current
    /// one, which its user named `run` (`-C runs/a`): the commands its
    /// hints give carry `-C runs/a`. Other doors' words are unchanged.
    pub fn in_run(self, run: &str) -> Advice {
        match self.0 {
            Door::CommandLine { ran, .. } => Advice(
                Door::CommandLine {
                    run: Some(quoted(run).into()),
                    ran,
                },
                self.1,
            ),
            other => Advice(other, self.1),
        }
    }

    /// The words for `trouble`: a hint line (or, for the troubles that
    /// say so, a part of a message).
    pub fn hint(&self, trouble: &Trouble<'_>) -> String {
        match &self.0 {
            Door::CommandLine { ran, .. } => match (trouble, ran) {
                (Trouble::RunAbove { dir }, Some(ran)) => format!(
                    "this folder is inside {dir}, a run directory: pass -C {dir} (`{}`)",
                    again_in(ran, dir)
                ),
                _ => self.localize(&command_line(trouble)).into_owned(),
            },
            Door::Other(say) => say(trouble),
        }
    }

    /// Whether this door's commands name a run directory (`-C DIR`): the
    /// command line's, for a run directory other than the current one.
    pub fn names_run(&self) -> bool {
        matches!(&self.0, Door::CommandLine { run: Some(_), .. })
    }

    /// `hint`, written for the run directory itself (as the command
    /// line's words are, and as `status` keeps the hints its build
    /// recorded), with this door's `-C DIR` after each `planexe SUBCOMMAND`
    /// that has none: the one place the `-C` goes in.
    pub fn localize<'h>(&self, hint: &'h str) -> std::borrow::Cow<'h, str> {
        let Door::CommandLine { run: Some(run), .. } = &self.0 else {
            return hint.into();
        };
        const SUBCOMMANDS: [&str; 11] = [
            "build", "status", "clean", "touch", "check", "explain", "edit", "watch", "wait",
            "report", "graph",
        ];
        let mut out = String::with_capacity(hint.len());
        let mut rest = hint;
        while let Some(at) = rest.find("planexe ") {
            let after = &rest[at + "planexe ".len()..];
            let word_len = after
                .find(|c: char| !c.is_ascii_lowercase())
                .unwrap_or(after.len());
            let (word, tail) = after.split_at(word_len);
            out.push_str(&rest[..at + "planexe ".len()]);
            out.push_str(word);
            if SUBCOMMANDS.contains(&word) && !tail.starts_with(" -C ") {
                out.push_str(" -C ");
                out.push_str(run);
            }
            rest = tail;
        }
        out.push_str(rest);
        out.into()
    }

    /// The command line's words for a user who ran `planexe` with the
    /// arguments `words` (after the program's name): a hint that asks for
    /// `-C DIR` gives that command back with it. Other doors' words are
    /// unchanged.
    pub fn ran<S: AsRef<str>>(self, words: &[S]) -> Advice {
        match self.0 {
            Door::CommandLine { run, .. } => Advice(
                Door::CommandLine {
                    run,
                    ran: Some(words.iter().map(|w| quoted(w.as_ref())).collect()),
                },
                self.1,
            ),
            other => Advice(other, self.1),
        }
    }

    /// `planexe` and `command` (a subcommand and its arguments, such as
    /// `build outline`) in this door's words: with `-C DIR` for a run
    /// directory named on the command line (see [`Advice::in_run`]).
    pub fn command(&self, command: &str) -> String {
        self.localize(&format!("planexe {command}")).into_owned()
    }
}

/// `planexe` and the command `ran` (its words after `planexe`), with
/// `-C dir` after its subcommand, as the command line's hints put it.
fn again_in(ran: &[String], dir: &str) -> String {
    // The global options that take a value (`--color never`): the word
    // after one is no subcommand.
    const VALUED: [&str; 5] = ["-C", "--directory", "-f", "--file", "--color"];
    let mut sub = None;
    let mut skip = false;
    for (i, word) in ran.iter().enumerate() {
        if std::mem::take(&mut skip) {
            continue;
        }
        if VALUED.contains(&word.as_str()) {
            skip = true;
        } else if !word.starts_with('-') {
            sub = Some(i);
            break;
        }
    }
    let at = sub.map_or(0, |i| i + 1);
    let mut words: Vec<&str> = vec!["planexe"];
    words.extend(ran[..at].iter().map(String::as_str));
    words.extend(["-C", dir]);
    words.extend(ran[at..].iter().map(String::as_str));
    words.join(" ")
}

impl Default for Advice {
    fn default() -> Advice {
        Advice::COMMAND_LINE
    }
}

impl fmt::Debug for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Advice(..)")
    }
}

/// The command line's words, written for the run directory itself (see
/// [`Advice::localize`] for another).
fn command_line(trouble: &Trouble<'_>) -> String {
    match trouble {
        Trouble::Missing => "run planexe in a directory with a pipeline.toml, or pass -f FILE".into(),
        Trouble::RunAbove { dir } => format!(
            "this folder is inside {dir}, a run directory: pass -C {dir} (`planexe status -C {dir}`)"
        ),
        Trouble::Unreadable => "pass -f FILE naming a pipeline file (TOML text)".into(),
        Trouble::Binary => {
            "this looks like a binary file, not a pipeline: check -f, $PLANEXE_PIPELINE or .planexe/pipeline".into()
        }
        Trouble::RecordedGone => {
            "pass -f FILE to choose a pipeline file; it will be remembered".into()
        }
        Trouble::RecordBroken { record } => format!(
            "pass -f FILE to choose the pipeline file (it is then recorded), or delete {record}"
        ),
        Trouble::RecordedElsewhere { own } => {
            format!("pass -f {own} once to build this run directory's own file; it is then recorded")
        }
        Trouble::EnvGone => "set PLANEXE_PIPELINE to an existing pipeline file, or unset it to use pipeline.toml; -f FILE chooses one for this command".into(),
        Trouble::Moved { recorded, mine } => format!(
            "run the command again to build with {recorded}, or pass -f {mine} to build with {mine} (it is then recorded)"
        ),
        Trouble::UnknownTask | Trouble::UnknownTarget => "run `planexe status` to list tasks".into(),
        Trouble::ModelOverride { from } => match from {
            ModelSourceKind::Flag => "from --model".into(),
            ModelSourceKind::Env => "from $PLANEXE_MODEL; unset it, or name one of the models".into(),
            ModelSourceKind::Run => "chosen for this run by an earlier --model, remembered in \
                                     .planexe/run.json; `planexe build --model NAME` chooses \
                                     another"
                .into(),
        },
        Trouble::DamagedSidecar => "`planexe build` rewrites it from the state log".into(),
        Trouble::DamagedLog => "`planexe build`".into(),
        Trouble::Failed(Remedy {
            change,
            then: Then::BuildAgainFirst(why),
        }) => remedy_first(format!("run planexe build again; {why}"), *change),
        Trouble::Failed(remedy) => {
            let then = match remedy.then {
                Then::Nothing | Then::BuildAgainFirst(_) => None,
                Then::Build => Some("then run planexe build".to_string()),
                Then::BuildAgain(why) => Some(format!("run planexe build again; {why}")),
                Then::Resume => Some("run planexe build again to resume".into()),
                Then::Record => Some("record it: planexe build --record DIR (with a live model)".into()),
            };
            remedy_words(remedy.change, then)
        }
        Trouble::TasksFailed => {
            "finished tasks are kept, so fix the cause and run planexe build again".into()
        }
        Trouble::OthersFailed { count } => {
            format!("planexe status says why the other {count} failed")
        }
        Trouble::MissingKey { var } => {
            format!("export {var}=... before the build; keys are read from the environment only")
        }
        Trouble::NoRecordings { dir, live: Some(live) } => format!(
            "record answers there: planexe build --record {dir} --model {live} (with a live model), or fix `dir`"
        ),
        Trouble::NoRecordings { dir, live: None } => {
            format!("record answers first: planexe build --record {dir} (with a live model)")
        }
        Trouble::Forced => "-B".into(),
        Trouble::ReplayMissed { dir, live } => format!(
            "ask the live model it replays: planexe build --model {live} (add --record {dir} to keep its answers for the replay)"
        ),
        Trouble::Busy => BUSY.into(),
        Trouble::NoSpace { dir } => format!(
            "free space on the disk that holds {dir} (what failed tasks wrote is kept in .planexe/failed/), then run planexe build again: tasks already done are kept and do not run again"
        ),
        Trouble::ModelFromRun => "chosen for this run by an earlier --model (pass --model to change it)".into(),
        Trouble::TaskLeft { task } => {
            format!("`planexe clean {}` deletes them and forgets it", quoted(task))
        }
        Trouble::ReplayForNewRun { live, run } => format!(
            "to ask the live model it replays: planexe build -C {} --model {live}",
            quoted(run)
        ),
        Trouble::RunExists { run } => format!(
            "choose another name, or `planexe build -C {}` to resume it",
            quoted(run)
        ),
        Trouble::FolderTaken { run } => format!(
            "a new run is made only in a folder that is missing or empty: choose another name, or move what {run} holds away; to build in it as it is, put plan.txt in it and run `planexe build -C {}`",
            quoted(run)
        ),
        Trouble::SourceMissing {
            path,
            dir,
            new_run: false,
        } => format!("create {path} in {dir}, or add a task with `outputs = [\"{path}\"]`"),
        Trouble::SourceMissing {
            path,
            new_run: true,
            ..
        } => format!(
            "no task makes {path}, so the run's maker gives it: run `planexe new` again with `--input {}`, which copies it from the current folder into the run at the same path; or add a task with `outputs = [\"{path}\"]`",
            quoted(path)
        ),
    }
}

/// `path` (or a task's name, such as `detail[1]`, which a shell would
/// take for a glob) as a shell word, for a command line in a hint.
pub fn quoted(path: &str) -> String {
    shlex::try_quote(path).map_or_else(|_| path.to_string(), |q| q.into())
}

/// A [`Remedy`] whose step, in the door's words (`again`), comes first,
/// and its change only if that fails ([`Then::BuildAgainFirst`]).
pub fn remedy_first(again: String, change: Option<&str>) -> String {
    match change {
        Some(change) => format!("{again}; if it fails again: {change}"),
        None => again,
    }
}

/// A [`Remedy`]'s change and the door's step after it, in one hint.
pub fn remedy_words(change: Option<&str>, then: Option<String>) -> String {
    match (change, then) {
        (Some(change), Some(then)) => format!("{change}, {then}"),
        (Some(change), None) => change.to_string(),
        (None, Some(then)) => then,
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ErrorKind;

    /// A chain whose primary failed with HTTP 500, its fallback 401.
    fn chain() -> crate::store::TaskError {
        crate::store::TaskError {
            recoverable: true,
            ..crate::store::TaskError::new(ErrorKind::Auth, "all models failed: ...")
        }
    }

    #[test]
    fn a_chain_that_may_recover_is_built_again_before_the_change() {
        let words = Advice::COMMAND_LINE.hint(&Trouble::Failed(chain().remedy()));
        assert!(
            words.starts_with("run planexe build again; an earlier model")
                && words
                    .ends_with("; if it fails again: check the API key and the model's base_url"),
            "{words}"
        );
        // Not for a failure of that kind alone.
        let auth = crate::store::TaskError::new(ErrorKind::Auth, "HTTP 401");
        let words = Advice::COMMAND_LINE.hint(&Trouble::Failed(auth.remedy()));
        assert_eq!(words, "check the API key and the model's base_url");
    }

    fn all(advice: &Advice) -> Vec<String> {
        [
            Trouble::UnknownTask,
            Trouble::TasksFailed,
            Trouble::OthersFailed { count: 2 },
            Trouble::Failed(ErrorKind::Stopped.remedy(true)),
            Trouble::Failed(chain().remedy()),
            Trouble::ReplayMissed {
                dir: "rec",
                live: "local",
            },
            Trouble::TaskLeft { task: "old[1]" },
            Trouble::Busy,
            Trouble::DamagedLog,
        ]
        .iter()
        .map(|t| advice.hint(t))
        .collect()
    }

    #[test]
    fn commands_name_the_run_directory_the_user_named() {
        let here = all(&Advice::COMMAND_LINE);
        let there = all(&Advice::COMMAND_LINE.in_run("runs/my plan"));
        for (here, there) in here.iter().zip(&there) {
            assert!(here.contains("planexe "), "{here}");
            assert!(!here.contains(" -C "), "{here}");
            assert_eq!(
                there,
                &here
                    .replace("planexe build", "planexe build -C 'runs/my plan'")
                    .replace("planexe status", "planexe status -C 'runs/my plan'")
                    .replace("planexe clean", "planexe clean -C 'runs/my plan'")
            );
        }
        assert_eq!(Advice::COMMAND_LINE.hint(&Trouble::Busy), BUSY);
        assert_eq!(
            Advice::COMMAND_LINE.in_run("a").command("edit"),
            "planexe edit -C a"
        );
    }

    #[test]
    fn a_recorded_hint_is_localized_once() {
        let there = Advice::COMMAND_LINE.in_run("runs/my plan");
        for hint in all(&Advice::COMMAND_LINE) {
            let local = there.localize(&hint);
            assert_eq!(
                local,
                hint.replace("planexe build", "planexe build -C 'runs/my plan'")
                    .replace("planexe status", "planexe status -C 'runs/my plan'")
                    .replace("planexe clean", "planexe clean -C 'runs/my plan'")
            );
            // Idempotent: a hint that names the run already is kept.
            assert_eq!(there.localize(&local), local);
        }
        assert_eq!(
            there.localize("planexe builds; planexe build -C x; planexe"),
            "planexe builds; planexe build -C x; planexe"
        );
        assert_eq!(
            Advice::COMMAND_LINE.localize("planexe build"),
            "planexe build"
        );
    }

    /// Run from a folder inside a run, the hint gives back the command
    /// the user ran, with `-C`, after its subcommand.
    #[test]
    fn the_run_above_is_named_in_the_command_the_user_ran() {
        let above = Trouble::RunAbove { dir: "../.." };
        let hint = |words: &[&str]| Advice::COMMAND_LINE.ran(words).hint(&above);
        assert_eq!(
            hint(&["build", "b", "my task"]),
            "this folder is inside ../.., a run directory: pass -C ../.. (`planexe build -C ../.. b 'my task'`)"
        );
        assert!(hint(&["--color", "never", "status", "--json"])
            .ends_with("(`planexe --color never status -C ../.. --json`)"));
        assert!(hint(&["-q", "watch"]).ends_with("(`planexe -q watch -C ../..`)"));
        // Not told what the user ran: `status`, as before.
        assert!(Advice::COMMAND_LINE
            .hint(&above)
            .ends_with("(`planexe status -C ../..`)"));
    }

    #[test]
    fn another_doors_words_have_no_run_directory() {
        fn say(_: &Trouble<'_>) -> String {
            "use the build tool".into()
        }
        let advice = Advice::new(say).in_run("runs/a");
        assert_eq!(advice.hint(&Trouble::TasksFailed), "use the build tool");
        assert_eq!(advice.command("build"), "planexe build");
    }
}
