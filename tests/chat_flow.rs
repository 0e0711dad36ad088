//! The user's numbered flow, end to end: real `server` and `chat` binaries,
//! driven through stdin and stdout exactly as a person types.

mod common;

use common::{Chat, Server, connect, login, server_list};

#[test]
fn two_peers_chat_both_ways_and_q_brings_both_back() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    // Step 2: the list shows everyone, you marked.
    bob.send("");
    bob.expect("alice\n");
    bob.expect("bob (you)");

    connect(&mut alice, &mut bob);
    alice.send("hello bob");
    bob.expect("alice: hello bob");
    bob.send("hi alice, ünïcödé ✓");
    alice.expect("bob: hi alice, ünïcödé ✓");
    assert_eq!(
        server_list(&server),
        ["USER alice busy", "USER bob busy"],
        "both busy while chatting"
    );

    // Step 5: q ends the chat for both; step 6: both see a fresh list.
    alice.send("q");
    alice.expect("You left the chat with bob.");
    alice.expect("Online users (2)");
    bob.expect("alice left the chat.");
    bob.expect("Online users (2)");
    bob.expect("Enter a name to chat with, or q to quit: ");
    assert_eq!(server_list(&server), ["USER alice free", "USER bob free"]);

    // And they can chat again, the other way round.
    connect(&mut bob, &mut alice);
    bob.send("again");
    alice.expect("bob: again");
    bob.send("q");
    alice.expect("bob left the chat.");

    // q at the list exits cleanly.
    alice.expect("Enter a name to chat with, or q to quit: ");
    alice.send("q");
    assert!(alice.wait_exit().success());
}

#[test]
fn a_whole_session_typed_ahead_in_one_go_is_not_lost() {
    let server = Server::start();
    let mut bob = login(&server, "bob");
    // Everything a user would type, written before any of it is answered.
    let mut alice = Chat::spawn(server.addr, &[]);
    alice.label = "alice".into();
    alice.send("alice\nbob\nline one\nline two\nq\nq");
    common::answer(&mut bob, "alice");
    bob.expect("alice connected");
    bob.expect("alice: line one");
    bob.expect("alice: line two");
    bob.expect("alice left the chat.");
    assert!(alice.wait_exit().success());
}

#[test]
fn calling_a_busy_peer_is_refused_and_the_chat_goes_on() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    let mut carol = login(&server, "carol");
    connect(&mut alice, &mut bob);
    // carol came online while they sat at the list, and that was shown;
    // from here on her failed call must not disturb their chat.
    let (alice_before, bob_before) = (alice.stdout().len(), bob.stdout().len());

    carol.send("");
    carol.expect("alice [busy]");
    carol.expect("bob [busy]");
    carol.send("bob");
    carol.expect("bob is busy in another chat.");
    carol.expect("Online users (3)");

    alice.send("still here?");
    bob.expect("alice: still here?");
    bob.send("yes");
    alice.expect("bob: yes");
    assert!(!alice.stdout()[alice_before..].contains("carol"));
    assert!(!bob.stdout()[bob_before..].contains("carol"));
}

#[test]
fn an_unknown_name_is_reported_and_the_list_shown_again() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    alice.send("nobody");
    alice.expect("No user named nobody is online.");
    alice.expect("Online users (1)");
    alice.send("two words");
    alice.expect("may not contain spaces");
    alice.expect("Online users (1)");
}

#[test]
fn chatting_with_yourself_echoes_every_line() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    alice.send("ALICE");
    alice.expect("Chatting with yourself");
    alice.send("echo one");
    alice.expect("alice: echo one");
    alice.send("echo two");
    alice.expect("alice: echo two");
    assert_eq!(server_list(&server), ["USER alice busy"]);
    alice.send("q");
    alice.expect("You left the chat with alice.");
    alice.expect("Online users (1)");
    assert_eq!(server_list(&server), ["USER alice free"]);
}

#[test]
fn a_peer_killed_mid_chat_frees_the_other() {
    let server = Server::start();
    // A broken link is waited for (the grace period, 1 s here) in case the
    // peer comes back; a killed one does not.
    let mut alice = Chat::spawn(server.addr, &["--grace", "1"]);
    alice.label = "alice".into();
    alice.expect("Enter your visible name: ");
    alice.send("alice");
    alice.expect("Online users");
    let mut bob = login(&server, "bob");
    connect(&mut alice, &mut bob);
    // Two round trips: by then the two have agreed to resume a broken link.
    common::settle(&mut alice, &mut bob);
    bob.kill();
    alice.expect("link to bob lost; reconnecting…");
    alice.expect("The link to bob could not be brought back; the chat ended.");
    alice.expect("Online users (1)");
    alice.expect("  alice (you)\n");
    assert_eq!(server_list(&server), ["USER alice free"]);
    assert!(!alice.stdout().contains("[busy]\nEnter"));
}

#[test]
fn stdin_closing_mid_chat_acts_as_q_then_exits() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    connect(&mut alice, &mut bob);
    alice.send("last words");
    alice.close_stdin();
    bob.expect("alice: last words");
    bob.expect("alice left the chat.");
    assert!(alice.wait_exit().success());
    bob.expect("Online users");
    common::eventually("alice leaves the server's list", || {
        server_list(&server) == ["USER bob free"]
    });
}

#[test]
fn stdin_closing_at_the_name_prompt_exits_quietly() {
    let server = Server::start();
    let mut chat = Chat::spawn(server.addr, &[]);
    chat.expect("Enter your visible name: ");
    chat.close_stdin();
    assert!(chat.wait_exit().success());
}

#[test]
fn an_unreachable_server_is_one_clear_line_and_a_failure() {
    // Port 1 is privileged and unused: nothing listens there, and no other
    // test can take it (a port freed by dropping a listener could be).
    let port: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let mut chat = Chat::spawn(port, &["--name", "alice"]);
    // docs/options.md: exit code 1 when the server cannot be reached at start.
    assert_eq!(chat.wait_exit().code(), Some(1));
    chat.expect_stderr("\n");
    let err = chat.stderr();
    assert!(
        err.contains(&format!("cannot reach the registration server at {port}")),
        "{err}"
    );
    assert!(err.contains("--server"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("panick"), "{err}");
}

#[test]
fn help_lists_every_option() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chat"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for option in [
        "--server",
        "--name",
        "--p2p-port",
        "--advertise",
        "P2PCHAT_SERVER",
    ] {
        assert!(text.contains(option), "{option} missing from --help");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chat"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option"));
}

#[test]
fn the_server_address_can_come_from_the_environment() {
    let server = Server::start();
    let _chat = common::ChildGuard::spawn(
        common::without_config(&mut std::process::Command::new(env!("CARGO_BIN_EXE_chat")))
            .args(["--name", "envy"])
            .env("P2PCHAT_SERVER", server.addr.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )
    .unwrap();
    server.expect_log("envy joined");
}

#[test]
fn lines_typed_for_a_call_that_fails_are_dropped_not_run_at_the_list() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    connect(&mut alice, &mut bob);
    let mut carol = login(&server, "carol");
    // Typed ahead for a chat with bob, who is busy: "q" must not quit.
    carol.send("bob\nhello bob\nq");
    carol.expect("bob is busy in another chat.");
    carol.expect("2 lines typed meanwhile were not sent.");
    carol.expect("Online users (3)");
    carol.send("");
    carol.expect("Online users (3)");
}

#[test]
fn a_taken_p2p_port_and_a_taken_listen_port_are_one_clear_line_each() {
    let server = Server::start();
    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let mut chat = Chat::spawn(server.addr, &["--name", "alice", "--p2p-port", &port]);
    assert_eq!(chat.wait_exit().code(), Some(1));
    chat.expect_stderr(&format!("cannot listen for peers on port {port}"));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["--listen", &server.addr.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen on") && err.contains("another server running?"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn typed_bytes_that_are_not_utf8_arrive_as_replacement_characters() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    connect(&mut alice, &mut bob);
    alice.send_bytes(b"caf\xe9 \xff ok\r\n");
    bob.expect("alice: caf\u{fffd} \u{fffd} ok\n");
    // A very long typed line arrives whole, as one message (a round trip
    // first: by then each knows the other takes long lines).
    bob.send("hi");
    alice.expect("bob: hi");
    let mark = bob.stdout().len();
    alice.send(&"x".repeat(10_000));
    common::eventually("all 10,000 characters arrive", || {
        bob.stdout()[mark..].matches('x').count() == 10_000
    });
    let out = bob.stdout()[mark..].to_string();
    assert_eq!(out, format!("alice: {}\n", "x".repeat(10_000)));
}

#[test]
fn a_pasted_paragraph_goes_as_one_message_and_a_line_past_64_kib_not_at_all() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    connect(&mut alice, &mut bob);
    // A round trip first: by then each knows the other takes long lines.
    common::settle(&mut alice, &mut bob);
    let paragraph = "word ".repeat(12_000);
    alice.send(paragraph.trim_end());
    bob.expect_within(&format!("alice: {}\n", paragraph.trim_end()), common::WAIT);
    let mark = bob.stdout().len();
    alice.send(&"y".repeat(70_000));
    alice.expect("That line is 69 KiB, longer than the 64 KiB a message may be: nothing was sent.");
    alice.send("after");
    bob.expect("alice: after");
    assert!(!bob.stdout()[mark..].contains('y'), "half of it was sent");
}

#[test]
fn a_long_line_of_multi_byte_characters_arrives_whole_across_reads() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    connect(&mut alice, &mut bob);
    common::settle(&mut alice, &mut bob);
    // 30,000 bytes of three-byte characters: bob's output comes to the test
    // in reads of 4 KiB, and 4,096 is not a multiple of 3, so most reads
    // end inside a character. Not one may come out as U+FFFD.
    let ticks = "✓".repeat(10_000);
    alice.send(&ticks);
    bob.expect(&format!("alice: {ticks}\n"));
    assert!(!bob.stdout().contains('\u{fffd}'));
}
