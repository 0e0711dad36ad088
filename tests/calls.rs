//! Calls, commands and names as people expect them (issue #22, points 3,
//! 4 and 6), through pipes and raw sockets: a ring answered `Yes` or `NO`,
//! the ring's time on the wire, commands in any case, `/unignore`, `/say`
//! alone, `/me`, `/away` and `/back`, piped blank lines, a refused name
//! that says which character, and `/ignore` hiding missed calls from before.

mod common;

use common::{Chat, Raw, Server, connect, login, registered};

#[test]
fn yes_and_no_in_any_case_answer_a_ring() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    alice.send("bob");
    bob.expect("alice is calling: y to answer, n to decline.");
    bob.send("Yes");
    alice.expect("Connected to bob");
    bob.expect("alice connected");
    alice.send("q");
    bob.expect("alice left the chat.");
    alice.expect("Enter a name to chat with");
    bob.expect("Enter a name to chat with");
    // A chat happened: no wait before calling again.
    alice.send("bob");
    bob.expect("alice is calling: y to answer, n to decline.");
    bob.send(" NO ");
    bob.expect("You declined alice's call.");
    alice.expect("bob declined.");
}

/// A raw client that announced `words` and registered as `name`.
fn raw_with(server: &Server, name: &str, words: &str) -> Raw {
    let mut raw = Raw::connect(server.addr);
    let features = raw.ask(&format!("FEATURES {words}"));
    assert!(features.starts_with("OK FEATURES"), "{features}");
    let reply = raw.ask(&format!("REGISTER {name} 127.0.0.1:9"));
    assert!(reply.starts_with(&format!("OK WELCOME {name} ")), "{reply}");
    raw
}

#[test]
fn the_server_says_how_long_a_ring_lasts_to_those_that_asked() {
    let server = Server::start_with(&["--ring-timeout", "7"]);
    let features = Raw::connect(server.addr).ask("FEATURES");
    assert!(features.contains(" ring-time"), "{features}");
    let mut ann = raw_with(&server, "ann", "ring ring-time");
    let mut ben = raw_with(&server, "ben", "ring ring-time");
    let reply = ann.ask("CALL ben");
    let call = reply
        .strip_prefix("OK RINGING ben ")
        .and_then(|rest| rest.strip_suffix(" 7"))
        .unwrap_or_else(|| panic!("no time left in {reply:?}"));
    assert_eq!(ben.line(), format!("EVENT RING ann {call} 7"));
    assert_eq!(
        ben.ask(&format!("DECLINE {call}")),
        format!("OK DECLINE {call}")
    );
    // Those that did not ask get the lines they know.
    let mut cat = raw_with(&server, "cat", "ring");
    let mut dan = raw_with(&server, "dan", "ring");
    let reply = cat.ask("CALL dan");
    let call = reply.strip_prefix("OK RINGING dan ").unwrap();
    assert!(call.bytes().all(|b| b.is_ascii_digit()), "{reply:?}");
    assert_eq!(dan.line(), format!("EVENT RING cat {call}"));
}

#[test]
fn commands_ignore_case_and_unignore_lets_calls_ring_again() {
    let server = Server::start_with(&["--recall-wait", "0"]);
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    bob.send("/WHO");
    bob.expect("Online users (2)");
    bob.send("/Ignore alice");
    bob.expect("Calls from alice are declined unseen");
    alice.send("bob");
    alice.expect("bob declined.");
    bob.send("/UNIGNORE alice");
    bob.expect("Calls from alice ring again.");
    alice.expect("Enter a name to chat with");
    alice.send("bob");
    bob.expect("alice is calling: y to answer, n to decline.");
    bob.send("y");
    alice.expect("Connected to bob");
    assert!(
        !bob.stdout().contains("There is no command"),
        "{}",
        bob.stdout()
    );
}

#[test]
fn say_alone_says_how_and_me_is_an_action_line() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    connect(&mut alice, &mut bob);
    alice.send("/say");
    alice.expect("/say takes the text to send: /say TEXT; nothing was sent.");
    alice.send("/me waves");
    bob.expect("\n* alice waves\n");
    bob.send("/ME nods back");
    alice.expect("\n* bob nods back\n");
    alice.send("done");
    bob.expect("alice: done");
    for (who, out) in [("alice", alice.stdout()), ("bob", bob.stdout())] {
        assert!(!out.contains(": * "), "{who}: {out}");
        assert!(!out.contains("alice: /say"), "{who}: {out}");
    }
}

#[test]
fn an_away_chat_is_not_rung_hears_of_the_call_later_and_sets_off_no_recall_wait() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    bob.send("/away at lunch");
    bob.expect("You are away (at lunch)");
    // Presence: away to those that know the word, free to the others.
    let mut watcher = raw_with(&server, "watcher", "away");
    common::eventually("the server has bob away", || {
        watcher.ask("LOOKUP bob") == "OK FOUND bob away"
    });
    assert_eq!(
        common::server_list(&server),
        ["USER alice free", "USER bob free", "USER watcher free"]
    );
    alice.send("bob");
    alice.expect("bob is away: at lunch; bob will be told you called.");
    let mut older = registered(&server, "older");
    assert_eq!(
        older.ask("CALL bob"),
        "ERR unreachable bob is away: at lunch"
    );
    assert!(!bob.stdout().contains("is calling"), "{}", bob.stdout());
    bob.send("/back");
    bob.expect("You are back.");
    bob.expect("alice tried to call you at ");
    common::eventually("the server has bob back", || {
        watcher.ask("LOOKUP bob") == "OK FOUND bob free"
    });
    // No wait: an away chat never refused anyone.
    alice.send("bob");
    bob.expect("alice is calling: y to answer, n to decline.");
    bob.send("y");
    alice.expect("Connected to bob");
}

#[test]
fn blank_lines_piped_into_a_chat_are_sent_as_they_are() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    connect(&mut alice, &mut bob);
    alice.send("before");
    alice.send("");
    alice.send("   ");
    alice.send("after");
    bob.expect("alice: before\nalice: \nalice:    \nalice: after\n");
}

#[test]
fn a_refused_name_says_which_character_and_why() {
    let server = Server::start();
    let reply = Raw::connect(server.addr).ask("REGISTER \u{430}lice 127.0.0.1:9");
    assert_eq!(
        reply,
        "ERR bad-name a name may not mix scripts: \"\u{430}\" (U+0430, Cyrillic) among Latin letters"
    );
    let mut chat = Chat::spawn(server.addr, &[]);
    chat.expect("Enter your visible name: ");
    chat.send("bob\tby");
    chat.expect("That name won't do: a name may not contain spaces, tabs or control characters: U+0009 is a tab.");
    chat.send("p\u{430}ypal");
    chat.expect("\"\u{430}\" (U+0430, Cyrillic) among Latin letters");
}

#[test]
fn ignoring_a_name_hides_its_missed_calls_from_before() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    let mut carol = login(&server, "carol");
    let mut dave = login(&server, "dave");
    connect(&mut alice, &mut bob);
    carol.send("bob");
    carol.expect("bob is busy in another chat.");
    dave.send("bob");
    dave.expect("bob is busy in another chat.");
    bob.send("/ignore carol");
    bob.expect("Calls from carol are declined unseen");
    alice.send("q");
    bob.expect("alice left the chat.");
    bob.expect("dave tried to call you at ");
    bob.expect("Online users (4)");
    assert!(
        !bob.stdout().contains("carol tried to call you"),
        "{}",
        bob.stdout()
    );
}
