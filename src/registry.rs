//! The registration server's shared table: who is online, where their chat
//! listens, and who is in a call with whom.
//!
//! [`Registry`] owns the whole table behind one `Mutex`. Its methods are the
//! only way to change it; each takes the lock for a few map operations and
//! never while reading or writing a socket. A method that must act on two
//! peers at once (claiming both for a call, ending a call) does it under one
//! lock, so no other thread ever sees half of it. Methods hand back the
//! [`Registry`]'s `O` values (each peer's outbox) for the caller to write to
//! *after* the lock is released.
//!
//! Names are unique as typed ([`name_key`]) and as seen ([`look_alike_key`]):
//! the table keeps the look-alike key of every name online or held, so a
//! registration is checked against all of them with one map lookup.
//!
//! The table also keeps the presence changes (who joined, left, became
//! busy or free) since they were last taken, coalesced, in the order the
//! table saw them: the server's presence task takes them in batches.
//!
//! The table is generic over the outbox type so that it can be unit-tested
//! without sockets. Its tables that forget by time (who called in the last
//! minute, who waits to call whom) are in `expiry.rs`.

mod expiry;
mod transfers;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::protocol::{
    CallId, FEATURE_AWAY, FEATURE_MISSED, FEATURE_PROOF, FEATURE_RING, FEATURE_RING_TIME,
    FEATURE_SESSION, FEATURE_TRANSFER, Keys, Presence, PresenceState, Token, UserEntry,
    display_name, look_alike_key, name_key, validate_name,
};
use expiry::{Deadlines, MinuteWindows, take_from_minute};
use transfers::TransferValues;
pub use transfers::{
    FileRelayError, MAX_FILE_RELAYS, MAX_TRANSFERS, Meeting, TransferError, Transferred,
};

/// Calls `f` with `name`'s [`name_key`], made on the stack for a short
/// ASCII name (its lowercase), so a lookup by name allocates nothing.
fn with_name_key<R>(name: &str, f: impl FnOnce(&str) -> R) -> R {
    const SHORT: usize = 64;
    if name.len() <= SHORT && name.is_ascii() {
        let mut key = [0u8; SHORT];
        let key = &mut key[..name.len()];
        key.copy_from_slice(name.as_bytes());
        key.make_ascii_lowercase();
        // ASCII lowercased is still ASCII, and NFKC_Casefold of ASCII is
        // its lowercase.
        return f(std::str::from_utf8(key).unwrap_or_default());
    }
    f(&name_key(name))
}

/// Identifies one registration connection; a peer's entry can only be
/// changed through the connection that created it.
pub type ConnId = u64;

/// The table. Share it as `Arc<Registry<O>>`.
pub struct Registry<O> {
    state: Mutex<State<O>>,
    limits: CallLimits,
}

/// What keeps one client from keeping a peer busy: a caller whose call
/// did not become a chat waits `recall_wait` before calling that peer again,
/// nobody starts more than `calls_per_minute` calls a minute, and one
/// address makes at most `registrations_per_ip` registrations a minute,
/// so fresh names to ring with do not come for free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Zero: no wait.
    pub recall_wait: Duration,
    pub calls_per_minute: usize,
    /// How long the name of a registration whose connection was lost (not
    /// closed) stays held for its owner, who takes it back with its
    /// secret; zero: not held.
    pub hold: Duration,
    /// Most rings a minute one callee gets from callers it has not chatted
    /// with since it registered; the rest are refused: a flood of fresh
    /// names cannot keep asking someone to answer.
    pub stranger_rings: usize,
    /// Most registrations a minute from one source address.
    pub registrations_per_ip: usize,
}

/// The default bound on registrations a minute from one address: an office
/// of 60 behind one NAT starting their chats at once, and each of them
/// registering once more within the minute (a Wi-Fi or NAT hiccup, or the
/// server restarted, sends every chat back to register).
pub const REGISTRATIONS_PER_IP: usize = 120;

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits {
            recall_wait: Duration::from_secs(60),
            calls_per_minute: 30,
            hold: Duration::from_secs(60),
            stranger_rings: 6,
            registrations_per_ip: REGISTRATIONS_PER_IP,
        }
    }
}

/// A call set up at once (not rung) with a callee that sends no `LINKED`
/// note (an older chat), and that ends sooner than this after it was
/// claimed, did not become a chat: the callee's chat waits 8 s for the
/// caller's connection before giving up on it.
pub const CONNECT_WINDOW: Duration = Duration::from_secs(10);

/// How long a registration whose connection closed cleanly may be taken
/// back with its secret before its program counts as gone (`EVENT GONE`).
pub const CLOSE_VERDICT: Duration = Duration::from_secs(2);

/// How long the partner of a peer whose connection was lost is kept, so
/// that a new program taking the name tells it the old one is gone.
pub const LOST_MEMORY: Duration = Duration::from_secs(600);

/// A caller that hangs up on this many rings to one callee within a
/// minute waits the recall wait: ringing again and again is what it is for.
pub const CANCELS_BEFORE_WAIT: usize = 3;

struct State<O> {
    /// Keyed by [`name_key`], so names are unique regardless of case.
    peers: HashMap<String, Peer<O>>,
    /// The [`name_key`] of the name online or held under each
    /// [`look_alike_key`], so that names are unique as seen too. An entry
    /// whose name is neither (its hold ran out) is stale, and is replaced
    /// by the next name with that look.
    look_alikes: HashMap<String, String>,
    calls: HashMap<CallId, Call<O>>,
    next_call: CallId,
    presence: PresenceChanges,
    /// Until when a caller may not call a callee again, by their
    /// [`name_key`]s: set when a call between them did not become a chat.
    recall_after: Deadlines<(String, String)>,
    /// When each caller (by [`name_key`]) started its calls of the last
    /// minute; kept across reconnections, like `recall_after`.
    recent_calls: MinuteWindows<String>,
    /// When each caller hung up on its rings to each callee, in the last
    /// minute.
    cancels: MinuteWindows<(String, String)>,
    /// When each source address registered, in the last minute.
    registrations: MinuteWindows<IpAddr>,
    /// Registrations that ended while in a call with a peer that announced
    /// `session`, by [`name_key`]: that peer is told when their program is
    /// known to be gone.
    departed: HashMap<String, Departed>,
    /// The same, oldest first, to forget them in order.
    departed_order: VecDeque<(Instant, String, u64)>,
    next_departure: u64,
    /// Numbers each issue of a transfer's values.
    next_transfer: u64,
}

/// A registration that ended while in a call, or lost its connection.
#[derive(Clone)]
struct Departed {
    id: u64,
    /// As listed.
    name: String,
    /// Its [`look_alike_key`].
    look_alike: String,
    secret: Token,
    /// The other party of its call, by [`name_key`], if it was in one.
    partner: Option<String>,
    /// Until when nobody but its owner may take the name: its connection
    /// was lost, not closed.
    held_until: Option<Instant>,
}

struct Peer<O> {
    name: String,
    /// Its [`look_alike_key`].
    look_alike: String,
    conn: ConnId,
    advertised: SocketAddr,
    seen: IpAddr,
    call: Option<CallId>,
    outbox: O,
    features: ClientFeatures,
    /// Given in `WELCOME` (to a client that announced `session`): whoever
    /// presents it in a `REGISTER` takes this registration over.
    secret: Token,
    /// Who it has chatted with since it registered (by [`name_key`]):
    /// their rings are never held back.
    chatted: HashSet<String>,
    /// When callers it has not chatted with rang it, in the last minute.
    stranger_rings: VecDeque<Instant>,
    /// Said `AWAY`, with this message: calls to it are refused.
    away: Option<String>,
}

impl<O> Peer<O> {
    /// Its row in the list: busy in a call, else away or free.
    fn entry(&self) -> UserEntry {
        UserEntry {
            name: self.name.clone(),
            busy: self.call.is_some(),
            away: self.call.is_none() && self.away.is_some(),
        }
    }

    /// What watchers are told it is once it is in no call.
    fn free_state(&self) -> PresenceState {
        if self.away.is_some() {
            PresenceState::Away
        } else {
            PresenceState::Free
        }
    }
}

/// What a client announced with `FEATURES` that changes how the server
/// treats it. A client that announced nothing gets today's behaviour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientFeatures {
    /// `ring`: a call to it rings until answered (if the caller rings too).
    pub ring: bool,
    /// `missed`: it is told of calls that found it busy.
    pub missed: bool,
    /// `session`: it owns its registration by a secret, is told how a
    /// vanished peer left, and notes when its caller's link is up.
    pub session: bool,
    /// `proof`: it takes values of its own for each call (and shows its
    /// own first when dialed), when its peer does too.
    pub proof: bool,
    /// `ring-time`: it is told how long a ring has left.
    pub ring_time: bool,
    /// `away`: it reads the state `away` and the code `away`.
    pub away: bool,
    /// `transfer`: it takes values for a file's data connection (`EVENT
    /// TRANSFER`), and may ask for them.
    pub transfer: bool,
}

impl ClientFeatures {
    /// From the words of a `FEATURES` request; unknown words are ignored.
    pub fn from_words(words: &[String]) -> ClientFeatures {
        let has = |feature: &str| words.iter().any(|w| w == feature);
        ClientFeatures {
            ring: has(FEATURE_RING),
            missed: has(FEATURE_MISSED),
            session: has(FEATURE_SESSION),
            proof: has(FEATURE_PROOF),
            ring_time: has(FEATURE_RING_TIME),
            away: has(FEATURE_AWAY),
            transfer: has(FEATURE_TRANSFER),
        }
    }
}

/// One claimed call. Both keys are [`name_key`]s; for a call to oneself they
/// are equal.
struct Call<O> {
    caller: String,
    callee: String,
    /// The one value both parties share, when either is an older client
    /// (without `proof`).
    token: Token,
    /// The values of each party's own, when both announced `proof`.
    own: Option<OwnValues>,
    started: Instant,
    /// Since when the token opens the relay (the start, or the last
    /// `REJOIN`).
    relay_since: Instant,
    /// Who asked to bring the chat back through the relay (`REJOIN`): the
    /// first relay half is theirs, and the other party is told to join.
    rejoiner: Option<String>,
    /// How many relay connections presented this call's token (at most 2:
    /// the caller's, then the callee's).
    relay_halves: u8,
    /// The relay connections opened for this call, closed when it ends.
    relays: Vec<O>,
    /// The values of its file transfers, oldest first (`transfers.rs`).
    transfers: Vec<TransferValues>,
    /// Its file relay connections open now, by connection: closed with
    /// the chat's relay.
    file_relays: Vec<(ConnId, O)>,
    /// Whether the callee was rung (rather than the call set up at once).
    rang: bool,
    /// The callee announced `session`: it says when the caller's link is up
    /// (`LINKED`), so the call's length says nothing.
    callee_notes: bool,
    /// The callee said the caller's link is up: the call became a chat.
    linked: bool,
    phase: Phase,
}

/// Fresh random values for a call, `LOCATE` or `REJOIN`, drawn before the
/// registry's lock is taken: the registry decides which are used.
#[derive(Debug, Clone, Copy)]
pub struct Fresh {
    /// Shared by both parties, when either is an older client.
    pub token: Token,
    /// Each party's own (caller, callee): one to show the other, one for
    /// its relay half.
    pub show: [Token; 2],
    pub relay: [Token; 2],
}

/// A call's values when both parties announced `proof`, by party: 0 is
/// the call's caller, 1 its callee. Each shows its `show` to the other;
/// each opens its own half of the relay with its `relay`, once.
#[derive(Debug, Clone, Copy)]
struct OwnValues {
    show: [Token; 2],
    relay: [Token; 2],
    joined: [bool; 2],
}

impl OwnValues {
    fn new(fresh: &Fresh) -> OwnValues {
        OwnValues {
            show: fresh.show,
            relay: fresh.relay,
            joined: [false; 2],
        }
    }

    /// What party `i` holds.
    fn keys(&self, i: usize) -> Keys {
        Keys::Own {
            show: self.show[i],
            expect: self.show[1 - i],
            relay: self.relay[i],
        }
    }
}

impl<O> Call<O> {
    /// Every relay connection of the call, the chat's and its files', to
    /// be closed: the call ended, or its relay opens again.
    fn take_relays(&mut self) -> Vec<O> {
        let mut relays = std::mem::take(&mut self.relays);
        relays.extend(self.file_relays.drain(..).map(|(_, outbox)| outbox));
        relays
    }

    /// What party `i` (0: caller, 1: callee) is given.
    fn keys(&self, i: usize) -> Keys {
        match &self.own {
            Some(own) => own.keys(i),
            None => Keys::Shared(self.token),
        }
    }
}

/// Where a claimed call is. Both parties are busy in every phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The callee is being asked (`EVENT RING`); nobody knows the token or
    /// the addresses yet, and the relay is shut.
    Ringing,
    /// The caller has the callee's addresses and token: the chat is being
    /// set up, or goes on.
    Live,
    /// Re-established after a server restart by one side, waiting for the
    /// other to resume it too.
    AwaitingResume,
}

/// How long after a call was claimed its token still opens the relay.
pub const RELAY_WINDOW: Duration = Duration::from_secs(30);

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    BadName(crate::protocol::NameError),
    /// Someone online already has this name (in any case).
    Taken(String),
    /// The name (as it would be listed) looks like one online, or held for
    /// its owner for `held` more: they have one [`look_alike_key`].
    LooksLike {
        name: String,
        like: String,
        held: Option<Duration>,
    },
    /// The address registered `limit` times in the last minute; the next
    /// may come after `wait`.
    TooMany {
        limit: usize,
        wait: Duration,
    },
    /// The name's owner lost its connection; the name is held for it for
    /// `wait` more.
    Held {
        name: String,
        wait: Duration,
    },
}

/// Why a call could not be claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Nobody online by that name.
    UnknownUser(String),
    /// The callee is in a call (the name as the callee spells it).
    Busy(String),
    /// The caller is in a call already (perhaps one just claimed by someone
    /// else calling them).
    AlreadyInCall,
    /// The caller is not registered (a stale connection).
    NotRegistered,
    /// The caller's last call to this callee did not become a chat:
    /// it may call again after `wait`.
    TooSoon { callee: String, wait: Duration },
    /// The caller started `limit` calls in the last minute; the next may
    /// start after `wait`.
    TooManyCalls { limit: usize, wait: Duration },
    /// The callee asks before answering, and the caller cannot ring (an
    /// older chat without `ring`): the callee's terms decide, so the call
    /// is not set up, and the callee is to hear of it as a missed call.
    RingsOnly(String),
    /// The callee was rung by its limit of callers it has not chatted with
    /// in the last minute; the next may ring after `wait`.
    NotTakingCalls { callee: String, wait: Duration },
    /// The callee said it is away, with `message`: nothing is claimed, no
    /// wait follows, and the callee is to hear of it as a missed call.
    Away { callee: String, message: String },
}

/// What the server must tell the callee after a successful claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim<O> {
    pub call: CallId,
    pub caller: String,
    pub callee: String,
    /// What each party holds for the call (caller, callee).
    pub keys: [Keys; 2],
    pub callee_outbox: O,
    /// What the callee announced: what it is told, and how.
    pub callee_features: ClientFeatures,
    pub setup: Setup,
}

/// How a claimed call goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setup {
    /// At once: the caller dials `addrs` (the callee's, best first).
    Connect { addrs: Vec<SocketAddr> },
    /// Both announced `ring`: the callee is asked first, and the caller
    /// learns the addresses only from [`Registry::answer`].
    Ring,
}

/// A ringing call just answered: what the caller is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered<O> {
    pub call: CallId,
    pub caller: String,
    pub callee: String,
    /// What each party holds for the call (caller, callee).
    pub keys: [Keys; 2],
    /// The callee's addresses, best first, for the caller to dial.
    pub addrs: Vec<SocketAddr>,
    pub caller_outbox: O,
}

/// A ringing call that rang out: both parties, now free, to be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangOut<O> {
    pub call: CallId,
    pub caller: String,
    pub caller_outbox: O,
    pub callee: String,
    pub callee_outbox: O,
}

/// A call that just ended, and whom to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended<O> {
    pub call: CallId,
    /// The name of the peer who ended it (or vanished).
    pub by: String,
    /// The other party's outbox; `None` when the call was with oneself.
    pub notify: Option<O>,
    /// Whether the other party announced `session` (and so reads how a
    /// vanished peer left, and `EVENT BUSY`).
    pub notify_session: bool,
    pub duration: Duration,
    /// The call's relay connections (its chat's and its files'), to be
    /// closed: a relay never outlives its call.
    pub relays: Vec<O>,
}

/// A registration's connection: what [`Registry::register_owned`] files
/// under the name.
pub struct Entry<O> {
    pub conn: ConnId,
    /// Where its chat listens, as it said.
    pub advertised: SocketAddr,
    /// Where the server saw it connect from.
    pub seen: IpAddr,
    pub outbox: O,
    pub features: ClientFeatures,
}

/// How a registration ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaving {
    /// `QUIT`: the program said it leaves.
    Quit,
    /// The connection closed cleanly (EOF): the program is gone, unless it
    /// takes its registration back with its secret within
    /// [`CLOSE_VERDICT`].
    Closed,
    /// An error, or missed heartbeats: its network went quiet.
    Lost,
    /// Reset by the peer's system: most often its program ended (killed)
    /// with bytes unread, sometimes a box on the way dropped it. The name
    /// is held for its owner, as after a loss, and a verdict follows, as
    /// after a clean close: unless it is taken back, the program is gone.
    Reset,
}

/// What a registration's end changes for others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed<O> {
    /// The call it ended, if it was in one.
    pub ended: Option<Ended<O>>,
    /// Its partner, to be told at once that its program is gone.
    pub gone: Option<Gone<O>>,
    /// Ask [`Registry::verdict`] with this after [`CLOSE_VERDICT`].
    pub verdict: Option<Verdict>,
}

/// A pending verdict on a registration that closed cleanly.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Verdict {
    key: String,
    id: u64,
}

/// The program of `peer` is gone: tell its last partner (`EVENT GONE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gone<O> {
    pub peer: String,
    pub partner: O,
}

/// A registration made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered<O> {
    /// The secret that owns it (the one presented, when it took its own
    /// registration back).
    pub secret: Token,
    /// It took its own registration over from another connection: that
    /// connection's outbox, to be closed.
    pub replaced: Option<O>,
    /// A new program took the name of one that departed in a call: its
    /// partner is to be told the old one is gone.
    pub gone: Option<Gone<O>>,
}

/// A `LOCATE` answered: where the peer of one's call is now.
pub struct Located<O> {
    pub peer: String,
    pub call: CallId,
    pub addrs: Vec<SocketAddr>,
    /// When both announced `proof`: the asker's values for this attempt,
    /// the peer's, and the peer's outbox to tell it (`EVENT RETURNING`).
    pub keys: Option<(Keys, Keys, O)>,
}

/// A `REJOIN` answered: the relay is open again for the call.
pub struct Rejoined<O> {
    pub peer: String,
    pub call: CallId,
    /// What the asker holds now.
    pub keys: Keys,
    /// The relay's old connections, its files' too, to be closed.
    pub relays: Vec<O>,
}

/// A relay connection admitted for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayTicket<O> {
    /// The first half (the caller's): ask the callee, through its outbox,
    /// to open the second.
    First {
        caller: String,
        callee: String,
        callee_outbox: O,
        /// Set when the relay opens for a `REJOIN`: the other party is
        /// given its keys (`EVENT REJOIN`), which it has not seen.
        rejoin: Option<Keys>,
    },
    /// The second half: join it to the first.
    Second,
}

impl<O: Clone> Default for Registry<O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<O: Clone> Registry<O> {
    pub fn new() -> Self {
        Self::with_limits(CallLimits::default())
    }

    pub fn with_limits(limits: CallLimits) -> Self {
        Registry {
            state: Mutex::new(State {
                peers: HashMap::new(),
                look_alikes: HashMap::new(),
                calls: HashMap::new(),
                next_call: 1,
                presence: PresenceChanges::default(),
                recall_after: Deadlines::default(),
                recent_calls: MinuteWindows::default(),
                cancels: MinuteWindows::default(),
                registrations: MinuteWindows::default(),
                departed: HashMap::new(),
                departed_order: VecDeque::new(),
                next_departure: 1,
                next_transfer: 1,
            }),
            limits,
        }
    }

    /// Takes the lock. A thread that panicked while holding it cannot have
    /// left the table half-changed (no method panics between two writes), so
    /// a poisoned lock is taken back rather than spreading the panic.
    fn lock(&self) -> MutexGuard<'_, State<O>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `name` for connection `conn`, without a secret. Fails if the
    /// name is invalid or taken.
    pub fn register(
        &self,
        conn: ConnId,
        name: &str,
        advertised: SocketAddr,
        seen: IpAddr,
        outbox: O,
        features: ClientFeatures,
    ) -> Result<(), RegisterError> {
        let entry = Entry {
            conn,
            advertised,
            seen,
            outbox,
            features,
        };
        self.register_owned(name, entry, None, Token([0; 16]))
            .map(|_| ())
    }

    /// Adds `name` for `entry`'s connection, owned by `fresh`. Fails if the
    /// name is invalid, taken by another program, or looks like a name
    /// online or held (see [`look_alike_key`]). A registration that
    /// presents the secret of the one online under the name (its own,
    /// from an older connection) takes it over at once, call and all; one
    /// that presents the secret of a registration that just ended takes its
    /// place. Anyone else taking the name of a registration that ended in
    /// a call is a new program: the old one's partner is to be told.
    ///
    /// Each registration made counts against its address's
    /// [`CallLimits::registrations_per_ip`], checked before anything else.
    pub fn register_owned(
        &self,
        name: &str,
        entry: Entry<O>,
        presented: Option<Token>,
        fresh: Token,
    ) -> Result<Registered<O>, RegisterError> {
        validate_name(name).map_err(RegisterError::BadName)?;
        let key = name_key(name);
        let look_alike = look_alike_key(name);
        // Listed, and told to watchers, in one spelling: the display form.
        let shown = display_name(name);
        let mut state = self.lock();
        let now = Instant::now();
        let limit = self.limits.registrations_per_ip;
        if let Err(wait) = state.registrations.room(&entry.seen, now, limit) {
            return Err(RegisterError::TooMany { limit, wait });
        }
        state.registrations.expire(now);
        let owns = |secret: &Token| presented.is_some_and(|p| p.matches(secret));
        if let Some(existing) = state.peers.get_mut(&key) {
            if !owns(&existing.secret) {
                return Err(RegisterError::Taken(existing.name.clone()));
            }
            let replaced = std::mem::replace(&mut existing.outbox, entry.outbox);
            existing.conn = entry.conn;
            existing.advertised = entry.advertised;
            existing.seen = entry.seen;
            existing.features = entry.features;
            let secret = existing.secret;
            state.registrations.record(&entry.seen, now);
            return Ok(Registered {
                secret,
                replaced: Some(replaced),
                gone: None,
            });
        }
        let mut secret = fresh;
        let mut gone = None;
        if let Some(departed) = state.departed.get(&key) {
            let held = departed.held_until.filter(|until| *until > now);
            if let (Some(until), false) = (held, owns(&departed.secret)) {
                return Err(RegisterError::Held {
                    name: departed.name.clone(),
                    wait: until - now,
                });
            }
        }
        if let Some(like) = state.looked_like(&look_alike, &key, now) {
            return Err(RegisterError::LooksLike {
                name: shown,
                like: like.0,
                held: like.1,
            });
        }
        if let Some(departed) = state.departed.remove(&key) {
            state.unindex_look_alike(&departed.look_alike, &key);
            if owns(&departed.secret) {
                secret = departed.secret;
            } else {
                gone = state.gone_partner(&departed);
            }
        }
        state.registrations.record(&entry.seen, now);
        state.presence.record(&shown, PresenceState::Joined);
        state.look_alikes.insert(look_alike.clone(), key.clone());
        state.peers.insert(
            key,
            Peer {
                name: shown,
                look_alike,
                conn: entry.conn,
                advertised: entry.advertised,
                seen: entry.seen,
                call: None,
                outbox: entry.outbox,
                features: entry.features,
                secret,
                chatted: HashSet::new(),
                stranger_rings: VecDeque::new(),
                away: None,
            },
        );
        Ok(Registered {
            secret,
            replaced: None,
            gone,
        })
    }

    /// Records what the peer `name` (registered by `conn`) announced.
    pub fn set_features(&self, conn: ConnId, name: &str, features: ClientFeatures) {
        let mut state = self.lock();
        if let Some(peer) = state.peers.get_mut(&name_key(name))
            && peer.conn == conn
        {
            peer.features = features;
        }
    }

    /// Marks the peer `name` (registered by `conn`) away, with `message`,
    /// or back (`None`): while away, calls to it are refused
    /// ([`CallError::Away`]), and watchers are told it is away whenever it
    /// is in no call. False if `conn` holds no registration of `name`.
    pub fn set_away(&self, conn: ConnId, name: &str, away: Option<String>) -> bool {
        let mut state = self.lock();
        let Some(peer) = state.peers.get_mut(&name_key(name)) else {
            return false;
        };
        if peer.conn != conn {
            return false;
        }
        peer.away = away;
        if peer.call.is_none() {
            let (name, now) = (peer.name.clone(), peer.free_state());
            state.presence.record(&name, now);
        }
        true
    }

    /// The outbox of `callee`, if it is online and asked to hear of calls
    /// that found it busy.
    pub fn missed_call_outbox(&self, callee: &str) -> Option<O> {
        let state = self.lock();
        let peer = state.peers.get(&name_key(callee))?;
        peer.features.missed.then(|| peer.outbox.clone())
    }

    /// The presence changes since the last call, each name once with its
    /// latest state, in the order they first changed.
    pub fn take_presence(&self) -> Vec<Presence> {
        self.lock().presence.take()
    }

    /// Everyone online, sorted by name (case-insensitively).
    pub fn list(&self) -> Vec<UserEntry> {
        let state = self.lock();
        let mut entries: Vec<(&String, UserEntry)> = state
            .peers
            .iter()
            .map(|(key, p)| (key, p.entry()))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries.into_iter().map(|(_, e)| e).collect()
    }

    /// Where `asker` can dial `name` now: only when the two are in the same
    /// call, so that nobody learns an address they were not given by a call.
    pub fn locate(&self, asker: &str, name: &str, fresh: Fresh) -> Option<Located<O>> {
        let asker_key = name_key(asker);
        let mut state = self.lock();
        let me = state.peers.get(&asker_key)?;
        let peer = state.peers.get(&name_key(name))?;
        let call = me.call.filter(|_| me.call == peer.call)?;
        let addrs = candidates(me.seen, peer.advertised, peer.seen);
        let both_prove = me.features.proof && peer.features.proof;
        let (peer_name, peer_outbox) = (peer.name.clone(), peer.outbox.clone());
        let entry = state.calls.get_mut(&call)?;
        // Fresh values to show for this attempt, for both; the relay's stay.
        let keys = both_prove.then(|| {
            let mut own = entry.own.unwrap_or_else(|| OwnValues::new(&fresh));
            own.show = fresh.show;
            entry.own = Some(own);
            let me = usize::from(entry.callee == asker_key && entry.caller != asker_key);
            (own.keys(me), own.keys(1 - me), peer_outbox)
        });
        Some(Located {
            peer: peer_name,
            call,
            addrs,
            keys,
        })
    }

    /// One peer's row, if online.
    pub fn lookup(&self, name: &str) -> Option<UserEntry> {
        with_name_key(name, |key| {
            let state = self.lock();
            Some(state.peers.get(key)?.entry())
        })
    }

    pub fn len(&self) -> usize {
        self.lock().peers.len()
    }

    /// Checks that the table agrees with itself: every peer marked busy is
    /// a party of the call it names, every call's parties that are online
    /// are busy in it (a resumed call may wait for its second party), each
    /// call holds at most two relay connections, and no name is listed
    /// twice. For tests that throw random requests at a live server.
    pub fn check_invariants(&self) -> Result<(), String> {
        let state = self.lock();
        for (key, peer) in &state.peers {
            if name_key(&peer.name) != *key {
                return Err(format!("{} filed under {key}", peer.name));
            }
            if state.look_alikes.get(&peer.look_alike) != Some(key) {
                return Err(format!("{} missing from the look-alikes", peer.name));
            }
            if let Some(call) = peer.call {
                let entry = state
                    .calls
                    .get(&call)
                    .ok_or_else(|| format!("{} busy in call {call}, which is gone", peer.name))?;
                if entry.caller != *key && entry.callee != *key {
                    return Err(format!("{} busy in call {call}, not a party", peer.name));
                }
            }
        }
        if state.look_alikes.len() > state.peers.len() + state.departed.len() {
            return Err(format!(
                "{} look-alikes for {} names online and {} departed",
                state.look_alikes.len(),
                state.peers.len(),
                state.departed.len()
            ));
        }
        for (call, entry) in &state.calls {
            if entry.relays.len() > 2 {
                return Err(format!("call {call} has {} relays", entry.relays.len()));
            }
            if entry.transfers.len() > MAX_TRANSFERS || entry.file_relays.len() > MAX_FILE_RELAYS {
                return Err(format!(
                    "call {call} keeps {} transfers and {} file relays",
                    entry.transfers.len(),
                    entry.file_relays.len()
                ));
            }
            for key in [&entry.caller, &entry.callee] {
                let waiting = entry.phase == Phase::AwaitingResume && *key == entry.callee;
                match state.peers.get(key) {
                    Some(peer) if peer.call != Some(*call) && !waiting => {
                        return Err(format!(
                            "{} is a party of call {call} but not busy in it",
                            peer.name
                        ));
                    }
                    None if !waiting => {
                        return Err(format!("call {call} outlived its party {key}"));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Calls open now: ringing, being set up, or chatting.
    pub fn calls_open(&self) -> usize {
        self.lock().calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Claims the caller (registered as `caller_name`) and the peer named
    /// `callee` for one call, in one step: of two callers racing for one
    /// peer, exactly one gets it. `fresh` gives the call's values: each
    /// party's own when both announced `proof`, else one shared token. The
    /// call rings ([`Setup::Ring`]) when both announced `ring` and they are
    /// two; otherwise it connects at once.
    pub fn claim_call(
        &self,
        caller_name: &str,
        callee: &str,
        fresh: Fresh,
    ) -> Result<Claim<O>, CallError> {
        self.claim_call_at(caller_name, callee, fresh, Instant::now())
    }

    /// [`Registry::claim_call`] at `now`. The caller's calls-per-minute
    /// limit is applied first: a caller over it costs the table nothing
    /// more.
    pub fn claim_call_at(
        &self,
        caller_name: &str,
        callee: &str,
        fresh: Fresh,
        now: Instant,
    ) -> Result<Claim<O>, CallError> {
        let caller_key = name_key(caller_name);
        let callee_key = name_key(callee);
        let mut state = self.lock();
        let caller = state
            .peers
            .get(&caller_key)
            .ok_or(CallError::NotRegistered)?;
        if caller.call.is_some() {
            return Err(CallError::AlreadyInCall);
        }
        let caller_seen = caller.seen;
        let caller_name = caller.name.clone();
        let caller_rings = caller.features.ring;
        let caller_proves = caller.features.proof;
        let limit = self.limits.calls_per_minute;
        if let Err(wait) = state.recent_calls.take(&caller_key, now, limit) {
            return Err(CallError::TooManyCalls { limit, wait });
        }
        state.forget_expired_calls(now);
        let pair = (caller_key.clone(), callee_key.clone());
        if let Some(wait) = state.recall_after.wait(&pair, now) {
            let callee = state.peers.get(&callee_key).map_or(callee, |p| &p.name);
            return Err(CallError::TooSoon {
                callee: callee.to_string(),
                wait,
            });
        }
        let target = state
            .peers
            .get(&callee_key)
            .ok_or_else(|| CallError::UnknownUser(callee.to_string()))?;
        // Ringing yourself would only ask you to answer your own call.
        let to_self = caller_key == callee_key;
        if let (Some(message), false) = (&target.away, to_self) {
            return Err(CallError::Away {
                callee: target.name.clone(),
                message: message.clone(),
            });
        }
        if target.call.is_some() {
            return Err(CallError::Busy(target.name.clone()));
        }
        if target.features.ring && !caller_rings && !to_self {
            return Err(CallError::RingsOnly(target.name.clone()));
        }
        let rings = caller_rings && target.features.ring && !to_self;
        if rings
            && !target.chatted.contains(&caller_key)
            && let Some(target) = state.peers.get_mut(&callee_key)
        {
            let limit = self.limits.stranger_rings;
            if let Err(wait) = take_from_minute(&mut target.stranger_rings, now, limit) {
                let callee = target.name.clone();
                return Err(CallError::NotTakingCalls { callee, wait });
            }
        }
        let target = state
            .peers
            .get(&callee_key)
            .ok_or_else(|| CallError::UnknownUser(callee.to_string()))?;
        let setup = if rings {
            Setup::Ring
        } else {
            Setup::Connect {
                addrs: candidates(caller_seen, target.advertised, target.seen),
            }
        };
        let callee_name = target.name.clone();
        let callee_outbox = target.outbox.clone();
        let callee_features = target.features;
        let callee_notes = target.features.session;
        let own = (caller_proves && target.features.proof).then(|| OwnValues::new(&fresh));
        let call = state.next_call;
        state.next_call += 1;
        for key in [&caller_key, &callee_key] {
            if let Some(peer) = state.peers.get_mut(key)
                && peer.call.is_none()
            {
                peer.call = Some(call);
                let name = peer.name.clone();
                state.presence.record(&name, PresenceState::Busy);
            }
        }
        let phase = match setup {
            Setup::Ring => Phase::Ringing,
            Setup::Connect { .. } => Phase::Live,
        };
        state.calls.insert(
            call,
            Call {
                caller: caller_key,
                callee: callee_key,
                token: fresh.token,
                own,
                started: now,
                relay_since: now,
                rejoiner: None,
                relay_halves: 0,
                relays: Vec::new(),
                transfers: Vec::new(),
                file_relays: Vec::new(),
                rang: phase == Phase::Ringing,
                callee_notes,
                linked: false,
                phase,
            },
        );
        let keys = match own {
            Some(own) => [own.keys(0), own.keys(1)],
            None => [Keys::Shared(fresh.token); 2],
        };
        Ok(Claim {
            call,
            keys,
            caller: caller_name,
            callee: callee_name,
            callee_outbox,
            callee_features,
            setup,
        })
    }

    /// The callee `name` answers the ringing `call`: from now on it is a
    /// call like one that never rang (its relay window starts now). `None`
    /// if `call` is not ringing for `name`.
    pub fn answer(&self, name: &str, call: CallId) -> Option<Answered<O>> {
        let key = name_key(name);
        let mut state = self.lock();
        let entry = state.ringing_for(call, &key)?;
        let caller = state.peers.get(&entry.caller)?;
        let callee = state.peers.get(&key)?;
        let answered = Answered {
            call,
            caller: caller.name.clone(),
            callee: callee.name.clone(),
            keys: [entry.keys(0), entry.keys(1)],
            addrs: candidates(caller.seen, callee.advertised, callee.seen),
            caller_outbox: caller.outbox.clone(),
        };
        if let Some(entry) = state.calls.get_mut(&call) {
            entry.phase = Phase::Live;
            entry.started = Instant::now();
        }
        state.chatted(&key, call);
        Some(answered)
    }

    /// The callee `name` declines the ringing `call`: both are free, and
    /// the caller is to be told. `None` if `call` is not ringing for `name`.
    pub fn decline(&self, name: &str, call: CallId) -> Option<Ended<O>> {
        let key = name_key(name);
        let mut state = self.lock();
        state.ringing_for(call, &key)?;
        end_call(&mut state, call, End::Declined { by: key }, &self.limits)
    }

    /// Ends `call` if it is still ringing (its ring timeout passed); both
    /// are free and to be told. Call ids are never reused, so a timer for a
    /// call answered, declined or hung up meanwhile changes nothing.
    pub fn ring_out(&self, call: CallId) -> Option<RangOut<O>> {
        let mut state = self.lock();
        let entry = state.calls.get(&call)?;
        if entry.phase != Phase::Ringing {
            return None;
        }
        let caller = state.peers.get(&entry.caller)?;
        let callee = state.peers.get(&entry.callee)?;
        let rang = RangOut {
            call,
            caller: caller.name.clone(),
            caller_outbox: caller.outbox.clone(),
            callee: callee.name.clone(),
            callee_outbox: callee.outbox.clone(),
        };
        let by = entry.caller.clone();
        end_call(&mut state, call, End::RangOut { by }, &self.limits);
        Some(rang)
    }

    /// Ends `call` on behalf of the peer `name`, freeing both parties. Only
    /// a party of the call can end it; anyone else gets `None` and nothing
    /// changes.
    pub fn hangup(&self, name: &str, call: CallId) -> Option<Ended<O>> {
        let key = name_key(name);
        let mut state = self.lock();
        if state.peers.get(&key)?.call != Some(call) {
            return None;
        }
        end_call(&mut state, call, End::HungUp { by: key }, &self.limits)
    }

    /// Removes the peer `name` if connection `conn` registered it, ending its
    /// call if it had one. Called when a registration connection closes for
    /// any reason, said by `how`. A partner that announced `session` is told
    /// how (`EVENT HANGUP … closed|lost`), and later whether the program is
    /// gone: at once after `QUIT`, after a [`Registry::verdict`] for a clean
    /// close, or when a new program takes the name.
    pub fn remove(&self, conn: ConnId, name: &str, how: Leaving) -> Removed<O> {
        let key = name_key(name);
        let mut state = self.lock();
        let mut removed = Removed {
            ended: None,
            gone: None,
            verdict: None,
        };
        let Some(peer) = state.peers.get(&key) else {
            return removed;
        };
        if peer.conn != conn {
            return removed;
        }
        let (secret, shown, call) = (peer.secret, peer.name.clone(), peer.call);
        let look_alike = peer.look_alike.clone();
        let owned = peer.features.session;
        let now = Instant::now();
        state.forget_departed(now);
        // Its partner: the other party of its call, or, before it resumed
        // a chat after a server restart, the party waiting for it to.
        let waiting_for_it = || {
            state
                .calls
                .values()
                .find(|c| c.phase == Phase::AwaitingResume && c.callee == key)
                .map(|c| c.caller.clone())
        };
        let partner = match call {
            Some(call) => state.calls.get(&call).map(|entry| {
                if entry.caller == key {
                    entry.callee.clone()
                } else {
                    entry.caller.clone()
                }
            }),
            None => waiting_for_it(),
        }
        .filter(|other| {
            *other != key && state.peers.get(other).is_some_and(|p| p.features.session)
        });
        removed.ended = call.and_then(|call| {
            let end = End::Removed { by: key.clone() };
            end_call(&mut state, call, end, &self.limits)
        });
        if let (Some(ended), Some(_)) = (&mut removed.ended, &partner) {
            ended.notify_session = true;
        }
        if let Some(peer) = state.peers.remove(&key) {
            state.presence.record(&peer.name, PresenceState::Left);
        }
        // A lost connection's name is held for its owner, who has a secret
        // to take it back with.
        let hold = self.limits.hold;
        let lost = matches!(how, Leaving::Lost | Leaving::Reset);
        let held_until = (lost && owned && !hold.is_zero()).then(|| now + hold);
        if held_until.is_none() {
            state.unindex_look_alike(&look_alike, &key);
        }
        if partner.is_none() && held_until.is_none() {
            return removed;
        }
        let id = state.next_departure;
        state.next_departure += 1;
        let departed = Departed {
            id,
            name: shown,
            look_alike,
            secret,
            partner,
            held_until,
        };
        match how {
            Leaving::Quit => removed.gone = state.gone_partner(&departed),
            Leaving::Closed | Leaving::Lost | Leaving::Reset => {
                if how != Leaving::Lost {
                    removed.verdict = Some(Verdict {
                        key: key.clone(),
                        id,
                    });
                }
                let forget = now + LOST_MEMORY.max(hold);
                state.departed_order.push_back((forget, key.clone(), id));
                state.departed.insert(key, departed);
            }
        }
        removed
    }

    /// The verdict on a registration that closed cleanly, once
    /// [`CLOSE_VERDICT`] has passed: unless its program took it back with
    /// its secret (or a new program took the name, which told already),
    /// its partner is to be told it is gone.
    pub fn verdict(&self, verdict: &Verdict) -> Option<Gone<O>> {
        let mut state = self.lock();
        let departed = state.departed.get_mut(&verdict.key)?;
        if departed.id != verdict.id {
            return None;
        }
        // A name still held for its owner (a reset) stays held; its
        // partner is told once.
        let told = departed.clone();
        if departed
            .held_until
            .is_some_and(|until| until > Instant::now())
        {
            departed.partner = None;
        } else {
            state.departed.remove(&verdict.key);
        }
        state.gone_partner(&told)
    }

    /// The callee `name` notes that the caller's link of `call` is up: the
    /// call became a chat. False if `call` is not a live call of `name`'s.
    pub fn linked(&self, name: &str, call: CallId) -> bool {
        let key = name_key(name);
        let mut state = self.lock();
        match state.calls.get_mut(&call) {
            Some(entry) if entry.callee == key && entry.phase == Phase::Live => {
                entry.linked = true;
                state.chatted(&key, call);
                true
            }
            _ => false,
        }
    }

    /// The callee `name` is in a chat after all when `call` rings for it:
    /// the call ends as if it had been listed busy, with no recall wait.
    /// `None` if `call` is not ringing for `name`.
    /// Gives the caller's name too, for the callee's missed call.
    pub fn busy(&self, name: &str, call: CallId) -> Option<(Ended<O>, String)> {
        let key = name_key(name);
        let mut state = self.lock();
        let entry = state.ringing_for(call, &key)?;
        let caller = state.peers.get(&entry.caller)?;
        let (caller_name, caller_session) = (caller.name.clone(), caller.features.session);
        let mut ended = end_call(&mut state, call, End::Busy { by: key }, &self.limits)?;
        ended.notify_session = caller_session;
        Some((ended, caller_name))
    }

    /// Admits a relay connection, which writes through `outbox`: `token`
    /// must open live call `call`'s relay, which opened less than
    /// [`RELAY_WINDOW`] ago: a party's own relay value, each once, when
    /// both announced `proof`; else the call's shared token, for two
    /// connections. So no value can be replayed, and no value shown on the
    /// direct path opens the relay. The outbox is handed back in
    /// [`Ended::relays`] when the call ends.
    pub fn claim_relay(&self, call: CallId, token: &Token, outbox: O) -> Option<RelayTicket<O>> {
        let mut state = self.lock();
        let entry = state.calls.get_mut(&call)?;
        // A call to oneself needs no relay: one's own chat is always
        // reached directly.
        if entry.caller == entry.callee
            || entry.relay_halves >= 2
            || entry.phase != Phase::Live
            || entry.relay_since.elapsed() > RELAY_WINDOW
        {
            return None;
        }
        // Which party this half is, when each has its own value.
        let party = match &mut entry.own {
            Some(own) => {
                let i = (0..2).find(|&i| !own.joined[i] && own.relay[i].matches(token))?;
                own.joined[i] = true;
                Some(i)
            }
            None if entry.token.matches(token) => None,
            None => return None,
        };
        entry.relay_halves += 1;
        entry.relays.push(outbox);
        if entry.relay_halves == 2 {
            entry.rejoiner = None;
            return Some(RelayTicket::Second);
        }
        let (first, other) = match (party, &entry.rejoiner) {
            // The half's own value says whose it is; the other is told.
            (Some(i), _) => (i, 1 - i),
            // Whoever asked opens first; the other is told.
            (None, Some(asker)) if *asker == entry.callee => (1, 0),
            (None, _) => (0, 1),
        };
        let rejoin = entry.rejoiner.is_some().then(|| entry.keys(other));
        let parties = [&entry.caller, &entry.callee];
        let (caller, callee) = (parties[first].clone(), parties[other].clone());
        let caller = state.peers.get(&caller)?.name.clone();
        let callee = state.peers.get(&callee)?;
        Some(RelayTicket::First {
            caller,
            callee: callee.name.clone(),
            callee_outbox: callee.outbox.clone(),
            rejoin,
        })
    }

    /// `REJOIN`: `asker` brings back, through the relay, its chat with
    /// `name`, whose link broke. Only for the peer of `asker`'s own call,
    /// like [`Registry::locate`]. The call's relay opens again with `token`
    /// for [`RELAY_WINDOW`], for two new halves; the connections of the
    /// relay it had are handed back, to be closed. Returns the peer's name
    /// as registered and the call.
    pub fn rejoin(&self, asker: &str, name: &str, fresh: Fresh) -> Option<Rejoined<O>> {
        let asker_key = name_key(asker);
        let mut state = self.lock();
        let me = state.peers.get(&asker_key)?;
        let peer = state.peers.get(&name_key(name))?;
        let call = me.call.filter(|_| me.call == peer.call)?;
        let both_prove = me.features.proof && peer.features.proof;
        let peer_name = peer.name.clone();
        let entry = state.calls.get_mut(&call)?;
        if entry.phase != Phase::Live {
            return None;
        }
        entry.token = fresh.token;
        // New relay values; the values to show stay those of the last
        // `LOCATE`, which the peer may be showing right now.
        if both_prove {
            let mut own = entry.own.unwrap_or_else(|| OwnValues::new(&fresh));
            own.relay = fresh.relay;
            own.joined = [false; 2];
            entry.own = Some(own);
        }
        entry.relay_since = Instant::now();
        entry.relay_halves = 0;
        let me = usize::from(entry.callee == asker_key && entry.caller != asker_key);
        entry.rejoiner = Some(asker_key);
        Some(Rejoined {
            peer: peer_name,
            call,
            keys: entry.keys(me),
            relays: entry.take_relays(),
        })
    }

    /// Marks `name` busy again in a chat with `peer` that outlived a server
    /// restart (or a lost registration connection). The first of the two to
    /// resume opens a call; the second joins it. Returns the call id, which
    /// `HANGUP` then takes.
    pub fn resume(&self, name: &str, peer: &str, token: Token) -> Result<CallId, CallError> {
        let key = name_key(name);
        let peer_key = name_key(peer);
        let mut state = self.lock();
        let me = state.peers.get(&key).ok_or(CallError::NotRegistered)?;
        if me.call.is_some() {
            return Err(CallError::AlreadyInCall);
        }
        let waiting = state.peers.get(&peer_key).and_then(|p| p.call).filter(|c| {
            state.calls.get(c).is_some_and(|c| {
                c.phase == Phase::AwaitingResume && c.callee == key && c.caller == peer_key
            })
        });
        let call = match waiting {
            Some(call) => {
                if let Some(entry) = state.calls.get_mut(&call) {
                    entry.phase = Phase::Live;
                }
                call
            }
            None => {
                let call = state.next_call;
                state.next_call += 1;
                state.calls.insert(
                    call,
                    Call {
                        caller: key.clone(),
                        callee: peer_key.clone(),
                        token,
                        own: None,
                        started: Instant::now(),
                        relay_since: Instant::now(),
                        rejoiner: None,
                        relay_halves: 2,
                        relays: Vec::new(),
                        transfers: Vec::new(),
                        file_relays: Vec::new(),
                        rang: false,
                        callee_notes: false,
                        linked: false,
                        phase: if key != peer_key {
                            Phase::AwaitingResume
                        } else {
                            Phase::Live
                        },
                    },
                );
                call
            }
        };
        if let Some(me) = state.peers.get_mut(&key) {
            me.call = Some(call);
            let name = me.name.clone();
            state.presence.record(&name, PresenceState::Busy);
        }
        Ok(call)
    }
}

/// Why a call ends, and by whom (a [`name_key`]).
enum End {
    /// The callee declined the ring.
    Declined { by: String },
    /// The callee was in a chat after all (`BUSY`).
    Busy { by: String },
    /// Nobody answered the ring in time (`by`: the caller).
    RangOut { by: String },
    /// A party hung up.
    HungUp { by: String },
    /// A party's registration ended.
    Removed { by: String },
}

impl End {
    fn by(&self) -> &str {
        match self {
            End::Declined { by }
            | End::Busy { by }
            | End::RangOut { by }
            | End::HungUp { by }
            | End::Removed { by, .. } => by,
        }
    }
}

impl<O> State<O> {
    /// `call`, if it is ringing for the callee `key`.
    fn ringing_for(&self, call: CallId, key: &str) -> Option<&Call<O>> {
        self.calls
            .get(&call)
            .filter(|entry| entry.phase == Phase::Ringing && entry.callee == key)
    }

    /// The two parties of `call` (one of them `key`) have chatted: each
    /// one's rings reach the other from now on.
    fn chatted(&mut self, key: &str, call: CallId) {
        let Some(entry) = self.calls.get(&call) else {
            return;
        };
        let (a, b) = (entry.caller.clone(), entry.callee.clone());
        debug_assert!(key == a || key == b);
        for (me, other) in [(&a, &b), (&b, &a)] {
            if let Some(peer) = self.peers.get_mut(me) {
                peer.chatted.insert(other.clone());
            }
        }
    }

    /// The recall wait is for what a callee did, never for a chat that
    /// happened: it follows a declined ring, one that rang out, the
    /// callee hanging up on a caller that never connected, and a caller's
    /// [`CANCELS_BEFORE_WAIT`]th cancelled ring to one callee in a minute.
    fn recall_wait_due(&mut self, call: &Call<O>, end: &End, now: Instant) -> bool {
        if call.caller == call.callee
            || call.phase == Phase::AwaitingResume
            || call.linked
            || call.relay_halves >= 2
        {
            return false;
        }
        let by_callee = end.by() == call.callee;
        match (end, call.phase) {
            (End::Busy { .. }, _) => false,
            (End::Declined { .. } | End::RangOut { .. }, _) => true,
            (_, Phase::Ringing) if by_callee => matches!(end, End::HungUp { .. }),
            (End::HungUp { .. }, Phase::Ringing) => {
                let pair = (call.caller.clone(), call.callee.clone());
                self.cancels.record(&pair, now) >= CANCELS_BEFORE_WAIT
            }
            (_, Phase::Ringing) => false,
            // Answered: the callee wanted it.
            _ if call.rang => false,
            // An older callee says nothing when the link is up: a call
            // that lasted is taken to have become a chat.
            _ if !call.callee_notes => call.started.elapsed() < CONNECT_WINDOW,
            _ => by_callee,
        }
    }

    /// The partner of `departed` (registered under `key`), if it is still
    /// online and reads `EVENT GONE`, with the departed's name.
    fn gone_partner(&self, departed: &Departed) -> Option<Gone<O>>
    where
        O: Clone,
    {
        let partner = self.peers.get(departed.partner.as_ref()?)?;
        if !partner.features.session {
            return None;
        }
        Some(Gone {
            peer: departed.name.clone(),
            partner: partner.outbox.clone(),
        })
    }

    /// The name (as listed) that one with `look_alike` would look like, if
    /// it is online or held and is not `key`'s own; with how long it is
    /// held for, if it is.
    fn looked_like(
        &self,
        look_alike: &str,
        key: &str,
        now: Instant,
    ) -> Option<(String, Option<Duration>)> {
        let other = self
            .look_alikes
            .get(look_alike)
            .filter(|other| *other != key)?;
        if let Some(peer) = self.peers.get(other) {
            return Some((peer.name.clone(), None));
        }
        let departed = self.departed.get(other)?;
        let until = departed.held_until.filter(|until| *until > now)?;
        Some((departed.name.clone(), Some(until - now)))
    }

    /// Forgets that `key`'s name has `look_alike`, unless another name with
    /// that look has taken the entry since.
    fn unindex_look_alike(&mut self, look_alike: &str, key: &str) {
        if self.look_alikes.get(look_alike).is_some_and(|k| k == key) {
            self.look_alikes.remove(look_alike);
        }
    }

    /// Forgets a few of the calls, recall waits and cancelled rings whose
    /// time has passed, oldest first: a few each call, never a walk.
    fn forget_expired_calls(&mut self, now: Instant) {
        self.recent_calls.expire(now);
        self.recall_after.expire(now);
        self.cancels.expire(now);
    }

    /// Forgets departures older than [`LOST_MEMORY`], oldest first.
    fn forget_departed(&mut self, now: Instant) {
        while let Some((until, key, id)) = self.departed_order.front() {
            if *until > now {
                break;
            }
            if self.departed.get(key).is_some_and(|d| d.id == *id)
                && let Some(departed) = self.departed.remove(key)
            {
                let key = key.clone();
                self.unindex_look_alike(&departed.look_alike, &key);
            }
            self.departed_order.pop_front();
        }
    }
}

fn end_call<O: Clone>(
    state: &mut State<O>,
    call: CallId,
    end: End,
    limits: &CallLimits,
) -> Option<Ended<O>> {
    let mut entry = state.calls.remove(&call)?;
    let now = Instant::now();
    if !limits.recall_wait.is_zero() && state.recall_wait_due(&entry, &end, now) {
        state.recall_after.set(
            (entry.caller.clone(), entry.callee.clone()),
            now + limits.recall_wait,
        );
    }
    let by_key = end.by();
    let relays = entry.take_relays();
    let other = if entry.caller == by_key {
        entry.callee
    } else {
        entry.caller
    };
    // Only a peer that is in this very call is freed or told: a resumed
    // call may name a peer who has since moved on to another call.
    let mut notify = None;
    for key in [by_key, other.as_str()] {
        if let Some(peer) = state.peers.get_mut(key)
            && peer.call == Some(call)
        {
            peer.call = None;
            if key != by_key {
                notify = Some(peer.outbox.clone());
            }
            let (name, now) = (peer.name.clone(), peer.free_state());
            state.presence.record(&name, now);
        }
    }
    let by = state.peers.get(by_key).map(|p| p.name.clone())?;
    Some(Ended {
        call,
        by,
        notify,
        notify_session: false,
        duration: entry.started.elapsed(),
        relays,
    })
}

/// Presence changes not yet taken: each name once, with the state it
/// first changed from (to cancel a join and a leave in one batch) and its
/// latest state, in the order of first change. Keyed by the exact name, so
/// that `Ann` leaving and `ann` joining stay two entries, in that order.
#[derive(Default)]
struct PresenceChanges {
    entries: Vec<(Presence, PresenceState)>,
    index: HashMap<String, usize>,
}

impl PresenceChanges {
    fn record(&mut self, name: &str, state: PresenceState) {
        match self.index.get(name) {
            Some(&i) => self.entries[i].0.state = state,
            None => {
                self.index.insert(name.to_string(), self.entries.len());
                let presence = Presence {
                    name: name.to_string(),
                    state,
                };
                self.entries.push((presence, state));
            }
        }
    }

    /// The batch: a name that joined and left again within it is left out.
    fn take(&mut self) -> Vec<Presence> {
        self.index.clear();
        std::mem::take(&mut self.entries)
            .into_iter()
            .filter(|(latest, first)| {
                !(*first == PresenceState::Joined && latest.state == PresenceState::Left)
            })
            .map(|(latest, _)| latest)
            .collect()
    }
}

/// The addresses to dial for a peer, best first. The address the server
/// saw, with the advertised port, may always be dialed. The advertised
/// address itself (a private one, or loopback) only by a caller seen from
/// the same address: behind the same NAT, or on the same machine. Anyone
/// else dialing it would reach whoever holds that address on their own
/// network, or a port on their own machine.
pub fn candidates(caller_seen: IpAddr, advertised: SocketAddr, seen: IpAddr) -> Vec<SocketAddr> {
    let seen_addr = SocketAddr::new(seen, advertised.port());
    let mut out = if caller_seen == seen {
        vec![advertised, seen_addr]
    } else {
        vec![seen_addr]
    };
    out.dedup();
    out
}

/// Why an advertised address is refused, if it is: one no peer can dial
/// (multicast, broadcast, unspecified), or loopback from a client that is
/// not itself on loopback (it would send its callers to a port on their
/// own machines).
pub fn unfit_advertised(advertised: SocketAddr, seen: IpAddr) -> Option<&'static str> {
    let ip = advertised.ip();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if ip.is_multicast() {
        Some("a multicast address is no place to dial")
    } else if broadcast {
        Some("a broadcast address is no place to dial")
    } else if ip.is_unspecified() {
        Some("an unspecified address (0.0.0.0 or ::) is no place to dial")
    } else if advertised.port() == 0 {
        Some("port 0 is no place to dial")
    } else if ip.is_loopback() && !seen.is_loopback() {
        Some("a loopback address is reachable only from the same machine as the server")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::expiry::MINUTE;
    use super::*;
    use crate::protocol::NameError;

    const T: Token = Token([7; 16]);
    const F: Fresh = fresh(T);

    /// Fresh values, each of them different from every other of any seed
    /// but the same seed's.
    pub(super) fn fresh_values(seed: u8) -> Fresh {
        let value = |i: u8| Token([seed.wrapping_mul(8).wrapping_add(i); 16]);
        Fresh {
            token: value(0),
            show: [value(1), value(2)],
            relay: [value(3), value(4)],
        }
    }

    /// Fresh values whose shared token is `token`.
    const fn fresh(token: Token) -> Fresh {
        Fresh {
            token,
            show: [Token([0x51; 16]), Token([0x52; 16])],
            relay: [Token([0x61; 16]), Token([0x62; 16])],
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn with(names: &[&str]) -> Registry<&'static str> {
        let reg = Registry::new();
        for (i, name) in names.iter().enumerate() {
            let outbox: &'static str = Box::leak(format!("box-{name}").into_boxed_str());
            reg.register(
                i as ConnId,
                name,
                addr("10.0.0.1:5000"),
                ip("10.0.0.1"),
                outbox,
                ClientFeatures::default(),
            )
            .unwrap();
        }
        reg
    }

    #[test]
    fn a_name_key_made_on_the_stack_is_the_name_key() {
        for name in [
            "bob",
            "BoB",
            "Zoë",
            "ZOË",
            "ｎｎ",
            "a-Z_09!~",
            &"X".repeat(64),
            &"X".repeat(65),
        ] {
            assert_eq!(
                with_name_key(name, str::to_string),
                name_key(name),
                "{name}"
            );
        }
    }

    #[test]
    fn names_are_unique_without_regard_to_case() {
        let reg = with(&["Alice"]);
        let none = ClientFeatures::default();
        let err = reg.register(9, "aLiCe", addr("1.1.1.1:1"), ip("1.1.1.1"), "x", none);
        assert_eq!(err, Err(RegisterError::Taken("Alice".into())));
        assert_eq!(
            reg.register(9, "a b", addr("1.1.1.1:1"), ip("1.1.1.1"), "x", none),
            Err(RegisterError::BadName(NameError::Unprintable(' ')))
        );
        assert_eq!(reg.len(), 1);
    }

    #[test]
    fn a_name_that_looks_like_one_online_is_refused_naming_it() {
        let reg = with(&["alice", "Paypal"]);
        let none = ClientFeatures::default();
        let register = |conn, name: &str| {
            reg.register(conn, name, addr("1.1.1.1:1"), ip("1.1.1.1"), "x", none)
        };
        let looks_like = |name: &str, like: &str| {
            Err(RegisterError::LooksLike {
                name: name.into(),
                like: like.into(),
                held: None,
            })
        };
        for look_alike in ["\u{251}lice", "a\u{1c0}ice", "al\u{131}\u{307}ce", "aIice"] {
            assert_eq!(register(9, look_alike), looks_like(look_alike, "alice"));
        }
        // Listed as typed, refused as seen in any case, and the same name
        // in another case is refused as taken, as before.
        assert_eq!(
            register(9, "PAYP\u{251}L"),
            looks_like("PAYP\u{251}L", "Paypal")
        );
        assert_eq!(
            register(9, "PAYPAL"),
            Err(RegisterError::Taken("Paypal".into()))
        );
        assert_eq!(reg.len(), 2);
        // Gone, its look is free.
        reg.remove(0, "alice", Leaving::Quit);
        register(9, "\u{251}lice").unwrap();
        assert_eq!(register(10, "alice"), looks_like("alice", "\u{251}lice"));
        reg.check_invariants().unwrap();
    }

    #[test]
    fn a_name_held_for_its_owner_holds_its_look_too_until_the_hold_ends() {
        let hold = Duration::from_millis(20);
        let reg = Registry::with_limits(CallLimits {
            hold,
            ..CallLimits::default()
        });
        reg.register_owned("bob", entry(1, "box-bob"), None, S1)
            .unwrap();
        reg.remove(1, "bob", Leaving::Lost);
        match reg.register_owned("b0b", entry(2, "box-mallory"), None, S2) {
            Err(RegisterError::LooksLike { name, like, held }) => {
                assert_eq!((name.as_str(), like.as_str()), ("b0b", "bob"));
                assert!(held.is_some_and(|wait| wait <= hold), "{held:?}");
            }
            other => panic!("{other:?}"),
        }
        // Its owner's secret takes back its own name, not a look-alike.
        assert!(matches!(
            reg.register_owned("b0b", entry(3, "box-bob"), Some(S1), S2),
            Err(RegisterError::LooksLike { .. })
        ));
        std::thread::sleep(hold + Duration::from_millis(5));
        reg.register_owned("b0b", entry(2, "box-mallory"), None, S2)
            .unwrap();
        reg.check_invariants().unwrap();
        // The owner, back too late, finds its look taken.
        assert!(matches!(
            reg.register_owned("bob", entry(3, "box-bob"), Some(S1), S2),
            Err(RegisterError::LooksLike { held: None, .. })
        ));
    }

    #[test]
    fn the_look_alike_index_holds_only_names_online_or_held() {
        let reg = Registry::new();
        // Fewer than the registrations one address may make in a minute.
        for i in 0..100u64 {
            let name = format!("user{i}");
            reg.register_owned(&name, entry(i, "box"), None, S1)
                .unwrap();
            let how = [Leaving::Quit, Leaving::Closed, Leaving::Lost][i as usize % 3];
            reg.remove(i, &name, how);
            reg.check_invariants().unwrap();
        }
        // The lost ones are held; nothing else is kept.
        assert_eq!(reg.lock().look_alikes.len(), 100 / 3);
    }

    #[test]
    fn list_is_sorted_and_shows_busy() {
        let reg = with(&["carol", "Bob", "alice"]);
        reg.claim_call("alice", "carol", F).unwrap();
        let list = reg.list();
        let names: Vec<_> = list.iter().map(|e| (e.name.as_str(), e.busy)).collect();
        assert_eq!(names, [("alice", true), ("Bob", false), ("carol", true)]);
        assert_eq!(
            reg.lookup("BOB"),
            Some(UserEntry {
                name: "Bob".into(),
                busy: false,
                away: false
            })
        );
        assert_eq!(reg.lookup("dave"), None);
    }

    #[test]
    fn a_claim_takes_both_and_refuses_third_parties() {
        let reg = with(&["a", "b", "c"]);
        let claim = reg.claim_call("a", "B", F).unwrap();
        assert_eq!(claim.callee, "b");
        assert_eq!(claim.callee_outbox, "box-b");
        assert_eq!(
            reg.claim_call("c", "b", F),
            Err(CallError::Busy("b".into()))
        );
        assert_eq!(
            reg.claim_call("c", "a", F),
            Err(CallError::Busy("a".into()))
        );
        assert_eq!(reg.claim_call("b", "c", F), Err(CallError::AlreadyInCall));
        assert_eq!(
            reg.claim_call("c", "zed", F),
            Err(CallError::UnknownUser("zed".into()))
        );
    }

    #[test]
    fn only_a_party_can_hang_up_and_only_the_current_call() {
        let reg = with(&["a", "b", "c"]);
        let call = reg.claim_call("a", "b", F).unwrap().call;
        assert_eq!(reg.hangup("c", call), None);
        assert_eq!(reg.hangup("a", call + 1), None);
        let ended = reg.hangup("b", call).unwrap();
        assert_eq!(ended.by, "b");
        assert_eq!(ended.notify, Some("box-a"));
        assert!(reg.list().iter().all(|e| !e.busy));
        // A second hangup of the same call changes nothing.
        let next = reg.claim_call("c", "a", F).unwrap().call;
        assert_eq!(reg.hangup("a", call), None);
        assert!(reg.list().iter().find(|e| e.name == "a").unwrap().busy);
        assert!(reg.hangup("a", next).is_some());
    }

    #[test]
    fn calling_yourself_claims_once_and_notifies_nobody() {
        let reg = with(&["a"]);
        let claim = reg.claim_call("a", "A", F).unwrap();
        assert!(reg.list()[0].busy);
        let ended = reg.hangup("a", claim.call).unwrap();
        assert_eq!(ended.notify, None);
        assert!(!reg.list()[0].busy);
    }

    #[test]
    fn removing_a_peer_frees_its_partner_and_needs_its_connection() {
        let reg = with(&["a", "b"]);
        let call = reg.claim_call("a", "b", F).unwrap().call;
        assert_eq!(
            reg.remove(1, "a", Leaving::Closed).ended,
            None,
            "wrong connection"
        );
        assert_eq!(reg.len(), 2);
        let ended = reg.remove(0, "a", Leaving::Closed).ended.unwrap();
        assert_eq!((ended.call, ended.by.as_str()), (call, "a"));
        assert_eq!(ended.notify, Some("box-b"));
        assert_eq!(
            reg.list(),
            vec![UserEntry {
                name: "b".into(),
                busy: false,
                away: false
            }]
        );
        assert!(reg.remove(0, "a", Leaving::Closed).ended.is_none());
    }

    #[test]
    fn relay_needs_the_right_token_once() {
        let reg = with(&["a", "b"]);
        let call = reg.claim_call("a", "b", F).unwrap().call;
        assert!(reg.claim_relay(call, &Token([8; 16]), "relay").is_none());
        assert!(reg.claim_relay(call + 1, &T, "relay").is_none());
        let Some(RelayTicket::First { caller, callee, .. }) = reg.claim_relay(call, &T, "relay")
        else {
            panic!("first half refused");
        };
        assert_eq!((caller.as_str(), callee.as_str()), ("a", "b"));
        assert_eq!(
            reg.claim_relay(call, &T, "relay"),
            Some(RelayTicket::Second)
        );
        assert!(reg.claim_relay(call, &T, "relay").is_none(), "replay");
        reg.hangup("a", call);
        assert!(reg.claim_relay(call, &T, "relay").is_none(), "ended");
    }

    #[test]
    fn rejoin_reopens_the_relay_for_the_parties_of_a_call_only_asker_first() {
        const NEW: Token = Token([9; 16]);
        let reg = with(&["a", "b", "c"]);
        let call = reg.claim_call("a", "b", F).unwrap().call;
        assert!(reg.claim_relay(call, &T, "old-a").is_some());
        assert!(reg.claim_relay(call, &T, "old-b").is_some());
        assert!(reg.rejoin("c", "b", fresh(NEW)).is_none(), "not c's call");
        assert!(reg.rejoin("a", "c", fresh(NEW)).is_none(), "c is not in it");
        // The callee asks: its half first, the caller is told.
        let rejoined = reg.rejoin("B", "a", fresh(NEW)).unwrap();
        assert_eq!((rejoined.peer.as_str(), rejoined.call), ("a", call));
        assert_eq!(rejoined.keys, Keys::Shared(NEW), "neither announced proof");
        let old = rejoined.relays;
        assert_eq!(old, ["old-a", "old-b"], "the old relay is handed back");
        assert!(
            reg.claim_relay(call, &T, "x").is_none(),
            "the old token is spent"
        );
        let Some(RelayTicket::First {
            caller,
            callee,
            callee_outbox,
            rejoin,
        }) = reg.claim_relay(call, &NEW, "new-b")
        else {
            panic!("first half refused");
        };
        assert_eq!((caller.as_str(), callee.as_str()), ("b", "a"));
        assert_eq!((callee_outbox, rejoin), ("box-a", Some(Keys::Shared(NEW))));
        assert_eq!(
            reg.claim_relay(call, &NEW, "new-a"),
            Some(RelayTicket::Second)
        );
        assert!(
            reg.claim_relay(call, &NEW, "x").is_none(),
            "two halves only"
        );
        assert_eq!(reg.check_invariants(), Ok(()));
    }

    #[test]
    fn a_chat_resumed_by_both_sides_is_one_call() {
        let reg = with(&["a", "b", "c"]);
        let call = reg.resume("a", "B", T).unwrap();
        assert!(reg.list()[0].busy);
        assert_eq!(reg.resume("b", "a", T), Ok(call));
        assert_eq!(reg.resume("b", "a", T), Err(CallError::AlreadyInCall));
        assert_eq!(
            reg.claim_call("c", "a", F),
            Err(CallError::Busy("a".into()))
        );
        assert!(
            reg.claim_relay(call, &T, "relay").is_none(),
            "no relay for a resumed call"
        );
        let ended = reg.hangup("b", call).unwrap();
        assert_eq!(ended.notify, Some("box-a"));
        assert!(reg.list().iter().all(|e| !e.busy));
    }

    #[test]
    fn a_resume_whose_partner_never_returns_ends_with_its_owner() {
        let reg = with(&["a", "b"]);
        let call = reg.resume("a", "gone", T).unwrap();
        // b is not the partner named, so b resuming with a opens its own.
        assert_ne!(reg.resume("b", "a", T), Ok(call));
        let ended = reg.hangup("a", call).unwrap();
        assert_eq!(ended.notify, None);
    }

    #[test]
    fn resuming_a_chat_with_someone_cannot_touch_their_other_call() {
        let reg = with(&["mallory", "bob", "carol"]);
        let real = reg.claim_call("carol", "bob", F).unwrap().call;
        let fake = reg.resume("mallory", "bob", T).unwrap();
        let ended = reg.hangup("mallory", fake).unwrap();
        assert_eq!(ended.notify, None, "bob is not told of a call he is not in");
        let busy: Vec<_> = reg.list().into_iter().map(|e| (e.name, e.busy)).collect();
        assert_eq!(
            busy,
            [
                ("bob".into(), true),
                ("carol".into(), true),
                ("mallory".into(), false)
            ]
        );
        assert!(reg.hangup("bob", real).is_some());
    }

    #[test]
    fn only_addresses_a_peer_can_dial_are_advertised() {
        let from = ip("203.0.113.9");
        for bad in [
            "224.0.0.1:5",
            "255.255.255.255:5",
            "0.0.0.0:5",
            "[::]:5",
            "[ff02::1]:5",
        ] {
            assert!(unfit_advertised(addr(bad), from).is_some(), "{bad}");
        }
        assert!(unfit_advertised(addr("127.0.0.1:5"), from).is_some());
        assert!(unfit_advertised(addr("203.0.113.9:0"), from).is_some());
        assert_eq!(unfit_advertised(addr("127.0.0.1:5"), ip("127.0.0.1")), None);
        assert_eq!(unfit_advertised(addr("[::1]:5"), ip("::1")), None);
        assert_eq!(unfit_advertised(addr("192.168.1.5:4000"), from), None);
    }

    #[test]
    fn candidates_prefer_the_lan_address_behind_one_nat() {
        let adv = addr("192.168.1.5:4000");
        assert_eq!(
            candidates(ip("203.0.113.9"), adv, ip("203.0.113.9")),
            vec![adv, addr("203.0.113.9:4000")]
        );
        // From elsewhere, only the address the server saw.
        assert_eq!(
            candidates(ip("198.51.100.1"), adv, ip("203.0.113.9")),
            vec![addr("203.0.113.9:4000")]
        );
        assert_eq!(
            candidates(
                ip("198.51.100.1"),
                addr("127.0.0.1:7922"),
                ip("203.0.113.9")
            ),
            vec![addr("203.0.113.9:7922")]
        );
        let local = addr("127.0.0.1:4000");
        assert_eq!(
            candidates(ip("127.0.0.1"), local, ip("127.0.0.1")),
            vec![local]
        );
    }

    fn ringing(names: &[&str]) -> Registry<&'static str> {
        let reg = with(names);
        let rings = ClientFeatures {
            ring: true,
            missed: true,
            session: false,
            proof: false,
            ..ClientFeatures::default()
        };
        for (i, name) in names.iter().enumerate() {
            reg.set_features(i as ConnId, name, rings);
        }
        reg
    }

    fn busy(reg: &Registry<&'static str>) -> Vec<(String, bool)> {
        reg.list().into_iter().map(|e| (e.name, e.busy)).collect()
    }

    #[test]
    fn a_call_rings_only_when_both_announced_ring() {
        let reg = ringing(&["a", "b"]);
        let claim = reg.claim_call("a", "b", F).unwrap();
        assert_eq!(claim.setup, Setup::Ring);
        assert_eq!(busy(&reg), [("a".into(), true), ("b".into(), true)]);

        let reg = ringing(&["a", "b", "c"]);
        reg.set_features(2, "c", ClientFeatures::default());
        assert!(matches!(
            reg.claim_call("a", "c", F).unwrap().setup,
            Setup::Connect { .. }
        ));
        assert!(matches!(
            reg.claim_call("b", "B", F).unwrap().setup,
            Setup::Connect { .. }
        ));
        // Features are changed only through the peer's own connection.
        reg.set_features(
            0,
            "c",
            ClientFeatures {
                ring: true,
                missed: true,
                session: false,
                proof: false,
                ..ClientFeatures::default()
            },
        );
        assert_eq!(reg.missed_call_outbox("c"), None);
        assert_eq!(reg.missed_call_outbox("a"), Some("box-a"));
    }

    #[test]
    fn only_the_callee_answers_a_ringing_call_once_and_then_it_is_live() {
        let reg = ringing(&["a", "b", "c"]);
        let call = reg.claim_call("a", "b", F).unwrap().call;
        assert!(
            reg.claim_relay(call, &T, "relay").is_none(),
            "no relay while ringing"
        );
        assert_eq!(reg.answer("a", call), None, "the caller cannot answer");
        assert_eq!(reg.answer("c", call), None);
        assert_eq!(reg.decline("a", call), None);
        let answered = reg.answer("B", call).unwrap();
        assert_eq!(
            (answered.caller.as_str(), answered.callee.as_str()),
            ("a", "b")
        );
        assert_eq!(answered.keys, [Keys::Shared(T); 2]);
        assert_eq!(answered.addrs, vec![addr("10.0.0.1:5000")]);
        assert_eq!(answered.caller_outbox, "box-a");
        assert_eq!(reg.answer("b", call), None, "answered already");
        assert_eq!(reg.decline("b", call), None);
        assert_eq!(reg.ring_out(call), None, "a live call does not ring out");
        assert!(matches!(
            reg.claim_relay(call, &T, "relay"),
            Some(RelayTicket::First { .. })
        ));
        let ended = reg.hangup("a", call).unwrap();
        assert_eq!(ended.notify, Some("box-b"));
    }

    #[test]
    fn declining_or_ringing_out_frees_both() {
        let reg = ringing(&["a", "b"]);
        let call = reg.claim_call("a", "b", F).unwrap().call;
        let ended = reg.decline("b", call).unwrap();
        assert_eq!((ended.by.as_str(), ended.notify), ("b", Some("box-a")));
        assert_eq!(busy(&reg), [("a".into(), false), ("b".into(), false)]);

        let call = reg.claim_call("b", "a", F).unwrap().call;
        let rang = reg.ring_out(call).unwrap();
        assert_eq!((rang.caller.as_str(), rang.caller_outbox), ("b", "box-b"));
        assert_eq!((rang.callee.as_str(), rang.callee_outbox), ("a", "box-a"));
        assert_eq!(reg.ring_out(call), None, "once");
        assert_eq!(reg.answer("a", call), None);
        assert_eq!(busy(&reg), [("a".into(), false), ("b".into(), false)]);
    }

    #[test]
    fn an_away_callee_is_claimed_by_nobody_and_leaves_no_wait() {
        let reg = ringing(&["a", "b"]);
        reg.take_presence();
        // Only its own connection says it is away.
        assert!(!reg.set_away(0, "b", Some("x".into())));
        assert!(reg.set_away(1, "b", Some("at lunch".into())));
        assert_eq!(
            reg.claim_call("a", "b", F),
            Err(CallError::Away {
                callee: "b".into(),
                message: "at lunch".into()
            })
        );
        assert_eq!(reg.calls_open(), 0);
        let b = reg.lookup("b").unwrap();
        assert!(b.away && !b.busy, "{b:?}");
        // It may call out; in a call it is busy, and away again after.
        let call = reg.claim_call("b", "a", F).unwrap().call;
        let b = reg.lookup("b").unwrap();
        assert!(b.busy && !b.away, "{b:?}");
        reg.hangup("b", call).unwrap();
        assert!(reg.lookup("b").unwrap().away);
        assert!(reg.set_away(1, "b", None));
        // Back: the refused caller rings at once, with no recall wait.
        assert_eq!(reg.claim_call("a", "b", F).unwrap().setup, Setup::Ring);
        let states: Vec<_> = reg
            .take_presence()
            .into_iter()
            .map(|p| (p.name, p.state))
            .collect();
        assert_eq!(
            states,
            [
                ("b".to_string(), PresenceState::Busy),
                ("a".to_string(), PresenceState::Busy)
            ]
        );
    }

    #[test]
    fn a_claim_says_whether_the_callee_asked_for_the_ring_time() {
        let reg = ringing(&["a", "b"]);
        let timed = ClientFeatures {
            ring: true,
            ring_time: true,
            ..ClientFeatures::default()
        };
        reg.set_features(1, "b", timed);
        let claim = reg.claim_call("a", "b", F).unwrap();
        assert!(claim.callee_features.ring_time);
    }

    #[test]
    fn presence_changes_are_coalesced_per_name_in_order() {
        let reg = with(&["a", "b"]);
        let p = |name: &str, state| Presence {
            name: name.into(),
            state,
        };
        assert_eq!(
            reg.take_presence(),
            [p("a", PresenceState::Joined), p("b", PresenceState::Joined)]
        );
        let call = reg.claim_call("a", "b", F).unwrap().call;
        reg.hangup("b", call);
        let none = ClientFeatures::default();
        let seen = ip("10.0.0.9");
        reg.register(7, "c", addr("10.0.0.9:1"), seen, "box-c", none)
            .unwrap();
        reg.remove(7, "c", Leaving::Closed);
        reg.claim_call("b", "a", F).unwrap();
        reg.remove(0, "a", Leaving::Closed);
        assert_eq!(
            reg.take_presence(),
            [p("a", PresenceState::Left), p("b", PresenceState::Free)],
            "c joined and left in one batch: never seen"
        );
        assert_eq!(reg.take_presence(), []);
        reg.remove(1, "b", Leaving::Closed);
        reg.register(8, "B", addr("10.0.0.9:1"), seen, "box-B", none)
            .unwrap();
        assert_eq!(
            reg.take_presence(),
            [p("b", PresenceState::Left), p("B", PresenceState::Joined)]
        );
    }

    #[test]
    fn a_poisoned_lock_is_recovered() {
        let reg = std::sync::Arc::new(with(&["a"]));
        let r = reg.clone();
        let _ = std::thread::spawn(move || {
            let _guard = r.lock();
            panic!("poison it");
        })
        .join();
        assert_eq!(reg.len(), 1);
    }
    const SESSION: ClientFeatures = ClientFeatures {
        ring: true,
        missed: true,
        session: true,
        proof: false,
        ring_time: false,
        away: false,
        transfer: false,
    };

    /// A callee that notes its links but does not ring: calls to it are
    /// set up at once.
    const NOTES: ClientFeatures = ClientFeatures {
        ring: false,
        missed: true,
        session: true,
        proof: false,
        ring_time: false,
        away: false,
        transfer: false,
    };

    #[test]
    fn a_callee_that_rings_is_rung_whatever_the_caller_announced() {
        let reg = sessions(&["a", "b"]);
        reg.set_features(0, "a", ClientFeatures::default());
        assert_eq!(
            reg.claim_call("a", "b", F),
            Err(CallError::RingsOnly("b".into()))
        );
        assert_eq!(reg.calls_open(), 0);
        assert_eq!(busy(&reg), [("a".into(), false), ("b".into(), false)]);
        // Calling oneself needs no ring.
        assert!(matches!(
            reg.claim_call("a", "A", F).unwrap().setup,
            Setup::Connect { .. }
        ));
    }

    /// Peers that announced `ring` and `session`: today's chats.
    fn sessions(names: &[&str]) -> Registry<&'static str> {
        let reg = with(names);
        for (i, name) in names.iter().enumerate() {
            reg.set_features(i as ConnId, name, SESSION);
        }
        reg
    }

    fn waits(reg: &Registry<&'static str>, caller: &str, callee: &str) -> bool {
        match reg.claim_call(caller, callee, F) {
            Err(CallError::TooSoon { .. }) => true,
            Ok(claim) => {
                reg.hangup(caller, claim.call);
                false
            }
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn the_recall_wait_follows_only_what_the_callee_did() {
        // Declined, rung out, or hung up on by the callee: the caller waits.
        let reg = sessions(&["a", "b"]);
        let call = reg.claim_call("a", "b", F).unwrap().call;
        reg.decline("b", call).unwrap();
        assert!(waits(&reg, "a", "b"), "after a decline");
        let reg = sessions(&["a", "b"]);
        let call = reg.claim_call("a", "b", F).unwrap().call;
        reg.ring_out(call).unwrap();
        assert!(waits(&reg, "a", "b"), "after a ring-out");
        let reg = sessions(&["a", "b"]);
        let call = reg.claim_call("a", "b", F).unwrap().call;
        reg.hangup("b", call).unwrap();
        assert!(
            waits(&reg, "a", "b"),
            "after the callee hung up on the ring"
        );

        // A chat that happened, however short: no wait, whoever ends it.
        for ender in ["a", "b"] {
            let reg = sessions(&["a", "b"]);
            let call = reg.claim_call("a", "b", F).unwrap().call;
            reg.answer("b", call).unwrap();
            reg.hangup(ender, call).unwrap();
            assert!(!waits(&reg, "a", "b"), "answered, ended by {ender}");
        }
        // Set up at once (auto-answer), linked: no wait.
        let reg = with(&["a", "b"]);
        reg.set_features(1, "b", NOTES);
        let call = reg.claim_call("a", "b", F).unwrap().call;
        assert!(reg.linked("b", call));
        reg.hangup("b", call).unwrap();
        assert!(!waits(&reg, "a", "b"), "a short direct chat");
        // Set up at once, never linked, the callee hangs up: a wait.
        let reg = with(&["a", "b"]);
        reg.set_features(1, "b", NOTES);
        let call = reg.claim_call("a", "b", F).unwrap().call;
        reg.hangup("b", call).unwrap();
        assert!(
            waits(&reg, "a", "b"),
            "the callee hung up on a caller that never came"
        );
        // ...the caller gives up: no wait.
        let reg = with(&["a", "b"]);
        reg.set_features(1, "b", NOTES);
        let call = reg.claim_call("a", "b", F).unwrap().call;
        reg.hangup("a", call).unwrap();
        assert!(!waits(&reg, "a", "b"), "the caller's own cancel");
        // Only the callee notes the link.
        let reg = sessions(&["a", "b"]);
        let call = reg.claim_call("a", "b", F).unwrap().call;
        assert!(!reg.linked("a", call), "the caller");
        assert!(!reg.linked("b", call), "still ringing");

        // Busy: no wait.
        let reg = sessions(&["a", "b"]);
        let call = reg.claim_call("a", "b", F).unwrap().call;
        let (ended, caller) = reg.busy("b", call).unwrap();
        assert_eq!(
            (caller.as_str(), ended.notify, ended.notify_session),
            ("a", Some("box-a"), true)
        );
        assert!(!waits(&reg, "a", "b"), "busy");
        assert!(reg.busy("b", call).is_none(), "once");
    }

    #[test]
    fn a_callee_is_rung_by_at_most_six_strangers_a_minute_but_always_by_friends() {
        let names = ["s0", "s1", "s2", "s3", "s4", "s5", "friend", "b"];
        let reg = sessions(&names);
        // friend chatted with b before the flood (its first ring was one
        // of a stranger's: one of the six).
        let call = reg.claim_call("friend", "b", F).unwrap().call;
        reg.answer("b", call).unwrap();
        reg.hangup("friend", call).unwrap();
        for stranger in &names[..5] {
            let call = reg.claim_call(stranger, "b", F).unwrap().call;
            reg.hangup(stranger, call).unwrap();
        }
        match reg.claim_call("s5", "b", F) {
            Err(CallError::NotTakingCalls { callee, wait }) => {
                assert_eq!(callee, "b");
                assert!(wait <= MINUTE, "{wait:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            reg.claim_call("friend", "b", F).unwrap().setup,
            Setup::Ring
        ));
    }

    #[test]
    fn a_callers_third_cancelled_ring_in_a_minute_starts_the_wait() {
        let reg = sessions(&["a", "b"]);
        // Each claim but the last succeeding is the check: no wait before.
        for _ in 0..CANCELS_BEFORE_WAIT {
            let call = reg.claim_call("a", "b", F).unwrap().call;
            reg.hangup("a", call).unwrap();
        }
        assert!(matches!(
            reg.claim_call("a", "b", F),
            Err(CallError::TooSoon { .. })
        ));
    }

    /// (callers with calls in the last minute, recall waits, callers with
    /// cancelled rings) as the table holds them.
    fn call_tables(reg: &Registry<&'static str>) -> [usize; 3] {
        let state = reg.lock();
        [
            state.recent_calls.len(),
            state.recall_after.len(),
            state.cancels.len(),
        ]
    }

    #[test]
    fn the_call_tables_forget_by_time_and_a_caller_over_its_limit_costs_nothing() {
        let reg = Registry::with_limits(CallLimits {
            calls_per_minute: 1,
            ..CallLimits::default()
        });
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            let entry = entry(i as ConnId, "box");
            reg.register_owned(name, entry, None, S1).unwrap();
        }
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let call = reg.claim_call_at("a", "b", F, at(0)).unwrap().call;
        reg.decline("b", call).unwrap();
        let call = reg.claim_call_at("c", "b", F, at(30)).unwrap().call;
        reg.hangup("c", call).unwrap();
        assert_eq!(call_tables(&reg), [2, 1, 1]);
        // c is over its limit: refused before anything else, even a name
        // nobody has, and nothing is looked at, not even what expired.
        assert!(matches!(
            reg.claim_call_at("c", "nobody", F, at(70)),
            Err(CallError::TooManyCalls { limit: 1, .. })
        ));
        assert_eq!(call_tables(&reg), [2, 1, 1]);
        // a's wait is over: its call rings, and what passed is forgotten.
        let call = reg.claim_call_at("a", "b", F, at(70)).unwrap().call;
        assert_eq!(call_tables(&reg), [2, 0, 0], "a again, and c of 30 s");
        // (Calls end at the clock's time: a's cancel is recorded now.)
        reg.hangup("a", call).unwrap();
        assert_eq!(call_tables(&reg), [2, 0, 1]);
        reg.claim_call_at("b", "a", F, at(100)).unwrap();
        assert_eq!(call_tables(&reg), [2, 0, 0], "a and b; the rest is past");
    }

    #[test]
    fn an_address_makes_at_most_its_registrations_a_minute() {
        let reg = Registry::with_limits(CallLimits {
            registrations_per_ip: 3,
            ..CallLimits::default()
        });
        let from = |conn: ConnId, ip: &str| Entry {
            seen: super::tests::ip(ip),
            ..entry(conn, "box")
        };
        reg.register_owned("a1", from(1, "10.0.0.1"), None, S1)
            .unwrap();
        // A name refused is no registration.
        for _ in 0..5 {
            let taken = reg.register_owned("A1", from(2, "10.0.0.1"), None, S1);
            assert_eq!(taken.err(), Some(RegisterError::Taken("a1".into())));
        }
        for name in ["a2", "a3"] {
            reg.register_owned(name, from(3, "10.0.0.1"), None, S1)
                .unwrap();
        }
        match reg.register_owned("a4", from(4, "10.0.0.1"), None, S1) {
            Err(RegisterError::TooMany { limit: 3, wait }) => {
                assert!(wait <= MINUTE && wait > MINUTE - Duration::from_secs(5));
            }
            other => panic!("{:?}", other.map(|r| r.secret)),
        }
        reg.register_owned("b1", from(5, "10.0.0.2"), None, S1)
            .unwrap();
        assert_eq!(reg.len(), 4);
    }

    fn entry(conn: ConnId, outbox: &'static str) -> Entry<&'static str> {
        Entry {
            conn,
            advertised: addr("10.0.0.1:5000"),
            seen: ip("10.0.0.1"),
            outbox,
            features: SESSION,
        }
    }

    const S1: Token = Token([1; 16]);
    const S2: Token = Token([2; 16]);

    #[test]
    fn a_registration_is_taken_over_only_with_its_secret() {
        let reg = Registry::new();
        let first = reg
            .register_owned("bob", entry(1, "old"), None, S1)
            .unwrap();
        assert_eq!((first.secret, first.replaced), (S1, None));
        let err = reg.register_owned("BOB", entry(2, "new"), Some(S2), S2);
        assert_eq!(err, Err(RegisterError::Taken("bob".into())));
        let err = reg.register_owned("bob", entry(2, "new"), None, S2);
        assert_eq!(err, Err(RegisterError::Taken("bob".into())));
        reg.register_owned("al", entry(3, "box-al"), None, S2)
            .unwrap();
        let call = reg.claim_call("al", "bob", F).unwrap().call;
        let again = reg
            .register_owned("bob", entry(2, "new"), Some(S1), S2)
            .unwrap();
        assert_eq!((again.secret, again.replaced), (S1, Some("old")));
        // The call goes on, on the new connection; the old one removes
        // nothing when it ends.
        assert_eq!(
            reg.remove(1, "bob", Leaving::Closed),
            Removed {
                ended: None,
                gone: None,
                verdict: None
            }
        );
        assert_eq!(reg.lookup("bob").map(|u| u.busy), Some(true));
        assert!(reg.hangup("bob", call).is_some());
    }

    #[test]
    fn a_peer_gone_before_it_resumed_is_told_to_the_one_waiting_for_it() {
        // After a server restart al resumed its chat with bob; bob came
        // back but its program ended before it resumed too.
        let reg = Registry::new();
        reg.register_owned("al", entry(1, "box-al"), None, S1)
            .unwrap();
        reg.register_owned("bob", entry(2, "box-bob"), None, S2)
            .unwrap();
        reg.resume("al", "bob", T).unwrap();
        let removed = reg.remove(2, "bob", Leaving::Closed);
        assert_eq!(removed.ended, None, "bob was in no call");
        let gone = reg.verdict(&removed.verdict.expect("a verdict")).unwrap();
        assert_eq!((gone.peer.as_str(), gone.partner), ("bob", "box-al"));
    }

    #[test]
    fn a_reset_registration_is_held_for_its_owner_and_judged_like_a_close() {
        let reg = Registry::new();
        reg.register_owned("al", entry(1, "box-al"), None, S1)
            .unwrap();
        reg.register_owned("bob", entry(2, "box-bob"), None, S2)
            .unwrap();
        reg.set_features(1, "al", SESSION);
        reg.set_features(2, "bob", SESSION);
        let call = reg.claim_call("al", "bob", F).unwrap().call;
        reg.answer("bob", call).unwrap();
        // bob's program was killed with bytes unread: its socket reset.
        let removed = reg.remove(2, "bob", Leaving::Reset);
        assert!(removed.ended.is_some());
        assert!(matches!(
            reg.register_owned("bob", entry(3, "box-mallory"), None, S1),
            Err(RegisterError::Held { .. })
        ));
        // Not taken back in time: al is told bob's program is gone.
        let gone = reg.verdict(&removed.verdict.expect("a verdict")).unwrap();
        assert_eq!((gone.peer.as_str(), gone.partner), ("bob", "box-al"));
        // Taken back in time (a box on the way reset it): nobody is told.
        reg.register_owned("bob", entry(4, "box-bob"), Some(S2), S1)
            .unwrap();
        let call = reg.claim_call("al", "bob", F).unwrap().call;
        reg.answer("bob", call).unwrap();
        let removed = reg.remove(4, "bob", Leaving::Reset);
        reg.register_owned("bob", entry(5, "box-bob"), Some(S2), S1)
            .unwrap();
        assert_eq!(reg.verdict(&removed.verdict.expect("a verdict")), None);
    }

    #[test]
    fn a_lost_registrations_name_is_held_for_its_owner_only() {
        let reg = Registry::new();
        reg.register_owned("bob", entry(1, "box-bob"), None, S1)
            .unwrap();
        let removed = reg.remove(1, "bob", Leaving::Lost);
        assert_eq!(removed.verdict, None);
        assert_eq!(reg.lookup("bob"), None, "not listed while held");
        match reg.register_owned("BOB", entry(2, "box-mallory"), None, S2) {
            Err(RegisterError::Held { name, wait }) => {
                assert_eq!(name, "bob");
                assert!(wait > Duration::from_secs(59), "{wait:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            reg.register_owned("bob", entry(2, "box-mallory"), Some(S2), S2),
            Err(RegisterError::Held { .. })
        ));
        let back = reg
            .register_owned("bob", entry(3, "box-bob"), Some(S1), S2)
            .unwrap();
        assert_eq!(back.secret, S1);
        // A clean close, or a client that has no secret, holds nothing.
        reg.remove(3, "bob", Leaving::Closed);
        reg.register_owned("bob", entry(4, "box-new"), None, S2)
            .unwrap();
        let old = with(&["carol"]);
        old.remove(0, "carol", Leaving::Lost);
        old.register(
            9,
            "carol",
            addr("10.0.0.1:1"),
            ip("10.0.0.1"),
            "x",
            ClientFeatures::default(),
        )
        .unwrap();
    }

    #[test]
    fn a_closed_registration_is_gone_unless_its_secret_comes_back() {
        let setup_holding = |hold| {
            let reg = Registry::with_limits(CallLimits {
                hold,
                ..CallLimits::default()
            });
            reg.register_owned("bob", entry(1, "box-bob"), None, S1)
                .unwrap();
            reg.register_owned("al", entry(2, "box-al"), None, S2)
                .unwrap();
            reg.claim_call("al", "bob", F).unwrap();
            reg
        };
        let setup = || setup_holding(CallLimits::default().hold);
        // Closed, not taken back: the verdict says gone.
        let reg = setup();
        let removed = reg.remove(1, "bob", Leaving::Closed);
        let ended = removed.ended.unwrap();
        assert_eq!((ended.notify, ended.notify_session), (Some("box-al"), true));
        assert_eq!(removed.gone, None);
        let verdict = removed.verdict.unwrap();
        let gone = reg.verdict(&verdict).unwrap();
        assert_eq!((gone.peer.as_str(), gone.partner), ("bob", "box-al"));
        assert_eq!(reg.verdict(&verdict), None, "once");

        // Taken back with the secret in time: no verdict.
        let reg = setup();
        let verdict = reg.remove(1, "bob", Leaving::Closed).verdict.unwrap();
        let back = reg
            .register_owned("bob", entry(3, "box-bob2"), Some(S1), S2)
            .unwrap();
        assert_eq!((back.secret, back.gone), (S1, None));
        assert_eq!(reg.verdict(&verdict), None);

        // A new program takes the name: gone at once, whatever the end (a
        // lost one's name once it is no longer held).
        for how in [Leaving::Closed, Leaving::Lost] {
            let reg = setup_holding(Duration::ZERO);
            let removed = reg.remove(1, "bob", how);
            assert_eq!(removed.verdict.is_some(), how == Leaving::Closed);
            let new = reg
                .register_owned("bob", entry(3, "box-new"), None, S2)
                .unwrap();
            let gone = new.gone.unwrap();
            assert_eq!((gone.peer.as_str(), gone.partner), ("bob", "box-al"));
            if let Some(verdict) = removed.verdict {
                assert_eq!(reg.verdict(&verdict), None, "told once");
            }
        }

        // Quit: gone at once.
        let reg = setup();
        let removed = reg.remove(1, "bob", Leaving::Quit);
        assert_eq!(removed.gone.map(|g| g.partner), Some("box-al"));
        assert_eq!(removed.verdict, None);
    }
}
