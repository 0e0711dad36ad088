//! Files in a chat, both ways: `/send PATH` offers one, the peer is asked
//! and answers (`/accept`, `/refuse`, or y and n on an empty line at a
//! terminal), an offer not answered within the file timeout expires, and
//! `/cancel` stops one; each of these is told to both. What is under way
//! is listed by `/transfers` and shown by [`Core::transfer_status`].
//!
//! Only decisions live here. The driver opens the file to offer
//! ([`Output::OpenFile`], answered by [`Input::FileOpened`]), moves the
//! bytes on a connection of their own ([`Output::StartTransfer`]), says
//! how far it got ([`Input::Transfer`]), and stops one when told
//! ([`Output::StopTransfer`]). A transfer belongs to its chat: when the
//! chat ends, however it ends, so do its transfers, and the user is told.
//!
//! Numbers: the side that offers numbers its offers, the chat's caller
//! with odd numbers and its callee with even ones (as QUIC numbers its
//! streams), so a `FILE-END <id>` names one transfer whichever side says
//! it.

use super::*;
use crate::downloads::safe_name;
use crate::protocol::{FEATURE_FILES, FEATURE_RELAY_FILES, FEATURE_TRANSFER, FileEnd, FileId};

/// Transfers at once in a chat, both ways, at most: an offer past it is
/// refused, so no peer makes us hold offers without end.
const MAX_TRANSFERS: usize = 16;

/// How long an offer waits for its answer, and the largest file taken;
/// set from `--file-timeout` and `--max-receive`.
#[derive(Debug, Clone, Copy)]
pub struct FileSettings {
    pub timeout: Duration,
    pub max_receive: u64,
    pub progress: ProgressShown,
}

impl Default for FileSettings {
    fn default() -> FileSettings {
        FileSettings {
            timeout: Duration::from_secs(60),
            max_receive: 4 << 30,
            progress: ProgressShown::Lines,
        }
    }
}

/// How a transfer's progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressShown {
    /// A status row a terminal redraws ([`Core::transfer_status`]).
    Row,
    /// A line every 10 %, for output that is not a terminal.
    Lines,
}

/// Which way a transfer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    /// Ours to the peer: the file the driver opened for this number.
    Send,
    /// The peer's to us, offered under `name` (made safe: the name to
    /// save it under, before a number is added to keep it from another).
    Receive { name: String },
}

/// Who opens a transfer's data connection: the chat's caller dials the
/// address its chat link reached, whichever way the file goes; the
/// callee waits for it on its listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opener {
    Dial,
    Await,
}

impl From<Role> for Opener {
    fn from(role: Role) -> Opener {
        match role {
            Role::Caller => Opener::Dial,
            Role::Callee => Opener::Await,
        }
    }
}

/// What the driver found of a file to offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// Its base name, as the peer will be offered it.
    pub name: String,
    pub size: u64,
}

/// How a transfer's data went, as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferEvent {
    /// So many bytes are across (sent, or written).
    Progress(u64),
    /// Every byte is across; received, the file is at its name,
    /// `saved_as` (for the user).
    Finished { saved_as: Option<String> },
    /// It cannot go on, for this reason of ours (our file or disk, or
    /// what the peer did wrong).
    Failed(String),
    /// Its connection broke, for this reason: the peer's side may say
    /// why on the chat's link, which is waited for a moment.
    Cut(String),
}

/// The transfers of one chat (its [`Chat::serial`]).
#[derive(Debug, Default)]
pub(super) struct Files {
    chat: Option<u64>,
    transfers: Vec<Transfer>,
    /// Our offers so far, in this chat.
    offered: u64,
    /// What we said of transfers (`FILE-END`) while the chat's link was
    /// down, for the peer once it is back: else a file that arrived meanwhile
    /// would be sent again, and its sender told it failed.
    unsaid: Vec<PeerMessage>,
    /// The files we received whose `FILE-END done` went on a link, the
    /// latest [`MAX_TRANSFERS`]: a link that breaks may lose its last
    /// lines, so they are said again once it is back (a sender not
    /// holding one ignores it).
    said_done: Vec<FileId>,
}

#[derive(Debug)]
struct Transfer {
    id: FileId,
    way: Way,
    /// Safe to show and to name a file: what [`safe_name`] made of it.
    name: String,
    size: u64,
    stage: Stage,
    /// Values the server issued us for its data connection (`EVENT
    /// TRANSFER`) before it was moving here (the peer's `FILE-ACCEPT` or
    /// the chat's return still on their way), handed on once it is.
    early: Option<(CallId, Keys)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Out,
    In,
}

#[derive(Debug)]
enum Stage {
    /// Ours: the driver is opening the file; the size is not known yet.
    Opening,
    /// Offered (ours) or asked (the peer's), until an answer or `until`.
    Offered { until: Instant },
    /// Bytes are moving: so many are across since `started`; `told` is
    /// the last tenth told as a line.
    Moving {
        started: Instant,
        done: u64,
        told: u64,
    },
    /// The data connection broke for `why`; until `until`, the peer's
    /// `FILE-END` is waited for, whose reason is the better one (our side
    /// sees only a reset when the peer's disk is full).
    Cut {
        until: Instant,
        why: String,
        started: Instant,
        done: u64,
    },
    /// Cut with the chat's link: it goes on from `done` once the chat is
    /// back, and ends with it if it is not.
    Held { started: Instant, done: u64 },
    /// Ours, every byte written: the receiver's `FILE-END done` is waited
    /// for until `until`, the file timeout, and then it fails.
    Sent { started: Instant, until: Instant },
}

impl Stage {
    /// When a stage that waits is over: an offer's answer, a cut's word
    /// from the peer, a sent file's `done`.
    fn until(&self) -> Option<Instant> {
        match *self {
            Stage::Offered { until } | Stage::Cut { until, .. } | Stage::Sent { until, .. } => {
                Some(until)
            }
            Stage::Opening | Stage::Moving { .. } | Stage::Held { .. } => None,
        }
    }
}

/// How long a transfer whose data connection broke waits for the peer's
/// word on it before it fails with its own reason (the file timeout, if
/// shorter).
const CUT_WAIT: Duration = Duration::from_secs(2);

/// "2.4 MB": a size as people read it (decimal units, as file managers
/// and the example show them).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        let unit = if bytes == 1 { "byte" } else { "bytes" };
        return format!("{bytes} {unit}");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// "0:05": a duration as minutes and seconds (hours when it takes them).
pub fn clock_time(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

/// "in 1.2 s, 2.0 MB/s": how long a whole transfer took, and how fast.
fn took(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = human_size((bytes as f64 / secs) as u64);
    format!("in {secs:.1} s, {rate}/s")
}

impl Files {
    fn get(&self, id: FileId) -> Option<&Transfer> {
        self.transfers.iter().find(|t| t.id == id)
    }

    fn get_mut(&mut self, id: FileId) -> Option<&mut Transfer> {
        self.transfers.iter_mut().find(|t| t.id == id)
    }

    fn remove(&mut self, id: FileId) -> Option<Transfer> {
        let at = self.transfers.iter().position(|t| t.id == id)?;
        Some(self.transfers.remove(at))
    }

    /// The oldest offer of the peer's still waiting for our answer.
    fn asked(&self) -> Option<&Transfer> {
        self.transfers
            .iter()
            .find(|t| t.way == Way::In && matches!(t.stage, Stage::Offered { .. }))
    }
}

impl Core {
    /// The chat transfers belong to, with its peer's link, if it is up.
    fn file_chat(&self) -> Option<(&Chat, Option<LinkId>)> {
        match self.place() {
            Some(Place::Chatting(chat)) if chat.ending.is_none() => {
                Some((chat, Some(chat.link.id)))
            }
            Some(Place::Rejoining { chat, .. }) => Some((chat, None)),
            _ => None,
        }
    }

    /// Our number for the next offer in this chat: odd for the chat's
    /// caller, even for its callee.
    fn next_offer(&mut self, role: Role) -> FileId {
        self.files.offered += 1;
        match role {
            Role::Caller => self.files.offered * 2 - 1,
            Role::Callee => self.files.offered * 2,
        }
    }

    /// Whether `id` is a number the peer, not we, gives its offers.
    fn peers_number(&self, id: FileId, role: Role) -> bool {
        let odd = id % 2 == 1;
        match role {
            Role::Caller => !odd && id > 0,
            Role::Callee => odd,
        }
    }

    fn file_opener(&self) -> Opener {
        self.file_chat()
            .map_or(Opener::Await, |(chat, _)| Opener::from(chat.role))
    }

    /// The name of the chat's peer, as told in notices.
    fn file_peer(&self) -> String {
        self.file_chat()
            .map(|(chat, _)| chat.peer.clone())
            .unwrap_or_default()
    }

    fn file_link(&self) -> Option<LinkId> {
        self.file_chat().and_then(|(_, link)| link)
    }

    fn file_end(&mut self, id: FileId, end: FileEnd, text: &str) {
        let msg = PeerMessage::FileEnd {
            id,
            end,
            text: text.to_string(),
        };
        match self.file_chat() {
            Some((_, Some(link))) => self.send_peer(link, msg),
            // One a transfer at most: bounded as the transfers are.
            Some((_, None)) => self.files.unsaid.push(msg),
            None => {}
        }
    }

    /// `/send PATH`.
    pub(super) fn send_file(&mut self, path: &str) {
        if self.settings.files.is_none() {
            return self.notice("This chat does not send files.");
        }
        let Some((chat, link)) = self.file_chat() else {
            return;
        };
        let peer = chat.peer.clone();
        let role = chat.role;
        let Some(_) = link else {
            return self.notice("Not now: the link is down; try again once it is back.");
        };
        if self.is_me(&peer) {
            return self.notice("A chat with yourself sends no files: copy it where you want it.");
        }
        if !chat.link.files {
            return self.notice(format!("{peer}'s chat cannot receive files."));
        }
        let relayed = chat.route == Route::Relayed;
        if !self.connected() {
            return self.notice(
                "Not now: the server is out of reach, and a file's connection takes its values; \
                 try again once it is back.",
            );
        }
        if !self.server_has(FEATURE_TRANSFER) {
            return self.notice(
                "This server cannot connect files (an older server): files cannot be sent.",
            );
        }
        if relayed && !self.server_has(FEATURE_RELAY_FILES) {
            return self.notice(
                "This chat is relayed, and the server does not relay files (--no-relay-files).",
            );
        }
        if self.files.transfers.len() >= MAX_TRANSFERS {
            return self.notice(format!(
                "{MAX_TRANSFERS} transfers are under way already; wait for one to end."
            ));
        }
        self.files.chat = Some(chat.serial);
        let id = self.next_offer(role);
        self.files.transfers.push(Transfer {
            id,
            way: Way::Out,
            name: safe_name(path),
            size: 0,
            stage: Stage::Opening,
            early: None,
        });
        self.out(Output::OpenFile {
            id,
            path: path.to_string(),
        });
    }

    /// The driver opened the file of our offer `id`, or could not.
    pub(super) fn on_file_opened(
        &mut self,
        now: Instant,
        id: FileId,
        result: Result<FileFacts, String>,
    ) {
        let timeout = self.settings.files.unwrap_or_default().timeout;
        let link = self.file_link();
        let Some(transfer) = self.files.get_mut(id) else {
            return self.out(Output::StopTransfer { id });
        };
        let facts = match (result, link) {
            (Ok(facts), Some(_)) => facts,
            (Ok(_), None) => {
                let name = transfer.name.clone();
                self.files.remove(id);
                self.out(Output::StopTransfer { id });
                return self.notice(format!(
                    "{name} not offered: the link went down; try again once it is back."
                ));
            }
            (Err(why), _) => {
                self.files.remove(id);
                return self.notice(format!("Cannot send that file: {why}."));
            }
        };
        transfer.name = safe_name(&facts.name);
        transfer.size = facts.size;
        transfer.stage = Stage::Offered {
            until: now + timeout,
        };
        let (name, size) = (transfer.name.clone(), transfer.size);
        let peer = self.file_peer();
        if let Some(link) = link {
            self.send_peer(
                link,
                PeerMessage::FileOffer {
                    id,
                    size,
                    name: facts.name,
                },
            );
        }
        self.notice(format!(
            "Offered {name} ({}) to {peer}; waiting for an answer (/cancel stops it).",
            human_size(size)
        ));
    }

    /// A `FILE-…` line from the chat's peer.
    pub(super) fn on_file_message(&mut self, now: Instant, msg: PeerMessage) {
        let Some((chat, _)) = self.file_chat() else {
            return;
        };
        let (peer, role, serial) = (chat.peer.clone(), chat.role, chat.serial);
        match msg {
            PeerMessage::FileOffer { id, size, name } => {
                self.on_offer(now, &peer, role, serial, id, size, &name)
            }
            PeerMessage::FileAccept { id } => self.on_accepted(now, &peer, id),
            PeerMessage::FileEnd { id, end, text } => self.on_file_end(now, &peer, id, end, &text),
            PeerMessage::FileReady { id } if self.is_moving(id) => {
                self.out(Output::PeerReady { id })
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_offer(
        &mut self,
        now: Instant,
        peer: &str,
        role: Role,
        serial: u64,
        id: FileId,
        size: u64,
        offered: &str,
    ) {
        let name = safe_name(offered);
        let Some(files) = self.settings.files else {
            return self.file_end(id, FileEnd::Refused, "this chat does not take files");
        };
        if !self.peers_number(id, role) || self.files.get(id).is_some() {
            return self.file_end(
                id,
                FileEnd::Refused,
                "that number is not the sender's to give",
            );
        }
        if self.files.transfers.len() >= MAX_TRANSFERS {
            return self.file_end(id, FileEnd::Refused, "too many transfers at once");
        }
        if size > files.max_receive {
            let max = human_size(files.max_receive);
            self.notice(format!(
                "{peer} offered {name} ({}), over the {max} you take (--max-receive); refused.",
                human_size(size)
            ));
            let text = format!("over the {max} {} takes", self.me().unwrap_or_default());
            return self.file_end(id, FileEnd::TooBig, &text);
        }
        self.files.chat = Some(serial);
        self.files.transfers.push(Transfer {
            id,
            way: Way::In,
            name: name.clone(),
            size,
            stage: Stage::Offered {
                until: now + files.timeout,
            },
            early: None,
        });
        let how = match self.settings.typed_from {
            TypedFrom::Terminal => "/accept or /refuse (y or n)",
            TypedFrom::Pipe => "/accept or /refuse",
        };
        self.notice(format!("{peer} sends {name} ({}): {how}", human_size(size)));
        self.out(Output::Bell);
    }

    fn on_accepted(&mut self, now: Instant, peer: &str, id: FileId) {
        let Some(transfer) = self.files.get_mut(id) else {
            // Cancelled or expired as the answer came.
            return self.file_end(id, FileEnd::Cancelled, "no such offer");
        };
        if transfer.way != Way::Out || !matches!(transfer.stage, Stage::Offered { .. }) {
            return;
        }
        transfer.stage = Stage::Moving {
            started: now,
            done: 0,
            told: 0,
        };
        let (name, size) = (transfer.name.clone(), transfer.size);
        let opener = self.file_opener();
        self.notice(format!("{peer} accepted {name}; sending."));
        self.out(Output::StartTransfer {
            id,
            direction: Direction::Send,
            size,
            opener,
        });
        self.data_values(now, id);
    }

    /// Transfer `id` is moving (again): its data connection needs values
    /// from the server. The chat's caller asks for them (`TRANSFER`); the
    /// callee is given its own (`EVENT TRANSFER`), perhaps already.
    fn data_values(&mut self, now: Instant, id: FileId) {
        let Some((chat, _)) = self.file_chat() else {
            return;
        };
        let (peer, role) = (chat.peer.clone(), chat.role);
        match role {
            Role::Caller if self.connected() => self.send(
                now,
                Request::Transfer { name: peer, id },
                Pending::Transfer { id },
            ),
            Role::Caller => self.on_transfer(
                now,
                id,
                TransferEvent::Failed(
                    "the server is out of reach, and it gives the data connection its values"
                        .into(),
                ),
            ),
            Role::Callee => {
                if let Some((call, keys)) = self.files.get_mut(id).and_then(|t| t.early.take()) {
                    self.hand_values(id, call, keys);
                }
            }
        }
    }

    /// The driver is given transfer `id`'s values; the chat's callee tells
    /// the caller it has them (`FILE-READY`), so that the caller never
    /// knocks before the callee knows what to show.
    fn hand_values(&mut self, id: FileId, call: CallId, keys: Keys) {
        let Some((chat, link)) = self.file_chat() else {
            return;
        };
        let (relayed, role) = (chat.route == Route::Relayed, chat.role);
        self.out(Output::TransferKeys {
            id,
            call,
            keys,
            relayed,
        });
        if let (Role::Callee, Some(link)) = (role, link) {
            self.send_peer(link, PeerMessage::FileReady { id });
        }
    }

    /// `OK TRANSFER`: the server's values for our data connection.
    pub(super) fn on_transfer_ready(&mut self, id: FileId, call: CallId, keys: Keys) {
        if self.is_moving(id) {
            self.hand_values(id, call, keys);
        }
    }

    /// `TRANSFER` refused: the transfer cannot connect.
    pub(super) fn on_transfer_refused(&mut self, now: Instant, id: FileId, message: &str) {
        if self.is_moving(id) {
            let why = format!("the server gave its connection no values ({message})");
            self.on_transfer(now, id, TransferEvent::Failed(why));
        }
    }

    /// `EVENT TRANSFER`: the peer asked the server for transfer `id`'s
    /// values; these are ours. Kept until the transfer moves here.
    pub(super) fn on_transfer_values(&mut self, peer: &str, call: CallId, id: FileId, keys: Keys) {
        let ours = self.file_chat().is_some_and(|(chat, _)| {
            chat.role == Role::Callee && name_key(&chat.peer) == name_key(peer)
        });
        if !ours {
            return;
        }
        if self.is_moving(id) {
            return self.hand_values(id, call, keys);
        }
        if let Some(transfer) = self.files.get_mut(id) {
            transfer.early = Some((call, keys));
        }
    }

    fn is_moving(&self, id: FileId) -> bool {
        self.files
            .get(id)
            .is_some_and(|t| matches!(t.stage, Stage::Moving { .. }))
    }

    /// Whether the chat's link is down and being brought back.
    fn chat_rejoining(&self) -> bool {
        matches!(self.place(), Some(Place::Rejoining { .. }))
    }

    /// The chat is back: transfers under way go on, on a new data
    /// connection, from the bytes the receiver has.
    pub(super) fn resume_files(&mut self, now: Instant) {
        if let Some(link) = self.file_link() {
            let again = self.files.said_done.iter().map(|&id| PeerMessage::FileEnd {
                id,
                end: FileEnd::Done,
                text: String::new(),
            });
            let msgs: Vec<PeerMessage> = again.chain(self.files.unsaid.drain(..)).collect();
            for msg in msgs {
                self.send_peer(link, msg);
            }
        }
        let opener = self.file_opener();
        let held: Vec<(FileId, Direction, u64)> = self
            .files
            .transfers
            .iter_mut()
            .filter_map(|t| {
                // A cut not yet given up on was the link's too, and bytes
                // sent into a link that broke may not have arrived: every
                // transfer under way starts again from what the receiver
                // has.
                let (started, done) = match t.stage {
                    Stage::Held { started, done }
                    | Stage::Cut { started, done, .. }
                    | Stage::Moving { started, done, .. } => (started, done),
                    Stage::Sent { started, .. } => (started, t.size),
                    Stage::Opening | Stage::Offered { .. } => return None,
                };
                t.stage = Stage::Moving {
                    started,
                    done,
                    told: (done * 10).checked_div(t.size).unwrap_or(0),
                };
                let direction = match t.way {
                    Way::Out => Direction::Send,
                    Way::In => Direction::Receive {
                        name: t.name.clone(),
                    },
                };
                Some((t.id, direction, t.size))
            })
            .collect();
        for (id, direction, size) in held {
            self.out(Output::StartTransfer {
                id,
                direction,
                size,
                opener,
            });
            self.data_values(now, id);
        }
    }

    fn on_file_end(&mut self, now: Instant, peer: &str, id: FileId, end: FileEnd, text: &str) {
        let Some(transfer) = self.files.remove(id) else {
            return;
        };
        let name = &transfer.name;
        let why = if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        };
        let notice = match (transfer.way, end, &transfer.stage) {
            (
                Way::Out,
                FileEnd::Done,
                Stage::Moving { started, .. } | Stage::Sent { started, .. },
            ) => format!(
                "{peer} received {name} ({}) {}.",
                human_size(transfer.size),
                took(transfer.size, now.saturating_duration_since(*started))
            ),
            (Way::Out, FileEnd::Refused, _) => format!("{peer} refused {name}{why}."),
            (Way::Out, FileEnd::TooBig, _) => format!("{peer} cannot take {name}{why}."),
            (_, FileEnd::Expired, _) => format!("The offer of {name} expired unanswered."),
            (_, FileEnd::Cancelled, _) => format!("{peer} cancelled {name}{why}."),
            (_, FileEnd::Failed, _) => format!("{name} failed on {peer}'s side{why}."),
            (_, end, _) => format!("{name}: {peer} said {}{why}.", end.word()),
        };
        self.notice(notice);
        self.out(Output::StopTransfer { id });
    }

    /// `/accept`, or y on an empty line: the oldest offer waiting.
    pub(super) fn accept_file(&mut self, now: Instant) {
        let Some(asked) = self.files.asked() else {
            return self.notice("No file is offered to you.");
        };
        let (id, size) = (asked.id, asked.size);
        let Some(link) = self.file_link() else {
            return self.notice("Not now: the link is down; answer once it is back.");
        };
        let name = self
            .files
            .get(id)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        if let Some(transfer) = self.files.get_mut(id) {
            transfer.stage = Stage::Moving {
                started: now,
                done: 0,
                told: 0,
            };
        }
        let opener = self.file_opener();
        self.send_peer(link, PeerMessage::FileAccept { id });
        self.notice(format!("Receiving {name}."));
        self.out(Output::StartTransfer {
            id,
            direction: Direction::Receive { name },
            size,
            opener,
        });
        self.data_values(now, id);
    }

    /// Whether `line` is y or n typed at a terminal while a file is
    /// offered to us, which answers it rather than goes to the peer.
    pub(super) fn answers_offer(&self, line: &str) -> Option<Answer> {
        if self.settings.typed_from != TypedFrom::Terminal || self.files.asked().is_none() {
            return None;
        }
        commands::answer(line).filter(|_| line.trim().len() == 1)
    }

    /// `/refuse`, or n on an empty line.
    pub(super) fn refuse_file(&mut self) {
        let Some(asked) = self.files.asked() else {
            return self.notice("No file is offered to you.");
        };
        let id = asked.id;
        let name = asked.name.clone();
        self.files.remove(id);
        self.file_end(id, FileEnd::Refused, "");
        self.notice(format!("You refused {name}."));
    }

    /// `/cancel [NAME]`: the only transfer, or the one named.
    pub(super) fn cancel_file(&mut self, name: Option<&str>) {
        let matching: Vec<FileId> = self
            .files
            .transfers
            .iter()
            .filter(|t| name.is_none_or(|n| t.name == n || safe_name(n) == t.name))
            .map(|t| t.id)
            .collect();
        let id = match (matching.as_slice(), name) {
            ([id], _) => *id,
            ([], None) => return self.notice("No transfer is under way."),
            ([], Some(name)) => {
                return self.notice(format!("No transfer of {name}; /transfers lists them."));
            }
            _ => {
                return self
                    .notice("Several transfers: /cancel NAME says which; /transfers lists them.");
            }
        };
        let Some(transfer) = self.files.remove(id) else {
            return;
        };
        self.file_end(id, FileEnd::Cancelled, "");
        self.out(Output::StopTransfer { id });
        self.notice(format!("You cancelled {}.", transfer.name));
    }

    /// `/transfers`.
    pub(super) fn list_transfers(&mut self, now: Instant) {
        if self.files.transfers.is_empty() {
            return self.notice("No transfers.");
        }
        let rows: Vec<String> = self
            .files
            .transfers
            .iter()
            .map(|t| format!("  {}", describe(t, now)))
            .collect();
        self.line(Kind::Info, "Transfers:");
        for row in rows {
            self.line(Kind::Info, row);
        }
    }

    /// The driver's word on a transfer's data.
    pub(super) fn on_transfer(&mut self, now: Instant, id: FileId, event: TransferEvent) {
        let settings = self.settings.files.unwrap_or_default();
        let (lines, timeout) = (settings.progress == ProgressShown::Lines, settings.timeout);
        let rejoining = self.chat_rejoining();
        let peer = self.file_peer();
        let Some(transfer) = self.files.get_mut(id) else {
            return;
        };
        if let (TransferEvent::Cut(why), Stage::Moving { started, done, .. }) =
            (&event, &transfer.stage)
        {
            transfer.stage = if rejoining {
                Stage::Held {
                    started: *started,
                    done: *done,
                }
            } else {
                Stage::Cut {
                    until: now + CUT_WAIT.min(timeout),
                    why: why.clone(),
                    started: *started,
                    done: *done,
                }
            };
            return;
        }
        let Stage::Moving {
            started,
            done,
            told,
        } = &mut transfer.stage
        else {
            return;
        };
        match event {
            TransferEvent::Progress(bytes) => {
                *done = bytes.min(transfer.size);
                let tenth = (*done * 10).checked_div(transfer.size).unwrap_or(10);
                if lines && tenth > *told && tenth < 10 {
                    *told = tenth;
                    let verb = match transfer.way {
                        Way::Out => "sending",
                        Way::In => "receiving",
                    };
                    let text = format!("{verb} {} {}0%", transfer.name, tenth);
                    self.notice(text);
                }
            }
            TransferEvent::Finished { saved_as } => {
                let (name, size, started, way) =
                    (transfer.name.clone(), transfer.size, *started, transfer.way);
                *done = size;
                if way == Way::Out {
                    // The peer's `FILE-END done` says it arrived, within
                    // the file timeout.
                    transfer.stage = Stage::Sent {
                        started,
                        until: now + timeout,
                    };
                    return;
                }
                self.files.remove(id);
                if self.file_link().is_some() {
                    if self.files.said_done.len() >= MAX_TRANSFERS {
                        self.files.said_done.remove(0);
                    }
                    self.files.said_done.push(id);
                }
                self.file_end(id, FileEnd::Done, "");
                let saved = saved_as.map_or(String::new(), |s| format!("; saved as {s}"));
                self.notice(format!(
                    "Received {name} ({}) from {peer} {}{saved}.",
                    human_size(size),
                    took(size, now.saturating_duration_since(started))
                ));
            }
            TransferEvent::Cut(_) => {}
            TransferEvent::Failed(why) => {
                let name = transfer.name.clone();
                self.files.remove(id);
                self.file_end(id, FileEnd::Failed, &why);
                self.out(Output::StopTransfer { id });
                self.notice(format!("{name} failed: {why}."));
            }
        }
    }

    /// Offers not answered in time expire, on both sides; a cut transfer
    /// the peer said nothing of fails with our reason.
    pub(super) fn files_timeout(&mut self, now: Instant) {
        let cut: Vec<FileId> = self.due(now, |stage| matches!(stage, Stage::Cut { .. }));
        for id in cut {
            if self.chat_rejoining() {
                // The link broke too: the transfer goes on once it is back.
                if let Some(t) = self.files.get_mut(id)
                    && let Stage::Cut { started, done, .. } = t.stage
                {
                    t.stage = Stage::Held { started, done };
                }
                continue;
            }
            let Some(Transfer {
                name,
                stage: Stage::Cut { why, .. },
                ..
            }) = self.files.remove(id)
            else {
                continue;
            };
            self.file_end(id, FileEnd::Failed, &why);
            self.out(Output::StopTransfer { id });
            self.notice(format!("{name} failed: {why}."));
        }
        let unsaid: Vec<FileId> = self.due(now, |stage| matches!(stage, Stage::Sent { .. }));
        for id in unsaid {
            if self.chat_rejoining() {
                // Its word may be on the way: asked again once it is back.
                if let Some(t) = self.files.get_mut(id)
                    && let Stage::Sent { started, .. } = t.stage
                {
                    t.stage = Stage::Held {
                        started,
                        done: t.size,
                    };
                }
                continue;
            }
            let Some(transfer) = self.files.remove(id) else {
                continue;
            };
            let peer = self.file_peer();
            let why = format!("{peer} never said it arrived");
            self.file_end(id, FileEnd::Failed, &why);
            self.out(Output::StopTransfer { id });
            self.notice(format!("{} failed: {why}.", transfer.name));
        }
        let expired: Vec<FileId> = self.due(now, |stage| matches!(stage, Stage::Offered { .. }));
        for id in expired {
            let Some(transfer) = self.files.remove(id) else {
                continue;
            };
            let name = &transfer.name;
            let text = match transfer.way {
                Way::Out => {
                    let peer = self.file_peer();
                    format!("{peer} did not answer the offer of {name}; it expired.")
                }
                Way::In => format!("The offer of {name} expired unanswered."),
            };
            self.file_end(id, FileEnd::Expired, "");
            self.out(Output::StopTransfer { id });
            self.notice(text);
        }
    }

    /// When the next offer expires, or a cut transfer fails.
    pub(super) fn files_next_timeout(&self) -> Option<Instant> {
        self.files
            .transfers
            .iter()
            .filter_map(|t| t.stage.until())
            .min()
    }

    /// The transfers in a stage `of` whose time is up.
    fn due(&self, now: Instant, of: impl Fn(&Stage) -> bool) -> Vec<FileId> {
        self.files
            .transfers
            .iter()
            .filter(|t| of(&t.stage) && t.stage.until().is_some_and(|until| now >= until))
            .map(|t| t.id)
            .collect()
    }

    /// Transfers whose chat is over end with it, and the user is told.
    pub(super) fn settle_files(&mut self) {
        if self.files.transfers.is_empty() && self.files.chat.is_none() {
            return;
        }
        let serial = self.files.chat;
        let alive = match self.place() {
            Some(Place::Chatting(chat) | Place::Rejoining { chat, .. }) => {
                Some(chat.serial) == serial
            }
            _ => false,
        };
        if alive {
            return;
        }
        for transfer in std::mem::take(&mut self.files).transfers {
            self.out(Output::StopTransfer { id: transfer.id });
            self.notice(format!("{} stopped: the chat ended.", transfer.name));
        }
    }

    /// The status row of a transfer under way, for a terminal.
    pub fn transfer_status(&self, now: Instant) -> Option<String> {
        let moving = self
            .files
            .transfers
            .iter()
            .find(|t| matches!(t.stage, Stage::Moving { .. } | Stage::Sent { .. }))?;
        Some(describe(moving, now))
    }
}

/// `sending report.pdf  34%  12.3 MB/s  0:05 left`, or what an offer waits
/// for.
fn describe(t: &Transfer, now: Instant) -> String {
    let verb = match t.way {
        Way::Out => "sending",
        Way::In => "receiving",
    };
    match t.stage {
        Stage::Opening => format!("opening {}", t.name),
        Stage::Cut { .. } => format!("{verb} {}  cut", t.name),
        Stage::Held { .. } => format!("{verb} {}  waiting for the link", t.name),
        Stage::Sent { .. } => format!("{verb} {}  100%", t.name),
        Stage::Offered { until } => {
            let left = until.saturating_duration_since(now).as_secs();
            match t.way {
                Way::Out => format!("{} offered, {left} s for an answer", t.name),
                Way::In => format!(
                    "{} offered to you ({}), {left} s to answer",
                    t.name,
                    human_size(t.size)
                ),
            }
        }
        Stage::Moving { started, done, .. } => {
            let percent = (done * 100).checked_div(t.size).unwrap_or(100);
            let secs = now.saturating_duration_since(started).as_secs_f64();
            if secs < 0.2 || done == 0 {
                return format!("{verb} {}  {percent}%", t.name);
            }
            let rate = done as f64 / secs;
            let left = ((t.size - done) as f64 / rate) as u64;
            format!(
                "{verb} {}  {percent}%  {}/s  {} left",
                t.name,
                human_size(rate as u64),
                clock_time(left)
            )
        }
    }
}

/// The feature word this chat announces when it takes files.
pub(super) fn files_feature(settings: &Settings) -> Option<&'static str> {
    settings.files.map(|_| FEATURE_FILES)
}
