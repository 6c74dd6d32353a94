//! Label matchers: `=`, `!=`, `=~`, `!~`, with regexes anchored as in PromQL.

use regex::Regex;

use crate::{Error, Labels};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

/// One label matcher. A missing label matches as the empty string.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher; regex matchers are fully anchored (`^(?s:...)$`).
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self, Error> {
        let value = value.into();
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                let anchored = format!("^(?s:{value})$");
                Some(Regex::new(&anchored).map_err(|error| Error::InvalidRegex {
                    pattern: value.clone(),
                    reason: error.to_string(),
                })?)
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Self {
            name: name.into(),
            op,
            value,
            regex,
        })
    }

    /// Shorthand for an equality matcher.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    /// Whether `value` (the empty string for a missing label) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => self.value == value,
            MatchOp::NotEqual => self.value != value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|regex| regex.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|regex| regex.is_match(value)),
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
}
