//! A Lua 5.4 pattern engine in Rust that checks the time budget while it works.
//!
//! Lua's own matcher (`lstrlib.c`) backtracks inside a single C call, where the sandbox's
//! instruction-count hook never fires: `string.find(string.rep('a', 3000), '.-.-.-.-.-.-b')`
//! runs for hours. This is a line-by-line port of that matcher (same recursion, same error
//! messages, same quirks) that counts every unit of work it does and asks
//! [`check_deadline`] every [`CHECK_PERIOD`] steps, so it stops once the budget is spent.
//!
//! The engine works on byte slices and knows nothing about Lua values; `strlib` turns its
//! results into Lua values. Where the C code reads the `'\0'` that terminates every Lua
//! string (one past the end of the pattern or the subject), this port reads a 0 byte too,
//! which keeps its behaviour on malformed patterns identical.

use mlua::Lua;

use crate::sandbox::check_deadline;

/// The most captures a pattern may have (`LUA_MAXCAPTURES`).
const MAX_CAPTURES: usize = 32;

/// The deepest the matcher may recurse (`MAXCCALLS` in `lstrlib.c`).
const MAX_DEPTH: usize = 200;

/// How many steps run between two deadline checks: often enough to stop within a
/// millisecond or so, rarely enough that reading the clock costs nothing noticeable.
const CHECK_PERIOD: usize = 1024;

/// The escape character of patterns and replacement strings.
const ESC: u8 = b'%';

/// Characters that make a pattern more than a plain string (`SPECIALS` in `lstrlib.c`).
const SPECIALS: &[u8] = b"^$*+?.([%-";

/// Why a match could not be completed.
#[derive(Debug)]
pub(crate) enum Error {
    /// A malformed pattern or an invalid capture reference. Lua raises these as plain
    /// messages, with the position of the calling line in front.
    Pattern(String),
    /// An error from the Lua state itself; in practice the spent time budget.
    Lua(mlua::Error),
}

impl From<mlua::Error> for Error {
    fn from(err: mlua::Error) -> Self {
        Error::Lua(err)
    }
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

fn malformed<T>(message: impl Into<String>) -> Result<T> {
    Err(Error::Pattern(message.into()))
}

/// Counts work and checks the state's deadline every [`CHECK_PERIOD`] steps. A step is
/// one call of the recursive matcher, one pass of any loop in it (expanding `*`, `+`,
/// `-`, scanning `%b`, trying the next start position), or about 64 bytes compared or
/// scanned at once (sets, back-references, plain searches, replacement strings).
pub(crate) struct Budget<'l> {
    lua: &'l Lua,
    left: usize,
}

impl<'l> Budget<'l> {
    pub(crate) fn new(lua: &'l Lua) -> Self {
        Budget { lua, left: CHECK_PERIOD }
    }

    /// Records `steps` units of work; fails once the deadline has passed.
    pub(crate) fn charge(&mut self, steps: usize) -> Result<()> {
        if steps < self.left {
            self.left -= steps;
            return Ok(());
        }
        self.left = CHECK_PERIOD;
        Ok(check_deadline(self.lua)?)
    }

    pub(crate) fn tick(&mut self) -> Result<()> {
        self.charge(1)
    }
}

/// Whether `pattern` has no special characters, so `find` may search it as plain text.
pub(crate) fn no_specials(pattern: &[u8]) -> bool {
    !pattern.iter().any(|c| SPECIALS.contains(c))
}

/// Finds `needle` in `haystack` at or after `from` (`lmemfind`). Comparing candidates is
/// quadratic in the worst case, so it is charged to the budget like pattern matching.
pub(crate) fn find_plain(budget: &mut Budget, haystack: &[u8], needle: &[u8], from: usize) -> Result<Option<usize>> {
    let Some((&first, rest)) = needle.split_first() else {
        return Ok(Some(from));
    };
    // The last position at which the needle still fits.
    let Some(last) = haystack.len().checked_sub(needle.len()) else {
        return Ok(None);
    };
    let mut at = from;
    while at <= last {
        let Some(offset) = haystack[at..=last].iter().position(|&c| c == first) else {
            return Ok(None);
        };
        budget.charge(1 + offset / 64 + rest.len() / 64)?;
        at += offset;
        if haystack[at + 1..].starts_with(rest) {
            return Ok(Some(at));
        }
        at += 1;
    }
    Ok(None)
}

/// What a finished capture holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    /// Opened with `(` and not closed yet.
    Unfinished,
    /// A position capture `()`.
    Position,
    /// A closed capture of this many bytes.
    Bytes(usize),
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    start: usize,
    length: Length,
}

/// One value a match produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Capture<'s> {
    /// Captured text (or the whole match).
    Text(&'s [u8]),
    /// A position capture: the 1-based index in the subject.
    Position(usize),
}

/// The state of one match attempt (`MatchState`): the subject, the pattern (without a
/// leading `^` anchor, which the callers handle) and the captures so far.
pub(crate) struct Matcher<'s, 'l> {
    src: &'s [u8],
    pat: &'s [u8],
    budget: Budget<'l>,
    /// How many more levels the matcher may recurse.
    depth: usize,
    /// How many captures are open or closed.
    level: usize,
    slots: [Slot; MAX_CAPTURES],
}

impl<'s, 'l> Matcher<'s, 'l> {
    pub(crate) fn new(lua: &'l Lua, src: &'s [u8], pat: &'s [u8]) -> Self {
        Matcher {
            src,
            pat,
            budget: Budget::new(lua),
            depth: MAX_DEPTH,
            level: 0,
            slots: [Slot { start: 0, length: Length::Unfinished }; MAX_CAPTURES],
        }
    }

    /// Charges work done on this match's behalf, such as expanding a replacement string.
    pub(crate) fn charge(&mut self, steps: usize) -> Result<()> {
        self.budget.charge(steps)
    }

    /// The subject being matched.
    pub(crate) fn subject(&self) -> &'s [u8] {
        self.src
    }

    /// Tries to match the whole pattern at byte `start` of the subject; returns where the
    /// match ends. Clears the captures of any earlier attempt (`reprepstate`).
    pub(crate) fn match_at(&mut self, start: usize) -> Result<Option<usize>> {
        self.depth = MAX_DEPTH;
        self.level = 0;
        self.do_match(start, 0)
    }

    /// Pattern byte `i`, or 0 past the end (the C string's terminator).
    fn p(&self, i: usize) -> u8 {
        self.pat.get(i).copied().unwrap_or(0)
    }

    /// Subject byte `i`, or 0 past the end.
    fn s(&self, i: usize) -> u8 {
        self.src.get(i).copied().unwrap_or(0)
    }

    /// `match`: every call is one step and one level of recursion. Tail positions loop
    /// (the C code's `goto init`) so they cost steps but not depth, as in C.
    fn do_match(&mut self, s: usize, p: usize) -> Result<Option<usize>> {
        if self.depth == 0 {
            return malformed("pattern too complex");
        }
        self.depth -= 1;
        let result = self.match_here(s, p);
        self.depth += 1;
        result
    }

    fn match_here(&mut self, mut s: usize, mut p: usize) -> Result<Option<usize>> {
        loop {
            self.budget.tick()?;
            if p == self.pat.len() {
                return Ok(Some(s));
            }
            match self.pat[p] {
                b'(' if self.p(p + 1) == b')' => return self.start_capture(s, p + 2, Length::Position),
                b'(' => return self.start_capture(s, p + 1, Length::Unfinished),
                b')' => return self.end_capture(s, p + 1),
                b'$' if p + 1 == self.pat.len() => return Ok((s == self.src.len()).then_some(s)),
                ESC if self.p(p + 1) == b'b' => match self.match_balance(s, p + 2)? {
                    Some(end) => (s, p) = (end, p + 4),
                    None => return Ok(None),
                },
                ESC if self.p(p + 1) == b'f' => {
                    p += 2;
                    if self.p(p) != b'[' {
                        return malformed("missing '[' after '%f' in pattern");
                    }
                    let ep = self.class_end(p)?;
                    let previous = if s == 0 { 0 } else { self.s(s - 1) };
                    if self.in_set(previous, p, ep - 1) || !self.in_set(self.s(s), p, ep - 1) {
                        return Ok(None);
                    }
                    p = ep;
                }
                ESC if self.p(p + 1).is_ascii_digit() => match self.match_capture(s, self.p(p + 1))? {
                    Some(end) => (s, p) = (end, p + 2),
                    None => return Ok(None),
                },
                _ => {
                    // A single-character class with an optional quantifier after it.
                    let ep = self.class_end(p)?;
                    let suffix = self.p(ep);
                    if !self.single_match(s, p, ep)? {
                        if !matches!(suffix, b'*' | b'?' | b'-') {
                            return Ok(None);
                        }
                        p = ep + 1; // the quantifier accepts zero repetitions
                        continue;
                    }
                    match suffix {
                        b'?' => match self.do_match(s + 1, ep + 1)? {
                            Some(end) => return Ok(Some(end)),
                            None => p = ep + 1,
                        },
                        b'+' => return self.max_expand(s + 1, p, ep),
                        b'*' => return self.max_expand(s, p, ep),
                        b'-' => return self.min_expand(s, p, ep),
                        _ => (s, p) = (s + 1, ep),
                    }
                }
            }
        }
    }

    /// Where the single-character class starting at `p` ends (`classend`). A long set
    /// takes long to scan, so its length is charged.
    fn class_end(&mut self, p: usize) -> Result<usize> {
        let end = self.find_class_end(p)?;
        self.budget.charge((end - p) / 64)?;
        Ok(end)
    }

    fn find_class_end(&self, mut p: usize) -> Result<usize> {
        let c = self.p(p);
        p += 1;
        match c {
            ESC if p >= self.pat.len() => malformed("malformed pattern (ends with '%')"),
            ESC => Ok(p + 1),
            b'[' => {
                if self.p(p) == b'^' {
                    p += 1;
                }
                // The first character is taken literally, so `[]]` is a set holding `]`.
                loop {
                    if p >= self.pat.len() {
                        return malformed("malformed pattern (missing ']')");
                    }
                    let c = self.pat[p];
                    p += 1;
                    if c == ESC && p < self.pat.len() {
                        p += 1; // skip escapes such as `%]`
                    }
                    if self.p(p) == b']' {
                        return Ok(p + 1);
                    }
                }
            }
            _ => Ok(p),
        }
    }

    /// Whether subject byte `s` matches the class `p..ep` (`singlematch`). Scanning a
    /// long set is work too, so it is charged by its length.
    fn single_match(&mut self, s: usize, p: usize, ep: usize) -> Result<bool> {
        self.budget.charge(1 + (ep - p) / 64)?;
        let Some(&c) = self.src.get(s) else {
            return Ok(false);
        };
        Ok(match self.pat[p] {
            b'.' => true,
            ESC => class_matches(c, self.p(p + 1)),
            b'[' => self.in_set(c, p, ep - 1),
            literal => literal == c,
        })
    }

    /// Whether `c` is in the set `[...]` that opens at `p` and closes at `ec`
    /// (`matchbracketclass`).
    fn in_set(&self, c: u8, mut p: usize, ec: usize) -> bool {
        let mut member = true;
        if self.p(p + 1) == b'^' {
            member = false;
            p += 1;
        }
        loop {
            p += 1;
            if p >= ec {
                return !member;
            }
            let item = self.pat[p];
            if item == ESC {
                p += 1;
                if class_matches(c, self.p(p)) {
                    return member;
                }
            } else if self.p(p + 1) == b'-' && p + 2 < ec {
                p += 2;
                if item <= c && c <= self.pat[p] {
                    return member;
                }
            } else if item == c {
                return member;
            }
        }
    }

    /// `%bxy` at subject byte `s`, with `x` at pattern byte `p` (`matchbalance`).
    fn match_balance(&mut self, s: usize, p: usize) -> Result<Option<usize>> {
        if p + 1 >= self.pat.len() {
            return malformed("malformed pattern (missing arguments to '%b')");
        }
        let (open, close) = (self.pat[p], self.pat[p + 1]);
        if s >= self.src.len() || self.src[s] != open {
            return Ok(None);
        }
        let mut depth = 1;
        for (i, &c) in self.src.iter().enumerate().skip(s + 1) {
            self.budget.tick()?;
            if c == close {
                depth -= 1;
                if depth == 0 {
                    return Ok(Some(i + 1));
                }
            } else if c == open {
                depth += 1;
            }
        }
        Ok(None)
    }

    /// Greedy `*` and `+`: take as many repetitions as possible, then give them back one
    /// by one until the rest of the pattern matches.
    fn max_expand(&mut self, s: usize, p: usize, ep: usize) -> Result<Option<usize>> {
        let mut count = 0;
        while self.single_match(s + count, p, ep)? {
            count += 1;
        }
        loop {
            if let Some(end) = self.do_match(s + count, ep + 1)? {
                return Ok(Some(end));
            }
            if count == 0 {
                return Ok(None);
            }
            count -= 1;
        }
    }

    /// Lazy `-`: try the rest of the pattern first, adding repetitions one at a time.
    fn min_expand(&mut self, mut s: usize, p: usize, ep: usize) -> Result<Option<usize>> {
        loop {
            if let Some(end) = self.do_match(s, ep + 1)? {
                return Ok(Some(end));
            }
            if !self.single_match(s, p, ep)? {
                return Ok(None);
            }
            s += 1;
        }
    }

    fn start_capture(&mut self, s: usize, p: usize, length: Length) -> Result<Option<usize>> {
        if self.level >= MAX_CAPTURES {
            return malformed("too many captures");
        }
        self.slots[self.level] = Slot { start: s, length };
        self.level += 1;
        let result = self.do_match(s, p)?;
        if result.is_none() {
            self.level -= 1; // undo the capture
        }
        Ok(result)
    }

    fn end_capture(&mut self, s: usize, p: usize) -> Result<Option<usize>> {
        // The innermost capture still open (`capture_to_close`).
        let Some(l) = (0..self.level).rev().find(|&l| self.slots[l].length == Length::Unfinished) else {
            return malformed("invalid pattern capture");
        };
        self.slots[l].length = Length::Bytes(s.saturating_sub(self.slots[l].start));
        let result = self.do_match(s, p)?;
        if result.is_none() {
            self.slots[l].length = Length::Unfinished; // undo the close
        }
        Ok(result)
    }

    /// A back-reference `%1`-`%9` (`match_capture`); `digit` is the ASCII digit.
    fn match_capture(&mut self, s: usize, digit: u8) -> Result<Option<usize>> {
        let index = usize::from(digit).wrapping_sub(usize::from(b'1'));
        let slot = match self.slots.get(index) {
            Some(slot) if index < self.level && slot.length != Length::Unfinished => *slot,
            _ => return malformed(format!("invalid capture index %{}", i32::from(digit) - i32::from(b'0'))),
        };
        // A position capture has no text; in C its length reads as huge and never fits.
        let Length::Bytes(len) = slot.length else {
            return Ok(None);
        };
        self.budget.charge(1 + len / 64)?;
        let captured = &self.src[slot.start..slot.start + len];
        Ok(self.src[s..].starts_with(captured).then_some(s + len))
    }

    /// Capture `i` of the last successful match (`get_onecapture`). With no captures,
    /// index 0 stands for the whole match `whole`, when the caller has one.
    pub(crate) fn capture(&self, i: usize, whole: Option<(usize, usize)>) -> Result<Capture<'s>> {
        if i >= self.level {
            return match whole {
                Some((start, end)) if i == 0 => Ok(Capture::Text(&self.src[start..end])),
                _ => malformed(format!("invalid capture index %{}", i + 1)),
            };
        }
        let slot = self.slots[i];
        match slot.length {
            Length::Unfinished => malformed("unfinished capture"),
            Length::Position => Ok(Capture::Position(slot.start + 1)),
            Length::Bytes(len) => Ok(Capture::Text(&self.src[slot.start..slot.start + len])),
        }
    }

    /// All values of the last successful match (`push_captures`): the captures, or the
    /// whole match when the pattern has none and the caller passes it.
    pub(crate) fn captures(&self, whole: Option<(usize, usize)>) -> Result<Vec<Capture<'s>>> {
        let count = if self.level == 0 && whole.is_some() { 1 } else { self.level };
        (0..count).map(|i| self.capture(i, whole)).collect()
    }
}

/// Whether `c` is in the class `%cl` (`match_class`), with the C locale's `ctype`. An
/// upper-case class letter is the complement; any other `cl` is the literal byte.
fn class_matches(c: u8, cl: u8) -> bool {
    let result = match cl.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'g' => c.is_ascii_graphic(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        // C's isspace includes the vertical tab, which Rust's is_ascii_whitespace omits.
        b's' => matches!(c, b' ' | b'\t'..=b'\r'),
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        b'z' => c == 0, // deprecated, but Lua 5.4 still accepts it
        _ => return cl == c,
    };
    if cl.is_ascii_lowercase() { result } else { !result }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sandbox::{Limits, TIME_BUDGET_EXCEEDED, arm, new_state};

    /// Backtracking that takes hours in Lua's C matcher.
    const SLOW: &str = "local s, p = string.rep('a', 3000), '.-.-.-.-.-.-b'\n";

    fn short_budget_state() -> Lua {
        let lua = new_state(Limits { memory: 64 * 1024 * 1024, time: Duration::from_millis(200) }).expect("state");
        arm(&lua).expect("arm");
        lua
    }

    #[test]
    fn pathological_patterns_stop_at_the_time_budget() {
        for body in [
            "return string.find(s, p)",
            "return s:match(p)",
            "return string.gsub(s, p, 'x')",
            "return string.gsub(s, p, function() end)",
            "for _ in string.gmatch(s, p) do end",
            "return string.find(s, '(.-)%1%1%1%1b')",
            "return string.gsub(s, 'a', function() while true do end end)",
            "return string.gsub(s, '(x*)', string.rep('%1', 1 << 20))",
        ] {
            let lua = short_budget_state();
            let err = lua.load(format!("{SLOW}{body}")).exec().expect_err(body);
            assert!(err.to_string().contains(TIME_BUDGET_EXCEEDED), "{body}: {err}");
        }
    }

    /// The spent budget is an ordinary Lua error that `pcall` catches; but once it is spent
    /// the hook stops the script at its next instruction, so the catch buys nothing.
    #[test]
    fn budget_error_stops_the_script_even_under_pcall() {
        let lua = short_budget_state();
        let err = lua
            .load(format!("{SLOW}local caught = not pcall(string.find, s, p)\nwhile true do end"))
            .exec()
            .expect_err("the budget is spent");
        assert!(err.to_string().contains(TIME_BUDGET_EXCEEDED), "{err}");
    }

    #[test]
    fn long_plain_searches_are_charged() {
        let lua = short_budget_state();
        let script = "local s = string.rep('a', 1 << 22) local n = string.rep('a', 1 << 16) .. 'b' \
                      return string.find(s, n, 1, true)";
        let err = lua.load(script).exec().expect_err("quadratic plain search");
        assert!(err.to_string().contains(TIME_BUDGET_EXCEEDED), "{err}");
    }

    #[test]
    fn engine_matches_directly() {
        let lua = Lua::new();
        let mut m = Matcher::new(&lua, b"key = value", b"(%w+)%s*=%s*(%w+)");
        assert_eq!(m.match_at(0).expect("match"), Some(11));
        let captures = m.captures(Some((0, 11))).expect("captures");
        assert_eq!(captures, vec![Capture::Text(b"key"), Capture::Text(b"value")]);

        let mut m = Matcher::new(&lua, b"ab", b"()b()");
        assert_eq!(m.match_at(1).expect("match"), Some(2));
        assert_eq!(m.captures(None).expect("captures"), vec![Capture::Position(2), Capture::Position(3)]);

        let mut m = Matcher::new(&lua, b"a", b"[a");
        assert!(matches!(m.match_at(0), Err(Error::Pattern(message)) if message == "malformed pattern (missing ']')"));
    }

    #[test]
    fn plain_search_finds_substrings() {
        let lua = Lua::new();
        let mut budget = Budget::new(&lua);
        assert_eq!(find_plain(&mut budget, b"hello", b"lo", 0).expect("search"), Some(3));
        assert_eq!(find_plain(&mut budget, b"hello", b"lo", 4).expect("search"), None);
        assert_eq!(find_plain(&mut budget, b"hello", b"", 5).expect("search"), Some(5));
        assert_eq!(find_plain(&mut budget, b"he", b"hello", 0).expect("search"), None);
        assert!(no_specials(b"plain text") && !no_specials(b"a.b"));
    }
}
