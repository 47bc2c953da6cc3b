//! SIMD128 override of [`super::conv_int8::conv2d_i8`].
//!
//! Each output position's [`im2col`] column (i16) is dotted with four packed
//! filter rows at a time: eight taps per step, the filter bytes
//! sign-extended while loading (`i16x8.load8x8_s`) and multiplied pairwise
//! into i32 lanes by `i32x4.dot_i16x8_s`. A product of two values of at most
//! 128 in magnitude, and a pair's sum, fit in i32 exactly; the lane sums wrap
//! like the reference's and integer addition does not depend on its order,
//! so the accumulators are the reference's bit for bit (tested in wasmtime by
//! `tests/e2e/kernels.rs`).

use core::arch::wasm32::*;

use super::conv::ConvGeom;
use super::conv_int8::{self as reference, im2col, taps8};

/// Output channels per pass over the column.
const GROUP: usize = 4;

/// [`reference::conv2d_i8`], four output channels per pass.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub fn conv2d_i8(
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    g: &ConvGeom,
    pad: i8,
    cols: &mut [i16],
    acc: &mut [i32],
) {
    let (Some(in_len), Some(out_len), Some(t8)) = (g.input_len(), g.output_len(), taps8(g)) else {
        return;
    };
    let rows = x.len() / in_len;
    let sizes_ok = reference::packed_len(g) == Some(w.len())
        && bias.len() == g.out_c
        && cols.len() >= t8
        && rows.checked_mul(out_len).is_some_and(|n| n <= acc.len());
    // The caller (`Model`) guarantees the sizes; without them, compute
    // nothing rather than link a second copy of the kernel.
    if !sizes_ok {
        return;
    }
    let (oh, ow) = (g.out_h(), g.out_w());
    let plane = oh * ow;
    let chunks = t8 / 8;
    let wp = w.as_ptr();
    for (xr, ar) in x.chunks_exact(in_len).zip(acc.chunks_exact_mut(out_len)) {
        for oy in 0..oh {
            for ox in 0..ow {
                im2col(g, xr, oy, ox, i16::from(pad), &mut cols[..t8]);
                let cp = cols.as_ptr();
                let p = oy * ow + ox;
                let mut o = 0;
                while o + GROUP <= g.out_c {
                    let mut a = [i32x4_splat(0); GROUP];
                    for j in 0..chunks {
                        // SAFETY: j < chunks, so the 8 i16 at 8j lie in
                        // cols[..t8]; o + k < out_c, so the 8 bytes at
                        // (o + k)·t8 + 8j lie in w (len out_c · t8, checked).
                        unsafe {
                            let xv = v128_load(cp.add(8 * j) as *const v128);
                            for (k, ak) in a.iter_mut().enumerate() {
                                let wv = i16x8_load_extend_i8x8(wp.add((o + k) * t8 + 8 * j));
                                *ak = i32x4_add(*ak, i32x4_dot_i16x8(xv, wv));
                            }
                        }
                    }
                    let sums = i32x4_add(reduce4(a), unsafe {
                        // SAFETY: o + 4 <= out_c == bias.len().
                        v128_load(bias.as_ptr().add(o) as *const v128)
                    });
                    ar[o * plane + p] = i32x4_extract_lane::<0>(sums);
                    ar[(o + 1) * plane + p] = i32x4_extract_lane::<1>(sums);
                    ar[(o + 2) * plane + p] = i32x4_extract_lane::<2>(sums);
                    ar[(o + 3) * plane + p] = i32x4_extract_lane::<3>(sums);
                    o += GROUP;
                }
                for oo in o..g.out_c {
                    let mut a = i32x4_splat(0);
                    for j in 0..chunks {
                        // SAFETY: as above, for channel oo < out_c.
                        unsafe {
                            let xv = v128_load(cp.add(8 * j) as *const v128);
                            let wv = i16x8_load_extend_i8x8(wp.add(oo * t8 + 8 * j));
                            a = i32x4_add(a, i32x4_dot_i16x8(xv, wv));
                        }
                    }
                    let s = i32x4_extract_lane::<0>(a)
                        .wrapping_add(i32x4_extract_lane::<1>(a))
                        .wrapping_add(i32x4_extract_lane::<2>(a))
                        .wrapping_add(i32x4_extract_lane::<3>(a));
                    ar[oo * plane + p] = s.wrapping_add(bias[oo]);
                }
            }
        }
    }
}

/// The four lane sums of `a[0..4]`, as one vector `[Σa0, Σa1, Σa2, Σa3]`.
#[inline(always)]
fn reduce4(a: [v128; GROUP]) -> v128 {
    // [a0.0+a0.2, a1.0+a1.2, a0.1+a0.3, a1.1+a1.3] and the same for a2, a3.
    let s01 = i32x4_add(
        i32x4_shuffle::<0, 4, 1, 5>(a[0], a[1]),
        i32x4_shuffle::<2, 6, 3, 7>(a[0], a[1]),
    );
    let s23 = i32x4_add(
        i32x4_shuffle::<0, 4, 1, 5>(a[2], a[3]),
        i32x4_shuffle::<2, 6, 3, 7>(a[2], a[3]),
    );
    i32x4_add(
        i32x4_shuffle::<0, 1, 4, 5>(s01, s23),
        i32x4_shuffle::<2, 3, 6, 7>(s01, s23),
    )
}
