//! The chat's terminal side: the stdin reader thread and the output.
//!
//! The stdin thread sends every typed line (or EOF) to the main loop as an
//! [`Event::Input`]. [`Ui`] is how the main loop, the only code that prints,
//! writes to the user: whole lines, each tagged with what kind of line it is,
//! and a prompt that says where the user is.

use std::io::{self, BufRead, IsTerminal, Write};
use std::sync::mpsc::Sender;
use std::thread;

use super::Event;

/// Longest piece of typed text read at once; a longer line arrives as several
/// pieces, none of it lost.
const MAX_INPUT: u64 = 64 * 1024;

/// Most typed lines handed to the main loop in one event.
const MAX_BATCH: usize = 256;

/// One thing the user typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Line(String),
    /// Stdin closed (Ctrl-D, or the end of a script): acts as `q`.
    Eof,
}

/// Starts the thread that reads stdin.
pub fn spawn_stdin(events: Sender<Event>) -> io::Result<()> {
    thread::Builder::new().name("stdin".into()).spawn(move || {
        let mut stdin = io::BufReader::with_capacity(64 * 1024, io::stdin());
        loop {
            // Every line already read goes in one event, so pasted or
            // piped text costs the main loop one wake-up per batch.
            let mut batch = Vec::new();
            loop {
                let input = read_input(&mut stdin);
                let eof = input == Input::Eof;
                batch.push(input);
                if eof || batch.len() >= MAX_BATCH || !stdin.buffer().contains(&b'\n') {
                    break;
                }
            }
            let eof = batch.last() == Some(&Input::Eof);
            if events.send(Event::Input(batch)).is_err() || eof {
                return;
            }
        }
    })?;
    Ok(())
}

/// Reads one line, or a [`MAX_INPUT`] piece of a longer one.
fn read_input<R: BufRead>(stdin: &mut R) -> Input {
    let mut bytes = Vec::new();
    match io::Read::take(&mut *stdin, MAX_INPUT).read_until(b'\n', &mut bytes) {
        Ok(0) | Err(_) => Input::Eof,
        Ok(_) => {
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
            }
            Input::Line(
                String::from_utf8(bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            )
        }
    }
}

/// What a printed line is, so a terminal front end can colour it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ordinary output: the list, instructions.
    Info,
    /// Something happened: joined, left, busy, server lost.
    Notice,
}

/// Writes to stdout. Write errors (stdout closed) are ignored: the chat
/// goes on, and EOF on stdin will end it.
pub struct Ui {
    /// Buffered: the main loop flushes once per batch of events.
    out: io::BufWriter<io::Stdout>,
    /// A prompt is showing and the user's typing has not ended its line:
    /// the next printed line must start on a fresh one.
    prompt_open: bool,
    /// Whether the terminal echoes what the user types (stdin is a
    /// terminal); piped input is not echoed, so it ends no line.
    echoed: bool,
}

impl Default for Ui {
    fn default() -> Self {
        Self::new()
    }
}

impl Ui {
    pub fn new() -> Ui {
        Ui {
            out: io::BufWriter::new(io::stdout()),
            prompt_open: false,
            echoed: io::stdin().is_terminal(),
        }
    }

    /// Prints one whole line.
    pub fn line(&mut self, _kind: Kind, text: &str) {
        if std::mem::take(&mut self.prompt_open) {
            let _ = writeln!(self.out);
        }
        let _ = writeln!(self.out, "{text}");
    }

    /// Prints a line from the peer, `name: text`.
    pub fn peer_line(&mut self, name: &str, text: &str) {
        if std::mem::take(&mut self.prompt_open) {
            let _ = writeln!(self.out);
        }
        let _ = writeln!(self.out, "{name}: {text}");
    }

    /// Shows a prompt for the next typed line.
    pub fn prompt(&mut self, text: &str) {
        let _ = write!(self.out, "{text}");
        self.prompt_open = true;
    }

    /// Shows everything written since the last flush.
    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }

    /// The user finished a line: the terminal's echo ended the prompt's line.
    pub fn typed(&mut self) {
        if self.echoed {
            self.prompt_open = false;
        }
    }
}
