//! The tree ensemble's definition ([`crate::TreeLayer`], feature `trees`):
//! the walk of one tree by one row, and the sums and transforms of a row's
//! scores. Every sum is in f64 in a fixed order — tree by tree in `roots`
//! order, within a leaf entry by entry — and rounded to f32 once, so the
//! order is the bits; the transforms are [`crate::math`]'s.

use crate::math;
use crate::model::trees::{Aggregate, Binary, MISSING_TRUE, Mode, NODE_WORDS, Post, TreeLayer};

/// The leaf entries `[start, end)` that row `x` reaches from node `root`.
/// Children lie after their parents ([`TreeLayer`]'s check), so the loop
/// ends within the node count. A NaN goes where the node's missing bit
/// says (the false child when it defines none; hosts refuse such NaNs).
#[inline]
pub fn walk(nodes: &[u32], thresholds: &[f32], x: &[f32], root: u32) -> (usize, usize) {
    let mut i = root as usize;
    loop {
        let n = &nodes[i * NODE_WORDS..][..NODE_WORDS];
        let (flags, yes, no) = (n[0], n[2], n[3]);
        let mode = Mode::of(flags).unwrap_or(Mode::Leaf);
        if mode == Mode::Leaf {
            return (yes as usize, no as usize);
        }
        let v = x[n[1] as usize];
        let t = thresholds[i];
        let go = if v.is_nan() {
            flags & MISSING_TRUE != 0
        } else {
            match mode {
                Mode::Leq => v <= t,
                Mode::Lt => v < t,
                Mode::Gte => v >= t,
                Mode::Gt => v > t,
                Mode::Eq => v == t,
                _ => v != t,
            }
        };
        i = if go { yes } else { no } as usize;
    }
}

/// Scores `batch` rows `x` (`features` values each) into `y`
/// ([`TreeLayer::output_len`] each), with `acc` (`targets` values) as the
/// f64 accumulators.
pub fn trees(layer: &TreeLayer<'_>, x: &[f32], y: &mut [f32], acc: &mut [f64]) {
    let k = layer.targets;
    let acc = &mut acc[..k];
    let out = layer.output_len();
    let trees = layer.roots.len() as f64;
    for (row, y) in x.chunks_exact(layer.features).zip(y.chunks_exact_mut(out)) {
        acc.fill(0.0);
        for &root in layer.roots.iter() {
            let (s, e) = walk(&layer.nodes, &layer.thresholds, row, root);
            for (&t, &v) in layer.leaf_targets[s..e]
                .iter()
                .zip(&layer.leaf_values[s..e])
            {
                acc[t as usize] += f64::from(v);
            }
        }
        let score = |t: usize| {
            let sum = match layer.aggregate {
                Aggregate::Sum => acc[t],
                Aggregate::Average => acc[t] / trees,
            };
            (sum + f64::from(layer.base[t])) as f32
        };
        match layer.binary {
            Binary::No => {
                for (t, v) in y.iter_mut().enumerate() {
                    *v = score(t);
                }
                post(layer.post, y);
            }
            Binary::Complement => {
                let mut p = [score(0)];
                post(layer.post, &mut p);
                y[0] = 1.0 - p[0];
                y[1] = p[0];
            }
            Binary::Negate => {
                let s = score(0);
                y[0] = -s;
                y[1] = s;
                post(layer.post, y);
            }
        }
    }
}

/// The post-transform of one row's scores.
pub fn post(kind: Post, y: &mut [f32]) {
    match kind {
        Post::None => {}
        Post::Logistic => y.iter_mut().for_each(|v| *v = math::sigmoid(*v)),
        Post::Probit => y.iter_mut().for_each(|v| *v = math::probit(*v)),
        Post::Softmax => super::softmax(y, y.len()),
        Post::SoftmaxZero => softmax_zero(y),
    }
}

/// ONNX-ML's `SOFTMAX_ZERO`: softmax over the scores that are not zero
/// (within ±1e-7, as onnxruntime); the others are 0.
fn softmax_zero(y: &mut [f32]) {
    const ZERO: f32 = 1e-7;
    let mut max = f32::NEG_INFINITY;
    for &v in y.iter() {
        if v > max {
            max = v;
        }
    }
    let mut sum = 0.0f32;
    for v in y.iter_mut() {
        if *v > ZERO || *v < -ZERO {
            *v = math::exp(*v - max);
            sum += *v;
        } else {
            *v = 0.0;
        }
    }
    if sum > 0.0 {
        for v in y.iter_mut() {
            *v /= sum;
        }
    }
}
