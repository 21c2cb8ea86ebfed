//! A command's log, and a check's, scrubbed of the build's secrets once
//! the command has ended. Commands inherit the environment, API keys
//! included, and print one often enough (`env`, `set -x`, `echo
//! $OPENAI_API_KEY`, a tool's debug output); the log is a file planexe
//! writes, and a secret never stays in one.
//!
//! The log is read in lines (a line longer than [`PIECE`] in pieces of
//! it), never whole. Only a log in which some line holds a secret, in any
//! spelling [`Secrets`] knows, is written again: each such line scrubbed,
//! every other byte as it was (output that is not UTF-8 included), through
//! a temporary file renamed over it, so a reader sees the old log or the
//! new one. While the command runs, its log is as it printed it.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::error::Result;
use crate::store::files;
use crate::store::untrusted::Secrets;

/// The longest piece of a line read at once: a secret across two pieces
/// of a longer line is not found.
const PIECE: u64 = 1 << 20;

/// Scrubs the log at `path` of `secrets`; says whether it held one. A log
/// that does not exist (the command printed nothing) holds none.
pub fn scrub_log(path: &Path, secrets: &Secrets) -> Result<bool> {
    if secrets.is_empty() {
        return Ok(false);
    }
    let mut found = false;
    each_piece(path, |piece| {
        found = secrets.found_in(&String::from_utf8_lossy(piece));
        Ok(!found)
    })?;
    if !found {
        return Ok(false);
    }
    files::write_atomic_from(path, |out| {
        each_piece(path, |piece| {
            match scrubbed(piece, secrets) {
                Some(text) => out.write_all(text.as_bytes())?,
                None => out.write_all(piece)?,
            }
            Ok(true)
        })
    })?;
    Ok(true)
}

/// [`scrub_log`] after a command ended; where the log cannot be written
/// again (a full disk), it is removed: a log lost is better than a secret
/// kept.
pub fn scrub_ended(path: &Path, secrets: &Secrets) {
    if scrub_log(path, secrets).is_err() {
        let _ = files::remove_if_exists(path);
    }
}

/// `piece` scrubbed, when it holds a secret (read as UTF-8, its other
/// bytes replaced, which only such a line loses).
fn scrubbed(piece: &[u8], secrets: &Secrets) -> Option<String> {
    let text = String::from_utf8_lossy(piece);
    secrets.found_in(&text).then(|| secrets.redact(&text))
}

/// Calls `each` with every line of the file at `path` (its newline
/// included), in pieces of at most [`PIECE`] bytes, until it says to stop.
fn each_piece(
    path: &Path,
    mut each: impl FnMut(&[u8]) -> std::io::Result<bool>,
) -> std::io::Result<()> {
    let file = match files::open_read(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut piece = Vec::new();
    loop {
        piece.clear();
        if reader.by_ref().take(PIECE).read_until(b'\n', &mut piece)? == 0 || !each(&piece)? {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets::new(["sk-live-0123456789abcdef".to_string()], 8)
    }

    #[test]
    fn a_log_that_printed_a_key_keeps_everything_but_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t.log");
        let mut bytes = b"before\n\xff\xfe not utf-8\nkey=sk-live-0123456789abcdef; ok\n".to_vec();
        bytes.extend_from_slice(b"json \"sk-live-0123456789abcdef\"\nno newline at the end");
        std::fs::write(&log, &bytes).unwrap();
        assert!(scrub_log(&log, &secrets()).unwrap());
        let after = std::fs::read(&log).unwrap();
        assert_eq!(
            after,
            b"before\n\xff\xfe not utf-8\nkey=[REDACTED]; ok\njson \"[REDACTED]\"\nno newline at the end"
        );
        // Nothing left over beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_log_without_a_key_is_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t.log");
        std::fs::write(&log, b"sk-live-0123 is not it\n").unwrap();
        let before = std::fs::metadata(&log).unwrap().modified().unwrap();
        assert!(!scrub_log(&log, &secrets()).unwrap());
        assert_eq!(std::fs::read(&log).unwrap(), b"sk-live-0123 is not it\n");
        assert_eq!(std::fs::metadata(&log).unwrap().modified().unwrap(), before);
        assert!(!scrub_log(&dir.path().join("none.log"), &secrets()).unwrap());
        assert!(!scrub_log(&log, &Secrets::default()).unwrap());
    }

    #[test]
    fn a_key_in_a_long_line_is_found_in_its_piece() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t.log");
        let mut text = "x".repeat(PIECE as usize + 10);
        text.push_str(" sk-live-0123456789abcdef\n");
        std::fs::write(&log, &text).unwrap();
        assert!(scrub_log(&log, &secrets()).unwrap());
        let after = std::fs::read_to_string(&log).unwrap();
        assert!(
            after.ends_with(" [REDACTED]\n"),
            "{}",
            &after[after.len() - 40..]
        );
        assert_eq!(
            after.len(),
            text.len() - "sk-live-0123456789abcdef".len() + "[REDACTED]".len()
        );
    }
}
