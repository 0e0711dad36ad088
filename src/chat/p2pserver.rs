//! The `p2pserver` thread: always listening for a peer who wants to chat.
//!
//! Each accepted connection gets a short-lived thread that waits (briefly,
//! bounded) for the caller's `HELLO` line and hands the result to the main
//! loop as [`Event::Hello`]. Whether the token in it is the one the server
//! told us to expect is the main loop's decision; anything that is not even
//! a `HELLO` is answered with an error and closed here, without the user
//! ever hearing of it.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::thread;
use std::time::{Duration, Instant};

use super::Event;
use super::link::Handshaken;
use crate::connection::{LineReader, write_line};
use crate::protocol::{ErrorCode, PeerMessage};

/// How long a connecting peer has to send its `HELLO`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Most handshakes in flight at once; a flood of strangers beyond this is
/// closed at once rather than given threads.
const MAX_PENDING: usize = 16;

/// A connection that said `HELLO`, waiting for the main loop's verdict.
pub struct Hello {
    pub caller: String,
    pub call: crate::protocol::CallId,
    pub token: crate::protocol::Token,
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
pub fn spawn(listener: TcpListener, events: Sender<Event>) -> std::io::Result<()> {
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
                        if let Some(hello) = read_hello(stream) {
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

fn read_hello(stream: TcpStream) -> Option<Hello> {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(HELLO_TIMEOUT));
    let mut reader = LineReader::new(stream.try_clone().ok()?);
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
            conn: Handshaken { stream, reader },
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
