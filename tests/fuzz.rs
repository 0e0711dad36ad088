//! Random inputs, std only: a seeded generator (splitmix64, written here)
//! feeds every protocol parser a million random and mutated lines each,
//! and 20 raw clients throw 10,000 random request sequences at a live
//! in-process server, whose table must then agree with itself.
//!
//! The seed is printed when a test fails; set `P2PCHAT_FUZZ_SEED` to run
//! the same inputs again. The counts are the same in debug and release: a
//! parse takes microseconds, so a million of them take seconds.

mod common;
#[path = "common/rng.rs"]
mod rng;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::Raw;
use p2pchat::connection::Outbox;
use p2pchat::protocol::{PeerMessage, Request, ServerLine, name_key, validate_name};
use p2pchat::registry::{CallLimits, Registry};
use p2pchat::server::{self, Config};
use rng::Rng;

/// The seed: `P2PCHAT_FUZZ_SEED`, else one from the clock.
fn seed() -> u64 {
    std::env::var("P2PCHAT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// Runs `body` with a fresh generator; a failure names the seed.
fn with_seed(what: &str, body: impl FnOnce(&mut Rng)) {
    let seed = seed();
    let mut rng = Rng(seed);
    if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| body(&mut rng))) {
        eprintln!("{what} failed with P2PCHAT_FUZZ_SEED={seed}");
        panic::resume_unwind(panic);
    }
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// Valid lines of every grammar, to mutate.
const VALID: &[&str] = &[
    "REGISTER alice 127.0.0.1:7701",
    "REGISTER ünïcödé [::1]:9",
    "LIST",
    "LOOKUP bob",
    "CALL bob",
    "HANGUP 17",
    "PING",
    "FEATURES ring missed presence",
    "QUIT",
    "RELAY 3 0123456789abcdef0123456789abcdef",
    "RESUME bob",
    "LOCATE bob",
    "REJOIN bob",
    "ANSWER 4",
    "DECLINE 5",
    "WATCH on",
    "OK WELCOME alice 10",
    "OK USERS 2",
    "USER bob busy",
    "OK FOUND bob free",
    "OK CALL bob 7 0123456789abcdef0123456789abcdef 127.0.0.1:7701 10.0.0.2:7701",
    "OK HANGUP 7",
    "OK PONG",
    "OK BYE",
    "OK FEATURES relay ring",
    "OK RELAYED 7",
    "OK RESUMED bob 8",
    "OK REJOIN bob 4 0123456789abcdef0123456789abcdef",
    "EVENT REJOIN al 4 0123456789abcdef0123456789abcdef",
    "EVENT INCOMING alice 7 0123456789abcdef0123456789abcdef",
    "EVENT HANGUP 7 bob",
    "EVENT RELAY 7",
    "OK RINGING bob 9",
    "OK ANSWER alice 9 0123456789abcdef0123456789abcdef",
    "EVENT RING alice 9",
    "EVENT PRESENCE joined:bob busy:carol left:dave",
    "EVENT NOANSWER 9 bob",
    "EVENT MISSED carol",
    "ERR busy bob is busy in another chat",
    "ERR too-soon wait 3 s",
    "OK LOCATED bob 127.0.0.1:7701 [::1]:7701",
    "OK DECLINE 9",
    "OK WATCH off",
    "EVENT ANSWERED bob 9 0123456789abcdef0123456789abcdef 127.0.0.1:7701",
    "EVENT DECLINED 9 bob",
    "RESUMABLE 0123456789abcdef0123456789abcdef",
    "ACK 41",
    "REHELLO alice 0123456789abcdef0123456789abcdef 40",
    "REWELCOME bob 12",
    "FEATURES resume ping-id long-lines",
    "HELLO alice 7 0123456789abcdef0123456789abcdef",
    "WELCOME bob",
    "MSG hello there",
    "PING 12",
    "PONG 12",
    "BYE",
];

/// Odd pieces to splice in: huge numbers, controls, marks, bidi, emoji,
/// surrogates' neighbours, and separators.
const ODD: &[&str] = &[
    "18446744073709551616",
    "99999999999999999999999999999999",
    "-1",
    "+5",
    "0x10",
    "\u{0}",
    "\r",
    "\t",
    "\u{1b}[2J",
    "\u{202e}",
    "\u{200d}",
    "\u{fe0f}",
    "e\u{301}\u{301}\u{301}",
    "👨‍👩‍👧‍👦",
    "\u{10ffff}",
    "\u{fffd}",
    "ﬃ",
    "ß",
    "İ",
    "ｑ",
    "\u{2028}",
    " ",
    "  ",
    ":",
    "[",
    "]:",
    "255.255.255.255:65536",
    "[::ffff:1.2.3.4]:1",
    TOKEN,
];

/// One random or mutated line.
fn line(rng: &mut Rng) -> String {
    match rng.below(10) {
        // Random bytes, made into text the way a reader would refuse or
        // pass them (the parsers take `&str`).
        0 => {
            let len = rng.below(64);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        // Random words from the vocabulary and the odd pieces.
        1 => {
            let words = 1 + rng.below(6);
            (0..words)
                .map(|_| {
                    if rng.below(2) == 0 {
                        rng.pick(VALID).split(' ').next().unwrap_or("").to_string()
                    } else {
                        rng.pick(ODD).to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        }
        _ => {
            let valid = rng.pick(VALID).to_string();
            mutate(rng, valid)
        }
    }
}

/// A valid line with one to four mutations.
fn mutate(rng: &mut Rng, line: String) -> String {
    let mut bytes = line.into_bytes();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(7) {
            0 if !bytes.is_empty() => {
                let i = at.min(bytes.len() - 1);
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => bytes.insert(at, rng.next() as u8),
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            3 => {
                let odd = rng.pick(ODD).as_bytes();
                bytes.splice(at..at, odd.iter().copied());
            }
            4 => {
                // Splice in a word of another line.
                let other = rng.pick(VALID);
                let words: Vec<&str> = other.split(' ').collect();
                let word = rng.pick(&words).as_bytes();
                bytes.splice(at..at, word.iter().copied());
            }
            5 => bytes.truncate(at),
            _ => {
                // Repeat a stretch, up to past the line limit now and then.
                let times = if rng.below(100) == 0 { 2000 } else { 2 };
                let end = (at + 1 + rng.below(8)).min(bytes.len());
                let piece = bytes[at.min(end)..end].to_vec();
                for _ in 0..times {
                    bytes.splice(at..at, piece.iter().copied());
                }
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

const PARSES: usize = 1_000_000;

fn fuzz(what: &str, parse: impl Fn(&str)) {
    with_seed(what, |rng| {
        for _ in 0..PARSES {
            let input = line(rng);
            if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| parse(&input))) {
                eprintln!("{what} panicked on {input:?}");
                panic::resume_unwind(panic);
            }
        }
    });
}

#[test]
fn request_parse_never_panics_and_prints_back_what_it_read() {
    fuzz("Request::parse", |l| {
        if let Ok(request) = Request::parse(l) {
            // What parses prints back as something that parses the same.
            assert_eq!(Request::parse(&request.to_string()), Ok(request));
        }
    });
}

#[test]
fn server_line_parse_never_panics_and_prints_back_what_it_read() {
    fuzz("ServerLine::parse", |l| {
        if let Ok(reply) = ServerLine::parse(l) {
            // What parses prints back as something that parses the same.
            assert_eq!(ServerLine::parse(&reply.to_string()), Ok(reply), "{l:?}");
        }
    });
}

#[test]
fn peer_message_parse_never_panics_and_prints_back_what_it_read() {
    fuzz("PeerMessage::parse", |l| {
        if let Ok(message) = PeerMessage::parse(l) {
            // What parses prints back as something that parses the same.
            assert_eq!(
                PeerMessage::parse(&message.to_string()),
                Ok(message),
                "{l:?}"
            );
        }
    });
}

#[test]
fn name_rules_never_panic_on_a_million_inputs() {
    fuzz("validate_name / name_key", |l| {
        let word = l.split(' ').nth(1).unwrap_or(l);
        if validate_name(word).is_ok() {
            // A valid name's key is stable: the key of the key is itself.
            let key = name_key(word);
            assert_eq!(name_key(&key), key, "{word:?}");
        } else {
            let _ = name_key(word);
        }
    });
}

/// Twenty raw clients, 500 random request sequences each, against a live
/// server; then the table agrees with itself, and a list names each online
/// peer once.
#[test]
fn random_request_sequences_leave_the_server_consistent() {
    with_seed("live server", |rng| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config {
            ring_timeout: Duration::from_secs(1),
            register_timeout: Duration::from_secs(5),
            recall_wait: Duration::from_secs(1),
            max_calls_per_minute: 1_000_000,
            relay_rate: 0,
            ..Config::default()
        };
        let registry: Arc<Registry<Outbox>> = Arc::new(Registry::with_limits(CallLimits {
            recall_wait: config.recall_wait,
            calls_per_minute: config.max_calls_per_minute,
        }));
        let table = registry.clone();
        thread::spawn(move || server::serve_with(listener, config, registry));
        let seeds: Vec<u64> = (0..20).map(|_| rng.next()).collect();
        let clients: Vec<_> = seeds
            .into_iter()
            .enumerate()
            .map(|(i, seed)| thread::spawn(move || client(addr, i, Rng(seed))))
            .collect();
        for client in clients {
            client.join().expect("a client thread");
        }
        table
            .check_invariants()
            .expect("the table agrees with itself");
        let mut observer = Raw::connect(addr);
        assert!(
            observer
                .ask("REGISTER observer 127.0.0.1:9")
                .starts_with("OK WELCOME")
        );
        let header = observer.ask("LIST");
        let count: usize = header.strip_prefix("OK USERS ").unwrap().parse().unwrap();
        let mut names: Vec<String> = (0..count)
            .map(|_| observer.line().split(' ').nth(1).unwrap().to_string())
            .collect();
        let listed = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), listed, "a name listed twice");
        table.check_invariants().expect("still, after the list");
    });
}

/// One client's 500 sequences: each a few requests, pipelined, from the
/// protocol's vocabulary with names and call ids the clients share, and
/// now and then garbage; replies are read as they come.
fn client(addr: SocketAddr, index: usize, mut rng: Rng) {
    let names = ["n0", "n1", "n2", "n3", "n4", "N1", "ｎ2"];
    let mut raw = Raw::connect(addr);
    for _ in 0..500 {
        let mut sent = 0;
        for _ in 0..1 + rng.below(4) {
            let name = rng.pick(&names);
            let call = rng.below(40);
            let request = match rng.below(18) {
                0 | 1 => format!("REGISTER {name} 127.0.0.1:{}", 9 + index),
                2 => "LIST".into(),
                3 => format!("LOOKUP {name}"),
                4 | 5 => format!("CALL {name}"),
                6 => format!("HANGUP {call}"),
                7 => format!("ANSWER {call}"),
                8 => format!("DECLINE {call}"),
                9 => "FEATURES ring missed".into(),
                10 => format!("RESUME {name}"),
                11 => format!("WATCH {}", if rng.below(2) == 0 { "on" } else { "off" }),
                12 => "PING".into(),
                13 => format!("RELAY {call} {TOKEN}"),
                14 => "QUIT".into(),
                15 => format!("REJOIN {name}"),
                16 => format!("LOCATE {name}"),
                _ => line(&mut rng),
            };
            if request.contains('\n') || request.len() > 4000 {
                continue;
            }
            let mut stream = raw.stream();
            if stream.write_all(format!("{request}\n").as_bytes()).is_err() {
                break;
            }
            sent += 1;
            if request.starts_with("QUIT") || request.starts_with("RELAY") {
                break;
            }
        }
        // Read whatever came back, briefly; a closed connection is
        // replaced by a new one.
        let closed = drain(&mut raw, sent);
        if closed {
            raw = Raw::connect(addr);
        }
    }
}

/// Reads replies for up to a moment; whether the server closed the
/// connection.
fn drain(raw: &mut Raw, expected: usize) -> bool {
    use std::io::{BufRead, BufReader};
    let stream = raw.stream();
    stream
        .set_read_timeout(Some(Duration::from_millis(if expected > 0 {
            50
        } else {
            1
        })))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut replies = 0;
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return true,
            Ok(_) => {
                if !line.starts_with("EVENT") && !line.starts_with("USER") {
                    replies += 1;
                }
                if replies >= expected && reader.buffer().is_empty() {
                    return false;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}
