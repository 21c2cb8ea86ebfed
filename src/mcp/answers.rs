//! What the server answers about a run, as JSON: the status (the document
//! of `planexe status --json`, with the run's name and, when a task
//! failed, one consolidated `error`; its task lines bounded for a
//! model's context: [`STATUS_TASKS_MAX`] at most, those that need
//! attention first, their null fields left out, the first ten failed ones
//! with the end of their log), an explanation of a task (its files and
//! upstream tasks bounded alike, those that make it stale first),
//! and the summary of the last build (its task lines bounded alike); and
//! the refusal of a tool that needs a run's pipeline file, which cannot
//! be used, with `pipeline_error` as its data ([`Refusal`]), and of
//! `run_create` for a pipeline file it cannot use. Each opens
//! the run as the CLI would, from a [`Location`], and reads it without
//! taking the lock, so it answers while a build runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::advice::ADVICE;
use super::pipelines;
use super::runs::Root;
use crate::error::{Error, Result};
use crate::exec::env::{self, Env};
use crate::model::{Advice, Lists, Pipeline, Trouble};
use crate::observe::explain::{self, FileLine, FileVerdict};
use crate::observe::status::{self, StatusReport};
use crate::observe::Standing;
use crate::plan::check::Reason;
use crate::plan::session::{Location, ModelChoice};
use crate::plan::Session;
use crate::store::untrusted::Secrets;
use crate::store::{files, CheckMode, ErrorKind, RunDir};

/// A running build without progress for this long is `stalled`, as for
/// `planexe status`.
const STALL_AFTER: Duration = Duration::from_secs(10 * 60);

/// The most task lines a status or a summary lists: a fan-out's
/// thousands of instances would fill a model's context (1.6 MB for 3000),
/// and `counts` has them all.
pub const STATUS_TASKS_MAX: usize = 100;

/// The most task lines of a status that keep their `log_tail`.
const FAILED_TAILS_MAX: usize = 10;

/// What the server knows that opening a run needs.
pub struct Opener {
    /// The folder runs live in.
    pub root: Root,
    /// The server's default pipeline file, and how to show it: the one a
    /// run that records none is opened and built with.
    pub default_pipeline: (PathBuf, String),
    /// `$PLANEXE_MODEL`.
    pub env_model: Option<String>,
}

impl Opener {
    /// The pipeline file the server opens and builds the run at `run`
    /// with ([`pipelines::of_run`]), and how to show it.
    pub fn pipeline(&self, run: &Path) -> Result<(PathBuf, String)> {
        let name = run
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        pipelines::of_run(&self.root, run, &name, &self.default_pipeline)
    }

    /// Where the run at `run` is, with `pipeline` named as its pipeline
    /// file, so that no rule of the command line's picks another.
    fn location_with(run: &Path, pipeline: (PathBuf, String)) -> Location {
        Location {
            run_dir: run.to_path_buf(),
            file: Some(pipeline),
            env_file: None,
            named_dir: true,
            advice: ADVICE,
        }
    }

    /// Where the run at `run` is, with the pipeline file the server opens
    /// and builds it with.
    fn location(&self, run: &Path) -> Result<Location> {
        Ok(Self::location_with(run, self.pipeline(run)?))
    }

    /// The secrets `read_output` scrubs from what it returns from the run
    /// at `run`: those a build of it scrubs (the values in `env` of the
    /// `api_key_env`s of its pipeline and of the server's `pipeline`, the
    /// tokens of their webhooks, `env`'s own secrets). The pipelines are
    /// only parsed: one that no longer resolves still names its keys.
    pub fn secrets(&self, run: &Path, pipeline: &Path, env: &Env) -> Secrets {
        let mut files = vec![pipeline.to_path_buf()];
        if let Ok(located) = self.location(run).and_then(|l| l.locate()) {
            files.push(located.pipeline);
        }
        let parsed: Vec<Pipeline> = files
            .iter()
            .filter_map(|f| Pipeline::load_with(f, f.display().to_string(), &ADVICE).ok())
            .collect();
        let key_vars = parsed.iter().flat_map(|p| {
            p.def
                .models
                .values()
                .filter_map(|m| m.api_key_env.as_ref().map(|v| v.get_ref().as_str()))
        });
        let urls = parsed.iter().flat_map(|p| {
            p.def
                .hooks
                .iter()
                .filter_map(|h| h.get_ref().url.as_ref())
                .map(|u| u.get_ref().as_str())
        });
        Secrets::new(env::secrets(key_vars, urls, env), env::MIN_SECRET_LEN)
    }

    /// Opens the run at `run` as a command that reads it as it is.
    pub fn open(&self, run: &Path) -> Result<Session> {
        let model = ModelChoice {
            flag: None,
            env: self.env_model.clone(),
        };
        Session::open(self.location(run)?.locate()?, &model, Lists::Present)
    }

    /// Opens the run at `run` to report on it, as a build would see it
    /// (see [`Session::read`]).
    pub fn read(&self, run: &Path) -> Result<Session> {
        let model = ModelChoice {
            flag: None,
            env: self.env_model.clone(),
        };
        Session::read(self.location(run)?.locate()?, &model, CheckMode::Content)
    }

    /// Checks that a build of the run at `run` with `pipeline` (see
    /// [`Opener::pipeline`]), `model` and `targets` (the build tool's
    /// arguments) can start: its pipeline file reads,
    /// parses and resolves with that model, and every target names a task
    /// or an output. A build started in it would refuse them in the command
    /// line's terms (`-f FILE`, `--model`, `planexe status`), which a
    /// client cannot act on.
    pub fn check_build(
        &self,
        run: &Path,
        pipeline: (PathBuf, String),
        model: Option<&str>,
        targets: &[String],
    ) -> Result<()> {
        let model = ModelChoice {
            flag: model.map(str::to_string),
            env: self.env_model.clone(),
        };
        // Opened as the build opens it; fan-outs whose list a task makes
        // are expanded only when a target is not found without them, as
        // the build expands them before it reads its targets.
        let located = Self::location_with(run, pipeline).locate()?;
        let mut session = Session::open(located, &model, Lists::Unproduced)?;
        // As the build reads them: an output named by its absolute path
        // inside the run is taken as its own.
        if targets.is_empty() || session.targets(targets).is_ok() {
            return Ok(());
        }
        session.expand_ready(CheckMode::Content)?;
        session.targets(targets).map(drop)
    }

    /// The status of the run at `run`, named `name`. A run whose pipeline
    /// file cannot be used is answered all the same, from its records
    /// ([`status::of_records`]), with `pipeline_error` saying why.
    pub fn status(&self, run: &Path, name: &str) -> Result<Value> {
        let env_model = self.env_model.as_deref();
        let checked = self
            .location(run)
            .and_then(|l| l.locate())
            .and_then(|located| {
                let model = ModelChoice {
                    flag: None,
                    env: self.env_model.clone(),
                };
                status::of_run(&located, CheckMode::Content, STALL_AFTER, env_model, || {
                    Session::read(located.clone(), &model, CheckMode::Content)
                })
            });
        let (mut report, broken) = match checked {
            Ok(report) => (report, None),
            Err(e) => {
                // Not a run, or records that cannot be read: the error.
                let Ok(run_dir) = RunDir::open(run) else {
                    return Err(e);
                };
                let shown = self.pipeline(run).map(|p| p.1).unwrap_or_default();
                match status::of_records(&run_dir, shown, STALL_AFTER, env_model) {
                    Ok(report) => (report, Some(e)),
                    Err(_) => return Err(e),
                }
            }
        };
        // The hints of failed tasks and a forced build's reason, in the
        // tools' terms: a saved snapshot holds them in the command line's.
        let forced = Reason::Forced.to_string();
        for line in &mut report.tasks {
            if line.reason.as_ref() == Some(&forced) {
                line.reason = Some("forced (the build tool's `force`)".into());
            }
            if let (Some(kind), Some(hint)) = (&line.error_kind, &mut line.hint) {
                let kind =
                    serde_json::from_value::<ErrorKind>(json!(kind)).unwrap_or(ErrorKind::Other);
                let remedy = kind.remedy_of(
                    line.recoverable.unwrap_or(false),
                    line.error_judge == Some(true),
                );
                // A fan-out's list names its own fixes before the kind's
                // (`status::lines`): those stay, the kind's is the tools'.
                let tools = ADVICE.hint(&Trouble::Failed(remedy));
                let command_line = Advice::COMMAND_LINE.hint(&Trouble::Failed(remedy));
                *hint = match hint.strip_suffix(&command_line) {
                    Some(own) => format!("{own}{tools}"),
                    None => tools,
                };
            }
        }
        let mut value = serde_json::to_value(&report).map_err(std::io::Error::other)?;
        if let Value::Object(map) = &mut value {
            map.insert("run".into(), json!(name));
            if let Some(e) = &broken {
                map.insert("pipeline_error".into(), pipeline_error(e));
            }
            if let Some(error) = consolidated(&report) {
                map.insert("error".into(), error);
            }
            bound_tasks(map);
        }
        Ok(value)
    }
}

/// Why a run's pipeline file cannot be used, as `status` answers it
/// beside what the run's records say: `message` (the error's first line),
/// `where` (`file`, `line`, `col`, when it points into the file, and
/// `end_line`, `end_col` when the error knows where its span ends),
/// `detail` (the line and its carets, the first and last of a span over
/// several), `hints`.
pub fn pipeline_error(e: &Error) -> Value {
    pipeline_error_then(
        e,
        "; a build, explain and clean wait for it (status and wait answer from the run's records \
         meanwhile)",
    )
}

/// [`pipeline_error`], its last hint where to fix the file and `then`.
fn pipeline_error_then(e: &Error, then: &str) -> Value {
    let text = e.to_string();
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let place = place_of(e, first);
    let rest = rest.trim_matches('\n');
    let mut hints = e.hints().to_vec();
    hints.push(format!("{}{then}", fix_it(place.as_ref())));
    json!({
        "message": first,
        "where": place,
        "detail": (!rest.is_empty()).then_some(rest),
        "hints": hints,
    })
}

/// `where` of `e`, whose message's first line is `first`: its place,
/// start and end (`end_line`, `end_col`), or else the `file:line:col` the
/// line starts with, or null.
fn place_of(e: &Error, first: &str) -> Option<Value> {
    e.place().map(|p| json!(p)).or_else(|| {
        crate::error::position(first)
            .map(|(file, line, col)| json!({"file": file, "line": line, "col": col}))
    })
}

/// What to do about a pipeline error placed at `place`.
fn fix_it(place: Option<&Value>) -> String {
    match place {
        Some(p) => format!(
            "fix the pipeline file {} at line {}, column {}",
            p["file"].as_str().unwrap_or_default(),
            p["line"],
            p["col"]
        ),
        None => "fix what the message names".into(),
    }
}

/// A tool's failure: the error its text says, and the data an agent gets
/// beside it, the result's `structuredContent`, when there is some (boxed:
/// a failure travels up every handler, and is rarely this one).
pub struct Refusal {
    pub error: Error,
    pub data: Option<Box<Value>>,
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Refusal { error, data: None }
    }
}

/// The refusal of a tool (`explain`, `clean`) that needs the run's
/// pipeline, which cannot be used: `e` said whole, then what to do; its
/// data `{"pipeline_error": ...}`, the object `status` gives.
pub fn needs_pipeline(e: Error, tool: &str, run: &str) -> Refusal {
    if !matches!(e, Error::Pipeline { .. }) {
        return e.into();
    }
    let data = json!({"pipeline_error": pipeline_error(&e)});
    refused(
        &e,
        &format!("{tool} needs the pipeline of run `{run}`, which cannot be used: "),
        &format!(
            ", then call {tool} again; status answers meanwhile with what the run's records say \
             (each task's last run, the last build)"
        ),
        data,
    )
}

/// A refusal for the pipeline error `e`: `lead`, `e` said whole and its
/// hints, then where to fix the file and `then`; `data` beside it.
fn refused(e: &Error, lead: &str, then: &str, data: Value) -> Refusal {
    let text = e.to_string();
    let first = text.split_once('\n').map_or(text.as_str(), |(f, _)| f);
    let place = place_of(e, first);
    let mut refusal = Error::pipeline(format!("{lead}{text}"));
    for hint in e.hints() {
        refusal = refusal.hint(hint.clone());
    }
    Refusal {
        error: refusal.hint(format!("{}{then}", fix_it(place.as_ref()))),
        data: Some(Box::new(data)),
    }
}

/// What run_create says after where to fix its pipeline file: it made no
/// run, so nothing waits for the file.
const CREATE_AGAIN: &str = ", then call run_create again";

/// The refusal of `run_create` for a pipeline file that cannot be used
/// (read, parsed or resolved), in its words: `e` said whole, then where to
/// fix the file; its data `{"pipeline_error": ...}`, the object `status`
/// gives with that last hint. Any other error as it is: one about the
/// files the run was given or lacks rather than the pipeline file
/// ([`Error::is_about_pipeline_file`]: a source input missing, a list
/// file that is not a list), and the refusal of a file of `files` itself.
pub fn create_refused(e: Error) -> Refusal {
    if !e.is_about_pipeline_file() {
        return e.into();
    }
    let data = json!({"pipeline_error": pipeline_error_then(&e, CREATE_AGAIN)});
    refused(
        &e,
        "run_create made no run, as its pipeline file cannot be used: ",
        CREATE_AGAIN,
        data,
    )
}

/// Bounds the `tasks` of a status or a summary for a model's context:
/// each line without its null fields, at most [`STATUS_TASKS_MAX`] of
/// them (every one when they are no more, else those that need attention
/// first: failed, running, stopped, waiting, to be built, then done, each
/// rank in the pipeline's order), the end of the log of the first
/// [`FAILED_TAILS_MAX`] only; `tasks_omitted` counts the lines left out.
fn bound_tasks(map: &mut Map<String, Value>) {
    let Some(Value::Array(tasks)) = map.get_mut("tasks") else {
        return;
    };
    let all = std::mem::take(tasks);
    let omitted = all.len().saturating_sub(STATUS_TASKS_MAX);
    let rank = |line: &Value| match line["state"].as_str().unwrap_or("") {
        "failed" => 0,
        "running" | "failed-pending-check" => 1,
        "stopped" => 2,
        "stale" | "never-built" | "not-run" => 4,
        "done" => 5,
        _ => 3,
    };
    let mut order: Vec<(usize, Value)> = all.into_iter().enumerate().collect();
    if omitted > 0 {
        order.sort_by_key(|(i, line)| (rank(line), *i));
        order.truncate(STATUS_TASKS_MAX);
        order.sort_by_key(|(i, _)| *i);
    }
    // Past the first failures, a log's end is one more of the same, 2 KB
    // each: its task's log is there to read.
    let mut tails = 0;
    *tasks = order
        .into_iter()
        .map(|(_, line)| match line {
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .filter(|(k, _)| {
                        k != "log_tail" || {
                            tails += 1;
                            tails <= FAILED_TAILS_MAX
                        }
                    })
                    .collect(),
            ),
            other => other,
        })
        .collect();
    map.insert("tasks_omitted".into(), json!(omitted));
}

/// The run's error in one object, when a task failed: the first failed
/// task's kind, message, error_id, whether building again may fix it, what
/// to do, and for a command the end of what it printed.
fn consolidated(report: &StatusReport) -> Option<Value> {
    let failed: Vec<_> = report
        .tasks
        .iter()
        .filter(|l| l.state == Standing::Failed)
        .collect();
    let first = failed.first()?;
    Some(json!({
        "kind": first.error_kind.as_deref().unwrap_or("failed"),
        "failed_task": first.task,
        "message": first.error.as_deref().unwrap_or("the task failed"),
        "error_id": first.error_id,
        "recoverable": first.recoverable.unwrap_or(false),
        "hint": first.hint,
        "log_tail": first.log_tail,
        "failed_tasks": failed.len(),
    }))
}

/// Why task `task` of the run `name` is or is not stale.
pub fn explain(session: &Session, name: &str, task: &str) -> Result<Value> {
    let e = explain::explain(session, task, CheckMode::Content)?;
    let last_success = e.last_success.as_ref().map(|l| {
        json!({
            "finished_at": l.finished_at,
            "duration_ms": l.duration_ms,
            "kind": l.kind,
            "fingerprint_recorded": l.recorded,
            "fingerprint_now": l.now,
            "definition_changed": l.recorded != l.now,
            "diff": l.diff,
        })
    });
    let last_error = e.last_error.as_ref().map(
        |(kind, message, id)| json!({"kind": kind.as_str(), "message": message, "error_id": id}),
    );
    Ok(json!({
        "run": name,
        "task": e.task,
        "stale": e.reason.is_some(),
        "reason": e.reason,
        "last_success": last_success,
        "last_error": last_error,
        "inputs": files_listed(&e.inputs),
        "inputs_omitted": e.inputs.len().saturating_sub(STATUS_TASKS_MAX),
        "outputs": files_listed(&e.outputs),
        "outputs_omitted": e.outputs.len().saturating_sub(STATUS_TASKS_MAX),
        "upstream": e.upstream.iter().take(STATUS_TASKS_MAX).collect::<Vec<_>>(),
        "upstream_omitted": e.upstream.len().saturating_sub(STATUS_TASKS_MAX),
        "done_marker": !e.marker_missing,
        "done_before": e.done_before,
    }))
}

/// At most [`STATUS_TASKS_MAX`] of `files` (a task that reads a fan-out of
/// 2000 instances made an explanation of 600 KB), those that make the task
/// stale first (changed, missing, new, touched), in their order.
fn files_listed(files: &[FileLine]) -> Vec<Value> {
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| (matches!(files[i].verdict, FileVerdict::Same(_)), i));
    order.truncate(STATUS_TASKS_MAX);
    order.sort_unstable();
    order.into_iter().map(|i| file_line(&files[i])).collect()
}

/// One input or output of an explanation.
fn file_line(f: &FileLine) -> Value {
    let (verdict, recorded, now) = match &f.verdict {
        FileVerdict::Missing => ("missing", None, None),
        FileVerdict::New => ("new", None, None),
        FileVerdict::Same(r) => ("same", Some(r), None),
        FileVerdict::Touched { recorded } => ("touched", Some(recorded), None),
        FileVerdict::Changed { recorded, now } => ("changed", Some(recorded), Some(now)),
    };
    json!({
        "path": f.path,
        "producer": f.producer,
        "verdict": verdict,
        "recorded": recorded,
        "now": now,
        "edited": f.edited,
    })
}

/// The run's `summary.json`, as it is.
pub fn summary(run_dir: &RunDir, name: &str) -> Result<Map<String, Value>> {
    let path = run_dir.summary_path();
    let bytes = match files::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::usage(format!(
                "run `{name}` has no summary yet: every build that runs something writes one"
            ))
            .hint("build the run (build, then wait), or read its status"))
        }
        Err(e) => return Err(Error::io_at(&path, e)),
    };
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(mut map)) => {
            bound_tasks(&mut map);
            Ok(map)
        }
        _ => Err(Error::usage(format!(
            "{} is damaged: it is not a JSON object",
            run_dir.show(&path)
        ))
        .hint("the next build (the build tool) that runs a task writes it again; the status tool answers meanwhile")),
    }
}
