//! Presence for watchers: who joined, left, became busy, free or away,
//! pushed as `EVENT PRESENCE` lines to the clients that asked with `WATCH
//! on`. A watcher that did not announce `away` is told `free` for `away`.
//!
//! The [`Registry`] records each change as it makes it. One thread, the
//! presence task, takes what changed every `--presence-interval` (each name
//! once, with its latest state), packs it into as few lines as fit under
//! [`MAX_LINE`] — a [`Batch`], built once — and hands the same batch to
//! every watcher's writer. The cost of a burst is per batch per watcher,
//! not per change per watcher.
//!
//! Each watcher has its own writer thread behind a bounded queue, so a
//! watcher that does not read delays nobody: the task only queues, never
//! writes. That thread is the client's second, so it takes a ticket from
//! the server's budget of threads (`admission.rs`) for as long as it runs;
//! with none left, `WATCH on` is refused. A watcher whose queue is full (it has not read for
//! [`QUEUED_BATCHES`] intervals while its socket buffer was full) is
//! dropped: its connection is closed, as for any client that stops reading.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use crate::connection::Outbox;
use crate::log;
use crate::protocol::{MAX_LINE, PRESENCE_PREFIX, Presence, PresenceState};
use crate::registry::{ConnId, Registry};

use super::admission::Threads;

/// Batches a watcher's writer may have waiting before the watcher is
/// dropped for not reading.
pub const QUEUED_BATCHES: usize = 16;

/// A watcher's writer needs little stack: it only writes prepared text.
const WRITER_STACK: usize = 64 * 1024;

/// One interval's changes as `EVENT PRESENCE` lines, ready to write.
pub struct Batch {
    entries: Vec<Presence>,
    /// Per line: the entries it holds, and its bytes in `text`.
    lines: Vec<(Range<usize>, Range<usize>)>,
    /// Every line, each ending in `\n`.
    text: String,
    /// The line each name is on.
    line_of: HashMap<String, usize>,
    /// The same changes with `away` told as `free`, for watchers that do
    /// not know the word; only when one of them is `away`.
    without_away: Option<Box<Batch>>,
}

impl Batch {
    /// Packs `entries` greedily, in order, into lines of at most
    /// [`MAX_LINE`] bytes.
    pub fn pack(entries: Vec<Presence>) -> Batch {
        let without_away = entries
            .iter()
            .any(|e| e.state == PresenceState::Away)
            .then(|| {
                let told = entries.iter().map(|e| Presence {
                    name: e.name.clone(),
                    state: e.state.without_away(),
                });
                Box::new(Batch::pack(told.collect()))
            });
        let mut text = String::new();
        let mut lines = Vec::new();
        let mut line_of = HashMap::with_capacity(entries.len());
        let mut first_entry = 0;
        let mut line_start = 0;
        for (i, entry) in entries.iter().enumerate() {
            let piece = entry.name.len() + entry.state.as_str().len() + 2;
            let open = text.len() > line_start;
            if open && text.len() - line_start + piece > MAX_LINE {
                text.push('\n');
                lines.push((first_entry..i, line_start..text.len()));
                first_entry = i;
                line_start = text.len();
            }
            if text.len() == line_start {
                text.push_str(PRESENCE_PREFIX);
            }
            let _ = write!(text, " {entry}");
            line_of.insert(entry.name.clone(), lines.len());
        }
        if text.len() > line_start {
            text.push('\n');
            lines.push((first_entry..entries.len(), line_start..text.len()));
        }
        Batch {
            entries,
            lines,
            text,
            line_of,
            without_away,
        }
    }

    #[cfg(test)]
    fn line_count(&self) -> usize {
        self.lines.len()
    }

    /// The bytes for the watcher registered as `watcher`: the shared text,
    /// unless the watcher's own change is in it, which is left out (only
    /// its line is built again); with `away` told as `free` to a watcher
    /// that does not know the word.
    pub fn text_for(&self, watcher: &str, knows_away: bool) -> Cow<'_, str> {
        if let (false, Some(without)) = (knows_away, &self.without_away) {
            return without.text_for(watcher, true);
        }
        let Some(&own) = self.line_of.get(watcher) else {
            return Cow::Borrowed(&self.text);
        };
        let (entries, bytes) = &self.lines[own];
        let mut text = String::with_capacity(self.text.len());
        text.push_str(&self.text[..bytes.start]);
        let others: Vec<&Presence> = self.entries[entries.clone()]
            .iter()
            .filter(|e| e.name != watcher)
            .collect();
        if !others.is_empty() {
            text.push_str(PRESENCE_PREFIX);
            for entry in others {
                let _ = write!(text, " {entry}");
            }
            text.push('\n');
        }
        text.push_str(&self.text[bytes.end..]);
        Cow::Owned(text)
    }
}

/// One client that asked for presence.
struct Watcher {
    name: String,
    queue: SyncSender<Arc<Batch>>,
    outbox: Outbox,
    /// Cleared by `WATCH off`: the writer then writes nothing more, even a
    /// batch it already holds.
    on: Arc<AtomicBool>,
}

/// Why a watcher's writer could not be started.
#[derive(Debug)]
pub enum NoWriter {
    /// The server's budget of threads is spent.
    Budget,
    /// The system refused the thread.
    Spawn(std::io::Error),
}

/// Every watcher, by connection.
#[derive(Default)]
pub struct Watchers {
    by_conn: Mutex<HashMap<ConnId, Watcher>>,
}

impl Watchers {
    fn lock(&self) -> MutexGuard<'_, HashMap<ConnId, Watcher>> {
        self.by_conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts pushing presence to connection `conn`, registered as `name`,
    /// on a writer thread counted in `threads` (again `WATCH on` changes
    /// nothing); `knows_away`: it announced `away`.
    pub fn watch(
        &self,
        conn: ConnId,
        name: &str,
        knows_away: bool,
        outbox: &Outbox,
        threads: &Arc<Threads>,
    ) -> Result<(), NoWriter> {
        let mut watchers = self.lock();
        if watchers.contains_key(&conn) {
            return Ok(());
        }
        let ticket = threads.take().ok_or(NoWriter::Budget)?;
        let (queue, batches) = mpsc::sync_channel(QUEUED_BATCHES);
        let on = Arc::new(AtomicBool::new(true));
        let writer = Writer {
            name: name.to_string(),
            knows_away,
            outbox: outbox.clone(),
            on: on.clone(),
        };
        thread::Builder::new()
            .name(format!("watcher-{conn}"))
            .stack_size(WRITER_STACK)
            .spawn(move || {
                let _counted = ticket;
                writer.run(&batches)
            })
            .map_err(NoWriter::Spawn)?;
        watchers.insert(
            conn,
            Watcher {
                name: name.to_string(),
                queue,
                outbox: outbox.clone(),
                on,
            },
        );
        Ok(())
    }

    /// Stops pushing presence to `conn`. Once this returns, the writer
    /// writes nothing more to it (it checks under the outbox's lock).
    pub fn unwatch(&self, conn: ConnId) {
        if let Some(watcher) = self.lock().remove(&conn) {
            watcher.on.store(false, Ordering::Release);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `batch` for every watcher; drops those whose queue is full.
    fn deliver(&self, batch: &Arc<Batch>) {
        let mut stuck = Vec::new();
        {
            let mut watchers = self.lock();
            watchers.retain(|_, w| match w.queue.try_send(batch.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    w.on.store(false, Ordering::Release);
                    stuck.push((w.name.clone(), w.outbox.clone()));
                    false
                }
                // Its writer ended (a write failed); its connection is
                // closing and its session will unwatch.
                Err(TrySendError::Disconnected(_)) => false,
            });
        }
        for (name, outbox) in stuck {
            log!("dropped {name}: it does not read its presence events");
            outbox.close();
        }
    }
}

/// A watcher's writer thread: writes each batch it is handed, until its
/// queue is dropped or a write fails.
struct Writer {
    name: String,
    knows_away: bool,
    outbox: Outbox,
    on: Arc<AtomicBool>,
}

impl Writer {
    fn run(self, batches: &Receiver<Arc<Batch>>) {
        for batch in batches {
            let text = batch.text_for(&self.name, self.knows_away);
            if text.is_empty() {
                continue;
            }
            let written = self
                .outbox
                .send_whole_lines_unless(&text, || !self.on.load(Ordering::Acquire));
            if written.is_err() {
                return;
            }
        }
    }
}

/// Starts the presence task: every `interval`, what changed in `registry`
/// goes to every watcher.
pub fn start(registry: Arc<Registry<Outbox>>, watchers: Arc<Watchers>, interval: Duration) {
    let task = move || {
        loop {
            thread::sleep(interval);
            let changes = registry.take_presence();
            if changes.is_empty() || watchers.is_empty() {
                continue;
            }
            watchers.deliver(&Arc::new(Batch::pack(changes)));
        }
    };
    let started = thread::Builder::new()
        .name("presence".into())
        .stack_size(WRITER_STACK)
        .spawn(task);
    if let Err(e) = started {
        log!("cannot start the presence task; watchers will hear nothing: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{PresenceState, ServerLine};

    fn joined(name: &str) -> Presence {
        Presence {
            name: name.into(),
            state: PresenceState::Joined,
        }
    }

    fn parse_all(text: &str) -> Vec<Presence> {
        text.lines()
            .flat_map(|line| {
                assert!(line.len() <= MAX_LINE, "{} bytes", line.len());
                match ServerLine::parse(line) {
                    Ok(ServerLine::Presence(entries)) => entries,
                    other => panic!("{line:?}: {other:?}"),
                }
            })
            .collect()
    }

    #[test]
    fn a_thousand_joins_fit_in_a_few_lines_in_order() {
        let entries: Vec<Presence> = (0..1000).map(|i| joined(&format!("peer{i}"))).collect();
        let batch = Batch::pack(entries.clone());
        // "joined:peer123 " is ~15 bytes: about 270 to a 4 KiB line.
        assert!(batch.line_count() <= 5, "{} lines", batch.line_count());
        assert_eq!(parse_all(&batch.text_for("someone-else", true)), entries);
    }

    #[test]
    fn long_names_never_push_a_line_past_the_limit() {
        let long = "名".repeat(32);
        let entries: Vec<Presence> = (0..200).map(|i| joined(&format!("{i}{long}"))).collect();
        let batch = Batch::pack(entries.clone());
        assert_eq!(parse_all(&batch.text_for("x", true)), entries);
    }

    #[test]
    fn a_watcher_is_not_told_about_itself() {
        let entries: Vec<Presence> = (0..1000).map(|i| joined(&format!("peer{i}"))).collect();
        let batch = Batch::pack(entries.clone());
        let mine = parse_all(&batch.text_for("peer500", true));
        assert_eq!(mine.len(), 999);
        assert!(mine.iter().all(|e| e.name != "peer500"));
        let alone = Batch::pack(vec![joined("me")]);
        assert_eq!(alone.text_for("me", true), "");
        assert_eq!(alone.text_for("you", true), "EVENT PRESENCE joined:me\n");
    }

    #[test]
    fn away_is_told_as_free_to_a_watcher_that_does_not_know_it() {
        let state = |name: &str, state| Presence {
            name: name.into(),
            state,
        };
        let batch = Batch::pack(vec![
            state("ann", PresenceState::Away),
            state("ben", PresenceState::Busy),
            state("me", PresenceState::Away),
        ]);
        assert_eq!(
            batch.text_for("me", true),
            "EVENT PRESENCE away:ann busy:ben\n"
        );
        assert_eq!(
            batch.text_for("me", false),
            "EVENT PRESENCE free:ann busy:ben\n"
        );
        let plain = Batch::pack(vec![state("ben", PresenceState::Free)]);
        assert!(plain.without_away.is_none());
        assert_eq!(plain.text_for("x", false), "EVENT PRESENCE free:ben\n");
    }
}
