//! `alertmanager.yml`, read as Alertmanager 0.25 reads it: raw serde structs
//! that refuse unknown fields, then a validation step into [`RoutingConfig`]
//! that reports every error at `file:line:col` with Alertmanager's wording.
//!
//! Receivers alertbook delivers to: `webhook_configs`, `email_configs`,
//! `slack_configs` and `pagerduty_configs`. A receiver using another
//! integration (`opsgenie_configs`, `pushover_configs`, …) is refused by name
//! rather than silently never notified, and so are the settings alertbook
//! would otherwise ignore: PagerDuty's Events API v1 (`service_key`,
//! `service_key_file`), `http_config.proxy_url` and
//! `http_config.tls_config.server_name`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use catalog::{Diagnostic, Diagnostics, SourceFile};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::matcher::{MatchType, Matcher, Matchers, is_label_name, parse_matchers};
use super::route::{GroupBy, Route, RouteTree};
use super::timeinterval::{self, TimeInterval};

/// The default `global.resolve_timeout`.
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(300);
/// The default `global.pagerduty_url`.
pub const DEFAULT_PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

// ---------------------------------------------------------------- raw structs

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    global: Option<RawGlobal>,
    #[serde(default)]
    route: Option<Spanned<RawRoute>>,
    #[serde(default)]
    inhibit_rules: Vec<Spanned<RawInhibitRule>>,
    #[serde(default)]
    receivers: Vec<Spanned<RawReceiver>>,
    #[serde(default)]
    templates: Vec<Spanned<String>>,
    #[serde(default)]
    mute_time_intervals: Vec<Spanned<RawTimeIntervalSet>>,
    #[serde(default)]
    time_intervals: Vec<Spanned<RawTimeIntervalSet>>,
}

/// The integrations alertbook does not deliver to keep their global settings
/// accepted (and unused), as a configuration shared with Alertmanager has them.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RawGlobal {
    resolve_timeout: Option<Spanned<String>>,
    http_config: Option<HttpConfig>,
    smtp_from: Option<String>,
    smtp_hello: Option<String>,
    smtp_smarthost: Option<Spanned<String>>,
    smtp_auth_username: Option<String>,
    smtp_auth_password: Option<Spanned<String>>,
    smtp_auth_password_file: Option<String>,
    smtp_auth_secret: Option<String>,
    smtp_auth_identity: Option<String>,
    smtp_require_tls: Option<bool>,
    slack_api_url: Option<Spanned<String>>,
    slack_api_url_file: Option<String>,
    pagerduty_url: Option<Spanned<String>>,
    opsgenie_api_url: Option<String>,
    opsgenie_api_key: Option<String>,
    opsgenie_api_key_file: Option<String>,
    wechat_api_url: Option<String>,
    wechat_api_secret: Option<String>,
    wechat_api_corp_id: Option<String>,
    victorops_api_url: Option<String>,
    victorops_api_key: Option<String>,
    victorops_api_key_file: Option<String>,
    telegram_api_url: Option<String>,
    webex_api_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    receiver: Option<Spanned<String>>,
    group_by: Option<Vec<Spanned<String>>>,
    #[serde(rename = "match")]
    match_equal: Option<BTreeMap<String, String>>,
    match_re: Option<BTreeMap<String, String>>,
    matchers: Option<Vec<Spanned<String>>>,
    mute_time_intervals: Option<Vec<Spanned<String>>>,
    active_time_intervals: Option<Vec<Spanned<String>>>,
    #[serde(rename = "continue")]
    continue_matching: Option<Spanned<bool>>,
    #[serde(default)]
    routes: Vec<Spanned<RawRoute>>,
    group_wait: Option<Spanned<String>>,
    group_interval: Option<Spanned<String>>,
    repeat_interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInhibitRule {
    source_match: Option<BTreeMap<String, String>>,
    source_match_re: Option<BTreeMap<String, String>>,
    source_matchers: Option<Vec<Spanned<String>>>,
    target_match: Option<BTreeMap<String, String>>,
    target_match_re: Option<BTreeMap<String, String>>,
    target_matchers: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    equal: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeIntervalSet {
    name: Option<Spanned<String>>,
    #[serde(default)]
    time_intervals: Vec<RawTimeInterval>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeInterval {
    times: Option<Vec<Spanned<RawTimeRange>>>,
    weekdays: Option<Vec<Spanned<String>>>,
    days_of_month: Option<Vec<Spanned<String>>>,
    months: Option<Vec<Spanned<String>>>,
    years: Option<Vec<Spanned<String>>>,
    location: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeRange {
    #[serde(default)]
    start_time: String,
    #[serde(default)]
    end_time: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    name: Option<Spanned<String>>,
    #[serde(default)]
    webhook_configs: Vec<Spanned<WebhookConfig>>,
    #[serde(default)]
    email_configs: Vec<Spanned<EmailConfig>>,
    #[serde(default)]
    slack_configs: Vec<Spanned<SlackConfig>>,
    #[serde(default)]
    pagerduty_configs: Vec<Spanned<PagerdutyConfig>>,
    discord_configs: Option<Spanned<serde_json::Value>>,
    opsgenie_configs: Option<Spanned<serde_json::Value>>,
    wechat_configs: Option<Spanned<serde_json::Value>>,
    pushover_configs: Option<Spanned<serde_json::Value>>,
    victorops_configs: Option<Spanned<serde_json::Value>>,
    sns_configs: Option<Spanned<serde_json::Value>>,
    telegram_configs: Option<Spanned<serde_json::Value>>,
    webex_configs: Option<Spanned<serde_json::Value>>,
}

// ------------------------------------------------------- receiver settings

/// Prometheus's `http_config` (the parts alertbook applies).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    pub tls_config: Option<TlsConfig>,
    pub proxy_url: Option<String>,
    pub follow_redirects: Option<bool>,
    pub enable_http2: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default)]
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: Option<String>,
    pub credentials_file: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    pub min_version: Option<String>,
}

/// `webhook_configs` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub send_resolved: Option<bool>,
    pub http_config: Option<HttpConfig>,
    pub url: Option<String>,
    #[serde(default)]
    pub max_alerts: u64,
}

/// `email_configs` entry; global SMTP settings are filled in by validation.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub send_resolved: Option<bool>,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub hello: String,
    #[serde(default)]
    pub smarthost: String,
    #[serde(default)]
    pub auth_username: String,
    pub auth_password: Option<String>,
    pub auth_password_file: Option<String>,
    pub auth_secret: Option<String>,
    #[serde(default)]
    pub auth_identity: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub require_tls: Option<bool>,
    pub tls_config: Option<TlsConfig>,
}

/// `slack_configs` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    pub send_resolved: Option<bool>,
    pub http_config: Option<HttpConfig>,
    pub api_url: Option<String>,
    pub api_url_file: Option<String>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub color: Option<String>,
    pub title: Option<String>,
    pub title_link: Option<String>,
    pub pretext: Option<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub fields: Vec<SlackField>,
    #[serde(default)]
    pub short_fields: bool,
    pub footer: Option<String>,
    pub fallback: Option<String>,
    pub callback_id: Option<String>,
    pub icon_emoji: Option<String>,
    pub icon_url: Option<String>,
    pub image_url: Option<String>,
    pub thumb_url: Option<String>,
    #[serde(default)]
    pub link_names: bool,
    #[serde(default)]
    pub mrkdwn_in: Vec<String>,
    #[serde(default)]
    pub actions: Vec<SlackAction>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackField {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub value: String,
    pub short: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackAction {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub style: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
    pub confirm: Option<SlackConfirm>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackConfirm {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub ok_text: String,
    #[serde(default)]
    pub dismiss_text: String,
}

/// `pagerduty_configs` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyConfig {
    pub send_resolved: Option<bool>,
    pub http_config: Option<HttpConfig>,
    pub service_key: Option<String>,
    pub service_key_file: Option<String>,
    pub routing_key: Option<String>,
    pub routing_key_file: Option<String>,
    pub url: Option<String>,
    pub client: Option<String>,
    pub client_url: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    #[serde(default)]
    pub images: Vec<PagerdutyImage>,
    #[serde(default)]
    pub links: Vec<PagerdutyLink>,
    pub source: Option<String>,
    pub severity: Option<String>,
    pub class: Option<String>,
    pub component: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyImage {
    #[serde(default)]
    pub src: String,
    #[serde(default)]
    pub alt: String,
    #[serde(default)]
    pub href: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyLink {
    #[serde(default)]
    pub href: String,
    #[serde(default)]
    pub text: String,
}

// ------------------------------------------------------------ domain types

/// What one integration of a receiver sends to.
#[derive(Debug, Clone, PartialEq)]
pub enum IntegrationSettings {
    Webhook(WebhookConfig),
    Email(EmailConfig),
    Slack(SlackConfig),
    Pagerduty(PagerdutyConfig),
}

/// One integration of a receiver: `webhook_configs[0]` and the like. The
/// notification log keys on (receiver, integration name, index).
#[derive(Debug, Clone, PartialEq)]
pub struct Integration {
    /// `webhook`, `email`, `slack` or `pagerduty`, as Alertmanager names them.
    pub name: &'static str,
    pub index: usize,
    pub send_resolved: bool,
    pub settings: IntegrationSettings,
}

/// A receiver: a name and the integrations notified together.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    pub name: String,
    pub integrations: Vec<Integration>,
}

/// An inhibition rule.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    pub source_matchers: Matchers,
    pub target_matchers: Matchers,
    pub equal: Vec<String>,
}

/// A validated `alertmanager.yml`.
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    pub resolve_timeout: Duration,
    pub route: RouteTree,
    pub inhibit_rules: Vec<InhibitRule>,
    pub receivers: Vec<Receiver>,
    /// Named time intervals, `time_intervals` and the older `mute_time_intervals` together.
    pub time_intervals: BTreeMap<String, Vec<TimeInterval>>,
    /// Template files, relative paths resolved against the file's directory.
    pub templates: Vec<PathBuf>,
    /// The file's text, as the status API shows it.
    pub original: String,
}

impl RoutingConfig {
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|receiver| receiver.name == name)
    }

    /// Whether `at_ms` lies in any of the named intervals (unknown names never match).
    pub fn in_time_intervals(&self, names: &[String], at_ms: i64) -> bool {
        names.iter().filter_map(|name| self.time_intervals.get(name)).flatten().any(|interval| interval.contains(at_ms))
    }
}

// -------------------------------------------------------------- validation

/// Reads and validates an `alertmanager.yml` and parses the template files
/// its `templates:` globs name, as `amtool check-config` does.
pub fn load(path: &Path) -> Result<RoutingConfig, Diagnostics> {
    let source = SourceFile::read(path).map_err(|diagnostic| Diagnostics(vec![diagnostic]))?;
    let config = parse(&source)?;
    crate::templates::Templates::load(&config.templates)?;
    Ok(config)
}

/// Validates the text of an `alertmanager.yml` held in `source`.
pub fn parse(source: &SourceFile) -> Result<RoutingConfig, Diagnostics> {
    let raw: RawConfig = if source.text.trim().is_empty() {
        return Err(Diagnostics(vec![Diagnostic::file(&source.path, "no route provided in config")]));
    } else {
        source.parse_yaml().map_err(|diagnostic| Diagnostics(vec![diagnostic]))?
    };
    let mut validator = Validator { source, errors: Vec::new() };
    let config = validator.config(raw);
    if validator.errors.is_empty() {
        Ok(config)
    } else {
        let mut errors = validator.errors;
        errors.sort_by_key(|error| (error.line, error.column));
        Err(Diagnostics(errors))
    }
}

struct Validator<'a> {
    source: &'a SourceFile,
    errors: Vec<Diagnostic>,
}

/// Route options inherited down the tree.
#[derive(Clone)]
struct Inherited {
    receiver: String,
    group_by: GroupBy,
    group_wait: Duration,
    group_interval: Duration,
    repeat_interval: Duration,
}

impl Validator<'_> {
    fn error<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.errors.push(self.source.error_at_value(at, message));
    }

    fn duration(&mut self, text: &Spanned<String>) -> Option<Duration> {
        match catalog::duration::parse_duration(&text.value) {
            Ok(duration) => Some(duration),
            Err(_) => {
                self.error(text, format!("not a valid duration string: {:?}", text.value));
                None
            }
        }
    }

    fn config(&mut self, raw: RawConfig) -> RoutingConfig {
        let global = raw.global.unwrap_or_default();
        let resolve_timeout =
            global.resolve_timeout.as_ref().and_then(|text| self.duration(text)).unwrap_or(DEFAULT_RESOLVE_TIMEOUT);
        let receivers = self.receivers(&raw.receivers, &global);

        let mut time_intervals = BTreeMap::new();
        for (set, what) in raw
            .mute_time_intervals
            .iter()
            .map(|set| (set, "mute time interval"))
            .chain(raw.time_intervals.iter().map(|set| (set, "time interval")))
        {
            let Some(name) = set.value.name.as_ref().filter(|name| !name.value.is_empty()) else {
                self.error(set, format!("missing name in {what}"));
                continue;
            };
            let intervals = self.time_interval_set(&set.value);
            if time_intervals.insert(name.value.clone(), intervals).is_some() {
                self.error(name, format!("{what} {:?} is not unique", name.value));
            }
        }

        let inhibit_rules = raw.inhibit_rules.iter().map(|rule| self.inhibit_rule(rule)).collect();

        let route = match &raw.route {
            None => {
                self.errors.push(Diagnostic::file(&self.source.path, "no route provided in config"));
                RouteTree::new(Route::default())
            }
            Some(root) => self.root_route(root, &receivers, &time_intervals),
        };

        let base = self.source.path.parent().unwrap_or(Path::new("."));
        let templates = raw.templates.iter().map(|template| base.join(&template.value)).collect();
        RoutingConfig {
            resolve_timeout,
            route,
            inhibit_rules,
            receivers,
            time_intervals,
            templates,
            original: self.source.text.clone(),
        }
    }

    fn root_route(
        &mut self,
        root: &Spanned<RawRoute>,
        receivers: &[Receiver],
        time_intervals: &BTreeMap<String, Vec<TimeInterval>>,
    ) -> RouteTree {
        let raw = &root.value;
        if let Some(continue_matching) = raw.continue_matching.as_ref().filter(|value| value.value) {
            self.error(continue_matching, "cannot have continue in root route");
        }
        if raw.receiver.as_ref().is_none_or(|receiver| receiver.value.is_empty()) {
            self.error(root, "root route must specify a default receiver");
        }
        if raw.match_equal.as_ref().is_some_and(|map| !map.is_empty())
            || raw.match_re.as_ref().is_some_and(|map| !map.is_empty())
            || raw.matchers.as_ref().is_some_and(|list| !list.is_empty())
        {
            self.error(root, "root route must not have any matchers");
        }
        if let Some(first) = raw.mute_time_intervals.as_ref().and_then(|list| list.first()) {
            self.error(first, "root route must not have any mute time intervals");
        }
        if let Some(first) = raw.active_time_intervals.as_ref().and_then(|list| list.first()) {
            self.error(first, "root route must not have any active time intervals");
        }
        let defaults = Inherited {
            receiver: String::new(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
        };
        let mut tree = RouteTree::new(Route::default());
        self.route(root, &defaults, None, &mut tree, receivers, time_intervals);
        tree
    }

    fn route(
        &mut self,
        spanned: &Spanned<RawRoute>,
        parent: &Inherited,
        parent_index: Option<usize>,
        tree: &mut RouteTree,
        receivers: &[Receiver],
        time_intervals: &BTreeMap<String, Vec<TimeInterval>>,
    ) {
        let raw = &spanned.value;
        let mut options = parent.clone();
        if let Some(receiver) = &raw.receiver
            && !receiver.value.is_empty()
        {
            if !receivers.iter().any(|known| known.name == receiver.value) {
                self.error(receiver, format!("undefined receiver {:?} used in route", receiver.value));
            }
            options.receiver = receiver.value.clone();
        }
        if let Some(group_by) = &raw.group_by {
            let mut labels: Vec<String> = Vec::new();
            let mut all = false;
            for label in group_by {
                if label.value == "..." {
                    all = true;
                } else if !is_label_name(&label.value) {
                    self.error(label, format!("invalid label name {:?} in group_by list", label.value));
                } else if labels.contains(&label.value) {
                    self.error(label, format!("duplicated label {:?} in group_by", label.value));
                } else {
                    labels.push(label.value.clone());
                }
            }
            if all && !labels.is_empty() {
                self.error(
                    &group_by[0],
                    "cannot have wildcard group_by (`...`) and other other labels at the same time",
                );
            }
            labels.sort();
            options.group_by = if all { GroupBy::All } else { GroupBy::Labels(labels) };
        }
        if let Some(text) = &raw.group_wait
            && let Some(duration) = self.duration(text)
        {
            options.group_wait = duration;
        }
        if let Some(text) = &raw.group_interval
            && let Some(duration) = self.duration(text)
        {
            if duration.is_zero() {
                self.error(text, "group_interval cannot be zero");
            }
            options.group_interval = duration;
        }
        if let Some(text) = &raw.repeat_interval
            && let Some(duration) = self.duration(text)
        {
            if duration.is_zero() {
                self.error(text, "repeat_interval cannot be zero");
            }
            options.repeat_interval = duration;
        }
        let mut matchers = self.match_equal(spanned, raw.match_equal.as_ref());
        matchers.extend(self.match_re(spanned, raw.match_re.as_ref()));
        matchers.extend(self.matcher_lines(raw.matchers.as_deref()));
        let mut matchers = Matchers(matchers);
        matchers.sort();
        let interval_names = |list: &Option<Vec<Spanned<String>>>, validator: &mut Self| -> Vec<String> {
            let mut names = Vec::new();
            for name in list.iter().flatten() {
                if !time_intervals.contains_key(&name.value) {
                    validator.error(name, format!("undefined time interval {:?} used in route", name.value));
                }
                names.push(name.value.clone());
            }
            names
        };
        let mute_time_intervals = interval_names(&raw.mute_time_intervals, self);
        let active_time_intervals = interval_names(&raw.active_time_intervals, self);
        let route = Route {
            receiver: options.receiver.clone(),
            group_by: options.group_by.clone(),
            group_wait: options.group_wait,
            group_interval: options.group_interval,
            repeat_interval: options.repeat_interval,
            matchers,
            continue_matching: raw.continue_matching.as_ref().is_some_and(|value| value.value),
            mute_time_intervals,
            active_time_intervals,
            ..Route::default()
        };
        let index = match parent_index {
            None => {
                tree.replace_root(route);
                0
            }
            Some(parent_index) => tree.add_child(parent_index, route),
        };
        for child in &raw.routes {
            self.route(child, &options, Some(index), tree, receivers, time_intervals);
        }
    }

    /// `match:` (deprecated in Alertmanager, still read); errors point at `at`.
    fn match_equal<T>(&mut self, at: &Spanned<T>, map: Option<&BTreeMap<String, String>>) -> Vec<Matcher> {
        let mut matchers = Vec::new();
        for (name, value) in map.into_iter().flatten() {
            if !is_label_name(name) {
                self.error(at, format!("invalid label name {name:?}"));
            } else if let Ok(matcher) = Matcher::new(MatchType::Equal, name, value) {
                matchers.push(matcher);
            }
        }
        matchers
    }

    /// `match_re:`, each value a regular expression anchored at both ends.
    fn match_re<T>(&mut self, at: &Spanned<T>, map: Option<&BTreeMap<String, String>>) -> Vec<Matcher> {
        let mut matchers = Vec::new();
        for (name, value) in map.into_iter().flatten() {
            if !is_label_name(name) {
                self.error(at, format!("invalid label name {name:?}"));
                continue;
            }
            match Matcher::new(MatchType::Regexp, name, value) {
                Ok(matcher) => matchers.push(matcher),
                Err(_) => self.error(at, format!("invalid regexp value for {name:?}")),
            }
        }
        matchers
    }

    fn matcher_lines(&mut self, lines: Option<&[Spanned<String>]>) -> Vec<Matcher> {
        let mut matchers = Vec::new();
        for line in lines.into_iter().flatten() {
            match parse_matchers(&line.value) {
                Ok(parsed) => matchers.extend(parsed),
                Err(message) => self.error(line, message),
            }
        }
        matchers
    }

    fn inhibit_rule(&mut self, spanned: &Spanned<RawInhibitRule>) -> InhibitRule {
        let raw = &spanned.value;
        let side = |equal: &Option<BTreeMap<String, String>>,
                    regex: &Option<BTreeMap<String, String>>,
                    lines: &Option<Vec<Spanned<String>>>,
                    validator: &mut Self| {
            let mut matchers = validator.match_equal(spanned, equal.as_ref());
            matchers.extend(validator.match_re(spanned, regex.as_ref()));
            matchers.extend(validator.matcher_lines(lines.as_deref()));
            Matchers(matchers)
        };
        let source_matchers = side(&raw.source_match, &raw.source_match_re, &raw.source_matchers, self);
        let target_matchers = side(&raw.target_match, &raw.target_match_re, &raw.target_matchers, self);
        let mut equal = Vec::new();
        for name in &raw.equal {
            if !is_label_name(&name.value) {
                self.error(name, format!("invalid label name {:?}", name.value));
            }
            equal.push(name.value.clone());
        }
        InhibitRule { source_matchers, target_matchers, equal }
    }

    fn time_interval_set(&mut self, raw: &RawTimeIntervalSet) -> Vec<TimeInterval> {
        raw.time_intervals.iter().map(|interval| self.time_interval(interval)).collect()
    }

    fn time_interval(&mut self, raw: &RawTimeInterval) -> TimeInterval {
        fn ranges<T>(
            validator: &mut Validator<'_>,
            list: &Option<Vec<Spanned<String>>>,
            parse: impl Fn(&str) -> Result<T, String>,
        ) -> Option<Vec<T>> {
            let list = list.as_ref()?;
            let mut parsed = Vec::new();
            for item in list {
                match parse(&item.value) {
                    Ok(range) => parsed.push(range),
                    Err(message) => validator.error(item, message),
                }
            }
            Some(parsed)
        }
        let times = raw.times.as_ref().map(|times| {
            let mut parsed = Vec::new();
            for range in times {
                match timeinterval::parse_time_range(&range.value.start_time, &range.value.end_time) {
                    Ok(range) => parsed.push(range),
                    Err(message) => self.error(range, message),
                }
            }
            parsed
        });
        let location = raw.location.as_ref().and_then(|name| match timeinterval::parse_location(&name.value) {
            Ok(zone) => Some(zone),
            Err(message) => {
                self.error(name, message);
                None
            }
        });
        TimeInterval {
            times,
            weekdays: ranges(self, &raw.weekdays, timeinterval::parse_weekday_range),
            days_of_month: ranges(self, &raw.days_of_month, timeinterval::parse_day_of_month_range),
            months: ranges(self, &raw.months, timeinterval::parse_month_range),
            years: ranges(self, &raw.years, timeinterval::parse_year_range),
            location,
        }
    }

    /// An `http_config` setting alertbook does not apply (`proxy_url`,
    /// `tls_config.server_name`) is refused: a configuration relying on it
    /// must not look valid.
    fn refuse_unsupported_http<T>(&mut self, at: &Spanned<T>, receiver: &str, http_config: Option<&HttpConfig>) {
        if let Some(what) = http_config.and_then(crate::integrations::http::unsupported) {
            self.error(at, format!("receiver {receiver:?}: {what} (set here or in global.http_config)"));
        }
    }

    fn receivers(&mut self, raw: &[Spanned<RawReceiver>], global: &RawGlobal) -> Vec<Receiver> {
        let mut receivers: Vec<Receiver> = Vec::new();
        for receiver in raw {
            let Some(name) = receiver.value.name.as_ref().filter(|name| !name.value.is_empty()) else {
                self.error(receiver, "missing name in receiver");
                continue;
            };
            if receivers.iter().any(|known| known.name == name.value) {
                self.error(name, format!("notification config name {:?} is not unique", name.value));
                continue;
            }
            let raw = &receiver.value;
            for (key, value) in [
                ("discord_configs", &raw.discord_configs),
                ("opsgenie_configs", &raw.opsgenie_configs),
                ("wechat_configs", &raw.wechat_configs),
                ("pushover_configs", &raw.pushover_configs),
                ("victorops_configs", &raw.victorops_configs),
                ("sns_configs", &raw.sns_configs),
                ("telegram_configs", &raw.telegram_configs),
                ("webex_configs", &raw.webex_configs),
            ] {
                if let Some(value) = value {
                    self.error(
                        value,
                        format!(
                            "receiver {:?}: alertbook does not deliver to {key} (it delivers to webhook_configs, email_configs, slack_configs and pagerduty_configs)",
                            name.value
                        ),
                    );
                }
            }
            let mut integrations = Vec::new();
            for (index, webhook) in raw.webhook_configs.iter().enumerate() {
                let mut config = webhook.value.clone();
                match config.url.as_deref() {
                    None | Some("") => self.error(webhook, "missing URL in webhook config"),
                    Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                        self.error(webhook, "scheme required for webhook url")
                    }
                    Some(_) => {}
                }
                if config.http_config.is_none() {
                    config.http_config = global.http_config.clone();
                }
                self.refuse_unsupported_http(webhook, &name.value, config.http_config.as_ref());
                integrations.push(Integration {
                    name: "webhook",
                    index,
                    send_resolved: config.send_resolved.unwrap_or(true),
                    settings: IntegrationSettings::Webhook(config),
                });
            }
            for (index, email) in raw.email_configs.iter().enumerate() {
                let mut config = email.value.clone();
                if config.to.is_empty() {
                    self.error(email, "missing to address in email config");
                }
                let mut seen = Vec::new();
                for header in config.headers.keys() {
                    let normalized = title_case_header(header);
                    if seen.contains(&normalized) {
                        self.error(email, format!("duplicate header {normalized:?} in email config"));
                    }
                    seen.push(normalized);
                }
                if config.smarthost.is_empty() {
                    match &global.smtp_smarthost {
                        Some(smarthost) if !smarthost.value.is_empty() => config.smarthost = smarthost.value.clone(),
                        _ => self.error(email, "no global SMTP smarthost set"),
                    }
                }
                if config.from.is_empty() {
                    match &global.smtp_from {
                        Some(from) if !from.is_empty() => config.from = from.clone(),
                        _ => self.error(email, "no global SMTP from set"),
                    }
                }
                if config.hello.is_empty() {
                    config.hello = global.smtp_hello.clone().unwrap_or_else(|| "localhost".into());
                }
                if config.auth_username.is_empty() {
                    config.auth_username = global.smtp_auth_username.clone().unwrap_or_default();
                }
                if config.auth_password.is_none() && config.auth_password_file.is_none() {
                    config.auth_password = global.smtp_auth_password.as_ref().map(|password| password.value.clone());
                    config.auth_password_file = global.smtp_auth_password_file.clone();
                }
                if config.auth_secret.is_none() {
                    config.auth_secret = global.smtp_auth_secret.clone();
                }
                if config.auth_identity.is_empty() {
                    config.auth_identity = global.smtp_auth_identity.clone().unwrap_or_default();
                }
                if config.require_tls.is_none() {
                    config.require_tls = Some(global.smtp_require_tls.unwrap_or(true));
                }
                integrations.push(Integration {
                    name: "email",
                    index,
                    send_resolved: config.send_resolved.unwrap_or(false),
                    settings: IntegrationSettings::Email(config),
                });
            }
            for (index, slack) in raw.slack_configs.iter().enumerate() {
                let mut config = slack.value.clone();
                if config.api_url.is_some() && config.api_url_file.is_some() {
                    self.error(slack, "at most one of api_url & api_url_file must be configured");
                }
                for action in &config.actions {
                    if action.kind.is_empty() {
                        self.error(slack, "missing type in Slack action configuration");
                    } else if action.text.is_empty() {
                        self.error(slack, "missing text in Slack action configuration");
                    } else if action.url.is_empty() && action.name.is_empty() {
                        self.error(slack, "missing name or url in Slack action configuration");
                    }
                }
                for field in &config.fields {
                    if field.title.is_empty() {
                        self.error(slack, "missing title in Slack field configuration");
                    } else if field.value.is_empty() {
                        self.error(slack, "missing value in Slack field configuration");
                    }
                }
                if config.http_config.is_none() {
                    config.http_config = global.http_config.clone();
                }
                self.refuse_unsupported_http(slack, &name.value, config.http_config.as_ref());
                if config.api_url.is_none() && config.api_url_file.is_none() {
                    if global.slack_api_url.is_none() && global.slack_api_url_file.is_none() {
                        self.error(slack, "no global Slack API URL set either inline or in a file");
                    }
                    config.api_url = global.slack_api_url.as_ref().map(|url| url.value.clone());
                    config.api_url_file = global.slack_api_url_file.clone();
                }
                integrations.push(Integration {
                    name: "slack",
                    index,
                    send_resolved: config.send_resolved.unwrap_or(false),
                    settings: IntegrationSettings::Slack(config),
                });
            }
            for (index, pagerduty) in raw.pagerduty_configs.iter().enumerate() {
                let mut config = pagerduty.value.clone();
                let has = |value: &Option<String>| value.as_deref().is_some_and(|text| !text.is_empty());
                if !has(&config.routing_key)
                    && !has(&config.service_key)
                    && !has(&config.routing_key_file)
                    && !has(&config.service_key_file)
                {
                    self.error(pagerduty, "missing service or routing key in PagerDuty config");
                }
                if has(&config.routing_key) && has(&config.routing_key_file) {
                    self.error(pagerduty, "at most one of routing_key & routing_key_file must be configured");
                }
                if has(&config.service_key) && has(&config.service_key_file) {
                    self.error(pagerduty, "at most one of service_key & service_key_file must be configured");
                } else if has(&config.service_key) || has(&config.service_key_file) {
                    self.error(
                        pagerduty,
                        format!(
                            "receiver {:?}: alertbook does not deliver to PagerDuty's Events API v1 (service_key, service_key_file); use routing_key_file with an Events API v2 integration key",
                            name.value
                        ),
                    );
                }
                if config.http_config.is_none() {
                    config.http_config = global.http_config.clone();
                }
                self.refuse_unsupported_http(pagerduty, &name.value, config.http_config.as_ref());
                if config.url.is_none() {
                    config.url = Some(
                        global
                            .pagerduty_url
                            .as_ref()
                            .map_or_else(|| DEFAULT_PAGERDUTY_URL.to_owned(), |url| url.value.clone()),
                    );
                }
                integrations.push(Integration {
                    name: "pagerduty",
                    index,
                    send_resolved: config.send_resolved.unwrap_or(true),
                    settings: IntegrationSettings::Pagerduty(config),
                });
            }
            receivers.push(Receiver { name: name.value.clone(), integrations });
        }
        if let Some(url) = &global.slack_api_url
            && global.slack_api_url_file.is_some()
        {
            self.error(url, "at most one of slack_api_url & slack_api_url_file must be configured");
        }
        if let Some(password) = &global.smtp_auth_password
            && global.smtp_auth_password_file.is_some()
        {
            self.error(password, "at most one of smtp_auth_password & smtp_auth_password_file must be configured");
        }
        receivers
    }
}

/// `content-type` to `Content-Type`, as Go's `textproto.CanonicalMIMEHeaderKey`.
fn title_case_header(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut characters = part.chars();
            match characters.next() {
                Some(first) => first.to_uppercase().chain(characters.flat_map(char::to_lowercase)).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<String>>()
        .join("-")
}

/// The tree alertbook routes by when no `alertmanager.yml` is configured,
/// as `alertmanager.yml` text: every alert goes to the receiver `default`
/// (every webhook), grouped by alertname; an alert whose catalog `route`
/// label names a webhook goes to that webhook instead. Changes are sent
/// promptly (`group_wait: 0s`, `group_interval: 5s`) and a firing group is
/// repeated every 4h.
pub fn default_config_text(webhooks: &[(String, String)], routes: &[String]) -> String {
    let quote = |text: &str| serde_json::to_string(text).unwrap_or_default();
    let mut text = String::from(
        "# alertbook's default routing (no alerting.config_file configured)\nroute:\n  receiver: default\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 5s\n  repeat_interval: 4h\n",
    );
    let routed: Vec<&(String, String)> = webhooks.iter().filter(|(name, _)| routes.contains(name)).collect();
    if !routed.is_empty() {
        text.push_str("  routes:\n");
        for (name, _) in &routed {
            let matcher = format!("route={}", quote(name));
            text.push_str(&format!("    - matchers: [{}]\n      receiver: {}\n", quote(&matcher), quote(name)));
        }
    }
    text.push_str("receivers:\n  - name: default\n");
    if !webhooks.is_empty() {
        text.push_str("    webhook_configs:\n");
        for (_, url) in webhooks {
            text.push_str(&format!("      - url: {}\n", quote(url)));
        }
    }
    for (name, url) in &routed {
        text.push_str(&format!("  - name: {}\n    webhook_configs:\n      - url: {}\n", quote(name), quote(url)));
    }
    text
}

/// [`default_config_text`], parsed.
pub fn default_config(webhooks: &[(String, String)], routes: &[String]) -> Result<RoutingConfig, Diagnostics> {
    let source = SourceFile { path: PathBuf::from("<default routing>"), text: default_config_text(webhooks, routes) };
    parse(&source)
}
