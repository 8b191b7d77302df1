//! One output stream of a process: split into lines as it arrives (a partial line waits for
//! its newline or the end of the stream), and captured up to a limit.

/// Splits a byte stream into lines and keeps the first bytes of it.
#[derive(Debug)]
pub(crate) struct StreamLines {
    partial: Vec<u8>,
    max_line: usize,
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
            max_line: max_line.max(1),
            capture: capture_limit.map(|limit| Capture { bytes: Vec::new(), limit, truncated: false }),
        }
    }

    /// Takes the next chunk and calls `line` for each line it completes, without the newline.
    pub(crate) fn push(&mut self, mut chunk: &[u8], mut line: impl FnMut(&str)) {
        if let Some(capture) = &mut self.capture {
            let room = capture.limit.saturating_sub(capture.bytes.len());
            capture.bytes.extend_from_slice(&chunk[..room.min(chunk.len())]);
            capture.truncated |= chunk.len() > room;
        }
        // A line longer than `max_line` is logged in pieces rather than held without bound.
        while !chunk.is_empty() {
            let room = self.max_line - self.partial.len();
            match chunk.iter().position(|&b| b == b'\n') {
                Some(end) if end <= room => {
                    self.partial.extend_from_slice(&chunk[..end]);
                    self.flush(&mut line);
                    chunk = &chunk[end + 1..];
                }
                _ if chunk.len() <= room => {
                    self.partial.extend_from_slice(chunk);
                    break;
                }
                _ => {
                    self.partial.extend_from_slice(&chunk[..room]);
                    self.flush(&mut line);
                    chunk = &chunk[room..];
                }
            }
        }
    }

    /// Ends the stream: logs what is left of an unfinished line.
    pub(crate) fn finish(&mut self, mut line: impl FnMut(&str)) {
        if !self.partial.is_empty() {
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

    fn flush(&mut self, line: &mut impl FnMut(&str)) {
        let bytes = self.partial.strip_suffix(b"\r").unwrap_or(&self.partial);
        line(&String::from_utf8_lossy(bytes));
        self.partial.clear();
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
        check(&["abcdefg\n"], 3, None, &["abc", "def", "g"], "");
        check(&["abc", "\n", "abcd"], 3, None, &["abc", "abc", "d"], "");
        check(&["hello\nworld\n"], 100, Some(7), &["hello", "world"], "hello\nw");
        check(&[], 100, Some(7), &[], "");
    }
}
