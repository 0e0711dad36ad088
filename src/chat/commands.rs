//! What a typed line means: text, `q`, a slash command, or the answer to a
//! ring. Pure, so every spelling is a unit test.
//!
//! One rule for `q`: a line that is `q` once the spaces around it are
//! trimmed ends the chat (at the list: the program); any other line is text
//! (`Q` is text, `q!` is text). A line starting with `/` is a command, its
//! verb in any case (`/WHO` is `/who`); `//text` is the text `/text`, and
//! `/say TEXT` sends TEXT exactly as typed, so `/say q` sends a lone `q`.
//! A ring is answered `y`, `yes`, `n` or `no`, in any case ([`answer`]).

use crate::protocol::MAX_AWAY_MESSAGE;

/// A typed line, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// Text to send (in a chat) or a name to call (at the list).
    Text(&'a str),
    /// `q`, `/q` or `/quit`.
    Quit,
    /// `/help`.
    Help,
    /// `/who`: who is online, without leaving where you are.
    Who,
    /// `/call NAME`.
    Call(&'a str),
    /// `/ignore NAME`: no rings from NAME this session; `/ignore` alone
    /// lists whom.
    Ignore(Option<&'a str>),
    /// `/unignore NAME`: NAME's calls ring again.
    Unignore(&'a str),
    /// `/say TEXT`, or `//text` (as `/text`).
    Say(&'a str),
    /// `/me waves`: an action line, `* alice waves`.
    Me(&'a str),
    /// `/away [message]`: calls are refused with the message, and told
    /// later as missed calls.
    Away(&'a str),
    /// `/back`: calls ring again.
    Back,
    /// `/send PATH`: offer the file at PATH to the chat's peer.
    Send(&'a str),
    /// `/accept`: take the file the peer offers.
    Accept,
    /// `/refuse`: say no to the file the peer offers.
    Refuse,
    /// `/cancel [NAME]`: stop a transfer (the only one, or NAME's).
    Cancel(Option<&'a str>),
    /// `/transfers`: the transfers under way.
    Transfers,
    /// A command used wrongly; the text says why.
    Unknown(String),
    /// `/verb`, which is no command.
    NoSuch(&'a str),
}

impl Command<'_> {
    /// What to tell of `/verb`, which is no command, at the list.
    pub fn no_such(verb: &str) -> String {
        format!("There is no command /{verb}; /help lists them.")
    }

    /// The same in a chat, where it could have been meant as text.
    pub fn no_such_in_chat(verb: &str) -> String {
        format!(
            "There is no command /{verb}; /help lists them, //{verb} sends the text /{verb}; nothing was sent."
        )
    }

    /// Whether the command means the same wherever a registered user is
    /// (at the list, calling, rung, in a chat, reconnecting): it changes
    /// no place, so it is done at once.
    pub fn anywhere(&self) -> bool {
        matches!(
            self,
            Command::Help
                | Command::Who
                | Command::Ignore(_)
                | Command::Unignore(_)
                | Command::Away(_)
                | Command::Back
        )
    }
}

/// The commands, as `/help` shows them.
pub const HELP: &[&str] = &[
    "q or /quit      end the chat; at the list, leave",
    "/who            who is online",
    "/call NAME      call NAME (at the list; typing the name does the same)",
    "/ignore NAME    no rings from NAME this session (/ignore alone lists them)",
    "/unignore NAME  NAME's calls ring again",
    "/away [TEXT]    calls are refused (with TEXT) and told to you later",
    "/back           calls ring again",
    "/me TEXT        an action: /me waves shows * you waves",
    "/send PATH      offer the file at PATH to the peer (in a chat)",
    "/accept         take the file offered (y on an empty line does too)",
    "/refuse         say no to the file offered (n on an empty line)",
    "/cancel [NAME]  stop a transfer (NAME's, when there are several)",
    "/transfers      the transfers under way",
    "/say TEXT       send TEXT exactly as typed (/say q sends a lone q)",
    "//text          send /text",
    "/help           this list",
    "y or n          answer a ring (yes and no too, in any case)",
];

/// Reads one typed line.
pub fn parse(line: &str) -> Command<'_> {
    // Most lines are text at their first byte: no trim needed to know.
    if line
        .as_bytes()
        .first()
        .is_some_and(|&b| b.is_ascii_graphic() && b != b'q' && b != b'/')
    {
        return Command::Text(line);
    }
    if line.trim() == "q" {
        return Command::Quit;
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Command::Text(line);
    };
    if rest.starts_with('/') {
        return Command::Say(rest);
    }
    let (verb, arg) = match rest.split_once(' ') {
        Some((verb, arg)) => (verb, arg),
        None => (rest, ""),
    };
    let name = arg.trim();
    let one_name = !name.is_empty() && !name.contains(' ');
    match verb.to_ascii_lowercase().as_str() {
        "q" | "quit" if name.is_empty() => Command::Quit,
        "help" if name.is_empty() => Command::Help,
        "who" if name.is_empty() => Command::Who,
        "back" if name.is_empty() => Command::Back,
        "send" if !name.is_empty() => Command::Send(name),
        "send" => Command::Unknown("/send takes the file to offer: /send PATH".into()),
        "accept" if name.is_empty() => Command::Accept,
        "refuse" if name.is_empty() => Command::Refuse,
        "cancel" if name.is_empty() => Command::Cancel(None),
        "cancel" => Command::Cancel(Some(name)),
        "transfers" if name.is_empty() => Command::Transfers,
        "call" if one_name => Command::Call(name),
        "call" => Command::Unknown("/call takes one name: /call NAME".into()),
        "ignore" if name.is_empty() => Command::Ignore(None),
        "ignore" if one_name => Command::Ignore(Some(name)),
        "ignore" => Command::Unknown("/ignore takes one name: /ignore NAME".into()),
        "unignore" if one_name => Command::Unignore(name),
        "unignore" => Command::Unknown("/unignore takes one name: /unignore NAME".into()),
        // Exactly as typed, after the one space that ends the verb.
        "say" if !arg.is_empty() => Command::Say(arg),
        "say" => Command::Unknown("/say takes the text to send: /say TEXT".into()),
        "me" if !name.is_empty() => Command::Me(name),
        "me" => Command::Unknown("/me takes what you do: /me waves".into()),
        "away" if name.len() <= MAX_AWAY_MESSAGE => Command::Away(name),
        "away" => Command::Unknown(format!(
            "an away message is at most {MAX_AWAY_MESSAGE} bytes"
        )),
        "q" | "quit" | "help" | "who" | "back" | "accept" | "refuse" | "transfers" => {
            Command::Unknown(format!("/{verb} takes nothing after it"))
        }
        _ => Command::NoSuch(verb),
    }
}

/// An answer to a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
}

/// Reads a line typed while a call rings: `y`, `yes`, `n` or `no`, in any
/// case and with spaces around it, answers; anything else does not.
pub fn answer(line: &str) -> Option<Answer> {
    let word = line.trim();
    if ["y", "yes"].iter().any(|w| word.eq_ignore_ascii_case(w)) {
        Some(Answer::Yes)
    } else if ["n", "no"].iter().any(|w| word.eq_ignore_ascii_case(w)) {
        Some(Answer::No)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{Answer, Command, answer, parse};

    #[test]
    fn q_is_one_rule_everywhere() {
        for line in ["q", " q", "q ", "\tq  "] {
            assert_eq!(parse(line), Command::Quit, "{line:?}");
        }
        for line in ["Q", "q!", "qq", "q q"] {
            assert_eq!(parse(line), Command::Text(line), "{line:?}");
        }
        assert_eq!(parse("/quit"), Command::Quit);
        assert_eq!(parse("/q"), Command::Quit);
        assert_eq!(parse("/Q"), Command::Quit);
    }

    #[test]
    fn slash_commands() {
        assert_eq!(parse("/help"), Command::Help);
        assert_eq!(parse("/who"), Command::Who);
        assert_eq!(parse("/call bob"), Command::Call("bob"));
        assert_eq!(parse("/call  bob "), Command::Call("bob"));
        assert_eq!(parse("/ignore mallory"), Command::Ignore(Some("mallory")));
        assert_eq!(parse("/ignore"), Command::Ignore(None));
        assert_eq!(parse("/unignore mallory"), Command::Unignore("mallory"));
        assert_eq!(parse("/say q"), Command::Say("q"));
        assert_eq!(parse("/say  two  spaces "), Command::Say(" two  spaces "));
        assert_eq!(parse("//etc/passwd"), Command::Say("/etc/passwd"));
        assert_eq!(parse("/me waves  hello "), Command::Me("waves  hello"));
        assert_eq!(parse("/away"), Command::Away(""));
        assert_eq!(parse("/away  at lunch "), Command::Away("at lunch"));
        assert_eq!(parse("/back"), Command::Back);
        assert_eq!(
            parse("/send my report.pdf "),
            Command::Send("my report.pdf")
        );
        assert_eq!(parse("/accept"), Command::Accept);
        assert_eq!(parse("/Refuse"), Command::Refuse);
        assert_eq!(parse("/cancel"), Command::Cancel(None));
        assert_eq!(parse("/cancel a b.txt"), Command::Cancel(Some("a b.txt")));
        assert_eq!(parse("/transfers"), Command::Transfers);
        assert!(matches!(parse("/send"), Command::Unknown(_)));
        assert!(matches!(parse("/accept it"), Command::Unknown(_)));
    }

    #[test]
    fn verbs_are_read_in_any_case_and_their_arguments_as_typed() {
        assert_eq!(parse("/WHO"), Command::Who);
        assert_eq!(parse("/Help"), Command::Help);
        assert_eq!(parse("/QUIT"), Command::Quit);
        assert_eq!(parse("/CALL Bob"), Command::Call("Bob"));
        assert_eq!(parse("/UnIgnore Bob"), Command::Unignore("Bob"));
        assert_eq!(parse("/ME Waves"), Command::Me("Waves"));
        assert_eq!(parse("/SAY Hi"), Command::Say("Hi"));
        assert_eq!(parse("/AWAY Lunch"), Command::Away("Lunch"));
        // An unknown verb is named as typed.
        assert_eq!(parse("/FROB"), Command::NoSuch("FROB"));
    }

    #[test]
    fn a_wrong_command_is_said_and_sends_nothing() {
        assert!(matches!(parse("/frob"), Command::NoSuch("frob")));
        assert!(matches!(parse("/call"), Command::Unknown(_)));
        assert!(matches!(parse("/call a b"), Command::Unknown(_)));
        assert!(matches!(parse("/who cares"), Command::Unknown(_)));
        assert!(matches!(parse("/back now"), Command::Unknown(_)));
        assert!(matches!(parse("/unignore"), Command::Unknown(_)));
        assert!(matches!(parse("/"), Command::NoSuch("")));
        let long = format!("/away {}", "x".repeat(201));
        assert!(matches!(parse(&long), Command::Unknown(_)));
    }

    #[test]
    fn say_and_me_without_text_say_how_they_are_used() {
        for (line, usage) in [
            ("/say", "/say TEXT"),
            ("/say ", "/say TEXT"),
            ("/me", "/me waves"),
            ("/me   ", "/me waves"),
        ] {
            match parse(line) {
                Command::Unknown(why) => assert!(why.contains(usage), "{line:?}: {why}"),
                other => panic!("{line:?}: {other:?}"),
            }
        }
        // Spaces after /say are what it was asked to send.
        assert_eq!(parse("/say  "), Command::Say(" "));
    }

    #[test]
    fn text_is_text() {
        assert_eq!(parse("hello"), Command::Text("hello"));
        assert_eq!(parse(""), Command::Text(""));
        assert_eq!(parse(" /help"), Command::Text(" /help"));
    }

    #[test]
    fn a_ring_is_answered_yes_or_no_in_any_case() {
        for line in ["y", "Y", "yes", "YES", "Yes", " yes "] {
            assert_eq!(answer(line), Some(Answer::Yes), "{line:?}");
        }
        for line in ["n", "N", "no", "NO", "nO", "\tno"] {
            assert_eq!(answer(line), Some(Answer::No), "{line:?}");
        }
        for line in ["", "ye", "yess", "nope", "y y", "q", "/y"] {
            assert_eq!(answer(line), None, "{line:?}");
        }
    }
}
