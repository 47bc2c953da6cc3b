//! The graph's edges: the declared input (its batch and row shape), the
//! declared output checked against what kiln computes, and class labels
//! from a scikit-learn label branch.

use std::collections::HashMap;

use super::super::ImportError;
use super::super::proto::{self, GraphProto};
use super::super::tensor::{self, Const};
use super::{Act, Value};

/// The input's batch size (if fixed), the axis of its batch, and its
/// per-row dims. The batch is the first axis, or the second when only that
/// one is symbolic: a recurrent op's time-major `[T, N, F]`.
pub(super) fn input_shape(
    input: &proto::ValueInfoProto,
) -> Result<(Option<usize>, usize, Vec<usize>), ImportError> {
    let bad = |why: String| ImportError::Graph(format!("input `{}`: {why}", input.name));
    let t = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| bad("is not a tensor".into()))?;
    if t.elem_type != proto::data_type::FLOAT {
        return Err(bad(format!(
            "has element type {}; kiln models take FLOAT input",
            proto::data_type::name(t.elem_type)
        )));
    }
    let shape = t
        .shape
        .as_ref()
        .ok_or_else(|| bad("has no declared shape".into()))?;
    let fixed =
        |d: &proto::Dimension| matches!(d.value, Some(proto::DimensionValue::DimValue(v)) if v > 0);
    let time_major = shape.dim.len() >= 3
        && fixed(&shape.dim[0])
        && !fixed(&shape.dim[1])
        && shape.dim[2..].iter().all(fixed);
    let mut dims_in_order = shape.dim.clone();
    if time_major {
        dims_in_order.swap(0, 1);
    }
    let Some((first, rest)) = dims_in_order.split_first() else {
        return Err(bad("is a scalar; kiln needs [batch, ...]".into()));
    };
    let batch = match first.value {
        Some(proto::DimensionValue::DimValue(v)) if v > 0 => Some(v as usize),
        _ => None,
    };
    let mut dims = Vec::new();
    for (i, d) in rest.iter().enumerate() {
        match d.value {
            Some(proto::DimensionValue::DimValue(v)) if v > 0 => dims.push(v as usize),
            _ => {
                return Err(bad(format!(
                    "dimension {} is not a fixed size; only the batch dimension may be symbolic",
                    i + 1
                )));
            }
        }
    }
    let width = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if width.is_none_or(|w| w > kiln_guest_max_width()) {
        return Err(bad(format!("rows of shape {dims:?} are too large")));
    }
    Ok((batch, usize::from(time_major), dims))
}

/// The widest row the kernel runs.
pub(super) fn kiln_guest_max_width() -> usize {
    crate::kiln_guest::MAX_WIDTH
}

/// Refuses a result whose per-row shape disagrees with the declared one.
pub(super) fn check_declared(info: &proto::ValueInfoProto, out: &Act) -> Result<(), ImportError> {
    let Some(shape) = info
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
    else {
        return Ok(());
    };
    if shape.dim.is_empty() {
        return Ok(());
    }
    let declared: Vec<Option<usize>> = shape.dim[1..]
        .iter()
        .map(|d| match d.value {
            Some(proto::DimensionValue::DimValue(v)) if v > 0 => Some(v as usize),
            _ => None,
        })
        .collect();
    let agrees = declared.len() == out.dims.len()
        && declared
            .iter()
            .zip(&out.dims)
            .all(|(d, &o)| d.is_none_or(|d| d == o));
    if agrees {
        Ok(())
    } else {
        Err(ImportError::Graph(format!(
            "output `{}`: kiln computes rows of shape {:?} but the graph declares {declared:?}; \
             refusing rather than guessing",
            info.name, out.dims
        )))
    }
}

/// Class names from a scikit-learn label branch:
/// `ArrayFeatureExtractor(classes, ArgMax(output))`.
pub(super) fn class_labels(
    graph: &GraphProto,
    output: &str,
    values: &HashMap<&str, Value>,
) -> Vec<String> {
    let argmax: Vec<&str> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "ArgMax" && n.input.first().is_some_and(|i| i == output))
        .filter_map(|n| n.output.first().map(String::as_str))
        .collect();
    for n in &graph.node {
        if n.op_type == "ArrayFeatureExtractor"
            && n.input.len() == 2
            && argmax.contains(&n.input[1].as_str())
        {
            let classes = graph
                .initializer
                .iter()
                .find(|t| t.name == n.input[0])
                .and_then(|t| tensor::decode(t).ok())
                .or_else(|| match values.get(n.input[0].as_str()) {
                    Some(Value::Const(c)) => Some(c.clone()),
                    _ => None,
                });
            match classes {
                Some(Const::I64(a)) => return a.iter().map(|v| v.to_string()).collect(),
                Some(Const::Str(s)) => return s,
                _ => {}
            }
        }
    }
    Vec::new()
}
