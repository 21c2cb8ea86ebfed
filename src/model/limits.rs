//! The ceilings a pipeline is held to, in one place (docs/pipeline.md lists
//! them), and the one bounded read of every file a pipeline names: the
//! pipeline file itself, `prompt_file`, `schema` and `foreach` lists.
//!
//! Each ceiling turns what would be a crash far from its cause (a file name
//! the file system refuses mid-build, memory exhausted by a cross product
//! or a list) into a refusal at load time, with `file:line:col`.

use std::io::{ErrorKind, Read};
use std::path::Path;

use crate::store::wrong_kind;

/// The longest task name, and instance name (`task[key]`), in bytes. Names
/// become file names under `.planexe/tasks/` (`NAME.status`), which most
/// file systems cap at 255 bytes; the margin leaves room for suffixes.
pub const MAX_NAME_BYTES: usize = 200;

/// The most instances one fan-out (`foreach` list or `matrix` cross
/// product) may have. Each instance is a task with files of its own.
pub const MAX_INSTANCES: usize = 100_000;

/// The largest file a pipeline may name (and the pipeline file itself).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// What [`read_bounded`] found wrong with a file, beyond an I/O error.
#[derive(Debug)]
pub enum ReadError {
    /// It does not exist.
    Missing,
    /// It is a folder.
    Folder,
    /// It is larger than [`MAX_FILE_BYTES`] (its size, when known).
    TooLarge(Option<u64>),
    /// Another error, as the OS words it.
    Io(std::io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Missing => write!(f, "it does not exist"),
            ReadError::Folder => write!(f, "it is a folder, not a file"),
            ReadError::TooLarge(size) => {
                let mib = MAX_FILE_BYTES / (1024 * 1024);
                match size {
                    Some(size) => write!(f, "it is {size} bytes, more than the {mib} MiB allowed"),
                    None => write!(f, "it is more than the {mib} MiB allowed"),
                }
            }
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Reads at most [`MAX_FILE_BYTES`] of `path`. A FIFO or a device is read
/// too (`-f /dev/stdin`), but never past the ceiling, so `/dev/zero`
/// cannot exhaust memory.
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => ReadError::Missing,
        ErrorKind::IsADirectory => ReadError::Folder,
        // The OS names neither the path nor the file in its way.
        ErrorKind::NotADirectory => ReadError::Io(wrong_kind::reword(path, path, e)),
        _ => ReadError::Io(e),
    })?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if meta.is_dir() {
        return Err(ReadError::Folder);
    }
    if meta.is_file() && meta.len() > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge(Some(meta.len())));
    }
    let mut bytes = Vec::with_capacity(if meta.is_file() {
        meta.len() as usize
    } else {
        0
    });
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| match e.kind() {
            ErrorKind::IsADirectory => ReadError::Folder,
            _ => ReadError::Io(e),
        })?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge(None));
    }
    Ok(bytes)
}

/// `name` shortened for a message: a name too long to use is too long to
/// print whole.
pub fn shorten(name: &str) -> String {
    shorten_to(name, 40)
}

/// `text` cut after `shown` characters, with `…` when it was cut.
pub fn shorten_to(text: &str, shown: usize) -> String {
    match text.char_indices().nth(shown) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded_and_say_why_not() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read_bounded(dir.path()), Err(ReadError::Folder)));
        assert!(matches!(
            read_bounded(&dir.path().join("nope")),
            Err(ReadError::Missing)
        ));
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(read_bounded(&file).unwrap(), b"x");
        // A sparse file past the ceiling is refused before it is read.
        let big = std::fs::File::create(dir.path().join("big")).unwrap();
        big.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(matches!(
            read_bounded(&dir.path().join("big")),
            Err(ReadError::TooLarge(Some(_)))
        ));
        // A device without end is cut at the ceiling, not read forever.
        // (Reading 64 MiB of zeros takes a moment; the point is it ends.)
        assert!(matches!(
            read_bounded(Path::new("/dev/zero")),
            Err(ReadError::TooLarge(None))
        ));
    }

    #[test]
    fn long_names_are_shortened_for_messages() {
        assert_eq!(shorten("abc"), "abc");
        let long = "é".repeat(300);
        assert_eq!(shorten(&long).chars().count(), 41);
    }
}
