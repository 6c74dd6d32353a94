//! The Go text/template subset of `| line_format` and `| label_format`.
//!
//! alertbook evaluates templates itself rather than through `gotmpl`: a
//! template runs once per log line, so it is compiled once into a small tree
//! whose data is the entry's labels, read by name with no conversion. Supported:
//! text, `{{.label}}` (a missing label is `""`), `{{ __line__ }}`,
//! `{{ __timestamp__ }}` (RFC 3339), string and number literals, pipes
//! (`{{ .a | ToUpper }}`), calls (`{{ printf "%s-%d" .a 5 }}`), parentheses,
//! `{{if}}`/`{{else if}}`/`{{else}}`/`{{end}}`, `{{- -}}` trimming and
//! comments, with Loki's common functions (see [`call`]). Not supported:
//! `range`, `with`, variables and `define`: they fail at parse time with a
//! clear message.

/// Nesting depth of parentheses and `{{if}}` beyond which a template is refused.
const MAX_DEPTH: usize = 64;

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If { branches: Vec<(Pipeline, Vec<Node>)>, otherwise: Vec<Node> },
}

type Pipeline = Vec<Command>;

#[derive(Debug, Clone)]
struct Command {
    operands: Vec<Operand>,
}

#[derive(Debug, Clone)]
enum Operand {
    Field(String),
    Dot,
    Line,
    Timestamp,
    Literal(Value),
    Function(String),
    Nested(Pipeline),
}

/// A value inside a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Number(f64),
    Bool(bool),
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Text(text) => !text.is_empty(),
            Value::Number(number) => *number != 0.0,
            Value::Bool(value) => *value,
        }
    }

    fn render(&self) -> String {
        match self {
            Value::Text(text) => text.clone(),
            Value::Number(number) => format_number(*number),
            Value::Bool(value) => value.to_string(),
        }
    }

    fn number(&self) -> f64 {
        match self {
            Value::Text(text) => text.trim().parse().unwrap_or(0.0),
            Value::Number(number) => *number,
            Value::Bool(value) => f64::from(u8::from(*value)),
        }
    }
}

fn format_number(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 { format!("{}", number as i64) } else { number.to_string() }
}

/// What a template reads while it runs.
pub struct Data<'a> {
    pub label: &'a dyn Fn(&str) -> Option<String>,
    pub line: &'a str,
    pub timestamp_ns: i64,
}

const FUNCTIONS: &[&str] = &[
    "ToUpper",
    "ToLower",
    "upper",
    "lower",
    "title",
    "TrimSpace",
    "trim",
    "trimAll",
    "trimLeft",
    "trimRight",
    "trimPrefix",
    "trimSuffix",
    "replace",
    "default",
    "printf",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "trunc",
    "substr",
    "regexReplaceAll",
    "len",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "not",
    "and",
    "or",
    "add",
    "sub",
    "mul",
    "div",
];

impl Template {
    /// Compiles a template; the error says what is wrong in it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let pieces = split(text)?;
        let mut position = 0;
        let (nodes, terminator) = parse_nodes(&pieces, &mut position, 0)?;
        if let Some(terminator) = terminator {
            return Err(format!("unexpected {{{{{terminator}}}}}"));
        }
        Ok(Template { nodes })
    }

    /// Whether the template is plain text.
    pub fn is_constant(&self) -> bool {
        self.nodes.iter().all(|node| matches!(node, Node::Text(_)))
    }

    pub fn render(&self, data: &Data<'_>) -> Result<String, String> {
        let mut output = String::new();
        render_nodes(&self.nodes, data, &mut output)?;
        Ok(output)
    }
}

enum Piece {
    Text(String),
    Action(String),
}

fn split(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut trim_next_text = false;
    while let Some(open) = rest.find("{{") {
        let mut before = rest[..open].to_string();
        if trim_next_text {
            before = before.trim_start().to_string();
        }
        let after_open = &rest[open + 2..];
        let Some(close) = after_open.find("}}") else {
            return Err("unclosed action: missing \"}}\"".to_string());
        };
        let mut inner = &after_open[..close];
        if let Some(stripped) = inner.strip_prefix("- ") {
            before = before.trim_end().to_string();
            inner = stripped;
        } else if inner == "-" {
            before = before.trim_end().to_string();
            inner = "";
        }
        trim_next_text = false;
        if let Some(stripped) = inner.strip_suffix(" -") {
            trim_next_text = true;
            inner = stripped;
        }
        if !before.is_empty() {
            pieces.push(Piece::Text(before));
        }
        let inner = inner.trim();
        if !(inner.starts_with("/*") && inner.ends_with("*/")) {
            pieces.push(Piece::Action(inner.to_string()));
        }
        rest = &after_open[close + 2..];
    }
    let tail = if trim_next_text { rest.trim_start() } else { rest };
    if !tail.is_empty() {
        pieces.push(Piece::Text(tail.to_string()));
    }
    Ok(pieces)
}

/// Parses nodes until `{{else}}`/`{{end}}`, returned as the terminator.
fn parse_nodes(pieces: &[Piece], position: &mut usize, depth: usize) -> Result<(Vec<Node>, Option<String>), String> {
    if depth > MAX_DEPTH {
        return Err("template is nested too deeply".to_string());
    }
    let mut nodes = Vec::new();
    while *position < pieces.len() {
        let piece = &pieces[*position];
        *position += 1;
        match piece {
            Piece::Text(text) => nodes.push(Node::Text(text.clone())),
            Piece::Action(action) => {
                let keyword = action.split_whitespace().next().unwrap_or("");
                match keyword {
                    "end" | "else" => return Ok((nodes, Some(action.clone()))),
                    "if" => nodes.push(parse_if(action["if".len()..].trim(), pieces, position, depth)?),
                    "range" | "with" | "define" | "template" | "block" | "break" | "continue" => {
                        return Err(format!("{keyword:?} actions are not supported"));
                    }
                    "" => return Err("empty action".to_string()),
                    _ => nodes.push(Node::Action(parse_pipeline(action)?)),
                }
            }
        }
    }
    Ok((nodes, None))
}

fn parse_if(condition: &str, pieces: &[Piece], position: &mut usize, depth: usize) -> Result<Node, String> {
    let mut branches = Vec::new();
    let mut condition = parse_pipeline(condition)?;
    loop {
        let (body, terminator) = parse_nodes(pieces, position, depth + 1)?;
        branches.push((condition, body));
        let Some(terminator) = terminator else { return Err("unclosed {{if}}: missing {{end}}".to_string()) };
        if terminator == "end" {
            return Ok(Node::If { branches, otherwise: Vec::new() });
        }
        let rest = terminator["else".len()..].trim();
        if let Some(next) = rest.strip_prefix("if ") {
            condition = parse_pipeline(next.trim())?;
            continue;
        }
        if !rest.is_empty() {
            return Err(format!("unexpected {{{{{terminator}}}}}"));
        }
        let (otherwise, terminator) = parse_nodes(pieces, position, depth + 1)?;
        if terminator.as_deref() != Some("end") {
            return Err("unclosed {{else}}: missing {{end}}".to_string());
        }
        return Ok(Node::If { branches, otherwise });
    }
}

#[derive(Debug, PartialEq)]
enum Word {
    Token(String),
    Literal(Value),
    Pipe,
    Open,
    Close,
}

fn words(text: &str) -> Result<Vec<Word>, String> {
    let mut words = Vec::new();
    let characters: Vec<char> = text.chars().collect();
    let mut index = 0;
    while index < characters.len() {
        let character = characters[index];
        match character {
            c if c.is_whitespace() => index += 1,
            '|' => {
                words.push(Word::Pipe);
                index += 1;
            }
            '(' => {
                words.push(Word::Open);
                index += 1;
            }
            ')' => {
                words.push(Word::Close);
                index += 1;
            }
            '"' => {
                let mut value = String::new();
                index += 1;
                loop {
                    let Some(&c) = characters.get(index) else { return Err("unterminated string".to_string()) };
                    index += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let Some(&escaped) = characters.get(index) else {
                                return Err("unterminated string".to_string());
                            };
                            index += 1;
                            value.push(match escaped {
                                'n' => '\n',
                                't' => '\t',
                                other => other,
                            });
                        }
                        other => value.push(other),
                    }
                }
                words.push(Word::Literal(Value::Text(value)));
            }
            '`' => {
                let start = index + 1;
                let Some(length) = characters[start..].iter().position(|c| *c == '`') else {
                    return Err("unterminated raw string".to_string());
                };
                words.push(Word::Literal(Value::Text(characters[start..start + length].iter().collect())));
                index = start + length + 1;
            }
            _ => {
                let start = index;
                while index < characters.len()
                    && !characters[index].is_whitespace()
                    && !"|()\"`".contains(characters[index])
                {
                    index += 1;
                }
                let word: String = characters[start..index].iter().collect();
                if word.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
                    let number: f64 = word.parse().map_err(|_| format!("invalid number {word:?}"))?;
                    words.push(Word::Literal(Value::Number(number)));
                } else if word == "true" || word == "false" {
                    words.push(Word::Literal(Value::Bool(word == "true")));
                } else {
                    words.push(Word::Token(word));
                }
            }
        }
    }
    Ok(words)
}

fn parse_pipeline(text: &str) -> Result<Pipeline, String> {
    let words = words(text)?;
    let mut position = 0;
    let pipeline = pipeline_from(&words, &mut position, 0)?;
    if position != words.len() {
        return Err("unexpected \")\" in action".to_string());
    }
    Ok(pipeline)
}

fn pipeline_from(words: &[Word], position: &mut usize, depth: usize) -> Result<Pipeline, String> {
    if depth > MAX_DEPTH {
        return Err("template is nested too deeply".to_string());
    }
    let mut commands = Vec::new();
    let mut operands = Vec::new();
    while *position < words.len() {
        let word = &words[*position];
        *position += 1;
        match word {
            Word::Pipe => {
                if operands.is_empty() {
                    return Err("missing command before \"|\"".to_string());
                }
                commands.push(Command { operands: std::mem::take(&mut operands) });
            }
            Word::Open => {
                let nested = pipeline_from(words, position, depth + 1)?;
                if words.get(*position) != Some(&Word::Close) {
                    return Err("unclosed \"(\" in action".to_string());
                }
                *position += 1;
                operands.push(Operand::Nested(nested));
            }
            Word::Close => {
                *position -= 1;
                break;
            }
            Word::Literal(value) => operands.push(Operand::Literal(value.clone())),
            Word::Token(token) => operands.push(if token == "." {
                Operand::Dot
            } else if let Some(field) = token.strip_prefix('.') {
                if field.is_empty() || field.contains('.') {
                    return Err(format!("unsupported field {token:?}"));
                }
                Operand::Field(field.to_string())
            } else if token == "__line__" {
                Operand::Line
            } else if token == "__timestamp__" {
                Operand::Timestamp
            } else if FUNCTIONS.contains(&token.as_str()) {
                Operand::Function(token.clone())
            } else if token.starts_with('$') {
                return Err("template variables are not supported".to_string());
            } else {
                return Err(format!("function {token:?} not defined"));
            }),
        }
    }
    if operands.is_empty() {
        return Err("missing value in action".to_string());
    }
    commands.push(Command { operands });
    for (index, command) in commands.iter().enumerate() {
        let starts_with_function = matches!(command.operands.first(), Some(Operand::Function(_)));
        if index > 0 && !starts_with_function {
            return Err("can only pipe into a function".to_string());
        }
        if !starts_with_function && command.operands.len() > 1 {
            return Err("can't give arguments to a non-function".to_string());
        }
    }
    Ok(commands)
}

fn render_nodes(nodes: &[Node], data: &Data<'_>, output: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(text) => output.push_str(text),
            Node::Action(pipeline) => output.push_str(&run(pipeline, data)?.render()),
            Node::If { branches, otherwise } => {
                let mut taken = false;
                for (condition, body) in branches {
                    if run(condition, data)?.truthy() {
                        render_nodes(body, data, output)?;
                        taken = true;
                        break;
                    }
                }
                if !taken {
                    render_nodes(otherwise, data, output)?;
                }
            }
        }
    }
    Ok(())
}

fn run(pipeline: &Pipeline, data: &Data<'_>) -> Result<Value, String> {
    let mut piped: Option<Value> = None;
    for command in pipeline {
        let mut operands = command.operands.iter();
        let Some(first) = operands.next() else { return Err("empty command".to_string()) };
        let value = match first {
            Operand::Function(name) => {
                let mut arguments = Vec::new();
                for operand in operands {
                    arguments.push(evaluate(operand, data)?);
                }
                if let Some(value) = piped.take() {
                    arguments.push(value);
                }
                call(name, &arguments)?
            }
            other => evaluate(other, data)?,
        };
        piped = Some(value);
    }
    piped.ok_or_else(|| "empty pipeline".to_string())
}

fn evaluate(operand: &Operand, data: &Data<'_>) -> Result<Value, String> {
    Ok(match operand {
        Operand::Field(name) => Value::Text((data.label)(name).unwrap_or_default()),
        Operand::Dot => Value::Text(String::new()),
        Operand::Line => Value::Text(data.line.to_string()),
        Operand::Timestamp => Value::Text(format_rfc3339(data.timestamp_ns)),
        Operand::Literal(value) => value.clone(),
        Operand::Function(name) => call(name, &[])?,
        Operand::Nested(pipeline) => run(pipeline, data)?,
    })
}

/// Loki's template functions that alertbook supports.
fn call(name: &str, arguments: &[Value]) -> Result<Value, String> {
    let text = |index: usize| arguments.get(index).map(Value::render).unwrap_or_default();
    let count = |expected: usize| -> Result<(), String> {
        if arguments.len() == expected {
            Ok(())
        } else {
            Err(format!("wrong number of args for {name}: want {expected} got {}", arguments.len()))
        }
    };
    let number = |index: usize| arguments.get(index).map(Value::number).unwrap_or(0.0);
    Ok(match name {
        "ToUpper" | "upper" => {
            count(1)?;
            Value::Text(text(0).to_uppercase())
        }
        "ToLower" | "lower" => {
            count(1)?;
            Value::Text(text(0).to_lowercase())
        }
        "title" => {
            count(1)?;
            let mut output = String::new();
            let mut start = true;
            for character in text(0).chars() {
                if start {
                    output.extend(character.to_uppercase());
                } else {
                    output.push(character);
                }
                start = character.is_whitespace();
            }
            Value::Text(output)
        }
        "TrimSpace" | "trim" => {
            count(1)?;
            Value::Text(text(0).trim().to_string())
        }
        "trimAll" | "trimLeft" | "trimRight" => {
            count(2)?;
            let cutset: Vec<char> = text(0).chars().collect();
            let value = text(1);
            let trimmed = match name {
                "trimAll" => value.trim_matches(cutset.as_slice()),
                "trimLeft" => value.trim_start_matches(cutset.as_slice()),
                _ => value.trim_end_matches(cutset.as_slice()),
            };
            Value::Text(trimmed.to_string())
        }
        "trimPrefix" => {
            count(2)?;
            let value = text(1);
            Value::Text(value.strip_prefix(text(0).as_str()).unwrap_or(&value).to_string())
        }
        "trimSuffix" => {
            count(2)?;
            let value = text(1);
            Value::Text(value.strip_suffix(text(0).as_str()).unwrap_or(&value).to_string())
        }
        "replace" => {
            count(3)?;
            Value::Text(text(2).replace(&text(0), &text(1)))
        }
        "default" => {
            count(2)?;
            let value = &arguments[1];
            if value.truthy() { value.clone() } else { arguments[0].clone() }
        }
        "contains" => {
            count(2)?;
            Value::Bool(text(1).contains(&text(0)))
        }
        "hasPrefix" => {
            count(2)?;
            Value::Bool(text(0).starts_with(&text(1)))
        }
        "hasSuffix" => {
            count(2)?;
            Value::Bool(text(0).ends_with(&text(1)))
        }
        "trunc" => {
            count(2)?;
            let length = number(0) as i64;
            let characters: Vec<char> = text(1).chars().collect();
            let kept = length.unsigned_abs().min(characters.len() as u64) as usize;
            let slice = if length >= 0 { &characters[..kept] } else { &characters[characters.len() - kept..] };
            Value::Text(slice.iter().collect())
        }
        "substr" => {
            count(3)?;
            let characters: Vec<char> = text(2).chars().collect();
            let start = (number(0).max(0.0) as usize).min(characters.len());
            let end = if number(1) < 0.0 { characters.len() } else { (number(1) as usize).min(characters.len()) };
            Value::Text(if start < end { characters[start..end].iter().collect() } else { String::new() })
        }
        "regexReplaceAll" => {
            count(3)?;
            let regex = regex::Regex::new(&text(0)).map_err(|error| format!("invalid regex: {error}"))?;
            Value::Text(regex.replace_all(&text(1), text(2).as_str()).into_owned())
        }
        "len" => {
            count(1)?;
            Value::Number(text(0).chars().count() as f64)
        }
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
            count(2)?;
            let ordering = match (&arguments[0], &arguments[1]) {
                (Value::Text(left), Value::Text(right)) => left.partial_cmp(right),
                (left, right) => left.number().partial_cmp(&right.number()),
            };
            let result = match name {
                "eq" => ordering == Some(std::cmp::Ordering::Equal),
                "ne" => ordering != Some(std::cmp::Ordering::Equal),
                "lt" => ordering == Some(std::cmp::Ordering::Less),
                "le" => matches!(ordering, Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)),
                "gt" => ordering == Some(std::cmp::Ordering::Greater),
                _ => matches!(ordering, Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)),
            };
            Value::Bool(result)
        }
        "not" => {
            count(1)?;
            Value::Bool(!arguments[0].truthy())
        }
        "and" | "or" => {
            if arguments.is_empty() {
                return Err(format!("wrong number of args for {name}"));
            }
            let pick = arguments.iter().find(|value| if name == "and" { !value.truthy() } else { value.truthy() });
            pick.or(arguments.last()).cloned().unwrap_or(Value::Bool(false))
        }
        "add" | "sub" | "mul" | "div" => {
            count(2)?;
            let (left, right) = (number(0), number(1));
            Value::Number(match name {
                "add" => left + right,
                "sub" => left - right,
                "mul" => left * right,
                _ => left / right,
            })
        }
        "printf" => {
            if arguments.is_empty() {
                return Err("wrong number of args for printf".to_string());
            }
            Value::Text(printf(&text(0), &arguments[1..]))
        }
        _ => return Err(format!("function {name:?} not defined")),
    })
}

/// Go's `fmt.Sprintf` for `%s %v %d %f %.Nf %q %x %%`.
fn printf(format: &str, arguments: &[Value]) -> String {
    let mut output = String::new();
    let mut arguments = arguments.iter();
    let mut characters = format.chars().peekable();
    while let Some(character) = characters.next() {
        if character != '%' {
            output.push(character);
            continue;
        }
        let mut precision: Option<usize> = None;
        if characters.peek() == Some(&'.') {
            characters.next();
            let mut digits = String::new();
            while let Some(digit) = characters.peek().filter(|c| c.is_ascii_digit()) {
                digits.push(*digit);
                characters.next();
            }
            precision = digits.parse::<usize>().ok().map(|precision| precision.min(64));
        }
        let Some(verb) = characters.next() else {
            output.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            output.push('%');
            continue;
        }
        let Some(argument) = arguments.next() else {
            output.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        match verb {
            'd' => output.push_str(&format!("{}", argument.number() as i64)),
            'f' => output.push_str(&format!("{:.*}", precision.unwrap_or(6), argument.number())),
            'q' => output.push_str(&format!("{:?}", argument.render())),
            'x' => output.push_str(&format!("{:x}", argument.number() as i64)),
            _ => output.push_str(&argument.render()),
        }
    }
    output
}

/// `2006-01-02T15:04:05.999999999Z` for a Unix timestamp in nanoseconds.
pub fn format_rfc3339(timestamp_ns: i64) -> String {
    let seconds = timestamp_ns.div_euclid(1_000_000_000);
    let nanoseconds = timestamp_ns.rem_euclid(1_000_000_000);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    );
    if nanoseconds != 0 {
        let fraction = format!("{nanoseconds:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, labels: &[(&str, &str)]) -> String {
        let lookup = |name: &str| labels.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string());
        let data = Data { label: &lookup, line: "the line", timestamp_ns: 1_500_000_000 };
        Template::parse(template).expect("parses").render(&data).expect("renders")
    }

    #[test]
    fn fields_pipes_and_functions() {
        let labels = [("a", "x"), ("b", "Mixed"), ("n", "5")];
        assert_eq!(render("{{.a}} {{ .b | ToUpper }} {{.missing}}!", &labels), "x MIXED !");
        assert_eq!(render(r#"{{ printf "%s-%d-%.1f" .a .n 2.25 }}"#, &labels), "x-5-2.2");
        assert_eq!(render(r#"{{ .missing | default "none" }}"#, &labels), "none");
        assert_eq!(render(r#"{{ ToLower (printf "%s%s" .a .b) }}"#, &labels), "xmixed");
        assert_eq!(render("{{if .a}}yes{{else}}no{{end}} {{if .zz}}a{{else if .b}}b{{end}}", &labels), "yes b");
        assert_eq!(render("{{ __line__ }} @ {{ __timestamp__ }}", &labels), "the line @ 1970-01-01T00:00:01.5Z");
        assert_eq!(render("a  {{- .a -}}  b{{/* note */}}", &labels), "axb");
        assert_eq!(render(r#"{{ .b | replace "M" "m" | trimPrefix "m" }}"#, &labels), "ixed");
    }

    #[test]
    fn errors_are_messages() {
        assert!(Template::parse("{{.a").is_err());
        assert!(Template::parse("{{ nope .a }}").is_err());
        assert!(Template::parse("{{ range .a }}{{end}}").is_err());
        assert!(Template::parse("{{if .a}}x").is_err());
        assert!(Template::parse("{{end}}").is_err());
        assert!(Template::parse("{{ .a | .b }}").is_err());
        assert!(Template::parse("{{ }}").is_err());
        assert!(Template::parse("{{ (.a }}").is_err());
        assert!(Template::parse(&format!("{{{{ {}.a{} }}}}", "(".repeat(10_000), ")".repeat(10_000))).is_err());
        assert!(Template::parse(&"{{if .a}}".repeat(10_000)).is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_795_651_200_000_000_000), "2026-11-26T00:00:00Z");
    }
}
