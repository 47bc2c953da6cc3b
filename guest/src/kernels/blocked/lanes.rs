//! The vector traits the blocked kernels are written over: [`F32x4`] for
//! the f32 kernels and [`I32x4`] for the int8 convolution. Each
//! architecture folder implements them on its 128-bit vector type (wasm's
//! `v128`, x86-64's SSE2 `__m128`/`__m128i`) with instructions that round
//! each lane like the scalar ops (f32: one rounding per add and per
//! multiply, no fused multiply-add; integers: exact), so an instantiation
//! performs the generic kernel's operations exactly.

/// Four `f32` lanes and the lane-wise IEEE operations the f32 kernels use
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

/// Four i32 lanes (or eight i16) and the integer operations the blocked
/// convolution uses.
pub(crate) trait I32x4: Copy {
    fn zero() -> Self;
    fn splat(v: i32) -> Self;
    fn from_array(v: [i32; 4]) -> Self;
    fn add(self, o: Self) -> Self;
    /// `self + dot_i16x8(x, w)`: lane `i` adds `x.i16[2i]·w.i16[2i] +
    /// x.i16[2i+1]·w.i16[2i+1]` (exact, then wrapping).
    fn dot_add(self, x: Self, w: Self) -> Self;
    /// The four i32 lanes, each broadcast to a whole vector.
    fn broadcast_lanes(self) -> [Self; 4];
    /// Loads `p[0..4]`.
    ///
    /// # Safety
    /// The four i32 at `p` must be readable.
    unsafe fn load(p: *const i32) -> Self;
    /// Loads the 8 bytes at `p`, sign-extended to i16 lanes.
    ///
    /// # Safety
    /// The eight bytes at `p` must be readable.
    unsafe fn load_i8x8(p: *const i8) -> Self;
    /// Stores the lanes to `p[0..4]`.
    ///
    /// # Safety
    /// The four i32 at `p` must be writable.
    unsafe fn store(self, p: *mut i32);

    /// Loads `p[0]`, `p[s]`, `p[2s]`, `p[3s]`.
    ///
    /// # Safety
    /// Those four i32 must be readable.
    #[inline(always)]
    unsafe fn load_strided(p: *const i32, s: usize) -> Self {
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
