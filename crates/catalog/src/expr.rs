//! The small expression language of triage predicates and computed facts.
//!
//! A check's result gets a name; predicates (`when:`) and computed facts
//! (`compute:`) are expressions over those names, the alert (`labels`, `value`)
//! and the catalog's contracts (`contracts.<name>.<field>`):
//!
//! ```text
//! top_tenant_share >= 0.8 and count(tenants) > 0
//! floor(stateful_worker.replicas * contracts.scaling-ceiling.factor)
//! not in_subnet(labels.ServiceAddr, contracts.traefik-network.spec.subnet)
//! ```
//!
//! Key types: [`Expr`] (the tree), [`parse`] (text to tree, errors with a byte
//! offset), [`Expr::free_paths`] (for validation) and [`Expr::evaluate`] (over
//! JSON values). Identifiers may contain `-` between letters (`metrics-budgets`),
//! so subtraction needs spaces around the minus. The language has no loops and
//! no side effects; evaluation cannot fail to terminate.

use std::fmt;

use serde_json::Value;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(f64),
    String(String),
    Bool(bool),
    /// A name, possibly followed by `.field` accesses: `contracts.slo.quantile`.
    Path(Vec<String>),
    Call {
        function: String,
        arguments: Vec<Expr>,
        offset: usize,
    },
    Field {
        base: Box<Expr>,
        field: String,
    },
    Unary {
        operator: UnaryOperator,
        operand: Box<Expr>,
    },
    Binary {
        operator: BinaryOperator,
        left: Box<Expr>,
        right: Box<Expr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOperator {
    Not,
    Negate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOperator {
    Or,
    And,
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Add,
    Subtract,
    Multiply,
    Divide,
}

/// A parse or evaluation error; `offset` is a byte offset into the expression text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

/// The built-in functions and their accepted argument counts.
pub const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("floor", 1, 1),
    ("ceil", 1, 1),
    ("round", 1, 1),
    ("abs", 1, 1),
    ("min", 1, usize::MAX),
    ("max", 1, usize::MAX),
    ("count", 1, 1),
    ("distinct", 1, 1),
    ("sum", 1, 1),
    ("contains", 2, 2),
    ("starts_with", 2, 2),
    ("differs", 2, 2),
    ("in_subnet", 2, 2),
    ("duration_seconds", 1, 1),
    ("get", 2, 2),
    ("values", 2, 2),
    ("keys", 1, 1),
    ("split", 2, 2),
    ("where", 3, 3),
    ("matches", 2, 2),
];

/// Parses an expression.
pub fn parse(text: &str) -> Result<Expr, ExprError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, position: 0, end: text.len() };
    let expr = parser.or()?;
    match parser.peek() {
        None => Ok(expr),
        Some(token) => Err(ExprError { offset: token.offset, message: format!("unexpected {}", token.kind) }),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    Number(f64),
    String(String),
    Ident(String),
    Symbol(&'static str),
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKind::Number(number) => write!(f, "number {number}"),
            TokenKind::String(string) => write!(f, "string {string:?}"),
            TokenKind::Ident(name) => write!(f, "`{name}`"),
            TokenKind::Symbol(symbol) => write!(f, "`{symbol}`"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    offset: usize,
}

const SYMBOLS: &[&str] = &["==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "(", ")", ",", ".", "[", "]"];

fn tokenize(text: &str) -> Result<Vec<Token>, ExprError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte.is_ascii_whitespace() {
            index += 1;
            continue;
        }
        let start = index;
        if byte.is_ascii_digit() {
            while index < bytes.len() && (bytes[index].is_ascii_digit() || bytes[index] == b'.' || bytes[index] == b'_')
            {
                index += 1;
            }
            let literal: String = text[start..index].chars().filter(|c| *c != '_').collect();
            let number = literal
                .parse::<f64>()
                .map_err(|_| ExprError { offset: start, message: format!("invalid number {literal:?}") })?;
            tokens.push(Token { kind: TokenKind::Number(number), offset: start });
        } else if byte == b'"' || byte == b'\'' {
            index += 1;
            let mut value = String::new();
            loop {
                match text[index..].chars().next() {
                    None => {
                        return Err(ExprError { offset: start, message: "unterminated string".into() });
                    }
                    Some(c) if c as u32 == u32::from(byte) => {
                        index += 1;
                        break;
                    }
                    Some('\\') => {
                        let escaped = text[index + 1..]
                            .chars()
                            .next()
                            .ok_or(ExprError { offset: index, message: "unterminated escape".into() })?;
                        value.push(escaped);
                        index += 1 + escaped.len_utf8();
                    }
                    Some(c) => {
                        value.push(c);
                        index += c.len_utf8();
                    }
                }
            }
            tokens.push(Token { kind: TokenKind::String(value), offset: start });
        } else if byte.is_ascii_alphabetic() || byte == b'_' {
            while index < bytes.len() {
                let current = bytes[index];
                let hyphen_inside_word = current == b'-'
                    && index + 1 < bytes.len()
                    && bytes[index + 1].is_ascii_alphabetic()
                    && bytes[index - 1].is_ascii_alphanumeric();
                if current.is_ascii_alphanumeric() || current == b'_' || hyphen_inside_word {
                    index += 1;
                } else {
                    break;
                }
            }
            tokens.push(Token { kind: TokenKind::Ident(text[start..index].to_owned()), offset: start });
        } else {
            let symbol =
                SYMBOLS.iter().find(|symbol| text[index..].starts_with(**symbol)).ok_or_else(|| ExprError {
                    offset: start,
                    message: format!("unexpected character {:?}", text[index..].chars().next().unwrap_or(' ')),
                })?;
            index += symbol.len();
            tokens.push(Token { kind: TokenKind::Symbol(symbol), offset: start });
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn is_symbol(&self, symbol: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: TokenKind::Symbol(s), .. }) if *s == symbol)
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: TokenKind::Ident(name), .. }) if name == keyword)
    }

    fn offset(&self) -> usize {
        self.peek().map_or(self.end, |token| token.offset)
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), ExprError> {
        if self.is_symbol(symbol) {
            self.position += 1;
            return Ok(());
        }
        let found = self.peek().map_or("end of expression".to_owned(), |token| token.kind.to_string());
        Err(ExprError { offset: self.offset(), message: format!("expected `{symbol}`, found {found}") })
    }

    fn binary(left: Expr, operator: BinaryOperator, right: Expr) -> Expr {
        Expr::Binary { operator, left: Box::new(left), right: Box::new(right) }
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.and()?;
        while self.is_keyword("or") {
            self.position += 1;
            let right = self.and()?;
            left = Self::binary(left, BinaryOperator::Or, right);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.not()?;
        while self.is_keyword("and") {
            self.position += 1;
            let right = self.not()?;
            left = Self::binary(left, BinaryOperator::And, right);
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.is_keyword("not") {
            self.position += 1;
            let operand = self.not()?;
            return Ok(Expr::Unary { operator: UnaryOperator::Not, operand: Box::new(operand) });
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        let left = self.sum()?;
        let operator = match self.peek() {
            Some(Token { kind: TokenKind::Symbol(symbol), .. }) => match *symbol {
                "==" => BinaryOperator::Equal,
                "!=" => BinaryOperator::NotEqual,
                "<" => BinaryOperator::Less,
                "<=" => BinaryOperator::LessOrEqual,
                ">" => BinaryOperator::Greater,
                ">=" => BinaryOperator::GreaterOrEqual,
                _ => return Ok(left),
            },
            _ => return Ok(left),
        };
        self.position += 1;
        let right = self.sum()?;
        Ok(Self::binary(left, operator, right))
    }

    fn sum(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.product()?;
        loop {
            let operator = if self.is_symbol("+") {
                BinaryOperator::Add
            } else if self.is_symbol("-") {
                BinaryOperator::Subtract
            } else {
                return Ok(left);
            };
            self.position += 1;
            let right = self.product()?;
            left = Self::binary(left, operator, right);
        }
    }

    fn product(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.unary()?;
        loop {
            let operator = if self.is_symbol("*") {
                BinaryOperator::Multiply
            } else if self.is_symbol("/") {
                BinaryOperator::Divide
            } else {
                return Ok(left);
            };
            self.position += 1;
            let right = self.unary()?;
            left = Self::binary(left, operator, right);
        }
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.is_symbol("-") {
            self.position += 1;
            let operand = self.unary()?;
            return Ok(Expr::Unary { operator: UnaryOperator::Negate, operand: Box::new(operand) });
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, ExprError> {
        let mut expr = self.primary()?;
        while self.is_symbol(".") {
            self.position += 1;
            let field = self.identifier()?;
            expr = match expr {
                Expr::Path(mut segments) => {
                    segments.push(field);
                    Expr::Path(segments)
                }
                other => Expr::Field { base: Box::new(other), field },
            };
        }
        Ok(expr)
    }

    fn identifier(&mut self) -> Result<String, ExprError> {
        match self.peek().cloned() {
            Some(Token { kind: TokenKind::Ident(name), .. }) => {
                self.position += 1;
                Ok(name)
            }
            Some(token) => {
                Err(ExprError { offset: token.offset, message: format!("expected a name, found {}", token.kind) })
            }
            None => Err(ExprError { offset: self.end, message: "expected a name, found end of expression".into() }),
        }
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let Some(token) = self.peek().cloned() else {
            return Err(ExprError { offset: self.end, message: "unexpected end of expression".into() });
        };
        self.position += 1;
        match token.kind {
            TokenKind::Number(number) => Ok(Expr::Number(number)),
            TokenKind::String(string) => Ok(Expr::String(string)),
            TokenKind::Ident(name) if name == "true" => Ok(Expr::Bool(true)),
            TokenKind::Ident(name) if name == "false" => Ok(Expr::Bool(false)),
            TokenKind::Ident(name) if matches!(name.as_str(), "and" | "or" | "not") => {
                Err(ExprError { offset: token.offset, message: format!("unexpected keyword `{name}`") })
            }
            TokenKind::Ident(name) if self.is_symbol("(") => {
                self.position += 1;
                let mut arguments = Vec::new();
                if !self.is_symbol(")") {
                    loop {
                        arguments.push(self.or()?);
                        if self.is_symbol(",") {
                            self.position += 1;
                        } else {
                            break;
                        }
                    }
                }
                self.expect_symbol(")")?;
                let Some((_, min, max)) = FUNCTIONS.iter().find(|(function, _, _)| *function == name) else {
                    return Err(ExprError { offset: token.offset, message: format!("unknown function `{name}`") });
                };
                if arguments.len() < *min || arguments.len() > *max {
                    return Err(ExprError {
                        offset: token.offset,
                        message: format!("function `{name}` takes {min} argument(s), got {}", arguments.len()),
                    });
                }
                Ok(Expr::Call { function: name, arguments, offset: token.offset })
            }
            TokenKind::Ident(name) => Ok(Expr::Path(vec![name])),
            TokenKind::Symbol("(") => {
                let inner = self.or()?;
                self.expect_symbol(")")?;
                Ok(inner)
            }
            other => Err(ExprError { offset: token.offset, message: format!("unexpected {other}") }),
        }
    }
}

impl Expr {
    /// Every name path the expression reads (`contracts.slo.quantile`, `top_share`).
    pub fn free_paths(&self) -> Vec<Vec<String>> {
        let mut paths = Vec::new();
        self.collect_paths(&mut paths);
        paths
    }

    fn collect_paths(&self, paths: &mut Vec<Vec<String>>) {
        match self {
            Expr::Path(segments) => paths.push(segments.clone()),
            Expr::Call { arguments, .. } => arguments.iter().for_each(|argument| argument.collect_paths(paths)),
            Expr::Field { base, .. } => base.collect_paths(paths),
            Expr::Unary { operand, .. } => operand.collect_paths(paths),
            Expr::Binary { left, right, .. } => {
                left.collect_paths(paths);
                right.collect_paths(paths);
            }
            Expr::Number(_) | Expr::String(_) | Expr::Bool(_) => {}
        }
    }

    /// Evaluates the expression; `lookup` resolves a name path to a value.
    pub fn evaluate(&self, lookup: &dyn Fn(&[String]) -> Option<Value>) -> Result<Value, ExprError> {
        let error = |message: String| ExprError { offset: 0, message };
        match self {
            Expr::Number(number) => Ok(number_value(*number)),
            Expr::String(string) => Ok(Value::String(string.clone())),
            Expr::Bool(flag) => Ok(Value::Bool(*flag)),
            Expr::Path(segments) => {
                lookup(segments).ok_or_else(|| error(format!("unknown name `{}`", segments.join("."))))
            }
            Expr::Field { base, field } => {
                let value = base.evaluate(lookup)?;
                value.get(field).cloned().ok_or_else(|| error(format!("no field `{field}`")))
            }
            Expr::Unary { operator: UnaryOperator::Not, operand } => {
                Ok(Value::Bool(!truthy(&operand.evaluate(lookup)?)))
            }
            Expr::Unary { operator: UnaryOperator::Negate, operand } => {
                Ok(number_value(-as_number(&operand.evaluate(lookup)?)?))
            }
            Expr::Binary { operator, left, right } => {
                let left = left.evaluate(lookup)?;
                match operator {
                    BinaryOperator::And if !truthy(&left) => return Ok(Value::Bool(false)),
                    BinaryOperator::Or if truthy(&left) => return Ok(Value::Bool(true)),
                    _ => {}
                }
                let right = right.evaluate(lookup)?;
                binary(*operator, &left, &right)
            }
            Expr::Call { function, arguments, .. } => {
                let values =
                    arguments.iter().map(|argument| argument.evaluate(lookup)).collect::<Result<Vec<_>, _>>()?;
                call(function, &values)
            }
        }
    }
}

fn number_value(number: f64) -> Value {
    serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(string) => !string.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

fn as_number(value: &Value) -> Result<f64, ExprError> {
    match value {
        Value::Number(number) => number.as_f64().ok_or_else(|| ExprError { offset: 0, message: "not a number".into() }),
        Value::String(string) => {
            string.parse().map_err(|_| ExprError { offset: 0, message: format!("{string:?} is not a number") })
        }
        Value::Bool(flag) => Ok(f64::from(u8::from(*flag))),
        other => Err(ExprError { offset: 0, message: format!("{other} is not a number") }),
    }
}

fn binary(operator: BinaryOperator, left: &Value, right: &Value) -> Result<Value, ExprError> {
    use BinaryOperator::*;
    let compare = |left: &Value, right: &Value| -> Result<std::cmp::Ordering, ExprError> {
        match (left, right) {
            (Value::String(a), Value::String(b)) => Ok(a.cmp(b)),
            _ => as_number(left)?
                .partial_cmp(&as_number(right)?)
                .ok_or_else(|| ExprError { offset: 0, message: "cannot compare NaN".into() }),
        }
    };
    Ok(match operator {
        Or | And => Value::Bool(truthy(right)),
        Equal => Value::Bool(left == right || compare(left, right).is_ok_and(|order| order.is_eq())),
        NotEqual => Value::Bool(!(left == right || compare(left, right).is_ok_and(|order| order.is_eq()))),
        Less => Value::Bool(compare(left, right)?.is_lt()),
        LessOrEqual => Value::Bool(compare(left, right)?.is_le()),
        Greater => Value::Bool(compare(left, right)?.is_gt()),
        GreaterOrEqual => Value::Bool(compare(left, right)?.is_ge()),
        Add => number_value(as_number(left)? + as_number(right)?),
        Subtract => number_value(as_number(left)? - as_number(right)?),
        Multiply => number_value(as_number(left)? * as_number(right)?),
        Divide => number_value(as_number(left)? / as_number(right)?),
    })
}

fn call(function: &str, values: &[Value]) -> Result<Value, ExprError> {
    let error = |message: String| ExprError { offset: 0, message };
    let items = |value: &Value| -> Vec<Value> {
        match value {
            Value::Array(items) => items.clone(),
            Value::Object(map) => map.values().cloned().collect(),
            Value::Null => Vec::new(),
            other => vec![other.clone()],
        }
    };
    Ok(match function {
        "floor" => number_value(as_number(&values[0])?.floor()),
        "ceil" => number_value(as_number(&values[0])?.ceil()),
        "round" => number_value(as_number(&values[0])?.round()),
        "abs" => number_value(as_number(&values[0])?.abs()),
        // Nulls (a SQL NULL, an absent value) are skipped, as SQL's aggregates
        // skip them; the extreme of nothing is null.
        "min" | "max" => {
            let numbers: Vec<f64> = if values.len() == 1 {
                items(&values[0]).iter().filter(|item| !item.is_null()).map(as_number).collect::<Result<_, _>>()?
            } else {
                values.iter().filter(|item| !item.is_null()).map(as_number).collect::<Result<_, _>>()?
            };
            let folded = if function == "min" {
                numbers.into_iter().fold(f64::INFINITY, f64::min)
            } else {
                numbers.into_iter().fold(f64::NEG_INFINITY, f64::max)
            };
            number_value(folded)
        }
        "count" => number_value(items(&values[0]).len() as f64),
        "distinct" => {
            let mut rendered: Vec<String> = items(&values[0]).iter().map(Value::to_string).collect();
            rendered.sort();
            rendered.dedup();
            number_value(rendered.len() as f64)
        }
        "sum" => number_value(
            items(&values[0]).iter().filter(|item| !item.is_null()).map(as_number).sum::<Result<f64, _>>()?,
        ),
        "contains" => Value::Bool(match &values[0] {
            Value::String(haystack) => haystack.contains(values[1].as_str().unwrap_or_default()),
            Value::Object(map) => values[1].as_str().is_some_and(|key| map.contains_key(key)),
            other => items(other).contains(&values[1]),
        }),
        "starts_with" => Value::Bool(
            values[0].as_str().zip(values[1].as_str()).is_some_and(|(text, prefix)| text.starts_with(prefix)),
        ),
        "differs" => {
            // Keys of the expected map (second argument) whose actual value differs.
            let (Value::Object(actual), Value::Object(expected)) = (&values[0], &values[1]) else {
                return Err(error("differs() compares two maps".into()));
            };
            let differing: Vec<Value> = expected
                .iter()
                .filter(|(key, value)| actual.get(*key) != Some(value))
                .map(|(key, _)| Value::String(key.clone()))
                .collect();
            Value::Array(differing)
        }
        "in_subnet" => {
            let address = values[0].as_str().ok_or_else(|| error("in_subnet() needs an address string".into()))?;
            let subnet = values[1].as_str().ok_or_else(|| error("in_subnet() needs a subnet string".into()))?;
            Value::Bool(in_subnet(address, subnet).map_err(error)?)
        }
        "duration_seconds" => {
            let text = values[0].as_str().ok_or_else(|| error("duration_seconds() needs a string".into()))?;
            number_value(crate::duration::parse_duration(text).map_err(error)?.as_secs_f64())
        }
        // The value of a map under a computed key (`get(contracts.acme.spec.certificates, labels.cn)`); null when absent.
        "get" => {
            let key = match &values[1] {
                Value::String(key) => key.clone(),
                other => other.to_string(),
            };
            values[0].get(&key).cloned().unwrap_or(Value::Null)
        }
        // From each item of a list (rows, series, tasks), the value at a dotted
        // path (`values(series, "labels.pii_match_rule")`); items without it, or
        // with null there, are skipped. A single row binds as one object, not a
        // list: when the path starts at the object itself, it is the one item.
        "values" => {
            let path = values[1].as_str().ok_or_else(|| error("values() needs a path string".into()))?;
            let at = |item: &Value| path.split('.').try_fold(item, |node, key| node.get(key)).cloned();
            let first_key = path.split('.').next().unwrap_or_default();
            let list = match &values[0] {
                Value::Object(map) if map.contains_key(first_key) => vec![values[0].clone()],
                other => items(other),
            };
            Value::Array(list.iter().filter_map(at).filter(|value| !value.is_null()).collect())
        }
        // The keys of a map, as a list of strings: a `sum by (label)` result binds
        // as a map keyed by the label's value (`keys(matches_by_rule)` lists the
        // `pii_match_rule` values); a list or scalar has none.
        "keys" => Value::Array(match &values[0] {
            Value::Object(map) => map.keys().cloned().map(Value::String).collect(),
            _ => Vec::new(),
        }),
        // A string split on a separator; a list of strings is split item by item
        // and flattened (`split(["email,iban", "email"], ",")` is three strings).
        "split" => {
            let separator = values[1].as_str().ok_or_else(|| error("split() needs a separator string".into()))?;
            let parts = items(&values[0])
                .iter()
                .flat_map(|item| match item {
                    Value::String(text) => {
                        text.split(separator).map(|part| Value::String(part.trim().to_owned())).collect()
                    }
                    other => vec![other.clone()],
                })
                .filter(|part| part.as_str() != Some(""))
                .collect();
            Value::Array(parts)
        }
        // The items of a list whose value at a dotted path equals a value (`where(tasks, "state", "failed")`).
        "where" => {
            let path = values[1].as_str().ok_or_else(|| error("where() needs a path string".into()))?;
            Value::Array(
                items(&values[0])
                    .into_iter()
                    .filter(|item| path.split('.').try_fold(item, |node, key| node.get(key)) == Some(&values[2]))
                    .collect(),
            )
        }
        // Whether a string, or any string among a list's or map's values, matches a
        // regex (`matches(exporter_env, "(?i)postgres(ql)?://")` scans env values).
        "matches" => {
            let pattern = values[1].as_str().ok_or_else(|| error("matches() needs a regex string".into()))?;
            let regex = regex::Regex::new(pattern).map_err(|problem| error(format!("matches(): {problem}")))?;
            let texts = match &values[0] {
                Value::String(text) => vec![text.clone()],
                other => items(other).iter().filter_map(|item| item.as_str().map(str::to_owned)).collect(),
            };
            Value::Bool(texts.iter().any(|text| regex.is_match(text)))
        }
        other => return Err(error(format!("unknown function `{other}`"))),
    })
}

/// Whether an address lies in a CIDR subnet (IPv4 or IPv6). The address may
/// carry a port as backends are written in access logs: `10.0.1.7:8080`
/// (Traefik's `ServiceAddr`), `[fd00::7]:8080`, or be bare (`10.0.1.7`, `fd00::7`).
pub fn in_subnet(address: &str, subnet: &str) -> Result<bool, String> {
    let (network, prefix) = subnet.split_once('/').ok_or_else(|| format!("{subnet:?} is not a CIDR subnet"))?;
    let prefix: u32 = prefix.parse().map_err(|_| format!("{subnet:?} has an invalid prefix length"))?;
    let address = host_address(address)?;
    let network: std::net::IpAddr = network.parse().map_err(|_| format!("{subnet:?} is not a CIDR subnet"))?;
    match (address, network) {
        (std::net::IpAddr::V4(address), std::net::IpAddr::V4(network)) if prefix <= 32 => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
            Ok(u32::from(address) & mask == u32::from(network) & mask)
        }
        (std::net::IpAddr::V6(address), std::net::IpAddr::V6(network)) if prefix <= 128 => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
            Ok(u128::from(address) & mask == u128::from(network) & mask)
        }
        _ => Ok(false),
    }
}

/// The IP address of `IP`, `IP:port`, `[IPv6]` or `[IPv6]:port`.
fn host_address(text: &str) -> Result<std::net::IpAddr, String> {
    let invalid = || format!("{text:?} is not an IP address (or IP:port, [IPv6]:port)");
    if let Ok(address) = text.parse::<std::net::IpAddr>() {
        return Ok(address);
    }
    if let Ok(socket) = text.parse::<std::net::SocketAddr>() {
        return Ok(socket.ip());
    }
    let bracketed = text.strip_prefix('[').and_then(|rest| rest.strip_suffix(']'));
    bracketed.and_then(|inner| inner.parse::<std::net::Ipv6Addr>().ok()).map(std::net::IpAddr::V6).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(text: &str, lookup: &dyn Fn(&[String]) -> Option<Value>) -> Value {
        parse(text).expect("parses").evaluate(lookup).expect("evaluates")
    }

    #[test]
    fn precedence_and_paths() {
        let lookup = |path: &[String]| match path.join(".").as_str() {
            "contracts.scaling-ceiling.factor" => Some(Value::from(1.5)),
            "replicas" => Some(Value::from(5)),
            _ => None,
        };
        assert_eq!(eval("floor(replicas * contracts.scaling-ceiling.factor)", &lookup), Value::from(7.0));
        assert_eq!(eval("replicas - 1 > 3 and not false", &lookup), Value::Bool(true));
        assert_eq!(eval("1 + 2 * 3", &lookup), Value::from(7.0));
    }

    #[test]
    fn values_of_one_row_zero_rows_and_nulls() {
        let lookup = |path: &[String]| match path.join(".").as_str() {
            // One SQL row binds as an object by column name.
            "one" => Some(serde_json::json!({"queryid": "42", "slowdown": 10.8})),
            "none" => Some(serde_json::json!([])),
            "some" => Some(serde_json::json!([{"slowdown": 1.5}, {"slowdown": null}, {"slowdown": 3}])),
            // A vector bound as a map of series to values is not a row.
            "series" => Some(serde_json::json!({"email": 3, "iban": 2})),
            _ => None,
        };
        assert_eq!(eval(r#"max(values(one, "slowdown"))"#, &lookup), Value::from(10.8));
        assert_eq!(eval(r#"count(values(none, "slowdown"))"#, &lookup), Value::from(0.0));
        assert_eq!(eval(r#"max(values(none, "slowdown"))"#, &lookup), Value::Null);
        assert_eq!(eval(r#"max(values(some, "slowdown"))"#, &lookup), Value::from(3.0));
        assert_eq!(eval(r#"count(values(some, "slowdown"))"#, &lookup), Value::from(2.0));
        assert_eq!(eval(r#"sum(values(some, "slowdown"))"#, &lookup), Value::from(4.5));
        assert_eq!(eval("max(series)", &lookup), Value::from(3.0));
    }

    #[test]
    fn subnet_membership() {
        assert_eq!(in_subnet("10.0.1.17", "10.0.1.0/24"), Ok(true));
        assert_eq!(in_subnet("10.0.2.17", "10.0.1.0/24"), Ok(false));
        assert!(in_subnet("nonsense", "10.0.1.0/24").is_err());
    }

    #[test]
    fn subnet_membership_of_host_and_port() {
        // Traefik's ServiceAddr is IP:port; IPv6 backends are bracketed.
        assert_eq!(in_subnet("10.0.1.17:8080", "10.0.1.0/24"), Ok(true));
        assert_eq!(in_subnet("10.0.10.5:8080", "10.0.1.0/24"), Ok(false));
        assert_eq!(in_subnet("[fd00:1::7]:8080", "fd00:1::/64"), Ok(true));
        assert_eq!(in_subnet("[fd00:2::7]:8080", "fd00:1::/64"), Ok(false));
        assert_eq!(in_subnet("[fd00:1::7]", "fd00:1::/64"), Ok(true));
        assert_eq!(in_subnet("[fd00:1::7]:8080", "10.0.1.0/24"), Ok(false));
        assert!(in_subnet("10.0.1.17:", "10.0.1.0/24").is_err());
        assert!(in_subnet("10.0.1.17:http", "10.0.1.0/24").is_err());
        assert!(in_subnet("fd00:1::7:8080:", "fd00:1::/64").is_err());
        let lookup = |path: &[String]| match path.join(".").as_str() {
            "labels.ServiceAddr" => Some(Value::from("10.0.3.7:8080")),
            "subnet" => Some(Value::from("10.0.1.0/24")),
            _ => None,
        };
        assert_eq!(eval("not in_subnet(labels.ServiceAddr, subnet)", &lookup), Value::Bool(true));
    }

    #[test]
    fn errors_carry_offsets() {
        let error = parse("value >= ").unwrap_err();
        assert_eq!(error.offset, 9);
        let error = parse("floor(1, 2)").unwrap_err();
        assert_eq!(error.offset, 0);
        assert!(error.message.contains("takes 1"));
        let error = parse("value >> 3").unwrap_err();
        assert_eq!(error.offset, 7);
    }

    #[test]
    fn distinct_rules_of_comma_joined_matches() {
        // Lines tagged "email,iban" matched two rules, not one rule set.
        let lookup = |path: &[String]| match path[0].as_str() {
            "matches" => Some(serde_json::json!([
                {"labels": {"pii_match_rule": "email,iban"}, "value": 4},
                {"labels": {"pii_match_rule": "email"}, "value": 2},
            ])),
            "one" => Some(serde_json::json!([{"labels": {"pii_match_rule": "email"}, "value": 6}])),
            _ => None,
        };
        assert_eq!(eval("count(matches)", &lookup), Value::from(2.0));
        assert_eq!(
            eval("distinct(split(values(matches, \"labels.pii_match_rule\"), \",\"))", &lookup),
            Value::from(2.0)
        );
        assert_eq!(eval("distinct(split(values(one, \"labels.pii_match_rule\"), \",\"))", &lookup), Value::from(1.0));
    }

    #[test]
    fn keys_list_a_by_label_map() {
        let lookup = |path: &[String]| match path[0].as_str() {
            "by_rule" => Some(serde_json::json!({"email,iban": 2, "email": 3})),
            "list" => Some(serde_json::json!(["email"])),
            _ => None,
        };
        assert_eq!(eval("keys(by_rule)", &lookup), serde_json::json!(["email", "email,iban"]));
        assert_eq!(eval("distinct(split(keys(by_rule), \",\"))", &lookup), Value::from(2.0));
        assert_eq!(eval("count(keys(list))", &lookup), Value::from(0.0));
    }

    #[test]
    fn get_and_where_read_computed_keys_and_filter_items() {
        let lookup = |path: &[String]| match path[0].as_str() {
            "acme" => Some(serde_json::json!({"studio.busflow.app": "letsencrypt-dns"})).filter(|_| path.len() == 2),
            "cn" => Some(Value::from("studio.busflow.app")),
            "tasks" => Some(serde_json::json!([{"state": "failed"}, {"state": "running"}, {"state": "failed"}])),
            _ => None,
        };
        assert_eq!(eval("get(acme.certificates, cn)", &lookup), Value::from("letsencrypt-dns"));
        assert_eq!(eval("get(acme.certificates, \"other\")", &lookup), Value::Null);
        assert_eq!(eval("count(where(tasks, \"state\", \"failed\"))", &lookup), Value::from(2.0));
    }

    #[test]
    fn matches_scans_values_for_connection_strings() {
        let lookup = |path: &[String]| match path[0].as_str() {
            "env" => Some(
                serde_json::json!({"PG_EXPORTER_EXTEND_QUERY_PATH": "/etc/q.yaml", "EXTRA": "postgresql://exporter:s3cret@db:5432/postgres"}),
            ),
            "clean" => Some(serde_json::json!({"DATA_SOURCE_NAME_FILE": "/run/secrets/pgexporter_dsn"})),
            _ => None,
        };
        assert_eq!(eval("matches(env, \"(?i)postgres(ql)?://\")", &lookup), Value::Bool(true));
        assert_eq!(eval("matches(clean, \"(?i)postgres(ql)?://\")", &lookup), Value::Bool(false));
        assert!(parse("matches(env, \"(\")").expect("parses").evaluate(&lookup).is_err());
    }

    #[test]
    fn differs_lists_drifted_keys() {
        let lookup = |path: &[String]| match path[0].as_str() {
            "actual" => Some(serde_json::json!({"A": "1", "B": "2"})),
            "expected" => Some(serde_json::json!({"A": "1", "B": "3", "C": "4"})),
            _ => None,
        };
        assert_eq!(eval("differs(actual, expected)", &lookup), serde_json::json!(["B", "C"]));
    }
}
