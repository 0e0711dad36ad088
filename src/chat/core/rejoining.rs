//! Bringing a link back: a chat whose link broke without `BYE` is kept for
//! the grace, the caller dials again, and what the other side has not got is
//! sent again. With `proof`, each attempt uses fresh values the server gives
//! both (`LOCATE`, `EVENT RETURNING`), and the dialed callee shows its own
//! first; with an older peer or server, the key the caller gave
//! (`RESUMABLE`).

use super::*;

/// Why a chat whose link broke ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RejoinEnd {
    /// `q`, Ctrl-C or end of input while reconnecting.
    ByUser,
    /// The peer is back on the server but not with us: it ended the chat.
    ByPeer,
    /// The grace period ran out.
    GraceOver,
}

impl Core {
    pub(super) fn on_resumed(&mut self, now: Instant, peer: &str, call: CallId) {
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

    /// The chat's link broke without a BYE: keep the chat for the grace
    /// period, and (the caller) dial again.
    pub(super) fn start_rejoining(&mut self, now: Instant) {
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
        // Neither side's notice outlives the link.
        chat.typing = TypingState::default();
        self.notice(format!("link to {} lost; reconnecting…", chat.peer));
        let until = now + self.settings.timers.grace;
        self.set_place(Place::Rejoining {
            chat,
            until,
            next_try: now,
            dialing: false,
            pending: 0,
            free_since: None,
            recheck: None,
        });
        // The caller starts at once.
        self.rejoining_timeout(now);
    }

    /// A typed line while the link is down: kept, and sent once it is
    /// back; `q` ends the chat at once.
    pub(super) fn rejoining_typed(&mut self, now: Instant, typed: Typed) {
        let text = match typed {
            Typed::Line(line) => match commands::parse(&line) {
                Command::Quit => return self.end_rejoining(now, RejoinEnd::ByUser),
                Command::Text(_) if self.skips_blank(&line) => return,
                Command::Say(text) => text.to_string(),
                Command::Me(action) => action_text(self.me().unwrap_or_default(), action),
                Command::Text(_) => line,
                Command::Unknown(why) => return self.notice(format!("{why}; nothing was sent.")),
                Command::NoSuch(verb) => return self.notice(Command::no_such_in_chat(verb)),
                // Who is online is what one wants to know now, and the
                // others mean the same everywhere.
                command if command.anywhere() => return self.anywhere(now, command),
                Command::Transfers => return self.list_transfers(now),
                Command::Cancel(name) => return self.cancel_file(name),
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
    pub(super) fn rejoined(&mut self, now: Instant, link: LinkId, route: Route, received: u64) {
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
        state.typing = chat.link.typing;
        state.files = chat.link.files;
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
        // After the RESUME, so that the server asked for a transfer's
        // values knows the call again.
        self.resume_files(now);
    }

    /// `REHELLO`: the caller brings the chat back, if it is ours.
    pub(super) fn on_rehello(
        &mut self,
        now: Instant,
        link: LinkId,
        caller: &str,
        key: Token,
        received: u64,
        route: Route,
    ) {
        let me = self.me().unwrap_or_default().to_string();
        // The server's value for this attempt (spent once taken), or the
        // key the caller gave.
        let ours = |chat: &Chat| {
            name_key(&chat.peer) == name_key(caller)
                && (chat.resume.key.is_some_and(|k| k.matches(&key))
                    || chat.returning.is_some_and(|held| held.keys.accepts(&key)))
        };
        let mine = match self.place_mut() {
            Some(Place::Rejoining { chat, .. } | Place::Chatting(chat)) if ours(chat) => {
                chat.returning = None;
                Some(chat.resume.received)
            }
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

    /// The broken chat's peer is online and free, not with us: it ended the
    /// chat, or it is back from a lost network and has not said `RESUME`
    /// yet. Seen free a second time, a moment later, it ended the chat.
    pub(super) fn peer_free(&mut self, now: Instant) {
        let Some(Place::Rejoining {
            free_since,
            recheck,
            ..
        }) = self.place_mut()
        else {
            return;
        };
        match free_since {
            Some(since) if now >= *since + FREE_RECHECK => {
                self.end_rejoining(now, RejoinEnd::ByPeer)
            }
            Some(_) => {}
            None => (*free_since, *recheck) = (Some(now), Some(now + FREE_RECHECK)),
        }
    }

    /// The broken chat's peer is not online: say how long we wait for it.
    pub(super) fn peer_offline(&mut self, now: Instant) {
        if let Some(Place::Rejoining { chat, until, .. }) = self.place() {
            let peer = chat.peer.clone();
            let left = until.saturating_duration_since(now).as_secs().max(1);
            self.notice(format!(
                "{peer} is not online now; waiting up to {left} s for {peer} to come back (q ends the chat)."
            ));
        }
    }

    /// The chat whose link broke is over.
    pub(super) fn end_rejoining(&mut self, now: Instant, why: RejoinEnd) {
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
    pub(super) fn rejoining_timeout(&mut self, now: Instant) {
        let online = self.online();
        let Some(Place::Rejoining {
            chat,
            until,
            recheck,
            ..
        }) = self.place_mut()
        else {
            return;
        };
        if now >= *until {
            return self.end_rejoining(now, RejoinEnd::GraceOver);
        }
        if online && recheck.is_some_and(|at| at <= now) {
            *recheck = None;
            let name = chat.peer.clone();
            self.send(now, Request::Lookup { name }, Pending::Lookup);
        }
        let Some(Place::Rejoining {
            chat,
            until: _,
            next_try,
            dialing,
            ..
        }) = self.place_mut()
        else {
            return;
        };
        if chat.role != Role::Caller || *dialing || now < *next_try || !online {
            return;
        }
        *dialing = true;
        *next_try = now + REJOIN_EVERY;
        let name = chat.peer.clone();
        self.send(now, Request::Locate { name }, Pending::Locate);
    }

    /// `OK LOCATED`: dial the peer (with `keys`, the server's values for
    /// this attempt, if it gave any); where the server relays, ask it to
    /// open the relay again first, as the last way.
    pub(super) fn on_located(&mut self, now: Instant, keys: Option<Keys>, addrs: Vec<SocketAddr>) {
        let Some(Place::Rejoining { chat, .. }) = self.place() else {
            return;
        };
        if self.server.features.iter().any(|f| f == FEATURE_REJOIN) {
            let name = chat.peer.clone();
            return self.send(
                now,
                Request::Rejoin { name },
                Pending::Rejoin { keys, addrs },
            );
        }
        let call = chat.call;
        self.redial(call, addrs, keys, None);
    }

    /// `OK REJOIN`: the relay is open again for our half.
    pub(super) fn on_rejoin_ready(
        &mut self,
        call: CallId,
        located: Option<Keys>,
        relay: Keys,
        addrs: Vec<SocketAddr>,
    ) {
        let Some(Place::Rejoining { chat, .. }) = self.place_mut() else {
            return;
        };
        // The server's number for our pair now (it may have restarted).
        chat.call = call;
        self.redial(call, addrs, located, Some(relay));
    }

    /// The broken chat's values for the caller's attempt to bring it back
    /// (`EVENT RETURNING` after its `LOCATE`, or `EVENT REJOIN`): kept to
    /// show ours to its `KNOCK`, once, and to take its `REHELLO`. Returns
    /// whether they were ours to keep.
    fn hold_returning(&mut self, caller: &str, call: CallId, keys: Keys) -> bool {
        // Still chatting: the link broke on the caller's side first, and
        // its REHELLO will say so.
        let chat = match self.place_mut() {
            Some(Place::Rejoining { chat, .. }) => chat,
            Some(Place::Chatting(chat)) if chat.resume.active() => chat,
            _ => return false,
        };
        if chat.role != Role::Callee || name_key(&chat.peer) != name_key(caller) {
            return false;
        }
        chat.call = call;
        // `REJOIN` keeps the values to show: one already shown stays spent.
        let shown = chat
            .returning
            .is_some_and(|held| held.shown && held.keys.show() == keys.show());
        if keys.knocks() {
            chat.returning = Some(Held { call, keys, shown });
        }
        true
    }

    /// `EVENT RETURNING`: the caller asked the server where we are; a
    /// `KNOCK` from it may already wait.
    pub(super) fn on_returning(&mut self, now: Instant, caller: &str, call: CallId, keys: Keys) {
        if self.hold_returning(caller, call, keys) {
            self.retry_early(now, call);
        }
    }

    /// `EVENT REJOIN`: the caller brings our chat back through the relay;
    /// we open our half, and the caller's `REHELLO` comes through it.
    pub(super) fn on_rejoin_requested(&mut self, caller: &str, call: CallId, keys: Keys) {
        if self.hold_returning(caller, call, keys) {
            let token = keys.relay();
            self.out(Output::JoinRelay { call, token });
        }
    }

    /// Dials the broken chat's peer: `addrs` directly, then the relay if it
    /// opened for us (`relay`, `REJOIN`'s values). With values of our own
    /// from the server (`located`, or the relay's), the dialed peer must
    /// show its value first; else the chat's key goes in `REHELLO`.
    pub(super) fn redial(
        &mut self,
        call: CallId,
        addrs: Vec<SocketAddr>,
        located: Option<Keys>,
        relay: Option<Keys>,
    ) {
        let me = self.me().unwrap_or_default().to_string();
        let Some(Place::Rejoining { chat, dialing, .. }) = self.place_mut() else {
            return;
        };
        let own = relay
            .filter(Keys::knocks)
            .or_else(|| located.filter(Keys::knocks));
        let value = match (own, chat.resume.key) {
            (Some(keys), _) => keys.show(),
            (None, Some(key)) => key,
            (None, None) => {
                *dialing = false;
                return;
            }
        };
        let keys = own.or(relay).unwrap_or(Keys::Shared(value));
        let hello = vec![PeerMessage::Rehello {
            caller: me.clone(),
            key: value,
            received: chat.resume.received,
        }];
        self.out(Output::Dial {
            call,
            keys,
            caller: me,
            hello,
            addrs,
            relay: relay.is_some(),
            pace: Pace::OneAtATime,
        });
    }
}
