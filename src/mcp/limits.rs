//! The bounds on what a client sends, and how much of a bad value an error
//! quotes back.
//!
//! Each bound is stated three times from the same constant: in the tools'
//! input schemas (`catalog`), in `server_info`'s `limits`, and here, where
//! the server checks it itself before anything else reads the arguments
//! (a client may ignore schemas, and a schema error about a megabyte value
//! or a list of a million would be as large; `run_create`'s `files` are
//! bounded by `seeds`, at the same time). Too many targets would
//! otherwise reach the build's command line, which the system refuses.
//!
//! No error echoes a client's value whole: [`quoted`] keeps at most
//! [`QUOTED`] bytes of it, and [`shorten_echoes`] cuts any long argument
//! an error from below still quotes.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The longest run name, in bytes (names are ASCII).
pub const RUN_NAME_MAX_BYTES: usize = 100;

/// The longest path a client names (`run_create`'s `pipeline`,
/// `read_output`'s `path`), in bytes: the system's own `PATH_MAX`.
pub const PATH_MAX_BYTES: usize = 4096;

/// The longest name of a task, target or model, in characters (as JSON
/// Schema's `maxLength` counts them).
pub const TEXT_MAX_CHARS: usize = 1024;

/// The most targets of a build, or tasks of a clean. With
/// [`TEXT_MAX_CHARS`], a build's command line stays within what the system
/// takes.
pub const TARGETS_MAX: usize = 1000;

/// The most of a client's value an error quotes back, in bytes.
pub const QUOTED: usize = 80;

/// `value`, escaped as Rust's `{:?}` would, cut to at most [`QUOTED`]
/// bytes, with its length when it was cut: `xxxx… (1048576 bytes)`.
pub fn quoted(value: &str) -> String {
    let escaped = value.escape_debug().to_string();
    if escaped.len() <= QUOTED {
        return escaped;
    }
    let mut cut = QUOTED;
    while !escaped.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} bytes)", &escaped[..cut], value.len())
}

/// The bound of one argument: the properties that take it.
enum Bound {
    Bytes(usize, &'static str),
    Chars(usize, &'static str),
}

/// The bound of the property `key` of any tool, if it has one.
fn bound(key: &str) -> Option<Bound> {
    match key {
        "run" | "name" => Some(Bound::Bytes(RUN_NAME_MAX_BYTES, "a run name")),
        "pipeline" | "path" => Some(Bound::Bytes(PATH_MAX_BYTES, "a path")),
        "task" | "model" | "targets" | "tasks" => Some(Bound::Chars(
            TEXT_MAX_CHARS,
            "a name of a task, a target or a model",
        )),
        _ => None,
    }
}

/// Checks the bounds of `arguments` of `tool` (before its schema does): a
/// string too long, a list too long. Values of another type are the
/// schema's to refuse.
pub fn check(tool: &str, arguments: &Map<String, Value>) -> Result<()> {
    let refuse = |message: String| {
        Error::usage(format!("invalid arguments for {tool}: {message}")).hint(format!(
            "server_info's limits and {tool}'s inputSchema in tools/list give the bounds"
        ))
    };
    for (key, value) in arguments {
        let Some(bound) = bound(key) else {
            continue;
        };
        let strings: Vec<&str> = match value {
            Value::String(s) => vec![s],
            Value::Array(items) => {
                if items.len() > TARGETS_MAX {
                    return Err(refuse(format!(
                        "`{key}` holds {} {key}; at most {TARGETS_MAX} are taken",
                        items.len()
                    ))
                    .hint(format!(
                        "name fewer {key}: each brings along what it needs (for build, leave targets out to build everything)"
                    )));
                }
                items.iter().filter_map(Value::as_str).collect()
            }
            _ => continue,
        };
        for s in strings {
            let (len, max, unit, what) = match bound {
                Bound::Bytes(max, what) => (s.len(), max, "bytes", what),
                Bound::Chars(max, what) => (s.chars().count(), max, "characters", what),
            };
            if len > max {
                return Err(refuse(format!(
                    "`{key}` `{}` is {len} {unit} long; {what} is at most {max} {unit}",
                    quoted(s)
                )));
            }
        }
    }
    Ok(())
}

/// `text` (an error's) with each long string of `arguments` it quotes
/// (as sent, or escaped) cut short by [`quoted`].
pub fn shorten_echoes(text: String, arguments: &Value) -> String {
    let mut long = Vec::new();
    collect_long(arguments, &mut long);
    long.sort_by_key(|s| std::cmp::Reverse(s.len()));
    long.dedup();
    long.into_iter().fold(text, |text, value| {
        let short = quoted(value);
        let escaped = value.escape_debug().to_string();
        let text = if escaped != value && text.contains(&escaped) {
            text.replace(&escaped, &short)
        } else {
            text
        };
        if text.contains(value) {
            text.replace(value, &short)
        } else {
            text
        }
    })
}

/// The strings in `value` longer than [`QUOTED`] bytes (cut longest first,
/// so that one holding another is cut whole).
fn collect_long<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) if s.len() > QUOTED => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| collect_long(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_long(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_quoted_short() {
        assert_eq!(quoted("abc"), "abc");
        assert_eq!(quoted("a\nb"), "a\\nb");
        let long = "é".repeat(100);
        let q = quoted(&long);
        assert!(q.len() < QUOTED + 30, "{q}");
        assert!(q.ends_with("… (200 bytes)"), "{q}");
        let text = format!("no task `{long}`; and {}", long.escape_debug());
        let short = shorten_echoes(text, &serde_json::json!({"task": long}));
        assert_eq!(short.matches("(200 bytes)").count(), 2, "{short}");
    }

    #[test]
    fn bounds_are_checked_with_what_is_wrong() {
        let args = |v: Value| v.as_object().unwrap().clone();
        assert!(check(
            "build",
            &args(serde_json::json!({"run": "r", "targets": ["a"]}))
        )
        .is_ok());
        let e = check(
            "build",
            &args(serde_json::json!({"targets": vec!["a"; TARGETS_MAX + 1]})),
        )
        .unwrap_err();
        assert!(e.to_string().contains("1001 targets"), "{e}");
        let e = check("status", &args(serde_json::json!({"run": "x".repeat(101)}))).unwrap_err();
        assert!(e.to_string().contains("at most 100 bytes"), "{e}");
        // Not a string: the schema's.
        assert!(check("status", &args(serde_json::json!({"run": 3}))).is_ok());
    }
}
