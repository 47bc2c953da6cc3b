//! Batch-1 prediction of an MLP 784-256-128-10 (random weights): the model
//! module in wasmtime against the same kernel natively.
//!
//! `cargo bench -p kiln --bench predict`. Criterion measures each variant;
//! a final interleaved pass prints the medians and the wasm/native ratio from
//! one process, so the ratio holds on a noisy machine.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use kiln::bench::{Warm, models};
use kiln::sandbox::{Limits, Sandbox};

fn setup() -> (kiln_guest::Model<'static>, Vec<u8>, Vec<f32>) {
    let model = models::mlp(&models::MLP_WIDTHS, 7);
    let kernel = model.to_kernel().unwrap();
    let wasm = kiln::module::build(&model, "bench").unwrap();
    let x: Vec<f32> = (0..784).map(|i| ((i * 37) % 255) as f32 / 255.0).collect();
    (kernel, wasm, x)
}

fn bench(c: &mut Criterion) {
    let (kernel, wasm, x) = setup();
    let sandbox = Sandbox::new(Limits::default()).unwrap();
    let loaded = sandbox.load(&wasm).unwrap();
    let mut warm = Warm::new(&wasm).unwrap();
    let mut out = vec![0.0f32; 10];

    let mut g = c.benchmark_group("mlp-784-256-128-10/batch-1");
    g.bench_function("native", |b| {
        b.iter(|| kernel.predict(black_box(&x)).unwrap())
    });
    g.bench_function("wasmtime (warm instance)", |b| {
        b.iter(|| warm.predict(black_box(&x), &mut out).unwrap())
    });
    g.bench_function("wasmtime (fresh sandboxed instance)", |b| {
        b.iter(|| sandbox.predict(&loaded, black_box(&x)).unwrap())
    });
    g.finish();
}

/// Interleaved medians in one process: the ratio that `docs/benchmarks.md`
/// quotes.
fn summary() {
    let (kernel, wasm, x) = setup();
    let sandbox = Sandbox::new(Limits::default()).unwrap();
    let loaded = sandbox.load(&wasm).unwrap();
    let mut warm = Warm::new(&wasm).unwrap();
    let mut out = vec![0.0f32; 10];
    let (mut n, mut w, mut f) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3000 {
        let t = Instant::now();
        black_box(kernel.predict(black_box(&x)).unwrap());
        n.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        warm.predict(black_box(&x), &mut out).unwrap();
        w.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        black_box(sandbox.predict(&loaded, black_box(&x)).unwrap());
        f.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (n, w, f) = (median(&mut n), median(&mut w), median(&mut f));
    println!("\nMLP 784-256-128-10, batch 1, median of 3000 interleaved runs:");
    println!("  native                      {n:8.1} µs");
    println!(
        "  wasmtime, warm instance     {w:8.1} µs   ({:.2}× native)",
        w / n
    );
    println!(
        "  wasmtime, fresh instance    {f:8.1} µs   ({:.2}× native)",
        f / n
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
