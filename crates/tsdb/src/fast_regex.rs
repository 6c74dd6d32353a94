//! Regex matchers answered without running the regex, after Prometheus's
//! `FastRegexMatcher` (`model/labels/regexp.go`).
//!
//! [`StringMatcher::compile`] parses a PromQL regex (fully anchored, `.`
//! matching newlines) with `regex-syntax` and, when its shape allows,
//! turns it into plain string tests: a literal or a set of literals
//! (`a|b|c`, `foo(bar|baz)`), `.*` and `.+`, a literal prefix (case-sensitive
//! or, for `(?i)`, one set of case variants per character), a literal suffix,
//! and `.*(a|b).*` as a substring search. A pattern of any other shape gives
//! `None` and the caller runs the regex; [`required_prefix`] still gives the
//! literal the pattern starts with, so values without it are rejected first.
//!
//! The decomposition is exact: every form is matched the way the regex
//! would, which `tests::agrees_with_the_regex` checks on random patterns.

use regex_syntax::hir::{Class, Hir, HirKind};

/// The most characters a class may have to be tested as a list.
const MAX_CLASS_SIZE: usize = 16;

/// The largest literal set [`StringMatcher::literal_set`] expands a pattern into.
const MAX_SET_SIZE: usize = 256;

/// A string test equivalent to an anchored regex.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StringMatcher {
    /// `.*`: every string.
    Any,
    /// `.+`: every non-empty string.
    AnyNonEmpty,
    /// Exactly this string.
    Literal(String),
    /// A prefix, then what `rest` matches, then a suffix.
    Sequence { prefix: Vec<PrefixPart>, rest: Box<StringMatcher>, suffix: String },
    /// `.*(a|b).*`: any string containing one of these.
    Contains(Vec<String>),
    /// Any of these.
    OneOf(Vec<StringMatcher>),
}

/// One piece of a prefix.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PrefixPart {
    /// This text exactly.
    Literal(String),
    /// One character among these (`[ab]`, the case variants of a `(?i)` letter).
    AnyOf(Vec<char>),
}

fn parse(pattern: &str) -> Option<Hir> {
    regex_syntax::ParserBuilder::new().dot_matches_new_line(true).build().parse(pattern).ok()
}

/// Whether `hir` is `.` with newlines included: every character.
fn is_any_character(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Class(Class::Unicode(class)) => {
            let ranges = class.ranges();
            ranges.len() == 1 && ranges[0].start() == '\0' && ranges[0].end() == char::MAX
        }
        _ => false,
    }
}

/// The characters of a small class (`[ab]`, `a|b|c` which the parser makes a
/// class, the case variants of a `(?i)` letter such as `[Kk\u{212A}]`), one of
/// which a character must be.
fn small_class(hir: &Hir) -> Option<Vec<char>> {
    let HirKind::Class(Class::Unicode(class)) = hir.kind() else { return None };
    let mut characters = Vec::new();
    for range in class.ranges() {
        for character in range.start()..=range.end() {
            if characters.len() == MAX_CLASS_SIZE {
                return None;
            }
            characters.push(character);
        }
    }
    (!characters.is_empty()).then_some(characters)
}

fn literal_text(hir: &Hir) -> Option<String> {
    match hir.kind() {
        HirKind::Literal(literal) => String::from_utf8(literal.0.to_vec()).ok(),
        HirKind::Empty => Some(String::new()),
        _ => None,
    }
}

/// The items of a concatenation, capture groups opened.
fn concat_items(items: &[Hir]) -> Vec<&Hir> {
    let mut output = Vec::with_capacity(items.len());
    for item in items {
        match item.kind() {
            HirKind::Capture(capture) => match capture.sub.kind() {
                HirKind::Concat(inner) => output.extend(concat_items(inner)),
                _ => output.push(&*capture.sub),
            },
            _ => output.push(item),
        }
    }
    output
}

fn unwrap_capture(hir: &Hir) -> &Hir {
    match hir.kind() {
        HirKind::Capture(capture) => unwrap_capture(&capture.sub),
        _ => hir,
    }
}

impl StringMatcher {
    /// The string test for `pattern` (a PromQL regex, anchored at both ends),
    /// or `None` when the regex must run.
    pub(crate) fn compile(pattern: &str) -> Option<Self> {
        Self::from_hir(&parse(pattern)?)
    }

    fn from_hir(hir: &Hir) -> Option<Self> {
        match hir.kind() {
            HirKind::Empty => Some(Self::Literal(String::new())),
            HirKind::Literal(_) => literal_text(hir).map(Self::Literal),
            HirKind::Capture(capture) => Self::from_hir(&capture.sub),
            HirKind::Repetition(repetition) if repetition.max.is_none() && is_any_character(&repetition.sub) => {
                match repetition.min {
                    0 => Some(Self::Any),
                    1 => Some(Self::AnyNonEmpty),
                    _ => None,
                }
            }
            HirKind::Class(_) => {
                let variants = small_class(hir)?;
                Some(Self::Sequence {
                    prefix: vec![PrefixPart::AnyOf(variants)],
                    rest: Box::new(Self::Literal(String::new())),
                    suffix: String::new(),
                })
            }
            HirKind::Alternation(alternatives) => {
                alternatives.iter().map(Self::from_hir).collect::<Option<Vec<_>>>().map(Self::OneOf)
            }
            HirKind::Concat(items) => Self::from_concat(&concat_items(items)),
            _ => None,
        }
    }

    fn from_concat(items: &[&Hir]) -> Option<Self> {
        // `.*X.*` with X a literal or literal alternatives: a substring search.
        if items.len() >= 3
            && is_any_star(items[0])
            && is_any_star(items[items.len() - 1])
            && let Some(needles) = literal_alternatives(&items[1..items.len() - 1])
        {
            return Some(Self::Contains(needles));
        }
        let mut prefix: Vec<PrefixPart> = Vec::new();
        let mut start = 0;
        while start < items.len() {
            if let Some(text) = literal_text(items[start]) {
                match prefix.last_mut() {
                    Some(PrefixPart::Literal(previous)) => previous.push_str(&text),
                    _ => prefix.push(PrefixPart::Literal(text)),
                }
            } else if let Some(variants) = small_class(items[start]) {
                prefix.push(PrefixPart::AnyOf(variants));
            } else {
                break;
            }
            start += 1;
        }
        let mut end = items.len();
        let mut suffix = String::new();
        while end > start {
            let Some(text) = literal_text(items[end - 1]) else { break };
            suffix.insert_str(0, &text);
            end -= 1;
        }
        let rest = match &items[start..end] {
            [] => Self::Literal(String::new()),
            [single] => Self::from_hir(single)?,
            middle => {
                if middle.len() >= 3 && is_any_star(middle[0]) && is_any_star(middle[middle.len() - 1]) {
                    Self::Contains(literal_alternatives(&middle[1..middle.len() - 1])?)
                } else {
                    return None;
                }
            }
        };
        Some(Self::Sequence { prefix, rest: Box::new(rest), suffix })
    }

    /// Whether `value` matches.
    pub(crate) fn matches(&self, value: &str) -> bool {
        match self {
            Self::Any => true,
            Self::AnyNonEmpty => !value.is_empty(),
            Self::Literal(literal) => value == literal,
            Self::Sequence { prefix, rest, suffix } => {
                let mut remaining = value;
                for part in prefix {
                    remaining = match part {
                        PrefixPart::Literal(literal) => match remaining.strip_prefix(literal.as_str()) {
                            Some(after) => after,
                            None => return false,
                        },
                        PrefixPart::AnyOf(variants) => {
                            let mut characters = remaining.chars();
                            match characters.next() {
                                Some(character) if variants.contains(&character) => characters.as_str(),
                                _ => return false,
                            }
                        }
                    };
                }
                match remaining.strip_suffix(suffix.as_str()) {
                    Some(middle) => rest.matches(middle),
                    None => false,
                }
            }
            Self::Contains(needles) => needles.iter().any(|needle| value.contains(needle.as_str())),
            Self::OneOf(alternatives) => alternatives.iter().any(|alternative| alternative.matches(value)),
        }
    }

    /// Every string the matcher accepts, when they are few literals
    /// (`a|b`, `foo(bar|baz)`): the values to look up in an index.
    pub(crate) fn literal_set(&self) -> Option<Vec<String>> {
        let mut set = match self {
            Self::Literal(literal) => vec![literal.clone()],
            Self::OneOf(alternatives) => {
                let mut set = Vec::new();
                for alternative in alternatives {
                    set.extend(alternative.literal_set()?);
                    if set.len() > MAX_SET_SIZE {
                        return None;
                    }
                }
                set
            }
            Self::Sequence { prefix, rest, suffix } => {
                let mut heads = vec![String::new()];
                for part in prefix {
                    match part {
                        PrefixPart::Literal(literal) => heads.iter_mut().for_each(|head| head.push_str(literal)),
                        PrefixPart::AnyOf(characters) => {
                            if heads.len() * characters.len() > MAX_SET_SIZE {
                                return None;
                            }
                            heads = heads
                                .iter()
                                .flat_map(|head| characters.iter().map(move |character| format!("{head}{character}")))
                                .collect();
                        }
                    }
                }
                let middles = rest.literal_set()?;
                if heads.len() * middles.len() > MAX_SET_SIZE {
                    return None;
                }
                heads
                    .iter()
                    .flat_map(|head| middles.iter().map(move |middle| format!("{head}{middle}{suffix}")))
                    .collect()
            }
            Self::Any | Self::AnyNonEmpty | Self::Contains(_) => return None,
        };
        set.sort_unstable();
        set.dedup();
        Some(set)
    }
}

fn is_any_star(hir: &Hir) -> bool {
    matches!(hir.kind(), HirKind::Repetition(repetition)
        if repetition.min == 0 && repetition.max.is_none() && is_any_character(&repetition.sub))
}

/// `items` as literal alternatives: one literal (possibly split over several
/// items) or one alternation of literals.
fn literal_alternatives(items: &[&Hir]) -> Option<Vec<String>> {
    if let [single] = items {
        if let HirKind::Alternation(alternatives) = unwrap_capture(single).kind() {
            return alternatives.iter().map(|alternative| literal_text(unwrap_capture(alternative))).collect();
        }
        // `a|b` of single characters is parsed as the class `[ab]`.
        if let Some(characters) = small_class(unwrap_capture(single)) {
            return Some(characters.iter().map(char::to_string).collect());
        }
    }
    let mut text = String::new();
    for item in items {
        text.push_str(&literal_text(item)?);
    }
    Some(vec![text])
}

/// The literal every match of `pattern` starts with (case-sensitive), when
/// there is one: a quick rejection before the regex runs.
pub(crate) fn required_prefix(pattern: &str) -> Option<String> {
    let hir = parse(pattern)?;
    let items: Vec<&Hir> = match unwrap_capture(&hir).kind() {
        HirKind::Concat(items) => concat_items(items),
        _ => vec![unwrap_capture(&hir)],
    };
    let mut prefix = String::new();
    for item in items {
        match literal_text(item) {
            Some(text) => prefix.push_str(&text),
            None => break,
        }
    }
    (!prefix.is_empty()).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn anchored(pattern: &str) -> regex::Regex {
        regex::Regex::new(&format!("^(?s:{pattern})$")).expect("valid regex")
    }

    #[test]
    fn recognises_prometheus_shapes() {
        let compiled = |pattern: &str| StringMatcher::compile(pattern).expect(pattern);
        assert_eq!(compiled(".*"), StringMatcher::Any);
        assert_eq!(compiled(".+"), StringMatcher::AnyNonEmpty);
        assert_eq!(compiled(".*foo.*"), StringMatcher::Contains(vec!["foo".into()]));
        assert_eq!(compiled(".*(foo|bar).*"), StringMatcher::Contains(vec!["foo".into(), "bar".into()]));
        assert_eq!(compiled(".*(a|b).*"), StringMatcher::Contains(vec!["a".into(), "b".into()]));
        for (pattern, set) in [("a|b|c", vec!["a", "b", "c"]), ("foo(bar|baz)", vec!["foobar", "foobaz"])] {
            assert_eq!(compiled(pattern).literal_set(), Some(set.into_iter().map(String::from).collect()));
        }
        assert!(compiled("foo.*").literal_set().is_none());
        for pattern in
            ["foo.*", "(?i)foo.*", ".*bar", "foo.+bar", "api-(a|b).*", "(?i)ab|cd", "[ab]c.*", "foo.*bar.*baz"]
        {
            assert!(StringMatcher::compile(pattern).is_some(), "{pattern}");
        }
        for pattern in ["a.c", "[0-9]+", "^foo", "foo.*bar.+baz", "[a-z]x"] {
            assert!(StringMatcher::compile(pattern).is_none(), "{pattern}");
        }
        assert_eq!(required_prefix("foo[0-9]+"), Some("foo".into()));
        assert_eq!(required_prefix("(?i)foo"), None);
    }

    #[test]
    fn case_insensitive_prefix_follows_unicode_folding() {
        let matcher = StringMatcher::compile("(?i)kb.*").expect("prefix");
        let regex = anchored("(?i)kb.*");
        for value in ["kb", "KB1", "\u{212A}b", "kc", "k", ""] {
            assert_eq!(matcher.matches(value), regex.is_match(value), "{value:?}");
        }
    }

    /// Pieces of patterns over a small alphabet, so random values often match.
    fn pattern_piece() -> impl Strategy<Value = String> {
        prop_oneof![
            "[abAB]{0,3}",
            Just(".*".to_owned()),
            Just(".+".to_owned()),
            Just(".".to_owned()),
            Just("(?i)a".to_owned()),
            Just("(?i:ab)".to_owned()),
            Just("[ab]".to_owned()),
            Just("\\.".to_owned()),
            Just("\n".to_owned()),
            ("[ab]{1,2}", "[ab]{0,2}").prop_map(|(left, right)| format!("({left}|{right})")),
            ("[ab]{1,2}", "[ab]{1,2}").prop_map(|(left, right)| format!(".*({left}|{right}).*")),
        ]
    }

    fn pattern() -> impl Strategy<Value = String> {
        let concat = prop::collection::vec(pattern_piece(), 1..5).prop_map(|pieces| pieces.concat());
        prop::collection::vec(concat, 1..3).prop_map(|alternatives| alternatives.join("|"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn agrees_with_the_regex(pattern in pattern(), values in prop::collection::vec("[abAB.\n\u{212A}]{0,6}", 1..12)) {
            let regex = anchored(&pattern);
            if let Some(matcher) = StringMatcher::compile(&pattern) {
                for value in &values {
                    prop_assert_eq!(matcher.matches(value), regex.is_match(value), "{:?} on {:?}", pattern, value);
                }
                if let Some(set) = matcher.literal_set() {
                    for value in &values {
                        prop_assert_eq!(set.contains(value), regex.is_match(value), "set {:?} on {:?}", set, value);
                    }
                    for member in &set {
                        prop_assert!(regex.is_match(member), "{:?} yields {:?}", pattern, member);
                    }
                }
            }
            if let Some(prefix) = required_prefix(&pattern) {
                for value in &values {
                    prop_assert!(!regex.is_match(value) || value.starts_with(&prefix), "{:?} prefix {:?}", pattern, prefix);
                }
            }
        }
    }
}
