//! The blocked int8 convolution behind the SIMD overrides of
//! [`generic::conv2d_i8`], written once over a 4 × i32 vector ([`I32x4`])
//! and instantiated for wasm's `v128` and x86-64's SSE2 `__m128i`.
//!
//! Integer sums are exact and order-free, so any blocking gives the
//! reference's accumulators bit for bit. The shape chosen:
//!
//! - **A padded pair buffer per image.** Each input row is copied once into
//!   i32 cells, cell `q` holding the i16 pair `(v(q), v(q+1))` of padded
//!   columns `q` and `q + 1` (the zero point outside the image, rows of
//!   padding included). A cell is exactly what `dot_i16x8` wants for one
//!   output position and one tap pair `kx = 2j, 2j+1`, and four output
//!   positions' cells for the same tap pair are one load (stride 1) or a
//!   gather (larger strides). No per-tap padding test, no im2col column.
//! - **Tiles of 4 output channels × 8 output columns.** Per tap pair, two
//!   input vectors (positions 0–3 and 4–7) meet the four channels' weight
//!   pairs (one 8-byte load of the packed filters, sign-extended, each
//!   channel's pair broadcast) in eight independent accumulators — 64
//!   multiply-adds per 2 input loads, 1 weight load and 4 shuffles. The
//!   results are four channels' output columns, stored as vectors straight
//!   into the NCHW planes: no horizontal sums.
//! - **Edges.** The last tile of a row moves back to overlap its neighbour
//!   (an output computed twice has the same bits); a row narrower than 8
//!   computes a full tile over the buffer's spare cells and stores its
//!   first `out_w` lanes. Channels beyond `out_c` in the last group have
//!   zero filters and are not stored.

use super::lanes::I32x4;
#[cfg(doc)]
use crate::kernels::generic;
use crate::kernels::geometry::ConvGeom;
use crate::kernels::packing::conv_i8::{GROUP, packed_len, scratch_len};

/// Output columns per tile (two vectors).
const COLS: usize = 8;

/// [`generic::conv2d_i8`] with `V` lanes; same arguments, same bits. `scratch` must hold [`scratch_len`] values; with wrong sizes
/// nothing is computed (the caller, `Model`, guarantees them — and this
/// keeps a second copy of the kernel out of the wasm module).
#[inline(always)]
pub(crate) fn conv2d_i8<V: I32x4>(
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    g: &ConvGeom,
    pad: i8,
    scratch: &mut [i32],
    acc: &mut [i32],
) {
    let (Some(in_len), Some(out_len), Some(wl), Some(sl)) =
        (g.input_len(), g.output_len(), packed_len(g), scratch_len(g))
    else {
        return;
    };
    let rows = x.len() / in_len.max(1);
    let sizes_ok = g.check().is_some()
        && w.len() == wl
        && bias.len() == g.out_c
        && scratch.len() >= sl
        && rows.checked_mul(out_len).is_some_and(|n| n <= acc.len());
    if !sizes_ok {
        return;
    }
    let buf = &mut scratch[..sl];
    let (s, oh, ow) = (g.stride, g.out_h(), g.out_w());
    let plane = oh * ow;
    let hp = g.in_h + 2 * g.pad_top;
    let row_len = sl / (g.in_c * hp);
    let pairs = g.kw.div_ceil(2);
    // Bytes of packed filters per channel group.
    let group_len = g.in_c * g.kh * pairs * 2 * GROUP;
    for (xr, ar) in x.chunks_exact(in_len).zip(acc.chunks_exact_mut(out_len)) {
        fill_pairs(g, xr, pad, row_len, buf);
        for oy in 0..oh {
            for (o, wg) in (0..g.out_c).step_by(GROUP).zip(w.chunks_exact(group_len)) {
                let mut ox = 0;
                loop {
                    // The last full tile ends at `ow` (overlapping); a row
                    // narrower than a tile has one partial tile.
                    let x0 = ox.min(ow.saturating_sub(COLS));
                    let tile = Tile {
                        g,
                        buf,
                        row_len,
                        hp,
                        pairs,
                    };
                    let sums = tile.run::<V>(wg, oy * s, x0 * s);
                    for (k, pair) in sums.chunks_exact(2).enumerate() {
                        let Some(&b) = bias.get(o + k) else { break };
                        let b = V::splat(b);
                        let at = (o + k) * plane + oy * ow + x0;
                        store_cols(
                            pair[0].add(b),
                            pair[1].add(b),
                            &mut ar[at..at + ow.min(COLS)],
                        );
                    }
                    ox = x0 + COLS;
                    if ox >= ow {
                        break;
                    }
                }
            }
        }
    }
}

/// Stores the 8 lanes of `lo`, `hi` to `out` (at most 8 values: a narrow
/// row keeps its first `out.len()`).
#[inline(always)]
fn store_cols<V: I32x4>(lo: V, hi: V, out: &mut [i32]) {
    if out.len() == COLS {
        // SAFETY: out holds 8 i32.
        unsafe {
            lo.store(out.as_mut_ptr());
            hi.store(out.as_mut_ptr().add(4));
        }
    } else {
        let mut t = [0i32; COLS];
        // SAFETY: t holds 8 i32.
        unsafe {
            lo.store(t.as_mut_ptr());
            hi.store(t.as_mut_ptr().add(4));
        }
        let n = out.len();
        out.copy_from_slice(&t[..n]);
    }
}

/// Writes image `xr`'s pair buffer: for channel `c`, padded row `r` and
/// cell `q < row_len`, the i16 pair `(v(r, q), v(r, q+1))` where `v` is the
/// input at `(r − pad, q − pad)`, or `pad` outside the image.
#[inline(always)]
fn fill_pairs(g: &ConvGeom, xr: &[i8], pad: i8, row_len: usize, buf: &mut [i32]) {
    let pair = |a: i8, b: i8| i32::from(a as i16 as u16) | (i32::from(b) << 16);
    let hp = g.in_h + 2 * g.pad_top;
    for (cr, row) in buf.chunks_exact_mut(row_len).enumerate() {
        let (c, r) = (cr / hp, cr % hp);
        let iy = r.wrapping_sub(g.pad_top);
        if iy >= g.in_h {
            row.fill(pair(pad, pad));
            continue;
        }
        let src = &xr[(c * g.in_h + iy) * g.in_w..][..g.in_w];
        let v = |q: usize| src.get(q.wrapping_sub(g.pad_top)).copied().unwrap_or(pad);
        let mut prev = v(0);
        for (q, cell) in row.iter_mut().enumerate() {
            let next = v(q + 1);
            *cell = pair(prev, next);
            prev = next;
        }
    }
}

/// What a tile reads: the geometry, the pair buffer and its shape.
struct Tile<'a> {
    g: &'a ConvGeom,
    buf: &'a [i32],
    row_len: usize,
    hp: usize,
    pairs: usize,
}

impl Tile<'_> {
    /// The sums (bias not added) of one channel group (`wg`, its packed
    /// filters) at 8 output columns whose windows start at padded row `top`
    /// and padded column `left`: `[ch0 cols 0–3, ch0 cols 4–7, ch1 …]`.
    #[inline(always)]
    fn run<V: I32x4>(&self, wg: &[i8], top: usize, left: usize) -> [V; 2 * GROUP] {
        let s = self.g.stride;
        let mut a = [V::zero(); 2 * GROUP];
        let mut wp = wg.as_ptr();
        for c in 0..self.g.in_c {
            for ky in 0..self.g.kh {
                let base = (c * self.hp + top + ky) * self.row_len + left;
                // SAFETY: base + 2j + 7s ≤ base + (8 − 1)·s + kw2 − 2 lies in
                // the row (`scratch_len`: row_len = (max(ow, 8) − 1)·s +
                // kw2 − 1, and left = x0·s with x0 + 8 ≤ max(ow, 8));
                // top + ky < hp. wp walks wg, whose length is
                // in_c · kh · pairs · 8 bytes: one 8-byte unit per step.
                unsafe {
                    let row = self.buf.as_ptr().add(base);
                    for j in 0..self.pairs {
                        let lo = V::load_strided(row.add(2 * j), s);
                        let hi = V::load_strided(row.add(2 * j + 4 * s), s);
                        let wv = V::load_i8x8(wp).broadcast_lanes();
                        wp = wp.add(2 * GROUP);
                        for k in 0..GROUP {
                            a[2 * k] = a[2 * k].dot_add(lo, wv[k]);
                            a[2 * k + 1] = a[2 * k + 1].dot_add(hi, wv[k]);
                        }
                    }
                }
            }
        }
        a
    }
}
