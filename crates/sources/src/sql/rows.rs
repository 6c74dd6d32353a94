//! Rows of a SQL rule's result into alert samples, as the catalog says: one
//! row is one alert, every column but the value becomes a label, and the last
//! numeric column (`smallint`, `integer`, `bigint`, `real`, `double
//! precision`, `numeric`) is the value.
//!
//! Pure: the I/O edge ([`super::PostgresDatasource`]) decodes each cell into a
//! [`Cell`] and [`to_samples`] does the rest, so every case is tested
//! without a server. A NULL label cell leaves the label out (Prometheus treats
//! an empty label as absent); a NULL value, a column whose name is not a
//! label name, or a result without a numeric column is an error naming the
//! column.

use tsdb::Labels;

/// How a column's cells are read, from its PostgreSQL type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// `smallint`, `integer`, `bigint`, `oid`.
    Integer,
    /// `real`, `double precision`.
    Float,
    /// `numeric`.
    Numeric,
    /// `text`, `varchar`, `char(n)`, `name`, `uuid`.
    Text,
    Bool,
    /// `timestamptz`, `timestamp`, `date`: labels in RFC 3339.
    Time,
    /// Any other type, by its PostgreSQL name: an error if the query returns it.
    Unsupported(String),
}

impl ColumnKind {
    fn is_numeric(&self) -> bool {
        matches!(self, Self::Integer | Self::Float | Self::Numeric)
    }
}

/// One column of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
}

/// One decoded cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Integer(i64),
    Float(f64),
    /// A `numeric` as PostgreSQL prints it (exact; `NaN` included).
    Numeric(String),
    Text(String),
    Bool(bool),
    /// Already formatted as RFC 3339.
    Time(String),
}

/// A result that cannot become alerts; `column` names the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("the query returns no numeric column to use as the alert value (the last numeric column is the value)")]
    NoValueColumn,
    #[error(
        "column {column:?} is not a valid label name (letters, digits and _, not starting with a digit or __); name it with AS"
    )]
    InvalidLabelName { column: String },
    #[error("column {column:?} appears twice; give each column its own name with AS")]
    DuplicateColumn { column: String },
    #[error("column {column:?} has type {type_name}, which cannot become a label; cast it to text")]
    UnsupportedType { column: String, type_name: String },
    #[error("row {row}: the value column {column:?} is NULL")]
    NullValue { row: usize, column: String },
    #[error("row {row}: the value column {column:?} holds {value:?}, which is not a number")]
    InvalidValue { row: usize, column: String, value: String },
}

/// The index of the value column: the last numeric one.
pub fn value_column(columns: &[Column]) -> Result<usize, RowError> {
    columns.iter().rposition(|column| column.kind.is_numeric()).ok_or(RowError::NoValueColumn)
}

/// Checks the columns once per result: label names, duplicates, types.
pub fn check_columns(columns: &[Column]) -> Result<usize, RowError> {
    let value = value_column(columns)?;
    for (index, column) in columns.iter().enumerate() {
        if !is_label_name(&column.name) {
            return Err(RowError::InvalidLabelName { column: column.name.clone() });
        }
        if columns[..index].iter().any(|earlier| earlier.name == column.name) {
            return Err(RowError::DuplicateColumn { column: column.name.clone() });
        }
        if let ColumnKind::Unsupported(type_name) = &column.kind {
            return Err(RowError::UnsupportedType { column: column.name.clone(), type_name: type_name.clone() });
        }
    }
    Ok(value)
}

/// Checks that every column has a type that can be read, before any row is decoded.
pub fn check_types(columns: &[Column]) -> Result<(), RowError> {
    for column in columns {
        if let ColumnKind::Unsupported(type_name) = &column.kind {
            return Err(RowError::UnsupportedType { column: column.name.clone(), type_name: type_name.clone() });
        }
    }
    Ok(())
}

/// The rows of a triage check as JSON objects by column name: integers and
/// floats as numbers (a `numeric` too, when it is finite), text and times as
/// strings, booleans, NULL as null. Column names must be distinct.
pub fn to_rows(
    columns: &[Column],
    rows: &[Vec<Cell>],
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, RowError> {
    use serde_json::Value;
    for (index, column) in columns.iter().enumerate() {
        if columns[..index].iter().any(|earlier| earlier.name == column.name) {
            return Err(RowError::DuplicateColumn { column: column.name.clone() });
        }
    }
    let number = |value: f64| {
        serde_json::Number::from_f64(value).map_or_else(|| Value::String(format_float(value)), Value::Number)
    };
    Ok(rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .zip(row)
                .map(|(column, cell)| {
                    let value = match cell {
                        Cell::Null => Value::Null,
                        Cell::Integer(value) => Value::from(*value),
                        Cell::Float(value) => number(*value),
                        Cell::Numeric(text) => match parse_numeric(text) {
                            Some(parsed) if parsed.is_finite() => number(parsed),
                            _ => Value::String(text.clone()),
                        },
                        Cell::Text(text) | Cell::Time(text) => Value::String(text.clone()),
                        Cell::Bool(flag) => Value::Bool(*flag),
                    };
                    (column.name.clone(), value)
                })
                .collect()
        })
        .collect())
}

/// The samples of `rows`, one per row, in row order.
pub fn to_samples(columns: &[Column], rows: &[Vec<Cell>]) -> Result<Vec<(Labels, f64)>, RowError> {
    let value_index = check_columns(columns)?;
    let mut samples = Vec::with_capacity(rows.len());
    for (row_number, row) in rows.iter().enumerate() {
        debug_assert_eq!(row.len(), columns.len());
        let row_number = row_number + 1;
        let value_column = &columns[value_index].name;
        let value = match &row[value_index] {
            Cell::Null => return Err(RowError::NullValue { row: row_number, column: value_column.clone() }),
            Cell::Integer(value) => *value as f64,
            Cell::Float(value) => *value,
            Cell::Numeric(text) => parse_numeric(text).ok_or_else(|| RowError::InvalidValue {
                row: row_number,
                column: value_column.clone(),
                value: text.clone(),
            })?,
            other => {
                return Err(RowError::InvalidValue {
                    row: row_number,
                    column: value_column.clone(),
                    value: label_value(other).unwrap_or_default(),
                });
            }
        };
        let pairs = columns
            .iter()
            .zip(row)
            .enumerate()
            .filter(|(index, _)| *index != value_index)
            .filter_map(|(_, (column, cell))| label_value(cell).map(|value| (column.name.as_str(), value)))
            .filter(|(_, value)| !value.is_empty());
        samples.push((Labels::from_pairs(pairs), value));
    }
    Ok(samples)
}

/// A `numeric` as PostgreSQL prints it: digits, `NaN`, `Infinity` (PostgreSQL 14+).
fn parse_numeric(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

/// The label text of a cell; `None` for NULL.
fn label_value(cell: &Cell) -> Option<String> {
    match cell {
        Cell::Null => None,
        Cell::Integer(value) => Some(value.to_string()),
        // Go's strconv.FormatFloat(v, 'f', -1, 64), as Prometheus prints sample values in labels.
        Cell::Float(value) => Some(format_float(*value)),
        Cell::Numeric(text) | Cell::Text(text) | Cell::Time(text) => Some(text.clone()),
        Cell::Bool(value) => Some(value.to_string()),
    }
}

fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf".to_owned() } else { "-Inf".to_owned() }
    } else {
        value.to_string()
    }
}

/// Prometheus's label name rule, `__`-prefixed names being reserved.
fn is_label_name(name: &str) -> bool {
    let mut characters = name.chars();
    let Some(first) = characters.next() else { return false };
    (first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
        && !name.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, kind: ColumnKind) -> Column {
        Column { name: name.to_owned(), kind }
    }

    #[test]
    fn triage_rows_keep_every_column_as_a_json_value() {
        let columns = vec![
            column("jobname", ColumnKind::Text),
            column("pending", ColumnKind::Integer),
            column("share", ColumnKind::Numeric),
            column("active", ColumnKind::Bool),
            column("ended", ColumnKind::Time),
            column("note", ColumnKind::Text),
        ];
        let rows = vec![vec![
            Cell::Text("refresh_stats".into()),
            Cell::Integer(3),
            Cell::Numeric("0.25".into()),
            Cell::Bool(false),
            Cell::Time("2026-12-01T10:00:00Z".into()),
            Cell::Null,
        ]];
        let converted = to_rows(&columns, &rows).expect("rows");
        assert_eq!(
            serde_json::Value::Object(converted[0].clone()),
            serde_json::json!({"jobname": "refresh_stats", "pending": 3, "share": 0.25, "active": false,
                               "ended": "2026-12-01T10:00:00Z", "note": null})
        );
        let duplicate = vec![column("a", ColumnKind::Text), column("a", ColumnKind::Text)];
        assert_eq!(to_rows(&duplicate, &[]), Err(RowError::DuplicateColumn { column: "a".into() }));
        assert!(check_types(&[column("x", ColumnKind::Unsupported("jsonb".into()))]).is_err());
    }

    #[test]
    fn columns_become_labels_and_the_last_numeric_one_the_value() {
        let columns = vec![
            column("jobname", ColumnKind::Text),
            column("jobid", ColumnKind::Integer),
            column("active", ColumnKind::Bool),
            column("last_start", ColumnKind::Time),
            column("failed_runs", ColumnKind::Integer),
            column("note", ColumnKind::Text),
        ];
        let rows = vec![
            vec![
                Cell::Text("tenant_scrub_eu".into()),
                Cell::Integer(7),
                Cell::Bool(true),
                Cell::Time("2026-12-02T12:00:00Z".into()),
                Cell::Integer(2),
                Cell::Null,
            ],
            vec![
                Cell::Text("refresh_daily".into()),
                Cell::Integer(8),
                Cell::Bool(false),
                Cell::Null,
                Cell::Integer(3),
                Cell::Text(String::new()),
            ],
        ];
        let samples = to_samples(&columns, &rows).expect("samples");
        assert_eq!(
            samples,
            vec![
                (
                    Labels::from_pairs([
                        ("jobname", "tenant_scrub_eu"),
                        ("jobid", "7"),
                        ("active", "true"),
                        ("last_start", "2026-12-02T12:00:00Z")
                    ]),
                    2.0
                ),
                (Labels::from_pairs([("jobname", "refresh_daily"), ("jobid", "8"), ("active", "false")]), 3.0),
            ]
        );
    }

    #[test]
    fn numeric_and_float_values() {
        let columns = vec![column("ratio", ColumnKind::Float), column("amount", ColumnKind::Numeric)];
        let rows = vec![
            vec![Cell::Float(0.25), Cell::Numeric("12.500".into())],
            vec![Cell::Float(f64::NAN), Cell::Numeric("NaN".into())],
        ];
        let samples = to_samples(&columns, &rows).expect("samples");
        assert_eq!(samples[0], (Labels::from_pairs([("ratio", "0.25")]), 12.5));
        assert_eq!(samples[1].0, Labels::from_pairs([("ratio", "NaN")]));
        assert!(samples[1].1.is_nan());
    }

    #[test]
    fn an_empty_result_is_no_alert() {
        let columns = vec![column("jobname", ColumnKind::Text), column("failed_runs", ColumnKind::Integer)];
        assert_eq!(to_samples(&columns, &[]), Ok(Vec::new()));
    }

    #[test]
    fn rows_that_cannot_become_alerts_name_the_column() {
        let text_only = vec![column("jobname", ColumnKind::Text)];
        assert_eq!(to_samples(&text_only, &[]), Err(RowError::NoValueColumn));

        let unnamed = vec![column("?column?", ColumnKind::Text), column("n", ColumnKind::Integer)];
        let error = to_samples(&unnamed, &[]).expect_err("unnamed");
        assert!(error.to_string().contains("\"?column?\""), "{error}");

        let reserved = vec![column("__name__", ColumnKind::Text), column("n", ColumnKind::Integer)];
        assert!(matches!(to_samples(&reserved, &[]), Err(RowError::InvalidLabelName { .. })));

        let twice = vec![column("n", ColumnKind::Text), column("n", ColumnKind::Integer)];
        assert_eq!(to_samples(&twice, &[]), Err(RowError::DuplicateColumn { column: "n".into() }));

        let json = vec![column("payload", ColumnKind::Unsupported("JSONB".into())), column("n", ColumnKind::Integer)];
        let error = to_samples(&json, &[]).expect_err("jsonb");
        assert_eq!(
            error.to_string(),
            "column \"payload\" has type JSONB, which cannot become a label; cast it to text"
        );

        let value = vec![column("jobname", ColumnKind::Text), column("failed_runs", ColumnKind::Integer)];
        let rows = vec![vec![Cell::Text("a".into()), Cell::Integer(1)], vec![Cell::Text("b".into()), Cell::Null]];
        assert_eq!(
            to_samples(&value, &rows).expect_err("null").to_string(),
            "row 2: the value column \"failed_runs\" is NULL"
        );
    }
}
