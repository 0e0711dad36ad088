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

use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::Duration;

use common::Raw;
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
    assert_eq!(raw.ask("FEATURES"), "OK FEATURES no-relay-code relay");

    let plain = serve(Config {
        relay: false,
        ..Config::default()
    });
    let mut raw = register(plain, "ann");
    assert_eq!(raw.ask("FEATURES relay"), "OK FEATURES no-relay-code");
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
