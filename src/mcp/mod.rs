//! `planexe mcp`: a Model Context Protocol server on stdin and stdout, the
//! door for agents that create runs, build them, wait, read why they
//! failed, fix an input and resume (docs/mcp.md).
//!
//! - [`wire`]: JSON-RPC 2.0, one message per line, and its error codes;
//! - [`catalog`]: the tools, with their input and output schemas;
//! - [`tools`]: a tool call: arguments checked, one handler per tool;
//! - [`limits`]: the bounds on what a client sends, and how much of a bad
//!   value an error quotes;
//! - [`advice`]: what the server (and a build it started) tells a client
//!   to do, in the tools' terms;
//! - [`runs`]: the root and the runs in it: names, making, listing;
//! - [`pipelines`]: the pipeline files the server takes, and the one each
//!   run is opened and built with;
//! - [`builds`]: builds started as processes of their own, and any build
//!   running in a run: started, stopped, waited for;
//! - [`answers`]: status, explanations and summaries, as JSON;
//! - [`outputs`]: one file of a run, read bounded;
//! - [`answering`]: the threads requests are answered on.
//!
//! Threads, not an async runtime: the calling thread reads lines; each
//! request, and each request of a batch (MCP 2025-03-26 only), is answered
//! on a thread of its own, `wait` calls on threads counted apart
//! ([`answering`]: the limits, and a batch's answers gathered into one
//! array), so `ping` and `status` answer while any number of `wait`s
//! block. Every answer is one line, written whole under one lock. At the
//! end of input the server answers what it already read (a `wait` at
//! once, with the status as it is), then returns; builds it started go on.
//!
//! Requests are served before `initialize` too (the spec asks clients not
//! to send them; being lenient costs nothing here). Below the CLI: the
//! input, output, root and environment are the caller's.

pub mod advice;
mod answering;
mod answers;
mod arguments;
mod builds;
mod catalog;
mod limits;
mod outputs;
mod pipelines;
mod runs;
mod seeds;
mod tools;
mod wire;

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::exec::Env;
use answering::To;
use wire::{Fault, Incoming, Line};

/// The protocol versions the server speaks, newest first. A client that
/// offers another is answered with the newest.
pub const PROTOCOL_VERSIONS: [&str; 3] = ["2025-06-18", "2025-03-26", "2024-11-05"];

/// The one version that has batches (JSON arrays of messages): added by
/// 2025-03-26, removed by 2025-06-18.
const BATCH_VERSION: &str = "2025-03-26";

/// The longest line read: a plan of a mebibyte, escaped.
const MAX_LINE: usize = 8 << 20;

/// What the server is started with.
pub struct Config {
    /// The folder runs live in.
    pub root: PathBuf,
    /// The planexe binary builds run with (`planexe build -C RUN`).
    pub exe: PathBuf,
    /// The pipeline file `run_create` uses when the client names none,
    /// and a run that records none is built with, and how to show it.
    pub pipeline: (PathBuf, String),
    /// `$PLANEXE_MODEL`.
    pub env_model: Option<String>,
    /// The environment builds are given.
    pub env: Env,
}

/// Everything the threads answering requests share.
struct Server {
    config: Config,
    root: runs::Root,
    opener: answers::Opener,
    builds: builds::Builds,
    tools: Vec<catalog::Tool>,
    /// One per tool, in the same order: its `inputSchema`, compiled.
    validators: Vec<jsonschema::Validator>,
    /// The version agreed at `initialize`.
    protocol: Mutex<Option<&'static str>>,
    /// Held while a run is made, so two identical `run_create` calls make
    /// one run.
    creating: Mutex<()>,
    /// The requests being answered, by their id's key ([`wire::Id::key`]):
    /// each one's flag, set when the client cancels it.
    pending: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// Set at the end of input: a `wait` (and the wait of a `stop`) then
    /// answers at once, so the server exits when its client has gone
    /// rather than up to `wait`'s 50 s later.
    ending: AtomicBool,
    out: Mutex<Box<dyn Write + Send>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the server can do, as `initialize` says it.
fn capabilities() -> Value {
    json!({"tools": {"listChanged": false}})
}

const INSTRUCTIONS: &str = "planexe builds LLM pipelines in run folders under this server's root. \
    run_create makes a run from a plan; build starts a build in the background; wait blocks until it \
    ends (call it again while timed_out is true); status says each task's state and, when a task \
    failed, error.recoverable: true means build again, false means change the input named in the \
    message first. stop stops a build (the run is then stopped, and build resumes it); clean makes \
    tasks run again; read_output reads outputs and logs; runs lists runs; archive hides old ones.";

/// Serves MCP on `input` and `output` until the input ends.
pub fn serve(
    config: Config,
    mut input: impl BufRead,
    output: impl Write + Send + 'static,
) -> Result<()> {
    let tools = catalog::tools();
    let validators = tools
        .iter()
        .map(|t| {
            jsonschema::validator_for(&t.input).map_err(|e| {
                Error::usage(format!(
                    "the input schema of {} does not compile: {e}",
                    t.name
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // Opened once: the server and its opener name the same folder.
    let root = runs::Root::open(&config.root)?;
    let server = Arc::new(Server {
        root: root.clone(),
        opener: answers::Opener {
            root,
            default_pipeline: config.pipeline.clone(),
            env_model: config.env_model.clone(),
        },
        config,
        builds: builds::Builds::default(),
        tools,
        validators,
        protocol: Mutex::new(None),
        creating: Mutex::new(()),
        pending: Mutex::new(HashMap::new()),
        ending: AtomicBool::new(false),
        out: Mutex::new(Box::new(output)),
    });
    let pools = answering::Pools::default();
    loop {
        let line = match wire::read_line(&mut input, MAX_LINE) {
            Ok(Line::End) => break,
            Ok(Line::TooLong) => {
                server.send(&wire::error(
                    &wire::Id::null(),
                    &Fault::new(
                        wire::INVALID_REQUEST,
                        format!("invalid request: a message longer than {MAX_LINE} bytes"),
                    ),
                ));
                continue;
            }
            Ok(Line::Message(line)) => line,
            Err(e) => return Err(Error::io_at(std::path::Path::new("<stdin>"), e)),
        };
        match wire::parse(&line) {
            Incoming::Request { id, method, params } => {
                answering::start(&server, &pools, id, method, params, To::Client)
            }
            Incoming::Batch(items) => match server.batches() {
                Ok(()) => server.batch(&pools, items),
                Err(fault) => server.send(&wire::error(&wire::Id::null(), &fault)),
            },
            Incoming::Invalid { id, fault } => server.send(&wire::error(&id, &fault)),
            // Notifications need no answer; a cancellation ends what it
            // names, if that is still being answered.
            Incoming::Notification { method, params } => server.notified(&method, params.as_ref()),
            Incoming::Response | Incoming::Blank => {}
        }
    }
    // Answer what was read before the end, the waits at once (with the
    // status as it is: a client that closed its input is leaving).
    server.ending.store(true, Ordering::SeqCst);
    pools.drain();
    Ok(())
}

impl Server {
    /// Whether a batch may be served: only once the version that has
    /// them ([`BATCH_VERSION`]) was agreed.
    fn batches(&self) -> std::result::Result<(), Fault> {
        let why = match *lock(&self.protocol) {
            Some(BATCH_VERSION) => return Ok(()),
            Some(agreed) => format!("this session agreed on {agreed} at initialize"),
            None => "no version was agreed yet (initialize first)".to_string(),
        };
        Err(Fault::new(
            wire::INVALID_REQUEST,
            format!(
                "invalid request: batches (JSON arrays) are part of MCP {BATCH_VERSION} only, and \
                 {why}; send one request object per line"
            ),
        ))
    }

    /// Starts answering a batch's requests, each as a request of its own
    /// is answered; their answers are sent as one array once all are in
    /// (none when it held only notifications and responses).
    fn batch(self: &Arc<Self>, pools: &answering::Pools, items: Vec<Incoming>) {
        let gather = answering::Gather::new(items.len());
        for (slot, item) in items.into_iter().enumerate() {
            let to = To::Batch(Arc::clone(&gather), slot);
            match item {
                Incoming::Request { id, method, .. } if method == "initialize" => {
                    let fault = Fault::new(
                        wire::INVALID_REQUEST,
                        "invalid request: initialize cannot be part of a batch; send it alone",
                    );
                    to.deliver(self, Some(wire::error(&id, &fault)))
                }
                Incoming::Request { id, method, params } => {
                    answering::start(self, pools, id, method, params, to)
                }
                Incoming::Invalid { id, fault } => to.deliver(self, Some(wire::error(&id, &fault))),
                Incoming::Notification { method, params } => {
                    self.notified(&method, params.as_ref());
                    to.deliver(self, None)
                }
                Incoming::Response | Incoming::Blank | Incoming::Batch(_) => to.deliver(self, None),
            }
        }
    }

    /// Counts request `id` as being answered: its cancellation flag.
    fn pending(&self, id: &wire::Id) -> Arc<AtomicBool> {
        let cancel = Arc::new(AtomicBool::new(false));
        lock(&self.pending).insert(id.key(), Arc::clone(&cancel));
        cancel
    }

    /// Counts request `id`, whose flag is `cancel`, as answered.
    fn answered(&self, id: &wire::Id, cancel: &Arc<AtomicBool>) {
        let mut pending = lock(&self.pending);
        // Not another request's that reused the id.
        if pending
            .get(&id.key())
            .is_some_and(|c| Arc::ptr_eq(c, cancel))
        {
            pending.remove(&id.key());
        }
    }

    /// A notification: `notifications/cancelled` flags the request it
    /// names, which ends early (a `wait`) and gets no answer; an id that is
    /// not being answered (unknown, or answered already) is ignored, as
    /// every other notification is.
    fn notified(&self, method: &str, params: Option<&Value>) {
        if method != "notifications/cancelled" {
            return;
        }
        let Some(id) = params.and_then(|p| p.get("requestId")) else {
            return;
        };
        if let Some(cancel) = lock(&self.pending).get(&id.to_string()) {
            cancel.store(true, Ordering::SeqCst);
        }
    }

    /// The answer to one request; `cancel` is set when the client cancels
    /// it.
    fn answer(
        &self,
        id: &wire::Id,
        method: &str,
        params: Option<Value>,
        cancel: &AtomicBool,
    ) -> String {
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.dispatch(method, params, cancel)
        }));
        match answered {
            Ok(Ok(result)) => wire::result(id, result),
            Ok(Err(fault)) => wire::error(id, &fault),
            Err(_) => wire::error(
                id,
                &Fault::new(
                    wire::INTERNAL_ERROR,
                    format!("internal error: planexe failed answering {method}; please report it"),
                ),
            ),
        }
    }

    fn dispatch(
        &self,
        method: &str,
        params: Option<Value>,
        cancel: &AtomicBool,
    ) -> std::result::Result<Value, Fault> {
        match method {
            "initialize" => self.initialize(params),
            "ping" => Ok(json!({})),
            "tools/list" => Ok(json!({
                "tools": self.tools.iter().map(catalog::Tool::listing).collect::<Vec<_>>(),
            })),
            "tools/call" => tools::call(self, params, cancel),
            _ => Err(Fault::new(
                wire::METHOD_NOT_FOUND,
                format!(
                    "method not found: {}; this server answers initialize, ping, tools/list and tools/call",
                    limits::quoted(method)
                ),
            )),
        }
    }

    /// Agrees on a protocol version: the client's when the server speaks
    /// it, else the newest the server speaks.
    fn initialize(&self, params: Option<Value>) -> std::result::Result<Value, Fault> {
        let offered = params
            .as_ref()
            .and_then(|p| p.get("protocolVersion"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Fault::new(
                    wire::INVALID_PARAMS,
                    "invalid params: initialize needs `protocolVersion`, a string",
                )
            })?;
        let version = PROTOCOL_VERSIONS
            .iter()
            .find(|&&v| v == offered)
            .copied()
            .unwrap_or(PROTOCOL_VERSIONS[0]);
        *lock(&self.protocol) = Some(version);
        Ok(json!({
            "protocolVersion": version,
            "capabilities": capabilities(),
            "serverInfo": {"name": "planexe", "title": "planexe", "version": env!("CARGO_PKG_VERSION")},
            "instructions": INSTRUCTIONS,
        }))
    }

    /// Writes one message (one line of JSON, from [`wire`]) as one line. A
    /// client that went away cannot be told anything: the error is dropped.
    fn send(&self, message: &str) {
        let mut line = String::with_capacity(message.len() + 1);
        line.push_str(message);
        line.push('\n');
        let mut out = lock(&self.out);
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }
}
