//! A 4-lane `f32` vector ([`F32x4`]) for the blocked SIMD kernels that are
//! written once and instantiated for wasm's SIMD128 `v128` and x86-64's
//! SSE2 `__m128` (the architecture's baseline): the convolution
//! (`conv_lanes`) and the dense layer (`dense_lanes`). Both instruction
//! sets round each lane's add and multiply like the scalar `f32` ops, so an
//! instantiation performs the reference's operations exactly.

#[cfg(target_arch = "wasm32")]
use core::arch::wasm32::*;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// Four `f32` lanes and the lane-wise IEEE operations the convolution uses
/// (one rounding each, no fused multiply-add).
pub(crate) trait F32x4: Copy {
    fn splat(v: f32) -> Self;
    fn from_array(v: [f32; 4]) -> Self;
    fn to_array(self) -> [f32; 4];
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    /// Loads `p[0..4]`.
    ///
    /// # Safety
    /// The four floats at `p` must be readable.
    unsafe fn load(p: *const f32) -> Self;
    /// Stores the lanes to `p[0..4]`.
    ///
    /// # Safety
    /// The four floats at `p` must be writable.
    unsafe fn store(self, p: *mut f32);

    /// Loads `p[0]`, `p[s]`, `p[2s]`, `p[3s]`.
    ///
    /// # Safety
    /// Those four floats must be readable.
    #[inline(always)]
    unsafe fn load_strided(p: *const f32, s: usize) -> Self {
        // SAFETY: the caller guarantees the four reads.
        unsafe {
            if s == 1 {
                Self::load(p)
            } else {
                Self::from_array([*p, *p.add(s), *p.add(2 * s), *p.add(3 * s)])
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
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

#[cfg(target_arch = "x86_64")]
impl F32x4 for __m128 {
    #[inline(always)]
    fn splat(v: f32) -> Self {
        // SAFETY: SSE2 is part of x86-64 (here and below).
        unsafe { _mm_set1_ps(v) }
    }
    #[inline(always)]
    fn from_array(v: [f32; 4]) -> Self {
        unsafe { _mm_setr_ps(v[0], v[1], v[2], v[3]) }
    }
    #[inline(always)]
    fn to_array(self) -> [f32; 4] {
        let mut out = [0.0; 4];
        // SAFETY: out holds 4 floats.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), self) };
        out
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        unsafe { _mm_add_ps(self, o) }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        unsafe { _mm_mul_ps(self, o) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 4 readable floats (unaligned load).
        unsafe { _mm_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 4 writable floats.
        unsafe { _mm_storeu_ps(p, self) }
    }
}
