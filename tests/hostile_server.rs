//! Issue #13, the server's half: hostile clients and a busy server. Nothing
//! one client sends can silence the log, stall others, keep a peer busy, or
//! keep a relay running without its call.
//!
//! Tests that need a setting start the real binary with short values, or
//! run `p2pchat::server::serve` in-process with a `Config`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{ChildGuard, Raw, WAIT};
use p2pchat::server::{self, Config};

/// Starts `serve` with `config` on a fresh loopback port; returns where.
fn serve(config: Config) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    thread::Builder::new()
        .name("serve".into())
        .spawn(move || server::serve(listener, config))
        .expect("start the server thread");
    addr
}

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
