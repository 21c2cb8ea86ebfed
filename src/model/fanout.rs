//! Fan-out tasks: one task instance per item of a JSON list (`foreach`) or
//! per combination of static values (`matrix`).
//!
//! A `matrix` expands when the pipeline is read. A `foreach` expands once its
//! list file is up to date: until then the task is a placeholder that waits
//! for the list's producer, and the graph grows by its instances when the
//! list is ready ([`crate::model::Graph::expand`]). Instances are named
//! `task[KEY]`; each is a task in its own right, with its own fingerprint
//! (which covers its item), sidecars, retries and failure record.
//!
//! This module reads lists and matrices into [`Instance`]s; it knows
//! nothing of the graph.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use serde_json::Value;

use super::limits::{self, ReadError, MAX_INSTANCES, MAX_NAME_BYTES};
use super::pipeline::{ForeachDef, Source};
use super::template::Vars;
use crate::error::{Error, Result};
use crate::store::RunDir;

/// One instance of a fan-out task.
#[derive(Debug, Clone)]
pub struct Instance {
    pub key: String,
    pub vars: Vars,
}

/// The name of an instance: `task[KEY]`.
pub fn instance_name(task: &str, key: &str) -> String {
    format!("{task}[{key}]")
}

/// The fan-out task an instance name belongs to, and its key.
pub fn split_instance(name: &str) -> Option<(&str, &str)> {
    let open = name.find('[')?;
    let key = name[open + 1..].strip_suffix(']')?;
    Some((&name[..open], key))
}

/// The longest key of an instance, in bytes.
pub const MAX_KEY_BYTES: usize = 128;

/// Whether a key can name an instance and its files.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && key != "."
        && key != ".."
        && key.chars().all(|c| {
            c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ',' | '+' | '@' | '=' | ' ')
        })
}

/// Expands a matrix into the cross product of its value lists, in order.
pub fn matrix_instances(
    source: &Source,
    task: &str,
    span: Range<usize>,
    matrix: &BTreeMap<String, Vec<toml::Value>>,
) -> Result<Vec<Instance>> {
    let err = |m: String| Error::pipeline(source.diagnostic(span.clone(), &m));
    const SHAPE: &str =
        "matrix = { NAME = [VALUE, ...], ... } runs the task once per combination of values";
    if matrix.is_empty() {
        return Err(err(format!("the matrix of task `{task}` has no variables")).hint(SHAPE));
    }
    // An empty variable would leave the task without an instance, silently.
    if let Some((var, _)) = matrix.iter().find(|(_, values)| values.is_empty()) {
        return Err(err(format!(
            "matrix variable `{var}` of task `{task}` has no values, so the task would have no instance"
        ))
        .hint("give it at least one value, or remove it from the matrix"));
    }
    // The size of the cross product, before making it: ten variables of a
    // hundred values would not fit in memory.
    let count = matrix
        .values()
        .try_fold(1usize, |n, values| n.checked_mul(values.len()));
    if count.is_none_or(|n| n > MAX_INSTANCES) {
        let shown = count.map_or("more than 2^64".to_string(), |n| n.to_string());
        return Err(err(format!(
            "the matrix of task `{task}` makes {shown} instances; a fan-out may have at most {MAX_INSTANCES}"
        ))
        .hint("use fewer variables or values, or split the task"));
    }
    let mut combos: Vec<(Vec<String>, Vars)> = vec![(Vec::new(), Vars::new())];
    for (var, values) in matrix {
        if var == "item" || var == "key" || var == "inputs" || var == "task" {
            return Err(err(format!(
                "matrix variable `{var}` of task `{task}` shadows a template name"
            ))
            .hint("rename the variable: `item`, `key`, `inputs` and `task` are taken"));
        }
        let mut next = Vec::new();
        for (parts, vars) in &combos {
            for value in values {
                let text = match value {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(err(format!(
                            "matrix value {other} of `{var}` in task `{task}` is not a string, number or boolean"
                        ))
                        .hint(SHAPE))
                    }
                };
                let mut parts = parts.clone();
                parts.push(text.clone());
                let mut vars = vars.clone();
                vars.insert(var.clone(), Value::String(text));
                next.push((parts, vars));
            }
        }
        combos = next;
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(combos.len());
    for (parts, mut vars) in combos {
        let key = parts.join(",");
        if !valid_key(&key) {
            return Err(err(format!(
                "matrix key `{}` of task `{task}` has characters that cannot name a file, or is longer than {MAX_KEY_BYTES} bytes",
                limits::shorten(&key).escape_debug()
            ))
            .hint("use letters, digits, spaces and - _ . , + @ = in matrix values"));
        }
        if !seen.insert(key.clone()) {
            return Err(err(format!(
                "the matrix of task `{task}` repeats the combination `{key}`"
            ))
            .hint("list each value of a variable once"));
        }
        check_name_length(task, &key).map_err(|(m, hint)| err(m).hint(hint))?;
        vars.insert("key".into(), Value::String(key.clone()));
        out.push(Instance { key, vars });
    }
    Ok(out)
}

/// A `foreach` list as read: its instances, and a hash of the file they
/// came from (an unchanged file gives the same instances).
#[derive(Debug, Clone)]
pub struct List {
    pub instances: Vec<Instance>,
    pub hash: String,
    /// The file's bytes' hash (`store::stamp::bytes_hash`).
    pub read: String,
}

/// Reads a `foreach` list from disk: `None` when the file does not exist.
/// `span` is the task's `foreach` table, where every refusal points; each
/// is of the run's file, not of the pipeline ([`Error::of_run_file`]).
pub fn foreach_instances(
    run_dir: &RunDir,
    source: &Source,
    task: &str,
    def: &ForeachDef,
    span: Range<usize>,
) -> Result<Option<List>> {
    const SHAPE: &str =
        "foreach = { file = \"list.json\", items = \"/json/pointer/to/array\", key = \"field\" }";
    let fail = |m: String, hint: &str| {
        Error::pipeline(source.diagnostic(
            span.clone(),
            &format!("task `{task}`: list file {}: {m}", def.file),
        ))
        .hint(hint.to_string())
        .of_run_file()
    };
    let path = run_dir.path(&def.file);
    // The list is an input: its items reach commands and models, so it
    // must not lead out of the run directory through a symlink.
    match std::fs::canonicalize(&path) {
        Ok(real) if !real.starts_with(run_dir.root()) => return Err(fail(
            format!(
                "it resolves to {}, outside the run directory",
                real.display()
            ),
            "a list file, as every input, must lie inside the run directory (symlinks resolved)",
        )),
        _ => {}
    }
    if path.metadata().is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return Err(fail(
            "it is not a regular file".into(),
            "name a JSON file holding the list",
        ));
    }
    let bytes = match limits::read_bounded(&path) {
        Ok(bytes) => bytes,
        Err(ReadError::Missing) => return Ok(None),
        Err(ReadError::Folder) => {
            return Err(fail(
                "it is a folder, not a JSON file".into(),
                "`file` names a JSON file holding the list (such as notes.json); let a task write it from the folder's contents",
            ))
        }
        Err(e) => return Err(fail(format!("cannot read it: {e}"), SHAPE)),
    };
    let mut hasher = blake3::Hasher::new();
    hasher.update(def.items.as_bytes());
    hasher.update(b"\0");
    hasher.update(def.key.as_deref().unwrap_or("").as_bytes());
    hasher.update(b"\0");
    hasher.update(&bytes);
    let hash = hasher.finalize().to_hex().to_string();
    let read = crate::store::stamp::bytes_hash(&bytes);
    let doc: Value =
        serde_json::from_slice(&bytes).map_err(|e| fail(format!("not JSON: {e}"), SHAPE))?;
    drop(bytes);
    let list = doc
        .pointer(&def.items)
        .ok_or_else(|| fail(format!("nothing at pointer `{}`", def.items), SHAPE))?;
    let items = list.as_array().ok_or_else(|| {
        fail(
            format!("the value at `{}` is not an array", def.items),
            SHAPE,
        )
    })?;
    if items.len() > MAX_INSTANCES {
        return Err(fail(
            format!(
                "it has {} items; a fan-out may have at most {MAX_INSTANCES}",
                items.len()
            ),
            "split the list, or let each item stand for several",
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let key = match &def.key {
            None => index.to_string(),
            Some(field) => match item.get(field) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(other) => {
                    return Err(fail(
                        format!(
                            "item {index}: key field `{field}` is {}, not a string or number",
                            limits::shorten(&other.to_string())
                        ),
                        SHAPE,
                    ))
                }
                None => {
                    return Err(fail(
                        format!("item {index} has no key field `{field}`"),
                        SHAPE,
                    ))
                }
            },
        };
        if !valid_key(&key) {
            return Err(fail(
                format!(
                    "item {index}: key `{}` has characters that cannot name a file (such as / or [ ]), or is longer than {MAX_KEY_BYTES} bytes",
                    // Escaped: the list is often a model's answer, and a
                    // line break of its own must not start a line here.
                    limits::shorten(&key).escape_debug()
                ),
                "keys are made of letters, digits, spaces and - _ . , + @ =; choose another `key` field, or none to number the items",
            ));
        }
        if !seen.insert(key.clone()) {
            return Err(fail(
                format!("item {index}: key `{key}` is used twice"),
                "each item needs a key of its own; choose another `key` field, or none to number the items",
            ));
        }
        check_name_length(task, &key)
            .map_err(|(m, hint)| fail(format!("item {index}: {m}"), hint))?;
        let mut vars = Vars::new();
        vars.insert("item".into(), item.clone());
        // No `index`: with stable keys, reordering the list must change
        // nothing about an instance.
        vars.insert("key".into(), Value::String(key.clone()));
        out.push(Instance { key, vars });
    }
    Ok(Some(List {
        instances: out,
        hash,
        read,
    }))
}

/// Refuses an instance whose name (`task[key]`) would be too long to name
/// its files under `.planexe/tasks/`.
fn check_name_length(task: &str, key: &str) -> std::result::Result<(), (String, &'static str)> {
    let name = instance_name(task, key);
    if name.len() <= MAX_NAME_BYTES {
        return Ok(());
    }
    Err((
        format!(
            "instance `{}` has a name of {} bytes; names are at most {MAX_NAME_BYTES}",
            limits::shorten(&name),
            name.len()
        ),
        "an instance's name (TASK[KEY]) names its files under .planexe/tasks/: use shorter keys or a shorter task name",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_round_trip() {
        assert_eq!(instance_name("wbs3", "7"), "wbs3[7]");
        assert_eq!(split_instance("wbs3[7]"), Some(("wbs3", "7")));
        assert_eq!(split_instance("wbs3"), None);
        assert!(valid_key("finance,2024"));
        assert!(!valid_key("a/b"));
        assert!(!valid_key(".."));
        assert!(!valid_key("x]"));
    }

    #[test]
    fn matrices_are_cross_products_in_order() {
        let source = Source {
            display: "p.toml",
            text: "x",
        };
        let mut m = BTreeMap::new();
        m.insert(
            "a".to_string(),
            vec![
                toml::Value::String("x".into()),
                toml::Value::String("y".into()),
            ],
        );
        m.insert(
            "b".to_string(),
            vec![toml::Value::Integer(1), toml::Value::Integer(2)],
        );
        let keys: Vec<String> = matrix_instances(&source, "t", 0..1, &m)
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(keys, ["x,1", "x,2", "y,1", "y,2"]);
    }
}
