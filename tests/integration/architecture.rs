//! The layers of docs/architecture.md, checked on the source: each layer
//! of `src/` imports only the layers below it, and no module imports
//! (directly or through others) a sibling that imports it back, at any
//! depth. A module and the modules inside it may use each other freely.
//!
//! References are read from the text: `crate::` and `super::` paths, in
//! `use` trees and in code, resolved to the longest prefix that is a module
//! file. Comments are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first; a layer may use the ones before it.
const LAYERS: &[&[&str]] = &[
    &["error", "clock"],
    &["store"],
    &["model"],
    &["plan"],
    &["exec"],
    &["observe"],
    &["mcp"],
    &["cli"],
];

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&top))
}

/// Every `.rs` file under `src/` with its module path (`store::log`).
fn modules(src: &Path) -> Vec<(Vec<String>, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                parts.clear();
            }
            out.push((parts, path));
        }
    }
    out
}

/// The source without comments.
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into paths.
fn expand_tree(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or("").trim().to_string()];
    };
    let prefix = tree[..open].trim();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand_tree)
        .map(|p| {
            if p == "self" {
                prefix.trim_end_matches("::").to_string()
            } else {
                format!("{prefix}{p}")
            }
        })
        .collect()
}

/// Every path the code names that starts with `crate::` or `super::`.
fn references(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    // `use` trees, which may span lines.
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        rest = &rest[i + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest.find(';').unwrap_or(rest.len());
        let tree: String = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
        if tree.starts_with("crate::") || tree.starts_with("super::") {
            paths.extend(expand_tree(&tree));
        }
    }
    // Paths in code.
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push(path.trim_end_matches(':').to_string());
        }
    }
    paths
}

/// The module a path names, from the module `here` it is written in: the
/// longest prefix that is a module.
fn resolve(path: &str, here: &[String], known: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<String> = match segments.first() {
        Some(&"crate") => {
            segments.remove(0);
            Vec::new()
        }
        Some(&"super") => {
            // `super` in a file module means its parent (a `mod.rs` is its
            // own module, so the same rule holds).
            let mut base = here.to_vec();
            while segments.first() == Some(&"super") {
                segments.remove(0);
                base.pop()?;
            }
            base
        }
        _ => return None,
    };
    let mut found = known.contains(&base).then(|| base.clone());
    for s in segments {
        base.push(s.to_string());
        if known.contains(&base) {
            found = Some(base.clone());
        } else {
            break;
        }
    }
    found
}

#[test]
fn each_layer_imports_only_the_layers_below_and_no_module_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = modules(&src);
    let known: BTreeSet<Vec<String>> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut upward = Vec::new();
    // Edges between siblings: (parent, from child, to child).
    let mut edges: BTreeMap<Vec<String>, BTreeSet<(String, String)>> = BTreeMap::new();
    for (module, path) in &files {
        let text = code(&std::fs::read_to_string(path).unwrap());
        for reference in references(&text) {
            let Some(target) = resolve(&reference, module, &known) else {
                continue;
            };
            if let (Some(from), Some(to)) = (module.first(), target.first()) {
                if let (Some(a), Some(b)) = (layer_of(from), layer_of(to)) {
                    if b > a {
                        upward.push(format!("{}: {reference}", module.join("::")));
                    }
                }
            }
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common < module.len() && common < target.len() {
                edges
                    .entry(module[..common].to_vec())
                    .or_default()
                    .insert((module[common].clone(), target[common].clone()));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports of a higher layer (docs/architecture.md):\n{}",
        upward.join("\n")
    );
    let mut cycles = Vec::new();
    for (parent, pairs) in &edges {
        for cycle in strongly_connected(pairs) {
            cycles.push(format!("in {}: {}", parent.join("::"), cycle.join(", ")));
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The strongly connected components of more than one node.
fn strongly_connected(edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = edges.iter().flat_map(|(a, b)| [a, b]).collect();
    let reaches = |from: &String, to: &String| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(n) = stack.pop() {
            if n == to {
                return true;
            }
            if seen.insert(n) {
                stack.extend(edges.iter().filter(|(a, _)| a == n).map(|(_, b)| b));
            }
        }
        false
    };
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for &n in &nodes {
        if done.contains(n) {
            continue;
        }
        let component: Vec<String> = nodes
            .iter()
            .filter(|&&m| m == n || (reaches(n, m) && reaches(m, n)))
            .map(|m| (*m).clone())
            .collect();
        done.extend(component.iter().cloned());
        if component.len() > 1 {
            out.push(component);
        }
    }
    out
}

#[test]
fn the_checker_sees_use_trees_and_relative_paths() {
    assert_eq!(
        expand_tree("crate::store::{self, log::{Recorded, StateStore}, RunDir}"),
        [
            "crate::store",
            "crate::store::log::Recorded",
            "crate::store::log::StateStore",
            "crate::store::RunDir"
        ]
    );
    let known: BTreeSet<Vec<String>> = [
        vec![],
        vec!["store".into()],
        vec!["store".into(), "log".into()],
    ]
    .into_iter()
    .collect();
    let here = vec!["store".to_string(), "sidecar".to_string()];
    assert_eq!(
        resolve("super::log::Recorded", &here, &known),
        Some(vec!["store".into(), "log".into()])
    );
    assert_eq!(
        resolve("crate::store::RunDir", &here, &known),
        Some(vec!["store".into()])
    );
    let refs = references("use crate::{a::b, c};\nfn f() { super::x::y(); }");
    assert!(refs.contains(&"crate::a::b".to_string()), "{refs:?}");
    assert!(refs.contains(&"super::x::y".to_string()), "{refs:?}");
}
