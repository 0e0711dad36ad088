//! The core's inputs and outputs: what its drivers tell it ([`Input`],
//! [`Typed`]) and what it asks of them ([`Output`]), with the types both
//! sides name (a dial's failure, why the server was lost). The arrows run
//! one way: drivers import these from the core, never the other way.

use super::*;

/// Tells links apart, so that a late event from a closed link is ignored.
/// The driver numbers every handshaken connection; the core decides which
/// become chats.
pub type LinkId = u64;

/// What becomes of the server connection the chat reconnects from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldConn {
    /// Closed now.
    Close,
    /// Kept open until the new connection holds our registration
    /// ([`Output::Registered`]): while we have a chat, the server must never
    /// see our connection close before the registration moved (it would
    /// tell the peer our program is gone).
    KeepUntilRegistered,
}

/// One thing the user typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    Line(String),
    /// Stdin closed (the end of a script): acts as `q`, and then as `q`
    /// again at the list, since nothing more can come.
    Eof,
    /// Ctrl-D on an empty line in a terminal: acts as `q`, once.
    Quit,
    /// Ctrl-C in a terminal: ends the chat, cancels a call, or the program
    /// at the list.
    Interrupt,
    /// A line that came in a bracketed paste: text, never a command.
    Pasted(String),
    /// A piped line longer than a message may be, of this many bytes: not
    /// sent at all rather than in part.
    TooLong(usize),
}

/// What a line typed where the user is goes to ([`Core::line_for`]): the
/// terminal's editor takes pastes and completes names by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFor {
    /// The name prompt: the name to register.
    Name,
    /// The list (or the registration before it): a name to call, or a
    /// command.
    List,
    /// A chat, or a call on its way to one or ending: text for the peer,
    /// or a command.
    Chat,
    /// A call rings: `y` or `n`; or the program is ending.
    Answer,
}

/// Whether a chat's bytes go straight to the peer or through the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Direct,
    Relayed,
}

/// How a link ended, as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEnd {
    /// The peer closed the connection or it broke.
    Closed,
    /// A write to the peer did not complete within the write timeout.
    StoppedReading,
    /// The link could not be started (out of threads or descriptors).
    Failed(String),
}

/// A successful dial: the link the driver started, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialed {
    pub link: LinkId,
    pub addr: SocketAddr,
    pub route: Route,
    /// A fresh secret from the driver, for the chat this dial starts.
    pub key: Token,
    /// The peer's `REWELCOME` count, when the dial brought a chat back.
    pub rejoined: Option<u64>,
    /// Addresses where someone else answered our `KNOCK`.
    pub strangers: Vec<SocketAddr>,
}

/// Everything the core hears about.
#[derive(Debug)]
pub enum Input {
    Typed(Typed),
    /// Lines typed or piped in a row (a piped burst, in one buffer): sent
    /// to the peer in one batch when the chat takes every one of them as
    /// text now, else each taken as [`Typed::Line`].
    TypedLines(Lines),
    /// A line from the server (the rows of a list come as [`Input::Users`]).
    Server(ServerLine),
    /// `EVENT MISSED`, with the local time it came (`HH:MM`), which the
    /// core cannot read.
    MissedCall {
        caller: String,
        at: String,
    },
    /// A whole `OK USERS` reply.
    Users(Vec<UserEntry>),
    /// The connection to the server ended.
    ServerLost(ServerLoss),
    /// A new connection to the server is up (after [`Output::Reconnect`]);
    /// peers should now dial us at `advertise` (our end of this connection,
    /// unless `--advertise` pinned it), which `REGISTER` carries from here.
    ServerBack {
        advertise: SocketAddr,
    },
    /// A peer connected and said `HELLO` with the value `token`, or
    /// `KNOCK` (`token` is `None`): it asks us to show our value for `call`
    /// first. Its connection waits for [`Output::Open`] (after `HELLO`),
    /// [`Output::Prove`] (after `KNOCK`) or [`Output::Refuse`].
    Hello {
        link: LinkId,
        caller: String,
        call: CallId,
        token: Option<Token>,
        route: Route,
    },
    /// A peer connected and said `REHELLO`: it brings back the chat whose
    /// link broke.
    Rehello {
        link: LinkId,
        caller: String,
        key: Token,
        received: u64,
        route: Route,
    },
    /// The dial for `call` is over.
    Dialed {
        call: CallId,
        result: Result<Dialed, DialError>,
    },
    /// Lines from a peer, in order.
    Peer {
        link: LinkId,
        msgs: PeerBatch,
    },
    /// A link is over.
    LinkEnded {
        link: LinkId,
        end: LinkEnd,
    },
    /// The line being typed in a terminal changed to this (never sent:
    /// the core tells the peer only whether it is typing).
    Draft(String),
    /// The file of our offer `id` ([`Output::OpenFile`]) is open, or not.
    FileOpened {
        id: FileId,
        result: Result<FileFacts, String>,
    },
    /// How the data of transfer `id` goes.
    Transfer {
        id: FileId,
        event: TransferEvent,
    },
}

/// What a printed line is, so a terminal can colour it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ordinary output: the list, instructions.
    Info,
    /// Something happened: joined, left, busy, relayed, server lost.
    Notice,
}

/// How hard to try reaching the server again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// One attempt; a failure is reported as the connection lost.
    Once,
    /// With backoff, until it answers.
    UntilBack,
}

/// Everything the core asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send to the server on the current connection.
    Server(Request),
    /// Send to a peer.
    Peer { link: LinkId, msg: PeerMessage },
    /// Send each of `texts` to a peer as a [`PeerMessage::Msg`], in order
    /// (shared with what the chat keeps to send again: not copied).
    PeerTexts { link: LinkId, texts: Arc<Lines> },
    /// Start the held connection of a `HELLO` as a chat link.
    Open { link: LinkId },
    /// Answer a held `HELLO` with an error, then close it.
    Refuse {
        link: LinkId,
        code: ErrorCode,
        message: String,
    },
    /// Close a link once what was sent on it has gone out.
    Close { link: LinkId },
    /// Send what is queued on a link, then end our direction of it; its
    /// reader goes on until the peer ends its own.
    EndSending { link: LinkId },
    /// Dial a peer: each address, then the relay, saying `hello` first.
    /// With values of our own (`keys.knocks()`), a direct way first says
    /// `KNOCK <caller> <call>` and goes on only if the `PROOF` is the value
    /// `keys` expects; the relay half presents `keys.relay()`.
    Dial {
        call: CallId,
        keys: Keys,
        caller: String,
        hello: Vec<PeerMessage>,
        addrs: Vec<SocketAddr>,
        /// Whether the relay is the last way to try.
        relay: bool,
        /// A call's ways race; a chat brought back tries one at a time.
        pace: Pace,
    },
    /// Show our value on a held connection that knocked (`PROOF`), and
    /// wait there for its `HELLO` or `REHELLO`.
    Prove { link: LinkId, value: Token },
    /// Open our half of the server's relay for `call`.
    JoinRelay { call: CallId, token: Token },
    /// Connect to the server again after `after`; what becomes of the
    /// old connection is `old`'s.
    Reconnect {
        after: Duration,
        retry: Retry,
        old: OldConn,
    },
    /// The server took our registration (`WELCOME`): an old connection
    /// kept until now may close.
    Registered,
    /// Print a line.
    Line { kind: Kind, text: String },
    /// Print a peer's lines as `name: text`.
    PeerLines { name: String, texts: Lines },
    /// Ask a question (plain mode; a terminal shows [`Core::status`]).
    Prompt(String),
    /// Ring the terminal bell.
    Bell,
    /// A call rings: set the half-typed line aside, so it is neither the
    /// answer nor sent to the caller.
    SetAside,
    /// A chat ended that the user did not end: the line half typed for it
    /// goes to the history, never to the list.
    Shelve,
    /// Back at the list: the line set aside comes back.
    BringBack,
    /// Open the file at `path` to offer it as `id`, and keep it open for
    /// the transfer; say what it is ([`Input::FileOpened`]).
    OpenFile { id: FileId, path: String },
    /// The peer took offer `id`: move its `size` bytes, `direction`.
    StartTransfer {
        id: FileId,
        direction: Direction,
        size: u64,
        opener: Opener,
    },
    /// The values the server issued us for transfer `id`'s data
    /// connection in call `call` (`OK TRANSFER`, `EVENT TRANSFER`): what
    /// we show there, what we expect, and our relay half's. `relayed`:
    /// the chat is, so the data goes through the server's relay too.
    TransferKeys {
        id: FileId,
        call: CallId,
        keys: Keys,
        relayed: bool,
    },
    /// The peer has its values for transfer `id` (`FILE-READY`): the
    /// chat's caller may open the data connection.
    PeerReady { id: FileId },
    /// Transfer `id` is over for good: stop its data, close its file, and
    /// remove what arrived of it (a `.part`).
    StopTransfer { id: FileId },
}

/// How the program ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The user quit.
    Quit,
    /// The server refused the `--name` name; the text says why.
    NameRefused(String),
    /// The server went away before we were ever registered.
    ServerLost(String),
    /// What answered at the server's address, before we were ever
    /// registered, is not a p2pchat server; it answered this (untrusted).
    NotAServer(String),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Quit => write!(f, "quit"),
            Exit::NameRefused(why) => write!(f, "the server refused the name {why}"),
            Exit::ServerLost(why) => write!(f, "{why}"),
            Exit::NotAServer(answered) => {
                write!(f, "not a p2pchat server (it answered {answered:?})")
            }
        }
    }
}

/// Why the connection to the server was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLoss {
    /// The server closed it.
    Closed,
    /// Nothing came back for three heartbeat intervals.
    NoHeartbeatAnswer,
    /// The server stopped taking our requests.
    StoppedReading,
    /// A line we could not parse (its text is the server's: untrusted).
    Unexpected(String),
    /// The connection's first line was none of ours: what answered is not
    /// a p2pchat server. The text is the start of that line (untrusted).
    NotAServer(String),
    /// The socket failed.
    Io(String),
}

impl fmt::Display for ServerLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerLoss::Closed => write!(f, "the server closed the connection"),
            ServerLoss::NoHeartbeatAnswer => write!(f, "no answer to heartbeats"),
            ServerLoss::StoppedReading => write!(f, "the server stopped reading"),
            ServerLoss::Unexpected(why) => {
                write!(f, "the server sent something unexpected ({why})")
            }
            ServerLoss::Io(why) => write!(f, "{why}"),
            ServerLoss::NotAServer(answered) => {
                write!(f, "what answered is not a p2pchat server: {answered:?}")
            }
        }
    }
}

/// How a dial's ways are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Happy Eyeballs: each next way `p2pclient::ATTEMPT_DELAY` after the one
    /// before; the call's token is single-use, so only one can be taken.
    Race,
    /// The next way only once the one before failed: a chat's key, which
    /// brings it back, is not single-use, and two ways that both reached
    /// the peer would each take the chat from the other.
    OneAtATime,
}

/// One way of reaching the peer that was tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Way {
    Direct(SocketAddr),
    Relay,
}

/// Why one way failed. Texts that came from the peer or the server are
/// theirs, untrusted: they reach the screen only through the one gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WayError {
    /// The TCP connection could not be made.
    Connect(String),
    /// Connected, but the answer did not come in time.
    NoAnswer(String),
    /// The peer refused the `HELLO` with this text.
    Refused(String),
    /// Something answered that does not speak our protocol.
    NotAPeer,
    /// The server does not relay chats (`ERR no-relay`).
    NoRelay,
    /// The server refused to relay, with this text.
    RelayRefused(String),
    /// The server answered the relay request with something else.
    RelayUnexpected,
    /// Someone who is not the peer answered our `KNOCK` at this address:
    /// it was shown nothing, and the other ways go on.
    Stranger,
}

/// Why a call could not be dialed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialError {
    /// Every way was tried, in this order.
    Unreachable(Vec<(Way, WayError)>),
    /// No thread (or link) could be started for it.
    Start(String),
}

impl fmt::Display for WayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WayError::Connect(why) => write!(f, "{why}"),
            WayError::NoAnswer(why) => write!(f, "no answer ({why})"),
            WayError::Refused(why) => write!(f, "refused: {why}"),
            WayError::NotAPeer => write!(f, "not a p2pchat peer"),
            WayError::NoRelay => write!(f, "the server does not relay chats"),
            WayError::RelayRefused(why) => write!(f, "{why}"),
            WayError::RelayUnexpected => write!(f, "the server sent something unexpected"),
            WayError::Stranger => write!(f, "someone else answered"),
        }
    }
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialError::Start(why) => write!(f, "cannot start the chat: {why}"),
            DialError::Unreachable(failures) => {
                for (i, (way, why)) in failures.iter().enumerate() {
                    if i > 0 {
                        write!(f, "; ")?;
                    }
                    match way {
                        Way::Direct(addr) => write!(f, "{addr}: {why}")?,
                        Way::Relay => write!(f, "relay: {why}")?,
                    }
                }
                Ok(())
            }
        }
    }
}
