//! The main loop: the chat's state machine, and the only code that prints.
//!
//! [`App`] owns the state (naming, at the list, calling, dialing, ringing,
//! chatting), the typed input not yet taken, the call it expects, and the
//! connection to the server. It handles one [`Event`] at a time from the
//! threads, and flushes the screen and the peer link once per batch. Typed
//! lines wait in a queue until the state can take them (a name typed while
//! the server is still answering is not lost, and lines typed while a call
//! is being connected are sent once it is).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::link::{self, Link, LinkId};
use super::login::{self, ServerConn, ServerEvent};
use super::p2pserver::{self, Hello};
use super::ui::{Input, Kind, Ui};
use super::{ChatError, Event, Events, p2pclient};
use crate::protocol::{
    CallId, ErrorCode, PeerMessage, Request, ServerLine, Token, UserEntry, name_key, split_text,
    validate_name,
};

/// How long the called side waits for the caller to connect after the
/// server announced the call.
const RING_TIMEOUT: Duration = Duration::from_secs(8);

/// How many recent calls the server announced to us are remembered, so a
/// `HELLO` for one of them with a wrong or spent token is refused at once.
const ANNOUNCED_MEMORY: usize = 64;

/// How long a `HELLO` that arrived before the server's announcement of its
/// call is held, waiting for that announcement.
const EARLY_HELLO_TIMEOUT: Duration = Duration::from_secs(3);

/// Most such early `HELLO`s held at once.
const MAX_EARLY: usize = 8;

/// Most events handled between two flushes of the output and the link.
const MAX_BATCH: usize = 4096;

/// How long a chat whose peer the server reports gone waits for the peer's
/// last lines to arrive over the link.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the user is in the flow.
enum State {
    /// Waiting for the user to type a name.
    Naming,
    /// `REGISTER` sent, waiting for the answer.
    Registering { name: String },
    /// At the list: a typed name calls that peer.
    AtList,
    /// `CALL` sent, waiting for the server.
    Calling { peer: String },
    /// The server set the call up; p2pclient is dialing.
    Dialing { peer: String, call: CallId },
    /// Someone called us; waiting for them to connect.
    Ringing {
        caller: String,
        call: CallId,
        until: Instant,
    },
    /// In a chat. `closing` is set once the peer's side is over.
    Chatting {
        peer: String,
        call: CallId,
        link: Link,
        closing: Option<Closing>,
    },
    /// Leaving.
    Done,
}

/// A chat the peer ended, waiting for both signals of that: the link's end
/// (BYE or close), after which no line of the peer's is still in flight, and
/// the server's `EVENT HANGUP`, after which the list no longer shows the
/// call. Whichever comes first starts a short wait for the other.
struct Closing {
    link_done: bool,
    server_done: bool,
    until: Instant,
    /// The number of the PING sent to ask whether the peer is still there
    /// after the server said it hung up; only its PONG answers.
    probe: Option<u64>,
}

impl Closing {
    fn new() -> Closing {
        Closing {
            link_done: false,
            server_done: false,
            until: Instant::now() + DRAIN_TIMEOUT,
            probe: None,
        }
    }
}

/// Where the connection to the registration server stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registration {
    /// Connected, and registered once a name is chosen.
    Online,
    /// The connection is dead and a reconnect thread is running.
    /// `refusals` counts re-registrations the server refused in a row.
    Reconnecting { refusals: u32 },
    /// Connected again; `REGISTER` sent, waiting for the answer.
    Reregistering { refusals: u32 },
}

/// A call the server told us to expect.
struct Expected {
    caller: String,
    call: CallId,
    token: Token,
}

/// The main loop's state.
pub(super) struct App {
    ui: Ui,
    server: ServerConn,
    advertise: SocketAddr,
    /// The name came from `--name`: a refusal ends the program.
    fixed_name: bool,
    me: String,
    state: State,
    /// Typed input the current state cannot take yet.
    inputs: VecDeque<Input>,
    expected: Option<Expected>,
    /// Calls the server announced to us lately (newest last).
    announced: VecDeque<CallId>,
    /// `HELLO`s that arrived before the server told us of their call.
    early: Vec<(Instant, Hello)>,
    /// When chatting with ourselves: the incoming end, whose lines we show.
    echo: Option<Link>,
    next_link: LinkId,
    events: Events,
    /// The server as the user gave it, for reconnecting.
    server_name: String,
    /// Where the registration connection stands.
    registration: Registration,
    /// Events from the connection the reconnect thread is about to hand
    /// over, which can arrive before it does.
    next_server_events: Vec<(login::ConnId, ServerEvent)>,
    /// The user cancelled a call before the server answered it: that
    /// answer is still to come, and must not be taken for a newer call's.
    stale_call_reply: bool,
    /// Set when the server refused the `--name` name.
    name_error: Option<String>,
}

impl App {
    pub(super) fn new(
        ui: Ui,
        server: ServerConn,
        advertise: SocketAddr,
        server_name: &str,
        events: Events,
    ) -> App {
        App {
            ui,
            server,
            advertise,
            fixed_name: false,
            me: String::new(),
            state: State::Naming,
            inputs: VecDeque::new(),
            expected: None,
            announced: VecDeque::new(),
            early: Vec::new(),
            echo: None,
            next_link: 1,
            events,
            server_name: server_name.to_string(),
            registration: Registration::Online,
            next_server_events: Vec::new(),
            stale_call_reply: false,
            name_error: None,
        }
    }

    /// Greets the user and registers `name`, or asks for one.
    pub(super) fn start(&mut self, name: Option<String>) {
        self.ui.line(
            Kind::Info,
            &format!(
                "Connected to the registration server at {}.",
                self.server_name
            ),
        );
        self.fixed_name = name.is_some();
        match name {
            Some(name) => self.register(name),
            None => self.ask_name(),
        }
    }

    pub(super) fn run(&mut self, inbox: Receiver<Event>) -> Result<(), ChatError> {
        loop {
            // Whatever the last round wrote goes out before we wait.
            self.flush();
            match inbox.recv_timeout(Duration::from_millis(250)) {
                Ok(event) => {
                    self.handle(event);
                    // Take whatever else is already waiting, so that a burst
                    // of lines costs one flush, not one per line.
                    for _ in 0..MAX_BATCH {
                        let Ok(event) = inbox.try_recv() else { break };
                        self.handle(event);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.check_timers();
            self.take_inputs();
            if matches!(self.state, State::Done) {
                break;
            }
            if !self.online() && self.me.is_empty() {
                // Lost before we were ever registered: nothing to go back to.
                return Err(ChatError::ServerLost(
                    "it closed the connection before registration".into(),
                ));
            }
        }
        self.flush();
        self.server.send(Request::Quit);
        match self.name_error.take() {
            Some(why) => Err(ChatError::Name(format!(
                "the server refused the name: {why}"
            ))),
            None => Ok(()),
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Input(inputs) => {
                self.ui.typed();
                self.inputs.extend(inputs);
            }
            Event::Keys(keys) => {
                for key in keys {
                    match self.ui.key(key) {
                        Some(Input::Interrupt) => self.interrupt(),
                        Some(input) => self.inputs.push_back(input),
                        None => {}
                    }
                }
            }
            // A connection already replaced has nothing more to say; one
            // not yet taken over (its reader started before the reconnect
            // thread reported it) is heard once it is.
            Event::Server { conn, .. } if conn < self.server.id => {}
            Event::Server { conn, event } if conn > self.server.id => {
                self.next_server_events.push((conn, event));
            }
            Event::Server { event, .. } => match event {
                ServerEvent::Line(line) => self.on_server(line),
                ServerEvent::Users(users) => self.on_users(users),
                ServerEvent::Lost(why) => self.on_server_lost(why),
            },
            Event::Hello(hello) => self.on_hello(hello),
            Event::Dialed { call, result } => self.on_dialed(call, result),
            Event::Peer { link, msgs, closed } => {
                for msg in msgs {
                    self.on_peer(link, Some(msg));
                }
                if closed {
                    self.on_peer(link, None);
                }
            }
            Event::Reconnected(conn) => self.on_reconnected(conn),
        }
    }

    /// Sends what the last batch of events wrote: to the screen and to the
    /// peer.
    fn flush(&mut self) {
        let status = self.status();
        self.ui.status(&status);
        self.ui.flush();
        if let Some(echo) = &mut self.echo {
            let _ = echo.flush();
        }
        if let State::Chatting { link, .. } = &mut self.state
            && link.flush().is_err()
        {
            self.peer_finished(true);
        }
    }

    /// Feeds queued input to the state, as long as the state can take it.
    /// At the list, a cancelled call's answer is awaited first.
    fn take_inputs(&mut self) {
        while !(self.stale_call_reply && matches!(self.state, State::AtList))
            && matches!(
                self.state,
                State::Naming | State::AtList | State::Chatting { closing: None, .. }
            )
        {
            let Some(input) = self.inputs.pop_front() else {
                return;
            };
            match (&self.state, input) {
                (State::Naming, Input::Eof | Input::Quit) => self.state = State::Done,
                (State::Naming, Input::Line(line)) => {
                    let name = line.trim().to_string();
                    match validate_name(&name) {
                        Ok(()) => self.register(name),
                        Err(e) => {
                            self.ui
                                .line(Kind::Notice, &format!("That name won't do: {e}."));
                            self.ask_name();
                        }
                    }
                }
                (State::AtList, Input::Eof | Input::Quit) => self.state = State::Done,
                (State::AtList, Input::Line(line)) => self.at_list(line.trim()),
                (State::Chatting { .. }, Input::Eof) => {
                    // EOF ends the chat like q, and stays queued so that
                    // it then ends the program too.
                    self.inputs.push_front(Input::Eof);
                    self.quit_chat();
                }
                (State::Chatting { .. }, Input::Quit) => self.quit_chat(),
                (State::Chatting { .. }, Input::Line(line)) => self.chat_line(line),
                (_, Input::Interrupt) => self.interrupt(),
                // Not a state that takes input (the loop admits none):
                // keep it for when one does.
                (_, input) => {
                    self.inputs.push_front(input);
                    return;
                }
            }
        }
    }

    /// The terminal prompt for the current state: where the user is.
    fn status(&self) -> String {
        match &self.state {
            State::Naming => "your name: ".into(),
            State::Registering { name } => format!("registering {name}… "),
            State::AtList if self.online() => "connect to: ".into(),
            State::AtList => "server unreachable, reconnecting (q quits): ".into(),
            State::Calling { peer } | State::Dialing { peer, .. } => format!("calling {peer}… "),
            State::Ringing { caller, .. } => format!("{caller} is calling… "),
            State::Chatting {
                peer,
                closing: Some(_),
                ..
            } => format!("{peer} left… "),
            State::Chatting { peer, link, .. } if link.relayed => {
                format!("to {peer} (relayed)> ")
            }
            State::Chatting { peer, .. } => format!("to {peer}> "),
            State::Done => String::new(),
        }
    }

    /// Ctrl-C: ends the chat, or cancels the call being set up, or, at the
    /// list, ends the program.
    fn interrupt(&mut self) {
        self.inputs.clear();
        match &self.state {
            State::Chatting { closing: None, .. } => self.quit_chat(),
            State::Chatting { .. } => self.finish_chat(true),
            State::Calling { peer } => {
                let text = format!("Call to {peer} cancelled.");
                self.ui.line(Kind::Notice, &text);
                // The server's answer is still to come: hold the next call
                // until it has, and hang that one up if it was set up.
                self.stale_call_reply = true;
                self.show_list();
            }
            State::Dialing { peer, call }
            | State::Ringing {
                caller: peer, call, ..
            } => {
                let text = format!("Call with {peer} cancelled.");
                let call = *call;
                self.ui.line(Kind::Notice, &text);
                self.expected = None;
                self.server.send(Request::Hangup { call });
                self.show_list();
            }
            State::Naming | State::Registering { .. } | State::AtList | State::Done => {
                self.state = State::Done;
            }
        }
    }

    fn ask_name(&mut self) {
        self.state = State::Naming;
        self.ui.prompt("Enter your visible name: ");
    }

    fn register(&mut self, name: String) {
        self.server.send(Request::Register {
            name: name.clone(),
            advertise: self.advertise,
        });
        self.state = State::Registering { name };
    }

    fn at_list(&mut self, typed: &str) {
        if typed == "q" {
            self.state = State::Done;
        } else if typed.is_empty() {
            self.show_list();
        } else if !self.online() {
            self.ui.line(
                Kind::Notice,
                "Cannot call anyone until the registration server is back; q quits.",
            );
            self.show_list();
        } else if let Err(e) = validate_name(typed) {
            self.ui.line(
                Kind::Notice,
                &format!("No user can be named {typed:?}: {e}."),
            );
            self.show_list();
        } else {
            self.server.send(Request::Call {
                name: typed.to_string(),
            });
            self.state = State::Calling {
                peer: typed.to_string(),
            };
        }
    }

    /// Back to the list: asks the server for a fresh one.
    fn show_list(&mut self) {
        self.state = State::AtList;
        if self.online() {
            self.server.send(Request::List);
        } else {
            self.ui.line(
                Kind::Notice,
                "No list: the registration server is unreachable; reconnecting…",
            );
            self.ui.prompt("Type q to quit, or wait for the server: ");
        }
    }

    fn on_users(&mut self, users: Vec<UserEntry>) {
        if !matches!(self.state, State::AtList) {
            return;
        }
        self.ui
            .line(Kind::Info, &format!("Online users ({}):", users.len()));
        for user in users {
            let mut row = format!("  {}", user.name);
            if name_key(&user.name) == name_key(&self.me) {
                row.push_str(" (you)");
            }
            if user.busy {
                row.push_str(" [busy]");
            }
            self.ui.line(Kind::Info, &row);
        }
        self.ui.prompt("Enter a name to chat with, or q to quit: ");
    }

    fn on_server(&mut self, line: ServerLine) {
        match line {
            ServerLine::Welcome {
                name,
                heartbeat_secs,
            } => {
                if let Registration::Reregistering { .. } = self.registration {
                    self.registration = Registration::Online;
                    self.server
                        .heartbeat(Duration::from_secs(heartbeat_secs.max(1)));
                    self.ui
                        .line(Kind::Notice, "Reconnected to the registration server.");
                    match &self.state {
                        State::Chatting {
                            peer,
                            closing: None,
                            ..
                        } => {
                            let name = peer.clone();
                            self.server.send(Request::Resume { name });
                        }
                        State::AtList => self.show_list(),
                        _ => {}
                    }
                } else if let State::Registering { .. } = self.state {
                    self.server
                        .heartbeat(Duration::from_secs(heartbeat_secs.max(1)));
                    self.ui.line(
                        Kind::Info,
                        &format!(
                            "Welcome, {name}! Peers can reach you at {}.",
                            self.advertise
                        ),
                    );
                    self.me = name;
                    self.show_list();
                }
            }
            ServerLine::CallReady {
                peer,
                call,
                token,
                addrs,
            } => self.on_call_ready(peer, call, token, addrs),
            ServerLine::Incoming {
                caller,
                call,
                token,
            } => self.on_incoming(caller, call, token),
            ServerLine::PeerHungUp { call, peer } => self.on_peer_hung_up(call, &peer),
            ServerLine::RelayRequested { call } => self.on_relay_requested(call),
            ServerLine::Resumed { peer, call } => match &mut self.state {
                State::Chatting {
                    peer: current,
                    call: current_call,
                    closing: None,
                    ..
                } if name_key(current) == name_key(&peer) => *current_call = call,
                // The chat ended while the server was answering: free the
                // call it just made, or we would stay busy.
                _ => self.server.send(Request::Hangup { call }),
            },
            ServerLine::Error { code, message } => self.on_server_error(code, &message),
            ServerLine::Users { .. }
            | ServerLine::User(_)
            | ServerLine::Found(_)
            | ServerLine::HungUp { .. }
            | ServerLine::Pong
            | ServerLine::Bye
            | ServerLine::Features(_)
            | ServerLine::Relayed { .. } => {}
        }
    }

    fn on_server_error(&mut self, code: ErrorCode, message: &str) {
        if let Registration::Reregistering { refusals } = self.registration {
            // Our old entry may linger until the server notices the old
            // connection is dead, or someone took the name meanwhile: try
            // again later and later, on a fresh connection; say so once.
            let refusals = refusals + 1;
            if refusals == 1 {
                self.ui.line(
                    Kind::Notice,
                    &format!(
                        "The server will not register {} again yet ({message}); retrying…",
                        self.me
                    ),
                );
            }
            let pause = Duration::from_millis(500) * 2u32.pow(refusals.min(4));
            self.lost_server(pause.min(Duration::from_secs(5)), refusals);
            return;
        }
        if code == ErrorCode::NotInCall {
            // A HANGUP for a call the other side (or the server) already
            // ended: nothing to tell.
            return;
        }
        if self.stale_call_reply
            && matches!(
                code,
                ErrorCode::Busy
                    | ErrorCode::UnknownUser
                    | ErrorCode::AlreadyInCall
                    | ErrorCode::Unreachable
                    | ErrorCode::Internal
            )
        {
            // The refusal of a call the user had already cancelled.
            self.stale_call_reply = false;
            return;
        }
        match (&self.state, code) {
            (State::Registering { name }, _) => {
                self.ui.line(
                    Kind::Notice,
                    &format!("The server refused the name {name}: {message}."),
                );
                if self.fixed_name {
                    self.name_error = Some(message.to_string());
                    self.state = State::Done;
                } else {
                    self.ask_name();
                }
            }
            (State::Calling { peer }, _) => {
                let text = match code {
                    ErrorCode::Busy => format!("{peer} is busy in another chat."),
                    ErrorCode::UnknownUser => format!("No user named {peer} is online."),
                    _ => format!("Cannot call {peer}: {message}."),
                };
                self.ui.line(Kind::Notice, &text);
                self.back_to_list_after_failure();
            }
            // A hangup the other side already made, or a call refused
            // because someone called us first: nothing to tell.
            (_, ErrorCode::NotInCall | ErrorCode::AlreadyInCall) => {}
            _ => self
                .ui
                .line(Kind::Notice, &format!("The server says: {message}.")),
        }
    }

    fn on_call_ready(&mut self, peer: String, call: CallId, token: Token, addrs: Vec<SocketAddr>) {
        if std::mem::take(&mut self.stale_call_reply) {
            self.server.send(Request::Hangup { call });
            return;
        }
        let calling =
            matches!(&self.state, State::Calling { peer: p } if name_key(p) == name_key(&peer));
        if !calling {
            // We gave up on this call meanwhile; free it on the server.
            self.server.send(Request::Hangup { call });
            return;
        }
        self.ui.line(Kind::Notice, &format!("Calling {peer}…"));
        p2pclient::spawn(
            p2pclient::Dial {
                call,
                token,
                hello: PeerMessage::Hello {
                    caller: self.me.clone(),
                    call,
                    token,
                },
                addrs,
                server: self.server.server_addr,
            },
            self.events.clone(),
        );
        self.state = State::Dialing { peer, call };
    }

    fn on_incoming(&mut self, caller: String, call: CallId, token: Token) {
        if self.announced.len() == ANNOUNCED_MEMORY {
            self.announced.pop_front();
        }
        self.announced.push_back(call);
        let to_self = name_key(&caller) == name_key(&self.me);
        let can_ring = match &self.state {
            State::Calling { peer } if to_self => name_key(peer) == name_key(&self.me),
            State::AtList | State::Calling { .. } => !to_self,
            _ => false,
        };
        if !can_ring {
            // The server thinks we are free but we are not (it lost our
            // chat, or we are between states): refuse the call plainly.
            self.server.send(Request::Hangup { call });
            return;
        }
        self.expected = Some(Expected {
            caller: caller.clone(),
            call,
            token,
        });
        if !to_self {
            self.ui
                .line(Kind::Notice, &format!("{caller} is calling you…"));
            self.ui.bell();
            self.state = State::Ringing {
                caller,
                call,
                until: Instant::now() + RING_TIMEOUT,
            };
        }
        // A HELLO for this call may have come first.
        let early = std::mem::take(&mut self.early);
        for (at, hello) in early {
            if self.expected.is_some() {
                self.on_hello(hello);
            } else {
                self.early.push((at, hello));
            }
        }
    }

    fn on_hello(&mut self, hello: Hello) {
        let matches = self.expected.as_ref().is_some_and(|e| {
            e.call == hello.call
                && name_key(&e.caller) == name_key(&hello.caller)
                && e.token.matches(&hello.token)
        });
        if !matches {
            if self.announced.contains(&hello.call) {
                // A call we know of, with a wrong, replayed or expired token.
                hello.refuse(ErrorCode::BadToken, "wrong or expired token for this call");
            } else if self.early.len() < MAX_EARLY {
                self.early.push((Instant::now(), hello));
            } else {
                hello.refuse(ErrorCode::BadToken, "no such call expected");
            }
            return;
        }
        // The token is used up: a replay finds nothing expected.
        self.expected = None;
        let Hello {
            caller,
            call,
            mut conn,
            ..
        } = hello;
        let welcome = PeerMessage::Welcome {
            name: self.me.clone(),
        };
        if crate::connection::write_line(&mut conn.stream, &welcome).is_err() {
            return;
        }
        let Some(link) = self.attach(conn) else {
            return;
        };
        match &self.state {
            State::Dialing { call: dialing, .. } if *dialing == call => self.echo = Some(link),
            State::Ringing { call: ringing, .. } if *ringing == call => {
                let how = if link.relayed {
                    " (relayed through the server: no direct route)"
                } else {
                    ""
                };
                self.ui.line(
                    Kind::Notice,
                    &format!(
                        "{caller} connected{how}. Type a message and press ENTER; q + ENTER ends the chat."
                    ),
                );
                self.state = State::Chatting {
                    peer: caller,
                    call,
                    link,
                    closing: None,
                };
            }
            _ => {}
        }
    }

    fn attach(&mut self, conn: link::Handshaken) -> Option<Link> {
        let id = self.next_link;
        self.next_link += 1;
        Link::start(id, conn, self.events.clone()).ok()
    }

    fn on_dialed(&mut self, call: CallId, result: Result<p2pclient::Dialed, String>) {
        let State::Dialing {
            peer,
            call: dialing,
        } = &self.state
        else {
            return;
        };
        if *dialing != call {
            return;
        }
        let peer = peer.clone();
        match result {
            Ok(dialed) => {
                let Some(link) = self.attach(dialed.conn) else {
                    return self.call_failed(&peer, call, "cannot start the chat");
                };
                let text = if name_key(&peer) == name_key(&self.me) {
                    "Chatting with yourself: every line you send comes back. q + ENTER ends the chat."
                        .to_string()
                } else if link.relayed {
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
                self.ui.line(Kind::Notice, &text);
                self.state = State::Chatting {
                    peer,
                    call,
                    link,
                    closing: None,
                };
            }
            Err(why) => self.call_failed(&peer, call, &why),
        }
    }

    fn call_failed(&mut self, peer: &str, call: CallId, why: &str) {
        self.ui
            .line(Kind::Notice, &format!("Could not reach {peer}: {why}."));
        self.echo = None;
        self.server.send(Request::Hangup { call });
        self.back_to_list_after_failure();
    }

    /// Back to the list when a call did not happen or the peer ended the
    /// chat: lines typed meanwhile were meant for the chat, not for the
    /// list (where "q" would quit and "thanks" would call someone), so they
    /// are dropped, and the user told. A pending end of input stays.
    fn back_to_list_after_failure(&mut self) {
        let before = self.inputs.len();
        self.inputs.retain(|input| *input == Input::Eof);
        let dropped = before - self.inputs.len();
        if dropped > 0 {
            let text = if dropped == 1 {
                "1 line typed meanwhile was not sent.".to_string()
            } else {
                format!("{dropped} lines typed meanwhile were not sent.")
            };
            self.ui.line(Kind::Notice, &text);
        }
        self.show_list();
    }

    fn chat_line(&mut self, line: String) {
        if line.trim() == "q" {
            return self.quit_chat();
        }
        if line.is_empty() {
            return;
        }
        let State::Chatting { link, .. } = &mut self.state else {
            return;
        };
        // `/q` sends a literal "q", which typed alone would end the chat.
        let line = if line == "/q" { "q" } else { line.as_str() };
        for piece in split_text(line) {
            if link.send_text(piece).is_err() {
                return self.peer_finished(true);
            }
        }
    }

    /// We end the chat: tell the peer and the server, back to the list.
    fn quit_chat(&mut self) {
        let State::Chatting {
            peer,
            call,
            mut link,
            ..
        } = std::mem::replace(&mut self.state, State::AtList)
        else {
            return;
        };
        let _ = link.send(&PeerMessage::Bye);
        drop(link);
        self.echo = None;
        self.ui
            .line(Kind::Notice, &format!("You left the chat with {peer}."));
        // The server handles HANGUP before the LIST that follows it, so the
        // list shows both of us free.
        self.server.send(Request::Hangup { call });
        self.show_list();
    }

    /// The peer's link ended: with BYE, or `broken` without one.
    fn peer_finished(&mut self, broken: bool) {
        let State::Chatting { peer, closing, .. } = &mut self.state else {
            return;
        };
        let closing = closing.get_or_insert_with(Closing::new);
        let first = !closing.link_done;
        closing.link_done = true;
        let text = if broken {
            format!("{peer} left the chat (connection lost).")
        } else {
            format!("{peer} left the chat.")
        };
        if first {
            self.ui.line(Kind::Notice, &text);
        }
        self.finish_chat(false);
    }

    /// Ends a chat the peer ended, once both signals are in or, with
    /// `timed_out`, when waiting for the second is over.
    fn finish_chat(&mut self, timed_out: bool) {
        let State::Chatting {
            peer,
            call,
            closing: Some(closing),
            ..
        } = &self.state
        else {
            return;
        };
        if !(timed_out || closing.link_done && closing.server_done) {
            return;
        }
        let (peer, call) = (peer.clone(), *call);
        if !closing.link_done {
            self.ui.line(
                Kind::Notice,
                &format!("{peer} left the chat (gone from the server)."),
            );
        }
        if !closing.server_done {
            // The server has not heard: the link broke but both of us are
            // registered. Free the call ourselves.
            self.server.send(Request::Hangup { call });
        }
        self.echo = None;
        self.back_to_list_after_failure();
    }

    fn on_peer(&mut self, id: LinkId, msg: Option<PeerMessage>) {
        let State::Chatting { peer, link, .. } = &self.state else {
            return;
        };
        if id != link.id {
            // The incoming end of a chat with ourselves carries our lines
            // back; its end is the outgoing end's end.
            if self.echo.as_ref().is_some_and(|e| e.id == id)
                && let Some(PeerMessage::Msg(text)) = msg
            {
                self.ui.peer_line(peer, &text);
            }
            return;
        }
        match msg {
            Some(PeerMessage::Msg(text)) => self.ui.peer_line(peer, &text),
            Some(PeerMessage::Bye) => self.peer_finished(false),
            Some(PeerMessage::Ping(number)) => {
                if let State::Chatting { link, .. } = &mut self.state {
                    let _ = link.send(&PeerMessage::Pong(number));
                }
            }
            Some(PeerMessage::Pong(_)) => {
                if let State::Chatting { link, .. } = &mut self.state {
                    let pong = link.ponged();
                    self.peer_answered(pong);
                }
            }
            Some(_) => {}
            None => self.peer_finished(true),
        }
    }

    /// The peer answered a PING. If the server had said it hung up, and no
    /// BYE came, the peer only lost the server: the chat goes on, and we ask
    /// the server to count us busy again.
    fn peer_answered(&mut self, pong: u64) {
        let State::Chatting { peer, closing, .. } = &mut self.state else {
            return;
        };
        let answers_probe = closing.as_ref().is_some_and(|c| {
            c.server_done && !c.link_done && c.probe.is_some_and(|probe| pong >= probe)
        });
        if !answers_probe {
            return;
        }
        *closing = None;
        let name = peer.clone();
        self.ui.line(
            Kind::Notice,
            &format!("{name} lost the registration server; the chat goes on."),
        );
        if self.online() {
            self.server.send(Request::Resume { name });
        }
    }

    fn on_peer_hung_up(&mut self, call: CallId, peer: &str) {
        match &mut self.state {
            State::Chatting {
                call: current,
                closing,
                link,
                ..
            } if *current == call => {
                let closing = closing.get_or_insert_with(Closing::new);
                closing.server_done = true;
                if !closing.link_done {
                    // The peer hung up (its BYE is on the way) or it lost
                    // the server. Ask it: a PONG means it is still here.
                    closing.probe = link.ping().ok();
                }
                self.finish_chat(false);
            }
            State::Ringing { call: current, .. } if *current == call => {
                self.ui.line(
                    Kind::Notice,
                    &format!("{peer} hung up before the chat started."),
                );
                self.expected = None;
                self.back_to_list_after_failure();
            }
            State::Dialing { call: current, .. } if *current == call => {
                // The dial result will arrive and find another state.
                self.ui.line(Kind::Notice, &format!("{peer} is gone."));
                self.back_to_list_after_failure();
            }
            _ => {}
        }
    }

    fn on_server_lost(&mut self, why: String) {
        let refusals = match self.registration {
            Registration::Reconnecting { .. } => return,
            Registration::Reregistering { refusals } => refusals,
            Registration::Online => {
                self.ui.line(
                    Kind::Notice,
                    &format!(
                        "Lost the connection to the registration server ({why}); reconnecting…"
                    ),
                );
                0
            }
        };
        self.lost_server(Duration::from_millis(500), refusals);
        match &self.state {
            State::Calling { peer } => {
                let text = format!("The call to {peer} was not set up.");
                self.ui.line(Kind::Notice, &text);
                self.back_to_list_after_failure();
            }
            State::AtList => self.show_list(),
            _ => {}
        }
    }

    /// Whether we are registered on a live connection.
    fn online(&self) -> bool {
        self.registration == Registration::Online
    }

    /// Starts reconnecting, after `pause`; a chat in progress goes on
    /// meanwhile.
    fn lost_server(&mut self, pause: Duration, refusals: u32) {
        // No answer will come on this connection any more.
        self.stale_call_reply = false;
        self.registration = Registration::Reconnecting { refusals };
        let id = self.server.id + 1;
        login::reconnect(self.server_name.clone(), id, pause, self.events.clone());
    }

    fn on_reconnected(&mut self, conn: ServerConn) {
        let Registration::Reconnecting { refusals } = self.registration else {
            return;
        };
        self.server = conn;
        if !self.me.is_empty() {
            // Not online for the user until the server has taken our name.
            self.registration = Registration::Reregistering { refusals };
            self.server.send(Request::Register {
                name: self.me.clone(),
                advertise: self.advertise,
            });
        }
        let id = self.server.id;
        for (conn, event) in std::mem::take(&mut self.next_server_events) {
            if conn == id {
                self.handle(Event::Server { conn, event });
            }
        }
    }

    /// The caller could not reach us directly and asks the server to relay:
    /// open our half, if the call is the one we are expecting.
    fn on_relay_requested(&mut self, call: CallId) {
        let Some(expected) = self.expected.as_ref().filter(|e| e.call == call) else {
            return;
        };
        p2pserver::join_relay(
            self.server.server_addr,
            call,
            expected.token,
            self.events.clone(),
        );
        if let State::Ringing { until, .. } = &mut self.state {
            *until = Instant::now() + RING_TIMEOUT;
        }
    }

    fn check_timers(&mut self) {
        self.ui.tick();
        let now = Instant::now();
        if let State::Chatting {
            link,
            closing: None,
            ..
        } = &mut self.state
            && link.keepalive().is_err()
        {
            self.peer_finished(true);
        }
        if let Some(echo) = &mut self.echo {
            let _ = echo.keepalive();
        }
        if let State::Chatting {
            closing: Some(closing),
            ..
        } = &self.state
            && now >= closing.until
        {
            self.finish_chat(true);
        }
        if let State::Ringing {
            caller,
            call,
            until,
        } = &self.state
            && now >= *until
        {
            let (caller, call) = (caller.clone(), *call);
            self.ui.line(
                Kind::Notice,
                &format!("{caller}'s call did not come through."),
            );
            self.expected = None;
            self.server.send(Request::Hangup { call });
            self.back_to_list_after_failure();
        }
        let (stale, fresh): (Vec<_>, Vec<_>) = std::mem::take(&mut self.early)
            .into_iter()
            .partition(|(at, _)| now.duration_since(*at) >= EARLY_HELLO_TIMEOUT);
        self.early = fresh;
        for (_, hello) in stale {
            hello.refuse(ErrorCode::BadToken, "no such call expected");
        }
    }
}
