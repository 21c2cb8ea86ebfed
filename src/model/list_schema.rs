//! Whether a `foreach`'s `items` pointer can lead to an array in a list
//! file a prompt task writes under a JSON Schema: what can be known of the
//! list before the model is asked. Only what the schema says plainly is
//! followed (`type`, `properties`, `additionalProperties: false`, `items`);
//! a schema that leaves a step open (`$ref`, `anyOf`, a property it does
//! not forbid) is taken to allow it. So a refusal is certain: no answer
//! the schema allows has an array there.

use serde_json::Value;

use super::bounds::escape;

/// Keys under which a schema says more than this module follows.
const OPEN: [&str; 7] = [
    "$ref",
    "$dynamicRef",
    "allOf",
    "anyOf",
    "oneOf",
    "if",
    "not",
];

/// How deep [`arrays`] looks for the pointers a hint may offer.
const DEPTH: usize = 4;

/// What part of a `foreach` table a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Items,
    Key,
}

/// `Err(why)` when no answer `schema` allows has an array at `pointer`
/// (a JSON pointer: `""` or starting with `/`), or, with `key`, when no
/// item of that array can have a key field `key` that is a string or a
/// number.
pub fn check(schema: &Value, pointer: &str, key: Option<&str>) -> Result<(), (Part, String)> {
    let Some((node, at)) = walk(schema, pointer).map_err(|why| (Part::Items, why))? else {
        return Ok(());
    };
    if let Some(t) = types(node).filter(|t| !t.iter().any(|t| t == "array")) {
        let why = format!("{} is {}, not an array", value_at(&at), said(&t));
        return Err((Part::Items, why));
    }
    let (Some(key), Some(item)) = (key, node.get("items")) else {
        return Ok(());
    };
    if is_open(item) {
        return Ok(());
    }
    let refuse = |why: String| Err((Part::Key, why));
    if let Some(t) = types(item).filter(|t| !t.iter().any(|t| t == "object")) {
        return refuse(format!(
            "its items are {}, which have no key field `{key}`",
            said_many(&t)
        ));
    }
    match item.get("properties").and_then(|p| p.get(key)) {
        None if closed(item) => refuse(format!(
            "its items have no `{key}`: the schema allows only {}",
            listed(item)
        )),
        Some(field) if !is_open(field) => match types(field) {
            Some(t)
                if !t
                    .iter()
                    .any(|t| ["string", "number", "integer"].contains(&t.as_str())) =>
            {
                refuse(format!(
                    "its items' `{key}` is {}, not a string or number",
                    said(&t)
                ))
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The node of `schema` at `pointer` and the pointer it is at, when the
/// schema says plainly what is there (`None` when it leaves a step open);
/// `Err(why)` when no answer it allows has anything there.
fn walk<'s>(schema: &'s Value, pointer: &str) -> Result<Option<(&'s Value, String)>, String> {
    let mut node = schema;
    let mut at = String::new();
    let segments = pointer.split('/').skip(1).map(unescape);
    for segment in segments {
        if is_open(node) {
            return Ok(None);
        }
        let types = types(node);
        let object = types
            .as_ref()
            .is_none_or(|t| t.iter().any(|t| t == "object"));
        let array = types
            .as_ref()
            .is_none_or(|t| t.iter().any(|t| t == "array"));
        let property = node.get("properties").and_then(|p| p.get(&segment));
        let index = segment.parse::<usize>().is_ok();
        node = match (property, index && array, node.get("items")) {
            (Some(next), _, _) if object => next,
            (_, true, Some(items)) if items.is_object() || items.is_boolean() => items,
            (_, true, _) => return Ok(None),
            _ if !object => {
                return Err(format!(
                    "{} is {}, which has no `{segment}`",
                    value_at(&at),
                    said(types.as_deref().unwrap_or_default())
                ))
            }
            _ if closed(node) => {
                let object = match at.as_str() {
                    "" => "the answer".to_string(),
                    at => format!("the object at `{at}`"),
                };
                return Err(format!(
                    "{object} has no `{segment}`: the schema allows only {}",
                    listed(node)
                ));
            }
            _ => return Ok(None),
        };
        at.push('/');
        at.push_str(&escape(&segment));
    }
    Ok((!is_open(node)).then_some((node, at)))
}

/// The pointers to the arrays `schema` plainly allows, nearest first: what
/// a refused `items` most likely meant.
pub fn arrays(schema: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut level = vec![(String::new(), schema)];
    for _ in 0..=DEPTH {
        let mut next = Vec::new();
        for (at, node) in level {
            if is_open(node) {
                continue;
            }
            if types(node).is_some_and(|t| t.iter().any(|t| t == "array")) {
                found.push(at.clone());
            }
            if let Some(Value::Object(properties)) = node.get("properties") {
                for (name, sub) in properties {
                    next.push((format!("{at}/{}", escape(name)), sub));
                }
            }
        }
        level = next;
    }
    found
}

/// The types a node allows, when it says (`"type": "object"` or a list).
fn types(node: &Value) -> Option<Vec<String>> {
    match node.get("type")? {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
        ),
        _ => None,
    }
}

/// Whether the node says more than this module follows.
fn is_open(node: &Value) -> bool {
    !node.is_object() || OPEN.iter().any(|k| node.get(k).is_some())
}

/// Whether an object under the node may hold only its `properties`.
fn closed(node: &Value) -> bool {
    node.get("additionalProperties") == Some(&Value::Bool(false))
        && node.get("patternProperties").is_none()
}

fn listed(node: &Value) -> String {
    match node.get("properties").and_then(Value::as_object) {
        Some(p) if !p.is_empty() => p
            .keys()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "no property".into(),
    }
}

/// What is at `at` in the answer, as a message says it.
fn value_at(at: &str) -> String {
    match at {
        "" => "the answer".into(),
        at => format!("the value at `{at}`"),
    }
}

/// Types said of many values: `strings`, `one of string, number`.
fn said_many(types: &[String]) -> String {
    match types {
        [one] => format!("{one}s"),
        many => format!("each one of {}", many.join(", ")),
    }
}

fn said(types: &[String]) -> String {
    match types {
        [] => "nothing".into(),
        [one] if one.starts_with(['a', 'e', 'i', 'o', 'u']) => format!("an {one}"),
        [one] => format!("a {one}"),
        many => format!("one of {}", many.join(", ")),
    }
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn steps() -> Value {
        json!({
            "type": "object",
            "properties": {
                "steps": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"subs": {"type": "array"}, "name": {"type": "string"}},
                    "additionalProperties": false
                }},
                "title": {"type": "string"}
            },
            "required": ["steps"],
            "additionalProperties": false
        })
    }

    #[test]
    fn a_pointer_the_schema_plainly_forbids_is_refused() {
        let schema = steps();
        for ok in ["/steps", "/steps/0/subs"] {
            assert_eq!(check(&schema, ok, None), Ok(()), "{ok}");
        }
        for (pointer, why) in [
            (
                "/step",
                "the answer has no `step`: the schema allows only `steps`, `title`",
            ),
            ("/title", "the value at `/title` is a string, not an array"),
            ("", "the answer is an object, not an array"),
            (
                "/title/x",
                "the value at `/title` is a string, which has no `x`",
            ),
            (
                "/steps/0/sub",
                "the object at `/steps/0` has no `sub`: the schema allows only `name`, `subs`",
            ),
        ] {
            let refused = Err((Part::Items, why.to_string()));
            assert_eq!(check(&schema, pointer, None), refused, "{pointer}");
        }
        assert_eq!(arrays(&schema), ["/steps"]);
        // A key its items cannot have, or not as a string or number.
        let key = |pointer, key| check(&schema, pointer, Some(key));
        assert_eq!(key("/steps", "name"), Ok(()));
        assert_eq!(
            key("/steps", "id"),
            Err((
                Part::Key,
                "its items have no `id`: the schema allows only `name`, `subs`".into()
            ))
        );
        assert_eq!(
            key("/steps", "subs"),
            Err((
                Part::Key,
                "its items' `subs` is an array, not a string or number".into()
            ))
        );
        assert_eq!(
            key("/steps/0/subs", "id"),
            Ok(()),
            "items it does not describe may have any key"
        );
        let strings = json!({"type": "array", "items": {"type": "string"}});
        assert_eq!(
            check(&strings, "", Some("id")),
            Err((
                Part::Key,
                "its items are strings, which have no key field `id`".into()
            ))
        );
    }

    #[test]
    fn what_the_schema_leaves_open_is_allowed() {
        for schema in [
            json!({"type": "object"}),
            json!({"type": "object", "properties": {"a": {"type": "string"}}}),
            json!({"$ref": "#/$defs/x"}),
            json!({"anyOf": [{"type": "object"}, {"type": "array"}]}),
            json!({"type": "object", "additionalProperties": false, "patternProperties": {"^s": {}}}),
            json!(true),
            json!({"type": ["object", "array"], "properties": {"step": {}}}),
        ] {
            assert_eq!(check(&schema, "/steps", Some("id")), Ok(()), "{schema}");
        }
        // A list at the top, or under a key with `/` and `~` in it.
        assert_eq!(check(&json!({"type": "array"}), "", Some("id")), Ok(()));
        let odd = json!({"type": "object", "properties": {"a/b~": {"type": "array"}}, "additionalProperties": false});
        assert_eq!(check(&odd, "/a~1b~0", None), Ok(()));
        assert_eq!(arrays(&odd), ["/a~1b~0"]);
    }
}
