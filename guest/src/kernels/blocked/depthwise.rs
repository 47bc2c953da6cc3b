//! The blocked depthwise convolution behind the SIMD overrides of
//! [`generic::conv2d`] when every group has one input and one output
//! channel (MobileNet's 3×3 layers), written once over [`F32x4`].
//!
//! Its definition is the generic convolution of each one-channel group:
//! per output, `+0.0`, then `+ x·w` for `ky`, `kx` increasing, padded taps
//! skipped, the bias last. A depthwise layer has no sum over channels to
//! vectorise, so the lanes hold neighbouring **output columns** of one
//! channel instead: per tap, one weight is splatted and meets 4·N inputs
//! (contiguous at stride 1, gathered otherwise), each lane still adding its
//! own output's products in the definition's order — the same bits.
//!
//! - **Interior columns** (every `kx` tap inside the row) run in tiles of
//!   8 columns (N = 2 vectors, two independent sums per tap; 16- and
//!   4-column instantiations cost ~1.8 KB of kernel each, which the
//!   module size budget of `tests/e2e/cli.rs` does not hold),
//!   the last tile moved back to overlap its neighbour (an output computed
//!   twice gets the same bits). The kernel rows a window loses to the
//!   vertical padding leave the tap loop's bounds, as in `blocked::conv`.
//! - **Border columns**, and rows narrower than 8 interior columns, run
//!   the definition's loop one output at a time.
//!
//! The weights are the definition's layout, PyTorch's `c × kh × kw`: one
//! channel's taps are contiguous, so no packing.

use super::lanes::F32x4;
use super::{blocks, rows_inside};
use crate::kernels::generic::{self, for_each_tap};
use crate::kernels::geometry::ConvGeom;

/// [`generic::conv2d`] of a depthwise shape ([`ConvGeom::is_depthwise`])
/// with `V` lanes; same arguments, same bits.
#[inline(always)]
pub(crate) fn depthwise<V: F32x4>(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeom, y: &mut [f32]) {
    let (Some(in_len), Some(out_len), Some(wlen), Some(ew)) =
        (g.input_len(), g.output_len(), g.weight_len(), g.extent_w())
    else {
        return;
    };
    let rows = x.len() / in_len;
    let sizes_ok = g.check().is_some()
        && g.is_depthwise()
        && w.len() == wlen
        && b.len() == g.out_c
        && rows.checked_mul(out_len).is_some_and(|n| n <= y.len());
    if !sizes_ok {
        return generic::conv2d(x, w, b, g, y);
    }
    let one = g.group();
    let (s, pl, (oh, ow)) = (g.stride, g.pad_left, (g.out_h(), g.out_w()));
    let (hw, taps) = (g.in_h * g.in_w, g.kh * g.kw);
    // Interior columns [lo, hi): ox·s ≥ pad_left and ox·s − pad_left +
    // extent_w − 1 < in_w.
    let lo = pl.div_ceil(s).min(ow);
    let hi = (g.in_w + pl)
        .checked_sub(ew)
        .map_or(0, |v| v / s + 1)
        .clamp(lo, ow);
    for (xr, yr) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(out_len)) {
        let channels = xr.chunks_exact(hw).zip(yr.chunks_exact_mut(oh * ow));
        for ((plane, out), (wc, &bias)) in channels.zip(w.chunks_exact(taps).zip(b)) {
            let ch = Channel {
                g,
                plane,
                w: wc,
                bias,
            };
            for oy in 0..oh {
                let row = &mut out[oy * ow..(oy + 1) * ow];
                let ky = rows_inside(g, oy);
                let width = hi - lo;
                let done = match width {
                    8.. => ch.tiles::<V, 2>(row, oy, ky, lo, width),
                    _ => lo,
                };
                for ox in (0..lo).chain(done..ow) {
                    let mut acc = 0.0f32;
                    for_each_tap(&one, oy, ox, |xi, tap| acc += plane[xi] * wc[tap]);
                    row[ox] = acc + bias;
                }
            }
        }
    }
}

/// One channel of one image: its input plane, taps and bias.
struct Channel<'a> {
    g: &'a ConvGeom,
    plane: &'a [f32],
    w: &'a [f32],
    bias: f32,
}

impl Channel<'_> {
    /// The interior columns `lo..lo + width` (`width ≥ 4·N`) of output row
    /// `oy` of `row`, in tiles of `4·N`; returns the first column after them.
    #[inline(always)]
    fn tiles<V: F32x4, const N: usize>(
        &self,
        row: &mut [f32],
        oy: usize,
        ky: core::ops::Range<usize>,
        lo: usize,
        width: usize,
    ) -> usize {
        let g = self.g;
        let (s, d) = (g.stride, g.dilation);
        let xp = self.plane.as_ptr();
        let bias = V::splat(self.bias);
        for ox in blocks(width, 4 * N).map(|o| lo + o) {
            let mut acc = [V::splat(0.0); N];
            for ky in ky.clone() {
                // Interior: ox·s ≥ pad_left; ky inside: the row index is in
                // [0, in_h).
                let start = (oy * s + ky * d - g.pad_top) * g.in_w + ox * s - g.pad_left;
                for kx in 0..g.kw {
                    let wv = V::splat(self.w[ky * g.kw + kx]);
                    for (j, a) in acc.iter_mut().enumerate() {
                        // SAFETY: ky is a row inside the input and columns
                        // ox..ox + 4·N are interior (< hi), so every tap
                        // column ox'·s + kx·d − pad_left of them lies in
                        // [0, in_w): the four strided reads lie in this
                        // row of the plane, whose length `depthwise`
                        // checked through the input length.
                        let xv = unsafe { V::load_strided(xp.add(start + kx * d + 4 * j * s), s) };
                        *a = a.add(xv.mul(wv));
                    }
                }
            }
            let out = &mut row[ox..ox + 4 * N];
            for (j, a) in acc.iter().enumerate() {
                // SAFETY: out holds 4·N floats; 4j + 4 ≤ 4·N.
                unsafe { a.add(bias).store(out.as_mut_ptr().add(4 * j)) };
            }
        }
        lo + width
    }
}
