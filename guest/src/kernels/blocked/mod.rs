//! The blocked SIMD kernels, written once over the vector traits of
//! [`lanes`] and instantiated by each architecture folder on its own
//! vector type: the f32 dense layer ([`dense`]), the f32 convolution
//! ([`conv`], [`depthwise`], and [`conv2d`] choosing between them) and the
//! int8 convolution ([`conv_i8`]), and the int8 product of recurrent
//! layers over the target's int8 kernels ([`recurrent_i8`]).
//!
//! Each performs, per output, its generic definition's operations in the
//! same order — only several outputs at a time — so an instantiation gives
//! the definition's bits.

pub(crate) mod conv;
pub(crate) mod conv_i8;
pub(crate) mod dense;
pub(crate) mod depthwise;
pub(crate) mod lanes;
pub(crate) mod recurrent_i8;

use crate::kernels::generic::for_each_group;
use crate::kernels::geometry::ConvGeom;
use lanes::F32x4;

/// [`crate::kernels::generic::conv2d`] with `V` lanes, any groups: a
/// depthwise shape by [`depthwise`], every other shape by [`conv`] once per
/// group (the arithmetic of the groups alone, never a zero-filled full
/// convolution).
#[inline(always)]
pub(crate) fn conv2d<V: F32x4>(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeom, y: &mut [f32]) {
    if g.is_depthwise() {
        depthwise::depthwise::<V>(x, w, b, g, y)
    } else {
        for_each_group(x, w, b, g, y, one_group::<V>)
    }
}

/// [`conv::conv2d`], out of line: [`for_each_group`] calls it from two
/// places, which would otherwise inline the whole kernel twice.
#[inline(never)]
fn one_group<V: F32x4>(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeom, y: &mut [f32]) {
    conv::conv2d::<V>(x, w, b, g, y)
}

/// Starts of `n`-wide blocks covering `0..len` (`len ≥ n`), the last one
/// moved back to end at `len`, overlapping its neighbour: the SIMD kernels
/// recompute a few outputs (same bits) rather than finish in narrower code.
#[inline(always)]
pub(crate) fn blocks(len: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..len.div_ceil(n)).map(move |i| (i * n).min(len - n))
}

/// The kernel rows of output row `oy` that fall inside the input: `ky`
/// with `oy·stride + ky·dilation − pad_top ∈ [0, in_h)` (empty when the
/// whole window column lies in the padding).
#[inline(always)]
pub(crate) fn rows_inside(g: &ConvGeom, oy: usize) -> core::ops::Range<usize> {
    let (top, d) = (oy * g.stride, g.dilation.max(1));
    let first = g.pad_top.saturating_sub(top).div_ceil(d);
    let end = (g.in_h + g.pad_top).saturating_sub(top).div_ceil(d);
    first..end.min(g.kh).max(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_inside_skips_the_padding() {
        // Dilation 2: a 2×2 kernel over a 3×3 input, no padding.
        let g = ConvGeom::new([1, 3, 3, 1, 2, 2, 1, 0]).with_dilation(2);
        assert_eq!(rows_inside(&g, 0), 0..2);
        // Padding 2 around a 3×3 kernel: the first and last output rows see
        // one kernel row each.
        let g = ConvGeom::new([1, 3, 3, 1, 3, 3, 1, 2]);
        assert_eq!((rows_inside(&g, 0), rows_inside(&g, 4)), (2..3, 0..1));
    }
}
