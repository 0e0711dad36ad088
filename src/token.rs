//! Call tokens: the single-use secret that authorises one call, how it is
//! written on the wire, and where fresh ones come from.
//!
//! The user's design forbids crates and hand-rolled cryptography, so the
//! 128 random bits come straight from `/dev/urandom`, which the kernel keeps
//! seeded for exactly this use. This module needs nothing else of the crate;
//! the protocol re-exports [`Token`] as `crate::protocol::Token`.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};

/// A single-use secret that authorises one call: 128 random bits, written as
/// 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(pub [u8; 16]);

/// Text that is not exactly 32 hex digits. The protocol reports it as a
/// bad field, naming the text, so this carries nothing itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAToken;

impl fmt::Display for NotAToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a token is exactly 32 hex digits")
    }
}

impl std::error::Error for NotAToken {}

impl Token {
    /// Compares without an early exit, so the time taken says nothing about
    /// how many leading bytes of a guess were right.
    pub fn matches(&self, other: &Token) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// Reads exactly 32 hex digits and nothing else: no sign, no spaces, no
    /// `0x`. (`u8::from_str_radix` alone would take `+f` as a digit pair.)
    /// Upper-case digits are accepted, so a token that passed through
    /// something that upper-cases text still works; [`Display`] always
    /// writes lower case, so tokens we send never differ by case.
    ///
    /// [`Display`]: fmt::Display
    pub fn parse(text: &str) -> Result<Token, NotAToken> {
        let digits = text.as_bytes();
        if digits.len() != 32 {
            return Err(NotAToken);
        }
        let mut bytes = [0u8; 16];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Ok(Token(bytes))
    }
}

/// The value of one hex digit, in either case.
fn hex_value(digit: u8) -> Result<u8, NotAToken> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(NotAToken),
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a live secret in debug output.
        write!(f, "Token(…)")
    }
}

/// What one party of a call holds to prove itself and to check its peer.
///
/// With a peer (and server) that announced `proof`, the server hands each
/// party values of its own ([`Keys::Own`]): `show` goes to the peer, but only
/// after the peer showed `expect` (the dialed party shows first, and a
/// shown value is spent); `relay` opens this party's half of the relay and
/// is never shown to the peer, so nothing seen on the direct path opens the
/// relay. Older parties share one token for all three ([`Keys::Shared`]):
/// the caller presents it to the callee, and both to the relay.
///
/// On the wire: `Own` is the three tokens joined by dots
/// (`<show>.<expect>.<relay>`), `Shared` the token alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    Shared(Token),
    Own {
        show: Token,
        expect: Token,
        relay: Token,
    },
}

impl Keys {
    /// What this party presents in its `HELLO` / `REHELLO`.
    pub fn show(&self) -> Token {
        match *self {
            Keys::Shared(t) => t,
            Keys::Own { show, .. } => show,
        }
    }

    /// What this party's relay half presents to the server.
    pub fn relay(&self) -> Token {
        match *self {
            Keys::Shared(t) => t,
            Keys::Own { relay, .. } => relay,
        }
    }

    /// Whether `value`, shown by the peer, is the one this party expects.
    pub fn accepts(&self, value: &Token) -> bool {
        match self {
            Keys::Shared(t) => t.matches(value),
            Keys::Own { expect, .. } => expect.matches(value),
        }
    }

    /// Whether the dialed party shows its value first (`KNOCK` / `PROOF`):
    /// only with values of one's own; an older callee expects `HELLO` first.
    pub fn knocks(&self) -> bool {
        matches!(self, Keys::Own { .. })
    }

    /// The other party's keys, for the same call: what one shows, the other
    /// expects. (`relay` is the other party's own, given apart.)
    pub fn mirrored(&self, relay: Token) -> Keys {
        match *self {
            Keys::Shared(t) => Keys::Shared(t),
            Keys::Own { show, expect, .. } => Keys::Own {
                show: expect,
                expect: show,
                relay,
            },
        }
    }

    /// Reads `<token>` or `<token>.<token>.<token>`.
    pub fn parse(text: &str) -> Result<Keys, NotAToken> {
        let mut parts = text.split('.');
        let first = Token::parse(parts.next().unwrap_or_default())?;
        let Some(expect) = parts.next() else {
            return Ok(Keys::Shared(first));
        };
        let expect = Token::parse(expect)?;
        let relay = Token::parse(parts.next().ok_or(NotAToken)?)?;
        if parts.next().is_some() {
            return Err(NotAToken);
        }
        Ok(Keys::Own {
            show: first,
            expect,
            relay,
        })
    }
}

impl fmt::Display for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keys::Shared(t) => write!(f, "{t}"),
            Keys::Own {
                show,
                expect,
                relay,
            } => write!(f, "{show}.{expect}.{relay}"),
        }
    }
}

/// A fresh, unpredictable [`Token`].
pub fn random_token() -> io::Result<Token> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(Token(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: Token = Token([0xab; 16]);

    #[test]
    fn keys_are_one_token_or_three_and_mirror_each_other() {
        let (a, b, r) = (Token([1; 16]), Token([2; 16]), Token([3; 16]));
        let own = Keys::Own {
            show: a,
            expect: b,
            relay: r,
        };
        assert_eq!(Keys::parse(&own.to_string()), Ok(own));
        assert_eq!(Keys::parse(&SAMPLE.to_string()), Ok(Keys::Shared(SAMPLE)));
        let peer = own.mirrored(SAMPLE);
        assert!(peer.accepts(&own.show()) && own.accepts(&peer.show()));
        assert!(
            !own.accepts(&own.show()),
            "one's own value is not the peer's"
        );
        assert!(own.knocks() && !Keys::Shared(a).knocks());
        for bad in [
            format!("{a}."),
            format!("{a}.{b}"),
            format!("{a}.{b}.{r}.{r}"),
            format!(".{a}.{b}"),
        ] {
            assert_eq!(Keys::parse(&bad), Err(NotAToken), "{bad}");
        }
    }

    #[test]
    fn tokens_differ() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert!(!a.matches(&b));
    }

    #[test]
    fn tokens_parse_and_compare() {
        let t = SAMPLE;
        assert_eq!(Token::parse(&t.to_string()), Ok(t));
        assert!(t.matches(&t));
        let mut last_differs = [0xab; 16];
        last_differs[15] = 0;
        assert!(!t.matches(&Token(last_differs)));
        assert_eq!(format!("{t:?}"), "Token(…)");
    }

    #[test]
    fn a_token_is_exactly_32_hex_digits_in_either_case() {
        let digits = "0123456789abcdef0123456789ABCDEF";
        let parsed = Token::parse(digits).unwrap();
        assert_eq!(parsed.0[0], 0x01);
        assert_eq!(parsed.0[15], 0xef);
        assert_eq!(parsed.to_string(), digits.to_lowercase());
        assert_eq!(Token::parse("ABABABABABABABABABABABABABABABAB"), Ok(SAMPLE));
    }

    #[test]
    fn signs_spaces_prefixes_and_wrong_lengths_are_not_tokens() {
        let good = "ab".repeat(16);
        for bad in [
            format!("+f{}", &good[2..]),
            format!("-f{}", &good[2..]),
            format!(" f{}", &good[2..]),
            format!("{} f", &good[..30]),
            format!("0x{}", &good[2..]),
            format!("{}zz", &good[2..]),
            good[..31].to_string(),
            format!("{good}a"),
            String::new(),
            "zz".to_string(),
            "é".repeat(16),
        ] {
            assert_eq!(Token::parse(&bad), Err(NotAToken), "{bad:?}");
        }
    }
}
