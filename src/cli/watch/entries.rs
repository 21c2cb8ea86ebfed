//! What a watched folder's entries look like as far as a build can tell,
//! and so what a change to one is: its type, size and mtime to the
//! nanosecond (what a stamp is made from), and its device and inode (a
//! file replaced by another). Not its ctime: a `chmod`, a `chown`, a hard
//! link made or an extended attribute set moves only that, and a build
//! finds nothing to do after it (nor does the up-to-date certificate,
//! which looks at the ctime only to decide to compare content, and finds
//! the stamps the same). A write moves the mtime too.
//!
//! [`--poll`](super::poller) compares listings of these. The kernel's
//! watcher reports a `chmod` and a `touch -d` alike (`IN_ATTRIB`, an
//! attribute changed): [`Entries`] keeps each watched folder's listing, as
//! it was when its watch was added and as events have left it since, so
//! that such an event counts only when the entry now differs.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use notify::event::{MetadataKind, ModifyKind};
use notify::{Event, EventKind};

/// What is compared of one entry: what `lstat` says of it that a build
/// can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The type bits of its mode (a file replaced by a folder or a link).
    kind: u32,
    size: u64,
    mtime: (i64, i64),
    dev: u64,
    ino: u64,
}

impl Stat {
    pub fn of(meta: &std::fs::Metadata) -> Stat {
        Stat {
            kind: meta.mode() & libc::S_IFMT,
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// A watched folder's entries, the folder itself among them.
pub type Listing = BTreeMap<PathBuf, Stat>;

/// `folder` and its entries, each as `lstat` says (the folder itself
/// through a link: it is watched as a folder). An entry removed between
/// the listing and its stat is not there.
pub fn list(folder: &Path) -> io::Result<Listing> {
    let mut listing = Listing::new();
    listing.insert(folder.to_path_buf(), Stat::of(&std::fs::metadata(folder)?));
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path();
        match std::fs::symlink_metadata(&path) {
            Ok(meta) => {
                listing.insert(path, Stat::of(&meta));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(listing)
}

/// Whether an event says only that attributes changed (`IN_ATTRIB`): a
/// `chmod` as well as a `touch`. (Access times are no change at all.)
fn attributes_only(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Modify(ModifyKind::Metadata(m)) if *m != MetadataKind::AccessTime
    )
}

/// The entries of the folders the kernel's watcher watches, as it was
/// told of them: shared by the loop (which adds and removes folders) and
/// the watcher's thread (which sifts its events).
#[derive(Debug, Clone, Default)]
pub struct Entries(Arc<Mutex<BTreeMap<PathBuf, Listing>>>);

impl Entries {
    /// Remembers `folder`'s entries as they are now. Called before its
    /// watch is added: a change after the listing is then either in it or
    /// an event compared with it.
    pub fn watch(&self, folder: &Path) {
        let listing = list(folder).unwrap_or_default();
        self.lock().insert(folder.to_path_buf(), listing);
    }

    pub fn unwatch(&self, folder: &Path) {
        self.lock().remove(folder);
    }

    /// `event` less the paths an attribute change left as they were (a
    /// `chmod`); `None` when none is left. Every path of every event in a
    /// watched folder is remembered as it is now, so the next attribute
    /// change is compared with the last state the watch was told of. An
    /// event of any other kind is passed on whole (one without a path
    /// among them: the news that events were lost).
    pub fn sift(&self, mut event: Event) -> Option<Event> {
        let attributes = attributes_only(&event.kind) && !event.need_rescan();
        let mut folders = self.lock();
        let mut remember = |path: &PathBuf| {
            let listing = path.parent().and_then(|p| folders.get_mut(p))?;
            let now = std::fs::symlink_metadata(path).ok().map(|m| Stat::of(&m));
            let before = match now {
                Some(now) => listing.insert(path.clone(), now),
                None => listing.remove(path),
            };
            Some(before.is_some() && before == now)
        };
        if !attributes {
            event.paths.iter().for_each(|path| {
                remember(path);
            });
            return Some(event);
        }
        // Kept unless it is known, and as it was.
        event.paths.retain(|path| remember(path) != Some(true));
        (!event.paths.is_empty()).then_some(event)
    }

    /// The listings, even if a thread panicked holding them (each is
    /// changed whole, one entry at a time).
    fn lock(&self) -> MutexGuard<'_, BTreeMap<PathBuf, Listing>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn attrib(path: &Path) -> Event {
        Event::new(EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)))
            .add_path(path.to_path_buf())
    }

    #[test]
    fn an_attribute_change_counts_only_when_a_build_could_see_it() {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("plan.txt");
        std::fs::write(&plan, "one\n").unwrap();
        let entries = Entries::default();
        entries.watch(dir.path());

        let perms = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(&plan, perms).unwrap();
        assert!(entries.sift(attrib(&plan)).is_none());

        let old = filetime::FileTime::from_unix_time(1_577_836_800, 0);
        filetime::set_file_mtime(&plan, old).unwrap();
        assert!(entries.sift(attrib(&plan)).is_some());
        // Remembered as it is now: the same again is nothing.
        assert!(entries.sift(attrib(&plan)).is_none());

        // Any other event counts, and is remembered.
        std::fs::write(&plan, "two\n").unwrap();
        let write = Event::new(EventKind::Modify(ModifyKind::Any)).add_path(plan.clone());
        assert!(entries.sift(write).is_some());
        assert!(entries.sift(attrib(&plan)).is_none());

        // News that events were lost has no path, and is passed on.
        let lost = Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        assert!(entries.sift(lost).is_some());

        // A path in a folder not watched is passed on as it is.
        let elsewhere = PathBuf::from("/nowhere/plan.txt");
        assert!(entries.sift(attrib(&elsewhere)).is_some());
        entries.unwatch(dir.path());
        assert!(entries.sift(attrib(&plan)).is_some());
    }
}
