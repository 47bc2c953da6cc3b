//! A numeric table read from CSV with a header line.

use std::path::{Path, PathBuf};

use super::DataError;

/// Named columns of finite `f32` values, stored row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub path: PathBuf,
    pub columns: Vec<String>,
    /// `rows × columns.len()` values.
    pub values: Vec<f32>,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.values.len() / self.columns.len().max(1)
    }

    pub fn value(&self, row: usize, column: usize) -> f32 {
        self.values[row * self.columns.len() + column]
    }

    /// The rows `rows` (indices, in that order) as a table of their own.
    pub fn select_rows(&self, rows: &[usize]) -> Table {
        Table {
            path: self.path.clone(),
            columns: self.columns.clone(),
            values: rows
                .iter()
                .flat_map(|&r| (0..self.columns.len()).map(move |c| (r, c)))
                .map(|(r, c)| self.value(r, c))
                .collect(),
        }
    }

    /// The index of the column called `name`.
    pub fn column(&self, name: &str) -> Result<usize, DataError> {
        self.columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| DataError::MissingColumn {
                path: self.path.clone(),
                column: name.into(),
                available: self.columns.join(", "),
            })
    }
}

/// Parses CSV with a header line; every cell must be a finite number.
pub fn parse_csv(bytes: &[u8], path: &Path) -> Result<Table, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let csv_err = |e: csv::Error| DataError::Csv {
        path: path.into(),
        line: e.position().map_or(0, |p| p.line()),
        message: e.to_string(),
    };
    let columns: Vec<String> = reader
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(str::to_string)
        .collect();
    if columns.is_empty() || columns.iter().all(String::is_empty) {
        return Err(DataError::Empty { path: path.into() });
    }
    let mut values = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != columns.len() {
            return Err(DataError::Ragged {
                path: path.into(),
                line,
                expected: columns.len(),
                found: record.len(),
            });
        }
        for (cell, column) in record.iter().zip(&columns) {
            let v: f32 = cell.parse().map_err(|_| DataError::NotNumeric {
                path: path.into(),
                line,
                column: column.clone(),
                value: cell.into(),
            })?;
            if !v.is_finite() {
                return Err(DataError::NotFinite {
                    path: path.into(),
                    line,
                    column: column.clone(),
                    value: cell.into(),
                });
            }
            values.push(v);
        }
    }
    if values.is_empty() {
        return Err(DataError::Empty { path: path.into() });
    }
    Ok(Table {
        path: path.into(),
        columns,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Table, DataError> {
        parse_csv(s.as_bytes(), Path::new("t.csv"))
    }

    #[test]
    fn reads_numbers() {
        let t = parse("a,b\n1,2\n3,4.5\n").unwrap();
        assert_eq!(t.columns, ["a", "b"]);
        assert_eq!(t.values, [1.0, 2.0, 3.0, 4.5]);
        assert_eq!(t.rows(), 2);
    }

    #[test]
    fn names_line_and_column() {
        let e = parse("a,b\n1,2\n3,x\n").unwrap_err().to_string();
        assert_eq!(e, "t.csv: line 3, column `b`: `x` is not a number");
        let e = parse("a,b\n1,2\n3\n").unwrap_err().to_string();
        assert_eq!(e, "t.csv: line 3: 1 columns, but the header has 2");
        let e = parse("a,b\n1,NaN\n").unwrap_err().to_string();
        assert_eq!(e, "t.csv: line 2, column `b`: NaN is not a finite number");
        assert!(matches!(parse(""), Err(DataError::Empty { .. })));
        assert!(matches!(parse("a,b\n"), Err(DataError::Empty { .. })));
    }
}
