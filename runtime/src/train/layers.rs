//! Trainable layers and the [`Network`] that chains them, with
//! back-propagation.
//!
//! Every layer maps a batch `rows × in_len` to `rows × out_len`; image
//! layers read and write each row in NCHW order without the N (channel
//! planes one after another, each row-major) — the layout of the kernel
//! (`kiln_guest::kernels::generic::conv2d`). Parameters use the model file's layouts:
//! dense weights `[outputs, inputs]`, convolution filters
//! `[out_c, in_c·kh·kw]` (that is `[out_c, in_c, kh, kw]` flattened).

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::Rng;

use kiln_guest::{ConvGeom, PoolGeom, PoolKind};

use super::recurrent::Recurrent;
use crate::model::LayerSpec;

/// Hidden-layer activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
}

impl Activation {
    pub fn spec(self) -> LayerSpec {
        match self {
            Activation::Relu => LayerSpec::Relu,
            Activation::Tanh => LayerSpec::Tanh,
            Activation::Sigmoid => LayerSpec::Sigmoid,
        }
    }

    fn apply(self, z: &mut Array2<f32>) {
        match self {
            Activation::Relu => z.mapv_inplace(|v| v.max(0.0)),
            Activation::Tanh => z.mapv_inplace(f32::tanh),
            Activation::Sigmoid => z.mapv_inplace(|v| 1.0 / (1.0 + (-v).exp())),
        }
    }

    /// d(activation)/dz expressed through the activation's output `a`.
    fn derivative(self, a: &Array2<f32>) -> Array2<f32> {
        match self {
            Activation::Relu => a.mapv(|v| if v > 0.0 { 1.0 } else { 0.0 }),
            Activation::Tanh => a.mapv(|v| 1.0 - v * v),
            Activation::Sigmoid => a.mapv(|v| v * (1.0 - v)),
        }
    }
}

/// A fully connected layer: `y = x·Wᵀ + b`, `W` is `[outputs, inputs]`.
#[derive(Debug, Clone)]
pub struct Dense {
    pub w: Array2<f32>,
    pub b: Array1<f32>,
}

/// A 2-D convolution: `w` is `[out_c, in_c·kh·kw]`.
#[derive(Debug, Clone)]
pub struct Conv {
    pub geom: ConvGeom,
    pub w: Array2<f32>,
    pub b: Array1<f32>,
}

/// One step of a [`Network`].
#[derive(Debug, Clone)]
pub enum Layer {
    Dense(Dense),
    Conv(Conv),
    Pool(PoolKind, PoolGeom),
    Act(Activation),
    Recurrent(Recurrent),
}

/// Uniform initialisation: He (`√(6/fan_in)`) for ReLU, Glorot
/// (`√(6/(fan_in + fan_out))`) otherwise.
fn init(
    shape: (usize, usize),
    fan_in: usize,
    fan_out: usize,
    act: Activation,
    rng: &mut impl Rng,
) -> Array2<f32> {
    let limit = match act {
        Activation::Relu => (6.0 / fan_in as f32).sqrt(),
        _ => (6.0 / (fan_in + fan_out) as f32).sqrt(),
    };
    Array2::from_shape_fn(shape, |_| rng.random_range(-limit..limit))
}

impl Layer {
    /// A dense layer with initial weights for `act` and zero biases.
    pub fn dense(inputs: usize, outputs: usize, act: Activation, rng: &mut impl Rng) -> Self {
        Layer::Dense(Dense {
            w: init((outputs, inputs), inputs, outputs, act, rng),
            b: Array1::zeros(outputs),
        })
    }

    /// A convolution with initial weights for `act` and zero biases;
    /// `geom` must be valid.
    pub fn conv(geom: ConvGeom, act: Activation, rng: &mut impl Rng) -> Self {
        let taps = geom.in_c * geom.kh * geom.kw;
        let fan_out = geom.out_c * geom.kh * geom.kw;
        Layer::Conv(Conv {
            geom,
            w: init((geom.out_c, taps), taps, fan_out, act, rng),
            b: Array1::zeros(geom.out_c),
        })
    }

    /// `x` (`rows × in_len`) → `rows × out_len`.
    pub fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        match self {
            Layer::Dense(d) => x.dot(&d.w.t()) + &d.b,
            Layer::Conv(c) => {
                let g = &c.geom;
                let positions = g.out_h() * g.out_w();
                let z = im2col(x, g).dot(&c.w.t()) + &c.b;
                // (rows·P) × out_c → rows × (out_c·P), channel planes first.
                let z = z
                    .into_shape_with_order((x.nrows(), positions, g.out_c))
                    .expect("im2col rows");
                let z = z.permuted_axes([0, 2, 1]);
                z.as_standard_layout()
                    .into_owned()
                    .into_shape_with_order((x.nrows(), g.out_c * positions))
                    .expect("contiguous")
            }
            Layer::Pool(kind, g) => pool_forward(*kind, x, g),
            Layer::Act(a) => {
                let mut z = x.to_owned();
                a.apply(&mut z);
                z
            }
            Layer::Recurrent(r) => r.forward(x),
        }
    }

    /// Given the layer's input `x`, its output `y` and the loss gradient
    /// `dy` with respect to `y`, returns the gradient with respect to `x`
    /// and the gradients of the parameters ([`Layer::params_mut`] order).
    pub fn backward(
        &self,
        x: ArrayView2<f32>,
        y: &Array2<f32>,
        dy: &Array2<f32>,
    ) -> (Array2<f32>, Vec<Vec<f32>>) {
        match self {
            Layer::Dense(d) => {
                let gw = dy.t().dot(&x);
                let gb = dy.sum_axis(Axis(0));
                (
                    dy.dot(&d.w),
                    vec![gw.into_raw_vec_and_offset().0, gb.to_vec()],
                )
            }
            Layer::Conv(c) => {
                let g = &c.geom;
                let (rows, positions) = (x.nrows(), g.out_h() * g.out_w());
                // rows × (out_c·P) → (rows·P) × out_c.
                let dz = dy
                    .view()
                    .into_shape_with_order((rows, g.out_c, positions))
                    .expect("output rows")
                    .permuted_axes([0, 2, 1])
                    .as_standard_layout()
                    .into_owned()
                    .into_shape_with_order((rows * positions, g.out_c))
                    .expect("contiguous");
                let cols = im2col(x, g);
                let gw = dz.t().dot(&cols);
                let gb = dz.sum_axis(Axis(0));
                let dx = col2im(&dz.dot(&c.w), g, rows);
                (dx, vec![gw.into_raw_vec_and_offset().0, gb.to_vec()])
            }
            Layer::Pool(kind, g) => (pool_backward(*kind, x, dy, g), vec![]),
            Layer::Act(a) => (dy * &a.derivative(y), vec![]),
            Layer::Recurrent(r) => r.backward(x, dy),
        }
    }

    /// The trainable tensors, each with whether L2 decay applies (weights
    /// yes, biases no).
    pub fn params_mut(&mut self) -> Vec<(&mut [f32], bool)> {
        match self {
            Layer::Dense(Dense { w, b }) | Layer::Conv(Conv { w, b, .. }) => vec![
                (w.as_slice_mut().expect("standard layout"), true),
                (b.as_slice_mut().expect("standard layout"), false),
            ],
            Layer::Pool(..) | Layer::Act(_) => vec![],
            Layer::Recurrent(r) => r.params_mut(),
        }
    }

    /// [`Layer::params_mut`], read-only.
    pub fn params(&self) -> Vec<(&[f32], bool)> {
        match self {
            Layer::Dense(Dense { w, b }) | Layer::Conv(Conv { w, b, .. }) => vec![
                (w.as_slice().expect("standard layout"), true),
                (b.as_slice().expect("standard layout"), false),
            ],
            Layer::Pool(..) | Layer::Act(_) => vec![],
            Layer::Recurrent(r) => r.params(),
        }
    }
}

/// The patches a convolution reads: `(rows·P) × (in_c·kh·kw)`, zeros where
/// a tap falls in the padding.
fn im2col(x: ArrayView2<f32>, g: &ConvGeom) -> Array2<f32> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let taps = g.in_c * g.kh * g.kw;
    let mut cols = Array2::zeros((x.nrows() * oh * ow, taps));
    for (r, xr) in x.rows().into_iter().enumerate() {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut col = cols.row_mut((r * oh + oy) * ow + ox);
                each_tap(g, oy, ox, |xi, t| col[t] = xr[xi]);
            }
        }
    }
    cols
}

/// The adjoint of [`im2col`]: adds each patch gradient back onto the input.
fn col2im(dcols: &Array2<f32>, g: &ConvGeom, rows: usize) -> Array2<f32> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut dx = Array2::zeros((rows, g.in_c * g.in_h * g.in_w));
    for (r, mut dxr) in dx.rows_mut().into_iter().enumerate() {
        for oy in 0..oh {
            for ox in 0..ow {
                let col = dcols.row((r * oh + oy) * ow + ox);
                each_tap(g, oy, ox, |xi, t| dxr[xi] += col[t]);
            }
        }
    }
    dx
}

/// `f(input index, tap index)` for the taps of `(oy, ox)` inside the input.
fn each_tap(g: &ConvGeom, oy: usize, ox: usize, mut f: impl FnMut(usize, usize)) {
    for c in 0..g.in_c {
        for ky in 0..g.kh {
            let iy = (oy * g.stride + ky).wrapping_sub(g.pad_top);
            if iy >= g.in_h {
                continue;
            }
            for kx in 0..g.kw {
                let ix = (ox * g.stride + kx).wrapping_sub(g.pad_top);
                if ix < g.in_w {
                    f((c * g.in_h + iy) * g.in_w + ix, (c * g.kh + ky) * g.kw + kx);
                }
            }
        }
    }
}

/// Input indices of pooling window `(c, oy, ox)`, in the kernel's order.
fn window(g: &PoolGeom, c: usize, oy: usize, ox: usize) -> impl Iterator<Item = usize> + '_ {
    (0..g.k).flat_map(move |ky| {
        let row = (c * g.h + oy * g.stride + ky) * g.w + ox * g.stride;
        row..row + g.k
    })
}

fn pool_forward(kind: PoolKind, x: ArrayView2<f32>, g: &PoolGeom) -> Array2<f32> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut y = Array2::zeros((x.nrows(), g.output_len()));
    for (xr, mut yr) in x.rows().into_iter().zip(y.rows_mut()) {
        for c in 0..g.c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let vals = window(g, c, oy, ox).map(|i| xr[i]);
                    yr[(c * oh + oy) * ow + ox] = match kind {
                        PoolKind::Max => vals.fold(f32::NEG_INFINITY, f32::max),
                        PoolKind::Avg => vals.sum::<f32>() / (g.k * g.k) as f32,
                    };
                }
            }
        }
    }
    y
}

/// Max pooling routes each gradient to the window's first maximum; average
/// pooling spreads it evenly.
fn pool_backward(
    kind: PoolKind,
    x: ArrayView2<f32>,
    dy: &Array2<f32>,
    g: &PoolGeom,
) -> Array2<f32> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let share = 1.0 / (g.k * g.k) as f32;
    let mut dx = Array2::zeros(x.raw_dim());
    for ((xr, dyr), mut dxr) in x.rows().into_iter().zip(dy.rows()).zip(dx.rows_mut()) {
        for c in 0..g.c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let d = dyr[(c * oh + oy) * ow + ox];
                    match kind {
                        PoolKind::Max => {
                            let mut best = None;
                            for i in window(g, c, oy, ox) {
                                if best.is_none_or(|b: usize| xr[b] < xr[i]) {
                                    best = Some(i);
                                }
                            }
                            if let Some(b) = best {
                                dxr[b] += d;
                            }
                        }
                        PoolKind::Avg => window(g, c, oy, ox).for_each(|i| dxr[i] += d * share),
                    }
                }
            }
        }
    }
    dx
}

/// Layers applied in order; the last one produces the loss's input
/// (logits, or values for regression).
#[derive(Debug, Clone)]
pub struct Network {
    pub layers: Vec<Layer>,
}

impl Network {
    /// The network's output for `x`, in batches of at most 256 rows.
    pub fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let outs: Vec<Array2<f32>> = x
            .axis_chunks_iter(Axis(0), 256)
            .map(|chunk| self.forward(chunk).pop().expect("at least the input"))
            .collect();
        let views: Vec<_> = outs.iter().map(|o| o.view()).collect();
        ndarray::concatenate(Axis(0), &views).expect("same widths")
    }

    /// Every layer's output, input first: `acts[0] = x`.
    fn forward(&self, x: ArrayView2<f32>) -> Vec<Array2<f32>> {
        let mut acts = vec![x.to_owned()];
        for layer in &self.layers {
            let next = layer.forward(acts.last().expect("input").view());
            acts.push(next);
        }
        acts
    }

    /// The loss of the batch (plus `l2 / 2 · Σ w²` over weights) and its
    /// gradient for every parameter, in [`Network::params_mut`] order.
    pub fn loss_and_grad(
        &self,
        x: ArrayView2<f32>,
        loss: &impl Fn(&Array2<f32>) -> (f32, Array2<f32>),
        l2: f32,
    ) -> (f32, Vec<Vec<f32>>) {
        let acts = self.forward(x);
        let (mut value, mut delta) = loss(acts.last().expect("output"));
        let mut grads = Vec::new();
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let (dx, mut g) = layer.backward(acts[i].view(), &acts[i + 1], &delta);
            for ((p, decay), gp) in layer.params().into_iter().zip(&mut g) {
                if decay {
                    value += 0.5 * l2 * p.iter().map(|v| v * v).sum::<f32>();
                    for (gw, &wv) in gp.iter_mut().zip(p) {
                        *gw += l2 * wv;
                    }
                }
            }
            g.reverse();
            grads.extend(g);
            delta = dx;
        }
        grads.reverse();
        (value, grads)
    }

    /// Every trainable tensor, first layer first (weights before biases).
    pub fn params_mut(&mut self) -> Vec<(&mut [f32], bool)> {
        self.layers.iter_mut().flat_map(Layer::params_mut).collect()
    }
}
