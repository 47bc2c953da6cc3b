//! The shape ops of [`super::Lowering`]: `Reshape`, `Transpose` and
//! `Squeeze`, folded on constants, and on the computed tensor only where
//! they move no data — which may move its batch axis (the time-major
//! tensors around recurrent ops, see [`Act::batch_axis`]).

use ndarray::{ArrayD, IxDyn};

use super::super::proto::NodeProto;
use super::super::tensor::{Attrs, Const};
use super::super::{ImportError, NodeRef};
use super::{Act, Lowering, Value};

impl<'g> Lowering<'g> {
    /// `Reshape` with a constant target shape that keeps the batch.
    pub(super) fn reshape(
        &mut self,
        r: &NodeRef,
        n: &'g NodeProto,
        a: &mut Attrs<'_>,
    ) -> Result<(), ImportError> {
        let target: Vec<i64> = if self.opset < 5 {
            a.ints("shape")?
                .ok_or_else(|| r.err("needs a `shape` attribute"))?
        } else {
            self.const_i64(r, n, 1)?.into_iter().collect()
        };
        let allow_zero = a.int("allowzero", 0)? != 0;
        if allow_zero && target.contains(&0) {
            return Err(a.unsupported("allowzero", 1));
        }
        let v = match self.need(r, n, 0)?.clone() {
            Value::Const(c) => {
                let shape = resolve_shape(r, &target, &c.shape())?;
                let c = match c {
                    Const::F32(c) => Const::F32(reshape_const(r, c, &shape)?),
                    Const::I64(c) => Const::I64(reshape_const(r, c, &shape)?),
                    Const::Str(_) => return Err(r.err("cannot reshape a string tensor")),
                };
                Value::Const(c)
            }
            Value::Act(_) => {
                let x = self.any_act(r, n, 0)?;
                if x.batch_axis != 0 {
                    let v = Value::Act(reshape_inner(r, &target, x)?);
                    self.set(n, 0, v);
                    return Ok(());
                }
                let Some((&first, rest)) = target.split_first() else {
                    return Err(r.err("target shape is empty"));
                };
                let keeps_batch = first == 0
                    || self.batch.is_some_and(|b| first == b as i64)
                    || (first == -1 && rest.iter().all(|&d| d > 0));
                if !keeps_batch {
                    return Err(r.err(format!(
                        "target shape {target:?} does not keep the batch dimension first"
                    )));
                }
                let mut rest = rest.to_vec();
                // Copy-dimensions (0) refer to the input's dims after the batch.
                for (i, d) in rest.iter_mut().enumerate() {
                    if *d == 0 {
                        *d = *x.dims.get(i).ok_or_else(|| {
                            r.err(format!(
                                "target shape {target:?} copies a missing dimension"
                            ))
                        })? as i64;
                    }
                }
                let dims = resolve_shape(r, &rest, &x.dims)?;
                if dims.iter().product::<usize>() != x.width() {
                    return Err(r.err(format!(
                        "target shape {target:?} does not hold rows of {:?}",
                        x.dims
                    )));
                }
                Value::Act(Act { dims, ..x })
            }
        };
        self.set(n, 0, v);
        Ok(())
    }

    /// `Transpose`: folded on constants; on the computed tensor only when it
    /// moves no data (the non-unit axes but the batch keep their order; the
    /// batch may move).
    pub(super) fn transpose(
        &mut self,
        r: &NodeRef,
        n: &'g NodeProto,
        a: &mut Attrs<'_>,
    ) -> Result<(), ImportError> {
        let perm = a.ints("perm")?;
        let v = match self.need(r, n, 0)?.clone() {
            Value::Const(c) => {
                let rank = c.shape().len();
                let perm = check_perm(r, perm, rank)?;
                let c = match c {
                    Const::F32(c) => {
                        Const::F32(c.permuted_axes(perm).as_standard_layout().into_owned())
                    }
                    Const::I64(c) => {
                        Const::I64(c.permuted_axes(perm).as_standard_layout().into_owned())
                    }
                    Const::Str(_) => return Err(r.err("cannot transpose a string tensor")),
                };
                Value::Const(c)
            }
            Value::Act(_) => {
                let x = self.any_act(r, n, 0)?;
                let k = x.batch_axis;
                let mut full = x.dims.clone();
                full.insert(k, 1);
                let perm = check_perm(r, perm, full.len())?;
                let data = |p: &usize| full[*p] != 1 && *p != k;
                let moved: Vec<usize> = perm.iter().copied().filter(data).collect();
                let kept: Vec<usize> = (0..full.len()).filter(data).collect();
                if moved != kept {
                    return Err(a.unsupported(
                        "perm",
                        format!("{perm:?} (it moves data of the computed tensor; only transposes of weights fold)"),
                    ));
                }
                let dims = perm.iter().filter(|&&p| p != k).map(|&p| full[p]).collect();
                let batch_axis = perm.iter().position(|&p| p == k).unwrap_or(0);
                Value::Act(Act {
                    dims,
                    batch_axis,
                    ..x
                })
            }
        };
        self.set(n, 0, v);
        Ok(())
    }
}

impl<'g> Lowering<'g> {
    /// `Squeeze`: unit axes dropped, from a constant or (never the batch)
    /// from the computed tensor, which moves no data.
    pub(super) fn squeeze(
        &mut self,
        r: &NodeRef,
        n: &'g NodeProto,
        a: &mut Attrs<'_>,
    ) -> Result<(), ImportError> {
        let axes: Option<Vec<i64>> = if self.opset < 13 {
            a.ints("axes")?
        } else {
            match self.input(r, n, 1)? {
                None => None,
                Some(_) => Some(self.const_i64(r, n, 1)?.into_iter().collect()),
            }
        };
        let v = match self.need(r, n, 0)?.clone() {
            Value::Const(c) => {
                let shape = c.shape();
                let drop = squeezed(r, axes.as_deref(), &shape, None)?;
                let kept: Vec<usize> = (0..shape.len())
                    .filter(|i| !drop.contains(i))
                    .map(|i| shape[i])
                    .collect();
                Value::Const(match c {
                    Const::F32(c) => Const::F32(reshape_const(r, c, &kept)?),
                    Const::I64(c) => Const::I64(reshape_const(r, c, &kept)?),
                    Const::Str(_) => return Err(r.err("cannot squeeze a string tensor")),
                })
            }
            Value::Act(_) => {
                let x = self.any_act(r, n, 0)?;
                let k = x.batch_axis;
                let mut full = x.dims.clone();
                full.insert(k, 1);
                let drop = squeezed(r, axes.as_deref(), &full, Some(k))?;
                let dims = (0..full.len())
                    .filter(|&i| i != k && !drop.contains(&i))
                    .map(|i| full[i])
                    .collect();
                let batch_axis = k - drop.iter().filter(|&&i| i < k).count();
                Value::Act(Act {
                    dims,
                    batch_axis,
                    ..x
                })
            }
        };
        self.set(n, 0, v);
        Ok(())
    }
}

/// The axes a `Squeeze` of a tensor of `shape` drops (`axes`, or every
/// unit axis but the `batch` one), each checked to be of size 1.
fn squeezed(
    r: &NodeRef,
    axes: Option<&[i64]>,
    shape: &[usize],
    batch: Option<usize>,
) -> Result<Vec<usize>, ImportError> {
    let rank = shape.len() as i64;
    let Some(axes) = axes else {
        return Ok((0..shape.len())
            .filter(|&i| shape[i] == 1 && Some(i) != batch)
            .collect());
    };
    let mut drop = Vec::with_capacity(axes.len());
    for &axis in axes {
        let i = if axis < 0 { axis + rank } else { axis };
        let Some(i) = usize::try_from(i).ok().filter(|&i| i < shape.len()) else {
            return Err(r.err(format!("axis {axis} is out of range for rank {rank}")));
        };
        if Some(i) == batch {
            return Err(r.err(format!("axis {axis} is the batch, which kiln keeps")));
        }
        if shape[i] != 1 {
            return Err(r.err(format!("axis {axis} has size {}, not 1", shape[i])));
        }
        drop.push(i);
    }
    Ok(drop)
}

/// A `Reshape` of a computed tensor whose batch is not its first axis
/// (`x.batch_axis` = k > 0): moves no data when the batch stays at axis k
/// (`0`, copied) and the axes before it keep their product.
fn reshape_inner(r: &NodeRef, target: &[i64], x: Act) -> Result<Act, ImportError> {
    let k = x.batch_axis;
    if target.get(k) != Some(&0) {
        return Err(r.err(format!(
            "target shape {target:?} must keep the batch at axis {k} (a 0 there)"
        )));
    }
    let (before, after) = (&target[..k], &target[k + 1..]);
    let copy = |t: &[i64], from: &[usize]| -> Result<Vec<i64>, ImportError> {
        t.iter()
            .enumerate()
            .map(|(i, &d)| match d {
                0 => from.get(i).map(|&v| v as i64).ok_or_else(|| {
                    r.err(format!(
                        "target shape {target:?} copies a missing dimension"
                    ))
                }),
                d => Ok(d),
            })
            .collect()
    };
    let (pre, post) = x.dims.split_at(k);
    let before = copy(before, pre)?;
    let after = copy(after, post)?;
    if before.contains(&-1) {
        return Err(r.err(format!(
            "target shape {target:?} infers a dimension before the batch"
        )));
    }
    let pre_dims = resolve_shape(r, &before, pre)?;
    let post_dims = resolve_shape(r, &after, post)?;
    Ok(Act {
        dims: [pre_dims, post_dims].concat(),
        ..x
    })
}

/// Resolves a reshape target against `from` (its size): `-1` is inferred.
fn resolve_shape(r: &NodeRef, target: &[i64], from: &[usize]) -> Result<Vec<usize>, ImportError> {
    let total: usize = from.iter().product();
    let too_large = || r.err(format!("target shape {target:?} is too large"));
    let mut infer = None;
    let mut dims = Vec::with_capacity(target.len());
    for (i, &d) in target.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                dims.push(1);
            }
            0 => dims.push(
                *from
                    .get(i)
                    .ok_or_else(|| r.err("shape copies a missing dimension"))?,
            ),
            d if d > 0 => dims.push(d as usize),
            _ => return Err(r.err(format!("invalid target shape {target:?}"))),
        }
    }
    let known = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(too_large)?;
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(r.err(format!("target shape {target:?} does not fit {from:?}")));
        }
        dims[i] = total / known;
    } else if known != total {
        return Err(r.err(format!("target shape {target:?} does not fit {from:?}")));
    }
    Ok(dims)
}

fn reshape_const<T: Clone>(
    r: &NodeRef,
    c: ArrayD<T>,
    shape: &[usize],
) -> Result<ArrayD<T>, ImportError> {
    let c = c.as_standard_layout().into_owned();
    c.into_shape_with_order(IxDyn(shape))
        .map_err(|e| r.err(e.to_string()))
}

/// `perm` (default: reversed axes), checked to be a permutation of `rank`.
fn check_perm(r: &NodeRef, perm: Option<Vec<i64>>, rank: usize) -> Result<Vec<usize>, ImportError> {
    let perm: Vec<usize> = match perm {
        None => (0..rank).rev().collect(),
        Some(p) => p
            .iter()
            .map(|&v| usize::try_from(v).ok().filter(|&v| v < rank))
            .collect::<Option<_>>()
            .ok_or_else(|| r.err(format!("perm {p:?} is not a permutation of {rank} axes")))?,
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank || perm.iter().any(|&p| std::mem::replace(&mut seen[p], true)) {
        return Err(r.err(format!("perm {perm:?} is not a permutation of {rank} axes")));
    }
    Ok(perm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_reshape_targets() {
        let r = NodeRef {
            index: 0,
            name: String::new(),
            op: "Reshape".into(),
        };
        assert_eq!(resolve_shape(&r, &[-1], &[2, 3, 4]).unwrap(), [24]);
        assert_eq!(resolve_shape(&r, &[0, -1], &[2, 3, 4]).unwrap(), [2, 12]);
        assert_eq!(resolve_shape(&r, &[4, 6], &[24]).unwrap(), [4, 6]);
        assert!(resolve_shape(&r, &[5, -1], &[24]).is_err());
        assert!(resolve_shape(&r, &[-1, -1], &[24]).is_err());
        assert!(resolve_shape(&r, &[i64::MAX, i64::MAX], &[24]).is_err());
        assert!(resolve_shape(&r, &[-2], &[24]).is_err());
    }
}
