//! Random inputs for the chat's own parsers, std only: the key decoder
//! (bytes from a terminal) and the line editor (keys, and what it renders),
//! 1,000,000 inputs each, none of which may panic. A small seeded generator
//! (splitmix64) drives them; the seed is printed when a case fails, and
//! `P2PCHAT_FUZZ_SEED=N` replays it.

use std::panic::{AssertUnwindSafe, catch_unwind};

use p2pchat::chat::completion::NamesTyped;
use p2pchat::chat::editor::{Key, KeyDecoder, LineEditor};

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

const INPUTS: usize = 1_000_000;

fn seed() -> u64 {
    std::env::var("P2PCHAT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_c0de)
}

/// Runs `case` for each input number with a generator of its own, so that a
/// failing case can be told by its seed alone.
fn run(what: &str, mut case: impl FnMut(&mut Rng)) {
    let base = seed();
    for i in 0..INPUTS as u64 {
        let case_seed = base ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let mut rng = Rng(case_seed);
        if catch_unwind(AssertUnwindSafe(|| case(&mut rng))).is_err() {
            panic!(
                "{what}: input {i} panicked; replay with P2PCHAT_FUZZ_SEED={base} (case seed {case_seed})"
            );
        }
    }
}

/// Bytes a terminal might send, and ones it never would: escape sequences
/// cut anywhere, bracketed paste markers, invalid UTF-8, controls.
const PIECES: &[&[u8]] = &[
    b"\x1b",
    b"[",
    b"O",
    b"~",
    b"1",
    b";",
    b"5",
    b"200~",
    b"201~",
    b"\x1b[200~",
    b"\x1b[201~",
    b"\x1b[A",
    b"\x1b[3~",
    b"\x1bOH",
    b"\x1b[1;5D",
    b"\x1bOc",
    b"\x1b\x1b[D",
    b"\x1bb",
    b"\x1b\x7f",
    b"\t",
    b"\x19",
    b"\x1a",
    b"\r",
    b"\n",
    b"\x7f",
    b"\x03",
    b"\x04",
    b"\x17",
    b"\x0c",
    b"a",
    b"q",
    b" ",
    "é".as_bytes(),
    "👍🏽".as_bytes(),
    "\u{200d}".as_bytes(),
    b"\xff",
    b"\xc3",
    b"\xe2\x80",
    b"\xf0\x9f",
    b"\x00",
    b"\x9b",
];

#[test]
fn the_key_decoder_takes_any_bytes() {
    run("key decoder", |rng| {
        let mut decoder = KeyDecoder::default();
        for _ in 0..1 + rng.below(4) {
            let mut bytes = Vec::new();
            for _ in 0..rng.below(8) {
                if rng.below(4) == 0 {
                    bytes.push(rng.next() as u8);
                } else {
                    bytes.extend_from_slice(PIECES[rng.below(PIECES.len())]);
                }
            }
            let _ = decoder.feed(&bytes);
        }
    });
}

/// Up to `pieces` of [`PIECES`] and random bytes, run together.
fn terminal_bytes(rng: &mut Rng, pieces: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..pieces {
        if rng.below(4) == 0 {
            bytes.push(rng.next() as u8);
        } else {
            bytes.extend_from_slice(PIECES[rng.below(PIECES.len())]);
        }
    }
    bytes
}

#[test]
fn the_key_decoder_gives_the_same_keys_however_the_bytes_are_split() {
    // A terminal's bytes come in reads of any size: a sequence, a
    // character or a paste marker may be cut anywhere, and the keys must
    // not change.
    run("key decoder splits", |rng| {
        let pieces = rng.below(24);
        let bytes = terminal_bytes(rng, pieces);
        let whole = KeyDecoder::default().feed(&bytes);
        let mut decoder = KeyDecoder::default();
        let mut split = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            // Often a byte at a time, else reads of a few bytes.
            let read = if rng.below(3) == 0 {
                1
            } else {
                1 + rng.below(8)
            };
            let end = (at + read).min(bytes.len());
            split.extend(decoder.feed(&bytes[at..end]));
            at = end;
        }
        assert_eq!(split, whole, "{bytes:?}");
    });
}

fn random_key(rng: &mut Rng) -> Key {
    const TEXT: &[&str] = &[
        "a", "é", "e\u{301}", "👍🏽", "🇫🇷", "한", "\t", "\u{200d}", "\u{202e}", "x",
    ];
    match rng.below(20) {
        0..=5 => {
            let s = TEXT[rng.below(TEXT.len())];
            s.chars().next().map_or(Key::Enter, Key::Char)
        }
        6 => Key::Paste(
            (0..rng.below(6))
                .map(|_| TEXT[rng.below(TEXT.len())])
                .collect::<Vec<_>>()
                .join(if rng.below(3) == 0 { "\n" } else { "" }),
        ),
        7 => Key::Enter,
        8 => Key::Backspace,
        9 => Key::Delete,
        10 => Key::Left,
        11 => Key::Right,
        12 => Key::Home,
        13 => Key::End,
        14 => Key::Up,
        15 => Key::Down,
        16 => [Key::KillToStart, Key::KillToEnd, Key::KillWord][rng.below(3)].clone(),
        17 => [
            Key::WordBack,
            Key::WordForward,
            Key::KillNextWord,
            Key::KillPreviousWord,
        ][rng.below(4)]
        .clone(),
        18 => [Key::Yank, Key::Tab, Key::Suspend][rng.below(3)].clone(),
        _ => [Key::Redraw, Key::Interrupt, Key::EndOfInput][rng.below(3)].clone(),
    }
}

#[test]
fn the_line_editor_takes_any_keys_and_renders_at_any_width() {
    // One editor lives across many inputs, as a session does; each input is
    // a few keys and a render at some width.
    let mut editor = LineEditor::default();
    let names: Vec<String> = ["a", "aé", "e\u{301}x", "👍🏽", "/call", "한"]
        .map(String::from)
        .to_vec();
    run("line editor", |rng| {
        if rng.below(10_000) == 0 {
            editor = LineEditor::default();
        }
        for _ in 0..1 + rng.below(3) {
            let _ = match random_key(rng) {
                // A Tab completes from names like the text typed.
                Key::Tab => {
                    let typed = [
                        NamesTyped::FirstWordAndArgument,
                        NamesTyped::Argument,
                        NamesTyped::Nowhere,
                    ][rng.below(3)];
                    editor.complete(&names, typed)
                }
                key => editor.apply(key),
            };
        }
        assert!(editor.line().is_char_boundary(editor.cursor()));
        // A render every few inputs: the terminal draws once per batch.
        if rng.below(4) != 0 {
            return;
        }
        let columns = 1 + rng.below(200);
        let rendered = editor.render("to bob> ", columns);
        // From 10 columns up (what the terminal promises) the cursor stays
        // on the row; narrower, it need only not panic.
        if columns >= 10 {
            assert!(
                rendered.cursor_column < columns,
                "cursor at {} of {columns}",
                rendered.cursor_column
            );
        }
    });
}
