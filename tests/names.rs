//! The naming rules at the real server: names that read the same are one
//! name (NFKC_Casefold), names that could pass for another are refused, and
//! a name is listed in NFC whatever form it was typed in.

mod common;

use common::{Raw, Server, registered, server_list};

fn register(server: &Server, name: &str) -> (Raw, String) {
    let mut raw = Raw::connect(server.addr);
    let reply = raw.ask(&format!("REGISTER {name} 127.0.0.1:9"));
    (raw, reply)
}

#[test]
fn each_look_alike_pair_registers_once_and_calls_reach_only_the_first() {
    let server = Server::start();
    let pairs = [
        ("ΟΔΥΣΣΕΥΣ", "οδυσσευσ"),
        ("alice", "alice\u{34f}"),
        ("alice", "alice\u{fe0f}"),
        ("alice", "alice\u{e0100}"),
        ("alice", "alice\u{180b}"),
        ("bob", "bob\u{2800}"),
        ("café", "cafe\u{301}"),
        ("alice", "\u{430}lice"),
        ("ſam", "sam"),
        ("ｎｎ", "nn"),
        ("ß", "SS"),
    ];
    let mut first_ones = Vec::new();
    for (first, second) in pairs {
        if first_ones.iter().all(|(name, _)| name != &first) {
            first_ones.push((first, registered(&server, first)));
        }
        let (_raw, reply) = register(&server, second);
        assert!(
            reply.starts_with("ERR name-taken") || reply.starts_with("ERR bad-name"),
            "{second:?} after {first:?}: {reply}"
        );
    }
    // aσ and aΣ: Latin and Greek are not one script, so neither registers.
    for mixed in ["aσ", "aΣ"] {
        let (_raw, reply) = register(&server, mixed);
        assert!(reply.starts_with("ERR bad-name"), "{mixed}: {reply}");
    }
    // A call to the look-alike reaches the one registered name.
    let (_, caller) = first_ones.iter_mut().find(|(n, _)| *n == "bob").unwrap();
    let reply = caller.ask("LOOKUP BOB");
    assert!(reply.starts_with("OK FOUND bob "), "{reply}");
    let reply = caller.ask("LOOKUP CAFE\u{301}");
    assert!(reply.starts_with("OK FOUND café "), "{reply}");
}

#[test]
fn format_characters_and_a_reserved_q_are_refused_with_the_reason() {
    let server = Server::start();
    for (name, reason) in [
        ("a\u{600}", "invisible"),
        ("a\u{13430}", "invisible"),
        ("a\u{1bca0}", "invisible"),
        ("\u{2800}", "letter or digit"),
        ("ｑ", "reserved"),
        ("/x", "\"/\""),
    ] {
        let (_raw, reply) = register(&server, name);
        assert!(
            reply.starts_with("ERR bad-name") && reply.contains(reason),
            "{name:?}: {reply}"
        );
    }
}

#[test]
fn a_decomposed_name_is_listed_in_nfc() {
    let server = Server::start();
    let _cafe = registered(&server, "cafe\u{301}");
    assert!(
        server_list(&server).contains(&"USER café free".to_string()),
        "{:?}",
        server_list(&server)
    );
}
