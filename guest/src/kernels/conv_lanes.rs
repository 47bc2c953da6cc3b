//! The blocked 2-D convolution behind the SIMD overrides of
//! [`super::conv::conv2d`], written once over a 4-lane `f32` vector
//! ([`F32x4`]) and instantiated for wasm's `v128` (`conv_simd128`) and
//! x86-64's SSE2 `__m128` (`conv_sse2`).
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
//!   loop's bounds, not its body. The last tile of the channel or column
//!   range is moved back to overlap its neighbour instead of falling back
//!   to narrower code; an overlapped output is computed twice with the same
//!   bits. One tile shape keeps the wasm kernel within its size budget.
//! - **Border and narrow columns** run one output position at a time with
//!   output channels across the lanes (the weights are stored `out_c`
//!   innermost, so four channels' weights for a tap are one load), through
//!   [`for_each_tap`]'s padding tests. Fewer than 4 channels run scalar.

use super::blocks;
use super::conv::{self, ConvGeom, for_each_tap};

/// Four `f32` lanes and the lane-wise IEEE operations the convolution uses
/// (one rounding each, no fused multiply-add).
pub(crate) trait F32x4: Copy {
    fn splat(v: f32) -> Self;
    fn from_array(v: [f32; 4]) -> Self;
    fn to_array(self) -> [f32; 4];
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    /// Loads `p[0..4]`.
    ///
    /// # Safety
    /// The four floats at `p` must be readable.
    unsafe fn load(p: *const f32) -> Self;
    /// Stores the lanes to `p[0..4]`.
    ///
    /// # Safety
    /// The four floats at `p` must be writable.
    unsafe fn store(self, p: *mut f32);

    /// Loads `p[0]`, `p[s]`, `p[2s]`, `p[3s]`.
    ///
    /// # Safety
    /// Those four floats must be readable.
    #[inline(always)]
    unsafe fn load_strided(p: *const f32, s: usize) -> Self {
        // SAFETY: the caller guarantees the four reads.
        unsafe {
            if s == 1 {
                Self::load(p)
            } else {
                Self::from_array([*p, *p.add(s), *p.add(2 * s), *p.add(3 * s)])
            }
        }
    }
}

/// [`conv::conv2d`] with `V` lanes; same arguments, same bits.
#[inline(always)]
pub(crate) fn conv2d<V: F32x4>(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeom, y: &mut [f32]) {
    let (Some(in_len), Some(out_len), Some(wlen)) = (g.input_len(), g.output_len(), g.weight_len())
    else {
        return;
    };
    let rows = x.len() / in_len;
    let sizes_ok = g.check().is_some()
        && w.len() == wlen
        && b.len() == g.out_c
        && rows.checked_mul(out_len).is_some_and(|n| n <= y.len());
    if !sizes_ok {
        return conv::conv2d(x, w, b, g, y);
    }
    let (s, p, ow) = (g.stride, g.pad, g.out_w());
    // Interior columns [lo, hi): ox·s ≥ pad and ox·s − pad + kw − 1 < in_w.
    let lo = p.div_ceil(s).min(ow);
    let hi = (g.in_w + p)
        .checked_sub(g.kw)
        .map_or(0, |v| v / s + 1)
        .clamp(lo, ow);
    for (xr, yr) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(out_len)) {
        for oy in 0..g.out_h() {
            let top = oy * s;
            // Window rows inside the input: top + ky − pad ∈ [0, in_h).
            let ky = p.saturating_sub(top)..g.kh.min(g.in_h + p - top);
            let row = Row {
                g,
                xr,
                w,
                b,
                oy,
                ky,
            };
            let mut done = lo;
            if hi - lo >= 8 && g.out_c >= 4 {
                for o in blocks(g.out_c, 4) {
                    for ox in blocks(hi - lo, 8) {
                        row.tile::<V>(yr, o, lo + ox);
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
    /// The kernel rows that fall inside the input.
    ky: core::ops::Range<usize>,
}

impl Row<'_> {
    /// Channels `o..o + 4` at the interior columns `ox..ox + 8`.
    #[inline(always)]
    fn tile<V: F32x4>(&self, yr: &mut [f32], o: usize, ox: usize) {
        const C: usize = 4;
        const N: usize = 2;
        let g = self.g;
        let s = g.stride;
        let mut acc = [[V::splat(0.0); N]; C];
        let (xp, wp) = (self.xr.as_ptr(), self.w.as_ptr());
        for c in 0..g.in_c {
            for ky in self.ky.clone() {
                let xrow = (c * g.in_h + self.oy * s + ky - g.pad) * g.in_w + ox * s - g.pad;
                let wrow = (c * g.kh + ky) * g.kw * g.out_c + o;
                for kx in 0..g.kw {
                    // SAFETY: ky keeps the input row inside the image and
                    // interior columns keep every tap of columns
                    // ox..ox + 4·N inside the row (see `conv2d`), so the
                    // strided reads lie in xr; tap < taps and o + C ≤ out_c,
                    // so the weight reads lie in w (length checked).
                    unsafe {
                        let xv: [V; N] = core::array::from_fn(|j| {
                            V::load_strided(xp.add(xrow + kx + 4 * j * s), s)
                        });
                        let wt = wp.add(wrow + kx * g.out_c);
                        for (ci, a) in acc.iter_mut().enumerate() {
                            let wv = V::splat(*wt.add(ci));
                            for (aj, &xj) in a.iter_mut().zip(&xv) {
                                *aj = aj.add(xj.mul(wv));
                            }
                        }
                    }
                }
            }
        }
        let (plane, at) = (g.out_h() * g.out_w(), self.oy * g.out_w() + ox);
        for (ci, a) in acc.iter().enumerate() {
            let bias = V::splat(self.b[o + ci]);
            let dst = &mut yr[(o + ci) * plane + at..][..4 * N];
            for (j, aj) in a.iter().enumerate() {
                // SAFETY: dst holds 4·N floats.
                unsafe { aj.add(bias).store(dst.as_mut_ptr().add(4 * j)) };
            }
        }
    }

    /// Every channel at column `ox`, through the padding tests.
    fn pixel<V: F32x4>(&self, yr: &mut [f32], ox: usize) {
        let (g, xr, w) = (self.g, self.xr, self.w);
        let plane = g.out_h() * g.out_w();
        let at = self.oy * g.out_w() + ox;
        if g.out_c < 4 {
            for o in 0..g.out_c {
                let mut acc = 0.0f32;
                for_each_tap(g, self.oy, ox, |xi, tap| {
                    acc += xr[xi] * w[tap * g.out_c + o]
                });
                yr[o * plane + at] = acc + self.b[o];
            }
            return;
        }
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
