//! Typing notices: `bob is typing…` while the peer has a half-typed line
//! for us, and the peer told whether we have one for it.
//!
//! Only the fact goes, never the text: `TYPING on` when a line for the peer
//! is begun (and again every [`TYPING_REFRESH`] while typing goes on),
//! `TYPING off` when it is cleared or left idle for [`TYPING_IDLE`]; a line
//! sent says it without a word, since a `MSG` ends the peer's notice. At
//! most one `TYPING` a second. They go only to a peer that announced
//! `typing`, which a chat does only when it shows them: in a terminal (the
//! driver says so by sending [`Input::Draft`]), and not with `--no-typing`.

use super::*;

/// At most one `TYPING` message in this long, each way.
pub(super) const TYPING_GAP: Duration = Duration::from_secs(1);

/// A half-typed line left untouched this long is no longer being typed.
pub(super) const TYPING_IDLE: Duration = Duration::from_secs(5);

/// While typing goes on (the draft changed since the last `on`), `TYPING
/// on` is said again this often…
pub(super) const TYPING_REFRESH: Duration = Duration::from_secs(4);

/// …so a peer's `on` not said again within this has lapsed: a peer that
/// went quiet without `off` is not shown typing for ever.
pub(super) const TYPING_LAPSE: Duration = Duration::from_secs(10);

/// Whether this chat shows and sends typing notices (`--no-typing`, or no
/// terminal, turns both off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypingNotices {
    On,
    Off,
}

/// One chat's typing notices, both ways. Reset with each new link: a peer
/// that comes back starts from nothing typed, as we do.
#[derive(Debug, Default)]
pub(super) struct TypingState {
    /// When the draft was last changed while it holds text for the peer;
    /// `None` while it holds none.
    edited: Option<Instant>,
    /// When the peer was last told `on`; `None` while it takes us for not
    /// typing.
    told_on: Option<Instant>,
    /// When our last `TYPING` went, either kind: the next waits a second.
    last_told: Option<Instant>,
    /// Since the peer's last `TYPING on`, while it is typing.
    pub(super) peer: Option<Instant>,
}

impl TypingState {
    /// The draft changed: it holds text for the peer, or it does not.
    pub(super) fn edited(&mut self, now: Instant, for_peer: bool) {
        self.edited = for_peer.then_some(now);
    }

    /// A line went to the peer: its `MSG` ended our notice there.
    pub(super) fn line_sent(&mut self) {
        self.edited = None;
        self.told_on = None;
    }

    /// The peer's `TYPING`, or its lines (which end its notice).
    pub(super) fn peer_said(&mut self, now: Instant, typing: Typing) {
        self.peer = match typing {
            Typing::On => Some(now),
            Typing::Off => None,
        };
    }

    /// The `TYPING` to send now, if one is due, counted as sent.
    pub(super) fn due(&mut self, now: Instant) -> Option<Typing> {
        if self.edited.is_some_and(|at| now >= at + TYPING_IDLE) {
            self.edited = None;
        }
        if self.last_told.is_some_and(|at| now < at + TYPING_GAP) {
            return None;
        }
        let typing = match (self.edited, self.told_on) {
            (Some(_), None) => Typing::On,
            (Some(edit), Some(on)) if edit > on && now >= on + TYPING_REFRESH => Typing::On,
            (None, Some(_)) => Typing::Off,
            _ => return None,
        };
        self.last_told = Some(now);
        self.told_on = (typing == Typing::On).then_some(now);
        Some(typing)
    }

    /// When [`TypingState::due`] may have something to send: each such
    /// wake changes the state, so none comes round again at once.
    pub(super) fn next_due(&self) -> Option<Instant> {
        let gate = |at: Instant| self.last_told.map_or(at, |last| at.max(last + TYPING_GAP));
        let told = match (self.edited, self.told_on) {
            (Some(at), None) => Some(gate(at)),
            (Some(edit), Some(on)) if edit > on => Some(gate(on + TYPING_REFRESH)),
            (Some(_), Some(_)) => None,
            (None, Some(on)) => Some(gate(on)),
            (None, None) => None,
        };
        let idle = self.edited.map(|at| at + TYPING_IDLE);
        told.into_iter().chain(idle).min()
    }

    /// The peer's notice, once it has lapsed, is taken down.
    pub(super) fn lapse(&mut self, now: Instant) {
        if self.peer.is_some_and(|since| now >= since + TYPING_LAPSE) {
            self.peer = None;
        }
    }

    /// When the peer's notice lapses.
    pub(super) fn lapses_at(&self) -> Option<Instant> {
        self.peer.map(|since| since + TYPING_LAPSE)
    }
}

/// Whether a draft is text for the peer: a command (`/who`, `q`) is not,
/// nor are blanks; `/say …` and `//…` are.
pub(super) fn for_peer(draft: &str) -> bool {
    match commands::parse(draft) {
        Command::Text(text) | Command::Say(text) | Command::Me(text) => !text.trim().is_empty(),
        _ => false,
    }
}

impl Core {
    /// The line being typed changed to `draft` (a terminal's editor).
    pub(super) fn on_draft(&mut self, now: Instant, draft: &str) {
        if self.settings.typing == TypingNotices::Off {
            return;
        }
        match self.chat_mut() {
            // Only for a peer that takes notices: nothing is kept waiting
            // for one that does not.
            Some(chat) if chat.link.typing => chat.typing.edited(now, for_peer(draft)),
            _ => return,
        }
        self.tell_typing(now);
    }

    /// Sends the chat's due `TYPING`, to a peer that takes them, and takes
    /// the peer's lapsed notice down.
    pub(super) fn tell_typing(&mut self, now: Instant) {
        let Some(chat) = self.chat_mut() else {
            return;
        };
        chat.typing.lapse(now);
        if !chat.link.typing || chat.ending.is_some() {
            return;
        }
        if let Some(typing) = chat.typing.due(now) {
            let link = chat.link.id;
            self.send_peer(link, PeerMessage::Typing(typing));
        }
    }

    /// `bob is typing…` while the chat's peer has a half-typed line for
    /// us; shown beside the prompt.
    pub fn peer_typing(&self) -> Option<String> {
        match self.place() {
            Some(Place::Chatting(chat)) if chat.ending.is_none() && chat.typing.peer.is_some() => {
                Some(format!("{} is typing…", chat.peer))
            }
            _ => None,
        }
    }
}
