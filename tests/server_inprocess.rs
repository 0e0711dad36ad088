//! The registration server's protocol driven in-process: each test binds
//! `127.0.0.1:0` itself, runs `p2pchat::server::serve` on a thread with the
//! configuration it wants (short timeouts, relay off), and talks to it with
//! raw sockets whose every read has a deadline.
//!
//! The binary's own suite (`server_protocol.rs`) covers the same grammar as
//! a user would meet it; these tests pin what `serve` does with a given
//! `Config`, without a process or a printed address in between. The serving
//! thread never returns; it ends with the test process.

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use common::{Raw, serve};
use p2pchat::server::Config;

fn default_server() -> SocketAddr {
    serve(Config::default())
}

/// A raw client registered as `name`, advertising a port nobody uses.
fn register(server: SocketAddr, name: &str) -> Raw {
    let mut raw = Raw::connect(server);
    let reply = raw.ask(&format!("REGISTER {name} 127.0.0.1:9"));
    assert!(reply.starts_with(&format!("OK WELCOME {name} ")), "{reply}");
    raw
}

#[test]
fn register_list_lookup_call_and_hangup() {
    let server = default_server();
    let mut ann = register(server, "ann");
    let mut ben = register(server, "ben");

    assert_eq!(ann.ask("LIST"), "OK USERS 2");
    assert_eq!(ann.line(), "USER ann free");
    assert_eq!(ann.line(), "USER ben free");
    assert_eq!(ann.ask("LOOKUP Ben"), "OK FOUND ben free");

    let reply = ann.ask("CALL ben");
    let words: Vec<&str> = reply.split(' ').collect();
    assert_eq!(&words[..3], ["OK", "CALL", "ben"], "{reply}");
    let (call, token) = (words[3], words[4]);
    assert_eq!(ben.line(), format!("EVENT INCOMING ann {call} {token}"));
    assert_eq!(ann.ask("LOOKUP ben"), "OK FOUND ben busy");

    assert_eq!(
        ann.ask(&format!("HANGUP {call}")),
        format!("OK HANGUP {call}")
    );
    assert_eq!(ben.line(), format!("EVENT HANGUP {call} ann"));
    assert_eq!(
        ben.ask(&format!("HANGUP {call}")),
        format!("ERR not-in-call you are not in call {call}")
    );
    assert_eq!(ann.ask("QUIT"), "OK BYE");
    assert!(ann.is_closed());
    assert_eq!(ben.ask("LIST"), "OK USERS 1");
    assert_eq!(ben.line(), "USER ben free");
}

#[test]
fn features_follow_the_relay_setting_before_and_after_register() {
    let relaying = default_server();
    let mut raw = Raw::connect(relaying);
    assert_eq!(
        raw.ask("FEATURES"),
        "OK FEATURES no-relay-code relay rejoin ring presence missed long-lines session proof ring-time away transfer relay-files"
    );

    let plain = serve(Config {
        relay: false,
        ..Config::default()
    });
    let mut raw = register(plain, "ann");
    assert_eq!(
        raw.ask("FEATURES relay"),
        "OK FEATURES no-relay-code ring presence missed long-lines session proof ring-time away transfer"
    );
    let mut relay = Raw::connect(plain);
    assert_eq!(
        relay.ask(&format!("RELAY 1 {}", "ab".repeat(16))),
        "ERR no-relay this server does not relay chats (--no-relay)"
    );
    assert!(relay.is_closed());
}

#[test]
fn bad_lines_are_answered_and_the_connection_goes_on() {
    let server = default_server();
    let mut raw = Raw::connect(server);
    let cases: &[(&[u8], &str)] = &[
        (b"\n", "ERR unknown-command empty line"),
        (b"FROB\n", "ERR unknown-command unknown command \"FROB\""),
        (b"\xff\n", "ERR bad-encoding line is not valid UTF-8"),
        (b"LIST\n", "ERR not-registered register first"),
        (b"REGISTER q 127.0.0.1:9\n", "ERR bad-name"),
        (b"FEATURES a  b\n", "ERR bad-request"),
        (
            b"RELAY 1 +fababababababababababababababab\n",
            "ERR bad-request",
        ),
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
    assert_eq!(raw.ask("PING"), "OK PONG");

    let long = format!("{}\n", "x".repeat(5000));
    raw.send_bytes(long.as_bytes());
    assert!(raw.line().starts_with("ERR line-too-long"));
    assert!(raw.is_closed());
}

#[test]
fn a_connection_that_does_not_register_in_time_is_told_and_closed() {
    let server = serve(Config {
        register_timeout: Duration::from_millis(200),
        ..Config::default()
    });
    let mut raw = Raw::connect(server);
    assert_eq!(raw.line(), "ERR timeout did not register in time; closing");
    assert!(raw.is_closed());
}

#[test]
fn a_full_server_refuses_the_next_client() {
    let server = serve(Config {
        max_clients: 1,
        ..Config::default()
    });
    let _ann = register(server, "ann");
    let mut late = Raw::connect(server);
    assert_eq!(late.line(), "ERR server-full server full, try again later");
    assert!(late.is_closed());
}

/// A client registered as `name` that announced `features` first.
fn register_with(server: SocketAddr, name: &str, features: &str) -> Raw {
    let mut raw = Raw::connect(server);
    let reply = raw.ask(&format!("FEATURES {features}"));
    assert!(reply.starts_with("OK FEATURES "), "{reply}");
    let reply = raw.ask(&format!("REGISTER {name} 127.0.0.1:9"));
    assert!(reply.starts_with(&format!("OK WELCOME {name} ")), "{reply}");
    raw
}

/// The next line, if one comes within `wait`; `None` if the server stays
/// quiet that long and keeps the connection. A connection it closed (or
/// reset) is no silence: that panics.
fn line_within(raw: &mut Raw, wait: Duration) -> Option<String> {
    raw.stream().set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 1];
    let peeked = raw.stream().peek(&mut byte);
    raw.stream().set_read_timeout(Some(common::WAIT)).unwrap();
    match peeked {
        Ok(0) => panic!("the server closed the connection instead of staying quiet"),
        Ok(_) => Some(raw.line()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(e) => panic!("the connection failed instead of staying quiet: {e}"),
    }
}

/// `CALL callee` from `caller` when both ring: returns the call id.
fn ring(caller: &mut Raw, callee: &mut Raw, caller_name: &str, callee_name: &str) -> String {
    let reply = caller.ask(&format!("CALL {callee_name}"));
    let words: Vec<&str> = reply.split(' ').collect();
    assert_eq!(&words[..3], ["OK", "RINGING", callee_name], "{reply}");
    let call = words[3].to_string();
    assert_eq!(callee.line(), format!("EVENT RING {caller_name} {call}"));
    call
}

/// A server whose calls ring out in 1 s. These tests call the same peer
/// again after calls that did not become chats, so there is no recall wait
/// (`hostile_server.rs` tests the wait).
fn ringing_server() -> SocketAddr {
    serve(Config {
        ring_timeout: Duration::from_secs(1),
        recall_wait: Duration::ZERO,
        ..Config::default()
    })
}

#[test]
fn a_ringing_call_answered_connects_like_todays_call() {
    let server = ringing_server();
    let mut ann = register_with(server, "ann", "ring");
    let mut ben = register_with(server, "ben", "ring missed presence");
    let call = ring(&mut ann, &mut ben, "ann", "ben");
    assert_eq!(ann.ask("LOOKUP ben"), "OK FOUND ben busy");
    assert_eq!(ben.ask("LOOKUP ann"), "OK FOUND ann busy");
    // Nothing more reaches the caller until the callee acts, the ring
    // timeout included: answering is what stops it.
    let answer = ben.ask(&format!("ANSWER {call}"));
    let words: Vec<&str> = answer.split(' ').collect();
    assert_eq!(&words[..4], ["OK", "ANSWER", "ann", &call[..]], "{answer}");
    let token = words[4];
    assert_eq!(token.len(), 32, "{answer}");
    assert_eq!(
        ann.line(),
        format!("EVENT ANSWERED ben {call} {token} 127.0.0.1:9")
    );
    assert_eq!(
        ben.ask(&format!("ANSWER {call}")),
        format!("ERR not-in-call call {call} is not ringing for you")
    );
    assert_eq!(line_within(&mut ann, Duration::from_millis(1500)), None);
    // The relay opens for it as for any call.
    let mut half = Raw::connect(server);
    half.send(&format!("RELAY {call} {token}"));
    assert_eq!(ben.line(), format!("EVENT RELAY {call}"));
    drop(half);
    assert_eq!(
        ann.ask(&format!("HANGUP {call}")),
        format!("OK HANGUP {call}")
    );
    assert_eq!(ben.line(), format!("EVENT HANGUP {call} ann"));
}

#[test]
fn a_declined_caller_never_learns_the_address_or_token() {
    let server = ringing_server();
    let mut ann = register_with(server, "ann", "ring");
    let mut ben = register_with(server, "ben", "ring");
    let call = ring(&mut ann, &mut ben, "ann", "ben");
    assert_eq!(
        ann.ask(&format!("ANSWER {call}")),
        format!("ERR not-in-call call {call} is not ringing for you")
    );
    assert_eq!(
        ann.ask(&format!("DECLINE {call}")),
        format!("ERR not-in-call call {call} is not ringing for you")
    );
    assert_eq!(
        ben.ask(&format!("DECLINE {call}")),
        format!("OK DECLINE {call}")
    );
    assert_eq!(ann.line(), format!("EVENT DECLINED {call} ben"));
    assert_eq!(ann.ask("LOOKUP ben"), "OK FOUND ben free");
    assert_eq!(ben.ask("LOOKUP ann"), "OK FOUND ann free");
    assert_eq!(line_within(&mut ann, Duration::from_millis(1500)), None);
    assert_eq!(line_within(&mut ben, Duration::from_millis(10)), None);
}

#[test]
fn a_call_nobody_answers_rings_out_for_both() {
    let server = ringing_server();
    let mut ann = register_with(server, "ann", "ring");
    let mut ben = register_with(server, "ben", "ring");
    let call = ring(&mut ann, &mut ben, "ann", "ben");
    assert_eq!(ann.line(), format!("EVENT NOANSWER {call} ben"));
    assert_eq!(ben.line(), format!("EVENT NOANSWER {call} ann"));
    assert_eq!(ann.ask("LOOKUP ben"), "OK FOUND ben free");
    assert_eq!(
        ben.ask(&format!("ANSWER {call}")),
        format!("ERR not-in-call call {call} is not ringing for you")
    );
    // Free again: the next call rings anew.
    let again = ring(&mut ben, &mut ann, "ben", "ann");
    assert_ne!(again, call);
}

#[test]
fn a_caller_hanging_up_or_either_side_leaving_ends_the_ringing() {
    let server = ringing_server();
    let mut ann = register_with(server, "ann", "ring");
    let mut ben = register_with(server, "ben", "ring");
    let call = ring(&mut ann, &mut ben, "ann", "ben");
    assert_eq!(
        ann.ask(&format!("HANGUP {call}")),
        format!("OK HANGUP {call}")
    );
    assert_eq!(ben.line(), format!("EVENT HANGUP {call} ann"));
    assert_eq!(
        ben.ask(&format!("ANSWER {call}")),
        format!("ERR not-in-call call {call} is not ringing for you")
    );

    let call = ring(&mut ann, &mut ben, "ann", "ben");
    drop(ben);
    assert_eq!(ann.line(), format!("EVENT HANGUP {call} ben"));
    assert_eq!(ann.ask("LIST"), "OK USERS 1");
    assert_eq!(ann.line(), "USER ann free");

    let mut cat = register_with(server, "cat", "ring");
    let call = ring(&mut cat, &mut ann, "cat", "ann");
    drop(cat);
    assert_eq!(ann.line(), format!("EVENT HANGUP {call} cat"));
    // Nothing rings out later for a call that ended.
    assert_eq!(line_within(&mut ann, Duration::from_millis(1500)), None);
}

/// A call set up at once, as before ringing: `OK CALL` and `EVENT
/// INCOMING`; then hung up.
fn todays_flow(caller: &mut Raw, callee: &mut Raw, caller_name: &str, callee_name: &str) {
    let reply = caller.ask(&format!("CALL {callee_name}"));
    let words: Vec<&str> = reply.split(' ').collect();
    assert_eq!(&words[..3], ["OK", "CALL", callee_name], "{reply}");
    let (call, token) = (words[3], words[4]);
    assert_eq!(
        callee.line(),
        format!("EVENT INCOMING {caller_name} {call} {token}")
    );
    assert!(
        caller
            .ask(&format!("HANGUP {call}"))
            .starts_with("OK HANGUP")
    );
    assert_eq!(callee.line(), format!("EVENT HANGUP {call} {caller_name}"));
}

#[test]
fn a_callee_without_ring_gets_todays_flow_and_one_that_rings_is_always_rung() {
    let server = ringing_server();
    let mut old = register(server, "old");
    let mut new = register_with(server, "new", "ring missed");
    todays_flow(&mut new, &mut old, "new", "old");
    // The callee's terms decide: a caller that cannot ring is refused, the
    // callee hears of the missed call, and nobody learns an address.
    assert_eq!(
        old.ask("CALL new"),
        "ERR unreachable new answers only calls that ring; a newer chat can call"
    );
    assert_eq!(new.line(), "EVENT MISSED old");
    assert_eq!(old.ask("LOOKUP new"), "OK FOUND new free");
    // Features announced after REGISTER count too.
    assert!(old.ask("FEATURES ring").starts_with("OK FEATURES"));
    ring(&mut old, &mut new, "old", "new");
}

#[test]
fn a_busy_callee_that_asked_hears_of_the_missed_call() {
    let server = ringing_server();
    let mut ann = register(server, "ann");
    let mut ben = register_with(server, "ben", "missed");
    let mut old = register(server, "old");
    let mut cat = register(server, "cat");
    let reply = ann.ask("CALL ben");
    assert!(reply.starts_with("OK CALL ben"), "{reply}");
    assert!(ben.line().starts_with("EVENT INCOMING ann"));
    assert!(cat.ask("CALL BEN").starts_with("ERR busy ben is busy"));
    assert_eq!(ben.line(), "EVENT MISSED cat");
    // ann is busy too but did not ask.
    assert!(old.ask("CALL ann").starts_with("ERR busy"));
    assert_eq!(line_within(&mut ann, Duration::from_millis(300)), None);
}

#[test]
fn watchers_get_presence_in_batches_and_not_about_themselves() {
    let server = serve(Config {
        presence_interval: Duration::from_millis(100),
        ..Config::default()
    });
    let mut eve = register(server, "eve");
    assert_eq!(eve.ask("WATCH on"), "OK WATCH on");
    assert_eq!(eve.ask("watch ON"), "OK WATCH on");
    let mut quiet = register(server, "quiet");
    let mut ann = register(server, "ann");
    assert_eq!(eve.line(), "EVENT PRESENCE joined:quiet joined:ann");
    let ghost = register(server, "ghost");
    drop(ghost);
    let reply = ann.ask("CALL quiet");
    let call = reply.split(' ').nth(3).unwrap().to_string();
    assert!(quiet.line().starts_with("EVENT INCOMING"));
    // ghost came and went within a batch: never mentioned.
    assert_eq!(eve.line(), "EVENT PRESENCE busy:ann busy:quiet");
    assert!(eve.ask("CALL ann").starts_with("ERR busy"));
    assert!(ann.ask(&format!("HANGUP {call}")).starts_with("OK HANGUP"));
    assert_eq!(quiet.line(), format!("EVENT HANGUP {call} ann"));
    assert_eq!(eve.line(), "EVENT PRESENCE free:ann free:quiet");
    // The watcher's own call is news to the others, not to it.
    assert_eq!(quiet.ask("WATCH on"), "OK WATCH on");
    let reply = eve.ask("CALL ann");
    assert!(reply.starts_with("OK CALL ann"), "{reply}");
    assert_eq!(eve.line(), "EVENT PRESENCE busy:ann");
    assert_eq!(quiet.line(), "EVENT PRESENCE busy:eve busy:ann");
    assert_eq!(eve.ask("WATCH off"), "OK WATCH off");
    drop(ann);
    assert_eq!(quiet.line(), "EVENT PRESENCE left:ann free:eve");
    assert!(eve.line().starts_with("EVENT HANGUP"));
    assert_eq!(line_within(&mut eve, Duration::from_millis(400)), None);
}

#[test]
fn watch_needs_a_registration_and_a_word() {
    let server = default_server();
    let mut raw = Raw::connect(server);
    assert!(raw.ask("WATCH on").starts_with("ERR not-registered"));
    assert!(raw.ask("ANSWER 1").starts_with("ERR not-registered"));
    assert!(raw.ask("DECLINE 1").starts_with("ERR not-registered"));
    let mut raw = register(server, "ann");
    for (line, reply) in [
        (
            "WATCH",
            "ERR bad-request wrong arguments for WATCH; usage: WATCH on|off",
        ),
        (
            "WATCH yes",
            "ERR bad-request wrong arguments for WATCH; usage: WATCH on|off",
        ),
        (
            "ANSWER",
            "ERR bad-request wrong arguments for ANSWER; usage: ANSWER CALL-ID",
        ),
        ("DECLINE x", "ERR bad-request \"x\" is not a valid call id"),
        ("ANSWER 7", "ERR not-in-call call 7 is not ringing for you"),
        ("DECLINE 7", "ERR not-in-call call 7 is not ringing for you"),
    ] {
        assert_eq!(raw.ask(line), reply, "{line}");
    }
}

#[test]
fn a_thousand_registrations_reach_each_watcher_as_a_few_lines() {
    let server = serve(Config {
        presence_interval: Duration::from_millis(250),
        // All of them from 127.0.0.1.
        max_registrations_per_ip: 1_000_000,
        ..Config::default()
    });
    let joiners = common::open_file_budget(1000 + 20) - 20;
    let mut watchers: Vec<Raw> = (0..5)
        .map(|i| {
            let mut w = register(server, &format!("watcher{i}"));
            assert_eq!(w.ask("WATCH on"), "OK WATCH on");
            w
        })
        .collect();
    // The watchers' own joins go out first: each hears of those after it
    // (and perhaps of some before, in the same round), never of itself.
    for (i, watcher) in watchers.iter_mut().enumerate() {
        let mut later: std::collections::HashSet<String> =
            (i + 1..5).map(|j| format!("joined:watcher{j}")).collect();
        while !later.is_empty() {
            let line = watcher.line();
            let entries = line.strip_prefix("EVENT PRESENCE ").expect(&line);
            for entry in entries.split(' ') {
                let other = entry.strip_prefix("joined:watcher").expect(entry);
                assert_ne!(other, i.to_string(), "told about itself");
                later.remove(entry);
            }
        }
    }
    let held: Vec<Raw> = (0..joiners)
        .map(|i| register(server, &format!("p{i}")))
        .collect();
    for (i, watcher) in watchers.iter_mut().enumerate() {
        let mut seen = std::collections::HashSet::new();
        let mut lines = 0;
        while seen.len() < joiners {
            let line = watcher.line();
            assert!(line.len() <= 4096, "{} bytes", line.len());
            let entries = line.strip_prefix("EVENT PRESENCE ").expect(&line);
            lines += 1;
            for entry in entries.split(' ') {
                let name = entry.strip_prefix("joined:").expect(entry);
                if name.starts_with('p') {
                    seen.insert(name.to_string());
                } else {
                    assert_ne!(name, format!("watcher{i}"), "told about itself");
                }
            }
            assert!(lines <= 40, "{lines} lines for {} joins", seen.len());
        }
        assert_eq!(seen.len(), joiners);
    }
    drop(held);
}

#[test]
fn one_unregistered_connection_too_many_from_an_address_closes_its_oldest() {
    let server = default_server();
    let mut silent: Vec<Raw> = (0..17).map(|_| Raw::connect(server)).collect();
    assert_eq!(
        silent[0].line(),
        "ERR timeout too many unregistered connections from your address"
    );
    assert!(silent[0].is_closed());
    let newest = silent.last_mut().unwrap();
    assert!(
        newest
            .ask("REGISTER late 127.0.0.1:9")
            .starts_with("OK WELCOME late")
    );
    // A registered peer does not count: 15 are left unregistered, so the
    // second more closes the second oldest, not the peer.
    let _more: Vec<Raw> = (0..2).map(|_| Raw::connect(server)).collect();
    assert!(silent[1].line().starts_with("ERR timeout too many"));
    assert_eq!(silent[16].ask("PING"), "OK PONG");
    assert_eq!(silent[2].ask("PING"), "OK PONG");
}

#[test]
fn a_relay_opened_again_by_rejoin_joins_even_while_an_older_half_waits() {
    let server = default_server();
    let mut ann = register(server, "ann");
    let mut ben = register(server, "ben");
    let reply = ann.ask("CALL ben");
    assert!(reply.starts_with("OK CALL ben"), "{reply}");
    let call = reply.split(' ').nth(3).unwrap().to_string();
    assert!(ben.line().starts_with("EVENT INCOMING ann"));
    // Only the parties of the call can open its relay again.
    let mut cat = register(server, "cat");
    assert!(cat.ask("REJOIN ben").starts_with("ERR "));
    let rejoin = |raw: &mut Raw| {
        let reply = raw.ask("REJOIN ben");
        let words: Vec<String> = reply.split(' ').map(String::from).collect();
        assert_eq!(&words[..4], ["OK", "REJOIN", "ben", &call[..]], "{reply}");
        words[4].clone()
    };
    // ann's first half waits; ben is told, but does not come.
    let first = rejoin(&mut ann);
    let mut old_half = Raw::connect(server);
    old_half.send(&format!("RELAY {call} {first}"));
    assert_eq!(ben.line(), format!("EVENT REJOIN ann {call} {first}"));
    // The link flaps: ann asks again, and this time ben joins.
    let second = rejoin(&mut ann);
    // The old relay's connections are closed: it gives way.
    assert!(old_half.is_closed(), "the old half gives way");
    let mut new_half = Raw::connect(server);
    new_half.send(&format!("RELAY {call} {second}"));
    assert_eq!(ben.line(), format!("EVENT REJOIN ann {call} {second}"));
    let mut ben_half = Raw::connect(server);
    assert_eq!(
        ben_half.ask(&format!("RELAY {call} {second}")),
        format!("OK RELAYED {call}")
    );
    assert_eq!(new_half.line(), format!("OK RELAYED {call}"));
    // The first token is spent.
    let mut late = Raw::connect(server);
    assert!(
        late.ask(&format!("RELAY {call} {first}"))
            .starts_with("ERR ")
    );
    new_half.send("MSG through");
    assert_eq!(ben_half.line(), "MSG through");
}

#[test]
fn a_watcher_registered_in_another_spelling_is_not_told_about_itself() {
    let server = serve(Config {
        presence_interval: Duration::from_millis(100),
        ..Config::default()
    });
    // Typed decomposed (e + U+0301); the server lists it composed, and
    // tells watchers of it in that one spelling.
    let mut jose = register(server, "Jose\u{301}");
    assert_eq!(jose.ask("WATCH on"), "OK WATCH on");
    let mut eve = register(server, "eve");
    assert_eq!(eve.ask("WATCH on"), "OK WATCH on");
    let mut ann = register(server, "ann");
    let reply = jose.ask("CALL ann");
    assert!(reply.starts_with("OK CALL ann"), "{reply}");
    assert!(ann.line().starts_with("EVENT INCOMING"));
    // Each watcher's lines up to the one that says ann is busy.
    let until_busy = |raw: &mut Raw| {
        let mut seen = Vec::new();
        while !seen.last().is_some_and(|l: &String| l.contains("busy:ann")) {
            seen.push(raw.line());
        }
        seen.join("\n")
    };
    let told_jose = until_busy(&mut jose);
    assert!(!told_jose.contains("Jos"), "{told_jose}");
    let told_eve = until_busy(&mut eve);
    assert!(told_eve.contains("busy:Jos\u{e9}"), "{told_eve}");
}

#[test]
fn a_watch_takes_a_thread_from_the_budget_and_past_it_is_refused_while_everyone_is_served() {
    // Three threads: ann's connection, ann's presence writer, ben's
    // connection.
    let server = serve(Config {
        max_threads: Some(3),
        ..Config::default()
    });
    let mut ann = register(server, "ann");
    assert_eq!(ann.ask("WATCH on"), "OK WATCH on");
    let mut ben = register(server, "ben");
    assert_eq!(
        ben.ask("WATCH on"),
        "ERR server-full no presence for now: the server runs all the threads it can (3); \
         LIST still answers"
    );
    assert_eq!(ben.ask("LIST"), "OK USERS 2");
    assert_eq!(ben.line(), "USER ann free");
    assert_eq!(ben.line(), "USER ben free");
    let mut cat = Raw::connect(server);
    assert!(cat.line().starts_with("ERR server-full"));
    assert!(cat.is_closed());
    assert_eq!(ann.ask("WATCH on"), "OK WATCH on", "watching already");
    assert_eq!(ann.ask("WATCH off"), "OK WATCH off");
    // Its writer ends a moment later and gives its thread back.
    common::eventually("ben may watch", || ben.ask("WATCH on") == "OK WATCH on");
    assert_eq!(ann.ask("PING"), "OK PONG");
}
