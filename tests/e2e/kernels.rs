//! The SIMD128 kernels inside the wasm module against the scalar reference,
//! bit for bit, on random data with awkward values and sizes.

use kiln::kiln_guest::{kernels::reference, math};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wasmtime::{Engine, Instance, Module, Store};

pub(crate) struct Kernel {
    store: Store<()>,
    instance: Instance,
}

impl Kernel {
    pub(crate) fn new() -> Self {
        Self::of(kiln::module::KERNEL_TESTS_WASM)
    }

    /// Both builds of the test kernel: the plain SIMD128 one and the
    /// relaxed-SIMD one (the latter holds no relaxed instruction but the
    /// int8 dot product, yet every kernel test runs on it too).
    pub(crate) fn builds() -> [Self; 2] {
        [Self::new(), Self::relaxed()]
    }

    /// The relaxed-SIMD build of the test kernel, compiled with the
    /// engine's native (non-deterministic) lowering of relaxed instructions,
    /// as the sandbox compiles it.
    pub(crate) fn relaxed() -> Self {
        Self::of(kiln::module::KERNEL_TESTS_RELAXED_WASM)
    }

    fn of(wasm: &[u8]) -> Self {
        let mut config = wasmtime::Config::new();
        config
            .wasm_relaxed_simd(true)
            .relaxed_simd_deterministic(false);
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, wasm).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        Kernel { store, instance }
    }

    pub(crate) fn put(&mut self, v: &[f32]) -> i32 {
        let alloc = self
            .instance
            .get_typed_func::<i32, i32>(&mut self.store, "kiln_test_alloc")
            .unwrap();
        let ptr = alloc.call(&mut self.store, v.len() as i32).unwrap();
        let mem = self.instance.get_memory(&mut self.store, "memory").unwrap();
        mem.write(&mut self.store, ptr as usize, bytemuck::cast_slice(v))
            .unwrap();
        ptr
    }

    pub(crate) fn get(&mut self, ptr: i32, n: usize) -> Vec<f32> {
        let mem = self.instance.get_memory(&mut self.store, "memory").unwrap();
        let mut buf = vec![0u8; n * 4];
        mem.read(&self.store, ptr as usize, &mut buf).unwrap();
        bytemuck::cast_slice(&buf).to_vec()
    }

    pub(crate) fn call<P: wasmtime::WasmParams>(&mut self, name: &str, args: P) {
        self.instance
            .get_typed_func::<P, ()>(&mut self.store, name)
            .unwrap()
            .call(&mut self.store, args)
            .unwrap();
    }
}

/// Random values spanning magnitudes, with zeros, negative zeros and
/// subnormals mixed in.
pub(crate) fn values(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| match rng.random_range(0..20) {
            0 => 0.0,
            1 => -0.0,
            2 => f32::from_bits(rng.random_range(1..0x007f_ffff)),
            3 => rng.random_range(-1e4..1e4),
            _ => rng.random_range(-2.0..2.0),
        })
        .collect()
}

pub(crate) fn same_bits(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(
            x.to_bits(),
            y.to_bits(),
            "{what}: element {i}: wasm {x} vs reference {y}"
        );
    }
}

#[test]
fn dense_simd_matches_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for mut k in Kernel::builds() {
        // Sizes around the 24-wide panels and narrower last panels (26: 2
        // outputs left, 30: 6, 29: 5, 45: 21), the 8- and 4-wide blocks (the
        // last vector of a panel moves back over its neighbour), the 4-row
        // blocks, and the LeNet tail (120 and 10 outputs).
        for (batch, inputs, outputs) in [
            (4, 5, 26),
            (6, 9, 30),
            (4, 3, 45),
            (5, 11, 29),
            (1, 256, 120),
            (2, 6, 26),
            (1, 11, 50),
            (1, 84, 10),
            (6, 120, 84),
            (1, 1, 1),
            (1, 7, 3),
            (2, 5, 16),
            (3, 33, 37),
            (1, 64, 20),
            (4, 17, 50),
            (2, 9, 64),
            (1, 40, 100),
            (9, 13, 23),
            (8, 20, 8),
            (5, 3, 4),
        ] {
            let x = values(&mut rng, batch * inputs);
            let w = values(&mut rng, inputs * outputs);
            let b = values(&mut rng, outputs);
            let mut want = vec![0.0; batch * outputs];
            reference::dense(&x, &w, &b, inputs, outputs, &mut want);
            let (px, pw, pb) = (k.put(&x), k.put(&w), k.put(&b));
            let py = k.put(&vec![0.0; batch * outputs]);
            k.call(
                "kiln_test_dense",
                (px, pw, pb, batch as i32, inputs as i32, outputs as i32, py),
            );
            same_bits(
                &k.get(py, batch * outputs),
                &want,
                &format!("dense {batch}x{inputs}x{outputs}"),
            );
        }
    }
}

#[test]
fn relu_and_standardize_simd_match_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for mut k in Kernel::builds() {
        for n in [1, 3, 4, 5, 64, 67] {
            let mut x = values(&mut rng, n);
            x[0] = f32::NAN;
            let p = k.put(&x);
            k.call("kiln_test_relu", (p, n as i32));
            let mut want = x.clone();
            reference::relu(&mut want);
            same_bits(&k.get(p, n), &want, &format!("relu {n}"));

            let batch = 3;
            let x = values(&mut rng, batch * n);
            let mean = values(&mut rng, n);
            let inv = values(&mut rng, n);
            let (px, pm, pi) = (k.put(&x), k.put(&mean), k.put(&inv));
            k.call(
                "kiln_test_standardize",
                (px, pm, pi, batch as i32, n as i32),
            );
            let mut want = x.clone();
            reference::standardize(&mut want, &mean, &inv);
            same_bits(&k.get(px, batch * n), &want, &format!("standardize {n}"));
        }
    }
}

/// The one `exp` (and what is built on it) gives the same bits in wasm as
/// natively, over the whole useful range.
#[test]
fn math_in_wasm_matches_native() {
    for mut k in Kernel::builds() {
        let x: Vec<f32> = (0..20_000).map(|i| -100.0 + i as f32 * 0.01).collect();
        for (which, name) in [(0, "exp"), (1, "sigmoid"), (2, "tanh"), (3, "softmax")] {
            let p = k.put(&x);
            k.call("kiln_test_math", (which, p, x.len() as i32, 10));
            let mut want = x.clone();
            match which {
                0 => want.iter_mut().for_each(|v| *v = math::exp(*v)),
                1 => reference::sigmoid(&mut want),
                2 => reference::tanh(&mut want),
                _ => reference::softmax(&mut want, 10),
            }
            same_bits(&k.get(p, x.len()), &want, name);
        }
    }
}

/// Writes `dims` as `i32`s into the module and returns the pointer.
fn put_dims(k: &mut Kernel, dims: &[usize]) -> i32 {
    let as_f32: Vec<f32> = dims.iter().map(|&d| f32::from_bits(d as u32)).collect();
    k.put(&as_f32)
}

#[test]
fn conv2d_simd_matches_reference() {
    use kiln::kiln_guest::{ConvGeom, kernels::conv};
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for mut k in Kernel::builds() {
        // (in_c, in_h, in_w, out_c, kh, kw, stride, pad): output channels
        // around the 4-wide blocks, padding, strides, odd shapes.
        let cases = [
            (1, 8, 8, 16, 3, 3, 1, 1),
            (1, 8, 8, 8, 3, 3, 1, 0),
            (16, 4, 4, 32, 3, 3, 1, 1),
            (3, 7, 5, 21, 3, 2, 2, 1),
            (2, 5, 6, 3, 1, 1, 1, 0),
            (4, 9, 9, 5, 5, 5, 3, 2),
            // The blocked tiles (4 channels × 8 interior columns): LeNet's
            // two convolutions, overlapping last tiles in channels and
            // columns, padding borders, and stride 2 (gathered lanes).
            (1, 28, 28, 6, 5, 5, 1, 0),
            (6, 12, 12, 16, 5, 5, 1, 0),
            (2, 11, 19, 7, 3, 3, 1, 2),
            (3, 13, 29, 5, 4, 3, 2, 1),
            (2, 6, 40, 9, 3, 3, 2, 1),
            // Remainders after whole 4-channel tiles: 2 and 1 at stride 1
            // (a 2-channel tile; with 1 it overlaps the last 4-tile) and
            // at stride 2 (a 4-tile moved back); 3 is (2, 11, 19, 7, ..).
            (2, 9, 20, 10, 3, 3, 1, 1),
            (2, 7, 19, 9, 3, 3, 1, 0),
            (1, 10, 30, 13, 3, 3, 2, 0),
            (2, 10, 21, 14, 3, 3, 2, 1),
        ];
        for (in_c, in_h, in_w, out_c, kh, kw, stride, pad) in cases {
            let g = ConvGeom {
                in_c,
                in_h,
                in_w,
                out_c,
                kh,
                kw,
                stride,
                pad,
            };
            g.check().expect("valid test geometry");
            let batch = 3;
            let x = values(&mut rng, batch * g.input_len().unwrap());
            let w = values(&mut rng, g.weight_len().unwrap());
            let b = values(&mut rng, out_c);
            let out = batch * g.output_len().unwrap();
            let mut want = vec![0.0; out];
            conv::conv2d(&x, &w, &b, &g, &mut want);
            let (px, pw, pb, py) = (k.put(&x), k.put(&w), k.put(&b), k.put(&vec![0.0; out]));
            let pg = put_dims(&mut k, &[in_c, in_h, in_w, out_c, kh, kw, stride, pad]);
            k.call("kiln_test_conv2d", (px, pw, pb, py, batch as i32, pg));
            same_bits(&k.get(py, out), &want, &format!("conv2d {g:?}"));
        }
    }
}

#[test]
fn pooling_simd_matches_reference() {
    use kiln::kiln_guest::{PoolGeom, PoolKind, kernels::conv};
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for mut k in Kernel::builds() {
        // (c, h, w, k, stride): stride 1 (vector loads), 2 (two loads and a
        // shuffle per tap; 2×2 windows by even/odd shuffles of whole rows,
        // with a scalar tail when the row is not whole vectors; the last
        // read is a row's last float in (2, 6, 16, 2, 2) and (1, 5, 9, 3,
        // 2)), 3 (gathers), widths around 4 output columns; an odd height
        // (each plane's last row unread) in (2, 9, 17, 2, 2).
        let cases = [
            (6, 24, 24, 2, 2),
            (3, 10, 13, 2, 2),
            (2, 9, 17, 2, 2),
            (2, 6, 16, 2, 2),
            (2, 11, 19, 3, 2),
            (1, 5, 9, 3, 2),
            (16, 8, 8, 2, 2),
            (3, 9, 11, 3, 1),
            (2, 12, 13, 3, 3),
            (1, 4, 4, 2, 2),
            (5, 6, 17, 2, 1),
        ];
        for (c, h, w, kk, stride) in cases {
            let g = PoolGeom {
                c,
                h,
                w,
                k: kk,
                stride,
            };
            for (max, kind) in [(1, PoolKind::Max), (0, PoolKind::Avg)] {
                let batch = 2;
                let mut x = values(&mut rng, batch * g.input_len().unwrap());
                // Max never picks a NaN (an average would give a NaN whose
                // payload wasm leaves unspecified, so averages get none).
                if kind == PoolKind::Max {
                    x[1] = f32::NAN;
                    // Ties of signed zeros as the maximum: the first in the
                    // reference's order (ky, then kx) wins, so a kernel
                    // folding a window in another order gives other bits.
                    let ties = [(0, -0.0), (w, 0.0), (w + 1, -1.0), (2, 0.0), (3, -0.0)];
                    for (i, v) in ties.into_iter().chain([(w + 2, -1.0), (w + 3, -1.0)]) {
                        x[i] = v;
                    }
                }
                x[7] = f32::NEG_INFINITY;
                let out = batch * g.output_len();
                let mut want = vec![0.0; out];
                conv::pool(kind, &x, &g, &mut want);
                let (px, py) = (k.put(&x), k.put(&vec![0.0; out]));
                let pg = put_dims(&mut k, &[c, h, w, kk, stride]);
                k.call("kiln_test_pool", (max, px, py, batch as i32, pg));
                same_bits(&k.get(py, out), &want, &format!("{kind:?} pool {g:?}"));
            }
        }
    }
}

impl Kernel {
    /// Copies raw bytes into a fresh guest buffer (int8 and i32 data).
    fn put_bytes(&mut self, bytes: &[u8]) -> i32 {
        let ptr = self.put(&vec![0.0; bytes.len().div_ceil(4).max(1)]);
        let mem = self.instance.get_memory(&mut self.store, "memory").unwrap();
        mem.write(&mut self.store, ptr as usize, bytes).unwrap();
        ptr
    }

    fn get_bytes(&mut self, ptr: i32, n: usize) -> Vec<u8> {
        let mem = self.instance.get_memory(&mut self.store, "memory").unwrap();
        let mut buf = vec![0u8; n];
        mem.read(&self.store, ptr as usize, &mut buf).unwrap();
        buf
    }
}

/// The SIMD128 requantize of convolution planes (i64 lanes, 16 values per
/// step, scalar tail) equals the reference in both builds: planes of 64,
/// 576 and odd lengths, shifts 1..=62, multipliers up to 2³¹ − 1, extreme
/// accumulators, the relu clamp (`lo` = zero point) and both zero-point
/// extremes.
#[test]
fn int8_requantize_planes_simd_matches_reference() {
    use kiln::kiln_guest::kernels::conv_int8;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for mut k in Kernel::builds() {
        // Outputs strictly inside the clamp range, over all cases.
        let mut inside = 0;
        for (case, (channels, plane)) in [(6, 576), (16, 64), (3, 17), (5, 1), (2, 35)]
            .into_iter()
            .enumerate()
        {
            let n = channels * plane * 2;
            let acc: Vec<i32> = (0..n)
                .map(|_| match rng.random_range(0..10) {
                    0 => i32::MIN,
                    1 => i32::MAX,
                    2 => 0,
                    3..6 => rng.random_range(-1 << 16..1 << 16),
                    _ => rng.random(),
                })
                .collect();
            let m: Vec<i32> = (0..channels)
                .map(|i| match i % 3 {
                    0 => i32::MAX,
                    _ => rng.random_range(0..i32::MAX),
                })
                .collect();
            let s: Vec<i32> = (0..channels)
                .map(|i| match i % 4 {
                    0 => 1,
                    1 => 62,
                    // Moderate results for the ±2¹⁶ and the full-range
                    // accumulators (m near 2³⁰).
                    2 => rng.random_range(38..44),
                    _ => rng.random_range(52..58),
                })
                .collect();
            let zp = [-128, 127, 0, -5, 42][case];
            for lo in [-128, zp] {
                let mut want = vec![0i8; n];
                conv_int8::requantize_planes(&acc, &m, &s, zp, lo, plane, &mut want);
                let pa = k.put_bytes(bytemuck::cast_slice(&acc));
                let pm = k.put_bytes(bytemuck::cast_slice(&m));
                let ps = k.put_bytes(bytemuck::cast_slice(&s));
                let py = k.put_bytes(&vec![0x55u8; n]);
                let args = (
                    pa,
                    n as i32,
                    pm,
                    ps,
                    channels as i32,
                    zp,
                    lo,
                    plane as i32,
                    py,
                );
                k.call("kiln_test_requantize_planes", args);
                let got: Vec<i8> = k.get_bytes(py, n).into_iter().map(|b| b as i8).collect();
                assert_eq!(got, want, "channels {channels} plane {plane} lo {lo}");
                inside += want
                    .iter()
                    .filter(|&&v| v != 127 && i32::from(v) != lo)
                    .count();
            }
        }
        assert!(inside > 1000, "only {inside} values inside the clamp range");
    }
}

/// The SIMD128 int8 pooling (2×2 max with stride 2 vectorized, every other
/// shape the reference) equals the reference in both builds, around rows of
/// 16 values and the overlapped last step, and for average pooling.
#[test]
fn int8_pool_simd_matches_reference() {
    use kiln::kiln_guest::{PoolGeom, PoolKind, kernels::conv_int8};
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let cases = [
        (6, 24, 24, 2, 2),
        (16, 8, 8, 2, 2),
        (3, 17, 33, 2, 2),
        (2, 16, 16, 2, 2),
        (2, 9, 21, 3, 2),
        (1, 5, 7, 2, 1),
    ];
    for mut k in Kernel::builds() {
        for (c, h, w, kk, stride) in cases {
            let g = PoolGeom {
                c,
                h,
                w,
                k: kk,
                stride,
            };
            let batch = 2;
            let x: Vec<i8> = (0..batch * g.input_len().unwrap())
                .map(|_| rng.random())
                .collect();
            let out = batch * g.output_len();
            for (max, kind) in [(1, PoolKind::Max), (0, PoolKind::Avg)] {
                let mut want = vec![0i8; out];
                conv_int8::pool_i8(kind, &x, &g, &mut want);
                let px = k.put_bytes(bytemuck::cast_slice(&x));
                let py = k.put_bytes(&vec![0u8; out]);
                let pg = put_dims(&mut k, &[c, h, w, kk, stride]);
                k.call("kiln_test_pool_i8", (max, px, py, batch as i32, pg));
                let got: Vec<i8> = k.get_bytes(py, out).into_iter().map(|b| b as i8).collect();
                assert_eq!(got, want, "{kind:?} {g:?}");
            }
        }
    }
}

/// The SIMD128 int8 dense kernel (i32x4.dot_i16x8_s on packed weights)
/// gives the reference's accumulators exactly, including the extremes
/// (−128 · −128) and sizes around its 4-input quads, 16-output passes and
/// 4-row blocks.
#[test]
fn int8_dense_simd_matches_reference() {
    int8_dense_matches_reference(&mut Kernel::new(), 3, false);
}

/// The relaxed-SIMD build's int8 dense kernel
/// (`i32x4.relaxed_dot_i8x16_i7x16_add_s`, lowered natively — `pmaddubsw`
/// on x86) gives the reference's accumulators exactly: on 7-bit rows (its
/// fast path, with extreme weights that would saturate a signed reading of
/// an out-of-range operand), and on rows with negative values (which it must
/// route to the plain kernel), mixed within one batch.
#[test]
fn int8_dense_relaxed_matches_reference() {
    let mut k = Kernel::relaxed();
    int8_dense_matches_reference(&mut k, 5, true);
    int8_dense_matches_reference(&mut k, 6, false);
}

fn int8_dense_matches_reference(k: &mut Kernel, seed: u64, seven_bit: bool) {
    use kiln::kiln_guest::kernels::int8;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (batch, inputs, outputs) in [
        (1, 1, 1),
        (1, 2, 8),
        (2, 15, 7),
        (1, 16, 32),
        (3, 17, 33),
        (1, 64, 40),
        (2, 100, 70),
        (1, 784, 256),
        (5, 131, 36),
        (32, 33, 10),
    ] {
        let mut x: Vec<i8> = (0..batch * inputs)
            .map(|_| match rng.random_range(0..8) {
                0 => -128,
                1 => 127,
                _ => rng.random(),
            })
            .collect();
        if seven_bit {
            // 7-bit rows, except (in batches of 3 or more) row 1, which
            // keeps one negative value.
            for (r, row) in x.chunks_exact_mut(inputs).enumerate() {
                for v in row.iter_mut() {
                    *v &= 0x7f;
                }
                if r == 1 && batch >= 3 {
                    row[inputs / 2] = -1;
                }
            }
        }
        let rows: Vec<i8> = (0..inputs * outputs)
            .map(|_| {
                if rng.random_range(0..8) == 0 {
                    -128
                } else {
                    rng.random()
                }
            })
            .collect();
        let bias: Vec<i32> = (0..outputs)
            .map(|_| rng.random_range(-1 << 20..1 << 20))
            .collect();
        let mut packed = vec![0i8; int8::packed_len(inputs, outputs).unwrap()];
        int8::pack(&rows, inputs, outputs, &mut packed);
        let mut want = vec![0i32; batch * outputs];
        int8::dense_i8(&x, &packed, &bias, inputs, outputs, &mut want);
        // The reference against the plain definition, on the unpacked rows.
        for r in 0..batch {
            for o in 0..outputs {
                let sum: i32 = (0..inputs)
                    .map(|i| i32::from(x[r * inputs + i]) * i32::from(rows[o * inputs + i]))
                    .sum();
                assert_eq!(want[r * outputs + o], sum + bias[o], "reference {r},{o}");
            }
        }
        let px = k.put_bytes(bytemuck::cast_slice(&x));
        let pw = k.put_bytes(bytemuck::cast_slice(&packed));
        let pb = k.put_bytes(bytemuck::cast_slice(&bias));
        let pa = k.put_bytes(&vec![0u8; 4 * batch * outputs]);
        k.call(
            "kiln_test_dense_i8",
            (px, pw, pb, batch as i32, inputs as i32, outputs as i32, pa),
        );
        let got: Vec<i32> = k
            .get_bytes(pa, 4 * batch * outputs)
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(got, want, "dense_i8 {batch}x{inputs}x{outputs}");
    }
}

/// The SIMD128 quantize (f32x4.nearest, pmin/pmax, trunc_sat, narrowing)
/// gives the reference's int8 values for ties, NaN, infinities, subnormals
/// and out-of-range values.
#[test]
fn int8_quantize_simd_matches_reference() {
    use kiln::kiln_guest::kernels::int8;
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for mut k in Kernel::builds() {
        for (n, inv_scale, zero_point) in [
            (1, 1.0, 0),
            (7, 2.0, -3),
            (64, 0.5, 127),
            (333, 37.5, -128),
            (1000, 1e-3, 5),
        ] {
            let mut x = values(&mut rng, n);
            let specials = [
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                0.5,
                1.5,
                -2.5,
                1e30,
            ];
            for (i, v) in specials.iter().enumerate().take(n) {
                x[i] = *v / inv_scale;
            }
            let mut want = vec![0i8; n];
            int8::quantize(&x, inv_scale, zero_point, &mut want);
            let px = k.put(&x);
            let pq = k.put_bytes(&vec![0u8; n]);
            k.call(
                "kiln_test_quantize",
                (px, n as i32, inv_scale, zero_point, pq),
            );
            let got: Vec<i8> = bytemuck::cast_slice(&k.get_bytes(pq, n)).to_vec();
            assert_eq!(got, want, "quantize n={n} inv={inv_scale} zp={zero_point}");
        }
    }
}

/// The relaxed build uses relaxed SIMD for one thing only: the int8 dot
/// product, whose operands `relaxed_int8` checks (everything else in it is
/// the plain build's code, tested above); the plain build uses none.
#[test]
fn relaxed_build_uses_only_the_checked_dot_product() {
    use wasmparser::{Parser, Payload};
    let relaxed_ops = |wasm: &[u8]| {
        let mut ops = std::collections::BTreeMap::<String, usize>::new();
        for payload in Parser::new(0).parse_all(wasm) {
            if let Payload::CodeSectionEntry(body) = payload.unwrap() {
                let mut reader = body.get_operators_reader().unwrap();
                while !reader.eof() {
                    let op = format!("{:?}", reader.read().unwrap());
                    if op.contains("Relaxed") {
                        *ops.entry(op).or_default() += 1;
                    }
                }
            }
        }
        ops
    };
    for wasm in [kiln::module::KERNEL_WASM, kiln::module::KERNEL_TESTS_WASM] {
        assert!(relaxed_ops(wasm).is_empty());
    }
    for wasm in [
        kiln::module::KERNEL_RELAXED_WASM,
        kiln::module::KERNEL_TESTS_RELAXED_WASM,
    ] {
        let ops = relaxed_ops(wasm);
        assert_eq!(
            ops.keys().collect::<Vec<_>>(),
            ["I32x4RelaxedDotI8x16I7x16AddS"],
            "{ops:?}"
        );
    }
}

/// The blocked SIMD128 int8 convolution (tiles of 4 channels × 8 columns,
/// tap pairs with i32x4.dot_i16x8_s over a padded pair buffer) gives the
/// reference's accumulators exactly, in both kernel builds: extremes
/// (−128 · −128), padding read as the zero point, strides, odd and even
/// kernel widths, rows narrower than a tile and odd widths (the overlapped
/// last tile), output channels around the group of 4, LeNet's two layers.
#[test]
fn int8_conv2d_simd_matches_reference() {
    for k in Kernel::builds() {
        int8_conv2d_matches_reference_in(k);
    }
}

fn int8_conv2d_matches_reference_in(mut k: Kernel) {
    use kiln::kiln_guest::{ConvGeom, kernels::conv_int8};
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let i8s = |rng: &mut ChaCha8Rng, n: usize| -> Vec<i8> {
        (0..n)
            .map(|_| match rng.random_range(0..8) {
                0 => -128,
                1 => 127,
                _ => rng.random(),
            })
            .collect()
    };
    let cases = [
        (1, 8, 8, 16, 3, 3, 1, 1),
        (1, 8, 8, 7, 3, 3, 1, 0),
        (16, 4, 4, 32, 3, 3, 1, 1),
        (3, 7, 5, 21, 3, 2, 2, 1),
        (2, 5, 6, 3, 1, 1, 1, 0),
        (4, 9, 9, 5, 5, 5, 3, 2),
        (1, 28, 28, 6, 5, 5, 1, 0),
        (6, 12, 12, 16, 5, 5, 1, 0),
        (1, 3, 3, 1, 3, 3, 1, 2),
        (5, 6, 13, 7, 2, 4, 1, 1),
        (2, 11, 19, 9, 3, 3, 2, 1),
        (3, 4, 30, 4, 1, 7, 3, 3),
    ];
    for (case, (in_c, in_h, in_w, out_c, kh, kw, stride, pad)) in cases.into_iter().enumerate() {
        let g = ConvGeom {
            in_c,
            in_h,
            in_w,
            out_c,
            kh,
            kw,
            stride,
            pad,
        };
        g.check().expect("valid test geometry");
        let batch = 2;
        let x = i8s(&mut rng, batch * g.input_len().unwrap());
        let filters = i8s(&mut rng, g.weight_len().unwrap());
        let mut w = vec![0i8; conv_int8::packed_len(&g).unwrap()];
        conv_int8::pack_filters(&filters, &g, &mut w);
        let bias: Vec<i32> = (0..out_c)
            .map(|_| rng.random_range(-1 << 24..1 << 24))
            .collect();
        let zp = [-128i8, 0, 17, 127][case % 4];
        let out = batch * g.output_len().unwrap();
        let mut want = vec![0i32; out];
        conv_int8::conv2d_i8(&x, &w, &bias, &g, zp, &mut [], &mut want);
        let (px, pw, pb) = (
            k.put_bytes(bytemuck::cast_slice(&x)),
            k.put_bytes(bytemuck::cast_slice(&w)),
            k.put_bytes(bytemuck::cast_slice(&bias)),
        );
        let pa = k.put_bytes(&vec![0u8; 4 * out]);
        let pg = put_dims(&mut k, &[in_c, in_h, in_w, out_c, kh, kw, stride, pad]);
        k.call(
            "kiln_test_conv2d_i8",
            (px, pw, pb, pa, batch as i32, pg, i32::from(zp)),
        );
        let got: Vec<i32> = k
            .get_bytes(pa, 4 * out)
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(got, want, "conv2d_i8 {g:?}");
        assert!(want.iter().any(|&a| a != 0), "non-trivial accumulators");
    }
}
