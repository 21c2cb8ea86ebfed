//! `planexe status`: one line per task (done, stale and why, failed with the
//! first line of its error, running, never built), or one JSON object with
//! `--json`. Reads state, changes nothing.

use serde::Serialize;

use crate::cli::{Cli, StatusArgs};
use crate::error::{Error, Result};
use crate::plan::{Checker, Plan, Reason};
use crate::printer::Printer;
use crate::session::Session;
use crate::stamp::Stamper;
use crate::state::{self, TaskState};

/// One task in `status --json`.
#[derive(Debug, Serialize)]
pub struct TaskLine {
    pub task: String,
    /// `done`, `stale`, `failed`, `running`, `stopped` or `never-built`.
    pub state: &'static str,
    /// Why the task is stale (null when done).
    pub reason: Option<String>,
    /// First line of the error of the last failed run.
    pub error: Option<String>,
    pub pid: Option<u32>,
}

/// The whole `status --json` document.
#[derive(Debug, Serialize)]
pub struct Report {
    pub pipeline: String,
    pub run_dir: String,
    pub tasks: Vec<TaskLine>,
}

pub fn status(cli: &Cli, args: &StatusArgs, printer: &Printer) -> Result<()> {
    let session = Session::open(cli, printer, None)?;
    let graph = &session.graph;
    let stamper = Stamper::default();
    let checker = Checker {
        graph,
        run_dir: &session.run_dir,
        store: &session.store,
        stamper: &stamper,
        mode: args.check,
    };
    let plan = Plan::make(
        &checker,
        vec![true; graph.tasks.len()],
        &vec![false; graph.tasks.len()],
    )?;
    let mut lines = Vec::with_capacity(graph.tasks.len());
    for task in &graph.tasks {
        let reason = plan.reasons[task.id].clone();
        let mut line = TaskLine {
            task: task.name.clone(),
            state: "done",
            reason: reason.as_ref().map(ToString::to_string),
            error: None,
            pid: None,
        };
        let sidecar = || state::read_status(&session.run_dir, &task.name);
        match reason {
            None => {}
            Some(Reason::NeverBuilt) => line.state = "never-built",
            Some(Reason::FailedLastTime(message)) => {
                line.state = "failed";
                line.error = Some(message);
            }
            Some(Reason::InterruptedLastTime) => {
                let status = sidecar();
                let pid = status.as_ref().and_then(|s| s.pid);
                let running = status
                    .as_ref()
                    .is_some_and(|s| s.state == TaskState::Running);
                if running && pid.is_some_and(alive) {
                    line.state = "running";
                    line.pid = pid;
                    line.reason = None;
                } else {
                    line.state = "stopped";
                }
            }
            Some(_) => line.state = "stale",
        }
        lines.push(line);
    }
    if args.json {
        let report = Report {
            pipeline: graph.name.clone(),
            run_dir: session.run_dir.root().display().to_string(),
            tasks: lines,
        };
        let text = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
        printer.data(&text);
        return Ok(());
    }
    // A fan-out shows as one line with progress, unless asked for by name.
    let mut shown: Vec<(String, String)> = Vec::new();
    let mut groups: std::collections::BTreeMap<&str, Vec<&TaskLine>> = Default::default();
    let selected = |line: &TaskLine| match &args.task {
        None => true,
        Some(t) => {
            *t == line.task
                || crate::fanout::split_instance(&line.task).map(|(b, _)| b) == Some(t.as_str())
        }
    };
    for line in lines.iter().filter(|l| selected(l)) {
        let base = crate::fanout::split_instance(&line.task)
            .map(|(b, _)| b)
            .or_else(|| {
                graph
                    .fanouts
                    .get(line.task.as_str())
                    .map(|_| line.task.as_str())
            });
        match base {
            Some(base) if args.task.as_deref() != Some(base) => {
                let group = groups.entry(base).or_default();
                if group.is_empty() {
                    shown.push((base.to_string(), String::new()));
                }
                group.push(line);
            }
            _ => shown.push((line.task.clone(), detail(line))),
        }
    }
    if let Some(t) = &args.task {
        if shown.is_empty() && !groups.contains_key(t.as_str()) {
            return Err(Error::usage(format!("unknown task `{t}`"))
                .hint("run `planexe status` to list tasks"));
        }
    }
    for (name, text) in &mut shown {
        if let Some(group) = groups.get(name.as_str()) {
            *text = group_detail(graph, name, group);
        }
    }
    let width = shown.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, text) in &shown {
        printer.data(&format!("{name:width$}  {text}"));
    }
    Ok(())
}

fn detail(line: &TaskLine) -> String {
    match line.state {
        "stale" => format!("stale: {}", line.reason.as_deref().unwrap_or("")),
        "failed" => format!("failed: {}", line.error.as_deref().unwrap_or("")),
        "running" => format!("running (pid {})", line.pid.unwrap_or(0)),
        "never-built" => "never built".to_string(),
        other => other.to_string(),
    }
}

/// `17/42 done, 1 failed, 2 running`, or the placeholder's reason.
fn group_detail(graph: &crate::graph::Graph, name: &str, lines: &[&TaskLine]) -> String {
    if graph.fanouts.get(name).is_some_and(|g| g.placeholder) {
        return lines.first().map(|l| detail(l)).unwrap_or_default();
    }
    let count = |state: &str| lines.iter().filter(|l| l.state == state).count();
    let mut text = format!("{}/{} done", count("done"), lines.len());
    for (state, label) in [
        ("failed", "failed"),
        ("running", "running"),
        ("stopped", "stopped"),
        ("stale", "stale"),
        ("never-built", "never built"),
    ] {
        let n = count(state);
        if n > 0 {
            text.push_str(&format!(", {n} {label}"));
        }
    }
    text
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// `planexe wait`: blocks until the build running in this directory ends
/// (at once if none runs), prints the status, and exits 0 (completed), 1
/// (failed), 130 (stopped) or 124 (timed out). Reads `.planexe/run.json`
/// only; never takes the lock.
pub fn wait(cli: &Cli, args: &crate::cli::WaitArgs, printer: &Printer) -> Result<()> {
    let limit = match &args.timeout {
        None => None,
        Some(t) => Some(
            crate::pipeline::parse_timeout(&toml::Value::String(t.clone()))
                .map_err(|m| Error::usage(format!("--timeout: {m}")))?,
        ),
    };
    let session = Session::open(cli, printer, None)?;
    let started = std::time::Instant::now();
    loop {
        let run = crate::run::RunRecord::load(&session.run_dir);
        let last = run.as_ref().and_then(|r| r.builds.last().cloned());
        let running = last
            .as_ref()
            .is_some_and(|b| b.outcome == "running" && alive(b.pid));
        if !running {
            status(
                cli,
                &StatusArgs {
                    task: None,
                    json: false,
                    check: crate::stamp::CheckMode::Content,
                },
                printer,
            )?;
            return match last.map(|b| b.outcome) {
                Some(o) if o == "failed" => Err(Error::Outcome(crate::error::EXIT_FAILED)),
                Some(o) if o == "stopped" || o == "running" => {
                    Err(Error::Outcome(crate::error::EXIT_INTERRUPTED))
                }
                _ => Ok(()),
            };
        }
        if limit.is_some_and(|l| started.elapsed() >= l) {
            printer.note("wait: timed out; the build is still running");
            return Err(Error::Outcome(crate::error::EXIT_TIMEOUT));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
