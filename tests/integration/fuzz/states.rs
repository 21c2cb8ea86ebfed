//! Fuzz targets for every reader of a state file: the state log, sidecars,
//! the run record, the in-flight journal, the status snapshot, the trace
//! and the up-to-date certificate, fed random bytes and real files
//! (from a build) cut, flipped and spliced; and the commands that only
//! read, run on a run directory with every file damaged at once.

use std::path::Path;
use std::sync::OnceLock;

use planexe::observe::status::Saved;
use planexe::plan::certificate::{Certificate, Key};
use planexe::store::run_record::RunRecord;
use planexe::store::{inflight, sidecar, CheckMode, RunDir, StateStore};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use super::{config, damaged, fuzz};
use crate::harness::*;

/// The state files of a real run directory, after a failure and a
/// success: the seeds every reader's damaged input starts from.
struct States {
    project: Project,
}

impl States {
    fn get() -> &'static States {
        static STATES: OnceLock<States> = OnceLock::new();
        STATES.get_or_init(|| {
            let p = Project::new(
                "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\n[tasks.m]\nmatrix = { x = [\"1\", \"2\"] }\ninputs = [\"a.txt\"]\noutputs = [\"m/{{ x }}\"]\ncommand = \"exit 3\"\n",
            );
            p.run(&["build", "-k"]).code(1);
            p.write(
                "pipeline.toml",
                &p.read("pipeline.toml")
                    .replace("exit 3", "cat a.txt > {outputs}"),
            );
            p.build().ok();
            p.run(&["status"]).ok();
            States { project: p }
        })
    }

    fn seed(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.project.path(rel)).unwrap_or_else(|e| panic!("seed {rel}: {e}"))
    }

    /// A copy of the run directory to damage, with the pipeline file.
    fn copy(&self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(self.project.root(), dir.path());
        dir
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// What JSON-lines and JSON state files are damaged with.
const JSON_SNIPPETS: &[&[u8]] = &[
    b"null",
    b"-1",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"1e999",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\n",
    b",",
    b"\\u0000",
    b"\\ud800",
    b"\xff",
    b"\"\":",
    b"{}\n",
    b"[]\n",
    b"{\"task\":\"a\",\"clean\":true}\n",
    b"{\"ended\":\"a\"}\n",
    b"{\"spawned\":[\"a\",0]}\n",
];

/// An empty run directory, one of whose state files each case rewrites
/// (a fresh directory per case would cost more than the read).
struct Scratch {
    dir: tempfile::TempDir,
    run_dir: RunDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".planexe/tasks")).unwrap();
        let run_dir = RunDir::open(dir.path()).unwrap();
        Scratch { dir, run_dir }
    }

    /// Writes `bytes` at `.planexe/REL`.
    fn put(&self, rel: &str, bytes: &[u8]) -> &RunDir {
        std::fs::write(self.dir.path().join(".planexe").join(rel), bytes).unwrap();
        &self.run_dir
    }
}

#[test]
fn damaged_state_logs_load_or_fail_without_panic() {
    let seeds = vec![States::get().seed(".planexe/log")];
    let scratch = Scratch::new();
    fuzz(200, damaged(seeds, JSON_SNIPPETS), |bytes| {
        let run_dir = scratch.put("log", &bytes);
        if let Ok(store) = StateStore::load(run_dir) {
            for (task, _) in store.records() {
                let _ = store.recorded(run_dir, task);
                let _ = store.last_status(run_dir, task);
            }
        }
    });
}

#[test]
fn damaged_sidecars_and_run_records_read_without_panic() {
    let states = States::get();
    let sidecars = vec![
        states.seed(".planexe/tasks/a.status"),
        states.seed(".planexe/tasks/m[1].status"),
    ];
    let scratch = Scratch::new();
    fuzz(200, damaged(sidecars, JSON_SNIPPETS), |bytes| {
        let run_dir = scratch.put("tasks/a.status", &bytes);
        let _ = sidecar::read_status(run_dir, "a");
    });
    let records = vec![states.seed(".planexe/run.json")];
    fuzz(200, damaged(records, JSON_SNIPPETS), |bytes| {
        let run_dir = scratch.put("run.json", &bytes);
        if let Some(run) = RunRecord::load(run_dir) {
            let _ = (run.unfinished_build(), run.running_build(run_dir));
        }
    });
}

#[test]
fn damaged_inflight_journals_recover_without_panic() {
    let seeds = vec![States::get().seed(".planexe/inflight")];
    let scratch = Scratch::new();
    fuzz(200, damaged(seeds, JSON_SNIPPETS), |bytes| {
        let run_dir = scratch.put("inflight", &bytes);
        let journal = inflight::journal(run_dir);
        let _ = journal.unchanged(run_dir);
    });
}

#[test]
fn damaged_snapshots_and_traces_read_without_panic() {
    let states = States::get();
    let snapshots = vec![states.seed(".planexe/status.snapshot")];
    let scratch = Scratch::new();
    // The head ends with a blake3 of itself, so damage that keeps the sum
    // valid is what reaches the decoder: half the cases are re-summed.
    let strategy = (damaged(snapshots, JSON_SNIPPETS), any::<bool>());
    fuzz(300, strategy, |(bytes, resum)| {
        let mut bytes = bytes;
        if resum {
            resum_snapshot_head(&mut bytes);
        }
        let run_dir = scratch.put("status.snapshot", &bytes);
        if let Some(saved) = Saved::read(run_dir) {
            let report = saved.report(run_dir, None, std::time::Duration::ZERO, None);
            let _ = (saved.lines(), saved.text(&report));
            let _ = saved.write_json(&report, &mut Vec::new());
        }
    });
    let traces = vec![states.seed(".planexe/trace.json")];
    fuzz(200, damaged(traces, JSON_SNIPPETS), |bytes| {
        scratch.put("trace.json", &bytes);
        let _ = planexe::observe::trace::read(&scratch.dir.path().join(".planexe/trace.json"));
    });
}

/// Makes the blake3 after a snapshot's head (a magic line, its length,
/// the head) that of the head, when the length leaves room for it.
fn resum_snapshot_head(bytes: &mut [u8]) {
    let magic = b"planexe status.snapshot 5\n".len();
    let Some(len) = bytes.get(magic..magic + 8) else {
        return;
    };
    let len = u64::from_le_bytes(len.try_into().unwrap());
    let start = magic + 8;
    let Some(end) = usize::try_from(len).ok().and_then(|l| start.checked_add(l)) else {
        return;
    };
    if end.checked_add(32).is_some_and(|e| e <= bytes.len()) {
        let sum = blake3::hash(&bytes[start..end]);
        bytes[end..end + 32].copy_from_slice(sum.as_bytes());
    }
}

/// The certificate ends with a blake3 of the rest, so damage that keeps
/// the sum valid is what reaches the decoder: half the cases are re-summed.
#[test]
fn damaged_certificates_decode_or_are_no_certificate() {
    let states = States::get();
    let seed = states.seed(".planexe/uptodate");
    let body = seed[..seed.len() - 32].to_vec();
    let pipeline = states
        .project
        .root()
        .canonicalize()
        .unwrap()
        .join("pipeline.toml");
    let strategy = (damaged(vec![body], JSON_SNIPPETS), any::<bool>());
    let scratch = Scratch::new();
    fuzz(300, strategy, |(bytes, resum)| {
        let mut bytes = bytes;
        if resum {
            let sum = blake3::hash(&bytes);
            bytes.extend_from_slice(sum.as_bytes());
        }
        let run_dir = scratch.put("uptodate", &bytes);
        if let Some(cert) = Certificate::read(run_dir) {
            let _ = cert.generation();
            let key = Key {
                pipeline: &pipeline,
                model: None,
            };
            let _ = cert.holds(run_dir, &key, CheckMode::Content);
        }
    });
}

/// Every state file damaged at once, read by the commands that only read:
/// never a panic (exit 101). (`build` is left out: its crash recovery
/// signals the pids a journal names.)
#[test]
fn commands_that_read_damaged_state_never_panic() {
    let states = States::get();
    let files = [
        ".planexe/log",
        ".planexe/tasks/a.status",
        ".planexe/run.json",
        ".planexe/inflight",
        ".planexe/status.snapshot",
        ".planexe/trace.json",
        ".planexe/uptodate",
        ".planexe/pipeline",
        ".planexe/summary.json",
        ".planexe/events.jsonl",
    ];
    let strategy: Vec<_> = files
        .iter()
        .map(|rel| damaged(vec![states.seed(rel)], JSON_SNIPPETS))
        .collect();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .map_or(6, |n| (n / 50).max(1));
    let mut config = config(cases);
    config.cases = cases;
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |damaged| {
        let dir = states.copy();
        for (rel, bytes) in files.iter().zip(&damaged) {
            std::fs::write(dir.path().join(rel), bytes).unwrap();
        }
        for args in [
            &["status"][..],
            &["status", "--json"],
            &["status", "a"],
            &["explain", "a"],
            &["graph"],
            &["report", "-o", "r.html"],
        ] {
            let output = std::process::Command::new(bin())
                .args(args)
                .current_dir(dir.path())
                .env_remove("PLANEXE_PIPELINE")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            prop_assert!(
                output.status.code() != Some(101) && !stderr.contains("panicked"),
                "planexe {args:?} panicked: {stderr}"
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
