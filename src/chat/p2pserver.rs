//! The `p2pserver` thread: always listening for a peer who wants to chat.
//!
//! Each accepted connection gets a short-lived thread that waits (briefly,
//! bounded) for the caller's `HELLO` line and hands the result to the main
//! loop as [`Event::Hello`]. Whether the token in it is the one the server
//! told us to expect is the main loop's decision; anything that is not even
//! a `HELLO` is answered with an error and closed here, without the user
//! ever hearing of it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::thread;
use std::time::{Duration, Instant};

use super::link::Handshaken;
use super::{Event, Events, p2pclient};
use crate::connection::{LineReader, write_line};
use crate::protocol::{CallId, ErrorCode, PeerMessage, Token};

/// How long a connecting peer has to send its `HELLO`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Most handshakes in flight at once; a flood of strangers beyond this is
/// closed at once rather than given threads.
const MAX_PENDING: usize = 16;

/// A connection that said `HELLO`, waiting for the main loop's verdict.
pub struct Hello {
    pub caller: String,
    pub call: CallId,
    pub token: Token,
    pub conn: Handshaken,
}

impl Hello {
    /// Refuses the connection with a reason the caller's client can show.
    pub fn refuse(mut self, code: ErrorCode, message: &str) {
        let _ = write_line(
            &mut self.conn.stream,
            &PeerMessage::Error {
                code,
                message: message.to_string(),
            },
        );
    }
}

/// Starts the listening thread.
pub fn spawn(listener: TcpListener, events: Events) -> std::io::Result<()> {
    let pending = Arc::new(AtomicUsize::new(0));
    thread::Builder::new()
        .name("p2pserver".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else {
                    // Out of descriptors or an aborted connection: wait a
                    // moment, keep listening.
                    thread::sleep(Duration::from_millis(50));
                    continue;
                };
                if pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING {
                    pending.fetch_sub(1, Ordering::AcqRel);
                    continue;
                }
                let (events, pending) = (events.clone(), pending.clone());
                let spawned = thread::Builder::new()
                    .name("p2p-hello".into())
                    .stack_size(64 * 1024)
                    .spawn(move || {
                        let _ = stream.set_nodelay(true);
                        let reader = stream.try_clone().map(LineReader::new);
                        if let Ok(reader) = reader
                            && let Some(hello) = read_hello(stream, reader, false)
                        {
                            let _ = events.send(Event::Hello(hello));
                        }
                        pending.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    thread::sleep(Duration::from_millis(50));
                }
            }
        })?;
    Ok(())
}

/// Answers the server's `EVENT RELAY`: opens our half of the relay for
/// `call` and waits there for the caller's `HELLO`, which then goes to the
/// main loop like one that came directly.
pub fn join_relay(server: SocketAddr, call: CallId, token: Token, events: Events) {
    let _ = thread::Builder::new()
        .name("relay-join".into())
        .spawn(move || {
            // On failure the caller fails too and hangs up, which the server
            // tells us; nothing to report here.
            if let Ok((stream, reader)) = p2pclient::open_relay(server, call, token)
                && let Some(hello) = read_hello(stream, reader, true)
            {
                let _ = events.send(Event::Hello(hello));
            }
        });
}

/// Reads the first line of an incoming chat connection, which must be
/// `HELLO`; anything else is answered with an error and closed.
fn read_hello(
    stream: TcpStream,
    mut reader: LineReader<TcpStream>,
    relayed: bool,
) -> Option<Hello> {
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
                relayed,
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
