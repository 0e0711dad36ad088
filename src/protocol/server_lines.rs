//! The lines the registration server sends a client: replies (`OK …`,
//! `ERR …` and the `USER` rows of a list) and pushed events (`EVENT …`).
//!
//! A client parses every line from the server with [`ServerLine::parse`];
//! one it does not understand is an error, not a guess.

use std::fmt;
use std::net::SocketAddr;

use super::{
    CallId, ErrorCode, FileId, Keys, ProtocolError, Token, parse_addr, parse_call_id,
    parse_features, parse_keys, parse_number, parse_token, write_features,
};

/// The `OK FEATURES` word for "relays chats" (not started with
/// `--no-relay`).
pub const FEATURE_RELAY: &str = "relay";

/// The `OK FEATURES` word for "answers `REJOIN`": a chat whose link broke
/// can be brought back through the relay (announced only with `relay`).
pub const FEATURE_REJOIN: &str = "rejoin";

/// The `OK FEATURES` word for "refuses a relay with `ERR no-relay`", so a
/// client need not look for an older server's prose.
pub const FEATURE_NO_RELAY_CODE: &str = "no-relay-code";

/// The `OK FEATURES` word for "rings": a call between two clients that
/// both announced `ring` waits for the callee's `ANSWER` or `DECLINE`
/// (`OK RINGING`, `EVENT RING`, `EVENT ANSWERED`…). A client announces the
/// same word to ask for it.
pub const FEATURE_RING: &str = "ring";

/// The `OK FEATURES` word for "answers `WATCH`": a watcher is pushed
/// `EVENT PRESENCE` lines. A client may announce the same word.
pub const FEATURE_PRESENCE: &str = "presence";

/// The `OK FEATURES` word for "tells of missed calls": a client that
/// announced the same word gets `EVENT MISSED <caller>` when someone's call
/// finds it busy.
pub const FEATURE_MISSED: &str = "missed";

/// Server and client feature: registrations are owned. `OK WELCOME` gives
/// a secret, a `REGISTER` presenting it takes that registration back at once
/// from a new connection, `EVENT HANGUP` says how a vanished peer's
/// connection ended, `EVENT GONE` says its program is gone, and the client
/// may send `BUSY` and `LINKED`.
pub const FEATURE_SESSION: &str = "session";

/// Server and client feature: each party of a call gets values of its own
/// ([`Keys::Own`]) when both it and its peer announced it: the dialed party
/// shows its value first (`KNOCK`, `PROOF`), nothing shown on the direct
/// path opens the relay, and a chat is brought back with fresh values from
/// `LOCATE` (`EVENT RETURNING`), never with a key the peers keep.
pub const FEATURE_PROOF: &str = "proof";

/// Server and peer feature: lines up to [`crate::protocol::MAX_PEER_LINE`]
/// are relayed (server) or taken (peer) whole.
pub const FEATURE_LONG_LINES: &str = "long-lines";

/// Server and client feature: a client that announced it is told how long
/// a ring has left, in whole seconds, after `OK RINGING <callee> <call-id>`
/// and `EVENT RING <caller> <call-id>`; older clients get the lines they
/// know.
pub const FEATURE_RING_TIME: &str = "ring-time";

/// Server and client feature: the server takes `AWAY [message]` and `BACK`
/// (a call to an away client is refused, `ERR away`, and told to it as a
/// missed call); a client that announced it reads `away` where a state is
/// given (`USER`, `OK FOUND`, `EVENT PRESENCE`) and the code `away`.
/// Others are told an away client is free, and a call to it gets `ERR
/// unreachable`.
pub const FEATURE_AWAY: &str = "away";

/// Server and client feature: the server answers `TRANSFER` with one-time
/// values for a file's data connection, and tells the peer its own (`EVENT
/// TRANSFER`) when it announced the word too.
pub const FEATURE_TRANSFER: &str = "transfer";

/// The `OK FEATURES` word for "relays files" (`FILE-RELAY`): announced
/// with `relay` unless the server runs with `--no-relay-files`.
pub const FEATURE_RELAY_FILES: &str = "relay-files";

/// What happened to one peer, in an `EVENT PRESENCE` line. Each state is
/// absolute, so applying it twice changes nothing: `joined` is online and
/// free, `busy`, `free` and `away` are online in that state (also for a
/// name the watcher has not seen yet), `left` is gone. `away` (not in a
/// call, and taking none) goes only to watchers that announced
/// [`FEATURE_AWAY`]; the others are told `free`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceState {
    Joined,
    Left,
    Busy,
    Free,
    Away,
}

impl PresenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceState::Joined => "joined",
            PresenceState::Left => "left",
            PresenceState::Busy => "busy",
            PresenceState::Free => "free",
            PresenceState::Away => "away",
        }
    }

    /// The state as a watcher that does not know `away` is told it.
    pub fn without_away(self) -> PresenceState {
        match self {
            PresenceState::Away => PresenceState::Free,
            state => state,
        }
    }

    fn parse(text: &str) -> Result<PresenceState, ProtocolError> {
        match text {
            "joined" => Ok(PresenceState::Joined),
            "left" => Ok(PresenceState::Left),
            "busy" => Ok(PresenceState::Busy),
            "free" => Ok(PresenceState::Free),
            "away" => Ok(PresenceState::Away),
            _ => Err(ProtocolError::BadField {
                field: "presence state (joined, left, busy, free or away)",
                value: text.to_string(),
            }),
        }
    }
}

impl fmt::Display for PresenceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of an `EVENT PRESENCE` line, `<state>:<name>` on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub name: String,
    pub state: PresenceState,
}

impl Presence {
    fn parse(text: &str) -> Result<Presence, ProtocolError> {
        // States hold no colon, so the first one ends the state even when
        // the name has colons of its own.
        let (state, name) = text
            .split_once(':')
            .ok_or_else(|| ProtocolError::BadField {
                field: "presence entry (STATE:NAME)",
                value: text.to_string(),
            })?;
        if name.is_empty() {
            return Err(ProtocolError::BadField {
                field: "presence entry (STATE:NAME)",
                value: text.to_string(),
            });
        }
        Ok(Presence {
            name: name.to_string(),
            state: PresenceState::parse(state)?,
        })
    }
}

impl fmt::Display for Presence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.state, self.name)
    }
}

/// How a vanished peer's registration connection ended, as the server saw
/// it: the peer's program closed it (`closed`: a verdict, `EVENT GONE`, follows
/// unless it takes its registration back within a moment), or it was lost
/// (`lost`: a reset, an error or missed heartbeats: its network went quiet,
/// and it may come back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnEnd {
    Closed,
    Lost,
}

impl ConnEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnEnd::Closed => "closed",
            ConnEnd::Lost => "lost",
        }
    }

    fn parse(word: &str) -> Result<ConnEnd, ProtocolError> {
        match word {
            "closed" => Ok(ConnEnd::Closed),
            "lost" => Ok(ConnEnd::Lost),
            _ => Err(ProtocolError::BadField {
                field: "connection end (closed or lost)",
                value: word.to_string(),
            }),
        }
    }
}

/// One row of the online list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub name: String,
    pub busy: bool,
    /// Not in a call, and taking none (`/away`): written `away` instead of
    /// `free`, to a client that announced [`FEATURE_AWAY`].
    pub away: bool,
}

impl UserEntry {
    /// The row as a client that does not know `away` is told it: free.
    pub fn without_away(self) -> UserEntry {
        UserEntry {
            away: false,
            ..self
        }
    }
}

/// A line from the registration server to a client: a reply to a request
/// (`OK …`, `ERR …`, and the `USER` rows that follow `OK USERS n`), or an
/// event pushed at any time (`EVENT …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLine {
    /// `OK WELCOME <name> <heartbeat-secs>`: registered; send a `PING` at
    /// least every `heartbeat_secs` seconds.
    /// With feature `session`: `OK WELCOME <name> <heartbeat-secs> <secret>`.
    Welcome {
        name: String,
        heartbeat_secs: u64,
        secret: Option<Token>,
    },
    /// `OK USERS <n>`: exactly `n` `USER` lines follow.
    Users { count: usize },
    /// `USER <name> free|busy|away`.
    User(UserEntry),
    /// `OK FOUND <name> free|busy|away`: the answer to `LOOKUP`.
    Found(UserEntry),
    /// `OK CALL <name> <call-id> <keys> <addr>…`: both peers are claimed;
    /// dial `addrs` in order and present its `keys` (see [`Keys`]).
    CallReady {
        peer: String,
        call: CallId,
        keys: Keys,
        addrs: Vec<SocketAddr>,
    },
    /// `OK HANGUP <call-id>`.
    HungUp { call: CallId },
    /// `OK PONG`.
    Pong,
    /// `OK FEATURES <word>…`: the answer to `FEATURES`, listing what this
    /// server supports beyond the base protocol (perhaps nothing).
    Features(Vec<String>),
    /// `OK BYE`: the answer to `QUIT`.
    Bye,
    /// `OK RELAYED <call-id>`: this relay connection is joined to the peer's.
    Relayed { call: CallId },
    /// `OK RESUMED <name> <call-id>`: we are busy again in our chat with
    /// `name`, now known to the server as `call`.
    Resumed { peer: String, call: CallId },
    /// `ERR <code> <text>`.
    Error { code: ErrorCode, message: String },
    /// `EVENT INCOMING <caller> <call-id> <keys>`: `caller` claimed us for a
    /// call and will connect presenting its `keys` (see [`Keys`]).
    Incoming {
        caller: String,
        call: CallId,
        keys: Keys,
    },
    /// `EVENT HANGUP <call-id> <name> [closed|lost]`: `name` ended call
    /// `call`, or vanished. To a client that announced `session`, a vanished
    /// peer's end is said: see [`ConnEnd`].
    PeerHungUp {
        call: CallId,
        peer: String,
        end: Option<ConnEnd>,
    },
    /// `EVENT GONE <name>` (feature `session`): the program of `name`, the
    /// peer of our last call, is gone: its connection closed cleanly and
    /// was not taken back in time, or a new program took its name. A chat
    /// with it that waits for its link to come back ends.
    Gone { peer: String },
    /// `EVENT BUSY <call-id> <callee>` (feature `session`): our ringing call
    /// found the callee in a chat after all; both are free, and no recall
    /// wait follows.
    FoundBusy { call: CallId, peer: String },
    /// `OK BUSY <call-id>`: the answer to `BUSY`.
    BusyDone { call: CallId },
    /// `OK LINKED <call-id>`: the answer to `LINKED`.
    Linked { call: CallId },
    /// `EVENT RELAY <call-id>`: the caller could not reach us directly; open a
    /// relay connection for `call`.
    RelayRequested { call: CallId },
    /// `OK RINGING <callee> <call-id> [<secs>]`: the answer to `CALL` when
    /// both sides ring: both are claimed (busy), and the callee is being
    /// asked, for `secs` more seconds (feature `ring-time`).
    Ringing {
        peer: String,
        call: CallId,
        secs: Option<u64>,
    },
    /// `OK ANSWER <caller> <call-id> <keys>`: the answer to `ANSWER`; expect
    /// `caller` to connect presenting its `keys` (see [`Keys`]).
    Answer {
        caller: String,
        call: CallId,
        keys: Keys,
    },
    /// `OK DECLINE <call-id>`: the answer to `DECLINE`; both are free.
    DeclineDone { call: CallId },
    /// `OK WATCH on|off`: the answer to `WATCH`.
    Watching(bool),
    /// `OK AWAY`: the answer to `AWAY`; calls to us are refused.
    AwayDone,
    /// `OK BACK`: the answer to `BACK`; calls ring again.
    BackDone,
    /// `EVENT RING <caller> <call-id> [<secs>]`: `caller` is calling us;
    /// `ANSWER` or `DECLINE` it before the ring timeout, `secs` from now
    /// (feature `ring-time`).
    Ring {
        caller: String,
        call: CallId,
        secs: Option<u64>,
    },
    /// `EVENT ANSWERED <callee> <call-id> <keys> <addr>…`: our ringing call
    /// was answered; dial `addrs` in order and present its `keys` (see [`Keys`]), as after
    /// `OK CALL`.
    Answered {
        peer: String,
        call: CallId,
        keys: Keys,
        addrs: Vec<SocketAddr>,
    },
    /// `EVENT DECLINED <call-id> <callee>`: the callee declined our ringing
    /// call; both are free.
    Declined { call: CallId, peer: String },
    /// `EVENT NOANSWER <call-id> <name>`: the call with `name` rang out
    /// unanswered; both are free.
    NoAnswer { call: CallId, peer: String },
    /// `OK LOCATED <name> <addr>…`: the answer to `LOCATE`: dial these, in
    /// order, to reach the peer of our call now.
    Located {
        peer: String,
        /// With `proof`: fresh values for this attempt (the peer is sent
        /// its own, `EVENT RETURNING`); written before the addresses.
        keys: Option<Keys>,
        addrs: Vec<SocketAddr>,
    },
    /// `EVENT RETURNING <caller> <call-id> <keys>` (feature `proof`):
    /// `caller` is bringing back our chat whose link broke, and was given
    /// the mirror of `keys` for it: show ours when it knocks, and take its
    /// `REHELLO` only with the value we expect.
    Returning {
        caller: String,
        call: CallId,
        keys: Keys,
    },
    /// `OK TRANSFER <name> <call-id> <file-id> <keys>`: the answer to
    /// `TRANSFER`: our values for the data connection of transfer `id` in
    /// call `call` with `name` (show, expect, and the relay's).
    TransferReady {
        peer: String,
        call: CallId,
        id: FileId,
        keys: Keys,
    },
    /// `EVENT TRANSFER <name> <call-id> <file-id> <keys>`: `name` asked
    /// for values for transfer `id` of our chat; these are ours.
    Transfer {
        peer: String,
        call: CallId,
        id: FileId,
        keys: Keys,
    },
    /// `OK REJOIN <name> <call-id> <keys>`: the answer to `REJOIN`: open
    /// our half of the relay for `call` with its `keys` (see [`Keys`]).
    RejoinReady {
        peer: String,
        call: CallId,
        keys: Keys,
    },
    /// `EVENT REJOIN <caller> <call-id> <keys>`: `caller` brings our chat
    /// back through the relay: open our half for `call` with its `keys` (see [`Keys`]).
    RejoinRequested {
        caller: String,
        call: CallId,
        keys: Keys,
    },
    /// `EVENT MISSED <caller>`: `caller` called while we were busy.
    Missed { caller: String },
    /// `EVENT PRESENCE <state>:<name>…`: what changed since the last such
    /// line, each name once with its latest state (only to watchers).
    Presence(Vec<Presence>),
}

impl ServerLine {
    /// A convenience for the server: an error reply.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> ServerLine {
        ServerLine::Error {
            code,
            message: message.into(),
        }
    }

    pub fn parse(line: &str) -> Result<ServerLine, ProtocolError> {
        let bad = |usage: &'static str| ProtocolError::BadArguments {
            verb: "server reply",
            usage,
        };
        let mut words = line.split(' ');
        let first = words.next().unwrap_or_default();
        match first {
            "ERR" => {
                let code = ErrorCode::parse(words.next().unwrap_or_default())?;
                let message = words.collect::<Vec<_>>().join(" ");
                Ok(ServerLine::Error { code, message })
            }
            "USER" => {
                let (Some(name), Some(state), None) = (words.next(), words.next(), words.next())
                else {
                    return Err(bad("USER NAME free|busy|away"));
                };
                Ok(ServerLine::User(user_entry(name, state)?))
            }
            "OK" | "EVENT" => {
                let kind = words.next().unwrap_or_default();
                let args: Vec<&str> = words.collect();
                match (first, kind, args.as_slice()) {
                    ("OK", "WELCOME", [name, secs, secret @ ..]) if secret.len() <= 1 => {
                        Ok(ServerLine::Welcome {
                            name: name.to_string(),
                            heartbeat_secs: parse_number(secs, "heartbeat")?,
                            secret: secret.first().map(|s| parse_token(s)).transpose()?,
                        })
                    }
                    ("OK", "USERS", [n]) => Ok(ServerLine::Users {
                        count: parse_number(n, "user count")?,
                    }),
                    ("OK", "FOUND", [name, state]) => {
                        Ok(ServerLine::Found(user_entry(name, state)?))
                    }
                    ("OK", "CALL", [peer, call, token, addrs @ ..]) if !addrs.is_empty() => {
                        Ok(ServerLine::CallReady {
                            peer: peer.to_string(),
                            call: parse_call_id(call)?,
                            keys: parse_keys(token)?,
                            addrs: parse_addrs(addrs)?,
                        })
                    }
                    ("OK", "HANGUP", [call]) => Ok(ServerLine::HungUp {
                        call: parse_call_id(call)?,
                    }),
                    ("OK", "PONG", []) => Ok(ServerLine::Pong),
                    ("OK", "BYE", []) => Ok(ServerLine::Bye),
                    ("OK", "FEATURES", words) => parse_features(words).map(ServerLine::Features),
                    ("OK", "RELAYED", [call]) => Ok(ServerLine::Relayed {
                        call: parse_call_id(call)?,
                    }),
                    ("OK", "LOCATED", [peer, rest @ ..]) if !rest.is_empty() => {
                        // The keys, if any, are the one word without a port.
                        let (keys, addrs) = match rest {
                            [keys, addrs @ ..] if !keys.contains(':') && !addrs.is_empty() => {
                                (Some(parse_keys(keys)?), addrs)
                            }
                            addrs => (None, addrs),
                        };
                        Ok(ServerLine::Located {
                            peer: peer.to_string(),
                            keys,
                            addrs: addrs
                                .iter()
                                .map(|a| parse_addr(a))
                                .collect::<Result<_, _>>()?,
                        })
                    }
                    ("OK", "RESUMED", [peer, call]) => Ok(ServerLine::Resumed {
                        peer: peer.to_string(),
                        call: parse_call_id(call)?,
                    }),
                    ("OK", "TRANSFER", [peer, call, id, keys]) => Ok(ServerLine::TransferReady {
                        peer: peer.to_string(),
                        call: parse_call_id(call)?,
                        id: parse_number(id, "file id")?,
                        keys: parse_keys(keys)?,
                    }),
                    ("EVENT", "TRANSFER", [peer, call, id, keys]) => Ok(ServerLine::Transfer {
                        peer: peer.to_string(),
                        call: parse_call_id(call)?,
                        id: parse_number(id, "file id")?,
                        keys: parse_keys(keys)?,
                    }),
                    ("EVENT", "RETURNING", [caller, call, keys]) => Ok(ServerLine::Returning {
                        caller: caller.to_string(),
                        call: parse_call_id(call)?,
                        keys: parse_keys(keys)?,
                    }),
                    ("EVENT", "INCOMING", [caller, call, token]) => Ok(ServerLine::Incoming {
                        caller: caller.to_string(),
                        call: parse_call_id(call)?,
                        keys: parse_keys(token)?,
                    }),
                    ("EVENT", "HANGUP", [call, peer, end @ ..]) if end.len() <= 1 => {
                        Ok(ServerLine::PeerHungUp {
                            call: parse_call_id(call)?,
                            peer: peer.to_string(),
                            end: end.first().map(|w| ConnEnd::parse(w)).transpose()?,
                        })
                    }
                    ("EVENT", "GONE", [peer]) => Ok(ServerLine::Gone {
                        peer: peer.to_string(),
                    }),
                    ("EVENT", "BUSY", [call, peer]) => Ok(ServerLine::FoundBusy {
                        call: parse_call_id(call)?,
                        peer: peer.to_string(),
                    }),
                    ("OK", "BUSY", [call]) => Ok(ServerLine::BusyDone {
                        call: parse_call_id(call)?,
                    }),
                    ("OK", "LINKED", [call]) => Ok(ServerLine::Linked {
                        call: parse_call_id(call)?,
                    }),
                    ("EVENT", "RELAY", [call]) => Ok(ServerLine::RelayRequested {
                        call: parse_call_id(call)?,
                    }),
                    ("OK", "REJOIN", [peer, call, token]) => Ok(ServerLine::RejoinReady {
                        peer: peer.to_string(),
                        call: parse_call_id(call)?,
                        keys: parse_keys(token)?,
                    }),
                    ("EVENT", "REJOIN", [caller, call, token]) => Ok(ServerLine::RejoinRequested {
                        caller: caller.to_string(),
                        call: parse_call_id(call)?,
                        keys: parse_keys(token)?,
                    }),
                    ("OK", "RINGING", [peer, call, secs @ ..]) if secs.len() <= 1 => {
                        Ok(ServerLine::Ringing {
                            peer: peer.to_string(),
                            call: parse_call_id(call)?,
                            secs: parse_secs(secs)?,
                        })
                    }
                    ("OK", "ANSWER", [caller, call, token]) => Ok(ServerLine::Answer {
                        caller: caller.to_string(),
                        call: parse_call_id(call)?,
                        keys: parse_keys(token)?,
                    }),
                    ("OK", "DECLINE", [call]) => Ok(ServerLine::DeclineDone {
                        call: parse_call_id(call)?,
                    }),
                    ("OK", "WATCH", [on]) => match *on {
                        "on" => Ok(ServerLine::Watching(true)),
                        "off" => Ok(ServerLine::Watching(false)),
                        _ => Err(bad("OK WATCH on|off")),
                    },
                    ("OK", "AWAY", []) => Ok(ServerLine::AwayDone),
                    ("OK", "BACK", []) => Ok(ServerLine::BackDone),
                    ("EVENT", "RING", [caller, call, secs @ ..]) if secs.len() <= 1 => {
                        Ok(ServerLine::Ring {
                            caller: caller.to_string(),
                            call: parse_call_id(call)?,
                            secs: parse_secs(secs)?,
                        })
                    }
                    ("EVENT", "ANSWERED", [peer, call, token, addrs @ ..]) if !addrs.is_empty() => {
                        Ok(ServerLine::Answered {
                            peer: peer.to_string(),
                            call: parse_call_id(call)?,
                            keys: parse_keys(token)?,
                            addrs: parse_addrs(addrs)?,
                        })
                    }
                    ("EVENT", "DECLINED", [call, peer]) => Ok(ServerLine::Declined {
                        call: parse_call_id(call)?,
                        peer: peer.to_string(),
                    }),
                    ("EVENT", "NOANSWER", [call, peer]) => Ok(ServerLine::NoAnswer {
                        call: parse_call_id(call)?,
                        peer: peer.to_string(),
                    }),
                    ("EVENT", "MISSED", [caller]) => Ok(ServerLine::Missed {
                        caller: caller.to_string(),
                    }),
                    ("EVENT", "PRESENCE", entries) if !entries.is_empty() => entries
                        .iter()
                        .map(|e| Presence::parse(e))
                        .collect::<Result<_, _>>()
                        .map(ServerLine::Presence),
                    _ => Err(ProtocolError::UnknownCommand(format!("{first} {kind}"))),
                }
            }
            _ => Err(ProtocolError::UnknownCommand(first.to_string())),
        }
    }
}

impl fmt::Display for ServerLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerLine::Welcome {
                name,
                heartbeat_secs,
                secret,
            } => {
                write!(f, "OK WELCOME {name} {heartbeat_secs}")?;
                match secret {
                    Some(secret) => write!(f, " {secret}"),
                    None => Ok(()),
                }
            }
            ServerLine::Users { count } => write!(f, "OK USERS {count}"),
            ServerLine::User(user) => write!(f, "USER {} {}", user.name, state_word(user)),
            ServerLine::Found(user) => write!(f, "OK FOUND {} {}", user.name, state_word(user)),
            ServerLine::CallReady {
                peer,
                call,
                keys: token,
                addrs,
            } => {
                write!(f, "OK CALL {peer} {call} {token}")?;
                write_addrs(f, addrs)
            }
            ServerLine::HungUp { call } => write!(f, "OK HANGUP {call}"),
            ServerLine::Pong => write!(f, "OK PONG"),
            ServerLine::Bye => write!(f, "OK BYE"),
            ServerLine::Features(words) => {
                write!(f, "OK ")?;
                write_features(f, words)
            }
            ServerLine::Relayed { call } => write!(f, "OK RELAYED {call}"),
            ServerLine::Resumed { peer, call } => write!(f, "OK RESUMED {peer} {call}"),
            ServerLine::TransferReady {
                peer,
                call,
                id,
                keys,
            } => write!(f, "OK TRANSFER {peer} {call} {id} {keys}"),
            ServerLine::Transfer {
                peer,
                call,
                id,
                keys,
            } => write!(f, "EVENT TRANSFER {peer} {call} {id} {keys}"),
            ServerLine::Returning { caller, call, keys } => {
                write!(f, "EVENT RETURNING {caller} {call} {keys}")
            }
            ServerLine::Located { peer, keys, addrs } => {
                write!(f, "OK LOCATED {peer}")?;
                if let Some(keys) = keys {
                    write!(f, " {keys}")?;
                }
                for addr in addrs {
                    write!(f, " {addr}")?;
                }
                Ok(())
            }
            ServerLine::Error { code, message } => write!(f, "ERR {code} {message}"),
            ServerLine::Incoming {
                caller,
                call,
                keys: token,
            } => write!(f, "EVENT INCOMING {caller} {call} {token}"),
            ServerLine::PeerHungUp { call, peer, end } => {
                write!(f, "EVENT HANGUP {call} {peer}")?;
                match end {
                    Some(end) => write!(f, " {}", end.as_str()),
                    None => Ok(()),
                }
            }
            ServerLine::Gone { peer } => write!(f, "EVENT GONE {peer}"),
            ServerLine::FoundBusy { call, peer } => write!(f, "EVENT BUSY {call} {peer}"),
            ServerLine::BusyDone { call } => write!(f, "OK BUSY {call}"),
            ServerLine::Linked { call } => write!(f, "OK LINKED {call}"),
            ServerLine::RelayRequested { call } => write!(f, "EVENT RELAY {call}"),
            ServerLine::RejoinReady {
                peer,
                call,
                keys: token,
            } => {
                write!(f, "OK REJOIN {peer} {call} {token}")
            }
            ServerLine::RejoinRequested {
                caller,
                call,
                keys: token,
            } => write!(f, "EVENT REJOIN {caller} {call} {token}"),
            ServerLine::Ringing { peer, call, secs } => {
                write!(f, "OK RINGING {peer} {call}")?;
                write_secs(f, *secs)
            }
            ServerLine::Answer {
                caller,
                call,
                keys: token,
            } => write!(f, "OK ANSWER {caller} {call} {token}"),
            ServerLine::DeclineDone { call } => write!(f, "OK DECLINE {call}"),
            ServerLine::Watching(on) => write!(f, "OK WATCH {}", if *on { "on" } else { "off" }),
            ServerLine::AwayDone => write!(f, "OK AWAY"),
            ServerLine::BackDone => write!(f, "OK BACK"),
            ServerLine::Ring { caller, call, secs } => {
                write!(f, "EVENT RING {caller} {call}")?;
                write_secs(f, *secs)
            }
            ServerLine::Answered {
                peer,
                call,
                keys: token,
                addrs,
            } => {
                write!(f, "EVENT ANSWERED {peer} {call} {token}")?;
                write_addrs(f, addrs)
            }
            ServerLine::Declined { call, peer } => write!(f, "EVENT DECLINED {call} {peer}"),
            ServerLine::NoAnswer { call, peer } => write!(f, "EVENT NOANSWER {call} {peer}"),
            ServerLine::Missed { caller } => write!(f, "EVENT MISSED {caller}"),
            ServerLine::Presence(entries) => {
                f.write_str(PRESENCE_PREFIX)?;
                for entry in entries {
                    write!(f, " {entry}")?;
                }
                Ok(())
            }
        }
    }
}

/// What every `EVENT PRESENCE` line starts with; the server packs entries
/// after it up to [`super::MAX_LINE`].
pub const PRESENCE_PREFIX: &str = "EVENT PRESENCE";

fn parse_addrs(addrs: &[&str]) -> Result<Vec<SocketAddr>, ProtocolError> {
    addrs.iter().map(|a| parse_addr(a)).collect()
}

fn write_addrs(f: &mut fmt::Formatter<'_>, addrs: &[SocketAddr]) -> fmt::Result {
    for addr in addrs {
        write!(f, " {addr}")?;
    }
    Ok(())
}

fn state_word(user: &UserEntry) -> &'static str {
    match (user.busy, user.away) {
        (true, _) => "busy",
        (false, true) => "away",
        (false, false) => "free",
    }
}

fn user_entry(name: &str, state: &str) -> Result<UserEntry, ProtocolError> {
    let (busy, away) = match state {
        "free" => (false, false),
        "busy" => (true, false),
        "away" => (false, true),
        _ => {
            return Err(ProtocolError::BadField {
                field: "state (free, busy or away)",
                value: state.to_string(),
            });
        }
    };
    Ok(UserEntry {
        name: name.to_string(),
        busy,
        away,
    })
}

/// The seconds a ring has left, if the line gives them.
fn parse_secs(words: &[&str]) -> Result<Option<u64>, ProtocolError> {
    words
        .first()
        .map(|secs| parse_number(secs, "seconds left"))
        .transpose()
}

fn write_secs(f: &mut fmt::Formatter<'_>, secs: Option<u64>) -> fmt::Result {
    match secs {
        Some(secs) => write!(f, " {secs}"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SAMPLE_TOKEN;

    #[test]
    fn server_lines_round_trip() {
        let lines = [
            ServerLine::Welcome {
                name: "bob".into(),
                heartbeat_secs: 10,
                secret: None,
            },
            ServerLine::Welcome {
                name: "bob".into(),
                heartbeat_secs: 10,
                secret: Some(SAMPLE_TOKEN),
            },
            ServerLine::Users { count: 2 },
            ServerLine::User(UserEntry {
                name: "bob".into(),
                busy: true,
                away: false,
            }),
            ServerLine::User(UserEntry {
                name: "al".into(),
                busy: false,
                away: false,
            }),
            ServerLine::User(UserEntry {
                name: "cy".into(),
                busy: false,
                away: true,
            }),
            ServerLine::TransferReady {
                peer: "bob".into(),
                call: 3,
                id: 5,
                keys: Keys::Own {
                    show: SAMPLE_TOKEN,
                    expect: SAMPLE_TOKEN,
                    relay: SAMPLE_TOKEN,
                },
            },
            ServerLine::Transfer {
                peer: "alice".into(),
                call: 3,
                id: 6,
                keys: Keys::Own {
                    show: SAMPLE_TOKEN,
                    expect: SAMPLE_TOKEN,
                    relay: SAMPLE_TOKEN,
                },
            },
            ServerLine::CallReady {
                peer: "bob".into(),
                call: 3,
                keys: Keys::Shared(SAMPLE_TOKEN),
                addrs: vec![
                    "10.0.0.2:5000".parse().unwrap(),
                    "[2001:db8::1]:5000".parse().unwrap(),
                ],
            },
            ServerLine::Found(UserEntry {
                name: "bob".into(),
                busy: false,
                away: false,
            }),
            ServerLine::Found(UserEntry {
                name: "bob".into(),
                busy: false,
                away: true,
            }),
            ServerLine::HungUp { call: 3 },
            ServerLine::Pong,
            ServerLine::Bye,
            ServerLine::Features(Vec::new()),
            ServerLine::Features(vec!["relay".into(), "no-relay-code".into()]),
            ServerLine::Relayed { call: 9 },
            ServerLine::Resumed {
                peer: "bob".into(),
                call: 2,
            },
            ServerLine::error(ErrorCode::Busy, "bob is busy in another chat"),
            ServerLine::Incoming {
                caller: "al".into(),
                call: 3,
                keys: Keys::Shared(SAMPLE_TOKEN),
            },
            ServerLine::PeerHungUp {
                call: 3,
                peer: "al".into(),
                end: None,
            },
            ServerLine::PeerHungUp {
                call: 3,
                peer: "al".into(),
                end: Some(ConnEnd::Closed),
            },
            ServerLine::PeerHungUp {
                call: 3,
                peer: "al".into(),
                end: Some(ConnEnd::Lost),
            },
            ServerLine::Gone { peer: "al".into() },
            ServerLine::FoundBusy {
                call: 6,
                peer: "bob".into(),
            },
            ServerLine::BusyDone { call: 6 },
            ServerLine::Linked { call: 6 },
            ServerLine::RelayRequested { call: 4 },
            ServerLine::RejoinReady {
                peer: "bob".into(),
                call: 4,
                keys: Keys::Shared(SAMPLE_TOKEN),
            },
            ServerLine::RejoinRequested {
                caller: "al".into(),
                call: 4,
                keys: Keys::Shared(SAMPLE_TOKEN),
            },
            ServerLine::Ringing {
                peer: "bob".into(),
                call: 5,
                secs: None,
            },
            ServerLine::Ringing {
                peer: "bob".into(),
                call: 5,
                secs: Some(30),
            },
            ServerLine::Answer {
                caller: "al".into(),
                call: 5,
                keys: Keys::Shared(SAMPLE_TOKEN),
            },
            ServerLine::DeclineDone { call: 5 },
            ServerLine::Watching(true),
            ServerLine::Watching(false),
            ServerLine::Ring {
                caller: "al".into(),
                call: 5,
                secs: None,
            },
            ServerLine::Ring {
                caller: "al".into(),
                call: 5,
                secs: Some(0),
            },
            ServerLine::AwayDone,
            ServerLine::BackDone,
            ServerLine::Answered {
                peer: "bob".into(),
                call: 5,
                keys: Keys::Shared(SAMPLE_TOKEN),
                addrs: vec![
                    "203.0.113.9:4000".parse().unwrap(),
                    "192.168.1.5:4000".parse().unwrap(),
                ],
            },
            ServerLine::Declined {
                call: 5,
                peer: "bob".into(),
            },
            ServerLine::NoAnswer {
                call: 6,
                peer: "al".into(),
            },
            ServerLine::Missed {
                caller: "carol".into(),
            },
            ServerLine::Presence(vec![
                Presence {
                    name: "ann".into(),
                    state: PresenceState::Joined,
                },
                Presence {
                    name: "a:b".into(),
                    state: PresenceState::Left,
                },
                Presence {
                    name: "Zoë".into(),
                    state: PresenceState::Busy,
                },
                Presence {
                    name: "ben".into(),
                    state: PresenceState::Free,
                },
                Presence {
                    name: "cy".into(),
                    state: PresenceState::Away,
                },
            ]),
        ];
        for line in lines {
            let text = line.to_string();
            assert_eq!(ServerLine::parse(&text), Ok(line), "{text}");
        }
    }

    #[test]
    fn broken_server_lines_are_errors() {
        for line in [
            "",
            "OK",
            "OK CALL bob 1 00",
            "OK CALL bob 1 abababababababababababababababab",
            "USER bob maybe",
            "ERR no-such-code x",
            "EVENT INCOMING al x y",
            "OK USERS many",
            "OK FEATURES Relay",
            "OK RINGING bob",
            "OK RINGING bob 5 30 1",
            "OK RINGING bob 5 +3",
            "EVENT RING al 5 soon",
            "OK AWAY now",
            "OK ANSWER al 5",
            "OK WATCH maybe",
            "EVENT RING al x",
            "EVENT ANSWERED bob 5 abababababababababababababababab",
            "EVENT DECLINED bob",
            "EVENT NOANSWER x al",
            "EVENT MISSED",
            "EVENT MISSED a b",
            "EVENT PRESENCE",
            "EVENT PRESENCE joined",
            "EVENT PRESENCE joined:",
            "EVENT PRESENCE gone:ann",
        ] {
            assert!(ServerLine::parse(line).is_err(), "{line:?}");
        }
    }
}
