//! Off-path attackers (#21, findings 2 and 3): someone who answers at an
//! address a caller dials, or who saw the bytes of one attempt, gets no
//! value it can use — no line, no relay half, no chat brought back.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Chat, Proxy, Raw, Server, answer};

fn login(server: &Server, name: &str, args: &[&str]) -> Chat {
    let mut args = args.to_vec();
    args.extend(["--name", name]);
    let mut chat = Chat::spawn(server.addr, &args);
    chat.label = name.to_string();
    chat.expect("Online users");
    chat
}

/// The words of `text` that look like a secret: 32 hex digits, alone or
/// joined by dots.
fn secrets(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '.')
        .filter(|w| w.len() == 32 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string)
        .collect()
}

/// mallory, listening at `addr`: to every connection, she answers `KNOCK`
/// with a value of her own making and `HELLO` with `WELCOME bob`, as an
/// impostor would; she keeps every line she is sent.
fn impostor(listener: TcpListener) -> Arc<Mutex<Vec<String>>> {
    let heard: Arc<Mutex<Vec<String>>> = Arc::default();
    let keep = heard.clone();
    thread::spawn(move || {
        // A few connections: the caller's attempts.
        for stream in listener.incoming().take(8).flatten() {
            let keep = keep.clone();
            thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut writer = stream.try_clone().unwrap();
                for line in BufReader::new(stream).lines().take(100) {
                    let Ok(line) = line else { return };
                    let answer = if line.starts_with("KNOCK ") {
                        Some(format!("PROOF {}", "7".repeat(32)))
                    } else if line.starts_with("HELLO ") || line.starts_with("REHELLO ") {
                        Some("WELCOME bob".to_string())
                    } else {
                        None
                    };
                    keep.lock().unwrap().push(line);
                    if let Some(answer) = answer {
                        let _ = writer.write_all(format!("{answer}\n").as_bytes());
                    }
                }
            });
        }
    });
    heard
}

#[test]
fn an_impostor_at_a_dialed_address_is_shown_nothing_and_the_relay_connects() {
    let server = Server::start();
    // bob's network and alice's use the same private addresses: where alice
    // dials bob's, mallory answers. (On loopback: 127.0.0.2.)
    let listener = TcpListener::bind("127.0.0.2:0").unwrap();
    let held = listener.local_addr().unwrap();
    let heard = impostor(listener);
    let mut alice = login(&server, "alice", &[]);
    let mut bob = login(&server, "bob", &["--advertise", &held.to_string()]);

    alice.send("bob");
    answer(&mut bob, "alice");
    alice.expect(&format!("Someone else answered at {held}"));
    alice.expect("Connected to bob (relayed through the server");
    bob.expect("alice connected (relayed through the server");
    alice.send("for bob only");
    bob.expect("alice: for bob only");

    let heard = heard.lock().unwrap().clone();
    common::assert_only_knocked(&heard, "alice");
    assert!(secrets(&heard.join("\n")).is_empty(), "{heard:?}");
    bob.send("q");
    alice.expect("bob left the chat.");
}

/// bob's chat listens on a port only a recording proxy forwards to, and
/// tells the server to send callers to the proxy: the proxy sees what an
/// attacker at that address would.
fn bob_behind_a_recording_proxy(server: &Server) -> (Chat, Proxy, SocketAddr) {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let proxy = Proxy::recording(target);
    let advertise = proxy.addr.to_string();
    let bob = login(
        server,
        "bob",
        &["--p2p-port", &port.to_string(), "--advertise", &advertise],
    );
    (bob, proxy, target)
}

/// Says `line` on a fresh connection to `addr` and returns the answer.
fn say_once(addr: SocketAddr, line: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = BufReader::new(stream).read_line(&mut answer);
    answer.trim_end().to_string()
}

#[test]
fn values_seen_on_the_direct_path_open_no_relay_and_bring_no_chat_back() {
    let server = Server::start();
    let mut alice = login(&server, "alice", &["--grace", "20"]);
    let (mut bob, proxy, bob_real) = bob_behind_a_recording_proxy(&server);
    alice.send("bob");
    answer(&mut bob, "alice");
    alice.expect("Connected to bob at");
    bob.expect("alice connected.");
    common::settle(&mut alice, &mut bob);

    let seen = proxy.heard();
    let call: u64 = seen
        .lines()
        .find_map(|l| l.strip_prefix("KNOCK alice ")?.parse().ok())
        .unwrap_or_else(|| panic!("alice knocked first: {seen:?}"));
    assert!(!seen.contains("RESUMABLE"), "a resume key crossed: {seen}");
    // Every value that crossed the direct path, tried on the relay.
    let values = secrets(&seen);
    assert!(!values.is_empty(), "{seen}");
    for value in &values {
        let mut raw = Raw::connect(server.addr);
        let reply = raw.ask(&format!("RELAY {call} {value}"));
        assert!(reply.starts_with("ERR bad-token"), "{value}: {reply}");
    }

    // The link breaks; alice brings it back through the same path.
    proxy.cut();
    alice.expect("back with bob");
    alice.send("after");
    bob.expect("alice: after");
    let seen = proxy.heard();
    assert!(!seen.contains("RESUMABLE"), "a resume key crossed: {seen}");
    let rehellos: Vec<&str> = seen.lines().filter(|l| l.starts_with("REHELLO ")).collect();
    assert!(!rehellos.is_empty(), "{seen}");
    // What brought the chat back once brings nothing back again, and a
    // second knock is shown nothing.
    let deadline = Instant::now() + Duration::from_secs(30);
    for line in rehellos {
        assert!(Instant::now() < deadline);
        let answer = say_once(bob_real, line);
        assert!(answer.starts_with("ERR"), "{line}: {answer}");
    }
    let answer = say_once(bob_real, &format!("KNOCK alice {call}"));
    assert!(answer.starts_with("ERR"), "{answer}");
    alice.send("still");
    bob.expect("alice: still");
    bob.send("q");
    alice.expect("bob left the chat.");
}

#[test]
fn a_stranger_on_a_chats_port_is_told_what_a_chat_expects_not_the_servers_verbs() {
    let server = Server::start();
    let bob = login(&server, "bob", &[]);
    for junk in ["GET / HTTP/1.1", "LIST", "\u{1b}[2J"] {
        let answer = say_once(bob.p2p_addr(), junk);
        assert!(
            answer.starts_with("ERR ") && answer.contains("expected KNOCK"),
            "{junk:?}: {answer}"
        );
        assert!(!answer.contains("REGISTER"), "{answer}");
    }
}
