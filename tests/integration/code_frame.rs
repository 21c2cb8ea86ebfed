//! The line a refusal of the pipeline file shows and the carets under its
//! span, laid out in terminal columns: a CJK character or an emoji two, a
//! combining mark none, a tab expanded to spaces; a line wider than 120
//! columns shown as a window around the span, cut ends marked `…`, its
//! carets stopping at the cut. `col` in `file:line:col` counts characters.
//! A span over several lines shows its first and last line, each with its
//! carets, and `...` between them when lines are left out.

use crate::harness::*;

/// The `line:col` a refused build of `pipeline` points at, the line it
/// shows and the line of carets under it, each as printed.
#[track_caller]
fn frame(pipeline: &str) -> (String, String, String) {
    let p = Project::new(pipeline);
    let run = p.build();
    run.code(2).ran(&[]);
    let lines: Vec<&str> = run.stderr.lines().collect();
    let at = lines[0]
        .strip_prefix("error: pipeline.toml:")
        .and_then(|l| l.split_once(": "))
        .map(|(at, _)| at.to_string())
        .unwrap_or_else(|| panic!("no location:\n{}", run.stderr));
    (at, lines[2].to_string(), lines[3].to_string())
}

/// The columns `text` takes on a terminal (no tabs or controls in it).
fn columns(text: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(text)
}

/// A line of wide characters is cut at 120 terminal columns, not 120
/// characters (it showed 120 CJK characters, 240 columns), and the window
/// starts on a whole character.
#[test]
fn a_line_of_wide_characters_is_cut_at_120_columns() {
    let (at, line, under) = frame(&format!(
        "tasks.t = {{ outputs = [\"o\"], command = \"{}\", bogus = 1 }}\n",
        "計".repeat(80)
    ));
    assert_eq!(at, "1:124");
    assert_eq!(line, format!("1 | …{}\", bogus = 1 }}", "計".repeat(52)));
    assert_eq!(under, format!("  | {}^^^^^", " ".repeat(108)));
    assert!(columns(&line[4..]) <= 120);

    // Emoji take two columns, a letter and its combining accent one.
    let (at, line, under) = frame(&format!(
        "tasks.t = {{ outputs = [\"o\"], command = \"{}{}\", bogus = 1 }}\n",
        "😀".repeat(70),
        "e\u{301}".repeat(10)
    ));
    assert_eq!(at, "1:134", "col counts characters, the accents too");
    assert_eq!(
        line,
        format!(
            "1 | …{}{}\", bogus = 1 }}",
            "😀".repeat(47),
            "e\u{301}".repeat(10)
        )
    );
    assert_eq!(under, format!("  | {}^^^^^", " ".repeat(108)));
}

/// A span that runs past the cut has carets up to the cut and none under
/// the `…` or beyond (under a line of wide characters they ran on for as
/// many columns as the span's characters took, 221 where 109 are shown);
/// the col says where the span starts.
#[test]
fn carets_stop_at_the_cut() {
    let (at, line, under) = frame(&format!(
        "[tasks.t]\noutputs = [\"o\"]\ncommand = \"x\"\nafter = [\"{}\"]\n",
        "計".repeat(100)
    ));
    assert_eq!(at, "4:10");
    assert_eq!(line, format!("4 | after = [\"{}…", "計".repeat(54)));
    assert_eq!(under, format!("  | {}{}", " ".repeat(9), "^".repeat(109)));
    assert_eq!(columns(&line[4..]), 119);
}

/// A span that starts past column 120 is brought into view, after a `…`,
/// the window as full as the line allows; one in the middle of a long
/// line has the line cut on both sides.
#[test]
fn a_span_far_into_a_long_line_is_shown() {
    let x = |n| "x".repeat(n);
    let (at, line, under) = frame(&format!(
        "tasks.t = {{ outputs = [\"o\"], command = \"{}\", bogus = 1 }}\n",
        x(200)
    ));
    assert_eq!(at, "1:244");
    assert_eq!(line, format!("1 | …{}\", bogus = 1 }}", x(105)));
    assert_eq!(under, format!("  | {}^^^^^", " ".repeat(109)));

    let (at, line, under) = frame(&format!(
        "tasks.t = {{ outputs = [\"o\"], command = \"{}\", bogus = 1, prompt = \"{}\" }}\n",
        x(200),
        x(200)
    ));
    assert_eq!(at, "1:244");
    assert_eq!(
        line,
        format!("1 | …{}\", bogus = 1, prompt = \"{}…", x(37), x(57))
    );
    assert_eq!(under, format!("  | {}^^^^^", " ".repeat(41)));
    assert_eq!(columns(&line[4..]), 120);
}

/// An error at the end of a line has one caret just past its last
/// character, on a long line (after the window's last column), a short
/// one and one ending in `\r\n` (the `\r` is no character of the line).
#[test]
fn an_empty_span_at_the_end_of_a_line() {
    for ending in ["\n", "\r\n"] {
        let (at, line, under) = frame(&format!("a = \"{}{ending}", "y".repeat(200)));
        assert_eq!(at, "1:206");
        assert_eq!(line, format!("1 | …{}", "y".repeat(119)));
        assert_eq!(under, format!("  | {}^", " ".repeat(120)));

        let (at, line, under) = frame(&format!(
            "[tasks.t]{ending}outputs = [\"o\"]{ending}command = \"x\"{ending}x{ending}"
        ));
        assert_eq!((at.as_str(), line.as_str()), ("4:2", "4 | x"));
        assert_eq!(under, "  |  ^");

        let (at, line, under) = frame(&format!(
            "[tasks.t]{ending}outputs = [\"o\"]{ending}command = \"x\"{ending}after = [\"zz\"]{ending}"
        ));
        assert_eq!(
            (at.as_str(), line.as_str()),
            ("4:10", "4 | after = [\"zz\"]")
        );
        assert_eq!(under, "  |          ^^^^");
    }
}

/// A tab is shown as the spaces to the next multiple of four columns, so
/// the carets after it and under it line up whatever the terminal's tab
/// stops (a tab in the span had one caret).
#[test]
fn tabs_are_expanded() {
    let (at, line, under) =
        frame("[tasks.t]\noutputs = [\"o\"]\ncommand = \"x\"\nafter = [\"ab\tc\"]\n");
    assert_eq!(at, "4:10");
    assert_eq!(line, "4 | after = [\"ab    c\"]");
    assert_eq!(under, "  |          ^^^^^^^^^");
}

/// A refusal of a value written over several lines has carets under
/// each of its first and last line, `...` for the lines between; the
/// `file:line:col` is the value's start. (Only its first line was shown,
/// one caret under the `[` of an array of nine lines.) `status --json`'s
/// `detail` carries the same lines.
#[test]
fn a_value_over_several_lines_shows_its_first_and_last_line() {
    let pipeline = format!(
        "[tasks.t]\noutputs = [\"o\"]\ncommand = [\n{}]\n",
        "  \"echo a\",\n".repeat(8)
    );
    let p = Project::new(&pipeline);
    let run = p.build();
    run.code(2).ran(&[]);
    let frame: Vec<&str> = run.stderr.lines().skip(1).take(6).collect();
    assert!(
        run.stderr
            .starts_with("error: pipeline.toml:3:11: `command` of task `t`: expected a string"),
        "{}",
        run.stderr
    );
    assert_eq!(
        frame,
        [
            "   |",
            "3  | command = [",
            "   |           ^",
            "...",
            "12 | ]",
            "   | ^",
        ],
        "{}",
        run.stderr
    );
    assert!(run.stderr.lines().nth(7).unwrap().starts_with("hint: "));
    let json = p.run(&["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(doc["error"]["detail"], frame.join("\n"));

    // A string of two lines, its last cut at 120 columns.
    let (at, line, under) = frame_of(&format!(
        "[tasks.t]\noutputs = [\"o\"]\ncommand = \"x\"\ntimeout = \"\"\"\n計 {}\"\"\"\n",
        "y".repeat(200)
    ));
    assert_eq!(at, "4:11");
    assert_eq!(
        line,
        [
            "4 | timeout = \"\"\"".to_string(),
            format!("5 | 計 {}…", "y".repeat(116))
        ]
    );
    assert_eq!(
        under,
        [
            "  |           ^^^".to_string(),
            format!("  | {}", "^".repeat(119))
        ]
    );
}

/// The `line:col` a refused build of `pipeline` points at, then the lines
/// it shows and the lines of carets under them.
#[track_caller]
fn frame_of(pipeline: &str) -> (String, Vec<String>, Vec<String>) {
    let p = Project::new(pipeline);
    let run = p.build();
    run.code(2).ran(&[]);
    let (at, _) = run.stderr["error: pipeline.toml:".len()..]
        .split_once(": ")
        .unwrap_or_else(|| panic!("no location:\n{}", run.stderr));
    let lines: Vec<String> = run
        .stderr
        .lines()
        .skip(2)
        .take_while(|l| !l.starts_with("hint: "))
        .filter(|l| *l != "...")
        .map(str::to_string)
        .collect();
    let shown = lines.iter().step_by(2).cloned().collect();
    let under = lines.iter().skip(1).step_by(2).cloned().collect();
    (at.to_string(), shown, under)
}

/// A key or value thousands of characters long, quoted in the message
/// itself, is cut there as the line under it is: the message stays a
/// line one can read, its closing quote kept; a name as long as names
/// may be is shown whole.
#[test]
fn a_long_key_or_value_in_the_message_is_cut() {
    let key = "k".repeat(5000);
    let p = Project::new(&format!(
        "[tasks.a]\noutputs = [\"o\"]\ncommand = \"true\"\n{key} = 1\n"
    ));
    let run = p.build();
    run.code(2);
    let first = run.stderr.lines().next().unwrap();
    assert!(!first.contains(&"k".repeat(121)), "{first}");
    assert!(
        first.contains(&format!("unknown field `{}…`", "k".repeat(120))),
        "{first}"
    );
    let value = "v".repeat(5000);
    let p = Project::new(&format!(
        "[tasks.a]\noutputs = \"{value}\"\ncommand = \"true\"\n"
    ));
    let run = p.build();
    run.code(2);
    let first = run.stderr.lines().next().unwrap();
    assert!(!first.contains(&"v".repeat(121)), "{first}");
    assert!(first.contains("…\""), "{first}");
}
