//! The naming rules: which visible names the server accepts, how names
//! are compared (as typed, and as seen), and how untrusted text is made
//! safe to echo.
//!
//! Every grammar that carries a name (`REGISTER`, `CALL`, `HELLO`,
//! `WELCOME`…) checks it here, so a name refused in one place is refused in
//! all of them.

use std::fmt;

use super::MAX_NAME_CHARS;
use crate::text::shown;
use crate::unicode::{
    NameClass, ScriptCheck, graphemes, name_class, nfc, nfkc_casefold, script_check, skeleton,
    without_extra_dots,
};

/// Most bytes a name takes in UTF-8 (NFC): 32 CJK characters (3 bytes
/// each) fit, and a name costs every list that shows it at most this, so
/// one client's thousands of names cannot make an honest reader's lists
/// too big to read (a cluster of a hundred marks is not one character).
pub const MAX_NAME_BYTES: usize = 128;

/// Why a visible name is refused. Where one character is why, the text
/// names it (its code point, and the character itself where it shows) and
/// says why it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    Empty,
    /// More than [`MAX_NAME_CHARS`] characters (grapheme clusters), or
    /// more than [`MAX_NAME_BYTES`].
    TooLong,
    /// A space, separator or control character (Cc, Zs, Zl, Zp).
    Unprintable(char),
    /// A character that prints as nothing (Cf, Default_Ignorable_Code_Point):
    /// `bob` and `bob` with one of these would look the same.
    Invisible(char),
    /// An unassigned or private-use code point (Cn, Co): no agreed look.
    Unassigned(char),
    /// Nothing but marks, symbols or punctuation.
    NoLetterOrDigit,
    /// A letter of a script that is not read with the rest, such as a
    /// Cyrillic `а` among Latin letters (long script names).
    MixedScripts {
        odd: char,
        script: &'static str,
        among: &'static str,
    },
    /// A leading `/` is how a chat line escapes a command (`/q`).
    StartsWithSlash,
    /// `q` is what a user types to quit, so nobody could call a peer named q.
    Reserved,
}

/// What kind of blank or control character `c` is, for a refusal.
fn unprintable_kind(c: char) -> &'static str {
    match c {
        '\t' => "a tab",
        '\u{2028}' => "a line separator",
        '\u{2029}' => "a paragraph separator",
        c if c.is_control() => "a control character",
        _ => "a space",
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = |c: &char| format!("U+{:04X}", u32::from(*c));
        match self {
            NameError::Empty => write!(f, "a name needs at least one character"),
            NameError::TooLong => write!(
                f,
                "a name has at most {MAX_NAME_CHARS} characters and {MAX_NAME_BYTES} bytes"
            ),
            NameError::Unprintable(c) => write!(
                f,
                "a name may not contain spaces, tabs or control characters: {} is {}",
                code(c),
                unprintable_kind(*c)
            ),
            NameError::Invisible(c) => write!(
                f,
                "a name may not contain invisible characters ({}): it prints as nothing, so two names would look the same",
                code(c)
            ),
            NameError::Unassigned(c) => write!(
                f,
                "a name may not contain unassigned or private-use characters ({}): they have no agreed look",
                code(c)
            ),
            NameError::NoLetterOrDigit => write!(f, "a name needs at least one letter or digit"),
            NameError::MixedScripts { odd, script, among } => write!(
                f,
                "a name may not mix scripts: \"{}\" ({}, {script}) among {among} letters",
                shown(&odd.to_string()),
                code(odd)
            ),
            NameError::StartsWithSlash => write!(f, "a name may not start with \"/\""),
            NameError::Reserved => write!(f, "\"q\" is reserved for quitting; pick another name"),
        }
    }
}

/// Checks a visible name against the naming rules (docs/security.md,
/// "Names"): 1 to 32 characters, at least one letter or digit, no spaces,
/// controls, invisible, unassigned or private-use characters, one script
/// (UTS #39 highly restrictive), no leading `/`, and not `q` in any form
/// (`Q`, `ｑ`).
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.bytes().all(|b| b.is_ascii_graphic()) {
        return validate_graphic_ascii_name(name);
    }
    validate_unicode_name(name)
}

/// [`validate_name`] for a name of printable ASCII only (`!` to `~`), the
/// common case, on the per-request path of `LOOKUP` and `CALL`: the same
/// verdicts (a unit test compares the two) without normalising. Such a name
/// is NFC, each byte is one grapheme cluster, its letters are all Latin and
/// the rest Common, none is a space, control, invisible or unassigned, and
/// its key is its lowercase.
fn validate_graphic_ascii_name(name: &str) -> Result<(), NameError> {
    if name.len() > MAX_NAME_CHARS {
        return Err(NameError::TooLong);
    }
    if !name.bytes().any(|b| b.is_ascii_alphanumeric()) {
        return Err(NameError::NoLetterOrDigit);
    }
    if name.starts_with('/') {
        return Err(NameError::StartsWithSlash);
    }
    if name.eq_ignore_ascii_case("q") {
        return Err(NameError::Reserved);
    }
    Ok(())
}

fn validate_unicode_name(name: &str) -> Result<(), NameError> {
    let name = nfc(name);
    if name.len() > MAX_NAME_BYTES || graphemes(&name).nth(MAX_NAME_CHARS).is_some() {
        return Err(NameError::TooLong);
    }
    let mut letter_or_digit = false;
    for c in name.chars() {
        match name_class(c) {
            NameClass::SpaceOrControl => return Err(NameError::Unprintable(c)),
            NameClass::Invisible => return Err(NameError::Invisible(c)),
            NameClass::Unassigned => return Err(NameError::Unassigned(c)),
            NameClass::LetterOrDigit => letter_or_digit = true,
            NameClass::Other => {}
        }
    }
    if !letter_or_digit {
        return Err(NameError::NoLetterOrDigit);
    }
    if let ScriptCheck::Mixed { odd, script, among } = script_check(&name) {
        return Err(NameError::MixedScripts { odd, script, among });
    }
    let key = name_key(&name);
    if key.starts_with('/') {
        return Err(NameError::StartsWithSlash);
    }
    if key == "q" {
        return Err(NameError::Reserved);
    }
    Ok(())
}

/// The form a name is kept and shown in: NFC, so `café` typed precomposed
/// or as `e` + U+0301 is stored and listed alike.
pub fn display_name(name: &str) -> String {
    nfc(name)
}

/// The key a name is stored and compared under: its NFKC_Casefold form, so
/// names that read the same (case, final sigma, `ſ`, full-width letters,
/// `ß`/`SS`, composed or not) are one name.
pub fn name_key(name: &str) -> String {
    nfkc_casefold(name)
}

/// The key a name is told apart by eye under: two names with one look
/// alike, such as `ɑlice` and `alice`, `aǀice` and `alice`, `alı̇ce` (`ı` and
/// U+0307) and `alice`, Cyrillic `асе` and Latin `ace`, and are one name
/// (docs/security.md, "Names"). [`name_key`] is what a caller types; this
/// is what a reader sees.
///
/// It is the UTS #39 skeleton, case-folded, and the skeleton of that, less
/// each dot above a letter that shows its own ([`without_extra_dots`]).
/// Folding after the skeleton makes look-alikes in some case one name:
/// `AIice` (a capital `I`) and `Alice` have one skeleton, and `Alice` is
/// `alice`. The skeleton again maps what folding made (`m` from `M`). Names
/// with one [`name_key`] may have different keys here (`ALICE` has a capital
/// `I`), and need not: they are one name already.
pub fn look_alike_key(name: &str) -> String {
    let folded = nfkc_casefold(&skeleton(name));
    without_extra_dots(&skeleton(&folded))
}

/// Makes untrusted text safe to echo into a log or an error reply: it
/// passes the one gate ([`shown`]) and the length is capped.
pub fn printable(text: &str) -> String {
    let capped: String = text.chars().take(40).collect();
    let more = if capped.len() < text.len() { "…" } else { "" };
    format!("\"{}{more}\"", shown(&capped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_fast_path_gives_the_full_rules_verdicts() {
        let graphic: Vec<char> = (b'!'..=b'~').map(char::from).collect();
        let mut names: Vec<String> = graphic.iter().map(|c| c.to_string()).collect();
        for a in &graphic {
            for b in &graphic {
                names.push(format!("{a}{b}"));
            }
        }
        // Lengths around the limit, from a fixed pseudo-random sequence.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = 1 + (seed % 40) as usize;
            let name: String = (0..len)
                .map(|i| graphic[((seed >> (i % 8 * 8)) as usize + i * 7) % graphic.len()])
                .collect();
            names.push(name);
        }
        names.extend(
            [
                "q",
                "Q",
                "/q",
                "/a",
                "--",
                "a/",
                "x".repeat(32).as_str(),
                &"x".repeat(33),
            ]
            .map(String::from),
        );
        for name in names {
            assert_eq!(
                validate_graphic_ascii_name(&name),
                validate_unicode_name(&name),
                "{name:?}"
            );
        }
    }

    #[test]
    fn a_name_is_at_most_128_bytes_and_32_cjk_characters_fit() {
        let cjk = "漢".repeat(MAX_NAME_CHARS);
        assert_eq!(cjk.len(), 96);
        assert_eq!(validate_name(&cjk), Ok(()));
        // 17 characters, but 8 bytes each: too many bytes for any list.
        let toned = "👍🏽".repeat(17);
        assert!(toned.len() > MAX_NAME_BYTES);
        assert_eq!(validate_name(&format!("a{toned}")), Err(NameError::TooLong));
        assert_eq!(validate_name(&format!("a{}", "👍🏽".repeat(15))), Ok(()));
    }

    #[test]
    fn names_follow_the_rules() {
        assert_eq!(validate_name("alice"), Ok(()));
        assert_eq!(validate_name("李雷"), Ok(()));
        assert_eq!(validate_name(&"x".repeat(32)), Ok(()));
        assert_eq!(validate_name(&"é".repeat(32)), Ok(()));
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name(&"x".repeat(33)), Err(NameError::TooLong));
        assert_eq!(validate_name("a b"), Err(NameError::Unprintable(' ')));
        assert_eq!(validate_name("a\tb"), Err(NameError::Unprintable('\t')));
        assert_eq!(
            validate_name("a\u{7f}"),
            Err(NameError::Unprintable('\u{7f}'))
        );
        assert_eq!(
            validate_name("a\u{200b}"),
            Err(NameError::Invisible('\u{200b}'))
        );
        for sneaky in [
            "b\u{ad}ob",
            "\u{2066}bob\u{2069}",
            "bob\u{e0001}",
            "\u{202e}bob",
        ] {
            assert!(
                matches!(validate_name(sneaky), Err(NameError::Invisible(_))),
                "{sneaky:?}"
            );
        }
        assert_eq!(validate_name("Q"), Err(NameError::Reserved));
        assert_eq!(name_key("Alice"), name_key("aLICE"));
    }

    #[test]
    fn printable_escapes_and_caps() {
        assert_eq!(printable("a\u{1b}[2J"), "\"a^[[2J\"");
        assert_eq!(printable("x\u{202e}y\u{2028}"), "\"x\\u{202e}y\\u{2028}\"");
        assert!(printable(&"x".repeat(100)).ends_with("…\""));
    }

    /// Each pair from issue #12: two names that read the same. The second
    /// is refused, as taken (same key) or as invalid.
    #[test]
    fn names_that_read_the_same_are_one_name_or_refused() {
        let same = [
            ("ΟΔΥΣΣΕΥΣ", "οδυσσευσ"),
            ("ΟΔΥΣΣΕΥΣ", "οδυσσευς"),
            ("café", "cafe\u{301}"),
            ("ſam", "sam"),
            ("ｎｎ", "nn"),
            ("ß", "SS"),
            ("Alice", "aLICE"),
        ];
        for (first, second) in same {
            assert_eq!(validate_name(first), Ok(()), "{first:?}");
            assert_eq!(name_key(first), name_key(second), "{first:?} {second:?}");
        }
        let refused = [
            ("aσ", "aΣ"),
            ("alice", "alice\u{34f}"),
            ("alice", "alice\u{fe0f}"),
            ("alice", "alice\u{e0100}"),
            ("alice", "alice\u{180b}"),
            ("bob", "bob\u{2800}"),
            ("alice", "\u{430}lice"),
        ];
        for (first, second) in refused {
            assert!(validate_name(second).is_err(), "{second:?} was accepted");
            if first == "aσ" {
                assert!(validate_name(first).is_err(), "{first:?}");
            } else {
                assert_eq!(validate_name(first), Ok(()), "{first:?}");
            }
        }
        assert_eq!(display_name("cafe\u{301}"), "café");
    }

    #[test]
    fn format_blank_reserved_and_mixed_names_are_refused_with_the_reason() {
        assert_eq!(
            validate_name("a\u{600}"),
            Err(NameError::Invisible('\u{600}'))
        );
        assert_eq!(
            validate_name("a\u{13430}"),
            Err(NameError::Invisible('\u{13430}'))
        );
        assert_eq!(
            validate_name("a\u{1bca0}"),
            Err(NameError::Invisible('\u{1bca0}'))
        );
        assert_eq!(validate_name("\u{2800}"), Err(NameError::NoLetterOrDigit));
        assert_eq!(validate_name("-_-"), Err(NameError::NoLetterOrDigit));
        assert_eq!(
            validate_name("a\u{e000}"),
            Err(NameError::Unassigned('\u{e000}'))
        );
        assert_eq!(
            validate_name("a\u{378}"),
            Err(NameError::Unassigned('\u{378}'))
        );
        assert_eq!(
            validate_name("a\u{3000}b"),
            Err(NameError::Unprintable('\u{3000}'))
        );
        assert_eq!(validate_name("/q"), Err(NameError::StartsWithSlash));
        assert_eq!(validate_name("／x"), Err(NameError::StartsWithSlash));
        assert_eq!(validate_name("ｑ"), Err(NameError::Reserved));
        assert_eq!(
            validate_name("\u{430}lice"),
            Err(NameError::MixedScripts {
                odd: '\u{430}',
                script: "Cyrillic",
                among: "Latin"
            })
        );
        // A whole-script look-alike is a valid name, but one name with its
        // original (the registry refuses it beside it): Cyrillic асе, Latin ace.
        assert_eq!(validate_name("\u{430}\u{441}\u{435}"), Ok(()));
        assert_ne!(name_key("\u{430}\u{441}\u{435}"), name_key("ace"));
        assert_eq!(
            look_alike_key("\u{430}\u{441}\u{435}"),
            look_alike_key("ace")
        );
        for fine in ["李雷", "田中さん", "김민준", "Οδυσσεύς", "x1", "７"] {
            assert_eq!(validate_name(fine), Ok(()), "{fine}");
        }
    }

    /// Issue #21's look-alikes, each a valid name that is one name with its
    /// original; and names that only share letters are not.
    #[test]
    fn look_alikes_have_one_key_whatever_their_case() {
        for (original, look_alike) in [
            ("alice", "al\u{131}\u{307}ce"),
            ("alice", "ali\u{307}ce"),
            ("alice", "a\u{1c0}ice"),
            ("alice", "\u{251}lice"),
            ("paypal", "payp\u{251}l"),
            ("greg", "\u{261}reg"),
            ("ace", "\u{430}\u{441}\u{435}"),
            ("Alice", "AIice"),
            ("Alice", "\u{251}lice"),
            ("alice", "aIice"),
            ("bill", "BiII"),
            ("ΑΒ", "AB"),
            ("burn", "bum"),
        ] {
            assert_eq!(validate_name(look_alike), Ok(()), "{look_alike:?}");
            assert_eq!(
                look_alike_key(original),
                look_alike_key(look_alike),
                "{original:?} {look_alike:?}"
            );
        }
        for (one, other) in [("alice", "alicia"), ("bob", "rob"), ("ace", "acé")] {
            assert_ne!(look_alike_key(one), look_alike_key(other), "{one} {other}");
        }
    }
}
