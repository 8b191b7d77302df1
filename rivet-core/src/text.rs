//! Bounding text that a pipeline controls: log lines, messages, outputs.
//!
//! Every size a pipeline controls has a cap (see ARCHITECTURE.md, "Bounds"). Text over a
//! cap is cut at a UTF-8 character boundary and ends with a visible marker saying how much
//! was dropped, so a reader never mistakes a truncated line for the whole one. The runner
//! truncates before it sends; the orchestrator truncates again before it stores, so a
//! runner that ignores its caps cannot get past them either.

use std::borrow::Cow;

/// The largest log line, in bytes, before it is truncated: process output, `log.*`
/// messages and error messages alike.
pub const MAX_LOG_LINE_BYTES: usize = 64 * 1024;

/// The largest failure message of a job or stage, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// The text that ends a truncated string; `{}` is the number of bytes dropped.
fn marker(dropped: usize) -> String {
    format!(" … [truncated {dropped} bytes]")
}

/// `text` if it fits in `max` bytes; otherwise its longest prefix that leaves room for the
/// truncation marker, cut at a character boundary, followed by the marker. The result is
/// never longer than `max` bytes, unless `max` is too small to hold the marker itself.
pub fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    Cow::Owned(truncate_head(text, text.len(), max))
}

/// The cut form of a text of `total` bytes of which only the first, `head`, is at hand
/// (a line being read that was never held whole): the longest prefix of `head` that
/// leaves room for the marker, cut at a character boundary, then the marker counting
/// every byte dropped. For `head` the whole text, this is what [`truncate`] returns.
pub fn truncate_head(head: &str, total: usize, max: usize) -> String {
    // The marker's length depends on the number it prints; size it for the worst case.
    let room = max.saturating_sub(marker(total).len());
    let mut cut = room.min(head.len());
    while !head.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(max);
    out.push_str(&head[..cut]);
    out.push_str(&marker(total - cut));
    out
}

/// Like [`truncate`], for an owned string: no copy when it fits.
pub fn truncate_owned(text: String, max: usize) -> String {
    match truncate(&text, max) {
        Cow::Borrowed(_) => text,
        Cow::Owned(cut) => cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, max: usize, expect: &str) {
        let got = truncate(text, max);
        assert_eq!(got, expect);
        assert!(got.len() <= max.max(expect.len()));
    }

    #[test]
    fn text_that_fits_is_unchanged() {
        check("hello", 5, "hello");
        check("", 0, "");
    }

    #[test]
    fn long_text_is_cut_with_a_marker() {
        let long = "x".repeat(100);
        let got = truncate(&long, 40);
        assert!(got.len() <= 40, "{got}");
        assert!(got.ends_with(&format!("[truncated {} bytes]", 100 - got.find(' ').unwrap_or(0))), "{got}");
    }

    #[test]
    fn cuts_fall_on_character_boundaries() {
        let long = "é".repeat(50);
        let got = truncate(&long, 41);
        assert!(got.len() <= 41);
        assert!(got.starts_with('é'));
    }

    #[test]
    fn owned_text_that_fits_is_not_copied() {
        let text = String::from("short");
        let ptr = text.as_ptr();
        let kept = truncate_owned(text, 10);
        assert_eq!(kept.as_ptr(), ptr);
    }
}
