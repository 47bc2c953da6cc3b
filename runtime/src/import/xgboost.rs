//! XGBoost's JSON model (`booster.save_model("m.json")`, format 2 and 3)
//! → a kiln model file with one `tree_ensemble` layer (docs/trees.md,
//! "XGBoost").
//!
//! XGBoost compares `x < threshold` in f32 (its `DMatrix` holds f32), a
//! missing value going to the node's `default_left` side: kiln's `<` mode
//! with a missing direction on every node, so NaN is accepted in every
//! feature. Leaf values are f32; kiln sums them in f64 where XGBoost sums
//! in f32 (agreement within f32 rounding). The base score is the
//! objective's margin of `base_score` (`logit` for the logistic
//! objectives), added to every target.

use serde_json::Value;

use super::trees::{Ensemble, Node, Tree, TreeFileError, model_file};
use crate::model::{BinaryScores, ModelFile, PostTransform, Task, TreeAggregate};
use kiln_guest::trees::Mode;

/// Whether `bytes` look like an XGBoost JSON model: a JSON object whose
/// `learner` holds a `gradient_booster`.
pub fn sniff(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    let text = String::from_utf8_lossy(head);
    text.trim_start().starts_with('{') && text.contains("\"learner\"")
}

fn field(at: &str, problem: impl Into<String>) -> TreeFileError {
    TreeFileError::Field {
        at: at.into(),
        problem: problem.into(),
    }
}

/// `v[key]`, or an error naming `at.key`.
fn get<'v>(v: &'v Value, at: &str, key: &str) -> Result<&'v Value, TreeFileError> {
    v.get(key)
        .ok_or_else(|| field(&format!("{at}.{key}"), "is missing"))
}

/// A number XGBoost may write as a JSON number or a string (`"5E-1"`,
/// `"[5E-1]"`, `"[5E-1,5E-1]"`: a vector, as 3.x writes `base_score`).
fn numbers(v: &Value, at: &str) -> Result<Vec<f64>, TreeFileError> {
    match v {
        Value::Number(n) => Ok(vec![n.as_f64().unwrap_or(f64::NAN)]),
        Value::String(s) => s
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<f64>()
                    .map_err(|_| field(at, format!("{s:?} is not a number")))
            })
            .collect(),
        _ => Err(field(at, "is not a number")),
    }
}

fn count(v: &Value, at: &str) -> Result<usize, TreeFileError> {
    let n = numbers(v, at)?;
    match n.as_slice() {
        [x] if *x >= 0.0 && x.fract() == 0.0 && *x < 1e9 => Ok(*x as usize),
        _ => Err(field(at, "is not a count")),
    }
}

/// An array field of tree `t`.
fn array<'v>(tree: &'v Value, t: usize, key: &str) -> Result<&'v [Value], TreeFileError> {
    let at = format!("trees[{t}].{key}");
    get(tree, &format!("trees[{t}]"), key)?
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| field(&at, "is not an array"))
}

/// Tree `t`'s nodes (index 0 the root).
fn tree(v: &Value, t: usize, features: usize) -> Result<Tree, TreeFileError> {
    let left = array(v, t, "left_children")?;
    let right = array(v, t, "right_children")?;
    let index = array(v, t, "split_indices")?;
    let cond = array(v, t, "split_conditions")?;
    let default_left = array(v, t, "default_left")?;
    let n = left.len();
    for (key, a) in [
        ("right_children", right),
        ("split_indices", index),
        ("split_conditions", cond),
        ("default_left", default_left),
    ] {
        if a.len() != n {
            return Err(field(
                &format!("trees[{t}].{key}"),
                format!("has {} entries for {n} nodes", a.len()),
            ));
        }
    }
    if let Ok(types) = array(v, t, "split_type")
        && types.iter().any(|s| s.as_i64() != Some(0))
    {
        return Err(field(
            &format!("trees[{t}].split_type"),
            "categorical splits are not supported",
        ));
    }
    let mut out = Tree::default();
    for i in 0..n {
        let at = |key: &str| format!("trees[{t}].{key}[{i}]");
        let int = |a: &[Value], key: &str| {
            a[i].as_i64()
                .ok_or_else(|| field(&at(key), "is not an integer"))
        };
        let value = cond[i]
            .as_f64()
            .ok_or_else(|| field(&at("split_conditions"), "is not a number"))?;
        // XGBoost writes its f32 values with round-trip precision.
        let value = value as f32;
        if !value.is_finite() {
            return Err(field(&at("split_conditions"), "is not finite"));
        }
        let l = int(left, "left_children")?;
        let node = if l == -1 {
            Node::Leaf(vec![(0, value)])
        } else {
            let child = |c: i64, key: &str| {
                u64::try_from(c).map_err(|_| field(&at(key), format!("{c} is not a node")))
            };
            let f = int(index, "split_indices")?;
            let feature = usize::try_from(f)
                .ok()
                .filter(|&f| f < features)
                .ok_or_else(|| field(&at("split_indices"), format!("feature {f} of {features}")))?;
            Node::Branch {
                mode: Mode::Lt,
                feature,
                threshold: value,
                missing: Some(int(default_left, "default_left")? != 0),
                yes: child(l, "left_children")?,
                no: child(int(right, "right_children")?, "right_children")?,
            }
        };
        out.nodes.insert(i as u64, node);
    }
    Ok(out)
}

/// Imports an XGBoost JSON model named `name`.
pub fn import(bytes: &[u8], name: &str) -> Result<ModelFile, TreeFileError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| TreeFileError::Syntax(e.to_string()))?;
    let learner = get(&v, "", "learner")?;
    let param = get(learner, "learner", "learner_model_param")?;
    let features = count(
        get(param, "learner_model_param", "num_feature")?,
        "num_feature",
    )?;
    let classes = count(get(param, "learner_model_param", "num_class")?, "num_class")?;
    let base = numbers(
        get(param, "learner_model_param", "base_score")?,
        "base_score",
    )?;
    let objective = get(get(learner, "learner", "objective")?, "objective", "name")?
        .as_str()
        .unwrap_or_default()
        .to_string();
    let booster = get(learner, "learner", "gradient_booster")?;
    let kind = get(booster, "gradient_booster", "name")?
        .as_str()
        .unwrap_or_default();
    if kind != "gbtree" {
        return Err(field(
            "gradient_booster.name",
            format!("{kind:?}: only gbtree is supported"),
        ));
    }
    let model = get(booster, "gradient_booster", "model")?;
    let trees = get(model, "model", "trees")?
        .as_array()
        .ok_or_else(|| field("model.trees", "is not an array"))?;
    let info = get(model, "model", "tree_info")?
        .as_array()
        .ok_or_else(|| field("model.tree_info", "is not an array"))?;
    if info.len() != trees.len() {
        return Err(field("model.tree_info", "does not have one entry per tree"));
    }
    let targets = classes.max(1);
    // (post-transform, binary layout, task, the base score's margin).
    let logit = |p: f64| (p / (1.0 - p)).ln();
    let (post, binary, task, margin): (_, _, _, fn(f64) -> f64) = match objective.as_str() {
        "reg:squarederror"
        | "reg:squaredlogerror"
        | "reg:pseudohubererror"
        | "reg:absoluteerror" => (
            PostTransform::None,
            BinaryScores::No,
            Task::Regression,
            |b| b,
        ),
        "binary:logitraw" => (
            PostTransform::None,
            BinaryScores::No,
            Task::Regression,
            logit,
        ),
        "reg:logistic" => (
            PostTransform::Logistic,
            BinaryScores::No,
            Task::Regression,
            logit,
        ),
        "binary:logistic" => (
            PostTransform::Logistic,
            BinaryScores::Complement,
            Task::Classification,
            logit,
        ),
        "multi:softprob" | "multi:softmax" => (
            PostTransform::Softmax,
            BinaryScores::No,
            Task::Classification,
            |b| b,
        ),
        other => {
            return Err(field(
                "objective.name",
                format!("{other:?} is not supported"),
            ));
        }
    };
    if (targets > 1) != (post == PostTransform::Softmax) {
        return Err(field(
            "num_class",
            format!("{classes} classes for objective {objective:?}"),
        ));
    }
    let mut ensemble = Ensemble {
        targets,
        trees: Vec::with_capacity(trees.len()),
        base: match base.as_slice() {
            [b] => vec![margin(*b) as f32; targets],
            v if v.len() == targets => v.iter().map(|&b| margin(b) as f32).collect(),
            v => {
                return Err(field(
                    "base_score",
                    format!("{} values for {targets} targets", v.len()),
                ));
            }
        },
        aggregate: TreeAggregate::Sum,
        post,
        binary,
    };
    for (t, (v, class)) in trees.iter().zip(info).enumerate() {
        let class = class
            .as_u64()
            .map(|c| c as usize)
            .filter(|&c| c < targets)
            .ok_or_else(|| {
                field(
                    &format!("tree_info[{t}]"),
                    format!("not one of {targets} classes"),
                )
            })?;
        let mut tree = tree(v, t, features)?;
        for node in tree.nodes.values_mut() {
            if let Node::Leaf(entries) = node {
                entries[0].0 = class;
            }
        }
        ensemble.trees.push(tree);
    }
    let labels = match (task, binary) {
        (Task::Classification, BinaryScores::Complement) => vec!["0".into(), "1".into()],
        (Task::Classification, _) => (0..targets).map(|k| k.to_string()).collect(),
        _ => Vec::new(),
    };
    let names = learner
        .get("feature_names")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    model_file(name, features, names, task, labels, ensemble)
}
