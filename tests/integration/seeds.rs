//! The files a run was given when it was made (`planexe new --input`):
//! recorded in `.planexe/origin.json`.

use crate::harness::*;

/// Reads the plan and a note the run is given.
const READS_NOTE: &str = r#"
[tasks.brief]
inputs = ["plan.txt", "notes/x.md"]
outputs = ["brief.txt"]
command = "cat plan.txt notes/x.md > brief.txt"
"#;

/// The note the run is given.
const NOTE: &str = "# mine\nkeep me\n";

/// A project with [`READS_NOTE`] and a run `runs/a` made with `--input
/// notes/x.md` (and `more`, each with its text).
fn made(more: &[(&str, &str)]) -> Project {
    let p = Project::new(READS_NOTE);
    p.write("notes/x.md", NOTE);
    let mut args = vec![
        "new",
        "runs/a",
        "--plan",
        "A shed.",
        "--input",
        "notes/x.md",
    ];
    for (path, text) in more {
        p.write(path, text);
        args.extend(["--input", path]);
    }
    p.run(&args).ok();
    p
}

#[test]
fn new_records_the_files_it_was_given_in_origin_json() {
    let p = made(&[("data/a.csv", "a,1\n")]);
    let origin: serde_json::Value =
        serde_json::from_str(&p.read("runs/a/.planexe/origin.json")).unwrap();
    let hash = |text: &str| blake3::hash(text.as_bytes()).to_hex().to_string();
    assert_eq!(
        origin["inputs"],
        serde_json::json!([
            {"path": "data/a.csv", "blake3": hash("a,1\n"), "size": 4},
            {"path": "notes/x.md", "blake3": hash(NOTE), "size": NOTE.len()},
        ]),
        "{origin}"
    );
    assert_eq!(origin["plan_blake3"], hash("A shed.\n"), "{origin}");
    // A run given no files says so: none, not unknown.
    let q = Project::new(
        "[tasks.a]\ninputs = [\"plan.txt\"]\noutputs = [\"a\"]\ncommand = \"cp plan.txt a\"\n",
    );
    q.run(&["new", "runs/b", "--plan", "x"]).ok();
    let origin: serde_json::Value =
        serde_json::from_str(&q.read("runs/b/.planexe/origin.json")).unwrap();
    assert_eq!(origin["inputs"], serde_json::json!([]), "{origin}");
}
