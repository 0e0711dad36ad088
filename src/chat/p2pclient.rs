//! The `p2pclient` thread: dials a peer for a call the server set up.
//!
//! It tries the peer's candidate addresses in order, each with a short
//! connect timeout, says `HELLO` (and `FEATURES`) with the call's token, and
//! waits (bounded) for `WELCOME`. With values of our own (`proof`), a direct
//! connection first says `KNOCK` and goes on only if the answer is the
//! value the server told us to expect: whoever else answers at an address
//! is shown nothing. If no address works, it asks the
//! registration server to relay the chat ([`open_relay`]) and greets the
//! peer through that instead. The outcome, a handshaken connection or a
//! [`DialError`] naming what went wrong with each way, goes to the main loop
//! as [`Event::Dialed`].

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use std::thread;
use std::time::{Duration, Instant};

use super::core::{DialError, Pace, Route, Way, WayError};
use super::link::Handshaken;
use super::{Event, Events};
use crate::connection::{LineReader, write_line};
use crate::protocol::{CallId, ErrorCode, Keys, PeerMessage, Request, ServerLine, Token};

/// How long one of the peer's addresses may take to accept the connection.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the peer may take to answer `HELLO`.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the server may take to join the two halves of a relay (it waits
/// up to 10 s for the peer's half).
const RELAY_TIMEOUT: Duration = Duration::from_secs(12);

/// A call to dial: where, and what to say first.
pub struct Dial {
    pub call: CallId,
    /// Ours for the call: the value to expect from a knocked peer, and
    /// the relay's.
    pub keys: Keys,
    /// Our name, for `KNOCK`.
    pub caller: String,
    /// `HELLO`, then `FEATURES` (or `REHELLO`).
    pub hello: Vec<PeerMessage>,
    pub addrs: Vec<SocketAddr>,
    /// Whether the relay is the last way to try.
    pub relay: bool,
    /// Whether the ways race or go one at a time.
    pub pace: Pace,
    /// The registration server, for the relay.
    pub server: SocketAddr,
}

/// A successful dial: the connection and the address that worked (the
/// server's, when relayed).
pub struct Dialed {
    pub conn: Handshaken,
    pub addr: SocketAddr,
    /// The peer's answer: `WELCOME`, or `REWELCOME`.
    pub answer: PeerMessage,
    /// Addresses where someone else answered our `KNOCK`.
    pub strangers: Vec<SocketAddr>,
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
            result: Err(DialError::Start(e.to_string())),
        });
    }
}

/// How long each attempt has before the next one starts alongside it
/// (RFC 8305's "connection attempt delay").
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// The attempts of one dial racing each other, Happy Eyeballs style: each
/// registers its socket here, so the winner can close the others.
struct Race {
    decided: AtomicBool,
    sockets: Mutex<Vec<(usize, TcpStream)>>,
}

impl Race {
    fn register(&self, attempt: usize, stream: &TcpStream) {
        if let Ok(clone) = stream.try_clone() {
            self.sockets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((attempt, clone));
        }
        // Registered after the race was decided: a loser, closed at once.
        if self.decided.load(Ordering::Acquire) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// `winner` won: every other attempt's socket is closed, so at most one
    /// link is ever live for the call.
    fn decide(&self, winner: usize) {
        self.decided.store(true, Ordering::Release);
        let sockets = self.sockets.lock().unwrap_or_else(PoisonError::into_inner);
        for (attempt, stream) in sockets.iter() {
            if *attempt != winner {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

/// The candidates, direct first in the server's order, then the relay,
/// raced: the first starts at once, each next one [`ATTEMPT_DELAY`] after
/// the one before (or as soon as one fails), and the first to finish its
/// handshake wins. Every direct candidate but the first, and the relay,
/// start together after one delay, so a blackholed direct path costs a
/// quarter of a second, not a connect timeout per address.
fn run(dial: &Dial) -> Result<Dialed, DialError> {
    let mut ways: Vec<Way> = dial.addrs.iter().map(|&a| Way::Direct(a)).collect();
    if dial.relay {
        ways.push(Way::Relay);
    }
    let race = Arc::new(Race {
        decided: AtomicBool::new(false),
        sockets: Mutex::new(Vec::new()),
    });
    let (results, inbox) = mpsc::channel();
    let mut failures: Vec<Option<WayError>> = vec![None; ways.len()];
    let (mut started, mut running) = (0, 0);
    let mut next_start = Instant::now();
    loop {
        let now = Instant::now();
        while started < ways.len() && (now >= next_start || running == 0) {
            let (attempt, way) = (started, ways[started].clone());
            started += 1;
            let (race, results, hello) = (race.clone(), results.clone(), dial.hello.clone());
            let knock = dial.keys.knocks().then(|| Knock {
                message: PeerMessage::Knock {
                    caller: dial.caller.clone(),
                    call: dial.call,
                },
                keys: dial.keys,
            });
            let (server, call, token) = (dial.server, dial.call, dial.keys.relay());
            let spawned = thread::Builder::new()
                .name("p2pclient-try".into())
                .spawn(move || {
                    let greeting = Greeting {
                        knock,
                        hello: &hello,
                    };
                    let result = try_way(&way, server, call, token, greeting, &race, attempt);
                    let _ = results.send((attempt, result));
                });
            match spawned {
                Ok(_) => running += 1,
                Err(e) => failures[attempt] = Some(WayError::Connect(e.to_string())),
            }
            // Only the first attempt runs alone for a while; one at a
            // time, the next starts when this one fails.
            if attempt == 0 || dial.pace == Pace::OneAtATime {
                next_start = now
                    + match dial.pace {
                        Pace::Race => ATTEMPT_DELAY,
                        Pace::OneAtATime => RELAY_TIMEOUT * 10,
                    };
            }
        }
        if running == 0 && started == ways.len() {
            let failures = ways
                .into_iter()
                .zip(failures)
                .map(|(way, why)| (way, why.unwrap_or(WayError::RelayUnexpected)))
                .collect();
            return Err(DialError::Unreachable(failures));
        }
        let wait = if started < ways.len() {
            next_start.saturating_duration_since(Instant::now())
        } else {
            // Every attempt has its own bound; this one only guards the loop.
            RELAY_TIMEOUT + ANSWER_TIMEOUT
        };
        match inbox.recv_timeout(wait) {
            Ok((attempt, Ok((conn, answer)))) => {
                race.decide(attempt);
                let addr = match ways[attempt] {
                    Way::Direct(addr) => addr,
                    Way::Relay => dial.server,
                };
                let strangers = ways
                    .iter()
                    .zip(&failures)
                    .filter_map(|(way, why)| match (way, why) {
                        (Way::Direct(addr), Some(WayError::Stranger)) => Some(*addr),
                        _ => None,
                    })
                    .collect();
                return Ok(Dialed {
                    conn,
                    addr,
                    answer,
                    strangers,
                });
            }
            Ok((attempt, Err(why))) => {
                failures[attempt] = Some(why);
                running -= 1;
                // A failure frees the next attempt to start at once.
                next_start = Instant::now();
            }
            Err(mpsc::RecvTimeoutError::Timeout) if started < ways.len() => {}
            Err(_) => {
                // No attempt answered within every bound: give up on all.
                race.decide(usize::MAX);
                for (attempt, why) in failures.iter_mut().enumerate() {
                    if why.is_none() && attempt < started {
                        *why = Some(WayError::NoAnswer("timed out".into()));
                    }
                }
                running = 0;
                started = ways.len();
            }
        }
    }
}

/// `KNOCK`, said first on a direct connection, and the keys that say
/// which `PROOF` is the peer's.
struct Knock {
    message: PeerMessage,
    keys: Keys,
}

/// What a way says first: the knock (direct ways only), then `hello`.
struct Greeting<'a> {
    knock: Option<Knock>,
    hello: &'a [PeerMessage],
}

/// One attempt: a direct connection to `way`'s address, or the relay
/// (opened with `token`); then the handshake.
fn try_way(
    way: &Way,
    server: SocketAddr,
    call: CallId,
    token: Token,
    greeting: Greeting,
    race: &Race,
    attempt: usize,
) -> Result<(Handshaken, PeerMessage), WayError> {
    let (stream, reader, route) = match way {
        Way::Direct(addr) => {
            let (mut stream, mut reader) = connect(*addr, PEER_CONNECT_TIMEOUT)?;
            race.register(attempt, &stream);
            if let Some(knock) = &greeting.knock {
                knock_first(&mut stream, &mut reader, knock)?;
            }
            (stream, reader, Route::Direct)
        }
        // The server joins only our half and the peer's: nothing to prove.
        Way::Relay => {
            let (stream, reader) = open_relay_raced(server, call, token, race, attempt)?;
            (stream, reader, Route::Relayed)
        }
    };
    greet(stream, reader, greeting.hello, route)
}

/// Says `KNOCK` and reads the answer: the peer's `PROOF`, which must be
/// the value the server told us to expect, before we show anything.
fn knock_first(
    stream: &mut TcpStream,
    reader: &mut LineReader<TcpStream>,
    knock: &Knock,
) -> Result<(), WayError> {
    write_line(stream, &knock.message).map_err(|e| WayError::Connect(e.to_string()))?;
    let line = reader
        .read_line_by(Some(Instant::now() + ANSWER_TIMEOUT))
        .map_err(|e| WayError::NoAnswer(e.to_string()))?;
    match PeerMessage::parse(&line) {
        Ok(PeerMessage::Proof(value)) if knock.keys.accepts(&value) => Ok(()),
        // A peer that knows nothing of the call, or another value: not
        // the one the server paired us with.
        Ok(PeerMessage::Proof(_)) => Err(WayError::Stranger),
        Ok(PeerMessage::Error { message, .. }) => Err(WayError::Refused(message)),
        _ => Err(WayError::NotAPeer),
    }
}

fn connect(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(TcpStream, LineReader<TcpStream>), WayError> {
    let fail = |e: std::io::Error| WayError::Connect(e.to_string());
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(fail)?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(ANSWER_TIMEOUT));
    let reader = LineReader::new(stream.try_clone().map_err(fail)?);
    Ok((stream, reader))
}

/// Says `HELLO` (or `REHELLO`) and waits for `WELCOME` (or `REWELCOME`),
/// which it returns with the connection.
fn greet(
    mut stream: TcpStream,
    mut reader: LineReader<TcpStream>,
    hello: &[PeerMessage],
    route: Route,
) -> Result<(Handshaken, PeerMessage), WayError> {
    let text: String = hello.iter().map(|m| format!("{m}\n")).collect();
    std::io::Write::write_all(&mut stream, text.as_bytes())
        .map_err(|e| WayError::Connect(e.to_string()))?;
    let line = reader
        .read_line_by(Some(Instant::now() + ANSWER_TIMEOUT))
        .map_err(|e| WayError::NoAnswer(e.to_string()))?;
    match PeerMessage::parse(&line) {
        Ok(answer @ (PeerMessage::Welcome { .. } | PeerMessage::Rewelcome { .. })) => Ok((
            Handshaken {
                stream,
                reader,
                route,
            },
            answer,
        )),
        Ok(PeerMessage::Error { message, .. }) => Err(WayError::Refused(message)),
        _ => Err(WayError::NotAPeer),
    }
}

/// Opens one half of a relayed chat: a connection to the registration
/// server that, once the server answers `OK RELAYED`, carries the chat's
/// lines to and from the peer's half.
pub fn open_relay(
    server: SocketAddr,
    call: CallId,
    token: Token,
) -> Result<(TcpStream, LineReader<TcpStream>), WayError> {
    let (stream, reader) = connect(server, PEER_CONNECT_TIMEOUT)?;
    join_relay(stream, reader, call, token)
}

/// [`open_relay`] as one attempt of a race: its socket is registered
/// before the wait for the peer, so a winner elsewhere can end the wait.
fn open_relay_raced(
    server: SocketAddr,
    call: CallId,
    token: Token,
    race: &Race,
    attempt: usize,
) -> Result<(TcpStream, LineReader<TcpStream>), WayError> {
    let (stream, reader) = connect(server, PEER_CONNECT_TIMEOUT)?;
    race.register(attempt, &stream);
    join_relay(stream, reader, call, token)
}

fn join_relay(
    mut stream: TcpStream,
    mut reader: LineReader<TcpStream>,
    call: CallId,
    token: Token,
) -> Result<(TcpStream, LineReader<TcpStream>), WayError> {
    write_line(&mut stream, &Request::Relay { call, token })
        .map_err(|e| WayError::Connect(e.to_string()))?;
    let line = reader
        .read_line_by(Some(Instant::now() + RELAY_TIMEOUT))
        .map_err(|e| WayError::NoAnswer(format!("from the server: {e}")))?;
    match ServerLine::parse(&line) {
        Ok(ServerLine::Relayed { call: joined }) if joined == call => Ok((stream, reader)),
        Ok(ServerLine::Error {
            code: ErrorCode::NoRelay,
            ..
        }) => Err(WayError::NoRelay),
        // A server from before `no-relay` said so in words only.
        Ok(ServerLine::Error {
            code: ErrorCode::Unreachable,
            message,
        }) if message.contains("does not relay") => Err(WayError::NoRelay),
        Ok(ServerLine::Error { message, .. }) => Err(WayError::RelayRefused(message)),
        _ => Err(WayError::RelayUnexpected),
    }
}
