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
//! The bound is [`UNSENT_BOUND`] plus [`UNSENT_PER_PEER`] for each peer
//! online, so a `LIST` of everyone never counts against an honest client
//! that reads it.
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
/// Unsent bytes any client may leave, beyond which it is not reading.
pub const UNSENT_BOUND: u64 = 256 * 1024;
/// More allowed for each peer online: a list of everyone is a few dozen
/// bytes a peer.
pub const UNSENT_PER_PEER: u64 = 64;

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
    /// Whether its unsent bytes could be above `bound` now.
    fn suspect(&self, bound: u64) -> bool {
        self.strikes > 0 || self.outbox.bytes_written() - self.written_when_clear >= bound / 2
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

    /// Starts the thread that scans every [`SCAN_EVERY`]; `peers` says how
    /// many are online, for the bound.
    pub fn start(self: &Arc<Self>, peers: impl Fn() -> usize + Send + 'static) {
        let watch = self.clone();
        let task = move || {
            loop {
                thread::sleep(SCAN_EVERY);
                let bound = UNSENT_BOUND + UNSENT_PER_PEER * peers() as u64;
                let written: HashMap<u64, u64> = {
                    let sockets = watch.lock();
                    if !sockets.values().any(|w| w.suspect(bound)) {
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
                watch.judge(&table, bound, &written);
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

    /// One scan's verdicts: strikes counted, connections over the limit
    /// shut down (once: a socket shut down leaves the table with its
    /// thread, and is never struck again). `written` is each socket's
    /// outbox count, read before the table was.
    fn judge(&self, table: &str, bound: u64, written: &HashMap<u64, u64>) {
        let mut sockets = self.lock();
        let unsent: HashMap<u64, u64> = unsent_by_inode(table)
            .filter(|(inode, _)| sockets.contains_key(inode))
            .collect();
        for (inode, watched) in sockets.iter_mut() {
            if watched.strikes >= STRIKES {
                continue;
            }
            let queued = unsent.get(inode).copied().unwrap_or(0);
            if queued <= bound / 2
                && let Some(&before) = written.get(inode)
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
                     bound {bound})",
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

    #[test]
    fn a_socket_is_shut_down_after_staying_above_the_bound_and_only_then() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, addr) = listener.accept().unwrap();
        let stream = Arc::new(server_side);
        let outbox = Outbox::new(stream.clone(), Duration::from_secs(5));
        let watch = Arc::new(UnsentWatch::default());
        let guard = watch.watch(&stream, &outbox, addr);
        let bound = 1_000_000;
        assert!(
            !watch.lock()[&inode_of(&guard)].suspect(bound),
            "nothing written yet"
        );
        outbox.send(&"x".repeat(600_000)).unwrap();
        assert!(
            watch.lock()[&inode_of(&guard)].suspect(bound),
            "half the bound written"
        );
        let written = HashMap::from([(inode_of(&guard), outbox.bytes_written())]);
        let mut sent = vec![0u8; 600_001];
        std::io::Read::read_exact(&mut &client, &mut sent).unwrap();
        let inode = guard.inode.expect("this test needs /proc/self/fd");
        let table = |unsent: u64| {
            format!(
                "   1: 0100007F:1E14 0100007F:D6F2 01 {unsent:08X}:00000000 01:00000014 00000000     0        0 {inode} 2\n"
            )
        };
        watch.judge(&table(2_000_000), bound, &written);
        watch.judge(&table(10), bound, &written);
        assert!(!watch.lock()[&inode].suspect(bound), "cleared by a scan");
        watch.judge(&table(2_000_000), bound, &written);
        let mut probe = [0u8; 1];
        client
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        assert!(
            std::io::Read::read(&mut &client, &mut probe).is_err(),
            "shut down after one strike at a time"
        );
        watch.judge(&table(2_000_000), bound, &written);
        assert_eq!(
            std::io::Read::read(&mut &client, &mut probe).unwrap(),
            0,
            "two strikes in a row close it"
        );
        drop(guard);
        assert!(watch.lock().is_empty());
    }
}
