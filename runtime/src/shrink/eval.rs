//! Scoring models on labelled data, and comparing two of them (`kiln eval
//! A B`): accuracy of each, how often they agree, how far their scores lie
//! apart.

use crate::data::{self, Table};
use crate::model::ModelFile;
use crate::train::argmax;

use super::ShrinkError;

/// Rows of a model's input with the class index of each.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledData {
    /// `labels.len() × input_len` values, row-major.
    pub rows: Vec<f32>,
    pub labels: Vec<usize>,
}

/// Extracts `model`'s inputs and class indices from `table`. Inputs are the
/// model's feature columns when the table has them all, otherwise every
/// column but `target`, in order; `target` (default: the model's) holds
/// values matching the model's labels.
pub fn labelled_data(
    model: &ModelFile,
    table: &Table,
    target: Option<&str>,
) -> Result<LabelledData, ShrinkError> {
    let graph = &model.graph;
    if graph.labels.is_empty() {
        return Err(ShrinkError::NoLabels);
    }
    let target = target
        .or(graph.target.as_deref())
        .ok_or_else(|| ShrinkError::Config("name the label column with --target".into()))?;
    let t = table.column(target)?;
    let width = model.input_len()?;
    let mut csv = Vec::new();
    csv.extend_from_slice(table.columns.join(",").as_bytes());
    csv.push(b'\n');
    for r in 0..table.rows() {
        let cells: Vec<String> = (0..table.columns.len())
            .map(|c| table.value(r, c).to_string())
            .collect();
        csv.extend_from_slice(cells.join(",").as_bytes());
        csv.push(b'\n');
    }
    let rows = data::read_rows(
        &csv,
        &table.path,
        width,
        &graph.input.features,
        Some(target),
    )?;
    let labels = (0..table.rows())
        .map(|r| {
            let v = table.value(r, t);
            graph
                .labels
                .iter()
                .position(|l| l.parse::<f32>().ok() == Some(v) || *l == v.to_string())
                .ok_or_else(|| ShrinkError::UnknownLabel {
                    path: table.path.clone(),
                    row: r + 1,
                    value: v,
                    labels: graph.labels.join(", "),
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(LabelledData { rows, labels })
}

/// One model's result on labelled data.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Score {
    pub accuracy: f64,
    pub correct: usize,
    pub rows: usize,
}

/// Two models on the same data.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Comparison {
    pub a: Score,
    pub b: Score,
    /// `b.accuracy − a.accuracy`, in percentage points.
    pub accuracy_delta_points: f64,
    /// Fraction of rows on which both predict the same class.
    pub agreement: f64,
    /// Largest `|score_a − score_b|` over all rows and outputs.
    pub max_abs_score_diff: f32,
}

/// Scores of `model` for every row, run natively by the kernel.
pub fn predict(model: &ModelFile, rows: &[f32]) -> Result<Vec<Vec<f32>>, ShrinkError> {
    let kernel = model.to_kernel()?;
    let out = kernel.predict(rows)?;
    Ok(out
        .chunks_exact(kernel.output_len())
        .map(<[f32]>::to_vec)
        .collect())
}

fn score(scores: &[Vec<f32>], labels: &[usize]) -> Score {
    let correct = scores
        .iter()
        .zip(labels)
        .filter(|(s, l)| argmax(s) == **l)
        .count();
    Score {
        accuracy: correct as f64 / labels.len().max(1) as f64,
        correct,
        rows: labels.len(),
    }
}

/// Accuracy of one model.
pub fn accuracy(model: &ModelFile, data: &LabelledData) -> Result<Score, ShrinkError> {
    Ok(score(&predict(model, &data.rows)?, &data.labels))
}

/// Compares `a` and `b` on `data` (which both must accept).
pub fn compare(
    a: &ModelFile,
    b: &ModelFile,
    data: &LabelledData,
) -> Result<Comparison, ShrinkError> {
    let (sa, sb) = (predict(a, &data.rows)?, predict(b, &data.rows)?);
    let agree = sa
        .iter()
        .zip(&sb)
        .filter(|(x, y)| argmax(x) == argmax(y))
        .count();
    let max_abs_score_diff = sa
        .iter()
        .zip(&sb)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0f32, f32::max);
    let (a, b) = (score(&sa, &data.labels), score(&sb, &data.labels));
    Ok(Comparison {
        accuracy_delta_points: (b.accuracy - a.accuracy) * 100.0,
        agreement: agree as f64 / data.labels.len().max(1) as f64,
        max_abs_score_diff,
        a,
        b,
    })
}
