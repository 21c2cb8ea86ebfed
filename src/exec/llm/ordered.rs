//! A JSON answer written as the model wrote it: its objects' keys in the
//! order the answer gave them, which is a schema's order when a server
//! enforces one (`strengths`, `weaknesses`, `opportunities`, `threats`),
//! not the sorted order of `serde_json::Value`, whose maps are sorted
//! (the order request keys rely on: `recording/key.rs`).
//!
//! A schema file is sent the same way, in the order its author wrote it:
//! servers that enforce a schema by grammar (llama.cpp, vLLM, OpenAI's
//! structured outputs) generate the keys in the schema's order, and a
//! schema that asks for the `reason` before the `verdict` means it. The
//! key a request is recorded under (`recording/key.rs`) stays the sorted
//! body's: the same schema in another order is the same request there.
//!
//! Read as `Value` is: a key given twice keeps its last value, in the
//! place of its first. Streamed from the parser, never buffered per level,
//! so a deeply nested answer costs what its size does.

use std::fmt;

use indexmap::IndexMap;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Number, Value};

/// `json` (the answer's JSON text, which parsed to `value`) pretty-printed,
/// two spaces a level, with a newline at the end, its keys in the
/// answer's order. `value` sorted, should the text not read back as
/// `value` (it always does: the check costs a parse of the answer).
pub fn pretty(json: &str, value: &Value) -> String {
    let mut text = in_order(json, value, serde_json::to_string_pretty).unwrap_or_else(|| {
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    });
    text.push('\n');
    text
}

/// `json` (JSON text that parsed to `value`) written compactly, in its
/// order; `value`, sorted, should it not read back as `value`.
pub fn compact(json: &str, value: &Value) -> String {
    in_order(json, value, serde_json::to_string).unwrap_or_else(|| value.to_string())
}

/// `body` written compactly, the object at `path` (its keys from the top)
/// written from `json` in its order, when it is there and `json` reads as
/// it; else `body` sorted, as `Value` writes it.
pub fn compact_with(body: &Value, path: &[&str], json: &str) -> String {
    let at = path.iter().try_fold(body, |v, key| v.get(key));
    let Some(ordered) = at.and_then(|at| {
        serde_json::from_str::<Ordered>(json)
            .ok()
            .filter(|o| serde_json::to_value(o).is_ok_and(|v| v == *at))
    }) else {
        return body.to_string();
    };
    serde_json::to_string(&Spliced {
        value: body,
        path,
        at: &ordered,
    })
    .unwrap_or_else(|_| body.to_string())
}

/// `json` written by `write` in its order, when it reads back as `value`.
fn in_order(
    json: &str,
    value: &Value,
    write: impl Fn(&Ordered) -> serde_json::Result<String>,
) -> Option<String> {
    serde_json::from_str::<Ordered>(json)
        .and_then(|o| write(&o))
        .ok()
        .filter(|text| serde_json::from_str::<Value>(text).is_ok_and(|back| back == *value))
}

/// A value written as it is, but for the value at `path`, written as `at`.
struct Spliced<'a> {
    value: &'a Value,
    path: &'a [&'a str],
    at: &'a Ordered,
}

impl Serialize for Spliced<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (Value::Object(members), Some((first, rest))) = (self.value, self.path.split_first())
        else {
            return self.value.serialize(serializer);
        };
        let mut map = serializer.serialize_map(Some(members.len()))?;
        for (k, v) in members {
            if k != first {
                map.serialize_entry(k, v)?;
            } else if rest.is_empty() {
                map.serialize_entry(k, self.at)?;
            } else {
                let inner = Spliced {
                    value: v,
                    path: rest,
                    at: self.at,
                };
                map.serialize_entry(k, &inner)?;
            }
        }
        map.end()
    }
}

/// A JSON value whose objects keep their keys in the order given.
enum Ordered {
    Object(IndexMap<String, Ordered>),
    Array(Vec<Ordered>),
    Scalar(Value),
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Ordered, D::Error> {
        deserializer.deserialize_any(OrderedVisitor)
    }
}

struct OrderedVisitor;

impl<'de> Visitor<'de> for OrderedVisitor {
    type Value = Ordered;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(Value::Bool(b)))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(Value::Number(n.into())))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(Value::Number(n.into())))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Ordered, E> {
        // JSON has no NaN nor infinity; `Value` reads them as null too.
        Ok(Ordered::Scalar(
            Number::from_f64(n).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E>(self, s: &str) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(Value::String(s.to_string())))
    }

    fn visit_string<E>(self, s: String) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(Value::String(s)))
    }

    fn visit_unit<E>(self) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Ordered::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
        let mut members = IndexMap::new();
        while let Some((key, value)) = map.next_entry::<String, Ordered>()? {
            // The last value, in the first one's place.
            members.insert(key, value);
        }
        Ok(Ordered::Object(members))
    }
}

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Ordered::Scalar(v) => v.serialize(serializer),
            Ordered::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Ordered::Object(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(json: &str) -> String {
        pretty(json, &serde_json::from_str(json).unwrap())
    }

    #[test]
    fn keys_keep_the_answers_order_at_every_level() {
        assert_eq!(
            written(r#"{"strengths": ["sun"], "weaknesses": [], "risks": [{"risk": "theft", "impact": "high"}]}"#),
            "{\n  \"strengths\": [\n    \"sun\"\n  ],\n  \"weaknesses\": [],\n  \"risks\": [\n    {\n      \"risk\": \"theft\",\n      \"impact\": \"high\"\n    }\n  ]\n}\n"
        );
    }

    #[test]
    fn a_key_given_twice_keeps_its_last_value_in_its_first_place() {
        let json = r#"{"b": 1, "a": 2, "b": 3}"#;
        assert_eq!(written(json), "{\n  \"b\": 3,\n  \"a\": 2\n}\n");
    }

    #[test]
    fn scalars_read_back_as_the_value_they_parsed_to() {
        for json in [
            r#"[1, -2, 1.5, 1e300, 18446744073709551615, 123456789012345678901234567890, true, null, "é\u00e9\n\"", {}]"#,
            "42",
            r#""text""#,
        ] {
            let value: Value = serde_json::from_str(json).unwrap();
            let text = written(json);
            assert_eq!(
                serde_json::from_str::<Value>(&text).unwrap(),
                value,
                "{json}"
            );
        }
    }

    #[test]
    fn text_that_is_not_the_value_is_written_from_the_value_sorted() {
        let value = serde_json::json!({"b": 1, "a": 2});
        assert_eq!(
            pretty(r#"{"b": 9}"#, &value),
            "{\n  \"a\": 2,\n  \"b\": 1\n}\n"
        );
        assert_eq!(
            pretty("not json", &value),
            "{\n  \"a\": 2,\n  \"b\": 1\n}\n"
        );
    }

    #[test]
    fn a_body_carries_the_schema_in_its_files_order_and_nothing_else_changes() {
        let schema = r#"{"properties": {"why": {"type": "string"}, "answer": {"type": "string"}}}"#;
        let body = serde_json::json!({
            "model": "m",
            "response_format": {"json_schema": {"name": "answer", "schema": serde_json::from_str::<Value>(schema).unwrap()}},
            "messages": [{"role": "user", "content": "why"}]
        });
        let path = ["response_format", "json_schema", "schema"];
        let sent = compact_with(&body, &path, schema);
        assert_eq!(
            sent,
            r#"{"messages":[{"content":"why","role":"user"}],"model":"m","response_format":{"json_schema":{"name":"answer","schema":{"properties":{"why":{"type":"string"},"answer":{"type":"string"}}}}}}"#
        );
        assert_eq!(serde_json::from_str::<Value>(&sent).unwrap(), body);
        // A body without the path, or whose value there is not the schema
        // (`extra_body` replaced it), is written as it is.
        let other = serde_json::json!({"model": "m"});
        assert_eq!(compact_with(&other, &path, schema), other.to_string());
        let mut replaced = body.clone();
        replaced["response_format"]["json_schema"]["schema"] =
            serde_json::json!({"type": "object"});
        assert_eq!(compact_with(&replaced, &path, schema), replaced.to_string());
        assert_eq!(
            compact(schema, &body["response_format"]["json_schema"]["schema"]),
            r#"{"properties":{"why":{"type":"string"},"answer":{"type":"string"}}}"#
        );
    }

    #[test]
    fn deep_nesting_is_refused_as_the_value_parser_refuses_it() {
        // 200 levels: serde_json refuses past 128, for Ordered as for Value.
        let json = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(serde_json::from_str::<Ordered>(&json).is_err());
    }
}
