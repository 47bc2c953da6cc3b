//! LightGBM's text model (`booster.save_model("model.txt")`) → a kiln
//! model file with one `tree_ensemble` layer (docs/trees.md, "LightGBM").
//!
//! LightGBM compares `x <= threshold` in f64 with f64 thresholds; for an
//! f32 input that is exactly `x <= t'` with `t'` the largest f32 not above
//! the threshold ([`super::trees::leq_f64`]), so kiln's routing equals
//! LightGBM's for every f32 row. A NaN goes to the node's default side
//! when its missing type is NaN, and is read as 0.0 when it is None (the
//! side `0.0 <= threshold` picks): both are missing directions, so NaN is
//! accepted in every feature. Missing type Zero (`zero_as_missing`) and
//! categorical splits are refused. Leaf values are rounded to f32 and
//! summed in f64 (LightGBM sums f64 values in f64).

use std::collections::BTreeMap;

use super::trees::{Ensemble, Node, Tree, TreeFileError, leq_f64, model_file};
use crate::model::{BinaryScores, ModelFile, PostTransform, Task, TreeAggregate};

/// Whether `bytes` look like a LightGBM text model.
pub fn sniff(bytes: &[u8]) -> bool {
    bytes.starts_with(b"tree\n") || bytes.starts_with(b"tree\r\n")
}

fn field(at: impl Into<String>, problem: impl Into<String>) -> TreeFileError {
    TreeFileError::Field {
        at: at.into(),
        problem: problem.into(),
    }
}

/// The `key=value` lines of one block.
type Block<'a> = BTreeMap<&'a str, &'a str>;

fn block<'a>(lines: &[&'a str]) -> Block<'a> {
    lines.iter().filter_map(|l| l.split_once('=')).collect()
}

fn value<'a>(b: &Block<'a>, at: &str, key: &str) -> Result<&'a str, TreeFileError> {
    b.get(key)
        .copied()
        .ok_or_else(|| field(format!("{at}{key}"), "is missing"))
}

fn list<T: std::str::FromStr>(
    b: &Block<'_>,
    at: &str,
    key: &str,
    n: usize,
) -> Result<Vec<T>, TreeFileError> {
    let v: Vec<T> = value(b, at, key)?
        .split_whitespace()
        .map(|s| {
            s.parse()
                .map_err(|_| field(format!("{at}{key}"), format!("{s:?} is not a number")))
        })
        .collect::<Result<_, _>>()?;
    if v.len() != n {
        return Err(field(
            format!("{at}{key}"),
            format!("has {} values, expected {n}", v.len()),
        ));
    }
    Ok(v)
}

fn number<T: std::str::FromStr>(b: &Block<'_>, at: &str, key: &str) -> Result<T, TreeFileError> {
    let s = value(b, at, key)?;
    s.trim()
        .parse()
        .map_err(|_| field(format!("{at}{key}"), format!("{s:?} is not a number")))
}

/// Leaf `j`'s node id: past every internal node's.
fn leaf_id(j: u64) -> u64 {
    (1 << 32) + j
}

/// Tree block `t` (its `Tree=t` line removed), leaves adding to `class`.
fn tree(b: &Block<'_>, t: usize, features: usize, class: usize) -> Result<Tree, TreeFileError> {
    let at = format!("Tree={t}: ");
    let leaves: usize = number(b, &at, "num_leaves")?;
    if leaves == 0 || leaves > 1 << 24 {
        return Err(field(
            format!("{at}num_leaves"),
            format!("{leaves} is out of range"),
        ));
    }
    if b.get("is_linear").is_some_and(|v| v.trim() != "0") {
        return Err(field(
            format!("{at}is_linear"),
            "linear trees are not supported",
        ));
    }
    let values: Vec<f64> = list(b, &at, "leaf_value", leaves)?;
    let mut out = Tree::default();
    for (j, &v) in values.iter().enumerate() {
        let v = v as f32;
        if !v.is_finite() {
            return Err(field(
                format!("{at}leaf_value"),
                format!("value {j} is not finite in f32"),
            ));
        }
        out.nodes
            .insert(leaf_id(j as u64), Node::Leaf(vec![(class, v)]));
    }
    if leaves == 1 {
        out.root = leaf_id(0);
        return Ok(out);
    }
    let n = leaves - 1;
    let feature: Vec<i64> = list(b, &at, "split_feature", n)?;
    let threshold: Vec<f64> = list(b, &at, "threshold", n)?;
    let decision: Vec<u32> = list(b, &at, "decision_type", n)?;
    let left: Vec<i64> = list(b, &at, "left_child", n)?;
    let right: Vec<i64> = list(b, &at, "right_child", n)?;
    let child = |c: i64| -> Result<u64, TreeFileError> {
        let id = if c >= 0 {
            c as u64
        } else {
            leaf_id((-(c + 1)) as u64)
        };
        Ok(id)
    };
    for i in 0..n {
        let node = |key: &str| format!("{at}{key}[{i}]");
        let d = decision[i];
        if d & 1 != 0 {
            return Err(field(
                node("decision_type"),
                "categorical splits are not supported",
            ));
        }
        let default_left = d & 2 != 0;
        let t = threshold[i];
        if t.is_nan() {
            return Err(field(node("threshold"), "is NaN"));
        }
        let missing = match (d >> 2) & 3 {
            // NaN is read as 0.0.
            0 => 0.0 <= t,
            2 => default_left,
            _ => {
                return Err(field(
                    node("decision_type"),
                    "missing type Zero (zero_as_missing) is not supported",
                ));
            }
        };
        let f = usize::try_from(feature[i])
            .ok()
            .filter(|&f| f < features)
            .ok_or_else(|| {
                field(
                    node("split_feature"),
                    format!("feature {} of {features}", feature[i]),
                )
            })?;
        let (mode, threshold) = leq_f64(t);
        out.nodes.insert(
            i as u64,
            Node::Branch {
                mode,
                feature: f,
                threshold,
                missing: Some(missing),
                yes: child(left[i])?,
                no: child(right[i])?,
            },
        );
    }
    Ok(out)
}

/// Imports a LightGBM text model named `name`.
pub fn import(bytes: &[u8], name: &str) -> Result<ModelFile, TreeFileError> {
    let text = std::str::from_utf8(bytes).map_err(|e| TreeFileError::Syntax(e.to_string()))?;
    let body = text
        .split("end of trees")
        .next()
        .ok_or_else(|| TreeFileError::Syntax("no trees".into()))?;
    let mut blocks = body.split("\nTree=");
    let header: Vec<&str> = blocks.next().unwrap_or_default().lines().collect();
    let h = block(&header);
    let classes: usize = number(&h, "", "num_class")?;
    let per_iteration: usize = number(&h, "", "num_tree_per_iteration")?;
    let features = number::<usize>(&h, "", "max_feature_idx")?
        .checked_add(1)
        .ok_or_else(|| field("max_feature_idx", "is too large"))?;
    let objective = value(&h, "", "objective")?;
    let mut words = objective.split_whitespace();
    let kind = words.next().unwrap_or_default();
    let params: Vec<&str> = words.collect();
    let (post, binary, task) = match kind {
        "regression" | "regression_l1" | "huber" | "fair" | "quantile" | "mape" | "lambdarank"
        | "rank_xendcg" => (PostTransform::None, BinaryScores::No, Task::Regression),
        "binary" => (
            PostTransform::Logistic,
            BinaryScores::Complement,
            Task::Classification,
        ),
        "cross_entropy" => (PostTransform::Logistic, BinaryScores::No, Task::Regression),
        "multiclass" => (
            PostTransform::Softmax,
            BinaryScores::No,
            Task::Classification,
        ),
        other => return Err(field("objective", format!("{other:?} is not supported"))),
    };
    if let Some(s) = params.iter().find_map(|p| p.strip_prefix("sigmoid:"))
        && s.parse::<f64>() != Ok(1.0)
    {
        return Err(field(
            "objective",
            format!("sigmoid:{s} is not supported (only 1)"),
        ));
    }
    let targets = if post == PostTransform::Softmax {
        classes
    } else {
        1
    };
    if targets == 0 || per_iteration != targets {
        return Err(field(
            "num_tree_per_iteration",
            format!("{per_iteration} trees per iteration for {classes} classes"),
        ));
    }
    let average =
        h.contains_key("average_output") || header.iter().any(|l| l.trim() == "average_output");
    if average && targets > 1 {
        return Err(field("average_output", "is supported for one target only"));
    }
    let mut ensemble = Ensemble {
        targets,
        trees: Vec::new(),
        base: Vec::new(),
        aggregate: if average {
            TreeAggregate::Average
        } else {
            TreeAggregate::Sum
        },
        post,
        binary,
    };
    for (t, b) in blocks.enumerate() {
        let lines: Vec<&str> = b.lines().collect();
        ensemble
            .trees
            .push(tree(&block(&lines), t, features, t % targets)?);
    }
    if ensemble.trees.is_empty() {
        return Err(TreeFileError::Syntax("the model has no trees".into()));
    }
    let labels = match task {
        Task::Classification => (0..targets.max(2)).map(|k| k.to_string()).collect(),
        Task::Regression => Vec::new(),
    };
    let names = h
        .get("feature_names")
        .map(|n| n.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    model_file(name, features, names, task, labels, ensemble)
}
