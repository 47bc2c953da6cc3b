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
//! its siblings. Its buffers are [`RecurrentLayer::scratch_len`] values
//! per row of [`crate::Scratch`].

use alloc::borrow::Cow;
use alloc::vec::Vec;

use super::Tensor;
use super::check::{MAX_WIDTH, check_len, check_tensor};
use crate::kernels::{self, packing::dense::pack_rows};
use crate::{Layer, ModelError};

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

    /// Scratch values per batch row: the projections of every step
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

/// A layer of the recurrent family: its sizes and its weights, each
/// direction's after the other's. `w` and `r` are the ONNX matrices
/// (`[G·H, F]` and `[G·H, H]` per direction) packed into the dense
/// kernel's column panels ([`kernels::packing::dense`]) — the original
/// GRU's `r` as two matrices, the z and r rows (`[2H, H]`) then the h rows
/// (`[H, H]`), since its candidate's product comes after the reset gate;
/// `b` is ONNX's `[Wb, Rb]` (`2·G·H` per direction), as is.
#[derive(Debug, Clone, PartialEq)]
pub struct RecurrentLayer<'a> {
    pub geom: RecurrentGeom,
    pub w: Tensor<'a>,
    pub r: Tensor<'a>,
    pub b: Tensor<'a>,
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
            if geom.cell
                == (Cell::Gru {
                    linear_before_reset: false,
                })
            {
                let (zr, n) = rd.split_at(2 * h * h);
                rp.extend(pack_rows(zr, h, 2 * h));
                rp.extend(pack_rows(n, h, h));
            } else {
                rp.extend(pack_rows(rd, h, gh));
            }
        }
        let layer = RecurrentLayer {
            geom,
            w: Cow::Owned(wp),
            r: Cow::Owned(rp),
            b,
        };
        Ok(Layer::Recurrent(layer, here))
    }
}

impl RecurrentLayer<'_> {
    /// This layer with every tensor copied out of the blob it borrows.
    pub(super) fn into_owned(self) -> RecurrentLayer<'static> {
        let own = |t: Tensor<'_>| Cow::Owned(t.into_owned());
        RecurrentLayer {
            geom: self.geom,
            w: own(self.w),
            r: own(self.r),
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
        check_tensor(index, "w", w, &self.w, scan)?;
        check_tensor(index, "r", r, &self.r, scan)?;
        check_tensor(index, "b", b, &self.b, scan)
    }

    /// Runs `batch` rows of `x` (`T·F` values each) into `y` (rows of
    /// [`RecurrentGeom::output_len`]), in `scratch` (`batch ×`
    /// [`RecurrentGeom::scratch_len`] values). Writes nothing if a length
    /// breaks [`crate::Model`]'s contract; slices by `get` and chunks, so
    /// the module carries no panic path.
    #[inline(never)]
    pub(super) fn run(&self, x: &[f32], batch: usize, y: &mut [f32], scratch: &mut [f32]) {
        let g = &self.geom;
        let (steps, f, h, dirs) = (g.steps, g.features, g.hidden, g.directions());
        let gh = g.cell.gates() * h;
        let out_w = g.output_len();
        if steps == 0 || f == 0 || h == 0 || x.len() != batch * steps * f {
            return;
        }
        let Some((proj, rest)) = scratch.split_at_mut_checked(batch * steps * gh) else {
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
        let Some(reset) = rest.get_mut(..batch * h) else {
            return;
        };
        for d in 0..dirs {
            let (Some(w), Some(r), Some(b)) = (
                self.w.get(d * gh * f..(d + 1) * gh * f),
                self.r.get(d * gh * h..(d + 1) * gh * h),
                self.b.get(d * 2 * gh..(d + 1) * 2 * gh),
            ) else {
                return;
            };
            let Some((wb, rb)) = b.split_at_checked(gh) else {
                return;
            };
            // Every step's projection at once: row `b · T + t` of `proj`.
            kernels::dense(x, w, wb, f, gh, proj);
            state.fill(0.0);
            cell.fill(0.0);
            for k in 0..steps {
                let t = if d == 0 { k } else { steps - 1 - k };
                // Step t's projections, one per row of the batch.
                let p = || proj.chunks_exact(gh).skip(t).step_by(steps);
                if g.cell
                    == (Cell::Gru {
                        linear_before_reset: false,
                    })
                {
                    let (Some((r_zr, r_n)), Some((rb_zr, rb_n)), Some((q_zr, q_n))) = (
                        r.split_at_checked(2 * h * h),
                        rb.split_at_checked(2 * h),
                        q.split_at_mut_checked(batch * 2 * h),
                    ) else {
                        return;
                    };
                    kernels::dense(state, r_zr, rb_zr, h, 2 * h, q_zr);
                    let rows = p().zip(q_zr.chunks_exact(2 * h)).zip(state.chunks_exact(h));
                    for (((p, q), h0), rh) in rows.zip(reset.chunks_exact_mut(h)) {
                        let (p_r, q_r) =
                            (p.get(h..2 * h).unwrap_or(&[]), q.get(h..).unwrap_or(&[]));
                        kernels::gru_reset(p_r, q_r, h0, rh);
                    }
                    let q_n = q_n.get_mut(..batch * h).unwrap_or(&mut []);
                    kernels::dense(reset, r_n, rb_n, h, h, q_n);
                    let rows = p().zip(q_zr.chunks_exact(2 * h)).zip(q_n.chunks_exact(h));
                    for (((p, q_zr), q_n), hr) in rows.zip(state.chunks_exact_mut(h)) {
                        kernels::gru_cell(p, q_zr, q_n, hr, false);
                    }
                } else {
                    kernels::dense(state, r, rb, h, gh, q);
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
mod tests {
    use super::*;
    use crate::{Model, math};
    use alloc::vec;

    /// Deterministic values in about [-1, 1).
    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|k| (((k + seed) * 7919 + seed * 31) % 211) as f32 / 105.0 - 1.0)
            .collect()
    }

    const CELLS: [Cell; 4] = [
        Cell::Rnn,
        Cell::Gru {
            linear_before_reset: true,
        },
        Cell::Gru {
            linear_before_reset: false,
        },
        Cell::Lstm,
    ];

    fn geom(cell: Cell, bidirectional: bool, sequence: bool) -> RecurrentGeom {
        RecurrentGeom {
            cell,
            steps: 5,
            features: 3,
            hidden: 7,
            bidirectional,
            sequence,
        }
    }

    /// The ONNX tensors `w`, `r`, `b` of `g`, seeded.
    fn tensors(g: &RecurrentGeom, seed: usize) -> [Vec<f32>; 3] {
        let [w, r, b] = g.tensor_lens().unwrap();
        [values(w, seed), values(r, seed + 1), values(b, seed + 2)]
    }

    fn model(g: RecurrentGeom, [w, r, b]: &[Vec<f32>; 3]) -> Model<'static> {
        let layer = Layer::recurrent(0, g, w, r, b.clone().into()).unwrap();
        Model::new(g.input_len(), vec![layer]).unwrap()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|v| v.to_bits()).collect()
    }

    /// A two-step RNN of one value, by hand in the defined order.
    #[test]
    fn rnn_is_the_defined_sum() {
        let g = RecurrentGeom {
            steps: 2,
            features: 1,
            hidden: 1,
            ..geom(Cell::Rnn, false, true)
        };
        let t = [vec![0.5], vec![-0.75], vec![0.25, 0.125]];
        let out = model(g, &t).predict(&[1.5, -2.0]).unwrap();
        let q0 = 0.0 * -0.75 + 0.125;
        let h1 = math::tanh((1.5 * 0.5 + 0.25) + q0);
        let h2 = math::tanh((-2.0 * 0.5 + 0.25) + (h1 * -0.75 + 0.125));
        assert_eq!(bits(&out), bits(&[h1, h2]));
    }

    /// Rows of a batch run as they run alone; the last step of a sequence
    /// output is the final state; each cell differs from the others.
    #[test]
    fn batches_sequences_and_cells_agree() {
        let mut finals = Vec::new();
        for cell in CELLS {
            for bi in [false, true] {
                let t = tensors(&geom(cell, bi, false), 3);
                let (last, seq) = (
                    model(geom(cell, bi, false), &t),
                    model(geom(cell, bi, true), &t),
                );
                let x = values(3 * 15, 11);
                let batch = last.predict(&x).unwrap();
                let all = seq.predict(&x).unwrap();
                let d = usize::from(bi) + 1;
                assert_eq!(all.len(), 3 * 5 * d * 7);
                for (row, xr) in x.chunks(15).enumerate() {
                    let one = last.predict(xr).unwrap();
                    assert_eq!(bits(&one), bits(&batch[row * d * 7..][..d * 7]), "{cell:?}");
                    let s = &all[row * 5 * d * 7..][..5 * d * 7];
                    // Forward's last step, and backward's step 0.
                    assert_eq!(bits(&one[..7]), bits(&s[4 * d * 7..][..7]));
                    if bi {
                        assert_eq!(bits(&one[7..]), bits(&s[7..14]));
                    }
                }
                finals.push(bits(&batch[..7]));
            }
        }
        for (i, a) in finals.iter().enumerate() {
            for b in finals.iter().skip(i + 2) {
                assert_ne!(a, b);
            }
        }
    }

    /// The backward direction is the forward one over the reversed steps.
    #[test]
    fn backward_reads_the_steps_in_reverse() {
        for cell in CELLS {
            let g = geom(cell, true, false);
            let [w, r, b] = tensors(&g, 5);
            let half = |t: &[f32]| t[t.len() / 2..].to_vec();
            let fwd = geom(cell, false, false);
            let backward_alone = model(fwd, &[half(&w), half(&r), half(&b)]);
            let x = values(15, 2);
            let reversed: Vec<f32> = x.chunks(3).rev().flatten().copied().collect();
            let both = model(g, &[w, r, b]).predict(&x).unwrap();
            let alone = backward_alone.predict(&reversed).unwrap();
            assert_eq!(bits(&both[7..]), bits(&alone), "{cell:?}");
        }
    }

    #[test]
    fn checks_sizes_and_tensors() {
        let g = geom(Cell::Lstm, true, false);
        let [w, r, b] = tensors(&g, 1);
        let err = Layer::recurrent(2, g, &w[1..], &r, b.clone().into()).unwrap_err();
        assert!(matches!(
            err,
            ModelError::TensorLen {
                layer: 2,
                tensor: "w",
                ..
            }
        ));
        let bad = |g: RecurrentGeom, b: Vec<f32>| {
            let layer = Layer::Recurrent(
                RecurrentLayer {
                    geom: g,
                    w: w.clone().into(),
                    r: r.clone().into(),
                    b: b.into(),
                },
                super::super::family::rnn(0, "lstm").unwrap(),
            );
            Model::new(g.input_len().max(1), vec![layer]).unwrap_err()
        };
        let short = b[1..].to_vec();
        assert!(matches!(
            bad(g, short),
            ModelError::TensorLen { tensor: "b", .. }
        ));
        let mut nan = b.clone();
        nan[3] = f32::NAN;
        assert_eq!(
            bad(g, nan),
            ModelError::NotFinite {
                layer: 0,
                tensor: "b"
            }
        );
        let zero = RecurrentGeom { hidden: 0, ..g };
        assert!(matches!(
            bad(zero, b.clone()),
            ModelError::BadParam {
                param: "hidden",
                ..
            }
        ));
        let huge = RecurrentGeom {
            steps: 1 << 40,
            ..g
        };
        assert_eq!(bad(huge, b), ModelError::TooLarge { layer: 0 });
    }
}
