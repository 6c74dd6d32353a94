//! Which streams are redacted, and what redaction leaves on an entry.
//!
//! [`StreamRedaction`] pairs a [`Redactor`] with the stream selectors it covers
//! (`{job="faro"}` by default). For an entry of a covered stream it replaces
//! the line with the redacted line and records, as structured metadata,
//! [`MATCH_RULE`] (the ids of the rules that matched, sorted, comma-separated)
//! and, when every match is a reviewed false positive, [`EXCLUDED`] = `true`.
//! Metadata of those names that arrived with the entry is dropped first, so a
//! sender cannot forge or hide a match.

use tsdb::Labels;

use crate::{Error, Redactor, RuleProblem};

/// Metadata name of the matched rule ids.
pub const MATCH_RULE: &str = "pii_match_rule";
/// Metadata name set to `true` when every match of the entry is excluded.
pub const EXCLUDED: &str = "pii_excluded";
/// The streams redacted when none are configured.
pub const DEFAULT_STREAMS: &str = r#"{job="faro"}"#;

/// A redactor and the streams it applies to.
#[derive(Debug, Clone)]
pub struct StreamRedaction {
    redactor: Redactor,
    selectors: Vec<String>,
    matchers: Vec<Vec<logql::StreamMatcher>>,
}

impl StreamRedaction {
    /// Redaction of the streams any of `selectors` (LogQL stream selectors) matches.
    pub fn new(redactor: Redactor, selectors: &[String]) -> Result<Self, Error> {
        let mut matchers = Vec::new();
        let mut problems = Vec::new();
        for selector in selectors {
            match logql::parse(selector) {
                Ok(expr) => matchers.extend(logql::selectors(&expr)),
                Err(error) => problems.push(RuleProblem {
                    rule_id: selector.clone(),
                    message: format!("invalid stream selector: {}", error.message),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(Error::Rules { file: "redaction streams".into(), problems });
        }
        Ok(Self { redactor, selectors: selectors.to_vec(), matchers })
    }

    /// The selectors of the covered streams, as configured.
    pub fn selectors(&self) -> &[String] {
        &self.selectors
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Whether entries of a stream with these labels are redacted.
    pub fn covers(&self, labels: &Labels) -> bool {
        self.matchers.iter().any(|group| group.iter().all(|matcher| matcher.matches_labels(labels)))
    }

    /// Redacts one entry of a covered stream in place; true when it held personal data.
    pub fn redact_entry(&self, line: &mut String, metadata: &mut Vec<(String, String)>) -> bool {
        metadata.retain(|(name, _)| name != MATCH_RULE && name != EXCLUDED);
        let redaction = self.redactor.redact(line);
        if redaction.matches.is_empty() {
            return false;
        }
        metadata.push((MATCH_RULE.to_owned(), redaction.rule_ids().join(",")));
        if redaction.all_excluded() {
            metadata.push((EXCLUDED.to_owned(), "true".to_owned()));
        }
        let redacted = redaction.line.into_owned();
        *line = redacted;
        true
    }

    /// Redacts the entries of a stream when the stream is covered; returns how
    /// many entries held personal data.
    pub fn redact_stream<'a>(
        &self,
        labels: &Labels,
        entries: impl Iterator<Item = (&'a mut String, &'a mut Vec<(String, String)>)>,
    ) -> usize {
        if !self.covers(labels) {
            return 0;
        }
        entries.filter_map(|(line, metadata)| self.redact_entry(line, metadata).then_some(())).count()
    }
}
