//! A tool call (`tools/call`): the tool looked up (an unknown one is a
//! protocol error, -32602), its arguments checked and typed
//! (`arguments.rs`), and one handler per tool. What a handler returns is
//! the result's `structuredContent`, with the same JSON as its text; what
//! fails (bad arguments included, so a model can correct itself, as MCP
//! 2025-11-25 asks) is a result with `isError: true` whose text says
//! what, where and what to do next, and whose `structuredContent` is the
//! refusal's data when it has some (a run's `pipeline_error`), which the
//! tool's `outputSchema` allows: a client may check an error's too.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::answers::{self, Refusal};
use super::arguments::{
    args, check, Archive, Build, Clean, Create, Explain, ReadOutput, Run, Runs, Wait,
};
use super::builds::{self, Request, Started, STOP_WAIT, WAIT_MAX_S};
use super::limits;
use super::outputs::{self, DEFAULT_BYTES};
use super::wire::{Fault, INVALID_PARAMS};
use super::{Server, PROTOCOL_VERSIONS};
use crate::error::{Error, Result, EXIT_USAGE};
use crate::exec::clean::{CleanPlan, Selection};
use crate::store::archive::Archived;
use crate::store::lock::is_busy;
use crate::store::RunDir;

/// Answers `tools/call` with `params`.
/// `cancel` is set when the client cancels the call: a `wait` then ends.
pub fn call(
    server: &Server,
    params: Option<Value>,
    cancel: &AtomicBool,
) -> std::result::Result<Value, Fault> {
    let mut params = match params {
        Some(Value::Object(p)) => p,
        _ => {
            return Err(Fault::new(
                INVALID_PARAMS,
                "invalid params: tools/call needs {\"name\": TOOL, \"arguments\": {...}}",
            ))
        }
    };
    let Some(Value::String(name)) = params.remove("name") else {
        return Err(Fault::new(
            INVALID_PARAMS,
            "invalid params: tools/call needs `name`, a string naming a tool of tools/list",
        ));
    };
    let arguments = match params.remove("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(a @ Value::Object(_)) => a,
        Some(_) => {
            return Err(Fault::new(
                INVALID_PARAMS,
                format!(
                    "invalid params: the `arguments` of {} must be an object",
                    limits::quoted(&name)
                ),
            ))
        }
    };
    let Some(index) = server.tools.iter().position(|t| t.name == name) else {
        return Err(Fault::new(
            INVALID_PARAMS,
            format!(
                "unknown tool `{}`; tools/list names the tools ({})",
                limits::quoted(&name),
                server
                    .tools
                    .iter()
                    .map(|t| t.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    let bounded = match &arguments {
        Value::Object(map) => limits::check(&name, map).and_then(|()| match map.get("files") {
            Some(Value::Object(files)) if name == "run_create" => {
                let files: Vec<(&str, &str)> = files
                    .iter()
                    .filter_map(|(path, text)| Some((path.as_str(), text.as_str()?)))
                    .collect();
                super::seeds::check_sizes(&files)
            }
            _ => Ok(()),
        }),
        _ => Ok(()),
    };
    // What an error says is cut to size with what was sent, which `run`
    // consumes: kept only when some of it is long.
    let echoes = has_long(&arguments).then(|| arguments.clone());
    let outcome = bounded
        .and_then(|()| check(server, index, &arguments))
        .map_err(Refusal::from)
        .and_then(|()| run(server, &name, arguments, cancel));
    Ok(match outcome {
        Ok(value) => {
            let text = serde_json::to_string_pretty(&value).unwrap_or_default();
            json!({
                "content": [{"type": "text", "text": text}],
                "structuredContent": value,
                "isError": false,
            })
        }
        Err(Refusal { error: e, data }) => {
            let mut text = e.to_string();
            for hint in e.hints() {
                text.push_str(&format!("\nhint: {hint}"));
            }
            if let Some(sent) = &echoes {
                text = limits::shorten_echoes(text, sent);
            }
            let mut result = json!({"content": [{"type": "text", "text": text}], "isError": true});
            if let Some(data) = data {
                result["structuredContent"] = *data;
            }
            result
        }
    })
}

/// Whether `value` holds a string longer than an error quotes.
fn has_long(value: &Value) -> bool {
    match value {
        Value::String(s) => s.len() > limits::QUOTED,
        Value::Array(items) => items.iter().any(has_long),
        Value::Object(map) => map.values().any(has_long),
        _ => false,
    }
}

/// The status of the run at `path`, named `name`. A build the server
/// started a moment ago that has not yet recorded itself shows as running.
fn status(server: &Server, path: &std::path::Path, name: &str) -> Result<Value> {
    let mut status = server.opener.status(path, name)?;
    let pid = RunDir::open(path)
        .ok()
        .and_then(|run_dir| server.builds.running(&run_dir));
    if let (Some(pid), Value::Object(map)) = (pid, &mut status) {
        map.insert("state".into(), json!("running"));
        map.insert("build_pid".into(), json!(pid));
    }
    Ok(status)
}

/// Runs tool `name` with checked `arguments`.
fn run(
    server: &Server,
    name: &str,
    arguments: Value,
    cancel: &AtomicBool,
) -> std::result::Result<Value, Refusal> {
    let answer = match name {
        "run_create" => return create(server, args(name, arguments)?),
        "build" => return build(server, args(name, arguments)?),
        "status" => {
            let a: Run = args(name, arguments)?;
            status(server, &server.root.run(&a.run)?, &a.run)
        }
        "wait" => wait(server, args(name, arguments)?, cancel),
        "stop" => stop(server, args(name, arguments)?, cancel),
        "clean" => return clean(server, args(name, arguments)?),
        "explain" => {
            let a: Explain = args(name, arguments)?;
            let session = (server.opener.read(&server.root.run(&a.run)?))
                .map_err(|e| answers::needs_pipeline(e, "explain", &a.run))?;
            answers::explain(&session, &a.run, &a.task)
        }
        "summary" => {
            let a: Run = args(name, arguments)?;
            let run_dir = RunDir::open(&server.root.run(&a.run)?)?;
            answers::summary(&run_dir, &a.run).map(Value::Object)
        }
        "runs" => runs(server, args(name, arguments)?),
        "archive" => archive(server, args(name, arguments)?),
        "read_output" => read_output(server, args(name, arguments)?),
        "server_info" => {
            let _: Map<String, Value> = args(name, arguments)?;
            Ok(server_info(server))
        }
        other => Err(Error::usage(format!("tool {other} has no handler"))),
    };
    Ok(answer?)
}

fn create(server: &Server, a: Create) -> std::result::Result<Value, Refusal> {
    let pipeline = match &a.pipeline {
        Some(rel) => super::pipelines::named(&server.root, rel)?,
        None => server.config.pipeline.clone(),
    };
    let seeds = super::seeds::check(&a.files)?;
    let _one_at_a_time = super::lock(&server.creating);
    let created = server
        .root
        .create(&a.plan, &seeds, pipeline, a.name.as_deref())
        .map_err(answers::create_refused)?;
    Ok(json!({
        "run": created.name,
        "created": created.made,
        "run_dir": created.run_dir,
        "pipeline": created.pipeline,
        "created_at": created.created_at,
        "results": created.results,
        "warnings": created.warnings,
    }))
}

fn build(server: &Server, a: Build) -> std::result::Result<Value, Refusal> {
    let run_dir = RunDir::open(&server.root.run(&a.run)?)?;
    for (what, text) in a
        .targets
        .iter()
        .map(|t| ("a target", t))
        .chain(a.model.iter().map(|m| ("the model", m)))
    {
        if text.is_empty() || text.contains('\0') {
            return Err(Error::usage(format!(
                "{what} `{}` is empty or holds a NUL byte",
                limits::quoted(text)
            ))
            .hint("name tasks, output paths and models as the pipeline spells them")
            .into());
        }
    }
    if Archived::load(&run_dir).is_some() {
        return Err(Error::usage(format!("run `{}` is archived", a.run))
            .hint("restore it first with archive {\"run\": ..., \"restore\": true}")
            .into());
    }
    // What the build would refuse, with a pipeline error as data too.
    let pipeline = (server.opener.pipeline(run_dir.root()))
        .map_err(|e| answers::needs_pipeline(e, "build", &a.run))?;
    server
        .opener
        .check_build(
            run_dir.root(),
            pipeline.clone(),
            a.model.as_deref(),
            &a.targets,
        )
        .map_err(|e| answers::needs_pipeline(e, "build", &a.run))?;
    let request = Request {
        pipeline: pipeline.0,
        targets: a.targets,
        model: a.model,
        force: a.force,
    };
    let (pid, started) = server.builds.start(
        &server.config.exe,
        &server.config.env,
        &run_dir,
        &a.run,
        &request,
    )?;
    let (state, exit_code) = match started {
        Started::Starting => ("starting", None),
        Started::Running => ("running", None),
        Started::Ended(_, EXIT_USAGE) => {
            return Err(Error::usage(format!(
                "the build of `{}` refused to start (exit status {EXIT_USAGE}):\n{}",
                a.run,
                builds::log_tail(&run_dir)
            ))
            .hint("fix what it names, then call the build tool again; the whole log is .planexe/build.log (read_output)")
            .into())
        }
        Started::Ended(outcome, code) => (outcome, Some(code)),
    };
    Ok(json!({
        "run": a.run,
        "pid": pid,
        "state": state,
        "exit_code": exit_code,
        "log": run_dir.show(&run_dir.build_log_path()),
    }))
}

fn wait(server: &Server, a: Wait, cancel: &AtomicBool) -> Result<Value> {
    let path = server.root.run(&a.run)?;
    let run_dir = RunDir::open(&path)?;
    let seconds = a.timeout_s.unwrap_or(WAIT_MAX_S as f64);
    let limit = Duration::try_from_secs_f64(seconds.clamp(0.0, WAIT_MAX_S as f64))
        .unwrap_or(Duration::from_secs(WAIT_MAX_S));
    let idle = server
        .builds
        .wait(&run_dir, Instant::now() + limit, [cancel, &server.ending]);
    let mut status = status(server, &path, &a.run)?;
    if let Value::Object(map) = &mut status {
        map.insert("timed_out".into(), json!(!idle));
    }
    Ok(status)
}

fn stop(server: &Server, a: Run, cancel: &AtomicBool) -> Result<Value> {
    let path = server.root.run(&a.run)?;
    let run_dir = RunDir::open(&path)?;
    let pid = server.builds.stop(&run_dir, &a.run)?;
    let ended = pid.is_none()
        || server.builds.wait(
            &run_dir,
            Instant::now() + STOP_WAIT,
            [cancel, &server.ending],
        );
    let mut status = status(server, &path, &a.run)?;
    if let Value::Object(map) = &mut status {
        map.insert("stopped_pid".into(), json!(pid));
        map.insert("still_stopping".into(), json!(!ended));
    }
    Ok(status)
}

fn clean(server: &Server, a: Clean) -> std::result::Result<Value, Refusal> {
    // An archived run is kept whole.
    if Archived::load(&RunDir::open(&server.root.run(&a.run)?)?).is_some() {
        return Err(Error::usage(format!("run `{}` is archived", a.run))
            .hint("restore it first with archive {\"run\": ..., \"restore\": true}")
            .into());
    }
    let mut session = (server.opener.open(&server.root.run(&a.run)?))
        .map_err(|e| answers::needs_pipeline(e, "clean", &a.run))?;
    let _lock = session.run_dir.lock("clean").map_err(|e| {
        if !is_busy(&e) {
            return e;
        }
        Error::usage(format!("cannot clean run `{}`: {e}", a.run))
            .hint("wait for the build to end (wait), or stop it (stop), then clean")
    })?;
    let selection = Selection::Tasks {
        names: a.tasks,
        downstream: a.downstream,
    };
    let plan = CleanPlan::new(&session, &selection)?;
    plan.apply(&mut session)?;
    // A fan-out's thousands of instances and their files, bounded as a
    // status's tasks are.
    let max = answers::STATUS_TASKS_MAX;
    // What is left on disk, as the command line's `keeping PATH: ...`
    // says it: a source file now, or a file the run was given.
    let kept: Vec<Value> = (plan.kept.iter().map(|k| (k, "source")))
        .chain(plan.given.iter().map(|g| (g, "given")))
        .map(|((path, task), why)| json!({"path": path, "task": task, "why": why}))
        .collect();
    Ok(json!({
        "run": a.run,
        "tasks": plan.tasks.iter().take(max).collect::<Vec<_>>(),
        "tasks_omitted": plan.tasks.len().saturating_sub(max),
        "deleted": plan.files.iter().take(max).map(|(shown, _)| shown).collect::<Vec<_>>(),
        "deleted_omitted": plan.files.len().saturating_sub(max),
        "kept_omitted": kept.len().saturating_sub(max),
        "kept": kept.into_iter().take(max).collect::<Vec<_>>(),
    }))
}

fn runs(server: &Server, a: Runs) -> Result<Value> {
    let (listed, hidden) = server.root.list(a.archived, |run_dir| {
        server.builds.running(run_dir).is_some()
    });
    // Newest first: an agent that made hundreds over days gets the
    // latest, not an answer of hundreds of KB.
    let max = answers::STATUS_TASKS_MAX;
    Ok(json!({
        "root": server.root.path(),
        "runs_omitted": listed.len().saturating_sub(max),
        "runs": listed.into_iter().take(max).collect::<Vec<_>>(),
        "archived_hidden": hidden,
    }))
}

fn archive(server: &Server, a: Archive) -> Result<Value> {
    let run_dir = RunDir::open(&server.root.run(&a.run)?)?;
    if let Some(pid) = server.builds.running(&run_dir) {
        return Err(
            Error::usage(format!("a build (pid {pid}) is running in run `{}`", a.run))
                .hint("wait for it (wait) or stop it (stop), then archive"),
        );
    }
    let _lock = run_dir.lock("archive").map_err(|e| {
        if !is_busy(&e) {
            return e;
        }
        Error::usage(format!("cannot archive run `{}`: {e}", a.run))
            .hint("wait for the other command to end, then archive")
    })?;
    let archived_at = if a.restore {
        Archived::restore(&run_dir)?;
        None
    } else {
        Some(
            Archived::load(&run_dir)
                .filter(|m| !m.archived_at.is_empty())
                .map_or_else(|| Archived::mark(&run_dir), Ok)?
                .archived_at,
        )
    };
    Ok(json!({
        "run": a.run,
        "archived": !a.restore,
        "archived_at": archived_at,
    }))
}

fn read_output(server: &Server, a: ReadOutput) -> Result<Value> {
    let path = server.root.run(&a.run)?;
    let run_dir = RunDir::open(&path)?;
    let secrets =
        server
            .opener
            .secrets(&path, &server.opener.default_pipeline.0, &server.config.env);
    let text = outputs::read(
        &run_dir,
        &a.run,
        &a.path,
        outputs::Window {
            offset: a.offset.map_or(0, |n| n as u64),
            max: a.max_bytes.map_or(DEFAULT_BYTES, |n| n as u64),
        },
        &secrets,
    )?;
    Ok(json!({
        "run": a.run,
        "path": text.path,
        "size": text.size,
        "offset": text.offset,
        "truncated": text.truncated,
        "next_offset": text.next_offset,
        "text": text.text,
    }))
}

fn server_info(server: &Server) -> Value {
    json!({
        "name": "planexe",
        "version": env!("CARGO_PKG_VERSION"),
        "root": server.root.path(),
        "protocol_version": *super::lock(&server.protocol),
        "supported_protocol_versions": PROTOCOL_VERSIONS,
        "capabilities": super::capabilities(),
        "tools": server.tools.iter().map(|t| t.name).collect::<Vec<_>>(),
        "default_pipeline": server.config.pipeline.1,
        "pid": std::process::id(),
        "limits": {
            "wait_max_s": WAIT_MAX_S,
            "build_start_wait_s": builds::START_WAIT.as_secs(),
            "stop_wait_s": STOP_WAIT.as_secs(),
            "read_output_default_bytes": DEFAULT_BYTES,
            "read_output_max_bytes": outputs::MAX_BYTES,
            "plan_max_bytes": super::runs::MAX_PLAN_BYTES,
            "run_name_max_bytes": limits::RUN_NAME_MAX_BYTES,
            "path_max_bytes": limits::PATH_MAX_BYTES,
            "text_max_chars": limits::TEXT_MAX_CHARS,
            "targets_max": limits::TARGETS_MAX,
            "status_tasks_max": answers::STATUS_TASKS_MAX,
            "run_create_idempotent_s": super::runs::IDEMPOTENT_FOR.as_secs(),
            "files_max": super::seeds::FILES_MAX,
            "file_max_bytes": super::seeds::FILE_MAX_BYTES,
            "files_max_total_bytes": super::seeds::FILES_MAX_TOTAL_BYTES,
        },
    })
}
