//! The threads requests are answered on, and where their answers go.
//!
//! Each request is answered on a thread of its own: at most
//! [`MAX_IN_FLIGHT`] at once (the reader waits for a free one), and `wait`
//! calls on threads counted apart (at most [`MAX_WAITS`]; one more is
//! refused at once), so `ping` and `status` answer while any number of
//! `wait`s block. A batch's requests are started the same way, each on a
//! thread of its own under the same limits, and their answers gathered
//! ([`Gather`]): the array is sent once the last is in, so a batch takes
//! as long as its slowest request, not their sum. Every started request
//! delivers exactly one answer (none when it was cancelled), and its
//! thread is counted free only after it delivered.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};

use serde_json::Value;

use super::wire::{self, Fault, Id};
use super::{lock, Server};

/// The most requests answered at once, `wait` calls aside.
pub const MAX_IN_FLIGHT: usize = 16;

/// The most `wait` calls blocking at once: on threads of their own,
/// beside [`MAX_IN_FLIGHT`], so that waits never hold up `ping`,
/// `status` or `stop`. One more is answered at once with an error.
pub const MAX_WAITS: usize = 64;

/// The threads of one kind that are answering: their count, and the
/// signal that one is free.
#[derive(Default)]
struct Pool {
    count: Mutex<usize>,
    freed: Condvar,
}

impl Pool {
    /// Counts a request answered.
    fn done(&self) {
        let mut n = lock(&self.count);
        *n = n.saturating_sub(1);
        self.freed.notify_all();
    }

    /// Blocks until every request counted is answered.
    fn drain(&self) {
        let mut n = lock(&self.count);
        while *n > 0 {
            n = self.freed.wait(n).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The two pools of threads: requests, and `wait` calls apart.
#[derive(Default)]
pub struct Pools {
    requests: Arc<Pool>,
    waits: Arc<Pool>,
}

impl Pools {
    /// Blocks until every request started is answered.
    pub fn drain(&self) {
        self.requests.drain();
        self.waits.drain();
    }
}

/// Where a request's answer goes.
#[derive(Clone)]
pub enum To {
    /// To the client, as a line of its own.
    Client,
    /// Into slot `.1` of a batch's answers.
    Batch(Arc<Gather>, usize),
}

impl To {
    /// Delivers `answer` (`None` for a cancelled request, which gets none).
    pub fn deliver(&self, server: &Server, answer: Option<String>) {
        match self {
            To::Client => {
                if let Some(answer) = answer {
                    server.send(&answer);
                }
            }
            To::Batch(gather, slot) => gather.put(server, *slot, answer),
        }
    }
}

/// A batch's answers, gathered from the threads answering its requests.
pub struct Gather {
    slots: Mutex<Slots>,
}

struct Slots {
    /// One per message of the batch, in its order: its answer, once in
    /// (none for a notification, a response or a cancelled request).
    answers: Vec<Option<String>>,
    /// The messages whose answer is not in yet.
    left: usize,
}

impl Gather {
    /// Gathers the answers to a batch of `len` messages; each must be
    /// delivered once, to its slot.
    pub fn new(len: usize) -> Arc<Gather> {
        Arc::new(Gather {
            slots: Mutex::new(Slots {
                answers: vec![None; len],
                left: len,
            }),
        })
    }

    /// Puts the answer of message `slot`; once the last is in, sends them
    /// all as one array (nothing when none needs an answer).
    fn put(&self, server: &Server, slot: usize, answer: Option<String>) {
        let mut slots = lock(&self.slots);
        if let Some(place) = slots.answers.get_mut(slot) {
            *place = answer;
        }
        slots.left = slots.left.saturating_sub(1);
        if slots.left > 0 {
            return;
        }
        let answers: Vec<String> = slots.answers.iter_mut().filter_map(Option::take).collect();
        drop(slots);
        if !answers.is_empty() {
            server.send(&format!("[{}]", answers.join(",")));
        }
    }
}

/// Starts answering request `id` on a thread of its own, once one is free
/// (a `wait` at once, or refused at once when [`MAX_WAITS`] block), its
/// answer delivered `to`.
pub fn start(
    server: &Arc<Server>,
    pools: &Pools,
    id: Id,
    method: String,
    params: Option<Value>,
    to: To,
) {
    let is_wait = method == "tools/call"
        && params
            .as_ref()
            .and_then(|p| p.get("name"))
            .is_some_and(|n| n == "wait");
    let pool = if is_wait {
        &pools.waits
    } else {
        &pools.requests
    };
    let mut n = lock(&pool.count);
    if is_wait && *n >= MAX_WAITS {
        drop(n);
        let text = format!(
            "{MAX_WAITS} wait calls are blocking already\nhint: call wait again once one \
             has returned, or status, which answers at once"
        );
        let refusal = wire::result(
            &id,
            serde_json::json!({"content": [{"type": "text", "text": text}], "isError": true}),
        );
        to.deliver(server, Some(refusal));
        return;
    }
    while *n >= MAX_IN_FLIGHT && !is_wait {
        n = pool.freed.wait(n).unwrap_or_else(|p| p.into_inner());
    }
    *n += 1;
    drop(n);
    let cancel = server.pending(&id);
    let worker = (
        Arc::clone(server),
        Arc::clone(pool),
        id.clone(),
        Arc::clone(&cancel),
        to.clone(),
    );
    let spawned = std::thread::Builder::new()
        .name("mcp-request".into())
        .spawn(move || {
            let (server, pool, id, cancel, to) = worker;
            let answer = server.answer(&id, &method, params, &cancel);
            server.answered(&id, &cancel);
            // A cancelled request is not answered (the spec asks so: its
            // client has stopped listening).
            let answer = (!cancel.load(Ordering::SeqCst)).then_some(answer);
            to.deliver(&server, answer);
            pool.done();
        });
    if let Err(e) = spawned {
        pool.done();
        server.answered(&id, &cancel);
        let fault = Fault::new(
            wire::INTERNAL_ERROR,
            format!("internal error: no thread to answer on ({e}); try again"),
        );
        to.deliver(server, Some(wire::error(&id, &fault)));
    }
}
