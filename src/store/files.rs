//! Writing and removing files without ever leaving a half-done one in
//! place, and never through a symlink: every file planexe rewrites goes to
//! a temporary file in the same folder and is renamed over the old one, so
//! readers see the old content or the new, never a mix; every file it
//! appends to, creates or reads in its state folder is opened with
//! `O_NOFOLLOW`. A planexe killed between writing and renaming leaves its
//! temporary file behind; the next build removes those of dead writers.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// How planexe opens its own files: never through a symlink. A link planted
/// in `.planexe/` (the folder may come from a shared or committed run
/// directory) would otherwise make planexe write, as whoever runs it,
/// wherever the link points.
fn no_follow() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    options
}

/// The error of opening `path`, saying so when it is a symlink.
fn open_error(path: &Path, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        Error::usage(format!(
            "{} is a symlink; planexe does not write through links in its state folder",
            path.display()
        ))
        .hint("remove the link (planexe makes the file again), or use a fresh run directory")
    } else {
        Error::io_at(path, e)
    }
}

/// Opens `path` with `options` (and `O_NOFOLLOW`), making its folder when
/// it does not exist.
fn open_with(path: &Path, options: &OpenOptions) -> Result<File> {
    match options.open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                fs_err::create_dir_all(dir)?;
            }
            options.open(path).map_err(|e| open_error(path, e))
        }
        other => other.map_err(|e| open_error(path, e)),
    }
}

/// Opens a file of planexe's to append to, creating it.
pub fn open_append(path: &Path) -> Result<File> {
    open_with(path, no_follow().create(true).append(true).read(true))
}

/// Creates (or truncates) a file of planexe's to write.
pub fn create(path: &Path) -> Result<File> {
    open_with(path, no_follow().create(true).write(true).truncate(true))
}

/// Opens a file of planexe's to read and write, creating it, keeping what
/// it holds.
pub fn open_update(path: &Path) -> Result<File> {
    open_with(
        path,
        no_follow()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false),
    )
}

/// Reads a file of planexe's (not through a symlink).
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = no_follow().read(true).open(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Opens a file of planexe's to read (not through a symlink).
pub fn open_read(path: &Path) -> std::io::Result<File> {
    no_follow().read(true).open(path)
}

/// How the temporary files of [`write_atomic`] begin: this prefix, the
/// writer's pid, `-`, random letters. Only a planexe killed mid-write
/// leaves one behind; the next build removes those of dead writers (see
/// [`remove_temporaries`]), so the prefix must not be one a user would pick.
pub const TEMP_PREFIX: &str = ".planexe-tmp-";

/// Writes `bytes` to `path` so that readers see the old content or the new,
/// never a mix: the bytes go to a file without a name (`O_TMPFILE`) in the
/// same folder, which is then linked in under `path` when nothing is there
/// (no temporary name to make and rename, and nothing left behind by a
/// crash), or under a temporary name renamed over `path` when something is.
/// Where the folder cannot hold such a file, a named temporary file is
/// written instead and renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_parts(path, &[bytes])
}

/// [`write_atomic`] of `parts` one after the other, without joining them
/// in memory first (a big file made of a few big pieces).
pub fn write_atomic_parts(path: &Path, parts: &[&[u8]]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if let Some(written) = write_unnamed(dir, path, parts) {
        return written;
    }
    write_named(dir, path, parts)
}

/// The pid in temporary file names, asked of the kernel once.
fn pid() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// A fresh temporary name in `dir` (see [`TEMP_PREFIX`]).
fn temporary_name(dir: &Path) -> std::path::PathBuf {
    let mut name = format!("{TEMP_PREFIX}{}-", pid());
    for _ in 0..8 {
        name.push(fastrand::alphanumeric());
    }
    dir.join(name)
}

/// [`write_atomic`] through an unnamed file; `None` where `dir` cannot
/// hold one (no `O_TMPFILE` on its file system, no such folder, no
/// `/proc` to link it by).
fn write_unnamed(dir: &Path, path: &Path, parts: &[&[u8]]) -> Option<Result<()>> {
    let mut file = unnamed(dir)?.ok()?;
    for bytes in parts {
        if let Err(e) = file.write_all(bytes) {
            return Some(Err(Error::io_at(path, e)));
        }
    }
    match link_unnamed(&file, path) {
        Ok(()) => Some(Ok(())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Replacing: a temporary name, then a rename over the old file.
            let temporary = match link_temporary(&file, dir) {
                Ok(t) => t,
                Err(e) => return Some(Err(e)),
            };
            Some(std::fs::rename(&temporary, path).map_err(|e| {
                let _ = std::fs::remove_file(&temporary);
                Error::io_at(path, e)
            }))
        }
        Err(_) => None,
    }
}

/// [`write_atomic`] for a file rewritten again and again (a task's
/// sidecar): the file it replaces is kept at `spare`, and the next rewrite
/// writes over that file and swaps it in (`RENAME_EXCHANGE`). No file is
/// made or deleted per rewrite: on a file system that discards freed
/// blocks synchronously (ext4 mounted with `discard`), deleting even a
/// small file waits for the disk, and costs more than a trivial command.
/// A spare is written over only when nothing else holds it: it must have
/// one name (not a `.DONE` marker's too) and no reader may have it open
/// (a reader that opened the file before it was swapped out still sees
/// the content it opened); otherwise it is replaced, as with
/// [`write_atomic`]. With `new` (nothing is likely at `path` yet), no
/// spare is looked for first.
pub fn write_atomic_reusing(path: &Path, spare: &Path, bytes: &[u8], new: bool) -> Result<()> {
    if let Some(file) = (!new).then(|| claim_spare(spare)).flatten() {
        let written = overwrite(&file, bytes);
        drop(file);
        written.map_err(|e| Error::io_at(spare, e))?;
        return swap_in(spare, path);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let Some(file) = unnamed(dir) else {
        return write_named(dir, path, &[bytes]);
    };
    let mut file = file.map_err(|e| Error::io_at(path, e))?;
    file.write_all(bytes).map_err(|e| Error::io_at(path, e))?;
    match link_unnamed(&file, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Replacing: the new file goes in under a temporary name, and
            // the old one comes out as the next spare (a spare that could
            // not be used is replaced).
            let temporary = link_temporary(&file, dir)?;
            swap_in(&temporary, path)?;
            if std::fs::rename(&temporary, spare).is_err() {
                let _ = std::fs::remove_file(&temporary);
            }
            Ok(())
        }
        Err(_) => write_named(dir, path, &[bytes]),
    }
}

/// Opens `spare` to be written over, if that is safe: a regular file with
/// one name that no one else has open (a write lease, which the kernel
/// grants only then, is taken while it is written over).
fn claim_spare(spare: &Path) -> Option<Claimed> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: a FIFO planted there must not hold the build (it is no
    // regular file, and is not used).
    let file = no_follow()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(spare)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.file_type().is_file() || meta.nlink() != 1 {
        return None;
    }
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own. A lease break (someone opens
    // the file while it is held) is told by a signal, SIGIO unless set:
    // SIGURG, whose default is to be ignored, is set instead.
    let leased = unsafe {
        libc::fcntl(fd, F_SETSIG, libc::SIGURG) == 0
            && libc::fcntl(fd, libc::F_SETLEASE, libc::F_WRLCK) == 0
    };
    leased.then_some(Claimed {
        file,
        len: meta.len(),
    })
}

/// `fcntl`'s command to choose the signal of a lease break (Linux; the
/// `libc` crate does not name it).
const F_SETSIG: libc::c_int = 10;

/// A spare held under a write lease; the lease goes when it is dropped.
struct Claimed {
    file: File,
    /// Its length when claimed.
    len: u64,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on a descriptor we own (closing it would also end
        // the lease).
        unsafe {
            libc::fcntl(self.file.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK);
        }
    }
}

/// Writes `bytes` over the claimed file, from its start, and cuts what is
/// left of its old content.
fn overwrite(claimed: &Claimed, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    // Writing part of a block whose page is no longer cached reads the
    // block first; zeroing the blocks about to be written (they stay
    // allocated, marked unwritten) spares that read. Where the file system
    // cannot, the write reads.
    const BLOCK: u64 = 4096;
    let zeroed = (bytes.len() as u64)
        .div_ceil(BLOCK)
        .min(claimed.len.div_ceil(BLOCK))
        * BLOCK;
    if zeroed > 0 {
        // SAFETY: fallocate on a descriptor we own; no memory is passed.
        unsafe {
            libc::fallocate(
                claimed.file.as_raw_fd(),
                libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
                0,
                zeroed as libc::off_t,
            );
        }
    }
    claimed.file.write_all_at(bytes, 0)?;
    if claimed.len > bytes.len() as u64 {
        claimed.file.set_len(bytes.len() as u64)?;
    }
    Ok(())
}

/// Puts the file at `new` in place at `path` and the file that was there at
/// `new`; when nothing was there (or the file system cannot swap), `new`
/// is renamed to `path`.
fn swap_in(new: &Path, path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes());
    let (Ok(from), Ok(to)) = (c(new), c(path)) else {
        fs_err::rename(new, path)?;
        return Ok(());
    };
    // SAFETY: both strings are NUL-terminated and outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    fs_err::rename(new, path)?;
    Ok(())
}

/// An unnamed file in `dir` to write; `None` where `dir` cannot hold one
/// (no `O_TMPFILE` on its file system, or no such folder).
fn unnamed(dir: &Path) -> Option<std::io::Result<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    match OpenOptions::new()
        .write(true)
        .mode(0o666)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(dir)
    {
        Ok(file) => Some(Ok(file)),
        Err(_) => None,
    }
}

/// Links the unnamed `file` in under a fresh temporary name in `dir`.
fn link_temporary(file: &File, dir: &Path) -> Result<std::path::PathBuf> {
    let mut temporary = temporary_name(dir);
    let mut linked = link_unnamed(file, &temporary);
    if linked
        .as_ref()
        .is_err_and(|e| e.kind() == std::io::ErrorKind::AlreadyExists)
    {
        temporary = temporary_name(dir);
        linked = link_unnamed(file, &temporary);
    }
    linked.map_err(|e| Error::io_at(&temporary, e))?;
    Ok(temporary)
}

/// Gives the unnamed `file` the name `path` (through `/proc/self/fd`,
/// which needs no privilege). Fails if `path` exists.
fn link_unnamed(file: &File, path: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(std::io::Error::other)?;
    let to = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: both strings are NUL-terminated and outlive the call.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// [`write_atomic`] through a named temporary file in `dir`.
fn write_named(dir: &Path, path: &Path, parts: &[&[u8]]) -> Result<()> {
    // Files planexe writes get the usual 0666 & ~umask, not tempfile's 0600.
    use std::os::unix::fs::PermissionsExt;
    let prefix = format!("{TEMP_PREFIX}{}-", pid());
    let temporary = || {
        tempfile::Builder::new()
            .prefix(&prefix)
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(dir)
    };
    // The folder almost always exists: make it only when it turns out not to.
    let mut tmp = match temporary() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs_err::create_dir_all(dir)?;
            temporary()
        }
        other => other,
    }
    .map_err(|e| Error::io_at(dir, e))?;
    for bytes in parts {
        tmp.write_all(bytes)
            .map_err(|e| Error::io_at(tmp.path(), e))?;
    }
    tmp.persist(path).map_err(|e| Error::io_at(path, e.error))?;
    Ok(())
}

/// Removes the temporary files that planexe processes no longer alive left
/// in `dir` (not its subfolders), returning how many. Those of a live
/// writer (a `status` or `report` that runs beside the build) are kept.
pub fn remove_temporaries(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let Some(rest) = name.as_encoded_bytes().strip_prefix(TEMP_PREFIX.as_bytes()) else {
                return false;
            };
            !writer_alive(rest)
        })
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Whether the process named by a temporary file's `PID-random` suffix is
/// alive. A suffix without a pid is from an older planexe, long gone.
fn writer_alive(suffix: &[u8]) -> bool {
    suffix
        .split(|&b| b == b'-')
        .next()
        .and_then(|p| std::str::from_utf8(p).ok())
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(super::process::alive)
}

/// Removes a file if it exists; says whether it did.
pub fn remove_if_exists(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io_at(path, e)),
    }
}

/// Moves a file, making the folders on the way to `to` when they are
/// missing (they almost never are: they are made only then).
pub fn move_file(from: &Path, to: &Path) -> Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = to.parent() {
                fs_err::create_dir_all(dir)?;
            }
            fs_err::rename(from, to)?;
        }
        // Said as fs_err says it (a failure costs a second try).
        Err(_) => fs_err::rename(from, to)?,
        Ok(()) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_of_dead_writers_go_and_those_of_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mine = format!("{TEMP_PREFIX}{}-abc", std::process::id());
        for name in [
            mine.as_str(),
            ".planexe-tmp-0-x",
            ".planexe-tmp-old",
            ".mine",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        assert_eq!(remove_temporaries(dir.path()), 2);
        assert!(dir.path().join(&mine).exists());
        assert!(dir.path().join(".mine").exists());
    }

    #[test]
    fn state_files_are_never_opened_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, "keep").unwrap();
        let link = dir.path().join("state/log");
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let e = open_append(&link).unwrap_err().to_string();
        assert!(e.contains("is a symlink"), "{e}");
        assert!(create(&link).is_err());
        assert!(open_update(&link).is_err());
        assert!(read(&link).is_err());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
        // A new file, and its folder, are made.
        let fresh = dir.path().join("state/logs/a.log");
        create(&fresh).unwrap().write_all(b"x").unwrap();
        assert_eq!(read(&fresh).unwrap(), b"x");
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_make_folders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    /// Whether files in `dir` can be leased.
    fn leases(dir: &Path) -> bool {
        let probe = dir.join("probe");
        std::fs::write(&probe, "x").unwrap();
        let leased = claim_spare(&probe).is_some();
        std::fs::remove_file(&probe).unwrap();
        leased
    }

    #[test]
    fn rewrites_reuse_the_file_they_replaced_when_nothing_else_holds_it() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.status");
        let spare = dir.path().join(".t.status.spare");
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        write_atomic_reusing(&path, &spare, b"first, and long", false).unwrap();
        assert!(!spare.exists());
        let first = ino(&path);
        write_atomic_reusing(&path, &spare, b"second", false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        // The replaced file is the spare, and the next rewrite's file.
        assert_eq!(ino(&spare), first);
        write_atomic_reusing(&path, &spare, b"third", false).unwrap();
        // (Where the file system grants no leases, spares are replaced.)
        if leases(dir.path()) {
            assert_eq!(ino(&path), first);
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"third");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

        // A spare with a second name (a `.DONE` marker) is never written
        // over, nor one a reader has open.
        let marker = dir.path().join("t.DONE");
        std::fs::hard_link(&spare, &marker).unwrap();
        write_atomic_reusing(&path, &spare, b"fourth", false).unwrap();
        assert_eq!(std::fs::read(&marker).unwrap(), b"second");
        assert_eq!(std::fs::read(&path).unwrap(), b"fourth");
        let reader = std::fs::File::open(&spare).unwrap();
        let held = std::fs::read(&spare).unwrap();
        write_atomic_reusing(&path, &spare, b"fifth", false).unwrap();
        use std::io::Read;
        let mut seen = Vec::new();
        (&reader).read_to_end(&mut seen).unwrap();
        assert_eq!(seen, held);
        assert_eq!(std::fs::read(&path).unwrap(), b"fifth");
        assert_eq!(std::fs::read(&marker).unwrap(), b"second");

        // A spare planted as a symlink is replaced, not followed.
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "keep").unwrap();
        std::fs::remove_file(&spare).unwrap();
        std::os::unix::fs::symlink(&outside, &spare).unwrap();
        write_atomic_reusing(&path, &spare, b"sixth", false).unwrap();
        write_atomic_reusing(&path, &spare, b"seventh", false).unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
        assert_eq!(std::fs::read(&path).unwrap(), b"seventh");
        // A FIFO planted as the spare holds nothing up.
        std::fs::remove_file(&spare).unwrap();
        let fifo = std::ffi::CString::new(spare.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        write_atomic_reusing(&path, &spare, b"eighth", false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"eighth");
        // Said to be new while it is not: still replaced whole.
        write_atomic_reusing(&path, &spare, b"ninth", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"ninth");
    }

    #[test]
    fn a_rewrite_over_a_spare_longer_or_shorter_holds_exactly_the_new_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.status");
        let spare = dir.path().join(".t.status.spare");
        for (n, len) in [10_000, 100, 5_000, 4_096, 7, 9_000, 8_192, 1]
            .into_iter()
            .enumerate()
        {
            let bytes: Vec<u8> = (0..len).map(|i| b'a' + ((i + n) % 26) as u8).collect();
            write_atomic_reusing(&path, &spare, &bytes, false).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "{len} bytes");
        }
    }

    #[test]
    fn atomic_writes_get_the_mode_of_any_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let new = dir.path().join("new");
        write_atomic(&new, b"one").unwrap();
        assert_eq!(mode(&new), mode(&plain));
        write_atomic(&new, b"two").unwrap();
        assert_eq!(mode(&new), mode(&plain));
        assert_eq!(std::fs::read(&new).unwrap(), b"two");
        // Nothing else was left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
