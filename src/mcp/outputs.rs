//! Reading one file of a run for `read_output`: an output or any other
//! file of the run's own (not of planexe's state), a task's log under
//! `.planexe/logs/`, the server's `.planexe/build.log`, or what a failed
//! task's hint sends its reader to: `.planexe/failures.jsonl` and a prompt
//! task's last response, `.planexe/raw/NAME.json`. Bounded (from an
//! offset, so a longer file is read on, read after read), text only, and never outside the run: the path is relative without `..`
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
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::store::rundir::{self, file, STATE_DIR};
use crate::store::untrusted::{Secrets, REDACTED};
use crate::store::RunDir;

/// What `read_output` returns unless asked for less or more.
pub const DEFAULT_BYTES: u64 = 256 * 1024;

/// The most `read_output` returns.
pub const MAX_BYTES: u64 = 1024 * 1024;

/// The largest `offset` taken: the largest whole number a JSON number
/// holds exactly (2^53), so one past it is refused as it was sent.
pub const OFFSET_MAX: u64 = 1 << 53;

/// The text read.
pub struct Text {
    /// The path as the run names it.
    pub path: String,
    /// The file's size.
    pub size: u64,
    /// Where `text` starts in the file, in bytes: the offset asked for,
    /// moved on past a character it cut. A secret it cut is the
    /// `[REDACTED]` the text starts with.
    pub offset: u64,
    /// Whether the file holds more than `text`, past it.
    pub truncated: bool,
    /// Where a next read goes on, when `truncated`.
    pub next_offset: Option<u64>,
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

/// What to read of a file: from `offset`, at most `max` bytes.
#[derive(Clone, Copy)]
pub struct Window {
    pub offset: u64,
    pub max: u64,
}

/// Reads at most `window.max` bytes of the file `path` of the run `name`
/// from `window.offset`, its text scrubbed of `secrets` (a command may
/// print the key it was given into its log or an output).
pub fn read(
    run_dir: &RunDir,
    name: &str,
    path: &str,
    window: Window,
    secrets: &Secrets,
) -> Result<Text> {
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
    if window.offset > meta.len() {
        return Err(refuse(format!(
            "offset {} is past its end ({} bytes)",
            window.offset,
            meta.len()
        ))
        .hint("read from an offset below its size; 0 reads it from the start"));
    }
    // Read a margin before the offset too, so a secret that straddles it
    // is still recognised, and scrubbed whole.
    let start = window.offset.saturating_sub(REDACT_MARGIN);
    let before = usize::try_from(window.offset - start).unwrap_or(usize::MAX);
    let mut opened = opened;
    opened
        .seek(SeekFrom::Start(start))
        .map_err(|e| refuse(e.to_string()))?;
    let mut bytes = Vec::new();
    opened
        .take(
            (window.offset - start)
                .saturating_add(window.max)
                .saturating_add(REDACT_MARGIN)
                .saturating_add(1),
        )
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(e.to_string()))?;
    let (head, body) = bytes.split_at(before.min(bytes.len()));
    let (skipped, body) = whole_chars(head, body);
    let from = window.offset + skipped as u64;
    let max = usize::try_from(window.max).unwrap_or(usize::MAX);
    let truncated = body.len() > max;
    let body = match std::str::from_utf8(body) {
        Ok(text) => text,
        // Cut in the middle of a character past the limit, where the
        // reading stopped: keep what is whole.
        Err(e) if truncated && e.valid_up_to() >= max => {
            std::str::from_utf8(&body[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return Err(refuse("it is not UTF-8 text".into())),
    };
    let head = String::from_utf8_lossy(head);
    let mut text = scrubbed_from(&head, body, secrets);
    // `[REDACTED]` may be longer than what it replaced.
    let truncated = truncated || text.len() > max;
    let mut next_offset = None;
    if truncated {
        let mut cut = max.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        // What was returned, counted in the file's bytes. A secret of 8
        // bytes or more became `[REDACTED]`, 10: the text grew by at most 2
        // bytes a secret, so the next read starts that much earlier rather
        // than skip any byte (a few repeat); a secret cut at the end is
        // `[REDACTED]` again at the start of the next read.
        let grown = 2 * text.matches(REDACTED).count();
        let read = cut.saturating_sub(grown).max(1) as u64;
        next_offset = Some((from + read).min(meta.len()));
    }
    if text.contains('\0') {
        return Err(refuse("it holds NUL bytes: it is not text".into()));
    }
    Ok(Text {
        path: rel,
        size: meta.len(),
        offset: from,
        truncated,
        next_offset,
        text,
    })
}

/// `body` with the bytes that continue a character `head` began left
/// out (an offset in the middle of a character starts at the next one),
/// and how many were.
fn whole_chars<'a>(head: &[u8], body: &'a [u8]) -> (usize, &'a [u8]) {
    if head.is_empty() {
        return (0, body);
    }
    let skipped = body
        .iter()
        .take(3)
        .take_while(|b| (0x80..0xC0).contains(*b))
        .count();
    (skipped, &body[skipped..])
}

/// `body` scrubbed of `secrets`, read after `head` (the margin before the
/// offset asked for): the text from the offset, or, when a secret begins
/// in `head` and ends in `body`, from that secret's `[REDACTED]`.
fn scrubbed_from(head: &str, body: &str, secrets: &Secrets) -> String {
    if head.is_empty() {
        return secrets.redact(body);
    }
    let whole = secrets.redact(&format!("{head}{body}"));
    // A line's end after `head`, so that a secret's start ending it is not
    // taken for a secret cut there (which `redact` replaces too).
    let mut alone = secrets.redact(&format!("{head}\n"));
    alone.pop();
    if let Some(rest) = whole.strip_prefix(alone.as_str()) {
        return rest.to_string();
    }
    // Where the two part is where the secret's `[REDACTED]` starts.
    let mut common = whole
        .bytes()
        .zip(alone.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    while !whole.is_char_boundary(common) {
        common -= 1;
    }
    whole[common..].to_string()
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
