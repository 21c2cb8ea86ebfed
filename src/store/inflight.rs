//! Tasks in flight: what a build says about the tasks it is running.
//!
//! - `.planexe/inflight`, a journal appended to when a task starts (its
//!   `running` status), when its command's process exists (its pid: the
//!   task is journaled before the spawn, so no crash leaves a process the
//!   journal does not lead to) and when it has ended, once its record is
//!   published: a reader that reads the journal before the records (as
//!   `status` does during a build) finds every task it says ended with
//!   its outcome, and every other one in flight. After a crash, the next
//!   build reads it to stop the process groups left running and to mark
//!   their tasks interrupted ([`journal`]; a run whose outcome was
//!   published before the crash ended). One append per event, to one
//!   open file: it costs next to nothing per task.
//! - The `running` sidecar, `.planexe/tasks/NAME.status`: published only
//!   once a task has run for [`PUBLISH_AFTER`] (at most twice that), by one
//!   thread per build that a task's start never wakes.
//!   A task that ends sooner goes straight from its old state to its final
//!   one; writing and then replacing a sidecar it would never be seen in
//!   costs more file-system work than a trivial command itself.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::files;
use super::record::{Status, TaskState};
use super::rundir::RunDir;
use super::sidecar;

/// How long a task runs before its `running` sidecar is written.
pub const PUBLISH_AFTER: Duration = Duration::from_millis(100);

/// A task that started: what its `running` sidecar says, less the
/// stamps and definition (the journal stays small).
#[derive(Debug, Serialize, Deserialize)]
struct Started<S> {
    task: S,
    pid: Option<u32>,
    started_at: Option<S>,
    attempt: u32,
    fingerprint: S,
}

/// One line of the journal. `S` is `String` when read back and `&str`
/// when written, so writing copies nothing.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Line<S> {
    Started(Started<S>),
    /// The task's command has a process: `[task, pid]`.
    Spawned((S, u32)),
    /// The task's command (or model call) is over.
    Ended(S),
}

fn encode(line: &Line<&str>) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(line).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// A sidecar waiting for its task to have run long enough.
struct Pending {
    due: Instant,
    path: PathBuf,
    status: Status,
}

#[derive(Default)]
struct Queue {
    /// By ticket number, which grows with time: the first is due first.
    pending: BTreeMap<u64, Pending>,
    next_ticket: u64,
    /// The ticket whose sidecar is being written right now.
    writing: Option<u64>,
    shutdown: bool,
}

/// A started task's claim on its deferred sidecar; give it back to
/// [`Inflight::end`].
#[must_use]
pub struct Ticket {
    id: u64,
    task: String,
}

/// The journal and the publishing thread of one build.
pub struct Inflight {
    /// Opened when the build starts if the last build left a journal (it
    /// is emptied then), else at the first line: a build refused before
    /// its first task makes none in a fresh run directory.
    journal: std::sync::OnceLock<Option<File>>,
    path: PathBuf,
    shared: Arc<(Mutex<Queue>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

fn lock(m: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inflight {
    /// Starts a fresh journal (the last one was read by [`recover`]; the
    /// file is made at the first line when there was none) and
    /// the publishing thread. Bookkeeping is best effort: without a
    /// journal, or a thread, tasks still run.
    pub fn start(run_dir: &RunDir) -> Inflight {
        let path = run_dir.inflight_path();
        let journal = std::sync::OnceLock::new();
        if path.symlink_metadata().is_ok() {
            let _ = journal.set(files::create(&path).ok());
        }
        let shared: Arc<(Mutex<Queue>, Condvar)> = Arc::default();
        let inner = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("planexe-sidecars".into())
            .spawn(move || publish_loop(&inner))
            .ok();
        Inflight {
            journal,
            path,
            shared,
            thread,
        }
    }

    /// Records that the task whose `running` status this is has started,
    /// and schedules its sidecar. A command task calls this before it
    /// spawns, then [`Inflight::spawned`].
    pub fn begin(&self, run_dir: &RunDir, status: &Status) -> Ticket {
        self.append(&encode(&Line::Started(Started {
            task: &status.task,
            pid: status.pid,
            started_at: status.started_at.as_deref(),
            attempt: status.attempt,
            fingerprint: &status.fingerprint,
        })));
        let pending = Pending {
            due: Instant::now() + PUBLISH_AFTER,
            path: run_dir.status_path(&status.task),
            status: status.clone(),
        };
        let (m, _) = &*self.shared;
        let mut queue = lock(m);
        let id = queue.next_ticket;
        queue.next_ticket += 1;
        // No wake-up: the thread looks again at the first due time, or
        // every [`PUBLISH_AFTER`] when nothing waits, and a new sidecar is
        // never due before those already waiting. A wake-up per task is a
        // thread switch per task.
        queue.pending.insert(id, pending);
        drop(queue);
        Ticket {
            id,
            task: status.task.clone(),
        }
    }

    /// Records the pid of a started task's command (`status`, its running
    /// status with the pid), for the journal and for its sidecar: the one
    /// still due, or the one written already, rewritten now (a command
    /// spawned after its sidecar was published, or run again after its
    /// judge's low score), so that the sidecar names the command that
    /// runs, as the journal does.
    pub fn spawned(&self, run_dir: &RunDir, ticket: &Ticket, status: &Status) {
        if let Some(pid) = status.pid {
            self.append(&encode(&Line::Spawned((&ticket.task, pid))));
        }
        self.update(run_dir, ticket, status);
    }

    /// A process the task's output check started: journaled, so the next
    /// build after a crash stops it too, but not taken for the task's
    /// command (the sidecar's `pid`, which `status` shows, stays the
    /// command's: none once it has exited).
    pub fn spawned_check(&self, ticket: &Ticket, pid: u32) {
        self.append(&encode(&Line::Spawned((&ticket.task, pid))));
    }

    /// A running task's status changed (a prompt task's next call: its
    /// attempt and model): the `running` sidecar says so, whether it is
    /// still due (it will be written as it is now) or was written already
    /// (it is rewritten now). A quick task still writes nothing.
    pub fn update(&self, run_dir: &RunDir, ticket: &Ticket, status: &Status) {
        let (m, cvar) = &*self.shared;
        let mut queue = lock(m);
        while queue.writing == Some(ticket.id) {
            queue = cvar.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
        if let Some(pending) = queue.pending.get_mut(&ticket.id) {
            pending.status = status.clone();
            return;
        }
        // Written already; under the lock, so no other write of this
        // task's sidecar runs meanwhile. Best effort, as every sidecar
        // write during a run.
        let _ = sidecar::write_sidecar(run_dir, status);
    }

    /// The task's run is over, its record not yet published: once this
    /// returns, its `running` sidecar either was written in full or never
    /// will be, so the final one written next is the last word.
    pub fn settle(&self, ticket: &Ticket) {
        let (m, cvar) = &*self.shared;
        let mut queue = lock(m);
        while queue.writing == Some(ticket.id) {
            queue = cvar.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
        queue.pending.remove(&ticket.id);
    }

    /// Records that the task has ended, once its record (final sidecar,
    /// `.DONE`) is published ([`Inflight::settle`] first): a reader that
    /// finds the end in the journal, then reads the records, finds the
    /// outcome there. Ended before, the task would read for a moment as it
    /// did before it ran.
    pub fn end(&self, ticket: Ticket) {
        self.settle(&ticket);
        self.append(&encode(&Line::Ended(&ticket.task)));
    }

    fn append(&self, line: &[u8]) {
        // One write per line to a file opened for appending: lines from
        // several job threads never interleave.
        let journal = self.journal.get_or_init(|| files::create(&self.path).ok());
        if let Some(file) = journal.as_ref() {
            let _ = files::append_whole(file, line);
        }
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        lock(&self.shared.0).shutdown = true;
        self.shared.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn publish_loop(shared: &(Mutex<Queue>, Condvar)) {
    let (m, cvar) = shared;
    let mut queue = lock(m);
    loop {
        if queue.shutdown {
            return;
        }
        let now = Instant::now();
        let Some((&id, first)) = queue.pending.first_key_value() else {
            queue = cvar
                .wait_timeout(queue, PUBLISH_AFTER)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            continue;
        };
        if first.due > now {
            let wait = first.due - now;
            queue = cvar
                .wait_timeout(queue, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            continue;
        }
        let Some(due) = queue.pending.remove(&id) else {
            continue;
        };
        queue.writing = Some(id);
        drop(queue);
        // Best effort, as every sidecar write during a run: the pid and
        // start time help a user find a stuck task.
        let _ = sidecar::write_sidecar_at(&due.path, &due.status);
        queue = lock(m);
        queue.writing = None;
        cvar.notify_all();
    }
}

/// What the journal of the last build says.
#[derive(Debug, Default)]
pub struct Journal {
    /// The tasks in flight according to it (the last build crashed, or
    /// still runs): for each, a `running` status with its start time and,
    /// for a command that got as far as a process, its pid; in the order
    /// they started.
    pub in_flight: Vec<Status>,
    /// The tasks whose last run in it ended.
    pub ended: std::collections::BTreeSet<String>,
    /// The journal file as it was when read (`None`: there was none).
    read_as: Option<JournalMark>,
}

/// A journal file's inode, size, mtime and ctime (seconds and
/// nanoseconds): an append grows it, a new build's journal is a new file.
type JournalMark = (u64, u64, (i64, i64), (i64, i64));

fn mark_of(meta: &std::fs::Metadata) -> JournalMark {
    use std::os::unix::fs::MetadataExt;
    (
        meta.ino(),
        meta.size(),
        (meta.mtime(), meta.mtime_nsec()),
        (meta.ctime(), meta.ctime_nsec()),
    )
}

impl Journal {
    /// Whether the journal file is still as it was when this was read (no
    /// line appended since, no new journal begun): what it says holds.
    pub fn unchanged(&self, run_dir: &RunDir) -> bool {
        let now = std::fs::symlink_metadata(run_dir.inflight_path())
            .ok()
            .map(|m| mark_of(&m));
        now == self.read_as
    }
}

/// Empties the journal of a crashed build once what it left is put right
/// by a command other than a build (`touch`), which starts no journal of
/// its own: the next build then finds nothing in flight to put right again.
pub fn forget(run_dir: &RunDir) -> crate::error::Result<()> {
    let path = run_dir.inflight_path();
    if path.symlink_metadata().is_ok() {
        files::create(&path)?;
    }
    Ok(())
}

/// Reads the journal of the last build (empty when there is none).
pub fn journal(run_dir: &RunDir) -> Journal {
    let Ok(file) = files::open_read(&run_dir.inflight_path()) else {
        return Journal::default();
    };
    // Taken before reading: a line appended meanwhile shows as a change.
    let Ok(read_as) = file.metadata().map(|m| mark_of(&m)) else {
        return Journal::default();
    };
    let mut started: BTreeMap<String, (usize, Started<String>)> = BTreeMap::new();
    let mut ended = std::collections::BTreeSet::new();
    for (n, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
        let Ok(line) = line else { break };
        // A torn last line (the crash came mid-append) is skipped.
        match serde_json::from_slice::<Line<String>>(&line) {
            Ok(Line::Started(s)) => {
                ended.remove(&s.task);
                started.insert(s.task.clone(), (n, s));
            }
            Ok(Line::Spawned((task, pid))) => {
                if let Some((_, s)) = started.get_mut(&task) {
                    s.pid = Some(pid);
                }
            }
            Ok(Line::Ended(task)) => {
                if started.remove(&task).is_some() {
                    ended.insert(task);
                }
            }
            Err(_) => {}
        }
    }
    // A run whose record is published ended, though its end was not
    // journaled (the build crashed between the two).
    let (published, mut left): (Vec<_>, Vec<_>) = started
        .into_values()
        .partition(|(_, s)| published_outcome(run_dir, s));
    ended.extend(published.into_iter().map(|(_, s)| s.task));
    left.sort_by_key(|(n, _)| *n);
    let in_flight = left
        .into_iter()
        .map(|(_, s)| {
            let mut status = Status::new(&s.task, TaskState::Running, &s.fingerprint);
            status.pid = s.pid;
            status.started_at = s.started_at;
            status.attempt = s.attempt;
            status
        })
        .collect();
    Journal {
        in_flight,
        ended,
        read_as: Some(read_as),
    }
}

/// Whether the record of the run `started` journaled (the same start) is
/// published: its sidecar holds its outcome, and a success's `.DONE`,
/// written after it, is there.
fn published_outcome(run_dir: &RunDir, started: &Started<String>) -> bool {
    sidecar::read_status(run_dir, &started.task).is_some_and(|s| {
        s.state.is_outcome()
            && s.started_at.is_some()
            && s.started_at == started.started_at
            && (s.state != TaskState::Done || sidecar::has_marker(run_dir, &started.task))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn run_dir() -> (tempfile::TempDir, RunDir) {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = RunDir::open(dir.path()).unwrap();
        std::fs::create_dir_all(run_dir.tasks_dir()).unwrap();
        (dir, run_dir)
    }

    fn running(task: &str, pid: u32) -> Status {
        let mut s = Status::new(task, TaskState::Running, "f");
        s.pid = Some(pid);
        s
    }

    #[test]
    fn a_quick_task_leaves_no_running_sidecar_and_a_slow_one_does() {
        let (_dir, run_dir) = run_dir();
        let inflight = Inflight::start(&run_dir);
        let quick = inflight.begin(&run_dir, &running("quick", 1));
        inflight.end(quick);
        // A command is journaled before its process exists; the pid that
        // follows reaches the sidecar.
        let slow = inflight.begin(&run_dir, &Status::new("slow", TaskState::Running, "f"));
        inflight.spawned(&run_dir, &slow, &running("slow", 2));
        std::thread::sleep(PUBLISH_AFTER * 3);
        assert!(!run_dir.status_path("quick").exists());
        let text = std::fs::read_to_string(run_dir.status_path("slow")).unwrap();
        let status: Status = serde_json::from_str(&text).unwrap();
        assert_eq!((status.state, status.pid), (TaskState::Running, Some(2)));
        inflight.end(slow);
        drop(inflight);
        assert!(journal(&run_dir).in_flight.is_empty());
    }

    /// A command spawned once its sidecar is published (it started late,
    /// or runs again after its judge's low score) is named by it, as by
    /// the journal: `status` reads the one, `status --full` the other.
    #[test]
    fn a_pid_that_comes_after_the_sidecar_is_published_reaches_it() {
        let (_dir, run_dir) = run_dir();
        let inflight = Inflight::start(&run_dir);
        let late = inflight.begin(&run_dir, &Status::new("late", TaskState::Running, "f"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !run_dir.status_path("late").exists() {
            assert!(Instant::now() < deadline, "the sidecar was never published");
            std::thread::sleep(Duration::from_millis(10));
        }
        inflight.spawned(&run_dir, &late, &running("late", 7));
        let text = std::fs::read_to_string(run_dir.status_path("late")).unwrap();
        let status: Status = serde_json::from_str(&text).unwrap();
        assert_eq!((status.state, status.pid), (TaskState::Running, Some(7)));
        assert_eq!(journal(&run_dir).in_flight[0].pid, Some(7));
        inflight.end(late);
    }

    #[test]
    fn recover_returns_what_started_and_never_ended_and_skips_a_torn_line() {
        let (_dir, run_dir) = run_dir();
        let inflight = Inflight::start(&run_dir);
        let a = inflight.begin(&run_dir, &running("a", 10));
        let _b = inflight.begin(&run_dir, &running("b", 11));
        let _c = inflight.begin(&run_dir, &running("c d[x]", 12));
        let spawned = Status::new("spawned", TaskState::Running, "f");
        let spawned = inflight.begin(&run_dir, &spawned);
        inflight.spawned(&run_dir, &spawned, &running("spawned", 13));
        // Crashed between the journal and the spawn's pid.
        let _unspawned = inflight.begin(&run_dir, &Status::new("e", TaskState::Running, "f"));
        inflight.end(a);
        drop(inflight);
        let mut journal = std::fs::OpenOptions::new()
            .append(true)
            .open(run_dir.inflight_path())
            .unwrap();
        journal.write_all(b"{\"ended\":\"b").unwrap();
        let left: Vec<(String, Option<u32>)> = super::journal(&run_dir)
            .in_flight
            .into_iter()
            .map(|s| (s.task, s.pid))
            .collect();
        assert_eq!(
            left,
            vec![
                ("b".to_string(), Some(11)),
                ("c d[x]".to_string(), Some(12)),
                ("spawned".to_string(), Some(13)),
                ("e".to_string(), None),
            ]
        );
        let ended: Vec<String> = super::journal(&run_dir).ended.into_iter().collect();
        assert_eq!(ended, vec!["a".to_string()]);
    }

    /// A build that crashed after publishing a task's record and before
    /// journaling its end left it ended: a success once its `.DONE` is
    /// there too, a failure by its sidecar alone.
    #[test]
    fn a_run_whose_record_is_published_ended_though_its_end_was_not_journaled() {
        let (_dir, run_dir) = run_dir();
        let inflight = Inflight::start(&run_dir);
        let mut statuses = Vec::new();
        for task in ["done", "unmarked", "failed", "older"] {
            let mut status = running(task, 1);
            status.started_at = Some(format!("2026-03-06T19:47:02.00{}Z", statuses.len()));
            let _ = inflight.begin(&run_dir, &status);
            statuses.push(status);
        }
        drop(inflight);
        for (mut status, state) in statuses.into_iter().zip([
            TaskState::Done,
            TaskState::Done,
            TaskState::Failed,
            TaskState::Done,
        ]) {
            status.state = state;
            if status.task == "older" {
                status.started_at = Some("2026-03-06T19:00:00.000Z".into());
            }
            if status.task == "unmarked" {
                sidecar::write_sidecar(&run_dir, &status).unwrap();
            } else {
                sidecar::publish(&run_dir, &status).unwrap();
            }
        }
        let read = journal(&run_dir);
        let left: Vec<&str> = read.in_flight.iter().map(|s| s.task.as_str()).collect();
        assert_eq!(left, ["unmarked", "older"]);
        let ended: Vec<&str> = read.ended.iter().map(String::as_str).collect();
        assert_eq!(ended, ["done", "failed"]);
    }

    #[test]
    fn a_journal_read_knows_whether_it_still_holds() {
        let (_dir, run_dir) = run_dir();
        // None yet: holds until one begins.
        let none = journal(&run_dir);
        assert!(none.unchanged(&run_dir));
        // A build that starts makes none until its first task starts: an
        // empty journal says what none does.
        let inflight = Inflight::start(&run_dir);
        assert!(none.unchanged(&run_dir), "nothing in flight yet");
        assert!(!run_dir.inflight_path().exists());
        let _a = inflight.begin(&run_dir, &running("a", 1));
        assert!(!none.unchanged(&run_dir), "a journal begun since");
        let read = journal(&run_dir);
        assert!(read.unchanged(&run_dir));
        assert_eq!(read.in_flight.len(), 1);
        let _b = inflight.begin(&run_dir, &running("b", 2));
        assert!(!read.unchanged(&run_dir), "a line appended since");
        assert!(journal(&run_dir).unchanged(&run_dir));
    }
}
