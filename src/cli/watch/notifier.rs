//! The file-system watcher behind `planexe watch`: notify's native watcher
//! (inotify), or planexe's own [`Poller`] with `--poll`, watching folders
//! non-recursively (a poll looks at a symlink itself, as inotify does,
//! not at the file it leads to). Every event reaches the loop through a channel,
//! stamped with the moment it was seen (the filter needs to know whether
//! a build was writing then).
//!
//! [`Notifier::sync`] keeps the watched folders equal to a watch set's:
//! a folder that does not exist yet is watched through its nearest
//! existing ancestor, so its creation is seen. A folder removed and made
//! again (`rm -rf notes && mkdir notes`) is another folder, which
//! inotify's watch on the old one (dead with it) does not see: the loop
//! [`Notifier::forget`]s a folder an event makes, removes or renames, and
//! sync also compares each folder's device and inode with those it had
//! when its watch was added (a backup: an inode may be reused); either
//! way the folder is watched afresh. A folder of the set that comes into
//! being after the set was first watched is rescanned: what was made in
//! it before its watch was added is sent as created. When events were
//! lost (the kernel's queue overflowed), [`Notifier::rewatch`] watches
//! every folder afresh. A poll says that a folder it watches is gone as
//! an error, at every interval: [`Notifier::gone`] takes it for the
//! removal it is, and the folder is watched through its ancestor as
//! above. Running out of inotify watches is an error that says how to
//! raise the limit, or to poll (never to a watch that polls already).
//!
//! The kernel reports a `chmod` as it reports a `touch` (an attribute
//! changed): its events are sifted through [`Entries`] on the watcher's
//! thread, in the order they come, so one that leaves an entry as a build
//! would see it is dropped there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use notify::event::CreateKind;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::entries::Entries;
use super::poller::Poller;

use crate::error::{Error, Result};

/// One event (or a watcher's error), and when it was seen.
pub struct Seen {
    pub at: Instant,
    pub event: notify::Result<notify::Event>,
}

/// A folder as the file system knows it: device and inode.
type Identity = (u64, u64);

/// The watcher and the folders it watches.
pub struct Notifier {
    watcher: Box<dyn Watcher + Send>,
    /// Each folder watched, and which folder it was when its watch was
    /// added.
    watching: BTreeMap<PathBuf, Identity>,
    /// The folders the last sync was asked to watch (before falling back
    /// to their ancestors).
    wanted: BTreeSet<PathBuf>,
    /// Where a rescan sends what it finds, as the watcher sends events.
    tx: Sender<Seen>,
    /// `--poll`: errors do not suggest it.
    polling: bool,
    /// The kernel's watcher's folders as it was told of them, to drop an
    /// attribute change that leaves an entry as it was (a `chmod`); the
    /// poller does not see one.
    entries: Entries,
}

impl Notifier {
    /// A watcher sending what it sees to `tx`: native, or polling every
    /// `poll`.
    pub fn new(poll: Option<Duration>, tx: Sender<Seen>) -> Result<Notifier> {
        let rescans = tx.clone();
        let entries = Entries::default();
        let sifted = entries.clone();
        let polling = poll.is_some();
        let handler = move |event: notify::Result<notify::Event>| {
            let event = match event {
                Ok(event) if !polling => match sifted.sift(event) {
                    Some(event) => Ok(event),
                    None => return,
                },
                other => other,
            };
            let _ = tx.send(Seen {
                at: Instant::now(),
                event,
            });
        };
        let watcher: Box<dyn Watcher + Send> = match poll {
            // A poll looks at a symlink itself, not through it: a link
            // re-pointed is another link. The files links lead to are
            // watched in their own folders (`links`).
            Some(every) => Box::new(
                Poller::new(handler, every)
                    .map_err(|e| explain(notify::Error::io(e), None, true))?,
            ),
            None => Box::new(
                RecommendedWatcher::new(handler, notify::Config::default())
                    .map_err(|e| explain(e, None, false))?,
            ),
        };
        Ok(Notifier {
            watcher,
            watching: BTreeMap::new(),
            wanted: BTreeSet::new(),
            tx: rescans,
            polling,
            entries,
        })
    }

    /// Watches `folders` (each through its nearest existing ancestor) and
    /// nothing else; a folder removed and made again since its watch was
    /// added is watched again. A folder of `folders` that the last sync
    /// wanted too, and did not watch as it is now, has been made since:
    /// it is rescanned. Returns how many folders are watched.
    pub fn sync(&mut self, folders: &BTreeSet<PathBuf>) -> Result<usize> {
        let wanted: BTreeSet<PathBuf> = folders
            .iter()
            .filter_map(|f| existing(f).map(Path::to_path_buf))
            .collect();
        let stale: Vec<PathBuf> = self
            .watching
            .iter()
            .filter(|&(folder, &id)| !wanted.contains(folder) || identity(folder) != Some(id))
            .map(|(folder, _)| folder.clone())
            .collect();
        for folder in stale {
            // A folder that was removed is no longer watched anyway.
            let _ = self.watcher.unwatch(&folder);
            self.entries.unwatch(&folder);
            self.watching.remove(&folder);
        }
        for folder in wanted {
            if self.watching.contains_key(&folder) {
                continue;
            }
            // Known before its watch is added: if it is replaced in
            // between, the next sync sees another folder and watches that.
            let Some(id) = identity(&folder) else {
                continue;
            };
            if !self.polling {
                self.entries.watch(&folder);
            }
            match self.watcher.watch(&folder, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watching.insert(folder.clone(), id);
                    if self.wanted.contains(&folder) && folders.contains(&folder) {
                        self.rescan(&folder);
                    }
                }
                // Removed between the check and the watch: the next sync
                // watches its parent.
                Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => {
                    self.entries.unwatch(&folder);
                }
                Err(e) => {
                    self.entries.unwatch(&folder);
                    return Err(explain(e, Some(&folder), self.polling));
                }
            }
        }
        self.wanted = folders.clone();
        Ok(self.watching.len())
    }

    /// Stops counting `folder` as watched (an event made, removed or
    /// renamed it: whatever is there now is another folder, or none); the
    /// next sync watches what is there.
    pub fn forget(&mut self, folder: &Path) {
        if self.watching.remove(folder).is_some() {
            // The watch died with the old folder, or watches the wrong one.
            let _ = self.watcher.unwatch(folder);
            self.entries.unwatch(folder);
        }
    }

    /// Whether `e` says that a path no longer exists, which is news of a
    /// removal, not an error: a poll says so at every interval while a
    /// folder it watches is gone (and sends the removal as events too). A
    /// watched folder that is not there as it was watched is forgotten,
    /// so the next sync watches its nearest existing ancestor until it
    /// comes back, as the end of inotify's watch with its folder makes
    /// the loop do. A folder watched again since (the error came late) is
    /// left as it is.
    pub fn gone(&mut self, e: &notify::Error) -> bool {
        let not_found = match &e.kind {
            notify::ErrorKind::PathNotFound => true,
            notify::ErrorKind::Io(io) => io.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        };
        if !not_found {
            return false;
        }
        for path in &e.paths {
            let moved = (self.watching.get(path)).is_some_and(|&id| identity(path) != Some(id));
            if moved {
                self.forget(path);
            }
        }
        true
    }

    /// A watcher's error as planexe's ([`explain`]).
    pub fn explain(&self, e: notify::Error) -> Error {
        explain(e, None, self.polling)
    }

    /// Watches every folder of `folders` afresh, without rescanning: after
    /// events were lost, any watch may be dead (its folder removed, and
    /// perhaps made again with the same inode) and no event says which.
    /// The build that follows reads everything, so what is in a folder
    /// need not be sent as made. Returns how many folders are watched.
    pub fn rewatch(&mut self, folders: &BTreeSet<PathBuf>) -> Result<usize> {
        for folder in std::mem::take(&mut self.watching).into_keys() {
            let _ = self.watcher.unwatch(&folder);
            self.entries.unwatch(&folder);
        }
        // No folder was wanted before: none is rescanned.
        self.wanted.clear();
        self.sync(folders)
    }

    /// Sends every entry of `folder` as created: what was made in it
    /// before its watch was added has no event of its own.
    fn rescan(&self, folder: &Path) {
        let Ok(entries) = std::fs::read_dir(folder) else {
            return;
        };
        let paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        if paths.is_empty() {
            return;
        }
        let mut event = notify::Event::new(EventKind::Create(CreateKind::Any));
        event.paths = paths;
        let _ = self.tx.send(Seen {
            at: Instant::now(),
            event: Ok(event),
        });
    }
}

/// Which folder is at `path` now, if one is.
fn identity(path: &Path) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

/// The folder itself when it exists, else its nearest existing ancestor.
fn existing(folder: &Path) -> Option<&Path> {
    folder.ancestors().find(|a| a.is_dir())
}

/// Whether an error is the kernel's limit on inotify watches (or
/// instances).
pub fn is_limit(e: &notify::Error) -> bool {
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => true,
        notify::ErrorKind::Io(io) => {
            matches!(io.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EMFILE))
        }
        _ => false,
    }
}

/// A watcher's error as planexe's: the limit on inotify watches says how
/// to raise it and suggests `--poll`. A watch that polls (`polling`) is
/// never told to poll.
pub fn explain(e: notify::Error, folder: Option<&Path>, polling: bool) -> Error {
    let at = folder.map_or_else(String::new, |f| format!(" {}", f.display()));
    if polling {
        return Error::usage(format!("cannot watch{at}: {e}"));
    }
    if is_limit(&e) {
        return Error::usage(format!(
            "cannot watch{at}: the system's limit on inotify watches is reached ({e})"
        ))
        .hint("raise it: `sudo sysctl fs.inotify.max_user_watches=524288` (and fs.inotify.max_user_instances), or add it to /etc/sysctl.conf")
        .hint("or poll instead: `planexe watch --poll 1s`");
    }
    Error::usage(format!("cannot watch{at}: {e}"))
        .hint("on a file system without change notification (network mounts, some containers), use `planexe watch --poll 1s`")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// The paths of the rescans sent to `rx` so far.
    fn rescanned(rx: &mpsc::Receiver<Seen>) -> Vec<PathBuf> {
        rx.try_iter()
            .filter_map(|seen| seen.event.ok())
            .filter(|e| e.kind == EventKind::Create(CreateKind::Any))
            .flat_map(|e| e.paths)
            .collect()
    }

    #[test]
    fn a_watch_that_polls_is_never_told_to_poll() {
        let limit = || notify::Error::new(notify::ErrorKind::MaxFilesWatch);
        let other = || notify::Error::generic("broken");
        for (e, polling) in [(limit(), true), (other(), true)] {
            let hints = explain(e, None, polling).hints().join("\n");
            assert!(!hints.contains("--poll"), "{hints}");
        }
        assert!(explain(limit(), None, false).hints()[1].contains("--poll 1s"));
        assert!(explain(other(), None, false).hints()[0].contains("--poll 1s"));
    }

    #[test]
    fn a_polled_folder_gone_is_forgotten_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let (tx, _rx) = mpsc::channel();
        let mut notifier = Notifier::new(Some(Duration::from_secs(60)), tx).unwrap();
        let folders = BTreeSet::from([out.clone()]);
        notifier.sync(&folders).unwrap();
        let gone = || {
            let io = std::io::Error::from(std::io::ErrorKind::NotFound);
            notify::Error::io(io).add_path(out.clone())
        };
        // Still there (a late word of a folder made again since): kept.
        assert!(notifier.gone(&gone()));
        assert!(notifier.watching.contains_key(&out));
        std::fs::remove_dir(&out).unwrap();
        assert!(notifier.gone(&gone()));
        assert!(!notifier.watching.contains_key(&out));
        notifier.sync(&folders).unwrap();
        assert!(notifier.watching.contains_key(dir.path()));
        assert!(!notifier.gone(&notify::Error::generic("broken")));
    }

    #[test]
    fn a_folder_made_again_is_watched_again_and_rescanned() {
        let dir = tempfile::tempdir().unwrap();
        let notes = dir.path().join("notes");
        std::fs::create_dir(&notes).unwrap();
        std::fs::write(notes.join("a.md"), "a").unwrap();
        let (tx, rx) = mpsc::channel();
        let mut notifier = Notifier::new(None, tx).unwrap();
        let folders = BTreeSet::from([notes.clone()]);
        assert_eq!(notifier.sync(&folders).unwrap(), 1);
        // The first sync rescans nothing: the first build reads it all.
        assert!(rescanned(&rx).is_empty());

        std::fs::remove_dir_all(&notes).unwrap();
        std::fs::create_dir(&notes).unwrap();
        std::fs::write(notes.join("b.md"), "b").unwrap();
        notifier.forget(&notes);
        assert_eq!(notifier.sync(&folders).unwrap(), 1);
        assert!(notifier.watching.contains_key(&notes));
        assert_eq!(rescanned(&rx), [notes.join("b.md")]);

        // Gone: watched through its parent; made again: rescanned.
        std::fs::remove_dir_all(&notes).unwrap();
        notifier.sync(&folders).unwrap();
        assert!(notifier.watching.contains_key(dir.path()));
        assert!(!notifier.watching.contains_key(&notes));
        std::fs::create_dir(&notes).unwrap();
        std::fs::write(notes.join("c.md"), "c").unwrap();
        notifier.sync(&folders).unwrap();
        assert_eq!(rescanned(&rx), [notes.join("c.md")]);
    }
}
