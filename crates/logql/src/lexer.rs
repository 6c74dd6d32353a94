//! The LogQL tokenizer.
//!
//! Turns a query into [`Token`]s, each with its byte offset, so the parser can
//! point at the fault. Strings are double-quoted with Go escapes or backquoted
//! raw; `#` starts a comment to the end of the line. Numbers, durations (`5m`,
//! `1h30m`) and byte sizes (`20MB`) are one token class, [`TokenKind::Number`],
//! told apart by the parser, which knows what it expects. The lexer never
//! panics on any input.

use crate::error::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    Ident(String),
    /// A quoted string, escapes resolved.
    String(String),
    /// A number, duration or byte size as written (`5`, `0.5`, `5m`, `20MB`).
    Number(String),
    LeftBrace,
    RightBrace,
    LeftParen,
    RightParen,
    LeftBracket,
    RightBracket,
    Comma,
    Pipe,
    PipeExact,
    PipeMatch,
    NotEqual,
    NotMatch,
    Equal,
    Match,
    EqualEqual,
    Greater,
    GreaterEqual,
    Less,
    LessEqual,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Caret,
    End,
}

impl TokenKind {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            TokenKind::Ident(name) => format!("{name:?}"),
            TokenKind::String(value) => format!("string {value:?}"),
            TokenKind::Number(text) => format!("{text:?}"),
            TokenKind::End => "end of query".to_string(),
            other => format!("\"{}\"", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            TokenKind::LeftBrace => "{",
            TokenKind::RightBrace => "}",
            TokenKind::LeftParen => "(",
            TokenKind::RightParen => ")",
            TokenKind::LeftBracket => "[",
            TokenKind::RightBracket => "]",
            TokenKind::Comma => ",",
            TokenKind::Pipe => "|",
            TokenKind::PipeExact => "|=",
            TokenKind::PipeMatch => "|~",
            TokenKind::NotEqual => "!=",
            TokenKind::NotMatch => "!~",
            TokenKind::Equal => "=",
            TokenKind::Match => "=~",
            TokenKind::EqualEqual => "==",
            TokenKind::Greater => ">",
            TokenKind::GreaterEqual => ">=",
            TokenKind::Less => "<",
            TokenKind::LessEqual => "<=",
            TokenKind::Plus => "+",
            TokenKind::Minus => "-",
            TokenKind::Star => "*",
            TokenKind::Slash => "/",
            TokenKind::Percent => "%",
            TokenKind::Caret => "^",
            TokenKind::Ident(_) | TokenKind::String(_) | TokenKind::Number(_) | TokenKind::End => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    /// Byte offset of the token's first character.
    pub offset: usize,
}

/// Splits `query` into tokens, ending with [`TokenKind::End`].
pub fn tokenize(query: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = query.as_bytes();
    let mut tokens = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let start = position;
        let byte = bytes[position];
        if byte.is_ascii_whitespace() {
            position += 1;
            continue;
        }
        if byte == b'#' {
            while position < bytes.len() && bytes[position] != b'\n' {
                position += 1;
            }
            continue;
        }
        let next = bytes.get(position + 1).copied();
        let (kind, length) = match byte {
            b'{' => (TokenKind::LeftBrace, 1),
            b'}' => (TokenKind::RightBrace, 1),
            b'(' => (TokenKind::LeftParen, 1),
            b')' => (TokenKind::RightParen, 1),
            b'[' => (TokenKind::LeftBracket, 1),
            b']' => (TokenKind::RightBracket, 1),
            b',' => (TokenKind::Comma, 1),
            b'+' => (TokenKind::Plus, 1),
            b'-' => (TokenKind::Minus, 1),
            b'*' => (TokenKind::Star, 1),
            b'/' => (TokenKind::Slash, 1),
            b'%' => (TokenKind::Percent, 1),
            b'^' => (TokenKind::Caret, 1),
            b'|' => match next {
                Some(b'=') => (TokenKind::PipeExact, 2),
                Some(b'~') => (TokenKind::PipeMatch, 2),
                _ => (TokenKind::Pipe, 1),
            },
            b'!' => match next {
                Some(b'=') => (TokenKind::NotEqual, 2),
                Some(b'~') => (TokenKind::NotMatch, 2),
                _ => return Err(ParseError::at(query, start, "unexpected \"!\", expected \"!=\" or \"!~\"")),
            },
            b'=' => match next {
                Some(b'=') => (TokenKind::EqualEqual, 2),
                Some(b'~') => (TokenKind::Match, 2),
                _ => (TokenKind::Equal, 1),
            },
            b'>' => match next {
                Some(b'=') => (TokenKind::GreaterEqual, 2),
                _ => (TokenKind::Greater, 1),
            },
            b'<' => match next {
                Some(b'=') => (TokenKind::LessEqual, 2),
                _ => (TokenKind::Less, 1),
            },
            b'"' => {
                let (value, end) = lex_quoted(query, start)?;
                (TokenKind::String(value), end - start)
            }
            b'`' => match query[start + 1..].find('`') {
                Some(length) => (TokenKind::String(query[start + 1..start + 1 + length].to_string()), length + 2),
                None => return Err(ParseError::at(query, start, "unterminated raw string")),
            },
            b'0'..=b'9' | b'.' => {
                let mut end = position;
                while end < bytes.len() {
                    let current = bytes[end];
                    let exponent_sign = (current == b'+' || current == b'-')
                        && end > start
                        && matches!(bytes[end - 1], b'e' | b'E')
                        && bytes[start..end - 1].iter().all(|b| b.is_ascii_digit() || *b == b'.');
                    if current.is_ascii_alphanumeric() || current == b'.' || current == b'_' || exponent_sign {
                        end += 1;
                    } else {
                        break;
                    }
                }
                if end == start + 1 && byte == b'.' {
                    return Err(ParseError::at(query, start, "unexpected \".\""));
                }
                (TokenKind::Number(query[start..end].to_string()), end - start)
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let mut end = position;
                while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                    end += 1;
                }
                (TokenKind::Ident(query[start..end].to_string()), end - start)
            }
            _ => {
                let character = query[start..].chars().next().unwrap_or('?');
                return Err(ParseError::at(query, start, format!("unexpected character {character:?}")));
            }
        };
        tokens.push(Token { kind, offset: start });
        position += length;
    }
    tokens.push(Token { kind: TokenKind::End, offset: query.len() });
    Ok(tokens)
}

/// Reads a double-quoted string starting at `start`; returns its value and the
/// offset just past the closing quote.
fn lex_quoted(query: &str, start: usize) -> Result<(String, usize), ParseError> {
    let mut value = String::new();
    let mut characters = query[start + 1..].char_indices().map(|(index, c)| (index + start + 1, c));
    while let Some((index, character)) = characters.next() {
        match character {
            '"' => return Ok((value, index + 1)),
            '\n' => return Err(ParseError::at(query, start, "unterminated string: newline in string")),
            '\\' => {
                let Some((escape_at, escape)) = characters.next() else { break };
                match escape {
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    'r' => value.push('\r'),
                    'a' => value.push('\u{7}'),
                    'b' => value.push('\u{8}'),
                    'f' => value.push('\u{c}'),
                    'v' => value.push('\u{b}'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    '\'' => value.push('\''),
                    'x' | 'u' | 'U' => {
                        let digits = match escape {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut code = 0u32;
                        for _ in 0..digits {
                            let digit = characters.next().and_then(|(_, c)| c.to_digit(16));
                            let Some(digit) = digit else {
                                return Err(ParseError::at(query, escape_at - 1, "invalid escape in string"));
                            };
                            code = code * 16 + digit;
                        }
                        match char::from_u32(code) {
                            Some(c) => value.push(c),
                            None => return Err(ParseError::at(query, escape_at - 1, "invalid escape in string")),
                        }
                    }
                    _ => {
                        return Err(ParseError::at(
                            query,
                            escape_at - 1,
                            format!("invalid escape \"\\{escape}\" in string"),
                        ));
                    }
                }
            }
            other => value.push(other),
        }
    }
    Err(ParseError::at(query, start, "unterminated string"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(query: &str) -> Vec<TokenKind> {
        tokenize(query).expect("tokenizes").into_iter().map(|token| token.kind).collect()
    }

    #[test]
    fn operators_and_strings() {
        assert_eq!(
            kinds(r#"{a=~"x\"y"} |= `raw\n` != "z" # comment"#),
            vec![
                TokenKind::LeftBrace,
                TokenKind::Ident("a".into()),
                TokenKind::Match,
                TokenKind::String("x\"y".into()),
                TokenKind::RightBrace,
                TokenKind::PipeExact,
                TokenKind::String("raw\\n".into()),
                TokenKind::NotEqual,
                TokenKind::String("z".into()),
                TokenKind::End,
            ]
        );
    }

    #[test]
    fn numbers_durations_and_bytes() {
        assert_eq!(
            kinds("1m30s 20MB 0.5 1e-3"),
            vec![
                TokenKind::Number("1m30s".into()),
                TokenKind::Number("20MB".into()),
                TokenKind::Number("0.5".into()),
                TokenKind::Number("1e-3".into()),
                TokenKind::End
            ]
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(tokenize("\"open").is_err());
        assert!(tokenize("`open").is_err());
        assert!(tokenize("a ! b").is_err());
        assert!(tokenize("\"\\q\"").is_err());
        assert!(tokenize("\"\\").is_err());
        assert!(tokenize("é").is_err());
    }
}
