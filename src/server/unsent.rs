//! The bound on what a client leaves unread: the kernel's send buffer of a
//! client socket grows (autotuned up to `tcp_wmem`'s maximum, 4 MiB by
//! default) while the client pipelines requests and never reads, and std
//! cannot set `SO_SNDBUF` to cap it.
//!
//! So one thread, every [`SCAN_EVERY`] while some client might be above the
//! bound, reads the kernel's own table of TCP sockets (`/proc/net/tcp` and `/proc/net/tcp6`: each socket's inode and
//! `tx_queue`, the bytes written but not yet acknowledged) and finds the
//! server's client sockets in it by inode (`/proc/self/fd/N` names each
//! descriptor's `socket:[inode]`). A connection whose unsent bytes stay
//! above the bound for [`STRIKES`] scans in a row is logged once and shut
//! down; its thread then ends and closes it, and as the client's requests
//! lie unread in it, the kernel resets the connection and frees its queue.
//!
//! The bound follows what the client asked for. An honest client reads what
//! it asks for, however slowly, but it may ask again before the last answer
//! has come: a chat at the list asks for the list again each time ENTER is
//! pressed, and presence it watches comes meanwhile. So a client may leave
//! unsent
//! - [`UNSENT_BOUND`], for events it did not ask for (a ring, a hang-up)
//!   and small replies, and
//! - [`ASKED_UNREAD`] times the largest reply it asked for (a `LIST`, a
//!   presence batch) that it may not have read yet: the largest written
//!   since the client last had received all it asked for (the outbox keeps
//!   it; a scan knows what was received as what was written minus what is
//!   unsent).
//!
//! A client that keeps asking and does not read passes that within a
//! moment, whatever it asks for, and is closed; one that asks and stops
//! reading holds at most that much. So a client's unsent bytes are bounded
//! by 256 KiB and four of the largest replies there are (a `LIST` of
//! everyone online, at most 139 bytes a peer: 1.4 MB with 2,000 peers of
//! 128-byte names), and never more than the kernel's own cap on a socket's
//! send buffer, past which the write deadline closes it. A bound that grew
//! by a fixed 64 bytes a peer instead closed, within a second, an honest
//! reader on a 4 Mbit/s link that asked for the list of 2,000 long names
//! three times at once.
//!
//! Reading that table is not cheap (about 50 ms of kernel time with 20,000
//! sockets on the machine), so it is read only when it could find
//! something: a socket's unsent bytes can only have grown by what was
//! written to it, so one that was at most half the bound at a scan cannot
//! be above it until half the bound more has been written through its
//! outbox. Idle peers, and peers that read, cost no scan. Where `/proc` has no such files the watch logs that once
//! and stops; the 5 s write deadline still holds.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use crate::connection::Outbox;
use crate::log;

/// How often the kernel's socket table is read.
pub const SCAN_EVERY: Duration = Duration::from_millis(250);
/// Unsent bytes a client may leave above the bound for this many scans in
/// a row (a moment: up to `STRIKES * SCAN_EVERY`).
pub const STRIKES: u32 = 2;
/// Unsent bytes any client may leave besides what it asked for: events
/// pushed to it, and small replies.
pub const UNSENT_BOUND: u64 = 256 * 1024;
/// How many replies as large as the largest it asked for and may not have
/// read yet a client may leave unsent on top: the one on its way and a few
/// more asked for meanwhile.
pub const ASKED_UNREAD: u64 = 4;

/// The unsent bytes a client may leave whose largest reply asked for and
/// perhaps unread is `largest_asked_unread` bytes.
pub fn unsent_bound(largest_asked_unread: u64) -> u64 {
    UNSENT_BOUND + ASKED_UNREAD * largest_asked_unread
}

/// The client sockets being watched, by inode.
#[derive(Default)]
pub struct UnsentWatch {
    sockets: Mutex<HashMap<u64, Watched>>,
}

struct Watched {
    /// Shut down directly, not through the outbox: a writer blocked on this
    /// socket holds the outbox's lock.
    stream: Arc<TcpStream>,
    outbox: Outbox,
    addr: SocketAddr,
    /// Scans in a row that found it above the bound.
    strikes: u32,
    /// Its outbox's bytes written, read before the last scan that found it
    /// at most half the bound.
    written_when_clear: u64,
}

impl Watched {
    /// Its bound now, once its side has acknowledged the first `received`
    /// bytes written (0 if not known).
    fn bound(&self, received: u64) -> u64 {
        unsent_bound(self.outbox.largest_asked_unread(received))
    }

    /// Whether its unsent bytes could be above its bound now.
    fn suspect(&self) -> bool {
        self.strikes > 0
            || self.outbox.bytes_written() - self.written_when_clear >= self.bound(0) / 2
    }
}

/// Watches one socket while it lives; dropping it ends the watch.
pub struct WatchGuard {
    watch: Arc<UnsentWatch>,
    inode: Option<u64>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        if let Some(inode) = self.inode {
            self.watch.lock().remove(&inode);
        }
    }
}

impl UnsentWatch {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Watched>> {
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Watches `stream` (from `addr`) until the guard is dropped. A socket
    /// whose inode cannot be read (no `/proc`) is not watched.
    pub fn watch(
        self: &Arc<Self>,
        stream: &Arc<TcpStream>,
        outbox: &Outbox,
        addr: SocketAddr,
    ) -> WatchGuard {
        let inode = socket_inode(stream);
        if let Some(inode) = inode {
            self.lock().insert(
                inode,
                Watched {
                    stream: stream.clone(),
                    outbox: outbox.clone(),
                    addr,
                    strikes: 0,
                    written_when_clear: outbox.bytes_written(),
                },
            );
        }
        WatchGuard {
            watch: self.clone(),
            inode,
        }
    }

    /// Starts the thread that scans every [`SCAN_EVERY`].
    pub fn start(self: &Arc<Self>) {
        let watch = self.clone();
        let task = move || {
            loop {
                thread::sleep(SCAN_EVERY);
                let written: HashMap<u64, u64> = {
                    let sockets = watch.lock();
                    if !sockets.values().any(Watched::suspect) {
                        continue;
                    }
                    sockets
                        .iter()
                        .map(|(inode, w)| (*inode, w.outbox.bytes_written()))
                        .collect()
                };
                let Some(table) = read_tcp_tables() else {
                    log!(
                        "cannot read /proc/net/tcp: unsent bytes are bounded by the write deadline only"
                    );
                    return;
                };
                watch.judge(&table, &written);
            }
        };
        let started = thread::Builder::new()
            .name("unsent-watch".into())
            .stack_size(64 * 1024)
            .spawn(task);
        if let Err(e) = started {
            log!("cannot start the unsent-bytes watch: {e}");
        }
    }

    /// One scan's verdicts: strikes counted, connections over their bound
    /// shut down (once: a socket shut down leaves the table with its
    /// thread, and is never struck again). `written` is each socket's
    /// outbox count, read before the table was, so that count minus the
    /// unsent bytes is at most what its side has received.
    fn judge(&self, table: &str, written: &HashMap<u64, u64>) {
        let mut sockets = self.lock();
        let unsent: HashMap<u64, u64> = unsent_by_inode(table)
            .filter(|(inode, _)| sockets.contains_key(inode))
            .collect();
        for (inode, watched) in sockets.iter_mut() {
            if watched.strikes >= STRIKES {
                continue;
            }
            let queued = unsent.get(inode).copied().unwrap_or(0);
            let before = written.get(inode).copied();
            let received = before.map_or(0, |before| before.saturating_sub(queued));
            let bound = watched.bound(received);
            if queued <= bound / 2
                && let Some(before) = before
            {
                watched.written_when_clear = before;
            }
            if queued <= bound {
                watched.strikes = 0;
                continue;
            }
            let unsent = queued;
            watched.strikes += 1;
            if watched.strikes == STRIKES {
                log!(
                    "closed {}: it does not read what it asked for ({unsent} bytes unsent, \
                     bound {bound}: {UNSENT_BOUND} and {ASKED_UNREAD} times its largest \
                     unread reply)",
                    watched.addr
                );
                let _ = watched.stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// The inode of a socket, from `/proc/self/fd/N` (`socket:[12345]`).
fn socket_inode(stream: &TcpStream) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", stream.as_raw_fd())).ok()?;
    let link = link.to_str()?;
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// `/proc/net/tcp` and `/proc/net/tcp6` together; `None` if neither
/// exists.
fn read_tcp_tables() -> Option<String> {
    let v4 = std::fs::read_to_string("/proc/net/tcp");
    let v6 = std::fs::read_to_string("/proc/net/tcp6");
    if v4.is_err() && v6.is_err() {
        return None;
    }
    Some(v4.unwrap_or_default() + &v6.unwrap_or_default())
}

/// Each socket's (inode, tx_queue) in the text of `/proc/net/tcp` or
/// `/proc/net/tcp6`: fields are `sl local rem st tx_queue:rx_queue tr:when
/// retrnsmt uid timeout inode …`, numbers in hex but the inode. Header and
/// malformed lines are skipped.
pub fn unsent_by_inode(table: &str) -> impl Iterator<Item = (u64, u64)> + '_ {
    table.lines().filter_map(|line| {
        let mut fields = line.split_whitespace();
        let (tx, _rx) = fields.nth(4)?.split_once(':')?;
        let unsent = u64::from_str_radix(tx, 16).ok()?;
        let inode = fields.nth(4)?.parse().ok()?;
        Some((inode, unsent))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1E14 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 27734 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1E14 0100007F:D6F2 01 003B5F40:00000F00 01:00000014 00000000     0        0 27801 2 0000000000000000 20 4 30 10 -1
garbage
";

    #[test]
    fn reads_each_sockets_unsent_bytes_by_inode() {
        let found: Vec<(u64, u64)> = unsent_by_inode(TABLE).collect();
        assert_eq!(found, vec![(27734, 0), (27801, 0x003B_5F40)]);
    }

    fn inode_of(guard: &WatchGuard) -> u64 {
        guard.inode.expect("this test needs /proc/self/fd")
    }

    /// A kernel table holding one socket, `inode`, with `unsent` bytes.
    fn table_of(inode: u64, unsent: u64) -> String {
        format!(
            "   1: 0100007F:1E14 0100007F:D6F2 01 {unsent:08X}:00000000 01:00000014 00000000     0        0 {inode} 2\n"
        )
    }

    #[test]
    fn a_client_may_leave_four_of_its_largest_reply_unsent_until_it_has_received_all_it_asked_for()
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, addr) = listener.accept().unwrap();
        thread::spawn(move || std::io::copy(&mut client, &mut std::io::sink()));
        let stream = Arc::new(server_side);
        let outbox = Outbox::new(stream.clone(), Duration::from_secs(5));
        let watch = Arc::new(UnsentWatch::default());
        let guard = watch.watch(&stream, &outbox, addr);
        let inode = inode_of(&guard);
        let strikes = || watch.lock()[&inode].strikes;

        outbox.reply(&"x".repeat(500_000)).unwrap();
        outbox.reply(&"OK PONG").unwrap();
        let written = HashMap::from([(inode, outbox.bytes_written())]);
        assert_eq!(unsent_bound(500_001), UNSENT_BOUND + 2_000_004);
        for _ in 0..3 {
            watch.judge(&table_of(inode, 2_000_000), &written);
        }
        assert_eq!(strikes(), 0, "within four of the list it asked for");
        watch.judge(&table_of(inode, 2_300_000), &written);
        assert_eq!(strikes(), 1, "past them");

        watch.judge(&table_of(inode, 0), &written);
        outbox.send(&"x".repeat(299_999)).unwrap();
        let written = HashMap::from([(inode, outbox.bytes_written())]);
        watch.judge(&table_of(inode, 300_000), &written);
        watch.judge(&table_of(inode, 300_000), &written);
        assert_eq!(
            strikes(),
            STRIKES,
            "it had received all it asked for; then an event it did not ask for"
        );
    }

    #[test]
    fn a_socket_is_shut_down_after_staying_above_the_bound_and_only_then() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, addr) = listener.accept().unwrap();
        let stream = Arc::new(server_side);
        let outbox = Outbox::new(stream.clone(), Duration::from_secs(5));
        let watch = Arc::new(UnsentWatch::default());
        let guard = watch.watch(&stream, &outbox, addr);
        assert!(
            !watch.lock()[&inode_of(&guard)].suspect(),
            "nothing written yet"
        );
        outbox.send(&"x".repeat(200_000)).unwrap();
        assert!(
            watch.lock()[&inode_of(&guard)].suspect(),
            "half the bound written"
        );
        let written = HashMap::from([(inode_of(&guard), outbox.bytes_written())]);
        let mut sent = vec![0u8; 200_001];
        std::io::Read::read_exact(&mut &client, &mut sent).unwrap();
        let inode = inode_of(&guard);
        let table = |unsent: u64| table_of(inode, unsent);
        watch.judge(&table(2_000_000), &written);
        watch.judge(&table(10), &written);
        assert!(!watch.lock()[&inode].suspect(), "cleared by a scan");
        watch.judge(&table(2_000_000), &written);
        let mut probe = [0u8; 1];
        client
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        assert!(
            std::io::Read::read(&mut &client, &mut probe).is_err(),
            "shut down after one strike at a time"
        );
        watch.judge(&table(2_000_000), &written);
        assert_eq!(
            std::io::Read::read(&mut &client, &mut probe).unwrap(),
            0,
            "two strikes in a row close it"
        );
        drop(guard);
        assert!(watch.lock().is_empty());
    }
}
