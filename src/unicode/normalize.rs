//! Normalisation (UAX #15): NFD and NFC, and NFKC_Casefold, the form two
//! names are compared in.
//!
//! NFD applies the full canonical decompositions (the generator resolves
//! them recursively; Hangul syllables are computed), then puts each run of
//! combining marks in canonical order (a stable sort by combining class).
//! NFC then composes each starter with the marks that follow it and are not
//! blocked, using the primary composites (canonical pairs that are not
//! Full_Composition_Exclusion). NFKC_Casefold maps each code point of the
//! NFD form by `NFKC_CF` (DerivedNormalizationProps.txt) and composes the
//! result, which is how that property is defined to be applied.

use super::lookup;
use super::tables::{
    CASEFOLDED, COMBINING_CLASS, COMPOSITION, DECOMPOSED, DECOMPOSITION, NFKC_CASEFOLD,
};

const HANGUL_S: u32 = 0xac00;
const HANGUL_L: u32 = 0x1100;
const HANGUL_V: u32 = 0x1161;
const HANGUL_T: u32 = 0x11a7;
const HANGUL_V_COUNT: u32 = 21;
const HANGUL_T_COUNT: u32 = 28;
const HANGUL_N: u32 = HANGUL_V_COUNT * HANGUL_T_COUNT;
const HANGUL_COUNT: u32 = 19 * HANGUL_N;

pub(super) fn combining_class(c: char) -> u8 {
    lookup(COMBINING_CLASS, c as u32).unwrap_or(0)
}

/// Pushes the full canonical decomposition of `c`.
fn decompose_into(c: char, out: &mut Vec<char>) {
    let cp = c as u32;
    if (HANGUL_S..HANGUL_S + HANGUL_COUNT).contains(&cp) {
        let s = cp - HANGUL_S;
        let jamo = [
            Some(HANGUL_L + s / HANGUL_N),
            Some(HANGUL_V + (s % HANGUL_N) / HANGUL_T_COUNT),
            Some(HANGUL_T + s % HANGUL_T_COUNT).filter(|&t| t != HANGUL_T),
        ];
        out.extend(jamo.into_iter().flatten().filter_map(char::from_u32));
        return;
    }
    match DECOMPOSITION.binary_search_by_key(&cp, |&(from, _, _)| from) {
        Ok(i) => {
            let (_, offset, len) = DECOMPOSITION[i];
            let at = usize::from(offset);
            out.extend(DECOMPOSED[at..at + usize::from(len)].chars());
        }
        Err(_) => out.push(c),
    }
}

/// Puts every run of non-starters in canonical order (stable by class).
fn reorder(chars: &mut [char]) {
    let mut i = 0;
    while i < chars.len() {
        if combining_class(chars[i]) == 0 {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && combining_class(chars[i]) != 0 {
            i += 1;
        }
        chars[start..i].sort_by_key(|&c| combining_class(c));
    }
}

/// The canonical decomposition of `text`, in canonical order (NFD).
pub(super) fn decomposed(text: impl Iterator<Item = char>) -> Vec<char> {
    let mut out = Vec::new();
    for c in text {
        decompose_into(c, &mut out);
    }
    reorder(&mut out);
    out
}

fn compose_pair(first: char, second: char) -> Option<char> {
    let (a, b) = (first as u32, second as u32);
    if (HANGUL_L..HANGUL_L + 19).contains(&a) && (HANGUL_V..HANGUL_V + HANGUL_V_COUNT).contains(&b)
    {
        let lv = HANGUL_S + ((a - HANGUL_L) * HANGUL_V_COUNT + (b - HANGUL_V)) * HANGUL_T_COUNT;
        return char::from_u32(lv);
    }
    if (HANGUL_S..HANGUL_S + HANGUL_COUNT).contains(&a)
        && (a - HANGUL_S).is_multiple_of(HANGUL_T_COUNT)
        && (HANGUL_T + 1..HANGUL_T + HANGUL_T_COUNT).contains(&b)
    {
        return char::from_u32(a + (b - HANGUL_T));
    }
    COMPOSITION
        .binary_search_by_key(&(a, b), |&(x, y, _)| (x, y))
        .ok()
        .and_then(|i| char::from_u32(COMPOSITION[i].2))
}

/// Canonical composition of a decomposed, reordered sequence.
fn composed(chars: Vec<char>) -> String {
    let mut out: Vec<char> = Vec::with_capacity(chars.len());
    // Where the last starter is in `out`, and the class of the last
    // character appended after it (0 when none was).
    let mut starter: Option<usize> = None;
    let mut last_class = 0u8;
    for c in chars {
        let class = combining_class(c);
        if let Some(s) = starter {
            let unblocked = last_class < class || (last_class == 0 && out.len() == s + 1);
            if unblocked && let Some(pair) = compose_pair(out[s], c) {
                out[s] = pair;
                continue;
            }
        }
        if class == 0 {
            starter = Some(out.len());
            last_class = 0;
        } else {
            last_class = class;
        }
        out.push(c);
    }
    out.into_iter().collect()
}

/// The canonical decomposition of `text` (NFD).
pub fn nfd(text: &str) -> String {
    decomposed(text.chars()).into_iter().collect()
}

/// The canonical composition of `text` (NFC): how names are kept and shown.
pub fn nfc(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    composed(decomposed(text.chars()))
}

/// NFKC_Casefold of `text`: compatibility forms, case and default
/// ignorables folded away, so that `ΟΔΥΣΣΕΥΣ` and `οδυσσευς`, `ſam` and
/// `sam`, `ｎｎ` and `nn`, `ß` and `SS` each come out the same.
pub fn nfkc_casefold(text: &str) -> String {
    if text.is_ascii() {
        // ASCII is NFC, and NFKC_Casefold only lowercases it.
        return text.to_ascii_lowercase();
    }
    let mut mapped = String::with_capacity(text.len());
    for c in decomposed(text.chars()) {
        match lookup(NFKC_CASEFOLD, c as u32) {
            Some((offset, len)) => {
                let at = usize::from(offset);
                mapped.push_str(&CASEFOLDED[at..at + usize::from(len)]);
            }
            None => mapped.push(c),
        }
    }
    composed(decomposed(mapped.chars()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composes_and_decomposes() {
        assert_eq!(nfc("cafe\u{301}"), "café");
        assert_eq!(nfd("café"), "cafe\u{301}");
        assert_eq!(nfc("\u{1100}\u{1161}\u{11a8}"), "각");
        assert_eq!(nfd("각"), "\u{1100}\u{1161}\u{11a8}");
        // Marks are put in canonical order: dot below (220) before acute (230).
        assert_eq!(nfd("a\u{301}\u{323}"), "a\u{323}\u{301}");
    }

    #[test]
    fn casefold_merges_what_reads_the_same() {
        assert_eq!(nfkc_casefold("ΟΔΥΣΣΕΥΣ"), nfkc_casefold("οδυσσευς"));
        assert_eq!(nfkc_casefold("ſam"), "sam");
        assert_eq!(nfkc_casefold("ｎｎ"), "nn");
        assert_eq!(nfkc_casefold("ß"), nfkc_casefold("SS"));
        assert_eq!(nfkc_casefold("ｑ"), "q");
        assert_eq!(nfkc_casefold("alice\u{34f}"), "alice");
    }
}
