//! Lines of text kept in one buffer: a batch of typed, piped or received
//! lines crosses threads and layers as one allocation, not one per line,
//! which is what a flood of short lines costs most in.

/// Lines in order, their text in one `String`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Lines {
    text: String,
    ends: Vec<usize>,
}

impl Lines {
    pub fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.ends.push(self.text.len());
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// How many lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// All the lines' text, one after the other, with nothing between.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The bytes of all the lines' text.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Where line `i` starts in [`Lines::text`] (the text's length for
    /// the line after the last).
    pub fn start_of(&self, i: usize) -> usize {
        match i {
            0 => 0,
            i => self.ends.get(i - 1).copied().unwrap_or(self.text.len()),
        }
    }

    /// Line `i`, counting from 0.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.text[start..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let line = &self.text[start..end];
            start = end;
            line
        })
    }
}

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
        assert_eq!(
            (lines.get(1), lines.get(2), lines.get(3)),
            (Some(""), Some("three ✓"), None)
        );
        assert!(!lines.is_empty());
        assert_eq!((lines.len(), lines.text_len()), (3, "onethree ✓".len()));
        assert_eq!(
            (lines.start_of(0), lines.start_of(2), lines.start_of(3)),
            (0, 3, lines.text_len())
        );
        assert!(Lines::default().is_empty());
    }
}
