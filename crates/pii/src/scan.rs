//! The scanner: [`Redactor::redact`] finds every rule's matches in a line and
//! replaces them.
//!
//! One line is scanned in three steps, none of which allocates when the line
//! is clean:
//!
//! 1. The rules' literal hints of three bytes or more (`eyJ`, `bearer`, key
//!    prefixes) are searched at once with Aho-Corasick's packed SIMD searcher
//!    (Teddy), the shorter ones (`@`) each with memchr/memmem. Each hit
//!    selects a window around it, bounded by `,{}[]<>` and line breaks.
//! 2. A word-at-a-time pass jumps from digit to digit. A digit inside a word
//!    (after a letter or digit: hex ids, `x86_64`) skips the rest of the word
//!    at once, after a look at the letters before it (an IBAN's country code)
//!    and at a colon after the word (an IPv6 group). Any other
//!    digit starts a numeric run (digits joined by up to two of ` -./()`),
//!    whose digit and dot counts decide which numeric rules look at it; a
//!    digit next to a colon (or in a word next to one) measures the hex/colon
//!    cluster around it for the `hex_colons` rules.
//! 3. Each selected rule's regex runs on its window only. The window is a span
//!    of the whole line, so `\b` and other look-around see the real
//!    neighbours: a window search finds what a whole-line search finds there.
//!
//! Matches then pass their rule's validator, overlapping matches are resolved
//! (the longest wins; at equal length the rule earlier in the file), and each
//! is checked against the exclusions.
//!
//! Performance (bench/pii.sh, Faro lines, 1 in 1000 with PII, one core of a
//! shared machine): 330-565 MB/s, 5 to 11 times the naive regex-per-rule
//! scan, short of the 1 GB/s target. Regex work is a few percent; the time
//! goes to the byte loops over numeric runs and words (hex ids, timestamps)
//! and to the Teddy and memchr literal searches, each a separate pass. The
//! next step is one SIMD classification pass (digit, alphanumeric, colon
//! bitmasks per 32 bytes) feeding both the runs and the word skips.
//!
//! Exclusion semantics: a match is excluded when an [`Exclusion`] has the same
//! rule id and the matched text occurs in that exclusion's `sample` excerpt.
//! Excluded matches are redacted all the same (raw PII is never stored); they
//! are only marked so that they do not count.

use std::borrow::Cow;

use regex_automata::Input;

use crate::rules::{Compiled, LiteralSearcher, RuleSet};

/// The most a literal hint's window reaches on each side of the hint.
const HINT_REACH: usize = 1024;
/// The most a hex/colon cluster reaches on each side of its first digit.
const HEX_REACH: usize = 64;
/// The most an IBAN-like window reaches past its country code.
const LETTERS_WINDOW: usize = 48;

/// A reviewed false positive from the `pii-exclusions` contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    /// The rule whose matches this exclusion covers.
    pub rule_id: String,
    /// An excerpt of a real line; a match of the rule whose text occurs in it is excluded.
    pub sample: String,
    /// Who approved the exclusion.
    pub reviewer: String,
}

/// One match of one rule in a line. Offsets are byte offsets into the
/// original line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The id of the rule that matched.
    pub rule_id: String,
    /// Start of the matched text (inclusive).
    pub start: usize,
    /// End of the matched text (exclusive).
    pub end: usize,
    /// Whether an exclusion covers this match; it is redacted all the same.
    pub excluded: bool,
}

/// The result of redacting one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction<'a> {
    /// The line with every match replaced; borrowed when nothing matched.
    pub line: Cow<'a, str>,
    /// The matches, ordered by position, never overlapping.
    pub matches: Vec<Match>,
}

impl Redaction<'_> {
    /// The ids of the rules that matched, sorted, each once.
    pub fn rule_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.matches.iter().map(|found| found.rule_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Whether the line had matches and every one of them is excluded (false
    /// for a clean line). A line counts as carrying PII when it has a match
    /// that is not excluded: `!matches.is_empty() && !all_excluded()`.
    pub fn all_excluded(&self) -> bool {
        !self.matches.is_empty() && self.matches.iter().all(|found| found.excluded)
    }
}

/// Redacts lines with a [`RuleSet`] and a list of exclusions. Immutable and
/// `Send + Sync`: share one across threads.
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: RuleSet,
    exclusions: Vec<Exclusion>,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    rule: usize,
    start: usize,
    end: usize,
}

/// The windows already searched for each rule in the current line, so a
/// window is never searched twice.
struct Searched {
    windows: Vec<Candidate>,
}

impl Searched {
    fn covers(&self, rule: usize, start: usize, end: usize) -> bool {
        self.windows.iter().any(|window| window.rule == rule && window.start <= start && end <= window.end)
    }
}

impl Redactor {
    /// A redactor for these rules; exclusions naming unknown rule ids never apply.
    pub fn new(rules: &RuleSet, exclusions: Vec<Exclusion>) -> Redactor {
        Redactor { rules: rules.clone(), exclusions }
    }

    /// The rules this redactor applies.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Finds and replaces every match in `line`. Never panics; the result's
    /// `line` borrows `line` when nothing matched.
    pub fn redact<'a>(&self, line: &'a str) -> Redaction<'a> {
        let compiled = &*self.rules.inner;
        let bytes = line.as_bytes();
        let mut candidates = Vec::new();
        let mut searched = Searched { windows: Vec::new() };
        search_literals(compiled, bytes, &mut candidates, &mut searched);
        search_numeric(compiled, bytes, &mut candidates);
        for (index, rule) in compiled.rules.iter().enumerate() {
            if rule.is_unfiltered() {
                search_window(compiled, bytes, index, 0, bytes.len(), &mut candidates);
            }
        }
        if candidates.is_empty() {
            return Redaction { line: Cow::Borrowed(line), matches: Vec::new() };
        }
        let chosen = resolve_overlaps(candidates);
        self.build(line, chosen)
    }

    fn build<'a>(&self, line: &'a str, chosen: Vec<Candidate>) -> Redaction<'a> {
        let rules = &self.rules.inner.rules;
        let mut redacted = String::with_capacity(line.len() + 16 * chosen.len());
        let mut matches = Vec::with_capacity(chosen.len());
        let mut position = 0;
        for candidate in chosen {
            let (Some(rule), Some(before), Some(text)) = (
                rules.get(candidate.rule),
                line.get(position..candidate.start),
                line.get(candidate.start..candidate.end),
            ) else {
                debug_assert!(false, "match bounds outside the line or off a character boundary");
                continue;
            };
            redacted.push_str(before);
            redacted.push_str(rule.replacement());
            position = candidate.end;
            let excluded = self
                .exclusions
                .iter()
                .any(|exclusion| exclusion.rule_id == rule.id() && exclusion.sample.contains(text));
            matches.push(Match { rule_id: rule.id().to_owned(), start: candidate.start, end: candidate.end, excluded });
        }
        redacted.push_str(line.get(position..).unwrap_or_default());
        Redaction { line: Cow::Owned(redacted), matches }
    }
}

/// Runs rule `rule` on `bytes[start..end]` (look-around sees the whole line)
/// and keeps the validated matches. Numeric windows never repeat in a line
/// (runs are disjoint); hint windows are deduplicated by the caller.
fn search_window(
    compiled: &Compiled,
    bytes: &[u8],
    rule: usize,
    start: usize,
    end: usize,
    candidates: &mut Vec<Candidate>,
) {
    let Some(compiled_rule) = compiled.rules.get(rule) else { return };
    if start >= end || end > bytes.len() {
        return;
    }
    let input = Input::new(bytes).span(start..end);
    for found in compiled_rule.regex.find_iter(input) {
        if found.is_empty() {
            continue;
        }
        let valid =
            compiled_rule.validator().is_none_or(|validator| validator.accepts(bytes, found.start(), found.end()));
        if valid {
            candidates.push(Candidate { rule, start: found.start(), end: found.end() });
        }
    }
}

fn is_hint_boundary(byte: u8) -> bool {
    matches!(byte, b',' | b'{' | b'}' | b'[' | b']' | b'<' | b'>' | b'\n' | b'\r')
}

fn search_literals(compiled: &Compiled, bytes: &[u8], candidates: &mut Vec<Candidate>, searched: &mut Searched) {
    for (finder, rules) in &compiled.short_literals {
        for hit_start in finder.find_iter(bytes) {
            let hit_end = hit_start + finder.needle().len();
            search_hint(compiled, bytes, rules, hit_start, hit_end, candidates, searched);
        }
    }
    let mut on_hit = |pattern: usize, start: usize, end: usize| {
        if let Some(rules) = compiled.literal_rules.get(pattern) {
            search_hint(compiled, bytes, rules, start, end, candidates, searched);
        }
    };
    match &compiled.literals {
        None => {}
        Some(LiteralSearcher::Packed(searcher)) => {
            for hit in searcher.find_iter(bytes) {
                on_hit(hit.pattern().as_usize(), hit.start(), hit.end());
            }
        }
        Some(LiteralSearcher::Automaton(searcher)) => {
            for hit in searcher.find_iter(bytes) {
                on_hit(hit.pattern().as_usize(), hit.start(), hit.end());
            }
        }
    }
}

/// Runs `rules` on the window around a literal hint at `hit_start..hit_end`.
fn search_hint(
    compiled: &Compiled,
    bytes: &[u8],
    rules: &[usize],
    hit_start: usize,
    hit_end: usize,
    candidates: &mut Vec<Candidate>,
    searched: &mut Searched,
) {
    let lowest = hit_start.saturating_sub(HINT_REACH);
    let mut start = hit_start.min(bytes.len());
    while start > lowest && !is_hint_boundary(bytes[start - 1]) {
        start -= 1;
    }
    let highest = hit_end.saturating_add(HINT_REACH).min(bytes.len());
    let mut end = hit_end.min(highest);
    while end < highest && !is_hint_boundary(bytes[end]) {
        end += 1;
    }
    for &rule in rules {
        if searched.covers(rule, start, end) {
            continue;
        }
        searched.windows.push(Candidate { rule, start, end });
        search_window(compiled, bytes, rule, start, end, candidates);
    }
}

/// The position of the first ASCII digit at or after `from`, eight bytes at a time.
fn next_digit(bytes: &[u8], from: usize) -> Option<usize> {
    const LOW: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const BELOW_TEN: u64 = 0x7676_7676_7676_7676;
    let rest = bytes.get(from..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut offset = from;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let shifted = u64::from_le_bytes(word) ^ ZEROS;
        // A byte is a digit when (byte ^ 0x30) < 10: its high bit stays clear
        // after adding 0x76 to its low seven bits, and it had no high bit.
        let not_digit = ((shifted & LOW) + BELOW_TEN) | shifted;
        let digits = !not_digit & HIGH;
        if digits != 0 {
            return Some(offset + (digits.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks.remainder().iter().position(u8::is_ascii_digit).map(|position| offset + position)
}

fn is_run_separator(byte: u8) -> bool {
    matches!(byte, b' ' | b'-' | b'.' | b'/' | b'(' | b')')
}

/// A maximal run of digits joined by at most two separators.
struct NumericRun {
    /// The first digit, or the `(`/`+` just before it.
    start: usize,
    /// After the last digit.
    end: usize,
    digits: u32,
    dots: u32,
}

fn numeric_run(bytes: &[u8], first_digit: usize) -> NumericRun {
    let start = match first_digit.checked_sub(1).and_then(|index| bytes.get(index)) {
        Some(b'(' | b'+') => first_digit - 1,
        _ => first_digit,
    };
    let mut position = first_digit;
    let mut digits = 0u32;
    let mut dots = 0u32;
    let mut end;
    loop {
        while let Some(byte) = bytes.get(position)
            && byte.is_ascii_digit()
        {
            digits = digits.saturating_add(1);
            position += 1;
        }
        end = position;
        let mut after = position;
        let mut separator_dots = 0;
        while after < bytes.len() && after - position < 2 && is_run_separator(bytes[after]) {
            separator_dots += u32::from(bytes[after] == b'.');
            after += 1;
        }
        if after > position && bytes.get(after).is_some_and(u8::is_ascii_digit) {
            dots = dots.saturating_add(separator_dots);
            position = after;
            continue;
        }
        break;
    }
    NumericRun { start, end, digits, dots }
}

fn search_numeric(compiled: &Compiled, bytes: &[u8], candidates: &mut Vec<Candidate>) {
    if compiled.numeric_triggers.is_empty() && compiled.rules.iter().all(|rule| rule.hex_colons.is_none()) {
        return;
    }
    let mut from = 0;
    let mut hex_done_until = 0;
    while let Some(first_digit) = next_digit(bytes, from) {
        let previous = first_digit.checked_sub(1).and_then(|index| bytes.get(index)).copied();
        if previous.is_some_and(|byte| byte.is_ascii_alphanumeric()) {
            // Inside a word (a hex id, a version such as x86_64): no match can
            // start in the rest of the word, except one that starts at the
            // letters before this digit (an IBAN), or an IPv6 address whose
            // group ends the word at a colon. Skip the word.
            let mut end = first_digit;
            while bytes.get(end).is_some_and(u8::is_ascii_alphanumeric) {
                end += 1;
            }
            if previous.is_some_and(|byte| byte.is_ascii_uppercase()) {
                search_after_letters(compiled, bytes, first_digit, candidates);
            }
            let mut word_start = first_digit;
            while word_start > from && bytes[word_start - 1].is_ascii_alphanumeric() {
                word_start -= 1;
            }
            let colon_before = word_start.checked_sub(1).and_then(|index| bytes.get(index)) == Some(&b':');
            if (colon_before || bytes.get(end) == Some(&b':')) && first_digit >= hex_done_until {
                hex_done_until = search_hex(compiled, bytes, first_digit, candidates);
            }
            from = end;
            continue;
        }
        let run = numeric_run(bytes, first_digit);
        from = run.end.max(first_digit + 1);
        for &(index, trigger) in &compiled.numeric_triggers {
            if run.digits < trigger.min_digits || run.digits > trigger.max_digits || run.dots < trigger.min_dots {
                continue;
            }
            if let Some(plus) = trigger.plus
                && plus != (bytes.get(run.start) == Some(&b'+'))
            {
                continue;
            }
            if trigger.letters_before.is_none() {
                search_window(compiled, bytes, index, run.start, run.end, candidates);
            }
        }
        let next_to_colon = previous == Some(b':') || bytes.get(run.end) == Some(&b':');
        if next_to_colon && first_digit >= hex_done_until {
            hex_done_until = search_hex(compiled, bytes, first_digit, candidates);
        }
    }
}

/// The `letters_before` rules for a digit that follows an uppercase letter.
fn search_after_letters(compiled: &Compiled, bytes: &[u8], first_digit: usize, candidates: &mut Vec<Candidate>) {
    let mut digits = 0u32;
    while bytes.get(first_digit + digits as usize).is_some_and(u8::is_ascii_digit) && digits < 2 {
        digits += 1;
    }
    for (index, rule) in compiled.rules.iter().enumerate() {
        let Some(trigger) = rule.numeric else { continue };
        let Some(letters) = trigger.letters_before else { continue };
        if digits < trigger.min_digits.min(2) {
            continue;
        }
        if let Some((start, end)) = letters_window(bytes, first_digit, letters as usize) {
            search_window(compiled, bytes, index, start, end, candidates);
        }
    }
}

/// The `hex_colons` rules on the hex/colon cluster around `position`; returns
/// the cluster's end.
fn search_hex(compiled: &Compiled, bytes: &[u8], position: usize, candidates: &mut Vec<Candidate>) -> usize {
    let (start, end, colons) = hex_cluster(bytes, position);
    let compressed = bytes[start..end].windows(2).any(|pair| pair == b"::");
    for (index, rule) in compiled.rules.iter().enumerate() {
        if rule.hex_colons.is_some_and(|minimum| compressed || colons >= minimum) {
            search_window(compiled, bytes, index, start, end, candidates);
        }
    }
    end
}

/// The window of a run that follows exactly `letters` uppercase letters: from
/// the letters on over letters, digits and single spaces.
fn letters_window(bytes: &[u8], first_digit: usize, letters: usize) -> Option<(usize, usize)> {
    let start = first_digit.checked_sub(letters)?;
    if !bytes.get(start..first_digit)?.iter().all(u8::is_ascii_uppercase) {
        return None;
    }
    if start > 0 && bytes.get(start - 1).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    let limit = (first_digit + LETTERS_WINDOW).min(bytes.len());
    let mut end = first_digit;
    while end < limit {
        let byte = bytes[end];
        let joins =
            byte.is_ascii_alphanumeric() || (byte == b' ' && bytes.get(end + 1).is_some_and(u8::is_ascii_alphanumeric));
        if !joins {
            break;
        }
        end += 1;
    }
    Some((start, end))
}

fn is_hex_or_colon(byte: u8) -> bool {
    byte.is_ascii_hexdigit() || byte == b':'
}

/// The run of hex digits and colons around `position` and its colon count.
fn hex_cluster(bytes: &[u8], position: usize) -> (usize, usize, u32) {
    let lowest = position.saturating_sub(HEX_REACH);
    let mut start = position;
    while start > lowest && is_hex_or_colon(bytes[start - 1]) {
        start -= 1;
    }
    let highest = position.saturating_add(HEX_REACH).min(bytes.len());
    let mut end = position;
    while end < highest && is_hex_or_colon(bytes[end]) {
        end += 1;
    }
    let colons = bytes[start..end].iter().filter(|&&byte| byte == b':').count();
    (start, end, u32::try_from(colons).unwrap_or(u32::MAX))
}

/// Keeps the longest of overlapping matches (at equal length the earlier
/// rule, then the earlier start) and returns them ordered by position.
fn resolve_overlaps(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    candidates.sort_by(|left, right| {
        (right.end - right.start)
            .cmp(&(left.end - left.start))
            .then(left.rule.cmp(&right.rule))
            .then(left.start.cmp(&right.start))
    });
    let mut chosen: Vec<Candidate> = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        if chosen.iter().all(|kept| candidate.end <= kept.start || kept.end <= candidate.start) {
            chosen.push(candidate);
        }
    }
    chosen.sort_by_key(|candidate| candidate.start);
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_digit_finds_digits_in_and_after_words() {
        assert_eq!(next_digit(b"abcdefghij5", 0), Some(10));
        assert_eq!(next_digit(b"a1", 0), Some(1));
        assert_eq!(next_digit(b"abc", 0), None);
        assert_eq!(next_digit(b"0123456789", 3), Some(3));
        assert_eq!(next_digit(b"\xff\x80:/9", 0), Some(4));
        assert_eq!(next_digit(b"ab", 5), None);
    }

    #[test]
    fn next_digit_agrees_with_a_plain_search_on_every_byte() {
        for byte in 0..=255u8 {
            let mut line = vec![b'x'; 13];
            line[9] = byte;
            let expected = line.iter().position(u8::is_ascii_digit);
            assert_eq!(next_digit(&line, 0), expected, "byte {byte}");
        }
    }

    #[test]
    fn numeric_runs_join_separators() {
        let line = b"call (415) 555-2671 now";
        let run = numeric_run(line, 6);
        assert_eq!((run.start, run.end, run.digits), (5, 19, 10));
        let line = b"at 2026-11-26T10:00";
        let run = numeric_run(line, 3);
        assert_eq!((run.end, run.digits), (13, 8));
        let line = b"ip 10.0.0.1 up";
        let run = numeric_run(line, 3);
        assert_eq!((run.dots, run.digits), (3, 5));
    }

    #[test]
    fn overlaps_keep_the_longest() {
        let chosen = resolve_overlaps(vec![
            Candidate { rule: 2, start: 5, end: 15 },
            Candidate { rule: 1, start: 0, end: 20 },
            Candidate { rule: 0, start: 25, end: 30 },
        ]);
        let kept: Vec<usize> = chosen.iter().map(|candidate| candidate.rule).collect();
        assert_eq!(kept, vec![1, 0]);
    }
}
