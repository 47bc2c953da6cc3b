//! A MobileNet-like 3×3 depthwise convolution (stride 1, padding 1) as a
//! real depthwise layer against the zero-filled full convolution ONNX
//! import made of it before (the same values, `channels`× the arithmetic),
//! natively and in wasmtime (warm instance), batch 1.
//!
//! `cargo bench -p kiln --bench depthwise`. Criterion measures each
//! variant; a final interleaved pass prints the medians from one process.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use kiln::bench::{Warm, models};

/// MobileNetV2-0.35's widest 48×48 depthwise layer (expansion 6 of 8
/// channels).
const CHANNELS: usize = 48;
const SIZE: usize = 48;

struct Variant {
    name: &'static str,
    kernel: kiln_guest::Model<'static>,
    warm: Warm,
}

fn variants() -> Vec<Variant> {
    [("depthwise", false), ("zero-filled full conv", true)]
        .into_iter()
        .map(|(name, zero_filled)| {
            let model = models::depthwise_layer(7, CHANNELS, SIZE, zero_filled);
            let wasm = kiln::module::build(&model, "bench").unwrap();
            Variant {
                name,
                kernel: model.to_kernel().unwrap(),
                warm: Warm::new(&wasm).unwrap(),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let x = models::pattern_rows(1, CHANNELS * SIZE * SIZE);
    let mut out = vec![0.0f32; CHANNELS * SIZE * SIZE];
    let mut g = c.benchmark_group(format!("conv 3x3 {CHANNELS}x{SIZE}x{SIZE}/batch-1"));
    for v in &mut variants() {
        g.bench_function(format!("{} native", v.name), |b| {
            b.iter(|| v.kernel.predict(black_box(&x)).unwrap())
        });
        g.bench_function(format!("{} wasmtime", v.name), |b| {
            b.iter(|| v.warm.predict(black_box(&x), &mut out).unwrap())
        });
    }
    g.finish();
}

/// Interleaved medians in one process.
fn summary() {
    let x = models::pattern_rows(1, CHANNELS * SIZE * SIZE);
    let mut out = vec![0.0f32; CHANNELS * SIZE * SIZE];
    let mut vs = variants();
    let mut times = vec![(Vec::new(), Vec::new()); vs.len()];
    for _ in 0..200 {
        for (v, (n, w)) in vs.iter_mut().zip(&mut times) {
            let t = Instant::now();
            black_box(v.kernel.predict(black_box(&x)).unwrap());
            n.push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            v.warm.predict(black_box(&x), &mut out).unwrap();
            w.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("\nconv 3x3, {CHANNELS}x{SIZE}x{SIZE}, batch 1, median of 200 interleaved runs:");
    for (v, (n, w)) in vs.iter().zip(&mut times) {
        let (n, w) = (median(n), median(w));
        println!("  {:<22} native {n:9.1} µs   wasmtime {w:9.1} µs", v.name);
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
