//! What a typed line means: text, `q`, or a slash command. Pure, so every
//! spelling is a unit test.
//!
//! One rule for `q`: a line that is `q` once the spaces around it are
//! trimmed ends the chat (at the list: the program); any other line is text
//! (`Q` is text, `q!` is text). A line starting with `/` is a command;
//! `//text` is the text `/text`, and `/say TEXT` sends TEXT exactly as
//! typed, so `/say q` sends a lone `q`.

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
    /// `/say TEXT`, or `//text` (as `/text`).
    Say(&'a str),
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
}

/// The commands, as `/help` shows them.
pub const HELP: &[&str] = &[
    "q or /quit      end the chat; at the list, leave",
    "/who            who is online",
    "/call NAME      call NAME (at the list; typing the name does the same)",
    "/ignore NAME    no rings from NAME this session (/ignore alone lists them)",
    "/say TEXT       send TEXT exactly as typed (/say q sends a lone q)",
    "//text          send /text",
    "/help           this list",
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
    match verb {
        "q" | "quit" if name.is_empty() => Command::Quit,
        "help" if name.is_empty() => Command::Help,
        "who" if name.is_empty() => Command::Who,
        "call" if !name.is_empty() && !name.contains(' ') => Command::Call(name),
        "call" => Command::Unknown("/call takes one name: /call NAME".into()),
        "ignore" if name.is_empty() => Command::Ignore(None),
        "ignore" if !name.contains(' ') => Command::Ignore(Some(name)),
        "ignore" => Command::Unknown("/ignore takes one name: /ignore NAME".into()),
        // Exactly as typed, after the one space that ends the verb.
        "say" => Command::Say(arg),
        "q" | "quit" | "help" | "who" => {
            Command::Unknown(format!("/{verb} takes nothing after it"))
        }
        _ => Command::NoSuch(verb),
    }
}

#[cfg(test)]
mod tests {
    use super::{Command, parse};

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
    }

    #[test]
    fn slash_commands() {
        assert_eq!(parse("/help"), Command::Help);
        assert_eq!(parse("/who"), Command::Who);
        assert_eq!(parse("/call bob"), Command::Call("bob"));
        assert_eq!(parse("/call  bob "), Command::Call("bob"));
        assert_eq!(parse("/ignore mallory"), Command::Ignore(Some("mallory")));
        assert_eq!(parse("/ignore"), Command::Ignore(None));
        assert_eq!(parse("/say q"), Command::Say("q"));
        assert_eq!(parse("/say  two  spaces "), Command::Say(" two  spaces "));
        assert_eq!(parse("/say"), Command::Say(""));
        assert_eq!(parse("//etc/passwd"), Command::Say("/etc/passwd"));
    }

    #[test]
    fn a_wrong_command_is_said_and_sends_nothing() {
        assert!(matches!(parse("/frob"), Command::NoSuch("frob")));
        assert!(matches!(parse("/call"), Command::Unknown(_)));
        assert!(matches!(parse("/call a b"), Command::Unknown(_)));
        assert!(matches!(parse("/who cares"), Command::Unknown(_)));
        assert!(matches!(parse("/"), Command::NoSuch("")));
    }

    #[test]
    fn text_is_text() {
        assert_eq!(parse("hello"), Command::Text("hello"));
        assert_eq!(parse(""), Command::Text(""));
        assert_eq!(parse(" /help"), Command::Text(" /help"));
    }
}
