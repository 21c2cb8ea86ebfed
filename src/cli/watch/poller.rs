//! `planexe watch --poll`: a watcher that lists its folders (not
//! recursively) every interval and compares each entry with what it was,
//! by the stat a build's stamp is made from and more: its type, size,
//! mtime to the nanosecond, device and inode ([`super::entries`]). Any
//! difference is a change, in either direction. The ctime is not
//! compared: a `chmod` alone moves it, and a build finds nothing to do
//! after one.
//!
//! notify's `PollWatcher` compared whole seconds of mtime and reported
//! only a newer one, so a second write within the same second, and a file
//! replaced by an older one (`cp -p`, `mv`, `touch -d`), went unseen while
//! a build saw them. Its `compare_contents` would hash every file of every
//! watched folder at every interval (a run directory of a thousand
//! outputs read whole each second) and still miss an mtime set back on
//! the same bytes, which `--check mtime` counts. This one stats, as that
//! one did, and reads no file.
//!
//! It keeps notify's words, which the loop understands: an entry that
//! appears is `Create`, one that goes is `Remove`, one that differs is
//! `Modify`; a symlink is looked at itself (`lstat`), not through; a
//! watched folder that is gone is an error with its path, at every
//! interval, with the removal of what it held.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use notify::event::{CreateKind, ModifyKind, RemoveKind};
use notify::{Event, EventHandler, EventKind, RecursiveMode, Watcher, WatcherKind};

use super::entries::{list, Listing};

/// The folders watched, each with its entries as the last poll saw them.
type Folders = Arc<Mutex<BTreeMap<PathBuf, Listing>>>;

/// The poller: a thread polling every interval until it is dropped.
pub struct Poller {
    folders: Folders,
    /// Dropped with the poller: the thread sees it at once and ends.
    _stop: Sender<()>,
}

impl Poller {
    /// A poller sending what it sees to `handler` every `every`.
    pub fn new<F: EventHandler>(mut handler: F, every: Duration) -> io::Result<Poller> {
        let folders: Folders = Arc::default();
        let (stop, stopped) = mpsc::channel::<()>();
        let polled = Arc::clone(&folders);
        std::thread::Builder::new()
            .name("planexe poll".to_string())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    // Sent with the folders unlocked: the handler may wait
                    // on a thread that is changing what is watched.
                    let events = poll(&mut lock(&polled));
                    for event in events {
                        handler.handle_event(event);
                    }
                }
            })?;
        Ok(Poller {
            folders,
            _stop: stop,
        })
    }

    /// Polls every folder now, as the thread does every interval, and
    /// returns what it found instead of sending it.
    #[cfg(test)]
    fn poll_now(&self) -> Vec<notify::Result<Event>> {
        poll(&mut lock(&self.folders))
    }
}

impl Watcher for Poller {
    fn new<F: EventHandler>(handler: F, config: notify::Config) -> notify::Result<Poller> {
        let every = config.poll_interval().unwrap_or(Duration::from_secs(30));
        Poller::new(handler, every).map_err(notify::Error::io)
    }

    /// Takes `folder`'s entries as they are now: what changes after this
    /// is reported.
    fn watch(&mut self, folder: &Path, mode: RecursiveMode) -> notify::Result<()> {
        if mode == RecursiveMode::Recursive {
            return Err(notify::Error::generic(
                "planexe's poller watches folders non-recursively",
            ));
        }
        let listing = list(folder).map_err(|e| gone(e, folder))?;
        lock(&self.folders).insert(folder.to_path_buf(), listing);
        Ok(())
    }

    fn unwatch(&mut self, folder: &Path) -> notify::Result<()> {
        match lock(&self.folders).remove(folder) {
            Some(_) => Ok(()),
            None => Err(notify::Error::watch_not_found()),
        }
    }

    fn kind() -> WatcherKind {
        WatcherKind::PollWatcher
    }
}

/// The folders, even if a thread panicked holding them (the listings are
/// whole maps, replaced at once).
fn lock(folders: &Folders) -> MutexGuard<'_, BTreeMap<PathBuf, Listing>> {
    folders.lock().unwrap_or_else(|e| e.into_inner())
}

/// An error reading `folder`, with its path (a `NotFound` says it is
/// gone: [`super::notifier::Notifier::gone`]).
fn gone(e: io::Error, folder: &Path) -> notify::Error {
    let e = match e.kind() {
        io::ErrorKind::NotFound => notify::Error::path_not_found(),
        _ => notify::Error::io(e),
    };
    e.add_path(folder.to_path_buf())
}

/// Lists every folder again and says what differs from the last time. A
/// folder that cannot be listed is an error, at every poll; one that is
/// gone also loses what it held, which is reported removed once.
fn poll(folders: &mut BTreeMap<PathBuf, Listing>) -> Vec<notify::Result<Event>> {
    let mut events = Vec::new();
    for (folder, before) in folders.iter_mut() {
        let now = match list(folder) {
            Ok(now) => now,
            Err(e) => {
                let missing = e.kind() == io::ErrorKind::NotFound;
                events.push(Err(gone(e, folder)));
                if !missing {
                    continue;
                }
                Listing::new()
            }
        };
        for (path, stat) in &now {
            let kind = match before.get(path) {
                None => EventKind::Create(CreateKind::Any),
                Some(was) if was != stat => EventKind::Modify(ModifyKind::Any),
                Some(_) => continue,
            };
            events.push(Ok(Event::new(kind).add_path(path.clone())));
        }
        for path in before.keys().filter(|p| !now.contains_key(*p)) {
            let removed = Event::new(EventKind::Remove(RemoveKind::Any));
            events.push(Ok(removed.add_path(path.clone())));
        }
        *before = now;
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use filetime::FileTime;

    /// A poller that never polls by itself (the tests poll).
    fn poller(folder: &Path) -> Poller {
        let mut poller = Poller::new(|_: notify::Result<Event>| {}, Duration::from_secs(3600))
            .expect("a thread");
        poller.watch(folder, RecursiveMode::NonRecursive).unwrap();
        poller
    }

    /// The kinds and paths of `events` (none an error).
    fn seen(events: Vec<notify::Result<Event>>) -> Vec<(EventKind, PathBuf)> {
        events
            .into_iter()
            .map(|e| e.expect("an event"))
            .flat_map(|e| e.paths.into_iter().map(move |p| (e.kind, p)))
            .collect()
    }

    fn set_mtime(path: &Path, secs: i64, nanos: u32) {
        filetime::set_file_mtime(path, FileTime::from_unix_time(secs, nanos)).unwrap();
    }

    const MODIFY: EventKind = EventKind::Modify(ModifyKind::Any);

    #[test]
    fn an_mtime_that_moves_within_a_second_or_back_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("plan.txt");
        std::fs::write(&plan, "one\n").unwrap();
        set_mtime(&plan, 1_700_000_000, 100);
        let poller = poller(dir.path());
        assert!(poller.poll_now().is_empty());

        set_mtime(&plan, 1_700_000_000, 200);
        assert_eq!(seen(poller.poll_now()), [(MODIFY, plan.clone())]);
        assert!(poller.poll_now().is_empty());
        set_mtime(&plan, 1_000_000_000, 200);
        assert_eq!(seen(poller.poll_now()), [(MODIFY, plan.clone())]);
    }

    /// A `chmod` moves only the ctime: a build finds nothing to do.
    #[test]
    fn a_chmod_alone_is_no_change() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("plan.txt");
        std::fs::write(&plan, "one\n").unwrap();
        let poller = poller(dir.path());
        let perms = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(&plan, perms).unwrap();
        assert!(poller.poll_now().is_empty());
    }

    #[test]
    fn a_file_replaced_by_an_older_one_of_the_same_size_and_mtime_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let watched = dir.path().join("w");
        std::fs::create_dir(&watched).unwrap();
        let plan = watched.join("plan.txt");
        let other = dir.path().join("other.txt");
        std::fs::write(&plan, "one\n").unwrap();
        std::fs::write(&other, "two\n").unwrap();
        for file in [&plan, &other] {
            set_mtime(file, 1_700_000_000, 0);
        }
        let poller = poller(&watched);
        std::fs::rename(&other, &plan).unwrap();
        // The folder's times changed too: a folder's own change, which the
        // loop leaves to its entries.
        assert_eq!(
            seen(poller.poll_now()),
            [(MODIFY, watched.clone()), (MODIFY, plan.clone())]
        );
    }

    #[test]
    fn entries_made_and_removed_and_a_folder_gone_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let notes = dir.path().join("notes");
        std::fs::create_dir(&notes).unwrap();
        let a = notes.join("a.md");
        std::fs::write(&a, "a").unwrap();
        let poller = poller(&notes);
        let b = notes.join("b.md");
        std::fs::write(&b, "b").unwrap();
        std::fs::remove_file(&a).unwrap();
        let events = seen(poller.poll_now());
        assert!(events.contains(&(EventKind::Create(CreateKind::Any), b.clone())));
        assert!(events.contains(&(EventKind::Remove(RemoveKind::Any), a.clone())));

        std::fs::remove_dir_all(&notes).unwrap();
        let mut events = poller.poll_now().into_iter();
        let error = events.next().unwrap().unwrap_err();
        assert_eq!(error.paths, std::slice::from_ref(&notes));
        assert!(matches!(error.kind, notify::ErrorKind::PathNotFound));
        let removed: Vec<_> = seen(events.collect());
        let remove = EventKind::Remove(RemoveKind::Any);
        assert_eq!(removed, [(remove, notes.clone()), (remove, b.clone())]);
        // Gone still: an error again, and nothing more removed.
        let again = poller.poll_now();
        assert_eq!(again.len(), 1);
        assert!(again[0].is_err());
    }

    #[test]
    fn a_folder_that_is_not_there_cannot_be_watched() {
        let dir = tempfile::tempdir().unwrap();
        let mut poller = poller(dir.path());
        let e = poller
            .watch(&dir.path().join("nope"), RecursiveMode::NonRecursive)
            .unwrap_err();
        assert!(matches!(e.kind, notify::ErrorKind::PathNotFound));
    }
}
