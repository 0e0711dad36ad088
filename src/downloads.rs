//! Where a received file goes, and under what name.
//!
//! A peer offers a file under a name of its choosing, which is untrusted:
//! it may hold `/` and `..` to climb out of the downloads folder, control
//! and bidi characters to drive or fool a terminal, a leading `.` to hide
//! the file (`.bashrc`) or `-` to pass for an option to the next command
//! run on it, or 5,000 bytes that no file system takes. [`safe_name`]
//! makes one a file may have, and the same name is what the user is shown.
//!
//! A file is never overwritten: the first free one of `report.pdf`,
//! `report (1).pdf`, `report (2).pdf`… is taken ([`numbered`]). Its bytes
//! go to `report.pdf.part`, made with `create_new`, and only a whole file
//! is moved to its name ([`finish`]), by a hard link that fails rather
//! than replace a file made meanwhile.
//!
//! The names are pure functions, each a unit test; [`reserve`] and
//! [`finish`] are the few steps on the file system.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::unicode::is_bidi_control_or_separator;

/// The name of a file offered with none left once made safe.
pub const DEFAULT_NAME: &str = "received-file";

/// A file name's limit on the usual file systems (NAME_MAX), in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// What the bytes of a file still arriving are kept under, after its name.
pub const PART_SUFFIX: &str = ".part";

/// Room kept under [`MAX_NAME_BYTES`] for ` (999)` and [`PART_SUFFIX`], so
/// that a safe name stays within the limit whatever is added to it.
const ROOM: usize = " (999)".len() + PART_SUFFIX.len();

/// An extension longer than this is cut with the rest of a long name
/// rather than kept whole.
const MAX_EXTENSION: usize = 16;

/// How many numbered names are tried before giving up.
const MAX_NUMBER: u32 = 999;

/// `offered` made a safe base name: after its last `/` or `\`, without
/// control, bidi or line-separator characters, without leading dots,
/// dashes and blanks (so not `.`, `..`, hidden, nor an option) or trailing
/// dots and blanks, and cut on a character boundary to leave room for a
/// number and `.part` under 255 bytes, keeping a short extension. Nothing
/// left is [`DEFAULT_NAME`].
pub fn safe_name(offered: &str) -> String {
    let base = offered.rsplit(['/', '\\']).next().unwrap_or_default();
    let kept: String = base
        .chars()
        .filter(|&c| !c.is_control() && !is_bidi_control_or_separator(c))
        .collect();
    let trimmed = kept
        .trim_start_matches(|c: char| c == '.' || c == '-' || c.is_whitespace())
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    let name = cut(trimmed, MAX_NAME_BYTES - ROOM);
    if name.is_empty() {
        DEFAULT_NAME.to_string()
    } else {
        name
    }
}

/// `name` within `max` bytes: the stem is cut on a character boundary and
/// a short extension kept.
fn cut(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let (stem, ext) = match split_extension(name) {
        (stem, ext) if ext.len() <= MAX_EXTENSION => (stem, ext),
        _ => (name, ""),
    };
    let mut end = max - ext.len();
    while !stem.is_char_boundary(end.min(stem.len())) {
        end -= 1;
    }
    let stem =
        stem[..end.min(stem.len())].trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    format!("{stem}{ext}")
}

/// `report.pdf` as (`report`, `.pdf`); a name without a dot after its
/// first character has no extension.
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(at) if at > 0 => name.split_at(at),
        _ => (name, ""),
    }
}

/// The `n`th name tried for `name`: itself, then `report (1).pdf`,
/// `report (2).pdf`…
pub fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    let (stem, ext) = split_extension(name);
    format!("{stem} ({n}){ext}")
}

/// `name` with [`PART_SUFFIX`].
pub fn part_name(name: &str) -> String {
    format!("{name}{PART_SUFFIX}")
}

/// A place reserved in `dir` for a file offered as `offered`: its final
/// path (free when reserved), and the `.part` file its bytes go to, made
/// new and open for writing.
#[derive(Debug)]
pub struct Reserved {
    pub path: PathBuf,
    pub part: PathBuf,
    pub file: File,
}

/// Reserves the first free name for `offered` in `dir` (neither it nor its
/// `.part` exists), making its `.part`.
pub fn reserve(dir: &Path, offered: &str) -> io::Result<Reserved> {
    let name = safe_name(offered);
    for n in 0..=MAX_NUMBER {
        let candidate = numbered(&name, n);
        let path = dir.join(&candidate);
        let part = dir.join(part_name(&candidate));
        if path.symlink_metadata().is_ok() {
            continue;
        }
        match OpenOptions::new().write(true).create_new(true).open(&part) {
            Ok(file) => return Ok(Reserved { path, part, file }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{MAX_NUMBER} files named like {name} are there already"
    )))
}

/// Moves a whole file from its `.part` to its name, or to the next free
/// one if a file took that name meanwhile; says where it went. A hard link
/// never replaces a file; where the file system has none, a rename checked
/// just before does.
pub fn finish(part: &Path, path: &Path) -> io::Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| DEFAULT_NAME.to_string());
    let (stem_name, first) = match strip_number(&name) {
        Some((base, n)) => (base, n),
        None => (name.clone(), 0),
    };
    for n in first..=MAX_NUMBER {
        let candidate = numbered(&stem_name, n);
        let target = dir.join(&candidate);
        // Another file still arriving holds that name.
        if n != first && dir.join(part_name(&candidate)).exists() {
            continue;
        }
        match fs::hard_link(part, &target) {
            Ok(()) => {
                fs::remove_file(part)?;
                return Ok(target);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) if target.symlink_metadata().is_err() => {
                fs::rename(part, &target)?;
                return Ok(target);
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{MAX_NUMBER} files named like {name} are there already"
    )))
}

/// `report (3).pdf` as (`report.pdf`, 3).
fn strip_number(name: &str) -> Option<(String, u32)> {
    let (stem, ext) = split_extension(name);
    let open = stem.rfind(" (")?;
    let digits = stem[open + 2..].strip_suffix(')')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((format!("{}{ext}", &stem[..open]), digits.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_offered_name_becomes_a_plain_base_name() {
        let cases = [
            ("report.pdf", "report.pdf"),
            ("../../etc/passwd", "passwd"),
            ("/etc/shadow", "shadow"),
            ("..\\..\\windows\\system.ini", "system.ini"),
            ("\x1b]0;owned\x07.txt", "]0;owned.txt"),
            ("pay \u{202e}fdp.exe", "pay fdp.exe"),
            ("line\u{2028}break", "linebreak"),
            (".bashrc", "bashrc"),
            ("...hidden", "hidden"),
            ("-rf", "rf"),
            ("--help.txt", "help.txt"),
            (" .x", "x"),
            ("trailing. ", "trailing"),
            ("", DEFAULT_NAME),
            ("..", DEFAULT_NAME),
            ("a/", DEFAULT_NAME),
            ("\x07\x1b", DEFAULT_NAME),
            ("a..b", "a..b"),
            ("naïve café.txt", "naïve café.txt"),
        ];
        for (offered, safe) in cases {
            assert_eq!(safe_name(offered), safe, "{offered:?}");
        }
    }

    #[test]
    fn a_long_name_is_cut_on_a_character_boundary_keeping_its_extension() {
        let long = format!("{}.pdf", "é".repeat(2500));
        let safe = safe_name(&long);
        assert!(safe.len() <= MAX_NAME_BYTES - ROOM, "{}", safe.len());
        assert!(safe.ends_with("é.pdf"), "{safe}");
        // Numbered and with `.part`, it still fits.
        assert!(part_name(&numbered(&safe, 999)).len() <= MAX_NAME_BYTES);
        let plain = "x".repeat(5000);
        assert_eq!(safe_name(&plain).len(), MAX_NAME_BYTES - ROOM);
        // An extension too long to be one is cut with the rest.
        let odd = format!("a.{}", "b".repeat(400));
        assert_eq!(safe_name(&odd).len(), MAX_NAME_BYTES - ROOM);
    }

    #[test]
    fn numbers_go_before_the_extension() {
        assert_eq!(numbered("report.pdf", 0), "report.pdf");
        assert_eq!(numbered("report.pdf", 1), "report (1).pdf");
        assert_eq!(numbered("Makefile", 2), "Makefile (2)");
        assert_eq!(numbered("archive.tar.gz", 3), "archive.tar (3).gz");
        assert_eq!(
            strip_number("report (12).pdf"),
            Some(("report.pdf".into(), 12))
        );
        assert_eq!(strip_number("report (x).pdf"), None);
        assert_eq!(strip_number("report.pdf"), None);
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("p2pchat-downloads-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_file_is_never_overwritten_and_arrives_whole_under_its_name() {
        let dir = scratch("never-overwritten");
        fs::write(dir.join("report.pdf"), "mine").unwrap();
        let first = reserve(&dir, "../report.pdf").unwrap();
        assert_eq!(first.path, dir.join("report (1).pdf"));
        assert_eq!(first.part, dir.join("report (1).pdf.part"));
        // A second offer of the same name while the first arrives.
        let second = reserve(&dir, "report.pdf").unwrap();
        assert_eq!(second.path, dir.join("report (2).pdf"));
        // Someone made `report (1).pdf` meanwhile: the first goes on to (3).
        fs::write(dir.join("report (1).pdf"), "theirs").unwrap();
        drop(first.file);
        fs::write(&first.part, "arrived").unwrap();
        let saved = finish(&first.part, &first.path).unwrap();
        assert_eq!(saved, dir.join("report (3).pdf"));
        assert_eq!(fs::read_to_string(&saved).unwrap(), "arrived");
        assert_eq!(fs::read_to_string(dir.join("report.pdf")).unwrap(), "mine");
        assert_eq!(
            fs::read_to_string(dir.join("report (1).pdf")).unwrap(),
            "theirs"
        );
        assert!(!first.part.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
