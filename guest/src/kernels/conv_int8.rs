//! Scalar reference kernels of int8 convolution and pooling: the definition
//! of their arithmetic (see `docs/quantization.md`), as [`super::int8`] is
//! for the int8 dense layer.
//!
//! Rows are NCHW images without the N, like the f32 kernels of
//! [`super::conv`]. Everything here is integer arithmetic: i32 sums wrap
//! modulo 2³² and do not depend on their order, so the blocked overrides
//! (`conv_int8_lanes`, for SIMD128 and SSE2) match this bit for bit by
//! construction — the host still tests them, natively and in wasmtime.
//!
//! # The packed filter layout
//!
//! Each accumulator is `bias[o] + Σ x·w` over the filter's taps (`c`, `ky`,
//! `kx`), a tap in the padding reading the input **zero point** — the
//! quantized form of the real 0 that f32 padding adds, so the zero point
//! folded into the bias (`b − z·Σw`) holds at the borders too.
//!
//! Filters are stored for the blocked kernels, which multiply *pairs* of
//! horizontally neighbouring taps (`kx = 2j, 2j+1`) of four output channels
//! at once with `i32x4.dot_i16x8_s` / `pmaddwd`: output channels in groups
//! of four, then `c`, `ky`, the pair `j`, the channel in its group, the tap
//! in its pair — `[⌈out_c/4⌉][in_c][kh][⌈kw/2⌉][4][2]` bytes
//! ([`pack_filters`]). Channels beyond `out_c` and the tap beyond an odd
//! `kw` are zeros, so they add nothing.

use super::conv::{ConvGeom, PoolGeom, PoolKind};
use super::int8::requantize_one;

/// Output channels per filter group of the packed layout.
pub const GROUP: usize = 4;

/// `kw` rounded up to a whole number of tap pairs.
fn kw2(g: &ConvGeom) -> Option<usize> {
    g.kw.checked_next_multiple_of(2)
}

/// Length of the packed filters (`⌈out_c/4⌉·4 · in_c · kh · kw2`), `None`
/// on overflow.
pub fn packed_len(g: &ConvGeom) -> Option<usize> {
    g.out_c
        .checked_next_multiple_of(GROUP)?
        .checked_mul(g.in_c)?
        .checked_mul(g.kh)?
        .checked_mul(kw2(g)?)
}

/// Index in the packed filters of output channel `o`'s tap `(c, ky, kx)`.
#[inline(always)]
fn packed_index(g: &ConvGeom, o: usize, c: usize, ky: usize, kx: usize) -> usize {
    let pairs = g.kw.div_ceil(2);
    let unit = ((o / GROUP * g.in_c + c) * g.kh + ky) * pairs + kx / 2;
    (unit * GROUP + o % GROUP) * 2 + kx % 2
}

/// Packs PyTorch-layout filters (`out_c × in_c × kh × kw`) into the layout
/// of the module note. `filters.len()` must be `g.weight_len()` and
/// `packed.len()` [`packed_len`]; otherwise nothing is written.
pub fn pack_filters(filters: &[i8], g: &ConvGeom, packed: &mut [i8]) {
    if Some(filters.len()) != g.weight_len() || Some(packed.len()) != packed_len(g) {
        return;
    }
    packed.fill(0);
    let mut src = filters.iter();
    for o in 0..g.out_c {
        for c in 0..g.in_c {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    if let Some(&v) = src.next() {
                        packed[packed_index(g, o, c, ky, kx)] = v;
                    }
                }
            }
        }
    }
}

/// i32 scratch the blocked kernels need for one image (their padded pair
/// buffer, see `conv_int8_lanes`): `in_c · (in_h + 2·pad) · row` with
/// `row = (max(out_w, 8) − 1)·stride + kw2 − 1`; `None` on overflow.
pub fn scratch_len(g: &ConvGeom) -> Option<usize> {
    let row = (g.out_w().max(8) - 1)
        .checked_mul(g.stride)?
        .checked_add(kw2(g)? - 1)?;
    g.in_h
        .checked_add(g.pad.checked_mul(2)?)?
        .checked_mul(row)?
        .checked_mul(g.in_c)
}

/// Integer convolution, accumulators only:
/// `acc[o][oy][ox] = bias[o] + Σ_(c,ky,kx) x·w[o][c][ky][kx]` in wrapping
/// i32, a tap in the padding reading `pad` (the input zero point); `w` is
/// packed by [`pack_filters`]. `_scratch` is the blocked kernels' buffer
/// (the reference needs none; the argument keeps one signature).
#[allow(clippy::too_many_arguments)]
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
                            let iy = (oy * g.stride + ky).wrapping_sub(g.pad);
                            for kx in 0..g.kw {
                                let ix = (ox * g.stride + kx).wrapping_sub(g.pad);
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

/// [`requantize_one`] over NCHW accumulators: channel `o` (planes of
/// `plane` values) uses `multiplier[o]` and `shift[o]`.
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
    let plane = plane.max(1);
    for (o, (ap, yp)) in acc
        .chunks_exact(plane)
        .zip(y.chunks_exact_mut(plane))
        .enumerate()
    {
        let c = o % multiplier.len().max(1);
        let (Some(&m), Some(&s)) = (multiplier.get(c), shift.get(c)) else {
            return;
        };
        for (yv, &a) in yp.iter_mut().zip(ap) {
            *yv = requantize_one(a, m, s, zero_point, lo);
        }
    }
}

/// Final dequantize over NCHW accumulators, with the dense layer's
/// arithmetic ([`super::int8::dequantize`]): `y = f32(acc) · (input_scale ·
/// weight_scale[o]) + bias[o]`, one rounding per operation in that order.
#[inline(never)]
pub fn dequantize_planes(
    acc: &[i32],
    input_scale: f32,
    weight_scale: &[f32],
    bias: &[f32],
    plane: usize,
    y: &mut [f32],
) {
    let plane = plane.max(1);
    let channels = weight_scale.len().max(1);
    for (o, (ap, yp)) in acc
        .chunks_exact(plane)
        .zip(y.chunks_exact_mut(plane))
        .enumerate()
    {
        let c = o % channels;
        let (Some(&sw), Some(&b)) = (weight_scale.get(c), bias.get(c)) else {
            return;
        };
        let s = input_scale * sw;
        for (yv, &a) in yp.iter_mut().zip(ap) {
            *yv = a as f32 * s + b;
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
    // Plain index loops: iterator adapters here made the kernel 3 KB larger.
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

    fn geom(in_c: usize, hw: usize, out_c: usize, k: usize, stride: usize, pad: usize) -> ConvGeom {
        ConvGeom {
            in_c,
            in_h: hw,
            in_w: hw,
            out_c,
            kh: k,
            kw: k,
            stride,
            pad,
        }
    }

    /// The kernel against the plain definition on unpacked filters, with
    /// the pad value standing for the zero point at the borders.
    #[test]
    fn conv_matches_definition() {
        let g = geom(2, 3, 3, 2, 1, 1);
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
        let g = PoolGeom {
            c: 1,
            h: 2,
            w: 4,
            k: 2,
            stride: 2,
        };
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

    #[test]
    fn requantizes_and_dequantizes_per_channel_plane() {
        let acc = [10, 20, -10, -20];
        let mut y = [0i8; 4];
        // channel 0 × 0.5, channel 1 × 0.25 (m = 2^30, shifts 31 and 32)
        requantize_planes(&acc, &[1 << 30, 1 << 30], &[31, 32], 3, -128, 2, &mut y);
        assert_eq!(y, [8, 13, 1, -2]); // −2.5 rounds half up to −2
        let mut f = [0.0f32; 4];
        dequantize_planes(&acc, 0.5, &[1.0, 2.0], &[0.0, 1.0], 2, &mut f);
        assert_eq!(f, [5.0, 10.0, -9.0, -19.0]);
    }
}
