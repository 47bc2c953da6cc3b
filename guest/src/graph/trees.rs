//! The `tree_ensemble` layer of a model file → the guest's
//! [`Layer::Trees`]: its I32 tables checked for negative values (naming
//! the tensor and the position) and turned into the kernel's `u32`s, its
//! tensors' shapes checked against each other; [`crate::Model::new`] then
//! checks every node ([`crate::TreeLayer`]).

use std::format;
use std::vec;
use std::vec::Vec;

use super::layer_tensors::LayerTensors;
use super::{BinaryScores, ConvertError, LayerSpec, PostTransform, TreeAggregate};
use crate::trees::{Aggregate, Binary, NODE_WORDS, Post};
use crate::{Layer, TreeLayer};

/// Layer `at.layer` (`spec`, a `tree_ensemble`) reading rows of `width`.
pub(super) fn layer(
    at: &LayerTensors<'_>,
    spec: &LayerSpec,
    width: usize,
) -> Result<Layer<'static>, ConvertError> {
    let LayerSpec::TreeEnsemble {
        targets,
        nodes,
        thresholds,
        roots,
        leaf_targets,
        leaf_values,
        base,
        aggregate,
        post_transform,
        binary,
    } = spec
    else {
        unreachable!("called for tree_ensemble only")
    };
    // A build without the family refuses the layer before any check.
    crate::model::family::trees(at.layer, at.op)?;
    let t = at.get(thresholds)?;
    let &[n] = t.shape.as_slice() else {
        return Err(at.shape_err(thresholds, &t.shape, "[nodes]".into()));
    };
    let thresholds = at.f32s(thresholds, t)?;
    let node_words = at.get(nodes)?;
    if node_words.shape != [n, NODE_WORDS] {
        let want = format!("[{n}, {NODE_WORDS}] (one row per threshold)");
        return Err(at.shape_err(nodes, &node_words.shape, want));
    }
    let values = at.get(leaf_values)?;
    let &[entries] = values.shape.as_slice() else {
        return Err(at.shape_err(leaf_values, &values.shape, "[entries]".into()));
    };
    let r = at.get(roots)?;
    if r.shape.len() != 1 {
        return Err(at.shape_err(roots, &r.shape, "[trees]".into()));
    }
    let base = match base {
        Some(name) => at.f32s(name, at.vector(name, *targets)?)?.to_vec(),
        None => vec![0.0; *targets],
    };
    let layer = TreeLayer {
        features: width,
        targets: *targets,
        aggregate: match aggregate {
            TreeAggregate::Sum => Aggregate::Sum,
            TreeAggregate::Average => Aggregate::Average,
        },
        post: match post_transform {
            PostTransform::None => Post::None,
            PostTransform::Logistic => Post::Logistic,
            PostTransform::Softmax => Post::Softmax,
            PostTransform::SoftmaxZero => Post::SoftmaxZero,
            PostTransform::Probit => Post::Probit,
        },
        binary: match binary {
            BinaryScores::No => Binary::No,
            BinaryScores::Complement => Binary::Complement,
            BinaryScores::Negate => Binary::Negate,
        },
        nodes: indices(at, nodes, node_words)?.into(),
        thresholds: thresholds.to_vec().into(),
        roots: indices(at, roots, r)?.into(),
        leaf_targets: indices(at, leaf_targets, at.vector(leaf_targets, entries)?)?.into(),
        leaf_values: at.f32s(leaf_values, values)?.to_vec().into(),
        base: base.into(),
    };
    Ok(Layer::trees(at.layer, layer)?)
}

/// The I32 table `name` as `u32`s; a negative value is refused by position.
fn indices(at: &LayerTensors<'_>, name: &str, t: &super::Tensor) -> Result<Vec<u32>, ConvertError> {
    let v = at.i32s(name, t)?;
    v.iter()
        .enumerate()
        .map(|(index, &value)| {
            u32::try_from(value).map_err(|_| ConvertError::Index {
                layer: at.layer,
                op: at.op,
                tensor: name.into(),
                index,
                value,
            })
        })
        .collect()
}

#[cfg(all(test, feature = "trees"))]
mod tests {
    use std::collections::BTreeMap;
    use std::string::String;

    use super::super::{FORMAT_VERSION, Graph, InputSpec, Task, Tensor, TensorData, to_kernel};
    use super::*;
    use crate::ModelError;

    /// One stump on feature 1 (`x1 < 0.5`, NaN → false) and the tensors it
    /// names; `edit` changes them before conversion.
    fn convert(
        edit: impl FnOnce(&mut BTreeMap<String, Tensor>, &mut LayerSpec),
    ) -> Result<crate::Model<'static>, ConvertError> {
        let i32s = |shape: Vec<usize>, v: Vec<i32>| Tensor {
            shape,
            data: TensorData::I32(v),
        };
        let mut t = BTreeMap::new();
        t.insert(
            "n".into(),
            i32s(vec![3, 4], vec![2 | 16, 1, 1, 2, 0, 0, 0, 1, 0, 0, 1, 2]),
        );
        t.insert("t".into(), Tensor::new(vec![3], vec![0.5, 0.0, 0.0]));
        t.insert("r".into(), i32s(vec![1], vec![0]));
        t.insert("lt".into(), i32s(vec![2], vec![0, 0]));
        t.insert("lv".into(), Tensor::new(vec![2], vec![-1.0, 1.0]));
        let mut spec = LayerSpec::TreeEnsemble {
            targets: 1,
            nodes: "n".into(),
            thresholds: "t".into(),
            roots: "r".into(),
            leaf_targets: "lt".into(),
            leaf_values: "lv".into(),
            base: None,
            aggregate: TreeAggregate::Sum,
            post_transform: PostTransform::Logistic,
            binary: BinaryScores::Complement,
        };
        edit(&mut t, &mut spec);
        let graph = Graph {
            format: FORMAT_VERSION,
            name: "stump".into(),
            version: "1".into(),
            task: Task::Classification,
            input: InputSpec {
                name: "x".into(),
                shape: vec![2],
                features: vec![],
            },
            target: None,
            labels: vec![],
            layers: vec![spec],
            wiring: vec![],
        };
        to_kernel(&graph, &t)
    }

    #[test]
    fn a_stump_converts_and_predicts() {
        let m = convert(|_, _| {}).unwrap();
        assert_eq!(m.output_len(), 2);
        let p = crate::math::sigmoid(-1.0);
        assert_eq!(m.predict(&[9.0, 0.0]).unwrap(), [1.0 - p, p]);
        // NaN in feature 1 goes to the false child, by the node's own
        // direction; feature 0 no node tests.
        assert_eq!(m.missing_features(), [0, 1]);
        assert_eq!(
            m.predict(&[0.0, f32::NAN]).unwrap()[1],
            crate::math::sigmoid(1.0)
        );
    }

    #[test]
    fn errors_name_the_tensor_and_node() {
        let err = convert(|t, _| {
            t.insert(
                "r".into(),
                Tensor {
                    shape: vec![1],
                    data: TensorData::I32(vec![-1]),
                },
            );
        })
        .unwrap_err();
        assert!(
            matches!(&err, ConvertError::Index { tensor, index: 0, value: -1, .. } if tensor == "r"),
            "{err}"
        );
        let err = convert(|t, _| {
            t.insert("t".into(), Tensor::new(vec![2], vec![0.5, 0.0]));
        })
        .unwrap_err();
        assert!(
            matches!(&err, ConvertError::TensorShape { tensor, .. } if tensor == "n"),
            "{err}"
        );
        let err = convert(|t, _| {
            let TensorData::I32(v) = &mut t.get_mut("n").unwrap().data else {
                panic!()
            };
            v[1] = 2;
        })
        .unwrap_err();
        assert_eq!(
            err,
            ConvertError::Graph(ModelError::TreeNode {
                layer: 0,
                node: 0,
                field: "feature"
            })
        );
        let err = convert(|_, s| {
            if let LayerSpec::TreeEnsemble { post_transform, .. } = s {
                *post_transform = PostTransform::Softmax;
            }
        })
        .unwrap_err();
        assert!(err.to_string().contains("post_transform"), "{err}");
        let err = convert(|t, _| {
            t.insert(
                "lv".into(),
                Tensor {
                    shape: vec![2],
                    data: TensorData::I32(vec![0, 1]),
                },
            );
        })
        .unwrap_err();
        assert!(matches!(err, ConvertError::TensorDtype { .. }), "{err}");
    }
}
