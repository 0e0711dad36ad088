//! The registration server: an accept loop and one thread per client.
//!
//! Each client thread reads requests with a bounded [`LineReader`], answers
//! each with one reply, and pushes events to other clients through their
//! [`Outbox`]. All shared state lives in the [`Registry`]; its lock is never
//! held while a socket is read or written. A client's entry lives exactly as
//! long as its connection: the thread's `Session` guard removes it however
//! the thread ends (EOF, error, timeout, even a panic).
//!
//! Beside the client threads, one thread each: the timer (`timer.rs`: ends
//! calls nobody answered, and says when a program that closed its
//! connection is gone) and the presence task
//! (`presence.rs`: batches who joined, left, became busy or free for the
//! watchers), and the unsent-bytes watch (`unsent.rs`: drops a client that
//! leaves too much of what it asked for unread). `admission.rs` bounds the
//! unregistered connections of each source address, and the threads
//! clients have the server run.

mod admission;
mod presence;
mod timer;
mod unsent;

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::connection::{LineReader, Outbox, ReadError, SharedStream, write_line};
use crate::log;
use crate::protocol::{
    CallId, ConnEnd, ErrorCode, FEATURE_AWAY, FEATURE_LONG_LINES, FEATURE_MISSED,
    FEATURE_NO_RELAY_CODE, FEATURE_PRESENCE, FEATURE_PROOF, FEATURE_REJOIN, FEATURE_RELAY,
    FEATURE_RELAY_FILES, FEATURE_RING, FEATURE_RING_TIME, FEATURE_SESSION, FEATURE_TRANSFER,
    FileId, MAX_LINE, NameError, ProtocolError, Request, ServerLine, Token, UserEntry, printable,
};
use crate::registry::{
    self, CallError, CallLimits, ClientFeatures, ConnId, Ended, Entry, Fresh, Leaving,
    RegisterError, Registry, Setup, TransferError,
};
use crate::relay::{self, RelayLimits, Relays};
use crate::token::random_token;
use admission::{ThreadTicket, Threads, Unregistered, threads_the_maps_allow};
use presence::{NoWriter, Watchers};
use timer::Timer;
use unsent::UnsentWatch;

/// The port the server listens on when `--listen` gives none.
pub const DEFAULT_PORT: u16 = 7700;

/// How long the server's write of one reply or event to a client may take
/// in total before that client is dropped: a client that stops reading must
/// not stall the thread pushing to it.
const CLIENT_WRITE_DEADLINE: Duration = Duration::from_secs(5);

/// Client threads need little stack: no recursion, buffers on the heap. A
/// small stack keeps 10,000 idle peers cheap.
const CLIENT_STACK: usize = 128 * 1024;

/// How the server runs; built from the command line by `bin/server.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: String,
    pub max_clients: usize,
    /// Drop a registered peer not heard from for this long.
    pub idle_timeout: Duration,
    /// Drop a connection that has not registered within this long. Long
    /// enough for a person typing into `nc`.
    pub register_timeout: Duration,
    /// Whether to relay chats between peers that cannot reach each other.
    pub relay: bool,
    /// Whether to give each party of a call values of its own (`proof`);
    /// off only to measure or test what older clients get.
    pub proof: bool,
    /// How long a call between two clients that ring waits to be answered.
    pub ring_timeout: Duration,
    /// Most connections one source address may have open without having
    /// registered; one more closes the oldest.
    pub max_unregistered_per_ip: usize,
    /// How often presence changes go out to watchers, in one batch.
    pub presence_interval: Duration,
    /// How long a caller whose call did not become a chat waits before
    /// calling the same peer again (zero: no wait).
    pub recall_wait: Duration,
    /// Most calls one client may start in a minute.
    pub max_calls_per_minute: usize,
    /// How long a name whose connection was lost stays held for its owner.
    pub hold: Duration,
    /// Most rings a minute one callee gets from callers it has not chatted
    /// with.
    pub max_stranger_rings: usize,
    /// Most registrations a minute from one source address.
    pub max_registrations_per_ip: usize,
    /// Most relayed chats at once.
    pub max_relays: usize,
    /// Most relayed chats at once whose first half comes from one address.
    pub max_relays_per_ip: usize,
    /// Bytes a second each direction of a relay may carry (0: no limit).
    pub relay_rate: u64,
    /// Whether to relay the files of relayed chats (`FILE-RELAY`); only
    /// where chats are relayed.
    pub relay_files: bool,
    /// Bytes a second each direction of a file relay may carry (0: no
    /// limit), apart from its chat's.
    pub relay_file_rate: u64,
    /// How often the server logs a summary of its load while anything is
    /// happening.
    pub summary_interval: Duration,
    /// Most threads clients may have the server run at once: each
    /// connection's own, and one more for each that watches presence.
    /// `None`: as many as `vm.max_map_count` leaves room for (fewer if
    /// given, never more).
    pub max_threads: Option<usize>,
}

impl Config {
    fn call_limits(&self) -> CallLimits {
        CallLimits {
            recall_wait: self.recall_wait,
            calls_per_minute: self.max_calls_per_minute,
            hold: self.hold,
            stranger_rings: self.max_stranger_rings,
            registrations_per_ip: self.max_registrations_per_ip,
        }
    }

    fn relay_limits(&self) -> RelayLimits {
        RelayLimits {
            max_relays: self.max_relays,
            max_relays_per_ip: self.max_relays_per_ip,
            rate: self.relay_rate,
            file_rate: self.relay_file_rate,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: format!("0.0.0.0:{DEFAULT_PORT}"),
            max_clients: 4096,
            idle_timeout: Duration::from_secs(30),
            register_timeout: Duration::from_secs(60),
            relay: true,
            proof: true,
            ring_timeout: Duration::from_secs(30),
            max_unregistered_per_ip: 16,
            presence_interval: Duration::from_millis(250),
            recall_wait: CallLimits::default().recall_wait,
            max_calls_per_minute: CallLimits::default().calls_per_minute,
            hold: CallLimits::default().hold,
            max_stranger_rings: CallLimits::default().stranger_rings,
            max_registrations_per_ip: CallLimits::default().registrations_per_ip,
            max_relays: RelayLimits::default().max_relays,
            max_relays_per_ip: RelayLimits::default().max_relays_per_ip,
            relay_rate: RelayLimits::default().rate,
            relay_files: true,
            relay_file_rate: RelayLimits::default().file_rate,
            summary_interval: Duration::from_secs(60),
            max_threads: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub enum ServerError {
    Bind { addr: String, source: io::Error },
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Bind { addr, source } => {
                write!(f, "cannot listen on {addr}: {source}")?;
                if source.kind() == io::ErrorKind::AddrInUse {
                    write!(f, " (another server running? pick a port with --listen)")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ServerError {}

/// Every reason the server answers a client with `ERR`. Each reply's code
/// and text are written in one place, its `From` impl for `ServerLine`, so
/// the same refusal reads the same wherever it is sent from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// The line does not parse.
    Malformed(ProtocolError),
    BadEncoding,
    /// The line was too long; the connection closes after this.
    LineTooLong,
    /// A registered client sent nothing for the idle timeout.
    NoHeartbeat,
    /// A connection did not register within the registration timeout.
    DidNotRegister,
    /// One more unregistered connection came from the same address; this,
    /// the oldest, is closed.
    TooManyUnregistered,
    /// Every slot is taken (`--max-clients`).
    ServerFull,
    /// `REGISTER` again on a registered connection, under this name.
    AlreadyRegistered(String),
    /// A request that needs a registration, before one.
    NotRegistered,
    /// Another client holds this name, as they spell it.
    NameTaken(String),
    /// The name (as listed) looks like `like`, online or held for `held`.
    LooksLike {
        name: String,
        like: String,
        held: Option<Duration>,
    },
    /// `REGISTER` advertised an address no peer should dial.
    Unfit {
        advertise: SocketAddr,
        why: &'static str,
    },
    /// The name is held for its owner, whose connection was lost.
    NameHeld {
        name: String,
        wait: Duration,
    },
    /// The client's address registered its limit of names this minute.
    TooManyRegistrations {
        limit: usize,
        wait: Duration,
    },
    BadName(NameError),
    UnknownUser(String),
    /// The callee is in another chat (as the callee spells the name).
    Busy(String),
    AlreadyInCall,
    NotInCall(CallId),
    /// `LOCATE` of someone the asker is not in a call with.
    NotInCallWith(String),
    /// `ANSWER` or `DECLINE` for a call that is not ringing for this client.
    NotRinging(CallId),
    /// `RELAY` on a connection that already said something else.
    RelayNotFirst,
    /// `RELAY` to a server started with `--no-relay`.
    NoRelay,
    /// `FILE-RELAY` to a server started with `--no-relay` or
    /// `--no-relay-files`.
    NoRelayFiles,
    /// `TRANSFER` from a client that did not announce `transfer`.
    TransferNotAnnounced,
    /// `TRANSFER` to a peer whose chat did not announce `transfer`.
    CannotReceiveFiles(String),
    /// The callee's registration connection failed while being told.
    CalleeSilent(String),
    /// The callee answers only calls that ring, and the caller cannot.
    RingsOnly(String),
    /// The callee was rung by enough strangers this minute.
    NotTakingCalls {
        callee: String,
        wait: Duration,
    },
    /// The callee is away, with its message (escaped when it was set), to
    /// a caller that reads the code `away`.
    Away {
        callee: String,
        message: String,
    },
    /// The same, to an older caller: under a code it knows.
    AwayToOlder {
        callee: String,
        message: String,
    },
    /// The OS random source failed.
    NoCallToken,
    /// `WATCH on` when the budget of threads, this many, is spent.
    NoThreadForPresence(usize),
    /// `WATCH on` when the system refused a thread.
    NoPresence,
    /// The caller's last call to this callee did not become a chat.
    TooSoon {
        callee: String,
        wait: Duration,
    },
    /// The caller started its limit of calls in the last minute.
    TooManyCalls {
        limit: usize,
        wait: Duration,
    },
}

/// A wait as a person reads it: whole seconds, rounded up.
fn whole_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl From<Refusal> for ServerLine {
    fn from(why: Refusal) -> ServerLine {
        let (code, message) = match why {
            Refusal::Malformed(e) => (e.code(), e.to_string()),
            Refusal::BadEncoding => (ErrorCode::BadEncoding, "line is not valid UTF-8".into()),
            Refusal::LineTooLong => (
                ErrorCode::LineTooLong,
                format!("line longer than {MAX_LINE} bytes; closing"),
            ),
            Refusal::NoHeartbeat => (ErrorCode::Timeout, "no heartbeat; closing".into()),
            Refusal::DidNotRegister => (
                ErrorCode::Timeout,
                "did not register in time; closing".into(),
            ),
            Refusal::TooManyUnregistered => (
                ErrorCode::Timeout,
                "too many unregistered connections from your address".into(),
            ),
            Refusal::ServerFull => (ErrorCode::ServerFull, "server full, try again later".into()),
            Refusal::AlreadyRegistered(name) => (
                ErrorCode::AlreadyRegistered,
                format!("already registered as {name}"),
            ),
            Refusal::NotRegistered => (
                ErrorCode::NotRegistered,
                "register first: REGISTER NAME IP:PORT".into(),
            ),
            Refusal::NameTaken(holder) => (
                ErrorCode::NameTaken,
                format!("the name {holder} is taken; pick another"),
            ),
            Refusal::LooksLike { name, like, held } => (
                ErrorCode::NameTaken,
                match held {
                    None => {
                        format!("\"{name}\" looks like \"{like}\", who is online; pick another")
                    }
                    Some(wait) => format!(
                        "\"{name}\" looks like \"{like}\", held for its owner for {} s more; pick another",
                        whole_secs(wait)
                    ),
                },
            ),
            Refusal::Unfit { advertise, why } => (
                ErrorCode::BadRequest,
                format!("cannot advertise {advertise}: {why}"),
            ),
            Refusal::NameHeld { name, wait } => (
                ErrorCode::NameTaken,
                format!(
                    "the name {name} is held for its owner, whose connection was lost, for {} s more",
                    whole_secs(wait)
                ),
            ),
            Refusal::TooManyRegistrations { limit, wait } => (
                ErrorCode::TooSoon,
                format!(
                    "your address made {limit} registrations in the last minute, the most \
                     it may; try again in {} s",
                    whole_secs(wait)
                ),
            ),
            Refusal::BadName(e) => (ErrorCode::BadName, e.to_string()),
            Refusal::UnknownUser(who) => (
                ErrorCode::UnknownUser,
                format!("nobody named {who} is online"),
            ),
            Refusal::Busy(who) => (ErrorCode::Busy, format!("{who} is busy in another chat")),
            Refusal::AlreadyInCall => (
                ErrorCode::AlreadyInCall,
                "you are already in a call; HANGUP first".into(),
            ),
            Refusal::NotInCall(call) => {
                (ErrorCode::NotInCall, format!("you are not in call {call}"))
            }
            Refusal::NotInCallWith(name) => (
                ErrorCode::NotInCall,
                format!("you are not in a call with {name}"),
            ),
            Refusal::NotRinging(call) => (
                ErrorCode::NotInCall,
                format!("call {call} is not ringing for you"),
            ),
            Refusal::RelayNotFirst => (
                ErrorCode::BadRequest,
                "RELAY and FILE-RELAY must be the first line of their own connection".into(),
            ),
            Refusal::NoRelay => (
                ErrorCode::NoRelay,
                "this server does not relay chats (--no-relay)".into(),
            ),
            Refusal::NoRelayFiles => (
                ErrorCode::NoRelay,
                "this server does not relay files (--no-relay-files)".into(),
            ),
            Refusal::TransferNotAnnounced => (
                ErrorCode::BadRequest,
                "announce the feature transfer (FEATURES … transfer) before TRANSFER".into(),
            ),
            Refusal::CannotReceiveFiles(peer) => (
                ErrorCode::Unreachable,
                format!("{peer}'s chat cannot receive files"),
            ),
            Refusal::CalleeSilent(callee) => (
                ErrorCode::Unreachable,
                format!("{callee} did not answer the server"),
            ),
            Refusal::NotTakingCalls { callee, wait } => (
                ErrorCode::TooSoon,
                format!(
                    "{callee} is not taking calls from new names now; try again in {} s",
                    whole_secs(wait)
                ),
            ),
            Refusal::RingsOnly(callee) => (
                ErrorCode::Unreachable,
                format!("{callee} answers only calls that ring; a newer chat can call"),
            ),
            Refusal::Away { callee, message } => (ErrorCode::Away, away_text(&callee, &message)),
            Refusal::AwayToOlder { callee, message } => {
                (ErrorCode::Unreachable, away_text(&callee, &message))
            }
            Refusal::NoCallToken => (
                ErrorCode::Internal,
                "the server cannot make a call token right now".into(),
            ),
            Refusal::NoThreadForPresence(limit) => (
                ErrorCode::ServerFull,
                format!(
                    "no presence for now: the server runs all the threads it can ({limit}); \
                     LIST still answers"
                ),
            ),
            Refusal::NoPresence => (
                ErrorCode::Internal,
                "the server cannot send presence right now".into(),
            ),
            Refusal::TooSoon { callee, wait } => (
                ErrorCode::TooSoon,
                format!(
                    "your last call to {callee} did not become a chat; wait {} s before \
                     calling {callee} again",
                    whole_secs(wait)
                ),
            ),
            Refusal::TooManyCalls { limit, wait } => (
                ErrorCode::TooSoon,
                format!(
                    "at most {limit} calls a minute; wait {} s before the next",
                    whole_secs(wait)
                ),
            ),
        };
        ServerLine::Error { code, message }
    }
}

/// "bob is away: at lunch", or "bob is away" with no message.
fn away_text(callee: &str, message: &str) -> String {
    if message.is_empty() {
        format!("{callee} is away")
    } else {
        format!("{callee} is away: {message}")
    }
}

impl From<ProtocolError> for Refusal {
    fn from(e: ProtocolError) -> Refusal {
        Refusal::Malformed(e)
    }
}

impl From<RegisterError> for Refusal {
    fn from(e: RegisterError) -> Refusal {
        match e {
            RegisterError::BadName(e) => Refusal::BadName(e),
            RegisterError::Taken(holder) => Refusal::NameTaken(holder),
            RegisterError::LooksLike { name, like, held } => {
                Refusal::LooksLike { name, like, held }
            }
            RegisterError::Held { name, wait } => Refusal::NameHeld { name, wait },
            RegisterError::TooMany { limit, wait } => Refusal::TooManyRegistrations { limit, wait },
        }
    }
}

impl From<TransferError> for Refusal {
    fn from(e: TransferError) -> Refusal {
        match e {
            TransferError::NotInCallWith(name) => Refusal::NotInCallWith(name),
            TransferError::NotAnnounced => Refusal::TransferNotAnnounced,
            TransferError::PeerCannot(peer) => Refusal::CannotReceiveFiles(peer),
        }
    }
}

impl From<CallError> for Refusal {
    fn from(e: CallError) -> Refusal {
        match e {
            CallError::UnknownUser(who) => Refusal::UnknownUser(who),
            CallError::Busy(who) => Refusal::Busy(who),
            CallError::AlreadyInCall => Refusal::AlreadyInCall,
            CallError::NotRegistered => Refusal::NotRegistered,
            CallError::TooSoon { callee, wait } => Refusal::TooSoon { callee, wait },
            CallError::TooManyCalls { limit, wait } => Refusal::TooManyCalls { limit, wait },
            CallError::RingsOnly(callee) => Refusal::RingsOnly(callee),
            CallError::NotTakingCalls { callee, wait } => Refusal::NotTakingCalls { callee, wait },
            CallError::Away { callee, message } => Refusal::Away { callee, message },
        }
    }
}

/// State every client thread shares.
struct Shared {
    registry: Arc<Registry<Outbox>>,
    relays: Relays,
    config: Config,
    clients: AtomicUsize,
    next_conn: AtomicU64,
    timer: Timer,
    watchers: Arc<Watchers>,
    unregistered: Unregistered<Outbox>,
    /// Connections refused since the start: server full, or relays full.
    refused: AtomicU64,
    /// Drops clients that leave too much unread.
    unsent: Arc<UnsentWatch>,
    /// Counts every thread a client starts.
    threads: Arc<Threads>,
}

/// Binds `config.listen`, prints `listening on ADDR` as the first line of
/// stdout, and serves forever.
pub fn run(config: Config) -> Result<(), ServerError> {
    let listener = TcpListener::bind(&config.listen).map_err(|source| ServerError::Bind {
        addr: config.listen.clone(),
        source,
    })?;
    let local = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen.clone(),
        source,
    })?;
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "listening on {local}");
    let _ = stdout.flush();
    drop(stdout);
    log!(
        "server listening on {local} (max clients {}, idle timeout {}s, register timeout {}s, \
         ring timeout {}s, relay {}, max relays {}, relay rate {} bytes/s, relay files {}, \
         relay file rate {} bytes/s, recall wait {}s, max calls per minute {}, hold {}s, \
         max registrations per ip {} a minute)",
        config.max_clients,
        config.idle_timeout.as_secs_f32(),
        config.register_timeout.as_secs_f32(),
        config.ring_timeout.as_secs_f32(),
        if config.relay { "on" } else { "off" },
        config.max_relays,
        config.relay_rate,
        if relays_files(&config) { "on" } else { "off" },
        config.relay_file_rate,
        config.recall_wait.as_secs(),
        config.max_calls_per_minute,
        config.hold.as_secs(),
        config.max_registrations_per_ip
    );
    serve(listener, config);
    Ok(())
}

/// The accept loop. It survives every accept error: it logs, backs off
/// briefly when the process is out of resources, and goes on.
pub fn serve(listener: TcpListener, config: Config) {
    let registry = Arc::new(Registry::with_limits(config.call_limits()));
    serve_with(listener, config, registry);
}

/// [`serve`] over a table the caller keeps a handle to (tests check its
/// invariants while clients do their worst).
pub fn serve_with(listener: TcpListener, mut config: Config, registry: Arc<Registry<Outbox>>) {
    let maps_allow = threads_the_maps_allow();
    if let Some(allowed) = maps_allow
        && allowed < config.max_clients
    {
        log!(
            "max clients lowered from {} to {allowed}: each client's thread takes \
             {} memory maps and vm.max_map_count allows that many \
             (raise it with sysctl vm.max_map_count)",
            config.max_clients,
            admission::MAPS_PER_THREAD
        );
        config.max_clients = allowed;
    }
    let thread_limit = [config.max_threads, maps_allow]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(usize::MAX);
    let watchers = Arc::new(Watchers::default());
    presence::start(registry.clone(), watchers.clone(), config.presence_interval);
    let shared = Arc::new(Shared {
        timer: Timer::start(registry.clone(), config.ring_timeout),
        unregistered: Unregistered::new(config.max_unregistered_per_ip),
        registry,
        watchers,
        relays: Relays::new(config.relay_limits()),
        config,
        clients: AtomicUsize::new(0),
        next_conn: AtomicU64::new(1),
        refused: AtomicU64::new(0),
        unsent: Arc::default(),
        threads: Threads::new(thread_limit),
    });
    start_summary(shared.clone());
    shared.unsent.start();
    loop {
        match listener.accept() {
            Ok((stream, addr)) => admit(&shared, stream, addr),
            Err(e) => {
                log!("accept failed: {e}");
                if !matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                ) {
                    // Out of file descriptors or memory: give the other
                    // threads a moment to close something.
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

fn admit(shared: &Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    // An IPv4 peer on a dual-stack socket shows up as ::ffff:a.b.c.d; log
    // and record the address it really has.
    let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(CLIENT_WRITE_DEADLINE));
    let slot = match ClientSlot::take(shared) {
        Ok(slot) => slot,
        Err(full) => {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            match full {
                Full::Clients => log!(
                    "refused {addr}: server full ({} clients)",
                    shared.config.max_clients
                ),
                Full::Threads => log!(
                    "refused {addr}: server full ({} threads for clients, \
                     watchers' included)",
                    shared.threads.limit()
                ),
            }
            let _ = write_line(&mut &stream, &ServerLine::from(Refusal::ServerFull));
            return;
        }
    };
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let stream = Arc::new(stream);
    let outbox = Outbox::new(stream.clone(), CLIENT_WRITE_DEADLINE);
    // Counted here, in the order of arrival; the oldest is told and closed
    // by the new client's thread, so a stuck one cannot stall this loop.
    let evicted = shared.unregistered.arrive(addr.ip(), conn, outbox.clone());
    let unsent = shared.unsent.clone();
    let spawned = thread::Builder::new()
        .name(format!("client-{conn}"))
        .stack_size(CLIENT_STACK)
        .spawn(move || {
            let _watched = unsent.watch(&stream, &outbox, addr);
            if let Some(oldest) = evicted {
                evict(&oldest, addr);
            }
            serve_client(slot, conn, stream, outbox, addr)
        });
    if let Err(e) = spawned {
        log!("cannot start a thread for {addr}: {e}");
        shared.unregistered.leave(addr.ip(), conn);
    }
}

/// Starts the thread that logs, every `--summary-interval` while anything
/// is happening, one line an operator can read the load from.
fn start_summary(shared: Arc<Shared>) {
    let interval = shared.config.summary_interval;
    let task = move || {
        let mut last = Summary::default();
        loop {
            thread::sleep(interval);
            let now = Summary {
                peers: shared.registry.len(),
                calls: shared.registry.calls_open(),
                relays: shared.relays.open(),
                bytes_relayed: shared.relays.bytes_relayed(),
                refused: shared.refused.load(Ordering::Relaxed) + shared.relays.refused(),
                log_dropped: log::dropped_total(),
                connections: shared.clients.load(Ordering::Relaxed),
            };
            if now.is_quiet() && now == last {
                continue;
            }
            log!(
                "summary: {} peers online, {} connections, {} calls open, {} relays open, \
                 {} bytes relayed in the last {}s ({} in all), {} connections refused, \
                 {} log lines dropped",
                now.peers,
                now.connections,
                now.calls,
                now.relays,
                now.bytes_relayed - last.bytes_relayed,
                interval.as_secs(),
                now.bytes_relayed,
                now.refused,
                now.log_dropped
            );
            last = now;
        }
    };
    let started = thread::Builder::new()
        .name("summary".into())
        .stack_size(64 * 1024)
        .spawn(task);
    if let Err(e) = started {
        log!("cannot start the load summary: {e}");
    }
}

/// What one summary line says.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Summary {
    peers: usize,
    connections: usize,
    calls: usize,
    relays: usize,
    bytes_relayed: u64,
    refused: u64,
    log_dropped: u64,
}

impl Summary {
    /// Nothing online or open: nothing to sum up unless a count moved.
    fn is_quiet(&self) -> bool {
        self.peers == 0 && self.connections == 0 && self.calls == 0 && self.relays == 0
    }
}

/// Counts a client against `max_clients`, and its thread against the
/// budget of threads, for as long as it lives.
struct ClientSlot {
    shared: Arc<Shared>,
    _thread: ThreadTicket,
}

/// What a connection found full.
enum Full {
    Clients,
    Threads,
}

impl ClientSlot {
    fn take(shared: &Arc<Shared>) -> Result<ClientSlot, Full> {
        let ticket = shared.threads.take().ok_or(Full::Threads)?;
        let max = shared.config.max_clients;
        shared
            .clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| Full::Clients)?;
        Ok(ClientSlot {
            shared: shared.clone(),
            _thread: ticket,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.shared.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One client's registration, removed from the table when dropped.
struct Session {
    slot: ClientSlot,
    conn: ConnId,
    addr: SocketAddr,
    outbox: Outbox,
    /// Shared rather than copied: each request borrows it while the
    /// session changes.
    name: Option<Rc<str>>,
    /// What the client announced (before or after registering).
    features: ClientFeatures,
    leave_reason: String,
    /// How the connection ended, as far as the server can tell: what the
    /// partner of a call is told.
    leaving: Leaving,
    /// How many of this connection's refusals were logged, so one client's
    /// flood of bad lines costs the log a few lines, not one each.
    bad_lines: RefCell<BadLines>,
}

/// How many bad lines of one connection are logged in each
/// [`BAD_LINES_WINDOW`]; the rest are counted and summarised.
const BAD_LINES_LOGGED: u32 = 5;
const BAD_LINES_WINDOW: Duration = Duration::from_secs(10);

/// One connection's logged and unlogged refusals in the current window.
struct BadLines {
    window_start: Instant,
    logged: u32,
    unlogged: u64,
}

impl BadLines {
    fn new() -> BadLines {
        BadLines {
            window_start: Instant::now(),
            logged: 0,
            unlogged: 0,
        }
    }

    /// Whether the next refusal is logged. A new window first summarises
    /// what the last one left out.
    fn admit(&mut self, addr: SocketAddr) -> bool {
        if self.window_start.elapsed() >= BAD_LINES_WINDOW {
            self.summarise(addr);
            self.window_start = Instant::now();
            self.logged = 0;
        }
        if self.logged < BAD_LINES_LOGGED {
            self.logged += 1;
            true
        } else {
            self.unlogged += 1;
            false
        }
    }

    /// Logs how many refusals went unlogged, if any.
    fn summarise(&mut self, addr: SocketAddr) {
        if self.unlogged > 0 {
            log!("… and {} more bad lines from {addr}", self.unlogged);
            self.unlogged = 0;
        }
    }
}

impl Session {
    fn shared(&self) -> &Shared {
        &self.slot.shared
    }

    /// Answers a request: what the client asked for.
    fn reply(&self, line: &ServerLine) -> io::Result<()> {
        self.outbox.reply(line)
    }

    /// Logs (the first few of each window) and answers a request we refuse.
    fn refuse(&self, why: impl Into<Refusal>, line: &str) -> io::Result<()> {
        let reply = ServerLine::from(why.into());
        if let ServerLine::Error { code, message } = &reply
            && self.bad_lines.borrow_mut().admit(self.addr)
        {
            log!(
                "rejected {} from {} ({}): {code}: {message}",
                printable(line),
                self.name.as_deref().unwrap_or("unregistered"),
                self.addr
            );
        }
        self.reply(&reply)
    }
}

impl Session {
    /// Removes this client's entry, ending its call if it has one.
    fn leave(&mut self) {
        let Some(name) = self.name.take() else {
            return;
        };
        self.shared().watchers.unwatch(self.conn);
        let removed = self
            .shared()
            .registry
            .remove(self.conn, &name, self.leaving);
        if let Some(ended) = removed.ended {
            let end = match self.leaving {
                Leaving::Quit => None,
                // A verdict follows either: the partner waits for it.
                Leaving::Closed | Leaving::Reset => Some(ConnEnd::Closed),
                Leaving::Lost => Some(ConnEnd::Lost),
            };
            announce_end(&ended, &name, end);
        }
        if let Some(gone) = removed.gone {
            timer::tell_gone(gone);
        }
        if let Some(verdict) = removed.verdict {
            self.shared().timer.verdict(verdict);
        }
        log!("{name} left ({})", self.leave_reason);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.leave();
        self.bad_lines.get_mut().summarise(self.addr);
        self.shared().unregistered.leave(self.addr.ip(), self.conn);
    }
}

/// Tells the other party of an ended call; `end` says how a vanished
/// party's connection ended, to a party that reads it.
fn announce_end(ended: &Ended<Outbox>, from: &str, end: Option<ConnEnd>) {
    log!(
        "chat {} ended by {from} after {:.1}s",
        ended.call,
        ended.duration.as_secs_f32()
    );
    relay::close_after_drain(ended.relays.clone());
    if let Some(outbox) = &ended.notify {
        let _ = outbox.send(&ServerLine::PeerHungUp {
            call: ended.call,
            peer: ended.by.clone(),
            end: end.filter(|_| ended.notify_session),
        });
    }
}

/// Tells the oldest unregistered connection from `addr`'s address why it
/// is closed, and closes it; its own thread then ends.
fn evict(oldest: &Outbox, addr: SocketAddr) {
    log!(
        "closed an unregistered connection from {}: too many unregistered connections \
         from that address",
        addr.ip()
    );
    let _ = oldest.send(&ServerLine::from(Refusal::TooManyUnregistered));
    oldest.close();
}

fn serve_client(
    slot: ClientSlot,
    conn: ConnId,
    stream: Arc<TcpStream>,
    outbox: Outbox,
    addr: SocketAddr,
) {
    let mut session = Session {
        slot,
        conn,
        addr,
        outbox,
        name: None,
        features: ClientFeatures::default(),
        leave_reason: "connection closed".into(),
        leaving: Leaving::Lost,
        bad_lines: RefCell::new(BadLines::new()),
    };
    let mut reader = LineReader::new(SharedStream(stream));
    let register_timeout = session.shared().config.register_timeout;
    let idle_timeout = session.shared().config.idle_timeout;
    let mut deadline = Instant::now() + register_timeout;
    loop {
        let line = match reader.read_line_by(Some(deadline)) {
            Ok(line) => line,
            Err(ReadError::InvalidUtf8) => {
                if session.refuse(Refusal::BadEncoding, "").is_err() {
                    break;
                }
                continue;
            }
            Err(ReadError::TooLong) => {
                let _ = session.refuse(Refusal::LineTooLong, "");
                session.leave_reason = "sent an oversize line".into();
                break;
            }
            Err(ReadError::TimedOut) => {
                let registered = session.name.is_some();
                let (why, reason) = if registered {
                    (Refusal::NoHeartbeat, "idle timeout")
                } else {
                    (Refusal::DidNotRegister, "registration timeout")
                };
                let _ = session.reply(&why.into());
                if !registered {
                    log!("closed {addr}: did not register in time");
                }
                session.leave_reason = reason.into();
                break;
            }
            Err(ReadError::Closed) => {
                session.leaving = Leaving::Closed;
                break;
            }
            Err(ReadError::Io(e)) => {
                if e.kind() == io::ErrorKind::ConnectionReset {
                    session.leaving = Leaving::Reset;
                }
                session.leave_reason = format!("connection error: {e}");
                break;
            }
        };
        if session.name.is_some() {
            deadline = Instant::now() + idle_timeout;
        }
        match handle_line(&mut session, &line) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Close) => break,
            Ok(Flow::Relay { call, token }) => {
                let shared = session.shared();
                shared.unregistered.leave(addr.ip(), conn);
                relay::serve(
                    &shared.registry,
                    &shared.relays,
                    &session.outbox,
                    reader,
                    call,
                    token,
                    addr.ip(),
                );
                break;
            }
            Ok(Flow::FileRelay { call, id, token }) => {
                let shared = session.shared();
                shared.unregistered.leave(addr.ip(), conn);
                let half = relay::FileHalf {
                    conn,
                    call,
                    id,
                    token,
                };
                relay::serve_file(
                    &shared.registry,
                    &shared.relays,
                    &session.outbox,
                    reader,
                    half,
                );
                break;
            }
            Ok(Flow::Registered) => deadline = Instant::now() + idle_timeout,
            Err(e) => {
                session.leave_reason = format!("write failed: {e}");
                break;
            }
        }
    }
}

/// What the read loop does after a request.
enum Flow {
    Continue,
    Registered,
    Close,
    /// This connection becomes one half of a relayed chat.
    Relay {
        call: CallId,
        token: Token,
    },
    /// This connection becomes one half of a relayed chat's file.
    FileRelay {
        call: CallId,
        id: FileId,
        token: Token,
    },
}

fn handle_line(session: &mut Session, line: &str) -> io::Result<Flow> {
    let request = match Request::parse(line) {
        Ok(request) => request,
        Err(e) => {
            session.refuse(e, line)?;
            return Ok(Flow::Continue);
        }
    };
    let Some(name) = session.name.clone() else {
        return handle_unregistered(session, request, line);
    };
    let shared = session.shared();
    match request {
        Request::Register { .. } => {
            session.refuse(Refusal::AlreadyRegistered(name.to_string()), line)?;
        }
        Request::List => {
            let users = shared.registry.list();
            let count = ServerLine::Users { count: users.len() };
            let knows_away = session.features.away;
            let rows = users
                .into_iter()
                .map(|user| ServerLine::User(told(user, knows_away)));
            session
                .outbox
                .reply_lines(std::iter::once(count).chain(rows))?;
        }
        Request::Lookup { name: wanted } => match shared.registry.lookup(&wanted) {
            Some(user) => session.reply(&ServerLine::Found(told(user, session.features.away)))?,
            None => session.refuse(Refusal::UnknownUser(wanted), line)?,
        },
        Request::Away { message } => {
            // Kept as every reader would show it: no control character
            // reaches a caller, an older one included, or the log.
            let message = crate::text::shown(&message).into_owned();
            if shared.registry.set_away(session.conn, &name, Some(message)) {
                log!("{name} is away");
            }
            session.reply(&ServerLine::AwayDone)?;
        }
        Request::Back => {
            if shared.registry.set_away(session.conn, &name, None) {
                log!("{name} is back");
            }
            session.reply(&ServerLine::BackDone)?;
        }
        Request::Locate { name: wanted } => locate(session, &name, &wanted, line)?,
        Request::Rejoin { name: wanted } => rejoin_call(session, &name, &wanted, line)?,
        Request::Call { name: callee } => start_call(session, &name, &callee, line)?,
        Request::Hangup { call } => match shared.registry.hangup(&name, call) {
            Some(ended) => {
                announce_end(&ended, &name, None);
                session.reply(&ServerLine::HungUp { call })?;
            }
            None => session.refuse(Refusal::NotInCall(call), line)?,
        },
        Request::Ping => session.reply(&ServerLine::Pong)?,
        Request::Features(words) => {
            let announced = client_features(&shared.config, &words);
            shared.registry.set_features(session.conn, &name, announced);
            session.reply(&features(&shared.config))?;
            session.features = announced;
        }
        Request::Answer { call } => answer_call(session, &name, call, line)?,
        Request::Busy { call } => match shared.registry.busy(&name, call) {
            Some((ended, caller)) => {
                log!("chat {call}: {name} is in a chat; the ring ends as busy");
                session.reply(&ServerLine::BusyDone { call })?;
                if session.features.missed {
                    session.reply(&ServerLine::Missed { caller })?;
                }
                if let Some(caller) = &ended.notify {
                    let peer = name.to_string();
                    let _ = caller.send(&if ended.notify_session {
                        ServerLine::FoundBusy { call, peer }
                    } else {
                        ServerLine::Declined { call, peer }
                    });
                }
            }
            None => session.refuse(Refusal::NotRinging(call), line)?,
        },
        Request::Linked { call } => {
            if shared.registry.linked(&name, call) {
                session.reply(&ServerLine::Linked { call })?;
            } else {
                session.refuse(Refusal::NotInCall(call), line)?;
            }
        }
        Request::Decline { call } => match shared.registry.decline(&name, call) {
            Some(ended) => {
                log!("chat {call} declined by {name}");
                session.reply(&ServerLine::DeclineDone { call })?;
                if let Some(caller) = &ended.notify {
                    let _ = caller.send(&ServerLine::Declined {
                        call,
                        peer: name.to_string(),
                    });
                }
            }
            None => session.refuse(Refusal::NotRinging(call), line)?,
        },
        Request::Watch(on) => {
            if on {
                // Presence names peers as the registry keeps them (in NFC):
                // the watcher's own entry is found, and left out, by that
                // spelling, not by the one it typed.
                let kept = shared.registry.lookup(&name).map(|user| user.name);
                let shown = kept.as_deref().unwrap_or(&name);
                let watching = shared.watchers.watch(
                    session.conn,
                    shown,
                    session.features.away,
                    &session.outbox,
                    &shared.threads,
                );
                let refusal = match watching {
                    Ok(()) => None,
                    Err(NoWriter::Budget) => {
                        Some(Refusal::NoThreadForPresence(shared.threads.limit()))
                    }
                    Err(NoWriter::Spawn(e)) => {
                        log!("cannot start presence for {name}: {e}");
                        Some(Refusal::NoPresence)
                    }
                };
                if let Some(refusal) = refusal {
                    return session.refuse(refusal, line).map(|()| Flow::Continue);
                }
            } else {
                shared.watchers.unwatch(session.conn);
            }
            session.reply(&ServerLine::Watching(on))?;
        }
        Request::Quit => {
            // Leave the table before answering, so that once the client
            // sees BYE nobody can see it listed.
            session.leave_reason = "quit".into();
            session.leaving = Leaving::Quit;
            session.leave();
            session.reply(&ServerLine::Bye)?;
            return Ok(Flow::Close);
        }
        Request::Relay { .. } | Request::FileRelay { .. } => {
            session.refuse(Refusal::RelayNotFirst, line)?
        }
        Request::Transfer { name: wanted, id } => transfer(session, &name, &wanted, id, line)?,
        Request::Resume { name: peer } => resume_call(session, &name, &peer, line)?,
    }
    Ok(Flow::Continue)
}

fn handle_unregistered(session: &mut Session, request: Request, line: &str) -> io::Result<Flow> {
    match request {
        Request::Register {
            name,
            advertise,
            secret,
        } => {
            if let Some(why) = registry::unfit_advertised(advertise, session.addr.ip()) {
                session.refuse(Refusal::Unfit { advertise, why }, line)?;
                return Ok(Flow::Continue);
            }
            let Some(fresh) = call_token(session)? else {
                return Ok(Flow::Continue);
            };
            let shared = session.shared();
            let entry = Entry {
                conn: session.conn,
                advertised: advertise,
                seen: session.addr.ip(),
                outbox: session.outbox.clone(),
                features: session.features,
            };
            let registered = shared.registry.register_owned(&name, entry, secret, fresh);
            match registered {
                Ok(registered) => {
                    shared.unregistered.leave(session.addr.ip(), session.conn);
                    if let Some(old) = registered.replaced {
                        log!("{name} took its registration over from a new connection");
                        old.close();
                    }
                    if let Some(gone) = registered.gone {
                        timer::tell_gone(gone);
                    }
                    log!("{name} joined from {} (chat at {advertise})", session.addr);
                    let heartbeat_secs = (shared.config.idle_timeout.as_secs() / 3).max(1);
                    session.name = Some(Rc::from(name.as_str()));
                    session.reply(&ServerLine::Welcome {
                        name,
                        heartbeat_secs,
                        secret: session.features.session.then_some(registered.secret),
                    })?;
                    Ok(Flow::Registered)
                }
                Err(e) => {
                    session.refuse(e, line)?;
                    Ok(Flow::Continue)
                }
            }
        }
        Request::Quit => {
            session.reply(&ServerLine::Bye)?;
            Ok(Flow::Close)
        }
        Request::Ping => {
            session.reply(&ServerLine::Pong)?;
            Ok(Flow::Continue)
        }
        Request::Features(words) => {
            session.features = client_features(&session.shared().config, &words);
            session.reply(&features(&session.shared().config))?;
            Ok(Flow::Continue)
        }
        Request::Relay { call, token } => {
            if session.shared().config.relay {
                Ok(Flow::Relay { call, token })
            } else {
                session.refuse(Refusal::NoRelay, line)?;
                Ok(Flow::Close)
            }
        }
        Request::FileRelay { call, id, token } => {
            if relays_files(&session.shared().config) {
                Ok(Flow::FileRelay { call, id, token })
            } else {
                session.refuse(Refusal::NoRelayFiles, line)?;
                Ok(Flow::Close)
            }
        }
        Request::List
        | Request::Transfer { .. }
        | Request::Lookup { .. }
        | Request::Locate { .. }
        | Request::Rejoin { .. }
        | Request::Call { .. }
        | Request::Hangup { .. }
        | Request::Resume { .. }
        | Request::Answer { .. }
        | Request::Decline { .. }
        | Request::Busy { .. }
        | Request::Linked { .. }
        | Request::Watch(_)
        | Request::Away { .. }
        | Request::Back => {
            session.refuse(Refusal::NotRegistered, line)?;
            Ok(Flow::Continue)
        }
    }
}

/// A row as `session`'s client reads it: `away` only to one that knows it.
fn told(user: UserEntry, knows_away: bool) -> UserEntry {
    if knows_away {
        user
    } else {
        user.without_away()
    }
}

/// The answer to `FEATURES`: what this server does beyond the base
/// protocol, so a newer client can rely on it rather than guess from an
/// error's text. The client's own words (`ring`, `missed`) are recorded in
/// its session by the caller.
fn features(config: &Config) -> ServerLine {
    let mut words = vec![FEATURE_NO_RELAY_CODE.to_string()];
    if config.relay {
        words.push(FEATURE_RELAY.to_string());
        words.push(FEATURE_REJOIN.to_string());
    }
    words.extend(
        [
            FEATURE_RING,
            FEATURE_PRESENCE,
            FEATURE_MISSED,
            FEATURE_LONG_LINES,
            FEATURE_SESSION,
        ]
        .map(String::from),
    );
    if config.proof {
        words.push(FEATURE_PROOF.to_string());
    }
    words.extend([FEATURE_RING_TIME, FEATURE_AWAY, FEATURE_TRANSFER].map(String::from));
    if relays_files(config) {
        words.push(FEATURE_RELAY_FILES.to_string());
    }
    ServerLine::Features(words)
}

/// Whether this server relays the files of relayed chats.
fn relays_files(config: &Config) -> bool {
    config.relay && config.relay_files
}

/// What a client's `FEATURES` words change here: all they say, but
/// `proof` only where the server gives values of one's own.
fn client_features(config: &Config, words: &[String]) -> ClientFeatures {
    let mut announced = ClientFeatures::from_words(words);
    announced.proof &= config.proof;
    announced
}

/// `REJOIN`: opens the relay again for `name`'s chat with `wanted`, whose
/// link broke; the old relay's connections are closed.
fn rejoin_call(session: &mut Session, name: &str, wanted: &str, line: &str) -> io::Result<()> {
    let shared = session.shared();
    if !shared.config.relay {
        return session.refuse(Refusal::NoRelay, line);
    }
    let Some(fresh) = fresh_values(session)? else {
        return Ok(());
    };
    match shared.registry.rejoin(name, wanted, fresh) {
        Some(rejoined) => {
            relay::close_after_drain(rejoined.relays);
            let (peer, call) = (rejoined.peer, rejoined.call);
            log!("chat {call}: {name} brings {peer} back through the relay");
            session.reply(&ServerLine::RejoinReady {
                peer,
                call,
                keys: rejoined.keys,
            })
        }
        None => session.refuse(Refusal::NotInCallWith(wanted.to_string()), line),
    }
}

/// `LOCATE`: where the peer of `name`'s call is now. When both announced
/// `proof`, each gets fresh values for this attempt: the peer first
/// (`EVENT RETURNING`), so it can show its own when the asker knocks.
fn locate(session: &Session, name: &str, wanted: &str, line: &str) -> io::Result<()> {
    let Some(fresh) = fresh_values(session)? else {
        return Ok(());
    };
    let Some(located) = session.shared().registry.locate(name, wanted, fresh) else {
        return session.refuse(Refusal::NotInCallWith(wanted.to_string()), line);
    };
    let keys = located.keys.map(|(mine, theirs, outbox)| {
        let _ = outbox.send(&ServerLine::Returning {
            caller: name.to_string(),
            call: located.call,
            keys: theirs,
        });
        mine
    });
    session.reply(&ServerLine::Located {
        peer: located.peer,
        keys,
        addrs: located.addrs,
    })
}

/// `TRANSFER`: values for transfer `id`'s data connection in `name`'s
/// chat with `wanted`. The peer hears its own first (`EVENT TRANSFER`), so
/// it knows what to expect before the asker, answered next, can open the
/// connection.
fn transfer(session: &Session, name: &str, wanted: &str, id: FileId, line: &str) -> io::Result<()> {
    let Some(fresh) = fresh_values(session)? else {
        return Ok(());
    };
    let given = match session.shared().registry.transfer(name, wanted, id, fresh) {
        Ok(given) => given,
        Err(e) => return session.refuse(e, line),
    };
    let _ = given.peer_outbox.send(&ServerLine::Transfer {
        peer: given.asker,
        call: given.call,
        id,
        keys: given.theirs,
    });
    session.reply(&ServerLine::TransferReady {
        peer: given.peer,
        call: given.call,
        id,
        keys: given.mine,
    })
}

/// Fresh values for a call, `LOCATE` or `REJOIN`, or `None` after telling
/// the client the server cannot make them (the OS random source failed).
fn fresh_values(session: &Session) -> io::Result<Option<Fresh>> {
    let mut tokens = [Token([0; 16]); 5];
    for token in &mut tokens {
        let Some(fresh) = call_token(session)? else {
            return Ok(None);
        };
        *token = fresh;
    }
    let [token, a, b, ra, rb] = tokens;
    Ok(Some(Fresh {
        token,
        show: [a, b],
        relay: [ra, rb],
    }))
}

/// A fresh call token, or `None` after telling the client the server
/// cannot make one (the OS random source failed).
fn call_token(session: &Session) -> io::Result<Option<Token>> {
    match random_token() {
        Ok(token) => Ok(Some(token)),
        Err(e) => {
            log!("cannot make a call token: {e}");
            session.reply(&Refusal::NoCallToken.into())?;
            Ok(None)
        }
    }
}

fn resume_call(session: &Session, name: &str, peer: &str, line: &str) -> io::Result<()> {
    let Some(token) = call_token(session)? else {
        return Ok(());
    };
    match session.shared().registry.resume(name, peer, token) {
        Ok(call) => {
            log!("chat {call} resumed: {name} is still chatting with {peer}");
            session.reply(&ServerLine::Resumed {
                peer: peer.to_string(),
                call,
            })
        }
        // Whatever stops a resume, the client's remedy is the same.
        Err(_) => session.refuse(Refusal::AlreadyInCall, line),
    }
}

fn start_call(session: &Session, name: &str, callee: &str, line: &str) -> io::Result<()> {
    let Some(fresh) = fresh_values(session)? else {
        return Ok(());
    };
    let shared = session.shared();
    let registry = &shared.registry;
    let claim = match registry.claim_call(name, callee, fresh) {
        Ok(claim) => claim,
        Err(e) => {
            // A busy or away callee, or one that answers only calls that
            // ring, was called and could not be reached on its terms: a
            // missed call.
            if let CallError::Busy(callee)
            | CallError::RingsOnly(callee)
            | CallError::Away { callee, .. } = &e
                && let Some(missed) = registry.missed_call_outbox(callee)
            {
                let _ = missed.send(&ServerLine::Missed {
                    caller: name.to_string(),
                });
            }
            return match e {
                CallError::Away { callee, message } if !session.features.away => {
                    session.refuse(Refusal::AwayToOlder { callee, message }, line)
                }
                e => session.refuse(e, line),
            };
        }
    };
    let addrs = match claim.setup {
        Setup::Connect { addrs } => addrs,
        Setup::Ring => {
            log!(
                "chat {} ringing: {} calls {}",
                claim.call,
                claim.caller,
                claim.callee
            );
            // The caller hears first, so it knows the call before anything
            // about it can come back from the callee. Each is told how long
            // it rings, if it asked.
            let secs = whole_secs(shared.config.ring_timeout);
            session.reply(&ServerLine::Ringing {
                peer: claim.callee.clone(),
                call: claim.call,
                secs: session.features.ring_time.then_some(secs),
            })?;
            let pushed = claim.callee_outbox.send(&ServerLine::Ring {
                caller: claim.caller,
                call: claim.call,
                secs: claim.callee_features.ring_time.then_some(secs),
            });
            if pushed.is_err() {
                // Its connection is closing: its session ends the call and
                // tells us (EVENT HANGUP).
                return Ok(());
            }
            shared.timer.ring(claim.call);
            return Ok(());
        }
    };
    log!(
        "chat {} started: {} calls {}",
        claim.call,
        claim.caller,
        claim.callee
    );
    // The callee hears first, so it expects the caller's connection
    // before the caller can possibly make it.
    let pushed = claim.callee_outbox.send(&ServerLine::Incoming {
        caller: claim.caller.clone(),
        call: claim.call,
        keys: claim.keys[1],
    });
    if pushed.is_err() {
        if let Some(ended) = registry.hangup(name, claim.call) {
            announce_end(&ended, name, None);
        }
        return session.reply(&Refusal::CalleeSilent(claim.callee).into());
    }
    session.reply(&ServerLine::CallReady {
        peer: claim.callee,
        call: claim.call,
        keys: claim.keys[0],
        addrs,
    })
}

/// `ANSWER`: the callee takes a ringing call. It hears the token first, so
/// it expects the caller's connection before the caller, told next, can
/// make it; from then on the call is like one that never rang.
fn answer_call(session: &Session, name: &str, call: CallId, line: &str) -> io::Result<()> {
    let Some(answered) = session.shared().registry.answer(name, call) else {
        return session.refuse(Refusal::NotRinging(call), line);
    };
    log!(
        "chat {call} started: {} answered {}",
        answered.callee,
        answered.caller
    );
    // If this write fails our session ends, and with it the call: the
    // caller is told EVENT HANGUP, never the addresses.
    session.reply(&ServerLine::Answer {
        caller: answered.caller.clone(),
        call,
        keys: answered.keys[1],
    })?;
    let _ = answered.caller_outbox.send(&ServerLine::Answered {
        peer: answered.callee,
        call,
        keys: answered.keys[0],
        addrs: answered.addrs,
    });
    Ok(())
}
