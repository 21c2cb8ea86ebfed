//! Stats of the paths a certificate lists. Checking ten thousand of them
//! is what a no-op build costs, so each is one `fstatat` by name in a
//! folder opened once ([`Folders`], on `store::by_name`), not a walk of its
//! whole path.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::store::by_name::OpenFolders;
use crate::store::RunDir;

/// What a stat says about one path, as far as the verdict cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileId {
    /// 0 absent, 1 regular file, 2 folder, [`LINK`] a symlink.
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

/// The kind of a symlink in the run directory (outside `.planexe/`): listed
/// with what it leads to (see `collect::follow_links`), and statted as the
/// link itself ([`Folders::id_as`]); the size is that of the path it holds.
pub(super) const LINK: u8 = 3;

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

/// The stat of the symlink `path` ([`LINK`]), with its device; `Err(())`
/// for anything else.
fn link_id_on(path: &Path) -> Result<(FileId, u64), ()> {
    let m = std::fs::symlink_metadata(path).map_err(|_| ())?;
    if !m.file_type().is_symlink() {
        return Err(());
    }
    Ok((
        FileId {
            kind: LINK,
            size: m.size(),
            mtime_ns: nanos(m.mtime(), m.mtime_nsec()),
            ctime_ns: nanos(m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
        },
        m.dev(),
    ))
}

/// The stat of the symlink `path` ([`LINK`]); `None` for anything else.
pub(super) fn link_id(path: &Path) -> Option<FileId> {
    link_id_on(path).ok().map(|(id, _)| id)
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
/// once, so each path is statted by its name alone.
pub(super) struct Folders(OpenFolders);

impl Folders {
    /// Opens the folders of `paths` (those relative to the run directory).
    pub(super) fn open<'a>(run_dir: &RunDir, paths: impl Iterator<Item = &'a str>) -> Folders {
        Folders(OpenFolders::open(run_dir, paths))
    }

    /// What a stat of the run-directory path `rel` says, without following
    /// a symlink (as [`file_id`] with `follow` false).
    pub(super) fn file_id(&self, run_dir: &RunDir, rel: &str) -> Result<FileId, ()> {
        self.file_id_on(run_dir, rel).map(|(id, _)| id)
    }

    /// [`Folders::file_id`], with the device the path is on (0 when
    /// absent).
    pub(super) fn file_id_on(&self, run_dir: &RunDir, rel: &str) -> Result<(FileId, u64), ()> {
        self.stat_on(run_dir, rel, false)
    }

    /// [`Folders::file_id`] of a path an entry recorded as `kind`: a
    /// symlink recorded as one ([`LINK`]) is one still.
    pub(super) fn id_as(&self, run_dir: &RunDir, rel: &str, kind: u8) -> Result<FileId, ()> {
        self.stat_on(run_dir, rel, kind == LINK).map(|(id, _)| id)
    }

    /// [`Folders::file_id_on`], a symlink taken as one ([`LINK`], its own
    /// stat) when `links`.
    pub(super) fn stat_on(
        &self,
        run_dir: &RunDir,
        rel: &str,
        links: bool,
    ) -> Result<(FileId, u64), ()> {
        let st = match self.0.lstat(rel) {
            None => {
                let full = run_dir.path(rel);
                return match file_id_on(&full, false) {
                    Err(()) if links => link_id_on(&full),
                    id => id,
                };
            }
            Some(Ok(None)) => return Ok((ABSENT, 0)),
            Some(Err(_)) => return Err(()),
            Some(Ok(Some(st))) => st,
        };
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => 1,
            libc::S_IFDIR => 2,
            libc::S_IFLNK if links => LINK,
            _ => return Err(()),
        };
        let id = FileId {
            kind,
            size: if kind == 2 { 0 } else { st.st_size as u64 },
            mtime_ns: nanos(st.st_mtime, st.st_mtime_nsec),
            ctime_ns: nanos(st.st_ctime, st.st_ctime_nsec),
            ino: st.st_ino,
        };
        Ok((id, st.st_dev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_by_name_in_an_open_folder_says_what_a_full_stat_says() {
        let (_dir, run_dir, paths) = crate::store::by_name::sample_run();
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
