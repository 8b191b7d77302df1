//! One output stream of a process: split into lines as it arrives (a partial line waits for
//! its newline or the end of the stream), each line cut to a limit while it is read, and
//! captured up to a limit.
//!
//! A line longer than the limit keeps its head and counts the rest, so a process that
//! prints 50 MB without a newline costs the runner the limit in memory, not 50 MB. The cut
//! line reads exactly as `rivet_core::text::truncate` would have cut the whole line.
//!
//! With secrets, the head is kept [`Masker::overlap`] bytes past the limit and masked before
//! it is cut, so a secret that straddles the limit is masked whole rather than cut into a
//! visible beginning.

use std::sync::Arc;

use rivet_core::text::truncate_head;

use super::mask::Masker;

/// Splits a byte stream into lines and keeps the first bytes of it.
#[derive(Debug)]
pub(crate) struct StreamLines {
    /// The head of the current line, at most `max_line` bytes.
    partial: Vec<u8>,
    /// The bytes of the current line past its head, counted and dropped.
    dropped: usize,
    max_line: usize,
    /// How much of a line is kept: `max_line` plus the masker's overlap.
    keep: usize,
    masker: Arc<Masker>,
    capture: Option<Capture>,
}

#[derive(Debug)]
struct Capture {
    bytes: Vec<u8>,
    limit: usize,
    truncated: bool,
}

impl StreamLines {
    /// `capture_limit` is `None` when the stream is only logged.
    pub(crate) fn new(max_line: usize, capture_limit: Option<usize>) -> Self {
        StreamLines {
            partial: Vec::new(),
            dropped: 0,
            max_line: max_line.max(1),
            keep: max_line.max(1),
            masker: Arc::default(),
            capture: capture_limit.map(|limit| Capture { bytes: Vec::new(), limit, truncated: false }),
        }
    }

    /// Masks secrets in lines cut at the limit (see the module documentation).
    pub(crate) fn with_masker(mut self, masker: Arc<Masker>) -> Self {
        self.keep = self.max_line + masker.overlap();
        self.masker = masker;
        self
    }

    /// Takes the next chunk and calls `line` for each line it completes, without the newline.
    pub(crate) fn push(&mut self, mut chunk: &[u8], mut line: impl FnMut(&str)) {
        if let Some(capture) = &mut self.capture {
            let room = capture.limit.saturating_sub(capture.bytes.len());
            capture.bytes.extend_from_slice(&chunk[..room.min(chunk.len())]);
            capture.truncated |= chunk.len() > room;
        }
        while !chunk.is_empty() {
            match chunk.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.take(&chunk[..end]);
                    self.flush(&mut line);
                    chunk = &chunk[end + 1..];
                }
                None => {
                    self.take(chunk);
                    break;
                }
            }
        }
    }

    /// Ends the stream: logs what is left of an unfinished line.
    pub(crate) fn finish(&mut self, mut line: impl FnMut(&str)) {
        if !self.partial.is_empty() || self.dropped > 0 {
            self.flush(&mut line);
        }
    }

    /// The captured bytes, and whether the limit cut them short.
    pub(crate) fn captured(self) -> (Vec<u8>, bool) {
        match self.capture {
            Some(capture) => (capture.bytes, capture.truncated),
            None => (Vec::new(), false),
        }
    }

    /// Adds bytes of the current line: to its head while there is room, else to the count.
    fn take(&mut self, bytes: &[u8]) {
        let keep = self.keep.saturating_sub(self.partial.len()).min(bytes.len());
        self.partial.extend_from_slice(&bytes[..keep]);
        self.dropped += bytes.len() - keep;
    }

    fn flush(&mut self, line: &mut impl FnMut(&str)) {
        if self.dropped == 0 && self.partial.len() <= self.max_line {
            let bytes = self.partial.strip_suffix(b"\r").unwrap_or(&self.partial);
            line(&String::from_utf8_lossy(bytes));
        } else {
            let head = String::from_utf8_lossy(&self.partial);
            let head = self.masker.mask(&head);
            line(&truncate_head(&head, self.partial.len() + self.dropped, self.max_line));
        }
        self.partial.clear();
        self.dropped = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(chunks: &[&str], max_line: usize, capture: Option<usize>, lines: &[&str], captured: &str) {
        let mut stream = StreamLines::new(max_line, capture);
        let mut got = Vec::new();
        for chunk in chunks {
            stream.push(chunk.as_bytes(), |line| got.push(line.to_owned()));
        }
        stream.finish(|line| got.push(line.to_owned()));
        assert_eq!(got, lines);
        let (bytes, _) = stream.captured();
        assert_eq!(String::from_utf8_lossy(&bytes), captured);
    }

    #[test]
    fn splits_lines_across_chunks() {
        check(&["a\nb", "c\n", "\nd"], 100, None, &["a", "bc", "", "d"], "");
        check(&["one\r\ntwo\r\n"], 100, Some(100), &["one", "two"], "one\r\ntwo\r\n");
        check(&["hello\nworld\n"], 100, Some(7), &["hello", "world"], "hello\nw");
        check(&[], 100, Some(7), &[], "");
    }

    #[test]
    fn long_lines_are_cut_while_read_as_truncate_cuts_them() {
        use rivet_core::text::truncate;
        let long = format!("{}{}", "é".repeat(100), "x".repeat(1_000));
        for whole in [long, "y".repeat(5_000), format!("ab{}", "\u{1F600}".repeat(100))] {
            for chunk in [1, 7, 64, 10_000] {
                let mut stream = StreamLines::new(100, None);
                let mut got = Vec::new();
                for piece in whole.as_bytes().chunks(chunk) {
                    stream.push(piece, |line| got.push(line.to_owned()));
                }
                stream.push(b"\nshort\n", |line| got.push(line.to_owned()));
                stream.push(whole.as_bytes(), |line| got.push(line.to_owned()));
                stream.finish(|line| got.push(line.to_owned()));
                let expect = truncate(&whole, 100).into_owned();
                assert_eq!(got, [expect.as_str(), "short", expect.as_str()], "chunks of {chunk}");
                assert!(got[0].len() <= 100);
                // Only the head is ever held.
                assert!(stream.partial.capacity() <= 200);
            }
        }
    }

    #[test]
    fn a_secret_that_straddles_the_cut_is_masked_before_the_cut() {
        let secret = "straddling-secret-value";
        let masker = Arc::new(Masker::new([secret]));
        for before in [60, 70, 74, 76, 80, 99, 100] {
            let whole = format!("{}{secret}{}", "x".repeat(before), "y".repeat(500));
            for chunk in [1, 7, 64, 10_000] {
                let mut stream = StreamLines::new(100, None).with_masker(masker.clone());
                let mut got = Vec::new();
                for piece in whole.as_bytes().chunks(chunk) {
                    stream.push(piece, |line| got.push(line.to_owned()));
                }
                stream.finish(|line| got.push(line.to_owned()));
                assert_eq!(got.len(), 1);
                assert!(got[0].len() <= 100, "{}", got[0]);
                assert!(!got[0].contains("strad"), "{before}/{chunk}: {}", got[0]);
            }
        }
    }
}
