//! The bound on unregistered connections per source address.
//!
//! A person typing into `nc` is slow, so the registration timeout is long;
//! that would let one address hold many silent connections for as long.
//! Instead each address may have at most `--max-unregistered-per-ip`
//! connections that have not yet registered (or opened a relay): one more,
//! and the oldest of them is closed. Connections from other addresses are
//! never touched, and a registered peer never counts.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

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

#[cfg(test)]
mod tests {
    use super::*;

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
