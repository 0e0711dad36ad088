//! The requests a client sends to the registration server, one per line,
//! parsed into a [`Request`] and written back with `Display`.
//!
//! The verb is case-insensitive, and every malformed request is a
//! [`ProtocolError`] the server can answer and carry on after.

use std::fmt;
use std::net::SocketAddr;

use super::{
    CallId, FileId, ProtocolError, Token, parse_addr, parse_call_id, parse_features, parse_number,
    parse_token, validate_name, write_features,
};

/// A request from a client to the registration server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `REGISTER <name> <addr> [<secret>]`: join the list as `name`,
    /// reachable for chats at `addr` (the address the client's p2pserver
    /// listens on). A client that announced `session` may present the
    /// secret its last `WELCOME` gave: it then takes its own registration
    /// back at once, from a new connection.
    Register {
        name: String,
        advertise: SocketAddr,
        secret: Option<Token>,
    },
    /// `LIST`: who is online.
    List,
    /// `LOOKUP <name>`: is `name` online, and free?
    Lookup { name: String },
    /// `LOCATE <name>`: where the peer we are in a call with can be dialed
    /// now (to bring back a chat whose link broke); only for that peer.
    Locate { name: String },
    /// `REJOIN <name>`: open the relay again for the chat with `name` whose
    /// link broke (only for the peer of our call); the server answers
    /// `OK REJOIN <name> <call-id> <token>`, and tells the peer once our
    /// half of the relay is open.
    Rejoin { name: String },
    /// `CALL <name>`: claim `name` and ourselves for a chat.
    Call { name: String },
    /// `HANGUP <call-id>`: the chat `call` is over; free both peers.
    Hangup { call: CallId },
    /// `PING`: a heartbeat; the server answers `OK PONG`.
    Ping,
    /// `FEATURES <word>…`: what the client supports; the server answers with
    /// what it supports (`OK FEATURES …`). Allowed before and after
    /// `REGISTER`; an older server answers `ERR unknown-command`.
    Features(Vec<String>),
    /// `QUIT`: leave the list and close the connection.
    Quit,
    /// `RELAY <call-id> <token>`: the first and only request on a relay
    /// connection; the server joins the two parties of `call`.
    Relay { call: CallId, token: Token },
    /// `RESUME <name>`: after registering again (the server restarted, or
    /// the connection dropped), mark us busy in our ongoing chat with `name`.
    Resume { name: String },
    /// `ANSWER <call-id>`: take the call ringing for us (`EVENT RING`); the
    /// server answers `OK ANSWER <caller> <call-id> <token>`.
    Answer { call: CallId },
    /// `DECLINE <call-id>`: refuse the call ringing for us; the caller is
    /// told, and never learns our address.
    Decline { call: CallId },
    /// `BUSY <call-id>` (feature `session`): the call ringing for us finds
    /// us in a chat; it ends as if we had been listed busy (no recall wait),
    /// and we are told of it as a missed call.
    Busy { call: CallId },
    /// `LINKED <call-id>` (feature `session`): the callee's note that the
    /// caller's link is up: the call became a chat, however short.
    Linked { call: CallId },
    /// `WATCH on|off`: whether the server pushes us `EVENT PRESENCE` lines
    /// (who joined, left, became busy or free).
    Watch(bool),
    /// `AWAY [<message>]` (feature `away`): calls to us are refused with
    /// the message (the rest of the line, perhaps empty, at most
    /// [`MAX_AWAY_MESSAGE`] bytes), and told to us as missed calls, until
    /// `BACK`.
    Away { message: String },
    /// `BACK` (feature `away`): calls ring again.
    Back,
    /// `TRANSFER <name> <id>` (feature `transfer`): one-time values for
    /// the data connection of transfer `id` in our chat with `name` (only
    /// the peer of our call). The server answers `OK TRANSFER <name>
    /// <call-id> <id> <keys>` and tells the peer its own (`EVENT
    /// TRANSFER`). Asked again for a transfer, fresh values replace the
    /// old ones.
    Transfer { name: String, id: FileId },
    /// `FILE-RELAY <call-id> <id> <token>` (feature `relay-files`): the
    /// first and only request on a connection that carries transfer
    /// `id`'s bytes through the relay of relayed chat `call`; after `OK
    /// RELAYED <call-id>`, raw bytes both ways.
    FileRelay {
        call: CallId,
        id: FileId,
        token: Token,
    },
}

/// Longest message `AWAY` takes, in bytes: a sentence, which every call to
/// the away client carries back to its caller.
pub const MAX_AWAY_MESSAGE: usize = 200;

/// Every verb [`Request::parse`] knows, as the server names them to a
/// client that sent another (`ERR unknown-command … known: …`).
pub(super) const VERBS: [&str; 21] = [
    "REGISTER",
    "LIST",
    "LOOKUP",
    "LOCATE",
    "REJOIN",
    "CALL",
    "ANSWER",
    "DECLINE",
    "BUSY",
    "LINKED",
    "HANGUP",
    "WATCH",
    "AWAY",
    "BACK",
    "PING",
    "FEATURES",
    "QUIT",
    "RELAY",
    "RESUME",
    "TRANSFER",
    "FILE-RELAY",
];

impl Request {
    pub fn parse(line: &str) -> Result<Request, ProtocolError> {
        let mut words = line.split(' ');
        let verb = words.next().unwrap_or_default();
        if verb.is_empty() && line.is_empty() {
            return Err(ProtocolError::Empty);
        }
        let args: Vec<&str> = words.collect();
        // The verb as spelt below, in any case, without allocating.
        let verb_upper = VERBS
            .iter()
            .find(|known| known.eq_ignore_ascii_case(verb))
            .copied()
            .unwrap_or_default();
        let expect = |n: usize, verb: &'static str, usage: &'static str| {
            if args.len() == n {
                Ok(())
            } else {
                Err(ProtocolError::BadArguments { verb, usage })
            }
        };
        match verb_upper {
            "REGISTER" => {
                if !(2..=3).contains(&args.len()) {
                    return Err(ProtocolError::BadArguments {
                        verb: "REGISTER",
                        usage: "REGISTER NAME IP:PORT [SECRET]",
                    });
                }
                validate_name(args[0]).map_err(ProtocolError::BadName)?;
                Ok(Request::Register {
                    name: args[0].to_string(),
                    advertise: parse_addr(args[1])?,
                    secret: args.get(2).map(|s| parse_token(s)).transpose()?,
                })
            }
            "LIST" => expect(0, "LIST", "LIST").map(|_| Request::List),
            "LOOKUP" => {
                expect(1, "LOOKUP", "LOOKUP NAME")?;
                validate_name(args[0]).map_err(ProtocolError::BadName)?;
                Ok(Request::Lookup {
                    name: args[0].to_string(),
                })
            }
            "CALL" => {
                expect(1, "CALL", "CALL NAME")?;
                validate_name(args[0]).map_err(ProtocolError::BadName)?;
                Ok(Request::Call {
                    name: args[0].to_string(),
                })
            }
            "HANGUP" => {
                expect(1, "HANGUP", "HANGUP CALL-ID")?;
                Ok(Request::Hangup {
                    call: parse_call_id(args[0])?,
                })
            }
            "PING" => expect(0, "PING", "PING").map(|_| Request::Ping),
            "QUIT" => expect(0, "QUIT", "QUIT").map(|_| Request::Quit),
            "FEATURES" => parse_features(&args).map(Request::Features),
            "LOCATE" => {
                expect(1, "LOCATE", "LOCATE NAME")?;
                validate_name(args[0]).map_err(ProtocolError::BadName)?;
                Ok(Request::Locate {
                    name: args[0].to_string(),
                })
            }
            "REJOIN" => {
                expect(1, "REJOIN", "REJOIN NAME")?;
                validate_name(args[0]).map_err(ProtocolError::BadName)?;
                Ok(Request::Rejoin {
                    name: args[0].to_string(),
                })
            }
            "RESUME" => {
                expect(1, "RESUME", "RESUME NAME")?;
                validate_name(args[0]).map_err(ProtocolError::BadName)?;
                Ok(Request::Resume {
                    name: args[0].to_string(),
                })
            }
            "ANSWER" => {
                expect(1, "ANSWER", "ANSWER CALL-ID")?;
                Ok(Request::Answer {
                    call: parse_call_id(args[0])?,
                })
            }
            "DECLINE" => {
                expect(1, "DECLINE", "DECLINE CALL-ID")?;
                Ok(Request::Decline {
                    call: parse_call_id(args[0])?,
                })
            }
            "BUSY" => {
                expect(1, "BUSY", "BUSY CALL-ID")?;
                Ok(Request::Busy {
                    call: parse_call_id(args[0])?,
                })
            }
            "LINKED" => {
                expect(1, "LINKED", "LINKED CALL-ID")?;
                Ok(Request::Linked {
                    call: parse_call_id(args[0])?,
                })
            }
            "WATCH" => {
                const USAGE: &str = "WATCH on|off";
                expect(1, "WATCH", USAGE)?;
                match args[0].to_ascii_lowercase().as_str() {
                    "on" => Ok(Request::Watch(true)),
                    "off" => Ok(Request::Watch(false)),
                    _ => Err(ProtocolError::BadArguments {
                        verb: "WATCH",
                        usage: USAGE,
                    }),
                }
            }
            "AWAY" => {
                // The message is the rest of the line, as typed.
                let message = line.split_once(' ').map_or("", |(_, rest)| rest);
                if message.len() > MAX_AWAY_MESSAGE {
                    return Err(ProtocolError::BadArguments {
                        verb: "AWAY",
                        usage: "AWAY [MESSAGE] (a message of at most 200 bytes)",
                    });
                }
                Ok(Request::Away {
                    message: message.to_string(),
                })
            }
            "BACK" => expect(0, "BACK", "BACK").map(|_| Request::Back),
            "RELAY" => {
                expect(2, "RELAY", "RELAY CALL-ID TOKEN")?;
                Ok(Request::Relay {
                    call: parse_call_id(args[0])?,
                    token: parse_token(args[1])?,
                })
            }
            "TRANSFER" => {
                expect(2, "TRANSFER", "TRANSFER NAME FILE-ID")?;
                validate_name(args[0]).map_err(ProtocolError::BadName)?;
                Ok(Request::Transfer {
                    name: args[0].to_string(),
                    id: parse_number(args[1], "file id")?,
                })
            }
            "FILE-RELAY" => {
                expect(3, "FILE-RELAY", "FILE-RELAY CALL-ID FILE-ID TOKEN")?;
                Ok(Request::FileRelay {
                    call: parse_call_id(args[0])?,
                    id: parse_number(args[1], "file id")?,
                    token: parse_token(args[2])?,
                })
            }
            _ => Err(ProtocolError::UnknownCommand(verb.to_string())),
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Register {
                name,
                advertise,
                secret: None,
            } => write!(f, "REGISTER {name} {advertise}"),
            Request::Register {
                name,
                advertise,
                secret: Some(secret),
            } => write!(f, "REGISTER {name} {advertise} {secret}"),
            Request::List => write!(f, "LIST"),
            Request::Lookup { name } => write!(f, "LOOKUP {name}"),
            Request::Locate { name } => write!(f, "LOCATE {name}"),
            Request::Rejoin { name } => write!(f, "REJOIN {name}"),
            Request::Call { name } => write!(f, "CALL {name}"),
            Request::Hangup { call } => write!(f, "HANGUP {call}"),
            Request::Ping => write!(f, "PING"),
            Request::Quit => write!(f, "QUIT"),
            Request::Features(words) => write_features(f, words),
            Request::Relay { call, token } => write!(f, "RELAY {call} {token}"),
            Request::Transfer { name, id } => write!(f, "TRANSFER {name} {id}"),
            Request::FileRelay { call, id, token } => write!(f, "FILE-RELAY {call} {id} {token}"),
            Request::Resume { name } => write!(f, "RESUME {name}"),
            Request::Answer { call } => write!(f, "ANSWER {call}"),
            Request::Decline { call } => write!(f, "DECLINE {call}"),
            Request::Busy { call } => write!(f, "BUSY {call}"),
            Request::Linked { call } => write!(f, "LINKED {call}"),
            Request::Watch(on) => write!(f, "WATCH {}", if *on { "on" } else { "off" }),
            Request::Away { message } if message.is_empty() => write!(f, "AWAY"),
            Request::Away { message } => write!(f, "AWAY {message}"),
            Request::Back => write!(f, "BACK"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ErrorCode, SAMPLE_TOKEN};

    #[test]
    fn requests_round_trip() {
        let requests = [
            Request::Register {
                name: "Zoë".into(),
                advertise: "127.0.0.1:4000".parse().unwrap(),
                secret: None,
            },
            Request::Register {
                name: "v6".into(),
                advertise: "[::1]:4000".parse().unwrap(),
                secret: Some(SAMPLE_TOKEN),
            },
            Request::List,
            Request::Lookup { name: "bob".into() },
            Request::Locate { name: "bob".into() },
            Request::Rejoin { name: "bob".into() },
            Request::Call { name: "bob".into() },
            Request::Hangup { call: 42 },
            Request::Ping,
            Request::Quit,
            Request::Features(Vec::new()),
            Request::Features(vec!["relay".into(), "no-relay-code".into()]),
            Request::Transfer {
                name: "bob".into(),
                id: 3,
            },
            Request::FileRelay {
                call: 7,
                id: 4,
                token: SAMPLE_TOKEN,
            },
            Request::Relay {
                call: 7,
                token: SAMPLE_TOKEN,
            },
            Request::Resume { name: "bob".into() },
            Request::Answer { call: 12 },
            Request::Decline { call: 13 },
            Request::Busy { call: 14 },
            Request::Linked { call: 15 },
            Request::Watch(true),
            Request::Watch(false),
            Request::Away {
                message: String::new(),
            },
            Request::Away {
                message: "at lunch,  back at 2".into(),
            },
            Request::Back,
        ];
        for request in requests {
            let line = request.to_string();
            assert_eq!(Request::parse(&line), Ok(request), "{line}");
        }
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(Request::parse("list"), Ok(Request::List));
        assert_eq!(Request::parse("Ping"), Ok(Request::Ping));
        assert_eq!(Request::parse("watch ON"), Ok(Request::Watch(true)));
        assert_eq!(Request::parse("answer 3"), Ok(Request::Answer { call: 3 }));
        assert_eq!(
            Request::parse("away gone fishing"),
            Ok(Request::Away {
                message: "gone fishing".into()
            })
        );
    }

    #[test]
    fn malformed_requests_name_the_problem() {
        let long_away = format!("AWAY {}", "x".repeat(MAX_AWAY_MESSAGE + 1));
        let cases = [
            ("", ErrorCode::UnknownCommand, "empty"),
            (
                "FROB",
                ErrorCode::UnknownCommand,
                "unknown command \"FROB\"",
            ),
            ("LIST x", ErrorCode::BadRequest, "usage: LIST"),
            (
                "REGISTER bob",
                ErrorCode::BadRequest,
                "REGISTER NAME IP:PORT",
            ),
            ("REGISTER x localhost:9", ErrorCode::BadRequest, "IP:PORT"),
            (
                "REGISTER bob nowhere",
                ErrorCode::BadRequest,
                "not a valid address",
            ),
            ("REGISTER q 1.2.3.4:5", ErrorCode::BadName, "reserved"),
            ("CALL", ErrorCode::BadRequest, "CALL NAME"),
            ("CALL  bob", ErrorCode::BadRequest, "CALL NAME"),
            ("HANGUP -1", ErrorCode::BadRequest, "call id"),
            ("HANGUP +1", ErrorCode::BadRequest, "call id"),
            ("RELAY 1 xyz", ErrorCode::BadRequest, "token"),
            (
                "RELAY 1 +fababababababababababababababab",
                ErrorCode::BadRequest,
                "token",
            ),
            ("CALL a\u{0}b", ErrorCode::BadName, "control"),
            ("FEATURES Relay", ErrorCode::BadRequest, "feature"),
            ("FEATURES a  b", ErrorCode::BadRequest, "feature"),
            ("ANSWER", ErrorCode::BadRequest, "usage: ANSWER CALL-ID"),
            ("ANSWER 1 2", ErrorCode::BadRequest, "usage: ANSWER CALL-ID"),
            ("ANSWER x", ErrorCode::BadRequest, "call id"),
            ("DECLINE", ErrorCode::BadRequest, "usage: DECLINE CALL-ID"),
            ("DECLINE -4", ErrorCode::BadRequest, "call id"),
            ("WATCH", ErrorCode::BadRequest, "usage: WATCH on|off"),
            ("WATCH maybe", ErrorCode::BadRequest, "usage: WATCH on|off"),
            ("WATCH on off", ErrorCode::BadRequest, "usage: WATCH on|off"),
            ("BACK now", ErrorCode::BadRequest, "usage: BACK"),
            (
                long_away.as_str(),
                ErrorCode::BadRequest,
                "at most 200 bytes",
            ),
            (
                "FROB",
                ErrorCode::UnknownCommand,
                "ANSWER DECLINE BUSY LINKED HANGUP WATCH",
            ),
        ];
        for (line, code, text) in cases {
            let err = Request::parse(line).unwrap_err();
            assert_eq!(err.code(), code, "{line:?}");
            assert!(err.to_string().contains(text), "{line:?}: {err}");
        }
    }

    #[test]
    fn the_verbs_named_to_a_stranger_are_every_verb_taken() {
        for verb in VERBS {
            let taken = Request::parse(verb);
            assert!(
                !matches!(taken, Err(ProtocolError::UnknownCommand(_))),
                "{verb} is named but not taken"
            );
        }
        let source = include_str!("requests.rs");
        let taken = source
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"')?.split_once("\" =>"))
            .map(|(verb, _)| verb)
            .filter(|verb| verb.chars().all(|c| c.is_ascii_uppercase()));
        for verb in taken {
            assert!(VERBS.contains(&verb), "{verb} is taken but not named");
        }
    }
}
