//! The `p2pclient` thread: dials a peer for a call the server set up.
//!
//! It tries the peer's candidate addresses in order, each with a short
//! connect timeout, presents the call's token in `HELLO`, and waits (bounded)
//! for `WELCOME`. If no address works, it asks the registration server to
//! relay the chat ([`open_relay`]) and says `HELLO` through that instead. The
//! outcome, a connected link or the reason every way failed, goes to the
//! main loop as [`Event::Dialed`].

use std::net::{SocketAddr, TcpStream};

use std::thread;
use std::time::{Duration, Instant};

use super::link::Handshaken;
use super::{Event, Events};
use crate::connection::{LineReader, write_line};
use crate::protocol::{CallId, ErrorCode, PeerMessage, Request, ServerLine, Token};

/// How long one address may take to accept the connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the peer may take to answer `HELLO`.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the server may take to join the two halves of a relay (it waits
/// up to 10 s for the peer's half).
const RELAY_TIMEOUT: Duration = Duration::from_secs(12);

/// A call to dial: where, and with what credentials.
pub struct Dial {
    pub call: CallId,
    pub token: Token,
    pub hello: PeerMessage,
    pub addrs: Vec<SocketAddr>,
    /// The registration server, for the relay.
    pub server: SocketAddr,
}

/// A successful dial: the connection and the address that worked (the
/// server's, when relayed).
pub struct Dialed {
    pub conn: Handshaken,
    pub addr: SocketAddr,
}

/// Starts dialing on a thread of its own.
pub fn spawn(dial: Dial, events: Events) {
    let call = dial.call;
    let spawned = thread::Builder::new().name("p2pclient".into()).spawn({
        let events = events.clone();
        move || {
            let result = run(&dial);
            let _ = events.send(Event::Dialed { call, result });
        }
    });
    if let Err(e) = spawned {
        // On the main loop's own thread: never block on its queue.
        let _ = events.try_send(Event::Dialed {
            call,
            result: Err(format!("cannot start dialing: {e}")),
        });
    }
}

/// Direct first, each address in turn, then the relay; the error names what
/// went wrong with each.
fn run(dial: &Dial) -> Result<Dialed, String> {
    let mut failures = Vec::new();
    for &addr in &dial.addrs {
        match connect(addr).and_then(|(stream, reader)| greet(stream, reader, &dial.hello, false)) {
            Ok(conn) => return Ok(Dialed { conn, addr }),
            Err(why) => failures.push(format!("{addr}: {why}")),
        }
    }
    let relayed = open_relay(dial.server, dial.call, dial.token)
        .and_then(|(stream, reader)| greet(stream, reader, &dial.hello, true));
    match relayed {
        Ok(conn) => Ok(Dialed {
            conn,
            addr: dial.server,
        }),
        Err(why) => {
            failures.push(format!("relay: {why}"));
            Err(failures.join("; "))
        }
    }
}

fn connect(addr: SocketAddr) -> Result<(TcpStream, LineReader<TcpStream>), String> {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(ANSWER_TIMEOUT));
    let reader = LineReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    Ok((stream, reader))
}

/// Says `HELLO` and waits for `WELCOME`.
fn greet(
    mut stream: TcpStream,
    mut reader: LineReader<TcpStream>,
    hello: &PeerMessage,
    relayed: bool,
) -> Result<Handshaken, String> {
    write_line(&mut stream, hello).map_err(|e| e.to_string())?;
    let line = reader
        .read_line_by(Some(Instant::now() + ANSWER_TIMEOUT))
        .map_err(|e| format!("no answer ({e})"))?;
    match PeerMessage::parse(&line) {
        Ok(PeerMessage::Welcome { .. }) => Ok(Handshaken {
            stream,
            reader,
            relayed,
        }),
        Ok(PeerMessage::Error { message, .. }) => Err(format!("refused: {message}")),
        _ => Err("not a p2pchat peer".into()),
    }
}

/// Opens one half of a relayed chat: a connection to the registration
/// server that, once the server answers `OK RELAYED`, carries the chat's
/// lines to and from the peer's half.
pub fn open_relay(
    server: SocketAddr,
    call: CallId,
    token: Token,
) -> Result<(TcpStream, LineReader<TcpStream>), String> {
    let (mut stream, mut reader) = connect(server)?;
    write_line(&mut stream, &Request::Relay { call, token }).map_err(|e| e.to_string())?;
    let line = reader
        .read_line_by(Some(Instant::now() + RELAY_TIMEOUT))
        .map_err(|e| format!("no answer from the server ({e})"))?;
    match ServerLine::parse(&line) {
        Ok(ServerLine::Relayed { call: joined }) if joined == call => Ok((stream, reader)),
        Ok(ServerLine::Error {
            code: ErrorCode::NoRelay,
            ..
        }) => Err("the server does not relay chats".into()),
        // A server older than the no-relay code said so only in its text.
        Ok(ServerLine::Error {
            code: ErrorCode::Unreachable,
            message,
        }) if message.contains("does not relay") => Err("the server does not relay chats".into()),
        Ok(ServerLine::Error { message, .. }) => Err(message),
        _ => Err("the server sent something unexpected".into()),
    }
}
