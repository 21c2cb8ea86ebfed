//! A JSON Schema an answer must satisfy: where it came from, its text (for
//! fingerprints), its value (sent to servers that enforce it) and its
//! compiled validator.

use std::path::PathBuf;

/// A JSON Schema an answer must satisfy.
#[derive(Debug)]
pub struct Schema {
    pub path: PathBuf,
    pub text: String,
    pub value: serde_json::Value,
    pub validator: jsonschema::Validator,
}
