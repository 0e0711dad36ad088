//! The lines two peers exchange in a chat, directly or through the
//! server's relay: the `HELLO`/`WELCOME` handshake, `MSG` lines, the
//! liveness pings, the features a newer peer offers, and `BYE`.
//!
//! Peers skip a line they do not understand, so a newer peer may add lines
//! (`FEATURES`) and numbers (`PING 17`) an older one ignores; the bare forms
//! stay valid for talking to older peers. `TYPING on|off` goes only to a
//! peer that announced [`FEATURE_TYPING`].
//!
//! A file is offered, answered and ended on the chat's link (`FILE-OFFER`,
//! `FILE-ACCEPT`, `FILE-END`), only to a peer that announced
//! [`FEATURE_FILES`]; its bytes go on a connection of their own
//! (`docs/files.md`).
//!
//! [`split_text`] is here too: it keeps a typed line within what one `MSG`
//! may carry; and the form of an action line (`/me waves`), which is a
//! `MSG` too ([`action_text`], [`action_of`]).

use std::fmt;

use crate::lines::Lines;

use super::{
    CallId, ErrorCode, MAX_TEXT, ProtocolError, Token, name_key, parse_call_id, parse_features,
    parse_number, parse_token, validate_name, write_features,
};

/// Peer feature: the sender shows `bob is typing…` for `TYPING on`, so it
/// may be sent `TYPING on|off` (at most one a second, none of the text).
/// A chat that would not show it (piped, or `--no-typing`) leaves it out.
pub const FEATURE_TYPING: &str = "typing";

/// Peer feature: the sender takes files (`FILE-OFFER`) and answers them
/// (`FILE-ACCEPT`, `FILE-END`). A peer without it is never offered one.
pub const FEATURE_FILES: &str = "files";

/// A transfer's number, chosen by the side that offers the file; unique
/// among that side's offers in one chat.
pub type FileId = u64;

/// How a transfer ended, as `FILE-END` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileEnd {
    /// `refused`: the receiver said no.
    Refused,
    /// `cancelled`: either side stopped it (`/cancel`, or the chat ended).
    Cancelled,
    /// `expired`: the offer was not answered within the file timeout.
    Expired,
    /// `too-big`: over the receiver's `--max-receive`, refused unasked.
    TooBig,
    /// `failed`: it could not go on; the text says why (a full disk, a
    /// short file, more bytes than offered).
    Failed,
    /// `done`: the receiver has the whole file, renamed into place.
    Done,
}

impl FileEnd {
    const ALL: [(FileEnd, &'static str); 6] = [
        (FileEnd::Refused, "refused"),
        (FileEnd::Cancelled, "cancelled"),
        (FileEnd::Expired, "expired"),
        (FileEnd::TooBig, "too-big"),
        (FileEnd::Failed, "failed"),
        (FileEnd::Done, "done"),
    ];

    pub fn word(self) -> &'static str {
        FileEnd::ALL
            .iter()
            .find(|(end, _)| *end == self)
            .map_or("failed", |(_, word)| word)
    }

    fn parse(word: &str) -> Option<FileEnd> {
        FileEnd::ALL
            .iter()
            .find(|(_, w)| *w == word)
            .map(|(end, _)| *end)
    }
}

/// Whether the sender has a half-typed line for its peer, in `TYPING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typing {
    /// `TYPING on`: a line is being typed (said again every few seconds
    /// while it is, so a peer may let an old one lapse).
    On,
    /// `TYPING off`: the line was cleared, or left idle. A `MSG` ends it
    /// too, without a word.
    Off,
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
    /// `KNOCK <caller> <call-id>` (feature `proof`): the caller's first
    /// line on a direct connection, asking the dialed party to show its
    /// value first; it says no secret.
    Knock { caller: String, call: CallId },
    /// `PROOF <value>`: the dialed party's answer to `KNOCK`: its own value
    /// for the call, shown once. The caller goes on (`HELLO`, `REHELLO`)
    /// only if it is the value the server told it to expect.
    Proof(Token),
    /// `WELCOME <name>`: the callee accepted.
    Welcome { name: String },
    /// `MSG <text>`: one chat line; text may hold any character but newline.
    Msg(String),
    /// `BYE`: the sender ended the chat.
    Bye,
    /// `PING` or `PING <n>`: keeps a quiet chat's liveness visible;
    /// answered with `PONG`. The number lets a newer peer match each answer
    /// to its ping; an older peer only knows (and only sends) the bare form,
    /// and skips `PING <n>` as a line it does not understand.
    Ping(Option<u64>),
    /// `PONG` or `PONG <n>`: the answer to `PING`, carrying its number.
    Pong(Option<u64>),
    /// `FEATURES <word>…`: what the sender supports beyond the base
    /// protocol, sent by newer peers right after `HELLO` / `WELCOME`. Older
    /// peers skip it. The list may be empty.
    Features(Vec<String>),
    /// `ERR <code> <text>`: the connection is refused; it closes next.
    Error { code: ErrorCode, message: String },
    /// `RESUMABLE <key>`: the caller's secret for this chat, sent once after
    /// the handshake: a broken link can be brought back by presenting it.
    Resumable(Token),
    /// `ACK <n>`: `n` chat lines of the sender's peer have arrived so far,
    /// in this chat (over every link it had).
    Ack(u64),
    /// `REHELLO <caller> <key> <received>`: the caller brings back a chat
    /// whose link broke, and says how many lines of the callee's it has.
    Rehello {
        caller: String,
        key: Token,
        received: u64,
    },
    /// `REWELCOME <name> <received>`: the callee took the chat back, and
    /// says how many of the caller's lines it has.
    Rewelcome { name: String, received: u64 },
    /// `TYPING on` / `TYPING off` (feature `typing`): whether the sender
    /// has a half-typed line for us.
    Typing(Typing),
    /// `FILE-OFFER <id> <size> <name>` (feature `files`): the sender
    /// offers a file of `size` bytes. The name is the sender's base name,
    /// untrusted: any text but a newline, possibly empty; the receiver
    /// makes it safe before it names a file or reaches a screen.
    FileOffer { id: FileId, size: u64, name: String },
    /// `FILE-ACCEPT <id>`: the receiver takes the offered file; its bytes
    /// come on a data connection of their own.
    FileAccept { id: FileId },
    /// `FILE-END <id> <end> [text]`: the transfer `id` is over, for the
    /// reason `end` (the text, when there is one, says more; untrusted).
    /// `id` is the offering side's number, whichever side says it.
    FileEnd {
        id: FileId,
        end: FileEnd,
        text: String,
    },
    /// `FILE-READY <id>`: on the chat's link, the chat's callee has the
    /// values the server issued it for transfer `id`'s data connection
    /// (`EVENT TRANSFER`): the caller may open it now.
    FileReady { id: FileId },
    /// `FILE-KNOCK <id>`: the first line of a data connection; the dialed
    /// side shows its value for transfer `id` first (`PROOF`).
    FileKnock { id: FileId },
    /// `FILE-HELLO <value>`: the dialing side's value, after the `PROOF`.
    FileHello { value: Token },
    /// `FILE-FROM <offset>`: the receiver's last line on a data
    /// connection: the bytes it wants, from `offset` on; raw bytes follow.
    FileFrom { offset: u64 },
}

/// A batch of a peer's messages, as a chat link's reader hands them on:
/// the texts of its `MSG`s in one buffer, so that a flood of lines costs
/// no allocation per line on either side of the hand-off.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PeerBatch {
    texts: Lines,
    items: Vec<BatchItem>,
    /// Messages in all.
    len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BatchItem {
    /// `MSG`s in a row (a flood is one item): their texts are the next
    /// this many of `texts`.
    Msgs(usize),
    Other(PeerMessage),
}

/// Messages of a [`PeerBatch`]: `MSG`s in a row, or one other message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRun<'a> {
    Msgs { lines: usize, bytes: usize },
    Other(&'a PeerMessage),
}

/// One message of a [`PeerBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerItem<'a> {
    Msg(&'a str),
    Other(&'a PeerMessage),
}

impl PeerBatch {
    /// Adds one line as it came ([`PeerBatch::push_block`]).
    pub fn push_line(&mut self, line: &str) {
        self.push_block(line, &[(0, line.len())]);
    }

    /// Adds the lines of `block` where `spans` say, up to and with a `BYE`;
    /// their `MSG`s' texts are taken in one copy of the block. A line we do
    /// not understand, from a newer or broken peer, is skipped, and the
    /// chat goes on. Says how many lines it took.
    pub fn push_block(&mut self, block: &str, spans: &[(usize, usize)]) -> usize {
        let mut took = spans.len();
        for (i, &(start, end)) in spans.iter().enumerate() {
            let line = &block[start..end];
            if msg_text_at(line).is_some() {
                self.count_text();
                continue;
            }
            if let Ok(msg) = PeerMessage::parse(line) {
                let bye = msg == PeerMessage::Bye;
                self.items.push(BatchItem::Other(msg));
                self.len += 1;
                if bye {
                    took = i + 1;
                    break;
                }
            }
        }
        let texts = spans[..took].iter().filter_map(|&(start, end)| {
            msg_text_at(&block[start..end]).map(|at| (start + at, end))
        });
        self.texts.push_block(block, texts);
        took
    }

    pub fn push(&mut self, msg: PeerMessage) {
        match msg {
            PeerMessage::Msg(text) => self.push_text(&text),
            other => {
                self.items.push(BatchItem::Other(other));
                self.len += 1;
            }
        }
    }

    fn push_text(&mut self, text: &str) {
        self.texts.push(text);
        self.count_text();
    }

    /// One more `MSG` in the run of them at the end.
    fn count_text(&mut self) {
        match self.items.last_mut() {
            Some(BatchItem::Msgs(n)) => *n += 1,
            _ => self.items.push(BatchItem::Msgs(1)),
        }
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn ends_with_bye(&self) -> bool {
        matches!(self.items.last(), Some(BatchItem::Other(PeerMessage::Bye)))
    }

    /// The messages, in order.
    pub fn iter(&self) -> impl Iterator<Item = PeerItem<'_>> {
        let (mut texts, mut items) = (self.texts.iter(), self.items.iter());
        let mut run = 0;
        std::iter::from_fn(move || {
            while run == 0 {
                match items.next()? {
                    BatchItem::Msgs(n) => run = *n,
                    BatchItem::Other(msg) => return Some(PeerItem::Other(msg)),
                }
            }
            run -= 1;
            Some(PeerItem::Msg(texts.next().unwrap_or_default()))
        })
    }

    /// The messages in order, a run of `MSG`s as one: how many, and the
    /// bytes of their texts, which are not looked at.
    pub fn runs(&self) -> impl Iterator<Item = PeerRun<'_>> {
        let mut first = 0;
        self.items.iter().map(move |item| match item {
            BatchItem::Msgs(n) => {
                let bytes = self.texts.bytes_of(first..first + n);
                first += n;
                PeerRun::Msgs { lines: *n, bytes }
            }
            BatchItem::Other(msg) => PeerRun::Other(msg),
        })
    }

    /// The texts of the first `n` `MSG`s: all of them (the usual case)
    /// without a copy.
    pub fn into_texts(self, n: usize) -> Lines {
        if n >= self.texts.len() {
            return self.texts;
        }
        self.texts.iter().take(n).collect()
    }

    /// The messages other than `MSG`, to change in place.
    pub fn others_mut(&mut self) -> impl Iterator<Item = &mut PeerMessage> {
        self.items.iter_mut().filter_map(|item| match item {
            BatchItem::Other(msg) => Some(msg),
            BatchItem::Msgs(_) => None,
        })
    }
}

/// Where the text of a `MSG` line starts in it, if it is one (`MSG` alone
/// is the empty text).
fn msg_text_at(line: &str) -> Option<usize> {
    if line.starts_with("MSG ") {
        Some(4)
    } else {
        (line == "MSG").then_some(3)
    }
}

impl FromIterator<PeerMessage> for PeerBatch {
    fn from_iter<I: IntoIterator<Item = PeerMessage>>(msgs: I) -> PeerBatch {
        let mut batch = PeerBatch::default();
        msgs.into_iter().for_each(|msg| batch.push(msg));
        batch
    }
}

impl PeerMessage {
    pub fn parse(line: &str) -> Result<PeerMessage, ProtocolError> {
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        let bad = |verb, usage| ProtocolError::BadArguments { verb, usage };
        match verb {
            "MSG" => Ok(PeerMessage::Msg(rest.to_string())),
            "BYE" if rest.is_empty() => Ok(PeerMessage::Bye),
            "PING" => parse_ping_number(rest).map(PeerMessage::Ping),
            "PONG" => parse_ping_number(rest).map(PeerMessage::Pong),
            "FEATURES" => {
                let words: Vec<&str> = if rest.is_empty() {
                    Vec::new()
                } else {
                    rest.split(' ').collect()
                };
                parse_features(&words).map(PeerMessage::Features)
            }
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
            "RESUMABLE" => Ok(PeerMessage::Resumable(parse_token(rest)?)),
            "PROOF" => Ok(PeerMessage::Proof(parse_token(rest)?)),
            "KNOCK" => {
                let (caller, call) = rest
                    .split_once(' ')
                    .ok_or_else(|| bad("KNOCK", "KNOCK NAME CALL-ID"))?;
                validate_name(caller).map_err(ProtocolError::BadName)?;
                Ok(PeerMessage::Knock {
                    caller: caller.to_string(),
                    call: parse_call_id(call)?,
                })
            }
            "ACK" => Ok(PeerMessage::Ack(parse_number(rest, "line count")?)),
            "TYPING" => match rest {
                "on" => Ok(PeerMessage::Typing(Typing::On)),
                "off" => Ok(PeerMessage::Typing(Typing::Off)),
                _ => Err(bad("TYPING", "TYPING on|off")),
            },
            "FILE-OFFER" => {
                let mut args = rest.splitn(3, ' ');
                let (Some(id), Some(size), Some(name)) = (args.next(), args.next(), args.next())
                else {
                    return Err(bad("FILE-OFFER", "FILE-OFFER ID SIZE NAME"));
                };
                Ok(PeerMessage::FileOffer {
                    id: parse_number(id, "file id")?,
                    size: parse_number(size, "file size")?,
                    name: name.to_string(),
                })
            }
            "FILE-ACCEPT" => Ok(PeerMessage::FileAccept {
                id: parse_number(rest, "file id")?,
            }),
            "FILE-READY" => Ok(PeerMessage::FileReady {
                id: parse_number(rest, "file id")?,
            }),
            "FILE-KNOCK" => Ok(PeerMessage::FileKnock {
                id: parse_number(rest, "file id")?,
            }),
            "FILE-HELLO" => Ok(PeerMessage::FileHello {
                value: parse_token(rest)?,
            }),
            "FILE-FROM" => Ok(PeerMessage::FileFrom {
                offset: parse_number(rest, "offset")?,
            }),
            "FILE-END" => {
                let mut args = rest.splitn(3, ' ');
                let (Some(id), Some(end)) = (args.next(), args.next()) else {
                    return Err(bad("FILE-END", "FILE-END ID END [TEXT]"));
                };
                let Some(end) = FileEnd::parse(end) else {
                    return Err(ProtocolError::BadField {
                        field: "file end",
                        value: end.to_string(),
                    });
                };
                Ok(PeerMessage::FileEnd {
                    id: parse_number(id, "file id")?,
                    end,
                    text: args.next().unwrap_or_default().to_string(),
                })
            }
            "REHELLO" => {
                let args: Vec<&str> = rest.split(' ').collect();
                let [caller, key, received] = args.as_slice() else {
                    return Err(bad("REHELLO", "REHELLO NAME KEY RECEIVED"));
                };
                validate_name(caller).map_err(ProtocolError::BadName)?;
                Ok(PeerMessage::Rehello {
                    caller: caller.to_string(),
                    key: parse_token(key)?,
                    received: parse_number(received, "line count")?,
                })
            }
            "REWELCOME" => {
                let Some((name, received)) = rest.split_once(' ') else {
                    return Err(bad("REWELCOME", "REWELCOME NAME RECEIVED"));
                };
                validate_name(name).map_err(ProtocolError::BadName)?;
                Ok(PeerMessage::Rewelcome {
                    name: name.to_string(),
                    received: parse_number(received, "line count")?,
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
            PeerMessage::Features(words) => write_features(f, words),
            PeerMessage::Error { code, message } => write!(f, "ERR {code} {message}"),
            PeerMessage::Resumable(key) => write!(f, "RESUMABLE {key}"),
            PeerMessage::Proof(value) => write!(f, "PROOF {value}"),
            PeerMessage::Knock { caller, call } => write!(f, "KNOCK {caller} {call}"),
            PeerMessage::Ack(n) => write!(f, "ACK {n}"),
            PeerMessage::Rehello {
                caller,
                key,
                received,
            } => write!(f, "REHELLO {caller} {key} {received}"),
            PeerMessage::Rewelcome { name, received } => write!(f, "REWELCOME {name} {received}"),
            PeerMessage::Typing(Typing::On) => write!(f, "TYPING on"),
            PeerMessage::Typing(Typing::Off) => write!(f, "TYPING off"),
            PeerMessage::FileOffer { id, size, name } => write!(f, "FILE-OFFER {id} {size} {name}"),
            PeerMessage::FileAccept { id } => write!(f, "FILE-ACCEPT {id}"),
            PeerMessage::FileReady { id } => write!(f, "FILE-READY {id}"),
            PeerMessage::FileKnock { id } => write!(f, "FILE-KNOCK {id}"),
            PeerMessage::FileHello { value } => write!(f, "FILE-HELLO {value}"),
            PeerMessage::FileFrom { offset } => write!(f, "FILE-FROM {offset}"),
            PeerMessage::FileEnd { id, end, text } if text.is_empty() => {
                write!(f, "FILE-END {id} {}", end.word())
            }
            PeerMessage::FileEnd { id, end, text } => {
                write!(f, "FILE-END {id} {} {text}", end.word())
            }
        }
    }
}

/// The optional number after `PING` / `PONG`: nothing, or decimal digits
/// only (no sign, no spaces) that fit a `u64`.
fn parse_ping_number(rest: &str) -> Result<Option<u64>, ProtocolError> {
    if rest.is_empty() {
        return Ok(None);
    }
    parse_number(rest, "ping number").map(Some)
}

/// The text of the `MSG` that `/me waves` sends: `* alice waves`, as IRC
/// shows an action. An action is an ordinary chat line on the wire, so it
/// is numbered, acknowledged and sent again like any other, goes through
/// every relay, and an older peer shows it readably (`alice: * alice
/// waves`); a newer one shows it as the action it is ([`action_of`]).
pub fn action_text(sender: &str, action: &str) -> String {
    format!("* {sender} {action}")
}

/// The action in a line `sender` sent, if it is one: `* <sender> <action>`,
/// with the sender's own name (compared as names are), so that no peer can
/// make a line pass for someone else's action.
pub fn action_of<'a>(sender: &str, text: &'a str) -> Option<&'a str> {
    let (name, action) = text.strip_prefix("* ")?.split_once(' ')?;
    let own = name == sender || name_key(name) == name_key(sender);
    (own && !action.is_empty()).then_some(action)
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
    fn a_batch_keeps_its_messages_in_order_and_skips_what_it_cannot_read() {
        let mut batch = PeerBatch::default();
        for line in ["MSG one", "PING 3", "FROB", "MSG", "MSG two words", "BYE"] {
            batch.push_line(line);
        }
        let got: Vec<String> = batch
            .iter()
            .map(|item| match item {
                PeerItem::Msg(text) => format!("msg {text:?}"),
                PeerItem::Other(msg) => msg.to_string(),
            })
            .collect();
        assert_eq!(
            got,
            [
                "msg \"one\"",
                "PING 3",
                "msg \"\"",
                "msg \"two words\"",
                "BYE"
            ]
        );
        assert!(batch.ends_with_bye());
        assert_eq!(batch.len(), 5);
        let same: PeerBatch = batch
            .iter()
            .map(|item| match item {
                PeerItem::Msg(text) => PeerMessage::Msg(text.to_string()),
                PeerItem::Other(msg) => msg.clone(),
            })
            .collect();
        assert_eq!(same, batch);
        let texts = |n| {
            batch
                .clone()
                .into_texts(n)
                .iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(3), ["one", "", "two words"]);
        assert_eq!(texts(1), ["one"]);
    }

    #[test]
    fn a_block_of_lines_is_the_batch_its_lines_make_one_by_one_up_to_a_bye() {
        let block = "MSG one\nPING 3\nFROB\nMSG\nMSG two words\r\nACK 2\nBYE\nMSG after\n";
        let lines = [
            "MSG one",
            "PING 3",
            "FROB",
            "MSG",
            "MSG two words",
            "ACK 2",
            "BYE",
        ];
        let mut spans = Vec::new();
        let mut at = 0;
        for line in block.lines() {
            spans.push((at, at + line.len()));
            at += line.len() + 1 + usize::from(line == "MSG two words");
        }
        let mut one_by_one = PeerBatch::default();
        one_by_one.push_line("MSG before");
        lines.iter().for_each(|line| one_by_one.push_line(line));
        let mut whole = PeerBatch::default();
        whole.push_line("MSG before");
        assert_eq!(whole.push_block(block, &spans), lines.len());
        assert_eq!(whole, one_by_one);
        assert!(whole.ends_with_bye());
        let texts: Vec<&str> = whole.texts.iter().collect();
        assert_eq!(texts, ["before", "one", "", "two words"]);
        let runs: Vec<PeerRun> = whole.runs().collect();
        assert_eq!(
            runs,
            [
                PeerRun::Msgs { lines: 2, bytes: 9 },
                PeerRun::Other(&PeerMessage::Ping(Some(3))),
                PeerRun::Msgs { lines: 2, bytes: 9 },
                PeerRun::Other(&PeerMessage::Ack(2)),
                PeerRun::Other(&PeerMessage::Bye),
            ]
        );
    }

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
            PeerMessage::Ping(None),
            PeerMessage::Ping(Some(17)),
            PeerMessage::Ping(Some(u64::MAX)),
            PeerMessage::Pong(None),
            PeerMessage::Pong(Some(0)),
            PeerMessage::Features(Vec::new()),
            PeerMessage::Features(vec!["relay".into(), "ping-2".into()]),
            PeerMessage::Error {
                code: ErrorCode::BadToken,
                message: "no call expected".into(),
            },
            PeerMessage::Resumable(SAMPLE_TOKEN),
            PeerMessage::Proof(SAMPLE_TOKEN),
            PeerMessage::Knock {
                caller: "alice".into(),
                call: 7,
            },
            PeerMessage::Ack(0),
            PeerMessage::Ack(123_456),
            PeerMessage::Rehello {
                caller: "al".into(),
                key: SAMPLE_TOKEN,
                received: 42,
            },
            PeerMessage::Rewelcome {
                name: "bob".into(),
                received: 7,
            },
            PeerMessage::Typing(Typing::On),
            PeerMessage::Typing(Typing::Off),
            PeerMessage::FileOffer {
                id: 3,
                size: 2_400_000,
                name: "report final.pdf".into(),
            },
            PeerMessage::FileOffer {
                id: 4,
                size: 0,
                name: String::new(),
            },
            PeerMessage::FileAccept { id: 3 },
            PeerMessage::FileReady { id: 3 },
            PeerMessage::FileKnock { id: 3 },
            PeerMessage::FileHello {
                value: SAMPLE_TOKEN,
            },
            PeerMessage::FileFrom { offset: 1024 },
            PeerMessage::FileEnd {
                id: 3,
                end: FileEnd::Failed,
                text: "No space left on device".into(),
            },
            PeerMessage::FileEnd {
                id: 3,
                end: FileEnd::Done,
                text: String::new(),
            },
        ];
        for message in messages {
            let text = message.to_string();
            assert_eq!(PeerMessage::parse(&text), Ok(message), "{text}");
        }
        assert!(PeerMessage::parse("HELLO al 1").is_err());
        assert!(PeerMessage::parse("GET / HTTP/1.1").is_err());
        assert!(PeerMessage::parse("BYE now").is_err());
        for bad in [
            "FILE-OFFER 1 10",
            "FILE-OFFER x 10 a",
            "FILE-OFFER 1 -10 a",
            "FILE-ACCEPT",
            "FILE-ACCEPT 1 2",
            "FILE-READY",
            "FILE-READY x",
            "FILE-READY 1 00",
            "FILE-KNOCK",
            "FILE-HELLO zz",
            "FILE-FROM -1",
            "FILE-END 1",
            "FILE-END 1 exploded",
        ] {
            assert!(PeerMessage::parse(bad).is_err(), "{bad:?}");
        }
        for bad in ["TYPING", "TYPING ON", "TYPING on hello", "TYPING maybe"] {
            assert!(PeerMessage::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ping_and_pong_take_an_optional_number_of_digits_only() {
        assert_eq!(PeerMessage::parse("PING"), Ok(PeerMessage::Ping(None)));
        assert_eq!(
            PeerMessage::parse("PONG 17"),
            Ok(PeerMessage::Pong(Some(17)))
        );
        assert_eq!(PeerMessage::Ping(None).to_string(), "PING");
        assert_eq!(PeerMessage::Pong(Some(17)).to_string(), "PONG 17");
        for bad in [
            "PING +1",
            "PING -1",
            "PING 1 2",
            "PING  1",
            "PONG x",
            "PONG 18446744073709551616",
        ] {
            let err = PeerMessage::parse(bad).unwrap_err();
            assert!(err.to_string().contains("ping number"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn features_are_up_to_32_short_lowercase_words() {
        assert_eq!(
            PeerMessage::parse("FEATURES"),
            Ok(PeerMessage::Features(Vec::new()))
        );
        assert_eq!(PeerMessage::Features(Vec::new()).to_string(), "FEATURES");
        let most = vec!["a".repeat(32); 32];
        let line = PeerMessage::Features(most.clone()).to_string();
        assert_eq!(PeerMessage::parse(&line), Ok(PeerMessage::Features(most)));
        let too_many = format!("FEATURES{}", " x".repeat(33));
        let too_long = format!("FEATURES {}", "a".repeat(33));
        for bad in [
            too_many.as_str(),
            too_long.as_str(),
            "FEATURES Relay",
            "FEATURES re_lay",
            "FEATURES a  b",
            "FEATURES é",
        ] {
            assert!(PeerMessage::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_action_is_a_line_of_the_senders_own_that_older_peers_read() {
        let text = action_text("alice", "waves hello");
        assert_eq!(
            PeerMessage::Msg(text.clone()).to_string(),
            "MSG * alice waves hello"
        );
        assert_eq!(action_of("alice", &text), Some("waves hello"));
        assert_eq!(action_of("ALICE", &text), Some("waves hello"));
        // Not an action of bob's, and not one at all.
        assert_eq!(action_of("bob", &text), None);
        for text in ["*alice waves", "* alice", "* alice ", "alice waves", ""] {
            assert_eq!(action_of("alice", text), None, "{text:?}");
        }
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
