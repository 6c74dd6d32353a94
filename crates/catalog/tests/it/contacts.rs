//! Contacts (`contacts.yaml`): the shipped ones resolve routes to receivers,
//! and a route or escalation naming no contact is refused at its place.

use std::collections::BTreeMap;

use super::{assert_error, copy_catalog, edit, errors_of, line_of, shipped_catalog};

#[test]
fn shipped_contacts_resolve_routes_to_receivers() {
    let catalog = catalog::load(&shipped_catalog()).expect("the shipped catalog loads");
    let contacts = catalog.contacts.expect("busflow has contacts");
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    };
    assert_eq!(contacts.receiver_for("security-oncall", &labels(&[])), Some("security-oncall"));
    assert_eq!(contacts.receiver_for("tenant-csm", &labels(&[("tenant_id", "t-003")])), Some("csm-south"));
    assert_eq!(contacts.receiver_for("tenant-csm", &labels(&[("tenant_id", "t-999")])), Some("csm-desk"));
    assert_eq!(
        contacts.receiver_for("feature-lead", &labels(&[("service_name", "busflow_api")])),
        Some("lead-booking")
    );
    assert_eq!(contacts.receiver_for("nobody", &labels(&[])), None);
    for route in &catalog.routes {
        assert!(contacts.contains(route), "route {route} is a contact");
    }
}

#[test]
fn a_route_or_escalation_naming_no_contact_is_refused_where_it_is() {
    let root = copy_catalog();
    // The route stays in catalog.yaml but its contact is gone.
    edit(root.path(), "contacts.yaml", "  feature-lead:\n", "  feature-leads:\n");
    let errors = errors_of(root.path());
    let line = line_of(root.path(), "catalog.yaml", "  - feature-lead");
    assert_error(&errors, "catalog.yaml", line, 5, "route \"feature-lead\" is no contact of contacts.yaml");
    let line = line_of(root.path(), "runbook/A2.yaml", "to: feature-lead");
    assert_error(&errors, "runbook/A2.yaml", line, 9, "unknown route \"feature-lead\"");
}

#[test]
fn a_contact_without_a_receiver_is_refused() {
    let root = copy_catalog();
    edit(root.path(), "contacts.yaml", "    receiver: infra-oncall\n", "    receivers: {a: b}\n");
    let errors = errors_of(root.path());
    assert!(errors.iter().any(|error| error.message.contains("contact \"infra-oncall\"")), "{errors}");
}
