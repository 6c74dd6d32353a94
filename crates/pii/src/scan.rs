//! The scanner: [`Redactor::redact`] finds every rule's matches in a line and
//! replaces them.
//!
//! One line is scanned in four steps, none of which allocates when the line
//! is clean (the masks live in a per-thread buffer):
//!
//! 1. One pass (AVX-512 or AVX2, portable fallback: [`crate::classify`]) turns the line
//!    into bitmasks per 64 bytes: ASCII digits, ASCII letters and digits,
//!    the first byte of the short literal hint (`@`), where a long literal
//!    hint's case-folded first three bytes (`eyJ`, `bea`, key prefixes) may
//!    start (Teddy's nibble tables), and, derived with shifts and carries,
//!    the first digits of numeric runs (digits joined by one or two of
//!    ` -./()`, not inside a word) that span at least as many bytes as the
//!    shortest run some rule looks at, the digits after an uppercase letter,
//!    the bytes of numeric runs, and the count of colons between hex digits.
//! 2. The literal hints: the short ones (`@`) from their mask (others with
//!    memmem); the long ones from the trigram mask, each candidate checked
//!    against the patterns in their order, which is exactly Teddy's
//!    leftmost-first iteration (the patterns are read back from the packed
//!    searcher and checked against it; when that fails, Teddy runs as
//!    before). Each hit selects a window around it, bounded by `,{}[]<>`
//!    and line breaks.
//! 3. The numeric pass jumps with bit scans to the long runs' first digits
//!    only, and measures each run with the run-byte mask: its digit and dot
//!    counts decide which numeric rules look
//!    at it (a table answers "none" for most); the digits after uppercase
//!    letters open the `letters_before` windows (an IBAN's country code).
//!    Short runs (times, ids, versions) and the digits inside words (hex
//!    ids, `x86_64`) are never visited. Only when the line holds `::` or
//!    enough colons between hex digits for a `hex_colons` rule does the pass
//!    visit every digit instead, measuring the hex/colon cluster next to a
//!    colon.
//! 4. Each selected rule runs on its window only: first a dense DFA of its
//!    pattern (the gate) asks whether the window holds any match at all, and
//!    only then the regex finds them. The window is a span of the whole line,
//!    so `\b` and other look-around see the real neighbours: a window search
//!    finds what a whole-line search finds there.
//!
//! Matches then pass their rule's validator, overlapping matches are resolved
//! (the longest wins; at equal length the rule earlier in the file), and each
//! is checked against the exclusions. Every shortcut of steps 1 to 4 is
//! exact: the tests compare the results with all of them off (and the
//! numeric pass visiting every digit), and with a naive whole-line scan.
//!
//! Performance (bench pii-bench, Faro lines, 1 in 1000 with PII, one core).
//! Instructions per redacted byte, counted with callgrind on the AVX2 pass
//! (valgrind offers no AVX-512) over 16 MB of the benchmark's lines
//! (`examples/redact-file.rs`, `--toggle-collect` on [`Redactor::redact`]):
//! 13.2 before the AVX-512 pass, 12.3 now. The AVX-512 block takes 67
//! instructions where the AVX2 one takes about 175, which on this corpus
//! takes the AVX-512 pass to about 10.6 instructions per byte, a fifth fewer
//! than before. Of those 12.3 on the AVX2 pass: the block classification
//! 23 %, writing and joining its masks 16 %, the run lengths 14 %, the
//! literal hints, numeric runs and their triggers 21 %, the gates and
//! regexes of the windows those select 6 %. Wall clock: 1,010 MB/s (1,027
//! MB/s on CPU) with the AVX-512 pass over the benchmark's 256 MB, on a
//! shared machine with a load average of 5.8, so still to be confirmed on a
//! quiet one (bench/README.md). The memory the line is read from also costs:
//! 256 MB do not stay in any cache, and on data that fits in the cache the
//! whole scan ran about 15 % faster.
//!
//! Exclusion semantics: a match is excluded when an [`Exclusion`] has the same
//! rule id and the matched text occurs in that exclusion's `sample` excerpt.
//! Excluded matches are redacted all the same (raw PII is never stored); they
//! are only marked so that they do not count.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use regex_automata::Input;
use regex_automata::dfa::{Automaton, dense};
use regex_automata::util::syntax;

use crate::classify::{Classes, Trigrams, classify, is_run_separator, next_clear, next_set, previous_clear};
use crate::rules::{Compiled, LiteralSearcher, RuleSet};

/// The most a rule's gate DFA may take (bytes); a rule whose DFA would be
/// larger goes without a gate.
const GATE_SIZE_LIMIT: usize = 2 << 20;

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
    plan: Arc<Plan>,
}

/// What the scanner derives from the rules once per redactor.
#[derive(Debug)]
struct Plan {
    /// For each rule, a dense DFA of its pattern that tells cheaply whether
    /// a window holds any match at all; the rule's regex then runs only on
    /// windows that do (most numeric windows, timestamps and versions, hold
    /// none). `None` when the DFA would be too large.
    gates: Vec<Option<dense::DFA<Vec<u32>>>>,
    /// The rules without a prefilter, run on every whole line.
    unfiltered: Vec<usize>,
    /// The smallest `hex_colons` of the rules (`None`: no rule has one): a
    /// line with fewer inner colons plus two (see [`Classes::inner_colons`])
    /// and without `::` has no hex/colon run any rule looks at.
    min_hex_colons: Option<u32>,
    /// The fewest bytes a numeric run that `possible` lets through can
    /// span (its digits and dots; `k` dots need `k / 2` gaps, rounded up,
    /// so at least that many digits plus one): shorter runs are not visited.
    min_span: usize,
    /// Whether some rule has a `letters_before` prefilter.
    letters_rules: bool,
    /// Whether the numeric pass takes its events from the derived masks
    /// (numeric runs from [`Classes::runs`], letter-led digits from
    /// [`Classes::upper_digit`]) when no hex/colon run can qualify, instead
    /// of visiting every digit of every word. Off only in tests, which
    /// compare both.
    mask_events: bool,
    /// Whether the numeric pass has anything to look for.
    numeric: bool,
    /// `possible[min(digits, 63)][min(dots, 7)]`: whether a numeric run with
    /// that many digits and dots can meet some trigger without
    /// `letters_before` (the saturated rows and columns answer for every
    /// larger count), so most runs skip the trigger loop.
    possible: [[bool; 8]; 64],
    /// The first byte of the first short literal hint (`@`), found with the
    /// byte classes rather than memchr.
    hint: Option<u8>,
    /// The long literal hints, when they could be recovered: the line's
    /// trigram mask then gives their candidate positions and Teddy does not
    /// run. `None`: Teddy (or the automaton) searches every line.
    literals: Option<LongLiterals>,
}

/// The patterns of the packed literal searcher, in pattern order, and the
/// trigram set of their first three bytes.
#[derive(Debug)]
struct LongLiterals {
    patterns: Vec<Vec<u8>>,
    trigrams: Trigrams,
}

impl LongLiterals {
    /// The packed searcher's patterns, checked against the searcher itself:
    /// each at least three bytes long, and a search of each alone must
    /// report exactly it. Anything else (a pattern preferred over a longer
    /// one) leaves the literals to Teddy.
    fn recover(compiled: &Compiled) -> Option<LongLiterals> {
        let Some(LiteralSearcher::Packed(searcher)) = &compiled.literals else { return None };
        let patterns = compiled.literal_patterns.clone();
        if patterns.len() != compiled.literal_rules.len() {
            return None;
        }
        for (id, pattern) in patterns.iter().enumerate() {
            let found = searcher.find(pattern)?;
            if pattern.len() < 3
                || found.pattern().as_usize() != id
                || found.start() != 0
                || found.end() != pattern.len()
            {
                return None;
            }
        }
        let mut firsts: Vec<[u8; 3]> =
            patterns.iter().map(|pattern| [pattern[0] | 0x20, pattern[1] | 0x20, pattern[2] | 0x20]).collect();
        firsts.sort_unstable();
        firsts.dedup();
        Some(LongLiterals { trigrams: Trigrams::new(&firsts), patterns })
    }

    /// The pattern a leftmost-first search reports at `position`: the first
    /// in pattern order that occurs there.
    fn at(&self, bytes: &[u8], position: usize) -> Option<usize> {
        let rest = bytes.get(position..)?;
        self.patterns.iter().position(|pattern| rest.starts_with(pattern))
    }
}

impl Plan {
    fn new(compiled: &Compiled) -> Plan {
        let gates = compiled.rules.iter().map(|rule| gate(rule.pattern())).collect();
        let unfiltered = (0..compiled.rules.len()).filter(|&index| compiled.rules[index].is_unfiltered()).collect();
        let min_hex_colons = compiled.rules.iter().filter_map(|rule| rule.hex_colons).min();
        let letters_rules = compiled.numeric_triggers.iter().any(|(_, trigger)| trigger.letters_before.is_some());
        let hint = compiled.short_literals.first().and_then(|(finder, _)| finder.needle().first().copied());
        let mut possible = [[false; 8]; 64];
        for (digits, row) in (0u32..).zip(possible.iter_mut()) {
            for (dots, cell) in (0u32..).zip(row.iter_mut()) {
                *cell = compiled.numeric_triggers.iter().any(|(_, trigger)| {
                    let digits_fit = if digits == 63 {
                        trigger.max_digits >= 63
                    } else {
                        (trigger.min_digits..=trigger.max_digits).contains(&digits)
                    };
                    trigger.letters_before.is_none() && digits_fit && (dots == 7 || dots >= trigger.min_dots)
                });
            }
        }
        let min_span = (0..64usize)
            .flat_map(|digits| (0..8usize).map(move |dots| (digits, dots)))
            .filter(|&(digits, dots)| possible[digits][dots])
            // `dots` dots take at least half as many gaps between stretches
            // of digits (a gap is one or two separators).
            .map(|(digits, dots)| digits.max(dots.div_ceil(2) + 1) + dots)
            .min()
            .unwrap_or(usize::MAX);
        let numeric = min_hex_colons.is_some() || !compiled.numeric_triggers.is_empty();
        let literals = LongLiterals::recover(compiled);
        Plan {
            gates,
            unfiltered,
            min_hex_colons,
            min_span,
            letters_rules,
            mask_events: true,
            possible,
            numeric,
            hint,
            literals,
        }
    }
}

/// The gate DFA of a pattern, compiled with the rules' syntax (ASCII classes,
/// UTF-8 haystacks), so it accepts exactly the regex's language.
fn gate(pattern: &str) -> Option<dense::DFA<Vec<u32>>> {
    dense::Builder::new()
        .configure(
            dense::Config::new()
                .dfa_size_limit(Some(GATE_SIZE_LIMIT))
                .determinize_size_limit(Some(2 * GATE_SIZE_LIMIT)),
        )
        .syntax(syntax::Config::new().unicode(false).utf8(true))
        .build(pattern)
        .ok()
}

thread_local! {
    /// The byte-class masks of the line being scanned, reused across lines.
    static CLASSES: RefCell<Classes> = RefCell::new(Classes::default());
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
        let plan = Arc::new(Plan::new(&rules.inner));
        Redactor { rules: rules.clone(), exclusions, plan }
    }

    /// The rules this redactor applies.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Finds and replaces every match in `line`. Never panics; the result's
    /// `line` borrows `line` when nothing matched.
    pub fn redact<'a>(&self, line: &'a str) -> Redaction<'a> {
        let scan = Scan { compiled: &self.rules.inner, plan: &self.plan, bytes: line.as_bytes() };
        let mut candidates = Vec::new();
        CLASSES.with(|classes| match classes.try_borrow_mut() {
            Ok(mut classes) => scan_classified(&scan, &mut classes, &mut candidates),
            Err(_) => scan_classified(&scan, &mut Classes::default(), &mut candidates),
        });
        for &index in &scan.plan.unfiltered {
            search_window(&scan, index, 0, scan.bytes.len(), &mut candidates);
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

/// The literal hints and the numeric pass, with the line's byte classes.
fn scan_classified(scan: &Scan, classes: &mut Classes, candidates: &mut Vec<Candidate>) {
    let trigrams = scan.plan.literals.as_ref().map(|literals| &literals.trigrams);
    let min_span = if scan.plan.mask_events { scan.plan.min_span } else { 1 };
    classify(scan.bytes, scan.plan.hint.unwrap_or(0), trigrams, min_span, classes);
    let mut searched = Searched { windows: Vec::new() };
    search_literals(scan, classes, candidates, &mut searched);
    if scan.plan.numeric {
        search_numeric(scan, classes, candidates);
    }
}

/// One line being scanned, with the rules and the plan.
struct Scan<'a> {
    compiled: &'a Compiled,
    plan: &'a Plan,
    bytes: &'a [u8],
}

/// Runs rule `rule` on `bytes[start..end]` (look-around sees the whole line)
/// and keeps the validated matches. Numeric windows never repeat in a line
/// (runs are disjoint); hint windows are deduplicated by the caller.
fn search_window(scan: &Scan, rule: usize, start: usize, end: usize, candidates: &mut Vec<Candidate>) {
    let bytes = scan.bytes;
    let Some(compiled_rule) = scan.compiled.rules.get(rule) else { return };
    if start >= end || end > bytes.len() {
        return;
    }
    if let Some(Some(gate)) = scan.plan.gates.get(rule) {
        // The same language and the same look-around context: no match for
        // the gate means none for the regex. Errors fall through to the regex.
        let probe = Input::new(bytes).span(start..end).earliest(true);
        if let Ok(None) = gate.try_search_fwd(&probe) {
            return;
        }
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

fn search_literals(scan: &Scan, classes: &mut Classes, candidates: &mut Vec<Candidate>, searched: &mut Searched) {
    let (compiled, bytes) = (scan.compiled, scan.bytes);
    for (finder, rules) in &compiled.short_literals {
        let needle = finder.needle();
        if needle.first().is_some_and(|&first| Some(first) == scan.plan.hint) {
            // The hint byte's mask gives the candidates; non-overlapping hits
            // like memmem's.
            let mut from = 0;
            let mut allowed = 0;
            while let Some(hit_start) = next_set(&classes.hint, from) {
                if hit_start >= bytes.len() {
                    break;
                }
                from = hit_start + 1;
                if hit_start >= allowed && bytes[hit_start..].starts_with(needle) {
                    allowed = hit_start + needle.len();
                    search_hint(scan, rules, hit_start, hit_start + needle.len(), candidates, searched);
                }
            }
            continue;
        }
        for hit_start in finder.find_iter(bytes) {
            let hit_end = hit_start + finder.needle().len();
            search_hint(scan, rules, hit_start, hit_end, candidates, searched);
        }
    }
    let mut on_hit = |pattern: usize, start: usize, end: usize| {
        if let Some(rules) = compiled.literal_rules.get(pattern) {
            search_hint(scan, rules, start, end, candidates, searched);
        }
    };
    if let Some(literals) = &scan.plan.literals {
        // Leftmost-first and non-overlapping, as Teddy's iteration.
        let mut from = 0;
        while let Some(position) = next_set(&classes.literal, from) {
            match literals.at(bytes, position) {
                Some(pattern) => {
                    let end = position + literals.patterns[pattern].len();
                    on_hit(pattern, position, end);
                    from = end;
                }
                None => from = position + 1,
            }
        }
        return;
    }
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
    scan: &Scan,
    rules: &[usize],
    hit_start: usize,
    hit_end: usize,
    candidates: &mut Vec<Candidate>,
    searched: &mut Searched,
) {
    let bytes = scan.bytes;
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
        search_window(scan, rule, start, end, candidates);
    }
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

/// The numeric run from `first_digit`; its stretches of digits are measured
/// with the digit mask.
fn numeric_run(bytes: &[u8], digit: &[u64], first_digit: usize) -> NumericRun {
    let start = match first_digit.checked_sub(1).and_then(|index| bytes.get(index)) {
        Some(b'(' | b'+') => first_digit - 1,
        _ => first_digit,
    };
    let mut position = first_digit;
    let mut digits = 0u32;
    let mut dots = 0u32;
    let mut end;
    loop {
        end = next_clear(digit, position).clamp(position, bytes.len());
        digits = digits.saturating_add(u32::try_from(end - position).unwrap_or(u32::MAX));
        let mut after = end;
        let mut separator_dots = 0;
        while after < bytes.len() && after - end < 2 && is_run_separator(bytes[after]) {
            separator_dots += u32::from(bytes[after] == b'.');
            after += 1;
        }
        if after > end && bytes.get(after).is_some_and(u8::is_ascii_digit) {
            dots = dots.saturating_add(separator_dots);
            position = after;
            continue;
        }
        break;
    }
    NumericRun { start, end, digits, dots }
}

/// The numeric run from `first_digit`, measured with the line's run-byte
/// mask: the same run [`numeric_run`] measures byte by byte.
fn numeric_run_from_masks(bytes: &[u8], classes: &Classes, first_digit: usize) -> NumericRun {
    let start = match first_digit.checked_sub(1).and_then(|index| bytes.get(index)) {
        Some(b'(' | b'+') => first_digit - 1,
        _ => first_digit,
    };
    let end = next_clear(&classes.run_bytes, first_digit).clamp(first_digit, bytes.len());
    let digits = classes.digits_between(first_digit, end);
    let dots = bytes[first_digit..end].iter().filter(|&&byte| byte == b'.').count();
    NumericRun { start, end, digits, dots: u32::try_from(dots).unwrap_or(u32::MAX) }
}

/// The numeric pass (see the module docs). When no hex/colon run of the line
/// can qualify, its events come from the derived masks: every numeric run
/// from its first digit, and the digits after uppercase letters; the digits
/// inside words are not visited at all. Otherwise every digit is visited.
fn search_numeric(scan: &Scan, classes: &Classes, candidates: &mut Vec<Candidate>) {
    let hex_possible =
        scan.plan.min_hex_colons.is_some_and(|minimum| classes.double_colon || classes.inner_colons + 2 >= minimum);
    if hex_possible || !scan.plan.mask_events {
        search_numeric_by_digit(scan, classes, candidates);
        return;
    }
    let bytes = scan.bytes;
    let mut from = 0;
    while let Some(first_digit) = next_set(&classes.runs, from) {
        if first_digit >= bytes.len() {
            break;
        }
        let run = numeric_run_from_masks(bytes, classes, first_digit);
        from = run.end.max(first_digit + 1);
        search_run(scan, &run, candidates);
    }
    if scan.plan.letters_rules {
        let mut from = 0;
        while let Some(first_digit) = next_set(&classes.upper_digit, from) {
            if first_digit >= bytes.len() {
                break;
            }
            search_after_letters(scan, first_digit, candidates);
            from = first_digit + 1;
        }
    }
}

/// The numeric rules whose triggers a run meets (not the `letters_before` ones).
fn search_run(scan: &Scan, run: &NumericRun, candidates: &mut Vec<Candidate>) {
    if !scan.plan.possible[run.digits.min(63) as usize][run.dots.min(7) as usize] {
        return;
    }
    for &(index, trigger) in &scan.compiled.numeric_triggers {
        if run.digits < trigger.min_digits || run.digits > trigger.max_digits || run.dots < trigger.min_dots {
            continue;
        }
        if let Some(plus) = trigger.plus
            && plus != (scan.bytes.get(run.start) == Some(&b'+'))
        {
            continue;
        }
        if trigger.letters_before.is_none() {
            search_window(scan, index, run.start, run.end, candidates);
        }
    }
}

/// The numeric pass from digit to digit with the line's digit mask, over
/// words with its alphanumeric mask, looking for hex/colon runs too.
fn search_numeric_by_digit(scan: &Scan, classes: &Classes, candidates: &mut Vec<Candidate>) {
    let bytes = scan.bytes;
    let (digit, alnum) = (classes.digit.as_slice(), classes.alnum.as_slice());
    let mut from = 0;
    let mut hex_done_until = 0;
    while let Some(first_digit) = next_set(digit, from) {
        if first_digit >= bytes.len() {
            break;
        }
        let previous = first_digit.checked_sub(1).and_then(|index| bytes.get(index)).copied();
        if previous.is_some_and(|byte| byte.is_ascii_alphanumeric()) {
            // Inside a word (a hex id, a version such as x86_64): no match can
            // start in the rest of the word, except one that starts at the
            // letters before this digit (an IBAN), or an IPv6 address whose
            // group ends the word at a colon. Skip the word.
            let end = next_clear(alnum, first_digit).clamp(first_digit, bytes.len());
            if previous.is_some_and(|byte| byte.is_ascii_uppercase()) {
                search_after_letters(scan, first_digit, candidates);
            }
            if scan.plan.min_hex_colons.is_some() && first_digit >= hex_done_until {
                let colon_after = bytes.get(end) == Some(&b':');
                let colon_before = !colon_after && {
                    let word_start = previous_clear(alnum, first_digit).map_or(0, |index| index + 1).max(from);
                    word_start.checked_sub(1).and_then(|index| bytes.get(index)) == Some(&b':')
                };
                if colon_before || colon_after {
                    hex_done_until = search_hex(scan, first_digit, candidates);
                }
            }
            from = end;
            continue;
        }
        let run = numeric_run(bytes, digit, first_digit);
        from = run.end.max(first_digit + 1);
        search_run(scan, &run, candidates);
        if scan.plan.min_hex_colons.is_some() && first_digit >= hex_done_until {
            let next_to_colon = previous == Some(b':') || bytes.get(run.end) == Some(&b':');
            if next_to_colon {
                hex_done_until = search_hex(scan, first_digit, candidates);
            }
        }
    }
}

/// The `letters_before` rules for a digit that follows an uppercase letter.
fn search_after_letters(scan: &Scan, first_digit: usize, candidates: &mut Vec<Candidate>) {
    let bytes = scan.bytes;
    let mut digits = 0u32;
    while bytes.get(first_digit + digits as usize).is_some_and(u8::is_ascii_digit) && digits < 2 {
        digits += 1;
    }
    for &(index, trigger) in &scan.compiled.numeric_triggers {
        let Some(letters) = trigger.letters_before else { continue };
        if digits < trigger.min_digits.min(2) {
            continue;
        }
        if let Some((start, end)) = letters_window(bytes, first_digit, letters as usize) {
            search_window(scan, index, start, end, candidates);
        }
    }
}

/// The `hex_colons` rules on the hex/colon cluster around `position`; returns
/// the cluster's end.
fn search_hex(scan: &Scan, position: usize, candidates: &mut Vec<Candidate>) -> usize {
    let (start, end, colons) = hex_cluster(scan.bytes, position);
    let compressed = scan.bytes[start..end].windows(2).any(|pair| pair == b"::");
    for (index, rule) in scan.compiled.rules.iter().enumerate() {
        if rule.hex_colons.is_some_and(|minimum| compressed || colons >= minimum) {
            search_window(scan, index, start, end, candidates);
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
    fn numeric_runs_join_separators() {
        let numeric_run = |line: &[u8], first_digit: usize| {
            let mut classes = Classes::default();
            classify(line, 0, None, 1, &mut classes);
            numeric_run(line, &classes.digit, first_digit)
        };
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

    fn shipped() -> RuleSet {
        RuleSet::from_yaml(include_str!("../../../catalog/busflow/pii-rules.yaml"), "pii-rules.yaml")
            .expect("the shipped rules are valid")
    }

    /// The shipped rules' redactor with every shortcut of the plan off:
    /// Teddy and memchr for the hints, the regexes without gates.
    fn without_shortcuts(redactor: &Redactor) -> Redactor {
        let compiled = &redactor.rules.inner;
        let plan = Plan {
            gates: compiled.rules.iter().map(|_| None).collect(),
            hint: None,
            literals: None,
            mask_events: false,
            ..Plan::new(compiled)
        };
        Redactor { plan: Arc::new(plan), ..redactor.clone() }
    }

    #[test]
    fn long_literals_are_taken_from_the_rule_set() {
        let rules = shipped();
        let literals = LongLiterals::recover(&rules.inner).expect("the shipped literals are recovered");
        assert_eq!(literals.patterns.len(), rules.inner.literal_rules.len());
        assert!(literals.patterns.iter().any(|pattern| pattern == b"eyJ"));
        assert!(literals.patterns.iter().any(|pattern| pattern == b"Api-Key"));
    }

    #[test]
    fn shortcuts_change_no_result() {
        let redactor = Redactor::new(&shipped(), Vec::new());
        let plain = without_shortcuts(&redactor);
        assert!(redactor.plan.literals.is_some() && redactor.plan.hint == Some(b'@'));
        let pieces = [
            "jane.doe+tag@example.co.uk",
            "@ noon",
            "Authorization: Bearer abc123.def456-ghi",
            "BEARER 9f8e7d6c5b4a",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "X-Api-Key: 0123abcd4567efgh89",
            "API_KEY=abcdefghijklmnop",
            "AKIAIOSFODNN7EXAMPLE",
            "xoxb-123456789012-abcdefghij",
            "glpat-abcdefghij0123456789",
            "app api apikey",
            "DE89 3704 0044 0532 0130 00",
            "4111 1111 1111 1111",
            "+49 151 12345678",
            "(415) 555-2671",
            "192.168.1.20",
            "Chrome/120.0.0.0",
            "2001:db8::1",
            "2026-11-26T10:00:00.123Z",
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "fe80:0:0:0:202:b3ff:fe1e:8329",
            "00:1a:2b:3c:4d:5e",
            "12:30:45",
            "x64.10.0.0.1",
            "GB82WEST12345698765432",
            "AB12CD34",
        ];
        let mut state = 0x853c_49e6_748f_ea9bu64;
        for _ in 0..3000 {
            let mut line = String::new();
            for _ in 0..(state % 6 + 1) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                line.push_str(pieces[(state % pieces.len() as u64) as usize]);
                line.push_str([" ", ",", "", "\"", ":", "x"][(state >> 8) as usize % 6]);
            }
            assert_eq!(redactor.redact(&line), plain.redact(&line), "{line:?}");
        }
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
