//! What answers at the server's address is not a p2pchat server: before we
//! were ever registered the program ends with one sentence, and nothing is
//! retried or said to it; once registered, it is one more lost connection.

use super::*;

const ANSWERED: &str = "HTTP/1.1 400…";

fn not_a_server() -> Input {
    Input::ServerLost(ServerLoss::NotAServer(ANSWERED.into()))
}

#[test]
fn another_server_ends_the_program_at_once_while_the_name_is_asked_for() {
    let mut w = World::new(None);
    w.expect(Output::Prompt("Enter your visible name: ".into()));
    w.input(not_a_server());
    assert_eq!(w.core.exit(), Some(&Exit::NotAServer(ANSWERED.into())));
    w.expect_quiet();
}

#[test]
fn another_server_ends_the_program_without_a_second_try_for_a_given_name() {
    let mut w = World::new(Some("alice"));
    w.expect_request("REGISTER alice 127.0.0.1:4000");
    w.input(not_a_server());
    assert_eq!(w.core.exit(), Some(&Exit::NotAServer(ANSWERED.into())));
    assert_eq!(w.count(|o| matches!(o, Output::Reconnect { .. })), 0);
    w.expect_quiet();
}

#[test]
fn another_server_after_a_registration_is_a_lost_connection_retried() {
    let mut w = World::registered("alice");
    w.input(not_a_server());
    assert!(w.core.exit().is_none());
    w.expect_line("(what answered is not a p2pchat server: \"HTTP/1.1 400…\"); reconnecting");
    w.take("a reconnect", |o| matches!(o, Output::Reconnect { .. }));
}
