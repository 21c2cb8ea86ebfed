//! The text `status` prints with names a terminal does not show one column
//! a character: wide (CJK, fullwidth), combining and right-to-left
//! characters in fan-out keys, names too long for a column; with colour
//! and without.

use unicode_width::UnicodeWidthStr;

use crate::harness::*;

/// A matrix whose keys are wide, combining, right-to-left and plain; every
/// instance fails but `plain`, beside tasks with plain names.
const PIPELINE: &str = r#"
[tasks.outline]
outputs = ["outline.txt"]
command = "echo a > outline.txt"

[tasks.review]
matrix = { who = ["計画_一", "ｆｕｌｌ", "कुकु", "שלום", "plain"] }
outputs = ["r/{{ who }}.txt"]
command = "test {{ who }} = plain && echo > {outputs}"

[tasks.x]
outputs = ["x.txt"]
command = "exit 1"
"#;

/// `text` without its colour escapes.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The terminal column (0-based) each line of a group's body starts its
/// detail at: past the name (what follows the indent and a symbol, up to
/// the first run of two spaces) for a task's line, past the indent for a
/// line under it (`hint:`, `|`). Headers, blank lines and the totals are
/// left out.
fn detail_columns(status: &str) -> Vec<(usize, String)> {
    let mut columns = Vec::new();
    for line in status.lines() {
        if !line.starts_with("  ") {
            continue;
        }
        let body = line.trim_start();
        let at = if body.starts_with("hint:") || body.starts_with("| ") {
            line.len() - body.len()
        } else {
            let indent = line.len() - body.len();
            match body.find("  ") {
                Some(gap) => {
                    let rest = &body[gap..];
                    indent + gap + (rest.len() - rest.trim_start().len())
                }
                None => continue,
            }
        };
        columns.push((line[..at].width(), line.to_string()));
    }
    columns
}

fn assert_one_column(status: &str) {
    let columns = detail_columns(status);
    assert!(columns.len() >= 3, "{status}");
    let first = columns[0].0;
    for (column, line) in &columns {
        assert_eq!(*column, first, "{line:?} is out of line in\n{status}");
    }
}

/// `status` lines up what follows a name by the columns the name takes on
/// a terminal: `review[計画_一]` takes 15, not 11 (its characters), and
/// `review[कुकु]` 10, not 12 (its vowel signs combine). With colour, the
/// state's symbol before a name pushes the hints under it and the fan-out
/// lines along too. (CJK names pushed their detail 4 columns right of the
/// others', combining ones 2 left; in colour, every hint and fan-out line
/// stood 2 columns left of the details.)
#[test]
fn status_lines_up_wide_and_combining_names_by_their_columns() {
    let p = Project::new(PIPELINE);
    p.run(&["build", "-k"]).code(1);
    for args in [
        &["status"][..],
        &["status", "--full"],
        &["--color", "always", "status", "--full"],
    ] {
        let out = plain(&p.run(args).ok().stdout);
        assert!(out.contains("review[計画_一]"), "{out}");
        assert!(out.contains("FAN-OUT"), "{out}");
        assert_one_column(&out);
    }
    // A fan-out's own status lists every instance, lined up too.
    let out = p.run(&["status", "review"]).ok().stdout.clone();
    assert!(out.contains("review[plain]"), "{out}");
    assert_one_column(&out);
}

/// A name wider than the names' column (40 columns) has a line of its
/// own, its detail on the next at the column, which stays as wide as the
/// other names need. (A failed instance with a key of 120 characters
/// pushed every line's detail 130 columns right, past any terminal's
/// edge: each wrapped, and the table read as noise.)
#[test]
fn a_name_too_long_for_the_column_has_a_line_of_its_own() {
    let long = "k".repeat(120);
    let p = Project::new(&format!(
        r#"
[tasks.outline]
outputs = ["outline.txt"]
command = "echo a > outline.txt"

[tasks.m]
matrix = {{ k = ["{long}", "short"] }}
outputs = ["m/{{{{ k }}}}.txt"]
command = "exit 1"
"#
    ));
    p.run(&["build", "-k"]).code(1);
    for args in [&["status"][..], &["--color", "always", "status", "--full"]] {
        let out = plain(&p.run(args).ok().stdout);
        let lines: Vec<&str> = out.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.contains(&long))
            .unwrap_or_else(|| panic!("{out}"));
        // The name alone, then its detail at the column of the others'.
        assert!(
            lines[at].trim_end().ends_with(&format!("m[{long}]")),
            "{out}"
        );
        assert!(lines[at + 1].trim_start().starts_with("exit: "), "{out}");
        let rest: String =
            lines[..at]
                .iter()
                .chain(&lines[at + 1..])
                .fold(String::new(), |mut s, l| {
                    s.push_str(l);
                    s.push('\n');
                    s
                });
        assert_one_column(&rest);
        let column = detail_columns(&rest)[0].0;
        assert!(column <= 2 + 2 + 40 + 2, "{out}");
        assert!(out.contains("m[short]"), "{out}");
    }
}

/// `status TASK` and `explain` show a path a glob matched, and the lines
/// of a definition that changed, with their escapes and right-to-left
/// overrides made visible: a file may be named anything, and a fan-out's
/// item (often a model's answer) lands in its instance's command. (The
/// escape sequences reached the terminal as they were: a name could clear
/// the screen or paint the lines after it; an override turned them
/// backwards.)
#[test]
fn status_and_explain_show_escapes_in_paths_and_items_not_run_them() {
    let p = Project::new(
        r#"
[tasks.gather]
inputs = ["notes/*.md"]
outputs = ["all.txt"]
command = "cat notes/*.md > all.txt"

[tasks.each]
foreach = { file = "list.json" }
outputs = ["each/{{ key }}.txt"]
command = "echo {{ item }} > {outputs}"
"#,
    );
    let evil = "\x1b[2J\x1b[31mred\u{202e}txt";
    p.write(&format!("notes/{evil}.md"), "a\n");
    p.write("list.json", r#"["\u001b[2Jone"]"#);
    p.build().ok();
    p.write("list.json", r#"["\u001b]0;title\u0007two"]"#);
    let shown = [
        p.run(&["status", "gather"]).ok().stdout.clone(),
        p.run(&["explain", "gather"]).ok().stdout.clone(),
        p.run(&["explain", "each[0]"]).ok().stdout.clone(),
    ];
    for out in &shown {
        assert!(!out.contains('\x1b'), "{out:?}");
        assert!(!out.contains('\u{7}'), "{out:?}");
        assert!(!out.contains('\u{202e}'), "{out:?}");
    }
    assert!(
        shown[0].contains("\\u{1b}[2J\\u{1b}[31mred\\u{202e}txt.md"),
        "{}",
        shown[0]
    );
    assert!(shown[1].contains("\\u{1b}[31mred"), "{}", shown[1]);
    assert!(
        shown[2].contains("\\u{1b}]0;title\\u{7}two"),
        "{}",
        shown[2]
    );
}
