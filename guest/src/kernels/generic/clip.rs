//! The clamping activations of MobileNet-class models — `clip` (ReLU6 is
//! `clip(x, 0, 6)`), hard-sigmoid and hard-swish: the definition of their
//! arithmetic.
//!
//! The clamps are defined as wasm's `f32x4.pmax`/`pmin` selects —
//! `max(v, lo) = if v < lo { lo } else { v }`, `min(v, hi) = if hi < v {
//! hi } else { v }` — so a NaN input passes a clip unchanged and `-0.0`
//! stays `-0.0`; every product and sum rounds once (no FMA).

/// `min(max(v, lo), hi)` as the module note defines them.
#[inline(always)]
pub(crate) fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v < lo { lo } else { v };
    if hi < v { hi } else { v }
}

/// `clip(x, lo, hi)` in place (ONNX `Clip`).
pub fn clip(x: &mut [f32], lo: f32, hi: f32) {
    for v in x {
        *v = clamp(*v, lo, hi);
    }
}

/// `clip(x·alpha + beta, 0, 1)` in place (ONNX `HardSigmoid`; Keras's
/// `hard_sigmoid` is alpha 0.2, beta 0.5).
pub fn hard_sigmoid(x: &mut [f32], alpha: f32, beta: f32) {
    for v in x {
        *v = clamp(*v * alpha + beta, 0.0, 1.0);
    }
}

/// The slope of hard-swish's gate, `1/6` rounded to f32 (ONNX's alpha).
pub const HARD_SWISH_ALPHA: f32 = 1.0 / 6.0;

/// `x · clip(x·(1/6) + 0.5, 0, 1)` in place (ONNX `HardSwish`, MobileNetV3).
pub fn hard_swish(x: &mut [f32]) {
    for v in x {
        *v *= clamp(*v * HARD_SWISH_ALPHA + 0.5, 0.0, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_follow_their_definition() {
        let mut x = [-1.0, -0.0, 3.0, 7.0, f32::NAN, f32::INFINITY];
        clip(&mut x, 0.0, 6.0);
        assert_eq!(&x[..4], [0.0, -0.0, 3.0, 6.0]);
        assert_eq!(x[1].to_bits(), (-0.0f32).to_bits());
        assert!(x[4].is_nan());
        assert_eq!(x[5], 6.0);
        let mut x = [-4.0, 0.0, 1.0, 3.0];
        hard_sigmoid(&mut x, 0.2, 0.5);
        assert_eq!(x, [0.0, 0.5, 0.7, 1.0]);
        let mut x = [-4.0, -3.0, 0.0, 3.0, 5.0];
        hard_swish(&mut x);
        assert_eq!(x[..2], [-0.0, -0.0]);
        assert_eq!(x[2..4], [0.0, 3.0]);
        assert_eq!(x[4], 5.0);
    }
}
