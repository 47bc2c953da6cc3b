//! Scoring a model on labelled rows: accuracy and a confusion matrix for
//! classifiers, MSE and R² for regression. Shared by `kiln eval` and the
//! held-out report at the end of `kiln train`.
//!
//! Scores come from the kernel ([`ModelFile::to_kernel`]), the arithmetic
//! every module runs, so the numbers are the ones users will see. One call
//! scores one model, so comparing models on the same data is one call each.

use crate::data::{DataError, Table};
use crate::model::{LayerSpec, ModelFile, ModelFileError, Task};

/// How a model did on a table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum Evaluation {
    Classification {
        rows: usize,
        accuracy: f32,
        /// The class names, in output order.
        labels: Vec<String>,
        /// `confusion[true][predicted]` row counts.
        confusion: Vec<Vec<usize>>,
    },
    Regression {
        rows: usize,
        mse: f32,
        /// `1 − SS_res / SS_tot` (NaN when the targets are all equal).
        r2: f32,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Model(#[from] ModelFileError),
    #[error(
        "{path}: the table has {found} feature columns besides `{target}`, but the model takes {expected} inputs"
    )]
    Width {
        path: std::path::PathBuf,
        target: String,
        expected: usize,
        found: usize,
    },
    #[error(
        "{path}: line {line}, column `{column}`: {value} is not one of the model's classes ({labels})"
    )]
    UnknownClass {
        path: std::path::PathBuf,
        line: usize,
        column: String,
        value: f32,
        labels: String,
    },
    #[error("the model predicts with an error: {0}")]
    Run(#[from] kiln_guest::RunError),
}

/// Scores `model` on every row of `table`, whose column `target` holds the
/// truth. The inputs are the model's feature columns when the table has
/// them all, otherwise every column but the target, in order.
pub fn evaluate(model: &ModelFile, table: &Table, target: &str) -> Result<Evaluation, EvalError> {
    let kernel = model.to_kernel()?;
    let t = table.column(target)?;
    let features = &model.graph.input.features;
    let columns: Vec<usize> =
        if !features.is_empty() && features.iter().all(|f| table.column(f).is_ok()) {
            features
                .iter()
                .map(|f| table.column(f))
                .collect::<Result<_, _>>()?
        } else {
            (0..table.columns.len()).filter(|&c| c != t).collect()
        };
    if columns.len() != kernel.input_len() {
        return Err(EvalError::Width {
            path: table.path.clone(),
            target: target.into(),
            expected: kernel.input_len(),
            found: columns.len(),
        });
    }
    let rows = table.rows();
    let x: Vec<f32> = (0..rows)
        .flat_map(|r| columns.iter().map(move |&c| (r, c)))
        .map(|(r, c)| table.value(r, c))
        .collect();
    let truth: Vec<f32> = (0..rows).map(|r| table.value(r, t)).collect();
    let out = kernel.predict(&x)?;
    let width = kernel.output_len();
    Ok(match model.graph.task {
        Task::Classification => {
            let labels = model.graph.labels.clone();
            let mut confusion = vec![vec![0; width]; width];
            for (r, (scores, &y)) in out.chunks_exact(width).zip(&truth).enumerate() {
                let class = labels
                    .iter()
                    .position(|l| l.parse::<f32>() == Ok(y))
                    .ok_or_else(|| EvalError::UnknownClass {
                        path: table.path.clone(),
                        line: r + 2,
                        column: target.into(),
                        value: y,
                        labels: labels.join(", "),
                    })?;
                confusion[class][super::argmax(scores)] += 1;
            }
            let correct: usize = (0..width).map(|i| confusion[i][i]).sum();
            Evaluation::Classification {
                rows,
                accuracy: correct as f32 / rows.max(1) as f32,
                labels,
                confusion,
            }
        }
        Task::Regression => {
            let n = rows.max(1) as f64;
            let mean = truth.iter().map(|&v| v as f64).sum::<f64>() / n;
            let (mut ss_res, mut ss_tot) = (0.0f64, 0.0f64);
            for (pred, &y) in out.chunks_exact(width).zip(&truth) {
                ss_res += (pred[0] as f64 - y as f64).powi(2);
                ss_tot += (y as f64 - mean).powi(2);
            }
            let r2 = if ss_tot > 0.0 {
                1.0 - ss_res / ss_tot
            } else {
                f64::NAN
            };
            Evaluation::Regression {
                rows,
                mse: (ss_res / n) as f32,
                r2: r2 as f32,
            }
        }
    })
}

/// The coefficients of a linear model in the units of its raw inputs:
/// `y = Σⱼ coefⱼ · xⱼ + intercept`, with the input standardisation folded
/// in (`coefⱼ = wⱼ / stdⱼ`, `intercept = b − Σⱼ wⱼ · meanⱼ / stdⱼ`). `None`
/// unless the graph is exactly standardize → dense with one output.
pub fn linear_coefficients(model: &ModelFile) -> Option<(Vec<(String, f32)>, f32)> {
    let [
        LayerSpec::Standardize { mean, std },
        LayerSpec::Dense { weight, bias },
    ] = model.graph.layers.as_slice()
    else {
        return None;
    };
    let t = |n: &String| model.tensors.get(n).and_then(|t| t.as_f32());
    let (mean, std, w, b) = (t(mean)?, t(std)?, t(weight)?, t(bias)?);
    if b.len() != 1 || w.len() != mean.len() {
        return None;
    }
    let names = &model.graph.input.features;
    let mut intercept = b[0] as f64;
    let coefs = (0..w.len())
        .map(|j| {
            let c = w[j] as f64 / std[j] as f64;
            intercept -= c * mean[j] as f64;
            let name = names.get(j).cloned().unwrap_or_else(|| format!("x{j}"));
            (name, c as f32)
        })
        .collect();
    Some((coefs, intercept as f32))
}
