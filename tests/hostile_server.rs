//! Issue #13, the server's half: hostile clients and a busy server. Nothing
//! one client sends can silence the log, stall others, keep a peer busy, or
//! keep a relay running without its call.
//!
//! Tests that need a setting start the real binary with short values, or
//! run `p2pchat::server::serve` in-process with a `Config`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{ChildGuard, Raw, WAIT, serve};
use p2pchat::server::Config;

fn register(server: SocketAddr, name: &str) -> Raw {
    let mut raw = Raw::connect(server);
    let reply = raw.ask(&format!("REGISTER {name} 127.0.0.1:9"));
    assert!(reply.starts_with(&format!("OK WELCOME {name} ")), "{reply}");
    raw
}

/// How long a fresh client takes to register.
fn registration_time(server: SocketAddr, name: &str) -> Duration {
    let started = Instant::now();
    let mut raw = register(server, name);
    let took = started.elapsed();
    assert_eq!(raw.ask("QUIT"), "OK BYE");
    took
}

/// The server binary with `args`, its stderr a pipe that nobody reads.
fn server_with_unread_stderr(args: &[&str]) -> (ChildGuard, SocketAddr) {
    let mut child = ChildGuard::spawn(
        Command::new(env!("CARGO_BIN_EXE_server"))
            .args(["--listen", "127.0.0.1:0"])
            .args(["--max-registrations-per-ip", common::LIFTED_REGISTRATIONS])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .expect("start server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the server's first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, addr)
}

#[test]
fn a_log_nobody_reads_never_stalls_the_server() {
    let (_server, addr) = server_with_unread_stderr(&[]);
    // Enough events to fill the 64 KiB pipe many times over: each client
    // joins and leaves (two log lines each).
    for i in 0..1500 {
        let mut raw = register(addr, &format!("filler{i}"));
        raw.send("QUIT");
    }
    // And one connection sending 10,000 bad lines.
    let mut bad = Raw::connect(addr);
    let writer = bad.stream().try_clone().unwrap();
    let flood = thread::spawn(move || {
        let mut writer = writer;
        writer.write_all(&b"x\n".repeat(10_000)).unwrap();
    });
    for i in 0..10_000 {
        assert!(bad.line().starts_with("ERR unknown-command"), "reply {i}");
    }
    flood.join().unwrap();
    let took = registration_time(addr, "newcomer");
    eprintln!("registration with a stalled log: {took:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn bad_lines_from_one_connection_are_logged_a_few_times_then_summarised() {
    let server = common::Server::start();
    let mut bad = Raw::connect(server.addr);
    for _ in 0..1000 {
        bad.send("x");
    }
    for _ in 0..1000 {
        bad.line();
    }
    drop(bad);
    server.expect_log("… and 995 more bad lines from 127.0.0.1:");
    let log = server.log();
    assert_eq!(log.matches("rejected").count(), 5, "{log}");
    // The whole log is smaller than what the client sent.
    assert!(log.len() < 2000 * 2, "{} bytes of log", log.len());
}

/// A server for these tests: calls ring out in 1 s, a failed call waits
/// `recall_wait` before the same callee can be called again.
fn config() -> Config {
    Config {
        ring_timeout: Duration::from_secs(1),
        recall_wait: Duration::from_secs(2),
        relay_rate: 0,
        summary_interval: Duration::from_secs(1),
        ..Config::default()
    }
}

/// A raw client that announced `ring` and registered as `name`.
fn register_ringing(server: SocketAddr, name: &str) -> Raw {
    let mut raw = Raw::connect(server);
    assert!(raw.ask("FEATURES ring").starts_with("OK FEATURES"));
    let reply = raw.ask(&format!("REGISTER {name} 127.0.0.1:9"));
    assert!(reply.starts_with(&format!("OK WELCOME {name} ")), "{reply}");
    raw
}

/// The reply to `request`, skipping the events pushed meanwhile.
fn ask_past_events(raw: &mut Raw, request: &str) -> String {
    raw.send(request);
    loop {
        let line = raw.line();
        if !line.starts_with("EVENT ") {
            return line;
        }
    }
}

#[test]
fn nobody_can_keep_a_peer_busy_by_calling_again_and_again() {
    let server = serve(Config {
        max_calls_per_minute: 100_000,
        ..config()
    });
    let mut mallory = register_ringing(server, "mallory");
    let mut bob = register_ringing(server, "bob");
    let mut carol = register_ringing(server, "carol");
    let mut dave = register(server, "dave");
    let stop = Arc::new(AtomicBool::new(false));
    let too_soon = Arc::new(AtomicUsize::new(0));
    // mallory calls bob as fast as the server lets her: each call rings
    // out after 1 s, and she calls again at once.
    let flooder = {
        let (stop, too_soon) = (stop.clone(), too_soon.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let reply = ask_past_events(&mut mallory, "CALL bob");
                if reply.starts_with("OK RINGING") {
                    let ended = mallory.line();
                    assert!(ended.starts_with("EVENT NOANSWER"), "{ended}");
                } else if reply.starts_with("ERR too-soon your last call to bob") {
                    too_soon.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    // Every 100 ms for 5 s: is bob free (dave looks), can carol ring him,
    // can bob call out? Each of carol's and bob's calls is hung up at
    // once, which makes each of them wait 2 s before calling that one
    // again; so each can get through about every 2 s, and no more often
    // than that.
    let (mut carol_through, mut bob_out, mut free, mut looks) = (0, 0, 0, 0);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        looks += 1;
        let lookup = ask_past_events(&mut dave, "LOOKUP bob");
        free += usize::from(lookup == "OK FOUND bob free");
        let reply = ask_past_events(&mut carol, "CALL bob");
        if let Some(call) = reply.strip_prefix("OK RINGING bob ") {
            carol_through += 1;
            assert!(
                ask_past_events(&mut carol, &format!("HANGUP {call}")).starts_with("OK HANGUP")
            );
        } else {
            // bob ringing for mallory, or carol's own wait: nothing else.
            assert!(
                reply.starts_with("ERR busy bob")
                    || reply.starts_with("ERR too-soon your last call to bob"),
                "carol: {reply}"
            );
        }
        let reply = ask_past_events(&mut bob, "CALL dave");
        if reply.starts_with("OK CALL dave") {
            bob_out += 1;
            let call = reply.split(' ').nth(3).unwrap().to_string();
            assert!(ask_past_events(&mut bob, &format!("HANGUP {call}")).starts_with("OK HANGUP"));
        }
        thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
    let too_soon = too_soon.load(Ordering::Relaxed);
    eprintln!(
        "bob was free in {free} of {looks} looks, carol got through {carol_through} times, \
         bob called out {bob_out} times, mallory was told too-soon {too_soon} times"
    );
    // mallory may hold bob 1 s in every 3 s (1 s ringing, 2 s waiting):
    // free two thirds of the time, half at the least.
    assert!(
        free * 2 >= looks,
        "bob was free in only {free} of {looks} looks"
    );
    // One call in every 2 s, give or take the second bob rings for mallory.
    assert!(
        carol_through >= 2,
        "carol got through {carol_through} times"
    );
    assert!(bob_out >= 2, "bob called out {bob_out} times");
    assert!(too_soon > 0);
}

#[test]
fn a_caller_is_told_too_soon_with_the_wait_and_may_call_again_after_it() {
    let server = serve(config());
    let mut ann = register(server, "ann");
    let mut ben = register(server, "ben");
    let reply = ann.ask("CALL ben");
    let call = reply.split(' ').nth(3).unwrap().to_string();
    assert!(ben.line().starts_with("EVENT INCOMING ann"));
    // ben's chat gives up on a caller that never connects.
    assert!(ben.ask(&format!("HANGUP {call}")).starts_with("OK HANGUP"));
    assert_eq!(ann.line(), format!("EVENT HANGUP {call} ben"));
    assert_eq!(
        ann.ask("CALL ben"),
        "ERR too-soon your last call to ben did not become a chat; wait 2 s before calling ben again"
    );
    // Others are not held back, nor is ann from calling herself.
    let mut cat = register(server, "cat");
    let reply = cat.ask("CALL ben");
    assert!(reply.starts_with("OK CALL ben"), "cat: {reply}");
    let cats = reply.split(' ').nth(3).unwrap().to_string();
    assert!(ann.ask("CALL ann").starts_with("EVENT INCOMING ann"));
    let own = ann.line();
    assert!(own.starts_with("OK CALL ann"), "oneself: {own}");
    let own = own.split(' ').nth(3).unwrap().to_string();
    assert!(ann.ask(&format!("HANGUP {own}")).starts_with("OK HANGUP"));
    // A call with oneself leaves no wait.
    assert!(ann.ask("CALL ann").starts_with("EVENT INCOMING ann"));
    let own = ann.line();
    let own = own.split(' ').nth(3).unwrap().to_string();
    assert!(ann.ask(&format!("HANGUP {own}")).starts_with("OK HANGUP"));
    assert!(cat.ask(&format!("HANGUP {cats}")).starts_with("OK HANGUP"));
    assert!(ben.line().starts_with("EVENT INCOMING cat"));
    assert!(ben.line().starts_with("EVENT HANGUP"));
    // After the wait, ann may call ben again.
    thread::sleep(Duration::from_millis(2100));
    assert!(ann.ask("CALL ben").starts_with("OK CALL ben"));
}

#[test]
fn calls_per_client_are_limited_per_minute() {
    let server = serve(Config {
        max_calls_per_minute: 5,
        ..config()
    });
    let mut ann = register(server, "ann");
    for i in 0..5 {
        assert!(
            ann.ask("CALL nobody").starts_with("ERR unknown-user"),
            "call {i}"
        );
    }
    let reply = ann.ask("CALL nobody");
    assert!(
        reply.starts_with("ERR too-soon at most 5 calls a minute; wait "),
        "{reply}"
    );
    // The count belongs to the name: a new connection does not reset it.
    // (BYE comes once the server has taken ann off its table.)
    assert_eq!(ann.ask("QUIT"), "OK BYE");
    let mut again = register(server, "ann");
    assert!(
        again
            .ask("CALL nobody")
            .starts_with("ERR too-soon at most 5")
    );
}

/// Two registered clients, a call between them, and both halves of its
/// relay open (the `OK RELAYED` lines read).
struct Relayed {
    ann: Raw,
    ben: Raw,
    call: String,
    first: TcpStream,
    second: TcpStream,
}

fn relayed(server: SocketAddr) -> Relayed {
    let mut ann = register(server, "ann");
    let mut ben = register(server, "ben");
    let reply = ann.ask("CALL ben");
    let words: Vec<&str> = reply.split(' ').collect();
    let (call, token) = (words[3].to_string(), words[4].to_string());
    assert!(ben.line().starts_with("EVENT INCOMING ann"));
    let open = |server| {
        let stream = TcpStream::connect(server).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        (&stream)
            .write_all(format!("RELAY {call} {token}\n").as_bytes())
            .unwrap();
        stream
    };
    let first = open(server);
    assert_eq!(ben.line(), format!("EVENT RELAY {call}"));
    let second = open(server);
    for half in [&first, &second] {
        assert_eq!(read_line_from(half), format!("OK RELAYED {call}"));
    }
    Relayed {
        ann,
        ben,
        call,
        first,
        second,
    }
}

/// One line, read a byte at a time so nothing after it is consumed.
fn read_line_from(mut stream: &TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stream.read(&mut byte).expect("read") == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

#[test]
fn a_relay_delivers_everything_each_side_sent_before_it_closed() {
    let server = serve(config());
    let relay = relayed(server);
    let n = 100_000;
    let (first, second) = (relay.first, relay.second);
    // ann's half sends every line and half-closes, then reads to the end,
    // as a chat waiting for its peer's BYE does.
    let sender = {
        let first = first.try_clone().unwrap();
        thread::spawn(move || {
            let mut text = String::new();
            for i in 0..n {
                text.push_str(&format!("MSG line {i}\n"));
            }
            (&first).write_all(text.as_bytes()).unwrap();
            first.shutdown(std::net::Shutdown::Write).unwrap();
            let mut back = String::new();
            BufReader::new(&first).read_to_string(&mut back).unwrap();
            back
        })
    };
    // ben's half sends a PING while the lines still flow, reads them all,
    // then answers after the end, and closes.
    let mut reader = BufReader::new(&second);
    let mut received = Vec::with_capacity(n);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if received.is_empty() {
            (&second).write_all(b"PING\n").unwrap();
        }
        received.push(line.trim_end().to_string());
    }
    (&second).write_all(b"PING after the end\nBYE\n").unwrap();
    second.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(received.len(), n, "lines arrived");
    for (i, line) in received.iter().enumerate() {
        assert_eq!(line, &format!("MSG line {i}"), "in order, once");
    }
    assert_eq!(sender.join().unwrap(), "PING\nPING after the end\nBYE\n");
    drop(relay.ann);
    drop(relay.ben);
    let _ = relay.call;
}

/// Whether `stream` is closed (EOF or reset) within `within`.
fn closes_within(stream: &TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    loop {
        match (&*stream).read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
        if started.elapsed() > within {
            return false;
        }
    }
}

/// A half that keeps sending, as the self-call of issue #13 did.
fn keep_sending(stream: &TcpStream) -> thread::JoinHandle<()> {
    let stream = stream.try_clone().unwrap();
    thread::spawn(move || {
        let line = format!("MSG {}\n", "x".repeat(1000));
        while (&stream).write_all(line.as_bytes()).is_ok() {}
    })
}

#[test]
fn a_relay_ends_within_a_second_of_its_call_hung_up() {
    let server = serve(config());
    let mut relay = relayed(server);
    let flood = keep_sending(&relay.first);
    let call = relay.call.clone();
    assert_eq!(
        relay.ann.ask(&format!("HANGUP {call}")),
        format!("OK HANGUP {call}")
    );
    let hung_up = Instant::now();
    assert!(
        closes_within(&relay.second, Duration::from_secs(1)),
        "still relaying"
    );
    assert!(hung_up.elapsed() < Duration::from_millis(1200));
    let _ = relay.first.shutdown(std::net::Shutdown::Both);
    flood.join().unwrap();
}

#[test]
fn a_relay_ends_within_a_second_of_a_party_leaving() {
    let server = serve(config());
    let relay = relayed(server);
    let flood = keep_sending(&relay.second);
    let mut ben = relay.ben;
    assert_eq!(ben.ask("QUIT"), "OK BYE");
    let left = Instant::now();
    assert!(
        closes_within(&relay.first, Duration::from_secs(1)),
        "still relaying"
    );
    assert!(left.elapsed() < Duration::from_millis(1200));
    let _ = relay.second.shutdown(std::net::Shutdown::Both);
    flood.join().unwrap();
}

#[test]
fn past_max_relays_a_relay_is_refused_as_server_full() {
    let server = serve(Config {
        max_relays: 1,
        ..config()
    });
    let _open = relayed(server);
    let mut cat = register(server, "cat");
    let mut dan = register(server, "dan");
    let reply = cat.ask("CALL dan");
    let words: Vec<&str> = reply.split(' ').collect();
    assert!(dan.line().starts_with("EVENT INCOMING"));
    let mut half = Raw::connect(server);
    assert_eq!(
        half.ask(&format!("RELAY {} {}", words[3], words[4])),
        "ERR server-full too many relayed chats at once; try again later"
    );
}

#[test]
fn a_relay_carries_at_most_its_rate() {
    let rate = 100_000;
    let server = serve(Config {
        relay_rate: rate,
        ..config()
    });
    let relay = relayed(server);
    // One second of burst, then the rate: 250,000 bytes take about 1.5 s.
    let bytes = 250_000;
    let line = format!("MSG {}\n", "y".repeat(995));
    let lines = bytes / line.len();
    let sender = {
        let first = relay.first.try_clone().unwrap();
        let text = line.repeat(lines);
        thread::spawn(move || (&first).write_all(text.as_bytes()).unwrap())
    };
    let started = Instant::now();
    let mut got = 0;
    let mut buf = vec![0u8; 65536];
    while got < lines * line.len() {
        got += (&relay.second).read(&mut buf).unwrap();
    }
    let took = started.elapsed();
    sender.join().unwrap();
    let throughput = got as f64 / took.as_secs_f64();
    eprintln!("relay throughput at --relay-rate {rate}: {throughput:.0} bytes/s over {took:?}");
    assert!(
        took >= Duration::from_millis(1200),
        "{took:?}: faster than the rate"
    );
}

#[test]
fn the_log_sums_up_the_load_every_interval_while_anything_happens() {
    let server = common::Server::start_with(&["--summary-interval", "1"]);
    let _ann = common::registered(&server, "ann");
    server.expect_log(
        "summary: 1 peers online, 1 connections, 0 calls open, 0 relays open, 0 bytes relayed \
         in the last 1s (0 in all), 0 connections refused, 0 log lines dropped",
    );
}
