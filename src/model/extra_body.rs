//! `extra_body` of a `[models.NAME]` table: more request parameters, sent
//! as they are in the JSON body of every request to the model (sampling
//! settings planexe has no key of its own for: `top_p`, `min_p`,
//! `frequency_penalty`, llama.cpp's and Ollama's `repeat_penalty`, `stop`).
//! Checked when the pipeline is read: a key planexe sets itself is refused
//! (it has its own setting, or planexe needs it as it is), and so is a value
//! JSON cannot hold.

use serde_json::{Map, Number, Value};
use toml::Spanned;

use super::pipeline::Source;
use crate::error::{Error, Result};

/// Keys of a request body that planexe writes, and what sets each instead.
const OWNED: [(&str, &str); 9] = [
    ("model", "the model's `model`"),
    ("messages", "the task's prompt and system text"),
    ("system", "the task's `system`"),
    ("stream", "the model's `stream`"),
    ("stream_options", "the model's `stream`"),
    (
        "response_format",
        "the task's `schema` or `format`, and the model's `structured_output`",
    ),
    ("max_tokens", "the model's or the task's `max_tokens`"),
    ("temperature", "the model's `temperature`"),
    ("seed", "the model's `seed`"),
];

/// The parameters of `extra_body`, as JSON; `None` when it is absent or
/// empty.
pub fn resolve(
    source: &Source,
    def: &Option<Spanned<toml::Table>>,
) -> Result<Option<Map<String, Value>>> {
    let Some(table) = def else {
        return Ok(None);
    };
    let span = table.span();
    let err =
        |m: String, hint: &str| Error::pipeline(source.diagnostic(span.clone(), &m)).hint(hint);
    let mut body = Map::new();
    for (key, value) in table.get_ref() {
        if let Some((_, instead)) = OWNED.iter().find(|(k, _)| k == key) {
            return Err(err(
                format!("`extra_body` sets `{key}`, which planexe sets itself"),
                &format!("remove it from extra_body; {instead} sets it"),
            ));
        }
        let value = json(value).map_err(|what| {
            err(
                format!("`extra_body.{key}` holds {what}, which a JSON request cannot"),
                "use strings, numbers, booleans, arrays and tables",
            )
        })?;
        body.insert(key.clone(), value);
    }
    Ok((!body.is_empty()).then_some(body))
}

/// `value` as JSON; `Err` names what JSON cannot hold.
fn json(value: &toml::Value) -> std::result::Result<Value, &'static str> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(n) => Value::from(*n),
        toml::Value::Float(f) => {
            Value::Number(Number::from_f64(*f).ok_or("a number that is not finite")?)
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(_) => return Err("a date"),
        toml::Value::Array(items) => Value::Array(
            items
                .iter()
                .map(json)
                .collect::<std::result::Result<_, _>>()?,
        ),
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.clone(), json(v)?)))
                .collect::<std::result::Result<_, &'static str>>()?,
        ),
    })
}
