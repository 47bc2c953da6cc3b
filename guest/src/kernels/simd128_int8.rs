//! SIMD128 overrides of the int8 reference kernels ([`super::int8`]).
//!
//! [`dense_i8`] multiplies with `i32x4.dot_i16x8_s`: 16 packed weight bytes
//! (two inputs of eight outputs) are sign-extended to two `i16x8` halves and
//! dotted with the input pair splatted into every `i32` lane, giving eight
//! outputs' partial sums. Products of int8 values fit in i16 and a pair's sum
//! in i32, so every step is exact; the i32 sums wrap exactly like the
//! reference's, and integer addition does not depend on its order.
//!
//! [`quantize`] performs the reference's f32 operations four lanes at a time
//! (`f32x4.nearest` is the reference's ties-to-even rounding, `pmin`/`pmax`
//! its clamp, `i32x4.trunc_sat_f32x4_s` its saturating conversion).

use core::arch::wasm32::*;

use super::int8 as reference;

/// Output blocks of 8 processed per pass over the input row.
const GROUP: usize = 4;

/// [`reference::dense_i8`], 32 outputs per pass.
pub fn dense_i8(x: &[i8], w: &[i8], bias: &[i32], inputs: usize, outputs: usize, acc: &mut [i32]) {
    let rows = x.len().checked_div(inputs).unwrap_or(0);
    let sizes_ok = reference::packed_len(inputs, outputs) == Some(w.len())
        && bias.len() == outputs
        && rows.checked_mul(outputs).is_some_and(|n| n <= acc.len());
    if !sizes_ok || outputs == 0 {
        return reference::dense_i8(x, w, bias, inputs, outputs, acc);
    }
    let pairs = inputs.div_ceil(2);
    let blocks = outputs.div_ceil(8);
    for (xr, ar) in x.chunks_exact(inputs).zip(acc.chunks_exact_mut(outputs)) {
        let mut b = 0;
        while b < blocks {
            let n = (blocks - b).min(GROUP);
            let mut sums = [i32x4_splat(0); 2 * GROUP];
            if n == GROUP {
                block_pass::<GROUP>(xr, w, pairs, b, &mut sums);
            } else {
                block_pass::<1>(xr, w, pairs, b, &mut sums);
                for k in 1..n {
                    let mut one = [i32x4_splat(0); 2 * GROUP];
                    block_pass::<1>(xr, w, pairs, b + k, &mut one);
                    sums[2 * k] = one[0];
                    sums[2 * k + 1] = one[1];
                }
            }
            let mut out = [0i32; 8 * GROUP];
            for (k, s) in sums.iter().enumerate() {
                // SAFETY: out has 4 · 2 · GROUP i32, k < 2 · GROUP.
                unsafe { v128_store(out.as_mut_ptr().add(4 * k) as *mut v128, *s) };
            }
            let first = 8 * b;
            let last = (first + 8 * n).min(outputs);
            for o in first..last {
                ar[o] = out[o - first].wrapping_add(bias[o]);
            }
            b += n;
        }
    }
}

/// The pair `(x[2p], x[2p+1])` as two i16 in one i32 lane, splatted.
#[inline(always)]
fn pair_splat(xr: &[i8], p: usize) -> v128 {
    let lo = xr[2 * p] as i16 as u16 as u32;
    let hi = xr.get(2 * p + 1).map_or(0, |&v| v as i16 as u16 as u32);
    i32x4_splat((lo | (hi << 16)) as i32)
}

/// Accumulates `N` consecutive output blocks starting at `b0` over the whole
/// input row into `sums[2k]` (outputs 0–3 of block k) and `sums[2k+1]`
/// (outputs 4–7).
#[inline(always)]
fn block_pass<const N: usize>(
    xr: &[i8],
    w: &[i8],
    pairs: usize,
    b0: usize,
    sums: &mut [v128; 2 * GROUP],
) {
    let inputs = xr.len();
    let wp = w.as_ptr();
    // Byte offset of (block b0 + k, pair p) is ((b0 + k)·pairs + p)·16.
    let base = |k: usize, p: usize| ((b0 + k) * pairs + p) * 16;
    let step = |xp: v128, p: usize, sums: &mut [v128; 2 * GROUP]| {
        for k in 0..N {
            // SAFETY: b0 + k < blocks and p < pairs, so the 16 bytes lie
            // inside w (w.len() == blocks · pairs · 16, checked by the caller).
            // `i16x8.load8x8_s` sign-extends while loading (one pmovsxbw
            // on x86), cheaper than a load and two extends.
            let (lo, hi) = unsafe {
                let at = wp.add(base(k, p));
                (
                    i16x8_load_extend_i8x8(at),
                    i16x8_load_extend_i8x8(at.add(8)),
                )
            };
            sums[2 * k] = i32x4_add(sums[2 * k], i32x4_dot_i16x8(lo, xp));
            sums[2 * k + 1] = i32x4_add(sums[2 * k + 1], i32x4_dot_i16x8(hi, xp));
        }
    };
    let mut i = 0;
    while i + 16 <= inputs {
        // SAFETY: i + 16 <= inputs == xr.len().
        let xv = unsafe { v128_load(xr.as_ptr().add(i) as *const v128) };
        let (xl, xh) = (i16x8_extend_low_i8x16(xv), i16x8_extend_high_i8x16(xv));
        let p = i / 2;
        step(i32x4_shuffle::<0, 0, 0, 0>(xl, xl), p, sums);
        step(i32x4_shuffle::<1, 1, 1, 1>(xl, xl), p + 1, sums);
        step(i32x4_shuffle::<2, 2, 2, 2>(xl, xl), p + 2, sums);
        step(i32x4_shuffle::<3, 3, 3, 3>(xl, xl), p + 3, sums);
        step(i32x4_shuffle::<0, 0, 0, 0>(xh, xh), p + 4, sums);
        step(i32x4_shuffle::<1, 1, 1, 1>(xh, xh), p + 5, sums);
        step(i32x4_shuffle::<2, 2, 2, 2>(xh, xh), p + 6, sums);
        step(i32x4_shuffle::<3, 3, 3, 3>(xh, xh), p + 7, sums);
        i += 16;
    }
    for p in i / 2..pairs {
        step(pair_splat(xr, p), p, sums);
    }
}

/// [`reference::quantize`], four values per vector.
pub fn quantize(x: &[f32], inv_scale: f32, zero_point: i32, q: &mut [i8]) {
    let n = x.len().min(q.len());
    let (inv, zp) = (f32x4_splat(inv_scale), f32x4_splat(zero_point as f32));
    let (lo, hi) = (f32x4_splat(-128.0), f32x4_splat(127.0));
    let mut j = 0;
    while j + 4 <= n {
        // SAFETY: j + 4 <= n <= x.len().
        let v = unsafe { v128_load(x.as_ptr().add(j) as *const v128) };
        let v = f32x4_add(f32x4_nearest(f32x4_mul(v, inv)), zp);
        // pmax(v, lo) is `if v < lo { lo } else { v }` and pmin(v, hi) is
        // `if hi < v { hi } else { v }`: the reference's clamp, NaN kept.
        let v = f32x4_pmin(f32x4_pmax(v, lo), hi);
        let i = i32x4_trunc_sat_f32x4(v);
        let t = i16x8_narrow_i32x4(i, i);
        let b = i8x16_narrow_i16x8(t, t);
        let word = i32x4_extract_lane::<0>(b) as u32;
        q[j..j + 4].copy_from_slice(&word.to_le_bytes().map(|v| v as i8));
        j += 4;
    }
    reference::quantize(&x[j..n], inv_scale, zero_point, &mut q[j..n]);
}
