//! The lines two peers exchange in a chat, directly or through the
//! server's relay: the `HELLO`/`WELCOME` handshake, `MSG` lines, the
//! liveness pings and `BYE`.
//!
//! [`split_text`] is here too: it keeps a typed line within what one `MSG`
//! may carry.

use std::fmt;

use super::{
    CallId, ErrorCode, MAX_TEXT, ProtocolError, Token, parse_call_id, parse_token, validate_name,
};

/// A line between two peers in a chat, whether the bytes go directly or
/// through the server's relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMessage {
    /// `HELLO <caller> <call-id> <token>`: the caller's first line.
    Hello {
        caller: String,
        call: CallId,
        token: Token,
    },
    /// `WELCOME <name>`: the callee accepted.
    Welcome { name: String },
    /// `MSG <text>`: one chat line; text may hold any character but newline.
    Msg(String),
    /// `BYE`: the sender ended the chat.
    Bye,
    /// `PING`: keeps a quiet chat's liveness visible; answered with `PONG`.
    Ping,
    /// `PONG`: the answer to `PING`.
    Pong,
    /// `ERR <code> <text>`: the connection is refused; it closes next.
    Error { code: ErrorCode, message: String },
}

impl PeerMessage {
    /// Like [`PeerMessage::parse`], reusing the line's buffer for the text
    /// of a `MSG`, the one message that comes in bulk.
    pub fn parse_owned(mut line: String) -> Result<PeerMessage, ProtocolError> {
        if line.starts_with("MSG ") {
            line.replace_range(..4, "");
            return Ok(PeerMessage::Msg(line));
        }
        PeerMessage::parse(&line)
    }

    pub fn parse(line: &str) -> Result<PeerMessage, ProtocolError> {
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        let bad = |verb, usage| ProtocolError::BadArguments { verb, usage };
        match verb {
            "MSG" => Ok(PeerMessage::Msg(rest.to_string())),
            "BYE" if rest.is_empty() => Ok(PeerMessage::Bye),
            "PING" if rest.is_empty() => Ok(PeerMessage::Ping),
            "PONG" if rest.is_empty() => Ok(PeerMessage::Pong),
            "WELCOME" => {
                validate_name(rest).map_err(ProtocolError::BadName)?;
                Ok(PeerMessage::Welcome {
                    name: rest.to_string(),
                })
            }
            "HELLO" => {
                let args: Vec<&str> = rest.split(' ').collect();
                let [caller, call, token] = args.as_slice() else {
                    return Err(bad("HELLO", "HELLO NAME CALL-ID TOKEN"));
                };
                validate_name(caller).map_err(ProtocolError::BadName)?;
                Ok(PeerMessage::Hello {
                    caller: caller.to_string(),
                    call: parse_call_id(call)?,
                    token: parse_token(token)?,
                })
            }
            "ERR" => {
                let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
                Ok(PeerMessage::Error {
                    code: ErrorCode::parse(code)?,
                    message: message.to_string(),
                })
            }
            "" => Err(ProtocolError::Empty),
            _ => Err(ProtocolError::UnknownCommand(verb.to_string())),
        }
    }
}

impl fmt::Display for PeerMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerMessage::Hello {
                caller,
                call,
                token,
            } => write!(f, "HELLO {caller} {call} {token}"),
            PeerMessage::Welcome { name } => write!(f, "WELCOME {name}"),
            PeerMessage::Msg(text) => write!(f, "MSG {text}"),
            PeerMessage::Bye => write!(f, "BYE"),
            PeerMessage::Ping => write!(f, "PING"),
            PeerMessage::Pong => write!(f, "PONG"),
            PeerMessage::Error { code, message } => write!(f, "ERR {code} {message}"),
        }
    }
}

/// Splits typed text into pieces of at most [`MAX_TEXT`] bytes, on character
/// boundaries, so a long line is sent whole as several messages rather than
/// refused or cut. Empty text is one empty piece.
pub fn split_text(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        if current.len() <= MAX_TEXT {
            rest = None;
            return Some(current);
        }
        let mut cut = MAX_TEXT;
        while !current.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = current.split_at(cut);
        rest = Some(tail);
        Some(head)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SAMPLE_TOKEN;

    #[test]
    fn peer_messages_round_trip() {
        let messages = [
            PeerMessage::Hello {
                caller: "al".into(),
                call: 1,
                token: SAMPLE_TOKEN,
            },
            PeerMessage::Welcome { name: "bob".into() },
            PeerMessage::Msg("hello, world  with  spaces ".into()),
            PeerMessage::Msg(String::new()),
            PeerMessage::Bye,
            PeerMessage::Ping,
            PeerMessage::Pong,
            PeerMessage::Error {
                code: ErrorCode::BadToken,
                message: "no call expected".into(),
            },
        ];
        for message in messages {
            let text = message.to_string();
            assert_eq!(PeerMessage::parse(&text), Ok(message.clone()), "{text}");
            assert_eq!(
                PeerMessage::parse_owned(text.clone()),
                Ok(message),
                "{text}"
            );
        }
        assert!(PeerMessage::parse("HELLO al 1").is_err());
        assert!(PeerMessage::parse("GET / HTTP/1.1").is_err());
        assert!(PeerMessage::parse("BYE now").is_err());
    }

    #[test]
    fn long_text_is_split_on_char_boundaries() {
        let text = "é".repeat(MAX_TEXT);
        let pieces: Vec<&str> = split_text(&text).collect();
        assert!(pieces.len() >= 2);
        assert!(pieces.iter().all(|p| p.len() <= MAX_TEXT));
        assert_eq!(pieces.concat(), text);
        assert_eq!(split_text("hi").collect::<Vec<_>>(), vec!["hi"]);
        assert_eq!(split_text("").collect::<Vec<_>>(), vec![""]);
    }
}
