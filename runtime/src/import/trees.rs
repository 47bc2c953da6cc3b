//! A tree ensemble as the importers read it (ONNX-ML's tree ops; XGBoost
//! and LightGBM files later), before it becomes the model file's
//! `tree_ensemble` layer ([`Ensemble::lay_out`], [`Tables::spec`],
//! docs/trees.md).
//!
//! Each importer gives its trees as node lists keyed by its own node ids,
//! in any order; [`Ensemble::lay_out`] lays each tree out in preorder from its
//! root — so every child follows its parent, which is what the kernel's
//! tables require — and refuses a child that does not exist, a cycle or a
//! node two parents share, naming the tree and node.

use std::collections::BTreeMap;

use kiln_guest::trees::{MISSING_DEFINED, MISSING_TRUE, Mode};

use super::common::LayerTensors;
use crate::model::{BinaryScores, LayerSpec, PostTransform, Tensor, TensorData, TreeAggregate};

/// One node of a tree, children by the importer's node ids.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Branch {
        /// The comparison that sends `x` to `yes` (never [`Mode::Leaf`]).
        mode: Mode,
        feature: usize,
        threshold: f32,
        /// Where a missing value goes: `Some(true)` to `yes`, `Some(false)`
        /// to `no`, `None`: the model defines no direction (NaN refused).
        missing: Option<bool>,
        yes: u64,
        no: u64,
    },
    /// `(target, value)` entries, summed in this order.
    Leaf(Vec<(usize, f32)>),
}

/// One tree: its nodes by id, and its root's id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tree {
    pub(crate) nodes: BTreeMap<u64, Node>,
    pub(crate) root: u64,
}

/// A whole ensemble, as the `tree_ensemble` layer holds it.
#[derive(Debug, Clone)]
pub(crate) struct Ensemble {
    pub(crate) targets: usize,
    /// Trees in summation order.
    pub(crate) trees: Vec<Tree>,
    /// `targets` values, or empty for zeros.
    pub(crate) base: Vec<f32>,
    pub(crate) aggregate: TreeAggregate,
    pub(crate) post: PostTransform,
    pub(crate) binary: BinaryScores,
}

/// Why an ensemble's trees do not form trees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("tree {tree}: node {node} is referenced as a child but does not exist")]
    MissingNode { tree: usize, node: u64 },
    #[error("tree {tree}: node {node} is reached twice (a cycle, or two parents)")]
    Reached { tree: usize, node: u64 },
    #[error("tree {tree}: {count} nodes, more than the kernel's tables hold")]
    TooLarge { tree: usize, count: usize },
}

/// Why an XGBoost or LightGBM model file could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum TreeFileError {
    #[error("not a valid model file: {0}")]
    Syntax(String),
    #[error("`{at}` {problem}")]
    Field { at: String, problem: String },
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("the imported model is invalid: {0}")]
    Model(#[from] crate::model::ModelFileError),
}

/// A model file of one `tree_ensemble` layer over `features` values
/// (named `names`, if as many), checked as `kiln build` checks it.
pub(crate) fn model_file(
    name: &str,
    features: usize,
    names: Vec<String>,
    task: crate::model::Task,
    labels: Vec<String>,
    ensemble: Ensemble,
) -> Result<crate::model::ModelFile, TreeFileError> {
    use crate::model::{FORMAT_VERSION, Graph, InputSpec, ModelFile};
    let mut tensors = BTreeMap::new();
    let spec = ensemble.lay_out()?.spec(&mut LayerTensors {
        tensors: &mut tensors,
        index: 0,
    });
    let graph = Graph {
        format: FORMAT_VERSION,
        name: name.into(),
        version: "1".into(),
        task,
        input: InputSpec {
            name: "input".into(),
            shape: vec![features],
            features: if names.len() == features {
                names
            } else {
                Vec::new()
            },
        },
        target: None,
        labels,
        layers: vec![spec],
        wiring: Vec::new(),
    };
    let model = ModelFile { graph, tensors };
    model.to_kernel()?;
    Ok(model)
}

/// The f32 threshold and mode that an f32 `x` meets exactly when the f64
/// comparison `x <= t` holds (LightGBM's): `x <= t'` with `t'` the largest
/// f32 not above `t`; below every finite f32, `x < −f32::MAX` (never).
pub(crate) fn leq_f64(t: f64) -> (Mode, f32) {
    if t < -f64::from(f32::MAX) {
        return (Mode::Lt, -f32::MAX);
    }
    if t >= f64::from(f32::MAX) {
        return (Mode::Leq, f32::MAX);
    }
    let mut c = t as f32;
    if f64::from(c) > t {
        c = c.next_down();
    }
    (Mode::Leq, c)
}

/// The flags word of a node.
fn flags(mode: Mode, missing: Option<bool>) -> i32 {
    let bits = match missing {
        None => 0,
        Some(false) => MISSING_DEFINED,
        Some(true) => MISSING_DEFINED | MISSING_TRUE,
    };
    (mode as u32 | bits) as i32
}

/// An ensemble laid out as the kernel's tables ([`Ensemble::lay_out`]).
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    targets: usize,
    words: Vec<i32>,
    thresholds: Vec<f32>,
    roots: Vec<i32>,
    leaf_targets: Vec<i32>,
    leaf_values: Vec<f32>,
    base: Vec<f32>,
    aggregate: TreeAggregate,
    post: PostTransform,
    binary: BinaryScores,
}

impl Ensemble {
    /// The kernel's tables: each tree in preorder from its root.
    pub(crate) fn lay_out(self) -> Result<Tables, TreeError> {
        let (mut words, mut thresholds, mut roots) = (Vec::new(), Vec::new(), Vec::new());
        let (mut leaf_targets, mut leaf_values) = (Vec::new(), Vec::new());
        let index =
            |n: usize, tree| i32::try_from(n).map_err(|_| TreeError::TooLarge { tree, count: n });
        for (k, tree) in self.trees.iter().enumerate() {
            let first = thresholds.len();
            roots.push(index(first, k)?);
            // Preorder with an explicit stack: (node id, slot of the
            // parent's child word to patch with this node's index).
            let mut stack = vec![(tree.root, None::<usize>)];
            let mut seen = std::collections::HashSet::new();
            while let Some((id, slot)) = stack.pop() {
                if !seen.insert(id) {
                    return Err(TreeError::Reached { tree: k, node: id });
                }
                let node = tree
                    .nodes
                    .get(&id)
                    .ok_or(TreeError::MissingNode { tree: k, node: id })?;
                let at = thresholds.len();
                if let Some(slot) = slot {
                    words[slot] = index(at, k)?;
                }
                match node {
                    Node::Branch {
                        mode,
                        feature,
                        threshold,
                        missing,
                        yes,
                        no,
                    } => {
                        let f = index(*feature, k)?;
                        words.extend([flags(*mode, *missing), f, -1, -1]);
                        thresholds.push(*threshold);
                        // The true child first in the table.
                        stack.push((*no, Some(4 * at + 3)));
                        stack.push((*yes, Some(4 * at + 2)));
                    }
                    Node::Leaf(entries) => {
                        let start = index(leaf_values.len(), k)?;
                        for &(target, value) in entries {
                            leaf_targets.push(index(target, k)?);
                            leaf_values.push(value);
                        }
                        let end = index(leaf_values.len(), k)?;
                        words.extend([0, 0, start, end]);
                        thresholds.push(0.0);
                    }
                }
            }
        }
        Ok(Tables {
            targets: self.targets,
            words,
            thresholds,
            roots,
            leaf_targets,
            leaf_values,
            base: self.base,
            aggregate: self.aggregate,
            post: self.post,
            binary: self.binary,
        })
    }
}

impl Tables {
    /// The layer's spec, its tables added to `t`.
    pub(crate) fn spec(self, t: &mut LayerTensors<'_>) -> LayerSpec {
        let n = self.thresholds.len();
        let i32s = |shape: Vec<usize>, v: Vec<i32>| Tensor {
            shape,
            data: TensorData::I32(v),
        };
        let entries = self.leaf_values.len();
        let trees = self.roots.len();
        let base = (!self.base.is_empty()).then(|| t.add("base", vec![self.base.len()], self.base));
        LayerSpec::TreeEnsemble {
            targets: self.targets,
            nodes: t.insert("nodes", i32s(vec![n, 4], self.words)),
            thresholds: t.add("thresholds", vec![n], self.thresholds),
            roots: t.insert("roots", i32s(vec![trees], self.roots)),
            leaf_targets: t.insert("leaf_targets", i32s(vec![entries], self.leaf_targets)),
            leaf_values: t.add("leaf_values", vec![entries], self.leaf_values),
            base,
            aggregate: self.aggregate,
            post_transform: self.post,
            binary: self.binary,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn branch(yes: u64, no: u64) -> Node {
        Node::Branch {
            mode: Mode::Leq,
            feature: 0,
            threshold: 0.5,
            missing: Some(true),
            yes,
            no,
        }
    }

    fn ensemble(nodes: Vec<(u64, Node)>, root: u64) -> Ensemble {
        Ensemble {
            targets: 1,
            trees: vec![Tree {
                nodes: nodes.into_iter().collect(),
                root,
            }],
            base: vec![],
            aggregate: TreeAggregate::Sum,
            post: PostTransform::None,
            binary: BinaryScores::No,
        }
    }

    /// `x <= t` in f64 is `x <= t'` in f32 for every f32 `x`.
    #[test]
    fn f64_thresholds_round_down() {
        for t in [
            0.1f64, -0.1, 1.0, 1e-40, -1e-40, 3.4e38, 1e300, -1e300, 16777217.0,
        ] {
            let (mode, t32) = leq_f64(t);
            for x in [
                t as f32,
                (t as f32).next_up(),
                (t as f32).next_down(),
                0.0,
                1.0,
                -1.0,
            ] {
                let want = f64::from(x) <= t;
                let got = match mode {
                    Mode::Leq => x <= t32,
                    _ => x < t32,
                };
                assert_eq!(got, want, "x {x} t {t}");
            }
        }
    }

    /// Ids out of order become a preorder table; broken trees are named.
    #[test]
    fn lays_trees_out_in_preorder() {
        let e = ensemble(
            vec![
                (7, Node::Leaf(vec![(0, 2.0)])),
                (3, branch(9, 7)),
                (9, Node::Leaf(vec![(0, 1.0)])),
            ],
            3,
        );
        let mut tensors = BTreeMap::new();
        let mut t = LayerTensors {
            tensors: &mut tensors,
            index: 0,
        };
        let LayerSpec::TreeEnsemble { nodes, .. } = e.lay_out().unwrap().spec(&mut t) else {
            panic!()
        };
        let TensorData::I32(w) = &tensors[&nodes].data else {
            panic!()
        };
        assert_eq!(w, &[1 | 48, 0, 1, 2, 0, 0, 0, 1, 0, 0, 1, 2]);
        let cycle = ensemble(vec![(0, branch(1, 0)), (1, Node::Leaf(vec![]))], 0);
        assert_eq!(
            cycle.lay_out().unwrap_err(),
            TreeError::Reached { tree: 0, node: 0 }
        );
        let missing = ensemble(vec![(0, branch(1, 2)), (1, Node::Leaf(vec![]))], 0);
        assert_eq!(
            missing.lay_out().unwrap_err(),
            TreeError::MissingNode { tree: 0, node: 2 }
        );
    }
}
