//! Integration tests of the `pii` crate: the shipped Busflow rules file
//! loaded and applied, positive and negative examples per rule id, the
//! validators, exclusions from the catalog contract, rules-file errors, and
//! properties (no panic, idempotence, raw values never kept).

mod naive;

use std::sync::OnceLock;

use pii::{Error, Exclusion, Redactor, RuleSet, Validator};
use proptest::prelude::*;
use serde::Deserialize;

const RULES_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../catalog/busflow/pii-rules.yaml");
const EXCLUSIONS_PATH: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../catalog/busflow/contracts/pii-exclusions.yaml");

fn shipped_rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        let text = std::fs::read_to_string(RULES_PATH).expect("the shipped rules file is readable");
        RuleSet::from_yaml(&text, "pii-rules.yaml").expect("the shipped rules file is valid")
    })
}

fn redactor() -> &'static Redactor {
    static REDACTOR: OnceLock<Redactor> = OnceLock::new();
    REDACTOR.get_or_init(|| Redactor::new(shipped_rules(), Vec::new()))
}

#[derive(Deserialize)]
struct ExclusionsFile {
    exclusions: Vec<ExclusionEntry>,
}

#[derive(Deserialize)]
struct ExclusionEntry {
    rule_id: String,
    sample: String,
    reviewer: String,
}

fn contract_exclusions() -> Vec<Exclusion> {
    let text = std::fs::read_to_string(EXCLUSIONS_PATH).expect("the exclusions contract is readable");
    let file: ExclusionsFile = serde_saphyr::from_str(&text).expect("the exclusions contract parses");
    file.exclusions
        .into_iter()
        .map(|entry| Exclusion { rule_id: entry.rule_id, sample: entry.sample, reviewer: entry.reviewer })
        .collect()
}

fn faro_line(message: &str) -> String {
    format!(
        concat!(
            r#"{{"timestamp":"2026-11-26T10:00:00.123Z","kind":"log","level":"info","message":"{}","#,
            r#""context":{{"route":"/bookings/123","session_id":"9f8a7b6c5d4e3f21","#,
            r#""user_agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"}},"#,
            r#""app":{{"name":"busflow-web","version":"4.12.0"}},"page":{{"url":"https://app.busflow.example/bookings?id=123"}},"#,
            r#""trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}}"#
        ),
        message
    )
}

/// (rule id, text containing exactly that PII value, the value).
const POSITIVES: &[(&str, &str, &str)] = &[
    ("email", "contact jane.doe+tag@example.co.uk please", "jane.doe+tag@example.co.uk"),
    ("email", "user=ops@busflow.example", "ops@busflow.example"),
    ("phone_e164", "call +4915112345678 now", "+4915112345678"),
    ("phone_e164", "call +1 415 555 2671 now", "+1 415 555 2671"),
    ("phone_e164", "tel:+44-20-7946-0958", "+44-20-7946-0958"),
    ("phone_national", "mobile 0151 1234567 today", "0151 1234567"),
    ("phone_national", "office (415) 555-2671 ext", "(415) 555-2671"),
    ("phone_national", "berlin 030/1234567", "030/1234567"),
    ("phone_national", "us 415-555-2671", "415-555-2671"),
    ("iban", "pay to DE89370400440532013000 today", "DE89370400440532013000"),
    ("iban", "iban: DE89 3704 0044 0532 0130 00 ok", "DE89 3704 0044 0532 0130 00"),
    ("iban", "GB82 WEST 1234 5698 7654 32", "GB82 WEST 1234 5698 7654 32"),
    ("payment_card", "card 4111111111111111 charged", "4111111111111111"),
    ("payment_card", "card 4111 1111 1111 1111 charged", "4111 1111 1111 1111"),
    ("payment_card", "mc 5500-0000-0000-0004", "5500-0000-0000-0004"),
    ("payment_card", "amex 378282246310005", "378282246310005"),
    ("ipv4", "client 192.168.1.20 connected", "192.168.1.20"),
    ("ipv4", "http://10.0.0.1:8080/health", "10.0.0.1"),
    ("ipv6", "from 2001:0db8:85a3:0000:0000:8a2e:0370:7334 ok", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("ipv6", "from 2001:db8::1 ok", "2001:db8::1"),
    ("ipv6", "link fe80::1ff:fe23:4567:890a%eth0", "fe80::1ff:fe23:4567:890a"),
    ("ipv6", "[2001:db8:0:1::42]:443", "2001:db8:0:1::42"),
    ("ipv6", "peer ab::c1d up", "ab::c1d"),
    (
        "jwt",
        "token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U&x=1",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ),
    ("api_key", "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc used", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("api_key", "stripe sk_test_4eC39HqLyjWDarjtT1zdp7dc used", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
    ("api_key", "aws AKIAIOSFODNN7EXAMPLE key", "AKIAIOSFODNN7EXAMPLE"),
    ("api_key", "gh ghp_16C7e42F292c6912E7710c838347Ae178B4a here", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("api_key", "slack xoxb-123456789012-abcdefghij done", "xoxb-123456789012-abcdefghij"),
    ("api_key", "gitlab glpat-abcdefghij0123456789 done", "glpat-abcdefghij0123456789"),
    ("api_key", "request api_key=a1b2c3d4e5f6g7h8i9 sent", "api_key=a1b2c3d4e5f6g7h8i9"),
    ("api_key", r#"{"apikey": "Zx9Qw8Er7Ty6Ui5O"}"#, r#"apikey": "Zx9Qw8Er7Ty6Ui5O"#),
    ("api_key", "X-Api-Key: 0123abcd4567efgh89", "X-Api-Key: 0123abcd4567efgh89"),
    ("bearer_token", "Authorization: Bearer abc123.def456-ghi", "Bearer abc123.def456-ghi"),
    ("bearer_token", "sent bearer 9f8e7d6c5b4a token", "bearer 9f8e7d6c5b4a"),
];

#[test]
fn every_positive_example_is_found_and_redacted() {
    let mut failures = Vec::new();
    for &(rule_id, text, value) in POSITIVES {
        let redaction = redactor().redact(text);
        let found: Vec<(&str, &str)> =
            redaction.matches.iter().map(|found| (found.rule_id.as_str(), &text[found.start..found.end])).collect();
        if found != [(rule_id, value)] {
            failures.push(format!("{rule_id}: {text:?}: expected {value:?}, found {found:?}"));
            continue;
        }
        let expected_line = text.replacen(value, &format!("[REDACTED:{rule_id}]"), 1);
        if redaction.line != expected_line {
            failures.push(format!("{rule_id}: {text:?}: redacted to {:?}", redaction.line));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// (the rule id that must not match, text). No rule may match these at all.
const NEGATIVES: &[(&str, &str)] = &[
    ("email", "meet @ noon, user@localhost"),
    ("email", "npm package @scope/name"),
    ("phone_e164", "timestamp 2026-11-26T10:00:00.123+01:00"),
    ("phone_e164", "delta +42ms"),
    ("phone_national", "at 2026-11-26 10:00:00"),
    ("phone_national", "epoch 1764151200123"),
    ("phone_national", "took 1500 ms on port 8080"),
    ("phone_national", "version 4.12.0 build 20261126"),
    ("phone_national", "booking id 12345678"),
    ("phone_national", "trace 4bf92f3577b34da6a3ce929d0e0e4736"),
    ("phone_national", "date 26.11.2026 12:30"),
    ("iban", "DE89370400440532013001"),
    ("iban", "ISO8601 date"),
    ("iban", "HTTP2 and TLS13 used"),
    ("payment_card", "card 4111111111111112 declined"),
    ("payment_card", "epoch 1764151200123 ms"),
    ("payment_card", "nanos 1764151200123456789"),
    ("ipv4", "Chrome/120.0.0.0 Safari/537.36"),
    ("ipv4", "version 1.2.3.4.5"),
    ("ipv4", "not 256.1.1.1 nor 1.2.3"),
    ("ipv4", "leading 01.02.03.04"),
    ("ipv6", "at 12:30:45 and 10:00:00.123"),
    ("ipv6", "std::fmt::Display and cafe::beef"),
    ("ipv6", "mac 00:1a:2b:3c:4d:5e"),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9 alone"),
    ("api_key", "sk_live_short"),
    ("api_key", "the api_key is missing"),
    ("bearer_token", "bearer authentication failed"),
    ("bearer_token", "Authorization: Bearer [REDACTED:jwt]"),
];

#[test]
fn no_negative_example_matches() {
    let mut failures = Vec::new();
    for &(rule_id, text) in NEGATIVES {
        let redaction = redactor().redact(text);
        if !redaction.matches.is_empty() {
            let found: Vec<(&str, &str)> =
                redaction.matches.iter().map(|found| (found.rule_id.as_str(), &text[found.start..found.end])).collect();
            failures.push(format!("{rule_id}: {text:?}: found {found:?}"));
        }
        assert!(matches!(redaction.line, std::borrow::Cow::Borrowed(_)));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_shipped_rule_has_positive_and_negative_examples() {
    for rule in shipped_rules().rules() {
        assert!(POSITIVES.iter().any(|row| row.0 == rule.id()), "no positive example for {}", rule.id());
        assert!(NEGATIVES.iter().any(|row| row.0 == rule.id()), "no negative example for {}", rule.id());
    }
}

#[test]
fn shipped_rules_have_the_documented_ids() {
    let ids: Vec<&str> = shipped_rules().rules().iter().map(|rule| rule.id()).collect();
    for id in [
        "email",
        "phone_e164",
        "phone_national",
        "iban",
        "payment_card",
        "ipv4",
        "ipv6",
        "jwt",
        "api_key",
        "bearer_token",
    ] {
        assert!(ids.contains(&id), "missing rule {id}");
    }
    let card = shipped_rules().rule("payment_card").expect("payment_card exists");
    assert_eq!(card.validator(), Some(Validator::Luhn));
    assert_eq!(card.replacement(), "[REDACTED:payment_card]");
}

#[test]
fn clean_faro_line_is_borrowed_unchanged() {
    let line = faro_line("booking confirmed");
    let redaction = redactor().redact(&line);
    assert!(redaction.matches.is_empty(), "{:?}", redaction.matches);
    assert!(matches!(redaction.line, std::borrow::Cow::Borrowed(_)));
    assert!(!redaction.all_excluded());
}

#[test]
fn faro_line_with_email_and_card_gives_both_rule_ids() {
    let line = faro_line("payment failed for jane.doe@example.com with card 4111 1111 1111 1111");
    let redaction = redactor().redact(&line);
    assert_eq!(redaction.rule_ids(), vec!["email", "payment_card"]);
    assert!(!redaction.line.contains("jane.doe@example.com"));
    assert!(!redaction.line.contains("4111 1111 1111 1111"));
    assert!(redaction.line.contains("[REDACTED:email]"));
    assert!(redaction.line.contains("[REDACTED:payment_card]"));
    assert!(redaction.line.contains(r#""trace_id":"4bf92f3577b34da6a3ce929d0e0e4736""#));
    assert!(redaction.line.contains("Chrome/120.0.0.0"));
    assert!(!redaction.all_excluded());
}

#[test]
fn card_is_not_also_a_phone_and_iban_is_not_a_phone() {
    let redaction = redactor().redact("card 4111 1111 1111 1111 iban DE89 3704 0044 0532 0130 00");
    assert_eq!(redaction.rule_ids(), vec!["iban", "payment_card"]);
    assert_eq!(redaction.matches.len(), 2);
}

#[test]
fn ipv4_inside_an_email_is_not_reported_separately() {
    let redaction = redactor().redact("mail to root@10.0.0.1.example.com now");
    assert_eq!(redaction.rule_ids(), vec!["email"]);
}

#[test]
fn jwt_after_bearer_is_one_bearer_match() {
    let line = "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlMQ";
    let redaction = redactor().redact(line);
    assert_eq!(redaction.rule_ids(), vec!["bearer_token"]);
    assert_eq!(redaction.line, "Authorization: [REDACTED:bearer_token]");
}

#[test]
fn exclusions_from_the_contract_mark_but_still_redact() {
    let redactor = Redactor::new(shipped_rules(), contract_exclusions());
    let line = faro_line("checkout card=4242424242424242 accepted");
    let redaction = redactor.redact(&line);
    assert_eq!(redaction.rule_ids(), vec!["payment_card"]);
    assert!(redaction.matches.iter().all(|found| found.excluded));
    assert!(redaction.all_excluded());
    assert!(!redaction.line.contains("4242424242424242"));

    let other_card = redactor.redact("checkout card=4111111111111111 accepted");
    assert!(!other_card.all_excluded());
    assert!(!other_card.matches[0].excluded);

    let mixed = redactor.redact("card=4242424242424242 by jane@example.com");
    assert!(!mixed.all_excluded());
    assert_eq!(mixed.matches.iter().filter(|found| found.excluded).count(), 1);
}

#[test]
fn exclusion_for_another_rule_does_not_apply() {
    let exclusions = vec![Exclusion {
        rule_id: "phone_national".to_owned(),
        sample: "card=4242424242424242".to_owned(),
        reviewer: "someone".to_owned(),
    }];
    let redactor = Redactor::new(shipped_rules(), exclusions);
    let redaction = redactor.redact("card=4242424242424242");
    assert!(!redaction.all_excluded());
}

#[test]
fn validators_by_name() {
    for name in Validator::NAMES {
        let validator = Validator::from_name(name).expect("every listed name is known");
        assert_eq!(validator.name(), name);
    }
    assert!(Validator::Luhn.accepts(b"4012888888881881", 0, 16));
    assert!(!Validator::Luhn.accepts(b"4012888888881882", 0, 16));
    assert!(Validator::IbanMod97.accepts(b"FR1420041010050500013M02606", 0, 27));
    assert!(!Validator::IbanMod97.accepts(b"FR1420041010050500013M02607", 0, 27));
    assert!(Validator::IbanMod97.accepts(b"NL91 ABNA 0417 1643 00", 0, 22));
    assert!(!Validator::IbanMod97.accepts(b"NL92 ABNA 0417 1643 00", 0, 22));
}

fn rules_error(text: &str) -> String {
    match RuleSet::from_yaml(text, "rules.yaml") {
        Ok(_) => panic!("expected an error for {text}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn unknown_fields_are_rejected() {
    let message = rules_error("rules:\n  - id: a\n    description: x\n    pattern: 'a'\n    colour: red\n");
    assert!(message.starts_with("rules.yaml: invalid pii rules file"), "{message}");
    assert!(message.contains("colour"), "{message}");
}

#[test]
fn bad_regex_names_the_rule() {
    let message = rules_error("rules:\n  - id: broken\n    description: x\n    pattern: '(unclosed'\n");
    assert!(message.contains(r#"rule "broken": invalid pattern"#), "{message}");
}

#[test]
fn duplicate_ids_unknown_validators_and_every_problem_are_reported() {
    let text = concat!(
        "rules:\n",
        "  - {id: twice, description: x, pattern: 'a1'}\n",
        "  - {id: twice, description: y, pattern: 'b2'}\n",
        "  - {id: checked, description: z, pattern: 'c3', validate: crc32}\n",
        "  - {id: Bad-Id, description: z, pattern: 'd4'}\n",
    );
    let Err(Error::Rules { problems, .. }) = RuleSet::from_yaml(text, "rules.yaml") else {
        panic!("expected rule problems");
    };
    let summary: Vec<(String, String)> =
        problems.into_iter().map(|problem| (problem.rule_id, problem.message)).collect();
    assert!(summary.iter().any(|(id, message)| id == "twice" && message == "duplicate rule id"), "{summary:?}");
    assert!(
        summary.iter().any(|(id, message)| id == "checked" && message.contains("unknown validator")),
        "{summary:?}"
    );
    assert!(summary.iter().any(|(id, _)| id == "Bad-Id"), "{summary:?}");
}

#[test]
fn replacement_matched_by_a_rule_is_rejected() {
    let message = rules_error("rules:\n  - id: word\n    description: x\n    pattern: 'REDACTED'\n");
    assert!(message.contains("is matched by rule"), "{message}");
}

#[test]
fn unfiltered_rule_runs_on_the_whole_line() {
    let rules = RuleSet::from_yaml(
        "redaction: '<{id}>'\nrules:\n  - {id: order, description: an order id, pattern: 'ORD-[0-9]{6}'}\n",
        "rules.yaml",
    )
    .expect("valid rules");
    let redaction = Redactor::new(&rules, Vec::new()).redact("placed ORD-123456 today");
    assert_eq!(redaction.line, "placed <order> today");
}

#[test]
fn multibyte_text_around_matches_is_kept() {
    let line = "Grüße an jürgen@example.de — Telefon 0151 1234567 ✓";
    let redaction = redactor().redact(line);
    assert_eq!(redaction.line, "Grüße an [REDACTED:email] — Telefon [REDACTED:phone_national] ✓");
}

fn pii_value() -> impl Strategy<Value = &'static str> {
    prop::sample::select(POSITIVES.iter().map(|row| row.2).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_and_is_idempotent(line in any::<String>()) {
        let first = redactor().redact(&line);
        let second = redactor().redact(&first.line);
        prop_assert!(second.matches.is_empty(), "{:?} -> {:?} -> {:?}", line, first.line, second.matches);
        for found in &first.matches {
            prop_assert!(found.start < found.end && found.end <= line.len());
        }
    }

    #[test]
    fn idempotent_on_pii_like_text(line in "[ 0-9a-fA-F:.+()/@_=-]{0,80}") {
        let first = redactor().redact(&line);
        let second = redactor().redact(&first.line);
        prop_assert!(second.matches.is_empty(), "{:?} -> {:?} -> {:?}", line, first.line, second.matches);
    }

    #[test]
    fn raw_values_never_survive(prefix in "[a-z ]{0,20}", value in pii_value(), suffix in "[a-z ]{0,20}") {
        let line = format!("{prefix} {value} {suffix}");
        let redaction = redactor().redact(&line);
        prop_assert!(!redaction.line.contains(value), "{:?} -> {:?}", line, redaction.line);
        let again = redactor().redact(&redaction.line);
        prop_assert!(again.matches.is_empty());
    }
}

#[test]
fn redactor_and_rules_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Redactor>();
    assert_send_sync::<RuleSet>();
    let redactor = redactor().clone();
    let handle = std::thread::spawn(move || redactor.redact("mail ops@busflow.example").rule_ids().len());
    assert_eq!(handle.join().expect("the thread finishes"), 1);
}
