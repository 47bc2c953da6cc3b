//! Tabular data: CSV files with a header, the built-in digits data set, and
//! the rows `kiln predict` reads.
//!
//! Every parser here is total: a bad file is a [`DataError`] naming the
//! file, line and column, never a panic and never a silently skipped row.

mod table;

pub use table::{Table, parse_csv};

use std::path::PathBuf;

/// The built-in data sets, by the name that follows `builtin:`.
pub const BUILTINS: [&str; 1] = ["digits"];

/// The 1,797 8×8 UCI handwritten digits as scikit-learn ships them
/// (see `runtime/data/README.md` for the attribution).
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");

/// Why data could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the file is empty; expected a header line and at least one row")]
    Empty { path: PathBuf },
    #[error("{path}: line {line}: {message}")]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{path}: line {line}: {found} columns, but the header has {expected}")]
    Ragged {
        path: PathBuf,
        line: u64,
        expected: usize,
        found: usize,
    },
    #[error("{path}: line {line}, column `{column}`: `{value}` is not a number")]
    NotNumeric {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
    },
    #[error("{path}: line {line}, column `{column}`: {value} is not a finite number")]
    NotFinite {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
    },
    #[error("{path}: no column `{column}` (columns: {available})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        available: String,
    },
    #[error("{path}: {message}")]
    Json { path: PathBuf, message: String },
    #[error("{path}: row {row} has {found} values, but the model takes {expected}")]
    RowWidth {
        path: PathBuf,
        row: usize,
        expected: usize,
        found: usize,
    },
    #[error("unknown built-in data set `{0}` (available: builtin:digits)")]
    UnknownBuiltin(String),
}

/// Loads `builtin:NAME` or a CSV file.
pub fn load_table(spec: &str) -> Result<Table, DataError> {
    if let Some(name) = spec.strip_prefix("builtin:") {
        return match name {
            "digits" => {
                let mut text = String::new();
                std::io::Read::read_to_string(
                    &mut flate2::read::GzDecoder::new(DIGITS_CSV_GZ),
                    &mut text,
                )
                .map_err(|source| DataError::Io {
                    path: spec.into(),
                    source,
                })?;
                parse_csv(text.as_bytes(), &PathBuf::from(spec))
            }
            other => Err(DataError::UnknownBuiltin(other.into())),
        };
    }
    let path = PathBuf::from(spec);
    let bytes = std::fs::read(&path).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    parse_csv(&bytes, &path)
}

/// Reads prediction input: a JSON array of rows (each an array of numbers),
/// or a CSV file. CSV columns are matched to the model's `features` by name
/// when the model has feature names; otherwise every column except `target`
/// is used, in order. `path` names the source in errors.
pub fn read_rows(
    bytes: &[u8],
    path: &std::path::Path,
    width: usize,
    features: &[String],
    target: Option<&str>,
) -> Result<Vec<f32>, DataError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let rows: Vec<Vec<f32>> = if first == Some(&b'[') {
        json_rows(bytes, path)?
    } else {
        let table = parse_csv(bytes, path)?;
        let columns: Vec<usize> = if !features.is_empty()
            && features
                .iter()
                .all(|f| table.columns.iter().any(|c| c == f))
        {
            features
                .iter()
                .map(|f| table.column(f))
                .collect::<Result<_, _>>()?
        } else {
            (0..table.columns.len())
                .filter(|&i| Some(table.columns[i].as_str()) != target)
                .collect()
        };
        (0..table.rows())
            .map(|r| columns.iter().map(|&c| table.value(r, c)).collect())
            .collect()
    };
    let mut flat = Vec::with_capacity(rows.len() * width);
    for (i, row) in rows.iter().enumerate() {
        if row.len() != width {
            return Err(DataError::RowWidth {
                path: path.into(),
                row: i + 1,
                expected: width,
                found: row.len(),
            });
        }
        flat.extend_from_slice(row);
    }
    Ok(flat)
}

fn json_rows(bytes: &[u8], path: &std::path::Path) -> Result<Vec<Vec<f32>>, DataError> {
    let err = |message: String| DataError::Json {
        path: path.into(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| err(format!("invalid JSON: {e}")))?;
    let rows = value
        .as_array()
        .ok_or_else(|| err("expected a JSON array of rows".into()))?;
    // A single flat row `[1, 2, 3]` is accepted as one row.
    let rows: Vec<&serde_json::Value> = if rows.iter().all(|v| v.is_number()) && !rows.is_empty() {
        vec![&value]
    } else {
        rows.iter().collect()
    };
    rows.iter()
        .enumerate()
        .map(|(r, row)| {
            let row = row
                .as_array()
                .ok_or_else(|| err(format!("row {} is not an array of numbers", r + 1)))?;
            row.iter()
                .enumerate()
                .map(|(c, v)| {
                    v.as_f64()
                        .map(|x| x as f32)
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| {
                            err(format!(
                                "row {}, value {}: `{v}` is not a finite number",
                                r + 1,
                                c + 1
                            ))
                        })
                })
                .collect()
        })
        .collect()
}
