//! Transcendental functions defined once, in plain IEEE-754 `f32` arithmetic.
//!
//! Platform `libm`s differ in their last bits, and wasm has no `exp`
//! instruction at all, so kiln carries its own. Every function here uses only
//! `+ - * /`, comparisons and integer conversions — operations IEEE-754 and
//! the wasm spec define exactly — written without fused multiply-add, so the
//! result is the same bits natively, in wasmtime and in V8.

/// [`exp`]'s constants, shared with its SIMD twin (`kernels/wasm/recurrent.rs`):
/// `log2(e)`, `ln 2` in two parts (Cody–Waite), the range limits, and the
/// polynomial's coefficients, highest degree first.
#[allow(clippy::excessive_precision)] // Cephes' constants, as published.
pub(crate) mod exp_consts {
    pub(crate) const LOG2E: f32 = core::f32::consts::LOG2_E;
    pub(crate) const LN2_HI: f32 = 0.693_359_4;
    pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
    pub(crate) const HI: f32 = 88.376_26;
    pub(crate) const LO: f32 = -87.336_55;
    pub(crate) const POLY: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        5.000_000_1e-1,
    ];
}

/// `e^x` for `f32` (Cody–Waite range reduction, degree-6 polynomial).
///
/// Accurate to about 2 ulp over the normal range. Results that would be
/// subnormal flush to `0.0`; above `ln(f32::MAX)` it returns `+inf`;
/// NaN is returned unchanged.
pub fn exp(x: f32) -> f32 {
    use exp_consts::*;
    if x.is_nan() {
        return x;
    }
    if x > HI {
        return f32::INFINITY;
    }
    if x < LO {
        return 0.0;
    }
    let n = round_half_away(x * LOG2E);
    let nf = n as f32;
    let r = x - nf * LN2_HI;
    let r = r - nf * LN2_LO;
    let z = r * r;
    let mut p = POLY[0];
    for c in &POLY[1..] {
        p = p * r + c;
    }
    let y = p * z + r + 1.0;
    // n is within [-126, 127] here, so 2^n is a normal f32.
    let scale = f32::from_bits(((n + 127) as u32) << 23);
    y * scale
}

/// Rounds to the nearest integer, halves away from zero. `as` truncates
/// towards zero and saturates, identically on every platform.
fn round_half_away(v: f32) -> i32 {
    if v >= 0.0 {
        (v + 0.5) as i32
    } else {
        (v - 0.5) as i32
    }
}

/// The natural logarithm for `f32` (Cephes' `logf`: mantissa in
/// `[√½, √2)`, degree-8 polynomial, `ln 2` split in two parts).
///
/// Accurate to about 2 ulp. `ln(0) = -inf`, `ln(+inf) = +inf`, negative
/// numbers and NaN give NaN; subnormals are scaled up first, so they are exact
/// inputs too.
#[allow(clippy::excessive_precision)] // Cephes' constants, as published.
pub fn ln(x: f32) -> f32 {
    const SQRT_HALF: f32 = core::f32::consts::FRAC_1_SQRT_2;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x == f32::INFINITY {
        return x;
    }
    let (x, mut e) = if x < f32::MIN_POSITIVE {
        (x * 8_388_608.0, -23i32)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    e += ((bits >> 23) & 0xff) as i32 - 126;
    // The mantissa as a value in [0.5, 1).
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    if m < SQRT_HALF {
        e -= 1;
        m = m + m - 1.0;
    } else {
        m -= 1.0;
    }
    let z = m * m;
    let mut y = 7.037_683_6e-2_f32;
    y = y * m - 1.151_461_0e-1;
    y = y * m + 1.167_699_9e-1;
    y = y * m - 1.242_014_1e-1;
    y = y * m + 1.424_932_3e-1;
    y = y * m - 1.666_805_8e-1;
    y = y * m + 2.000_071_5e-1;
    y = y * m - 2.499_999_4e-1;
    y = y * m + 3.333_333_1e-1;
    y = y * m * z;
    let fe = e as f32;
    y += LN2_LO * fe;
    y += -0.5 * z;
    let r = m + y;
    r + LN2_HI * fe
}

/// The logistic function `1 / (1 + e^-x)`.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Beyond ±this [`tanh`] is ±1.
pub(crate) const TANH_SATURATES: f32 = 9.0;
/// Within ±this [`tanh`] is `x`.
pub(crate) const TANH_LINEAR: f32 = 1e-4;

/// The hyperbolic tangent, `(e^2x - 1) / (e^2x + 1)`, saturating to ±1.
pub fn tanh(x: f32) -> f32 {
    if x > TANH_SATURATES {
        return 1.0;
    }
    if x < -TANH_SATURATES {
        return -1.0;
    }
    if x > -TANH_LINEAR && x < TANH_LINEAR {
        return x;
    }
    let e = exp(2.0 * x);
    (e - 1.0) / (e + 1.0)
}

/// The square root for `f32`: Newton's iteration in f64 from a guess with
/// half the exponent, rounded to f32 once. Not always correctly rounded,
/// but only `+ * /` and bit operations, so the same bits everywhere (core
/// has no `sqrt` without `std`). NaN and negative numbers give NaN.
pub fn sqrt(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 || x == f32::INFINITY {
        return x;
    }
    let v = f64::from(x);
    // Halve the biased exponent: within a factor of √2 of the root.
    let bits = v.to_bits();
    let mut r = f64::from_bits((bits >> 1) + (1023u64 << 51));
    for _ in 0..6 {
        r = 0.5 * (r + v / r);
    }
    r as f32
}

/// The probit, `√2 · erfinv(2p − 1)`, as onnxruntime computes it for
/// ONNX-ML's `post_transform` `PROBIT` (Winitzki's `erfinv` with `a =
/// 0.147`), with [`ln`] and [`sqrt`]. `p` outside `(0, 1)` gives NaN or ±inf.
pub fn probit(p: f32) -> f32 {
    let x = 2.0 * p - 1.0;
    let sign = if x < 0.0 { -1.0f32 } else { 1.0 };
    let w = (1.0 - x) * (1.0 + x);
    let l = ln(w);
    let a = 2.0 / (core::f32::consts::PI * 0.147) + 0.5 * l;
    let b = 1.0 / 0.147 * l;
    let c = -a + sqrt(a * a - b);
    core::f32::consts::SQRT_2 * (sign * sqrt(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_close_to_std() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let got = exp(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn ln_is_close_to_std() {
        let mut worst = 0.0f64;
        let mut x = 1e-38f32;
        while x < 3e38 {
            let want = (x as f64).ln();
            let err = (ln(x) as f64 - want).abs() / want.abs().max(1.0);
            worst = worst.max(err);
            x *= 1.000_37;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        // Subnormals and the edges.
        let tiny = f32::from_bits(1);
        assert!((ln(tiny) as f64 - (tiny as f64).ln()).abs() < 1e-4);
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert_eq!(ln(f32::INFINITY), f32::INFINITY);
        assert!(ln(-1.0).is_nan() && ln(f32::NAN).is_nan());
    }

    #[test]
    fn sigmoid_and_tanh_are_close_to_std() {
        let mut x = -20.0f32;
        while x < 20.0 {
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!((sigmoid(x) as f64 - s).abs() < 1e-6, "sigmoid({x})");
            assert!(
                (tanh(x) as f64 - (x as f64).tanh()).abs() < 1e-6,
                "tanh({x})"
            );
            x += 0.01;
        }
    }

    #[test]
    fn sqrt_and_probit_are_close_to_std() {
        let mut x = 1e-30f32;
        while x < 1e30 {
            let want = (x as f64).sqrt();
            assert!((sqrt(x) as f64 - want).abs() <= want * 1.2e-7, "sqrt({x})");
            x *= 1.37;
        }
        assert_eq!(sqrt(4.0), 2.0);
        assert!(sqrt(-1.0).is_nan());
        assert_eq!(sqrt(0.0), 0.0);
        // The normal quantiles of 0.5, 0.8413 (≈1σ), 0.975 (≈1.96σ):
        // Winitzki's approximation is within ~2e-3.
        for (p, z) in [
            (0.5f32, 0.0f64),
            (0.841_344_7, 1.0),
            (0.975, 1.959_964),
            (0.1, -1.281_552),
        ] {
            assert!(
                (probit(p) as f64 - z).abs() < 3e-3,
                "probit({p}) = {}",
                probit(p)
            );
        }
    }
}
