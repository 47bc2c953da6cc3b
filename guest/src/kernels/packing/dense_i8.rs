//! The weight layout of int8 dense layers: 16-byte units of four outputs ×
//! four consecutive inputs, the unit every int8 dense kernel consumes.
//!
//! Relaxed SIMD's `i32x4.relaxed_dot_i8x16_i7x16_add_s` dots each i32
//! lane's four bytes (one output, four inputs) with the same four inputs,
//! and the plain SIMD128 and SSE2 kernels sign-extend each half and use
//! `i32x4.dot_i16x8_s` / `pmaddwd`. With `Q = ⌈inputs/4⌉` quads and
//! `B = ⌈outputs/4⌉` blocks,
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
