//! The line editor on long lines (in-process, no terminal): what a paste
//! and typing into the result cost, render included, against the 50 ms a
//! 10,000-character paste may take (issue #12).

use std::hint::black_box;
use std::time::Instant;

use p2pchat::chat::editor::{Key, LineEditor};

use crate::table::{Figure, Goal, Table};

/// Characters in the pasted line.
const PASTED: usize = 10_000;

/// Keys typed into the long line per repetition.
const TYPED: usize = 10_000;

pub fn editor(table: &mut Table) {
    // A paste as raw keys (a terminal without bracketed paste), one render
    // per batch of 1 KiB as the chat reads them.
    let paste = Figure::of("ms", || {
        let started = Instant::now();
        let mut editor = LineEditor::default();
        for (i, c) in "é👍🏽x".chars().cycle().take(PASTED).enumerate() {
            editor.apply(Key::Char(c));
            if i % 1024 == 0 {
                black_box(editor.render("to bob> ", 80));
            }
        }
        black_box(editor.render("to bob> ", 80));
        started.elapsed().as_secs_f64() * 1e3
    });
    table
        .row("10,000-character paste, applied and drawn")
        .value(&paste)
        .goal(Goal::Below(50.0));
    // Typing in the middle of that line, drawn after every key.
    let typing = Figure::of("/s", || {
        let mut editor = LineEditor::default();
        editor.apply(Key::Paste("x".repeat(PASTED)));
        for _ in 0..PASTED / 2 {
            editor.apply(Key::Left);
        }
        let started = Instant::now();
        for i in 0..TYPED {
            let key = if i % 2 == 0 {
                Key::Char('a')
            } else {
                Key::Backspace
            };
            editor.apply(key);
            black_box(editor.render("to bob> ", 80));
        }
        TYPED as f64 / started.elapsed().as_secs_f64()
    });
    table
        .row("keys/s typed into a 10,000-character line")
        .value(&typing);
}
