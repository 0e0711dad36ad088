//! The chat peer: threads that each do one job, a core that decides, and
//! the main loop between them.
//!
//! `login` talks to the registration server, `p2pserver` listens for peers,
//! `p2pclient` dials one, `link` carries a chat, and `ui` reads stdin and
//! writes stdout. Each reports to the main loop over one bounded `mpsc`
//! channel of [`Event`]s. The main loop (`app.rs`) is a thin driver: it
//! feeds what happened to the sans-I/O state machine in `core/`, which
//! alone decides, and carries out what the core asks for, without ever
//! blocking on a socket or the terminal. This file holds what they share:
//! the configuration, the events, the errors, and [`run`], which starts the
//! threads and hands over to the main loop.

mod app;
mod clock;
mod commands;
pub mod completion;
mod core;
pub mod editor;
mod keeper;
mod link;
mod login;
mod p2pclient;
mod p2pserver;
mod terminal;
mod transcript;
mod transfers;
mod ui;
mod wrap;

use std::fmt;
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::mpsc;

use crate::protocol::CallId;
use app::{Advertise, Driver, Peering, Resumption};
use core::DialError;
use core::{LinkEnd, LinkId};
use login::{ServerConn, ServerConnId, ServerEvent};
use p2pserver::Hello;
use ui::Ui;

pub use keeper::{Kept, keep_terminal};
pub use transcript::DEFAULT_LOG_MAX;

/// How the chat runs; built from the command line by `bin/chat.rs`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The registration server, HOST:PORT.
    pub server: String,
    /// The visible name; `None` asks for it.
    pub name: Option<String>,
    /// Port to listen on for peers; 0 picks a free one.
    pub p2p_port: u16,
    /// The address peers should dial; `None` uses our end of the server
    /// connection.
    pub advertise: Option<SocketAddr>,
    /// No bell on an incoming call.
    pub quiet: bool,
    /// Answer each ring at once, without asking.
    pub auto_answer: bool,
    /// Append a transcript of what is shown to this file.
    pub log: Option<std::path::PathBuf>,
    /// The most bytes the transcript file grows to.
    pub log_max: u64,
    /// Show the time (HH:MM) before each chat line.
    pub timestamps: bool,
    /// `--grace`: how long a chat whose link broke is kept; `None` is the
    /// default.
    pub grace: Option<std::time::Duration>,
    /// `--write-timeout`: how long a peer may read none of our lines.
    pub write_timeout: Option<std::time::Duration>,
    /// `--server-timeout`: how long the server may take to answer
    /// `REGISTER`.
    pub server_timeout: Option<std::time::Duration>,
    /// `--ring`: how long a ring is counted down when the server does not
    /// say; `None` is the default.
    pub ring: Option<std::time::Duration>,
    /// `--no-resume` (for measurement): chats are not numbered nor
    /// acknowledged, and a broken link ends them, as with an older peer.
    pub no_resume: bool,
    /// `--no-typing`: neither show `bob is typing…` nor tell the peer.
    pub no_typing: bool,
    /// `--downloads DIR`: where accepted files are saved; `None` is the
    /// current directory.
    pub downloads: Option<std::path::PathBuf>,
    /// `--max-receive`: files offered bigger are refused unasked.
    pub max_receive: Option<u64>,
    /// `--file-timeout`: how long an offer waits for its answer, and a
    /// data connection that moves nothing is kept.
    pub file_timeout: Option<std::time::Duration>,
}

/// How the threads reach the main loop. Bounded, so that a peer flooding
/// lines faster than they can be shown is slowed down by TCP rather than
/// filling our memory.
pub type Events = mpsc::SyncSender<Event>;

/// Events waiting for the main loop at most (each may carry a batch).
const EVENT_QUEUE: usize = 64;

/// Everything the main loop hears about.
pub enum Event {
    /// Lines typed (all that were waiting), or EOF.
    Typed(ui::TypedBatch),
    /// Keys pressed in a raw-mode terminal.
    Keys(Vec<editor::Key>),
    /// From the server connection numbered `conn`.
    Server {
        conn: ServerConnId,
        event: ServerEvent,
    },
    /// The registration server answers again after the connection was
    /// lost; the reader is started once the main loop holds the connection.
    Reconnected(ServerConn, login::Reader),
    /// A peer connected to our p2pserver (or relay half) and said `HELLO`.
    Hello(Hello),
    /// The p2pclient finished dialing for `call`.
    Dialed {
        call: CallId,
        result: Result<p2pclient::Dialed, DialError>,
    },
    /// Lines from a peer on `link`.
    Peer {
        link: LinkId,
        msgs: crate::protocol::PeerBatch,
    },
    /// A link ended.
    LinkEnded { link: LinkId, end: LinkEnd },
    /// A link's writer caught up after falling behind.
    LinkDrained { link: LinkId },
    /// The stdout writer caught up after falling behind.
    StdoutDrained,
    /// The transcript's writer caught up after falling behind.
    LogDrained,
    /// A `FILE-KNOCK` on our listener for transfer `id` was shown our
    /// value and showed the one `keys` expect: its data connection.
    FileProven {
        id: crate::protocol::FileId,
        keys: crate::protocol::Keys,
        conn: link::Handshaken,
    },
    /// How a transfer's data goes, from its thread.
    Transfer {
        id: crate::protocol::FileId,
        event: core::TransferEvent,
    },
}

/// Why the chat stopped with an error; the binary prints it in one line.
#[derive(Debug)]
pub enum ChatError {
    Server(login::LoginError),
    Listen {
        port: u16,
        source: std::io::Error,
    },
    Name(String),
    ServerLost(String),
    /// What answered at `server` is not a p2pchat server: it said
    /// `answered` (already through the gate for untrusted text).
    NotAServer {
        server: String,
        answered: String,
    },
    /// A thread could not be started (the system is out of resources).
    Start(std::io::Error),
    /// `--log FILE` cannot be opened for appending.
    Log {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for ChatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatError::Server(e) => write!(f, "{e}"),
            ChatError::Listen { port, source } => {
                write!(f, "cannot listen for peers on port {port}: {source}")
            }
            ChatError::Name(why) => write!(f, "{why}"),
            ChatError::Start(e) => write!(f, "cannot start the chat: {e}"),
            ChatError::Log { path, source } => {
                write!(f, "cannot open the log file {}: {source}", path.display())
            }
            ChatError::NotAServer { server, answered } => {
                write!(
                    f,
                    "{server} is not a p2pchat server (it answered {answered:?})"
                )
            }
            ChatError::ServerLost(why) => {
                write!(f, "lost the connection to the registration server ({why})")
            }
        }
    }
}

impl std::error::Error for ChatError {}

impl ChatError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            ChatError::Name(_) => 2,
            _ => 1,
        }
    }
}

/// Runs the chat until the user quits.
pub fn run(config: Config) -> Result<(), ChatError> {
    let (events, inbox) = mpsc::sync_channel(EVENT_QUEUE);
    let (server, reader) =
        login::connect(&config.server, 1, events.clone()).map_err(ChatError::Server)?;
    let unspecified = match server.local_addr.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let listen_error = |source| ChatError::Listen {
        port: config.p2p_port,
        source,
    };
    let listener = TcpListener::bind((unspecified, config.p2p_port)).map_err(listen_error)?;
    let transcript = match &config.log {
        Some(path) => Some(
            transcript::Transcript::open(path, config.log_max, events.clone()).map_err(
                |source| ChatError::Log {
                    path: path.clone(),
                    source,
                },
            )?,
        ),
        None => None,
    };
    let listening = listener.local_addr().map_err(listen_error)?;
    let policy = match config.advertise {
        Some(addr) => Advertise::Pinned(addr),
        None => Advertise::Ours {
            listener: listening,
        },
    };
    // The listener is of this connection's family: it is always taken.
    let advertise = policy
        .on(server.local_addr)
        .unwrap_or_else(|| SocketAddr::new(server.local_addr.ip(), listening.port()));
    p2pserver::spawn(listener, events.clone()).map_err(ChatError::Start)?;
    let ui = Ui::new(config.quiet, events.clone());
    let stdin = ui::spawn_stdin(events.clone(), ui.reads_keys()).map_err(ChatError::Start)?;
    reader.start().map_err(ChatError::Start)?;
    let defaults = core::FileSettings::default();
    let files = core::FileSettings {
        timeout: config.file_timeout.unwrap_or(defaults.timeout),
        max_receive: config.max_receive.unwrap_or(defaults.max_receive),
        // A terminal redraws a status row; other output gets a line
        // every tenth.
        progress: if ui.reads_keys() {
            core::ProgressShown::Row
        } else {
            core::ProgressShown::Lines
        },
    };
    let transfers = transfers::Transfers::new(
        config.downloads.clone().unwrap_or_else(|| ".".into()),
        files.timeout,
        events.clone(),
    );
    let settings = core::Settings {
        server_name: config.server.clone(),
        advertise,
        name: config.name,
        answering: if config.auto_answer {
            core::Answering::Auto
        } else {
            core::Answering::Ask
        },
        typed_from: if std::io::stdin().is_terminal() {
            core::TypedFrom::Terminal
        } else {
            core::TypedFrom::Pipe
        },
        timers: core::Timers {
            grace: config.grace.unwrap_or(core::Timers::default().grace),
            ringing: config.ring.unwrap_or(core::Timers::default().ringing),
            write: config
                .write_timeout
                .unwrap_or(core::Timers::default().write),
            answer: config
                .server_timeout
                .unwrap_or(core::Timers::default().answer),
            ..core::Timers::default()
        },
        // Only a terminal has a line being typed to tell of, and a row to
        // show the peer's on.
        typing: if config.no_typing || !ui.reads_keys() {
            core::TypingNotices::Off
        } else {
            core::TypingNotices::On
        },
        files: Some(files),
    };
    let record = app::Record {
        transcript,
        timestamps: config.timestamps,
    };
    let peering = Peering {
        advertise: policy,
        resumption: if config.no_resume {
            Resumption::Off
        } else {
            Resumption::On
        },
        transfers,
    };
    Driver::new(settings, ui, stdin, server, events, record, peering).run(inbox)
}
