//! File stamps: `(size, mtime_ns, blake3)` of one file at one moment.
//!
//! Comparing a file to its recorded stamp only stats it when size and mtime
//! match (the fast path of every no-op build). When the size matches but the
//! mtime does not, the file is hashed and its content decides: `touch` or a
//! `git checkout` that rewrites the same bytes changes nothing. A different
//! size is a change without reading the file. In [`CheckMode::Mtime`] no file
//! is ever hashed to decide: any size or mtime change counts (make's rule).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

/// How a changed stamp is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckMode {
    /// Size and mtime first; the content hash decides when they differ.
    #[default]
    Content,
    /// Any change of size or mtime is a change (plain make semantics).
    Mtime,
}

/// What a file looked like when it was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub blake3: String,
}

/// Size and mtime, as one stat returns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub size: u64,
    pub mtime_ns: i64,
}

/// How a file on disk compares with its recorded stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// Size and mtime match: not read.
    Same,
    /// New mtime, same bytes: the stamp to record instead.
    Touched(Stamp),
    /// Different content (or, in mtime mode, a different size or mtime).
    Changed,
    Missing,
}

/// Stats `root/rel`, following a symlink only when it points inside
/// `root`: a link that leads out of the run directory is an error. One
/// `lstat` for a plain file, the common case.
pub fn stat_inside(root: &Path, rel: &str) -> io::Result<Option<Meta>> {
    Ok(stat_inside_typed(root, rel)?.map(|(meta, _)| meta))
}

/// [`stat_inside`], with the type of the file (of a link's target): the
/// caller can tell a regular file from a folder or a FIFO.
pub fn stat_inside_typed(root: &Path, rel: &str) -> io::Result<Option<(Meta, std::fs::FileType)>> {
    let full = root.join(rel);
    let typed = |m: std::fs::Metadata| Ok(Some((meta_of(&m)?, m.file_type())));
    // The OS names neither the path nor the file in its way.
    let reword = |e: io::Error| match super::wrong_kind::blocked(&full, Path::new(rel)) {
        Some(blocked) if e.kind() == io::ErrorKind::NotADirectory => {
            io::Error::new(e.kind(), blocked)
        }
        _ => e,
    };
    match lstat_follow(&full).map_err(reword)? {
        None => Ok(None),
        Some((meta, false)) => typed(meta),
        Some((meta, true)) => match std::fs::canonicalize(&full) {
            Ok(target) if !target.starts_with(root) => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{rel} is a symlink to {}, outside the run directory; replace it with a copy or a link that stays inside",
                    target.display()
                ),
            )),
            _ => typed(meta),
        },
    }
}

/// Where the dangling symlink `rel` leads, when that is outside `root` (a
/// canonical path): each link on the way followed (at most 40), the
/// deepest folder of the end that exists resolved, the rest appended as
/// written. `None` when it leads inside, or `rel` is no dangling link. What
/// refuses at load a link whose file, once made, would be refused.
pub fn dangling_leads_outside(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut at = root.join(rel);
    for _ in 0..40 {
        if !std::fs::symlink_metadata(&at)
            .ok()?
            .file_type()
            .is_symlink()
        {
            return None;
        }
        let target = std::fs::read_link(&at).ok()?;
        let next = lexical(&at.parent()?.join(target));
        if std::fs::symlink_metadata(&next).is_ok() {
            at = next;
            continue;
        }
        // The end: its deepest existing folder, resolved.
        let mut existing = next.clone();
        let mut rest = Vec::new();
        while std::fs::symlink_metadata(&existing).is_err() {
            rest.push(existing.file_name()?.to_os_string());
            existing = existing.parent()?.to_path_buf();
        }
        let mut end = std::fs::canonicalize(&existing).ok()?;
        end.extend(rest.iter().rev());
        return (!end.starts_with(root)).then_some(end);
    }
    None
}

/// `path` with its `.` and `..` taken away as written (no link followed).
pub fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `lstat`, then `stat` through a symlink; says whether it was one.
fn lstat_follow(path: &Path) -> io::Result<Option<(std::fs::Metadata, bool)>> {
    let link = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => true,
        Ok(m) => return Ok(Some((m, false))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot stat {}: {e}", path.display()),
            ))
        }
    };
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some((m, link))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot stat {}: {e}", path.display()),
        )),
    }
}

/// A file's size and mtime as a stamp records them (mtime in ns since the
/// epoch, saturating).
pub fn meta_of(meta: &std::fs::Metadata) -> io::Result<Meta> {
    let mtime = meta.modified()?;
    let mtime_ns = match mtime.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    };
    Ok(Meta {
        size: meta.len(),
        mtime_ns,
    })
}

/// How much of a file [`hash_file`] reads at once.
const HASH_CHUNK: usize = 64 * 1024;

thread_local! {
    /// The read buffer of [`hash_file`], one per thread and zeroed once:
    /// `blake3::Hasher::update_reader` zeroes 64 KiB on the stack per
    /// call, which for the small file most tasks write costs more than
    /// reading and hashing it.
    static HASH_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The hash [`hash_file`] gives a file holding `bytes`.
pub fn bytes_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// What a folder holds, as compared when its stat moved: a hash of its
/// entries' names, sorted (`dir:` and the hex of their blake3).
pub fn names_hash(mut names: Vec<Vec<u8>>) -> String {
    names.sort_unstable();
    let mut hasher = blake3::Hasher::new();
    for name in &names {
        hasher.update(name);
        hasher.update(b"\0");
    }
    format!("dir:{}", hasher.finalize().to_hex())
}

/// The blake3 hash of a file's content, in hex. Only a regular file is
/// read: the file is opened without waiting (a FIFO would block `open`
/// until a writer came, and `read` until it closed), and anything else is
/// an error that names it.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let (file, meta) = open_to_hash(path, 0)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(super::files::not_regular(path, meta.file_type()));
    }
    hash_open(file, meta.len(), path)
}

/// Opens `path` to read it without waiting (`O_NONBLOCK`; `flags` adds to
/// it), and stats what was opened.
fn open_to_hash(path: &Path, flags: libc::c_int) -> io::Result<(std::fs::File, std::fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | flags)
        .open(path)?;
    let meta = file
        .metadata()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot stat {}: {e}", path.display())))?;
    Ok((file, meta))
}

/// The blake3 of an open regular file whose stat said `size` bytes. A
/// read that comes back short once `size` bytes are in is the end of the
/// file (a regular file's read is short only there), so the read that
/// would return 0 is not made; a file that grew after its stat is read to
/// its end, and its stamp's size and mtime (the stat's) no longer match
/// it at its next check.
fn hash_open(mut file: std::fs::File, size: u64, path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut hasher = blake3::Hasher::new();
    let read_error =
        |e: io::Error| io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()));
    HASH_BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        if buffer.len() < HASH_CHUNK {
            buffer.resize(HASH_CHUNK, 0);
        }
        let mut read: u64 = 0;
        loop {
            match file.read(&mut buffer[..]) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    hasher.update(&buffer[..n]);
                    read += n as u64;
                    if n < buffer.len() && read >= size {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_error(e)),
            }
        }
    })?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Stamps of files seen during one build, so a file that many tasks read is
/// hashed at most once, and hashes already recorded are reused.
#[derive(Debug, Default)]
pub struct Stamper {
    /// Stamps learned in this build: files just stamped or just written.
    known: Mutex<HashMap<String, Stamp>>,
    /// Hashes recorded by earlier runs, which may no longer be the file's:
    /// kept apart, so that a task's old record of an input never hides the
    /// stamp its producer left in this build (the file would be read again
    /// by every task reading it).
    recorded: Mutex<HashMap<String, Stamp>>,
    /// Stats already made while checking (and stamps just learned), with
    /// when: a file that several tasks read is statted once.
    stats: Mutex<HashMap<String, (Option<Meta>, Instant)>>,
    /// Stats made before the build by whoever made it, which stand as
    /// stats of this build ([`Stamper::vouched`]).
    vouched: Option<Vouched>,
    /// Files this build wrote or forgot since: the vouched stat no longer
    /// stands for them.
    unvouched: Mutex<rustc_hash::FxHashSet<String>>,
}

/// The stat of a file made before a build, when one was made and showed a
/// regular file; `None` for any other path.
pub type Vouch = Box<dyn Fn(&str) -> Option<Meta> + Send + Sync>;

/// Stats made at one moment, before the build ([`Stamper::vouched`]).
struct Vouched {
    stat: Vouch,
    at: Instant,
}

impl std::fmt::Debug for Vouched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vouched").field("at", &self.at).finish()
    }
}

/// How long a stat this build made stands for the file when a task about
/// to run stamps its inputs ([`Stamper::stamp_recent`]). Inputs their
/// producers wrote (or the task's own check looked at) this recently are
/// stamped without another stat each. A file changed in between is
/// recorded as it was before the change while the task read it after: its
/// next check finds the stamp moved and runs the task again, never the
/// other way round.
pub const RECENT: Duration = Duration::from_millis(100);

impl Stamper {
    /// A stamper for a build that starts from stats made at `at` (those
    /// the up-to-date certificate's judge made of the files it found as it
    /// recorded them): each stands for its file as a stat this build made
    /// then would, until the build writes or forgets the file. What a
    /// cached stat may do with it, it may: the check of a task compares
    /// against it, and a task about to run takes it for a stat of its
    /// input made [`RECENT`]ly while it is.
    pub fn vouched(stat: Vouch, at: Instant) -> Stamper {
        Stamper {
            vouched: Some(Vouched { stat, at }),
            ..Stamper::default()
        }
    }

    /// The vouched stat of `rel`, unless this build wrote or forgot it.
    fn vouched_stat(&self, rel: &str) -> Option<(Meta, Instant)> {
        let vouched = self.vouched.as_ref()?;
        let meta = (vouched.stat)(rel)?;
        let unvouched = self.unvouched.lock().unwrap_or_else(|p| p.into_inner());
        (!unvouched.contains(rel)).then_some((meta, vouched.at))
    }

    /// Seeds the cache with stamps recorded earlier: a file whose size and
    /// mtime still match one of them need not be read to learn its hash.
    /// Learns a hash recorded earlier, without claiming anything about the
    /// file as it is now.
    pub fn remember_hash(&self, path: &str, stamp: &Stamp) {
        let mut recorded = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        recorded.insert(path.to_string(), stamp.clone());
    }

    /// Learns the current stamp of a file (just stamped or just written).
    pub fn remember(&self, path: &str, stamp: &Stamp) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.insert(path.to_string(), stamp.clone());
        drop(known);
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let meta = Meta {
            size: stamp.size,
            mtime_ns: stamp.mtime_ns,
        };
        stats.insert(path.to_string(), (Some(meta), Instant::now()));
    }

    pub fn forget(&self, path: &str) {
        if self.vouched.is_some() {
            let mut unvouched = self.unvouched.lock().unwrap_or_else(|p| p.into_inner());
            unvouched.insert(path.to_string());
        }
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.remove(path);
        drop(known);
        let mut recorded = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        recorded.remove(path);
        drop(recorded);
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.remove(path);
    }

    /// Stats through the cache of this build.
    fn cached_stat(&self, root: &Path, rel: &str) -> io::Result<Option<Meta>> {
        if let Some((meta, _)) = self
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(rel)
        {
            return Ok(*meta);
        }
        if let Some((meta, at)) = self.vouched_stat(rel) {
            self.stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(rel.to_string(), (Some(meta), at));
            return Ok(Some(meta));
        }
        let meta = stat_inside(root, rel)?;
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rel.to_string(), (meta, Instant::now()));
        Ok(meta)
    }

    /// [`Stamper::stamp`], for an input of a task about to run: a stat
    /// this build made of the file less than [`RECENT`] ago stands for it
    /// when a stamp learned or recorded has its size and mtime (so nothing
    /// need be read). Otherwise (no such stat, the file was missing then,
    /// or its content must be hashed), the file is looked at now.
    pub fn stamp_recent(&self, root: &Path, rel: &str) -> io::Result<Option<Stamp>> {
        let recent = self
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(rel)
            .copied()
            .or_else(|| self.vouched_stat(rel).map(|(meta, at)| (Some(meta), at)))
            .and_then(|(meta, at)| meta.filter(|_| at.elapsed() < RECENT));
        if let Some(stamp) = recent.and_then(|meta| self.lookup(rel, &meta)) {
            return Ok(Some(stamp));
        }
        self.stamp(root, rel)
    }

    /// The full stamp of a file now, hashing only when no known stamp has
    /// the same size and mtime.
    pub fn stamp(&self, root: &Path, rel: &str) -> io::Result<Option<Stamp>> {
        let full = root.join(rel);
        let Some(meta) = stat_inside(root, rel)? else {
            return Ok(None);
        };
        if let Some(known) = self.lookup(rel, &meta) {
            return Ok(Some(known));
        }
        let stamp = Stamp {
            size: meta.size,
            mtime_ns: meta.mtime_ns,
            blake3: hash_file(&full)?,
        };
        // A file that changed while it was read is caught next time: its
        // mtime will not match the one recorded here.
        self.remember(rel, &stamp);
        Ok(Some(stamp))
    }

    /// The stamp of a file a task has just written, which has no stamp
    /// this build could know: opened (not through a symlink) and statted
    /// through what was opened, then read, without a stat of the path
    /// before. A symlink, anything but a regular file, or an error other
    /// than a missing file takes [`Stamper::stamp`]'s way, which says what
    /// is wrong with it.
    pub fn stamp_written(&self, root: &Path, rel: &str) -> io::Result<Option<Stamp>> {
        self.forget(rel);
        let full = root.join(rel);
        match open_to_hash(&full, libc::O_NOFOLLOW) {
            Ok((file, meta)) if meta.is_file() => {
                let now = meta_of(&meta)?;
                let stamp = Stamp {
                    size: now.size,
                    mtime_ns: now.mtime_ns,
                    blake3: hash_open(file, now.size, &full)?,
                };
                self.remember(rel, &stamp);
                Ok(Some(stamp))
            }
            // Nothing at the path itself (a symlink that leads nowhere is
            // not missing to `O_NOFOLLOW`: it fails with `ELOOP`).
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            _ => self.stamp(root, rel),
        }
    }

    /// A stamp learned in this build, else one recorded earlier, with the
    /// size and mtime the file has now.
    fn lookup(&self, rel: &str, now: &Meta) -> Option<Stamp> {
        let matches = |s: &&Stamp| s.size == now.size && s.mtime_ns == now.mtime_ns;
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(stamp) = known.get(rel).filter(matches) {
            return Some(stamp.clone());
        }
        drop(known);
        let recorded = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        recorded.get(rel).filter(matches).cloned()
    }

    /// Compares a file with its recorded stamp.
    pub fn compare(
        &self,
        root: &Path,
        rel: &str,
        recorded: &Stamp,
        mode: CheckMode,
    ) -> io::Result<Comparison> {
        let Some(meta) = self.cached_stat(root, rel)? else {
            return Ok(Comparison::Missing);
        };
        if meta.size == recorded.size && meta.mtime_ns == recorded.mtime_ns {
            return Ok(Comparison::Same);
        }
        if mode == CheckMode::Mtime || meta.size != recorded.size {
            return Ok(Comparison::Changed);
        }
        match self.stamp(root, rel)? {
            None => Ok(Comparison::Missing),
            Some(now) if now.blake3 == recorded.blake3 => Ok(Comparison::Touched(now)),
            Some(_) => Ok(Comparison::Changed),
        }
    }
}

#[cfg(test)]
#[path = "stamp_tests.rs"]
mod tests;
