//! The `p2pclient` thread: dials a peer for a call the server set up.
//!
//! It tries the peer's candidate addresses in order, each with a short
//! connect timeout, presents the call's token in `HELLO`, and waits (bounded)
//! for `WELCOME`. The outcome, a connected link or the reason every address
//! failed, goes to the main loop as [`Event::Dialed`].

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::Sender;
use std::thread;
use std::time::{Duration, Instant};

use super::Event;
use super::link::Handshaken;
use crate::connection::{LineReader, write_line};
use crate::protocol::{CallId, PeerMessage};

/// How long one address may take to accept the connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the peer may take to answer `HELLO`.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// A successful dial: the connection and the address that worked.
pub struct Dialed {
    pub conn: Handshaken,
    pub addr: SocketAddr,
}

/// Starts dialing on a thread of its own.
pub fn spawn(call: CallId, addrs: Vec<SocketAddr>, hello: PeerMessage, events: Sender<Event>) {
    let spawned = thread::Builder::new().name("p2pclient".into()).spawn({
        let events = events.clone();
        move || {
            let result = dial(&addrs, &hello);
            let _ = events.send(Event::Dialed { call, result });
        }
    });
    if let Err(e) = spawned {
        let _ = events.send(Event::Dialed {
            call,
            result: Err(format!("cannot start dialing: {e}")),
        });
    }
}

/// Tries each address in turn; the error names what went wrong at each.
fn dial(addrs: &[SocketAddr], hello: &PeerMessage) -> Result<Dialed, String> {
    let mut failures = Vec::new();
    for &addr in addrs {
        match try_addr(addr, hello) {
            Ok(conn) => return Ok(Dialed { conn, addr }),
            Err(why) => failures.push(format!("{addr}: {why}")),
        }
    }
    Err(failures.join("; "))
}

fn try_addr(addr: SocketAddr, hello: &PeerMessage) -> Result<Handshaken, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(ANSWER_TIMEOUT));
    write_line(&mut stream, hello).map_err(|e| e.to_string())?;
    let mut reader = LineReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let line = reader
        .read_line_by(Some(Instant::now() + ANSWER_TIMEOUT))
        .map_err(|e| format!("no answer ({e})"))?;
    match PeerMessage::parse(&line) {
        Ok(PeerMessage::Welcome { .. }) => Ok(Handshaken { stream, reader }),
        Ok(PeerMessage::Error { message, .. }) => Err(format!("refused: {message}")),
        _ => Err("not a p2pchat peer".into()),
    }
}
