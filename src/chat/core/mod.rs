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
//! tests (`tests.rs`) drive the core with a scripted fake world instead.
//!
//! Where things live, for a newcomer. This file holds the states and the
//! dispatch: [`Stage`] (naming → registering → registered, with a [`Place`]
//! in the flow → done; each variant holds exactly what is valid in it),
//! [`Place`] (at the list, calling, ringing out, dialing, being rung,
//! answering, connecting, chatting, bringing a link back, leaving), the
//! requests awaiting their reply in order ([`Pending`], matched in
//! `on_reply`), and where typed input goes (`take_typed`). Each room beside
//! it is a place a person moves through, with the transitions that start
//! there (each a method named for the input that causes it):
//! - `io.rs`: the inputs and outputs, and the types the drivers share;
//! - `naming.rs`: the name, `REGISTER`, the server connection and its loss;
//! - `list.rs`: the list, presence, the commands that work anywhere
//!   (`/who`, `/ignore`, `/away`…), missed calls;
//! - `calling.rs`: calls out and in, rings, their countdown and their
//!   answers (where "bob declined" is decided), `HELLO` and the dial;
//! - `chat.rs`: lines both ways, acknowledgements, and how a chat ends;
//! - `rejoining.rs`: bringing a broken link back within the grace;
//! - `typing.rs`: `bob is typing…`, both ways;
//! - `files.rs`: files offered, answered, moved and stopped, both ways.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::commands::{self, Answer, Command};
pub use crate::lines::Lines;

mod calling;
mod chat;
mod files;
mod io;
mod list;
mod naming;
mod rejoining;
mod typing;

use calling::*;
use chat::*;
use files::Files;
pub use files::{Direction, FileFacts, FileSettings, Opener, ProgressShown, TransferEvent};
pub use io::*;
use naming::*;
use rejoining::*;
pub use typing::TypingNotices;
use typing::*;

use crate::protocol::{
    CallId, ConnEnd, ErrorCode, FEATURE_AWAY, FEATURE_FILES, FEATURE_LONG_LINES, FEATURE_MISSED,
    FEATURE_PRESENCE, FEATURE_PROOF, FEATURE_REJOIN, FEATURE_RING, FEATURE_RING_TIME,
    FEATURE_SESSION, FEATURE_TRANSFER, FEATURE_TYPING, FileId, Keys, MAX_LONG_TEXT, MAX_TEXT,
    PeerBatch, PeerItem, PeerMessage, PeerRun, Presence, PresenceState, Request, ServerLine, Token,
    Typing, UserEntry, action_text, name_key, split_text, validate_name,
};

/// The features this chat announces to peers, on a `FEATURES` line after
/// `HELLO` or `WELCOME` (and `typing`, when it shows typing notices).
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

/// How long after a broken chat's peer was seen free it is asked again.
const FREE_RECHECK: Duration = Duration::from_secs(1);

/// `BYE` is answered with `BYE` once every line before it was read, and the
/// one who said it first closes only then.
const FEATURE_BYE_ACK: &str = "bye-ack";

/// Numbered `PING n` / `PONG n`: the answer names the ping it answers.
const FEATURE_PING_ID: &str = "ping-id";

/// Typed lines waiting for a place that takes them, at most, before no
/// more are read.
const TYPED_WAITING: usize = 4096;

/// One of the others online, as the list and presence told.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    /// As its owner spells it.
    name: String,
    /// Free, busy or away.
    state: PresenceState,
}

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
    /// How long a ring is counted down when the server does not say
    /// (`--ring`; an older server's `--ring-timeout`).
    pub ringing: Duration,
    /// How often a call ringing for us rings the bell again.
    pub bell_every: Duration,
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
    /// How long the server may take to answer our `REGISTER`
    /// (`--server-timeout`): past it, the connection counts as lost.
    pub answer: Duration,
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
            ringing: Duration::from_secs(30),
            bell_every: Duration::from_secs(5),
            early_hello: Duration::from_secs(3),
            drain: Duration::from_secs(2),
            ping_every: Duration::from_secs(5),
            silence: Duration::from_secs(20),
            reconnect: Duration::from_millis(500),
            answer: Duration::from_secs(10),
            leave: Duration::from_secs(10),
            grace: Duration::from_secs(60),
            write: Duration::from_secs(10),
        }
    }
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
    /// Where typed lines come from: a blank line typed at a terminal is
    /// not sent, a piped one is, as it is.
    pub typed_from: TypedFrom,
    pub timers: Timers,
    /// Whether `bob is typing…` is shown, and ours told (a terminal
    /// without `--no-typing`).
    pub typing: TypingNotices,
    /// Files: `None` takes and sends none (and does not announce `files`).
    pub files: Option<FileSettings>,
}

/// Where typed lines come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypedFrom {
    /// A person at a terminal.
    Terminal,
    /// A pipe or a file: a script, whose every line is meant.
    Pipe,
}

/// How incoming calls are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answering {
    /// They ring, and the user answers `y` or declines `n`.
    Ask,
    /// They connect at once (`--auto-answer`, and today's older peers).
    Auto,
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
    /// The server rings the peer (`OK RINGING`); its answer is awaited,
    /// and the prompt counts down.
    RingingOut {
        peer: String,
        call: CallId,
        echo: Echo,
        ring: Countdown,
    },
    /// The server set the call up; p2pclient is dialing. `proof`: each
    /// of us has values of its own, so the chat is brought back with the
    /// server's fresh values, and no key of ours goes to the peer.
    Dialing {
        peer: String,
        call: CallId,
        echo: Echo,
        proof: bool,
    },
    /// Someone is calling us (`EVENT RING`): `y` answers, `n` declines;
    /// the prompt counts down, and the bell rings again and again.
    Ringing {
        caller: String,
        call: CallId,
        ring: Countdown,
    },
    /// `ANSWER` sent; the server's reply brings the caller's token.
    Answering {
        caller: String,
        call: CallId,
    },
    /// We answered (or the call came without a ring): waiting for the
    /// caller to connect with the value `keys` expects; to its `KNOCK`, we
    /// show ours once (`shown`).
    Connecting {
        caller: String,
        call: CallId,
        keys: Keys,
        shown: bool,
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
        /// When the peer was seen online and free (not with us), and when
        /// to ask again: a peer back from a lost network is free between
        /// its `REGISTER` and its `RESUME`.
        free_since: Option<Instant>,
        recheck: Option<Instant>,
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

/// A chunk takes more typed lines up to this size, so that a chunk whose
/// first lines were dropped holds little besides what is kept.
const KEPT_CHUNK: usize = 64 * 1024;

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
        /// `LOCATE`'s values for this attempt, if the server gave any.
        keys: Option<Keys>,
        addrs: Vec<SocketAddr>,
    },
    /// `LOOKUP` of a broken chat's peer the server said hung up: gone for
    /// now, or done with us?
    Lookup,
    Answer,
    Decline,
    Watch,
    /// `AWAY`: refused by the server, we are not away after all.
    Away,
    Back,
    Resume,
    Ping,
    Features,
    Quit,
    /// `TRANSFER`: values for transfer `id`'s data connection.
    Transfer {
        id: FileId,
    },
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
    /// `/away`, with its message: calls are refused by the server, and
    /// missed calls wait until `/back`.
    away: Option<String>,
    /// After a chat ended that the user did not end: lines typed until the
    /// list is shown (or until this time, with no server) were meant for
    /// the chat, and are dropped rather than run at the list.
    typed_for_chat: Option<TypedForChat>,
    /// Calls that came while we were busy: who, and when (HH:MM).
    missed: Vec<(String, String)>,
    /// Who is online (by name key), free, busy or away, as last shown: the
    /// list, then presence changes.
    roster: std::collections::HashMap<String, Listed>,
    /// The transfers of the chat, both ways.
    files: Files,
    /// Chats started so far: the last one's [`Chat::serial`].
    chats_started: u64,
    outputs: Vec<Output>,
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
            away: None,
            missed: Vec::new(),
            typed_for_chat: None,
            roster: std::collections::HashMap::new(),
            files: Files::default(),
            chats_started: 0,
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
        let ours = client_features();
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
            Input::ServerLost(ServerLoss::NotAServer(answered))
                if matches!(self.stage, Stage::Naming | Stage::Registering { .. }) =>
            {
                // Nothing to retry, and nobody to say QUIT to: the address
                // is wrong, and the user is told so at once.
                self.stage = Stage::Done(Exit::NotAServer(answered));
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
            Input::Draft(draft) => self.on_draft(now, &draft),
            Input::FileOpened { id, result } => self.on_file_opened(now, id, result),
            Input::Transfer { id, event } => self.on_transfer(now, id, event),
        }
        self.take_typed(now);
        self.settle_files();
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
    /// Whether our `REGISTER` waits for its answer on a connection that is
    /// up: a server that accepts and never answers must not hang us.
    fn awaits_welcome(&self) -> bool {
        matches!(self.stage, Stage::Registering { .. })
            && self.connected()
            && self
                .server
                .pending
                .iter()
                .any(|p| matches!(p, Pending::Register))
    }

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
        if self.awaits_welcome() {
            at(self.server.last_sent + t.answer);
        }
        if let Some(expires) = self.files_next_timeout() {
            at(expires);
        }
        match self.place() {
            Some(Place::Connecting { until, .. } | Place::Leaving { until, .. }) => at(*until),
            Some(Place::Ringing { ring, .. } | Place::RingingOut { ring, .. }) => {
                if let Some(next) = ring.next() {
                    at(next);
                }
            }
            Some(Place::Rejoining {
                chat,
                until,
                next_try,
                dialing,
                recheck,
                ..
            }) => {
                at(*until);
                if let Some(recheck) = recheck {
                    at(*recheck);
                }
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
                if let Some(lapse) = chat.typing.lapses_at() {
                    at(lapse);
                }
                if chat.link.typing && chat.ending.is_none() {
                    chat.typing.next_due().into_iter().for_each(&mut at);
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
        if self.awaits_welcome() && now >= self.server.last_sent + t.answer {
            let secs = t.answer.as_secs_f64();
            self.on_server_lost(
                now,
                format!("it did not answer REGISTER within {secs:.0} s"),
            );
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
        let mut bell = false;
        match self.place_mut() {
            Some(Place::Leaving { until, .. }) if now >= *until => leave_over = true,
            Some(Place::Ringing { ring, .. } | Place::RingingOut { ring, .. }) => {
                bell = ring.tick(now);
            }
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
        if bell {
            self.out(Output::Bell);
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
        self.tell_typing(now);
        self.rejoining_timeout(now);
        if let Some((caller, call)) = unanswered {
            self.line(
                Kind::Notice,
                format!("{caller}'s call did not come through."),
            );
            self.send(now, Request::Hangup { call }, Pending::Hangup);
            self.back_to_list_after_failure(now);
        }
        self.files_timeout(now);
        self.take_typed(now);
        self.settle_files();
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
                Place::AtList if self.online() && self.away.is_some() => {
                    "connect to (away): ".into()
                }
                Place::AtList if self.online() => "connect to: ".into(),
                Place::AtList => "server unreachable, reconnecting (q quits): ".into(),
                Place::Calling { peer, .. } | Place::Dialing { peer, .. } => {
                    format!("calling {peer}… ")
                }
                Place::RingingOut { peer, ring, .. } => {
                    format!("ringing {peer} ({} s)… ", ring.shown)
                }
                Place::Ringing { caller, ring, .. } => {
                    format!("{caller} is calling ({} s): y/n? ", ring.shown)
                }
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

    /// What a line typed now goes to.
    pub fn line_for(&self) -> LineFor {
        match &self.stage {
            Stage::Naming => LineFor::Name,
            Stage::Registering { .. } => LineFor::List,
            Stage::Done(_) => LineFor::Answer,
            Stage::Registered { place, .. } => match place {
                Place::AtList => LineFor::List,
                Place::Ringing { .. } => LineFor::Answer,
                _ => LineFor::Chat,
            },
        }
    }

    /// The names of the others online as last seen (the list, then
    /// presence), in the order of their keys: what a Tab completes.
    pub fn names(&self) -> Vec<String> {
        let mut listed: Vec<(&String, &Listed)> = self.roster.iter().collect();
        listed.sort_unstable_by(|a, b| a.0.cmp(b.0));
        listed.into_iter().map(|(_, l)| l.name.clone()).collect()
    }

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

    fn features(&self) -> PeerMessage {
        self.features_but(None)
    }

    /// Our features, without `left_out`.
    fn features_but(&self, left_out: Option<&str>) -> PeerMessage {
        let typing = (self.settings.typing == TypingNotices::On).then_some(FEATURE_TYPING);
        PeerMessage::Features(
            PEER_FEATURES
                .iter()
                .copied()
                .chain(typing)
                .chain(files::files_feature(&self.settings))
                .filter(|&f| Some(f) != left_out)
                .map(str::to_string)
                .collect(),
        )
    }

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
            if let Some(Place::Ringing { caller, call, .. }) = self.place() {
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
            Place::Ringing { caller, call, .. } => {
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

    fn chat(&self) -> Option<&Chat> {
        match self.place() {
            Some(Place::Chatting(chat)) => Some(chat),
            _ => None,
        }
    }

    fn on_server(&mut self, now: Instant, line: ServerLine) {
        match line {
            ServerLine::Incoming { caller, call, keys } => {
                self.on_incoming(now, caller, call, keys)
            }
            ServerLine::Returning { caller, call, keys } => {
                self.on_returning(now, &caller, call, keys)
            }
            ServerLine::PeerHungUp { call, peer, end } => {
                self.on_peer_hung_up(now, call, &peer, end)
            }
            ServerLine::Gone { peer } => self.on_gone(now, &peer),
            ServerLine::FoundBusy { call, peer } => {
                self.on_unanswered(now, call, format!("{peer} is busy in another chat."))
            }
            ServerLine::RelayRequested { call } => self.on_relay_requested(now, call),
            ServerLine::RejoinRequested { caller, call, keys } => {
                self.on_rejoin_requested(&caller, call, keys)
            }
            ServerLine::Ring { caller, call, secs } => self.on_ring(now, caller, call, secs),
            ServerLine::Answered {
                peer,
                call,
                keys,
                addrs,
            } => self.on_answered(now, peer, call, keys, addrs),
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
            ServerLine::Transfer {
                peer,
                call,
                id,
                keys,
            } => self.on_transfer_values(&peer, call, id, keys),
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
                    keys,
                    addrs,
                }),
            ) => self.on_call_ready(now, cancelled, peer, call, keys, addrs),
            (
                Pending::Call { peer, cancelled },
                Reply::Line(ServerLine::Error { code, message }),
            ) => self.on_call_refused(now, cancelled, &peer, code, &message),
            (
                Pending::Call { cancelled, .. },
                Reply::Line(ServerLine::Ringing { peer, call, secs }),
            ) => self.on_ringing_out(now, cancelled, peer, call, secs),
            (Pending::Answer, Reply::Line(ServerLine::Answer { caller, call, keys })) => {
                self.on_answer_accepted(now, caller, call, keys)
            }
            (Pending::Answer, Reply::Line(ServerLine::Error { .. })) => {
                // The call ended before our answer: its end is told by the
                // event that ended it.
                if matches!(self.place(), Some(Place::Answering { .. })) {
                    self.show_list(now);
                }
            }
            (Pending::Locate, Reply::Line(ServerLine::Located { keys, addrs, .. })) => {
                self.on_located(now, keys, addrs)
            }
            (
                Pending::Rejoin {
                    keys: located,
                    addrs,
                },
                Reply::Line(ServerLine::RejoinReady { call, keys, .. }),
            ) => self.on_rejoin_ready(call, located, keys, addrs),
            // No relay this time: the direct ways only.
            (Pending::Rejoin { keys, addrs }, Reply::Line(ServerLine::Error { .. })) => {
                if let Some(Place::Rejoining { chat, .. }) = self.place() {
                    let call = chat.call;
                    self.redial(call, addrs, keys, None);
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
                self.peer_free(now)
            }
            // Busy: back with us through RESUME, or in a chat of its own;
            // either way the grace decides.
            (Pending::Lookup, Reply::Line(ServerLine::Found(_))) => {
                if let Some(Place::Rejoining {
                    free_since,
                    recheck,
                    ..
                }) = self.place_mut()
                {
                    (*free_since, *recheck) = (None, None);
                }
            }
            // Not online: gone with its network, or killed; it may come
            // back, for as long as the grace lasts. Said, so nobody waits
            // without knowing why.
            (Pending::Lookup, Reply::Line(ServerLine::Error { .. })) => self.peer_offline(now),
            (Pending::Resume, Reply::Line(ServerLine::Error { .. })) => {}
            (
                Pending::Transfer { id },
                Reply::Line(ServerLine::TransferReady { call, keys, .. }),
            ) => self.on_transfer_ready(id, call, keys),
            (Pending::Transfer { id }, Reply::Line(ServerLine::Error { message, .. })) => {
                self.on_transfer_refused(now, id, &message)
            }
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
            | (Pending::Away, Reply::Line(ServerLine::AwayDone))
            | (Pending::Back, Reply::Line(ServerLine::BackDone | ServerLine::Error { .. }))
            | (Pending::Quit, Reply::Line(ServerLine::Bye))
            | (Pending::Features, Reply::Line(ServerLine::Error { .. })) => {}
            (Pending::Features, Reply::Line(ServerLine::Features(words))) => {
                self.server.features = words
            }
            (Pending::Away, Reply::Line(ServerLine::Error { message, .. })) => {
                self.away = None;
                self.notice(format!("The server says: {message}; you are not away."));
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

    /// Whether the server announced `feature`.
    fn server_has(&self, feature: &str) -> bool {
        self.server.features.iter().any(|f| f == feature)
    }
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
                // By hand: `floor_char_boundary` needs Rust 1.91.
                let mut end = text.len().min(80);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                text
            }
            Reply::Users(users) => format!("a list of {} users", users.len()),
        }
    }
}

#[cfg(test)]
mod tests;
