//! `planexe build`: the fast path, then a build observed by the terminal
//! (and, unless it is a dry run or a question, by the recorder of events,
//! trace and snapshots); what its tasks say as they run (its notices: `notices.rs`).

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use super::annotate::{self, Github};
use super::answers;
use super::args::{AdviceArg, BuildArgs, Cli};
use super::notices::say;
use super::printer::Printer;
use super::Context;
use crate::error::{Error, Result};
use crate::exec::build::{self, Build, BuildOptions, Certified};
use crate::exec::interrupt::Started;
use crate::exec::jobserver::Jobserver;
use crate::exec::llm::limits::Wait;
use crate::exec::observer::{Both, Notice, Observer, Progress, TaskEnd};
use crate::exec::scheduler::Slots;
use crate::exec::{BuildReport, Interrupt};
use crate::model::{Advice, Lists, Task, Trouble};
use crate::observe::Recorder;
use crate::plan::Session;
use crate::store::lock::Waiting;
use crate::store::record::first_line;
use crate::store::rundir::StateMark;
use crate::store::untrusted::printable;
use crate::store::TaskState;

/// Whether the build changes nothing: `-n`, `-q`, or make's `-n`, `-q`
/// or `-t` in `MAKEFLAGS`.
pub fn read_only(args: &BuildArgs, ctx: &Context) -> bool {
    let make = ctx.makeflags();
    args.dry_run || args.question || make.dry_run || make.question || make.touch
}

/// `planexe build`; `jobserver`: make's, connected to early (`None` for a
/// dry run or a question). With annotations, an error that ends it is
/// also one on stdout, after the failed tasks' own.
pub fn build(
    cli: &Cli,
    ctx: &Context,
    args: &BuildArgs,
    jobserver: Option<std::result::Result<Option<Jobserver>, String>>,
    printer: &mut Printer,
) -> Result<()> {
    let mut pipeline = None;
    let result = build_located(cli, ctx, args, jobserver, printer, &mut pipeline);
    if let Err(e) = &result {
        if ctx.github_annotations(args.annotations) {
            if let Some(line) = annotate::refused(e, pipeline.as_ref(), &ctx.annotation_base()) {
                printer.data(&line);
            }
        }
    }
    result
}

/// [`build`]; `pipeline`: set to the pipeline file's path and how messages
/// name it once it is chosen.
fn build_located(
    cli: &Cli,
    ctx: &Context,
    args: &BuildArgs,
    jobserver: Option<std::result::Result<Option<Jobserver>, String>>,
    printer: &mut Printer,
    pipeline: &mut Option<(PathBuf, String)>,
) -> Result<()> {
    ctx.check_webhook()?;
    let make = ctx.makeflags();
    // `make -n` prints what would run; `make -q` asks; under `make -t`
    // (which runs a `+` recipe instead of touching its target) nothing
    // runs either: it prints what would.
    let question = args.question || (make.question && !args.dry_run && !make.dry_run);
    let mut options = BuildOptions {
        targets: args.targets.clone(),
        jobs: args.jobs.map(|j| j as usize),
        // `make -k` keeps going, in planexe as in a sub-make.
        keep_going: args.keep_going || make.keep_going,
        dry_run: !question && (args.dry_run || make.dry_run || make.touch),
        question,
        force: args.force,
        check: args.check.into(),
        answers: answers::answers(&args.answers)?,
        changed: None,
        wait_for_lock: !args.no_wait,
    };
    if !options.read_only() {
        answers::make_answer_store(&options.answers)?;
    }
    // Dry runs and questions change nothing: Ctrl-C may end them the
    // default way. Builds catch it from the start, before anything else
    // can take time.
    let interrupt = if options.read_only() {
        Interrupt::new()
    } else {
        Interrupt::signals()
    };
    if make.touch && options.dry_run && !args.dry_run && !make.dry_run {
        printer.note(
            "make -t: planexe runs no task, and says what would run \
             (`planexe touch TASK` accepts a task's outputs as done without running it)",
        );
    }
    let jobserver = match jobserver {
        Some(Ok(jobserver)) => jobserver,
        Some(Err(warning)) => {
            printer.warn(&warning);
            None
        }
        None => None,
    };
    // The builds `planexe mcp` starts say what to do in its tools' terms:
    // its clients read their log.
    let mut location = ctx.location(cli)?;
    if let AdviceArg::Mcp = args.advice {
        location.advice = crate::mcp::advice::ADVICE;
    }
    let advice = location.advice.clone();
    if !options.read_only() && options.wait_for_lock {
        let run_dir = crate::store::RunDir::open(&location.run_dir)?;
        let waiting = Waiting {
            told: &mut |who| say(printer, &Notice::WaitingForLock(who.into()), &advice),
            stop: &|| interrupt.requested(),
        };
        if let Err(e) = super::wait_for_lock(&run_dir, waiting) {
            if matches!(e, Error::Interrupted) {
                say(printer, &Notice::StoppedEarly, &advice);
            }
            return Err(e);
        }
    }
    let located = location.locate()?;
    *pipeline = Some((located.pipeline.clone(), located.display.clone()));
    let model = ctx.model(args.model.as_deref());
    let mut certified_mark = None;
    // The pipeline and the state begin to load as soon as the certificate's
    // judgement finds a change it can follow (a source edited): the build
    // will need them, and on a large run the judgement's last stats and
    // the loading share the cores. Dropped unused (the verdict sent the
    // build to the full check), the load ends unwatched: it changes nothing.
    let early: Mutex<Option<(StateMark, Started<Result<Session>>)>> = Mutex::new(None);
    let open_early = |mark: StateMark| {
        let mut early = early.lock().unwrap_or_else(|e| e.into_inner());
        if early.is_none() {
            let located = located.clone();
            let model = model.clone();
            *early = Some((
                mark,
                Started::start(move || {
                    Session::open_certified(located, &model, Lists::Unproduced, mark)
                }),
            ));
        }
    };
    let judged = build::certified_with(&located, model.explicit(), &options, &open_early)?;
    let early = early.into_inner().unwrap_or_else(|e| e.into_inner());
    match judged {
        Certified::UpToDate(tasks) => {
            if !options.question {
                printer.note(&format!("nothing to do: {tasks} task(s) up to date"));
            }
            return Ok(());
        }
        Certified::Changed { changes, mark } => {
            options.changed = Some(changes);
            certified_mark = Some(mark);
        }
        Certified::Unknown => {}
    }
    if let Some(warning) = &located.warning {
        printer.warn(warning);
    }
    // Never freed: a build is the last thing the process does, and freeing
    // ten thousand records one by one costs more than a whole no-op check.
    // Opening reads the pipeline and the state and writes nothing: an
    // interrupt meanwhile ends the build at once (the lock not yet taken).
    let t = crate::phases::phase("session: open");
    let opened = match (early, certified_mark) {
        (Some((begun, started)), Some(mark)) if begun == mark => started.wait(&interrupt),
        _ => interrupt.unless_requested({
            let model = model.clone();
            move || match certified_mark {
                Some(mark) => Session::open_certified(located, &model, Lists::Unproduced, mark),
                None => Session::open(located, &model, Lists::Unproduced),
            }
        }),
    };
    let Some(opened) = opened else {
        say(printer, &Notice::StoppedEarly, &advice);
        return Err(Error::Interrupted);
    };
    let session: &mut Session = Box::leak(Box::new(opened?));
    drop(t);
    if !options.read_only() {
        answers::make_pipeline_cache(session, &options.answers)?;
    }
    for warning in session.graph.warnings(&|p| session.run_dir.show(p)) {
        printer.warn(&warning);
    }
    let recorder = (!options.read_only()).then(|| {
        Recorder::start(
            &session.run_dir,
            &session.graph.hooks,
            ctx.webhook.as_deref(),
        )
    });
    // Answers are scrubbed of the webhook's token, as of the API keys.
    let env = ctx.scrubbing_env();
    let annotations = ctx
        .github_annotations(args.annotations)
        .then(|| Github::new(&session.pipeline, &ctx.annotation_base()));
    let terminal = Terminal {
        printer: Mutex::new(printer),
        annotations,
        shown: None,
        advice,
    };
    let result = {
        let both;
        let observer: &dyn Observer = match &recorder {
            Some(recorder) => {
                both = Both(&terminal, recorder);
                &both
            }
            None => &terminal,
        };
        Build {
            options: &options,
            env: &env,
            interrupt: &interrupt,
            observer,
            executor: None,
            slots: jobserver.as_ref().map(|j| j as &dyn Slots),
        }
        .run(session)
    };
    if let Some(warning) = jobserver.as_ref().and_then(Jobserver::warning) {
        terminal.printer().warn(&warning);
    }
    // Every token is back with make before the build says how it ended.
    drop(jobserver);
    let printer = terminal
        .printer
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    if let Ok(report) = &result {
        // A reason may quote a recorded message (`failed last time: ...`),
        // which a record of an earlier version may hold unescaped.
        for (task, reason) in &report.would_run {
            printer.data(&format!("{task}: {}", printable(reason)));
        }
    }
    if let Some(recorder) = recorder {
        match recorder.finish(session, result.as_ref(), &interrupt) {
            Ok(delivered) => {
                for warning in delivered.warnings {
                    printer.warn(&warning);
                }
                if delivered.cut {
                    return Err(cut_short(result, session, printer));
                }
            }
            // The build's own error came first (on a full disk, the file
            // it could not write); this one only follows from it.
            Err(e) if result.is_err() => printer.warn(&e.to_string()),
            Err(e) => return Err(no_space(e, session)),
        }
    }
    if let Ok(report) = &result {
        if report.ran_tasks && matches!(report.ended, crate::exec::build::Ended::Completed) {
            show_results(session, &options.targets, printer);
        }
    }
    result
        .map_err(|e| no_space(e, session))?
        .into_result()
        .map_err(|e| in_run(e, session))
}

/// The error of a build whose wait for its hooks a signal cut short:
/// interrupted (exit 130), the build's own error printed first, as it
/// would have been (a task that failed, a full disk).
fn cut_short(result: Result<BuildReport>, session: &Session, printer: &mut Printer) -> Error {
    let own = match result {
        Ok(report) => report.into_result().err().map(|e| in_run(e, session)),
        Err(e) => Some(no_space(e, session)),
    };
    if let Some(e) = own.filter(|e| !matches!(e, Error::Interrupted)) {
        printer.error(&e);
    }
    Error::Interrupted
}

/// A failed build's error names its run directory when it is not the
/// current one (`planexe build -C runs/a`, as a Makefile runs many): the
/// hint's paths (`.planexe/failures.jsonl`) are relative to it.
fn in_run(e: Error, session: &Session) -> Error {
    let Error::TasksFailed { names, hint, .. } = e else {
        return e;
    };
    let root = session.run_dir.root();
    let cwd = std::env::current_dir().unwrap_or_default();
    let cwd = std::fs::canonicalize(&cwd).unwrap_or(cwd);
    let run = (cwd != root).then(|| {
        root.strip_prefix(&cwd)
            .map_or_else(|_| root.display().to_string(), |p| p.display().to_string())
    });
    Error::TasksFailed { names, hint, run }
}

/// A full disk's error with the door's hint: what to free, and that the
/// next build resumes.
fn no_space(e: Error, session: &Session) -> Error {
    e.with_no_space_hint(|| {
        let dir = session.run_dir.root().display().to_string();
        session.advice().hint(&Trouble::NoSpace { dir: &dir })
    })
}

/// Where the build's results are (`[pipeline] results`, else what nothing
/// else reads), as paths from the current directory. A build of
/// `targets` names only the results they need: the others were not
/// built, and may be stale.
fn show_results(session: &Session, targets: &[String], printer: &mut Printer) {
    let graph = &session.graph;
    let needed = match targets.is_empty() {
        true => None,
        false => session.targets(targets).ok().map(|ids| graph.closure(&ids)),
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let shown: Vec<String> = graph
        .results()
        .iter()
        .filter(|rel| match (&needed, graph.producer(rel)) {
            (Some(needed), Some(id)) => needed.get(id).copied().unwrap_or(false),
            (Some(_), None) => false,
            (None, _) => true,
        })
        .map(|rel| session.run_dir.path(rel))
        .filter(|path| path.exists())
        .map(|path| {
            path.strip_prefix(&cwd)
                .map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
        })
        .take(8)
        .collect();
    if !shown.is_empty() {
        printer.note(&format!("results: {}", shown.join(", ")));
    }
}

/// The terminal as an observer of a build (also of `watch`'s builds);
/// with `annotations`, failed tasks are also CI annotations on stdout.
pub(super) struct Terminal<'a> {
    pub(super) printer: Mutex<&'a mut Printer>,
    pub(super) annotations: Option<Github>,
    /// Which notices to print (`None`: all). A watch leaves out the
    /// warnings it said already.
    pub(super) shown: Option<&'a (dyn Fn(&Notice) -> bool + Sync)>,
    /// In whose words notices say what to do.
    pub(super) advice: Advice,
}

impl<'a> Terminal<'a> {
    fn printer(&self) -> MutexGuard<'_, &'a mut Printer> {
        self.printer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Observer for Terminal<'_> {
    fn notice(&self, notice: &Notice) {
        if self.shown.is_some_and(|shown| !shown(notice)) {
            return;
        }
        let mut printer = self.printer();
        if let Notice::Expanded { added, .. } = notice {
            printer.grow(*added);
        }
        say(&printer, notice, &self.advice);
    }

    fn tasks_started(&self, count: usize) {
        self.printer().begin(count);
    }

    fn tasks_ended(&self) {
        self.printer().end();
    }

    fn task_started(&self, task: &Task) {
        self.printer().task_started(&task.name);
    }

    fn task_skipped(&self, task: &Task, why: &str) {
        self.printer().task_skipped(&task.name, why);
    }

    fn task_ended(&self, task: &Task, end: &TaskEnd) {
        let mut printer = self.printer();
        match end.status.state {
            TaskState::Done if end.unrecorded.is_some() => {
                printer.task_unrecorded(&task.name, end.elapsed)
            }
            TaskState::Done if end.status.rescued => printer.task_rescued(&task.name, end.elapsed),
            TaskState::Done => printer.task_done(&task.name, end.elapsed),
            TaskState::Stopped => printer.task_stopped(&task.name, end.elapsed),
            _ => {
                let message = end.status.error.as_ref().map_or_else(
                    || "failed".to_string(),
                    |e| match &e.error_id {
                        // On its first line, which says what failed: a
                        // message with a code frame ends with its hint.
                        Some(id) => match e.message.split_once('\n') {
                            Some((first, rest)) => format!("{first} (error_id {id})\n{rest}"),
                            None => format!("{} (error_id {id})", e.message),
                        },
                        None => e.message.clone(),
                    },
                );
                printer.task_failed(&task.name, &message, end);
                if let Some(github) = &self.annotations {
                    printer.data(&github.failed(task, &message));
                }
            }
        }
        if end.status.state == TaskState::Done {
            for check in end.status.checks.iter().filter(|c| !c.passed) {
                let message = check.message.as_deref().unwrap_or("failed");
                printer.check_warning(&task.name, &check.name, first_line(message));
            }
            if let Some(v) = end.status.judge.as_ref().filter(|v| !v.passed) {
                let message = crate::exec::llm::rejection(v);
                printer.check_warning(&task.name, "judge", first_line(&message));
            }
        }
    }

    fn task_pending_check(&self, task: &Task, why: &str) {
        self.printer()
            .task_pending_check(&task.name, first_line(why));
    }

    fn task_progress(&self, task: &str, progress: &Progress) {
        if let Some(queued) = &progress.queued {
            let what = match queued.wait {
                Wait::Slot { max } => format!("queued: {max} call(s) in flight"),
                Wait::Rate { .. } => "queued: requests_per_minute".to_string(),
            };
            self.printer()
                .task_progress(task, &format!("{} · {what}", queued.model));
            return;
        }
        if let Some(until) = progress.waiting_until {
            let left = until
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            self.printer().task_progress(
                task,
                &format!("{} · waiting {}s to retry", progress.model, left.as_secs()),
            );
            return;
        }
        let secs = progress.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            progress.pieces as f64 / secs
        } else {
            0.0
        };
        self.printer().task_progress(
            task,
            &format!(
                "{} · {} tok · {rate:.1} tok/s",
                progress.model, progress.pieces
            ),
        );
    }
}
