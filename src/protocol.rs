//! The wire format: every line p2pchat sends or receives, as typed values.
//!
//! This module does no I/O. It turns one line of text (without its `\n`) into a
//! [`Request`] (client to registration server), a [`ServerLine`] (server to
//! client: replies and pushed events) or a [`PeerMessage`] (peer to peer, direct
//! or relayed), and turns those values back into lines with `Display`. Every
//! malformed input is a [`ProtocolError`] whose text a person can read, so the
//! server can answer it and carry on.
//!
//! The grammar is documented for humans in README.md ("Protocol"); the short
//! version: words separated by single spaces, the first word is the verb, the
//! verb is case-insensitive, replies start with `OK` or `ERR`, pushed events
//! start with `EVENT`.

use std::fmt;
use std::net::SocketAddr;

/// Longest line (in bytes, without the newline) anyone may send us. Longer
/// lines are refused and the connection is closed, so no peer can make us
/// buffer without limit.
pub const MAX_LINE: usize = 4096;

/// Longest chat message text, in bytes. Leaves room for the `MSG ` prefix
/// under [`MAX_LINE`]; a longer typed line is split into several messages.
pub const MAX_TEXT: usize = MAX_LINE - 16;

/// Longest visible name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

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
                "unknown command {}; known: REGISTER LIST LOOKUP CALL HANGUP PING QUIT RELAY RESUME",
                printable(verb)
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

/// A single-use secret that authorises one call: 128 random bits, written as
/// 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(pub [u8; 16]);

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

    fn parse(text: &str) -> Result<Token, ProtocolError> {
        let bad = || ProtocolError::BadField {
            field: "token (32 hex digits)",
            value: text.to_string(),
        };
        if text.len() != 32 || !text.is_ascii() {
            return Err(bad());
        }
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Token(bytes))
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
    NoRelay,
    Internal,
}

impl ErrorCode {
    const ALL: [ErrorCode; 18] = [
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

/// A request from a client to the registration server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `REGISTER <name> <addr>`: join the list as `name`, reachable for chats
    /// at `addr` (the address the client's p2pserver listens on).
    Register { name: String, advertise: SocketAddr },
    /// `LIST`: who is online.
    List,
    /// `LOOKUP <name>`: is `name` online, and free?
    Lookup { name: String },
    /// `CALL <name>`: claim `name` and ourselves for a chat.
    Call { name: String },
    /// `HANGUP <call-id>`: the chat `call` is over; free both peers.
    Hangup { call: CallId },
    /// `PING`: a heartbeat; the server answers `OK PONG`.
    Ping,
    /// `QUIT`: leave the list and close the connection.
    Quit,
    /// `RELAY <call-id> <token>`: the first and only request on a relay
    /// connection; the server joins the two parties of `call`.
    Relay { call: CallId, token: Token },
    /// `RESUME <name>`: after registering again (the server restarted, or
    /// the connection dropped), mark us busy in our ongoing chat with `name`.
    Resume { name: String },
}

impl Request {
    pub fn parse(line: &str) -> Result<Request, ProtocolError> {
        let mut words = line.split(' ');
        let verb = words.next().unwrap_or_default();
        if verb.is_empty() && line.is_empty() {
            return Err(ProtocolError::Empty);
        }
        let args: Vec<&str> = words.collect();
        let verb_upper = verb.to_ascii_uppercase();
        let expect = |n: usize, verb: &'static str, usage: &'static str| {
            if args.len() == n {
                Ok(())
            } else {
                Err(ProtocolError::BadArguments { verb, usage })
            }
        };
        match verb_upper.as_str() {
            "REGISTER" => {
                expect(2, "REGISTER", "REGISTER NAME HOST:PORT")?;
                validate_name(args[0]).map_err(ProtocolError::BadName)?;
                Ok(Request::Register {
                    name: args[0].to_string(),
                    advertise: parse_addr(args[1])?,
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
            "RESUME" => {
                expect(1, "RESUME", "RESUME NAME")?;
                validate_name(args[0]).map_err(ProtocolError::BadName)?;
                Ok(Request::Resume {
                    name: args[0].to_string(),
                })
            }
            "RELAY" => {
                expect(2, "RELAY", "RELAY CALL-ID TOKEN")?;
                Ok(Request::Relay {
                    call: parse_call_id(args[0])?,
                    token: Token::parse(args[1])?,
                })
            }
            _ => Err(ProtocolError::UnknownCommand(verb.to_string())),
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Register { name, advertise } => write!(f, "REGISTER {name} {advertise}"),
            Request::List => write!(f, "LIST"),
            Request::Lookup { name } => write!(f, "LOOKUP {name}"),
            Request::Call { name } => write!(f, "CALL {name}"),
            Request::Hangup { call } => write!(f, "HANGUP {call}"),
            Request::Ping => write!(f, "PING"),
            Request::Quit => write!(f, "QUIT"),
            Request::Relay { call, token } => write!(f, "RELAY {call} {token}"),
            Request::Resume { name } => write!(f, "RESUME {name}"),
        }
    }
}

/// One row of the online list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub name: String,
    pub busy: bool,
}

/// A line from the registration server to a client: a reply to a request
/// (`OK …`, `ERR …`, and the `USER` rows that follow `OK USERS n`), or an
/// event pushed at any time (`EVENT …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLine {
    /// `OK WELCOME <name> <heartbeat-secs>`: registered; send a `PING` at
    /// least every `heartbeat_secs` seconds.
    Welcome { name: String, heartbeat_secs: u64 },
    /// `OK USERS <n>`: exactly `n` `USER` lines follow.
    Users { count: usize },
    /// `USER <name> free|busy`.
    User(UserEntry),
    /// `OK FOUND <name> free|busy`: the answer to `LOOKUP`.
    Found(UserEntry),
    /// `OK CALL <name> <call-id> <token> <addr>…`: both peers are claimed;
    /// dial `addrs` in order and present `token`.
    CallReady {
        peer: String,
        call: CallId,
        token: Token,
        addrs: Vec<SocketAddr>,
    },
    /// `OK HANGUP <call-id>`.
    HungUp { call: CallId },
    /// `OK PONG`.
    Pong,
    /// `OK FEATURES word…`: the answer to `FEATURES`.
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
    /// `EVENT INCOMING <caller> <call-id> <token>`: `caller` claimed us for a
    /// call and will connect presenting `token`.
    Incoming {
        caller: String,
        call: CallId,
        token: Token,
    },
    /// `EVENT HANGUP <call-id> <name>`: `name` ended call `call`, or vanished.
    PeerHungUp { call: CallId, peer: String },
    /// `EVENT RELAY <call-id>`: the caller could not reach us directly; open a
    /// relay connection for `call`.
    RelayRequested { call: CallId },
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
                    return Err(bad("USER NAME free|busy"));
                };
                let busy = parse_state(state)?;
                Ok(ServerLine::User(UserEntry {
                    name: name.to_string(),
                    busy,
                }))
            }
            "OK" | "EVENT" => {
                let kind = words.next().unwrap_or_default();
                let args: Vec<&str> = words.collect();
                match (first, kind, args.as_slice()) {
                    ("OK", "WELCOME", [name, secs]) => Ok(ServerLine::Welcome {
                        name: name.to_string(),
                        heartbeat_secs: parse_number(secs, "heartbeat")?,
                    }),
                    ("OK", "USERS", [n]) => Ok(ServerLine::Users {
                        count: parse_number(n, "user count")?,
                    }),
                    ("OK", "FOUND", [name, state]) => Ok(ServerLine::Found(UserEntry {
                        name: name.to_string(),
                        busy: parse_state(state)?,
                    })),
                    ("OK", "CALL", [peer, call, token, addrs @ ..]) if !addrs.is_empty() => {
                        Ok(ServerLine::CallReady {
                            peer: peer.to_string(),
                            call: parse_call_id(call)?,
                            token: Token::parse(token)?,
                            addrs: addrs
                                .iter()
                                .map(|a| parse_addr(a))
                                .collect::<Result<_, _>>()?,
                        })
                    }
                    ("OK", "HANGUP", [call]) => Ok(ServerLine::HungUp {
                        call: parse_call_id(call)?,
                    }),
                    ("OK", "PONG", []) => Ok(ServerLine::Pong),
                    ("OK", "FEATURES", words) => Ok(ServerLine::Features(
                        words.iter().map(|w| w.to_string()).collect(),
                    )),
                    ("OK", "BYE", []) => Ok(ServerLine::Bye),
                    ("OK", "RELAYED", [call]) => Ok(ServerLine::Relayed {
                        call: parse_call_id(call)?,
                    }),
                    ("OK", "RESUMED", [peer, call]) => Ok(ServerLine::Resumed {
                        peer: peer.to_string(),
                        call: parse_call_id(call)?,
                    }),
                    ("EVENT", "INCOMING", [caller, call, token]) => Ok(ServerLine::Incoming {
                        caller: caller.to_string(),
                        call: parse_call_id(call)?,
                        token: Token::parse(token)?,
                    }),
                    ("EVENT", "HANGUP", [call, peer]) => Ok(ServerLine::PeerHungUp {
                        call: parse_call_id(call)?,
                        peer: peer.to_string(),
                    }),
                    ("EVENT", "RELAY", [call]) => Ok(ServerLine::RelayRequested {
                        call: parse_call_id(call)?,
                    }),
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
            } => write!(f, "OK WELCOME {name} {heartbeat_secs}"),
            ServerLine::Users { count } => write!(f, "OK USERS {count}"),
            ServerLine::User(UserEntry { name, busy }) => {
                write!(f, "USER {name} {}", state_word(*busy))
            }
            ServerLine::Found(UserEntry { name, busy }) => {
                write!(f, "OK FOUND {name} {}", state_word(*busy))
            }
            ServerLine::CallReady {
                peer,
                call,
                token,
                addrs,
            } => {
                write!(f, "OK CALL {peer} {call} {token}")?;
                for addr in addrs {
                    write!(f, " {addr}")?;
                }
                Ok(())
            }
            ServerLine::HungUp { call } => write!(f, "OK HANGUP {call}"),
            ServerLine::Pong => write!(f, "OK PONG"),
            ServerLine::Features(words) => write!(f, "OK FEATURES {}", words.join(" ")),
            ServerLine::Bye => write!(f, "OK BYE"),
            ServerLine::Relayed { call } => write!(f, "OK RELAYED {call}"),
            ServerLine::Resumed { peer, call } => write!(f, "OK RESUMED {peer} {call}"),
            ServerLine::Error { code, message } => write!(f, "ERR {code} {message}"),
            ServerLine::Incoming {
                caller,
                call,
                token,
            } => write!(f, "EVENT INCOMING {caller} {call} {token}"),
            ServerLine::PeerHungUp { call, peer } => write!(f, "EVENT HANGUP {call} {peer}"),
            ServerLine::RelayRequested { call } => write!(f, "EVENT RELAY {call}"),
        }
    }
}

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
    /// `PING` or `PING n`: keeps a quiet chat's liveness visible; answered
    /// with `PONG` (or `PONG n`, naming the ping answered).
    Ping(Option<u64>),
    /// `PONG` or `PONG n`: the answer to `PING`.
    Pong(Option<u64>),
    /// `FEATURES word…`: what the sender can do, after `HELLO`/`WELCOME`.
    Features(Vec<String>),
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
            "PING" => Ok(PeerMessage::Ping(parse_ping_number(rest)?)),
            "PONG" => Ok(PeerMessage::Pong(parse_ping_number(rest)?)),
            "FEATURES" => Ok(PeerMessage::Features(
                rest.split(' ')
                    .filter(|w| !w.is_empty())
                    .map(str::to_string)
                    .collect(),
            )),
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
                    token: Token::parse(token)?,
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
            PeerMessage::Ping(None) => write!(f, "PING"),
            PeerMessage::Ping(Some(n)) => write!(f, "PING {n}"),
            PeerMessage::Pong(None) => write!(f, "PONG"),
            PeerMessage::Pong(Some(n)) => write!(f, "PONG {n}"),
            PeerMessage::Features(words) => write!(f, "FEATURES {}", words.join(" ")),
            PeerMessage::Error { code, message } => write!(f, "ERR {code} {message}"),
        }
    }
}

/// The optional number of a `PING`/`PONG`: digits only.
fn parse_ping_number(text: &str) -> Result<Option<u64>, ProtocolError> {
    if text.is_empty() {
        return Ok(None);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProtocolError::BadField {
            field: "ping number",
            value: text.to_string(),
        });
    }
    text.parse().map(Some).map_err(|_| ProtocolError::BadField {
        field: "ping number",
        value: text.to_string(),
    })
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

fn state_word(busy: bool) -> &'static str {
    if busy { "busy" } else { "free" }
}

fn parse_state(text: &str) -> Result<bool, ProtocolError> {
    match text {
        "free" => Ok(false),
        "busy" => Ok(true),
        _ => Err(ProtocolError::BadField {
            field: "state (free or busy)",
            value: text.to_string(),
        }),
    }
}

fn parse_addr(text: &str) -> Result<SocketAddr, ProtocolError> {
    text.parse().map_err(|_| ProtocolError::BadField {
        field: "address (HOST:PORT, [V6]:PORT)",
        value: text.to_string(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token([0xab; 16])
    }

    #[test]
    fn requests_round_trip() {
        let requests = [
            Request::Register {
                name: "Zoë".into(),
                advertise: "127.0.0.1:4000".parse().unwrap(),
            },
            Request::Register {
                name: "v6".into(),
                advertise: "[::1]:4000".parse().unwrap(),
            },
            Request::List,
            Request::Lookup { name: "bob".into() },
            Request::Call { name: "bob".into() },
            Request::Hangup { call: 42 },
            Request::Ping,
            Request::Quit,
            Request::Relay {
                call: 7,
                token: token(),
            },
            Request::Resume { name: "bob".into() },
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
    }

    #[test]
    fn malformed_requests_name_the_problem() {
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
                "REGISTER NAME HOST:PORT",
            ),
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
            ("CALL a\u{0}b", ErrorCode::BadName, "control"),
        ];
        for (line, code, text) in cases {
            let err = Request::parse(line).unwrap_err();
            assert_eq!(err.code(), code, "{line:?}");
            assert!(err.to_string().contains(text), "{line:?}: {err}");
        }
    }

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
    fn server_lines_round_trip() {
        let lines = [
            ServerLine::Welcome {
                name: "bob".into(),
                heartbeat_secs: 10,
            },
            ServerLine::Users { count: 2 },
            ServerLine::User(UserEntry {
                name: "bob".into(),
                busy: true,
            }),
            ServerLine::User(UserEntry {
                name: "al".into(),
                busy: false,
            }),
            ServerLine::CallReady {
                peer: "bob".into(),
                call: 3,
                token: token(),
                addrs: vec![
                    "10.0.0.2:5000".parse().unwrap(),
                    "[2001:db8::1]:5000".parse().unwrap(),
                ],
            },
            ServerLine::Found(UserEntry {
                name: "bob".into(),
                busy: false,
            }),
            ServerLine::HungUp { call: 3 },
            ServerLine::Pong,
            ServerLine::Bye,
            ServerLine::Relayed { call: 9 },
            ServerLine::Resumed {
                peer: "bob".into(),
                call: 2,
            },
            ServerLine::error(ErrorCode::Busy, "bob is busy in another chat"),
            ServerLine::Incoming {
                caller: "al".into(),
                call: 3,
                token: token(),
            },
            ServerLine::PeerHungUp {
                call: 3,
                peer: "al".into(),
            },
            ServerLine::RelayRequested { call: 4 },
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
        ] {
            assert!(ServerLine::parse(line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn peer_messages_round_trip() {
        let messages = [
            PeerMessage::Hello {
                caller: "al".into(),
                call: 1,
                token: token(),
            },
            PeerMessage::Welcome { name: "bob".into() },
            PeerMessage::Msg("hello, world  with  spaces ".into()),
            PeerMessage::Msg(String::new()),
            PeerMessage::Bye,
            PeerMessage::Ping(None),
            PeerMessage::Pong(None),
            PeerMessage::Ping(Some(7)),
            PeerMessage::Pong(Some(7)),
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
    fn tokens_parse_and_compare() {
        let t = token();
        assert_eq!(Token::parse(&t.to_string()), Ok(t));
        assert!(t.matches(&t));
        assert!(
            !t.matches(&Token(
                [0xab; 15]
                    .iter()
                    .copied()
                    .chain([0])
                    .collect::<Vec<_>>()
                    .try_into()
                    .unwrap()
            ))
        );
        assert!(Token::parse("ABABABABABABABABABABABABABABABAB").is_ok());
        assert!(Token::parse("zz").is_err());
        assert!(Token::parse("é".repeat(16).as_str()).is_err());
        assert_eq!(format!("{t:?}"), "Token(…)");
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

    #[test]
    fn printable_escapes_and_caps() {
        assert_eq!(printable("a\u{1b}[2J"), "\"a\\u{1b}[2J\"");
        assert!(printable(&"x".repeat(100)).ends_with("…\""));
    }
}
