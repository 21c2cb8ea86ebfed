//! A build's calls to one server share its connections: a server that
//! keeps connections alive (HTTP/1.1) is asked over as many connections as
//! there were calls in flight at once, not over a new one for most calls
//! (for a cloud API, a new connection is a TLS handshake).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::*;

/// A model server that keeps every connection open for the next request
/// and counts the connections it accepted and the calls in flight.
struct KeepAlive {
    url: String,
    accepted: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl KeepAlive {
    fn start(delay: Duration) -> KeepAlive {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let (a, i, m) = (accepted.clone(), in_flight, max_in_flight.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                a.fetch_add(1, Ordering::SeqCst);
                let (i, m) = (i.clone(), m.clone());
                std::thread::spawn(move || serve(stream, delay, &i, &m));
            }
        });
        KeepAlive {
            url,
            accepted,
            max_in_flight,
        }
    }
}

/// Answers requests on one connection until the client closes it.
fn serve(stream: TcpStream, delay: Duration, in_flight: &AtomicUsize, max: &AtomicUsize) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(delay);
        in_flight.fetch_sub(1, Ordering::SeqCst);
        let answer = serde_json::json!({
            "choices": [{"message": {"role": "assistant", "content": "An answer."},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2}
        })
        .to_string();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        );
        if writer.write_all(head.as_bytes()).is_err()
            || writer.write_all(answer.as_bytes()).is_err()
        {
            return;
        }
    }
}

#[test]
fn calls_in_waves_reuse_the_connections_of_the_wave_before() {
    let server = KeepAlive::start(Duration::from_millis(150));
    let mut pipeline = format!(
        "[pipeline]\nmodel = \"local\"\n\n[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nmax_concurrency = 8\n\n",
        server.url
    );
    // 24 independent calls, 8 at a time: three waves.
    for i in 0..24 {
        pipeline.push_str(&format!(
            "[tasks.t{i:02}]\noutputs = [\"out/t{i:02}.md\"]\nprompt = \"Part {i}\"\n\n"
        ));
    }
    let p = Project::new(&pipeline);
    p.run(&["build", "-j8"]).code(0);
    let accepted = server.accepted.load(Ordering::SeqCst);
    let peak = server.max_in_flight.load(Ordering::SeqCst);
    assert!(peak <= 8, "{peak} calls in flight with max_concurrency = 8");
    // Each connection carries one call at a time, so a build that keeps
    // them needs no more connections than calls it may have in flight.
    assert!(
        accepted <= 8,
        "{accepted} connections for 24 calls, at most 8 ({peak} seen) in flight at once"
    );
}
