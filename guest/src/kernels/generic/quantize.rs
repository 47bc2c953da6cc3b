//! The float steps and fixed-point steps of the int8 path — quantize,
//! requantize, dequantize, per row and per NCHW channel plane: the
//! definition of their arithmetic (see `docs/quantization.md`).
//!
//! The float steps are defined operation by operation, like the f32
//! kernels; requantize is integer arithmetic in i64.

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

/// The dynamic quantization scale of a row for `levels` levels on each
/// side of zero (127 for dense layers, 63 for recurrent ones): `m /
/// levels` where `m` is the largest `|x|` (NaN ignored), and `1` for an
/// all-zero row. Returns `(scale, inv_scale = levels / m)`.
pub fn dynamic_scale(row: &[f32], levels: f32) -> (f32, f32) {
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
        (m / levels, levels / m)
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

/// [`requantize_one`] over NCHW accumulators: channel `o` (planes of
/// `plane` values) uses `multiplier[o]` and `shift[o]`.
#[inline(never)]
pub fn requantize_planes(
    acc: &[i32],
    multiplier: &[i32],
    shift: &[i32],
    zero_point: i32,
    lo: i32,
    plane: usize,
    y: &mut [i8],
) {
    for (ap, yp, m, s) in channel_planes(acc, y, plane, multiplier, shift) {
        for (yv, &a) in yp.iter_mut().zip(ap) {
            *yv = requantize_one(a, m, s, zero_point, lo);
        }
    }
}

/// The channel planes of NCHW accumulators `acc` and of their outputs `y`
/// (`plane` values each, at least 1), each with its channel's parameters
/// from `p` and `q` (channel `o % p.len()`); ends at the first channel
/// without both.
#[inline(always)]
pub(crate) fn channel_planes<'a, T, P: Copy, Q: Copy>(
    acc: &'a [i32],
    y: &'a mut [T],
    plane: usize,
    p: &'a [P],
    q: &'a [Q],
) -> impl Iterator<Item = (&'a [i32], &'a mut [T], P, Q)> {
    let plane = plane.max(1);
    let channels = p.len().max(1);
    acc.chunks_exact(plane)
        .zip(y.chunks_exact_mut(plane))
        .enumerate()
        .map_while(move |(o, (ap, yp))| {
            let c = o % channels;
            Some((ap, yp, *p.get(c)?, *q.get(c)?))
        })
}

/// Final dequantize over NCHW accumulators, with the dense layer's
/// arithmetic ([`dequantize`]): `y = f32(acc) · (input_scale ·
/// weight_scale[o]) + bias[o]`, one rounding per operation in that order.
#[inline(never)]
pub fn dequantize_planes(
    acc: &[i32],
    input_scale: f32,
    weight_scale: &[f32],
    bias: &[f32],
    plane: usize,
    y: &mut [f32],
) {
    for (ap, yp, sw, b) in channel_planes(acc, y, plane, weight_scale, bias) {
        let s = input_scale * sw;
        for (yv, &a) in yp.iter_mut().zip(ap) {
            *yv = a as f32 * s + b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn requantizes_and_dequantizes_per_channel_plane() {
        let acc = [10, 20, -10, -20];
        let mut y = [0i8; 4];
        // channel 0 × 0.5, channel 1 × 0.25 (m = 2^30, shifts 31 and 32)
        requantize_planes(&acc, &[1 << 30, 1 << 30], &[31, 32], 3, -128, 2, &mut y);
        assert_eq!(y, [8, 13, 1, -2]); // −2.5 rounds half up to −2
        let mut f = [0.0f32; 4];
        dequantize_planes(&acc, 0.5, &[1.0, 2.0], &[0.0, 1.0], 2, &mut f);
        assert_eq!(f, [5.0, 10.0, -9.0, -19.0]);
    }
}
