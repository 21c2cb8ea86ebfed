//! The file-system watcher behind `planexe watch`: notify's native watcher
//! (inotify), or its `PollWatcher` with `--poll`, watching folders
//! non-recursively. Every event reaches the loop through a channel,
//! stamped with the moment it was seen (the filter needs to know whether
//! a build was writing then).
//!
//! [`Notifier::sync`] keeps the watched folders equal to a watch set's:
//! a folder that does not exist yet is watched through its nearest
//! existing ancestor, so its creation is seen. Running out of inotify
//! watches is an error that says how to raise the limit, or to poll.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use notify::{PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};

use crate::error::{Error, Result};

/// One event (or a watcher's error), and when it was seen.
pub struct Seen {
    pub at: Instant,
    pub event: notify::Result<notify::Event>,
}

/// The watcher and the folders it watches.
pub struct Notifier {
    watcher: Box<dyn Watcher + Send>,
    watching: BTreeSet<PathBuf>,
}

impl Notifier {
    /// A watcher sending what it sees to `tx`: native, or polling every
    /// `poll`.
    pub fn new(poll: Option<Duration>, tx: Sender<Seen>) -> Result<Notifier> {
        let handler = move |event: notify::Result<notify::Event>| {
            let _ = tx.send(Seen {
                at: Instant::now(),
                event,
            });
        };
        let watcher: Box<dyn Watcher + Send> = match poll {
            Some(every) => Box::new(
                PollWatcher::new(handler, notify::Config::default().with_poll_interval(every))
                    .map_err(|e| explain(e, None))?,
            ),
            None => Box::new(
                RecommendedWatcher::new(handler, notify::Config::default())
                    .map_err(|e| explain(e, None))?,
            ),
        };
        Ok(Notifier {
            watcher,
            watching: BTreeSet::new(),
        })
    }

    /// Watches `folders` (each through its nearest existing ancestor) and
    /// nothing else. Returns how many folders are watched.
    pub fn sync(&mut self, folders: &BTreeSet<PathBuf>) -> Result<usize> {
        let wanted: BTreeSet<PathBuf> = folders
            .iter()
            .filter_map(|f| existing(f).map(Path::to_path_buf))
            .collect();
        let gone: Vec<PathBuf> = self.watching.difference(&wanted).cloned().collect();
        for folder in gone {
            // A folder that was removed is no longer watched anyway.
            let _ = self.watcher.unwatch(&folder);
            self.watching.remove(&folder);
        }
        for folder in wanted {
            if self.watching.contains(&folder) {
                continue;
            }
            match self.watcher.watch(&folder, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watching.insert(folder);
                }
                // Removed between the check and the watch: the next sync
                // watches its parent.
                Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => {}
                Err(e) => return Err(explain(e, Some(&folder))),
            }
        }
        Ok(self.watching.len())
    }
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
/// to raise it and suggests `--poll`.
pub fn explain(e: notify::Error, folder: Option<&Path>) -> Error {
    let at = folder.map_or_else(String::new, |f| format!(" {}", f.display()));
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
