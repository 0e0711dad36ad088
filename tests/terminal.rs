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

/// A private tmux server running one shell in one 100×30 pane.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts tmux with `env` set for the shell, or `None` (test skipped,
    /// see [`common::skip`]) where tmux is missing.
    fn start(env: &[(&str, &str)]) -> Option<Tmux> {
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
        let mut args = vec!["new-session", "-d", "-x", "100", "-y", "30"];
        let pairs: Vec<String> = env
            .iter()
            .chain(&[("PS1", "$ "), ("TERM", "xterm-256color")])
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
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
    let mut bob = Chat::spawn(server.addr, &["--name", "bob"]);
    bob.label = "bob".into();
    bob.expect("Enter a name to chat with");
    bob.send("alice");
    tmux.wait_for("bob is calling: y to answer, n to decline.");
    tmux.shell("y");
    bob.expect("Connected to alice");
    tmux.wait_for("bob connected");
    tmux.wait_for("to bob>");
    bob
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
    tmux.shell("stty -a | tr ' ;' '\\n\\n' | grep -x -E -- '-?(icanon|echo)' | paste -sd,");
    tmux.wait_for("icanon,echo");
}

#[test]
fn q_at_the_list_leaves_the_terminal_as_it_was() {
    let Some(tmux) = Tmux::start(&[]) else { return };
    let server = Server::start();
    tmux.chat(&server, "alice");
    tmux.type_text("q");
    tmux.press(&["Enter"]);
    tmux.wait_for_shell();
    tmux.shell("stty -a | tr ' ;' '\\n\\n' | grep -x -E -- '-?(icanon|echo)' | paste -sd,");
    let screen = tmux.wait_for("icanon,echo");
    assert!(
        !screen.contains("-icanon") && !screen.contains("-echo"),
        "{screen}"
    );
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
    tmux.shell("stty -a | tr ' ;' '\\n\\n' | grep -x -E -- '-?(icanon|echo)' | paste -sd,");
    tmux.wait_for("icanon,echo");
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
        let raw = std::fs::read(&log).unwrap_or_default();
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
