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
/// `y[o][oy][ox] = (Σ_{c,ky,kx} x[c][oy·s+ky·d−pt][ox·s+kx·d−pl] · w[c][ky][kx][o]) + b[o]`,
/// `c` running over output `o`'s group.
///
/// `w` is stored tap-major per group: each group's `(in_c/groups) × kh ×
/// kw × (out_c/groups)`, groups one after another — with one group the
/// layout of the dense kernel with `in_c·kh·kw` inputs; for a depthwise
/// convolution (one channel per group), PyTorch's `c × kh × kw`. Each sum
/// starts at `+0.0` and adds the products for `c`, then `ky`, then `kx`
/// increasing, one rounding per multiply and per add (no FMA); taps that
/// fall in the zero padding are skipped; the bias is added last. Output
/// channels are independent, so vectorising across `o` (or across output
/// columns) keeps this order exactly.
pub fn conv2d(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeom, y: &mut [f32]) {
    for_each_group(x, w, b, g, y, one_group)
}

/// [`conv2d`] of a one-group shape.
fn one_group(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeom, y: &mut [f32]) {
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

/// Runs `f`, a convolution of one group, on each group of each image of a
/// grouped convolution: group `i` reads input channels `i·in_c/groups..`,
/// weights `i·taps·out_c/groups..` and biases, and writes output channels
/// `i·out_c/groups..` — contiguous runs of an NCHW row — with the shape
/// [`ConvGeom::group`]. One group calls `f` once on the whole batch.
#[inline(always)]
pub(crate) fn for_each_group(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    g: &ConvGeom,
    y: &mut [f32],
    f: impl Fn(&[f32], &[f32], &[f32], &ConvGeom, &mut [f32]),
) {
    if g.groups <= 1 {
        return f(x, w, b, g, y);
    }
    let sub = g.group();
    let (Some(in_len), Some(out_len), Some(gi), Some(go), Some(gw)) = (
        g.input_len(),
        g.output_len(),
        sub.input_len(),
        sub.output_len(),
        sub.weight_len(),
    ) else {
        return;
    };
    for (xr, yr) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(out_len)) {
        let groups = xr.chunks_exact(gi).zip(yr.chunks_exact_mut(go));
        for ((xg, yg), (wg, bg)) in groups.zip(w.chunks_exact(gw).zip(b.chunks_exact(sub.out_c))) {
            f(xg, wg, bg, &sub, yg);
        }
    }
}

/// Calls `f(input index, tap index)` for every tap of output position
/// `(oy, ox)` that lies inside the input, in the order `c`, `ky`, `kx`
/// (`c` over a one-group shape's channels: [`for_each_group`] passes each
/// group's).
#[inline(always)]
pub(crate) fn for_each_tap(g: &ConvGeom, oy: usize, ox: usize, mut f: impl FnMut(usize, usize)) {
    let d = g.dilation;
    for c in 0..g.in_c {
        for ky in 0..g.kh {
            let iy = oy * g.stride + ky * d;
            if iy < g.pad_top || iy - g.pad_top >= g.in_h {
                continue;
            }
            let row = (c * g.in_h + iy - g.pad_top) * g.in_w;
            for kx in 0..g.kw {
                let ix = ox * g.stride + kx * d;
                if ix < g.pad_left || ix - g.pad_left >= g.in_w {
                    continue;
                }
                f(row + ix - g.pad_left, (c * g.kh + ky) * g.kw + kx);
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
    fn grouped_dilated_and_asymmetric() {
        let x: Vec<f32> = (1..=18).map(|v| v as f32).collect();
        // Depthwise over two 3×3 channels, 2×2 ones, each its own bias.
        let g = ConvGeom::new([2, 3, 3, 2, 2, 2, 1, 0]).with_groups(2);
        let mut y = [0.0; 8];
        conv2d(&x, &[1.0; 8], &[0.0, 100.0], &g, &mut y);
        assert_eq!(y, [12.0, 16.0, 24.0, 28.0, 148.0, 152.0, 160.0, 164.0]);
        // SAME_UPPER at stride 2: no top/left padding, one row/column
        // below/right; the last output sees the corner alone.
        let g = ConvGeom::new([1, 3, 3, 1, 2, 2, 2, 0]).with_pads([0, 0, 1, 1]);
        let mut y = [0.0; 4];
        conv2d(&x, &[1.0; 4], &[0.0], &g, &mut y);
        assert_eq!(y, [12.0, 9.0, 15.0, 9.0]);
        // Dilation 2: a 2×2 kernel reads the corners of a 3×3 window.
        let g = ConvGeom::new([1, 3, 3, 1, 2, 2, 1, 0]).with_dilation(2);
        let mut y = [0.0; 1];
        conv2d(&x, &[1.0; 4], &[0.0], &g, &mut y);
        assert_eq!(y, [1.0 + 3.0 + 7.0 + 9.0]);
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
