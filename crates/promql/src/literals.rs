//! The query's string literals as Go decodes them, for the checks that need
//! their bytes.
//!
//! `promql-parser` decodes `\xNN` and octal escapes to the character of that
//! code point (`"\xc5"` becomes `"Å"`), while Go's `strconv.Unquote`, which
//! Prometheus uses, makes them single bytes, so `"a\xc5z"` is not valid UTF-8
//! and Prometheus refuses it as a label name. [`invalid_utf8_literals`] finds
//! such literals in the query text and maps each, as the parser decoded it,
//! to Go's quoted form of its bytes (`"a\xc5z"`), so the evaluator can
//! recognise them and name them as Prometheus does. It never fails: text it
//! cannot read as a literal is skipped.

use foldhash::{HashMap, HashMapExt};

/// The string literals of `query` whose Go decoding is not valid UTF-8: each
/// as `promql-parser` decodes it, with Go's `%q` of its bytes.
pub(crate) fn invalid_utf8_literals(query: &str) -> HashMap<String, String> {
    let mut found = HashMap::new();
    if !query.contains('\\') {
        return found;
    }
    let mut characters = query.char_indices().peekable();
    while let Some((_, character)) = characters.next() {
        match character {
            '#' => {
                // A comment runs to the end of the line.
                for (_, next) in characters.by_ref() {
                    if next == '\n' {
                        break;
                    }
                }
            }
            '`' => {
                for (_, next) in characters.by_ref() {
                    if next == '`' {
                        break;
                    }
                }
            }
            '"' | '\'' => {
                let quote = character;
                let mut parser_value = String::new();
                let mut go_bytes = Vec::new();
                let mut closed = false;
                while let Some((_, next)) = characters.next() {
                    if next == quote {
                        closed = true;
                        break;
                    }
                    if next != '\\' {
                        parser_value.push(next);
                        go_bytes.extend_from_slice(next.encode_utf8(&mut [0; 4]).as_bytes());
                        continue;
                    }
                    let Some((_, escape)) = characters.next() else { break };
                    let (digits, radix) = match escape {
                        'x' => (2, 16),
                        '0'..='7' => (2, 8),
                        'u' => (4, 16),
                        'U' => (8, 16),
                        _ => {
                            let decoded = match escape {
                                'a' => '\u{07}',
                                'b' => '\u{08}',
                                'f' => '\u{0c}',
                                'n' => '\n',
                                'r' => '\r',
                                't' => '\t',
                                'v' => '\u{0b}',
                                other => other,
                            };
                            parser_value.push(decoded);
                            go_bytes.extend_from_slice(decoded.encode_utf8(&mut [0; 4]).as_bytes());
                            continue;
                        }
                    };
                    let mut code = if radix == 8 { escape.to_digit(8).unwrap_or(0) } else { 0 };
                    for _ in 0..digits {
                        let digit = characters.peek().and_then(|(_, digit)| digit.to_digit(radix));
                        let Some(digit) = digit else { break };
                        characters.next();
                        code = code * radix + digit;
                    }
                    let Some(decoded) = char::from_u32(code) else { continue };
                    parser_value.push(decoded);
                    match (escape, u8::try_from(code)) {
                        // Go's `\x` and octal escapes are bytes.
                        ('x' | '0'..='7', Ok(byte)) => go_bytes.push(byte),
                        _ => go_bytes.extend_from_slice(decoded.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                if closed && std::str::from_utf8(&go_bytes).is_err() {
                    found.insert(parser_value, go_quote(&go_bytes));
                }
            }
            _ => {}
        }
    }
    found
}

/// Go's `strconv.Quote` of bytes: valid text escaped as Rust's debug form
/// does for the usual cases, each byte of invalid UTF-8 as `\xNN`.
fn go_quote(bytes: &[u8]) -> String {
    let mut quoted = String::from('"');
    for chunk in bytes.utf8_chunks() {
        quoted.extend(chunk.valid().chars().flat_map(char::escape_debug));
        for byte in chunk.invalid() {
            quoted.push_str(&format!("\\x{byte:02x}"));
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::invalid_utf8_literals;

    #[test]
    fn byte_escapes_that_break_utf8_are_found() {
        let found = invalid_utf8_literals(r#"count_values("a\xc5z", version)"#);
        assert_eq!(found.get("a\u{c5}z").map(String::as_str), Some(r#""a\xc5z""#), "{found:?}");
        let found = invalid_utf8_literals(r#"label_replace(m, "\377", "", "src", "(.*)")"#);
        assert_eq!(found.get("\u{ff}").map(String::as_str), Some(r#""\xff""#), "{found:?}");
    }

    #[test]
    fn valid_utf8_escapes_and_plain_text_are_not() {
        // `\xc3\xa5` is the UTF-8 encoding of `å`; `\u00c5` is a code point.
        assert!(invalid_utf8_literals(r#"count_values("a\xc3\xa5", v) + on("\u00c5") x"#).is_empty());
        assert!(invalid_utf8_literals(r#"count_values("Å", v)"#).is_empty());
        assert!(invalid_utf8_literals(r#"m # "\xff" in a comment"#).is_empty());
        assert!(invalid_utf8_literals(r#"label_join(m, `\xff`, "", "a")"#).is_empty());
    }
}
