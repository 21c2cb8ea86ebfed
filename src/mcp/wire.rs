//! JSON-RPC 2.0 as MCP's stdio transport carries it: one message per line,
//! UTF-8, no embedded newlines. Reading a line (bounded: a client cannot
//! make the server hold an endless line), telling requests from
//! notifications and from what is not JSON-RPC at all, and the shape of
//! answers: a result, or an error with one of the standard codes.
//!
//! Batches (JSON arrays) are not part of MCP 2025-06-18: they get an
//! invalid-request error, as does anything that is not one request object.

use std::io::BufRead;

use serde_json::{json, Map, Value};

/// The message is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// The message is JSON but not a JSON-RPC request.
pub const INVALID_REQUEST: i64 = -32600;
/// No such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// The method's parameters are wrong (an unknown tool, among others).
pub const INVALID_PARAMS: i64 = -32602;
/// The server failed to answer (a bug of planexe's).
pub const INTERNAL_ERROR: i64 = -32603;

/// A JSON-RPC error: its code and a message a client can act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub code: i64,
    pub message: String,
}

impl Fault {
    pub fn new(code: i64, message: impl Into<String>) -> Fault {
        Fault {
            code,
            message: message.into(),
        }
    }
}

/// One line from the client.
#[derive(Debug)]
pub enum Line {
    /// A line's bytes, without its newline.
    Message(Vec<u8>),
    /// A line longer than the limit; its bytes were read and dropped.
    TooLong,
    /// The client closed its end.
    End,
}

/// Reads one line of at most `max` bytes. A longer line is read to its end
/// and dropped, so the next line is read from its start.
pub fn read_line(input: &mut impl BufRead, max: usize) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let available = match input.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            // The last line may lack its newline.
            return Ok(match (too_long, line.is_empty()) {
                (true, _) => Line::TooLong,
                (false, true) => Line::End,
                (false, false) => Line::Message(line),
            });
        }
        let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i)),
            None => (available, None),
        };
        if !too_long {
            if line.len() + chunk.len() > max {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = found.map_or(chunk.len(), |i| i + 1);
        input.consume(used);
        if found.is_some() {
            if too_long {
                return Ok(Line::TooLong);
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Line::Message(line));
        }
    }
}

/// What one line from the client is.
#[derive(Debug)]
pub enum Incoming {
    /// A request: it gets an answer with its id.
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    /// A notification (no id): never answered.
    Notification,
    /// A response to a request of the server's (it sends none): ignored.
    Response,
    /// Not a request: the error to answer, with the id when one was read.
    Invalid { id: Value, fault: Fault },
    /// Nothing but white space: ignored.
    Blank,
}

/// Tells what `line` is.
pub fn parse(line: &[u8]) -> Incoming {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Incoming::Blank;
    }
    let value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            return Incoming::Invalid {
                id: Value::Null,
                fault: Fault::new(
                    PARSE_ERROR,
                    format!(
                    "parse error: the message is not JSON ({e}); send one JSON-RPC object per line"
                ),
                ),
            }
        }
    };
    let object = match value {
        Value::Object(object) => object,
        Value::Array(_) => {
            return invalid(
                Value::Null,
                "batches (JSON arrays) are not part of MCP 2025-06-18; send one request object per line",
            )
        }
        _ => return invalid(Value::Null, "a JSON-RPC message is an object"),
    };
    request(object)
}

fn invalid(id: Value, message: &str) -> Incoming {
    Incoming::Invalid {
        id,
        fault: Fault::new(INVALID_REQUEST, format!("invalid request: {message}")),
    }
}

/// Tells a request from a notification and a response, and checks what
/// JSON-RPC 2.0 and MCP require of each.
fn request(mut object: Map<String, Value>) -> Incoming {
    // An id that cannot be echoed is answered with null.
    let id = match object.get("id") {
        None => None,
        Some(id @ (Value::String(_) | Value::Number(_))) => Some(id.clone()),
        Some(_) => {
            return invalid(
                Value::Null,
                "`id` must be a string or a number (MCP forbids null)",
            )
        }
    };
    if object.get("jsonrpc") != Some(&json!("2.0")) {
        return invalid(id.unwrap_or(Value::Null), "`jsonrpc` must be \"2.0\"");
    }
    let method = match object.remove("method") {
        Some(Value::String(method)) => method,
        Some(_) => return invalid(id.unwrap_or(Value::Null), "`method` must be a string"),
        None if object.contains_key("result") || object.contains_key("error") => {
            return Incoming::Response
        }
        None => return invalid(id.unwrap_or(Value::Null), "no `method`"),
    };
    let Some(id) = id else {
        return Incoming::Notification;
    };
    let params = object.remove("params");
    if let Some(p) = &params {
        if !p.is_object() {
            return Incoming::Invalid {
                id,
                fault: Fault::new(
                    INVALID_PARAMS,
                    format!("invalid params: `params` of {method} must be an object"),
                ),
            };
        }
    }
    Incoming::Request { id, method, params }
}

/// The answer to request `id`: its result.
pub fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// The answer to request `id` (null when it could not be read): an error.
pub fn error(id: &Value, fault: &Fault) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": fault.code, "message": fault.message},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8], max: usize) -> Vec<String> {
        let mut input = std::io::BufReader::with_capacity(4, text);
        let mut out = Vec::new();
        loop {
            match read_line(&mut input, max).unwrap() {
                Line::Message(m) => out.push(String::from_utf8(m).unwrap()),
                Line::TooLong => out.push("<too long>".into()),
                Line::End => return out,
            }
        }
    }

    #[test]
    fn lines_are_bounded_and_the_next_line_survives_a_long_one() {
        assert_eq!(lines(b"ab\r\ncd\nef", 10), ["ab", "cd", "ef"]);
        assert_eq!(lines(b"0123456789abc\nok\n", 10), ["<too long>", "ok"]);
        assert_eq!(lines(b"0123456789abc", 10), ["<too long>"]);
        assert_eq!(lines(b"", 10), Vec::<String>::new());
    }

    fn fault(line: &str) -> (Value, i64) {
        match parse(line.as_bytes()) {
            Incoming::Invalid { id, fault } => (id, fault.code),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn what_is_not_a_request_gets_the_right_code() {
        assert_eq!(fault("{not json"), (Value::Null, PARSE_ERROR));
        assert_eq!(fault("[]"), (Value::Null, INVALID_REQUEST));
        assert_eq!(fault("3"), (Value::Null, INVALID_REQUEST));
        assert_eq!(
            fault(r#"{"jsonrpc":"1.0","id":4,"method":"ping"}"#),
            (json!(4), INVALID_REQUEST)
        );
        assert_eq!(
            fault(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            (Value::Null, INVALID_REQUEST)
        );
        assert_eq!(
            fault(r#"{"jsonrpc":"2.0","id":"a","method":7}"#),
            (json!("a"), INVALID_REQUEST)
        );
        assert_eq!(
            fault(r#"{"jsonrpc":"2.0","id":5,"method":"ping","params":[1]}"#),
            (json!(5), INVALID_PARAMS)
        );
    }

    #[test]
    fn requests_notifications_and_responses_are_told_apart() {
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Incoming::Request { method, params: None, .. } if method == "ping"
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Incoming::Notification
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            Incoming::Response
        ));
        assert!(matches!(parse(b"  "), Incoming::Blank));
    }
}
