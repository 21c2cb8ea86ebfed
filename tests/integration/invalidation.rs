//! Surgical invalidation as a user of make would try it: `clean` of a
//! task, an output, a fan-out or one of its instances, `touch`, and what
//! `status`, `explain` and `build -n` say afterwards.

use crate::harness::*;

/// A file a task no longer in the pipeline once wrote, which the pipeline
/// now reads as a source (kept by hand), is not deleted by `clean` of that
/// task nor by `clean --all`: clean never deletes a source file.
#[test]
fn clean_of_a_removed_task_keeps_what_the_pipeline_now_reads_as_a_source() {
    let p = Project::new(
        "[tasks.old]\noutputs = [\"notes.txt\"]\ncommand = \"echo made > notes.txt\"\n",
    );
    p.build().ok();
    p.write(
        "pipeline.toml",
        "[tasks.b]\ninputs = [\"notes.txt\"]\noutputs = [\"b.txt\"]\ncommand = \"cp notes.txt b.txt\"\n",
    );
    p.write("notes.txt", "kept by hand\n");
    p.build().ok();
    let listed = p.run(&["clean", "old", "--dry-run"]);
    listed.ok().stderr_has(
        "keeping notes.txt: old wrote it, but no task writes it now and the pipeline reads it: it is a source file",
    );
    assert!(!listed.stdout.contains("notes.txt\n"), "{}", listed.stdout);
    let all = p.run(&["clean", "--all", "--dry-run"]);
    all.ok().stderr_has("keeping notes.txt");
    assert!(!all.stdout.contains("notes.txt\n"), "{}", all.stdout);
    p.run(&["clean", "old", "-y"]).ok();
    assert_eq!(p.read("notes.txt"), "kept by hand\n");
    assert!(!p.exists(".planexe/tasks/old.status"));
    p.run(&["build", "-n"]).ok().stderr_has("nothing to do");
}
