//! The naming rules: which visible names the server accepts, how names
//! are compared, and how untrusted text is made safe to echo.
//!
//! Every grammar that carries a name (`REGISTER`, `CALL`, `HELLO`,
//! `WELCOME`…) checks it here, so a name refused in one place is refused in
//! all of them.

use std::fmt;

use super::MAX_NAME_CHARS;

/// Why a visible name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    /// Whitespace, control characters and other unprintable characters.
    Unprintable,
    /// `q` is what a user types to quit, so nobody could call a peer named q.
    Reserved,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "a name needs at least one character"),
            NameError::TooLong => write!(f, "a name has at most {MAX_NAME_CHARS} characters"),
            NameError::Unprintable => write!(
                f,
                "a name may not contain spaces, tabs or control characters"
            ),
            NameError::Reserved => write!(f, "\"q\" is reserved for quitting; pick another name"),
        }
    }
}

/// Checks a visible name against the naming rules: 1 to 32 printable
/// characters, no whitespace, not `q`.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong);
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || is_invisible(c))
    {
        return Err(NameError::Unprintable);
    }
    if name.eq_ignore_ascii_case("q") {
        return Err(NameError::Reserved);
    }
    Ok(())
}

/// Characters that print as nothing and would let two names look alike.
/// Unicode's format characters (general category Cf, which std cannot
/// ask about) and other blanks: soft hyphen, zero-width marks, direction
/// overrides and isolates, the BOM, interlinear annotations and tags.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}'
        | '\u{061c}'
        | '\u{115f}'..='\u{1160}'
        | '\u{17b4}'..='\u{17b5}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}'
        | '\u{3164}'
        | '\u{feff}'
        | '\u{ffa0}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e007f}')
}

/// The key a name is stored and compared under: names are unique without
/// regard to case.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// Makes untrusted text safe to echo into a log or an error reply: control
/// characters are escaped and the length is capped.
pub fn printable(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i >= 40 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    format!("\"{out}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        assert_eq!(validate_name("alice"), Ok(()));
        assert_eq!(validate_name("李雷"), Ok(()));
        assert_eq!(validate_name(&"x".repeat(32)), Ok(()));
        assert_eq!(validate_name(&"é".repeat(32)), Ok(()));
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name(&"x".repeat(33)), Err(NameError::TooLong));
        assert_eq!(validate_name("a b"), Err(NameError::Unprintable));
        assert_eq!(validate_name("a\tb"), Err(NameError::Unprintable));
        assert_eq!(validate_name("a\u{7f}"), Err(NameError::Unprintable));
        assert_eq!(validate_name("a\u{200b}"), Err(NameError::Unprintable));
        for sneaky in [
            "b\u{ad}ob",
            "\u{2066}bob\u{2069}",
            "bob\u{e0001}",
            "\u{202e}bob",
        ] {
            assert_eq!(
                validate_name(sneaky),
                Err(NameError::Unprintable),
                "{sneaky:?}"
            );
        }
        assert_eq!(validate_name("Q"), Err(NameError::Reserved));
        assert_eq!(name_key("Alice"), name_key("aLICE"));
    }

    #[test]
    fn printable_escapes_and_caps() {
        assert_eq!(printable("a\u{1b}[2J"), "\"a\\u{1b}[2J\"");
        assert!(printable(&"x".repeat(100)).ends_with("…\""));
    }
}
