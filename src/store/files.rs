//! Writing and removing files without ever leaving a half-done one in
//! place: every file planexe writes goes to a temporary file in the same
//! folder and is renamed over the old one, so readers see the old content
//! or the new, never a mix. A planexe killed between the two leaves its
//! temporary file behind; the next build removes those of dead writers.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// How the temporary files of [`write_atomic`] begin: this prefix, the
/// writer's pid, `-`, random letters. Only a planexe killed mid-write
/// leaves one behind; the next build removes those of dead writers (see
/// [`remove_temporaries`]), so the prefix must not be one a user would pick.
pub const TEMP_PREFIX: &str = ".planexe-tmp-";

/// Writes `bytes` to `path` through a temporary file in the same folder and
/// a rename, so readers see the old content or the new, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // Files planexe writes get the usual 0666 & ~umask, not tempfile's 0600.
    use std::os::unix::fs::PermissionsExt;
    let prefix = format!("{TEMP_PREFIX}{}-", std::process::id());
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
    tmp.write_all(bytes)
        .map_err(|e| Error::io_at(tmp.path(), e))?;
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

/// Moves a file, making the folders on the way to `to`.
pub fn move_file(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        fs_err::create_dir_all(dir)?;
    }
    fs_err::rename(from, to)?;
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
}
