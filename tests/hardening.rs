//! Bad input, dead peers, races and intruders, fed to the real binaries. In
//! every case the bad client gets an error or a clean close, and everyone
//! else carries on untouched.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::{Chat, Raw, Server, WAIT, connect, login, registered, server_list as list};

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_taken_name_in_another_case_is_refused_and_asked_again() {
    let server = Server::start();
    let _alice = login(&server, "Alice");
    let mut other = Chat::spawn(server.addr, &[]);
    other.expect("Enter your visible name: ");
    other.send("aLiCe");
    other.expect("The server refused the name aLiCe: the name Alice is taken");
    other.expect("Enter your visible name: ");
    other.send("has space");
    other.expect("may not contain spaces");
    other.expect("Enter your visible name: ");
    other.send(&"x".repeat(33));
    other.expect("at most 32 characters");
    other.send("alice2");
    other.expect("Online users (2)");

    let mut fixed = Chat::spawn(server.addr, &["--name", "ALICE"]);
    assert_eq!(fixed.wait_exit().code(), Some(2));
    fixed.expect_stderr("the server refused the name ALICE: the name Alice is taken");
    assert!(!fixed.stdout().contains("refused"), "said twice");
    assert_eq!(list(&server), ["USER Alice free", "USER alice2 free"]);
}

#[test]
fn an_oversize_line_is_refused_and_closed_while_a_chat_goes_on() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    connect(&mut alice, &mut bob);

    let mut raw = Raw::connect(server.addr);
    // A line far past the cap, with no newline in sight: the server must
    // not buffer it all.
    let _ = raw.stream().write_all(&vec![b'A'; 64 * 1024]);
    assert!(raw.line().starts_with("ERR line-too-long"));
    assert!(raw.is_closed());

    // Same for a registered client.
    let mut reg = registered(&server, "big");
    let _ = reg
        .stream()
        .write_all(format!("CALL {}\n", "x".repeat(5000)).as_bytes());
    assert!(reg.line().starts_with("ERR line-too-long"));
    assert!(reg.is_closed());
    server.expect_log("big left (sent an oversize line)");

    alice.send("unbothered");
    bob.expect("alice: unbothered");
}

#[test]
fn binary_garbage_and_nul_bytes_get_errors_not_panics() {
    let server = Server::start();
    let mut raw = Raw::connect(server.addr);
    let mut noise: Vec<u8> = (0u32..2000).map(|i| (i * 7919 % 251) as u8).collect();
    noise.retain(|&b| b != b'\n');
    for chunk in noise.chunks(200) {
        raw.send_bytes(chunk);
        raw.send_bytes(b"\n");
        let reply = raw.line();
        assert!(reply.starts_with("ERR "), "{reply:?}");
    }
    raw.send_bytes(b"\0\0\0\n");
    assert!(raw.line().starts_with("ERR unknown-command"));
    raw.send_bytes(b"LIST\0\n");
    assert!(raw.line().starts_with("ERR unknown-command"));
    // Still a working connection afterwards.
    assert!(
        raw.ask("REGISTER survivor 127.0.0.1:9")
            .starts_with("OK WELCOME")
    );
    assert!(!server.log().contains("panicked"));
}

#[test]
fn a_flood_of_requests_is_answered_in_order() {
    let server = Server::start();
    let mut raw = registered(&server, "flood");
    let n = 20_000;
    let writer = raw.stream().try_clone().unwrap();
    let sender = thread::spawn(move || {
        let mut writer = writer;
        writer.write_all(&b"PING\n".repeat(n)).unwrap();
    });
    for i in 0..n {
        assert_eq!(raw.line(), "OK PONG", "reply {i}");
    }
    sender.join().unwrap();
    assert_eq!(raw.ask("LIST"), "OK USERS 1");
}

#[test]
fn silent_and_half_line_connections_are_closed_after_the_registration_timeout() {
    let server = Server::start_with(&["--register-timeout", "1"]);
    let mut silent = Raw::connect(server.addr);
    let mut half = Raw::connect(server.addr);
    half.send_bytes(b"REGISTER never-ending-li");
    assert!(
        silent
            .line()
            .starts_with("ERR timeout did not register in time")
    );
    assert!(silent.is_closed());
    assert!(half.line().starts_with("ERR timeout"));
    assert!(half.is_closed());
}

#[test]
fn a_thousand_silent_connections_do_not_keep_peers_out() {
    let silent = common::open_file_budget(1000);
    // All of them come from 127.0.0.1: lift the per-address cap, or it
    // would close all but 16 on arrival and the server would hold none.
    let cap = (silent + 1).to_string();
    let server =
        Server::start_with(&["--max-unregistered-per-ip", &cap, "--summary-interval", "1"]);
    let idle: Vec<TcpStream> = (0..silent)
        .map(|_| TcpStream::connect(server.addr).expect("connect"))
        .collect();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    connect(&mut alice, &mut bob);
    alice.send("hi");
    bob.expect("alice: hi");
    bob.send("hi alice");
    alice.expect("bob: hi alice");
    assert_eq!(list(&server), ["USER alice busy", "USER bob busy"]);
    // The server holds every silent connection while the two chat...
    server.expect_log(&format!(
        "summary: 2 peers online, {} connections,",
        silent + 2
    ));
    // ...and has neither closed one nor said a word on it.
    for (i, stream) in idle.iter().enumerate() {
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        match (&*stream).read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("silent connection {i} was disturbed: {other:?}"),
        }
    }
    // And the two never heard of them: nothing but their chat.
    let after = |chat: &Chat, mark: &str| {
        let out = chat.stdout();
        let start = out.find(mark).expect(mark);
        out[start..].split_once('\n').unwrap().1.to_string()
    };
    assert_eq!(after(&alice, "Connected to bob"), "bob: hi alice\n");
    assert_eq!(after(&bob, "alice connected"), "alice: hi\n");
    drop(idle);
}

#[test]
fn past_max_clients_a_new_connection_is_told_server_full() {
    let server = Server::start_with(&["--max-clients", "3"]);
    let mut a = registered(&server, "a");
    let _b = registered(&server, "b");
    let _c = Raw::connect(server.addr);
    let mut extra = Raw::connect(server.addr);
    assert_eq!(extra.line(), "ERR server-full server full, try again later");
    assert!(extra.is_closed());
    assert_eq!(a.ask("PING"), "OK PONG");
    drop(a);
    // A slot freed is a slot usable (the slot is released just after the
    // departure is logged, so poll).
    common::eventually("a freed slot takes a new client", || {
        let mut d = Raw::connect(server.addr);
        d.ask("REGISTER d 127.0.0.1:9").starts_with("OK WELCOME")
    });
}

#[test]
fn two_callers_racing_for_one_peer_exactly_one_wins_every_time() {
    // Each round's call is hung up at once, which is a call that did not
    // become a chat: without these options the next round's winner would
    // have to wait (hostile_server.rs tests that wait).
    let server = Server::start_with(&["--recall-wait", "0", "--max-calls-per-minute", "100000"]);
    let mut target = registered(&server, "target");
    let callers: Vec<Raw> = ["one", "two"]
        .iter()
        .map(|n| registered(&server, n))
        .collect();
    let mut callers = callers;
    for round in 0..200 {
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = callers
            .drain(..)
            .map(|mut raw| {
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    let reply = raw.ask("CALL target");
                    (raw, reply)
                })
            })
            .collect();
        let results: Vec<(Raw, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<&String> = results
            .iter()
            .map(|(_, r)| r)
            .filter(|r| r.starts_with("OK CALL target"))
            .collect();
        let losers = results
            .iter()
            .filter(|(_, r)| r.starts_with("ERR busy target is busy"))
            .count();
        assert_eq!(
            (winners.len(), losers),
            (1, 1),
            "round {round}: {results:?}",
            results = results.iter().map(|r| &r.1).collect::<Vec<_>>()
        );
        let call = winners[0].split(' ').nth(3).unwrap().to_string();
        assert!(target.line().starts_with("EVENT INCOMING "));
        assert_eq!(
            target.ask(&format!("HANGUP {call}")),
            format!("OK HANGUP {call}")
        );
        for (mut raw, reply) in results {
            if reply.starts_with("OK") {
                assert!(raw.line().starts_with("EVENT HANGUP"));
            }
            callers.push(raw);
        }
    }
}

#[test]
fn nobody_outside_a_call_can_end_it() {
    let server = Server::start();
    let mut a = registered(&server, "a");
    let mut b = registered(&server, "b");
    let mut c = registered(&server, "c");
    let call = a.ask("CALL b").split(' ').nth(3).unwrap().to_string();
    b.line();
    assert!(
        c.ask(&format!("HANGUP {call}"))
            .starts_with("ERR not-in-call")
    );
    assert_eq!(list(&server), ["USER a busy", "USER b busy", "USER c free"]);
    assert!(a.ask(&format!("HANGUP {call}")).starts_with("OK HANGUP"));
}

/// Connects to a chat's p2p port as a stranger, sends `line`, and returns
/// the answer, or what the closed connection held.
fn intrude(addr: std::net::SocketAddr, line: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn strangers_on_the_p2p_port_are_refused_without_disturbing_the_user() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    let bob_p2p = bob.p2p_addr();
    let guessed = "HELLO mallory 1 0123456789abcdef0123456789abcdef";

    // During the menu: refused, and bob's screen does not change.
    let before = bob.stdout().len();
    let answer = intrude(bob_p2p, "GET / HTTP/1.1");
    assert!(answer.starts_with("ERR bad-request"), "{answer:?}");
    let answer = intrude(bob_p2p, guessed);
    assert!(answer.starts_with("ERR bad-token"), "{answer:?}");
    assert_eq!(bob.stdout().len(), before, "{}", &bob.stdout()[before..]);

    // Record a real call's token with a raw caller, then let it be used.
    let mut raw = common::registered_ringing(&server, "carol");
    let (call, token) = common::ring_answered(&mut raw, "carol", &mut bob);
    let hello = format!("HELLO carol {call} {token}");
    let answer = {
        let mut s = TcpStream::connect(bob_p2p).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(format!("{hello}\n").as_bytes()).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        s.write_all(b"MSG hi from carol\n").unwrap();
        bob.expect("carol: hi from carol");
        // Hang up on the server first, then say BYE, as a chat does.
        assert_eq!(
            raw.ask(&format!("HANGUP {call}")),
            format!("OK HANGUP {call}")
        );
        s.write_all(b"BYE\n").unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(answer, "WELCOME bob\n");
    bob.expect("carol left the chat.");
    bob.expect("Enter a name to chat with");

    // The same token again: a replay.
    let answer = intrude(bob_p2p, &hello);
    assert!(answer.starts_with("ERR bad-token"), "{answer:?}");

    // During a chat, all of it again.
    connect(&mut alice, &mut bob);
    let before = bob.stdout().len();
    for line in ["garbage", guessed, &hello] {
        let answer = intrude(bob_p2p, line);
        assert!(answer.starts_with("ERR"), "{line}: {answer:?}");
    }
    alice.send("still private");
    bob.expect("alice: still private");
    let since = bob.stdout()[before..].to_string();
    assert_eq!(since, "alice: still private\n");
    assert!(!alice.stdout().contains("mallory"));
}

#[test]
fn a_stopped_peer_leaves_the_list_and_ends_its_chat() {
    let server = Server::start_with(&["--idle-timeout", "2"]);
    // A stopped peer looks like a broken link: it is waited for (the grace
    // period, 1 s here) in case it comes back, then the chat ends.
    let mut alice = Chat::spawn(server.addr, &["--name", "alice", "--grace", "1"]);
    alice.label = "alice".into();
    alice.expect("Online users");
    let mut bob = login(&server, "bob");
    connect(&mut alice, &mut bob);
    signal(bob.pid(), "-STOP");
    server.expect_log("bob left (idle timeout)");
    common::eventually("alice is told the chat is over", || {
        let out = alice.stdout();
        out.contains("bob left the chat") || out.contains("could not be brought back")
    });
    alice.expect("Online users (1)");
    assert_eq!(list(&server), ["USER alice free"]);
    signal(bob.pid(), "-CONT");
}

#[test]
fn a_quiet_but_alive_peer_stays_listed() {
    // A 3 s idle timeout means a PING every second: two may be late before
    // a live peer would be dropped, even on a loaded machine.
    let server = Server::start_with(&["--idle-timeout", "3"]);
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    // Over twice the idle timeout with nothing typed: only heartbeats.
    thread::sleep(Duration::from_secs(7));
    assert_eq!(list(&server), ["USER alice free", "USER bob free"]);
    alice.send("bob");
    common::answer(&mut bob, "alice");
    alice.expect("Connected to bob");
}

#[test]
fn a_call_whose_caller_never_connects_expires_and_its_token_dies() {
    let server = Server::start();
    let mut bob = login(&server, "bob");
    let mut raw = common::registered_ringing(&server, "carol");
    let (call, token) = common::ring_answered(&mut raw, "carol", &mut bob);
    let hello = format!("HELLO carol {call} {token}");
    bob.expect("carol's call did not come through.");
    bob.expect("Enter a name to chat with");
    // Bob's chat freed the call on the server…
    assert!(raw.line().starts_with("EVENT HANGUP"));
    assert_eq!(list(&server), ["USER bob free", "USER carol free"]);
    // …and the token is worthless now.
    let answer = intrude(bob.p2p_addr(), &hello);
    assert!(answer.starts_with("ERR bad-token"), "{answer:?}");
}

#[test]
fn the_accept_loop_survives_running_out_of_file_descriptors() {
    let server = Server::start_with_file_limit(48);
    // Far more connections than the server has descriptors for: some are
    // accepted, the rest wait in the backlog or fail to accept.
    let hogs: Vec<TcpStream> = (0..120)
        .filter_map(|_| TcpStream::connect(server.addr).ok())
        .collect();
    server.expect_log("accept failed");
    drop(hogs);
    // Once descriptors are free again, service resumes.
    common::eventually("a client can register again", || {
        let Ok(stream) = TcpStream::connect(server.addr) else {
            return false;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut stream = stream;
        let _ = stream.write_all(b"REGISTER after 127.0.0.1:9\n");
        let mut buf = [0u8; 64];
        matches!(stream.read(&mut buf), Ok(n) if buf[..n].starts_with(b"OK WELCOME"))
    });
}

#[test]
fn resuming_a_chat_with_someone_cannot_free_them_from_theirs() {
    let server = Server::start();
    let mut carol = registered(&server, "carol");
    let mut bob = registered(&server, "bob");
    let mut mallory = registered(&server, "mallory");
    let call = carol.ask("CALL bob").split(' ').nth(3).unwrap().to_string();
    assert!(bob.line().starts_with("EVENT INCOMING carol"));
    let reply = mallory.ask("RESUME bob");
    let fake = reply
        .strip_prefix("OK RESUMED bob ")
        .expect("resumed")
        .to_string();
    assert!(
        mallory
            .ask(&format!("HANGUP {fake}"))
            .starts_with("OK HANGUP")
    );
    assert_eq!(
        list(&server),
        ["USER bob busy", "USER carol busy", "USER mallory free"]
    );
    // Bob heard nothing of it; his real call still ends normally.
    assert_eq!(
        bob.ask(&format!("HANGUP {call}")),
        format!("OK HANGUP {call}")
    );
    assert_eq!(carol.line(), format!("EVENT HANGUP {call} bob"));
}

#[test]
fn a_peer_cannot_drive_the_other_terminal_with_control_characters() {
    let server = Server::start();
    let mut bob = login(&server, "bob");
    let mut carol = common::registered_ringing(&server, "carol");
    let (call, token) = common::ring_answered(&mut carol, "carol", &mut bob);
    let mut link = TcpStream::connect(bob.p2p_addr()).unwrap();
    link.write_all(format!("HELLO carol {call} {token}\n").as_bytes())
        .unwrap();
    link.write_all(b"MSG \x1b]0;owned\x07\x1b[2Jhi\n").unwrap();
    bob.expect("carol: ^[]0;owned^G^[[2Jhi");
    assert!(!bob.stdout().contains('\x1b'));
    // The same hidden in a burst of plain lines, read and shown as one
    // batch: the gate still sees every line.
    let mut burst = String::new();
    for i in 0..2000 {
        burst.push_str(&format!("MSG plain {i}\n"));
        if i == 1000 {
            burst.push_str("MSG mid\x1b[2J\rover\u{202e}flip\n");
        }
    }
    burst.push_str("MSG end\r\n");
    link.write_all(burst.as_bytes()).unwrap();
    bob.expect("carol: end\n");
    let out = bob.stdout();
    assert!(
        out.contains("carol: mid^[[2J^Mover\\u{202e}flip\n"),
        "{out}"
    );
    assert!(out.contains("carol: plain 1999\n"));
    assert!(!out.contains('\x1b') && !out.contains('\r') && !out.contains('\u{202e}'));
}

/// The callee's terms decide (#21, finding 1): a caller that leaves `ring`
/// out of its features gets neither the address nor a token of a chat that
/// asks before answering, and the chat hears of the missed call.
#[test]
fn a_caller_that_cannot_ring_never_reaches_a_chat_that_asks() {
    let server = Server::start();
    let mut bob = login(&server, "bob");
    let mut mallory = registered(&server, "mallory");
    let reply = mallory.ask("CALL bob");
    assert_eq!(
        reply,
        "ERR unreachable bob answers only calls that ring; a newer chat can call"
    );
    assert!(!reply.contains("127.0.0.1"), "{reply}");
    // Told as a missed call, never as a chat.
    bob.send("/who");
    bob.expect("mallory tried to call you at ");
    assert!(
        !bob.stdout().contains("mallory connected"),
        "{}",
        bob.stdout()
    );
    assert_eq!(list(&server), ["USER bob free", "USER mallory free"]);
}

/// Names are held for their owner (#21): a chat whose connection was lost
/// (stopped, its network gone) keeps its name for `--hold`; nobody else
/// can take it meanwhile, and the chat takes it back with its secret.
#[test]
fn a_lost_chats_name_is_held_for_it_and_taken_back_only_by_it() {
    let server = Server::start_with(&["--idle-timeout", "2", "--hold", "30"]);
    let mut bob = login(&server, "bob");
    let stop = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &bob.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    };
    stop("-STOP");
    server.expect_log("bob left (idle timeout)");
    let mut mallory = Raw::connect(server.addr);
    let reply = mallory.ask("REGISTER bob 127.0.0.1:9");
    assert!(
        reply.starts_with("ERR name-taken the name bob is held for its owner"),
        "{reply}"
    );
    assert!(!list(&server).iter().any(|row| row.contains("bob")));
    // A second program under the name is refused too, and says why.
    let other = Chat::spawn(server.addr, &["--name", "bob"]);
    other.expect_stderr("held for its owner");
    stop("-CONT");
    bob.expect("Reconnected to the registration server.");
    assert_eq!(list(&server), ["USER bob free"]);
}

/// Relays that no one can hoard (#21, finding 5): a call to oneself opens
/// no relay, and one address holds at most `--max-relays-per-ip` of them,
/// so a client with many names cannot take every relay from the others.
#[test]
fn one_address_cannot_hold_every_relay_and_a_call_to_oneself_needs_none() {
    let server = Server::start_with(&["--max-relays-per-ip", "3"]);
    let fields = |reply: &str| {
        let words: Vec<String> = reply.split(' ').map(String::from).collect();
        assert_eq!(words[..2], ["OK", "CALL"], "{reply}");
        (words[3].clone(), words[4].clone())
    };
    let mut solo = registered(&server, "solo");
    // Told of its own call first, then answered.
    assert!(solo.ask("CALL solo").starts_with("EVENT INCOMING solo"));
    let (call, token) = fields(&solo.line());
    let mut half = Raw::connect(server.addr);
    let reply = half.ask(&format!("RELAY {call} {token}"));
    assert!(reply.starts_with("ERR bad-token"), "{reply}");
    assert!(solo.ask(&format!("HANGUP {call}")).starts_with("OK HANGUP"));

    // A pair calls, and its caller's side opens the first half.
    let pair = |i: usize| {
        let mut a = registered(&server, &format!("a{i}"));
        let mut b = registered(&server, &format!("b{i}"));
        let (call, token) = fields(&a.ask(&format!("CALL b{i}")));
        assert!(b.line().starts_with("EVENT INCOMING"));
        (call, token, a, b, Raw::connect(server.addr))
    };
    // ...and the callee's side the second: both are relayed.
    let relayed = |i: usize| {
        let (call, token, a, mut b, mut first) = pair(i);
        first.send(&format!("RELAY {call} {token}"));
        assert_eq!(b.line(), format!("EVENT RELAY {call}"));
        let mut second = Raw::connect(server.addr);
        let reply = second.ask(&format!("RELAY {call} {token}"));
        assert_eq!(reply, format!("OK RELAYED {call}"));
        assert_eq!(first.line(), format!("OK RELAYED {call}"));
        (call, a, b, first, second)
    };
    let mut held: Vec<_> = (0..3).map(relayed).collect();
    let (call, token, _a, _b, mut first) = pair(3);
    assert_eq!(
        first.ask(&format!("RELAY {call} {token}")),
        "ERR server-full too many relayed chats from your address at once; try again later"
    );
    // One relay ends: the address may open another.
    let (call, mut a, _b, _first, _second) = held.remove(0);
    let reply = a.ask(&format!("HANGUP {call}"));
    assert_eq!(reply, format!("OK HANGUP {call}"));
    server.expect_log(&format!("chat {call}: relay closed"));
    relayed(4);
}

/// A ring flood is bounded (#21, finding 11): fresh names ring one chat at
/// most six times a minute; the rest are refused, and the user is asked
/// only those six times.
#[test]
fn a_ring_flood_from_fresh_names_asks_the_user_at_most_six_times_a_minute() {
    let server = Server::start();
    let mut bob = login(&server, "bob");
    let mut refused = 0;
    for i in 0..10 {
        let name = format!("m{i}");
        let mut raw = common::registered_ringing(&server, &name);
        let reply = raw.ask("CALL bob");
        if reply.starts_with("OK RINGING bob ") {
            bob.expect(&format!("{name} is calling: y to answer, n to decline."));
            let call = reply.rsplit(' ').next().unwrap().to_string();
            assert!(raw.ask(&format!("HANGUP {call}")).starts_with("OK HANGUP"));
            bob.expect(&format!("{name} hung up before you answered."));
        } else {
            assert!(
                reply.starts_with(
                    "ERR too-soon bob is not taking calls from new names now; try again in "
                ),
                "{reply}"
            );
            refused += 1;
        }
    }
    assert_eq!(refused, 4);
    assert_eq!(bob.stdout().matches("is calling: y to answer").count(), 6);
}

/// Registrations per source address are bounded (#21, finding 10), so
/// fresh names to ring with do not come for free: with
/// `--max-registrations-per-ip 5` the sixth name registered from 127.0.0.1
/// within a minute is refused in one line that says when to try again,
/// and the five go on being served.
#[test]
fn the_sixth_registration_from_one_address_in_a_minute_is_refused_with_the_wait() {
    let server = Server::start_with(&["--max-registrations-per-ip", "5"]);
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    let mut held: Vec<Raw> = (3..=5)
        .map(|i| registered(&server, &format!("r{i}")))
        .collect();
    let mut sixth = Raw::connect(server.addr);
    let reply = sixth.ask("REGISTER r6 127.0.0.1:9");
    let wait = reply
        .strip_prefix(
            "ERR too-soon your address made 5 registrations in the last minute, the most it \
             may; try again in ",
        )
        .and_then(|rest| rest.strip_suffix(" s"))
        .and_then(|secs| secs.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("not the refusal: {reply}"));
    assert!((1..=60).contains(&wait), "{reply}");
    // The connection stays, and may try again once the minute is up.
    assert_eq!(sixth.ask("PING"), "OK PONG");
    let mut late = Chat::spawn(server.addr, &["--name", "late"]);
    assert_eq!(late.wait_exit().code(), Some(2));
    late.expect_stderr(
        "the server refused the name late: your address made 5 registrations in the last minute",
    );
    // Those registered are served: listed, and chatting.
    assert_eq!(held[0].ask("LIST"), "OK USERS 5");
    let rows: Vec<String> = (0..5).map(|_| held[0].line()).collect();
    assert_eq!(rows[..2], ["USER alice free", "USER bob free"]);
    connect(&mut alice, &mut bob);
    alice.send("still here");
    bob.expect("alice: still here");
}

/// A raw caller that rang `callee`, was answered and said `HELLO`: its
/// link, once `WELCOME` came.
fn raw_peer(server: &Server, name: &str, callee: &mut Chat) -> (TcpStream, Raw) {
    let mut raw = common::registered_ringing(server, name);
    let (call, token) = common::ring_answered(&mut raw, name, callee);
    let mut link = TcpStream::connect(callee.p2p_addr()).unwrap();
    link.set_read_timeout(Some(WAIT)).unwrap();
    link.write_all(format!("HELLO {name} {call} {token}\n").as_bytes())
        .unwrap();
    let mut welcome = [0u8; 64];
    let n = link.read(&mut welcome).unwrap();
    assert!(welcome[..n].starts_with(b"WELCOME "));
    callee.expect(&format!("{name} connected"));
    (link, raw)
}

/// A transcript no peer can blow up (#21, finding 7): the file stops at
/// `--log-max`, saying so, while the screen shows every line.
#[test]
fn the_transcript_stops_at_log_max_and_says_so() {
    let server = Server::start();
    let dir = std::env::temp_dir().join(format!("p2pchat-logmax-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("t.log");
    let mut bob = Chat::spawn(
        server.addr,
        &[
            "--name",
            "bob",
            "--log",
            log.to_str().unwrap(),
            "--log-max",
            "8K",
        ],
    );
    bob.label = "bob".into();
    bob.expect("Enter a name to chat with");
    let (mut link, _mallory) = raw_peer(&server, "mallory", &mut bob);
    let burst: String = (0..5000).map(|i| format!("MSG line {i}\n")).collect();
    link.write_all(burst.as_bytes()).unwrap();
    bob.expect("mallory: line 4999");
    bob.send("q");
    bob.expect("You left the chat with mallory.");
    bob.send("q");
    bob.wait_exit();
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(text.len() <= 8 * 1024, "{} bytes", text.len());
    assert!(
        text.trim_end()
            .ends_with("[the transcript stops here: it reached --log-max (8192 bytes)]"),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );
    assert!(text.contains("mallory: line 0\n"));
}

/// A log that cannot keep up holds the peer's lines back, as a slow
/// screen does: the chat does not queue without bound, and once the log
/// drains every line shown is in it.
#[test]
fn a_stalled_transcript_holds_the_peer_back_and_loses_nothing() {
    let server = Server::start();
    let dir = std::env::temp_dir().join(format!("p2pchat-logfifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("t.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // The log's reader opens it and reads nothing until told.
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let path = fifo.clone();
    let reader = std::thread::spawn(move || {
        let mut file = std::fs::File::open(&path).unwrap();
        wait.recv().unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        text
    });
    let mut bob = Chat::spawn(
        server.addr,
        &["--name", "bob", "--log", fifo.to_str().unwrap()],
    );
    bob.label = "bob".into();
    bob.expect("Enter a name to chat with");
    let (link, _mallory) = raw_peer(&server, "mallory", &mut bob);
    // Flood until bob stops reading: the writes block.
    let mut flood = link.try_clone().unwrap();
    flood
        .set_write_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let line = format!("MSG {}\n", "x".repeat(1000));
    let mut sent = 0usize;
    let mut lines = 0usize;
    while sent < 256 << 20 {
        match flood.write(line.as_bytes()) {
            Ok(n) if n == line.len() => {
                sent += n;
                lines += 1;
            }
            _ => break,
        }
    }
    assert!(
        sent < 64 << 20,
        "bob kept reading: {sent} bytes with the log stalled"
    );
    // The log drains: every line the screen shows reaches it.
    go.send(()).unwrap();
    bob.expect(&format!("mallory: {}", "x".repeat(1000)));
    drop(flood);
    drop(link);
    bob.expect("mallory left the chat");
    bob.expect("Enter a name to chat with");
    bob.send("q");
    bob.wait_exit();
    let text = reader.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let shown = bob
        .stdout()
        .matches(&format!("mallory: {}", "x".repeat(1000)))
        .count();
    let logged = text
        .matches(&format!("mallory: {}", "x".repeat(1000)))
        .count();
    assert!(shown >= lines - 1, "shown {shown} of {lines} sent");
    assert_eq!(logged, shown, "every line shown is in the log");
}

/// No peer forges a row of the program's own with blanks (#21, finding 8):
/// tabs and the other blanks reach the screen as spaces the chat counts,
/// never as a tab the terminal would move by up to 8 columns.
#[test]
fn a_peers_tabs_and_odd_blanks_are_shown_as_counted_spaces() {
    let server = Server::start();
    let mut bob = login(&server, "bob");
    let (mut link, _mallory) = raw_peer(&server, "mallory", &mut bob);
    let forged = format!(
        "MSG {}mallory left the chat.\u{a0}\u{3000}x\n",
        "\t".repeat(40)
    );
    link.write_all(forged.as_bytes()).unwrap();
    bob.expect(&format!(
        "mallory: {}mallory left the chat.   x",
        " ".repeat(160)
    ));
    assert!(!bob.stdout().contains('\t'));
    assert!(!bob.stdout().contains('\u{a0}'));
}
