//! The one gate for untrusted text: everything that came from the network
//! (a peer's lines, error texts from peers and servers, names, reasons)
//! passes [`shown`] before a terminal or a log sees it.
//!
//! A terminal obeys control characters: ESC starts sequences that move the
//! cursor, clear the screen, retitle the window or fake a line; BEL rings;
//! C1 controls (U+0080–U+009F) are escapes of their own on some terminals.
//! So each is written visibly instead: C0 controls as `^X` (ESC is `^[`),
//! DEL as `^?`, every other control character as `\u{..}`.
//!
//! A tab moves the cursor to the terminal's next tab stop, up to 8 columns,
//! which the chat cannot count: a run of tabs could carry a peer's text to
//! a new row's first column, where it would pass for the program's own
//! (`mallory left the chat.`). So a tab is written as four spaces, and the
//! other blanks (no-break space, the U+2000–U+200A spaces, U+202F, U+205F)
//! as one space each, U+3000 (two columns wide) as two: counted at their
//! true width, and wrapped at like spaces.
//!
//! Bidirectional controls (U+202A–U+202E embeddings and overrides,
//! U+2066–U+2069 isolates, U+200E, U+200F, U+061C marks) and the line and
//! paragraph separators U+2028, U+2029 are shown the same way, as
//! `\u{202e}`: a terminal that reorders text would otherwise display
//! `pay to account \u{202e}1234-5678` as `pay to account 8765-4321`.

use std::borrow::Cow;

use crate::unicode::is_bidi_control_or_separator;

/// `text` as it may be shown: unchanged (and not copied) when it holds
/// nothing a terminal would obey.
pub fn shown(text: &str) -> Cow<'_, str> {
    if is_printable_ascii(text) {
        return Cow::Borrowed(text);
    }
    if !text.chars().any(needs_change) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c as u32 {
            _ if !needs_change(c) => out.push(c),
            0x09 => out.push_str("    "),
            0x3000 => out.push_str("  "),
            _ if is_other_blank(c) => out.push(' '),
            0x00..=0x1f => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            0x7f => out.push_str("^?"),
            _ => out.extend(c.escape_unicode()),
        }
    }
    Cow::Owned(out)
}

/// Whether `text` is printable ASCII, the bulk of chat text,
/// which [`shown`] passes without a look at characters. Folded without an
/// early exit, so that it runs many bytes at a time: a burst of lines is
/// best checked in one call.
pub fn is_printable_ascii(text: &str) -> bool {
    !text
        .bytes()
        .fold(false, |any, b| any | !(0x20..0x7f).contains(&b))
}

/// [`is_printable_ascii`] for a buffer holding lines and what was between
/// them ([`crate::lines::Lines::buffer`]): `\n` passes too, since no line
/// holds one. True only if every line is printable ASCII.
pub fn is_printable_ascii_lines(buffer: &str) -> bool {
    !buffer.bytes().fold(false, |any, b| {
        any | ((b < 0x20 && b != b'\n') | (b >= 0x7f))
    })
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t') || (!c.is_ascii() && is_bidi_control_or_separator(c))
}

/// A blank a terminal may draw at a width the chat does not count the
/// same: a tab, or a space other than the ASCII one.
fn is_other_blank(c: char) -> bool {
    matches!(
        c,
        '\u{a0}' | '\u{2000}'..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

/// Whether [`shown`] writes `c` otherwise than as it is.
fn needs_change(c: char) -> bool {
    c == '\t' || needs_escape(c) || is_other_blank(c)
}

#[cfg(test)]
mod tests {
    use super::{is_printable_ascii, is_printable_ascii_lines, shown};

    #[test]
    fn tabs_and_other_blanks_are_spaces_counted_at_their_width() {
        assert_eq!(
            shown("\t\t\tmallory left the chat."),
            "            mallory left the chat."
        );
        assert_eq!(shown("a\u{a0}b\u{2003}c\u{3000}d"), "a b c  d");
        assert!(!is_printable_ascii("a\tb"));
        assert!(!is_printable_ascii_lines("a\tb\nc"));
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(shown("a\x1b]0;owned\x07b"), "a^[]0;owned^Gb");
        assert_eq!(shown("tab\tok\x7f"), "tab    ok^?");
        assert_eq!(shown("\u{85}\u{9b}2J"), "\\u{85}\\u{9b}2J");
        assert_eq!(shown("\r\n"), "^M^J");
    }

    #[test]
    fn bidi_controls_and_separators_are_shown_not_obeyed() {
        assert_eq!(
            shown("pay to account \u{202e}1234-5678\u{202c}"),
            "pay to account \\u{202e}1234-5678\\u{202c}"
        );
        assert_eq!(
            shown("\u{2066}a\u{2069}\u{2028}b\u{2029}\u{200f}"),
            "\\u{2066}a\\u{2069}\\u{2028}b\\u{2029}\\u{200f}"
        );
    }

    #[test]
    fn plain_text_is_passed_through_uncopied() {
        let text = "hello wörld ✓ 👍🏽";
        assert!(matches!(shown(text), std::borrow::Cow::Borrowed(t) if t == text));
        assert!(is_printable_ascii("plain text ~"));
        assert!(is_printable_ascii_lines("one\ntwo\n") && !is_printable_ascii("one\ntwo"));
        assert!(!is_printable_ascii_lines("a\r\nb") && !is_printable_ascii_lines("\x1b[2J\n"));
        assert!(
            !is_printable_ascii(text) && !is_printable_ascii("a\x7f") && !is_printable_ascii("\n")
        );
    }
}
