//! `bob is typing…`: the draft's changes become at most one `TYPING` a
//! second to a peer that announced `typing`, never its text; the peer's
//! notices show until its line comes, it stops, or they lapse.

use super::*;

const MS: Duration = Duration::from_millis(1);

/// alice, showing typing notices, chatting with bob (link 1, call 7) as
/// the caller; bob announced `features`.
fn typing_chat_with(features: &str) -> World {
    let mut w = World::registered("alice");
    w.core.settings.typing = TypingNotices::On;
    w.call("bob", 7);
    w.dialed(7, 1, Route::Direct);
    w.peer(1, &[&format!("FEATURES {features}")]);
    w.skip_all();
    w
}

fn typing_chat() -> World {
    typing_chat_with("ping-id bye-ack resume long-lines typing")
}

impl World {
    fn draft(&mut self, text: &str) {
        self.input(Input::Draft(text.into()));
    }

    /// The `TYPING` lines sent from where we are, moving past them.
    fn typing_sent(&mut self) -> Vec<String> {
        let sent = self
            .fresh()
            .iter()
            .filter_map(|o| match o {
                Output::Peer {
                    msg: msg @ PeerMessage::Typing(_),
                    ..
                } => Some(msg.to_string()),
                _ => None,
            })
            .collect();
        self.skip_all();
        sent
    }
}

#[test]
fn our_features_offer_typing_only_where_the_chat_shows_it() {
    let hello_features = |typing: TypingNotices| {
        let mut w = World::registered("alice");
        w.core.settings.typing = typing;
        w.typed("bob");
        w.server(&format!("OK CALL bob 7 {TOKEN} 127.0.0.1:5000"));
        let Output::Dial { hello, .. } = w.take("a dial", |o| matches!(o, Output::Dial { .. }))
        else {
            unreachable!()
        };
        hello[1].to_string()
    };
    assert_eq!(
        hello_features(TypingNotices::On),
        "FEATURES ping-id bye-ack resume long-lines typing"
    );
    assert_eq!(
        hello_features(TypingNotices::Off),
        "FEATURES ping-id bye-ack resume long-lines"
    );
    // As the callee, in answer to the caller's.
    let mut w = World::registered("bob");
    w.core.settings.typing = TypingNotices::On;
    w.server(&format!("EVENT INCOMING alice 9 {TOKEN}"));
    w.hello(3, "alice", 9, TOKEN);
    w.peer(3, &["FEATURES ping-id typing"]);
    w.expect_to_peer(3, "FEATURES ping-id bye-ack resume long-lines typing");
}

#[test]
fn a_line_begun_is_told_once_and_its_sending_says_the_rest() {
    let mut w = typing_chat();
    w.draft("h");
    assert_eq!(w.typing_sent(), ["TYPING on"]);
    for draft in ["he", "hel", "hello"] {
        w.advance(100 * MS);
        w.draft(draft);
    }
    assert!(w.typing_sent().is_empty());
    // The line itself ends the notice on bob's side: no `off` follows.
    w.typed("hello");
    w.expect_to_peer(1, "MSG hello");
    w.draft("");
    w.advance(Duration::from_secs(6));
    assert!(w.typing_sent().is_empty(), "{:#?}", w.fresh());
    // The next line begun is told again.
    w.draft("a");
    assert_eq!(w.typing_sent(), ["TYPING on"]);
}

#[test]
fn a_line_cleared_or_left_idle_is_no_longer_typed() {
    let mut w = typing_chat();
    w.draft("oops");
    assert_eq!(w.typing_sent(), ["TYPING on"]);
    w.advance(Duration::from_secs(2));
    w.draft("");
    assert_eq!(w.typing_sent(), ["TYPING off"]);
    w.advance(Duration::from_secs(2));
    w.draft("and");
    assert_eq!(w.typing_sent(), ["TYPING on"]);
    // Untouched for five seconds: not typing any more.
    w.advance(4_900 * MS);
    assert!(w.typing_sent().is_empty());
    w.advance(100 * MS);
    assert_eq!(w.typing_sent(), ["TYPING off"]);
}

#[test]
fn at_most_one_typing_message_a_second_however_fast_the_draft_changes() {
    let mut w = typing_chat();
    let mut sent_at = Vec::new();
    let start = w.now;
    // Each TYPING since `before`, at the time it went.
    let note = |w: &World, before: usize, sent_at: &mut Vec<Instant>| {
        let typing = w.log[before..]
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Peer {
                        msg: PeerMessage::Typing(_),
                        ..
                    }
                )
            })
            .count();
        sent_at.extend(std::iter::repeat_n(w.now, typing));
    };
    // Typed and cleared every 50 ms for 6 s, then left alone; woken at
    // each timeout on the way, as a driver would.
    for i in 0..200 {
        let before = w.log.len();
        if i < 120 {
            w.draft(if i % 2 == 0 { "x" } else { "" });
        }
        note(&w, before, &mut sent_at);
        let until = w.now + 50 * MS;
        for _ in 0..10 {
            let Some(at) = w.core.poll_timeout().filter(|&at| at <= until) else {
                break;
            };
            let before = w.log.len();
            w.now = w.now.max(at);
            w.core.handle_timeout(w.now);
            w.collect();
            note(&w, before, &mut sent_at);
            // Each wake does what it was for: none is due again at once.
            assert!(w.core.poll_timeout().is_none_or(|next| next > w.now));
        }
        w.now = until;
    }
    assert!(sent_at.len() >= 4, "{sent_at:?}");
    for pair in sent_at.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(1),
            "two TYPING within a second: at {:?} and {:?}",
            pair[0] - start,
            pair[1] - start
        );
    }
    // It ends told the truth: not typing.
    let last = w
        .log
        .iter()
        .rev()
        .find_map(|o| match o {
            Output::Peer {
                msg: PeerMessage::Typing(t),
                ..
            } => Some(*t),
            _ => None,
        })
        .unwrap();
    assert_eq!(last, Typing::Off);
}

#[test]
fn long_typing_is_said_again_every_few_seconds() {
    let mut w = typing_chat();
    let mut draft = String::new();
    let mut sent = Vec::new();
    for _ in 0..10 {
        draft.push('x');
        w.draft(&draft);
        sent.extend(w.typing_sent());
        w.advance(Duration::from_secs(1));
        sent.extend(w.typing_sent());
    }
    // At 0, 4 and 8 s: a peer may let an `on` not said again lapse.
    assert_eq!(sent, ["TYPING on"; 3]);
}

#[test]
fn a_command_or_blanks_are_not_typing_for_the_peer() {
    let mut w = typing_chat();
    for draft in ["/", "/wh", "/who", "q", "   ", "/ignore carol"] {
        w.draft(draft);
        w.advance(Duration::from_secs(2));
    }
    assert!(w.typing_sent().is_empty());
    w.draft("/say hi");
    assert_eq!(w.typing_sent(), ["TYPING on"]);
    w.advance(Duration::from_secs(2));
    w.draft("/who");
    assert_eq!(w.typing_sent(), ["TYPING off"]);
    w.advance(Duration::from_secs(2));
    w.draft("//slash");
    assert_eq!(w.typing_sent(), ["TYPING on"]);
}

#[test]
fn a_peer_without_the_feature_or_a_chat_without_notices_is_never_told() {
    let mut w = typing_chat_with("ping-id bye-ack resume long-lines");
    w.draft("hello");
    w.advance(Duration::from_secs(10));
    assert!(w.typing_sent().is_empty());
    // Nothing waits for a notice that cannot go: the core sleeps.
    assert!(w.core.poll_timeout().is_none_or(|at| at > w.now));
    let mut w = typing_chat();
    w.core.settings.typing = TypingNotices::Off;
    w.draft("hello");
    w.advance(Duration::from_secs(10));
    assert!(w.typing_sent().is_empty());
    w.peer(1, &["TYPING on"]);
    assert_eq!(w.core.peer_typing(), None);
}

#[test]
fn the_peers_notice_shows_until_its_line_comes_it_stops_or_it_lapses() {
    let mut w = typing_chat();
    assert_eq!(w.core.peer_typing(), None);
    w.peer(1, &["TYPING on"]);
    assert_eq!(w.core.peer_typing().as_deref(), Some("bob is typing…"));
    assert_eq!(w.core.status(), "to bob> ");
    w.peer(1, &["MSG there"]);
    assert_eq!(w.core.peer_typing(), None);
    // In one batch, the order decides.
    w.peer(1, &["MSG one", "TYPING on"]);
    assert!(w.core.peer_typing().is_some());
    w.peer(1, &["TYPING off"]);
    assert_eq!(w.core.peer_typing(), None);
    // An `on` not said again lapses after ten seconds.
    w.peer(1, &["TYPING on"]);
    w.advance(9 * Duration::from_secs(1));
    assert!(w.core.peer_typing().is_some());
    w.peer(1, &["TYPING on"]);
    w.advance(9 * Duration::from_secs(1));
    assert!(w.core.peer_typing().is_some());
    w.advance(Duration::from_secs(1));
    assert_eq!(w.core.peer_typing(), None);
    // A peer leaving is not typing.
    w.peer(1, &["TYPING on"]);
    w.peer(1, &["BYE"]);
    assert_eq!(w.core.peer_typing(), None);
}

#[test]
fn notices_do_not_outlive_the_link_and_go_on_over_the_next_one() {
    let mut w = typing_chat();
    w.draft("half");
    assert_eq!(w.typing_sent(), ["TYPING on"]);
    w.peer(1, &["TYPING on"]);
    w.redialed_bob(token(OTHER_TOKEN), 0);
    w.expect_line("back with bob");
    assert_eq!(w.core.peer_typing(), None);
    w.skip_all();
    // Neither is taken for typing on the new link until it says so.
    w.advance(Duration::from_secs(6));
    assert!(w.typing_sent().is_empty());
    w.draft("half more");
    w.expect_to_peer(9, "TYPING on");
    w.peer(9, &["TYPING on"]);
    assert!(w.core.peer_typing().is_some());
}
