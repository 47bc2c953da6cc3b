//! SIMD128 overrides of the f32 dense layer, ReLU and standardization.
//!
//! Each function performs, per output element, exactly the IEEE operations of
//! its generic twin in the same order — only several outputs at a time — so
//! results are bit-identical.
//!
//! Loads and stores use raw pointers; every function checks the slice lengths
//! it relies on before the first access, and the dense kernels trap if they
//! do not hold (which [`crate::Model::new`] rules out); the others fall back
//! to the reference.

use core::arch::wasm32::*;

use crate::kernels::blocked;
use crate::kernels::generic as reference;

/// [`reference::dense`], blocked as `blocked::dense` describes.
#[inline(never)]
pub fn dense(x: &[f32], w: &[f32], b: &[f32], inputs: usize, outputs: usize, y: &mut [f32]) {
    if !blocked::dense::dense::<v128>(x, w, b, inputs, outputs, y) {
        // Broken contract ([`crate::Model::new`] checks every size): trap
        // rather than carry a vectorised reference copy in the kernel.
        core::arch::wasm32::unreachable();
    }
}

/// [`reference::relu`] with `f32x4.pmax(x, 0)`, which is `if x < 0 { 0 } else { x }`.
pub fn relu(x: &mut [f32]) {
    let zero = f32x4_splat(0.0);
    let mut chunks = x.chunks_exact_mut(4);
    for c in &mut chunks {
        // SAFETY: c has exactly 4 elements.
        unsafe {
            let p = c.as_mut_ptr() as *mut v128;
            v128_store(p, f32x4_pmax(v128_load(p), zero));
        }
    }
    reference::relu(chunks.into_remainder());
}

/// [`reference::standardize`], four features at a time.
pub fn standardize(x: &mut [f32], mean: &[f32], inv_std: &[f32]) {
    let n = mean.len();
    if n == 0 || inv_std.len() != n {
        return reference::standardize(x, mean, inv_std);
    }
    for row in x.chunks_exact_mut(n) {
        let mut j = 0;
        while j + 4 <= n {
            // SAFETY: j + 4 <= n == row.len() == mean.len() == inv_std.len().
            unsafe {
                let p = row.as_mut_ptr().add(j) as *mut v128;
                let m = v128_load(mean.as_ptr().add(j) as *const v128);
                let s = v128_load(inv_std.as_ptr().add(j) as *const v128);
                v128_store(p, f32x4_mul(f32x4_sub(v128_load(p), m), s));
            }
            j += 4;
        }
        reference::standardize(&mut row[j..], &mean[j..], &inv_std[j..]);
    }
}
