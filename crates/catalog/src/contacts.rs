//! Contacts: who each on-call route of the catalog reaches, as data
//! (`contacts.yaml` beside `catalog.yaml`).
//!
//! A contact names the receiver its notifications go to (a receiver of
//! `alertmanager.yml`, or a `--notify.webhook` name in the default routing);
//! a contact that depends on the alert (`feature-lead` per service,
//! `tenant-csm` per tenant) names the label that picks the receiver (`by`),
//! a map from label value to receiver, and the receiver for other values
//! (`default`).
//!
//! ```yaml
//! contacts:
//!   ops-oncall: {receiver: ops-oncall, description: "@ops-oncall in #ops"}
//!   tenant-csm:
//!     by: tenant_id
//!     receivers: {t-001: csm-anna, t-002: csm-ben}
//!     default: ops-oncall
//! ```
//!
//! When the file exists, every route of `catalog.yaml` must be a contact
//! (refused at its `catalog.yaml` line otherwise) and entries may page and
//! escalate only to contacts. Reads the one file; no I/O beyond it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diagnostic::Diagnostic;
use crate::source::SourceFile;

/// The file name, in the catalog's directory.
pub const FILE_NAME: &str = "contacts.yaml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContacts {
    contacts: BTreeMap<String, Spanned<RawContact>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContact {
    #[serde(default)]
    description: String,
    /// The receiver, for a contact that does not depend on the alert.
    receiver: Option<Spanned<String>>,
    /// The label whose value picks the receiver.
    by: Option<Spanned<String>>,
    /// Label value to receiver.
    #[serde(default)]
    receivers: BTreeMap<String, Spanned<String>>,
    /// The receiver for values `receivers` does not list.
    default: Option<Spanned<String>>,
}

/// One contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub name: String,
    pub description: String,
    pub target: ContactTarget,
}

/// Where a contact's notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactTarget {
    /// Always the same receiver.
    Receiver(String),
    /// The receiver the value of label `by` maps to, else `default`.
    ByLabel { by: String, receivers: BTreeMap<String, String>, default: Option<String> },
}

/// The catalog's contacts, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contacts {
    pub contacts: BTreeMap<String, Contact>,
}

impl Contacts {
    pub fn contains(&self, name: &str) -> bool {
        self.contacts.contains_key(name)
    }

    /// The receiver of `contact` for an alert with `labels`; `None` for an
    /// unknown contact or a value with no receiver and no default.
    pub fn receiver_for(&self, contact: &str, labels: &BTreeMap<String, String>) -> Option<&str> {
        match &self.contacts.get(contact)?.target {
            ContactTarget::Receiver(receiver) => Some(receiver),
            ContactTarget::ByLabel { by, receivers, default } => {
                labels.get(by).and_then(|value| receivers.get(value)).or(default.as_ref()).map(String::as_str)
            }
        }
    }

    /// Every receiver a contact may resolve to, sorted, without repeats.
    pub fn receivers(&self) -> Vec<&str> {
        let mut all: Vec<&str> = Vec::new();
        for contact in self.contacts.values() {
            match &contact.target {
                ContactTarget::Receiver(receiver) => all.push(receiver),
                ContactTarget::ByLabel { receivers, default, .. } => {
                    all.extend(receivers.values().map(String::as_str));
                    all.extend(default.as_deref());
                }
            }
        }
        all.sort_unstable();
        all.dedup();
        all
    }
}

fn is_label_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
}

/// Loads `contacts.yaml` from `root` if there is one, checking that every
/// route of the manifest (`routes`, read from `manifest`) is a contact.
pub fn load(
    files: &crate::files::CatalogFiles,
    manifest: &SourceFile,
    routes: &[Spanned<String>],
    errors: &mut Vec<Diagnostic>,
) -> Option<Contacts> {
    let path = files.root().join(FILE_NAME);
    if !files.is_file(&path) {
        return None;
    }
    let source = match files.read(&path) {
        Ok(source) => source,
        Err(diagnostic) => {
            errors.push(diagnostic);
            return None;
        }
    };
    let raw: RawContacts = match source.parse_yaml() {
        Ok(raw) => raw,
        Err(diagnostic) => {
            errors.push(diagnostic);
            return None;
        }
    };
    let mut contacts = Contacts::default();
    for (name, spanned) in &raw.contacts {
        let raw_contact = &spanned.value;
        let non_empty = |value: &Spanned<String>, errors: &mut Vec<Diagnostic>, what: &str| {
            if value.value.trim().is_empty() {
                errors.push(source.error_at_value(value, format!("contact {name:?}: {what} is empty")));
            }
            value.value.clone()
        };
        let target = match (&raw_contact.receiver, &raw_contact.by) {
            (Some(receiver), None) => {
                if !raw_contact.receivers.is_empty() || raw_contact.default.is_some() {
                    errors.push(source.error_at_value(
                        spanned,
                        format!("contact {name:?}: `receivers` and `default` need `by`, the label that picks one"),
                    ));
                }
                ContactTarget::Receiver(non_empty(receiver, errors, "the receiver"))
            }
            (None, Some(by)) => {
                if !is_label_name(&by.value) {
                    errors.push(
                        source.error_at_value(by, format!("contact {name:?}: {:?} is not a label name", by.value)),
                    );
                }
                if raw_contact.receivers.is_empty() && raw_contact.default.is_none() {
                    errors.push(source.error_at_value(
                        by,
                        format!("contact {name:?}: `by` needs `receivers` (label value to receiver) or a `default`"),
                    ));
                }
                let receivers = raw_contact
                    .receivers
                    .iter()
                    .map(|(value, receiver)| (value.clone(), non_empty(receiver, errors, "a receiver")))
                    .collect();
                let default = raw_contact.default.as_ref().map(|default| non_empty(default, errors, "the default"));
                ContactTarget::ByLabel { by: by.value.clone(), receivers, default }
            }
            (Some(receiver), Some(_)) => {
                errors.push(source.error_at_value(
                    receiver,
                    format!("contact {name:?}: give either `receiver` or `by` with `receivers`, not both"),
                ));
                continue;
            }
            (None, None) => {
                errors.push(source.error_at_value(
                    spanned,
                    format!("contact {name:?} names no receiver: give `receiver`, or `by` with `receivers`"),
                ));
                continue;
            }
        };
        contacts
            .contacts
            .insert(name.clone(), Contact { name: name.clone(), description: raw_contact.description.clone(), target });
    }
    for route in routes {
        if !contacts.contains(&route.value) {
            errors.push(manifest.error_at_value(
                route,
                format!("route {:?} is no contact of {FILE_NAME}; every route must say whom it reaches", route.value),
            ));
        }
    }
    Some(contacts)
}
