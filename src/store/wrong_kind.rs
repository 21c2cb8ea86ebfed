//! A path that is the wrong kind of thing, in words: the file that stands
//! where a folder on the way to a path should be (`notes.txt` in
//! `notes.txt/answers`). The OS says only "Not a directory (os error 20)",
//! naming neither the path nor the file in the way; every message about
//! such a path words it here, once, so they all say the same thing.
//!
//! Looking costs a `stat` per parent folder, and only after an operation
//! failed; what is found is a description for a message, never a decision.

use std::io;
use std::path::{Path, PathBuf};

/// The first of `path`'s parent folders, from the root down, that exists
/// and is not a folder (following symlinks): the file that stops `path`
/// from being reached or made. `None` when every parent that exists is a
/// folder.
pub fn file_on_the_way(path: &Path) -> Option<PathBuf> {
    let parents: Vec<&Path> = path.ancestors().skip(1).collect();
    for parent in parents.into_iter().rev() {
        if parent.as_os_str().is_empty() {
            continue;
        }
        match std::fs::metadata(parent) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Some(parent.to_path_buf()),
            Err(_) => return None,
        }
    }
    None
}

/// What stands in the way of `path`, in the terms of `shown` (how the
/// message spells `path`: relative to some folder, a suffix of `path`'s
/// components): "`notes.txt` is a file, not a folder". `None` when no
/// file stands on the way.
pub fn blocked(path: &Path, shown: &Path) -> Option<String> {
    let file = file_on_the_way(path)?;
    let below = path.strip_prefix(&file).ok()?.components().count();
    let named = if path.ends_with(shown) && shown.components().count() > below {
        shown.ancestors().nth(below).unwrap_or(shown).to_path_buf()
    } else {
        file.clone()
    };
    Some(if file.is_file() {
        format!("{} is a file, not a folder", named.display())
    } else {
        format!("{} is not a folder", named.display())
    })
}

/// The hint under a message about a file standing on the way to `shown`.
pub fn hint(shown: &str) -> String {
    format!(
        "a file stands where a folder on the way to {shown} should be: move the file, or name another path"
    )
}

/// Why `path` (spelled `shown`) could not be used, after `e`: the file
/// standing on its way when there is one, a folder where a file was
/// wanted, a file where a folder was wanted, else the OS's own words.
pub fn why(path: &Path, shown: &Path, e: &io::Error) -> String {
    if let Some(blocked) = blocked(path, shown) {
        return blocked;
    }
    match e.kind() {
        io::ErrorKind::IsADirectory => "it is a folder, not a file".to_string(),
        io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists
            if path.exists() && !path.is_dir() =>
        {
            "it is a file, not a folder".to_string()
        }
        _ => e.to_string(),
    }
}

/// Why the folder `path` (spelled `shown`) is not there to use, after
/// the words naming it: "does not exist", "is not a folder", or "cannot
/// exist: `notes.txt` is a file, not a folder".
pub fn absent_folder(path: &Path, shown: &Path) -> String {
    match blocked(path, shown) {
        Some(blocked) => format!("cannot exist: {blocked}"),
        None if path.exists() => "is not a folder".to_string(),
        None => "does not exist".to_string(),
    }
}

/// `e` reworded by [`why`], keeping its kind, for code that passes
/// `io::Error`s on.
pub fn reword(path: &Path, shown: &Path, e: io::Error) -> io::Error {
    let kind = e.kind();
    io::Error::new(kind, why(path, shown, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_on_the_way_is_named_as_the_message_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let path = dir.path().join("notes.txt/answers/deep");
        assert_eq!(file_on_the_way(&path), Some(dir.path().join("notes.txt")));
        assert_eq!(
            blocked(&path, Path::new("notes.txt/answers/deep")).as_deref(),
            Some("notes.txt is a file, not a folder")
        );
        // A shown path that is not a suffix of the real one: in full.
        let full = format!(
            "{} is a file, not a folder",
            dir.path().join("notes.txt").display()
        );
        assert_eq!(
            blocked(&path, Path::new("x")).as_deref(),
            Some(full.as_str())
        );
        assert_eq!(blocked(&dir.path().join("a/b"), Path::new("a/b")), None);
        let e = std::fs::create_dir_all(&path).unwrap_err();
        assert_eq!(why(&path, Path::new("answers/deep"), &e), full);
    }

    #[test]
    fn a_file_where_a_folder_should_be_is_said_so() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let e = std::fs::create_dir(&file).unwrap_err();
        assert_eq!(why(&file, Path::new("f"), &e), "it is a file, not a folder");
        let e = std::fs::read(dir.path()).unwrap_err();
        assert_eq!(
            why(dir.path(), Path::new("."), &e),
            "it is a folder, not a file"
        );
    }
}
