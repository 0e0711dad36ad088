//! The terminal itself: raw mode through `stty`, its width, whether to use
//! colour, and putting it back.
//!
//! Std has no termios, and the user's design allows no crates and no
//! hand-written bindings, so raw mode is `stty` run on `/dev/tty`: its `-g`
//! output is saved first and given back to `stty` to restore. [`RawMode`]
//! restores on drop, and a panic hook restores too.
//!
//! For the ways out no code of ours sees — `kill -9`, and `SIGTERM` or
//! `SIGHUP`, which std cannot catch — the chat runs as the child of a
//! terminal keeper (`keeper.rs`), which holds the saved settings too and
//! calls [`repair`] when the chat died by a signal, before the shell
//! waiting for the keeper gets the terminal back. (An earlier guardian, a
//! `sh` child of the chat that restored when the chat's end of a pipe
//! closed, raced that shell and usually lost: the chat's parent, not the
//! guardian, is what the shell waits for.)

use std::fs::File;
use std::io::Write;
use std::io::{self, IsTerminal};
use std::process::{Command, Stdio};
use std::sync::{Mutex, Once, PoisonError};

/// Settings to restore while raw mode is on, for the panic hook and
/// [`abandon`] (which cannot reach the guard).
static SAVED: Mutex<Option<String>> = Mutex::new(None);

/// Whether stdin and stdout are both a terminal and the terminal can be
/// driven with escape sequences: `TERM` is set, and not to `dumb`.
/// Otherwise the chat works in line mode and writes no escape sequence.
pub fn interactive() -> bool {
    io::stdin().is_terminal()
        && io::stdout().is_terminal()
        && std::env::var("TERM").is_ok_and(|t| !t.is_empty() && t != "dumb")
}

/// Colour only on an interactive terminal, and never when `NO_COLOR` is set
/// (to any value, <https://no-color.org>).
pub fn colour_wanted() -> bool {
    interactive() && std::env::var_os("NO_COLOR").is_none()
}

fn stty(args: &[&str]) -> io::Result<String> {
    let tty = File::open("/dev/tty")?;
    let out = Command::new("stty")
        .args(args)
        .stdin(tty)
        .stderr(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("stty {} failed", args.join(" "))));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The terminal's width in columns (80 if it cannot be told).
pub fn columns() -> usize {
    stty(&["size"])
        .ok()
        .and_then(|size| size.split_whitespace().nth(1)?.parse().ok())
        .filter(|&c: &usize| c > 0)
        .unwrap_or(80)
}

/// The terminal's settings as `stty -g` prints them, to give back to
/// [`repair`] later.
pub fn saved_settings() -> io::Result<String> {
    stty(&["-g"])
}

/// Puts the terminal back after a chat that could not do it itself (it was
/// killed, or it must stop at once): the `saved` settings, bracketed paste
/// off, autowrap on, attributes reset, and one line on a cleared row saying
/// `why`.
pub fn repair(saved: &str, why: &str) {
    let mut out = io::stdout();
    let _ = write!(out, "{BRACKETED_PASTE_OFF}{AUTOWRAP_ON}\x1b[0m\r\x1b[K");
    let _ = out.flush();
    let _ = stty(&[saved]);
    eprintln!("chat: {why}; the terminal is restored.");
}

/// The chat must stop now, from any thread: the terminal is repaired if
/// raw mode is on, and `why` said either way.
pub fn abandon(why: &str) {
    match SAVED.lock().unwrap_or_else(PoisonError::into_inner).take() {
        Some(saved) => repair(&saved, why),
        None => eprintln!("chat: {why}."),
    }
}

/// Turns off bracketed paste; the chat's UI turns it on.
pub const BRACKETED_PASTE_OFF: &str = "\x1b[?2004l";

/// Turn the terminal's autowrap (DECAWM) off and on: the chat wraps the
/// lines it prints itself, with autowrap off around them, so a row a
/// terminal draws wider than counted is cut at the edge rather than
/// spilled onto column 0 of the next (see `wrap.rs`).
pub const AUTOWRAP_OFF: &str = "\x1b[?7l";
pub const AUTOWRAP_ON: &str = "\x1b[?7h";

/// The terminal in raw mode: keys arrive one by one and unechoed, Ctrl-C and
/// Ctrl-D arrive as keys. Output processing stays on, so `\n` still starts a
/// new line.
pub struct RawMode {
    saved: String,
}

/// What `stty` is told for raw mode.
const RAW: &[&str] = &[
    "-icanon", "-echo", "-isig", "-iexten", "-ixon", "min", "1", "time", "0",
];

impl RawMode {
    pub fn enter() -> io::Result<RawMode> {
        let saved = saved_settings()?;
        *SAVED.lock().unwrap_or_else(PoisonError::into_inner) = Some(saved.clone());
        install_panic_hook();
        stty(RAW)?;
        Ok(RawMode { saved })
    }

    /// Ctrl-Z: the terminal as it was, the program stopped until the shell
    /// continues it (`fg`), then raw mode again. The caller has put the
    /// screen back (bracketed paste off) and redraws after.
    ///
    /// Raw mode turns off the terminal's own Ctrl-Z (`-isig`), so this does
    /// what it would have done: SIGTSTP to the whole process group, the
    /// terminal keeper included, which is what the shell waits for. Std
    /// has no signals, so a shell's `kill` sends it; that helper is in the
    /// group too and stops with us, and ends only once continued, so
    /// waiting for it is waiting for `fg`. A group no shell watches (an
    /// orphaned one) ignores SIGTSTP, and the chat goes on at once.
    pub fn suspend(&self) -> io::Result<()> {
        stty(&[&self.saved])?;
        let stopped = Command::new("sh")
            .args(["-c", "kill -TSTP 0"])
            .stdin(Stdio::null())
            .status();
        stty(RAW)?;
        match stopped {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(io::Error::other(format!("kill -TSTP ended with {status}"))),
            Err(e) => Err(e),
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = stty(&[&self.saved]);
        *SAVED.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// On a panic, restore the terminal before the message is printed.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let saved = SAVED.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(saved) = saved {
                let _ = stty(&[&saved]);
                eprintln!();
            }
            previous(info);
        }));
    });
}
