//! The recurrent family ([`RecurrentLayer`], feature `rnn`): simple RNN,
//! GRU (both gate formulations) and LSTM layers over rows of `T` steps of
//! `F` features (time-major), forward or bidirectional, each a
//! [`Layer::Recurrent`](super::Layer::Recurrent). A build without the
//! feature holds none of them ([`super::family`]).
//!
//! The maths are ONNX's `RNN`, `GRU` and `LSTM` with their default
//! activations, zero initial state, no peepholes and no clip (the schema:
//! `docs/model-format.md`). A layer runs each direction as one matrix
//! product for the input projection of every step of every row of the
//! batch (`[B·T, F] × [F, G·H]`, the dense kernel), then the steps in
//! order, each one recurrent product (`[B, H] × [H, G·H]`, the dense
//! kernel again) and the gate update of [`kernels::generic::rnn_cell`] and
//! its siblings. Its buffers are [`RecurrentLayer::scratch_lens`] values
//! per row of [`crate::Scratch`]. With int8 weights ([`int8`]) each
//! product is the int8 dense kernel's, between a quantize and a
//! dequantize; the gates and the cell state stay f32.

use alloc::borrow::Cow;
use alloc::vec::Vec;

mod int8;

pub use int8::RecurrentI8;

use super::check::{MAX_WIDTH, check_len, check_tensor};
use super::{Tensor, family, grow};
use crate::kernels::generic::{MatrixI8, ProductBuffers};
use crate::kernels::{self, packing::dense::pack_rows};
use crate::{Layer, ModelError, RunError};

/// The cell of a recurrent layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// `h = tanh(W x + Wb + R h + Rb)`.
    Rnn,
    /// Gates z, r, h. `linear_before_reset`: the reset gate scales the
    /// candidate's recurrent product (`r ⊙ (Rh h + Rbh)`: ONNX's
    /// `linear_before_reset=1`, PyTorch, Keras' `reset_after=True`), else
    /// its input (`Rh (r ⊙ h) + Rbh`: the original GRU).
    Gru { linear_before_reset: bool },
    /// Gates i, o, f, c; a cell state beside the hidden one.
    Lstm,
}

impl Cell {
    /// Every cell, both GRU formulations.
    pub const ALL: [Cell; 4] = [
        Cell::Rnn,
        Cell::Gru {
            linear_before_reset: true,
        },
        Cell::Gru {
            linear_before_reset: false,
        },
        Cell::Lstm,
    ];

    /// Gates per step: 1, 3 or 4.
    pub fn gates(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Gru { .. } => 3,
            Cell::Lstm => 4,
        }
    }

    /// The layer's op, as errors name it.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Rnn => "rnn",
            Cell::Gru { .. } => "gru",
            Cell::Lstm => "lstm",
        }
    }
}

/// The sizes of a recurrent layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecurrentGeom {
    pub cell: Cell,
    /// `T`, the steps of a row.
    pub steps: usize,
    /// `F`, the features of a step.
    pub features: usize,
    /// `H`, the hidden state's values per direction.
    pub hidden: usize,
    /// Also a backward pass (`D = 2`).
    pub bidirectional: bool,
    /// Output every step's state (`[T, D·H]`) rather than the last (`[D·H]`).
    pub sequence: bool,
}

impl RecurrentGeom {
    /// `D`: 1, or 2 when bidirectional.
    pub fn directions(&self) -> usize {
        1 + usize::from(self.bidirectional)
    }

    /// `G·H`, the gate values of one step of one direction.
    fn gate_len(&self) -> Option<usize> {
        self.cell.gates().checked_mul(self.hidden)
    }

    /// Values per input row, `T·F` (saturating; [`Model::new`](super::Model::new)
    /// refuses what exceeds the width limit).
    pub fn input_len(&self) -> usize {
        self.steps.saturating_mul(self.features)
    }

    /// Values per output row: `T·D·H` with `sequence`, else `D·H`.
    pub fn output_len(&self) -> usize {
        let state = self.directions().saturating_mul(self.hidden);
        if self.sequence {
            self.steps.saturating_mul(state)
        } else {
            state
        }
    }

    /// The lengths of the tensors `w` (`D·G·H·F`), `r` (`D·G·H·H`) and
    /// `b` (`D·2·G·H`), if they fit in `usize`.
    pub fn tensor_lens(&self) -> Option<[usize; 3]> {
        let dgh = self.gate_len()?.checked_mul(self.directions())?;
        Some([
            dgh.checked_mul(self.features)?,
            dgh.checked_mul(self.hidden)?,
            dgh.checked_mul(2)?,
        ])
    }

    /// f32 scratch values per batch row: the projections of every step
    /// (`T·G·H`), the recurrent products (`G·H`), the hidden and cell
    /// states and the reset state of the original GRU (`H` each).
    /// Saturating; [`RecurrentLayer::check`] bounds it.
    pub fn scratch_len(&self) -> usize {
        let gh = self.gate_len().unwrap_or(usize::MAX);
        self.steps
            .saturating_add(1)
            .saturating_mul(gh)
            .saturating_add(self.hidden.saturating_mul(3))
    }
}

/// A layer of the recurrent family: its sizes, its weights and `b`,
/// ONNX's `[Wb, Rb]` (`2·G·H` per direction), as is.
#[derive(Debug, Clone, PartialEq)]
pub struct RecurrentLayer<'a> {
    pub geom: RecurrentGeom,
    pub weights: RecurrentWeights<'a>,
    pub b: Tensor<'a>,
}

/// The matrices `w` (`[G·H, F]` per direction) and `r` (`[G·H, H]`), each
/// direction's after the other's, packed for the dense kernels — the
/// original GRU's `r` as two matrices, the z and r rows (`[2H, H]`) then
/// the h rows (`[H, H]`), since its candidate's product comes after the
/// reset gate.
#[derive(Debug, Clone, PartialEq)]
pub enum RecurrentWeights<'a> {
    /// f32, in the f32 dense kernel's column panels
    /// ([`kernels::packing::dense`]).
    F32 { w: Tensor<'a>, r: Tensor<'a> },
    /// int8 per output channel, run by the int8 dense kernel ([`int8`]);
    /// only in builds with `int8-rnn` ([`family::Int8Rnn`]).
    Int8(RecurrentI8<'a>, family::Int8Rnn),
}

impl<'a> Layer<'a> {
    /// A recurrent layer from the ONNX tensors `w` (`[D, G·H, F]`), `r`
    /// (`[D, G·H, H]`) and `b` (`[D, 2·G·H]`), as the model file stores
    /// them; an error naming layer `index` in a build without the family.
    pub fn recurrent(
        index: usize,
        geom: RecurrentGeom,
        w: &[f32],
        r: &[f32],
        b: Tensor<'a>,
    ) -> Result<Self, ModelError> {
        let here = super::family::rnn(index, geom.cell.name())?;
        let [w_len, r_len, _] = geom
            .tensor_lens()
            .ok_or(ModelError::TooLarge { layer: index })?;
        check_len(index, "w", w_len, w.len())?;
        check_len(index, "r", r_len, r.len())?;
        let (f, h) = (geom.features, geom.hidden);
        let gh = geom.cell.gates() * h;
        let mut wp = Vec::with_capacity(w_len);
        let mut rp = Vec::with_capacity(r_len);
        for d in 0..geom.directions() {
            wp.extend(pack_rows(&w[d * gh * f..(d + 1) * gh * f], f, gh));
            let rd = &r[d * gh * h..(d + 1) * gh * h];
            if geom.splits_r() {
                let (zr, n) = rd.split_at(2 * h * h);
                rp.extend(pack_rows(zr, h, 2 * h));
                rp.extend(pack_rows(n, h, h));
            } else {
                rp.extend(pack_rows(rd, h, gh));
            }
        }
        let layer = RecurrentLayer {
            geom,
            weights: RecurrentWeights::F32 {
                w: Cow::Owned(wp),
                r: Cow::Owned(rp),
            },
            b,
        };
        Ok(Layer::Recurrent(layer, here))
    }
}

impl RecurrentGeom {
    /// Whether `r` runs as two products (the original GRU's).
    fn splits_r(&self) -> bool {
        self.cell
            == Cell::Gru {
                linear_before_reset: false,
            }
    }
}

/// One direction's matrix as a product reads it.
#[derive(Clone, Copy)]
enum Matrix<'m> {
    F32(&'m [f32]),
    Int8(MatrixI8<'m>, family::Int8Rnn),
}

impl Matrix<'_> {
    /// `y = x · Mᵀ + bias` over the rows of `x` (`inputs` values each,
    /// `outputs` written per row), the int8 products in `q`.
    fn product(
        self,
        x: &[f32],
        inputs: usize,
        outputs: usize,
        bias: &[f32],
        y: &mut [f32],
        q: &mut ProductBuffers<'_>,
    ) {
        match self {
            Matrix::F32(w) => kernels::dense(x, w, bias, inputs, outputs, y),
            Matrix::Int8(m, _) => kernels::product_i8(m, x, [inputs, outputs], bias, y, q),
        }
    }

    /// The first `rows` output rows and the rest (of `inputs` values each).
    fn split(self, rows: usize, inputs: usize) -> Option<(Self, Self)> {
        Some(match self {
            Matrix::F32(w) => {
                let (a, b) = w.split_at_checked(rows.checked_mul(inputs)?)?;
                (Matrix::F32(a), Matrix::F32(b))
            }
            Matrix::Int8(m, here) => {
                let (a, b) = int8::split(m, rows, inputs)?;
                (Matrix::Int8(a, here), Matrix::Int8(b, here))
            }
        })
    }
}

impl RecurrentLayer<'_> {
    /// This layer with every tensor copied out of the blob it borrows.
    pub(super) fn into_owned(self) -> RecurrentLayer<'static> {
        let own = |t: Tensor<'_>| Cow::Owned(t.into_owned());
        RecurrentLayer {
            geom: self.geom,
            weights: match self.weights {
                RecurrentWeights::F32 { w, r } => RecurrentWeights::F32 {
                    w: own(w),
                    r: own(r),
                },
                RecurrentWeights::Int8(q, here) => RecurrentWeights::Int8(q.into_owned(), here),
            },
            b: own(self.b),
        }
    }

    /// Checks the sizes and tensors; `scan` also checks that every value
    /// is finite.
    pub(super) fn check(&self, index: usize, scan: bool) -> Result<(), ModelError> {
        let g = &self.geom;
        let too_large = ModelError::TooLarge { layer: index };
        for (value, param) in [
            (g.steps, "steps"),
            (g.features, "features"),
            (g.hidden, "hidden"),
        ] {
            if value == 0 {
                return Err(ModelError::BadParam {
                    layer: index,
                    param,
                });
            }
        }
        if g.scratch_len() > MAX_WIDTH {
            return Err(too_large);
        }
        let [w, r, b] = g.tensor_lens().ok_or(too_large)?;
        match &self.weights {
            RecurrentWeights::F32 { w: wt, r: rt } => {
                check_tensor(index, "w", w, wt, scan)?;
                check_tensor(index, "r", r, rt, scan)?;
            }
            RecurrentWeights::Int8(q, _) => q.check(index, g)?,
        }
        check_tensor(index, "b", b, &self.b, scan)
    }

    /// Values per batch row of the three scratch buffers: f32
    /// ([`RecurrentGeom::scratch_len`]), and, for int8 weights, the
    /// quantized inputs (i8) and the accumulators (i32) of the products.
    pub(crate) fn scratch_lens(&self) -> [usize; 3] {
        let f32s = self.geom.scratch_len();
        match self.weights {
            RecurrentWeights::F32 { .. } => [f32s, 0, 0],
            RecurrentWeights::Int8(..) => {
                let [scales, i8s, i32s] = int8::scratch_lens(&self.geom);
                [f32s.saturating_add(scales), i8s, i32s]
            }
        }
    }

    /// Direction `d`'s matrices `w` and `r`.
    fn matrices(&self, d: usize) -> Option<(Matrix<'_>, Matrix<'_>)> {
        let g = &self.geom;
        let (f, h, gh) = (g.features, g.hidden, g.gate_len()?);
        match &self.weights {
            RecurrentWeights::F32 { w, r } => Some((
                Matrix::F32(w.get(d * gh * f..(d + 1) * gh * f)?),
                Matrix::F32(r.get(d * gh * h..(d + 1) * gh * h)?),
            )),
            &RecurrentWeights::Int8(ref q, here) => {
                let (w, r) = q.direction(g, d)?;
                Some((Matrix::Int8(w, here), Matrix::Int8(r, here)))
            }
        }
    }

    /// Runs `batch` rows of `x` (`T·F` values each) into `y` (rows of
    /// [`RecurrentGeom::output_len`]), in `scratch` (`batch ×`
    /// [`RecurrentLayer::scratch_lens`] values). Writes nothing if a length
    /// breaks [`crate::Model`]'s contract; slices by `get` and chunks, so
    /// the module carries no panic path.
    #[inline(never)]
    pub(super) fn run(&self, x: &[f32], batch: usize, y: &mut [f32], scratch: &mut Buffers) {
        let g = &self.geom;
        let (steps, f, h, dirs) = (g.steps, g.features, g.hidden, g.directions());
        let gh = g.cell.gates() * h;
        let out_w = g.output_len();
        if steps == 0 || f == 0 || h == 0 || x.len() != batch * steps * f {
            return;
        }
        let Buffers { f32s, i8s, i32s } = scratch;
        let Some((proj, rest)) = f32s.split_at_mut_checked(batch * steps * gh) else {
            return;
        };
        let Some((q, rest)) = rest.split_at_mut_checked(batch * gh) else {
            return;
        };
        let Some((state, rest)) = rest.split_at_mut_checked(batch * h) else {
            return;
        };
        let Some((cell, rest)) = rest.split_at_mut_checked(batch * h) else {
            return;
        };
        let Some((reset, scales)) = rest.split_at_mut_checked(batch * h) else {
            return;
        };
        let mut qb = ProductBuffers {
            scales,
            q: i8s,
            acc: i32s,
        };
        for d in 0..dirs {
            let (Some((w, r)), Some(b)) =
                (self.matrices(d), self.b.get(d * 2 * gh..(d + 1) * 2 * gh))
            else {
                return;
            };
            let Some((wb, rb)) = b.split_at_checked(gh) else {
                return;
            };
            // Every step's projection at once: row `b · T + t` of `proj`.
            w.product(x, f, gh, wb, proj, &mut qb);
            state.fill(0.0);
            cell.fill(0.0);
            for k in 0..steps {
                let t = if d == 0 { k } else { steps - 1 - k };
                // Step t's projections, one per row of the batch.
                let p = || proj.chunks_exact(gh).skip(t).step_by(steps);
                if g.splits_r() {
                    let (Some((r_zr, r_n)), Some((rb_zr, rb_n)), Some((q_zr, q_n))) = (
                        r.split(2 * h, h),
                        rb.split_at_checked(2 * h),
                        q.split_at_mut_checked(batch * 2 * h),
                    ) else {
                        return;
                    };
                    r_zr.product(state, h, 2 * h, rb_zr, q_zr, &mut qb);
                    let rows = p().zip(q_zr.chunks_exact(2 * h)).zip(state.chunks_exact(h));
                    for (((p, q), h0), rh) in rows.zip(reset.chunks_exact_mut(h)) {
                        let (p_r, q_r) =
                            (p.get(h..2 * h).unwrap_or(&[]), q.get(h..).unwrap_or(&[]));
                        kernels::gru_reset(p_r, q_r, h0, rh);
                    }
                    let q_n = q_n.get_mut(..batch * h).unwrap_or(&mut []);
                    r_n.product(reset, h, h, rb_n, q_n, &mut qb);
                    let rows = p().zip(q_zr.chunks_exact(2 * h)).zip(q_n.chunks_exact(h));
                    for (((p, q_zr), q_n), hr) in rows.zip(state.chunks_exact_mut(h)) {
                        kernels::gru_cell(p, q_zr, q_n, hr, false);
                    }
                } else {
                    r.product(state, h, gh, rb, q, &mut qb);
                    let rows = p().zip(q.chunks_exact(gh)).zip(state.chunks_exact_mut(h));
                    for (((p, q), hr), cr) in rows.zip(cell.chunks_exact_mut(h)) {
                        match g.cell {
                            Cell::Rnn => kernels::rnn_cell(p, q, hr),
                            Cell::Lstm => kernels::lstm_cell(p, q, hr, cr),
                            Cell::Gru { .. } => {
                                let (q_zr, q_n) = q.split_at_checked(2 * h).unwrap_or((q, &[]));
                                kernels::gru_cell(p, q_zr, q_n, hr, true)
                            }
                        }
                    }
                }
                if g.sequence {
                    write(y, out_w, (t * dirs + d) * h, state, h);
                }
            }
            if !g.sequence {
                write(y, out_w, d * h, state, h);
            }
        }
    }
}

/// The recurrent layers' scratch buffers ([`RecurrentLayer::scratch_lens`]
/// values per row each), part of [`crate::Scratch`].
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    f32s: Vec<f32>,
    i8s: Vec<i8>,
    i32s: Vec<i32>,
}

impl Buffers {
    pub(crate) const fn new() -> Self {
        Buffers {
            f32s: Vec::new(),
            i8s: Vec::new(),
            i32s: Vec::new(),
        }
    }

    /// Grows the buffers to `batch` rows of the largest needs of `layers`.
    pub(crate) fn reserve<'l, 'a: 'l>(
        &mut self,
        layers: impl Iterator<Item = &'l RecurrentLayer<'a>>,
        batch: usize,
        limit: usize,
    ) -> Result<(), RunError> {
        let need = layers.fold([0; 3], |m, l| {
            let n = l.scratch_lens();
            [m[0].max(n[0]), m[1].max(n[1]), m[2].max(n[2])]
        });
        let len = |n: usize| {
            batch
                .checked_mul(n)
                .filter(|&n| n <= limit)
                .ok_or(RunError::BadBatch)
        };
        grow(&mut self.f32s, len(need[0])?)?;
        grow(&mut self.i8s, len(need[1])?)?;
        grow(&mut self.i32s, len(need[2])?)
    }
}

/// Copies each row's state (`h` values of `state`) to values `at ..` of
/// its row of `y` (rows of `out_w`).
fn write(y: &mut [f32], out_w: usize, at: usize, state: &[f32], h: usize) {
    for (yr, hr) in y
        .chunks_exact_mut(out_w.max(1))
        .zip(state.chunks_exact(h.max(1)))
    {
        for (o, &v) in yr.iter_mut().skip(at).zip(hr) {
            *o = v;
        }
    }
}

/// A build without the family refuses its layers by name.
#[cfg(all(test, not(feature = "rnn")))]
mod without_feature {
    use super::*;

    #[test]
    fn recurrent_layers_are_refused_by_name() {
        let geom = RecurrentGeom {
            cell: Cell::Lstm,
            steps: 2,
            features: 1,
            hidden: 1,
            bidirectional: false,
            sequence: false,
        };
        let layer = Layer::recurrent(3, geom, &[0.0; 4], &[0.0; 4], alloc::vec![0.0; 8].into());
        let refused = ModelError::NotInKernel {
            layer: 3,
            op: "lstm",
            feature: "rnn",
        };
        assert_eq!(layer, Err(refused));
    }
}

#[cfg(all(test, feature = "rnn"))]
mod tests;
