//! The terminal itself: raw mode through `stty`, its width, and whether to
//! use colour.
//!
//! Std has no termios, and the user's design allows no crates and no
//! hand-written bindings, so raw mode is `stty` run on `/dev/tty`: its `-g`
//! output is saved first and given back to `stty` to restore. [`RawMode`]
//! restores on drop, and a panic hook restores too, so the terminal is sane
//! on every way out but `kill -9`.

use std::fs::File;
use std::io::{self, IsTerminal};
use std::process::{Command, Stdio};
use std::sync::{Mutex, Once, PoisonError};

/// Settings to restore, for the panic hook (which cannot reach the guard).
static SAVED: Mutex<Option<String>> = Mutex::new(None);

/// Whether stdin and stdout are both a terminal and the terminal can be
/// driven with escape sequences (not `TERM=dumb`).
pub fn interactive() -> bool {
    io::stdin().is_terminal()
        && io::stdout().is_terminal()
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
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
        .filter(|&c: &usize| c >= 20)
        .unwrap_or(80)
}

/// The terminal in raw mode: keys arrive one by one and unechoed, Ctrl-C and
/// Ctrl-D arrive as keys. Output processing stays on, so `\n` still starts a
/// new line.
pub struct RawMode {
    saved: String,
}

impl RawMode {
    pub fn enter() -> io::Result<RawMode> {
        let saved = stty(&["-g"])?;
        *SAVED.lock().unwrap_or_else(PoisonError::into_inner) = Some(saved.clone());
        install_panic_hook();
        stty(&[
            "-icanon", "-echo", "-isig", "-iexten", "-ixon", "min", "1", "time", "0",
        ])?;
        Ok(RawMode { saved })
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
