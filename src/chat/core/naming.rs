//! Naming and registering: the name prompt, `REGISTER` and its answer,
//! and the connection to the server: lost, reconnected, registered again
//! (with the secret that owns our registration).

use super::*;

/// The features this chat announces to the server. `ring` always: a chat
/// that answers by itself (`--auto-answer`) answers each ring at once, and
/// its own calls ring others, who decide.
pub(super) fn client_features() -> Vec<String> {
    [
        FEATURE_RING,
        FEATURE_PRESENCE,
        FEATURE_MISSED,
        FEATURE_SESSION,
        FEATURE_PROOF,
        FEATURE_RING_TIME,
        FEATURE_AWAY,
        FEATURE_TRANSFER,
    ]
    .map(str::to_string)
    .to_vec()
}

/// Which connection a registration is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempt {
    /// The connection the chat made at start (which the server may have
    /// given up on while the person was typing the name).
    First,
    /// Fresh connections made for it, this many so far: a server that
    /// restarts, or closes the oldest of many connections from one address
    /// (an office behind one NAT starting at once), gets a few more tries,
    /// a moment apart; past [`REGISTER_TRIES`] it is gone or will not have
    /// us, and the program says so rather than hang a script.
    Again(u32),
}

/// Fresh connections made for a name before the program gives up.
pub(super) const REGISTER_TRIES: u32 = 4;

/// Where the connection to the registration server stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Registration {
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
pub(super) struct ServerSide {
    pub(super) registration: Registration,
    pub(super) pending: VecDeque<Pending>,
    /// Sent by the server in `WELCOME`; none before registering.
    pub(super) heartbeat: Option<Duration>,
    /// What the server said it can do, in answer to `FEATURES`.
    pub(super) features: Vec<String>,
    /// `WATCH on` is in force.
    pub(super) watching: bool,
    /// The secret that owns our registration (from a server with
    /// `session`), presented when registering again on a new connection.
    pub(super) secret: Option<Token>,
    pub(super) last_sent: Instant,
    pub(super) last_heard: Instant,
}

impl Core {
    pub(super) fn finish(&mut self, now: Instant, exit: Exit) {
        if self.connected() {
            self.send(now, Request::Quit, Pending::Quit);
        }
        self.stage = Stage::Done(exit);
    }

    pub(super) fn ask_name(&mut self) {
        self.stage = Stage::Naming;
        self.out(Output::Prompt("Enter your visible name: ".into()));
    }

    pub(super) fn named(&mut self, now: Instant, line: &str) {
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

    pub(super) fn register(&mut self, name: String, now: Instant) {
        if self.server.registration == Registration::Dormant {
            // REGISTER goes on the new connection, from `on_server_back`.
            self.notice("Connecting to the registration server again…");
            self.connect_once_more(Duration::ZERO);
            self.stage = Stage::Registering {
                name,
                attempt: Attempt::Again(1),
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

    pub(super) fn on_welcome(&mut self, now: Instant, name: String, heartbeat_secs: u64) {
        // A day at most: a lying server must not overflow the timers.
        self.server.heartbeat = Some(Duration::from_secs(heartbeat_secs.clamp(1, 86_400)));
        if let Registration::Reregistering { .. } = self.server.registration
            && matches!(self.stage, Stage::Registered { .. })
        {
            self.server.registration = Registration::Online;
            self.notice("Reconnected to the registration server.");
            self.away_again(now);
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
        self.away_again(now);
        self.show_list(now);
    }

    /// On a new registration, a new server knows nothing of our `/away`:
    /// it is said again, before anyone can call.
    fn away_again(&mut self, now: Instant) {
        if let Some(message) = self.away.clone()
            && self.server_has(FEATURE_AWAY)
        {
            self.send(now, Request::Away { message }, Pending::Away);
        }
    }

    pub(super) fn on_register_refused(&mut self, now: Instant, code: ErrorCode, message: &str) {
        if code == ErrorCode::Timeout
            && let Stage::Registering { attempt, .. } = &mut self.stage
            && *attempt == Attempt::First
        {
            // The server gave up on the connection just as the name came:
            // not a refusal of the name. Connect again and register there.
            *attempt = Attempt::Again(1);
            return self.connect_once_more(Duration::ZERO);
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

    pub(super) fn on_server_lost(&mut self, now: Instant, why: String) {
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
        let reconnect = self.settings.timers.reconnect;
        if let Stage::Registering { attempt, .. } = &mut self.stage {
            let tries = match *attempt {
                Attempt::First => 0,
                Attempt::Again(n) => n,
            };
            if tries < REGISTER_TRIES {
                // The server may have given up on the connection just before
                // the name came, or restarted, or closed it among many from
                // one address: a fresh connection, at once, then a moment
                // apart.
                *attempt = Attempt::Again(tries + 1);
                let pause = match tries {
                    0 => Duration::ZERO,
                    n => reconnect * n,
                };
                if tries == 1 {
                    self.notice(format!(
                        "The registration server closed the connection ({why}); trying again…"
                    ));
                }
                return self.connect_once_more(pause);
            }
            // Lost every time: a server that closes on REGISTER is broken
            // or full, or gone, and retrying for ever would hang a script.
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

    /// One fresh connection after `after`, for a name the old one could
    /// not register ([`Attempt::Again`]).
    pub(super) fn connect_once_more(&mut self, after: Duration) {
        self.server.pending.clear();
        self.server.registration = Registration::Reconnecting { refusals: 0 };
        self.out(Output::Reconnect {
            after,
            retry: Retry::Once,
            old: OldConn::Close,
        });
    }

    /// Starts reconnecting, after `pause`; a chat in progress goes on
    /// meanwhile.
    pub(super) fn lost_server(&mut self, pause: Duration, refusals: u32) {
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

    pub(super) fn on_server_back(&mut self, now: Instant, advertise: SocketAddr) {
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
        let ours = client_features();
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
}
