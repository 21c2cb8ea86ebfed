//! `planexe watch`: build, then rebuild whenever a source changes. Filter,
//! then debounce, then build (watchexec's shape): events for planexe's own
//! writes are dropped before they count ([`debounce::Filter`]; an output
//! as the last build left it, succeeded or failed, is its own: [`left`]),
//! the rest are collected for a short window ([`debounce::Batch`]), and
//! then one normal [`Build`] runs, which rebuilds exactly what became
//! stale.
//!
//! The loop owns the process concerns: the watcher ([`notifier`]), the
//! signals (a build stops cleanly; Ctrl-C while idle ends the watch at
//! once), the lock (held only while a build runs, waited for when another
//! planexe holds it; what changes during the wait is read by the build
//! after it and named in its line), and the watch set ([`sources`]),
//! recomputed after every load of the pipeline so a new source is watched
//! from then on, and after every build from the graph it grew (a fan-out's
//! instances read and write files of their own). A pipeline that stops
//! loading is reported and the watch goes on; so is a run directory moved
//! away or removed ([`pinned`]: the watch stays where it started). Events lost to an overflow
//! of the kernel's queue make the watch watch its folders afresh and build
//! (which checks everything).

mod debounce;
mod entries;
mod left;
mod links;
mod notifier;
mod pinned;
mod poller;
mod sources;
mod warned;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::args::{Cli, WatchArgs};
use super::build::Terminal;
use super::printer::Printer;
use super::Context;
use crate::error::{Error, Result};
use crate::exec::observer::Both;
use crate::exec::{Build, BuildOptions, BuildReport, Ended, Interrupt, Notice};
use crate::model::Lists;
use crate::observe::Recorder;
use crate::plan::Session;
use crate::store::RunDir;
use debounce::{Batch, Changes, Filter, News, Window};
use left::{Left, Started};
use notifier::{Notifier, Seen};
use pinned::Pinned;
use sources::WatchSet;
use warned::Warned;

/// How often an idle watch looks at the interrupt flag (and a waiting one
/// at the lock).
const TICK: Duration = Duration::from_millis(100);

/// What a round's line says when events were lost.
const LOST: &str = "events were lost (the system's queue overflowed); checked everything";

/// How long after a build its own writes may still arrive as events (more
/// with `--poll`: a poll may see them one interval late).
const SETTLE: Duration = Duration::from_millis(500);

pub fn watch(cli: &Cli, ctx: &Context, args: &WatchArgs, printer: &mut Printer) -> Result<()> {
    ctx.check_webhook()?;
    let interrupt = Interrupt::signals();
    let debounce = duration("--debounce", &args.debounce)?;
    let poll = args.poll.as_deref().map(poll_interval).transpose()?;
    let (tx, rx) = mpsc::channel();
    let mut watch = Watch {
        place: Pinned::new(ctx.location(cli)?),
        ctx,
        args,
        options: BuildOptions {
            targets: args.targets.clone(),
            jobs: args.jobs.map(|j| j as usize),
            keep_going: args.keep_going,
            check: args.check.into(),
            // The watch waits for a lock it sees held before it builds
            // (and loads again after); one taken between its look and
            // its build (two watches started at once) the build waits
            // for, as `planexe build` does.
            wait_for_lock: true,
            ..BuildOptions::default()
        },
        interrupt,
        notifier: Notifier::new(poll, tx)?,
        rx,
        filter: Filter::default(),
        set: WatchSet::default(),
        pipeline: None,
        left: Left::default(),
        settle: SETTLE + poll.unwrap_or_default(),
        window: Window::new(debounce, poll),
        first: true,
        warned: Warned::default(),
    };
    let mut changed = None;
    loop {
        watch.round(changed.take(), printer)?;
        if watch.first {
            watch.first = false;
            printer.note(&format!(
                "watching {} file(s) in {} folder(s); Ctrl-C to stop",
                watch.set.files(),
                watch.set.folders().len()
            ));
        }
        changed = Some(watch.wait(printer)?);
    }
}

/// `--debounce` or `--poll`.
fn duration(flag: &str, text: &str) -> Result<Duration> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        Error::usage(format!("{flag} {text}: {e}")).hint("write a duration such as 100ms, 2s or 1m")
    })
}

/// The shortest `--poll` interval: each poll walks every watched path.
const MIN_POLL: Duration = Duration::from_millis(10);

fn poll_interval(text: &str) -> Result<Duration> {
    let poll = duration("--poll", text)?;
    if poll < MIN_POLL {
        return Err(Error::usage(format!(
            "--poll {text}: too short; each poll looks at every watched file"
        ))
        .hint("poll every 10ms or more (250ms to 2s suits most file systems)"));
    }
    Ok(poll)
}

/// One watch: its settings, its watcher and what it knows between builds.
struct Watch<'a> {
    /// The run directory and pipeline file, as found at the start.
    place: Pinned,
    ctx: &'a Context,
    args: &'a WatchArgs,
    options: BuildOptions,
    interrupt: Interrupt,
    notifier: Notifier,
    rx: Receiver<Seen>,
    filter: Filter,
    /// What the last load of the pipeline made the watch look at.
    set: WatchSet,
    /// The pipeline file last loaded (its path, and how messages name it).
    pipeline: Option<(PathBuf, String)>,
    /// Each output as the last build left it: an event for an output
    /// still so is the build's own, however late it arrives (a loaded
    /// machine delivers events late).
    left: Left,
    settle: Duration,
    /// How long a batch of changes waits before its build.
    window: Window,
    /// Before the first build: errors then end the watch (status 2).
    first: bool,
    /// The pipeline's warnings, at its loads and from its builds: each is
    /// said once per watch (again when an edit brings it back).
    warned: Warned,
}

impl Watch<'_> {
    /// Loads the pipeline, builds, and says in one line what changed and
    /// what the build did. `changed`: `None` for the first build.
    ///
    /// When another planexe holds the lock, the round waits for it, then
    /// loads the pipeline again: what changed meanwhile (the pipeline file
    /// among it, perhaps) is what this build reads, so it joins the
    /// changes this build's line names instead of making a build of its
    /// own.
    ///
    /// What another planexe wrote (before or during the wait) and left as
    /// its records say is no change: it leaves the round's changes, and a
    /// round left with none builds nothing.
    fn round(&mut self, mut changed: Option<Changes>, printer: &mut Printer) -> Result<()> {
        let mut seen_waiting: Vec<Seen> = Vec::new();
        let (mut waited, mut cleared) = (false, false);
        let (session, report) = loop {
            let loaded = self.load(printer);
            if let Ok(session) = &loaded {
                // As the other planexe left them, if one built meanwhile:
                // its own writes are not changes.
                self.left = Left::now(session, &self.left);
                if let Some(changed) = &mut changed {
                    (changed.paths).retain(|path| !self.left.took_back(&self.set, path));
                }
            }
            for seen in seen_waiting.drain(..) {
                let counted = self.counted(seen, printer);
                if let Some(changed) = &mut changed {
                    changed.extend(counted);
                }
            }
            let mut session = match loaded {
                Ok(session) => session,
                // At first, only a pipeline that does not load is waited
                // out (an unknown target or a missing run directory is
                // not).
                Err(e) if self.first && !matches!(e, Error::Pipeline { .. }) => return Err(e),
                Err(e) if self.set.files() == 0 => return Err(e),
                Err(e) => {
                    printer.error(&e);
                    printer.note(&format!(
                        "watch: {}: not built; waiting for a change that fixes it",
                        self.what(changed.as_ref())
                    ));
                    self.warned.round_over(false);
                    return Ok(());
                }
            };
            if self.wait_for_lock(&session.run_dir, printer)? {
                waited = true;
                seen_waiting = self.rx.try_iter().collect();
                continue;
            }
            if changed.as_ref().is_some_and(Changes::is_empty) {
                // No build grows the graph: watch what the fan-outs whose
                // lists are ready read and write, as a build would see it.
                let _ = session.expand_ready(self.options.check);
                let _ = self.watch_graph(&session);
                self.sync(printer)?;
                self.warned.round_over(false);
                if waited {
                    printer.note(
                        "watch: what changed is what another planexe wrote; nothing to build",
                    );
                }
                return Ok(());
            }
            if changed.is_some() && self.args.clear && !cleared {
                printer.clear_screen();
                cleared = true;
            }
            let start = Instant::now();
            let started = Started::new(session.run_dir.root());
            let outcome = self.build_once(&mut session, &started, printer);
            self.filter.build_wrote(start, Instant::now() + self.settle);
            // What the build left, before anything else looks: a failed
            // task's outputs as found now are its own doing.
            self.left = Left::after(&session, &self.left, &started);
            match outcome {
                // Another planexe recorded another pipeline file for the
                // run meanwhile (`build -f`), and the build refused the
                // session opened for the old one: load the run's file, as
                // a build started now would.
                Err(_) if session.moved_pipeline().is_ok_and(|m| m.is_some()) => continue,
                outcome => break (session, outcome),
            }
        };
        self.warned.round_over(report.is_ok());
        // What the graph the build grew reads and writes (its fan-outs'
        // instances); the build may have made the folders of its outputs.
        // (Its targets were known at load.)
        let _ = self.watch_graph(&session);
        self.sync(printer)?;
        let line = match report {
            Ok((report, ran)) => match &report.ended {
                Ended::Stopped => return Err(Error::Interrupted),
                Ended::Failed { names, .. } => {
                    format!("ran {ran} task(s), {} failed", names.len())
                }
                _ => format!("ran {ran} task(s)"),
            },
            Err(e) => {
                printer.error(&e);
                "not built".to_string()
            }
        };
        printer.note(&format!("watch: {}: {line}", self.what(changed.as_ref())));
        Ok(())
    }

    /// What a round's line says changed: `first build`, the changed
    /// paths, or that events were lost.
    fn what(&self, changed: Option<&Changes>) -> String {
        let Some(changed) = changed else {
            return "first build".to_string();
        };
        let names: Vec<String> = changed.paths.iter().map(|p| self.set.show(p)).collect();
        let paths = format!("{} changed", debounce::describe(&names));
        match (changed.lost, names.is_empty()) {
            (false, _) => paths,
            (true, true) => LOST.to_string(),
            (true, false) => format!("{paths}; {LOST}"),
        }
    }

    /// Opens a session and makes its watch set the watch's. A pipeline
    /// that parses but does not resolve is watched for every path it
    /// names (the missing input it names may be the fix); one that does
    /// not parse keeps the last set (at first, the pipeline file alone),
    /// so fixing it is seen.
    fn load(&mut self, printer: &Printer) -> Result<Session> {
        if !self.first {
            self.place.still_there()?;
        }
        let located = self.place.location().locate()?;
        if let (true, Some(warning)) = (self.first, &located.warning) {
            printer.warn(warning);
        }
        let root = located.run_dir.root().to_path_buf();
        let pipeline = located.pipeline.clone();
        let display = located.display.clone();
        let model = self.ctx.model(self.args.model.as_deref());
        let session = match Session::open(located, &model, Lists::Unproduced) {
            Ok(session) => session,
            Err(e) => {
                match crate::model::Pipeline::load(&pipeline, display) {
                    Ok(parsed) => self.set = WatchSet::named(&root, &parsed),
                    Err(_) if self.set.files() == 0 => {
                        self.set = WatchSet::pipeline_only(&root, &pipeline);
                    }
                    Err(_) => {}
                }
                self.sync(printer)?;
                return Err(e);
            }
        };
        // Without -f, the watch follows the file the run records, which a
        // `build -f` from another terminal changes.
        let loaded = (
            session.pipeline.path.clone(),
            session.pipeline.display.clone(),
        );
        if let Some((_, before)) = self.pipeline.as_ref().filter(|(p, _)| *p != loaded.0) {
            printer.note(&format!(
                "watch: this run's pipeline file is now {} (recorded by another build), not {before}; watching it",
                loaded.1
            ));
        }
        self.pipeline = Some(loaded);
        let targets = self.watch_graph(&session);
        self.sync(printer)?;
        targets?;
        super::answers::make_pipeline_cache(&session, &self.options.answers)?;
        for warning in session.graph.warnings(&|p| session.run_dir.show(p)) {
            if self.warned.fresh(&warning) {
                printer.warn(&warning);
            }
        }
        Ok(session)
    }

    /// Makes the watch set that of `session`'s graph: as loaded, or as a
    /// build left it (grown by the instances of fan-outs whose list a
    /// task made, which read and write files of their own). With
    /// targets, only what their build reads; an unknown target is the
    /// `Err`, and everything is watched until an edit of the pipeline
    /// fixes it.
    fn watch_graph(&mut self, session: &Session) -> Result<()> {
        let graph = &session.graph;
        let targets = session.targets(&self.options.targets);
        let wanted = match &targets {
            Ok(roots) if !self.options.targets.is_empty() => Some(graph.closure(roots)),
            _ => None,
        };
        let root = session.run_dir.root();
        self.set = WatchSet::of(root, graph, &session.pipeline, wanted.as_deref());
        targets.map(|_| ())
    }

    /// Watches the folders of the watch set. Failing to is the end of the
    /// watch at first, and a warning later (what is watched stays).
    fn sync(&mut self, printer: &Printer) -> Result<()> {
        match self.notifier.sync(self.set.folders()) {
            Ok(_) => Ok(()),
            Err(e) if self.first => Err(e),
            Err(e) => {
                printer.error(&e);
                Ok(())
            }
        }
    }

    /// Runs one build, observed by the terminal, the recorder and
    /// `started`; returns its report and how many tasks it ran.
    fn build_once(
        &self,
        session: &mut Session,
        started: &Started,
        printer: &mut Printer,
    ) -> Result<(BuildReport, usize)> {
        let recorder = Recorder::start(
            &session.run_dir,
            &session.graph.hooks,
            self.ctx.webhook.as_deref(),
        );
        let env = self.ctx.scrubbing_env();
        // A fan-out's warning comes from every build that expands it, and
        // that of a task no longer in the pipeline from every build.
        let warned = &self.warned;
        let shown = |notice: &Notice| match notice {
            Notice::GlobLeavesOut(warning) => warned.fresh(warning),
            Notice::TaskLeft { task, outputs } => {
                warned.fresh(&format!("task {task} left: {}", outputs.join(", ")))
            }
            _ => true,
        };
        let terminal = Terminal {
            printer: Mutex::new(printer),
            annotations: None,
            shown: Some(&shown),
            advice: session.advice().clone(),
        };
        let result = Build {
            options: &self.options,
            env: &env,
            interrupt: &self.interrupt,
            // `started` first: what a failed task left is looked at
            // before its failure is printed, so an edit made on reading it
            // is the user's.
            observer: &Both(started, Both(&terminal, &recorder)),
            executor: None,
            slots: None,
        }
        .run(session);
        let printer = terminal
            .printer
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        printer.end();
        // A signal that ended the wait for the hooks is the watch's too:
        // it stops before it waits for changes.
        let delivered = recorder.finish(session, result.as_ref(), &self.interrupt)?;
        for warning in delivered.warnings {
            printer.warn(&warning);
        }
        Ok((result?, started.count()))
    }

    /// Waits while another planexe holds the run directory's lock, saying
    /// so once. `true` when it waited.
    fn wait_for_lock(&self, run_dir: &RunDir, printer: &Printer) -> Result<bool> {
        let mut said = false;
        while let Some(pid) = lock_holder(run_dir) {
            if !said {
                printer.note(&format!(
                    "watch: another planexe (pid {pid}) is running in this directory; building when it ends"
                ));
                said = true;
            }
            if self.interrupt.requested() {
                return Err(Error::Interrupted);
            }
            std::thread::sleep(TICK);
        }
        Ok(said)
    }

    /// Waits for changes that count, then for the debounce window to pass
    /// without one; returns what changed. `Err(Interrupted)` on a signal.
    fn wait(&mut self, printer: &Printer) -> Result<Changes> {
        let mut batch = Batch::default();
        loop {
            if self.interrupt.requested() {
                return Err(Error::Interrupted);
            }
            let now = Instant::now();
            if let Some(due) = batch.due(self.window) {
                if now >= due {
                    return Ok(batch.take());
                }
            }
            let timeout = batch
                .due(self.window)
                .map_or(TICK, |due| due.saturating_duration_since(now).min(TICK));
            match self.rx.recv_timeout(timeout) {
                Ok(seen) => {
                    self.admit(seen, &mut batch, printer);
                    // Everything already queued (a build's worth of
                    // events) goes into this batch: one build after.
                    while let Ok(seen) = self.rx.try_recv() {
                        self.admit(seen, &mut batch, printer);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::usage("the file watcher stopped"));
                }
            }
        }
    }

    fn admit(&mut self, seen: Seen, batch: &mut Batch, printer: &Printer) {
        let at = seen.at;
        let counted = self.counted(seen, printer);
        batch.add(counted, at);
    }

    /// What of an event counts as a change (a watcher's error is
    /// printed).
    fn counted(&mut self, seen: Seen, printer: &Printer) -> Changes {
        let event = match seen.event {
            Ok(event) => event,
            // A watched folder removed (a poll says so at every interval):
            // watch its parent until it is made again. Its removal comes
            // as an event of its own.
            Err(e) if self.notifier.gone(&e) => {
                if let Err(e) = self.notifier.sync(self.set.folders()) {
                    printer.error(&e);
                }
                return Changes::default();
            }
            Err(e) => {
                printer.error(&self.notifier.explain(e));
                return Changes::default();
            }
        };
        match debounce::news(event) {
            News::Nothing => Changes::default(),
            // Anything may have changed, the build's own writes or not:
            // watch every folder afresh (one may have been removed or
            // made meanwhile), and build, which checks everything.
            News::Lost => {
                if let Err(e) = self.notifier.rewatch(self.set.folders()) {
                    printer.error(&e);
                }
                Changes::lost()
            }
            News::Changed { paths, reshaped } => {
                // A link re-pointed: watch where it leads now.
                let mut relinked = false;
                for path in &paths {
                    relinked |= self.set.relink(path);
                }
                if relinked {
                    if let Err(e) = self.notifier.sync(self.set.folders()) {
                        printer.error(&e);
                    }
                }
                // A folder of the set made, removed or renamed: watch what
                // is there now (a rescan of a folder made again comes as
                // events of its own).
                if reshaped && paths.iter().any(|p| self.set.is_folder(p)) {
                    for path in &paths {
                        self.notifier.forget(path);
                    }
                    if let Err(e) = self.notifier.sync(self.set.folders()) {
                        printer.error(&e);
                    }
                }
                // A folder counts when it is made, removed or renamed, not
                // when its listing or times change (as a poll sees them):
                // what changed in it comes as events of its own.
                Changes::of(paths.into_iter().filter(|path| {
                    (reshaped || !self.set.is_folder(path)) && self.counts(path, seen.at)
                }))
            }
        }
    }
}

impl Watch<'_> {
    /// Whether a change to `path`, seen at `at`, counts. An output as the
    /// last build left it ([`Left`]: as its record says, or as found when
    /// a build that ran its task failed) is the build's own, however late
    /// its event comes. One that is not counts even when it changed while
    /// a build wrote (removed or edited meanwhile: `rm -rf out` while the
    /// build ran), if the watch knows how it was left: for an output of a
    /// task that never ran, a change while a build writes is its own.
    /// Events are read once the build is over, so what the watch knows is
    /// what the build ended with.
    ///
    /// A file an output's symlink leads to changes that output too (the
    /// build stamps an output through its link): its change counts when
    /// one of theirs would, even when it is another task's output left as
    /// that task's record says (that task rebuilt it, and the output that
    /// leads to it no longer is as its own record says: a build keeps it
    /// as edited by hand and re-runs what reads it). A file only outputs'
    /// links lead to counts only so.
    fn counts(&self, path: &Path, at: Instant) -> bool {
        let outputs = self.set.outputs_through(path);
        if outputs.iter().any(|output| self.counts_itself(output, at)) {
            return true;
        }
        !self.set.is_outputs_own(path) && self.counts_itself(path, at)
    }

    /// Whether a change to `path` itself counts, leaving aside the
    /// outputs whose links lead to it.
    fn counts_itself(&self, path: &Path, at: Instant) -> bool {
        if self.left.is_as_left(path) {
            return false;
        }
        self.filter.admit(&self.set, path, at)
            || (self.set.is_output(path) && self.left.knows(path))
    }
}

/// Another process holding the run directory's lock, from `/proc/locks`
/// (asking without taking the lock, which would make a `build` started
/// meanwhile fail).
fn lock_holder(run_dir: &RunDir) -> Option<u32> {
    run_dir
        .lock_holder()
        .filter(|&pid| pid != std::process::id())
}
