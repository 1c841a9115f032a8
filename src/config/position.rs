//! Where in a config file a value is: the 1-based line and column of a slice of its text,
//! counted once for a whole file however many grants it holds.

/// The 1-based line and column of slices of one text, asked for in file order (as grants
/// are), so that the whole text is counted once however many grants it holds.
pub(super) struct Positions<'t> {
    text: &'t str,
    /// Where the last answer was, and its line and the offset of that line's start.
    offset: usize,
    line: usize,
    line_start: usize,
}

impl<'t> Positions<'t> {
    pub fn new(text: &'t str) -> Positions<'t> {
        Positions {
            text,
            offset: 0,
            line: 1,
            line_start: 0,
        }
    }

    /// Where `inner`, a slice of the text, starts.
    pub fn of(&mut self, inner: &str) -> (usize, usize) {
        let offset = (inner.as_ptr() as usize)
            .saturating_sub(self.text.as_ptr() as usize)
            .min(self.text.len());
        if offset < self.offset {
            // Asked out of order: count again from the top.
            *self = Positions::new(self.text);
        }
        let between = self
            .text
            .as_bytes()
            .get(self.offset..offset)
            .unwrap_or_default();
        self.line += count_newlines(between);
        if let Some(last) = between.iter().rposition(|b| *b == b'\n') {
            self.line_start = self.offset + last + 1;
        }
        self.offset = offset;
        (self.line, offset - self.line_start + 1)
    }
}

/// `\n` in `bytes`, counted in blocks the compiler turns into vector compares.
fn count_newlines(bytes: &[u8]) -> usize {
    let mut blocks = bytes.chunks_exact(128);
    let mut count = 0;
    for block in &mut blocks {
        // At most 128 per block: it fits in a u8.
        count += usize::from(block.iter().map(|b| u8::from(*b == b'\n')).sum::<u8>());
    }
    count + blocks.remainder().iter().filter(|b| **b == b'\n').count()
}
