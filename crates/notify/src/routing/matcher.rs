//! Label matchers as Alertmanager writes and applies them: `name="value"`,
//! `!=`, `=~` and `!~`, regular expressions anchored at both ends, a missing
//! label read as the empty string (`pkg/labels` of Alertmanager 0.25).

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

/// A label set: name to value.
pub type LabelSet = BTreeMap<String, String>;

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchType {
    Equal,
    NotEqual,
    Regexp,
    NotRegexp,
}

impl MatchType {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regexp => "=~",
            MatchType::NotRegexp => "!~",
        }
    }

    pub fn is_regex(self) -> bool {
        matches!(self, MatchType::Regexp | MatchType::NotRegexp)
    }

    pub fn is_equal(self) -> bool {
        matches!(self, MatchType::Equal | MatchType::Regexp)
    }

    /// From the API's `isRegex` and `isEqual` flags.
    pub fn from_flags(is_regex: bool, is_equal: bool) -> Self {
        match (is_regex, is_equal) {
            (false, true) => MatchType::Equal,
            (false, false) => MatchType::NotEqual,
            (true, true) => MatchType::Regexp,
            (true, false) => MatchType::NotRegexp,
        }
    }
}

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub match_type: MatchType,
    pub name: String,
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.match_type == other.match_type && self.name == other.name && self.value == other.value
    }
}

impl Eq for Matcher {}

impl Matcher {
    /// A matcher; a regular expression is compiled anchored, `^(?:value)$`.
    pub fn new(match_type: MatchType, name: &str, value: &str) -> Result<Self, String> {
        let regex =
            if match_type.is_regex() {
                Some(Regex::new(&format!("^(?:{value})$")).map_err(|error| {
                    format!("invalid regular expression {value:?}: {}", first_line(&error.to_string()))
                })?)
            } else {
                None
            };
        Ok(Self { match_type, name: name.to_owned(), value: value.to_owned(), regex })
    }

    /// Whether `value` (the label's value, "" when missing) satisfies the matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        match (self.match_type, &self.regex) {
            (MatchType::Equal, _) => value == self.value,
            (MatchType::NotEqual, _) => value != self.value,
            (MatchType::Regexp, Some(regex)) => regex.is_match(value),
            (MatchType::NotRegexp, Some(regex)) => !regex.is_match(value),
            (_, None) => {
                debug_assert!(false, "regex matcher without a compiled regex");
                false
            }
        }
    }

    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.matches_value(labels.get(&self.name).map_or("", String::as_str))
    }

    /// Alertmanager's sort order of matchers: name, value, then type.
    fn sort_key(&self) -> (&str, &str, MatchType) {
        (&self.name, &self.value, self.match_type)
    }
}

fn first_line(text: &str) -> String {
    text.lines().rfind(|line| !line.trim().is_empty()).unwrap_or(text).trim().to_owned()
}

impl fmt::Display for Matcher {
    /// `name="value"` with OpenMetrics escaping, as Alertmanager prints a matcher.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let escaped = self.value.replace('\\', "\\\\").replace('\n', "\\n").replace('"', "\\\"");
        write!(f, "{}{}\"{}\"", self.name, self.match_type.as_str(), escaped)
    }
}

/// Matchers that must all hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.0.iter().all(|matcher| matcher.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sorts as Alertmanager does (by name, value, type), which route keys rely on.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    }
}

impl fmt::Display for Matchers {
    /// `{a="b",c=~"d"}`, the form route keys and group keys use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (index, matcher) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{matcher}")?;
        }
        f.write_str("}")
    }
}

/// Whether `name` is a valid Prometheus label name.
pub fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// Parses a comma-separated list of matchers, `{` and `}` optional, commas
/// inside double quotes kept (Alertmanager's `ParseMatchers`).
pub fn parse_matchers(text: &str) -> Result<Vec<Matcher>, String> {
    let text = text.strip_prefix('{').unwrap_or(text);
    let text = text.strip_suffix('}').unwrap_or(text);
    let mut tokens = Vec::new();
    let mut token = String::new();
    let mut inside_quotes = false;
    let mut escaped = false;
    for character in text.chars() {
        match character {
            ',' if !inside_quotes => {
                tokens.push(std::mem::take(&mut token));
                continue;
            }
            ',' => {}
            '"' => {
                if escaped {
                    escaped = false;
                } else {
                    inside_quotes = !inside_quotes;
                }
            }
            '\\' => escaped = !escaped,
            _ => escaped = false,
        }
        token.push(character);
    }
    if !token.trim().is_empty() {
        tokens.push(token.trim().to_owned());
    }
    tokens.iter().map(|token| parse_matcher(token)).collect()
}

/// Parses one matcher: a label name (`:` allowed, as Alertmanager's parser
/// does), an operator, and a value, optionally double-quoted with `\"`, `\n`
/// and `\\` escapes.
pub fn parse_matcher(text: &str) -> Result<Matcher, String> {
    let bad = || format!("bad matcher format: {text}");
    let trimmed = text.trim_start();
    let name_length = trimmed
        .char_indices()
        .find(|(index, character)| {
            !(character.is_ascii_alphabetic()
                || *character == '_'
                || *character == ':'
                || (*index > 0 && character.is_ascii_digit()))
        })
        .map_or(trimmed.len(), |(index, _)| index);
    if name_length == 0 {
        return Err(bad());
    }
    let name = &trimmed[..name_length];
    let rest = trimmed[name_length..].trim_start();
    let (match_type, rest) = if let Some(rest) = rest.strip_prefix("=~") {
        (MatchType::Regexp, rest)
    } else if let Some(rest) = rest.strip_prefix("!=") {
        (MatchType::NotEqual, rest)
    } else if let Some(rest) = rest.strip_prefix("!~") {
        (MatchType::NotRegexp, rest)
    } else if let Some(rest) = rest.strip_prefix('=') {
        (MatchType::Equal, rest)
    } else {
        return Err(bad());
    };
    let raw = rest.trim();
    let (raw, mut expect_trailing_quote) = match raw.strip_prefix('"') {
        Some(unquoted) => (unquoted, true),
        None => (raw, false),
    };
    let mut value = String::new();
    let mut escaped = false;
    let characters: Vec<(usize, char)> = raw.char_indices().collect();
    for (position, &(index, character)) in characters.iter().enumerate() {
        let last = position + 1 == characters.len();
        if escaped {
            escaped = false;
            match character {
                'n' => value.push('\n'),
                '"' | '\\' => value.push(character),
                other => {
                    value.push('\\');
                    value.push(other);
                }
            }
            continue;
        }
        match character {
            '\\' if !last => escaped = true,
            '\\' => value.push('\\'),
            '"' => {
                if !expect_trailing_quote || index + 1 < raw.len() {
                    return Err(format!("matcher value contains unescaped double quote: {}", rest.trim()));
                }
                expect_trailing_quote = false;
            }
            other => value.push(other),
        }
    }
    if expect_trailing_quote {
        return Err(format!("matcher value contains unescaped double quote: {}", rest.trim()));
    }
    Matcher::new(match_type, name, &value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn parses_alertmanagers_examples() {
        let matchers = parse_matchers(r#"{foo = "bar", dings != "bums", }"#).expect("parse");
        assert_eq!(matchers.len(), 2);
        assert_eq!(matchers[0].to_string(), r#"foo="bar""#);
        assert_eq!(matchers[1].match_type, MatchType::NotEqual);
        let matchers = parse_matchers("foo=bar,dings!=bums").expect("parse");
        assert_eq!(matchers[1].value, "bums");
        let matchers = parse_matchers(r#"{quote="She said: \"Hi, ladies! That's gender-neutral…\""}"#).expect("parse");
        assert_eq!(matchers.len(), 1);
        assert_eq!(matchers[0].value, "She said: \"Hi, ladies! That's gender-neutral…\"");
        let matchers = parse_matchers(r#"statuscode=~"5..""#).expect("parse");
        assert!(matchers[0].matches(&labels(&[("statuscode", "503")])));
        assert!(!matchers[0].matches(&labels(&[("statuscode", "5030")])), "anchored");
    }

    #[test]
    fn refuses_bad_matchers_with_alertmanagers_messages() {
        assert_eq!(parse_matcher("foo").unwrap_err(), "bad matcher format: foo");
        assert_eq!(parse_matcher("1foo=bar").unwrap_err(), "bad matcher format: 1foo=bar");
        assert!(parse_matcher(r#"foo="bar"baz""#).unwrap_err().contains("unescaped double quote"));
        assert!(parse_matcher(r#"foo="bar"#).unwrap_err().contains("unescaped double quote"));
        assert!(parse_matcher("foo=~(").unwrap_err().starts_with("invalid regular expression"));
    }

    #[test]
    fn missing_labels_read_as_empty() {
        let missing = Matcher::new(MatchType::Equal, "team", "").expect("matcher");
        assert!(missing.matches(&labels(&[])));
        let negative = Matcher::new(MatchType::NotRegexp, "team", "ops|infra").expect("matcher");
        assert!(negative.matches(&labels(&[])));
        assert!(!negative.matches(&labels(&[("team", "ops")])));
        assert!(negative.matches(&labels(&[("team", "opsx")])));
    }

    #[test]
    fn sorted_matchers_print_as_route_keys() {
        let mut matchers =
            Matchers(parse_matchers(r#"severity="page",alertname=~"A.*",alertname="A1""#).expect("parse"));
        matchers.sort();
        assert_eq!(matchers.to_string(), r#"{alertname=~"A.*",alertname="A1",severity="page"}"#);
    }
}
