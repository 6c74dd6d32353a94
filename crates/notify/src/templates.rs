//! Notification templates: Go `text/template` syntax (through `gotmpl`) over
//! Alertmanager 0.25's template data, so that the `title:`, `text:`,
//! `description:`, `html:` … of `alertmanager.yml` and the files its
//! `templates:` globs name render as Alertmanager renders them.
//!
//! Key types: [`Templates`] (alertbook's default templates, then the
//! configured files, parsed once) and [`TemplateData`] (Alertmanager's `Data`:
//! `.Receiver`, `.Status`, `.Alerts`, `.GroupLabels`, `.CommonLabels`,
//! `.CommonAnnotations`, `.ExternalURL`; per alert `.Status`, `.Labels`,
//! `.Annotations`, `.StartsAt`, `.EndsAt`, `.GeneratorURL`, `.Fingerprint`).
//!
//! Go templates call methods of Alertmanager's types (`.Alerts.Firing`,
//! `.Alerts.Resolved`, `.Labels.SortedPairs`, `.Names`, `.Values`,
//! `.CommonLabels.Remove`, `.StartsAt.Format`); `gotmpl`'s data has no
//! methods, so every parse tree is rewritten after parsing: a field chain
//! naming one of these methods becomes a call of a function that does what
//! the Go method does (`.Alerts.Firing` is `(__method_Firing .Alerts)`), and a
//! method call's arguments follow it as Go passes them. As in Go, the method
//! wins over a map key of the same name. The function map is Alertmanager's:
//! `toUpper`, `toLower`, `title`, `join`, `match`, `safeHtml`,
//! `reReplaceAll`, `stringSlice`, plus Go's builtins.
//!
//! alertbook's default templates (`templates/default.tmpl`) define the names
//! Alertmanager's configurations refer to (`slack.default.title`,
//! `pagerduty.default.description`, `email.default.subject`, …) and add the
//! alert's runbook URL, triage path and summary (`runbook_url`,
//! `triage_path`, `triage_summary` annotations) and a silence link.
//!
//! Known differences from Alertmanager: HTML bodies are not contextually
//! escaped (alertbook's default HTML escapes with `html` itself); times are
//! UTC; `.StartsAt.Format` knows Go's common layout elements (no week
//! numbers); a method reached through a variable (`$alerts.Firing`) is
//! rewritten the same way, a method of a value returned by `index` is not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use catalog::{Diagnostic, Diagnostics};
use gotmpl::parse::{CommandNode, Expr, ListNode, Node, PipeNode, SmolStr};
use gotmpl::{MissingKey, Template, TemplateError, Value};

use crate::payload::{Alert, fingerprint};

/// alertbook's default notification templates.
pub const DEFAULT_TEMPLATES: &str = include_str!("../templates/default.tmpl");

/// The methods of Alertmanager's template types that templates may call.
const METHODS: &[&str] = &["Firing", "Resolved", "SortedPairs", "Names", "Values", "Remove", "Format", "Unix"];
const METHOD_PREFIX: &str = "__method_";

/// Alertmanager's template data for one notification.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TemplateData {
    pub receiver: String,
    /// `firing` when any alert fires, else `resolved`.
    pub status: String,
    pub alerts: Vec<AlertData>,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    pub external_url: String,
}

/// One alert of [`TemplateData`].
#[derive(Debug, Clone, PartialEq)]
pub struct AlertData {
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at_ms: i64,
    /// Unset for a firing alert (Go's zero time).
    pub ends_at_ms: Option<i64>,
    pub generator_url: String,
    pub fingerprint: String,
}

/// Go's `regexp.QuoteMeta`.
fn quote_meta(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len());
    for character in text.chars() {
        if "\\.+*?()|[]{}^$".contains(character) {
            quoted.push('\\');
        }
        quoted.push(character);
    }
    quoted
}

/// Labels or annotations every alert shares.
fn common(maps: &[&BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let Some((first, rest)) = maps.split_first() else { return BTreeMap::new() };
    first
        .iter()
        .filter(|(name, value)| rest.iter().all(|other| other.get(*name) == Some(value)))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

impl TemplateData {
    /// Alertmanager's `Template.Data`: the receiver name regexp-quoted (as
    /// Alertmanager quotes it), status, alerts, group, common labels and
    /// annotations, for alerts as they stand at `now_ms`.
    pub fn new(
        receiver: &str,
        group_labels: &BTreeMap<String, String>,
        alerts: &[Alert],
        external_url: &str,
        now_ms: i64,
    ) -> Self {
        let firing = alerts.iter().any(|alert| !alert.is_resolved(now_ms));
        let labels: Vec<&BTreeMap<String, String>> = alerts.iter().map(|alert| &alert.labels).collect();
        let annotations: Vec<&BTreeMap<String, String>> = alerts.iter().map(|alert| &alert.annotations).collect();
        Self {
            receiver: quote_meta(receiver),
            status: if firing { "firing" } else { "resolved" }.into(),
            alerts: alerts
                .iter()
                .map(|alert| AlertData {
                    status: if alert.is_resolved(now_ms) { "resolved" } else { "firing" }.into(),
                    labels: alert.labels.clone(),
                    annotations: alert.annotations.clone(),
                    starts_at_ms: alert.starts_at_ms,
                    ends_at_ms: alert.ends_at_ms.filter(|ends| *ends <= now_ms),
                    generator_url: alert.generator_url.clone(),
                    fingerprint: fingerprint(&alert.labels),
                })
                .collect(),
            group_labels: group_labels.clone(),
            common_labels: common(&labels),
            common_annotations: common(&annotations),
            external_url: external_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The link that opens a new silence for this group's labels, in
    /// Alertmanager's UI path (`#/silences/new?filter=…`).
    pub fn silence_url(&self) -> String {
        let filter = format!(
            "{{{}}}",
            self.group_labels
                .iter()
                .map(|(name, value)| format!("{name}={}", crate::routing::engine::go_quote(value)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        format!("{}/#/silences/new?filter={}", self.external_url, catalog::template::query_escape(&filter))
    }

    /// The data as template values. `.SilenceURL` is alertbook's addition.
    pub fn to_value(&self) -> Value {
        let alerts: Vec<Value> = self.alerts.iter().map(AlertData::to_value).collect();
        let mut root = BTreeMap::new();
        root.insert(Arc::from("Receiver"), string(&self.receiver));
        root.insert(Arc::from("Status"), string(&self.status));
        root.insert(Arc::from("Alerts"), Value::List(alerts.into()));
        root.insert(Arc::from("GroupLabels"), string_map(&self.group_labels));
        root.insert(Arc::from("CommonLabels"), string_map(&self.common_labels));
        root.insert(Arc::from("CommonAnnotations"), string_map(&self.common_annotations));
        root.insert(Arc::from("ExternalURL"), string(&self.external_url));
        root.insert(Arc::from("SilenceURL"), string(&self.silence_url()));
        Value::Map(Arc::new(root))
    }
}

impl AlertData {
    fn to_value(&self) -> Value {
        let mut alert = BTreeMap::new();
        alert.insert(Arc::from("Status"), string(&self.status));
        alert.insert(Arc::from("Labels"), string_map(&self.labels));
        alert.insert(Arc::from("Annotations"), string_map(&self.annotations));
        alert.insert(Arc::from("StartsAt"), string(&go_time(Some(self.starts_at_ms))));
        alert.insert(Arc::from("EndsAt"), string(&go_time(self.ends_at_ms)));
        alert.insert(Arc::from("GeneratorURL"), string(&self.generator_url));
        alert.insert(Arc::from("Fingerprint"), string(&self.fingerprint));
        Value::Map(Arc::new(alert))
    }
}

fn string(text: &str) -> Value {
    Value::String(Arc::from(text))
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Map(Arc::new(map.iter().map(|(name, value)| (Arc::from(name.as_str()), string(value))).collect()))
}

/// Go's `time.Time.String()` in UTC: `2023-11-14 22:13:20.5 +0000 UTC`; the
/// zero time for `None`.
fn go_time(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "0001-01-01 00:00:00 +0000 UTC".to_owned() };
    let time = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    let fraction = time.format("%.3f").to_string();
    let fraction = fraction.trim_end_matches('0').trim_end_matches('.');
    format!("{}{fraction} +0000 UTC", time.format("%Y-%m-%d %H:%M:%S"))
}

fn parse_go_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let stamp = text.strip_suffix(" +0000 UTC")?;
    if stamp.starts_with("0001-01-01 00:00:00") {
        return chrono::NaiveDate::from_ymd_opt(1, 1, 1)?.and_hms_opt(0, 0, 0).map(|naive| naive.and_utc());
    }
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.f").ok().map(|naive| naive.and_utc())
}

/// Go's `time.Format` for the layout elements templates use.
fn go_format(time: chrono::DateTime<chrono::Utc>, layout: &str) -> String {
    const ELEMENTS: &[(&str, &str)] = &[
        ("January", "%B"),
        ("Monday", "%A"),
        ("2006", "%Y"),
        ("-07:00", "+00:00"),
        ("-0700", "+0000"),
        ("Z07:00", "Z"),
        ("Z0700", "Z"),
        ("Jan", "%b"),
        ("Mon", "%a"),
        ("MST", "UTC"),
        (".000000000", "%.9f"),
        (".000000", "%.6f"),
        (".000", "%.3f"),
        ("01", "%m"),
        ("02", "%d"),
        ("_2", "%e"),
        ("15", "%H"),
        ("03", "%I"),
        ("04", "%M"),
        ("05", "%S"),
        ("06", "%y"),
        ("PM", "%p"),
        ("pm", "%P"),
        ("1", "%-m"),
        ("2", "%-d"),
        ("3", "%-I"),
        ("4", "%-M"),
        ("5", "%-S"),
    ];
    let mut pattern = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for (element, replacement) in ELEMENTS {
            if let Some(after) = rest.strip_prefix(element) {
                pattern.push_str(replacement);
                rest = after;
                continue 'outer;
            }
        }
        let character = rest.chars().next().unwrap_or(' ');
        if character == '%' {
            pattern.push_str("%%");
        } else {
            pattern.push(character);
        }
        rest = &rest[character.len_utf8()..];
    }
    time.format(&pattern).to_string()
}

// ------------------------------------------------------ method rewriting

fn is_method(name: &str) -> bool {
    METHODS.contains(&name)
}

fn call(pos: gotmpl::parse::Pos, method: &str, mut arguments: Vec<Expr>) -> Expr {
    arguments.insert(0, Expr::Identifier(pos, SmolStr::from(format!("{METHOD_PREFIX}{method}"))));
    Expr::Pipe(
        pos,
        PipeNode { pos, decl: Vec::new(), commands: vec![CommandNode { pos, args: arguments }], is_assign: false },
    )
}

/// The expression without its fields, and its fields.
fn split_fields(expression: Expr) -> (Expr, Vec<SmolStr>) {
    match expression {
        Expr::Field(pos, fields) => (Expr::Dot(pos), fields),
        Expr::Variable(pos, name, fields) => (Expr::Variable(pos, name, Vec::new()), fields),
        Expr::Chain(_, base, fields) => (rewrite_expression(*base), fields),
        other => (other, Vec::new()),
    }
}

/// `base` followed by `fields`, methods among them called: `.A.Firing.B` is
/// `(__method_Firing .A).B`. `last_arguments` go to a method that ends the chain.
fn apply_fields(base: Expr, fields: &[SmolStr], last_arguments: Option<Vec<Expr>>) -> Expr {
    let pos = base.pos();
    let Some(index) = fields.iter().position(|field| is_method(field)) else {
        return with_fields(base, fields.to_vec());
    };
    let receiver = with_fields(base, fields[..index].to_vec());
    let rest = &fields[index + 1..];
    let arguments = if rest.is_empty() { last_arguments.clone().unwrap_or_default() } else { Vec::new() };
    let mut call_arguments = vec![receiver];
    call_arguments.extend(arguments);
    let called = call(pos, &fields[index], call_arguments);
    if rest.is_empty() { called } else { apply_fields(called, rest, last_arguments) }
}

fn with_fields(base: Expr, fields: Vec<SmolStr>) -> Expr {
    if fields.is_empty() {
        return base;
    }
    match base {
        Expr::Dot(pos) => Expr::Field(pos, fields),
        Expr::Variable(pos, name, mut own) => {
            own.extend(fields);
            Expr::Variable(pos, name, own)
        }
        Expr::Field(pos, mut own) => {
            own.extend(fields);
            Expr::Field(pos, own)
        }
        other => Expr::Chain(other.pos(), Box::new(other), fields),
    }
}

fn has_method(expression: &Expr) -> bool {
    match expression {
        Expr::Field(_, fields) | Expr::Variable(_, _, fields) | Expr::Chain(_, _, fields) => {
            fields.iter().any(|field| is_method(field))
        }
        _ => false,
    }
}

fn rewrite_expression(expression: Expr) -> Expr {
    match expression {
        Expr::Pipe(pos, mut pipe) => {
            rewrite_pipe(&mut pipe);
            Expr::Pipe(pos, pipe)
        }
        expression if has_method(&expression) || matches!(expression, Expr::Chain(..)) => {
            let (base, fields) = split_fields(expression);
            apply_fields(base, &fields, None)
        }
        other => other,
    }
}

fn rewrite_command(command: &mut CommandNode) {
    let arguments = std::mem::take(&mut command.args);
    let mut arguments = arguments.into_iter();
    let Some(first) = arguments.next() else { return };
    let rest: Vec<Expr> = arguments.map(rewrite_expression).collect();
    let ends_in_method = match &first {
        Expr::Field(_, fields) | Expr::Variable(_, _, fields) | Expr::Chain(_, _, fields) => {
            fields.last().is_some_and(|field| is_method(field))
        }
        _ => false,
    };
    if ends_in_method && !rest.is_empty() {
        // A method call with arguments: `.CommonLabels.Remove .GroupLabels.Names`.
        let (base, fields) = split_fields(first);
        let Expr::Pipe(_, pipe) = apply_fields(base, &fields, Some(rest)) else { return };
        command.args = pipe.commands.into_iter().next().map(|command| command.args).unwrap_or_default();
        return;
    }
    command.args = std::iter::once(rewrite_expression(first)).chain(rest).collect();
}

fn rewrite_pipe(pipe: &mut PipeNode) {
    for command in &mut pipe.commands {
        rewrite_command(command);
    }
}

fn rewrite_list(list: &mut ListNode) {
    for node in &mut list.nodes {
        rewrite_node(node);
    }
}

fn rewrite_node(node: &mut Node) {
    match node {
        Node::List(list) => rewrite_list(list),
        Node::Action(action) => rewrite_pipe(&mut action.pipe),
        Node::If(branch) | Node::Range(branch) | Node::With(branch) => {
            rewrite_pipe(&mut branch.pipe);
            rewrite_list(&mut branch.body);
            if let Some(otherwise) = &mut branch.else_body {
                rewrite_list(otherwise);
            }
        }
        Node::Template(template) => {
            if let Some(pipe) = &mut template.pipe {
                rewrite_pipe(pipe);
            }
        }
        Node::Define(define) => rewrite_list(&mut define.body),
        Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
    }
}

/// Rewrites the method calls of every tree `template` holds.
fn rewrite_template(mut template: Template) -> Template {
    let names: Vec<String> = template.templates().into_iter().map(str::to_owned).collect();
    for name in names {
        let Some(tree) = template.lookup(&name) else { continue };
        let mut tree = tree.clone();
        rewrite_list(&mut tree);
        template = template.add_parse_tree(&name, tree);
    }
    template
}

// ------------------------------------------------------------ functions

fn exec_error(message: impl Into<String>) -> TemplateError {
    TemplateError::Exec(message.into())
}

fn text_argument(name: &str, value: &Value) -> Result<String, TemplateError> {
    match value {
        Value::String(text) => Ok(text.to_string()),
        Value::Nil => Ok(String::new()),
        other => Err(exec_error(format!("{name}: expected a string, got {}", other.type_name()))),
    }
}

fn string_list(name: &str, value: &Value) -> Result<Vec<String>, TemplateError> {
    match value {
        Value::List(items) => items.iter().map(|item| text_argument(name, item)).collect(),
        Value::Nil => Ok(Vec::new()),
        other => Err(exec_error(format!("{name}: expected a list of strings, got {}", other.type_name()))),
    }
}

/// KV's keys in `SortedPairs` order: `alertname` first, then sorted.
fn sorted_keys(map: &BTreeMap<Arc<str>, Value>) -> Vec<Arc<str>> {
    let mut keys: Vec<Arc<str>> = Vec::with_capacity(map.len());
    if map.contains_key("alertname") {
        keys.push(Arc::from("alertname"));
    }
    keys.extend(map.keys().filter(|key| &***key != "alertname").cloned());
    keys
}

fn pair(name: &Arc<str>, value: &Value) -> Value {
    let mut pair = BTreeMap::new();
    pair.insert(Arc::from("Name"), Value::String(name.clone()));
    pair.insert(Arc::from("Value"), value.clone());
    Value::Map(Arc::new(pair))
}

/// A field of a map the method's type does not have: Go reads the map key.
fn map_key(receiver: &Value, method: &str) -> Result<Value, TemplateError> {
    match receiver {
        Value::Map(map) => Ok(map.get(method).cloned().unwrap_or(Value::Nil)),
        Value::Nil => Ok(Value::Nil),
        other => Err(exec_error(format!("can't evaluate field {method} in type {}", other.type_name()))),
    }
}

fn method(name: &'static str, arguments: &[Value]) -> Result<Value, TemplateError> {
    let Some((receiver, rest)) = arguments.split_first() else {
        return Err(TemplateError::ArgCount { name: name.into(), expected: 1, got: 0 });
    };
    let no_arguments = || {
        if rest.is_empty() {
            Ok(())
        } else {
            Err(exec_error(format!("wrong number of args for {name}: want 0 got {}", rest.len())))
        }
    };
    match (name, receiver) {
        ("Firing" | "Resolved", Value::List(alerts)) => {
            no_arguments()?;
            let wanted = if name == "Firing" { "firing" } else { "resolved" };
            let selected: Vec<Value> = alerts
                .iter()
                .filter(|alert| alert.field("Status").and_then(Value::as_str) == Some(wanted))
                .cloned()
                .collect();
            Ok(Value::List(selected.into()))
        }
        ("SortedPairs", Value::Map(map)) => {
            no_arguments()?;
            let pairs: Vec<Value> =
                sorted_keys(map).iter().map(|key| pair(key, map.get(key).unwrap_or(&Value::Nil))).collect();
            Ok(Value::List(pairs.into()))
        }
        ("Names", Value::Map(map)) => {
            no_arguments()?;
            Ok(Value::List(sorted_keys(map).into_iter().map(Value::String).collect::<Vec<_>>().into()))
        }
        ("Values", Value::Map(map)) => {
            no_arguments()?;
            let values: Vec<Value> =
                sorted_keys(map).iter().map(|key| map.get(key).cloned().unwrap_or(Value::Nil)).collect();
            Ok(Value::List(values.into()))
        }
        ("Names" | "Values", Value::List(pairs)) => {
            no_arguments()?;
            let field = if name == "Names" { "Name" } else { "Value" };
            Ok(Value::List(pairs.iter().map(|pair| pair.field(field).cloned().unwrap_or(Value::Nil)).collect()))
        }
        ("Remove", Value::Map(map)) => {
            let [keys] = rest else {
                return Err(exec_error(format!("wrong number of args for Remove: want 1 got {}", rest.len())));
            };
            let keys = string_list("Remove", keys)?;
            let kept: BTreeMap<Arc<str>, Value> = map
                .iter()
                .filter(|(key, _)| !keys.iter().any(|removed| removed.as_str() == &***key))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            Ok(Value::Map(Arc::new(kept)))
        }
        ("Format", Value::String(text)) if parse_go_time(text).is_some() => {
            let [layout] = rest else {
                return Err(exec_error(format!("wrong number of args for Format: want 1 got {}", rest.len())));
            };
            let time = parse_go_time(text).unwrap_or_default();
            Ok(string(&go_format(time, &text_argument("Format", layout)?)))
        }
        ("Unix", Value::String(text)) if parse_go_time(text).is_some() => {
            no_arguments()?;
            Ok(Value::Int(parse_go_time(text).map_or(0, |time| time.timestamp())))
        }
        (_, receiver) => {
            no_arguments()?;
            map_key(receiver, name)
        }
    }
}

/// Alertmanager's function map (`template.DefaultFuncs`) and the methods.
fn function_map() -> gotmpl::FuncMap {
    let mut functions = gotmpl::FuncMap::new();
    for name in METHODS {
        let name: &'static str = name;
        functions
            .insert(format!("{METHOD_PREFIX}{name}"), Arc::new(move |arguments: &[Value]| method(name, arguments)));
    }
    let unary = |name: &'static str, apply: fn(&str) -> String| -> gotmpl::ValueFunc {
        Arc::new(move |arguments: &[Value]| match arguments {
            [value] => Ok(string(&apply(&text_argument(name, value)?))),
            _ => Err(TemplateError::ArgCount { name: name.into(), expected: 1, got: arguments.len() }),
        })
    };
    functions.insert("toUpper".into(), unary("toUpper", str::to_uppercase));
    functions.insert("toLower".into(), unary("toLower", str::to_lowercase));
    functions.insert("title".into(), unary("title", title));
    functions.insert("safeHtml".into(), unary("safeHtml", str::to_owned));
    functions.insert(
        "join".into(),
        Arc::new(|arguments: &[Value]| match arguments {
            [separator, list] => Ok(string(&string_list("join", list)?.join(&text_argument("join", separator)?))),
            _ => Err(TemplateError::ArgCount { name: "join".into(), expected: 2, got: arguments.len() }),
        }),
    );
    functions.insert(
        "match".into(),
        Arc::new(|arguments: &[Value]| match arguments {
            [pattern, text] => {
                let regex = regex::Regex::new(&text_argument("match", pattern)?)
                    .map_err(|error| exec_error(error.to_string()))?;
                Ok(Value::Bool(regex.is_match(&text_argument("match", text)?)))
            }
            _ => Err(TemplateError::ArgCount { name: "match".into(), expected: 2, got: arguments.len() }),
        }),
    );
    functions.insert(
        "reReplaceAll".into(),
        Arc::new(|arguments: &[Value]| match arguments {
            [pattern, replacement, text] => {
                let regex = regex::Regex::new(&text_argument("reReplaceAll", pattern)?)
                    .map_err(|error| exec_error(error.to_string()))?;
                let replacement = text_argument("reReplaceAll", replacement)?;
                Ok(string(&regex.replace_all(&text_argument("reReplaceAll", text)?, replacement.as_str())))
            }
            _ => Err(TemplateError::ArgCount { name: "reReplaceAll".into(), expected: 3, got: arguments.len() }),
        }),
    );
    functions.insert(
        "stringSlice".into(),
        Arc::new(|arguments: &[Value]| {
            let items: Result<Vec<Value>, TemplateError> =
                arguments.iter().map(|item| text_argument("stringSlice", item).map(|text| string(&text))).collect();
            Ok(Value::List(items?.into()))
        }),
    );
    functions
}

/// `cases.Title`: the first letter of each word upper case, the rest lower case.
fn title(text: &str) -> String {
    let mut titled = String::with_capacity(text.len());
    let mut start = true;
    for character in text.chars() {
        if character.is_alphanumeric() || character == '\'' {
            if start {
                titled.extend(character.to_uppercase());
            } else {
                titled.extend(character.to_lowercase());
            }
            start = false;
        } else {
            titled.push(character);
            start = true;
        }
    }
    titled
}

// -------------------------------------------------------------- templates

/// Why a template could not be rendered: its parse or execution error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RenderError {
    pub message: String,
}

/// The default templates and the configured template files, parsed.
#[derive(Clone)]
pub struct Templates {
    base: Template,
    /// The base's definitions, rewritten, to add to each field's template.
    definitions: Vec<(String, ListNode)>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").field("defined", &self.base.templates()).finish()
    }
}

/// Go's parser refuses an `if`, `range`, `with`, `define` or `block`
/// without its `{{end}}`, and an `{{end}}` without one; `gotmpl` 0.6 lets
/// both through, so the actions are balanced here first. Returns the
/// 1-based line and column of the offending action.
fn unbalanced(text: &str) -> Option<(usize, usize, String)> {
    let mut open: Vec<(usize, &str)> = Vec::new();
    let mut rest = 0;
    while let Some(start) = text[rest..].find("{{").map(|offset| rest + offset) {
        let inner_start = start + 2;
        let Some(end) = text[inner_start..].find("}}").map(|offset| inner_start + offset) else { break };
        let inner = text[inner_start..end].trim_start_matches('-').trim();
        rest = end + 2;
        if inner.starts_with("/*") {
            if let Some(close) = text[inner_start..].find("*/") {
                rest = rest.max(inner_start + close + 2);
            }
            continue;
        }
        let word = inner.split(|c: char| c.is_whitespace() || c == '(' || c == '-').next().unwrap_or("");
        match word {
            "if" | "range" | "with" | "define" | "block" => open.push((start, word)),
            "end" if open.pop().is_none() => {
                let (line, column) = position(text, start);
                return Some((line, column, "unexpected {{end}}".to_owned()));
            }
            _ => {}
        }
    }
    open.pop().map(|(start, word)| {
        let (line, column) = position(text, start);
        (line, column, format!("unexpected EOF: {{{{{word}}}}} has no {{{{end}}}}"))
    })
}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    (line, column)
}

/// Parses `text` into a new template named `name`, refusing unbalanced blocks.
fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
    if let Some((line, col, message)) = unbalanced(text) {
        return Err(TemplateError::Parse { name: Some(name.to_owned()), line, col, message });
    }
    new_template(name).parse(text)
}

fn new_template(name: &str) -> Template {
    Template::new(name).missing_key(MissingKey::ZeroValue).funcs(function_map())
}

fn diagnostic(path: &Path, text: &str, error: TemplateError) -> Diagnostic {
    match error {
        TemplateError::Parse { line, col, message, .. } | TemplateError::Lex { line, col, message, .. } => Diagnostic {
            path: path.to_owned(),
            line,
            column: col,
            message,
            snippet: text.lines().nth(line.saturating_sub(1)).map(str::to_owned),
        },
        other => Diagnostic::file(path, other.to_string()),
    }
}

impl Templates {
    /// alertbook's default templates alone.
    pub fn defaults() -> Self {
        let base = new_template("")
            .parse(DEFAULT_TEMPLATES)
            .map(rewrite_template)
            .unwrap_or_else(|error| panic!("alertbook's default templates do not parse: {error}"));
        Self::from_base(base)
    }

    /// The default templates, then every file the globs of `templates:` match
    /// (sorted within a glob, as Go's `ParseGlob`; a glob matching nothing is
    /// allowed, as in Alertmanager). Every error is reported at file:line:col.
    pub fn load(globs: &[PathBuf]) -> Result<Self, Diagnostics> {
        let mut template = Self::defaults().base;
        let mut errors = Vec::new();
        for pattern in globs {
            let text_pattern = pattern.to_string_lossy();
            let paths = match glob::glob(&text_pattern) {
                Ok(paths) => paths,
                Err(error) => {
                    errors.push(Diagnostic::file(pattern, format!("invalid template glob: {error}")));
                    continue;
                }
            };
            let mut files: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
            files.sort();
            for file in files {
                let text = match std::fs::read_to_string(&file) {
                    Ok(text) => text,
                    Err(error) => {
                        errors.push(Diagnostic::file(&file, format!("cannot read the template file: {error}")));
                        continue;
                    }
                };
                // Parse alone first, to locate errors in this file.
                if let Err(error) = parse("", &text) {
                    errors.push(diagnostic(&file, &text, error));
                    continue;
                }
                match template.clone().parse(&text) {
                    Ok(parsed) => template = parsed,
                    Err(error) => errors.push(diagnostic(&file, &text, error)),
                }
            }
        }
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        Ok(Self::from_base(rewrite_template(template)))
    }

    fn from_base(base: Template) -> Self {
        let definitions = base
            .templates()
            .into_iter()
            .filter_map(|name| base.lookup(name).map(|tree| (name.to_owned(), tree.clone())))
            .collect();
        Self { base, definitions }
    }

    /// Whether a template of this name is defined.
    pub fn is_defined(&self, name: &str) -> bool {
        self.base.lookup(name).is_some()
    }

    /// Checks that `text` parses (a configuration field's template).
    pub fn check(&self, text: &str) -> Result<(), RenderError> {
        parse("field", text).map(|_| ()).map_err(|error| RenderError { message: error.to_string() })
    }

    /// Renders a field's template text over `data`, as Alertmanager's
    /// `ExecuteTextString` (an empty text renders empty).
    pub fn render(&self, text: &str, data: &Value) -> Result<String, RenderError> {
        if text.is_empty() {
            return Ok(String::new());
        }
        const NAME: &str = "__alertbook_field";
        let parsed = parse(NAME, text).map_err(|error| RenderError { message: error.to_string() })?;
        let mut template = rewrite_template(parsed);
        for (name, tree) in &self.definitions {
            if template.lookup(name).is_none() {
                template = template.add_parse_tree(name, tree.clone());
            }
        }
        let rendered = if template.lookup(NAME).is_some() {
            template.execute_template_to_string(NAME, data)
        } else {
            template.execute_to_string(data)
        };
        rendered.map_err(|error| RenderError { message: error.to_string() })
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Value {
        let now = 1_700_000_100_000;
        let mut firing = Alert {
            labels: BTreeMap::from([
                ("alertname".into(), "TenantLagHigh".into()),
                ("tenant_id".into(), "t-42".into()),
                ("severity".into(), "page".into()),
            ]),
            annotations: BTreeMap::from([("summary".into(), "lag is high".into())]),
            starts_at_ms: 1_700_000_000_000,
            ends_at_ms: None,
            generator_url: "http://alertbook/graph".into(),
        };
        let mut resolved = firing.clone();
        resolved.labels.insert("tenant_id".into(), "t-7".into());
        resolved.ends_at_ms = Some(now - 1000);
        firing.annotations.insert("runbook_url".into(), "https://runbook/A1".into());
        let group = BTreeMap::from([("alertname".to_owned(), "TenantLagHigh".to_owned())]);
        TemplateData::new("ops-oncall", &group, &[firing, resolved], "http://alertbook:9099/", now).to_value()
    }

    #[test]
    fn alertmanager_idioms_render() {
        let templates = Templates::defaults();
        let render = |text: &str| templates.render(text, &data()).unwrap_or_else(|error| panic!("{text}: {error}"));
        assert_eq!(render("{{ len .Alerts.Firing }}/{{ .Alerts.Resolved | len }}"), "1/1");
        assert_eq!(render("{{ range .Alerts.Firing }}{{ .Labels.tenant_id }}{{ end }}"), "t-42");
        assert_eq!(render("{{ .CommonLabels.alertname }} {{ .CommonLabels.severity }}"), "TenantLagHigh page");
        assert_eq!(render("{{ .GroupLabels.SortedPairs.Values | join \" \" }}"), "TenantLagHigh");
        assert_eq!(
            render("{{ with .CommonLabels.Remove .GroupLabels.Names }}{{ .Values | join \",\" }}{{ end }}"),
            "page"
        );
        assert_eq!(
            render("{{ range (index .Alerts 0).Labels.SortedPairs }}{{ .Name }}={{ .Value }};{{ end }}"),
            "alertname=TenantLagHigh;severity=page;tenant_id=t-42;"
        );
        assert_eq!(render("{{ template \"slack.default.title\" . }}"), "[FIRING:1] TenantLagHigh (page)");
        assert_eq!(render("{{ (index .Alerts 0).StartsAt }}"), "2023-11-14 22:13:20 +0000 UTC");
        assert_eq!(render("{{ (index .Alerts 0).EndsAt }}"), "0001-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            render("{{ range .Alerts }}{{ .StartsAt.Format \"2006-01-02 15:04 MST\" }}{{ end }}"),
            "2023-11-14 22:13 UTC2023-11-14 22:13 UTC"
        );
        assert_eq!(render("{{ $alerts := .Alerts }}{{ len $alerts.Firing }}"), "1");
        assert_eq!(
            render("{{ .Receiver }} {{ .Status | toUpper }} {{ title \"ops team\" }}"),
            "ops-oncall FIRING Ops Team"
        );
        assert_eq!(render("{{ if match \"^t-\" .CommonLabels.alertname }}y{{ else }}n{{ end }}"), "n");
        assert_eq!(render("{{ reReplaceAll \"t-(.*)\" \"tenant $1\" \"t-42\" }}"), "tenant 42");
        assert_eq!(
            render("{{ .SilenceURL }}"),
            "http://alertbook:9099/#/silences/new?filter=%7Balertname%3D%22TenantLagHigh%22%7D"
        );
    }

    #[test]
    fn a_map_key_named_like_a_method_of_another_type_reads_the_key() {
        let templates = Templates::defaults();
        let mut alert = BTreeMap::new();
        alert.insert(Arc::from("Firing"), string("yes"));
        let value = Value::Map(Arc::new(BTreeMap::from([(Arc::from("Annotations"), Value::Map(Arc::new(alert)))])));
        assert_eq!(templates.render("{{ .Annotations.Firing }}", &value).expect("render"), "yes");
    }

    #[test]
    fn template_files_load_and_errors_point_at_file_line_column() {
        let directory = tempfile::tempdir().expect("temporary directory");
        std::fs::write(
            directory.path().join("a.tmpl"),
            "{{ define \"slack.default.title\" }}custom {{ .Status }}{{ end }}\n",
        )
        .expect("write");
        let templates = Templates::load(&[directory.path().join("*.tmpl")]).expect("loads");
        assert_eq!(
            templates.render("{{ template \"slack.default.title\" . }}", &data()).expect("render"),
            "custom firing"
        );
        std::fs::write(directory.path().join("b.tmpl"), "{{ define \"x\" }}\n{{ range .Alerts }}\n{{ end }}\n")
            .expect("write");
        let errors = Templates::load(&[directory.path().join("*.tmpl")]).expect_err("unbalanced");
        let error = &errors.0[0];
        assert!(error.path.ends_with("b.tmpl"), "{error}");
        assert_eq!((error.line, error.column), (1, 1), "{error}");
        assert!(error.message.contains("unexpected EOF"), "{error}");
    }

    #[test]
    fn errors_say_where() {
        let templates = Templates::defaults();
        let error = templates.render("{{ range .Alerts }}", &data()).expect_err("unclosed range");
        assert!(error.message.contains("unexpected EOF") || error.message.contains("range"), "{error}");
        let error = templates.render("{{ template \"nope\" . }}", &data()).expect_err("undefined");
        assert!(error.message.contains("nope"), "{error}");
    }
}
