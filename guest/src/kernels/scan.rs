//! The scan behind the validation of weights: the largest magnitude (the
//! bits of `|x|`) of a run of `f32`s. A value is finite exactly when its
//! magnitude bits are below those of infinity, so one maximum answers
//! "is every weight finite?" (`crate::model`'s check).
//!
//! A module decodes and checks its model in every fresh instance — once per
//! request in `kiln serve` — so this scan runs over every weight per request
//! and its speed is part of the serving path. [`reference`] is the plain
//! fold; the SIMD128 override folds 32 values per loop iteration into eight
//! independent vector maxima. Few iterations matter as much as the vectors:
//! wasmtime's deadline (epoch) check runs at every loop back-edge, and the
//! one-vector-per-iteration loop LLVM made of the plain fold ran four times
//! slower under it (`docs/benchmarks.md`, "Serving: fresh instance per
//! request"). Both return the same integer for every input (tested in
//! wasmtime by the host's `kernel_tests`). The override is part of model
//! modules only (feature `module`): the browser package checks its model once
//! per load and keeps its bytes (`docs/web.md`'s size budget).

/// Bits of a value without its sign.
const MAGNITUDE: u32 = 0x7fff_ffff;

/// The largest `x.to_bits() & 0x7fff_ffff` of `values` (0 when empty).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128", feature = "module")))]
pub fn max_magnitude(values: &[f32]) -> u32 {
    reference(values)
}

/// The largest `x.to_bits() & 0x7fff_ffff` of `values` (0 when empty).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128", feature = "module"))]
#[inline(never)]
pub fn max_magnitude(values: &[f32]) -> u32 {
    use core::arch::wasm32::{
        u32x4_extract_lane, u32x4_max, u32x4_splat, v128, v128_and, v128_load,
    };
    const VECTORS: usize = 8;
    let (blocks, tail) = values.as_chunks::<{ VECTORS * 4 }>();
    let mask = u32x4_splat(MAGNITUDE);
    let mut acc = [u32x4_splat(0); VECTORS];
    for block in blocks {
        let p = block.as_ptr().cast::<v128>();
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: `block` holds VECTORS × 4 f32s, so vector `k` lies
            // inside it; `v128_load` has no alignment requirement.
            let v = unsafe { v128_load(p.add(k)) };
            *a = u32x4_max(*a, v128_and(v, mask));
        }
    }
    let m = acc.into_iter().fold(u32x4_splat(0), |m, a| u32x4_max(m, a));
    let lanes = [
        u32x4_extract_lane::<0>(m),
        u32x4_extract_lane::<1>(m),
        u32x4_extract_lane::<2>(m),
        u32x4_extract_lane::<3>(m),
    ];
    lanes.into_iter().fold(reference(tail), u32::max)
}

/// The plain fold: the definition of [`max_magnitude`].
pub fn reference(values: &[f32]) -> u32 {
    values.iter().fold(0, |m, v| m.max(v.to_bits() & MAGNITUDE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnitude_ignores_the_sign() {
        assert_eq!(reference(&[]), 0);
        assert_eq!(reference(&[-0.0, 0.0]), 0);
        assert_eq!(reference(&[-1.0, 0.5]), 1.0f32.to_bits());
        assert_eq!(reference(&[f32::NEG_INFINITY]), f32::INFINITY.to_bits());
        assert_eq!(max_magnitude(&[3.0, -f32::NAN]), f32::NAN.to_bits());
    }
}
