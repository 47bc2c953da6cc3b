//! int8 convolution (accumulators only) and int8 pooling: the definition of
//! their arithmetic (see `docs/quantization.md`), as [`super::dense_i8()`] is
//! for the int8 dense layer.
//!
//! Rows are NCHW images without the N, like the f32 kernels of
//! [`super::conv`]. Everything here is integer arithmetic: i32 sums wrap
//! modulo 2³² and do not depend on their order, so the blocked overrides
//! (`blocked::conv_i8`, for SIMD128 and SSE2) match this bit for bit by
//! construction — the shared case table still tests them, natively and in
//! wasmtime.
//!
//! Each accumulator is `bias[o] + Σ x·w` over the filter's taps (`c`, `ky`,
//! `kx`), a tap in the padding reading the input **zero point** — the
//! quantized form of the real 0 that f32 padding adds, so the zero point
//! folded into the bias (`b − z·Σw`) holds at the borders too. The filters
//! come packed ([`crate::kernels::packing::conv_i8`]).

use crate::kernels::geometry::{ConvGeom, PoolGeom, PoolKind};
use crate::kernels::packing::conv_i8::{packed_index, packed_len};

/// Integer convolution, accumulators only:
/// `acc[o][oy][ox] = bias[o] + Σ_(c,ky,kx) x·w[o][c][ky][kx]` in wrapping
/// i32, a tap in the padding reading `pad` (the input zero point); `w` is
/// packed by [`pack_filters`](crate::kernels::packing::conv_i8::pack_filters).
/// `_scratch` is the blocked kernels' buffer (the reference needs none; the
/// argument keeps one signature).
#[inline(never)]
pub fn conv2d_i8(
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    g: &ConvGeom,
    pad: i8,
    _scratch: &mut [i32],
    acc: &mut [i32],
) {
    let (Some(in_len), Some(out_len), Some(wl)) = (g.input_len(), g.output_len(), packed_len(g))
    else {
        return;
    };
    if w.len() != wl || bias.len() != g.out_c {
        return;
    }
    let (oh, ow) = (g.out_h(), g.out_w());
    let plane = oh * ow;
    for (xr, ar) in x.chunks_exact(in_len).zip(acc.chunks_exact_mut(out_len)) {
        for (o, &b) in bias.iter().enumerate() {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = b;
                    for c in 0..g.in_c {
                        for ky in 0..g.kh {
                            let iy = (oy * g.stride + ky).wrapping_sub(g.pad_top);
                            for kx in 0..g.kw {
                                let ix = (ox * g.stride + kx).wrapping_sub(g.pad_top);
                                let v = if iy < g.in_h && ix < g.in_w {
                                    xr[(c * g.in_h + iy) * g.in_w + ix]
                                } else {
                                    pad
                                };
                                let wv = w[packed_index(g, o, c, ky, kx)];
                                s = s.wrapping_add(i32::from(v) * i32::from(wv));
                            }
                        }
                    }
                    ar[o * plane + oy * ow + ox] = s;
                }
            }
        }
    }
}

/// Pooling of int8 values over `k × k` windows, with the scale and zero
/// point unchanged (both are exact for max; avg rounds once).
///
/// Max: the largest value — exact, as `max` commutes with the monotonic
/// dequantization. Avg: the window sum `S` (i32) of `n = k·k` values, then
/// `⌊(2S + n) / 2n⌋`, the mean rounded half toward +∞ (the rounding of
/// requantize), which stays in −128..=127.
#[inline(never)]
pub fn pool_i8(kind: PoolKind, x: &[i8], g: &PoolGeom, y: &mut [i8]) {
    let Some(in_len) = g.input_len() else { return };
    let (oh, ow, plane) = (g.out_h(), g.out_w(), g.h * g.w);
    let n = (g.k * g.k) as i64;
    let out_len = g.output_len().max(1);
    // Plain index loops: iterator adapters here made the kernel larger.
    for (xr, yr) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(out_len)) {
        let mut o = 0;
        for c in 0..g.c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (mut max, mut sum) = (i8::MIN, 0i64);
                    for ky in 0..g.k {
                        let row = c * plane + (oy * g.stride + ky) * g.w + ox * g.stride;
                        for &v in &xr[row..row + g.k] {
                            max = max.max(v);
                            sum += i64::from(v);
                        }
                    }
                    yr[o] = match kind {
                        PoolKind::Max => max,
                        // In i64: a window holds at most MAX_WIDTH values.
                        PoolKind::Avg => (2 * sum + n).div_euclid(2 * n) as i8,
                    };
                    o += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::packing::conv_i8::pack_filters;

    /// The kernel against the plain definition on unpacked filters, with
    /// the pad value standing for the zero point at the borders.
    #[test]
    fn conv_matches_definition() {
        let g = ConvGeom::new([2, 3, 3, 3, 2, 2, 1, 1]);
        let taps = 2 * 2 * 2;
        let x: Vec<i8> = (0..18i32).map(|v| (v * 13 - 100) as i8).collect();
        let f: Vec<i8> = (0..3 * taps as i32)
            .map(|v| (v * 29 % 255 - 127) as i8)
            .collect();
        let mut w = vec![0i8; packed_len(&g).unwrap()];
        pack_filters(&f, &g, &mut w);
        // 3 channels → one group of 4; kw 2 → one pair.
        assert_eq!(w.len(), 4 * 2 * 2 * 2);
        let bias = [5, -7, 1 << 20];
        let mut acc = vec![0i32; g.output_len().unwrap()];
        conv2d_i8(&x, &w, &bias, &g, -9, &mut [], &mut acc);
        let (oh, ow) = (g.out_h(), g.out_w());
        assert_eq!((oh, ow), (4, 4));
        for o in 0..3 {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = bias[o];
                    for c in 0..2 {
                        for ky in 0..2 {
                            for kx in 0..2 {
                                let (iy, ix) = (oy + ky, ox + kx);
                                let v = if (1..=3).contains(&iy) && (1..=3).contains(&ix) {
                                    x[(c * 3 + iy - 1) * 3 + ix - 1]
                                } else {
                                    -9
                                };
                                s += i32::from(v) * i32::from(f[o * taps + (c * 2 + ky) * 2 + kx]);
                            }
                        }
                    }
                    assert_eq!(acc[(o * oh + oy) * ow + ox], s, "{o} {oy} {ox}");
                }
            }
        }
    }

    #[test]
    fn pools_round_half_up() {
        let g = PoolGeom::new([1, 2, 4, 2, 2]);
        // windows: [-128, 127, -128, 127] → mean -0.5 → 0 (half up);
        //          [1, 2, 2, 2] → 1.75 → 2.
        let x: [i8; 8] = [-128, 127, 1, 2, 127, -128, 2, 2];
        let mut y = [0i8; 2];
        pool_i8(PoolKind::Avg, &x, &g, &mut y);
        assert_eq!(y, [0, 2]);
        pool_i8(PoolKind::Max, &x, &g, &mut y);
        assert_eq!(y, [127, 2]);
        let x = [-128i8; 8];
        pool_i8(PoolKind::Avg, &x, &g, &mut y);
        assert_eq!(y, [-128, -128]);
    }
}
