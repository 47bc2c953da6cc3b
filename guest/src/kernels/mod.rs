//! Prediction kernels, in the shape of tract's linalg: one generic
//! definition per op, the weight layouts, the blocked kernels written once
//! over vector traits, and one folder per architecture that implements the
//! traits and overrides only the ops where it is faster.
//!
//! * [`generic`] — the scalar definition of every op. It defines the bits,
//!   including the order in which every sum accumulates, and runs
//!   everywhere.
//! * [`packing`] — the weight layouts the kernels read (f32 dense panels,
//!   int8 dense units, int8 convolution filters) and their packers.
//! * `blocked` — the f32 dense layer, f32 convolution and int8 convolution,
//!   written once over the vector traits `F32x4` and `I32x4`.
//! * `wasm` — SIMD128, for model modules (`+simd128`), with the relaxed-SIMD
//!   int8 dense kernel of the `relaxed-simd` build; `x86_64` — SSE2, for
//!   the host (`kiln predict --native`, evaluation, the native runner).
//! * [`geometry`] — the shapes of convolution and pooling layers.
//! * `check` (tests and the `kernel-tests` build) — every op against its
//!   generic definition over one shared case table, natively and, through
//!   the kernel-tests module, inside wasmtime.
//!
//! The functions re-exported here are what the model runs: the target
//! architecture's set, which is the generic one with that folder's
//! overrides. Each override performs the same operations per output, in
//! the same order, so it is bit-identical to its definition. The
//! accumulation order is the contract that makes results bit-exact across
//! platforms; see `docs/abi.md` ("Arithmetic").

pub mod generic;
pub mod geometry;
pub mod packing;

#[cfg(any(test, feature = "kernel-tests"))]
pub mod check;

cfg_select! {
    all(target_arch = "wasm32", target_feature = "simd128") => {
        mod blocked;
        mod wasm;
        use wasm as arch;
    }
    target_arch = "x86_64" => {
        mod blocked;
        mod x86_64;
        use x86_64 as arch;
    }
    _ => {
        use generic as arch;
    }
}

pub use arch::{
    add, clip, concat, conv2d, conv2d_i8, dense, dense_i8, dequantize, dequantize_planes,
    dynamic_scale, gate, global_avg_pool, group_softmax, gru_cell, gru_reset, hard_sigmoid,
    hard_swish, leaky_relu, lstm_cell, pool, pool_i8, prelu, product_i8, quantize as quantize_i8,
    relu, requantize, requantize_planes, rnn_cell, scale_shift, sigmoid, softmax, standardize,
    tanh,
};
pub use geometry::{ConvGeom, PoolGeom, PoolKind};
