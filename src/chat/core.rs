//! The chat's decisions, with no I/O: a state machine fed what happened and
//! asked what to do, in the manner of quinn-proto's `Connection`.
//!
//! [`Core::handle`] takes one [`Input`] (a typed line, a server line, a
//! peer's messages, a link's end, a dial's result) and [`Core::handle_timeout`]
//! the passing of time; both take the time as an argument, the core never
//! reads a clock. What to do comes back from [`Core::drain`] as [`Output`]s
//! (a request for the server, a message for a peer, dial this, print that),
//! and [`Core::poll_timeout`] says when to wake it next. The driver in
//! `app.rs` owns the threads and sockets and carries the outputs out; the
//! tests at the bottom drive the core with a scripted fake world instead.
//!
//! Where things live, for a newcomer:
//! - [`Stage`]: naming → registering → registered (with a [`Place`] in the
//!   flow) → done. Each variant holds exactly what is valid in it.
//! - [`Place`]: at the list, calling (CALL sent), dialing (p2pclient at
//!   work), ringing (a caller is expected, with its token), chatting.
//! - [`ServerSide`]: the connection to the registration server, the queue of
//!   requests awaiting their reply in order, heartbeats.
//! - Typed input waits in `typed` until the place can take it.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::commands::{self, Command};
use super::login::ServerLoss;
use super::p2pclient::{DialError, Pace};
pub use crate::lines::Lines;
use crate::protocol::{
    CallId, ConnEnd, ErrorCode, FEATURE_LONG_LINES, FEATURE_MISSED, FEATURE_PRESENCE,
    FEATURE_REJOIN, FEATURE_RING, FEATURE_SESSION, MAX_LONG_TEXT, MAX_TEXT, PeerBatch, PeerItem,
    PeerMessage, PeerRun, Presence, PresenceState, Request, ServerLine, Token, UserEntry, name_key,
    split_text, validate_name,
};

/// Tells links apart, so that a late event from a closed link is ignored.
/// The driver numbers every handshaken connection; the core decides which
/// become chats.
pub type LinkId = u64;

/// The features this chat announces to peers, on a `FEATURES` line after
/// `HELLO` or `WELCOME`.
pub const PEER_FEATURES: &[&str] = &[
    FEATURE_PING_ID,
    FEATURE_BYE_ACK,
    FEATURE_RESUME,
    FEATURE_LONG_LINES,
];

/// A broken link is brought back, and no line is lost or doubled: lines are
/// counted and acknowledged, and the caller dials again.
pub const FEATURE_RESUME: &str = "resume";

/// Unacknowledged lines kept to send again, at most: past half of it,
/// typing waits. Half of it is also the most a flood has in flight before
/// an acknowledgement comes back through both busy chats, a few ms on
/// loopback at ~300 MB/s: 512 KiB (a 1 MiB buffer) held a piped flood
/// back by about a tenth, 2 MiB does not.
pub(super) const RESUME_BUFFER: usize = 4 * 1024 * 1024;

/// How long an acknowledgement may wait for a line of ours to ride on
/// (like TCP's delayed ACK): a conversation's lines carry each other's,
/// and only a one-sided stream costs a line of its own.
const ACK_DELAY: Duration = Duration::from_millis(40);

/// Received this much unacknowledged, the acknowledgement goes at once: the
/// sender's buffer (and a piped script) is never held up by the delay.
const ACK_AFTER_BYTES: usize = RESUME_BUFFER / 16;

/// How often the caller tries to bring a broken link back.
const REJOIN_EVERY: Duration = Duration::from_secs(1);

/// The features this chat announces to the server; `ring` only when calls
/// are answered by the user.
fn client_features(answering: Answering) -> Vec<String> {
    let mut words = vec![FEATURE_PRESENCE, FEATURE_MISSED, FEATURE_SESSION];
    if answering == Answering::Ask {
        words.insert(0, FEATURE_RING);
    }
    words.into_iter().map(str::to_string).collect()
}

/// `BYE` is answered with `BYE` once every line before it was read, and the
/// one who said it first closes only then.
const FEATURE_BYE_ACK: &str = "bye-ack";

/// Numbered `PING n` / `PONG n`: the answer names the ping it answers.
const FEATURE_PING_ID: &str = "ping-id";

/// Typed lines waiting for a place that takes them, at most, before no
/// more are read.
const TYPED_WAITING: usize = 4096;

/// Presence changes in one batch shown one line each; more are summed up
/// in one line.
const PRESENCE_LINES: usize = 5;

/// How many recent calls the server announced to us are remembered, so a
/// `HELLO` for one of them with a wrong or spent token is refused at once.
const ANNOUNCED_MEMORY: usize = 64;

/// Most `HELLO`s held at once that arrived before the server's announcement
/// of their call.
const MAX_EARLY: usize = 8;

/// The timeouts the core keeps; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    /// How long the called side waits for the caller to connect after the
    /// server announced the call.
    pub ring: Duration,
    /// How long a `HELLO` that came before its call's announcement is held.
    pub early_hello: Duration,
    /// How long a chat the peer ended waits for the second sign of that.
    pub drain: Duration,
    /// A quiet link sends `PING` this often…
    pub ping_every: Duration,
    /// …so a link silent for this long has lost its peer.
    pub silence: Duration,
    /// The first pause before reconnecting to a lost server.
    pub reconnect: Duration,
    /// How long leaving a chat waits for the peer to acknowledge `BYE`.
    pub leave: Duration,
    /// How long a chat whose link broke is kept, waiting for it to come
    /// back (`--grace`).
    pub grace: Duration,
    /// How long a link's writer waits on a peer that reads nothing before
    /// the link counts as broken (`--write-timeout`; the driver's timer).
    pub write: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            ring: Duration::from_secs(8),
            early_hello: Duration::from_secs(3),
            drain: Duration::from_secs(2),
            ping_every: Duration::from_secs(5),
            silence: Duration::from_secs(20),
            reconnect: Duration::from_millis(500),
            leave: Duration::from_secs(10),
            grace: Duration::from_secs(60),
            write: Duration::from_secs(10),
        }
    }
}

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

/// What the core needs to know from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server as the user gave it, for messages.
    pub server_name: String,
    /// Where peers should dial us; each new server connection may move it
    /// ([`Input::ServerBack`]).
    pub advertise: SocketAddr,
    /// The name from `--name`: a refusal then ends the program.
    pub name: Option<String>,
    /// Whether incoming calls ring and wait for `y`, or connect at once.
    pub answering: Answering,
    pub timers: Timers,
}

/// How incoming calls are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answering {
    /// They ring, and the user answers `y` or declines `n`.
    Ask,
    /// They connect at once (`--auto-answer`, and today's older peers).
    Auto,
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
    /// A peer connected and said `HELLO`; its connection waits for
    /// [`Output::Open`] or [`Output::Refuse`].
    Hello {
        link: LinkId,
        caller: String,
        call: CallId,
        token: Token,
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
    Dial {
        call: CallId,
        token: Token,
        hello: Vec<PeerMessage>,
        addrs: Vec<SocketAddr>,
        /// Whether the relay is the last way to try.
        relay: bool,
        /// A call's ways race; a chat brought back tries one at a time.
        pace: Pace,
    },
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
}

/// Where the user is.
#[derive(Debug)]
enum Stage {
    /// Waiting for the user to type a name.
    Naming,
    /// `REGISTER` sent, waiting for the answer; on the first connection,
    /// or on a fresh one after the first gave out.
    Registering {
        name: String,
        attempt: Attempt,
    },
    /// Registered as `me`.
    Registered {
        me: String,
        place: Place,
    },
    Done(Exit),
}

/// Which connection a registration is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// The connection the chat made at start (which the server may have
    /// given up on while the person was typing the name).
    First,
    /// A fresh connection made for it: if this one fails too, the server
    /// is gone or will not have us.
    Again,
}

/// Where a registered user is in the flow.
#[derive(Debug)]
enum Place {
    /// At the list: a typed name calls that peer.
    AtList,
    /// `CALL` sent, waiting for the server. A call to ourselves may be
    /// announced to us before the server answers it.
    Calling {
        peer: String,
        echo: Echo,
    },
    /// The server rings the peer (`OK RINGING`); its answer is awaited.
    RingingOut {
        peer: String,
        call: CallId,
        echo: Echo,
    },
    /// The server set the call up; p2pclient is dialing.
    Dialing {
        peer: String,
        call: CallId,
        echo: Echo,
    },
    /// Someone is calling us (`EVENT RING`): `y` answers, `n` declines.
    Ringing {
        caller: String,
        call: CallId,
    },
    /// `ANSWER` sent; the server's reply brings the caller's token.
    Answering {
        caller: String,
        call: CallId,
    },
    /// We answered (or the call came without a ring): waiting for the
    /// caller to connect with `token`.
    Connecting {
        caller: String,
        call: CallId,
        token: Token,
        until: Instant,
        taken: Taken,
    },
    Chatting(Box<Chat>),
    /// The chat's link broke without a `BYE`: the chat is kept for the
    /// grace period while the caller dials again (the callee waits).
    Rejoining {
        chat: Box<Chat>,
        until: Instant,
        next_try: Instant,
        dialing: bool,
        /// Lines typed since the link broke, pending.
        pending: u64,
    },
    /// We said `BYE` to a peer that acknowledges it: waiting (bounded) for
    /// its `BYE` or the link's end, so that it has read every line before
    /// the connection closes. Lines it sent meanwhile are still shown.
    Leaving {
        peer: String,
        call: CallId,
        link: LinkId,
        until: Instant,
    },
}

/// How an incoming call came to be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    /// The user answered its ring: what they type next is for the chat.
    Answered,
    /// At once, unasked (`--auto-answer`, or a caller that does not ring):
    /// what the user types before the chat starts was meant for the list.
    AtOnce,
}

/// The incoming end of a call to ourselves.
#[derive(Debug)]
enum Echo {
    /// Not a call to ourselves, or not announced yet.
    None,
    /// The server announced it: our own `HELLO` will present `token`.
    Expected { call: CallId, token: Token },
    /// Connected: our lines come back on this link.
    Attached(LinkState),
}

/// A chat in progress.
#[derive(Debug)]
struct Chat {
    peer: String,
    call: CallId,
    link: LinkState,
    route: Route,
    /// When chatting with ourselves: the incoming end, whose lines we show.
    echo: Option<LinkState>,
    /// Set once the peer's side is over.
    ending: Option<Ending>,
    /// Who dialed: only the caller dials again when the link breaks.
    role: Role,
    /// What a broken link needs to be brought back; `None` until both
    /// sides have said they can.
    resume: Resume,
}

/// Lines kept in order, oldest first, in a few buffers: a piped batch is
/// kept whole (the buffer it is sent from, shared), a typed line joins the
/// newest buffer while that is small and ours alone, and a buffer is
/// dropped once all its lines are: no allocation per line, and no line
/// copied or moved once kept.
#[derive(Debug, Default)]
struct KeptLines {
    chunks: VecDeque<Arc<Lines>>,
    /// The lines of the oldest chunk before this one are dropped.
    first: usize,
    len: usize,
}

/// A chunk takes more typed lines up to this size, so that a chunk whose
/// first lines were dropped holds little besides what is kept.
const KEPT_CHUNK: usize = 64 * 1024;

impl KeptLines {
    fn push_back(&mut self, line: &str) {
        let newest = self
            .chunks
            .back_mut()
            .filter(|chunk| chunk.text_len() < KEPT_CHUNK)
            .and_then(Arc::get_mut);
        match newest {
            Some(chunk) => chunk.push(line),
            None => self
                .chunks
                .push_back(Arc::new([line].into_iter().collect())),
        }
        self.len += 1;
    }

    fn push_all(&mut self, lines: &Arc<Lines>) {
        if !lines.is_empty() {
            self.chunks.push_back(Arc::clone(lines));
            self.len += lines.len();
        }
    }

    /// Drops the oldest `n` lines (or all there are), a chunk at a time,
    /// giving their bytes.
    fn drop_front(&mut self, mut n: usize) -> usize {
        let mut bytes = 0;
        while n > 0
            && let Some(chunk) = self.chunks.front()
        {
            let left = chunk.len() - self.first;
            let dropped = n.min(left);
            bytes += chunk.bytes_of(self.first..self.first + dropped);
            (n, self.len) = (n - dropped, self.len - dropped);
            if dropped == left {
                self.chunks.pop_front();
                self.first = 0;
            } else {
                self.first += dropped;
            }
        }
        bytes
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        let first = self.first;
        self.chunks
            .iter()
            .enumerate()
            .flat_map(move |(i, chunk)| chunk.iter().skip(if i == 0 { first } else { 0 }))
    }
}

/// Who dialed the chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Caller,
    Callee,
}

/// The chat's delivery record, per chat and not per link: every line has
/// a number (its place in the count), the peer acknowledges how many it
/// has, and what it has not acknowledged is kept to send again.
#[derive(Debug, Default)]
struct Resume {
    /// The chat's secret, given by the caller in `RESUMABLE`.
    key: Option<Token>,
    /// The peer announced `resume`, and whether it announced its features
    /// at all yet: until it has, our lines are kept in case it does.
    peer_resumes: bool,
    peer_said: bool,
    /// So many lines went before the two agreed that they were no longer
    /// kept: this chat is not brought back if its link breaks (and the
    /// peer is told so, `withdrawn`, by features without `resume`).
    given_up: bool,
    withdrawn: bool,
    /// Lines sent so far, and those of them not yet acknowledged (the last
    /// `unacked.len()` of them).
    sent: u64,
    unacked: KeptLines,
    unacked_bytes: usize,
    /// Lines received so far.
    received: u64,
    /// The count last acknowledged to the peer, the bytes received since,
    /// and when the acknowledgement of those is due at the latest.
    told: u64,
    untold_bytes: usize,
    ack_due: Option<Instant>,
    /// Since when lines have waited for an acknowledgement that did not
    /// come (reset by every one that does): a peer that reads but never
    /// acknowledges is taken for a broken link after the silence limit.
    waiting_since: Option<Instant>,
}

impl Resume {
    /// After a line was kept: the wait for its acknowledgement starts, if
    /// none was running.
    fn note_waiting(&mut self, now: Instant) {
        if self.waiting_since.is_none() && !self.unacked.is_empty() {
            self.waiting_since = Some(now);
        }
    }

    /// After an `ACK`: the wait starts again for what is left, if any.
    fn note_acknowledged(&mut self, now: Instant, before: u64) {
        if self.acked() > before {
            self.waiting_since = (!self.unacked.is_empty()).then_some(now);
        }
    }

    fn active(&self) -> bool {
        self.key.is_some() && self.peer_resumes && !self.given_up
    }

    /// Whether lines are kept: once both resume, and from the first line
    /// on while that is not known yet (the first round trip), so that the
    /// lines sent then can be sent again too.
    fn keeping(&self) -> bool {
        !self.given_up && (!self.peer_said || self.peer_resumes)
    }

    /// The peer's features came: without `resume`, nothing is kept.
    fn peer_announced(&mut self, resumes: bool) {
        self.peer_said = true;
        self.peer_resumes = resumes;
        if !resumes {
            self.forget_kept();
        }
    }

    fn forget_kept(&mut self) {
        self.unacked = KeptLines::default();
        self.unacked_bytes = 0;
        self.waiting_since = None;
    }

    /// Whether `bytes` more fit in what is kept for sending again.
    fn has_room(&self, bytes: usize) -> bool {
        !self.active() || self.unacked_bytes + bytes <= RESUME_BUFFER
    }

    /// Counts a line about to be sent, and keeps it until acknowledged;
    /// `false` when the buffer is full and the line must not go.
    fn keep(&mut self, line: &str) -> bool {
        let admitted = self.admit(1, line.len());
        if admitted == Some(true) {
            self.unacked.push_back(line);
        }
        admitted.is_some()
    }

    /// [`Resume::keep`] for a batch, kept whole, shared with what sends it.
    fn keep_all(&mut self, lines: &Arc<Lines>) -> bool {
        let admitted = self.admit(lines.len(), lines.text_len());
        if admitted == Some(true) {
            self.unacked.push_all(lines);
        }
        admitted.is_some()
    }

    /// Counts `lines` lines of `bytes` about to be sent: whether to keep
    /// them until acknowledged (`Some(true)`), to let them go unkept
    /// (`Some(false)`), or not to send them, the buffer being full (`None`).
    fn admit(&mut self, lines: usize, bytes: usize) -> Option<bool> {
        if !self.keeping() {
            self.sent += lines as u64;
            return Some(false);
        }
        if !self.active() && self.unacked_bytes + bytes >= RESUME_BUFFER / 2 {
            // Half the buffer before the peer even said whether it can
            // resume (a flood into a peer that never says): let the lines
            // go, unkept, rather than hold them up, and end this chat as
            // chats without the feature end.
            self.given_up = true;
            self.forget_kept();
            self.sent += lines as u64;
            return Some(false);
        }
        if self.unacked_bytes + bytes > RESUME_BUFFER {
            return None;
        }
        self.sent += lines as u64;
        self.unacked_bytes += bytes;
        Some(true)
    }

    /// The number of the first line not yet acknowledged.
    fn acked(&self) -> u64 {
        self.sent - self.unacked.len() as u64
    }

    fn acknowledge(&mut self, upto: u64) {
        let newly = upto.min(self.sent).saturating_sub(self.acked());
        self.unacked_bytes -= self.unacked.drop_front(newly as usize);
    }

    /// The lines the peer, which has `received`, has not got.
    fn to_resend(&self, received: u64) -> impl Iterator<Item = &str> {
        let skip = received.saturating_sub(self.acked()) as usize;
        self.unacked.iter().skip(skip)
    }

    /// "N of your lines were not confirmed by bob …: “…”, …", or `None`:
    /// a line the peer read just before the link broke may be among them,
    /// since its acknowledgement was lost with the link.
    fn undelivered(&self, peer: &str) -> Option<String> {
        if self.unacked.is_empty() {
            return None;
        }
        let words: Vec<String> = self
            .unacked
            .iter()
            .take(3)
            .map(|line| {
                let first: String = line.split(' ').take(4).collect::<Vec<_>>().join(" ");
                let first: String = first.chars().take(40).collect();
                // An ellipsis only where words were left out.
                let more = if first.len() < line.len() {
                    "\u{2026}"
                } else {
                    ""
                };
                format!("\u{201c}{first}{more}\u{201d}")
            })
            .collect();
        let n = self.unacked.len();
        let were = if n == 1 { "was" } else { "were" };
        Some(format!(
            "{n} of your lines {were} not confirmed by {peer} (they may not have arrived): {}.",
            words.join(", ")
        ))
    }
}

/// What the core knows of one link's liveness.
#[derive(Debug)]
struct LinkState {
    id: LinkId,
    last_sent: Instant,
    last_heard: Instant,
    /// The peer announced numbered pings.
    numbered: bool,
    /// The peer answers `BYE` with `BYE`.
    acks_bye: bool,
    /// The peer takes messages up to [`MAX_LONG_TEXT`] whole.
    long_lines: bool,
    /// Our `FEATURES` went out on this link (with `HELLO`, or in answer to
    /// the caller's).
    announced: bool,
    /// PINGs sent, and unnumbered PONGs received: those come back in order,
    /// so the n-th PONG answers the n-th PING.
    pings: u64,
    pongs: u64,
}

impl LinkState {
    fn new(id: LinkId, now: Instant) -> LinkState {
        LinkState {
            id,
            last_sent: now,
            last_heard: now,
            numbered: false,
            acks_bye: false,
            long_lines: false,
            announced: false,
            pings: 0,
            pongs: 0,
        }
    }

    /// A `PING` to send, numbered if the peer can take that; its number is
    /// what the answering PONG will carry (or count to).
    fn ping(&mut self, now: Instant) -> (PeerMessage, u64) {
        self.pings += 1;
        self.last_sent = now;
        let msg = PeerMessage::Ping(self.numbered.then_some(self.pings));
        (msg, self.pings)
    }

    /// The number of the PING a PONG answers.
    fn ponged(&mut self, number: Option<u64>) -> u64 {
        match number {
            Some(n) => n,
            None => {
                self.pongs += 1;
                self.pongs
            }
        }
    }
}

/// A chat the peer ended, waiting for both signs of that: the link's end
/// (BYE or close), after which no line of the peer's is still in flight, and
/// the server's `EVENT HANGUP`, after which the list no longer shows the
/// call. Whichever comes first starts a short wait for the other.
#[derive(Debug)]
struct Ending {
    link_done: bool,
    server_done: bool,
    /// The server said the peer's program is gone (`EVENT GONE`): the
    /// link's end ends the chat, with no attempt to bring it back.
    gone: bool,
    until: Instant,
    /// The PING sent to ask whether the peer is still there after the server
    /// said it hung up; only its PONG answers.
    probe: Option<u64>,
}

/// Whether an ending chat still waits for its second sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    ForBoth,
    Over,
}

/// How a chat the peer ended went, for the notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerGone {
    Bye,
    ConnectionLost,
    StoppedReading,
    Silent,
}

/// A request sent to the server whose reply has not come yet. The server
/// answers in order, so the oldest is the one the next reply answers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Register,
    List,
    /// `/who`: a list to show wherever the user is.
    Who,
    /// `cancelled`: the user gave up before the answer; a call set up
    /// anyway is hung up.
    Call {
        peer: String,
        cancelled: bool,
    },
    Hangup,
    /// `LOCATE`, to dial a broken chat's peer again.
    Locate,
    /// `BUSY`: a ring that found us in a chat.
    Busy,
    /// `LINKED`: our caller's link is up.
    Linked,
    /// `REJOIN`, to dial it through the relay too, after its direct
    /// addresses (`LOCATE`'s answer).
    Rejoin {
        addrs: Vec<SocketAddr>,
    },
    /// `LOOKUP` of a broken chat's peer the server said hung up: gone for
    /// now, or done with us?
    Lookup,
    Answer,
    Decline,
    Watch,
    Resume,
    Ping,
    Features,
    Quit,
}

/// Where the connection to the registration server stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registration {
    /// Connected (and registered, once a name is taken).
    Online,
    /// The server closed the connection while the user was still choosing
    /// a name (it drops connections that do not register in time): a
    /// person may take as long as they like, so the chat connects again
    /// once the name is given.
    Dormant,
    /// The connection is dead and the driver is reconnecting. `refusals`
    /// counts re-registrations the server refused in a row.
    Reconnecting { refusals: u32 },
    /// Connected again; `REGISTER` sent, waiting for the answer.
    Reregistering { refusals: u32 },
}

/// The core's side of the server connection.
#[derive(Debug)]
struct ServerSide {
    registration: Registration,
    pending: VecDeque<Pending>,
    /// Sent by the server in `WELCOME`; none before registering.
    heartbeat: Option<Duration>,
    /// What the server said it can do, in answer to `FEATURES`.
    features: Vec<String>,
    /// `WATCH on` is in force.
    watching: bool,
    /// The secret that owns our registration (from a server with
    /// `session`), presented when registering again on a new connection.
    secret: Option<Token>,
    last_sent: Instant,
    last_heard: Instant,
}

/// The chat's state machine. See the module docs.
#[derive(Debug)]
pub struct Core {
    settings: Settings,
    stage: Stage,
    server: ServerSide,
    /// Typed input the current place cannot take yet.
    typed: VecDeque<Typed>,
    /// Calls the server announced to us lately (newest last).
    announced: VecDeque<CallId>,
    /// `HELLO`s that arrived before the server told us of their call.
    early: Vec<EarlyHello>,
    /// Names (as keys) whose calls are declined unseen: `/ignore`.
    ignored: Vec<String>,
    /// After a chat ended that the user did not end: lines typed until the
    /// list is shown (or until this time, with no server) were meant for
    /// the chat, and are dropped rather than run at the list.
    typed_for_chat: Option<TypedForChat>,
    /// Calls that came while we were busy: who, and when (HH:MM).
    missed: Vec<(String, String)>,
    /// Who is online (by name key) and busy, as last shown: the list, then
    /// presence changes.
    roster: std::collections::HashMap<String, bool>,
    outputs: Vec<Output>,
}

#[derive(Debug)]
struct EarlyHello {
    at: Instant,
    link: LinkId,
    caller: String,
    call: CallId,
    token: Token,
    route: Route,
}

impl Core {
    /// Greets the user and registers the `--name` name, or asks for one.
    pub fn new(settings: Settings, now: Instant) -> Core {
        let mut core = Core {
            stage: Stage::Naming,
            server: ServerSide {
                registration: Registration::Online,
                pending: VecDeque::new(),
                heartbeat: None,
                features: Vec::new(),
                watching: false,
                secret: None,
                last_sent: now,
                last_heard: now,
            },
            typed: VecDeque::new(),
            announced: VecDeque::new(),
            early: Vec::new(),
            ignored: Vec::new(),
            missed: Vec::new(),
            typed_for_chat: None,
            roster: std::collections::HashMap::new(),
            outputs: Vec::new(),
            settings,
        };
        let text = format!(
            "Connected to the registration server at {}.",
            core.settings.server_name
        );
        core.line(Kind::Info, text);
        // What the server can do; an older one answers `ERR
        // unknown-command`, and then has none of the newer features.
        let ours = client_features(core.settings.answering);
        core.send(now, Request::Features(ours), Pending::Features);
        match core.settings.name.clone() {
            Some(name) => core.register(name, now),
            None => core.ask_name(),
        }
        core
    }

    /// What to do, in order, since the last call.
    #[cfg(test)]
    pub fn drain(&mut self) -> std::vec::Drain<'_, Output> {
        self.outputs.drain(..)
    }

    /// Like [`Core::drain`], into `into` (empty), swapping buffers so that
    /// neither side allocates per round.
    pub fn take_outputs(&mut self, into: &mut Vec<Output>) {
        std::mem::swap(&mut self.outputs, into);
    }

    /// How the program ends, once it does.
    pub fn exit(&self) -> Option<&Exit> {
        match &self.stage {
            Stage::Done(exit) => Some(exit),
            _ => None,
        }
    }

    /// Handles one input at time `now`.
    pub fn handle(&mut self, now: Instant, input: Input) {
        if matches!(self.stage, Stage::Done(_)) {
            return;
        }
        match input {
            Input::Typed(Typed::Interrupt) => self.interrupt(now),
            Input::Typed(typed) => self.typed.push_back(typed),
            Input::TypedLines(lines) => self.typed_lines(now, lines),
            Input::Server(line) => {
                self.server.last_heard = now;
                self.on_server(now, line);
            }
            Input::Users(users) => {
                self.server.last_heard = now;
                self.on_reply(now, Reply::Users(users));
            }
            Input::MissedCall { caller, at } => {
                self.server.last_heard = now;
                self.on_missed(caller, at);
            }
            Input::ServerLost(why) => self.on_server_lost(now, why.to_string()),
            Input::ServerBack { advertise } => self.on_server_back(now, advertise),
            Input::Hello {
                link,
                caller,
                call,
                token,
                route,
            } => self.on_hello(
                now,
                EarlyHello {
                    at: now,
                    link,
                    caller,
                    call,
                    token,
                    route,
                },
            ),
            Input::Dialed { call, result } => self.on_dialed(now, call, result),
            Input::Rehello {
                link,
                caller,
                key,
                received,
                route,
            } => self.on_rehello(now, link, &caller, key, received, route),
            Input::Peer { link, msgs } => self.on_peer(now, link, msgs),
            Input::LinkEnded { link, end } => self.on_link_ended(now, link, end),
        }
        self.take_typed(now);
        self.sync_watch(now);
    }

    /// Whether more typed lines may be taken now: not while half of the
    /// resend buffer waits for the peer's acknowledgement, so a script that
    /// pipes faster than the peer confirms waits instead of being refused.
    pub fn accepts_typing(&self) -> bool {
        // Lines the place cannot take yet wait here, not in memory unbounded.
        if self.typed.len() >= TYPED_WAITING {
            return false;
        }
        match self.place() {
            Some(Place::Chatting(chat)) => chat.resume.unacked_bytes < RESUME_BUFFER / 2,
            Some(Place::Rejoining { chat, .. }) => chat.resume.unacked_bytes < RESUME_BUFFER / 2,
            _ => true,
        }
    }

    /// When [`Core::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = &self.settings.timers;
        let mut next: Option<Instant> = None;
        let mut at = |when: Instant| next = Some(next.map_or(when, |n| n.min(when)));
        if let (Some(hb), true) = (self.server.heartbeat, self.connected()) {
            at(self.server.last_sent + hb);
            at(self.server.last_heard + hb * 3);
        }
        for early in &self.early {
            at(early.at + t.early_hello);
        }
        match self.place() {
            Some(Place::Connecting { until, .. } | Place::Leaving { until, .. }) => at(*until),
            Some(Place::Rejoining {
                chat,
                until,
                next_try,
                dialing,
                ..
            }) => {
                at(*until);
                if chat.role == Role::Caller && !dialing {
                    at(*next_try);
                }
            }
            Some(Place::Chatting(chat)) => {
                at(chat.link.last_sent + t.ping_every);
                if chat.ending.is_none() {
                    at(chat.link.last_heard + t.silence);
                }
                if let Some(since) = chat.resume.waiting_since {
                    at(since + t.silence);
                }
                if let Some(due) = chat.resume.ack_due {
                    at(due);
                }
                if let Some(echo) = &chat.echo {
                    at(echo.last_sent + t.ping_every);
                }
                if let Some(ending) = &chat.ending {
                    at(ending.until);
                }
            }
            _ => {}
        }
        next
    }

    /// Acts on every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.stage, Stage::Done(_)) {
            return;
        }
        let t = self.settings.timers;
        if let (Some(hb), true) = (self.server.heartbeat, self.connected()) {
            if now >= self.server.last_heard + hb * 3 {
                self.on_server_lost(now, ServerLoss::NoHeartbeatAnswer.to_string());
            } else if now >= self.server.last_sent + hb {
                self.send(now, Request::Ping, Pending::Ping);
            }
        }
        let (stale, fresh) = std::mem::take(&mut self.early)
            .into_iter()
            .partition(|e| now >= e.at + t.early_hello);
        self.early = fresh;
        for hello in stale {
            self.refuse(hello.link, "no such call expected");
        }
        let mut pings = Vec::new();
        let mut gone = None;
        let mut ending_over = false;
        let mut unanswered = None;
        let mut leave_over = false;
        match self.place_mut() {
            Some(Place::Leaving { until, .. }) if now >= *until => leave_over = true,
            Some(Place::Connecting {
                caller,
                call,
                until,
                ..
            }) if now >= *until => unanswered = Some((caller.clone(), *call)),
            Some(Place::Chatting(chat)) => {
                let unacknowledged = chat.resume.active()
                    && chat
                        .resume
                        .waiting_since
                        .is_some_and(|since| now >= since + t.silence);
                if chat.ending.is_none() && now >= chat.link.last_heard + t.silence
                    || unacknowledged
                {
                    gone = Some(PeerGone::Silent);
                } else if now >= chat.link.last_sent + t.ping_every {
                    let (msg, _) = chat.link.ping(now);
                    pings.push((chat.link.id, msg));
                }
                if let Some(echo) = &mut chat.echo
                    && now >= echo.last_sent + t.ping_every
                {
                    let (msg, _) = echo.ping(now);
                    pings.push((echo.id, msg));
                }
                ending_over = chat.ending.as_ref().is_some_and(|e| now >= e.until);
            }
            _ => {}
        }
        if matches!(self.place(), Some(Place::Chatting(chat))
            if chat.resume.ack_due.is_some_and(|due| now >= due))
        {
            self.acknowledge_now();
        }
        for (link, msg) in pings {
            self.out(Output::Peer { link, msg });
        }
        let resumable = matches!(self.place(), Some(Place::Chatting(chat))
            if chat.resume.active() && !chat.ending.as_ref().is_some_and(|e| e.gone));
        if let Some(how) = gone {
            if resumable {
                self.start_rejoining(now);
            } else {
                self.peer_finished(now, how);
            }
        } else if ending_over {
            let no_bye = matches!(
                self.place(),
                Some(Place::Chatting(chat))
                    if chat.resume.active()
                        && !chat.ending.as_ref().is_some_and(|e| e.link_done || e.gone)
            );
            if no_bye {
                // Gone from the server and silent on the link: it may come
                // back, for as long as the grace lasts.
                self.start_rejoining(now);
            } else {
                self.finish_chat(now, Waiting::Over);
            }
        }
        if leave_over {
            self.left(now);
        }
        self.rejoining_timeout(now);
        if let Some((caller, call)) = unanswered {
            self.line(
                Kind::Notice,
                format!("{caller}'s call did not come through."),
            );
            self.send(now, Request::Hangup { call }, Pending::Hangup);
            self.back_to_list_after_failure(now);
        }
        self.take_typed(now);
    }

    /// The terminal prompt for the current state: where the user is.
    pub fn status(&self) -> String {
        match &self.stage {
            Stage::Naming => "your name: ".into(),
            Stage::Registering { name, .. } => format!("registering {name}… "),
            Stage::Done(_) => String::new(),
            Stage::Registered { place, .. } => match place {
                Place::AtList if self.holds_answer() => {
                    "waiting for a call to answer (Ctrl-C cancels): ".into()
                }
                Place::AtList if self.online() => "connect to: ".into(),
                Place::AtList => "server unreachable, reconnecting (q quits): ".into(),
                Place::Calling { peer, .. } | Place::Dialing { peer, .. } => {
                    format!("calling {peer}… ")
                }
                Place::RingingOut { peer, .. } => format!("ringing {peer}… "),
                Place::Ringing { caller, .. } => format!("{caller} is calling: y/n? "),
                Place::Answering { caller, .. } | Place::Connecting { caller, .. } => {
                    format!("{caller} is calling… ")
                }
                Place::Chatting(chat) if chat.ending.is_some() => format!("{} left… ", chat.peer),
                Place::Chatting(chat) if chat.route == Route::Relayed => {
                    format!("to {} (relayed)> ", chat.peer)
                }
                Place::Chatting(chat) => format!("to {}> ", chat.peer),
                Place::Leaving { peer, .. } => format!("leaving {peer}… "),
                Place::Rejoining { chat, .. } => format!("reconnecting to {}… > ", chat.peer),
            },
        }
    }

    // ---- small helpers -------------------------------------------------

    fn out(&mut self, output: Output) {
        self.outputs.push(output);
    }

    fn line(&mut self, kind: Kind, text: impl Into<String>) {
        self.out(Output::Line {
            kind,
            text: text.into(),
        });
    }

    fn notice(&mut self, text: impl Into<String>) {
        self.line(Kind::Notice, text);
    }

    fn me(&self) -> Option<&str> {
        match &self.stage {
            Stage::Registered { me, .. } => Some(me),
            _ => None,
        }
    }

    fn is_me(&self, name: &str) -> bool {
        self.me().is_some_and(|me| name_key(me) == name_key(name))
    }

    fn place(&self) -> Option<&Place> {
        match &self.stage {
            Stage::Registered { place, .. } => Some(place),
            _ => None,
        }
    }

    fn place_mut(&mut self) -> Option<&mut Place> {
        match &mut self.stage {
            Stage::Registered { place, .. } => Some(place),
            _ => None,
        }
    }

    /// Moves to `new`, returning the place left.
    fn set_place(&mut self, new: Place) -> Option<Place> {
        if !matches!(new, Place::AtList) {
            // Lines from here on are for the new place, whatever it is.
            self.typed_for_chat = None;
        }
        self.place_mut().map(|place| std::mem::replace(place, new))
    }

    fn chat_mut(&mut self) -> Option<&mut Chat> {
        match self.place_mut() {
            Some(Place::Chatting(chat)) => Some(chat),
            _ => None,
        }
    }

    /// Whether a server connection is up (registered or not).
    fn connected(&self) -> bool {
        !matches!(self.server.registration, Registration::Reconnecting { .. })
    }

    /// Whether we are registered on a live connection.
    fn online(&self) -> bool {
        self.server.registration == Registration::Online
    }

    /// Sends a request and remembers what its reply will answer.
    fn send(&mut self, now: Instant, request: Request, pending: Pending) {
        if !self.connected() {
            return;
        }
        self.server.pending.push_back(pending);
        self.server.last_sent = now;
        self.out(Output::Server(request));
    }

    fn send_peer(&mut self, link: LinkId, msg: PeerMessage) {
        self.out(Output::Peer { link, msg });
    }

    /// Answers a held `HELLO` with `bad-token` and closes it.
    fn refuse(&mut self, link: LinkId, message: &str) {
        self.out(Output::Refuse {
            link,
            code: ErrorCode::BadToken,
            message: message.to_string(),
        });
    }

    fn features() -> PeerMessage {
        Core::features_but(None)
    }

    /// Our features, without `left_out`.
    fn features_but(left_out: Option<&str>) -> PeerMessage {
        PeerMessage::Features(
            PEER_FEATURES
                .iter()
                .filter(|&&f| Some(f) != left_out)
                .map(|f| f.to_string())
                .collect(),
        )
    }

    // ---- typed input ---------------------------------------------------

    /// Feeds queued input to the place, as long as it can take it.
    fn take_typed(&mut self, now: Instant) {
        loop {
            if self.command_while_waiting(now) {
                continue;
            }
            let ready = match &self.stage {
                Stage::Naming => true,
                Stage::Registered { place, .. } => match place {
                    // A typed-ahead line waits for the list it answers (and
                    // a cancelled call's answer), so the list is seen.
                    Place::AtList => {
                        !self.holds_answer()
                            && !self.server.pending.iter().any(|p| {
                                matches!(
                                    p,
                                    Pending::List
                                        | Pending::Call {
                                            cancelled: true,
                                            ..
                                        }
                                )
                            })
                    }
                    Place::Ringing { .. } | Place::Rejoining { .. } => true,
                    Place::Chatting(chat) => chat.ending.is_none(),
                    _ => false,
                },
                Stage::Registering { .. } | Stage::Done(_) => false,
            };
            if !ready {
                return;
            }
            let Some(typed) = self.typed.pop_front() else {
                return;
            };
            let chatting = matches!(self.place(), Some(Place::Chatting(_)));
            let guarded = match self.typed_for_chat {
                Some(TypedForChat::UntilList) => true,
                Some(TypedForChat::Until(until)) => now < until,
                None => false,
            };
            if guarded
                && matches!(self.place(), Some(Place::AtList))
                && matches!(typed, Typed::Line(_) | Typed::Pasted(_))
            {
                self.typed.push_front(typed);
                self.drop_typed_for_the_chat();
                continue;
            }
            if let Some(Place::Ringing { caller, call }) = self.place() {
                let (caller, call) = (caller.clone(), *call);
                self.answer_typed(now, &caller, call, typed);
                continue;
            }
            if matches!(self.place(), Some(Place::Rejoining { .. })) {
                self.rejoining_typed(now, typed);
                continue;
            }
            match typed {
                Typed::Interrupt => self.interrupt(now),
                Typed::Eof if chatting => {
                    // EOF ends the chat like q, and stays queued so that it
                    // then ends the program too.
                    self.typed.push_front(Typed::Eof);
                    self.quit_chat(now);
                }
                Typed::Eof | Typed::Quit if chatting => self.quit_chat(now),
                Typed::Eof | Typed::Quit => self.finish(now, Exit::Quit),
                Typed::Line(line) if chatting => self.chat_line(now, line),
                Typed::Line(line) => match self.stage {
                    Stage::Naming => self.named(now, &line),
                    _ => self.at_list(now, &line),
                },
                // Pasted text is text: sent as it is, never a command.
                Typed::Pasted(text) if chatting => self.send_text(now, &text),
                Typed::TooLong(bytes) => self.too_long(bytes),
                Typed::Pasted(_) => self.notice("Pasted text is not taken here: type the name."),
            }
        }
    }

    /// Where a call is being set up (ours ringing, dialing, being
    /// answered), typed lines wait for the chat; but `q` (and `/quit`,
    /// Ctrl-D) cancels the call at once, and `/help` and `/who` answer at
    /// once. Returns whether it took the first typed input.
    fn command_while_waiting(&mut self, now: Instant) -> bool {
        let waiting = matches!(
            self.place(),
            Some(
                Place::Calling { .. }
                    | Place::RingingOut { .. }
                    | Place::Dialing { .. }
                    | Place::Answering { .. }
                    | Place::Connecting { .. }
            )
        );
        if !waiting {
            return false;
        }
        let (quit, help) = match self.typed.front() {
            Some(Typed::Quit) => (true, false),
            Some(Typed::Eof) => {
                // Cancels the call; end of input then ends the program.
                self.interrupt(now);
                self.typed.push_back(Typed::Eof);
                return true;
            }
            Some(Typed::Line(line)) => match commands::parse(line) {
                Command::Quit => (true, false),
                Command::Help => (false, true),
                Command::Who => (false, false),
                _ => return self.typed_as_a_call_came(),
            },
            Some(Typed::Pasted(_)) => return self.typed_as_a_call_came(),
            _ => return false,
        };
        self.typed.pop_front();
        if quit {
            self.interrupt(now);
        } else if help {
            self.help();
        } else {
            self.who(now);
        }
        true
    }

    /// A line typed while a call we did not answer is being set up was
    /// meant for the list, never for the caller: it is not sent, and the
    /// user is told. Returns whether it took the line.
    fn typed_as_a_call_came(&mut self) -> bool {
        let Some(Place::Connecting {
            caller,
            taken: Taken::AtOnce,
            ..
        }) = self.place()
        else {
            return false;
        };
        let text = format!("(not sent to {caller}: typed as the call came in)");
        self.typed.pop_front();
        self.notice(text);
        true
    }

    /// `/who`: who is online, shown where the user is.
    fn who(&mut self, now: Instant) {
        if self.online() {
            self.send(now, Request::List, Pending::Who);
        } else {
            self.notice("The registration server is unreachable: no list for now.");
        }
    }

    fn finish(&mut self, now: Instant, exit: Exit) {
        if self.connected() {
            self.send(now, Request::Quit, Pending::Quit);
        }
        self.stage = Stage::Done(exit);
    }

    /// Ctrl-C: ends the chat, or cancels the call being set up, or, at the
    /// list, ends the program.
    fn interrupt(&mut self, now: Instant) {
        self.typed.clear();
        let place = match &self.stage {
            Stage::Registered { place, .. } => place,
            _ => return self.finish(now, Exit::Quit),
        };
        match place {
            Place::Chatting(chat) if chat.ending.is_none() => self.quit_chat(now),
            Place::Chatting(_) => self.finish_chat(now, Waiting::Over),
            Place::Calling { peer, .. } => {
                let text = format!("Call to {peer} cancelled.");
                self.notice(text);
                // The server's answer is still to come: the next call waits
                // for it, and a call it set up is hung up.
                for pending in &mut self.server.pending {
                    if let Pending::Call { cancelled, .. } = pending {
                        *cancelled = true;
                    }
                }
                self.show_list(now);
            }
            Place::RingingOut { peer, call, .. } => {
                let text = format!("Call to {peer} cancelled.");
                let call = *call;
                self.notice(text);
                self.send(now, Request::Hangup { call }, Pending::Hangup);
                self.show_list(now);
            }
            Place::Ringing { caller, call } => {
                let (caller, call) = (caller.clone(), *call);
                self.decline(now, &caller, call);
            }
            Place::Dialing { peer, call, .. }
            | Place::Answering {
                caller: peer, call, ..
            }
            | Place::Connecting {
                caller: peer, call, ..
            } => {
                let text = format!("Call with {peer} cancelled.");
                let call = *call;
                self.notice(text);
                self.close_place_links();
                self.send(now, Request::Hangup { call }, Pending::Hangup);
                self.show_list(now);
            }
            Place::AtList => self.finish(now, Exit::Quit),
            Place::Leaving { .. } => self.left(now),
            Place::Rejoining { .. } => self.end_rejoining(now, RejoinEnd::ByUser),
        }
    }

    /// Leaving is over (the peer's BYE, its close, the wait, or Ctrl-C):
    /// close the link and free the call.
    fn left(&mut self, now: Instant) {
        let Some(Place::Leaving { call, link, .. }) = self.place() else {
            return;
        };
        let (call, link) = (*call, *link);
        self.out(Output::Close { link });
        self.send(now, Request::Hangup { call }, Pending::Hangup);
        self.show_list(now);
    }

    /// Whether a lone `y` or `n` typed at the list is waiting for a call to
    /// answer (a script answering the call it expects).
    fn holds_answer(&self) -> bool {
        matches!(self.typed.front(), Some(Typed::Line(line)) if matches!(line.trim(), "y" | "n"))
    }

    /// What the user typed while a call rings.
    fn answer_typed(&mut self, now: Instant, caller: &str, call: CallId, typed: Typed) {
        match typed {
            Typed::Line(line) if line.trim().eq_ignore_ascii_case("y") => {
                self.send(now, Request::Answer { call }, Pending::Answer);
                self.set_place(Place::Answering {
                    caller: caller.to_string(),
                    call,
                });
            }
            Typed::Line(line) if line.trim().eq_ignore_ascii_case("n") => {
                self.decline(now, caller, call)
            }
            Typed::Eof => {
                // Nobody is there to chat: decline, and leave at the list.
                self.typed.push_front(Typed::Eof);
                self.decline(now, caller, call);
            }
            Typed::Quit | Typed::Interrupt => self.decline(now, caller, call),
            Typed::Line(line) => match commands::parse(&line) {
                Command::Quit => self.decline(now, caller, call),
                Command::Help => self.help(),
                Command::Who => self.who(now),
                _ => self.notice(format!("{caller} is calling: y to answer, n to decline.")),
            },
            Typed::Pasted(_) | Typed::TooLong(_) => {
                self.notice(format!("{caller} is calling: y to answer, n to decline."))
            }
        }
    }

    fn decline(&mut self, now: Instant, caller: &str, call: CallId) {
        self.notice(format!("You declined {caller}'s call."));
        self.send(now, Request::Decline { call }, Pending::Decline);
        self.show_list(now);
    }

    fn ask_name(&mut self) {
        self.stage = Stage::Naming;
        self.out(Output::Prompt("Enter your visible name: ".into()));
    }

    fn named(&mut self, now: Instant, line: &str) {
        let name = match commands::parse(line) {
            Command::Quit => return self.finish(now, Exit::Quit),
            Command::Help => {
                self.help();
                return self.ask_name();
            }
            Command::Text(name) => name.trim(),
            _ => {
                self.notice("Names may not start with /; enter your visible name first.");
                return self.ask_name();
            }
        };
        match validate_name(name) {
            Ok(()) => self.register(name.to_string(), now),
            Err(e) => {
                self.notice(format!("That name won't do: {e}."));
                self.ask_name();
            }
        }
    }

    fn register(&mut self, name: String, now: Instant) {
        if self.server.registration == Registration::Dormant {
            // REGISTER goes on the new connection, from `on_server_back`.
            self.notice("Connecting to the registration server again…");
            self.connect_once_more();
            self.stage = Stage::Registering {
                name,
                attempt: Attempt::Again,
            };
            return;
        }
        let request = Request::Register {
            name: name.clone(),
            advertise: self.settings.advertise,
            secret: None,
        };
        self.send(now, request, Pending::Register);
        self.stage = Stage::Registering {
            name,
            attempt: Attempt::First,
        };
    }

    fn at_list(&mut self, now: Instant, line: &str) {
        let name = match commands::parse(line) {
            Command::Quit => return self.finish(now, Exit::Quit),
            Command::Help => return self.help(),
            Command::Who => return self.show_list(now),
            Command::Ignore(name) => return self.ignore(name),
            Command::Unknown(why) => return self.notice(format!("{why}.")),
            Command::NoSuch(verb) => return self.notice(Command::no_such(verb)),
            Command::Say(_) => {
                return self.notice("Not in a chat: enter a name to call, or q to quit.");
            }
            Command::Call(name) => name,
            Command::Text(name) => name.trim(),
        };
        if name.is_empty() {
            self.show_list(now);
        } else if !self.online() {
            self.notice("Cannot call anyone until the registration server is back; q quits.");
            self.show_list(now);
        } else if let Err(e) = validate_name(name) {
            self.notice(format!("No user can be named {name}: {e}."));
            self.show_list(now);
        } else {
            let peer = name.to_string();
            let request = Request::Call { name: peer.clone() };
            let pending = Pending::Call {
                peer: peer.clone(),
                cancelled: false,
            };
            self.send(now, request, pending);
            self.set_place(Place::Calling {
                peer,
                echo: Echo::None,
            });
        }
    }

    fn help(&mut self) {
        self.line(Kind::Info, "Commands:");
        for row in commands::HELP {
            self.line(Kind::Info, format!("  {row}"));
        }
    }

    /// `/ignore NAME`, or `/ignore` to list whom.
    fn ignore(&mut self, name: Option<&str>) {
        let Some(name) = name else {
            let text = if self.ignored.is_empty() {
                "Nobody is ignored.".to_string()
            } else {
                format!("Ignored this session: {}.", self.ignored.join(", "))
            };
            return self.notice(text);
        };
        if let Err(e) = validate_name(name) {
            return self.notice(format!("No user can be named {name}: {e}."));
        }
        let key = name_key(name);
        if !self.ignored.contains(&key) {
            self.ignored.push(key);
        }
        self.notice(format!(
            "Calls from {name} are declined unseen for the rest of this session."
        ));
    }

    /// Back to the list: asks the server for a fresh one.
    fn show_list(&mut self, now: Instant) {
        self.set_place(Place::AtList);
        self.out(Output::BringBack);
        self.tell_missed();
        if self.online() {
            self.send(now, Request::List, Pending::List);
        } else {
            self.notice("No list: the registration server is unreachable; reconnecting…");
            self.out(Output::Prompt(
                "Type q to quit, or wait for the server: ".into(),
            ));
        }
    }

    /// Back to the list when a call did not happen or the peer ended the
    /// chat: lines typed meanwhile were meant for the chat, not for the
    /// list (where "q" would quit and "thanks" would call someone), so they
    /// are dropped, and the user told. A pending end of input stays.
    fn back_to_list_after_failure(&mut self, now: Instant) {
        self.drop_typed_for_the_chat();
        self.show_list(now);
    }

    /// Drops the typed lines waiting, meant for a chat that is over (a pending
    /// end of input stays), and tells the user how many.
    fn drop_typed_for_the_chat(&mut self) {
        let before = self.typed.len();
        self.typed.retain(|typed| *typed == Typed::Eof);
        let dropped = before - self.typed.len();
        if dropped == 1 {
            self.notice("1 line typed meanwhile was not sent.");
        } else if dropped > 1 {
            self.notice(format!("{dropped} lines typed meanwhile were not sent."));
        }
    }

    /// Sends one line that fits in one message, as it is.
    fn send_owned(&mut self, now: Instant, line: String) {
        let Some(chat) = self.chat_mut() else {
            return;
        };
        if !chat.resume.keep(&line) {
            return self.buffer_full();
        }
        if let Some(link) = self.kept(now) {
            self.send_peer(link, PeerMessage::Msg(line));
        }
    }

    /// Lines in a row: one batch to the peer when every one is text the
    /// chat sends as it is now (the flood a script pipes), else each in
    /// turn as typed, commands and all.
    fn typed_lines(&mut self, now: Instant, lines: Lines) {
        if !self.typed.is_empty() || !self.sends_at_once(&lines) {
            let each = lines.iter().map(|line| Typed::Line(line.to_string()));
            return self.typed.extend(each);
        }
        let Some(chat) = self.chat_mut() else {
            return;
        };
        let lines = Arc::new(lines);
        // Room for them all was checked: none is refused.
        let kept = chat.resume.keep_all(&lines);
        debug_assert!(kept);
        if let Some(link) = self.kept(now) {
            self.out(Output::PeerTexts { link, texts: lines });
        }
    }

    /// Whether each of `lines` is text the chat sends now, as it is and
    /// whole, with room for them all in the resend buffer.
    fn sends_at_once(&self, lines: &Lines) -> bool {
        let Some(chat) = self.chat() else {
            return false;
        };
        let limit = self.text_limit();
        chat.ending.is_none()
            && chat.resume.has_room(lines.text_len())
            && lines.iter().all(|line| {
                !line.is_empty()
                    && line.len() <= limit
                    && matches!(commands::parse(line), Command::Text(_))
            })
    }

    /// After lines were kept to send: what goes before them (our features
    /// without `resume`, once we gave keeping up; the acknowledgement we
    /// owe, which rides along), and the link they go on.
    fn kept(&mut self, now: Instant) -> Option<LinkId> {
        let chat = self.chat_mut()?;
        chat.resume.note_waiting(now);
        chat.link.last_sent = now;
        let link = chat.link.id;
        if chat.resume.given_up && !std::mem::replace(&mut chat.resume.withdrawn, true) {
            // The peer must not keep, or wait, for a resumption we cannot
            // make good: our features again, without `resume`.
            self.send_peer(link, Core::features_but(Some(FEATURE_RESUME)));
        }
        self.acknowledge_now();
        Some(link)
    }

    /// Sends the chat's owed acknowledgement, if any, on its link.
    fn acknowledge_now(&mut self) {
        let Some(Place::Chatting(chat)) = self.place_mut() else {
            return;
        };
        let resume = &mut chat.resume;
        resume.ack_due = None;
        resume.untold_bytes = 0;
        if resume.told == resume.received || !resume.active() {
            return;
        }
        resume.told = resume.received;
        let (link, count) = (chat.link.id, resume.received);
        self.send_peer(link, PeerMessage::Ack(count));
    }

    fn too_long(&mut self, bytes: usize) {
        self.notice(format!(
            "That line is {} KiB, longer than the 64 KiB a message may be: nothing was sent.",
            bytes.div_ceil(1024)
        ));
    }

    fn buffer_full(&mut self) {
        self.notice(format!(
            "Not sent: the peer has not confirmed the last {} MiB yet; try again in a moment.",
            RESUME_BUFFER >> 20
        ));
    }

    /// The longest message this chat's peer takes whole: 64 KiB when it
    /// said `long-lines` (and, through the relay, the server said so too),
    /// else the 4 KiB every peer takes.
    fn text_limit(&self) -> usize {
        let Some(chat) = self.chat() else {
            return MAX_TEXT;
        };
        let relay_takes_them = chat.route == Route::Direct
            || self.server.features.iter().any(|f| f == FEATURE_LONG_LINES);
        if chat.link.long_lines && relay_takes_them {
            MAX_LONG_TEXT
        } else {
            MAX_TEXT
        }
    }

    fn chat(&self) -> Option<&Chat> {
        match self.place() {
            Some(Place::Chatting(chat)) => Some(chat),
            _ => None,
        }
    }

    /// Sends `text` to the peer as it is: one message where the peer takes
    /// it whole, nothing (and a notice) past 64 KiB; to an older peer, in
    /// pieces the protocol takes.
    fn send_text(&mut self, now: Instant, text: &str) {
        if text.is_empty() {
            return;
        }
        let limit = self.text_limit();
        if limit == MAX_LONG_TEXT {
            if text.len() > MAX_LONG_TEXT {
                return self.too_long(text.len());
            }
            return self.send_owned(now, text.to_string());
        }
        let Some(chat) = self.chat_mut() else {
            return;
        };
        if !chat.resume.has_room(text.len()) {
            return self.buffer_full();
        }
        chat.link.last_sent = now;
        let link = chat.link.id;
        let pieces: Vec<String> = split_text(text).map(str::to_string).collect();
        for piece in pieces {
            let Some(chat) = self.chat_mut() else {
                return;
            };
            if !chat.resume.keep(&piece) {
                return self.buffer_full();
            }
            chat.resume.note_waiting(now);
            self.send_peer(link, PeerMessage::Msg(piece));
        }
    }

    fn chat_line(&mut self, now: Instant, line: String) {
        let text = match commands::parse(&line) {
            Command::Quit => return self.quit_chat(now),
            Command::Help => return self.help(),
            Command::Who => {
                if self.online() {
                    self.send(now, Request::List, Pending::Who);
                } else {
                    self.notice("The registration server is unreachable: no list for now.");
                }
                return;
            }
            Command::Ignore(name) => return self.ignore(name),
            Command::Call(_) => return self.notice("One chat at a time: q ends this one first."),
            Command::Unknown(why) => return self.notice(format!("{why}; nothing was sent.")),
            Command::NoSuch(verb) => return self.notice(Command::no_such_in_chat(verb)),
            Command::Say(text) => text,
            // The line as typed, the bulk of piped chat: sent without a copy
            // when it fits in one message.
            Command::Text(_) if line.len() <= self.text_limit() && !line.is_empty() => {
                return self.send_owned(now, line);
            }
            Command::Text(text) => text,
        };
        self.send_text(now, text);
    }

    /// Closes the links the place holds (a dial's echo, a chat's links).
    fn close_place_links(&mut self) {
        let mut links = Vec::new();
        match self.place() {
            Some(Place::Dialing {
                echo: Echo::Attached(echo),
                ..
            }) => links.push(echo.id),
            Some(Place::Chatting(chat)) => {
                links.push(chat.link.id);
                links.extend(chat.echo.as_ref().map(|e| e.id));
            }
            _ => {}
        }
        for link in links {
            self.out(Output::Close { link });
        }
    }

    /// We end the chat: tell the peer and the server, back to the list.
    fn quit_chat(&mut self, now: Instant) {
        let Some(Place::Chatting(chat)) = self.place() else {
            return;
        };
        let (peer, call, link) = (chat.peer.clone(), chat.call, chat.link.id);
        let acks_bye = chat.link.acks_bye;
        self.send_peer(link, PeerMessage::Bye);
        self.notice(format!("You left the chat with {peer}."));
        if acks_bye {
            // Close only once the peer has read everything: its BYE says so.
            let echo = match self.place() {
                Some(Place::Chatting(chat)) => chat.echo.as_ref().map(|e| e.id),
                _ => None,
            };
            self.out(Output::EndSending { link });
            if let Some(echo) = echo {
                self.out(Output::Close { link: echo });
            }
            let until = now + self.settings.timers.leave;
            self.set_place(Place::Leaving {
                peer,
                call,
                link,
                until,
            });
            return;
        }
        self.close_place_links();
        // The server handles HANGUP before the LIST that follows it, so the
        // list shows both of us free.
        self.send(now, Request::Hangup { call }, Pending::Hangup);
        self.show_list(now);
    }

    /// The peer's link ended, `how`.
    fn peer_finished(&mut self, now: Instant, how: PeerGone) {
        let drain = self.settings.timers.drain;
        let Some(chat) = self.chat_mut() else {
            return;
        };
        let ending = chat.ending.get_or_insert(Ending {
            link_done: false,
            server_done: false,
            gone: false,
            until: now + drain,
            probe: None,
        });
        let first = !ending.link_done;
        ending.link_done = true;
        let peer = chat.peer.clone();
        if first {
            self.notice(match how {
                PeerGone::Bye => format!("{peer} left the chat."),
                PeerGone::ConnectionLost => format!("{peer} left the chat (connection lost)."),
                PeerGone::Silent => format!("{peer} left the chat (no answer for a while)."),
                PeerGone::StoppedReading => format!("{peer} stopped reading; the chat ended."),
            });
        }
        if how == PeerGone::StoppedReading {
            // What we would still send cannot arrive: end at once.
            return self.finish_chat(now, Waiting::Over);
        }
        self.finish_chat(now, Waiting::ForBoth);
    }

    /// Ends a chat the peer ended, once both signs are in or when waiting
    /// for the second is over.
    fn finish_chat(&mut self, now: Instant, waiting: Waiting) {
        let Some(Place::Chatting(chat)) = self.place() else {
            return;
        };
        let Some(ending) = &chat.ending else {
            return;
        };
        if waiting == Waiting::ForBoth && !(ending.link_done && ending.server_done) {
            return;
        }
        if ending.gone {
            return self.chat_gone(now);
        }
        let (peer, call) = (chat.peer.clone(), chat.call);
        let (link_done, server_done) = (ending.link_done, ending.server_done);
        if !link_done {
            self.notice(format!("{peer} left the chat (gone from the server)."));
        }
        if !server_done {
            // The server has not heard: the link broke but both of us are
            // registered. Free the call ourselves.
            self.send(now, Request::Hangup { call }, Pending::Hangup);
        }
        self.close_place_links();
        self.chat_ended_for_us(now);
    }

    // ---- the server ----------------------------------------------------

    fn on_server(&mut self, now: Instant, line: ServerLine) {
        match line {
            ServerLine::Incoming {
                caller,
                call,
                token,
            } => self.on_incoming(now, caller, call, token),
            ServerLine::PeerHungUp { call, peer, end } => {
                self.on_peer_hung_up(now, call, &peer, end)
            }
            ServerLine::Gone { peer } => self.on_gone(now, &peer),
            ServerLine::FoundBusy { call, peer } => {
                self.on_unanswered(now, call, format!("{peer} is busy in another chat."))
            }
            ServerLine::RelayRequested { call } => self.on_relay_requested(now, call),
            ServerLine::RejoinRequested {
                caller,
                call,
                token,
            } => self.on_rejoin_requested(&caller, call, token),
            ServerLine::Ring { caller, call } => self.on_ring(now, caller, call),
            ServerLine::Answered {
                peer,
                call,
                token,
                addrs,
            } => self.on_answered(now, peer, call, token, addrs),
            ServerLine::Declined { call, peer } => {
                self.on_unanswered(now, call, format!("{peer} declined."))
            }
            ServerLine::NoAnswer { call, peer } => {
                let text = match self.place() {
                    Some(Place::RingingOut { .. }) => format!("{peer} did not answer."),
                    _ => format!("You did not answer {peer}'s call."),
                };
                self.on_unanswered(now, call, text)
            }
            ServerLine::Presence(changes) => self.on_presence(&changes),
            reply => self.on_reply(now, Reply::Line(reply)),
        }
    }

    /// A reply: matched to the oldest request still waiting for one.
    fn on_reply(&mut self, now: Instant, reply: Reply) {
        let Some(pending) = self.server.pending.pop_front() else {
            if matches!(self.stage, Stage::Naming) {
                // The server gives up on a connection that does not
                // register in time, and says so; the chat connects again
                // once the name is given.
                return;
            }
            return match reply {
                Reply::Line(ServerLine::Error { message, .. }) => {
                    self.notice(format!("The server says: {message}."))
                }
                reply => self.notice(format!(
                    "The server sent a reply to nothing ({}); ignored.",
                    reply.describe()
                )),
            };
        };
        match (pending, reply) {
            (
                Pending::Register,
                Reply::Line(ServerLine::Welcome {
                    name,
                    heartbeat_secs,
                    secret,
                }),
            ) => {
                if secret.is_some() {
                    self.server.secret = secret;
                }
                self.out(Output::Registered);
                self.on_welcome(now, name, heartbeat_secs)
            }
            (Pending::Register, Reply::Line(ServerLine::Error { code, message })) => {
                self.on_register_refused(now, code, &message)
            }
            (Pending::List, Reply::Users(users)) => self.on_users(users),
            (Pending::Who, Reply::Users(users)) => self.show_users(&users),
            (
                Pending::Call { cancelled, .. },
                Reply::Line(ServerLine::CallReady {
                    peer,
                    call,
                    token,
                    addrs,
                }),
            ) => self.on_call_ready(now, cancelled, peer, call, token, addrs),
            (
                Pending::Call { peer, cancelled },
                Reply::Line(ServerLine::Error { code, message }),
            ) => self.on_call_refused(now, cancelled, &peer, code, &message),
            (Pending::Call { cancelled, .. }, Reply::Line(ServerLine::Ringing { peer, call })) => {
                self.on_ringing_out(now, cancelled, peer, call)
            }
            (
                Pending::Answer,
                Reply::Line(ServerLine::Answer {
                    caller,
                    call,
                    token,
                }),
            ) => self.on_answer_accepted(now, caller, call, token),
            (Pending::Answer, Reply::Line(ServerLine::Error { .. })) => {
                // The call ended before our answer: its end is told by the
                // event that ended it.
                if matches!(self.place(), Some(Place::Answering { .. })) {
                    self.show_list(now);
                }
            }
            (Pending::Locate, Reply::Line(ServerLine::Located { addrs, .. })) => {
                self.on_located(now, addrs)
            }
            (
                Pending::Rejoin { addrs },
                Reply::Line(ServerLine::RejoinReady { call, token, .. }),
            ) => self.on_rejoin_ready(call, token, addrs),
            // No relay this time: the direct ways only.
            (Pending::Rejoin { addrs }, Reply::Line(ServerLine::Error { .. })) => {
                if let Some(Place::Rejoining { chat, .. }) = self.place() {
                    let call = chat.call;
                    self.redial(call, addrs, None);
                }
            }
            (Pending::Locate, Reply::Line(ServerLine::Error { .. })) => {
                // Not in a call with the peer on the server (it dropped the
                // call when the peer vanished): ask to be paired again, as
                // the peer does once it is back; then try again shortly.
                if let Some(Place::Rejoining { chat, dialing, .. }) = self.place_mut() {
                    *dialing = false;
                    let name = chat.peer.clone();
                    self.send(now, Request::Resume { name }, Pending::Resume);
                }
            }
            (Pending::Lookup, Reply::Line(ServerLine::Found(user))) if !user.busy => {
                // Online, free, and not with us: the peer ended the chat.
                self.end_rejoining(now, RejoinEnd::ByPeer)
            }
            // Busy: back with us through RESUME, or in a chat of its own;
            // either way the grace decides.
            (Pending::Lookup, Reply::Line(ServerLine::Found(_))) => {}
            // Not online: gone with its network, or killed; it may come
            // back, for as long as the grace lasts. Said, so nobody waits
            // without knowing why.
            (Pending::Lookup, Reply::Line(ServerLine::Error { .. })) => self.peer_offline(now),
            (Pending::Resume, Reply::Line(ServerLine::Error { .. })) => {}
            (Pending::Resume, Reply::Line(ServerLine::Resumed { peer, call })) => {
                self.on_resumed(now, &peer, call)
            }
            (
                Pending::Hangup,
                Reply::Line(ServerLine::HungUp { .. } | ServerLine::Error { .. }),
            )
            | (Pending::Ping, Reply::Line(ServerLine::Pong))
            | (
                Pending::Decline,
                Reply::Line(ServerLine::DeclineDone { .. } | ServerLine::Error { .. }),
            )
            | (
                Pending::Busy,
                Reply::Line(ServerLine::BusyDone { .. } | ServerLine::Error { .. }),
            )
            | (
                Pending::Linked,
                Reply::Line(ServerLine::Linked { .. } | ServerLine::Error { .. }),
            )
            | (Pending::Watch, Reply::Line(ServerLine::Watching(_) | ServerLine::Error { .. }))
            | (Pending::Quit, Reply::Line(ServerLine::Bye))
            | (Pending::Features, Reply::Line(ServerLine::Error { .. })) => {}
            (Pending::Features, Reply::Line(ServerLine::Features(words))) => {
                self.server.features = words
            }
            (_, Reply::Line(ServerLine::Error { message, .. })) => {
                self.notice(format!("The server says: {message}."))
            }
            (pending, reply) => self.notice(format!(
                "The server answered {pending:?} with {}; ignored.",
                reply.describe()
            )),
        }
    }

    fn on_welcome(&mut self, now: Instant, name: String, heartbeat_secs: u64) {
        // A day at most: a lying server must not overflow the timers.
        self.server.heartbeat = Some(Duration::from_secs(heartbeat_secs.clamp(1, 86_400)));
        if let Registration::Reregistering { .. } = self.server.registration
            && matches!(self.stage, Stage::Registered { .. })
        {
            self.server.registration = Registration::Online;
            self.notice("Reconnected to the registration server.");
            match self.place() {
                Some(Place::Chatting(chat)) if chat.ending.is_none() => {
                    let name = chat.peer.clone();
                    self.send(now, Request::Resume { name }, Pending::Resume);
                }
                Some(Place::Rejoining { chat, .. }) => {
                    let name = chat.peer.clone();
                    self.send(now, Request::Resume { name }, Pending::Resume);
                }
                Some(Place::AtList) => self.show_list(now),
                _ => {}
            }
            return;
        }
        if !matches!(self.stage, Stage::Registering { .. }) {
            return;
        }
        self.server.registration = Registration::Online;
        self.line(
            Kind::Info,
            format!(
                "Welcome, {name}! Peers can reach you at {}.",
                self.settings.advertise
            ),
        );
        self.stage = Stage::Registered {
            me: name,
            place: Place::AtList,
        };
        self.show_list(now);
    }

    fn on_register_refused(&mut self, now: Instant, code: ErrorCode, message: &str) {
        if code == ErrorCode::Timeout
            && let Stage::Registering { attempt, .. } = &mut self.stage
            && *attempt == Attempt::First
        {
            // The server gave up on the connection just as the name came:
            // not a refusal of the name. Connect again and register there.
            *attempt = Attempt::Again;
            return self.connect_once_more();
        }
        if code == ErrorCode::BadRequest && self.server.secret.take().is_some() {
            // A server that does not take secrets (an older one, after a
            // restart): register again without.
            return self.lost_server(Duration::ZERO, 0);
        }
        if let Registration::Reregistering { refusals } = self.server.registration
            && matches!(self.stage, Stage::Registered { .. })
        {
            // Our old entry may linger until the server notices the old
            // connection is dead, or someone took the name meanwhile: try
            // again later and later, on a fresh connection; say so once.
            let refusals = refusals + 1;
            if refusals == 1 {
                let me = self.me().unwrap_or_default().to_string();
                self.notice(format!(
                    "The server will not register {me} again yet ({message}); retrying…"
                ));
            }
            let pause = self.settings.timers.reconnect * 2u32.pow(refusals.min(4));
            self.lost_server(pause.min(Duration::from_secs(5)), refusals);
            return;
        }
        let Stage::Registering { name, .. } = &self.stage else {
            return;
        };
        self.server.registration = Registration::Online;
        if self.settings.name.is_some() {
            // Said once, by the program's error line as it exits.
            self.finish(now, Exit::NameRefused(format!("{name}: {message}")));
        } else {
            self.notice(format!("The server refused the name {name}: {message}."));
            self.ask_name();
        }
    }

    fn on_users(&mut self, users: Vec<UserEntry>) {
        if !matches!(self.place(), Some(Place::AtList)) {
            return;
        }
        if self.typed_for_chat.take().is_some() {
            self.drop_typed_for_the_chat();
        }
        self.show_users(&users);
        self.out(Output::Prompt(
            "Enter a name to chat with, or q to quit: ".into(),
        ));
    }

    fn show_users(&mut self, users: &[UserEntry]) {
        self.roster = users
            .iter()
            .filter(|u| !self.is_me(&u.name))
            .map(|u| (name_key(&u.name), u.busy))
            .collect();
        self.line(Kind::Info, format!("Online users ({}):", users.len()));
        for user in users {
            let mut row = format!("  {}", user.name);
            if self.is_me(&user.name) {
                row.push_str(" (you)");
            }
            if user.busy {
                row.push_str(" [busy]");
            }
            self.line(Kind::Info, row);
        }
    }

    fn on_call_ready(
        &mut self,
        now: Instant,
        cancelled: bool,
        peer: String,
        call: CallId,
        token: Token,
        addrs: Vec<SocketAddr>,
    ) {
        let Some(echo) = self.leave_calling(now, cancelled, &peer, call) else {
            return;
        };
        self.notice(format!("Connecting to {peer}…"));
        let me = self.me().unwrap_or_default().to_string();
        let hello = vec![
            PeerMessage::Hello {
                caller: me,
                call,
                token,
            },
            Core::features(),
        ];
        self.out(Output::Dial {
            call,
            token,
            hello,
            addrs,
            relay: true,
            pace: Pace::Race,
        });
        self.set_place(Place::Dialing { peer, call, echo });
    }

    fn on_call_refused(
        &mut self,
        now: Instant,
        cancelled: bool,
        peer: &str,
        code: ErrorCode,
        message: &str,
    ) {
        let calling = matches!(self.place(), Some(Place::Calling { .. }));
        if cancelled || !calling {
            // The refusal of a call the user already cancelled, or one that
            // a call to us overtook.
            return;
        }
        let text = match code {
            ErrorCode::Busy => format!("{peer} is busy in another chat."),
            ErrorCode::UnknownUser => format!("No user named {peer} is online."),
            // Someone called us just as we called: the server claimed us
            // for their call, whose announcement is on its way.
            ErrorCode::AlreadyInCall => return self.show_list(now),
            _ => format!("Cannot call {peer}: {message}."),
        };
        self.notice(text);
        self.back_to_list_after_failure(now);
    }

    fn on_resumed(&mut self, now: Instant, peer: &str, call: CallId) {
        if let Some(Place::Rejoining { chat, dialing, .. }) = self.place_mut()
            && name_key(&chat.peer) == name_key(peer)
        {
            // A dial under the old number finds no place and is closed.
            chat.call = call;
            *dialing = false;
            return;
        }
        match self.chat_mut() {
            Some(chat) if chat.ending.is_none() && name_key(&chat.peer) == name_key(peer) => {
                chat.call = call
            }
            // The chat ended while the server was answering: free the call
            // it just made, or we would stay busy.
            _ => self.send(now, Request::Hangup { call }, Pending::Hangup),
        }
    }

    fn on_incoming(&mut self, now: Instant, caller: String, call: CallId, token: Token) {
        if self.announced.len() == ANNOUNCED_MEMORY {
            self.announced.pop_front();
        }
        self.announced.push_back(call);
        if self.ignored.contains(&name_key(&caller)) {
            return self.send(now, Request::Hangup { call }, Pending::Hangup);
        }
        let to_self = self.is_me(&caller);
        let ring_until = now + self.settings.timers.ring;
        let rung = match self.place_mut() {
            Some(Place::Calling { peer, echo })
                if to_self && name_key(peer) == name_key(&caller) =>
            {
                *echo = Echo::Expected { call, token };
                false
            }
            Some(Place::Dialing {
                call: dialing,
                echo,
                ..
            }) if to_self && *dialing == call => {
                *echo = Echo::Expected { call, token };
                false
            }
            // At the list, or calling someone who is calling us: the
            // server gave their call the two of us.
            Some(place @ (Place::AtList | Place::Calling { .. })) if !to_self => {
                *place = Place::Connecting {
                    caller: caller.clone(),
                    call,
                    token,
                    until: ring_until,
                    taken: Taken::AtOnce,
                };
                true
            }
            _ => {
                // The server thinks we are free but we are not (it lost our
                // chat, or we are between states): refuse the call plainly.
                return self.send(now, Request::Hangup { call }, Pending::Hangup);
            }
        };
        if rung {
            // What was typed ahead was for the list, never for the caller.
            self.drop_typed_for_the_chat();
            self.notice(format!("{caller} is calling you…"));
            self.out(Output::Bell);
        }
        // A HELLO for this call may have come first.
        self.retry_early(now, call);
    }

    /// The server took our `CALL` to `peer` as `call`: leaves `Calling`,
    /// handing back its echo, or, if the user gave up on the call meanwhile,
    /// frees it on the server and gives `None`.
    fn leave_calling(
        &mut self,
        now: Instant,
        cancelled: bool,
        peer: &str,
        call: CallId,
    ) -> Option<Echo> {
        let calling = matches!(
            self.place(),
            Some(Place::Calling { peer: p, .. }) if name_key(p) == name_key(peer)
        );
        if cancelled || !calling {
            self.send(now, Request::Hangup { call }, Pending::Hangup);
            return None;
        }
        match self.set_place(Place::AtList) {
            Some(Place::Calling { echo, .. }) => Some(echo),
            _ => None,
        }
    }

    /// `OK RINGING`: the server rings the peer; its answer will come as an
    /// event.
    fn on_ringing_out(&mut self, now: Instant, cancelled: bool, peer: String, call: CallId) {
        let Some(echo) = self.leave_calling(now, cancelled, &peer, call) else {
            return;
        };
        self.notice(format!("Ringing {peer}… (Ctrl-C cancels)"));
        self.set_place(Place::RingingOut { peer, call, echo });
    }

    /// `EVENT RING`: someone calls; the user answers.
    fn on_ring(&mut self, now: Instant, caller: String, call: CallId) {
        if self.ignored.contains(&name_key(&caller)) {
            return self.send(now, Request::Decline { call }, Pending::Decline);
        }
        let to_self = self.is_me(&caller);
        let says_busy = self.server_has(FEATURE_SESSION);
        match self.place_mut() {
            // Our own call to ourselves: answered at once.
            Some(Place::RingingOut { peer, .. })
                if to_self && name_key(peer) == name_key(&caller) =>
            {
                self.send(now, Request::Answer { call }, Pending::Answer)
            }
            Some(place @ (Place::AtList | Place::Calling { .. })) if !to_self => {
                *place = Place::Ringing {
                    caller: caller.clone(),
                    call,
                };
                self.notice(format!("{caller} is calling: y to answer, n to decline."));
                self.out(Output::Bell);
                self.out(Output::SetAside);
            }
            // We are in a chat (or bringing one back) though the server
            // thought us free: the call finds us busy, and the server tells
            // us of it as a missed call. Only the user declines a call.
            _ if says_busy => self.send(now, Request::Busy { call }, Pending::Busy),
            _ => self.send(now, Request::Decline { call }, Pending::Decline),
        }
    }

    /// `OK ANSWER`: the caller will connect with `token`.
    fn on_answer_accepted(&mut self, now: Instant, caller: String, call: CallId, token: Token) {
        let until = now + self.settings.timers.ring;
        match self.place_mut() {
            Some(Place::Answering { call: c, .. }) if *c == call => {
                *self.place_mut().expect("registered") = Place::Connecting {
                    caller,
                    call,
                    token,
                    until,
                    taken: Taken::Answered,
                };
            }
            Some(Place::RingingOut { call: c, echo, .. }) if *c == call => {
                *echo = Echo::Expected { call, token };
            }
            _ => {}
        }
        // A HELLO for this call may have come first.
        self.retry_early(now, call);
    }

    /// `EVENT ANSWERED`: our ringing call was answered: dial, as after
    /// `OK CALL`.
    fn on_answered(
        &mut self,
        now: Instant,
        peer: String,
        call: CallId,
        token: Token,
        addrs: Vec<SocketAddr>,
    ) {
        let ringing = matches!(self.place(), Some(Place::RingingOut { call: c, .. }) if *c == call);
        if !ringing {
            return self.send(now, Request::Hangup { call }, Pending::Hangup);
        }
        let Some(Place::RingingOut { echo, .. }) = self.set_place(Place::AtList) else {
            return;
        };
        self.set_place(Place::Calling {
            peer: peer.clone(),
            echo,
        });
        self.on_call_ready(now, false, peer, call, token, addrs);
    }

    /// A ring that ended without a chat: declined, or not answered in time.
    fn on_unanswered(&mut self, now: Instant, call: CallId, text: String) {
        let ours = match self.place() {
            Some(
                Place::RingingOut { call: c, .. }
                | Place::Ringing { call: c, .. }
                | Place::Answering { call: c, .. },
            ) => *c == call,
            _ => false,
        };
        if ours {
            self.notice(text);
            self.back_to_list_after_failure(now);
        }
    }

    /// Someone tried to call while we were busy; told once we are free.
    fn on_missed(&mut self, caller: String, at: String) {
        if self.missed.len() >= ANNOUNCED_MEMORY {
            self.missed.remove(0);
        }
        self.missed.push((caller, at));
        if matches!(self.place(), Some(Place::AtList)) {
            self.tell_missed();
        }
    }

    fn tell_missed(&mut self) {
        for (caller, at) in std::mem::take(&mut self.missed) {
            self.notice(format!("{caller} tried to call you at {at}."));
        }
    }

    /// Who came, went, or became busy or free, while we sit at the list.
    /// Only real changes to the list last seen are told: a batch may repeat
    /// what the list already showed.
    fn on_presence(&mut self, batch: &[Presence]) {
        if !matches!(self.place(), Some(Place::AtList)) {
            return;
        }
        let mut changes = Vec::new();
        for change in batch {
            let key = name_key(&change.name);
            let known = self.roster.get(&key).copied();
            let state = match (change.state, known) {
                (PresenceState::Left, None) => continue,
                (PresenceState::Left, Some(_)) => {
                    self.roster.remove(&key);
                    PresenceState::Left
                }
                (PresenceState::Joined, Some(_)) => continue,
                (PresenceState::Busy, Some(true)) | (PresenceState::Free, Some(false)) => continue,
                // Joined and became busy (or free) within one batch.
                (PresenceState::Busy, None) => {
                    self.roster.insert(key, true);
                    PresenceState::Busy
                }
                (PresenceState::Free, None) => {
                    self.roster.insert(key, false);
                    PresenceState::Joined
                }
                (state, _) => {
                    self.roster.insert(key, state == PresenceState::Busy);
                    state
                }
            };
            changes.push(Presence {
                name: change.name.clone(),
                state,
            });
        }
        if changes.is_empty() {
            return;
        }
        let changes = &changes[..];
        if changes.len() <= PRESENCE_LINES {
            for change in changes {
                let name = &change.name;
                self.notice(match change.state {
                    PresenceState::Joined => format!("{name} is online."),
                    PresenceState::Left => format!("{name} left."),
                    PresenceState::Busy => format!("{name} is busy."),
                    PresenceState::Free => format!("{name} is free."),
                });
            }
            return;
        }
        // A burst: one line, not one per change.
        let count = |state| changes.iter().filter(|c| c.state == state).count();
        let mut parts = Vec::new();
        for (state, word) in [
            (PresenceState::Joined, "came online"),
            (PresenceState::Left, "left"),
            (PresenceState::Busy, "became busy"),
            (PresenceState::Free, "became free"),
        ] {
            let n = count(state);
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        let names: Vec<&str> = changes.iter().take(3).map(|c| c.name.as_str()).collect();
        self.notice(format!(
            "{} ({}, …); ENTER shows the list.",
            parts.join(", "),
            names.join(", ")
        ));
    }

    /// Watches presence exactly while at the list, on a server that has it.
    fn sync_watch(&mut self, now: Instant) {
        let want = matches!(self.place(), Some(Place::AtList))
            && self.online()
            && self.server.features.iter().any(|f| f == FEATURE_PRESENCE);
        if want != self.server.watching && self.connected() {
            self.server.watching = want;
            self.send(now, Request::Watch(want), Pending::Watch);
        }
    }

    fn retry_early(&mut self, now: Instant, call: CallId) {
        let (ours, others) = std::mem::take(&mut self.early)
            .into_iter()
            .partition(|e| e.call == call);
        self.early = others;
        for hello in ours {
            self.on_hello(now, hello);
        }
    }

    fn on_peer_hung_up(&mut self, now: Instant, call: CallId, peer: &str, end: Option<ConnEnd>) {
        let drain = self.settings.timers.drain;
        let mut probe = None;
        match self.place_mut() {
            Some(Place::Chatting(chat)) if chat.call == call => {
                let ending = chat.ending.get_or_insert(Ending {
                    link_done: false,
                    server_done: false,
                    gone: false,
                    until: now + drain,
                    probe: None,
                });
                ending.server_done = true;
                if !ending.link_done {
                    // The peer hung up (its BYE is on the way) or it lost
                    // the server. Ask it: a PONG means it is still here.
                    let (msg, number) = chat.link.ping(now);
                    ending.probe = Some(number);
                    probe = Some((chat.link.id, msg));
                }
            }
            Some(Place::Rejoining { chat, .. }) if chat.call == call => {
                // Gone from the server with its link. We stay busy while we
                // wait for it (a call to us now is refused as busy).
                let name = chat.peer.clone();
                self.send(now, Request::Resume { name: name.clone() }, Pending::Resume);
                if end == Some(ConnEnd::Closed) {
                    // Its program closed the connection: the server's
                    // verdict (gone, or back) comes in a moment.
                    return;
                }
                // Its network went quiet (it may come back), or it is done
                // with us: the server's list tells.
                return self.send(now, Request::Lookup { name }, Pending::Lookup);
            }
            Some(Place::Connecting { call: ringing, .. }) if *ringing == call => {
                self.notice(format!("{peer} hung up before the chat started."));
                return self.back_to_list_after_failure(now);
            }
            Some(Place::RingingOut { call: ringing, .. }) if *ringing == call => {
                self.notice(format!("{peer} is gone."));
                return self.back_to_list_after_failure(now);
            }
            Some(Place::Ringing { call: ringing, .. } | Place::Answering { call: ringing, .. })
                if *ringing == call =>
            {
                self.notice(format!("{peer} hung up before you answered."));
                return self.back_to_list_after_failure(now);
            }
            Some(Place::Dialing { call: dialing, .. }) if *dialing == call => {
                // The dial's result will find another place and be closed.
                self.notice(format!("{peer} is gone."));
                self.close_place_links();
                return self.back_to_list_after_failure(now);
            }
            _ => return,
        }
        if let Some((link, msg)) = probe {
            self.send_peer(link, msg);
        }
        self.finish_chat(now, Waiting::ForBoth);
    }

    /// `EVENT GONE`: the program of `peer`, our last call's peer, is gone.
    /// A chat with it waiting for its link to come back ends now; one whose
    /// link is still up ends when the link does (every line the peer sent
    /// before it went is shown), or after the drain wait.
    fn on_gone(&mut self, now: Instant, peer: &str) {
        let drain = self.settings.timers.drain;
        match self.place_mut() {
            Some(Place::Rejoining { chat, .. }) if name_key(&chat.peer) == name_key(peer) => {
                self.chat_gone(now)
            }
            Some(Place::Chatting(chat)) if name_key(&chat.peer) == name_key(peer) => {
                let ending = chat.ending.get_or_insert(Ending {
                    link_done: false,
                    server_done: true,
                    gone: true,
                    until: now + drain,
                    probe: None,
                });
                ending.gone = true;
                ending.server_done = true;
                if ending.link_done {
                    self.finish_chat(now, Waiting::Over);
                }
            }
            _ => {}
        }
    }

    /// The chat's peer is gone for good: the chat ends, saying so, and
    /// listing what the peer never confirmed.
    fn chat_gone(&mut self, now: Instant) {
        if !matches!(
            self.place(),
            Some(Place::Chatting(_) | Place::Rejoining { .. })
        ) {
            return;
        }
        self.close_place_links();
        let chat = match self.set_place(Place::AtList) {
            Some(Place::Chatting(chat) | Place::Rejoining { chat, .. }) => chat,
            _ => return,
        };
        let peer = &chat.peer;
        self.notice(format!("{peer}'s chat closed; the chat ended."));
        if let Some(text) = chat.resume.undelivered(peer) {
            self.notice(text);
        }
        // We may be busy in a call we resumed while waiting for it.
        let call = chat.call;
        self.send(now, Request::Hangup { call }, Pending::Hangup);
        self.chat_ended_for_us(now);
    }

    /// A chat ended that the user did not end: back to the list, and what
    /// was typed for the chat is not run there.
    fn chat_ended_for_us(&mut self, now: Instant) {
        self.out(Output::Shelve);
        self.back_to_list_after_failure(now);
        // Lines typed before the user can have seen the list were meant for
        // the chat too. Until it is shown (or, with no server to show it,
        // for a moment) they are not run.
        self.typed_for_chat = Some(if self.online() {
            TypedForChat::UntilList
        } else {
            TypedForChat::Until(now + self.settings.timers.drain)
        });
    }

    /// Whether the server announced `feature`.
    fn server_has(&self, feature: &str) -> bool {
        self.server.features.iter().any(|f| f == feature)
    }

    /// The caller could not reach us directly and asks the server to relay:
    /// open our half, if the call is the one we are expecting.
    fn on_relay_requested(&mut self, now: Instant, call: CallId) {
        let ring = self.settings.timers.ring;
        let token = match self.place_mut() {
            Some(Place::Connecting {
                call: ringing,
                token,
                until,
                ..
            }) if *ringing == call => {
                *until = now + ring;
                *token
            }
            Some(
                Place::Calling {
                    echo: Echo::Expected { call: c, token },
                    ..
                }
                | Place::Dialing {
                    echo: Echo::Expected { call: c, token },
                    ..
                },
            ) if *c == call => *token,
            _ => return,
        };
        self.out(Output::JoinRelay { call, token });
    }

    fn on_server_lost(&mut self, now: Instant, why: String) {
        let refusals = match self.server.registration {
            // The one attempt to connect again for a name given late.
            Registration::Reconnecting { .. }
                if matches!(self.stage, Stage::Registering { .. }) =>
            {
                0
            }
            Registration::Reconnecting { .. } | Registration::Dormant => return,
            Registration::Reregistering { refusals } => refusals,
            Registration::Online => 0,
        };
        if matches!(self.stage, Stage::Naming) {
            self.server.pending.clear();
            self.server.heartbeat = None;
            self.server.registration = Registration::Dormant;
            return;
        }
        if let Stage::Registering { attempt, .. } = &mut self.stage {
            if *attempt == Attempt::First {
                // The server may have given up on the connection just before
                // the name came: one fresh connection.
                *attempt = Attempt::Again;
                return self.connect_once_more();
            }
            // Lost again: a server that closes on REGISTER is broken or full,
            // or gone, and retrying would hang a script.
            self.stage = Stage::Done(Exit::ServerLost(format!("{why}, before registration")));
            return;
        }
        if refusals == 0 {
            self.notice(format!(
                "Lost the connection to the registration server ({why}); reconnecting…"
            ));
        }
        self.lost_server(self.settings.timers.reconnect, refusals);
        match self.place() {
            Some(Place::Calling { peer, .. } | Place::RingingOut { peer, .. }) => {
                let text = format!("The call to {peer} was not set up.");
                self.notice(text);
                self.back_to_list_after_failure(now);
            }
            // The ring lived on the server, which is gone: no answer or
            // end of it can come.
            Some(Place::Ringing { caller, .. } | Place::Answering { caller, .. }) => {
                let text = format!("{caller}'s call was lost with the server.");
                self.notice(text);
                self.back_to_list_after_failure(now);
            }
            Some(Place::AtList) => self.show_list(now),
            _ => {}
        }
    }

    /// One fresh connection at once, for a name the old one could not
    /// register; its failure ends the program (`Attempt::Again`).
    fn connect_once_more(&mut self) {
        self.server.pending.clear();
        self.server.registration = Registration::Reconnecting { refusals: 0 };
        self.out(Output::Reconnect {
            after: Duration::ZERO,
            retry: Retry::Once,
            old: OldConn::Close,
        });
    }

    /// Starts reconnecting, after `pause`; a chat in progress goes on
    /// meanwhile.
    fn lost_server(&mut self, pause: Duration, refusals: u32) {
        // No answer will come on this connection any more.
        self.server.pending.clear();
        self.server.heartbeat = None;
        self.server.features.clear();
        self.server.watching = false;
        self.server.registration = Registration::Reconnecting { refusals };
        let in_chat = matches!(
            self.place(),
            Some(Place::Chatting(_) | Place::Rejoining { .. } | Place::Leaving { .. })
        );
        let old = if in_chat && self.server.secret.is_some() {
            OldConn::KeepUntilRegistered
        } else {
            OldConn::Close
        };
        self.out(Output::Reconnect {
            after: pause,
            retry: Retry::UntilBack,
            old,
        });
    }

    fn on_server_back(&mut self, now: Instant, advertise: SocketAddr) {
        let Registration::Reconnecting { refusals } = self.server.registration else {
            return;
        };
        if advertise != self.settings.advertise {
            // The machine moved to another network: say where we are now.
            self.settings.advertise = advertise;
            if matches!(self.stage, Stage::Registered { .. }) {
                self.notice(format!(
                    "Your address changed: peers can now reach you at {advertise}."
                ));
            }
        }
        self.server.registration = Registration::Reregistering { refusals };
        self.server.last_heard = now;
        let ours = client_features(self.settings.answering);
        self.send(now, Request::Features(ours), Pending::Features);
        let name = match &self.stage {
            Stage::Registered { me, .. } => me.clone(),
            Stage::Registering { name, .. } => name.clone(),
            Stage::Naming | Stage::Done(_) => return,
        };
        // Our own registration, if the server still has it (the old
        // connection may linger), is taken back at once with its secret.
        let request = Request::Register {
            name,
            advertise: self.settings.advertise,
            secret: self.server.secret,
        };
        self.send(now, request, Pending::Register);
    }

    // ---- peers ---------------------------------------------------------

    fn on_hello(&mut self, now: Instant, hello: EarlyHello) {
        let me = self.me().unwrap_or_default().to_string();
        let caller_is_me = self.is_me(&hello.caller);
        let expected =
            |call: &CallId, token: &Token| *call == hello.call && token.matches(&hello.token);
        let accept = match self.place() {
            Some(Place::Connecting {
                caller,
                call,
                token,
                ..
            }) if name_key(caller) == name_key(&hello.caller) && expected(call, token) => {
                Some(Accept::Caller(caller.clone()))
            }
            Some(
                Place::Calling {
                    echo: Echo::Expected { call, token },
                    ..
                }
                | Place::Dialing {
                    echo: Echo::Expected { call, token },
                    ..
                },
            ) if caller_is_me && expected(call, token) => Some(Accept::Echo),
            _ => None,
        };
        let link = hello.link;
        match accept {
            Some(accept) => {
                // The token is used up: a replay finds nothing expected.
                let state = LinkState::new(link, now);
                let mut connected = None;
                match (accept, self.place_mut()) {
                    (
                        Accept::Echo,
                        Some(Place::Calling { echo, .. } | Place::Dialing { echo, .. }),
                    ) => *echo = Echo::Attached(state),
                    (Accept::Caller(caller), Some(place)) => {
                        let call = hello.call;
                        *place = Place::Chatting(Box::new(Chat {
                            peer: caller.clone(),
                            call,
                            link: state,
                            route: hello.route,
                            echo: None,
                            ending: None,
                            role: Role::Callee,
                            resume: Resume::default(),
                        }));
                        let how = match hello.route {
                            Route::Relayed => " (relayed through the server: no direct route)",
                            Route::Direct => "",
                        };
                        connected = Some(format!(
                            "{caller} connected{how}. Type a message and press ENTER; q + ENTER ends the chat."
                        ));
                    }
                    _ => return,
                }
                self.out(Output::Open { link });
                // Our FEATURES go only to a caller that sent its own: an
                // older caller gets exactly the greeting it knows.
                self.send_peer(link, PeerMessage::Welcome { name: me });
                if let Some(text) = connected {
                    self.notice(text);
                    if self.server_has(FEATURE_SESSION) {
                        // The call became a chat: no recall wait follows
                        // it, however short it is.
                        let call = hello.call;
                        self.send(now, Request::Linked { call }, Pending::Linked);
                    }
                }
            }
            None if self.announced.contains(&hello.call) => {
                // A call we know of, with a wrong, replayed or expired token.
                self.refuse(link, "wrong or expired token for this call");
            }
            None if self.early.len() < MAX_EARLY => self.early.push(hello),
            None => self.refuse(link, "no such call expected"),
        }
    }

    fn on_dialed(&mut self, now: Instant, call: CallId, result: Result<Dialed, DialError>) {
        if let Some(Place::Rejoining { chat, dialing, .. }) = self.place_mut()
            && chat.call == call
        {
            *dialing = false;
            match result {
                Ok(Dialed {
                    link,
                    route,
                    rejoined: Some(received),
                    ..
                }) => self.rejoined(now, link, route, received),
                Ok(dialed) => self.out(Output::Close { link: dialed.link }),
                // Not yet: the next try comes after REJOIN_EVERY.
                Err(_) => {}
            }
            return;
        }
        let dialing = matches!(
            self.place(),
            Some(Place::Dialing { call: c, .. }) if *c == call
        );
        if !dialing {
            if let Ok(dialed) = result {
                self.out(Output::Close { link: dialed.link });
            }
            return;
        }
        let Some(Place::Dialing { peer, echo, .. }) = self.set_place(Place::AtList) else {
            return;
        };
        let dialed = match result {
            Ok(dialed) => dialed,
            Err(why) => {
                self.notice(format!("Could not reach {peer}: {why}."));
                if let Echo::Attached(echo) = echo {
                    self.out(Output::Close { link: echo.id });
                }
                self.send(now, Request::Hangup { call }, Pending::Hangup);
                return self.back_to_list_after_failure(now);
            }
        };
        let text = if self.is_me(&peer) {
            "Chatting with yourself: every line you send comes back. q + ENTER ends the chat."
                .to_string()
        } else if dialed.route == Route::Relayed {
            format!(
                "Connected to {peer} (relayed through the server at {}: no direct route). Type a message and press ENTER; q + ENTER ends the chat.",
                dialed.addr
            )
        } else {
            format!(
                "Connected to {peer} at {}. Type a message and press ENTER; q + ENTER ends the chat.",
                dialed.addr
            )
        };
        self.notice(text);
        let echo = match echo {
            Echo::Attached(echo) => Some(echo),
            _ => None,
        };
        let mut link = LinkState::new(dialed.link, now);
        link.announced = true;
        // A chat with ourselves has no link to lose to the network.
        let key = (!self.is_me(&peer)).then_some(dialed.key);
        self.set_place(Place::Chatting(Box::new(Chat {
            peer,
            call,
            link,
            route: dialed.route,
            echo,
            ending: None,
            role: Role::Caller,
            resume: Resume {
                key,
                ..Resume::default()
            },
        })));
    }

    fn on_peer(&mut self, now: Instant, link: LinkId, msgs: PeerBatch) {
        if let Some(Place::Leaving {
            peer,
            link: leaving,
            ..
        }) = self.place()
            && *leaving == link
        {
            // What the peer sent before it read our BYE is still its say.
            let peer = peer.clone();
            let mut texts = Lines::default();
            let mut bye = false;
            for msg in msgs.iter() {
                match msg {
                    PeerItem::Msg(text) => texts.push(text),
                    PeerItem::Other(PeerMessage::Bye) => {
                        bye = true;
                        break;
                    }
                    PeerItem::Other(_) => {}
                }
            }
            if !texts.is_empty() {
                self.out(Output::PeerLines { name: peer, texts });
            }
            if bye {
                self.left(now);
            }
            return;
        }
        let Some(chat) = self.chat_mut() else {
            return;
        };
        let peer = chat.peer.clone();
        let state = if chat.link.id == link {
            &mut chat.link
        } else if let Some(echo) = chat.echo.as_mut().filter(|e| e.id == link) {
            // The incoming end of a chat with ourselves carries our lines
            // back; its end is the outgoing end's end.
            echo
        } else {
            return;
        };
        state.last_heard = now;
        let main = chat.link.id == link;
        // How many of the batch's texts are shown: those before a BYE.
        let mut shown = 0;
        let mut ping = None;
        let mut pongs = Vec::new();
        let mut bye = false;
        let mut answer_features = false;
        let (mut received, mut acked, mut resumable, mut resumes) = (0u64, None, None, None);
        let mut received_bytes = 0;
        // A run of MSGs is counted as a whole: their texts, which the
        // reader's thread wrote, are not touched here, only shown.
        for run in msgs.runs() {
            let state = if main {
                &mut chat.link
            } else {
                chat.echo.as_mut().expect("checked above")
            };
            let msg = match run {
                PeerRun::Msgs { lines, bytes } => {
                    if main {
                        received += lines as u64;
                        received_bytes += bytes;
                    }
                    shown += lines;
                    continue;
                }
                PeerRun::Other(msg) => msg,
            };
            match *msg {
                PeerMessage::Ack(upto) if main => acked = acked.max(Some(upto)),
                PeerMessage::Resumable(key) if main => resumable = Some(key),
                // Only the latest PING of a batch is answered: a flood of
                // PINGs costs one PONG per batch, not one each.
                PeerMessage::Ping(number) => ping = Some(number),
                PeerMessage::Pong(number) => pongs.push(state.ponged(number)),
                PeerMessage::Features(ref words) => {
                    resumes = Some(words.iter().any(|w| w == FEATURE_RESUME));
                    state.numbered = words.iter().any(|w| w == FEATURE_PING_ID);
                    state.acks_bye = words.iter().any(|w| w == FEATURE_BYE_ACK);
                    state.long_lines = words.iter().any(|w| w == FEATURE_LONG_LINES);
                    answer_features |= !std::mem::replace(&mut state.announced, true);
                }
                PeerMessage::Bye if main => {
                    bye = true;
                    break;
                }
                _ => {}
            }
        }
        if let Some(number) = ping {
            let state = if main {
                &mut chat.link
            } else {
                chat.echo.as_mut().expect("checked above")
            };
            state.last_sent = now;
            self.send_peer(link, PeerMessage::Pong(number));
        }
        if answer_features {
            // Without `resume` once this chat gave it up.
            let given_up = self.chat().is_some_and(|c| c.resume.given_up);
            let features = Core::features_but(given_up.then_some(FEATURE_RESUME));
            self.send_peer(link, features);
        }
        if main && let Some(chat) = self.chat_mut() {
            let resume = &mut chat.resume;
            let mut announce = None;
            if let Some(resumes) = resumes {
                // The caller's key goes only to a callee that can use it.
                if resumes && !resume.peer_resumes && chat.role == Role::Caller && !resume.given_up
                {
                    announce = resume.key;
                }
                resume.peer_announced(resumes);
            }
            // Only the callee takes a key: the caller made its own.
            if chat.role == Role::Callee && resumable.is_some() {
                resume.key = resumable;
            }
            resume.received += received;
            resume.untold_bytes += received_bytes;
            // Also what came before the two agreed, once they have.
            if resume.active() && resume.received > resume.told {
                resume.ack_due.get_or_insert(now + ACK_DELAY);
            }
            if let Some(upto) = acked {
                let before = resume.acked();
                resume.acknowledge(upto);
                resume.note_acknowledged(now, before);
            }
            let ack_now = resume.untold_bytes >= ACK_AFTER_BYTES;
            if let Some(key) = announce {
                self.send_peer(link, PeerMessage::Resumable(key));
            }
            if ack_now {
                self.acknowledge_now();
            }
        }
        if shown > 0 {
            self.out(Output::PeerLines {
                name: peer,
                texts: msgs.into_texts(shown),
            });
        }
        if main && let Some(&pong) = pongs.iter().max() {
            self.peer_answered(now, pong);
        }
        if bye {
            // Every line before it was read: say so, so the peer may close.
            self.send_peer(link, PeerMessage::Bye);
            self.peer_finished(now, PeerGone::Bye);
        }
    }

    /// The peer answered a PING. If the server had said it hung up, and no
    /// BYE came, the peer only lost the server: the chat goes on, and we ask
    /// the server to count us busy again.
    fn peer_answered(&mut self, now: Instant, pong: u64) {
        let Some(chat) = self.chat_mut() else {
            return;
        };
        let answers_probe = chat.ending.as_ref().is_some_and(|e| {
            e.server_done && !e.link_done && e.probe.is_some_and(|probe| pong >= probe)
        });
        if !answers_probe {
            return;
        }
        chat.ending = None;
        let name = chat.peer.clone();
        self.notice(format!(
            "{name} lost the registration server; the chat goes on."
        ));
        if self.online() {
            self.send(now, Request::Resume { name }, Pending::Resume);
        }
    }

    // ---- chats that survive the network ---------------------------------

    /// The chat's link broke without a BYE: keep the chat for the grace
    /// period, and (the caller) dial again.
    fn start_rejoining(&mut self, now: Instant) {
        let Some(Place::Chatting(_)) = self.place() else {
            return;
        };
        let Some(Place::Chatting(mut chat)) = self.set_place(Place::AtList) else {
            return;
        };
        // A wait for the server's word or a probe's answer is moot now. If
        // the server already ended the call, we stay busy while we wait
        // (a call to us now is refused as busy, never declined unseen).
        let server_done = chat.ending.take().is_some_and(|e| e.server_done);
        if server_done && self.online() {
            let name = chat.peer.clone();
            self.send(now, Request::Resume { name }, Pending::Resume);
        }
        self.out(Output::Close { link: chat.link.id });
        self.notice(format!("link to {} lost; reconnecting…", chat.peer));
        let until = now + self.settings.timers.grace;
        self.set_place(Place::Rejoining {
            chat,
            until,
            next_try: now,
            dialing: false,
            pending: 0,
        });
        // The caller starts at once.
        self.rejoining_timeout(now);
    }

    /// A typed line while the link is down: kept, and sent once it is
    /// back; `q` ends the chat at once.
    fn rejoining_typed(&mut self, now: Instant, typed: Typed) {
        let text = match typed {
            Typed::Line(line) => match commands::parse(&line) {
                Command::Quit => return self.end_rejoining(now, RejoinEnd::ByUser),
                Command::Text(_) | Command::Say(_) if line.is_empty() => return,
                Command::Say(text) => text.to_string(),
                Command::Text(_) => line,
                Command::Unknown(why) => return self.notice(format!("{why}; nothing was sent.")),
                Command::NoSuch(verb) => return self.notice(Command::no_such_in_chat(verb)),
                // Who is online is what one wants to know now.
                Command::Who => return self.who(now),
                Command::Help => return self.help(),
                _ => return self.notice("Not now: the link is down; q ends the chat."),
            },
            Typed::Pasted(text) => text,
            Typed::TooLong(bytes) => return self.too_long(bytes),
            Typed::Eof => {
                self.typed.push_front(Typed::Eof);
                return self.end_rejoining(now, RejoinEnd::ByUser);
            }
            Typed::Quit | Typed::Interrupt => return self.end_rejoining(now, RejoinEnd::ByUser),
        };
        let Some(Place::Rejoining { chat, pending, .. }) = self.place_mut() else {
            return;
        };
        let peer = chat.peer.clone();
        // All of it or nothing: never the tail of a line without its head.
        let kept = chat.resume.has_room(text.len());
        if kept {
            for piece in split_text(&text) {
                chat.resume.keep(piece);
            }
        }
        *pending += 1;
        let first = *pending == 1;
        if !kept {
            self.buffer_full();
        } else if first {
            self.notice(format!(
                "(not sent yet: what you type now goes to {peer} once the link is back)"
            ));
        }
    }

    /// The link is back (`received`: how many of our lines the peer has):
    /// what it has not got goes again, and the chat goes on.
    fn rejoined(&mut self, now: Instant, link: LinkId, route: Route, received: u64) {
        let Some(Place::Rejoining { .. }) = self.place() else {
            return self.out(Output::Close { link });
        };
        let Some(Place::Rejoining { mut chat, .. }) = self.set_place(Place::AtList) else {
            return;
        };
        chat.resume.acknowledge(received);
        let resend: Vec<String> = chat
            .resume
            .to_resend(received)
            .map(str::to_string)
            .collect();
        // What goes again waits for its acknowledgement from now.
        chat.resume.waiting_since = (!chat.resume.unacked.is_empty()).then_some(now);
        // The handshake told the peer our count: nothing is owed.
        chat.resume.told = chat.resume.received;
        chat.resume.untold_bytes = 0;
        chat.resume.ack_due = None;
        let mut state = LinkState::new(link, now);
        state.numbered = chat.link.numbered;
        state.acks_bye = chat.link.acks_bye;
        state.long_lines = chat.link.long_lines;
        state.announced = true;
        chat.link = state;
        chat.route = route;
        let peer = chat.peer.clone();
        self.set_place(Place::Chatting(chat));
        for line in &resend {
            self.send_peer(link, PeerMessage::Msg(line.clone()));
        }
        let n = resend.len();
        let lines = if n == 1 { "line" } else { "lines" };
        self.notice(format!("back with {peer} ({n} {lines} resent)"));
        if self.online() {
            // The server may have ended the call meanwhile: busy again.
            self.send(now, Request::Resume { name: peer }, Pending::Resume);
        }
    }

    /// `REHELLO`: the caller brings the chat back, if it is ours.
    fn on_rehello(
        &mut self,
        now: Instant,
        link: LinkId,
        caller: &str,
        key: Token,
        received: u64,
        route: Route,
    ) {
        let me = self.me().unwrap_or_default().to_string();
        let ours = |chat: &Chat| {
            name_key(&chat.peer) == name_key(caller)
                && chat.resume.key.is_some_and(|k| k.matches(&key))
        };
        let mine = match self.place() {
            Some(Place::Rejoining { chat, .. }) => ours(chat).then_some(chat.resume.received),
            Some(Place::Chatting(chat)) if ours(chat) => Some(chat.resume.received),
            _ => None,
        };
        let Some(my_received) = mine else {
            return self.refuse(link, "no such chat to bring back");
        };
        if let Some(Place::Chatting(_)) = self.place() {
            // The link broke on the caller's side first: ours is stale.
            self.start_rejoining(now);
        }
        self.out(Output::Open { link });
        self.send_peer(
            link,
            PeerMessage::Rewelcome {
                name: me,
                received: my_received,
            },
        );
        self.rejoined(now, link, route, received);
    }

    /// The broken chat's peer is not online: say how long we wait for it.
    fn peer_offline(&mut self, now: Instant) {
        if let Some(Place::Rejoining { chat, until, .. }) = self.place() {
            let peer = chat.peer.clone();
            let left = until.saturating_duration_since(now).as_secs().max(1);
            self.notice(format!(
                "{peer} is not online now; waiting up to {left} s for {peer} to come back (q ends the chat)."
            ));
        }
    }

    /// The chat whose link broke is over.
    fn end_rejoining(&mut self, now: Instant, why: RejoinEnd) {
        if !matches!(self.place(), Some(Place::Rejoining { .. })) {
            return;
        }
        let Some(Place::Rejoining { chat, .. }) = self.set_place(Place::AtList) else {
            return;
        };
        let peer = &chat.peer;
        self.notice(match why {
            RejoinEnd::ByUser => format!("You left the chat with {peer}."),
            RejoinEnd::ByPeer => format!("{peer} ended the chat."),
            RejoinEnd::GraceOver => {
                format!("The link to {peer} could not be brought back; the chat ended.")
            }
        });
        if let Some(text) = chat.resume.undelivered(peer) {
            self.notice(text);
        }
        let call = chat.call;
        self.send(now, Request::Hangup { call }, Pending::Hangup);
        if why == RejoinEnd::ByUser {
            self.back_to_list_after_failure(now);
        } else {
            self.chat_ended_for_us(now);
        }
    }

    /// The caller's timer while the link is down: ask where the peer is,
    /// then dial it.
    fn rejoining_timeout(&mut self, now: Instant) {
        let online = self.online();
        let Some(Place::Rejoining {
            chat,
            until,
            next_try,
            dialing,
            ..
        }) = self.place_mut()
        else {
            return;
        };
        if now >= *until {
            return self.end_rejoining(now, RejoinEnd::GraceOver);
        }
        if chat.role != Role::Caller || *dialing || now < *next_try || !online {
            return;
        }
        *dialing = true;
        *next_try = now + REJOIN_EVERY;
        let name = chat.peer.clone();
        self.send(now, Request::Locate { name }, Pending::Locate);
    }

    /// `OK LOCATED`: dial the peer with the chat's key; where the server
    /// relays, ask it to open the relay again first, as the last way.
    fn on_located(&mut self, now: Instant, addrs: Vec<SocketAddr>) {
        let Some(Place::Rejoining { chat, .. }) = self.place() else {
            return;
        };
        if self.server.features.iter().any(|f| f == FEATURE_REJOIN) {
            let name = chat.peer.clone();
            return self.send(now, Request::Rejoin { name }, Pending::Rejoin { addrs });
        }
        let call = chat.call;
        self.redial(call, addrs, None);
    }

    /// `OK REJOIN`: the relay is open again for our half.
    fn on_rejoin_ready(&mut self, call: CallId, token: Token, addrs: Vec<SocketAddr>) {
        let Some(Place::Rejoining { chat, .. }) = self.place_mut() else {
            return;
        };
        // The server's number for our pair now (it may have restarted).
        chat.call = call;
        self.redial(call, addrs, Some(token));
    }

    /// `EVENT REJOIN`: the caller brings our chat back through the relay;
    /// we open our half, and the caller's `REHELLO` comes through it.
    fn on_rejoin_requested(&mut self, caller: &str, call: CallId, token: Token) {
        // Still chatting: the link broke on the caller's side first, and
        // its REHELLO will say so.
        let chat = match self.place_mut() {
            Some(Place::Rejoining { chat, .. }) => chat,
            Some(Place::Chatting(chat)) if chat.resume.active() => chat,
            _ => return,
        };
        if chat.role == Role::Callee && name_key(&chat.peer) == name_key(caller) {
            chat.call = call;
            self.out(Output::JoinRelay { call, token });
        }
    }

    /// Dials the broken chat's peer with its key: `addrs` directly, then
    /// the relay if it opened for us (`relay_token`).
    fn redial(&mut self, call: CallId, addrs: Vec<SocketAddr>, relay_token: Option<Token>) {
        let me = self.me().unwrap_or_default().to_string();
        let Some(Place::Rejoining { chat, dialing, .. }) = self.place_mut() else {
            return;
        };
        let Some(key) = chat.resume.key else {
            *dialing = false;
            return;
        };
        let hello = vec![PeerMessage::Rehello {
            caller: me,
            key,
            received: chat.resume.received,
        }];
        self.out(Output::Dial {
            call,
            token: relay_token.unwrap_or(key),
            hello,
            addrs,
            relay: relay_token.is_some(),
            pace: Pace::OneAtATime,
        });
    }

    fn on_link_ended(&mut self, now: Instant, link: LinkId, end: LinkEnd) {
        self.early.retain(|e| e.link != link);
        let how = match &end {
            LinkEnd::StoppedReading => PeerGone::StoppedReading,
            LinkEnd::Closed | LinkEnd::Failed(_) => PeerGone::ConnectionLost,
        };
        match self.place_mut() {
            Some(Place::Leaving { link: leaving, .. }) if *leaving == link => self.left(now),
            // No BYE came: the link broke, whatever the server said meanwhile
            // (the peer may have lost both at once, as a laptop on the move).
            Some(Place::Chatting(chat))
                if chat.link.id == link && chat.ending.as_ref().is_some_and(|e| e.gone) =>
            {
                self.chat_gone(now)
            }
            Some(Place::Chatting(chat))
                if chat.link.id == link
                    && chat.resume.active()
                    && !chat.ending.as_ref().is_some_and(|e| e.link_done) =>
            {
                self.start_rejoining(now)
            }
            Some(Place::Chatting(chat)) if chat.link.id == link => {
                self.out(Output::Close { link });
                self.peer_finished(now, how);
            }
            Some(Place::Chatting(chat)) if chat.echo.as_ref().is_some_and(|e| e.id == link) => {
                chat.echo = None;
                self.out(Output::Close { link });
            }
            Some(Place::Calling { echo, .. } | Place::Dialing { echo, .. }) => {
                if let Echo::Attached(e) = echo
                    && e.id == link
                {
                    *echo = Echo::None;
                    self.out(Output::Close { link });
                }
            }
            _ => {}
        }
    }
}

/// How long lines typed after a chat the user did not end are taken as
/// meant for it.
#[derive(Debug, Clone, Copy)]
enum TypedForChat {
    /// Until the list is shown.
    UntilList,
    /// With no server to show a list: until then.
    Until(Instant),
}

/// Why a chat whose link broke ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RejoinEnd {
    /// `q`, Ctrl-C or end of input while reconnecting.
    ByUser,
    /// The peer is back on the server but not with us: it ended the chat.
    ByPeer,
    /// The grace period ran out.
    GraceOver,
}

/// Whom a `HELLO` that matched is from.
enum Accept {
    /// The caller the ring was for.
    Caller(String),
    /// Ourselves, calling ourselves.
    Echo,
}

/// A reply from the server, before it is matched to its request.
#[derive(Debug)]
enum Reply {
    Line(ServerLine),
    Users(Vec<UserEntry>),
}

impl Reply {
    /// What the reply was, for a notice about one that answers nothing.
    fn describe(&self) -> String {
        match self {
            Reply::Line(line) => {
                let mut text = line.to_string();
                text.truncate(text.floor_char_boundary(80));
                text
            }
            Reply::Users(users) => format!("a list of {} users", users.len()),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Quit => write!(f, "quit"),
            Exit::NameRefused(why) => write!(f, "the server refused the name {why}"),
            Exit::ServerLost(why) => write!(f, "{why}"),
        }
    }
}

#[cfg(test)]
mod tests;
