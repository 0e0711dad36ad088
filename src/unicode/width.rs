//! How many terminal columns a cluster takes: 0, 1 or 2.
//!
//! The rule, since terminals disagree on the newer cases: a cluster is as
//! wide as its first code point — 0 for marks, format characters and
//! default ignorables, 2 for East_Asian_Width W or F and for
//! Emoji_Presentation, 1 for everything else (Ambiguous included) — except
//! that an Emoji followed by U+FE0F (VS16, emoji presentation) takes 2. So
//! `👍🏽`, a ZWJ family, a flag and a keycap `1️⃣` are 2 columns each, `e` +
//! U+0301 is 1 and a Hangul syllable spelt in jamo is 2. Terminals that
//! draw each emoji of a ZWJ sequence separately (tmux 3.3 does) show such
//! a sequence wider than this counts; the editor then places the cursor a
//! little left on that row, never outside it.

use super::contains;
use super::grapheme::graphemes;
use super::tables::{EMOJI, WIDE, ZERO_WIDTH};

/// Columns the cluster `cluster` takes (see the module's rule).
pub fn cluster_width(cluster: &str) -> usize {
    let mut chars = cluster.chars();
    let Some(first) = chars.next() else {
        return 0;
    };
    let cp = first as u32;
    if first.is_control() || contains(ZERO_WIDTH, cp) {
        return 0;
    }
    if contains(WIDE, cp) || (contains(EMOJI, cp) && chars.any(|c| c == '\u{fe0f}')) {
        2
    } else {
        1
    }
}

/// Columns `text` takes, cluster by cluster.
pub fn width(text: &str) -> usize {
    graphemes(text).map(cluster_width).sum()
}

#[cfg(test)]
mod tests {
    use super::{cluster_width, width};

    #[test]
    fn clusters_take_zero_one_or_two_columns() {
        for (cluster, columns) in [
            ("a", 1),
            ("é", 1),
            ("e\u{301}", 1),
            ("日", 2),
            ("ｎ", 2),
            ("😀", 2),
            ("👍🏽", 2),
            ("👨‍👩‍👧", 2),
            ("🇫🇷", 2),
            ("1\u{fe0f}\u{20e3}", 2),
            ("❤\u{fe0f}", 2),
            ("❤", 1),
            ("\u{1100}\u{1161}\u{11a8}", 2),
            ("\u{301}", 0),
            ("\u{200b}", 0),
            ("…", 1),
        ] {
            assert_eq!(cluster_width(cluster), columns, "{cluster:?}");
        }
        assert_eq!(width("日本 ok 👍🏽"), 10);
    }
}
