//! The ring timer: one thread that ends every ringing call its callee did
//! not answer within `--ring-timeout`.
//!
//! The server hands it each ringing call with its deadline; the thread
//! keeps them in a heap and sleeps until the earliest. At a deadline it asks
//! the [`Registry`] to end the call *if it still rings*: call ids are never
//! reused, so a call answered, declined or hung up meanwhile is simply
//! skipped, and nothing needs cancelling. The two parties are told on a
//! short-lived thread, so a client that does not read cannot make the timer
//! late for everyone else.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use crate::connection::Outbox;
use crate::log;
use crate::protocol::{CallId, ServerLine};
use crate::registry::{RangOut, Registry};

/// Where ringing calls are handed to the timer thread.
pub struct RingTimer {
    calls: Sender<(Instant, CallId)>,
    timeout: Duration,
}

impl RingTimer {
    /// Starts the timer thread for calls of `registry` that ring for
    /// `timeout`.
    pub fn start(registry: Arc<Registry<Outbox>>, timeout: Duration) -> RingTimer {
        let (calls, deadlines) = mpsc::channel();
        let started = thread::Builder::new()
            .name("ring-timer".into())
            .stack_size(64 * 1024)
            .spawn(move || run(&registry, &deadlines));
        if let Err(e) = started {
            // Without the timer a call rings until someone acts on it.
            log!("cannot start the ring timer: {e}");
        }
        RingTimer { calls, timeout }
    }

    /// Ends `call` after the ring timeout unless it stopped ringing.
    pub fn ring(&self, call: CallId) {
        let _ = self.calls.send((Instant::now() + self.timeout, call));
    }
}

fn run(registry: &Registry<Outbox>, deadlines: &Receiver<(Instant, CallId)>) {
    let mut due: BinaryHeap<Reverse<(Instant, CallId)>> = BinaryHeap::new();
    loop {
        let next = match due.peek() {
            Some(Reverse((at, _))) => {
                deadlines.recv_timeout(at.saturating_duration_since(Instant::now()))
            }
            None => deadlines.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(entry) => due.push(Reverse(entry)),
            Err(RecvTimeoutError::Timeout) => {}
            // The server is gone: nobody is left to tell.
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        while let Some(Reverse((at, call))) = due.peek().copied() {
            if at > now {
                break;
            }
            due.pop();
            if let Some(rang) = registry.ring_out(call) {
                tell_rang_out(rang);
            }
        }
    }
}

fn tell_rang_out(rang: RangOut<Outbox>) {
    log!(
        "chat {} not answered: {} called {} in vain",
        rang.call,
        rang.caller,
        rang.callee
    );
    let tell = move || {
        let _ = rang.caller_outbox.send(&ServerLine::NoAnswer {
            call: rang.call,
            peer: rang.callee.clone(),
        });
        let _ = rang.callee_outbox.send(&ServerLine::NoAnswer {
            call: rang.call,
            peer: rang.caller,
        });
    };
    let spawned = thread::Builder::new()
        .name("ring-out".into())
        .stack_size(64 * 1024)
        .spawn(tell);
    if let Err(e) = spawned {
        log!("cannot tell of an unanswered call: {e}");
    }
}
