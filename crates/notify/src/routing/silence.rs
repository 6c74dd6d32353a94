//! Silences with Alertmanager's semantics (`silence/silence.go`, 0.25): a
//! silence mutes the alerts all of its matchers match while it is active
//! (`startsAt ≤ now ≤ endsAt`); setting a silence with an id updates it in
//! place only when its matchers are unchanged and the new times are allowed
//! for its state, else the old one is expired and a new id issued; expired
//! silences are kept for the retention period, then dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::matcher::{LabelSet, MatchType, Matcher, Matchers, is_label_name};

/// How long an expired silence is kept (Alertmanager's `--data.retention` default, 120h).
pub const SILENCE_RETENTION_MS: i64 = 120 * 3600 * 1000;

/// A matcher as silences and the API carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    #[serde(rename = "isRegex")]
    pub is_regex: bool,
    #[serde(rename = "isEqual", default = "default_true")]
    pub is_equal: bool,
}

fn default_true() -> bool {
    true
}

impl SilenceMatcher {
    pub fn match_type(&self) -> MatchType {
        MatchType::from_flags(self.is_regex, self.is_equal)
    }
}

/// One silence. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub updated_at_ms: i64,
    pub created_by: String,
    pub comment: String,
}

/// A silence's state at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

impl Silence {
    pub fn state(&self, now_ms: i64) -> SilenceState {
        if now_ms < self.starts_at_ms {
            SilenceState::Pending
        } else if now_ms > self.ends_at_ms {
            SilenceState::Expired
        } else {
            SilenceState::Active
        }
    }
}

/// Why a silence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    #[error("silence not found")]
    NotFound,
    /// Alertmanager's wording: `silence invalid: <reason>`.
    #[error("silence invalid: {0}")]
    Invalid(String),
}

fn compile(silence: &Silence) -> Result<Matchers, SilenceError> {
    if silence.matchers.is_empty() {
        return Err(SilenceError::Invalid("at least one matcher required".into()));
    }
    let mut all_match_empty = true;
    let mut compiled = Vec::new();
    for (index, matcher) in silence.matchers.iter().enumerate() {
        if !is_label_name(&matcher.name) {
            return Err(SilenceError::Invalid(format!(
                "invalid label matcher {index}: invalid label name {:?}",
                matcher.name
            )));
        }
        let built = Matcher::new(matcher.match_type(), &matcher.name, &matcher.value)
            .map_err(|message| SilenceError::Invalid(format!("invalid label matcher {index}: {message}")))?;
        // Alertmanager's matchesEmpty: an equality on "" or a regex matching ""
        // (unanchored); negative matchers never count.
        let matches_empty = match matcher.match_type() {
            MatchType::Equal => matcher.value.is_empty(),
            MatchType::Regexp => regex::Regex::new(&matcher.value).is_ok_and(|regex| regex.is_match("")),
            _ => false,
        };
        all_match_empty &= matches_empty;
        compiled.push(built);
    }
    if all_match_empty {
        return Err(SilenceError::Invalid("at least one matcher must not match the empty string".into()));
    }
    if silence.ends_at_ms < silence.starts_at_ms {
        return Err(SilenceError::Invalid("end time must not be before start time".into()));
    }
    Ok(Matchers(compiled))
}

/// A new silence id: a random (version 4) UUID, as Alertmanager issues.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy source: fall back to the clock and a counter, still unique per process.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64);
        bytes[..8].copy_from_slice(&nanos.to_le_bytes());
        bytes[8..].copy_from_slice(&COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// The silences, by id.
#[derive(Debug, Clone, Default)]
pub struct Silences {
    silences: BTreeMap<String, (Silence, Matchers)>,
}

impl Silences {
    /// Loads silences (from a snapshot); invalid ones are skipped.
    pub fn from_silences(silences: impl IntoIterator<Item = Silence>) -> Self {
        let mut store = Self::default();
        for silence in silences {
            if let Ok(matchers) = compile(&silence) {
                store.silences.insert(silence.id.clone(), (silence, matchers));
            }
        }
        store
    }

    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.silences.get(id).map(|(silence, _)| silence)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Silence> {
        self.silences.values().map(|(silence, _)| silence)
    }

    pub fn len(&self) -> usize {
        self.silences.len()
    }

    pub fn is_empty(&self) -> bool {
        self.silences.is_empty()
    }

    /// Creates or updates a silence as Alertmanager's `Silences.Set` does;
    /// returns the id it is stored under and the silences whose record
    /// changed (an expired predecessor and the stored one).
    pub fn set(&mut self, mut silence: Silence, now_ms: i64) -> Result<(String, Vec<Silence>), SilenceError> {
        let previous = if silence.id.is_empty() {
            None
        } else {
            Some(self.get(&silence.id).cloned().ok_or(SilenceError::NotFound)?)
        };
        let mut changed = Vec::new();
        if let Some(previous) = previous {
            if can_update(&previous, &silence, now_ms) {
                silence.updated_at_ms = now_ms;
                let matchers = compile(&silence)?;
                self.silences.insert(silence.id.clone(), (silence.clone(), matchers));
                return Ok((silence.id.clone(), vec![silence]));
            }
            compile(&Silence { id: "new".into(), updated_at_ms: now_ms, ..silence.clone() })?;
            if previous.state(now_ms) != SilenceState::Expired {
                changed.push(self.expire(&previous.id, now_ms)?);
            }
        }
        silence.id = new_id();
        if silence.starts_at_ms < now_ms {
            silence.starts_at_ms = now_ms;
        }
        silence.updated_at_ms = now_ms;
        let matchers = compile(&silence)?;
        self.silences.insert(silence.id.clone(), (silence.clone(), matchers));
        changed.push(silence.clone());
        Ok((silence.id, changed))
    }

    /// Expires a silence now; an expired one stays as it is. Returns its record.
    pub fn expire(&mut self, id: &str, now_ms: i64) -> Result<Silence, SilenceError> {
        let (silence, _) = self.silences.get_mut(id).ok_or(SilenceError::NotFound)?;
        match silence.state(now_ms) {
            SilenceState::Expired => return Ok(silence.clone()),
            SilenceState::Active => silence.ends_at_ms = now_ms,
            SilenceState::Pending => {
                silence.starts_at_ms = now_ms;
                silence.ends_at_ms = now_ms;
            }
        }
        silence.updated_at_ms = now_ms;
        Ok(silence.clone())
    }

    /// The ids of the active silences muting `labels`.
    pub fn muting(&self, labels: &LabelSet, now_ms: i64) -> Vec<String> {
        self.silences
            .values()
            .filter(|(silence, matchers)| silence.state(now_ms) == SilenceState::Active && matchers.matches(labels))
            .map(|(silence, _)| silence.id.clone())
            .collect()
    }

    /// Drops silences expired for longer than the retention; returns their ids.
    pub fn collect_garbage(&mut self, now_ms: i64) -> Vec<String> {
        let gone: Vec<String> = self
            .silences
            .values()
            .filter(|(silence, _)| silence.ends_at_ms.saturating_add(SILENCE_RETENTION_MS) <= now_ms)
            .map(|(silence, _)| silence.id.clone())
            .collect();
        for id in &gone {
            self.silences.remove(id);
        }
        gone
    }
}

fn can_update(previous: &Silence, next: &Silence, now_ms: i64) -> bool {
    if previous.matchers != next.matchers {
        return false;
    }
    match previous.state(now_ms) {
        SilenceState::Active => next.starts_at_ms / 1000 == previous.starts_at_ms / 1000 && next.ends_at_ms >= now_ms,
        SilenceState::Pending => next.starts_at_ms >= now_ms,
        SilenceState::Expired => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(name: &str, value: &str, is_regex: bool, is_equal: bool) -> SilenceMatcher {
        SilenceMatcher { name: name.into(), value: value.into(), is_regex, is_equal }
    }

    fn silence(matchers: Vec<SilenceMatcher>, starts: i64, ends: i64) -> Silence {
        Silence {
            id: String::new(),
            matchers,
            starts_at_ms: starts,
            ends_at_ms: ends,
            updated_at_ms: 0,
            created_by: "jana".into(),
            comment: "maintenance".into(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn refuses_what_alertmanager_refuses() {
        let mut silences = Silences::default();
        let empty = silence(vec![matcher("team", "", false, true)], 0, 10);
        assert_eq!(
            silences.set(empty, 0).unwrap_err(),
            SilenceError::Invalid("at least one matcher must not match the empty string".into())
        );
        let regex_empty = silence(vec![matcher("team", "x*", true, true)], 0, 10);
        assert!(silences.set(regex_empty, 0).is_err());
        let none = silence(vec![], 0, 10);
        assert_eq!(silences.set(none, 0).unwrap_err(), SilenceError::Invalid("at least one matcher required".into()));
        let bad_name = silence(vec![matcher("a-b", "x", false, true)], 0, 10);
        assert!(
            silences
                .set(bad_name, 0)
                .unwrap_err()
                .to_string()
                .starts_with("silence invalid: invalid label matcher 0: invalid label name")
        );
        let backwards = silence(vec![matcher("a", "x", false, true)], 10, 5);
        assert_eq!(
            silences.set(backwards, 0).unwrap_err().to_string(),
            "silence invalid: end time must not be before start time"
        );
        let mut unknown = silence(vec![matcher("a", "x", false, true)], 0, 10);
        unknown.id = "nope".into();
        assert_eq!(silences.set(unknown, 0).unwrap_err(), SilenceError::NotFound);
        assert!(silences.is_empty());
    }

    #[test]
    fn active_silences_mute_and_expiry_ends_them() {
        let mut silences = Silences::default();
        let (id, _) = silences
            .set(
                silence(
                    vec![matcher("alertname", "A1", false, true), matcher("tenant", "t-.*", true, true)],
                    0,
                    100_000,
                ),
                1000,
            )
            .expect("set");
        assert_eq!(silences.get(&id).expect("stored").starts_at_ms, 1000, "a start in the past becomes now");
        assert_eq!(
            silences.muting(&labels(&[("alertname", "A1"), ("tenant", "t-7")]), 5000),
            std::slice::from_ref(&id)
        );
        assert!(silences.muting(&labels(&[("alertname", "A1"), ("tenant", "x")]), 5000).is_empty());
        silences.expire(&id, 6000).expect("expire");
        assert!(silences.muting(&labels(&[("alertname", "A1"), ("tenant", "t-7")]), 7000).is_empty());
        assert_eq!(silences.get(&id).expect("kept").state(7000), SilenceState::Expired);
        assert!(silences.collect_garbage(6000 + SILENCE_RETENTION_MS).contains(&id));
    }

    #[test]
    fn updates_in_place_only_when_matchers_are_unchanged() {
        let mut silences = Silences::default();
        let (id, _) = silences.set(silence(vec![matcher("a", "x", false, true)], 0, 100_000), 1000).expect("set");
        let mut longer = silences.get(&id).expect("stored").clone();
        longer.ends_at_ms = 200_000;
        let (same, _) = silences.set(longer, 2000).expect("update");
        assert_eq!(same, id);
        let mut other = silences.get(&id).expect("stored").clone();
        other.matchers = vec![matcher("a", "y", false, true)];
        let (new, changed) = silences.set(other, 3000).expect("replace");
        assert_ne!(new, id);
        assert_eq!(changed.len(), 2);
        assert_eq!(silences.get(&id).expect("old").state(3001), SilenceState::Expired);
        assert_eq!(new.len(), 36);
    }
}
