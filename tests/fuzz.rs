//! Random inputs, std only: a seeded generator (splitmix64, written here)
//! feeds every protocol parser a million random and mutated lines each,
//! and 20 raw clients throw 10,000 random request sequences at a live
//! in-process server, using the call ids and tokens it hands out, whose
//! table must agree with itself all the while.
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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// What the clients got done, counted from the server's replies: a fuzz
/// whose requests never get anywhere tests nothing.
#[derive(Default)]
struct Reached {
    /// `OK CALL` and `OK RINGING`: calls set up.
    calls: AtomicUsize,
    /// `OK ANSWER`: rung calls answered.
    answers: AtomicUsize,
    /// `OK RELAYED`: relay halves joined.
    relays: AtomicUsize,
}

/// Twenty raw clients, 500 random request sequences each, against a live
/// server, using the call ids and tokens its replies hand out; meanwhile
/// the table is checked over and over while it is full, and at the end a
/// list names each online peer once.
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
            max_stranger_rings: 1_000_000,
            // Every client registers from 127.0.0.1.
            max_registrations_per_ip: 1_000_000,
            relay_rate: 0,
            // The clients' relay connections are unregistered ones, all
            // from 127.0.0.1.
            max_unregistered_per_ip: 1000,
            ..Config::default()
        };
        let registry: Arc<Registry<Outbox>> = Arc::new(Registry::with_limits(CallLimits {
            recall_wait: config.recall_wait,
            calls_per_minute: config.max_calls_per_minute,
            hold: config.hold,
            stranger_rings: config.max_stranger_rings,
            registrations_per_ip: config.max_registrations_per_ip,
        }));
        let table = registry.clone();
        common::log_in_memory();
        thread::spawn(move || server::serve_with(listener, config, registry));
        let reached = Arc::new(Reached::default());
        let running = Arc::new(AtomicBool::new(true));
        // The table must agree with itself at any moment, not only once
        // everyone has left: checked while peers are online and in calls.
        let checker = {
            let (table, running) = (table.clone(), running.clone());
            thread::spawn(move || -> Result<usize, String> {
                let mut busy_checks = 0;
                while running.load(Ordering::Relaxed) {
                    let (peers, calls) = (table.len(), table.calls_open());
                    table.check_invariants()?;
                    if peers > 0 && calls > 0 {
                        busy_checks += 1;
                    }
                    thread::sleep(Duration::from_millis(2));
                }
                Ok(busy_checks)
            })
        };
        let seeds: Vec<u64> = (0..20).map(|_| rng.next()).collect();
        let clients: Vec<_> = seeds
            .into_iter()
            .enumerate()
            .map(|(i, seed)| {
                let reached = reached.clone();
                thread::spawn(move || client(addr, i, Rng(seed), &reached))
            })
            .collect();
        for client in clients {
            client.join().expect("a client thread");
        }
        running.store(false, Ordering::Relaxed);
        let busy_checks = checker
            .join()
            .unwrap()
            .unwrap_or_else(|broken| panic!("the table broke while in use: {broken}"));
        let (calls, answers, relays) = (
            reached.calls.load(Ordering::Relaxed),
            reached.answers.load(Ordering::Relaxed),
            reached.relays.load(Ordering::Relaxed),
        );
        eprintln!(
            "{calls} calls, {answers} answers, {relays} relay halves joined; \
             the table checked {busy_checks} times with peers in calls"
        );
        // About a third of what a run gets (270 to 320 calls, 60 to 110
        // answers, 16 to 44 halves, 400 to 600 checks).
        assert!(
            busy_checks >= 50,
            "checked with calls open only {busy_checks} times"
        );
        assert!(calls >= 100, "only {calls} calls set up");
        assert!(answers >= 20, "only {answers} calls answered");
        assert!(relays >= 6, "only {relays} relay halves joined");
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

/// What one client learnt from the server's lines: the calls it is a
/// party of, with their tokens once it has them.
#[derive(Default)]
struct Known {
    calls: Vec<(String, Option<String>)>,
}

impl Known {
    /// Takes the call ids and tokens out of one line from the server.
    fn learn(&mut self, line: &str) {
        let words: Vec<&str> = line.split(' ').collect();
        let (call, token) = match words[..] {
            ["OK", "CALL", _, call, token, ..]
            | ["OK", "ANSWER", _, call, token]
            | ["OK", "REJOIN", _, call, token]
            | ["EVENT", "INCOMING", _, call, token]
            | ["EVENT", "ANSWERED", _, call, token, ..]
            | ["EVENT", "REJOIN", _, call, token] => (call, Some(token)),
            ["OK", "RINGING", _, call]
            | ["EVENT", "RING", _, call]
            | ["OK", "RESUMED", _, call] => (call, None),
            _ => return,
        };
        match self.calls.iter_mut().find(|(c, _)| c == call) {
            Some((_, known)) => *known = token.map(str::to_string).or(known.take()),
            None => self
                .calls
                .push((call.to_string(), token.map(str::to_string))),
        }
        // The latest few are the ones still worth using.
        if self.calls.len() > 8 {
            self.calls.remove(0);
        }
    }

    /// A call id to use: mostly the latest the server gave (the call this
    /// client is likely in), else an older one, now and then any.
    fn call(&self, rng: &mut Rng) -> String {
        match (self.calls.last(), rng.below(10)) {
            (Some((latest, _)), 0..=4) => latest.clone(),
            (Some(_), 5..=7) => rng.pick(&self.calls).0.clone(),
            _ => rng.below(40).to_string(),
        }
    }

    /// A call and its token, or (now and then) a stale or made-up pair.
    fn ticket(&self, rng: &mut Rng) -> (String, String) {
        let with_token: Vec<_> = self
            .calls
            .iter()
            .filter_map(|(c, t)| Some((c.clone(), t.clone()?)))
            .collect();
        if with_token.is_empty() || rng.below(8) == 0 {
            (rng.below(40).to_string(), TOKEN.to_string())
        } else {
            rng.pick(&with_token).clone()
        }
    }

    fn token_of(&self, call: &str) -> Option<String> {
        self.calls.iter().find(|(c, _)| c == call)?.1.clone()
    }
}

/// One client's 500 sequences: each a few requests, pipelined, from the
/// protocol's vocabulary with names the clients share and the call ids and
/// tokens the server gave, and now and then garbage; replies are read as
/// they come. Relay connections it opens, or is asked to open, stay open
/// for a few sequences.
fn client(addr: SocketAddr, index: usize, mut rng: Rng, reached: &Reached) {
    // Fewer names than clients, and some that are others' in another
    // case or width: most can register, and some are refused.
    let names = [
        "n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10", "n11", "n12", "n13",
        "n14", "N1", "ｎ2",
    ];
    let mut raw = connect_as_a_chat(addr, &mut rng);
    let mut known = Known::default();
    let mut registered = false;
    let mut relays: Vec<Raw> = Vec::new();
    for _ in 0..500 {
        let mut sent = 0;
        let mut relayed_or_quit = false;
        for _ in 0..1 + rng.below(4) {
            let name = rng.pick(&names);
            let call = known.call(&mut rng);
            // Mostly a client that is not registered tries to be.
            let pick = if registered || rng.below(4) == 0 {
                rng.below(20)
            } else {
                0
            };
            let request = match pick {
                0 | 1 => format!("REGISTER {name} 127.0.0.1:{}", 9 + index),
                2 => "LIST".into(),
                3 => format!("LOOKUP {name}"),
                4 | 5 => format!("CALL {name}"),
                6 | 7 => format!("HANGUP {call}"),
                8 => format!("ANSWER {call}"),
                9 => format!("DECLINE {call}"),
                10 => "FEATURES ring missed".into(),
                11 => format!("RESUME {name}"),
                12 => format!("WATCH {}", if rng.below(2) == 0 { "on" } else { "off" }),
                13 => "PING".into(),
                14 | 15 => {
                    // A relay is a connection of its own.
                    let (call, token) = known.ticket(&mut rng);
                    relays.push(open_relay(addr, &call, &token));
                    continue;
                }
                16 if rng.below(2) == 0 => "QUIT".into(),
                16 => "PING".into(),
                17 => format!("REJOIN {name}"),
                18 => format!("LOCATE {name}"),
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
            // A (garbled) RELAY may make this a relay connection: it is
            // given up after, as one that QUIT.
            let verb = request.split(' ').next().unwrap_or("").to_ascii_uppercase();
            if verb == "QUIT" || verb == "RELAY" {
                relayed_or_quit = true;
                break;
            }
        }
        // Read whatever came back, briefly; a closed connection is
        // replaced by a new one.
        let (mut lines, mut closed) = drain(&mut raw, sent);
        for line in &lines {
            if line.starts_with("OK WELCOME ") {
                registered = true;
            } else if line == "OK BYE" || line.starts_with("ERR not-registered") {
                registered = false;
            }
        }
        // As a chat would, most of the time: a ring is answered (or
        // declined) at once, a call set up is relayed, and a relay the
        // peer opened is joined, each with the id and token given.
        while !lines.is_empty() {
            let mut answers = 0;
            for line in std::mem::take(&mut lines) {
                known.learn(&line);
                let words: Vec<&str> = line.split(' ').collect();
                match words[..] {
                    ["OK", "CALL", ..] | ["OK", "RINGING", ..] => {
                        reached.calls.fetch_add(1, Ordering::Relaxed);
                    }
                    ["OK", "ANSWER", ..] => {
                        reached.answers.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                match words[..] {
                    ["EVENT", "RING", _, call] if rng.below(4) != 0 => {
                        let verb = if rng.below(4) == 0 {
                            "DECLINE"
                        } else {
                            "ANSWER"
                        };
                        let mut stream = raw.stream();
                        if stream
                            .write_all(format!("{verb} {call}\n").as_bytes())
                            .is_ok()
                        {
                            answers += 1;
                        }
                    }
                    ["OK", "CALL", _, call, token, ..]
                    | ["EVENT", "ANSWERED", _, call, token, ..]
                        if rng.below(2) == 0 =>
                    {
                        relays.push(open_relay(addr, call, token));
                    }
                    ["EVENT", "RELAY", call] => {
                        if let Some(token) = known.token_of(call) {
                            relays.push(open_relay(addr, call, &token));
                        }
                    }
                    _ => {}
                }
            }
            if answers > 0 && !closed {
                (lines, closed) = drain(&mut raw, answers);
            }
        }
        for relay in &mut relays {
            let (lines, _) = drain(relay, 0);
            let joined = lines
                .iter()
                .filter(|l| l.starts_with("OK RELAYED "))
                .count();
            reached.relays.fetch_add(joined, Ordering::Relaxed);
        }
        while relays.len() > 4 {
            relays.remove(0);
        }
        if closed || relayed_or_quit {
            raw = connect_as_a_chat(addr, &mut rng);
            registered = false;
        }
    }
}

/// A new connection to the server that, as a chat's does, mostly says
/// first that it rings (so that calls to and from it can be answered).
fn connect_as_a_chat(addr: SocketAddr, rng: &mut Rng) -> Raw {
    let mut raw = Raw::connect(addr);
    if rng.below(4) != 0 {
        assert!(raw.ask("FEATURES ring missed").starts_with("OK FEATURES"));
    }
    raw
}

/// A new connection whose one request is `RELAY call token`; its reply is
/// read later, with the others.
fn open_relay(addr: SocketAddr, call: &str, token: &str) -> Raw {
    let relay = Raw::connect(addr);
    // A refusal may close it before it is read: that is counted then.
    let _ = relay
        .stream()
        .write_all(format!("RELAY {call} {token}\n").as_bytes());
    relay
}

/// Reads the lines that come: until `expected` replies are in (for at
/// most 50 ms), or what is there already when none are due; returns them,
/// and whether the server closed the connection.
fn drain(raw: &mut Raw, expected: usize) -> (Vec<String>, bool) {
    use std::io::{BufRead, BufReader};
    let stream = raw.stream();
    stream.set_nonblocking(expected == 0).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut replies = 0;
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return (lines, true),
            Ok(_) => {
                if !line.starts_with("EVENT") && !line.starts_with("USER") {
                    replies += 1;
                }
                lines.push(line.trim_end().to_string());
                if replies >= expected && reader.buffer().is_empty() {
                    return (lines, false);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (lines, true),
            Err(_) => {
                reader.get_ref().set_nonblocking(false).unwrap();
                return (lines, false);
            }
        }
    }
}
