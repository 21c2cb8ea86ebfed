//! Stats of run-directory paths by name: each path's folder opened once
//! (`O_PATH`), each path an `fstatat` of its last name there, not a walk
//! of its whole path from `/`. What checking thousands of paths at once
//! costs (an up-to-date certificate's judge, the look for damaged
//! sidecars) is mostly those walks.
//!
//! A folder stays open as long as the [`OpenFolders`]: use one only where
//! nothing renames or replaces folders meanwhile (no task runs), as a
//! folder replaced since would still be the one looked in.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustc_hash::FxHashMap as HashMap;

use super::RunDir;

/// The folders of some run-directory paths, each opened once.
pub struct OpenFolders {
    /// By folder (relative to the run directory; "" for itself): its
    /// descriptor, or the error opening it gave (absent, not a folder).
    open: HashMap<String, Result<OwnedFd, i32>>,
}

impl OpenFolders {
    /// Opens the folders of `paths` (those relative to the run directory;
    /// absolute ones are left out).
    pub fn open<'a>(run_dir: &RunDir, paths: impl Iterator<Item = &'a str>) -> OpenFolders {
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
        OpenFolders { open }
    }

    /// `lstat` of the run-directory path `rel` by its name in its open
    /// folder: `Some(Ok(Some(stat)))`, `Some(Ok(None))` when it does not
    /// exist (nor does its folder), `Some(Err(errno))` when the stat
    /// failed otherwise (or its folder could not be opened for another
    /// reason). `None` when this cannot say (its folder was not among
    /// those opened, or its name is too long or holds a NUL byte): the
    /// caller stats it the usual way.
    pub fn lstat(&self, rel: &str) -> Option<Result<Option<libc::stat>, i32>> {
        let name = &rel[rel.rfind('/').map_or(0, |i| i + 1)..];
        let fd = match self.open.get(parent(rel))? {
            Ok(fd) => fd,
            // A folder that does not exist: neither does the path.
            Err(e) if *e == libc::ENOENT => return Some(Ok(None)),
            Err(e) => return Some(Err(*e)),
        };
        // The name, NUL-terminated, on the stack: a name is at most 255
        // bytes on the file systems planexe runs on, and one this call
        // cannot hold is left to the caller.
        let mut buf = [0u8; 256];
        if name.len() >= buf.len() || name.as_bytes().contains(&0) {
            return None;
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
        if rc == 0 {
            return Some(Ok(Some(st)));
        }
        Some(match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ENOENT) => Ok(None),
            e => Err(e.unwrap_or(libc::EIO)),
        })
    }
}

/// The folder of a relative path ("" for one at the top).
fn parent(rel: &str) -> &str {
    rel.rfind('/').map_or("", |i| &rel[..i])
}

/// A run directory holding a file in a nested folder, a file at the top, a
/// symlink and paths that are missing or lead through a file: what a test
/// of stats by name looks at.
#[cfg(test)]
pub(crate) fn sample_run() -> (tempfile::TempDir, RunDir, [&'static str; 7]) {
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
    (dir, run_dir, paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_by_name_says_what_an_lstat_of_the_whole_path_says() {
        let (_dir, run_dir, paths) = sample_run();
        let folders = OpenFolders::open(&run_dir, paths.iter().copied());
        use std::os::unix::fs::MetadataExt;
        for p in paths {
            let by_name = folders.lstat(p).unwrap();
            match std::fs::symlink_metadata(run_dir.path(p)) {
                Ok(m) => {
                    let st = by_name.unwrap().unwrap();
                    assert_eq!(
                        (st.st_ino, st.st_size as u64, st.st_mode),
                        (m.ino(), m.size(), m.mode()),
                        "{p}"
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    assert_eq!(by_name.map(|s| s.is_none()), Ok(true), "{p}")
                }
                Err(e) => assert_eq!(by_name.err(), e.raw_os_error(), "{p}"),
            }
        }
        // A folder not opened, or a name no stat can take: the caller's.
        assert!(folders.lstat("elsewhere/x").is_none());
        assert!(folders.lstat(&format!("a/b/{}", "n".repeat(300))).is_none());
    }
}
