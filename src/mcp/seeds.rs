//! `run_create`'s `files`: the source files a client gives a new run
//! besides its plan (`notes.md`, `data/items.json`), as an object mapping
//! paths relative to the run directory to UTF-8 text. Checked here, whole,
//! before anything is made: how many, how large ([`FILES_MAX`],
//! [`FILE_MAX_BYTES`], [`FILES_MAX_TOTAL_BYTES`]), and each path by
//! [`new_run::seed_path`] (relative, inside the run directory, not in
//! `.planexe/`, not `plan.txt`: the plan is `plan`, which wins). That none
//! is a task's output (or one a fan-out's instance may write) is
//! [`new_run::create`]'s to check, and it writes them. Whether an earlier
//! run was given the same files, for `run_create`'s idempotency, is
//! [`same_files`]: the exact set `.planexe/origin.json` records.

use std::collections::BTreeMap;
use std::path::Path;

use super::limits::{quoted, PATH_MAX_BYTES};
use crate::error::{Error, Result};
use crate::exec::new_run::{self, Seed};
use crate::store::origin::{Input, Origin};
use crate::store::{files, RunDir};

/// The most files `run_create` takes.
pub const FILES_MAX: usize = 100;

/// The largest file `run_create` takes, in bytes.
pub const FILE_MAX_BYTES: usize = 1 << 20;

/// The most bytes of all of `run_create`'s files together.
pub const FILES_MAX_TOTAL_BYTES: usize = 4 << 20;

/// The hint of a refusal for size.
const SIZE_HINT: &str = "server_info's limits give the bounds: give fewer or smaller files, or \
                         have a task of the pipeline make the large ones; nothing was made";

/// The hint of a refusal for a path.
const PATH_HINT: &str = "name each file by a relative path inside the run directory, such as \
                         `notes.md` or `data/items.json` (the plan goes in `plan`); nothing was made";

/// A refusal of the file `given` of `files`.
fn refuse(given: &str, why: String) -> Error {
    Error::usage(format!(
        "cannot write `{}` of `files` into the new run: {why}",
        quoted(given)
    ))
}

/// Refuses `files` (path, text) that are too many or too large, saying
/// the bound. Checked before the tool's schema, whose words would not.
pub fn check_sizes(files: &[(&str, &str)]) -> Result<()> {
    if files.len() > FILES_MAX {
        return Err(Error::usage(format!(
            "`files` holds {} files; run_create takes at most {FILES_MAX}",
            files.len()
        ))
        .hint(SIZE_HINT));
    }
    for &(given, text) in files {
        if given.len() > PATH_MAX_BYTES {
            return Err(refuse(
                given,
                format!(
                    "the path is {} bytes long; a path is at most {PATH_MAX_BYTES} bytes",
                    given.len()
                ),
            )
            .hint(PATH_HINT));
        }
        if text.len() > FILE_MAX_BYTES {
            return Err(refuse(
                given,
                format!(
                    "it is {} bytes; a file is at most {FILE_MAX_BYTES} bytes",
                    text.len()
                ),
            )
            .hint(SIZE_HINT));
        }
    }
    let total: usize = files.iter().map(|(_, text)| text.len()).sum();
    if total > FILES_MAX_TOTAL_BYTES {
        return Err(Error::usage(format!(
            "`files` holds {total} bytes in all; run_create takes at most \
             {FILES_MAX_TOTAL_BYTES} bytes of files"
        ))
        .hint(SIZE_HINT));
    }
    Ok(())
}

/// The files of `files`, checked, their paths normalized, in path order.
pub fn check(files: &BTreeMap<String, String>) -> Result<Vec<Seed>> {
    let pairs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    check_sizes(&pairs)?;
    let mut seeds: Vec<Seed> = Vec::with_capacity(files.len());
    for (given, text) in files {
        let path = new_run::seed_path(given).map_err(|why| refuse(given, why).hint(PATH_HINT))?;
        if text.contains('\0') {
            return Err(refuse(given, "it holds NUL bytes, not text".into())
                .hint("files are UTF-8 text; nothing was made"));
        }
        if let Some(other) = seeds.iter().find(|s| clashes(&s.path, &path)) {
            return Err(refuse(
                given,
                format!(
                    "it names the same file as `{}`, or a folder of it, once normalized to `{path}`",
                    quoted(&other.path)
                ),
            )
            .hint("give each file once, at one path; nothing was made"));
        }
        seeds.push(Seed {
            path,
            bytes: text.as_bytes().to_vec(),
            mode: None,
        });
    }
    seeds.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(seeds)
}

/// Whether a run made with `origin`, in `run_dir`, was given exactly
/// `seeds` (checked, in path order): the same paths with the same bytes,
/// as its origin records them, and each still holding them. A run whose
/// origin does not say which files it was given (made by an older
/// planexe) is taken as given none: the same only for a call that gives
/// none.
pub fn same_files(origin: &Origin, run_dir: &RunDir, seeds: &[Seed]) -> bool {
    let given: Vec<Input> = seeds.iter().map(Seed::recorded).collect();
    let recorded = origin.inputs.as_deref().unwrap_or_default();
    recorded == given.as_slice()
        && seeds
            .iter()
            .all(|s| holds(&run_dir.path(&s.path), &s.bytes))
}

/// Whether the file at `path` holds `bytes`: read not through a link, and
/// not more than their size.
pub fn holds(path: &Path, bytes: &[u8]) -> bool {
    use std::io::Read;
    let Ok(file) = files::open_read(path) else {
        return false;
    };
    if !file.metadata().is_ok_and(|m| m.len() == bytes.len() as u64) {
        return false;
    }
    let mut now = Vec::with_capacity(bytes.len());
    file.take(bytes.len() as u64).read_to_end(&mut now).is_ok() && now == bytes
}

/// Whether two normalized paths cannot both be files: the same, or one a
/// folder of the other.
fn clashes(a: &str, b: &str) -> bool {
    let under = |x: &str, y: &str| x.strip_prefix(y).is_some_and(|rest| rest.starts_with('/'));
    a == b || under(a, b) || under(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(path: &str, text: &str) -> Result<Vec<Seed>> {
        check(&BTreeMap::from([(path.to_string(), text.to_string())]))
    }

    #[test]
    fn paths_are_normalized_and_kept_inside() {
        assert_eq!(
            one("./data//items.json", "[]").unwrap()[0].path,
            "data/items.json"
        );
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            ".planexe/state",
            "./.planexe/x",
            "plan.txt",
            "",
            "a/",
            ".",
            "a\\b",
        ] {
            assert!(one(bad, "x").is_err(), "{bad}");
        }
        let both = BTreeMap::from([
            ("a".to_string(), String::new()),
            ("a/b".to_string(), String::new()),
        ]);
        assert!(check(&both).is_err());
        let same = BTreeMap::from([
            ("a".to_string(), String::new()),
            ("./a".to_string(), String::new()),
        ]);
        assert!(check(&same).is_err());
    }

    #[test]
    fn sizes_are_bounded_with_the_bound_said() {
        let e = one("big.md", &"x".repeat(FILE_MAX_BYTES + 1))
            .err()
            .unwrap();
        assert!(e.to_string().contains("at most 1048576 bytes"), "{e}");
        let many: BTreeMap<String, String> = (0..5)
            .map(|i| (format!("f{i}"), "x".repeat(FILE_MAX_BYTES)))
            .collect();
        let e = check(&many).err().unwrap();
        assert!(e.to_string().contains("at most 4194304 bytes"), "{e}");
    }
}
