//! The server's relay: when two peers cannot connect to each other, each
//! opens a connection to the server with `RELAY <call-id> <token>`, and the
//! server copies lines between the two.
//!
//! The caller's connection comes first: the server checks the token, asks
//! the callee (through its registration connection) to open the second, and
//! waits for it in [`Relays`]. When it comes, each connection's own thread
//! copies the lines it reads to the other connection, under the same line
//! limit as every other input and at most `--relay-rate` bytes a second.
//!
//! A side that closes is half-closed, as TCP means it: everything it sent
//! is delivered to the other side, which then reads EOF, and the other
//! direction goes on until it ends too; only then are both connections
//! closed. A write that fails (the other side is gone) stops only that
//! direction. The registry hands the relay's connections back when the
//! call ends, and the server closes them: a relay never outlives its call.
//! At most `--max-relays` relays are open at once.
//!
//! A relayed chat's files ride its relay (#23): each party opens a
//! connection with `FILE-RELAY <call> <id> <value>` (values from
//! `TRANSFER`), in either order; the first waits for the second, and then
//! the server copies raw bytes both ways (any bytes, no lines), each
//! direction through one fixed buffer at most `--relay-file-rate` bytes a
//! second, with the same half-close. A file relay takes no relay slot of
//! its own: its chat's counts for both.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant};

use crate::connection::{LineReader, Outbox, ReadError, SharedStream, is_timeout};
use crate::log;
use crate::protocol::{CallId, ErrorCode, FileId, MAX_PEER_LINE, ServerLine, Token};
use crate::registry::{ConnId, FileRelayError, Meeting, Registry, RelayTicket};

/// How long the caller's relay connection waits for the callee's.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A relayed chat silent this long is over (peers ping every 5 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes one direction writes at once: lines already read are sent
/// together, one system call for many.
const BATCH: usize = 16 * 1024;

/// A file relay through which nothing moved, either way, this long is over.
const FILE_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The one buffer each direction of a file relay copies through.
const FILE_CHUNK: usize = 64 * 1024;

/// The second half of a relay, handed to the first.
struct Join {
    /// Where the first half writes what it reads.
    writer: Outbox,
    /// Where the first half answers with its own writer and the pair's
    /// shared ending.
    back: Sender<(Outbox, Arc<Ends>)>,
}

/// How many bytes a second each direction may carry, and how many relays
/// may be open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLimits {
    pub max_relays: usize,
    /// Most relays whose first half comes from one source address: one
    /// client cannot hold them all.
    pub max_relays_per_ip: usize,
    /// Bytes a second per direction; 0 for no limit.
    pub rate: u64,
    /// Bytes a second per direction of a file relay, apart from its
    /// chat's; 0 for no limit.
    pub file_rate: u64,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_relays: 256,
            max_relays_per_ip: 16,
            rate: 1024 * 1024,
            file_rate: 4 * 1024 * 1024,
        }
    }
}

/// Why a relay connection is refused; the reply's code and text are
/// written once, in its `From` impl for `ServerLine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RelayRefusal {
    /// The token opens no call's relay (wrong, expired, or both halves in).
    NoSuchCall,
    /// The callee's registration connection failed while being asked.
    CalleeSilent,
    /// The callee never opened its half within [`JOIN_TIMEOUT`].
    CalleeDidNotJoin,
    /// The callee's half came, but the caller's had given up.
    CallerGone,
    /// `--max-relays` relays are open.
    Full,
    /// `--max-relays-per-ip` relays are open from this address.
    FullForAddress,
    /// A file relay half came with no party's unused value for the
    /// transfer.
    NoSuchTransfer,
    /// A file relay half for a chat that is not relayed now.
    NotRelayed(CallId),
    /// The chat holds as many file relay connections as it may.
    FilesFull,
}

impl From<RelayRefusal> for ServerLine {
    fn from(why: RelayRefusal) -> ServerLine {
        let (code, message) = match why {
            RelayRefusal::NoSuchCall => (
                ErrorCode::BadToken,
                "no such call, or its relay is already open or expired",
            ),
            RelayRefusal::CalleeSilent => (
                ErrorCode::Unreachable,
                "the peer is not answering the server",
            ),
            RelayRefusal::CalleeDidNotJoin => {
                (ErrorCode::Unreachable, "the peer did not join the relay")
            }
            RelayRefusal::CallerGone => (
                ErrorCode::Unreachable,
                "the caller's relay connection is gone",
            ),
            RelayRefusal::Full => (
                ErrorCode::ServerFull,
                "too many relayed chats at once; try again later",
            ),
            RelayRefusal::FullForAddress => (
                ErrorCode::ServerFull,
                "too many relayed chats from your address at once; try again later",
            ),
            RelayRefusal::NoSuchTransfer => (
                ErrorCode::BadToken,
                "no such transfer, or its value is spent or expired",
            ),
            RelayRefusal::NotRelayed(call) => {
                return ServerLine::error(
                    ErrorCode::BadToken,
                    format!("chat {call} is not relayed now; open the file's connection directly"),
                );
            }
            RelayRefusal::FilesFull => (
                ErrorCode::ServerFull,
                "too many file connections in this chat at once",
            ),
        };
        ServerLine::error(code, message)
    }
}

/// The relays: first halves waiting for their second, by call; how many
/// are open, and the bytes they carried.
pub struct Relays {
    /// First halves waiting for their second, each with its own number:
    /// a `REJOIN` may open a call's relay again while an older first half
    /// still waits, and that one must not take the newer's place away.
    waiting: Mutex<HashMap<CallId, (u64, Sender<Join>)>>,
    /// File relay halves waiting for their other half, by meeting.
    files: Mutex<HashMap<Meeting, Sender<Join>>>,
    /// The rate each party's file bytes share, by call and party: a chat
    /// that opens many file relays at once gets `--relay-file-rate` each
    /// way, not that many times it.
    file_rates: Mutex<HashMap<(CallId, usize), Weak<SharedBucket>>>,
    next_wait: AtomicU64,
    limits: RelayLimits,
    open: AtomicUsize,
    /// Open relays by the source address of their first half.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    bytes: AtomicU64,
    refused: AtomicU64,
}

impl Relays {
    pub fn new(limits: RelayLimits) -> Relays {
        Relays {
            waiting: Mutex::default(),
            files: Mutex::default(),
            file_rates: Mutex::default(),
            next_wait: AtomicU64::new(0),
            limits,
            open: AtomicUsize::new(0),
            per_ip: Mutex::default(),
            bytes: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Relays open now (each counted once, by its first half).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Bytes relayed since the server started, both directions.
    pub fn bytes_relayed(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Relay connections refused for want of a slot (`--max-relays`).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// A slot for a relay whose first half comes from `ip`, within both
    /// caps, or why not.
    fn slot(&self, ip: IpAddr) -> Result<Slot<'_>, RelayRefusal> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = per_ip.get(&ip).copied().unwrap_or(0);
        if mine >= self.limits.max_relays_per_ip {
            return Err(RelayRefusal::FullForAddress);
        }
        let max = self.limits.max_relays;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| RelayRefusal::Full)?;
        per_ip.insert(ip, mine + 1);
        Ok(Slot { relays: self, ip })
    }

    /// Files a first half as the one `call`'s second half joins; returns
    /// its number, for [`Relays::give_up`].
    fn insert(&self, call: CallId, first: Sender<Join>) -> u64 {
        let wait = self.next_wait.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(call, (wait, first));
        wait
    }

    /// The first half the second half of `call` joins.
    fn take(&self, call: CallId) -> Option<Sender<Join>> {
        self.lock().remove(&call).map(|(_, first)| first)
    }

    /// A first half stops waiting: its entry goes, unless a newer one for
    /// the same call has taken its place.
    fn give_up(&self, call: CallId, wait: u64) {
        let mut waiting = self.lock();
        if waiting.get(&call).is_some_and(|(w, _)| *w == wait) {
            waiting.remove(&call);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CallId, (u64, Sender<Join>)>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One open relay, counted against `max_relays` and its address's cap
/// while it lives.
struct Slot<'a> {
    relays: &'a Relays,
    ip: IpAddr,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.relays.open.fetch_sub(1, Ordering::AcqRel);
        let mut per_ip = self
            .relays
            .per_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(mine) = per_ip.get_mut(&self.ip) {
            *mine -= 1;
            if *mine == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// The two directions of one relay: the last to end closes both
/// connections. A file relay also notes when bytes last moved either way,
/// so a direction that waits (a receiver says nothing while a file comes)
/// is not taken for idle.
struct Ends {
    ended: AtomicUsize,
    born: Instant,
    /// Milliseconds after `born` that bytes last moved, either way.
    moved: AtomicU64,
}

impl Default for Ends {
    fn default() -> Ends {
        Ends {
            ended: AtomicUsize::new(0),
            born: Instant::now(),
            moved: AtomicU64::new(0),
        }
    }
}

impl Ends {
    /// One direction ended; whether it was the last.
    fn finish(&self) -> bool {
        self.ended.fetch_add(1, Ordering::AcqRel) == 1
    }

    /// Bytes moved, one way or the other.
    fn moved(&self) {
        let now = self.born.elapsed().as_millis() as u64;
        self.moved.fetch_max(now, Ordering::Relaxed);
    }

    /// How long nothing has moved either way.
    fn still_for(&self) -> Duration {
        let moved = Duration::from_millis(self.moved.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(moved)
    }
}

/// Serves one relay connection whose first line was `RELAY call token`;
/// returns when the relayed chat is over. `own` writes to this connection.
pub fn serve(
    registry: &Registry<Outbox>,
    relays: &Relays,
    own: &Outbox,
    reader: LineReader<SharedStream>,
    call: CallId,
    token: Token,
    from: IpAddr,
) {
    let refuse = |why: RelayRefusal| {
        let _ = own.send(&ServerLine::from(why));
    };
    match registry.claim_relay(call, &token, own.clone()) {
        None => refuse(RelayRefusal::NoSuchCall),
        Some(RelayTicket::First {
            caller,
            callee,
            callee_outbox,
            rejoin,
        }) => {
            let _slot = match relays.slot(from) {
                Ok(slot) => slot,
                Err(why) => {
                    relays.refused.fetch_add(1, Ordering::Relaxed);
                    log!(
                        "chat {call}: relay refused ({why:?}), {} open",
                        relays.open()
                    );
                    return refuse(why);
                }
            };
            let (first, joins) = mpsc::channel();
            let wait = relays.insert(call, first);
            let ask = match rejoin {
                Some(keys) => ServerLine::RejoinRequested {
                    caller: caller.clone(),
                    call,
                    keys,
                },
                None => ServerLine::RelayRequested { call },
            };
            if callee_outbox.send(&ask).is_err() {
                relays.give_up(call, wait);
                return refuse(RelayRefusal::CalleeSilent);
            }
            log!("chat {call}: {caller} cannot reach {callee} directly; relaying");
            let Ok(join) = joins.recv_timeout(JOIN_TIMEOUT) else {
                relays.give_up(call, wait);
                return refuse(RelayRefusal::CalleeDidNotJoin);
            };
            let ends = Arc::new(Ends::default());
            if own.send(&ServerLine::Relayed { call }).is_err()
                || join.back.send((own.clone(), ends.clone())).is_err()
            {
                return join.writer.close();
            }
            copy(reader, own, &join.writer, &ends, relays);
            log!("chat {call}: relay closed");
        }
        Some(RelayTicket::Second) => {
            let Some(first) = relays.take(call) else {
                return refuse(RelayRefusal::CallerGone);
            };
            if own.send(&ServerLine::Relayed { call }).is_err() {
                return;
            }
            let (back, answer) = mpsc::channel();
            let joined = first.send(Join {
                writer: own.clone(),
                back,
            });
            match (joined, answer.recv_timeout(JOIN_TIMEOUT)) {
                (Ok(()), Ok((peer, ends))) => copy(reader, own, &peer, &ends, relays),
                _ => own.close(),
            }
        }
    }
}

/// Copies lines from `reader` (this connection, written through `own`) to
/// `to` until this side ends, at most `rate` bytes a second; then
/// half-closes `to`, so the other side reads EOF after the last line. A
/// failed write to `to` stops the copying but not the reading: the other
/// direction may still be delivering. The second direction to end closes
/// both connections.
fn copy(
    mut reader: LineReader<SharedStream>,
    own: &Outbox,
    to: &Outbox,
    ends: &Ends,
    relays: &Relays,
) {
    // A chat line may be longer than a request: a pasted paragraph.
    reader.set_limit(MAX_PEER_LINE);
    let mut bucket = Bucket::new(relays.limits.rate);
    let mut delivering = true;
    let mut open = true;
    while open {
        let mut batch = String::new();
        loop {
            match reader.read_line_by(Some(Instant::now() + IDLE_TIMEOUT)) {
                Ok(line) => {
                    batch.push_str(&line);
                    batch.push('\n');
                }
                // Peers only send UTF-8; a broken line is dropped, not relayed.
                Err(ReadError::InvalidUtf8) => {}
                Err(_) => {
                    open = false;
                    break;
                }
            }
            if batch.len() >= BATCH || !reader.has_line() {
                break;
            }
        }
        if delivering && !batch.is_empty() {
            bucket.take(batch.len());
            if to.send_keeping_reads(&batch).is_ok() {
                relays
                    .bytes
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            } else {
                delivering = false;
            }
        }
    }
    to.close_write();
    if ends.finish() {
        to.close();
        own.close();
    }
}

/// One file relay half: the connection that said `FILE-RELAY <call> <id>
/// <token>`.
pub struct FileHalf {
    pub conn: ConnId,
    pub call: CallId,
    pub id: FileId,
    pub token: Token,
}

/// Serves one file relay connection: admitted by the registry with its
/// party's value, it meets the other half of its transfer (whichever came
/// first waits up to [`JOIN_TIMEOUT`]), both are told `OK RELAYED`, and
/// raw bytes are copied both ways until both directions end. `own` writes
/// to this connection; the bytes `reader` holds past the first line are
/// the file's first.
pub fn serve_file(
    registry: &Registry<Outbox>,
    relays: &Relays,
    own: &Outbox,
    reader: LineReader<SharedStream>,
    half: FileHalf,
) {
    let FileHalf {
        conn,
        call,
        id,
        token,
    } = half;
    let (meeting, party) = match registry.claim_file_relay(call, id, &token, conn, own.clone()) {
        Ok(admitted) => admitted,
        Err(e) => {
            let why = match e {
                FileRelayError::BadValue => RelayRefusal::NoSuchTransfer,
                FileRelayError::NotRelayed => RelayRefusal::NotRelayed(call),
                FileRelayError::Full => RelayRefusal::FilesFull,
            };
            let _ = own.send(&ServerLine::from(why));
            return;
        }
    };
    let Some((peer, ends)) = meet(relays, meeting, own) else {
        return registry.forget_file_relay(call, conn);
    };
    let (buffered, stream) = reader.into_parts();
    let rate = relays.file_rate(call, party);
    let moved = copy_bytes(buffered, &stream.0, own, &peer, &ends, &rate, &relays.bytes);
    registry.forget_file_relay(call, conn);
    log!("chat {call}: file {id}: one direction ended after {moved} bytes");
}

impl Relays {
    /// The rate `party`'s file bytes in `call` share, made for the first of
    /// its file relays open; it goes with the last.
    fn file_rate(&self, call: CallId, party: usize) -> Arc<SharedBucket> {
        let mut rates = self
            .file_rates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = rates.get(&(call, party)).and_then(Weak::upgrade) {
            return bucket;
        }
        rates.retain(|_, bucket| bucket.strong_count() > 0);
        let bucket = Arc::new(Mutex::new(Bucket::with_burst(
            self.limits.file_rate,
            FILE_CHUNK,
        )));
        rates.insert((call, party), Arc::downgrade(&bucket));
        bucket
    }
}

/// Meets the other half of a file relay: whichever comes first waits up
/// to [`JOIN_TIMEOUT`] for the second. Each is told `OK RELAYED` before the
/// other may write to it. Returns where to write what this half reads, and
/// the pair's ending; `None` if the other never came (this half told why)
/// or either is gone.
fn meet(relays: &Relays, meeting: Meeting, own: &Outbox) -> Option<(Outbox, Arc<Ends>)> {
    let call = meeting.call;
    let first = {
        let mut files = relays.files.lock().unwrap_or_else(PoisonError::into_inner);
        match files.remove(&meeting) {
            Some(first) => Err(first),
            None => {
                let (first, joins) = mpsc::channel();
                files.insert(meeting, first);
                Ok(joins)
            }
        }
    };
    match first {
        Ok(joins) => {
            let Ok(join) = joins.recv_timeout(JOIN_TIMEOUT) else {
                let mut files = relays.files.lock().unwrap_or_else(PoisonError::into_inner);
                files.remove(&meeting);
                drop(files);
                let _ = own.send(&ServerLine::from(RelayRefusal::CalleeDidNotJoin));
                return None;
            };
            // The second half was told already; this one is told before
            // the second may write to it.
            let ends = Arc::new(Ends::default());
            if own.send(&ServerLine::Relayed { call }).is_err()
                || join.back.send((own.clone(), ends.clone())).is_err()
            {
                join.writer.close();
                return None;
            }
            log!("chat {call}: file {} relayed", meeting.id);
            Some((join.writer, ends))
        }
        Err(first) => {
            // Told before joining: once joined, the first half's bytes may
            // come at once, and they must follow this line.
            own.send(&ServerLine::Relayed { call }).ok()?;
            let (back, answer) = mpsc::channel();
            let joined = first.send(Join {
                writer: own.clone(),
                back,
            });
            match (joined, answer.recv_timeout(JOIN_TIMEOUT)) {
                (Ok(()), Ok(pair)) => Some(pair),
                _ => {
                    own.close();
                    None
                }
            }
        }
    }
}

/// Copies raw bytes from `from` (this connection, written through `own`):
/// first `buffered`, read with the request line, then whatever comes, each
/// read through one [`FILE_CHUNK`] buffer, under `rate` (shared with the
/// party's other file relays of its chat).
/// Ends like [`copy`]: this side's EOF half-closes `to`, and the second
/// direction to end closes both. Nothing moving either way for
/// [`FILE_IDLE_TIMEOUT`] closes both at once. Returns the bytes delivered,
/// also added to `counted`.
fn copy_bytes(
    buffered: Vec<u8>,
    from: &TcpStream,
    own: &Outbox,
    to: &Outbox,
    ends: &Ends,
    rate: &Mutex<Bucket>,
    counted: &AtomicU64,
) -> u64 {
    let mut delivered = 0u64;
    let mut delivering = true;
    let mut deliver = |bytes: &[u8]| {
        ends.moved();
        if !delivering {
            return;
        }
        // Held while it waits: the party's other files wait their turn.
        rate.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(bytes.len());
        if to.send_bytes_keeping_reads(bytes).is_ok() {
            delivered += bytes.len() as u64;
            counted.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        } else {
            delivering = false;
        }
    };
    if !buffered.is_empty() {
        deliver(&buffered);
    }
    drop(buffered);
    let mut buf = vec![0u8; FILE_CHUNK];
    let mut wait = FILE_IDLE_TIMEOUT;
    let idle = loop {
        if from.set_read_timeout(Some(wait)).is_err() {
            break false;
        }
        match (&*from).read(&mut buf) {
            Ok(0) => break false,
            Ok(n) => {
                deliver(&buf[..n]);
                wait = FILE_IDLE_TIMEOUT;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                // Quiet this way; idle only if quiet the other way too.
                let still = ends.still_for();
                if still >= FILE_IDLE_TIMEOUT {
                    break true;
                }
                wait = FILE_IDLE_TIMEOUT - still;
            }
            Err(_) => break false,
        }
    };
    if idle {
        to.close();
        own.close();
        ends.finish();
        return delivered;
    }
    to.close_write();
    if ends.finish() {
        to.close();
        own.close();
    }
    delivered
}

/// A bucket the file relays of one party of a chat share.
type SharedBucket = Mutex<Bucket>;

/// A token bucket: `take(n)` returns once `n` more bytes fit under `rate`
/// bytes a second, allowing a burst of one second's worth.
struct Bucket {
    rate: u64,
    /// The most it lets through at once: a second's worth, or one batch if
    /// that is more.
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u64) -> Bucket {
        Bucket::with_burst(rate, BATCH)
    }

    /// A bucket whose burst is at least `batch` bytes, the most one take
    /// asks for.
    fn with_burst(rate: u64, batch: usize) -> Bucket {
        Bucket {
            rate,
            burst: (rate as f64).max(batch as f64),
            tokens: rate as f64,
            last: Instant::now(),
        }
    }

    fn take(&mut self, n: usize) {
        if self.rate == 0 {
            return;
        }
        let rate = self.rate as f64;
        let now = Instant::now();
        let gained = now.duration_since(self.last).as_secs_f64() * rate;
        self.tokens = (self.tokens + gained).min(self.burst);
        self.last = now;
        self.tokens -= n as f64;
        if self.tokens < 0.0 {
            thread::sleep(Duration::from_secs_f64(-self.tokens / rate));
            self.last = Instant::now();
            self.tokens = 0.0;
        }
    }
}

/// How long after its call ended a relay may still deliver what was in
/// flight (a `BYE` sent just before the `HANGUP`) before it is closed.
pub const DRAIN: Duration = Duration::from_millis(500);

/// Closes the relay connections of a call that ended, after [`DRAIN`], on
/// a short-lived thread (at once if none can be started).
pub fn close_after_drain(connections: Vec<Outbox>) {
    if connections.is_empty() {
        return;
    }
    let close = |connections: &[Outbox]| connections.iter().for_each(Outbox::close);
    let shared = Arc::new(connections);
    let later = shared.clone();
    let spawned = thread::Builder::new()
        .name("relay-close".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            thread::sleep(DRAIN);
            close(&later);
        });
    if spawned.is_err() {
        close(&shared);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{Shutdown, TcpListener};

    /// Both ends of a loopback connection: (the one a client holds, the
    /// one the server accepted).
    fn loopback_pair(listener: &TcpListener) -> (TcpStream, Arc<TcpStream>) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (served, _) = listener.accept().unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (client, Arc::new(served))
    }

    #[test]
    fn a_file_relay_direction_holds_to_its_rate_and_forwards_what_came_with_the_request() {
        const RATE: u64 = 200_000;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (sender, from) = loopback_pair(&listener);
        let (receiver, to) = loopback_pair(&listener);
        let own = Outbox::new(from.clone(), Duration::from_secs(5));
        let to = Outbox::new(to, Duration::from_secs(5));
        let file: Vec<u8> = (0..500_000u32).map(|i| (i % 251) as u8).collect();
        let (early, rest) = (file[..100].to_vec(), file[100..].to_vec());
        let counted = Arc::new(AtomicU64::new(0));
        let count = counted.clone();
        let started = Instant::now();
        let relay = thread::spawn(move || {
            let ends = Ends::default();
            let rate = Mutex::new(Bucket::with_burst(RATE, FILE_CHUNK));
            copy_bytes(early, &from, &own, &to, &ends, &rate, &count)
        });
        let writer = thread::spawn(move || {
            (&sender).write_all(&rest).unwrap();
            sender.shutdown(Shutdown::Write).unwrap();
            sender
        });
        let mut got = Vec::new();
        (&receiver).read_to_end(&mut got).unwrap();
        let took = started.elapsed();
        assert!(got == file, "the bytes arrived changed");
        assert_eq!(relay.join().unwrap(), 500_000);
        assert_eq!(counted.load(Ordering::Relaxed), 500_000);
        drop(writer.join().unwrap());
        // A second's burst, then 300,000 bytes at 200,000 a second (less
        // one read's worth of slack); bounded above only for liveness.
        assert!(took >= Duration::from_millis(1100), "{took:?}");
        assert!(took < Duration::from_secs(10), "{took:?}");
    }

    #[test]
    fn the_bucket_holds_a_direction_to_its_rate_after_one_burst() {
        let mut bucket = Bucket::new(200_000);
        let started = Instant::now();
        // 200,000 bytes of burst, then 100,000 more at 200,000 a second.
        for _ in 0..30 {
            bucket.take(10_000);
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(450), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        let mut unlimited = Bucket::new(0);
        let started = Instant::now();
        unlimited.take(usize::MAX);
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}
