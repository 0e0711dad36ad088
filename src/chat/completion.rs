//! Tab completion of names, as a pure function of the text before the
//! cursor and the names the chat knows: which word a Tab completes, and
//! what that word becomes. The editor applies it (`editor.rs`).
//!
//! Names are completed where a name is typed: the first word at the list
//! (a name there calls), and the word after `/call`, `/ignore` and
//! `/unignore`, in any case. A name matches when it starts with the word,
//! case aside, as names are told apart without case. One match is written
//! whole, with a space after it when it is a command's argument; several
//! are cut to what they share, and a second Tab lists them, as readline
//! does.

use crate::unicode::graphemes;

/// Where a typed name is taken, for where the user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamesTyped {
    /// At the list: the first word is a name, and so is a command's.
    FirstWordAndArgument,
    /// In a chat: a first word is text; only a command takes a name.
    Argument,
    /// Nowhere: the name prompt, a ringing call.
    Nowhere,
}

/// The commands whose one argument is a name.
const TAKES_A_NAME: &[&str] = &["call", "ignore", "unignore"];

/// What a Tab makes of the word before the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion<'a> {
    /// Where the word starts, as a byte offset into the text before the
    /// cursor.
    pub from: usize,
    /// What the word becomes: the one match (and a space after a
    /// command's argument), or what the matches share, or the word as it
    /// was when they share no more.
    pub text: String,
    /// The names that match, in the order given.
    pub matches: Vec<&'a str>,
}

/// The completion of the word that ends `before` (the text before the
/// cursor) from `names`; `None` where no name is typed or none matches.
pub fn complete<'a>(
    before: &str,
    names: &'a [String],
    typed: NamesTyped,
) -> Option<Completion<'a>> {
    let from = before
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let (head, word) = before.split_at(from);
    let after = if head.trim().is_empty()
        && typed == NamesTyped::FirstWordAndArgument
        && !word.starts_with('/')
    {
        ""
    } else if typed != NamesTyped::Nowhere && takes_a_name(head) {
        " "
    } else {
        return None;
    };
    let folded = word.to_lowercase();
    let matches: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|name| name.to_lowercase().starts_with(&folded))
        .collect();
    let text = match matches[..] {
        [] => return None,
        [one] => format!("{one}{after}"),
        _ => {
            let shared = shared_start(&matches);
            if shared.to_lowercase().chars().count() > folded.chars().count() {
                shared
            } else {
                word.to_string()
            }
        }
    };
    Some(Completion {
        from,
        text,
        matches,
    })
}

/// Whether `head` (what precedes the word) is a command taking a name
/// and the spaces after it: `/call `, `/IGNORE  `.
fn takes_a_name(head: &str) -> bool {
    let mut words = head.split_whitespace();
    let verb = words.next().and_then(|w| w.strip_prefix('/'));
    head.starts_with('/')
        && words.next().is_none()
        && verb.is_some_and(|verb| TAKES_A_NAME.iter().any(|t| t.eq_ignore_ascii_case(verb)))
}

/// The clusters all of `names` start with, case aside, as the first
/// spells them.
fn shared_start(names: &[&str]) -> String {
    let Some((first, others)) = names.split_first() else {
        return String::new();
    };
    let mut rests: Vec<_> = others.iter().map(|name| graphemes(name)).collect();
    let mut shared = String::new();
    for cluster in graphemes(first) {
        let folded = cluster.to_lowercase();
        let all = rests
            .iter_mut()
            .all(|rest| rest.next().is_some_and(|c| c.to_lowercase() == folded));
        if !all {
            break;
        }
        shared.push_str(cluster);
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    fn text(before: &str, list: &[&str], typed: NamesTyped) -> Option<(usize, String)> {
        let names = names(list);
        complete(before, &names, typed).map(|c| (c.from, c.text))
    }

    use NamesTyped::{Argument, FirstWordAndArgument, Nowhere};

    #[test]
    fn the_first_word_at_the_list_completes_to_a_name_with_no_space_after() {
        let list = ["alice", "bob", "Carol"];
        assert_eq!(
            text("bo", &list, FirstWordAndArgument),
            Some((0, "bob".into()))
        );
        assert_eq!(
            text("  ca", &list, FirstWordAndArgument),
            Some((2, "Carol".into()))
        );
        // In a chat a first word is text.
        assert_eq!(text("bo", &list, Argument), None);
        assert_eq!(text("bo", &list, Nowhere), None);
        // Only the first word; and a command is no name.
        assert_eq!(text("bob al", &list, FirstWordAndArgument), None);
        assert_eq!(text("/al", &list, FirstWordAndArgument), None);
        assert_eq!(text("zed", &list, FirstWordAndArgument), None);
    }

    #[test]
    fn a_command_taking_a_name_completes_it_with_a_space_after() {
        let list = ["alice", "bob"];
        for typed in [FirstWordAndArgument, Argument] {
            for before in [
                "/call al",
                "/ignore al",
                "/unignore al",
                "/CALL  al",
                "/Ignore al",
            ] {
                let from = before.len() - 2;
                assert_eq!(
                    text(before, &list, typed),
                    Some((from, "alice ".into())),
                    "{before}"
                );
            }
        }
        assert_eq!(text("/call al", &list, Nowhere), None);
        // Not a command taking a name, or not its first argument.
        for before in [
            "/say al",
            "/who al",
            "/call bob al",
            " /call al",
            "call al",
            "/calls al",
        ] {
            assert_eq!(text(before, &list, FirstWordAndArgument), None, "{before}");
        }
    }

    #[test]
    fn several_matches_complete_what_they_share_and_are_all_given() {
        let list = names(&["alfred", "Alice", "alina", "bob"]);
        let c = complete("a", &list, FirstWordAndArgument).unwrap();
        assert_eq!(c.text, "al");
        assert_eq!(c.matches, ["alfred", "Alice", "alina"]);
        // Nothing more shared: the word stays as typed, case and all.
        let c = complete("AL", &list, FirstWordAndArgument).unwrap();
        assert_eq!(c.text, "AL");
        assert_eq!(c.matches.len(), 3);
        let c = complete("ali", &list, FirstWordAndArgument).unwrap();
        assert_eq!((c.text.as_str(), c.matches.len()), ("ali", 2));
        // An empty word matches every name.
        let c = complete("/call ", &list, Argument).unwrap();
        assert_eq!((c.from, c.matches.len()), (6, 4));
    }

    #[test]
    fn names_are_matched_and_shared_by_whole_characters_case_aside() {
        let list = ["Émile", "émilie", "日本", "日本語"];
        assert_eq!(
            text("é", &list, FirstWordAndArgument),
            Some((0, "Émil".into()))
        );
        assert_eq!(
            text("日", &list, FirstWordAndArgument),
            Some((0, "日本".into()))
        );
        // e + U+0301 and e + U+0300 share no whole character after "e".
        let list = ["e\u{301}a", "e\u{300}b"];
        assert_eq!(text("", &list, FirstWordAndArgument), Some((0, "".into())));
    }
}
