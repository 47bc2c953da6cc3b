//! 2-D convolution and pooling, f32: the definition of their arithmetic, as
//! [`super::dense()`] is for the dense layer.
//!
//! Every row of a batch holds one image in NCHW order without the N:
//! `channels × height × width` values, channel planes one after another,
//! each plane row-major. A layer's output row uses the same layout.
//!
//! Callers ([`crate::Model`]) guarantee that the geometry is valid
//! ([`ConvGeom::check`], [`PoolGeom::check`]) and the buffer lengths match;
//! the kernels index with `chunks_exact`, so a wrong length computes less.

use crate::kernels::geometry::{ConvGeom, PoolGeom, PoolKind};

/// 2-D convolution (cross-correlation, as in PyTorch):
/// `y[o][oy][ox] = (Σ_{c,ky,kx} x[c][oy·s+ky−p][ox·s+kx−p] · w[c][ky][kx][o]) + b[o]`.
///
/// `w` is stored tap-major (`in_c × kh × kw × out_c`), the layout of the
/// dense kernel with `in_c·kh·kw` inputs. Each sum starts at `+0.0` and adds
/// the products for `c`, then `ky`, then `kx` increasing, one rounding per
/// multiply and per add (no FMA); taps that fall in the zero padding are
/// skipped; the bias is added last. Output channels are independent, so
/// vectorising across `o` keeps this order exactly.
pub fn conv2d(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeom, y: &mut [f32]) {
    let (Some(in_len), Some(out_len)) = (g.input_len(), g.output_len()) else {
        return;
    };
    let (oh, ow) = (g.out_h(), g.out_w());
    for (xr, yr) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(out_len)) {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..g.out_c {
                    let mut acc = 0.0f32;
                    for_each_tap(g, oy, ox, |xi, tap| acc += xr[xi] * w[tap * g.out_c + o]);
                    yr[(o * oh + oy) * ow + ox] = acc + b[o];
                }
            }
        }
    }
}

/// Calls `f(input index, tap index)` for every tap of output position
/// `(oy, ox)` that lies inside the input, in the order `c`, `ky`, `kx`.
#[inline(always)]
pub(crate) fn for_each_tap(g: &ConvGeom, oy: usize, ox: usize, mut f: impl FnMut(usize, usize)) {
    for c in 0..g.in_c {
        for ky in 0..g.kh {
            let iy = oy * g.stride + ky;
            if iy < g.pad || iy - g.pad >= g.in_h {
                continue;
            }
            let row = (c * g.in_h + iy - g.pad) * g.in_w;
            for kx in 0..g.kw {
                let ix = ox * g.stride + kx;
                if ix < g.pad || ix - g.pad >= g.in_w {
                    continue;
                }
                f(row + ix - g.pad, (c * g.kh + ky) * g.kw + kx);
            }
        }
    }
}

/// Pooling over `k × k` windows of each channel.
///
/// Max: the running value starts at `−∞` and each window value `v`, in
/// order `ky`, `kx`, replaces it when `m < v` (wasm's `f32x4.pmax`; NaNs are
/// never picked). Avg: the sum starts at `+0.0`, adds the values in the same
/// order and is divided by `k·k` (one IEEE division).
pub fn pool(kind: PoolKind, x: &[f32], g: &PoolGeom, y: &mut [f32]) {
    let Some(in_len) = g.input_len() else { return };
    let (oh, ow) = (g.out_h(), g.out_w());
    let count = (g.k * g.k) as f32;
    for (xr, yr) in x
        .chunks_exact(in_len)
        .zip(y.chunks_exact_mut(g.output_len()))
    {
        for c in 0..g.c {
            let plane = &xr[c * g.h * g.w..(c + 1) * g.h * g.w];
            for oy in 0..oh {
                for ox in 0..ow {
                    let window = (0..g.k).flat_map(|ky| {
                        let row = (oy * g.stride + ky) * g.w + ox * g.stride;
                        plane[row..row + g.k].iter().copied()
                    });
                    yr[(c * oh + oy) * ow + ox] = match kind {
                        PoolKind::Max => {
                            window.fold(f32::NEG_INFINITY, |m, v| if m < v { v } else { m })
                        }
                        PoolKind::Avg => window.fold(0.0f32, |s, v| s + v) / count,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_matches_definition() {
        // One 3×3 channel, one 2×2 filter of ones, no padding: sums of windows.
        let g = ConvGeom::new([1, 3, 3, 1, 2, 2, 1, 0]);
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let mut y = [0.0; 4];
        conv2d(&x, &[1.0; 4], &[0.5], &g, &mut y);
        assert_eq!(y, [12.5, 16.5, 24.5, 28.5]);
        // Padding 1 with a 3×3 kernel keeps the size; the corner sees 4 taps.
        let g = ConvGeom::new([1, 3, 3, 1, 3, 3, 1, 1]);
        let mut y = [0.0; 9];
        conv2d(&x, &[1.0; 9], &[0.0], &g, &mut y);
        assert_eq!(y[0], 1.0 + 2.0 + 4.0 + 5.0);
        assert_eq!(y[4], 45.0);
        // Two output channels, stride 2: w is tap-major (tap × out_c).
        let g = ConvGeom::new([1, 3, 3, 2, 1, 1, 2, 0]);
        let mut y = [0.0; 8];
        conv2d(&x, &[1.0, -1.0], &[0.0, 0.0], &g, &mut y);
        assert_eq!(y, [1.0, 3.0, 7.0, 9.0, -1.0, -3.0, -7.0, -9.0]);
    }

    #[test]
    fn pools_match_definition() {
        let g = PoolGeom::new([1, 4, 4, 2, 2]);
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut y = [0.0; 4];
        pool(PoolKind::Max, &x, &g, &mut y);
        assert_eq!(y, [5.0, 7.0, 13.0, 15.0]);
        pool(PoolKind::Avg, &x, &g, &mut y);
        assert_eq!(y, [2.5, 4.5, 10.5, 12.5]);
    }
}
