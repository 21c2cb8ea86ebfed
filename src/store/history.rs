//! The run's histories, `events.jsonl` and `trace.json`, kept bounded.
//! Every build that runs a task appends to both, so a run built again and
//! again (a watch rebuilding for days, an agent building the same run
//! hundreds of times) would grow them without end. As such a build
//! begins, under the lock and before its first event, each history over
//! [`CAP`] is set aside whole under its `.1` name (`events.1.jsonl`,
//! `trace.1.json`), replacing the one set aside before, and the build
//! starts the history afresh: a fresh trace opens its array again, so
//! each file stays a trace of its own. A reader that follows a history by
//! its name sees it shrink and its inode change; one that holds it open
//! holds the file set aside, which grows no more.
//!
//! `failures.jsonl` and `usage.jsonl` are never set aside: every
//! `error_id` an event, a sidecar or the state log names resolves to a
//! line of `failures.jsonl`, and `usage.jsonl` holds the run's totals.

use std::path::{Path, PathBuf};

use super::RunDir;

/// The size past which a history is set aside: a trace of some thousands
/// of builds of a small pipeline, or of a few builds of a large one.
pub const CAP: u64 = 16 * 1024 * 1024;

/// Sets aside each history of `run_dir` that is over [`CAP`]. Best effort,
/// as writing the histories is: a history that cannot be set aside grows
/// on. Called by a build as it begins, holding the lock.
pub fn bound(run_dir: &RunDir) {
    bound_over(run_dir, CAP);
}

fn bound_over(run_dir: &RunDir, cap: u64) {
    let histories: [(PathBuf, PathBuf); 2] = [
        (run_dir.events_path(), run_dir.events_aside_path()),
        (run_dir.trace_path(), run_dir.trace_aside_path()),
    ];
    for (path, aside) in &histories {
        if over(path, cap) {
            // A rename within the folder: a reader never sees a history
            // half moved, and the file set aside is the whole of it.
            let _ = std::fs::rename(path, aside);
        }
    }
}

/// Whether the regular file at `path` is bigger than `cap`.
fn over(path: &Path, cap: u64) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() > cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_over_its_cap_is_set_aside_whole_and_replaces_the_last() {
        let (_dir, run_dir) = crate::store::rundir::temp();
        std::fs::create_dir_all(run_dir.state_dir()).unwrap();
        std::fs::write(run_dir.events_path(), "0123456789\n").unwrap();
        std::fs::write(run_dir.trace_path(), "[\n{}\n").unwrap();
        std::fs::write(run_dir.events_aside_path(), "older\n").unwrap();
        bound_over(&run_dir, 10);
        assert!(!run_dir.events_path().exists());
        let aside = std::fs::read_to_string(run_dir.events_aside_path()).unwrap();
        assert_eq!(aside, "0123456789\n");
        // Under its cap, the trace stays where it is.
        assert_eq!(
            std::fs::read_to_string(run_dir.trace_path()).unwrap(),
            "[\n{}\n"
        );
        assert!(!run_dir.trace_aside_path().exists());
        // Nothing there: nothing to do.
        bound_over(&run_dir, 10);
        assert!(run_dir.events_aside_path().exists());
    }
}
