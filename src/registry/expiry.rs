//! The registry's tables that forget by time: who called in the last
//! minute, who hung up on whose rings, which addresses registered, and
//! until when a caller may not call a callee again.
//!
//! Each keeps, beside its map, its keys in the order their times were set.
//! Forgetting what is past takes entries from the front of that queue, at
//! most [`EXPIRE_STEP`] a call, and never walks the map: a request costs
//! the same with 65,536 recent callers in the table as with none, and the
//! lock every other request waits for is held for a few map operations.
//! Each call that adds an entry also forgets up to [`EXPIRE_STEP`], so the
//! entries past their time but not yet forgotten never outnumber the live
//! ones by much; every answer is read from the times themselves, so such
//! an entry never changes one. The time is always passed in.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

pub(super) const MINUTE: Duration = Duration::from_secs(60);

/// Most entries one call forgets: more than one call adds, so a backlog
/// shrinks, and few enough that no call holds the lock long.
pub(super) const EXPIRE_STEP: usize = 8;

/// One of at most `limit` events a minute: `times` holds the last minute's,
/// oldest first. Records `now`, or, with `limit` already in the minute,
/// says how long until the oldest of them leaves it.
pub(super) fn take_from_minute(
    times: &mut VecDeque<Instant>,
    now: Instant,
    limit: usize,
) -> Result<(), Duration> {
    room_in_minute(times, now, limit)?;
    times.push_back(now);
    Ok(())
}

/// Whether one more event fits in `times`' minute, as
/// [`take_from_minute`], without recording it.
fn room_in_minute(
    times: &mut VecDeque<Instant>,
    now: Instant,
    limit: usize,
) -> Result<(), Duration> {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE)
    {
        times.pop_front();
    }
    if times.len() >= limit {
        let wait = times.front().map_or(MINUTE, |t| {
            MINUTE.saturating_sub(now.saturating_duration_since(*t))
        });
        return Err(wait);
    }
    Ok(())
}

/// The events of the last minute of each key (a caller, a pair, a source
/// address), oldest first.
pub(super) struct MinuteWindows<K> {
    times: HashMap<K, VecDeque<Instant>>,
    /// Each event's key, with when it leaves the minute, in the order the
    /// events were recorded.
    order: VecDeque<(Instant, K)>,
}

impl<K> Default for MinuteWindows<K> {
    fn default() -> Self {
        MinuteWindows {
            times: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> MinuteWindows<K> {
    /// Records one of at most `limit` events a minute for `key`, or says
    /// how long until the next fits. Touches only `key`'s own events.
    pub(super) fn take(&mut self, key: &K, now: Instant, limit: usize) -> Result<(), Duration> {
        self.room(key, now, limit)?;
        self.record(key, now);
        Ok(())
    }

    /// Whether one more event for `key` fits in its minute, as
    /// [`MinuteWindows::take`], without recording it.
    pub(super) fn room(&mut self, key: &K, now: Instant, limit: usize) -> Result<(), Duration> {
        match self.times.get_mut(key) {
            Some(times) => room_in_minute(times, now, limit),
            None if limit == 0 => Err(MINUTE),
            None => Ok(()),
        }
    }

    /// Records an event for `key` at `now`; returns how many `key` had in
    /// the last minute, this one included.
    pub(super) fn record(&mut self, key: &K, now: Instant) -> usize {
        let times = self.times.entry(key.clone()).or_default();
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE)
        {
            times.pop_front();
        }
        times.push_back(now);
        let count = times.len();
        self.order.push_back((now + MINUTE, key.clone()));
        count
    }

    /// Forgets at most [`EXPIRE_STEP`] events whose minute has passed, and
    /// each key left with none.
    pub(super) fn expire(&mut self, now: Instant) {
        for _ in 0..EXPIRE_STEP {
            match self.order.front() {
                Some((until, _)) if *until <= now => {}
                _ => return,
            }
            let Some((_, key)) = self.order.pop_front() else {
                return;
            };
            if let Some(times) = self.times.get_mut(&key) {
                while times
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE)
                {
                    times.pop_front();
                }
                if times.is_empty() {
                    self.times.remove(&key);
                }
            }
        }
    }

    /// Keys with an event in the table (some perhaps past their minute,
    /// not yet forgotten).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.times.len()
    }
}

/// Until when each key is held back (a caller from a callee), with the
/// keys in the order their deadlines were set.
pub(super) struct Deadlines<K> {
    until: HashMap<K, Instant>,
    order: VecDeque<(Instant, K)>,
}

impl<K> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines {
            until: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Deadlines<K> {
    /// How long `key` is still held back at `now`, if it is.
    pub(super) fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        let until = *self.until.get(key)?;
        (until > now).then(|| until - now)
    }

    /// Holds `key` back until `until`.
    pub(super) fn set(&mut self, key: K, until: Instant) {
        self.order.push_back((until, key.clone()));
        self.until.insert(key, until);
    }

    /// Forgets at most [`EXPIRE_STEP`] deadlines that have passed. A
    /// deadline set again later stays until its later time.
    pub(super) fn expire(&mut self, now: Instant) {
        for _ in 0..EXPIRE_STEP {
            match self.order.front() {
                Some((until, _)) if *until <= now => {}
                _ => return,
            }
            let Some((_, key)) = self.order.pop_front() else {
                return;
            };
            if self.until.get(&key).is_some_and(|until| *until <= now) {
                self.until.remove(&key);
            }
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.until.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_window_takes_its_limit_a_minute_and_says_when_the_next_fits() {
        let t0 = Instant::now();
        let mut windows = MinuteWindows::default();
        for i in 0..3 {
            assert_eq!(windows.take(&"a", t0 + i * SEC, 3), Ok(()));
        }
        assert_eq!(windows.take(&"a", t0 + 10 * SEC, 3), Err(50 * SEC));
        assert_eq!(windows.take(&"b", t0 + 10 * SEC, 3), Ok(()), "per key");
        assert_eq!(windows.take(&"a", t0 + 60 * SEC, 3), Ok(()));
        assert_eq!(windows.room(&"c", t0, 0), Err(MINUTE));
    }

    #[test]
    fn a_window_forgets_keys_whose_minute_passed_a_few_a_call() {
        let t0 = Instant::now();
        let mut windows = MinuteWindows::default();
        let keys = 3 * EXPIRE_STEP;
        for key in 0..keys {
            windows.record(&key, t0);
        }
        // One key called again later stays for its later minute.
        windows.record(&0, t0 + 30 * SEC);
        windows.expire(t0 + 59 * SEC);
        assert_eq!(windows.len(), keys, "nothing is a minute old yet");
        let later = t0 + 61 * SEC;
        for step in 1..=3 {
            windows.expire(later);
            assert_eq!(windows.len(), keys - step * EXPIRE_STEP + 1, "step {step}");
        }
        windows.expire(later);
        assert_eq!(windows.len(), 1);
        windows.expire(t0 + 91 * SEC);
        assert_eq!(windows.len(), 0);
        assert!(windows.order.is_empty());
    }

    #[test]
    fn a_forgotten_key_is_a_fresh_one_and_a_kept_one_still_counts() {
        let t0 = Instant::now();
        let mut windows = MinuteWindows::default();
        assert_eq!(windows.record(&"a", t0), 1);
        assert_eq!(windows.record(&"a", t0 + 30 * SEC), 2);
        windows.expire(t0 + 61 * SEC);
        assert_eq!(windows.record(&"a", t0 + 61 * SEC), 2, "the one at 30 s");
    }

    #[test]
    fn deadlines_hold_until_their_time_and_are_forgotten_after_it() {
        let t0 = Instant::now();
        let mut deadlines = Deadlines::default();
        for key in 0..2 * EXPIRE_STEP {
            deadlines.set(key, t0 + 60 * SEC);
        }
        // Set again, later: the first deadline's entry must not drop it.
        deadlines.set(0, t0 + 90 * SEC);
        assert_eq!(deadlines.wait(&1, t0 + 50 * SEC), Some(10 * SEC));
        assert_eq!(
            deadlines.wait(&1, t0 + 60 * SEC),
            None,
            "over, not forgotten"
        );
        deadlines.expire(t0 + 60 * SEC);
        assert_eq!(deadlines.len(), EXPIRE_STEP + 1);
        deadlines.expire(t0 + 60 * SEC);
        assert_eq!(deadlines.len(), 1);
        assert_eq!(deadlines.wait(&0, t0 + 60 * SEC), Some(30 * SEC));
        deadlines.expire(t0 + 90 * SEC);
        assert_eq!(deadlines.len(), 0);
    }
}
