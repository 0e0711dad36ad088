//! The naming rules at the real server: names that read the same are one
//! name (NFKC_Casefold), so are names that look the same (the UTS #39
//! skeleton), names that could pass for another are refused, and a name is
//! listed in NFC whatever form it was typed in.

mod common;

use common::{Raw, Server, registered, server_list};

fn register(server: &Server, name: &str) -> (Raw, String) {
    let mut raw = Raw::connect(server.addr);
    let reply = raw.ask(&format!("REGISTER {name} 127.0.0.1:9"));
    (raw, reply)
}

/// Why a look-alike is refused: its name is taken (it reads the same as
/// one registered: the reply names that one), or it is no name at all
/// (the reply says why).
enum Refused {
    Taken,
    BadName(&'static str),
}

#[test]
fn each_look_alike_pair_registers_once_and_calls_reach_only_the_first() {
    use Refused::{BadName, Taken};
    let server = Server::start();
    let pairs = [
        ("ΟΔΥΣΣΕΥΣ", "οδυσσευσ", Taken),
        (
            "alice",
            "alice\u{34f}",
            BadName("invisible characters (U+034F)"),
        ),
        (
            "alice",
            "alice\u{fe0f}",
            BadName("invisible characters (U+FE0F)"),
        ),
        (
            "alice",
            "alice\u{e0100}",
            BadName("invisible characters (U+E0100)"),
        ),
        (
            "alice",
            "alice\u{180b}",
            BadName("invisible characters (U+180B)"),
        ),
        (
            "bob",
            "bob\u{2800}",
            BadName("\"\u{2800}\" (U+2800, Braille) among Latin letters"),
        ),
        ("café", "cafe\u{301}", Taken),
        (
            "alice",
            "\u{430}lice",
            BadName("\"\u{430}\" (U+0430, Cyrillic) among Latin letters"),
        ),
        ("ſam", "sam", Taken),
        ("ｎｎ", "nn", Taken),
        ("ß", "SS", Taken),
    ];
    // Each first one at a port of its own, so a call says whom it found.
    let mut first_ones: Vec<(&str, Raw, String)> = Vec::new();
    for (first, second, why) in pairs {
        if first_ones.iter().all(|(name, ..)| name != &first) {
            let at = format!("127.0.0.1:{}", 1000 + first_ones.len());
            let mut raw = Raw::connect(server.addr);
            let reply = raw.ask(&format!("REGISTER {first} {at}"));
            assert!(
                reply.starts_with(&format!("OK WELCOME {first} ")),
                "{reply}"
            );
            first_ones.push((first, raw, at));
        }
        let (_raw, reply) = register(&server, second);
        let expected = match why {
            Taken => format!("ERR name-taken the name {first} is taken"),
            BadName(_) => "ERR bad-name a name may not ".to_string(),
        };
        assert!(
            reply.starts_with(&expected),
            "{second:?} after {first:?}: {reply}"
        );
        if let BadName(reason) = why {
            assert!(reply.contains(reason), "{second:?}: {reply}");
        }
    }
    // aσ and aΣ: Latin and Greek are not one script, so neither registers.
    for mixed in ["aσ", "aΣ"] {
        let (_raw, reply) = register(&server, mixed);
        assert!(
            reply.starts_with("ERR bad-name") && reply.contains(", Greek) among Latin letters"),
            "{mixed}: {reply}"
        );
    }
    // A call to a look-alike of a registered name rings that one: the
    // caller gets its address, and it (not another) hears the call.
    let mut caller = registered(&server, "caller");
    for (look_alike, first) in [
        ("BOB", "bob"),
        ("CAFE\u{301}", "café"),
        ("SAM", "ſam"),
        ("ss", "ß"),
    ] {
        let reply = caller.ask(&format!("CALL {look_alike}"));
        let words: Vec<&str> = reply.split(' ').collect();
        let (_, callee, at) = first_ones.iter_mut().find(|(n, ..)| *n == first).unwrap();
        assert_eq!(words[..3], ["OK", "CALL", first], "{reply}");
        assert_eq!(words[5], at.as_str(), "{reply}");
        let (call, token) = (words[3], words[4]);
        assert_eq!(
            callee.line(),
            format!("EVENT INCOMING caller {call} {token}")
        );
        assert_eq!(
            caller.ask(&format!("HANGUP {call}")),
            format!("OK HANGUP {call}")
        );
        assert_eq!(callee.line(), format!("EVENT HANGUP {call} caller"));
    }
    // Nobody else heard a thing.
    for (name, raw, _) in &mut first_ones {
        assert_eq!(raw.ask("PING"), "OK PONG", "{name} was told something");
    }
}

/// Issue #21's look-alikes: each is a valid name, refused beside its
/// original with a reply that names the one it looks like, and free again
/// once that one has quit.
#[test]
fn a_look_alike_of_a_name_online_is_refused_naming_the_one_it_looks_like() {
    let server = Server::start();
    let pairs = [
        ("alice", "al\u{131}\u{307}ce"),
        ("alice", "a\u{1c0}ice"),
        ("alice", "\u{251}lice"),
        ("paypal", "payp\u{251}l"),
        ("greg", "\u{261}reg"),
        ("ace", "\u{430}\u{441}\u{435}"),
        ("Alice", "AIice"),
    ];
    for (original, look_alike) in pairs {
        let mut first = registered(&server, original);
        let (_raw, reply) = register(&server, look_alike);
        assert_eq!(
            reply,
            format!(
                "ERR name-taken \"{look_alike}\" looks like \"{original}\", who is online; pick another"
            ),
            "{look_alike:?} beside {original:?}"
        );
        assert!(
            server_list(&server)
                .iter()
                .all(|row| !row.contains(look_alike)),
            "{look_alike:?} was listed"
        );
        assert_eq!(first.ask("QUIT"), "OK BYE");
        let (mut again, reply) = register(&server, look_alike);
        assert!(
            reply.starts_with(&format!("OK WELCOME {look_alike} ")),
            "{look_alike:?} once {original:?} quit: {reply}"
        );
        assert_eq!(again.ask("QUIT"), "OK BYE");
    }
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
