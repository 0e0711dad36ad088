//! A person at the keyboard, through pipes: a name typed slowly, a refused
//! name and a retry, commands a chat user tries, typed-ahead input.

mod common;

use common::{Chat, Server, connect, login};

#[test]
fn a_name_typed_after_the_server_gave_up_on_the_connection_still_registers() {
    // The server drops connections that have not registered within 1 s; the
    // person types the name well after that.
    let server = Server::start_with(&["--register-timeout", "1"]);
    let mut slow = Chat::spawn(server.addr, &[]);
    slow.expect("Enter your visible name: ");
    server.expect_log("did not register in time");
    slow.send("slowpoke");
    slow.expect("Welcome, slowpoke!");
    slow.expect("Online users (1)");
    slow.expect("  slowpoke (you)");
}

#[test]
fn a_refused_name_asks_again_with_the_reason_and_a_slow_retry_registers() {
    let server = Server::start_with(&["--register-timeout", "1"]);
    let _bob = login(&server, "bob");
    let mut other = Chat::spawn(server.addr, &[]);
    other.expect("Enter your visible name: ");
    other.send("BOB");
    other.expect("The server refused the name BOB: ");
    other.expect("Enter your visible name: ");
    other.send("my name");
    other.expect("That name won't do: ");
    other.expect("Enter your visible name: ");
    // Longer than the server waits for an unregistered connection.
    server.expect_log("did not register in time");
    other.send("robert");
    other.expect("Welcome, robert!");
    other.expect("Online users (2)");
}

#[test]
fn typed_ahead_empty_lines_show_the_list_each_time() {
    let server = Server::start();
    let mut dave = Chat::spawn(server.addr, &[]);
    dave.send("dave\n\n\nq");
    for _ in 0..3 {
        dave.expect("Online users (1)");
    }
    assert!(dave.wait_exit().success());
}

#[test]
fn slash_commands_in_a_chat_are_never_sent_as_text() {
    let server = Server::start();
    let mut alice = login(&server, "alice");
    let mut bob = login(&server, "bob");
    connect(&mut alice, &mut bob);
    alice.send("/who");
    alice.expect("Online users (2)");
    alice.expect("  bob [busy]");
    alice.send("/frob");
    alice.expect("There is no command /frob");
    alice.send("/help");
    alice.expect("/say TEXT");
    alice.send("//etc/motd");
    bob.expect("alice: /etc/motd");
    alice.send("/say q");
    bob.expect("alice: q\n");
    alice.send("Q");
    bob.expect("alice: Q\n");
    alice.send("last");
    bob.expect("alice: last");
    let bob_saw = bob.stdout();
    for never in ["/who", "/frob", "/help"] {
        assert!(!bob_saw.contains(never), "bob saw {never}: {bob_saw}");
    }
    alice.send("/quit");
    alice.expect("You left the chat with bob.");
    bob.expect("alice left the chat.");
    alice.expect("Enter a name to chat with, or q to quit: ");
    alice.send(" q ");
    assert!(alice.wait_exit().success());
}
