//! Bounded, deadline-aware line reading and whole-line writing over sockets.
//!
//! Every byte p2pchat reads from the network goes through [`LineReader`]: it
//! never buffers more than one line of at most [`MAX_LINE`] bytes, it gives up
//! on a line that does not arrive by a deadline, and it reports invalid UTF-8
//! as an error for that line alone, so the caller can answer and go on.
//!
//! The server's writes go through an [`Outbox`]: one lock per connection, so
//! lines from several threads never interleave, and a deadline on each whole
//! write, so a client that stops reading cannot hold the lock for ever. The
//! server and its relay both write through it; neither knows the other. An
//! outbox tells a reply the client asked for from an event pushed to it, and
//! remembers the largest reply it may not have read yet, for the server's
//! watch on unsent bytes.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use crate::protocol::MAX_LINE;

/// Why no line could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The other side closed the connection (a partial last line is dropped).
    Closed,
    /// A line grew past the limit without a newline; the stream is no longer
    /// in sync and should be closed.
    TooLong,
    /// The line was not UTF-8. It has been consumed; the next line is fine.
    InvalidUtf8,
    /// The deadline passed before a whole line arrived.
    TimedOut,
    /// Any other I/O failure (reset, broken pipe…).
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Closed => write!(f, "connection closed"),
            ReadError::TooLong => write!(f, "line longer than {MAX_LINE} bytes"),
            ReadError::InvalidUtf8 => write!(f, "line is not valid UTF-8"),
            ReadError::TimedOut => write!(f, "timed out"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A source whose blocking reads can be given a timeout: a socket, or in unit
/// tests a byte slice that never blocks.
pub trait TimedRead: Read {
    fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
}

impl TimedRead for TcpStream {
    fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(timeout)
    }
}

/// One socket shared by a reading thread and writers elsewhere, without a
/// second file descriptor (`try_clone` would double the server's
/// descriptors per client). `&TcpStream` reads and writes; this makes it an
/// owned, shareable reader.
#[derive(Clone)]
pub struct SharedStream(pub Arc<TcpStream>);

impl Read for SharedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl TimedRead for SharedStream {
    fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_read_timeout(timeout)
    }
}

impl TimedRead for &[u8] {
    fn set_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

/// Whether a socket's read or write gave up on its timeout (which the
/// platform reports as either kind).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads `\n`-terminated lines (a trailing `\r` is dropped too) of at most
/// `max` bytes each.
pub struct LineReader<R> {
    inner: R,
    /// Bytes read but not yet returned are `buf[start..end]`; the rest of
    /// `buf` is room, zeroed once, for the next read.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// How much of `buf[start..end]` is known to hold no newline.
    scanned: usize,
    /// Where in `buf[start..end]` the next newline is, when already found.
    found: Option<usize>,
    max: usize,
    /// Bytes asked for per read: small for the server's many idle clients,
    /// large for a chat link that may carry a flood of lines.
    read_size: usize,
    /// The read timeout last given to `inner` (`None`: not known yet), so
    /// that a timeout within [`TIMEOUT_SLACK`] of the one wanted is not set
    /// again: a system call per request saved, as a deadline that moves
    /// with every line wants about the same timeout each time.
    timeout_set: Option<Option<Duration>>,
    /// Where the lines of a block are ([`LineReader::read_lines_with`]),
    /// kept for the next block.
    spans: Vec<(usize, usize)>,
}

/// How far past its deadline a read may wait because its timeout was not
/// set again. A timeout shorter than wanted only wakes the read early, and
/// it then asks again with the time left.
pub const TIMEOUT_SLACK: Duration = Duration::from_millis(10);

/// Where the first `\n` in `bytes` is, found a word at a time (std's
/// `memchr`, reached through [`io::BufRead::skip_until`]).
fn find_newline(bytes: &[u8]) -> Option<usize> {
    let mut rest = bytes;
    let skipped = io::BufRead::skip_until(&mut rest, b'\n').ok()?;
    (skipped > 0 && bytes[skipped - 1] == b'\n').then(|| skipped - 1)
}

/// The whole lines at the front of `bytes`, at most `most` of them: the
/// block they fill, line breaks and all, with where each line is in it
/// (without its `\n` or `\r\n`) added to `spans`. The lines are checked as
/// UTF-8 in one pass for them all, so a burst of short lines costs one
/// check, not one per line. Stops before a line longer than `max` (a `\r`
/// before its `\n` counted, as in the one-line paths) or one that is not
/// UTF-8, which the caller takes its own way.
pub fn whole_lines<'a>(
    bytes: &'a [u8],
    max: usize,
    most: usize,
    spans: &mut Vec<(usize, usize)>,
) -> &'a str {
    if most == 0 {
        return "";
    }
    let (first, mut used, mut taken) = (spans.len(), 0, 0);
    each_newline(bytes, |end| {
        if end - used > max {
            return false;
        }
        let text_end = end - usize::from(end > used && bytes[end - 1] == b'\r');
        spans.push((used, text_end));
        used = end + 1;
        taken += 1;
        taken < most
    });
    // Checked as UTF-8 once, and only what is taken (a flood of lines the
    // taker skips is not checked again at every call); the lines from the
    // first bad byte on are left, for the caller to take its own way.
    match std::str::from_utf8(&bytes[..used]) {
        Ok(block) => block,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let cut = good
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |at| at + 1);
            let whole = spans[first..]
                .iter()
                .take_while(|&&(start, _)| start < cut)
                .count();
            spans.truncate(first + whole);
            std::str::from_utf8(&bytes[..cut]).unwrap_or_default()
        }
    }
}

/// Calls `at` with where each `\n` in `bytes` is, in order, while it says
/// go on. Looks 8 bytes at a time (32 between branches), with no call per
/// line: for a flood of short lines, a third of the time of a `memchr` per
/// line (measured: 9 against 28 ns a 65-byte line).
fn each_newline(bytes: &[u8], mut at: impl FnMut(usize) -> bool) {
    let mut blocks = bytes.chunks_exact(32);
    let mut from = 0;
    for block in &mut blocks {
        let words: [u64; 4] = std::array::from_fn(|i| newlines_in(&block[i * 8..i * 8 + 8]));
        if words.iter().any(|&w| w != 0) {
            for (i, mut found) in words.into_iter().enumerate() {
                while found != 0 {
                    if !at(from + i * 8 + (found.trailing_zeros() / 8) as usize) {
                        return;
                    }
                    found &= found - 1;
                }
            }
        }
        from += 32;
    }
    for (j, &b) in blocks.remainder().iter().enumerate() {
        if b == b'\n' && !at(from + j) {
            return;
        }
    }
}

/// The top bit of each byte of the result is set exactly where `word` (8
/// bytes) has a `\n`.
fn newlines_in(word: &[u8]) -> u64 {
    const LOW_BITS: u64 = u64::from_ne_bytes([0x7f; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let word: [u8; 8] = word.try_into().expect("8 bytes");
    // A byte of `x` is 0 where the word has a newline; adding 0x7f to a
    // byte's low bits sets its top bit unless they are 0, and never carries
    // into the next byte.
    let x = u64::from_le_bytes(word) ^ NEWLINES;
    !(((x & LOW_BITS) + LOW_BITS) | x | LOW_BITS)
}

impl<R: TimedRead> LineReader<R> {
    pub fn new(inner: R) -> Self {
        Self::with_limit(inner, MAX_LINE)
    }

    /// Raises (or lowers) the longest line taken from here on: a chat link
    /// and a relay take longer lines than a request may be.
    pub fn set_limit(&mut self, max: usize) {
        self.max = max;
    }

    pub fn with_limit(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            end: 0,
            start: 0,
            scanned: 0,
            found: None,
            max,
            read_size: 1024,
            timeout_set: None,
            spans: Vec::new(),
        }
    }

    /// Reads up to `bytes` at a time. The buffer then holds at most one
    /// partial line of `max` bytes plus one read.
    pub fn with_read_size(mut self, bytes: usize) -> Self {
        self.read_size = bytes.max(1);
        self
    }

    /// Reads the next line, waiting as long as it takes.
    pub fn read_line(&mut self) -> Result<String, ReadError> {
        self.read_line_by(None)
    }

    /// Whether a whole line is already buffered, so the next read returns
    /// without waiting. Lets a reader hand on a batch of lines at once.
    pub fn has_line(&mut self) -> bool {
        if self.found.is_none() {
            let pending = &self.buf[self.start..self.end];
            match find_newline(&pending[self.scanned..]) {
                Some(pos) => self.found = Some(self.scanned + pos),
                None => self.scanned = pending.len(),
            }
        }
        self.found.is_some()
    }

    /// Reads the next line, or fails with [`ReadError::TimedOut`] once
    /// `deadline` has passed. Bytes of a line that timed out are kept, so a
    /// later call can still complete it.
    pub fn read_line_by(&mut self, deadline: Option<Instant>) -> Result<String, ReadError> {
        self.read_with(deadline, str::to_owned)
    }

    /// Reads the next line like [`LineReader::read_with`], then up to
    /// `most - 1` more already here, checked as UTF-8 in one pass
    /// ([`whole_lines`]). `take` gets them as blocks with where their lines
    /// are (the first line as a block of its own, then the rest as one),
    /// and says how many lines of each it took: those of the second it did
    /// not take stay for the next call. The first is read, taken or not;
    /// if `take` says 0 for it, the rest are not looked at.
    pub fn read_lines_with(
        &mut self,
        deadline: Option<Instant>,
        most: usize,
        mut take: impl FnMut(&str, &[(usize, usize)]) -> usize,
    ) -> Result<(), ReadError> {
        if self.read_with(deadline, |line| take(line, &[(0, line.len())]))? == 0 {
            return Ok(());
        }
        let mut spans = std::mem::take(&mut self.spans);
        spans.clear();
        let more = most.saturating_sub(1);
        let block = whole_lines(&self.buf[self.start..self.end], self.max, more, &mut spans);
        let took = take(block, &spans);
        let used = spans.get(took).map_or(block.len(), |&(start, _)| start);
        self.spans = spans;
        if used > 0 {
            self.start += used;
            self.scanned = 0;
            self.found = None;
        }
        Ok(())
    }

    /// Reads the next line like [`LineReader::read_line_by`], and gives it
    /// to `take` where it lies in the buffer: what `take` keeps of it is
    /// the only copy made.
    pub fn read_with<T>(
        &mut self,
        deadline: Option<Instant>,
        take: impl FnOnce(&str) -> T,
    ) -> Result<T, ReadError> {
        loop {
            let pending = &self.buf[self.start..self.end];
            let found = self
                .found
                .take()
                .or_else(|| Some(self.scanned + find_newline(&pending[self.scanned..])?));
            if let Some(end) = found {
                if end > self.max + usize::from(pending[..end].ends_with(b"\r")) {
                    return Err(ReadError::TooLong);
                }
                let mut line = &pending[..end];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                let line = std::str::from_utf8(line)
                    .map(take)
                    .map_err(|_| ReadError::InvalidUtf8);
                self.start += end + 1;
                self.scanned = 0;
                return line;
            }
            self.scanned = pending.len();
            if pending.len() > self.max + 1 {
                return Err(ReadError::TooLong);
            }
            // Move the partial line to the front before reading more.
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.end, self.start) = (self.end - self.start, 0);
            }
            if self.buf.capacity() > 2 * (self.max + self.read_size) {
                self.buf.truncate(self.end.max(self.max + self.read_size));
                self.buf.shrink_to_fit();
            }
            let timeout = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(ReadError::TimedOut);
                    }
                    Some(left)
                }
                None => None,
            };
            self.set_timeout(timeout).map_err(ReadError::Io)?;
            // Zeroed once as the buffer grows, not before every read.
            if self.buf.len() < self.end + self.read_size {
                self.buf.resize(self.end + self.read_size, 0);
            }
            let read = self
                .inner
                .read(&mut self.buf[self.end..self.end + self.read_size]);
            self.end += *read.as_ref().unwrap_or(&0);
            match read {
                Ok(0) => return Err(ReadError::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(ReadError::TimedOut);
                    }
                }
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }
}

impl<R> LineReader<R> {
    /// Ends line reading: the bytes already read but not yet returned (what
    /// came after the last line taken, in the same read) and the reader
    /// itself, for a connection that carries raw bytes from here on (a
    /// file relay after its `FILE-RELAY` line).
    pub fn into_parts(mut self) -> (Vec<u8>, R) {
        self.buf.truncate(self.end);
        self.buf.drain(..self.start);
        (self.buf, self.inner)
    }
}

impl<R: TimedRead> LineReader<R> {
    /// Gives `inner` this read timeout, unless the one it has is within
    /// [`TIMEOUT_SLACK`] of it.
    fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let close_enough = match (self.timeout_set, timeout) {
            (Some(None), None) => true,
            (Some(Some(set)), Some(wanted)) => set.abs_diff(wanted) <= TIMEOUT_SLACK,
            _ => false,
        };
        if !close_enough {
            self.timeout_set = None;
            self.inner.set_timeout(timeout)?;
            self.timeout_set = Some(timeout);
        }
        Ok(())
    }
}

/// Writes `line` and a newline in one `write_all`, so concurrent writers
/// holding the same lock never interleave halves of lines.
pub fn write_line<W: Write>(out: &mut W, line: &impl fmt::Display) -> io::Result<()> {
    let mut text = line.to_string();
    text.push('\n');
    out.write_all(text.as_bytes())
}

/// The writing half of one connection that several threads write to (the
/// server's: replies from the client's own thread, events pushed by other
/// clients' threads, relayed lines). Every write goes through the same lock,
/// so lines never interleave.
#[derive(Clone)]
pub struct Outbox(Arc<OutboxInner>);

struct OutboxInner {
    stream: Mutex<Arc<TcpStream>>,
    /// How long one whole write may take before the connection is dropped.
    deadline: Duration,
    /// Bytes written so far, for the server's watch on unsent bytes.
    written: AtomicU64,
    /// What the client asked for that it may not have read yet, for the
    /// same watch. Locked only briefly, never across a write: the watch
    /// reads it while a writer may be blocked holding `stream`.
    asked: Mutex<Asked>,
}

/// Whether the client asked for what is written, or it is pushed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A reply to one of its requests, or presence it asked for with
    /// `WATCH on`.
    Asked,
    /// An event it did not ask for (a ring, a hang-up), or relayed bytes.
    Pushed,
}

/// The replies a client asked for that it may not have read yet, as much as
/// the server's watch on unsent bytes needs to know of them: the largest of
/// those written since it last had received all it asked for, and where in
/// the stream the last of them ends. Two numbers, however many replies.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Asked {
    largest: u64,
    end: u64,
}

impl Asked {
    /// A reply of `len` bytes was written, ending at byte `end` of the
    /// stream.
    fn wrote(&mut self, len: u64, end: u64) {
        self.largest = self.largest.max(len);
        self.end = end;
    }

    /// The largest reply that may still be unread, once the client's side
    /// has acknowledged the stream's first `received` bytes: none once it
    /// has all it asked for. Generous to the client in between: the largest
    /// stays until the last reply is received, even if that is smaller.
    fn unread(&mut self, received: u64) -> u64 {
        if received >= self.end {
            self.largest = 0;
        }
        self.largest
    }
}

impl Outbox {
    /// An outbox writing to `stream`, giving each write `deadline` in total.
    pub fn new(stream: Arc<TcpStream>, deadline: Duration) -> Outbox {
        Outbox(Arc::new(OutboxInner {
            stream: Mutex::new(stream),
            deadline,
            written: AtomicU64::new(0),
            asked: Mutex::default(),
        }))
    }

    /// Bytes written to the socket so far (accepted by the kernel, not
    /// necessarily sent).
    pub fn bytes_written(&self) -> u64 {
        self.0.written.load(Ordering::Relaxed)
    }

    /// The largest reply the client asked for that may still be unread, once
    /// its side has acknowledged the first `received` bytes written (0 when
    /// that is not known).
    pub fn largest_asked_unread(&self, received: u64) -> u64 {
        let mut asked = self.0.asked.lock().unwrap_or_else(PoisonError::into_inner);
        asked.unread(received)
    }

    /// Sends one line the client did not ask for: an event. On failure the
    /// connection is shut down, which ends its owner's read loop and so
    /// removes the peer.
    pub fn send(&self, line: &impl fmt::Display) -> io::Result<()> {
        self.send_line(line, Origin::Pushed)
    }

    /// Sends one line the client asked for: a reply to its request.
    pub fn reply(&self, line: &impl fmt::Display) -> io::Result<()> {
        self.send_line(line, Origin::Asked)
    }

    fn send_line(&self, line: &impl fmt::Display, origin: Origin) -> io::Result<()> {
        // Formatted into this thread's buffer, kept between sends: a reply
        // costs no allocation.
        thread_local! {
            static TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        TEXT.with(|text| match text.try_borrow_mut() {
            Ok(mut text) => {
                use std::fmt::Write as _;
                text.clear();
                let _ = writeln!(text, "{line}");
                let sent = self.send_text(&text, origin);
                if text.capacity() > 4 * MAX_LINE {
                    *text = String::new();
                }
                sent
            }
            // A line whose formatting sends (none does): its own buffer.
            Err(_) => self.send_text(&format!("{line}\n"), origin),
        })
    }

    /// Sends several lines the client asked for in one write, so no other
    /// thread's line lands between them (a list reply and its rows).
    pub fn reply_lines<L: fmt::Display>(
        &self,
        lines: impl IntoIterator<Item = L>,
    ) -> io::Result<()> {
        let mut text = String::new();
        for line in lines {
            text.push_str(&format!("{line}\n"));
        }
        self.send_text(&text, Origin::Asked)
    }

    /// Writes `text`, whole lines each ending in `\n`, unless `cancelled`
    /// says no when asked under the write lock: a line written by another
    /// thread after the answer can never be overtaken by this one. For
    /// presence, which the client asked for with `WATCH on`.
    pub fn send_whole_lines_unless(
        &self,
        text: &str,
        cancelled: impl FnOnce() -> bool,
    ) -> io::Result<()> {
        let stream = self.lock();
        if cancelled() {
            return Ok(());
        }
        self.write_locked(&stream, text, Origin::Asked)
    }

    /// Shuts the connection down, which ends its owner's read loop.
    pub fn close(&self) {
        let stream = self.lock();
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }

    /// Ends what we write (the other side reads EOF after everything
    /// written so far) and leaves the reading direction open: a half-close.
    pub fn close_write(&self) {
        let stream = self.lock();
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }

    /// Writes `text` (whole lines) like `send`, but a failure shuts down
    /// only the writing direction: what the other side sent before it went
    /// can still be read. For the relay, which must deliver one direction
    /// to its end when the other fails.
    pub fn send_keeping_reads(&self, text: &str) -> io::Result<()> {
        let stream = self.lock();
        self.write_within_deadline(
            &stream,
            text.as_bytes(),
            Origin::Pushed,
            std::net::Shutdown::Write,
        )
    }

    /// Writes raw `bytes` (any bytes, not lines) like
    /// [`Outbox::send_keeping_reads`]: a failure shuts down only the
    /// writing direction. For the file relay.
    pub fn send_bytes_keeping_reads(&self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.lock();
        self.write_within_deadline(&stream, bytes, Origin::Pushed, std::net::Shutdown::Write)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<TcpStream>> {
        self.0.stream.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes all of `text` within the deadline in total (the socket's own
    /// timeout bounds each `write` only, and a client reading a byte at a
    /// time could otherwise hold this lock for ever).
    fn send_text(&self, text: &str, origin: Origin) -> io::Result<()> {
        let stream = self.lock();
        self.write_locked(&stream, text, origin)
    }

    fn write_locked(&self, stream: &TcpStream, text: &str, origin: Origin) -> io::Result<()> {
        self.write_within_deadline(stream, text.as_bytes(), origin, std::net::Shutdown::Both)
    }

    /// Writes all of `text` within the deadline, and notes it if the client
    /// asked for it; on failure shuts down `on_failure`. The caller holds
    /// the write lock, so the bytes written now end where this write does.
    fn write_within_deadline(
        &self,
        stream: &TcpStream,
        text: &[u8],
        origin: Origin,
        on_failure: std::net::Shutdown,
    ) -> io::Result<()> {
        let deadline = Instant::now() + self.0.deadline;
        let mut rest = text;
        let result = loop {
            if rest.is_empty() {
                break Ok(());
            }
            if Instant::now() >= deadline {
                break Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client reads too slowly",
                ));
            }
            match (&*stream).write(rest) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.0.written.fetch_add(n as u64, Ordering::Relaxed);
                    rest = &rest[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        match &result {
            Ok(()) if origin == Origin::Asked => {
                let end = self.0.written.load(Ordering::Relaxed);
                let mut asked = self.0.asked.lock().unwrap_or_else(PoisonError::into_inner);
                asked.wrote(text.len() as u64, end);
            }
            Ok(()) => {}
            Err(_) => {
                let _ = stream.shutdown(on_failure);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Result<String, String>> {
        let mut reader = LineReader::with_limit(input, max);
        let mut out = Vec::new();
        loop {
            match reader.read_line() {
                Ok(line) => out.push(Ok(line)),
                Err(ReadError::Closed) => return out,
                Err(ReadError::TooLong) => {
                    out.push(Err("too long".into()));
                    return out;
                }
                Err(e) => out.push(Err(e.to_string())),
            }
        }
    }

    /// The same as [`lines`], read a burst at a time, at most `per_call`
    /// lines per call.
    fn lines_in_bursts(input: &[u8], max: usize, per_call: usize) -> Vec<Result<String, String>> {
        let mut reader = LineReader::with_limit(input, max).with_read_size(4096);
        let mut out = Vec::new();
        loop {
            let read = reader.read_lines_with(None, per_call, |block, spans| {
                let took = spans.len().min(per_call);
                out.extend(
                    spans[..took]
                        .iter()
                        .map(|&(s, e)| Ok(block[s..e].to_string())),
                );
                took
            });
            match read {
                Ok(()) => {}
                Err(ReadError::Closed) => return out,
                Err(ReadError::TooLong) => {
                    out.push(Err("too long".into()));
                    return out;
                }
                Err(e) => out.push(Err(e.to_string())),
            }
        }
    }

    #[test]
    fn a_reader_taken_apart_hands_back_the_bytes_after_its_last_line() {
        let input: &[u8] = b"FILE-RELAY 1 2 x\n\xff\x00raw\nmore";
        let mut reader = LineReader::new(input).with_read_size(4096);
        assert_eq!(reader.read_line().unwrap(), "FILE-RELAY 1 2 x");
        let (buffered, rest) = reader.into_parts();
        assert_eq!(buffered, b"\xff\x00raw\nmore");
        assert!(rest.is_empty(), "all of it was read in one go");
    }

    #[test]
    fn lines_read_in_bursts_are_the_lines_read_one_by_one() {
        let long = format!("ok\n{}\nnever\n", "x".repeat(20));
        let inputs: [&[u8]; 6] = [
            b"a\nbc\r\n\nlast-without-newline",
            // At the limit with its \r: the one-line path takes it.
            b"0123456789\r\nnext\n",
            b"ok\n\xff\xfe\nafter\nmore \xe2\x9c\x93\n",
            b"one\ntwo\nthree\xe2\x9c\n\xe2\x9c\x93\n",
            long.as_bytes(),
            b"",
        ];
        for input in inputs {
            let one_by_one = lines(input, 10);
            for per_call in [1, 2, 100] {
                assert_eq!(
                    lines_in_bursts(input, 10, per_call),
                    one_by_one,
                    "{input:?}"
                );
            }
        }
        let mut spans = Vec::new();
        let block = whole_lines(b"a\r\nb\nc", 10, 100, &mut spans);
        assert_eq!((block, &spans[..]), ("a\r\nb\n", &[(0, 1), (3, 4)][..]));
        // At most `most`, and nothing past a line that is not UTF-8.
        spans.clear();
        assert_eq!(whole_lines(b"a\nb\nc\n", 10, 2, &mut spans), "a\nb\n");
        spans.clear();
        assert_eq!(whole_lines(b"a\nb\xff\nc\n", 10, 9, &mut spans), "a\n");
        assert_eq!(spans, [(0, 1)]);
    }

    #[test]
    fn every_newline_is_found_and_nothing_else() {
        // Bytes either side of '\n' (0x0a), and ones with the top bit set.
        let mut bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for at in [0, 7, 8, 9, 31, 32, 33, 63, 64, 99, 998, 999] {
            bytes[at] = b'\n';
        }
        let expected: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] == b'\n').collect();
        let mut found = Vec::new();
        each_newline(&bytes, |at| {
            found.push(at);
            true
        });
        assert_eq!(found, expected);
        for len in 0..100 {
            let mut found = Vec::new();
            each_newline(&bytes[..len], |at| {
                found.push(at);
                true
            });
            assert_eq!(
                found,
                expected
                    .iter()
                    .copied()
                    .filter(|&i| i < len)
                    .collect::<Vec<_>>()
            );
        }
        let mut bytes = vec![b'x'; 100];
        for at in [0, 31, 32, 33, 63, 64, 99] {
            bytes[at] = b'\n';
        }
        let mut found = Vec::new();
        each_newline(&bytes, |at| {
            found.push(at);
            found.len() < 3
        });
        assert_eq!(found, [0, 31, 32]);
    }

    #[test]
    fn splits_lines_and_strips_cr() {
        assert_eq!(
            lines(b"a\nbc\r\n\nlast-without-newline", 100),
            vec![Ok("a".into()), Ok("bc".into()), Ok(String::new())]
        );
    }

    #[test]
    fn invalid_utf8_spoils_only_its_line() {
        assert_eq!(
            lines(b"ok\n\xff\xfe\nafter\n", 100),
            vec![
                Ok("ok".into()),
                Err("line is not valid UTF-8".into()),
                Ok("after".into())
            ]
        );
    }

    #[test]
    fn line_at_limit_passes_and_one_past_fails() {
        let mut input = vec![b'x'; 10];
        input.push(b'\n');
        assert_eq!(lines(&input, 10), vec![Ok("x".repeat(10))]);
        let mut input = vec![b'x'; 12];
        input.push(b'\n');
        assert_eq!(lines(&input, 10), vec![Err("too long".into())]);
    }

    #[test]
    fn a_long_line_is_refused_even_when_one_read_brings_all_of_it() {
        let mut input = vec![b'x'; 500];
        input.extend_from_slice(b"\nok\n");
        let mut reader = LineReader::with_limit(&input[..], 100).with_read_size(4096);
        assert!(matches!(reader.read_line(), Err(ReadError::TooLong)));
        let mut reader = LineReader::with_limit(&b"a\r\nb\n"[..], 1).with_read_size(4096);
        assert_eq!(reader.read_line().unwrap(), "a");
    }

    #[test]
    fn endless_line_stops_at_limit_without_reading_everything() {
        let input = vec![b'x'; 1 << 20];
        let mut reader = LineReader::with_limit(&input[..], 100);
        assert!(matches!(reader.read_line(), Err(ReadError::TooLong)));
        assert!(reader.buf.len() <= 100 + 1024);
    }

    #[test]
    fn has_line_tells_whether_a_read_would_wait() {
        let mut reader = LineReader::with_limit(&b"a\nb\npartial"[..], 100);
        assert!(!reader.has_line(), "nothing read yet");
        assert_eq!(reader.read_line().unwrap(), "a");
        assert!(reader.has_line());
        assert_eq!(reader.read_line().unwrap(), "b");
        assert!(!reader.has_line());
    }

    #[test]
    fn write_line_appends_newline() {
        let mut out = Vec::new();
        write_line(&mut out, &"PING").unwrap();
        assert_eq!(out, b"PING\n");
    }

    #[test]
    fn an_outbox_writes_whole_lines_and_closes_the_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        let outbox = Outbox::new(Arc::new(server_side), Duration::from_secs(5));
        outbox.send(&"OK PONG").unwrap();
        outbox.reply_lines(["OK USERS 1", "USER ann free"]).unwrap();
        outbox.close();
        let mut reader = LineReader::new(client);
        let deadline = Some(Instant::now() + Duration::from_secs(5));
        for expected in ["OK PONG", "OK USERS 1", "USER ann free"] {
            assert_eq!(reader.read_line_by(deadline).unwrap(), expected);
        }
        assert!(matches!(
            reader.read_line_by(deadline),
            Err(ReadError::Closed)
        ));
    }

    #[test]
    fn the_largest_reply_asked_for_stays_unread_until_the_last_one_asked_is_received() {
        let mut asked = Asked::default();
        assert_eq!(asked.unread(0), 0, "nothing asked");
        asked.wrote(300, 1_000);
        asked.wrote(10, 1_200);
        assert_eq!(asked.unread(0), 300);
        assert_eq!(
            asked.unread(1_000),
            300,
            "the small one is not received yet"
        );
        assert_eq!(asked.unread(1_200), 0, "all received");
        asked.wrote(50, 2_000);
        assert_eq!(asked.unread(1_200), 50, "a new reply");
    }

    #[test]
    fn an_outbox_notes_replies_asked_for_and_not_events() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        let outbox = Outbox::new(Arc::new(server_side), Duration::from_secs(5));
        outbox.send(&"EVENT RING ann 1").unwrap();
        assert_eq!(outbox.largest_asked_unread(0), 0, "an event");
        outbox.reply_lines(["OK USERS 1", "USER ann free"]).unwrap();
        outbox.reply(&"OK PONG").unwrap();
        assert_eq!(outbox.largest_asked_unread(0), 25, "the list");
        let all = outbox.bytes_written();
        assert_eq!(outbox.largest_asked_unread(all - 1), 25);
        assert_eq!(outbox.largest_asked_unread(all), 0, "all received");
    }
}
