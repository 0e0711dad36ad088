//! Which scripts a string is written in, and whether that mix is one a
//! reader expects: UTS #39's "highly restrictive" level, so that a Cyrillic
//! `а` cannot hide in a Latin name.
//!
//! Each code point has a set of scripts, its Script_Extensions (or its
//! Script where none are listed); Common and Inherited go with any script.
//! A string passes when one script is in every code point's set, or when
//! every code point's set meets one of the combinations Japanese, Chinese
//! and Korean writing use: Latin + Han + Hiragana + Katakana, Latin + Han
//! + Bopomofo, Latin + Han + Hangul.

use super::lookup;
use super::tables::{
    SCRIPT, SCRIPT_BOPO, SCRIPT_EXTENSIONS, SCRIPT_HANG, SCRIPT_HANI, SCRIPT_HIRA, SCRIPT_KANA,
    SCRIPT_LATN, SCRIPT_LONG_NAMES, SCRIPT_ZINH, SCRIPT_ZYYY, SCRIPT_ZZZZ,
};

/// The combinations of scripts allowed together beyond a single one.
const ALLOWED_MIXES: [&[u8]; 3] = [
    &[SCRIPT_LATN, SCRIPT_HANI, SCRIPT_HIRA, SCRIPT_KANA],
    &[SCRIPT_LATN, SCRIPT_HANI, SCRIPT_BOPO],
    &[SCRIPT_LATN, SCRIPT_HANI, SCRIPT_HANG],
];

/// The outcome of [`script_check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptCheck {
    /// One script (with Common and Inherited), or an allowed mix.
    Restrictive,
    /// Letters of two scripts that are not read together: `odd`, of
    /// `script`, among letters of `among`, the script most of the text is
    /// in (long names, as a person reads them: `Cyrillic`, `Latin`).
    Mixed {
        odd: char,
        script: &'static str,
        among: &'static str,
    },
}

/// The scripts `c` is used with: its Script_Extensions, else its Script.
fn scripts(c: char) -> &'static [u8] {
    let cp = c as u32;
    if let Some(extensions) = lookup(SCRIPT_EXTENSIONS, cp) {
        return extensions;
    }
    let script = lookup(SCRIPT, cp).unwrap_or(SCRIPT_ZZZZ);
    std::slice::from_ref(&SINGLE_SCRIPTS[usize::from(script)])
}

/// One entry per script id: `SINGLE_SCRIPTS[i] == i`.
static SINGLE_SCRIPTS: [u8; 256] = {
    let mut all = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        all[i] = i as u8;
        i += 1;
    }
    all
};

/// Checks `text` against UTS #39's highly restrictive level.
pub fn script_check(text: &str) -> ScriptCheck {
    let sets: Vec<&[u8]> = text
        .chars()
        .map(scripts)
        .filter(|set| !set.iter().any(|&s| s == SCRIPT_ZYYY || s == SCRIPT_ZINH))
        .collect();
    let Some(first) = sets.first() else {
        return ScriptCheck::Restrictive;
    };
    if first.iter().any(|s| sets.iter().all(|set| set.contains(s))) {
        return ScriptCheck::Restrictive;
    }
    if ALLOWED_MIXES
        .iter()
        .any(|mix| sets.iter().all(|set| set.iter().any(|s| mix.contains(s))))
    {
        return ScriptCheck::Restrictive;
    }
    // Name the script most of the text is in, and the first code point
    // of another: the one a reader would not expect there.
    let count = |script: u8| sets.iter().filter(|set| set.contains(&script)).count();
    let among = sets
        .iter()
        .flat_map(|set| set.iter().copied())
        .fold(None, |best: Option<(u8, usize)>, script| {
            let n = count(script);
            match best {
                Some((_, most)) if most >= n => best,
                _ => Some((script, n)),
            }
        })
        .map_or(first[0], |(script, _)| script);
    let (odd, set) = text
        .chars()
        .map(|c| (c, scripts(c)))
        .filter(|(_, set)| !set.iter().any(|&s| s == SCRIPT_ZYYY || s == SCRIPT_ZINH))
        .find(|(_, set)| !set.contains(&among))
        .unwrap_or((text.chars().next().unwrap_or(' '), first));
    let name = |script: u8| SCRIPT_LONG_NAMES[usize::from(script)];
    ScriptCheck::Mixed {
        odd,
        script: name(set[0]),
        among: name(among),
    }
}

#[cfg(test)]
mod tests {
    use super::{ScriptCheck, script_check};

    #[test]
    fn one_script_or_a_cjk_mix_passes_and_others_do_not() {
        for ok in [
            "alice",
            "bob_2",
            "李雷",
            "田中さん",
            "タナカ太郎",
            "김민준",
            "ㄅㄆ中",
            "Tanakaさん",
            "café",
            "Οδυσσεύς",
        ] {
            assert_eq!(script_check(ok), ScriptCheck::Restrictive, "{ok}");
        }
        let mixed = |odd, script, among| ScriptCheck::Mixed { odd, script, among };
        // The odd one out is named, wherever it stands.
        assert_eq!(
            script_check("\u{430}lice"),
            mixed('\u{430}', "Cyrillic", "Latin")
        );
        assert_eq!(
            script_check("p\u{430}ypal"),
            mixed('\u{430}', "Cyrillic", "Latin")
        );
        assert_eq!(
            script_check("\u{3b1}\u{3b2}c"),
            mixed('c', "Latin", "Greek")
        );
        assert_eq!(
            script_check("bob\u{2800}"),
            mixed('\u{2800}', "Braille", "Latin")
        );
        assert!(matches!(script_check("김さん"), ScriptCheck::Mixed { .. }));
    }
}
