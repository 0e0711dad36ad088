//! The chat in a real terminal: `tmux` runs `chat` in a pane, `send-keys`
//! types, `capture-pane` reads the screen. Each test has its own tmux server
//! (a private socket), killed when the test ends, pass or fail. Tests skip,
//! saying so, only where tmux is not installed, and never under CI.

mod common;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Chat, Server, WAIT};
use p2pchat::chat::editor::PASTE_GAP;

/// A private tmux server running one shell in one pane, 100×30 unless
/// started otherwise.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts tmux with `env` set for the shell, or `None` (test skipped,
    /// see [`common::skip`]) where tmux is missing.
    fn start(env: &[(&str, &str)]) -> Option<Tmux> {
        Tmux::start_sized(env, 100)
    }

    /// The same, with a pane `columns` wide.
    fn start_sized(env: &[(&str, &str)], columns: usize) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            common::skip("tmux is not installed");
            return None;
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let socket = format!(
            "p2pchat-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let tmux = Tmux { socket };
        let columns = columns.to_string();
        let mut args = vec!["new-session", "-d", "-x", &columns, "-y", "30"];
        let mut env = env.to_vec();
        env.extend([("PS1", "$ "), ("TERM", "xterm-256color")]);
        // No config file of the machine's, unless the test brings its own.
        if !env.iter().any(|(k, _)| *k == "XDG_CONFIG_HOME") {
            env.push(("XDG_CONFIG_HOME", common::NO_CONFIG));
        }
        let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for pair in &pairs {
            args.extend(["-e", pair]);
        }
        args.extend(["bash", "--norc", "--noprofile"]);
        let out = tmux.run(&args);
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux.wait_for("$");
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "0", "-l", text]);
    }

    /// Presses keys by tmux name: Enter, BSpace, C-w, C-c, Left…
    fn press(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend(keys);
        self.run(&args);
    }

    /// Puts `text` in the paste buffer `name`, through stdin: a long text
    /// does not fit in one tmux command.
    fn load_buffer(&self, name: &str, text: &str) {
        let mut child = Command::new("tmux")
            .args(["-L", &self.socket, "load-buffer", "-b", name, "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("run tmux");
        let mut stdin = child.stdin.take().expect("tmux's stdin");
        std::io::Write::write_all(&mut stdin, text.as_bytes()).expect("write to tmux");
        drop(stdin);
        assert!(child.wait().expect("wait for tmux").success());
    }

    /// Runs a shell command line in the pane.
    fn shell(&self, line: &str) {
        self.type_text(line);
        self.press(&["Enter"]);
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "0"]).stdout).into_owned()
    }

    /// The screen with its colours and attributes as escape sequences.
    fn screen_with_escapes(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-e", "-t", "0"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `needle`.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {needle:?}; it shows:\n{screen}"
            );
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// The whole pane: what scrolled off the top, then the screen.
    fn history(&self) -> String {
        self.capture(&["-S", "-"])
    }

    /// The whole pane with the rows the terminal wrapped joined again, as
    /// a reader's copy would have them (`capture-pane -J`).
    fn history_joined(&self) -> String {
        self.capture(&["-J", "-S", "-"])
    }

    fn capture(&self, options: &[&str]) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "0"];
        args.extend(options);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "capture-pane: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the pane, scrolled-off rows included, has shown `needle`
    /// at least `times` times; returns the pane.
    fn wait_for_times(&self, needle: &str, times: usize) -> String {
        self.wait_until(&format!("{needle:?} {times} times"), |pane| {
            pane.matches(needle).count() >= times
        })
    }

    /// Waits until `done` holds of the whole pane (see [`Tmux::history`]),
    /// and returns the pane; `what` names the wait if it times out.
    fn wait_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let history = self.history();
            if done(&history) {
                return history;
            }
            assert!(
                Instant::now() < deadline,
                "the pane never showed {what}; it shows:\n{history}"
            );
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until the chat has exited and the shell has the terminal back,
    /// so that what is typed next goes to the shell.
    fn wait_for_shell(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let out = self.run(&[
                "display-message",
                "-p",
                "-t",
                "0",
                "#{pane_current_command}",
            ]);
            if String::from_utf8_lossy(&out.stdout).trim() == "bash" {
                return;
            }
            assert!(Instant::now() < deadline, "the chat never exited");
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until the last row reads `expected`: the screen is drawn in
    /// more than one write, so one capture may fall between them.
    fn wait_for_last_row(&self, expected: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let row = self.last_row();
            if row == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the last row never read {expected:?}; it reads {row:?}; screen:\n{}",
                self.screen()
            );
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until the last row is a ring's prompt, `before (N s)after`,
    /// whatever the seconds left; returns them.
    fn wait_for_countdown(&self, before: &str, after: &str) -> u64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let row = self.last_row();
            let secs = row
                .strip_prefix(before)
                .and_then(|r| r.strip_prefix(" ("))
                .and_then(|r| r.strip_suffix(after))
                .and_then(|r| r.strip_suffix(" s)"))
                .and_then(|n| n.parse().ok());
            if let Some(secs) = secs {
                return secs;
            }
            assert!(
                Instant::now() < deadline,
                "the last row never read {before} (N s){after}; it reads {row:?}"
            );
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// The last non-empty row: where the prompt and typed text are.
    fn last_row(&self) -> String {
        self.screen()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim_end()
            .to_string()
    }

    /// Starts `chat --name NAME` against `server` in the pane.
    fn chat(&self, server: &Server, name: &str) {
        self.chat_with(server, name, "");
    }

    /// The same, with more options.
    fn chat_with(&self, server: &Server, name: &str, options: &str) {
        self.shell(&format!(
            "{} --server {} --name {name} {options}",
            env!("CARGO_BIN_EXE_chat"),
            server.addr
        ));
        self.wait_for("connect to:");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

/// bob (piped) calls alice (in the terminal).
fn bob_calls_alice(server: &Server, tmux: &Tmux) -> Chat {
    piped_call(server, tmux, "bob", "alice")
}

/// `caller`, a piped chat, calls `callee`, the chat in the terminal, who
/// answers; returns when both are chatting.
fn piped_call(server: &Server, tmux: &Tmux, caller: &str, callee: &str) -> Chat {
    let mut chat = Chat::spawn(server.addr, &["--name", caller]);
    chat.label = caller.into();
    chat.expect("Enter a name to chat with");
    chat.send(callee);
    tmux.wait_for(&format!("{caller} is calling: y to answer, n to decline."));
    tmux.shell("y");
    chat.expect(&format!("Connected to {callee}"));
    tmux.wait_for(&format!("{caller} connected"));
    tmux.wait_for(&format!("to {caller}>"));
    chat
}

#[test]
fn half_typed_text_survives_incoming_lines_and_is_sent_whole() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let mut bob = bob_calls_alice(&server, &tmux);

    tmux.type_text("half typed ");
    tmux.wait_for("to bob> half typed");
    for line in ["one", "two", "three"] {
        bob.send(line);
    }
    tmux.wait_for("bob: three");
    tmux.wait_for_last_row("to bob> half typed");
    let screen = tmux.screen();
    let one = screen.find("bob: one").unwrap();
    let three = screen.find("bob: three").unwrap();
    let typed = screen.rfind("to bob> half typed").unwrap();
    assert!(one < three && three < typed, "{screen}");

    tmux.type_text("then whole");
    tmux.press(&["Enter"]);
    bob.expect("alice: half typed then whole");
    // The sent line stays on screen above a fresh prompt.
    tmux.wait_for_last_row("to bob>");
    tmux.wait_for("to bob> half typed then whole");
}

#[test]
fn backspace_and_ctrl_w_edit_multibyte_text_by_character() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let mut bob = bob_calls_alice(&server, &tmux);

    tmux.type_text("héllo wörld 日本");
    tmux.wait_for("日本");
    tmux.press(&["BSpace"]);
    tmux.press(&["C-w"]);
    tmux.type_text("ok ✓");
    tmux.press(&["Home", "Right", "Right", "BSpace"]);
    tmux.type_text("e");
    tmux.press(&["End", "Enter"]);
    bob.expect("alice: hello wörld ok ✓");

    // Up recalls the line typed before, and it can be sent again.
    tmux.press(&["Up", "Enter"]);
    bob.expect("alice: hello wörld ok ✓");
}

#[test]
fn ctrl_c_in_a_chat_ends_it_on_both_sides() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let mut bob = bob_calls_alice(&server, &tmux);
    tmux.press(&["C-c"]);
    tmux.wait_for("You left the chat with bob.");
    bob.expect("alice left the chat.");
    bob.expect("Online users (2)");
    tmux.wait_for("Online users (2)");
    tmux.wait_for_last_row("connect to:");
    // Ctrl-C at the list ends the program, terminal restored.
    tmux.press(&["C-c"]);
    tmux.wait_for_shell();
    tmux.expect_terminal_restored();
}

#[test]
fn q_at_the_list_leaves_the_terminal_as_it_was() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    tmux.type_text("q");
    tmux.press(&["Enter"]);
    tmux.expect_terminal_restored();
}

#[test]
fn colour_is_used_on_a_terminal_and_never_with_no_color() {
    for (env, want_colour) in [(vec![], true), (vec![("NO_COLOR", "1")], false)] {
        let Some(tmux) = Tmux::start(&env) else {
            return;
        };
        let server = Server::start();
        tmux.chat(&server, "alice");
        let mut bob = bob_calls_alice(&server, &tmux);
        bob.send("a coloured line?");
        tmux.wait_for("bob: a coloured line?");
        let screen = tmux.screen_with_escapes();
        // Foreground colours (30–37, 90–97) and dim.
        let coloured = ["\x1b[3", "\x1b[9", "\x1b[2m", ";3"].iter().any(|code| {
            screen
                .match_indices(code)
                .any(|(i, _)| !screen[i..].starts_with("\x1b[39m"))
        });
        assert_eq!(
            coloured, want_colour,
            "NO_COLOR={env:?}; screen:\n{screen:?}"
        );
        bob.send("q");
        tmux.wait_for("bob left the chat.");
    }
}

#[test]
fn piped_output_never_holds_an_escape_or_a_bell() {
    let server = Server::start();
    let mut alice = common::login(&server, "alice");
    let mut bob = common::login(&server, "bob");
    common::connect(&mut bob, &mut alice);
    bob.send("hello");
    alice.expect("bob: hello");
    alice.send("q");
    bob.expect("Online users (2)");
    for out in [alice.stdout(), bob.stdout()] {
        assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    }
}

#[test]
fn ctrl_d_ends_a_chat_and_then_the_program() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let mut bob = bob_calls_alice(&server, &tmux);
    tmux.press(&["C-d"]);
    bob.expect("alice left the chat.");
    tmux.wait_for("You left the chat with bob.");
    tmux.wait_for("connect to:");
    tmux.press(&["C-d"]);
    tmux.wait_for_shell();
    tmux.shell("echo exit=$?");
    tmux.wait_for("exit=0");
}

#[test]
fn the_terminal_is_restored_when_the_chat_stops_on_an_error() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let mut server = Server::start();
    // Raw mode is on at the name prompt; then the server vanishes before
    // we ever registered, which ends the chat with an error.
    tmux.shell(&format!(
        "{} --server {}",
        env!("CARGO_BIN_EXE_chat"),
        server.addr
    ));
    tmux.wait_for("your name:");
    server.kill();
    // A name typed once the server is gone: the chat cannot register.
    tmux.shell("alice");
    tmux.wait_for("chat: lost the connection to the registration server");
    tmux.wait_for_shell();
    tmux.expect_terminal_restored();
}

#[test]
fn an_incoming_call_rings_the_bell_once_unless_quiet() {
    for (quiet, bells) in [(false, 1), (true, 0)] {
        let Some(tmux) = Tmux::start(&[]) else { return };
        let server = Server::start();
        // Everything the chat writes to the terminal, raw.
        let log = std::env::temp_dir().join(format!("{}.out", tmux.socket));
        tmux.run(&["pipe-pane", "-t", "0", &format!("cat > {}", log.display())]);
        tmux.chat_with(&server, "alice", if quiet { "--quiet" } else { "" });
        let mut bob = bob_calls_alice(&server, &tmux);
        bob.send("q");
        tmux.wait_for("bob left the chat.");
        tmux.run(&["pipe-pane", "-t", "0"]);
        // A capture that failed or is cut short must not pass for a
        // quiet one: it holds what the screen showed last.
        let raw = captured_through(&log, "bob left the chat.");
        let _ = std::fs::remove_file(&log);
        assert_eq!(
            raw.iter().filter(|&&b| b == 0x07).count(),
            bells,
            "quiet={quiet}"
        );
    }
}

#[test]
fn a_resized_terminal_gets_the_typed_line_redrawn_to_fit() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let long: String = (1..=15).map(|i| format!("word{i:02} ")).collect();
    tmux.type_text(long.trim_end());
    tmux.wait_for("word15");
    tmux.run(&["resize-window", "-t", "0", "-x", "40", "-y", "30"]);
    let deadline = Instant::now() + WAIT;
    loop {
        let row = tmux.last_row();
        let screen = tmux.screen();
        // Only the tail around the cursor fits, on one row, with no
        // leftover of the old, wider row above it.
        if row.chars().count() < 40 && row.ends_with("word15") && !screen.contains("word08") {
            break;
        }
        assert!(Instant::now() < deadline, "not redrawn to fit:\n{screen}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// What `pipe-pane` wrote to `log`, once it holds `last` (the capture's
/// `cat` may still be writing when `pipe-pane` is stopped); panics if it
/// never does.
fn captured_through(log: &std::path::Path, last: &str) -> Vec<u8> {
    let deadline = Instant::now() + WAIT;
    loop {
        let raw = std::fs::read(log).unwrap_or_default();
        if raw.windows(last.len()).any(|w| w == last.as_bytes()) {
            return raw;
        }
        assert!(
            Instant::now() < deadline,
            "the pane's output was not captured through {last:?}: {:?}",
            String::from_utf8_lossy(&raw)
        );
        thread::sleep(Duration::from_millis(25));
    }
}

/// Pids of the processes below `pid`, depth first.
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for child in children.split_whitespace().filter_map(|p| p.parse().ok()) {
        found.push(child);
        found.extend(descendants(child));
    }
    found
}

/// The process name of `pid`, as `pgrep` and `killall` match it.
fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The parent pid of `pid` (field 4 of `/proc/PID/stat`).
fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

impl Tmux {
    /// The pid of the `chat` running in the pane: the chat itself, never
    /// its terminal keeper (`chat-keeper`).
    fn chat_pid(&self) -> u32 {
        let out = self.run(&["display-message", "-p", "-t", "0", "#{pane_pid}"]);
        let shell: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let chat = descendants(shell)
                .into_iter()
                .find(|&pid| comm(pid) == "chat");
            if let Some(pid) = chat {
                return pid;
            }
            assert!(Instant::now() < deadline, "no chat process in the pane");
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Asserts the shell's terminal is back in canonical mode with echo:
    /// the two modes, each with a `-` when off, printed whole between
    /// brackets, so `-icanon,echo` cannot pass for them. (The quotes split
    /// the marker in the typed command, so only the output shows it.)
    fn expect_terminal_restored(&self) {
        self.wait_for_shell();
        self.shell(
            "clear; echo \"mo\"\"des=[$(stty -a | tr ' ;' '\\n\\n' | grep -x -E -- '-?(icanon|echo)' | paste -sd,)]\"",
        );
        let deadline = Instant::now() + WAIT;
        let modes = loop {
            let screen = self.screen();
            let printed = screen
                .lines()
                .find_map(|l| l.trim_end().strip_prefix("modes=[")?.strip_suffix(']'));
            if let Some(modes) = printed {
                break modes.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "the modes were never shown:\n{screen}"
            );
            thread::sleep(Duration::from_millis(25));
        };
        assert_eq!(modes, "icanon,echo");
        // The chat writes its lines with autowrap off; it is on again.
        let wrap = self.run(&["display-message", "-p", "-t", "0", "#{wrap_flag}"]);
        assert_eq!(
            String::from_utf8_lossy(&wrap.stdout).trim(),
            "1",
            "autowrap left off"
        );
    }
}

/// CPU time (user + system) a process has used so far. Panics if it
/// cannot be read: a zero would pass any bound.
fn cpu_time(pid: u32) -> Duration {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // Fields after the command name (which is in parentheses): utime and
    // stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11..13]
        .iter()
        .map(|t| {
            t.parse::<u64>()
                .unwrap_or_else(|_| panic!("{path}: {stat}"))
        })
        .sum();
    // Linux reports CPU time in clock ticks of 1/100 s (USER_HZ).
    Duration::from_millis(ticks * 10)
}

#[test]
fn backspace_removes_a_whole_emoji_flag_or_accented_letter() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let mut bob = bob_calls_alice(&server, &tmux);
    for cluster in ["👍🏽", "🇫🇷", "👨‍👩‍👧", "e\u{301}", "1\u{fe0f}\u{20e3}"] {
        tmux.type_text(&format!("a{cluster}"));
        tmux.press(&["BSpace"]);
        tmux.type_text("b");
        tmux.press(&["Enter"]);
        bob.expect("alice: ab\n");
    }
    // Left moves over the cluster whole too: the x lands before it.
    tmux.type_text("👍🏽");
    tmux.press(&["Left"]);
    tmux.type_text("x");
    tmux.press(&["Enter"]);
    bob.expect("alice: x👍🏽\n");
}

#[test]
fn a_ten_thousand_character_paste_is_drawn_editable_and_cheap() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let mut bob = bob_calls_alice(&server, &tmux);
    let chat = tmux.chat_pid();
    let pasted = format!("{}END", "p".repeat(9_997));
    let out = tmux.run(&["set-buffer", "-b", "big", &pasted]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = cpu_time(chat);
    tmux.run(&["paste-buffer", "-p", "-b", "big", "-t", "0"]);
    // Lines from the peer keep showing while the paste is handled.
    bob.send("still here");
    tmux.wait_for("bob: still here");
    tmux.wait_for("pEND");
    tmux.press(&["BSpace"]);
    tmux.wait_for("pEN");
    let used = cpu_time(chat).saturating_sub(before);
    // The bench measures this properly (keys per second in a 10,000-character
    // line); here only a generous bound, for a debug build on a shared machine.
    assert!(
        used < Duration::from_secs(2),
        "the paste took {used:?} of CPU"
    );
    tmux.press(&["Enter"]);
    bob.expect("alice: pppp");
    common::eventually(
        "all of the paste but the last character reaches bob",
        || {
            let out = bob.stdout();
            let received: String = out
                .lines()
                .filter_map(|l| l.strip_prefix("alice: "))
                .collect();
            received == format!("{}EN", "p".repeat(9_997))
        },
    );
}

#[test]
fn a_pasted_q_line_is_sent_as_text_and_ends_nothing() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let mut bob = bob_calls_alice(&server, &tmux);
    tmux.run(&["set-buffer", "-b", "lines", "hello\nq\n/quit\nhalf"]);
    tmux.run(&["paste-buffer", "-p", "-b", "lines", "-t", "0"]);
    bob.expect("alice: hello\n");
    bob.expect("alice: q\n");
    bob.expect("alice: /quit\n");
    tmux.wait_for_last_row("to bob> half");
    tmux.type_text(" done");
    tmux.press(&["Enter"]);
    bob.expect("alice: half done\n");
    assert!(!bob.stdout().contains("alice left"), "{}", bob.stdout());
}

#[test]
fn an_unbracketed_paste_is_text_too_q_and_quit_included() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let mut bob = bob_calls_alice(&server, &tmux);
    // The bytes a terminal without bracketed paste sends, in one write:
    // line breaks as CR, no markers around them.
    tmux.type_text("hello\rq\r/quit\r");
    bob.expect("alice: hello\n");
    bob.expect("alice: q\n");
    bob.expect("alice: /quit\n");
    // tmux's paste-buffer without -p sends no markers either.
    tmux.run(&["set-buffer", "-b", "lines", "two\nq\nthree"]);
    tmux.run(&["paste-buffer", "-b", "lines", "-t", "0"]);
    bob.expect("alice: two\n");
    bob.expect("alice: q\n");
    tmux.wait_for_last_row("to bob> three");
    // A person's pause before typing again. Not for ordering: the paste
    // is on screen already. Input within PASTE_GAP of a paste is taken for
    // more of it, so an Enter sent sooner would be pasted, not typed.
    thread::sleep(PASTE_GAP * 5);
    // Typed after the paste: the Enter sends the line, and q is a command.
    tmux.press(&["Enter"]);
    bob.expect("alice: three\n");
    tmux.wait_for_last_row("to bob>");
    assert!(!bob.stdout().contains("alice left"), "{}", bob.stdout());
    tmux.type_text("q");
    tmux.press(&["Enter"]);
    bob.expect("alice left the chat.");
}

#[test]
fn resizing_to_twelve_columns_and_back_leaves_no_stale_rows() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let mut bob = bob_calls_alice(&server, &tmux);
    let long: String = (1..=12).map(|i| format!("w{i:02} ")).collect();
    tmux.type_text(long.trim_end());
    tmux.wait_for("w12");
    tmux.run(&["resize-window", "-t", "0", "-x", "12", "-y", "30"]);
    common::eventually("the row redrawn for 12 columns", || {
        let row = tmux.last_row();
        row.chars().count() <= 11 && row.ends_with("w12") && row.contains('<')
    });
    // An incoming line is wrapped to the width, the typed row stays whole.
    bob.send("a line longer than twelve");
    tmux.wait_for("bob: a line");
    tmux.run(&["resize-window", "-t", "0", "-x", "100", "-y", "30"]);
    let expected = format!("to bob> {}", long.trim_end());
    common::eventually("the row redrawn for 100 columns", || {
        tmux.last_row() == expected
    });
    let screen = tmux.screen();
    let rows_with_text = screen.lines().filter(|l| l.contains("w12")).count();
    assert_eq!(rows_with_text, 1, "stale rows:\n{screen}");
    // Ctrl-L clears the screen and draws the line again.
    tmux.press(&["C-l"]);
    common::eventually("a cleared screen", || {
        let screen = tmux.screen();
        screen.lines().filter(|l| !l.trim().is_empty()).count() == 1 && screen.contains(&expected)
    });
    tmux.press(&["Enter"]);
    bob.expect(&format!("alice: {}", long.trim_end()));
}

#[test]
fn with_term_dumb_arrows_never_become_text_and_no_escape_is_written() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    let log = std::env::temp_dir().join(format!("{}.out", tmux.socket));
    tmux.shell(&format!(
        "TERM=dumb {} --server {}",
        env!("CARGO_BIN_EXE_chat"),
        server.addr
    ));
    tmux.wait_for("Enter your visible name:");
    tmux.run(&["pipe-pane", "-t", "0", &format!("cat > {}", log.display())]);
    tmux.type_text("abc");
    tmux.press(&["Left"]);
    tmux.type_text("X");
    tmux.press(&["Enter"]);
    tmux.wait_for("Online users (1)");
    tmux.wait_for("abcX (you)");
    tmux.type_text("q");
    tmux.press(&["Enter"]);
    tmux.wait_for_shell();
    tmux.run(&["pipe-pane", "-t", "0"]);
    let raw = captured_through(&log, "quit: q");
    let _ = std::fs::remove_file(&log);
    // The terminal's own echo shows the arrow as ^[[D; the chat wrote no
    // escape of its own before the shell took the terminal back.
    let end = raw.windows(7).position(|w| w == b"quit: q").unwrap();
    let chat_part = &raw[..end];
    assert!(
        !chat_part.contains(&0x1b),
        "{:?}",
        String::from_utf8_lossy(chat_part)
    );
}

#[test]
fn the_terminal_is_restored_after_kill_9_term_and_hup() {
    for (signal, said) in [
        ("-KILL", "signal 9 (SIGKILL)"),
        ("-TERM", "signal 15 (SIGTERM)"),
        ("-HUP", "signal 1 (SIGHUP)"),
    ] {
        let Some(tmux) = Tmux::start(&[]) else { return };
        let server = Server::start();
        // Under a parent that exits normally the moment the chat's keeper
        // does: an interactive bash would repair the terminal itself after
        // a child killed by a signal, and a parent that lingered would give
        // a late restore time to win the race with bash.
        tmux.shell(&format!(
            "sh -c '{} --server {} --name alice; true'",
            env!("CARGO_BIN_EXE_chat"),
            server.addr
        ));
        tmux.wait_for("connect to:");
        let chat = tmux.chat_pid();
        let killed = Command::new("kill")
            .args([signal, &chat.to_string()])
            .status()
            .expect("run kill");
        assert!(killed.success(), "kill {signal} {chat}");
        tmux.wait_for(&format!(
            "chat: killed by {said}; the terminal is restored."
        ));
        tmux.expect_terminal_restored();
    }
}

#[test]
fn a_chat_whose_terminal_keeper_is_killed_ends_and_stops_reading() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let chat = tmux.chat_pid();
    let keeper = parent_of(chat);
    assert_eq!(comm(keeper), "chat-keeper");
    let killed = Command::new("kill")
        .args(["-KILL", &keeper.to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success(), "kill -KILL {keeper}");
    tmux.wait_for("the terminal keeper was killed, so the chat ends");
    // Gone, or a zombie nobody reaps: either way it reads nothing more.
    common::eventually("the chat ends", || {
        std::fs::read_to_string(format!("/proc/{chat}/stat")).map_or(true, |stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
    });
    // bash, the keeper's parent, repairs the terminal of a child killed by
    // a signal; under a parent that exits normally this way out races the
    // shell (docs/using.md, "In a terminal").
    tmux.expect_terminal_restored();
}

#[test]
fn a_ring_sets_the_half_typed_line_aside_and_declining_brings_it_back() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    tmux.type_text("car");
    tmux.wait_for_last_row("connect to: car");
    let mut bob = Chat::spawn(server.addr, &["--name", "bob"]);
    bob.label = "bob".into();
    bob.expect("Enter a name to chat with");
    bob.send("alice");
    tmux.wait_for("bob is calling: y to answer, n to decline.");
    // The ring's own prompt, empty: "car" is neither the answer nor sent.
    tmux.wait_for_countdown("bob is calling", ": y/n?");
    tmux.shell("n");
    bob.expect("alice declined.");
    tmux.wait_for_last_row("connect to: car");
    // And it is still a line to finish and use at the list.
    tmux.type_text("ol");
    tmux.press(&["Enter"]);
    tmux.wait_for("No user named carol is online.");
}

/// The notice for a line half typed for a chat the peer ended.
const SET_ASIDE: &str = "(what you were typing was not sent; ↑ brings it back)";

#[test]
fn a_line_half_typed_when_the_peer_quits_is_set_aside_and_calls_no_one() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    let mut alice = common::login(&server, "alice");
    tmux.chat(&server, "bob");
    let mut carol = piped_call(&server, &tmux, "carol", "bob");
    // Meant for carol, and the name of someone online.
    tmux.type_text("alice");
    tmux.wait_for_last_row("to carol> alice");
    carol.send("q");
    carol.expect("You left the chat with bob.");
    tmux.wait_for("carol left the chat.");
    tmux.wait_for(SET_ASIDE);
    tmux.wait_for("Online users (3):");
    tmux.wait_for_last_row("connect to:");

    // ENTER on the empty line shows the list again; had the line still
    // held `alice`, it would ring her instead.
    tmux.press(&["Enter"]);
    let history = tmux.wait_until("the list again, or a call", |pane| {
        pane.matches("Online users (3):").count() >= 2 || pane.contains("Ringing alice")
    });
    for called in ["connect to: alice", "Ringing alice", "calling alice"] {
        assert!(!history.contains(called), "{called:?}:\n{history}");
    }
    // A ring for alice would be on her connection before this answer.
    alice.send("/who");
    let listed = alice.out_wait("Online users (3):", WAIT);
    let heard = alice.stdout();
    assert!(!heard.contains("is calling"), "alice was rung:\n{heard}");
    assert!(listed, "alice never listed three users:\n{heard}");
    assert_eq!(
        common::server_list(&server),
        ["USER alice free", "USER bob free", "USER carol free"]
    );

    // Set aside, not lost: ↑ brings it back, and only then is it a call.
    tmux.press(&["Up"]);
    tmux.wait_for_last_row("connect to: alice");
    let history = tmux.history();
    assert_eq!(history.matches(SET_ASIDE).count(), 1, "{history}");
    tmux.press(&["Enter"]);
    alice.expect("bob is calling: y to answer, n to decline.");
}

#[test]
fn q_quit_and_help_work_while_your_own_call_rings() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    let mut bob = Chat::spawn(server.addr, &["--name", "bob"]);
    bob.label = "bob".into();
    bob.expect("Enter a name to chat with");
    tmux.chat(&server, "alice");
    tmux.wait_for("Online users (2):");

    tmux.shell("bob");
    tmux.wait_for("Ringing bob… (Ctrl-C cancels)");
    bob.expect("alice is calling: y to answer, n to decline.");
    // /help answers at once, and the call rings on.
    tmux.shell("/help");
    tmux.wait_for("/help           this list");
    tmux.wait_for_countdown("ringing bob", "…");
    assert_eq!(
        common::server_list(&server),
        ["USER alice busy", "USER bob busy"]
    );
    assert!(!bob.stdout().contains("hung up"), "{}", bob.stdout());

    let typed = Instant::now();
    tmux.shell("q");
    tmux.wait_for("Call to bob cancelled.");
    let took = typed.elapsed();
    assert!(took < Duration::from_secs(2), "q took {took:?}");
    bob.expect("alice hung up before you answered.");
    tmux.wait_for_times("Online users (2):", 2);
    tmux.wait_for_last_row("connect to:");
    // Still running, at the list.
    tmux.shell("/who");
    tmux.wait_for_times("Online users (2):", 3);

    // /quit is q.
    tmux.shell("bob");
    bob.expect("alice is calling: y to answer, n to decline.");
    tmux.wait_for_times("Ringing bob… (Ctrl-C cancels)", 2);
    tmux.shell("/quit");
    tmux.wait_for_times("Call to bob cancelled.", 2);
    bob.expect("alice hung up before you answered.");
    tmux.wait_for_times("Online users (2):", 4);
    tmux.wait_for_last_row("connect to:");
    assert_eq!(
        common::server_list(&server),
        ["USER alice free", "USER bob free"]
    );
    // And q at the list still leaves.
    tmux.shell("q");
    tmux.wait_for_shell();
}

#[test]
fn a_line_set_aside_by_a_ring_comes_back_after_a_hang_up_and_after_a_chat_the_peer_ended() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    let mut alice = common::login(&server, "alice");
    tmux.chat(&server, "bob");
    tmux.type_text("car");
    tmux.wait_for_last_row("connect to: car");

    // alice rings and gives up before bob answers.
    alice.send("bob");
    tmux.wait_for_countdown("alice is calling", ": y/n?");
    alice.send("q");
    alice.expect("Call to bob cancelled.");
    tmux.wait_for("alice hung up before you answered.");
    tmux.wait_for_last_row("connect to: car");

    // alice rings again, bob answers; what he half types for her is his
    // to recall when she leaves, and the line for the list comes back.
    alice.send("bob");
    tmux.wait_for_countdown("alice is calling", ": y/n?");
    tmux.shell("y");
    alice.expect("Connected to bob");
    tmux.wait_for_last_row("to alice>");
    tmux.type_text("ali");
    tmux.wait_for_last_row("to alice> ali");
    alice.send("q");
    alice.expect("You left the chat with bob.");
    tmux.wait_for("alice left the chat.");
    tmux.wait_for(SET_ASIDE);
    tmux.wait_for_last_row("connect to: car");
    tmux.press(&["Up"]);
    tmux.wait_for_last_row("connect to: ali");
    tmux.press(&["Down"]);
    tmux.wait_for_last_row("connect to: car");
    let heard = alice.stdout();
    assert!(!heard.contains("bob: ali"), "{heard}");
}

/// The rows of the one line in `pane` whose first row starts with `first`,
/// through the row holding `last`.
fn rows_of<'a>(pane: &'a str, first: &str, last: &str) -> Vec<&'a str> {
    let rows: Vec<&str> = pane.lines().map(str::trim_end).collect();
    let start = rows
        .iter()
        .position(|row| row.starts_with(first))
        .unwrap_or_else(|| panic!("no row starts with {first:?}:\n{pane}"));
    let end = start
        + rows[start..]
            .iter()
            .position(|row| row.contains(last))
            .unwrap_or_else(|| panic!("no row after {first:?} holds {last:?}:\n{pane}"));
    rows[start..=end].to_vec()
}

#[test]
fn a_long_line_wraps_at_spaces_under_its_text_and_a_300_character_url_copies_whole() {
    let Some(tmux) = Tmux::start_sized(&[], 60) else {
        return;
    };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let mut bob = bob_calls_alice(&server, &tmux);
    let path: String = (0..280)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let url = format!("https://example.com/{path}");
    assert_eq!(url.len(), 300);
    let text = format!(
        "a long line from bob whose words wrap at spaces and never inside \
         a word, 日本語の 文も 同じ, see {url} and then more words after the \
         address, which go on under the text, done"
    );
    bob.send(&text);
    let pane = tmux.wait_until("the whole line", |pane| pane.contains("text, done"));

    // As drawn: the URL is the one thing the terminal wrapped.
    let drawn = rows_of(&pane, "bob: a long line", "text, done");
    for row in &drawn[1..] {
        let is_url = row
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":/.".contains(c));
        assert!(
            row.starts_with("     ") || is_url,
            "a row neither indented nor the URL wrapped:\n{}",
            drawn.join("\n")
        );
    }

    // As copied: every row but the first is indented under the text, no
    // word is cut, and the URL comes back whole on a row of its own.
    let joined = tmux.history_joined();
    let copied = rows_of(&joined, "bob: a long line", "text, done");
    for row in &copied[1..] {
        assert!(
            row.starts_with("     ") && !row.starts_with("      "),
            "not indented under the text:\n{}",
            copied.join("\n")
        );
    }
    let words: Vec<&str> = copied
        .iter()
        .flat_map(|row| row.split_whitespace())
        .skip(1)
        .collect();
    assert_eq!(words, text.split_whitespace().collect::<Vec<_>>());
    assert!(copied.iter().any(|row| row.trim() == url), "{joined}");
}

#[test]
fn a_peer_cannot_put_a_row_of_its_own_at_the_first_column() {
    let Some(tmux) = Tmux::start_sized(&[], 60) else {
        return;
    };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let mut bob = bob_calls_alice(&server, &tmux);
    // Each would start a row of its own at column 0 of a 60-column pane,
    // after `bob: ` (5 columns): words filling the first row, one long
    // word whose end the terminal wraps, the same with a blank that is
    // not a space (U+2800, braille blank), and emoji with a skin tone,
    // which the chat counts 2 columns wide and tmux 3.3 draws 4 wide
    // (13 of them and `ab` are 54 columns there).
    let fill = format!("{} {}", "x".repeat(26), "y".repeat(27));
    let thumbs = format!("{}ab", "👍🏽".repeat(13));
    let forgeries = [
        format!("{fill} Online users (9):"),
        format!("{}Online users (9):", "x".repeat(55)),
        format!("{}Online\u{2800}users\u{2800}(9):", "x".repeat(55)),
        format!("{fill} mallory left the chat."),
        format!("{thumbs} Online users (9):"),
    ];
    for forgery in &forgeries {
        bob.send(forgery);
    }
    bob.send("end of forgeries");
    let pane = tmux.wait_until("the last line", |pane| {
        pane.contains("bob: end of forgeries")
    });
    for row in pane.lines() {
        assert!(
            !row.starts_with("Online users (9):")
                && !row.starts_with("Online\u{2800}users")
                && !row.starts_with("mallory left the chat."),
            "a peer forged a row:\n{pane}"
        );
    }
    // Only the over-long word's own end may reach column 0.
    assert!(pane.lines().any(|row| row.trim_end() == "Online"), "{pane}");
}

/// alice and bob, each in a terminal of their own; bob calls, alice
/// answers. `bob_options` go on bob's command line.
fn two_terminals(server: &Server, bob_options: &str) -> Option<(Tmux, Tmux)> {
    let alice = Tmux::start(&[])?;
    let bob = Tmux::start(&[])?;
    alice.chat(server, "alice");
    bob.chat_with(server, "bob", bob_options);
    bob.type_text("alice");
    bob.press(&["Enter"]);
    alice.wait_for("bob is calling: y to answer, n to decline.");
    alice.shell("y");
    alice.wait_for_last_row("to bob>");
    bob.wait_for_last_row("to alice>");
    Some((alice, bob))
}

#[test]
fn alice_sees_bob_is_typing_while_he_types_and_not_once_he_sent_it() {
    let server = Server::start();
    let Some((alice, bob)) = two_terminals(&server, "") else {
        return;
    };
    bob.type_text("a secret half");
    let screen = alice.wait_for("bob is typing…");
    // On the prompt row, beside the prompt; none of the text.
    let row = alice.last_row();
    assert!(row.starts_with("to bob>"), "{row:?}");
    assert!(row.ends_with("bob is typing…"), "{row:?}");
    assert!(!screen.contains("secret"), "{screen}");
    // alice's own half-typed line stays where it is.
    alice.type_text("mine");
    alice.wait_until("alice's line beside the notice", |_| {
        let row = alice.last_row();
        row.starts_with("to bob> mine") && row.ends_with("bob is typing…")
    });
    bob.type_text(" made whole");
    bob.press(&["Enter"]);
    alice.wait_for("bob: a secret half made whole");
    alice.wait_for_last_row("to bob> mine");
    // And the other way round: bob sees alice's, until she clears it.
    bob.wait_for("alice is typing…");
    alice.press(&["C-u"]);
    bob.wait_for_last_row("to alice>");
}

#[test]
fn with_no_typing_neither_side_hears_of_it() {
    let server = Server::start();
    let Some((alice, bob)) = two_terminals(&server, "--no-typing") else {
        return;
    };
    for (typist, watcher) in [(&alice, &bob), (&bob, &alice)] {
        typist.type_text("half typed");
        typist.wait_until("the typed text", |_| {
            typist.last_row().ends_with("half typed")
        });
        // No event marks a notice that never comes: the watcher's row is
        // watched a while, far longer than loopback takes.
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            let row = watcher.last_row();
            assert!(!row.contains("is typing"), "{row:?}");
            thread::sleep(Duration::from_millis(25));
        }
        typist.press(&["C-u"]);
    }
}

#[test]
fn a_ring_counts_down_yes_answers_and_commands_work_in_any_case() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let mut bob = Chat::spawn(server.addr, &["--name", "bob"]);
    bob.label = "bob".into();
    bob.expect("Enter a name to chat with");

    // The ring counts down on the callee's prompt, and `Yes` answers it.
    bob.send("alice");
    let first = tmux.wait_for_countdown("bob is calling", ": y/n?");
    assert!((25..=30).contains(&first), "{first} s");
    let deadline = Instant::now() + WAIT;
    while tmux.wait_for_countdown("bob is calling", ": y/n?") >= first {
        assert!(Instant::now() < deadline, "the countdown never moved");
        thread::sleep(Duration::from_millis(100));
    }
    tmux.shell("Yes");
    bob.expect("Connected to alice");
    tmux.wait_for_last_row("to bob>");

    // Commands in any case, a blank line not sent, an action both ways.
    tmux.shell("/WHO");
    tmux.wait_for("Online users (2):");
    tmux.shell("   ");
    // A person's pause: keys within PASTE_GAP of a line break are a paste.
    thread::sleep(PASTE_GAP * 5);
    tmux.shell("/me waves");
    bob.expect("\n* alice waves\n");
    bob.send("/me nods");
    tmux.wait_for("* bob nods");
    tmux.shell("after");
    bob.expect("alice: after");
    assert!(!bob.stdout().contains("alice:  "), "{}", bob.stdout());
    bob.send("q");
    tmux.wait_for("bob left the chat.");
    tmux.wait_for_last_row("connect to:");

    // Away: bob is told, and alice hears of his call once back.
    tmux.shell("/Away lunch");
    tmux.wait_for("You are away (lunch)");
    tmux.wait_for_last_row("connect to (away):");
    let away = common::within(WAIT, || {
        bob.send("alice");
        bob.out_wait(
            "alice is away: lunch; alice will be told you called.",
            Duration::from_millis(500),
        )
    });
    assert!(away, "{}", bob.stdout());
    let rung = tmux
        .history()
        .matches("bob is calling: y to answer")
        .count();
    assert_eq!(rung, 1, "rung while away:\n{}", tmux.history());
    tmux.shell("/back");
    tmux.wait_for("You are back.");
    tmux.wait_for("bob tried to call you at ");
    tmux.shell("/ignore bob");
    tmux.wait_for("Calls from bob are declined unseen");
    tmux.shell("/UNIGNORE bob");
    tmux.wait_for("Calls from bob ring again.");

    // The caller's prompt counts down too.
    tmux.shell("bob");
    bob.expect("alice is calling: y to answer, n to decline.");
    let left = tmux.wait_for_countdown("ringing bob", "…");
    assert!((25..=30).contains(&left), "{left} s");
    bob.send("no");
    tmux.wait_for("bob declined.");
}

#[test]
fn alt_b_ctrl_left_and_alt_d_go_by_word_and_ctrl_y_yanks_what_was_cut() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let mut bob = bob_calls_alice(&server, &tmux);

    tmux.type_text("one two three");
    tmux.wait_for_last_row("to bob> one two three");
    // Alt-b, then Ctrl-← as xterm sends it: two words back.
    tmux.press(&["M-b", "C-Left"]);
    tmux.type_text("2");
    // Alt-f to the end of "two", Ctrl-→ to the end of "three".
    tmux.press(&["M-f", "C-Right"]);
    tmux.type_text("3");
    tmux.press(&["Enter"]);
    bob.expect("alice: one 2two three3\n");

    // Ctrl-W cuts a word, Ctrl-Y puts it back (twice); Alt-Backspace and
    // Alt-d cut by word too, and two cuts in a row come back as one.
    tmux.type_text("hello world");
    tmux.press(&["C-w", "C-y", "C-y"]);
    tmux.press(&["Enter"]);
    bob.expect("alice: hello worldworld\n");
    tmux.type_text("keep cut this");
    tmux.press(&["M-BSpace", "M-BSpace"]);
    tmux.wait_for_last_row("to bob> keep");
    tmux.press(&["C-y", "Enter"]);
    bob.expect("alice: keep cut this\n");
    tmux.type_text("keep");
    tmux.press(&["Home", "M-d"]);
    tmux.wait_for_last_row("to bob>");
    tmux.type_text("x");
    tmux.press(&["C-y", "Enter"]);
    bob.expect("alice: xkeep\n");
}

#[test]
fn tab_completes_a_name_at_the_list_and_after_call() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    let mut others = Vec::new();
    for name in ["bob", "bobby", "carol"] {
        let mut chat = Chat::spawn(server.addr, &["--name", name]);
        chat.label = name.into();
        chat.expect("Enter a name to chat with");
        others.push(chat);
    }
    tmux.chat(&server, "alice");
    tmux.wait_for("carol");

    // Two names start with "bo": the Tab completes what they share, and
    // a second Tab lists them.
    tmux.type_text("b");
    tmux.press(&["Tab"]);
    tmux.wait_for_last_row("connect to: bob");
    tmux.press(&["Tab"]);
    tmux.wait_for("bob  bobby");
    tmux.wait_for_last_row("connect to: bob");
    tmux.type_text("b");
    tmux.press(&["Tab"]);
    tmux.wait_for_last_row("connect to: bobby");
    tmux.press(&["C-u"]);

    // After /call: the one match, and a space after it.
    tmux.type_text("/call ca");
    tmux.press(&["Tab"]);
    tmux.type_text("!");
    tmux.wait_for_last_row("connect to: /call carol !");
    tmux.press(&["BSpace", "Enter"]);
    others[2].expect("alice is calling");
}

#[test]
fn ctrl_z_stops_the_chat_for_the_shell_and_fg_brings_it_back_drawn() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let mut bob = bob_calls_alice(&server, &tmux);
    tmux.type_text("half");
    tmux.wait_for_last_row("to bob> half");

    tmux.press(&["C-z"]);
    tmux.wait_for("Stopped");
    tmux.wait_for_shell();
    // The shell is usable; the chat reads nothing while stopped.
    tmux.shell("echo sum=$((20+22))");
    tmux.wait_for("sum=42");
    bob.send("while you were away");

    tmux.shell("fg");
    tmux.wait_for("bob: while you were away");
    tmux.wait_for_last_row("to bob> half");
    // Raw mode again: no line discipline between the keys and the chat.
    let out = tmux.run(&["display-message", "-p", "-t", "0", "#{pane_tty}"]);
    let tty = String::from_utf8_lossy(&out.stdout).trim().to_string();
    common::eventually("the terminal is in raw mode again", || {
        let stty = Command::new("stty").args(["-a", "-F", &tty]).output();
        let modes = String::from_utf8_lossy(&stty.expect("run stty").stdout).into_owned();
        modes.split_whitespace().any(|m| m == "-icanon")
            && modes.split_whitespace().any(|m| m == "-echo")
    });
    tmux.type_text(" and back");
    tmux.press(&["Enter"]);
    bob.expect("alice: half and back\n");
    // Ctrl-C ends the chat, and then the program.
    tmux.press(&["C-c"]);
    tmux.wait_for_last_row("connect to:");
    tmux.press(&["C-c"]);
    tmux.expect_terminal_restored();
}

#[test]
fn a_one_line_paste_at_the_name_prompt_and_the_list_waits_for_enter() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    let mut bob = Chat::spawn(server.addr, &["--name", "bob"]);
    bob.expect("Enter a name to chat with");
    tmux.shell(&format!(
        "{} --server {}",
        env!("CARGO_BIN_EXE_chat"),
        server.addr
    ));
    tmux.wait_for("your name:");
    tmux.run(&["set-buffer", "-b", "name", "alice\n"]);
    tmux.run(&["paste-buffer", "-p", "-b", "name", "-t", "0"]);
    tmux.wait_for_last_row("your name: alice");
    tmux.press(&["Enter"]);
    tmux.wait_for("connect to:");

    tmux.run(&["set-buffer", "-b", "peer", "bob\n"]);
    tmux.run(&["paste-buffer", "-p", "-b", "peer", "-t", "0"]);
    tmux.wait_for_last_row("connect to: bob");
    // Nothing happened yet: the paste waits for ENTER.
    let screen = tmux.screen();
    assert!(!screen.contains("not taken here"), "{screen}");
    assert!(!screen.contains("ringing"), "{screen}");
    tmux.press(&["Enter"]);
    bob.expect("alice is calling");

    // More than one line is still refused there.
    tmux.press(&["C-c"]);
    tmux.wait_for("cancelled");
    tmux.run(&["set-buffer", "-b", "two", "bob\nq\n"]);
    tmux.run(&["paste-buffer", "-p", "-b", "two", "-t", "0"]);
    tmux.wait_for("Pasted text is not taken here");
    tmux.wait_for_last_row("connect to:");
}

#[test]
fn a_paste_of_more_than_twenty_lines_into_a_chat_asks_first() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    let mut bob = bob_calls_alice(&server, &tmux);

    // Twenty lines go without asking.
    let twenty: String = (1..=20).map(|i| format!("short {i}\n")).collect();
    tmux.run(&["set-buffer", "-b", "twenty", &twenty]);
    tmux.run(&["paste-buffer", "-p", "-b", "twenty", "-t", "0"]);
    bob.expect("alice: short 20\n");

    let many: String = (1..=2000).map(|i| format!("line {i}\n")).collect();
    tmux.load_buffer("many", &many);
    tmux.run(&["paste-buffer", "-p", "-b", "many", "-t", "0"]);
    tmux.wait_for_last_row("send 2,000 lines? y/n");
    tmux.type_text("n");
    tmux.wait_for("The 2,000 pasted lines were not sent.");
    tmux.wait_for_last_row("to bob>");

    tmux.run(&["paste-buffer", "-p", "-b", "many", "-t", "0"]);
    tmux.wait_for_last_row("send 2,000 lines? y/n");
    // Other keys leave the question open.
    tmux.type_text("x");
    tmux.type_text("y");
    bob.expect("alice: line 1\n");
    bob.expect("alice: line 2000\n");
    tmux.wait_for_last_row("to bob>");

    // A terminal that does not mark pastes: the burst is one paste, and
    // it asks the same.
    let unmarked: String = (1..=25).map(|i| format!("raw {i}\n")).collect();
    tmux.run(&["set-buffer", "-b", "unmarked", &unmarked]);
    tmux.run(&["paste-buffer", "-b", "unmarked", "-t", "0"]);
    tmux.wait_for_last_row("send 25 lines? y/n");
    // A person's pause before answering: within PASTE_GAP of the paste,
    // a key would be taken for more of it.
    thread::sleep(PASTE_GAP * 5);
    tmux.type_text("y");
    bob.expect("alice: raw 25\n");
    assert!(
        !bob.stdout().contains("alice: x"),
        "a key while asked was sent: {}",
        bob.stdout()
    );
}

/// A line from `reader`, without its newline.
fn read_line_from(reader: &mut impl std::io::BufRead) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("a line");
    line.trim_end().to_string()
}

/// Reads lines until one starts with `prefix` (bounded).
fn read_until(reader: &mut impl std::io::BufRead, prefix: &str) -> String {
    for _ in 0..1000 {
        let line = read_line_from(reader);
        assert!(
            !line.is_empty() || prefix.is_empty(),
            "closed before {prefix:?}"
        );
        if line.starts_with(prefix) {
            return line;
        }
    }
    panic!("never read {prefix:?}");
}

#[test]
fn the_transfer_row_shows_while_chat_lines_still_arrive() {
    use std::io::{BufReader, Write};
    use std::net::TcpStream;
    let Some(tmux) = Tmux::start(&[]) else {
        return;
    };
    let server = Server::start();
    let dir = std::env::temp_dir().join(format!("p2pchat-row-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    tmux.chat_with(&server, "alice", &format!("--downloads {}", dir.display()));
    let screen = tmux.wait_for("Peers can reach you at ");
    let addr: std::net::SocketAddr = screen
        .split("Peers can reach you at ")
        .nth(1)
        .and_then(|rest| rest.split(".\n").next())
        .and_then(|a| a.trim().parse().ok())
        .expect("alice's address");
    // mallory, driven by hand, calls alice and sends her a file slowly.
    let mut raw = common::registered_with(&server, "mallory", "ring transfer");
    let reply = raw.ask("CALL alice");
    assert!(reply.starts_with("OK RINGING alice "), "{reply}");
    tmux.wait_for("mallory is calling: y to answer, n to decline.");
    tmux.shell("y");
    let event = raw.line();
    let words: Vec<&str> = event.split(' ').collect();
    assert_eq!(words[..3], ["EVENT", "ANSWERED", "alice"], "{event}");
    let mut chat = TcpStream::connect(addr).unwrap();
    chat.set_read_timeout(Some(WAIT)).unwrap();
    let mut lines = BufReader::new(chat.try_clone().unwrap());
    writeln!(chat, "HELLO mallory {} {}", words[3], words[4]).unwrap();
    assert_eq!(read_line_from(&mut lines), "WELCOME alice");
    writeln!(chat, "FEATURES files\nFILE-OFFER 1 1000000 big.bin").unwrap();
    tmux.wait_for("mallory sends big.bin (1.0 MB): /accept or /refuse (y or n)");
    // y alone on a line answers the offer, in a terminal.
    tmux.shell("y");
    read_until(&mut lines, "FILE-ACCEPT 1");
    let (mine, theirs) = common::transfer_values(&mut raw, "alice", 1);
    read_until(&mut lines, "FILE-READY 1");
    let mut data = TcpStream::connect(addr).unwrap();
    data.set_read_timeout(Some(WAIT)).unwrap();
    let mut data_lines = BufReader::new(data.try_clone().unwrap());
    writeln!(data, "FILE-KNOCK 1").unwrap();
    assert_eq!(read_line_from(&mut data_lines), format!("PROOF {theirs}"));
    writeln!(data, "FILE-HELLO {mine}").unwrap();
    assert_eq!(read_line_from(&mut data_lines), "FILE-FROM 0");
    data.write_all(&[7u8; 300_000]).unwrap();
    // The row, on the prompt's row, and a chat line arriving meanwhile.
    tmux.wait_until("the transfer row", |_| {
        tmux.last_row().contains("receiving big.bin  30%")
    });
    writeln!(chat, "MSG while it moves").unwrap();
    tmux.wait_for("mallory: while it moves");
    let row = tmux.last_row();
    assert!(row.starts_with("to mallory>"), "{row:?}");
    assert!(row.contains("receiving big.bin  30%"), "{row:?}");
    data.write_all(&[7u8; 700_000]).unwrap();
    data.shutdown(std::net::Shutdown::Write).unwrap();
    tmux.wait_for("Received big.bin (1.0 MB) from mallory in");
    tmux.wait_until("the row gone", |_| !tmux.last_row().contains("receiving"));
    assert_eq!(
        std::fs::read(dir.join("big.bin")).unwrap(),
        vec![7u8; 1_000_000]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
