//! SIMD128 overrides of [`super::conv`]: the same IEEE operations per output
//! in the same order, several outputs at a time, so bit-identical (tested in
//! wasmtime against the reference by `tests/e2e/kernels.rs`).
//!
//! Convolution vectorises across output channels (the weights are stored
//! with `out_c` innermost, so a tap's weights for 4 channels are one load);
//! pooling vectorises across 4 neighbouring output columns.

use core::arch::wasm32::*;

use super::conv::{self, ConvGeom, PoolGeom, PoolKind, for_each_tap};

/// [`conv::conv2d`], 16 or 4 output channels per pass.
pub fn conv2d(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeom, y: &mut [f32]) {
    let (Some(in_len), Some(out_len), Some(wlen)) = (g.input_len(), g.output_len(), g.weight_len())
    else {
        return;
    };
    let rows = x.len() / in_len;
    let sizes_ok = w.len() == wlen
        && b.len() == g.out_c
        && rows.checked_mul(out_len).is_some_and(|n| n <= y.len());
    if !sizes_ok || g.out_c < 4 {
        return conv::conv2d(x, w, b, g, y);
    }
    let (oh, ow) = (g.out_h(), g.out_w());
    let plane = oh * ow;
    let wp = w.as_ptr();
    for (xr, yr) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(out_len)) {
        for oy in 0..oh {
            for ox in 0..ow {
                let p = oy * ow + ox;
                let mut o = 0;
                while o + 16 <= g.out_c {
                    let mut a = [f32x4_splat(0.0); 4];
                    for_each_tap(g, oy, ox, |xi, tap| {
                        let xv = f32x4_splat(xr[xi]);
                        // SAFETY: tap < taps and o + 16 <= out_c, so the 16
                        // floats at tap * out_c + o lie inside w.
                        unsafe {
                            let q = wp.add(tap * g.out_c + o) as *const v128;
                            for (j, acc) in a.iter_mut().enumerate() {
                                *acc = f32x4_add(*acc, f32x4_mul(xv, v128_load(q.add(j))));
                            }
                        }
                    });
                    for (j, acc) in a.iter().enumerate() {
                        store(yr, *acc, b, o + 4 * j, plane, p);
                    }
                    o += 16;
                }
                while o + 4 <= g.out_c {
                    let mut acc = f32x4_splat(0.0);
                    for_each_tap(g, oy, ox, |xi, tap| {
                        // SAFETY: as above, with 4 floats.
                        let wv = unsafe { v128_load(wp.add(tap * g.out_c + o) as *const v128) };
                        acc = f32x4_add(acc, f32x4_mul(f32x4_splat(xr[xi]), wv));
                    });
                    store(yr, acc, b, o, plane, p);
                    o += 4;
                }
                for oo in o..g.out_c {
                    let mut acc = 0.0f32;
                    for_each_tap(g, oy, ox, |xi, tap| acc += xr[xi] * w[tap * g.out_c + oo]);
                    yr[oo * plane + p] = acc + b[oo];
                }
            }
        }
    }
}

/// Adds the bias of channels `o..o + 4` to `acc` and writes the four
/// results to their channel planes at position `p`.
#[inline(always)]
fn store(yr: &mut [f32], acc: v128, b: &[f32], o: usize, plane: usize, p: usize) {
    let v = f32x4_add(acc, f32x4(b[o], b[o + 1], b[o + 2], b[o + 3]));
    yr[o * plane + p] = f32x4_extract_lane::<0>(v);
    yr[(o + 1) * plane + p] = f32x4_extract_lane::<1>(v);
    yr[(o + 2) * plane + p] = f32x4_extract_lane::<2>(v);
    yr[(o + 3) * plane + p] = f32x4_extract_lane::<3>(v);
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
                            let v = if s == 1 {
                                // SAFETY: i + 3 = (ox + 3)·1 + kx < w, as
                                // (ow − 1) + (k − 1) < w.
                                unsafe { v128_load(row.as_ptr().add(i) as *const v128) }
                            } else {
                                f32x4(row[i], row[i + s], row[i + 2 * s], row[i + 3 * s])
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
