//! The `login` part: the chat's connection to the registration server.
//!
//! Two threads share the connection, each with one job. The writer takes
//! [`Request`]s from a bounded queue and writes them; the core decides what
//! to send and when (heartbeats included), so the main loop never writes to
//! the socket itself. The reader turns every server line into an
//! [`Event::Server`] (gathering the `USER` rows of a list into one event) and
//! reports the end of the connection once, as [`ServerEvent::Lost`].
//! [`reconnect`] retries, with backoff, until the server is back.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;
use std::time::Duration;

use super::core::{Retry, ServerLoss};
use super::{Event, Events};
use crate::connection::{LineReader, ReadError, write_line};
use crate::protocol::{MAX_LIST, Request, ServerLine, UserEntry};

/// How long connecting to the server may take per address.
const SERVER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one write to the server may block before the connection counts
/// as dead.
const SERVER_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests queued for the writer at most; a server that lets this many
/// pile up is not reading, and is treated as lost.
const SERVER_QUEUE: usize = 256;

/// Numbers the connections to the server, so that a late event from a
/// connection already replaced is recognised and ignored.
pub type ServerConnId = u64;

/// What the server said, as the main loop sees it.
#[derive(Debug)]
pub enum ServerEvent {
    Line(ServerLine),
    /// A complete `OK USERS` reply with its rows.
    Users(Vec<UserEntry>),
    /// The connection ended.
    Lost(ServerLoss),
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

/// The main loop's handle on the server connection. Dropping it ends the
/// connection: the writer sends what is queued, then both threads stop.
pub struct ServerConn {
    /// Tells this connection's events from those of one it replaced.
    pub id: ServerConnId,
    requests: SyncSender<Request>,
    stream: TcpStream,
    /// The server's address that answered; the relay is reached there too.
    pub server_addr: SocketAddr,
    /// Our end of the connection: the address peers on the same network as
    /// the server most likely reach us at.
    pub local_addr: SocketAddr,
    /// Disconnects when the writer thread is done.
    written: Receiver<()>,
}

/// The reading half of a new connection, started once the main loop holds
/// the [`ServerConn`], so that no event of the connection can reach the main
/// loop before the connection itself.
pub struct Reader {
    id: ServerConnId,
    stream: TcpStream,
    events: Events,
}

impl Reader {
    pub fn start(self) -> io::Result<()> {
        let Reader { id, stream, events } = self;
        thread::Builder::new()
            .name("login-reader".into())
            .spawn(move || read_loop(stream, id, events))?;
        Ok(())
    }
}

impl ServerConn {
    /// Queues a request; never blocks. An error means the server is not
    /// taking requests (or the connection is gone, which the reader
    /// reports).
    pub fn send(&self, request: Request) -> Result<(), ServerLoss> {
        match self.requests.try_send(request) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(ServerLoss::StoppedReading),
            Err(TrySendError::Disconnected(_)) => Err(ServerLoss::Closed),
        }
    }
}

impl ServerConn {
    /// Ends the connection once the queued requests (a last `QUIT`) are
    /// written; the receiver disconnects then.
    pub fn close(mut self) -> Receiver<()> {
        let (_, placeholder) = mpsc::sync_channel(0);
        std::mem::replace(&mut self.written, placeholder)
    }
}

impl Drop for ServerConn {
    fn drop(&mut self) {
        // The reader stops at once; the writer sends what is queued (QUIT,
        // when leaving) and then closes.
        let _ = self.stream.shutdown(Shutdown::Read);
    }
}

/// Connects to `server` (HOST:PORT) and starts the writer thread; the
/// reader is started by [`Reader::start`].
pub fn connect(
    server: &str,
    id: ServerConnId,
    events: Events,
) -> Result<(ServerConn, Reader), LoginError> {
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
        match TcpStream::connect_timeout(addr, SERVER_CONNECT_TIMEOUT) {
            Ok(stream) => {
                connected = Some(stream);
                break;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let stream = connected.ok_or_else(|| fail(last))?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(SERVER_WRITE_TIMEOUT));
    let local_addr = stream.local_addr().map_err(|e| fail(e.to_string()))?;
    let server_addr = stream.peer_addr().map_err(|e| fail(e.to_string()))?;
    let io_fail = |e: io::Error| fail(e.to_string());
    let reader = stream.try_clone().map_err(io_fail)?;
    let writer = stream.try_clone().map_err(io_fail)?;
    let (requests, inbox) = mpsc::sync_channel(SERVER_QUEUE);
    let (done, written) = mpsc::sync_channel::<()>(0);
    thread::Builder::new()
        .name("login-writer".into())
        .spawn(move || {
            write_loop(writer, inbox);
            drop(done);
        })
        .map_err(io_fail)?;
    let conn = ServerConn {
        id,
        requests,
        stream,
        server_addr,
        local_addr,
        written,
    };
    let reader = Reader {
        id,
        stream: reader,
        events,
    };
    Ok((conn, reader))
}

/// Tries [`connect`] (as connection `id`) after `pause`, and reports
/// [`Event::Reconnected`]. With [`Retry::UntilBack`] it tries again with
/// growing pauses (doubling to 5 s) until the server answers, giving up only
/// when the main loop is gone; with [`Retry::Once`] a failure is reported
/// as the new connection's [`ServerEvent::Lost`].
pub fn reconnect(
    server: String,
    id: ServerConnId,
    mut pause: Duration,
    retry: Retry,
    events: Events,
) -> io::Result<()> {
    thread::Builder::new()
        .name("login-reconnect".into())
        .spawn(move || {
            loop {
                thread::sleep(pause);
                match connect(&server, id, events.clone()) {
                    Ok((conn, reader)) => {
                        let _ = events.send(Event::Reconnected(conn, reader));
                        return;
                    }
                    Err(e) if retry == Retry::Once => {
                        let event = ServerEvent::Lost(ServerLoss::Io(e.reason));
                        let _ = events.send(Event::Server { conn: id, event });
                        return;
                    }
                    Err(_) => pause = (pause * 2).min(Duration::from_secs(5)),
                }
            }
        })?;
    Ok(())
}

fn write_loop(mut stream: TcpStream, inbox: Receiver<Request>) {
    for request in inbox {
        if write_line(&mut stream, &request).is_err() {
            // The reader sees the same failure and reports it.
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

fn read_loop(stream: TcpStream, conn: ServerConnId, events: Events) {
    let mut reader = LineReader::new(stream);
    let mut first = true;
    let loss = loop {
        // No deadline here: the core notices a silent server by its
        // heartbeats and drops the connection, which ends this read.
        let line = match reader.read_line_by(None) {
            Ok(line) => line,
            Err(ReadError::Closed) => break ServerLoss::Closed,
            Err(e) => break ServerLoss::Io(e.to_string()),
        };
        let event = match ServerLine::parse(&line) {
            Ok(ServerLine::Users { count }) => match read_users(&mut reader, count) {
                Ok(users) => ServerEvent::Users(users),
                Err(why) => break ServerLoss::Unexpected(why),
            },
            Ok(line) => ServerEvent::Line(line),
            // A first line none of ours: some other server answered (a web
            // server's `HTTP/1.1 400`, an SSH banner).
            Err(_) if first => break ServerLoss::NotAServer(first_words(&line)),
            Err(e) => break ServerLoss::Unexpected(e.to_string()),
        };
        first = false;
        if events.send(Event::Server { conn, event }).is_err() {
            return;
        }
    };
    let event = ServerEvent::Lost(loss);
    let _ = events.send(Event::Server { conn, event });
}

/// The start of a line some other server sent: its first two words, at
/// most 32 characters, with `…` where more was left out. Enough to tell a
/// web server (`HTTP/1.1 400…`) from an SSH one; the rest is noise.
fn first_words(line: &str) -> String {
    const MOST: usize = 32;
    let words: Vec<&str> = line.split_whitespace().take(2).collect();
    let mut start: String = words.join(" ").chars().take(MOST).collect();
    if start.len() < line.trim().len() {
        start.push('…');
    }
    start
}

fn read_users(reader: &mut LineReader<TcpStream>, count: usize) -> Result<Vec<UserEntry>, String> {
    if count > MAX_LIST {
        return Err(format!("it announced {count} users, too many"));
    }
    let mut users = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let line = reader.read_line_by(None).map_err(|e| e.to_string())?;
        match ServerLine::parse(&line) {
            Ok(ServerLine::User(user)) => users.push(user),
            _ => return Err("a broken user list".into()),
        }
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::first_words;

    #[test]
    fn another_servers_answer_is_told_by_its_first_two_words() {
        assert_eq!(first_words("HTTP/1.1 400 Bad Request"), "HTTP/1.1 400…");
        assert_eq!(
            first_words("SSH-2.0-OpenSSH_9.2p1"),
            "SSH-2.0-OpenSSH_9.2p1"
        );
        assert_eq!(first_words("  <html>  "), "<html>");
        assert_eq!(first_words(&"x".repeat(40)), format!("{}…", "x".repeat(32)));
        assert_eq!(first_words(""), "");
    }
}
