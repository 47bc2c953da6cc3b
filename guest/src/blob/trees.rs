//! Blob record of the tree family ([`TreeLayer`], feature `trees`):
//!
//! | op | layer | params |
//! |----|-------|--------|
//! | 60 | tree_ensemble | features, targets, aggregate, post, binary, nodes (off, len), thresholds, roots, leaf_targets, leaf_values, base |
//!
//! `aggregate`: 0 sum, 1 average. `post`: 0 none, 1 logistic, 2 softmax,
//! 3 softmax_zero, 4 probit. `binary`: 0 no, 1 complement, 2 negate. The
//! tables are `u32` (nodes, roots, leaf_targets) and `f32` as
//! [`TreeLayer`] keeps them; any other code is refused.
//!
//! A kernel without the family refuses the op by name before reading its
//! params ([`crate::model::family`]).

use alloc::vec::Vec;

use super::records::{Reader, TensorRef, push_tensor};
use crate::model::family;
use crate::trees::{Aggregate, Binary, Post};
use crate::{DecodeError, Layer, TreeLayer};

pub(super) const OP_TREES: u32 = 60;
/// Params of the record: 5 scalars and 6 tensors of 2 words.
const PARAMS: u32 = 17;

const AGGREGATES: [Aggregate; 2] = [Aggregate::Sum, Aggregate::Average];
const POSTS: [Post; 5] = [
    Post::None,
    Post::Logistic,
    Post::Softmax,
    Post::SoftmaxZero,
    Post::Probit,
];
const BINARIES: [Binary; 3] = [Binary::No, Binary::Complement, Binary::Negate];

/// The code of `v` in `table`.
fn code<T: PartialEq>(table: &[T], v: &T) -> u32 {
    table.iter().position(|t| t == v).unwrap_or(0) as u32
}

/// The entry of `table` whose code is `v`.
fn pick<T: Copy>(table: &[T], v: u32) -> Option<T> {
    table.get(v as usize).copied()
}

/// Appends the record of `layer`.
pub(super) fn encode<'t>(
    layer: &'t TreeLayer<'_>,
    records: &mut Vec<u32>,
    tensors: &mut Vec<(usize, TensorRef<'t>)>,
) {
    records.extend([OP_TREES, PARAMS]);
    records.extend([layer.features as u32, layer.targets as u32]);
    records.extend([
        code(&AGGREGATES, &layer.aggregate),
        code(&POSTS, &layer.post),
        code(&BINARIES, &layer.binary),
    ]);
    for t in [
        TensorRef::U32(&layer.nodes),
        TensorRef::F32(&layer.thresholds),
        TensorRef::U32(&layer.roots),
        TensorRef::U32(&layer.leaf_targets),
        TensorRef::F32(&layer.leaf_values),
        TensorRef::F32(&layer.base),
    ] {
        push_tensor(records, tensors, t);
    }
}

/// Decodes the params of layer `index`, a tree ensemble with `k` params.
pub(super) fn decode<'a>(
    k: usize,
    r: &mut Reader<'a>,
    index: usize,
) -> Result<Layer<'a>, DecodeError> {
    let here = family::trees(index, "tree_ensemble")?;
    let bad = DecodeError::BadParams { layer: index };
    if k != PARAMS as usize {
        return Err(bad);
    }
    let [features, targets] = [r.u32()?, r.u32()?].map(|v| v as usize);
    let aggregate = pick(&AGGREGATES, r.u32()?).ok_or(bad.clone())?;
    let post = pick(&POSTS, r.u32()?).ok_or(bad.clone())?;
    let binary = pick(&BINARIES, r.u32()?).ok_or(bad)?;
    let layer = TreeLayer {
        features,
        targets,
        aggregate,
        post,
        binary,
        nodes: r.typed(index, u32::from_le_bytes)?,
        thresholds: r.tensor(index)?,
        roots: r.typed(index, u32::from_le_bytes)?,
        leaf_targets: r.typed(index, u32::from_le_bytes)?,
        leaf_values: r.tensor(index)?,
        base: r.tensor(index)?,
    };
    Ok(Layer::Trees(layer, here))
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::super::{HEADER_LEN, decode, encode};
    use crate::{DecodeError, Layer, Model};

    /// A standardization, then the model/trees test ensemble.
    #[cfg(feature = "trees")]
    fn sample() -> Model<'static> {
        use crate::trees::{Aggregate, Post};
        let trees = crate::model::trees::tests::small(Post::Softmax, Aggregate::Average);
        let std = Layer::Standardize {
            mean: vec![0.5, -0.5].into(),
            inv_std: vec![2.0, 0.5].into(),
        };
        Model::new(2, vec![std, Layer::trees(1, trees).unwrap()]).unwrap()
    }

    /// Encode, decode, the same model and bits; every prefix refused and
    /// every corruption either refused or a model that runs.
    #[cfg(feature = "trees")]
    #[test]
    fn round_trip_and_totality() {
        let m = sample();
        let blob = encode(&m);
        let back = decode(&blob).unwrap();
        assert_eq!(back, m);
        let x = [0.5, -1.0, f32::NAN, 3.0, 0.75, 1.5];
        let y = m.predict(&x).unwrap();
        assert!(y.iter().all(|v| v.is_finite()));
        assert_eq!(back.predict(&x).unwrap(), y);
        for n in 0..blob.len() {
            assert!(decode(&blob[..n]).is_err(), "prefix of {n} bytes decoded");
        }
        for i in 0..blob.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = blob.clone();
                b[i] ^= flip;
                if let Ok(model) = decode(&b) {
                    let _ = model.predict(&vec![0.5; model.input_len()]);
                }
            }
        }
        // The trees record (after the standardization's op, 4 and two
        // tensors): an unknown post-transform code.
        let post = HEADER_LEN + 4 * 6 + 4 * 5;
        let mut b = blob.clone();
        assert_eq!(b[post..post + 4], 2u32.to_le_bytes());
        b[post..post + 4].copy_from_slice(&9u32.to_le_bytes());
        assert_eq!(decode(&b), Err(DecodeError::BadParams { layer: 1 }));
    }

    /// A kernel without the tree family names the op before reading its
    /// params.
    #[cfg(not(feature = "trees"))]
    #[test]
    fn tree_ops_are_refused_by_name() {
        let dense = Layer::dense_from_rows(0, 2, 2, &[1.0; 4], vec![0.0; 2].into()).unwrap();
        let mut blob = encode(&Model::new(2, vec![dense]).unwrap());
        blob[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&super::OP_TREES.to_le_bytes());
        let refused = crate::ModelError::NotInKernel {
            layer: 0,
            op: "tree_ensemble",
            feature: "trees",
        };
        assert_eq!(decode(&blob), Err(DecodeError::Model(refused)));
    }
}
