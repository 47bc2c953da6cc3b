//! Recurrent layers (simple RNN, GRU in both formulations, LSTM), forward
//! and bidirectional, with back-propagation through time.
//!
//! A row is a sequence `[T, F]`, time-major (step 0's F features, then step
//! 1's, …). The maths and the parameter layouts are ONNX's RNN/GRU/LSTM
//! operators' (docs/model-format.md): `w` `[D, G·H, F]`,
//! `r` `[D, G·H, H]`, `b` `[D, 2·G·H]` (input biases, then recurrent
//! biases), gates in the order z r h (GRU) and i o f c (LSTM), zero initial
//! state. The output is every step's state `[T, D·H]` (`sequence`; per step
//! the forward direction's H values, then the backward one's) or the final
//! states `[D·H]` (the forward direction's after step T − 1, the backward
//! one's after it has read step 0).
//!
//! The backward pass replays the forward pass to get each step's gates,
//! then walks the steps in reverse.

use ndarray::{Array1, Array2, Array3, ArrayView2, Axis, s};
use rand::Rng;

/// The recurrent cell: the guest's, so training and the kernel share one
/// definition.
pub use kiln_guest::Cell;

/// A recurrent layer over rows of `steps × inputs` values.
#[derive(Debug, Clone)]
pub struct Recurrent {
    pub cell: Cell,
    /// T: time steps per row.
    pub steps: usize,
    /// F: features per step.
    pub inputs: usize,
    /// H: state size per direction.
    pub hidden: usize,
    pub bidirectional: bool,
    /// Output every step's state (`[T, D·H]`), not only the final ones.
    pub sequence: bool,
    /// `[D, G·H, F]`.
    pub w: Array3<f32>,
    /// `[D, G·H, H]`.
    pub r: Array3<f32>,
    /// `[D, 2·G·H]`: `Wb` then `Rb`.
    pub b: Array2<f32>,
}

/// One step of one direction, as the backward pass needs it.
struct Step {
    /// The time index the step read.
    t: usize,
    /// The state before the step (and the LSTM cell state before it).
    h_prev: Array2<f32>,
    c_prev: Option<Array2<f32>>,
    /// The gates after their non-linearity, `rows × G·H`: RNN `[h]`, GRU
    /// `[z, r, n]`, LSTM `[i, o, f, c~]`.
    gates: Array2<f32>,
    /// GRU only: `Rh h + Rbh` (linear before reset) or `r ⊙ h` (original).
    aux: Option<Array2<f32>>,
    h: Array2<f32>,
    c: Option<Array2<f32>>,
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

impl Recurrent {
    /// A layer with PyTorch's initialisation: `w` and `r` uniform in
    /// `±1/√H`, biases zero, except an LSTM's forget-gate input bias at 1
    /// (Keras' `unit_forget_bias`, which lets gradients through early on).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cell: Cell,
        steps: usize,
        inputs: usize,
        hidden: usize,
        bidirectional: bool,
        sequence: bool,
        rng: &mut impl Rng,
    ) -> Self {
        let (d, gh) = (1 + bidirectional as usize, cell.gates() * hidden);
        let limit = 1.0 / (hidden as f32).sqrt();
        let mut uniform = |shape| Array3::from_shape_fn(shape, |_| rng.random_range(-limit..limit));
        let w = uniform((d, gh, inputs));
        let r = uniform((d, gh, hidden));
        let mut b = Array2::zeros((d, 2 * gh));
        if cell == Cell::Lstm {
            b.slice_mut(s![.., 2 * hidden..3 * hidden]).fill(1.0);
        }
        Recurrent {
            cell,
            steps,
            inputs,
            hidden,
            bidirectional,
            sequence,
            w,
            r,
            b,
        }
    }

    fn directions(&self) -> usize {
        1 + self.bidirectional as usize
    }

    /// Values per output row: `T·D·H` with `sequence`, else `D·H`.
    pub fn output_len(&self) -> usize {
        let last = self.directions() * self.hidden;
        if self.sequence {
            self.steps * last
        } else {
            last
        }
    }

    /// `x` (`rows × T·F`) → `rows × output_len()`.
    pub fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut out = Array2::zeros((x.nrows(), self.output_len()));
        for d in 0..self.directions() {
            let trace = self.run(d, x);
            if self.sequence {
                for st in &trace {
                    self.out_cols(&mut out, st.t, d).assign(&st.h);
                }
            } else {
                let last = &trace.last().expect("T ≥ 1").h;
                self.out_cols(&mut out, 0, d).assign(last);
            }
        }
        out
    }

    /// The columns of an output holding direction `d`'s state at step `t`
    /// (with `sequence`; without it, `t` is 0).
    fn out_cols<'a>(
        &self,
        out: &'a mut Array2<f32>,
        t: usize,
        d: usize,
    ) -> ndarray::ArrayViewMut2<'a, f32> {
        let start = (t * self.directions() + d) * self.hidden;
        out.slice_mut(s![.., start..start + self.hidden])
    }

    /// Direction `d` over `x`, step by step in its reading order.
    fn run(&self, d: usize, x: ArrayView2<f32>) -> Vec<Step> {
        let (rows, h) = (x.nrows(), self.hidden);
        let w = self.w.index_axis(Axis(0), d);
        let r = self.r.index_axis(Axis(0), d);
        let gh = self.cell.gates() * h;
        let wb = self.b.slice(s![d, ..gh]);
        let rb = self.b.slice(s![d, gh..]);
        let mut h_prev = Array2::<f32>::zeros((rows, h));
        let mut c_prev = (self.cell == Cell::Lstm).then(|| Array2::<f32>::zeros((rows, h)));
        let mut trace = Vec::with_capacity(self.steps);
        for k in 0..self.steps {
            let t = if d == 0 { k } else { self.steps - 1 - k };
            let xt = x.slice(s![.., t * self.inputs..(t + 1) * self.inputs]);
            let mut gates = xt.dot(&w.t()) + wb;
            let (mut aux, mut c) = (None, None);
            let next = match self.cell {
                Cell::Rnn => {
                    gates += &(h_prev.dot(&r.t()) + rb);
                    gates.mapv_inplace(f32::tanh);
                    gates.clone()
                }
                Cell::Gru {
                    linear_before_reset,
                } => {
                    let zr = h_prev.dot(&r.slice(s![..2 * h, ..]).t()) + rb.slice(s![..2 * h]);
                    let mut g = gates.slice_mut(s![.., ..2 * h]);
                    g += &zr;
                    g.mapv_inplace(sigmoid);
                    let rg = gates.slice(s![.., h..2 * h]).to_owned();
                    let rh = r.slice(s![2 * h.., ..]);
                    let a = if linear_before_reset {
                        let hn = h_prev.dot(&rh.t()) + rb.slice(s![2 * h..]);
                        let a = &rg * &hn;
                        aux = Some(hn);
                        a
                    } else {
                        let gated = &rg * &h_prev;
                        let a = gated.dot(&rh.t()) + rb.slice(s![2 * h..]);
                        aux = Some(gated);
                        a
                    };
                    let mut n = gates.slice_mut(s![.., 2 * h..]);
                    n += &a;
                    n.mapv_inplace(f32::tanh);
                    let z = gates.slice(s![.., ..h]);
                    let n = gates.slice(s![.., 2 * h..]);
                    (1.0 - &z) * n + &z * &h_prev
                }
                Cell::Lstm => {
                    gates += &(h_prev.dot(&r.t()) + rb);
                    gates.slice_mut(s![.., ..3 * h]).mapv_inplace(sigmoid);
                    gates.slice_mut(s![.., 3 * h..]).mapv_inplace(f32::tanh);
                    let [i, o, f, g] =
                        [0, 1, 2, 3].map(|k| gates.slice(s![.., k * h..(k + 1) * h]));
                    let cp = c_prev.as_ref().expect("LSTM state");
                    let cell = &f * cp + &i * &g;
                    let next = &o * &cell.mapv(f32::tanh);
                    c = Some(cell);
                    next
                }
            };
            trace.push(Step {
                t,
                h_prev: std::mem::replace(&mut h_prev, next.clone()),
                c_prev: std::mem::replace(&mut c_prev, c.clone()),
                gates,
                aux,
                h: next,
                c,
            });
        }
        trace
    }

    /// Back-propagation through time: given the layer's input `x` and the
    /// loss gradient `dy` with respect to its output, returns the gradient
    /// with respect to `x` and those of `w`, `r` and `b` (flattened, in
    /// [`Recurrent::params_mut`] order).
    pub fn backward(&self, x: ArrayView2<f32>, dy: &Array2<f32>) -> (Array2<f32>, Vec<Vec<f32>>) {
        let (rows, h) = (x.nrows(), self.hidden);
        let gh = self.cell.gates() * h;
        let mut dx = Array2::<f32>::zeros(x.raw_dim());
        let mut gw = Array3::<f32>::zeros(self.w.raw_dim());
        let mut gr = Array3::<f32>::zeros(self.r.raw_dim());
        let mut gb = Array2::<f32>::zeros(self.b.raw_dim());
        let dirs = self.directions();
        for d in 0..dirs {
            let trace = self.run(d, x);
            let w = self.w.index_axis(Axis(0), d);
            let r = self.r.index_axis(Axis(0), d);
            let mut dh = Array2::<f32>::zeros((rows, h));
            let mut dc = Array2::<f32>::zeros((rows, h));
            for (k, st) in trace.iter().enumerate().rev() {
                let col = if self.sequence {
                    Some((st.t * dirs + d) * h)
                } else {
                    (k + 1 == trace.len()).then_some(d * h)
                };
                if let Some(c) = col {
                    dh += &dy.slice(s![.., c..c + h]);
                }
                // Gradients of the input-side and recurrent-side
                // pre-activations (equal except for the GRU's n gate).
                let mut dxg = Array2::<f32>::zeros((rows, gh));
                let mut dh_prev;
                let gate =
                    |a: &Array2<f32>, k: usize| a.slice(s![.., k * h..(k + 1) * h]).to_owned();
                match self.cell {
                    Cell::Rnn => {
                        dxg.assign(&(&dh * &st.h.mapv(|v| 1.0 - v * v)));
                        dh_prev = dxg.dot(&r);
                        add_outer(gr.index_axis_mut(Axis(0), d), dxg.view(), st.h_prev.view());
                        add_rows(gb.slice_mut(s![d, gh..]), &dxg);
                    }
                    Cell::Gru {
                        linear_before_reset,
                    } => {
                        let (z, rg, n) =
                            (gate(&st.gates, 0), gate(&st.gates, 1), gate(&st.gates, 2));
                        let aux = st.aux.as_ref().expect("GRU trace");
                        let dn = &dh * &(1.0 - &z) * &n.mapv(|v| 1.0 - v * v);
                        let dz = &dh * &(&st.h_prev - &n) * &z.mapv(|v| v * (1.0 - v));
                        dh_prev = &dh * &z;
                        // d(loss)/d(r), and the n gate's recurrent-side
                        // gradient with the vector it multiplies.
                        let (dr, dn_rec, rec_in) = if linear_before_reset {
                            (&dn * aux, &dn * &rg, &st.h_prev)
                        } else {
                            let dgated = dn.dot(&r.slice(s![2 * h.., ..]));
                            dh_prev += &(&dgated * &rg);
                            (&dgated * &st.h_prev, dn.clone(), aux)
                        };
                        let dr = dr * &rg.mapv(|v| v * (1.0 - v));
                        dxg.slice_mut(s![.., ..h]).assign(&dz);
                        dxg.slice_mut(s![.., h..2 * h]).assign(&dr);
                        dxg.slice_mut(s![.., 2 * h..]).assign(&dn);
                        let mut drg = dxg.clone();
                        drg.slice_mut(s![.., 2 * h..]).assign(&dn_rec);
                        let zr = drg.slice(s![.., ..2 * h]);
                        dh_prev += &zr.dot(&r.slice(s![..2 * h, ..]));
                        if linear_before_reset {
                            dh_prev += &dn_rec.dot(&r.slice(s![2 * h.., ..]));
                        }
                        let mut grd = gr.index_axis_mut(Axis(0), d);
                        add_outer(grd.slice_mut(s![..2 * h, ..]), zr, st.h_prev.view());
                        add_outer(grd.slice_mut(s![2 * h.., ..]), dn_rec.view(), rec_in.view());
                        add_rows(gb.slice_mut(s![d, gh..]), &drg);
                    }
                    Cell::Lstm => {
                        let [i, o, f, g] = [0, 1, 2, 3].map(|k| gate(&st.gates, k));
                        let c = st.c.as_ref().expect("LSTM trace");
                        let tc = c.mapv(f32::tanh);
                        dc += &(&dh * &o * &tc.mapv(|v| 1.0 - v * v));
                        let d_o = &dh * &tc;
                        let cp = st.c_prev.as_ref().expect("LSTM trace");
                        let sig = |a: &Array2<f32>| a.mapv(|v| v * (1.0 - v));
                        dxg.slice_mut(s![.., ..h]).assign(&(&dc * &g * &sig(&i)));
                        dxg.slice_mut(s![.., h..2 * h]).assign(&(&d_o * &sig(&o)));
                        dxg.slice_mut(s![.., 2 * h..3 * h])
                            .assign(&(&dc * cp * &sig(&f)));
                        dxg.slice_mut(s![.., 3 * h..])
                            .assign(&(&dc * &i * &g.mapv(|v| 1.0 - v * v)));
                        dc = &dc * &f;
                        dh_prev = dxg.dot(&r);
                        add_outer(gr.index_axis_mut(Axis(0), d), dxg.view(), st.h_prev.view());
                        add_rows(gb.slice_mut(s![d, gh..]), &dxg);
                    }
                }
                let xt = x.slice(s![.., st.t * self.inputs..(st.t + 1) * self.inputs]);
                add_outer(gw.index_axis_mut(Axis(0), d), dxg.view(), xt);
                add_rows(gb.slice_mut(s![d, ..gh]), &dxg);
                let mut dxt = dx.slice_mut(s![.., st.t * self.inputs..(st.t + 1) * self.inputs]);
                dxt += &dxg.dot(&w);
                dh = dh_prev;
            }
        }
        (
            dx,
            vec![
                gw.into_raw_vec_and_offset().0,
                gr.into_raw_vec_and_offset().0,
                gb.into_raw_vec_and_offset().0,
            ],
        )
    }

    /// `w`, `r` (L2 decay applies) and `b` (it does not).
    pub fn params_mut(&mut self) -> Vec<(&mut [f32], bool)> {
        vec![
            (self.w.as_slice_mut().expect("standard layout"), true),
            (self.r.as_slice_mut().expect("standard layout"), true),
            (self.b.as_slice_mut().expect("standard layout"), false),
        ]
    }

    /// [`Recurrent::params_mut`], read-only.
    pub fn params(&self) -> Vec<(&[f32], bool)> {
        vec![
            (self.w.as_slice().expect("standard layout"), true),
            (self.r.as_slice().expect("standard layout"), true),
            (self.b.as_slice().expect("standard layout"), false),
        ]
    }
}

/// `g += dᵀ · v`: a weight gradient summed over the rows.
fn add_outer(mut g: ndarray::ArrayViewMut2<f32>, d: ArrayView2<f32>, v: ArrayView2<f32>) {
    g += &d.t().dot(&v);
}

/// `g += Σ_rows d`: a bias gradient.
fn add_rows(mut g: ndarray::ArrayViewMut1<f32>, d: &Array2<f32>) {
    let sum: Array1<f32> = d.sum_axis(Axis(0));
    g += &sum;
}

#[cfg(test)]
mod tests {
    //! The forward pass against a scalar transcription of docs/model-format.md's
    //! formulas (indices into the ONNX layouts, one row, one value at a
    //! time). The gradients are checked in `losses.rs`.
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// The schema's maths for one row `x` (`T·F` values).
    fn reference(l: &Recurrent, x: &[f32]) -> Vec<f32> {
        let (t_n, f_n, h_n, g_n) = (l.steps, l.inputs, l.hidden, l.cell.gates());
        let dirs = l.directions();
        let mut seq = vec![0.0; t_n * dirs * h_n];
        let mut last = vec![0.0; dirs * h_n];
        for d in 0..dirs {
            let (mut h, mut c) = (vec![0.0f32; h_n], vec![0.0f32; h_n]);
            for k in 0..t_n {
                let t = if d == 0 { k } else { t_n - 1 - k };
                let xt = &x[t * f_n..(t + 1) * f_n];
                // W_g x + Wb_g and R_g v + Rb_g for gate g, unit j.
                let wx = |g: usize, j: usize| {
                    let row = g * h_n + j;
                    (0..f_n).map(|i| l.w[[d, row, i]] * xt[i]).sum::<f32>() + l.b[[d, row]]
                };
                let rv = |g: usize, j: usize, v: &[f32]| {
                    let row = g * h_n + j;
                    (0..h_n).map(|i| l.r[[d, row, i]] * v[i]).sum::<f32>()
                        + l.b[[d, g_n * h_n + row]]
                };
                let next: Vec<f32> = match l.cell {
                    Cell::Rnn => (0..h_n).map(|j| (wx(0, j) + rv(0, j, &h)).tanh()).collect(),
                    Cell::Gru {
                        linear_before_reset,
                    } => {
                        let z: Vec<f32> =
                            (0..h_n).map(|j| sigmoid(wx(0, j) + rv(0, j, &h))).collect();
                        let r: Vec<f32> =
                            (0..h_n).map(|j| sigmoid(wx(1, j) + rv(1, j, &h))).collect();
                        let rh: Vec<f32> = (0..h_n).map(|j| r[j] * h[j]).collect();
                        (0..h_n)
                            .map(|j| {
                                let n = if linear_before_reset {
                                    (wx(2, j) + r[j] * rv(2, j, &h)).tanh()
                                } else {
                                    (wx(2, j) + rv(2, j, &rh)).tanh()
                                };
                                (1.0 - z[j]) * n + z[j] * h[j]
                            })
                            .collect()
                    }
                    Cell::Lstm => {
                        let gate = |g, j| wx(g, j) + rv(g, j, &h);
                        let mut next = vec![0.0; h_n];
                        for j in 0..h_n {
                            let (i, o, f) = (
                                sigmoid(gate(0, j)),
                                sigmoid(gate(1, j)),
                                sigmoid(gate(2, j)),
                            );
                            c[j] = f * c[j] + i * gate(3, j).tanh();
                            next[j] = o * c[j].tanh();
                        }
                        next
                    }
                };
                h = next;
                let at = (t * dirs + d) * h_n;
                seq[at..at + h_n].copy_from_slice(&h);
            }
            last[d * h_n..(d + 1) * h_n].copy_from_slice(&h);
        }
        if l.sequence { seq } else { last }
    }

    #[test]
    fn forward_is_the_schema_maths() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x = Array2::from_shape_fn((3, 5 * 2), |_| rng.random_range(-2.0f32..2.0));
        for cell in Cell::ALL {
            for (bi, seq) in [(false, false), (false, true), (true, false), (true, true)] {
                let mut l = Recurrent::new(cell, 5, 2, 3, bi, seq, &mut rng);
                // Non-zero biases everywhere, so a swapped Wb/Rb shows.
                l.b.mapv_inplace(|_| rng.random_range(-0.5..0.5));
                let y = l.forward(x.view());
                assert_eq!(y.ncols(), l.output_len());
                for (row, out) in x.rows().into_iter().zip(y.rows()) {
                    let want = reference(&l, row.as_slice().unwrap());
                    for (a, b) in out.iter().zip(&want) {
                        assert!(
                            (a - b).abs() < 1e-5,
                            "{cell:?} bi {bi} seq {seq}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}
