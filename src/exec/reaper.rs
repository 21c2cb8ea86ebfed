//! Deleting what a committed run set aside in `.planexe/prev/TASK/` (the
//! outputs of the run before), on a thread of its own. On a file system
//! that discards freed blocks as they are freed (ext4 mounted with
//! `discard`), deleting even a small file waits for the disk: the task's
//! job thread, and the next task, need not wait for it.
//!
//! The build waits for the last deletion before it records its end. A run
//! of a task waits for the deletions of its earlier run in the same build
//! before it sets anything aside (what it sets aside has the same names).
//! A build that crashes may leave such files behind: recovery deletes
//! those of runs that ended (see `recovery`) rather than putting them back.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Deletions not done yet, by task.
type Pending = Arc<(Mutex<HashMap<String, usize>>, Condvar)>;

/// The deleting thread of one build.
pub struct Reaper {
    queue: Option<Sender<(String, PathBuf)>>,
    thread: Option<JoinHandle<()>>,
    pending: Pending,
}

impl Reaper {
    /// Starts the thread; without one, deletions happen at once.
    pub fn start() -> Reaper {
        let pending: Pending = Arc::default();
        let (queue, deletions) = mpsc::channel::<(String, PathBuf)>();
        let done = Arc::clone(&pending);
        let thread = std::thread::Builder::new()
            .name("planexe-reaper".into())
            .spawn(move || {
                for (task, path) in deletions {
                    delete(&path);
                    deleted(&done, &task);
                }
            })
            .ok();
        Reaper {
            queue: thread.as_ref().map(|_| queue),
            thread,
            pending,
        }
    }

    /// Deletes `path` (a file, or a folder and what it holds), set aside
    /// by a committed run of `task`, soon.
    pub fn delete(&self, task: &str, path: PathBuf) {
        let Some(queue) = &self.queue else {
            return delete(&path);
        };
        let (lock, _) = &*self.pending;
        *lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(task.to_string())
            .or_insert(0) += 1;
        if let Err(mpsc::SendError((task, path))) = queue.send((task.to_string(), path)) {
            delete(&path);
            deleted(&self.pending, &task);
        }
    }

    /// Waits until nothing `task`'s earlier runs set aside is left to
    /// delete.
    pub fn settle(&self, task: &str) {
        let (lock, cvar) = &*self.pending;
        let mut left = lock.lock().unwrap_or_else(|p| p.into_inner());
        while left.contains_key(task) {
            left = cvar.wait(left).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits for every deletion.
    pub fn finish(mut self) {
        self.join();
    }

    fn join(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.join();
    }
}

/// One deletion of `task`'s is done.
fn deleted(pending: &Pending, task: &str) {
    let (lock, cvar) = &**pending;
    let mut left = lock.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = left.get_mut(task) {
        *n -= 1;
        if *n == 0 {
            left.remove(task);
        }
    }
    cvar.notify_all();
}

/// Deletes a file, or a folder and what it holds; what is already gone
/// is fine (best effort, as deleting what was set aside always was). What
/// was set aside is a file (or a link, which goes itself) but for a
/// folder left there by a crash: the removal is tried first, and only a
/// path it cannot remove is looked at.
fn delete(path: &std::path::Path) {
    if std::fs::remove_file(path).is_err()
        && std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir())
    {
        let _ = std::fs::remove_dir_all(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletions_are_done_by_the_time_a_task_settles_or_the_reaper_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let reaper = Reaper::start();
        let mut paths = Vec::new();
        for i in 0..50 {
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, "x").unwrap();
            paths.push(path.clone());
            reaper.delete(if i % 2 == 0 { "a" } else { "b" }, path);
        }
        let folder = dir.path().join("d");
        std::fs::create_dir_all(folder.join("e")).unwrap();
        std::fs::write(folder.join("e/x"), "x").unwrap();
        reaper.delete("c", folder.clone());
        // A link to a folder goes itself; what it leads to stays. A path
        // already gone is no trouble.
        let kept = tempfile::tempdir().unwrap();
        std::fs::write(kept.path().join("k"), "k").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(kept.path(), &link).unwrap();
        reaper.delete("c", link.clone());
        reaper.delete("c", dir.path().join("gone"));
        reaper.settle("c");
        assert!(!folder.exists());
        assert!(std::fs::symlink_metadata(&link).is_err());
        assert!(kept.path().join("k").exists());
        reaper.settle("a");
        assert!(paths.iter().step_by(2).all(|p| !p.exists()));
        // Settling a task with nothing pending returns at once.
        reaper.settle("nothing");
        reaper.finish();
        assert!(paths.iter().all(|p| !p.exists()));
    }
}
