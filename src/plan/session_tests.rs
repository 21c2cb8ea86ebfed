//! Tests of opening a session: what an up-to-date certificate's judgement
//! spares, and only while the state is as it was judged.

use super::*;
use crate::plan::location::Location;
use crate::store::{Status, TaskState};

/// A run directory whose one task succeeded, its sidecar since damaged in
/// place (the log still vouches for the run).
fn run_with_damaged_sidecar() -> (tempfile::TempDir, Location) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pipeline.toml"),
        "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\n",
    )
    .unwrap();
    let run_dir = RunDir::open(dir.path()).unwrap();
    std::fs::create_dir_all(run_dir.tasks_dir()).unwrap();
    let mut store = StateStore::load(&run_dir).unwrap();
    store
        .write_status(&run_dir, &Status::new("a", TaskState::Done, "f"))
        .unwrap();
    std::fs::write(run_dir.status_path("a"), "{ torn").unwrap();
    let location = Location {
        run_dir: dir.path().to_path_buf(),
        ..Location::default()
    };
    (dir, location)
}

#[test]
fn a_certified_open_trusts_the_state_only_while_its_mark_is_the_judged_one() {
    let (_dir, location) = run_with_damaged_sidecar();
    let model = ModelChoice::default();
    let open = |certified: Option<StateMark>| {
        let located = location.locate().unwrap();
        let session = match certified {
            Some(mark) => Session::open_certified(located, &model, Lists::Unproduced, mark),
            None => Session::open(located, &model, Lists::Unproduced),
        };
        session.unwrap().damaged_sidecars()
    };
    assert_eq!(open(None), ["a"]);
    // Another command changed the state since the judgement: the
    // session looks as an uncertified one does.
    assert_eq!(open(Some(StateMark::default())), ["a"]);
    // Judged as it is now: the certificate vouched for every sidecar, so
    // none is looked at (a certificate is never judged so over a damaged
    // one: its stat would have moved).
    let mark = location.locate().unwrap().run_dir.state_mark();
    assert!(open(Some(mark)).is_empty());
}
