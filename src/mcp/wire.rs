//! JSON-RPC 2.0 as MCP's stdio transport carries it: one message per line,
//! UTF-8, no embedded newlines. Reading a line (bounded: a client cannot
//! make the server hold an endless line), telling requests from
//! notifications and from what is not JSON-RPC at all, and the shape of
//! answers: a result, or an error with one of the standard codes.
//!
//! A batch (a JSON array of messages, which MCP 2025-03-26 allows and
//! 2025-06-18 does not) is read into its messages, each told as a line of
//! its own would be; whether to serve it is the server's to say, by the
//! version agreed. An empty array, or anything else that is not a request
//! object, gets an invalid-request error.
//!
//! A request's id is kept as the client wrote it ([`Id`], the literal, not
//! a parsed number) and written back byte for byte: JSON-RPC asks for the
//! same value, and a number beyond 64 bits parsed as a float would come
//! back as another one (`1.2345678901234568e+29`), which no client could
//! match to its request.

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

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
        id: Id,
        method: String,
        params: Option<Value>,
    },
    /// A notification (no id): never answered.
    Notification {
        method: String,
        params: Option<Value>,
    },
    /// A response to a request of the server's (it sends none): ignored.
    Response,
    /// Not a request: the error to answer, with the id when one was read.
    Invalid { id: Id, fault: Fault },
    /// Nothing but white space: ignored.
    Blank,
    /// A batch: its messages, in order (none of them a batch).
    Batch(Vec<Incoming>),
}

/// A request's id, as the client wrote it: a string or a number, never
/// re-encoded. Null only in answers to what could not be read.
#[derive(Debug, Clone)]
pub struct Id(Box<RawValue>);

impl Id {
    /// The id of an answer to a message whose id could not be read.
    pub fn null() -> Id {
        Id(RawValue::NULL.to_owned())
    }

    /// The id as a key that the same id written another way (`"a"` and
    /// `"\u0061"`, `1` and `1.0` aside) shares: the id of a request, as a
    /// cancellation names it.
    pub fn key(&self) -> String {
        key_of(self.0.get())
    }

    /// The id as it was written.
    #[cfg(test)]
    pub fn literal(&self) -> &str {
        self.0.get()
    }

    /// `raw` as an id, if JSON-RPC and MCP allow it: a string or a number
    /// (not null, not a boolean, an object or an array).
    fn of(raw: &RawValue) -> Option<Id> {
        match raw.get().as_bytes().first() {
            Some(b'"' | b'-' | b'0'..=b'9') => Some(Id(raw.to_owned())),
            _ => None,
        }
    }
}

/// The key ([`Id::key`]) of the id written `literal`.
pub fn key_of(literal: &str) -> String {
    serde_json::from_str::<Value>(literal).map_or_else(|_| literal.to_string(), |v| v.to_string())
}

/// Tells what `line` is.
pub fn parse(line: &[u8]) -> Incoming {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Incoming::Blank;
    }
    // The whole line is checked first, so a batch or a scalar that is not
    // JSON either is a parse error, as JSON-RPC asks.
    let raw: &RawValue = match serde_json::from_slice(line) {
        Ok(raw) => raw,
        Err(e) => return not_json(&e),
    };
    if raw.get().starts_with('[') {
        return match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
            Ok(items) if items.is_empty() => invalid(
                Id::null(),
                "an empty batch ([]); send a request object, or an array of them",
            ),
            Ok(items) => Incoming::Batch(items.into_iter().map(message).collect()),
            Err(e) => not_json(&e),
        };
    }
    message(raw)
}

/// Tells what one message (of a line, or of a batch) is.
fn message(raw: &RawValue) -> Incoming {
    if !raw.get().starts_with('{') {
        return invalid(Id::null(), "a JSON-RPC message is an object");
    }
    // Members kept as written; a repeated key keeps its last value.
    match serde_json::from_str::<BTreeMap<String, &RawValue>>(raw.get()) {
        Ok(object) => request(object),
        Err(e) => not_json(&e),
    }
}

fn not_json(e: &serde_json::Error) -> Incoming {
    Incoming::Invalid {
        id: Id::null(),
        fault: Fault::new(
            PARSE_ERROR,
            format!(
                "parse error: the message is not JSON ({e}); send one JSON-RPC object per line"
            ),
        ),
    }
}

fn invalid(id: Id, message: &str) -> Incoming {
    Incoming::Invalid {
        id,
        fault: Fault::new(INVALID_REQUEST, format!("invalid request: {message}")),
    }
}

/// `raw` as a string, if it is one.
fn string(raw: Option<&&RawValue>) -> Option<String> {
    raw.and_then(|raw| serde_json::from_str(raw.get()).ok())
}

/// Tells a request from a notification and a response, and checks what
/// JSON-RPC 2.0 and MCP require of each.
fn request(object: BTreeMap<String, &RawValue>) -> Incoming {
    // An id that cannot be echoed is answered with null.
    let id = match object.get("id") {
        None => None,
        Some(raw) => match Id::of(raw) {
            Some(id) => Some(id),
            None => {
                return invalid(
                    Id::null(),
                    "`id` must be a string or a number (not null, which MCP forbids, nor a boolean, an object or an array)",
                )
            }
        },
    };
    if string(object.get("jsonrpc")).as_deref() != Some("2.0") {
        return invalid(id.unwrap_or_else(Id::null), "`jsonrpc` must be \"2.0\"");
    }
    let method = match object.get("method") {
        Some(raw) => match string(Some(raw)) {
            Some(method) => method,
            None => return invalid(id.unwrap_or_else(Id::null), "`method` must be a string"),
        },
        None if object.contains_key("result") || object.contains_key("error") => {
            return Incoming::Response
        }
        None => return invalid(id.unwrap_or_else(Id::null), "no `method`"),
    };
    let Some(id) = id else {
        // A notification's faults are not answered: its params are kept
        // when they read.
        let params = object
            .get("params")
            .and_then(|raw| serde_json::from_str(raw.get()).ok());
        return Incoming::Notification { method, params };
    };
    let params = match object.get("params") {
        None => None,
        Some(raw) => match serde_json::from_str::<Value>(raw.get()) {
            Ok(params @ Value::Object(_)) => Some(params),
            Ok(_) => {
                return Incoming::Invalid {
                    id,
                    fault: Fault::new(
                        INVALID_PARAMS,
                        format!("invalid params: `params` of {method} must be an object"),
                    ),
                }
            }
            Err(e) => {
                return Incoming::Invalid {
                    id,
                    fault: Fault::new(
                        INVALID_PARAMS,
                        format!("invalid params: `params` of {method} cannot be read ({e})"),
                    ),
                }
            }
        },
    };
    Incoming::Request { id, method, params }
}

/// One answer, in the order JSON-RPC's examples write it.
#[derive(Serialize)]
struct Answer<'a> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorObject<'a>>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    code: i64,
    message: &'a str,
}

impl Answer<'_> {
    /// The answer as one line of JSON (without its newline), the id
    /// written as the client wrote it.
    fn line(&self) -> String {
        // Strings, numbers and objects with string keys always serialize;
        // the fallback only keeps this free of a panic.
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":{INTERNAL_ERROR},"message":{}}}}}"#,
                Value::from(format!(
                    "internal error: an answer could not be written ({e}); please report it"
                ))
            )
        })
    }
}

/// The answer to request `id`: its result, as one line.
pub fn result(id: &Id, result: Value) -> String {
    Answer {
        jsonrpc: "2.0",
        id: &id.0,
        result: Some(result),
        error: None,
    }
    .line()
}

/// The answer to request `id` (null when it could not be read): an error,
/// as one line.
pub fn error(id: &Id, fault: &Fault) -> String {
    Answer {
        jsonrpc: "2.0",
        id: &id.0,
        result: None,
        error: Some(ErrorObject {
            code: fault.code,
            message: &fault.message,
        }),
    }
    .line()
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

    fn fault(line: &str) -> (String, i64) {
        match parse(line.as_bytes()) {
            Incoming::Invalid { id, fault } => (id.literal().to_string(), fault.code),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn what_is_not_a_request_gets_the_right_code() {
        assert_eq!(fault("{not json"), ("null".into(), PARSE_ERROR));
        assert_eq!(fault("[]"), ("null".into(), INVALID_REQUEST));
        assert_eq!(fault(" [ ] "), ("null".into(), INVALID_REQUEST));
        assert_eq!(fault("3"), ("null".into(), INVALID_REQUEST));
        assert_eq!(
            fault(r#"{"jsonrpc":"1.0","id":4,"method":"ping"}"#),
            ("4".into(), INVALID_REQUEST)
        );
        assert_eq!(
            fault(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            ("null".into(), INVALID_REQUEST)
        );
        assert_eq!(
            fault(r#"{"jsonrpc":"2.0","id":"a","method":7}"#),
            (r#""a""#.into(), INVALID_REQUEST)
        );
        assert_eq!(
            fault(r#"{"jsonrpc":"2.0","id":5,"method":"ping","params":[1]}"#),
            ("5".into(), INVALID_PARAMS)
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
            Incoming::Notification { .. }
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            Incoming::Response
        ));
        assert!(matches!(parse(b"  "), Incoming::Blank));
        let batch = parse(
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}, 3, [], {"jsonrpc":"2.0","method":"n"}]"#,
        );
        let Incoming::Batch(items) = batch else {
            panic!("{batch:?}")
        };
        assert!(matches!(&items[0], Incoming::Request { method, .. } if method == "ping"));
        assert!(matches!(&items[1], Incoming::Invalid { .. }));
        assert!(matches!(&items[2], Incoming::Invalid { .. }));
        assert!(matches!(&items[3], Incoming::Notification { .. }));
    }

    fn id(line: &str) -> String {
        match parse(line.as_bytes()) {
            Incoming::Request { id, .. } => id.literal().to_string(),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn an_id_is_written_back_as_it_was_written() {
        for literal in [
            "123456789012345678901234567890",
            "-9223372036854775809",
            "1e2",
            "1.0",
            "7",
            r#""a\u0041""#,
        ] {
            let line = format!(r#"{{"jsonrpc":"2.0","id": {literal} ,"method":"ping"}}"#);
            assert_eq!(id(&line), literal);
            let parsed = match parse(line.as_bytes()) {
                Incoming::Request { id, .. } => id,
                other => panic!("{other:?}"),
            };
            let answer = result(&parsed, serde_json::json!({}));
            assert_eq!(
                answer,
                format!(r#"{{"jsonrpc":"2.0","id":{literal},"result":{{}}}}"#)
            );
        }
        for id in ["{}", "[1]", "true", "null"] {
            let line = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            assert_eq!(fault(&line), ("null".into(), INVALID_REQUEST), "{id}");
        }
        let answer = error(&Id::null(), &Fault::new(PARSE_ERROR, "x"));
        assert_eq!(
            answer,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#
        );
    }
}
