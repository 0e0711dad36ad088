//! One timestamped line per event on stderr, for the server's operator.
//!
//! The timestamp is UTC in RFC 3339 form with milliseconds, computed from
//! `SystemTime` (std has no calendar), so logs from `screen` or journald
//! sort and read the same everywhere.

use std::fmt;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes `event` as one line, prefixed with the current UTC time. A failure
/// to write the log (stderr closed) is ignored: logging must never take the
/// server down.
pub fn log(event: fmt::Arguments<'_>) {
    let line = format!("{} {event}\n", timestamp(SystemTime::now()));
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `log!("peer {name} joined")`: format and log one event.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::log::log(format_args!($($arg)*)) };
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
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        let at = |secs: u64, ms: u64| {
            timestamp(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_795_488_805, 250), "2026-11-24T02:53:25.250Z");
    }
}
