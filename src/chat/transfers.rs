//! The driver's side of file transfers: the files themselves and the data
//! connections their bytes go on, one thread per transfer.
//!
//! The core decides ([`super::core`]'s `files`); this carries out. The
//! server issues each side one-time values for a transfer's data
//! connection (`TRANSFER`, `EVENT TRANSFER`), handed here by the core
//! ([`Transfers::values`]); the chat's caller opens the connection once the
//! callee says it has its own (`FILE-READY`, [`Transfers::peer_ready`]).
//! It goes the way the chat's link went: to the address the caller's link
//! reached, or, when the chat is relayed, from both sides to the server's
//! relay (`FILE-RELAY <call> <id> <relay value>`, answered `OK RELAYED`),
//! which then carries raw bytes. On it, either way:
//!
//! ```text
//! caller -> FILE-KNOCK <id>
//! callee -> PROOF <callee's value>       (checked by the caller)
//! caller -> FILE-HELLO <caller's value>  (checked by the callee)
//! receiver -> FILE-FROM <offset>
//! sender -> raw bytes, exactly size - offset, then it ends its direction
//! ```
//!
//! Each copy goes through one fixed buffer whatever the file's size, and
//! the receiver never writes more than the size offered.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::core::{Direction, FileFacts, Input, Opener, TransferEvent};
use super::link::Handshaken;
use super::p2pserver::{self, HandshakeSlot, Handshakes};
use super::{Event, Events};
use crate::connection::{LineReader, is_timeout, write_line};
use crate::downloads;
use crate::protocol::{CallId, FileId, Keys, PeerMessage, Request, ServerLine};

/// The one buffer each copy goes through.
const COPY_BUFFER: usize = 256 * 1024;

/// How often a transfer's progress is told to the main loop, besides at
/// each tenth.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// How long a data connection's handshake may take, each line.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest line on a data connection before its bytes.
const MAX_DATA_LINE: usize = 256;

/// The transfers a chat's driver holds: files opened to offer, and
/// transfers whose data is being moved.
pub(super) struct Transfers {
    /// `--downloads`.
    downloads: PathBuf,
    /// How long a data connection may carry nothing before it is given up.
    stall: Duration,
    /// Files opened for our offers, until the peer takes them.
    offered: HashMap<FileId, File>,
    moving: HashMap<FileId, Moving>,
    /// Where the chat's link reached, where our data connections go when
    /// we are the caller of a direct chat.
    chat_addr: Option<SocketAddr>,
    /// `FILE-KNOCK`s being answered, bounded as the listener's handshakes
    /// are: a stranger's knock neither takes a transfer's connection nor
    /// keeps the peer's out.
    knocks: Arc<Mutex<Handshakes>>,
    events: Events,
}

struct Moving {
    size: u64,
    opener: Opener,
    /// The server's values for this attempt, with the call and whether
    /// the chat is relayed.
    values: Option<Values>,
    /// The callee has its values (`FILE-READY`): the caller may open.
    ready: bool,
    /// The file, kept for as long as the transfer is: a data connection
    /// cut with the chat's link goes on from where it was on a new one.
    kept: Job,
    /// Whether a data thread has been given the file on this connection.
    taken: bool,
    /// The `.part` of a file being received.
    part: Option<PathBuf>,
    /// The data connection, shared with its thread, to stop it.
    conn: Arc<Mutex<DataConn>>,
    /// Dropped with this connection's attempt (a new one, or the end):
    /// its watch ([`Transfers::watch`]) then ends at once.
    _watch: Sender<()>,
}

#[derive(Debug, Clone, Copy)]
struct Values {
    call: CallId,
    keys: Keys,
    relayed: bool,
}

/// How a data thread reaches the peer.
enum Way {
    /// The caller dials the address its chat link reached.
    Dial(SocketAddr),
    /// The callee's answer to a `FILE-KNOCK` on its listener, which
    /// showed the right value ([`Transfers::proven`]).
    Proven(Handshaken),
    /// Both sides dial the server's relay; `opener` says which speaks
    /// first on it.
    Relay {
        server: SocketAddr,
        call: CallId,
        opener: Opener,
    },
}

/// Where a transfer's data connection is, as its stop sees it.
enum DataConn {
    Waiting,
    Open(TcpStream),
    /// Stopped by the core: the thread's end is no news.
    Stopped,
}

enum Job {
    Send(File),
    Receive(downloads::Reserved),
}

impl Job {
    /// A handle on the same file, for a data thread.
    fn handle(&self) -> io::Result<Job> {
        Ok(match self {
            Job::Send(file) => Job::Send(file.try_clone()?),
            Job::Receive(r) => Job::Receive(downloads::Reserved {
                path: r.path.clone(),
                part: r.part.clone(),
                file: r.file.try_clone()?,
            }),
        })
    }
}

impl Transfers {
    pub(super) fn new(downloads: PathBuf, stall: Duration, events: Events) -> Transfers {
        Transfers {
            downloads,
            stall,
            offered: HashMap::new(),
            moving: HashMap::new(),
            chat_addr: None,
            knocks: Arc::default(),
            events,
        }
    }

    /// A chat link reached `addr` (we dialed it).
    pub(super) fn dialed(&mut self, addr: SocketAddr) {
        self.chat_addr = Some(addr);
    }

    /// `Output::OpenFile`: opens `path` to offer it as `id`.
    pub(super) fn open(&mut self, id: FileId, path: &str) -> Input {
        let result = open_to_send(Path::new(path)).map(|(file, facts)| {
            self.offered.insert(id, file);
            facts
        });
        Input::FileOpened { id, result }
    }

    /// `Output::StartTransfer`: the file is made ready for its data
    /// connection; what to tell the core at once, if it cannot start.
    pub(super) fn start(
        &mut self,
        id: FileId,
        direction: Direction,
        size: u64,
        opener: Opener,
    ) -> Option<Input> {
        if self.moving.contains_key(&id) {
            return self.restart(id);
        }
        let (job, part) = match direction {
            Direction::Send => match self.offered.remove(&id) {
                Some(file) => (Job::Send(file), None),
                None => return Some(failed(id, "the file is no longer open".into())),
            },
            Direction::Receive { name } => match downloads::reserve(&self.downloads, &name) {
                Ok(reserved) => {
                    let part = reserved.part.clone();
                    (Job::Receive(reserved), Some(part))
                }
                Err(e) => return Some(failed(id, format!("cannot save it: {e}"))),
            },
        };
        let conn = Arc::new(Mutex::new(DataConn::Waiting));
        let watch = match self.watch(id, &conn) {
            Ok(watch) => watch,
            Err(input) => {
                remove_part(part.as_deref());
                return Some(input);
            }
        };
        self.moving.insert(
            id,
            Moving {
                size,
                opener,
                values: None,
                ready: false,
                kept: job,
                taken: false,
                part,
                conn,
                _watch: watch,
            },
        );
        None
    }

    /// Transfer `id`, cut with the chat's link, goes on once the chat is
    /// back: fresh values, a new connection, from the bytes received.
    fn restart(&mut self, id: FileId) -> Option<Input> {
        let conn = Arc::new(Mutex::new(DataConn::Waiting));
        let watch = match self.watch(id, &conn) {
            Ok(watch) => watch,
            Err(input) => return Some(input),
        };
        let moving = self.moving.get_mut(&id)?;
        if let DataConn::Open(old) = std::mem::replace(&mut *lock(&moving.conn), DataConn::Stopped)
        {
            let _ = old.shutdown(Shutdown::Both);
        }
        moving.conn = conn;
        // The old attempt's watch ends now, not a file timeout later: a
        // peer that brings the chat back again and again holds no thread.
        moving._watch = watch;
        moving.values = None;
        moving.ready = false;
        moving.taken = false;
        None
    }

    /// Fails transfer `id` if its data connection is not open within the
    /// file timeout: a peer that never asks the server for its values or
    /// never dials holds nothing of ours for longer. The watch
    /// ends at once when the sender it returns is dropped.
    fn watch(&self, id: FileId, conn: &Arc<Mutex<DataConn>>) -> Result<Sender<()>, Input> {
        let conn = conn.clone();
        let events = self.events.clone();
        let wait = self.stall;
        let (watch, over) = mpsc::channel::<()>();
        thread::Builder::new()
            .name("file-watch".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                if over.recv_timeout(wait) != Err(RecvTimeoutError::Timeout) {
                    return;
                }
                let mut conn = lock(&conn);
                if matches!(*conn, DataConn::Waiting) {
                    *conn = DataConn::Stopped;
                    drop(conn);
                    let why = "the data connection never opened".to_string();
                    let event = TransferEvent::Failed(why);
                    let _ = events.send(Event::Transfer { id, event });
                }
            })
            .map(|_| watch)
            .map_err(|e| failed(id, format!("cannot start it: {e}")))
    }

    /// `Output::TransferKeys`: the server's values for `id`'s data
    /// connection. The callee of a relayed chat opens its relay half now;
    /// the caller opens once the callee is ready too.
    pub(super) fn values(
        &mut self,
        id: FileId,
        call: CallId,
        keys: Keys,
        relayed: bool,
        server: SocketAddr,
    ) -> Option<Input> {
        let moving = self.moving.get_mut(&id)?;
        moving.values = Some(Values {
            call,
            keys,
            relayed,
        });
        match (moving.opener, relayed) {
            (Opener::Await, false) => None,
            (Opener::Await, true) => self.connect_data(id, server),
            (Opener::Dial, _) if moving.ready => self.connect_data(id, server),
            (Opener::Dial, _) => None,
        }
    }

    /// `Output::PeerReady`: the callee has its values; the caller opens.
    pub(super) fn peer_ready(&mut self, id: FileId, server: SocketAddr) -> Option<Input> {
        let moving = self.moving.get_mut(&id)?;
        if moving.opener != Opener::Dial {
            return None;
        }
        moving.ready = true;
        if moving.values.is_some() {
            self.connect_data(id, server)
        } else {
            None
        }
    }

    /// Opens `id`'s data connection the way its chat went: the address
    /// the chat's link reached, or the relay.
    fn connect_data(&mut self, id: FileId, server: SocketAddr) -> Option<Input> {
        let chat_addr = self.chat_addr;
        let moving = self.moving.get_mut(&id)?;
        let values = moving.values?;
        let way = match (values.relayed, moving.opener, chat_addr) {
            (true, opener, _) => Way::Relay {
                server,
                call: values.call,
                opener,
            },
            (false, Opener::Dial, Some(addr)) => Way::Dial(addr),
            (false, Opener::Dial, None) => return Some(failed(id, "no address to dial".into())),
            (false, Opener::Await, _) => return None,
        };
        self.launch(id, values.keys, way)
    }

    /// Starts `id`'s data thread on `way`, once per connection.
    fn launch(&mut self, id: FileId, keys: Keys, way: Way) -> Option<Input> {
        let moving = self.moving.get_mut(&id)?;
        if std::mem::replace(&mut moving.taken, true) {
            return None;
        }
        let job = match moving.kept.handle() {
            Ok(job) => job,
            Err(e) => return Some(failed(id, e.to_string())),
        };
        let data = Data {
            id,
            size: moving.size,
            keys,
            conn: moving.conn.clone(),
            stall: self.stall,
            events: self.events.clone(),
        };
        spawn(id, move || data.run(way, job)).err()
    }

    /// A data connection knocked for `id` on our listener: shown our value
    /// if we wait for one for `id` (a direct chat's callee with its values),
    /// else closed. Every knock is answered, on a thread of its own, and the
    /// first to show the peer's value is the transfer's connection
    /// ([`Transfers::proven`]): a stranger who knocks first takes nothing.
    pub(super) fn knocked(&mut self, id: FileId, conn: Handshaken) -> Option<Input> {
        let moving = self.moving.get(&id)?;
        let values = moving.values?;
        if moving.opener != Opener::Await || values.relayed || moving.taken {
            return None;
        }
        let from = conn.stream.peer_addr().ok()?.ip();
        let slot = p2pserver::slot(&self.knocks, from, &conn.stream)?;
        let events = self.events.clone();
        let _ = thread::Builder::new()
            .name("file-knock".into())
            .stack_size(64 * 1024)
            .spawn(move || answer_knock(id, values.keys, conn, slot, events));
        None
    }

    /// A knock for `id` showed the value `keys` expect: the transfer's data
    /// connection, if those are still its values and it has none yet.
    pub(super) fn proven(&mut self, id: FileId, keys: Keys, conn: Handshaken) -> Option<Input> {
        let moving = self.moving.get(&id)?;
        if moving.values.map(|v| v.keys) != Some(keys) {
            return None;
        }
        self.launch(id, keys, Way::Proven(conn))
    }

    /// Transfer `id` finished: nothing of it is held any more.
    pub(super) fn finished(&mut self, id: FileId) {
        self.moving.remove(&id);
    }

    /// `Output::StopTransfer`: its connection is closed, its file too, and
    /// what arrived is removed.
    pub(super) fn stop(&mut self, id: FileId) {
        self.offered.remove(&id);
        let Some(moving) = self.moving.remove(&id) else {
            return;
        };
        if let DataConn::Open(stream) =
            std::mem::replace(&mut *lock(&moving.conn), DataConn::Stopped)
        {
            let _ = stream.shutdown(Shutdown::Both);
        }
        remove_part(moving.part.as_deref());
    }
}

fn failed(id: FileId, why: String) -> Input {
    Input::Transfer {
        id,
        event: TransferEvent::Failed(why),
    }
}

fn remove_part(part: Option<&Path>) {
    if let Some(part) = part {
        let _ = std::fs::remove_file(part);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Shows our value to a `FILE-KNOCK` for `id` and reads its `FILE-HELLO`:
/// the connection goes to the main loop only if it showed the value `keys`
/// expect. A stranger's is closed, and the transfer never hears of it.
fn answer_knock(id: FileId, keys: Keys, conn: Handshaken, slot: HandshakeSlot, events: Events) {
    let Handshaken {
        mut stream,
        mut reader,
        route,
    } = conn;
    let proven = stream
        .set_write_timeout(Some(HANDSHAKE_TIMEOUT))
        .and_then(|()| write_line(&mut stream, &PeerMessage::Proof(keys.show())))
        .and_then(|()| read_message(&mut reader))
        .is_ok_and(
            |hello| matches!(hello, PeerMessage::FileHello { value } if keys.accepts(&value)),
        );
    drop(slot);
    if proven {
        let conn = Handshaken {
            stream,
            reader,
            route,
        };
        let _ = events.send(Event::FileProven { id, keys, conn });
    }
}

/// Starts a transfer's data thread; says so if it cannot.
fn spawn(id: FileId, work: impl FnOnce() + Send + 'static) -> Result<(), Input> {
    thread::Builder::new()
        .name("file-data".into())
        .spawn(work)
        .map(|_| ())
        .map_err(|e| failed(id, format!("cannot start it: {e}")))
}

/// Opens a file to offer: a regular file, its base name and size.
fn open_to_send(path: &Path) -> Result<(File, FileFacts), String> {
    // Asked before opening: opening a pipe (or a device) can wait for a
    // writer without end, and this runs on the chat's loop.
    let not_regular = || "not a regular file".to_string();
    if !std::fs::metadata(path)
        .map_err(|e| e.to_string())?
        .is_file()
    {
        return Err(not_regular());
    }
    let file = File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((
        file,
        FileFacts {
            name,
            size: meta.len(),
        },
    ))
}

/// One transfer's data connection, on a thread of its own.
struct Data {
    id: FileId,
    size: u64,
    /// What we show on the connection, and what we expect to be shown.
    keys: Keys,
    conn: Arc<Mutex<DataConn>>,
    stall: Duration,
    events: Events,
}

impl Data {
    fn tell(&self, event: TransferEvent) {
        let _ = self.events.send(Event::Transfer { id: self.id, event });
    }

    fn run(self, way: Way, job: Job) {
        let result = self
            .connect(way)
            .and_then(|(stream, reader)| self.move_bytes(stream, reader, job));
        self.end(result);
    }

    fn end(&self, result: Result<Option<String>, Broke>) {
        let event = match result {
            Ok(saved_as) => TransferEvent::Finished { saved_as },
            Err(Broke::Cut(e)) if is_timeout(&e) => {
                TransferEvent::Cut(format!("nothing moved for {} s", self.stall.as_secs()))
            }
            Err(Broke::Cut(e)) => TransferEvent::Cut(e.to_string()),
            Err(Broke::Ours(why)) => TransferEvent::Failed(why),
        };
        let stopped = std::mem::replace(&mut *lock(&self.conn), DataConn::Stopped);
        if !matches!(stopped, DataConn::Stopped) {
            self.tell(event);
        }
    }

    /// The data connection, opened `way` and shown the right values.
    fn connect(&self, way: Way) -> Result<(TcpStream, LineReader<TcpStream>), Broke> {
        let (mut stream, mut reader, opener) = match way {
            Way::Dial(addr) => {
                let stream = TcpStream::connect_timeout(&addr, HANDSHAKE_TIMEOUT)?;
                let reader = LineReader::with_limit(stream.try_clone()?, MAX_DATA_LINE);
                (stream, reader, Opener::Dial)
            }
            Way::Proven(conn) => {
                // Shown and checked already, each way.
                self.hold(&conn.stream)?;
                let _ = conn.stream.set_nodelay(true);
                return Ok((conn.stream, conn.reader));
            }
            Way::Relay {
                server,
                call,
                opener,
            } => {
                let (stream, mut reader) = self.through_relay(server, call)?;
                if opener == Opener::Await {
                    match read_message(&mut reader)? {
                        PeerMessage::FileKnock { id } if id == self.id => {}
                        _ => return Err(ours("the relay carried something else than a knock")),
                    }
                }
                (stream, reader, opener)
            }
        };
        self.hold(&stream)?;
        let _ = stream.set_nodelay(true);
        stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
        match opener {
            Opener::Dial => {
                write_line(&mut stream, &PeerMessage::FileKnock { id: self.id })?;
                match read_message(&mut reader)? {
                    PeerMessage::Proof(value) if self.keys.accepts(&value) => {}
                    _ => return Err(ours("someone else answered at the peer's address")),
                }
                let value = self.keys.show();
                write_line(&mut stream, &PeerMessage::FileHello { value })?;
            }
            Opener::Await => {
                write_line(&mut stream, &PeerMessage::Proof(self.keys.show()))?;
                match read_message(&mut reader)? {
                    PeerMessage::FileHello { value } if self.keys.accepts(&value) => {}
                    _ => return Err(ours("the data connection showed the wrong value")),
                }
            }
        }
        Ok((stream, reader))
    }

    /// Our half of the server's relay for this transfer, joined to the
    /// peer's (`OK RELAYED`); on it, the callee first reads the caller's
    /// `FILE-KNOCK`, as it would on its listener.
    fn through_relay(
        &self,
        server: SocketAddr,
        call: CallId,
    ) -> Result<(TcpStream, LineReader<TcpStream>), Broke> {
        let mut stream = TcpStream::connect_timeout(&server, HANDSHAKE_TIMEOUT)?;
        self.hold(&stream)?;
        stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
        let mut reader = LineReader::with_limit(stream.try_clone()?, MAX_DATA_LINE);
        let request = Request::FileRelay {
            call,
            id: self.id,
            token: self.keys.relay(),
        };
        write_line(&mut stream, &request)?;
        // The peer's half may come as late as the server's join timeout.
        let line = reader
            .read_line_by(Some(Instant::now() + self.stall))
            .map_err(|e| io::Error::other(format!("the relay did not answer: {e}")))?;
        match ServerLine::parse(&line) {
            Ok(ServerLine::Relayed { .. }) => Ok((stream, reader)),
            Ok(ServerLine::Error { message, .. }) => {
                Err(Broke::Ours(format!("the relay refused it: {message}")))
            }
            _ => Err(Broke::Ours(format!("the relay answered {line:?}"))),
        }
    }

    /// Keeps a handle on the connection, so that a stop can close it.
    fn hold(&self, stream: &TcpStream) -> Result<(), Broke> {
        let mut conn = lock(&self.conn);
        if matches!(*conn, DataConn::Stopped) {
            return Err(ours("stopped"));
        }
        *conn = DataConn::Open(stream.try_clone()?);
        Ok(())
    }

    fn move_bytes(
        &self,
        mut stream: TcpStream,
        mut reader: LineReader<TcpStream>,
        job: Job,
    ) -> Result<Option<String>, Broke> {
        stream.set_write_timeout(Some(self.stall))?;
        stream.set_read_timeout(Some(self.stall))?;
        match job {
            Job::Send(mut file) => {
                let offset = match read_message(&mut reader)? {
                    PeerMessage::FileFrom { offset } if offset <= self.size => offset,
                    _ => return Err(ours("the receiver asked for bytes the file does not have")),
                };
                file.seek(SeekFrom::Start(offset)).map_err(local)?;
                let mut source = file.take(self.size - offset);
                let sent =
                    self.copy(&mut source, &mut stream, offset)
                        .map_err(|(end, e)| match end {
                            End::Read => local(e),
                            End::Write => Broke::Cut(e),
                        })?;
                if sent < self.size {
                    return Err(ours("the file shrank while it was sent"));
                }
                stream.shutdown(Shutdown::Write)?;
                Ok(None)
            }
            Job::Receive(reserved) => {
                let mut file = reserved.file;
                // What arrived before a cut stays: the rest comes after it.
                let offset = file.seek(SeekFrom::End(0)).map_err(local)?.min(self.size);
                write_line(&mut stream, &PeerMessage::FileFrom { offset })?;
                let mut source = (&stream).take(self.size - offset);
                let got =
                    self.copy(&mut source, &mut file, offset)
                        .map_err(|(end, e)| match end {
                            End::Read => Broke::Cut(e),
                            End::Write => local(e),
                        })?;
                if got < self.size {
                    // The sender may say why, on the chat's link.
                    return Err(Broke::Cut(io::Error::other(format!(
                        "the file came short: {got} of {} bytes",
                        self.size
                    ))));
                }
                // An honest sender ends its direction after the last byte
                // offered; one more byte is a size lie, and nothing past
                // the size offered was written.
                let mut more = [0u8; 1];
                if (&stream).read(&mut more)? > 0 {
                    return Err(Broke::Ours(format!(
                        "the sender sent more than the {} bytes offered",
                        self.size
                    )));
                }
                file.flush().map_err(local)?;
                drop(file);
                let saved = downloads::finish(&reserved.part, &reserved.path).map_err(local)?;
                let name = saved
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Ok(Some(name))
            }
        }
    }

    /// Copies until `from` ends, telling progress; says how far it got
    /// (counting the `start` bytes already across), or which end failed.
    fn copy(
        &self,
        from: &mut impl Read,
        to: &mut impl Write,
        start: u64,
    ) -> Result<u64, (End, io::Error)> {
        let mut buf = vec![0u8; COPY_BUFFER];
        let mut done = start;
        let mut told = Instant::now();
        let tenth = |done: u64| (done * 10).checked_div(self.size).unwrap_or(10);
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => return Ok(done),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err((End::Read, e)),
            };
            to.write_all(&buf[..n]).map_err(|e| (End::Write, e))?;
            let before = tenth(done);
            done += n as u64;
            // Every tenth is heard (a line each, when output is piped),
            // and the row's rate at least every PROGRESS_EVERY.
            if tenth(done) != before || told.elapsed() >= PROGRESS_EVERY {
                told = Instant::now();
                self.tell(TransferEvent::Progress(done));
            }
        }
    }
}

/// Which end of a copy failed.
enum End {
    Read,
    Write,
}

/// Why a data connection's work stopped.
enum Broke {
    /// The connection broke or came short: the peer may say why, on the
    /// chat's link.
    Cut(io::Error),
    /// Our own reason: our file, our disk, or what the peer did wrong.
    Ours(String),
}

impl From<io::Error> for Broke {
    fn from(e: io::Error) -> Broke {
        Broke::Cut(e)
    }
}

fn ours(why: &str) -> Broke {
    Broke::Ours(why.to_string())
}

/// An error of our own file or disk.
fn local(e: io::Error) -> Broke {
    Broke::Ours(e.to_string())
}

fn read_message(reader: &mut LineReader<TcpStream>) -> io::Result<PeerMessage> {
    let line = reader
        .read_line_by(Some(Instant::now() + HANDSHAKE_TIMEOUT))
        .map_err(|e| io::Error::other(e.to_string()))?;
    PeerMessage::parse(&line).map_err(|e| io::Error::other(e.to_string()))
}
