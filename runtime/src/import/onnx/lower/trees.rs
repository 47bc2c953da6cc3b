//! ONNX-ML `TreeEnsembleClassifier` and `TreeEnsembleRegressor` (opsets
//! 1–3, float attributes) → the model file's `tree_ensemble`, with
//! onnxruntime's semantics (docs/trees.md, "ONNX"): every `nodes_modes`
//! value, `base_values`, `post_transform`, `aggregate_function` SUM or
//! AVERAGE, and the binary classifier's two-score layouts. A node defines a
//! missing-value direction only where the model has
//! `nodes_missing_value_tracks_true`; elsewhere a NaN is refused.

use std::collections::{BTreeMap, BTreeSet};

use kiln_guest::trees::Mode;

use super::super::proto::NodeProto;
use super::super::tensor::Attrs;
use super::super::{ImportError, NodeRef};
use super::{Lowering, Op};
use crate::import::trees::{Ensemble, Node, Tree};
use crate::model::{BinaryScores, PostTransform, TreeAggregate};

/// The `nodes_*` attributes, one entry per node.
struct Nodes {
    tree: Vec<i64>,
    id: Vec<i64>,
    feature: Vec<i64>,
    value: Vec<f32>,
    mode: Vec<String>,
    yes: Vec<i64>,
    no: Vec<i64>,
    missing_true: Option<Vec<i64>>,
}

/// A non-negative id or index from an attribute.
fn index(r: &NodeRef, what: &str, i: usize, v: i64) -> Result<u64, ImportError> {
    u64::try_from(v).map_err(|_| r.err(format!("`{what}`[{i}] = {v} is negative")))
}

impl Nodes {
    fn read(r: &NodeRef, a: &mut Attrs<'_>) -> Result<Self, ImportError> {
        let need_ints = |a: &mut Attrs<'_>, name: &str| {
            a.ints(name)?
                .ok_or_else(|| r.err(format!("needs `{name}`")))
        };
        let tree = need_ints(a, "nodes_treeids")?;
        let id = need_ints(a, "nodes_nodeids")?;
        let feature = need_ints(a, "nodes_featureids")?;
        let yes = need_ints(a, "nodes_truenodeids")?;
        let no = need_ints(a, "nodes_falsenodeids")?;
        let value = a
            .floats("nodes_values")?
            .ok_or_else(|| r.err("needs `nodes_values` (float; `nodes_values_as_tensor`, double thresholds, is not supported)"))?;
        let mode = a
            .strings("nodes_modes")?
            .ok_or_else(|| r.err("needs `nodes_modes`"))?;
        let missing_true = a.ints("nodes_missing_value_tracks_true")?;
        // Hit rates only guide onnxruntime's memory layout.
        a.ignore(&["nodes_hitrates"]);
        let n = tree.len();
        let lens = [
            ("nodes_nodeids", id.len()),
            ("nodes_featureids", feature.len()),
            ("nodes_values", value.len()),
            ("nodes_modes", mode.len()),
            ("nodes_truenodeids", yes.len()),
            ("nodes_falsenodeids", no.len()),
            (
                "nodes_missing_value_tracks_true",
                missing_true.as_ref().map_or(n, Vec::len),
            ),
        ];
        if let Some((name, len)) = lens.iter().find(|(_, l)| *l != n) {
            return Err(r.err(format!("`{name}` has {len} entries, `nodes_treeids` {n}")));
        }
        Ok(Nodes {
            tree,
            id,
            feature,
            value,
            mode,
            yes,
            no,
            missing_true,
        })
    }

    /// The trees, by ascending tree id (onnxruntime's summation order),
    /// each leaf with the entries `leaves` gives it by (tree, node) id.
    fn trees(
        &self,
        r: &NodeRef,
        width: usize,
        mut leaves: BTreeMap<(u64, u64), Vec<(usize, f32)>>,
    ) -> Result<Vec<Tree>, ImportError> {
        let mut trees: BTreeMap<u64, Tree> = BTreeMap::new();
        for i in 0..self.tree.len() {
            let t = index(r, "nodes_treeids", i, self.tree[i])?;
            let id = index(r, "nodes_nodeids", i, self.id[i])?;
            let at = || format!("tree {t} node {id}");
            let node = match self.mode[i].as_str() {
                "LEAF" => Node::Leaf(leaves.remove(&(t, id)).unwrap_or_default()),
                m => {
                    let mode = match m {
                        "BRANCH_LEQ" => Mode::Leq,
                        "BRANCH_LT" => Mode::Lt,
                        "BRANCH_GTE" => Mode::Gte,
                        "BRANCH_GT" => Mode::Gt,
                        "BRANCH_EQ" => Mode::Eq,
                        "BRANCH_NEQ" => Mode::Neq,
                        other => {
                            return Err(r.err(format!("{}: mode {other:?} is not supported", at())));
                        }
                    };
                    let feature = usize::try_from(self.feature[i])
                        .ok()
                        .filter(|&f| f < width)
                        .ok_or_else(|| {
                            r.err(format!(
                                "{}: feature {} is not one of the input's {width}",
                                at(),
                                self.feature[i]
                            ))
                        })?;
                    let threshold = self.value[i];
                    if !threshold.is_finite() {
                        return Err(r.err(format!("{}: threshold {threshold} is not finite", at())));
                    }
                    Node::Branch {
                        mode,
                        feature,
                        threshold,
                        missing: self.missing_true.as_ref().map(|m| m[i] != 0),
                        yes: index(r, "nodes_truenodeids", i, self.yes[i])?,
                        no: index(r, "nodes_falsenodeids", i, self.no[i])?,
                    }
                }
            };
            let tree = trees.entry(t).or_default();
            if tree.nodes.insert(id, node).is_some() {
                return Err(r.err(format!("{} is given twice", at())));
            }
        }
        if let Some(((t, id), _)) = leaves.into_iter().next() {
            return Err(r.err(format!(
                "a weight is for tree {t} node {id}, which is not a leaf"
            )));
        }
        // Node 0 is each tree's root (ONNX: ids start at 0).
        Ok(trees.into_values().collect())
    }
}

/// The `{prefix}_treeids/_nodeids/_ids/_weights` leaf entries, by (tree,
/// node) in attribute order, and whether every weight is non-negative.
#[allow(clippy::type_complexity)]
fn entries(
    r: &NodeRef,
    a: &mut Attrs<'_>,
    prefix: &str,
    targets: usize,
) -> Result<
    (
        BTreeMap<(u64, u64), Vec<(usize, f32)>>,
        bool,
        BTreeSet<usize>,
    ),
    ImportError,
> {
    let name = |s: &str| format!("{prefix}_{s}");
    let ints = |a: &mut Attrs<'_>, s: &str| {
        a.ints(&name(s))?
            .ok_or_else(|| r.err(format!("needs `{}`", name(s))))
    };
    let (trees, nodes, ids) = (ints(a, "treeids")?, ints(a, "nodeids")?, ints(a, "ids")?);
    let weights = a.floats(&name("weights"))?.ok_or_else(|| {
        r.err(format!(
            "needs `{}` (float; the double `_as_tensor` form is not supported)",
            name("weights")
        ))
    })?;
    let n = trees.len();
    if nodes.len() != n || ids.len() != n || weights.len() != n {
        return Err(r.err(format!(
            "the `{prefix}_*` attributes have different lengths"
        )));
    }
    let mut map: BTreeMap<(u64, u64), Vec<(usize, f32)>> = BTreeMap::new();
    let mut used = BTreeSet::new();
    for i in 0..n {
        let t = index(r, &name("treeids"), i, trees[i])?;
        let id = index(r, &name("nodeids"), i, nodes[i])?;
        let target = usize::try_from(ids[i])
            .ok()
            .filter(|&k| k < targets)
            .ok_or_else(|| {
                r.err(format!(
                    "`{}`[{i}] = {} is not one of {targets}",
                    name("ids"),
                    ids[i]
                ))
            })?;
        if !weights[i].is_finite() {
            return Err(r.err(format!("`{}`[{i}] is not finite", name("weights"))));
        }
        used.insert(target);
        map.entry((t, id)).or_default().push((target, weights[i]));
    }
    let positive = weights.iter().all(|&w| w >= 0.0);
    Ok((map, positive, used))
}

fn post_transform(a: &mut Attrs<'_>) -> Result<PostTransform, ImportError> {
    let post = a.string("post_transform")?.unwrap_or_else(|| "NONE".into());
    Ok(match post.as_str() {
        "NONE" => PostTransform::None,
        "LOGISTIC" => PostTransform::Logistic,
        "SOFTMAX" => PostTransform::Softmax,
        "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
        "PROBIT" => PostTransform::Probit,
        other => return Err(a.unsupported("post_transform", format!("{other:?}"))),
    })
}

impl<'g> Lowering<'g> {
    /// `TreeEnsembleClassifier` or `TreeEnsembleRegressor` node `n`.
    pub(super) fn tree_ensemble(
        &mut self,
        r: &NodeRef,
        n: &'g NodeProto,
        a: &mut Attrs<'_>,
    ) -> Result<(), ImportError> {
        let x = self.act(r, n, 0)?;
        if x.dims.len() != 1 {
            return Err(r.err(format!("needs rows of features, got rows of {:?}", x.dims)));
        }
        let width = x.dims[0];
        let nodes = Nodes::read(r, a)?;
        let post = post_transform(a)?;
        let base = a.floats("base_values")?.unwrap_or_default();
        let classifier = n.op_type == "TreeEnsembleClassifier";
        let (ensemble, output) = if classifier {
            let labels: Vec<String> = match (
                a.ints("classlabels_int64s")?,
                a.strings("classlabels_strings")?,
            ) {
                (Some(i), None) => i.iter().map(|v| v.to_string()).collect(),
                (None, Some(s)) => s,
                _ => {
                    return Err(
                        r.err("needs exactly one of `classlabels_int64s`, `classlabels_strings`")
                    );
                }
            };
            let classes = labels.len();
            let (leaves, positive, used) = entries(r, a, "class", classes)?;
            let trees = nodes.trees(r, width, leaves)?;
            let (targets, binary) = if classes == 2 {
                // onnxruntime's binary classifier: one score s (class 0's
                // slot) becomes two; other layouts depend on the row.
                if used.iter().any(|&k| k != 0) {
                    return Err(r.err(
                        "a binary classifier with weights for class 1: onnxruntime's scores then \
                         depend on which leaves a row reaches; kiln imports binary classifiers \
                         whose weights are all for class 0 (as skl2onnx and onnxmltools write them)",
                    ));
                }
                if base.len() > 1 {
                    return Err(r.err(format!(
                        "{} base values for a binary classifier with one score (1 expected)",
                        base.len()
                    )));
                }
                let binary = match (positive, post) {
                    (true, PostTransform::None | PostTransform::Logistic) => {
                        BinaryScores::Complement
                    }
                    (false, PostTransform::Logistic) => BinaryScores::Negate,
                    _ => {
                        return Err(r.err(format!(
                            "post_transform {post:?} with {} weights: onnxruntime's binary \
                             scores then depend on the row's sign; not supported",
                            if positive {
                                "non-negative"
                            } else {
                                "mixed-sign"
                            }
                        )));
                    }
                };
                (1, binary)
            } else {
                (classes, BinaryScores::No)
            };
            if !base.is_empty() && base.len() != targets {
                return Err(r.err(format!("{} base values for {targets} scores", base.len())));
            }
            self.labels = labels;
            self.classifier = true;
            let e = Ensemble {
                targets,
                trees,
                base,
                aggregate: TreeAggregate::Sum,
                post,
                binary,
            };
            // Output 0 is the label, which kiln does not compute.
            (e, 1)
        } else {
            let targets = usize::try_from(a.int("n_targets", 1)?)
                .ok()
                .filter(|&t| t > 0)
                .ok_or_else(|| r.err("`n_targets` must be positive"))?;
            let aggregate = match a.string("aggregate_function")?.as_deref() {
                None | Some("SUM") => TreeAggregate::Sum,
                Some("AVERAGE") => TreeAggregate::Average,
                Some(other) => {
                    return Err(a.unsupported("aggregate_function", format!("{other:?}")));
                }
            };
            // onnxruntime transforms a single score only by PROBIT.
            let post = match post {
                PostTransform::Logistic | PostTransform::Softmax | PostTransform::SoftmaxZero
                    if targets == 1 =>
                {
                    self.notes.push(format!(
                        "{r}: post_transform {post:?} on one target left out, as onnxruntime does"
                    ));
                    PostTransform::None
                }
                p => p,
            };
            let (leaves, ..) = entries(r, a, "target", targets)?;
            let trees = nodes.trees(r, width, leaves)?;
            if !base.is_empty() && base.len() != targets {
                return Err(r.err(format!("{} base values for {targets} targets", base.len())));
            }
            let e = Ensemble {
                targets,
                trees,
                base,
                aggregate,
                post,
                binary: BinaryScores::No,
            };
            (e, 0)
        };
        let outputs = match ensemble.binary {
            BinaryScores::No => ensemble.targets,
            _ => 2,
        };
        let tables = ensemble.lay_out().map_err(|e| r.err(e.to_string()))?;
        let v = self.push(Op::Trees(Box::new(tables)), vec![outputs]);
        self.set(n, output, v);
        Ok(())
    }
}
