//! One timestamped line per event on stderr, for the server's operator.
//!
//! The timestamp is UTC in RFC 3339 form with milliseconds, computed from
//! `SystemTime` (std has no calendar), so logs from `screen` or journald
//! sort and read the same everywhere.
//!
//! Nothing that logs ever waits for stderr: [`log`] formats the line and
//! hands it to one writer thread through a bounded queue. When the queue is
//! full (stderr is a pipe nobody reads, or a flood outruns the terminal) the
//! line is dropped and counted, and the writer says `N log lines dropped`
//! as soon as it has written again. A stalled log costs lines, never a
//! client's reply.

use std::collections::VecDeque;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

/// Lines the writer thread may have waiting before new ones are dropped.
pub const LOG_QUEUE: usize = 1024;

/// Writes `event` as one line, prefixed with the current UTC time, through
/// the log's queue. Never blocks: a full queue drops the line (counted).
pub fn log(event: fmt::Arguments<'_>) {
    let line = format!("{} {event}\n", timestamp(SystemTime::now()));
    if IN_MEMORY.load(Ordering::Relaxed) {
        return keep_in_memory(line);
    }
    stderr_log().push(line);
}

/// Whether lines go to [`MEMORY`] instead of stderr ([`to_memory`]).
static IN_MEMORY: AtomicBool = AtomicBool::new(false);

/// The last [`MEMORY_LINES`] lines, oldest first, once [`to_memory`] was
/// called.
static MEMORY: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// Lines kept by [`to_memory`]; older ones are dropped.
pub const MEMORY_LINES: usize = 10_000;

/// From now on this process's log lines are kept in memory (the last
/// [`MEMORY_LINES`]) instead of written to stderr: for tests that run a
/// server in their own process, which show its log only when they fail
/// ([`memory_lines`]). The server binary never calls it.
pub fn to_memory() {
    IN_MEMORY.store(true, Ordering::Relaxed);
}

/// The lines kept since [`to_memory`], oldest first.
pub fn memory_lines() -> Vec<String> {
    let memory = MEMORY.lock().unwrap_or_else(PoisonError::into_inner);
    memory.iter().cloned().collect()
}

fn keep_in_memory(line: String) {
    let mut memory = MEMORY.lock().unwrap_or_else(PoisonError::into_inner);
    if memory.len() == MEMORY_LINES {
        memory.pop_front();
    }
    memory.push_back(line);
}

/// How many log lines have been dropped since the process started.
pub fn dropped_total() -> u64 {
    stderr_log().dropped_total.load(Ordering::Relaxed)
}

/// `log!("peer {name} joined")`: format and log one event.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::log::log(format_args!($($arg)*)) };
}

fn stderr_log() -> &'static Queue {
    static LOG: OnceLock<Queue> = OnceLock::new();
    LOG.get_or_init(|| Queue::start(std::io::stderr(), LOG_QUEUE))
}

/// The bounded queue in front of one writer thread.
pub struct Queue {
    /// `None` when the writer thread could not be started: lines are then
    /// written by the caller, as before there was a queue.
    lines: Option<SyncSender<String>>,
    fallback: Mutex<()>,
    /// Dropped since the writer last reported.
    dropped: std::sync::Arc<AtomicU64>,
    dropped_total: AtomicU64,
}

impl Queue {
    /// Starts a writer thread writing to `out`, behind a queue of `capacity`
    /// lines.
    pub fn start<W: Write + Send + 'static>(out: W, capacity: usize) -> Queue {
        let (lines, queued) = mpsc::sync_channel(capacity);
        let dropped = std::sync::Arc::new(AtomicU64::new(0));
        let counted = dropped.clone();
        let started = thread::Builder::new()
            .name("log".into())
            .stack_size(64 * 1024)
            .spawn(move || write_lines(out, &queued, &counted));
        Queue {
            lines: started.ok().map(|_| lines),
            fallback: Mutex::new(()),
            dropped,
            dropped_total: AtomicU64::new(0),
        }
    }

    /// Queues one whole line (ending in `\n`), or drops and counts it.
    pub fn push(&self, line: String) {
        let Some(lines) = &self.lines else {
            let _guard = self.fallback.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
            return;
        };
        match lines.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.dropped_total.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped so far.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }
}

/// The writer thread: writes each queued line; after a write, if lines were
/// dropped meanwhile, says how many. A failed write (stderr closed) is
/// ignored: logging must never take the server down.
fn write_lines<W: Write>(mut out: W, queued: &Receiver<String>, dropped: &AtomicU64) {
    for line in queued {
        let _ = out.write_all(line.as_bytes());
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let note = format!(
                "{} {lost} log lines dropped\n",
                timestamp(SystemTime::now())
            );
            let _ = out.write_all(note.as_bytes());
        }
        let _ = out.flush();
    }
}

/// Formats `time` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// well-known algorithm).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn formats_known_instants() {
        let at = |secs: u64, ms: u64| {
            timestamp(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_795_488_805, 250), "2026-11-24T02:53:25.250Z");
    }

    /// A writer that blocks until the test opens its gate, then keeps what
    /// it is given.
    #[derive(Clone, Default)]
    struct Gated {
        open: Arc<(Mutex<bool>, std::sync::Condvar)>,
        written: Arc<Mutex<String>>,
    }

    impl Write for Gated {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (open, changed) = &*self.open;
            let mut open = open.lock().unwrap();
            while !*open {
                open = changed.wait(open).unwrap();
            }
            self.written
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(buf));
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_writer_never_blocks_the_logger_and_drops_are_counted_then_told() {
        let out = Gated::default();
        let queue = Queue::start(out.clone(), 8);
        let started = Instant::now();
        for i in 0..1000 {
            queue.push(format!("line {i}\n"));
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "pushing blocked"
        );
        // The writer holds one line, the queue 8: the rest were dropped.
        assert!(
            queue.dropped_total() >= 1000 - 9 - 1,
            "{}",
            queue.dropped_total()
        );
        let dropped = queue.dropped_total();
        *out.open.0.lock().unwrap() = true;
        out.open.1.notify_all();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !out.written.lock().unwrap().contains("after") {
            assert!(Instant::now() < deadline, "the writer never caught up");
            // Until the writer has drained the queue, this may be dropped too.
            queue.push("after\n".into());
            thread::sleep(Duration::from_millis(5));
        }
        let written = out.written.lock().unwrap().clone();
        assert!(written.starts_with("line 0\n"), "{written}");
        // The first write is followed by the count of what was dropped
        // (perhaps plus an `after` pushed before the queue had room).
        let told: u64 = written
            .lines()
            .find_map(|l| l.strip_suffix(" log lines dropped")?.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no drop count in {written}"));
        assert!(
            (dropped..=queue.dropped_total()).contains(&told),
            "{written}"
        );
    }
}
