//! The chat's terminal side: the stdin reader thread and the output.
//!
//! Two modes. With pipes (scripts, CI, tests), the stdin thread sends whole
//! lines and [`Ui`] prints plain lines and prompts: no escape sequence ever,
//! EOF acts as `q`. When stdin and stdout are a terminal, the terminal goes
//! into raw mode: the stdin thread sends decoded [`Key`]s, and [`Ui`] keeps
//! the line being typed whole on the last row, under a prompt that says
//! where the user is, printing everything else above it. Either way the
//! main loop is the only code that prints, through [`Ui`].

use std::io::{self, BufRead, IsTerminal, Read, Write};

use std::thread;
use std::time::{Duration, Instant};

use super::editor::{Edit, Key, KeyDecoder, LineEditor, render};
use super::terminal::{self, RawMode};
use super::{Event, Events};

/// Longest piece of typed text read at once; a longer line arrives as several
/// pieces, none of it lost.
const MAX_INPUT: u64 = 64 * 1024;

/// Most typed lines handed to the main loop in one event.
const MAX_BATCH: usize = 1024;

/// One thing the user typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Line(String),
    /// Stdin closed (the end of a script): acts as `q`, and then as `q`
    /// again at the list, since nothing more can come.
    Eof,
    /// Ctrl-D on an empty line in a terminal: acts as `q`, once.
    Quit,
    /// Ctrl-C in a terminal: ends the chat, or the program at the list.
    Interrupt,
}

/// Starts the thread that reads stdin: keys when `keys` (raw mode), lines
/// otherwise.
pub fn spawn_stdin(events: Events, keys: bool) -> io::Result<()> {
    thread::Builder::new().name("stdin".into()).spawn(move || {
        if keys {
            read_keys(events)
        } else {
            read_lines(events)
        }
    })?;
    Ok(())
}

fn read_lines(events: Events) {
    let mut stdin = io::BufReader::with_capacity(64 * 1024, io::stdin());
    loop {
        // Every line already read goes in one event, so pasted or piped
        // text costs the main loop one wake-up per batch.
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

fn read_keys(events: Events) {
    let mut decoder = KeyDecoder::default();
    let mut stdin = io::stdin();
    let mut buf = [0u8; 1024];
    loop {
        let keys = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => {
                // The terminal went away: that is EOF.
                let _ = events.send(Event::Input(vec![Input::Eof]));
                return;
            }
            Ok(n) => decoder.feed(&buf[..n]),
        };
        if !keys.is_empty() && events.send(Event::Keys(keys)).is_err() {
            return;
        }
    }
}

/// What a printed line is, so the terminal front end can colour it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ordinary output: the list, instructions.
    Info,
    /// Something happened: joined, left, busy, relayed, server lost.
    Notice,
}

/// How often a terminal's width is asked for again.
const WIDTH_CHECK: Duration = Duration::from_secs(2);

const RESET: &str = "\x1b[0m";
const NOTICE: &str = "\x1b[33m";
const PEER: &str = "\x1b[1;36m";
const DIM: &str = "\x1b[2m";

/// Writes to stdout, buffered: the main loop calls [`Ui::flush`] once per
/// batch of events. Write errors (stdout closed) are ignored: the chat goes
/// on, and EOF on stdin will end it.
pub struct Ui {
    out: io::BufWriter<io::Stdout>,
    mode: Mode,
}

enum Mode {
    Plain {
        /// A prompt is showing and nothing has ended its line yet: the next
        /// printed line must start on a fresh one.
        prompt_open: bool,
        /// Whether the terminal echoes typed lines (ending the prompt's
        /// line); piped input is not echoed.
        echoed: bool,
    },
    Terminal(Box<Term>),
}

/// The raw-mode terminal's state.
struct Term {
    editor: LineEditor,
    prompt: String,
    colour: bool,
    bell: bool,
    columns: usize,
    /// When the width was last asked for: std cannot catch SIGWINCH, so a
    /// resized terminal is noticed by asking again every few seconds.
    columns_checked: Instant,
    /// Where the last draw left the cursor on the last row.
    cursor_column: usize,
    /// Restores the terminal when the `Ui` is dropped.
    _raw: RawMode,
}

impl Ui {
    /// A raw-mode terminal UI when stdin and stdout are a terminal (and raw
    /// mode can be had), plain lines otherwise.
    pub fn new(quiet: bool) -> Ui {
        let mode = match terminal::interactive().then(RawMode::enter) {
            Some(Ok(raw)) => Mode::Terminal(Box::new(Term {
                editor: LineEditor::default(),
                prompt: String::new(),
                colour: terminal::colour_wanted(),
                bell: !quiet,
                columns: terminal::columns(),
                columns_checked: Instant::now(),
                cursor_column: 0,
                _raw: raw,
            })),
            _ => Mode::Plain {
                prompt_open: false,
                echoed: io::stdin().is_terminal(),
            },
        };
        Ui {
            out: io::BufWriter::new(io::stdout()),
            mode,
        }
    }

    /// Whether keys (not lines) are read: raw mode is on.
    pub fn reads_keys(&self) -> bool {
        matches!(self.mode, Mode::Terminal(_))
    }

    /// Prints one whole line.
    pub fn line(&mut self, kind: Kind, text: &str) {
        match &mut self.mode {
            Mode::Plain { prompt_open, .. } => {
                end_prompt_line(&mut self.out, prompt_open);
                let _ = writeln!(self.out, "{text}");
            }
            Mode::Terminal(term) => {
                let _ = write!(self.out, "\r\x1b[K");
                match (kind, term.colour) {
                    (Kind::Notice, true) => {
                        let _ = writeln!(self.out, "{NOTICE}{text}{RESET}");
                    }
                    _ => {
                        let _ = writeln!(self.out, "{text}");
                    }
                }
                term.draw(&mut self.out);
            }
        }
    }

    /// Prints a line from the peer, `name: text`. Control characters in
    /// the text are shown, not obeyed: a peer must not be able to move the
    /// cursor, retitle the window or ring bells on our terminal.
    pub fn peer_line(&mut self, name: &str, text: &str) {
        let shown;
        let text = if text.chars().any(|c| c.is_control() && c != '\t') {
            shown = visible(text);
            shown.as_str()
        } else {
            text
        };
        match &mut self.mode {
            Mode::Plain { prompt_open, .. } => {
                end_prompt_line(&mut self.out, prompt_open);
                let _ = writeln!(self.out, "{name}: {text}");
            }
            Mode::Terminal(term) => {
                let (on, off) = if term.colour { (PEER, RESET) } else { ("", "") };
                let _ = writeln!(self.out, "\r\x1b[K{on}{name}{off}: {text}");
                term.draw(&mut self.out);
            }
        }
    }

    /// Asks a question (plain mode); a terminal shows [`Ui::status`]
    /// instead.
    pub fn prompt(&mut self, text: &str) {
        if let Mode::Plain { prompt_open, .. } = &mut self.mode {
            let _ = write!(self.out, "{text}");
            *prompt_open = true;
        }
    }

    /// The prompt on the terminal's last row, which says where the user is.
    pub fn status(&mut self, prompt: &str) {
        if let Mode::Terminal(term) = &mut self.mode
            && term.prompt != prompt
        {
            term.prompt = prompt.to_string();
            term.draw(&mut self.out);
        }
    }

    /// A plain-mode line was typed (ending an echoed prompt's line).
    pub fn typed(&mut self) {
        if let Mode::Plain {
            prompt_open,
            echoed: true,
        } = &mut self.mode
        {
            *prompt_open = false;
        }
    }

    /// Applies a key to the line being typed; returns the input it
    /// completes, if any.
    pub fn key(&mut self, key: Key) -> Option<Input> {
        let Mode::Terminal(term) = &mut self.mode else {
            return None;
        };
        match term.editor.apply(key) {
            Edit::Unchanged => None,
            Edit::Changed => {
                term.draw(&mut self.out);
                None
            }
            Edit::Submit(text) => {
                // Leave the line as typed above the prompt, dimmed.
                term.echo(&mut self.out, &text, "");
                term.draw(&mut self.out);
                Some(Input::Line(text))
            }
            Edit::EndOfInput => Some(Input::Quit),
            Edit::Interrupt => {
                let text: String = term.editor.line().iter().collect();
                term.echo(&mut self.out, &text, "^C");
                for key in [Key::End, Key::KillToStart] {
                    term.editor.apply(key);
                }
                term.draw(&mut self.out);
                Some(Input::Interrupt)
            }
        }
    }

    /// Notices a resized terminal (asked every few seconds) and redraws the
    /// last row to fit.
    pub fn tick(&mut self) {
        if let Mode::Terminal(term) = &mut self.mode
            && term.columns_checked.elapsed() >= WIDTH_CHECK
        {
            term.columns_checked = Instant::now();
            let columns = terminal::columns();
            if columns != term.columns {
                // A terminal that reflows text on resize has wrapped the
                // last row: go up to where it starts and clear below.
                let up = term.cursor_column / columns;
                if up > 0 {
                    let _ = write!(self.out, "\x1b[{up}A");
                }
                let _ = write!(self.out, "\r\x1b[J");
                term.columns = columns;
                term.draw(&mut self.out);
            }
        }
    }

    /// Rings the terminal bell (not with `--quiet`, never into a pipe).
    pub fn bell(&mut self) {
        if let Mode::Terminal(term) = &self.mode
            && term.bell
        {
            let _ = write!(self.out, "\x07");
        }
    }

    /// Shows everything written since the last flush.
    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

/// `text` with control characters written as `^X` (or `\u{..}`).
fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c as u32 {
            0x09 => out.push('\t'),
            0x00..=0x1f => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            0x7f => out.push_str("^?"),
            _ if c.is_control() => out.extend(c.escape_unicode()),
            _ => out.push(c),
        }
    }
    out
}

/// In plain mode, a line printed while a prompt is open starts on a line
/// of its own.
fn end_prompt_line(out: &mut impl Write, prompt_open: &mut bool) {
    if std::mem::take(prompt_open) {
        let _ = writeln!(out);
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        if let Mode::Terminal(_) = self.mode {
            // Leave no prompt behind for the shell to write over.
            let _ = write!(self.out, "\r\x1b[K");
        }
        let _ = self.out.flush();
        // Then `RawMode` restores the terminal.
    }
}

impl Term {
    /// Draws the prompt and the line being typed on the last row, cursor
    /// where it belongs.
    fn draw(&mut self, out: &mut impl Write) {
        let (text, column) = render(
            &self.prompt,
            self.editor.line(),
            self.editor.cursor(),
            self.columns,
        );
        let _ = write!(out, "\r{text}\x1b[K\r");
        if column > 0 {
            let _ = write!(out, "\x1b[{column}C");
        }
        self.cursor_column = column;
    }

    /// Turns the last row into a permanent, dimmed record of `text` as it
    /// was typed at the current prompt, then draws an empty prompt.
    fn echo(&mut self, out: &mut impl Write, text: &str, suffix: &str) {
        let (on, off) = if self.colour { (DIM, RESET) } else { ("", "") };
        let _ = writeln!(out, "\r\x1b[K{on}{}{text}{suffix}{off}", self.prompt);
    }
}

#[cfg(test)]
mod tests {
    use super::visible;

    #[test]
    fn control_characters_from_a_peer_are_shown_not_obeyed() {
        assert_eq!(visible("a\x1b]0;owned\x07b"), "a^[]0;owned^Gb");
        assert_eq!(visible("tab\tok\x7f"), "tab\tok^?");
        assert_eq!(visible("\u{85}"), "\\u{85}");
    }
}
