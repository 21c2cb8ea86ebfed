#!/usr/bin/env python3
"""A stand-in LLM server for the benchmark: OpenAI-compatible
POST /v1/chat/completions on 127.0.0.1 that answers after a fixed delay.

    python3 bench/llm_server.py [--delay-ms 200] [--answer-bytes 10240]
                                [--chunk-bytes 64] [--slots N] [--port 0]

Prints the port it listens on as the first line of stdout, then serves until
killed. Answers are `--answer-bytes` of text; with "stream": true in the
request the answer comes as server-sent events (content chunks, a chunk with
finish_reason "stop", a usage chunk with "choices": [], then `data: [DONE]`).
The delay is slept once per request before the first byte is sent (a
time-to-answer, not a token rate).

A request whose last user message contains `LIST n` (n a number) is
answered, after the same delay, with a JSON array of n objects
`{"id": "w1", "title": "..."}` ... `{"id": "wn", ...}` as the content
instead of the filler text, so a prompt task with `format = "json"` writes
a list a `foreach` can fan out over.

With `--slots N`, at most N requests are served at once: a request takes a
slot (a semaphore) before its delay and gives it back after its last byte
is written; requests beyond N wait for a slot at the server, as on a real
server with N parallel slots (llama.cpp's `--parallel`).

GET /timeline returns one object per completion answered since the last
DELETE /timeline (which clears it): `task` (the `task: NAME` first line
of the last user message, or null), `arrival` (body read), `start` (slot
taken) and `end` (slot given back, last byte written), in seconds since
the epoch (time.time(), comparable with the client's clock on the same
machine), in order of arrival. Warm-up requests are left out.

GET /stats returns {"requests": N, "handling_ms": T}: the number of
completions answered and the sum of their server-side handling times (from
the request body being read to the last byte written, delay and any wait
for a slot included), so a
client can subtract the server's share from its own wall time. Requests
whose JSON body has "warmup": true are answered but not counted.

Standard library only. HTTP/1.1 with keep-alive (every answer has a
Content-Length, streamed ones too), TCP_NODELAY so small writes are not held
back by Nagle's algorithm.
"""

import argparse
import json
import re
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


class Timeline:
    """Per-request times, for the saturation measure (bench/run's
    llm-saturate): who asked, when it arrived, when it got a slot, when the
    slot was given back."""

    def __init__(self):
        self.lock = threading.Lock()
        self.entries = []

    def add(self, entry):
        with self.lock:
            self.entries.append(entry)

    def snapshot(self):
        with self.lock:
            return sorted(self.entries, key=lambda e: e["arrival"])

    def clear(self):
        with self.lock:
            n = len(self.entries)
            self.entries = []
            return n


LIST_MARK = re.compile(r"\bLIST (\d+)\b")
TASK_TAG = re.compile(r"^task: *(\S+)", re.M)


def last_user_text(req):
    """The text of the last user message (string content, or the text parts
    of a list content), or ""."""
    for m in reversed(req.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                c = "\n".join(p.get("text", "") for p in c if isinstance(p, dict))
            return c if isinstance(c, str) else ""
    return ""


def list_answer(n, task):
    """A JSON array of n items, as a list-producing prompt answers."""
    return json.dumps([{"id": f"w{i}", "title": f"item {i} of {task or 'the list'}"}
                       for i in range(1, n + 1)])


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
        path = self.path.rstrip("/")
        if path == "/stats":
            self._send(200, "application/json",
                       json.dumps(self.server.stats.snapshot()).encode())
        elif path == "/timeline":
            self._send(200, "application/json",
                       json.dumps(self.server.timeline.snapshot()).encode())
        else:
            self._send(404, "application/json", b'{"error":"not found"}')

    def do_DELETE(self):
        if self.path.rstrip("/") == "/timeline":
            n = self.server.timeline.clear()
            self._send(200, "application/json", json.dumps({"cleared": n}).encode())
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
        arrival = time.time()
        text = last_user_text(req)
        tag = TASK_TAG.search(text)
        task = tag.group(1) if tag else None
        mark = LIST_MARK.search(text)
        answer = list_answer(int(mark.group(1)), task) if mark else self.server.answer
        slots = self.server.slots
        if slots:
            slots.acquire()     # queue here, as a server with N slots does
        try:
            start = time.time()
            self._answer(req, answer, cfg)
            end = time.time()
        finally:
            if slots:
                slots.release()
        if not req.get("warmup"):
            self.server.stats.add(time.perf_counter() - started)
            self.server.timeline.add({"task": task, "arrival": arrival,
                                      "start": start, "end": end})

    def _answer(self, req, answer, cfg):
        """Waits the delay, then sends `answer` whole or streamed."""
        if cfg.delay_ms:
            time.sleep(cfg.delay_ms / 1000)
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
    ap.add_argument("--slots", type=int, default=0,
                    help="serve at most this many requests at once, the rest "
                         "queue (default 0: no limit)")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    cfg = ap.parse_args(argv)

    srv = Server(("127.0.0.1", cfg.port), Handler)
    srv.cfg = cfg
    srv.stats = Stats()
    srv.timeline = Timeline()
    srv.slots = threading.Semaphore(cfg.slots) if cfg.slots > 0 else None
    srv.answer = make_answer(cfg.answer_bytes)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
