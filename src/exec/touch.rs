//! `touch`: accept tasks' current outputs as done without running them
//! (`make -t`): record stamps and the fingerprint, write `.DONE`. Tasks
//! that read those outputs become stale if the outputs changed.
//!
//! Outputs are checked before they are accepted, as a build checks what a
//! task wrote: `min_bytes`, a prompt task's format and schema, and its
//! `check` command (docs/checks.md). A judge is not asked (it costs model
//! calls; the caller is told). Touch is all or nothing: every named task's
//! files are stamped and every check runs before anything is written, and
//! a missing file, a check that refuses an output or cannot run refuses
//! the whole touch, leaving every record as it was. A failed check of
//! severity warn is a warning, recorded in the task's `checks`.
//! [`Checking::Skip`] (`--no-check`) accepts the outputs as they are.
//!
//! An output that is a file the run was given when it was made becomes the
//! task's work (the caller is told: a later run of the task replaces it).
//!
//! [`assume`] is its dry run: the same records and refusals, taken in
//! memory only (only the checks' logs are written), so a plan made
//! afterwards shows what the touch would leave to build.

use super::actions::Actions;
use super::attempt::{Executor, Turn};
use super::checks::{self, Inspectors};
use super::command::Watchdog;
use super::env::Env;
use super::interrupt::Interrupt;
use crate::error::{Error, Result};
use crate::model::judge::Judge;
use crate::model::{advice, limits};
use crate::model::{Task, TaskId};
use crate::plan::{Seeds, Session};
use crate::store::record::{first_line, JudgeVerdict};
use crate::store::{stamp, CheckRecord, ErrorKind, Stamper, Status, TaskError, TaskState};

/// Whether `touch` checks the outputs before it accepts them.
#[derive(Clone, Copy)]
pub enum Checking<'a> {
    /// Accept the outputs as they are (`--no-check`).
    Skip,
    /// Run each task's deterministic checks first; its `check` command
    /// gets `env`, and stops at `interrupt`.
    Run {
        env: &'a Env,
        interrupt: &'a Interrupt,
    },
}

/// A task `touch` accepted.
#[derive(Debug)]
pub struct Touched {
    pub task: String,
    /// Its failed checks of severity warn, recorded in its status.
    pub warnings: Vec<CheckRecord>,
    /// It has a judge, which touch did not ask to score the outputs.
    pub unjudged: bool,
    /// Its outputs that are files the run was given when it was made,
    /// which it never wrote (`plan::seeds`): recorded as its work from now
    /// on, so a later run of it replaces them.
    pub given: Vec<String>,
}

/// Marks the tasks `names` (tasks, instances or fan-out tasks) as done with
/// their current files, once their checks (unless skipped) accept them.
/// Fails, writing nothing, when one of a task's inputs or outputs does not
/// exist or a check refuses an output. The caller holds the run
/// directory's lock.
pub fn touch(session: &mut Session, names: &[String], checking: Checking) -> Result<Vec<Touched>> {
    let ids = named(session, names)?;
    touch_tasks(session, &ids, checking)
}

/// [`touch`] of the tasks `ids`, in that order.
pub fn touch_tasks(
    session: &mut Session,
    ids: &[TaskId],
    checking: Checking,
) -> Result<Vec<Touched>> {
    let records = records(session, ids, checking)?;
    session.run_dir.remove_certificate()?;
    let mut touched = Vec::new();
    for (status, accepted) in records {
        session.store.write_status(&session.run_dir, &status)?;
        touched.push(accepted);
    }
    Ok(touched)
}

/// What [`touch`] would do, in `session`'s memory only: the same records,
/// the same checks and refusals, nothing recorded.
pub fn assume(session: &mut Session, names: &[String], checking: Checking) -> Result<Vec<Touched>> {
    let ids = named(session, names)?;
    let records = records(session, &ids, checking)?;
    let mut touched = Vec::new();
    for (status, accepted) in records {
        session.store.assume_done(status);
        touched.push(accepted);
    }
    Ok(touched)
}

/// The tasks `names` and every task that depends on them, transitively
/// (through a `foreach` list to its instances, as `clean --downstream`),
/// in the order a build runs them: what `touch --downstream` accepts.
pub fn downstream(session: &Session, names: &[String]) -> Result<Vec<TaskId>> {
    let graph = &session.graph;
    let selected = graph.downstream_through_lists(&named(session, names)?);
    Ok((graph.order().iter())
        .copied()
        .filter(|&t| selected[t])
        .collect())
}

/// A stale task upstream of tasks just touched: the next build runs it,
/// and then them again if it changes what they read. What to warn of
/// after a touch that accepted them (it succeeded all the same).
#[derive(Debug)]
pub struct StaleUpstream {
    /// The stale task.
    pub task: String,
    /// Why it is stale, as `build -n` says it.
    pub reason: String,
    /// The touched tasks downstream of it, in build order.
    pub touched: Vec<String>,
}

/// The stale tasks upstream of the touched tasks `ids` (each with a
/// reason of its own, not only that something it reads will run), the
/// first `limit` of them with the touched tasks each will run again, and
/// how many there are in all; none among `ids` themselves (`touch
/// --downstream` of the stale task keeps what reads it). Judged after the
/// touch was recorded, as the next build will judge them.
pub fn stale_upstream(
    session: &Session,
    ids: &[TaskId],
    limit: usize,
) -> Result<(Vec<StaleUpstream>, usize)> {
    let graph = &session.graph;
    let mut touched = vec![false; graph.id_bound()];
    for &id in ids {
        touched[id] = true;
    }
    // Only what the touched tasks read is judged: each stale task found
    // is upstream of one of them.
    let plan = session.plan(graph.closure(ids), stamp::CheckMode::Content)?;
    let roots: Vec<TaskId> = (graph.order().iter().copied())
        .filter(|&t| !touched[t] && plan.reasons[t].as_ref().is_some_and(|r| !r.waits()))
        .collect();
    let stale = (roots.iter().take(limit))
        .filter_map(|&root| {
            let below = graph.downstream_through_lists(&[root]);
            let task = graph[root].name.clone();
            Some(StaleUpstream {
                reason: session.shown_reason(&task, plan.reasons[root].as_ref()?),
                touched: (graph.order().iter())
                    .filter(|&&t| touched[t] && below[t])
                    .map(|&t| graph[t].name.clone())
                    .collect(),
                task,
            })
        })
        .collect();
    Ok((stale, roots.len()))
}

/// The `done` records of the tasks `ids`, stamped from their files now
/// and checked as `checking` says.
fn records(
    session: &Session,
    ids: &[TaskId],
    checking: Checking,
) -> Result<Vec<(Status, Touched)>> {
    let mut records = Vec::with_capacity(ids.len());
    let seeds = Seeds::load(&session.run_dir);
    for &id in ids {
        let task = &session.graph[id];
        waits_for_a_list(session, task)?;
        let accepted = Touched {
            task: task.name.clone(),
            warnings: Vec::new(),
            unjudged: false,
            given: (task.outputs.iter())
                .filter(|o| seeds.guards(&session.run_dir, &session.store, &task.name, &o.path))
                .map(|o| o.path.clone())
                .collect(),
        };
        records.push((stamped(session, task)?, accepted));
    }
    let Checking::Run { env, interrupt } = checking else {
        return Ok(records);
    };
    let watchdog = Watchdog::start(interrupt.clone());
    // What a check printed is shown and recorded: never a secret in it.
    let secrets = super::env::secrets_of(&session.graph, env);
    let actions = Actions::new(
        &session.run_dir,
        session.pipeline.dir(),
        &watchdog,
        None,
        env,
        &secrets,
    );
    let turn = Turn::unjournaled(&session.run_dir);
    let mut refusals = Vec::new();
    for (&id, (status, accepted)) in ids.iter().zip(&mut records) {
        let task = &session.graph[id];
        let judgement = checks::examine(
            &session.run_dir,
            task,
            false,
            None,
            Inspectors {
                answer: Some(&secrets),
                check: |script: &str| actions.check(task, script, &turn),
                judge: None::<fn(&Judge) -> Result<JudgeVerdict, TaskError>>,
            },
        );
        if let Some(error) = judgement.error {
            if error.kind == ErrorKind::Stopped || interrupt.requested() {
                return Err(Error::Interrupted);
            }
            let check = judgement
                .records
                .last()
                .map_or("check", |r| r.name.as_str());
            refusals.push(refusal(task, check, &error.message));
            continue;
        }
        accepted.warnings = judgement.warnings().cloned().collect();
        accepted.unjudged = task.checks.judge.is_some();
        status.checks = judgement.records;
    }
    if interrupt.requested() {
        return Err(Error::Interrupted);
    }
    if refusals.is_empty() {
        return Ok(records);
    }
    Err(refused(&records, &refusals))
}

/// The tasks `names` means. An instance of a fan-out that waits for its
/// list is refused with what to build first: the fan-out, which other
/// commands take meanwhile, cannot be touched either.
pub fn named(session: &Session, names: &[String]) -> Result<Vec<TaskId>> {
    let graph = &session.graph;
    for name in names {
        let Some((base, _)) = crate::model::fanout::split_instance(name) else {
            continue;
        };
        let Some(group) = graph.fanouts.get(base).filter(|g| g.placeholder) else {
            continue;
        };
        let Some(list) = group.list.as_deref() else {
            continue;
        };
        let error = Error::usage(format!(
            "cannot touch {name}: {base} expands when {list} is built, and has no instances until then"
        ));
        return Err(match graph.producer(list) {
            Some(id) => error.hint(format!(
                "run `{}` first (it expands {base}), then touch {}",
                session
                    .advice()
                    .command(&format!("build {}", advice::quoted(&graph[id].name))),
                advice::quoted(name)
            )),
            None => error.hint(format!(
                "create {list}, then touch {}",
                advice::quoted(name)
            )),
        });
    }
    session.tasks_named(names)
}

/// Refuses `task` when it reads (or runs after) a `foreach` fan-out that
/// has not expanded, its list to be built: what it reads is not known, so
/// a record of it would name none of the instances' outputs (and the task
/// would run anyway once they exist), in place of its last run's.
fn waits_for_a_list(session: &Session, task: &Task) -> Result<()> {
    let graph = &session.graph;
    let waiting = (task.origin.groups.iter()).find_map(|g| {
        Some((
            g,
            graph
                .fanouts
                .get(g)
                .filter(|f| f.placeholder)?
                .list
                .as_deref()?,
        ))
    });
    let Some((fanout, list)) = waiting else {
        return Ok(());
    };
    let error = Error::usage(format!(
        "cannot touch {}: it reads {fanout}, which expands when {list} is built: what it reads is not known yet",
        task.name
    ));
    Err(match graph.producer(list) {
        Some(id) => error.hint(format!(
            "run `{}` first (it expands {fanout}), then touch {}",
            session
                .advice()
                .command(&format!("build {}", advice::quoted(&graph[id].name))),
            task.name
        )),
        None => error.hint(format!("create {list}, then touch {}", task.name)),
    })
}

/// The `done` record of `task` with its files' stamps now; refused when
/// one of them does not exist.
fn stamped(session: &Session, task: &Task) -> Result<Status> {
    let stamper = Stamper::default();
    let root = session.run_dir.root();
    let mut status = Status::new(&task.name, TaskState::Done, &task.fingerprint);
    // What a run records of the task, so a touched task is judged as a
    // built one: a change of its checks alone re-checks it, a reordering
    // of its `{inputs}` re-runs it.
    status.action_fingerprint = super::runner::action_fingerprint(task);
    status
        .template_fingerprint
        .clone_from(&task.template_fingerprint);
    status.input_order = task.input_order();
    status.definition = task.action.definition();
    let now = crate::clock::now_rfc3339();
    status.started_at = Some(now.clone());
    status.finished_at = Some(now);
    status.duration_ms = Some(0);
    for (paths, what, map) in [
        (
            (task.inputs.iter())
                .map(|i| (&i.path, i.producer))
                .collect::<Vec<_>>(),
            "input",
            &mut status.inputs,
        ),
        (
            (task.outputs.iter())
                .map(|o| (&o.path, Some(task.id)))
                .collect::<Vec<_>>(),
            "output",
            &mut status.outputs,
        ),
    ] {
        // Put in at once, sorted once (see `Stamps`).
        let mut stamped = Vec::with_capacity(paths.len());
        for (path, producer) in paths {
            match stamper.stamp(root, path)? {
                Some(stamp) => stamped.push((path.clone(), stamp)),
                None => {
                    let error = Error::usage(format!(
                        "cannot touch {}: its {what} {path} does not exist",
                        task.name
                    ));
                    return Err(match producer {
                        Some(id) => {
                            let name = &session.graph[id].name;
                            error.hint(format!(
                                "run `{}` to produce it",
                                session
                                    .advice()
                                    .command(&format!("build {}", advice::quoted(name)))
                            ))
                        }
                        None => error.hint(format!("create {path}")),
                    });
                }
            }
        }
        map.extend(stamped);
    }
    Ok(status)
}

/// One task's outputs refused by a check.
struct Refusal {
    task: String,
    /// What was refused and why, as one sentence after `cannot touch`.
    line: String,
    /// The files to fix.
    files: Vec<String>,
    /// The check could not run (or ran out of time): it is the check to
    /// fix, not the files.
    unjudged: bool,
}

/// What the failed `check` (`min_bytes`, `format`, `schema` or `check`)
/// of `task` said: `message`, which names the output itself but for the
/// `check` command's.
fn refusal(task: &Task, check: &str, message: &str) -> Refusal {
    let mut files: Vec<String> = task.outputs.iter().map(|o| o.path.clone()).collect();
    let unjudged = check == "check" && checks::unjudged(message);
    let line = match (check, task.checks.command.as_deref()) {
        ("check", Some(script)) => {
            let shown = match files.len() {
                0..=3 => files.join(", "),
                n => format!("{} and {} more", files[..3].join(", "), n - 3),
            };
            let script = shown_script(script);
            let verb = if unjudged {
                "could not judge"
            } else {
                "refuses"
            };
            format!(
                "cannot touch {}: its check `{script}` {verb} {shown}: {message}",
                task.name
            )
        }
        _ => format!("cannot touch {}: its {check} check: {message}", task.name),
    };
    if unjudged {
        files.clear();
    }
    Refusal {
        task: task.name.clone(),
        line,
        files,
        unjudged,
    }
}

/// A `check` command as a message names it: its first line, cut at 60
/// characters.
fn shown_script(script: &str) -> String {
    let line = first_line(script);
    let shown = limits::shorten_to(line, 60);
    if shown.len() == line.len() && line.len() < script.trim().len() {
        format!("{line} …")
    } else {
        shown
    }
}

/// The error that refuses the whole touch: each refusal, and what to do.
fn refused(records: &[(Status, Touched)], refusals: &[Refusal]) -> Error {
    let lines: Vec<&str> = refusals.iter().map(|r| r.line.as_str()).collect();
    let mut error = Error::usage(lines.join("\n"));
    if records.len() > 1 {
        let passed: Vec<&str> = records
            .iter()
            .map(|(s, _)| s.task.as_str())
            .filter(|t| !refusals.iter().any(|r| r.task == *t))
            .collect();
        let others = match passed.as_slice() {
            [] => String::new(),
            [one] => format!(" ({one}'s checks accepted its outputs)"),
            many => format!(
                " (the checks of {} accepted their outputs)",
                many.join(", ")
            ),
        };
        error = error.hint(format!(
            "nothing was touched: touch accepts all the tasks it is given or none{others}"
        ));
    }
    let files: Vec<&str> = refusals
        .iter()
        .flat_map(|r| r.files.iter().map(String::as_str))
        .collect();
    match files.as_slice() {
        [] if !refusals.iter().any(|r| r.unjudged) => {
            error = error.hint("fix the check, then touch again; or pass --no-check to accept the outputs as they are");
        }
        [] => {}
        [one] => {
            error = error.hint(format!(
                "fix {one} (or the check), then touch again; or pass --no-check to accept it as it is"
            ));
        }
        _ => {
            error = error.hint(
                "fix the outputs (or the checks), then touch again; or pass --no-check to accept them as they are",
            );
        }
    }
    if refusals.iter().any(|r| r.unjudged) {
        error = error.hint(
            "make the check run (install the command it names, correct `check` or raise `timeout` in the pipeline), then touch again; or pass --no-check to accept the outputs unchecked",
        );
    }
    error
}
