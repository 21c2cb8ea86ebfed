//! Reading one file of a run for `read_output`: an output or any other
//! file of the run's own (not of planexe's state), a task's log under
//! `.planexe/logs/`, the server's `.planexe/build.log`, or what a failed
//! task's hint sends its reader to: `.planexe/failures.jsonl` and a prompt
//! task's last response, `.planexe/raw/NAME.json`. Bounded, text
//! only, and never outside the run: the path is relative without `..`
//! (`store::rundir::normalize`), its links are resolved and must stay in
//! the run (and out of planexe's state but for those logs), and the file
//! is opened without following a link and without blocking (a FIFO
//! planted in the run cannot hang the server), then must be a regular
//! file. What it returns is scrubbed of the secrets a build of the run
//! scrubs (its API keys, webhook tokens): a command may print them.
//!
//! The path checked is the path opened: the resolved path, relative to
//! the run folder's descriptor, by `openat2` with `RESOLVE_BENEATH`,
//! `RESOLVE_NO_SYMLINKS` and `RESOLVE_NO_MAGICLINKS` (Linux 5.6), so a
//! local writer who swaps a folder on the way for a link between the check
//! and the open gets the read refused, never a file outside the run (nor
//! one of planexe's state files). Where `openat2` is missing (an older
//! kernel, a seccomp filter), the resolved path is opened as it was
//! checked, with only its last component kept from being a link.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::store::rundir::{self, file, STATE_DIR};
use crate::store::untrusted::Secrets;
use crate::store::RunDir;

/// What `read_output` returns unless asked for less or more.
pub const DEFAULT_BYTES: u64 = 256 * 1024;

/// The most `read_output` returns.
pub const MAX_BYTES: u64 = 1024 * 1024;

/// The text read.
pub struct Text {
    /// The path as the run names it.
    pub path: String,
    /// The file's size.
    pub size: u64,
    /// Whether the file holds more than `text`.
    pub truncated: bool,
    pub text: String,
}

/// The path `raw` names in the run, relative and normalized, or why it
/// cannot be read.
fn relative(raw: &str) -> std::result::Result<String, String> {
    let trimmed = raw.strip_prefix("./").unwrap_or(raw);
    let Some(state) = trimmed.strip_prefix(&format!("{STATE_DIR}/")) else {
        return rundir::normalize(raw);
    };
    // One file of a folder of them, by its bare name.
    let one_of = |folder: &str| {
        state
            .strip_prefix(&format!("{folder}/"))
            .is_some_and(|name| !name.is_empty() && !name.contains('/') && name != "..")
    };
    // What the hints of a failed task send its reader to: the build's log,
    // the task's log, every failed call, the last response.
    let readable = state == file::BUILD_LOG
        || state == file::FAILURES
        || one_of(file::LOGS)
        || one_of(file::RAW);
    if readable {
        Ok(format!("{STATE_DIR}/{state}"))
    } else {
        Err(format!(
            "{raw} is planexe's own state; of {STATE_DIR}/ only {STATE_DIR}/{}, {STATE_DIR}/{}, the task \
             logs in {STATE_DIR}/{}/ and the last responses in {STATE_DIR}/{}/ can be read",
            file::BUILD_LOG,
            file::FAILURES,
            file::LOGS,
            file::RAW,
        ))
    }
}

/// Read past the limit as well, so a secret that straddles it is still
/// recognised and scrubbed whole.
const REDACT_MARGIN: u64 = 8192;

/// Reads at most `max` bytes of the file `path` of the run `name`, its
/// text scrubbed of `secrets` (a command may print the key it was given
/// into its log or an output).
pub fn read(run_dir: &RunDir, name: &str, path: &str, max: u64, secrets: &Secrets) -> Result<Text> {
    let refuse = |why: String| {
        Error::usage(format!(
            "cannot read `{}` of run `{name}`: {why}",
            super::limits::quoted(path)
        ))
    };
    let rel = relative(path).map_err(|why| {
        refuse(why)
            .hint("name a file by its path relative to the run, such as an output status lists")
    })?;
    let full = run_dir.path(&rel);
    let real = match std::fs::canonicalize(&full) {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse("there is no such file".into()).hint(
                "status and explain list each task's outputs; a task that has not run has none yet",
            ))
        }
        Err(e) => return Err(refuse(e.to_string())),
    };
    let Ok(inside) = real.strip_prefix(run_dir.root()) else {
        return Err(refuse("it leads outside the run (a symlink)".into()));
    };
    // A link to planexe's state is held to the rule of a path naming it.
    if inside.starts_with(STATE_DIR) {
        relative(&inside.to_string_lossy())
            .map_err(|why| refuse(format!("it is a symlink to {}: {why}", inside.display())))?;
    }
    let opened =
        match open_beneath(run_dir.root(), inside) {
            Beneath::Opened(file) => file,
            Beneath::Moved => return Err(refuse(
                "a link appeared on its way while it was opened (is something changing the run?)"
                    .into(),
            )
            .hint("read it again once the run's files settle")),
            Beneath::Failed(e) => return Err(refuse(e.to_string())),
            Beneath::Unsupported => open(&real).map_err(|e| refuse(e.to_string()))?,
        };
    let meta = opened.metadata().map_err(|e| refuse(e.to_string()))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "it is a folder"
        } else {
            "it is not a regular file"
        };
        return Err(refuse(kind.into()));
    }
    let mut bytes = Vec::new();
    opened
        .take(max.saturating_add(REDACT_MARGIN).saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(e.to_string()))?;
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let truncated = bytes.len() > max;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        // Cut in the middle of a character past the limit, where the
        // reading stopped: keep what is whole.
        Err(e) if truncated && e.utf8_error().valid_up_to() >= max => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).unwrap_or_default()
        }
        Err(_) => return Err(refuse("it is not UTF-8 text".into())),
    };
    let mut text = secrets.redact(&text);
    // `[REDACTED]` may be longer than what it replaced.
    let truncated = truncated || text.len() > max;
    if truncated {
        let mut cut = max.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    if text.contains('\0') {
        return Err(refuse("it holds NUL bytes: it is not text".into()));
    }
    Ok(Text {
        path: rel,
        size: meta.len(),
        truncated,
        text,
    })
}

/// What [`open_beneath`] made of a path.
enum Beneath {
    Opened(File),
    /// A link on the way (the path was resolved, so one appeared since),
    /// or the path led out of the run folder.
    Moved,
    Failed(std::io::Error),
    /// No `openat2` here: the caller opens the path as it was checked.
    Unsupported,
}

/// Opens `inside`, a path relative to the run folder `root` with every
/// link resolved, to read, without blocking, through no link at all and
/// never out of the run folder, whatever changes on the way meanwhile.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn open_beneath(root: &Path, inside: &Path) -> Beneath {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use rustix::io::Errno;
    let dir = match rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(dir) => dir,
        // The run folder itself was swapped for a link (or removed).
        Err(Errno::LOOP | Errno::NOTDIR) => return Beneath::Moved,
        Err(e) => return Beneath::Failed(e.into()),
    };
    let inside = if inside.as_os_str().is_empty() {
        Path::new(".")
    } else {
        inside
    };
    let opened = rustix::fs::openat2(
        &dir,
        inside,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    );
    match opened {
        Ok(fd) => Beneath::Opened(File::from(fd)),
        Err(Errno::LOOP | Errno::XDEV) => Beneath::Moved,
        // ENOSYS: a kernel before 5.6; EPERM: a seccomp filter that
        // refuses system calls it does not know.
        Err(Errno::NOSYS | Errno::PERM) => Beneath::Unsupported,
        Err(e) => Beneath::Failed(e.into()),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn open_beneath(_root: &Path, _inside: &Path) -> Beneath {
    Beneath::Unsupported
}

/// Opens `path` to read, not through a link and without blocking.
fn open(path: &Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::relative;

    #[test]
    fn only_files_of_the_run_and_its_logs_are_named() {
        assert_eq!(relative("out/a.md").unwrap(), "out/a.md");
        assert_eq!(relative("./plan.txt").unwrap(), "plan.txt");
        assert_eq!(
            relative(".planexe/build.log").unwrap(),
            ".planexe/build.log"
        );
        assert_eq!(
            relative(".planexe/logs/ask.log").unwrap(),
            ".planexe/logs/ask.log"
        );
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            ".planexe/run.json",
            ".planexe/logs/",
            ".planexe/logs/../run.json",
            ".planexe/logs/a/b",
            ".planexe",
        ] {
            assert!(relative(bad).is_err(), "{bad:?}");
        }
    }
}
