//! Reading the state log: at load, the listing of `tasks/` (markers and
//! sidecars), which of its lines need parsing (a task's lines before a
//! later success or `clean` of it do not) and the restamps applied to the
//! records read before them; and whether what a log gained holds restamps
//! alone.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::{LogLine, StateStore};
use crate::store::files;
use crate::store::rundir::RunDir;
use crate::store::stamp::Stamp;

/// Names of tasks with a `.DONE` marker and of those with a sidecar, from
/// one listing of `.planexe/tasks/`. No folder (a new run) is neither: the
/// sets are empty, and no task costs a stat to learn so. A folder that
/// cannot be listed leaves each to a stat (`None`); so does a listing cut
/// short, for the sidecars.
pub(super) fn list_tasks(run_dir: &RunDir) -> (Option<HashSet<String>>, Option<HashSet<String>>) {
    let entries = match std::fs::read_dir(run_dir.tasks_dir()) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (Some(HashSet::default()), Some(HashSet::default()))
        }
        Err(_) => return (None, None),
        Ok(entries) => entries,
    };
    let mut markers = HashSet::default();
    let mut sidecars = Some(HashSet::default());
    for entry in entries {
        let Ok(entry) = entry else {
            sidecars = None;
            continue;
        };
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if let Some(task) = name.strip_suffix(".DONE") {
            markers.insert(task.to_string());
        } else if let Some(task) = name.strip_suffix(".status") {
            if let Some(sidecars) = sidecars.as_mut() {
                sidecars.insert(task.to_string());
            }
        }
    }
    (Some(markers), sidecars)
}

/// `bytes` cut at each newline, as `split` would cut them (the piece after
/// the last newline included, empty when the text ends with one), but
/// found with `memchr`: a state log of ten thousand tasks is megabytes,
/// which a byte-at-a-time split took about as long to cut as to read.
pub(super) fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', bytes) {
        lines.push(&bytes[start..end]);
        start = end + 1;
    }
    lines.push(&bytes[start..]);
    lines
}

/// Which lines of a log need not be parsed: those about a task that a
/// later line replaces whole (a success, or a `clean`), told from their
/// first bytes as planexe writes them (`{"task":"NAME","status":{"task":
/// "NAME","state":"done"` or `{"task":"NAME","clean":true`). Restamps and
/// lines of any other shape are parsed.
pub(super) struct Superseded {
    pub(super) skip: Vec<bool>,
    /// The lines that replace others: were one not to parse, the lines it
    /// replaced would be needed after all.
    pub(super) by: Vec<usize>,
}

pub(super) fn superseded(lines: &[&[u8]]) -> Superseded {
    let mut skip = vec![false; lines.len()];
    let mut by = Vec::new();
    let mut replaced: HashSet<&[u8]> = HashSet::default();
    for (at, line) in lines.iter().enumerate().rev() {
        let Some((task, kind)) = head_of(line) else {
            continue;
        };
        if replaced.contains(task) {
            skip[at] = true;
        } else if kind != Head::Other {
            replaced.insert(task);
            by.push(at);
        }
    }
    Superseded { skip, by }
}

/// What a log line's first bytes say it records about its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Head {
    /// A success: it replaces what came before about the task.
    Done,
    /// `clean`: it forgets what came before.
    Clean,
    /// Another outcome (a failure, a stop).
    Other,
}

/// The task a log line is about, and what it records of it; `None` when
/// the line's first bytes do not say (a restamp, a name with escapes,
/// another shape). Read from bytes alone: it also names the task of a
/// line damaged after its first bytes.
pub(super) fn head_of(line: &[u8]) -> Option<(&[u8], Head)> {
    let rest = line.strip_prefix(br#"{"task":""#)?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest[end] != b'"' {
        return None;
    }
    let (task, rest) = rest.split_at(end);
    let rest = &rest[1..];
    if rest.starts_with(br#","clean":true"#) {
        return Some((task, Head::Clean));
    }
    let status = rest.strip_prefix(br#","status":{"task":""#)?;
    let state = status.strip_prefix(task)?.strip_prefix(br#"","state":""#)?;
    let kind = if state.starts_with(br#"done""#) {
        Head::Done
    } else {
        Head::Other
    };
    Some((task, kind))
}

impl StateStore {
    /// Gives each recorded stamp the last restamp of its path (with its
    /// bytes) that came after its record.
    pub(super) fn apply_restamps(
        &mut self,
        restamps: &HashMap<String, Vec<(usize, Stamp)>>,
        read_at: &HashMap<String, usize>,
    ) {
        for (task, record) in &mut self.records {
            let Some(done) = record.done.as_mut() else {
                continue;
            };
            let since = read_at.get(task).copied().unwrap_or(0);
            for stamps in [&mut done.inputs, &mut done.outputs] {
                for (path, stamp) in stamps.iter_mut() {
                    let Some(news) = restamps.get(path) else {
                        continue;
                    };
                    for (at, new) in news {
                        if *at > since && new.blake3 == stamp.blake3 {
                            *stamp = new.clone();
                        }
                    }
                }
            }
        }
    }
}

/// Whether the log holds nothing from byte `offset` on but `restamp` lines
/// (and blank ones): what a no-op build appends when it records files
/// touched over the same bytes, which changes no task's state. False when
/// it cannot be read, or ends in a torn line.
pub fn only_restamps_from(run_dir: &RunDir, offset: u64) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let mut tail = Vec::new();
    let read = files::open_read(&run_dir.log_path())
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(offset))?;
            f.read_to_end(&mut tail)
        })
        .is_ok();
    read && (tail.is_empty() || tail.ends_with(b"\n"))
        && lines(&tail)
            .into_iter()
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .all(|l| {
                serde_json::from_slice::<LogLine>(l).is_ok_and(|l| {
                    l.restamp.is_some() && l.task.is_empty() && !l.clean && l.status.is_none()
                })
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_where_split_cuts_them() {
        let texts: [&[u8]; 8] = [
            b"",
            b"\n",
            b"\n\n",
            b"one",
            b"one\n",
            b"one\ntwo",
            b"one\n\ntwo\n",
            b"\none\r\ntwo\n\n",
        ];
        for text in texts {
            let split: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
            assert_eq!(lines(text), split, "{:?}", String::from_utf8_lossy(text));
        }
        // Long enough for memchr's wide steps, with newlines at many offsets.
        let long: Vec<u8> = (0..1000u32)
            .map(|i| {
                if i % 7 == 0 || i % 33 == 0 {
                    b'\n'
                } else {
                    b'a' + (i % 26) as u8
                }
            })
            .collect();
        let split: Vec<&[u8]> = long.split(|&b| b == b'\n').collect();
        assert_eq!(lines(&long), split);
    }

    #[test]
    fn a_task_s_lines_before_its_last_success_or_clean_are_skipped() {
        let lines: Vec<&[u8]> = vec![
            br#"{"task":"a","status":{"task":"a","state":"done","x":1}}"#,
            br#"{"task":"a","status":{"task":"a","state":"failed"}}"#,
            br#"{"restamp":{"path":"p"}}"#,
            br#"{"task":"a","status":{"task":"a","state":"done","x":2}}"#,
            br#"{"task":"b","status":{"task":"b","state":"done"}}"#,
            br#"{"task":"b","clean":true}"#,
            br#"{"task":"c","status":{"task":"c","state":"failed"}}"#,
            br#"{"task":"c","status":{"task":"c","state":"failed"}}"#,
            br#"{"task":"q\"d","status":{"task":"q\"d","state":"done"}}"#,
            br#"{"task":"q\"d","status":{"task":"q\"d","state":"done"}}"#,
            br#"{"task":"ab","status":{"task":"a","state":"done"}}"#,
            b"torn",
        ];
        let s = superseded(&lines);
        let skipped: Vec<usize> = (0..lines.len()).filter(|&i| s.skip[i]).collect();
        // a's first two (not the restamp between), b's success; c's
        // failures both stand; names with escapes, odd shapes and torn lines
        // are parsed.
        assert_eq!(skipped, [0, 1, 4]);
        assert_eq!(s.by, [5, 3]);
    }
}
