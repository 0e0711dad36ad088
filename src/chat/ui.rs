//! The chat's terminal side: the stdin reader thread and the output.
//!
//! Two modes. With pipes (scripts, CI, tests), the stdin thread sends whole
//! lines and [`Ui`] prints plain lines and prompts: no escape sequence ever,
//! EOF acts as `q`. When stdin and stdout are a terminal, the terminal goes
//! into raw mode: the stdin thread sends decoded [`Key`]s, and [`Ui`] keeps
//! the line being typed whole on the last row, under a prompt that says
//! where the user is, printing everything else above it. Either way the
//! main loop is the only code that prints, through [`Ui`], and every text
//! passes the one gate for untrusted text ([`crate::text::shown`]) on the
//! way. The main loop writes the bytes itself through a non-blocking
//! handle while nothing is queued, and a writer thread takes whatever does
//! not go at once, so a terminal or pipe that does not keep up never
//! stalls the main loop.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::completion::NamesTyped;
use super::core::{Kind, LineFor, Typed};
use super::editor::{
    Edit, Key, Keyboard, LineEditor, PASTE_GAP, one_pasted_line, pasted_lines, without_escapes,
};
use super::terminal::{self, AUTOWRAP_OFF, AUTOWRAP_ON, BRACKETED_PASTE_OFF, RawMode};
use super::wrap::{Layout, Row};
use super::{Event, Events};
use crate::connection::whole_lines;
use crate::lines::Lines;
use crate::protocol::action_of;
use crate::text::{is_printable_ascii_lines, shown};
use crate::unicode::width;

/// Longest piece of typed text read at once; a longer line arrives as several
/// pieces, none of it lost.
const MAX_INPUT: u64 = 64 * 1024;

/// Most typed lines handed to the main loop in one event.
const TYPED_PER_EVENT: usize = 2048;

/// Bytes of stdin read at once: a batch of piped lines is what is here,
/// at most this and one line more.
const STDIN_BUFFER: usize = 128 * 1024;

/// How long leaving waits for the last output to reach stdout.
const LAST_OUTPUT_WAIT: Duration = Duration::from_secs(2);

/// Batches of typed lines the stdin thread may have handed on and not yet
/// had taken: a script piping faster than the peer reads waits here, so
/// what it typed is never piled up in memory.
const STDIN_CREDITS: usize = 2;

/// Bytes of typed lines the stdin thread may have handed on at most, not
/// yet taken: what the main loop may still get after it stopped giving
/// credits back.
/// (A batch is what the buffer holds and one line read on its own, which
/// may triple when bytes that are not UTF-8 become U+FFFD.)
pub const MOST_TYPED_IN_FLIGHT: usize = STDIN_CREDITS * (STDIN_BUFFER + 3 * MAX_INPUT as usize);

/// The main loop's side of the stdin thread's credits: one given back per
/// batch of lines taken.
pub struct StdinCredits(mpsc::SyncSender<()>);

impl StdinCredits {
    pub fn give(&self) {
        let _ = self.0.try_send(());
    }
}

/// Starts the thread that reads stdin: keys when `keys` (raw mode), lines
/// otherwise.
pub fn spawn_stdin(events: Events, keys: bool) -> io::Result<StdinCredits> {
    let (credits, credit_inbox) = mpsc::sync_channel(STDIN_CREDITS);
    for _ in 0..STDIN_CREDITS {
        let _ = credits.try_send(());
    }
    thread::Builder::new().name("stdin".into()).spawn(move || {
        if keys {
            read_keys(events)
        } else {
            // A terminal in line mode (TERM=dumb) lets arrow keys through
            // as escape sequences: they are dropped, never sent as text.
            // Piped input is passed on as it is.
            let escapes = if io::stdin().is_terminal() {
                Escapes::Drop
            } else {
                Escapes::Keep
            };
            read_lines(events, escapes, credit_inbox)
        }
    })?;
    Ok(StdinCredits(credits))
}

/// What line mode does with escape sequences in typed lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escapes {
    Drop,
    Keep,
}

fn read_lines(events: Events, escapes: Escapes, credits: mpsc::Receiver<()>) {
    let mut stdin = io::BufReader::with_capacity(STDIN_BUFFER, io::stdin());
    let mut spans = Vec::new();
    loop {
        // Every line already read goes in one event, so pasted or piped
        // text costs the main loop one wake-up per batch.
        let mut batch = TypedBatch::default();
        loop {
            // Lines already buffered first, copied straight into the
            // batch; it goes once they are used up, rather than wait with
            // them for more input.
            spans.clear();
            let room = TYPED_PER_EVENT - batch.len();
            let block = whole_lines(stdin.buffer(), MAX_INPUT as usize, room, &mut spans);
            match escapes {
                // Piped input, the bulk: the lines' block copied whole.
                Escapes::Keep => batch.push_block(block, &spans),
                Escapes::Drop => spans
                    .iter()
                    .for_each(|&(s, e)| batch.push_line(&without_escapes(&block[s..e]))),
            }
            let used = block.len();
            if used > 0 {
                stdin.consume(used);
            } else if batch.is_empty() {
                match read_input(&mut stdin) {
                    Typed::Line(line) if escapes == Escapes::Drop => {
                        batch.push_line(&without_escapes(&line))
                    }
                    Typed::Line(line) => batch.push_line(&line),
                    input => batch.push(input),
                }
            } else {
                break;
            }
            if batch.eof || batch.len() >= TYPED_PER_EVENT {
                break;
            }
        }
        let eof = batch.eof;
        // Wait until the main loop has room for another batch.
        if credits.recv().is_err() || events.send(Event::Typed(batch)).is_err() || eof {
            return;
        }
    }
}

/// Reads one line; a line longer than [`MAX_INPUT`] is read to its end and
/// handed on as [`Typed::TooLong`], so that nothing of it is half-sent.
fn read_input<R: BufRead>(stdin: &mut R) -> Typed {
    if let Ok(buf) = stdin.fill_buf()
        && let Some((line, used)) = whole_line(buf)
    {
        let typed = Typed::Line(line.into_owned());
        stdin.consume(used);
        return typed;
    }
    let mut bytes = Vec::new();
    match io::Read::take(&mut *stdin, MAX_INPUT + 1).read_until(b'\n', &mut bytes) {
        Ok(0) | Err(_) => Typed::Eof,
        Ok(n) if n as u64 > MAX_INPUT && bytes.last() != Some(&b'\n') => {
            // The rest of the line is counted and thrown away, a buffer at a
            // time, however long it is.
            let mut total = n;
            while let Ok(buf) = stdin.fill_buf() {
                if buf.is_empty() {
                    break;
                }
                let (used, done) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                stdin.consume(used);
                total += used;
                if done {
                    break;
                }
            }
            Typed::TooLong(total)
        }
        Ok(_) => {
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
            }
            Typed::Line(
                String::from_utf8(bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            )
        }
    }
}

/// Typed input as the stdin thread hands it on: the lines of a batch in one
/// buffer, which the main loop sends on whole, or makes into a `String`
/// each on its own thread, the one that frees them (the allocator's fast
/// path; a string made here and freed there costs several times as much).
#[derive(Default)]
pub struct TypedBatch {
    lines: Lines,
    items: Vec<Item>,
    /// Lines and other input in all.
    len: usize,
    /// The batch ends with [`Typed::Eof`].
    eof: bool,
}

enum Item {
    /// Lines in a row: the next this many of `lines`.
    Lines(usize),
    Other(Typed),
}

impl TypedBatch {
    pub fn of(typed: Typed) -> TypedBatch {
        let mut batch = TypedBatch::default();
        batch.push(typed);
        batch
    }

    fn push_line(&mut self, line: &str) {
        self.lines.push(line);
        self.count_lines(1);
    }

    /// Lines in a row, and the block they were read in, taken whole
    /// ([`Lines::push_block`]).
    fn push_block(&mut self, block: &str, spans: &[(usize, usize)]) {
        if spans.is_empty() {
            return;
        }
        self.lines.push_block(block, spans.iter().copied());
        self.count_lines(spans.len());
    }

    /// `n` more lines in the run of them at the end.
    fn count_lines(&mut self, n: usize) {
        match self.items.last_mut() {
            Some(Item::Lines(run)) => *run += n,
            _ => self.items.push(Item::Lines(n)),
        }
        self.len += n;
    }

    fn push(&mut self, typed: Typed) {
        self.eof |= typed == Typed::Eof;
        match typed {
            Typed::Line(line) => self.push_line(&line),
            other => {
                self.items.push(Item::Other(other));
                self.len += 1;
            }
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What was typed, in order, lines in a row together: a batch of
    /// nothing but lines (a piped burst) is handed on whole, uncopied.
    pub fn into_parts(self) -> Vec<TypedPart> {
        let TypedBatch { lines, items, .. } = self;
        if let [Item::Lines(_)] = items[..] {
            return vec![TypedPart::Lines(lines)];
        }
        let mut texts = lines.iter();
        items
            .into_iter()
            .map(|item| match item {
                Item::Lines(n) => TypedPart::Lines(texts.by_ref().take(n).collect()),
                Item::Other(typed) => TypedPart::Other(typed),
            })
            .collect()
    }
}

/// A part of a [`TypedBatch`]: lines in a row, or anything else typed.
#[derive(Debug, PartialEq)]
pub enum TypedPart {
    Lines(Lines),
    Other(Typed),
}

/// The first line of `buf` and the bytes it takes, if it is whole there
/// (borrowed when it is valid UTF-8, the usual case).
fn whole_line(buf: &[u8]) -> Option<(std::borrow::Cow<'_, str>, usize)> {
    let end = line_end(buf).filter(|&end| end as u64 <= MAX_INPUT)?;
    let mut line = &buf[..end];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    // Checked whole first: the lossy walk is only for bad bytes.
    let text = match std::str::from_utf8(line) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(line),
    };
    Some((text, end + 1))
}

/// Where the first line in `buf` ends (its `\n`), found a word at a time
/// (std's `memchr`, reached through [`BufRead::skip_until`]).
fn line_end(buf: &[u8]) -> Option<usize> {
    let mut rest = buf;
    let skipped = rest.skip_until(b'\n').ok()?;
    (skipped > 0 && buf[skipped - 1] == b'\n').then(|| skipped - 1)
}

/// Reads of the terminal waiting for the key decoder at most.
const READS_WAITING: usize = 64;

/// One read of the terminal, and whether it came within [`PASTE_GAP`] of
/// the read before (the read waited less than that for input).
struct Chunk {
    bytes: Vec<u8>,
    joined: bool,
}

/// Reads the terminal; a thread of its own decodes what was read, so that
/// it can wait [`PASTE_GAP`] for more input after an Enter while this one
/// waits in `read`. Ends (and so ends the decoder) when the terminal goes.
fn read_keys(events: Events) {
    let (reads, inbox) = mpsc::sync_channel(READS_WAITING);
    let decoder = thread::Builder::new()
        .name("keys".into())
        .spawn(move || decode_keys(&events, &inbox));
    if decoder.is_err() {
        return;
    }
    let mut stdin = io::stdin();
    let mut buf = [0u8; 4096];
    loop {
        let asked = Instant::now();
        let read = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => Chunk {
                bytes: buf[..n].to_vec(),
                joined: asked.elapsed() < PASTE_GAP,
            },
        };
        if reads.send(read).is_err() {
            return;
        }
    }
}

/// Decodes the reads into keys for the main loop; keys held after an Enter
/// are given once [`PASTE_GAP`] passes with no more input.
fn decode_keys(events: &Events, reads: &mpsc::Receiver<Chunk>) {
    let mut keyboard = Keyboard::default();
    loop {
        let read = if keyboard.holding() {
            reads.recv_timeout(PASTE_GAP)
        } else {
            reads
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        };
        let keys = match read {
            Ok(read) => keyboard.feed(&read.bytes, read.joined),
            Err(mpsc::RecvTimeoutError::Timeout) => keyboard.pause(),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The terminal went away: that is EOF, after what was held.
                let held = keyboard.pause();
                if !held.is_empty() {
                    let _ = events.send(Event::Keys(held));
                }
                let _ = events.send(Event::Typed(TypedBatch::of(Typed::Eof)));
                return;
            }
        };
        if !keys.is_empty() && events.send(Event::Keys(keys)).is_err() {
            return;
        }
    }
}

/// Columns the prompt and the line keep at least beside the peer's typing
/// note; a narrower row shows no note.
const MIN_LINE_ROOM: usize = 24;
/// The note as it fits in `columns` beside the line (a blank column
/// apart): a note too wide loses its last parts, each set off by two
/// spaces (a transfer's time left, then its rate), and one that still
/// does not fit is not shown.
fn fit_note(mut note: String, columns: usize) -> Option<String> {
    loop {
        if columns > width(&note) {
            return Some(note);
        }
        let (shorter, _) = note.rsplit_once("  ")?;
        note = shorter.to_string();
    }
}

/// Most lines a paste sends into a chat without asking first, as irssi
/// does: a longer one asks `send 2,000 lines? y/n`.
pub const MOST_LINES_UNASKED: usize = 20;

/// A paste held until the user says whether to send it.
struct HeldPaste {
    text: String,
    lines: usize,
}

impl HeldPaste {
    fn question(&self) -> String {
        format!("send {} lines? y/n ", grouped(self.lines))
    }

    fn not_sent(&self) -> String {
        format!("The {} pasted lines were not sent.", grouped(self.lines))
    }
}

/// `n` with its thousands set apart: `2,000`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Most names a second Tab lists; more are counted.
const MOST_MATCHES_SHOWN: usize = 100;

/// Where names are typed, for what a typed line goes to.
fn names_typed(typing: LineFor) -> NamesTyped {
    match typing {
        LineFor::List => NamesTyped::FirstWordAndArgument,
        LineFor::Chat => NamesTyped::Argument,
        LineFor::Name | LineFor::Answer => NamesTyped::Nowhere,
    }
}

/// How often a terminal's width is asked for again.
const WIDTH_CHECK: Duration = Duration::from_secs(2);

const RESET: &str = "\x1b[0m";
const NOTICE: &str = "\x1b[33m";
const PEER: &str = "\x1b[1;36m";
const DIM: &str = "\x1b[2m";
const BRACKETED_PASTE_ON: &str = "\x1b[?2004h";
const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";

/// Writes to stdout, buffered: the main loop calls [`Ui::flush`] once per
/// batch of events, which writes what goes without waiting and hands the
/// rest to the stdout writer thread.
/// Write errors (stdout closed) are ignored: the chat goes on, and EOF on
/// stdin will end it.
pub struct Ui {
    out: Vec<u8>,
    stdout: StdoutWriter,
    mode: Mode,
}

/// Output bytes not yet on stdout beyond which peers' lines are no longer
/// taken (their readers wait, and TCP slows the peers down).
pub const STDOUT_BACKLOG: usize = 1024 * 1024;

/// The thread that writes to stdout, and how much it has still to write.
/// While it has nothing queued, the main loop writes itself, through a
/// non-blocking handle on the same pipe or terminal, as much as goes
/// without waiting; only the rest is the thread's. Printing then costs no
/// thread hand-off, and still never stalls the main loop.
struct StdoutWriter {
    bytes: Option<mpsc::Sender<Vec<u8>>>,
    direct: Option<std::fs::File>,
    queued: Arc<AtomicUsize>,
    done: mpsc::Receiver<()>,
}

impl StdoutWriter {
    fn start(events: Events) -> StdoutWriter {
        let mut writer = StdoutWriter::start_on(io::stdout(), events);
        if writer.bytes.is_some() {
            writer.direct = non_blocking_stdout();
        }
        writer
    }

    /// The thread writing to `out`. Once what it has left falls below
    /// [`STDOUT_BACKLOG`] it says so ([`Event::StdoutDrained`]): the main
    /// loop, which stopped taking peers' lines, takes them again at once
    /// rather than at its next wake-up for something else.
    fn start_on(mut out: impl Write + Send + 'static, events: Events) -> StdoutWriter {
        let (bytes, inbox) = mpsc::channel::<Vec<u8>>();
        let (finished, done) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let written = queued.clone();
        let spawned = thread::Builder::new().name("stdout".into()).spawn(move || {
            for chunk in inbox {
                let _ = out.write_all(&chunk).and_then(|()| out.flush());
                let before = written.fetch_sub(chunk.len(), Ordering::AcqRel);
                if before >= STDOUT_BACKLOG && before - chunk.len() < STDOUT_BACKLOG {
                    // A full inbox means the loop is awake and will look.
                    let _ = events.try_send(Event::StdoutDrained);
                }
            }
            let _ = finished.send(());
        });
        StdoutWriter {
            // Without a thread, `flush` writes itself.
            bytes: spawned.is_ok().then_some(bytes),
            direct: None,
            queued,
            done,
        }
    }

    /// Waits, at most `most`, until everything handed over is written.
    fn wait_written(&self, most: Duration) {
        let until = Instant::now() + most;
        while self.queued.load(Ordering::Acquire) > 0 && Instant::now() < until {
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn write(&mut self, mut chunk: Vec<u8>) {
        if let Some(direct) = &mut self.direct
            && self.queued.load(Ordering::Acquire) == 0
        {
            let mut written = 0;
            while written < chunk.len() {
                match direct.write(&chunk[written..]) {
                    Ok(0) => break,
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        if e.kind() != io::ErrorKind::WouldBlock {
                            // Closed or broken: the thread finds out too.
                            self.direct = None;
                        }
                        break;
                    }
                }
            }
            if written == chunk.len() {
                return;
            }
            chunk.drain(..written);
        }
        match &self.bytes {
            Some(bytes) => {
                self.queued.fetch_add(chunk.len(), Ordering::AcqRel);
                if let Err(mpsc::SendError(chunk)) = bytes.send(chunk) {
                    self.queued.fetch_sub(chunk.len(), Ordering::AcqRel);
                }
            }
            None => {
                let mut stdout = io::stdout();
                let _ = stdout.write_all(&chunk).and_then(|()| stdout.flush());
            }
        }
    }
}

/// A second, non-blocking handle on stdout, when it is a pipe or a
/// terminal: opened anew through `/proc/self/fd/1`, it has a file
/// description of its own, so the flag never reaches the shared stdout
/// (or the shell's). Not for files (their offset is not shared) or sockets
/// (which cannot be opened so), and only where the flags' values are known.
fn non_blocking_stdout() -> Option<std::fs::File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    // `O_NONBLOCK | O_NOCTTY` in the kernel's generic fcntl.h, which these
    // architectures use; std has no names for them.
    const FLAGS: i32 = 0o4000 | 0o400;
    let known = cfg!(all(
        target_os = "linux",
        any(
            target_arch = "x86_64",
            target_arch = "x86",
            target_arch = "aarch64",
            target_arch = "arm",
            target_arch = "riscv64"
        )
    ));
    if !known {
        return None;
    }
    let path = "/proc/self/fd/1";
    let kind = std::fs::metadata(path).ok()?.file_type();
    if !(kind.is_fifo() || kind.is_char_device()) {
        return None;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(FLAGS)
        .open(path)
        .ok()
}

impl Drop for StdoutWriter {
    fn drop(&mut self) {
        // The last lines go out before the program ends, but a stdout that
        // nobody reads cannot hold the exit for long.
        if self.bytes.take().is_some() {
            let _ = self.done.recv_timeout(LAST_OUTPUT_WAIT);
        }
    }
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
    /// The last row needs drawing again: done once per batch, in
    /// [`Ui::flush`], however many keys and lines the batch held.
    dirty: bool,
    /// The half-typed line set aside while a call rings.
    aside: Option<String>,
    /// The line being typed as last handed on ([`Ui::draft_changed`]).
    draft_seen: String,
    /// `bob is typing…`, shown at the right of the last row (through the
    /// gate for untrusted text when drawn).
    typing_note: Option<String>,
    /// A paste into a chat of more than [`MOST_LINES_UNASKED`] lines,
    /// held while the last row asks whether to send it.
    asking: Option<HeldPaste>,
    /// Restores the terminal when the `Ui` is dropped.
    raw: RawMode,
}

impl Ui {
    /// A raw-mode terminal UI when stdin and stdout are a terminal (and raw
    /// mode can be had), plain lines otherwise.
    pub fn new(quiet: bool, events: Events) -> Ui {
        let mode = match terminal::interactive().then(RawMode::enter) {
            Some(Ok(raw)) => Mode::Terminal(Box::new(Term {
                editor: LineEditor::default(),
                aside: None,
                draft_seen: String::new(),
                typing_note: None,
                asking: None,
                prompt: String::new(),
                colour: terminal::colour_wanted(),
                bell: !quiet,
                columns: terminal::columns(),
                columns_checked: Instant::now(),
                cursor_column: 0,
                dirty: true,
                raw,
            })),
            _ => Mode::Plain {
                prompt_open: false,
                echoed: io::stdin().is_terminal(),
            },
        };
        let mut out = Vec::new();
        if let Mode::Terminal(_) = mode {
            // Bracketed paste: pasted text arrives marked, as one Key::Paste.
            out.extend_from_slice(BRACKETED_PASTE_ON.as_bytes());
        }
        Ui {
            out,
            stdout: StdoutWriter::start(events),
            mode,
        }
    }

    /// Whether keys (not lines) are read: raw mode is on.
    pub fn reads_keys(&self) -> bool {
        matches!(self.mode, Mode::Terminal(_))
    }

    /// Bytes handed to stdout and not yet written: while many are, the
    /// main loop stops taking more from peers.
    pub fn backlog(&self) -> usize {
        self.stdout.queued.load(Ordering::Acquire) + self.out.len()
    }

    /// Prints one whole line.
    pub fn line(&mut self, kind: Kind, text: &str) {
        let text = shown(text);
        match &mut self.mode {
            Mode::Plain { prompt_open, .. } => {
                end_prompt_line(&mut self.out, prompt_open);
                let _ = writeln!(self.out, "{text}");
            }
            Mode::Terminal(term) => {
                let (on, off) = match (kind, term.colour) {
                    (Kind::Notice, true) => (NOTICE, RESET),
                    _ => ("", ""),
                };
                let _ = write!(self.out, "\r\x1b[K{AUTOWRAP_OFF}{on}");
                term.write_rows(&mut self.out, &text, Layout::notice(term.columns));
                let _ = write!(self.out, "{off}{AUTOWRAP_ON}\r\n");
                term.dirty = true;
            }
        }
    }

    /// Prints a line from the peer, `name: text`. Control characters in
    /// the text are shown, not obeyed: a peer must not be able to move the
    /// cursor, retitle the window or ring bells on our terminal.
    /// `at` is the time (`HH:MM`) to show before it, with `--timestamps`.
    /// A peer's line as `name: text`, or, for an action (`/me waves`), as
    /// `* name waves`.
    fn peer_line(&mut self, at: Option<&str>, name: &str, text: &str) {
        let (lead, text) = match action_of(name, text) {
            Some(action) => ("* ", action),
            None => ("", text),
        };
        let (name, text) = (shown(name), shown(text));
        let after = if lead.is_empty() { ": " } else { " " };
        let at = at.map(|at| format!("{at} ")).unwrap_or_default();
        match &mut self.mode {
            Mode::Plain { prompt_open, .. } => {
                end_prompt_line(&mut self.out, prompt_open);
                // Piped output is the bulk: pieces copied, no formatting.
                for piece in [&at, lead, &*name, after, &*text, "\n"] {
                    self.out.extend_from_slice(piece.as_bytes());
                }
            }
            Mode::Terminal(term) => {
                let (on, off) = if term.colour { (PEER, RESET) } else { ("", "") };
                let _ = write!(
                    self.out,
                    "\r\x1b[K{AUTOWRAP_OFF}{at}{lead}{on}{name}{off}{after}"
                );
                let prefix = width(&at) + lead.len() + width(&name) + after.len();
                term.write_rows(&mut self.out, &text, Layout::under(prefix, term.columns));
                let _ = write!(self.out, "{AUTOWRAP_ON}\r\n");
                term.dirty = true;
            }
        }
    }

    /// A peer's lines, each as [`Ui::peer_line`] shows it. Piped output of
    /// plain text, the bulk, is checked in one pass for the batch.
    pub fn peer_lines(&mut self, at: Option<&str>, name: &str, texts: &Lines) {
        let prompt_open = match &mut self.mode {
            Mode::Plain { prompt_open, .. } if is_printable_ascii_lines(texts.buffer()) => {
                prompt_open
            }
            _ => return texts.iter().for_each(|text| self.peer_line(at, name, text)),
        };
        end_prompt_line(&mut self.out, prompt_open);
        let at = at.map(|at| format!("{at} ")).unwrap_or_default();
        let name = shown(name);
        let before = format!("{at}{name}: ");
        self.out
            .reserve(texts.text_len() + texts.len() * (before.len() + 1));
        for text in texts.iter() {
            if let Some(action) = action_of(&name, text) {
                for piece in [&at, "* ", &*name, " ", action, "\n"] {
                    self.out.extend_from_slice(piece.as_bytes());
                }
                continue;
            }
            self.out.extend_from_slice(before.as_bytes());
            self.out.extend_from_slice(text.as_bytes());
            self.out.push(b'\n');
        }
    }

    /// Asks a question (plain mode); a terminal shows [`Ui::status`]
    /// instead.
    pub fn prompt(&mut self, text: &str) {
        if let Mode::Plain { prompt_open, .. } = &mut self.mode {
            let _ = write!(self.out, "{}", shown(text));
            *prompt_open = true;
        }
    }

    /// The prompt on the terminal's last row, which says where the user
    /// is, and what a typed line goes to there: a paste held for a chat
    /// that is over is not sent.
    pub fn status(&mut self, prompt: &str, typing: LineFor) {
        let Mode::Terminal(term) = &mut self.mode else {
            return;
        };
        if term.prompt != prompt {
            term.prompt = shown(prompt).into_owned();
            term.dirty = true;
        }
        if typing != LineFor::Chat
            && let Some(held) = term.asking.take()
        {
            term.dirty = true;
            self.line(Kind::Notice, &held.not_sent());
        }
    }

    /// The line being typed, when it changed since this was last asked: the
    /// core tells the peer whether we are typing. Always `None` in plain
    /// mode, so a piped chat never says it types.
    pub fn draft_changed(&mut self) -> Option<String> {
        let Mode::Terminal(term) = &mut self.mode else {
            return None;
        };
        if term.editor.line() == term.draft_seen {
            return None;
        }
        term.draft_seen = term.editor.line().to_string();
        Some(term.draft_seen.clone())
    }

    /// Shows `note` (`bob is typing…`) at the right of the prompt row, or
    /// takes it down (`None`).
    pub fn peer_typing(&mut self, note: Option<&str>) {
        if let Mode::Terminal(term) = &mut self.mode
            && term.typing_note.as_deref() != note
        {
            term.typing_note = note.map(str::to_string);
            term.dirty = true;
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
    /// completes, if any: one line for Enter, one for each line a paste
    /// completed. `typing` says what a line goes to where the user is, and
    /// `names` gives the names a Tab completes from (asked only for a Tab).
    ///
    /// Pasted lines are text, never commands: they go on as
    /// [`Typed::Pasted`], which a chat sends as it is. Where a name or a
    /// command is typed, a paste of one line is taken as typed, without its
    /// line break, and waits for ENTER; a longer one is refused there (by
    /// the core). A paste of more than [`MOST_LINES_UNASKED`] lines into a
    /// chat asks first.
    pub fn key(
        &mut self,
        key: Key,
        typing: LineFor,
        names: impl FnOnce() -> Vec<String>,
    ) -> Vec<Typed> {
        let Mode::Terminal(term) = &mut self.mode else {
            return Vec::new();
        };
        if let Some(held) = term.asking.take() {
            return self.answer_paste(held, key);
        }
        let edit = match key {
            Key::Paste(text) => match typing {
                LineFor::Name | LineFor::List => match one_pasted_line(&text) {
                    Some(line) => term.editor.apply(Key::Paste(line.to_string())),
                    None => term.editor.apply(Key::Paste(text)),
                },
                LineFor::Chat if pasted_lines(&text) > MOST_LINES_UNASKED => {
                    let lines = pasted_lines(&text);
                    term.asking = Some(HeldPaste { text, lines });
                    term.dirty = true;
                    return Vec::new();
                }
                _ => term.editor.apply(Key::Paste(text)),
            },
            Key::Tab => term.editor.complete(&names(), names_typed(typing)),
            key => term.editor.apply(key),
        };
        self.edit(edit)
    }

    /// A key while a long paste waits: `y` sends it, `n`, Ctrl-C or Ctrl-D
    /// drops it; other keys leave the question open.
    fn answer_paste(&mut self, held: HeldPaste, key: Key) -> Vec<Typed> {
        let Mode::Terminal(term) = &mut self.mode else {
            return Vec::new();
        };
        term.dirty = true;
        match key {
            Key::Char('y' | 'Y') => {
                let edit = term.editor.apply(Key::Paste(held.text));
                self.edit(edit)
            }
            Key::Char('n' | 'N') | Key::Interrupt | Key::EndOfInput => {
                self.line(Kind::Notice, &held.not_sent());
                Vec::new()
            }
            key => {
                term.asking = Some(held);
                if let Key::Redraw | Key::Suspend = key {
                    let edit = term.editor.apply(key);
                    return self.edit(edit);
                }
                Vec::new()
            }
        }
    }

    /// Shows what a key did to the line, and hands on what it completed.
    fn edit(&mut self, edit: Edit) -> Vec<Typed> {
        let Mode::Terminal(term) = &mut self.mode else {
            return Vec::new();
        };
        match edit {
            Edit::Unchanged => Vec::new(),
            Edit::Changed => {
                term.dirty = true;
                Vec::new()
            }
            Edit::Redraw => {
                let _ = write!(self.out, "{CLEAR_SCREEN}");
                term.dirty = true;
                Vec::new()
            }
            Edit::Submit(text) => {
                // Leave the line as typed above the prompt, dimmed.
                term.echo(&mut self.out, &text, "");
                vec![Typed::Line(text)]
            }
            Edit::SubmitPasted(lines) => lines
                .into_iter()
                .map(|line| {
                    term.echo(&mut self.out, &line, "");
                    Typed::Pasted(line)
                })
                .collect(),
            Edit::EndOfInput => vec![Typed::Quit],
            Edit::Interrupt => {
                let text = term.editor.set_aside();
                term.echo(&mut self.out, &text, "^C");
                vec![Typed::Interrupt]
            }
            Edit::Suspend => {
                self.suspend();
                Vec::new()
            }
            Edit::Matches(names) => {
                let mut text = names
                    .iter()
                    .take(MOST_MATCHES_SHOWN)
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join("  ");
                if names.len() > MOST_MATCHES_SHOWN {
                    let more = grouped(names.len() - MOST_MATCHES_SHOWN);
                    text.push_str(&format!("  … and {more} more"));
                }
                self.line(Kind::Info, &text);
                Vec::new()
            }
        }
    }

    /// Ctrl-Z: the screen and terminal are put back as on leaving, the
    /// program stops until the shell continues it, and then the terminal
    /// is set up again and the last row drawn anew.
    fn suspend(&mut self) {
        let Mode::Terminal(term) = &mut self.mode else {
            return;
        };
        term.dirty = false;
        let _ = write!(self.out, "\r\x1b[K{BRACKETED_PASTE_OFF}");
        self.flush();
        // All of it on the screen before the shell writes there.
        self.stdout.wait_written(LAST_OUTPUT_WAIT);
        let Mode::Terminal(term) = &mut self.mode else {
            return;
        };
        let stopped = term.raw.suspend();
        let _ = write!(self.out, "{BRACKETED_PASTE_ON}");
        // The terminal may have been resized meanwhile.
        term.columns = terminal::columns();
        term.columns_checked = Instant::now();
        term.dirty = true;
        if let Err(e) = stopped {
            self.line(Kind::Notice, &format!("Cannot suspend: {e}."));
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
                term.dirty = true;
            }
        }
    }

    /// Sets the half-typed line aside (a call rings: what was typed for the
    /// list must not be answered with or sent).
    pub fn set_aside(&mut self) {
        if let Mode::Terminal(term) = &mut self.mode
            && term.aside.is_none()
            && !term.editor.line().is_empty()
        {
            term.aside = Some(term.editor.set_aside());
            term.dirty = true;
        }
    }

    /// A chat ended that the user did not end: the line half typed for it
    /// goes to the history, with one notice.
    pub fn shelve(&mut self) {
        if let Mode::Terminal(term) = &mut self.mode
            && term.editor.shelve()
        {
            term.dirty = true;
            self.line(
                Kind::Notice,
                "(what you were typing was not sent; ↑ brings it back)",
            );
        }
    }

    /// Back at the list: the line set aside is typed again (or, if
    /// something was typed since, kept in the history).
    pub fn bring_back(&mut self) {
        if let Mode::Terminal(term) = &mut self.mode
            && let Some(text) = term.aside.take()
        {
            term.editor.bring_back(&text);
            term.dirty = true;
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

    /// Shows everything written since the last flush, and the last row
    /// drawn again if anything changed it.
    pub fn flush(&mut self) {
        if let Mode::Terminal(term) = &mut self.mode
            && std::mem::take(&mut term.dirty)
        {
            term.draw(&mut self.out);
        }
        if !self.out.is_empty() {
            self.stdout.write(std::mem::take(&mut self.out));
        }
    }
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
        if let Mode::Terminal(term) = &mut self.mode {
            // Leave no prompt behind for the shell to write over.
            term.dirty = false;
            let _ = write!(self.out, "\r\x1b[K{BRACKETED_PASTE_OFF}");
        }
        self.flush();
        // Then the stdout writer finishes, and `RawMode` restores the
        // terminal.
    }
}

impl Term {
    /// Draws the prompt and the line being typed on the last row, cursor
    /// where it belongs. The row is never as wide as the terminal, so it
    /// never wraps, and a resize leaves no stale rows of it.
    fn draw(&mut self, out: &mut impl Write) {
        // The peer's typing note takes the right of the row, a blank column
        // apart, where the row is wide enough to leave the line room.
        let note = self.typing_note.as_deref().and_then(|note| {
            // The prompt is kept whole beside it (the editor gives a
            // prompt at most half the line's columns).
            let room = MIN_LINE_ROOM.max(2 * width(&self.prompt) + 2);
            fit_note(shown(note).into_owned(), self.columns.saturating_sub(room))
        });
        let columns = note
            .as_ref()
            .map_or(self.columns, |note| self.columns - width(note) - 1);
        let rendered = match &self.asking {
            // The question alone: the line being typed comes back after.
            Some(held) => LineEditor::default().render(&held.question(), columns),
            None => self.editor.render(&self.prompt, columns),
        };
        let _ = write!(out, "\r{}\x1b[K", rendered.text);
        if let Some(note) = note {
            let (on, off) = if self.colour { (DIM, RESET) } else { ("", "") };
            // Ends a column short of the edge, as the line does.
            let at = self.columns - width(&note);
            let _ = write!(out, "\x1b[{at}G{on}{note}{off}");
        }
        let _ = write!(out, "\r");
        if rendered.cursor_column > 0 {
            let _ = write!(out, "\x1b[{}C", rendered.cursor_column);
        }
        self.cursor_column = rendered.cursor_column;
    }

    /// Writes `text` in the rows `layout` cuts it into (see `wrap.rs`),
    /// the terminal's autowrap being off: each row but the first after a
    /// line break of our own and the indent, so no word is split and no
    /// row the text reaches starts at column 0. Only an over-long word
    /// (a URL) is left to the terminal to wrap, so that it copies whole.
    fn write_rows(&self, out: &mut impl Write, text: &str, layout: Layout) {
        for (i, row) in layout.rows(text).into_iter().enumerate() {
            if i > 0 {
                let _ = write!(out, "\r\n\x1b[K{:1$}", "", layout.indent);
            }
            let _ = match row {
                Row::Fits(row) => write!(out, "{row}"),
                Row::Overlong(word) => write!(out, "{AUTOWRAP_ON}{word}{AUTOWRAP_OFF}"),
            };
        }
    }

    /// Turns the last row into a permanent, dimmed record of `text` as it
    /// was typed at the current prompt; the prompt is drawn again below.
    /// The text goes on under itself, after a prompt that takes half the
    /// row at most; a longer prompt is wrapped with it, as a notice is.
    fn echo(&mut self, out: &mut impl Write, text: &str, suffix: &str) {
        let (on, off) = if self.colour { (DIM, RESET) } else { ("", "") };
        let _ = write!(out, "\r\x1b[K{AUTOWRAP_OFF}{on}");
        let prompt = width(&self.prompt);
        if prompt <= self.columns / 2 {
            let _ = write!(out, "{}", self.prompt);
            let layout = Layout::under(prompt, self.columns);
            self.write_rows(out, &format!("{text}{suffix}"), layout);
        } else {
            let echoed = format!("{}{text}{suffix}", self.prompt);
            self.write_rows(out, &echoed, Layout::notice(self.columns));
        }
        let _ = write!(out, "{off}{AUTOWRAP_ON}\r\n");
        self.dirty = true;
    }
}

#[cfg(test)]
mod tests {
    use super::{
        Event, Lines, Ordering, STDOUT_BACKLOG, StdoutWriter, Typed, TypedBatch, TypedPart,
        fit_note, grouped,
    };
    use std::io::{self, Write};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// Output that takes one write each time it is let.
    struct Gated(mpsc::Receiver<()>);

    impl Write for Gated {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _ = self.0.recv();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_stdout_writer_says_when_it_has_caught_up_so_peers_are_read_again_at_once() {
        let (open, gate) = mpsc::channel();
        let (events, inbox) = mpsc::sync_channel(8);
        let mut writer = StdoutWriter::start_on(Gated(gate), events);
        let chunk = STDOUT_BACKLOG / 2;
        for _ in 0..3 {
            writer.write(vec![b'x'; chunk]);
        }
        let left = |bytes| {
            let until = Instant::now() + Duration::from_secs(10);
            while writer.queued.load(Ordering::Acquire) != bytes {
                assert!(Instant::now() < until, "the writer never got to {bytes}");
                std::thread::yield_now();
            }
        };
        // Still at the mark: nothing to say yet.
        open.send(()).unwrap();
        left(2 * chunk);
        assert!(inbox.try_recv().is_err());
        // Below it: said once.
        open.send(()).unwrap();
        let said = inbox.recv_timeout(Duration::from_secs(10));
        assert!(matches!(said, Ok(Event::StdoutDrained)));
        open.send(()).unwrap();
        left(0);
        assert!(inbox.try_recv().is_err());
    }

    #[test]
    fn the_paste_question_sets_thousands_apart() {
        for (n, text) in [
            (0, "0"),
            (21, "21"),
            (999, "999"),
            (2000, "2,000"),
            (65_536, "65,536"),
            (1_048_576, "1,048,576"),
        ] {
            assert_eq!(grouped(n), text);
        }
    }

    #[test]
    fn a_batch_hands_on_lines_in_a_row_together_and_the_rest_in_between() {
        let mut batch = TypedBatch::default();
        ["one", "two"].into_iter().for_each(|l| batch.push_line(l));
        let whole: Lines = ["one", "two"].into_iter().collect();
        assert_eq!(batch.into_parts(), [TypedPart::Lines(whole)]);
        let mut batch = TypedBatch::default();
        batch.push_line("one");
        batch.push(Typed::TooLong(70_000));
        ["two", "three"]
            .into_iter()
            .for_each(|l| batch.push_line(l));
        batch.push(Typed::Eof);
        assert_eq!(
            batch.into_parts(),
            [
                TypedPart::Lines(["one"].into_iter().collect()),
                TypedPart::Other(Typed::TooLong(70_000)),
                TypedPart::Lines(["two", "three"].into_iter().collect()),
                TypedPart::Other(Typed::Eof),
            ]
        );
        assert!(TypedBatch::default().into_parts().is_empty());
    }

    #[test]
    fn a_note_too_wide_loses_its_last_parts_then_goes() {
        let row = "receiving report.pdf  34%  3.4 MB/s  0:05 left".to_string();
        assert_eq!(fit_note(row.clone(), 47).as_deref(), Some(row.as_str()));
        assert_eq!(
            fit_note(row.clone(), 46).as_deref(),
            Some("receiving report.pdf  34%  3.4 MB/s")
        );
        assert_eq!(
            fit_note(row.clone(), 26).as_deref(),
            Some("receiving report.pdf  34%")
        );
        assert_eq!(
            fit_note(row.clone(), 25).as_deref(),
            Some("receiving report.pdf")
        );
        assert_eq!(fit_note(row, 20), None);
        assert_eq!(fit_note("bob is typing…".into(), 14), None);
    }
}
