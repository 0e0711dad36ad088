//! The core driven by a scripted fake world: no sockets, no threads, no
//! sleeps. A [`World`] holds a [`Core`] and a clock of its own; a test
//! types, plays the server and the peers, moves the clock, and checks what
//! the core asked for.

use super::*;
use crate::protocol::ServerLine;

mod files;
mod not_a_server;
mod typing;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const OTHER_TOKEN: &str = "ffffffffffffffffffffffffffffffff";

fn token(text: &str) -> Token {
    Token::parse(text).expect("a valid token")
}

/// A new server connection is up, from which peers reach us at `addr`.
fn back_at(addr: &str) -> Input {
    Input::ServerBack {
        advertise: addr.parse().unwrap(),
    }
}

struct World {
    core: Core,
    now: Instant,
    /// Everything the core asked for, in order, since the world began.
    log: Vec<Output>,
    /// Where the next `take_*` looks from.
    seen: usize,
    /// How many [`Output::PeerTexts`] batches the core sent (each is in
    /// the log as one [`Output::Peer`] per line).
    batches: usize,
}

impl World {
    fn new(name: Option<&str>) -> World {
        let now = Instant::now();
        let settings = Settings {
            server_name: "127.0.0.1:7700".into(),
            advertise: "127.0.0.1:4000".parse().unwrap(),
            name: name.map(str::to_string),
            answering: Answering::Ask,
            typed_from: TypedFrom::Terminal,
            timers: Timers::default(),
            typing: TypingNotices::Off,
            files: None,
        };
        let mut world = World {
            core: Core::new(settings, now),
            now,
            log: Vec::new(),
            seen: 0,
            batches: 0,
        };
        world.collect();
        world
    }

    /// A world where `me` is registered, at the list, having seen it.
    fn registered(me: &str) -> World {
        World::registered_on(me, "relay")
    }

    /// The same, with a server that announced `features`.
    fn registered_on(me: &str, features: &str) -> World {
        let mut world = World::new(None);
        world.server(&format!("OK FEATURES {features}"));
        world.typed(me);
        world.expect_request(&format!("REGISTER {me} 127.0.0.1:4000"));
        world.server(&format!("OK WELCOME {me} 10"));
        world.expect_request("LIST");
        world.users(&[me]);
        world.skip_all();
        world
    }

    /// A world chatting with `peer` on link 1, call 7, as the caller.
    fn chatting(me: &str, peer: &str) -> World {
        World::chatting_on(me, peer, "relay")
    }

    fn chatting_on(me: &str, peer: &str, features: &str) -> World {
        let mut world = World::registered_on(me, features);
        world.call(peer, 7);
        world.dialed(7, 1, Route::Direct);
        world.expect_line(&format!("Connected to {peer} at 127.0.0.1:5000"));
        world.skip_all();
        world
    }

    fn collect(&mut self) {
        // A batch of peer lines is looked at one line at a time.
        for output in self.core.drain().collect::<Vec<_>>() {
            match output {
                Output::PeerLines { name, texts } => {
                    for text in texts.iter() {
                        self.log.push(Output::PeerLines {
                            name: name.clone(),
                            texts: [text].into_iter().collect(),
                        });
                    }
                }
                Output::PeerTexts { link, texts } => {
                    self.batches += 1;
                    for text in texts.iter() {
                        let msg = PeerMessage::Msg(text.into());
                        self.log.push(Output::Peer { link, msg });
                    }
                }
                output => self.log.push(output),
            }
        }
        self.check_invariants();
    }

    fn input(&mut self, input: Input) {
        self.core.handle(self.now, input);
        self.collect();
    }

    fn typed(&mut self, line: &str) {
        self.input(Input::Typed(Typed::Line(line.into())));
    }

    /// Lines piped in one burst.
    fn piped(&mut self, lines: &[&str]) {
        self.input(Input::TypedLines(lines.iter().copied().collect()));
    }

    fn key(&mut self, typed: Typed) {
        self.input(Input::Typed(typed));
    }

    fn server(&mut self, line: &str) {
        let line = ServerLine::parse(line).expect("a valid server line");
        self.input(Input::Server(line));
    }

    fn users(&mut self, names: &[&str]) {
        let users = names
            .iter()
            .map(|name| UserEntry {
                name: name.to_string(),
                busy: false,
                away: false,
            })
            .collect();
        self.input(Input::Users(users));
    }

    fn peer(&mut self, link: LinkId, lines: &[&str]) {
        let msgs = lines
            .iter()
            .map(|line| PeerMessage::parse(line).expect("a valid peer line"))
            .collect();
        self.input(Input::Peer { link, msgs });
    }

    /// The link broke, without a `BYE`.
    fn link_broke(&mut self, link: LinkId) {
        self.input(Input::LinkEnded {
            link,
            end: LinkEnd::Closed,
        });
    }

    /// The redial of a broken chat reached the peer on `link`, which had
    /// `received` of our lines.
    fn brought_back(
        &mut self,
        call: CallId,
        link: LinkId,
        addr: &str,
        route: Route,
        key: Token,
        received: u64,
    ) {
        self.input(Input::Dialed {
            call,
            result: Ok(Dialed {
                link,
                addr: addr.parse().unwrap(),
                route,
                key,
                rejoined: Some(received),
                strangers: Vec::new(),
            }),
        });
    }

    /// bob's link 1 (call 7) broke; he is found at 127.0.0.3:5000 and the
    /// redial reaches him there on link 9 with `key`, bob having
    /// `received` of our lines.
    fn redialed_bob(&mut self, key: Token, received: u64) {
        self.link_broke(1);
        self.expect_request("LOCATE bob");
        self.server("OK LOCATED bob 127.0.0.3:5000");
        self.take("a redial", |o| matches!(o, Output::Dial { .. }));
        self.brought_back(7, 9, "127.0.0.3:5000", Route::Direct, key, received);
    }

    /// Our call `call` reached its peer at 127.0.0.1:5000 on `link`, by
    /// `route`.
    fn dialed(&mut self, call: CallId, link: LinkId, route: Route) {
        self.input(Input::Dialed {
            call,
            result: Ok(Dialed {
                link,
                addr: "127.0.0.1:5000".parse().unwrap(),
                route,
                key: token(OTHER_TOKEN),
                rejoined: None,
                strangers: Vec::new(),
            }),
        });
    }

    fn hello(&mut self, link: LinkId, caller: &str, call: CallId, token_text: &str) {
        self.input(Input::Hello {
            link,
            caller: caller.into(),
            call,
            token: Some(token(token_text)),
            route: Route::Direct,
        });
    }

    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        // Wake as a driver would: at each timeout on the way, then at the end.
        for _ in 0..10_000 {
            match self.core.poll_timeout() {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    self.core.handle_timeout(self.now);
                    self.collect();
                }
                _ => break,
            }
        }
        self.now = until;
        self.core.handle_timeout(self.now);
        self.collect();
    }

    /// Calls `peer` from the list, the server answering with call `call`.
    fn call(&mut self, peer: &str, call: CallId) {
        self.typed(peer);
        self.expect_request(&format!("CALL {peer}"));
        self.server(&format!("OK CALL {peer} {call} {TOKEN} 127.0.0.1:5000"));
        self.expect_dial(call);
    }

    fn fresh(&self) -> &[Output] {
        &self.log[self.seen..]
    }

    fn skip_all(&mut self) {
        self.seen = self.log.len();
    }

    /// Finds the first output from where we are that `pick` accepts, and
    /// moves past it.
    fn take(&mut self, what: &str, pick: impl Fn(&Output) -> bool) -> Output {
        match self.fresh().iter().position(pick) {
            Some(i) => {
                self.seen += i + 1;
                self.log[self.seen - 1].clone()
            }
            None => panic!("expected {what}; fresh outputs: {:#?}", self.fresh()),
        }
    }

    fn expect_request(&mut self, request: &str) {
        self.take(
            &format!("request {request:?}"),
            |o| matches!(o, Output::Server(r) if r.to_string() == request),
        );
    }

    fn expect_line(&mut self, needle: &str) {
        self.take(
            &format!("a line with {needle:?}"),
            |o| matches!(o, Output::Line { text, .. } if text.contains(needle)),
        );
    }

    fn expect_peer_line(&mut self, name: &str, text: &str) {
        self.take(
            &format!("{name}: {text}"),
            |o| matches!(o, Output::PeerLines { name: n, texts } if n == name && texts.iter().eq([text])),
        );
    }

    fn expect_to_peer(&mut self, link: LinkId, line: &str) {
        self.take(
            &format!("{line:?} to link {link}"),
            |o| matches!(o, Output::Peer { link: l, msg } if *l == link && msg.to_string() == line),
        );
    }

    fn expect(&mut self, output: Output) {
        let what = format!("{output:?}");
        self.take(&what, |o| *o == output);
    }

    fn expect_dial(&mut self, call: CallId) {
        self.take(
            &format!("a dial for call {call}"),
            |o| matches!(o, Output::Dial { call: c, .. } if *c == call),
        );
    }

    /// Nothing from where we are is a request to the server, or a line.
    fn expect_quiet(&self) {
        let noisy: Vec<_> = self
            .fresh()
            .iter()
            .filter(|o| matches!(o, Output::Server(_) | Output::Line { .. }))
            .collect();
        assert!(noisy.is_empty(), "expected quiet, got {noisy:#?}");
    }

    fn count(&self, pick: impl Fn(&Output) -> bool) -> usize {
        self.fresh().iter().filter(|o| pick(o)).count()
    }

    fn check_invariants(&self) {
        self.core.check_invariants();
    }

    /// A line typed as alice's call 9 (token [`TOKEN`]), not answered by
    /// a key, is being set up: it is not sent, and alice, once connected,
    /// gets no line.
    fn typed_as_alices_call_comes_in(&mut self) {
        self.typed("carol");
        self.expect_line("(not sent to alice: typed as the call came in)");
        self.hello(3, "alice", 9, TOKEN);
        self.expect_line("alice connected");
        let sent = self.count(|o| {
            matches!(
                o,
                Output::Peer {
                    msg: PeerMessage::Msg(_),
                    ..
                }
            )
        });
        assert_eq!(sent, 0);
    }
}

impl Core {
    /// What must hold in every state, whatever was fed in.
    fn check_invariants(&self) {
        match &self.stage {
            Stage::Done(_) => assert!(self.poll_timeout().is_none() || self.outputs.is_empty()),
            Stage::Naming | Stage::Registering { .. } => {
                assert!(self.me().is_none());
            }
            Stage::Registered { me, place } => {
                assert!(validate_name(me).is_ok(), "registered as {me:?}");
                if let Place::Chatting(chat) = place
                    && let Some(echo) = &chat.echo
                {
                    assert_ne!(echo.id, chat.link.id, "echo and link are one");
                    assert!(self.is_me(&chat.peer), "an echo outside a self-chat");
                }
            }
        }
        assert!(self.early.len() <= MAX_EARLY);
        assert!(self.announced.len() <= ANNOUNCED_MEMORY);
        if !self.connected() {
            assert!(
                self.server.pending.is_empty(),
                "waiting on a dead connection"
            );
        }
        assert!(!self.status().contains('\n'));
    }
}

// ---- the numbered flow ---------------------------------------------------

#[test]
fn the_numbered_flow_as_the_caller() {
    let mut w = World::new(None);
    w.expect_line("Connected to the registration server at 127.0.0.1:7700.");
    w.expect_request("FEATURES ring presence missed session proof ring-time away transfer");
    w.expect(Output::Prompt("Enter your visible name: ".into()));
    assert_eq!(w.core.status(), "your name: ");
    // 1) the name.
    w.typed("alice");
    w.expect_request("REGISTER alice 127.0.0.1:4000");
    assert_eq!(w.core.status(), "registering alice… ");
    w.server("OK FEATURES relay");
    w.server("OK WELCOME alice 10");
    w.expect_line("Welcome, alice! Peers can reach you at 127.0.0.1:4000.");
    // 2) the list, me included.
    w.expect_request("LIST");
    w.input(Input::Users(vec![
        UserEntry {
            name: "alice".into(),
            busy: false,
            away: false,
        },
        UserEntry {
            name: "bob".into(),
            busy: true,
            away: false,
        },
    ]));
    w.expect_line("Online users (2):");
    w.expect_line("  alice (you)");
    w.expect_line("  bob [busy]");
    assert_eq!(w.core.status(), "connect to: ");
    // 3) a name connects.
    w.call("bob", 7);
    assert_eq!(w.core.status(), "calling bob… ");
    w.dialed(7, 1, Route::Direct);
    w.expect_line("Connected to bob at 127.0.0.1:5000.");
    assert_eq!(w.core.status(), "to bob> ");
    // 4) lines both ways.
    w.typed("hello bob");
    w.expect_to_peer(1, "MSG hello bob");
    w.peer(1, &["MSG hi alice", "MSG ✓"]);
    w.expect_peer_line("bob", "hi alice");
    w.expect_peer_line("bob", "✓");
    // 5) q ends it; 6) the refreshed list.
    w.typed("q");
    w.expect_to_peer(1, "BYE");
    w.expect_line("You left the chat with bob.");
    w.expect(Output::Close { link: 1 });
    w.expect_request("HANGUP 7");
    w.expect_request("LIST");
    w.server("OK HANGUP 7");
    w.users(&["alice", "bob"]);
    w.expect_line("Online users (2):");
    w.typed("q");
    w.expect_request("QUIT");
    assert_eq!(w.core.exit(), Some(&Exit::Quit));
}

#[test]
fn the_numbered_flow_as_the_callee() {
    let mut w = World::registered("bob");
    w.server(&format!("EVENT INCOMING alice 9 {TOKEN}"));
    w.expect_line("alice is calling you…");
    w.expect(Output::Bell);
    assert_eq!(w.core.status(), "alice is calling… ");
    w.hello(3, "alice", 9, TOKEN);
    w.expect(Output::Open { link: 3 });
    w.expect_to_peer(3, "WELCOME bob");
    w.expect_line("alice connected.");
    assert_eq!(w.core.status(), "to alice> ");
    // A caller that announces features hears ours, once.
    w.peer(3, &["FEATURES ping-id", "MSG hi bob"]);
    w.expect_to_peer(3, "FEATURES ping-id bye-ack resume long-lines");
    w.expect_peer_line("alice", "hi bob");
    w.typed("hi alice");
    w.expect_to_peer(3, "MSG hi alice");
    // The caller leaves: BYE, then the server's word.
    w.peer(3, &["BYE"]);
    w.expect_line("alice left the chat.");
    assert_eq!(w.core.status(), "alice left… ");
    w.server("EVENT HANGUP 9 alice");
    w.expect(Output::Close { link: 3 });
    w.expect_request("LIST");
    assert_eq!(w.core.status(), "connect to: ");
}

#[test]
fn a_name_refused_asks_again_and_a_refused_fixed_name_ends_the_program() {
    let mut w = World::new(None);
    w.typed("my name");
    w.expect_line("That name won't do");
    w.typed("Alice");
    w.server("OK FEATURES");
    w.server("ERR name-taken the name alice is taken");
    w.expect_line("The server refused the name Alice: the name alice is taken.");
    assert_eq!(w.core.status(), "your name: ");

    let mut w = World::new(Some("Alice"));
    w.expect_request("REGISTER Alice 127.0.0.1:4000");
    w.server("ERR unknown-command no FEATURES here");
    w.server("ERR name-taken the name alice is taken");
    assert_eq!(
        w.count(|o| matches!(o, Output::Line { .. })),
        0,
        "said once, by the program's error line"
    );
    assert_eq!(
        w.core.exit(),
        Some(&Exit::NameRefused("Alice: the name alice is taken".into()))
    );
}

#[test]
fn typed_ahead_lines_wait_for_the_place_that_takes_them() {
    let mut w = World::new(None);
    for line in ["alice", "bob", "one", "two", "q", "q"] {
        w.typed(line);
    }
    w.expect_request("REGISTER alice 127.0.0.1:4000");
    w.expect_quiet();
    w.server("OK FEATURES");
    w.server("OK WELCOME alice 10");
    w.expect_request("LIST");
    w.users(&["alice", "bob"]);
    w.call("bob", 1);
    w.dialed(1, 1, Route::Relayed);
    w.expect_line("relayed through the server");
    w.expect_to_peer(1, "MSG one");
    w.expect_to_peer(1, "MSG two");
    w.expect_to_peer(1, "BYE");
    w.expect_request("HANGUP 1");
    // The second q quits at the list, once the list is shown.
    w.server("OK HANGUP 1");
    w.users(&["alice"]);
    w.expect_line("Online users (1):");
    w.expect_request("QUIT");
    assert_eq!(w.core.exit(), Some(&Exit::Quit));
}

#[test]
fn a_name_typed_after_the_server_gave_up_connects_again_and_registers() {
    let mut w = World::new(None);
    w.server("OK FEATURES");
    w.skip_all();
    w.server("ERR timeout did not register in time");
    w.input(Input::ServerLost(ServerLoss::Closed));
    w.expect_quiet();
    assert!(w.core.exit().is_none());
    w.advance(Duration::from_secs(600));
    w.typed("slowpoke");
    w.expect_line("Connecting to the registration server again");
    w.expect(Output::Reconnect {
        after: Duration::ZERO,
        retry: Retry::Once,
        old: OldConn::Close,
    });
    assert_eq!(w.core.status(), "registering slowpoke… ");
    w.input(back_at("127.0.0.1:4000"));
    w.expect_request("FEATURES ring presence missed session proof ring-time away transfer");
    w.expect_request("REGISTER slowpoke 127.0.0.1:4000");
    w.server("OK FEATURES");
    w.server("OK WELCOME slowpoke 10");
    w.expect_line("Welcome, slowpoke!");
    w.expect_request("LIST");
    assert_eq!(w.core.status(), "connect to: ");
}

#[test]
fn a_name_typed_just_as_the_server_gives_up_is_registered_on_a_new_connection() {
    let mut w = World::new(None);
    w.server("OK FEATURES");
    w.typed("slowpoke");
    w.expect_request("REGISTER slowpoke 127.0.0.1:4000");
    w.server("ERR timeout did not register in time; closing");
    w.expect(Output::Reconnect {
        after: Duration::ZERO,
        retry: Retry::Once,
        old: OldConn::Close,
    });
    assert_eq!(w.count(|o| matches!(o, Output::Line { .. })), 0);
    w.input(back_at("127.0.0.1:4000"));
    w.expect_request("REGISTER slowpoke 127.0.0.1:4000");
    w.server("OK FEATURES");
    w.server("OK WELCOME slowpoke 10");
    w.expect_line("Welcome, slowpoke!");
}

#[test]
fn a_name_typed_as_the_connection_closes_gets_one_fresh_connection() {
    let mut w = World::new(None);
    w.server("OK FEATURES");
    // The server's word came before the name, its close after.
    w.server("ERR timeout did not register in time; closing");
    w.typed("slowpoke");
    w.expect_request("REGISTER slowpoke 127.0.0.1:4000");
    w.input(Input::ServerLost(ServerLoss::Closed));
    w.expect(Output::Reconnect {
        after: Duration::ZERO,
        retry: Retry::Once,
        old: OldConn::Close,
    });
    assert!(w.core.exit().is_none());
    // A server restarting, or closing the oldest of many connections from
    // one address: a few more tries, a moment apart, told once.
    for tries in 1..super::naming::REGISTER_TRIES {
        w.input(Input::ServerLost(ServerLoss::Io(
            "connection refused".into(),
        )));
        if tries == 1 {
            w.expect_line("The registration server closed the connection");
        }
        w.expect(Output::Reconnect {
            after: Duration::from_millis(500) * tries,
            retry: Retry::Once,
            old: OldConn::Close,
        });
        assert!(w.core.exit().is_none());
    }
    // And if those fail too, the server is gone: say so, once.
    w.input(Input::ServerLost(ServerLoss::Io(
        "connection refused".into(),
    )));
    assert_eq!(
        w.core.exit(),
        Some(&Exit::ServerLost(
            "connection refused, before registration".into()
        ))
    );
}

#[test]
fn a_typed_ahead_line_at_the_list_waits_for_the_list_it_answers() {
    let mut w = World::new(None);
    for line in ["dave", "", "", "q"] {
        w.typed(line);
    }
    w.server("OK FEATURES");
    w.server("OK WELCOME dave 10");
    w.expect_request("LIST");
    w.users(&["dave"]);
    w.expect_line("Online users (1):");
    w.expect_request("LIST");
    w.users(&["dave"]);
    w.expect_line("Online users (1):");
    w.expect_request("LIST");
    w.users(&["dave"]);
    w.expect_line("Online users (1):");
    w.expect_request("QUIT");
}

// ---- slash commands --------------------------------------------------------

#[test]
fn slash_commands_in_a_chat_do_what_they_say_and_send_nothing_else() {
    let mut w = World::chatting("alice", "bob");
    w.typed("/help");
    w.expect_line("/say TEXT");
    w.typed("/who");
    w.expect_request("LIST");
    w.users(&["alice", "bob"]);
    w.expect_line("Online users (2):");
    w.expect_line("  alice (you)");
    assert_eq!(w.core.status(), "to bob> ");
    w.typed("/frob");
    w.expect_line("There is no command /frob");
    w.typed("/call carol");
    w.expect_line("One chat at a time");
    w.typed("/say q");
    w.expect_to_peer(1, "MSG q");
    w.typed("//etc");
    w.expect_to_peer(1, "MSG /etc");
    w.typed("Q");
    w.expect_to_peer(1, "MSG Q");
    assert_eq!(
        w.count(|o| matches!(
            o,
            Output::Peer {
                msg: PeerMessage::Msg(_),
                ..
            }
        )),
        0,
        "only what was meant to be sent went out"
    );
    // Pasted lines are text, whatever they say.
    w.key(Typed::Pasted("q".into()));
    w.expect_to_peer(1, "MSG q");
    w.key(Typed::Pasted("/quit".into()));
    w.expect_to_peer(1, "MSG /quit");
    w.typed(" q ");
    w.expect_to_peer(1, "BYE");
    w.expect_line("You left the chat with bob.");
}

#[test]
fn slash_commands_at_the_list() {
    let mut w = World::registered("alice");
    w.typed("/call bob");
    w.expect_request("CALL bob");
    w.server("ERR busy bob is busy");
    w.users(&["alice", "bob"]);
    w.typed("/say hi");
    w.expect_line("Not in a chat");
    w.typed("/ignore mallory");
    w.expect_line("Calls from mallory are declined unseen");
    w.server(&format!("EVENT INCOMING Mallory 3 {TOKEN}"));
    w.expect_request("HANGUP 3");
    assert_eq!(w.count(|o| matches!(o, Output::Bell)), 0);
    w.typed("/ignore");
    w.expect_line("Ignored this session: mallory.");
    w.typed("/quit");
    w.expect_request("QUIT");
    assert_eq!(w.core.exit(), Some(&Exit::Quit));
}

// ---- calls that do not happen ---------------------------------------------

#[test]
fn calling_a_busy_an_unknown_or_an_invalid_name_says_so_and_shows_the_list() {
    let mut w = World::registered("alice");
    w.typed("bob");
    w.server("ERR busy bob is in a call");
    w.expect_line("bob is busy in another chat.");
    w.expect_request("LIST");
    w.users(&["alice", "bob"]);
    w.typed("zed");
    w.server("ERR unknown-user no such user");
    w.expect_line("No user named zed is online.");
    w.users(&["alice", "bob"]);
    w.typed("two words");
    w.expect_line("No user can be named two words: ");
    assert_eq!(w.core.status(), "connect to: ");
}

#[test]
fn a_peer_vanishing_while_dialed_ends_the_call_and_its_late_dial_is_closed() {
    let mut w = World::registered("alice");
    w.call("bob", 4);
    w.server("EVENT HANGUP 4 bob");
    w.expect_line("bob is gone.");
    w.expect_request("LIST");
    w.dialed(4, 2, Route::Direct);
    w.expect(Output::Close { link: 2 });
    assert_eq!(w.core.status(), "connect to: ");
}

#[test]
fn a_failed_dial_names_each_way_tried_and_hangs_up() {
    let mut w = World::registered("alice");
    w.call("bob", 4);
    w.typed("meant for bob");
    w.input(Input::Dialed {
        call: 4,
        result: Err(DialError::Unreachable(vec![
            (
                Way::Direct("127.0.0.1:5000".parse().unwrap()),
                WayError::Connect("connection refused".into()),
            ),
            (Way::Relay, WayError::NoRelay),
        ])),
    });
    w.expect_line(
        "Could not reach bob: 127.0.0.1:5000: connection refused; relay: the server does not relay chats.",
    );
    w.expect_request("HANGUP 4");
    w.expect_line("1 line typed meanwhile was not sent.");
    w.expect_request("LIST");
}

#[test]
fn a_call_cancelled_with_ctrl_c_hangs_up_its_late_answer_and_holds_the_next() {
    let mut w = World::registered("alice");
    w.typed("bob");
    w.expect_request("CALL bob");
    w.key(Typed::Interrupt);
    w.expect_line("Call to bob cancelled.");
    w.expect_request("LIST");
    // Typed at once: waits until the cancelled call's answer is in.
    w.typed("carol");
    w.server(&format!("OK CALL bob 5 {TOKEN} 127.0.0.1:5000"));
    assert_eq!(w.count(|o| matches!(o, Output::Dial { .. })), 0);
    w.expect_request("HANGUP 5");
    // And for the list asked for when the call was cancelled.
    w.users(&["alice"]);
    w.expect_request("CALL carol");
    // The server answers in order: the hang-up, then carol's call.
    w.server("OK HANGUP 5");
    // A refusal instead of a set-up is swallowed the same way.
    w.key(Typed::Interrupt);
    w.skip_all();
    w.server("ERR busy carol is busy");
    w.expect_quiet();
}

#[test]
fn ctrl_c_while_dialing_or_ringing_cancels_and_frees_the_call() {
    let mut w = World::registered("alice");
    w.call("bob", 4);
    w.key(Typed::Interrupt);
    w.expect_line("Call with bob cancelled.");
    w.expect_request("HANGUP 4");
    let mut w = World::registered("bob");
    w.server(&format!("EVENT INCOMING carol 6 {TOKEN}"));
    w.key(Typed::Interrupt);
    w.expect_line("Call with carol cancelled.");
    w.expect_request("HANGUP 6");
    // Carol's HELLO, late: the token is no longer expected.
    w.hello(8, "carol", 6, TOKEN);
    w.expect(Output::Refuse {
        link: 8,
        code: ErrorCode::BadToken,
        message: "wrong or expired token for this call".into(),
    });
}

#[test]
fn the_caller_hanging_up_while_it_rings_brings_the_callee_back() {
    let mut w = World::registered("bob");
    w.server(&format!("EVENT INCOMING alice 9 {TOKEN}"));
    w.typed("typed while ringing");
    w.expect_line("(not sent to alice: typed as the call came in)");
    w.server("EVENT HANGUP 9 alice");
    w.expect_line("alice hung up before the chat started.");
    w.expect_request("LIST");
}

#[test]
fn a_ring_that_never_connects_times_out() {
    let mut w = World::registered("bob");
    w.server(&format!("EVENT INCOMING alice 9 {TOKEN}"));
    w.advance(Timers::default().ring + Duration::from_millis(1));
    w.expect_line("alice's call did not come through.");
    w.expect_request("HANGUP 9");
}

#[test]
fn an_early_hello_waits_for_its_announcement_and_a_stale_one_is_refused() {
    let mut w = World::registered("bob");
    w.hello(3, "alice", 9, TOKEN);
    w.expect_quiet();
    w.server(&format!("EVENT INCOMING alice 9 {TOKEN}"));
    w.expect(Output::Open { link: 3 });
    w.expect_line("alice connected.");

    let mut w = World::registered("bob");
    w.hello(3, "mallory", 99, TOKEN);
    w.advance(Timers::default().early_hello);
    w.expect(Output::Refuse {
        link: 3,
        code: ErrorCode::BadToken,
        message: "no such call expected".into(),
    });
}

#[test]
fn a_wrong_token_for_a_known_call_is_refused_at_once() {
    let mut w = World::registered("bob");
    w.server(&format!("EVENT INCOMING alice 9 {TOKEN}"));
    w.hello(3, "alice", 9, OTHER_TOKEN);
    w.expect(Output::Refuse {
        link: 3,
        code: ErrorCode::BadToken,
        message: "wrong or expired token for this call".into(),
    });
    assert_eq!(w.core.status(), "alice is calling… ");
}

#[test]
fn glare_two_peers_calling_each_other_ends_in_one_silent_call() {
    // The refusal comes after the other's call rang us…
    let mut w = World::registered("bob");
    w.typed("alice");
    w.server(&format!("EVENT INCOMING alice 3 {TOKEN}"));
    w.expect_line("alice is calling you…");
    w.server("ERR already-in-call you are already in a call; HANGUP first");
    w.expect_quiet();
    assert_eq!(w.core.status(), "alice is calling… ");
    // …or before it.
    let mut w = World::registered("bob");
    w.typed("alice");
    w.expect_request("CALL alice");
    w.server("ERR already-in-call you are already in a call; HANGUP first");
    assert_eq!(
        w.count(|o| matches!(o, Output::Line { text, .. } if text.contains("Cannot call"))),
        0
    );
    w.server(&format!("EVENT INCOMING alice 3 {TOKEN}"));
    w.expect_line("alice is calling you…");
}

// ---- chats with oneself ----------------------------------------------------

#[test]
fn a_chat_with_yourself_echoes_every_line() {
    let mut w = World::registered("alice");
    w.typed("alice");
    w.server(&format!("EVENT INCOMING alice 2 {TOKEN}"));
    w.server(&format!("OK CALL alice 2 {TOKEN} 127.0.0.1:4000"));
    w.expect_dial(2);
    // Our own HELLO arrives at our listener.
    w.hello(5, "alice", 2, TOKEN);
    w.expect(Output::Open { link: 5 });
    w.expect_to_peer(5, "WELCOME alice");
    w.input(Input::Dialed {
        call: 2,
        result: Ok(Dialed {
            link: 6,
            addr: "127.0.0.1:4000".parse().unwrap(),
            route: Route::Direct,
            key: token(OTHER_TOKEN),
            rejoined: None,
            strangers: Vec::new(),
        }),
    });
    w.expect_line("Chatting with yourself");
    w.core.settings.files = Some(FileSettings::default());
    w.typed("/send /tmp/a.bin");
    w.expect_line("A chat with yourself sends no files");
    w.typed("echo");
    w.expect_to_peer(6, "MSG echo");
    w.peer(5, &["MSG echo"]);
    w.expect_peer_line("alice", "echo");
    w.typed("q");
    w.expect_to_peer(6, "BYE");
    w.expect(Output::Close { link: 6 });
    w.expect(Output::Close { link: 5 });
    w.expect_request("HANGUP 2");
}

// ---- the server lost and back ------------------------------------------------

#[test]
fn the_server_lost_mid_chat_reconnects_registers_again_and_resumes() {
    let mut w = World::chatting("alice", "bob");
    w.input(Input::ServerLost(ServerLoss::Closed));
    w.expect_line("Lost the connection to the registration server (the server closed the connection); reconnecting…");
    w.expect(Output::Reconnect {
        after: Timers::default().reconnect,
        retry: Retry::UntilBack,
        old: OldConn::Close,
    });
    // The chat goes on meanwhile.
    w.typed("still here");
    w.expect_to_peer(1, "MSG still here");
    w.input(back_at("127.0.0.1:4000"));
    w.expect_request("FEATURES ring presence missed session proof ring-time away transfer");
    w.expect_request("REGISTER alice 127.0.0.1:4000");
    w.server("OK FEATURES");
    w.server("OK WELCOME alice 10");
    w.expect_line("Reconnected to the registration server.");
    w.expect_request("RESUME bob");
    w.server("OK RESUMED bob 40");
    // The resumed call's new number is the one hung up.
    w.typed("q");
    w.expect_request("HANGUP 40");
}

#[test]
fn a_new_address_on_reconnecting_is_registered_and_told() {
    let mut w = World::chatting("alice", "bob");
    w.input(Input::ServerLost(ServerLoss::Closed));
    w.skip_all();
    w.input(back_at("10.0.0.7:4000"));
    w.expect_line("Your address changed: peers can now reach you at 10.0.0.7:4000.");
    w.expect_request("REGISTER alice 10.0.0.7:4000");
    w.server("OK FEATURES");
    w.server("OK WELCOME alice 10");
    w.expect_request("RESUME bob");
    // And every registration after that, too.
    w.input(Input::ServerLost(ServerLoss::Closed));
    w.skip_all();
    w.input(back_at("10.0.0.7:4000"));
    let told =
        |o: &Output| matches!(o, Output::Line { text, .. } if text.contains("address changed"));
    assert_eq!(w.count(told), 0, "told once, not on every connection");
    w.expect_request("REGISTER alice 10.0.0.7:4000");
}

#[test]
fn a_silent_server_is_given_up_after_three_heartbeats() {
    let mut w = World::registered("alice");
    w.advance(Duration::from_secs(10));
    w.expect_request("PING");
    w.server("OK PONG");
    w.advance(Duration::from_secs(31));
    w.expect_line("no answer to heartbeats");
    w.take("a reconnect", |o| matches!(o, Output::Reconnect { .. }));
}

#[test]
fn a_peer_that_only_lost_the_server_answers_the_probe_and_the_chat_goes_on() {
    let mut w = World::chatting("alice", "bob");
    w.server("EVENT HANGUP 7 bob");
    w.expect_to_peer(1, "PING");
    w.peer(1, &["PONG"]);
    w.expect_line("bob lost the registration server; the chat goes on.");
    w.expect_request("RESUME bob");
    assert_eq!(w.core.status(), "to bob> ");
}

#[test]
fn numbered_pings_name_the_probe_they_answer() {
    let mut w = World::chatting("alice", "bob");
    w.peer(1, &["FEATURES ping-id"]);
    w.advance(Timers::default().ping_every);
    w.expect_to_peer(1, "PING 1");
    w.server("EVENT HANGUP 7 bob");
    w.expect_to_peer(1, "PING 2");
    // The answer to the keepalive is not the answer to the probe.
    w.peer(1, &["PONG 1"]);
    assert_eq!(w.core.status(), "bob left… ");
    w.peer(1, &["PONG 2"]);
    w.expect_line("bob lost the registration server; the chat goes on.");
}

// ---- hostile or broken peers --------------------------------------------------

#[test]
fn a_flood_of_pings_costs_one_pong_per_batch() {
    let mut w = World::chatting("alice", "bob");
    let flood: Vec<String> = (1..=1000).map(|n| format!("PING {n}")).collect();
    let flood: Vec<&str> = flood.iter().map(String::as_str).collect();
    w.peer(1, &flood);
    let pongs = w.count(|o| {
        matches!(
            o,
            Output::Peer {
                msg: PeerMessage::Pong(_),
                ..
            }
        )
    });
    assert_eq!(pongs, 1);
    w.expect_to_peer(1, "PONG 1000");
    // Unnumbered, from an older peer: the same.
    w.peer(1, &["PING", "PING", "PING"]);
    w.expect_to_peer(1, "PONG");
    assert_eq!(
        w.count(|o| matches!(
            o,
            Output::Peer {
                msg: PeerMessage::Pong(_),
                ..
            }
        )),
        0
    );
}

#[test]
fn a_peer_that_stops_reading_ends_the_chat_with_a_notice() {
    let mut w = World::chatting("alice", "bob");
    w.input(Input::LinkEnded {
        link: 1,
        end: LinkEnd::StoppedReading,
    });
    w.expect_line("bob stopped reading; the chat ended.");
    w.expect_request("HANGUP 7");
    w.expect(Output::Close { link: 1 });
    w.expect_request("LIST");
    assert_eq!(w.core.status(), "connect to: ");
}

#[test]
fn a_silent_peer_is_given_up_after_the_silence_limit() {
    let mut w = World::chatting("alice", "bob");
    w.advance(Timers::default().silence);
    w.expect_line("bob left the chat (no answer for a while).");
}

#[test]
fn lines_typed_for_a_chat_that_died_never_run_at_the_list() {
    let mut w = World::chatting("alice", "bob");
    w.peer(1, &["BYE"]);
    // Typed after the peer left, before the chat is over: not commands.
    w.typed("q");
    w.typed("carol");
    w.server("EVENT HANGUP 7 bob");
    w.expect_line("2 lines typed meanwhile were not sent.");
    assert!(w.core.exit().is_none());
    assert_eq!(
        w.count(|o| matches!(o, Output::Server(Request::Call { .. }))),
        0
    );
}

#[test]
fn a_reply_out_of_order_is_reported_and_changes_nothing() {
    let mut w = World::registered("alice");
    w.typed("bob");
    w.expect_request("CALL bob");
    w.server("OK PONG");
    w.expect_line("The server answered Call");
    // The call's own answer was taken by nothing: it now answers nothing.
    w.server(&format!("OK CALL bob 5 {TOKEN} 127.0.0.1:5000"));
    w.expect_line("reply to nothing");
    assert_eq!(w.count(|o| matches!(o, Output::Dial { .. })), 0);
}

#[test]
fn events_of_other_calls_and_links_are_ignored() {
    let mut w = World::chatting("alice", "bob");
    w.server("EVENT HANGUP 99 zed");
    w.server("EVENT RELAY 99");
    w.peer(42, &["MSG from nowhere", "BYE"]);
    w.link_broke(42);
    w.expect_quiet();
    assert_eq!(w.count(|o| matches!(o, Output::PeerLines { .. })), 0);
    assert_eq!(w.core.status(), "to bob> ");
}

// ---- every input in every state -------------------------------------------

/// Worlds in each state the flow has.
fn worlds_in_every_state() -> Vec<(&'static str, World)> {
    let mut out = Vec::new();
    out.push(("naming", World::new(None)));
    let mut w = World::new(None);
    w.typed("alice");
    out.push(("registering", w));
    out.push(("at the list", World::registered("alice")));
    let mut w = World::registered("alice");
    w.typed("bob");
    out.push(("calling", w));
    let mut w = World::registered("alice");
    w.call("bob", 7);
    out.push(("dialing", w));
    let mut w = World::registered("alice");
    w.server(&format!("EVENT INCOMING bob 7 {TOKEN}"));
    out.push(("ringing", w));
    out.push(("chatting", World::chatting("alice", "bob")));
    let mut w = World::chatting("alice", "bob");
    w.peer(1, &["BYE"]);
    out.push(("chat ending", w));
    let mut w = World::chatting("alice", "bob");
    w.input(Input::ServerLost(ServerLoss::Closed));
    out.push(("chatting, server lost", w));
    let mut w = World::chatting("alice", "bob");
    w.peer(1, &["FEATURES bye-ack"]);
    w.typed("q");
    out.push(("leaving", w));
    let mut w = World::registered("alice");
    w.typed("bob");
    w.server("OK RINGING bob 7");
    out.push(("ringing out", w));
    let mut w = World::registered("alice");
    w.server("EVENT RING bob 7");
    out.push(("ringing", w));
    let mut w = World::registered("alice");
    w.server("EVENT RING bob 7");
    w.typed("y");
    out.push(("answering", w));
    out.push((
        "naming, presence server",
        registered_on_a_newer_server("alice"),
    ));
    let mut w = World::registered("alice");
    w.typed("q");
    out.push(("done", w));
    out
}

/// One of every kind of input, with ids that match the worlds above and
/// ids that match nothing.
fn every_input() -> Vec<Input> {
    let mut inputs = vec![
        Input::Typed(Typed::Line("bob".into())),
        Input::Typed(Typed::Line("y".into())),
        Input::Typed(Typed::Line("n".into())),
        Input::Typed(Typed::Line("/who".into())),
        Input::MissedCall {
            caller: "carol".into(),
            at: "09:15".into(),
        },
        Input::Typed(Typed::Line("q".into())),
        Input::Typed(Typed::Line(String::new())),
        Input::Typed(Typed::Line("x".repeat(20_000))),
        Input::Typed(Typed::Eof),
        Input::Typed(Typed::Pasted("q".into())),
        Input::Typed(Typed::Quit),
        Input::Typed(Typed::Interrupt),
        Input::Users(Vec::new()),
        Input::ServerLost(ServerLoss::NoHeartbeatAnswer),
        back_at("127.0.0.1:4000"),
    ];
    for line in [
        "OK WELCOME alice 10".to_string(),
        "OK FEATURES relay".into(),
        format!("OK CALL bob 7 {TOKEN} 127.0.0.1:5000"),
        "OK HANGUP 7".into(),
        "OK PONG".into(),
        "OK BYE".into(),
        "OK RELAYED 7".into(),
        "OK RESUMED bob 8".into(),
        "OK FOUND bob busy".into(),
        "ERR busy no".into(),
        "ERR already-in-call no".into(),
        "ERR name-taken no".into(),
        format!("EVENT INCOMING bob 7 {TOKEN}"),
        format!("EVENT INCOMING alice 7 {TOKEN}"),
        format!("EVENT INCOMING carol 8 {OTHER_TOKEN}"),
        "EVENT HANGUP 7 bob".into(),
        "EVENT HANGUP 8 carol".into(),
        "EVENT RELAY 7".into(),
        "OK LOCATED bob 127.0.0.1:5000".into(),
        format!("OK REJOIN bob 7 {TOKEN}"),
        format!("EVENT REJOIN bob 7 {TOKEN}"),
        format!("EVENT REJOIN carol 8 {TOKEN}"),
        "OK RINGING bob 7".into(),
        format!("OK ANSWER bob 7 {TOKEN}"),
        "OK DECLINE 7".into(),
        "OK WATCH on".into(),
        "EVENT RING bob 7".into(),
        "EVENT RING alice 7".into(),
        format!("EVENT ANSWERED bob 7 {TOKEN} 127.0.0.1:5000"),
        "EVENT DECLINED 7 bob".into(),
        "EVENT NOANSWER 7 bob".into(),
        "EVENT MISSED carol".into(),
        "EVENT PRESENCE joined:dave left:bob".into(),
    ] {
        inputs.push(Input::Server(ServerLine::parse(&line).unwrap()));
    }
    for (link, caller, call, text) in [
        (1, "bob", 7, TOKEN),
        (9, "bob", 7, TOKEN),
        (9, "alice", 7, TOKEN),
        (9, "bob", 7, OTHER_TOKEN),
    ] {
        inputs.push(Input::Hello {
            link,
            caller: caller.into(),
            call,
            token: Some(token(text)),
            route: Route::Relayed,
        });
    }
    for link in [1, 9] {
        for line in [
            "MSG hi", "BYE", "PING", "PING 3", "PONG", "PONG 3", "FEATURES",
        ] {
            inputs.push(Input::Peer {
                link,
                msgs: [PeerMessage::parse(line).unwrap()].into_iter().collect(),
            });
        }
        for end in [
            LinkEnd::Closed,
            LinkEnd::StoppedReading,
            LinkEnd::Failed("x".into()),
        ] {
            inputs.push(Input::LinkEnded { link, end });
        }
    }
    for call in [7, 8] {
        inputs.push(Input::Dialed {
            call,
            result: Ok(Dialed {
                link: 9,
                addr: "127.0.0.1:5000".parse().unwrap(),
                route: Route::Direct,
                key: token(OTHER_TOKEN),
                rejoined: None,
                strangers: Vec::new(),
            }),
        });
        inputs.push(Input::Dialed {
            call,
            result: Err(DialError::Start("no threads".into())),
        });
    }
    inputs
}

#[test]
fn every_input_in_every_state_keeps_the_core_valid() {
    let states = worlds_in_every_state().len();
    let inputs = every_input().len();
    for s in 0..states {
        for i in 0..inputs {
            let (name, mut world) = worlds_in_every_state().swap_remove(s);
            let input = every_input().swap_remove(i);
            let what = format!("{input:?}");
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                world.input(input);
                // And time passing after it, through every timer.
                world.advance(Duration::from_secs(120));
            }));
            if outcome.is_err() {
                let what: String = what.chars().take(200).collect();
                panic!("state {name:?}, input {what}: the core panicked or broke an invariant");
            }
        }
    }
}

// ---- calls that ring and are answered --------------------------------------

/// A world at the list whose server rings, has presence and missed calls.
fn registered_on_a_newer_server(me: &str) -> World {
    let mut w = World::new(None);
    w.server("OK FEATURES no-relay-code relay ring presence missed");
    w.typed(me);
    w.server(&format!("OK WELCOME {me} 10"));
    w.expect_request("LIST");
    w.users(&[me]);
    w.expect_request("WATCH on");
    w.server("OK WATCH on");
    w.skip_all();
    w
}

#[test]
fn a_call_rings_and_the_answer_sets_it_up() {
    let mut w = registered_on_a_newer_server("alice");
    w.typed("bob");
    w.expect_request("CALL bob");
    w.expect_request("WATCH off");
    w.server("OK RINGING bob 7");
    w.server("OK WATCH off");
    w.expect_line("Ringing bob…");
    assert_eq!(w.core.status(), "ringing bob (30 s)… ");
    w.server(&format!("EVENT ANSWERED bob 7 {TOKEN} 127.0.0.1:5000"));
    w.expect_dial(7);
    assert_eq!(w.core.status(), "calling bob… ");
}

#[test]
fn a_declined_or_unanswered_call_says_so_and_frees_the_caller() {
    for (event, text) in [
        ("EVENT DECLINED 7 bob", "bob declined."),
        ("EVENT NOANSWER 7 bob", "bob did not answer."),
        ("EVENT HANGUP 7 bob", "bob is gone."),
    ] {
        let mut w = World::registered("alice");
        w.typed("bob");
        w.server("OK RINGING bob 7");
        w.typed("typed while it rang");
        w.server(event);
        w.expect_line(text);
        w.expect_line("1 line typed meanwhile was not sent.");
        w.expect_request("LIST");
        assert_eq!(w.count(|o| matches!(o, Output::Dial { .. })), 0);
    }
}

#[test]
fn ctrl_c_while_it_rings_hangs_up() {
    let mut w = World::registered("alice");
    w.typed("bob");
    w.server("OK RINGING bob 7");
    w.key(Typed::Interrupt);
    w.expect_line("Call to bob cancelled.");
    w.expect_request("HANGUP 7");
    // An answer that crossed the hang-up is hung up, not dialed.
    w.server(&format!("EVENT ANSWERED bob 7 {TOKEN} 127.0.0.1:5000"));
    assert_eq!(w.count(|o| matches!(o, Output::Dial { .. })), 0);
}

#[test]
fn a_ringing_call_is_answered_with_y() {
    let mut w = World::registered("bob");
    w.server("EVENT RING alice 9");
    w.expect_line("alice is calling: y to answer, n to decline.");
    w.expect(Output::Bell);
    assert_eq!(w.core.status(), "alice is calling (30 s): y/n? ");
    // Anything else is not sent anywhere: the caller is not connected.
    w.typed("hello?");
    w.expect_line("alice is calling: y to answer, n to decline.");
    w.typed("y");
    w.expect_request("ANSWER 9");
    w.server(&format!("OK ANSWER alice 9 {TOKEN}"));
    w.hello(4, "alice", 9, TOKEN);
    w.expect(Output::Open { link: 4 });
    w.expect_line("alice connected.");
}

#[test]
fn a_ringing_call_is_declined_with_n_or_ctrl_c_or_rings_out() {
    let mut w = World::registered("bob");
    w.server("EVENT RING alice 9");
    w.typed("n");
    w.expect_line("You declined alice's call.");
    w.expect_request("DECLINE 9");
    w.expect_request("LIST");

    let mut w = World::registered("bob");
    w.server("EVENT RING alice 9");
    w.key(Typed::Interrupt);
    w.expect_request("DECLINE 9");
    assert!(w.core.exit().is_none(), "Ctrl-C declines, it does not quit");

    let mut w = World::registered("bob");
    w.server("EVENT RING alice 9");
    w.server("EVENT NOANSWER 9 alice");
    w.expect_line("You did not answer alice's call.");

    let mut w = World::registered("bob");
    w.server("EVENT RING alice 9");
    w.server("EVENT HANGUP 9 alice");
    w.expect_line("alice hung up before you answered.");
}

#[test]
fn a_y_typed_ahead_at_the_list_waits_for_the_ring_it_answers() {
    let mut w = World::registered("bob");
    w.typed("y");
    w.expect_quiet();
    assert_eq!(
        w.core.status(),
        "waiting for a call to answer (Ctrl-C cancels): "
    );
    w.server("EVENT RING alice 9");
    w.expect_request("ANSWER 9");
}

#[test]
fn nothing_typed_at_the_list_reaches_a_caller() {
    let mut w = World::registered("bob");
    // Typed at the list and submitted: calls carol, not a message.
    w.typed("carol");
    w.expect_request("CALL carol");
    w.server("EVENT RING alice 9");
    w.server("ERR already-in-call you are in a call");
    assert_eq!(w.core.status(), "alice is calling (30 s): y/n? ");
    assert_eq!(w.count(|o| matches!(o, Output::Peer { .. })), 0);
}

#[test]
fn an_ignored_caller_is_declined_unseen() {
    let mut w = World::registered("bob");
    w.typed("/ignore mallory");
    w.skip_all();
    w.server("EVENT RING mallory 3");
    w.expect_request("DECLINE 3");
    assert_eq!(
        w.count(|o| matches!(o, Output::Bell | Output::Line { .. })),
        0
    );
}

#[test]
fn calling_yourself_on_a_ringing_server_answers_itself() {
    let mut w = World::registered("alice");
    w.typed("alice");
    w.server("OK RINGING alice 2");
    w.server("EVENT RING alice 2");
    w.expect_request("ANSWER 2");
    w.server(&format!("OK ANSWER alice 2 {TOKEN}"));
    w.server(&format!("EVENT ANSWERED alice 2 {TOKEN} 127.0.0.1:4000"));
    w.expect_dial(2);
    w.hello(5, "alice", 2, TOKEN);
    w.expect(Output::Open { link: 5 });
}

// ---- presence and missed calls ---------------------------------------------

#[test]
fn presence_at_the_list_one_line_a_change_and_a_burst_in_one_line() {
    let mut w = registered_on_a_newer_server("alice");
    w.server("EVENT PRESENCE joined:bob busy:carol");
    w.expect_line("bob is online.");
    w.expect_line("carol is busy.");
    let burst: Vec<String> = (0..50).map(|i| format!("joined:p{i}")).collect();
    w.server(&format!("EVENT PRESENCE {} left:bob", burst.join(" ")));
    w.expect_line("50 came online, 1 left (p0, p1, p2, …); ENTER shows the list.");
    // Calling: no watching, and presence that crosses is not shown.
    w.typed("carol");
    w.expect_request("WATCH off");
    w.server("OK RINGING carol 8");
    w.server("OK WATCH off");
    w.server("EVENT PRESENCE left:dave");
    assert_eq!(
        w.count(|o| matches!(o, Output::Line { text, .. } if text.contains("dave"))),
        0
    );
}

#[test]
fn the_names_a_tab_completes_are_the_others_online_as_last_seen() {
    let mut w = World::new(None);
    assert_eq!(w.core.line_for(), LineFor::Name);
    w.server("OK FEATURES relay presence");
    w.typed("alice");
    assert_eq!(w.core.line_for(), LineFor::List);
    w.server("OK WELCOME alice 10");
    w.users(&["Zoë", "alice", "bob"]);
    assert_eq!(w.core.names(), ["bob", "Zoë"]);
    w.server("EVENT PRESENCE joined:Carol busy:bob left:Zoë");
    assert_eq!(w.core.names(), ["bob", "Carol"]);
    assert_eq!(w.core.line_for(), LineFor::List);
    // A call on its way and the chat take text; a ring takes an answer.
    w.typed("bob");
    assert_eq!(w.core.line_for(), LineFor::Chat);
    let mut w = World::chatting("alice", "bob");
    assert_eq!(w.core.line_for(), LineFor::Chat);
    w.typed("q");
    assert_eq!(w.core.line_for(), LineFor::List);
    let mut w = World::registered("bob");
    w.server("EVENT RING alice 9");
    assert_eq!(w.core.line_for(), LineFor::Answer);
}

#[test]
fn a_call_missed_while_busy_is_told_when_free() {
    let mut w = World::chatting("alice", "bob");
    w.input(Input::MissedCall {
        caller: "carol".into(),
        at: "14:02".into(),
    });
    assert_eq!(w.count(|o| matches!(o, Output::Line { .. })), 0);
    w.typed("q");
    w.expect_line("carol tried to call you at 14:02.");
}

// ---- leaving: BYE answered by BYE ------------------------------------------

#[test]
fn q_waits_for_the_peer_to_read_everything_before_closing() {
    let mut w = World::chatting("alice", "bob");
    w.peer(1, &["FEATURES ping-id bye-ack"]);
    w.typed("last words");
    w.typed("q");
    w.expect_to_peer(1, "MSG last words");
    w.expect_to_peer(1, "BYE");
    w.expect_line("You left the chat with bob.");
    w.expect(Output::EndSending { link: 1 });
    assert_eq!(w.core.status(), "leaving bob… ");
    assert_eq!(
        w.count(|o| matches!(o, Output::Server(_) | Output::Close { .. })),
        0,
        "nothing is closed or freed before the peer has read it all"
    );
    // What bob typed before he read our BYE is still shown.
    w.peer(1, &["MSG wait, one more", "BYE"]);
    w.expect_peer_line("bob", "wait, one more");
    w.expect(Output::Close { link: 1 });
    w.expect_request("HANGUP 7");
    w.expect_request("LIST");
}

#[test]
fn leaving_gives_up_waiting_after_the_leave_timeout_or_on_the_links_end() {
    let mut w = World::chatting("alice", "bob");
    w.peer(1, &["FEATURES bye-ack"]);
    w.typed("q");
    w.advance(Timers::default().leave);
    w.expect(Output::Close { link: 1 });
    w.expect_request("HANGUP 7");

    let mut w = World::chatting("alice", "bob");
    w.peer(1, &["FEATURES bye-ack"]);
    w.typed("q");
    w.link_broke(1);
    w.expect_request("HANGUP 7");
    assert_eq!(w.core.status(), "connect to: ");
}

#[test]
fn a_bye_received_is_answered_with_bye() {
    let mut w = World::chatting("alice", "bob");
    w.peer(1, &["MSG bye now", "BYE"]);
    w.expect_peer_line("bob", "bye now");
    w.expect_to_peer(1, "BYE");
    w.expect_line("bob left the chat.");
}

#[test]
fn lines_typed_as_a_chat_dies_with_the_server_gone_are_not_run_at_the_list() {
    let mut w = World::chatting("alice", "bob");
    w.input(Input::ServerLost(ServerLoss::Closed));
    w.link_broke(1);
    w.expect_line("bob left the chat (connection lost).");
    // Typed for the chat, a moment too late: neither a call nor a quit.
    w.typed("after");
    w.typed("q");
    w.advance(Timers::default().drain);
    w.expect_line("2 lines typed meanwhile were not sent.");
    w.expect_line("No list: the registration server is unreachable");
    // And just after the list's place was shown: still meant for the chat.
    w.typed("q");
    w.expect_line("1 line typed meanwhile was not sent.");
    assert!(w.core.exit().is_none(), "the q was meant for the chat");
    // Once the user has had a moment to see where they are, q is q.
    w.advance(Timers::default().drain);
    w.typed("q");
    assert_eq!(w.core.exit(), Some(&Exit::Quit));
}

// ---- chats that survive the network ----------------------------------------

/// A chat in which both sides can bring a broken link back.
fn resumable_chat() -> World {
    resumable_chat_on("relay")
}

fn resumable_chat_on(features: &str) -> World {
    let mut w = World::chatting_on("alice", "bob", features);
    w.peer(1, &["FEATURES ping-id bye-ack resume"]);
    w.expect_to_peer(1, &format!("RESUMABLE {OTHER_TOKEN}"));
    w.skip_all();
    w
}

#[test]
fn acknowledgements_ride_on_our_lines_or_wait_a_moment_or_go_at_once_for_a_flood() {
    let mut w = resumable_chat();
    // A line of ours carries what we owe.
    w.peer(1, &["MSG hi"]);
    assert_eq!(
        w.count(|o| matches!(
            o,
            Output::Peer {
                msg: PeerMessage::Ack(_),
                ..
            }
        )),
        0
    );
    w.typed("hello");
    w.expect_to_peer(1, "ACK 1");
    w.expect_to_peer(1, "MSG hello");
    // Nothing of ours to send: it goes on its own after the delay, once.
    w.peer(1, &["MSG more"]);
    w.advance(ACK_DELAY / 2);
    assert_eq!(
        w.count(|o| matches!(
            o,
            Output::Peer {
                msg: PeerMessage::Ack(_),
                ..
            }
        )),
        0
    );
    w.advance(ACK_DELAY);
    w.expect_to_peer(1, "ACK 2");
    w.advance(ACK_DELAY * 4);
    assert_eq!(
        w.count(|o| matches!(
            o,
            Output::Peer {
                msg: PeerMessage::Ack(_),
                ..
            }
        )),
        0
    );
    // A flood is acknowledged as it comes, so the sender never waits.
    let line = format!("MSG {}", "x".repeat(4000));
    let flood: Vec<&str> = vec![line.as_str(); ACK_AFTER_BYTES / 4000 + 1];
    w.peer(1, &flood);
    let n = 2 + flood.len();
    w.expect_to_peer(1, &format!("ACK {n}"));
}

#[test]
fn past_4_mib_the_peer_has_not_confirmed_a_line_is_refused_until_it_does() {
    // An integration test cannot get here: the chat stops reading stdin
    // at half the buffer (accepts_typing), and a terminal sends one line
    // at a time. Lines handed to the core directly can.
    let mut w = resumable_chat();
    let line = "x".repeat(4000);
    let fit = RESUME_BUFFER / line.len();
    for _ in 0..fit {
        w.typed(&line);
    }
    let sent = |w: &World| {
        w.count(|o| matches!(o, Output::Peer { msg: PeerMessage::Msg(t), .. } if *t == line))
    };
    assert_eq!(sent(&w), fit);
    assert!(!w.core.accepts_typing(), "a pipe would wait from half on");
    w.skip_all();
    // One more would be past 4 MiB unconfirmed: refused, not sent.
    w.typed(&line);
    w.expect_line(
        "Not sent: the peer has not confirmed the last 4 MiB yet; try again in a moment.",
    );
    assert_eq!(sent(&w), 0);
    // Once bob confirms, the next line goes.
    w.peer(1, &[&format!("ACK {fit}")]);
    assert!(w.core.accepts_typing());
    w.typed("after the ack");
    w.expect_to_peer(1, "MSG after the ack");
}

#[test]
fn a_broken_link_is_brought_back_and_what_was_missed_is_resent() {
    let mut w = resumable_chat();
    w.typed("one");
    w.typed("two");
    w.peer(1, &["ACK 1", "MSG from bob"]);
    w.advance(ACK_DELAY);
    w.expect_to_peer(1, "ACK 1");
    w.link_broke(1);
    w.expect_line("link to bob lost; reconnecting…");
    // The caller asks where bob is now, and will dial him with the key.
    w.expect_request("LOCATE bob");
    assert_eq!(w.core.status(), "reconnecting to bob… > ");
    w.typed("three");
    w.expect_line("not sent yet");
    w.server("OK LOCATED bob 127.0.0.3:5000");
    let dial = w.take("a redial", |o| {
        matches!(o, Output::Dial { relay: false, .. })
    });
    let Output::Dial { hello, addrs, .. } = dial else {
        unreachable!()
    };
    assert_eq!(addrs, ["127.0.0.3:5000".parse().unwrap()]);
    assert_eq!(
        hello[0].to_string(),
        format!("REHELLO alice {OTHER_TOKEN} 1")
    );
    // bob has our first line only: two and three go again, once each.
    w.brought_back(7, 9, "127.0.0.3:5000", Route::Direct, token(TOKEN), 1);
    w.expect_to_peer(9, "MSG two");
    w.expect_to_peer(9, "MSG three");
    w.expect_line("back with bob (2 lines resent)");
    assert_eq!(w.core.status(), "to bob> ");
    w.typed("four");
    w.expect_to_peer(9, "MSG four");
}

#[test]
fn piped_lines_go_in_one_batch_numbered_kept_and_resent_like_typed_ones() {
    let mut w = resumable_chat();
    w.peer(1, &["MSG from bob"]);
    w.piped(&["one", "two", "three"]);
    // What we owe rides along, before the batch.
    w.expect_to_peer(1, "ACK 1");
    for line in ["MSG one", "MSG two", "MSG three"] {
        w.expect_to_peer(1, line);
    }
    assert_eq!(w.batches, 1);
    w.peer(1, &["ACK 1"]);
    w.redialed_bob(token(TOKEN), 2);
    w.expect_to_peer(9, "MSG three");
    w.expect_line("back with bob (1 line resent)");
}

#[test]
fn a_piped_burst_holding_a_command_or_an_oversize_line_is_taken_line_by_line() {
    let mut w = World::chatting("alice", "bob");
    w.piped(&["one", "/who", "two", "q", "after"]);
    w.expect_to_peer(1, "MSG one");
    w.expect_request("LIST");
    w.expect_to_peer(1, "MSG two");
    w.expect_to_peer(1, "BYE");
    assert_eq!(w.batches, 0);
    assert_eq!(
        w.count(|o| matches!(o, Output::Peer { msg: PeerMessage::Msg(t), .. } if t == "after")),
        0
    );
    // Longer than one message to a peer without `long-lines`: in pieces.
    let mut w = World::chatting("alice", "bob");
    let long = "y".repeat(MAX_TEXT + 10);
    w.piped(&["short", &long]);
    w.expect_to_peer(1, "MSG short");
    assert_eq!(w.batches, 0);
    assert_eq!(
        w.count(
            |o| matches!(o, Output::Peer { msg: PeerMessage::Msg(t), .. } if t.starts_with('y'))
        ),
        2
    );
    // Empty lines are not sent, as when typed.
    let mut w = World::chatting("alice", "bob");
    w.piped(&["a", "", "b"]);
    assert_eq!(w.batches, 0);
    assert_eq!(w.count(|o| matches!(o, Output::Peer { .. })), 2);
}

#[test]
fn piped_lines_outside_a_chat_are_typed_lines() {
    let mut w = World::registered("alice");
    w.piped(&["bob"]);
    w.expect_request("CALL bob");
    assert_eq!(w.batches, 0);
}

#[test]
fn the_server_saying_the_peer_left_before_the_link_breaks_still_waits_for_it() {
    let mut w = resumable_chat();
    w.server("EVENT HANGUP 7 bob");
    w.link_broke(1);
    w.expect_line("link to bob lost; reconnecting…");
    assert!(
        !w.fresh()
            .iter()
            .any(|o| matches!(o, Output::Line { text, .. } if text.contains("left the chat")))
    );
}

#[test]
fn lines_sent_before_the_peer_said_it_resumes_are_kept_and_sent_again() {
    let mut w = World::chatting("alice", "bob");
    // The first round trip: bob has not announced his features yet.
    w.typed("early");
    w.peer(1, &["FEATURES ping-id bye-ack resume"]);
    w.expect_to_peer(1, &format!("RESUMABLE {OTHER_TOKEN}"));
    w.redialed_bob(token(OTHER_TOKEN), 0);
    w.expect_to_peer(9, "MSG early");
    w.expect_line("back with bob (1 line resent)");
}

#[test]
fn a_peer_without_resume_has_nothing_kept_and_a_flood_before_it_says_is_not_held() {
    let mut w = World::chatting("alice", "bob");
    w.typed("early");
    w.peer(1, &["FEATURES ping-id"]);
    w.link_broke(1);
    w.expect_line("bob left the chat (connection lost).");
    // A peer that says nothing while more than half the resend buffer
    // goes: the lines go, unkept, and typing is never held up for it.
    let mut w = World::chatting("alice", "bob");
    let line = "x".repeat(4000);
    let lines = RESUME_BUFFER / 2 / line.len() + 10;
    for _ in 0..lines {
        w.typed(&line);
        assert!(w.core.accepts_typing());
    }
    assert_eq!(
        w.count(|o| matches!(
            o,
            Output::Peer {
                msg: PeerMessage::Msg(_),
                ..
            }
        )),
        lines
    );
    // bob is told the chat will not resume, and given no key to resume it:
    // he must neither keep his lines nor wait for acknowledgements.
    w.expect_to_peer(1, "FEATURES ping-id bye-ack long-lines");
    w.peer(1, &["FEATURES ping-id bye-ack resume", "MSG hi"]);
    let keys = |o: &Output| {
        matches!(
            o,
            Output::Peer {
                msg: PeerMessage::Resumable(_),
                ..
            }
        )
    };
    assert_eq!(w.count(keys), 0);
    w.link_broke(1);
    w.expect_line("bob left the chat (connection lost).");
}

#[test]
fn what_came_before_the_chat_could_resume_is_acknowledged_once_it_can() {
    let mut w = World::registered("bob");
    w.server(&format!("EVENT INCOMING alice 9 {TOKEN}"));
    w.hello(3, "alice", 9, TOKEN);
    w.peer(3, &["FEATURES resume", "MSG one", "MSG two"]);
    w.advance(ACK_DELAY * 2);
    assert_eq!(
        w.count(|o| matches!(
            o,
            Output::Peer {
                msg: PeerMessage::Ack(_),
                ..
            }
        )),
        0
    );
    // The key makes it resumable: both lines are acknowledged.
    w.peer(3, &[&format!("RESUMABLE {OTHER_TOKEN}")]);
    w.advance(ACK_DELAY);
    w.expect_to_peer(3, "ACK 2");
}

#[test]
fn a_broken_link_comes_back_through_the_relay_when_the_server_reopens_it() {
    let mut w = resumable_chat_on("relay rejoin");
    w.typed("one");
    w.link_broke(1);
    w.expect_line("link to bob lost; reconnecting…");
    w.expect_request("LOCATE bob");
    w.server("OK LOCATED bob 127.0.0.1:1");
    // The relay opens again before the dial, as its last way.
    w.expect_request("REJOIN bob");
    w.server(&format!("OK REJOIN bob 12 {TOKEN}"));
    let dial = w.take("a redial", |o| matches!(o, Output::Dial { .. }));
    let Output::Dial {
        call,
        keys,
        caller: _,
        hello,
        addrs,
        relay,
        pace,
    } = dial
    else {
        unreachable!()
    };
    // One way at a time: two that both reached bob would take the chat
    // from each other.
    assert!(relay && pace == Pace::OneAtATime);
    assert_eq!((call, keys.relay()), (12, token(TOKEN)));
    assert!(!keys.knocks(), "an older server: nothing to prove");
    assert_eq!(addrs, ["127.0.0.1:1".parse().unwrap()]);
    // The chat's own key, not the relay's token, proves it is ours.
    assert_eq!(
        hello[0].to_string(),
        format!("REHELLO alice {OTHER_TOKEN} 0")
    );
    w.brought_back(
        12,
        9,
        "127.0.0.1:7700",
        Route::Relayed,
        token(OTHER_TOKEN),
        0,
    );
    w.expect_to_peer(9, "MSG one");
    w.expect_line("back with bob (1 line resent)");
    assert_eq!(w.core.status(), "to bob (relayed)> ");
}

#[test]
fn without_the_relay_a_broken_link_is_dialed_directly_only() {
    let mut w = resumable_chat_on("relay rejoin");
    w.link_broke(1);
    w.expect_request("LOCATE bob");
    w.server("OK LOCATED bob 127.0.0.3:5000");
    w.expect_request("REJOIN bob");
    w.server("ERR no-relay this server does not relay chats (--no-relay)");
    w.take("a direct redial", |o| {
        matches!(
            o,
            Output::Dial {
                relay: false,
                call: 7,
                ..
            }
        )
    });
}

#[test]
fn the_callee_opens_its_half_of_the_relay_only_for_its_own_peer() {
    let mut w = World::registered_on("bob", "relay rejoin");
    w.server(&format!("EVENT INCOMING alice 9 {TOKEN}"));
    w.hello(3, "alice", 9, TOKEN);
    w.peer(3, &["FEATURES resume", &format!("RESUMABLE {OTHER_TOKEN}")]);
    // Before the link is known broken as after: its peer only.
    w.server(&format!("EVENT REJOIN mallory 9 {TOKEN}"));
    assert_eq!(w.count(|o| matches!(o, Output::JoinRelay { .. })), 0);
    w.link_broke(3);
    w.expect_line("link to alice lost; reconnecting…");
    w.server(&format!("EVENT REJOIN mallory 9 {TOKEN}"));
    assert_eq!(w.count(|o| matches!(o, Output::JoinRelay { .. })), 0);
    w.server(&format!("EVENT REJOIN alice 11 {OTHER_TOKEN}"));
    w.expect(Output::JoinRelay {
        call: 11,
        token: token(OTHER_TOKEN),
    });
    // What comes through it must still carry the chat's key.
    w.input(Input::Rehello {
        link: 5,
        caller: "alice".into(),
        key: token(OTHER_TOKEN),
        received: 0,
        route: Route::Relayed,
    });
    w.expect(Output::Open { link: 5 });
    w.expect_to_peer(5, "REWELCOME bob 0");
    w.expect_line("back with alice (0 lines resent)");
    assert_eq!(w.core.status(), "to alice (relayed)> ");
}

#[test]
fn a_peer_gone_from_the_server_is_waited_for_out_loud_and_who_still_works() {
    let mut w = resumable_chat();
    w.link_broke(1);
    w.expect_line("link to bob lost; reconnecting…");
    w.expect_request("LOCATE bob");
    // bob vanished from the server too (killed, or his network went).
    w.server("EVENT HANGUP 7 bob");
    // Busy while it waits for bob, so nobody's call is declined unseen.
    w.expect_request("RESUME bob");
    w.expect_request("LOOKUP bob");
    w.server("ERR not-in-call you are not in a call with bob");
    w.server("OK RESUMED bob 8");
    w.server("ERR unknown-user no user named bob is online");
    w.expect_line(
        "bob is not online now; waiting up to 60 s for bob to come back (q ends the chat).",
    );
    // Who is online is what one wants to know now.
    w.typed("/who");
    w.expect_request("LIST");
    assert_eq!(w.core.status(), "reconnecting to bob… > ");
}

#[test]
fn the_callee_takes_back_only_its_own_chat() {
    let mut w = World::registered("bob");
    w.server(&format!("EVENT INCOMING alice 9 {TOKEN}"));
    w.hello(3, "alice", 9, TOKEN);
    w.peer(
        3,
        &[
            "FEATURES resume",
            &format!("RESUMABLE {OTHER_TOKEN}"),
            "MSG hi",
        ],
    );
    w.link_broke(3);
    w.expect_line("link to alice lost; reconnecting…");
    // A stranger with the wrong key is refused; alice with hers is let in.
    w.input(Input::Rehello {
        link: 4,
        caller: "alice".into(),
        key: token(TOKEN),
        received: 0,
        route: Route::Direct,
    });
    w.expect(Output::Refuse {
        link: 4,
        code: ErrorCode::BadToken,
        message: "no such chat to bring back".into(),
    });
    w.input(Input::Rehello {
        link: 5,
        caller: "alice".into(),
        key: token(OTHER_TOKEN),
        received: 0,
        route: Route::Direct,
    });
    w.expect(Output::Open { link: 5 });
    w.expect_to_peer(5, "REWELCOME bob 1");
    w.expect_line("back with alice (0 lines resent)");
}

#[test]
fn the_grace_running_out_tells_what_was_not_confirmed() {
    let mut w = resumable_chat();
    w.typed("kept safe");
    w.peer(1, &["ACK 1"]);
    w.typed("lost in the storm");
    w.link_broke(1);
    w.advance(Timers::default().grace);
    w.expect_line("The link to bob could not be brought back; the chat ended.");
    w.expect_line(
        "1 of your lines was not confirmed by bob (they may not have arrived): “lost in the storm”.",
    );
}

#[test]
fn a_peer_that_reads_but_never_acknowledges_is_taken_for_a_broken_link() {
    let mut w = resumable_chat();
    w.typed("are you there?");
    // bob keeps the link alive but never acknowledges: after the silence
    // limit the chat goes reconnecting (bounded by the grace), so typing
    // is never held back for good.
    for _ in 0..4 {
        w.advance(Timers::default().silence / 5);
        w.peer(1, &["PING 1"]);
    }
    w.advance(Timers::default().silence / 5);
    w.expect_line("link to bob lost; reconnecting…");
}

#[test]
fn acknowledgements_keep_a_busy_chat_going() {
    let mut w = resumable_chat();
    for i in 1..=6 {
        w.typed(&format!("line {i}"));
        w.advance(Timers::default().silence / 4);
        w.peer(1, &[&format!("ACK {i}"), "PING 1"]);
    }
    assert_eq!(w.core.status(), "to bob> ");
}

#[test]
fn kept_lines_come_back_in_order_across_batches_and_free_what_was_dropped() {
    let mut kept = KeptLines::default();
    kept.push_back("one");
    kept.push_back("two");
    kept.push_all(&Arc::new(["three", "four"].into_iter().collect()));
    kept.push_back("five");
    kept.push_all(&Arc::default());
    assert_eq!(kept.len(), 5);
    assert!(kept.iter().eq(["one", "two", "three", "four", "five"]));
    assert_eq!(kept.drop_front(3), "onetwothree".len());
    assert!(kept.iter().eq(["four", "five"]));
    // The first chunk is gone; "five" had joined the batch's.
    assert_eq!(kept.chunks.len(), 1);
    assert_eq!(kept.drop_front(1), 4);
    assert_eq!(kept.drop_front(5), 4);
    assert!(kept.is_empty() && kept.chunks.is_empty());
    assert_eq!(kept.drop_front(1), 0);
    // Typed lines fill a chunk up to its size, then start another.
    let line = "x".repeat(1000);
    for _ in 0..100 {
        kept.push_back(&line);
    }
    assert_eq!(kept.chunks.len(), 2);
    assert!(
        kept.chunks
            .iter()
            .all(|c| c.text_len() <= KEPT_CHUNK + line.len())
    );
}

// ---- one system: what the server knows decides, not a clock ------------

/// alice chats with bob (resumable) on a server with `session`.
fn session_chat() -> World {
    resumable_chat_on("relay rejoin session")
}

#[test]
fn a_peer_whose_program_closed_ends_the_chat_on_the_servers_verdict() {
    let mut w = session_chat();
    w.typed("are you there?");
    w.link_broke(1);
    w.expect_line("link to bob lost; reconnecting…");
    w.server("EVENT HANGUP 7 bob closed");
    // Busy meanwhile; no "waiting up to 60 s": the verdict comes in a moment.
    w.expect_request("RESUME bob");
    assert_eq!(
        w.count(|o| matches!(o, Output::Server(Request::Lookup { .. }))),
        0
    );
    assert_eq!(
        w.count(|o| matches!(o, Output::Line { text, .. } if text.contains("waiting up to"))),
        0
    );
    w.server("EVENT GONE bob");
    w.expect_line("bob's chat closed; the chat ended.");
    w.expect_line("not confirmed");
    w.expect_request("HANGUP 7");
    w.expect_request("LIST");
}

#[test]
fn a_peer_gone_while_its_link_is_up_ends_when_the_link_does_and_its_lines_are_shown() {
    let mut w = session_chat();
    // A new program took bob's name while his old one hangs (stopped).
    w.server("EVENT GONE bob");
    w.expect_quiet();
    w.peer(1, &["MSG last words"]);
    w.expect_peer_line("bob", "last words");
    w.link_broke(1);
    w.expect_line("bob's chat closed; the chat ended.");
    assert_eq!(
        w.count(|o| matches!(o, Output::Line { text, .. } if text.contains("reconnecting"))),
        0
    );
    w.expect_request("LIST");

    // A link that never ends: the drain wait ends it.
    let mut w = session_chat();
    w.server("EVENT GONE bob");
    w.advance(Timers::default().drain * 2);
    w.expect_line("bob's chat closed; the chat ended.");
}

#[test]
fn gone_for_someone_else_changes_nothing() {
    let mut w = session_chat();
    w.server("EVENT GONE carol");
    w.link_broke(1);
    w.expect_line("link to bob lost; reconnecting…");
    w.server("EVENT GONE carol");
    assert!(matches!(w.core.place(), Some(Place::Rejoining { .. })));
}

#[test]
fn a_ring_that_finds_us_in_a_chat_is_refused_as_busy_not_declined() {
    let mut w = session_chat();
    w.server("EVENT RING carol 12");
    w.expect_request("BUSY 12");
    assert_eq!(
        w.count(|o| matches!(o, Output::Server(Request::Decline { .. }))),
        0
    );
    // While bringing a link back, too.
    w.link_broke(1);
    w.server("EVENT RING carol 13");
    w.expect_request("BUSY 13");
    // A server without `session` is declined to, as before.
    let mut w = resumable_chat();
    w.server("EVENT RING carol 12");
    w.expect_request("DECLINE 12");
}

#[test]
fn the_callee_notes_the_link_so_a_short_chat_sets_off_no_recall_wait() {
    let mut w = World::registered_on("bob", "relay session");
    w.server(&format!("EVENT INCOMING alice 9 {TOKEN}"));
    w.hello(3, "alice", 9, TOKEN);
    w.expect_line("alice connected");
    w.expect_request("LINKED 9");
    w.server("OK LINKED 9");
    // Not to a server that would not know the word.
    let mut w = World::registered_on("bob", "relay");
    w.server(&format!("EVENT INCOMING alice 9 {TOKEN}"));
    w.hello(3, "alice", 9, TOKEN);
    w.expect_line("alice connected");
    assert_eq!(
        w.count(|o| matches!(o, Output::Server(Request::Linked { .. }))),
        0
    );
}

#[test]
fn a_registration_taken_again_presents_its_secret() {
    let mut w = World::new(None);
    w.server("OK FEATURES relay session");
    w.typed("alice");
    w.expect_request("REGISTER alice 127.0.0.1:4000");
    w.server(&format!("OK WELCOME alice 10 {TOKEN}"));
    w.skip_all();
    w.input(Input::ServerLost(ServerLoss::Closed));
    w.input(back_at("127.0.0.1:4000"));
    w.expect_request(&format!("REGISTER alice 127.0.0.1:4000 {TOKEN}"));
    // A server that does not take it: once more, without.
    w.server("OK FEATURES relay");
    w.server("ERR bad-request usage: REGISTER NAME IP:PORT");
    w.input(back_at("127.0.0.1:4000"));
    w.expect_request("REGISTER alice 127.0.0.1:4000");
}

#[test]
fn a_line_typed_as_an_unanswered_call_comes_in_never_reaches_the_caller() {
    let mut w = World::registered("bob");
    w.server(&format!("EVENT INCOMING alice 9 {TOKEN}"));
    // Typed for the list (a call to carol) a moment too late.
    w.typed_as_alices_call_comes_in();
    // A line typed after answering a ring is for the chat.
    let mut w = World::registered("bob");
    w.server("EVENT RING alice 9");
    w.typed("y");
    w.server(&format!("OK ANSWER alice 9 {TOKEN}"));
    w.typed("hello alice");
    w.hello(3, "alice", 9, TOKEN);
    w.expect_to_peer(3, "MSG hello alice");
}

/// A world in the place a column of README's commands table names, on a
/// server that takes `/away`.
fn world_at(place: &str) -> World {
    let mut w = world_at_taking_no_files(place);
    w.core.settings.files = Some(FileSettings::default());
    w
}

fn world_at_taking_no_files(place: &str) -> World {
    const FEATURES: &str = "relay away";
    match place {
        "name prompt" => World::new(None),
        "at the list" => World::registered_on("alice", FEATURES),
        "your call rings" => {
            let mut w = World::registered_on("alice", FEATURES);
            w.typed("bob");
            w.server("OK RINGING bob 7");
            w.expect_line("Ringing bob");
            w
        }
        "you are rung" => {
            let mut w = World::registered_on("alice", FEATURES);
            w.server("EVENT RING bob 7");
            w
        }
        "in a chat" => World::chatting_on("alice", "bob", FEATURES),
        "reconnecting" => {
            let mut w = resumable_chat_on(FEATURES);
            w.link_broke(1);
            w.expect_line("link to bob lost; reconnecting…");
            w
        }
        other => panic!("README's commands table names a place the test does not know: {other}"),
    }
}

/// README's "Where each works" table, as (typed, [(place, effects)]).
fn commands_table() -> Vec<(String, Vec<(String, String)>)> {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("| typed | name prompt |")
        .expect("README has the commands-by-place table");
    let mut rows = readme[start..].lines().take_while(|l| l.starts_with('|'));
    let cells = |line: &str| -> Vec<String> {
        line.trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let places = cells(rows.next().unwrap());
    rows.next(); // |---|
    rows.map(|row| {
        let cells = cells(row);
        let effects = places[1..]
            .iter()
            .cloned()
            .zip(cells[1..].iter().cloned())
            .collect();
        (cells[0].clone(), effects)
    })
    .collect()
}

#[test]
fn the_commands_table_holds_in_every_place() {
    let table = commands_table();
    assert_eq!(table.len(), 14, "{table:?}");
    let mut checked = 0;
    for (typed, effects) in &table {
        let inputs: Vec<Typed> = match typed.as_str() {
            "Ctrl-C" => vec![Typed::Interrupt],
            "Ctrl-D" => vec![Typed::Eof],
            words => words
                .split(", ")
                .map(|w| Typed::Line(w.trim_matches('`').to_string()))
                .collect(),
        };
        for input in inputs {
            for (place, effect) in effects {
                let mut w = world_at(place);
                if *typed == "`/back`" {
                    // Back from where one went away.
                    w.typed("/away");
                }
                w.skip_all();
                let what = format!("{input:?} {place}: {effect}");
                w.key(input.clone());
                for effect in effect.split(", ") {
                    match effect {
                        "leave" => {
                            // A list asked for on the way is answered first:
                            // end of input waits for it, as typing does.
                            for _ in 0..8 {
                                match w.core.server.pending.front() {
                                    Some(Pending::Hangup) => w.server("OK HANGUP 7"),
                                    Some(Pending::Decline) => w.server("OK DECLINE 7"),
                                    Some(Pending::List) => w.users(&["alice"]),
                                    Some(_) => w.server("ERR internal not now"),
                                    None => break,
                                }
                            }
                            assert_eq!(w.core.exit(), Some(&Exit::Quit), "{what}");
                        }
                        "cancel" => {
                            w.expect_line("Call to bob cancelled.");
                            w.expect_request("LIST");
                        }
                        "decline" => {
                            w.expect_line("You declined bob's call.");
                            w.expect_request("DECLINE 7");
                        }
                        "end" => {
                            w.expect_line("You left the chat with bob.");
                            w.expect_request("LIST");
                        }
                        "list" => {
                            w.expect_request("LIST");
                            assert!(w.core.exit().is_none(), "{what}");
                        }
                        "help" => {
                            w.expect_line("Commands:");
                            assert!(w.core.exit().is_none(), "{what}");
                        }
                        "not yet" => {
                            w.expect_line("enter your visible name first");
                            assert!(w.core.exit().is_none(), "{what}");
                        }
                        "away" => {
                            w.expect_request("AWAY");
                            w.expect_line("You are away");
                        }
                        "back" => {
                            w.expect_request("BACK");
                            w.expect_line("You are back.");
                        }
                        "unignore" => w.expect_line("bob was not ignored."),
                        "not in a chat" => {
                            w.expect_line("Not in a chat");
                            let out =
                                |o: &Output| matches!(o, Output::Server(_) | Output::Peer { .. });
                            assert_eq!(w.count(out), 0, "{what}");
                        }
                        "waits" => w.expect_quiet(),
                        "asks again" => w.expect_line("bob is calling: y to answer, n to decline."),
                        "sent" => w.expect_to_peer(1, "MSG * alice waves"),
                        "kept" => w.expect_line("goes to bob once the link is back"),
                        "cannot receive" => w.expect_line("bob's chat cannot receive files."),
                        "not now" => w.expect_line("Not now: the link is down"),
                        "nothing offered" => w.expect_line("No file is offered to you."),
                        "no transfer" => w.expect_line("No transfer is under way."),
                        "no transfers" => w.expect_line("No transfers."),
                        other => panic!("an effect the test does not know: {other} ({what})"),
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 16 * 6, "every cell of every row");
}

#[test]
fn a_chat_that_asks_takes_no_call_set_up_without_a_ring() {
    let mut w = World::registered_on("bob", "relay ring session");
    w.server(&format!("EVENT INCOMING mallory 9 {TOKEN}"));
    w.expect_line("mallory called from a chat that cannot ring; not taken");
    w.expect_request("HANGUP 9");
    // Her HELLO then finds no call expected.
    w.hello(3, "mallory", 9, TOKEN);
    w.take("the HELLO refused", |o| {
        matches!(o, Output::Refuse { link: 3, message, .. } if message.contains("wrong or expired token"))
    });
    assert!(matches!(w.core.place(), Some(Place::AtList)));
}

#[test]
fn an_auto_answering_chat_answers_a_ring_at_once_and_keeps_what_was_typed_from_the_caller() {
    let mut w = World::registered_on("bob", "relay ring session");
    w.core.settings.answering = Answering::Auto;
    w.server("EVENT RING alice 9");
    w.expect_request("ANSWER 9");
    w.expect_line("alice is calling you…");
    w.server(&format!("OK ANSWER alice 9 {TOKEN}"));
    w.typed_as_alices_call_comes_in();
}

#[test]
fn a_peer_back_from_a_lost_network_is_free_a_moment_before_it_resumes() {
    for resumes in [true, false] {
        let mut w = resumable_chat();
        w.link_broke(1);
        w.expect_line("link to bob lost; reconnecting…");
        w.expect_request("LOCATE bob");
        w.server("EVENT HANGUP 7 bob lost");
        w.expect_request("RESUME bob");
        w.expect_request("LOOKUP bob");
        w.server("ERR not-in-call you are not in a call with bob");
        w.server("OK RESUMED bob 8");
        w.skip_all();
        // bob registered again and has not said RESUME yet: free, for now.
        w.server("OK FOUND bob free");
        w.expect_quiet();
        w.advance(Duration::from_secs(1));
        // Asked again a moment later (and, as the caller, where it is).
        w.expect_request("LOOKUP bob");
        w.expect_request("LOCATE bob");
        // The RESUME sent after the LOCATE that found no call, answered.
        w.server("ERR already-in-call you are in a call");
        if resumes {
            w.server("OK FOUND bob busy");
            w.server("OK LOCATED bob 127.0.0.1:1");
            let ended =
                |o: &Output| matches!(o, Output::Line { text, .. } if text.contains("ended"));
            assert_eq!(w.count(ended), 0, "{:#?}", w.fresh());
        } else {
            // Free, and free again a moment later: bob ended the chat.
            w.server("OK FOUND bob free");
            w.expect_line("bob ended the chat.");
        }
    }
}

// ---- calls, commands and names as people expect (#22) ----------------------

#[test]
fn a_ring_is_answered_yes_or_no_in_any_case() {
    for (typed, request) in [
        ("YES", "ANSWER 9"),
        (" Yes ", "ANSWER 9"),
        ("Y", "ANSWER 9"),
        ("No", "DECLINE 9"),
        ("N", "DECLINE 9"),
    ] {
        let mut w = World::registered("bob");
        w.server("EVENT RING alice 9");
        w.typed(typed);
        w.expect_request(request);
    }
    // Anything else asks again, and answers nothing.
    let mut w = World::registered("bob");
    w.server("EVENT RING alice 9");
    w.typed("yess");
    w.expect_line("alice is calling: y to answer, n to decline.");
    assert_eq!(w.count(|o| matches!(o, Output::Server(_))), 0);
}

#[test]
fn a_ring_for_us_counts_down_and_rings_the_bell_again_until_answered() {
    let mut w = World::registered("bob");
    w.server("EVENT RING alice 9 24");
    w.expect(Output::Bell);
    assert_eq!(w.core.status(), "alice is calling (24 s): y/n? ");
    w.advance(Duration::from_millis(1500));
    assert_eq!(w.core.status(), "alice is calling (23 s): y/n? ");
    // A bell every five seconds while it rings, none as it runs out.
    w.skip_all();
    w.advance(Duration::from_millis(22_400));
    assert_eq!(w.core.status(), "alice is calling (1 s): y/n? ");
    assert_eq!(w.count(|o| *o == Output::Bell), 4);
    w.skip_all();
    w.advance(Duration::from_secs(5));
    assert_eq!(w.core.status(), "alice is calling (0 s): y/n? ");
    assert_eq!(w.count(|o| *o == Output::Bell), 0);
    // A ring the server says is over rings no bell.
    let mut w = World::registered("bob");
    w.server("EVENT RING alice 9 0");
    w.skip_all();
    w.advance(Duration::from_secs(12));
    assert_eq!(w.count(|o| *o == Output::Bell), 0);
    assert_eq!(w.core.status(), "alice is calling (0 s): y/n? ");
    // Answered: the bell stops.
    let mut w = World::registered("bob");
    w.server("EVENT RING alice 9 24");
    w.typed("y");
    w.skip_all();
    w.advance(Duration::from_secs(12));
    assert_eq!(w.count(|o| *o == Output::Bell), 0);
}

#[test]
fn the_caller_sees_the_same_countdown_and_an_older_servers_ring_its_own() {
    let mut w = World::registered("alice");
    w.typed("bob");
    w.server("OK RINGING bob 7 12");
    assert_eq!(w.core.status(), "ringing bob (12 s)… ");
    w.skip_all();
    w.advance(Duration::from_millis(2500));
    assert_eq!(w.core.status(), "ringing bob (10 s)… ");
    assert_eq!(w.count(|o| *o == Output::Bell), 0, "only the callee rings");
    // The server does not say: the chat's own setting (--ring).
    let mut w = World::registered("alice");
    w.core.settings.timers.ringing = Duration::from_secs(45);
    w.typed("bob");
    w.server("OK RINGING bob 7");
    assert_eq!(w.core.status(), "ringing bob (45 s)… ");
    let mut w = World::registered("bob");
    w.server("EVENT RING alice 9");
    assert_eq!(w.core.status(), "alice is calling (30 s): y/n? ");
}

#[test]
fn commands_are_read_in_any_case() {
    let mut w = World::chatting("alice", "bob");
    w.typed("/WHO");
    w.expect_request("LIST");
    w.users(&["alice", "bob"]);
    w.typed("/Help");
    w.expect_line("Commands:");
    w.typed("/SAY Hi");
    w.expect_to_peer(1, "MSG Hi");
    w.typed("/QUIT");
    w.expect_line("You left the chat with bob.");
}

#[test]
fn say_alone_says_how_and_me_sends_a_line_older_peers_read() {
    let mut w = World::chatting("alice", "bob");
    w.typed("/say");
    w.expect_line("/say takes the text to send: /say TEXT; nothing was sent.");
    w.typed("/me");
    w.expect_line("/me takes what you do: /me waves; nothing was sent.");
    assert_eq!(w.count(|o| matches!(o, Output::Peer { .. })), 0);
    w.typed("/me waves hello");
    w.expect_to_peer(1, "MSG * alice waves hello");
    // At the list there is nobody to wave to.
    let mut w = World::registered("alice");
    w.typed("/me waves");
    w.expect_line("Not in a chat");
    assert_eq!(w.count(|o| matches!(o, Output::Server(_))), 0);
}

#[test]
fn unignore_lets_calls_ring_again_and_ignore_hides_missed_calls_from_before() {
    let mut w = World::chatting("alice", "bob");
    for caller in ["carol", "dave"] {
        w.input(Input::MissedCall {
            caller: caller.into(),
            at: "14:02".into(),
        });
    }
    w.typed("/ignore Carol");
    w.expect_line("Calls from Carol are declined unseen");
    w.input(Input::MissedCall {
        caller: "carol".into(),
        at: "14:03".into(),
    });
    w.typed("q");
    w.expect_line("dave tried to call you at 14:02.");
    assert_eq!(
        w.count(|o| matches!(o, Output::Line { text, .. } if text.contains("carol"))),
        0,
        "{:#?}",
        w.fresh()
    );
    w.server("OK HANGUP 7");
    w.users(&["alice"]);
    w.typed("/unignore carol");
    w.expect_line("Calls from carol ring again.");
    w.typed("/unignore carol");
    w.expect_line("carol was not ignored.");
    w.server("EVENT RING carol 12");
    w.expect_line("carol is calling: y to answer, n to decline.");
}

#[test]
fn a_blank_line_typed_at_a_terminal_is_not_sent_and_a_piped_one_is() {
    let mut w = World::chatting("alice", "bob");
    for blank in ["", "   ", " \t "] {
        w.typed(blank);
    }
    w.piped(&["one", "  ", "two"]);
    w.expect_to_peer(1, "MSG one");
    w.expect_to_peer(1, "MSG two");
    let sent = |w: &World| {
        w.count(|o| {
            matches!(
                o,
                Output::Peer {
                    msg: PeerMessage::Msg(_),
                    ..
                }
            )
        })
    };
    assert_eq!(sent(&w), 0, "{:#?}", w.fresh());
    // At the list, ENTER still shows the list.
    let mut w = World::registered("alice");
    w.typed("");
    w.expect_request("LIST");
    // From a pipe, every line is meant.
    let mut w = World::chatting("alice", "bob");
    w.core.settings.typed_from = TypedFrom::Pipe;
    w.typed("");
    w.expect_to_peer(1, "MSG ");
    w.piped(&["one", "  ", ""]);
    w.expect_to_peer(1, "MSG one");
    w.expect_to_peer(1, "MSG   ");
    w.expect_to_peer(1, "MSG ");
}

#[test]
fn away_tells_the_server_holds_missed_calls_until_back_and_takes_no_ring() {
    let mut w = World::registered_on("bob", "relay session away");
    w.typed("/away at lunch");
    w.expect_request("AWAY at lunch");
    w.expect_line("You are away (at lunch)");
    assert_eq!(w.core.status(), "connect to (away): ");
    w.server("OK AWAY");
    w.input(Input::MissedCall {
        caller: "carol".into(),
        at: "14:02".into(),
    });
    // A ring that crossed our AWAY finds us busy: no bell, no question.
    w.server("EVENT RING dave 12");
    w.expect_request("BUSY 12");
    assert_eq!(
        w.count(|o| matches!(o, Output::Bell | Output::Line { .. })),
        0,
        "{:#?}",
        w.fresh()
    );
    // A new registration says it again, before the list.
    w.input(Input::ServerLost(ServerLoss::Closed));
    w.input(back_at("127.0.0.1:4000"));
    w.expect_request("REGISTER bob 127.0.0.1:4000");
    w.server("OK FEATURES relay session away");
    w.server("OK WELCOME bob 10");
    w.expect_request("AWAY at lunch");
    w.expect_request("LIST");
    w.server("OK AWAY");
    w.users(&["bob"]);
    w.skip_all();
    w.typed("/back");
    w.expect_request("BACK");
    w.expect_line("You are back.");
    w.expect_line("carol tried to call you at 14:02.");
    assert_eq!(w.core.status(), "connect to: ");
    w.typed("/back");
    w.expect_line("You are not away.");
    // A server without the word: said so, and calls still ring.
    let mut w = World::registered("bob");
    w.typed("/away");
    w.expect_line("This server does not take /away");
    w.server("EVENT RING alice 9");
    w.expect_line("alice is calling: y to answer, n to decline.");
}

#[test]
fn presence_and_the_list_show_who_is_away() {
    let mut w = registered_on_a_newer_server("alice");
    w.server("EVENT PRESENCE away:bob");
    w.expect_line("bob is away.");
    w.server("EVENT PRESENCE away:bob");
    w.server("EVENT PRESENCE free:bob");
    w.expect_line("bob is free.");
    assert_eq!(
        w.count(|o| matches!(o, Output::Line { text, .. } if text.contains("away"))),
        0
    );
    w.typed("/who");
    w.expect_request("LIST");
    w.input(Input::Users(vec![UserEntry {
        name: "bob".into(),
        busy: false,
        away: true,
    }]));
    w.expect_line("  bob [away]");
}
