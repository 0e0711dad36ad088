//! One chat connection to a peer, direct or relayed, once its handshake is
//! done.
//!
//! A [`Link`] is the writing half, owned by the main loop; its reader thread
//! turns every line the peer sends into an [`Event::Peer`] and reports the
//! end of the connection once. Dropping the link shuts the socket down, which
//! also ends the reader thread.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::Sender;
use std::thread;
use std::time::{Duration, Instant};

use super::Event;
use crate::connection::{LineReader, ReadError, write_line};
use crate::protocol::PeerMessage;

/// Distinguishes links so that a late event from a closed link is ignored.
pub type LinkId = u64;

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
    stream: TcpStream,
    last_sent: Instant,
}

impl Link {
    /// Attaches a handshaken connection: starts its reader thread.
    pub fn start(id: LinkId, conn: Handshaken, events: Sender<Event>) -> io::Result<Link> {
        let Handshaken {
            stream,
            mut reader,
            relayed,
        } = conn;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        thread::Builder::new()
            .name(format!("link-{id}"))
            .spawn(move || {
                loop {
                    let msg = match reader.read_line_by(Some(Instant::now() + SILENCE_LIMIT)) {
                        Ok(line) => match PeerMessage::parse(&line) {
                            Ok(msg) => msg,
                            // A line we do not understand from a newer or
                            // broken peer: skip it, keep the chat.
                            Err(_) => continue,
                        },
                        Err(ReadError::InvalidUtf8) => continue,
                        Err(_) => break,
                    };
                    let last = matches!(msg, PeerMessage::Bye);
                    if events
                        .send(Event::Peer {
                            link: id,
                            msg: Some(msg),
                        })
                        .is_err()
                        || last
                    {
                        return;
                    }
                }
                let _ = events.send(Event::Peer {
                    link: id,
                    msg: None,
                });
            })?;
        Ok(Link {
            id,
            relayed,
            stream,
            last_sent: Instant::now(),
        })
    }

    pub fn send(&mut self, msg: &PeerMessage) -> io::Result<()> {
        self.last_sent = Instant::now();
        write_line(&mut self.stream, msg)
    }

    /// Sends a `PING` if nothing was sent for a while.
    pub fn keepalive(&mut self) -> io::Result<()> {
        if self.last_sent.elapsed() >= PING_EVERY {
            self.send(&PeerMessage::Ping)?;
        }
        Ok(())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
