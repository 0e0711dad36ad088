//! Files in a chat: offered, asked, answered, expired, cancelled from
//! either side, refused unasked when too big, and stopped with the chat;
//! each told to both, with no byte moved by the core itself.

use super::*;
use crate::chat::core::files::{ProgressShown, clock_time, human_size};

/// alice (the caller: her offers are odd), taking files, chatting with
/// bob on link 1, call 7; bob announced `features`.
fn files_chat_with(features: &str) -> World {
    let mut w = World::registered_on("alice", "relay transfer relay-files");
    w.core.settings.files = Some(FileSettings {
        timeout: Duration::from_secs(30),
        max_receive: 10_000_000,
        progress: ProgressShown::Lines,
    });
    w.call("bob", 7);
    w.dialed(7, 1, Route::Direct);
    w.peer(1, &[&format!("FEATURES {features}")]);
    w.skip_all();
    w
}

fn files_chat() -> World {
    files_chat_with("ping-id bye-ack resume long-lines files")
}

impl World {
    /// `/send PATH`, the driver finding `name` of `size` bytes there.
    fn offer(&mut self, path: &str, name: &str, size: u64) -> FileId {
        self.typed(&format!("/send {path}"));
        let Output::OpenFile { id, path: asked } =
            self.take("a file opened", |o| matches!(o, Output::OpenFile { .. }))
        else {
            unreachable!()
        };
        assert_eq!(asked, path);
        self.input(Input::FileOpened {
            id,
            result: Ok(FileFacts {
                name: name.into(),
                size,
            }),
        });
        id
    }

    fn transfer(&mut self, id: FileId, event: TransferEvent) {
        self.input(Input::Transfer { id, event });
    }

    fn expect_stopped(&mut self, id: FileId) {
        self.expect(Output::StopTransfer { id });
    }
}

#[test]
fn our_features_offer_files_only_when_the_chat_takes_them() {
    let mut w = World::registered("alice");
    w.core.settings.files = Some(FileSettings::default());
    w.typed("bob");
    w.server(&format!("OK CALL bob 7 {TOKEN} 127.0.0.1:5000"));
    let Output::Dial { hello, .. } = w.take("a dial", |o| matches!(o, Output::Dial { .. })) else {
        unreachable!()
    };
    assert_eq!(
        hello[1].to_string(),
        "FEATURES ping-id bye-ack resume long-lines files"
    );
}

#[test]
fn a_file_offered_accepted_and_received_is_told_to_the_sender_with_size_time_and_speed() {
    let mut w = files_chat();
    let id = w.offer("/home/alice/report.pdf", "report.pdf", 2_400_000);
    assert_eq!(id, 1, "the caller's offers are odd");
    w.expect_to_peer(1, "FILE-OFFER 1 2400000 report.pdf");
    w.expect_line("Offered report.pdf (2.4 MB) to bob; waiting for an answer");
    // Chat lines go on meanwhile.
    w.typed("it is the final one");
    w.expect_to_peer(1, "MSG it is the final one");
    w.advance(Duration::from_secs(2));
    w.peer(1, &["FILE-ACCEPT 1"]);
    w.expect_line("bob accepted report.pdf; sending.");
    w.expect(Output::StartTransfer {
        id: 1,
        direction: Direction::Send,
        size: 2_400_000,
        opener: Opener::Dial,
    });
    w.transfer(1, TransferEvent::Progress(1_200_000));
    assert_eq!(
        w.core.transfer_status(w.now).as_deref(),
        Some("sending report.pdf  50%")
    );
    w.advance(Duration::from_secs(1));
    assert_eq!(
        w.core.transfer_status(w.now).as_deref(),
        Some("sending report.pdf  50%  1.2 MB/s  0:01 left")
    );
    w.transfer(1, TransferEvent::Finished { saved_as: None });
    w.advance(Duration::from_secs(1));
    w.peer(1, &["FILE-END 1 done"]);
    w.expect_line("bob received report.pdf (2.4 MB) in 2.0 s, 1.2 MB/s.");
    w.expect_stopped(1);
    assert_eq!(w.core.transfer_status(w.now), None);
    w.typed("/transfers");
    w.expect_line("No transfers.");
}

#[test]
fn an_offer_is_asked_answered_with_y_and_saved_under_a_safe_name() {
    let mut w = files_chat();
    w.peer(
        1,
        &["FILE-OFFER 2 2400000 ../../\x1b]0;owned\x07report.pdf"],
    );
    w.expect_line("bob sends ]0;ownedreport.pdf (2.4 MB): /accept or /refuse (y or n)");
    w.expect(Output::Bell);
    w.typed("y");
    w.expect_to_peer(1, "FILE-ACCEPT 2");
    w.expect(Output::StartTransfer {
        id: 2,
        direction: Direction::Receive {
            name: "]0;ownedreport.pdf".into(),
        },
        size: 2_400_000,
        opener: Opener::Dial,
    });
    // Once answered, y is text again.
    w.typed("y");
    w.expect_to_peer(1, "MSG y");
    // Progress is a line every tenth where output is no terminal.
    for bytes in [100_000, 250_000, 260_000, 500_000, 2_300_000] {
        w.transfer(2, TransferEvent::Progress(bytes));
    }
    let tenths: Vec<String> = w
        .fresh()
        .iter()
        .filter_map(|o| match o {
            Output::Line { text, .. } if text.starts_with("receiving") => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        tenths,
        [
            "receiving ]0;ownedreport.pdf 10%",
            "receiving ]0;ownedreport.pdf 20%",
            "receiving ]0;ownedreport.pdf 90%"
        ]
    );
    w.advance(Duration::from_secs(2));
    w.transfer(
        2,
        TransferEvent::Finished {
            saved_as: Some("]0;ownedreport (1).pdf".into()),
        },
    );
    w.expect_to_peer(1, "FILE-END 2 done");
    w.expect_line(
        "Received ]0;ownedreport.pdf (2.4 MB) from bob in 2.0 s, 1.2 MB/s; saved as ]0;ownedreport (1).pdf.",
    );
}

#[test]
fn a_refusal_by_n_or_refuse_is_told_to_both() {
    let mut w = files_chat();
    w.peer(1, &["FILE-OFFER 2 10 a.txt", "FILE-OFFER 4 20 b.txt"]);
    w.typed("n");
    w.expect_to_peer(1, "FILE-END 2 refused");
    w.expect_line("You refused a.txt.");
    w.typed("/refuse");
    w.expect_to_peer(1, "FILE-END 4 refused");
    w.expect_line("You refused b.txt.");
    w.typed("/refuse");
    w.expect_line("No file is offered to you.");
    w.typed("n");
    w.expect_to_peer(1, "MSG n");
    // Ours, refused by bob.
    let id = w.offer("notes.txt", "notes.txt", 5);
    w.peer(1, &[&format!("FILE-END {id} refused")]);
    w.expect_line("bob refused notes.txt.");
    w.expect_stopped(id);
}

#[test]
fn a_piped_y_is_text_and_only_accept_answers() {
    let mut w = files_chat();
    w.core.settings.typed_from = TypedFrom::Pipe;
    w.peer(1, &["FILE-OFFER 2 10 a.txt"]);
    w.expect_line("bob sends a.txt (10 bytes): /accept or /refuse");
    w.typed("y");
    w.expect_to_peer(1, "MSG y");
    w.typed("/accept");
    w.expect_to_peer(1, "FILE-ACCEPT 2");
}

#[test]
fn an_unanswered_offer_expires_on_both_sides() {
    let mut w = files_chat();
    if let Some(files) = &mut w.core.settings.files {
        files.timeout = Duration::from_secs(10);
    }
    let id = w.offer("notes.txt", "notes.txt", 5);
    w.peer(1, &["FILE-OFFER 2 10 a.txt"]);
    w.skip_all();
    w.advance(Duration::from_secs(9));
    assert_eq!(w.count(|o| matches!(o, Output::Line { .. })), 0);
    w.advance(Duration::from_secs(1));
    w.expect_to_peer(1, &format!("FILE-END {id} expired"));
    w.expect_line("bob did not answer the offer of notes.txt; it expired.");
    w.expect_to_peer(1, "FILE-END 2 expired");
    w.expect_line("The offer of a.txt expired unanswered.");
    // An answer too late finds no offer, and says so.
    w.peer(1, &[&format!("FILE-ACCEPT {id}")]);
    w.expect_to_peer(1, &format!("FILE-END {id} cancelled no such offer"));
    // The peer's own word that its offer expired ends it here too.
    w.peer(1, &["FILE-OFFER 4 10 b.txt"]);
    w.peer(1, &["FILE-END 4 expired"]);
    w.expect_line("The offer of b.txt expired unanswered.");
}

#[test]
fn either_side_cancels_and_several_transfers_need_a_name() {
    let mut w = files_chat();
    let a = w.offer("a.txt", "a.txt", 5);
    let b = w.offer("b.txt", "b.txt", 5);
    w.skip_all();
    w.typed("/cancel");
    w.expect_line("Several transfers: /cancel NAME says which");
    w.typed("/transfers");
    w.expect_line("a.txt offered, 30 s for an answer");
    w.expect_line("b.txt offered, 30 s for an answer");
    w.typed("/cancel b.txt");
    w.expect_to_peer(1, &format!("FILE-END {b} cancelled"));
    w.expect_stopped(b);
    w.expect_line("You cancelled b.txt.");
    w.peer(1, &[&format!("FILE-ACCEPT {a}")]);
    w.skip_all();
    // bob cancels it as it moves.
    w.peer(1, &[&format!("FILE-END {a} cancelled")]);
    w.expect_line("bob cancelled a.txt.");
    w.expect_stopped(a);
    w.typed("/cancel");
    w.expect_line("No transfer is under way.");
}

#[test]
fn a_failure_on_either_side_is_told_to_both_with_the_reason() {
    let mut w = files_chat();
    w.peer(1, &["FILE-OFFER 2 10 a.txt"]);
    w.typed("/accept");
    w.skip_all();
    w.transfer(2, TransferEvent::Failed("No space left on device".into()));
    w.expect_to_peer(1, "FILE-END 2 failed No space left on device");
    w.expect_stopped(2);
    w.expect_line("a.txt failed: No space left on device.");
    let id = w.offer("b.txt", "b.txt", 5);
    w.peer(1, &[&format!("FILE-ACCEPT {id}")]);
    w.peer(
        1,
        &[&format!(
            "FILE-END {id} failed more bytes than the 5 offered"
        )],
    );
    w.expect_line("b.txt failed on bob's side: more bytes than the 5 offered.");
}

#[test]
fn an_offer_over_max_receive_is_refused_unasked() {
    let mut w = files_chat();
    w.peer(1, &["FILE-OFFER 2 20000000 big.iso"]);
    w.expect_line(
        "bob offered big.iso (20.0 MB), over the 10.0 MB you take (--max-receive); refused.",
    );
    w.expect_to_peer(1, "FILE-END 2 too-big over the 10.0 MB alice takes");
    w.typed("y");
    w.expect_to_peer(1, "MSG y");
    // Told to the sender.
    let id = w.offer("big.iso", "big.iso", 5);
    w.peer(
        1,
        &[&format!("FILE-END {id} too-big over the 1.0 MB bob takes")],
    );
    w.expect_line("bob cannot take big.iso: over the 1.0 MB bob takes.");
}

#[test]
fn an_offer_under_our_own_numbers_or_a_number_taken_is_refused() {
    let mut w = files_chat();
    // alice is the caller: odd numbers are hers.
    w.peer(1, &["FILE-OFFER 3 10 a.txt"]);
    w.expect_to_peer(
        1,
        "FILE-END 3 refused that number is not the sender's to give",
    );
    w.peer(1, &["FILE-OFFER 2 10 a.txt", "FILE-OFFER 2 10 b.txt"]);
    w.expect_to_peer(
        1,
        "FILE-END 2 refused that number is not the sender's to give",
    );
    assert_eq!(
        w.count(|o| matches!(o, Output::Line { text, .. } if text.contains("b.txt"))),
        0
    );
}

#[test]
fn an_older_peer_is_offered_nothing() {
    let mut w = files_chat_with("ping-id bye-ack resume");
    w.typed("/send report.pdf");
    w.expect_line("bob's chat cannot receive files.");
    assert_eq!(w.count(|o| matches!(o, Output::OpenFile { .. })), 0);
    // A chat that takes no files says so.
    let mut w = files_chat();
    w.core.settings.files = None;
    w.typed("/send report.pdf");
    w.expect_line("This chat does not send files.");
    w.peer(1, &["FILE-OFFER 2 10 a.txt"]);
    w.expect_to_peer(1, "FILE-END 2 refused this chat does not take files");
}

#[test]
fn a_file_that_cannot_be_opened_is_not_offered() {
    let mut w = files_chat();
    w.typed("/send nothere.txt");
    let Output::OpenFile { id, .. } = w.take("open", |o| matches!(o, Output::OpenFile { .. }))
    else {
        unreachable!()
    };
    w.input(Input::FileOpened {
        id,
        result: Err("nothere.txt: No such file or directory".into()),
    });
    w.expect_line("Cannot send that file: nothere.txt: No such file or directory.");
    assert_eq!(
        w.count(|o| matches!(
            o,
            Output::Peer {
                msg: PeerMessage::FileOffer { .. },
                ..
            }
        )),
        0
    );
}

#[test]
fn q_ends_the_chat_and_its_transfers_and_says_so() {
    let mut w = files_chat();
    let id = w.offer("a.txt", "a.txt", 5);
    w.peer(1, &[&format!("FILE-ACCEPT {id}")]);
    w.peer(1, &["FILE-OFFER 2 10 b.txt"]);
    w.skip_all();
    w.typed("q");
    w.expect_line("You left the chat with bob.");
    w.expect_stopped(id);
    w.expect_line("a.txt stopped: the chat ended.");
    w.expect_stopped(2);
    w.expect_line("b.txt stopped: the chat ended.");
}

#[test]
fn a_broken_link_keeps_the_transfers_and_answers_wait_for_it() {
    let mut w = resumable_chat();
    w.core.settings.files = Some(FileSettings::default());
    w.peer(1, &["FEATURES ping-id bye-ack resume files"]);
    w.peer(1, &["FILE-OFFER 2 10 a.txt"]);
    w.skip_all();
    w.link_broke(1);
    w.expect_line("link to bob lost; reconnecting…");
    w.typed("/transfers");
    w.expect_line("a.txt offered to you (10 bytes)");
    w.typed("/send b.txt");
    w.expect_line("Not now: the link is down");
    assert_eq!(w.count(|o| matches!(o, Output::StopTransfer { .. })), 0);
}

#[test]
fn sizes_and_times_read_as_people_read_them() {
    assert_eq!(human_size(0), "0 bytes");
    assert_eq!(human_size(1), "1 byte");
    assert_eq!(human_size(999), "999 bytes");
    assert_eq!(human_size(2_400_000), "2.4 MB");
    assert_eq!(human_size(999_999), "1.0 MB");
    assert_eq!(human_size(4 << 30), "4.3 GB");
    assert_eq!(clock_time(5), "0:05");
    assert_eq!(clock_time(3725), "1:02:05");
}

/// `<show>.<expect>.<relay>`: a party's values on the wire.
const KEYS: &str = "0123456789abcdef0123456789abcdef.ffffffffffffffffffffffffffffffff.00000000000000000000000000000001";

fn keys() -> Keys {
    Keys::parse(KEYS).unwrap()
}

#[test]
fn the_caller_asks_the_server_for_a_transfers_values_and_opens_once_the_callee_is_ready() {
    let mut w = files_chat();
    let id = w.offer("/tmp/a.bin", "a.bin", 100);
    w.skip_all();
    // Offered, not taken: nothing is asked, and a FILE-READY is nothing.
    w.peer(1, &[&format!("FILE-READY {id}")]);
    assert_eq!(
        w.count(|o| matches!(o, Output::PeerReady { .. } | Output::Server(_))),
        0,
        "{:?}",
        w.fresh()
    );
    w.peer(1, &[&format!("FILE-ACCEPT {id}")]);
    w.take("the start", |o| matches!(o, Output::StartTransfer { .. }));
    w.expect_request(&format!("TRANSFER bob {id}"));
    w.server(&format!("OK TRANSFER bob 7 {id} {KEYS}"));
    w.expect(Output::TransferKeys {
        id,
        call: 7,
        keys: keys(),
        relayed: false,
    });
    w.peer(1, &[&format!("FILE-READY {id}")]);
    w.expect(Output::PeerReady { id });
}

#[test]
fn a_refused_transfer_request_fails_the_transfer_on_both_sides() {
    let mut w = files_chat();
    let id = w.offer("/tmp/a.bin", "a.bin", 100);
    w.peer(1, &[&format!("FILE-ACCEPT {id}")]);
    w.expect_request(&format!("TRANSFER bob {id}"));
    w.server("ERR not-in-call you are not in a call with bob");
    w.expect_to_peer(
        1,
        &format!(
            "FILE-END {id} failed the server gave its connection no values (you are not in a call with bob)"
        ),
    );
    w.expect_stopped(id);
    w.expect_line("a.bin failed: the server gave its connection no values");
}

#[test]
fn the_callee_keeps_values_that_come_before_the_acceptance_and_says_when_it_has_them() {
    let mut w = World::registered_on("bob", "relay transfer relay-files");
    w.core.settings.files = Some(FileSettings::default());
    w.server(&format!("EVENT INCOMING alice 9 {TOKEN}"));
    w.hello(3, "alice", 9, TOKEN);
    w.peer(3, &["FEATURES resume files"]);
    w.skip_all();
    let id = w.offer("/tmp/b.bin", "b.bin", 100);
    assert_eq!(id % 2, 0, "the callee's offers are even");
    w.skip_all();
    // The server's word overtakes alice's FILE-ACCEPT: kept, not used.
    w.server(&format!("EVENT TRANSFER alice 9 {id} {KEYS}"));
    assert_eq!(
        w.count(|o| matches!(o, Output::TransferKeys { .. })),
        0,
        "{:?}",
        w.fresh()
    );
    // Someone else's values for it are never taken.
    w.server(&format!(
        "EVENT TRANSFER mallory 9 {id} {OTHER_TOKEN}.{OTHER_TOKEN}.{OTHER_TOKEN}"
    ));
    w.peer(3, &[&format!("FILE-ACCEPT {id}")]);
    w.take("the start", |o| matches!(o, Output::StartTransfer { .. }));
    w.expect(Output::TransferKeys {
        id,
        call: 9,
        keys: keys(),
        relayed: false,
    });
    w.expect_to_peer(3, &format!("FILE-READY {id}"));
    // The callee never asks the server itself.
    assert_eq!(
        w.count(|o| matches!(o, Output::Server(Request::Transfer { .. }))),
        0
    );
}

#[test]
fn a_relayed_chat_sends_files_through_the_relay_when_the_server_relays_them() {
    for (features, allowed) in [
        ("relay transfer relay-files", true),
        ("relay transfer", false),
    ] {
        let mut w = World::registered_on("alice", features);
        w.core.settings.files = Some(FileSettings::default());
        w.call("bob", 7);
        w.dialed(7, 1, Route::Relayed);
        w.peer(1, &["FEATURES resume files"]);
        w.skip_all();
        if !allowed {
            w.typed("/send /tmp/a.bin");
            w.expect_line(
                "This chat is relayed, and the server does not relay files (--no-relay-files).",
            );
            assert_eq!(w.count(|o| matches!(o, Output::OpenFile { .. })), 0);
            continue;
        }
        let id = w.offer("/tmp/a.bin", "a.bin", 100);
        w.peer(1, &[&format!("FILE-ACCEPT {id}")]);
        w.expect_request(&format!("TRANSFER bob {id}"));
        w.server(&format!("OK TRANSFER bob 7 {id} {KEYS}"));
        w.expect(Output::TransferKeys {
            id,
            call: 7,
            keys: keys(),
            relayed: true,
        });
    }
}

#[test]
fn an_older_server_sends_no_files() {
    let mut w = files_chat();
    w.core.server.features = vec!["relay".into()];
    w.typed("/send /tmp/a.bin");
    w.expect_line("This server cannot connect files (an older server): files cannot be sent.");
    assert_eq!(w.count(|o| matches!(o, Output::OpenFile { .. })), 0);
}

#[test]
fn a_cut_data_connection_waits_a_moment_for_the_peers_reason_then_gives_its_own() {
    let mut w = files_chat();
    let id = w.offer("/tmp/a.bin", "a.bin", 1000);
    w.peer(1, &[&format!("FILE-ACCEPT {id}")]);
    w.skip_all();
    // bob's disk filled: we see only a reset, and bob says why.
    w.transfer(id, TransferEvent::Cut("Connection reset by peer".into()));
    assert_eq!(w.count(|o| matches!(o, Output::Line { .. })), 0);
    w.peer(1, &[&format!("FILE-END {id} failed File too large")]);
    w.expect_line("a.bin failed on bob's side: File too large.");
    w.advance(Duration::from_secs(5));
    assert_eq!(w.count(|o| matches!(o, Output::Line { .. })), 0);
    // Nothing from bob: our own reason, told to both, after the wait.
    let id = w.offer("/tmp/b.bin", "b.bin", 1000);
    w.peer(1, &[&format!("FILE-ACCEPT {id}")]);
    w.skip_all();
    w.transfer(id, TransferEvent::Cut("Broken pipe".into()));
    w.advance(Duration::from_secs(1));
    assert_eq!(w.count(|o| matches!(o, Output::Line { .. })), 0);
    w.advance(Duration::from_secs(2));
    w.expect_to_peer(1, &format!("FILE-END {id} failed Broken pipe"));
    w.expect(Output::StopTransfer { id });
    w.expect_line("b.bin failed: Broken pipe.");
}

#[test]
fn a_transfer_cut_with_the_chats_link_starts_again_once_the_chat_is_back() {
    let mut w = files_chat();
    let id = w.offer("/tmp/a.bin", "a.bin", 1000);
    w.peer(1, &[&format!("FILE-ACCEPT {id}")]);
    w.expect_request(&format!("TRANSFER bob {id}"));
    w.server(&format!("OK TRANSFER bob 7 {id} {KEYS}"));
    w.transfer(id, TransferEvent::Progress(400));
    w.skip_all();
    w.link_broke(1);
    w.expect_request("LOCATE bob");
    w.transfer(id, TransferEvent::Cut("Connection reset by peer".into()));
    // Held while the link is down: no failure past the cut's wait.
    w.advance(Duration::from_secs(3));
    assert_eq!(
        w.count(|o| matches!(o, Output::StopTransfer { .. })),
        0,
        "{:?}",
        w.fresh()
    );
    assert!(
        !w.fresh()
            .iter()
            .any(|o| matches!(o, Output::Line { text, .. } if text.contains("a.bin")))
    );
    w.server("OK LOCATED bob 127.0.0.3:5000");
    w.take("a redial", |o| matches!(o, Output::Dial { .. }));
    w.brought_back(7, 9, "127.0.0.3:5000", Route::Direct, token(OTHER_TOKEN), 0);
    w.expect(Output::StartTransfer {
        id,
        direction: Direction::Send,
        size: 1000,
        opener: Opener::Dial,
    });
    // Fresh values are asked for.
    w.expect_request(&format!("TRANSFER bob {id}"));
}

#[test]
fn a_chat_renumbered_by_the_server_keeps_its_transfers() {
    let mut w = files_chat();
    let id = w.offer("/tmp/a.bin", "a.bin", 1000);
    w.peer(1, &[&format!("FILE-ACCEPT {id}")]);
    w.expect_request(&format!("TRANSFER bob {id}"));
    w.server(&format!("OK TRANSFER bob 7 {id} {KEYS}"));
    w.skip_all();
    // The server goes and comes back: the same chat, under a new number.
    w.input(Input::ServerLost(ServerLoss::Closed));
    w.input(back_at("127.0.0.1:4000"));
    w.server("OK FEATURES relay transfer relay-files");
    w.server("OK WELCOME alice 10");
    w.expect_request("RESUME bob");
    w.server("OK RESUMED bob 40");
    assert_eq!(
        w.count(|o| matches!(o, Output::StopTransfer { .. })),
        0,
        "{:?}",
        w.fresh()
    );
    w.typed("/transfers");
    w.expect_line("sending a.bin");
    w.transfer(id, TransferEvent::Progress(1000));
    w.transfer(id, TransferEvent::Finished { saved_as: None });
    w.peer(1, &[&format!("FILE-END {id} done")]);
    w.expect_line("bob received a.bin (1.0 KB)");
}

#[test]
fn what_we_say_of_a_transfer_while_the_link_is_down_reaches_the_peer_once_it_is_back() {
    let mut w = files_chat();
    w.peer(1, &["FILE-OFFER 2 10 a.txt", "FILE-OFFER 4 20 b.txt"]);
    w.typed("/accept");
    w.typed("/accept");
    w.server(&format!("OK TRANSFER bob 7 2 {KEYS}"));
    w.server(&format!("OK TRANSFER bob 7 4 {KEYS}"));
    w.skip_all();
    w.link_broke(1);
    w.expect_request("LOCATE bob");
    // a.txt arrives whole while the link is down; b.txt is cancelled.
    w.transfer(
        2,
        TransferEvent::Finished {
            saved_as: Some("a.txt".into()),
        },
    );
    w.expect_line("Received a.txt");
    w.typed("/cancel b.txt");
    w.expect_line("You cancelled b.txt.");
    w.server("OK LOCATED bob 127.0.0.3:5000");
    w.take("a redial", |o| matches!(o, Output::Dial { .. }));
    w.brought_back(7, 9, "127.0.0.3:5000", Route::Direct, token(OTHER_TOKEN), 0);
    // bob learns a.txt arrived (else he sends it again, and is told it
    // failed), and that b.txt was cancelled.
    w.expect_to_peer(9, "FILE-END 2 done");
    w.expect_to_peer(9, "FILE-END 4 cancelled");
}

#[test]
fn a_receiver_that_never_says_a_sent_file_arrived_fails_it_after_the_file_timeout() {
    let mut w = files_chat();
    let settings = w.core.settings.files.as_mut().unwrap();
    settings.timeout = Duration::from_secs(10);
    let id = w.offer("/tmp/a.bin", "a.bin", 1000);
    w.peer(1, &[&format!("FILE-ACCEPT {id}")]);
    w.server(&format!("OK TRANSFER bob 7 {id} {KEYS}"));
    w.transfer(id, TransferEvent::Finished { saved_as: None });
    w.skip_all();
    // Its word is waited for, and shown as waited for.
    w.advance(Duration::from_secs(9));
    assert_eq!(
        w.core.transfer_status(w.now).as_deref(),
        Some("sending a.bin  100%")
    );
    let told = |o: &Output| matches!(o, Output::Line { .. } | Output::StopTransfer { .. });
    assert_eq!(w.count(told), 0, "{:#?}", w.fresh());
    w.advance(Duration::from_secs(1));
    w.expect_to_peer(
        1,
        &format!("FILE-END {id} failed bob never said it arrived"),
    );
    w.expect_stopped(id);
    w.expect_line("a.bin failed: bob never said it arrived.");
    assert_eq!(w.core.transfer_status(w.now), None);
}

#[test]
fn a_files_done_said_just_before_the_link_broke_is_said_again_once_it_is_back() {
    let mut w = files_chat();
    w.peer(1, &["FILE-OFFER 2 10 a.txt"]);
    w.typed("/accept");
    w.server(&format!("OK TRANSFER bob 7 2 {KEYS}"));
    w.transfer(
        2,
        TransferEvent::Finished {
            saved_as: Some("a.txt".into()),
        },
    );
    w.expect_to_peer(1, "FILE-END 2 done");
    // The link breaks with that line perhaps still in it: bob would send
    // the file again, and be told it failed.
    w.link_broke(1);
    w.expect_request("LOCATE bob");
    w.server("OK LOCATED bob 127.0.0.3:5000");
    w.take("a redial", |o| matches!(o, Output::Dial { .. }));
    w.brought_back(7, 9, "127.0.0.3:5000", Route::Direct, token(OTHER_TOKEN), 0);
    w.expect_to_peer(9, "FILE-END 2 done");
}
