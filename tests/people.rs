//! A person at the keyboard, through pipes: a name typed slowly, a refused
//! name and a retry, commands a chat user tries, typed-ahead input.

mod common;

use std::process::Command;

use common::{Chat, Server, connect, login};

#[test]
fn a_name_typed_after_the_server_gave_up_on_the_connection_still_registers() {
    // The server drops connections that have not registered within 1 s; the
    // person types the name well after that.
    let server = Server::start_with(&["--register-timeout", "1"]);
    let mut slow = Chat::spawn(server.addr, &[]);
    slow.expect("Enter your visible name: ");
    server.expect_log("did not register in time");
    slow.send("slowpoke");
    slow.expect("Welcome, slowpoke!");
    slow.expect("Online users (1)");
    slow.expect("  slowpoke (you)");
}

#[test]
fn a_refused_name_asks_again_with_the_reason_and_a_slow_retry_registers() {
    let server = Server::start_with(&["--register-timeout", "1"]);
    let _bob = login(&server, "bob");
    let mut other = Chat::spawn(server.addr, &[]);
    other.expect("Enter your visible name: ");
    other.send("BOB");
    other.expect("The server refused the name BOB: ");
    other.expect("Enter your visible name: ");
    other.send("my name");
    other.expect("That name won't do: ");
    other.expect("Enter your visible name: ");
    // Longer than the server waits for an unregistered connection.
    server.expect_log("did not register in time");
    other.send("robert");
    other.expect("Welcome, robert!");
    other.expect("Online users (2)");
}

#[test]
fn typed_ahead_empty_lines_show_the_list_each_time() {
    let server = Server::start();
    let mut dave = Chat::spawn(server.addr, &[]);
    dave.send("dave\n\n\nq");
    for _ in 0..3 {
        dave.expect("Online users (1)");
    }
    assert!(dave.wait_exit().success());
}

#[test]
fn slash_commands_in_a_chat_are_never_sent_as_text() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    connect(&mut alice, &mut bob);
    alice.send("/who");
    alice.expect("Online users (2)");
    alice.expect("  bob [busy]");
    alice.send("/frob");
    alice.expect("There is no command /frob");
    alice.send("/help");
    alice.expect("/say TEXT");
    alice.send("//etc/motd");
    bob.expect("alice: /etc/motd");
    alice.send("/say q");
    bob.expect("alice: q\n");
    alice.send("Q");
    bob.expect("alice: Q\n");
    alice.send("last");
    bob.expect("alice: last");
    let bob_saw = bob.stdout();
    for never in ["/who", "/frob", "/help"] {
        assert!(!bob_saw.contains(never), "bob saw {never}: {bob_saw}");
    }
    alice.send("/quit");
    alice.expect("You left the chat with bob.");
    bob.expect("alice left the chat.");
    alice.expect("Enter a name to chat with, or q to quit: ");
    alice.send(" q ");
    assert!(alice.wait_exit().success());
}

#[test]
fn a_call_rings_and_declining_tells_the_caller() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    alice.send("bob");
    alice.expect("Ringing bob… (Ctrl-C cancels)");
    bob.expect("alice is calling: y to answer, n to decline.");
    bob.send("n");
    bob.expect("You declined alice's call.");
    alice.expect("bob declined.");
    alice.expect("Online users (2)");
    assert_eq!(
        common::server_list(&server),
        ["USER alice free", "USER bob free"]
    );
}

#[test]
fn a_call_nobody_answers_rings_out_for_both() {
    let server = Server::start_with(&["--ring-timeout", "1"]);
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    alice.send("bob");
    bob.expect("alice is calling: y to answer, n to decline.");
    alice.expect("bob did not answer.");
    bob.expect("You did not answer alice's call.");
    // Both free: bob can call out at once.
    bob.send("alice");
    common::answer(&mut alice, "bob");
    bob.expect("Connected to alice");
}

#[test]
fn auto_answer_connects_at_once_as_before() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bot = Chat::spawn(server.addr, &["--name", "bot", "--auto-answer"]);
    bot.label = "bot".into();
    bot.expect("Online users");
    alice.send("bot");
    bot.expect("alice is calling you…");
    alice.expect("Connected to bot");
    bot.expect("alice connected.");
    alice.send("ping?");
    bot.expect("alice: ping?");
}

#[test]
fn presence_shows_joins_leaves_busy_and_free_at_the_list() {
    let server = Server::start();
    let mut watcher = login(&server, "watcher");
    let mut bob = login(&server, "bob");
    watcher.expect("bob is online.");
    let mut carol = login(&server, "carol");
    watcher.expect("carol is online.");
    // Each by name, in whichever order the two changes come.
    let both = |watcher: &Chat, from: usize, state: &str| {
        let out = watcher.stdout();
        let seen = &out[from..];
        seen.contains(&format!("bob is {state}.\n"))
            && seen.contains(&format!("carol is {state}.\n"))
    };
    let mark = watcher.stdout().len();
    connect(&mut bob, &mut carol);
    common::eventually("the watcher sees bob and carol busy", || {
        both(&watcher, mark, "busy")
    });
    let mark = watcher.stdout().len();
    bob.send("q");
    common::eventually("the watcher sees bob and carol free", || {
        both(&watcher, mark, "free")
    });
    carol.expect("bob left the chat.");
    carol.send("q");
    carol.expect("Enter a name to chat with");
    carol.send("q");
    assert!(carol.wait_exit().success());
    watcher.expect("carol left.");
}

#[test]
fn a_call_missed_while_busy_is_told_once_free() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    let mut carol = login(&server, "carol");
    connect(&mut alice, &mut bob);
    carol.send("bob");
    carol.expect("bob is busy in another chat.");
    alice.send("q");
    bob.expect("alice left the chat.");
    bob.expect("carol tried to call you at ");
    let out = bob.stdout();
    let at = out.rfind("carol tried to call you at ").unwrap() + 27;
    let hhmm = &out[at..at + 5];
    assert!(
        hhmm.as_bytes()[2] == b':' && hhmm.replace(':', "").bytes().all(|b| b.is_ascii_digit()),
        "{hhmm:?}"
    );
}

#[test]
fn a_transcript_and_timestamps_record_the_conversation() {
    let server = Server::start();
    let log = std::env::temp_dir().join(format!("p2pchat-log-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let log_arg = log.to_string_lossy().into_owned();
    let mut alice = Chat::spawn(
        server.addr,
        &["--name", "alice", "--log", &log_arg, "--timestamps"],
    );
    alice.label = "alice".into();
    alice.expect("Online users");
    let mut bob = login(&server, "bob");
    connect(&mut alice, &mut bob);
    alice.send("hello bob");
    bob.expect("alice: hello bob");
    bob.send("hi \x1b[2Jalice");
    alice.expect("bob: hi ^[[2Jalice");
    // --timestamps: HH:MM before the peer's line.
    let out = alice.stdout();
    let line = out
        .lines()
        .find(|l| l.ends_with("bob: hi ^[[2Jalice"))
        .unwrap();
    assert!(
        shaped(line, "hh:mm ") && line[6..].starts_with("bob: "),
        "not HH:MM then the line: {line:?}"
    );
    alice.send("q");
    alice.send("q");
    assert!(alice.wait_exit().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    for needle in [
        "Ringing bob…",
        "Connected to bob",
        "me: hello bob",
        "bob: hi ^[[2Jalice",
        "You left the chat with bob.",
    ] {
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
    assert!(!text.contains('\x1b'), "an escape reached the transcript");
    // Every line is stamped: date, time, and this machine's offset from
    // UTC, as `date +%z` gives it, then two spaces.
    let offset = Command::new("date").arg("+%z").output().expect("date");
    let offset = String::from_utf8(offset.stdout).unwrap();
    for line in text.lines() {
        assert!(
            shaped(line, "YYYY-MM-DD hh:mm +zzzz  "),
            "not stamped YYYY-MM-DD HH:MM +hhmm: {line:?}"
        );
        assert_eq!(&line[17..22], offset.trim(), "{line:?}");
    }
}

/// Whether `text` starts as `pattern` says: `Y`, `M`, `D`, `h`, `m` and `z`
/// a digit (each number in its range), `+` a sign, anything else itself.
fn shaped(text: &str, pattern: &str) -> bool {
    let (text, pattern) = (text.as_bytes(), pattern.as_bytes());
    let fits = text.len() >= pattern.len()
        && pattern.iter().zip(text).all(|(&p, &t)| match p {
            b'Y' | b'M' | b'D' | b'h' | b'm' | b'z' => t.is_ascii_digit(),
            b'+' => t == b'+' || t == b'-',
            _ => t == p,
        });
    // The numbers: month 1–12, day 1–31, hour 0–23, minute 0–59.
    let number = |letter: u8| -> Option<u32> {
        let at = pattern.iter().position(|&p| p == letter)?;
        let len = pattern.iter().filter(|&&p| p == letter).count();
        std::str::from_utf8(&text[at..at + len]).ok()?.parse().ok()
    };
    fits && [(b'M', 1, 12), (b'D', 1, 31), (b'h', 0, 23), (b'm', 0, 59)]
        .iter()
        .all(|&(letter, low, high)| number(letter).is_none_or(|n| (low..=high).contains(&n)))
}
