//! Secret masking: every form of a job's secret values in what leaves the runner becomes
//! `***`, before it is buffered, spilled or sent.
//!
//! [`Masker`] knows the forms of each value (the forms are its *patterns*): the value
//! itself and each line of a multi-line one; its base64 in the standard and the URL-safe
//! alphabet, for each of the three alignments the value can have inside a longer encoded
//! text (only the characters that depend on the value alone, so the encoding of a longer
//! text that contains the value is caught too), with and without padding; its hex in lower
//! and upper case; and its URL encodings (every byte but letters and digits, or the
//! RFC 3986 unreserved set, the JavaScript `encodeURIComponent` set, or the path set kept;
//! `%xx` in either case; space as `+` or `%20`). One Aho-Corasick automaton finds them
//! all in one pass.
//!
//! A value can also arrive split: across the 64 KiB limit of a line (the line reader keeps
//! [`Masker::overlap`] bytes past the limit and masks before it cuts, see
//! `executor::output`), or across lines, e.g. printed one character per line or wrapped by
//! `base64`. [`LineHold`] sees the lines of one output stream of a process as one text
//! with the line breaks removed and masks a form that spans lines (every part of it on
//! every line). To do that it holds back the last lines while their end, read across the
//! held lines, is the beginning of some form: a line is released as soon as what follows
//! it shows that it cannot start a form. **Bound:** at most `overlap` bytes of text (and
//! [`MAX_HELD_LINES`] lines) are held, and nothing longer than [`HOLD_QUIET`] after the
//! process last wrote to the stream; a held line is never reordered, only delayed. A
//! process that writes a form split across lines more slowly than that can defeat it, as
//! any masking can be defeated by a script that means to (masking protects against
//! accidents; pipelines that must not see a secret do not declare it).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::Duration;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What a masked form becomes.
pub(crate) const MASK: &str = "***";
/// The shortest part of a multi-line value masked on its own. Shorter lines of a value
/// (a PEM's last line, a blank one) would mask common text everywhere.
const MIN_PART_BYTES: usize = 6;
/// The most lines a [`LineHold`] holds, whatever their length (blank lines add nothing
/// to the text, so the byte bound alone does not bound them).
pub(crate) const MAX_HELD_LINES: usize = 1024;
/// The most bytes of encoded forms a job's masker holds (see [`Masker::new`]).
const MAX_FORM_BYTES: usize = 4 * 1024 * 1024;
/// How long held lines wait for more output of their stream before they are released.
pub(crate) const HOLD_QUIET: Duration = Duration::from_secs(2);

/// RFC 3986's unreserved characters are kept (Python's `quote(safe="")`, Go's
/// `QueryEscape` but for spaces).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// `/` kept too (Python's `quote` default, path segments).
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');
/// JavaScript's `encodeURIComponent`.
const URI_COMPONENT: &AsciiSet = &UNRESERVED.remove(b'!').remove(b'*').remove(b'\'').remove(b'(').remove(b')');

/// Finds and hides every form of a set of secret values.
#[derive(Debug, Default)]
pub(crate) struct Masker {
    /// Every form, sorted and unique (for the prefix test).
    patterns: Vec<Vec<u8>>,
    /// The automaton over `patterns`; `None` without secrets.
    automaton: Option<AhoCorasick>,
    /// The longest form, in bytes.
    longest: usize,
}

impl Masker {
    pub(crate) fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Masker {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut bytes = 0;
        for value in values {
            let parts = std::iter::once(value).chain(value.lines().map(|part| part.trim_end_matches('\r')));
            for part in parts.filter(|part| part.len() >= MIN_PART_BYTES) {
                // The encoded forms cost about 30 times the value in the automaton; past
                // the budget (only reached with dozens of long values), values are masked
                // as they are.
                if bytes + 30 * part.len() <= MAX_FORM_BYTES {
                    bytes += 30 * part.len();
                    forms(part, &mut patterns);
                } else {
                    patterns.push(part.as_bytes().to_vec());
                }
            }
        }
        patterns.retain(|pattern| pattern.len() >= MIN_PART_BYTES);
        patterns.sort();
        patterns.dedup();
        let longest = patterns.iter().map(Vec::len).max().unwrap_or(0);
        // Building fails only past the automaton's state limit (billions), far above the
        // form budget.
        let automaton = (!patterns.is_empty())
            .then(|| AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(&patterns))
            .and_then(|built| {
                built.map_err(|err| tracing::error!(error = %err, "cannot build the secret masker")).ok()
            });
        Masker { patterns, automaton, longest }
    }

    /// Whether there is nothing to mask.
    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// How many bytes past a cut the line reader keeps so that a form straddling the cut
    /// is seen whole: the longest form less one.
    pub(crate) fn overlap(&self) -> usize {
        self.longest.saturating_sub(1)
    }

    /// `text` with every form replaced by [`MASK`].
    pub(crate) fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let ranges = self.find(text.as_bytes());
        if ranges.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in ranges {
            // Forms are UTF-8 and so is the text: matches start and end on characters.
            out.push_str(text.get(at..start).unwrap_or_default());
            out.push_str(MASK);
            at = end;
        }
        out.push_str(text.get(at..).unwrap_or_default());
        Cow::Owned(out)
    }

    /// The byte ranges of the forms in `text`, leftmost-longest, not overlapping.
    fn find(&self, text: &[u8]) -> Vec<(usize, usize)> {
        match &self.automaton {
            Some(automaton) => automaton.find_iter(text).map(|found| (found.start(), found.end())).collect(),
            None => Vec::new(),
        }
    }

    /// Whether `tail` is the beginning of a form, but not a whole one.
    fn starts_a_form(&self, tail: &[u8]) -> bool {
        let at = self.patterns.partition_point(|pattern| pattern.as_slice() < tail);
        self.patterns[at..].iter().take(2).any(|pattern| pattern.len() > tail.len() && pattern.starts_with(tail))
    }
}

/// Adds every form of `value` to `out`.
fn forms(value: &str, out: &mut Vec<Vec<u8>>) {
    let bytes = value.as_bytes();
    out.push(bytes.to_vec());
    out.push(hex::encode(bytes).into_bytes());
    out.push(hex::encode_upper(bytes).into_bytes());
    for offset in 0..3usize {
        // The value `offset` bytes into a longer text: the characters before `first`
        // depend on the bytes before the value, those from `last` on on the bytes after.
        let mut shifted = vec![0u8; offset];
        shifted.extend_from_slice(bytes);
        let first = (8 * offset).div_ceil(6);
        let last = 8 * shifted.len() / 6;
        for (padded, unpadded) in [(&STANDARD, &STANDARD_NO_PAD), (&URL_SAFE, &URL_SAFE_NO_PAD)] {
            let whole = unpadded.encode(&shifted);
            out.push(whole.as_bytes()[first..last].to_vec());
            // The value at the end of the encoded text: its last character and padding.
            out.push(whole.as_bytes()[first..].to_vec());
            out.push(padded.encode(&shifted).as_bytes()[first..].to_vec());
        }
    }
    for set in [NON_ALPHANUMERIC, UNRESERVED, PATH, URI_COMPONENT] {
        let upper = utf8_percent_encode(value, set).to_string();
        let lower = lower_escapes(&upper);
        for encoded in [upper, lower] {
            out.push(encoded.replace("%20", "+").into_bytes());
            out.push(encoded.into_bytes());
        }
    }
}

/// `%2F` → `%2f`: some encoders write lowercase escapes.
fn lower_escapes(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).unwrap_or(&rest[at..]);
        out.push_str(&escape.to_ascii_lowercase());
        rest = &rest[at + escape.len()..];
    }
    out.push_str(rest);
    out
}

/// Masks forms that span lines of one output stream: see the module documentation.
#[derive(Debug)]
pub(crate) struct LineHold<'m> {
    masker: &'m Masker,
    held: VecDeque<String>,
}

impl<'m> LineHold<'m> {
    pub(crate) fn new(masker: &'m Masker) -> LineHold<'m> {
        LineHold { masker, held: VecDeque::new() }
    }

    /// Whether lines are held back.
    pub(crate) fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Takes the next line of the stream; `emit` gets every line that can be released.
    pub(crate) fn push(&mut self, line: &str, mut emit: impl FnMut(&str)) {
        if self.masker.is_empty() {
            return emit(line);
        }
        self.held.push_back(line.to_owned());
        self.mask_across_lines();
        let keep = self.lines_to_keep();
        while self.held.len() > keep {
            if let Some(line) = self.held.pop_front() {
                emit(&line);
            }
        }
    }

    /// Releases every held line: the stream ended or went quiet.
    pub(crate) fn flush(&mut self, mut emit: impl FnMut(&str)) {
        while let Some(line) = self.held.pop_front() {
            emit(&line);
        }
    }

    /// Replaces, on every held line, the parts of forms that span more than one line.
    /// Forms within one line are left to the line's own masking.
    fn mask_across_lines(&mut self) {
        let text: Vec<u8> = self.held.iter().flat_map(|line| line.bytes()).collect();
        let spans: Vec<(usize, usize)> = self.masker.find(&text);
        if spans.is_empty() {
            return;
        }
        let mut starts = Vec::with_capacity(self.held.len());
        let mut at = 0;
        for line in &self.held {
            starts.push(at);
            at += line.len();
        }
        let line_of = |byte: usize| starts.partition_point(|&start| start <= byte).saturating_sub(1);
        // From the last span back, so that the offsets of earlier ones stay valid.
        for (start, end) in spans.into_iter().rev() {
            let (first, last) = (line_of(start), line_of(end - 1));
            if first == last {
                continue;
            }
            // From the last line back, so that earlier offsets stay valid.
            for index in (first..=last).rev() {
                let line = &mut self.held[index];
                let from = start.saturating_sub(starts[index]).min(line.len());
                let to = (end - starts[index]).min(line.len());
                if line.is_char_boundary(from) && line.is_char_boundary(to) {
                    line.replace_range(from..to, MASK);
                }
            }
        }
    }

    /// How many of the last held lines must stay held: those that hold the earliest
    /// position from which the rest of the text starts a form.
    fn lines_to_keep(&self) -> usize {
        let mut from_end = 0usize;
        let mut keep = 0;
        let mut tail: VecDeque<&[u8]> = VecDeque::new();
        for (count, line) in self.held.iter().rev().enumerate() {
            if count >= MAX_HELD_LINES {
                break;
            }
            tail.push_front(line.as_bytes());
            let joined: Vec<u8> = tail.iter().flat_map(|part| part.iter().copied()).collect();
            // Positions in this line, at most `overlap` bytes from the end of the text.
            let in_line = line.len();
            for start in 0..in_line {
                let length = in_line - start + from_end;
                if length <= self.masker.overlap() && self.masker.starts_a_form(&joined[start..]) {
                    keep = count + 1;
                    break;
                }
            }
            from_end += in_line;
            if from_end >= self.masker.overlap() {
                break;
            }
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t/Value+42 ok";

    fn masker() -> Masker {
        Masker::new([SECRET])
    }

    fn check(text: &str, expect: &str) {
        assert_eq!(masker().mask(text), expect, "{text}");
    }

    #[test]
    fn masks_the_value_and_its_encodings() {
        check(&format!("token={SECRET}!"), "token=***!");
        check(&hex::encode(SECRET), "***");
        check(&format!("x{}x", hex::encode_upper(SECRET)), "x***x");
        for prefix in ["", "a", "ab", "abc"] {
            let text = format!("{prefix}{SECRET}and more");
            for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
                let encoded = engine.encode(&text);
                let masked = masker().mask(&encoded).into_owned();
                assert!(masked.contains(MASK), "{prefix:?}: {encoded} → {masked}");
                // Only characters that also depend on the surrounding bytes stay.
                assert!(masked.len() <= encoded.len() - 20, "{prefix:?}: {encoded} → {masked}");
            }
            // At the very end of the encoded text, padding included.
            let encoded = STANDARD.encode(format!("{prefix}{SECRET}"));
            let masked = masker().mask(&encoded).into_owned();
            assert!(masked.ends_with(MASK), "{encoded} → {masked}");
        }
        for encoded in [
            "s3cr3t%2FValue%2B42%20ok",
            "s3cr3t%2fValue%2b42+ok",
            "s3cr3t/Value%2B42%20ok",
            "%73%33%63%72%33%74%2F%56%61%6C%75%65%2B%34%32%20%6F%6B",
        ] {
            let masked = masker().mask(encoded).into_owned();
            if encoded.starts_with("%73") {
                // Every byte escaped is not something encoders do; it stays.
                assert_eq!(masked, encoded);
            } else {
                assert_eq!(masked, MASK, "{encoded}");
            }
        }
        check("nothing to hide", "nothing to hide");
        assert!(Masker::new([]).is_empty());
        // A multi-line value: each long enough line on its own too.
        let pem = Masker::new(["-----BEGIN KEY-----\nMIIBOgIBAAJBAK\nend\n"]);
        assert_eq!(pem.mask("got MIIBOgIBAAJBAK here, end"), "got *** here, end");
    }

    fn held(lines: &[&str]) -> Vec<String> {
        let masker = masker();
        let mut hold = LineHold::new(&masker);
        let mut out = Vec::new();
        for line in lines {
            hold.push(line, |line| out.push(masker.mask(line).into_owned()));
        }
        hold.flush(|line| out.push(masker.mask(line).into_owned()));
        out
    }

    #[test]
    fn a_value_split_across_lines_is_masked_and_nothing_else_is_held() {
        let chars: Vec<String> = SECRET.chars().map(String::from).collect();
        let mut lines: Vec<&str> = vec!["before"];
        lines.extend(chars.iter().map(String::as_str));
        lines.push("after");
        let out = held(&lines);
        assert_eq!(out.len(), lines.len(), "no line is lost or added");
        assert_eq!(out[0], "before");
        assert_eq!(out[lines.len() - 1], "after");
        let joined = out.concat();
        assert!(!joined.contains("s3cr"), "{out:?}");
        assert!(out[1..lines.len() - 1].iter().all(|line| line == MASK), "{out:?}");

        // Wrapped base64, as `base64` prints it.
        let encoded = STANDARD.encode(format!("prefix {SECRET} suffix"));
        let (a, b) = encoded.split_at(17);
        let joined = held(&[a, b]).concat();
        assert!(joined.contains(MASK) && joined.len() + 15 < encoded.len(), "{encoded} → {joined}");

        // Ordinary lines come out unchanged and in order.
        let plain = ["one", "two", "", "three"];
        assert_eq!(held(&plain), plain);
    }

    #[test]
    fn only_lines_that_start_a_form_are_held() {
        let masker = masker();
        let mut hold = LineHold::new(&masker);
        let mut out = Vec::new();
        hold.push("hello world.", |line| out.push(line.to_owned()));
        assert!(!hold.holding(), "an ordinary line is released at once");
        hold.push("and s3c", |line| out.push(line.to_owned()));
        assert!(hold.holding(), "the start of the value is held");
        hold.push("ond line.", |line| out.push(line.to_owned()));
        assert!(!hold.holding());
        assert_eq!(out, ["hello world.", "and s3c", "ond line."]);
    }
}
