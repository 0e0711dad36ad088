//! `--log FILE`: a timestamped transcript of the conversation, appended to
//! the file: who said what, calls, joins and leaves the user saw.
//!
//! A file can block (a full disk, a network mount, a pipe nobody reads), so
//! the lines go to a writer thread of their own; the main loop only queues
//! them and counts the bytes waiting ([`Transcript::backlog`]). Past
//! [`LOG_BACKLOG`] the driver stops taking the peer's lines, as it does for a
//! slow screen, so the queue stays bounded and no line shown is missing from
//! the log; once the writer catches up it says so ([`Event::LogDrained`]).
//! The file grows to `--log-max` at most: there the log says so in a last
//! line and stops (it does not rotate: an old transcript is never
//! overwritten). Every text passes the one gate for untrusted text first,
//! so a peer's escape sequences cannot reach whoever later `cat`s the file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use super::{Event, Events};
use crate::text::shown;

/// Bytes waiting for the log writer past which the peer's lines wait too.
pub const LOG_BACKLOG: usize = 1024 * 1024;

/// `--log-max`'s default: a long chat's transcript is a few MB.
pub const DEFAULT_LOG_MAX: u64 = 100 * 1024 * 1024;

pub struct Transcript {
    lines: mpsc::Sender<String>,
    /// Bytes queued and not yet written.
    queued: Arc<AtomicUsize>,
    /// Disconnects when the writer is done.
    written: mpsc::Receiver<()>,
}

impl Transcript {
    /// Opens `path` for appending (creating it) and starts the writer, which
    /// writes at most `max` bytes to it and tells `events` when it caught up.
    pub fn open(path: &Path, max: u64, events: Events) -> io::Result<Transcript> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let already = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (lines, inbox) = mpsc::channel();
        let (done, written) = mpsc::sync_channel::<()>(0);
        let queued = Arc::new(AtomicUsize::new(0));
        let writer = Writer {
            out: BufWriter::new(file),
            left: max.saturating_sub(already),
            max,
            queued: queued.clone(),
            events,
        };
        thread::Builder::new()
            .name("transcript".into())
            .spawn(move || {
                writer.run(inbox);
                drop(done);
            })?;
        Ok(Transcript {
            lines,
            queued,
            written,
        })
    }

    /// Stops taking lines; the receiver disconnects once all are written.
    pub fn close(self) -> mpsc::Receiver<()> {
        self.written
    }

    /// Queues one line, stamped.
    pub fn line(&self, stamp: &str, text: &str) {
        let line = format!("{stamp}  {}\n", shown(text));
        self.queued.fetch_add(line.len(), Ordering::AcqRel);
        if self.lines.send(line).is_err() {
            // The writer is gone (it stopped at the limit, or failed):
            // nothing will drain the count.
            self.queued.store(0, Ordering::Release);
        }
    }

    /// Bytes queued for the file and not yet written.
    pub fn backlog(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

struct Writer {
    out: BufWriter<File>,
    /// Bytes the file may still grow by.
    left: u64,
    max: u64,
    queued: Arc<AtomicUsize>,
    events: Events,
}

impl Writer {
    fn run(mut self, inbox: mpsc::Receiver<String>) {
        while let Ok(line) = inbox.recv() {
            let mut taken = line.len();
            let mut open = self.write(&line);
            // Whatever else is already queued, then one flush.
            for line in inbox.try_iter() {
                taken += line.len();
                open = open && self.write(&line);
            }
            let _ = self.out.flush();
            let before = self.queued.fetch_sub(taken, Ordering::AcqRel);
            if before >= LOG_BACKLOG && before - taken < LOG_BACKLOG {
                // A full inbox means the loop is awake and will look.
                let _ = self.events.try_send(Event::LogDrained);
            }
            if !open {
                // At the limit: later lines are counted and dropped.
                for line in inbox {
                    self.queued.fetch_sub(line.len(), Ordering::AcqRel);
                }
                return;
            }
        }
    }

    /// Writes `line` if it fits under the limit; at the limit, says so in
    /// a last line and returns false.
    fn write(&mut self, line: &str) -> bool {
        if self.left >= line.len() as u64 + STOPPED_LINE_ROOM {
            let _ = self.out.write_all(line.as_bytes());
            self.left -= line.len() as u64;
            return true;
        }
        let _ = writeln!(
            self.out,
            "[the transcript stops here: it reached --log-max ({} bytes)]",
            self.max
        );
        false
    }
}

/// Room kept for the last line, which says the log stopped.
const STOPPED_LINE_ROOM: u64 = 80;
