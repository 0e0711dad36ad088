//! `--log FILE`: a timestamped transcript of the conversation, appended to
//! the file: who said what, calls, joins and leaves the user saw.
//!
//! A file can block (a full disk, a network mount), so the lines go to a
//! writer thread of their own; the main loop only queues them. Every text
//! passes the one gate for untrusted text first, so a peer's escape
//! sequences cannot reach whoever later `cat`s the file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use crate::text::shown;

pub struct Transcript {
    lines: mpsc::Sender<String>,
    /// Disconnects when the writer is done.
    written: mpsc::Receiver<()>,
}

impl Transcript {
    /// Opens `path` for appending (creating it) and starts the writer.
    pub fn open(path: &Path) -> io::Result<Transcript> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (lines, inbox) = mpsc::channel();
        let (done, written) = mpsc::sync_channel::<()>(0);
        thread::Builder::new()
            .name("transcript".into())
            .spawn(move || {
                write_loop(file, inbox);
                drop(done);
            })?;
        Ok(Transcript { lines, written })
    }

    /// Stops taking lines; the receiver disconnects once all are written.
    pub fn close(self) -> mpsc::Receiver<()> {
        self.written
    }

    /// Queues one line, stamped.
    pub fn line(&self, stamp: &str, text: &str) {
        let _ = self.lines.send(format!("{stamp}  {}\n", shown(text)));
    }
}

fn write_loop(file: File, inbox: mpsc::Receiver<String>) {
    let mut out = BufWriter::new(file);
    while let Ok(line) = inbox.recv() {
        let _ = out.write_all(line.as_bytes());
        // Whatever else is already queued, then one flush.
        for line in inbox.try_iter() {
            let _ = out.write_all(line.as_bytes());
        }
        let _ = out.flush();
    }
}
