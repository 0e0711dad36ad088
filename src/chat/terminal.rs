//! The terminal itself: raw mode through `stty`, its width, and whether to
//! use colour.
//!
//! Std has no termios, and the user's design allows no crates and no
//! hand-written bindings, so raw mode is `stty` run on `/dev/tty`: its `-g`
//! output is saved first and given back to `stty` to restore. [`RawMode`]
//! restores on drop, and a panic hook restores too.
//!
//! For the ways out no code of ours sees — `kill -9`, and `SIGTERM` or
//! `SIGHUP`, which std cannot catch — a guardian process holds the saved
//! settings: a `sh` started before raw mode is entered, reading a pipe from
//! the chat. However the chat ends, the kernel closes its end of the pipe;
//! the guardian then reads end of file and restores the terminal, unless
//! the chat said `done` first (it restored the terminal itself, and the
//! shell may already be using it).

use std::fs::File;
use std::io::Write;
use std::io::{self, IsTerminal};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, Once, PoisonError};

/// Settings to restore, for the panic hook (which cannot reach the guard).
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

/// What the guardian runs: ignore the signals that may be sent to the
/// chat's whole process group, wait for the pipe, and unless told `done`,
/// put the saved settings back and turn bracketed paste off.
const GUARDIAN: &str = "trap '' HUP INT TERM QUIT TTOU; read -r word; \
    [ \"$word\" = done ] || { printf '\\033[?2004l' >/dev/tty; exec stty \"$1\" </dev/tty; } 2>/dev/null";

/// The guardian process and our end of its pipe.
struct Guardian {
    child: Child,
    pipe: ChildStdin,
}

impl Guardian {
    fn start(saved: &str) -> io::Result<Guardian> {
        let mut child = Command::new("sh")
            .args(["-c", GUARDIAN, "p2pchat-terminal-guardian", saved])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let pipe = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no pipe"))?;
        Ok(Guardian { child, pipe })
    }

    /// The terminal is restored: the guardian can go without touching it.
    fn dismiss(mut self) {
        let _ = self.pipe.write_all(b"done\n");
        drop(self.pipe);
        let _ = self.child.wait();
    }
}

/// The terminal in raw mode: keys arrive one by one and unechoed, Ctrl-C and
/// Ctrl-D arrive as keys. Output processing stays on, so `\n` still starts a
/// new line.
pub struct RawMode {
    saved: String,
    /// Restores the terminal if this process dies without dropping us.
    guardian: Option<Guardian>,
}

impl RawMode {
    pub fn enter() -> io::Result<RawMode> {
        let saved = stty(&["-g"])?;
        // Without a guardian, raw mode is still worth having: only a
        // kill would then leave the terminal raw.
        let guardian = Guardian::start(&saved).ok();
        *SAVED.lock().unwrap_or_else(PoisonError::into_inner) = Some(saved.clone());
        install_panic_hook();
        stty(&[
            "-icanon", "-echo", "-isig", "-iexten", "-ixon", "min", "1", "time", "0",
        ])?;
        Ok(RawMode { saved, guardian })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = stty(&[&self.saved]);
        *SAVED.lock().unwrap_or_else(PoisonError::into_inner) = None;
        if let Some(guardian) = self.guardian.take() {
            guardian.dismiss();
        }
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
