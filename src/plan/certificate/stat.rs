//! Stats of the paths a certificate lists. Checking ten thousand of them
//! is what a no-op build costs, so each is one `fstatat` by name in a
//! folder opened once ([`Folders`]), not a walk of its whole path.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustc_hash::FxHashMap as HashMap;

use crate::store::RunDir;

/// What a stat says about one path, as far as the verdict cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileId {
    /// 0 absent, 1 regular file, 2 folder.
    pub(super) kind: u8,
    pub(super) size: u64,
    pub(super) mtime_ns: i64,
    pub(super) ctime_ns: i64,
    pub(super) ino: u64,
}

pub(super) const ABSENT: FileId = FileId {
    kind: 0,
    size: 0,
    mtime_ns: 0,
    ctime_ns: 0,
    ino: 0,
};

fn nanos(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// Stats a run-directory path without following a symlink (`Err(())` for
/// a symlink, or anything that is neither file nor folder: no certificate
/// vouches for those), and an absolute one (the pipeline file and the files
/// beside it, where a shared pipeline is often a symlink) following it.
pub(super) fn file_id(path: &Path, follow: bool) -> Result<FileId, ()> {
    file_id_on(path, follow).map(|(id, _)| id)
}

/// [`file_id`], with the device the path is on (0 when absent).
pub(super) fn file_id_on(path: &Path, follow: bool) -> Result<(FileId, u64), ()> {
    let meta = if follow {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    match meta {
        Ok(m) => id_of(&m).map(|id| (id, m.dev())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((ABSENT, 0)),
        Err(_) => Err(()),
    }
}

/// What `m` says, as far as the verdict cares (`Err(())` for anything that
/// is neither file nor folder).
pub(super) fn id_of(m: &std::fs::Metadata) -> Result<FileId, ()> {
    let kind = if m.is_file() {
        1
    } else if m.is_dir() {
        2
    } else {
        return Err(());
    };
    Ok(FileId {
        kind,
        size: if kind == 1 { m.size() } else { 0 },
        mtime_ns: nanos(m.mtime(), m.mtime_nsec()),
        ctime_ns: nanos(m.ctime(), m.ctime_nsec()),
        ino: m.ino(),
    })
}

/// The folders of the run-directory paths a certificate lists, each opened
/// once (`O_PATH`), so each path is statted by its name alone.
pub(super) struct Folders {
    /// By folder (relative to the run directory; "" for itself): its
    /// descriptor, or the error opening it gave (absent, not a folder).
    open: HashMap<String, Result<OwnedFd, i32>>,
}

impl Folders {
    /// Opens the folders of `paths` (those relative to the run directory).
    pub(super) fn open<'a>(run_dir: &RunDir, paths: impl Iterator<Item = &'a str>) -> Folders {
        let mut open = HashMap::default();
        for path in paths.filter(|p| !p.starts_with('/')) {
            let folder = parent(path);
            if open.contains_key(folder) {
                continue;
            }
            let full = if folder.is_empty() {
                run_dir.root().to_path_buf()
            } else {
                run_dir.path(folder)
            };
            let fd = CString::new(full.as_os_str().as_bytes())
                .map_err(|_| libc::EINVAL)
                .and_then(|c| {
                    // SAFETY: a NUL-terminated path; the descriptor returned
                    // is owned below.
                    let fd = unsafe {
                        libc::open(
                            c.as_ptr(),
                            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                        )
                    };
                    if fd < 0 {
                        Err(std::io::Error::last_os_error()
                            .raw_os_error()
                            .unwrap_or(libc::EIO))
                    } else {
                        // SAFETY: `fd` was just opened and is owned by no one else.
                        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
                    }
                });
            open.insert(folder.to_string(), fd);
        }
        Folders { open }
    }

    /// What a stat of the run-directory path `rel` says, without following
    /// a symlink (as [`file_id`] with `follow` false).
    pub(super) fn file_id(&self, run_dir: &RunDir, rel: &str) -> Result<FileId, ()> {
        self.file_id_on(run_dir, rel).map(|(id, _)| id)
    }

    /// [`Folders::file_id`], with the device the path is on (0 when
    /// absent).
    pub(super) fn file_id_on(&self, run_dir: &RunDir, rel: &str) -> Result<(FileId, u64), ()> {
        let name = &rel[rel.rfind('/').map_or(0, |i| i + 1)..];
        let fd = match self.open.get(parent(rel)) {
            Some(Ok(fd)) => fd,
            // A folder that does not exist: neither does the path.
            Some(Err(e)) if *e == libc::ENOENT => return Ok((ABSENT, 0)),
            Some(Err(_)) => return Err(()),
            None => return file_id_on(&run_dir.path(rel), false),
        };
        // The name, NUL-terminated, on the stack: a name is at most 255
        // bytes on the file systems planexe runs on, and one this call
        // cannot hold is stat'ed the slow way.
        let mut buf = [0u8; 256];
        if name.len() >= buf.len() || name.as_bytes().contains(&0) {
            return file_id_on(&run_dir.path(rel), false);
        }
        buf[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: `stat` is written by fstatat before it is read; `fd` is
        // open and `buf` holds the name followed by a NUL byte.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::fstatat(
                fd.as_raw_fd(),
                buf.as_ptr().cast(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            return match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::ENOENT) => Ok((ABSENT, 0)),
                _ => Err(()),
            };
        }
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => 1,
            libc::S_IFDIR => 2,
            _ => return Err(()),
        };
        let id = FileId {
            kind,
            size: if kind == 1 { st.st_size as u64 } else { 0 },
            mtime_ns: nanos(st.st_mtime, st.st_mtime_nsec),
            ctime_ns: nanos(st.st_ctime, st.st_ctime_nsec),
            ino: st.st_ino,
        };
        Ok((id, st.st_dev))
    }
}

/// The folder of a relative path ("" for one at the top).
fn parent(rel: &str) -> &str {
    rel.rfind('/').map_or("", |i| &rel[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_by_name_in_an_open_folder_says_what_a_full_stat_says() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = RunDir::open(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/f.txt"), "hello").unwrap();
        std::fs::write(dir.path().join("top.txt"), "x").unwrap();
        std::os::unix::fs::symlink("top.txt", dir.path().join("link")).unwrap();
        let paths = [
            "a/b/f.txt",
            "top.txt",
            "a/b",
            "missing/x",
            "a/b/none",
            "link",
            "top.txt/x",
        ];
        let folders = Folders::open(&run_dir, paths.iter().copied());
        for p in paths {
            assert_eq!(
                folders.file_id(&run_dir, p),
                file_id(&run_dir.path(p), false),
                "{p}"
            );
        }
    }
}
