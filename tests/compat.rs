//! Versions that meet: today's chat against a server and a peer that speak
//! only what the older binaries spoke (no `FEATURES`, bare `PING`/`PONG`),
//! and older callers against today's chat. Each older side is played by a
//! test thread speaking its exact lines.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{Chat, Server, WAIT, login};

/// A server as the binaries before `FEATURES` were: every line it was sent
/// goes to `seen`.
fn older_server(seen: mpsc::Sender<String>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut out = stream.try_clone().unwrap();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            let _ = seen.send(line.clone());
            let verb = line.split(' ').next().unwrap_or_default().to_string();
            let reply = match verb.as_str() {
                "REGISTER" => {
                    let name = line.split(' ').nth(1).unwrap_or("x");
                    format!("OK WELCOME {name} 10")
                }
                "LIST" => "OK USERS 0".into(),
                "PING" => "OK PONG".into(),
                "QUIT" => "OK BYE".into(),
                _ => format!(
                    "ERR unknown-command unknown command {verb:?}; known: REGISTER LIST LOOKUP CALL HANGUP PING QUIT RELAY RESUME"
                ),
            };
            if writeln!(out, "{reply}").is_err() {
                return;
            }
        }
    });
    addr
}

#[test]
fn a_chat_works_with_a_server_that_knows_no_features() {
    let (seen, lines) = mpsc::channel();
    let addr = older_server(seen);
    let mut chat = Chat::spawn(addr, &["--name", "ann"]);
    chat.expect("Online users (0)");
    chat.expect("Enter a name to chat with, or q to quit: ");
    // The refusal of FEATURES was taken as "no features", not shown.
    assert!(
        !chat.stdout().contains("unknown command"),
        "{}",
        chat.stdout()
    );
    chat.send("q");
    assert!(chat.wait_exit().success());
    let lines: Vec<String> = lines.try_iter().collect();
    assert_eq!(
        lines[0], "FEATURES ring presence missed session proof ring-time away transfer",
        "{lines:?}"
    );
    assert!(lines[1].starts_with("REGISTER ann "), "{lines:?}");
}

/// A callee as the older binaries were: answers HELLO with WELCOME, each
/// PING with a bare PONG, skips lines it does not know; reports every line
/// it received.
fn older_callee(listener: TcpListener, name: &'static str, seen: mpsc::Sender<String>) {
    thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut out = stream.try_clone().unwrap();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            let reply = match line.split(' ').next().unwrap_or_default() {
                "HELLO" => Some(format!("WELCOME {name}")),
                "PING" if line == "PING" => Some("PONG".to_string()),
                "MSG" => Some(format!("MSG echo: {}", &line[4..])),
                _ => None,
            };
            let _ = seen.send(line);
            if let Some(reply) = reply
                && writeln!(out, "{reply}").is_err()
            {
                return;
            }
        }
    });
}

#[test]
fn a_chat_calls_an_older_peer_and_sends_it_only_what_it_knows() {
    let server = Server::start();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let advertised = listener.local_addr().unwrap();
    let (seen, lines) = mpsc::channel();
    older_callee(listener, "oldbob", seen);
    let mut oldbob = common::Raw::connect(server.addr);
    let reply = oldbob.ask(&format!("REGISTER oldbob {advertised}"));
    assert!(reply.starts_with("OK WELCOME oldbob"), "{reply}");

    let mut alice = login(&server, "alice");
    alice.send("oldbob");
    alice.expect("Connected to oldbob");
    alice.send("hi");
    alice.expect("oldbob: echo: hi");
    let received: Vec<String> = (0..3)
        .map(|_| lines.recv_timeout(WAIT).expect("a line"))
        .collect();
    assert!(received[0].starts_with("HELLO alice "), "{received:?}");
    // The one line an older peer skips: it learns nothing newer from it.
    assert_eq!(
        received[1],
        "FEATURES ping-id bye-ack resume long-lines files"
    );
    assert_eq!(received[2], "MSG hi");
    // An action is a line an older peer shows as it is.
    alice.send("/me waves");
    let next_msg = (0..10)
        .filter_map(|_| lines.recv_timeout(WAIT).ok())
        .find(|line| line.starts_with("MSG "));
    assert_eq!(next_msg.as_deref(), Some("MSG * alice waves"));
    alice.expect("oldbob: echo: * alice waves");
    alice.send("q");
    alice.expect("You left the chat with oldbob.");
    assert_eq!(lines.recv_timeout(WAIT).unwrap(), "BYE");
}

#[test]
fn an_older_caller_gets_exactly_the_greeting_it_knows_and_bare_pongs() {
    let server = Server::start();
    let mut bob = login(&server, "bob");
    // Older on the link (no FEATURES after HELLO); it rings, as every
    // caller of a chat that asks must.
    let mut carol = common::registered_ringing(&server, "carol");
    let (call, token) = common::ring_answered(&mut carol, "carol", &mut bob);
    let mut stream = TcpStream::connect(bob.p2p_addr()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    writeln!(stream, "HELLO carol {call} {token}").unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "WELCOME bob\n");
    writeln!(stream, "PING").unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "PONG\n", "a bare PING gets a bare PONG");
    // Nothing else was sent: no FEATURES to a caller that sent none.
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    line.clear();
    assert!(reader.read_line(&mut line).is_err(), "unexpected {line:?}");
    writeln!(stream, "MSG from the past").unwrap();
    bob.expect("carol: from the past");
    // Its IRC-style action reads as one.
    writeln!(stream, "MSG * carol waves").unwrap();
    bob.expect("\n* carol waves\n");
}
