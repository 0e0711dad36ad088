//! The line editor for a raw-mode terminal, as pure state: no I/O here.
//!
//! [`KeyDecoder`] turns the bytes a terminal sends into [`Key`]s (UTF-8
//! characters, control keys, escape sequences for arrows, Home, End,
//! Delete, Alt and Ctrl with a key or an arrow in the forms xterm and rxvt
//! send, and bracketed pastes); [`Keyboard`] feeds it read by read and
//! tells a paste the terminal did not mark from typing, by how fast the
//! bytes came ([`PASTE_GAP`]). [`LineEditor`] applies keys to the line
//! being typed by user-perceived character (extended grapheme cluster, UAX
//! #29: `👍🏽`, `e` + U+0301, a flag or a ZWJ family is one), with a history
//! of the lines typed this session, readline's word keys and its kill ring
//! (of one entry), and Tab completion of names (`completion.rs` decides).
//! [`LineEditor::render`] computes what the last row shows for a prompt,
//! scrolled sideways around the cursor to fit the terminal's width, with
//! `<` and `>` where text is out of view.
//!
//! The editor keeps the cluster boundaries of its line and re-segments only
//! around an edit (UAX #29 decides each break from what precedes it and the
//! one code point after, and needs nothing before a known boundary), and a
//! render walks only the clusters it shows: typing into or pasting a line
//! of any length costs what the visible part costs.

use std::borrow::Cow;
use std::time::Duration;

use super::completion::{NamesTyped, complete};
use crate::unicode::{cluster_width, next_boundary, width};

/// Most bytes one bracketed paste keeps; more is dropped.
pub const MAX_PASTE: usize = 1024 * 1024;

/// One key press, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Char(char),
    /// Text pasted in one piece (bracketed paste, `\e[200~`…`\e[201~`): it is
    /// text, never keys, whatever it holds.
    Paste(String),
    Enter,
    Backspace,
    Delete,
    Left,
    Right,
    Home,
    End,
    Up,
    Down,
    /// Ctrl-U: delete from the start of the line to the cursor.
    KillToStart,
    /// Ctrl-K: delete from the cursor to the end of the line.
    KillToEnd,
    /// Ctrl-W: delete the word before the cursor, up to a blank.
    KillWord,
    /// Alt-b, Ctrl-←: back to the start of this word or the one before
    /// (readline's words: letters and digits).
    WordBack,
    /// Alt-f, Ctrl-→: on to the end of this word or the next.
    WordForward,
    /// Alt-d: delete to where [`Key::WordForward`] goes.
    KillNextWord,
    /// Alt-Backspace: delete back to where [`Key::WordBack`] goes.
    KillPreviousWord,
    /// Ctrl-Y: insert what the last kill took (Ctrl-U, Ctrl-K, Ctrl-W,
    /// Alt-d, Alt-Backspace).
    Yank,
    /// Tab: complete a name.
    Tab,
    /// Ctrl-Z: stop the program, as the shell's job control does.
    Suspend,
    /// Ctrl-L: clear the screen and draw the line again.
    Redraw,
    /// Ctrl-C.
    Interrupt,
    /// Ctrl-D.
    EndOfInput,
}

/// Decodes terminal input bytes into keys, across reads: a sequence or a
/// character split between two reads is completed by the second.
#[derive(Debug, Default)]
pub struct KeyDecoder {
    pending: Vec<u8>,
    /// The last byte was a CR: a LF right after it is the same Enter.
    after_cr: bool,
    /// Inside a bracketed paste: the bytes pasted so far.
    pasting: Option<Vec<u8>>,
}

const PASTE_START: &[u8] = b"\x1b[200~";
const PASTE_END: &[u8] = b"\x1b[201~";

impl KeyDecoder {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Key> {
        self.pending.extend_from_slice(bytes);
        let mut keys = Vec::new();
        let mut i = 0;
        while i < self.pending.len() {
            if let Some(pasted) = &mut self.pasting {
                let rest = &self.pending[i..];
                match rest.windows(PASTE_END.len()).position(|w| w == PASTE_END) {
                    Some(end) => {
                        take_pasted(pasted, &rest[..end]);
                        let text = String::from_utf8_lossy(pasted).into_owned();
                        keys.push(Key::Paste(text));
                        self.pasting = None;
                        i += end + PASTE_END.len();
                    }
                    None => {
                        // Keep what could be the start of the end marker.
                        let keep = (PASTE_END.len() - 1).min(rest.len());
                        take_pasted(pasted, &rest[..rest.len() - keep]);
                        i = self.pending.len() - keep;
                        break;
                    }
                }
                continue;
            }
            if self.pending[i..].starts_with(PASTE_START) {
                self.pasting = Some(Vec::new());
                i += PASTE_START.len();
                continue;
            }
            match decode_one(&self.pending[i..]) {
                Decoded::Key(key, used) => {
                    let skip = key == Key::Enter && self.after_cr && self.pending[i] == b'\n';
                    self.after_cr = self.pending[i] == b'\r';
                    if !skip {
                        keys.push(key);
                    }
                    i += used;
                }
                Decoded::Nothing(used) => {
                    self.after_cr = false;
                    i += used;
                }
                Decoded::Incomplete => break,
            }
        }
        self.pending.drain(..i);
        keys
    }
}

impl KeyDecoder {
    /// Bytes of a paste the terminal did not mark, returned as the text they
    /// are: what an unfinished sequence left pending comes first, a
    /// character cut short at the end waits for the next piece, and a LF
    /// right after a CR that ended the piece before is the same line break.
    fn unmarked_paste(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut text = std::mem::take(&mut self.pending);
        text.extend_from_slice(bytes);
        self.pending = text.split_off(text.len() - cut_short_utf8(&text));
        if self.after_cr && text.first() == Some(&b'\n') {
            text.remove(0);
        }
        if let Some(&last) = text.last() {
            self.after_cr = last == b'\r';
        }
        text
    }

    /// Whether the terminal marks its pastes in what it sent so far and
    /// `bytes` (bracketed paste).
    fn marks_paste(&self, bytes: &[u8]) -> bool {
        let seen = [&self.pending[..], bytes].concat();
        self.pasting.is_some() || seen.windows(PASTE_START.len()).any(|w| w == PASTE_START)
    }
}

/// How many bytes at the end of `bytes` begin a UTF-8 character that is
/// not complete yet.
fn cut_short_utf8(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte & 0xc0 != 0x80 {
            let needs = match byte {
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf7 => 4,
                _ => 1,
            };
            return if needs > back { back } else { 0 };
        }
    }
    0
}

/// How soon after a read the next must come to be the same burst of input.
/// No one types a key within this of pressing Enter (key repeat is slower
/// too), while a paste's pieces follow each other within microseconds.
pub const PASTE_GAP: Duration = Duration::from_millis(10);

/// Keys from what a terminal sends, read by read, telling a paste from
/// typing when the terminal does not mark pastes (no bracketed paste).
///
/// The rule: a person cannot type another key within [`PASTE_GAP`] of
/// pressing Enter. So a burst of input (reads each within `PASTE_GAP` of
/// the one before) in which a line break is followed by anything is a
/// paste, all of it from that read on: it becomes one [`Key::Paste`] when
/// the burst ends ([`Keyboard::pause`]), exactly as if the terminal had
/// bracketed it, so its lines are text, never commands, and it is counted
/// whole (a long paste asks before it is sent). A burst ending in one Enter
/// (`q` ENTER typed, or sent at once as tmux `send-keys q Enter` does) is
/// typing: it is held until `PASTE_GAP` has passed with nothing more, then
/// given as keys. A burst with no line break is given as keys at once.
#[derive(Debug, Default)]
pub struct Keyboard {
    decoder: KeyDecoder,
    /// The burst so far is an unmarked paste: its bytes (at most
    /// [`MAX_PASTE`] are kept, as for a bracketed one).
    pasted: Option<Vec<u8>>,
    /// A burst ending in Enter: typing, unless more follows at once.
    held: Vec<u8>,
}

impl Keyboard {
    /// Keys for the bytes of one read; `joined` says whether the read came
    /// within [`PASTE_GAP`] of the one before (the same burst).
    pub fn feed(&mut self, bytes: &[u8], joined: bool) -> Vec<Key> {
        let mut keys = Vec::new();
        if !joined {
            keys = self.pause();
        }
        let mut burst = std::mem::take(&mut self.held);
        burst.extend_from_slice(bytes);
        if self.decoder.marks_paste(&burst) {
            keys.extend(self.end_of_paste());
            keys.extend(self.decoder.feed(&burst));
        } else if (self.pasted.is_some() || enter_then_more(&burst)) && !has_stop_key(&burst) {
            let text = self.decoder.unmarked_paste(&burst);
            take_pasted(self.pasted.get_or_insert_with(Vec::new), &text);
        } else {
            keys.extend(self.end_of_paste());
            if burst.last().is_some_and(|&b| b == b'\r' || b == b'\n') {
                self.held = burst;
            } else {
                keys.extend(self.decoder.feed(&burst));
            }
        }
        keys
    }

    /// Whether keys are held until [`PASTE_GAP`] passes with no more input.
    pub fn holding(&self) -> bool {
        !self.held.is_empty() || self.pasted.is_some()
    }

    /// `PASTE_GAP` passed with no more input: the burst has ended; a paste
    /// in it is given whole, and what it held was typed.
    pub fn pause(&mut self) -> Vec<Key> {
        let mut keys: Vec<Key> = self.end_of_paste().into_iter().collect();
        let held = std::mem::take(&mut self.held);
        keys.extend(self.decoder.feed(&held));
        keys
    }

    /// The unmarked paste of this burst, if there is one, as one key.
    fn end_of_paste(&mut self) -> Option<Key> {
        let pasted = self.pasted.take().filter(|p| !p.is_empty())?;
        Some(Key::Paste(String::from_utf8_lossy(&pasted).into_owned()))
    }
}

/// How many lines a paste completes: its line breaks, a CR LF counting
/// once (as [`LineEditor`] takes them).
pub fn pasted_lines(pasted: &str) -> usize {
    let bytes = pasted.as_bytes();
    bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') || b == b'\r')
        .count()
}

/// A paste of one line and the line breaks after it, as that line alone:
/// where a name or a command is typed it is taken as typed, and waits for
/// ENTER. `None` for a paste with a line break inside.
pub fn one_pasted_line(pasted: &str) -> Option<&str> {
    let line = pasted.trim_end_matches(['\r', '\n']);
    (!line.contains(['\r', '\n'])).then_some(line)
}

/// Whether `bytes` hold Ctrl-C or Ctrl-D: text pasted from elsewhere does
/// not, so a burst with them is keys typed ahead (the reader fell behind),
/// and they must stay what they are: the way out.
fn has_stop_key(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b == 0x03 || b == 0x04)
}

/// Whether a line break (CR, LF or CRLF) in `bytes` is followed by more.
fn enter_then_more(bytes: &[u8]) -> bool {
    let Some(at) = bytes.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return false;
    };
    let after = match &bytes[at..] {
        [b'\r', b'\n', rest @ ..] => rest,
        [_, rest @ ..] => rest,
        [] => &[],
    };
    !after.is_empty()
}

fn take_pasted(pasted: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_PASTE.saturating_sub(pasted.len());
    pasted.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

/// `line` without the escape sequences a terminal in line mode (`TERM=dumb`)
/// lets through when arrow or function keys are pressed: CSI and SS3
/// sequences and lone Esc characters are removed, so they never become text.
pub fn without_escapes(line: &str) -> Cow<'_, str> {
    if !line.contains('\x1b') {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('[') => {
                chars.next();
                // Parameters and intermediates, then one final byte.
                for c in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&c) {
                        break;
                    }
                }
            }
            Some('O') => {
                chars.next();
                chars.next();
            }
            _ => {}
        }
    }
    Cow::Owned(out)
}

enum Decoded {
    Key(Key, usize),
    /// Bytes that mean no key we handle (an unknown sequence, invalid
    /// UTF-8): skip them.
    Nothing(usize),
    /// More bytes are needed.
    Incomplete,
}

fn decode_one(bytes: &[u8]) -> Decoded {
    let key = |k| Decoded::Key(k, 1);
    match bytes[0] {
        0x01 => key(Key::Home),
        0x02 => key(Key::Left),
        0x03 => key(Key::Interrupt),
        0x04 => key(Key::EndOfInput),
        0x05 => key(Key::End),
        0x06 => key(Key::Right),
        0x08 | 0x7f => key(Key::Backspace),
        b'\t' => key(Key::Tab),
        b'\r' | b'\n' => key(Key::Enter),
        0x0b => key(Key::KillToEnd),
        0x0c => key(Key::Redraw),
        0x0e => key(Key::Down),
        0x10 => key(Key::Up),
        0x15 => key(Key::KillToStart),
        0x17 => key(Key::KillWord),
        0x19 => key(Key::Yank),
        0x1a => key(Key::Suspend),
        0x1b => decode_escape(bytes),
        b if b < 0x20 => Decoded::Nothing(1),
        _ => decode_utf8(bytes),
    }
}

/// The longest escape sequence the decoder waits for; a longer one is
/// not a key, and its first this many bytes are skipped.
const MAX_SEQUENCE: usize = 17;

fn decode_escape(bytes: &[u8]) -> Decoded {
    let Some(&kind) = bytes.get(1) else {
        return Decoded::Incomplete;
    };
    // Alt and a key: Esc first (the Meta-sends-Escape of every terminal
    // today), as readline reads it.
    let alt = |key| Decoded::Key(key, 2);
    match kind {
        b'b' => return alt(Key::WordBack),
        b'f' => return alt(Key::WordForward),
        b'd' => return alt(Key::KillNextWord),
        0x7f | 0x08 => return alt(Key::KillPreviousWord),
        // Alt-← and Alt-→ as rxvt sends them: Esc, then the arrow's
        // sequence (looked into once: a run of Esc bytes is no deeper).
        0x1b => {
            return match bytes.get(2) {
                None => Decoded::Incomplete,
                Some(b'[' | b'O') => match decode_escape(&bytes[1..]) {
                    Decoded::Key(Key::Left | Key::WordBack, used) => {
                        Decoded::Key(Key::WordBack, used + 1)
                    }
                    Decoded::Key(Key::Right | Key::WordForward, used) => {
                        Decoded::Key(Key::WordForward, used + 1)
                    }
                    Decoded::Incomplete => Decoded::Incomplete,
                    _ => Decoded::Nothing(1),
                },
                Some(_) => Decoded::Nothing(1),
            };
        }
        b'[' | b'O' => {}
        // A lone Esc press followed by another key: drop the Esc.
        _ => return Decoded::Nothing(1),
    }
    // CSI / SS3: parameters, then one final byte in 0x40..=0x7e, all
    // within MAX_SEQUENCE bytes. Only those are looked at, and only they are
    // dropped when no final byte is among them: what follows is decoded
    // the same however the reads cut the bytes.
    let window = &bytes[2..bytes.len().min(MAX_SEQUENCE)];
    let Some(end) = window.iter().position(|b| (0x40..=0x7e).contains(b)) else {
        return if bytes.len() >= MAX_SEQUENCE {
            Decoded::Nothing(MAX_SEQUENCE)
        } else {
            Decoded::Incomplete
        };
    };
    let used = 2 + end + 1;
    let params = &bytes[2..2 + end];
    let key = match (kind, bytes[2 + end], params) {
        // Ctrl-← and Ctrl-→ (xterm `1;5`, older xterm `5`, rxvt's SS3
        // `c` and `d`), and Alt-← and Alt-→ (`1;3`): by word, as in a
        // shell.
        (b'[', b'D', b"1;5" | b"5" | b"1;3") | (b'O', b'd', b"") => Key::WordBack,
        (b'[', b'C', b"1;5" | b"5" | b"1;3") | (b'O', b'c', b"") => Key::WordForward,
        (_, b'A', _) => Key::Up,
        (_, b'B', _) => Key::Down,
        (_, b'C', _) => Key::Right,
        (_, b'D', _) => Key::Left,
        (_, b'H', _) => Key::Home,
        (_, b'F', _) => Key::End,
        (_, b'~', b"1" | b"7") => Key::Home,
        (_, b'~', b"4" | b"8") => Key::End,
        (_, b'~', b"3") => Key::Delete,
        _ => return Decoded::Nothing(used),
    };
    Decoded::Key(key, used)
}

fn decode_utf8(bytes: &[u8]) -> Decoded {
    let len = match bytes[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        0x20..=0x7e => 1,
        _ => return Decoded::Nothing(1),
    };
    if bytes.len() < len {
        return Decoded::Incomplete;
    }
    match std::str::from_utf8(&bytes[..len])
        .ok()
        .and_then(|s| s.chars().next())
    {
        Some(c) => Decoded::Key(Key::Char(c), len),
        None => Decoded::Nothing(1),
    }
}

/// What a key did to the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// The line changed or the cursor moved: draw it again.
    Changed,
    /// Nothing to do.
    Unchanged,
    /// Ctrl-L: clear the screen, then draw the line.
    Redraw,
    /// Enter: this line is done.
    Submit(String),
    /// A paste held line breaks: these lines were completed by it (the
    /// first one starting with what was typed before the cursor). They are
    /// text that was pasted, never commands; what followed the last line
    /// break stays in the line being typed.
    SubmitPasted(Vec<String>),
    /// Ctrl-D on an empty line.
    EndOfInput,
    /// Ctrl-C.
    Interrupt,
    /// Ctrl-Z: the program is to stop until the shell continues it.
    Suspend,
    /// A second Tab where several names match: these, to be listed.
    Matches(Vec<String>),
}

/// Most lines kept in the history.
const HISTORY: usize = 200;

/// The line being typed, the cursor, and the history of submitted lines.
#[derive(Debug)]
pub struct LineEditor {
    text: String,
    /// Byte offsets of the cluster boundaries: 0, then the end of each
    /// cluster (the last is `text.len()`).
    bounds: Vec<usize>,
    /// The cursor, as an index into `bounds`: it sits before cluster `cursor`.
    cursor: usize,
    history: Vec<String>,
    /// While browsing the history: which entry is shown, and the line that
    /// was being typed before browsing started.
    browsing: Option<(usize, String)>,
    /// What the last kill took (readline's kill ring, of one entry), for
    /// Ctrl-Y.
    killed: String,
    /// What the key before was, where that changes what a key does.
    streak: Streak,
}

/// Keys that act differently right after themselves, as in readline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Streak {
    #[default]
    None,
    /// Kills in a row make one entry for Ctrl-Y.
    Kill,
    /// A second Tab lists the names that match.
    Tab,
}

/// Which way a kill went from the cursor: kills in a row gather in the
/// order the text had (forward ones after, backward ones before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Toward {
    Start,
    End,
}

impl Default for LineEditor {
    fn default() -> LineEditor {
        LineEditor {
            text: String::new(),
            bounds: vec![0],
            cursor: 0,
            history: Vec::new(),
            browsing: None,
            killed: String::new(),
            streak: Streak::None,
        }
    }
}

/// What [`LineEditor::render`] draws on the last row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The prompt and the visible part of the line; never wider than the
    /// terminal less one column, so the row never wraps.
    pub text: String,
    /// The column the cursor goes to.
    pub cursor_column: usize,
}

/// Longest cluster drawn whole, in bytes: a cluster of thousands of
/// combining marks is drawn with its first few, not all of them.
const MAX_DRAWN_CLUSTER: usize = 64;

impl LineEditor {
    /// The line being typed.
    pub fn line(&self) -> &str {
        &self.text
    }

    /// The cursor, as a byte offset into [`LineEditor::line`] (always at a
    /// cluster boundary).
    pub fn cursor(&self) -> usize {
        self.bounds[self.cursor]
    }

    fn clusters(&self) -> usize {
        self.bounds.len() - 1
    }

    fn cluster(&self, i: usize) -> &str {
        &self.text[self.bounds[i]..self.bounds[i + 1]]
    }

    /// Replaces clusters `from..to` with `insert`, re-segments around the
    /// change, and puts the cursor after the inserted text.
    fn replace(&mut self, from: usize, to: usize, insert: &str) {
        let (start, end) = (self.bounds[from], self.bounds[to]);
        self.text.replace_range(start..end, insert);
        let inserted_end = start + insert.len();
        let shift = |b: usize| b + inserted_end - end;
        // Breaks before the previous cluster's start cannot change: each
        // break depends only on what precedes it and the code point after.
        let keep = from.saturating_sub(1);
        let mut fresh = Vec::new();
        let mut at = self.bounds[keep];
        let mut old = to;
        let mut resume = self.bounds.len();
        while at < self.text.len() {
            at = next_boundary(&self.text, at);
            fresh.push(at);
            if at < inserted_end {
                continue;
            }
            // From an old boundary on, the old segmentation holds.
            while old < self.bounds.len() && shift(self.bounds[old]) < at {
                old += 1;
            }
            if old < self.bounds.len() && shift(self.bounds[old]) == at {
                resume = old + 1;
                break;
            }
        }
        let tail: Vec<usize> = self.bounds[resume..].iter().map(|&b| shift(b)).collect();
        self.bounds.truncate(keep + 1);
        self.bounds.extend(fresh);
        self.bounds.extend(tail);
        self.cursor = self.bounds.partition_point(|&b| b < inserted_end);
    }

    fn set_line(&mut self, text: String) {
        self.text.clear();
        self.bounds.truncate(1);
        self.cursor = 0;
        self.replace(0, 0, &text);
    }

    fn take_line(&mut self) -> String {
        self.bounds.truncate(1);
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    fn remember(&mut self, text: &str) {
        if !text.is_empty() && self.history.last().map(String::as_str) != Some(text) {
            if self.history.len() == HISTORY {
                self.history.remove(0);
            }
            self.history.push(text.to_string());
        }
    }

    fn is_blank(&self, i: usize) -> bool {
        self.cluster(i).starts_with(char::is_whitespace)
    }

    /// Whether cluster `i` is part of a word as readline counts words:
    /// letters and digits (a mark rides on its letter's cluster).
    fn is_word(&self, i: usize) -> bool {
        self.cluster(i).starts_with(char::is_alphanumeric)
    }

    /// Where Alt-b goes: back over what is not a word, then over a word.
    fn word_back(&self) -> usize {
        let mut at = self.cursor;
        while at > 0 && !self.is_word(at - 1) {
            at -= 1;
        }
        while at > 0 && self.is_word(at - 1) {
            at -= 1;
        }
        at
    }

    /// Where Alt-f goes: on over what is not a word, then over a word.
    fn word_forward(&self) -> usize {
        let (mut at, n) = (self.cursor, self.clusters());
        while at < n && !self.is_word(at) {
            at += 1;
        }
        while at < n && self.is_word(at) {
            at += 1;
        }
        at
    }

    /// Where Ctrl-W goes: back over blanks, then over what is not blank.
    fn blank_word_back(&self) -> usize {
        let mut at = self.cursor;
        while at > 0 && self.is_blank(at - 1) {
            at -= 1;
        }
        while at > 0 && !self.is_blank(at - 1) {
            at -= 1;
        }
        at
    }

    /// Deletes clusters `from..to` (one end at the cursor) and keeps them
    /// for Ctrl-Y; right after another kill, they join what it took.
    fn kill(&mut self, from: usize, to: usize, streak: Streak) {
        let toward = if to == self.cursor && from < to {
            Toward::Start
        } else {
            Toward::End
        };
        let taken = &self.text[self.bounds[from]..self.bounds[to]];
        match (streak, toward) {
            _ if taken.is_empty() => {}
            (Streak::Kill, Toward::End) => self.killed.push_str(taken),
            (Streak::Kill, Toward::Start) => self.killed.insert_str(0, taken),
            _ => self.killed = taken.to_string(),
        }
        self.streak = Streak::Kill;
        self.replace(from, to, "");
    }

    pub fn apply(&mut self, key: Key) -> Edit {
        let before = (self.text.len(), self.cursor);
        let n = self.clusters();
        let streak = std::mem::take(&mut self.streak);
        match key {
            Key::Char(c) => {
                let mut buf = [0u8; 4];
                self.replace(self.cursor, self.cursor, c.encode_utf8(&mut buf));
                return Edit::Changed;
            }
            Key::Paste(text) => return self.paste(&text),
            Key::Enter => {
                self.browsing = None;
                let text = self.take_line();
                self.remember(&text);
                return Edit::Submit(text);
            }
            Key::Backspace if self.cursor > 0 => self.replace(self.cursor - 1, self.cursor, ""),
            Key::Delete if self.cursor < n => {
                let at = self.cursor;
                self.replace(at, at + 1, "");
            }
            Key::Left if self.cursor > 0 => self.cursor -= 1,
            Key::Right if self.cursor < n => self.cursor += 1,
            Key::Home => self.cursor = 0,
            Key::End => self.cursor = n,
            Key::KillToStart => self.kill(0, self.cursor, streak),
            Key::KillToEnd => self.kill(self.cursor, n, streak),
            Key::KillWord => self.kill(self.blank_word_back(), self.cursor, streak),
            Key::KillPreviousWord => self.kill(self.word_back(), self.cursor, streak),
            Key::KillNextWord => self.kill(self.cursor, self.word_forward(), streak),
            Key::WordBack => self.cursor = self.word_back(),
            Key::WordForward => self.cursor = self.word_forward(),
            Key::Yank => {
                let killed = std::mem::take(&mut self.killed);
                self.replace(self.cursor, self.cursor, &killed);
                self.killed = killed;
            }
            // Without names to complete from, a Tab does nothing.
            Key::Tab => return self.complete(&[], NamesTyped::Nowhere),
            Key::Suspend => return Edit::Suspend,
            Key::Up => return self.browse(true),
            Key::Down => return self.browse(false),
            Key::Redraw => return Edit::Redraw,
            Key::Interrupt => return Edit::Interrupt,
            Key::EndOfInput if self.text.is_empty() => return Edit::EndOfInput,
            // Ctrl-D on a line deletes forward, as in a shell.
            Key::EndOfInput if self.cursor < n => {
                let at = self.cursor;
                self.replace(at, at + 1, "");
            }
            _ => return Edit::Unchanged,
        }
        if (self.text.len(), self.cursor) == before {
            return Edit::Unchanged;
        }
        Edit::Changed
    }

    /// Tab: completes the name being typed from `names`, where `typed`
    /// says names are typed (see `completion.rs`); a second Tab in a row
    /// where several match and no more is shared gives them all.
    pub fn complete(&mut self, names: &[String], typed: NamesTyped) -> Edit {
        let streak = std::mem::replace(&mut self.streak, Streak::Tab);
        let before = &self.text[..self.cursor()];
        let Some(completion) = complete(before, names, typed) else {
            return Edit::Unchanged;
        };
        // The word starts after a blank; a mark riding on that blank
        // starts no name.
        let Ok(from) = self.bounds.binary_search(&completion.from) else {
            return Edit::Unchanged;
        };
        if completion.text != before[completion.from..] {
            self.replace(from, self.cursor, &completion.text);
            self.browsing = None;
            return Edit::Changed;
        }
        if streak == Streak::Tab && completion.matches.len() > 1 {
            let matches = completion.matches.iter().map(|m| m.to_string()).collect();
            return Edit::Matches(matches);
        }
        Edit::Unchanged
    }

    /// Inserts pasted text: tabs become spaces, other control characters
    /// are dropped, and each line break completes a line.
    fn paste(&mut self, pasted: &str) -> Edit {
        let pasted = pasted.replace("\r\n", "\n").replace('\r', "\n");
        let mut pieces = pasted.split('\n');
        let mut lines = Vec::new();
        let mut piece = pieces.next().unwrap_or("");
        for next in pieces {
            self.insert_text(piece);
            // The line is complete up to the cursor; what followed the
            // cursor moves on with the rest of the paste.
            let after = self.text.split_off(self.cursor());
            let line = self.take_line();
            self.remember(&line);
            lines.push(line);
            self.insert_text(&after);
            self.cursor = 0;
            piece = next;
        }
        self.insert_text(piece);
        self.browsing = None;
        if lines.is_empty() {
            Edit::Changed
        } else {
            Edit::SubmitPasted(lines)
        }
    }

    /// Takes the half-typed line out, leaving the editor empty: a ringing
    /// call must not get what was typed for the list.
    pub fn set_aside(&mut self) -> String {
        self.bounds = vec![0];
        self.cursor = 0;
        self.browsing = None;
        std::mem::take(&mut self.text)
    }

    /// Moves the half-typed line into the history, leaving the editor
    /// empty: it was typed for a chat that ended, and must not be run where
    /// the user is now; ↑ brings it back. Returns whether there was one.
    pub fn shelve(&mut self) -> bool {
        let text = self.set_aside();
        self.remember(&text);
        !text.is_empty()
    }

    /// Puts a line set aside back, if nothing was typed since; else it
    /// goes to the history, never lost.
    pub fn bring_back(&mut self, text: &str) {
        if self.text.is_empty() {
            self.insert_text(text);
        } else {
            self.remember(text);
        }
    }

    fn insert_text(&mut self, text: &str) {
        let clean: String = text
            .chars()
            .filter_map(|c| match c {
                '\t' => Some(' '),
                c if c.is_control() => None,
                c => Some(c),
            })
            .collect();
        let at = self.cursor;
        self.replace(at, at, &clean);
    }

    /// Up (`older`) or down through the history.
    fn browse(&mut self, older: bool) -> Edit {
        let position = match (&self.browsing, older) {
            (None, true) if !self.history.is_empty() => {
                self.browsing = Some((self.history.len(), self.text.clone()));
                self.history.len() - 1
            }
            (Some((at, _)), true) if *at > 0 => at - 1,
            (Some((at, _)), false) if at + 1 < self.history.len() => at + 1,
            (Some(_), false) => {
                // Past the newest entry: back to the line being typed.
                if let Some((_, typed)) = self.browsing.take() {
                    self.set_line(typed);
                }
                return Edit::Changed;
            }
            _ => return Edit::Unchanged,
        };
        if let Some((at, _)) = &mut self.browsing {
            *at = position;
        }
        self.set_line(self.history[position].clone());
        Edit::Changed
    }

    /// What the last row shows for `prompt` and the line in a terminal
    /// `columns` wide (10 or more): the prompt (cut short to half the row
    /// when longer), then the clusters around the cursor that fit, with `<`
    /// at the left when text is out of view there and `>` at the right.
    /// The work is bounded by the width shown, not by the line's length.
    pub fn render(&self, prompt: &str, columns: usize) -> Rendered {
        let usable = columns.max(10) - 1;
        let prompt = fit_prompt(prompt, usable / 2);
        let room = usable - width(&prompt);
        // Zero-width clusters take no column; bound the walk anyway.
        let most_walked = 4 * room + 8;
        let n = self.clusters();

        // Left of the cursor: as much as fits, leaving the cursor's cell
        // (and, when text follows, room for a wide cluster and the marker).
        let budget = room.saturating_sub(if self.cursor < n { 3 } else { 1 });
        let mut start = self.cursor;
        let mut left = 0;
        while start > 0 && self.cursor - start < most_walked {
            let w = cluster_width(self.cluster(start - 1));
            if left + w > budget {
                break;
            }
            left += w;
            start -= 1;
        }
        let left_marker = start > 0;
        if left_marker {
            while left + 1 > budget && start < self.cursor {
                left -= cluster_width(self.cluster(start));
                start += 1;
            }
        }
        let mut right_room = room - left - usize::from(left_marker);
        let mut end = self.cursor;
        let mut right = 0;
        while end < n && end - self.cursor < most_walked {
            let w = cluster_width(self.cluster(end));
            if right + w > right_room {
                break;
            }
            right += w;
            end += 1;
        }
        let right_marker = end < n;
        if right_marker {
            right_room -= 1;
            while right > right_room && end > self.cursor {
                end -= 1;
                right -= cluster_width(self.cluster(end));
            }
        }

        let mut text = String::with_capacity(prompt.len() + 4 * (end - start) + 2);
        text.push_str(&prompt);
        if left_marker {
            text.push('<');
        }
        for i in start..end {
            text.push_str(drawn(self.cluster(i)));
        }
        if right_marker {
            text.push('>');
        }
        Rendered {
            text,
            cursor_column: width(&prompt) + usize::from(left_marker) + left,
        }
    }
}

/// At most the first [`MAX_DRAWN_CLUSTER`] bytes of a cluster.
fn drawn(cluster: &str) -> &str {
    if cluster.len() <= MAX_DRAWN_CLUSTER {
        return cluster;
    }
    let mut end = MAX_DRAWN_CLUSTER;
    while !cluster.is_char_boundary(end) {
        end -= 1;
    }
    &cluster[..end]
}

/// `prompt` as it fits in `most` columns: whole, or its start and `> `.
fn fit_prompt(prompt: &str, most: usize) -> Cow<'_, str> {
    if width(prompt) <= most {
        return Cow::Borrowed(prompt);
    }
    let mut fitted = String::new();
    let mut used = 0;
    for cluster in crate::unicode::graphemes(prompt) {
        let w = cluster_width(cluster);
        if used + w + 2 > most {
            break;
        }
        used += w;
        fitted.push_str(cluster);
    }
    let mut fitted = fitted.trim_end().to_string();
    fitted.push_str("> ");
    Cow::Owned(fitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(bytes: &[u8]) -> Vec<Key> {
        KeyDecoder::default().feed(bytes)
    }

    fn typed(editor: &mut LineEditor, text: &str) {
        for c in text.chars() {
            editor.apply(Key::Char(c));
        }
    }

    fn text(editor: &LineEditor) -> String {
        editor.line().to_string()
    }

    #[test]
    fn decodes_characters_controls_and_sequences() {
        assert_eq!(
            keys("aé日😀".as_bytes()),
            [
                Key::Char('a'),
                Key::Char('é'),
                Key::Char('日'),
                Key::Char('😀')
            ]
        );
        assert_eq!(
            keys(b"\x1b[A\x1b[B\x1b[C\x1b[D\x1b[H\x1b[F\x1bOH\x1bOF\x1b[1~\x1b[4~\x1b[3~"),
            [
                Key::Up,
                Key::Down,
                Key::Right,
                Key::Left,
                Key::Home,
                Key::End,
                Key::Home,
                Key::End,
                Key::Home,
                Key::End,
                Key::Delete
            ]
        );
        assert_eq!(
            keys(b"\x01\x05\x15\x17\x0b\x03\x04\x7f\x08"),
            [
                Key::Home,
                Key::End,
                Key::KillToStart,
                Key::KillWord,
                Key::KillToEnd,
                Key::Interrupt,
                Key::EndOfInput,
                Key::Backspace,
                Key::Backspace
            ]
        );
    }

    #[test]
    fn input_split_across_reads_is_completed() {
        let mut decoder = KeyDecoder::default();
        let bytes = "日".as_bytes();
        assert_eq!(decoder.feed(&bytes[..1]), []);
        assert_eq!(decoder.feed(&bytes[1..]), [Key::Char('日')]);
        assert_eq!(decoder.feed(b"\x1b"), []);
        assert_eq!(decoder.feed(b"["), []);
        assert_eq!(decoder.feed(b"D"), [Key::Left]);
    }

    #[test]
    fn crlf_is_one_enter_and_junk_is_skipped() {
        assert_eq!(
            keys(b"a\r\nb\n\n"),
            [
                Key::Char('a'),
                Key::Enter,
                Key::Char('b'),
                Key::Enter,
                Key::Enter
            ]
        );
        // Invalid UTF-8, an unknown sequence, a lone Esc: nothing.
        assert_eq!(
            keys(b"\xff\x1b[99zx\x1bx"),
            [Key::Char('x'), Key::Char('x')]
        );
    }

    #[test]
    fn edits_by_character_not_byte() {
        let mut e = LineEditor::default();
        typed(&mut e, "héllo wörld 日本");
        e.apply(Key::Backspace);
        assert_eq!(text(&e), "héllo wörld 日");
        e.apply(Key::KillWord);
        assert_eq!(text(&e), "héllo wörld ");
        e.apply(Key::KillWord);
        assert_eq!(text(&e), "héllo ");
        typed(&mut e, "wörld");
        e.apply(Key::Home);
        e.apply(Key::Right);
        e.apply(Key::Delete);
        assert_eq!(text(&e), "hllo wörld");
        e.apply(Key::Char('é'));
        assert_eq!(text(&e), "héllo wörld");
        assert_eq!(e.cursor(), "hé".len());
        e.apply(Key::KillToEnd);
        assert_eq!(text(&e), "hé");
        e.apply(Key::End);
        e.apply(Key::KillToStart);
        assert_eq!(text(&e), "");
        assert_eq!(e.apply(Key::Backspace), Edit::Unchanged);
    }

    #[test]
    fn enter_submits_and_history_browses() {
        let mut e = LineEditor::default();
        typed(&mut e, "first");
        assert_eq!(e.apply(Key::Enter), Edit::Submit("first".into()));
        typed(&mut e, "second");
        e.apply(Key::Enter);
        typed(&mut e, "draft");
        e.apply(Key::Up);
        assert_eq!(text(&e), "second");
        e.apply(Key::Up);
        assert_eq!(text(&e), "first");
        assert_eq!(e.apply(Key::Up), Edit::Unchanged);
        e.apply(Key::Down);
        assert_eq!(text(&e), "second");
        e.apply(Key::Down);
        assert_eq!(text(&e), "draft");
        assert_eq!(e.apply(Key::Enter), Edit::Submit("draft".into()));
        assert_eq!(e.apply(Key::Enter), Edit::Submit(String::new()));
    }

    #[test]
    fn ctrl_d_is_eof_only_on_an_empty_line() {
        let mut e = LineEditor::default();
        assert_eq!(e.apply(Key::EndOfInput), Edit::EndOfInput);
        typed(&mut e, "ab");
        e.apply(Key::Home);
        assert_eq!(e.apply(Key::EndOfInput), Edit::Changed);
        assert_eq!(text(&e), "b");
        assert_eq!(e.apply(Key::Interrupt), Edit::Interrupt);
    }

    #[test]
    fn edits_by_user_perceived_character() {
        let mut e = LineEditor::default();
        for cluster in [
            "👍🏽",
            "👨‍👩‍👧",
            "🇫🇷",
            "1\u{fe0f}\u{20e3}",
            "e\u{301}",
            "\u{1100}\u{1161}\u{11a8}",
        ] {
            typed(&mut e, "a");
            typed(&mut e, cluster);
            e.apply(Key::Backspace);
            assert_eq!(text(&e), "a", "{cluster:?}");
            typed(&mut e, cluster);
            e.apply(Key::Left);
            e.apply(Key::Delete);
            assert_eq!(text(&e), "a", "{cluster:?}");
            typed(&mut e, cluster);
            typed(&mut e, "b");
            e.apply(Key::Left);
            e.apply(Key::Left);
            assert_eq!(e.cursor(), 1, "{cluster:?}");
            e.apply(Key::KillToStart);
            e.apply(Key::KillToEnd);
        }
        // A mark typed after a letter joins it; deleting what separated
        // two parts of a cluster joins them.
        typed(&mut e, "xe");
        typed(&mut e, "\u{301}");
        e.apply(Key::Backspace);
        assert_eq!(text(&e), "x");
        typed(&mut e, "🇫z🇷");
        e.apply(Key::Left);
        e.apply(Key::Backspace);
        assert_eq!(text(&e), "x🇫🇷");
        e.apply(Key::Backspace);
        assert_eq!(text(&e), "x");
        // Flags pair up again when one is inserted in front of a run.
        e.apply(Key::KillToStart);
        typed(&mut e, "🇩🇪🇫");
        e.apply(Key::Home);
        typed(&mut e, "🇷");
        e.apply(Key::End);
        e.apply(Key::Backspace);
        assert_eq!(text(&e), "🇷🇩");
        // Ctrl-W takes the word before the cursor, clusters whole.
        typed(&mut e, " 👍🏽👍🏽");
        e.apply(Key::KillWord);
        assert_eq!(text(&e), "🇷🇩 ");
    }

    #[test]
    fn segmentation_after_edits_matches_a_fresh_one() {
        let pieces = [
            "a", "\u{301}", "🇫", "\u{200d}", "👍", "🏽", " ", "\u{1100}", "\u{1161}", "\r",
        ];
        let mut e = LineEditor::default();
        let mut seed = 7u32;
        for _ in 0..2000 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let pick = (seed >> 16) as usize;
            let key = match pick % 7 {
                0 => Key::Backspace,
                1 => Key::Left,
                2 => Key::Delete,
                3 => Key::Right,
                _ => Key::Paste(pieces[pick % pieces.len()].to_string()),
            };
            e.apply(key);
            let fresh: Vec<&str> = crate::unicode::graphemes(e.line()).collect();
            let kept: Vec<&str> = (0..e.clusters()).map(|i| e.cluster(i)).collect();
            assert_eq!(kept, fresh);
        }
    }

    #[test]
    fn a_paste_is_text_and_its_line_breaks_complete_lines() {
        let mut d = KeyDecoder::default();
        assert_eq!(d.feed(b"x\x1b[200~a\x1b[D"), [Key::Char('x')]);
        assert_eq!(d.feed(b"\rq\n/quit\x1b[20"), []);
        assert_eq!(
            d.feed(b"1~y"),
            [Key::Paste("a\x1b[D\rq\n/quit".into()), Key::Char('y')]
        );
        let mut e = LineEditor::default();
        typed(&mut e, "ab");
        e.apply(Key::Left);
        assert_eq!(
            e.apply(Key::Paste("1\r\nq\n2\t3".into())),
            Edit::SubmitPasted(vec!["a1".into(), "q".into()])
        );
        assert_eq!(text(&e), "2 3b");
        assert_eq!(e.cursor(), 3);
        assert_eq!(e.apply(Key::Paste("\x1b[31m!".into())), Edit::Changed);
        assert_eq!(text(&e), "2 3[31m!b");
    }

    /// What a read gives at once, then what a pause gives.
    fn burst(keyboard: &mut Keyboard, reads: &[&[u8]]) -> (Vec<Key>, Vec<Key>) {
        let mut keys = Vec::new();
        for (i, bytes) in reads.iter().enumerate() {
            keys.extend(keyboard.feed(bytes, i > 0));
        }
        (keys, keyboard.pause())
    }

    fn paste(text: &str) -> Key {
        Key::Paste(text.into())
    }

    #[test]
    fn an_enter_with_more_after_it_in_one_burst_is_a_paste() {
        let mut k = Keyboard::default();
        // Typed: keys at once; a burst ending in one Enter is held, then typed.
        assert_eq!(k.feed(b"q", false), [Key::Char('q')]);
        assert_eq!(k.feed(b"\n", false), []);
        assert!(k.holding());
        assert_eq!(k.pause(), [Key::Enter]);
        assert_eq!(
            burst(&mut k, &[b"y\r\n"]),
            (vec![], vec![Key::Char('y'), Key::Enter])
        );
        // The next key comes after a pause: the held Enter was typed.
        assert_eq!(k.feed(b"y\r", false), []);
        assert_eq!(
            k.feed(b"n", false),
            [Key::Char('y'), Key::Enter, Key::Char('n')]
        );
        k.pause();
        // One read with a line break and more after it: all of it pasted,
        // given whole when the burst ends.
        assert_eq!(
            burst(&mut k, &[b"hello\rq\r/quit\r"]),
            (vec![], vec![paste("hello\rq\r/quit\r")])
        );
        let mut e = LineEditor::default();
        assert_eq!(
            e.apply(paste("hello\rq\r/quit\r")),
            Edit::SubmitPasted(vec!["hello".into(), "q".into(), "/quit".into()])
        );
    }

    #[test]
    fn ctrl_c_and_ctrl_d_typed_ahead_are_keys_never_pasted_text() {
        let mut k = Keyboard::default();
        // A reader that fell behind brings typing in one read: with the
        // way out in it, it is typing, and Ctrl-C does what it always does.
        assert_eq!(
            burst(&mut k, &[b"hi\rq\r\x03"]),
            (
                vec![
                    Key::Char('h'),
                    Key::Char('i'),
                    Key::Enter,
                    Key::Char('q'),
                    Key::Enter,
                    Key::Interrupt
                ],
                vec![]
            )
        );
        k.pause();
        assert!(burst(&mut k, &[b"a\rb\x04"]).0.contains(&Key::EndOfInput));
    }

    #[test]
    fn a_paste_split_across_reads_is_pasted_whole() {
        let mut k = Keyboard::default();
        // Its first piece ends in a line break: held until the second comes.
        // A CR ending a piece and a LF starting the next are one break; a
        // character cut between pieces is joined. The pieces are one paste,
        // counted whole, given when the burst ends.
        let (keys, after) = burst(
            &mut k,
            &[b"hello\r", b"q\r/qu", b"it\r", b"\n\xc3", b"\xa9\n"],
        );
        assert_eq!(keys, []);
        assert_eq!(after, [paste("hello\rq\r/quit\r\u{e9}\n")]);
        // Once the paste is over, typing is typing again.
        assert_eq!(k.feed(b"x", false), [Key::Char('x')]);
        // Typed text, then a paste in the same burst: only from the read
        // with the line break in it on is pasted (the typed text is in the
        // line already).
        assert_eq!(
            burst(&mut k, &[b"ab", b"c\rd"]),
            (vec![Key::Char('a'), Key::Char('b')], vec![paste("c\rd")])
        );
        // A new burst ends the paste before it, and so does a bracketed
        // paste or a Ctrl-C within the same burst.
        assert_eq!(k.feed(b"a\rb", false), []);
        assert_eq!(k.feed(b"c\rd", false), [paste("a\rb")]);
        assert_eq!(
            k.feed(b"\x1b[200~e\x1b[201~", true),
            [paste("c\rd"), paste("e")]
        );
        assert_eq!(k.feed(b"f\rg", true), []);
        assert_eq!(k.feed(b"\x03", true), [paste("f\rg"), Key::Interrupt]);
        assert!(!k.holding());
    }

    #[test]
    fn bracketed_pastes_are_left_to_the_decoder() {
        let mut k = Keyboard::default();
        assert_eq!(
            burst(&mut k, &[b"\x1b[200~a\rb", b"\x1b[201~"]),
            (vec![paste("a\rb")], vec![])
        );
        // The start marker cut between reads is still seen.
        assert_eq!(
            burst(&mut k, &[b"\x1b[20", b"0~q\rz\x1b[201~"]),
            (vec![paste("q\rz")], vec![])
        );
    }

    #[test]
    fn an_unmarked_paste_keeps_at_most_max_paste_bytes() {
        let mut k = Keyboard::default();
        let piece = "a\n".repeat(1024);
        let mut kept = 0;
        for i in 0..(MAX_PASTE / piece.len() + 2) {
            assert_eq!(k.feed(piece.as_bytes(), i > 0), []);
        }
        for key in k.pause() {
            let Key::Paste(text) = key else {
                panic!("{key:?}")
            };
            kept += text.len();
        }
        assert_eq!(kept, MAX_PASTE);
    }

    #[test]
    fn alt_and_ctrl_arrows_decode_to_word_keys_in_the_common_forms() {
        assert_eq!(
            keys(b"\x1bb\x1bf\x1bd\x1b\x7f\x1b\x08"),
            [
                Key::WordBack,
                Key::WordForward,
                Key::KillNextWord,
                Key::KillPreviousWord,
                Key::KillPreviousWord
            ]
        );
        // Ctrl-← and Ctrl-→: xterm, older xterm, rxvt; Alt-← and Alt-→:
        // xterm, rxvt.
        for (bytes, key) in [
            (&b"\x1b[1;5D"[..], Key::WordBack),
            (b"\x1b[5D", Key::WordBack),
            (b"\x1bOd", Key::WordBack),
            (b"\x1b[1;3D", Key::WordBack),
            (b"\x1b\x1b[D", Key::WordBack),
            (b"\x1b[1;5C", Key::WordForward),
            (b"\x1b[5C", Key::WordForward),
            (b"\x1bOc", Key::WordForward),
            (b"\x1b[1;3C", Key::WordForward),
            (b"\x1b\x1b[C", Key::WordForward),
            // Shift-← is still ←.
            (b"\x1b[1;2D", Key::Left),
        ] {
            assert_eq!(keys(bytes), std::slice::from_ref(&key), "{bytes:?}");
            // The same, cut anywhere between two reads.
            for cut in 1..bytes.len() {
                let mut d = KeyDecoder::default();
                let mut got = d.feed(&bytes[..cut]);
                got.extend(d.feed(&bytes[cut..]));
                assert_eq!(got, std::slice::from_ref(&key), "{bytes:?} cut at {cut}");
            }
        }
        assert_eq!(keys(b"\t\x19\x1a"), [Key::Tab, Key::Yank, Key::Suspend]);
        // Alt with a key that means nothing here: the key alone, as before;
        // a run of Esc bytes is skipped, however long.
        assert_eq!(keys(b"\x1bx"), [Key::Char('x')]);
        let mut run = vec![0x1b; 100_000];
        run.extend(b"[Dy");
        assert_eq!(keys(&run), [Key::WordBack, Key::Char('y')]);
    }

    #[test]
    fn word_keys_go_by_letters_and_digits_as_readline_does() {
        let mut e = LineEditor::default();
        typed(&mut e, "héllo, wörld  42-b\u{301}c!");
        e.apply(Key::WordBack);
        assert_eq!(&e.line()[e.cursor()..], "b\u{301}c!");
        e.apply(Key::WordBack);
        assert_eq!(&e.line()[e.cursor()..], "42-b\u{301}c!");
        e.apply(Key::WordBack);
        e.apply(Key::WordBack);
        assert_eq!(e.cursor(), 0);
        assert_eq!(e.apply(Key::WordBack), Edit::Unchanged);
        e.apply(Key::WordForward);
        assert_eq!(&e.line()[e.cursor()..], ", wörld  42-b\u{301}c!");
        e.apply(Key::WordForward);
        assert_eq!(&e.line()[e.cursor()..], "  42-b\u{301}c!");
        // Alt-d deletes to where Alt-f goes; Alt-Backspace to where Alt-b.
        e.apply(Key::KillNextWord);
        assert_eq!(e.line(), "héllo, wörld-b\u{301}c!");
        e.apply(Key::KillPreviousWord);
        assert_eq!(e.line(), "héllo, -b\u{301}c!");
        e.apply(Key::End);
        e.apply(Key::KillPreviousWord);
        assert_eq!(e.line(), "héllo, -");
        e.apply(Key::WordForward);
        assert_eq!(e.apply(Key::KillNextWord), Edit::Unchanged);
    }

    #[test]
    fn ctrl_y_yanks_the_last_kill_and_kills_in_a_row_make_one() {
        let mut e = LineEditor::default();
        assert_eq!(e.apply(Key::Yank), Edit::Unchanged);
        typed(&mut e, "one two three");
        e.apply(Key::KillWord);
        e.apply(Key::Home);
        assert_eq!(e.apply(Key::Yank), Edit::Changed);
        assert_eq!(e.line(), "threeone two ");
        // Yanked again: the kill stays.
        e.apply(Key::Yank);
        assert_eq!(e.line(), "threethreeone two ");
        // Backward kills in a row gather before, forward ones after.
        e.apply(Key::End);
        e.apply(Key::KillPreviousWord);
        e.apply(Key::KillPreviousWord);
        assert_eq!(e.line(), "");
        e.apply(Key::Yank);
        assert_eq!(e.line(), "threethreeone two ");
        e.apply(Key::Home);
        e.apply(Key::KillNextWord);
        e.apply(Key::KillToEnd);
        e.apply(Key::Yank);
        assert_eq!(e.line(), "threethreeone two ");
        // Ctrl-U, then Ctrl-K: the whole line, in its order.
        e.apply(Key::WordForward);
        e.apply(Key::KillToStart);
        e.apply(Key::KillToEnd);
        e.apply(Key::Yank);
        assert_eq!(e.line(), "threethreeone two ");
        // Anything between two kills starts a new entry.
        e.apply(Key::KillWord);
        e.apply(Key::Left);
        e.apply(Key::KillWord);
        e.apply(Key::End);
        e.apply(Key::Yank);
        assert_eq!(e.line(), " threethreeone");
        // Ctrl-C clears the line (`set_aside`) without taking it for Ctrl-Y.
        let cleared = e.set_aside();
        assert_eq!(cleared, " threethreeone");
        e.apply(Key::Yank);
        assert_eq!(e.line(), "threethreeone");
    }

    #[test]
    fn tab_completes_a_name_and_a_second_tab_lists_the_matches() {
        let names: Vec<String> = ["alice", "alfred", "bob"].map(String::from).to_vec();
        let list = NamesTyped::FirstWordAndArgument;
        let mut e = LineEditor::default();
        typed(&mut e, "b");
        assert_eq!(e.complete(&names, list), Edit::Changed);
        assert_eq!(e.line(), "bob");
        // Several: what they share, then the list.
        e.apply(Key::KillToStart);
        typed(&mut e, "a");
        assert_eq!(e.complete(&names, list), Edit::Changed);
        assert_eq!(e.line(), "al");
        assert_eq!(
            e.complete(&names, list),
            Edit::Matches(vec!["alice".into(), "alfred".into()])
        );
        // Not after another key: only a second Tab in a row lists.
        e.apply(Key::Left);
        e.apply(Key::Right);
        assert_eq!(e.complete(&names, list), Edit::Unchanged);
        typed(&mut e, "i");
        e.complete(&names, list);
        assert_eq!(e.line(), "alice");
        // After a command, with a space, where the cursor is.
        e.apply(Key::KillToStart);
        typed(&mut e, "/call bo and more");
        for _ in 0..9 {
            e.apply(Key::Left);
        }
        e.complete(&names, NamesTyped::Argument);
        assert_eq!(e.line(), "/call bob  and more");
        assert_eq!(&e.line()[..e.cursor()], "/call bob ");
        // No names, or none typed here: nothing.
        assert_eq!(e.apply(Key::Tab), Edit::Unchanged);
        e.apply(Key::KillToStart);
        typed(&mut e, "b");
        assert_eq!(e.complete(&names, NamesTyped::Nowhere), Edit::Unchanged);
        assert_eq!(e.complete(&names, NamesTyped::Argument), Edit::Unchanged);
    }

    #[test]
    fn a_paste_is_counted_in_lines_and_one_line_is_told() {
        assert_eq!(pasted_lines("a"), 0);
        assert_eq!(pasted_lines("a\r\nb\nc\rd"), 3);
        assert_eq!(pasted_lines(&"x\n".repeat(2000)), 2000);
        assert_eq!(one_pasted_line("bob\n"), Some("bob"));
        assert_eq!(one_pasted_line("bob\r\n\n"), Some("bob"));
        assert_eq!(one_pasted_line("bob"), Some("bob"));
        assert_eq!(one_pasted_line("bob\nq\n"), None);
        assert_eq!(one_pasted_line("\nbob"), None);
    }

    #[test]
    fn escapes_typed_in_line_mode_are_dropped() {
        assert_eq!(without_escapes("abc\x1b[DX\x1bOA\x1b[1;5C!\x1b"), "abcX!");
        assert!(matches!(without_escapes("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn render_places_the_cursor_and_scrolls_long_lines() {
        let mut e = LineEditor::default();
        typed(&mut e, "日本 ok");
        e.apply(Key::Home);
        e.apply(Key::Right);
        e.apply(Key::Right);
        let r = e.render("to bob> ", 80);
        assert_eq!(r.text, "to bob> 日本 ok");
        assert_eq!(r.cursor_column, 8 + 4);
        // A line wider than the terminal shows the part around the cursor,
        // with markers where text is out of view.
        let mut e = LineEditor::default();
        typed(&mut e, &"x".repeat(200));
        for columns in [10, 12, 40, 80] {
            e.apply(Key::End);
            let r = e.render("> ", columns);
            assert!(width(&r.text) < columns, "{columns}: {}", r.text);
            assert!(
                r.text.starts_with("> <x") && !r.text.ends_with('>'),
                "{}",
                r.text
            );
            assert_eq!(r.cursor_column, width(&r.text));
            e.apply(Key::Home);
            let r = e.render("> ", columns);
            assert!(
                width(&r.text) < columns && r.text.ends_with("x>"),
                "{}",
                r.text
            );
            assert_eq!(r.cursor_column, 2);
            for _ in 0..100 {
                e.apply(Key::Right);
            }
            let r = e.render("> ", columns);
            assert!(
                r.text.starts_with("> <") && r.text.ends_with('>'),
                "{}",
                r.text
            );
            assert!(r.cursor_column < columns - 1);
        }
        // Wide clusters never straddle the edge; a long prompt is cut.
        let mut e = LineEditor::default();
        typed(&mut e, &"日".repeat(50));
        e.apply(Key::Home);
        e.apply(Key::Right);
        let r = e.render("to bob (relayed)> ", 12);
        assert!(width(&r.text) <= 11, "{}", r.text);
        assert!(r.text.starts_with("to> "), "{}", r.text);
        assert!(r.text.ends_with('>'), "{}", r.text);
    }

    #[test]
    fn render_work_is_bounded_by_the_width_shown() {
        let mut e = LineEditor::default();
        e.apply(Key::Paste("y".repeat(100_000)));
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            e.apply(Key::Left);
            e.apply(Key::Char('z'));
            let _ = e.render("> ", 80);
        }
        // 1,000 keys and renders in a 100,000-character line: far under a
        // second however slow the machine (the bench measures it).
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(e.line().len(), 101_000);
    }
}
