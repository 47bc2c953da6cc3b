//! The ops that make a kiln model a graph: `Add` and `Mul` of two computed
//! tensors (a residual connection, a squeeze-and-excitation gate) and
//! `Concat` along the channel axis; and `ReduceMean` over the spatial axes,
//! the other spelling of a global average pool.

use super::super::proto::NodeProto;
use super::super::tensor::Attrs;
use super::super::{ImportError, NodeRef};
use super::{Act, Lowering, Op};

impl<'g> Lowering<'g> {
    /// `Add` or `Mul` of two computed tensors: of one shape, or (`Mul`) a
    /// `[C, H, W]` tensor and a `[C, 1, 1]` (or `[C]`) gate, in either order.
    pub(super) fn join_binary(
        &mut self,
        r: &NodeRef,
        n: &'g NodeProto,
        op: &str,
    ) -> Result<(), ImportError> {
        let (x, y) = (self.act(r, n, 0)?, self.act(r, n, 1)?);
        let is_gate = |g: &Act, x: &Act| {
            g.dims.first() == x.dims.first()
                && g.dims.len() <= x.dims.len()
                && g.dims[1..].iter().all(|&d| d == 1)
        };
        let (x, y) = match op {
            _ if x.dims == y.dims => (x, y),
            "Mul" if is_gate(&y, &x) => (x, y),
            "Mul" if is_gate(&x, &y) => (y, x),
            _ => {
                return Err(r.err(format!(
                    "computed inputs of shapes {:?} and {:?}: kiln {} computed tensors of one shape{}",
                    x.dims,
                    y.dims,
                    if op == "Add" { "adds" } else { "multiplies" },
                    if op == "Mul" {
                        ", or a [C, H, W] tensor by a [C, 1, 1] gate"
                    } else {
                        ""
                    }
                )));
            }
        };
        let kind = match op {
            "Add" => Op::Add,
            "Mul" => Op::Mul,
            _ => {
                return Err(r.err(
                    "both inputs are computed tensors; kiln supports this op with one constant operand",
                ));
            }
        };
        let shape = self.kiln_shapes[x.id].clone();
        let v = self.push_reading(kind, vec![x.id, y.id], x.dims, shape);
        self.set(n, 0, v);
        Ok(())
    }

    /// `Concat` of computed tensors along the channel axis (axis 1 of
    /// `[N, C, …]`).
    pub(super) fn concat(
        &mut self,
        r: &NodeRef,
        n: &'g NodeProto,
        a: &mut Attrs<'_>,
    ) -> Result<(), ImportError> {
        let axis = a.int("axis", i64::MIN)?;
        if axis == i64::MIN {
            return Err(r.err("needs an `axis` attribute"));
        }
        let mut parts = Vec::with_capacity(n.input.len());
        for i in 0..n.input.len() {
            parts.push(self.act(r, n, i)?);
        }
        let Some(first) = parts.first() else {
            return Err(r.err("has no inputs"));
        };
        let rank = first.dims.len() as i64 + 1;
        let ax = if axis < 0 { axis + rank } else { axis };
        if ax != 1 {
            return Err(a.unsupported(
                "axis",
                format!("{axis} (kiln concatenates channels, axis 1)"),
            ));
        }
        if parts.len() < 2 {
            return Err(r.err("concatenates fewer than two computed tensors"));
        }
        let rest = &first.dims[1..];
        if parts
            .iter()
            .any(|p| p.dims.len() != first.dims.len() || p.dims[1..] != *rest)
        {
            let shapes: Vec<&Vec<usize>> = parts.iter().map(|p| &p.dims).collect();
            return Err(r.err(format!(
                "inputs of shapes {shapes:?} differ beyond the channel axis"
            )));
        }
        let mut dims = vec![parts.iter().map(|p| p.dims[0]).sum()];
        dims.extend_from_slice(rest);
        let k = &self.kiln_shapes[first.id];
        let mut shape = vec![parts.iter().map(|p| self.kiln_shapes[p.id][0]).sum()];
        shape.extend_from_slice(&k[1..]);
        let ids = parts.iter().map(|p| p.id).collect();
        let v = self.push_reading(Op::Concat, ids, dims, shape);
        self.set(n, 0, v);
        Ok(())
    }

    /// `ReduceMean` over the spatial axes of `[N, C, H, W]` (axes 2 and 3):
    /// a global average pool, keeping `[C, 1, 1]` with `keepdims`.
    pub(super) fn reduce_mean(
        &mut self,
        r: &NodeRef,
        n: &'g NodeProto,
        a: &mut Attrs<'_>,
    ) -> Result<(), ImportError> {
        let keep = a.int("keepdims", 1)?;
        let axes = match a.ints("axes")? {
            Some(v) => v,
            None => match self.input(r, n, 1)? {
                Some(_) => self.const_i64(r, n, 1)?.iter().copied().collect(),
                None => Vec::new(),
            },
        };
        a.ignore(&["noop_with_empty_axes"]);
        let x = self.act(r, n, 0)?;
        let rank = x.dims.len() as i64 + 1;
        let mut axes: Vec<i64> = axes
            .iter()
            .map(|&v| if v < 0 { v + rank } else { v })
            .collect();
        axes.sort_unstable();
        if rank != 4 || axes != [2, 3] {
            return Err(r.err(format!(
                "axes {axes:?} of rows shaped {:?}: kiln averages over H and W of [N, C, H, W] only",
                x.dims
            )));
        }
        let channels = x.dims[0];
        let dims = if keep != 0 {
            vec![channels, 1, 1]
        } else {
            vec![channels]
        };
        let v = self.push(Op::GlobalAvgPool { channels }, dims);
        self.set(n, 0, v);
        Ok(())
    }
}
