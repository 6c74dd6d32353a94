//! The errors of loading a rules file: YAML that does not parse, and the
//! problems found in individual rules, all collected before returning.

use std::fmt;

/// Why a rules file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not YAML of the expected shape (unknown field, wrong type).
    #[error("{file}: invalid pii rules file: {message}")]
    Yaml {
        /// The file name passed to [`crate::RuleSet::from_yaml`].
        file: String,
        /// The parser's message, with its line and column.
        message: String,
    },
    /// The YAML parsed but one or more rules are invalid; every problem is listed.
    #[error("{file}: {}", ProblemList(.problems))]
    Rules {
        /// The file name passed to [`crate::RuleSet::from_yaml`].
        file: String,
        /// Every problem found, in file order.
        problems: Vec<RuleProblem>,
    },
}

/// One invalid rule and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    /// The rule's `id` (empty when the id itself is missing).
    pub rule_id: String,
    /// What is wrong, lowercase.
    pub message: String,
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "rule {:?}: {}", self.rule_id, self.message)
    }
}

struct ProblemList<'a>(&'a [RuleProblem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                formatter.write_str("; ")?;
            }
            write!(formatter, "{problem}")?;
        }
        Ok(())
    }
}
