//! Loading a catalog directory: parse every file, validate each, then
//! cross-link them, collecting every error before giving up.
//!
//! Layout of a catalog directory:
//!
//! ```text
//! catalog.yaml          manifest: name, routes, runbook URL, rule file globs, closing rule
//! runbook/<ID>.yaml     one entry per alert: intent, triage steps, escalation
//! runbook.md            generated from runbook/*.yaml; must match it
//! contracts/<name>.yaml contracts, each with a `kind`
//! rules/*.yaml          Prometheus-format rule files
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::Spanned;

use crate::contracts::{Contract, load_contract};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::duration::parse_duration;
use crate::expr;
use crate::files::CatalogFiles;
use crate::model::*;
use crate::queries;
use crate::raw::*;
use crate::source::SourceFile;

/// The names every predicate may read besides check results and contracts.
const ALERT_NAMES: &[&str] = &["labels", "value", "alert"];

/// Loads and validates the catalog in `root`, `runbook.md` included.
pub fn load(root: &Path) -> Result<Catalog, Diagnostics> {
    load_with(root, LoadOptions::default())
}

/// What [`load_with`] verifies.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Verify that `runbook.md` matches the entries. Off only to regenerate it.
    pub check_markdown: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { check_markdown: true }
    }
}

/// Loads and validates the catalog in `root` with `options`.
pub fn load_with(root: &Path, options: LoadOptions) -> Result<Catalog, Diagnostics> {
    load_files(&CatalogFiles::Directory(root.to_owned()), options)
}

/// Loads and validates the catalog in `files` (a directory or a built-in catalog) with `options`.
pub fn load_files(files: &CatalogFiles, options: LoadOptions) -> Result<Catalog, Diagnostics> {
    let root = &files.root();
    let mut errors = Vec::new();
    let manifest_path = root.join("catalog.yaml");
    let manifest = files
        .read(&manifest_path)
        .and_then(|source| source.parse_yaml::<RawManifest>().map(|manifest| (source, manifest)));
    let (manifest_source, manifest) = match manifest {
        Ok(loaded) => loaded,
        Err(diagnostic) => return Err(Diagnostics(vec![diagnostic])),
    };
    let routes = validate_manifest(&manifest_source, &manifest, &mut errors);
    // With contacts, entries page and escalate only to routes that are contacts.
    let contacts = crate::contacts::load(files, &manifest_source, &manifest.routes, &mut errors);
    let routes = match &contacts {
        Some(contacts) => routes.into_iter().filter(|route| contacts.contains(route)).collect(),
        None => routes,
    };

    let contracts = load_contracts(files, &mut errors);
    let entries = load_entries(files, &routes, &contracts, &mut errors);
    let rule_files = load_rule_files(files, &manifest_source, &manifest, &mut errors);
    let pii_rules =
        manifest.pii_rules.as_ref().and_then(|path| load_pii_rules(files, &manifest_source, path, &mut errors));
    if let Some(rules) = &pii_rules {
        check_pii_exclusions(files, rules, &contracts, &mut errors);
    }

    let mut catalog = Catalog {
        root: root.to_owned(),
        files: files.clone(),
        name: manifest.name.value.clone(),
        title: manifest.title.clone(),
        description: manifest.description.clone(),
        runbook_url_template: manifest.runbook_url.value.clone(),
        routes: routes.iter().cloned().collect(),
        closing: Closing {
            summary: manifest.closing.summary.clone(),
            fields: manifest
                .closing
                .fields
                .iter()
                .map(|field| ClosingField {
                    name: field.name.value.clone(),
                    description: field.description.clone(),
                    required_when: field.required_when.as_ref().map(|when| when.value.clone()),
                })
                .collect(),
        },
        entries: entries.into_iter().map(|(entry, _)| entry).collect(),
        contracts,
        rule_files: Vec::new(),
        pii_rules,
        contacts,
    };
    cross_link_rules(&catalog, files, &rule_files, &mut errors);
    catalog.rule_files = rule_files.into_iter().map(|(file, _, _)| file).collect();
    if options.check_markdown {
        check_markdown(&catalog, files, &mut errors);
    }

    if errors.is_empty() { Ok(catalog) } else { Err(Diagnostics(errors)) }
}

fn validate_manifest(source: &SourceFile, manifest: &RawManifest, errors: &mut Vec<Diagnostic>) -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    for route in &manifest.routes {
        if !routes.insert(route.value.clone()) {
            errors.push(source.error_at_value(route, format!("route {:?} is listed twice", route.value)));
        }
    }
    if !manifest.runbook_url.value.contains("{id}") {
        errors.push(source.error_at_value(&manifest.runbook_url, "runbook_url must contain the placeholder {id}"));
    }
    if manifest.closing.fields.is_empty() {
        errors.push(Diagnostic::file(&source.path, "closing.fields must name at least one field"));
    }
    routes
}

fn load_contracts(files: &CatalogFiles, errors: &mut Vec<Diagnostic>) -> BTreeMap<String, Contract> {
    let mut contracts = BTreeMap::new();
    for path in files.yaml_files(&files.root().join("contracts")) {
        match files.read(&path) {
            Ok(source) => {
                if let Some(contract) = load_contract(&source, errors) {
                    contracts.insert(contract.name.clone(), contract);
                }
            }
            Err(diagnostic) => errors.push(diagnostic),
        }
    }
    contracts
}

/// Sort key for IDs such as `A2` < `A10`.
fn id_sort_key(id: &str) -> (String, u64) {
    let prefix: String = id.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    let number = id[prefix.len()..].parse().unwrap_or(u64::MAX);
    (prefix, number)
}

fn load_entries(
    catalog_files: &CatalogFiles,
    routes: &BTreeSet<String>,
    contracts: &BTreeMap<String, Contract>,
    errors: &mut Vec<Diagnostic>,
) -> Vec<(Entry, SourceFile)> {
    let directory = catalog_files.root().join("runbook");
    let files = catalog_files.yaml_files(&directory);
    if files.is_empty() {
        errors.push(Diagnostic::file(&directory, "no runbook entries: expected runbook/<ID>.yaml files"));
    }
    let mut entries: Vec<(Entry, SourceFile)> = Vec::new();
    let mut ids: BTreeMap<String, (PathBuf, usize)> = BTreeMap::new();
    let mut alertnames: BTreeMap<String, (PathBuf, usize)> = BTreeMap::new();
    for path in files {
        let source = match catalog_files.read(&path) {
            Ok(source) => source,
            Err(diagnostic) => {
                errors.push(diagnostic);
                continue;
            }
        };
        let raw: RawEntry = match source.parse_yaml() {
            Ok(raw) => raw,
            Err(diagnostic) => {
                errors.push(diagnostic);
                continue;
            }
        };
        let line = raw.id.referenced.line() as usize;
        if let Some((first_path, first_line)) = ids.get(&raw.id.value) {
            errors.push(source.error_at_value(
                &raw.id,
                format!("duplicate ID {:?}: already used at {}:{}", raw.id.value, first_path.display(), first_line),
            ));
        } else {
            ids.insert(raw.id.value.clone(), (path.clone(), line));
        }
        let alert_line = raw.alertname.referenced.line() as usize;
        if let Some((first_path, first_line)) = alertnames.get(&raw.alertname.value) {
            errors.push(source.error_at_value(
                &raw.alertname,
                format!(
                    "duplicate alertname {:?}: already used at {}:{}",
                    raw.alertname.value,
                    first_path.display(),
                    first_line
                ),
            ));
        } else {
            alertnames.insert(raw.alertname.value.clone(), (path.clone(), alert_line));
        }
        if let Some(entry) = validate_entry(&source, raw, routes, contracts, errors) {
            entries.push((entry, source));
        }
    }
    entries.sort_by_key(|(entry, _)| id_sort_key(&entry.id));
    entries
}

fn is_identifier(text: &str) -> bool {
    let mut characters = text.chars();
    characters.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && characters.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn validate_entry(
    source: &SourceFile,
    raw: RawEntry,
    routes: &BTreeSet<String>,
    contracts: &BTreeMap<String, Contract>,
    errors: &mut Vec<Diagnostic>,
) -> Option<Entry> {
    let before = errors.len();
    let id_ok = raw.id.value.len() >= 2
        && raw.id.value.starts_with(|c: char| c.is_ascii_uppercase())
        && id_sort_key(&raw.id.value).1 != u64::MAX;
    if !id_ok {
        errors.push(
            source.error_at_value(&raw.id, format!("ID {:?} must be letters then a number, like A3", raw.id.value)),
        );
    }
    if !is_identifier(&raw.alertname.value) {
        errors.push(
            source.error_at_value(&raw.alertname, format!("alertname {:?} is not a valid name", raw.alertname.value)),
        );
    }
    let stem = source.path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    if stem != raw.id.value {
        errors.push(
            source.error_at_value(
                &raw.id,
                format!("entry {:?} must live in runbook/{}.yaml", raw.id.value, raw.id.value),
            ),
        );
    }
    if raw.page.is_empty() {
        errors.push(source.error_at_value(&raw.id, "the entry pages nobody: `page` is empty"));
    }
    for route in &raw.page {
        if !routes.contains(&route.value) {
            errors.push(source.error_at_value(
                route,
                format!("unknown route {:?}; routes are declared in catalog.yaml (and contacts.yaml)", route.value),
            ));
        }
    }
    if raw.steps.is_empty() {
        errors.push(source.error_at_value(&raw.id, "the entry has no triage steps"));
    }

    // A step that tells on-call to run what one of the entry's own guard
    // rails forbids contradicts the rail.
    let rails: Vec<(usize, regex::Regex)> = raw
        .steps
        .iter()
        .enumerate()
        .flat_map(|(index, step)| step.value.forbids.iter().map(move |pattern| (index, pattern)))
        .filter_map(|(index, pattern)| regex::Regex::new(&pattern.value).ok().map(|regex| (index, regex)))
        .collect();
    for (index, step) in raw.steps.iter().enumerate() {
        if step.value.kind.value == RawStepKind::GuardRail {
            continue;
        }
        for (rail, regex) in &rails {
            if let Some(hit) = regex.find(&step.value.text) {
                errors.push(source.error_at_value(
                    &step.value.kind,
                    format!(
                        "step {} says {:?}, which the guard rail of step {} forbids (`{}`)",
                        index + 1,
                        hit.as_str(),
                        rail + 1,
                        regex.as_str()
                    ),
                ));
            }
        }
    }

    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut branches: BTreeSet<String> = BTreeSet::new();
    let mut steps = Vec::new();
    for (index, spanned_step) in raw.steps.into_iter().enumerate() {
        let step_location = spanned_step.referenced;
        let raw_step = spanned_step.value;
        let kind = match raw_step.kind.value {
            RawStepKind::Instruction => StepKind::Instruction,
            RawStepKind::Check => StepKind::Check,
            RawStepKind::Escalation => StepKind::Escalation,
            RawStepKind::GuardRail => StepKind::GuardRail,
        };
        let at_step = |message: String| source.error_at_location(&step_location, message);
        if raw_step.text.trim().is_empty() {
            errors.push(at_step("step text is empty".into()));
        }
        if let Some(branch) = &raw_step.branch
            && !branches.contains(&branch.value)
        {
            errors.push(source.error_at_value(
                branch,
                format!("branch {:?} is not picked by any earlier check of this entry", branch.value),
            ));
        }
        match (kind, &raw_step.check) {
            (StepKind::Check, None) => {
                errors.push(source.error_at_value(&raw_step.kind, "a check step needs a `check`"))
            }
            (StepKind::Instruction | StepKind::Escalation, Some(_)) => {
                errors.push(source.error_at_value(&raw_step.kind, "only check and guard_rail steps carry a `check`"))
            }
            _ => {}
        }
        match (kind, &raw_step.to) {
            (StepKind::Escalation, None) => {
                errors.push(source.error_at_value(&raw_step.kind, "an escalation step needs `to`, the route it pages"))
            }
            (_, Some(route)) if !routes.contains(&route.value) => errors.push(source.error_at_value(
                route,
                format!("unknown route {:?}; routes are declared in catalog.yaml (and contacts.yaml)", route.value),
            )),
            (StepKind::Instruction | StepKind::Check | StepKind::GuardRail, Some(route)) => {
                errors.push(source.error_at_value(route, "only escalation steps have `to`"))
            }
            _ => {}
        }
        if raw_step.holds.is_some() && kind != StepKind::GuardRail {
            errors.push(source.error_at_value(&raw_step.kind, "only guard_rail steps have `holds`"));
        }
        if !raw_step.forbids.is_empty() && kind != StepKind::GuardRail {
            errors.push(source.error_at_value(&raw_step.kind, "only guard_rail steps have `forbids`"));
        }
        for pattern in &raw_step.forbids {
            if let Err(error) = regex::Regex::new(&pattern.value) {
                let message = error.to_string().lines().last().unwrap_or("invalid regex").trim().to_owned();
                errors.push(
                    source.error_at_value(pattern, format!("forbidden-command pattern is not a regex: {message}")),
                );
            }
        }
        if kind == StepKind::GuardRail && raw_step.holds.is_none() && raw_step.forbids.is_empty() {
            errors.push(source.error_at_value(
                &raw_step.kind,
                "a guard rail needs something to enforce: `holds` (with a check) or `forbids` (command patterns)",
            ));
        }
        if kind != StepKind::Escalation {
            if let Some(when) = &raw_step.when {
                errors.push(source.error_at_value(when, "only escalation steps have `when` (a check's branches do)"));
            }
            if let Some(after) = &raw_step.after {
                errors.push(source.error_at_value(after, "only escalation steps have `after`"));
            }
            if raw_step.manual {
                errors.push(source.error_at_value(&raw_step.kind, "only escalation steps can be `manual`"));
            }
        }
        let after = raw_step.after.as_ref().and_then(|after| match crate::duration::parse_duration(&after.value) {
            Ok(duration) => Some(duration),
            Err(message) => {
                errors.push(source.error_at_value(after, format!("invalid duration: {message}")));
                None
            }
        });
        if raw_step.manual && (raw_step.when.is_some() || after.is_some()) {
            errors.push(source.error_at_value(
                &raw_step.kind,
                "a manual escalation is never sent by triage: it takes no `when` or `after`",
            ));
        }
        for contract in &raw_step.contracts {
            if !contracts.contains_key(&contract.value) {
                errors.push(source.error_at_value(
                    contract,
                    format!("unknown contract {:?}: no contracts/{}.yaml", contract.value, contract.value),
                ));
            }
        }
        let check = raw_step.check.map(|raw_check| {
            if let Err(error) = queries::validate_check(raw_check.datasource.value, &raw_check.query.value) {
                errors.push(source.error_in_value(&raw_check.query, error.offset, error.message));
            }
            if raw_check.datasource.value == RawDatasource::Probe
                && let ["probes", contract] = raw_check.query.value.split_whitespace().collect::<Vec<_>>().as_slice()
                && !contracts.contains_key(*contract)
            {
                errors.push(source.error_in_value(
                    &raw_check.query,
                    7,
                    format!("unknown contract {contract:?}: no contracts/{contract}.yaml"),
                ));
            }
            if !is_identifier(&raw_check.result.value) {
                errors.push(source.error_at_value(&raw_check.result, "result must be a name such as top_tenant_share"));
            } else if !names.insert(raw_check.result.value.clone()) {
                errors.push(source.error_at_value(
                    &raw_check.result,
                    format!("result name {:?} is already used in this entry", raw_check.result.value),
                ));
            }
            let mut parsed_branches = Vec::new();
            let count = raw_check.branches.len();
            for (position, spanned_branch) in raw_check.branches.iter().enumerate() {
                let raw_branch = &spanned_branch.value;
                let when = match &raw_branch.when {
                    Some(when) => parse_predicate(source, when, &names, contracts, errors),
                    None if position + 1 == count => None,
                    None => {
                        errors.push(source.error_at_value(
                            spanned_branch,
                            "only the last branch may omit `when` (it is taken otherwise)",
                        ));
                        None
                    }
                };
                if !branches.insert(raw_branch.branch.value.clone()) {
                    errors.push(source.error_at_value(
                        &raw_branch.branch,
                        format!("branch {:?} is already picked elsewhere in this entry", raw_branch.branch.value),
                    ));
                }
                parsed_branches.push(Branch { when, branch: raw_branch.branch.value.clone() });
            }
            Check {
                datasource: raw_check.datasource.value,
                query: raw_check.query.value.trim_end().to_owned(),
                result: raw_check.result.value.clone(),
                branches: parsed_branches,
            }
        });
        let mut compute = Vec::new();
        for (name, text) in &raw_step.compute {
            if let Some(predicate) = parse_predicate(source, text, &names, contracts, errors) {
                compute.push(Computed { name: name.clone(), predicate });
            }
            if !is_identifier(name) || !names.insert(name.clone()) {
                errors.push(source.error_at_value(text, format!("computed fact {name:?} is not a fresh name")));
            }
        }
        let holds = raw_step.holds.as_ref().and_then(|text| parse_predicate(source, text, &names, contracts, errors));
        let condition = EscalationCondition {
            when: raw_step.when.as_ref().and_then(|text| parse_predicate(source, text, &names, contracts, errors)),
            after,
            manual: raw_step.manual,
        };
        steps.push(Step {
            number: index + 1,
            kind,
            text: raw_step.text.trim().to_owned(),
            branch: raw_step.branch.map(|branch| branch.value),
            check,
            escalate_to: raw_step.to.map(|route| route.value),
            contracts: raw_step.contracts.into_iter().map(|contract| contract.value).collect(),
            compute,
            holds,
            forbids: raw_step.forbids.iter().map(|pattern| pattern.value.clone()).collect(),
            condition,
        });
    }
    (errors.len() == before).then(|| Entry {
        id: raw.id.value,
        alertname: raw.alertname.value,
        title: raw.title.trim().to_owned(),
        intent: raw.intent.trim().to_owned(),
        page: raw.page.into_iter().map(|route| route.value).collect(),
        background: raw.background.map(|text| text.trim().to_owned()),
        steps,
        thresholds: raw
            .thresholds
            .iter()
            .map(|text| ThresholdBinding {
                text: text.value.trim().to_owned(),
                line: text.referenced.line() as usize,
                column: text.referenced.column() as usize,
            })
            .collect(),
        escalation: raw.escalation.map(|text| text.trim().to_owned()),
        closing: raw.closing.map(|text| text.trim().to_owned()),
        path: source.path.clone(),
    })
}

/// Parses a predicate and checks that every name it reads exists.
fn parse_predicate(
    source: &SourceFile,
    text: &Spanned<String>,
    names: &BTreeSet<String>,
    contracts: &BTreeMap<String, Contract>,
    errors: &mut Vec<Diagnostic>,
) -> Option<Predicate> {
    let parsed = match expr::parse(&text.value) {
        Ok(parsed) => parsed,
        Err(error) => {
            errors.push(source.error_in_value(text, error.offset, format!("invalid expression: {}", error.message)));
            return None;
        }
    };
    let mut ok = true;
    for path in parsed.free_paths() {
        let root = path[0].as_str();
        let rendered = path.join(".");
        let offset = text.value.find(&rendered).unwrap_or(0);
        if root == "contracts" {
            if let Err(message) = resolve_contract_path(&path[1..], contracts) {
                errors.push(source.error_in_value(text, offset, message));
                ok = false;
            }
        } else if !names.contains(root) && !ALERT_NAMES.contains(&root) {
            errors.push(source.error_in_value(
                text,
                offset,
                format!("unknown name `{root}`: not the result of an earlier check, a computed fact, or one of {ALERT_NAMES:?}"),
            ));
            ok = false;
        }
    }
    ok.then(|| Predicate { text: text.value.clone(), expr: parsed })
}

/// Checks that `contracts.<name>.<field>...` names an existing contract and field.
fn resolve_contract_path(path: &[String], contracts: &BTreeMap<String, Contract>) -> Result<(), String> {
    let Some(name) = path.first() else {
        return Err("`contracts` must be followed by a contract name".into());
    };
    let contract = contracts.get(name).ok_or_else(|| format!("unknown contract {name:?}: no contracts/{name}.yaml"))?;
    let mut node = &contract.tree;
    for field in &path[1..] {
        match node {
            serde_json::Value::Object(map) => {
                node = map.get(field).ok_or_else(|| format!("contract {name:?} has no field `{field}`"))?;
            }
            // Lists and scalars end static resolution.
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// Expands the manifest's rule-file globs and loads each file.
/// Loads the PII redaction rules; a rule's problem points at its `id:` line.
fn load_pii_rules(
    files: &CatalogFiles,
    manifest_source: &SourceFile,
    path: &Spanned<String>,
    errors: &mut Vec<Diagnostic>,
) -> Option<pii::RuleSet> {
    let full = files.root().join(&path.value);
    let source = match files.read(&full) {
        Ok(source) => source,
        Err(_) => {
            errors
                .push(manifest_source.error_at_value(path, format!("cannot read the PII rules file {:?}", path.value)));
            return None;
        }
    };
    match pii::RuleSet::from_yaml(&source.text, &full.display().to_string()) {
        Ok(rules) => Some(rules),
        Err(pii::Error::Rules { problems, .. }) => {
            for problem in problems {
                let (line, column) = find_value(&source.text, "id:", &problem.rule_id);
                errors.push(source.error_at(
                    line,
                    column,
                    format!("PII rule {:?}: {}", problem.rule_id, problem.message),
                ));
            }
            None
        }
        Err(error @ pii::Error::Yaml { .. }) => {
            errors.push(Diagnostic::file(&full, error.to_string()));
            None
        }
    }
}

/// Every PII exclusion must name a rule of the rule set.
fn check_pii_exclusions(
    files: &CatalogFiles,
    rules: &pii::RuleSet,
    contracts: &BTreeMap<String, Contract>,
    errors: &mut Vec<Diagnostic>,
) {
    for contract in contracts.values() {
        let crate::contracts::ContractKind::PiiExclusions(exclusions) = &contract.kind else { continue };
        for exclusion in exclusions {
            if rules.rule(&exclusion.rule_id).is_none() {
                let path = if contract.path.is_absolute() || files.is_built_in() {
                    contract.path.clone()
                } else {
                    files.root().join(&contract.path)
                };
                let text = files.read(&path).map(|source| source.text).unwrap_or_default();
                let (line, column) = find_value(&text, "rule_id:", &exclusion.rule_id);
                let known: Vec<&str> = rules.rules().iter().map(pii::Rule::id).collect();
                let source = SourceFile { path, text };
                errors.push(source.error_at(
                    line,
                    column,
                    format!("exclusion names unknown PII rule {:?} (known: {})", exclusion.rule_id, known.join(", ")),
                ));
            }
        }
    }
}

/// The 1-based line and column of the first `key value` line (1:1 when not found).
fn find_value(text: &str, key: &str, value: &str) -> (usize, usize) {
    for (index, line) in text.lines().enumerate() {
        if let Some(position) = line.find(key)
            && line[position + key.len()..].trim().trim_matches(|c| c == '"' || c == '\'') == value
        {
            return (index + 1, position + key.len() + 2);
        }
    }
    (1, 1)
}

fn load_rule_files(
    catalog_files: &CatalogFiles,
    manifest_source: &SourceFile,
    manifest: &RawManifest,
    errors: &mut Vec<Diagnostic>,
) -> Vec<(RuleFile, SourceFile, Vec<RawRuleLocation>)> {
    let mut files = Vec::new();
    let mut seen = BTreeSet::new();
    for pattern in &manifest.rule_files {
        let full = catalog_files.root().join(&pattern.value);
        let matches = match catalog_files.glob(&full) {
            Ok(paths) => paths,
            Err(error) => {
                errors.push(manifest_source.error_at_value(pattern, format!("invalid glob: {error}")));
                continue;
            }
        };
        if matches.is_empty() {
            errors.push(manifest_source.error_at_value(pattern, format!("no rule file matches {:?}", pattern.value)));
        }
        for path in matches {
            if seen.insert(path.clone()) {
                let source = match catalog_files.read(&path) {
                    Ok(source) => source,
                    Err(diagnostic) => {
                        errors.push(diagnostic);
                        continue;
                    }
                };
                match load_rule_source(source, RuleFileOptions::default(), errors) {
                    Some(loaded) => files.push(loaded),
                    None => continue,
                }
            }
        }
    }
    files
}

/// Where a rule's fields were written, for cross-link errors.
#[derive(Debug, Clone)]
pub(crate) struct RawRuleLocation {
    pub alert: Option<Spanned<String>>,
    pub runbook_id: Option<Spanned<String>>,
    pub runbook_url: Option<Spanned<String>>,
    /// The thresholds of the rule's expression, in order.
    pub thresholds: Vec<f64>,
}

fn duration_field(
    source: &SourceFile,
    field: &Option<Spanned<String>>,
    name: &str,
    errors: &mut Vec<Diagnostic>,
) -> Option<Duration> {
    let field = field.as_ref()?;
    match parse_duration(&field.value) {
        Ok(duration) => Some(duration),
        Err(error) => {
            errors.push(source.error_at_value(field, format!("{name}: {error}")));
            None
        }
    }
}

/// How standalone rule files are read.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleFileOptions {
    /// Skip fields the rule-file format does not know (promtool's `--ignore-unknown-fields`).
    pub ignore_unknown_fields: bool,
    /// Which metric and label names are valid.
    pub name_validation: NameValidation,
}

/// Prometheus's name validation schemes for metric and label names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NameValidation {
    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` for metric names, `[a-zA-Z_][a-zA-Z0-9_]*` for
    /// label names: Prometheus 2 and every Prometheus-compatible tool.
    #[default]
    Legacy,
    /// Any non-empty UTF-8 string: Prometheus 3's default (`utf8`).
    Utf8,
}

impl NameValidation {
    fn is_valid_metric_name(self, name: &str) -> bool {
        match self {
            Self::Legacy => is_legacy_metric_name(name),
            Self::Utf8 => !name.is_empty(),
        }
    }

    fn is_valid_label_name(self, name: &str) -> bool {
        match self {
            Self::Legacy => is_identifier(name),
            Self::Utf8 => !name.is_empty(),
        }
    }

    /// What to add to a refusal of `name` under this scheme: a name only the
    /// UTF-8 scheme accepts is reported as such.
    fn refusal_note(self, name: &str) -> &'static str {
        if self == Self::Legacy && !name.is_empty() {
            "; Prometheus 3 accepts it under the utf8 name validation scheme (--name-validation-scheme utf8)"
        } else {
            ""
        }
    }
}

fn is_legacy_metric_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses a rule file; with `ignore_unknown_fields`, each unknown key (and the
/// block under it) is blanked out and parsing retried, keeping line numbers.
///
/// Only the first YAML document counts, as in Prometheus (its decoder reads one
/// document; Prometheus 3 warns about the others): the rest of the file is
/// blanked out, keeping line numbers. An empty or null document is a file of
/// 0 groups.
fn parse_rule_file(source: &mut SourceFile, options: RuleFileOptions) -> Result<RawRuleFile, Diagnostic> {
    const MOST_UNKNOWN_FIELDS: usize = 1000;
    source.text = first_document(&source.text);
    if document_is_null(&source.text) {
        return Ok(RawRuleFile::default());
    }
    for _ in 0..MOST_UNKNOWN_FIELDS {
        match source.parse_yaml::<RawRuleFile>() {
            Ok(raw) => return Ok(raw),
            Err(diagnostic) => {
                if !options.ignore_unknown_fields
                    || !diagnostic.message.contains("unknown field")
                    || diagnostic.line == 0
                {
                    return Err(diagnostic);
                }
                match blank_key(&source.text, diagnostic.line) {
                    Some(text) => source.text = text,
                    None => return Err(diagnostic),
                }
            }
        }
    }
    Err(Diagnostic::file(&source.path, "too many unknown fields"))
}

/// The 1-based line where a second YAML document starts, if any: Prometheus
/// reads only the first (Prometheus 3 warns: "Multiple document yaml rules
/// files are not supported, only the first document is processed").
pub fn second_document_line(text: &str) -> Option<usize> {
    let first = first_document(text);
    let kept = first.split('\n').count();
    let original: Vec<&str> = text.split('\n').collect();
    first
        .split('\n')
        .zip(&original)
        .position(|(kept_line, original_line)| kept_line != *original_line)
        .or_else(|| (original.len() > kept).then_some(kept))
        .filter(|&index| {
            // Only markers, blanks and comments after the first document are no second document.
            original[index..]
                .iter()
                .map(|line| line.trim())
                .any(|line| !(line.is_empty() || line.starts_with('#') || line == "..." || line == "---"))
        })
        .map(|index| index + 1)
}

/// `text` with every line from the second YAML document on made empty: a
/// document starts at a `---` line after content, or after a `...` end marker.
fn first_document(text: &str) -> String {
    let mut seen_content = false;
    let mut ended = false;
    let mut lines: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        let marker =
            |mark: &str| line.starts_with(mark) && line[mark.len()..].chars().next().is_none_or(char::is_whitespace);
        if !ended && ((marker("---") && seen_content) || marker("...")) {
            ended = true;
        }
        if ended {
            lines.push("");
            continue;
        }
        let trimmed = line.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') && !trimmed.starts_with('%') && !marker("---") {
            seen_content = true;
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// Whether a single-document text holds nothing but comments, markers and a null.
fn document_is_null(text: &str) -> bool {
    let content: Vec<&str> = text
        .lines()
        .map(|line| line.split(" #").next().unwrap_or(line).trim())
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('%'))
        .map(|line| line.strip_prefix("---").map_or(line, str::trim))
        .filter(|line| !line.is_empty())
        .collect();
    matches!(content.as_slice(), [] | ["null" | "Null" | "NULL" | "~"])
}

/// `text` with the key at 1-based `line` and its indented block replaced by
/// empty lines; `None` when the key opens a list item (it cannot be blanked alone).
fn blank_key(text: &str, line: usize) -> Option<String> {
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let key_line = lines.get(line.checked_sub(1)?)?.clone();
    let trimmed = key_line.trim_start();
    if trimmed.starts_with('-') || !trimmed.contains(':') {
        return None;
    }
    let indent = key_line.len() - trimmed.len();
    let mut end = line;
    while end < lines.len() {
        let next = &lines[end];
        let next_indent = next.len() - next.trim_start().len();
        if !next.trim().is_empty() && next_indent <= indent {
            break;
        }
        end += 1;
    }
    for blank in lines.iter_mut().take(end).skip(line - 1) {
        blank.clear();
    }
    Some(lines.join("\n"))
}

/// Loads and validates one rule file, as strictly as `promtool check rules`.
fn load_rule_file_with(
    path: &Path,
    options: RuleFileOptions,
    errors: &mut Vec<Diagnostic>,
) -> Option<(RuleFile, SourceFile, Vec<RawRuleLocation>)> {
    match SourceFile::read(path) {
        Ok(source) => load_rule_source(source, options, errors),
        Err(diagnostic) => {
            errors.push(diagnostic);
            None
        }
    }
}

/// Validates one rule file already read, as strictly as `promtool check rules`.
fn load_rule_source(
    mut source: SourceFile,
    options: RuleFileOptions,
    errors: &mut Vec<Diagnostic>,
) -> Option<(RuleFile, SourceFile, Vec<RawRuleLocation>)> {
    let path = &source.path.clone();
    let raw = match parse_rule_file(&mut source, options) {
        Ok(raw) => raw,
        Err(diagnostic) => {
            errors.push(diagnostic);
            return None;
        }
    };
    let before = errors.len();
    let scheme = options.name_validation;
    let mut groups = Vec::new();
    let mut locations = Vec::new();
    let mut group_names = BTreeSet::new();
    for spanned_group in raw.groups {
        let group_location = spanned_group.referenced;
        let raw_group = spanned_group.value;
        let name = raw_group.name.as_ref().and_then(|name| name.value.clone()).unwrap_or_default();
        // As rulefmt, both group errors point at the group.
        if name.is_empty() {
            errors.push(source.error_at_location(&group_location, "Groupname must not be empty"));
        } else if !group_names.insert(name.clone()) {
            errors.push(
                source.error_at_location(&group_location, format!("groupname: {name:?} is repeated in the same file")),
            );
        }
        for (label, value) in &raw_group.labels {
            check_label(&source, scheme, label, value, &format!("group {name:?}"), errors);
        }
        let datasource = raw_group.datasource.as_ref().map_or(RawDatasource::Metrics, |spanned| spanned.value);
        if datasource == RawDatasource::Probe
            && let Some(spanned) = &raw_group.datasource
        {
            errors.push(source.error_at_value(
                spanned,
                "probe results are metrics (probe_success, probe_duration_seconds): use datasource metrics",
            ));
        }
        if datasource == RawDatasource::Traces
            && let Some(spanned) = &raw_group.datasource
        {
            errors.push(source.error_at_value(
                spanned,
                "trace search answers triage checks, not rules: alert on span metrics with datasource metrics",
            ));
        }
        let interval = duration_field(&source, &raw_group.interval, "interval", errors);
        let query_offset = duration_field(&source, &raw_group.query_offset, "query_offset", errors);
        let mut rules = Vec::new();
        for (index, spanned_rule) in raw_group.rules.into_iter().enumerate() {
            let raw_rule = spanned_rule.value;
            let rule_location = spanned_rule.referenced;
            let alert = set_text(&raw_rule.alert);
            let record = set_text(&raw_rule.record);
            let rule_name = alert.as_ref().or(record.as_ref()).map_or("", |name| name.value.as_str());
            // promtool's context: `group "g", rule 2, "Name": ...`.
            let context = format!("group {name:?}, rule {}, {rule_name:?}", index + 1);
            let kind = match (&alert, &record) {
                // Alert names are label values: any non-empty string.
                (Some(alert), None) => RuleKind::Alert(alert.value.clone()),
                (None, Some(record)) => {
                    if !scheme.is_valid_metric_name(&record.value) {
                        errors.push(source.error_at_value(
                            record,
                            format!(
                                "{context}: invalid recording rule name: {}{}",
                                record.value,
                                refusal_note(scheme, &record.value, NameValidation::is_valid_metric_name)
                            ),
                        ));
                    } else if record.value.contains(['{', '}']) {
                        errors.push(source.error_at_value(
                            record,
                            format!(
                                "{context}: braces present in the recording rule name; should it be in expr?: {}",
                                record.value
                            ),
                        ));
                    }
                    for (field, present) in [
                        ("annotations", !raw_rule.annotations.is_empty()),
                        ("for", has_nonzero_duration(&raw_rule.for_duration)),
                        ("keep_firing_for", has_nonzero_duration(&raw_rule.keep_firing_for)),
                    ] {
                        if present {
                            errors.push(source.error_at_value(
                                record,
                                format!("{context}: invalid field '{field}' in recording rule"),
                            ));
                        }
                    }
                    RuleKind::Record(record.value.clone())
                }
                (Some(_), Some(record)) => {
                    errors.push(
                        source
                            .error_at_value(record, format!("{context}: only one of 'record' and 'alert' must be set")),
                    );
                    continue;
                }
                (None, None) => {
                    errors.push(source.error_at_location(
                        &rule_location,
                        format!("{context}: one of 'record' or 'alert' must be set"),
                    ));
                    continue;
                }
            };
            let expr = set_text(&raw_rule.expr);
            match &expr {
                None => {
                    let location = raw_rule.expr.as_ref().map_or(rule_location, |expr| expr.referenced);
                    errors.push(
                        source.error_at_location(&location, format!("{context}: field 'expr' must be set in rule")),
                    );
                }
                Some(expr) => {
                    let result = match datasource {
                        RawDatasource::Docker => validate_docker_condition(&expr.value),
                        RawDatasource::Logs => queries::validate_logql_rule(&expr.value),
                        other => queries::validate(other, &expr.value),
                    };
                    if let Err(error) = result {
                        // An error at the very end of a block scalar is shown on its last line.
                        let offset = if error.offset == expr.value.len() {
                            expr.value.trim_end_matches('\n').len()
                        } else {
                            error.offset
                        };
                        errors.push(source.error_in_value(expr, offset, format!("{context}: {}", error.message)));
                    }
                }
            }
            for (label, value) in &raw_rule.labels {
                check_label(&source, scheme, label, value, &context, errors);
            }
            for (annotation, value) in &raw_rule.annotations {
                if !scheme.is_valid_label_name(annotation) {
                    errors.push(source.error_at_value(
                        value,
                        format!(
                            "{context}: invalid annotation name: {annotation}{}",
                            refusal_note(scheme, annotation, NameValidation::is_valid_label_name)
                        ),
                    ));
                }
            }
            if let RuleKind::Alert(alert) = &kind {
                let templates = raw_rule.labels.iter().map(|(name, value)| ("label", name, value));
                let templates =
                    templates.chain(raw_rule.annotations.iter().map(|(name, value)| ("annotation", name, value)));
                for (what, name, value) in templates {
                    let Some(text) = &value.value else { continue };
                    if let Err(error) = crate::template::check(&format!("__alert_{alert}"), text) {
                        let offset = offset_of(text, error.line, error.column);
                        let spanned = Spanned::new(text.clone(), value.referenced, value.defined);
                        errors.push(source.error_in_value(
                            &spanned,
                            offset,
                            format!("{context}: {what} {name:?}: invalid template: {}", error.message),
                        ));
                    }
                }
            }
            let for_duration = duration_field(&source, &raw_rule.for_duration, "for", errors).unwrap_or_default();
            let keep_firing_for =
                duration_field(&source, &raw_rule.keep_firing_for, "keep_firing_for", errors).unwrap_or_default();
            let annotations: BTreeMap<String, Spanned<String>> = raw_rule
                .annotations
                .into_iter()
                .map(|(name, value)| {
                    (name, Spanned::new(value.value.unwrap_or_default(), value.referenced, value.defined))
                })
                .collect();
            let thresholds = match (&expr, datasource) {
                (Some(expr), RawDatasource::Metrics) => crate::thresholds::promql_thresholds(&expr.value),
                (Some(expr), RawDatasource::Logs) => crate::thresholds::logql_thresholds(&expr.value),
                _ => Vec::new(),
            };
            locations.push(RawRuleLocation {
                alert: alert.clone(),
                runbook_id: annotations.get("runbook_id").cloned(),
                runbook_url: annotations.get("runbook_url").cloned(),
                thresholds,
            });
            rules.push(Rule {
                kind,
                expr: expr.map(|expr| expr.value.trim_end().to_owned()).unwrap_or_default(),
                for_duration,
                keep_firing_for,
                labels: raw_rule
                    .labels
                    .into_iter()
                    .map(|(name, value)| (name, value.value.unwrap_or_default()))
                    .collect(),
                annotations: annotations.into_iter().map(|(name, value)| (name, value.value)).collect(),
                line: rule_location.line() as usize,
            });
        }
        groups.push(RuleGroup {
            name,
            interval,
            limit: raw_group.limit,
            query_offset,
            labels: raw_group.labels.into_iter().map(|(name, value)| (name, value.value.unwrap_or_default())).collect(),
            datasource,
            rules,
        });
    }
    (errors.len() == before).then(|| (RuleFile { path: path.to_owned(), groups }, source, locations))
}

/// A string field that is set: present, not null, not empty (rulefmt's test).
fn set_text(field: &Option<Spanned<Option<String>>>) -> Option<Spanned<String>> {
    let field = field.as_ref()?;
    let text = field.value.as_ref().filter(|text| !text.is_empty())?;
    Some(Spanned::new(text.clone(), field.referenced, field.defined))
}

/// Whether a duration field holds a non-zero duration (rulefmt compares with 0).
fn has_nonzero_duration(field: &Option<Spanned<String>>) -> bool {
    field.as_ref().is_some_and(|field| parse_duration(&field.value).map_or(true, |duration| !duration.is_zero()))
}

/// The note added to a name refused under `scheme`, when the UTF-8 scheme would take it.
fn refusal_note(scheme: NameValidation, name: &str, valid: fn(NameValidation, &str) -> bool) -> &'static str {
    if valid(NameValidation::Utf8, name) { scheme.refusal_note(name) } else { "" }
}

/// A rule's or group's label: a valid name other than `__name__` (values are any string).
fn check_label(
    source: &SourceFile,
    scheme: NameValidation,
    label: &str,
    value: &Spanned<Option<String>>,
    context: &str,
    errors: &mut Vec<Diagnostic>,
) {
    if !scheme.is_valid_label_name(label) || label == "__name__" {
        let note =
            if label == "__name__" { "" } else { refusal_note(scheme, label, NameValidation::is_valid_label_name) };
        errors.push(source.error_at_value(value, format!("{context}: invalid label name: {label}{note}")));
    }
}

/// The byte offset of a 1-based line and column in `text` (0 when unknown).
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    if line == 0 {
        return 0;
    }
    let line_start: usize = text.split_inclusive('\n').take(line - 1).map(str::len).sum();
    let within =
        text[line_start.min(text.len())..].char_indices().nth(column.saturating_sub(1)).map_or(0, |(index, _)| index);
    (line_start + within).min(text.len())
}

/// A Docker rule's expression: the predicate language over the names of
/// [`crate::docker_shape::ROOTS`], field names included.
fn validate_docker_condition(text: &str) -> Result<(), queries::QueryError> {
    crate::docker_shape::parse_condition(text)
        .map(|_| ())
        .map_err(|error| queries::QueryError { offset: error.offset, message: error.message })
}

/// Every alerting rule links to an entry, and every entry has a rule.
fn cross_link_rules(
    catalog: &Catalog,
    catalog_files: &CatalogFiles,
    files: &[(RuleFile, SourceFile, Vec<RawRuleLocation>)],
    errors: &mut Vec<Diagnostic>,
) {
    let mut alerted: BTreeSet<&str> = BTreeSet::new();
    for (_, source, locations) in files {
        for location in locations {
            let Some(alert) = &location.alert else { continue };
            alerted.insert(alert.value.as_str());
            let Some(entry) = catalog.entries.iter().find(|entry| entry.alertname == alert.value) else {
                errors.push(source.error_at_value(
                    alert,
                    format!("alert {:?} has no runbook entry: add runbook/<ID>.yaml with this alertname", alert.value),
                ));
                continue;
            };
            match &location.runbook_id {
                None => errors.push(source.error_at_value(
                    alert,
                    format!("alert {:?} lacks the annotation runbook_id: {}", alert.value, entry.id),
                )),
                Some(id) if id.value != entry.id => errors.push(source.error_at_value(
                    id,
                    format!(
                        "runbook_id {:?} does not match the entry of {:?}, which is {}",
                        id.value, alert.value, entry.id
                    ),
                )),
                Some(_) => {}
            }
            let texts: Vec<String> = entry.thresholds.iter().map(|binding| binding.text.clone()).collect();
            let problems = crate::thresholds::bindings(&location.thresholds, &texts, &catalog.contracts);
            let entry_source = (!problems.is_empty()).then(|| catalog_files.read(&entry.path).ok()).flatten();
            for problem in problems {
                let rule_at = format!("{}:{}", source.path.display(), alert.referenced.line());
                let message = format!("entry {}: {} (rule {:?} at {rule_at})", entry.id, problem.message, alert.value);
                let binding = problem.item.and_then(|item| entry.thresholds.get(item));
                errors.push(match (&entry_source, binding) {
                    (Some(entry_source), Some(binding)) => {
                        entry_source.error_at(binding.line, binding.column + problem.offset, message)
                    }
                    (Some(entry_source), None) => {
                        let line = entry_source
                            .text
                            .lines()
                            .position(|line| line.starts_with("alertname:"))
                            .map_or(1, |index| index + 1);
                        entry_source.error_at(line, 1, message)
                    }
                    (None, _) => source.error_at_value(alert, message),
                });
            }
            let expected_url = catalog.runbook_url(&entry.id);
            match &location.runbook_url {
                None => errors.push(source.error_at_value(
                    alert,
                    format!("alert {:?} lacks the annotation runbook_url: {expected_url}", alert.value),
                )),
                Some(url) if url.value != expected_url => {
                    errors.push(source.error_at_value(url, format!("runbook_url should be {expected_url:?}")))
                }
                Some(_) => {}
            }
        }
    }
    for entry in &catalog.entries {
        if !alerted.contains(entry.alertname.as_str()) {
            let source = catalog_files.read(&entry.path).ok();
            let diagnostic = match source {
                Some(source) => {
                    let line = source
                        .text
                        .lines()
                        .position(|line| line.starts_with("alertname:"))
                        .map_or(1, |index| index + 1);
                    source.error_at(
                        line,
                        1,
                        format!(
                            "entry {} has no alerting rule named {:?} in the rule files",
                            entry.id, entry.alertname
                        ),
                    )
                }
                None => Diagnostic::file(&entry.path, "entry has no alerting rule"),
            };
            errors.push(diagnostic);
        }
    }
}

/// `runbook.md` must be exactly what the entries render to.
fn check_markdown(catalog: &Catalog, files: &CatalogFiles, errors: &mut Vec<Diagnostic>) {
    if catalog.entries.is_empty() {
        return;
    }
    let path = catalog.root.join("runbook.md");
    let expected = crate::markdown::render(catalog);
    let source = match files.read(&path) {
        Ok(source) => source,
        Err(_) => {
            errors.push(Diagnostic::file(
                &path,
                "runbook.md is missing; generate it with `alertbook runbook --markdown > runbook.md`",
            ));
            return;
        }
    };
    if source.text == expected {
        return;
    }
    let line = source
        .text
        .lines()
        .zip(expected.lines())
        .position(|(actual, wanted)| actual != wanted)
        .unwrap_or_else(|| source.text.lines().count().min(expected.lines().count()))
        + 1;
    errors.push(source.error_at(
        line,
        1,
        format!(
            "runbook.md differs from runbook/*.yaml from this line on; regenerate it with `alertbook runbook --markdown --catalog {} > {}`",
            catalog.root.display(),
            path.display()
        ),
    ));
}

/// Loads standalone rule files (outside a catalog), validating each.
pub fn load_rules(paths: &[PathBuf]) -> Result<Vec<RuleFile>, Diagnostics> {
    load_rules_with(paths, RuleFileOptions::default())
}

/// Loads standalone rule files with `options`, validating each.
pub fn load_rules_with(paths: &[PathBuf], options: RuleFileOptions) -> Result<Vec<RuleFile>, Diagnostics> {
    let mut errors = Vec::new();
    let files: Vec<RuleFile> = paths
        .iter()
        .filter_map(|path| load_rule_file_with(path, options, &mut errors))
        .map(|(file, _, _)| file)
        .collect();
    if errors.is_empty() { Ok(files) } else { Err(Diagnostics(errors)) }
}

/// A rule defined more than once in a file: same name, same labels (group labels included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateRule {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// The duplicate rules of a file, each reported once, as `promtool check rules` lists them.
pub fn duplicate_rules(file: &RuleFile) -> Vec<DuplicateRule> {
    let mut keys: Vec<DuplicateRule> = file
        .groups
        .iter()
        .flat_map(|group| {
            group.rules.iter().map(move |rule| {
                let name = match &rule.kind {
                    RuleKind::Alert(name) | RuleKind::Record(name) => name.clone(),
                };
                let mut labels = group.labels.clone();
                labels.extend(rule.labels.clone());
                DuplicateRule { name, labels }
            })
        })
        .collect();
    keys.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
    let mut duplicates: Vec<DuplicateRule> = Vec::new();
    for pair in keys.windows(2) {
        if pair[0] == pair[1] && duplicates.last() != Some(&pair[1]) {
            duplicates.push(pair[1].clone());
        }
    }
    duplicates
}
