//! The list: who is online (the list, presence, `/who`), what a typed line
//! means there (a name calls, `q`), the commands that mean the same
//! wherever one is (`/help`, `/who`, `/ignore`, `/unignore`, `/away`,
//! `/back`), and missed calls.

use super::*;

impl Core {
    /// `/who`: who is online, shown where the user is.
    pub(super) fn who(&mut self, now: Instant) {
        if self.online() {
            self.send(now, Request::List, Pending::Who);
        } else {
            self.notice("The registration server is unreachable: no list for now.");
        }
    }

    pub(super) fn at_list(&mut self, now: Instant, line: &str) {
        let name = match commands::parse(line) {
            Command::Quit => return self.finish(now, Exit::Quit),
            Command::Who => return self.show_list(now),
            command if command.anywhere() => return self.anywhere(now, command),
            Command::Unknown(why) => return self.notice(format!("{why}.")),
            Command::NoSuch(verb) => return self.notice(Command::no_such(verb)),
            Command::Say(_) | Command::Me(_) => {
                return self.notice("Not in a chat: enter a name to call, or q to quit.");
            }
            Command::Send(_)
            | Command::Accept
            | Command::Refuse
            | Command::Cancel(_)
            | Command::Transfers => {
                return self.notice("Not in a chat: files go to the peer of a chat.");
            }
            Command::Call(name) => name,
            Command::Text(name) => name.trim(),
            _ => return,
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

    /// A command that means the same wherever a registered user is
    /// ([`Command::anywhere`]).
    pub(super) fn anywhere(&mut self, now: Instant, command: Command) {
        match command {
            Command::Help => self.help(),
            Command::Who => self.who(now),
            Command::Ignore(name) => self.ignore(name),
            Command::Unignore(name) => self.unignore(name),
            Command::Away(message) => self.go_away(now, message),
            Command::Back => self.come_back(now),
            _ => {}
        }
    }

    pub(super) fn help(&mut self) {
        self.line(Kind::Info, "Commands:");
        for row in commands::HELP {
            self.line(Kind::Info, format!("  {row}"));
        }
    }

    /// `/ignore NAME`, or `/ignore` to list whom.
    pub(super) fn ignore(&mut self, name: Option<&str>) {
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
            self.ignored.push(key.clone());
        }
        // Calls it made before are not told either.
        self.missed.retain(|(caller, _)| name_key(caller) != key);
        self.notice(format!(
            "Calls from {name} are declined unseen for the rest of this session."
        ));
    }

    /// `/unignore NAME`: NAME's calls ring again.
    pub(super) fn unignore(&mut self, name: &str) {
        let key = name_key(name);
        let before = self.ignored.len();
        self.ignored.retain(|ignored| *ignored != key);
        if self.ignored.len() == before {
            return self.notice(format!("{name} was not ignored."));
        }
        self.notice(format!("Calls from {name} ring again."));
    }

    /// `/away [message]`: the server refuses calls to us with the message,
    /// and tells us of each as a missed call, which waits until `/back`.
    /// Sent again whenever we register again.
    pub(super) fn go_away(&mut self, now: Instant, message: &str) {
        if !self.server_has(FEATURE_AWAY) {
            return self.notice("This server does not take /away (it is older); calls still ring.");
        }
        self.away = Some(message.to_string());
        if self.online() {
            let message = message.to_string();
            self.send(now, Request::Away { message }, Pending::Away);
        }
        let why = if message.is_empty() {
            String::new()
        } else {
            format!(" ({message})")
        };
        self.notice(format!(
            "You are away{why}: calls are refused, and told to you when you are /back."
        ));
    }

    /// `/back`: calls ring again, and the calls missed meanwhile are told
    /// (at the list; in a chat, once it is over).
    pub(super) fn come_back(&mut self, now: Instant) {
        if self.away.take().is_none() {
            return self.notice("You are not away.");
        }
        if self.online() {
            self.send(now, Request::Back, Pending::Back);
        }
        self.notice("You are back.");
        if matches!(self.place(), Some(Place::AtList)) {
            self.tell_missed();
        }
    }

    /// Back to the list: asks the server for a fresh one.
    pub(super) fn show_list(&mut self, now: Instant) {
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
    pub(super) fn back_to_list_after_failure(&mut self, now: Instant) {
        // Half typed for what did not happen (a chat, an answer): kept in
        // the history, never run at the list.
        self.out(Output::Shelve);
        self.drop_typed_for_the_chat();
        self.show_list(now);
    }

    /// Drops the typed lines waiting, meant for a chat that is over (a pending
    /// end of input stays), and tells the user how many.
    pub(super) fn drop_typed_for_the_chat(&mut self) {
        let before = self.typed.len();
        self.typed.retain(|typed| *typed == Typed::Eof);
        let dropped = before - self.typed.len();
        if dropped == 1 {
            self.notice("1 line typed meanwhile was not sent.");
        } else if dropped > 1 {
            self.notice(format!("{dropped} lines typed meanwhile were not sent."));
        }
    }

    pub(super) fn on_users(&mut self, users: Vec<UserEntry>) {
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

    pub(super) fn show_users(&mut self, users: &[UserEntry]) {
        let state = |user: &UserEntry| match (user.busy, user.away) {
            (true, _) => PresenceState::Busy,
            (false, true) => PresenceState::Away,
            (false, false) => PresenceState::Free,
        };
        self.roster = users
            .iter()
            .filter(|u| !self.is_me(&u.name))
            .map(|u| {
                let listed = Listed {
                    name: u.name.clone(),
                    state: state(u),
                };
                (name_key(&u.name), listed)
            })
            .collect();
        self.line(Kind::Info, format!("Online users ({}):", users.len()));
        for user in users {
            let mut row = format!("  {}", user.name);
            if self.is_me(&user.name) {
                row.push_str(" (you)");
            }
            match state(user) {
                PresenceState::Busy => row.push_str(" [busy]"),
                PresenceState::Away => row.push_str(" [away]"),
                _ => {}
            }
            self.line(Kind::Info, row);
        }
    }

    /// Someone tried to call while we were busy or away; told once we are
    /// free and back. Calls from a name we ignore are not told.
    pub(super) fn on_missed(&mut self, caller: String, at: String) {
        if self.ignored.contains(&name_key(&caller)) {
            return;
        }
        if self.missed.len() >= ANNOUNCED_MEMORY {
            self.missed.remove(0);
        }
        self.missed.push((caller, at));
        if matches!(self.place(), Some(Place::AtList)) {
            self.tell_missed();
        }
    }

    pub(super) fn tell_missed(&mut self) {
        if self.away.is_some() {
            return;
        }
        for (caller, at) in std::mem::take(&mut self.missed) {
            self.notice(format!("{caller} tried to call you at {at}."));
        }
    }

    /// Who came, went, or became busy, free or away, while we sit at the
    /// list.
    /// Only real changes to the list last seen are told: a batch may repeat
    /// what the list already showed.
    pub(super) fn on_presence(&mut self, batch: &[Presence]) {
        if !matches!(self.place(), Some(Place::AtList)) {
            return;
        }
        let mut changes = Vec::new();
        for change in batch {
            let key = name_key(&change.name);
            let known = self.roster.get(&key).map(|listed| listed.state);
            let listed = |state| Listed {
                name: change.name.clone(),
                state,
            };
            let state = match (change.state, known) {
                (PresenceState::Left, None) => continue,
                (PresenceState::Left, Some(_)) => {
                    self.roster.remove(&key);
                    PresenceState::Left
                }
                (PresenceState::Joined, Some(_)) => continue,
                (state, Some(was)) if state == was => continue,
                // Joined (and perhaps became busy or away) within one
                // batch: joined and free is told as joined.
                (PresenceState::Joined | PresenceState::Free, None) => {
                    self.roster.insert(key, listed(PresenceState::Free));
                    PresenceState::Joined
                }
                (state, _) => {
                    self.roster.insert(key, listed(state));
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
                    PresenceState::Away => format!("{name} is away."),
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
            (PresenceState::Away, "went away"),
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
    pub(super) fn sync_watch(&mut self, now: Instant) {
        let want = matches!(self.place(), Some(Place::AtList))
            && self.online()
            && self.server.features.iter().any(|f| f == FEATURE_PRESENCE);
        if want != self.server.watching && self.connected() {
            self.server.watching = want;
            self.send(now, Request::Watch(want), Pending::Watch);
        }
    }
}
