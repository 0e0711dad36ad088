//! The `login` part: the chat's connection to the registration server.
//!
//! Two threads share the connection. The writer takes [`Request`]s from the
//! main loop over a channel and sends a `PING` whenever it has been quiet for
//! a heartbeat interval. The reader turns every server line into an
//! [`Event::Server`] (gathering the `USER` rows of a list into one event) and
//! reports the end of the connection once, as [`ServerEvent::Lost`]: when
//! the server closes it, or when nothing (not even the answer to a heartbeat)
//! arrived for three heartbeat intervals. [`reconnect`] then retries, with
//! backoff, until the server is back.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use super::{Event, Events};
use crate::connection::{LineReader, ReadError, write_line};
use crate::protocol::{MAX_LIST, Request, ServerLine, UserEntry};

/// How long connecting to the server may take per address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Numbers the connections to the server, so that a late event from a
/// connection already replaced is recognised and ignored.
pub type ConnId = u64;

/// What the server said, as the main loop sees it.
#[derive(Debug)]
pub enum ServerEvent {
    Line(ServerLine),
    /// A complete `OK USERS` reply with its rows.
    Users(Vec<UserEntry>),
    /// The connection ended; the text says why.
    Lost(String),
}

/// Why the server could not be reached.
#[derive(Debug)]
pub struct LoginError {
    pub server: String,
    pub reason: String,
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot reach the registration server at {} ({}); is it running? \
             Point to it with --server HOST:PORT or P2PCHAT_SERVER",
            self.server, self.reason
        )
    }
}

impl std::error::Error for LoginError {}

/// What the main loop tells the writer thread.
enum Command {
    Send(Request),
    Heartbeat(Duration),
}

/// The main loop's handle on the server connection.
pub struct ServerConn {
    /// Tells this connection's events from those of one it replaced.
    pub id: ConnId,
    commands: Sender<Command>,
    stream: TcpStream,
    /// The server's address that answered; the relay is reached there too.
    pub server_addr: SocketAddr,
    /// The heartbeat interval in milliseconds (0: none yet), shared with
    /// the reader, which gives up after three intervals of silence.
    heartbeat_ms: Arc<AtomicU64>,
    /// Our end of the connection: the address peers on the same network as
    /// the server most likely reach us at.
    pub local_addr: SocketAddr,
}

impl ServerConn {
    /// Queues a request. If the connection is gone the reader has already
    /// reported it, so a failure here needs no second report.
    pub fn send(&self, request: Request) {
        let _ = self.commands.send(Command::Send(request));
    }

    /// Starts sending a `PING` after every `interval` of silence.
    pub fn heartbeat(&self, interval: Duration) {
        let ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        self.heartbeat_ms.store(ms, Ordering::Relaxed);
        let _ = self.commands.send(Command::Heartbeat(interval));
    }
}

impl Drop for ServerConn {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Connects to `server` (HOST:PORT) and starts the reader and writer
/// threads, which report to `events`.
pub fn connect(server: &str, id: ConnId, events: Events) -> Result<ServerConn, LoginError> {
    let fail = |reason: String| LoginError {
        server: server.to_string(),
        reason,
    };
    let addrs: Vec<SocketAddr> = server
        .to_socket_addrs()
        .map_err(|e| fail(format!("cannot resolve: {e}")))?
        .collect();
    let mut last = String::from("no address");
    let mut connected = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(stream) => {
                connected = Some(stream);
                break;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let stream = connected.ok_or_else(|| fail(last))?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(CONNECT_TIMEOUT));
    let local_addr = stream.local_addr().map_err(|e| fail(e.to_string()))?;
    let server_addr = stream.peer_addr().map_err(|e| fail(e.to_string()))?;
    let heartbeat_ms = Arc::new(AtomicU64::new(0));
    let io_fail = |e: io::Error| fail(e.to_string());
    let reader = stream.try_clone().map_err(io_fail)?;
    let writer = stream.try_clone().map_err(io_fail)?;
    let (commands, inbox) = mpsc::channel();
    thread::Builder::new()
        .name("login-writer".into())
        .spawn(move || write_loop(writer, inbox))
        .map_err(io_fail)?;
    let silence = heartbeat_ms.clone();
    thread::Builder::new()
        .name("login-reader".into())
        .spawn(move || read_loop(reader, id, events, silence))
        .map_err(io_fail)?;
    Ok(ServerConn {
        id,
        commands,
        stream,
        server_addr,
        heartbeat_ms,
        local_addr,
    })
}

/// Retries [`connect`] (as connection `id`) with growing pauses, from
/// `pause` doubling to 5 s, until the server answers, then reports
/// [`Event::Reconnected`]. Gives up only when the main loop is gone.
pub fn reconnect(server: String, id: ConnId, mut pause: Duration, events: Events) {
    let _ = thread::Builder::new()
        .name("login-reconnect".into())
        .spawn(move || {
            loop {
                thread::sleep(pause);
                if let Ok(conn) = connect(&server, id, events.clone()) {
                    let _ = events.send(Event::Reconnected(conn));
                    return;
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        });
}

fn write_loop(mut stream: TcpStream, inbox: Receiver<Command>) {
    let mut heartbeat: Option<Duration> = None;
    loop {
        let command = match heartbeat {
            Some(interval) => match inbox.recv_timeout(interval) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => Command::Send(Request::Ping),
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match inbox.recv() {
                Ok(command) => command,
                Err(_) => break,
            },
        };
        match command {
            Command::Heartbeat(interval) => heartbeat = Some(interval),
            Command::Send(request) => {
                if write_line(&mut stream, &request).is_err() {
                    // The reader sees the same failure and reports it.
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    }
    let _ = write_line(&mut stream, &Request::Quit);
}

fn read_loop(stream: TcpStream, conn: ConnId, events: Events, heartbeat_ms: Arc<AtomicU64>) {
    let mut reader = LineReader::new(stream);
    // Nothing for three heartbeats (each answered by a PONG): the server or
    // the path to it is gone.
    let deadline = || {
        let heartbeat = heartbeat_ms.load(Ordering::Relaxed);
        (heartbeat > 0).then(|| Instant::now() + Duration::from_millis(heartbeat) * 3)
    };
    let reason = loop {
        let line = match reader.read_line_by(deadline()) {
            Ok(line) => line,
            Err(ReadError::TimedOut) => break "no answer to heartbeats".to_string(),
            Err(ReadError::Closed) => break "the server closed the connection".to_string(),
            Err(e) => break e.to_string(),
        };
        let event = match ServerLine::parse(&line) {
            Ok(ServerLine::Users { count }) => match read_users(&mut reader, count, deadline()) {
                Ok(users) => ServerEvent::Users(users),
                Err(why) => break why,
            },
            Ok(line) => ServerEvent::Line(line),
            Err(e) => break format!("the server sent something unexpected ({e})"),
        };
        if events.send(Event::Server { conn, event }).is_err() {
            return;
        }
    };
    let event = ServerEvent::Lost(reason);
    let _ = events.send(Event::Server { conn, event });
}

fn read_users(
    reader: &mut LineReader<TcpStream>,
    count: usize,
    deadline: Option<Instant>,
) -> Result<Vec<UserEntry>, String> {
    if count > MAX_LIST {
        return Err(format!("the server announced {count} users, too many"));
    }
    let mut users = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let line = reader.read_line_by(deadline).map_err(|e| e.to_string())?;
        match ServerLine::parse(&line) {
            Ok(ServerLine::User(user)) => users.push(user),
            _ => return Err("the server sent a broken user list".into()),
        }
    }
    Ok(users)
}
