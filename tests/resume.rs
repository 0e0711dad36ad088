//! Chats that survive the network: a test-owned proxy sits between two
//! chats, and is cut mid-stream, or taken down for longer than the grace
//! period. Every line must arrive exactly once, in order, or be reported as
//! not delivered.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::{Chat, Proxy, Server, answer, received, resent};

/// bob's chat listens on a port only the proxy forwards to, and tells the
/// server to send callers to the proxy.
fn bob_behind_a_proxy(server: &Server, grace: &str) -> (Chat, Proxy) {
    bob_behind(Proxy::to, server, grace)
}

/// As [`bob_behind_a_proxy`], through a proxy that forwards `rate` bytes a
/// second each way.
fn bob_behind_a_slow_proxy(server: &Server, grace: &str, rate: u64) -> (Chat, Proxy) {
    bob_behind(|target| Proxy::throttled(target, rate), server, grace)
}

fn bob_behind(
    proxy_to: impl FnOnce(SocketAddr) -> Proxy,
    server: &Server,
    grace: &str,
) -> (Chat, Proxy) {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let proxy = proxy_to(target);
    let mut bob = Chat::spawn(
        server.addr,
        &[
            "--name",
            "bob",
            "--p2p-port",
            &port.to_string(),
            "--advertise",
            &proxy.addr.to_string(),
            "--grace",
            grace,
        ],
    );
    bob.label = "bob".into();
    bob.expect("Online users");
    (bob, proxy)
}

fn alice(server: &Server, grace: &str) -> Chat {
    let mut alice = Chat::spawn(server.addr, &["--name", "alice", "--grace", grace]);
    alice.label = "alice".into();
    alice.expect("Online users");
    alice
}

fn connect_through(alice: &mut Chat, bob: &mut Chat) {
    alice.send("bob");
    answer(bob, "alice");
    alice.expect("Connected to bob");
    bob.expect("alice connected");
    // Two round trips: by then each side has said it can resume, and bob
    // has alice's key (sent once alice heard bob can use it).
    common::settle(alice, bob);
}

fn numbered(prefix: &str, n: usize) -> String {
    (0..n).map(|i| format!("{prefix} {i}\n")).collect()
}

#[test]
fn a_cut_mid_stream_both_ways_loses_and_doubles_nothing() {
    const N: usize = 10_000;
    let server = Server::start();
    // About 120 KB of `MSG a 1234` each way: at 40 KB/s the stream lasts
    // 3 s, and the cut comes within its first tenth.
    let (mut bob, proxy) = bob_behind_a_slow_proxy(&server, "20", 40_000);
    let mut alice = alice(&server, "20");
    connect_through(&mut alice, &mut bob);
    alice.send_bytes(numbered("a", N).as_bytes());
    bob.send_bytes(numbered("b", N).as_bytes());
    common::eventually("some of the lines are across", || {
        received(&bob, "alice", "a").len() > 200 || received(&alice, "bob", "b").len() > 200
    });
    proxy.cut();
    // The cut is mid-stream both ways, and what it took goes again.
    let (to_bob, to_alice) = (
        received(&bob, "alice", "a").len(),
        received(&alice, "bob", "b").len(),
    );
    assert!(
        to_bob < N / 2 && to_alice < N / 2,
        "the cut came late: {to_bob} and {to_alice} of {N} lines were across"
    );
    alice.expect_within("back with bob", Duration::from_secs(20));
    bob.expect_within("back with alice", Duration::from_secs(20));
    assert!(resent(&alice, "bob") > 0, "{}", alice.stdout());
    assert!(resent(&bob, "alice") > 0, "{}", bob.stdout());
    // Counted over all the output: the last lines may have come before
    // "back with", past which `expect` looks.
    let all_across = common::within(Duration::from_secs(30), || {
        received(&bob, "alice", "a").len() >= N && received(&alice, "bob", "b").len() >= N
    });
    if !all_across {
        let a = alice.stdout();
        let b = bob.stdout();
        let tail = |s: &str| s.lines().rev().take(15).collect::<Vec<_>>().join("\n");
        panic!(
            "bob got {} of alice's lines; alice got {} of bob's\nalice's last lines:\n{}\nbob's last lines:\n{}\nbob stderr: {}",
            received(&bob, "alice", "a").len(),
            received(&alice, "bob", "b").len(),
            tail(&a),
            tail(&b),
            bob.stderr()
        );
    }
    assert_eq!(received(&bob, "alice", "a"), (0..N).collect::<Vec<_>>());
    assert_eq!(received(&alice, "bob", "b"), (0..N).collect::<Vec<_>>());
    assert!(alice.stdout().contains("link to bob lost; reconnecting…"));
    // And the chat goes on over the new link.
    alice.send("after the storm");
    bob.expect("alice: after the storm");
}

#[test]
fn when_the_link_cannot_come_back_both_are_told_what_was_not_delivered() {
    // No relay to fall back on: with the proxy shut, no way back at all.
    let server = Server::start_with(&["--no-relay"]);
    // alice's grace ends first, so it is hers that tells her; with equal
    // graces bob's could end first, and alice would hear "bob ended the
    // chat" through the server instead.
    let (mut bob, proxy) = bob_behind_a_proxy(&server, "5");
    let mut alice = alice(&server, "2");
    connect_through(&mut alice, &mut bob);
    alice.send("delivered");
    bob.expect("alice: delivered");
    // bob's answer comes after his acknowledgement of "delivered".
    bob.send("got it");
    alice.expect("bob: got it");
    alice.send("good");
    bob.expect("alice: good");
    proxy.set_open(false);
    proxy.cut();
    alice.expect("link to bob lost; reconnecting…");
    bob.expect("link to alice lost; reconnecting…");
    alice.send("lost words one");
    alice.send("lost words two");
    bob.send("never arrived");
    alice.expect("The link to bob could not be brought back; the chat ended.");
    // Exactly the lines typed while the link was down, and at most the one
    // whose acknowledgement the cut may have taken with it.
    alice.expect("of your lines were not confirmed by bob (they may not have arrived):");
    let told = alice.stdout();
    let report = told
        .lines()
        .find(|l| l.contains("were not confirmed by bob"))
        .unwrap();
    let two = report.starts_with("2 of");
    let three = report.starts_with("3 of") && report.contains("“good”");
    assert!(
        report.ends_with("“lost words one”, “lost words two”.") && (two || three),
        "{report}"
    );
    // bob is told too: when his own grace ends, or as alice's end reaches
    // him through the server, whichever is first.
    bob.expect("not confirmed by alice (they may not have arrived):");
    let told = bob.stdout();
    let report = told
        .lines()
        .find(|l| l.contains("not confirmed by alice"))
        .unwrap();
    assert!(report.ends_with("“never arrived”."), "{report}");
    alice.expect("Online users (2)");
    assert!(!bob.stdout().contains("alice: lost words"));
}

#[test]
fn q_while_reconnecting_ends_the_chat_at_once_and_the_peer_hears_it() {
    // No relay: the link stays down until q.
    let server = Server::start_with(&["--no-relay"]);
    let (mut bob, proxy) = bob_behind_a_proxy(&server, "30");
    let mut alice = alice(&server, "30");
    connect_through(&mut alice, &mut bob);
    proxy.set_open(false);
    proxy.cut();
    alice.expect("link to bob lost; reconnecting…");
    bob.expect("link to alice lost; reconnecting…");
    alice.send("q");
    alice.expect_within("You left the chat with bob.", Duration::from_secs(2));
    alice.expect("Online users (2)");
    // Long before bob's 30 s grace: through the server.
    bob.expect_within("alice ended the chat.", Duration::from_secs(5));
    bob.expect("Online users (2)");
}

#[test]
fn a_relayed_chat_survives_its_server_restarting_mid_stream() {
    const N: usize = 10_000;
    // Slow enough that the restart lands mid-stream: about 3 s of lines.
    const RATE: &[&str] = &["--relay-rate", "40000"];
    let mut server = Server::start_on_fixed_port(RATE);
    let listen = server.addr.to_string();
    let mut alice = alice(&server, "30");
    // Port 1 is never ours: bob can be reached through the relay only.
    let mut bob = Chat::spawn(
        server.addr,
        &[
            "--name",
            "bob",
            "--advertise",
            "127.0.0.1:1",
            "--grace",
            "30",
        ],
    );
    bob.label = "bob".into();
    bob.expect("Online users");
    alice.send("bob");
    answer(&mut bob, "alice");
    alice.expect("Connected to bob (relayed through the server");
    bob.expect("alice connected (relayed");
    common::settle(&mut alice, &mut bob);
    alice.send_bytes(numbered("a", N).as_bytes());
    bob.send_bytes(numbered("b", N).as_bytes());
    common::eventually("some of the lines are across", || {
        received(&bob, "alice", "a").len() > 200 || received(&alice, "bob", "b").len() > 200
    });
    // The relay goes with the server; a new one comes up on the same port.
    server.kill();
    alice.expect("link to bob lost; reconnecting…");
    let across = received(&bob, "alice", "a").len();
    assert!(across < N, "the restart came after all {across} lines");
    let server = Server::start_on(&listen, RATE);
    alice.expect_within("back with bob", Duration::from_secs(30));
    bob.expect_within("back with alice", Duration::from_secs(30));
    let all_across = common::within(Duration::from_secs(30), || {
        received(&bob, "alice", "a").len() >= N && received(&alice, "bob", "b").len() >= N
    });
    assert!(all_across, "not every line came across");
    assert_eq!(received(&bob, "alice", "a"), (0..N).collect::<Vec<_>>());
    assert_eq!(received(&alice, "bob", "b"), (0..N).collect::<Vec<_>>());
    server.expect_log("brings bob back through the relay");
    // And the chat goes on.
    alice.send("after the restart");
    bob.expect("alice: after the restart");
}

#[test]
fn a_chat_without_resumption_ends_with_its_link_on_both_sides() {
    // `--no-resume` on one side only: each sees the other as a chat
    // without the feature, so neither keeps the chat for a grace period.
    let server = Server::start();
    let (mut bob, proxy) = bob_behind_a_proxy(&server, "30");
    let mut alice = Chat::spawn(server.addr, &["--name", "alice", "--no-resume"]);
    alice.label = "alice".into();
    alice.expect("Online users");
    connect_through(&mut alice, &mut bob);
    alice.send("unnumbered");
    bob.expect("alice: unnumbered");
    proxy.set_open(false);
    proxy.cut();
    alice.expect_within(
        "bob left the chat (connection lost)",
        Duration::from_secs(5),
    );
    bob.expect_within(
        "alice left the chat (connection lost)",
        Duration::from_secs(5),
    );
    assert!(!alice.stdout().contains("reconnecting…"));
    assert!(!bob.stdout().contains("reconnecting…"));
}
