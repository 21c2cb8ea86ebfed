//! What the last build left of each output, so `planexe watch` tells a
//! build's own writes from the user's however late their events come.
//!
//! An output of a task whose last run succeeded is as its record says
//! (size and mtime): an event for it in that state is the build's own, and
//! one that leaves it otherwise is the user's, even while the build ran
//! (`rm -rf out` meanwhile). A task whose last run failed has no record of
//! what it left: its failed attempt's writes were moved aside and its last
//! good outputs put back, or not (they were gone, or could not be put
//! back). Its outputs are taken as found when the task ended, after that
//! roll back (or, when no build since ran it, when the watch last looked):
//! whatever a failed task left is its own, so it never starts the next
//! build, and a later change to them is the user's, even one made while
//! the build goes on with other tasks (for an output that is a symlink, a
//! change to the file it leads to, as well as to the link). A change made
//! while the task itself runs cannot be told from the task's own writes:
//! the roll back takes it for one, and moves it aside.
//!
//! Another planexe's build is read the same way, from the records it
//! left, once it is over: what it wrote and left as its records say, and
//! what a failure of its left (a failure the watch had not seen, told by
//! the record of it), is not the user's.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::exec::observer::{Observer, TaskEnd};
use crate::model::fanout::split_instance;
use crate::model::Task;
use crate::plan::Session;
use crate::store::{stamp, Status, TaskState};

use super::sources::WatchSet;

/// One output as the last build left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// As its task's record of its last success says: a file of this size
    /// and mtime (ns), or a symlink to one.
    Recorded(u64, i64),
    /// As found (its task's last run failed): what was there, or nothing;
    /// and which failure left it ([`failure`]).
    Found(Option<Look>, u64),
}

/// What is at a path: its own size and mtime (ns; a symlink's own, not
/// followed), and for a symlink those of the file it leads to (`None`
/// when it leads nowhere): re-pointing the link and editing that file are
/// both changes.
type Look = ((u64, i64), Option<(u64, i64)>);

/// Each output of a loaded pipeline as the last build left it.
#[derive(Debug, Default)]
pub struct Left(HashMap<PathBuf, State>);

impl Left {
    /// `session`'s outputs as its records say, after a load (another
    /// planexe may have built meanwhile): for a task whose last run
    /// failed, as `before` says when it is the failure `before` knew (what
    /// changed them since is the user's), else as they are now (another
    /// planexe's build failed it, and left them so).
    pub fn now(session: &Session, before: &Left) -> Left {
        Left::after(session, before, &Started::new(session.run_dir.root()))
    }

    /// `session`'s outputs as the build that just ran with it left them:
    /// as found now for a failed task it `started`; as `before` says for
    /// one it did not (it did not write them; what changed them meanwhile
    /// is the user's), unless the record's failure is not the one `before`
    /// knew (another planexe's).
    pub fn after(session: &Session, before: &Left, started: &Started) -> Left {
        let root = session.run_dir.root();
        let graph = &session.graph;
        // The graph's tasks, and the instances of the fan-outs it holds as
        // placeholders (as loaded, before a build reads their lists): their
        // records say what they left as well.
        let tasks = graph.tasks().map(|t| (t.name.as_str(), Some(t)));
        let instances = (session.store.records())
            .map(|(name, _)| name.as_str())
            .filter(|name| graph.task(name).is_none())
            .filter(|name| {
                split_instance(name)
                    .and_then(|(def, _)| graph.fanouts.get(def))
                    .is_some_and(|group| group.placeholder)
            })
            .map(|name| (name, None));
        let mut left = HashMap::new();
        for (name, task) in tasks.chain(instances) {
            let Some(record) = session.store.record(name) else {
                continue;
            };
            if let Some(last) = &record.last {
                let failure = failure(last);
                // An instance the graph does not hold: its outputs as its
                // records name them.
                let outputs: Vec<&str> = match task {
                    Some(task) => task.outputs.iter().map(|o| o.path.as_str()).collect(),
                    None => (last.outputs.iter())
                        .chain(record.done.iter().flat_map(|d| d.outputs.iter()))
                        .map(|(path, _)| path.as_str())
                        .collect(),
                };
                for out in outputs {
                    let path = root.join(out);
                    let state = match before.0.get(&path) {
                        Some(&state @ State::Found(_, known))
                            if known == failure && !started.ran(name) =>
                        {
                            state
                        }
                        _ => State::Found(
                            started.left(&path).unwrap_or_else(|| look(&path)),
                            failure,
                        ),
                    };
                    left.insert(path, state);
                }
            } else if let Some(done) = &record.done {
                for (path, stamp) in &done.outputs {
                    let state = State::Recorded(stamp.size, stamp.mtime_ns);
                    left.insert(root.join(path), state);
                }
            }
        }
        Left(left)
    }

    /// Whether `path` is an output just as the last build left it.
    pub fn is_as_left(&self, path: &Path) -> bool {
        match self.0.get(path) {
            None => false,
            // As a stamp is taken: through a symlink, to the file it leads
            // to (an output may be a link).
            Some(&State::Recorded(size, mtime_ns)) => std::fs::metadata(path)
                .is_ok_and(|m| m.is_file() && size_and_mtime(&m) == Some((size, mtime_ns))),
            Some(&State::Found(found, _)) => look(path) == found,
        }
    }

    /// Whether a change to `path` that counted is now, after a load, none:
    /// `path`, and every output whose symlink leads to it, is as the last
    /// build left it (another planexe's, perhaps, which wrote it and left
    /// it as its record says). A path the watch does not know how a build
    /// left (a source) stays a change.
    pub fn took_back(&self, set: &WatchSet, path: &Path) -> bool {
        let outputs = set.outputs_through(path);
        if outputs.iter().any(|output| !self.is_as_left(output)) {
            return false;
        }
        set.is_outputs_own(path) || self.is_as_left(path)
    }

    /// Whether the watch knows how the last build left `path`: then a
    /// change that leaves it otherwise is the user's, whenever it came.
    pub fn knows(&self, path: &Path) -> bool {
        self.0.contains_key(path)
    }
}

/// Which failure a record of one tells of: a hash of its id, its times
/// and its attempt, so another run's failure of the task is another.
fn failure(last: &Status) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let id = last.error.as_ref().and_then(|e| e.error_id.as_deref());
    (id, &last.started_at, &last.finished_at, last.attempt).hash(&mut hasher);
    hasher.finish()
}

/// What is at `path` now ([`Look`]); `None` when nothing is (or a file
/// stands where a folder on the way should be).
fn look(path: &Path) -> Option<Look> {
    let own = std::fs::symlink_metadata(path).ok()?;
    let target = own
        .file_type()
        .is_symlink()
        .then(|| std::fs::metadata(path).ok())
        .flatten()
        .and_then(|m| size_and_mtime(&m));
    Some((size_and_mtime(&own)?, target))
}

/// Size and mtime as a record's stamp holds them.
fn size_and_mtime(m: &std::fs::Metadata) -> Option<(u64, i64)> {
    stamp::meta_of(m).ok().map(|m| (m.size, m.mtime_ns))
}

/// The tasks a build starts, as an observer of it: how many starts (a
/// round's line says it), which tasks, and what each that did not succeed
/// left of its outputs when it ended.
#[derive(Debug)]
pub struct Started {
    /// The run directory, which outputs' paths are relative to.
    root: PathBuf,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    count: usize,
    tasks: HashSet<String>,
    /// The outputs of the tasks that ended without success, as found
    /// then.
    left: HashMap<PathBuf, Option<Look>>,
}

impl Started {
    /// What a build in run directory `root` starts.
    pub fn new(root: &Path) -> Started {
        Started {
            root: root.to_path_buf(),
            seen: Mutex::default(),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn count(&self) -> usize {
        self.seen().count
    }

    /// Whether the build started `task`.
    fn ran(&self, task: &str) -> bool {
        self.seen().tasks.contains(task)
    }

    /// What was at `path`, an output of a task that did not succeed, when
    /// the task ended; `None` when no such task ended.
    fn left(&self, path: &Path) -> Option<Option<Look>> {
        self.seen().left.get(path).copied()
    }
}

impl Observer for Started {
    fn task_started(&self, task: &Task) {
        let mut seen = self.seen();
        seen.count += 1;
        seen.tasks.insert(task.name.clone());
    }

    /// A task that did not succeed has rolled back by now: what is at its
    /// outputs is its own, and what changes them later is not.
    fn task_ended(&self, task: &Task, end: &TaskEnd) {
        if end.status.state == TaskState::Done {
            return;
        }
        let found: Vec<(PathBuf, Option<Look>)> = (task.outputs.iter())
            .map(|out| self.root.join(&out.path))
            .map(|path| {
                let now = look(&path);
                (path, now)
            })
            .collect();
        self.seen().left.extend(found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_is_as_left_while_it_is_as_recorded_or_as_found() {
        let dir = tempfile::tempdir().unwrap();
        let (gone, kept) = (dir.path().join("gone.txt"), dir.path().join("kept.txt"));
        std::fs::write(&kept, "good\n").unwrap();
        let ((size, mtime), _) = look(&kept).unwrap();
        // Behind a file where a folder should be: nothing is there.
        let behind = kept.join("x");
        let left = Left(HashMap::from([
            (gone.clone(), State::Found(look(&gone), 0)),
            (behind.clone(), State::Found(look(&behind), 0)),
            (kept.clone(), State::Recorded(size, mtime)),
        ]));
        assert!(left.is_as_left(&gone) && left.is_as_left(&kept) && left.is_as_left(&behind));
        assert!(!left.knows(&dir.path().join("other.txt")));

        std::fs::write(&gone, "made by hand\n").unwrap();
        std::fs::write(&kept, "edited by hand\n").unwrap();
        assert!(!left.is_as_left(&gone) && !left.is_as_left(&kept));
        assert!(left.knows(&gone) && left.knows(&kept));
        std::fs::remove_file(&gone).unwrap();
        assert!(left.is_as_left(&gone));

        // A symlink is as recorded when the file it leads to is.
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&gone, &link).unwrap();
        std::fs::write(&gone, "target\n").unwrap();
        let ((size, mtime), _) = look(&gone).unwrap();
        let links = Left(HashMap::from([(
            link.clone(),
            State::Recorded(size, mtime),
        )]));
        assert!(links.is_as_left(&link));
        std::fs::write(&gone, "target, edited\n").unwrap();
        assert!(!links.is_as_left(&link));
        // As found (its task failed): the file it leads to is looked at
        // too, and where it leads.
        let found = Left(HashMap::from([(
            link.clone(),
            State::Found(look(&link), 0),
        )]));
        assert!(found.is_as_left(&link));
        std::fs::write(&gone, "target, edited again\n").unwrap();
        assert!(!found.is_as_left(&link));
        let found = Left(HashMap::from([(
            link.clone(),
            State::Found(look(&link), 0),
        )]));
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        assert!(!found.is_as_left(&link));
        // A folder where the recorded file was is not it.
        std::fs::remove_file(&kept).unwrap();
        std::fs::create_dir(&kept).unwrap();
        assert!(!left.is_as_left(&kept));
    }
}
