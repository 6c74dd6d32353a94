//! Label matchers: `=`, `!=`, `=~`, `!~`, with regexes anchored as in PromQL.
//!
//! Besides testing one value, a matcher describes itself to the postings index
//! as a [`ValuePredicate`], so equality and literal sets (`a|b|c`,
//! `foo(bar|baz)`), `.*` and `.+` are answered by direct look-ups instead of
//! running the regex over every value of a label. Regexes of other simple
//! shapes (prefixes, `(?i)` prefixes, suffixes, `.*x.*`) are tested as strings
//! ([`crate::fast_regex`], after Prometheus's `FastRegexMatcher`); the rest run
//! the regex after a check of the literal prefix every match needs.

use regex::Regex;

use crate::fast_regex::{StringMatcher, required_prefix};
use crate::{Error, Labels};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

/// How a matcher judges a non-empty label value, in the form cheapest to evaluate
/// against the postings index. The empty string is judged by [`Matcher::matches_empty`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValuePredicate<'a> {
    /// Accepts exactly these literal values.
    OneOf(Vec<&'a str>),
    /// Accepts every value except these literals.
    NoneOf(Vec<&'a str>),
    /// Anything else: run the regex.
    Regex,
}

/// One label matcher. A missing label matches as the empty string.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
    /// For regex matchers: the equivalent string test, when there is one.
    string_matcher: Option<StringMatcher>,
    /// For regex matchers: every value the regex accepts, when they are few literals.
    literal_set: Option<Vec<String>>,
    /// For regex matchers without a string test: the literal every match starts with.
    required_prefix: Option<String>,
}

impl Matcher {
    /// Builds a matcher; regex matchers are fully anchored (`^(?s:...)$`).
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self, Error> {
        let value = value.into();
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                let anchored = format!("^(?s:{value})$");
                Some(
                    Regex::new(&anchored)
                        .map_err(|error| Error::InvalidRegex { pattern: value.clone(), reason: error.to_string() })?,
                )
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        let string_matcher = regex.as_ref().and_then(|_| StringMatcher::compile(&value));
        let literal_set = string_matcher.as_ref().and_then(StringMatcher::literal_set);
        let required_prefix = if regex.is_some() && string_matcher.is_none() { required_prefix(&value) } else { None };
        Ok(Self { name: name.into(), op, value, regex, string_matcher, literal_set, required_prefix })
    }

    /// Shorthand for an equality matcher.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
            string_matcher: None,
            literal_set: None,
            required_prefix: None,
        }
    }

    /// Whether the regex accepts `value`, by the cheapest test that is exact.
    fn regex_matches(&self, value: &str) -> bool {
        if let Some(string_matcher) = &self.string_matcher {
            return string_matcher.matches(value);
        }
        if let Some(prefix) = &self.required_prefix
            && !value.starts_with(prefix.as_str())
        {
            return false;
        }
        self.regex.as_ref().is_some_and(|regex| regex.is_match(value))
    }

    /// Whether `value` (the empty string for a missing label) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => self.value == value,
            MatchOp::NotEqual => self.value != value,
            MatchOp::Regex => self.regex_matches(value),
            MatchOp::NotRegex => !self.regex_matches(value),
        }
    }

    /// Whether the label set satisfies the matcher.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }

    /// True when the matcher accepts the empty string (and so series lacking the label).
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// The matcher as a predicate on label values, with fast paths recognised.
    pub(crate) fn value_predicate(&self) -> ValuePredicate<'_> {
        let regex_accepts = match self.op {
            MatchOp::Equal => return ValuePredicate::OneOf(vec![self.value.as_str()]),
            MatchOp::NotEqual => return ValuePredicate::NoneOf(vec![self.value.as_str()]),
            MatchOp::Regex => true,
            MatchOp::NotRegex => false,
        };
        // `(?s)` is in force, so `.*` matches every value and `.+` every non-empty one.
        let matched_literals = match (&self.string_matcher, &self.literal_set) {
            (Some(StringMatcher::Any), _) if regex_accepts => return ValuePredicate::NoneOf(Vec::new()),
            (Some(StringMatcher::Any), _) => return ValuePredicate::OneOf(Vec::new()),
            (Some(StringMatcher::AnyNonEmpty), _) if regex_accepts => return ValuePredicate::NoneOf(vec![""]),
            (Some(StringMatcher::AnyNonEmpty), _) => return ValuePredicate::OneOf(vec![""]),
            (_, Some(literals)) => literals.iter().map(String::as_str).collect(),
            _ => return ValuePredicate::Regex,
        };
        if regex_accepts { ValuePredicate::OneOf(matched_literals) } else { ValuePredicate::NoneOf(matched_literals) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The predicate as `(accepts listed values?, listed values)`, `None` for a plain regex.
    fn predicate(op: MatchOp, value: &str) -> Option<(bool, Vec<String>)> {
        let matcher = Matcher::new(op, "name", value).expect("valid matcher");
        let owned = |values: Vec<&str>| values.into_iter().map(str::to_owned).collect();
        match matcher.value_predicate() {
            ValuePredicate::OneOf(values) => Some((true, owned(values))),
            ValuePredicate::NoneOf(values) => Some((false, owned(values))),
            ValuePredicate::Regex => None,
        }
    }

    fn listed(accepts: bool, values: &[&str]) -> Option<(bool, Vec<String>)> {
        Some((accepts, values.iter().map(|value| value.to_string()).collect()))
    }

    #[test]
    fn recognises_fast_paths() {
        assert_eq!(predicate(MatchOp::Equal, "a"), listed(true, &["a"]));
        assert_eq!(predicate(MatchOp::NotEqual, "a"), listed(false, &["a"]));
        assert_eq!(predicate(MatchOp::Regex, "a|b|c"), listed(true, &["a", "b", "c"]));
        assert_eq!(predicate(MatchOp::NotRegex, "a|"), listed(false, &["", "a"]));
        assert_eq!(predicate(MatchOp::Regex, "foo(bar|baz)"), listed(true, &["foobar", "foobaz"]));
        assert_eq!(predicate(MatchOp::Regex, "(.*)"), listed(false, &[]));
        assert_eq!(predicate(MatchOp::Regex, ".*"), listed(false, &[]));
        assert_eq!(predicate(MatchOp::NotRegex, ".*"), listed(true, &[]));
        assert_eq!(predicate(MatchOp::Regex, ".+"), listed(false, &[""]));
        assert_eq!(predicate(MatchOp::NotRegex, ".+"), listed(true, &[""]));
        assert_eq!(predicate(MatchOp::Regex, "a.c"), None);
        assert_eq!(predicate(MatchOp::Regex, "(?i)a"), listed(true, &["A", "a"]));
        assert_eq!(predicate(MatchOp::Regex, "(?i)a.*"), None);
        assert_eq!(predicate(MatchOp::Regex, r"a\|b"), listed(true, &["a|b"]));
    }

    #[test]
    fn fast_paths_agree_with_the_regex() {
        let values = ["", "a", "b", "c", "ab", "a|b", ".", "x\ny"];
        for op in [MatchOp::Equal, MatchOp::NotEqual, MatchOp::Regex, MatchOp::NotRegex] {
            for pattern in ["", "a", "a|b|c", "a|", ".*", ".+", "a.c", "a|b"] {
                let matcher = Matcher::new(op, "name", pattern).expect("valid matcher");
                for value in values.iter().filter(|value| !value.is_empty()) {
                    let by_predicate = match matcher.value_predicate() {
                        ValuePredicate::OneOf(literals) => literals.contains(value),
                        ValuePredicate::NoneOf(literals) => !literals.contains(value),
                        ValuePredicate::Regex => matcher.matches(value),
                    };
                    assert_eq!(by_predicate, matcher.matches(value), "{op:?} {pattern:?} on {value:?}");
                }
            }
        }
    }
}
