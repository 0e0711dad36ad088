//! Lines of text kept in one buffer: a batch of typed, piped or received
//! lines crosses threads and layers as one allocation, not one per line,
//! which is what a flood of short lines costs most in.

use std::ops::Range;

/// Lines in order, in one buffer.
#[derive(Debug, Default, Clone)]
pub struct Lines {
    /// The lines' text. A block taken whole ([`Lines::push_block`]) keeps
    /// what is between its lines (line breaks, a message's verb); no line
    /// holds a `\n`.
    buffer: String,
    /// Where each line is in `buffer`.
    spans: Vec<(usize, usize)>,
    /// The bytes of the lines themselves.
    bytes: usize,
}

impl Lines {
    pub fn push(&mut self, line: &str) {
        let start = self.buffer.len();
        self.buffer.push_str(line);
        self.spans.push((start, self.buffer.len()));
        self.bytes += line.len();
    }

    /// Takes `block`, read as it is, in one copy: its lines are where
    /// `spans` (byte ranges of `block`, none holding a `\n`) say.
    pub fn push_block(&mut self, block: &str, spans: impl IntoIterator<Item = (usize, usize)>) {
        let at = self.buffer.len();
        self.buffer.push_str(block);
        for (start, end) in spans {
            debug_assert!(!block[start..end].contains('\n'));
            self.spans.push((at + start, at + end));
            self.bytes += end - start;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// How many lines.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// The lines' text, with what was between them in the block they
    /// came in, if any.
    pub fn buffer(&self) -> &str {
        &self.buffer
    }

    /// The bytes of all the lines' text.
    pub fn text_len(&self) -> usize {
        self.bytes
    }

    /// The bytes of the lines in `lines`.
    pub fn bytes_of(&self, lines: Range<usize>) -> usize {
        self.spans[lines]
            .iter()
            .map(|(start, end)| end - start)
            .sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.spans
            .iter()
            .map(|&(start, end)| &self.buffer[start..end])
    }
}

/// The same lines, however they are kept.
impl PartialEq for Lines {
    fn eq(&self, other: &Lines) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Lines {}

impl<'a> FromIterator<&'a str> for Lines {
    fn from_iter<I: IntoIterator<Item = &'a str>>(lines: I) -> Lines {
        let mut all = Lines::default();
        lines.into_iter().for_each(|line| all.push(line));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::Lines;

    #[test]
    fn lines_come_back_in_order_empty_ones_too() {
        let lines: Lines = ["one", "", "three ✓"].into_iter().collect();
        assert_eq!(lines.iter().collect::<Vec<_>>(), ["one", "", "three ✓"]);
        assert!(!lines.is_empty());
        assert_eq!((lines.len(), lines.text_len()), (3, "onethree ✓".len()));
        assert_eq!((lines.bytes_of(0..2), lines.bytes_of(1..3)), (3, 9));
        assert!(Lines::default().is_empty());
    }

    #[test]
    fn a_block_is_taken_whole_and_is_the_same_lines() {
        let mut lines: Lines = ["first"].into_iter().collect();
        lines.push_block("a\r\n\nb ✓\n", [(0, 1), (3, 3), (4, 9)]);
        lines.push("last");
        let same: Lines = ["first", "a", "", "b ✓", "last"].into_iter().collect();
        assert_eq!(lines, same);
        assert_eq!(lines.text_len(), same.text_len());
        assert_eq!(lines.buffer(), "firsta\r\n\nb ✓\nlast");
        assert_eq!(lines.bytes_of(1..4), "ab ✓".len());
    }
}
