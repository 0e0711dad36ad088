//! One chat connection to a peer, direct or relayed, once its handshake is
//! done.
//!
//! A [`Link`] is the writing half, owned by the main loop; its reader thread
//! turns the lines the peer sends into [`Event::Peer`]s, batching those that
//! arrive together, and reports the end of the connection once. Dropping the link shuts the socket down, which
//! also ends the reader thread.

use std::io::{self, BufWriter, Write};
use std::net::{Shutdown, TcpStream};

use std::thread;
use std::time::{Duration, Instant};

use super::{Event, Events};
use crate::connection::{LineReader, ReadError};
use crate::protocol::PeerMessage;

/// Distinguishes links so that a late event from a closed link is ignored.
pub type LinkId = u64;

/// Most lines handed to the main loop in one event.
const MAX_BATCH: usize = 1024;

/// How long a write to a peer may block before the peer counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A quiet link sends `PING` this often…
const PING_EVERY: Duration = Duration::from_secs(5);

/// …so a link silent for this long has lost its peer (stopped, unplugged),
/// even when the registration server cannot tell us.
const SILENCE_LIMIT: Duration = Duration::from_secs(20);

/// A connection whose handshake succeeded, not yet attached to the main
/// loop: the socket plus any lines already buffered behind the handshake.
pub struct Handshaken {
    pub stream: TcpStream,
    pub reader: LineReader<TcpStream>,
    /// Whether the bytes go through the registration server's relay.
    pub relayed: bool,
}

pub struct Link {
    pub id: LinkId,
    pub relayed: bool,
    /// Buffered: the main loop flushes once per batch of lines.
    stream: BufWriter<TcpStream>,
    last_sent: Instant,
    /// PINGs sent and PONGs received: PONGs come back in order, so the
    /// n-th PONG answers the n-th PING.
    pings: u64,
    pongs: u64,
}

impl Link {
    /// Attaches a handshaken connection: starts its reader thread.
    pub fn start(id: LinkId, conn: Handshaken, events: Events) -> io::Result<Link> {
        let Handshaken {
            stream,
            reader,
            relayed,
        } = conn;
        // Big reads: a burst of lines arrives in few system calls and goes
        // to the main loop in few events.
        let mut reader = reader.with_read_size(64 * 1024);
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        thread::Builder::new()
            .name(format!("link-{id}"))
            .spawn(move || {
                loop {
                    // Hand on every line already here in one event: a burst
                    // costs the main loop one wake-up, not one per line.
                    let mut msgs = Vec::new();
                    let mut closed = false;
                    loop {
                        match reader.read_line_by(Some(Instant::now() + SILENCE_LIMIT)) {
                            // A line we do not understand from a newer or
                            // broken peer is skipped; the chat goes on.
                            Ok(line) => msgs.extend(PeerMessage::parse_owned(line).ok()),
                            Err(ReadError::InvalidUtf8) => {}
                            Err(_) => closed = true,
                        }
                        if closed
                            || msgs.last() == Some(&PeerMessage::Bye)
                            || msgs.len() >= MAX_BATCH
                            || !reader.has_line()
                        {
                            break;
                        }
                    }
                    let last = closed || msgs.last() == Some(&PeerMessage::Bye);
                    let event = Event::Peer {
                        link: id,
                        msgs,
                        closed,
                    };
                    if events.send(event).is_err() || last {
                        return;
                    }
                }
            })?;
        Ok(Link {
            id,
            relayed,
            stream: BufWriter::new(stream),
            last_sent: Instant::now(),
            pings: 0,
            pongs: 0,
        })
    }

    /// Queues a message; [`Link::flush`] sends it.
    pub fn send(&mut self, msg: &PeerMessage) -> io::Result<()> {
        writeln!(self.stream, "{msg}")
    }

    /// Queues `MSG text` without building a [`PeerMessage`] first: typed
    /// and piped lines take this path.
    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.stream.write_all(b"MSG ")?;
        self.stream.write_all(text.as_bytes())?;
        self.stream.write_all(b"\n")
    }

    /// Sends everything queued so far.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.stream.buffer().is_empty() {
            return Ok(());
        }
        self.last_sent = Instant::now();
        self.stream.flush()
    }

    /// Sends a `PING` if nothing was sent for a while.
    pub fn keepalive(&mut self) -> io::Result<()> {
        if self.last_sent.elapsed() >= PING_EVERY {
            self.ping()?;
        }
        Ok(())
    }

    /// Queues a `PING`; returns its number, which the answering PONG's
    /// number (from [`Link::ponged`]) will equal.
    pub fn ping(&mut self) -> io::Result<u64> {
        self.send(&PeerMessage::Ping(None))?;
        self.pings += 1;
        Ok(self.pings)
    }

    /// Counts a PONG received; returns its number.
    pub fn ponged(&mut self) -> u64 {
        self.pongs += 1;
        self.pongs
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // A BYE written just before must leave before the socket closes.
        let _ = self.stream.flush();
        let _ = self.stream.get_ref().shutdown(Shutdown::Both);
    }
}
