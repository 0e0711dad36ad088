//! The wire format: every line p2pchat sends or receives, as typed values.
//!
//! This module does no I/O. It turns one line of text (without its `\n`) into a
//! [`Request`] (client to registration server), a [`ServerLine`] (server to
//! client: replies and pushed events) or a [`PeerMessage`] (peer to peer, direct
//! or relayed), and turns those values back into lines with `Display`. Every
//! malformed input is a [`ProtocolError`] whose text a person can read, so the
//! server can answer it and carry on.
//!
//! The grammar is documented for humans in docs/protocol.md; the short
//! version: words separated by single spaces, the first word is the verb, the
//! verb is case-insensitive, replies start with `OK` or `ERR`, pushed events
//! start with `EVENT`.
//!
//! The grammars live one to a file: `requests.rs` (client to server),
//! `server_lines.rs` (server to client), `peer.rs` (peer to peer) and
//! `names.rs` (the naming rules every grammar that carries a name checks).
//! This file holds what they share: the limits, the error types and the
//! field parsers. Everything is re-exported here, so `crate::protocol::X`
//! names every item whichever file it lives in.

use std::fmt;
use std::net::SocketAddr;

mod names;
mod peer;
mod requests;
mod server_lines;

pub use names::{NameError, display_name, look_alike_key, name_key, printable, validate_name};
pub use peer::{
    FEATURE_FILES, FEATURE_TYPING, FileEnd, FileId, PeerBatch, PeerItem, PeerMessage, PeerRun,
    Typing, action_of, action_text, split_text,
};
pub use requests::{MAX_AWAY_MESSAGE, Request};
pub use server_lines::{
    ConnEnd, FEATURE_AWAY, FEATURE_LONG_LINES, FEATURE_MISSED, FEATURE_NO_RELAY_CODE,
    FEATURE_PRESENCE, FEATURE_PROOF, FEATURE_REJOIN, FEATURE_RELAY, FEATURE_RELAY_FILES,
    FEATURE_RING, FEATURE_RING_TIME, FEATURE_SESSION, FEATURE_TRANSFER, PRESENCE_PREFIX, Presence,
    PresenceState, ServerLine, UserEntry,
};

/// Tokens live beside their generator; the grammars carry them.
pub use crate::token::{Keys, Token};

/// Longest line (in bytes, without the newline) anyone may send us. Longer
/// lines are refused and the connection is closed, so no peer can make us
/// buffer without limit.
pub const MAX_LINE: usize = 4096;

/// Longest chat message text, in bytes. Leaves room for the `MSG ` prefix
/// under [`MAX_LINE`]; a longer typed line is split into several messages.
pub const MAX_TEXT: usize = MAX_LINE - 16;

/// Longest chat message text between peers that both announced
/// `long-lines` (and through a relay that did): a pasted paragraph goes as
/// one message.
pub const MAX_LONG_TEXT: usize = 64 * 1024;

/// Longest line taken on a chat link or a relay: a long message and its
/// `MSG ` prefix.
pub const MAX_PEER_LINE: usize = MAX_LONG_TEXT + 16;

/// Longest visible name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// Most words in one `FEATURES` line: a bound on what a peer or server can
/// make us keep.
pub const MAX_FEATURES: usize = 32;

/// Longest word in a `FEATURES` line, in bytes.
pub const MAX_FEATURE_BYTES: usize = 32;

/// Most users a client accepts in one `OK USERS` reply; a bound on what a
/// broken or hostile server can make a client allocate.
pub const MAX_LIST: usize = 1_000_000;

/// Why a line could not be understood. The `Display` text is one sentence
/// that the server sends back after `ERR <code>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// The line was empty.
    Empty,
    /// The verb is not one we know.
    UnknownCommand(String),
    /// The verb is known but its arguments are wrong; the text says how.
    BadArguments {
        verb: &'static str,
        usage: &'static str,
    },
    /// The visible name breaks the naming rules.
    BadName(NameError),
    /// A field that should be a number, address or token is not.
    BadField { field: &'static str, value: String },
}

impl ProtocolError {
    /// The error code this failure is reported under.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::Empty | ProtocolError::UnknownCommand(_) => ErrorCode::UnknownCommand,
            ProtocolError::BadName(_) => ErrorCode::BadName,
            ProtocolError::BadArguments { .. } | ProtocolError::BadField { .. } => {
                ErrorCode::BadRequest
            }
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Empty => write!(f, "empty line; try LIST, CALL NAME or QUIT"),
            ProtocolError::UnknownCommand(verb) => write!(
                f,
                "unknown command {}; known: {}",
                printable(verb),
                requests::VERBS.join(" ")
            ),
            ProtocolError::BadArguments { verb, usage } => {
                write!(f, "wrong arguments for {verb}; usage: {usage}")
            }
            ProtocolError::BadName(e) => write!(f, "{e}"),
            ProtocolError::BadField { field, value } => {
                write!(f, "{} is not a valid {field}", printable(value))
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Identifies one call on one server, so that a late `HANGUP` for an old call
/// can never end a newer one.
pub type CallId = u64;

/// The reason codes that follow `ERR`. Clients act on the code; the text after
/// it is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    UnknownCommand,
    BadRequest,
    LineTooLong,
    BadEncoding,
    NotRegistered,
    AlreadyRegistered,
    BadName,
    NameTaken,
    UnknownUser,
    Busy,
    AlreadyInCall,
    NotInCall,
    ServerFull,
    Timeout,
    BadToken,
    Unreachable,
    /// The server was started with `--no-relay`, so a relay connection is
    /// refused; a client can say so instead of quoting the server's text.
    NoRelay,
    /// A call refused for now: the caller's last call to this peer did not
    /// become a chat, or it calls too often; or a registration, from an
    /// address that registered too many names this minute. The text says
    /// how long to wait.
    TooSoon,
    /// A call to a client that said it is away (`AWAY`), to a caller that
    /// announced `away`; the text is the callee's message. Older callers
    /// get `unreachable`, a code they know.
    Away,
    Internal,
}

impl ErrorCode {
    const ALL: [ErrorCode; 20] = [
        ErrorCode::UnknownCommand,
        ErrorCode::BadRequest,
        ErrorCode::LineTooLong,
        ErrorCode::BadEncoding,
        ErrorCode::NotRegistered,
        ErrorCode::AlreadyRegistered,
        ErrorCode::BadName,
        ErrorCode::NameTaken,
        ErrorCode::UnknownUser,
        ErrorCode::Busy,
        ErrorCode::AlreadyInCall,
        ErrorCode::NotInCall,
        ErrorCode::ServerFull,
        ErrorCode::Timeout,
        ErrorCode::BadToken,
        ErrorCode::Unreachable,
        ErrorCode::NoRelay,
        ErrorCode::TooSoon,
        ErrorCode::Away,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnknownCommand => "unknown-command",
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::LineTooLong => "line-too-long",
            ErrorCode::BadEncoding => "bad-encoding",
            ErrorCode::NotRegistered => "not-registered",
            ErrorCode::AlreadyRegistered => "already-registered",
            ErrorCode::BadName => "bad-name",
            ErrorCode::NameTaken => "name-taken",
            ErrorCode::UnknownUser => "unknown-user",
            ErrorCode::Busy => "busy",
            ErrorCode::AlreadyInCall => "already-in-call",
            ErrorCode::NotInCall => "not-in-call",
            ErrorCode::ServerFull => "server-full",
            ErrorCode::Timeout => "timeout",
            ErrorCode::BadToken => "bad-token",
            ErrorCode::Unreachable => "unreachable",
            ErrorCode::NoRelay => "no-relay",
            ErrorCode::TooSoon => "too-soon",
            ErrorCode::Away => "away",
            ErrorCode::Internal => "internal",
        }
    }

    fn parse(text: &str) -> Result<ErrorCode, ProtocolError> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| ProtocolError::BadField {
                field: "error code",
                value: text.to_string(),
            })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn parse_addr(text: &str) -> Result<SocketAddr, ProtocolError> {
    text.parse().map_err(|_| ProtocolError::BadField {
        field: "address (IP:PORT or [IPv6]:PORT)",
        value: text.to_string(),
    })
}

fn parse_keys(text: &str) -> Result<Keys, ProtocolError> {
    Keys::parse(text).map_err(|_| ProtocolError::BadField {
        field: "keys (32 hex digits, or three such joined by dots)",
        value: text.to_string(),
    })
}

fn parse_token(text: &str) -> Result<Token, ProtocolError> {
    Token::parse(text).map_err(|_| ProtocolError::BadField {
        field: "token (32 hex digits)",
        value: text.to_string(),
    })
}

/// The words of a `FEATURES` line (client, server or peer): at most
/// [`MAX_FEATURES`] words of `[a-z0-9-]`, each at most [`MAX_FEATURE_BYTES`]
/// long. One grammar for all three, so a word one side sends the others can
/// read.
fn parse_features(words: &[&str]) -> Result<Vec<String>, ProtocolError> {
    if words.len() > MAX_FEATURES {
        return Err(ProtocolError::BadArguments {
            verb: "FEATURES",
            usage: "FEATURES WORD… (at most 32 words)",
        });
    }
    words
        .iter()
        .map(|word| {
            let valid = !word.is_empty()
                && word.len() <= MAX_FEATURE_BYTES
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if valid {
                Ok(word.to_string())
            } else {
                Err(ProtocolError::BadField {
                    field: "feature (up to 32 of a-z, 0-9 and -)",
                    value: word.to_string(),
                })
            }
        })
        .collect()
}

/// Writes `FEATURES` and its words, the one spelling all three grammars use.
fn write_features(f: &mut fmt::Formatter<'_>, words: &[String]) -> fmt::Result {
    f.write_str("FEATURES")?;
    for word in words {
        write!(f, " {word}")?;
    }
    Ok(())
}

fn parse_call_id(text: &str) -> Result<CallId, ProtocolError> {
    parse_number(text, "call id")
}

fn parse_number<T: std::str::FromStr>(text: &str, field: &'static str) -> Result<T, ProtocolError> {
    // Digits only: `str::parse` would also take a leading `+`.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProtocolError::BadField {
            field,
            value: text.to_string(),
        });
    }
    text.parse().map_err(|_| ProtocolError::BadField {
        field,
        value: text.to_string(),
    })
}

/// One fixed token for the grammars' round-trip tests.
#[cfg(test)]
pub(crate) const SAMPLE_TOKEN: Token = Token([0xab; 16]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_reads_back_as_itself() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Ok(code));
        }
        assert_eq!(ErrorCode::parse("no-relay"), Ok(ErrorCode::NoRelay));
        assert!(ErrorCode::parse("No-Relay").is_err());
    }
}
