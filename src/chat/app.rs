//! The main loop: a thin driver between the threads and the core.
//!
//! [`Driver`] owns everything with I/O in it (the server connection, the
//! running links, the connections waiting for the core's verdict on their
//! `HELLO`, the terminal) and nothing that decides. Each round it takes the
//! events that are waiting, feeds them to [`Core`], carries out the core's
//! [`Output`]s, and then flushes: one batch of bytes to each link's writer,
//! one to the stdout writer. It never writes to a socket or the terminal
//! itself, so nothing a peer or the server does can keep it from the user's
//! keys.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use super::clock::Clock;
use super::core::{
    Core, DialError, Dialed, Exit, FEATURE_RESUME, Input, Kind, LinkEnd, LinkId, OldConn, Output,
    RESUME_BUFFER, ServerLoss, Settings, TransferEvent,
};
use super::link::{Handshaken, LINK_HIGH_WATER, Link};
use super::login::{self, ServerConn, ServerConnId, ServerEvent};
use super::p2pclient;
use super::p2pserver::{self, Greeting, Hello};
use super::transcript::{LOG_BACKLOG, Transcript};
use super::transfers::Transfers;
use super::ui::{MOST_TYPED_IN_FLIGHT, STDOUT_BACKLOG, StdinCredits, TypedPart, Ui};
use super::{ChatError, Event, Events};
use crate::connection::write_line;
use crate::protocol::{PeerMessage, ServerLine, action_of};
use crate::token::random_token;

/// Most events handled between two flushes of the output and the links.
const EVENTS_PER_ROUND: usize = 4096;

// Typing stops being taken once half the resend buffer waits for the
// peer; what the stdin thread already read still comes, and must fit in
// the other half, or piped lines would be refused rather than slowed.
const _: () = assert!(RESUME_BUFFER / 2 + MOST_TYPED_IN_FLIGHT <= RESUME_BUFFER);

/// Longest wait for an event: the terminal's width is checked this often.
const IDLE_WAKE: Duration = Duration::from_millis(250);

/// How long leaving waits for closed links to send their last lines.
const LAST_WRITES_WAIT: Duration = Duration::from_secs(3);

/// What the user asked to have kept of the conversation.
pub(super) struct Record {
    /// `--log FILE`.
    pub transcript: Option<Transcript>,
    /// `--timestamps`.
    pub timestamps: bool,
}

/// What the driver says for us beyond what the core decides: where peers
/// are told to dial us, whether chats can be brought back, and where
/// files go.
pub(super) struct Peering {
    pub advertise: Advertise,
    pub resumption: Resumption,
    /// Files offered and moving, and their data connections.
    pub transfers: Transfers,
}

/// Where peers are told to dial us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Advertise {
    /// `--advertise`: always this address.
    Pinned(std::net::SocketAddr),
    /// Our end of the current server connection, with the port of our
    /// listener (bound to `listener`, any address of one family): the
    /// address follows the machine from network to network, each new
    /// connection registering the address it comes from.
    Ours { listener: std::net::SocketAddr },
}

impl Advertise {
    /// Where peers should dial us while `local` is our end of the server
    /// connection; `None` when that connection's family is not one our
    /// listener takes (keep what was advertised before).
    pub fn on(self, local: std::net::SocketAddr) -> Option<std::net::SocketAddr> {
        match self {
            Advertise::Pinned(addr) => Some(addr),
            Advertise::Ours { listener } => {
                // An IPv6 listener takes IPv4 too (Linux's default); an
                // IPv4 one does not take IPv6.
                let taken = listener.is_ipv6() || local.is_ipv4();
                taken.then(|| std::net::SocketAddr::new(local.ip(), listener.port()))
            }
        }
    }
}

/// Whether chats announce `resume` to peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resumption {
    On,
    /// `--no-resume`, for measuring what resumption costs: the word is
    /// taken out of the `FEATURES` lines we send and those we receive, so
    /// the core and the peer each see a chat without the feature (no
    /// numbering, no acknowledgements), exactly as with an older peer.
    Off,
}

pub(super) struct Driver {
    core: Core,
    ui: Ui,
    /// `None` while reconnecting.
    server: Option<ServerConn>,
    /// The connection we reconnected from while in a chat, kept open until
    /// the new one holds our registration (see [`OldConn`]).
    retired: Option<ServerConn>,
    /// The connection whose events count; older ones are ignored.
    server_id: ServerConnId,
    server_name: String,
    /// Where the relay is: the server's address that answered last.
    server_addr: std::net::SocketAddr,
    events: Events,
    /// A handful at most: a map without hashing is the cheapest per line.
    links: BTreeMap<LinkId, Link>,
    /// Connections that said `HELLO`, waiting for the core's verdict.
    held: HashMap<LinkId, Handshaken>,
    next_link: LinkId,
    /// Links whose batch was handled while stdout was behind: they get
    /// their credit back once it catches up.
    owed: Vec<LinkId>,
    /// Inputs the driver itself produced while carrying out outputs.
    feedback: VecDeque<Input>,
    /// The core's outputs being carried out (kept, for its capacity).
    outputs: Vec<Output>,
    /// Links closed and still sending their last lines: leaving waits for
    /// them (bounded), so a `BYE` and the lines before it are not lost.
    closing: Vec<Receiver<()>>,
    /// Typed batches are taken only while the links keep up.
    stdin: StdinCredits,
    /// Credits held back while a link is behind.
    stdin_owed: usize,
    /// `--log FILE`.
    transcript: Option<Transcript>,
    /// `--timestamps`: `HH:MM` before each chat line.
    timestamps: bool,
    clock: Clock,
    /// How long a link's writer waits on a peer that does not read.
    write_deadline: std::time::Duration,
    advertise: Advertise,
    /// What the last registration advertised.
    advertised: std::net::SocketAddr,
    resumption: Resumption,
    /// Files offered and moving, and their data connections.
    transfers: Transfers,
}

impl Driver {
    pub(super) fn new(
        settings: Settings,
        ui: Ui,
        stdin: StdinCredits,
        server: ServerConn,
        events: Events,
        record: Record,
        peering: Peering,
    ) -> Driver {
        let server_name = settings.server_name.clone();
        let write_deadline = settings.timers.write;
        let advertised = settings.advertise;
        Driver {
            core: Core::new(settings, Instant::now()),
            ui,
            server_id: server.id,
            server_addr: server.server_addr,
            server: Some(server),
            retired: None,
            server_name,
            events,
            links: BTreeMap::new(),
            held: HashMap::new(),
            next_link: 1,
            owed: Vec::new(),
            feedback: VecDeque::new(),
            outputs: Vec::new(),
            closing: Vec::new(),
            stdin,
            stdin_owed: 0,
            transcript: record.transcript,
            timestamps: record.timestamps,
            clock: Clock::new(),
            write_deadline,
            advertise: peering.advertise,
            advertised,
            resumption: peering.resumption,
            transfers: peering.transfers,
        }
    }

    pub(super) fn run(mut self, inbox: Receiver<Event>) -> Result<(), ChatError> {
        self.carry_out();
        loop {
            self.flush();
            if let Some(exit) = self.core.exit().cloned() {
                self.await_last_writes();
                return match &exit {
                    Exit::Quit => Ok(()),
                    Exit::NameRefused(_) => Err(ChatError::Name(
                        crate::text::shown(&exit.to_string()).into_owned(),
                    )),
                    Exit::ServerLost(why) => {
                        Err(ChatError::ServerLost(crate::text::shown(why).into_owned()))
                    }
                    Exit::NotAServer(answered) => Err(ChatError::NotAServer {
                        server: self.server_name.clone(),
                        answered: crate::text::shown(answered).into_owned(),
                    }),
                };
            }
            let now = Instant::now();
            let wait = self
                .core
                .poll_timeout()
                .map_or(IDLE_WAKE, |t| t.saturating_duration_since(now))
                .min(IDLE_WAKE);
            match inbox.recv_timeout(wait) {
                Ok(event) => {
                    self.on_event(event);
                    // Take whatever else is already waiting, so that a burst
                    // costs one flush, not one per event.
                    for _ in 0..EVENTS_PER_ROUND {
                        let Ok(event) = inbox.try_recv() else { break };
                        self.on_event(event);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            let now = Instant::now();
            if self.core.poll_timeout().is_some_and(|t| t <= now) {
                self.core.handle_timeout(now);
                self.carry_out();
            }
            self.ui.tick();
        }
    }

    fn feed(&mut self, input: Input) {
        self.core.handle(Instant::now(), input);
        self.carry_out();
    }

    /// Feeds a batch at one instant: a thousand piped lines cost one clock
    /// read, not a thousand.
    fn feed_all(&mut self, inputs: impl IntoIterator<Item = Input>) {
        let now = Instant::now();
        for input in inputs {
            self.core.handle(now, input);
            self.carry_out();
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Typed(typed) => {
                self.ui.typed();
                self.feed_all(typed.into_parts().into_iter().map(|part| match part {
                    TypedPart::Lines(lines) => Input::TypedLines(lines),
                    TypedPart::Other(typed) => Input::Typed(typed),
                }));
                self.stdin_owed += 1;
            }
            // Nothing to do but wake up: `flush` gives the credits back.
            Event::LinkDrained { .. } | Event::StdoutDrained | Event::LogDrained => {}
            Event::Keys(keys) => {
                for key in keys {
                    let typing = self.core.line_for();
                    for typed in self.ui.key(key, typing, || self.core.names()) {
                        self.feed(Input::Typed(typed));
                    }
                }
                // Whether we are typing is the core's to tell the peer.
                if let Some(draft) = self.ui.draft_changed() {
                    self.feed(Input::Draft(draft));
                }
            }
            Event::Server { conn, event } if conn == self.server_id => {
                let input = match event {
                    // When it came is the driver's to say: the core reads no
                    // clock.
                    ServerEvent::Line(ServerLine::Missed { caller }) => Input::MissedCall {
                        caller,
                        at: self.clock.hhmm(),
                    },
                    ServerEvent::Line(line) => Input::Server(line),
                    ServerEvent::Users(users) => Input::Users(users),
                    ServerEvent::Lost(why) => Input::ServerLost(why),
                };
                self.feed(input);
            }
            // A connection already replaced has nothing more to say.
            Event::Server { .. } => {}
            Event::Reconnected(conn, reader) => {
                if conn.id != self.server_id || self.server.is_some() {
                    return;
                }
                self.server_addr = conn.server_addr;
                // A new connection may come from a new network.
                if let Some(advertise) = self.advertise.on(conn.local_addr) {
                    self.advertised = advertise;
                }
                self.server = Some(conn);
                if let Err(e) = reader.start() {
                    return self.feed(Input::ServerLost(ServerLoss::Io(e.to_string())));
                }
                self.feed(Input::ServerBack {
                    advertise: self.advertised,
                });
            }
            Event::Hello(Hello {
                greeting: Greeting::FileKnock { id },
                conn,
                ..
            }) => {
                if let Some(input) = self.transfers.knocked(id, conn) {
                    self.feed(input);
                }
            }
            Event::FileProven { id, keys, conn } => {
                if let Some(input) = self.transfers.proven(id, keys, conn) {
                    self.feed(input);
                }
            }
            Event::Transfer { id, event } => {
                // A file received is whole at its name; one sent is done
                // only once the receiver says so (`FILE-END done`, then
                // `StopTransfer`): bytes written into a link that broke
                // may go again.
                if matches!(event, TransferEvent::Finished { saved_as: Some(_) }) {
                    self.transfers.finished(id);
                }
                self.feed(Input::Transfer { id, event });
            }
            Event::Hello(hello) => {
                let link = self.new_link_id();
                let route = hello.conn.route;
                self.held.insert(link, hello.conn);
                self.feed(match hello.greeting {
                    // A KNOCK shows no value (`token` is `None`).
                    Greeting::Call { call, token } => Input::Hello {
                        link,
                        caller: hello.caller,
                        call,
                        token,
                        route,
                    },
                    Greeting::Rejoin { key, received } => Input::Rehello {
                        link,
                        caller: hello.caller,
                        key,
                        received,
                        route,
                    },
                    Greeting::FileKnock { .. } => return,
                });
            }
            Event::Dialed { call, result } => {
                let result = result.and_then(|dialed| {
                    // The chat's secret for bringing it back, should its
                    // link break: the core has no randomness of its own.
                    // Drawn first, so that a failure leaves no link open.
                    let key = random_token().map_err(|e| DialError::Start(e.to_string()))?;
                    let link = self.new_link_id();
                    let route = dialed.conn.route;
                    let started =
                        Link::start(link, dialed.conn, self.events.clone(), self.write_deadline)
                            .map_err(|e| DialError::Start(e.to_string()))?;
                    self.links.insert(link, started);
                    self.transfers.dialed(dialed.addr);
                    let rejoined = match dialed.answer {
                        PeerMessage::Rewelcome { received, .. } => Some(received),
                        _ => None,
                    };
                    Ok(Dialed {
                        link,
                        addr: dialed.addr,
                        route,
                        key,
                        rejoined,
                        strangers: dialed.strangers,
                    })
                });
                self.feed(Input::Dialed { call, result });
            }
            Event::Peer { link, msgs } => {
                let mut msgs = msgs;
                if self.resumption == Resumption::Off {
                    msgs.others_mut().for_each(without_resume);
                }
                self.feed(Input::Peer { link, msgs });
                self.owed.push(link);
            }
            Event::LinkEnded { link, end } => self.feed(Input::LinkEnded { link, end }),
        }
    }

    fn new_link_id(&mut self) -> LinkId {
        let id = self.next_link;
        self.next_link += 1;
        id
    }

    /// Carries out what the core asked for, and what that feeds back.
    fn carry_out(&mut self) {
        loop {
            let mut outputs = std::mem::take(&mut self.outputs);
            self.core.take_outputs(&mut outputs);
            for output in outputs.drain(..) {
                self.apply(output);
            }
            // The buffer's room is kept for the next round.
            self.outputs = outputs;
            let Some(input) = self.feedback.pop_front() else {
                return;
            };
            self.core.handle(Instant::now(), input);
        }
    }

    fn apply(&mut self, mut output: Output) {
        if self.resumption == Resumption::Off {
            match &mut output {
                Output::Peer { msg, .. } => without_resume(msg),
                Output::Dial { hello, .. } => hello.iter_mut().for_each(without_resume),
                _ => {}
            }
        }
        match output {
            Output::Server(request) => {
                if let Some(server) = &self.server
                    && let Err(why) = server.send(request)
                {
                    self.feedback.push_back(Input::ServerLost(why));
                }
            }
            Output::Peer { link, msg } => {
                if let (Some(transcript), PeerMessage::Msg(text)) = (&self.transcript, &msg) {
                    transcript.line(&self.clock.stamp(), &format!("me: {text}"));
                }
                if let Some(running) = self.links.get_mut(&link) {
                    running.send(&msg);
                }
            }
            Output::PeerTexts { link, texts } => {
                if let Some(transcript) = &self.transcript {
                    let stamp = self.clock.stamp();
                    for text in texts.iter() {
                        transcript.line(&stamp, &format!("me: {text}"));
                    }
                }
                if let Some(running) = self.links.get_mut(&link) {
                    running.send_texts(&texts);
                }
            }
            Output::Open { link } => {
                let Some(conn) = self.held.remove(&link) else {
                    return;
                };
                match Link::start(link, conn, self.events.clone(), self.write_deadline) {
                    Ok(running) => {
                        self.links.insert(link, running);
                    }
                    Err(e) => self.feedback.push_back(Input::LinkEnded {
                        link,
                        end: LinkEnd::Failed(e.to_string()),
                    }),
                }
            }
            Output::Refuse {
                link,
                code,
                message,
            } => {
                if let Some(mut conn) = self.held.remove(&link) {
                    // A few bytes on a fresh socket, with a write timeout
                    // set by the handshake: this cannot stall the loop.
                    let refusal = PeerMessage::Error { code, message };
                    let _ = write_line(&mut conn.stream, &refusal);
                }
            }
            Output::EndSending { link } => {
                if let Some(running) = self.links.get_mut(&link) {
                    running.end_sending();
                }
            }
            Output::Close { link } => {
                self.held.remove(&link);
                if let Some(running) = self.links.remove(&link) {
                    self.closing.push(running.close());
                }
                self.owed.retain(|l| *l != link);
            }
            Output::Prove { link, value } => {
                if let Some(conn) = self.held.remove(&link) {
                    // Its HELLO comes back as a new greeting.
                    p2pserver::prove(conn, value, self.events.clone());
                }
            }
            Output::Dial {
                call,
                keys,
                caller,
                hello,
                addrs,
                relay,
                pace,
            } => p2pclient::spawn(
                p2pclient::Dial {
                    call,
                    keys,
                    caller,
                    hello,
                    addrs,
                    relay,
                    pace,
                    server: self.server_addr,
                },
                self.events.clone(),
            ),
            Output::JoinRelay { call, token } => {
                p2pserver::join_relay(self.server_addr, call, token, self.events.clone())
            }
            Output::Reconnect { after, retry, old } => {
                let old_conn = self.server.take();
                if old == OldConn::KeepUntilRegistered && old_conn.is_some() {
                    self.retired = old_conn;
                }
                self.server_id += 1;
                let started = login::reconnect(
                    self.server_name.clone(),
                    self.server_id,
                    after,
                    retry,
                    self.events.clone(),
                );
                if let Err(e) = started {
                    let text = format!("Cannot reconnect to the server: {e}.");
                    self.ui.line(Kind::Notice, &text);
                }
            }
            Output::Registered => self.retired = None,
            Output::Line { kind, text } => {
                if let (Some(transcript), Kind::Notice) = (&self.transcript, kind) {
                    transcript.line(&self.clock.stamp(), &text);
                }
                self.ui.line(kind, &text);
            }
            Output::PeerLines { name, texts } => {
                if let Some(transcript) = &self.transcript {
                    for text in texts.iter() {
                        let line = match action_of(&name, text) {
                            Some(action) => format!("* {name} {action}"),
                            None => format!("{name}: {text}"),
                        };
                        transcript.line(&self.clock.stamp(), &line);
                    }
                }
                let at = self.timestamps.then(|| self.clock.hhmm());
                self.ui.peer_lines(at.as_deref(), &name, &texts);
            }
            Output::Prompt(text) => self.ui.prompt(&text),
            Output::Bell => self.ui.bell(),
            Output::SetAside => self.ui.set_aside(),
            Output::BringBack => self.ui.bring_back(),
            Output::Shelve => self.ui.shelve(),
            Output::OpenFile { id, path } => {
                let opened = self.transfers.open(id, &path);
                self.feedback.push_back(opened);
            }
            Output::StartTransfer {
                id,
                direction,
                size,
                opener,
            } => {
                if let Some(input) = self.transfers.start(id, direction, size, opener) {
                    self.feedback.push_back(input);
                }
            }
            Output::TransferKeys {
                id,
                call,
                keys,
                relayed,
            } => {
                let server = self.server_addr;
                if let Some(input) = self.transfers.values(id, call, keys, relayed, server) {
                    self.feedback.push_back(input);
                }
            }
            Output::PeerReady { id } => {
                if let Some(input) = self.transfers.peer_ready(id, self.server_addr) {
                    self.feedback.push_back(input);
                }
            }
            Output::StopTransfer { id } => self.transfers.stop(id),
        }
    }

    /// Waits, at most [`LAST_WRITES_WAIT`], for closed links (and the server
    /// connection) to send what they still hold.
    fn await_last_writes(&mut self) {
        if let Some(server) = self.server.take() {
            self.closing.push(server.close());
        }
        if let Some(transcript) = self.transcript.take() {
            self.closing.push(transcript.close());
        }
        let until = Instant::now() + LAST_WRITES_WAIT;
        for written in self.closing.drain(..) {
            let left = until.saturating_duration_since(Instant::now());
            let _ = written.recv_timeout(left);
        }
    }

    /// Sends what this round wrote: to each link's writer and to stdout;
    /// and hands links their credits back while stdout keeps up.
    fn flush(&mut self) {
        let mut stalled = Vec::new();
        for (&link, running) in &mut self.links {
            if let Err(end) = running.flush() {
                stalled.push((link, end));
            }
        }
        for (link, end) in stalled {
            self.feedback.push_back(Input::LinkEnded { link, end });
        }
        if !self.feedback.is_empty() {
            self.carry_out();
        }
        // Links that finished closing need no waiting for any more.
        self.closing
            .retain(|written| written.try_recv() == Err(TryRecvError::Empty));
        self.ui.status(&self.core.status(), self.core.line_for());
        // A transfer's row and the peer's typing share the right of the
        // prompt's row.
        let note = match (
            self.core.transfer_status(Instant::now()),
            self.core.peer_typing(),
        ) {
            (Some(row), Some(typing)) => Some(format!("{typing}  {row}")),
            (row, typing) => row.or(typing),
        };
        self.ui.peer_typing(note.as_deref());
        self.ui.flush();
        let log_behind = self
            .transcript
            .as_ref()
            .is_some_and(|t| t.backlog() >= LOG_BACKLOG);
        let behind = self.links.values().any(|l| l.queued() >= LINK_HIGH_WATER)
            || !self.core.accepts_typing()
            || log_behind;
        if !behind {
            for _ in 0..std::mem::take(&mut self.stdin_owed) {
                self.stdin.give();
            }
        }
        if self.ui.backlog() < STDOUT_BACKLOG && !log_behind {
            for link in self.owed.drain(..) {
                if let Some(running) = self.links.get(&link) {
                    running.credit();
                }
            }
        }
    }
}

/// Takes `resume` out of a `FEATURES` line (`--no-resume`).
fn without_resume(msg: &mut PeerMessage) {
    if let PeerMessage::Features(words) = msg {
        words.retain(|w| w != FEATURE_RESUME);
    }
}

#[cfg(test)]
mod tests {
    use super::Advertise;

    fn addr(s: &str) -> std::net::SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_advertised_address_follows_each_server_connection_unless_pinned() {
        let ours = Advertise::Ours {
            listener: addr("0.0.0.0:7701"),
        };
        assert_eq!(ours.on(addr("10.0.0.2:50000")), Some(addr("10.0.0.2:7701")));
        assert_eq!(
            ours.on(addr("192.168.1.9:40000")),
            Some(addr("192.168.1.9:7701"))
        );
        // An IPv4 listener cannot take IPv6: keep what was advertised.
        assert_eq!(ours.on(addr("[2001:db8::1]:40000")), None);
        let dual = Advertise::Ours {
            listener: addr("[::]:7701"),
        };
        assert_eq!(dual.on(addr("10.0.0.2:1")), Some(addr("10.0.0.2:7701")));
        let pinned = Advertise::Pinned(addr("203.0.113.5:7701"));
        assert_eq!(
            pinned.on(addr("10.0.0.2:1")),
            Some(addr("203.0.113.5:7701"))
        );
    }
}
