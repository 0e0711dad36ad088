//! The server's timer: one thread for every deadline a call or a
//! registration has. It ends every ringing call its callee did not answer
//! within `--ring-timeout`, and gives the verdict on a registration whose
//! connection closed cleanly ([`CLOSE_VERDICT`] later: gone, unless its
//! program took it back).
//!
//! The server hands it each deadline; the thread keeps them in a heap and
//! sleeps until the earliest. At a deadline it asks the [`Registry`] to act
//! *if it still applies*: call ids and departures are never reused, so a
//! call answered, declined or hung up meanwhile, or a registration taken
//! back, is simply skipped, and nothing needs cancelling. Those to tell
//! are told on a short-lived thread, so a client that does not read cannot
//! make the timer late for everyone else.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use crate::connection::Outbox;
use crate::log;
use crate::protocol::{CallId, ServerLine};
use crate::registry::{CLOSE_VERDICT, Gone, RangOut, Registry, Verdict};

/// What is due at a deadline.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    RingOut(CallId),
    Verdict(Verdict),
}

/// Where deadlines are handed to the timer thread.
pub struct Timer {
    deadlines: Sender<(Instant, Due)>,
    ring_timeout: Duration,
}

impl Timer {
    /// Starts the timer thread for `registry`, whose calls ring for
    /// `ring_timeout`.
    pub fn start(registry: Arc<Registry<Outbox>>, ring_timeout: Duration) -> Timer {
        let (deadlines, due) = mpsc::channel();
        let started = thread::Builder::new()
            .name("timer".into())
            .stack_size(64 * 1024)
            .spawn(move || run(&registry, &due));
        if let Err(e) = started {
            // Without the timer a call rings until someone acts on it, and
            // a closed registration's partner waits its grace.
            log!("cannot start the timer: {e}");
        }
        Timer {
            deadlines,
            ring_timeout,
        }
    }

    /// Ends `call` after the ring timeout unless it stopped ringing.
    pub fn ring(&self, call: CallId) {
        let _ = self
            .deadlines
            .send((Instant::now() + self.ring_timeout, Due::RingOut(call)));
    }

    /// Gives the verdict on a registration that closed cleanly, after
    /// [`CLOSE_VERDICT`].
    pub fn verdict(&self, verdict: Verdict) {
        let _ = self
            .deadlines
            .send((Instant::now() + CLOSE_VERDICT, Due::Verdict(verdict)));
    }
}

fn run(registry: &Registry<Outbox>, deadlines: &Receiver<(Instant, Due)>) {
    let mut due: BinaryHeap<Reverse<(Instant, Due)>> = BinaryHeap::new();
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
        while due.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            let Some(Reverse((_, what))) = due.pop() else {
                break;
            };
            match what {
                Due::RingOut(call) => {
                    if let Some(rang) = registry.ring_out(call) {
                        tell_rang_out(rang);
                    }
                }
                Due::Verdict(verdict) => {
                    if let Some(gone) = registry.verdict(&verdict) {
                        tell_gone(gone);
                    }
                }
            }
        }
    }
}

/// Tells the partner of a program that is gone (`EVENT GONE`). The write
/// is bounded by the outbox's deadline; the timer does it on a thread of
/// its own, like the ring-out.
pub fn tell_gone(gone: Gone<Outbox>) {
    log!("{} is gone; telling its partner", gone.peer);
    let tell = move || {
        let _ = gone.partner.send(&ServerLine::Gone { peer: gone.peer });
    };
    let spawned = thread::Builder::new()
        .name("gone".into())
        .stack_size(64 * 1024)
        .spawn(tell);
    if let Err(e) = spawned {
        log!("cannot tell of a peer that is gone: {e}");
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
