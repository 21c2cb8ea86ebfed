//! Fuzz targets for the pipeline loader and resolver: generated pipelines
//! (every key from a pool of good, bad and hostile values) and damaged
//! ones (valid pipelines cut, flipped and spliced, and random bytes), in a
//! run directory with something for every key to find.

use std::path::PathBuf;

use planexe::error::Error;
use planexe::model::{Graph, Lists, Pipeline};
use planexe::store::RunDir;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::{damaged, fuzz};
use crate::harness::*;

/// A run directory with something for every key to find: sources, a
/// folder, lists good and bad, a schema, a prompt file, a symlink leading
/// out, and an `outside` folder beside it.
struct Fixture {
    _dir: tempfile::TempDir,
    run: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let run = root.join("run");
        let files = [
            ("outside/secret.txt", "SECRET"),
            ("outside/list.json", "[1, 2]"),
            ("run/in.txt", "x"),
            ("run/data[1].txt", "x"),
            ("run/notes/a.md", "a"),
            ("run/notes/b.md", "b"),
            ("run/list.json", "[\"a\", \"b\", 3]"),
            (
                "run/items.json",
                "{\"work\": [{\"id\": \"x\"}, {\"id\": 7}, {\"id\": \"y z\"}]}",
            ),
            (
                "run/keys.json",
                "[{\"k\": \"a/b\"}, {\"k\": \"..\"}, {\"k\": {}}]",
            ),
            ("run/dup.json", "[{\"k\": \"a\"}, {\"k\": \"a\"}]"),
            ("run/bad.json", "nope"),
            ("run/s.json", "{\"type\": \"object\"}"),
            (
                "run/steps.json",
                "{\"type\": \"object\", \"properties\": {\"steps\": {\"type\": \"array\", \"items\": {\"type\": \"object\", \"properties\": {\"id\": {\"type\": \"string\"}, \"n\": {\"type\": \"array\"}}, \"additionalProperties\": false}}}, \"additionalProperties\": false}",
            ),
            ("run/notschema.json", "{\"type\": 12}"),
            ("run/p.md", "hello {{ task }}"),
            ("run/sub/x.md", "x"),
            ("run/latin1.md", "caf\u{e9}"),
        ];
        for (rel, text) in files {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::write(run.join("latin1.md"), b"caf\xe9").unwrap();
        std::os::unix::fs::symlink(root.join("outside"), run.join("link")).unwrap();
        Fixture { _dir: dir, run }
    }

    fn pipeline_path(&self) -> PathBuf {
        self.run.join("pipeline.toml")
    }
}

/// Loads `bytes` as the pipeline file and resolves it both ways a command
/// does (every list expanded; or lists left to the build, then expanded
/// one by one as a build does). Checks that every refusal names the file,
/// and has a hint when `hint` says so.
fn load_and_resolve(fixture: &Fixture, bytes: &[u8], hint: bool) {
    let path = fixture.pipeline_path();
    std::fs::write(&path, bytes).unwrap();
    let outcome = (|| -> planexe::error::Result<()> {
        let pipeline = Pipeline::load(&path, "pipeline.toml".into())?;
        let run_dir = RunDir::open(&fixture.run)?;
        Graph::resolve(&pipeline, &run_dir, None, Lists::Present)?;
        let run_dir = RunDir::open(&fixture.run)?;
        let mut graph = Graph::resolve(&pipeline, &run_dir, None, Lists::Unproduced)?;
        let waiting: Vec<String> = graph.placeholders().map(|(n, _)| n.to_string()).collect();
        for group in waiting {
            graph.expand(&pipeline, &run_dir, &group, &|_, _| Ok(()))?;
        }
        Ok(())
    })();
    let Err(e) = outcome else {
        return;
    };
    match &e {
        Error::Pipeline { message, hints, .. } | Error::Usage { message, hints } => {
            assert!(
                message.starts_with("pipeline.toml"),
                "an error that does not name the file: {message}"
            );
            assert!(
                !hint || !hints.is_empty(),
                "an error without a hint: {message}"
            );
            // Its place starts where its message says and ends no earlier.
            if let Some(p) = e.place() {
                let first = message.lines().next().unwrap_or("");
                assert_eq!(
                    planexe::error::position(first),
                    Some((p.file.as_str(), p.line, p.col)),
                    "{p:?}: {message}"
                );
                assert!(
                    (p.end_line, p.end_col) >= (p.line, p.col),
                    "{p:?}: {message}"
                );
            }
        }
        other => panic!("not a pipeline error: {other:?}"),
    }
}

/// The values a generated task's keys take: `KEY + VALUE` a good one,
/// `KEY - VALUE` a bad or hostile one. Most values are good, so most
/// pipelines reach deep into resolution. In a value, `{N}` becomes the
/// task's position (good outputs do not clash), `{PREV}` and `{PREV_OUT}`
/// the task before and its output; `{LONG}` a 150-byte matrix value,
/// `{MANY}` fifty values, `{NAME200}` the longest name allowed and
/// `{NAME201}` one byte more. `chaos` values are whole lines, `pipeline`
/// values lines of `[pipeline]`.
const VALUES: &str = r#"
name - a
name - "a b"
name - "é"
name - ""
name - "x[1]"
name - {NAME200}
name - {NAME201}
command + "true"
command + "cat {inputs} > {outputs}"
command + "echo {{ key }} > {outputs}"
command + "echo {{ item | tojson }}"
command - ""
command - " "
command - "{% if %}"
command - "{{ nope }}"
prompt + "hi {{ inputs['in.txt'] }}"
prompt + "{{ task }}"
prompt + "{{ key }}"
prompt - "{{ nope }}"
prompt - "{{ item }}"
prompt - "{% for %}"
prompt - "é\n{{ item.x }}{{ loop }}é{{ é }}"
prompt_file + "p.md"
prompt_file + "sub/x.md"
prompt_file - "../outside/secret.txt"
prompt_file - "/etc/passwd"
prompt_file - "sub"
prompt_file - "missing.md"
prompt_file - "link/secret.txt"
prompt_file - "latin1.md"
prompt_file - "/dev/zero"
model + "m"
model - "nope"
schema + "s.json"
schema + "steps.json"
schema - "bad.json"
schema - "notschema.json"
schema - "/etc/passwd"
schema - "sub"
schema - "link/list.json"
format + "json"
format + "text"
format - "yaml"
retries + 0
retries + 2
retries - -1
retries - 101
retries - 9223372036854775807
retries - "x"
system + "be brief"
system - "{{ nope }}"
system - "{% for %}"
foreach + { file = "list.json" }
foreach + { file = "items.json", items = "/work", key = "id" }
foreach + { file = "out0.txt" }
foreach + { file = "out1.txt" }
foreach - { file = "items.json", items = "/nope" }
foreach - { file = "items.json", items = "/work/0" }
foreach - { file = "notes" }
foreach - { file = "bad.json" }
foreach - { file = "missing.json" }
foreach - { file = "../x.json" }
foreach - { file = "list.json", key = "nope" }
foreach - { file = "link/list.json" }
foreach - { file = "keys.json", key = "k" }
foreach - { file = "dup.json", key = "k" }
foreach - { file = "/dev/zero" }
foreach - { file = "list.json", extra = 1 }
foreach + { file = "out0.txt", items = "/steps", key = "id" }
foreach - { file = "out0.txt", items = "/step" }
foreach - { file = "out0.txt", items = "steps" }
foreach - { file = "out0.txt", items = "/steps", key = "n" }
foreach - { file = "out0.txt", items = "/~/é/0/~1" }
foreach - { file = "out1.txt", items = "/steps/0/n", key = "x" }
matrix + { x = ["1", "2"] }
matrix + { x = [1, 2.5, true], y = ["a", "b c"] }
matrix - { x = [] }
matrix - {}
matrix - { item = ["a"] }
matrix - { x = [[1]] }
matrix - { x = ["a/b"] }
matrix - { x = ["a", "a"] }
matrix - { x = ["{LONG}"] }
matrix - { a = [{MANY}], b = [{MANY}], c = [{MANY}] }
inputs + ["in.txt"]
inputs + ["in.txt", "notes/*.md"]
inputs + ["{PREV_OUT}"]
inputs + ["{PREV}"]
inputs + ["in.txt", "{PREV}"]
inputs + ["data[1].txt"]
inputs - ["missing.txt"]
inputs - ["out0.txt"]
inputs - ["a"]
inputs - ["../in.txt"]
inputs - ["/etc/passwd"]
inputs - ["link/secret.txt"]
inputs - ["link/*"]
inputs - ["notes"]
inputs - ["{{ key }}.txt"]
inputs - ["**/*"]
inputs - ["x/{a,"]
inputs - [".planexe/log"]
inputs - ["."]
inputs - [""]
inputs - "in.txt"
outputs + ["out{N}.txt"]
outputs - ["out{N}.txt", "more{N}.txt"]
outputs - ["in.txt"]
outputs - ["*.txt"]
outputs - ["out{N}.txt", "out{N}.txt"]
outputs - []
outputs - ["/tmp/x"]
outputs - ["link/out"]
outputs - ["out0.txt"]
outputs - ["list.json"]
fanout_outputs + ["o{N}/{{ key }}.txt"]
fanout_outputs - ["o{N}/{{ item.id }}"]
fanout_outputs - ["{{ nope }}"]
fanout_outputs - ["o{N}/{% for i in range(3) %}{{ i }}{% endfor %}"]
fanout_outputs - ["o{N}/{{ range(100000000) | join }}"]
fanout_outputs - ["out{N}.txt"]
fanout_outputs - ["o{N}/é{{ loop.index }}"]
fanout_outputs - ["o{N}/{{ key }}é{{ itmé }}{{"]
after + ["{PREV}"]
after - ["a"]
timeout + "10m"
timeout + "1h 30m"
timeout + 90
timeout - 0
timeout - -1
timeout - 1e-300
timeout - 1e300
timeout - nan
timeout - inf
timeout - "99999999999999999999y"
timeout - "18446744073709551615s 999999999ns 1ns"
timeout - true
timeout - 9223372036854775807
chaos - inptus = []
chaos - outputs = "x"
chaos - command = 1
chaos - foreach = 3
chaos - matrix = []
chaos - prompt = "a"
chaos - command = "b"
chaos - after = ["zzz"]
pipeline + name = "fuzz"
pipeline + timeout = "10m"
pipeline + model = "m"
pipeline + jobs = 4
pipeline - model = "nope"
pipeline - timeout = 1e-300
pipeline - timeout = "99999999999999999999y"
"#;

/// The values of `key` in [`VALUES`]: a good one six times in seven.
fn pool(key: &str) -> BoxedStrategy<String> {
    let long = "v".repeat(150);
    let many: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    let many = many.join(", ");
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for row in VALUES.lines() {
        let Some((k, rest)) = row.split_once(' ') else {
            continue;
        };
        let Some((sign, value)) = rest.split_once(' ') else {
            continue;
        };
        if k != key {
            continue;
        }
        let value = value
            .replace("{LONG}", &long)
            .replace("{MANY}", &many)
            .replace("{NAME200}", &"n".repeat(200))
            .replace("{NAME201}", &"n".repeat(201));
        if sign == "+" {
            good.push(value);
        } else {
            bad.push(value);
        }
    }
    match (good.is_empty(), bad.is_empty()) {
        (_, true) => select(good).boxed(),
        (true, _) => select(bad).boxed(),
        _ => prop_oneof![6 => select(good), 1 => select(bad)].boxed(),
    }
}

/// `key = VALUE`, from the pool of `key`.
fn line(key: &'static str) -> BoxedStrategy<String> {
    pool(key)
        .prop_map(move |v| format!("{key} = {v}\n"))
        .boxed()
}

/// [`line`] with probability `p`, else nothing.
fn maybe(p: f64, key: &'static str) -> BoxedStrategy<String> {
    prop::option::weighted(p, line(key))
        .prop_map(Option::unwrap_or_default)
        .boxed()
}

/// What a prompt task asks, and its other keys.
fn prompt() -> BoxedStrategy<String> {
    (
        prop_oneof![3 => line("prompt"), 1 => line("prompt_file")],
        maybe(0.9, "model"),
        maybe(0.3, "schema"),
        maybe(0.2, "format"),
        maybe(0.2, "retries"),
        maybe(0.2, "system"),
    )
        .prop_map(|(a, b, c, d, e, f)| [a, b, c, d, e, f].concat())
        .boxed()
}

/// One task: its name (from its position unless hostile) and its keys.
fn task_table() -> impl Strategy<Value = (Option<String>, String)> {
    (
        prop::option::weighted(0.03, pool("name")),
        prop_oneof![3 => line("command"), 2 => prompt()],
        maybe(0.6, "inputs"),
        (line("outputs"), pool("fanout_outputs")),
        maybe(0.35, "foreach"),
        maybe(0.15, "matrix"),
        maybe(0.15, "after"),
        maybe(0.15, "timeout"),
        prop::option::weighted(0.02, pool("chaos")),
    )
        .prop_map(
            |(name, action, inputs, (outputs, fanned), foreach, matrix, after, timeout, chaos)| {
                // A fan-out (or two: refused) names each instance's outputs.
                let fanout = [foreach, matrix].concat();
                let outputs = match fanout.is_empty() {
                    true => outputs,
                    false => format!("outputs = {fanned}\n"),
                };
                let chaos = chaos.map(|c| c + "\n").unwrap_or_default();
                let body = [action, inputs, outputs, fanout, after, timeout, chaos].concat();
                (name, body)
            },
        )
}

/// A pipeline made of the pieces above: sometimes a `[pipeline]` table,
/// usually a model, sometimes a hook, and one to four tasks (named `a`,
/// `b`, `c`, `d` unless hostile).
fn generated_pipeline() -> impl Strategy<Value = String> {
    (
        prop::option::weighted(0.3, pool("pipeline")),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.1),
        vec(task_table(), 1..5),
    )
        .prop_map(|(pipeline, model, hook, tasks)| {
            let mut text = pipeline.map_or_else(String::new, |p| format!("[pipeline]\n{p}\n"));
            if model {
                text.push_str(
                    "[models.m]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"x\"\n",
                );
            }
            if hook {
                text.push_str("[[hooks]]\ncommand = \"true\"\n");
            }
            const NAMES: [&str; 4] = ["a", "b", "c", "d"];
            for (n, (name, body)) in tasks.into_iter().enumerate() {
                let name = name.unwrap_or_else(|| NAMES[n].to_string());
                // What the task before wrote (the first reads a source).
                let (prev, prev_out) = match n {
                    0 => ("in.txt".to_string(), "in.txt".to_string()),
                    _ => (NAMES[n - 1].to_string(), format!("out{}.txt", n - 1)),
                };
                text.push_str(&format!("[tasks.{name}]\n"));
                text.push_str(
                    &body
                        .replace("{N}", &n.to_string())
                        .replace("{PREV_OUT}", &prev_out)
                        .replace("{PREV}", &prev),
                );
            }
            text
        })
}

#[test]
fn generated_pipelines_resolve_or_are_refused_in_place() {
    let fixture = Fixture::new();
    fuzz(300, generated_pipeline(), |text| {
        load_and_resolve(&fixture, text.as_bytes(), true)
    });
}

/// Pipelines that resolve, to be damaged.
const SEEDS: &[&str] = &[
    DEMO,
    "[tasks.list]\ninputs = [\"in.txt\"]\noutputs = [\"wbs.json\"]\ncommand = \"cp items.json wbs.json\"\n[tasks.wbs]\nforeach = { file = \"items.json\", items = \"/work\", key = \"id\" }\noutputs = [\"wbs/{{ key }}.txt\"]\ncommand = \"echo '{{ item.id }}' > {outputs}\"\n[tasks.merged]\ninputs = [\"wbs\"]\noutputs = [\"merged.txt\"]\ncommand = \"cat {inputs} > {outputs}\"\n",
    "[pipeline]\nmodel = \"m\"\ntimeout = \"1h\"\n[models.m]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"x\"\n[tasks.ask]\ninputs = [\"in.txt\"]\noutputs = [\"a.json\"]\nprompt_file = \"p.md\"\nschema = \"s.json\"\nretries = 3\n[tasks.review]\nmatrix = { expert = [\"finance\", \"legal\"], round = [1, 2] }\ninputs = [\"a.json\"]\noutputs = [\"r/{{ expert }}-{{ round }}.md\"]\nprompt = \"As {{ expert }}: {{ inputs['a.json'] }}\"\n",
];

/// What a mutation may insert.
const SNIPPETS: &[&[u8]] = &[
    b"\"",
    b"'",
    b"[",
    b"]",
    b"{",
    b"}",
    b"=",
    b"\n",
    b",",
    b"{{",
    b"}}",
    b"{%",
    b"..",
    b"/",
    b"[tasks.x]\n",
    b"[tasks.a]\n",
    b"inputs = [\"t\"]\n",
    b"foreach = { file = \"notes\" }\n",
    b"matrix = { a = [1, 2] }\n",
    b"1e999",
    b"-1",
    b"9223372036854775808",
    b"\xff",
    b"\x00",
    b"\xe9",
    b"\x1b[2J",
    b"\\u0000",
    b"\"\"\"",
    b"#",
];

#[test]
fn damaged_pipelines_are_refused_in_place() {
    let fixture = Fixture::new();
    let seeds: Vec<Vec<u8>> = SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect();
    fuzz(300, damaged(seeds, SNIPPETS), |bytes| {
        load_and_resolve(&fixture, &bytes, true)
    });
}

// What the harness found, kept.

/// humantime panics (`overflow in Duration::new`) on durations that add up
/// to exactly `u64::MAX` seconds; planexe refuses them first.
#[test]
fn found_a_timeout_that_sums_to_u64_max_seconds() {
    let fixture = Fixture::new();
    for place in ["[pipeline]\n", "[tasks.a]\ncommand = \"true\"\n"] {
        let text = format!(
            "{place}timeout = \"18446744073709551615s 999999999ns 1ns\"\n[tasks.b]\ncommand = \"true\"\n"
        );
        std::fs::write(fixture.pipeline_path(), text).unwrap();
        let pipeline = Pipeline::load(&fixture.pipeline_path(), "pipeline.toml".into()).unwrap();
        let run_dir = RunDir::open(&fixture.run).unwrap();
        let e = Graph::resolve(&pipeline, &run_dir, None, Lists::Present).unwrap_err();
        assert!(
            e.to_string()
                .contains(":11: a timeout can be at most 365 days"),
            "{e}"
        );
    }
}
