//! The terminal keeper: the process a shell waits for outlives the chat.
//!
//! A chat killed by `kill -9`, `SIGTERM` or `SIGHUP` (none of which std can
//! catch) leaves its terminal in raw mode. Whatever restores it must do so
//! before the shell takes the terminal back and saves its settings, and a
//! shell takes it back the moment the process it waits for ends — under a
//! parent that exits at once (`sh -c 'chat; true'`, `cargo run`), within
//! microseconds of the kill. So on a terminal the `chat` the shell started
//! does not run the chat: it becomes the keeper. It saves the settings,
//! runs the real chat as its child (the same executable and arguments,
//! stdio inherited, [`KEEPER_ENV`] set to its pid), waits, and when the
//! child died by a signal puts the terminal back before it exits itself, so
//! the shell only ever sees a terminal already restored. The keeper never
//! reads stdin; it renames itself `chat-keeper`, so that `killall chat` or
//! `pgrep -x chat` find the chat.
//!
//! The chat, in turn, checks every [`KEEPER_CHECK`] that its keeper is
//! still its parent; if the keeper was killed, it repairs the terminal and
//! ends, rather than stay in raw mode reading keys behind the shell. That
//! way out can still lose the race with the shell (docs/using.md, "In a
//! terminal").

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::Duration;

use super::terminal;

/// Set in the chat a keeper runs, to the keeper's pid: that chat runs
/// itself rather than keep again, and watches for the keeper to go.
pub const KEEPER_ENV: &str = "P2PCHAT_TERMINAL_KEEPER";

/// How often a kept chat checks that its keeper is alive.
const KEEPER_CHECK: Duration = Duration::from_millis(100);

/// The keeper's process name (`/proc/self/comm`, at most 15 bytes).
const KEEPER_NAME: &str = "chat-keeper";
const _: () = assert!(KEEPER_NAME.len() <= 15);

/// Exit code of a kept chat whose keeper was killed (nobody waits for it
/// any more; it is for the record).
const KEEPER_GONE_EXIT: i32 = 1;

/// What `chat` does in this process.
#[derive(Debug, PartialEq, Eq)]
pub enum Kept {
    /// Run the chat here: there is no terminal to keep, this process is
    /// already the kept chat, or the chat could not be started as a child
    /// (then it runs unkept, and only a kill leaves the terminal raw).
    RunHere,
    /// This process kept the terminal for a chat that has ended: exit with
    /// this code (the chat's, or 128 + the signal that killed it).
    Ended(u8),
}

/// Becomes the keeper when the chat will put a terminal in raw mode, or
/// says to run the chat here; called by `bin/chat.rs` before the chat
/// starts.
pub fn keep_terminal() -> Kept {
    if let Some(keeper) = std::env::var_os(KEEPER_ENV) {
        let keeper = keeper.to_str().and_then(|pid| pid.parse().ok());
        // Not the keeper's pid (set by hand, or garbled): 0 is nobody's
        // parent, so the chat ends at the first check.
        watch_keeper(keeper.unwrap_or(0));
        return Kept::RunHere;
    }
    if !terminal::interactive() {
        return Kept::RunHere;
    }
    let Ok(saved) = terminal::saved_settings() else {
        return Kept::RunHere;
    };
    let mut args = std::env::args_os();
    let Some(arg0) = args.next() else {
        return Kept::RunHere;
    };
    let child = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .arg0(arg0)
            .args(args)
            .env(KEEPER_ENV, std::process::id().to_string())
            .spawn()
    });
    let Ok(mut child) = child else {
        return Kept::RunHere;
    };
    let _ = std::fs::write("/proc/self/comm", KEEPER_NAME);
    let Ok(status) = child.wait() else {
        return Kept::Ended(1);
    };
    let (code, died) = outcome(status);
    if let Some(why) = died {
        terminal::repair(&saved, &why);
    } else if terminal::saved_settings().is_ok_and(|now| now != saved) {
        terminal::repair(&saved, "the chat left the terminal changed");
    }
    Kept::Ended(code)
}

/// The exit code for a chat's `status`, and how it died if a signal
/// killed it.
fn outcome(status: ExitStatus) -> (u8, Option<String>) {
    match (status.code(), status.signal()) {
        (Some(code), _) => (code as u8, None),
        (None, Some(signal)) => {
            let name = match signal_name(signal) {
                Some(name) => format!(" ({name})"),
                None => String::new(),
            };
            let code = (128 + signal).clamp(0, 255) as u8;
            (code, Some(format!("killed by signal {signal}{name}")))
        }
        (None, None) => (1, None),
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}

/// In the kept chat: a thread that ends the chat, terminal repaired, once
/// `keeper` is no longer its parent (it was killed; the chat now belongs to
/// init or a subreaper). If the thread cannot start, the chat runs unwatched.
fn watch_keeper(keeper: u32) {
    let _ = thread::Builder::new()
        .name("keeper-watch".into())
        .spawn(move || {
            while std::os::unix::process::parent_id() == keeper {
                thread::sleep(KEEPER_CHECK);
            }
            terminal::abandon("the terminal keeper was killed, so the chat ends");
            std::process::exit(KEEPER_GONE_EXIT);
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_killed_by_a_signal_exits_128_plus_it_and_says_which() {
        assert_eq!(outcome(ExitStatus::from_raw(0)), (0, None));
        // Exit code 2, as wait(2) reports it.
        assert_eq!(outcome(ExitStatus::from_raw(2 << 8)), (2, None));
        assert_eq!(
            outcome(ExitStatus::from_raw(9)),
            (137, Some("killed by signal 9 (SIGKILL)".into()))
        );
        assert_eq!(
            outcome(ExitStatus::from_raw(15)),
            (143, Some("killed by signal 15 (SIGTERM)".into()))
        );
        assert_eq!(
            outcome(ExitStatus::from_raw(1)),
            (129, Some("killed by signal 1 (SIGHUP)".into()))
        );
        assert_eq!(
            outcome(ExitStatus::from_raw(40)),
            (168, Some("killed by signal 40".into()))
        );
    }
}
