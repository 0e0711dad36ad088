//! Who gets in: the bound on unregistered connections per source address,
//! and the budget of threads clients may have the server run.
//!
//! A person typing into `nc` is slow, so the registration timeout is long;
//! that would let one address hold many silent connections for as long.
//! Instead each address may have at most `--max-unregistered-per-ip`
//! connections that have not yet registered (or opened a relay): one more,
//! and the oldest of them is closed. Connections from other addresses are
//! never touched, and a registered peer never counts.
//!
//! Every thread costs the server memory maps, and past `vm.max_map_count`
//! not only does a new thread fail but so does any allocation that needs a
//! fresh map, which aborts the process. So each thread a client starts
//! (its connection's own, and a presence writer while it watches) takes a
//! ticket from one [`Threads`] budget, sized to what the maps allow, and
//! gives it back when the thread ends; with none left, the connection or
//! the `WATCH` is refused.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::registry::ConnId;

/// The unregistered connections of each address, oldest first, each with
/// its outbox `O` (generic, so that it can be unit-tested without sockets).
pub struct Unregistered<O> {
    limit: usize,
    by_ip: Mutex<HashMap<IpAddr, VecDeque<(ConnId, O)>>>,
}

impl<O> Unregistered<O> {
    pub fn new(limit: usize) -> Unregistered<O> {
        Unregistered {
            limit: limit.max(1),
            by_ip: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, VecDeque<(ConnId, O)>>> {
        self.by_ip.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a new connection from `ip`; returns the oldest one from the
    /// same address if that makes one too many, for the caller to tell and
    /// close (after this returns: no socket is written under the lock).
    pub fn arrive(&self, ip: IpAddr, conn: ConnId, outbox: O) -> Option<O> {
        let mut by_ip = self.lock();
        let queue = by_ip.entry(ip).or_default();
        queue.push_back((conn, outbox));
        if queue.len() > self.limit {
            queue.pop_front().map(|(_, oldest)| oldest)
        } else {
            None
        }
    }

    /// The connection no longer counts (it registered, became a relay, or
    /// closed). Returns whether it was still counted (`false`: it was
    /// evicted, or had left already).
    pub fn leave(&self, ip: IpAddr, conn: ConnId) -> bool {
        let mut by_ip = self.lock();
        let Some(queue) = by_ip.get_mut(&ip) else {
            return false;
        };
        let Some(at) = queue.iter().position(|(c, _)| *c == conn) else {
            return false;
        };
        queue.remove(at);
        if queue.is_empty() {
            by_ip.remove(&ip);
        }
        true
    }
}

/// Memory maps each thread costs: its stack and guard page, and the
/// alternate signal stack and guard page std gives every thread. Measured:
/// 4 more in `/proc/PID/maps` per client.
pub const MAPS_PER_THREAD: usize = 4;
/// Maps kept for the rest: the heap's arenas, libraries, the server's own
/// threads (the timer, presence, the watches) and the short-lived ones
/// (telling of a ring out or a peer gone, closing a relay after its drain).
pub const MAPS_SPARE: usize = 1000;

/// How many threads `vm.max_map_count` leaves room for (measured: the
/// server used to abort at 16,362 peers under the default 65,530 maps).
/// `None` where it cannot be read.
pub fn threads_the_maps_allow() -> Option<usize> {
    let max_maps: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(max_maps.saturating_sub(MAPS_SPARE) / MAPS_PER_THREAD)
}

/// The threads clients may have the server run at once.
pub struct Threads {
    limit: usize,
    running: AtomicUsize,
}

/// One thread's place in the budget, given back when dropped: the thread
/// owns it, so it is given back however the thread ends.
pub struct ThreadTicket(Arc<Threads>);

impl Threads {
    pub fn new(limit: usize) -> Arc<Threads> {
        Arc::new(Threads {
            limit,
            running: AtomicUsize::new(0),
        })
    }

    /// A place for one more thread, if the budget has one.
    pub fn take(self: &Arc<Self>) -> Option<ThreadTicket> {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()
            .map(|_| ThreadTicket(self.clone()))
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Drop for ThreadTicket {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_budget_gives_out_its_limit_and_takes_each_back_when_dropped() {
        let threads = Threads::new(2);
        let first = threads.take().expect("one");
        let second = threads.take().expect("two");
        assert!(threads.take().is_none(), "the budget is spent");
        drop(first);
        let third = threads.take().expect("a place given back");
        assert!(threads.take().is_none());
        drop((second, third));
        let again = (threads.take(), threads.take());
        assert!(again.0.is_some() && again.1.is_some(), "all given back");
    }

    #[test]
    fn one_too_many_from_an_address_evicts_its_oldest_only() {
        let limit = Unregistered::new(2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert_eq!(limit.arrive(a, 1, "a1"), None);
        assert_eq!(limit.arrive(b, 2, "b2"), None);
        assert_eq!(limit.arrive(a, 3, "a3"), None);
        assert_eq!(limit.arrive(a, 4, "a4"), Some("a1"));
        assert!(!limit.leave(a, 1), "evicted already");
        assert!(limit.leave(a, 3), "registered");
        assert_eq!(limit.arrive(a, 5, "a5"), None);
        assert_eq!(limit.arrive(a, 6, "a6"), Some("a4"));
        assert_eq!(limit.arrive(b, 7, "b7"), None);
    }
}
