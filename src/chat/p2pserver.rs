//! The `p2pserver` thread: always listening for a peer who wants to chat.
//!
//! Each accepted connection gets a short-lived thread that waits (briefly,
//! bounded) for the caller's `HELLO` line and hands the result to the main
//! loop as [`Event::Hello`]. Whether the token in it is the one the server
//! told us to expect is the core's decision; anything that is not even a
//! `HELLO` is answered with an error and closed here, without the user ever
//! hearing of it.

use std::collections::VecDeque;
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};

use std::thread;
use std::time::{Duration, Instant};

use super::core::Route;
use super::link::Handshaken;
use super::{Event, Events, p2pclient};
use crate::connection::{LineReader, write_line};
use crate::protocol::{CallId, ErrorCode, PeerMessage, ProtocolError, Token};

/// How long a connecting peer has to send its `HELLO`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Most handshakes in flight at once, and from one address: past either,
/// the oldest (from that address, or at all) is closed to make room, so
/// strangers holding connections open cannot keep a real caller out — the
/// caller's connection is always the newest, and says `HELLO` at once.
const MAX_HANDSHAKES: usize = 64;
const MAX_HANDSHAKES_PER_ADDRESS: usize = 4;

/// A connection that said `HELLO` (or `REHELLO`), waiting for the core's
/// verdict.
pub struct Hello {
    pub caller: String,
    pub greeting: Greeting,
    pub conn: Handshaken,
}

/// What a connecting peer asked for.
pub enum Greeting {
    /// A new chat, for the call the server announced (`HELLO`), or a
    /// `KNOCK` for it (`token` is `None`): show our value first ([`prove`]).
    Call { call: CallId, token: Option<Token> },
    /// Bringing back the chat whose link broke.
    Rejoin { key: Token, received: u64 },
    /// `FILE-KNOCK`: a data connection for transfer `id` (no caller name).
    FileKnock { id: crate::protocol::FileId },
}

/// The handshakes in flight: who from, and a handle to close each. The
/// listener keeps one set; a transfer's data connections another
/// ([`super::transfers`]), for the knocks it answers.
#[derive(Default)]
pub(super) struct Handshakes {
    next: u64,
    open: VecDeque<(u64, IpAddr, TcpStream)>,
}

impl Handshakes {
    /// Makes room for one more from `from`, closing the oldest where the
    /// bounds say so, and registers `stream` under a new number.
    fn admit(&mut self, from: IpAddr, stream: &TcpStream) -> Option<u64> {
        let from_here = self.open.iter().filter(|(_, ip, _)| *ip == from).count();
        if from_here >= MAX_HANDSHAKES_PER_ADDRESS
            && let Some(i) = self.open.iter().position(|(_, ip, _)| *ip == from)
        {
            self.evict(i);
        }
        if self.open.len() >= MAX_HANDSHAKES {
            self.evict(0);
        }
        let handle = stream.try_clone().ok()?;
        self.next += 1;
        self.open.push_back((self.next, from, handle));
        Some(self.next)
    }

    fn evict(&mut self, i: usize) {
        if let Some((_, _, stream)) = self.open.remove(i) {
            // Its thread's read fails at once, and the thread ends.
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn done(&mut self, id: u64) {
        self.open.retain(|(open, _, _)| *open != id);
    }
}

/// One handshake's place in [`Handshakes`], given back when dropped,
/// however the handshake thread ends (or fails to start).
pub(super) struct HandshakeSlot {
    id: u64,
    handshakes: Arc<Mutex<Handshakes>>,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        lock(&self.handshakes).done(self.id);
    }
}

fn lock(handshakes: &Mutex<Handshakes>) -> std::sync::MutexGuard<'_, Handshakes> {
    handshakes.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A place in `handshakes` for `stream`, from `from`: the oldest from
/// that address, or at all, is closed to make room.
pub(super) fn slot(
    handshakes: &Arc<Mutex<Handshakes>>,
    from: IpAddr,
    stream: &TcpStream,
) -> Option<HandshakeSlot> {
    // v4-mapped v6 addresses count as the v4 address they are.
    let from = match from {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let id = lock(handshakes).admit(from, stream)?;
    Some(HandshakeSlot {
        id,
        handshakes: handshakes.clone(),
    })
}

/// Starts the listening thread.
pub fn spawn(listener: TcpListener, events: Events) -> std::io::Result<()> {
    thread::Builder::new()
        .name("p2pserver".into())
        .spawn(move || accept_loop(listener, events))?;
    Ok(())
}

fn accept_loop(listener: TcpListener, events: Events) {
    let handshakes = Arc::new(Mutex::new(Handshakes::default()));
    loop {
        let (stream, from) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of descriptors or an aborted connection: wait a
                // moment, keep listening.
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let Some(slot) = slot(&handshakes, from.ip(), &stream) else {
            continue;
        };
        let events = events.clone();
        let spawned = thread::Builder::new()
            .name("p2p-hello".into())
            .stack_size(64 * 1024)
            .spawn(move || await_hello(stream, events, slot));
        if spawned.is_err() {
            // The closure, and the slot in it, were dropped.
            thread::sleep(Duration::from_millis(50));
        }
    }
}

fn await_hello(stream: TcpStream, events: Events, slot: HandshakeSlot) {
    let _ = stream.set_nodelay(true);
    let hello = stream
        .try_clone()
        .ok()
        .map(LineReader::new)
        .and_then(|reader| read_hello(stream, reader, Route::Direct));
    // The handshake is over: the slot is free before the core decides.
    drop(slot);
    if let Some(hello) = hello {
        let _ = events.send(Event::Hello(hello));
    }
}

/// Answers the server's `EVENT RELAY`: opens our half of the relay for
/// `call` and waits there for the caller's `HELLO`, which then goes to the
/// main loop like one that came directly.
pub fn join_relay(server: std::net::SocketAddr, call: CallId, token: Token, events: Events) {
    let _ = thread::Builder::new()
        .name("relay-join".into())
        .spawn(move || {
            // On failure the caller fails too and hangs up, which the server
            // tells us; nothing to report here.
            if let Ok((stream, reader)) = p2pclient::open_relay(server, call, token)
                && let Some(hello) = read_hello(stream, reader, Route::Relayed)
            {
                let _ = events.send(Event::Hello(hello));
            }
        });
}

/// Answers a `KNOCK` the core let through: shows our value (`PROOF`), then
/// waits, on a thread of its own, for the caller's `HELLO` or `REHELLO`,
/// which goes to the main loop like any other greeting.
pub fn prove(conn: Handshaken, value: Token, events: Events) {
    let _ = thread::Builder::new()
        .name("p2p-proof".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let Handshaken {
                mut stream,
                reader,
                route,
            } = conn;
            if write_line(&mut stream, &PeerMessage::Proof(value)).is_err() {
                return;
            }
            match read_hello(stream, reader, route) {
                // One knock per connection.
                Some(Hello {
                    greeting: Greeting::Call { token: None, .. } | Greeting::FileKnock { .. },
                    ..
                })
                | None => {}
                Some(hello) => {
                    let _ = events.send(Event::Hello(hello));
                }
            }
        });
}

/// Reads the first line of an incoming chat connection, which must be
/// `HELLO`, `REHELLO` or `KNOCK`; anything else is answered with an error
/// and closed.
fn read_hello(stream: TcpStream, mut reader: LineReader<TcpStream>, route: Route) -> Option<Hello> {
    let _ = stream.set_write_timeout(Some(HELLO_TIMEOUT));
    let refuse = |mut stream: &TcpStream, message: &str| {
        let _ = write_line(
            &mut stream,
            &PeerMessage::Error {
                code: ErrorCode::BadRequest,
                message: message.to_string(),
            },
        );
    };
    let line = match reader.read_line_by(Some(Instant::now() + HELLO_TIMEOUT)) {
        Ok(line) => line,
        Err(e) => {
            refuse(&stream, &format!("expected HELLO NAME CALL-ID TOKEN: {e}"));
            return None;
        }
    };
    match PeerMessage::parse(&line) {
        Ok(PeerMessage::Hello {
            caller,
            call,
            token,
        }) => Some(Hello {
            caller,
            greeting: Greeting::Call {
                call,
                token: Some(token),
            },
            conn: Handshaken {
                stream,
                reader,
                route,
            },
        }),
        Ok(PeerMessage::FileKnock { id }) => Some(Hello {
            caller: String::new(),
            greeting: Greeting::FileKnock { id },
            conn: Handshaken {
                stream,
                reader,
                route,
            },
        }),
        Ok(PeerMessage::Knock { caller, call }) => Some(Hello {
            caller,
            greeting: Greeting::Call { call, token: None },
            conn: Handshaken {
                stream,
                reader,
                route,
            },
        }),
        Ok(PeerMessage::Rehello {
            caller,
            key,
            received,
        }) => Some(Hello {
            caller,
            greeting: Greeting::Rejoin { key, received },
            conn: Handshaken {
                stream,
                reader,
                route,
            },
        }),
        // The server's list of its verbs means nothing on a chat's port.
        Ok(_) | Err(ProtocolError::UnknownCommand(_) | ProtocolError::Empty) => {
            refuse(
                &stream,
                "expected KNOCK NAME CALL-ID, HELLO or REHELLO first",
            );
            None
        }
        Err(e) => {
            refuse(&stream, &e.to_string());
            None
        }
    }
}
