//! Pipelines that cannot be built are refused before anything runs, with
//! exit 2, `pipeline.toml:LINE:COL` and a hint.

use crate::harness::*;

#[track_caller]
fn refused(pipeline: &str, location: &str, message: &str) -> Project {
    let p = Project::new(pipeline);
    p.write("in.txt", "x");
    let run = p.build();
    run.code(2).ran(&[]);
    run.stderr_has(&format!("pipeline.toml:{location}: "));
    run.stderr_has(message);
    run.stderr_has("hint:");
    assert!(!p.exists(".planexe/tasks"), "nothing ran or was recorded");
    p
}

#[test]
fn toml_syntax_error() {
    refused(
        "[tasks.a]\ncommand = \"echo\n",
        "2:16",
        "invalid basic string",
    );
}

/// toml's `duplicate key` named no key: the key is named, and a table
/// given twice (the likelier slip) is told apart from a key given twice.
#[test]
fn a_duplicate_key_is_named() {
    refused(
        "[tasks.a]\ncommand = \"true\"\noutputs = [\"x\"]\n[tasks.a]\ncommand = \"false\"\n",
        "4:8",
        "duplicate key `a`",
    )
    .build()
    .stderr_has("hint: the table [tasks.a] is given twice: merge the two into one");
    refused(
        "[tasks.a]\ncommand = \"true\"\ncommand = \"x\"\noutputs = [\"x\"]\n",
        "3:1",
        "duplicate key `command`",
    )
    .build()
    .stderr_has("hint: `command` is given twice in this table: keep one\n");
}

/// `[hooks]` where hooks are an array of tables was told to `write an
/// array here, key = ["a", "b"]`.
#[test]
fn a_table_where_an_array_of_tables_belongs_says_to_double_the_brackets() {
    refused(
        "[tasks.a]\noutputs = [\"a\"]\ncommand = \"true\"\n[hooks]\ncommand = \"echo\"\n",
        "4:1",
        "`[...]` makes one table, and this takes an array of tables",
    )
    .build()
    .stderr_has("hint: write the header with two pairs of brackets, one for each entry, such as [[hooks]]\n");
}

#[test]
fn unknown_key() {
    refused(
        "[tasks.a]\ncommand = \"true\"\ninptus = [\"in.txt\"]\n",
        "3:1",
        "unknown field `inptus`",
    )
    .build()
    .stderr_has("hint: did you mean `inputs`?\n");
    // A section name too; nothing close: no guess.
    refused(
        "[task.a]\ncommand = \"true\"\n",
        "1:2",
        "unknown field `task`",
    )
    .build()
    .stderr_has("hint: did you mean `tasks`?\n");
    let far = refused("[pipeline]\nxyz = 3\n", "2:1", "unknown field `xyz`").build();
    assert!(!far.stderr.contains("did you mean"), "{}", far.stderr);
}

#[test]
fn an_array_where_a_table_belongs_says_so_and_how_to_write_it() {
    // serde alone says "invalid length 2, expected struct ForeachDef with 3
    // elements".
    let p = refused(
        "[tasks.a]\nforeach = [\"x\", \"y\"]\noutputs = [\"{{ key }}\"]\ncommand = \"true\"\n",
        "2:11",
        "`foreach` of task `a`: expected a table, found an array",
    );
    let run = p.build();
    run.stderr_has("hint: write it as foreach = { file = ")
        .stderr_has("matrix = { name = ");
    assert!(!run.stderr.contains("ForeachDef"), "{}", run.stderr);
    // A value of the wrong type is no syntax error, and is named in TOML's
    // terms, not Rust's (`expected i64`).
    let run = refused(
        "[tasks.a]\ncommand = \"true\"\nretries = \"two\"\n",
        "3:11",
        "`retries` of task `a`: expected an integer, found a string \"two\"",
    )
    .build();
    run.stderr_has("hint: write it as retries = 2 (docs/pipeline.md gives every key's type)");
    assert!(!run.stderr.contains("i64"), "{}", run.stderr);
}

/// Every shape error speaks of tables, arrays and values, never of the
/// Rust types behind them (`sequence`, `map`, `struct`, `i64`, `i128`),
/// names the key and whose it is, and shows the key written right.
#[test]
fn a_value_of_the_wrong_shape_is_named_in_toml_terms() {
    const MODEL: &str =
        "[models.m]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"x\"\n";
    for (text, at, says, hint) in [
        (
            "[tasks.a]\noutputs = [\"o\"]\ncommand = \"true\"\nforeach = \"x\"\n".to_string(),
            "4:11",
            "`foreach` of task `a`: expected a table, found a string \"x\"",
            "hint: write it as foreach = { file = ",
        ),
        (
            "pipeline = 3\n[tasks.a]\noutputs = [\"o\"]\ncommand = \"true\"\n".to_string(),
            "1:12",
            "`pipeline`: expected a table, found an integer `3`",
            "hint: write it as [pipeline] with name = ",
        ),
        (
            "[tasks.a]\noutputs = { a = 1 }\ncommand = \"true\"\n".to_string(),
            "2:11",
            "`outputs` of task `a`: expected an array, found a table",
            "hint: write it as outputs = [\"report.md\"]",
        ),
        (
            "[tasks.a]\ninputs = { a = 1 }\noutputs = [\"o\"]\ncommand = \"true\"\n".to_string(),
            "2:10",
            "`inputs` of task `a`: expected an array, found a table",
            "hint: write it as inputs = [\"plan.txt\", \"notes/*.md\"]",
        ),
        (
            "[tasks.a]\noutputs = 3\ncommand = \"true\"\n".to_string(),
            "2:11",
            "`outputs` of task `a`: expected an array, found an integer `3`",
            "hint: write it as outputs = [\"report.md\"]",
        ),
        (
            "[tasks.a]\noutputs = [1]\ncommand = \"true\"\n".to_string(),
            "2:12",
            "an item of `outputs` of task `a`: expected a string, found an integer `1`",
            "hint: write it as outputs = [\"report.md\"]",
        ),
        // Quoted in docs/pipeline.md#refusals.
        (
            "[tasks.a]\ninputs = \"a.txt\"\ncommand = \"true\"\n".to_string(),
            "2:10",
            "`inputs` of task `a`: expected an array, found a string \"a.txt\"",
            "hint: write it as inputs = [\"plan.txt\", \"notes/*.md\"] (docs/pipeline.md gives every key's type)",
        ),
        (
            "[tasks.a]\noutputs = [\"o\"]\ncommand = [\"make\", \"o\"]\n".to_string(),
            "3:11",
            "`command` of task `a`: expected a string, found an array",
            "hint: write it as command = \"make report.md\"",
        ),
        (
            "[pipeline]\njobs = \"4\"\n[tasks.a]\ncommand = \"true\"\n".to_string(),
            "2:8",
            "`jobs` in [pipeline]: expected an integer, found a string \"4\"",
            "hint: write it as jobs = 4",
        ),
        (
            format!("{MODEL}temperature = \"hot\"\n[tasks.a]\noutputs = [\"o\"]\nprompt = \"hi\"\nmodel = \"m\"\n"),
            "5:15",
            "`temperature` of model `m`: expected a number, found a string \"hot\"",
            "hint: write it as temperature = 0.2",
        ),
        (
            "tasks = [1]\n".to_string(),
            "1:9",
            "`tasks`: expected a table, found an array",
            "hint: write it as [tasks.NAME] with outputs = [\"out.md\"] and command = ",
        ),
        (
            format!("{MODEL}extra_body = [1]\n[tasks.a]\noutputs = [\"o\"]\ncommand = \"true\"\n"),
            "5:14",
            "`extra_body` of model `m`: expected a table, found an array",
            "hint: write it as extra_body = { ",
        ),
        (
            "[[hooks]]\nurl = 3\n[tasks.a]\noutputs = [\"o\"]\ncommand = \"true\"\n".to_string(),
            "2:7",
            "`url` of hook 1: expected a string, found an integer `3`",
            "hint: write it as url = \"https://",
        ),
        (
            "[models.m]\nmodel = \"x\"\n[tasks.a]\noutputs = [\"o\"]\ncommand = \"true\"\n".to_string(),
            "1:1",
            "model `m` has no `provider`, which it needs",
            "hint: add provider = \"openai\"",
        ),
        (
            "[[tasks.a]]\noutputs = [\"o\"]\ncommand = \"true\"\n".to_string(),
            "1:1",
            "`[[...]]` makes an array of tables, and this takes one table",
            "hint: write the header with one pair of brackets, such as [tasks.NAME]",
        ),
    ] {
        let run = refused(&text, at, says).build();
        run.stderr_has(hint);
        for rust in ["struct", "sequence", "`map`", " map,", "i64", "i128"] {
            assert!(!run.stderr.contains(rust), "{rust}: {}", run.stderr);
        }
    }
}

/// An integer past 64 bits was told in the toml crate's words
/// (`invalid type: integer `...` as i128, expected any valid TOML value`):
/// it is out of range, of a key named, written right in the hint.
#[test]
fn an_integer_out_of_range_names_the_key_and_the_range() {
    for (text, at, says, hint) in [
        (
            "[tasks.a]\noutputs = [\"o\"]\ncommand = \"true\"\ntimeout = 99999999999999999999\n",
            "4:11",
            "`timeout` of task `a`: 99999999999999999999 is out of range: a TOML integer is at most 9223372036854775807",
            "hint: write it as timeout = \"10m\" (a duration: ",
        ),
        (
            "[pipeline]\njobs = 99999999999999999999\n[tasks.a]\noutputs = [\"o\"]\ncommand = \"true\"\n",
            "2:8",
            "`jobs` in [pipeline]: 99999999999999999999 is out of range",
            "hint: write it as jobs = 4",
        ),
        (
            "[tasks.a]\noutputs = [\"o\"]\ncommand = \"true\"\nmin_bytes = -99999999999999999999\n",
            "4:13",
            "`min_bytes` of task `a`: -99999999999999999999 is out of range: a TOML integer is at least -9223372036854775808",
            "hint: write it as min_bytes = 1",
        ),
    ] {
        let run = refused(text, at, says).build();
        run.stderr_has(hint);
        for rust in ["i128", "i64", "any valid TOML value"] {
            assert!(!run.stderr.contains(rust), "{rust}: {}", run.stderr);
        }
    }
}

#[test]
fn missing_input_that_no_task_produces() {
    refused(
        "[tasks.a]\ninputs = [\"in.txt\", \"nope.txt\"]\noutputs = [\"o\"]\ncommand = \"true\"\n",
        "2:21",
        "input `nope.txt` of task `a` does not exist and no task produces it",
    );
    // What it most likely meant: an output of a close name, or a task of
    // that very name (it said to create the file, or a task making it).
    const A: &str = "[tasks.a]\noutputs = [\"report.md\"]\ncommand = \"true\"\n";
    refused(
        &format!("{A}[tasks.b]\ninputs = [\"reprot.md\"]\noutputs = [\"b\"]\ncommand = \"true\"\n"),
        "5:11",
        "input `reprot.md` of task `b` does not exist",
    )
    .build()
    .stderr_has("hint: did you mean `report.md`, which task `a` produces?\n");
    refused(
        &format!("{A}[tasks.b]\ninputs = [\"a\"]\noutputs = [\"b\"]\ncommand = \"true\"\n"),
        "5:11",
        "input `a` of task `b` does not exist",
    )
    .build()
    .stderr_has("hint: `a` is a task, not a file: to run after it, write after = [\"a\"]; to read what it writes, name its outputs: inputs = [\"report.md\"]\n");
    // Never one of the task's own outputs (a deleted `plan.txt` was told
    // `did you mean a.txt, which task a produces?`, by a itself).
    refused(
        "[tasks.a]\ninputs = [\"plan.txt\"]\noutputs = [\"a.txt\"]\ncommand = \"true\"\n",
        "2:11",
        "input `plan.txt` of task `a` does not exist",
    )
    .build()
    .stderr_has("hint: create plan.txt in ");
    // A model's name mistyped gets the closest too.
    let model = "[models.local]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n";
    refused(
        &format!("{model}[tasks.a]\noutputs = [\"a.txt\"]\nmodel = \"locl\"\nprompt = \"hi\"\n"),
        "7:9",
        "unknown model `locl`",
    )
    .build()
    .stderr_has("hint: did you mean `local`? models are: local\n");
}

#[test]
fn two_producers_of_one_output() {
    refused(
        "[tasks.a]\noutputs = [\"o\"]\ncommand = \"true\"\n[tasks.b]\noutputs = [\"o\"]\ncommand = \"true\"\n",
        "5:12",
        "output `o` is produced by two tasks: `a` and `b`",
    );
}

#[test]
fn a_cycle_is_printed() {
    let p = refused(
        "[tasks.a]\ninputs = [\"b.txt\"]\noutputs = [\"a.txt\"]\ncommand = \"true\"\n[tasks.b]\ninputs = [\"a.txt\"]\noutputs = [\"b.txt\"]\ncommand = \"true\"\n",
        "5:8",
        "cycle: ",
    );
    let run = p.build();
    assert!(
        run.stderr.contains("cycle: a -> b -> a") || run.stderr.contains("cycle: b -> a -> b"),
        "{}",
        run.stderr
    );
}

#[test]
fn after_naming_an_unknown_task() {
    refused(
        "[tasks.a]\ncommand = \"true\"\n[tasks.b]\ncommand = \"true\"\nafter = [\"outlin\"]\n",
        "5:10",
        "`after` names unknown task `outlin`",
    );
}

#[test]
fn after_naming_a_mistyped_task_gets_the_closest_one() {
    let p = Project::new(
        "[tasks.outline]\ncommand = \"true\"\n[tasks.b]\ncommand = \"true\"\nafter = [\"outlin\"]\n",
    );
    p.build()
        .code(2)
        .stderr_has("hint: did you mean `outline`?\nhint: tasks are: b, outline");
}

/// What would leave a task without an instance, or send a model nothing,
/// is refused as an empty command is (they were taken: a matrix variable
/// with no values made its task vanish, `nothing to do`, exit 0).
#[test]
fn an_empty_matrix_variable_or_prompt_is_refused() {
    const MODEL: &str =
        "[models.m]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n";
    refused(
        "[tasks.m]\nmatrix = { a = [\"x\"], b = [] }\noutputs = [\"o/{{ a }}{{ b }}\"]\ncommand = \"true\"\n",
        "2:10",
        "matrix variable `b` of task `m` has no values, so the task would have no instance",
    );
    refused(
        &format!("{MODEL}[tasks.a]\noutputs = [\"a.txt\"]\nmodel = \"m\"\nprompt = \"  \\n\"\n"),
        "8:10",
        "the prompt of task `a` is empty",
    );
    let p = Project::new(&format!(
        "{MODEL}[tasks.a]\noutputs = [\"a.txt\"]\nmodel = \"m\"\nprompt_file = \"p.md\"\n"
    ));
    p.write("p.md", "\n");
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:8:15: the prompt file p.md of task `a` is empty");
    refused(
        &format!("{MODEL}[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo > a.txt\"\n[tasks.a.judge]\nmodel = \"m\"\nprompt = \"\"\n"),
        "10:10",
        "the judge prompt of task `a` is empty",
    );
}

/// A line break in a path broke the lines planexe prints: `clean
/// --dry-run` listed `a` and `b.txt` for the output `a\nb.txt`, for
/// `xargs rm` to delete the wrong files.
#[test]
fn a_control_character_in_a_path_is_refused() {
    refused(
        "[tasks.a]\noutputs = [\"a\\nb.txt\"]\ncommand = \"true\"\n",
        "2:12",
        "output of task `a`: a\\nb.txt contains the control character \\n, which planexe does not take in a file name",
    );
    refused(
        "[tasks.a]\ninputs = [\"in\\t.txt\"]\noutputs = [\"a.txt\"]\ncommand = \"true\"\n",
        "2:11",
        "contains the control character \\t",
    );
}

#[test]
fn neither_command_nor_prompt() {
    refused(
        "[tasks.a]\noutputs = [\"o\"]\n",
        "1:8",
        "task `a` has neither `command` nor `prompt`",
    );
}

#[test]
fn both_command_and_prompt() {
    refused(
        "[tasks.a]\ncommand = \"true\"\nprompt = \"hi\"\n",
        "3:10",
        "task `a` has both `command` and `prompt`",
    );
}

/// A task that runs a command and names a prompt file is told so in the
/// key the user wrote (`prompt_file`), not in one it does not hold.
#[test]
fn both_command_and_prompt_file_names_prompt_file() {
    let p = refused(
        "[tasks.a]\noutputs = [\"o\"]\ncommand = \"true\"\nprompt_file = \"p.txt\"\n",
        "4:15",
        "task `a` has both `command` and `prompt_file`",
    );
    p.write(
        "pipeline.toml",
        "[tasks.a]\noutputs = [\"o\"]\ncommand = \"true\"\nprompt = \"hi\"\nprompt_file = \"p.txt\"\n",
    );
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:4:10: task `a` has `command`, `prompt` and `prompt_file`");
}

/// `rescue` on a prompt task is refused for what it is, not for a
/// missing check that would not make it mean anything.
#[test]
fn rescue_on_a_prompt_task_is_refused_as_such() {
    refused(
        "[tasks.a]\noutputs = [\"o\"]\nprompt_file = \"p.txt\"\nrescue = true\n",
        "4:10",
        "`rescue` applies to command tasks only",
    );
}

#[test]
fn a_task_name_that_is_not_an_identifier() {
    refused(
        "[tasks.\"my task\"]\ncommand = \"true\"\n",
        "1:8",
        "task name `my task` is not a plain identifier",
    );
}

#[test]
fn absolute_and_escaping_paths() {
    refused(
        "[tasks.a]\noutputs = [\"/tmp/x\"]\ncommand = \"true\"\n",
        "2:12",
        "is an absolute path",
    );
    refused(
        "[tasks.a]\ninputs = [\"../in.txt\"]\ncommand = \"true\"\n",
        "2:11",
        "uses `..`",
    );
}

/// Where many outputs are to be written in one folder, the folder is
/// listed once rather than each output looked at: the refusal is the same,
/// at the same place, before anything runs.
#[test]
fn a_symlink_among_many_outputs_of_one_folder_is_refused_before_anything_runs() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "s").unwrap();
    let toml: String = (0..100)
        .map(|i| {
            format!("[tasks.t{i:03}]\noutputs = [\"out/t{i:03}.txt\"]\ncommand = \"echo x > out/t{i:03}.txt\"\n\n")
        })
        .collect();
    let p = Project::new(&toml);
    std::fs::create_dir(p.path("out")).unwrap();
    // Written by hand before: plain files are no obstacle.
    p.write("out/t010.txt", "mine\n");
    std::os::unix::fs::symlink(outside.path().join("secret"), p.path("out/t050.txt")).unwrap();
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:202:12")
        .stderr_has("output of task `t050`")
        .stderr_has("is a symlink to");
    assert!(!p.exists("out/t000.txt"), "a task ran");
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret")).unwrap(),
        "s"
    );
    // Without the link, everything builds (the file written by hand is
    // its task's to replace).
    std::fs::remove_file(p.path("out/t050.txt")).unwrap();
    p.build().ok();
    assert_eq!(p.read("out/t099.txt"), "x\n");
}

#[test]
fn a_symlink_pointing_outside() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "s").unwrap();
    let p = Project::new(
        "[tasks.a]\ninputs = [\"link/secret\"]\noutputs = [\"o\"]\ncommand = \"true\"\n",
    );
    std::os::unix::fs::symlink(outside.path(), p.path("link")).unwrap();
    let run = p.build();
    run.code(2)
        .stderr_has("pipeline.toml:2:11")
        .stderr_has("outside the run directory");

    let q = Project::new("[tasks.a]\noutputs = [\"out.txt\"]\ncommand = \"echo x > out.txt\"\n");
    std::os::unix::fs::symlink(outside.path().join("secret"), q.path("out.txt")).unwrap();
    q.build().code(2).stderr_has("is a symlink to");
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret")).unwrap(),
        "s"
    );

    // A dangling link that leads out, directly or through another link, is
    // refused too: it was taken, and its task failed with `create the
    // missing input`, whose file was then refused. One that leads inside
    // still counts as existing.
    let d =
        Project::new("[tasks.a]\ninputs = [\"link.txt\"]\noutputs = [\"o\"]\ncommand = \"true\"\n");
    std::os::unix::fs::symlink(outside.path().join("later.txt"), d.path("hop.txt")).unwrap();
    std::os::unix::fs::symlink("hop.txt", d.path("link.txt")).unwrap();
    d.build()
        .code(2)
        .ran(&[])
        .stderr_has("pipeline.toml:2:11: input of task `a`: link.txt is a symlink to ")
        .stderr_has("later.txt, outside the run directory");
    std::fs::remove_file(d.path("hop.txt")).unwrap();
    std::os::unix::fs::symlink("sub/../later.txt", d.path("hop.txt")).unwrap();
    d.run(&["build", "-n"]).code(0).stdout_has("a: never built");
}

/// A path the pipeline names that goes through a regular file (`f/x.txt`
/// beside a file `f`) was refused with the OS's words alone, "Not a
/// directory (os error 20)" (and, for an input, a hint to "name files
/// inside the run directory", which it is). Each now names the file in
/// the way, at the key's place, with what to do.
#[test]
fn a_path_through_a_file_names_the_file_in_the_way() {
    let cases = [
        (
            "[tasks.a]\ninputs = [\"f/x.txt\"]\noutputs = [\"o\"]\ncommand = \"true\"\n",
            "2:11",
            "input of task `a`: f is a file, not a folder",
        ),
        (
            "[tasks.a]\noutputs = [\"f/x.txt\"]\ncommand = \"true\"\n",
            "2:12",
            "output of task `a`: f is a file, not a folder",
        ),
        (
            "[models.m]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"x\"\n[tasks.a]\noutputs = [\"o\"]\nprompt_file = \"f/p.md\"\nmodel = \"m\"\n",
            "7:15",
            "prompt file `f/p.md` of task `a`: cannot read ",
        ),
        (
            "[models.m]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"x\"\n[tasks.a]\noutputs = [\"o\"]\nprompt = \"hi\"\nschema = \"f/s.json\"\nmodel = \"m\"\n",
            "8:10",
            "schema `f/s.json` of task `a`: cannot read ",
        ),
    ];
    for (pipeline, location, message) in cases {
        let p = Project::new(pipeline);
        p.write("f", "a file\n");
        for args in [&["build"][..], &["status"]] {
            let run = p.run(args);
            refused_at(&run, location, message);
            run.stderr_has("f is a file, not a folder")
                .stderr_has("hint: a file stands where a folder on the way to f/");
            assert!(!run.stderr.contains("os error"), "{}", run.stderr);
        }
        assert_eq!(p.read("f"), "a file\n");
    }
    // The pipeline file itself, through -f: the file in the way is named
    // as the path was given (`f`), not by its absolute path, as for
    // `$PLANEXE_PIPELINE` (docs/pipeline.md#refusals).
    let p = Project::new("[tasks.a]\noutputs = [\"o\"]\ncommand = \"true\"\n");
    p.write("f", "a file\n");
    let run = p.run(&["build", "-f", "f/pipeline.toml"]);
    run.code(2)
        .stderr_has("error: cannot read pipeline file f/pipeline.toml: f is a file, not a folder\n")
        .stderr_has("hint: pass -f FILE");
    assert!(!run.stderr.contains("os error"), "{}", run.stderr);
}

/// `$PLANEXE_PIPELINE` naming a pipeline file through a regular file
/// (`notes.txt/pipeline.toml` beside a file `notes.txt`) was refused as
/// "not found", where `-f` with the same path names the file in the way.
/// It now says what `-f` says, in `$PLANEXE_PIPELINE`'s terms, exit 2.
#[test]
fn planexe_pipeline_through_a_file_names_the_file_in_the_way() {
    let p = Project::new("[tasks.a]\noutputs = [\"o\"]\ncommand = \"echo o > o\"\n");
    p.write("notes.txt", "a file\n");
    let absolute = p.path("notes.txt/pipeline.toml");
    let absolute = absolute.to_str().unwrap();
    let full = format!("{} is a file, not a folder", p.path("notes.txt").display());
    for (named, blocked) in [
        (
            "notes.txt/pipeline.toml",
            "notes.txt is a file, not a folder",
        ),
        (absolute, full.as_str()),
    ] {
        for args in [&["build"][..], &["status"]] {
            let out = p
                .command(args)
                .env("PLANEXE_PIPELINE", named)
                .output()
                .unwrap();
            let run = Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            };
            run.code(2)
                .stderr_has(&format!(
                    "error: cannot read pipeline file {named} (named by $PLANEXE_PIPELINE): {blocked}\n"
                ))
                .stderr_has("hint: set PLANEXE_PIPELINE to an existing pipeline file");
            for wrong in ["not found", "os error"] {
                assert!(!run.stderr.contains(wrong), "{args:?}: {}", run.stderr);
            }
        }
    }
    assert_eq!(p.read("notes.txt"), "a file\n");
    assert!(!p.exists("o") && !p.exists(".planexe/pipeline"));
}

/// A folder named on the command line that goes through a regular file
/// (`-C f/run` beside a file `f`) was refused with the OS's words alone
/// ("Not a directory (os error 20)", or a temporary file's name for
/// `report -o`), and some with no hint. Each now names the file in the
/// way and says what to do, with exit status 2, and writes nothing.
#[test]
fn a_command_line_path_through_a_file_names_the_file_in_the_way() {
    let p = Project::new("[tasks.a]\noutputs = [\"o\"]\ncommand = \"echo o > o\"\n");
    p.write("f", "a file\n");
    p.build().ok();
    let cases: [(&[&str], &str, &str); 7] = [
        (
            &["-C", "f/run", "build"],
            "cannot use run directory ",
            "hint: pass an existing folder to -C",
        ),
        (
            &["-C", "f", "status"],
            "/f is not a folder",
            "hint: pass an existing folder to -C",
        ),
        (
            &["new", "runs/x", "--plan-file", "f/plan.txt"],
            "cannot use f/plan.txt as the plan: ",
            "hint: pass --plan-file FILE",
        ),
        (
            &["new", "f/run", "--plan", "Plan it"],
            "cannot make run directory f/run: ",
            "hint: a file stands where a folder on the way to f/run should be",
        ),
        (
            &["init", "f/mine"],
            "cannot write a pipeline in ",
            "hint: name a folder",
        ),
        (
            &["mcp", "--root", "f/runs"],
            "cannot serve runs from ",
            "hint: pass an existing folder to --root",
        ),
        (
            &["report", "-o", "f/report.html"],
            "cannot write the report to f/report.html: ",
            "hint: a file stands where a folder on the way to f/report.html should be",
        ),
    ];
    for (args, message, hint) in cases {
        let run = p.run(args);
        run.code(2).stderr_has(message).stderr_has(hint);
        if message.ends_with(' ') {
            run.stderr_has("f is a file, not a folder");
        }
        for wrong in ["os error", ".planexe-tmp"] {
            assert!(!run.stderr.contains(wrong), "{args:?}: {}", run.stderr);
        }
        assert_eq!(p.read("f"), "a file\n");
        assert!(!p.exists("runs"));
    }
    assert_eq!(p.read("o"), "o\n");
}

/// `planexe mcp --root runs` (README, docs/mcp.md) where `runs` does not
/// exist said the OS's words ("failed to canonicalize path ...: No such
/// file or directory (os error 2)"); it now says the folder does not
/// exist and how to make it, exit 2.
#[test]
fn mcp_with_a_missing_root_says_it_does_not_exist() {
    let p = Project::new("[tasks.a]\noutputs = [\"o\"]\ncommand = \"echo o > o\"\n");
    let run = p.run(&["mcp", "--root", "runs"]);
    run.code(2)
        .stderr_has("error: cannot serve runs from ")
        .stderr_has("runs: it does not exist\n")
        .stderr_has("hint: pass an existing folder to --root (make it first, with mkdir -p)");
    assert!(!run.stderr.contains("os error"), "{}", run.stderr);
    assert!(!p.exists("runs"));
}

#[test]
fn a_missing_pipeline_file() {
    let p = Project::new("");
    std::fs::remove_file(p.path("pipeline.toml")).unwrap();
    p.build()
        .code(2)
        .stderr_has("pipeline file pipeline.toml not found");
}

/// A missing `-f FILE` was told `run planexe in a directory with a
/// pipeline.toml, or pass -f FILE`, to a user who had passed one: with
/// `-C run -f ../pipeline.toml` (a path from the run directory, as an easy
/// slip in a Makefile), the path meant is given.
#[test]
fn a_missing_f_file_says_where_it_was_looked_for() {
    let p = Project::new("[tasks.a]\noutputs = [\"a\"]\ncommand = \"touch a\"\n");
    std::fs::create_dir(p.path("run")).unwrap();
    let root = p.path("").canonicalize().unwrap();
    let run = p.run(&["-C", "run", "-f", "../pipeline.toml", "build"]);
    run.code(2)
        .stderr_has("error: pipeline file ../pipeline.toml (-f) not found: there is no ")
        .stderr_has(&format!(
            "hint: -f is a path from the current folder, not from the run directory: pass -f {}/pipeline.toml\n",
            root.display()
        ));
    assert!(!run.stderr.contains("or pass -f FILE"), "{}", run.stderr);
    p.run(&["-f", "nope.toml", "build"])
        .code(2)
        .stderr_has("pipeline file nope.toml (-f) not found")
        .stderr_has("hint: check the path given to -f: it is read from the current folder");
}

/// Run from a folder inside a run (its `out/`), a command says which
/// folder above is the run, as git and cargo would find it; it does not
/// take it. The hint gives back the command the user ran, with `-C`.
#[test]
fn a_command_run_inside_a_run_names_the_run_above() {
    let p = Project::new(
        "[tasks.a]\noutputs = [\"out/deep/a.txt\"]\ncommand = \"echo a > out/deep/a.txt\"\n",
    );
    std::fs::create_dir_all(p.path("out/deep")).unwrap();
    p.build().ok();
    for (dir, up) in [("out", ".."), ("out/deep", "../..")] {
        for (args, again) in [
            (&["status"][..], format!("planexe status -C {up}")),
            (&["build", "a"], format!("planexe build -C {up} a")),
            (
                &["--color", "never", "explain", "out/deep/a.txt"],
                format!("planexe --color never explain -C {up} out/deep/a.txt"),
            ),
        ] {
            let out = p.command(args).current_dir(p.path(dir)).output().unwrap();
            assert_eq!(out.status.code(), Some(2));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(&format!(
                    "hint: this folder is inside {up}, a run directory: pass -C {up} (`{again}`)\n"
                )),
                "{args:?}: {stderr}"
            );
        }
    }
    // Named with -C, the folder is the run directory asked for.
    p.run(&["-C", "out", "status"])
        .code(2)
        .stderr_has("hint: run planexe in a directory with a pipeline.toml, or pass -f FILE");
}

#[test]
fn bad_timeouts_and_jobs() {
    refused(
        "[pipeline]\ntimeout = \"soon\"\n[tasks.a]\ncommand = \"true\"\n",
        "2:11",
        "invalid timeout",
    );
    refused(
        "[pipeline]\njobs = 0\n[tasks.a]\ncommand = \"true\"\n",
        "2:8",
        "`jobs` must be at least 1",
    );
}

/// An empty or blank `[pipeline] name` would title the report, the JUnit
/// suite and `status --json` with nothing.
#[test]
fn an_empty_pipeline_name_is_refused() {
    for name in ["\"\"", "\"  \""] {
        refused(
            &format!("[pipeline]\nname = {name}\n[tasks.a]\ncommand = \"true\"\n"),
            "2:8",
            "`name` is empty",
        )
        .build()
        .stderr_has("hint: name the pipeline, such as name = \"plan\"");
    }
}

#[test]
fn usage_errors_exit_2() {
    let p = demo();
    p.run(&["build", "--no-such-flag"]).code(2);
    p.run(&["build", "-j", "0"]).code(2);
    p.run(&["frobnicate"]).code(2);
    p.run(&["--help"]).ok();
}

#[test]
fn absurd_timeouts_are_refused_not_crashed_on() {
    refused(
        "[tasks.a]\ncommand = \"true\"\ntimeout = 9223372036854775807\n",
        "3:11",
        "at most 365 days",
    );
    refused(
        "[tasks.a]\ncommand = \"true\"\ntimeout = 1e300\n",
        "3:11",
        "a timeout can be at most 365 days",
    );
}

/// The whole error, with the run directory's path taken out.
fn stderr_of(p: &Project, run: &Run) -> String {
    let root = p.root().canonicalize().unwrap();
    run.stderr.replace(&root.display().to_string(), "[RUN]")
}

/// Writes `bytes` as the pipeline file and builds.
fn build_bytes(bytes: &[u8]) -> (Project, Run) {
    let p = Project::new("");
    std::fs::write(p.path("pipeline.toml"), bytes).unwrap();
    p.write("in.txt", "x");
    let run = p.build();
    (p, run)
}

#[test]
fn issue_14_a_pipeline_file_that_is_not_utf8_is_placed() {
    let (p, run) = build_bytes(b"[tasks.a]\ncommand = \"tr\xff\"\n");
    run.code(2);
    assert_eq!(
        stderr_of(&p, &run),
        "error: pipeline.toml:2:14: the file is not UTF-8: byte 0xFF at offset 23 cannot start or continue a character\n  |\n2 | command = \"tr\u{FFFD}\"\n  |              ^\nhint: save the file as UTF-8 (for example `iconv -f latin1 -t utf-8`); paths and strings in it must be UTF-8 too\n"
    );
    // Inside a path, the same.
    let (_, run) =
        build_bytes(b"[tasks.a]\ninputs = [\"in.txt\", \"caf\xe9.txt\"]\ncommand = \"true\"\n");
    run.code(2)
        .stderr_has("pipeline.toml:2:25: the file is not UTF-8: byte 0xE9")
        .stderr_has("hint: save the file as UTF-8");
}

#[test]
fn issue_14_binary_garbage_is_said_to_look_binary() {
    let mut garbage = b"\x7fELF\x02\x01\x01\x00\x00".to_vec();
    garbage.extend((0..=255u8).rev());
    let (_, run) = build_bytes(&garbage);
    run.code(2)
        .stderr_has("pipeline.toml:1:")
        .stderr_has("the file is not UTF-8")
        .stderr_has("hint: this looks like a binary file, not a pipeline");
    // Valid UTF-8, but binary: the TOML error gets the same hint, and the
    // control characters never reach the terminal.
    let (_, run) = build_bytes(b"[tasks.a]\ncommand = \"\x1b[31m\x00\"\n");
    run.code(2)
        .stderr_has("pipeline.toml:2:12: ")
        .stderr_has("hint: this looks like a binary file, not a pipeline");
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
}

#[test]
fn issue_14_a_pipeline_file_that_is_a_folder() {
    let p = Project::new("");
    std::fs::create_dir(p.path("pipes")).unwrap();
    p.run(&["-f", "pipes", "build"])
        .code(2)
        .stderr_has("error: cannot read pipeline file pipes: it is a folder, not a file")
        .stderr_has("hint: pass -f FILE");
}

#[test]
fn issue_14_a_300_byte_task_name_is_refused_at_load() {
    let long = "a".repeat(300);
    let p = refused(
        &format!("[tasks.{long}]\ncommand = \"true\"\n"),
        "1:8",
        "task name `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…` is 300 bytes long; names are at most 200",
    );
    p.build()
        .stderr_has("hint: a task's name names its files under .planexe/tasks/");
    // The ceiling itself works on disk.
    let name = "b".repeat(200);
    let p = Project::new(&format!(
        "[tasks.{name}]\noutputs = [\"o\"]\ncommand = \"echo > o\"\n"
    ));
    p.build().ok().ran(&[&name]);
    assert!(p.exists(&format!(".planexe/tasks/{name}.DONE")));
}

#[test]
fn issue_14_errors_that_had_no_hint() {
    refused(
        "[tasks.a]\ninputs = [\"o\"]\noutputs = [\"o\"]\ncommand = \"true\"\n",
        "2:11",
        "task `a` reads its own output `o`",
    )
    .build()
    .stderr_has("hint: a task cannot read what it writes");
    refused(
        "[tasks.a]\noutputs = [\"o\", \"./o\"]\ncommand = \"true\"\n",
        "2:17",
        "task `a` lists output `o` twice",
    );
    refused(
        "[tasks.a]\ncommand = \" \"\n",
        "2:11",
        "task `a` has an empty command",
    );
    refused(
        "[tasks.a]\ncommand = \"true\"\nafter = [\"a\"]\n",
        "3:10",
        "task `a` lists itself in `after`",
    );
    refused(
        "[tasks.a]\ninputs = [\"x/{a,\"]\ncommand = \"true\"\n",
        "2:11",
        "bad glob pattern",
    );
}

const MODEL: &str =
    "[models.m]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"x\"\n";

#[test]
fn issue_14_a_schema_that_is_not_json_has_a_hint() {
    let p = Project::new(&format!(
        "{MODEL}[tasks.a]\noutputs = [\"o\"]\nprompt = \"hi\"\nmodel = \"m\"\nschema = \"s.json\"\n"
    ));
    p.write("s.json", "nope");
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:9:10: schema s.json:1:2: not JSON")
        .stderr_has("hint: a schema file holds one JSON Schema document");
}

#[test]
fn issue_14_retries_out_of_range() {
    for retries in ["-1", "101", "9223372036854775807"] {
        refused(
            &format!("{MODEL}[tasks.a]\noutputs = [\"o\"]\nprompt = \"hi\"\nmodel = \"m\"\nretries = {retries}\n"),
            "9:11",
            "`retries` must be between 0 and 100",
        );
    }
}

#[test]
fn issue_14_timeouts_that_overflow_are_refused() {
    for (timeout, message) in [
        ("\"99999999999999999999y\"", "at most 365 days"),
        ("\"400days\"", "at most 365 days"),
        // humantime itself panics on this one (a sum of exactly u64::MAX
        // seconds); found by the fuzz harness.
        (
            "\"18446744073709551615s 999999999ns 1ns\"",
            "at most 365 days",
        ),
        ("1e-300", "longer than zero"),
        // A number of seconds past the ceiling is too long, not "not positive".
        ("31536000.5", "a timeout can be at most 365 days"),
        ("1e300", "a timeout can be at most 365 days"),
        ("-5", "invalid timeout -5"),
        ("\"0s\"", "longer than zero"),
        (
            "\"soon\"",
            "invalid timeout \"soon\": expected a number and a unit, such as \"90s\"",
        ),
    ] {
        refused(
            &format!("[tasks.a]\ncommand = \"true\"\ntimeout = {timeout}\n"),
            "3:11",
            message,
        );
    }
}

/// A pipeline in `pipes/`, a run directory `run/`, and a secret in
/// `outside/`, beside both.
fn confined(task: &str) -> (Project, Run) {
    let p = Project::new("");
    p.write("outside/secret.txt", "SECRET");
    p.write("run/in.txt", "x");
    p.write("pipes/ok.md", "hello");
    p.write("run/ok.json", "{\"type\": \"object\"}");
    p.write(
        "pipes/pipeline.toml",
        &format!(
            "{MODEL}[tasks.a]\ninputs = [\"in.txt\"]\noutputs = [\"o\"]\nmodel = \"m\"\n{task}"
        ),
    );
    let run = p.run(&["-C", "run", "-f", "pipes/pipeline.toml", "build", "-n"]);
    (p, run)
}

#[test]
fn issue_14_prompt_files_and_schemas_stay_beside_the_pipeline_or_in_the_run_directory() {
    let (p, run) = confined("prompt_file = \"../outside/secret.txt\"\n");
    run.code(2);
    assert_eq!(
        stderr_of(&p, &run),
        "error: pipes/pipeline.toml:9:15: prompt file `../outside/secret.txt` of task `a`: [RUN]/outside/secret.txt lies outside the pipeline file's folder and the run directory\n  |\n9 | prompt_file = \"../outside/secret.txt\"\n  |               ^^^^^^^^^^^^^^^^^^^^^^^\nhint: a prompt task reads only files in the pipeline file's folder or the run directory (symlinks resolved), as its contents go to the model: move or copy the file there\n"
    );
    let (_, run) = confined("prompt = \"hi\"\nschema = \"/etc/passwd\"\n");
    run.code(2)
        .stderr_has(
            "pipes/pipeline.toml:10:10: schema `/etc/passwd` of task `a`: /etc/passwd lies outside",
        )
        .stderr_has("hint: ");
    // A symlink beside the pipeline that leads out is refused too.
    let (p, _) = confined("prompt_file = \"link.md\"\n");
    std::os::unix::fs::symlink(p.path("outside/secret.txt"), p.path("pipes/link.md")).unwrap();
    let run = p.run(&["-C", "run", "-f", "pipes/pipeline.toml", "build", "-n"]);
    run.code(2).stderr_has("outside/secret.txt lies outside");
    assert!(!run.stderr.contains("SECRET") && !run.stdout.contains("SECRET"));
    // Beside the pipeline, or in the run directory: fine.
    let (_, run) = confined("prompt_file = \"ok.md\"\nschema = \"../run/ok.json\"\n");
    run.ok();
    // A folder, or a FIFO, is refused with the place.
    let (_, run) = confined("prompt_file = \".\"\n");
    run.code(2)
        .stderr_has("pipes/pipeline.toml:9:15: prompt file `.` of task `a`: cannot read")
        .stderr_has("it is a folder, not a file");
}

/// `run`, refused at `pipeline.toml:LOCATION` with `message` and a hint.
#[track_caller]
fn refused_at(run: &Run, location: &str, message: &str) {
    run.code(2)
        .ran(&[])
        .stderr_has(&format!("pipeline.toml:{location}: "))
        .stderr_has(message)
        .stderr_has("hint:");
}

#[test]
fn an_input_that_is_a_fifo_or_a_folder_is_refused_never_hashed() {
    let p = Project::new("[tasks.a]\ninputs = [\"ff\"]\noutputs = [\"o\"]\ncommand = \"true\"\n");
    p.mkfifo("ff");
    refused_at(
        &p.run_bounded(&["build"]),
        "2:11",
        "input `ff` of task `a` is a FIFO, not a regular file",
    );
    std::fs::remove_file(p.path("ff")).unwrap();
    p.write("ff/x.txt", "x");
    let run = p.build();
    refused_at(&run, "2:11", "input `ff` of task `a` is a folder");
    run.stderr_has("such as `ff/**`");
    assert!(!p.exists(".planexe/tasks"), "nothing ran or was recorded");
}

#[test]
fn an_output_that_is_a_folder_fails_its_task_and_is_never_deleted() {
    let p = Project::new("[tasks.a]\noutputs = [\"reports\"]\ncommand = \"echo new > reports\"\n");
    p.write("reports/old.md", "precious\n");
    p.build()
        .code(1)
        .stderr_has("FAILED a: output reports is a folder, not a file")
        .stderr_has("left untouched");
    assert_eq!(p.read("reports/old.md"), "precious\n");
    assert!(!p.exists(".planexe/prev/a"), "nothing was set aside");
    p.run(&["clean", "--all", "-y"])
        .code(2)
        .stderr_has("not cleaning task `a`: its output reports is a folder, not a file")
        .stderr_has("hint:");
    assert_eq!(p.read("reports/old.md"), "precious\n");
    // A link to a folder is set aside and deleted as a link: what it
    // leads to stays.
    std::fs::rename(p.path("reports"), p.path("kept")).unwrap();
    std::os::unix::fs::symlink("kept", p.path("reports")).unwrap();
    p.build().ok();
    assert_eq!(p.read("reports"), "new\n");
    assert_eq!(p.read("kept/old.md"), "precious\n");
}

#[test]
fn a_folder_that_appears_at_an_output_is_left_untouched() {
    // `d` does not exist when the pipeline is read; `a` makes it a folder.
    let p = Project::new(
        "[tasks.a]\noutputs = [\"x\"]\ncommand = \"mkdir d && echo precious > d/keep && echo > x\"\n\
         [tasks.b]\ninputs = [\"x\"]\noutputs = [\"d\"]\ncommand = \"echo new > d\"\n",
    );
    p.build()
        .code(1)
        .stderr_has("FAILED b: output d is a folder, not a file")
        .stderr_has("left untouched");
    assert_eq!(p.read("d/keep"), "precious\n");
    assert!(!p.exists(".planexe/prev/b"), "nothing was set aside");
    p.run(&["clean", "b", "-y"])
        .code(2)
        .stderr_has("not cleaning task `b`: its output d is a folder, not a file");
    assert_eq!(p.read("d/keep"), "precious\n");
}

/// A file that appears, during the build, where an output's folder should
/// be (`x` made by `a`, beside `b`'s output `x/y`) failed `b` with the OS's
/// words alone: "failed to create directory `…/x`: File exists (os error
/// 17)". The failure now names the output and the file in the way.
#[test]
fn a_file_that_appears_on_the_way_to_an_output_is_named() {
    let p = Project::new(
        "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo precious > x && echo a > a.txt\"\n\
         [tasks.b]\nafter = [\"a\"]\noutputs = [\"x/y\"]\ncommand = \"echo b > x/y\"\n",
    );
    let run = p.build();
    run.code(1).stderr_has(
        "FAILED b: cannot make the folder of output x/y: x is a file, not a folder; move the file, or name another output",
    );
    assert!(!run.stderr.contains("os error"), "{}", run.stderr);
    assert_eq!(p.read("x"), "precious\n");
    assert_eq!(p.read("a.txt"), "a\n");
}

#[test]
fn the_pipeline_file_as_an_output_is_refused() {
    const PIPELINE: &str =
        "[tasks.a]\noutputs = [\"./pipeline.toml\"]\ncommand = \"echo x > pipeline.toml\"\n";
    let p = Project::new(PIPELINE);
    for args in [&["build"][..], &["clean", "--all", "-y"]] {
        let run = p.run(args);
        refused_at(
            &run,
            "2:12",
            "output `pipeline.toml` of task `a` is the pipeline file itself",
        );
        assert_eq!(p.read("pipeline.toml"), PIPELINE);
    }
    // Named through a link to its folder, it is still itself.
    std::os::unix::fs::symlink(".", p.path("here")).unwrap();
    p.write(
        "pipeline.toml",
        "[tasks.a]\noutputs = [\"here/pipeline.toml\"]\ncommand = \"true\"\n",
    );
    refused_at(&p.build(), "2:12", "is the pipeline file itself");
    // A pipeline file outside the run directory: a file of the same name
    // inside it is an output like any other.
    let run_dir = p.path("run");
    std::fs::create_dir(&run_dir).unwrap();
    p.write(
        "pipeline.toml",
        "[tasks.a]\noutputs = [\"pipeline.toml\"]\ncommand = \"echo x > pipeline.toml\"\n",
    );
    let file = p.path("pipeline.toml");
    p.run(&["-C", "run", "-f", file.to_str().unwrap(), "build"])
        .ok();
    assert_eq!(p.read("run/pipeline.toml"), "x\n");
}

/// A hook that could never fire (an event planexe never sends, a blank
/// command, no events), or that would not do what it says (a chat format
/// for a command), is a refusal, not a silent no-op.
#[test]
fn a_hook_that_could_never_fire_is_refused() {
    let task = "[tasks.a]\noutputs = [\"o\"]\ncommand = \"echo > o\"\n";
    // Each pointed at the value that is wrong, not at the hook's table.
    for (hook, at, says) in [
        (
            "[[hooks]]\ncommand = \"cat\"\nevents = [\"task.failed\", \"nope.event\"]\n",
            "6:26",
            "hook 1: `events` names `nope.event`, which planexe never sends",
        ),
        (
            "[[hooks]]\ncommand = \"cat\"\nevents = [\"tsak.*\"]\n",
            "6:11",
            "names `tsak.*`",
        ),
        (
            "[[hooks]]\ncommand = \"  \"\n",
            "5:11",
            "hook 1: `command` is empty",
        ),
        // A command gets the event's JSON, not a chat line.
        (
            "[[hooks]]\ncommand = \"cat >> seen\"\nformat = \"slack\"\n",
            "6:10",
            "hook 1: `format = \"slack\"` is for a `url` hook; a `command` gets the event's JSON on its stdin",
        ),
        // Not every event, as `events` left out would be.
        (
            "[[hooks]]\ncommand = \"cat >> seen\"\nevents = []\n",
            "6:10",
            "hook 1: `events` is empty, so the hook would never fire (leave `events` out to send every event)",
        ),
        ("[[hooks]]\nevents = [\"*\"]\n", "4:1", "hook 1 has neither `url` nor `command`"),
    ] {
        let p = Project::new(&format!("{task}{hook}"));
        refused_at(&p.build(), at, says);
    }
    let p = Project::new(&format!(
        "{task}[[hooks]]\ncommand = \"cat > seen\"\nevents = [\"pipeline.*\", \"task.c*\", \"*\"]\n"
    ));
    p.build().ok();
}

/// Any error on the line of a hook's url (an inline table, a string left
/// open) shows the line as a refusal of the url does: the token in its
/// path as `*`, on the terminal and in `status --json`'s error.
#[test]
fn an_error_on_the_line_of_a_hooks_url_does_not_show_its_token() {
    let task = "[tasks.a]\noutputs = [\"o\"]\ncommand = \"echo > o\"\n";
    let url = "https://discord.com/api/webhooks/1/TOKEN0123456789abcdef";
    for (hooks, at, says) in [
        (
            format!("hooks = [{{ url = \"{url}\", command = \"x\" }}]\n"),
            "1:88",
            "hook 1 has both `url` and `command`",
        ),
        (
            format!("hooks = [{{ url = \"{url}\", events = 3 }}]\n"),
            "1:87",
            "`events` of hook 1: expected an array",
        ),
        (
            format!("[[hooks]]\nurl = \"{url}\n"),
            "2:64",
            "invalid basic string",
        ),
    ] {
        let p = Project::new(&format!("{hooks}{task}"));
        let run = p.build();
        refused_at(&run, at, says);
        assert!(!run.stderr.contains("TOKEN"), "{}", run.stderr);
        assert!(
            run.stderr.contains("\"https://discord.com****"),
            "{}",
            run.stderr
        );
        let status = p.run(&["status", "--json"]);
        assert!(status.stdout.contains(says), "{}", status.stdout);
        assert!(!status.stdout.contains("TOKEN"), "{}", status.stdout);
    }
}

/// A hook's url that no request can go to, or that carries a user name
/// or password, is refused at load at the url itself, as a model's
/// `base_url` is; the message never repeats the secret.
#[test]
fn a_hook_url_that_cannot_be_used_is_refused_where_it_stands() {
    let task = "[tasks.a]\noutputs = [\"o\"]\ncommand = \"echo > o\"\n";
    for (url, says) in [
        (
            "http://user:hunter2@127.0.0.1:9/hook",
            "hook 1: `url` holds a user name or password (`user:...@host`)",
        ),
        (
            "ftp://127.0.0.1/hook",
            "hook 1: `url` must start with http:// or https://",
        ),
        ("http://a b/hook", "hook 1: `url` is not a valid URL"),
        ("https://", "hook 1: `url` is not a valid URL"),
        (
            "http://127.0.0.1:99999/hook",
            "hook 1: `url` has port 99999",
        ),
    ] {
        let p = Project::new(&format!("{task}[[hooks]]\nurl = \"{url}\"\n"));
        let run = p.build();
        refused_at(&run, "5:7", says);
        // Neither the message, the hint nor the line the caret points at
        // shows the secret.
        assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
        assert!(!p.exists("o"), "{url}");
    }
    // The second hook is named, and its own url pointed at.
    let p = Project::new(&format!(
        "{task}[[hooks]]\ncommand = \"cat\"\n[[hooks]]\nurl = \"https://t@h.example/x\"\n"
    ));
    refused_at(
        &p.build(),
        "7:7",
        "hook 2: `url` holds a user name or password",
    );
    // A webhook's token in its path or query is how services take it.
    let p = Project::new(&format!(
        "{task}[[hooks]]\nurl = \"http://127.0.0.1:9/api/webhooks/1/tok?wait=true\"\nevents = [\"pipeline.completed\"]\n"
    ));
    p.build().ok();
}

/// Two outputs, one inside the other, cannot both be files: refused at
/// load, not left to a race in the build.
#[test]
fn an_output_inside_another_output_is_refused() {
    let p = Project::new(
        "[tasks.a]\noutputs = [\"x\"]\ncommand = \"echo > x\"\n\
         [tasks.b]\noutputs = [\"x/y/z\"]\ncommand = \"mkdir -p x/y && echo > x/y/z\"\n",
    );
    refused_at(
        &p.build(),
        "5:12",
        "output `x/y/z` of task `b` lies inside `x`, an output of task `a`",
    );
}

#[test]
fn a_run_directory_or_a_duration_flag_that_is_wrong_says_what_in_plain_words() {
    let p = Project::new("[tasks.a]\ncommand = \"true\"\n");
    p.run(&["-C", "missing", "build"])
        .code(2)
        .stderr_has("missing: it does not exist")
        .stderr_has("planexe new RUN_DIR");
    for (args, flag, what) in [
        (&["wait", "--timeout", "xyz"][..], "--timeout", "timeout"),
        (
            &["status", "--stall-after", "5x"][..],
            "--stall-after",
            "duration",
        ),
    ] {
        let run = p.run(args);
        run.code(2)
            .stderr_has(&format!("{flag}: invalid {what} "))
            .stderr_has("expected a number and a unit")
            .stderr_has(&format!("such as {flag} 90s"));
        assert!(!run.stderr.contains("expected number at"), "{}", run.stderr);
    }
}

/// An output that cannot be written inside the run directory is refused
/// before anything runs, at its place in the pipeline file, naming the
/// task: as an input is, whether the refusal comes while loading or
/// while planning.
#[test]
fn output_path_refusals_are_placed_like_input_refusals() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "s").unwrap();
    let long = "x".repeat(300);
    let cases: [(&str, &str, &str); 6] = [
        (
            "out.txt",
            "out.txt is a symlink to",
            "a copy or a link that stays inside",
        ),
        (
            "away/o.txt",
            "lies in a folder outside the run directory",
            "hint: away is a symlink to /",
        ),
        ("a\\u0000b", "contains a NUL byte", "hint:"),
        (
            "a.txt/b",
            "output of task `a`: a.txt is a file, not a folder",
            "a file stands where a folder on the way to a.txt/b should be",
        ),
        (&long, "File name too long", "name a shorter path"),
        (
            "loop/x",
            "Too many levels of symbolic links",
            "not a loop of links",
        ),
    ];
    for (output, message, hint) in cases {
        let p = Project::new(&format!(
            "[tasks.a]\ncommand = \"true\"\noutputs = [\"{output}\"]\n"
        ));
        std::os::unix::fs::symlink(outside.path().join("secret"), p.path("out.txt")).unwrap();
        std::os::unix::fs::symlink(outside.path(), p.path("away")).unwrap();
        p.write("a.txt", "a file\n");
        std::os::unix::fs::symlink("loop", p.path("loop")).unwrap();
        let run = p.build();
        refused_at(&run, "3:12", "output of task `a`: ");
        run.stderr_has(message).stderr_has(hint);
        assert!(!p.exists(".planexe/tasks"), "nothing ran or was recorded");
    }
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret")).unwrap(),
        "s"
    );
    // An output a finished task made, replaced by a link leading out, is
    // refused at its place too, by every command that checks it.
    let p = Project::new("[tasks.a]\noutputs = [\"o\"]\ncommand = \"echo x > o\"\n");
    p.build().ok();
    p.remove("o");
    std::os::unix::fs::symlink(outside.path().join("secret"), p.path("o")).unwrap();
    for args in [&["build"][..], &["build", "-n"], &["build", "-B"]] {
        let run = p.run(args);
        refused_at(&run, "2:12", "output of task `a`: o is a symlink to");
    }
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret")).unwrap(),
        "s"
    );
}

#[test]
fn a_base_url_no_request_can_use_is_refused_before_anything_runs() {
    for (url, message) in [
        ("http://[::1", "`base_url` is not a valid URL"),
        ("http://a b/v1", "`base_url` is not a valid URL"),
        ("http://127.0.0.1:99999/v1", "`base_url` has port 99999"),
        (
            "http://127.0.0.1/v1?key=SECRETKEY",
            "holds a query or fragment",
        ),
    ] {
        refused(
            &format!("[models.m]\nprovider = \"openai\"\nbase_url = \"{url}\"\nmodel = \"x\"\n[tasks.a]\noutputs = [\"o\"]\nprompt = \"hi\"\nmodel = \"m\"\n"),
            "3:12",
            message,
        );
    }
}

#[test]
fn a_password_in_a_base_url_is_refused_and_never_repeated() {
    let p = refused(
        "[models.m]\nprovider = \"openai\"\nbase_url = \"http://me:SECRETPW@127.0.0.1:9/v1\"\nmodel = \"x\"\n[tasks.a]\noutputs = [\"o\"]\nprompt = \"hi\"\nmodel = \"m\"\n",
        "3:12",
        "`base_url` holds a user name or password",
    );
    let run = p.build();
    run.stderr_has("hint: remove it from base_url; put the key in an environment variable and name it in api_key_env");
    // The caret line quotes the file, as every refusal does; the message
    // and the hint do not repeat the secret.
    let said: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:") || l.starts_with("hint:"))
        .collect();
    assert!(said.iter().all(|l| !l.contains("SECRETPW")), "{said:?}");
    assert!(!p.exists(".planexe/failures.jsonl"));
}

#[test]
fn a_refused_urls_line_is_shown_without_its_secrets() {
    let model = |url: &str| {
        format!(
            "[pipeline]\nmodel = \"m\"\n[models.m]\nprovider = \"openai\"\nbase_url = \"{url}\"\nmodel = \"x\"\n[tasks.a]\noutputs = [\"a.md\"]\nprompt = \"hi\"\n"
        )
    };
    let hook = |url: &str| {
        format!(
            "[tasks.a]\noutputs = [\"o\"]\ncommand = \"echo > o\"\n[[hooks]]\nurl = \"{url}\"\n"
        )
    };
    for (pipeline, secret, shown) in [
        (
            model("http://bob:s3cret-pw@127.0.0.1:8080/v1"),
            "s3cret-pw",
            format!(
                "5 | base_url = \"http://{}@127.0.0.1:8080/v1\"",
                "*".repeat(13)
            ),
        ),
        (
            model("http://127.0.0.1:8080/v1?key=sk-s3cret"),
            "sk-s3cret",
            format!(
                "5 | base_url = \"http://127.0.0.1:8080/v1{}\"",
                "*".repeat(14)
            ),
        ),
        // A webhook's token is in its path: a hook's path is hidden too.
        (
            hook("https://hooks.example:99999/services/T1/S3CRETTOKEN"),
            "S3CRETTOKEN",
            format!(
                "5 | url = \"https://hooks.example:99999{}\"",
                "*".repeat(24)
            ),
        ),
    ] {
        let run = Project::new(&pipeline).build();
        run.code(2);
        assert!(!run.stderr.contains(secret), "{}", run.stderr);
        assert!(run.stderr.contains(&shown), "{}", run.stderr);
    }
}

#[test]
fn a_webhook_url_from_the_environment_no_event_could_reach_is_refused() {
    let p = Project::new("[tasks.a]\noutputs = [\"o\"]\ncommand = \"echo > o\"\n");
    for (url, says) in [
        (
            "ftp://hooks.example/T1/S3CRET",
            "`$PLANEXE_WEBHOOK_URL` must start with http:// or https://",
        ),
        (
            "https://bob:S3CRET@hooks.example/x",
            "`$PLANEXE_WEBHOOK_URL` holds a user name or password",
        ),
        (
            "https://hooks.example:99999/S3CRET",
            "`$PLANEXE_WEBHOOK_URL` has port 99999",
        ),
    ] {
        for command in ["build", "watch"] {
            let mut child = p
                .command(&[command])
                .env("PLANEXE_WEBHOOK_URL", url)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // A watch that was not refused would run until stopped.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{command} {url}: {stderr}");
            assert!(stderr.contains(says), "{stderr}");
            assert!(!stderr.contains("S3CRET"), "{stderr}");
            assert!(!p.exists("o"), "{command} {url}: built");
        }
    }
}

/// An option of a command given before it (`planexe -q build`) is refused
/// by the parser with a hint that moves it after the command; an option
/// the command does not have either gets no such hint.
#[test]
fn an_option_before_its_command_gets_the_line_that_works() {
    let p = Project::new("[tasks.t]\noutputs = [\"t\"]\ncommand = \"echo t > t\"\n");
    p.run(&["-q", "build"]).code(2).stderr_has(
        "hint: `-q` is an option of `planexe build`: put it after the command, as in `planexe build -q`",
    );
    p.run(&["-j", "4", "build", "t"])
        .code(2)
        .stderr_has("as in `planexe build -j 4 t`");
    let run = p.run(&["-k", "status"]);
    run.code(2).stderr_has("unexpected argument '-k'");
    assert!(!run.stderr.contains("hint:"), "{}", run.stderr);
    assert!(!p.exists(".planexe"));
}

/// A task name that names nothing lists the tasks there are, and tells how
/// an instance is named only when the pipeline has a fan-out, with one of
/// its own (it told every pipeline `instances are named like `wbs3[7]``).
#[test]
fn an_unknown_task_name_lists_the_tasks_and_an_instance_of_this_pipeline() {
    let p = Project::new("[tasks.a]\ncommand = \"true\"\n[tasks.b]\ncommand = \"true\"\n");
    let run = p.run(&["clean", "zz", "-y"]);
    run.code(2)
        .stderr_has("unknown task `zz`")
        .stderr_has("hint: tasks are: a, b\nhint: run `planexe status` to list tasks");
    assert!(!run.stderr.contains("instances"), "{}", run.stderr);

    let p = Project::new(
        "[tasks.review]\nmatrix = { who = [\"finance\", \"legal\"] }\noutputs = [\"{{ who }}.md\"]\ncommand = \"echo {{ who }} > {{ who }}.md\"\n",
    );
    p.run(&["explain", "review[law]"]).code(2).stderr_has(
        "hint: a fan-out's instances are named like `review[finance]`; `review` names them all",
    );
}

/// The tasks an unknown name is told of list a fan-out once, with its
/// count, not each of its instances (a `foreach` of 100 items listed
/// `per[0], per[100], per[10], ...` and hid every other task past the
/// twentieth); a typo of an instance's name is still told the instance.
#[test]
fn an_unknown_task_name_lists_a_fanout_once_not_its_instances() {
    let p = Project::new(
        "[tasks.per]\nforeach = { file = \"list.json\" }\noutputs = [\"per/{{ key }}.txt\"]\ncommand = \"echo {{ item }} > per/{{ key }}.txt\"\n\
         [tasks.one]\nmatrix = { x = [\"only\"] }\ncommand = \"true\"\n\
         [tasks.z]\ncommand = \"true\"\n",
    );
    let items: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    p.write("list.json", &format!("[{}]", items.join(",")));
    p.build().ok();
    let run = p.run(&["clean", "zz", "-y"]);
    run.code(2).stderr_has(
        "hint: tasks are: one (1 instance), per (100 instances), z\n\
         hint: a fan-out's instances are named like `",
    );
    assert!(!run.stderr.contains("per[1]"), "{}", run.stderr);
    p.run(&["touch", "per[42]x"])
        .code(2)
        .stderr_has("hint: did you mean `per[42]`?");
}

/// The caret under a line of the pipeline file stands under the span as a
/// terminal lays the line out: two columns under each CJK character
/// before it and in it, a tab as spaces to the next multiple of four
/// columns (see code_frame.rs). (It counted characters: two
/// columns short of `bogus` after `計画`, four carets under `"計画"`, and
/// a space under a tab, seven columns short.)
#[test]
fn the_caret_stands_under_wide_characters_and_tabs() {
    let p = Project::new("tasks.t = { outputs = [\"計画.txt\"], command = \"x\", bogus = 1 }\n");
    let run = p.run(&["build"]);
    run.code(2);
    assert!(
        run.stderr.contains(
            "1 | tasks.t = { outputs = [\"計画.txt\"], command = \"x\", bogus = 1 }\n  |                                                    ^^^^^\n"
        ),
        "{}",
        run.stderr
    );
    let p = Project::new("[tasks.t]\noutputs = [\"o\"]\ncommand = \"x\"\nafter = [\"計画\"]\n");
    let run = p.run(&["build"]);
    run.code(2);
    assert!(
        run.stderr
            .contains("4 | after = [\"計画\"]\n  |          ^^^^^^\n"),
        "{}",
        run.stderr
    );
    let p = Project::new("[tasks.t]\noutputs = [\"o\"]\ncommand = \"x\"\n\tbogus = 1\n");
    let run = p.run(&["build"]);
    run.code(2);
    assert!(
        run.stderr.contains("4 |     bogus = 1\n  |     ^^^^^\n"),
        "{}",
        run.stderr
    );
}
