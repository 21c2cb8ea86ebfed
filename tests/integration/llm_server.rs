//! A scripted model server on 127.0.0.1 for the LLM tests. It speaks just
//! enough HTTP/1.1 to answer one request per connection, replays a script of
//! replies (answers in the OpenAI and Anthropic shapes, streamed or not, and
//! faults: errors with headers, hangs, cut connections, stalled and broken
//! streams, endless streams and huge answers), and records every request it
//! got.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::RefusedPort;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Debug, Clone)]
pub enum StreamEnd {
    /// The stream ends normally (after its last event).
    Close,
    /// The server goes silent with the connection open.
    Stall,
}

#[derive(Debug, Clone)]
pub enum Reply {
    Json {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
        delay: Duration,
    },
    Sse {
        events: Vec<(Option<String>, String)>,
        end: StreamEnd,
    },
    /// Never answer.
    Hang,
    /// Close the connection without a word.
    Cut,
    /// Answer the status line and headers, then part of the body, then close.
    CutBody,
    /// A whole body of any bytes (not UTF-8, say), with its status and
    /// content type.
    Bytes {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
    /// A 200 stream (`text/event-stream`) of any bytes, written in these
    /// chunks with a pause after each (so each arrives in a read of its
    /// own), then closed.
    Chunks {
        chunks: Vec<Vec<u8>>,
        pause: Duration,
    },
    /// Echo the request's headers back in a 401 body (a leaky proxy).
    EchoHeaders401,
    /// An OpenAI stream of content pieces of `piece` bytes each that never
    /// finishes; it stops when the client hangs up (or after 30 s).
    EndlessStream { piece: usize },
    /// An OpenAI stream of one-word pieces, one every `every`, that never
    /// finishes: a model looping under a schema. Stops when the client
    /// hangs up (or after 30 s).
    Trickle { every: Duration },
    /// A non-streamed OpenAI answer of `bytes` bytes of text, written as it
    /// goes; `announce` sends its Content-Length, else the body runs to the
    /// connection's end. Stops when the client hangs up.
    Huge { bytes: usize, announce: bool },
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    default: Option<Reply>,
    requests: Vec<Recorded>,
    in_flight: usize,
    max_in_flight: usize,
}

pub struct Server {
    pub url: String,
    state: Arc<Mutex<State>>,
    /// The listening socket, shut by [`Server::take_down`].
    fd: std::os::fd::RawFd,
    /// Set when taken down, for the accept loop to end.
    down: Arc<AtomicBool>,
    accepting: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start() -> Server {
        Server::on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// A server on `listener`: on a port taken back from a
    /// [`RefusedPort`], a server brought back where one was taken down.
    pub fn on(listener: TcpListener) -> Server {
        use std::os::fd::AsRawFd;
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fd = listener.as_raw_fd();
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = Arc::clone(&state);
        let down = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&down);
        let accepting = std::thread::spawn(move || loop {
            match listener.accept() {
                _ if stop.load(Ordering::SeqCst) => return,
                Ok((stream, _)) => {
                    let state = Arc::clone(&shared);
                    std::thread::spawn(move || handle(stream, &state));
                }
                Err(_) => {}
            }
        });
        Server {
            url,
            state,
            fd,
            down,
            accepting: Some(accepting),
        }
    }

    /// Takes the server down: its port then refuses every connection,
    /// held by the [`RefusedPort`] returned (which [`RefusedPort::listen`]
    /// gives back to a server of its own: the model's server back up).
    pub fn take_down(mut self) -> RefusedPort {
        let port: u16 = self.url.rsplit(':').next().unwrap().parse().unwrap();
        self.down.store(true, Ordering::SeqCst);
        // SAFETY: the listening socket lives until its thread ends,
        // joined below; shutting it wakes that thread's accept.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        if let Some(accepting) = self.accepting.take() {
            accepting.join().unwrap();
        }
        RefusedPort::at(port)
    }

    /// Queues replies, answered in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) -> &Self {
        self.state.lock().unwrap().script.extend(replies);
        self
    }

    /// The reply once the script is used up.
    pub fn default_reply(&self, reply: Reply) -> &Self {
        self.state.lock().unwrap().default = Some(reply);
        self
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.lock().unwrap().max_in_flight
    }
}

fn handle(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let reply = {
        let mut s = state.lock().unwrap();
        s.requests.push(Recorded {
            path,
            headers: headers.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
        });
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        s.script.pop_front().or_else(|| s.default.clone())
    };
    let mut out = stream;
    match reply {
        None => respond(
            &mut out,
            500,
            &[],
            "{\"error\":{\"message\":\"no scripted reply\"}}",
        ),
        Some(Reply::Json {
            status,
            headers,
            body,
            delay,
        }) => {
            std::thread::sleep(delay);
            // Out of flight before the answer leaves: the client may send
            // its next request the moment it has read this one, before this
            // thread runs again.
            state.lock().unwrap().in_flight -= 1;
            respond(&mut out, status, &headers, &body);
            return;
        }
        Some(Reply::Sse { events, end }) => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
            let _ = out.write_all(head.as_bytes());
            for (event, data) in events {
                let mut chunk = String::new();
                if let Some(e) = event {
                    chunk.push_str(&format!("event: {e}\n"));
                }
                chunk.push_str(&format!("data: {data}\n\n"));
                let _ = out.write_all(chunk.as_bytes());
                let _ = out.flush();
            }
            if let StreamEnd::Stall = end {
                std::thread::sleep(Duration::from_secs(30));
            }
        }
        Some(Reply::Hang) => std::thread::sleep(Duration::from_secs(30)),
        Some(Reply::Cut) => {}
        Some(Reply::CutBody) => {
            let _ = out.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\nconnection: close\r\n\r\n{\"choices\":[{\"mess",
            );
        }
        Some(Reply::EndlessStream { piece }) => {
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
            let data = serde_json::json!({"choices": [{"index": 0, "delta": {"content": "x".repeat(piece)}, "finish_reason": null}]});
            let event = format!("data: {data}\n\n");
            let until = Instant::now() + Duration::from_secs(30);
            let mut sent = out.write_all(head.as_bytes());
            while sent.is_ok() && Instant::now() < until {
                sent = out.write_all(event.as_bytes());
            }
        }
        Some(Reply::Trickle { every }) => {
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
            let data = serde_json::json!({"choices": [{"index": 0, "delta": {"content": "1.1, "}, "finish_reason": null}]});
            let event = format!("data: {data}\n\n");
            let until = Instant::now() + Duration::from_secs(30);
            let mut sent = out.write_all(head.as_bytes());
            while sent.is_ok() && Instant::now() < until {
                sent = out.write_all(event.as_bytes()).and_then(|()| out.flush());
                std::thread::sleep(every);
            }
        }
        Some(Reply::Huge { bytes, announce }) => {
            let open = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":""#;
            let close =
                r#""},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
            let mut head =
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                    .to_string();
            if announce {
                head.push_str(&format!(
                    "content-length: {}\r\n",
                    open.len() + bytes + close.len()
                ));
            }
            head.push_str("\r\n");
            let block = vec![b'x'; 64 * 1024];
            let mut sent = out
                .write_all(head.as_bytes())
                .and_then(|()| out.write_all(open.as_bytes()));
            let mut left = bytes;
            while sent.is_ok() && left > 0 {
                let n = left.min(block.len());
                sent = out.write_all(&block[..n]);
                left -= n;
            }
            if sent.is_ok() {
                let _ = out.write_all(close.as_bytes());
            }
        }
        Some(Reply::Bytes {
            status,
            content_type,
            body,
        }) => {
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = out.write_all(head.as_bytes());
            let _ = out.write_all(&body);
            let _ = out.flush();
        }
        Some(Reply::Chunks { chunks, pause }) => {
            let _ = out.set_nodelay(true);
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
            let mut sent = out.write_all(head.as_bytes()).and_then(|()| out.flush());
            for chunk in chunks {
                if sent.is_err() {
                    break;
                }
                sent = out.write_all(&chunk).and_then(|()| out.flush());
                std::thread::sleep(pause);
            }
        }
        Some(Reply::EchoHeaders401) => {
            let echoed: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let body = serde_json::json!({"error": {"message": format!("unauthorized; you sent {}", echoed.join(", ")), "type": "invalid_api_key"}});
            respond(&mut out, 401, &[], &body.to_string());
        }
    }
    state.lock().unwrap().in_flight -= 1;
}

fn respond(out: &mut TcpStream, status: u16, headers: &[(String, String)], body: &str) {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(body.as_bytes());
    let _ = out.flush();
}

// Replies in the two wire formats.

pub fn json(status: u16, body: serde_json::Value) -> Reply {
    Reply::Json {
        status,
        headers: Vec::new(),
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

pub fn openai_answer(text: &str) -> Reply {
    openai_finish(text, "stop")
}

pub fn openai_finish(text: &str, finish: &str) -> Reply {
    json(
        200,
        serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "test",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        }),
    )
}

pub fn delayed(reply: Reply, by: Duration) -> Reply {
    match reply {
        Reply::Json {
            status,
            headers,
            body,
            ..
        } => Reply::Json {
            status,
            headers,
            body,
            delay: by,
        },
        other => other,
    }
}

pub fn with_header(reply: Reply, name: &str, value: &str) -> Reply {
    match reply {
        Reply::Json {
            status,
            mut headers,
            body,
            delay,
        } => {
            headers.push((name.to_string(), value.to_string()));
            Reply::Json {
                status,
                headers,
                body,
                delay,
            }
        }
        other => other,
    }
}

pub fn openai_stream(pieces: &[&str], finish: Option<&str>, end: StreamEnd) -> Reply {
    let mut events = Vec::new();
    for p in pieces {
        events.push((
            None,
            serde_json::json!({"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]}).to_string(),
        ));
    }
    if let Some(f) = finish {
        events.push((
            None,
            serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": f}]})
                .to_string(),
        ));
        events.push((
            None,
            serde_json::json!({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": pieces.len(), "total_tokens": 5 + pieces.len()}}).to_string(),
        ));
        events.push((None, "[DONE]".to_string()));
    }
    Reply::Sse { events, end }
}

pub fn anthropic_answer(text: &str) -> Reply {
    json(
        200,
        serde_json::json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "test",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 13, "output_tokens": 4}
        }),
    )
}

pub fn anthropic_stream(pieces: &[&str], stop: &str) -> Reply {
    let mut events = vec![(
        Some("message_start".to_string()),
        serde_json::json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 13, "output_tokens": 1}}}).to_string(),
    )];
    events.push((
        Some("content_block_start".to_string()),
        serde_json::json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}).to_string(),
    ));
    for p in pieces {
        events.push((
            Some("content_block_delta".to_string()),
            serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}).to_string(),
        ));
    }
    events.push((
        Some("content_block_stop".to_string()),
        serde_json::json!({"type": "content_block_stop", "index": 0}).to_string(),
    ));
    events.push((
        Some("message_delta".to_string()),
        serde_json::json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": pieces.len()}}).to_string(),
    ));
    events.push((
        Some("message_stop".to_string()),
        serde_json::json!({"type": "message_stop"}).to_string(),
    ));
    Reply::Sse {
        events,
        end: StreamEnd::Close,
    }
}
