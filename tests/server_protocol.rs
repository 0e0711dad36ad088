//! The registration server's line protocol, spoken by raw TCP clients the way
//! a person with `nc` would, including everything a person could get wrong.

mod common;

use common::{Raw, Server, connect, login, registered};

#[test]
fn a_session_as_typed_with_nc() {
    let server = Server::start();
    let mut a = registered(&server, "ann");
    let mut b = registered(&server, "ben");
    assert_eq!(a.ask("PING"), "OK PONG");
    assert_eq!(a.ask("list"), "OK USERS 2");
    assert_eq!(a.line(), "USER ann free");
    assert_eq!(a.line(), "USER ben free");

    assert_eq!(a.ask("LOOKUP BEN"), "OK FOUND ben free");
    assert!(a.ask("LOOKUP nobody").starts_with("ERR unknown-user"));
    let reply = a.ask("CALL ben");
    let words: Vec<&str> = reply.split(' ').collect();
    assert_eq!(&words[..3], ["OK", "CALL", "ben"], "{reply}");
    assert_eq!(a.ask("LOOKUP ben"), "OK FOUND ben busy");
    let (call, token) = (words[3], words[4]);
    assert_eq!(words[5], "127.0.0.1:9");
    assert_eq!(b.line(), format!("EVENT INCOMING ann {call} {token}"));
    assert_eq!(
        b.ask("CALL ann"),
        "ERR already-in-call you are already in a call; HANGUP first"
    );

    assert_eq!(
        b.ask(&format!("HANGUP {call}")),
        format!("OK HANGUP {call}")
    );
    assert_eq!(a.line(), format!("EVENT HANGUP {call} ben"));
    assert!(
        a.ask(&format!("HANGUP {call}"))
            .starts_with("ERR not-in-call")
    );
    assert_eq!(a.ask("QUIT"), "OK BYE");
    assert!(a.is_closed());
    server.expect_log("ann left (quit)");
}

#[test]
fn garbage_unknown_and_out_of_order_requests_get_errors_while_a_chat_goes_on() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    connect(&mut alice, &mut bob);

    let mut raw = Raw::connect(server.addr);
    let cases: &[(&[u8], &str)] = &[
        (b"LIST\n", "ERR not-registered register first"),
        (b"CALL bob\n", "ERR not-registered"),
        (b"HANGUP 1\n", "ERR not-registered"),
        (b"FROB\n", "ERR unknown-command unknown command \"FROB\""),
        (b"\n", "ERR unknown-command empty line"),
        (b"\xff\xfe\x00garbage\n", "ERR bad-encoding"),
        (b"GET / HTTP/1.1\r\n", "ERR unknown-command"),
        (
            b"REGISTER\n",
            "ERR bad-request wrong arguments for REGISTER",
        ),
        (
            b"REGISTER x nowhere\n",
            "ERR bad-request \"nowhere\" is not a valid address",
        ),
        (b"REGISTER bad\x01name 1.2.3.4:5\n", "ERR bad-name"),
        (
            b"REGISTER alice 1.2.3.4:5\n",
            "ERR name-taken the name alice is taken",
        ),
        (b"REGISTER ALICE 1.2.3.4:5\n", "ERR name-taken"),
    ];
    for (bytes, expected) in cases {
        raw.send_bytes(bytes);
        let reply = raw.line();
        assert!(
            reply.starts_with(expected),
            "{:?} got {reply:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    // Registered, the out-of-order cases change.
    assert!(
        raw.ask("REGISTER mallory 127.0.0.1:9")
            .starts_with("OK WELCOME")
    );
    for (line, expected) in [
        ("REGISTER other 1.2.3.4:5", "ERR already-registered"),
        ("HANGUP 1", "ERR not-in-call"),
        ("HANGUP 99999999999999999999999", "ERR bad-request"),
        ("CALL bob", "ERR busy bob is busy"),
        ("CALL nobody", "ERR unknown-user"),
        ("RELAY 1 00", "ERR bad-request"),
    ] {
        let reply = raw.ask(line);
        assert!(reply.starts_with(expected), "{line:?} got {reply:?}");
    }
    server.expect_log("rejected \"FROB\"");

    // The chat never noticed.
    alice.send("through all that");
    bob.expect("alice: through all that");
    bob.send("yes");
    alice.expect("bob: yes");
    assert!(!alice.stdout().contains("mallory"));
    assert!(!bob.stdout().contains("mallory"));
}

#[test]
fn an_entry_lives_exactly_as_long_as_its_connection() {
    let server = Server::start();
    let mut watcher = registered(&server, "watcher");
    let ghost = registered(&server, "ghost");
    drop(ghost);
    server.expect_log("ghost left (connection closed)");
    assert_eq!(watcher.ask("LIST"), "OK USERS 1");
    assert_eq!(watcher.line(), "USER watcher free");
    // The name is free again at once.
    let _again = registered(&server, "GHOST");
}

#[test]
fn the_server_logs_each_event_with_a_timestamp() {
    let server = Server::start();
    let mut a = registered(&server, "ann");
    let _b = registered(&server, "ben");
    let reply = a.ask("CALL ben");
    let call = reply.split(' ').nth(3).unwrap().to_string();
    assert!(a.ask(&format!("HANGUP {call}")).starts_with("OK HANGUP"));
    a.ask("NONSENSE");
    drop(a);
    server.expect_log("ann left");
    let log = server.log();
    for event in [
        "ann joined from 127.0.0.1:",
        &format!("chat {call} started: ann calls ben"),
        &format!("chat {call} ended by ann"),
        "rejected \"NONSENSE\"",
        "ann left",
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(event))
            .unwrap_or_else(|| panic!("no log line for {event:?} in:\n{log}"));
        // 2026-11-24T03:20:08.284Z
        let stamp = line.split(' ').next().unwrap();
        assert_eq!(stamp.len(), 24, "{line}");
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "{line}"
        );
    }
}

#[test]
fn a_server_without_relay_refuses_a_relay_connection_with_its_own_code() {
    let server = Server::start_with(&["--no-relay"]);
    let mut raw = Raw::connect(server.addr);
    let token = "ab".repeat(16);
    assert_eq!(
        raw.ask(&format!("RELAY 1 {token}")),
        "ERR no-relay this server does not relay chats (--no-relay)"
    );
    assert!(raw.is_closed());
}

#[test]
fn features_are_answered_before_and_after_register_and_follow_no_relay() {
    let server = Server::start();
    let mut raw = Raw::connect(server.addr);
    assert_eq!(
        raw.ask("FEATURES"),
        "OK FEATURES no-relay-code relay rejoin ring presence missed long-lines session proof ring-time away transfer relay-files"
    );
    assert!(
        raw.ask("REGISTER ann 127.0.0.1:9")
            .starts_with("OK WELCOME")
    );
    assert_eq!(
        raw.ask("features relay ping-number"),
        "OK FEATURES no-relay-code relay rejoin ring presence missed long-lines session proof ring-time away transfer relay-files"
    );
    assert!(
        raw.ask("FEATURES Not_A_Word")
            .starts_with("ERR bad-request \"Not_A_Word\" is not a valid feature")
    );

    let plain = Server::start_with(&["--no-relay"]);
    let mut raw = Raw::connect(plain.addr);
    assert_eq!(
        raw.ask("FEATURES"),
        "OK FEATURES no-relay-code ring presence missed long-lines session proof ring-time away transfer"
    );
}

#[test]
fn locate_answers_only_for_the_peer_of_ones_own_call() {
    let server = common::Server::start();
    let mut alice = common::registered(&server, "alice");
    let mut bob = common::registered(&server, "bob");
    let mut eve = common::registered(&server, "eve");
    assert!(alice.ask("LOCATE bob").starts_with("ERR not-in-call"));
    let reply = alice.ask("CALL bob");
    assert!(reply.starts_with("OK CALL bob "), "{reply}");
    // bob hears of the call first.
    assert!(bob.line().starts_with("EVENT INCOMING alice "));
    assert_eq!(alice.ask("LOCATE bob"), "OK LOCATED bob 127.0.0.1:9");
    assert_eq!(bob.ask("LOCATE alice"), "OK LOCATED alice 127.0.0.1:9");
    // Nobody else learns where they are.
    let refused = eve.ask("LOCATE bob");
    assert!(refused.starts_with("ERR not-in-call"), "{refused}");
}

/// #21, finding 10: an address no peer should dial is refused at
/// `REGISTER`, with the reason; the connection may try again.
#[test]
fn register_refuses_addresses_no_peer_should_dial() {
    let server = Server::start();
    let mut raw = Raw::connect(server.addr);
    for (addr, why) in [
        ("224.0.0.1:5000", "multicast"),
        ("255.255.255.255:5000", "broadcast"),
        ("0.0.0.0:5000", "unspecified"),
        ("[::]:5000", "unspecified"),
        ("127.0.0.1:0", "port 0"),
    ] {
        let reply = raw.ask(&format!("REGISTER ann {addr}"));
        assert!(
            reply.starts_with(&format!("ERR bad-request cannot advertise {addr}: ")),
            "{reply}"
        );
        assert!(reply.contains(why), "{reply}");
    }
    assert!(
        raw.ask("REGISTER ann 127.0.0.1:5000")
            .starts_with("OK WELCOME ann ")
    );
}
