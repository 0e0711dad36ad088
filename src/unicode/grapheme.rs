//! Extended grapheme clusters (UAX #29, Unicode 15.0 rules GB1–GB999): what
//! a reader takes for one character, such as `e` + U+0301, `👍🏽`, a ZWJ
//! family, a flag or a Hangul syllable spelt in jamo.
//!
//! Every rule decides a break from what lies before it and the one code
//! point after it, and from a known boundary the rules need nothing before
//! it. So segmentation can start at any boundary, which is what lets the
//! line editor re-segment only around an edit.

use super::tables::GRAPHEME_BREAK;
use super::{GraphemeCat, lookup};

fn category(c: char) -> GraphemeCat {
    lookup(GRAPHEME_BREAK, c as u32).unwrap_or(GraphemeCat::Other)
}

/// The end of the cluster that starts at byte `start` of `text`, which must
/// be a boundary (0 is one). Returns `text.len()` at the end.
pub fn next_boundary(text: &str, start: usize) -> usize {
    use GraphemeCat::*;
    let mut chars = text[start..].char_indices();
    let Some((_, first)) = chars.next() else {
        return text.len();
    };
    let mut before = category(first);
    // GB11: the text so far ends in ExtPict Extend*, or in ExtPict Extend* ZWJ.
    let mut emoji = before == ExtPict;
    let mut emoji_zwj = false;
    // GB12/13: regional indicators in a row so far (odd: one is waiting).
    let mut regional = usize::from(before == RegionalIndicator);
    for (at, c) in chars {
        let after = category(c);
        let joined = match (before, after) {
            (Cr, Lf) => true,
            (Cr | Lf | Control, _) | (_, Cr | Lf | Control) => false,
            (L, L | V | Lv | Lvt) | (Lv | V, V | T) | (Lvt | T, T) => true,
            (_, Extend | Zwj | SpacingMark) | (Prepend, _) => true,
            (Zwj, ExtPict) => emoji_zwj,
            (RegionalIndicator, RegionalIndicator) => regional % 2 == 1,
            _ => false,
        };
        if !joined {
            return start + at;
        }
        emoji_zwj = after == Zwj && emoji;
        emoji = match after {
            ExtPict => true,
            Extend => emoji,
            _ => false,
        };
        regional = if after == RegionalIndicator {
            regional + 1
        } else {
            0
        };
        before = after;
    }
    text.len()
}

/// The clusters of `text`, in order.
pub fn graphemes(text: &str) -> Graphemes<'_> {
    Graphemes { text, at: 0 }
}

/// Iterator over the clusters of a string (see [`graphemes`]).
#[derive(Debug, Clone)]
pub struct Graphemes<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Iterator for Graphemes<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.at >= self.text.len() {
            return None;
        }
        let end = next_boundary(self.text, self.at);
        let cluster = &self.text[self.at..end];
        self.at = end;
        Some(cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::graphemes;

    fn clusters(text: &str) -> Vec<&str> {
        graphemes(text).collect()
    }

    #[test]
    fn user_perceived_characters_are_one_cluster() {
        assert_eq!(clusters("👍🏽x"), ["👍🏽", "x"]);
        assert_eq!(clusters("e\u{301}a"), ["e\u{301}", "a"]);
        assert_eq!(clusters("👨‍👩‍👧"), ["👨‍👩‍👧"]);
        assert_eq!(clusters("🇫🇷🇩🇪🇮"), ["🇫🇷", "🇩🇪", "🇮"]);
        assert_eq!(clusters("1\u{fe0f}\u{20e3}"), ["1\u{fe0f}\u{20e3}"]);
        assert_eq!(
            clusters("\u{1100}\u{1161}\u{11a8}"),
            ["\u{1100}\u{1161}\u{11a8}"]
        );
        assert_eq!(clusters("\r\n\n"), ["\r\n", "\n"]);
        assert_eq!(clusters(""), Vec::<&str>::new());
    }
}
