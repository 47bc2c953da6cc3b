//! SIMD128 overrides of the int8 convolution layer's kernels, used by both
//! wasm builds:
//!
//! - [`conv2d_i8`]: the blocked kernel of `blocked::conv_i8` on `v128` (the
//!   relaxed build too: `i32x4.dot_i16x8_s` is exact, where the relaxed
//!   8-bit dot product is exact only for 7-bit activations). Products of
//!   two i16 values of at most 128 in magnitude, and a pair's sum, fit in
//!   i32 exactly; lane sums wrap like the reference's and integer addition
//!   does not depend on its order, so the accumulators are the reference's.
//! - [`requantize_planes`]: 16 accumulators per step, in i64 lanes
//!   (`i64x2.extmul_*_i32x4_s`) exactly as the reference's i64 arithmetic.
//! - [`pool_i8`]: 2×2 max pooling with stride 2 (LeNet's), eight outputs
//!   per step; other pools run the reference.

use core::arch::wasm32::*;

use crate::kernels::blocked;
use crate::kernels::generic::{self as reference, channel_planes, requantize_one};
use crate::kernels::geometry::{ConvGeom, PoolGeom, PoolKind};

/// [`reference::conv2d_i8`], blocked as `blocked::conv_i8` describes.
#[inline(never)]
pub fn conv2d_i8(
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    g: &ConvGeom,
    pad: i8,
    scratch: &mut [i32],
    acc: &mut [i32],
) {
    blocked::conv_i8::conv2d_i8::<v128>(x, w, bias, g, pad, scratch, acc)
}

/// [`reference::requantize_planes`]: per plane (one channel's `m`, `shift`),
/// `(acc·m + 2^(shift−1)) >> shift` in i64 lanes, clamped to
/// `[lo − z, 127 − z]` (the reference's clamp of the value plus `z`), then
/// `+ z` and narrowed; the last `plane mod 16` values run the reference's
/// scalar step.
#[inline(never)]
pub fn requantize_planes(
    acc: &[i32],
    multiplier: &[i32],
    shift: &[i32],
    zero_point: i32,
    lo: i32,
    plane: usize,
    y: &mut [i8],
) {
    for (ap, yp, m, s) in channel_planes(acc, y, plane, multiplier, shift) {
        let sh = s.clamp(1, 62) as u32;
        let mv = i32x4_splat(m);
        let round = i64x2_splat(1i64 << (sh - 1));
        let (min, max) = (
            i64x2_splat(i64::from(lo) - i64::from(zero_point)),
            i64x2_splat(127 - i64::from(zero_point)),
        );
        let zp = i32x4_splat(zero_point);
        let scale = |a: v128| {
            let half = |p: v128| {
                let v = i64x2_shr(i64x2_add(p, round), sh);
                let v = v128_bitselect(min, v, i64x2_lt(v, min));
                v128_bitselect(max, v, i64x2_gt(v, max))
            };
            let (l, h) = (
                half(i64x2_extmul_low_i32x4(a, mv)),
                half(i64x2_extmul_high_i32x4(a, mv)),
            );
            i32x4_add(i32x4_shuffle::<0, 2, 4, 6>(l, h), zp)
        };
        let mut ac = ap.chunks_exact(16);
        let mut yc = yp.chunks_exact_mut(16);
        for (a, yv) in (&mut ac).zip(&mut yc) {
            // SAFETY: a holds 16 i32 (four 16-byte loads), yv 16 bytes.
            unsafe {
                let p = a.as_ptr() as *const v128;
                let q = [0, 1, 2, 3].map(|k| scale(v128_load(p.add(k))));
                let n = i8x16_narrow_i16x8(
                    i16x8_narrow_i32x4(q[0], q[1]),
                    i16x8_narrow_i32x4(q[2], q[3]),
                );
                v128_store(yv.as_mut_ptr() as *mut v128, n);
            }
        }
        for (yv, &a) in yc.into_remainder().iter_mut().zip(ac.remainder()) {
            *yv = requantize_one(a, m, s, zero_point, lo);
        }
    }
}

/// [`reference::pool_i8`]; 2×2 max pooling with stride 2 over rows of at
/// least 16 values takes eight outputs per step: the two input rows' 16
/// bytes, their lane-wise max, then the max of each even/odd byte pair. The
/// last step of a row moves back to overlap its neighbour. Max is exact, so
/// the bits are the reference's.
#[inline(never)]
pub fn pool_i8(kind: PoolKind, x: &[i8], g: &PoolGeom, y: &mut [i8]) {
    let (oh, ow, out_len) = (g.out_h(), g.out_w(), g.output_len());
    let fast = kind == PoolKind::Max && g.k == 2 && g.stride == 2 && ow >= 8;
    let in_len = g.input_len().unwrap_or(0);
    if !fast || g.check().is_none() || in_len == 0 || out_len == 0 {
        return reference::pool_i8(kind, x, g, y);
    }
    for (xr, yr) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(out_len)) {
        for c in 0..g.c {
            for oy in 0..oh {
                let r0 = &xr[(c * g.h + 2 * oy) * g.w..][..g.w];
                let r1 = &xr[(c * g.h + 2 * oy + 1) * g.w..][..g.w];
                let out = &mut yr[(c * oh + oy) * ow..][..ow];
                let mut ox = 0;
                loop {
                    let o = ox.min(ow - 8);
                    // SAFETY: o + 8 ≤ ow = ⌊(w − 2)/2⌋ + 1, so the 16 bytes
                    // from 2·o end at 2·o + 16 ≤ 2·ow ≤ w, inside both rows;
                    // out[o..o + 8] is inside the output row.
                    unsafe {
                        let m = i8x16_max(
                            v128_load(r0.as_ptr().add(2 * o) as *const v128),
                            v128_load(r1.as_ptr().add(2 * o) as *const v128),
                        );
                        let even = i8x16_shuffle::<0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0>(
                            m, m,
                        );
                        let odd = i8x16_shuffle::<1, 3, 5, 7, 9, 11, 13, 15, 0, 0, 0, 0, 0, 0, 0, 0>(
                            m, m,
                        );
                        v128_store64_lane::<0>(
                            i8x16_max(even, odd),
                            out.as_mut_ptr().add(o) as *mut u64,
                        );
                    }
                    ox = o + 8;
                    if ox >= ow {
                        break;
                    }
                }
            }
        }
    }
}
