//! Call tokens from the operating system's random source.
//!
//! The user's design forbids crates and hand-rolled cryptography, so the
//! 128 random bits come straight from `/dev/urandom`, which the kernel keeps
//! seeded for exactly this use.

use std::fs::File;
use std::io::{self, Read};

use crate::protocol::Token;

/// A fresh, unpredictable [`Token`].
pub fn random_token() -> io::Result<Token> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(Token(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert!(!a.matches(&b));
    }
}
