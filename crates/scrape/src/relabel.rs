//! Relabeling as Prometheus does it: a list of [`RelabelConfig`] steps applied in
//! order to a label set, each one rewriting labels or dropping the whole set.
//!
//! Key items: [`Action`] (every action Prometheus has: `replace`, `keep`,
//! `drop`, `keepequal`, `dropequal`, `hashmod`, `labelmap`, `labeldrop`,
//! `labelkeep`, `lowercase`, `uppercase`), [`RelabelConfig`] (one validated
//! step, its regex anchored at both ends), [`relabel`] (applies a list) and
//! [`RelabelConfig::new`] (validation, with the same rules as Prometheus's
//! configuration loader).
//!
//! Pure functions over values: no I/O, no clock. A label whose value becomes
//! empty is removed, since a label set never holds empty values. Target labels
//! must be legacy label names (`[a-zA-Z_][a-zA-Z0-9_]*`) after expansion, as in
//! Prometheus with the legacy name validation; a step whose expanded target is
//! not one does nothing.

use std::fmt;

use md5::{Digest, Md5};
use regex::Regex;
use tsdb::{Labels, LabelsBuilder};

/// The default regex, matching any value and capturing it as `$1`.
pub const DEFAULT_REGEX: &str = "(.*)";
/// The default separator between source label values.
pub const DEFAULT_SEPARATOR: &str = ";";
/// The default replacement: the first capture group.
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// What a relabeling step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Sets `target_label` to `replacement` (expanded) when `regex` matches.
    Replace,
    /// Drops the set unless `regex` matches the source value.
    Keep,
    /// Drops the set when `regex` matches the source value.
    Drop,
    /// Drops the set unless the source value equals the value of `target_label`.
    KeepEqual,
    /// Drops the set when the source value equals the value of `target_label`.
    DropEqual,
    /// Sets `target_label` to the MD5 of the source value modulo `modulus`.
    HashMod,
    /// Copies every label whose name matches `regex` to the name `replacement` expands to.
    LabelMap,
    /// Removes every label whose name matches `regex`.
    LabelDrop,
    /// Removes every label whose name does not match `regex`.
    LabelKeep,
    /// Sets `target_label` to the source value in lower case.
    Lowercase,
    /// Sets `target_label` to the source value in upper case.
    Uppercase,
}

impl Action {
    /// Every action, with its configuration name.
    pub const ALL: [(&'static str, Action); 11] = [
        ("replace", Action::Replace),
        ("keep", Action::Keep),
        ("drop", Action::Drop),
        ("keepequal", Action::KeepEqual),
        ("dropequal", Action::DropEqual),
        ("hashmod", Action::HashMod),
        ("labelmap", Action::LabelMap),
        ("labeldrop", Action::LabelDrop),
        ("labelkeep", Action::LabelKeep),
        ("lowercase", Action::Lowercase),
        ("uppercase", Action::Uppercase),
    ];

    /// The action a configuration names (case-insensitive, as Prometheus reads it).
    pub fn parse(name: &str) -> Option<Action> {
        Self::ALL.iter().find(|(known, _)| known.eq_ignore_ascii_case(name)).map(|&(_, action)| action)
    }

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(_, action)| *action == self).map_or("replace", |(name, _)| name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fields of a relabeling step as written, before validation; `None` means
/// the field was not given and takes Prometheus's default.
#[derive(Debug, Clone, Default)]
pub struct RelabelSpec {
    pub source_labels: Vec<String>,
    pub separator: Option<String>,
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    pub target_label: Option<String>,
    pub replacement: Option<String>,
    pub action: Option<Action>,
}

/// Which field of a [`RelabelSpec`] an error is about (for locating it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    SourceLabels,
    Separator,
    Regex,
    Modulus,
    TargetLabel,
    Replacement,
    Action,
}

/// Why a relabeling step is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidRelabel {
    pub field: Field,
    pub message: String,
}

fn invalid(field: Field, message: impl Into<String>) -> InvalidRelabel {
    InvalidRelabel { field, message: message.into() }
}

/// One validated relabeling step.
#[derive(Debug, Clone)]
pub struct RelabelConfig {
    pub source_labels: Vec<String>,
    pub separator: String,
    /// The regex as written (before anchoring).
    pub regex_text: String,
    /// `^(?s:regex)$`.
    regex: Regex,
    pub modulus: u64,
    pub target_label: String,
    pub replacement: String,
    pub action: Action,
}

/// True for a legacy Prometheus label name.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// True for a label name that may hold `$1`, `${name}` references (Prometheus's
/// `relabelTarget` check).
fn is_valid_label_template(name: &str) -> bool {
    static TEMPLATE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let template = TEMPLATE.get_or_init(|| {
        Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$").expect("the label template regex is valid")
    });
    template.is_match(name)
}

/// Compiles a relabeling regex anchored at both ends, `.` matching newlines.
pub fn anchored_regex(text: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?s:{text})$"))
}

impl RelabelConfig {
    /// Validates a step, applying defaults, with Prometheus's rules.
    pub fn new(spec: RelabelSpec) -> Result<Self, InvalidRelabel> {
        let action = spec.action.unwrap_or(Action::Replace);
        let regex_text = spec.regex.clone().unwrap_or_else(|| DEFAULT_REGEX.to_owned());
        let regex = anchored_regex(&regex_text)
            .map_err(|error| invalid(Field::Regex, format!("invalid regex {regex_text:?}: {error}")))?;
        let modulus = spec.modulus.unwrap_or(0);
        let target_label = spec.target_label.clone().unwrap_or_default();
        let replacement = spec.replacement.clone().unwrap_or_else(|| DEFAULT_REPLACEMENT.to_owned());
        let separator = spec.separator.clone().unwrap_or_else(|| DEFAULT_SEPARATOR.to_owned());
        for name in &spec.source_labels {
            if !is_valid_label_name(name) {
                return Err(invalid(Field::SourceLabels, format!("{name:?} is not a valid label name")));
            }
        }
        if action == Action::HashMod && modulus == 0 {
            return Err(invalid(Field::Modulus, "relabel configuration for hashmod requires non-zero modulus"));
        }
        let needs_target = matches!(
            action,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if needs_target && target_label.is_empty() {
            let field = if spec.target_label.is_some() { Field::TargetLabel } else { Field::Action };
            return Err(invalid(
                field,
                format!("relabel configuration for {action} action requires 'target_label' value"),
            ));
        }
        if action == Action::Replace && !is_valid_label_template(&target_label) {
            return Err(invalid(
                Field::TargetLabel,
                format!("{target_label:?} is invalid 'target_label' for {action} action"),
            ));
        }
        if matches!(
            action,
            Action::HashMod | Action::Lowercase | Action::Uppercase | Action::KeepEqual | Action::DropEqual
        ) && !is_valid_label_name(&target_label)
        {
            return Err(invalid(
                Field::TargetLabel,
                format!("{target_label:?} is invalid 'target_label' for {action} action"),
            ));
        }
        if matches!(action, Action::KeepEqual | Action::DropEqual) {
            let only_sources_and_target = spec.regex.is_none()
                && spec.modulus.is_none()
                && spec.separator.is_none()
                && spec.replacement.is_none();
            if !only_sources_and_target {
                return Err(invalid(
                    Field::Action,
                    format!("{action} action requires only 'source_labels' and `target_label`, and no other fields"),
                ));
            }
        }
        if action == Action::LabelMap && !is_valid_label_template(&replacement) {
            return Err(invalid(
                Field::Replacement,
                format!("{replacement:?} is invalid 'replacement' for {action} action"),
            ));
        }
        if matches!(action, Action::LabelDrop | Action::LabelKeep) {
            let only_regex = spec.source_labels.is_empty()
                && spec.target_label.is_none()
                && spec.modulus.is_none()
                && spec.separator.is_none()
                && spec.replacement.is_none();
            if !only_regex {
                return Err(invalid(
                    Field::Action,
                    format!("{action} action requires only 'regex', and no other fields"),
                ));
            }
        }
        Ok(Self {
            source_labels: spec.source_labels,
            separator,
            regex_text,
            regex,
            modulus,
            target_label,
            replacement,
            action,
        })
    }

    /// Applies this step to `builder`; false when the set is to be dropped.
    fn apply(&self, builder: &mut LabelsBuilder) -> bool {
        let value = self.source_value(builder);
        match self.action {
            Action::Drop => !self.regex.is_match(&value),
            Action::Keep => self.regex.is_match(&value),
            Action::KeepEqual => builder.get(&self.target_label).unwrap_or("") == value,
            Action::DropEqual => builder.get(&self.target_label).unwrap_or("") != value,
            Action::Replace => {
                self.replace(builder, &value);
                true
            }
            Action::Lowercase => {
                builder.set(self.target_label.clone(), value.to_lowercase());
                true
            }
            Action::Uppercase => {
                builder.set(self.target_label.clone(), value.to_uppercase());
                true
            }
            Action::HashMod => {
                let digest = Md5::digest(value.as_bytes());
                let mut low = [0u8; 8];
                low.copy_from_slice(&digest[8..16]);
                let modulo = u64::from_be_bytes(low) % self.modulus;
                builder.set(self.target_label.clone(), modulo.to_string());
                true
            }
            Action::LabelMap => {
                let current = builder.build();
                for label in &current {
                    if let Some(captures) = self.regex.captures(&label.name) {
                        let mut name = String::new();
                        captures.expand(&self.replacement, &mut name);
                        builder.set(name, label.value.clone());
                    }
                }
                true
            }
            Action::LabelDrop | Action::LabelKeep => {
                let keep_matching = self.action == Action::LabelKeep;
                let current = builder.build();
                for label in &current {
                    if self.regex.is_match(&label.name) != keep_matching {
                        builder.delete(&label.name);
                    }
                }
                true
            }
        }
    }

    fn source_value(&self, builder: &LabelsBuilder) -> String {
        let mut value = String::new();
        for (index, name) in self.source_labels.iter().enumerate() {
            if index > 0 {
                value.push_str(&self.separator);
            }
            value.push_str(builder.get(name).unwrap_or(""));
        }
        value
    }

    fn replace(&self, builder: &mut LabelsBuilder, value: &str) {
        let Some(captures) = self.regex.captures(value) else {
            return;
        };
        let mut target = String::new();
        captures.expand(&self.target_label, &mut target);
        if !is_valid_label_name(&target) {
            return;
        }
        let mut replaced = String::new();
        captures.expand(&self.replacement, &mut replaced);
        // An empty value removes the label.
        builder.set(target, replaced);
    }
}

/// Applies `configs` in order to `labels`; `None` when a step dropped the set.
/// The result may be empty (callers decide what an empty set means).
pub fn relabel(labels: &Labels, configs: &[RelabelConfig]) -> Option<Labels> {
    if configs.is_empty() {
        return Some(labels.clone());
    }
    let mut builder = labels.to_builder();
    for config in configs {
        if !config.apply(&mut builder) {
            return None;
        }
    }
    Some(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    struct Step {
        source_labels: &'static [&'static str],
        separator: Option<&'static str>,
        regex: Option<&'static str>,
        modulus: Option<u64>,
        target_label: Option<&'static str>,
        replacement: Option<&'static str>,
        action: &'static str,
    }

    const STEP: Step = Step {
        source_labels: &[],
        separator: None,
        regex: None,
        modulus: None,
        target_label: None,
        replacement: None,
        action: "replace",
    };

    fn config(step: &Step) -> RelabelConfig {
        RelabelConfig::new(RelabelSpec {
            source_labels: step.source_labels.iter().map(|name| (*name).to_owned()).collect(),
            separator: step.separator.map(str::to_owned),
            regex: step.regex.map(str::to_owned),
            modulus: step.modulus,
            target_label: step.target_label.map(str::to_owned),
            replacement: step.replacement.map(str::to_owned),
            action: Some(Action::parse(step.action).expect("known action")),
        })
        .expect("valid relabel config")
    }

    struct Case {
        name: &'static str,
        input: &'static [(&'static str, &'static str)],
        steps: &'static [Step],
        /// `None`: the set is dropped.
        output: Option<&'static [(&'static str, &'static str)]>,
    }

    /// Cases mirror Prometheus's `model/relabel/relabel_test.go`.
    const CASES: &[Case] = &[
        Case {
            name: "replace with default regex and separator",
            input: &[("a", "foo"), ("b", "bar"), ("c", "baz")],
            steps: &[Step {
                source_labels: &["a"],
                regex: Some("f(.*)"),
                target_label: Some("d"),
                replacement: Some("ch${1}-ch${1}"),
                ..STEP
            }],
            output: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")]),
        },
        Case {
            name: "replace over two sources with separator",
            input: &[("a", "foo"), ("b", "bar"), ("c", "baz")],
            steps: &[
                Step {
                    source_labels: &["a", "b"],
                    regex: Some("f(.*);(.*)r"),
                    target_label: Some("a"),
                    replacement: Some("b${1}${2}m"),
                    ..STEP
                },
                Step {
                    source_labels: &["c", "a"],
                    regex: Some("(b).*b(.*)ba(.*)"),
                    target_label: Some("d"),
                    replacement: Some("$1$2$2$3"),
                    ..STEP
                },
            ],
            output: Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")]),
        },
        Case {
            name: "drop on match",
            input: &[("a", "foo")],
            steps: &[
                Step { source_labels: &["a"], regex: Some(".*o.*"), action: "drop", ..STEP },
                Step {
                    source_labels: &["a"],
                    regex: Some("f(.*)"),
                    target_label: Some("d"),
                    replacement: Some("ch$1-ch$1"),
                    ..STEP
                },
            ],
            output: None,
        },
        Case {
            name: "drop on joined sources",
            input: &[("a", "foo"), ("b", "bar")],
            steps: &[Step { source_labels: &["a", "b"], regex: Some(".*o.*"), action: "drop", ..STEP }],
            output: None,
        },
        Case {
            name: "drop with no match keeps",
            input: &[("a", "abc")],
            steps: &[Step {
                source_labels: &["a"],
                regex: Some(".*(b).*"),
                target_label: Some("d"),
                replacement: Some("$1"),
                ..STEP
            }],
            output: Some(&[("a", "abc"), ("d", "b")]),
        },
        Case {
            name: "drop is anchored",
            input: &[("a", "foo")],
            steps: &[Step { source_labels: &["a"], regex: Some("no-match"), action: "drop", ..STEP }],
            output: Some(&[("a", "foo")]),
        },
        Case {
            name: "drop regex f|o is anchored and does not match foo",
            input: &[("a", "foo")],
            steps: &[Step { source_labels: &["a"], regex: Some("f|o"), action: "drop", ..STEP }],
            output: Some(&[("a", "foo")]),
        },
        Case {
            name: "keep without match drops",
            input: &[("a", "foo")],
            steps: &[Step { source_labels: &["a"], regex: Some("no-match"), action: "keep", ..STEP }],
            output: None,
        },
        Case {
            name: "keep with match",
            input: &[("a", "foo")],
            steps: &[Step { source_labels: &["a"], regex: Some("f.*"), action: "keep", ..STEP }],
            output: Some(&[("a", "foo")]),
        },
        Case {
            name: "keep on a missing label matches the empty string",
            input: &[("a", "foo")],
            steps: &[Step { source_labels: &["x"], regex: Some(""), action: "keep", ..STEP }],
            output: Some(&[("a", "foo")]),
        },
        Case {
            name: "replace without match does nothing",
            input: &[("a", "boo")],
            steps: &[Step {
                source_labels: &["a"],
                regex: Some("f"),
                target_label: Some("b"),
                replacement: Some("bar"),
                ..STEP
            }],
            output: Some(&[("a", "boo")]),
        },
        Case {
            name: "replace with empty result deletes the label",
            input: &[("a", "foo"), ("b", "bar")],
            steps: &[Step {
                source_labels: &["a"],
                regex: Some("(f).*"),
                target_label: Some("b"),
                replacement: Some("${2}"),
                ..STEP
            }],
            output: Some(&[("a", "foo")]),
        },
        Case {
            name: "replace from a missing source with a literal replacement sets the label",
            input: &[("a", "foo")],
            steps: &[Step { target_label: Some("b"), replacement: Some("bar"), ..STEP }],
            output: Some(&[("a", "foo"), ("b", "bar")]),
        },
        Case {
            name: "replace with templated target label",
            input: &[("a", "some-name-value")],
            steps: &[Step {
                source_labels: &["a"],
                regex: Some("some-([^-]+)-([^,]+)"),
                target_label: Some("${1}"),
                replacement: Some("${2}"),
                ..STEP
            }],
            output: Some(&[("a", "some-name-value"), ("name", "value")]),
        },
        Case {
            name: "replace with invalid expanded target label does nothing",
            input: &[("a", "some-name-0")],
            steps: &[Step {
                source_labels: &["a"],
                regex: Some("some-([^-]+)-([^,]+)"),
                target_label: Some("${3}"),
                replacement: Some("${1}"),
                ..STEP
            }],
            output: Some(&[("a", "some-name-0")]),
        },
        Case {
            name: "replace with target label starting with a digit does nothing",
            input: &[("a", "some-0-value")],
            steps: &[Step {
                source_labels: &["a"],
                regex: Some("some-([^-]+)-([^,]+)"),
                target_label: Some("${1}"),
                replacement: Some("${2}"),
                ..STEP
            }],
            output: Some(&[("a", "some-0-value")]),
        },
        Case {
            name: "dollar one followed by letters names a group",
            input: &[("a", "foo")],
            steps: &[Step {
                source_labels: &["a"],
                regex: Some("(f)(o+)"),
                target_label: Some("b"),
                replacement: Some("$1x-$2"),
                ..STEP
            }],
            output: Some(&[("a", "foo"), ("b", "-oo")]),
        },
        Case {
            name: "regex matches across newlines",
            input: &[("a", "line1\nline2")],
            steps: &[Step {
                source_labels: &["a"],
                regex: Some("line1.line2"),
                target_label: Some("b"),
                replacement: Some("matched"),
                ..STEP
            }],
            output: Some(&[("a", "line1\nline2"), ("b", "matched")]),
        },
        Case {
            name: "hashmod",
            input: &[("a", "foo"), ("b", "bar"), ("c", "baz")],
            steps: &[Step {
                source_labels: &["c"],
                target_label: Some("d"),
                modulus: Some(1000),
                action: "hashmod",
                ..STEP
            }],
            output: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
        },
        Case {
            name: "hashmod with a newline in the value",
            input: &[("a", "foo\nbar")],
            steps: &[Step {
                source_labels: &["a"],
                target_label: Some("b"),
                modulus: Some(1000),
                action: "hashmod",
                ..STEP
            }],
            output: Some(&[("a", "foo\nbar"), ("b", "734")]),
        },
        Case {
            name: "labelmap",
            input: &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            steps: &[Step { regex: Some("(b.*)"), replacement: Some("bar_${1}"), action: "labelmap", ..STEP }],
            output: Some(&[("a", "foo"), ("b1", "bar"), ("b2", "baz"), ("bar_b1", "bar"), ("bar_b2", "baz")]),
        },
        Case {
            name: "labelmap of meta labels",
            input: &[("__meta_my_bar", "aaa"), ("__meta_my_baz", "bbb"), ("__meta_other", "ccc")],
            steps: &[Step { regex: Some("__meta_(my.*)"), replacement: Some("${1}"), action: "labelmap", ..STEP }],
            output: Some(&[
                ("__meta_my_bar", "aaa"),
                ("__meta_my_baz", "bbb"),
                ("__meta_other", "ccc"),
                ("my_bar", "aaa"),
                ("my_baz", "bbb"),
            ]),
        },
        Case {
            name: "labeldrop",
            input: &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            steps: &[Step { regex: Some("(b.*)"), action: "labeldrop", ..STEP }],
            output: Some(&[("a", "foo")]),
        },
        Case {
            name: "labelkeep",
            input: &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            steps: &[Step { regex: Some("(b.*)"), action: "labelkeep", ..STEP }],
            output: Some(&[("b1", "bar"), ("b2", "baz")]),
        },
        Case {
            name: "labelkeep of nothing empties the set",
            input: &[("a", "foo")],
            steps: &[Step { regex: Some("b"), action: "labelkeep", ..STEP }],
            output: Some(&[]),
        },
        Case {
            name: "lowercase and uppercase",
            input: &[("foo", "bAr123Foo")],
            steps: &[
                Step { source_labels: &["foo"], target_label: Some("foo_uppercase"), action: "uppercase", ..STEP },
                Step { source_labels: &["foo"], target_label: Some("foo_lowercase"), action: "lowercase", ..STEP },
            ],
            output: Some(&[("foo", "bAr123Foo"), ("foo_lowercase", "bar123foo"), ("foo_uppercase", "BAR123FOO")]),
        },
        Case {
            name: "keepequal keeps equal values",
            input: &[("__tmp_port", "1234"), ("__port1", "1234")],
            steps: &[Step {
                source_labels: &["__port1"],
                target_label: Some("__tmp_port"),
                action: "keepequal",
                ..STEP
            }],
            output: Some(&[("__port1", "1234"), ("__tmp_port", "1234")]),
        },
        Case {
            name: "keepequal drops different values",
            input: &[("__tmp_port", "1234"), ("__port1", "5678")],
            steps: &[Step {
                source_labels: &["__port1"],
                target_label: Some("__tmp_port"),
                action: "keepequal",
                ..STEP
            }],
            output: None,
        },
        Case {
            name: "dropequal drops equal values",
            input: &[("__tmp_port", "1234"), ("__port1", "1234")],
            steps: &[Step {
                source_labels: &["__port1"],
                target_label: Some("__tmp_port"),
                action: "dropequal",
                ..STEP
            }],
            output: None,
        },
        Case {
            name: "dropequal keeps different values",
            input: &[("__tmp_port", "1234"), ("__port1", "5678")],
            steps: &[Step {
                source_labels: &["__port1"],
                target_label: Some("__tmp_port"),
                action: "dropequal",
                ..STEP
            }],
            output: Some(&[("__port1", "5678"), ("__tmp_port", "1234")]),
        },
        Case {
            name: "custom separator",
            input: &[("a", "x"), ("b", "y")],
            steps: &[Step { source_labels: &["a", "b"], separator: Some("-"), target_label: Some("c"), ..STEP }],
            output: Some(&[("a", "x"), ("b", "y"), ("c", "x-y")]),
        },
    ];

    #[test]
    fn relabel_cases_match_prometheus() {
        for case in CASES {
            let configs: Vec<RelabelConfig> = case.steps.iter().map(config).collect();
            let result = relabel(&labels(case.input), &configs);
            let expected = case.output.map(labels);
            assert_eq!(result, expected, "case {:?}", case.name);
        }
    }

    #[test]
    fn validation_follows_prometheus() {
        let spec = |action: Action| RelabelSpec { action: Some(action), ..RelabelSpec::default() };
        let error = RelabelConfig::new(RelabelSpec { target_label: Some("x".into()), ..spec(Action::HashMod) })
            .expect_err("hashmod needs a modulus");
        assert_eq!(error.field, Field::Modulus);
        for action in [Action::Replace, Action::Lowercase, Action::Uppercase, Action::KeepEqual, Action::DropEqual] {
            let error = RelabelConfig::new(spec(action)).expect_err("a target label is required");
            assert!(error.message.contains("requires 'target_label'"), "{action}: {error}");
        }
        let error = RelabelConfig::new(RelabelSpec { target_label: Some("x".into()), ..spec(Action::LabelDrop) })
            .expect_err("labeldrop takes only a regex");
        assert!(error.message.contains("requires only 'regex'"));
        let error = RelabelConfig::new(RelabelSpec {
            target_label: Some("x".into()),
            regex: Some("a".into()),
            ..spec(Action::KeepEqual)
        })
        .expect_err("keepequal takes no regex");
        assert_eq!(error.field, Field::Action);
        let error = RelabelConfig::new(RelabelSpec { regex: Some("(".into()), ..spec(Action::Keep) })
            .expect_err("invalid regex");
        assert_eq!(error.field, Field::Regex);
        let error = RelabelConfig::new(RelabelSpec { target_label: Some("0abc".into()), ..spec(Action::Replace) })
            .expect_err("invalid target label");
        assert_eq!(error.field, Field::TargetLabel);
        assert!(
            RelabelConfig::new(RelabelSpec { target_label: Some("${1}_x".into()), ..spec(Action::Replace) }).is_ok()
        );
        assert_eq!(Action::parse("LabelMap"), Some(Action::LabelMap));
        assert_eq!(Action::parse("nope"), None);
    }
}
