//! A recursive-descent parser for LogQL.
//!
//! [`parse`] turns a query into an [`Expr`] or a [`ParseError`] that points at
//! the offending token (`parse error at line 1, col 14: unexpected "|",
//! expected a label matcher`). Binary operators follow PromQL's precedence
//! (`^` right-associative, then `* / %`, `+ -`, comparisons, `and unless`,
//! `or`). The parser checks what Loki checks at parse time (unwrap required by
//! `sum_over_time`, grouping only on unwrapped ranges, valid regexes,
//! templates and patterns) and nothing that needs data.

use crate::ast::*;
use crate::error::ParseError;
use crate::lexer::{Token, TokenKind, tokenize};
use crate::source::{MatchOp, StreamMatcher};
use crate::template::Template;
use crate::units::{parse_bytes, parse_duration};

/// Nesting depth beyond which a query is refused rather than risk the stack.
const MAX_DEPTH: usize = 200;

/// Parses a LogQL query.
pub fn parse(query: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(query)?;
    let mut parser = Parser { query, tokens, position: 0, depth: 0 };
    let expr = if parser.peek() == &TokenKind::LeftBrace {
        Expr::Log(parser.log_expr(false)?.0)
    } else {
        Expr::Metric(parser.binary(0)?)
    };
    if parser.peek() != &TokenKind::End {
        let expected = match expr {
            Expr::Log(_) => "expected a pipeline stage or end of query",
            Expr::Metric(_) => "expected a binary operator or end of query",
        };
        return Err(parser.unexpected(expected));
    }
    Ok(expr)
}

struct Parser<'a> {
    query: &'a str,
    tokens: Vec<Token>,
    position: usize,
    depth: usize,
}

fn regex_message(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("invalid regex");
    last.trim().trim_start_matches("error: ").to_string()
}

fn is_label_filter_op(kind: &TokenKind) -> bool {
    matches!(
        kind,
        TokenKind::Equal
            | TokenKind::EqualEqual
            | TokenKind::NotEqual
            | TokenKind::Match
            | TokenKind::NotMatch
            | TokenKind::Greater
            | TokenKind::GreaterEqual
            | TokenKind::Less
            | TokenKind::LessEqual
    )
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &TokenKind {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &TokenKind {
        let index = (self.position + ahead).min(self.tokens.len() - 1);
        &self.tokens[index].kind
    }

    fn offset(&self) -> usize {
        self.tokens[self.position.min(self.tokens.len() - 1)].offset
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.position.min(self.tokens.len() - 1)].clone();
        if self.position < self.tokens.len() - 1 {
            self.position += 1;
        }
        token
    }

    fn error_at(&self, offset: usize, message: impl Into<String>) -> ParseError {
        ParseError::at(self.query, offset, message)
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        self.error_at(self.offset(), format!("unexpected {}, {expected}", self.peek().describe()))
    }

    fn expect(&mut self, kind: TokenKind, expected: &str) -> Result<Token, ParseError> {
        if self.peek() == &kind {
            return Ok(self.advance());
        }
        Err(self.unexpected(expected))
    }

    fn is_ident(&self, name: &str) -> bool {
        matches!(self.peek(), TokenKind::Ident(ident) if ident == name)
    }

    fn ident(&mut self, expected: &str) -> Result<(String, usize), ParseError> {
        if let TokenKind::Ident(name) = self.peek() {
            let name = name.clone();
            let offset = self.advance().offset;
            return Ok((name, offset));
        }
        Err(self.unexpected(expected))
    }

    fn string(&mut self, expected: &str) -> Result<(String, usize), ParseError> {
        if let TokenKind::String(value) = self.peek() {
            let value = value.clone();
            let offset = self.advance().offset;
            return Ok((value, offset));
        }
        Err(self.unexpected(expected))
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(self.offset(), "query is nested too deeply"));
        }
        Ok(())
    }

    fn duration(&mut self, what: &str) -> Result<i64, ParseError> {
        let offset = self.offset();
        let TokenKind::Number(text) = self.peek().clone() else {
            return Err(self.unexpected(&format!("expected a {what} duration")));
        };
        self.advance();
        parse_duration(&text).ok_or_else(|| self.error_at(offset, format!("invalid duration {text:?}")))
    }

    fn number(&mut self, expected: &str) -> Result<f64, ParseError> {
        let negative = if self.peek() == &TokenKind::Minus {
            self.advance();
            true
        } else {
            false
        };
        let offset = self.offset();
        let TokenKind::Number(text) = self.peek().clone() else {
            return Err(self.unexpected(expected));
        };
        self.advance();
        let value: f64 = text.parse().map_err(|_| self.error_at(offset, format!("invalid number {text:?}")))?;
        Ok(if negative { -value } else { value })
    }

    // ---- log queries ----

    fn selector(&mut self) -> Result<Vec<StreamMatcher>, ParseError> {
        let open = self.expect(TokenKind::LeftBrace, "expected a stream selector")?.offset;
        let mut matchers = Vec::new();
        loop {
            if self.peek() == &TokenKind::RightBrace && matchers.is_empty() {
                self.advance();
                break;
            }
            let (name, _) = self.ident("expected a label matcher")?;
            let op = match self.peek() {
                TokenKind::Equal => MatchOp::Equal,
                TokenKind::NotEqual => MatchOp::NotEqual,
                TokenKind::Match => MatchOp::RegexMatch,
                TokenKind::NotMatch => MatchOp::RegexNoMatch,
                _ => return Err(self.unexpected("expected one of \"=\", \"!=\", \"=~\", \"!~\"")),
            };
            self.advance();
            let (value, value_offset) = self.string("expected a quoted label value")?;
            let matcher = StreamMatcher::new(name, op, value.clone()).map_err(|error| {
                self.error_at(value_offset, format!("invalid regex {value:?}: {}", regex_message(&error)))
            })?;
            matchers.push(matcher);
            match self.peek() {
                TokenKind::Comma => {
                    self.advance();
                }
                TokenKind::RightBrace => {
                    self.advance();
                    break;
                }
                TokenKind::End => return Err(self.error_at(open, "unclosed stream selector: missing \"}\"")),
                _ => return Err(self.unexpected("expected \",\" or \"}\"")),
            }
        }
        if !matchers.iter().any(|matcher| !matcher.matches("")) {
            return Err(self.error_at(
                open,
                "queries require at least one regexp or equality matcher that does not have an empty-compatible value; for instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will",
            ));
        }
        Ok(matchers)
    }

    /// A selector and its pipeline. With `allow_unwrap`, a range may follow the
    /// selector directly and an `| unwrap` may end the pipeline.
    fn log_expr(&mut self, in_range: bool) -> Result<(LogExpr, Option<Unwrap>, Option<i64>), ParseError> {
        let matchers = self.selector()?;
        let mut range = None;
        if in_range && self.peek() == &TokenKind::LeftBracket {
            range = Some(self.range()?);
        }
        let mut stages = Vec::new();
        let mut unwrap: Option<Unwrap> = None;
        loop {
            match self.peek() {
                TokenKind::PipeExact | TokenKind::NotEqual | TokenKind::PipeMatch | TokenKind::NotMatch => {
                    if unwrap.is_some() {
                        return Err(self.unexpected("expected a label filter after unwrap"));
                    }
                    stages.push(Stage::LineFilter(self.line_filter()?));
                }
                TokenKind::Pipe => {
                    self.advance();
                    if let Some(unwrap) = unwrap.as_mut() {
                        unwrap.filters.push(self.label_filter_or()?);
                        continue;
                    }
                    if self.is_ident("unwrap") && !is_label_filter_op(self.peek_at(1)) {
                        let offset = self.advance().offset;
                        if !in_range {
                            return Err(self.error_at(offset, "unwrap is only allowed inside a range aggregation"));
                        }
                        unwrap = Some(self.unwrap()?);
                        continue;
                    }
                    stages.push(self.stage()?);
                }
                _ => break,
            }
        }
        Ok((LogExpr { matchers, stages }, unwrap, range))
    }

    fn line_filter(&mut self) -> Result<LineFilter, ParseError> {
        let op = match self.advance().kind {
            TokenKind::PipeExact => LineFilterOp::Contains,
            TokenKind::NotEqual => LineFilterOp::NotContains,
            TokenKind::PipeMatch => LineFilterOp::Match,
            _ => LineFilterOp::NotMatch,
        };
        let mut values = Vec::new();
        let mut regexes = Vec::new();
        loop {
            let (value, offset) = self.string("expected a quoted line filter value")?;
            if matches!(op, LineFilterOp::Match | LineFilterOp::NotMatch) {
                let regex = regex::Regex::new(&value).map_err(|error| {
                    self.error_at(offset, format!("invalid regex {value:?}: {}", regex_message(&error)))
                })?;
                regexes.push(regex);
            }
            values.push(value);
            if self.is_ident("or") && matches!(self.peek_at(1), TokenKind::String(_)) {
                self.advance();
                continue;
            }
            break;
        }
        Ok(LineFilter { op, values, regexes })
    }

    fn stage(&mut self) -> Result<Stage, ParseError> {
        let TokenKind::Ident(name) = self.peek().clone() else {
            if self.peek() == &TokenKind::LeftParen {
                return Ok(Stage::LabelFilter(self.label_filter_or()?));
            }
            return Err(self.unexpected("expected a parser, a label filter or a formatting stage"));
        };
        if is_label_filter_op(self.peek_at(1)) {
            return Ok(Stage::LabelFilter(self.label_filter_or()?));
        }
        let offset = self.offset();
        let stage = match name.as_str() {
            "json" => {
                self.advance();
                let mut fields = Vec::new();
                for (label, path, path_offset) in self.parser_parameters()? {
                    let path = parse_json_path(&path).map_err(|message| self.error_at(path_offset, message))?;
                    fields.push(JsonField { label, path });
                }
                Stage::Parser(ParserStage::Json(fields))
            }
            "logfmt" => {
                self.advance();
                let (mut strict, mut keep_empty) = (false, false);
                while self.peek() == &TokenKind::Minus && self.peek_at(1) == &TokenKind::Minus {
                    let flag_offset = self.offset();
                    self.advance();
                    self.advance();
                    let (flag, _) = self.ident("expected a logfmt flag")?;
                    if flag == "strict" {
                        strict = true;
                    } else if flag == "keep"
                        && self.peek() == &TokenKind::Minus
                        && self.peek_at(1) == &TokenKind::Ident("empty".into())
                    {
                        self.advance();
                        self.advance();
                        keep_empty = true;
                    } else {
                        return Err(
                            self.error_at(flag_offset, "unknown logfmt flag, expected --strict or --keep-empty")
                        );
                    }
                }
                let fields = self.parser_parameters()?.into_iter().map(|(label, key, _)| (label, key)).collect();
                Stage::Parser(ParserStage::Logfmt { strict, keep_empty, fields })
            }
            "regexp" => {
                self.advance();
                let (value, value_offset) = self.string("expected a quoted regular expression")?;
                let regex = regex::Regex::new(&value).map_err(|error| {
                    self.error_at(value_offset, format!("invalid regex {value:?}: {}", regex_message(&error)))
                })?;
                if regex.capture_names().flatten().next().is_none() {
                    return Err(self.error_at(value_offset, "at least one named capture must be supplied"));
                }
                Stage::Parser(ParserStage::Regexp(regex))
            }
            "pattern" => {
                self.advance();
                let (value, value_offset) = self.string("expected a quoted pattern")?;
                let pattern = crate::parsers::Pattern::parse(&value)
                    .map_err(|message| self.error_at(value_offset, format!("invalid pattern: {message}")))?;
                Stage::Parser(ParserStage::Pattern(pattern))
            }
            "unpack" => {
                self.advance();
                Stage::Parser(ParserStage::Unpack)
            }
            "decolorize" => {
                self.advance();
                Stage::Decolorize
            }
            "line_format" => {
                self.advance();
                let (value, value_offset) = self.string("expected a quoted template")?;
                let template = Template::parse(&value)
                    .map_err(|message| self.error_at(value_offset, format!("invalid template: {message}")))?;
                Stage::LineFormat(template)
            }
            "label_format" => {
                self.advance();
                let mut formats = Vec::new();
                let mut seen: Vec<String> = Vec::new();
                loop {
                    let (to, to_offset) = self.ident("expected a label name")?;
                    if seen.contains(&to) {
                        return Err(self.error_at(to_offset, format!("multiple label name {to:?} appears in format")));
                    }
                    seen.push(to.clone());
                    self.expect(TokenKind::Equal, "expected \"=\"")?;
                    match self.peek().clone() {
                        TokenKind::Ident(from) => {
                            self.advance();
                            formats.push(LabelFormat::Rename { to, from });
                        }
                        TokenKind::String(text) => {
                            let value_offset = self.advance().offset;
                            let template = Template::parse(&text).map_err(|message| {
                                self.error_at(value_offset, format!("invalid template: {message}"))
                            })?;
                            formats.push(LabelFormat::Template { name: to, template });
                        }
                        _ => return Err(self.unexpected("expected a label name or a quoted template")),
                    }
                    if self.peek() != &TokenKind::Comma {
                        break;
                    }
                    self.advance();
                }
                Stage::LabelFormat(formats)
            }
            "drop" | "keep" => {
                self.advance();
                let mut specs = Vec::new();
                loop {
                    let (label, _) = self.ident("expected a label name")?;
                    let op = match self.peek() {
                        TokenKind::Equal => Some(MatchOp::Equal),
                        TokenKind::NotEqual => Some(MatchOp::NotEqual),
                        TokenKind::Match => Some(MatchOp::RegexMatch),
                        TokenKind::NotMatch => Some(MatchOp::RegexNoMatch),
                        _ => None,
                    };
                    let matcher = match op {
                        None => None,
                        Some(op) => {
                            self.advance();
                            let (value, value_offset) = self.string("expected a quoted label value")?;
                            Some(StreamMatcher::new(label.clone(), op, value.clone()).map_err(|error| {
                                self.error_at(
                                    value_offset,
                                    format!("invalid regex {value:?}: {}", regex_message(&error)),
                                )
                            })?)
                        }
                    };
                    specs.push(LabelSpec { name: label, matcher });
                    if self.peek() != &TokenKind::Comma {
                        break;
                    }
                    self.advance();
                }
                if name == "drop" { Stage::Drop(specs) } else { Stage::Keep(specs) }
            }
            _ => {
                return Err(self.error_at(
                    offset,
                    format!("unexpected {name:?}, expected a parser, a label filter or a formatting stage"),
                ));
            }
        };
        Ok(stage)
    }

    /// `a, b="x.y"` after `json` or `logfmt`: `(label, field, offset of field)`.
    fn parser_parameters(&mut self) -> Result<Vec<(String, String, usize)>, ParseError> {
        let mut parameters = Vec::new();
        while let TokenKind::Ident(label) = self.peek().clone() {
            let offset = self.advance().offset;
            if self.peek() == &TokenKind::Equal {
                self.advance();
                let (field, field_offset) = self.string("expected a quoted field expression")?;
                parameters.push((label, field, field_offset));
            } else {
                parameters.push((label.clone(), label, offset));
            }
            if self.peek() != &TokenKind::Comma {
                break;
            }
            self.advance();
            if !matches!(self.peek(), TokenKind::Ident(_)) {
                return Err(self.unexpected("expected a label name"));
            }
        }
        Ok(parameters)
    }

    fn unwrap(&mut self) -> Result<Unwrap, ParseError> {
        let (name, _) = self.ident("expected a label name to unwrap")?;
        let conversion = match name.as_str() {
            "duration" | "duration_seconds" if self.peek() == &TokenKind::LeftParen => Some(Conversion::Duration),
            "bytes" if self.peek() == &TokenKind::LeftParen => Some(Conversion::Bytes),
            _ => None,
        };
        let (label, conversion) = match conversion {
            Some(conversion) => {
                self.advance();
                let (label, _) = self.ident("expected a label name")?;
                self.expect(TokenKind::RightParen, "expected \")\"")?;
                (label, conversion)
            }
            None => (name, Conversion::Float),
        };
        Ok(Unwrap { label, conversion, filters: Vec::new() })
    }

    fn label_filter_or(&mut self) -> Result<LabelFilter, ParseError> {
        self.enter()?;
        let mut left = self.label_filter_and()?;
        while self.is_ident("or") {
            self.advance();
            let right = self.label_filter_and()?;
            left = LabelFilter::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn label_filter_and(&mut self) -> Result<LabelFilter, ParseError> {
        let mut left = self.label_filter_primary()?;
        loop {
            let juxtaposed = matches!(self.peek(), TokenKind::Ident(name) if name != "or" && name != "and")
                && is_label_filter_op(self.peek_at(1));
            if self.is_ident("and") || self.peek() == &TokenKind::Comma {
                self.advance();
            } else if !juxtaposed {
                break;
            }
            let right = self.label_filter_primary()?;
            left = LabelFilter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn label_filter_primary(&mut self) -> Result<LabelFilter, ParseError> {
        if self.peek() == &TokenKind::LeftParen {
            self.advance();
            let inner = self.label_filter_or()?;
            self.expect(TokenKind::RightParen, "expected \")\"")?;
            return Ok(inner);
        }
        let (name, _) = self.ident("expected a label filter")?;
        let op_offset = self.offset();
        let op_token = self.peek().clone();
        if !is_label_filter_op(&op_token) {
            return Err(self.unexpected("expected a comparison operator"));
        }
        self.advance();
        let compare = match op_token {
            TokenKind::Equal | TokenKind::EqualEqual => Some(CompareOp::Equal),
            TokenKind::NotEqual => Some(CompareOp::NotEqual),
            TokenKind::Greater => Some(CompareOp::Greater),
            TokenKind::GreaterEqual => Some(CompareOp::GreaterEqual),
            TokenKind::Less => Some(CompareOp::Less),
            TokenKind::LessEqual => Some(CompareOp::LessEqual),
            _ => None,
        };
        match self.peek().clone() {
            TokenKind::String(value) => {
                let value_offset = self.advance().offset;
                let op = match op_token {
                    TokenKind::Equal | TokenKind::EqualEqual => MatchOp::Equal,
                    TokenKind::NotEqual => MatchOp::NotEqual,
                    TokenKind::Match => MatchOp::RegexMatch,
                    TokenKind::NotMatch => MatchOp::RegexNoMatch,
                    _ => {
                        return Err(self.error_at(
                            op_offset,
                            "ordering comparisons need a number, a duration or a byte size, not a string",
                        ));
                    }
                };
                let matcher = StreamMatcher::new(name, op, value.clone()).map_err(|error| {
                    self.error_at(value_offset, format!("invalid regex {value:?}: {}", regex_message(&error)))
                })?;
                Ok(LabelFilter::String(matcher))
            }
            TokenKind::Ident(function) if function == "ip" => {
                self.advance();
                let negated = match op_token {
                    TokenKind::Equal | TokenKind::EqualEqual => false,
                    TokenKind::NotEqual => true,
                    _ => return Err(self.error_at(op_offset, "ip() filters only support \"=\" and \"!=\"")),
                };
                self.expect(TokenKind::LeftParen, "expected \"(\"")?;
                let (value, value_offset) = self.string("expected a quoted ip address, range or cidr")?;
                self.expect(TokenKind::RightParen, "expected \")\"")?;
                let matcher =
                    crate::ip::IpMatcher::parse(&value).map_err(|message| self.error_at(value_offset, message))?;
                Ok(LabelFilter::Ip { name, negated, matcher })
            }
            TokenKind::Number(_) | TokenKind::Minus => {
                let Some(op) = compare else {
                    return Err(self.error_at(op_offset, "regex matchers need a quoted string"));
                };
                let negative = if self.peek() == &TokenKind::Minus {
                    self.advance();
                    true
                } else {
                    false
                };
                let value_offset = self.offset();
                let TokenKind::Number(text) = self.peek().clone() else {
                    return Err(self.unexpected("expected a number"));
                };
                self.advance();
                let sign = if negative { -1.0 } else { 1.0 };
                if let Ok(value) = text.parse::<f64>() {
                    return Ok(LabelFilter::Number { name, op, value: sign * value });
                }
                if let Some(nanoseconds) = parse_duration(&text) {
                    return Ok(LabelFilter::Duration { name, op, seconds: sign * nanoseconds as f64 / 1e9 });
                }
                if let Some(bytes) = parse_bytes(&text) {
                    return Ok(LabelFilter::Bytes { name, op, bytes: sign * bytes });
                }
                Err(self.error_at(value_offset, format!("invalid number, duration or byte size {text:?}")))
            }
            _ => Err(self.unexpected("expected a quoted string, a number, a duration, a byte size or ip(...)")),
        }
    }

    // ---- metric queries ----

    fn range(&mut self) -> Result<i64, ParseError> {
        self.expect(TokenKind::LeftBracket, "expected a range such as [5m]")?;
        let offset = self.offset();
        let range = self.duration("range")?;
        if range <= 0 {
            return Err(self.error_at(offset, "range must be positive"));
        }
        self.expect(TokenKind::RightBracket, "expected \"]\"")?;
        Ok(range)
    }

    fn binary_op(&self) -> Option<(BinaryOp, u8)> {
        Some(match self.peek() {
            TokenKind::Ident(name) if name == "or" => (BinaryOp::Or, 1),
            TokenKind::Ident(name) if name == "and" => (BinaryOp::And, 2),
            TokenKind::Ident(name) if name == "unless" => (BinaryOp::Unless, 2),
            TokenKind::EqualEqual => (BinaryOp::Equal, 3),
            TokenKind::NotEqual => (BinaryOp::NotEqual, 3),
            TokenKind::Greater => (BinaryOp::Greater, 3),
            TokenKind::GreaterEqual => (BinaryOp::GreaterEqual, 3),
            TokenKind::Less => (BinaryOp::Less, 3),
            TokenKind::LessEqual => (BinaryOp::LessEqual, 3),
            TokenKind::Plus => (BinaryOp::Add, 4),
            TokenKind::Minus => (BinaryOp::Sub, 4),
            TokenKind::Star => (BinaryOp::Mul, 5),
            TokenKind::Slash => (BinaryOp::Div, 5),
            TokenKind::Percent => (BinaryOp::Mod, 5),
            TokenKind::Caret => (BinaryOp::Pow, 6),
            _ => return None,
        })
    }

    fn binary(&mut self, min_precedence: u8) -> Result<MetricExpr, ParseError> {
        self.enter()?;
        let mut lhs = self.unary()?;
        while let Some((op, precedence)) = self.binary_op() {
            if precedence < min_precedence {
                break;
            }
            let op_offset = self.advance().offset;
            let mut return_bool = false;
            if self.is_ident("bool") {
                if !op.is_comparison() {
                    return Err(self.error_at(self.offset(), "bool modifier can only be used on comparison operators"));
                }
                self.advance();
                return_bool = true;
            }
            let mut matching = VectorMatching::default();
            if self.is_ident("on") || self.is_ident("ignoring") {
                let ignoring = self.is_ident("ignoring");
                self.advance();
                matching.on = Some((ignoring, self.label_list()?));
                if self.is_ident("group_left") || self.is_ident("group_right") {
                    let right = self.is_ident("group_right");
                    self.advance();
                    let labels = if self.peek() == &TokenKind::LeftParen { self.label_list()? } else { Vec::new() };
                    matching.group = Some((right, labels));
                }
            }
            let next_precedence = if op == BinaryOp::Pow { precedence } else { precedence + 1 };
            let rhs = self.binary(next_precedence)?;
            let both_scalar = is_scalar(&lhs) && is_scalar(&rhs);
            if op.is_set() && (is_scalar(&lhs) || is_scalar(&rhs)) {
                return Err(self.error_at(op_offset, "set operators are not allowed between scalars"));
            }
            if op.is_comparison() && both_scalar && !return_bool {
                return Err(self.error_at(op_offset, "comparisons between scalars must use the bool modifier"));
            }
            lhs = MetricExpr::Binary { op, return_bool, matching, lhs: Box::new(lhs), rhs: Box::new(rhs) };
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<MetricExpr, ParseError> {
        match self.peek() {
            TokenKind::Minus => {
                self.advance();
                self.enter()?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(match inner {
                    MetricExpr::Number(value) => MetricExpr::Number(-value),
                    other => MetricExpr::Binary {
                        op: BinaryOp::Mul,
                        return_bool: false,
                        matching: VectorMatching::default(),
                        lhs: Box::new(MetricExpr::Number(-1.0)),
                        rhs: Box::new(other),
                    },
                })
            }
            TokenKind::Plus => {
                self.advance();
                self.enter()?;
                let inner = self.unary();
                self.depth -= 1;
                inner
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<MetricExpr, ParseError> {
        let offset = self.offset();
        match self.peek().clone() {
            TokenKind::Number(text) => {
                self.advance();
                text.parse().map(MetricExpr::Number).map_err(|_| {
                    self.error_at(offset, format!("unexpected {text:?}, expected a number or a metric expression"))
                })
            }
            TokenKind::LeftParen => {
                self.advance();
                let inner = self.binary(0)?;
                self.expect(TokenKind::RightParen, "expected \")\"")?;
                Ok(inner)
            }
            TokenKind::LeftBrace => Err(self.error_at(
                offset,
                "unexpected log query where a metric expression is expected; wrap it in a range aggregation such as count_over_time({...}[5m])",
            )),
            TokenKind::Ident(name) => {
                if let Some(op) = RangeOp::from_name(&name) {
                    self.advance();
                    return self.range_aggregation(op, &name, offset);
                }
                if let Some(op) = VectorOp::from_name(&name) {
                    self.advance();
                    return self.vector_aggregation(op, &name);
                }
                match name.as_str() {
                    "vector" => {
                        self.advance();
                        self.expect(TokenKind::LeftParen, "expected \"(\"")?;
                        let value = self.number("expected a number")?;
                        self.expect(TokenKind::RightParen, "expected \")\"")?;
                        Ok(MetricExpr::Vector(value))
                    }
                    "label_replace" => {
                        self.advance();
                        self.label_replace()
                    }
                    _ if self.peek_at(1) == &TokenKind::LeftParen => {
                        Err(self.error_at(offset, format!("unknown function {name:?}")))
                    }
                    _ => Err(self.unexpected("expected a metric expression")),
                }
            }
            _ => Err(self.unexpected("expected a metric expression")),
        }
    }

    fn range_aggregation(&mut self, op: RangeOp, name: &str, name_offset: usize) -> Result<MetricExpr, ParseError> {
        self.expect(TokenKind::LeftParen, "expected \"(\"")?;
        let mut parameter = None;
        if op == RangeOp::QuantileOverTime {
            parameter = Some(self.number("expected the quantile as a number")?);
            self.expect(TokenKind::Comma, "expected \",\"")?;
        }
        let (log, unwrap, mut range) =
            if self.peek() == &TokenKind::LeftParen && self.peek_at(1) == &TokenKind::LeftBrace {
                self.advance();
                let inner = self.log_expr(true)?;
                self.expect(TokenKind::RightParen, "expected \")\"")?;
                inner
            } else {
                if self.peek() != &TokenKind::LeftBrace {
                    return Err(self.unexpected("expected a stream selector"));
                }
                self.log_expr(true)?
            };
        if range.is_none() {
            range = Some(self.range()?);
        }
        let mut offset_ns = 0;
        if self.is_ident("offset") {
            self.advance();
            offset_ns = self.duration("offset")?;
        }
        self.expect(TokenKind::RightParen, "expected \")\"")?;
        let grouping = if self.is_ident("by") || self.is_ident("without") {
            let grouping_offset = self.offset();
            let grouping = self.grouping()?;
            if unwrap.is_none() {
                return Err(self.error_at(grouping_offset, format!("grouping not allowed for {name} aggregation")));
            }
            Some(grouping)
        } else {
            None
        };
        if op.needs_unwrap() && unwrap.is_none() {
            return Err(self.error_at(name_offset, format!("invalid aggregation {name} without unwrap")));
        }
        if !op.needs_unwrap() && op != RangeOp::Rate && unwrap.is_some() {
            return Err(self.error_at(name_offset, format!("invalid aggregation {name} with unwrap")));
        }
        let range_ns = range.unwrap_or(0);
        Ok(MetricExpr::Range { op, parameter, log, unwrap, range_ns, offset_ns, grouping })
    }

    fn vector_aggregation(&mut self, op: VectorOp, name: &str) -> Result<MetricExpr, ParseError> {
        let mut grouping = None;
        if self.is_ident("by") || self.is_ident("without") {
            grouping = Some(self.grouping()?);
        }
        self.expect(TokenKind::LeftParen, "expected \"(\"")?;
        let mut parameter = None;
        if matches!(op, VectorOp::Topk | VectorOp::Bottomk) {
            let offset = self.offset();
            let k = self.number(&format!("expected the number of series of {name}"))?;
            if k < 1.0 || k.fract() != 0.0 {
                return Err(self.error_at(offset, format!("{name} needs a positive integer, got {k}")));
            }
            parameter = Some(k);
            self.expect(TokenKind::Comma, "expected \",\"")?;
        }
        let expr = self.binary(0)?;
        self.expect(TokenKind::RightParen, "expected \")\"")?;
        if grouping.is_none() && (self.is_ident("by") || self.is_ident("without")) {
            grouping = Some(self.grouping()?);
        }
        Ok(MetricExpr::Aggregate { op, parameter, grouping, expr: Box::new(expr) })
    }

    fn grouping(&mut self) -> Result<Grouping, ParseError> {
        let without = self.is_ident("without");
        self.advance();
        Ok(Grouping { without, labels: self.label_list()? })
    }

    fn label_list(&mut self) -> Result<Vec<String>, ParseError> {
        self.expect(TokenKind::LeftParen, "expected \"(\"")?;
        let mut labels = Vec::new();
        while self.peek() != &TokenKind::RightParen {
            let (label, _) = self.ident("expected a label name")?;
            labels.push(label);
            if self.peek() == &TokenKind::Comma {
                self.advance();
            } else if self.peek() != &TokenKind::RightParen {
                return Err(self.unexpected("expected \",\" or \")\""));
            }
        }
        self.advance();
        Ok(labels)
    }

    fn label_replace(&mut self) -> Result<MetricExpr, ParseError> {
        self.expect(TokenKind::LeftParen, "expected \"(\"")?;
        let expr = self.binary(0)?;
        let mut strings = Vec::new();
        for _ in 0..4 {
            self.expect(TokenKind::Comma, "expected \",\"")?;
            strings.push(self.string("expected a quoted string")?);
        }
        self.expect(TokenKind::RightParen, "expected \")\"")?;
        let (pattern, pattern_offset) = strings[3].clone();
        let regex = regex::Regex::new(&format!("^(?s:{pattern})$")).map_err(|error| {
            self.error_at(pattern_offset, format!("invalid regex {pattern:?}: {}", regex_message(&error)))
        })?;
        Ok(MetricExpr::LabelReplace {
            expr: Box::new(expr),
            destination: strings[0].0.clone(),
            replacement: strings[1].0.clone(),
            source: strings[2].0.clone(),
            regex,
        })
    }
}

fn is_scalar(expr: &MetricExpr) -> bool {
    match expr {
        MetricExpr::Number(_) => true,
        MetricExpr::Binary { lhs, rhs, .. } => is_scalar(lhs) && is_scalar(rhs),
        _ => false,
    }
}

/// `a.b[0]["c d"]` into steps.
fn parse_json_path(path: &str) -> Result<Vec<JsonPathStep>, String> {
    let mut steps = Vec::new();
    let characters: Vec<char> = path.chars().collect();
    let mut index = 0;
    while index < characters.len() {
        match characters[index] {
            '.' => index += 1,
            '[' => {
                index += 1;
                if characters.get(index) == Some(&'"') {
                    let start = index + 1;
                    let Some(length) = characters[start..].iter().position(|c| *c == '"') else {
                        return Err(format!("invalid json field {path:?}: unterminated quoted key"));
                    };
                    steps.push(JsonPathStep::Key(characters[start..start + length].iter().collect()));
                    index = start + length + 1;
                } else {
                    let start = index;
                    while index < characters.len() && characters[index].is_ascii_digit() {
                        index += 1;
                    }
                    let digits: String = characters[start..index].iter().collect();
                    let Ok(position) = digits.parse::<usize>() else {
                        return Err(format!("invalid json field {path:?}: expected an index"));
                    };
                    steps.push(JsonPathStep::Index(position));
                }
                if characters.get(index) != Some(&']') {
                    return Err(format!("invalid json field {path:?}: missing \"]\""));
                }
                index += 1;
            }
            _ => {
                let start = index;
                while index < characters.len() && characters[index] != '.' && characters[index] != '[' {
                    index += 1;
                }
                steps.push(JsonPathStep::Key(characters[start..index].iter().collect()));
            }
        }
    }
    if steps.is_empty() {
        return Err(format!("invalid json field {path:?}: empty"));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(query: &str) -> String {
        match parse(query) {
            Ok(expr) => panic!("{query:?} parsed: {expr:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn selector_and_pipeline() {
        let Ok(Expr::Log(log)) =
            parse(r#"{a="b", c!="d", e=~"x.*", f!~`y`} |= "x" or "y" != "z" | json | status >= 400"#)
        else {
            panic!("log query")
        };
        assert_eq!(log.matchers.len(), 4);
        assert_eq!(log.stages.len(), 4);
    }

    #[test]
    fn metric_precedence() {
        let Ok(Expr::Metric(MetricExpr::Binary { op, rhs, .. })) = parse(r#"sum(rate({a="b"}[1m])) + 2 * 3 ^ 2 ^ 1"#)
        else {
            panic!("binary")
        };
        assert_eq!(op, BinaryOp::Add);
        assert!(matches!(*rhs, MetricExpr::Binary { op: BinaryOp::Mul, .. }));
    }

    #[test]
    fn golden_errors() {
        assert_eq!(
            error(r#"{job="faro" | x"#),
            r#"parse error at line 1, col 13: unexpected "|", expected "," or "}""#
        );
        assert_eq!(
            error(r#"{job="a", |"#),
            r#"parse error at line 1, col 11: unexpected "|", expected a label matcher"#
        );
        assert_eq!(error(r#"foo({a="b"}[5m])"#), r#"parse error at line 1, col 1: unknown function "foo""#);
        assert_eq!(
            error(r#"sum_over_time({a="b"}[5m])"#),
            "parse error at line 1, col 1: invalid aggregation sum_over_time without unwrap"
        );
        assert_eq!(error(r#"count_over_time({a="b"}[5x])"#), r#"parse error at line 1, col 25: invalid duration "5x""#);
        assert_eq!(error("{a=\"b\"}\n |~ \"(\""), r#"parse error at line 2, col 5: invalid regex "(": unclosed group"#);
    }

    #[test]
    fn json_paths() {
        assert_eq!(
            parse_json_path(r#"a.b[0]["c d"]"#),
            Ok(vec![
                JsonPathStep::Key("a".into()),
                JsonPathStep::Key("b".into()),
                JsonPathStep::Index(0),
                JsonPathStep::Key("c d".into())
            ])
        );
        assert!(parse_json_path("a[x]").is_err());
        assert!(parse_json_path("").is_err());
    }
}
