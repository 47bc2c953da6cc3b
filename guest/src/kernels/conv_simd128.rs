//! SIMD128 overrides of [`super::conv`]: the same IEEE operations per output
//! in the same order, several outputs at a time, so bit-identical (tested in
//! wasmtime against the reference by `tests/e2e/kernels.rs`).
//!
//! Convolution is the shared blocked kernel of `conv_lanes` on `v128`;
//! pooling vectorises across 4 neighbouring output columns (at stride 2,
//! two loads and one shuffle per tap instead of four lane gathers).

use core::arch::wasm32::*;

use super::conv::{self, ConvGeom, PoolGeom, PoolKind};
use super::conv_lanes::{self, F32x4};

impl F32x4 for v128 {
    #[inline(always)]
    fn splat(v: f32) -> Self {
        f32x4_splat(v)
    }
    #[inline(always)]
    fn from_array(v: [f32; 4]) -> Self {
        f32x4(v[0], v[1], v[2], v[3])
    }
    #[inline(always)]
    fn to_array(self) -> [f32; 4] {
        [
            f32x4_extract_lane::<0>(self),
            f32x4_extract_lane::<1>(self),
            f32x4_extract_lane::<2>(self),
            f32x4_extract_lane::<3>(self),
        ]
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        f32x4_add(self, o)
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        f32x4_mul(self, o)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 4 readable floats; v128_load
        // accepts any alignment.
        unsafe { v128_load(p as *const v128) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 4 writable floats.
        unsafe { v128_store(p as *mut v128, self) }
    }
}

/// [`conv::conv2d`], blocked as `conv_lanes` describes.
#[inline(never)]
pub fn conv2d(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeom, y: &mut [f32]) {
    conv_lanes::conv2d::<v128>(x, w, b, g, y)
}

/// [`conv::pool`], four output columns per vector.
pub fn pool(kind: PoolKind, x: &[f32], g: &PoolGeom, y: &mut [f32]) {
    let Some(in_len) = g.input_len() else { return };
    let rows = x.len() / in_len;
    if rows.checked_mul(g.output_len()).is_none_or(|n| n > y.len()) {
        return conv::pool(kind, x, g, y);
    }
    let (oh, ow) = (g.out_h(), g.out_w());
    let count = f32x4_splat((g.k * g.k) as f32);
    let s = g.stride;
    for (xr, yr) in x
        .chunks_exact(in_len)
        .zip(y.chunks_exact_mut(g.output_len()))
    {
        for c in 0..g.c {
            let plane = &xr[c * g.h * g.w..(c + 1) * g.h * g.w];
            let out = &mut yr[c * oh * ow..(c + 1) * oh * ow];
            for oy in 0..oh {
                let mut ox = 0;
                while ox + 4 <= ow {
                    let mut m = match kind {
                        PoolKind::Max => f32x4_splat(f32::NEG_INFINITY),
                        PoolKind::Avg => f32x4_splat(0.0),
                    };
                    for ky in 0..g.k {
                        let row = &plane[(oy * s + ky) * g.w..(oy * s + ky + 1) * g.w];
                        for kx in 0..g.k {
                            let i = ox * s + kx;
                            // SAFETY: the last lane's column (ox + 3)·s + kx
                            // is < w, as (ow − 1)·s + (k − 1) < w: at
                            // stride 1 that is i + 3, at stride 2 i + 6,
                            // the last float read.
                            let v = match s {
                                1 => unsafe { v128_load(row.as_ptr().add(i) as *const v128) },
                                // Lanes i, i + 2 of one load and i + 4, i + 6
                                // of the next: no per-lane gather.
                                2 => unsafe {
                                    let p = row.as_ptr().add(i);
                                    let (a, b) = (
                                        v128_load(p as *const v128),
                                        v128_load(p.add(3) as *const v128),
                                    );
                                    i32x4_shuffle::<0, 2, 5, 7>(a, b)
                                },
                                _ => f32x4(row[i], row[i + s], row[i + 2 * s], row[i + 3 * s]),
                            };
                            m = match kind {
                                PoolKind::Max => f32x4_pmax(m, v),
                                PoolKind::Avg => f32x4_add(m, v),
                            };
                        }
                    }
                    if kind == PoolKind::Avg {
                        m = f32x4_div(m, count);
                    }
                    let dst = &mut out[oy * ow + ox..oy * ow + ox + 4];
                    // SAFETY: dst has exactly 4 elements.
                    unsafe { v128_store(dst.as_mut_ptr() as *mut v128, m) };
                    ox += 4;
                }
                for ox in ox..ow {
                    let window = (0..g.k).flat_map(|ky| {
                        let r = (oy * s + ky) * g.w + ox * s;
                        plane[r..r + g.k].iter().copied()
                    });
                    out[oy * ow + ox] = match kind {
                        PoolKind::Max => {
                            window.fold(f32::NEG_INFINITY, |m, v| if m < v { v } else { m })
                        }
                        PoolKind::Avg => window.fold(0.0f32, |a, v| a + v) / (g.k * g.k) as f32,
                    };
                }
            }
        }
    }
}
