//! The `p2pserver` thread: always listening for a peer who wants to chat.
//!
//! Each accepted connection gets a short-lived thread that waits (briefly,
//! bounded) for the caller's `HELLO` line and hands the result to the main
//! loop as [`Event::Hello`]. Whether the token in it is the one the server
//! told us to expect is the core's decision; anything that is not even a
//! `HELLO` is answered with an error and closed here, without the user ever
//! hearing of it.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::thread;
use std::time::{Duration, Instant};

use super::core::Route;
use super::link::Handshaken;
use super::{Event, Events, p2pclient};
use crate::connection::{LineReader, write_line};
use crate::protocol::{CallId, ErrorCode, PeerMessage, Token};

/// How long a connecting peer has to send its `HELLO`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Most handshakes in flight at once; a flood of strangers beyond this is
/// closed at once rather than given threads.
const MAX_PENDING_HANDSHAKES: usize = 16;

/// A connection that said `HELLO`, waiting for the core's verdict.
pub struct Hello {
    pub caller: String,
    pub call: CallId,
    pub token: Token,
    pub conn: Handshaken,
}

/// One of the [`MAX_PENDING_HANDSHAKES`] slots, given back when dropped,
/// however the handshake thread ends (or fails to start).
struct HandshakeSlot(Arc<AtomicUsize>);

impl HandshakeSlot {
    fn take(pending: &Arc<AtomicUsize>) -> Option<HandshakeSlot> {
        let taken = pending.fetch_add(1, Ordering::AcqRel);
        let slot = HandshakeSlot(pending.clone());
        (taken < MAX_PENDING_HANDSHAKES).then_some(slot)
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Starts the listening thread.
pub fn spawn(listener: TcpListener, events: Events) -> std::io::Result<()> {
    thread::Builder::new()
        .name("p2pserver".into())
        .spawn(move || accept_loop(listener, events))?;
    Ok(())
}

fn accept_loop(listener: TcpListener, events: Events) {
    let pending = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            // Out of descriptors or an aborted connection: wait a moment,
            // keep listening.
            thread::sleep(Duration::from_millis(50));
            continue;
        };
        let Some(slot) = HandshakeSlot::take(&pending) else {
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

fn await_hello(stream: TcpStream, events: Events, _slot: HandshakeSlot) {
    let _ = stream.set_nodelay(true);
    if let Ok(reader) = stream.try_clone().map(LineReader::new)
        && let Some(hello) = read_hello(stream, reader, Route::Direct)
    {
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

/// Reads the first line of an incoming chat connection, which must be
/// `HELLO`; anything else is answered with an error and closed.
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
            call,
            token,
            conn: Handshaken {
                stream,
                reader,
                route,
            },
        }),
        Ok(_) => {
            refuse(&stream, "expected HELLO NAME CALL-ID TOKEN first");
            None
        }
        Err(e) => {
            refuse(&stream, &e.to_string());
            None
        }
    }
}
