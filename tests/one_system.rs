//! The features together, as people use them: a peer killed or closed
//! mid-chat, restarted under its name, a short chat and a call back,
//! callers racing for one peer, a third calling someone who waits for a
//! link to come back, `q` while a call rings, and README's scripted
//! example. Each case failed on the binaries before the server said what it
//! knows (issue 20).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Chat, Server, answer, connect, settle};

/// A chat logged in as `name` with `args`, at its list.
fn chat(server: &Server, name: &str, args: &[&str]) -> Chat {
    let mut all = vec!["--name", name];
    all.extend_from_slice(args);
    let mut chat = Chat::spawn(server.addr, &all);
    chat.label = name.into();
    chat.expect("Enter a name to chat with, or q to quit: ");
    chat
}

fn signal(chat: &Chat, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &chat.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} failed");
}

/// alice and bob chat (alice called, bob answered), with a grace far
/// longer than any wait below: waiting it out fails the test.
fn chatting(server: &Server) -> (Chat, Chat) {
    let mut alice = chat(server, "alice", &["--grace", "120"]);
    let mut bob = chat(server, "bob", &["--grace", "120"]);
    connect(&mut alice, &mut bob);
    settle(&mut alice, &mut bob);
    (alice, bob)
}

/// The survivor of a peer whose program ended is told, and is back at the
/// list, at once: not after the grace.
fn survivor_is_back_at_once(sig: &str) {
    let server = Server::start();
    let (mut alice, bob) = chatting(&server);
    let started = Instant::now();
    signal(&bob, sig);
    alice.expect("bob's chat closed; the chat ended.");
    alice.expect("Enter a name to chat with, or q to quit: ");
    assert!(
        !alice.stdout().contains("waiting up to"),
        "alice was told to wait:\n{}",
        alice.stdout()
    );
    // The server's verdict on a clean close comes after 2 s: well under a
    // grace of 120.
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[test]
fn a_peer_killed_mid_chat_sends_the_survivor_back_to_the_list_at_once() {
    survivor_is_back_at_once("-KILL");
}

#[test]
fn a_peer_whose_terminal_closed_sends_the_survivor_back_to_the_list_at_once() {
    survivor_is_back_at_once("-HUP");
}

#[test]
fn a_peer_restarted_under_its_name_finds_you_free_and_reaches_you() {
    // A killed program's socket may close with a reset (when bytes it had
    // not read were waiting), and then its name is held for its owner
    // (`--hold`, tested on its own); here the restart takes it at once.
    let server = Server::start_with(&["--hold", "0"]);
    let (mut alice, mut bob) = chatting(&server);
    bob.kill();
    let mut bob = chat(&server, "bob", &["--grace", "120"]);
    // A new program took the name: alice's chat with the old one is over.
    alice.expect("bob's chat closed; the chat ended.");
    alice.expect("Enter a name to chat with, or q to quit: ");
    bob.send("alice");
    answer(&mut alice, "bob");
    bob.expect("Connected to alice");
    alice.expect("bob connected");
    assert!(!bob.stdout().contains("is busy"), "{}", bob.stdout());
}

#[test]
fn a_short_chat_answered_at_once_sets_off_no_recall_wait() {
    let server = Server::start();
    let mut alice = chat(&server, "alice", &[]);
    let mut bob = chat(&server, "bob", &["--auto-answer"]);
    for round in 0..3 {
        alice.send("bob");
        alice.expect("Connected to bob");
        bob.expect("alice connected");
        // The caller ends it, then the callee: neither is a reason to wait.
        if round % 2 == 0 {
            alice.send("q");
            bob.expect("alice left the chat");
        } else {
            bob.send("q");
            alice.expect("bob left the chat");
        }
        alice.expect("Enter a name to chat with, or q to quit: ");
        bob.expect("Enter a name to chat with, or q to quit: ");
    }
    assert!(
        !alice.stdout().contains("did not become a chat"),
        "{}",
        alice.stdout()
    );
}

#[test]
fn two_callers_racing_for_one_peer_one_gets_through_every_round() {
    let server = Server::start();
    let mut carol = chat(&server, "carol", &["--auto-answer"]);
    let mut callers = [chat(&server, "alice", &[]), chat(&server, "bob", &[])];
    let mut wins = [0; 2];
    for round in 0..8 {
        for caller in &mut callers {
            caller.send("carol");
        }
        // Exactly one connects; the other is told carol is busy.
        let deadline = Instant::now() + common::WAIT;
        let winner = loop {
            assert!(
                Instant::now() < deadline,
                "round {round}: nobody got through:\n{}\n{}\ncarol:\n{}",
                callers[0].stdout(),
                callers[1].stdout(),
                carol.stdout()
            );
            let connected = |i: usize| callers[i].stdout().matches("Connected to carol").count();
            if let Some(i) = (0..2).find(|&i| connected(i) > wins[i]) {
                wins[i] += 1;
                break i;
            }
            assert!(
                callers
                    .iter()
                    .all(|c| !c.stdout().contains("did not become a chat")),
                "round {round}: refused by the recall wait:\n{}\n{}",
                callers[0].stdout(),
                callers[1].stdout()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let loser = 1 - winner;
        callers[loser].expect("carol is busy in another chat.");
        carol.expect("connected");
        callers[winner].send("q");
        carol.expect("left the chat");
        for caller in &mut callers {
            caller.expect("Enter a name to chat with, or q to quit: ");
        }
        carol.expect("Enter a name to chat with, or q to quit: ");
    }
}

#[test]
fn someone_waiting_for_a_link_to_come_back_is_busy_to_a_third_caller() {
    // carol's program stops (SIGSTOP): the server drops her after its idle
    // timeout, and alice waits for her link to come back.
    let server = Server::start_with(&["--idle-timeout", "2"]);
    let mut alice = chat(&server, "alice", &["--grace", "60"]);
    let mut carol = chat(&server, "carol", &["--grace", "60"]);
    let mut dave = chat(&server, "dave", &[]);
    // alice is the callee: she waits for carol to dial her again.
    connect(&mut carol, &mut alice);
    settle(&mut carol, &mut alice);
    signal(&carol, "-STOP");
    alice.expect("link to carol lost; reconnecting…");
    // Give the RESUME that keeps alice busy a moment to reach the server:
    // the list says when it has.
    common::eventually("alice is busy on the server", || {
        common::server_list(&server).contains(&"USER alice busy".to_string())
    });
    dave.send("alice");
    dave.expect("alice is busy in another chat.");
    assert!(!dave.stdout().contains("declined"), "{}", dave.stdout());
    signal(&carol, "-CONT");
    alice.send("q");
    alice.expect("dave tried to call you");
}

#[test]
fn q_while_your_own_call_rings_cancels_it_at_once() {
    let server = Server::start_with(&["--ring-timeout", "60"]);
    let mut alice = chat(&server, "alice", &[]);
    let mut bob = chat(&server, "bob", &[]);
    alice.send("bob");
    bob.expect("alice is calling: y to answer, n to decline.");
    alice.expect("Ringing bob");
    alice.send("/help");
    alice.expect("/who");
    alice.send("q");
    alice.expect_within("Call to bob cancelled.", Duration::from_secs(2));
    alice.expect("Enter a name to chat with, or q to quit: ");
    bob.expect("alice");
    // q cancelled the call; it did not end the program.
    alice.send("/who");
    alice.expect("Online users");
}

/// README's "In scripts" example, run as printed: only the binary's path
/// and the server are this test's.
#[test]
fn readmes_scripted_example_works_as_printed() {
    let server = Server::start();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = &readme[readme.find("### In scripts").expect("the section")..];
    let start = section.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let script = &section[start..start + section[start..].find("```").unwrap()];
    assert!(script.contains("./target/release/chat"), "{script}");
    let script = script.replace("./target/release/chat", env!("CARGO_BIN_EXE_chat"));
    let dir = std::env::temp_dir().join(format!("p2pchat-script-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut shell = Command::new("bash");
    shell
        .args(["-c", &format!("set -e\n{script}\nwait")])
        .current_dir(&dir)
        .env("P2PCHAT_SERVER", server.addr.to_string())
        .env("XDG_CONFIG_HOME", common::NO_CONFIG)
        .stdin(std::process::Stdio::null());
    let mut child = common::ChildGuard::spawn(&mut shell).expect("run the script");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the script did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let (alice, bob) = (out("alice.out"), out("bob.out"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "alice:\n{alice}\nbob:\n{bob}");
    assert!(alice.contains("bob: hi alice"), "alice:\n{alice}");
    assert!(bob.contains("alice: hello"), "bob:\n{bob}");
    assert!(!bob.contains("No user named"), "bob:\n{bob}");
}
