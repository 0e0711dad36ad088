//! The one-time values of a chat's file transfers (#23), and the file
//! relay connections they open.
//!
//! `TRANSFER <name> <id>` gives each party of a live call values of its own
//! for transfer `id`'s data connection: one to show the other, one to open
//! its half of the file relay with. They are kept with the call, at most
//! [`MAX_TRANSFERS`] of them (asking for one more forgets the transfer whose
//! values are oldest: the chat holds at most 16 transfers at once, so the
//! oldest is one that is over, or already has its connection), and they go
//! with the call. Asked again for the same id (a transfer resumed after a
//! cut), fresh values replace the old.
//!
//! A file relay half is admitted with its party's own relay value, once,
//! within [`RELAY_WINDOW`] of its issue, and only while the chat itself is
//! relayed (both halves of its relay in): a file relay rides its chat's
//! relay, and is closed with it, when the call ends or a `REJOIN` replaces
//! the relay.

use std::time::Instant;

use super::{Call, Fresh, Phase, RELAY_WINDOW, Registry};
use crate::protocol::{CallId, FileId, Keys, Token, name_key};

use super::ConnId;

/// Most transfers whose values one call keeps.
pub const MAX_TRANSFERS: usize = 16;

/// Most file relay connections one call holds open at once: both halves of
/// each of its transfers.
pub const MAX_FILE_RELAYS: usize = 2 * MAX_TRANSFERS;

/// One transfer's values, by party (0: the call's caller, 1: its callee).
#[derive(Debug, Clone, Copy)]
pub(super) struct TransferValues {
    id: FileId,
    /// Which issue of values this is, so the halves of one issue meet, and
    /// never a half of an older one.
    issue: u64,
    show: [Token; 2],
    relay: [Token; 2],
    joined: [bool; 2],
    since: Instant,
}

impl TransferValues {
    /// What party `i` holds.
    fn keys(&self, i: usize) -> Keys {
        Keys::Own {
            show: self.show[i],
            expect: self.show[1 - i],
            relay: self.relay[i],
        }
    }
}

/// A `TRANSFER` answered: the asker's values, and the peer's to tell it
/// (`EVENT TRANSFER`) before the asker is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transferred<O> {
    /// The asker's name and the peer's, as registered.
    pub asker: String,
    pub peer: String,
    pub call: CallId,
    pub mine: Keys,
    pub theirs: Keys,
    pub peer_outbox: O,
}

/// Why a `TRANSFER` is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferError {
    /// The asker is in no live call with this name.
    NotInCallWith(String),
    /// The asker did not announce `transfer`.
    NotAnnounced,
    /// The peer's chat did not announce `transfer` (its name as
    /// registered).
    PeerCannot(String),
}

/// Why a file relay half is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRelayError {
    /// No such call or transfer, or the value is spent, expired or not a
    /// party's relay value for it.
    BadValue,
    /// The chat is not relayed now (a direct chat, or its relay is being
    /// brought back): the file goes the way the chat does.
    NotRelayed,
    /// The call holds [`MAX_FILE_RELAYS`] file relay connections.
    Full,
}

/// A file relay half admitted: the halves with the same meeting are the
/// two of one transfer's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Meeting {
    pub call: CallId,
    pub id: FileId,
    issue: u64,
}

impl<O> Call<O> {
    /// Whether the chat is relayed now: both halves of its relay are in
    /// (a resumed call marks its halves taken, with no relay).
    fn relayed(&self) -> bool {
        self.relay_halves >= 2 && self.relays.len() == 2
    }
}

impl<O: Clone> Registry<O> {
    /// `TRANSFER`: values for transfer `id` of `asker`'s chat with `name`,
    /// only when the two are the parties of one live call (oneself too: a
    /// chat with oneself is given both parties' values, which differ) and
    /// both announced `transfer`. `fresh` gives the values: the shows and
    /// relays, by party.
    pub fn transfer(
        &self,
        asker: &str,
        name: &str,
        id: FileId,
        fresh: Fresh,
    ) -> Result<Transferred<O>, TransferError> {
        let asker_key = name_key(asker);
        let not_in_call = || TransferError::NotInCallWith(name.to_string());
        let mut state = self.lock();
        let me = state.peers.get(&asker_key).ok_or_else(not_in_call)?;
        let peer = state.peers.get(&name_key(name)).ok_or_else(not_in_call)?;
        let call = me
            .call
            .filter(|_| me.call == peer.call)
            .ok_or_else(not_in_call)?;
        if !me.features.transfer {
            return Err(TransferError::NotAnnounced);
        }
        if !peer.features.transfer {
            return Err(TransferError::PeerCannot(peer.name.clone()));
        }
        let (asker, peer, peer_outbox) = (me.name.clone(), peer.name.clone(), peer.outbox.clone());
        let issue = state.next_transfer;
        state.next_transfer += 1;
        let entry = state.calls.get_mut(&call).ok_or_else(not_in_call)?;
        if entry.phase != Phase::Live {
            return Err(not_in_call());
        }
        let values = TransferValues {
            id,
            issue,
            show: fresh.show,
            relay: fresh.relay,
            joined: [false; 2],
            since: Instant::now(),
        };
        // Kept in the order issued: the first is the oldest.
        entry.transfers.retain(|t| t.id != id);
        if entry.transfers.len() >= MAX_TRANSFERS {
            entry.transfers.remove(0);
        }
        entry.transfers.push(values);
        let me = usize::from(entry.callee == asker_key && entry.caller != asker_key);
        Ok(Transferred {
            asker,
            peer,
            call,
            mine: values.keys(me),
            theirs: values.keys(1 - me),
            peer_outbox,
        })
    }

    /// Admits a file relay half for transfer `id` of `call`, made by
    /// connection `conn`, which writes through `outbox`: `token` must be a
    /// party's relay value for it, not yet used, issued less than
    /// [`RELAY_WINDOW`] ago, and the chat must be relayed now. The outbox
    /// is handed back, to be closed, when the call ends or its relay is
    /// opened again; [`Registry::forget_file_relay`] drops it sooner.
    /// Returns the meeting, and which party's half this is (0: the
    /// call's caller), whose file bytes share one rate.
    pub fn claim_file_relay(
        &self,
        call: CallId,
        id: FileId,
        token: &Token,
        conn: ConnId,
        outbox: O,
    ) -> Result<(Meeting, usize), FileRelayError> {
        let mut state = self.lock();
        let entry = state
            .calls
            .get_mut(&call)
            .filter(|entry| entry.phase == Phase::Live)
            .ok_or(FileRelayError::BadValue)?;
        let relayed = entry.relayed();
        let full = entry.file_relays.len() >= MAX_FILE_RELAYS;
        let values = entry
            .transfers
            .iter_mut()
            .find(|t| t.id == id && t.since.elapsed() <= RELAY_WINDOW)
            .ok_or(FileRelayError::BadValue)?;
        let party = (0..2)
            .find(|&i| !values.joined[i] && values.relay[i].matches(token))
            .ok_or(FileRelayError::BadValue)?;
        // The value stays good for when the chat is relayed, or has room.
        if !relayed {
            return Err(FileRelayError::NotRelayed);
        }
        if full {
            return Err(FileRelayError::Full);
        }
        values.joined[party] = true;
        let issue = values.issue;
        entry.file_relays.push((conn, outbox));
        Ok((Meeting { call, id, issue }, party))
    }

    /// The file relay connection `conn` of `call` ended: the call no longer
    /// holds it.
    pub fn forget_file_relay(&self, call: CallId, conn: ConnId) {
        let mut state = self.lock();
        if let Some(entry) = state.calls.get_mut(&call) {
            entry.file_relays.retain(|(c, _)| *c != conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::fresh_values;
    use super::*;
    use crate::registry::{ClientFeatures, Leaving};
    use std::net::SocketAddr;

    fn with_transfer(names: &[(&str, bool)]) -> Registry<&'static str> {
        let reg = Registry::new();
        for (i, (name, transfer)) in names.iter().enumerate() {
            let outbox: &'static str = Box::leak(name.to_string().into_boxed_str());
            let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
            let features = ClientFeatures {
                proof: true,
                transfer: *transfer,
                ..ClientFeatures::default()
            };
            reg.register(i as ConnId, name, addr, addr.ip(), outbox, features)
                .unwrap();
        }
        reg
    }

    /// Both halves of `call`'s chat relay, with the values of `fresh`.
    fn relay_both(reg: &Registry<&'static str>, call: CallId, fresh: &Fresh) {
        assert!(reg.claim_relay(call, &fresh.relay[0], "ann-half").is_some());
        assert!(reg.claim_relay(call, &fresh.relay[1], "ben-half").is_some());
    }

    #[test]
    fn transfer_values_go_only_to_the_parties_of_a_live_call_that_both_take_files() {
        let reg = with_transfer(&[("ann", true), ("ben", true), ("cat", true), ("dan", false)]);
        let call = reg.claim_call("ann", "ben", fresh_values(1)).unwrap().call;
        let not_in_call = |name: &str| Err(TransferError::NotInCallWith(name.into()));
        assert_eq!(
            reg.transfer("cat", "ann", 1, fresh_values(2)),
            not_in_call("ann")
        );
        assert_eq!(
            reg.transfer("ann", "cat", 1, fresh_values(2)),
            not_in_call("cat")
        );
        let given = reg.transfer("Ben", "ann", 4, fresh_values(2)).unwrap();
        assert_eq!((given.asker.as_str(), given.peer.as_str()), ("ben", "ann"));
        assert_eq!((given.call, given.peer_outbox), (call, "ann"));
        assert_eq!(given.theirs, given.mine.mirrored(fresh_values(2).relay[0]));
        assert_eq!(given.mine.relay(), fresh_values(2).relay[1]);
        let call = reg.claim_call("cat", "dan", fresh_values(3)).unwrap().call;
        assert_eq!(
            reg.transfer("cat", "dan", 1, fresh_values(4)),
            Err(TransferError::PeerCannot("dan".into()))
        );
        assert_eq!(
            reg.transfer("dan", "cat", 1, fresh_values(4)),
            Err(TransferError::NotAnnounced)
        );
        // A chat with oneself has both parties' values.
        let solo = with_transfer(&[("eve", true)]);
        solo.claim_call("eve", "eve", fresh_values(1)).unwrap();
        let given = solo.transfer("eve", "eve", 1, fresh_values(5)).unwrap();
        assert_ne!(given.mine, given.theirs);
        let _ = call;
    }

    #[test]
    fn a_file_relay_opens_once_per_party_only_while_its_chat_is_relayed() {
        let reg = with_transfer(&[("ann", true), ("ben", true)]);
        let chat = fresh_values(1);
        let call = reg.claim_call("ann", "ben", chat).unwrap().call;
        let values = fresh_values(2);
        reg.transfer("ann", "ben", 7, values).unwrap();
        // A direct chat: its file goes directly too.
        assert_eq!(
            reg.claim_file_relay(call, 7, &values.relay[0], 10, "f0"),
            Err(FileRelayError::NotRelayed)
        );
        relay_both(&reg, call, &chat);
        let wrong = [
            (call + 1, 7, values.relay[0]),
            (call, 8, values.relay[0]),
            (call, 7, values.show[0]),
            (call, 7, chat.relay[0]),
        ];
        for (call, id, token) in wrong {
            assert_eq!(
                reg.claim_file_relay(call, id, &token, 10, "f0"),
                Err(FileRelayError::BadValue)
            );
        }
        let first = reg.claim_file_relay(call, 7, &values.relay[0], 10, "f0");
        let second = reg.claim_file_relay(call, 7, &values.relay[1], 11, "f1");
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.0, second.0, "the two halves meet");
        assert_eq!((first.1, second.1), (0, 1), "each its party's");
        assert_eq!(
            reg.claim_file_relay(call, 7, &values.relay[0], 12, "f2"),
            Err(FileRelayError::BadValue),
            "each value once"
        );
        // Asked again: fresh values, a new meeting.
        let again = fresh_values(3);
        reg.transfer("ben", "ann", 7, again).unwrap();
        let third = reg.claim_file_relay(call, 7, &again.relay[0], 12, "f2");
        assert!(third.is_ok_and(|(meeting, _)| meeting != first.0));
        reg.forget_file_relay(call, 12);
        // The call's end hands every relay connection back.
        let ended = reg.remove(0, "ann", Leaving::Quit).ended.unwrap();
        let mut relays = ended.relays;
        relays.sort();
        assert_eq!(relays, ["ann-half", "ben-half", "f0", "f1"]);
    }

    #[test]
    fn a_call_keeps_the_values_of_its_last_16_transfers() {
        let reg = with_transfer(&[("ann", true), ("ben", true)]);
        let chat = fresh_values(1);
        let call = reg.claim_call("ann", "ben", chat).unwrap().call;
        relay_both(&reg, call, &chat);
        let first = fresh_values(2);
        reg.transfer("ann", "ben", 1, first).unwrap();
        for id in 2..=MAX_TRANSFERS as u64 {
            reg.transfer("ann", "ben", id, fresh_values(3)).unwrap();
        }
        // The 17th forgets the oldest.
        reg.transfer("ann", "ben", 99, fresh_values(4)).unwrap();
        assert_eq!(
            reg.claim_file_relay(call, 1, &first.relay[0], 10, "f"),
            Err(FileRelayError::BadValue)
        );
        assert!(
            reg.claim_file_relay(call, 2, &fresh_values(3).relay[0], 10, "f")
                .is_ok()
        );
    }
}
