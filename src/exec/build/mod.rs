//! One build: [`Build::run`] brings a [`Session`]'s run directory up to
//! date, and can be called any number of times in one process (watch mode
//! and servers run many builds). It reports through an
//! [`Observer`] and returns a [`BuildReport`];
//! what the report means for an exit status is
//! [`BuildReport::into_result`].
//!
//! A build plans and runs its stale tasks in one pass (`run`): a
//! `foreach` task whose list the build makes expands the moment that list
//! is written, inside the running build (`growth`), while unrelated tasks
//! keep running (`lists` says how fan-outs take part). Before, it puts
//! right what a crashed build left ([`super::recovery`]); after, if the
//! whole pipeline is up to date, it writes the up-to-date certificate.
//!
//! [`certified`] is the fast path before all of it: with the certificate
//! holding, a no-op build answers from stats alone, without parsing the
//! pipeline.

mod failed;
mod growth;
mod hooks;
mod lists;
mod reach;
mod resume;
mod run;

use super::attempt::Executor;
use super::env::Env;
use super::interrupt::Interrupt;
use super::observer::{Notice, Observer};
use super::recovery;
use super::scheduler::Slots;
use crate::error::{Error, Result};
use crate::model::Trouble;
use crate::plan::certificate::{self, Certificate, Changes, Judged};
use crate::plan::session::Located;
use crate::plan::Session;
use crate::store::inflight::Inflight;
use crate::store::lock::{self, Lock, Waiting, BUSY};
use crate::store::rundir::StateMark;
use crate::store::CheckMode;

/// The most tasks a build runs at once, whatever `-j` or `[pipeline] jobs`
/// says: each is a thread (a model call two), and a few hundred already
/// outrun any local model server or rate limit.
pub const MAX_JOBS: usize = 256;

/// What a build is asked to do.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Task names or output paths; empty: every task.
    pub targets: Vec<String>,
    /// At most this many tasks at once; default `[pipeline] jobs`, else
    /// one per CPU (under a jobserver: as many as it grants); never more
    /// than [`MAX_JOBS`].
    pub jobs: Option<usize>,
    /// Keep going after a failure with what does not depend on it.
    pub keep_going: bool,
    /// Say what would run and why; change nothing.
    pub dry_run: bool,
    /// Run nothing; say whether everything is up to date.
    pub question: bool,
    /// Run the targets even if they are up to date.
    pub force: bool,
    /// How a changed file is detected.
    pub check: CheckMode,
    /// Where answers come from: `--record`, `--replay`, `--cache`; the
    /// pipeline's `cache` when this is `Live`.
    pub answers: super::llm::recording::Answers,
    /// What changed since the last complete build, as its up-to-date
    /// certificate found ([`certified`]): only the tasks these changes
    /// reach are checked; the certificate vouches for every other.
    pub changed: Option<Changes>,
    /// When another planexe holds the run directory's lock: wait for it
    /// (saying so once, [`Notice::WaitingForLock`]; an interrupt ends the
    /// wait) rather than be refused at once.
    pub wait_for_lock: bool,
}

impl BuildOptions {
    /// Whether the build changes nothing (a dry run or a question).
    pub fn read_only(&self) -> bool {
        self.dry_run || self.question
    }
}

/// How a build ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Every wanted task is up to date.
    Completed,
    /// Tasks failed; `hint` says where their output is.
    Failed { names: Vec<String>, hint: String },
    /// An interrupt stopped it.
    Stopped,
    /// A question (`-q`) found something stale.
    NotUpToDate,
}

/// What a build did.
#[derive(Debug)]
pub struct BuildReport {
    pub ended: Ended,
    /// A dry run: each task that would run, and why.
    pub would_run: Vec<(String, String)>,
    /// Whether the build ran any task (only then does it send events).
    pub ran_tasks: bool,
    /// Whether it writes the up-to-date certificate once its tasks are
    /// over: set before the observers' `settled`, which runs beside that
    /// write (what they save with the certificate they can make then).
    pub certifying: bool,
    /// The generation of the up-to-date certificate it wrote, if any.
    pub certified: Option<u64>,
    /// How many tasks it considered (the targets and what they need, or
    /// every task), once it planned.
    pub considered: usize,
}

impl BuildReport {
    fn new() -> BuildReport {
        BuildReport {
            ended: Ended::Completed,
            would_run: Vec::new(),
            ran_tasks: false,
            certifying: false,
            certified: None,
            considered: 0,
        }
    }

    /// The error an exit status is made from, when the build did not
    /// complete.
    pub fn error(&self) -> Option<Error> {
        match &self.ended {
            Ended::Completed => None,
            Ended::Failed { names, hint } => Some(Error::TasksFailed {
                names: names.clone(),
                hint: hint.clone(),
                run: None,
            }),
            Ended::Stopped => Some(Error::Interrupted),
            Ended::NotUpToDate => Some(Error::NotUpToDate),
        }
    }

    /// [`BuildReport::error`] as a result.
    pub fn into_result(self) -> Result<()> {
        match self.error() {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

/// A build, ready to run.
pub struct Build<'a> {
    pub options: &'a BuildOptions,
    /// What commands inherit and model calls read.
    pub env: &'a Env,
    pub interrupt: &'a Interrupt,
    pub observer: &'a dyn Observer,
    /// What runs tasks' actions; `None`: commands and model calls.
    pub executor: Option<&'a dyn Executor>,
    /// Where tokens for tasks beyond the first running one come from (a
    /// make jobserver: [`super::jobserver`]); `None`: only the job limit
    /// limits the build.
    pub slots: Option<&'a dyn Slots>,
}

/// What a build's steps share.
struct Progress<'a> {
    inflight: Option<&'a Inflight>,
    /// Whether a warning was given: the build then writes no certificate,
    /// which would hide the warning from the next build.
    warned: bool,
    report: BuildReport,
    /// In a build that checked only what the certificate's changes reach:
    /// the tasks it checked or ran (by id), whose records it may have
    /// changed.
    rechecked: Option<Vec<bool>>,
    /// The removal of a crashed build's temporary files, let go of as the
    /// tasks start.
    sweep: Option<recovery::Sweep>,
    /// What changed since the last complete build ([`BuildOptions::changed`]),
    /// while the state is still as the certificate's judge saw it: not
    /// after another planexe changed it before this build took the lock.
    changed: Option<&'a Changes>,
}

impl Build<'_> {
    /// Runs the build in `session`'s run directory. `Err` for what stops
    /// it before or around its tasks (a busy lock, a broken pipeline, a
    /// failed write of planexe's own); how the tasks went is the report's.
    pub fn run(&self, session: &mut Session) -> Result<BuildReport> {
        let read_only = self.options.read_only();
        if let Some(stopped) = self.stopped_early() {
            return Ok(stopped);
        }
        let _lock = if read_only {
            None
        } else {
            match self.lock(session) {
                Ok(Some(lock)) => Some(lock),
                Ok(None) => return self.stopped_early().ok_or(Error::Interrupted),
                Err(e) if lock::is_unwritable(&e) && !self.options.force => {
                    return self.unwritable_but_up_to_date(session, e)
                }
                Err(e) => return Err(e),
            }
        };
        let ended = self.run_locked(session);
        // Before the lock is let go: what the observers write of this
        // build's end (its last event, the rest of its trace) comes before
        // anything of a build that waited for the lock.
        self.observer.ended(session, ended.as_ref());
        ended
    }

    /// [`Build::run`] once the run directory is the build's own (or, for a
    /// dry run, without its lock).
    fn run_locked(&self, session: &mut Session) -> Result<BuildReport> {
        let read_only = self.options.read_only();
        let mut sweep = None;
        let mut changed = self.options.changed.as_ref();
        if !read_only {
            // Whatever this build changes, the certificate no longer
            // vouches for it; the build writes a new one if it can.
            let _t = crate::phases::phase("build: start (certificate, recovery)");
            // The session was read before the lock was ours: another
            // planexe may have changed the state since (a watch waits for
            // the lock with its session open). Plan from what is there now,
            // checking every task: what the certificate's judge found changed
            // is no longer all that did.
            if session.refresh()? {
                changed = None;
            }
            // Nothing changed yet: an interrupt meanwhile stops it here.
            if let Some(stopped) = self.stopped_early() {
                return Ok(stopped);
            }
            session.run_dir.remove_certificate()?;
            sweep = Some(recovery::reconcile(
                &session.run_dir,
                &session.graph,
                session.run.as_ref(),
                session.journal.as_ref(),
                self.observer,
            )?);
            // The sidecars now say what the journal said.
            session.store.set_in_flight(Vec::new());
            session.journal = None;
        }
        // After `reconcile`, which read the journal the last build left.
        let inflight = (!read_only).then(|| Inflight::start(&session.run_dir));
        let mut progress = Progress {
            inflight: inflight.as_ref(),
            warned: session.warning.is_some(),
            report: BuildReport::new(),
            rechecked: None,
            sweep,
            changed,
        };
        // Recovered from a crash (which, once begun, is seen through): an
        // interrupt meanwhile stops the build before its plan.
        if let Some(stopped) = self.stopped_early() {
            if let Some(sweep) = progress.sweep.take() {
                sweep.finish(self.observer);
            }
            return Ok(stopped);
        }
        // The certificate vouched for every sidecar: none is damaged.
        if progress.changed.is_none() {
            self.repair_statuses(session, &mut progress)?;
        }
        self.run_stale(session, &mut progress)?;
        // Over before the certificate looks at the folders it swept.
        if let Some(sweep) = progress.sweep.take() {
            sweep.finish(self.observer);
        }
        let rechecked = progress.rechecked.take();
        let mut report = progress.report;
        // The whole pipeline built (or found up to date) without a warning:
        // the next build and `status` can tell from stats alone that it is
        // still so.
        if report.ended == Ended::Completed
            && !read_only
            && self.options.targets.is_empty()
            && !progress.warned
        {
            let base = progress.changed.and_then(|c| c.base.as_deref());
            let from = base.zip(rechecked.as_deref());
            let session = &*session;
            report.certifying = true;
            // The observers' own end of the build (a summary of every
            // task) runs beside the certificate: neither reads what the
            // other writes. (A panic of theirs goes on once the
            // certificate is written.)
            report.certified = std::thread::scope(|scope| {
                scope.spawn(|| self.observer.settled(session, &report));
                crate::phases::timed("certificate: write", || certify(session, from))
            });
        } else {
            self.observer.settled(session, &report);
        }
        Ok(report)
    }

    /// Rewrites from the state log every status file that is damaged while
    /// the log vouches for its task (a dry run only says so). A status file
    /// the log cannot vouch for makes its task not built, which the plan
    /// says.
    fn repair_statuses(&self, session: &mut Session, progress: &mut Progress) -> Result<()> {
        self.repair_log(session, progress)?;
        let _t = crate::phases::phase("build: damaged-sidecar scan");
        let damaged = session.damaged_sidecars();
        // What the state's load found holds only until this build changes
        // a sidecar.
        session.damaged = None;
        let dry_run = self.options.read_only();
        for task in damaged {
            if !dry_run {
                session.store.repair(&session.run_dir, &task)?;
            }
            let path = session.run_dir.show(&session.run_dir.status_path(&task));
            self.say(progress, Notice::StatusRepaired { path, dry_run });
        }
        Ok(())
    }

    /// Says what the lines of the state log that do not parse cost, once:
    /// the log is rewritten without them (a dry run only says so). A torn
    /// last line, a crash's leftover, goes without a word.
    fn repair_log(&self, session: &mut Session, progress: &mut Progress) -> Result<()> {
        let rewrite = !self.options.read_only();
        let damage = session.store.log_damage();
        let rewriter = (!rewrite).then(|| session.advice().hint(&Trouble::DamagedLog));
        let message = damage
            .is_warning()
            .then(|| damage.message(&session.run_dir, rewriter.as_deref()));
        if rewrite {
            session.store.repair_log(&session.run_dir)?;
        }
        if let Some(message) = message {
            self.say(progress, Notice::LogDamaged { message });
        }
        Ok(())
    }

    /// When an interrupt came before the build started any task (while it
    /// was loaded, waited for the lock, recovered or planned): says so, and
    /// the report of a build that stopped there, having recorded nothing
    /// of itself (`run.json`, sidecars, events).
    fn stopped_early(&self) -> Option<BuildReport> {
        if !self.interrupt.requested() {
            return None;
        }
        self.observer.notice(&Notice::StoppedEarly);
        let mut report = BuildReport::new();
        report.ended = Ended::Stopped;
        Some(report)
    }

    /// The run directory's lock for this build: waited for (said once),
    /// or refused at once in the door's words when the options say not to
    /// wait. `None`: an interrupt ended the wait.
    fn lock(&self, session: &Session) -> Result<Option<Lock>> {
        if !self.options.wait_for_lock {
            return session
                .run_dir
                .lock("build")
                .map(Some)
                .map_err(|e| match e {
                    Error::Usage { message, hints } if hints.iter().any(|h| h == BUSY) => {
                        Error::usage(message).hint(session.advice().hint(&Trouble::Busy))
                    }
                    e => e,
                });
        }
        let waited = session.run_dir.lock_waiting(
            "build",
            Waiting {
                told: &mut |who| self.observer.notice(&Notice::WaitingForLock(who.into())),
                stop: &|| self.interrupt.requested(),
            },
        );
        match waited {
            Err(Error::Interrupted) => Ok(None),
            waited => waited.map(Some),
        }
    }

    /// A run directory planexe cannot write (a read-only checkout or
    /// mount): a build with nothing to do needs no lock and writes
    /// nothing, so it succeeds, judged as `-q` judges (targets and all);
    /// one with something to do is refused with `unwritable`, which says
    /// what to do.
    fn unwritable_but_up_to_date(
        &self,
        session: &mut Session,
        unwritable: Error,
    ) -> Result<BuildReport> {
        let options = BuildOptions {
            question: true,
            dry_run: false,
            ..self.options.clone()
        };
        let report = Build {
            options: &options,
            env: self.env,
            interrupt: self.interrupt,
            observer: self.observer,
            executor: self.executor,
            slots: self.slots,
        }
        .run(session)?;
        match report.ended {
            Ended::Completed => {
                self.observer.notice(&Notice::NothingToDo {
                    tasks: report.considered,
                });
                Ok(report)
            }
            _ => Err(unwritable),
        }
    }

    /// Tells the observer, noting warnings.
    fn say(&self, progress: &mut Progress, notice: Notice) {
        progress.warned |= notice.is_warning();
        self.observer.notice(&notice);
    }
}

/// Writes the up-to-date certificate when every task is done with its
/// current definition and every file is as its records say; returns its
/// generation. Best effort: without it, the next build and `status` check
/// every task, as they would anyway. `from`: see [`certificate::write`].
fn certify(session: &Session, from: Option<(&certificate::Base, &[bool])>) -> Option<u64> {
    certificate::write(
        &session.run_dir,
        &session.pipeline,
        &session.graph,
        &session.store,
        &session.certificate_key(),
        from,
        &session.read,
    )
    .ok()
    .flatten()
}

/// What the up-to-date certificate says before a build.
#[derive(Debug)]
pub enum Certified {
    /// Nothing to do: this many tasks are up to date.
    UpToDate(u64),
    /// Only these task files and folders changed since the last complete
    /// build ([`BuildOptions::changed`]); planexe's state files are as it
    /// left them, as they were when `mark` was taken, before the judgement
    /// ([`Session::open_certified`](crate::plan::Session::open_certified)).
    Changed { changes: Changes, mark: StateMark },
    /// No certificate, or it says nothing that spares a check.
    Unknown,
}

/// The fast path of a whole build with nothing to do, as the last one left
/// it: the number of tasks the up-to-date certificate vouches for, when it
/// holds for this run directory, pipeline file and model override (`model`:
/// the one named for this build). Files touched with the same bytes get
/// their new stamps recorded, as the full check would, under the lock.
/// When it does not hold, what changed, if that spares a check.
pub fn certified(
    located: &Located,
    model: Option<&str>,
    options: &BuildOptions,
) -> Result<Certified> {
    certified_with(located, model, options, &|_| {})
}

/// [`certified`], calling `changing` with the state's mark (see
/// [`Certified::Changed`]) as soon as the judgement finds a change it can
/// follow, before it ends (see [`Certificate::judge`]): the verdict is then
/// not `UpToDate`, and is `Changed` with that mark, or else `Unknown`. A
/// caller can begin to open the session meanwhile.
pub fn certified_with(
    located: &Located,
    model: Option<&str>,
    options: &BuildOptions,
    changing: &(dyn Fn(StateMark) + Sync),
) -> Result<Certified> {
    if !options.targets.is_empty() || options.force || located.warning.is_some() {
        return Ok(Certified::Unknown);
    }
    let run_dir = &located.run_dir;
    let _t = crate::phases::phase("certificate: read and judge");
    let read = crate::phases::phase("certificate: read");
    let Some(cert) = Certificate::read(run_dir) else {
        return Ok(Certified::Unknown);
    };
    drop(read);
    let key = certificate::Key {
        pipeline: &located.pipeline,
        model,
    };
    // Before the judgement: a command that changes the state after it
    // changes the mark a session is opened with.
    let mark = run_dir.state_mark();
    let holds = match cert.judge(run_dir, &key, options.check, &|| changing(mark)) {
        Some(Judged::Holds(holds)) => holds,
        Some(Judged::Changed(changes)) => return Ok(Certified::Changed { changes, mark }),
        Some(Judged::Stale) | None => return Ok(Certified::Unknown),
    };
    if holds.clean() || options.read_only() {
        return Ok(Certified::UpToDate(holds.tasks));
    }
    // Unless another command changed the state since the check (every one
    // that does appends to the log). A busy lock is for the full path to
    // report.
    let Ok(_lock) = run_dir.lock("build") else {
        return Ok(Certified::Unknown);
    };
    if !cert.log_unchanged(run_dir) {
        return Ok(Certified::Unknown);
    }
    let tasks = holds.tasks;
    cert.record(run_dir, &holds)?;
    Ok(Certified::UpToDate(tasks))
}
