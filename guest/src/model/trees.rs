//! The tree family ([`TreeLayer`], feature `trees`): an ensemble of
//! decision trees (random forests, gradient boosting) over a row of
//! features, summed per target, then a post-transform. A
//! [`Layer::Trees`](super::Layer::Trees) each; a build without the feature
//! holds none of it ([`super::family`]).
//!
//! The trees are tables, not code: every node is four `u32`s in
//! [`TreeLayer::nodes`] — flags (the comparison, [`Mode`], and the
//! missing-value bits), the feature it tests, its true child and its false
//! child — and a threshold. A leaf's two child words are instead the range
//! `[start, end)` of its entries in `leaf_targets`/`leaf_values`: a leaf
//! may add to several targets (a random forest's class frequencies) or one
//! (a boosted tree of one class). Every child index is greater than its
//! parent's, which [`TreeLayer::check`] proves once, so every walk ends
//! within `nodes` steps and the kernel never needs a depth limit.
//!
//! The arithmetic, which defines the bits, is
//! [`kernels::generic::trees`](crate::kernels::generic::trees): leaf values
//! summed in f64 per target, tree by tree in `roots` order and within a leaf
//! in entry order; divided by the tree count for [`Aggregate::Average`];
//! plus `base` (f64); rounded to f32; then the [`Post`] transform in f32
//! with [`crate::math`].

use alloc::borrow::Cow;

use super::Tensor;
use super::check::{MAX_WIDTH, check_len, check_tensor};
use crate::ModelError;

/// Node words per node: flags, feature, true child, false child.
pub const NODE_WORDS: usize = 4;
/// The flag bit: this node defines where a missing (NaN) value goes.
pub const MISSING_DEFINED: u32 = 1 << 4;
/// The flag bit: a missing value goes to the true child (else the false).
pub const MISSING_TRUE: u32 = 1 << 5;
/// The flag bits that hold the [`Mode`].
const MODE_MASK: u32 = 0xF;

/// What a node does with its feature `x` and threshold `t`: a leaf, or
/// which comparison sends `x` to the true child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Leaf = 0,
    /// `x <= t`.
    Leq = 1,
    /// `x < t`.
    Lt = 2,
    /// `x >= t`.
    Gte = 3,
    /// `x > t`.
    Gt = 4,
    /// `x == t`.
    Eq = 5,
    /// `x != t`.
    Neq = 6,
}

impl Mode {
    /// The mode of a node's flag word, if it is one.
    pub fn of(flags: u32) -> Option<Self> {
        Some(match flags & MODE_MASK {
            0 => Mode::Leaf,
            1 => Mode::Leq,
            2 => Mode::Lt,
            3 => Mode::Gte,
            4 => Mode::Gt,
            5 => Mode::Eq,
            6 => Mode::Neq,
            _ => return None,
        })
    }
}

/// How the trees' sums become a target's raw score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// The sum over trees (gradient boosting).
    Sum,
    /// The sum divided by the number of trees (a forest's mean).
    Average,
}

/// The transform of the raw scores (ONNX-ML's `post_transform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Post {
    None,
    /// `1 / (1 + e^-s)` per score ([`crate::math::sigmoid`]).
    Logistic,
    /// Softmax over the row ([`crate::kernels::softmax`]).
    Softmax,
    /// Softmax over the row's non-zero scores; zeros stay zero (ONNX-ML).
    SoftmaxZero,
    /// `√2 · erfinv(2s − 1)` per score ([`crate::math::probit`]).
    Probit,
}

/// How a one-target (binary) ensemble writes its two class scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    /// One score per target, as many outputs as targets.
    No,
    /// `[1 − p, p]` with `p` the post-transformed score (an element-wise
    /// [`Post`] only).
    Complement,
    /// `[−s, s]` from the raw score `s`, then the [`Post`] transform over
    /// the two.
    Negate,
}

/// A tree ensemble: see the module note for the tables.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeLayer<'a> {
    /// Values per input row.
    pub features: usize,
    /// Scores the trees add to (classes, or regression targets).
    pub targets: usize,
    pub aggregate: Aggregate,
    pub post: Post,
    pub binary: Binary,
    /// [`NODE_WORDS`] per node.
    pub nodes: Cow<'a, [u32]>,
    /// One per node (unused by leaves).
    pub thresholds: Tensor<'a>,
    /// The root node of each tree, in summation order.
    pub roots: Cow<'a, [u32]>,
    /// The target of each leaf entry.
    pub leaf_targets: Cow<'a, [u32]>,
    /// The value of each leaf entry.
    pub leaf_values: Tensor<'a>,
    /// Added to each target's aggregate (`targets` values).
    pub base: Tensor<'a>,
}

impl<'a> TreeLayer<'a> {
    /// Values per output row: `targets`, or 2 for a [`Binary`] layer.
    pub fn output_len(&self) -> usize {
        match self.binary {
            Binary::No => self.targets,
            _ => 2,
        }
    }

    /// Number of nodes (saturating: [`TreeLayer::check`] refuses a
    /// `nodes` that is not [`NODE_WORDS`] per threshold).
    pub fn node_count(&self) -> usize {
        self.thresholds.len()
    }

    /// Node `i`'s words: flags, feature, true child, false child.
    pub fn node(&self, i: usize) -> [u32; 4] {
        let n = &self.nodes[i * NODE_WORDS..][..NODE_WORDS];
        [n[0], n[1], n[2], n[3]]
    }

    /// Whether a NaN in feature `f` is accepted: every node testing `f`
    /// defines where a missing value goes.
    pub fn accepts_missing(&self, f: usize) -> bool {
        self.nodes.chunks_exact(NODE_WORDS).all(|n| {
            Mode::of(n[0]) == Some(Mode::Leaf) || n[1] as usize != f || n[0] & MISSING_DEFINED != 0
        })
    }

    /// This layer with every table copied out of the blob it borrows.
    pub fn into_owned(self) -> TreeLayer<'static> {
        let own = |t: Cow<'_, [u32]>| Cow::Owned(t.into_owned());
        let own_f = |t: Tensor<'_>| Cow::Owned(t.into_owned());
        TreeLayer {
            features: self.features,
            targets: self.targets,
            aggregate: self.aggregate,
            post: self.post,
            binary: self.binary,
            nodes: own(self.nodes),
            thresholds: own_f(self.thresholds),
            roots: own(self.roots),
            leaf_targets: own(self.leaf_targets),
            leaf_values: own_f(self.leaf_values),
            base: own_f(self.base),
        }
    }

    /// Checks every table: lengths, each node's mode, flags, feature and
    /// children (greater than the node, within the table), each leaf's
    /// entry range, each entry's target, each root; with `scan`, that every
    /// threshold, leaf value and base value is finite.
    pub(super) fn check(&self, layer: usize, scan: bool) -> Result<(), ModelError> {
        let too_large = ModelError::TooLarge { layer };
        if self.features == 0 || self.features > MAX_WIDTH {
            return Err(too_large);
        }
        if self.targets == 0 || self.targets > MAX_WIDTH {
            return Err(ModelError::BadParam {
                layer,
                param: "targets",
            });
        }
        let n = self.thresholds.len();
        if n == 0 {
            return Err(ModelError::BadParam {
                layer,
                param: "nodes",
            });
        }
        let words = n.checked_mul(NODE_WORDS).ok_or(too_large)?;
        check_len(layer, "nodes", words, self.nodes.len())?;
        check_tensor(layer, "thresholds", n, &self.thresholds, scan)?;
        let entries = self.leaf_values.len();
        check_tensor(layer, "leaf_values", entries, &self.leaf_values, scan)?;
        check_len(layer, "leaf_targets", entries, self.leaf_targets.len())?;
        check_tensor(layer, "base", self.targets, &self.base, scan)?;
        if self.roots.is_empty() {
            return Err(ModelError::BadParam {
                layer,
                param: "roots",
            });
        }
        let elementwise = matches!(self.post, Post::None | Post::Logistic | Post::Probit);
        match self.binary {
            Binary::No => {}
            _ if self.targets != 1 => {
                return Err(ModelError::BadParam {
                    layer,
                    param: "binary",
                });
            }
            Binary::Complement if !elementwise => {
                return Err(ModelError::BadParam {
                    layer,
                    param: "post_transform",
                });
            }
            _ => {}
        }
        for (tree, &root) in self.roots.iter().enumerate() {
            if root as usize >= n {
                return Err(ModelError::TreeRoot { layer, tree });
            }
        }
        for (entry, &t) in self.leaf_targets.iter().enumerate() {
            if t as usize >= self.targets {
                return Err(ModelError::TreeLeaf { layer, entry });
            }
        }
        for node in 0..n {
            let bad = |field| ModelError::TreeNode { layer, node, field };
            let [flags, feature, yes, no] = self.node(node);
            let mode = Mode::of(flags).ok_or(bad("mode"))?;
            if mode == Mode::Leaf {
                if flags != 0 || feature != 0 {
                    return Err(bad("flags"));
                }
                if yes > no || no as usize > entries {
                    return Err(bad("leaf entries"));
                }
                continue;
            }
            if flags & !(MODE_MASK | MISSING_DEFINED | MISSING_TRUE) != 0
                || (flags & MISSING_TRUE != 0 && flags & MISSING_DEFINED == 0)
            {
                return Err(bad("flags"));
            }
            if feature as usize >= self.features {
                return Err(bad("feature"));
            }
            // Children after their parent: every walk ends.
            for (child, field) in [(yes, "true child"), (no, "false child")] {
                let c = child as usize;
                if c <= node || c >= n {
                    return Err(bad(field));
                }
            }
        }
        Ok(())
    }
}

impl<'a> super::Layer<'a> {
    /// A tree ensemble layer, refused by name in a build without the
    /// family (feature `trees`).
    pub fn trees(index: usize, layer: TreeLayer<'a>) -> Result<Self, ModelError> {
        let here = super::family::trees(index, "tree_ensemble")?;
        Ok(super::Layer::Trees(layer, here))
    }
}

#[cfg(all(test, feature = "trees"))]
pub(crate) mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::{Layer, Model};

    /// Node words: a branch on `feature` at `t` (mode `mode`, flags `extra`)
    /// to `yes`/`no`, or a leaf over entries `[s, e)`.
    pub(crate) fn branch(mode: Mode, extra: u32, feature: u32, yes: u32, no: u32) -> [u32; 4] {
        [mode as u32 | extra, feature, yes, no]
    }

    pub(crate) fn leaf(s: u32, e: u32) -> [u32; 4] {
        [0, 0, s, e]
    }

    /// Two trees over 2 features and 2 targets: tree 0 `x0 <= 0.5` (NaN →
    /// true) to leaves adding to both targets; tree 1 `x1 < 2` (no missing
    /// direction) to one-target leaves.
    pub(crate) fn small(post: Post, aggregate: Aggregate) -> TreeLayer<'static> {
        let nodes: Vec<[u32; 4]> = vec![
            branch(Mode::Leq, MISSING_DEFINED | MISSING_TRUE, 0, 1, 2),
            leaf(0, 2),
            leaf(2, 4),
            branch(Mode::Lt, 0, 1, 4, 5),
            leaf(4, 5),
            leaf(5, 6),
        ];
        TreeLayer {
            features: 2,
            targets: 2,
            aggregate,
            post,
            binary: Binary::No,
            nodes: nodes.concat().into(),
            thresholds: vec![0.5, 0.0, 0.0, 2.0, 0.0, 0.0].into(),
            roots: vec![0, 3].into(),
            leaf_targets: vec![0, 1, 0, 1, 0, 1].into(),
            leaf_values: vec![0.25, 0.75, 0.5, 0.5, 1.0, -1.0].into(),
            base: vec![0.125, -0.125].into(),
        }
    }

    fn predict(layer: TreeLayer<'static>, x: &[f32]) -> Vec<f32> {
        let m = Model::new(layer.features, vec![Layer::trees(0, layer).unwrap()]).unwrap();
        m.predict(x).unwrap()
    }

    #[test]
    fn walks_sums_and_transforms() {
        let x = [0.5, 1.0, 0.6, 2.0, f32::NAN, 3.0];
        let y = predict(small(Post::None, Aggregate::Sum), &x);
        // Row 0: x0 <= 0.5 → (0.25, 0.75); x1 < 2 → +1 to target 0.
        // Row 1: (0.5, 0.5); x1 = 2 → −1 to target 1. Row 2: NaN → true.
        let want = [
            1.25 + 0.125,
            0.75 - 0.125,
            0.5 + 0.125,
            -0.5 - 0.125,
            0.25 + 0.125,
            -0.25 - 0.125,
        ];
        assert_eq!(y, want);
        let avg = predict(small(Post::None, Aggregate::Average), &x[..2]);
        assert_eq!(avg, [1.25 / 2.0 + 0.125, 0.75 / 2.0 - 0.125]);
        let sm = predict(small(Post::Softmax, Aggregate::Sum), &x[..2]);
        let mut s = [want[0], want[1]];
        crate::kernels::softmax(&mut s, 2);
        assert_eq!(sm, s);
        let lg = predict(small(Post::Logistic, Aggregate::Sum), &x[..2]);
        assert_eq!(
            lg,
            want[..2]
                .iter()
                .map(|&v| crate::math::sigmoid(v))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn every_mode_compares_as_named() {
        let modes = [
            (Mode::Leq, [true, true, false]),
            (Mode::Lt, [true, false, false]),
            (Mode::Gte, [false, true, true]),
            (Mode::Gt, [false, false, true]),
            (Mode::Eq, [false, true, false]),
            (Mode::Neq, [true, false, true]),
        ];
        for (mode, want) in modes {
            let layer = TreeLayer {
                features: 1,
                targets: 1,
                aggregate: Aggregate::Sum,
                post: Post::None,
                binary: Binary::No,
                nodes: [branch(mode, 0, 0, 1, 2), leaf(0, 1), leaf(1, 2)]
                    .concat()
                    .into(),
                thresholds: vec![1.0, 0.0, 0.0].into(),
                roots: vec![0].into(),
                leaf_targets: vec![0, 0].into(),
                leaf_values: vec![1.0, 0.0].into(),
                base: vec![0.0].into(),
            };
            let y = predict(layer, &[0.0, 1.0, 2.0]);
            let got: Vec<bool> = y.iter().map(|&v| v == 1.0).collect();
            assert_eq!(got, want, "{mode:?}");
        }
    }

    #[test]
    fn binary_layouts() {
        let mut l = small(Post::Logistic, Aggregate::Sum);
        l.targets = 1;
        l.leaf_targets = vec![0; 6].into();
        l.base = vec![0.0].into();
        l.binary = Binary::Complement;
        let s = 0.25 + 0.75 + 1.0;
        let p = crate::math::sigmoid(s);
        assert_eq!(predict(l.clone(), &[0.0, 0.0]), [1.0 - p, p]);
        l.binary = Binary::Negate;
        let q = [crate::math::sigmoid(-s), p];
        assert_eq!(predict(l.clone(), &[0.0, 0.0]), q);
        l.post = Post::Softmax;
        l.binary = Binary::Complement;
        let err = Model::new(2, vec![Layer::trees(0, l).unwrap()]).unwrap_err();
        assert_eq!(
            err,
            ModelError::BadParam {
                layer: 0,
                param: "post_transform"
            }
        );
    }

    #[test]
    fn missing_directions() {
        let l = small(Post::None, Aggregate::Sum);
        assert!(l.accepts_missing(0));
        assert!(!l.accepts_missing(1));
    }

    #[test]
    fn bad_tables_name_the_node_and_field() {
        let bad = |edit: fn(&mut TreeLayer<'static>)| {
            let mut l = small(Post::None, Aggregate::Sum);
            edit(&mut l);
            Model::new(2, vec![Layer::trees(0, l).unwrap()]).unwrap_err()
        };
        let node = |node, field| ModelError::TreeNode {
            layer: 0,
            node,
            field,
        };
        // A child pointing back (a cycle), a feature past the row, an
        // unknown mode, a leaf range past the entries.
        assert_eq!(
            bad(|l| l.nodes.to_mut()[3 * 4 + 3] = 3),
            node(3, "false child")
        );
        assert_eq!(bad(|l| l.nodes.to_mut()[2] = 0), node(0, "true child"));
        assert_eq!(bad(|l| l.nodes.to_mut()[3 * 4 + 1] = 2), node(3, "feature"));
        assert_eq!(bad(|l| l.nodes.to_mut()[0] = 9), node(0, "mode"));
        assert_eq!(
            bad(|l| l.nodes.to_mut()[5 * 4 + 3] = 7),
            node(5, "leaf entries")
        );
        assert_eq!(
            bad(|l| l.nodes.to_mut()[3 * 4] |= MISSING_TRUE),
            node(3, "flags")
        );
        assert_eq!(
            bad(|l| l.roots.to_mut()[1] = 6),
            ModelError::TreeRoot { layer: 0, tree: 1 }
        );
        assert_eq!(
            bad(|l| l.leaf_targets.to_mut()[2] = 2),
            ModelError::TreeLeaf { layer: 0, entry: 2 }
        );
        assert_eq!(
            bad(|l| l.thresholds.to_mut()[0] = f32::NAN),
            ModelError::NotFinite {
                layer: 0,
                tensor: "thresholds"
            }
        );
        assert!(matches!(
            bad(|l| l.nodes.to_mut().push(0)),
            ModelError::TensorLen {
                tensor: "nodes",
                ..
            }
        ));
    }
}
