//! The int8 product of a recurrent layer with the target's kernels: its
//! definition's composition ([`generic::product_i8_with`]) over the
//! target's quantize and int8 dense kernels (the relaxed one in the
//! relaxed build), so it gives the definition's bits; checked over the
//! shared case table like every override.

use crate::kernels::generic::{self, MatrixI8, ProductBuffers};

/// [`generic::product_i8`] with the target's kernels.
#[inline(never)]
pub fn product_i8(
    m: MatrixI8<'_>,
    x: &[f32],
    dims: [usize; 2],
    bias: &[f32],
    y: &mut [f32],
    buf: &mut ProductBuffers<'_>,
) {
    use crate::kernels::{dense_i8, dequantize, quantize_i8};
    generic::product_i8_with((quantize_i8, dense_i8, dequantize), m, x, dims, bias, y, buf);
}
