//! SIMD128 overrides of the f32 convolution and pooling: the same IEEE
//! operations per output in the same order, several outputs at a time, so
//! bit-identical.
//!
//! Convolution is the shared blocked kernels of `blocked::conv` and
//! `blocked::depthwise` on `v128`;
//! pooling vectorises across 4 neighbouring output columns: 2×2 windows
//! at stride 2 by even/odd shuffles of whole rows (`plane_2x2`), other
//! windows per tap (at stride 2, two loads and one shuffle instead of four
//! lane gathers).

use core::arch::wasm32::*;

use crate::kernels::blocked;
use crate::kernels::generic as reference;
use crate::kernels::geometry::{ConvGeom, PoolGeom, PoolKind};

/// [`reference::conv2d`], blocked as `blocked::conv` and
/// `blocked::depthwise` describe.
#[inline(never)]
pub fn conv2d(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeom, y: &mut [f32]) {
    blocked::conv2d::<v128>(x, w, b, g, y)
}

/// Every whole vector of every output row of one plane for 2×2 windows at
/// stride 2 (most CNNs' pooling); returns the first column of each row
/// left to the caller's scalar tail. Per 4 outputs: two loads from each
/// window row, split into even and odd columns by shuffles and folded by
/// `fold` in the reference's order (row 0 even, row 0 odd, row 1 even,
/// row 1 odd) — 4 loads where the per-tap loop of [`pool`] makes 8. The
/// whole plane is one loop nest on raw pointers after one bounds check, so
/// a LeNet's short rows (12 and 4 outputs) pay no per-row slicing.
#[inline(always)]
fn plane_2x2(
    fold: impl Fn([v128; 4]) -> v128,
    plane: &[f32],
    w: usize,
    out: &mut [f32],
    ow: usize,
) -> usize {
    let vectors = ow / 4;
    let oh = out.len() / ow.max(1);
    // Row oy reads floats 2·oy·w + 8j .. + 8 of rows 2·oy and 2·oy + 1:
    // the last is (2·oh − 1)·w + 8·vectors − 1 < 2·oh·w, as 8·vectors ≤
    // 2·ow ≤ w (the windows fit the row). It writes oy·ow + 4j .. + 4.
    if vectors == 0 || 2 * ow > w || plane.len() < 2 * oh * w {
        return 0;
    }
    let (x, y) = (plane.as_ptr(), out.as_mut_ptr());
    let split = |r: *const f32| {
        // SAFETY: the callers' r + 8 floats lie inside the plane (above).
        let (a, b) = unsafe {
            (
                v128_load(r as *const v128),
                v128_load(r.add(4) as *const v128),
            )
        };
        (
            i32x4_shuffle::<0, 2, 4, 6>(a, b),
            i32x4_shuffle::<1, 3, 5, 7>(a, b),
        )
    };
    for oy in 0..oh {
        // SAFETY: see above; 2·oy·w + w + 8j + 8 ≤ 2·oh·w and
        // oy·ow + 4j + 4 ≤ oh·ow ≤ out.len().
        unsafe {
            let (r0, o) = (x.add(2 * oy * w), y.add(oy * ow));
            let r1 = r0.add(w);
            for j in 0..vectors {
                let ((e0, o0), (e1, o1)) = (split(r0.add(8 * j)), split(r1.add(8 * j)));
                v128_store(o.add(4 * j) as *mut v128, fold([e0, o0, e1, o1]));
            }
        }
    }
    4 * vectors
}

/// [`reference::pool`], four output columns per vector.
pub fn pool(kind: PoolKind, x: &[f32], g: &PoolGeom, y: &mut [f32]) {
    let Some(in_len) = g.input_len() else { return };
    let rows = x.len() / in_len;
    if rows.checked_mul(g.output_len()).is_none_or(|n| n > y.len()) {
        return reference::pool(kind, x, g, y);
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
            let mut first = 0;
            if g.k == 2 && s == 2 {
                first = match kind {
                    PoolKind::Max => plane_2x2(
                        |[e0, o0, e1, o1]| {
                            let m = f32x4_pmax(f32x4_splat(f32::NEG_INFINITY), e0);
                            f32x4_pmax(f32x4_pmax(f32x4_pmax(m, o0), e1), o1)
                        },
                        plane,
                        g.w,
                        out,
                        ow,
                    ),
                    PoolKind::Avg => plane_2x2(
                        |[e0, o0, e1, o1]| {
                            let s = f32x4_add(f32x4_splat(0.0), e0);
                            let s = f32x4_add(f32x4_add(f32x4_add(s, o0), e1), o1);
                            f32x4_div(s, f32x4_splat(4.0))
                        },
                        plane,
                        g.w,
                        out,
                        ow,
                    ),
                };
                if first == ow {
                    continue;
                }
            }
            for oy in 0..oh {
                let mut ox = first;
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
