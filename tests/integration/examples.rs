//! The root pipeline (the README's main job) and the examples build on a
//! fresh copy, and a second build is a no-op.

use crate::harness::*;

fn copy(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() == ".planexe" {
                continue;
            }
            std::fs::create_dir_all(&target).unwrap();
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_main_job_builds_from_a_fresh_checkout() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = Project::new(&std::fs::read_to_string(repo.join("pipeline.toml")).unwrap());
    std::fs::create_dir_all(p.path("examples/plan")).unwrap();
    std::fs::copy(
        repo.join("examples/plan/brief.md"),
        p.path("examples/plan/brief.md"),
    )
    .unwrap();
    p.build().ok();
    let plan = p.read("out/plan.md");
    assert!(
        plan.starts_with("# Brief: a community solar garden"),
        "{plan}"
    );
    assert!(plan.contains("| 7 | Commission the array"), "{plan}");
    assert!(plan.contains("Risks: 3"), "{plan}");
    p.build().ok().ran(&[]);
}

#[test]
fn the_demo_example_builds() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = Project::new("");
    copy(&repo.join("examples/demo"), p.root());
    p.build().ok().ran(&["outline", "report"]);
    assert_eq!(
        p.read("report.md"),
        "BUILD A HOUSE WITH A GARDEN\nnote: budget is fixed\nnote: the garden faces south\n"
    );
}
