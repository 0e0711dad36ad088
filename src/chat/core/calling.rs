//! Calling and ringing: our `CALL` and its answer, a ring (ours or for us),
//! its countdown and its answer, the caller's `HELLO` and our dial, until
//! the chat starts. Where "bob declined" is decided.

use super::*;

/// How an incoming call came to be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Taken {
    /// The user answered its ring: what they type next is for the chat.
    Answered,
    /// At once, unasked (`--auto-answer`, or a caller that does not ring):
    /// what the user types before the chat starts was meant for the list.
    AtOnce,
}

/// The incoming end of a call to ourselves.
#[derive(Debug)]
pub(super) enum Echo {
    /// Not a call to ourselves, or not announced yet.
    None,
    /// The server announced it: our own `HELLO` will present the value
    /// `keys` expects (and our own `KNOCK` is shown ours, once).
    Expected {
        call: CallId,
        keys: Keys,
        shown: bool,
    },
    /// Connected: our lines come back on this link.
    Attached(LinkState),
}

#[derive(Debug)]
pub(super) struct EarlyHello {
    pub(super) at: Instant,
    pub(super) link: LinkId,
    pub(super) caller: String,
    pub(super) call: CallId,
    /// The value a `HELLO` presented; `None` for a `KNOCK`, which shows
    /// nothing and asks for ours.
    pub(super) token: Option<Token>,
    pub(super) route: Route,
}

/// Our values for one return of a chat whose link broke, as its dialed
/// party (`EVENT RETURNING`, `EVENT REJOIN`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Held {
    pub(super) call: CallId,
    pub(super) keys: Keys,
    pub(super) shown: bool,
}

/// A ring's time left, as the prompt shows it (`alice is calling (24 s):
/// y/n?`), and, for a call ringing for us, when the bell rings again. The
/// server says how long a ring lasts (feature `ring-time`); with an older
/// one, the chat's own setting does.
#[derive(Debug, Clone, Copy)]
pub(super) struct Countdown {
    until: Instant,
    /// Whole seconds left, rounded up, as of the last tick.
    pub(super) shown: u64,
    /// When the bell rings again; `None` for a ring of ours.
    bell: Option<Instant>,
    bell_every: Duration,
}

impl Countdown {
    /// A ring of `left` from `now`; `bell_every`: the bell rings again
    /// this often (a call ringing for us).
    pub(super) fn new(now: Instant, left: Duration, bell_every: Option<Duration>) -> Countdown {
        let mut ring = Countdown {
            until: now + left,
            shown: 0,
            bell: bell_every.map(|every| now + every),
            bell_every: bell_every.unwrap_or_default(),
        };
        ring.tick(now);
        ring
    }

    /// When the countdown changes next: a second passes, or the bell is
    /// due; `None` once it shows 0 and rings no more.
    pub(super) fn next(&self) -> Option<Instant> {
        let second = (self.shown > 0).then(|| self.until - Duration::from_secs(self.shown - 1));
        [second, self.bell].into_iter().flatten().min()
    }

    /// Brings the countdown to `now`; whether the bell rings. It rings
    /// while the ring lasts, never as or after it runs out, and once
    /// however late the tick.
    pub(super) fn tick(&mut self, now: Instant) -> bool {
        let left = self.until.saturating_duration_since(now);
        self.shown = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        let Some(bell) = self.bell.filter(|bell| now >= *bell) else {
            return false;
        };
        let mut next = bell + self.bell_every;
        while next <= now && !self.bell_every.is_zero() {
            next += self.bell_every;
        }
        self.bell = (next < self.until && !self.bell_every.is_zero()).then_some(next);
        bell < self.until
    }
}

/// Our value, to a `KNOCK`: once, and only when we have one of our own.
fn show_once(keys: &Keys, shown: &mut bool) -> Option<Token> {
    if !keys.knocks() || *shown {
        return None;
    }
    *shown = true;
    Some(keys.show())
}

/// Whom a `HELLO` that matched is from.
pub(super) enum Accept {
    /// The caller the ring was for; `proof`: each of us has values of its
    /// own.
    Caller(String, bool),
    /// Ourselves, calling ourselves.
    Echo,
}

impl Core {
    /// Where a call is being set up (ours ringing, dialing, being
    /// answered), typed lines wait for the chat; but `q` (and `/quit`,
    /// Ctrl-D) cancels the call at once, and `/help` and `/who` answer at
    /// once. Returns whether it took the first typed input.
    pub(super) fn command_while_waiting(&mut self, now: Instant) -> bool {
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
        let line = match self.typed.front() {
            Some(Typed::Quit) => None,
            Some(Typed::Eof) => {
                // Cancels the call; end of input then ends the program.
                self.interrupt(now);
                self.typed.push_back(Typed::Eof);
                return true;
            }
            Some(Typed::Line(line)) => Some(line.clone()),
            Some(Typed::Pasted(_)) => return self.typed_as_a_call_came(),
            _ => return false,
        };
        let command = line.as_deref().map_or(Command::Quit, commands::parse);
        match command {
            Command::Quit => {
                self.typed.pop_front();
                self.interrupt(now);
            }
            command if command.anywhere() => {
                self.typed.pop_front();
                self.anywhere(now, command);
            }
            _ => return self.typed_as_a_call_came(),
        }
        true
    }

    /// A line typed while a call we did not answer is being set up was
    /// meant for the list, never for the caller: it is not sent, and the
    /// user is told. Returns whether it took the line.
    pub(super) fn typed_as_a_call_came(&mut self) -> bool {
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

    /// Whether a lone `y` or `n` typed at the list is waiting for a call to
    /// answer (a script answering the call it expects).
    pub(super) fn holds_answer(&self) -> bool {
        matches!(self.typed.front(), Some(Typed::Line(line)) if matches!(line.trim(), "y" | "n"))
    }

    /// What the user typed while a call rings: `y` or `yes` answers, `n`
    /// or `no` declines, in any case.
    pub(super) fn answer_typed(&mut self, now: Instant, caller: &str, call: CallId, typed: Typed) {
        match typed {
            Typed::Line(line) if commands::answer(&line) == Some(Answer::Yes) => {
                self.send(now, Request::Answer { call }, Pending::Answer);
                self.set_place(Place::Answering {
                    caller: caller.to_string(),
                    call,
                });
            }
            Typed::Line(line) if commands::answer(&line) == Some(Answer::No) => {
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
                command if command.anywhere() => self.anywhere(now, command),
                _ => self.notice(format!("{caller} is calling: y to answer, n to decline.")),
            },
            Typed::Pasted(_) | Typed::TooLong(_) => {
                self.notice(format!("{caller} is calling: y to answer, n to decline."))
            }
        }
    }

    pub(super) fn decline(&mut self, now: Instant, caller: &str, call: CallId) {
        self.notice(format!("You declined {caller}'s call."));
        self.send(now, Request::Decline { call }, Pending::Decline);
        self.show_list(now);
    }

    pub(super) fn on_call_ready(
        &mut self,
        now: Instant,
        cancelled: bool,
        peer: String,
        call: CallId,
        keys: Keys,
        addrs: Vec<SocketAddr>,
    ) {
        let Some(echo) = self.leave_calling(now, cancelled, &peer, call) else {
            return;
        };
        self.notice(format!("Connecting to {peer}…"));
        let me = self.me().unwrap_or_default().to_string();
        let hello = vec![
            PeerMessage::Hello {
                caller: me.clone(),
                call,
                token: keys.show(),
            },
            self.features(),
        ];
        self.out(Output::Dial {
            call,
            keys,
            caller: me,
            hello,
            addrs,
            relay: true,
            pace: Pace::Race,
        });
        let proof = keys.knocks();
        self.set_place(Place::Dialing {
            peer,
            call,
            echo,
            proof,
        });
    }

    pub(super) fn on_call_refused(
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
            // The server's words, "bob is away: at lunch", and what
            // becomes of the call (not "bob is away.", which presence says).
            ErrorCode::Away => format!("{message}; {peer} will be told you called."),
            // Someone called us just as we called: the server claimed us
            // for their call, whose announcement is on its way.
            ErrorCode::AlreadyInCall => return self.show_list(now),
            _ => format!("Cannot call {peer}: {message}."),
        };
        self.notice(text);
        self.back_to_list_after_failure(now);
    }

    pub(super) fn on_incoming(&mut self, now: Instant, caller: String, call: CallId, keys: Keys) {
        if self.announced.len() == ANNOUNCED_MEMORY {
            self.announced.pop_front();
        }
        self.announced.push_back(call);
        if self.ignored.contains(&name_key(&caller)) {
            return self.send(now, Request::Hangup { call }, Pending::Hangup);
        }
        if self.away.is_some() && !self.is_me(&caller) {
            // Away: a call set up without asking (an older server's) is
            // not taken either.
            return self.send(now, Request::Hangup { call }, Pending::Hangup);
        }
        let to_self = self.is_me(&caller);
        if !to_self && self.answering_asks() {
            // A server that rings set this call up without ringing us (an
            // older one, for a caller that cannot ring): we answer only
            // what we were asked, so the caller never connects.
            self.notice(format!(
                "{caller} called from a chat that cannot ring; not taken (a newer chat can call you)."
            ));
            return self.send(now, Request::Hangup { call }, Pending::Hangup);
        }
        let ring_until = now + self.settings.timers.ring;
        let rung = match self.place_mut() {
            Some(Place::Calling { peer, echo })
                if to_self && name_key(peer) == name_key(&caller) =>
            {
                *echo = Echo::Expected {
                    call,
                    keys,
                    shown: false,
                };
                false
            }
            Some(Place::Dialing {
                call: dialing,
                echo,
                ..
            }) if to_self && *dialing == call => {
                *echo = Echo::Expected {
                    call,
                    keys,
                    shown: false,
                };
                false
            }
            // At the list, or calling someone who is calling us: the
            // server gave their call the two of us.
            Some(place @ (Place::AtList | Place::Calling { .. })) if !to_self => {
                *place = Place::Connecting {
                    caller: caller.clone(),
                    call,
                    keys,
                    shown: false,
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
    pub(super) fn leave_calling(
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
    /// event. The prompt counts down the `secs` it rings (the server's
    /// word, else our own setting).
    pub(super) fn on_ringing_out(
        &mut self,
        now: Instant,
        cancelled: bool,
        peer: String,
        call: CallId,
        secs: Option<u64>,
    ) {
        let Some(echo) = self.leave_calling(now, cancelled, &peer, call) else {
            return;
        };
        self.notice(format!("Ringing {peer}… (Ctrl-C cancels)"));
        let ring = Countdown::new(now, self.ring_left(secs), None);
        self.set_place(Place::RingingOut {
            peer,
            call,
            echo,
            ring,
        });
    }

    /// How long a ring has left: what the server said, else what our own
    /// setting says (an older server's ring lasts its `--ring-timeout`).
    fn ring_left(&self, secs: Option<u64>) -> Duration {
        secs.map_or(self.settings.timers.ringing, |secs| {
            // A day at most: a lying server must not overflow the timers.
            Duration::from_secs(secs.min(86_400))
        })
    }

    /// `EVENT RING`: someone calls; the user answers, while the prompt
    /// counts down the `secs` it rings and the bell rings again and again.
    pub(super) fn on_ring(
        &mut self,
        now: Instant,
        caller: String,
        call: CallId,
        secs: Option<u64>,
    ) {
        if self.ignored.contains(&name_key(&caller)) {
            return self.send(now, Request::Decline { call }, Pending::Decline);
        }
        let to_self = self.is_me(&caller);
        let says_busy = self.server_has(FEATURE_SESSION);
        let auto = self.settings.answering == Answering::Auto;
        let away = self.away.is_some();
        let ring = Countdown::new(
            now,
            self.ring_left(secs),
            Some(self.settings.timers.bell_every),
        );
        match self.place_mut() {
            // Our own call to ourselves: answered at once.
            Some(Place::RingingOut { peer, .. })
                if to_self && name_key(peer) == name_key(&caller) =>
            {
                self.send(now, Request::Answer { call }, Pending::Answer)
            }
            // Away, and the ring crossed our `AWAY`: it finds us busy, and
            // is told to us as a missed call once we are back.
            _ if away && !to_self && says_busy => {
                self.send(now, Request::Busy { call }, Pending::Busy)
            }
            _ if away && !to_self => self.send(now, Request::Decline { call }, Pending::Decline),
            Some(place @ (Place::AtList | Place::Calling { .. })) if !to_self && auto => {
                // `--auto-answer`: answered at once, as a `y` would.
                *place = Place::Answering {
                    caller: caller.clone(),
                    call,
                };
                self.send(now, Request::Answer { call }, Pending::Answer);
                // What was typed ahead was for the list, never the caller.
                self.drop_typed_for_the_chat();
                self.notice(format!("{caller} is calling you…"));
                self.out(Output::Bell);
            }
            Some(place @ (Place::AtList | Place::Calling { .. })) if !to_self => {
                *place = Place::Ringing {
                    caller: caller.clone(),
                    call,
                    ring,
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

    /// Whether calls to us wait for the user's answer: we ask, and the
    /// server rings.
    fn answering_asks(&self) -> bool {
        self.settings.answering == Answering::Ask && self.server_has(FEATURE_RING)
    }

    /// `OK ANSWER`: the caller will connect with the value `keys` expects.
    pub(super) fn on_answer_accepted(
        &mut self,
        now: Instant,
        caller: String,
        call: CallId,
        keys: Keys,
    ) {
        let until = now + self.settings.timers.ring;
        // Answered by a key, what is typed next is for the chat; answered
        // by `--auto-answer`, it was meant for the list.
        let taken = match self.settings.answering {
            Answering::Ask => Taken::Answered,
            Answering::Auto => Taken::AtOnce,
        };
        match self.place_mut() {
            Some(Place::Answering { call: c, .. }) if *c == call => {
                *self.place_mut().expect("registered") = Place::Connecting {
                    caller,
                    call,
                    keys,
                    shown: false,
                    until,
                    taken,
                };
            }
            Some(Place::RingingOut { call: c, echo, .. }) if *c == call => {
                *echo = Echo::Expected {
                    call,
                    keys,
                    shown: false,
                };
            }
            _ => {}
        }
        // A HELLO for this call may have come first.
        self.retry_early(now, call);
    }

    /// `EVENT ANSWERED`: our ringing call was answered: dial, as after
    /// `OK CALL`.
    pub(super) fn on_answered(
        &mut self,
        now: Instant,
        peer: String,
        call: CallId,
        keys: Keys,
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
        self.on_call_ready(now, false, peer, call, keys, addrs);
    }

    /// A ring that ended without a chat: declined, or not answered in time.
    pub(super) fn on_unanswered(&mut self, now: Instant, call: CallId, text: String) {
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

    pub(super) fn retry_early(&mut self, now: Instant, call: CallId) {
        let (ours, others) = std::mem::take(&mut self.early)
            .into_iter()
            .partition(|e| e.call == call);
        self.early = others;
        for hello in ours {
            self.on_hello(now, hello);
        }
    }

    /// The caller could not reach us directly and asks the server to relay:
    /// open our half, if the call is the one we are expecting.
    pub(super) fn on_relay_requested(&mut self, now: Instant, call: CallId) {
        let ring = self.settings.timers.ring;
        let token = match self.place_mut() {
            Some(Place::Connecting {
                call: ringing,
                keys,
                until,
                ..
            }) if *ringing == call => {
                *until = now + ring;
                keys.relay()
            }
            Some(
                Place::Calling {
                    echo: Echo::Expected { call: c, keys, .. },
                    ..
                }
                | Place::Dialing {
                    echo: Echo::Expected { call: c, keys, .. },
                    ..
                },
            ) if *c == call => keys.relay(),
            _ => return,
        };
        self.out(Output::JoinRelay { call, token });
    }

    /// `KNOCK`: a caller asks us to show our value first. We show it
    /// once per call (or per return of a chat), and only to the name and
    /// call it is for; a knock that came before the server's word waits
    /// for it, like an early `HELLO`.
    fn on_knock(&mut self, knock: EarlyHello) {
        let caller_is_me = self.is_me(&knock.caller);
        let (link, asked) = (knock.link, knock.call);
        let for_caller = |name: &str| name_key(name) == name_key(&knock.caller);
        let shown = match self.place_mut() {
            Some(Place::Connecting {
                caller,
                call,
                keys,
                shown,
                ..
            }) if for_caller(caller) && *call == asked => Some(show_once(keys, shown)),
            Some(
                Place::Calling {
                    echo: Echo::Expected { call, keys, shown },
                    ..
                }
                | Place::Dialing {
                    echo: Echo::Expected { call, keys, shown },
                    ..
                },
            ) if caller_is_me && *call == asked => Some(show_once(keys, shown)),
            Some(Place::Rejoining { chat, .. } | Place::Chatting(chat))
                if for_caller(&chat.peer) =>
            {
                match &mut chat.returning {
                    Some(held) if held.call == asked => {
                        Some(show_once(&held.keys, &mut held.shown))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        match shown {
            Some(Some(value)) => self.out(Output::Prove { link, value }),
            Some(None) => self.refuse(link, "this call's value was already shown"),
            None if self.early.len() < MAX_EARLY => self.early.push(knock),
            None => self.refuse(link, "no such call expected"),
        }
    }

    pub(super) fn on_hello(&mut self, now: Instant, hello: EarlyHello) {
        let Some(value) = hello.token else {
            return self.on_knock(hello);
        };
        let me = self.me().unwrap_or_default().to_string();
        let caller_is_me = self.is_me(&hello.caller);
        let expected = |call: &CallId, keys: &Keys| *call == hello.call && keys.accepts(&value);
        let accept = match self.place() {
            Some(Place::Connecting {
                caller, call, keys, ..
            }) if name_key(caller) == name_key(&hello.caller) && expected(call, keys) => {
                Some(Accept::Caller(caller.clone(), keys.knocks()))
            }
            Some(
                Place::Calling {
                    echo: Echo::Expected { call, keys, .. },
                    ..
                }
                | Place::Dialing {
                    echo: Echo::Expected { call, keys, .. },
                    ..
                },
            ) if caller_is_me && expected(call, keys) => Some(Accept::Echo),
            _ => None,
        };
        let link = hello.link;
        match accept {
            Some(accept) => {
                // The token is used up: a replay finds nothing expected.
                let state = LinkState::new(link, now);
                let mut connected = None;
                self.chats_started += 1;
                let serial = self.chats_started;
                match (accept, self.place_mut()) {
                    (
                        Accept::Echo,
                        Some(Place::Calling { echo, .. } | Place::Dialing { echo, .. }),
                    ) => *echo = Echo::Attached(state),
                    (Accept::Caller(caller, proof), Some(place)) => {
                        let call = hello.call;
                        *place = Place::Chatting(Box::new(Chat {
                            peer: caller.clone(),
                            call,
                            serial,
                            link: state,
                            route: hello.route,
                            echo: None,
                            ending: None,
                            role: Role::Callee,
                            resume: Resume {
                                by_server: proof,
                                ..Resume::default()
                            },
                            returning: None,
                            typing: TypingState::default(),
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

    /// Where someone else answered our `KNOCK`: it was shown nothing, and
    /// the other ways (the relay last) were tried.
    fn tell_strangers(&mut self, result: &Result<Dialed, DialError>) {
        let strangers: Vec<SocketAddr> = match result {
            Ok(dialed) => dialed.strangers.clone(),
            Err(DialError::Unreachable(ways)) => ways
                .iter()
                .filter_map(|(way, why)| match (way, why) {
                    (Way::Direct(addr), WayError::Stranger) => Some(*addr),
                    _ => None,
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        for addr in strangers {
            self.notice(format!(
                "Someone else answered at {addr}; it was shown nothing. Trying the other ways and the relay."
            ));
        }
    }

    pub(super) fn on_dialed(
        &mut self,
        now: Instant,
        call: CallId,
        result: Result<Dialed, DialError>,
    ) {
        if let Some(Place::Rejoining { chat, dialing, .. }) = self.place_mut()
            && chat.call == call
        {
            *dialing = false;
            self.tell_strangers(&result);
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
        let Some(Place::Dialing {
            peer, echo, proof, ..
        }) = self.set_place(Place::AtList)
        else {
            return;
        };
        self.tell_strangers(&result);
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
        // A chat with ourselves has no link to lose to the network. With
        // values of our own, the server gives fresh ones to bring it back:
        // no key of ours goes to the peer.
        let resumable = !self.is_me(&peer);
        let key = (resumable && !proof).then_some(dialed.key);
        self.chats_started += 1;
        self.set_place(Place::Chatting(Box::new(Chat {
            peer,
            call,
            serial: self.chats_started,
            link,
            route: dialed.route,
            echo,
            ending: None,
            role: Role::Caller,
            resume: Resume {
                key,
                by_server: resumable && proof,
                ..Resume::default()
            },
            returning: None,
            typing: TypingState::default(),
        })));
    }
}
