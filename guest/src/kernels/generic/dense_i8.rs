//! The int8 dense layer, accumulators only: the definition of its
//! arithmetic (see `docs/quantization.md`).
//!
//! Integer arithmetic is exact and order-independent (i32 sums wrap modulo
//! 2³², and two's-complement addition is associative), so every override
//! matches this bit for bit by construction; the shared case table
//! (`kernels::check`) still tests them natively and in wasmtime.

use crate::kernels::packing::dense_i8::{BLOCK, QUAD};

/// Integer dense layer, accumulators only:
/// `acc[r][o] = bias[o] + Σ_i x[r][i] · W[o][i]`, in i32 with wrapping
/// arithmetic (the result does not depend on the order of the sum).
/// `w` is packed ([`pack`](crate::kernels::packing::dense_i8::pack)); this walks it in storage order, four outputs
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
/// (see the relaxed wasm kernel).
pub fn is_7bit(x: &[i8]) -> bool {
    x.iter().all(|&v| v >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::packing::dense_i8::{pack, packed_len};

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
}
