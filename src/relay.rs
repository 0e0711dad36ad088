//! The server's relay: when two peers cannot connect to each other, each
//! opens a connection to the server with `RELAY <call-id> <token>`, and the
//! server copies lines between the two.
//!
//! The caller's connection comes first: the server checks the token, asks
//! the callee (through its registration connection) to open the second, and
//! waits for it in the [`Rendezvous`]. When it comes, each connection's own
//! thread copies the lines it reads to the other connection, under the same
//! line limit as every other input. When either side closes, both do.

use std::collections::HashMap;
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::connection::{LineReader, Outbox, ReadError, SharedStream};
use crate::log;
use crate::protocol::{CallId, ErrorCode, ServerLine, Token};
use crate::registry::{Registry, RelayTicket};

/// How long the caller's relay connection waits for the callee's.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A relayed chat silent this long is over (peers ping every 5 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The second half of a relay, handed to the first.
struct Join {
    /// Where the first half writes what it reads.
    writer: Outbox,
    /// Where the first half answers with its own writer.
    back: Sender<Outbox>,
}

/// Why a relay connection is refused; the reply's code and text are
/// written once, in its `From` impl for `ServerLine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RelayRefusal {
    /// The token opens no call's relay (wrong, expired, or both halves in).
    NoSuchCall,
    /// The callee's registration connection failed while being asked.
    CalleeSilent,
    /// The callee never opened its half within [`JOIN_TIMEOUT`].
    CalleeDidNotJoin,
    /// The callee's half came, but the caller's had given up.
    CallerGone,
}

impl From<RelayRefusal> for ServerLine {
    fn from(why: RelayRefusal) -> ServerLine {
        let (code, message) = match why {
            RelayRefusal::NoSuchCall => (
                ErrorCode::BadToken,
                "no such call, or its relay is already open or expired",
            ),
            RelayRefusal::CalleeSilent => (
                ErrorCode::Unreachable,
                "the peer is not answering the server",
            ),
            RelayRefusal::CalleeDidNotJoin => {
                (ErrorCode::Unreachable, "the peer did not join the relay")
            }
            RelayRefusal::CallerGone => (
                ErrorCode::Unreachable,
                "the caller's relay connection is gone",
            ),
        };
        ServerLine::error(code, message)
    }
}

/// First halves waiting for their second, by call.
#[derive(Default)]
pub struct Rendezvous {
    waiting: Mutex<HashMap<CallId, Sender<Join>>>,
}

impl Rendezvous {
    fn insert(&self, call: CallId, first: Sender<Join>) {
        self.lock().insert(call, first);
    }

    fn take(&self, call: CallId) -> Option<Sender<Join>> {
        self.lock().remove(&call)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CallId, Sender<Join>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serves one relay connection whose first line was `RELAY call token`;
/// returns when the relayed chat is over. `own` writes to this connection.
pub fn serve(
    registry: &Registry<Outbox>,
    rendezvous: &Rendezvous,
    own: &Outbox,
    reader: LineReader<SharedStream>,
    call: CallId,
    token: Token,
) {
    let refuse = |why: RelayRefusal| {
        let _ = own.send(&ServerLine::from(why));
    };
    match registry.claim_relay(call, &token) {
        None => refuse(RelayRefusal::NoSuchCall),
        Some(RelayTicket::First {
            caller,
            callee,
            callee_outbox,
        }) => {
            let (first, joins) = mpsc::channel();
            rendezvous.insert(call, first);
            if callee_outbox
                .send(&ServerLine::RelayRequested { call })
                .is_err()
            {
                rendezvous.take(call);
                return refuse(RelayRefusal::CalleeSilent);
            }
            log!("chat {call}: {caller} cannot reach {callee} directly; relaying");
            let Ok(join) = joins.recv_timeout(JOIN_TIMEOUT) else {
                rendezvous.take(call);
                return refuse(RelayRefusal::CalleeDidNotJoin);
            };
            if own.send(&ServerLine::Relayed { call }).is_err()
                || join.back.send(own.clone()).is_err()
            {
                return join.writer.close();
            }
            copy(reader, own, &join.writer);
            log!("chat {call}: relay closed");
        }
        Some(RelayTicket::Second) => {
            let Some(first) = rendezvous.take(call) else {
                return refuse(RelayRefusal::CallerGone);
            };
            if own.send(&ServerLine::Relayed { call }).is_err() {
                return;
            }
            let (back, answer) = mpsc::channel();
            let joined = first.send(Join {
                writer: own.clone(),
                back,
            });
            match (joined, answer.recv_timeout(JOIN_TIMEOUT)) {
                (Ok(()), Ok(peer)) => copy(reader, own, &peer),
                _ => own.close(),
            }
        }
    }
}

/// Copies lines from `reader` to `to` until either side ends, then closes
/// both connections so the opposite copy ends too.
fn copy(mut reader: LineReader<SharedStream>, own: &Outbox, to: &Outbox) {
    loop {
        match reader.read_line_by(Some(Instant::now() + IDLE_TIMEOUT)) {
            Ok(line) => {
                if to.send(&line).is_err() {
                    break;
                }
            }
            // Peers only send UTF-8; a broken line is dropped, not relayed.
            Err(ReadError::InvalidUtf8) => {}
            Err(_) => break,
        }
    }
    to.close();
    own.close();
}
