//! Checks that a regex match really is what its rule names: the Luhn checksum
//! of payment cards, the ISO 13616 mod-97 checksum of IBANs, the octets of an
//! IPv4 address and the groups of an IPv6 address.
//!
//! Each check looks at the matched bytes and, where the context decides (a
//! browser version such as `Chrome/120.0.0.0` or Faro's `browser_version=131.0.0.0`
//! is not an address), at the bytes around the match. They allocate nothing and never panic. The Luhn check is
//! written here rather than taken from a crate because it must skip the
//! spaces and dashes of a formatted card number without copying it.

/// A check a rule's matches must pass; named by `validate:` in the rules file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    /// `luhn`: 13 to 19 digits (spaces and dashes ignored) with a valid Luhn checksum.
    Luhn,
    /// `iban_mod97`: a country code, two check digits and up to 30 letters or
    /// digits (spaces ignored), 15 to 34 characters, whose mod-97 value is 1.
    IbanMod97,
    /// `ipv4_octets`: four decimal octets of at most 255 without leading zeros,
    /// not part of a longer dotted number and not a product version (`Chrome/1.2.3.4`).
    Ipv4Octets,
    /// `ipv6_groups`: at most eight groups, at most one `::`, at least one
    /// decimal digit, and not followed by another hex digit or colon.
    Ipv6Groups,
}

impl Validator {
    /// The names accepted by `validate:`.
    pub const NAMES: [&'static str; 4] = ["luhn", "iban_mod97", "ipv4_octets", "ipv6_groups"];

    /// The validator called `name` in a rules file.
    pub fn from_name(name: &str) -> Option<Validator> {
        match name {
            "luhn" => Some(Validator::Luhn),
            "iban_mod97" => Some(Validator::IbanMod97),
            "ipv4_octets" => Some(Validator::Ipv4Octets),
            "ipv6_groups" => Some(Validator::Ipv6Groups),
            _ => None,
        }
    }

    /// The name of this validator in a rules file.
    pub fn name(self) -> &'static str {
        match self {
            Validator::Luhn => "luhn",
            Validator::IbanMod97 => "iban_mod97",
            Validator::Ipv4Octets => "ipv4_octets",
            Validator::Ipv6Groups => "ipv6_groups",
        }
    }

    /// Whether the match `line[start..end]` passes this check. Out-of-range
    /// bounds are simply rejected.
    pub fn accepts(self, line: &[u8], start: usize, end: usize) -> bool {
        let Some(matched) = line.get(start..end) else {
            return false;
        };
        match self {
            Validator::Luhn => luhn(matched),
            Validator::IbanMod97 => iban_mod97(matched),
            Validator::Ipv4Octets => ipv4_octets(matched) && ipv4_context(line, start, end),
            Validator::Ipv6Groups => ipv6_groups(matched) && ipv6_context(line, end),
        }
    }
}

/// Whether `text` holds 13 to 19 digits (spaces and dashes ignored, nothing
/// else allowed) with a valid Luhn checksum.
pub fn luhn(text: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut count = 0usize;
    for &byte in text.iter().rev() {
        match byte {
            b'0'..=b'9' => {
                let mut digit = u32::from(byte - b'0');
                if !count.is_multiple_of(2) {
                    digit *= 2;
                    if digit > 9 {
                        digit -= 9;
                    }
                }
                sum += digit;
                count += 1;
            }
            b' ' | b'-' => {}
            _ => return false,
        }
    }
    (13..=19).contains(&count) && sum.is_multiple_of(10)
}

/// Whether `text` is an IBAN (spaces ignored): two letters, two digits, then
/// letters or digits, 15 to 34 characters in all, with mod-97 value 1.
pub fn iban_mod97(text: &[u8]) -> bool {
    let compact = || text.iter().copied().filter(|&byte| byte != b' ');
    let length = compact().count();
    if !(15..=34).contains(&length) {
        return false;
    }
    let mut head = compact();
    let country_ok = head.next().is_some_and(|byte| byte.is_ascii_uppercase())
        && head.next().is_some_and(|byte| byte.is_ascii_uppercase());
    let check_ok =
        head.next().is_some_and(|byte| byte.is_ascii_digit()) && head.next().is_some_and(|byte| byte.is_ascii_digit());
    if !country_ok || !check_ok {
        return false;
    }
    // The first four characters move to the end; letters count as 10..=35.
    let rearranged = compact().skip(4).chain(compact().take(4));
    let mut remainder = 0u32;
    for byte in rearranged {
        let value = match byte {
            b'0'..=b'9' => u32::from(byte - b'0'),
            b'A'..=b'Z' => u32::from(byte - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 { (remainder * 100 + value) % 97 } else { (remainder * 10 + value) % 97 };
    }
    remainder == 1
}

/// Whether `text` is exactly four dot-separated decimal octets, each at most
/// 255 and without a leading zero.
pub fn ipv4_octets(text: &[u8]) -> bool {
    let mut octets = 0;
    for part in text.split(|&byte| byte == b'.') {
        octets += 1;
        let valid = !part.is_empty()
            && part.len() <= 3
            && part.iter().all(u8::is_ascii_digit)
            && !(part.len() > 1 && part[0] == b'0')
            && part.iter().fold(0u32, |value, &digit| value * 10 + u32::from(digit - b'0')) <= 255;
        if !valid {
            return false;
        }
    }
    octets == 4
}

/// An address is not one when it continues a dotted number (`1.2.3.4.5`) or
/// follows a product token (`Chrome/120.0.0.0`, `Version/17.4.1.2`).
fn ipv4_context(line: &[u8], start: usize, end: usize) -> bool {
    let before = |back: usize| start.checked_sub(back).and_then(|index| line.get(index)).copied();
    let after = |ahead: usize| line.get(end + ahead).copied();
    if before(1) == Some(b'.') && before(2).is_some_and(|byte| byte.is_ascii_digit()) {
        return false;
    }
    if after(0) == Some(b'.') && after(1).is_some_and(|byte| byte.is_ascii_digit()) {
        return false;
    }
    let product_version = before(1) == Some(b'/') && before(2).is_some_and(|byte| byte.is_ascii_alphabetic());
    !product_version && !version_field(&line[..start])
}

/// Whether the text before a match ends with a key that names a version, as
/// Grafana Alloy's faro.receiver writes the browser's (`browser_version=131.0.0.0`)
/// and JSON does (`"version":"131.0.0.0"`): `version` or `…_version`, then `=` or
/// `":"` and an optional quote.
fn version_field(before: &[u8]) -> bool {
    let mut rest = before;
    if let [head @ .., b'"'] = rest {
        rest = head;
    }
    let key = match rest {
        [head @ .., b'='] => head,
        [head @ .., b'"', b':'] => head,
        [head @ .., b'"', b':', b' '] => head,
        _ => return false,
    };
    let key = key.strip_suffix(b"\"").unwrap_or(key);
    let word_start =
        key.iter().rposition(|byte| !(byte.is_ascii_alphanumeric() || *byte == b'_')).map_or(0, |index| index + 1);
    let word = &key[word_start..];
    word.eq_ignore_ascii_case(b"version") || word.len() > 8 && word[word.len() - 8..].eq_ignore_ascii_case(b"_version")
}

/// Whether `text` is an IPv6 address: hex groups of at most four digits
/// separated by colons, at most one `::`, eight groups without it and fewer
/// with it, and at least one decimal digit (so `cafe::beef` is not one).
pub fn ipv6_groups(text: &[u8]) -> bool {
    if !text.iter().any(u8::is_ascii_digit) {
        return false;
    }
    let compressed = text.windows(2).filter(|pair| pair == b"::").count();
    if compressed > 1 || text.windows(3).any(|triple| triple == b":::") {
        return false;
    }
    let mut groups = 0;
    for group in text.split(|&byte| byte == b':') {
        if group.is_empty() {
            continue;
        }
        if group.len() > 4 || !group.iter().all(u8::is_ascii_hexdigit) {
            return false;
        }
        groups += 1;
    }
    if compressed == 1 { (1..=7).contains(&groups) } else { groups == 8 }
}

fn ipv6_context(line: &[u8], end: usize) -> bool {
    !line.get(end).is_some_and(|&byte| byte.is_ascii_hexdigit() || byte == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_rejects_altered_ones() {
        assert!(luhn(b"4111111111111111"));
        assert!(luhn(b"4111 1111 1111 1111"));
        assert!(luhn(b"5500-0000-0000-0004"));
        assert!(luhn(b"378282246310005"));
        assert!(!luhn(b"4111111111111112"));
        assert!(!luhn(b"411111111111")); // too short
        assert!(!luhn(b"4111x111111111111"));
    }

    #[test]
    fn iban_checks_the_mod97_value() {
        assert!(iban_mod97(b"DE89370400440532013000"));
        assert!(iban_mod97(b"DE89 3704 0044 0532 0130 00"));
        assert!(iban_mod97(b"GB82WEST12345698765432"));
        assert!(!iban_mod97(b"DE88370400440532013000"));
        assert!(!iban_mod97(b"DE89"));
        assert!(!iban_mod97(b"de89370400440532013000"));
    }

    #[test]
    fn ipv4_octets_are_bounded() {
        assert!(ipv4_octets(b"192.168.1.20"));
        assert!(ipv4_octets(b"0.0.0.0"));
        assert!(!ipv4_octets(b"256.1.1.1"));
        assert!(!ipv4_octets(b"01.2.3.4"));
        assert!(!ipv4_octets(b"1.2.3"));
        assert!(!ipv4_octets(b"1.2.3.4.5"));
    }

    #[test]
    fn ipv4_context_rejects_product_versions() {
        let line = b"Chrome/120.0.0.0 Safari";
        assert!(!Validator::Ipv4Octets.accepts(line, 7, 16));
        let line = b"from 10.0.0.1 ok";
        assert!(Validator::Ipv4Octets.accepts(line, 5, 13));
    }

    #[test]
    fn faro_browser_version_is_not_an_address() {
        // Grafana Alloy's faro.receiver line: Chrome's version looks like an IPv4 address.
        let line = b"browser_name=Chrome browser_version=131.0.0.0 browser_os=\"Windows 10\"";
        assert!(!Validator::Ipv4Octets.accepts(line, 36, 45));
        let line = br#"{"name":"Chrome","version":"131.0.0.0"}"#;
        assert!(!Validator::Ipv4Octets.accepts(line, 28, 37));
        let line = b"client_ip=131.0.0.1 conversion=1.2.3.4";
        assert!(Validator::Ipv4Octets.accepts(line, 10, 19));
        assert!(Validator::Ipv4Octets.accepts(line, 31, 38));
    }

    #[test]
    fn ipv6_groups_are_counted() {
        assert!(ipv6_groups(b"2001:0db8:85a3:0000:0000:8a2e:0370:7334"));
        assert!(ipv6_groups(b"2001:db8::1"));
        assert!(ipv6_groups(b"fe80::"));
        assert!(!ipv6_groups(b"cafe::beef"));
        assert!(!ipv6_groups(b"1::2::3"));
        assert!(!ipv6_groups(b"1:2:3:4:5:6:7"));
    }

    #[test]
    fn bounds_outside_the_line_are_rejected() {
        assert!(!Validator::Luhn.accepts(b"4111", 2, 10));
        assert!(!Validator::Luhn.accepts(b"4111", 3, 1));
    }
}
