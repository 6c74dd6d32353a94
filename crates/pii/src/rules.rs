//! The rules file: its serde shape (strict, `deny_unknown_fields`), the checks
//! that turn it into a [`RuleSet`] (compiled regexes, validators, replacements
//! and the prefilter tables the scanner needs), and the errors naming the rule
//! at fault.
//!
//! The file format:
//!
//! ```yaml
//! redaction: "[REDACTED:{id}]"   # optional; the default replacement, {id} is the rule id
//! rules:
//!   - id: email                  # unique, [a-z0-9_]+
//!     description: an e-mail address
//!     pattern: '[A-Za-z0-9._%+-]+@...'  # regex, ASCII semantics (\d, \w, \b are ASCII)
//!     validate: luhn             # optional: luhn, iban_mod97, ipv4_octets, ipv6_groups
//!     replacement: "[EMAIL]"     # optional, overrides `redaction`
//!     prefilter:                 # optional: where the regex can match (see below)
//!       literals: ["@"]
//! ```
//!
//! A rule's regex runs only where its prefilter fires; a rule without one runs
//! on every whole line (correct, but slow). The prefilter keys:
//!
//! - `literals`: strings every match contains, looked for as written, in
//!   lower case, in upper case, capitalized and in title case (`bearer`,
//!   `BEARER`, `Bearer`, `Api-Key`); the regex runs on the span around each occurrence, bounded by
//!   `,{}[]<>` and line breaks (and at most 1 KiB on each side).
//! - `digits: [min, max]`, `min_dots`, `plus`, `letters_before`: a numeric run
//!   (digits joined by at most two of ` -./()`, with a `(` or `+` just before
//!   the first digit) qualifies when its digit count lies in `[min, max]`, it
//!   has at least `min_dots` dots, it starts with `+` when `plus` is true, and
//!   it follows exactly `letters_before` uppercase letters (the window then
//!   starts at those letters and runs on over letters, digits and single
//!   spaces: an IBAN's country code and groups). Keys not given do not restrict.
//!   Matches are assumed to start at a word boundary: a run whose first digit
//!   follows an ASCII letter or digit is skipped (except by `letters_before`
//!   rules, whose letters are exactly those), which keeps hex ids cheap.
//! - `hex_colons: n`: a run of hex digits and colons holding at least `n`
//!   colons or a `::`, found from a decimal digit next to a colon or in a
//!   word next to one (an IPv6 address without any decimal digit is missed;
//!   `ipv6_groups` rejects those anyway).

use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind, packed};
use memchr::memmem;
use regex_automata::meta;
use regex_automata::util::syntax;
use serde::Deserialize;

use crate::error::{Error, RuleProblem};
use crate::validate::Validator;

const DEFAULT_REDACTION: &str = "[REDACTED:{id}]";
/// Literals shorter than this are searched one by one with memchr/memmem: in
/// a packed (Teddy) set they would shrink every pattern's fingerprint to one
/// byte and make common letters candidates.
const PACKED_MINIMUM: usize = 3;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    redaction: Option<String>,
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    description: String,
    pattern: String,
    #[serde(default)]
    validate: Option<String>,
    #[serde(default)]
    replacement: Option<String>,
    #[serde(default)]
    prefilter: Option<RawPrefilter>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrefilter {
    #[serde(default)]
    literals: Vec<String>,
    #[serde(default)]
    digits: Option<(u32, u32)>,
    #[serde(default)]
    min_dots: Option<u32>,
    #[serde(default)]
    plus: Option<bool>,
    #[serde(default)]
    letters_before: Option<u32>,
    #[serde(default)]
    hex_colons: Option<u32>,
}

/// One redaction rule, validated and compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    id: String,
    description: String,
    pattern: String,
    validator: Option<Validator>,
    replacement: String,
    pub(crate) regex: meta::Regex,
    pub(crate) numeric: Option<NumericTrigger>,
    pub(crate) hex_colons: Option<u32>,
    pub(crate) has_literals: bool,
}

impl Rule {
    /// The stable id (`email`, `payment_card`, ...), also used in exclusions.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What the rule finds, for people.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The regex as written in the rules file.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The check every match must pass, if any.
    pub fn validator(&self) -> Option<Validator> {
        self.validator
    }

    /// The text a match is replaced with.
    pub fn replacement(&self) -> &str {
        &self.replacement
    }

    /// Whether the rule has no prefilter and so runs on every whole line.
    pub(crate) fn is_unfiltered(&self) -> bool {
        !self.has_literals && self.numeric.is_none() && self.hex_colons.is_none()
    }
}

/// The search for the long literal hints: Teddy (SIMD) when the CPU and the
/// pattern count allow it, an Aho-Corasick automaton otherwise.
#[derive(Debug)]
pub(crate) enum LiteralSearcher {
    Packed(packed::Searcher),
    Automaton(AhoCorasick),
}

/// When a numeric run is a candidate for a rule (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NumericTrigger {
    pub(crate) min_digits: u32,
    pub(crate) max_digits: u32,
    pub(crate) min_dots: u32,
    pub(crate) plus: Option<bool>,
    pub(crate) letters_before: Option<u32>,
}

/// A validated rules file: the rules in file order (earlier rules win ties
/// between overlapping matches of equal length) and the scanner's tables.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub(crate) inner: Arc<Compiled>,
}

#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) rules: Vec<Rule>,
    /// The literal hints of at least three bytes, in each case variant
    /// (searched with Teddy, SIMD).
    pub(crate) literals: Option<LiteralSearcher>,
    /// The patterns of `literals`, in pattern order.
    pub(crate) literal_patterns: Vec<Vec<u8>>,
    /// For each literal pattern index, the rules it belongs to.
    pub(crate) literal_rules: Vec<Vec<usize>>,
    /// The shorter literal hints (`@`), each searched on its own with
    /// memchr/memmem, and the rules each belongs to.
    pub(crate) short_literals: Vec<(memmem::Finder<'static>, Vec<usize>)>,
    /// The numeric triggers with their rule index, compact for the per-run loop.
    pub(crate) numeric_triggers: Vec<(usize, NumericTrigger)>,
}

impl RuleSet {
    /// Parses and validates a rules file. `file_name` only labels errors.
    /// Every problem is reported at once: unknown fields, empty or duplicate
    /// ids, invalid regexes (with the rule id), unknown validators, empty
    /// literals, inverted digit ranges, and replacements that a rule would
    /// match again (redaction must be idempotent).
    pub fn from_yaml(text: &str, file_name: &str) -> Result<RuleSet, Error> {
        let raw: RawFile = serde_saphyr::from_str(text)
            .map_err(|error| Error::Yaml { file: file_name.to_owned(), message: first_line(&error.to_string()) })?;
        let redaction = raw.redaction.unwrap_or_else(|| DEFAULT_REDACTION.to_owned());
        let mut problems = Vec::new();
        let mut rules: Vec<Rule> = Vec::new();
        let mut literal_patterns: Vec<String> = Vec::new();
        let mut literal_rules: Vec<Vec<usize>> = Vec::new();
        let mut short_literals: Vec<(String, Vec<usize>)> = Vec::new();
        if raw.rules.is_empty() {
            problems.push(RuleProblem { rule_id: String::new(), message: "the file has no rules".to_owned() });
        }
        for raw_rule in raw.rules {
            let id = raw_rule.id.clone();
            let mut problem = |message: String| problems.push(RuleProblem { rule_id: id.clone(), message });
            if id.is_empty()
                || !id.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
            {
                problem("the id must be non-empty and use only a-z, 0-9 and _".to_owned());
            }
            if rules.iter().any(|rule| rule.id == id) {
                problem("duplicate rule id".to_owned());
            }
            let validator = match raw_rule.validate.as_deref() {
                None => None,
                Some(name) => {
                    let found = Validator::from_name(name);
                    if found.is_none() {
                        problem(format!("unknown validator {name:?} (known: {})", Validator::NAMES.join(", ")));
                    }
                    found
                }
            };
            let regex = match compile(&raw_rule.pattern) {
                Ok(regex) => Some(regex),
                Err(message) => {
                    problem(format!("invalid pattern: {message}"));
                    None
                }
            };
            let prefilter = raw_rule.prefilter.unwrap_or_default();
            if prefilter.literals.iter().any(String::is_empty) {
                problem("prefilter literals must not be empty".to_owned());
            }
            if let Some((min, max)) = prefilter.digits
                && min > max
            {
                problem(format!("prefilter digits range [{min}, {max}] is inverted"));
            }
            let numeric_keys = prefilter.digits.is_some()
                || prefilter.min_dots.is_some()
                || prefilter.plus.is_some()
                || prefilter.letters_before.is_some();
            let numeric = numeric_keys.then(|| {
                let (min_digits, max_digits) = prefilter.digits.unwrap_or((1, u32::MAX));
                NumericTrigger {
                    min_digits: min_digits.max(1),
                    max_digits,
                    min_dots: prefilter.min_dots.unwrap_or(0),
                    plus: prefilter.plus,
                    letters_before: prefilter.letters_before,
                }
            });
            let replacement = raw_rule.replacement.unwrap_or_else(|| redaction.replace("{id}", &id));
            let Some(regex) = regex else { continue };
            let index = rules.len();
            for literal in &prefilter.literals {
                for variant in case_variants(literal) {
                    if variant.len() < PACKED_MINIMUM {
                        match short_literals.iter_mut().find(|(known, _)| *known == variant) {
                            Some((_, owners)) => owners.push(index),
                            None => short_literals.push((variant, vec![index])),
                        }
                        continue;
                    }
                    match literal_patterns.iter().position(|known| *known == variant) {
                        Some(position) => literal_rules[position].push(index),
                        None => {
                            literal_patterns.push(variant);
                            literal_rules.push(vec![index]);
                        }
                    }
                }
            }
            rules.push(Rule {
                id: raw_rule.id,
                description: raw_rule.description,
                pattern: raw_rule.pattern,
                validator,
                replacement,
                regex,
                numeric,
                hex_colons: prefilter.hex_colons,
                has_literals: !prefilter.literals.is_empty(),
            });
        }
        // Idempotence: no rule may match any rule's replacement.
        for rule in &rules {
            for other in &rules {
                if other.regex.is_match(rule.replacement.as_bytes()) {
                    problems.push(RuleProblem {
                        rule_id: rule.id.clone(),
                        message: format!("the replacement {:?} is matched by rule {:?}", rule.replacement, other.id),
                    });
                }
            }
        }
        let packed = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(&literal_patterns)
            .build();
        let literals = if literal_patterns.is_empty() {
            None
        } else if let Some(searcher) = packed {
            Some(LiteralSearcher::Packed(searcher))
        } else {
            match AhoCorasickBuilder::new().match_kind(MatchKind::Standard).build(&literal_patterns) {
                Ok(searcher) => Some(LiteralSearcher::Automaton(searcher)),
                Err(error) => {
                    problems.push(RuleProblem {
                        rule_id: String::new(),
                        message: format!("cannot build the literal prefilter: {error}"),
                    });
                    None
                }
            }
        };
        if !problems.is_empty() {
            return Err(Error::Rules { file: file_name.to_owned(), problems });
        }
        let short_literals = short_literals
            .into_iter()
            .map(|(literal, owners)| (memmem::Finder::new(literal.as_bytes()).into_owned(), owners))
            .collect();
        let numeric_triggers =
            rules.iter().enumerate().filter_map(|(index, rule)| rule.numeric.map(|trigger| (index, trigger))).collect();
        let literal_patterns = literal_patterns.into_iter().map(String::into_bytes).collect();
        Ok(RuleSet {
            inner: Arc::new(Compiled {
                rules,
                literals,
                literal_patterns,
                literal_rules,
                short_literals,
                numeric_triggers,
            }),
        })
    }

    /// The rules in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.inner.rules
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.inner.rules.iter().find(|rule| rule.id == id)
    }
}

/// Compiles a pattern with ASCII semantics: `\d`, `\w` and `\b` are ASCII,
/// which is what the rules mean and keeps the automata small.
fn compile(pattern: &str) -> Result<meta::Regex, String> {
    meta::Regex::builder()
        .syntax(syntax::Config::new().unicode(false).utf8(true))
        .build(pattern)
        .map_err(|error| error.to_string().split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A literal as written, in lower case, in upper case, capitalized and in
/// title case (`Api-Key`): the
/// spellings a case-insensitive hint meets in practice. (A case-insensitive
/// Aho-Corasick automaton would cover every mixed spelling too, but it cannot
/// use the SIMD packed searcher, which is most of the prefilter's speed.)
fn case_variants(literal: &str) -> Vec<String> {
    let lower = literal.to_ascii_lowercase();
    let mut capitalized = lower.clone();
    if let Some(first) = capitalized.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    let mut title = String::with_capacity(lower.len());
    let mut word_start = true;
    for character in lower.chars() {
        title.push(if word_start { character.to_ascii_uppercase() } else { character });
        word_start = !character.is_ascii_alphanumeric();
    }
    let mut variants = vec![literal.to_owned(), lower, literal.to_ascii_uppercase(), capitalized, title];
    variants.sort();
    variants.dedup();
    variants
}

fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or("invalid");
    line.to_owned()
}
