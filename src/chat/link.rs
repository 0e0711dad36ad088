//! One chat connection to a peer, direct or relayed, once its handshake is
//! done: a reader thread and a writer thread, so that the main loop never
//! touches the socket.
//!
//! The reader turns the peer's lines into [`Event::Peer`] batches, and may
//! have at most [`LINK_CREDITS`] batches in flight to the main loop: it
//! waits for [`Link::credit`] before sending another, so a flooding peer
//! is slowed down by TCP instead of crowding out the user's keys. The
//! writer takes whole batches of bytes from the main loop and writes each
//! within its write deadline (`--write-timeout`, 10 s); a peer that does not read by then is
//! reported as [`LinkEnd::StoppedReading`]. Dropping the [`Link`] lets the
//! writer send what is queued (a last `BYE`), then it closes the socket,
//! which ends the reader too.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

use super::core::{LinkEnd, LinkId, Route};
use super::{Event, Events};
use crate::connection::{LineReader, ReadError, is_timeout};
use crate::lines::Lines;
use crate::protocol::{MAX_PEER_LINE, PeerBatch, PeerMessage};

/// Most lines handed to the main loop in one event.
const LINES_PER_EVENT: usize = 4096;

/// Batches a link's reader may have handed on and not yet had handled.
pub const LINK_CREDITS: usize = 2;

/// How long a closed link waits for the peer to close its side, after ours.
const LINK_LINGER: Duration = Duration::from_secs(2);

/// Bytes queued for a peer at most, a safety bound: typing stops being
/// taken well before ([`LINK_HIGH_WATER`]); past this the link is given up.
pub const LINK_BACKLOG: usize = 64 * 1024 * 1024;

/// Bytes queued for a peer past which no more typed lines are taken, until
/// the writer is down to [`LINK_LOW_WATER`] (and says so).
pub const LINK_HIGH_WATER: usize = 1024 * 1024;
const LINK_LOW_WATER: usize = 256 * 1024;

/// A connection whose handshake succeeded, not yet started: the socket plus
/// any lines already buffered behind the handshake.
pub struct Handshaken {
    pub stream: TcpStream,
    pub reader: LineReader<TcpStream>,
    pub route: Route,
}

/// The main loop's handle on a running link.
/// What the main loop hands the writer.
enum ToWriter {
    Bytes(Vec<u8>),
    /// Nothing more will be sent: end our direction of the connection
    /// (after what is queued), and let the reader go on.
    EndOfSending,
}

pub struct Link {
    writer: mpsc::Sender<ToWriter>,
    /// Bytes handed to the writer and not yet written.
    queued: Arc<AtomicUsize>,
    credits: SyncSender<()>,
    /// Lines serialised this round, handed to the writer in one batch.
    batch: Vec<u8>,
    /// Disconnects when the writer thread is done.
    written: Receiver<()>,
}

impl Link {
    /// Starts the reader and writer threads of a handshaken connection.
    pub fn start(
        id: LinkId,
        conn: Handshaken,
        events: Events,
        write_deadline: Duration,
    ) -> io::Result<Link> {
        let Handshaken { stream, reader, .. } = conn;
        let write_half = stream.try_clone()?;
        let (writer, batches) = mpsc::channel();
        let (credits, credit_inbox) = mpsc::sync_channel(LINK_CREDITS);
        for _ in 0..LINK_CREDITS {
            let _ = credits.try_send(());
        }
        let queued = Arc::new(AtomicUsize::new(0));
        // Big reads: a burst of lines arrives in few system calls and goes
        // to the main loop in few events.
        let mut reader = reader.with_read_size(256 * 1024);
        // A peer announcing `long-lines` sends messages up to 64 KiB.
        reader.set_limit(MAX_PEER_LINE);
        let reader_events = events.clone();
        let (reading, read_done) = mpsc::sync_channel::<()>(0);
        thread::Builder::new()
            .name(format!("link-{id}-read"))
            .spawn(move || {
                read_loop(id, reader, reader_events, credit_inbox);
                drop(reading);
            })?;
        let unwritten = queued.clone();
        let (done, written) = mpsc::sync_channel(0);
        let spawned = thread::Builder::new()
            .name(format!("link-{id}-write"))
            .spawn(move || {
                write_loop(
                    id,
                    write_half,
                    batches,
                    unwritten,
                    events,
                    read_done,
                    write_deadline,
                );
                drop(done);
            });
        if let Err(e) = spawned {
            let _ = stream.shutdown(Shutdown::Both);
            return Err(e);
        }
        Ok(Link {
            writer,
            queued,
            credits,
            batch: Vec::new(),
            written,
        })
    }

    /// Closes the link once what was sent on it has gone out; the receiver
    /// disconnects then (or when the write deadline gave up on the peer).
    pub fn close(mut self) -> Receiver<()> {
        let _ = self.flush();
        let (_, placeholder) = mpsc::sync_channel(0);
        std::mem::replace(&mut self.written, placeholder)
    }

    /// Adds a message to this round's batch.
    pub fn send(&mut self, msg: &PeerMessage) {
        match msg {
            // Typed and piped lines, the bulk: no intermediate String.
            PeerMessage::Msg(text) => {
                self.batch.extend_from_slice(b"MSG ");
                self.batch.extend_from_slice(text.as_bytes());
                self.batch.push(b'\n');
            }
            msg => {
                let _ = writeln!(self.batch, "{msg}");
            }
        }
    }

    /// Adds each of `texts` to this round's batch as a `MSG`.
    pub fn send_texts(&mut self, texts: &Lines) {
        self.batch
            .reserve(texts.text_len() + texts.len() * "MSG \n".len());
        for text in texts.iter() {
            self.batch.extend_from_slice(b"MSG ");
            self.batch.extend_from_slice(text.as_bytes());
            self.batch.push(b'\n');
        }
    }

    /// Hands this round's batch to the writer. Fails when the peer has
    /// left more than [`LINK_BACKLOG`] unread.
    pub fn flush(&mut self) -> Result<(), LinkEnd> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let queued = self.queued.fetch_add(batch.len(), Ordering::AcqRel) + batch.len();
        if queued > LINK_BACKLOG {
            return Err(LinkEnd::StoppedReading);
        }
        // A closed writer has reported why already.
        let _ = self.writer.send(ToWriter::Bytes(batch));
        Ok(())
    }

    /// Sends what is queued, then ends our direction of the connection:
    /// the peer reads to the end and answers, and the reader goes on.
    pub fn end_sending(&mut self) {
        let _ = self.flush();
        let _ = self.writer.send(ToWriter::EndOfSending);
    }

    /// Bytes handed to the writer and not yet written.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire) + self.batch.len()
    }

    /// The main loop has handled one of the reader's batches.
    pub fn credit(&self) {
        let _ = self.credits.try_send(());
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // What this round wrote (a BYE) still goes; then the writer sees
        // the channel closed, and closes the socket.
        let _ = self.flush();
    }
}

fn read_loop(id: LinkId, mut reader: LineReader<TcpStream>, events: Events, credits: Receiver<()>) {
    loop {
        // Hand on every line already here in one event: a burst costs the
        // main loop one wake-up, not one per line.
        let mut msgs = PeerBatch::default();
        let mut end = None;
        loop {
            // Parsed where it lies in the buffer: the MSGs' texts are
            // copied once, a block at a time, into the batch. Nothing
            // after a BYE is taken.
            let most = LINES_PER_EVENT - msgs.len();
            let take = |block: &str, lines: &[(usize, usize)]| {
                if msgs.ends_with_bye() {
                    0
                } else {
                    msgs.push_block(block, lines)
                }
            };
            match reader.read_lines_with(None, most, take) {
                Ok(()) | Err(ReadError::InvalidUtf8) => {}
                Err(_) => end = Some(LinkEnd::Closed),
            }
            let bye = msgs.ends_with_bye();
            if end.is_some() || bye || msgs.len() >= LINES_PER_EVENT || !reader.has_line() {
                if bye {
                    end = end.or(Some(LinkEnd::Closed));
                }
                break;
            }
        }
        // Wait until the main loop has room for another batch of ours.
        if credits.recv().is_err() {
            // The link was closed: read on, unheard, until the peer ends its
            // side (or the writer gives up waiting), so that closing never
            // meets unread bytes, which would reset the connection and could
            // destroy our last lines before the peer read them.
            while end.is_none()
                && matches!(
                    reader.read_line_by(None),
                    Ok(_) | Err(ReadError::InvalidUtf8)
                )
            {}
            return;
        }
        if !msgs.is_empty() && events.send(Event::Peer { link: id, msgs }).is_err() {
            return;
        }
        if let Some(end) = end {
            let _ = events.send(Event::LinkEnded { link: id, end });
            return;
        }
    }
}

fn write_loop(
    id: LinkId,
    mut stream: TcpStream,
    batches: Receiver<ToWriter>,
    queued: Arc<AtomicUsize>,
    events: Events,
    read_done: Receiver<()>,
    write_deadline: Duration,
) {
    // Whether the queue has been past the high-water mark since it was
    // last below the low one: then the main loop may be holding typed
    // lines back, and is told once the queue is low, however small the
    // steps it drains in.
    let mut behind = false;
    for command in batches {
        let batch = match command {
            ToWriter::Bytes(batch) => batch,
            ToWriter::EndOfSending => {
                let _ = stream.shutdown(Shutdown::Write);
                continue;
            }
        };
        if let Err(e) = write_by(&mut stream, &batch, Instant::now() + write_deadline) {
            let end = if is_timeout(&e) {
                LinkEnd::StoppedReading
            } else {
                LinkEnd::Closed
            };
            // Said before the socket is shut: the reader then sees it
            // closed and reports that too, and the first word must be why.
            let _ = events.send(Event::LinkEnded { link: id, end });
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        let before = queued.fetch_sub(batch.len(), Ordering::AcqRel);
        behind |= before >= LINK_HIGH_WATER;
        if behind && before - batch.len() < LINK_LOW_WATER {
            behind = false;
            // A full inbox means the loop is awake and will look.
            let _ = events.try_send(Event::LinkDrained { link: id });
        }
    }
    // Closed: everything is written. End our side, let the peer read to the
    // end and close its own (the reader reads meanwhile), then close.
    let _ = stream.shutdown(Shutdown::Write);
    let _ = read_done.recv_timeout(LINK_LINGER);
    let _ = stream.shutdown(Shutdown::Both);
}

/// Writes all of `bytes` by `deadline`, however slowly the peer reads.
fn write_by(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn a_writer_that_fell_behind_says_when_it_caught_up_however_small_its_batches() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut theirs, _) = listener.accept().unwrap();
        let (events, inbox) = mpsc::sync_channel(64);
        let conn = Handshaken {
            stream: ours.try_clone().unwrap(),
            reader: LineReader::new(ours),
            route: Route::Direct,
        };
        let mut link = Link::start(1, conn, events, Duration::from_secs(10)).unwrap();
        // Far more than the sockets' buffers hold, in batches much smaller
        // than the gap between the marks, while the peer reads nothing.
        let text = "x".repeat(16 * 1024);
        for _ in 0..(LINK_HIGH_WATER * 24) / text.len() {
            link.send(&PeerMessage::Msg(text.clone()));
            link.flush().unwrap();
        }
        assert!(link.queued() >= LINK_HIGH_WATER, "{} queued", link.queued());
        let reader = thread::spawn(move || {
            let mut buf = vec![0; 1 << 20];
            while theirs.read(&mut buf).is_ok_and(|n| n > 0) {}
        });
        // (The kernel's buffers may have let the queue fall and rise while
        // it was filled: an early word is fine, a missing last one is not.)
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match inbox.recv_timeout(left) {
                Ok(Event::LinkDrained { link: 1 }) if link.queued() < LINK_LOW_WATER => break,
                Ok(_) => {}
                Err(e) => panic!("never told the link caught up ({e})"),
            }
        }
        drop(link);
        reader.join().unwrap();
    }
}
