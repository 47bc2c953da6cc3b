//! Scalar reference kernels of the int8 path: the definition of its
//! arithmetic (see `docs/quantization.md`).
//!
//! Everything between the input quantize and the final dequantize is integer
//! arithmetic, which is exact and order-independent (i32 sums wrap modulo
//! 2³², and two's-complement addition is associative), so the SIMD128
//! overrides in `simd128_int8` match these bit for bit by construction; the
//! host still tests that in wasmtime. The two float steps are defined here
//! operation by operation, like the f32 kernels.
//!
//! # Packed weight layout
//!
//! A dense layer's int8 weights are stored *packed* in 16-byte units of four
//! outputs × four consecutive inputs, the unit both SIMD kernels consume:
//! relaxed SIMD's `i32x4.relaxed_dot_i8x16_i7x16_add_s` dots each i32 lane's
//! four bytes (one output, four inputs) with the same four inputs, and the
//! plain SIMD128 kernel sign-extends each half and uses `i32x4.dot_i16x8_s`.
//! With `Q = ⌈inputs/4⌉` quads and `B = ⌈outputs/4⌉` blocks,
//!
//! ```text
//! packed[((b·Q + q)·4 + j)·4 + t] = W[4b + j][4q + t]   (0 beyond the matrix)
//! ```
//!
//! See [`pack`].

/// Inputs per packed unit (one i32 lane of the relaxed dot product).
pub const QUAD: usize = 4;
/// Outputs per packed unit (the i32 lanes of one vector).
pub const BLOCK: usize = 4;

/// Length of the packed form of an `outputs × inputs` weight matrix, `None`
/// on overflow.
pub fn packed_len(inputs: usize, outputs: usize) -> Option<usize> {
    inputs
        .div_ceil(QUAD)
        .checked_mul(QUAD * BLOCK)?
        .checked_mul(outputs.div_ceil(BLOCK))
}

/// Index of weight `(o, i)` in the packed layout.
#[inline(always)]
pub fn packed_index(inputs: usize, o: usize, i: usize) -> usize {
    let quads = inputs.div_ceil(QUAD);
    (((o / BLOCK) * quads + i / QUAD) * BLOCK + o % BLOCK) * QUAD + i % QUAD
}

/// Packs output-major rows (`outputs × inputs`, the model file's layout).
/// `rows.len()` must be `inputs · outputs`.
pub fn pack(rows: &[i8], inputs: usize, outputs: usize, packed: &mut [i8]) {
    packed.fill(0);
    for (o, row) in rows.chunks_exact(inputs.max(1)).take(outputs).enumerate() {
        for (i, &w) in row.iter().enumerate() {
            if let Some(slot) = packed.get_mut(packed_index(inputs, o, i)) {
                *slot = w;
            }
        }
    }
}

/// Integer dense layer, accumulators only:
/// `acc[r][o] = bias[o] + Σ_i x[r][i] · W[o][i]`, in i32 with wrapping
/// arithmetic (the result does not depend on the order of the sum).
/// `w` is packed ([`pack`]); this walks it in storage order, four outputs
/// at a time.
pub fn dense_i8(x: &[i8], w: &[i8], bias: &[i32], inputs: usize, outputs: usize, acc: &mut [i32]) {
    let quads = inputs.div_ceil(QUAD);
    for (xr, ar) in x
        .chunks_exact(inputs.max(1))
        .zip(acc.chunks_exact_mut(outputs.max(1)))
    {
        for (b, wb) in w.chunks_exact(QUAD * BLOCK * quads.max(1)).enumerate() {
            let mut sums = [0i32; BLOCK];
            for (q, unit) in wb.as_chunks::<{ QUAD * BLOCK }>().0.iter().enumerate() {
                let mut xq = [0i32; QUAD];
                for (t, v) in xq.iter_mut().enumerate() {
                    *v = xr.get(QUAD * q + t).map_or(0, |&v| i32::from(v));
                }
                for (j, s) in sums.iter_mut().enumerate() {
                    let wj = &unit[QUAD * j..QUAD * (j + 1)];
                    // |Σ of four int8 products| ≤ 4·128² fits i32.
                    let t: i32 = wj.iter().zip(xq).map(|(&w, x)| i32::from(w) * x).sum();
                    *s = s.wrapping_add(t);
                }
            }
            for (j, s) in sums.iter().enumerate() {
                let o = BLOCK * b + j;
                if let (Some(a), Some(&bo)) = (ar.get_mut(o), bias.get(o)) {
                    *a = s.wrapping_add(bo);
                }
            }
        }
    }
}

/// Whether every value of `x` lies in `0..=127`: the operand range in which
/// relaxed SIMD's `i32x4.relaxed_dot_i8x16_i7x16_add_s` is deterministic
/// (see `relaxed_int8`).
pub fn is_7bit(x: &[i8]) -> bool {
    x.iter().all(|&v| v >= 0)
}

/// Rounds to the nearest integer, ties to even, exactly as wasm's
/// `f32.nearest` (for the integer it yields; the sign of a zero may differ,
/// which no caller observes). Valid for every f32: values of magnitude
/// 2²³ and above are already integers; NaN stays NaN.
#[inline(always)]
pub fn round_ties_even(v: f32) -> f32 {
    const MAGIC: f32 = 8_388_608.0; // 2^23
    if v >= MAGIC || v <= -MAGIC || v.is_nan() {
        v
    } else if v >= 0.0 {
        (v + MAGIC) - MAGIC
    } else {
        (v - MAGIC) + MAGIC
    }
}

/// Quantizes one value: `clamp(nearest(x · inv_scale) + zero_point, −128,
/// 127)`, all in f32 (one rounding for the product, exact afterwards), the
/// clamp with `pmax`/`pmin` semantics and the final conversion saturating
/// with NaN → 0 — the semantics of the SIMD128 instructions the override
/// uses.
#[inline(always)]
pub fn quantize_one(x: f32, inv_scale: f32, zero_point: f32) -> i8 {
    // `clamp` keeps NaN, like pmax/pmin; `as` then maps it to 0.
    (round_ties_even(x * inv_scale) + zero_point).clamp(-128.0, 127.0) as i8
}

/// [`quantize_one`] over a buffer (`x` and `q` of equal length).
pub fn quantize(x: &[f32], inv_scale: f32, zero_point: i32, q: &mut [i8]) {
    let zp = zero_point as f32;
    for (qv, &xv) in q.iter_mut().zip(x) {
        *qv = quantize_one(xv, inv_scale, zp);
    }
}

/// The dynamic quantization scale of a row: `m / 127` where `m` is the
/// largest `|x|` (NaN ignored), and `1` for an all-zero row. Returns
/// `(scale, inv_scale = 127 / m)`.
pub fn dynamic_scale(row: &[f32]) -> (f32, f32) {
    let mut m = 0.0f32;
    for &v in row {
        let a = f32::from_bits(v.to_bits() & 0x7fff_ffff);
        if m < a {
            m = a;
        }
    }
    if m == 0.0 || m.is_infinite() {
        (1.0, 1.0)
    } else {
        (m / 127.0, 127.0 / m)
    }
}

/// Fixed-point requantization of one accumulator:
/// `clamp(((acc · m + 2^(shift−1)) >> shift) + zero_point, lo, 127)` in i64,
/// i.e. `acc · m / 2^shift` rounded half toward +∞. `shift` is in `1..=62`
/// and `m` in `0..2³¹`, so nothing overflows.
#[inline(always)]
pub fn requantize_one(acc: i32, m: i32, shift: i32, zero_point: i32, lo: i32) -> i8 {
    let shift = shift.clamp(1, 62) as u32;
    let v = (i64::from(acc) * i64::from(m) + (1i64 << (shift - 1))) >> shift;
    (v + i64::from(zero_point)).clamp(i64::from(lo), 127) as i8
}

/// [`requantize_one`] per output channel over `rows × outputs` accumulators.
pub fn requantize(
    acc: &[i32],
    multiplier: &[i32],
    shift: &[i32],
    zero_point: i32,
    lo: i32,
    y: &mut [i8],
) {
    let outputs = multiplier.len().max(1);
    for (ar, yr) in acc.chunks_exact(outputs).zip(y.chunks_exact_mut(outputs)) {
        for (((yo, &a), &m), &s) in yr.iter_mut().zip(ar).zip(multiplier).zip(shift) {
            *yo = requantize_one(a, m, s, zero_point, lo);
        }
    }
}

/// Final dequantize: `y[o] = f32(acc[o]) · (input_scale · weight_scale[o]) +
/// bias[o]` — the conversion rounds to nearest, then one rounding per
/// operation, in that order. `input_scale` has one entry per row.
pub fn dequantize(
    acc: &[i32],
    input_scale: &[f32],
    weight_scale: &[f32],
    bias: &[f32],
    y: &mut [f32],
) {
    let outputs = weight_scale.len().max(1);
    for ((ar, yr), &sx) in acc
        .chunks_exact(outputs)
        .zip(y.chunks_exact_mut(outputs))
        .zip(input_scale)
    {
        for (((yo, &a), &sw), &b) in yr.iter_mut().zip(ar).zip(weight_scale).zip(bias) {
            *yo = a as f32 * (sx * sw) + b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_multiplies() {
        // W (3 outputs × 3 inputs), output-major.
        let rows: [i8; 9] = [1, 2, 3, -4, 5, -6, 127, -128, 0];
        let mut packed = vec![0i8; packed_len(3, 3).unwrap()];
        assert_eq!(packed.len(), 16);
        pack(&rows, 3, 3, &mut packed);
        let x: [i8; 6] = [1, 1, 1, -128, 2, 3];
        let mut acc = [0i32; 6];
        dense_i8(&x, &packed, &[10, 0, -1], 3, 3, &mut acc);
        assert_eq!(
            acc,
            [
                16,
                -5,
                -2,
                -128 + 4 + 9 + 10,
                512 + 10 - 18,
                -16256 - 256 - 1
            ]
        );
    }

    #[test]
    fn rounds_ties_to_even() {
        for (v, want) in [
            (0.5, 0.0),
            (1.5, 2.0),
            (2.5, 2.0),
            (-0.5, 0.0),
            (-1.5, -2.0),
            (-2.4, -2.0),
            (3.7, 4.0),
            (1e9, 1e9),
        ] {
            assert_eq!(round_ties_even(v), want, "{v}");
        }
        assert!(round_ties_even(f32::NAN).is_nan());
    }

    #[test]
    fn quantize_clamps_and_maps_nan_to_zero() {
        let mut q = [0i8; 5];
        quantize(&[1.0, -1000.0, 1000.0, f32::NAN, 0.26], 4.0, -3, &mut q);
        assert_eq!(q, [1, -128, 127, 0, -2]);
    }

    #[test]
    fn requantize_rounds_half_up() {
        // m / 2^shift = 0.5
        let m = 1 << 30;
        assert_eq!(requantize_one(3, m, 31, 0, -128), 2); // 1.5 → 2
        assert_eq!(requantize_one(-3, m, 31, 0, -128), -1); // -1.5 → -1
        assert_eq!(requantize_one(1000, m, 31, 0, -128), 127);
        assert_eq!(requantize_one(-1000, m, 31, 5, -128), -128);
        assert_eq!(requantize_one(-10, m, 31, -128, -128), -128); // relu clamp
    }
}
