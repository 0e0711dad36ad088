//! The server's half of file transfer (#23), driven by raw clients over
//! loopback: `TRANSFER` issues each party of a chat one-time values for a
//! transfer's data connection, and `FILE-RELAY` carries a relayed chat's
//! file as raw bytes, both ways, at `--relay-file-rate`.
//!
//! Every read has a deadline ([`common::WAIT`]); the servers are the real
//! binary, killed on drop.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{Raw, Server, WAIT};

/// A raw client that announced `features` and registered as `name`.
fn announced(server: &Server, name: &str, features: &str) -> Raw {
    let mut raw = Raw::connect(server.addr);
    let reply = raw.ask(&format!("FEATURES {features}"));
    assert!(reply.starts_with("OK FEATURES "), "{reply}");
    let reply = raw.ask(&format!("REGISTER {name} 127.0.0.1:9"));
    assert!(reply.starts_with(&format!("OK WELCOME {name} ")), "{reply}");
    raw
}

/// The three values of `show.expect.relay`.
fn own_keys(keys: &str) -> [String; 3] {
    let parts: Vec<String> = keys.split('.').map(String::from).collect();
    assert_eq!(parts.len(), 3, "not values of one's own: {keys}");
    [parts[0].clone(), parts[1].clone(), parts[2].clone()]
}

/// A chat between `ann` and `ben` (both with `proof transfer`), set up at
/// once: the call id and each party's relay value for the chat.
struct Call {
    ann: Raw,
    ben: Raw,
    call: String,
    relay: [String; 2],
}

fn call(server: &Server, ben_features: &str) -> Call {
    let mut ann = announced(server, "ann", "proof transfer");
    let mut ben = announced(server, "ben", ben_features);
    let reply = ann.ask("CALL ben");
    let words: Vec<&str> = reply.split(' ').collect();
    assert_eq!(&words[..3], ["OK", "CALL", "ben"], "{reply}");
    let call = words[3].to_string();
    let ann_relay = own_keys(words[4])[2].clone();
    let event = ben.line();
    let words: Vec<&str> = event.split(' ').collect();
    assert_eq!(&words[..4], ["EVENT", "INCOMING", "ann", &call], "{event}");
    let ben_relay = own_keys(words[4])[2].clone();
    Call {
        ann,
        ben,
        call,
        relay: [ann_relay, ben_relay],
    }
}

/// The same chat, relayed: both halves of its chat relay are in.
struct Relayed {
    chat: Call,
    halves: [Raw; 2],
}

fn relayed(server: &Server) -> Relayed {
    let mut chat = call(server, "proof transfer");
    let call = chat.call.clone();
    let mut ann_half = Raw::connect(server.addr);
    ann_half.send(&format!("RELAY {call} {}", chat.relay[0]));
    assert_eq!(chat.ben.line(), format!("EVENT RELAY {call}"));
    let mut ben_half = Raw::connect(server.addr);
    assert_eq!(
        ben_half.ask(&format!("RELAY {call} {}", chat.relay[1])),
        format!("OK RELAYED {call}")
    );
    assert_eq!(ann_half.line(), format!("OK RELAYED {call}"));
    Relayed {
        chat,
        halves: [ann_half, ben_half],
    }
}

/// Whether `raw` has a line to read within `wait`; reads it if so.
fn line_within(raw: &mut Raw, wait: Duration) -> Option<String> {
    raw.stream().set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 1];
    let peeked = raw.stream().peek(&mut byte);
    raw.stream().set_read_timeout(Some(WAIT)).unwrap();
    match peeked {
        Ok(0) => panic!("the server closed the connection"),
        Ok(_) => Some(raw.line()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(e) => panic!("the connection failed: {e}"),
    }
}

/// `ann` asks for transfer `id`'s values: ben's event must be there by
/// the time ann has its reply. Returns (ann's, ben's) `show.expect.relay`.
fn transfer(chat: &mut Call, id: u64) -> ([String; 3], [String; 3]) {
    let call = chat.call.clone();
    let reply = chat.ann.ask(&format!("TRANSFER ben {id}"));
    let words: Vec<&str> = reply.split(' ').collect();
    assert_eq!(
        &words[..5],
        ["OK", "TRANSFER", "ben", &call, &id.to_string()],
        "{reply}"
    );
    let mine = own_keys(words[5]);
    let event = line_within(&mut chat.ben, Duration::from_millis(200))
        .expect("the peer is told before the asker's reply");
    let words: Vec<&str> = event.split(' ').collect();
    assert_eq!(
        &words[..5],
        ["EVENT", "TRANSFER", "ann", &call, &id.to_string()],
        "{event}"
    );
    (mine, own_keys(words[5]))
}

/// Opens a file relay half: `FILE-RELAY` and, in the same write, `early`
/// bytes of the file (which the server must forward, not lose).
fn file_half(server: &Server, call: &str, id: u64, value: &str, early: &[u8]) -> TcpStream {
    let stream = TcpStream::connect(server.addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut first = format!("FILE-RELAY {call} {id} {value}\n").into_bytes();
    first.extend_from_slice(early);
    (&stream).write_all(&first).expect("send");
    stream
}

/// One line from `stream`, read a byte at a time so nothing after it is
/// taken.
fn reply(stream: &TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match (&*stream).read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) => panic!("no reply line: {e} (so far {line:?})"),
        }
        assert!(line.len() < 4096, "no newline: {line:?}");
    }
    String::from_utf8(line).expect("a UTF-8 reply")
}

/// Both halves of transfer `id`'s file relay, ann's first, each with its
/// `early` bytes in its first write; both told `OK RELAYED`, before any
/// byte of the other's.
fn file_relay(
    server: &Server,
    relayed: &mut Relayed,
    id: u64,
    early: [&[u8]; 2],
) -> (TcpStream, TcpStream) {
    let (ann_keys, ben_keys) = transfer(&mut relayed.chat, id);
    let call = relayed.chat.call.clone();
    let ann = file_half(server, &call, id, &ann_keys[2], early[0]);
    let ben = file_half(server, &call, id, &ben_keys[2], early[1]);
    assert_eq!(reply(&ben), format!("OK RELAYED {call}"));
    assert_eq!(reply(&ann), format!("OK RELAYED {call}"));
    (ann, ben)
}

/// `len` bytes that are not text: no newline at all, and invalid UTF-8.
fn not_text(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let b = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed;
            if b == b'\n' { 0xff } else { b }
        })
        .collect()
}

/// Everything `stream` reads until EOF, within [`WAIT`].
fn read_to_eof(stream: &TcpStream) -> Vec<u8> {
    let deadline = Instant::now() + WAIT;
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        assert!(
            Instant::now() < deadline,
            "no EOF after {} bytes",
            all.len()
        );
        match (&*stream).read(&mut buf) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("read failed after {} bytes: {e}", all.len()),
        }
    }
}

/// Whether the server closed `stream`: EOF or a reset, not a timeout.
fn closed(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match (&*stream).read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(e) => panic!("{e}"),
        }
    }
    false
}

#[test]
fn transfer_values_go_to_both_parties_all_four_differ_and_the_peer_hears_first() {
    let server = Server::start();
    let mut chat = call(&server, "proof transfer");
    let features = chat.ann.ask("FEATURES proof transfer");
    assert!(features.split(' ').any(|w| w == "transfer"), "{features}");
    assert!(
        features.split(' ').any(|w| w == "relay-files"),
        "{features}"
    );
    let (ann, ben) = transfer(&mut chat, 1);
    // What one shows, the other expects; the relay's are each one's own.
    assert_eq!((&ann[0], &ann[1]), (&ben[1], &ben[0]));
    let four = [&ann[0], &ben[0], &ann[2], &ben[2]];
    for (i, a) in four.iter().enumerate() {
        assert_eq!(a.len(), 32, "{a}");
        for b in &four[i + 1..] {
            assert_ne!(a, b, "two values alike");
        }
    }
    // None of them is the chat's own.
    assert!(!four.contains(&&chat.relay[0]) && !four.contains(&&chat.relay[1]));
    // Asked again (a transfer resumed after a cut): fresh values.
    let (again, _) = transfer(&mut chat, 1);
    assert_ne!(again, ann);
    // The peer may ask too, for a transfer of its own.
    let call_id = chat.call.clone();
    let reply = chat.ben.ask("TRANSFER ann 2");
    assert!(
        reply.starts_with(&format!("OK TRANSFER ann {call_id} 2 ")),
        "{reply}"
    );
    let event = chat.ann.line();
    assert!(
        event.starts_with(&format!("EVENT TRANSFER ben {call_id} 2 ")),
        "{event}"
    );
}

#[test]
fn a_transfer_outside_ones_call_or_to_a_chat_without_transfer_is_refused() {
    let server = Server::start();
    let mut chat = call(&server, "proof");
    let mut cat = announced(&server, "cat", "proof transfer");
    assert_eq!(
        cat.ask("TRANSFER ann 1"),
        "ERR not-in-call you are not in a call with ann"
    );
    assert_eq!(
        chat.ann.ask("TRANSFER cat 1"),
        "ERR not-in-call you are not in a call with cat"
    );
    assert_eq!(
        chat.ann.ask("TRANSFER ben 1"),
        "ERR unreachable ben's chat cannot receive files"
    );
    let bad = chat.ann.ask("TRANSFER ben x");
    assert!(bad.starts_with("ERR bad-request"), "{bad}");
    // Nothing reached ben; everyone is still served.
    assert_eq!(line_within(&mut chat.ben, Duration::from_millis(100)), None);
    assert_eq!(chat.ben.ask("PING"), "OK PONG");
    assert_eq!(cat.ask("PING"), "OK PONG");
}

#[test]
fn a_file_relay_carries_5_mb_of_any_bytes_byte_identical_both_ways_with_half_close() {
    let server = Server::start_with(&["--relay-file-rate", "0"]);
    let mut relayed = relayed(&server);
    let there = not_text(5_000_000, 0x5a);
    let back = not_text(5_000_000, 0xa5);
    // The first bytes come in the write that carries each FILE-RELAY.
    let (ann, ben) = file_relay(&server, &mut relayed, 1, [&there[..700], &back[..300]]);
    let (ann_out, rest) = (ann.try_clone().unwrap(), there[700..].to_vec());
    let sender = thread::spawn(move || {
        (&ann_out).write_all(&rest).expect("send the file");
        ann_out.shutdown(Shutdown::Write).unwrap();
    });
    // ann's direction ends: ben reads all of it, then EOF...
    assert!(read_to_eof(&ben) == there, "ann's file arrived changed");
    sender.join().unwrap();
    // ...and its own direction still goes, to its end.
    let ben_out = ben.try_clone().unwrap();
    let back_copy = back[300..].to_vec();
    let sender = thread::spawn(move || {
        (&ben_out).write_all(&back_copy).expect("send back");
        ben_out.shutdown(Shutdown::Write).unwrap();
    });
    assert!(read_to_eof(&ann) == back, "ben's file arrived changed");
    sender.join().unwrap();
    // The chat's relay is untouched.
    relayed.halves[0].send("MSG still here");
    assert_eq!(relayed.halves[1].line(), "MSG still here");
    server.expect_log("file 1 relayed");
}

#[test]
fn a_file_relay_value_opens_once_and_only_for_its_own_call_and_transfer() {
    let server = Server::start();
    let mut relayed = relayed(&server);
    let call = relayed.chat.call.clone();
    let (ann_keys, ben_keys) = transfer(&mut relayed.chat, 1);
    let _ = transfer(&mut relayed.chat, 2);
    let other_call: u64 = call.parse::<u64>().unwrap() + 1;
    for (call, id, value) in [
        (other_call.to_string(), 1, &ann_keys[2]),
        (call.clone(), 2, &ann_keys[2]),
        (call.clone(), 1, &ann_keys[0]),
        (call.clone(), 1, &relayed.chat.relay[0]),
    ] {
        let half = file_half(&server, &call, id, value, b"");
        let answer = reply(&half);
        assert!(answer.starts_with("ERR bad-token"), "{answer}");
        assert!(closed(&half));
    }
    // The right values still open it, each once.
    let ann = file_half(&server, &call, 1, &ann_keys[2], b"");
    let ben = file_half(&server, &call, 1, &ben_keys[2], b"");
    assert_eq!(reply(&ben), format!("OK RELAYED {call}"));
    assert_eq!(reply(&ann), format!("OK RELAYED {call}"));
    let again = file_half(&server, &call, 1, &ann_keys[2], b"");
    let answer = reply(&again);
    assert!(answer.starts_with("ERR bad-token"), "{answer}");
}

#[test]
fn a_direct_chats_file_relay_is_refused_with_the_reason() {
    let server = Server::start();
    let mut chat = call(&server, "proof transfer");
    let (ann_keys, _) = transfer(&mut chat, 1);
    let half = file_half(&server, &chat.call, 1, &ann_keys[2], b"");
    let answer = reply(&half);
    assert_eq!(
        answer,
        format!(
            "ERR bad-token chat {} is not relayed now; open the file's connection directly",
            chat.call
        )
    );
    assert!(closed(&half));
}

#[test]
fn no_relay_files_refuses_file_relays_and_does_not_announce_them() {
    for flag in ["--no-relay-files", "--no-relay"] {
        let server = Server::start_with(&[flag]);
        let mut raw = Raw::connect(server.addr);
        let features = raw.ask("FEATURES transfer");
        let words: Vec<&str> = features.split(' ').collect();
        assert!(words.contains(&"transfer"), "{flag}: {features}");
        assert!(!words.contains(&"relay-files"), "{flag}: {features}");
        let half = file_half(&server, "1", 1, &"ab".repeat(16), b"");
        assert_eq!(
            reply(&half),
            "ERR no-relay this server does not relay files (--no-relay-files)",
            "{flag}"
        );
        assert!(closed(&half));
    }
}

#[test]
fn a_file_relays_connections_close_when_the_call_is_hung_up_or_the_relay_rejoined() {
    let server = Server::start();
    let mut relayed = relayed(&server);
    let (ann, ben) = file_relay(&server, &mut relayed, 1, [b"", b""]);
    // The link breaks; ann brings the chat back through a fresh relay: the
    // old relay's connections go, the file's with them.
    let reply_line = relayed.chat.ann.ask("REJOIN ben");
    assert!(reply_line.starts_with("OK REJOIN ben"), "{reply_line}");
    assert!(closed(&ann) && closed(&ben), "rejoin closes the file relay");

    let mut relayed = self::relayed_again(&server, relayed);
    let (ann, ben) = file_relay(&server, &mut relayed, 2, [b"", b""]);
    let call = relayed.chat.call.clone();
    assert_eq!(
        relayed.chat.ann.ask(&format!("HANGUP {call}")),
        format!("OK HANGUP {call}")
    );
    assert!(
        closed(&ann) && closed(&ben),
        "the hang-up closes the file relay"
    );
}

/// The chat of `old` brought back through the relay (`REJOIN` already
/// asked by ann): both halves in again.
fn relayed_again(server: &Server, old: Relayed) -> Relayed {
    let Relayed { mut chat, .. } = old;
    let call = chat.call.clone();
    let reply = chat.ann.ask("REJOIN ben");
    let keys = own_keys(reply.split(' ').nth(4).expect("keys"));
    let mut ann_half = Raw::connect(server.addr);
    ann_half.send(&format!("RELAY {call} {}", keys[2]));
    let event = chat.ben.line();
    let words: Vec<&str> = event.split(' ').collect();
    assert_eq!(&words[..4], ["EVENT", "REJOIN", "ann", &call], "{event}");
    let ben_relay = own_keys(words[4])[2].clone();
    let mut ben_half = Raw::connect(server.addr);
    assert_eq!(
        ben_half.ask(&format!("RELAY {call} {ben_relay}")),
        format!("OK RELAYED {call}")
    );
    assert_eq!(ann_half.line(), format!("OK RELAYED {call}"));
    Relayed {
        chat,
        halves: [ann_half, ben_half],
    }
}

#[test]
fn a_chat_line_crosses_the_chat_relay_promptly_while_its_file_runs_at_the_cap() {
    const RATE: usize = 400_000;
    let rate = RATE.to_string();
    let server = Server::start_with(&["--relay-file-rate", &rate]);
    let mut relayed = relayed(&server);
    let (ann, ben) = file_relay(&server, &mut relayed, 1, [b"", b""]);
    // ann sends as fast as it may, at most 4 s worth, until told to stop.
    let ann_out = ann.try_clone().unwrap();
    let sender = thread::spawn(move || {
        let chunk = not_text(64 * 1024, 1);
        let mut sent = 0;
        while sent < 4 * RATE {
            if (&ann_out).write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
    });
    // Past the bucket's one-second burst, the file runs at its cap.
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while got < RATE + 64 * 1024 {
        let n = (&ben).read(&mut buf).expect("file bytes");
        assert!(n > 0, "the file relay ended early");
        got += n;
    }
    let asked = Instant::now();
    relayed.halves[0].send("MSG while a file moves");
    assert_eq!(relayed.halves[1].line(), "MSG while a file moves");
    let took = asked.elapsed();
    assert!(took < Duration::from_millis(500), "{took:?}");
    // ann stops; the relay closes when the call ends.
    let call = relayed.chat.call.clone();
    assert_eq!(
        relayed.chat.ann.ask(&format!("HANGUP {call}")),
        format!("OK HANGUP {call}")
    );
    let _ = ann.shutdown(Shutdown::Both);
    sender.join().unwrap();
}

#[test]
fn a_chats_relayed_files_share_the_file_rate_however_many_it_opens() {
    const RATE: usize = 200_000;
    const FILES: u64 = 4;
    let rate = RATE.to_string();
    let server = Server::start_with(&["--relay-file-rate", &rate]);
    let mut relayed = relayed(&server);
    // ann sends on four file relays at once, as fast as each may.
    let pairs: Vec<(TcpStream, TcpStream)> = (1..=FILES)
        .map(|id| file_relay(&server, &mut relayed, id, [b"", b""]))
        .collect();
    let started = Instant::now();
    let senders: Vec<_> = pairs
        .iter()
        .map(|(ann, _)| {
            let ann = ann.try_clone().unwrap();
            thread::spawn(move || {
                let chunk = not_text(64 * 1024, 2);
                for _ in 0..(8 * RATE / chunk.len()) {
                    if (&ann).write_all(&chunk).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    // ben reads all four for 1.5 s.
    let window = Duration::from_millis(1500);
    let readers: Vec<_> = pairs
        .iter()
        .map(|(_, ben)| {
            let ben = ben.try_clone().unwrap();
            thread::spawn(move || {
                let mut got = 0;
                let mut buf = vec![0u8; 64 * 1024];
                while started.elapsed() < window {
                    let left = window.saturating_sub(started.elapsed());
                    ben.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                        .unwrap();
                    match (&ben).read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => got += n,
                        Err(_) => break,
                    }
                }
                got
            })
        })
        .collect();
    let got: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    // A second's burst and 1.5 s at the rate, and a chunk each in flight.
    let most = RATE + RATE * 3 / 2 + FILES as usize * 64 * 1024;
    println!(
        "{FILES} file relays of one chat carried {got} bytes in {window:?} at --relay-file-rate {RATE}"
    );
    assert!(got <= most, "{got} bytes, over {most}");
    let call = relayed.chat.call.clone();
    assert_eq!(
        relayed.chat.ann.ask(&format!("HANGUP {call}")),
        format!("OK HANGUP {call}")
    );
    for (ann, ben) in &pairs {
        let _ = ann.shutdown(Shutdown::Both);
        let _ = ben.shutdown(Shutdown::Both);
    }
    for sender in senders {
        sender.join().unwrap();
    }
}
