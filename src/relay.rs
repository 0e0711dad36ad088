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

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::connection::{LineReader, Outbox, ReadError, SharedStream};
use crate::log;
use crate::protocol::{CallId, ErrorCode, MAX_PEER_LINE, ServerLine, Token};
use crate::registry::{Registry, RelayTicket};

/// How long the caller's relay connection waits for the callee's.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A relayed chat silent this long is over (peers ping every 5 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes one direction writes at once: lines already read are sent
/// together, one system call for many.
const BATCH: usize = 16 * 1024;

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
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_relays: 256,
            max_relays_per_ip: 16,
            rate: 1024 * 1024,
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
/// connections.
#[derive(Default)]
struct Ends {
    ended: AtomicUsize,
}

impl Ends {
    /// One direction ended; whether it was the last.
    fn finish(&self) -> bool {
        self.ended.fetch_add(1, Ordering::AcqRel) == 1
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

/// A token bucket: `take(n)` returns once `n` more bytes fit under `rate`
/// bytes a second, allowing a burst of one second's worth.
struct Bucket {
    rate: u64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u64) -> Bucket {
        Bucket {
            rate,
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
        let burst = rate.max(BATCH as f64);
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(burst);
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
