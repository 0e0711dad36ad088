//! The line editor for a raw-mode terminal, as pure state: no I/O here.
//!
//! [`KeyDecoder`] turns the bytes a terminal sends into [`Key`]s (UTF-8
//! characters, control keys, escape sequences for arrows, Home, End,
//! Delete). [`LineEditor`] applies keys to the line being typed, by
//! character, never splitting a multi-byte character, with a history of the
//! lines typed this session. [`render`] computes what the last row shows for
//! a prompt and a line, scrolled sideways to fit the terminal's width, and
//! where the cursor goes.

/// One key press, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
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
    /// Ctrl-W: delete the word before the cursor.
    KillWord,
    /// Ctrl-L: draw the line again.
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
}

impl KeyDecoder {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Key> {
        self.pending.extend_from_slice(bytes);
        let mut keys = Vec::new();
        let mut i = 0;
        while i < self.pending.len() {
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
        b'\r' | b'\n' => key(Key::Enter),
        0x0b => key(Key::KillToEnd),
        0x0c => key(Key::Redraw),
        0x0e => key(Key::Down),
        0x10 => key(Key::Up),
        0x15 => key(Key::KillToStart),
        0x17 => key(Key::KillWord),
        0x1b => decode_escape(bytes),
        b if b < 0x20 => Decoded::Nothing(1),
        _ => decode_utf8(bytes),
    }
}

fn decode_escape(bytes: &[u8]) -> Decoded {
    let Some(&kind) = bytes.get(1) else {
        return Decoded::Incomplete;
    };
    if kind != b'[' && kind != b'O' {
        // A lone Esc press followed by another key: drop the Esc.
        return Decoded::Nothing(1);
    }
    // CSI / SS3: parameters, then one final byte in 0x40..=0x7e.
    let Some(end) = bytes[2..].iter().position(|b| (0x40..=0x7e).contains(b)) else {
        return if bytes.len() > 16 {
            Decoded::Nothing(bytes.len())
        } else {
            Decoded::Incomplete
        };
    };
    let used = 2 + end + 1;
    let params = &bytes[2..2 + end];
    let key = match (bytes[2 + end], params) {
        (b'A', _) => Key::Up,
        (b'B', _) => Key::Down,
        (b'C', _) => Key::Right,
        (b'D', _) => Key::Left,
        (b'H', _) => Key::Home,
        (b'F', _) => Key::End,
        (b'~', b"1" | b"7") => Key::Home,
        (b'~', b"4" | b"8") => Key::End,
        (b'~', b"3") => Key::Delete,
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
    /// Enter: this line is done.
    Submit(String),
    /// Ctrl-D on an empty line.
    EndOfInput,
    /// Ctrl-C.
    Interrupt,
}

/// Most lines kept in the history.
const HISTORY: usize = 200;

/// The line being typed, the cursor (an index in characters), and the
/// history of submitted lines.
#[derive(Debug, Default)]
pub struct LineEditor {
    line: Vec<char>,
    cursor: usize,
    history: Vec<String>,
    /// While browsing the history: which entry is shown, and the line that
    /// was being typed before browsing started.
    browsing: Option<(usize, Vec<char>)>,
}

impl LineEditor {
    pub fn line(&self) -> &[char] {
        &self.line
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn apply(&mut self, key: Key) -> Edit {
        let before = (self.line.len(), self.cursor);
        match key {
            Key::Char(c) => {
                self.line.insert(self.cursor, c);
                self.cursor += 1;
            }
            Key::Enter => {
                let text: String = self.line.drain(..).collect();
                self.cursor = 0;
                self.browsing = None;
                if !text.is_empty() && self.history.last() != Some(&text) {
                    if self.history.len() == HISTORY {
                        self.history.remove(0);
                    }
                    self.history.push(text.clone());
                }
                return Edit::Submit(text);
            }
            Key::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                self.line.remove(self.cursor);
            }
            Key::Delete if self.cursor < self.line.len() => {
                self.line.remove(self.cursor);
            }
            Key::Left if self.cursor > 0 => self.cursor -= 1,
            Key::Right if self.cursor < self.line.len() => self.cursor += 1,
            Key::Home => self.cursor = 0,
            Key::End => self.cursor = self.line.len(),
            Key::KillToStart => {
                self.line.drain(..self.cursor);
                self.cursor = 0;
            }
            Key::KillToEnd => self.line.truncate(self.cursor),
            Key::KillWord => {
                let mut start = self.cursor;
                while start > 0 && self.line[start - 1].is_whitespace() {
                    start -= 1;
                }
                while start > 0 && !self.line[start - 1].is_whitespace() {
                    start -= 1;
                }
                self.line.drain(start..self.cursor);
                self.cursor = start;
            }
            Key::Up => return self.browse(true),
            Key::Down => return self.browse(false),
            Key::Redraw => return Edit::Changed,
            Key::Interrupt => return Edit::Interrupt,
            Key::EndOfInput if self.line.is_empty() => return Edit::EndOfInput,
            // Ctrl-D on a line deletes forward, as in a shell.
            Key::EndOfInput if self.cursor < self.line.len() => {
                self.line.remove(self.cursor);
            }
            _ => return Edit::Unchanged,
        }
        if (self.line.len(), self.cursor) == before && !matches!(key, Key::Char(_)) {
            return Edit::Unchanged;
        }
        Edit::Changed
    }

    /// Up (`older`) or down through the history.
    fn browse(&mut self, older: bool) -> Edit {
        let position = match (&self.browsing, older) {
            (None, true) if !self.history.is_empty() => {
                self.browsing = Some((self.history.len(), self.line.clone()));
                self.history.len() - 1
            }
            (Some((at, _)), true) if *at > 0 => at - 1,
            (Some((at, _)), false) if at + 1 < self.history.len() => at + 1,
            (Some(_), false) => {
                // Past the newest entry: back to the line being typed.
                if let Some((_, typed)) = self.browsing.take() {
                    self.line = typed;
                    self.cursor = self.line.len();
                }
                return Edit::Changed;
            }
            _ => return Edit::Unchanged,
        };
        if let Some((at, _)) = &mut self.browsing {
            *at = position;
        }
        self.line = self.history[position].chars().collect();
        self.cursor = self.line.len();
        Edit::Changed
    }
}

/// Columns a character takes in a terminal: 0 for combining marks and
/// other zero-width characters, 2 for East Asian wide characters and
/// emoji, 1 otherwise. A small table of the common ranges (std has none);
/// a rare character it misjudges only shifts the cursor on that line.
pub fn char_width(c: char) -> usize {
    let u = c as u32;
    if c.is_control()
        || matches!(u, 0x0300..=0x036f | 0x200b..=0x200f | 0xfe00..=0xfe0f | 0x20d0..=0x20ff)
    {
        return 0;
    }
    let wide = matches!(u,
        0x1100..=0x115f
        | 0x2e80..=0x303e
        | 0x3041..=0x33ff
        | 0x3400..=0x4dbf
        | 0x4e00..=0x9fff
        | 0xa000..=0xa4cf
        | 0xac00..=0xd7a3
        | 0xf900..=0xfaff
        | 0xfe30..=0xfe4f
        | 0xff00..=0xff60
        | 0xffe0..=0xffe6
        | 0x1f300..=0x1f64f
        | 0x1f900..=0x1f9ff
        | 0x20000..=0x3fffd);
    if wide { 2 } else { 1 }
}

fn width(chars: &[char]) -> usize {
    chars.iter().map(|&c| char_width(c)).sum()
}

/// What the last row shows: `prompt` and the part of `line` around the
/// cursor that fits in `columns`, and the column the cursor goes to.
pub fn render(prompt: &str, line: &[char], cursor: usize, columns: usize) -> (String, usize) {
    let prompt_width = prompt.chars().map(char_width).sum::<usize>();
    // Leave the last column free so the cursor never wraps the row.
    let room = columns.saturating_sub(prompt_width + 1).max(8);
    let mut start = 0;
    while width(&line[start..cursor]) > room.saturating_sub(1) && start < cursor {
        start += 1;
    }
    let mut end = cursor;
    while end < line.len() && width(&line[start..=end]) <= room {
        end += 1;
    }
    let mut text = String::with_capacity(prompt.len() + 4 * (end - start));
    text.push_str(prompt);
    text.extend(&line[start..end]);
    (text, prompt_width + width(&line[start..cursor]))
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
        editor.line().iter().collect()
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
        assert_eq!(e.cursor(), 2);
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
    fn widths_count_wide_and_zero_width_characters() {
        assert_eq!(char_width('a'), 1);
        assert_eq!(char_width('é'), 1);
        assert_eq!(char_width('日'), 2);
        assert_eq!(char_width('😀'), 2);
        assert_eq!(char_width('\u{301}'), 0);
    }

    #[test]
    fn render_places_the_cursor_and_scrolls_long_lines() {
        let line: Vec<char> = "日本 ok".chars().collect();
        let (text, col) = render("to bob> ", &line, 2, 80);
        assert_eq!(text, "to bob> 日本 ok");
        assert_eq!(col, 8 + 4);
        // A line wider than the terminal shows the part around the cursor.
        let long: Vec<char> = "x".repeat(200).chars().collect();
        let (text, col) = render("> ", &long, 200, 40);
        assert!(text.chars().count() <= 39, "{}", text.len());
        assert!(col <= 39);
        let (text, col) = render("> ", &long, 0, 40);
        assert_eq!(col, 2);
        assert!(text.chars().count() <= 39);
    }
}
