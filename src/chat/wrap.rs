//! How a line printed above the prompt is laid out in rows: wrapped at
//! blanks, never inside a word, each row after the first indented; pure,
//! so that every case is a unit test.
//!
//! Two promises meet here. A person copies what the screen shows, so a
//! word (a URL above all) must come back whole, even from a terminal that
//! joins only the rows it wrapped itself (`tmux capture-pane -J`). And no
//! peer may write a row that passes for the program's own, such as
//! `mallory left the chat.` or `Online users (9):`, which start at column
//! 0; so every row of a line after its first starts indented, a peer's
//! under its text (`bob: hello …` goes on under the `h`, as in irssi).
//!
//! A word wider than an indented row cannot have both. Such a word is
//! written whole, on a row of its own, and the terminal wraps it: its
//! rows after the first start at column 0, and so copy as one word. What
//! keeps those rows from passing for the program's: nothing else shares
//! the rows of an over-long word. What a peer puts at column 0 is then a
//! piece of one unbroken run of characters, with no blank in it, and
//! every row the program starts at column 0 holds a space (but the help's
//! `Commands:` heading). A blank here is a space, whatever invisible
//! characters share its cluster, or a character drawn as nothing but a
//! blank cell (U+2800 braille blank, the Hangul fillers), which would
//! otherwise glue `Online⠀users` into one word; the one gate for untrusted
//! text ([`crate::text::shown`]) has made tabs and the other Unicode
//! spaces spaces already.
//!
//! Widths are the display cells the chat counts for each cluster
//! ([`crate::unicode::cluster_width`]): wide CJK as 2, combining marks
//! with the letter they sit on. A terminal that draws a cluster wider
//! than that (some draw emoji sequences so) would spill a row onto the
//! next one's column 0; `ui.rs` writes the rows laid out here with the
//! terminal's autowrap off, so such a row is cut at the edge instead.

use crate::text::is_printable_ascii;
use crate::unicode::{cluster_width, graphemes};

/// Columns the rows of a line that is not a peer's (a notice, the list)
/// are indented by after the first: more than the list's own two, so a
/// notice quoting a peer cannot pass for a row of the list either.
pub const NOTICE_INDENT: usize = 4;

/// Where a line's rows start on a terminal `columns` wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub columns: usize,
    /// Columns taken on the first row before the text (`bob: `).
    pub first: usize,
    /// Columns every later row starts at.
    pub indent: usize,
}

/// One row of a laid-out line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row<'a> {
    /// Text that fits in the row as the chat counts it.
    Fits(&'a str),
    /// One word wider than a row: written whole, wrapped by the terminal,
    /// and alone on its rows.
    Overlong(&'a str),
}

impl Layout {
    /// A line whose later rows start under its text, which begins after
    /// `prefix` columns (`bob: `, `12:34 bob: `, the prompt of an echoed
    /// line): as far in as that, but never past half the row, so a long
    /// name still leaves room for the text.
    pub fn under(prefix: usize, columns: usize) -> Layout {
        Layout {
            columns,
            first: prefix,
            indent: prefix.min(columns / 2).max(1),
        }
    }

    /// A line of the program's own (a notice, the list, help), from column
    /// 0, its later rows [`NOTICE_INDENT`] in.
    pub fn notice(columns: usize) -> Layout {
        Layout {
            columns,
            first: 0,
            indent: NOTICE_INDENT.min(columns / 2).max(1),
        }
    }

    /// `text` cut into rows at blanks. The first row follows the prefix
    /// (it is empty when not even the first word fits there); each later
    /// row is meant to be written after a line break and `indent` spaces.
    /// Blanks at a break are dropped; those that start the line are kept
    /// when the first word fits after them, and those that end it are not.
    pub fn rows<'a>(&self, text: &'a str) -> Vec<Row<'a>> {
        if is_printable_ascii(text) {
            self.lay_out(text, ascii_words(text))
        } else {
            self.lay_out(text, words(text))
        }
    }

    /// [`Layout::rows`] of `text`, whose words are `words`.
    fn lay_out<'a>(&self, text: &'a str, words: impl Iterator<Item = Word>) -> Vec<Row<'a>> {
        let columns = self.columns.max(1);
        let mut rows = Vec::new();
        let mut row = Filling::new(self.first);
        // Columns of blanks since the last word.
        let mut gap = 0;
        for word in words {
            let (start, end, width) = match word {
                Word::Blank { width } => {
                    gap += width;
                    continue;
                }
                Word::Text { start, end, width } => (start, end, width),
            };
            let line_start = rows.is_empty() && !row.has_word;
            let blanks = std::mem::take(&mut gap);
            // Blanks before a row's first word are dropped, but for the
            // line's own.
            let gap = if row.has_word || line_start {
                blanks
            } else {
                0
            };
            if row.used + gap + width <= columns {
                if !row.has_word {
                    row.start = if line_start { 0 } else { start };
                    row.has_word = true;
                }
                row.end = end;
                row.used += gap + width;
                continue;
            }
            let overlong = self.indent + width > columns;
            if overlong && line_start && row.used < columns {
                // Right after the prefix, where the line starts anyway.
                rows.push(Row::Overlong(&text[start..end]));
                row = Filling::new(self.indent);
                continue;
            }
            row.close(text, &mut rows);
            if overlong {
                rows.push(Row::Overlong(&text[start..end]));
                row = Filling::new(self.indent);
            } else {
                row = Filling {
                    start,
                    end,
                    used: self.indent + width,
                    has_word: true,
                };
            }
        }
        row.close(text, &mut rows);
        rows
    }
}

/// The row being filled.
struct Filling {
    /// Byte range of its text.
    start: usize,
    end: usize,
    /// Columns taken, prefix or indent included.
    used: usize,
    has_word: bool,
}

impl Filling {
    fn new(used: usize) -> Filling {
        Filling {
            start: 0,
            end: 0,
            used,
            has_word: false,
        }
    }

    /// Ends the row: kept if it holds a word, or if it is the first (the
    /// prefix is there either way); a fresh row after an over-long word
    /// that nothing came to is not a row.
    fn close<'a>(&self, text: &'a str, rows: &mut Vec<Row<'a>>) {
        if self.has_word || rows.is_empty() {
            rows.push(Row::Fits(&text[self.start..self.end]));
        }
    }
}

/// A run of blank clusters, or of others, in a line.
enum Word {
    Blank {
        width: usize,
    },
    Text {
        start: usize,
        end: usize,
        width: usize,
    },
}

/// The words and the runs of blanks between them, in order.
fn words(text: &str) -> impl Iterator<Item = Word> + '_ {
    let mut clusters = graphemes(text)
        .scan(0, |at, cluster| {
            let start = *at;
            *at += cluster.len();
            Some((start, cluster))
        })
        .peekable();
    std::iter::from_fn(move || {
        let (start, first) = clusters.next()?;
        let blank = is_blank(first);
        let mut end = start + first.len();
        let mut width = cluster_width(first);
        while let Some(&(at, cluster)) = clusters.peek() {
            if is_blank(cluster) != blank {
                break;
            }
            clusters.next();
            end = at + cluster.len();
            width += cluster_width(cluster);
        }
        Some(if blank {
            Word::Blank { width }
        } else {
            Word::Text { start, end, width }
        })
    })
}

/// [`words`] of printable ASCII, the bulk of chat text: a byte is a
/// cluster one column wide, and only a space is blank.
fn ascii_words(text: &str) -> impl Iterator<Item = Word> + '_ {
    let bytes = text.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = at;
        let blank = *bytes.get(at)? == b' ';
        at += bytes[at..]
            .iter()
            .position(|&b| (b == b' ') != blank)
            .unwrap_or(bytes.len() - at);
        let width = at - start;
        Some(if blank {
            Word::Blank { width }
        } else {
            Word::Text {
                start,
                end: at,
                width,
            }
        })
    })
}

/// Whether a cluster is a blank to wrap at: one with a space in it, or a
/// character drawn as nothing but a blank cell (braille blank, the Hangul
/// fillers). A space with more in its cluster (a joiner, a variation
/// selector, a mark) is a blank still: what is invisible must not glue
/// `Online users` into one word, and a mark that shows is dropped at
/// most, at a break.
fn is_blank(cluster: &str) -> bool {
    cluster.chars().any(|c| {
        matches!(
            c,
            ' ' | '\u{115f}' | '\u{1160}' | '\u{2800}' | '\u{3164}' | '\u{ffa0}'
        )
    })
}

#[cfg(test)]
mod tests {
    use super::{Layout, NOTICE_INDENT, Row, Row::*};
    use crate::text::shown;
    use crate::unicode::width;

    /// `text` after `bob: ` (5 columns) on a terminal `columns` wide.
    fn bob(text: &str, columns: usize) -> Vec<Row<'_>> {
        Layout::under(5, columns).rows(text)
    }

    #[test]
    fn lines_wrap_at_spaces_and_never_inside_a_word() {
        assert_eq!(
            bob("hello there world", 20),
            [Fits("hello there"), Fits("world")]
        );
        // Exactly full is full; one column more goes on.
        assert_eq!(bob("abcdefghij klmno", 21), [Fits("abcdefghij klmno")]);
        assert_eq!(
            bob("abcdefghij klmnop", 21),
            [Fits("abcdefghij"), Fits("klmnop")]
        );
        // The blanks at a break are dropped, the ones inside a row kept.
        assert_eq!(bob("a  b     c", 12), [Fits("a  b"), Fits("c")]);
        assert_eq!(bob("", 20), [Fits("")]);
        assert_eq!(bob("   ", 20), [Fits("")]);
        assert_eq!(bob("trailing   ", 20), [Fits("trailing")]);
    }

    #[test]
    fn leading_blanks_stay_when_the_first_word_fits_after_them() {
        assert_eq!(bob("  indented code", 30), [Fits("  indented code")]);
        // Blanks that would push the first word off the row are dropped.
        let far = format!("{}Online users (9):", " ".repeat(60));
        assert_eq!(bob(&far, 40), [Fits(""), Fits("Online users (9):")]);
    }

    #[test]
    fn rows_after_the_first_start_under_the_text() {
        let layout = Layout::under(5, 60);
        assert_eq!((layout.first, layout.indent), (5, 5));
        // A prefix wider than half the row indents by half the row.
        assert_eq!(Layout::under(50, 60).indent, 30);
        assert_eq!(Layout::under(12, 10).indent, 5);
        assert_eq!(
            Layout::notice(80),
            Layout {
                columns: 80,
                first: 0,
                indent: NOTICE_INDENT
            }
        );
        // Every later row, written after the indent, fits.
        let text = "the quick brown fox jumps over the lazy dog ".repeat(8);
        for row in &layout.rows(&text)[1..] {
            let Fits(row) = row else { panic!("{row:?}") };
            assert!(5 + width(row) <= 60, "{row:?}");
        }
    }

    #[test]
    fn a_prefix_that_fills_the_row_sends_the_text_to_the_next() {
        let layout = Layout::under(60, 60);
        assert_eq!(layout.rows("hi there"), [Fits(""), Fits("hi there")]);
        let layout = Layout::under(75, 60);
        assert_eq!(layout.rows("hi"), [Fits(""), Fits("hi")]);
    }

    #[test]
    fn a_word_longer_than_the_row_is_whole_and_alone() {
        let url = format!("https://example.com/{}", "a".repeat(100));
        // First in the line: right after the prefix.
        let line = format!("{url} after");
        assert_eq!(bob(&line, 40), [Overlong(&url[..]), Fits("after")]);
        // Later: on a row of its own, and nothing after it on its rows.
        let line = format!("see {url} and more");
        assert_eq!(
            bob(&line, 40),
            [Fits("see"), Overlong(&url[..]), Fits("and more")]
        );
        let line = format!("{url} {url}");
        assert_eq!(bob(&line, 40), [Overlong(&url[..]), Overlong(&url[..])]);
        // A word that fits a fresh row is no over-long word.
        let word = "w".repeat(35);
        assert_eq!(
            bob(&format!("ab {word}"), 40),
            [Fits("ab"), Fits(&word[..])]
        );
        let word = "w".repeat(36);
        assert_eq!(
            bob(&format!("ab {word}"), 40),
            [Fits("ab"), Overlong(&word[..])]
        );
    }

    #[test]
    fn no_row_of_a_peers_line_puts_its_text_at_column_zero() {
        // A filled first row, then what would be a notice at column 0.
        let fill = format!("{} {}", "x".repeat(26), "y".repeat(27));
        let line = format!("{fill} Online users (9):");
        assert_eq!(bob(&line, 60), [Fits(&fill[..]), Fits("Online users (9):")]);
        // An over-long word's end reaches column 0, but alone: what comes
        // after it starts a row of its own, indented.
        let long = format!("{}Online", "x".repeat(55));
        let line = format!("{long} users (9):");
        assert_eq!(bob(&line, 60), [Overlong(&long[..]), Fits("users (9):")]);
        // A blank that is not a space is a blank too.
        let line = format!("{long}\u{2800}users\u{2800}(9):");
        assert_eq!(
            bob(&line, 60),
            [Overlong(&long[..]), Fits("users\u{2800}(9):")]
        );
        let line = format!("{long}\u{3164}users");
        assert_eq!(bob(&line, 60), [Overlong(&long[..]), Fits("users")]);
    }

    #[test]
    fn tabs_reach_the_wrap_as_the_spaces_they_are_shown_as() {
        // Four spaces per tab, counted and broken at like spaces.
        let text = shown("ab\tcd\t\t\t\t\t\t\t\t\tmallory left the chat.");
        assert_eq!(
            bob(&text, 25),
            [Fits("ab    cd"), Fits("mallory left the"), Fits("chat.")]
        );
        let text = shown("x\u{3000}y\u{a0}z");
        assert_eq!(bob(&text, 10), [Fits("x  y"), Fits("z")]);
    }

    #[test]
    fn widths_are_the_cells_the_chat_counts() {
        // Wide CJK: two columns each; 5 + 2 + 1 + 4 = 12 fits in 12.
        assert_eq!(bob("日 本語 漢字", 12), [Fits("日 本語"), Fits("漢字")]);
        // A CJK run with no space is one word, over-long when wider than
        // the row.
        let run = "日本語の文章".repeat(5);
        assert_eq!(
            bob(&format!("{run} ok"), 30),
            [Overlong(&run[..]), Fits("ok")]
        );
        // Combining marks take no column of their own.
        let accented = "e\u{301}".repeat(10);
        assert_eq!(
            bob(&format!("{accented} {accented}"), 25),
            [Fits(&accented[..]), Fits(&accented[..])]
        );
        assert_eq!(
            bob(&format!("{accented} a"), 17),
            [Fits(&format!("{accented} a")[..])]
        );
        // A space with more in its cluster is a blank: kept inside a row,
        // and nothing invisible glues words across it.
        assert_eq!(bob("a \u{301}b c", 9), [Fits("a \u{301}b"), Fits("c")]);
        let long = "x".repeat(60);
        let line = format!("{long} \u{200d}users \u{fe0f}(9):");
        assert_eq!(
            bob(&line, 40),
            [Overlong(&long[..]), Fits("users \u{fe0f}(9):")]
        );
        // An emoji with a skin tone is one cluster of two columns.
        assert_eq!(bob("👍🏽👍🏽 👍🏽", 10), [Fits("👍🏽👍🏽"), Fits("👍🏽")]);
    }

    #[test]
    fn any_line_keeps_every_word_whole_and_every_later_row_in_its_row() {
        let pieces = [
            "a",
            "bb",
            "ccc",
            "日本",
            "e\u{301}",
            "https://example.com/path",
            " ",
            "  ",
            "\u{2800}",
            "wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww",
        ];
        let mut seed: u32 = 0x2545_f491;
        for _ in 0..2000 {
            let mut text = String::new();
            for _ in 0..(seed % 40) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                text.push_str(pieces[seed as usize % pieces.len()]);
            }
            let columns = 10 + (seed % 50) as usize;
            let prefix = 3 + (seed % 20) as usize;
            let layout = Layout::under(prefix, columns);
            let rows = layout.rows(&text);
            // The short cut for ASCII lays out as the grapheme rules do.
            assert_eq!(rows, layout.lay_out(&text, super::words(&text)), "{text:?}");
            let mut words = Vec::new();
            for (i, row) in rows.iter().enumerate() {
                match *row {
                    Fits(row) if i == 0 => {
                        assert!(row.is_empty() || prefix + width(row) <= columns, "{text:?}")
                    }
                    Fits(row) => assert!(layout.indent + width(row) <= columns, "{text:?}"),
                    Overlong(word) => {
                        assert!(layout.indent + width(word) > columns, "{text:?}");
                        assert_eq!(super::words(word).count(), 1, "{text:?}");
                    }
                }
                let (Fits(row) | Overlong(row)) = *row;
                words.extend(row.split([' ', '\u{2800}']).filter(|w| !w.is_empty()));
            }
            let whole: Vec<&str> = text
                .split([' ', '\u{2800}'])
                .filter(|w| !w.is_empty())
                .collect();
            assert_eq!(words, whole, "{text:?} at {columns} columns");
        }
    }
}
