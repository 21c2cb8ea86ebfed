//! Writing and removing files without ever leaving a half-done one in
//! place, and never through a symlink: every file planexe rewrites goes to
//! a temporary file in the same folder and is renamed over the old one, so
//! readers see the old content or the new, never a mix; every file it
//! appends to, creates or reads in its state folder is opened with
//! `O_NOFOLLOW` and `O_NONBLOCK`, and must then be a regular file: a FIFO
//! planted there is refused, never waited on. A planexe killed between
//! writing and renaming leaves its temporary file behind; the next build
//! removes those of dead writers.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// How planexe opens its own files: never through a symlink, and never
/// waiting. A link planted in `.planexe/` (the folder may come from a
/// shared or committed run directory) would otherwise make planexe write,
/// as whoever runs it, wherever the link points; a FIFO would make it wait
/// in `open` for a writer or reader that never comes. (`O_NONBLOCK` means
/// nothing to the regular file that is then required: see [`regular`].)
pub(super) fn no_follow() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    options
}

/// What a file that is not a regular one is, in words.
pub fn kind_of(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a folder"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else if file_type.is_symlink() {
        "a symlink"
    } else {
        "not a regular file"
    }
}

/// The error of a file at `path` that is not a regular file.
pub fn not_regular(path: &Path, file_type: std::fs::FileType) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!(
            "{} is {}, not a regular file",
            path.display(),
            kind_of(file_type)
        ),
    )
}

/// `file`, opened at `path`, if it is a regular file: one `fstat`.
fn regular(path: &Path, file: File) -> std::io::Result<File> {
    let file_type = file
        .metadata()
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?
        .file_type();
    if file_type.is_file() {
        Ok(file)
    } else {
        Err(not_regular(path, file_type))
    }
}

/// Opens `path` with `options` (`O_NOFOLLOW`, `O_NONBLOCK`), then requires
/// a regular file. A FIFO opened to write with no reader is refused by the
/// kernel (`ENXIO`) before the `fstat` can be: said the same way.
fn open_regular(path: &Path, options: &OpenOptions) -> std::io::Result<File> {
    match options.open(path) {
        Ok(file) => regular(path, file),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            Err(match std::fs::symlink_metadata(path) {
                Ok(meta) if !meta.is_file() => not_regular(path, meta.file_type()),
                _ => e,
            })
        }
        Err(e) => Err(e),
    }
}

/// The error of opening `path`, saying so when it is a symlink or not a
/// regular file.
fn open_error(path: &Path, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        Error::usage(format!(
            "{} is a symlink; planexe does not write through links in its state folder",
            path.display()
        ))
        .hint("remove the link (planexe makes the file again), or use a fresh run directory")
    } else if e.kind() == std::io::ErrorKind::InvalidInput {
        Error::usage(format!(
            "{e}; planexe keeps its state in regular files and does not wait on others"
        ))
        .hint(format!(
            "remove {} (planexe makes the file again), or use a fresh run directory",
            path.display()
        ))
    } else {
        Error::io_at(path, e)
    }
}

/// Opens `path` with `options` (see [`open_regular`]), making its folder
/// when it does not exist.
fn open_with(path: &Path, options: &OpenOptions) -> Result<File> {
    match open_regular(path, options) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                fs_err::create_dir_all(dir)?;
            }
            open_regular(path, options).map_err(|e| open_error(path, e))
        }
        other => other.map_err(|e| open_error(path, e)),
    }
}

/// Opens a file of planexe's to append to, creating it.
pub fn open_append(path: &Path) -> Result<File> {
    open_with(path, no_follow().create(true).append(true).read(true))
}

/// Appends `bytes` to `file` (opened to append): one write where the
/// disk allows it. When a write fails part-way (a disk that fills
/// mid-line), what it wrote of `bytes` is cut off again, so the file ends
/// where it did and the next append does not land behind half a line (a
/// line of a log damaged in its middle, not a torn last one).
pub fn append_whole(mut file: &File, bytes: &[u8]) -> std::io::Result<()> {
    let mut written = 0;
    let error = loop {
        if written == bytes.len() {
            return Ok(());
        }
        match file.write(&bytes[written..]) {
            Ok(0) => break std::io::Error::from(std::io::ErrorKind::WriteZero),
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break e,
        }
    };
    if written > 0 {
        // Truncating frees space: it works on a full disk.
        if let Ok(meta) = file.metadata() {
            let _ = file.set_len(meta.len().saturating_sub(written as u64));
        }
    }
    Err(error)
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

/// Reads a file of planexe's (not through a symlink, and only a regular
/// file: anything else is an error of kind `InvalidInput` naming it).
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = open_read(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Opens a file of planexe's to read (not through a symlink, and only a
/// regular file: see [`read`]).
pub fn open_read(path: &Path) -> std::io::Result<File> {
    open_regular(path, no_follow().read(true))
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

/// An unnamed file in `dir` to write; `None` where `dir` cannot hold one
/// (no `O_TMPFILE` on its file system, or no such folder).
pub(super) fn unnamed(dir: &Path) -> Option<std::io::Result<File>> {
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

/// What the file system of `dir` says of a file written now: a file made
/// in `dir` with no name (gone when closed), looked at, then written. A
/// write after a look gets the clock's finest time where the kernel gives
/// one (Linux's multigrain timestamps), so every time the file system gave
/// before is earlier, or at most the same coarse tick. `None` where `dir`
/// cannot hold an unnamed file.
pub fn clock(dir: &Path) -> Option<std::fs::Metadata> {
    use std::io::Write;
    let mut file = unnamed(dir)?.ok()?;
    file.metadata().ok()?;
    file.write_all(b"t").ok()?;
    file.metadata().ok()
}

/// Links the unnamed `file` in under a fresh temporary name in `dir`.
pub(super) fn link_temporary(file: &File, dir: &Path) -> Result<std::path::PathBuf> {
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
pub(super) fn link_unnamed(file: &File, path: &Path) -> std::io::Result<()> {
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
pub(super) fn write_named(dir: &Path, path: &Path, parts: &[&[u8]]) -> Result<()> {
    let mut tmp = temporary_in(dir)?;
    for bytes in parts {
        tmp.write_all(bytes)
            .map_err(|e| Error::io_at(tmp.path(), e))?;
    }
    tmp.persist(path).map_err(|e| Error::io_at(path, e.error))?;
    Ok(())
}

/// A named temporary file in `dir` (see [`TEMP_PREFIX`]), made with the
/// folder when it turns out not to exist.
fn temporary_in(dir: &Path) -> Result<tempfile::NamedTempFile> {
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
    match temporary() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs_err::create_dir_all(dir)?;
            temporary()
        }
        other => other,
    }
    .map_err(|e| Error::io_at(dir, e))
}

/// Writes what `fill` writes to `path` as [`write_atomic`] does, through a
/// named temporary file in its folder, without holding it all in memory
/// (a big log written again). Nothing replaces `path` when `fill` fails.
pub fn write_atomic_from(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let mut tmp = temporary_in(path.parent().unwrap_or(Path::new(".")))?;
    let mut out = std::io::BufWriter::new(tmp.as_file_mut());
    fill(&mut out)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io_at(path, e))?;
    drop(out);
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
    fn state_files_that_are_fifos_are_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("log");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates the file.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for e in [
            open_append(&fifo).unwrap_err().to_string(),
            create(&fifo).unwrap_err().to_string(),
            open_update(&fifo).unwrap_err().to_string(),
            read(&fifo).unwrap_err().to_string(),
            open_read(&fifo).unwrap_err().to_string(),
        ] {
            assert!(e.contains("is a FIFO, not a regular file"), "{e}");
        }
        assert!(read(dir.path()).is_err());
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
