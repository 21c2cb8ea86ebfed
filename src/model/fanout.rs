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

/// Whether a key can name an instance and its files.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
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
    if matrix.is_empty() {
        return Err(err(format!("the matrix of task `{task}` has no variables")));
    }
    let mut combos: Vec<(Vec<String>, Vars)> = vec![(Vec::new(), Vars::new())];
    for (var, values) in matrix {
        if var == "item" || var == "key" || var == "inputs" || var == "task" {
            return Err(err(format!(
                "matrix variable `{var}` of task `{task}` shadows a template name"
            )));
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
                        )))
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
                "matrix key `{key}` of task `{task}` has characters that cannot name a file"
            ))
            .hint("use letters, digits, spaces and - _ . , + @ = in matrix values"));
        }
        if !seen.insert(key.clone()) {
            return Err(err(format!(
                "the matrix of task `{task}` repeats the combination `{key}`"
            )));
        }
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
}

/// Reads a `foreach` list from disk: `None` when the file does not exist.
pub fn foreach_instances(run_dir: &RunDir, task: &str, def: &ForeachDef) -> Result<Option<List>> {
    let path = run_dir.path(&def.file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io_at(&path, e)),
    };
    let hash = blake3::hash(
        format!(
            "{}\0{}\0{text}",
            def.items,
            def.key.as_deref().unwrap_or("")
        )
        .as_bytes(),
    )
    .to_hex()
    .to_string();
    let fail = |m: String| {
        Error::pipeline(format!("task `{task}`: list file {}: {m}", def.file))
            .hint("foreach = { file = \"list.json\", items = \"/json/pointer/to/array\", key = \"field\" }")
    };
    let doc: Value = serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
    let list = doc
        .pointer(&def.items)
        .ok_or_else(|| fail(format!("nothing at pointer `{}`", def.items)))?;
    let items = list
        .as_array()
        .ok_or_else(|| fail(format!("the value at `{}` is not an array", def.items)))?;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let key = match &def.key {
            None => index.to_string(),
            Some(field) => match item.get(field) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(other) => {
                    return Err(fail(format!(
                        "item {index}: key field `{field}` is {other}, not a string or number"
                    )))
                }
                None => return Err(fail(format!("item {index} has no key field `{field}`"))),
            },
        };
        if !valid_key(&key) {
            return Err(fail(format!(
                "item {index}: key `{key}` has characters that cannot name a file (such as / or [ ])"
            )));
        }
        if !seen.insert(key.clone()) {
            return Err(fail(format!("item {index}: key `{key}` is used twice")));
        }
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
    }))
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
