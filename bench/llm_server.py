#!/usr/bin/env python3
"""A stand-in LLM server for the benchmark: OpenAI-compatible
POST /v1/chat/completions on 127.0.0.1 that answers after a fixed delay.

    python3 bench/llm_server.py [--delay-ms 200] [--answer-bytes 10240]
                                [--chunk-bytes 64] [--port 0]

Prints the port it listens on as the first line of stdout, then serves until
killed. Answers are `--answer-bytes` of text; with "stream": true in the
request the answer comes as server-sent events (content chunks, a chunk with
finish_reason "stop", a usage chunk with "choices": [], then `data: [DONE]`).
The delay is slept once per request before the first byte is sent (a
time-to-answer, not a token rate).

GET /stats returns {"requests": N, "handling_ms": T}: the number of
completions answered and the sum of their server-side handling times (from
the request body being read to the last byte written, delay included), so a
client can subtract the server's share from its own wall time. Requests
whose JSON body has "warmup": true are answered but not counted.

Standard library only. HTTP/1.1 with keep-alive (every answer has a
Content-Length, streamed ones too), TCP_NODELAY so small writes are not held
back by Nagle's algorithm.
"""

import argparse
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.handling_s = 0.0

    def add(self, seconds):
        with self.lock:
            self.requests += 1
            self.handling_s += seconds

    def snapshot(self):
        with self.lock:
            return {"requests": self.requests,
                    "handling_ms": round(self.handling_s * 1000, 3)}


def make_answer(size):
    """Deterministic filler text of exactly `size` bytes (ASCII)."""
    words = ("the plan needs a schedule, a budget, named owners and a review "
             "of every risk before work starts. ")
    text = (words * (size // len(words) + 1))[:size]
    return text


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive
    server_version = "bench-llm/1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):   # quiet
        pass

    # -- helpers ---------------------------------------------------------
    def _send(self, status, ctype, body):
        head = (f"HTTP/1.1 {status} OK\r\n"
                f"Content-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.wfile.write(head + body)   # one write: one packet for small answers

    # -- routes ----------------------------------------------------------
    def do_GET(self):
        if self.path.rstrip("/") == "/stats":
            self._send(200, "application/json",
                       json.dumps(self.server.stats.snapshot()).encode())
        else:
            self._send(404, "application/json", b'{"error":"not found"}')

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        started = time.perf_counter()
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, "application/json", b'{"error":{"message":"not found"}}')
            return
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, "application/json", b'{"error":{"message":"bad json"}}')
            return
        cfg = self.server.cfg
        if cfg.delay_ms:
            time.sleep(cfg.delay_ms / 1000)
        answer = self.server.answer
        if req.get("stream"):
            self._stream(answer, cfg.chunk_bytes)
        else:
            body = json.dumps({
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "model": req.get("model", "bench"),
                "choices": [{"index": 0,
                             "message": {"role": "assistant", "content": answer},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10,
                          "total_tokens": 20},
            }).encode()
            self._send(200, "application/json", body)
        if not req.get("warmup"):
            self.server.stats.add(time.perf_counter() - started)

    def _stream(self, answer, chunk):
        def event(obj):
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        events = [event({"choices": [{"index": 0, "delta": {"content": answer[i:i + chunk]},
                                      "finish_reason": None}]})
                  for i in range(0, len(answer), chunk)]
        events.append(event({"choices": [{"index": 0, "delta": {},
                                          "finish_reason": "stop"}]}))
        events.append(event({"choices": [], "usage": {
            "prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}))
        events.append(b"data: [DONE]\n\n")
        total = sum(len(e) for e in events)
        head = ("HTTP/1.1 200 OK\r\n"
                "Content-Type: text/event-stream\r\n"
                "Cache-Control: no-cache\r\n"
                f"Content-Length: {total}\r\n\r\n").encode()
        self.wfile.write(head)
        for e in events:          # one write per event, as a real server does
            self.wfile.write(e)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256      # -j64 connects at once must not hit the backlog


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--delay-ms", type=float, default=200.0,
                    help="delay before each answer (default 200)")
    ap.add_argument("--answer-bytes", type=int, default=10240,
                    help="size of each answer's text (default 10240)")
    ap.add_argument("--chunk-bytes", type=int, default=64,
                    help="text per streamed chunk (default 64)")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    cfg = ap.parse_args(argv)

    srv = Server(("127.0.0.1", cfg.port), Handler)
    srv.cfg = cfg
    srv.stats = Stats()
    srv.answer = make_answer(cfg.answer_bytes)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
