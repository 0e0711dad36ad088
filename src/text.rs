//! The one gate for untrusted text: everything that came from the network
//! (a peer's lines, error texts from peers and servers, names, reasons)
//! passes [`shown`] before a terminal or a log sees it.
//!
//! A terminal obeys control characters: ESC starts sequences that move the
//! cursor, clear the screen, retitle the window or fake a line; BEL rings;
//! C1 controls (U+0080–U+009F) are escapes of their own on some terminals.
//! So each is written visibly instead: C0 controls as `^X` (ESC is `^[`),
//! DEL as `^?`, every other control character as `\u{..}`. A tab stays a
//! tab: it only moves the cursor right, within the line.
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
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c as u32 {
            _ if !needs_escape(c) => out.push(c),
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

/// Whether `text` is printable ASCII (and tabs), the bulk of chat text,
/// which [`shown`] passes without a look at characters. Folded without an
/// early exit, so that it runs many bytes at a time: a burst of lines is
/// best checked in one call.
pub fn is_printable_ascii(text: &str) -> bool {
    !text.bytes().fold(false, |any, b| {
        any | ((b < 0x20 && b != b'\t') | (b >= 0x7f))
    })
}

/// [`is_printable_ascii`] for a buffer holding lines and what was between
/// them ([`crate::lines::Lines::buffer`]): `\n` passes too, since no line
/// holds one. True only if every line is printable ASCII.
pub fn is_printable_ascii_lines(buffer: &str) -> bool {
    !buffer.bytes().fold(false, |any, b| {
        any | ((b < 0x20 && b != b'\t' && b != b'\n') | (b >= 0x7f))
    })
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t') || (!c.is_ascii() && is_bidi_control_or_separator(c))
}

#[cfg(test)]
mod tests {
    use super::{is_printable_ascii, is_printable_ascii_lines, shown};

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(shown("a\x1b]0;owned\x07b"), "a^[]0;owned^Gb");
        assert_eq!(shown("tab\tok\x7f"), "tab\tok^?");
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
        assert!(is_printable_ascii("plain\ttext ~"));
        assert!(is_printable_ascii_lines("one\ntwo\n") && !is_printable_ascii("one\ntwo"));
        assert!(!is_printable_ascii_lines("a\r\nb") && !is_printable_ascii_lines("\x1b[2J\n"));
        assert!(
            !is_printable_ascii(text) && !is_printable_ascii("a\x7f") && !is_printable_ascii("\n")
        );
    }
}
