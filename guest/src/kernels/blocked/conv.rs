//! The blocked 2-D convolution behind the SIMD overrides of
//! [`generic::conv2d`], written once over a 4-lane `f32` vector
//! ([`F32x4`]) and instantiated for wasm's `v128` and x86-64's SSE2
//! `__m128`.
//!
//! Every lane performs the reference's IEEE operations in the reference's
//! order — per output, `+0.0`, then `+ x·w` for `c`, `ky`, `kx` increasing,
//! padded taps skipped, the bias last — so results are bit-identical to the
//! scalar kernel. What changes is which outputs run together:
//!
//! - **Interior columns** (every `kx` tap inside the input, so no per-tap
//!   padding test), when there are at least 8 of them and at least 4 output
//!   channels, run in tiles of 4 output channels × 8 neighbouring output
//!   columns: per tap, two input vectors (contiguous loads at stride 1,
//!   gathered lanes otherwise) meet four splatted weights in eight
//!   independent accumulators. The rows a kernel window loses to vertical
//!   padding are the same for the whole output row, so they leave the tap
//!   loop's bounds, not its body. The last tile of the column range, and a
//!   remainder of 3 channels, is moved back to overlap its neighbour
//!   instead of falling back to narrower code; an overlapped output is
//!   computed twice with the same bits. At stride 1, a remainder of 1 or
//!   2 channels (LeNet's first layer has 6) runs in a 2-channel
//!   instantiation of the tile instead of a 4-channel one that would
//!   compute 2 channels twice, over two output rows at once when they
//!   share their window rows: 2 channels × 2 rows × 8 columns, 8
//!   accumulators like the 4-tile, where one row's 4 chains were bound by
//!   the add latency (the measurements: `docs/benchmarks.md`, "What bounds
//!   the f32 models in Node" and "Convolutions and pooling, session 5").
//! - The tile's loops step an input and a weight pointer along the window
//!   (+`dilation` / +`out_c` per `kx`, +`dilation·in_w` / +`kw·out_c` per
//!   `ky`) rather than
//!   recomputing index products per tap: fewer integer instructions beside
//!   the 16 vector multiplies and adds of a tap step, which V8 issues at
//!   close to its floating-point bound.
//! - **Border and narrow columns** run one output position at a time with
//!   output channels across the lanes (the weights are stored `out_c`
//!   innermost, so four channels' weights for a tap are one load), through
//!   [`for_each_tap`]'s padding tests. Fewer than 4 channels run the
//!   scalar reference.

use super::lanes::F32x4;
use super::{blocks, rows_inside};
use crate::kernels::generic::{self, for_each_tap};
use crate::kernels::geometry::ConvGeom;

/// [`generic::conv2d`] of a one-group shape with `V` lanes; same
/// arguments, same bits (groups: `generic::for_each_group`).
#[inline(always)]
pub(crate) fn conv2d<V: F32x4>(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeom, y: &mut [f32]) {
    let (Some(in_len), Some(out_len), Some(wlen)) = (g.input_len(), g.output_len(), g.weight_len())
    else {
        return;
    };
    let rows = x.len() / in_len;
    let sizes_ok = g.check().is_some()
        && g.groups == 1
        && w.len() == wlen
        && b.len() == g.out_c
        && rows.checked_mul(out_len).is_some_and(|n| n <= y.len());
    // Fewer than 4 channels fill no vector: the reference's loop is the
    // scalar code they need.
    if !sizes_ok || g.out_c < 4 {
        return generic::conv2d(x, w, b, g, y);
    }
    let (s, pl, ow) = (g.stride, g.pad_left, g.out_w());
    // Interior columns [lo, hi): ox·s ≥ pad_left and ox·s − pad_left +
    // extent_w − 1 < in_w.
    let lo = pl.div_ceil(s).min(ow);
    let hi = (g.in_w + pl)
        .checked_sub(g.extent_w().unwrap_or(usize::MAX))
        .map_or(0, |v| v / s + 1)
        .clamp(lo, ow);
    let (oh, plane) = (g.out_h(), g.out_h() * ow);
    // Window rows inside the input for output row oy; empty for a row
    // whose window lies wholly in the padding (valid when the kernel is
    // wider than the padding).
    let ky_of = |oy: usize| rows_inside(g, oy);
    // Whole 4-channel tiles, then the remainder: 1 or 2 channels at
    // stride 1 by a 2-tile (stride 1 only: a gathering twin would add
    // kernel size), otherwise by a 4-tile moved back to overlap.
    let (full, rest) = (g.out_c / 4 * 4, g.out_c % 4);
    let two = (rest == 1 || rest == 2) && s == 1;
    let back = (rest != 0 && !two).then(|| g.out_c - 4);
    for (xr, yr) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(out_len)) {
        // Whether this row's 2-tiles were computed with the row above.
        let mut paired = false;
        for oy in 0..oh {
            let ky = ky_of(oy);
            let row = Row {
                g,
                xr,
                w,
                b,
                oy,
                ow,
                plane,
                ky,
            };
            let mut done = lo;
            if hi - lo >= 8 {
                // A 2-channel remainder runs for two output rows with the
                // same window rows at once: 8 independent accumulators, as
                // in the 4-tile, where one row's 4 would wait on the add
                // latency. A row without such a partner takes the 4-tile
                // moved back (one call site per tile shape: each is
                // inlined whole).
                let (mut pair, mut back) = (false, back);
                if two && !core::mem::take(&mut paired) {
                    paired = oy + 1 < oh && ky_of(oy + 1) == row.ky;
                    pair = paired;
                    back = (!pair).then(|| g.out_c - 4);
                }
                for o in (0..full).step_by(4).chain(back) {
                    for ox in blocks(hi - lo, 8) {
                        row.tile::<V, 4, 1>(yr, o, lo + ox, s);
                    }
                }
                if pair {
                    for ox in blocks(hi - lo, 8) {
                        row.tile::<V, 2, 2>(yr, g.out_c - 2, lo + ox, 1);
                    }
                }
                done = hi;
            }
            for ox in (0..lo).chain(done..ow) {
                row.pixel::<V>(yr, ox);
            }
        }
    }
}

/// One output row of one image: what the tiles of that row share.
struct Row<'a> {
    g: &'a ConvGeom,
    xr: &'a [f32],
    w: &'a [f32],
    b: &'a [f32],
    oy: usize,
    /// Output columns per row, and floats per output channel plane.
    ow: usize,
    plane: usize,
    /// The kernel rows that fall inside the input.
    ky: core::ops::Range<usize>,
}

impl Row<'_> {
    /// Channels `o..o + C` at the interior columns `ox..ox + 8` of output
    /// rows `oy..oy + R`, which must share the window rows `ky`; `s` is
    /// the stride (a literal 1 lets the compiler drop the gathers).
    #[inline(always)]
    fn tile<V: F32x4, const C: usize, const R: usize>(
        &self,
        yr: &mut [f32],
        o: usize,
        ox: usize,
        s: usize,
    ) {
        const N: usize = 2;
        let g = self.g;
        let mut acc = [[[V::splat(0.0); N]; C]; R];
        let (xp, wp) = (self.xr.as_ptr(), self.w.as_ptr());
        let (ky0, d) = (self.ky.start, g.dilation);
        // Row r's window starts s·in_w inputs after row r − 1's.
        let down = s * g.in_w;
        for c in 0..g.in_c {
            // The first window row inside the input, and its weights; each
            // further row is d·in_w inputs and kw·out_c weights on.
            let xrow = (c * g.in_h + self.oy * s + ky0 * d - g.pad_top) * g.in_w + ox * s
                - g.pad_left;
            let wrow = (c * g.kh + ky0) * g.kw * g.out_c + o;
            let (mut xr, mut wr) = (xp.wrapping_add(xrow), wp.wrapping_add(wrow));
            for _ in self.ky.clone() {
                let (mut xq, mut wq) = (xr, wr);
                for _ in 0..g.kw {
                    // SAFETY: ky keeps the input rows of output rows
                    // oy..oy + R inside the image (the caller checks that
                    // they share it) and interior columns keep every tap of
                    // columns ox..ox + 4·N inside the row (see `conv2d`),
                    // so the strided reads lie in xr; tap < taps and
                    // o + C ≤ out_c, so the weight reads lie in w (length
                    // checked). The pointers step by wrapping adds: a step
                    // past the last tap may leave the slices, and is never
                    // read.
                    unsafe {
                        let xv: [[V; N]; R] = core::array::from_fn(|r| {
                            core::array::from_fn(|j| {
                                V::load_strided(xq.add(r * down + 4 * j * s), s)
                            })
                        });
                        for ci in 0..C {
                            let wv = V::splat(*wq.add(ci));
                            for (ar, xr) in acc.iter_mut().zip(&xv) {
                                for (aj, &xj) in ar[ci].iter_mut().zip(xr) {
                                    *aj = aj.add(xj.mul(wv));
                                }
                            }
                        }
                    }
                    xq = xq.wrapping_add(d);
                    wq = wq.wrapping_add(g.out_c);
                }
                xr = xr.wrapping_add(d * g.in_w);
                wr = wr.wrapping_add(g.kw * g.out_c);
            }
        }
        // One bounds check for the tile: its last output is channel
        // o + C − 1, row oy + R − 1, column ox + 4·N − 1.
        let first = o * self.plane + self.oy * self.ow + ox;
        let end = first + (C - 1) * self.plane + (R - 1) * self.ow + 4 * N;
        let bias = &self.b[o..o + C];
        let out = yr[first..end].as_mut_ptr();
        for (r, ar) in acc.iter().enumerate() {
            for (ci, a) in ar.iter().enumerate() {
                let bias = V::splat(bias[ci]);
                for (j, aj) in a.iter().enumerate() {
                    // SAFETY: ci < C, r < R and 4j + 4 ≤ 4·N, so the four
                    // floats lie in yr[first..end] (checked above).
                    unsafe {
                        let at = ci * self.plane + r * self.ow + 4 * j;
                        aj.add(bias).store(out.add(at));
                    }
                }
            }
        }
    }

    /// Every channel at column `ox`, through the padding tests.
    fn pixel<V: F32x4>(&self, yr: &mut [f32], ox: usize) {
        let (g, xr, w, plane) = (self.g, self.xr, self.w, self.plane);
        let at = self.oy * self.ow + ox;
        for o in blocks(g.out_c, 4) {
            let mut acc = V::splat(0.0);
            for_each_tap(g, self.oy, ox, |xi, tap| {
                // SAFETY: tap < taps and o + 4 ≤ out_c: inside w.
                let wv = unsafe { V::load(w.as_ptr().add(tap * g.out_c + o)) };
                acc = acc.add(V::splat(xr[xi]).mul(wv));
            });
            let v = acc.add(V::from_array([
                self.b[o],
                self.b[o + 1],
                self.b[o + 2],
                self.b[o + 3],
            ]));
            for (i, lane) in v.to_array().into_iter().enumerate() {
                yr[(o + i) * plane + at] = lane;
            }
        }
    }
}
