//! The chat: typed lines out, the peer's lines in, acknowledgements and the
//! lines kept until acknowledged, and how a chat ends (by us, by the peer,
//! by the server's word that the peer's program is gone).

use super::*;

/// A chat in progress.
#[derive(Debug)]
pub(super) struct Chat {
    pub(super) peer: String,
    /// The server's number for the chat's call, which a server restart or
    /// a lost registration may change (`RESUME`).
    pub(super) call: CallId,
    /// This program's own number for the chat, which never changes: what
    /// the chat's transfers belong to.
    pub(super) serial: u64,
    pub(super) link: LinkState,
    pub(super) route: Route,
    /// When chatting with ourselves: the incoming end, whose lines we show.
    pub(super) echo: Option<LinkState>,
    /// Set once the peer's side is over.
    pub(super) ending: Option<Ending>,
    /// Who dialed: only the caller dials again when the link breaks.
    pub(super) role: Role,
    /// What a broken link needs to be brought back; `None` until both
    /// sides have said they can.
    pub(super) resume: Resume,
    /// The callee's values for the caller's current attempt to bring the
    /// link back, from the server (`EVENT RETURNING`, `EVENT REJOIN`).
    pub(super) returning: Option<Held>,
    /// Typing notices, both ways, on this link.
    pub(super) typing: TypingState,
}

/// Lines kept in order, oldest first, in a few buffers: a piped batch is
/// kept whole (the buffer it is sent from, shared), a typed line joins the
/// newest buffer while that is small and ours alone, and a buffer is
/// dropped once all its lines are: no allocation per line, and no line
/// copied or moved once kept.
#[derive(Debug, Default)]
pub(super) struct KeptLines {
    pub(super) chunks: VecDeque<Arc<Lines>>,
    /// The lines of the oldest chunk before this one are dropped.
    pub(super) first: usize,
    pub(super) len: usize,
}

impl KeptLines {
    pub(super) fn push_back(&mut self, line: &str) {
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

    pub(super) fn push_all(&mut self, lines: &Arc<Lines>) {
        if !lines.is_empty() {
            self.chunks.push_back(Arc::clone(lines));
            self.len += lines.len();
        }
    }

    /// Drops the oldest `n` lines (or all there are), a chunk at a time,
    /// giving their bytes.
    pub(super) fn drop_front(&mut self, mut n: usize) -> usize {
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

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &str> {
        let first = self.first;
        self.chunks
            .iter()
            .enumerate()
            .flat_map(move |(i, chunk)| chunk.iter().skip(if i == 0 { first } else { 0 }))
    }
}

/// Whether a typed line is blank: empty, or spaces and tabs only.
pub(super) fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Who dialed the chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Caller,
    Callee,
}

/// The chat's delivery record, per chat and not per link: every line has
/// a number (its place in the count), the peer acknowledges how many it
/// has, and what it has not acknowledged is kept to send again.
#[derive(Debug, Default)]
pub(super) struct Resume {
    /// The chat's secret, given by the caller in `RESUMABLE` (an older
    /// peer, or server, without `proof`).
    pub(super) key: Option<Token>,
    /// Both have values of their own (`proof`): the link is brought back
    /// with fresh values from the server for each attempt, and no key
    /// crosses the wire.
    pub(super) by_server: bool,
    /// The peer announced `resume`, and whether it announced its features
    /// at all yet: until it has, our lines are kept in case it does.
    pub(super) peer_resumes: bool,
    pub(super) peer_said: bool,
    /// So many lines went before the two agreed that they were no longer
    /// kept: this chat is not brought back if its link breaks (and the
    /// peer is told so, `withdrawn`, by features without `resume`).
    pub(super) given_up: bool,
    pub(super) withdrawn: bool,
    /// Lines sent so far, and those of them not yet acknowledged (the last
    /// `unacked.len()` of them).
    pub(super) sent: u64,
    pub(super) unacked: KeptLines,
    pub(super) unacked_bytes: usize,
    /// Lines received so far.
    pub(super) received: u64,
    /// The count last acknowledged to the peer, the bytes received since,
    /// and when the acknowledgement of those is due at the latest.
    pub(super) told: u64,
    pub(super) untold_bytes: usize,
    pub(super) ack_due: Option<Instant>,
    /// Since when lines have waited for an acknowledgement that did not
    /// come (reset by every one that does): a peer that reads but never
    /// acknowledges is taken for a broken link after the silence limit.
    pub(super) waiting_since: Option<Instant>,
}

impl Resume {
    /// After a line was kept: the wait for its acknowledgement starts, if
    /// none was running.
    pub(super) fn note_waiting(&mut self, now: Instant) {
        if self.waiting_since.is_none() && !self.unacked.is_empty() {
            self.waiting_since = Some(now);
        }
    }

    /// After an `ACK`: the wait starts again for what is left, if any.
    pub(super) fn note_acknowledged(&mut self, now: Instant, before: u64) {
        if self.acked() > before {
            self.waiting_since = (!self.unacked.is_empty()).then_some(now);
        }
    }

    pub(super) fn active(&self) -> bool {
        (self.key.is_some() || self.by_server) && self.peer_resumes && !self.given_up
    }

    /// Whether lines are kept: once both resume, and from the first line
    /// on while that is not known yet (the first round trip), so that the
    /// lines sent then can be sent again too.
    pub(super) fn keeping(&self) -> bool {
        !self.given_up && (!self.peer_said || self.peer_resumes)
    }

    /// The peer's features came: without `resume`, nothing is kept.
    pub(super) fn peer_announced(&mut self, resumes: bool) {
        self.peer_said = true;
        self.peer_resumes = resumes;
        if !resumes {
            self.forget_kept();
        }
    }

    pub(super) fn forget_kept(&mut self) {
        self.unacked = KeptLines::default();
        self.unacked_bytes = 0;
        self.waiting_since = None;
    }

    /// Whether `bytes` more fit in what is kept for sending again.
    pub(super) fn has_room(&self, bytes: usize) -> bool {
        !self.active() || self.unacked_bytes + bytes <= RESUME_BUFFER
    }

    /// Counts a line about to be sent, and keeps it until acknowledged;
    /// `false` when the buffer is full and the line must not go.
    pub(super) fn keep(&mut self, line: &str) -> bool {
        let admitted = self.admit(1, line.len());
        if admitted == Some(true) {
            self.unacked.push_back(line);
        }
        admitted.is_some()
    }

    /// [`Resume::keep`] for a batch, kept whole, shared with what sends it.
    pub(super) fn keep_all(&mut self, lines: &Arc<Lines>) -> bool {
        let admitted = self.admit(lines.len(), lines.text_len());
        if admitted == Some(true) {
            self.unacked.push_all(lines);
        }
        admitted.is_some()
    }

    /// Counts `lines` lines of `bytes` about to be sent: whether to keep
    /// them until acknowledged (`Some(true)`), to let them go unkept
    /// (`Some(false)`), or not to send them, the buffer being full (`None`).
    pub(super) fn admit(&mut self, lines: usize, bytes: usize) -> Option<bool> {
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
    pub(super) fn acked(&self) -> u64 {
        self.sent - self.unacked.len() as u64
    }

    pub(super) fn acknowledge(&mut self, upto: u64) {
        let newly = upto.min(self.sent).saturating_sub(self.acked());
        self.unacked_bytes -= self.unacked.drop_front(newly as usize);
    }

    /// The lines the peer, which has `received`, has not got.
    pub(super) fn to_resend(&self, received: u64) -> impl Iterator<Item = &str> {
        let skip = received.saturating_sub(self.acked()) as usize;
        self.unacked.iter().skip(skip)
    }

    /// "N of your lines were not confirmed by bob …: “…”, …", or `None`:
    /// a line the peer read just before the link broke may be among them,
    /// since its acknowledgement was lost with the link.
    pub(super) fn undelivered(&self, peer: &str) -> Option<String> {
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
pub(super) struct LinkState {
    pub(super) id: LinkId,
    pub(super) last_sent: Instant,
    pub(super) last_heard: Instant,
    /// The peer announced numbered pings.
    pub(super) numbered: bool,
    /// The peer answers `BYE` with `BYE`.
    pub(super) acks_bye: bool,
    /// The peer takes messages up to [`MAX_LONG_TEXT`] whole.
    pub(super) long_lines: bool,
    /// The peer shows typing notices (`typing`): ours may go to it.
    pub(super) typing: bool,
    /// The peer takes files (`files`): it may be offered one.
    pub(super) files: bool,
    /// Our `FEATURES` went out on this link (with `HELLO`, or in answer to
    /// the caller's).
    pub(super) announced: bool,
    /// PINGs sent, and unnumbered PONGs received: those come back in order,
    /// so the n-th PONG answers the n-th PING.
    pub(super) pings: u64,
    pub(super) pongs: u64,
}

impl LinkState {
    pub(super) fn new(id: LinkId, now: Instant) -> LinkState {
        LinkState {
            id,
            last_sent: now,
            last_heard: now,
            numbered: false,
            acks_bye: false,
            long_lines: false,
            typing: false,
            files: false,
            announced: false,
            pings: 0,
            pongs: 0,
        }
    }

    /// A `PING` to send, numbered if the peer can take that; its number is
    /// what the answering PONG will carry (or count to).
    pub(super) fn ping(&mut self, now: Instant) -> (PeerMessage, u64) {
        self.pings += 1;
        self.last_sent = now;
        let msg = PeerMessage::Ping(self.numbered.then_some(self.pings));
        (msg, self.pings)
    }

    /// The number of the PING a PONG answers.
    pub(super) fn ponged(&mut self, number: Option<u64>) -> u64 {
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
pub(super) struct Ending {
    pub(super) link_done: bool,
    pub(super) server_done: bool,
    /// The server said the peer's program is gone (`EVENT GONE`): the
    /// link's end ends the chat, with no attempt to bring it back.
    pub(super) gone: bool,
    pub(super) until: Instant,
    /// The PING sent to ask whether the peer is still there after the server
    /// said it hung up; only its PONG answers.
    pub(super) probe: Option<u64>,
}

/// Whether an ending chat still waits for its second sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waiting {
    ForBoth,
    Over,
}

/// How a chat the peer ended went, for the notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PeerGone {
    Bye,
    ConnectionLost,
    StoppedReading,
    Silent,
}

/// How long lines typed after a chat the user did not end are taken as
/// meant for it.
#[derive(Debug, Clone, Copy)]
pub(super) enum TypedForChat {
    /// Until the list is shown.
    UntilList,
    /// With no server to show a list: until then.
    Until(Instant),
}

impl Core {
    /// Leaving is over (the peer's BYE, its close, the wait, or Ctrl-C):
    /// close the link and free the call.
    pub(super) fn left(&mut self, now: Instant) {
        let Some(Place::Leaving { call, link, .. }) = self.place() else {
            return;
        };
        let (call, link) = (*call, *link);
        self.out(Output::Close { link });
        self.send(now, Request::Hangup { call }, Pending::Hangup);
        self.show_list(now);
    }

    /// Sends one line that fits in one message, as it is.
    pub(super) fn send_owned(&mut self, now: Instant, line: String) {
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
    pub(super) fn typed_lines(&mut self, now: Instant, lines: Lines) {
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
    pub(super) fn sends_at_once(&self, lines: &Lines) -> bool {
        let Some(chat) = self.chat() else {
            return false;
        };
        let limit = self.text_limit();
        let blanks_go = self.settings.typed_from == TypedFrom::Pipe;
        chat.ending.is_none()
            && chat.resume.has_room(lines.text_len())
            && lines.iter().all(|line| {
                (blanks_go || !is_blank(line))
                    && line.len() <= limit
                    && matches!(commands::parse(line), Command::Text(_))
            })
    }

    /// After lines were kept to send: what goes before them (our features
    /// without `resume`, once we gave keeping up; the acknowledgement we
    /// owe, which rides along), and the link they go on.
    pub(super) fn kept(&mut self, now: Instant) -> Option<LinkId> {
        let chat = self.chat_mut()?;
        chat.resume.note_waiting(now);
        chat.link.last_sent = now;
        chat.typing.line_sent();
        let link = chat.link.id;
        if chat.resume.given_up && !std::mem::replace(&mut chat.resume.withdrawn, true) {
            // The peer must not keep, or wait, for a resumption we cannot
            // make good: our features again, without `resume`.
            self.send_peer(link, self.features_but(Some(FEATURE_RESUME)));
        }
        self.acknowledge_now();
        Some(link)
    }

    /// Sends the chat's owed acknowledgement, if any, on its link.
    pub(super) fn acknowledge_now(&mut self) {
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

    pub(super) fn too_long(&mut self, bytes: usize) {
        self.notice(format!(
            "That line is {} KiB, longer than the 64 KiB a message may be: nothing was sent.",
            bytes.div_ceil(1024)
        ));
    }

    pub(super) fn buffer_full(&mut self) {
        self.notice(format!(
            "Not sent: the peer has not confirmed the last {} MiB yet; try again in a moment.",
            RESUME_BUFFER >> 20
        ));
    }

    /// The longest message this chat's peer takes whole: 64 KiB when it
    /// said `long-lines` (and, through the relay, the server said so too),
    /// else the 4 KiB every peer takes.
    pub(super) fn text_limit(&self) -> usize {
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

    /// Sends `text` to the peer as it is: one message where the peer takes
    /// it whole, nothing (and a notice) past 64 KiB; to an older peer, in
    /// pieces the protocol takes.
    pub(super) fn send_text(&mut self, now: Instant, text: &str) {
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
        chat.typing.line_sent();
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

    pub(super) fn chat_line(&mut self, now: Instant, line: String) {
        let text = match commands::parse(&line) {
            Command::Quit => return self.quit_chat(now),
            command if command.anywhere() => return self.anywhere(now, command),
            Command::Call(_) => return self.notice("One chat at a time: q ends this one first."),
            Command::Send(path) => return self.send_file(path),
            Command::Accept => return self.accept_file(now),
            Command::Refuse => return self.refuse_file(),
            Command::Cancel(name) => return self.cancel_file(name),
            Command::Transfers => return self.list_transfers(now),
            // At a terminal, y or n alone answers the file offered.
            Command::Text(_) if self.answers_offer(&line) == Some(Answer::Yes) => {
                return self.accept_file(now);
            }
            Command::Text(_) if self.answers_offer(&line) == Some(Answer::No) => {
                return self.refuse_file();
            }
            Command::Unknown(why) => return self.notice(format!("{why}; nothing was sent.")),
            Command::NoSuch(verb) => return self.notice(Command::no_such_in_chat(verb)),
            Command::Say(text) => text,
            Command::Me(action) => {
                let text = action_text(self.me().unwrap_or_default(), action);
                return self.send_text(now, &text);
            }
            // A blank line typed at a terminal is ENTER pressed by
            // mistake: not sent. A script's is sent as it is.
            Command::Text(_) if self.skips_blank(&line) => return,
            // The line as typed, the bulk of piped chat: sent without a copy
            // when it fits in one message.
            Command::Text(_) if line.len() <= self.text_limit() => {
                return self.send_owned(now, line);
            }
            Command::Text(text) => text,
            _ => return,
        };
        self.send_text(now, text);
    }

    /// Whether `line` is a blank line typed at a terminal, which is not
    /// sent (a piped one is).
    pub(super) fn skips_blank(&self, line: &str) -> bool {
        self.settings.typed_from == TypedFrom::Terminal && is_blank(line)
    }

    /// Closes the links the place holds (a dial's echo, a chat's links).
    pub(super) fn close_place_links(&mut self) {
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
    pub(super) fn quit_chat(&mut self, now: Instant) {
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
    pub(super) fn peer_finished(&mut self, now: Instant, how: PeerGone) {
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
    pub(super) fn finish_chat(&mut self, now: Instant, waiting: Waiting) {
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

    pub(super) fn on_peer_hung_up(
        &mut self,
        now: Instant,
        call: CallId,
        peer: &str,
        end: Option<ConnEnd>,
    ) {
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
    pub(super) fn on_gone(&mut self, now: Instant, peer: &str) {
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
    pub(super) fn chat_gone(&mut self, now: Instant) {
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
    pub(super) fn chat_ended_for_us(&mut self, now: Instant) {
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

    pub(super) fn on_peer(&mut self, now: Instant, link: LinkId, msgs: PeerBatch) {
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
        let shows_typing = self.settings.typing == TypingNotices::On;
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
        let mut file_msgs = Vec::new();
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
                        // Its line came: it is no longer typing it.
                        chat.typing.peer_said(now, Typing::Off);
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
                    state.typing = words.iter().any(|w| w == FEATURE_TYPING);
                    state.files = words.iter().any(|w| w == FEATURE_FILES);
                    answer_features |= !std::mem::replace(&mut state.announced, true);
                }
                PeerMessage::Bye if main => {
                    bye = true;
                    break;
                }
                PeerMessage::Typing(typing) if main && shows_typing => {
                    chat.typing.peer_said(now, typing)
                }
                PeerMessage::FileOffer { .. }
                | PeerMessage::FileAccept { .. }
                | PeerMessage::FileEnd { .. }
                | PeerMessage::FileReady { .. }
                    if main =>
                {
                    file_msgs.push(msg.clone())
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
            let features = self.features_but(given_up.then_some(FEATURE_RESUME));
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
            // Only the callee takes a key: the caller made its own. A chat
            // brought back by the server's values takes none.
            if chat.role == Role::Callee && resumable.is_some() && !resume.by_server {
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
        for msg in file_msgs {
            self.on_file_message(now, msg);
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
    pub(super) fn peer_answered(&mut self, now: Instant, pong: u64) {
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

    pub(super) fn on_link_ended(&mut self, now: Instant, link: LinkId, end: LinkEnd) {
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
