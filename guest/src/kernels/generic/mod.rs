//! The generic kernels: one scalar definition per op, which defines the
//! op's bits — including the order in which every sum accumulates — and
//! runs everywhere.
//!
//! The architecture folders override some of these with vector code that
//! performs the same operations in the same order per output (or, for
//! integer sums, any order: they are exact), so every override equals its
//! definition bit for bit; `kernels::check` tests each against it
//! over a shared case table. The accumulation order is the contract that
//! makes results bit-exact across platforms; see `docs/abi.md`
//! ("Arithmetic").

mod activation;
mod channel;
mod clip;
mod conv;
mod conv_i8;
mod dense;
mod dense_i8;
mod join;
mod quantize;
mod recurrent;
pub mod trees;

pub use activation::{relu, sigmoid, softmax, standardize, tanh};
pub use channel::{global_avg_pool, group_softmax, leaky_relu, prelu, scale_shift};
pub use clip::{HARD_SWISH_ALPHA, clip, hard_sigmoid, hard_swish};
pub use conv::{conv2d, pool};
pub use conv_i8::{conv2d_i8, pool_i8};
pub use dense::dense;
pub use dense_i8::{dense_i8, is_7bit};
pub use join::{add, concat, gate};
pub use quantize::{
    dequantize, dequantize_planes, dynamic_scale, quantize, quantize_one, requantize,
    requantize_one, requantize_planes, round_ties_even,
};
pub use recurrent::{
    MatrixI8, PRODUCT_LEVELS, PRODUCT_ZERO_POINT, ProductBuffers, gru_cell, gru_reset, lstm_cell,
    product_i8, product_i8_with, rnn_cell,
};

// Pieces the overrides share with their definitions.
#[allow(unused_imports, reason = "only some targets' overrides use each")]
pub(crate) use {
    conv::{for_each_group, for_each_tap},
    quantize::channel_planes,
};
