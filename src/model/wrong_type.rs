//! A value of the wrong type, or a number out of TOML's range, said in a
//! pipeline author's words: which key (`` `outputs` of task `a` ``), what
//! it takes and what was written (`expected an array, found an integer
//! `3``), and a hint that shows the key written right (`write it as
//! outputs = ["report.md"]`). serde names Rust types (`expected i64`,
//! `expected struct ForeachDef`, `sequence`, `map`) and toml an integer
//! past 64 bits `as i128`; neither names the key. The key is found by
//! reading the file again into a tree with spans, when it reads (a file
//! toml cannot read at all has no keys to name, and keeps serde's words
//! put in TOML's terms).

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// serde's message of a value of the wrong shape at `span` of `text`, in
/// the pipeline's terms, with a hint; other messages as they are.
pub(super) fn shape_error(raw: &str, text: &str, span: Range<usize>) -> (String, Option<String>) {
    if let Some(field) = raw
        .strip_prefix("missing field `")
        .and_then(|f| f.strip_suffix('`'))
    {
        return missing(field, place_of(text, &span));
    }
    if !raw.starts_with("invalid type: ") && !raw.starts_with("invalid length ") {
        return (raw.to_string(), None);
    }
    let place = place_of(text, &span);
    let Some(wrong) = Wrong::of(raw, place.as_ref()) else {
        return (raw.to_string(), None);
    };
    let message = match &place {
        Some(place) => format!("{}: {}", place.describe(), wrong.says()),
        None => wrong.says(),
    };
    (message, Some(wrong.hint(place.as_ref())))
}

/// A table without a key it needs (`missing field `provider``): which
/// table, which key, and the key written right.
fn missing(field: &str, place: Option<Place>) -> (String, Option<String>) {
    let Some(mut place) = place else {
        return (
            format!("missing key `{field}`"),
            Some(format!(
                "add {field} = ... to the marked table (docs/pipeline.md gives every key)"
            )),
        );
    };
    let message = format!("{} has no `{field}`, which it needs", place.describe());
    place.path.push(Step::Key(field.to_string()));
    let hint = match place.example() {
        Some(example) => format!("add {example}"),
        None => format!("add {field} = ... (docs/pipeline.md gives every key)"),
    };
    (message, Some(hint))
}

/// What serde found wrong, in TOML's terms.
enum Wrong {
    /// `expected`, `found`: an article and a type, and the value when it
    /// is short (`a string "x"`).
    Type { expected: String, found: String },
    /// An integer past 64 bits, as written.
    OutOfRange(String),
}

impl Wrong {
    fn of(raw: &str, place: Option<&Place>) -> Option<Wrong> {
        // serde reads a struct from an array too, and says so in lengths
        // (`invalid length 2, expected struct ForeachDef with 3 elements`)
        // or in the type of its first element.
        if place.is_some_and(|p| p.array_for_table) || raw.starts_with("invalid length ") {
            let is_struct = raw.contains("expected struct ") || place.is_some();
            return is_struct.then(|| Wrong::Type {
                expected: "a table".into(),
                found: "an array".into(),
            });
        }
        let invalid = raw.strip_prefix("invalid type: ")?;
        let (found, expected) = invalid.split_once(", expected ")?;
        if let Some(number) = found
            .strip_prefix("integer `")
            .and_then(|f| f.strip_suffix("` as i128"))
        {
            return Some(Wrong::OutOfRange(number.to_string()));
        }
        let expected = match expected {
            "a string" | "a borrowed string" | "a character" => "a string",
            "a sequence" => "an array",
            "a map" => "a table",
            "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" => "an integer",
            "f32" | "f64" => "a number",
            "a boolean" | "bool" => "a boolean (true or false)",
            e if e.starts_with("struct ") => "a table",
            _ => return None,
        };
        let found = match place.and_then(|p| p.date.as_deref()) {
            // toml hands a date to serde as a table of one field.
            Some(date) => format!("a date `{date}`"),
            None => in_words(found),
        };
        Some(Wrong::Type {
            expected: expected.to_string(),
            found,
        })
    }

    fn says(&self) -> String {
        match self {
            Wrong::Type { expected, found } => format!("expected {expected}, found {found}"),
            Wrong::OutOfRange(n) if n.starts_with('-') => format!(
                "{n} is out of range: a TOML integer is at least {}",
                i64::MIN
            ),
            Wrong::OutOfRange(n) => format!(
                "{n} is out of range: a TOML integer is at most {}",
                i64::MAX
            ),
        }
    }

    /// How to write the value: the key written right, when the key is
    /// known; else what kind of value to write.
    fn hint(&self, place: Option<&Place>) -> String {
        const TYPES: &str = "docs/pipeline.md gives every key's type";
        if let Some(example) = place.and_then(Place::example) {
            // An example that names its own page needs no other.
            return match example.contains("(docs/") {
                true => format!("write it as {example}"),
                false => format!("write it as {example} ({TYPES})"),
            };
        }
        match self {
            Wrong::Type { expected, .. } if expected == "an array" => {
                format!("write an array here, key = [\"a\", \"b\"] ({TYPES})")
            }
            Wrong::Type { expected, .. } if expected == "a table" => format!(
                "write a table here, key = {{ name = value, ... }} or a [section] ({TYPES})"
            ),
            _ => format!("fix the value at the marked position: {TYPES}"),
        }
    }
}

/// serde's name of what it found, as a pipeline's author says it.
fn in_words(found: &str) -> String {
    match found {
        "map" => "a table".to_string(),
        "sequence" => "an array".to_string(),
        other if other.starts_with("integer") => format!("an {other}"),
        other => match other.strip_prefix("floating point ") {
            Some(value) => format!("a number {value}"),
            None => format!("a {other}"),
        },
    }
}

/// One step of the way to a value: a key, or an item of an array.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Item(usize),
}

/// Where in the file a refused value is.
#[derive(Debug)]
struct Place {
    /// The keys (and items of arrays of tables) down to the key whose
    /// value holds the refused one.
    path: Vec<Step>,
    /// The refused value is an item of the key's array, not its value.
    item: bool,
    /// The key takes a table and was given an array.
    array_for_table: bool,
    /// The refused value is a date, as written.
    date: Option<String>,
}

/// The place of the value at `span`, when the file reads as TOML.
fn place_of(text: &str, span: &Range<usize>) -> Option<Place> {
    let root = DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    let found = find(root.get_ref(), span, &mut path)?;
    let (item, value) = found;
    let date = match value {
        DeValue::Datetime(d) => Some(d.to_string()),
        _ => None,
    };
    // An item refused is an item of the key's array.
    let array_for_table = (item || matches!(value, DeValue::Array(_))) && takes_table(&path);
    Some(Place {
        path,
        // The array is what is wrong, not its item.
        item: item && !array_for_table,
        array_for_table,
        date,
    })
}

/// The innermost value of `table` that holds `span`, and whether it is
/// an item of an array; `path` is left at the key (or array of tables'
/// item) that holds it. Tables are searched whatever their span: one a
/// `[header]` makes spans its header only.
fn find<'a, 'i>(
    table: &'a DeTable<'i>,
    span: &Range<usize>,
    path: &mut Vec<Step>,
) -> Option<(bool, &'a DeValue<'i>)> {
    for (key, value) in table {
        path.push(Step::Key(key.get_ref().to_string()));
        if let Some(found) = find_in(value, span, path) {
            return Some(found);
        }
        path.pop();
    }
    None
}

/// [`find`] in the value of a key.
fn find_in<'a, 'i>(
    value: &'a Spanned<DeValue<'i>>,
    span: &Range<usize>,
    path: &mut Vec<Step>,
) -> Option<(bool, &'a DeValue<'i>)> {
    let holds = |s: Range<usize>| s.start <= span.start && span.end <= s.end;
    match value.get_ref() {
        DeValue::Table(inner) => {
            if let Some(found) = find(inner, span, path) {
                return Some(found);
            }
        }
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if let DeValue::Table(inner) = item.get_ref() {
                    path.push(Step::Item(i));
                    if let Some(found) = find(inner, span, path) {
                        return Some(found);
                    }
                    if holds(item.span()) {
                        return Some((false, item.get_ref()));
                    }
                    path.pop();
                } else if holds(item.span()) && item.span() != value.span() {
                    return Some((true, item.get_ref()));
                }
            }
        }
        _ => {}
    }
    holds(value.span()).then_some((false, value.get_ref()))
}

/// Whether the key at `path` takes a table (serde would read it from an
/// array too, and say something else).
fn takes_table(path: &[Step]) -> bool {
    let keys: Vec<&str> = path
        .iter()
        .map(|s| match s {
            Step::Key(k) => k.as_str(),
            Step::Item(_) => "[]",
        })
        .collect();
    matches!(
        keys.as_slice(),
        ["pipeline" | "tasks" | "models"]
            | ["tasks" | "models", _]
            | ["tasks", _, "judge" | "foreach" | "matrix"]
            | ["models", _, "extra_body"]
            | ["hooks", "[]"]
    )
}

impl Place {
    /// The key as a person reads it: `` `outputs` of task `a` ``, ``an
    /// item of `inputs` of task `a` ``, `` `jobs` in [pipeline] ``.
    fn describe(&self) -> String {
        let dotted = |steps: &[Step]| {
            let mut out = String::new();
            for step in steps {
                match step {
                    Step::Key(k) if out.is_empty() => out.push_str(k),
                    Step::Key(k) => {
                        out.push('.');
                        out.push_str(k);
                    }
                    Step::Item(i) => out.push_str(&format!("[{i}]")),
                }
            }
            out
        };
        let key = |k: &str| match k {
            "tasks" => "task",
            _ => "model",
        };
        let whose = match self.path.as_slice() {
            [Step::Key(t), Step::Key(name)] if t == "tasks" || t == "models" => {
                format!("{} `{name}`", key(t))
            }
            [Step::Key(t), Step::Key(name), rest @ ..] if t == "tasks" || t == "models" => {
                format!("`{}` of {} `{name}`", dotted(rest), key(t))
            }
            [Step::Key(p), rest @ ..] if p == "pipeline" && !rest.is_empty() => {
                format!("`{}` in [pipeline]", dotted(rest))
            }
            [Step::Key(h), Step::Item(i)] if h == "hooks" => format!("hook {}", i + 1),
            [Step::Key(h), Step::Item(i), rest @ ..] if h == "hooks" => {
                format!("`{}` of hook {}", dotted(rest), i + 1)
            }
            path => format!("`{}`", dotted(path)),
        };
        if self.item {
            format!("an item of {whose}")
        } else {
            whose
        }
    }

    /// The key written right, when planexe knows it.
    fn example(&self) -> Option<String> {
        let keys: Vec<&str> = self
            .path
            .iter()
            .filter_map(|s| match s {
                Step::Key(k) => Some(k.as_str()),
                Step::Item(_) => None,
            })
            .collect();
        let example = match keys.as_slice() {
            ["pipeline"] => "[pipeline] with name = \"plan\", jobs = 4, model = \"local\"",
            ["tasks"] => "[tasks.NAME] with outputs = [\"out.md\"] and command = \"make out.md\"",
            ["models"] => "[models.NAME] with provider = \"openai\", base_url = \"http://127.0.0.1:8080/v1\", model = \"smollm2\"",
            ["hooks"] => "[[hooks]] with url = \"https://example.com/hook\" (one [[hooks]] table each)",
            ["tasks", _] => "[tasks.NAME] with outputs = [\"out.md\"] and command = \"make out.md\"",
            ["models", _] => "[models.NAME] with provider = \"openai\", base_url = \"http://127.0.0.1:8080/v1\", model = \"smollm2\"",
            ["tasks", _, "judge"] => "[tasks.NAME.judge] with prompt = \"...\" and threshold = 0.7 (docs/checks.md)",
            ["tasks", _, "foreach"] => "foreach = { file = \"list.json\", items = \"/pointer\", key = \"field\" } (docs/fanout.md); for a list of fixed values, use matrix = { name = [\"a\", \"b\"] }",
            ["tasks", _, "foreach", "file"] => "foreach = { file = \"list.json\" }",
            ["tasks", _, "foreach", "items"] => "foreach = { file = \"list.json\", items = \"/packages\" }",
            ["tasks", _, "foreach", "key"] => "foreach = { file = \"list.json\", key = \"id\" }",
            ["tasks", _, "matrix", ..] => "matrix = { expert = [\"finance\", \"legal\"] }",
            ["tasks", _, "judge", key] => judge_example(key)?,
            ["tasks", _, key] => task_example(key)?,
            ["models", _, key] => model_example(key)?,
            ["pipeline", key] => pipeline_example(key)?,
            ["hooks", key] => hook_example(key)?,
            _ => return None,
        };
        Some(example.to_string())
    }
}

/// A `[tasks.NAME]` key written right.
fn task_example(key: &str) -> Option<&'static str> {
    Some(match key {
        "inputs" => "inputs = [\"plan.txt\", \"notes/*.md\"]",
        "outputs" => "outputs = [\"report.md\"]",
        "after" => "after = [\"outline\"]",
        "command" => "command = \"make report.md\"",
        "prompt" => "prompt = \"Summarize {{ inputs['plan.txt'] }}\"",
        "prompt_file" => "prompt_file = \"prompts/summary.md\"",
        "system" => "system = \"You are a careful planner.\"",
        "schema" => "schema = \"schemas/summary.json\"",
        "format" => "format = \"json\" (or \"text\")",
        "model" => "model = \"local\", a [models.NAME] of the pipeline",
        "retries" => "retries = 2",
        "keep_reasoning" => "keep_reasoning = true",
        "max_tokens" => "max_tokens = 4096",
        "timeout" => DURATION,
        "check" => "check = \"test -s report.md\"",
        "min_bytes" => "min_bytes = 1",
        "severity" => "severity = \"warn\" (or \"error\")",
        "rescue" => "rescue = true",
        _ => return None,
    })
}

/// A `[models.NAME]` key written right.
fn model_example(key: &str) -> Option<&'static str> {
    Some(match key {
        "provider" => "provider = \"openai\" (or \"anthropic\", \"replay\")",
        "base_url" => "base_url = \"http://127.0.0.1:8080/v1\"",
        "model" => "model = \"qwen3-4b\", the name the server knows",
        "dir" => "dir = \"answers\"",
        "replays" => "replays = \"local\"",
        "api_key_env" => "api_key_env = \"OPENAI_API_KEY\"",
        "timeout" => {
            "timeout = \"10m\" (a duration: \"90s\", \"10m\", \"1h 30m\" or a number of seconds)"
        }
        "idle_timeout" => {
            "idle_timeout = \"120s\" (a duration: \"90s\", \"10m\" or a number of seconds)"
        }
        "max_retry_wait" => {
            "max_retry_wait = \"5m\" (a duration: \"90s\", \"10m\" or a number of seconds)"
        }
        "max_concurrency" => "max_concurrency = 2",
        "requests_per_minute" => "requests_per_minute = 60",
        "temperature" => "temperature = 0.2",
        "seed" => "seed = 42",
        "max_tokens" => "max_tokens = 4096",
        "input_cost_per_mtok" => "input_cost_per_mtok = 0.5",
        "output_cost_per_mtok" => "output_cost_per_mtok = 1.5",
        "max_answer_bytes" => {
            "max_answer_bytes = \"4 MiB\" (a size: a number of bytes, or \"512 KiB\", \"4 MiB\")"
        }
        "fallback" => "fallback = [\"cloud\"], names of other [models.NAME]",
        "structured_output" => "structured_output = \"json_schema\" (or \"json_object\", \"none\")",
        "prefill" => "prefill = \"{\"",
        "stream" => "stream = true",
        "extra_body" => "extra_body = { repeat_penalty = 1.15, top_p = 0.9 }",
        _ => return None,
    })
}

/// A `[pipeline]` key written right.
fn pipeline_example(key: &str) -> Option<&'static str> {
    Some(match key {
        "name" => "name = \"plan\"",
        "jobs" => "jobs = 4",
        "timeout" => DURATION,
        "model" => "model = \"local\", a [models.NAME] of the pipeline",
        "results" => "results = [\"out/report.md\"]",
        "cache" => "cache = \"answers\"",
        _ => return None,
    })
}

/// A `[tasks.NAME.judge]` key written right.
fn judge_example(key: &str) -> Option<&'static str> {
    Some(match key {
        "prompt" => "prompt = \"Score the answer from 0 to 1: {{ output }}\"",
        "model" => "model = \"local\", a [models.NAME] of the pipeline",
        "threshold" => "threshold = 0.7",
        "retries" => "retries = 1",
        "severity" => "severity = \"warn\" (or \"error\")",
        _ => return None,
    })
}

/// A `[[hooks]]` key written right.
fn hook_example(key: &str) -> Option<&'static str> {
    Some(match key {
        "url" => "url = \"https://example.com/hook\"",
        "command" => "command = \"cat >> events.jsonl\"",
        "events" => "events = [\"task.failed\", \"build.finished\"]",
        "format" => "format = \"slack\" (or \"json\", \"discord\")",
        _ => return None,
    })
}

/// A task's or the pipeline's `timeout`, written right.
const DURATION: &str =
    "timeout = \"10m\" (a duration: \"90s\", \"10m\", \"1h 30m\" or a number of seconds, at most 365 days)";

#[cfg(test)]
mod tests {
    use super::*;

    /// What is said of `raw` at the first `at` in `text`; a `]` ending
    /// `at` finds an item of an array, and is not in the span.
    fn said(text: &str, raw: &str, at: &str) -> (String, String) {
        let start = text.find(at).unwrap();
        let len = at.trim_end_matches(']').len();
        let (message, hint) = shape_error(raw, text, start..start + len);
        (message, hint.unwrap_or_default())
    }

    #[test]
    fn the_key_is_named_with_what_it_takes() {
        let text = "[tasks.a]\noutputs = 3\ncommand = [\"x\"]\ninputs = [1]\n";
        let (m, h) = said(text, "invalid type: integer `3`, expected a sequence", "3");
        assert_eq!(
            m,
            "`outputs` of task `a`: expected an array, found an integer `3`"
        );
        assert_eq!(
            h,
            "write it as outputs = [\"report.md\"] (docs/pipeline.md gives every key's type)"
        );
        let (m, _) = said(text, "invalid type: sequence, expected a string", "[\"x\"]");
        assert_eq!(
            m,
            "`command` of task `a`: expected a string, found an array"
        );
        let (m, _) = said(text, "invalid type: integer `1`, expected a string", "1]");
        assert_eq!(
            m,
            "an item of `inputs` of task `a`: expected a string, found an integer `1`"
        );
    }

    #[test]
    fn an_integer_past_64_bits_is_out_of_range() {
        let text = "[pipeline]\njobs = 99999999999999999999\n[models.m]\ntimeout = -99999999999999999999\n";
        let (m, h) = said(
            text,
            "invalid type: integer `99999999999999999999` as i128, expected i64",
            "99999999999999999999",
        );
        assert_eq!(
            m,
            "`jobs` in [pipeline]: 99999999999999999999 is out of range: a TOML integer is at most 9223372036854775807"
        );
        assert!(h.starts_with("write it as jobs = 4"), "{h}");
        let (m, h) = said(
            text,
            "invalid type: integer `-99999999999999999999` as i128, expected any valid TOML value",
            "-99999999999999999999",
        );
        assert!(m.starts_with("`timeout` of model `m`: -999"), "{m}");
        assert!(m.ends_with("at least -9223372036854775808"), "{m}");
        assert!(h.starts_with("write it as timeout = \"10m\""), "{h}");
    }

    #[test]
    fn tables_hooks_and_dates() {
        let text = "tasks = [1]\n[[hooks]]\nurl = 3\n[pipeline]\nname = 1979-05-27\n";
        let (m, h) = said(text, "invalid type: sequence, expected a map", "[1]");
        assert_eq!(m, "`tasks`: expected a table, found an array");
        assert!(h.starts_with("write it as [tasks.NAME] with"), "{h}");
        let (m, _) = said(text, "invalid type: integer `3`, expected a string", "3");
        assert_eq!(
            m,
            "`url` of hook 1: expected a string, found an integer `3`"
        );
        let (m, _) = said(text, "invalid type: map, expected a string", "1979-05-27");
        assert_eq!(
            m,
            "`name` in [pipeline]: expected a string, found a date `1979-05-27`"
        );
        // serde's words for a struct read from an array.
        let text = "pipeline = [1]\n";
        let (m, _) = said(text, "invalid type: integer `1`, expected a string", "1]");
        assert_eq!(m, "`pipeline`: expected a table, found an array");
    }

    #[test]
    fn a_missing_key_is_named_with_its_table() {
        let text = "[models.m]\nmodel = \"x\"\n[tasks.a]\nforeach = { items = \"/a\" }\n";
        let (m, h) = said(text, "missing field `provider`", "[models.m]");
        assert_eq!(m, "model `m` has no `provider`, which it needs");
        assert_eq!(
            h,
            "add provider = \"openai\" (or \"anthropic\", \"replay\")"
        );
        let (m, h) = said(text, "missing field `file`", "{ items = \"/a\" }");
        assert_eq!(m, "`foreach` of task `a` has no `file`, which it needs");
        assert_eq!(h, "add foreach = { file = \"list.json\" }");
    }

    #[test]
    fn without_a_tree_the_words_are_still_tomls() {
        let (m, h) = shape_error("invalid type: sequence, expected a map", "not toml [", 0..1);
        assert_eq!(m, "expected a table, found an array");
        assert!(h.unwrap().starts_with("write a table here"));
        let (m, _) = shape_error("something else", "", 0..0);
        assert_eq!(m, "something else");
    }
}
