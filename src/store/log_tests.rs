//! Tests of the state log: restamps applied in order, compaction, tasks
//! assumed done.

use super::*;

fn run_dir() -> (tempfile::TempDir, RunDir) {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = RunDir::open(dir.path()).unwrap();
    std::fs::create_dir_all(run_dir.tasks_dir()).unwrap();
    (dir, run_dir)
}

fn stamp(mtime_ns: i64, hash: &str) -> Stamp {
    Stamp {
        size: 1,
        mtime_ns,
        blake3: hash.to_string(),
    }
}

fn done(task: &str, input: &str, s: Stamp) -> Status {
    let mut status = Status::new(task, TaskState::Done, "f");
    status.inputs.insert(input.to_string(), s);
    status
}

fn restamp(path: &str, s: Stamp) -> Restamp {
    Restamp {
        path: path.to_string(),
        stamp: s,
    }
}

fn input_mtime(store: &StateStore, task: &str, input: &str) -> i64 {
    store
        .record(task)
        .unwrap()
        .done
        .as_ref()
        .unwrap()
        .inputs
        .get(input)
        .unwrap()
        .mtime_ns
}

#[test]
fn a_restamp_applies_to_the_records_before_it_with_the_same_bytes() {
    let (_dir, run_dir) = run_dir();
    let mut store = StateStore::load(&run_dir).unwrap();
    store
        .write_status(&run_dir, &done("a", "in", stamp(1, "h")))
        .unwrap();
    store
        .write_status(&run_dir, &done("b", "in", stamp(1, "other")))
        .unwrap();
    drop(store);
    append_restamps(&run_dir, vec![restamp("in", stamp(2, "h"))]).unwrap();
    // c is recorded after the restamp: its own stamp stands.
    let mut store = StateStore::load(&run_dir).unwrap();
    store
        .write_status(&run_dir, &done("c", "in", stamp(3, "h")))
        .unwrap();
    drop(store);
    append_restamps(&run_dir, vec![restamp("in", stamp(4, "h"))]).unwrap();
    append_restamps(&run_dir, vec![restamp("elsewhere", stamp(9, "h"))]).unwrap();
    let store = StateStore::load(&run_dir).unwrap();
    // The last restamp with its bytes wins; other bytes are left alone.
    assert_eq!(input_mtime(&store, "a", "in"), 4);
    assert_eq!(input_mtime(&store, "b", "in"), 1);
    assert_eq!(input_mtime(&store, "c", "in"), 4);
}

#[test]
fn a_log_grown_by_big_records_rewritten_is_compacted() {
    let (_dir, run_dir) = run_dir();
    let mut store = StateStore::load(&run_dir).unwrap();
    // One task reading 5,000 inputs, recorded again and again: few lines,
    // many bytes.
    let mut big = Status::new("big", TaskState::Done, "f");
    for i in 0..5000 {
        big.inputs.insert(format!("in/{i:05}.txt"), stamp(i, "h"));
    }
    for _ in 0..12 {
        store.write_status(&run_dir, &big).unwrap();
    }
    let grown = std::fs::metadata(run_dir.log_path()).unwrap().len();
    store.compact_if_large(&run_dir).unwrap();
    let compacted = std::fs::metadata(run_dir.log_path()).unwrap().len();
    assert!(compacted * 5 < grown, "{grown} -> {compacted} bytes");
    let store = StateStore::load(&run_dir).unwrap();
    assert_eq!(input_mtime(&store, "big", "in/04999.txt"), 4999);
}

#[test]
fn lines_a_later_success_replaces_are_skipped_unless_that_success_is_torn() {
    let (_dir, run_dir) = run_dir();
    let mut store = StateStore::load(&run_dir).unwrap();
    for mtime in 1..=3 {
        store
            .write_status(&run_dir, &done("a", "in", stamp(mtime, "h")))
            .unwrap();
    }
    drop(store);
    let store = StateStore::load(&run_dir).unwrap();
    assert_eq!(input_mtime(&store, "a", "in"), 3);
    // A crash tore the last success of `a`: the one before stands.
    let log = run_dir.log_path();
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(br#"{"task":"a","status":{"task":"a","state":"done","started_at":"#);
    std::fs::write(&log, &bytes).unwrap();
    let store = StateStore::load(&run_dir).unwrap();
    assert_eq!(input_mtime(&store, "a", "in"), 3);
}

#[test]
fn a_task_assumed_done_has_its_marker_in_memory_only() {
    let (_dir, run_dir) = run_dir();
    let mut store = StateStore::load(&run_dir).unwrap();
    store.assume_done(done("kept", "in.txt", stamp(1, "h")));
    assert!(store.has_marker(&run_dir, "kept"));
    assert!(!store.has_marker(&run_dir, "other"));
    assert!(!run_dir.tasks_dir().join("kept.DONE").exists());
    // Done, not "done but unmarked", as `edit --keep`'s dry run shows it.
    assert!(matches!(
        store.recorded(&run_dir, "kept"),
        crate::store::Recorded::Done(_)
    ));
}

#[test]
fn damaged_sidecars_are_found_for_every_task_the_log_knows_unless_time_is_up() {
    use std::sync::atomic::AtomicBool;
    let (_dir, run_dir) = run_dir();
    let mut store = StateStore::load(&run_dir).unwrap();
    for task in ["a", "b", "c"] {
        store
            .write_status(&run_dir, &done(task, "in", stamp(1, "h")))
            .unwrap();
    }
    drop(store);
    // b's sidecar torn in place; c's rewritten whole, longer but sound.
    std::fs::write(run_dir.status_path("b"), "{\"task\": \"b\", \"sta").unwrap();
    let mut c = done("c", "in", stamp(1, "h"));
    c.inputs.insert("more".to_string(), stamp(2, "m"));
    let before = std::fs::metadata(run_dir.status_path("c")).unwrap().len();
    crate::store::sidecar::write_sidecar(&run_dir, &c).unwrap();
    assert!(std::fs::metadata(run_dir.status_path("c")).unwrap().len() > before);
    let store = StateStore::load(&run_dir).unwrap();
    let all = store.damaged_all(&run_dir, &AtomicBool::new(false));
    assert_eq!(all, Some(vec!["b".to_string()]));
    assert_eq!(store.damaged(&run_dir, &["a", "b", "c"]), ["b"]);
    assert!(store.sidecar_damaged(&run_dir, "b"));
    assert!(!store.sidecar_damaged(&run_dir, "c"));
    assert_eq!(store.damaged_all(&run_dir, &AtomicBool::new(true)), None);
}

#[test]
fn a_store_loaded_without_a_listing_asks_the_disk_for_each_marker() {
    let (_dir, run_dir) = run_dir();
    let mut store = StateStore::load(&run_dir).unwrap();
    for task in ["a", "b"] {
        store
            .write_status(&run_dir, &done(task, "in", stamp(1, "h")))
            .unwrap();
    }
    drop(store);
    let listed = StateStore::load(&run_dir).unwrap();
    let unlisted = StateStore::load_listing(&run_dir, false).unwrap();
    let records = |store: &StateStore| {
        let mut all: Vec<String> = store.records().map(|r| format!("{r:?}")).collect();
        all.sort();
        all
    };
    assert_eq!(records(&listed).len(), 2);
    assert_eq!(records(&listed), records(&unlisted));
    for store in [&listed, &unlisted] {
        assert!(store.has_marker(&run_dir, "b"));
        assert!(!store.has_marker(&run_dir, "c"));
    }
    // A marker removed after the load: the listing still has it, the
    // store without one asks the disk, once (its answer stands, as a
    // listing's does).
    std::fs::remove_file(run_dir.done_path("a")).unwrap();
    assert!(listed.has_marker(&run_dir, "a"));
    assert!(!unlisted.has_marker(&run_dir, "a"));
    std::fs::write(run_dir.done_path("a"), "").unwrap();
    assert!(!unlisted.has_marker(&run_dir, "a"));
    // What the store itself writes or removes it knows without a stat.
    unlisted.note_marker("b", false);
    assert!(!unlisted.has_marker(&run_dir, "b"));
    assert!(run_dir.done_path("b").exists());
    // Without a listing, any task may have a sidecar.
    assert!(!listed.had_sidecar("c"));
    assert!(unlisted.had_sidecar("c"));
}

/// Compaction writes each record as a `LogLine` of it would be written,
/// byte for byte, in order of task name, on any number of threads: a
/// success with its sidecar's length, a failure after a success, a
/// failure alone, and a record that holds a `definition` (which the log
/// never does).
#[test]
fn a_compacted_log_is_the_lines_of_the_records_in_order_of_name() {
    let (_dir, run_dir) = run_dir();
    let mut store = StateStore::load(&run_dir).unwrap();
    for i in 0..1500 {
        let task = format!("t{:04}", (i * 7919) % 1500);
        store
            .write_status(&run_dir, &done(&task, "in", stamp(i, "h")))
            .unwrap();
        if i % 3 == 0 {
            let mut failed = done(&task, "in", stamp(i + 1, "h2"));
            failed.state = TaskState::Failed;
            store.write_status(&run_dir, &failed).unwrap();
        }
    }
    let mut alone = done("only_failed", "in", stamp(1, "h"));
    alone.state = TaskState::Failed;
    store.write_status(&run_dir, &alone).unwrap();
    let defined = store.records.get_mut("t0001").unwrap();
    defined.done.as_mut().unwrap().definition = Some("cat in > out".into());
    // The log as the records say it, line by line.
    let mut names: Vec<&String> = store.records.keys().collect();
    names.sort();
    let mut expected = Vec::new();
    for name in names {
        let record = &store.records[name];
        let lines = (record
            .done
            .iter()
            .map(|d| LogLine::status(d).with_bytes(record.sidecar_len)))
        .chain(record.last.iter().map(|l| LogLine::status(l)));
        for line in lines {
            serde_json::to_writer(&mut expected, &line).unwrap();
            expected.push(b'\n');
        }
    }
    assert!(String::from_utf8_lossy(&expected).contains("\"bytes\":"));
    assert!(!String::from_utf8_lossy(&expected).contains("cat in > out"));
    for threads in [1, 4] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| store.compact(&run_dir)).unwrap();
        let written = std::fs::read(run_dir.log_path()).unwrap();
        assert!(written == expected, "{threads} thread(s)");
        assert_eq!(
            store.lines,
            expected.iter().filter(|&&b| b == b'\n').count()
        );
        assert_eq!(store.bytes, expected.len() as u64);
    }
    // What it wrote loads as the records it was written from.
    let loaded = StateStore::load(&run_dir).unwrap();
    assert_eq!(loaded.records.len(), store.records.len());
    assert_eq!(
        input_mtime(&loaded, "t0000", "in"),
        input_mtime(&store, "t0000", "in")
    );
}

/// A task `clean` forgot is known as cleaned until a run of it is
/// recorded, also once the log is compacted.
#[test]
fn a_cleaned_task_stays_cleaned_through_compaction_until_it_runs() {
    let (_dir, run_dir) = run_dir();
    let mut store = StateStore::load(&run_dir).unwrap();
    for task in ["a", "b"] {
        store
            .write_status(&run_dir, &done(task, "in", stamp(1, "h")))
            .unwrap();
        store.forget(&run_dir, task).unwrap();
    }
    assert!(store.was_cleaned("a") && store.was_cleaned("b"));
    store
        .write_status(&run_dir, &done("b", "in", stamp(2, "h")))
        .unwrap();
    assert!(!store.was_cleaned("b"));
    store.compact(&run_dir).unwrap();
    let loaded = StateStore::load(&run_dir).unwrap();
    assert!(loaded.was_cleaned("a"));
    assert!(!loaded.was_cleaned("b"));
    assert!(loaded.record("a").is_none());
    assert_eq!(input_mtime(&loaded, "b", "in"), 2);
}
