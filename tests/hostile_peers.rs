//! Peers that do not play along, against the real binaries: a caller that
//! floods and never reads, a peer that stops reading. Whatever they do, the
//! user's keys are handled and everyone else keeps being served.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{Chat, Raw, Server, WAIT, login};

/// A raw caller: registered as `name`, calls `callee`, dials it and says
/// HELLO; returns the socket once WELCOME came, with the server connection.
fn raw_caller(server: &Server, name: &str, callee: &mut Chat) -> (TcpStream, Raw) {
    let mut raw = common::registered_ringing(server, name);
    let (call, token) = common::ring_answered(&mut raw, name, callee);
    let mut stream = TcpStream::connect(callee.p2p_addr()).expect("dial the callee");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
        .write_all(format!("HELLO {name} {call} {token}\n").as_bytes())
        .unwrap();
    let mut welcome = String::new();
    BufReader::new(stream.try_clone().unwrap())
        .read_line(&mut welcome)
        .unwrap();
    assert_eq!(welcome, format!("WELCOME {}\n", callee.label));
    callee.expect(&format!("{name} connected"));
    (stream, raw)
}

#[test]
fn a_caller_flooding_pings_and_never_reading_cannot_freeze_the_callee() {
    let server = Server::start();
    let mut bob = login(&server, "bob");
    let (stream, _mallory) = raw_caller(&server, "mallory", &mut bob);

    // Flood PINGs for 3 s and never read a byte of the answers; say when
    // the flood fills every buffer on the way (a write waits), or has sent
    // 8 MiB (the callee keeps up), so that q comes into a full flood.
    let (flooding, flood_underway) = std::sync::mpsc::channel();
    let flooder = thread::spawn(move || {
        let mut flooding = Some(flooding);
        let mut stream = stream;
        stream
            .set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let chunk = "PING\n".repeat(2000);
        let mut sent = 0;
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let full = match stream.write(chunk.as_bytes()) {
                Ok(n) => {
                    sent += n;
                    false
                }
                // The callee stopped reading for a moment: push on.
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => true,
                Err(_) => break,
            };
            if let Some(tell) = flooding.take_if(|_| full || sent >= 8 << 20) {
                let _ = tell.send(());
            }
        }
        stream
    });
    flood_underway
        .recv_timeout(WAIT)
        .expect("the flood is under way");

    // Mid-flood, q is handled at once. It takes about a millisecond here
    // (3 ms in the bench, whose goal is 100 ms): 500 ms leaves room for a
    // debug build on a busy machine, and none for keys queued behind the
    // flood.
    const AT_ONCE: Duration = Duration::from_millis(500);
    let typed = Instant::now();
    bob.send("q");
    bob.expect_within("You left the chat with mallory.", AT_ONCE);
    let took = typed.elapsed();
    assert!(took < AT_ONCE, "q took {took:?}");
    bob.expect("Online users");

    // And a third peer's call is answered.
    let mut carol = login(&server, "carol");
    carol.send("bob");
    common::answer(&mut bob, "carol");
    carol.expect_within("Connected to bob", Duration::from_secs(10));
    bob.expect("carol connected");
    carol.send("through the flood");
    bob.expect("carol: through the flood");
    drop(flooder.join());
}

#[test]
fn a_peer_that_stops_reading_is_dropped_with_a_notice_and_the_chat_goes_on() {
    let server = Server::start();
    let mut bob = Chat::spawn(server.addr, &["--name", "bob", "--write-timeout", "2"]);
    bob.label = "bob".into();
    bob.expect("Enter a name to chat with");
    let (stream, _mallory) = raw_caller(&server, "mallory", &mut bob);
    // Far more than the socket buffers and the link's backlog hold.
    let line = "x".repeat(4000);
    let mut text = String::new();
    for _ in 0..4000 {
        text.push_str(&line);
        text.push('\n');
    }
    bob.send_bytes(text.as_bytes());
    bob.expect_within(
        "mallory stopped reading; the chat ended.",
        Duration::from_secs(20),
    );
    bob.expect("Online users");
    bob.send("");
    bob.expect("Online users");
    drop(stream);
}

/// alice pipes `n` numbered lines then q; bob must see each once, in order,
/// and then alice leaving (not a lost connection).
fn lines_then_q_all_arrive(alice: &mut Chat, bob: &mut Chat, n: usize) {
    lines_then_q_all_arrive_padded(alice, bob, n, "");
}

/// The same, each line carrying `pad` too.
fn lines_then_q_all_arrive_padded(alice: &mut Chat, bob: &mut Chat, n: usize, pad: &str) {
    let mut text = String::with_capacity(n * (12 + pad.len()));
    for i in 0..n {
        text.push_str(&format!("line {i}{pad}\n"));
    }
    text.push_str("q\n");
    alice.send_bytes(text.as_bytes());
    bob.expect_within(
        &format!("alice: line {}{pad}\n", n - 1),
        Duration::from_secs(60),
    );
    bob.expect("alice left the chat.");
    let out = bob.stdout();
    let got: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("alice: line "))
        .map(|l| l.strip_suffix(pad).unwrap_or(l))
        .collect();
    assert_eq!(got.len(), n, "every line once");
    for (i, number) in got.iter().enumerate() {
        assert_eq!(*number, i.to_string(), "in order");
    }
    assert!(
        !out.contains("connection lost"),
        "{}",
        &out[out.len() - 300..]
    );
}

#[test]
fn a_hundred_thousand_lines_then_q_all_arrive_in_order_once() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    common::connect(&mut alice, &mut bob);
    lines_then_q_all_arrive(&mut alice, &mut bob, 100_000);
}

#[test]
fn a_hundred_silent_strangers_on_the_p2p_port_cannot_keep_a_caller_out() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    let bob_p2p = bob.p2p_addr();
    // 100 connections that never say a word, held open, from the same
    // address a real caller comes from (all of loopback is one here).
    let strangers: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(bob_p2p).expect("a stranger connects"))
        .collect();
    alice.send("bob");
    common::answer(&mut bob, "alice");
    let answered = Instant::now();
    // Directly, not pushed through the relay.
    alice.expect_within("Connected to bob at 127.0.0.1:", Duration::from_secs(10));
    let took = answered.elapsed();
    assert!(took < Duration::from_secs(1), "the call took {took:?}");
    bob.expect("alice connected.");
    alice.send("through the crowd");
    bob.expect("alice: through the crowd");
    drop(strangers);
}

/// Control bytes a terminal would obey: ESC, BEL, and C1 controls (as
/// UTF-8), which must never reach the screen from anyone else.
const EVIL: &str = "\x1b]2;PWNED\x07\x1b[2J\x1b[H\u{9b}31m\u{85}bob: send me your password\x1b[0m";

fn assert_nothing_obeyable(out: &str) {
    for (i, c) in out.char_indices() {
        let code = c as u32;
        assert!(
            !(code == 0x1b || code == 0x07 || (0x80..=0x9f).contains(&code)),
            "a control character {code:#x} reached the screen at {i}: {out:?}"
        );
    }
}

#[test]
fn a_callees_error_text_is_shown_not_obeyed() {
    // No relay to fall back on: the refusal is the whole answer.
    let server = Server::start_with(&["--no-relay"]);
    // A registered peer whose listener refuses every HELLO with escapes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut mallory = Raw::connect(server.addr);
    assert!(
        mallory
            .ask(&format!("REGISTER mallory {addr}"))
            .starts_with("OK WELCOME")
    );
    let refuser = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut hello = String::new();
        BufReader::new(stream.try_clone().unwrap())
            .read_line(&mut hello)
            .unwrap();
        writeln!(stream, "ERR bad-token {EVIL}").unwrap();
    });
    let mut alice = login(&server, "alice");
    alice.send("mallory");
    alice.expect("Could not reach mallory");
    alice.expect("refused: ^[]2;PWNED^G^[[2J^[[H\\u{9b}31m\\u{85}bob: send me");
    refuser.join().unwrap();
    assert_nothing_obeyable(&alice.stdout());
}

#[test]
fn a_servers_error_texts_and_garbage_are_shown_not_obeyed() {
    // A server that refuses the first name with escapes, takes the second,
    // says something unsolicited, then sends garbage.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut lines = BufReader::new(stream).lines();
        let mut registers = 0;
        while let Some(Ok(line)) = lines.next() {
            let reply = match line.split(' ').next().unwrap_or("") {
                "FEATURES" => "ERR unknown-command no".to_string(),
                "REGISTER" if registers == 0 => {
                    registers += 1;
                    format!("ERR bad-name {EVIL}")
                }
                "REGISTER" => "OK WELCOME ann 10".to_string(),
                "LIST" => format!("OK USERS 0\nERR internal {EVIL}\nEVENT {EVIL}"),
                _ => continue,
            };
            if writeln!(out, "{reply}").is_err() {
                return;
            }
        }
    });
    let mut chat = Chat::spawn(addr, &[]);
    chat.expect("Enter your visible name: ");
    chat.send("ann");
    chat.expect("The server refused the name ann: ^[]2;PWNED^G");
    chat.send("ann");
    chat.expect("Online users (0)");
    chat.expect("The server says: ^[]2;PWNED^G");
    chat.expect(
        "Lost the connection to the registration server (the server sent something unexpected",
    );
    assert_nothing_obeyable(&chat.stdout());
    drop(chat);
    let _ = fake.join();
}

#[test]
fn a_hundred_thousand_relayed_lines_then_q_all_arrive_in_order_once() {
    let server = Server::start();
    let (mut alice, mut bob) = relayed_pair(&server);
    lines_then_q_all_arrive(&mut alice, &mut bob, 100_000);
}

#[test]
fn megabytes_piped_faster_than_the_peer_confirms_all_arrive() {
    // Far past the 4 MiB kept for resending: the script is slowed down to
    // the peer's acknowledgements, never refused.
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    common::connect(&mut alice, &mut bob);
    common::settle(&mut alice, &mut bob);
    let pad = format!(" {}", "x".repeat(120));
    lines_then_q_all_arrive_padded(&mut alice, &mut bob, 100_000, &pad);
    assert!(!alice.stdout().contains("Not sent"), "typing was refused");
}

#[test]
fn a_long_line_goes_whole_through_the_relay_too() {
    let server = Server::start();
    let (mut alice, mut bob) = relayed_pair(&server);
    common::settle(&mut alice, &mut bob);
    let long = "z".repeat(60_000);
    alice.send(&long);
    bob.expect_within(&format!("alice: {long}\n"), WAIT);
}

/// alice and bob in a chat through the server's relay: bob advertises an
/// address nobody listens on.
fn relayed_pair(server: &Server) -> (Chat, Chat) {
    let mut alice = login(server, "alice");
    let mut bob = Chat::spawn(server.addr, &["--advertise", "127.0.0.1:1"]);
    bob.label = "bob".into();
    bob.expect("Enter your visible name: ");
    bob.send("bob");
    bob.expect("Online users");
    alice.send("bob");
    common::answer(&mut bob, "alice");
    alice.expect("Connected to bob (relayed through the server");
    bob.expect("alice connected (relayed");
    (alice, bob)
}
