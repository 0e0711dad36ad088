//! Local wall-clock time for people: `HH:MM` before chat lines, the time of
//! a missed call, the transcript's stamps.
//!
//! Std knows UTC only and has no time zones, so the offset is asked of the
//! system (`date +%z`) at start and again every ten minutes, which follows
//! a change to or from summer time within that long. Without `date` the
//! clock says UTC, and the transcript says so.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::log::civil_from_days;

/// How often the offset from UTC is asked again.
const OFFSET_CHECK: Duration = Duration::from_secs(600);

pub struct Clock {
    /// Seconds east of UTC; `None` when the system could not tell.
    offset: Option<i64>,
    checked: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            offset: system_offset(),
            checked: Instant::now(),
        }
    }

    fn refresh(&mut self) {
        if self.checked.elapsed() >= OFFSET_CHECK {
            self.checked = Instant::now();
            self.offset = system_offset().or(self.offset);
        }
    }

    /// The time of day now, `HH:MM`, local.
    pub fn hhmm(&mut self) -> String {
        self.refresh();
        let (_, hhmm) = split(SystemTime::now(), self.offset.unwrap_or(0));
        hhmm
    }

    /// A stamp for the transcript: `YYYY-MM-DD HH:MM +hhmm`.
    pub fn stamp(&mut self) -> String {
        self.refresh();
        let offset = self.offset.unwrap_or(0);
        let (date, hhmm) = split(SystemTime::now(), offset);
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        format!("{date} {hhmm} {sign}{:02}{:02}", abs / 3600, abs / 60 % 60)
    }
}

/// The local date and `HH:MM` of `time` at `offset` seconds east of UTC.
fn split(time: SystemTime, offset: i64) -> (String, String) {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
        + offset;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!("{:02}:{:02}", rem / 3600, rem / 60 % 60),
    )
}

/// `date +%z` (`+0100`, `-0530`) as seconds east of UTC.
fn system_offset() -> Option<i64> {
    let out = Command::new("date").arg("+%z").output().ok()?;
    parse_offset(String::from_utf8_lossy(&out.stdout).trim())
}

fn parse_offset(text: &str) -> Option<i64> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = digits[2..].parse().ok()?;
    Some(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::{parse_offset, split};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn offsets_as_date_prints_them() {
        assert_eq!(parse_offset("+0000"), Some(0));
        assert_eq!(parse_offset("+0100"), Some(3600));
        assert_eq!(parse_offset("-0530"), Some(-(5 * 3600 + 30 * 60)));
        assert_eq!(parse_offset("0100"), None);
        assert_eq!(parse_offset("+1"), None);
        assert_eq!(parse_offset("+01a0"), None);
    }

    #[test]
    fn local_time_crosses_midnight_both_ways() {
        // 2026-12-01 23:30 UTC.
        let t = UNIX_EPOCH + Duration::from_secs(1_796_167_800);
        assert_eq!(split(t, 0), ("2026-12-01".into(), "23:30".into()));
        assert_eq!(split(t, 3600), ("2026-12-02".into(), "00:30".into()));
        assert_eq!(split(t, -24 * 3600), ("2026-11-30".into(), "23:30".into()));
    }
}
