//! x86-64 (SSE2, the architecture's baseline) override of the int8 dense
//! kernel, so `kiln predict --native`, calibration and evaluation run int8
//! models at SIMD speed on the host. Same structure as the SIMD128 kernel:
//! 16 packed bytes (two inputs of eight outputs) sign-extended to two i16
//! halves, `pmaddwd` with the input pair in every i32 lane. Integer sums are
//! exact and order-independent, so this equals [`super::int8::dense_i8`]
//! (tested below).

use core::arch::x86_64::*;

use super::int8 as reference;

/// [`reference::dense_i8`], 32 outputs per pass.
pub fn dense_i8(x: &[i8], w: &[i8], bias: &[i32], inputs: usize, outputs: usize, acc: &mut [i32]) {
    let rows = x.len().checked_div(inputs).unwrap_or(0);
    let sizes_ok = reference::packed_len(inputs, outputs) == Some(w.len())
        && bias.len() == outputs
        && rows.checked_mul(outputs).is_some_and(|n| n <= acc.len());
    if !sizes_ok || outputs == 0 {
        return reference::dense_i8(x, w, bias, inputs, outputs, acc);
    }
    let pairs = inputs.div_ceil(2);
    let blocks = outputs.div_ceil(8);
    for (xr, ar) in x.chunks_exact(inputs).zip(acc.chunks_exact_mut(outputs)) {
        let mut b0 = 0;
        while b0 < blocks {
            // Up to four blocks (32 outputs) share each input pair's splat.
            let n = (blocks - b0).min(4);
            let mut sums = [[0i32; 8]; 4];
            // SAFETY: SSE2 is part of x86-64; block b0 + k < blocks and
            // p < pairs, so each 16-byte load lies inside w, whose length is
            // blocks · pairs · 16 (checked above).
            unsafe {
                let mut lo = [_mm_setzero_si128(); 4];
                let mut hi = [_mm_setzero_si128(); 4];
                for p in 0..pairs {
                    let x0 = xr[2 * p] as i16 as u16 as u32;
                    let x1 = xr.get(2 * p + 1).map_or(0, |&v| v as i16 as u16 as u32);
                    let xp = _mm_set1_epi32((x0 | (x1 << 16)) as i32);
                    for k in 0..n {
                        let at = ((b0 + k) * pairs + p) * 16;
                        let v = _mm_loadu_si128(w.as_ptr().add(at) as *const __m128i);
                        let wl = _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8);
                        let wh = _mm_srai_epi16(_mm_unpackhi_epi8(v, v), 8);
                        lo[k] = _mm_add_epi32(lo[k], _mm_madd_epi16(wl, xp));
                        hi[k] = _mm_add_epi32(hi[k], _mm_madd_epi16(wh, xp));
                    }
                }
                for k in 0..n {
                    _mm_storeu_si128(sums[k].as_mut_ptr() as *mut __m128i, lo[k]);
                    _mm_storeu_si128(sums[k].as_mut_ptr().add(4) as *mut __m128i, hi[k]);
                }
            }
            for (k, block) in sums.iter().enumerate().take(n) {
                for (j, s) in block.iter().enumerate() {
                    let o = 8 * (b0 + k) + j;
                    if let (Some(a), Some(&bo)) = (ar.get_mut(o), bias.get(o)) {
                        *a = s.wrapping_add(bo);
                    }
                }
            }
            b0 += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal to the reference on awkward sizes and extreme values.
    #[test]
    fn matches_reference() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            match seed % 7 {
                0 => -128i8,
                1 => 127,
                _ => (seed >> 24) as i8,
            }
        };
        for (batch, inputs, outputs) in [
            (1, 1, 1),
            (2, 3, 9),
            (3, 17, 33),
            (1, 784, 256),
            (4, 64, 10),
        ] {
            let x: Vec<i8> = (0..batch * inputs).map(|_| next()).collect();
            let rows: Vec<i8> = (0..inputs * outputs).map(|_| next()).collect();
            let bias: Vec<i32> = (0..outputs).map(|o| o as i32 * 1001 - 5000).collect();
            let mut packed = vec![0i8; reference::packed_len(inputs, outputs).unwrap()];
            reference::pack(&rows, inputs, outputs, &mut packed);
            let (mut want, mut got) = (vec![0; batch * outputs], vec![0; batch * outputs]);
            reference::dense_i8(&x, &packed, &bias, inputs, outputs, &mut want);
            dense_i8(&x, &packed, &bias, inputs, outputs, &mut got);
            assert_eq!(got, want, "{batch}x{inputs}x{outputs}");
        }
    }
}
